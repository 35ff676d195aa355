//! Archive formats for the archive and unarchive modules: tar (ustar, reading GNU long
//! names and pax `path`/`linkpath`/`size`, writing pax for long names), zip (central
//! directory; stored or raw deflate), gzip and zstd wrappers.
//!
//! Archives are written in memory (archive builds what it compares with `dest`) but
//! read as streams ([`open`]): a member's content is never held whole, and everything
//! an archive expands to is counted against a limit, both what its headers declare and
//! what gzip or zstd decompression actually yields, so neither a large archive nor a
//! decompression bomb can exhaust the host's memory or disk.
//!
//! Hand-written rather than crates: each format needs only a few dozen lines for what
//! the modules use, and the runner must stay small. Compression itself comes from
//! flate2 over miniz_oxide (deflate and gzip, every member of a multi-member gzip) and
//! ruzstd (zstd), both pure Rust; CRC-32 from crc32fast.

use flate2::{Compression, Decompress, FlushDecompress, Status};
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom, Write};

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

/// One archive member to write, content in memory.
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

/// One archive member as read: what it is, without its content, which is read from
/// the [`Members`] reader right after.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Member {
    /// The member's name as stored.
    pub name: String,
    pub kind: Kind,
    /// Permission bits (and set-id bits).
    pub mode: u32,
    /// Modification time, seconds since the epoch.
    pub mtime: u64,
    /// Content size in bytes (files only; 0 for everything else).
    pub size: u64,
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

/// Why an archive could not be read.
#[derive(Debug, thiserror::Error)]
pub(super) enum ReadError {
    /// Not an archive of a supported format, or a damaged one.
    #[error("{0}")]
    Format(String),
    /// It expands to more than the limit.
    #[error("it expands to more than {} (the limit)", human_size(*limit))]
    TooLarge {
        /// The limit, in bytes.
        limit: u64,
    },
    /// Reading it failed.
    #[error("{0}")]
    Io(io::Error),
}

/// The marker a reader deep in a decompression stack raises when the limit is passed;
/// it travels as an `io::Error` and becomes [`ReadError::TooLarge`].
#[derive(Debug, thiserror::Error)]
#[error("expands to more than {limit} bytes")]
struct OverLimit {
    limit: u64,
}

impl From<io::Error> for ReadError {
    fn from(e: io::Error) -> ReadError {
        if let Some(o) = e.get_ref().and_then(|i| i.downcast_ref::<OverLimit>()) {
            return ReadError::TooLarge { limit: o.limit };
        }
        if e.kind() == io::ErrorKind::InvalidData {
            return ReadError::Format(e.to_string());
        }
        ReadError::Io(e)
    }
}

/// A format error as an `io::Error`, for the `Read` implementations.
fn invalid(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

/// A size as people write it: `1 GiB`, `512 MiB`, or bytes.
pub(super) fn human_size(n: u64) -> String {
    for (unit, shift) in [("TiB", 40), ("GiB", 30), ("MiB", 20), ("KiB", 10)] {
        if n >= 1 << shift && n.is_multiple_of(1 << shift) {
            return format!("{} {unit}", n >> shift);
        }
    }
    format!("{n} bytes")
}

/// Longest GNU long name or link target accepted, and longest pax header: both are
/// held in memory, and real ones are far shorter.
const MAX_LONG_NAME: u64 = 64 * 1024;
const MAX_PAX: u64 = 1024 * 1024;
/// Longest zip member name and symlink target held in memory.
const MAX_ZIP_NAME: usize = 64 * 1024;

// ---------------------------------------------------------------------------
// Checksums and compression wrappers

/// A gzip member with mtime 0 and no name, so equal input gives equal bytes (which is
/// what makes archive idempotent); the OS byte says Unix, as GNU gzip writes it.
pub(super) fn gzip(data: &[u8]) -> Vec<u8> {
    let mut z = flate2::GzBuilder::new()
        .mtime(0)
        .operating_system(3)
        .write(Vec::new(), Compression::default());
    // Writing into a Vec cannot fail.
    z.write_all(data)
        .and_then(|()| z.finish())
        .unwrap_or_default()
}

/// Raw deflate (for zip members) at gzip's default level.
fn deflate(data: &[u8]) -> Vec<u8> {
    let mut z = flate2::write::DeflateEncoder::new(Vec::new(), Compression::default());
    z.write_all(data)
        .and_then(|()| z.finish())
        .unwrap_or_default()
}

/// zstd at ruzstd's fastest level (roughly zstd -1).
pub(super) fn zstd(data: &[u8]) -> Vec<u8> {
    ruzstd::encoding::compress_to_vec(data, ruzstd::encoding::CompressionLevel::Fastest)
}

fn le16(d: &[u8], at: usize) -> Option<u16> {
    let b: [u8; 2] = d.get(at..at.checked_add(2)?)?.try_into().ok()?;
    Some(u16::from_le_bytes(b))
}

fn le32(d: &[u8], at: usize) -> Option<u32> {
    let b: [u8; 4] = d.get(at..at.checked_add(4)?)?.try_into().ok()?;
    Some(u32::from_le_bytes(b))
}

/// Reads exactly `buf.len()` bytes; `false` at a clean end of input before the first.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<bool> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(buf.get_mut(got..).unwrap_or_default()) {
            Ok(0) if got == 0 => return Ok(false),
            Ok(0) => return Err(io::Error::from(io::ErrorKind::UnexpectedEof)),
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

/// Reads and drops `n` bytes.
fn skip(r: &mut impl Read, n: u64) -> io::Result<()> {
    let copied = io::copy(&mut r.by_ref().take(n), &mut io::sink())?;
    if copied < n {
        return Err(invalid("the archive ends in the middle of a member"));
    }
    Ok(())
}

/// Passes at most `limit` bytes through; more is an [`OverLimit`] error. Put after a
/// decompressor, it bounds what the decompression may produce.
struct Limited<R> {
    r: R,
    left: u64,
    limit: u64,
}

impl<R: Read> Read for Limited<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        // One byte more than allowed tells "exactly the limit" from "more".
        let room = usize::try_from(self.left.saturating_add(1)).unwrap_or(usize::MAX);
        let want = buf.len().min(room);
        let n = self.r.read(buf.get_mut(..want).unwrap_or_default())?;
        if n as u64 > self.left {
            return Err(io::Error::other(OverLimit { limit: self.limit }));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

/// A gzip stream, every member of it (`cat a.gz b.gz`, pigz, bgzip), decompressed as
/// it is read, each member's CRC and size checked at its end; flate2's errors become
/// format errors that name gzip.
struct Gunzip<R>(flate2::bufread::MultiGzDecoder<R>);

impl<R: BufRead> Gunzip<R> {
    fn new(r: R) -> Gunzip<R> {
        Gunzip(flate2::bufread::MultiGzDecoder::new(r))
    }
}

impl<R: BufRead> Read for Gunzip<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf).map_err(|e| match e.kind() {
            io::ErrorKind::UnexpectedEof => invalid("not a valid gzip file: truncated"),
            io::ErrorKind::InvalidInput | io::ErrorKind::InvalidData => {
                invalid(format!("not a valid gzip file: {e}"))
            }
            _ => e,
        })
    }
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
        // `tar -cf x.tar -T /dev/null` write); GNU tar reads it as an empty archive. Only
        // the first block is looked at: the tar reader checks the rest.
        _ if data.len() >= 512 && data.iter().take(512).all(|b| *b == 0) => Ok(Format::Tar),
        _ => Err("unrecognised archive format (expected tar, tar.gz, tar.zst or zip)".into()),
    }
}

/// An archive being read: each [`Members::next_member`] moves to the next member, whose
/// content is then read from the reader itself (to its end, or not at all).
pub(super) trait Members: Read {
    /// The next member; `None` after the last.
    fn next_member(&mut self) -> Result<Option<Member>, ReadError>;
}

/// Opens an archive for reading, whatever its format, with `limit` on what it may
/// expand to (member sizes as declared, and what decompression yields).
pub(super) fn open<'a, R: Read + Seek + 'a>(
    mut r: R,
    limit: u64,
) -> Result<(Format, Box<dyn Members + 'a>), ReadError> {
    let mut head = Vec::with_capacity(512);
    r.by_ref().take(512).read_to_end(&mut head)?;
    r.seek(SeekFrom::Start(0))?;
    let format = sniff(&head).map_err(ReadError::Format)?;
    Ok((format, open_as(format, r, limit)?))
}

/// Opens an archive as the given format, whatever its first bytes say.
pub(super) fn open_as<'a, R: Read + Seek + 'a>(
    format: Format,
    r: R,
    limit: u64,
) -> Result<Box<dyn Members + 'a>, ReadError> {
    Ok(match format {
        Format::Tar => Box::new(TarReader::new(r, limit)),
        Format::TarGz => {
            let z = Gunzip::new(BufReader::new(r));
            Box::new(TarReader::new(
                Limited {
                    r: z,
                    left: limit,
                    limit,
                },
                limit,
            ))
        }
        Format::TarZst => {
            let z = ruzstd::decoding::StreamingDecoder::new(BufReader::new(r))
                .map_err(|e| ReadError::Format(format!("not a valid zstd file: {e}")))?;
            let z = ZstdErrors(z);
            Box::new(TarReader::new(
                Limited {
                    r: z,
                    left: limit,
                    limit,
                },
                limit,
            ))
        }
        Format::Zip => Box::new(ZipReader::new(r, limit)?),
    })
}

/// Decompresses a single gzip (`zstd == false`) or zstd stream in memory, as `archive`
/// of one file writes it, up to `limit` bytes. Only the fuzz entry points use it.
#[cfg(feature = "fuzzing")]
pub(super) fn decompress(data: &[u8], zstd: bool, limit: u64) -> Result<Vec<u8>, ReadError> {
    let r: Box<dyn Read + '_> = if zstd {
        let z = ruzstd::decoding::StreamingDecoder::new(data)
            .map_err(|e| ReadError::Format(format!("not a valid zstd file: {e}")))?;
        Box::new(ZstdErrors(z))
    } else {
        Box::new(Gunzip::new(data))
    };
    let mut out = Vec::new();
    Limited {
        r,
        left: limit,
        limit,
    }
    .read_to_end(&mut out)?;
    Ok(out)
}

/// Every member of an archive read as `format` (or as sniffed, with `None`), content in
/// memory, up to `limit` bytes.
#[cfg(any(test, feature = "fuzzing"))]
pub(super) fn read_all(
    data: &[u8],
    format: Option<Format>,
    limit: u64,
) -> Result<(Format, Vec<Entry>), ReadError> {
    let (format, mut rd) = match format {
        Some(f) => (f, open_as(f, io::Cursor::new(data), limit)?),
        None => open(io::Cursor::new(data), limit)?,
    };
    let mut out = Vec::new();
    while let Some(m) = rd.next_member()? {
        let mut data = Vec::new();
        rd.read_to_end(&mut data)?;
        out.push(Entry {
            name: m.name,
            kind: m.kind,
            mode: m.mode,
            mtime: m.mtime,
            uid: 0,
            gid: 0,
            data,
        });
    }
    Ok((format, out))
}

/// ruzstd's errors are about the data: reported as such.
struct ZstdErrors<R>(R);

impl<R: Read> Read for ZstdErrors<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf).map_err(|e| match e.kind() {
            io::ErrorKind::Other => invalid(format!("not a valid zstd file: {e}")),
            _ => e,
        })
    }
}

/// The member names of an archive in memory (for archive's diffs), content skipped.
pub(super) fn member_names(data: &[u8], limit: u64) -> Result<Vec<String>, ReadError> {
    let (_, mut rd) = open(io::Cursor::new(data), limit)?;
    let mut names = Vec::new();
    while let Some(m) = rd.next_member()? {
        names.push(m.name);
    }
    Ok(names)
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
                acc.checked_mul(256)?.checked_add(u64::from(*b))
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
struct TarReader<R> {
    r: R,
    /// Content of the current member not yet read, then its padding to 512.
    left: u64,
    pad: u64,
    /// Where the next header starts, for messages.
    offset: u64,
    /// All member data the headers declared so far, and its limit.
    declared: u64,
    limit: u64,
    done: bool,
}

impl<R: Read> TarReader<R> {
    fn new(r: R, limit: u64) -> TarReader<R> {
        TarReader {
            r,
            left: 0,
            pad: 0,
            offset: 0,
            declared: 0,
            limit,
            done: false,
        }
    }

    /// Reads a special member's body (a long name, a pax header), refusing more than
    /// `max` bytes.
    fn small_body(&mut self, size: u64, max: u64, what: &str) -> Result<Vec<u8>, ReadError> {
        if size > max {
            return Err(ReadError::Format(format!(
                "tar {what} at offset {} is {size} bytes, more than the {max} accepted",
                self.offset
            )));
        }
        let mut body = Vec::new();
        self.r.by_ref().take(size).read_to_end(&mut body)?;
        if (body.len() as u64) < size {
            return Err(ReadError::Format(format!(
                "tar member at offset {} is truncated",
                self.offset
            )));
        }
        skip(&mut self.r, pad512(size))?;
        Ok(body)
    }
}

fn pad512(size: u64) -> u64 {
    (512 - size % 512) % 512
}

impl<R: Read> Read for TarReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let room = usize::try_from(self.left).unwrap_or(usize::MAX);
        let want = buf.len().min(room);
        if want == 0 {
            return Ok(0);
        }
        let n = self.r.read(buf.get_mut(..want).unwrap_or_default())?;
        if n == 0 {
            return Err(invalid(format!(
                "tar member before offset {} is truncated",
                self.offset
            )));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

impl<R: Read> Members for TarReader<R> {
    fn next_member(&mut self) -> Result<Option<Member>, ReadError> {
        if self.done {
            return Ok(None);
        }
        // The rest of the previous member, unread by the caller.
        skip(&mut self.r, self.left.saturating_add(self.pad))?;
        self.left = 0;
        self.pad = 0;
        let mut long_name: Option<String> = None;
        let mut long_link: Option<String> = None;
        let mut pax: Vec<(String, String)> = Vec::new();
        loop {
            let mut h = [0u8; 512];
            // A clean end of input (or a missing end-of-archive block) ends the archive.
            let whole = match read_full(&mut self.r, &mut h) {
                Ok(w) => w,
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => false,
                Err(e) => return Err(e.into()),
            };
            if !whole || h.iter().all(|b| *b == 0) {
                self.done = true;
                // Read on to the end, so that a gzip trailer's CRC is checked (what
                // follows is bounded like the rest of the stream).
                io::copy(&mut self.r, &mut io::sink())?;
                return Ok(None);
            }
            let at = self.offset;
            if !tar_checksum_ok(&h) {
                return Err(ReadError::Format(format!(
                    "tar header at offset {at} has a bad checksum"
                )));
            }
            let field = |a: usize, b: usize| h.get(a..b).unwrap_or_default();
            let mut size = octal(field(124, 136))
                .ok_or_else(|| ReadError::Format("tar header has a bad size".into()))?;
            if let Some((_, v)) = pax.iter().find(|(k, _)| k == "size") {
                size = v
                    .parse()
                    .map_err(|_| ReadError::Format("pax size is not a number".into()))?;
            }
            self.declared = self.declared.saturating_add(size);
            if self.declared > self.limit {
                return Err(ReadError::TooLarge { limit: self.limit });
            }
            self.offset = at
                .saturating_add(512)
                .saturating_add(size)
                .saturating_add(pad512(size));
            let typeflag = h.get(156).copied().unwrap_or(0);
            match typeflag {
                b'L' => {
                    long_name = Some(cstr(&self.small_body(size, MAX_LONG_NAME, "long name")?));
                    continue;
                }
                b'K' => {
                    long_link = Some(cstr(&self.small_body(size, MAX_LONG_NAME, "long link")?));
                    continue;
                }
                b'x' => {
                    pax = pax_records(&self.small_body(size, MAX_PAX, "pax header")?);
                    continue;
                }
                // Global pax headers and GNU volume/multivolume metadata carry no member.
                b'g' | b'V' | b'M' => {
                    skip(&mut self.r, size.saturating_add(pad512(size)))?;
                    continue;
                }
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
            // Only a file's content is offered to the caller; anything else is skipped.
            if kind == Kind::File {
                self.left = size;
                self.pad = pad512(size);
            } else {
                skip(&mut self.r, size.saturating_add(pad512(size)))?;
            }
            return Ok(Some(Member {
                name,
                mode: (num(100, 108) & 0o7777) as u32,
                mtime: num(136, 148),
                size: if kind == Kind::File { size } else { 0 },
                kind,
            }));
        }
    }
}

// ---------------------------------------------------------------------------
// zip

/// Unix file type bits as zip's external attributes carry them.
const S_IFMT: u32 = 0o170_000;
const S_IFLNK: u32 = 0o120_000;
const S_IFDIR: u32 = 0o040_000;
const S_IFREG: u32 = 0o100_000;

/// A member as the central directory describes it.
struct ZipEntry {
    name: String,
    method: u16,
    crc: u32,
    csize: u64,
    usize: u64,
    local: u64,
    unix_mode: u32,
    dos_dir: bool,
    mtime: u64,
}

/// The member whose content is being read.
struct ZipCurrent {
    name: String,
    /// `None` for a stored member.
    inflate: Option<Box<Decompress>>,
    /// Compressed bytes not yet read.
    compressed_left: u64,
    /// The deflate stream has ended.
    stream_end: bool,
    /// What the central directory promises, and what was read so far.
    expect_size: u64,
    expect_crc: u32,
    got: u64,
    crc: crc32fast::Hasher,
    checked: bool,
}

/// Total bytes of member names a zip's central directory may hold in memory.
const MAX_ZIP_NAMES: usize = 64 * 1024 * 1024;

/// Reads a zip file through its central directory (no zip64, no encryption). Each
/// member's content is inflated as it is read; its size and CRC are checked at its
/// end, and more content than the directory declares is an error at once.
struct ZipReader<R> {
    file: BufReader<R>,
    entries: std::vec::IntoIter<ZipEntry>,
    cur: Option<ZipCurrent>,
    declared: u64,
    limit: u64,
}

/// Reads the central directory.
fn zip_directory<R: Read + Seek>(file: &mut BufReader<R>) -> Result<Vec<ZipEntry>, ReadError> {
    let bad = |m: &str| ReadError::Format(m.to_string());
    let len = file.seek(SeekFrom::End(0))?;
    file.seek(SeekFrom::Start(len.saturating_sub(22 + 65_535)))?;
    let mut tail = Vec::new();
    file.read_to_end(&mut tail)?;
    let eocd = (0..=tail.len().saturating_sub(22))
        .rev()
        .find(|i| tail.get(*i..i + 4) == Some(b"PK\x05\x06"))
        .ok_or_else(|| bad("zip file has no end of central directory record"))?;
    let count = le16(&tail, eocd + 10).ok_or_else(|| bad("truncated zip"))?;
    let cd_offset = le32(&tail, eocd + 16).ok_or_else(|| bad("truncated zip"))?;
    if count == 0xffff || cd_offset == 0xffff_ffff {
        return Err(bad("zip64 archives are not supported by this runner"));
    }
    file.seek(SeekFrom::Start(u64::from(cd_offset)))?;
    let mut entries = Vec::with_capacity(usize::from(count));
    let mut names = 0usize;
    for _ in 0..count {
        let mut h = [0u8; 46];
        let at = file.stream_position()?;
        if !read_full(file, &mut h).unwrap_or(false) || h.get(..4) != Some(b"PK\x01\x02") {
            return Err(ReadError::Format(format!(
                "bad zip central directory entry at offset {at}"
            )));
        }
        let g16 = |o: usize| le16(&h, o).unwrap_or(0);
        let g32 = |o: usize| le32(&h, o).unwrap_or(0);
        let (made_by, flags, method) = (g16(4), g16(8), g16(10));
        let (time, date) = (g16(12), g16(14));
        let (nlen, xlen, clen) = (usize::from(g16(28)), g16(30), g16(32));
        let ext = g32(38);
        names += nlen;
        if names > MAX_ZIP_NAMES {
            return Err(bad("zip central directory holds too many names"));
        }
        let mut name = vec![0u8; nlen];
        if !read_full(file, &mut name).unwrap_or(false) && nlen > 0 {
            return Err(bad("truncated zip name"));
        }
        let name = String::from_utf8_lossy(&name).into_owned();
        file.seek_relative(i64::from(xlen) + i64::from(clen))?;
        if flags & 1 != 0 {
            return Err(ReadError::Format(format!("zip member {name} is encrypted")));
        }
        // Unix-made entries carry st_mode in the high half of the external attributes.
        let unix_mode = if made_by >> 8 == 3 { ext >> 16 } else { 0 };
        entries.push(ZipEntry {
            name,
            method,
            crc: g32(16),
            csize: u64::from(g32(20)),
            usize: u64::from(g32(24)),
            local: u64::from(g32(42)),
            unix_mode,
            dos_dir: ext & 0x10 != 0,
            mtime: from_dos(date, time),
        });
    }
    Ok(entries)
}

impl<R: Read + Seek> ZipReader<R> {
    fn new(r: R, limit: u64) -> Result<ZipReader<R>, ReadError> {
        let mut file = BufReader::new(r);
        let entries = zip_directory(&mut file)?;
        Ok(ZipReader {
            file,
            entries: entries.into_iter(),
            cur: None,
            declared: 0,
            limit,
        })
    }

    /// Moves to `e`'s content, after its local header.
    fn start(&mut self, e: &ZipEntry) -> Result<(), ReadError> {
        let mut h = [0u8; 30];
        self.file.seek(SeekFrom::Start(e.local))?;
        if !read_full(&mut self.file, &mut h).unwrap_or(false) || h.get(..4) != Some(b"PK\x03\x04")
        {
            return Err(ReadError::Format(format!(
                "zip member {} has no local header",
                e.name
            )));
        }
        let skip_len = i64::from(le16(&h, 26).unwrap_or(0)) + i64::from(le16(&h, 28).unwrap_or(0));
        self.file.seek_relative(skip_len)?;
        let inflate = match e.method {
            0 => None,
            8 => Some(Box::new(Decompress::new(false))),
            m => {
                return Err(ReadError::Format(format!(
                    "zip member {} uses unsupported compression method {m}",
                    e.name
                )));
            }
        };
        self.cur = Some(ZipCurrent {
            name: e.name.clone(),
            inflate,
            compressed_left: e.csize,
            stream_end: false,
            expect_size: e.usize,
            expect_crc: e.crc,
            got: 0,
            crc: crc32fast::Hasher::new(),
            checked: false,
        });
        Ok(())
    }
}

impl<R: Read + Seek> Read for ZipReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let Some(c) = &mut self.cur else {
            return Ok(0);
        };
        if c.checked || buf.is_empty() {
            return Ok(0);
        }
        let room = usize::try_from(c.compressed_left).unwrap_or(usize::MAX);
        let n = match &mut c.inflate {
            None => {
                let want = buf.len().min(room);
                if want == 0 {
                    0
                } else {
                    let n = self.file.read(buf.get_mut(..want).unwrap_or_default())?;
                    if n == 0 {
                        return Err(invalid(format!("zip member {} is truncated", c.name)));
                    }
                    c.compressed_left -= n as u64;
                    n
                }
            }
            Some(_) if c.stream_end => 0,
            Some(state) => loop {
                let avail = self.file.fill_buf()?;
                let avail = avail.get(..avail.len().min(room)).unwrap_or_default();
                let (in0, out0) = (state.total_in(), state.total_out());
                let status = state
                    .decompress(avail, buf, FlushDecompress::None)
                    .map_err(|e| invalid(format!("zip member {}: {e}", c.name)))?;
                let consumed = state.total_in() - in0;
                let written = usize::try_from(state.total_out() - out0).unwrap_or(0);
                // At most `avail.len()`, so it fits.
                self.file.consume(usize::try_from(consumed).unwrap_or(0));
                c.compressed_left -= consumed;
                match status {
                    Status::StreamEnd => {
                        c.stream_end = true;
                        break written;
                    }
                    _ if written > 0 => break written,
                    _ if consumed > 0 => {}
                    _ => return Err(invalid(format!("zip member {} is truncated", c.name))),
                }
            },
        };
        let out = buf.get(..n).unwrap_or_default();
        c.crc.update(out);
        c.got += n as u64;
        if c.got > c.expect_size {
            return Err(invalid(format!(
                "zip member {} holds more than the {} bytes it declares",
                c.name, c.expect_size
            )));
        }
        if n == 0 {
            c.checked = true;
            if c.got != c.expect_size || c.crc.clone().finalize() != c.expect_crc {
                return Err(invalid(format!(
                    "zip member {} fails its CRC or size check",
                    c.name
                )));
            }
        }
        Ok(n)
    }
}

impl<R: Read + Seek> Members for ZipReader<R> {
    fn next_member(&mut self) -> Result<Option<Member>, ReadError> {
        self.cur = None;
        let Some(e) = self.entries.next() else {
            return Ok(None);
        };
        self.declared = self.declared.saturating_add(e.usize);
        if self.declared > self.limit {
            return Err(ReadError::TooLarge { limit: self.limit });
        }
        self.start(&e)?;
        let is_dir = e.name.ends_with('/') || e.unix_mode & S_IFMT == S_IFDIR || e.dos_dir;
        let kind = if e.unix_mode & S_IFMT == S_IFLNK {
            // A symlink's target is its content.
            if e.usize > MAX_ZIP_NAME as u64 {
                return Err(ReadError::Format(format!(
                    "zip symlink {} has a target of {} bytes",
                    e.name, e.usize
                )));
            }
            let mut target = Vec::new();
            self.read_to_end(&mut target)?;
            Kind::Symlink(String::from_utf8_lossy(&target).into_owned())
        } else if is_dir {
            Kind::Dir
        } else {
            Kind::File
        };
        let perms = e.unix_mode & 0o7777;
        let mode = match (&kind, perms) {
            (_, p) if p != 0 => p,
            (Kind::Dir, _) => 0o755,
            _ => 0o644,
        };
        let size = if kind == Kind::File { e.usize } else { 0 };
        if kind != Kind::File {
            self.cur = None;
        }
        Ok(Some(Member {
            name: e.name,
            kind,
            mode,
            mtime: e.mtime,
            size,
        }))
    }
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
// zip writing

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
        let crc = crc32fast::hash(body);
        let deflated = deflate(body);
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
pub(crate) mod tests {
    use super::*;
    use std::process::Command;

    fn read_tar(data: &[u8]) -> Vec<Entry> {
        read_all(data, None, u64::MAX).unwrap().1
    }

    fn read_zip(data: &[u8]) -> Vec<Entry> {
        read_all(data, None, u64::MAX).unwrap().1
    }

    /// The content of a gzip file's single member (as a tar would be read).
    fn gunzip(data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        Gunzip::new(io::Cursor::new(data))
            .read_to_end(&mut out)
            .unwrap();
        out
    }

    fn unzstd(data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        ruzstd::decoding::StreamingDecoder::new(data)
            .unwrap()
            .read_to_end(&mut out)
            .unwrap();
        out
    }

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
            assert_eq!(
                read_all(&bytes, None, u64::MAX).unwrap(),
                (Format::Tar, Vec::new())
            );
        }
        assert!(read_all(&[0u8; 100], None, u64::MAX).is_err());
    }

    #[test]
    fn crc_and_gzip_match_real_tools() {
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
        assert_eq!(gunzip(&gz), b"from gzip\n");
        assert_eq!(unzstd(&zstd(b"zstd round trip")), b"zstd round trip");
    }

    /// Regression: only a gzip file's first member was inflated, so a `.tar.gz` made of
    /// several members (`cat a.gz b.gz`, pigz, bgzip) came back silently cut short.
    #[test]
    fn multi_member_gzip_was_silently_truncated() {
        let t = tempfile::tempdir().unwrap();
        let sh = |script: &str| {
            let ok = Command::new("sh")
                .args(["-ec", script])
                .current_dir(t.path())
                .status()
                .unwrap()
                .success();
            assert!(ok, "{script}");
        };
        // A real tar split in the middle of the second file's content, each half
        // gzipped on its own, the two members concatenated.
        sh(
            "mkdir d && printf one > d/a.txt && head -c 5000 /dev/urandom > d/b.bin \
            && tar cf x.tar d/a.txt d/b.bin \
            && head -c 2000 x.tar | gzip -c > a.gz && tail -c +2001 x.tar | gzip -c > b.gz \
            && cat a.gz b.gz > x.tar.gz && gzip -t x.tar.gz",
        );
        let gz = std::fs::read(t.path().join("x.tar.gz")).unwrap();
        assert_eq!(gunzip(&gz), std::fs::read(t.path().join("x.tar")).unwrap());
        let (format, members) = read_all(&gz, None, u64::MAX).unwrap();
        assert_eq!(format, Format::TarGz);
        let names: Vec<&str> = members.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["d/a.txt", "d/b.bin"]);
        assert_eq!(
            members[1].data,
            std::fs::read(t.path().join("d/b.bin")).unwrap()
        );
    }

    #[test]
    fn tar_round_trips_and_gnu_tar_agrees() {
        let t = tempfile::tempdir().unwrap();
        let bytes = write_tar(&sample());
        assert_eq!(read_tar(&bytes).len(), 4);
        let back = read_tar(&bytes);
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
        let got = read_tar(&std::fs::read(&gnu).unwrap());
        let f = got.iter().find(|e| e.name.ends_with("/f")).unwrap();
        assert_eq!(f.name, format!("./{}/f", "x".repeat(110)));
        assert_eq!(f.data, b"gnu");
    }

    #[test]
    fn zip_round_trips_and_unzip_or_python_agrees() {
        let bytes = write_zip(&sample());
        let back = read_zip(&bytes);
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
        let got = read_zip(&std::fs::read(&made).unwrap());
        assert_eq!(got[0].data, "abc".repeat(100).as_bytes());
        assert_eq!(sniff(&std::fs::read(&made).unwrap()).unwrap(), Format::Zip);
    }

    /// Headers declare no content at all here, yet the decompressed stream is still
    /// bounded: the limit counts what gzip and zstd produce, not only what tar declares.
    #[test]
    fn decompressed_streams_are_bounded_even_when_headers_declare_nothing() {
        let empties: Vec<Entry> = (0..200)
            .map(|i| entry(&format!("e{i}"), Kind::File, b""))
            .collect();
        let tar = write_tar(&empties);
        for packed in [gzip(&tar), zstd(&tar)] {
            let err = read_all(&packed, None, 16 * 1024).unwrap_err();
            assert!(
                matches!(err, ReadError::TooLarge { limit: 16384 }),
                "{err:?}"
            );
            assert_eq!(read_all(&packed, None, 1 << 20).unwrap().1.len(), 200);
        }
        // Declared sizes count too, before any content is read.
        let big = write_tar(&[entry("a", Kind::File, &[7u8; 5000])]);
        assert!(matches!(
            read_all(&big, None, 4096).unwrap_err(),
            ReadError::TooLarge { limit: 4096 }
        ));
        assert_eq!(human_size(1 << 30), "1 GiB");
        assert_eq!(human_size(1000), "1000 bytes");
    }

    /// A zip member that inflates to more than its central directory entry declares is
    /// refused as soon as it shows, not after inflating it all.
    #[test]
    fn a_zip_member_larger_than_declared_is_refused() {
        let zeros = vec![0u8; 1 << 20];
        let mut zip = write_zip(&[entry("z.bin", Kind::File, &zeros)]);
        let cd = zip.windows(4).position(|w| w == b"PK\x01\x02").unwrap();
        zip[cd + 24..cd + 28].copy_from_slice(&10u32.to_le_bytes());
        let err = read_all(&zip, None, u64::MAX).unwrap_err().to_string();
        assert!(err.contains("more than the 10 bytes it declares"), "{err}");
    }

    #[test]
    fn damaged_gzip_and_truncated_tar_are_errors_not_panics() {
        let tar = write_tar(&sample());
        let mut gz = gzip(&tar);
        let n = gz.len();
        gz[n - 8] ^= 0xff;
        let err = read_all(&gz, None, u64::MAX).unwrap_err().to_string();
        assert!(err.contains("not a valid gzip file"), "{err}");
        assert!(err.contains("checksum"), "{err}");
        // Cut in the middle of d/a.txt's content.
        let short = gzip(&tar[..1024 + 5]);
        let err = read_all(&short, None, u64::MAX).unwrap_err().to_string();
        assert!(err.contains("truncated"), "{err}");
        for cut in [0usize, 3, 11, 100, 600] {
            let g = gzip(&tar);
            let _ = read_all(&g[..cut.min(g.len())], None, u64::MAX);
            let _ = read_all(&tar[..cut], None, u64::MAX);
        }
    }
}
