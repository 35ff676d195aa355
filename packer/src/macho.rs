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
//!   inserted (design notes). The few structures touched here are read and written through
//!   `object`'s typed Mach-O and code-signing structs, every slice checked against the
//!   buffer; field positions come from those structs, never from hand-counted offsets.

use std::mem::{offset_of, size_of};

use object::endian::{BigEndian as BE, LittleEndian as LE, U32, U64};
use object::macho::{
    self as mh, CsBlobIndex, CsCodeDirectoryV0, CsCodeDirectoryV1, CsCodeDirectoryV2,
    CsCodeDirectoryV3, CsCodeDirectoryV4, CsGenericBlob, CsSuperBlob, DyldChainedFixupsHeader,
    DyldInfoCommand, DysymtabCommand, LinkeditDataCommand, LoadCommand, LoadCommandType,
    MachHeader64, NoteCommand, Section64, SegmentCommand64, SymtabCommand, TwolevelHintsCommand,
};
use object::pod::{Pod, bytes_of, from_bytes, slice_from_bytes};
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

type Header = MachHeader64<LE>;
type SegmentCmd = SegmentCommand64<LE>;
type DataCmd = LinkeditDataCommand<LE>;

const HEADER_SIZE: usize = size_of::<Header>();
const PAYLOAD_CMD_SIZE: usize = size_of::<SegmentCmd>() + size_of::<Section64<LE>>();

/// Commands made of a `linkedit_data_command` (offset and size of a blob in `__LINKEDIT`),
/// besides the code signature and chained fixups handled on their own.
const LINKEDIT_DATA_CMDS: &[LoadCommandType] = &[
    mh::LC_SEGMENT_SPLIT_INFO,
    mh::LC_FUNCTION_STARTS,
    mh::LC_DATA_IN_CODE,
    mh::LC_DYLIB_CODE_SIGN_DRS,
    mh::LC_LINKER_OPTIMIZATION_HINT,
    mh::LC_DYLD_EXPORTS_TRIE,
    mh::LC_ATOM_INFO,
];
/// Commands known to hold no file offset into `__LINKEDIT` (their strings live inside the
/// command; LC_MAIN's and LC_ENCRYPTION_INFO_64's offsets point into `__TEXT`, which stays).
const PLAIN_CMDS: &[LoadCommandType] = &[
    mh::LC_THREAD,
    mh::LC_UNIXTHREAD,
    mh::LC_IDENT,
    mh::LC_LOAD_DYLIB,
    mh::LC_ID_DYLIB,
    mh::LC_LOAD_DYLINKER,
    mh::LC_ID_DYLINKER,
    mh::LC_PREBOUND_DYLIB,
    mh::LC_SUB_FRAMEWORK,
    mh::LC_SUB_UMBRELLA,
    mh::LC_SUB_CLIENT,
    mh::LC_SUB_LIBRARY,
    mh::LC_PREBIND_CKSUM,
    mh::LC_ROUTINES_64,
    mh::LC_UUID,
    mh::LC_LOAD_WEAK_DYLIB,
    mh::LC_RPATH,
    mh::LC_REEXPORT_DYLIB,
    mh::LC_LAZY_LOAD_DYLIB,
    mh::LC_LOAD_UPWARD_DYLIB,
    mh::LC_VERSION_MIN_MACOSX,
    mh::LC_VERSION_MIN_IPHONEOS,
    mh::LC_DYLD_ENVIRONMENT,
    mh::LC_MAIN,
    mh::LC_SOURCE_VERSION,
    mh::LC_ENCRYPTION_INFO_64,
    mh::LC_LINKER_OPTION,
    mh::LC_VERSION_MIN_TVOS,
    mh::LC_VERSION_MIN_WATCHOS,
    mh::LC_BUILD_VERSION,
];

/// Section types without contents in the file.
const ZEROFILL_TYPES: &[mh::SectionType] = &[
    mh::S_ZEROFILL,
    mh::S_GB_ZEROFILL,
    mh::S_THREAD_LOCAL_ZEROFILL,
];

/// The CodeDirectory version written: 0x20400, the first with the executable-segment fields.
const CD_VERSION: mh::CsVersion = mh::CS_SUPPORTSEXECSEG;
/// The CodeDirectory's fixed part, every version's fields up to [`CD_VERSION`].
const CD_HEADER_SIZE: usize = size_of::<CsCodeDirectoryV0>()
    + size_of::<CsCodeDirectoryV1>()
    + size_of::<CsCodeDirectoryV2>()
    + size_of::<CsCodeDirectoryV3>()
    + size_of::<CsCodeDirectoryV4>();
const SHA256_LEN: usize = 32;
const CS_PAGE_SHIFT: u8 = 12;
const CS_PAGE_SIZE: usize = 1 << CS_PAGE_SHIFT;
/// Special slots hashed: requirements (-2) and Info.plist (-1, none).
const SPECIAL_SLOTS: usize = 2;
/// An empty requirements set: a generic blob header and a zero count.
const REQUIREMENTS_LEN: usize = size_of::<CsGenericBlob>() + 4;
/// An empty CMS blob wrapper: its header only.
const CMS_LEN: usize = size_of::<CsGenericBlob>();
/// The SuperBlob indexes three blobs: CodeDirectory, requirements, CMS.
const SUPERBLOB_BLOBS: usize = 3;
const SUPERBLOB_INDEX_LEN: usize =
    size_of::<CsSuperBlob>() + SUPERBLOB_BLOBS * size_of::<CsBlobIndex>();
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
    let signature_cmd = |mut cmd: DataCmd| -> Result<DataCmd, MachoError> {
        cmd.dataoff = U32::new(LE, to_u32(sig_off)?);
        cmd.datasize = U32::new(LE, to_u32(sig_len)?);
        Ok(cmd)
    };

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
            let mut seg: SegmentCmd = read(&raw)?;
            seg.vmaddr = U64::new(LE, linkedit_vmaddr);
            seg.vmsize = U64::new(LE, linkedit_vmsize);
            seg.fileoff = U64::new(LE, linkedit_off);
            seg.filesize = U64::new(LE, linkedit_filesize);
            put(&mut raw, 0, bytes_of(&seg));
        }
        if Some(index) == macho.signature_cmd {
            let sig = signature_cmd(read(&raw)?)?;
            put(&mut raw, 0, bytes_of(&sig));
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
            let mut fixups: DataCmd = read(&raw)?;
            let size = u32::try_from(moved.chained_len).map_err(|_| too_large())?;
            fixups.datasize = U32::new(LE, size);
            put(&mut raw, 0, bytes_of(&fixups));
        }
        cmds.extend_from_slice(&raw);
    }
    let mut ncmds = macho
        .header
        .ncmds
        .get(LE)
        .checked_add(1)
        .ok_or_else(too_large)?;
    if macho.signature_cmd.is_none() {
        let sig = signature_cmd(DataCmd {
            cmd: U32::new(LE, mh::LC_CODE_SIGNATURE),
            cmdsize: U32::new(LE, size_of::<DataCmd>() as u32),
            dataoff: U32::new(LE, 0),
            datasize: U32::new(LE, 0),
        })?;
        cmds.extend_from_slice(bytes_of(&sig));
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
    let mut header = macho.header;
    header.ncmds = U32::new(LE, ncmds);
    header.sizeofcmds = U32::new(LE, sizeofcmds);
    put(&mut out, 0, bytes_of(&header));
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
) -> Result<Vec<u8>, MachoError> {
    let segment = SegmentCmd {
        cmd: U32::new(LE, mh::LC_SEGMENT_64),
        cmdsize: U32::new(LE, PAYLOAD_CMD_SIZE as u32),
        segname: name16(SEGMENT_NAME),
        vmaddr: U64::new(LE, vmaddr),
        vmsize: U64::new(LE, vmsize),
        fileoff: U64::new(LE, fileoff),
        filesize: U64::new(LE, filesize),
        maxprot: U32::new(LE, mh::VM_PROT_READ),
        initprot: U32::new(LE, mh::VM_PROT_READ),
        nsects: U32::new(LE, 1),
        flags: U32::new(LE, mh::SegmentFlags(0)),
    };
    let section = Section64::<LE> {
        sectname: name16(SECTION_NAME),
        segname: name16(SEGMENT_NAME),
        addr: U64::new(LE, vmaddr),
        size: U64::new(LE, filesize),
        // The section offset is 32 bits wide; the caller keeps the file below 4 GiB.
        offset: U32::new(LE, to_u32(fileoff)?),
        // Alignment 2^0, no relocations, a regular section.
        align: U32::new(LE, 0),
        reloff: U32::new(LE, 0),
        nreloc: U32::new(LE, 0),
        flags: U32::new(LE, mh::S_REGULAR.to_flags()),
        reserved1: U32::new(LE, 0),
        reserved2: U32::new(LE, 0),
        reserved3: U32::new(LE, 0),
    };
    let mut raw = Vec::with_capacity(PAYLOAD_CMD_SIZE);
    raw.extend_from_slice(bytes_of(&segment));
    raw.extend_from_slice(bytes_of(&section));
    Ok(raw)
}

/// Size reserved for the signature of a file whose signed part is `code_limit` bytes long.
fn signature_len(code_limit: u64) -> Option<u64> {
    let pages = code_limit.div_ceil(CS_PAGE_SIZE as u64);
    let cd = code_directory_len(pages)?;
    let blobs = (SUPERBLOB_INDEX_LEN + REQUIREMENTS_LEN + CMS_LEN) as u64;
    align_up(cd.checked_add(blobs)?, SIGNATURE_ALIGN)
}

fn code_directory_len(pages: u64) -> Option<u64> {
    let slots = pages.checked_add(SPECIAL_SLOTS as u64)?;
    let hashes = slots.checked_mul(SHA256_LEN as u64)?;
    // The identifier is stored NUL-terminated.
    let fixed = (CD_HEADER_SIZE + SIGNING_IDENTIFIER.len() + 1) as u64;
    fixed.checked_add(hashes)
}

fn be32(value: u32) -> U32<BE> {
    U32::new(BE, value)
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

    let v0 = CsCodeDirectoryV0 {
        magic: be32(mh::CSMAGIC_CODEDIRECTORY),
        length: be32(cd_len),
        version: U32::new(BE, CD_VERSION),
        flags: U32::new(BE, mh::CS_ADHOC),
        hash_offset: be32(hash_off),
        ident_offset: be32(ident_off),
        n_special_slots: be32(SPECIAL_SLOTS as u32),
        n_code_slots: be32(u32::try_from(pages).map_err(|_| too_large())?),
        code_limit: be32(code_limit),
        hash_size: SHA256_LEN as u8,
        hash_type: mh::CS_HASHTYPE_SHA256,
        platform: 0,
        page_size: CS_PAGE_SHIFT,
        spare2: be32(0),
    };
    // No scatter vector, no team (ad hoc), and codeLimit suffices (no codeLimit64).
    let v1 = CsCodeDirectoryV1 {
        scatter_offset: be32(0),
    };
    let v2 = CsCodeDirectoryV2 {
        team_offset: be32(0),
    };
    let v3 = CsCodeDirectoryV3 {
        spare3: be32(0),
        code_limit64: U64::new(BE, 0),
    };
    let v4 = CsCodeDirectoryV4 {
        exec_seg_base: U64::new(BE, text_off),
        exec_seg_limit: U64::new(BE, text_size),
        exec_seg_flags: U64::new(BE, mh::CS_EXECSEG_MAIN_BINARY),
    };

    let mut cd = Vec::with_capacity(to_usize(u64::from(cd_len)).ok_or_else(too_large)?);
    cd.extend_from_slice(bytes_of(&v0));
    cd.extend_from_slice(bytes_of(&v1));
    cd.extend_from_slice(bytes_of(&v2));
    cd.extend_from_slice(bytes_of(&v3));
    cd.extend_from_slice(bytes_of(&v4));
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

    let index_len = SUPERBLOB_INDEX_LEN as u32;
    let req_at = index_len + cd_len;
    let cms_at = req_at + REQUIREMENTS_LEN as u32;
    let total = cms_at + CMS_LEN as u32;
    let mut blob = Vec::with_capacity(total as usize);
    blob.extend_from_slice(bytes_of(&CsSuperBlob {
        magic: be32(mh::CSMAGIC_EMBEDDED_SIGNATURE),
        length: be32(total),
        count: be32(SUPERBLOB_BLOBS as u32),
    }));
    for (slot, at) in [
        (mh::CSSLOT_CODEDIRECTORY, index_len),
        (mh::CSSLOT_REQUIREMENTS, req_at),
        (mh::CSSLOT_SIGNATURESLOT, cms_at),
    ] {
        blob.extend_from_slice(bytes_of(&CsBlobIndex {
            slot: U32::new(BE, slot),
            offset: be32(at),
        }));
    }
    blob.extend_from_slice(&cd);
    blob.extend_from_slice(&empty_requirements());
    blob.extend_from_slice(bytes_of(&CsGenericBlob {
        magic: be32(mh::CSMAGIC_BLOBWRAPPER),
        length: be32(CMS_LEN as u32),
    }));
    Ok(blob)
}

/// The requirements blob of an ad-hoc signature: no requirements (count 0).
fn empty_requirements() -> Vec<u8> {
    let mut blob = bytes_of(&CsGenericBlob {
        magic: be32(mh::CSMAGIC_REQUIREMENTS),
        length: be32(REQUIREMENTS_LEN as u32),
    })
    .to_vec();
    blob.extend_from_slice(&0u32.to_be_bytes());
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

/// A copy of the `T` at the start of `buf`, refused when `buf` is too short for it.
fn read<T: Pod>(buf: &[u8]) -> Result<T, MachoError> {
    from_bytes::<T>(buf).map(|(value, _)| *value).map_err(|()| {
        MachoError::Malformed(format!(
            "truncated structure: {} bytes, {} needed",
            buf.len(),
            size_of::<T>()
        ))
    })
}

/// The `T` at byte `at` of `buf`.
fn read_at<T: Pod>(buf: &[u8], at: usize) -> Result<T, MachoError> {
    read(buf.get(at..).unwrap_or_default())
}

/// A segment or section name as Mach-O stores it: 16 bytes, NUL-padded.
fn name16(name: &str) -> [u8; 16] {
    let mut raw = [0u8; 16];
    put(&mut raw, 0, name.as_bytes());
    raw
}

fn name_is(raw: &[u8; 16], want: &str) -> bool {
    let end = raw.iter().position(|&b| b == 0).unwrap_or(raw.len());
    raw.get(..end) == Some(want.as_bytes())
}

/// One load command: where it is in the file, its type and its size.
#[derive(Clone, Copy)]
struct Cmd {
    at: usize,
    kind: LoadCommandType,
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

impl Segment {
    fn of(cmd: &SegmentCmd) -> Self {
        Self {
            vmaddr: cmd.vmaddr.get(LE),
            vmsize: cmd.vmsize.get(LE),
            fileoff: cmd.fileoff.get(LE),
            filesize: cmd.filesize.get(LE),
        }
    }
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
    header: Header,
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

/// A 32-bit offset field of a load command and the field giving the length of what it
/// points at, in units of `unit` bytes: `(offset position, count position, unit)`.
type Pair = (usize, usize, u64);

/// The [`Pair`] of `$cmd`'s fields `$off` and `$len`.
macro_rules! pair {
    ($cmd:ident, $off:ident, $len:ident, $unit:expr) => {
        (
            offset_of!($cmd<LE>, $off),
            offset_of!($cmd<LE>, $len),
            $unit,
        )
    };
}

/// The offset fields of `LC_SYMTAB`: the nlist_64 entries and the string table.
const SYMTAB_PAIRS: &[Pair] = &[
    pair!(SymtabCommand, symoff, nsyms, 16),
    pair!(SymtabCommand, stroff, strsize, 1),
];

/// The offset fields of `LC_DYSYMTAB`.
const DYSYMTAB_PAIRS: &[Pair] = &[
    // Table of contents.
    pair!(DysymtabCommand, tocoff, ntoc, 8),
    // Module table (dylib_module_64).
    pair!(DysymtabCommand, modtaboff, nmodtab, 56),
    // Referenced symbols.
    pair!(DysymtabCommand, extrefsymoff, nextrefsyms, 4),
    // Indirect symbols.
    pair!(DysymtabCommand, indirectsymoff, nindirectsyms, 4),
    // External and local relocations.
    pair!(DysymtabCommand, extreloff, nextrel, 8),
    pair!(DysymtabCommand, locreloff, nlocrel, 8),
];

/// The offset fields of `LC_DYLD_INFO(_ONLY)`: rebase, bind, weak bind, lazy bind, export.
const DYLD_INFO_PAIRS: &[Pair] = &[
    pair!(DyldInfoCommand, rebase_off, rebase_size, 1),
    pair!(DyldInfoCommand, bind_off, bind_size, 1),
    pair!(DyldInfoCommand, weak_bind_off, weak_bind_size, 1),
    pair!(DyldInfoCommand, lazy_bind_off, lazy_bind_size, 1),
    pair!(DyldInfoCommand, export_off, export_size, 1),
];

/// The offset field of `LC_TWOLEVEL_HINTS` (4-byte hints).
const TWOLEVEL_PAIRS: &[Pair] = &[pair!(TwolevelHintsCommand, offset, nhints, 4)];

/// The offset field of a `linkedit_data_command`.
const DATA_PAIRS: &[Pair] = &[pair!(LinkeditDataCommand, dataoff, datasize, 1)];

impl<'a> Parsed<'a> {
    fn parse(file: &'a [u8]) -> Result<Self, MachoError> {
        let magic = match file.get(..4) {
            Some(&[a, b, c, d]) => u32::from_le_bytes([a, b, c, d]),
            _ => return Err(MachoError::NotMachO),
        };
        match magic {
            mh::MH_MAGIC_64 => {}
            mh::FAT_CIGAM | mh::FAT_CIGAM_64 | mh::FAT_MAGIC | mh::FAT_MAGIC_64 => {
                return Err(MachoError::Fat);
            }
            mh::MH_MAGIC | mh::MH_CIGAM => {
                return Err(MachoError::Unsupported("32-bit Mach-O".into()));
            }
            mh::MH_CIGAM_64 => return Err(MachoError::Unsupported("big-endian Mach-O".into())),
            _ => return Err(MachoError::NotMachO),
        }
        let header: Header = read(file)
            .map_err(|_| MachoError::Malformed("file is shorter than a Mach-O header".into()))?;
        let cputype = header.cputype.get(LE);
        if cputype != mh::CPU_TYPE_X86_64 && cputype != mh::CPU_TYPE_ARM64 {
            return Err(MachoError::Unsupported(format!(
                "CPU type {cputype:#x} (only x86_64 and arm64 are supported)"
            )));
        }
        let filetype = header.filetype.get(LE);
        if filetype != mh::MH_EXECUTE {
            return Err(MachoError::Unsupported(format!(
                "file type {} is not an executable",
                filetype.0
            )));
        }
        let ncmds = header.ncmds.get(LE);
        let sizeofcmds = to_usize(u64::from(header.sizeofcmds.get(LE)))
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
            let lc: LoadCommand<LE> = read_at(file, at)?;
            let size = to_usize(u64::from(lc.cmdsize.get(LE))).unwrap_or(0);
            let end = at.saturating_add(size);
            if size < size_of::<LoadCommand<LE>>() || !size.is_multiple_of(8) || end > cmds_end {
                return Err(MachoError::Malformed(format!(
                    "load command {index} (size {size}) does not fit the load command area"
                )));
            }
            cmds.push(Cmd {
                at,
                kind: lc.cmd.get(LE),
                size,
            });
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
            header,
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
        let mut segments: Vec<(usize, [u8; 16], Segment, u32)> = Vec::new();
        let mut first_data = file_len;
        for (index, cmd) in parsed.cmds.iter().enumerate() {
            if cmd.kind != mh::LC_SEGMENT_64 {
                continue;
            }
            let raw = parsed.cmd_bytes(cmd)?;
            let (command, sections) = from_bytes::<SegmentCmd>(raw).map_err(|()| {
                MachoError::Malformed(format!("segment command {index} is truncated"))
            })?;
            let name = command.segname;
            let seg = Segment::of(command);
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
            let nsects = command.nsects.get(LE);
            let count = to_usize(u64::from(nsects)).unwrap_or(usize::MAX);
            let (sections, _) =
                slice_from_bytes::<Section64<LE>>(sections, count).map_err(|()| {
                    MachoError::Malformed(format!(
                        "segment command {index} is too small for its {nsects} sections"
                    ))
                })?;
            for section in sections {
                let offset = u64::from(section.offset.get(LE));
                let zerofill = ZEROFILL_TYPES.contains(&section.flags.get(LE).typ());
                if offset != 0 && !zerofill {
                    first_data = first_data.min(offset);
                }
            }
            segments.push((index, name, seg, nsects));
        }
        if segments.iter().any(|(_, n, _, _)| name_is(n, SEGMENT_NAME)) {
            return Err(MachoError::AlreadyPacked);
        }
        let find = |want: &str| -> Result<(usize, usize, Segment, u32), MachoError> {
            let mut hits = segments
                .iter()
                .enumerate()
                .filter(|(_, (_, n, _, _))| name_is(n, want));
            match (hits.next(), hits.next()) {
                (Some((ordinal, &(index, _, seg, nsects))), None) => {
                    Ok((ordinal, index, seg, nsects))
                }
                (None, _) => Err(MachoError::Malformed(format!("no {want} segment"))),
                (Some(_), Some(_)) => Err(MachoError::Malformed(format!(
                    "more than one {want} segment"
                ))),
            }
        };
        let (_, _, text, _) = find("__TEXT")?;
        parsed.text_fileoff = text.fileoff;
        parsed.text_filesize = text.filesize;
        let (linkedit_segment, linkedit_cmd, linkedit, linkedit_sections) = find("__LINKEDIT")?;
        if linkedit_segment + 1 != segments.len() {
            return Err(MachoError::Unsupported(
                "__LINKEDIT is not the last segment command".into(),
            ));
        }
        if linkedit_sections != 0 {
            return Err(MachoError::Unsupported("__LINKEDIT has sections".into()));
        }
        let linkedit_end = linkedit.fileoff.saturating_add(linkedit.filesize);
        if linkedit_end != file_len {
            return Err(MachoError::Unsupported(format!(
                "__LINKEDIT ends at byte {linkedit_end}, not at the end of the file ({file_len} bytes)"
            )));
        }
        for (_, name, seg, _) in &segments {
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
        let need = if parsed.has_cmd(mh::LC_CODE_SIGNATURE) {
            need
        } else {
            need + size_of::<DataCmd>() as u64
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

    fn has_cmd(&self, kind: LoadCommandType) -> bool {
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
            let kind = cmd.kind;
            let need = |len: usize| -> Result<(), MachoError> {
                if raw.len() < len {
                    return Err(MachoError::Malformed(format!(
                        "load command {index} ({kind:#x}) is {} bytes, expected {len}",
                        raw.len()
                    )));
                }
                Ok(())
            };
            // Offset fields paired with the byte length of what they point at.
            let mut pairs = |size: usize, pairs: &[Pair]| -> Result<(), MachoError> {
                need(size)?;
                for &(at, len_at, unit) in pairs {
                    let count: U32<LE> = read_at(raw, len_at)?;
                    let len = u64::from(count.get(LE)).saturating_mul(unit);
                    fields.push((index, at, len, false));
                }
                Ok(())
            };
            let blob = |seen: &Option<(usize, u64, u64)>, what: &str| {
                need(size_of::<DataCmd>())?;
                if seen.is_some() {
                    return Err(MachoError::Malformed(format!("more than one {what}")));
                }
                let data: DataCmd = read(raw)?;
                Ok(Some((
                    index,
                    u64::from(data.dataoff.get(LE)),
                    u64::from(data.datasize.get(LE)),
                )))
            };
            match kind {
                mh::LC_SEGMENT_64 => {}
                mh::LC_SYMTAB => pairs(size_of::<SymtabCommand<LE>>(), SYMTAB_PAIRS)?,
                mh::LC_DYSYMTAB => pairs(size_of::<DysymtabCommand<LE>>(), DYSYMTAB_PAIRS)?,
                mh::LC_DYLD_INFO | mh::LC_DYLD_INFO_ONLY => {
                    pairs(size_of::<DyldInfoCommand<LE>>(), DYLD_INFO_PAIRS)?;
                }
                mh::LC_TWOLEVEL_HINTS => {
                    pairs(size_of::<TwolevelHintsCommand<LE>>(), TWOLEVEL_PAIRS)?;
                }
                mh::LC_CODE_SIGNATURE => signature = blob(&signature, "LC_CODE_SIGNATURE")?,
                mh::LC_DYLD_CHAINED_FIXUPS => {
                    chained = blob(&chained, "LC_DYLD_CHAINED_FIXUPS")?;
                    pairs(size_of::<DataCmd>(), DATA_PAIRS)?;
                }
                mh::LC_NOTE => {
                    need(size_of::<NoteCommand<LE>>())?;
                    let note: NoteCommand<LE> = read(raw)?;
                    let (offset, size) = (note.offset.get(LE), note.size.get(LE));
                    // A note before __LINKEDIT stays where it is; one inside moves with it.
                    if offset.saturating_add(size) > self.linkedit.fileoff {
                        fields.push((index, offset_of!(NoteCommand<LE>, offset), size, true));
                    }
                }
                kind if LINKEDIT_DATA_CMDS.contains(&kind) => {
                    pairs(size_of::<DataCmd>(), DATA_PAIRS)?;
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
                read_at::<U64<LE>>(raw, at)?.get(LE)
            } else {
                u64::from(read_at::<U32<LE>>(raw, at)?.get(LE))
            };
            if offset == 0 && len == 0 {
                continue; // Absent.
            }
            let inside = offset >= self.linkedit.fileoff
                && offset
                    .checked_add(len)
                    .is_some_and(|end| end <= self.content_end);
            if !inside {
                let kind = self.cmds.get(cmd).map_or(LoadCommandType(0), |c| c.kind);
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
    // The table's own checks below need only the three offsets of the header.
    let header_end = offset_of!(DyldChainedFixupsHeader<LE>, imports_count);
    let mut header = [0u8; size_of::<DyldChainedFixupsHeader<LE>>()];
    put(
        &mut header,
        0,
        blob.get(..header_end)
            .ok_or_else(|| bad("truncated header"))?,
    );
    let mut header: DyldChainedFixupsHeader<LE> = read(&header)?;
    let starts =
        to_usize(u64::from(header.starts_offset.get(LE))).ok_or_else(|| bad("starts offset"))?;
    let imports = header.imports_offset.get(LE);
    let symbols = header.symbols_offset.get(LE);
    let seg_count = read_at::<U32<LE>>(blob, starts)?.get(LE);
    let count = to_usize(u64::from(seg_count)).ok_or_else(|| bad("segment count"))?;
    if count != index + 1 {
        return Err(MachoError::Unsupported(format!(
            "the chained-fixups table covers {count} segments, the runner has {}",
            index + 1
        )));
    }
    let table = starts.checked_add(4).ok_or_else(|| bad("starts offset"))?;
    let (entries, _) = blob
        .get(table..)
        .and_then(|rest| slice_from_bytes::<U32<LE>>(rest, count).ok())
        .ok_or_else(|| bad("segment table runs past the blob"))?;
    let table_end = table + count * 4;
    let mut entries: Vec<u32> = entries.iter().map(|e| e.get(LE)).collect();
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
    let overflow = || bad("offset overflow");
    header.imports_offset = U32::new(LE, imports.checked_add(grow).ok_or_else(overflow)?);
    header.symbols_offset = U32::new(LE, symbols.checked_add(grow).ok_or_else(overflow)?);
    // Only the offsets change: the rest of the header is the blob's own bytes.
    put(
        &mut out,
        0,
        bytes_of(&header).get(..header_end).unwrap_or_default(),
    );
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
