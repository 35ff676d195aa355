//! Packs a payload into a copy of a prebuilt ELF runner, in a way `strip` cannot undo.
//!
//! Layout written by [`embed`] (see "Embedding the payload" in the design notes):
//!
//! ```text
//! [ the runner, byte for byte, except two headers patched in place ]
//! [ zero padding up to a 64 KiB boundary                           ]
//! [ payload                                   <- .rustle, PT_LOAD  ]
//! [ copy of .shstrtab with ".rustle" appended                      ]
//! [ new section header table: the old entries + .rustle            ]
//! ```
//!
//! Why this shape:
//! - The payload must survive GNU `strip` and `llvm-strip`. Both keep allocated sections
//!   that a loadable segment maps, and drop everything else (non-alloc sections, trailers).
//!   So the payload gets a `PT_LOAD` (read-only) and an `SHF_ALLOC` section header.
//! - Adding a program header would grow the table, which sits at the front of the first
//!   segment and cannot grow in place. Instead an existing entry is reused: the first
//!   `PT_NOTE` when there is one (our runners have one, for `.note.gnu.build-id`; the note
//!   stays mapped by the first `PT_LOAD`, only its pointer goes, and the kernel reads no
//!   `PT_NOTE` of a static binary), else `PT_GNU_STACK`, present in every binary a current
//!   Rust toolchain links. Losing `PT_GNU_STACK` costs this (checked on Linux 6.18 by packing
//!   `/bin/sleep` and `python3`), which is why a note is preferred:
//!   - Since Linux 5.8 the kernel's default for a 64-bit binary without `PT_GNU_STACK` is
//!     a non-executable stack and no `READ_IMPLIES_EXEC` (personality stays 0). Older
//!     x86_64/aarch64 kernels set `READ_IMPLIES_EXEC`, making every readable mapping
//!     executable: a hardening loss (not a functional one) on such hosts.
//!   - glibc's ld.so reads `PT_GNU_STACK` to choose thread-stack permissions; without it a
//!     packed *glibc* program gets `rwx` thread stacks. musl maps thread stacks `rw`
//!     whatever the header says, so the static musl runners we ship are unaffected.
//! - The payload offset and address are 64 KiB aligned, so the segment is mappable on
//!   kernels with 4K, 16K or 64K pages (aarch64 may use 64K), and its address is above
//!   every existing segment, so it never overlaps the program's memory or its `.bss`.
//! - The gABI requires `PT_LOAD` entries to be sorted by `p_vaddr`. Linux 6.18 does not
//!   insist (a static-pie with the payload's `PT_LOAD` moved first still ran here, as the
//!   kernel now takes the min/max over all `PT_LOAD`s), but glibc's ld.so sizes its
//!   reservation from the first and last `PT_LOAD` and older kernels did the same. So the
//!   order is kept: the new segment has the highest address, and if `PT_GNU_STACK` comes
//!   before the last `PT_LOAD` the entries in between move up one slot and the new
//!   `PT_LOAD` takes the last loadable position. The relative order of all other entries is
//!   unchanged, so `PT_PHDR`/`PT_INTERP` still precede every `PT_LOAD`.
//! - Existing sections keep their indices (the new header is appended) so `sh_link`,
//!   `sh_info` and symbol section indices stay valid. The old name table and section header
//!   table are left in place as dead bytes: the next `strip` reclaims them.

use rustle_runner::locate;

/// Name of the section that holds the payload (shared with the runner, which looks it up).
pub const SECTION_NAME: &str = locate::SECTION_NAME;

/// Alignment of the payload in the file and in memory: the largest page size in use on
/// the supported architectures (64 KiB on some aarch64 kernels).
pub const PAYLOAD_ALIGN: u64 = 0x1_0000;

/// Why a runner could not be packed.
#[derive(Debug, thiserror::Error)]
pub enum ElfError {
    /// The runner does not start with the ELF magic number.
    #[error("the runner is not an ELF file (bad magic number)")]
    NotElf,
    /// An ELF file of a kind the packer does not handle.
    #[error("unsupported runner: {0}")]
    Unsupported(String),
    /// Headers that are truncated, inconsistent or point outside the file.
    #[error("malformed runner ELF: {0}")]
    Malformed(String),
    /// No `PT_GNU_STACK` program header to turn into the payload's segment.
    #[error(
        "the runner has neither a PT_NOTE nor a PT_GNU_STACK program header, one of which packing reuses to map the payload"
    )]
    NoSpareHeader,
    /// The runner already carries a payload.
    #[error("the runner already has a {SECTION_NAME} section (already packed)")]
    AlreadyPacked,
    /// The payload does not fit the file's 64-bit layout.
    #[error("payload of {len} bytes is too large to pack")]
    TooLarge {
        /// Payload length in bytes.
        len: usize,
    },
}

use object::elf::{
    ELFCLASS64, ELFDATA2LSB, EM_AARCH64, EM_X86_64, ET_DYN, ET_EXEC, EV_CURRENT, FileHeader64,
    PF_R, PN_XNUM, PT_GNU_STACK, PT_LOAD, PT_NOTE, ProgramHeader64, SHF_ALLOC, SHN_LORESERVE,
    SHT_NOBITS, SHT_PROGBITS, SHT_STRTAB, SectionHeader64,
};
use object::endian::{LittleEndian as LE, U16, U32, U64};
use object::pod::{bytes_of, from_bytes, slice_from_bytes};

type Ehdr = FileHeader64<LE>;
type Phdr = ProgramHeader64<LE>;
type Shdr = SectionHeader64<LE>;

const PHDR_SIZE: usize = size_of::<Phdr>();
const SHDR_SIZE: usize = size_of::<Shdr>();

/// Returns a copy of `runner` carrying `payload` in a `.rustle` section mapped by a
/// read-only `PT_LOAD` segment (layout in the module documentation).
///
/// Only ELF64 little-endian executables for x86_64 and aarch64 are accepted, with a
/// `PT_GNU_STACK` header and a section header table; anything else is an error.
pub fn embed(runner: &[u8], payload: &[u8]) -> Result<Vec<u8>, ElfError> {
    let elf = Parsed::parse(runner)?;
    let too_large = || ElfError::TooLarge { len: payload.len() };
    let payload_len = u64::try_from(payload.len()).map_err(|_| too_large())?;

    let payload_off = align_up(elf.file_len, PAYLOAD_ALIGN).ok_or_else(too_large)?;
    // Both the offset and the address are multiples of the alignment, so they are
    // congruent modulo p_align as the loader requires.
    let payload_vaddr = align_up(elf.load_end, PAYLOAD_ALIGN).ok_or_else(too_large)?;
    let names_off = payload_off.checked_add(payload_len).ok_or_else(too_large)?;

    // The new name table: the old one plus ".rustle". A table that does not end in NUL
    // would swallow the new name into its last one, so one is added first.
    let mut names = elf.names.to_vec();
    if names.last() != Some(&0) {
        names.push(0);
    }
    let rustle_name = u32::try_from(names.len())
        .map_err(|_| ElfError::Malformed("section name table larger than 4 GiB".into()))?;
    names.extend_from_slice(SECTION_NAME.as_bytes());
    names.push(0);
    let names_len = u64::try_from(names.len()).map_err(|_| too_large())?;

    let shoff = names_off
        .checked_add(names_len)
        .and_then(|end| align_up(end, 8))
        .ok_or_else(too_large)?;
    let new_shnum = elf.shdrs.len().checked_add(1).ok_or_else(too_large)?;
    let total = usize::try_from(shoff)
        .ok()
        .and_then(|s| s.checked_add(new_shnum.checked_mul(SHDR_SIZE)?))
        .ok_or_else(too_large)?;

    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(runner);
    out.resize(to_usize(payload_off).ok_or_else(too_large)?, 0);
    out.extend_from_slice(payload);
    out.extend_from_slice(&names);
    out.resize(to_usize(shoff).ok_or_else(too_large)?, 0);

    // Old section headers, with the name table moved to its new copy.
    for (index, old) in elf.shdrs.iter().enumerate() {
        let mut sh = *old;
        if index == elf.shstrndx {
            sh.sh_offset = U64::new(LE, names_off);
            sh.sh_size = U64::new(LE, names_len);
        }
        out.extend_from_slice(bytes_of(&sh));
    }
    let rustle = Shdr {
        sh_name: U32::new(LE, rustle_name),
        sh_type: U32::new(LE, SHT_PROGBITS),
        sh_flags: U64::new(LE, SHF_ALLOC),
        sh_addr: U64::new(LE, payload_vaddr),
        sh_offset: U64::new(LE, payload_off),
        sh_size: U64::new(LE, payload_len),
        sh_link: U32::new(LE, 0),
        sh_info: U32::new(LE, 0),
        sh_addralign: U64::new(LE, 1),
        sh_entsize: U64::new(LE, 0),
    };
    out.extend_from_slice(bytes_of(&rustle));

    // The program header table keeps its size and place; only its entries change.
    let load = Phdr {
        p_type: U32::new(LE, PT_LOAD),
        p_flags: U32::new(LE, PF_R),
        p_offset: U64::new(LE, payload_off),
        p_vaddr: U64::new(LE, payload_vaddr),
        p_paddr: U64::new(LE, payload_vaddr),
        p_filesz: U64::new(LE, payload_len),
        p_memsz: U64::new(LE, payload_len),
        p_align: U64::new(LE, PAYLOAD_ALIGN),
    };
    let phdrs = elf.new_program_headers(load);
    let phoff = to_usize(elf.phoff).ok_or_else(too_large)?;
    let table: Vec<u8> = phdrs.iter().flat_map(|p| bytes_of(p).to_vec()).collect();
    put(&mut out, phoff, &table);

    let new_shnum = u16::try_from(new_shnum).map_err(|_| too_large())?;
    let mut ehdr = *elf.ehdr;
    ehdr.e_shoff = U64::new(LE, shoff);
    ehdr.e_shnum = U16::new(LE, new_shnum);
    put(&mut out, 0, bytes_of(&ehdr));
    Ok(out)
}

/// Overwrites `dst[at..at + src.len()]`. Every caller writes inside a buffer whose size it
/// has just established, so an out-of-range write is a bug; it is skipped rather than
/// panicking, and the tests (which re-read every packed file) would catch it.
fn put(dst: &mut [u8], at: usize, src: &[u8]) {
    if let Some(slot) = at
        .checked_add(src.len())
        .and_then(|end| dst.get_mut(at..end))
    {
        slot.copy_from_slice(src);
    }
}

fn align_up(value: u64, align: u64) -> Option<u64> {
    value.checked_next_multiple_of(align)
}

fn to_usize(value: u64) -> Option<usize> {
    usize::try_from(value).ok()
}

/// `len` bytes of `file` at `offset`, or an error naming `what` if they are not all there.
fn slice<'a>(file: &'a [u8], offset: u64, len: u64, what: &str) -> Result<&'a [u8], ElfError> {
    to_usize(offset)
        .zip(to_usize(len))
        .and_then(|(start, len)| file.get(start..start.checked_add(len)?))
        .ok_or_else(|| {
            ElfError::Malformed(format!(
                "{what} ({len} bytes at offset {offset}) extends past the end of the file ({} bytes)",
                file.len()
            ))
        })
}

/// `count` headers of type `T` at `offset` of `file`, checked to be all there.
fn table<'a, T: object::Pod>(
    file: &'a [u8],
    offset: u64,
    count: usize,
    what: &str,
) -> Result<&'a [T], ElfError> {
    let len = count
        .checked_mul(size_of::<T>())
        .and_then(|n| u64::try_from(n).ok())
        .ok_or_else(|| ElfError::Malformed(format!("{what} is too large")))?;
    let bytes = slice(file, offset, len, what)?;
    slice_from_bytes(bytes, count)
        .map(|(t, _)| t)
        .map_err(|()| ElfError::Malformed(format!("{what} cannot be read")))
}

/// The parts of the runner that packing reads, all checked against the file.
struct Parsed<'a> {
    ehdr: &'a Ehdr,
    file_len: u64,
    phoff: u64,
    /// Program header entries, in table order.
    phdrs: &'a [Phdr],
    /// The program header turned into the payload's `PT_LOAD`: a `PT_NOTE` when there
    /// is one, else `PT_GNU_STACK`.
    reused: usize,
    /// End of the highest `PT_LOAD` in memory (`p_vaddr + p_memsz`).
    load_end: u64,
    shdrs: &'a [Shdr],
    shstrndx: usize,
    names: &'a [u8],
}

impl<'a> Parsed<'a> {
    fn parse(file: &'a [u8]) -> Result<Self, ElfError> {
        if file.get(..4) != Some(b"\x7fELF".as_slice()) {
            return Err(ElfError::NotElf);
        }
        let (ehdr, _) = from_bytes::<Ehdr>(file)
            .map_err(|()| ElfError::Malformed("file is shorter than an ELF header".into()))?;
        let ident = &ehdr.e_ident;
        if ident.class != ELFCLASS64 {
            return Err(ElfError::Unsupported(format!(
                "ELF class {} (only 64-bit ELF is supported)",
                ident.class
            )));
        }
        if ident.data != ELFDATA2LSB {
            return Err(ElfError::Unsupported(format!(
                "ELF data encoding {} (only little-endian is supported)",
                ident.data
            )));
        }
        if ident.version != EV_CURRENT {
            return Err(ElfError::Malformed(format!(
                "ELF version {}",
                ident.version
            )));
        }
        let e_type = ehdr.e_type.get(LE);
        if e_type != ET_EXEC && e_type != ET_DYN {
            return Err(ElfError::Unsupported(format!(
                "ELF type {e_type} is not an executable"
            )));
        }
        let machine = ehdr.e_machine.get(LE);
        if machine != EM_X86_64 && machine != EM_AARCH64 {
            return Err(ElfError::Unsupported(format!(
                "machine {machine} (only x86_64 and aarch64 are supported)"
            )));
        }
        let file_len = u64::try_from(file.len())
            .map_err(|_| ElfError::Malformed("file larger than 2^64 bytes".into()))?;

        // Program headers.
        let phoff = ehdr.e_phoff.get(LE);
        let phentsize = ehdr.e_phentsize.get(LE);
        let phnum = ehdr.e_phnum.get(LE);
        if usize::from(phentsize) != PHDR_SIZE {
            return Err(ElfError::Malformed(format!(
                "program header size {phentsize}, expected {PHDR_SIZE}"
            )));
        }
        if phnum == PN_XNUM {
            return Err(ElfError::Unsupported(
                "extended program header numbering".into(),
            ));
        }
        let phdrs: &[Phdr] = table(file, phoff, usize::from(phnum), "program header table")?;
        let mut gnu_stack = None;
        let mut note = None;
        let mut load_end: Option<u64> = None;
        for (i, ph) in phdrs.iter().enumerate() {
            match ph.p_type.get(LE) {
                PT_GNU_STACK if gnu_stack.is_none() => gnu_stack = Some(i),
                PT_NOTE if note.is_none() => note = Some(i),
                PT_LOAD => {
                    let (offset, vaddr) = (ph.p_offset.get(LE), ph.p_vaddr.get(LE));
                    let (filesz, memsz) = (ph.p_filesz.get(LE), ph.p_memsz.get(LE));
                    slice(file, offset, filesz, &format!("segment {i}"))?;
                    let end = vaddr.checked_add(memsz).ok_or_else(|| {
                        ElfError::Malformed(format!("segment {i} wraps the address space"))
                    })?;
                    load_end = Some(load_end.map_or(end, |e| e.max(end)));
                }
                _ => {}
            }
        }
        let load_end = load_end.ok_or_else(|| ElfError::Malformed("no PT_LOAD segment".into()))?;

        // Section headers.
        let shoff = ehdr.e_shoff.get(LE);
        let shentsize = ehdr.e_shentsize.get(LE);
        let shnum = usize::from(ehdr.e_shnum.get(LE));
        let shstrndx = usize::from(ehdr.e_shstrndx.get(LE).0);
        let reserved = usize::from(SHN_LORESERVE);
        if shoff == 0 {
            return Err(ElfError::Unsupported(
                "no section header table (e.g. after sstrip)".into(),
            ));
        }
        if usize::from(shentsize) != SHDR_SIZE {
            return Err(ElfError::Malformed(format!(
                "section header size {shentsize}, expected {SHDR_SIZE}"
            )));
        }
        if shnum == 0 || shstrndx >= reserved {
            return Err(ElfError::Unsupported(
                "extended section numbering (more than 65279 sections)".into(),
            ));
        }
        if shnum + 1 >= reserved {
            return Err(ElfError::Unsupported(format!(
                "{shnum} sections: one more would need extended section numbering"
            )));
        }
        if shstrndx == 0 || shstrndx >= shnum {
            return Err(ElfError::Malformed(format!(
                "section name table index {shstrndx} is not among the {shnum} sections"
            )));
        }
        let shdrs: &[Shdr] = table(file, shoff, shnum, "section header table")?;
        let names_hdr = shdrs
            .get(shstrndx)
            .ok_or_else(|| ElfError::Malformed(format!("no section header {shstrndx}")))?;
        if names_hdr.sh_type.get(LE) != SHT_STRTAB {
            return Err(ElfError::Malformed(
                "the section name table is not a string table".into(),
            ));
        }
        if (names_hdr.sh_flags.get(LE) & SHF_ALLOC).0 != 0 {
            // Moving it would leave its mapped copy stale; no linker produces this.
            return Err(ElfError::Unsupported(
                "the section name table is loaded into memory".into(),
            ));
        }
        let names = slice(
            file,
            names_hdr.sh_offset.get(LE),
            names_hdr.sh_size.get(LE),
            "section name table",
        )?;
        let parsed = Self {
            ehdr,
            file_len,
            phoff,
            phdrs,
            reused: 0,
            load_end,
            shdrs,
            shstrndx,
            names,
        };

        for (index, sh) in shdrs.iter().enumerate() {
            let name = parsed.name(sh.sh_name.get(LE), index)?;
            if name == SECTION_NAME.as_bytes() {
                return Err(ElfError::AlreadyPacked);
            }
            if sh.sh_type.get(LE) != SHT_NOBITS && index != 0 {
                slice(
                    file,
                    sh.sh_offset.get(LE),
                    sh.sh_size.get(LE),
                    &format!("section {}", String::from_utf8_lossy(name)),
                )?;
            }
        }
        // Checked last so a packed runner (whose reused header is gone) reports that.
        let reused = note.or(gnu_stack).ok_or(ElfError::NoSpareHeader)?;
        Ok(Self { reused, ..parsed })
    }

    /// The NUL-terminated name at `offset` in the section name table.
    fn name(&self, offset: u32, index: usize) -> Result<&'a [u8], ElfError> {
        let bad = || {
            ElfError::Malformed(format!(
                "section {index} has a name outside the section name table"
            ))
        };
        let rest = usize::try_from(offset)
            .ok()
            .and_then(|o| self.names.get(o..))
            .ok_or_else(bad)?;
        let end = rest.iter().position(|&b| b == 0).ok_or_else(bad)?;
        rest.get(..end).ok_or_else(bad)
    }

    /// The program header table with the reused entry replaced by `load`, placed so the
    /// `PT_LOAD` entries stay sorted by address (see the module documentation).
    fn new_program_headers(&self, load: Phdr) -> Vec<Phdr> {
        let last_load = self
            .phdrs
            .iter()
            .rposition(|ph| ph.p_type.get(LE) == PT_LOAD)
            .unwrap_or(0);
        let mut phdrs = self.phdrs.to_vec();
        if self.reused < last_load {
            phdrs.remove(self.reused);
            // After the removal the last PT_LOAD sits at `last_load - 1`.
            phdrs.insert(last_load, load);
        } else if let Some(slot) = phdrs.get_mut(self.reused) {
            *slot = load;
        }
        phdrs
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustle_runner::locate::find_payload;

    // The tests build and read headers byte by byte, by the gABI's offsets, as a check
    // on the typed code above that does not share its view of the layout.
    const ET_DYN: u16 = 3;
    const EM_X86_64: u16 = 62;
    const PT_LOAD: u32 = 1;
    const PT_NOTE: u32 = 4;
    const PT_GNU_STACK: u32 = 0x6474_e551;
    const PF_R: u32 = 4;
    const SHT_PROGBITS: u32 = 1;
    const SHT_STRTAB: u32 = 3;
    const SHT_NOBITS: u32 = 8;
    const SHF_ALLOC: u64 = 2;

    fn field<const N: usize>(buf: &[u8], at: usize) -> Option<[u8; N]> {
        buf.get(at..at + N).and_then(|b| b.try_into().ok())
    }
    fn u16_at(buf: &[u8], at: usize) -> Option<u16> {
        field(buf, at).map(u16::from_le_bytes)
    }
    fn u32_at(buf: &[u8], at: usize) -> Option<u32> {
        field(buf, at).map(u32::from_le_bytes)
    }
    fn u64_at(buf: &[u8], at: usize) -> Option<u64> {
        field(buf, at).map(u64::from_le_bytes)
    }

    const PT_PHDR: u32 = 6;
    const PT_DYNAMIC: u32 = 2;

    fn ph(kind: u32, offset: u64, vaddr: u64, filesz: u64, memsz: u64) -> [u8; PHDR_SIZE] {
        let mut p = [0u8; PHDR_SIZE];
        put(&mut p, 0, &kind.to_le_bytes());
        put(&mut p, 4, &6u32.to_le_bytes());
        put(&mut p, 8, &offset.to_le_bytes());
        put(&mut p, 16, &vaddr.to_le_bytes());
        put(&mut p, 24, &vaddr.to_le_bytes());
        put(&mut p, 32, &filesz.to_le_bytes());
        put(&mut p, 40, &memsz.to_le_bytes());
        put(&mut p, 48, &0x1000u64.to_le_bytes());
        p
    }

    /// A small but structurally complete ELF64 executable: the given program header
    /// types (PT_LOADs get increasing addresses, the last one with a large .bss), a
    /// `.text`, a `.bss` and a `.shstrtab` section.
    fn build_with(kinds: &[u32]) -> Vec<u8> {
        let phoff = 64u64;
        let body = phoff as usize + kinds.len() * PHDR_SIZE;
        let mut out = vec![0u8; body];
        out.extend_from_slice(b"\xc3 text bytes");
        let names = b"\0.text\0.bss\0.shstrtab\0";
        let names_off = out.len() as u64;
        out.extend_from_slice(names);
        while !out.len().is_multiple_of(8) {
            out.push(0);
        }
        let shoff = out.len() as u64;
        let mut sh = |name: u32, kind: u32, flags: u64, addr: u64, off: u64, size: u64| {
            let mut h = [0u8; SHDR_SIZE];
            put(&mut h, 0, &name.to_le_bytes());
            put(&mut h, 4, &kind.to_le_bytes());
            put(&mut h, 8, &flags.to_le_bytes());
            put(&mut h, 16, &addr.to_le_bytes());
            put(&mut h, 24, &off.to_le_bytes());
            put(&mut h, 32, &size.to_le_bytes());
            out.extend_from_slice(&h);
        };
        sh(0, 0, 0, 0, 0, 0);
        sh(
            1,
            SHT_PROGBITS,
            SHF_ALLOC | 4,
            0x1000 + body as u64,
            body as u64,
            12,
        );
        sh(7, SHT_NOBITS, SHF_ALLOC | 1, 0x20_0000, 0, 0x5_0000);
        sh(12, SHT_STRTAB, 0, 0, names_off, names.len() as u64);
        let file_len = out.len() as u64;

        let mut load_no = 0u64;
        let mut phdrs = Vec::new();
        for &kind in kinds {
            phdrs.push(match kind {
                PT_LOAD => {
                    load_no += 1;
                    if load_no == 1 {
                        ph(PT_LOAD, 0, 0, file_len, file_len)
                    } else {
                        ph(PT_LOAD, 0, load_no * 0x10_0000, 0, 0x5_0000 + load_no)
                    }
                }
                other => ph(other, 0, 0, 0, 0),
            });
        }
        for (i, p) in phdrs.iter().enumerate() {
            put(&mut out, 64 + i * PHDR_SIZE, p);
        }
        put(&mut out, 0, b"\x7fELF\x02\x01\x01");
        put(&mut out, 16, &ET_DYN.to_le_bytes());
        put(&mut out, 18, &EM_X86_64.to_le_bytes());
        put(&mut out, 32, &phoff.to_le_bytes());
        put(&mut out, 40, &shoff.to_le_bytes());
        put(&mut out, 52, &64u16.to_le_bytes());
        put(&mut out, 54, &(PHDR_SIZE as u16).to_le_bytes());
        put(&mut out, 56, &(kinds.len() as u16).to_le_bytes());
        put(&mut out, 58, &(SHDR_SIZE as u16).to_le_bytes());
        put(&mut out, 60, &4u16.to_le_bytes());
        put(&mut out, 62, &3u16.to_le_bytes());
        out
    }

    fn build() -> Vec<u8> {
        build_with(&[PT_PHDR, PT_LOAD, PT_LOAD, PT_DYNAMIC, PT_GNU_STACK])
    }

    fn phdr_types(image: &[u8]) -> Vec<u32> {
        let n = u16_at(image, 56).unwrap() as usize;
        (0..n)
            .map(|i| u32_at(image, 64 + i * PHDR_SIZE).unwrap())
            .collect()
    }

    fn phdr(image: &[u8], i: usize) -> [u8; PHDR_SIZE] {
        image[64 + i * PHDR_SIZE..64 + (i + 1) * PHDR_SIZE]
            .try_into()
            .unwrap()
    }

    #[test]
    fn packed_image_maps_and_names_the_payload() {
        let runner = build();
        let payload: Vec<u8> = (0..100_000u32).map(|i| (i * 7) as u8).collect();
        let packed = embed(&runner, &payload).unwrap();

        // The runner's bytes are untouched outside the two headers that change.
        assert_eq!(
            packed[64 + 5 * PHDR_SIZE..runner.len()],
            runner[64 + 5 * PHDR_SIZE..]
        );
        assert_eq!(find_payload(&packed).unwrap(), payload.as_slice());

        // GNU_STACK became a read-only PT_LOAD, 64 KiB aligned, above the .bss end
        // (0x200000 + 0x50002), with the payload's exact size.
        assert_eq!(
            phdr_types(&packed),
            [PT_PHDR, PT_LOAD, PT_LOAD, PT_DYNAMIC, PT_LOAD]
        );
        let load = phdr(&packed, 4);
        let off = u64_at(&load, 8).unwrap();
        let vaddr = u64_at(&load, 16).unwrap();
        assert_eq!(u32_at(&load, 4).unwrap(), PF_R);
        assert_eq!(off, 0x1_0000);
        assert_eq!(vaddr, 0x26_0000);
        assert_eq!(u64_at(&load, 24).unwrap(), vaddr);
        assert_eq!(u64_at(&load, 32).unwrap(), payload.len() as u64);
        assert_eq!(u64_at(&load, 40).unwrap(), payload.len() as u64);
        assert_eq!(u64_at(&load, 48).unwrap(), PAYLOAD_ALIGN);
        assert_eq!(&packed[off as usize..][..payload.len()], payload.as_slice());

        // One more section; the new table and name table are at the end of the file.
        assert_eq!(u16_at(&packed, 60).unwrap(), 5);
        let shoff = u64_at(&packed, 40).unwrap() as usize;
        assert_eq!(shoff % 8, 0);
        assert_eq!(shoff + 5 * SHDR_SIZE, packed.len());
        let rustle = &packed[shoff + 4 * SHDR_SIZE..];
        assert_eq!(u32_at(rustle, 4).unwrap(), SHT_PROGBITS);
        assert_eq!(u64_at(rustle, 8).unwrap(), SHF_ALLOC);
        assert_eq!(u64_at(rustle, 16).unwrap(), vaddr);
        assert_eq!(u64_at(rustle, 48).unwrap(), 1);
    }

    #[test]
    fn gnu_stack_before_the_last_load_is_moved_after_it() {
        let runner = build_with(&[PT_PHDR, PT_GNU_STACK, PT_LOAD, PT_DYNAMIC, PT_LOAD, 7]);
        let packed = embed(&runner, b"abc").unwrap();
        assert_eq!(
            phdr_types(&packed),
            [PT_PHDR, PT_LOAD, PT_DYNAMIC, PT_LOAD, PT_LOAD, 7]
        );
        // The moved entries are byte-identical to the originals.
        assert_eq!(phdr(&packed, 1), phdr(&runner, 2));
        assert_eq!(phdr(&packed, 3), phdr(&runner, 4));
        assert_eq!(phdr(&packed, 5), phdr(&runner, 5));
        assert_eq!(find_payload(&packed).unwrap(), b"abc");
    }

    #[test]
    fn a_note_is_reused_before_gnu_stack_so_the_stack_stays_non_executable() {
        let runner = build_with(&[PT_PHDR, PT_LOAD, PT_NOTE, PT_LOAD, PT_GNU_STACK]);
        let packed = embed(&runner, b"abc").unwrap();
        assert_eq!(
            phdr_types(&packed),
            [PT_PHDR, PT_LOAD, PT_LOAD, PT_LOAD, PT_GNU_STACK]
        );
        assert_eq!(phdr(&packed, 4), phdr(&runner, 4), "PT_GNU_STACK untouched");
        assert_eq!(find_payload(&packed).unwrap(), b"abc");
    }

    #[test]
    fn empty_payload_round_trips() {
        let packed = embed(&build(), b"").unwrap();
        assert_eq!(find_payload(&packed).unwrap(), b"");
    }

    #[test]
    fn packing_twice_is_refused() {
        let packed = embed(&build(), b"one").unwrap();
        assert!(matches!(
            embed(&packed, b"two"),
            Err(ElfError::AlreadyPacked)
        ));
    }

    /// One line per rejected input: what it is, and which error it must give.
    fn check(input: &[u8], expect: &str) {
        let got = format!("{:?}", embed(input, b"payload").expect_err("must fail"));
        assert!(got.starts_with(expect), "expected {expect}, got {got}");
    }

    #[test]
    fn rejects_bad_runners() {
        let good = build();
        check(b"", "NotElf");
        check(b"#!/bin/sh\necho hi\n", "NotElf");
        check(&good[..40], "Malformed");
        check(&build_with(&[PT_PHDR, PT_LOAD, PT_LOAD]), "NoSpareHeader");
        check(&build_with(&[PT_GNU_STACK]), "Malformed");

        let patched = |at: usize, bytes: &[u8]| {
            let mut b = good.clone();
            b[at..at + bytes.len()].copy_from_slice(bytes);
            b
        };
        check(&patched(4, &[1]), "Unsupported"); // 32-bit
        check(&patched(5, &[2]), "Unsupported"); // big-endian
        check(&patched(16, &1u16.to_le_bytes()), "Unsupported"); // relocatable object
        check(&patched(18, &40u16.to_le_bytes()), "Unsupported"); // ARM
        check(&patched(32, &u64::MAX.to_le_bytes()), "Malformed"); // phoff
        check(&patched(56, &0x7fffu16.to_le_bytes()), "Malformed"); // phnum
        check(
            &patched(40, &(good.len() as u64).to_le_bytes()),
            "Malformed",
        ); // shoff
        check(&patched(40, &u64::MAX.to_le_bytes()), "Malformed");
        check(&patched(40, &0u64.to_le_bytes()), "Unsupported");
        check(&patched(60, &0xfeffu16.to_le_bytes()), "Unsupported"); // huge shnum
        check(&patched(60, &0x1000u16.to_le_bytes()), "Malformed");
        check(&patched(62, &9u16.to_le_bytes()), "Malformed"); // shstrndx
        check(&patched(62, &1u16.to_le_bytes()), "Malformed"); // not a strtab
        check(&good[..good.len() - 1], "Malformed"); // truncated section table

        // A section (.text) or a segment pointing past the end of the file.
        let shoff = u64_at(&good, 40).unwrap() as usize;
        check(
            &patched(shoff + SHDR_SIZE + 32, &(1u64 << 40).to_le_bytes()),
            "Malformed",
        );
        check(
            &patched(64 + PHDR_SIZE + 32, &u64::MAX.to_le_bytes()),
            "Malformed",
        );
        // A section name outside the name table.
        check(
            &patched(shoff + SHDR_SIZE, &u32::MAX.to_le_bytes()),
            "Malformed",
        );
    }

    #[test]
    fn mangled_runners_never_panic() {
        let good = build();
        for len in 0..good.len() {
            let _ = embed(&good[..len], b"x");
        }
        let mut image = good.clone();
        for i in 0..image.len() {
            for mask in [0x01u8, 0x10, 0x80, 0xff] {
                image[i] ^= mask;
                if let Ok(packed) = embed(&image, b"payload") {
                    // Whatever embed accepts, the runner must find again.
                    assert!(
                        matches!(find_payload(&packed), Ok(b"payload")),
                        "byte {i} ^ {mask:#x}"
                    );
                }
                image[i] ^= mask;
            }
        }
        assert!(matches!(
            find_payload(&embed(&image, b"p").unwrap()),
            Ok(b"p")
        ));
    }
}
