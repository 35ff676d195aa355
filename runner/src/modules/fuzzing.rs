//! Entry points for the fuzz targets in `fuzz/`, compiled only with the `fuzzing` feature.
//!
//! The archive readers and writers are private to the modules: the unarchive and archive
//! modules are their only callers, and fuzzing through those would spend each run on the
//! file system instead of the parsers. These two functions are the narrowest way in, and
//! they exist in no runner that ships (the feature is off in every normal build).

use super::archive_fmt::{self, Entry, Format, Kind};

/// Reads `data` with every archive reader unarchive has: the format it sniffs (as
/// unarchive does), and each reader on its own, since sniffing picks only one and a
/// hostile file is free to look like one format and be read as another. Returns the
/// number of members found, so the work cannot be optimised away.
pub fn read_archives(data: &[u8]) -> usize {
    // Bounded as unarchive bounds them, but small: a fuzz run must not spend its time
    // (or memory) inflating one input.
    const LIMIT: u64 = 64 << 20;
    let mut members = 0;
    let formats = [
        None,
        Some(Format::Tar),
        Some(Format::TarGz),
        Some(Format::TarZst),
        Some(Format::Zip),
    ];
    for format in formats {
        if let Ok((_, entries)) = archive_fmt::read_all(data, format, LIMIT) {
            members += entries.len();
        }
    }
    for zstd in [false, true] {
        if let Ok(plain) = archive_fmt::decompress(data, zstd, LIMIT) {
            members += usize::from(!plain.is_empty());
        }
    }
    members
}

/// A reader over the fuzzer's bytes that yields zeros once they run out, so every input,
/// however short, describes some list of members.
struct Bytes<'a> {
    data: &'a [u8],
}

impl Bytes<'_> {
    fn byte(&mut self) -> u8 {
        let (first, rest) = self.data.split_first().unwrap_or((&0, &[]));
        self.data = rest;
        *first
    }

    fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.byte(), self.byte(), self.byte(), self.byte()])
    }

    fn take(&mut self, n: usize) -> &[u8] {
        let (head, rest) = self.data.split_at(n.min(self.data.len()));
        self.data = rest;
        head
    }

    /// A member name or link target as the archive module collects them from disk: no
    /// NUL (a file name cannot hold one), never empty. Lengths up to 255 bytes, so names
    /// over tar's 100-byte field (written through a pax header) come up often.
    fn name(&mut self) -> String {
        let n = usize::from(self.byte());
        let raw = self.take(n);
        let text: String = String::from_utf8_lossy(raw)
            .chars()
            .filter(|c| *c != '\0')
            .collect();
        let text = text.trim_end_matches('/').to_string();
        if text.is_empty() { "x".into() } else { text }
    }
}

/// The members the archive module could write, decoded from the fuzzer's bytes.
fn entries_from(data: &[u8]) -> Vec<Entry> {
    let mut b = Bytes { data };
    let count = usize::from(b.byte() % 8);
    let mut entries = Vec::with_capacity(count);
    for _ in 0..count {
        let tag = b.byte();
        let name = b.name();
        let kind = match tag % 4 {
            0 => Kind::File,
            1 => Kind::Dir,
            2 => Kind::Symlink(b.name()),
            _ => Kind::Hardlink(b.name()),
        };
        let mode = b.u32() & 0o7777;
        let mtime = u64::from(b.u32());
        let uid = b.u32();
        let gid = b.u32();
        let size = usize::from(b.byte()) * 16;
        let data = if kind == Kind::File {
            b.take(size).to_vec()
        } else {
            Vec::new()
        };
        entries.push(Entry {
            name,
            kind,
            mode,
            mtime,
            uid,
            gid,
            data,
        });
    }
    entries
}

/// What reading a tar the archive module wrote must give back for `e`: directories gain a
/// trailing slash, ids and times are clamped to what the octal fields hold.
fn tar_expected(e: &Entry) -> Entry {
    let mut want = e.clone();
    if want.kind == Kind::Dir {
        want.name.push('/');
    }
    // The streaming reader does not report owners: unarchive sets only the
    // owner and group its task names, never the archive's.
    want.uid = 0;
    want.gid = 0;
    want.mtime = want.mtime.min(0o77_777_777_777);
    want
}

/// The same for zip: no owners, a hard link is stored as the (empty) file it names,
/// mode 0 reads back as the default mode, and times have DOS's two-second steps from
/// 1980 (earlier times are stored as 1980-01-01).
fn zip_expected(e: &Entry) -> Entry {
    let mut want = e.clone();
    want.uid = 0;
    want.gid = 0;
    if let Kind::Hardlink(_) = want.kind {
        want.kind = Kind::File;
    }
    if want.kind == Kind::Dir {
        want.name.push('/');
    }
    if want.mode == 0 {
        want.mode = if want.kind == Kind::Dir { 0o755 } else { 0o644 };
    }
    const DOS_EPOCH: u64 = 315_532_800;
    want.mtime = want.mtime.max(DOS_EPOCH) & !1;
    want
}

/// Writes the members the fuzzer's bytes describe in every format the archive module
/// writes, reads each back with unarchive's reader, and says what differs, if anything.
/// Also checks the single-file gzip and zstd wrappers (`archive` of one file) on the raw
/// bytes. Times are limited to before 2108, the end of DOS time.
pub fn archive_round_trip(data: &[u8]) -> Result<(), String> {
    for (name, packed) in [
        (
            "gzip",
            archive_fmt::decompress(&archive_fmt::gzip(data), false, u64::MAX),
        ),
        (
            "zstd",
            archive_fmt::decompress(&archive_fmt::zstd(data), true, u64::MAX),
        ),
    ] {
        match packed {
            Ok(plain) if plain == data => {}
            Ok(plain) => {
                return Err(format!(
                    "{name}: {} bytes in, {} different bytes out",
                    data.len(),
                    plain.len()
                ));
            }
            Err(e) => return Err(format!("{name}: cannot read what was written: {e}")),
        }
    }
    const END_OF_DOS_TIME: u64 = 4_354_819_199;
    let mut entries = entries_from(data);
    for e in &mut entries {
        e.mtime = e.mtime.min(END_OF_DOS_TIME);
    }
    let tar = archive_fmt::write_tar(&entries);
    let cases = [
        (Format::Tar, tar.clone()),
        (Format::TarGz, archive_fmt::gzip(&tar)),
        (Format::TarZst, archive_fmt::zstd(&tar)),
        (Format::Zip, archive_fmt::write_zip(&entries)),
    ];
    for (format, bytes) in cases {
        let expected: Vec<Entry> = entries
            .iter()
            .map(|e| {
                if format == Format::Zip {
                    zip_expected(e)
                } else {
                    tar_expected(e)
                }
            })
            .collect();
        let (found, read) = archive_fmt::read_all(&bytes, None, u64::MAX)
            .map_err(|e| format!("{format:?}: cannot read what was written: {e}"))?;
        if found != format {
            return Err(format!("{format:?} written, {found:?} sniffed"));
        }
        if read != expected {
            return Err(format!(
                "{format:?}: wrote {expected:?}\nread back {read:?}"
            ));
        }
    }
    Ok(())
}
