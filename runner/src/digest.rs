//! Content digests: SHA-1 (Ansible's `checksum`), MD5 and SHA-2, for modules (stat,
//! get_url, copy) and the `hash` filter. They identify content; none is used for trust
//! (payloads are checked with blake3 and ed25519, see `payload`).
//!
//! SHA-1 and MD5 are written out here (a few dozen lines each) rather than pulled in as
//! crates; SHA-2 comes from the `sha2` crate the signature code already links.

use sha2::Digest as _;
use std::fs;
use std::io::{self, Read};
use std::path::Path;

/// SHA-1, for the `checksum` field Ansible registers (SHA-1 there too). Used to
/// identify content, never for security.
pub struct Sha1 {
    h: [u32; 5],
    blocks: Blocks,
}

/// The message schedule SHA-1 and MD5 share: bytes gathered into 64-byte blocks, the
/// length counted, and the final padding (0x80, zeros, the bit length).
struct Blocks {
    buf: Vec<u8>,
    len: u64,
}

impl Blocks {
    fn new() -> Blocks {
        Blocks {
            buf: Vec::with_capacity(64),
            len: 0,
        }
    }

    /// Counts `data` and hands each full 64-byte block to `block`.
    fn feed(&mut self, mut data: &[u8], block: &mut dyn FnMut(&[u8])) {
        self.len = self.len.wrapping_add(data.len() as u64);
        while !data.is_empty() {
            let take = (64 - self.buf.len()).min(data.len());
            let (head, rest) = data.split_at(take);
            self.buf.extend_from_slice(head);
            data = rest;
            if self.buf.len() == 64 {
                block(&self.buf);
                self.buf.clear();
            }
        }
    }

    /// Pads the message, with its bit length big-endian (SHA-1) or little-endian (MD5),
    /// handing the last blocks to `block`.
    fn finish(mut self, big_endian: bool, block: &mut dyn FnMut(&[u8])) {
        let bits = self.len.wrapping_mul(8);
        let mut pad = vec![0x80u8];
        let rem = (self.len % 64) as usize;
        let zeros = if rem < 56 { 55 - rem } else { 119 - rem };
        pad.extend(std::iter::repeat_n(0u8, zeros));
        pad.extend_from_slice(&if big_endian {
            bits.to_be_bytes()
        } else {
            bits.to_le_bytes()
        });
        self.feed(&pad, block);
    }
}

impl Sha1 {
    /// A fresh hasher.
    pub fn new() -> Sha1 {
        Sha1 {
            h: [
                0x6745_2301,
                0xEFCD_AB89,
                0x98BA_DCFE,
                0x1032_5476,
                0xC3D2_E1F0,
            ],
            blocks: Blocks::new(),
        }
    }

    /// Feeds bytes.
    pub fn update(&mut self, data: &[u8]) {
        let h = &mut self.h;
        self.blocks.feed(data, &mut |b| Sha1::block(h, b));
    }

    fn block(state: &mut [u32; 5], block: &[u8]) {
        let mut w = [0u32; 80];
        for (wi, chunk) in w.iter_mut().zip(block.chunks_exact(4)) {
            let mut b = [0u8; 4];
            b.copy_from_slice(chunk);
            *wi = u32::from_be_bytes(b);
        }
        for i in 16..80 {
            let v = w.get(i - 3).copied().unwrap_or(0)
                ^ w.get(i - 8).copied().unwrap_or(0)
                ^ w.get(i - 14).copied().unwrap_or(0)
                ^ w.get(i - 16).copied().unwrap_or(0);
            if let Some(wi) = w.get_mut(i) {
                *wi = v.rotate_left(1);
            }
        }
        let [mut a, mut b, mut c, mut d, mut e] = *state;
        for (i, wi) in w.iter().enumerate() {
            let (f, k) = match i {
                0..=19 => ((b & c) | (!b & d), 0x5A82_7999),
                20..=39 => (b ^ c ^ d, 0x6ED9_EBA1),
                40..=59 => ((b & c) | (b & d) | (c & d), 0x8F1B_BCDC),
                _ => (b ^ c ^ d, 0xCA62_C1D6),
            };
            let t = a
                .rotate_left(5)
                .wrapping_add(f)
                .wrapping_add(e)
                .wrapping_add(k)
                .wrapping_add(*wi);
            e = d;
            d = c;
            c = b.rotate_left(30);
            b = a;
            a = t;
        }
        for (h, v) in state.iter_mut().zip([a, b, c, d, e]) {
            *h = h.wrapping_add(v);
        }
    }

    /// The digest as lowercase hex.
    pub fn hex(self) -> String {
        let Sha1 { mut h, blocks } = self;
        blocks.finish(true, &mut |b| Sha1::block(&mut h, b));
        let out: Vec<u8> = h.iter().flat_map(|w| w.to_be_bytes()).collect();
        crate::hex::encode(&out)
    }
}

/// SHA-1 of bytes, as hex.
pub fn sha1_hex(data: &[u8]) -> String {
    let mut h = Sha1::new();
    h.update(data);
    h.hex()
}

/// SHA-1 of a file's content, read in chunks, as hex.
pub fn sha1_file(path: &Path) -> io::Result<String> {
    file_hex("sha1", path).unwrap_or_else(|| Err(io::Error::other("sha1 unavailable")))
}

/// MD5, for `hash('md5')`, get_url's `md5:` checksums and stat's `checksum_algorithm`.
pub struct Md5 {
    s: [u32; 4],
    blocks: Blocks,
}

/// Per-round shift amounts of MD5 (RFC 1321).
const MD5_SHIFTS: [u32; 16] = [7, 12, 17, 22, 5, 9, 14, 20, 4, 11, 16, 23, 6, 10, 15, 21];

impl Md5 {
    /// A fresh hasher.
    pub fn new() -> Md5 {
        Md5 {
            s: [0x6745_2301, 0xefcd_ab89, 0x98ba_dcfe, 0x1032_5476],
            blocks: Blocks::new(),
        }
    }

    /// Feeds bytes.
    pub fn update(&mut self, data: &[u8]) {
        let st = &mut self.s;
        self.blocks.feed(data, &mut |b| Md5::block(st, b));
    }

    fn block(state: &mut [u32; 4], block: &[u8]) {
        let mut m = [0u32; 16];
        for (mi, chunk) in m.iter_mut().zip(block.chunks_exact(4)) {
            let mut b = [0u8; 4];
            b.copy_from_slice(chunk);
            *mi = u32::from_le_bytes(b);
        }
        let [mut a, mut b, mut c, mut d] = *state;
        for i in 0..64usize {
            let (f, g) = match i / 16 {
                0 => ((b & c) | (!b & d), i),
                1 => ((d & b) | (!d & c), (5 * i + 1) % 16),
                2 => (b ^ c ^ d, (3 * i + 5) % 16),
                _ => (c ^ (b | !d), (7 * i) % 16),
            };
            // K[i] = floor(abs(sin(i + 1)) * 2^32), as RFC 1321 defines the table.
            let k = ((i as f64 + 1.0).sin().abs() * 4_294_967_296.0) as u32;
            let shift = MD5_SHIFTS.get((i / 16) * 4 + i % 4).copied().unwrap_or(0);
            let sum = a
                .wrapping_add(f)
                .wrapping_add(k)
                .wrapping_add(m.get(g).copied().unwrap_or(0));
            a = d;
            d = c;
            c = b;
            b = b.wrapping_add(sum.rotate_left(shift));
        }
        for (s, v) in state.iter_mut().zip([a, b, c, d]) {
            *s = s.wrapping_add(v);
        }
    }

    /// The digest as lowercase hex.
    pub fn hex(self) -> String {
        let Md5 { mut s, blocks } = self;
        blocks.finish(false, &mut |b| Md5::block(&mut s, b));
        let out: Vec<u8> = s.iter().flat_map(|w| w.to_le_bytes()).collect();
        crate::hex::encode(&out)
    }
}

impl Default for Md5 {
    fn default() -> Self {
        Md5::new()
    }
}

impl Default for Sha1 {
    fn default() -> Self {
        Sha1::new()
    }
}

/// A streaming hasher for one of the algorithms Ansible names.
pub enum Hasher {
    /// `md5`.
    Md5(Md5),
    /// `sha1`.
    Sha1(Sha1),
    /// `sha224`.
    Sha224(sha2::Sha224),
    /// `sha256`.
    Sha256(sha2::Sha256),
    /// `sha384`.
    Sha384(sha2::Sha384),
    /// `sha512`.
    Sha512(sha2::Sha512),
}

impl Hasher {
    /// The hasher for an algorithm name as Ansible writes it, if supported.
    pub fn named(algo: &str) -> Option<Hasher> {
        Some(match algo.trim().to_ascii_lowercase().as_str() {
            "md5" => Hasher::Md5(Md5::new()),
            "sha1" => Hasher::Sha1(Sha1::new()),
            "sha224" => Hasher::Sha224(sha2::Sha224::new()),
            "sha256" => Hasher::Sha256(sha2::Sha256::new()),
            "sha384" => Hasher::Sha384(sha2::Sha384::new()),
            "sha512" => Hasher::Sha512(sha2::Sha512::new()),
            _ => return None,
        })
    }

    /// Feeds bytes.
    pub fn update(&mut self, data: &[u8]) {
        match self {
            Hasher::Md5(h) => h.update(data),
            Hasher::Sha1(h) => h.update(data),
            Hasher::Sha224(h) => h.update(data),
            Hasher::Sha256(h) => h.update(data),
            Hasher::Sha384(h) => h.update(data),
            Hasher::Sha512(h) => h.update(data),
        }
    }

    /// The digest as lowercase hex.
    pub fn hex(self) -> String {
        match self {
            Hasher::Md5(h) => h.hex(),
            Hasher::Sha1(h) => h.hex(),
            Hasher::Sha224(h) => crate::hex::encode(&h.finalize()),
            Hasher::Sha256(h) => crate::hex::encode(&h.finalize()),
            Hasher::Sha384(h) => crate::hex::encode(&h.finalize()),
            Hasher::Sha512(h) => crate::hex::encode(&h.finalize()),
        }
    }
}

/// The hex digest of `data` with the named algorithm, or None when it is not supported.
pub fn hex(algo: &str, data: &[u8]) -> Option<String> {
    let mut h = Hasher::named(algo)?;
    h.update(data);
    Some(h.hex())
}

/// The hex digest of a file's content, read in chunks; None for an unknown algorithm.
pub fn file_hex(algo: &str, path: &Path) -> Option<io::Result<String>> {
    let mut h = Hasher::named(algo)?;
    Some((|| {
        let mut f = fs::File::open(path)?;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = f.read(&mut buf)?;
            if n == 0 {
                break;
            }
            h.update(buf.get(..n).unwrap_or_default());
        }
        Ok(h.hex())
    })())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha1_matches_known_vectors() {
        assert_eq!(sha1_hex(b""), "da39a3ee5e6b4b0d3255bfef95601890afd80709");
        assert_eq!(sha1_hex(b"abc"), "a9993e364706816aba3e25717850c26c9cd0d89d");
        let long = b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
        assert_eq!(sha1_hex(long), "84983e441c3bd26ebaae4aa1f95129e5e54670f1");
        let million = vec![b'a'; 1_000_000];
        assert_eq!(
            sha1_hex(&million),
            "34aa973cd4c4daa4f61eeb2bdbad27316534016f"
        );
        // Fed in odd pieces, the result is the same.
        let mut h = Sha1::new();
        for chunk in million.chunks(333) {
            h.update(chunk);
        }
        assert_eq!(h.hex(), "34aa973cd4c4daa4f61eeb2bdbad27316534016f");
    }

    #[test]
    fn md5_and_sha2_match_known_vectors() {
        assert_eq!(hex("md5", b"").unwrap(), "d41d8cd98f00b204e9800998ecf8427e");
        assert_eq!(
            hex("md5", b"The quick brown fox jumps over the lazy dog").unwrap(),
            "9e107d9d372bb6826bd81d3542a419d6"
        );
        let million = vec![b'a'; 1_000_000];
        assert_eq!(
            hex("md5", &million).unwrap(),
            "7707d6ae4e027c70eea2a935c2296f21"
        );
        assert_eq!(
            hex("SHA256", b"abc").unwrap(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert!(hex("crc32", b"abc").is_none());
    }
}
