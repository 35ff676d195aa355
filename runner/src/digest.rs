//! Content digests: SHA-1 (Ansible's `checksum`), MD5 and SHA-2, for modules (stat,
//! get_url, copy) and the `hash` filter. They identify content; none is used for trust
//! (payloads are checked with blake3 and ed25519, see `payload`).
//!
//! All come from RustCrypto crates of one generation (`sha1`, `md-5`, `sha2` 0.10), which
//! share `digest`, `block-buffer` and `cpufeatures` with the signature code.

use sha2::Digest;
use sha2::digest::DynDigest;
use std::fs;
use std::io::{self, Read};
use std::path::Path;

/// A streaming hasher for one of the algorithms Ansible names.
pub struct Hasher(Box<dyn DynDigest>);

impl Hasher {
    /// The hasher for an algorithm name as Ansible writes it, if supported.
    pub fn named(algo: &str) -> Option<Hasher> {
        Some(Hasher(match algo.trim().to_ascii_lowercase().as_str() {
            "md5" => Box::new(md5::Md5::new()),
            "sha1" => Box::new(sha1::Sha1::new()),
            "sha224" => Box::new(sha2::Sha224::new()),
            "sha256" => Box::new(sha2::Sha256::new()),
            "sha384" => Box::new(sha2::Sha384::new()),
            "sha512" => Box::new(sha2::Sha512::new()),
            _ => return None,
        }))
    }

    /// SHA-1, the algorithm of Ansible's `checksum` fields.
    pub fn sha1() -> Hasher {
        Hasher(Box::new(sha1::Sha1::new()))
    }

    /// Feeds bytes.
    pub fn update(&mut self, data: &[u8]) {
        self.0.update(data);
    }

    /// The digest as raw bytes.
    pub fn finish(self) -> Vec<u8> {
        self.0.finalize().into_vec()
    }

    /// The digest as lowercase hex.
    pub fn hex(self) -> String {
        crate::hex::encode(&self.finish())
    }
}

/// SHA-1 of the concatenated `parts`, raw (HMAC-SHA1, uuid5).
pub fn sha1(parts: &[&[u8]]) -> Vec<u8> {
    of::<sha1::Sha1>(parts)
}

/// MD5 of the concatenated `parts`, raw (MD5-crypt).
pub fn md5(parts: &[&[u8]]) -> Vec<u8> {
    of::<md5::Md5>(parts)
}

fn of<D: Digest>(parts: &[&[u8]]) -> Vec<u8> {
    parts
        .iter()
        .fold(D::new(), |h, p| h.chain_update(p))
        .finalize()
        .to_vec()
}

/// SHA-1 of bytes, as hex.
pub fn sha1_hex(data: &[u8]) -> String {
    crate::hex::encode(&sha1(&[data]))
}

/// SHA-1 of a file's content, read in chunks, as hex.
pub fn sha1_file(path: &Path) -> io::Result<String> {
    file_hex("sha1", path).unwrap_or_else(|| Err(io::Error::other("sha1 unavailable")))
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
        let mut h = Hasher::sha1();
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
            crate::hex::encode(&md5(&[b"The quick brown ", b"fox jumps over the lazy dog"])),
            "9e107d9d372bb6826bd81d3542a419d6"
        );
        assert_eq!(
            hex("SHA256", b"abc").unwrap(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert!(hex("crc32", b"abc").is_none());
    }
}
