//! The runner's command line: find the payload, verify it, run it, report.
//!
//! ```text
//! rustle-runner [run] [--expect DIGEST] [--trusted-key FILE]... [--check] [--diff] [--report FILE]
//! rustle-runner info        # show the embedded payload's header, verifying nothing
//! ```
//! Arguments are parsed by hand: the runner stays small and needs only these few.

use crate::events::{Event, JsonLines, Sink};
use crate::exec::{Executor, RunOptions};
use crate::modules::custom::CustomFn;
use crate::payload::{self, Digest, PayloadError};
use crate::{exit, install, locate, trust};
use serde_json::json;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

const USAGE: &str = "usage: rustle-runner [run] [--expect DIGEST] [--trusted-key FILE]... [--check] [--diff] [--report FILE] [--install | --root DIR] [--payload FILE]
       rustle-runner info
       rustle-runner rollback [--root DIR] [--trusted-key FILE]...
       rustle-runner --version

Runs the plan embedded in this executable after checking its digest and signature.
Trusted keys: --trusted-key files, /etc/rustle/trusted_keys, ~/.rustle/trusted_keys.
With --install (or --root DIR) the runner first copies itself into DIR/releases/<deployment>/
(DIR defaults to ~/.rustle, /var/lib/rustle for root), reports there, and records the run in
DIR/state.json; DIR/current then points at the last release that ran without failure.
Events go to stdout as JSON lines; a recap goes to stderr.
--payload FILE reads the payload from FILE (- for standard input) instead of this
executable (same checks).
--stage verifies and installs the release without running it; --expect-file DIGEST first
checks the blake3 of this file. `rollback` makes the latest earlier good release current
and runs it again.
Exit codes: 0 ok, 2 a task failed, 64 usage, 65 payload missing or corrupt,
66 payload (or file) is not the expected one, 67 payload signature not trusted,
68 nothing to roll back to.";

#[derive(Debug, Default)]
struct Args {
    info: bool,
    rollback: bool,
    stage: bool,
    expect_file: Option<Digest>,
    payload_file: Option<PathBuf>,
    expect: Option<Digest>,
    trusted_keys: Vec<PathBuf>,
    report: Option<PathBuf>,
    install_root: Option<PathBuf>,
    opts: RunOptions,
}

enum Parsed {
    Run(Args),
    Help,
    Version,
}

fn parse(args: Vec<OsString>) -> Result<Parsed, String> {
    let mut out = Args::default();
    let mut it = args.into_iter();
    let mut first = true;
    while let Some(arg) = it.next() {
        let arg = arg
            .into_string()
            .map_err(|a| format!("argument is not UTF-8: {a:?}"))?;
        let mut value = |name: &str| it.next().ok_or_else(|| format!("{name} needs a value"));
        match arg.as_str() {
            "run" if first => {}
            "info" if first => out.info = true,
            "rollback" if first => out.rollback = true,
            "--stage" => out.stage = true,
            "--payload" => out.payload_file = Some(value("--payload")?.into()),
            "--expect-file" => {
                let v = value("--expect-file")?;
                let s = v.to_string_lossy();
                out.expect_file = Some(
                    Digest::from_hex(&s)
                        .ok_or_else(|| format!("--expect-file: not a 64-digit hex digest: {s}"))?,
                );
            }
            "-h" | "--help" => return Ok(Parsed::Help),
            "-V" | "--version" => return Ok(Parsed::Version),
            "--expect" => {
                let v = value("--expect")?;
                let s = v.to_string_lossy();
                out.expect = Some(
                    Digest::from_hex(&s)
                        .ok_or_else(|| format!("--expect: not a 64-digit hex digest: {s}"))?,
                );
            }
            "--trusted-key" => out.trusted_keys.push(value("--trusted-key")?.into()),
            "--report" => out.report = Some(value("--report")?.into()),
            "--install" => out.install_root = Some(install::default_root()),
            "--root" => out.install_root = Some(value("--root")?.into()),
            "--check" => out.opts.check_mode = true,
            "--diff" => out.opts.diff_mode = true,
            other => return Err(format!("unknown argument: {other}")),
        }
        first = false;
    }
    Ok(Parsed::Run(out))
}

/// [`main`] for a custom runner: registers the modules compiled into it first (see
/// [`crate::modules::custom`]). The packer generates the `main.rs` that calls this.
pub fn main_with(args: Vec<OsString>, modules: &[(&'static str, CustomFn)]) -> i32 {
    crate::modules::custom::register(modules);
    main(args)
}

/// Runs the runner; returns the process exit code.
pub fn main(args: Vec<OsString>) -> i32 {
    // The hidden mode in which a runner serves one module for a task's `become_user`
    // (see `modules::asuser`). It sits before everything else so custom runners, whose
    // `main_with` ends here, have it too; it runs with its caller's own identity and
    // trusts nothing else, so it gives no one anything (see `child_main`).
    if let Some((first, rest)) = args.split_first()
        && first == crate::modules::CHILD_FLAG
    {
        return crate::modules::child_main(rest);
    }
    let args = match parse(args) {
        Ok(Parsed::Run(a)) => a,
        Ok(Parsed::Help) => {
            println!("{USAGE}");
            return exit::OK;
        }
        Ok(Parsed::Version) => {
            let custom = crate::modules::custom::names();
            if custom.is_empty() {
                println!("rustle-runner {}", env!("CARGO_PKG_VERSION"));
            } else {
                println!(
                    "rustle-runner {} (custom modules: {})",
                    env!("CARGO_PKG_VERSION"),
                    custom.join(", ")
                );
            }
            return exit::OK;
        }
        Err(e) => {
            eprintln!("rustle-runner: {e}\n\n{USAGE}");
            return exit::USAGE;
        }
    };
    if args.rollback {
        return rollback(&args);
    }
    if let Some(want) = &args.expect_file {
        // --verify: the file that arrived is, byte for byte, the one the deployer sent.
        match std::fs::File::open("/proc/self/exe").and_then(Digest::of_reader) {
            Ok(me) if me == *want => {}
            Ok(me) => {
                eprintln!(
                    "rustle-runner: refusing to run: this file's blake3 is {me}, the deployer sent {want}; no task was run"
                );
                return exit::PAYLOAD_UNEXPECTED;
            }
            Err(e) => {
                eprintln!("rustle-runner: cannot read its own file: {e}");
                return exit::INTERNAL;
            }
        }
    }
    // A payload given as a file (a cached bare runner shipped only the new payload)
    // goes through exactly the same checks as an embedded one.
    let bytes = match &args.payload_file {
        Some(p) => match read_payload_file(p) {
            Ok(b) => b,
            Err(e) => {
                eprintln!(
                    "rustle-runner: refusing to run: cannot read payload {}: {e}",
                    p.display()
                );
                return exit::PAYLOAD_INVALID;
            }
        },
        None => match locate::read_own_payload() {
            Ok(b) => b,
            Err(e) => {
                eprintln!("rustle-runner: refusing to run: {e}");
                return exit::PAYLOAD_INVALID;
            }
        },
    };
    if args.info {
        return info(&bytes);
    }
    let mut keys = Vec::new();
    for path in &args.trusted_keys {
        match trust::read_key_file(path) {
            Ok(k) => keys.extend(k),
            Err(e) => {
                eprintln!("rustle-runner: {e}");
                return exit::USAGE;
            }
        }
    }
    match trust::store_keys() {
        Ok(k) => keys.extend(k),
        Err(e) => {
            eprintln!("rustle-runner: refusing to run: {e}");
            return exit::PAYLOAD_UNTRUSTED;
        }
    }
    let (digest, plan) = match payload::open(&bytes, args.expect.as_ref(), &keys) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("rustle-runner: refusing to run: {e}; no task was run");
            return payload_exit_code(&e);
        }
    };
    // Installing comes after verification (an unverified payload is never kept) and
    // before the first task (a host that ran a release always has it on disk).
    let release = match &args.install_root {
        Some(root) => match install::install_self(
            root,
            &plan.deployment_id,
            args.payload_file.as_ref().map(|_| bytes.as_slice()),
        ) {
            Ok(r) => Some(r),
            Err(e) => {
                eprintln!("rustle-runner: cannot install the release: {e}; no task was run");
                return exit::INTERNAL;
            }
        },
        None => None,
    };
    if let (true, Some(release)) = (args.stage, &release) {
        // Blue-green: the release is on disk and verified; switching to it is a
        // separate run of the installed runner.
        if let Err(e) = install::record(
            release,
            &plan.host,
            &digest.to_hex(),
            install::Outcome::Staged,
        ) {
            eprintln!("rustle-runner: cannot record the staged release: {e}");
            return exit::INTERNAL;
        }
        JsonLines::new(std::io::stdout().lock()).emit(&Event::Staged {
            v: crate::events::EVENTS_VERSION,
            host: plan.host.clone(),
            deployment: plan.deployment_id.clone(),
            digest: digest.to_hex(),
        });
        return exit::OK;
    }
    drop(bytes);
    let report_path = args
        .report
        .clone()
        .or_else(|| release.as_ref().map(install::Release::report));

    let mut sink = Tee {
        out: JsonLines::new(std::io::stdout().lock()),
        tasks: Vec::new(),
    };
    sink.emit(&Event::Start {
        v: crate::events::EVENTS_VERSION,
        host: plan.host.clone(),
        deployment: plan.deployment_id.clone(),
        digest: digest.to_hex(),
        runner_version: env!("CARGO_PKG_VERSION").to_string(),
        check_mode: plan.check_mode || args.opts.check_mode,
    });
    let summary = Executor::new(&plan, &mut sink, args.opts).run();
    let r = summary.recap;
    eprintln!(
        "{}: ok={} changed={} unreachable=0 failed={} skipped={} rescued={} ignored={}",
        plan.host, r.ok, r.changed, r.failed, r.skipped, r.rescued, r.ignored
    );
    if let Some(path) = &report_path {
        let report = json!({
            "v": crate::events::EVENTS_VERSION,
            "host": plan.host,
            "deployment": plan.deployment_id,
            "digest": digest.to_hex(),
            "recap": r,
            "events": sink.tasks,
        });
        let text = serde_json::to_vec_pretty(&report).unwrap_or_default();
        if let Err(e) = std::fs::write(path, text) {
            eprintln!("rustle-runner: cannot write report {}: {e}", path.display());
            return exit::INTERNAL;
        }
    }
    if let Some(release) = &release {
        let outcome = if summary.host_failed {
            install::Outcome::Failed
        } else {
            install::Outcome::Ok
        };
        if let Err(e) = install::record(release, &plan.host, &digest.to_hex(), outcome) {
            eprintln!("rustle-runner: cannot record the run: {e}");
            return exit::INTERNAL;
        }
    }
    if summary.host_failed {
        exit::TASKS_FAILED
    } else {
        exit::OK
    }
}

/// A payload file's bytes; `-` is standard input, read to its end (the deployer sends
/// a cached runner's payload that way, so the host writes no temporary file for it).
fn read_payload_file(path: &Path) -> std::io::Result<Vec<u8>> {
    if path == Path::new("-") {
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin().lock(), &mut bytes)?;
        Ok(bytes)
    } else {
        std::fs::read(path)
    }
}

/// The exit code for a refused payload: shape, identity and trust failures differ so
/// the deployer (or a person at the console) can tell them apart.
pub fn payload_exit_code(e: &PayloadError) -> i32 {
    match e {
        PayloadError::UnexpectedDigest { .. } => exit::PAYLOAD_UNEXPECTED,
        e if e.is_trust_failure() => exit::PAYLOAD_UNTRUSTED,
        _ => exit::PAYLOAD_INVALID,
    }
}

/// `rollback`: make the most recent earlier release that ran without failure current
/// again, and run it (its payload checked as on any run).
fn rollback(args: &Args) -> i32 {
    let root = args
        .install_root
        .clone()
        .unwrap_or_else(install::default_root);
    let current = std::fs::read_link(root.join("current"))
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()));
    let state = install::read_state(&root);
    let previous = state
        .get("deployments")
        .and_then(serde_json::Value::as_array)
        .into_iter()
        .flatten()
        .rev()
        .filter(|d| d.get("status").and_then(serde_json::Value::as_str) == Some("ok"))
        .filter_map(|d| {
            let field = |k: &str| {
                d.get(k)
                    .and_then(serde_json::Value::as_str)
                    .map(str::to_string)
            };
            Some((field("id")?, field("digest")?))
        })
        .find(|(id, _)| {
            Some(id) != current.as_ref()
                && install::check_id(id).is_ok()
                && root
                    .join("releases")
                    .join(id)
                    .join("rustle-runner")
                    .exists()
        });
    let Some((id, digest)) = previous else {
        eprintln!(
            "rustle-runner: no earlier release to roll back to in {} (current: {})",
            root.display(),
            current.as_deref().unwrap_or("none")
        );
        return exit::NOTHING_TO_ROLL_BACK;
    };
    if let Err(e) = install::point_current(&root, &id) {
        eprintln!("rustle-runner: {e}");
        return exit::INTERNAL;
    }
    let exe = root.join("releases").join(&id).join("rustle-runner");
    let mut cmd = std::process::Command::new(&exe);
    cmd.arg("--root").arg(&root).arg("--expect").arg(&digest);
    let payload = root.join("releases").join(&id).join("payload.bin");
    if payload.exists() {
        cmd.arg("--payload").arg(payload);
    }
    for k in &args.trusted_keys {
        cmd.arg("--trusted-key").arg(k);
    }
    match cmd.status() {
        Ok(s) => s.code().unwrap_or(exit::INTERNAL),
        Err(e) => {
            eprintln!("rustle-runner: cannot run {}: {e}", exe.display());
            exit::INTERNAL
        }
    }
}

fn info(bytes: &[u8]) -> i32 {
    match payload::parse(bytes) {
        Ok((h, _)) => {
            let v = json!({
                "format_version": h.version,
                "digest": h.digest.to_hex(),
                "signer": crate::hex::encode(&h.signer),
                "body_bytes": h.body_len,
                "payload_bytes": bytes.len(),
            });
            println!("{v}");
            exit::OK
        }
        Err(e) => {
            eprintln!("rustle-runner: {e}");
            exit::PAYLOAD_INVALID
        }
    }
}

/// Streams events and keeps the task events for the report.
struct Tee<W: std::io::Write> {
    out: JsonLines<W>,
    tasks: Vec<Event>,
}

impl<W: std::io::Write> Sink for Tee<W> {
    fn emit(&mut self, event: &Event) {
        self.out.emit(event);
        if matches!(event, Event::Task { .. } | Event::Play { .. }) {
            self.tasks.push(event.clone());
        }
    }
}
