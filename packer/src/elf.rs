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

const EHDR_SIZE: usize = 64;
const PHDR_SIZE: usize = 56;
const SHDR_SIZE: usize = 64;
const ELFCLASS64: u8 = 2;
const ELFDATA2LSB: u8 = 1;
const EV_CURRENT: u8 = 1;
const ET_EXEC: u16 = 2;
const ET_DYN: u16 = 3;
const EM_X86_64: u16 = 62;
const EM_AARCH64: u16 = 183;
const PT_LOAD: u32 = 1;
const PT_GNU_STACK: u32 = 0x6474_e551;
const PT_NOTE: u32 = 4;
const PF_R: u32 = 4;
const PN_XNUM: u16 = 0xffff;
const SHN_LORESERVE: usize = 0xff00;
const SHT_PROGBITS: u32 = 1;
const SHT_STRTAB: u32 = 3;
const SHF_ALLOC: u64 = 2;
const SHT_NOBITS: u32 = 8;

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
    let new_shnum = elf.shnum.checked_add(1).ok_or_else(too_large)?;
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
    for index in 0..elf.shnum {
        let mut raw = elf.shdr_raw(index)?;
        if index == elf.shstrndx {
            put(&mut raw, 24, &names_off.to_le_bytes());
            put(&mut raw, 32, &names_len.to_le_bytes());
        }
        out.extend_from_slice(&raw);
    }
    let mut rustle = [0u8; SHDR_SIZE];
    put(&mut rustle, 0, &rustle_name.to_le_bytes());
    put(&mut rustle, 4, &SHT_PROGBITS.to_le_bytes());
    put(&mut rustle, 8, &SHF_ALLOC.to_le_bytes());
    put(&mut rustle, 16, &payload_vaddr.to_le_bytes());
    put(&mut rustle, 24, &payload_off.to_le_bytes());
    put(&mut rustle, 32, &payload_len.to_le_bytes());
    put(&mut rustle, 48, &1u64.to_le_bytes()); // sh_addralign
    out.extend_from_slice(&rustle);

    // The program header table keeps its size and place; only its entries change.
    let mut load = [0u8; PHDR_SIZE];
    put(&mut load, 0, &PT_LOAD.to_le_bytes());
    put(&mut load, 4, &PF_R.to_le_bytes());
    put(&mut load, 8, &payload_off.to_le_bytes());
    put(&mut load, 16, &payload_vaddr.to_le_bytes());
    put(&mut load, 24, &payload_vaddr.to_le_bytes());
    put(&mut load, 32, &payload_len.to_le_bytes());
    put(&mut load, 40, &payload_len.to_le_bytes());
    put(&mut load, 48, &PAYLOAD_ALIGN.to_le_bytes());
    let phdrs = elf.new_program_headers(load);
    let phoff = to_usize(elf.phoff).ok_or_else(too_large)?;
    for (i, entry) in phdrs.iter().enumerate() {
        let at = i
            .checked_mul(PHDR_SIZE)
            .and_then(|o| o.checked_add(phoff))
            .ok_or_else(too_large)?;
        put(&mut out, at, entry);
    }

    put(&mut out, 40, &shoff.to_le_bytes());
    let new_shnum = u16::try_from(new_shnum).map_err(|_| too_large())?;
    put(&mut out, 60, &new_shnum.to_le_bytes());
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

/// Little-endian field read from a header buffer.
fn field<const N: usize>(buf: &[u8], at: usize) -> Result<[u8; N], ElfError> {
    at.checked_add(N)
        .and_then(|end| buf.get(at..end))
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| ElfError::Malformed(format!("truncated header field at byte {at}")))
}

fn u16_at(buf: &[u8], at: usize) -> Result<u16, ElfError> {
    field(buf, at).map(u16::from_le_bytes)
}

fn u32_at(buf: &[u8], at: usize) -> Result<u32, ElfError> {
    field(buf, at).map(u32::from_le_bytes)
}

fn u64_at(buf: &[u8], at: usize) -> Result<u64, ElfError> {
    field(buf, at).map(u64::from_le_bytes)
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

/// The parts of the runner that packing reads, all checked against the file.
struct Parsed<'a> {
    file_len: u64,
    phoff: u64,
    /// Raw program header entries, in table order.
    phdrs: Vec<[u8; PHDR_SIZE]>,
    /// The program header turned into the payload's `PT_LOAD`: a `PT_NOTE` when there
    /// is one, else `PT_GNU_STACK`.
    reused: usize,
    /// End of the highest `PT_LOAD` in memory (`p_vaddr + p_memsz`).
    load_end: u64,
    shdr_table: &'a [u8],
    shnum: usize,
    shstrndx: usize,
    names: &'a [u8],
}

impl<'a> Parsed<'a> {
    fn parse(file: &'a [u8]) -> Result<Self, ElfError> {
        if file.get(..4) != Some(b"\x7fELF".as_slice()) {
            return Err(ElfError::NotElf);
        }
        let ehdr = file
            .get(..EHDR_SIZE)
            .ok_or_else(|| ElfError::Malformed("file is shorter than an ELF header".into()))?;
        let ident = |i: usize| ehdr.get(i).copied().unwrap_or_default();
        if ident(4) != ELFCLASS64 {
            return Err(ElfError::Unsupported(format!(
                "ELF class {} (only 64-bit ELF is supported)",
                ident(4)
            )));
        }
        if ident(5) != ELFDATA2LSB {
            return Err(ElfError::Unsupported(format!(
                "ELF data encoding {} (only little-endian is supported)",
                ident(5)
            )));
        }
        if ident(6) != EV_CURRENT {
            return Err(ElfError::Malformed(format!("ELF version {}", ident(6))));
        }
        let e_type = u16_at(ehdr, 16)?;
        if e_type != ET_EXEC && e_type != ET_DYN {
            return Err(ElfError::Unsupported(format!(
                "ELF type {e_type} is not an executable"
            )));
        }
        let machine = u16_at(ehdr, 18)?;
        if machine != EM_X86_64 && machine != EM_AARCH64 {
            return Err(ElfError::Unsupported(format!(
                "machine {machine} (only x86_64 and aarch64 are supported)"
            )));
        }
        let file_len = u64::try_from(file.len())
            .map_err(|_| ElfError::Malformed("file larger than 2^64 bytes".into()))?;

        // Program headers.
        let phoff = u64_at(ehdr, 32)?;
        let phentsize = u16_at(ehdr, 54)?;
        let phnum = u16_at(ehdr, 56)?;
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
        let phdr_bytes = slice(
            file,
            phoff,
            u64::from(phnum) * PHDR_SIZE as u64,
            "program header table",
        )?;
        let phdrs: Vec<[u8; PHDR_SIZE]> = phdr_bytes
            .chunks_exact(PHDR_SIZE)
            .filter_map(|c| c.try_into().ok())
            .collect();
        let mut gnu_stack = None;
        let mut note = None;
        let mut load_end: Option<u64> = None;
        for (i, ph) in phdrs.iter().enumerate() {
            match u32_at(ph, 0)? {
                PT_GNU_STACK if gnu_stack.is_none() => gnu_stack = Some(i),
                PT_NOTE if note.is_none() => note = Some(i),
                PT_LOAD => {
                    let (offset, vaddr) = (u64_at(ph, 8)?, u64_at(ph, 16)?);
                    let (filesz, memsz) = (u64_at(ph, 32)?, u64_at(ph, 40)?);
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
        let shoff = u64_at(ehdr, 40)?;
        let shentsize = u16_at(ehdr, 58)?;
        let shnum = usize::from(u16_at(ehdr, 60)?);
        let shstrndx = usize::from(u16_at(ehdr, 62)?);
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
        if shnum == 0 || shstrndx >= SHN_LORESERVE {
            return Err(ElfError::Unsupported(
                "extended section numbering (more than 65279 sections)".into(),
            ));
        }
        if shnum + 1 >= SHN_LORESERVE {
            return Err(ElfError::Unsupported(format!(
                "{shnum} sections: one more would need extended section numbering"
            )));
        }
        if shstrndx == 0 || shstrndx >= shnum {
            return Err(ElfError::Malformed(format!(
                "section name table index {shstrndx} is not among the {shnum} sections"
            )));
        }
        let shdr_table = slice(
            file,
            shoff,
            (shnum * SHDR_SIZE) as u64,
            "section header table",
        )?;
        let mut parsed = Self {
            file_len,
            phoff,
            phdrs,
            reused: 0,
            load_end,
            shdr_table,
            shnum,
            shstrndx,
            names: &[],
        };

        let names_hdr = parsed.shdr_raw(shstrndx)?;
        if u32_at(&names_hdr, 4)? != SHT_STRTAB {
            return Err(ElfError::Malformed(
                "the section name table is not a string table".into(),
            ));
        }
        if u64_at(&names_hdr, 8)? & SHF_ALLOC != 0 {
            // Moving it would leave its mapped copy stale; no linker produces this.
            return Err(ElfError::Unsupported(
                "the section name table is loaded into memory".into(),
            ));
        }
        parsed.names = slice(
            file,
            u64_at(&names_hdr, 24)?,
            u64_at(&names_hdr, 32)?,
            "section name table",
        )?;

        for index in 0..shnum {
            let raw = parsed.shdr_raw(index)?;
            let name = parsed.name(u32_at(&raw, 0)?, index)?;
            if name == SECTION_NAME.as_bytes() {
                return Err(ElfError::AlreadyPacked);
            }
            if u32_at(&raw, 4)? != SHT_NOBITS && index != 0 {
                slice(
                    file,
                    u64_at(&raw, 24)?,
                    u64_at(&raw, 32)?,
                    &format!("section {}", String::from_utf8_lossy(name)),
                )?;
            }
        }
        // Checked last so a packed runner (whose reused header is gone) reports that.
        parsed.reused = note.or(gnu_stack).ok_or(ElfError::NoSpareHeader)?;
        Ok(parsed)
    }

    fn shdr_raw(&self, index: usize) -> Result<[u8; SHDR_SIZE], ElfError> {
        index
            .checked_mul(SHDR_SIZE)
            .and_then(|start| self.shdr_table.get(start..start.checked_add(SHDR_SIZE)?))
            .and_then(|raw| raw.try_into().ok())
            .ok_or_else(|| ElfError::Malformed(format!("no section header {index}")))
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

    /// The program header table with `PT_GNU_STACK` replaced by `load`, placed so the
    /// `PT_LOAD` entries stay sorted by address (see the module documentation).
    fn new_program_headers(&self, load: [u8; PHDR_SIZE]) -> Vec<[u8; PHDR_SIZE]> {
        let is_load = |ph: &[u8; PHDR_SIZE]| u32_at(ph, 0).ok() == Some(PT_LOAD);
        let last_load = self.phdrs.iter().rposition(is_load).unwrap_or(0);
        let mut phdrs = self.phdrs.clone();
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
