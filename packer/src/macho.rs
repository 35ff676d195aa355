//! Packs a payload into a copy of a prebuilt Mach-O runner as a new segment, then signs it ad hoc.
//!
//! Layout written by [`embed`] (see "Embedding the payload" in the design notes):
//!
//! ```text
//! [ Mach-O header and load commands: + LC_SEGMENT_64 __RUSTLE (before __LINKEDIT's), ]
//! [ + LC_CODE_SIGNATURE when the runner had none; offsets into __LINKEDIT moved       ]
//! [ the runner's segments before __LINKEDIT, byte for byte                           ]
//! [ zero padding up to a 16 KiB boundary                                             ]
//! [ payload                                      <- __RUSTLE,__payload, read-only    ]
//! [ zero padding up to a 16 KiB boundary                                             ]
//! [ the runner's __LINKEDIT contents, moved, its old signature dropped               ]
//! [ a new ad-hoc code signature (16-byte aligned), then the end of the file          ]
//! ```
//!
//! Why this shape:
//! - Apple's tools and loader want `__LINKEDIT` to be the last segment and to reach the end
//!   of the file, with the code signature last inside it: data after the signature would
//!   be outside every hash (`codesign` rejects such files). So the payload gets a segment
//!   of its own, placed where `__LINKEDIT` began, and `__LINKEDIT` moves up behind it.
//! - Every file offset into `__LINKEDIT` (symbol table, dyld info, function starts,
//!   chained fixups, ...) moves with it. Load commands this module does not know might
//!   point there too, so they are refused rather than guessed at.
//! - Segment offsets and addresses are 16 KiB aligned: the page size of arm64 macOS, and
//!   a multiple of x86_64's 4 KiB, so one layout maps on both.
//! - The load commands grow into the zero padding linkers leave between them and the first
//!   section. When there is too little, packing fails: moving `__TEXT` is not an option.
//! - The chained-fixups table (`LC_DYLD_CHAINED_FIXUPS`) has one entry per segment, and
//!   current dyld refuses an image whose table does not cover every segment, so an empty
//!   entry is inserted for `__RUSTLE`.
//! - arm64 macOS kills a process whose pages do not match its signature, and any edit
//!   voids the linker's signature, so the file is signed again, in process: a SuperBlob
//!   with a SHA-256 CodeDirectory (4 KiB pages, the last one hashed truncated), an empty
//!   requirements set and an empty CMS slot, the shape `codesign -s -` gives. It is
//!   not marked linker-signed: it was not made by a linker. x86_64 does not insist on a
//!   signature, but gets the same one, so both architectures carry a valid one.
//! - `object::build::macho::Builder` is not used: it mis-orders segments when one is
//!   inserted (design notes). The few structures touched here are read and written by hand,
//!   every access checked against the buffer.

use rustle_runner::locate;
use sha2::{Digest, Sha256};

/// Segment that holds the payload (shared with the runner, which looks it up).
pub const SEGMENT_NAME: &str = locate::MACHO_SEGMENT;

/// Section of [`SEGMENT_NAME`] that holds the payload.
pub const SECTION_NAME: &str = locate::MACHO_SECTION;

/// Alignment of the payload segment and of the moved `__LINKEDIT`, in the file and in memory.
pub const SEGMENT_ALIGN: u64 = 0x4000;

/// Identifier written into the code signature (`codesign` would use the file name).
pub const SIGNING_IDENTIFIER: &str = "rustle-runner";

/// Why a runner could not be packed.
#[derive(Debug, thiserror::Error)]
pub enum MachoError {
    /// The runner does not start with a Mach-O magic number.
    #[error("the runner is not a Mach-O file (bad magic number)")]
    NotMachO,
    /// A universal (fat) file: several architectures in one file.
    #[error(
        "the runner is a universal (fat) Mach-O file; pack a thin runner for each architecture instead"
    )]
    Fat,
    /// A Mach-O file of a kind the packer does not handle.
    #[error("unsupported runner: {0}")]
    Unsupported(String),
    /// Headers that are truncated, inconsistent or point outside the file.
    #[error("malformed runner Mach-O: {0}")]
    Malformed(String),
    /// The load commands cannot grow: too little padding before the first section.
    #[error(
        "no room for {need} more bytes of load commands (only {have} free before the first section); relink the runner with more header padding (e.g. -headerpad 0x1000)"
    )]
    NoRoom {
        /// Bytes the new load commands need.
        need: u64,
        /// Free bytes after the existing load commands.
        have: u64,
    },
    /// The runner already carries a payload.
    #[error("the runner already has a {SEGMENT_NAME} segment (already packed)")]
    AlreadyPacked,
    /// The payload, or the file it would make, does not fit Mach-O's 32-bit offsets.
    #[error("payload of {len} bytes is too large to pack")]
    TooLarge {
        /// Payload length in bytes.
        len: usize,
    },
}

const HEADER_SIZE: usize = 32;
const SEGMENT_CMD_SIZE: usize = 72;
const SECTION_SIZE: usize = 80;
const LINKEDIT_DATA_CMD_SIZE: usize = 16;
/// A segment command with one section: the `__RUSTLE` command.
const PAYLOAD_CMD_SIZE: usize = SEGMENT_CMD_SIZE + SECTION_SIZE;

const MH_MAGIC_64: u32 = 0xfeed_facf;
const MH_CIGAM_64: u32 = 0xcffa_edfe;
const MH_MAGIC: u32 = 0xfeed_face;
const MH_CIGAM: u32 = 0xcefa_edfe;
const FAT_MAGIC: u32 = 0xcafe_babe;
const FAT_MAGIC_64: u32 = 0xcafe_babf;
const FAT_CIGAM: u32 = 0xbeba_feca;
const FAT_CIGAM_64: u32 = 0xbfba_feca;
const CPU_TYPE_X86_64: u32 = 0x0100_0007;
const CPU_TYPE_ARM64: u32 = 0x0100_000c;
const MH_EXECUTE: u32 = 2;

const LC_SEGMENT_64: u32 = 0x19;
const LC_SYMTAB: u32 = 0x2;
const LC_DYSYMTAB: u32 = 0xb;
const LC_TWOLEVEL_HINTS: u32 = 0x16;
const LC_CODE_SIGNATURE: u32 = 0x1d;
const LC_DYLD_INFO: u32 = 0x22;
const LC_DYLD_INFO_ONLY: u32 = 0x8000_0022;
const LC_NOTE: u32 = 0x31;
const LC_DYLD_CHAINED_FIXUPS: u32 = 0x8000_0034;
/// Commands made of a `linkedit_data_command` (offset and size of a blob in `__LINKEDIT`),
/// besides the code signature and chained fixups handled on their own.
const LINKEDIT_DATA_CMDS: &[u32] = &[
    0x1e,        // LC_SEGMENT_SPLIT_INFO
    0x26,        // LC_FUNCTION_STARTS
    0x29,        // LC_DATA_IN_CODE
    0x2b,        // LC_DYLIB_CODE_SIGN_DRS
    0x2e,        // LC_LINKER_OPTIMIZATION_HINT
    0x8000_0033, // LC_DYLD_EXPORTS_TRIE
    0x36,        // LC_ATOM_INFO
];
/// Commands known to hold no file offset into `__LINKEDIT` (their strings live inside the
/// command; LC_MAIN's and LC_ENCRYPTION_INFO_64's offsets point into `__TEXT`, which stays).
const PLAIN_CMDS: &[u32] = &[
    0x4,         // LC_THREAD
    0x5,         // LC_UNIXTHREAD
    0x8,         // LC_IDENT
    0xc,         // LC_LOAD_DYLIB
    0xd,         // LC_ID_DYLIB
    0xe,         // LC_LOAD_DYLINKER
    0xf,         // LC_ID_DYLINKER
    0x10,        // LC_PREBOUND_DYLIB
    0x12,        // LC_SUB_FRAMEWORK
    0x13,        // LC_SUB_UMBRELLA
    0x14,        // LC_SUB_CLIENT
    0x15,        // LC_SUB_LIBRARY
    0x17,        // LC_PREBIND_CKSUM
    0x1a,        // LC_ROUTINES_64
    0x1b,        // LC_UUID
    0x8000_0018, // LC_LOAD_WEAK_DYLIB
    0x8000_001c, // LC_RPATH
    0x8000_001f, // LC_REEXPORT_DYLIB
    0x20,        // LC_LAZY_LOAD_DYLIB
    0x8000_0023, // LC_LOAD_UPWARD_DYLIB
    0x24,        // LC_VERSION_MIN_MACOSX
    0x25,        // LC_VERSION_MIN_IPHONEOS
    0x27,        // LC_DYLD_ENVIRONMENT
    0x8000_0028, // LC_MAIN
    0x2a,        // LC_SOURCE_VERSION
    0x2c,        // LC_ENCRYPTION_INFO_64
    0x2d,        // LC_LINKER_OPTION
    0x2f,        // LC_VERSION_MIN_TVOS
    0x30,        // LC_VERSION_MIN_WATCHOS
    0x32,        // LC_BUILD_VERSION
];

const VM_PROT_READ: u32 = 1;
/// Section types without contents in the file.
const ZEROFILL_TYPES: &[u32] = &[0x1, 0xc, 0x12];

const CSMAGIC_EMBEDDED_SIGNATURE: u32 = 0xfade_0cc0;
const CSMAGIC_CODEDIRECTORY: u32 = 0xfade_0c02;
const CSMAGIC_REQUIREMENTS: u32 = 0xfade_0c01;
const CSMAGIC_BLOBWRAPPER: u32 = 0xfade_0b01;
const CSSLOT_CODEDIRECTORY: u32 = 0;
const CSSLOT_REQUIREMENTS: u32 = 2;
const CSSLOT_SIGNATURESLOT: u32 = 0x1_0000;
/// CodeDirectory version with the executable-segment fields.
const CD_VERSION: u32 = 0x2_0400;
const CD_HEADER_SIZE: usize = 88;
const CS_ADHOC: u32 = 0x2;
const CS_HASHTYPE_SHA256: u8 = 2;
const CS_EXECSEG_MAIN_BINARY: u64 = 1;
const SHA256_LEN: usize = 32;
const CS_PAGE_SHIFT: u8 = 12;
const CS_PAGE_SIZE: usize = 1 << CS_PAGE_SHIFT;
/// Special slots -1 (Info.plist, absent: zeros) and -2 (requirements).
const SPECIAL_SLOTS: usize = 2;
/// An empty requirements set: magic, length, count 0.
const REQUIREMENTS_LEN: usize = 12;
/// An empty CMS wrapper: magic and length only, as `codesign -s -` leaves it.
const CMS_LEN: usize = 8;
const SUPERBLOB_HEADER: usize = 12;
const SUPERBLOB_BLOBS: usize = 3;
const SIGNATURE_ALIGN: u64 = 16;

/// Returns a copy of `runner` carrying `payload` in a `__RUSTLE,__payload` section of a new
/// read-only segment, signed ad hoc (layout in the module documentation).
///
/// Only thin 64-bit little-endian executables for x86_64 and arm64 are accepted, with
/// room for the new load commands; anything else is an error, never a damaged file.
pub fn embed(runner: &[u8], payload: &[u8]) -> Result<Vec<u8>, MachoError> {
    let macho = Parsed::parse(runner)?;
    let too_large = || MachoError::TooLarge { len: payload.len() };
    let payload_len = u64::try_from(payload.len()).map_err(|_| too_large())?;
    let linkedit = macho.linkedit;

    // The payload goes where __LINKEDIT began; __LINKEDIT follows it.
    let payload_off = align_up(linkedit.fileoff, SEGMENT_ALIGN).ok_or_else(too_large)?;
    let payload_vmaddr = align_up(linkedit.vmaddr, SEGMENT_ALIGN).ok_or_else(too_large)?;
    // At least one page, so the segment never has an empty address range.
    let payload_vmsize = align_up(payload_len.max(1), SEGMENT_ALIGN).ok_or_else(too_large)?;
    let linkedit_off = payload_off
        .checked_add(payload_len)
        .and_then(|end| align_up(end, SEGMENT_ALIGN))
        .ok_or_else(too_large)?;
    let linkedit_vmaddr = payload_vmaddr
        .checked_add(payload_vmsize)
        .ok_or_else(too_large)?;

    let moved = macho.moved_linkedit()?;
    let content_len = u64::try_from(moved.content.len()).map_err(|_| too_large())?;
    let sig_off = linkedit_off
        .checked_add(content_len)
        .and_then(|end| align_up(end, SIGNATURE_ALIGN))
        .ok_or_else(too_large)?;
    let sig_len = signature_len(sig_off).ok_or_else(too_large)?;
    let file_end = sig_off.checked_add(sig_len).ok_or_else(too_large)?;
    // Every offset in the load commands that matter here is 32 bits wide.
    if file_end > u64::from(u32::MAX) {
        return Err(too_large());
    }
    let linkedit_filesize = file_end - linkedit_off;
    let linkedit_vmsize = align_up(linkedit_filesize, SEGMENT_ALIGN).ok_or_else(too_large)?;
    let relocate = |old: u64| moved.relocate(old, linkedit.fileoff, linkedit_off);

    // The new load commands, in order.
    let mut cmds = Vec::with_capacity(macho.sizeofcmds.saturating_add(PAYLOAD_CMD_SIZE * 2));
    for (index, cmd) in macho.cmds.iter().enumerate() {
        let mut raw = macho.cmd_bytes(cmd)?.to_vec();
        if index == macho.linkedit_cmd {
            cmds.extend_from_slice(&payload_command(
                payload_vmaddr,
                payload_vmsize,
                payload_off,
                payload_len,
            )?);
            put(&mut raw, 24, &linkedit_vmaddr.to_le_bytes());
            put(&mut raw, 32, &linkedit_vmsize.to_le_bytes());
            put(&mut raw, 40, &linkedit_off.to_le_bytes());
            put(&mut raw, 48, &linkedit_filesize.to_le_bytes());
        }
        if Some(index) == macho.signature_cmd {
            put(&mut raw, 8, &to_u32(sig_off)?.to_le_bytes());
            put(&mut raw, 12, &to_u32(sig_len)?.to_le_bytes());
        }
        for field in macho.refs.iter().filter(|r| r.cmd == index) {
            let new = relocate(field.offset).ok_or_else(too_large)?;
            if field.wide {
                put(&mut raw, field.at, &new.to_le_bytes());
            } else {
                put(&mut raw, field.at, &to_u32(new)?.to_le_bytes());
            }
        }
        if Some(index) == macho.chained_cmd {
            let size = u32::try_from(moved.chained_len).map_err(|_| too_large())?;
            put(&mut raw, 12, &size.to_le_bytes());
        }
        cmds.extend_from_slice(&raw);
    }
    let mut ncmds = macho.ncmds.checked_add(1).ok_or_else(too_large)?;
    if macho.signature_cmd.is_none() {
        let mut raw = [0u8; LINKEDIT_DATA_CMD_SIZE];
        put(&mut raw, 0, &LC_CODE_SIGNATURE.to_le_bytes());
        put(&mut raw, 4, &(LINKEDIT_DATA_CMD_SIZE as u32).to_le_bytes());
        put(&mut raw, 8, &to_u32(sig_off)?.to_le_bytes());
        put(&mut raw, 12, &to_u32(sig_len)?.to_le_bytes());
        cmds.extend_from_slice(&raw);
        ncmds = ncmds.checked_add(1).ok_or_else(too_large)?;
    }
    let sizeofcmds = u32::try_from(cmds.len()).map_err(|_| too_large())?;

    let total = to_usize(file_end).ok_or_else(too_large)?;
    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(macho.before_linkedit()?);
    out.resize(to_usize(payload_off).ok_or_else(too_large)?, 0);
    out.extend_from_slice(payload);
    out.resize(to_usize(linkedit_off).ok_or_else(too_large)?, 0);
    out.extend_from_slice(&moved.content);
    out.resize(to_usize(sig_off).ok_or_else(too_large)?, 0);

    // The grown load commands overwrite header padding that `parse` found to be zeros.
    put(&mut out, 16, &ncmds.to_le_bytes());
    put(&mut out, 20, &sizeofcmds.to_le_bytes());
    put(&mut out, HEADER_SIZE, &cmds);

    let signature = code_signature(&out, macho.text_fileoff, macho.text_filesize)?;
    if u64::try_from(signature.len()).ok() > Some(sig_len) {
        return Err(MachoError::Malformed(
            "internal error: the code signature outgrew its reserved space".into(),
        ));
    }
    out.extend_from_slice(&signature);
    out.resize(total, 0);
    Ok(out)
}

/// The `LC_SEGMENT_64` command for `__RUSTLE`, with its one section `__payload`.
fn payload_command(
    vmaddr: u64,
    vmsize: u64,
    fileoff: u64,
    filesize: u64,
) -> Result<[u8; PAYLOAD_CMD_SIZE], MachoError> {
    let mut raw = [0u8; PAYLOAD_CMD_SIZE];
    put(&mut raw, 0, &LC_SEGMENT_64.to_le_bytes());
    put(&mut raw, 4, &(PAYLOAD_CMD_SIZE as u32).to_le_bytes());
    put(&mut raw, 8, SEGMENT_NAME.as_bytes());
    put(&mut raw, 24, &vmaddr.to_le_bytes());
    put(&mut raw, 32, &vmsize.to_le_bytes());
    put(&mut raw, 40, &fileoff.to_le_bytes());
    put(&mut raw, 48, &filesize.to_le_bytes());
    put(&mut raw, 56, &VM_PROT_READ.to_le_bytes()); // maxprot
    put(&mut raw, 60, &VM_PROT_READ.to_le_bytes()); // initprot
    put(&mut raw, 64, &1u32.to_le_bytes()); // nsects
    let sect = SEGMENT_CMD_SIZE;
    put(&mut raw, sect, SECTION_NAME.as_bytes());
    put(&mut raw, sect + 16, SEGMENT_NAME.as_bytes());
    put(&mut raw, sect + 32, &vmaddr.to_le_bytes());
    put(&mut raw, sect + 40, &filesize.to_le_bytes());
    // The section offset is 32 bits wide; the caller keeps the file below 4 GiB.
    put(&mut raw, sect + 48, &to_u32(fileoff)?.to_le_bytes());
    // align (2^0), relocations, flags (S_REGULAR) and reserved fields stay zero.
    Ok(raw)
}

/// Size reserved for the signature of a file whose signed part is `code_limit` bytes long.
fn signature_len(code_limit: u64) -> Option<u64> {
    let pages = code_limit.div_ceil(CS_PAGE_SIZE as u64);
    let cd = code_directory_len(pages)?;
    let blobs = (SUPERBLOB_HEADER + SUPERBLOB_BLOBS * 8 + REQUIREMENTS_LEN + CMS_LEN) as u64;
    align_up(cd.checked_add(blobs)?, SIGNATURE_ALIGN)
}

fn code_directory_len(pages: u64) -> Option<u64> {
    let slots = pages.checked_add(SPECIAL_SLOTS as u64)?;
    let hashes = slots.checked_mul(SHA256_LEN as u64)?;
    // The identifier is stored NUL-terminated.
    let fixed = (CD_HEADER_SIZE + SIGNING_IDENTIFIER.len() + 1) as u64;
    fixed.checked_add(hashes)
}

/// The embedded signature (SuperBlob) for `file`, which holds everything before it.
/// All code-signing structures are big-endian.
fn code_signature(file: &[u8], text_off: u64, text_size: u64) -> Result<Vec<u8>, MachoError> {
    let too_large = || MachoError::Malformed("file too large to sign".into());
    let code_limit = u32::try_from(file.len()).map_err(|_| too_large())?;
    let pages = file.len().div_ceil(CS_PAGE_SIZE);
    let cd_len = code_directory_len(pages as u64)
        .and_then(|l| u32::try_from(l).ok())
        .ok_or_else(too_large)?;
    let ident_off = CD_HEADER_SIZE as u32;
    let hash_off =
        ident_off + SIGNING_IDENTIFIER.len() as u32 + 1 + (SPECIAL_SLOTS * SHA256_LEN) as u32;

    let mut cd = Vec::with_capacity(to_usize(u64::from(cd_len)).ok_or_else(too_large)?);
    cd.extend_from_slice(&CSMAGIC_CODEDIRECTORY.to_be_bytes());
    cd.extend_from_slice(&cd_len.to_be_bytes());
    cd.extend_from_slice(&CD_VERSION.to_be_bytes());
    cd.extend_from_slice(&CS_ADHOC.to_be_bytes());
    cd.extend_from_slice(&hash_off.to_be_bytes());
    cd.extend_from_slice(&ident_off.to_be_bytes());
    cd.extend_from_slice(&(SPECIAL_SLOTS as u32).to_be_bytes());
    cd.extend_from_slice(&u32::try_from(pages).map_err(|_| too_large())?.to_be_bytes());
    cd.extend_from_slice(&code_limit.to_be_bytes());
    cd.extend_from_slice(&[SHA256_LEN as u8, CS_HASHTYPE_SHA256, 0, CS_PAGE_SHIFT]);
    cd.extend_from_slice(&0u32.to_be_bytes()); // spare2
    cd.extend_from_slice(&0u32.to_be_bytes()); // scatterOffset: none
    cd.extend_from_slice(&0u32.to_be_bytes()); // teamOffset: none (ad hoc)
    cd.extend_from_slice(&0u32.to_be_bytes()); // spare3
    cd.extend_from_slice(&0u64.to_be_bytes()); // codeLimit64: codeLimit suffices
    cd.extend_from_slice(&text_off.to_be_bytes()); // execSegBase
    cd.extend_from_slice(&text_size.to_be_bytes()); // execSegLimit
    cd.extend_from_slice(&CS_EXECSEG_MAIN_BINARY.to_be_bytes());
    cd.extend_from_slice(SIGNING_IDENTIFIER.as_bytes());
    cd.push(0);
    // Special slots, most negative first: -2 requirements, -1 Info.plist (none: zeros).
    cd.extend_from_slice(&Sha256::digest(empty_requirements()));
    cd.extend_from_slice(&[0u8; SHA256_LEN]);
    // One hash per 4 KiB page; the last page is hashed as it is, not padded.
    for page in file.chunks(CS_PAGE_SIZE) {
        cd.extend_from_slice(&Sha256::digest(page));
    }
    if cd.len() != cd_len as usize {
        return Err(MachoError::Malformed(
            "internal error: CodeDirectory size mismatch".into(),
        ));
    }

    let index_len = (SUPERBLOB_HEADER + SUPERBLOB_BLOBS * 8) as u32;
    let req_at = index_len + cd_len;
    let cms_at = req_at + REQUIREMENTS_LEN as u32;
    let total = cms_at + CMS_LEN as u32;
    let mut blob = Vec::with_capacity(total as usize);
    blob.extend_from_slice(&CSMAGIC_EMBEDDED_SIGNATURE.to_be_bytes());
    blob.extend_from_slice(&total.to_be_bytes());
    blob.extend_from_slice(&(SUPERBLOB_BLOBS as u32).to_be_bytes());
    for (slot, at) in [
        (CSSLOT_CODEDIRECTORY, index_len),
        (CSSLOT_REQUIREMENTS, req_at),
        (CSSLOT_SIGNATURESLOT, cms_at),
    ] {
        blob.extend_from_slice(&slot.to_be_bytes());
        blob.extend_from_slice(&at.to_be_bytes());
    }
    blob.extend_from_slice(&cd);
    blob.extend_from_slice(&empty_requirements());
    blob.extend_from_slice(&CSMAGIC_BLOBWRAPPER.to_be_bytes());
    blob.extend_from_slice(&(CMS_LEN as u32).to_be_bytes());
    Ok(blob)
}

/// The requirements blob of an ad-hoc signature: no requirements (count 0).
fn empty_requirements() -> [u8; REQUIREMENTS_LEN] {
    let mut blob = [0u8; REQUIREMENTS_LEN];
    put(&mut blob, 0, &CSMAGIC_REQUIREMENTS.to_be_bytes());
    put(&mut blob, 4, &(REQUIREMENTS_LEN as u32).to_be_bytes());
    blob
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

fn to_u32(value: u64) -> Result<u32, MachoError> {
    u32::try_from(value).map_err(|_| {
        MachoError::Unsupported(format!(
            "offset {value} does not fit the 32-bit fields of Mach-O load commands"
        ))
    })
}

/// Little-endian field read from a header buffer.
fn field<const N: usize>(buf: &[u8], at: usize) -> Result<[u8; N], MachoError> {
    at.checked_add(N)
        .and_then(|end| buf.get(at..end))
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| MachoError::Malformed(format!("truncated header field at byte {at}")))
}

fn u32_at(buf: &[u8], at: usize) -> Result<u32, MachoError> {
    field(buf, at).map(u32::from_le_bytes)
}

fn u64_at(buf: &[u8], at: usize) -> Result<u64, MachoError> {
    field(buf, at).map(u64::from_le_bytes)
}

/// The 16 raw bytes of a fixed-size, NUL-padded segment or section name.
fn name16(buf: &[u8], at: usize) -> Result<[u8; 16], MachoError> {
    field::<16>(buf, at)
}

fn name_is(raw: &[u8; 16], want: &str) -> bool {
    let end = raw.iter().position(|&b| b == 0).unwrap_or(raw.len());
    raw.get(..end) == Some(want.as_bytes())
}

/// One load command: where it is in the file, its type and its size.
#[derive(Clone, Copy)]
struct Cmd {
    at: usize,
    kind: u32,
    size: usize,
}

/// The placement of one segment.
#[derive(Clone, Copy)]
struct Segment {
    vmaddr: u64,
    vmsize: u64,
    fileoff: u64,
    filesize: u64,
}

/// A field of a load command holding a file offset into `__LINKEDIT`.
struct LinkeditRef {
    /// Index of the load command.
    cmd: usize,
    /// Byte position of the offset field inside the command.
    at: usize,
    /// Whether the field is 64 bits wide (`LC_NOTE`) rather than 32.
    wide: bool,
    /// The offset it holds.
    offset: u64,
}

/// The parts of the runner that packing reads, all checked against the file.
struct Parsed<'a> {
    file: &'a [u8],
    ncmds: u32,
    sizeofcmds: usize,
    cmds: Vec<Cmd>,
    linkedit: Segment,
    /// Index of `__LINKEDIT`'s command among all load commands.
    linkedit_cmd: usize,
    /// Index of `__LINKEDIT` among the segments (the order dyld numbers them in).
    linkedit_segment: usize,
    text_fileoff: u64,
    text_filesize: u64,
    signature_cmd: Option<usize>,
    chained_cmd: Option<usize>,
    /// `(offset, size)` of the chained-fixups blob.
    chained: Option<(u64, u64)>,
    /// End of `__LINKEDIT`'s contents, less any code signature (which is rebuilt).
    content_end: u64,
    refs: Vec<LinkeditRef>,
}

/// `__LINKEDIT`'s new contents, and how its old offsets map onto them.
struct MovedLinkedit {
    content: Vec<u8>,
    /// Where the chained-fixups blob ended in the old file, and how much it grew.
    chained_end: u64,
    grown: u64,
    chained_len: u64,
}

impl MovedLinkedit {
    /// New file offset of an old offset into `__LINKEDIT`.
    fn relocate(&self, old: u64, old_base: u64, new_base: u64) -> Option<u64> {
        let moved = old.checked_sub(old_base)?.checked_add(new_base)?;
        if self.grown > 0 && old >= self.chained_end {
            moved.checked_add(self.grown)
        } else {
            Some(moved)
        }
    }
}

impl<'a> Parsed<'a> {
    fn parse(file: &'a [u8]) -> Result<Self, MachoError> {
        let magic = match file.get(..4) {
            Some(&[a, b, c, d]) => u32::from_le_bytes([a, b, c, d]),
            _ => return Err(MachoError::NotMachO),
        };
        match magic {
            MH_MAGIC_64 => {}
            FAT_CIGAM | FAT_CIGAM_64 => return Err(MachoError::Fat),
            MH_MAGIC | MH_CIGAM => {
                return Err(MachoError::Unsupported("32-bit Mach-O".into()));
            }
            MH_CIGAM_64 => return Err(MachoError::Unsupported("big-endian Mach-O".into())),
            FAT_MAGIC | FAT_MAGIC_64 => return Err(MachoError::Fat),
            _ => return Err(MachoError::NotMachO),
        }
        let header = file
            .get(..HEADER_SIZE)
            .ok_or_else(|| MachoError::Malformed("file is shorter than a Mach-O header".into()))?;
        let cputype = u32_at(header, 4)?;
        if cputype != CPU_TYPE_X86_64 && cputype != CPU_TYPE_ARM64 {
            return Err(MachoError::Unsupported(format!(
                "CPU type {cputype:#x} (only x86_64 and arm64 are supported)"
            )));
        }
        let filetype = u32_at(header, 12)?;
        if filetype != MH_EXECUTE {
            return Err(MachoError::Unsupported(format!(
                "file type {filetype} is not an executable"
            )));
        }
        let ncmds = u32_at(header, 16)?;
        let sizeofcmds = to_usize(u64::from(u32_at(header, 20)?))
            .ok_or_else(|| MachoError::Malformed("load commands too large".into()))?;
        let cmds_end = HEADER_SIZE
            .checked_add(sizeofcmds)
            .filter(|&end| end <= file.len())
            .ok_or_else(|| {
                MachoError::Malformed(format!(
                    "load commands ({sizeofcmds} bytes) extend past the end of the file"
                ))
            })?;
        let file_len = file.len() as u64;

        // Walk the load commands. Each is at least 8 bytes, so a huge `ncmds` stops at the
        // end of `sizeofcmds` instead of looping on.
        let mut cmds = Vec::new();
        let mut at = HEADER_SIZE;
        for index in 0..ncmds {
            let kind = u32_at(file, at)?;
            let size = to_usize(u64::from(u32_at(file, at.saturating_add(4))?)).unwrap_or(0);
            let end = at.saturating_add(size);
            if size < 8 || !size.is_multiple_of(8) || end > cmds_end {
                return Err(MachoError::Malformed(format!(
                    "load command {index} (size {size}) does not fit the load command area"
                )));
            }
            cmds.push(Cmd { at, kind, size });
            at = end;
        }
        if at != cmds_end {
            return Err(MachoError::Malformed(format!(
                "load commands take {} bytes, the header says {sizeofcmds}",
                at - HEADER_SIZE
            )));
        }

        let mut parsed = Self {
            file,
            ncmds,
            sizeofcmds,
            cmds,
            linkedit: Segment {
                vmaddr: 0,
                vmsize: 0,
                fileoff: 0,
                filesize: 0,
            },
            linkedit_cmd: 0,
            linkedit_segment: 0,
            text_fileoff: 0,
            text_filesize: 0,
            signature_cmd: None,
            chained_cmd: None,
            chained: None,
            content_end: 0,
            refs: Vec::new(),
        };

        // Segments: find __TEXT and __LINKEDIT, and where file contents first begin.
        let mut segments: Vec<(usize, [u8; 16], Segment)> = Vec::new();
        let mut first_data = file_len;
        for (index, cmd) in parsed.cmds.iter().enumerate() {
            if cmd.kind != LC_SEGMENT_64 {
                continue;
            }
            let raw = parsed.cmd_bytes(cmd)?;
            let name = name16(raw, 8)?;
            let seg = Segment {
                vmaddr: u64_at(raw, 24)?,
                vmsize: u64_at(raw, 32)?,
                fileoff: u64_at(raw, 40)?,
                filesize: u64_at(raw, 48)?,
            };
            let seg_end = seg.fileoff.checked_add(seg.filesize);
            if seg_end.is_none_or(|end| end > file_len) {
                return Err(MachoError::Malformed(format!(
                    "segment {} extends past the end of the file",
                    String::from_utf8_lossy(&name)
                )));
            }
            if seg.vmaddr.checked_add(seg.vmsize).is_none() {
                return Err(MachoError::Malformed(
                    "a segment wraps the address space".into(),
                ));
            }
            if seg.fileoff > 0 && seg.filesize > 0 {
                first_data = first_data.min(seg.fileoff);
            }
            let nsects = to_usize(u64::from(u32_at(raw, 64)?)).unwrap_or(usize::MAX);
            let sects_end = nsects
                .checked_mul(SECTION_SIZE)
                .and_then(|s| s.checked_add(SEGMENT_CMD_SIZE));
            if sects_end.is_none_or(|end| end > raw.len()) {
                return Err(MachoError::Malformed(format!(
                    "segment command {index} is too small for its {nsects} sections"
                )));
            }
            for s in 0..nsects {
                let base = SEGMENT_CMD_SIZE + s * SECTION_SIZE;
                let sect_type = u32_at(raw, base + 64)? & 0xff;
                let offset = u64::from(u32_at(raw, base + 48)?);
                if offset != 0 && !ZEROFILL_TYPES.contains(&sect_type) {
                    first_data = first_data.min(offset);
                }
            }
            segments.push((index, name, seg));
        }
        if segments.iter().any(|(_, n, _)| name_is(n, SEGMENT_NAME)) {
            return Err(MachoError::AlreadyPacked);
        }
        let find = |want: &str| -> Result<(usize, usize, Segment), MachoError> {
            let mut hits = segments
                .iter()
                .enumerate()
                .filter(|(_, (_, n, _))| name_is(n, want));
            match (hits.next(), hits.next()) {
                (Some((ordinal, (index, _, seg))), None) => Ok((ordinal, *index, *seg)),
                (None, _) => Err(MachoError::Malformed(format!("no {want} segment"))),
                (Some(_), Some(_)) => Err(MachoError::Malformed(format!(
                    "more than one {want} segment"
                ))),
            }
        };
        let (_, _, text) = find("__TEXT")?;
        parsed.text_fileoff = text.fileoff;
        parsed.text_filesize = text.filesize;
        let (linkedit_segment, linkedit_cmd, linkedit) = find("__LINKEDIT")?;
        if linkedit_segment + 1 != segments.len() {
            return Err(MachoError::Unsupported(
                "__LINKEDIT is not the last segment command".into(),
            ));
        }
        let linkedit_raw = parsed.cmd_bytes_at(linkedit_cmd)?;
        if u32_at(linkedit_raw, 64)? != 0 {
            return Err(MachoError::Unsupported("__LINKEDIT has sections".into()));
        }
        let linkedit_end = linkedit.fileoff.saturating_add(linkedit.filesize);
        if linkedit_end != file_len {
            return Err(MachoError::Unsupported(format!(
                "__LINKEDIT ends at byte {linkedit_end}, not at the end of the file ({file_len} bytes)"
            )));
        }
        for (_, name, seg) in &segments {
            let before_in_file =
                seg.filesize == 0 || seg.fileoff.saturating_add(seg.filesize) <= linkedit.fileoff;
            let before_in_memory = seg.vmaddr.saturating_add(seg.vmsize) <= linkedit.vmaddr;
            let placed_before = before_in_file && before_in_memory;
            if !(placed_before || name_is(name, "__LINKEDIT")) {
                return Err(MachoError::Unsupported(format!(
                    "segment {} lies after __LINKEDIT",
                    String::from_utf8_lossy(name).trim_end_matches('\0')
                )));
            }
        }
        parsed.linkedit = linkedit;
        parsed.linkedit_cmd = linkedit_cmd;
        parsed.linkedit_segment = linkedit_segment;

        // Room for the new load commands, in the zero padding after the existing ones.
        let need = PAYLOAD_CMD_SIZE as u64;
        let need = if parsed.has_cmd(LC_CODE_SIGNATURE) {
            need
        } else {
            need + LINKEDIT_DATA_CMD_SIZE as u64
        };
        let have = first_data.saturating_sub(cmds_end as u64);
        if have < need {
            return Err(MachoError::NoRoom { need, have });
        }
        let pad = file
            .get(cmds_end..cmds_end.saturating_add(need as usize))
            .ok_or_else(|| MachoError::Malformed("load command padding past the end".into()))?;
        if pad.iter().any(|&b| b != 0) {
            return Err(MachoError::Unsupported(
                "the bytes after the load commands are not zero padding".into(),
            ));
        }

        parsed.collect_linkedit_refs()?;
        Ok(parsed)
    }

    fn has_cmd(&self, kind: u32) -> bool {
        self.cmds.iter().any(|c| c.kind == kind)
    }

    fn cmd_bytes(&self, cmd: &Cmd) -> Result<&'a [u8], MachoError> {
        cmd.at
            .checked_add(cmd.size)
            .and_then(|end| self.file.get(cmd.at..end))
            .ok_or_else(|| MachoError::Malformed("load command past the end of the file".into()))
    }

    fn cmd_bytes_at(&self, index: usize) -> Result<&'a [u8], MachoError> {
        let cmd = self
            .cmds
            .get(index)
            .ok_or_else(|| MachoError::Malformed(format!("no load command {index}")))?;
        self.cmd_bytes(cmd)
    }

    /// Everything before `__LINKEDIT`, copied unchanged (the header is patched later).
    fn before_linkedit(&self) -> Result<&'a [u8], MachoError> {
        to_usize(self.linkedit.fileoff)
            .and_then(|end| self.file.get(..end))
            .ok_or_else(|| MachoError::Malformed("__LINKEDIT starts past the end".into()))
    }

    /// Finds every load-command field that holds an offset into `__LINKEDIT`, checks each
    /// range lies inside it, and refuses commands whose contents are unknown.
    fn collect_linkedit_refs(&mut self) -> Result<(), MachoError> {
        // (command index, field position, size in bytes, wide?) for each offset field.
        let mut fields: Vec<(usize, usize, u64, bool)> = Vec::new();
        let mut signature = None;
        let mut chained = None;
        for (index, cmd) in self.cmds.iter().enumerate() {
            let raw = self.cmd_bytes(cmd)?;
            let need = |len: usize| -> Result<(), MachoError> {
                if raw.len() < len {
                    return Err(MachoError::Malformed(format!(
                        "load command {index} ({:#x}) is {} bytes, expected {len}",
                        cmd.kind,
                        raw.len()
                    )));
                }
                Ok(())
            };
            // Offset fields paired with the byte length of what they point at.
            let mut pair = |at: usize, len_at: usize, unit: u64| -> Result<(), MachoError> {
                let len = u64::from(u32_at(raw, len_at)?).saturating_mul(unit);
                fields.push((index, at, len, false));
                Ok(())
            };
            match cmd.kind {
                LC_SEGMENT_64 => {}
                LC_SYMTAB => {
                    need(24)?;
                    pair(8, 12, 16)?; // nlist_64 entries
                    pair(16, 20, 1)?; // string table
                }
                LC_DYSYMTAB => {
                    need(80)?;
                    pair(32, 36, 8)?; // table of contents
                    pair(40, 44, 56)?; // module table (dylib_module_64)
                    pair(48, 52, 4)?; // referenced symbols
                    pair(56, 60, 4)?; // indirect symbols
                    pair(64, 68, 8)?; // external relocations
                    pair(72, 76, 8)?; // local relocations
                }
                LC_DYLD_INFO | LC_DYLD_INFO_ONLY => {
                    need(48)?;
                    for at in [8, 16, 24, 32, 40] {
                        pair(at, at + 4, 1)?;
                    }
                }
                LC_TWOLEVEL_HINTS => {
                    need(16)?;
                    pair(8, 12, 4)?;
                }
                LC_CODE_SIGNATURE => {
                    need(LINKEDIT_DATA_CMD_SIZE)?;
                    if signature.is_some() {
                        return Err(MachoError::Malformed(
                            "more than one LC_CODE_SIGNATURE".into(),
                        ));
                    }
                    signature = Some((
                        index,
                        u64::from(u32_at(raw, 8)?),
                        u64::from(u32_at(raw, 12)?),
                    ));
                }
                LC_DYLD_CHAINED_FIXUPS => {
                    need(LINKEDIT_DATA_CMD_SIZE)?;
                    if chained.is_some() {
                        return Err(MachoError::Malformed(
                            "more than one LC_DYLD_CHAINED_FIXUPS".into(),
                        ));
                    }
                    chained = Some((
                        index,
                        u64::from(u32_at(raw, 8)?),
                        u64::from(u32_at(raw, 12)?),
                    ));
                    pair(8, 12, 1)?;
                }
                LC_NOTE => {
                    need(40)?;
                    let (offset, size) = (u64_at(raw, 24)?, u64_at(raw, 32)?);
                    // A note before __LINKEDIT stays where it is; one inside moves with it.
                    if offset.saturating_add(size) > self.linkedit.fileoff {
                        fields.push((index, 24, size, true));
                    }
                }
                kind if LINKEDIT_DATA_CMDS.contains(&kind) => {
                    need(LINKEDIT_DATA_CMD_SIZE)?;
                    pair(8, 12, 1)?;
                }
                kind if PLAIN_CMDS.contains(&kind) => {}
                kind => {
                    return Err(MachoError::Unsupported(format!(
                        "load command {kind:#x} is unknown to the packer, and may point into __LINKEDIT, which packing moves"
                    )));
                }
            }
        }

        if let Some((index, offset, size)) = chained {
            self.chained_cmd = Some(index);
            self.chained = Some((offset, size));
        }
        let linkedit_end = self.linkedit.fileoff.saturating_add(self.linkedit.filesize);
        self.content_end = linkedit_end;
        if let Some((index, offset, size)) = signature {
            // The signature is rebuilt, so it must be the last thing in the file.
            if offset < self.linkedit.fileoff || offset.checked_add(size) != Some(linkedit_end) {
                return Err(MachoError::Unsupported(
                    "the code signature is not at the end of __LINKEDIT".into(),
                ));
            }
            self.signature_cmd = Some(index);
            self.content_end = offset;
        }

        for (cmd, at, len, wide) in fields {
            let raw = self.cmd_bytes_at(cmd)?;
            let offset = if wide {
                u64_at(raw, at)?
            } else {
                u64::from(u32_at(raw, at)?)
            };
            if offset == 0 && len == 0 {
                continue; // Absent.
            }
            let inside = offset >= self.linkedit.fileoff
                && offset
                    .checked_add(len)
                    .is_some_and(|end| end <= self.content_end);
            if !inside {
                let kind = self.cmds.get(cmd).map_or(0, |c| c.kind);
                return Err(MachoError::Malformed(format!(
                    "load command {cmd} ({kind:#x}) points at {len} bytes at offset {offset}, outside __LINKEDIT's contents ({}..{})",
                    self.linkedit.fileoff, self.content_end
                )));
            }
            self.refs.push(LinkeditRef {
                cmd,
                at,
                wide,
                offset,
            });
        }
        Ok(())
    }

    /// `__LINKEDIT`'s contents for the packed file: the same bytes, less the old signature,
    /// with the chained-fixups table widened by the one segment packing adds.
    fn moved_linkedit(&self) -> Result<MovedLinkedit, MachoError> {
        let range = |start: u64, end: u64| {
            to_usize(start)
                .zip(to_usize(end))
                .and_then(|(s, e)| self.file.get(s..e))
                .ok_or_else(|| MachoError::Malformed("__LINKEDIT range outside the file".into()))
        };
        let Some((offset, size)) = self.chained else {
            return Ok(MovedLinkedit {
                content: range(self.linkedit.fileoff, self.content_end)?.to_vec(),
                chained_end: self.content_end,
                grown: 0,
                chained_len: 0,
            });
        };
        let end = offset.saturating_add(size);
        let blob = range(offset, end)?;
        let widened = widen_chained_starts(blob, self.linkedit_segment)?;
        let mut content = range(self.linkedit.fileoff, offset)?.to_vec();
        content.extend_from_slice(&widened);
        content.extend_from_slice(range(end, self.content_end)?);
        let chained_len = widened.len() as u64;
        Ok(MovedLinkedit {
            content,
            chained_end: end,
            grown: chained_len.saturating_sub(size),
            chained_len,
        })
    }
}

/// Inserts an empty entry at `index` into the per-segment table of a chained-fixups blob
/// (`dyld_chained_starts_in_image`), so it covers the new segment.
///
/// When the table is followed by at least 4 bytes of padding the blob keeps its size;
/// otherwise it grows by 8 bytes (the new entry and 4 bytes of padding), so the 8-byte
/// alignment of the per-segment structures and of everything after the blob is kept.
fn widen_chained_starts(blob: &[u8], index: usize) -> Result<Vec<u8>, MachoError> {
    let bad = |what: &str| MachoError::Malformed(format!("chained fixups: {what}"));
    let starts = to_usize(u64::from(u32_at(blob, 4)?)).ok_or_else(|| bad("starts offset"))?;
    let imports = u32_at(blob, 8)?;
    let symbols = u32_at(blob, 12)?;
    let seg_count = u32_at(blob, starts)?;
    let count = to_usize(u64::from(seg_count)).ok_or_else(|| bad("segment count"))?;
    if count != index + 1 {
        return Err(MachoError::Unsupported(format!(
            "the chained-fixups table covers {count} segments, the runner has {}",
            index + 1
        )));
    }
    let table = starts.checked_add(4).ok_or_else(|| bad("starts offset"))?;
    let table_end = count
        .checked_mul(4)
        .and_then(|l| table.checked_add(l))
        .filter(|&end| end <= blob.len())
        .ok_or_else(|| bad("segment table runs past the blob"))?;
    let mut entries = Vec::with_capacity(count + 1);
    for i in 0..count {
        entries.push(u32_at(blob, table + i * 4)?);
    }
    // Where the data after the table begins (relative to the blob).
    let first = entries
        .iter()
        .filter(|&&e| e != 0)
        .filter_map(|&e| starts.checked_add(to_usize(u64::from(e))?))
        .min()
        .unwrap_or(to_usize(u64::from(imports)).unwrap_or(usize::MAX));
    let imports_at = to_usize(u64::from(imports)).unwrap_or(usize::MAX);
    let symbols_at = to_usize(u64::from(symbols)).unwrap_or(usize::MAX);
    if first < table_end
        || imports_at < table_end
        || imports_at > blob.len()
        || symbols_at < imports_at
        || symbols_at > blob.len()
    {
        return Err(bad("tables out of order"));
    }
    let padded = table_end.checked_add(4).is_some_and(|end| end <= first);
    let grow: u32 = if padded { 0 } else { 8 };
    entries.insert(index, 0);

    let mut out = Vec::with_capacity(blob.len().saturating_add(8));
    out.extend_from_slice(blob.get(..starts).ok_or_else(|| bad("starts offset"))?);
    out.extend_from_slice(&(seg_count.saturating_add(1)).to_le_bytes());
    for entry in entries {
        let moved = if entry == 0 {
            0
        } else {
            entry
                .checked_add(grow)
                .ok_or_else(|| bad("offset overflow"))?
        };
        out.extend_from_slice(&moved.to_le_bytes());
    }
    if padded {
        out.extend_from_slice(blob.get(table_end + 4..).ok_or_else(|| bad("padding"))?);
    } else {
        out.extend_from_slice(&[0u8; 4]);
        out.extend_from_slice(blob.get(table_end..).ok_or_else(|| bad("table end"))?);
    }
    let imports = imports
        .checked_add(grow)
        .ok_or_else(|| bad("offset overflow"))?;
    let symbols = symbols
        .checked_add(grow)
        .ok_or_else(|| bad("offset overflow"))?;
    put(&mut out, 8, &imports.to_le_bytes());
    put(&mut out, 12, &symbols.to_le_bytes());
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A chained-fixups blob: header, a starts table for `entries`, `gap` bytes of padding,
    /// 24 bytes of per-segment data, then imports and symbols.
    fn chained(entries: &[u32], gap: usize) -> Vec<u8> {
        let starts = 32u32;
        let mut blob = vec![0u8; 32];
        blob[4..8].copy_from_slice(&starts.to_le_bytes());
        blob.extend_from_slice(&(entries.len() as u32).to_le_bytes());
        for e in entries {
            blob.extend_from_slice(&e.to_le_bytes());
        }
        blob.extend(std::iter::repeat_n(0, gap));
        blob.extend_from_slice(&[0xaa; 24]);
        let imports = blob.len() as u32;
        blob.extend_from_slice(&[0xbb; 8]);
        let symbols = blob.len() as u32;
        blob.extend_from_slice(b"\0_sym\0\0\0");
        blob[8..12].copy_from_slice(&imports.to_le_bytes());
        blob[12..16].copy_from_slice(&symbols.to_le_bytes());
        blob
    }

    fn entries(blob: &[u8]) -> Vec<u32> {
        let starts = u32::from_le_bytes(blob[4..8].try_into().unwrap()) as usize;
        let n = u32::from_le_bytes(blob[starts..starts + 4].try_into().unwrap()) as usize;
        (0..n)
            .map(|i| {
                let at = starts + 4 + i * 4;
                u32::from_le_bytes(blob[at..at + 4].try_into().unwrap())
            })
            .collect()
    }

    fn tail(blob: &[u8], starts_entry: u32) -> &[u8] {
        &blob[32 + starts_entry as usize..]
    }

    #[test]
    fn chained_table_uses_padding_when_there_is_some() {
        // Four segments: 4 + 16 = 20 bytes of table, padded to 24.
        let blob = chained(&[0, 0, 24, 0], 4);
        let out = widen_chained_starts(&blob, 3).unwrap();
        assert_eq!(out.len(), blob.len());
        assert_eq!(entries(&out), [0, 0, 24, 0, 0]);
        assert_eq!(tail(&out, 24), tail(&blob, 24));
        assert_eq!(out[8..16], blob[8..16]);
    }

    #[test]
    fn chained_table_grows_by_eight_without_padding() {
        // Five segments: 4 + 20 = 24 bytes of table, no padding.
        let blob = chained(&[0, 0, 24, 48, 0], 0);
        let out = widen_chained_starts(&blob, 4).unwrap();
        assert_eq!(out.len(), blob.len() + 8);
        assert_eq!(entries(&out), [0, 0, 32, 56, 0, 0]);
        assert_eq!(tail(&out, 32), tail(&blob, 24));
        let at = |b: &[u8], i: usize| u32::from_le_bytes(b[i..i + 4].try_into().unwrap());
        assert_eq!(at(&out, 8), at(&blob, 8) + 8);
        assert_eq!(at(&out, 12), at(&blob, 12) + 8);
    }

    #[test]
    fn chained_table_of_the_wrong_size_is_refused() {
        let blob = chained(&[0, 0, 24, 0], 4);
        assert!(matches!(
            widen_chained_starts(&blob, 5),
            Err(MachoError::Unsupported(_))
        ));
        for len in 0..blob.len() {
            let _ = widen_chained_starts(&blob[..len], 3);
        }
    }

    #[test]
    fn signature_size_matches_what_is_written() {
        for len in [0usize, 1, 4095, 4096, 4097, 100_000] {
            let file = vec![0u8; len];
            let sig = code_signature(&file, 0, 0).unwrap();
            let reserved = signature_len(len as u64).unwrap();
            assert!(sig.len() as u64 <= reserved && reserved - (sig.len() as u64) < 16);
        }
    }
}
