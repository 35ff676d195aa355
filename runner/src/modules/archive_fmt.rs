//! Archive formats for the archive and unarchive modules, kept small and in memory:
//! tar (ustar, reading GNU long names and pax `path`/`linkpath`, writing pax for long
//! names), zip (central directory; stored or raw deflate), gzip and zstd wrappers.
//!
//! Hand-written rather than crates: each format needs only a few dozen lines for what
//! the modules use, and the runner must stay small. Compression itself comes from
//! miniz_oxide (deflate) and ruzstd (zstd), both pure Rust.

use std::io::Read;

/// What an archive member is.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Kind {
    File,
    Dir,
    /// A symbolic link to the given target (as stored, unresolved).
    Symlink(String),
    /// A hard link to another member's name.
    Hardlink(String),
    /// Anything else (devices, fifos): refused on extraction.
    Other(u8),
}

/// One archive member, content in memory.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Entry {
    /// The member's name as stored (slashes, maybe `./`, maybe a trailing `/`).
    pub name: String,
    pub kind: Kind,
    /// Permission bits (and set-id bits).
    pub mode: u32,
    /// Modification time, seconds since the epoch.
    pub mtime: u64,
    pub uid: u32,
    pub gid: u32,
    pub data: Vec<u8>,
}

/// Container and compression of an archive file.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Format {
    Tar,
    TarGz,
    TarZst,
    Zip,
}

impl Format {
    /// Ansible's handler name, registered by unarchive.
    pub(super) fn handler(self) -> &'static str {
        match self {
            Format::Zip => "ZipArchive",
            Format::TarZst => "TarZstdArchive",
            Format::Tar | Format::TarGz => "TgzArchive",
        }
    }
}

// ---------------------------------------------------------------------------
// Checksums and compression wrappers

/// CRC-32 (IEEE, reflected), as gzip and zip use it.
pub(super) fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            let mask = (crc & 1).wrapping_neg();
            crc = (crc >> 1) ^ (0xEDB8_8320 & mask);
        }
    }
    !crc
}

/// A gzip member with mtime 0 and no name, so equal input gives equal bytes (which is
/// what makes archive idempotent).
pub(super) fn gzip(data: &[u8]) -> Vec<u8> {
    let mut out = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3];
    out.extend(miniz_oxide::deflate::compress_to_vec(data, 6));
    out.extend(crc32(data).to_le_bytes());
    out.extend((data.len() as u32).to_le_bytes());
    out
}

/// Unpacks a gzip file (its first member), checking the CRC when the trailer is there.
pub(super) fn gunzip(data: &[u8]) -> Result<Vec<u8>, String> {
    let bad = |why: &str| format!("not a valid gzip file: {why}");
    let flags = *data.get(3).ok_or_else(|| bad("truncated header"))?;
    if data.get(..3) != Some(&[0x1f, 0x8b, 8]) {
        return Err(bad("bad magic"));
    }
    let mut pos = 10usize;
    if flags & 4 != 0 {
        let xlen = le16(data, pos).ok_or_else(|| bad("truncated extra field"))?;
        pos += 2 + usize::from(xlen);
    }
    for bit in [8u8, 16] {
        // FNAME and FCOMMENT: zero-terminated strings.
        if flags & bit != 0 {
            let rest = data.get(pos..).ok_or_else(|| bad("truncated header"))?;
            let end = rest
                .iter()
                .position(|b| *b == 0)
                .ok_or_else(|| bad("unterminated name"))?;
            pos += end + 1;
        }
    }
    if flags & 2 != 0 {
        pos += 2;
    }
    let body = data.get(pos..).ok_or_else(|| bad("truncated header"))?;
    let out = miniz_oxide::inflate::decompress_to_vec(body).map_err(|e| bad(&e.to_string()))?;
    // Single-member files end with CRC and size; check them when they are about this data.
    if let Some(trailer) = data.len().checked_sub(8).and_then(|t| data.get(t..)) {
        let crc = le32(trailer, 0).unwrap_or(0);
        let size = le32(trailer, 4).unwrap_or(0);
        if size == out.len() as u32 && crc != crc32(&out) {
            return Err(bad("CRC mismatch"));
        }
    }
    Ok(out)
}

/// zstd at ruzstd's fastest level (roughly zstd -1).
pub(super) fn zstd(data: &[u8]) -> Vec<u8> {
    ruzstd::encoding::compress_to_vec(data, ruzstd::encoding::CompressionLevel::Fastest)
}

/// Unpacks a zstd file.
pub(super) fn unzstd(data: &[u8]) -> Result<Vec<u8>, String> {
    let mut dec = ruzstd::decoding::StreamingDecoder::new(data)
        .map_err(|e| format!("not a valid zstd file: {e}"))?;
    let mut out = Vec::new();
    dec.read_to_end(&mut out)
        .map_err(|e| format!("not a valid zstd file: {e}"))?;
    Ok(out)
}

fn le16(d: &[u8], at: usize) -> Option<u16> {
    let b = d.get(at..at + 2)?;
    Some(u16::from_le_bytes([*b.first()?, *b.get(1)?]))
}

fn le32(d: &[u8], at: usize) -> Option<u32> {
    let b: [u8; 4] = d.get(at..at + 4)?.try_into().ok()?;
    Some(u32::from_le_bytes(b))
}

/// Tells the format from the first bytes; bzip2 and xz are named, not guessed.
pub(super) fn sniff(data: &[u8]) -> Result<Format, String> {
    match data {
        [0x1f, 0x8b, ..] => Ok(Format::TarGz),
        [0x28, 0xb5, 0x2f, 0xfd, ..] => Ok(Format::TarZst),
        [b'P', b'K', 3, 4, ..] | [b'P', b'K', 5, 6, ..] => Ok(Format::Zip),
        [b'B', b'Z', b'h', ..] => Err("bzip2 archives are not supported by this runner".into()),
        [0xfd, b'7', b'z', b'X', b'Z', 0, ..] => {
            Err("xz archives are not supported by this runner".into())
        }
        _ if data.len() >= 512 && tar_checksum_ok(data.get(..512).unwrap_or_default()) => {
            Ok(Format::Tar)
        }
        // A tar with no members is only its end marker, zero blocks (what `write_tar` and
        // `tar -cf x.tar -T /dev/null` write); GNU tar reads it as an empty archive.
        _ if data.len() >= 1024
            && data.len().is_multiple_of(512)
            && data.iter().all(|b| *b == 0) =>
        {
            Ok(Format::Tar)
        }
        _ => Err("unrecognised archive format (expected tar, tar.gz, tar.zst or zip)".into()),
    }
}

/// Reads any supported archive into its entries.
pub(super) fn read_any(data: &[u8]) -> Result<(Format, Vec<Entry>), String> {
    let format = sniff(data)?;
    let entries = match format {
        Format::Tar => read_tar(data)?,
        Format::TarGz => read_tar(&gunzip(data)?)?,
        Format::TarZst => read_tar(&unzstd(data)?)?,
        Format::Zip => read_zip(data)?,
    };
    Ok((format, entries))
}

// ---------------------------------------------------------------------------
// tar

fn octal(field: &[u8]) -> Option<u64> {
    // Base-256 (GNU) for large numbers: high bit of the first byte set.
    if field.first().is_some_and(|b| b & 0x80 != 0) {
        return field
            .iter()
            .skip(1)
            .try_fold(u64::from(field.first()? & 0x7f), |acc, b| {
                acc.checked_mul(256).map(|v| v + u64::from(*b))
            });
    }
    let s: String = field
        .iter()
        .take_while(|b| **b != 0)
        .map(|b| char::from(*b))
        .collect();
    let t = s.trim();
    if t.is_empty() {
        return Some(0);
    }
    u64::from_str_radix(t, 8).ok()
}

fn cstr(field: &[u8]) -> String {
    let end = field.iter().position(|b| *b == 0).unwrap_or(field.len());
    String::from_utf8_lossy(field.get(..end).unwrap_or_default()).into_owned()
}

fn tar_checksum_ok(h: &[u8]) -> bool {
    let Some(stored) = h.get(148..156).and_then(octal) else {
        return false;
    };
    let sum: u64 = h
        .iter()
        .enumerate()
        .map(|(i, b)| {
            if (148..156).contains(&i) {
                32
            } else {
                u64::from(*b)
            }
        })
        .sum();
    sum == stored
}

/// Parses pax records `"<len> key=value\n"` into (key, value) pairs.
fn pax_records(data: &[u8]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = data;
    while !rest.is_empty() {
        let Some(sp) = rest.iter().position(|b| *b == b' ') else {
            break;
        };
        let Some(len) = std::str::from_utf8(rest.get(..sp).unwrap_or_default())
            .ok()
            .and_then(|s| s.parse::<usize>().ok())
        else {
            break;
        };
        let Some(rec) = rest.get(sp + 1..len) else {
            break;
        };
        let rec = rec.strip_suffix(b"\n").unwrap_or(rec);
        if let Some(eq) = rec.iter().position(|b| *b == b'=') {
            let k = String::from_utf8_lossy(rec.get(..eq).unwrap_or_default()).into_owned();
            let v = String::from_utf8_lossy(rec.get(eq + 1..).unwrap_or_default()).into_owned();
            out.push((k, v));
        }
        rest = rest.get(len..).unwrap_or_default();
    }
    out
}

/// Reads a tar stream: ustar headers, GNU `L`/`K` long names, pax `x` path/linkpath/size.
pub(super) fn read_tar(data: &[u8]) -> Result<Vec<Entry>, String> {
    let mut entries = Vec::new();
    let mut pos = 0usize;
    let mut long_name: Option<String> = None;
    let mut long_link: Option<String> = None;
    let mut pax: Vec<(String, String)> = Vec::new();
    while let Some(h) = data.get(pos..pos + 512) {
        if h.iter().all(|b| *b == 0) {
            break;
        }
        if !tar_checksum_ok(h) {
            return Err(format!("tar header at offset {pos} has a bad checksum"));
        }
        let field = |a: usize, b: usize| h.get(a..b).unwrap_or_default();
        let mut size = octal(field(124, 136)).ok_or("tar header has a bad size")?;
        if let Some((_, v)) = pax.iter().find(|(k, _)| k == "size") {
            size = v.parse().map_err(|_| "pax size is not a number")?;
        }
        let typeflag = h.get(156).copied().unwrap_or(0);
        let start = pos + 512;
        let len = usize::try_from(size).map_err(|_| "tar member too large")?;
        let body = data
            .get(start..start.checked_add(len).ok_or("tar member too large")?)
            .ok_or_else(|| format!("tar member at offset {pos} is truncated"))?;
        pos = start + len.div_ceil(512) * 512;
        match typeflag {
            b'L' => {
                long_name = Some(cstr(body));
                continue;
            }
            b'K' => {
                long_link = Some(cstr(body));
                continue;
            }
            b'x' => {
                pax = pax_records(body);
                continue;
            }
            // Global pax headers and GNU volume/multivolume metadata carry no member.
            b'g' | b'V' | b'M' => continue,
            _ => {}
        }
        let mut name = cstr(field(0, 100));
        if field(257, 262) == b"ustar" {
            let prefix = cstr(field(345, 500));
            if !prefix.is_empty() && field(257, 263) == b"ustar\0" {
                name = format!("{prefix}/{name}");
            }
        }
        let mut link = cstr(field(157, 257));
        if let Some(n) = long_name.take() {
            name = n;
        }
        if let Some(l) = long_link.take() {
            link = l;
        }
        for (k, v) in std::mem::take(&mut pax) {
            match k.as_str() {
                "path" => name = v,
                "linkpath" => link = v,
                _ => {}
            }
        }
        let kind = match typeflag {
            b'0' | 0 | b'7' => {
                if name.ends_with('/') {
                    Kind::Dir
                } else {
                    Kind::File
                }
            }
            b'5' => Kind::Dir,
            b'2' => Kind::Symlink(link),
            b'1' => Kind::Hardlink(link),
            other => Kind::Other(other),
        };
        let num = |a, b| octal(field(a, b)).unwrap_or(0);
        entries.push(Entry {
            name,
            data: if kind == Kind::File {
                body.to_vec()
            } else {
                Vec::new()
            },
            kind,
            mode: (num(100, 108) & 0o7777) as u32,
            mtime: num(136, 148),
            uid: u32::try_from(num(108, 116)).unwrap_or(0),
            gid: u32::try_from(num(116, 124)).unwrap_or(0),
        });
    }
    Ok(entries)
}

fn put(h: &mut [u8], at: usize, bytes: &[u8]) {
    for (d, s) in h.iter_mut().skip(at).zip(bytes) {
        *d = *s;
    }
}

fn put_octal(h: &mut [u8], at: usize, width: usize, v: u64) {
    let s = format!("{v:0w$o}\0", w = width - 1);
    put(h, at, s.as_bytes());
}

fn tar_header(name: &str, typeflag: u8, e: &Entry, size: u64, link: &str) -> [u8; 512] {
    let mut h = [0u8; 512];
    put(
        &mut h,
        0,
        name.as_bytes()
            .get(..100.min(name.len()))
            .unwrap_or_default(),
    );
    put_octal(&mut h, 100, 8, u64::from(e.mode & 0o7777));
    put_octal(&mut h, 108, 8, u64::from(e.uid).min(0o7_777_777));
    put_octal(&mut h, 116, 8, u64::from(e.gid).min(0o7_777_777));
    put_octal(&mut h, 124, 12, size);
    put_octal(&mut h, 136, 12, e.mtime.min(0o77_777_777_777));
    put(&mut h, 148, b"        ");
    put(&mut h, 156, &[typeflag]);
    put(
        &mut h,
        157,
        link.as_bytes()
            .get(..100.min(link.len()))
            .unwrap_or_default(),
    );
    put(&mut h, 257, b"ustar\x0000");
    let (user, group) = (
        super::fsutil::user_name(e.uid),
        super::fsutil::group_name(e.gid),
    );
    put(
        &mut h,
        265,
        user.as_bytes().get(..31).unwrap_or(user.as_bytes()),
    );
    put(
        &mut h,
        297,
        group.as_bytes().get(..31).unwrap_or(group.as_bytes()),
    );
    let sum: u32 = h.iter().map(|b| u32::from(*b)).sum();
    put(&mut h, 148, format!("{sum:06o}\0 ").as_bytes());
    h
}

/// Writes entries as a POSIX tar; names or link targets over 100 bytes get a pax header.
pub(super) fn write_tar(entries: &[Entry]) -> Vec<u8> {
    let mut out = Vec::new();
    for e in entries {
        let (typeflag, link, body): (u8, &str, &[u8]) = match &e.kind {
            Kind::File => (b'0', "", &e.data),
            Kind::Dir => (b'5', "", &[]),
            Kind::Symlink(t) => (b'2', t, &[]),
            Kind::Hardlink(t) => (b'1', t, &[]),
            Kind::Other(f) => (*f, "", &[]),
        };
        let name = if e.kind == Kind::Dir && !e.name.ends_with('/') {
            format!("{}/", e.name)
        } else {
            e.name.clone()
        };
        if name.len() > 100 || link.len() > 100 {
            let mut recs = Vec::new();
            for (k, v) in [("path", name.as_str()), ("linkpath", link)] {
                if v.len() > 100 {
                    recs.extend(pax_record(k, v));
                }
            }
            let pax_name = format!(
                "PaxHeaders/{}",
                name.rsplit('/').find(|s| !s.is_empty()).unwrap_or("x")
            );
            out.extend(tar_header(&pax_name, b'x', e, recs.len() as u64, ""));
            pad_to_block(&mut out, &recs);
        }
        out.extend(tar_header(&name, typeflag, e, body.len() as u64, link));
        pad_to_block(&mut out, body);
    }
    out.extend([0u8; 1024]);
    out
}

fn pad_to_block(out: &mut Vec<u8>, body: &[u8]) {
    out.extend_from_slice(body);
    out.resize(out.len() + (512 - body.len() % 512) % 512, 0);
}

/// One pax record; its length counts its own digits.
fn pax_record(key: &str, value: &str) -> Vec<u8> {
    let base = key.len() + value.len() + 3;
    let mut len = base + base.to_string().len();
    while base + len.to_string().len() != len {
        len = base + len.to_string().len();
    }
    format!("{len} {key}={value}\n").into_bytes()
}

// ---------------------------------------------------------------------------
// zip

/// Unix file type bits as zip's external attributes carry them.
const S_IFMT: u32 = 0o170_000;
const S_IFLNK: u32 = 0o120_000;
const S_IFDIR: u32 = 0o040_000;
const S_IFREG: u32 = 0o100_000;

/// Reads a zip file through its central directory (no zip64, no encryption).
pub(super) fn read_zip(data: &[u8]) -> Result<Vec<Entry>, String> {
    let min = data.len().saturating_sub(22 + 65_535);
    let eocd = (min..=data.len().saturating_sub(22))
        .rev()
        .find(|i| data.get(*i..*i + 4) == Some(b"PK\x05\x06"))
        .ok_or("zip file has no end of central directory record")?;
    let count = le16(data, eocd + 10).ok_or("truncated zip")?;
    let cd_offset = le32(data, eocd + 16).ok_or("truncated zip")?;
    if count == 0xffff || cd_offset == 0xffff_ffff {
        return Err("zip64 archives are not supported by this runner".into());
    }
    let mut pos = cd_offset as usize;
    let mut entries = Vec::new();
    for _ in 0..count {
        if data.get(pos..pos + 4) != Some(b"PK\x01\x02") {
            return Err(format!("bad zip central directory entry at offset {pos}"));
        }
        let g16 = |o: usize| le16(data, pos + o).ok_or("truncated zip central directory");
        let g32 = |o: usize| le32(data, pos + o).ok_or("truncated zip central directory");
        let made_by = g16(4)?;
        let flags = g16(8)?;
        let method = g16(10)?;
        let (time, date) = (g16(12)?, g16(14)?);
        let crc = g32(16)?;
        let csize = g32(20)? as usize;
        let usize_ = g32(24)? as usize;
        let (nlen, xlen, clen) = (
            usize::from(g16(28)?),
            usize::from(g16(30)?),
            usize::from(g16(32)?),
        );
        let ext = g32(38)?;
        let local = g32(42)? as usize;
        let name_bytes = data
            .get(pos + 46..pos + 46 + nlen)
            .ok_or("truncated zip name")?;
        let name = String::from_utf8_lossy(name_bytes).into_owned();
        pos += 46 + nlen + xlen + clen;
        if flags & 1 != 0 {
            return Err(format!("zip member {name} is encrypted"));
        }
        if data.get(local..local + 4) != Some(b"PK\x03\x04") {
            return Err(format!("zip member {name} has no local header"));
        }
        let lnlen = usize::from(le16(data, local + 26).ok_or("truncated zip")?);
        let lxlen = usize::from(le16(data, local + 28).ok_or("truncated zip")?);
        let start = local + 30 + lnlen + lxlen;
        let raw = data
            .get(start..start + csize)
            .ok_or_else(|| format!("zip member {name} is truncated"))?;
        let content = match method {
            0 => raw.to_vec(),
            8 => miniz_oxide::inflate::decompress_to_vec_with_limit(raw, usize_)
                .map_err(|e| format!("zip member {name}: {e}"))?,
            m => {
                return Err(format!(
                    "zip member {name} uses unsupported compression method {m}"
                ));
            }
        };
        if content.len() != usize_ || crc32(&content) != crc {
            return Err(format!("zip member {name} fails its CRC or size check"));
        }
        // Unix-made entries carry st_mode in the high half of the external attributes.
        let unix_mode = if made_by >> 8 == 3 { ext >> 16 } else { 0 };
        let is_dir = name.ends_with('/') || unix_mode & S_IFMT == S_IFDIR || ext & 0x10 != 0;
        let kind = if unix_mode & S_IFMT == S_IFLNK {
            Kind::Symlink(String::from_utf8_lossy(&content).into_owned())
        } else if is_dir {
            Kind::Dir
        } else {
            Kind::File
        };
        let perms = unix_mode & 0o7777;
        let mode = match (&kind, perms) {
            (_, p) if p != 0 => p,
            (Kind::Dir, _) => 0o755,
            _ => 0o644,
        };
        entries.push(Entry {
            name,
            data: if kind == Kind::File {
                content
            } else {
                Vec::new()
            },
            kind,
            mode,
            mtime: from_dos(date, time),
            uid: 0,
            gid: 0,
        });
    }
    Ok(entries)
}

/// DOS date/time (taken as UTC) to seconds since the epoch.
fn from_dos(date: u16, time: u16) -> u64 {
    let y = 1980 + i64::from(date >> 9);
    let m = i64::from((date >> 5) & 15).clamp(1, 12);
    let d = i64::from(date & 31).max(1);
    // Days from civil (Howard Hinnant's algorithm).
    let y2 = if m <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs =
        i64::from(time >> 11) * 3600 + i64::from((time >> 5) & 63) * 60 + i64::from(time & 31) * 2;
    u64::try_from(days * 86_400 + secs).unwrap_or(0)
}

/// Seconds since the epoch to DOS (date, time), UTC, clamped to 1980.
fn to_dos(secs: u64) -> (u16, u16) {
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let (y, m, d) = crate::facts::civil(days);
    if y < 1980 {
        return (0x21, 0);
    }
    let rem = secs % 86_400;
    let date = ((y - 1980).min(127) as u16) << 9 | (m as u16) << 5 | d as u16;
    let time =
        ((rem / 3600) as u16) << 11 | (((rem / 60) % 60) as u16) << 5 | ((rem % 60) / 2) as u16;
    (date, time)
}

/// Writes entries as a zip (deflated when that is smaller, else stored), with Unix
/// modes so that unzip restores permissions and symlinks.
pub(super) fn write_zip(entries: &[Entry]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut central = Vec::new();
    for e in entries {
        let (name, body, ftype): (String, &[u8], u32) = match &e.kind {
            Kind::Dir if !e.name.ends_with('/') => (format!("{}/", e.name), &[], S_IFDIR),
            Kind::Dir => (e.name.clone(), &[], S_IFDIR),
            Kind::Symlink(t) => (e.name.clone(), t.as_bytes(), S_IFLNK),
            _ => (e.name.clone(), &e.data, S_IFREG),
        };
        let crc = crc32(body);
        let deflated = miniz_oxide::deflate::compress_to_vec(body, 6);
        let (method, stored): (u16, &[u8]) = if !body.is_empty() && deflated.len() < body.len() {
            (8, &deflated)
        } else {
            (0, body)
        };
        let (date, time) = to_dos(e.mtime);
        let offset = out.len() as u32;
        let common = |v: &mut Vec<u8>| {
            v.extend(20u16.to_le_bytes());
            v.extend(0x0800u16.to_le_bytes()); // UTF-8 names
            v.extend(method.to_le_bytes());
            v.extend(time.to_le_bytes());
            v.extend(date.to_le_bytes());
            v.extend(crc.to_le_bytes());
            v.extend((stored.len() as u32).to_le_bytes());
            v.extend((body.len() as u32).to_le_bytes());
            v.extend((name.len() as u16).to_le_bytes());
            v.extend(0u16.to_le_bytes());
        };
        out.extend(b"PK\x03\x04");
        common(&mut out);
        out.extend(name.as_bytes());
        out.extend(stored);

        central.extend(b"PK\x01\x02");
        central.extend((3u16 << 8 | 20).to_le_bytes());
        common(&mut central);
        central.extend(0u16.to_le_bytes()); // comment
        central.extend(0u16.to_le_bytes()); // disk
        central.extend(0u16.to_le_bytes()); // internal attributes
        let dos_dir = if ftype == S_IFDIR { 0x10 } else { 0 };
        central.extend((((ftype | (e.mode & 0o7777)) << 16) | dos_dir).to_le_bytes());
        central.extend(offset.to_le_bytes());
        central.extend(name.as_bytes());
    }
    let cd_offset = out.len() as u32;
    out.extend(&central);
    out.extend(b"PK\x05\x06");
    out.extend([0u8; 4]);
    out.extend((entries.len() as u16).to_le_bytes());
    out.extend((entries.len() as u16).to_le_bytes());
    out.extend((central.len() as u32).to_le_bytes());
    out.extend(cd_offset.to_le_bytes());
    out.extend(0u16.to_le_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    fn entry(name: &str, kind: Kind, data: &[u8]) -> Entry {
        Entry {
            name: name.into(),
            kind,
            mode: 0o640,
            mtime: 1_700_000_000,
            uid: 0,
            gid: 0,
            data: data.to_vec(),
        }
    }

    fn sample() -> Vec<Entry> {
        let long = format!("d/{}/file.txt", "n".repeat(120));
        vec![
            entry("d", Kind::Dir, b""),
            entry("d/a.txt", Kind::File, b"hello tar\n"),
            entry(&long, Kind::File, b"long name\n"),
            entry("d/l", Kind::Symlink("a.txt".into()), b""),
        ]
    }

    #[test]
    fn empty_tar_written_by_archive_reads_back() {
        // Found by the archive_round_trip fuzz target: an archive of nothing could be
        // written but not read (its zero end blocks were not recognised as tar).
        let t = tempfile::tempdir().unwrap();
        let real = t.path().join("empty.tar");
        let made = Command::new("tar")
            .arg("-cf")
            .arg(&real)
            .args(["-T", "/dev/null"])
            .status()
            .unwrap();
        assert!(made.success());
        for bytes in [write_tar(&[]), std::fs::read(&real).unwrap()] {
            assert_eq!(read_any(&bytes).unwrap(), (Format::Tar, Vec::new()));
        }
        assert!(read_any(&[0u8; 100]).is_err());
    }

    #[test]
    fn crc_and_gzip_match_real_tools() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        let t = tempfile::tempdir().unwrap();
        let f = t.path().join("x.gz");
        std::fs::write(&f, gzip(b"gzip me\n")).unwrap();
        let out = Command::new("gzip").arg("-dc").arg(&f).output().unwrap();
        assert!(out.status.success());
        assert_eq!(out.stdout, b"gzip me\n");
        // And gzip's own output (with a name in the header) reads back.
        let plain = t.path().join("p.txt");
        std::fs::write(&plain, "from gzip\n").unwrap();
        assert!(
            Command::new("gzip")
                .arg("-k")
                .arg(&plain)
                .status()
                .unwrap()
                .success()
        );
        let gz = std::fs::read(t.path().join("p.txt.gz")).unwrap();
        assert_eq!(gunzip(&gz).unwrap(), b"from gzip\n");
        assert_eq!(
            unzstd(&zstd(b"zstd round trip")).unwrap(),
            b"zstd round trip"
        );
    }

    #[test]
    fn tar_round_trips_and_gnu_tar_agrees() {
        let t = tempfile::tempdir().unwrap();
        let bytes = write_tar(&sample());
        assert_eq!(read_tar(&bytes).unwrap().len(), 4);
        let back = read_tar(&bytes).unwrap();
        assert_eq!(back[0].name, "d/");
        assert_eq!(back[0].kind, Kind::Dir);
        assert_eq!(back[1..], sample()[1..]);
        let f = t.path().join("x.tar");
        std::fs::write(&f, &bytes).unwrap();
        let out = Command::new("tar").arg("-tvf").arg(&f).output().unwrap();
        let listing = String::from_utf8(out.stdout).unwrap();
        assert!(out.status.success(), "{listing}");
        assert!(listing.contains(&"n".repeat(120)), "{listing}");
        assert!(listing.contains("d/l -> a.txt"), "{listing}");
        // GNU tar's own archive (with GNU long names) reads back.
        let src = t.path().join("src");
        let deep = src.join("x".repeat(110));
        std::fs::create_dir_all(&deep).unwrap();
        std::fs::write(deep.join("f"), "gnu").unwrap();
        let gnu = t.path().join("gnu.tar");
        assert!(
            Command::new("tar")
                .args(["--format=gnu", "-C"])
                .arg(&src)
                .arg("-cf")
                .arg(&gnu)
                .arg(".")
                .status()
                .unwrap()
                .success()
        );
        let got = read_tar(&std::fs::read(&gnu).unwrap()).unwrap();
        let f = got.iter().find(|e| e.name.ends_with("/f")).unwrap();
        assert_eq!(f.name, format!("./{}/f", "x".repeat(110)));
        assert_eq!(f.data, b"gnu");
    }

    #[test]
    fn zip_round_trips_and_unzip_or_python_agrees() {
        let bytes = write_zip(&sample());
        let back = read_zip(&bytes).unwrap();
        assert_eq!(back.len(), 4);
        assert_eq!(back[1].data, b"hello tar\n");
        assert_eq!(back[1].mode, 0o640);
        assert_eq!(back[1].mtime, 1_700_000_000);
        assert_eq!(back[3].kind, Kind::Symlink("a.txt".into()));
        let t = tempfile::tempdir().unwrap();
        let f = t.path().join("x.zip");
        std::fs::write(&f, &bytes).unwrap();
        // Python's zipfile is the independent reader here (testzip checks every CRC).
        let out = Command::new("python3")
            .args([
                "-c",
                "import sys,zipfile; z=zipfile.ZipFile(sys.argv[1]); assert z.testzip() is None; print(z.read('d/a.txt').decode(), end='')",
            ])
            .arg(&f)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(out.stdout, b"hello tar\n");
        // And Python's deflated zip reads back.
        let made = t.path().join("py.zip");
        let out = Command::new("python3")
            .args([
                "-c",
                "import sys,zipfile; z=zipfile.ZipFile(sys.argv[1],'w',zipfile.ZIP_DEFLATED); z.writestr('k/v.txt', 'abc'*100); z.close()",
            ])
            .arg(&made)
            .status()
            .unwrap();
        assert!(out.success());
        let got = read_zip(&std::fs::read(&made).unwrap()).unwrap();
        assert_eq!(got[0].data, "abc".repeat(100).as_bytes());
        assert_eq!(sniff(&std::fs::read(&made).unwrap()).unwrap(), Format::Zip);
    }
}
