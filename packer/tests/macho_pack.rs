//! Checks Mach-O packing on real zig-linked binaries (arm64 and x86_64, signed and not):
//! small samples checked in under tests/fixtures/macho, and the real macOS runners that
//! `cargo xtask runners` builds into target/runners.
//!
//! macOS binaries cannot run here, so every packed file is re-read by a small Mach-O
//! parser written for this test alone (it shares no code with `rustle_deploy::macho`):
//! load commands, segment layout, every offset into `__LINKEDIT`, the payload bytes, and
//! the code signature, whose page hashes are all recomputed. The runner's own reader
//! (`rustle_runner::locate`) must find the payload too.

// This whole file is test code, but clippy's test exemptions (clippy.toml) only cover
// `#[test]` functions, not the helpers they share.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::{Path, PathBuf};

use rustle_deploy::macho::{self, MachoError};
use rustle_runner::locate::{self, LocateError};
use sha2::{Digest, Sha256};

const ARM64: &str = "hello-aarch64";
const X86_64: &str = "hello-x86_64";
const CPU_ARM64: u32 = 0x0100_000c;
const CPU_X86_64: u32 = 0x0100_0007;
const LC_SEGMENT_64: u32 = 0x19;
const LC_SYMTAB: u32 = 0x2;
const LC_DYSYMTAB: u32 = 0xb;
const LC_CODE_SIGNATURE: u32 = 0x1d;
const LC_DYLD_INFO_ONLY: u32 = 0x8000_0022;
const LC_SOURCE_VERSION: u32 = 0x2a;
const LINKEDIT_DATA: &[u32] = &[0x1d, 0x1e, 0x26, 0x29, 0x2b, 0x2e, 0x8000_0033, 0x8000_0034];

fn fixture(name: &str) -> Vec<u8> {
    let path: PathBuf = [
        env!("CARGO_MANIFEST_DIR"),
        "..",
        "tests",
        "fixtures",
        "macho",
        name,
    ]
    .iter()
    .collect();
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}

fn le64(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(b[at..at + 4].try_into().unwrap())
}

fn be64(b: &[u8], at: usize) -> u64 {
    u64::from_be_bytes(b[at..at + 8].try_into().unwrap())
}

fn name(raw: &[u8]) -> String {
    let end = raw.iter().position(|&b| b == 0).unwrap_or(raw.len());
    String::from_utf8(raw[..end].to_vec()).unwrap()
}

// ---------------------------------------------------------------------------------------
// The independent parser.

#[derive(Debug, Clone, PartialEq)]
struct Section {
    sectname: String,
    segname: String,
    addr: u64,
    size: u64,
    offset: u64,
    flags: u32,
}

#[derive(Debug, Clone, PartialEq)]
struct Segment {
    name: String,
    vmaddr: u64,
    vmsize: u64,
    fileoff: u64,
    filesize: u64,
    maxprot: u32,
    initprot: u32,
    sections: Vec<Section>,
}

#[derive(Debug, Clone)]
struct Command {
    kind: u32,
    at: usize,
    size: usize,
}

#[derive(Debug)]
struct Image {
    cputype: u32,
    cmds: Vec<Command>,
    cmds_end: usize,
    segments: Vec<Segment>,
}

impl Image {
    /// Parses and checks the load commands: each well-formed, together exactly filling
    /// `sizeofcmds`, ending before the first byte of any section.
    fn parse(file: &[u8]) -> Self {
        assert_eq!(le32(file, 0), 0xfeed_facf, "MH_MAGIC_64");
        assert_eq!(le32(file, 12), 2, "MH_EXECUTE");
        let ncmds = le32(file, 16) as usize;
        let sizeofcmds = le32(file, 20) as usize;
        let cmds_end = 32 + sizeofcmds;
        assert!(cmds_end <= file.len());
        let mut cmds = Vec::new();
        let mut segments = Vec::new();
        let mut at = 32;
        for _ in 0..ncmds {
            let kind = le32(file, at);
            let size = le32(file, at + 4) as usize;
            assert!(size >= 8 && size.is_multiple_of(8), "cmdsize {size}");
            assert!(at + size <= cmds_end, "command overruns sizeofcmds");
            let raw = &file[at..at + size];
            if kind == LC_SEGMENT_64 {
                let nsects = le32(raw, 64) as usize;
                assert_eq!(size, 72 + 80 * nsects, "segment command size");
                let sections = (0..nsects)
                    .map(|i| {
                        let s = &raw[72 + 80 * i..72 + 80 * (i + 1)];
                        Section {
                            sectname: name(&s[0..16]),
                            segname: name(&s[16..32]),
                            addr: le64(s, 32),
                            size: le64(s, 40),
                            offset: u64::from(le32(s, 48)),
                            flags: le32(s, 64),
                        }
                    })
                    .collect();
                segments.push(Segment {
                    name: name(&raw[8..24]),
                    vmaddr: le64(raw, 24),
                    vmsize: le64(raw, 32),
                    fileoff: le64(raw, 40),
                    filesize: le64(raw, 48),
                    maxprot: le32(raw, 56),
                    initprot: le32(raw, 60),
                    sections,
                });
            }
            cmds.push(Command { kind, at, size });
            at += size;
        }
        assert_eq!(at, cmds_end, "commands do not fill sizeofcmds exactly");
        let image = Self {
            cputype: le32(file, 4),
            cmds,
            cmds_end,
            segments,
        };
        for seg in &image.segments {
            for s in &seg.sections {
                let zerofill = matches!(s.flags & 0xff, 0x1 | 0xc | 0x12);
                if !zerofill && s.size > 0 {
                    assert!(s.offset as usize >= cmds_end, "load commands overlap {s:?}");
                    assert!(s.offset >= seg.fileoff);
                    assert!(s.offset + s.size <= seg.fileoff + seg.filesize);
                }
                assert_eq!(s.segname, seg.name);
            }
        }
        image
    }

    fn raw<'f>(&self, file: &'f [u8], cmd: &Command) -> &'f [u8] {
        &file[cmd.at..cmd.at + cmd.size]
    }

    fn segment(&self, name: &str) -> &Segment {
        let hits: Vec<_> = self.segments.iter().filter(|s| s.name == name).collect();
        assert_eq!(hits.len(), 1, "segment {name}");
        hits[0]
    }

    /// `(label, offset, length)` of every blob the load commands place in `__LINKEDIT`,
    /// the code signature included; absent ones (offset and length zero) left out.
    fn linkedit_ranges(&self, file: &[u8]) -> Vec<(String, u64, u64)> {
        let mut out = Vec::new();
        for cmd in &self.cmds {
            let raw = self.raw(file, cmd);
            let mut add = |label: &str, off_at: usize, len: u64| {
                let off = u64::from(le32(raw, off_at));
                if off != 0 || len != 0 {
                    out.push((format!("{:#x}/{label}", cmd.kind), off, len));
                }
            };
            match cmd.kind {
                LC_SYMTAB => {
                    add("symbols", 8, u64::from(le32(raw, 12)) * 16);
                    add("strings", 16, u64::from(le32(raw, 20)));
                }
                LC_DYSYMTAB => {
                    for (label, at, unit) in [
                        ("toc", 32, 8),
                        ("modtab", 40, 56),
                        ("extref", 48, 4),
                        ("indirect", 56, 4),
                        ("extrel", 64, 8),
                        ("locrel", 72, 8),
                    ] {
                        add(label, at, u64::from(le32(raw, at + 4)) * unit);
                    }
                }
                0x22 | LC_DYLD_INFO_ONLY => {
                    for (label, at) in [
                        ("rebase", 8),
                        ("bind", 16),
                        ("weak_bind", 24),
                        ("lazy_bind", 32),
                        ("export", 40),
                    ] {
                        add(label, at, u64::from(le32(raw, at + 4)));
                    }
                }
                kind if LINKEDIT_DATA.contains(&kind) => {
                    add("data", 8, u64::from(le32(raw, 12)));
                }
                _ => {}
            }
        }
        out
    }

    fn code_signature(&self, file: &[u8]) -> Option<(usize, usize)> {
        let cmd = self.cmds.iter().find(|c| c.kind == LC_CODE_SIGNATURE)?;
        let raw = self.raw(file, cmd);
        Some((le32(raw, 8) as usize, le32(raw, 12) as usize))
    }
}

/// Checks the embedded code signature of `file` from scratch: SuperBlob, CodeDirectory
/// fields, special slots, and every page hash recomputed over the signed bytes.
fn check_signature(file: &[u8], image: &Image, identifier: &str) -> u8 {
    let (off, size) = image.code_signature(file).expect("LC_CODE_SIGNATURE");
    assert_eq!(off % 16, 0, "signature alignment");
    assert_eq!(off + size, file.len(), "signature does not end the file");
    let sig = &file[off..off + size];
    assert_eq!(be32(sig, 0), 0xfade_0cc0, "SuperBlob magic");
    let length = be32(sig, 4) as usize;
    assert!(
        length <= size && size - length < 16,
        "SuperBlob length {length} of {size}"
    );
    assert!(
        sig[length..].iter().all(|&b| b == 0),
        "padding after the SuperBlob"
    );
    let count = be32(sig, 8) as usize;
    let mut blobs = std::collections::BTreeMap::new();
    for i in 0..count {
        let slot = be32(sig, 12 + 8 * i);
        let at = be32(sig, 16 + 8 * i) as usize;
        let blob_len = be32(sig, at + 4) as usize;
        assert!(
            at >= 12 + 8 * count && at + blob_len <= length,
            "blob {slot:#x} bounds"
        );
        assert!(blobs.insert(slot, &sig[at..at + blob_len]).is_none());
    }
    let cd = blobs[&0];
    assert_eq!(be32(cd, 0), 0xfade_0c02, "CodeDirectory magic");
    assert!(
        be32(cd, 8) >= 0x2_0400,
        "CodeDirectory version with execSeg fields"
    );
    assert_ne!(be32(cd, 12) & 0x2, 0, "ad hoc flag");
    let hash_off = be32(cd, 16) as usize;
    let ident_off = be32(cd, 20) as usize;
    let n_special = be32(cd, 24) as usize;
    let n_code = be32(cd, 28) as usize;
    let code_limit = be32(cd, 32) as usize;
    assert_eq!((cd[36], cd[37]), (32, 2), "SHA-256");
    // Ours are 4 KiB (design notes); zig's own arm64 signatures use 16 KiB.
    assert!(cd[39] == 12 || cd[39] == 14, "page size 2^{}", cd[39]);
    let page = 1usize << cd[39];
    assert_eq!(code_limit, off, "codeLimit is the signature's offset");
    assert_eq!(n_code, code_limit.div_ceil(page));
    let ident_end = ident_off + cd[ident_off..].iter().position(|&b| b == 0).unwrap();
    // `name*` accepts any identifier starting with `name` (the linker's carry a hash).
    let got = &cd[ident_off..ident_end];
    match identifier.strip_suffix('*') {
        Some(prefix) => assert!(
            got.starts_with(prefix.as_bytes()),
            "identifier {}",
            String::from_utf8_lossy(got)
        ),
        None => assert_eq!(got, identifier.as_bytes()),
    }
    let text = image.segment("__TEXT");
    assert_eq!(be64(cd, 64), text.fileoff, "execSegBase");
    assert_eq!(be64(cd, 72), text.filesize, "execSegLimit");
    assert_eq!(be64(cd, 80) & 1, 1, "main binary");
    assert!(hash_off >= ident_end + 1 + 32 * n_special);
    assert_eq!(hash_off + 32 * n_code, cd.len());

    // The last page is hashed as it is (`chunks` leaves it short), not padded.
    for (i, bytes) in file[..code_limit].chunks(page).enumerate() {
        let want: [u8; 32] = Sha256::digest(bytes).into();
        assert_eq!(
            cd[hash_off + 32 * i..hash_off + 32 * (i + 1)],
            want,
            "hash of page {i}"
        );
    }
    // Special slot -n sits n hashes before slot 0: -1 Info.plist (none), -2 requirements.
    let special = |n: usize| &cd[hash_off - 32 * n..hash_off - 32 * (n - 1)];
    if n_special >= 1 {
        assert_eq!(special(1), [0u8; 32], "no Info.plist");
    }
    if let Some(req) = blobs.get(&2) {
        assert_eq!(be32(req, 0), 0xfade_0c01, "requirements magic");
        assert!(n_special >= 2);
        let want: [u8; 32] = Sha256::digest(req).into();
        assert_eq!(special(2), want, "requirements hash");
    }
    cd[39]
}

/// Everything a packed file must satisfy, checked against its input.
fn check_packed(input: &[u8], output: &[u8], payload: &[u8]) {
    let before = Image::parse(input);
    let after = Image::parse(output);
    assert_eq!(after.cputype, before.cputype);

    // Segments: the input's, with __RUSTLE inserted before __LINKEDIT; in address and
    // file order, __LINKEDIT last and reaching the end of the file.
    let names: Vec<_> = after.segments.iter().map(|s| s.name.as_str()).collect();
    let mut want: Vec<_> = before.segments.iter().map(|s| s.name.as_str()).collect();
    want.insert(want.len() - 1, "__RUSTLE");
    assert_eq!(names, want);
    for pair in after.segments.windows(2) {
        assert!(
            pair[0].vmaddr + pair[0].vmsize <= pair[1].vmaddr,
            "{pair:?}"
        );
        assert!(pair[0].filesize == 0 || pair[0].fileoff + pair[0].filesize <= pair[1].fileoff);
    }
    for (old, new) in before.segments.iter().zip(&after.segments) {
        if old.name != "__LINKEDIT" {
            assert_eq!(old, new, "segments before __LINKEDIT are unchanged");
        }
    }
    let linkedit = after.segment("__LINKEDIT");
    assert_eq!(linkedit.fileoff + linkedit.filesize, output.len() as u64);
    assert!(linkedit.vmsize >= linkedit.filesize);
    assert_eq!(linkedit.fileoff % 0x4000, 0);
    assert_eq!(linkedit.vmaddr % 0x4000, 0);

    let rustle = after.segment("__RUSTLE");
    assert_eq!((rustle.maxprot, rustle.initprot), (1, 1), "read-only");
    assert_eq!(rustle.fileoff % 0x4000, 0);
    assert_eq!(rustle.vmaddr % 0x4000, 0);
    assert_eq!(rustle.sections.len(), 1);
    let sect = &rustle.sections[0];
    assert_eq!(
        (sect.sectname.as_str(), sect.segname.as_str()),
        ("__payload", "__RUSTLE")
    );
    assert_eq!(sect.flags & 0xff, 0, "S_REGULAR");
    assert_eq!(sect.addr, rustle.vmaddr);
    assert_eq!(sect.size, payload.len() as u64);
    assert_eq!(rustle.filesize, payload.len() as u64);
    let start = sect.offset as usize;
    assert_eq!(&output[start..start + payload.len()], payload);

    // The `object` crate's Mach-O reader, which shares no code with the packer, the
    // runner's reader or `Image`, sees the same segments and payload.
    {
        use object::{Object, ObjectSection, ObjectSegment};
        let file = object::File::parse(output).unwrap();
        let names: Vec<String> = file
            .segments()
            .map(|s| s.name().unwrap().unwrap_or_default().to_string())
            .collect();
        assert_eq!(names, want, "segments as object reads them");
        let sect = file
            .sections()
            .find(|s| s.segment_name().unwrap() == Some("__RUSTLE"))
            .expect("object finds __RUSTLE's section");
        assert_eq!(sect.name().unwrap(), "__payload");
        assert!(
            sect.data().unwrap() == payload,
            "object reads another payload"
        );
    }

    // The file before __LINKEDIT is the input's, past the grown load commands.
    let old_linkedit = before.segment("__LINKEDIT");
    let kept = after.cmds_end..old_linkedit.fileoff as usize;
    assert_eq!(output[kept.clone()], input[kept]);

    // Load commands: the input's, byte for byte unless they hold __LINKEDIT offsets.
    let mut new_cmds = after
        .cmds
        .iter()
        .filter(|c| !(c.kind == LC_SEGMENT_64 && name(&output[c.at + 8..c.at + 24]) == "__RUSTLE"));
    for old in &before.cmds {
        let new = new_cmds.next().unwrap();
        assert_eq!(old.kind, new.kind);
        assert_eq!(old.size, new.size);
        let moves = old.kind == LC_SEGMENT_64
            && name(&input[old.at + 8..old.at + 24]) == "__LINKEDIT"
            || [LC_SYMTAB, LC_DYSYMTAB, 0x22, LC_DYLD_INFO_ONLY].contains(&old.kind)
            || LINKEDIT_DATA.contains(&old.kind);
        if !moves {
            assert_eq!(
                before.raw(input, old),
                after.raw(output, new),
                "{:#x}",
                old.kind
            );
        }
    }
    let rest: Vec<_> = new_cmds.map(|c| c.kind).collect();
    if before.code_signature(input).is_some() {
        assert!(rest.is_empty());
    } else {
        assert_eq!(rest, [LC_CODE_SIGNATURE], "a signature command is added");
    }

    // Every __LINKEDIT blob lies inside it, none overlap, and each holds the input's bytes.
    let old_ranges = before.linkedit_ranges(input);
    let new_ranges = after.linkedit_ranges(output);
    let (l_start, l_end) = (linkedit.fileoff, linkedit.fileoff + linkedit.filesize);
    for (label, off, len) in &new_ranges {
        assert!(
            *off >= l_start && off + len <= l_end,
            "{label} outside __LINKEDIT"
        );
    }
    let mut sorted: Vec<_> = new_ranges.iter().filter(|r| r.2 > 0).collect();
    sorted.sort_by_key(|r| r.1);
    for pair in sorted.windows(2) {
        assert!(pair[0].1 + pair[0].2 <= pair[1].1, "{pair:?} overlap");
    }
    let signature = |r: &&(String, u64, u64)| r.0.starts_with("0x1d/");
    let old_blobs: Vec<_> = old_ranges.iter().filter(|r| !signature(r)).collect();
    let new_blobs: Vec<_> = new_ranges.iter().filter(|r| !signature(r)).collect();
    assert_eq!(old_blobs.len(), new_blobs.len());
    assert!(!new_blobs.is_empty());
    for (old, new) in old_blobs.iter().zip(&new_blobs) {
        assert_eq!(old.0, new.0);
        assert_eq!(old.2, new.2, "{} length", old.0);
        assert_eq!(
            input[old.1 as usize..(old.1 + old.2) as usize],
            output[new.1 as usize..(new.1 + new.2) as usize],
            "{} contents",
            old.0
        );
    }
    // The symbol and string tables specifically (the loader and tools depend on them).
    assert!(new_blobs.iter().any(|r| r.0 == "0x2/symbols" && r.2 > 0));
    assert!(new_blobs.iter().any(|r| r.0 == "0x2/strings" && r.2 > 0));

    let page_shift = check_signature(output, &after, macho::SIGNING_IDENTIFIER);
    assert_eq!(page_shift, 12, "4 KiB code signing pages");

    // The runner's reader finds the payload, in memory and on disk.
    assert_eq!(locate::find_payload(output).unwrap(), payload);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("packed");
    std::fs::write(&path, output).unwrap();
    assert_eq!(locate::read_payload_from(&path).unwrap(), payload);
}

// ---------------------------------------------------------------------------------------
// Input variants made in the test.

/// Removes the code signature from a signed file: its load command, and the file's tail
/// from the signature on (as a linker that does not sign would have left it).
fn strip_signature(file: &[u8]) -> Vec<u8> {
    let image = Image::parse(file);
    let (off, _) = image.code_signature(file).expect("input is signed");
    let cmd = image
        .cmds
        .iter()
        .find(|c| c.kind == LC_CODE_SIGNATURE)
        .unwrap()
        .clone();
    let mut out = file[..off].to_vec();
    // Close the gap in the load commands and zero the freed tail.
    out.copy_within(cmd.at + cmd.size..image.cmds_end, cmd.at);
    out[image.cmds_end - cmd.size..image.cmds_end].fill(0);
    let ncmds = le32(&out, 16) - 1;
    let sizeofcmds = le32(&out, 20) - cmd.size as u32;
    out[16..20].copy_from_slice(&ncmds.to_le_bytes());
    out[20..24].copy_from_slice(&sizeofcmds.to_le_bytes());
    set_linkedit_filesize(&mut out);
    assert!(Image::parse(&out).code_signature(&out).is_none());
    out
}

/// Adds a placeholder signature to an unsigned file, as a linker that signs would.
fn add_fake_signature(file: &[u8]) -> Vec<u8> {
    let image = Image::parse(file);
    assert!(image.code_signature(file).is_none());
    let mut out = file.to_vec();
    out.resize(file.len().next_multiple_of(16), 0);
    let off = out.len() as u32;
    let mut blob = Vec::new();
    blob.extend_from_slice(&0xfade_0cc0u32.to_be_bytes());
    blob.extend_from_slice(&12u32.to_be_bytes());
    blob.extend_from_slice(&0u32.to_be_bytes());
    blob.resize(32, 0);
    out.extend_from_slice(&blob);
    let at = image.cmds_end;
    out[at..at + 4].copy_from_slice(&LC_CODE_SIGNATURE.to_le_bytes());
    out[at + 4..at + 8].copy_from_slice(&16u32.to_le_bytes());
    out[at + 8..at + 12].copy_from_slice(&off.to_le_bytes());
    out[at + 12..at + 16].copy_from_slice(&32u32.to_le_bytes());
    let ncmds = le32(&out, 16) + 1;
    let sizeofcmds = le32(&out, 20) + 16;
    out[16..20].copy_from_slice(&ncmds.to_le_bytes());
    out[20..24].copy_from_slice(&sizeofcmds.to_le_bytes());
    set_linkedit_filesize(&mut out);
    out
}

/// Makes `__LINKEDIT` end at the end of the file.
fn set_linkedit_filesize(file: &mut [u8]) {
    let image = Image::parse(file);
    let cmd = image
        .cmds
        .iter()
        .find(|c| c.kind == LC_SEGMENT_64 && name(&file[c.at + 8..c.at + 24]) == "__LINKEDIT")
        .unwrap();
    let fileoff = le64(file, cmd.at + 40);
    let size = file.len() as u64 - fileoff;
    file[cmd.at + 48..cmd.at + 56].copy_from_slice(&size.to_le_bytes());
}

fn payload(len: usize) -> Vec<u8> {
    // Not all one byte value, so a misplaced copy cannot pass by accident.
    (0..len).map(|i| (i * 7 + i / 251) as u8).collect()
}

fn pack_and_check(input: &[u8], payload: &[u8]) -> Vec<u8> {
    let output = macho::embed(input, payload).expect("pack");
    check_packed(input, &output, payload);
    output
}

// ---------------------------------------------------------------------------------------
// Tests.

#[test]
fn fixtures_are_what_the_tests_assume() {
    let arm = fixture(ARM64);
    let x86 = fixture(X86_64);
    assert_eq!(Image::parse(&arm).cputype, CPU_ARM64);
    assert_eq!(Image::parse(&x86).cputype, CPU_X86_64);
    // zig signs arm64 output ad hoc and leaves x86_64 output unsigned.
    assert!(Image::parse(&arm).code_signature(&arm).is_some());
    assert!(Image::parse(&x86).code_signature(&x86).is_none());
    // The signature checker accepts the linker's own signature (the checker is checked).
    assert_eq!(check_signature(&arm, &Image::parse(&arm), ARM64), 14);
}

#[test]
fn arm64_signed_input() {
    pack_and_check(&fixture(ARM64), &payload(5000));
}

#[test]
fn arm64_unsigned_input() {
    pack_and_check(&strip_signature(&fixture(ARM64)), &payload(5000));
}

#[test]
fn x86_64_unsigned_input() {
    pack_and_check(&fixture(X86_64), &payload(5000));
}

#[test]
fn x86_64_signed_input() {
    pack_and_check(&add_fake_signature(&fixture(X86_64)), &payload(5000));
}

/// The real runner for a macOS triple, as `cargo xtask runners` built it. CI builds
/// every runner first (`cargo xtask ci`), so a missing one fails the test; only with
/// `RUSTLE_ALLOW_SKIP` set (a developer machine without zig) is it skipped, said aloud.
fn real_runner(triple: &str) -> Option<Vec<u8>> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../target/runners")
        .join(triple)
        .join("rustle-runner");
    match std::fs::read(&path) {
        Ok(b) => Some(b),
        Err(e) if std::env::var_os("RUSTLE_ALLOW_SKIP").is_some() => {
            eprintln!(
                "macho_pack: SKIPPED the real {triple} runner ({}: {e}; RUSTLE_ALLOW_SKIP is set)",
                path.display()
            );
            None
        }
        Err(e) => panic!(
            "{}: {e}: build it with `cargo xtask runners --target {triple}` (or set RUSTLE_ALLOW_SKIP=1 to skip)",
            path.display()
        ),
    }
}

#[test]
fn real_arm64_runner_signed_and_unsigned() {
    let Some(runner) = real_runner("aarch64-apple-darwin") else {
        return;
    };
    let image = Image::parse(&runner);
    assert_eq!(image.cputype, CPU_ARM64);
    // zig's linker signs arm64 output (naming it after rustc's output file,
    // rustle_runner-<hash>); the checker must accept that signature as it is.
    let shift = check_signature(&runner, &image, "rustle_runner-*");
    assert!(shift == 12 || shift == 14, "page size 2^{shift}");
    // A realistic payload: a few hundred kB of plan and files, over many pages.
    let big = payload(300_000);
    pack_and_check(&runner, &big);
    pack_and_check(&strip_signature(&runner), &payload(5000));
}

#[test]
fn real_x86_64_runner_unsigned_and_signed() {
    let Some(runner) = real_runner("x86_64-apple-darwin") else {
        return;
    };
    let image = Image::parse(&runner);
    assert_eq!(image.cputype, CPU_X86_64);
    // zig leaves x86_64 output unsigned; pack it both ways.
    assert!(image.code_signature(&runner).is_none());
    pack_and_check(&runner, &payload(300_000));
    pack_and_check(&add_fake_signature(&runner), &payload(5000));
}

#[test]
fn payload_sizes_around_page_boundaries() {
    let arm = fixture(ARM64);
    let x86 = fixture(X86_64);
    for len in [0, 1, 4095, 4096, 0x4000, 0x4001, 200_000] {
        pack_and_check(&arm, &payload(len));
        pack_and_check(&x86, &payload(len));
    }
}

#[test]
fn packing_twice_is_refused() {
    let packed = macho::embed(&fixture(ARM64), b"first").unwrap();
    assert!(matches!(
        macho::embed(&packed, b"second"),
        Err(MachoError::AlreadyPacked)
    ));
}

#[test]
fn packing_is_deterministic() {
    let arm = fixture(ARM64);
    assert_eq!(
        macho::embed(&arm, b"same").unwrap(),
        macho::embed(&arm, b"same").unwrap()
    );
}

fn check(input: &[u8], expect: &str) {
    let err = macho::embed(input, b"payload").expect_err("must fail");
    let got = format!("{err:?}");
    assert!(got.starts_with(expect), "expected {expect}, got {got}");
    // Every refusal says something readable.
    assert!(!err.to_string().is_empty());
}

#[test]
fn rejects_what_it_cannot_pack_safely() {
    let arm = fixture(ARM64);
    check(b"", "NotMachO");
    check(b"\x7fELF\x02\x01\x01", "NotMachO");
    check(b"\xcf\xfa\xed", "NotMachO");
    check(b"\xcf\xfa\xed\xfe", "Malformed");

    // Universal binaries, 32-bit and big-endian Mach-O.
    let mut fat = vec![0xca, 0xfe, 0xba, 0xbe, 0, 0, 0, 1];
    fat.extend_from_slice(&[0; 20]);
    check(&fat, "Fat");
    check(&[0xca, 0xfe, 0xba, 0xbf, 0, 0, 0, 1], "Fat");
    let mut bad = arm.clone();
    bad[0] = 0xce;
    check(&bad, "Unsupported");
    let mut bad = arm.clone();
    bad[..4].copy_from_slice(&[0xfe, 0xed, 0xfa, 0xcf]);
    check(&bad, "Unsupported");

    // Wrong CPU, not an executable.
    let mut bad = arm.clone();
    bad[4..8].copy_from_slice(&7u32.to_le_bytes());
    check(&bad, "Unsupported");
    let mut bad = arm.clone();
    bad[12..16].copy_from_slice(&6u32.to_le_bytes()); // MH_DYLIB
    check(&bad, "Unsupported");

    let image = Image::parse(&arm);
    // An unknown load command might point into __LINKEDIT: refused, not guessed at.
    let source = image
        .cmds
        .iter()
        .find(|c| c.kind == LC_SOURCE_VERSION)
        .unwrap();
    let mut bad = arm.clone();
    bad[source.at..source.at + 4].copy_from_slice(&0x7777u32.to_le_bytes());
    check(&bad, "Unsupported");

    // No room for the new load commands before the first section.
    let text = image
        .cmds
        .iter()
        .find(|c| c.kind == LC_SEGMENT_64 && name(&arm[c.at + 8..c.at + 24]) == "__TEXT")
        .unwrap();
    let mut bad = arm.clone();
    let first_sect_offset = text.at + 72 + 48;
    bad[first_sect_offset..first_sect_offset + 4]
        .copy_from_slice(&(image.cmds_end as u32 + 100).to_le_bytes());
    let err = macho::embed(&bad, b"p").unwrap_err();
    assert!(
        matches!(
            err,
            MachoError::NoRoom {
                need: 152,
                have: 100
            }
        ),
        "{err:?}"
    );
    let unsigned = strip_signature(&arm);
    let mut bad = unsigned.clone();
    let cmds_end = Image::parse(&unsigned).cmds_end;
    bad[first_sect_offset..first_sect_offset + 4]
        .copy_from_slice(&(cmds_end as u32 + 160).to_le_bytes());
    let err = macho::embed(&bad, b"p").unwrap_err();
    assert!(
        matches!(
            err,
            MachoError::NoRoom {
                need: 168,
                have: 160
            }
        ),
        "{err:?}"
    );

    // Something other than zeros after the load commands.
    let mut bad = arm.clone();
    bad[image.cmds_end + 10] = 1;
    check(&bad, "Unsupported");

    // Data after __LINKEDIT, and a truncated file.
    let mut bad = arm.clone();
    bad.push(0);
    check(&bad, "Unsupported");
    check(&arm[..arm.len() - 1], "Malformed");

    // The symbol table pointing outside __LINKEDIT.
    let symtab = image.cmds.iter().find(|c| c.kind == LC_SYMTAB).unwrap();
    let mut bad = arm.clone();
    bad[symtab.at + 8..symtab.at + 12].copy_from_slice(&64u32.to_le_bytes());
    check(&bad, "Malformed");
    let mut bad = arm.clone();
    bad[symtab.at + 12..symtab.at + 16].copy_from_slice(&u32::MAX.to_le_bytes());
    check(&bad, "Malformed");

    // Load commands that overrun their area, or a huge count.
    let mut bad = arm.clone();
    bad[20..24].copy_from_slice(&(le32(&arm, 20) - 8).to_le_bytes());
    check(&bad, "Malformed");
    let mut bad = arm.clone();
    bad[16..20].copy_from_slice(&u32::MAX.to_le_bytes());
    check(&bad, "Malformed");
}

#[test]
fn runner_reader_refuses_fat_and_32_bit_files() {
    let mut fat = vec![0xca, 0xfe, 0xba, 0xbe, 0, 0, 0, 1];
    fat.extend_from_slice(&[0; 40]);
    let err = locate::find_payload(&fat).unwrap_err();
    assert!(matches!(err, LocateError::Unsupported(_)), "{err:?}");
    assert!(err.to_string().contains("fat"), "{err}");
    let mut thin32 = fixture(X86_64);
    thin32[0] = 0xce;
    assert!(matches!(
        locate::find_payload(&thin32),
        Err(LocateError::Unsupported(_))
    ));
    // Unpacked runners have no payload.
    assert!(matches!(
        locate::find_payload(&fixture(ARM64)),
        Err(LocateError::NoPayload)
    ));
    assert!(matches!(
        locate::find_payload(&fixture(X86_64)),
        Err(LocateError::NoPayload)
    ));
}

#[test]
fn mangled_runners_never_panic() {
    for input in [fixture(ARM64), fixture(X86_64)] {
        let image = Image::parse(&input);
        for len in 0..input.len() {
            let _ = macho::embed(&input[..len], b"payload");
        }
        // Flip bytes where the packer reads: the header and load commands, and __LINKEDIT.
        let linkedit = image.segment("__LINKEDIT").fileoff as usize;
        let mut bad = input.clone();
        for i in (0..image.cmds_end).chain(linkedit..input.len()) {
            for mask in [0x01u8, 0x80, 0xff] {
                bad[i] ^= mask;
                if let Ok(out) = macho::embed(&bad, b"payload") {
                    // Whatever it accepts, it must not have produced garbage.
                    assert_eq!(locate::find_payload(&out).unwrap(), b"payload");
                }
                bad[i] ^= mask;
            }
        }
        assert_eq!(bad, input);
    }
}

#[test]
fn mangled_packed_files_never_panic_the_reader() {
    let packed = macho::embed(&fixture(ARM64), &payload(300)).unwrap();
    let image = Image::parse(&packed);
    for len in 0..packed.len() {
        let _ = locate::find_payload(&packed[..len]);
    }
    let mut bad = packed.clone();
    for i in 0..image.cmds_end {
        for mask in [0x01u8, 0x80, 0xff] {
            bad[i] ^= mask;
            let _ = locate::find_payload(&bad);
            bad[i] ^= mask;
        }
    }
    assert_eq!(locate::find_payload(&bad).unwrap(), payload(300));
}
