//! End-to-end checks of ELF packing on real binaries: pack, run, strip, run again.
//!
//! The binaries under test are tiny programs built here from the runner's own
//! `runner/src/locate.rs` (it needs only std and thiserror), so what runs is the real
//! lookup code, in a static-pie musl executable like the shipped runners and in a
//! dynamically linked glibc PIE. Each one prints its payload on stdout, so the test can
//! compare it byte for byte. They are built once into `CARGO_TARGET_TMPDIR` with cargo
//! (offline), so later runs reuse the build.

// This whole file is test code, but clippy's test exemptions (clippy.toml) only cover
// `#[test]` functions, not the helpers they share.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Mutex;
use std::time::Instant;

use object::elf::{ET_DYN, FileType, PT_GNU_STACK, PT_INTERP, PT_NOTE, ProgramType};
use rustle_deploy::elf::{self, ElfError};
use rustle_runner::locate::{self, LocateError};

const MUSL: &str = "x86_64-unknown-linux-musl";
const AARCH64_MUSL: &str = "aarch64-unknown-linux-musl";

/// Exit code of the probe program when it cannot find its payload.
const PROBE_NO_PAYLOAD: i32 = 3;

/// Exit code of the probe program when its payload is not mapped into its memory.
const PROBE_NOT_MAPPED: i32 = 4;

/// The probe: finds its payload with the runner's code and prints it, then checks that
/// the kernel really mapped those bytes (through the new `PT_LOAD`) by looking for them in
/// its own memory, read through `/proc/self/mem` for each mapping of its executable.
const PROBE_SOURCE: &str = r#"//! Prints this executable's rustle payload on stdout.
#[allow(dead_code)]
#[path = LOCATE_RS]
mod locate;

use std::io::Write;
use std::os::unix::fs::FileExt;

fn main() {
    let payload = match locate::read_own_payload() {
        Ok(payload) => payload,
        Err(e) => {
            eprintln!("probe: {e}");
            std::process::exit(3);
        }
    };
    std::io::stdout().write_all(&payload).unwrap();
    if !payload.is_empty() && !mapped(&payload) {
        eprintln!("probe: payload not found in memory");
        std::process::exit(4);
    }
}

fn mapped(payload: &[u8]) -> bool {
    let exe = std::fs::read_link("/proc/self/exe").unwrap();
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    let mem = std::fs::File::open("/proc/self/mem").unwrap();
    for line in maps.lines() {
        // start-end perms offset dev inode path
        let fields: Vec<&str> = line.splitn(6, ' ').collect();
        let [range, perms, _, _, _, path] = fields[..] else { continue };
        if path.trim_start() != exe.to_str().unwrap() || !perms.starts_with('r') {
            continue;
        }
        let (start, end) = range.split_once('-').unwrap();
        let start = u64::from_str_radix(start, 16).unwrap();
        let end = u64::from_str_radix(end, 16).unwrap();
        let mut bytes = vec![0; (end - start) as usize];
        mem.read_exact_at(&mut bytes, start).unwrap();
        if bytes.windows(payload.len()).any(|w| w == payload) {
            return true;
        }
    }
    false
}
"#;

/// Builds (or reuses) the probe program for `target` (`None`: the host's default, a
/// glibc PIE here) and returns the executable's path.
fn probe(target: Option<&str>) -> PathBuf {
    // One cargo build at a time: they share the probe project and its target directory.
    static LOCK: Mutex<()> = Mutex::new(());
    let _guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());

    let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join("elf-pack-probe");
    let src = root.join("src");
    std::fs::create_dir_all(&src).unwrap();
    let locate_rs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../runner/src/locate.rs");
    let locate_rs = locate_rs.canonicalize().unwrap();
    write_if_changed(
        &root.join("Cargo.toml"),
        "[package]\nname = \"locate-probe\"\nversion = \"0.0.0\"\nedition = \"2024\"\n\n\
         [dependencies]\nthiserror = \"2\"\n\n\
         # Keep it out of the rustle workspace that encloses the target directory.\n\
         [workspace]\n",
    );
    let main_rs = PROBE_SOURCE.replace("LOCATE_RS", &format!("{locate_rs:?}"));
    write_if_changed(&src.join("main.rs"), &main_rs);
    let workspace_lock = Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.lock");
    if !root.join("Cargo.lock").exists() && workspace_lock.exists() {
        // Same versions as the workspace, resolvable offline; cargo prunes the rest.
        std::fs::copy(&workspace_lock, root.join("Cargo.lock")).unwrap();
    }

    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(&root)
        .args(["build", "--release", "--offline", "--quiet"])
        .env("CARGO_TARGET_DIR", root.join("target"));
    let mut out_dir = root.join("target");
    if let Some(target) = target {
        cmd.args(["--target", target]);
        out_dir.push(target);
        if target.starts_with("aarch64") {
            // No aarch64 C toolchain here: rust-lld links pure-Rust static binaries.
            cmd.env("CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_LINKER", "rust-lld");
        }
    }
    let status = cmd.status().unwrap();
    assert!(status.success(), "building the probe for {target:?} failed");
    out_dir.join("release/locate-probe")
}

fn write_if_changed(path: &Path, text: &str) {
    // Rewriting an identical file would make cargo rebuild the probe every run.
    if std::fs::read_to_string(path).ok().as_deref() != Some(text) {
        std::fs::write(path, text).unwrap();
    }
}

/// Deterministic pseudo-random bytes (xorshift64*), so a failure reproduces.
fn random_bytes(len: usize, mut seed: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        seed ^= seed >> 12;
        seed ^= seed << 25;
        seed ^= seed >> 27;
        out.extend_from_slice(&seed.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
    }
    out.truncate(len);
    out
}

fn write_executable(path: &Path, bytes: &[u8]) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, bytes).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// Runs a file this test process just wrote. While another test thread forks, the
/// child briefly holds our write descriptor (until its exec closes it), and exec of the
/// file then fails with ETXTBSY: retry that, it passes in milliseconds.
fn run(path: &Path) -> Output {
    for _ in 0..100 {
        match Command::new(path).output() {
            Err(e) if e.kind() == std::io::ErrorKind::ExecutableFileBusy => {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            Ok(out) => return out,
            Err(e) => panic!("cannot run {}: {e}", path.display()),
        }
    }
    panic!("{} stayed busy", path.display())
}

/// Asserts that running `path` prints exactly `payload`.
fn assert_runs_with(path: &Path, payload: &[u8]) {
    let out = run(path);
    assert_ne!(
        out.status.code(),
        Some(PROBE_NOT_MAPPED),
        "{}: payload found in the file but not mapped into memory",
        path.display()
    );
    assert!(
        out.status.success(),
        "{} failed: {:?} {}",
        path.display(),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.stdout == payload,
        "{} printed {} bytes, not the {}-byte payload",
        path.display(),
        out.stdout.len(),
        payload.len()
    );
}

/// Program header types and `e_type` of an ELF file, read by the `object` crate,
/// independently of the code under test.
fn elf_kind(bytes: &[u8]) -> (FileType, Vec<ProgramType>) {
    use object::read::elf::{ElfFile64, FileHeader, ProgramHeader};
    let file = ElfFile64::<object::Endianness>::parse(bytes).unwrap();
    let e = file.endian();
    let types = file
        .elf_program_headers()
        .iter()
        .map(|p| p.p_type(e))
        .collect();
    (file.elf_header().e_type(e), types)
}

/// The payload as the `object` crate's ELF reader finds it: the `.rustle` section's
/// bytes, which some loadable segment must map (or strip would drop them). An oracle
/// that shares no code with the packer or the runner's reader.
fn payload_by_object(bytes: &[u8]) -> Vec<u8> {
    use object::{Object, ObjectSection, ObjectSegment};
    let file = object::File::parse(bytes).unwrap();
    let section = file.section_by_name(".rustle").expect("a .rustle section");
    let (start, end) = (section.address(), section.address() + section.size());
    assert!(
        file.segments()
            .any(|s| s.address() <= start && end <= s.address() + s.size()),
        "no PT_LOAD maps .rustle"
    );
    section.data().unwrap().to_vec()
}

/// Packs a 1 MB payload into `probe`, runs it, then runs copies stripped by GNU strip
/// and llvm-strip (in both their default and `--strip-all` modes).
fn pack_run_and_strip(probe: &Path, name: &str) {
    let dir = tempfile::tempdir().unwrap();
    let runner = std::fs::read(probe).unwrap();

    // The bare probe runs and says it has no payload: the check below is not vacuous.
    let out = run(probe);
    assert_eq!(out.status.code(), Some(PROBE_NO_PAYLOAD), "{name}: {out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("no .rustle payload"));

    let payload = random_bytes(1 << 20, 0x5eed_0000 ^ runner.len() as u64);
    let packed = elf::embed(&runner, &payload).unwrap();
    let packed_path = dir.path().join(format!("{name}-packed"));
    write_executable(&packed_path, &packed);
    assert_runs_with(&packed_path, &payload);
    assert_eq!(locate::find_payload(&packed).unwrap(), payload.as_slice());
    assert_eq!(locate::read_payload_from(&packed_path).unwrap(), payload);
    assert!(
        payload_by_object(&packed) == payload,
        "{name}: object disagrees"
    );
    // The table keeps its size; a PT_NOTE is reused when there is one, so the
    // non-executable-stack header survives.
    let (before, after) = (elf_kind(&runner).1, elf_kind(&packed).1);
    assert_eq!(before.len(), after.len(), "{name}");
    if before.contains(&PT_NOTE) {
        assert!(
            after.contains(&PT_GNU_STACK),
            "{name}: PT_GNU_STACK was dropped"
        );
        assert_eq!(
            after.iter().filter(|t| **t == PT_NOTE).count() + 1,
            before.iter().filter(|t| **t == PT_NOTE).count(),
            "{name}"
        );
    } else {
        assert!(!after.contains(&PT_GNU_STACK), "{name}");
    }

    for (tool, flags) in [
        ("strip", &[][..]),
        ("strip", &["--strip-all"][..]),
        ("llvm-strip", &[][..]),
        ("llvm-strip", &["--strip-all"][..]),
    ] {
        let stripped = dir.path().join(format!("{name}-{tool}{}", flags.join("")));
        let status = Command::new(tool)
            .args(flags)
            .arg("-o")
            .arg(&stripped)
            .arg(&packed_path)
            .status()
            .unwrap_or_else(|e| panic!("cannot run {tool}: {e}"));
        assert!(status.success(), "{tool} {flags:?} failed on {name}");
        let bytes = std::fs::read(&stripped).unwrap();
        // Strip really rewrote the file (the symbol table is gone), yet the payload stays.
        assert!(
            bytes.len() < packed.len(),
            "{tool} {flags:?} left {name} unchanged"
        );
        assert_eq!(
            locate::find_payload(&bytes).unwrap(),
            payload.as_slice(),
            "{tool} {flags:?} on {name}"
        );
        assert!(
            payload_by_object(&bytes) == payload,
            "{tool} {flags:?} on {name}: object disagrees"
        );
        assert_runs_with(&stripped, &payload);
    }
}

#[test]
fn static_musl_runner_finds_its_payload_even_after_strip() {
    let probe = probe(Some(MUSL));
    let (e_type, phdrs) = elf_kind(&std::fs::read(&probe).unwrap());
    // static-pie: position independent, no interpreter, like the shipped runners.
    assert_eq!(e_type, ET_DYN);
    assert!(!phdrs.contains(&PT_INTERP));
    pack_run_and_strip(&probe, "musl");
}

#[test]
fn dynamic_glibc_pie_finds_its_payload_even_after_strip() {
    let probe = probe(None);
    let (e_type, phdrs) = elf_kind(&std::fs::read(&probe).unwrap());
    assert_eq!(e_type, ET_DYN);
    assert!(phdrs.contains(&PT_INTERP));
    pack_run_and_strip(&probe, "glibc");
}

#[test]
fn aarch64_musl_payload_survives_llvm_strip() {
    // Nothing here can run aarch64 code (no qemu), so this checks the layout statically:
    // llvm-strip understands the file and the payload is still found.
    let probe = probe(Some(AARCH64_MUSL));
    let runner = std::fs::read(&probe).unwrap();
    let payload = random_bytes(300_000, 7);
    let packed = elf::embed(&runner, &payload).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let packed_path = dir.path().join("packed");
    let stripped = dir.path().join("stripped");
    write_executable(&packed_path, &packed);
    let status = Command::new("llvm-strip")
        .arg("-o")
        .arg(&stripped)
        .arg(&packed_path)
        .status()
        .unwrap();
    assert!(status.success());
    let bytes = std::fs::read(&stripped).unwrap();
    assert!(bytes.len() < packed.len());
    assert_eq!(locate::find_payload(&bytes).unwrap(), payload.as_slice());
    assert!(payload_by_object(&bytes) == payload, "object disagrees");
}

#[test]
fn packing_a_packed_runner_is_refused() {
    let runner = std::fs::read(probe(Some(MUSL))).unwrap();
    let packed = elf::embed(&runner, b"first").unwrap();
    assert!(matches!(
        elf::embed(&packed, b"second"),
        Err(ElfError::AlreadyPacked)
    ));
}

#[test]
fn embeds_20_mb_quickly() {
    let runner = std::fs::read(probe(Some(MUSL))).unwrap();
    let payload = random_bytes(20 << 20, 42);
    let start = Instant::now();
    let packed = elf::embed(&runner, &payload).unwrap();
    let elapsed = start.elapsed();
    // Reported, not asserted: timing depends on the machine.
    eprintln!(
        "embed: {} MiB payload into a {} KiB runner in {:.1} ms",
        payload.len() >> 20,
        runner.len() >> 10,
        elapsed.as_secs_f64() * 1000.0
    );
    assert_eq!(locate::find_payload(&packed).unwrap(), payload.as_slice());
}

#[test]
fn damaged_packed_binaries_give_errors_not_panics() {
    let runner = std::fs::read(probe(Some(MUSL))).unwrap();
    let payload = random_bytes(4096, 1);
    let mut image = elf::embed(&runner, &payload).unwrap();
    let len = image.len();

    // Truncations: through the headers byte by byte, then every 997 bytes.
    let cuts = (0..512).chain((512..len).step_by(997));
    for cut in cuts {
        let cut_image = image.get(..cut).unwrap();
        assert!(locate::find_payload(cut_image).is_err(), "cut at {cut}");
        let _ = elf::embed(cut_image, b"x");
    }

    // Byte flips in every header structure the code reads: the ELF header, the program
    // headers, the new section header table and name table at the end of the file.
    let shoff = u64::from_le_bytes(image[40..48].try_into().unwrap()) as usize;
    let tail = shoff.saturating_sub(256)..len;
    let (mut flips, mut refused) = (0, 0);
    for at in (0..64 + 16 * 56).chain(tail) {
        for mask in [0x01u8, 0x40, 0x80, 0xff] {
            image[at] ^= mask;
            // A flip may also move the payload within the file (to other bytes): that is
            // for the payload's signature to catch. Here it must only never panic.
            if locate::find_payload(&image).is_err() {
                refused += 1;
            }
            let _ = elf::embed(&image, b"x");
            image[at] ^= mask;
            flips += 1;
        }
    }
    assert!(
        refused > 100 && flips > 1000,
        "{refused} of {flips} flips refused"
    );
    assert_eq!(locate::find_payload(&image).unwrap(), payload.as_slice());

    // The file reader applies the same bounds: a packed file cut inside its section
    // header table is refused with an error, without reading past the end.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cut");
    std::fs::write(&path, &image[..len - 10]).unwrap();
    assert!(matches!(
        locate::read_payload_from(&path),
        Err(LocateError::Malformed(_))
    ));
}
