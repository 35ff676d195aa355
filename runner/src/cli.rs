//! The runner's command line: find the payload, verify it, run it, report.
//!
//! ```text
//! rustle-runner [run] [--expect DIGEST] [--trusted-key FILE]... [--check] [--diff] [--report FILE]
//! rustle-runner info        # show the embedded payload's header, verifying nothing
//! rustle-runner rollback    # run the previous good release again
//! rustle-runner cleanup     # remove releases, cache and state from a root
//! ```
//! Arguments are parsed by hand: the runner stays small and needs only these few.

use crate::events::{Answer, Channel, Event, JsonLines, Request, Sink};
use crate::exec::{Executor, RunOptions};
use crate::modules::custom::CustomFn;
use crate::payload::{self, Digest, PayloadError};
use crate::{exit, install, locate, trust};
use serde_json::json;
use std::ffi::OsString;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// `eprintln!` that cannot panic. A runner whose deployer went away has lost its stderr
/// too, and std's `eprintln!` panics when the write fails (the runner aborts on a
/// panic): it would die before recording its run.
macro_rules! say {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($t)*);
    }};
}

/// How long a runner waits for another one to release the state root's lock
/// (`--no-wait`: not at all).
const LOCK_WAIT: Duration = Duration::from_secs(60);

/// Releases kept on a host unless `--keep-releases` says otherwise.
const KEEP_RELEASES: usize = 5;

/// Set (to `1`) by `rollback` for the release runner it starts when the deployer follows
/// the run: the child then watches for the deployer going away, as `--attached` does
/// (a runner from before that flag ignores the variable instead of refusing an argument).
const ATTACHED_ENV: &str = "RUSTLE_ATTACHED";

const USAGE: &str = "usage: rustle-runner [run] [--expect DIGEST] [--trusted-key FILE]... [--check] [--diff] [--report FILE] [--install | --root DIR] [--payload FILE] [--keep-releases N] [--no-wait] [--attached] [--channel]
       rustle-runner info
       rustle-runner rollback [--root DIR] [--trusted-key FILE]... [--keep-releases N] [--no-wait]
       rustle-runner cleanup [--root DIR] [--no-wait]
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
checks the blake3 of this file. `rollback` runs the latest earlier good release again
(the last good one, after a failed deploy); it becomes current if it succeeds.
`cleanup` removes the releases, runner cache and state.json of DIR.
One runner at a time works on a DIR: the others wait up to a minute for its lock
(DIR/.lock), or not at all with --no-wait. After each run only the last N releases
(--keep-releases, default 5, 0 for all) and the current one stay.
--attached (used by the deployer): if whoever reads stdout goes away, end a running
command, run no further task, and record the release as failed.
--channel (used by the deployer): tasks that need the controller (delegate_to: localhost,
run_once) ask it on stdout and read its answers on stdin (after a --payload - payload).
Without it such a task fails, naming the feature.
Exit codes: 0 ok, 2 a task failed, 64 usage, 65 payload missing or corrupt,
66 payload (or file) is not the expected one, 67 payload signature not trusted,
68 nothing to roll back to, 74 DIR/state.json unreadable, 75 another runner holds DIR.";

#[derive(Debug, Default)]
struct Args {
    info: bool,
    rollback: bool,
    cleanup: bool,
    stage: bool,
    attached: bool,
    channel: bool,
    no_wait: bool,
    keep_releases: Option<usize>,
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
            "cleanup" if first => out.cleanup = true,
            "--stage" => out.stage = true,
            "--attached" => out.attached = true,
            "--channel" => out.channel = true,
            "--no-wait" => out.no_wait = true,
            "--keep-releases" => {
                let v = value("--keep-releases")?;
                let s = v.to_string_lossy();
                out.keep_releases = Some(
                    s.parse()
                        .map_err(|_| format!("--keep-releases: not a number of releases: {s}"))?,
                );
            }
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
    // The hidden mode in which a runner is one `async` task's background job.
    if let Some((first, rest)) = args.split_first()
        && first == crate::modules::JOB_FLAG
    {
        return crate::modules::job_main(rest);
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
    if args.cleanup {
        return cleanup(&args);
    }
    if attached(&args) {
        crate::events::watch_deployer(Duration::from_secs(1));
    }
    if let Some(want) = &args.expect_file {
        // --verify: the file that arrived is, byte for byte, the one the deployer sent.
        let mine = locate::own_executable()
            .map_err(|e| e.to_string())
            .and_then(|me| {
                std::fs::File::open(&me)
                    .and_then(Digest::of_reader)
                    .map_err(|e| format!("{}: {e}", me.display()))
            });
        match mine {
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
    // before the first task (a host that ran a release always has it on disk); all of
    // it, to the record and `current`, under the root's lock.
    let mut lock = None;
    let release = match &args.install_root {
        Some(root) => {
            let l = match lock_root(root, &args) {
                Ok(l) => l,
                Err(code) => return code,
            };
            lock = Some(l);
            if let Err(e) = install::read_state(root) {
                say!("rustle-runner: {e}; no task was run");
                return exit::STATE_UNREADABLE;
            }
            match install::install_self(
                root,
                &plan.deployment_id,
                args.payload_file.as_ref().map(|_| bytes.as_slice()),
            ) {
                Ok(r) => Some(r),
                Err(e) => {
                    say!("rustle-runner: cannot install the release: {e}; no task was run");
                    return exit::INTERNAL;
                }
            }
        }
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
            say!("rustle-runner: cannot record the staged release: {e}");
            return exit::INTERNAL;
        }
        prune(release, lock.as_ref(), &args);
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

    // Not locked for the whole run: the thread watching for the deployer writes to it too.
    let mut sink = Tee {
        out: JsonLines::new(std::io::stdout()),
        tasks: Vec::new(),
        attached: attached(&args),
        channel: args
            .channel
            .then(|| std::sync::Arc::new(crate::events::StdioChannel::default())),
    };
    sink.emit(&Event::Start {
        v: crate::events::EVENTS_VERSION,
        host: plan.host.clone(),
        deployment: plan.deployment_id.clone(),
        digest: digest.to_hex(),
        runner_version: env!("CARGO_PKG_VERSION").to_string(),
        check_mode: plan.check_mode || args.opts.check_mode,
    });
    let fetched = release.as_ref().map(|r| r.dir.join("fetched"));
    let summary = Executor::new(&plan, &mut sink, args.opts)
        .fetch_into(fetched)
        .run();
    let r = summary.recap;
    say!(
        "{}: ok={} changed={} unreachable=0 failed={} skipped={} rescued={} ignored={}",
        plan.host,
        r.ok,
        r.changed,
        r.failed,
        r.skipped,
        r.rescued,
        r.ignored
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
            say!("rustle-runner: cannot write report {}: {e}", path.display());
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
            say!("rustle-runner: cannot record the run: {e}");
            return exit::INTERNAL;
        }
        prune(release, lock.as_ref(), &args);
    }
    if crate::events::deployer_gone() {
        say!(
            "rustle-runner: the deployer went away: stopped before the next task; the release is recorded as failed"
        );
    }
    if summary.host_failed {
        exit::TASKS_FAILED
    } else {
        exit::OK
    }
}

/// A payload file's bytes; `-` is standard input, as long as the payload's header says
/// (the deployer sends a cached runner's payload that way, so the host writes no
/// temporary file for it; its answers to requests may follow).
fn read_payload_file(path: &Path) -> std::io::Result<Vec<u8>> {
    if path == Path::new("-") {
        // Exactly the payload, as its header counts it: what follows on stdin is the
        // deployer's answers (`--channel`).
        let mut input = std::io::stdin().lock();
        let mut bytes = vec![0u8; crate::payload::HEADER_LEN];
        std::io::Read::read_exact(&mut input, &mut bytes)?;
        let body_len = crate::payload::parse_header_len(&bytes).map_err(std::io::Error::other)?;
        let whole = crate::payload::HEADER_LEN.saturating_add(body_len);
        bytes.resize(whole, 0);
        std::io::Read::read_exact(
            &mut input,
            bytes
                .get_mut(crate::payload::HEADER_LEN..)
                .unwrap_or_default(),
        )?;
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

/// Whether this run reports to a deployer that may go away (`--attached`, or the
/// variable `rollback` sets for the release runner it starts).
fn attached(args: &Args) -> bool {
    args.attached || std::env::var_os(ATTACHED_ENV).is_some_and(|v| v == "1")
}

/// Creates `root` if needed and takes its lock; the exit code when that fails.
fn lock_root(root: &Path, args: &Args) -> Result<install::Lock, i32> {
    if let Err(e) = install::private_dir(root) {
        say!("rustle-runner: cannot create the state root: {e}; no task was run");
        return Err(exit::INTERNAL);
    }
    let wait = if args.no_wait {
        Duration::ZERO
    } else {
        LOCK_WAIT
    };
    install::Lock::acquire(root, wait, &crate::events::deployer_gone).map_err(|e| {
        say!("rustle-runner: {e}; no task was run");
        match e {
            install::InstallError::Busy { .. } => exit::BUSY,
            _ => exit::INTERNAL,
        }
    })
}

/// Keeps the last `--keep-releases` releases (and `current`, and `release`); a failure
/// to prune is said, not fatal: the run itself is recorded.
fn prune(release: &install::Release, lock: Option<&install::Lock>, args: &Args) {
    // A release run by `rollback` leaves pruning to it.
    if lock.is_some_and(install::Lock::by_parent) {
        return;
    }
    let keep = args.keep_releases.unwrap_or(KEEP_RELEASES);
    if let Err(e) = install::prune(&release.root, keep, &release.id) {
        say!("rustle-runner: cannot remove old releases: {e}");
    }
}

/// One deployment of `state.json`, as `rollback` needs it.
struct Recorded {
    id: String,
    digest: String,
    runner: Option<String>,
}

/// `rollback`: run again the most recent good release that is not the latest one run:
/// the one before it, or after a failed deploy the last good one (still current). Its
/// runner is first checked against the digest recorded when it was installed. It
/// becomes current only if the run succeeds; otherwise `current` stays where it was.
fn rollback(args: &Args) -> i32 {
    let root = args
        .install_root
        .clone()
        .unwrap_or_else(install::default_root);
    if !root.is_dir() {
        say!(
            "rustle-runner: no earlier release to roll back to in {} (current: none)",
            root.display()
        );
        return exit::NOTHING_TO_ROLL_BACK;
    }
    let lock = match lock_root(&root, args) {
        Ok(l) => l,
        Err(code) => return code,
    };
    let state = match install::read_state(&root) {
        Ok(s) => s,
        Err(e) => {
            say!("rustle-runner: {e}; nothing was rolled back");
            return exit::STATE_UNREADABLE;
        }
    };
    let current = install::current_id(&root);
    let list = state
        .get("deployments")
        .and_then(serde_json::Value::as_array)
        .cloned()
        .unwrap_or_default();
    let field = |d: &serde_json::Value, k: &str| {
        d.get(k)
            .and_then(serde_json::Value::as_str)
            .map(str::to_string)
    };
    let status = |d: &serde_json::Value| field(d, "status").unwrap_or_default();
    let latest = list
        .iter()
        .rev()
        .filter(|d| matches!(status(d).as_str(), "ok" | "failed"))
        .find_map(|d| field(d, "id"));
    let previous = list
        .iter()
        .rev()
        .filter(|d| status(d) == "ok")
        .filter_map(|d| {
            Some(Recorded {
                id: field(d, "id")?,
                digest: field(d, "digest")?,
                runner: field(d, "runner"),
            })
        })
        .find(|r| {
            Some(&r.id) != latest.as_ref()
                && install::check_id(&r.id).is_ok()
                && root
                    .join("releases")
                    .join(&r.id)
                    .join("rustle-runner")
                    .exists()
        });
    let Some(target) = previous else {
        say!(
            "rustle-runner: no earlier release to roll back to in {} (current: {})",
            root.display(),
            current.as_deref().unwrap_or("none")
        );
        return exit::NOTHING_TO_ROLL_BACK;
    };
    let dir = root.join("releases").join(&target.id);
    let exe = dir.join("rustle-runner");
    let mut cmd = std::process::Command::new(&exe);
    cmd.arg("--root")
        .arg(&root)
        .arg("--expect")
        .arg(&target.digest);
    // The runner file must still be the one installed (a release recorded before runner
    // digests were kept is run without this check).
    if let Some(runner) = &target.runner {
        cmd.arg("--expect-file").arg(runner);
    }
    let payload = dir.join("payload.bin");
    if payload.exists() {
        cmd.arg("--payload").arg(payload);
    }
    for k in &args.trusted_keys {
        cmd.arg("--trusted-key").arg(k);
    }
    let (name, value) = lock.env_for_child(&root);
    cmd.env(name, value);
    if attached(args) {
        cmd.env(ATTACHED_ENV, "1");
    }
    let code = match cmd.status() {
        Ok(s) => s.code().unwrap_or(exit::INTERNAL),
        Err(e) => {
            say!("rustle-runner: cannot run {}: {e}", exe.display());
            exit::INTERNAL
        }
    };
    let release = install::Release {
        root: root.clone(),
        dir,
        id: target.id.clone(),
        runner_digest: target.runner.unwrap_or_default(),
    };
    prune(&release, None, args);
    if code != exit::OK {
        let why = match code {
            exit::PAYLOAD_UNEXPECTED => "its runner (or payload) is not the file installed",
            exit::TASKS_FAILED => "a task failed",
            _ => "it did not run",
        };
        say!(
            "rustle-runner: rolling back to {} did not succeed ({why}, exit code {code}); current is still {}",
            target.id,
            install::current_id(&root).as_deref().unwrap_or("none")
        );
    }
    drop(lock);
    code
}

/// `cleanup`: remove what runners keep under the root (releases, runner cache,
/// `state.json`, `current`), under the root's lock, so no run is cut short by it.
fn cleanup(args: &Args) -> i32 {
    let root = args
        .install_root
        .clone()
        .unwrap_or_else(install::default_root);
    if !root.is_dir() {
        let _ = writeln!(std::io::stdout(), "nothing to clean in {}", root.display());
        return exit::OK;
    }
    let lock = match lock_root(&root, args) {
        Ok(l) => l,
        Err(code) => return code,
    };
    match install::cleanup(&root, lock) {
        Ok(_) => {
            let _ = writeln!(std::io::stdout(), "cleaned {}", root.display());
            exit::OK
        }
        Err(e) => {
            say!("rustle-runner: cannot clean {}: {e}", root.display());
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
    /// Stop when the reader of the events goes away (`--attached`).
    attached: bool,
    /// Requests go to the deployer, answers come on stdin (`--channel`).
    channel: Option<std::sync::Arc<crate::events::StdioChannel>>,
}

impl<W: std::io::Write> Sink for Tee<W> {
    fn emit(&mut self, event: &Event) {
        self.out.emit(event);
        if self.attached && self.out.is_broken() {
            crate::events::mark_deployer_gone();
        }
        if matches!(event, Event::Task { .. } | Event::Play { .. }) {
            self.tasks.push(event.clone());
        }
    }

    fn stop_requested(&self) -> bool {
        self.attached && crate::events::deployer_gone()
    }

    fn request(&mut self, request: Request) -> Result<Answer, String> {
        match &self.channel {
            Some(channel) => channel.request(request),
            None => Err(format!(
                "needs the deployer (the controller channel), and this runner was started without one (--channel): {}",
                crate::events::no_channel_reason(request.kind)
            )),
        }
    }

    fn channel(&self) -> Option<std::sync::Arc<dyn Channel>> {
        self.channel
            .clone()
            .map(|c| c as std::sync::Arc<dyn Channel>)
    }
}
