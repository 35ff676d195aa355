//! Finds the packed payload (the `.rustle` section) inside the runner's own executable.
//!
//! The packer (`rustle_deploy::elf`) appends the payload to a copy of the runner, maps it
//! with a read-only `PT_LOAD` and describes it with an allocated `.rustle` section header.
//! This module finds that section again by reading the executable file's ELF header, its
//! section header table and its section name table, then only the payload bytes. It never
//! trusts the file: every offset and size is checked against the file's length, so a
//! hostile or damaged file gives a [`LocateError`], never a panic or a huge allocation.
//!
//! The ELF header is read from the file, not guessed from `AT_PHDR - 64`: nothing obliges
//! the program header table to follow the ELF header, and `strip` may move it.
//!
//! On macOS the packer (`rustle_deploy::macho`) puts the payload in the `__payload`
//! section of a `__RUSTLE` segment instead; that is found by walking the Mach-O load
//! commands, with the same checks. Only thin 64-bit little-endian files are read.
//!
//! This module depends on nothing but `std` and `thiserror` on purpose: the packer's
//! end-to-end test compiles it on its own into tiny static programs to check real packed
//! binaries, stripped or not.

use std::borrow::Cow;
use std::fs::File;
use std::path::{Path, PathBuf};

/// Name of the section that holds the payload. The packer writes it, the runner looks it up.
pub const SECTION_NAME: &str = ".rustle";

/// Mach-O segment that holds the payload (`rustle_deploy::macho` writes it).
pub const MACHO_SEGMENT: &str = "__RUSTLE";

/// Section of [`MACHO_SEGMENT`] that holds the payload.
pub const MACHO_SECTION: &str = "__payload";

/// Why the payload could not be found in an executable.
#[derive(Debug, thiserror::Error)]
pub enum LocateError {
    /// The executable could not be opened or read.
    #[error("cannot read executable {}", path.display())]
    Io {
        /// The file being read.
        path: PathBuf,
        /// The underlying I/O error.
        source: std::io::Error,
    },
    /// The bytes are not an executable format rustle knows (neither ELF nor Mach-O).
    #[error("not an ELF executable (bad magic number)")]
    NotElf,
    /// A known format, but a variant this runner cannot read (32-bit, big-endian, Mach-O...).
    #[error("unsupported executable: {0}")]
    Unsupported(String),
    /// A well-formed executable without a `.rustle` section: an unpacked runner.
    #[error("no {SECTION_NAME} payload section in this executable (is it an unpacked runner?)")]
    NoPayload,
    /// Headers that are truncated, inconsistent or point outside the file.
    #[error("malformed executable: {0}")]
    Malformed(String),
}

/// Finds the `.rustle` section in an executable image held in memory.
///
/// Returns the section's contents, borrowed from `image`.
pub fn find_payload(image: &[u8]) -> Result<&[u8], LocateError> {
    let range = locate(&MemImage(image))?;
    let (start, end) = range.bounds()?;
    image
        .get(start..end)
        .ok_or_else(|| LocateError::Malformed("payload section lies outside the image".into()))
}

/// Reads the running executable and returns its payload bytes.
///
/// The executable is the one [`own_executable`] names. Only the headers, the section
/// name table and the payload itself are read.
pub fn read_own_payload() -> Result<Vec<u8>, LocateError> {
    read_payload_from(&own_executable()?)
}

/// Reads the payload of the executable file at `path`, like [`read_own_payload`].
pub fn read_payload_from(path: &Path) -> Result<Vec<u8>, LocateError> {
    let io = |source| LocateError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = File::open(path).map_err(io)?;
    let len = file.metadata().map_err(io)?.len();
    let image = FileImage {
        file,
        len,
        path: path.to_path_buf(),
    };
    let range = locate(&image)?;
    Ok(image
        .read(range.offset, range.size, "payload section")?
        .into_owned())
}

/// The running executable, as a path that opens it: the one place the runner asks
/// "which file am I", for its payload, its `--expect-file` check and its install.
///
/// On Linux this is `/proc/self/exe`, which opens the file that was executed even if it
/// has since been renamed or deleted (`std::fs::canonicalize` of it gives its current
/// name). Elsewhere (macOS has no procfs) it is [`std::env::current_exe`], the
/// platform's own answer (`_NSGetExecutablePath` on macOS).
#[cfg(target_os = "linux")]
pub fn own_executable() -> Result<PathBuf, LocateError> {
    Ok(PathBuf::from("/proc/self/exe"))
}

/// The running executable, as a path that opens it (see the Linux variant).
#[cfg(not(target_os = "linux"))]
pub fn own_executable() -> Result<PathBuf, LocateError> {
    std::env::current_exe().map_err(|source| LocateError::Io {
        path: PathBuf::from("<current executable>"),
        source,
    })
}

/// Where the payload lies in the file.
#[derive(Debug, Clone, Copy)]
struct Range {
    offset: u64,
    size: u64,
}

impl Range {
    fn bounds(self) -> Result<(usize, usize), LocateError> {
        let too_big = || LocateError::Malformed("payload section too large for memory".into());
        let start = usize::try_from(self.offset).map_err(|_| too_big())?;
        let size = usize::try_from(self.size).map_err(|_| too_big())?;
        Ok((start, start.checked_add(size).ok_or_else(too_big)?))
    }
}

/// Random access to an executable, so one parser serves both a buffer and a file on disk
/// (where reading only the few pieces needed keeps start-up cheap for large payloads).
trait Image {
    /// Total length in bytes.
    fn len(&self) -> u64;
    /// Reads `size` bytes at `offset`; `what` names them in the error if they do not fit.
    fn read(&self, offset: u64, size: u64, what: &str) -> Result<Cow<'_, [u8]>, LocateError>;
}

/// Checks that `size` bytes at `offset` fit in a file of `len` bytes, with the error
/// naming what was being read.
fn check_fits(len: u64, offset: u64, size: u64, what: &str) -> Result<(), LocateError> {
    match offset.checked_add(size) {
        Some(end) if end <= len => Ok(()),
        _ => Err(LocateError::Malformed(format!(
            "{what} ({size} bytes at offset {offset}) extends past the end of the file ({len} bytes)"
        ))),
    }
}

struct MemImage<'a>(&'a [u8]);

impl Image for MemImage<'_> {
    fn len(&self) -> u64 {
        // usize is at most 64 bits on every platform Rust supports.
        u64::try_from(self.0.len()).unwrap_or(u64::MAX)
    }

    fn read(&self, offset: u64, size: u64, what: &str) -> Result<Cow<'_, [u8]>, LocateError> {
        check_fits(self.len(), offset, size, what)?;
        let (start, end) = Range { offset, size }.bounds()?;
        self.0
            .get(start..end)
            .map(Cow::Borrowed)
            .ok_or_else(|| LocateError::Malformed(format!("{what} lies outside the image")))
    }
}

struct FileImage {
    file: File,
    len: u64,
    path: PathBuf,
}

impl Image for FileImage {
    fn len(&self) -> u64 {
        self.len
    }

    fn read(&self, offset: u64, size: u64, what: &str) -> Result<Cow<'_, [u8]>, LocateError> {
        // The bound check comes first so a hostile size never becomes an allocation
        // larger than the file itself.
        check_fits(self.len, offset, size, what)?;
        let size = usize::try_from(size)
            .map_err(|_| LocateError::Malformed(format!("{what} too large for memory")))?;
        let mut buf = vec![0; size];
        read_exact_at(&self.file, &mut buf, offset).map_err(|source| LocateError::Io {
            path: self.path.clone(),
            source,
        })?;
        Ok(Cow::Owned(buf))
    }
}

#[cfg(unix)]
fn read_exact_at(file: &File, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
    std::os::unix::fs::FileExt::read_exact_at(file, buf, offset)
}

#[cfg(not(unix))]
fn read_exact_at(mut file: &File, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
    use std::io::{Read, Seek, SeekFrom};
    file.seek(SeekFrom::Start(offset))?;
    file.read_exact(buf)
}

/// The executable formats this module can tell apart by their first bytes.
enum Format {
    Elf,
    MachO,
}

fn sniff(head: &[u8]) -> Result<Format, LocateError> {
    match head.get(..4) {
        Some(b"\x7fELF") => Ok(Format::Elf),
        // MH_MAGIC_64 and MH_MAGIC as stored little-endian, and FAT_MAGIC / FAT_MAGIC_64
        // (big-endian).
        Some(
            [0xcf, 0xfa, 0xed, 0xfe]
            | [0xce, 0xfa, 0xed, 0xfe]
            | [0xca, 0xfe, 0xba, 0xbe]
            | [0xca, 0xfe, 0xba, 0xbf],
        ) => Ok(Format::MachO),
        _ => Err(LocateError::NotElf),
    }
}

/// Finds the payload's place in `image`, whatever its format.
fn locate(image: &impl Image) -> Result<Range, LocateError> {
    let head = image.read(0, image.len().min(EHDR_SIZE), "file header")?;
    match sniff(&head)? {
        Format::Elf => locate_elf(image, &head),
        Format::MachO => locate_macho(image, &head),
    }
}

const EHDR_SIZE: u64 = 64;
const SHDR_SIZE: u64 = 64;
const ELFCLASS32: u8 = 1;
const ELFCLASS64: u8 = 2;
const ELFDATA2LSB: u8 = 1;
const ELFDATA2MSB: u8 = 2;
const SHT_NOBITS: u32 = 8;
/// `e_shstrndx` value meaning "the real index is in section 0's `sh_link`".
const SHN_XINDEX: u16 = 0xffff;

/// Little-endian field reads on a header buffer; a short buffer is a malformed file.
fn field<const N: usize>(buf: &[u8], at: usize, what: &str) -> Result<[u8; N], LocateError> {
    at.checked_add(N)
        .and_then(|end| buf.get(at..end))
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| LocateError::Malformed(format!("truncated {what}")))
}

fn u16_at(buf: &[u8], at: usize, what: &str) -> Result<u16, LocateError> {
    field(buf, at, what).map(u16::from_le_bytes)
}

fn u32_at(buf: &[u8], at: usize, what: &str) -> Result<u32, LocateError> {
    field(buf, at, what).map(u32::from_le_bytes)
}

fn u64_at(buf: &[u8], at: usize, what: &str) -> Result<u64, LocateError> {
    field(buf, at, what).map(u64::from_le_bytes)
}

/// The few fields of an ELF64 section header this module needs.
struct Shdr {
    name: u32,
    kind: u32,
    offset: u64,
    size: u64,
    link: u32,
}

impl Shdr {
    fn parse(raw: &[u8]) -> Result<Self, LocateError> {
        const WHAT: &str = "section header";
        Ok(Self {
            name: u32_at(raw, 0, WHAT)?,
            kind: u32_at(raw, 4, WHAT)?,
            offset: u64_at(raw, 24, WHAT)?,
            size: u64_at(raw, 32, WHAT)?,
            link: u32_at(raw, 40, WHAT)?,
        })
    }
}

fn locate_elf(image: &impl Image, ehdr: &[u8]) -> Result<Range, LocateError> {
    const WHAT: &str = "ELF header";
    if u64::try_from(ehdr.len()).ok() != Some(EHDR_SIZE) {
        return Err(LocateError::Malformed(
            "file is shorter than an ELF header".into(),
        ));
    }
    match (ehdr.get(4).copied(), ehdr.get(5).copied()) {
        (Some(ELFCLASS64), Some(ELFDATA2LSB)) => {}
        (Some(ELFCLASS32), _) => return Err(LocateError::Unsupported("32-bit ELF".into())),
        (Some(ELFCLASS64), Some(ELFDATA2MSB)) => {
            return Err(LocateError::Unsupported("big-endian ELF".into()));
        }
        (class, data) => {
            return Err(LocateError::Malformed(format!(
                "bad ELF class {class:?} or data encoding {data:?}"
            )));
        }
    }
    let shoff = u64_at(ehdr, 40, WHAT)?;
    let shentsize = u16_at(ehdr, 58, WHAT)?;
    let e_shnum = u16_at(ehdr, 60, WHAT)?;
    let e_shstrndx = u16_at(ehdr, 62, WHAT)?;
    if shoff == 0 {
        // Legal (e.g. after `sstrip`), but then there is no section to find.
        return Err(LocateError::NoPayload);
    }
    if u64::from(shentsize) != SHDR_SIZE {
        return Err(LocateError::Malformed(format!(
            "section header size {shentsize}, expected {SHDR_SIZE}"
        )));
    }

    // Section 0 carries the real count and name-table index when they overflow the
    // 16-bit header fields (extended section numbering).
    let first = Shdr::parse(&image.read(shoff, SHDR_SIZE, "section header table")?)?;
    let shnum = if e_shnum == 0 {
        first.size
    } else {
        u64::from(e_shnum)
    };
    let shstrndx = if e_shstrndx == SHN_XINDEX {
        u64::from(first.link)
    } else {
        u64::from(e_shstrndx)
    };
    let table_size = shnum.checked_mul(SHDR_SIZE).ok_or_else(|| {
        LocateError::Malformed(format!("section count {shnum} overflows the file"))
    })?;
    // Bounded by the file length inside `read`, so `shnum` cannot be absurd below.
    let table = image.read(shoff, table_size, "section header table")?;
    let header = |index: u64| -> Result<Shdr, LocateError> {
        let start = index
            .checked_mul(SHDR_SIZE)
            .and_then(|s| usize::try_from(s).ok())
            .ok_or_else(|| LocateError::Malformed(format!("section index {index} overflows")))?;
        let raw = start
            .checked_add(64)
            .and_then(|end| table.get(start..end))
            .ok_or_else(|| {
                LocateError::Malformed(format!(
                    "section index {index} is outside the table of {shnum}"
                ))
            })?;
        Shdr::parse(raw)
    };

    let names_hdr = header(shstrndx)?;
    if names_hdr.kind == SHT_NOBITS {
        return Err(LocateError::Malformed(
            "section name table has no contents".into(),
        ));
    }
    let names = image.read(names_hdr.offset, names_hdr.size, "section name table")?;

    let mut found: Option<Range> = None;
    for index in 0..shnum {
        let shdr = header(index)?;
        if !name_is(&names, shdr.name, SECTION_NAME) {
            continue;
        }
        if found.is_some() {
            return Err(LocateError::Malformed(format!(
                "more than one {SECTION_NAME} section"
            )));
        }
        if shdr.kind == SHT_NOBITS {
            return Err(LocateError::Malformed(format!(
                "the {SECTION_NAME} section has no contents in the file (SHT_NOBITS)"
            )));
        }
        check_fits(image.len(), shdr.offset, shdr.size, "payload section")?;
        found = Some(Range {
            offset: shdr.offset,
            size: shdr.size,
        });
    }
    found.ok_or(LocateError::NoPayload)
}

const MACHO_HEADER_SIZE: u64 = 32;
const MACHO_SEGMENT_CMD_SIZE: usize = 72;
const MACHO_SECTION_SIZE: usize = 80;
const LC_SEGMENT_64: u32 = 0x19;
/// Section types that have no contents in the file (S_ZEROFILL, S_GB_ZEROFILL,
/// S_THREAD_LOCAL_ZEROFILL).
const MACHO_ZEROFILL_TYPES: [u32; 3] = [0x1, 0xc, 0x12];

/// Finds the `__RUSTLE,__payload` section of a thin 64-bit little-endian Mach-O file by
/// walking its load commands. A universal (fat) file is refused: the packer only writes
/// thin ones, and picking a slice would need to know which one the kernel ran.
fn locate_macho(image: &impl Image, head: &[u8]) -> Result<Range, LocateError> {
    const WHAT: &str = "Mach-O header";
    match head.get(..4) {
        Some([0xcf, 0xfa, 0xed, 0xfe]) => {}
        Some([0xce, 0xfa, 0xed, 0xfe]) => {
            return Err(LocateError::Unsupported("32-bit Mach-O".into()));
        }
        _ => {
            return Err(LocateError::Unsupported(
                "universal (fat) Mach-O: packed runners are thin, one per architecture".into(),
            ));
        }
    }
    if (head.len() as u64) < MACHO_HEADER_SIZE {
        return Err(LocateError::Malformed(
            "file is shorter than a Mach-O header".into(),
        ));
    }
    let ncmds = u32_at(head, 16, WHAT)?;
    let sizeofcmds = u32_at(head, 20, WHAT)?;
    // Bounded by the file length inside `read`.
    let cmds = image.read(MACHO_HEADER_SIZE, u64::from(sizeofcmds), "load commands")?;

    let mut found: Option<Range> = None;
    let mut at = 0usize;
    for index in 0..ncmds {
        const CMD: &str = "load command";
        let kind = u32_at(&cmds, at, CMD)?;
        let size = usize::try_from(u32_at(&cmds, at.saturating_add(4), CMD)?).unwrap_or(0);
        let raw = at
            .checked_add(size)
            .and_then(|end| cmds.get(at..end))
            .filter(|raw| raw.len() >= 8)
            .ok_or_else(|| {
                LocateError::Malformed(format!(
                    "load command {index} (size {size}) does not fit the load command area"
                ))
            })?;
        at = at.saturating_add(size);
        if kind != LC_SEGMENT_64 || !fixed_name_is(raw, 8, MACHO_SEGMENT) {
            continue;
        }
        const SEG: &str = "segment command";
        let fileoff = u64_at(raw, 40, SEG)?;
        let filesize = u64_at(raw, 48, SEG)?;
        let nsects = usize::try_from(u32_at(raw, 64, SEG)?).unwrap_or(usize::MAX);
        let fits = nsects
            .checked_mul(MACHO_SECTION_SIZE)
            .and_then(|s| s.checked_add(MACHO_SEGMENT_CMD_SIZE))
            .is_some_and(|end| end <= raw.len());
        if !fits {
            return Err(LocateError::Malformed(format!(
                "the {MACHO_SEGMENT} segment command is too small for its {nsects} sections"
            )));
        }
        for s in 0..nsects {
            const SECT: &str = "section header";
            let base = MACHO_SEGMENT_CMD_SIZE + s * MACHO_SECTION_SIZE;
            if !fixed_name_is(raw, base, MACHO_SECTION) {
                continue;
            }
            if found.is_some() {
                return Err(LocateError::Malformed(format!(
                    "more than one {MACHO_SEGMENT},{MACHO_SECTION} section"
                )));
            }
            let size = u64_at(raw, base + 40, SECT)?;
            let offset = u64::from(u32_at(raw, base + 48, SECT)?);
            let flags = u32_at(raw, base + 64, SECT)?;
            if MACHO_ZEROFILL_TYPES.contains(&(flags & 0xff)) {
                return Err(LocateError::Malformed(format!(
                    "the {MACHO_SEGMENT},{MACHO_SECTION} section has no contents in the file (zerofill)"
                )));
            }
            // The section must lie inside its segment's file range, itself inside the file.
            let in_segment = offset >= fileoff
                && offset.checked_add(size).is_some_and(|end| {
                    fileoff
                        .checked_add(filesize)
                        .is_some_and(|seg_end| end <= seg_end)
                });
            if !in_segment {
                return Err(LocateError::Malformed(format!(
                    "the {MACHO_SECTION} section lies outside its {MACHO_SEGMENT} segment"
                )));
            }
            check_fits(image.len(), offset, size, "payload section")?;
            found = Some(Range { offset, size });
        }
    }
    found.ok_or(LocateError::NoPayload)
}

/// Whether the 16-byte, NUL-padded name at `at` in `raw` is `want`.
fn fixed_name_is(raw: &[u8], at: usize, want: &str) -> bool {
    let Some(name) = at.checked_add(16).and_then(|end| raw.get(at..end)) else {
        return false;
    };
    let want = want.as_bytes();
    name.get(..want.len()) == Some(want)
        && name
            .get(want.len()..)
            .is_none_or(|rest| rest.iter().all(|&b| b == 0))
}

/// Whether the NUL-terminated string at `offset` in a string table is `want`. A name that
/// runs off the table is simply not a match: only the payload section's name matters here.
fn name_is(table: &[u8], offset: u32, want: &str) -> bool {
    let Some(rest) = usize::try_from(offset).ok().and_then(|o| table.get(o..)) else {
        return false;
    };
    let want = want.as_bytes();
    rest.get(..want.len()) == Some(want) && rest.get(want.len()) == Some(&0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds a minimal ELF64 little-endian image: header, a section name table and the
    /// given sections `(name, type, contents)`, each stored in the file.
    fn build(sections: &[(&str, u32, &[u8])]) -> Vec<u8> {
        let mut names = vec![0u8];
        let mut name_offsets = Vec::new();
        for (name, _, _) in sections {
            name_offsets.push(names.len() as u32);
            names.extend_from_slice(name.as_bytes());
            names.push(0);
        }
        let shstrtab_name = names.len() as u32;
        names.extend_from_slice(b".shstrtab\0");

        let mut out = vec![0u8; 64];
        let mut placed = Vec::new();
        for (_, _, data) in sections {
            placed.push((out.len() as u64, data.len() as u64));
            out.extend_from_slice(data);
        }
        let names_off = out.len() as u64;
        out.extend_from_slice(&names);
        while !out.len().is_multiple_of(8) {
            out.push(0);
        }
        let shoff = out.len() as u64;
        out.extend_from_slice(&[0u8; 64]); // null section
        for (i, (_, kind, _)) in sections.iter().enumerate() {
            out.extend_from_slice(&shdr(name_offsets[i], *kind, placed[i].0, placed[i].1));
        }
        out.extend_from_slice(&shdr(shstrtab_name, 3, names_off, names.len() as u64));
        let shnum = sections.len() as u16 + 2;

        out[..4].copy_from_slice(b"\x7fELF");
        out[4] = ELFCLASS64;
        out[5] = ELFDATA2LSB;
        out[6] = 1;
        out[16..18].copy_from_slice(&3u16.to_le_bytes()); // ET_DYN
        out[18..20].copy_from_slice(&62u16.to_le_bytes()); // x86_64
        out[40..48].copy_from_slice(&shoff.to_le_bytes());
        out[52..54].copy_from_slice(&64u16.to_le_bytes());
        out[58..60].copy_from_slice(&64u16.to_le_bytes());
        out[60..62].copy_from_slice(&shnum.to_le_bytes());
        out[62..64].copy_from_slice(&(shnum - 1).to_le_bytes());
        out
    }

    fn shdr(name: u32, kind: u32, offset: u64, size: u64) -> [u8; 64] {
        let mut h = [0u8; 64];
        h[0..4].copy_from_slice(&name.to_le_bytes());
        h[4..8].copy_from_slice(&kind.to_le_bytes());
        h[8..16].copy_from_slice(&2u64.to_le_bytes()); // SHF_ALLOC
        h[24..32].copy_from_slice(&offset.to_le_bytes());
        h[32..40].copy_from_slice(&size.to_le_bytes());
        h[48..56].copy_from_slice(&1u64.to_le_bytes());
        h
    }

    fn shoff(image: &[u8]) -> usize {
        u64::from_le_bytes(image[40..48].try_into().unwrap()) as usize
    }

    /// Asserts the error's variant by name, keeping each case to one line.
    fn check_err(image: &[u8], expect: &str) {
        let err = find_payload(image).expect_err("must fail");
        let got = format!("{err:?}");
        assert!(got.starts_with(expect), "expected {expect}, got {got}");
    }

    #[test]
    fn finds_the_payload_among_other_sections() {
        let image = build(&[
            (".text", 1, b"code"),
            (".rustle", 1, b"the payload"),
            (".rustle.x", 1, b"decoy"),
        ]);
        assert_eq!(find_payload(&image).unwrap(), b"the payload");
    }

    #[test]
    fn file_and_memory_readers_agree() {
        let image = build(&[(".data", 1, b"x"), (".rustle", 1, &[7u8; 5000])]);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("packed");
        std::fs::write(&path, &image).unwrap();
        assert_eq!(read_payload_from(&path).unwrap(), vec![7u8; 5000]);
    }

    #[test]
    fn missing_file_is_an_io_error_naming_the_path() {
        let err = read_payload_from(Path::new("/nonexistent/rustle-runner")).unwrap_err();
        assert!(matches!(err, LocateError::Io { .. }));
        assert!(err.to_string().contains("/nonexistent/rustle-runner"));
    }

    #[test]
    fn own_test_binary_has_no_payload() {
        // The test executable is a real, unpacked ELF file: this exercises the real
        // `/proc/self/exe` path end to end.
        assert!(matches!(read_own_payload(), Err(LocateError::NoPayload)));
    }

    #[test]
    fn rejects_bad_inputs() {
        check_err(b"", "NotElf");
        check_err(b"\x7fEL", "NotElf");
        check_err(b"MZ\x90\x00 not an elf at all", "NotElf");
        check_err(b"\x7fELF\x02\x01\x01", "Malformed");
        // Mach-O: a truncated thin header is malformed; fat and 32-bit files are refused.
        // (Packed Mach-O files are tested in the packer's `macho_pack` test.)
        check_err(&[0xcf, 0xfa, 0xed, 0xfe, 0, 0, 0, 0], "Malformed");
        check_err(&[0xca, 0xfe, 0xba, 0xbe, 0, 0, 0, 2], "Unsupported");
        check_err(&[0xca, 0xfe, 0xba, 0xbf, 0, 0, 0, 2], "Unsupported");
        check_err(&[0xce, 0xfa, 0xed, 0xfe, 7, 0, 0, 1], "Unsupported");

        let good = build(&[(".rustle", 1, b"payload")]);
        let mut bad = good.clone();
        bad[4] = ELFCLASS32;
        check_err(&bad, "Unsupported");
        let mut bad = good.clone();
        bad[5] = ELFDATA2MSB;
        check_err(&bad, "Unsupported");
        let mut bad = good.clone();
        bad[4] = 9;
        check_err(&bad, "Malformed");

        // e_shoff beyond the end of the file, and just short of it.
        let mut bad = good.clone();
        bad[40..48].copy_from_slice(&u64::MAX.to_le_bytes());
        check_err(&bad, "Malformed");
        check_err(&good[..good.len() - 1], "Malformed");

        // A huge section count cannot fit in the file.
        let mut bad = good.clone();
        bad[60..62].copy_from_slice(&0xfff0u16.to_le_bytes());
        check_err(&bad, "Malformed");

        // Extended numbering with an absurd count in section 0.
        let mut bad = good.clone();
        bad[60..62].copy_from_slice(&0u16.to_le_bytes());
        let s0 = shoff(&bad);
        bad[s0 + 32..s0 + 40].copy_from_slice(&(u64::MAX / 2).to_le_bytes());
        check_err(&bad, "Malformed");

        // Name table index out of range.
        let mut bad = good.clone();
        bad[62..64].copy_from_slice(&40u16.to_le_bytes());
        check_err(&bad, "Malformed");

        // The payload section pointing past the end of the file, or being huge.
        let payload_hdr = shoff(&good) + 64;
        let mut bad = good.clone();
        bad[payload_hdr + 24..payload_hdr + 32].copy_from_slice(&(good.len() as u64).to_le_bytes());
        check_err(&bad, "Malformed");
        let mut bad = good.clone();
        bad[payload_hdr + 32..payload_hdr + 40].copy_from_slice(&u64::MAX.to_le_bytes());
        check_err(&bad, "Malformed");

        // A NOBITS payload section, and no section header table at all.
        let mut bad = good.clone();
        bad[payload_hdr + 4..payload_hdr + 8].copy_from_slice(&SHT_NOBITS.to_le_bytes());
        check_err(&bad, "Malformed");
        let mut bad = good.clone();
        bad[40..48].copy_from_slice(&0u64.to_le_bytes());
        check_err(&bad, "NoPayload");
    }

    #[test]
    fn extended_section_numbering_is_followed() {
        let mut image = build(&[(".rustle", 1, b"abc")]);
        let s0 = shoff(&image);
        // Move the count and the name-table index into section 0, as linkers do for
        // files with more than 65279 sections.
        image[s0 + 32..s0 + 40].copy_from_slice(&3u64.to_le_bytes());
        image[s0 + 40..s0 + 44].copy_from_slice(&2u32.to_le_bytes());
        image[60..62].copy_from_slice(&0u16.to_le_bytes());
        image[62..64].copy_from_slice(&SHN_XINDEX.to_le_bytes());
        assert_eq!(find_payload(&image).unwrap(), b"abc");
    }

    #[test]
    fn two_payload_sections_are_refused() {
        let image = build(&[(".rustle", 1, b"a"), (".rustle", 1, b"b")]);
        check_err(&image, "Malformed");
    }

    #[test]
    fn no_payload_section_is_reported_as_such() {
        check_err(&build(&[(".text", 1, b"code")]), "NoPayload");
        // A name running off the end of the table is not a match, not a panic.
        let mut image = build(&[(".rustlex", 1, b"code")]);
        let names_len = "\0.rustlex\0.shstrtab\0".len() as u32;
        let hdr = shoff(&image) + 64;
        for name in [names_len - 1, names_len, u32::MAX] {
            image[hdr..hdr + 4].copy_from_slice(&name.to_le_bytes());
            check_err(&image, "NoPayload");
        }
    }

    #[test]
    fn mangled_images_never_panic() {
        let good = build(&[(".text", 1, b"code"), (".rustle", 1, &[1u8; 300])]);
        for len in 0..good.len() {
            let _ = find_payload(&good[..len]);
        }
        let mut image = good.clone();
        for i in 0..image.len() {
            for mask in [0x01u8, 0x80, 0xff] {
                image[i] ^= mask;
                let _ = find_payload(&image);
                image[i] ^= mask;
            }
        }
        assert_eq!(find_payload(&image).unwrap(), &[1u8; 300]);
    }
}
