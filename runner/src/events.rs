//! The runner's event stream: one JSON object per line on stdout, versioned, so the
//! deployer (or a person with `jq`) can follow a run as it happens.
//!
//! Version 1 has four event types, all carrying `"v": 1` and `"type"`:
//! `start` (host, deployment, digest, runner version, check mode), `play` (name),
//! `task` (one finished task or handler, with its status and registered result) and
//! `recap` (the per-host counts). `docs/events.md` documents each field.
//!
//! A runner started by the deployer (`--attached`) also writes an empty line every
//! second ([`watch_deployer`]): the only way a process can tell, with std alone, that
//! whoever read its stdout has gone (a write fails with `EPIPE`). sshd does not signal
//! a session's processes when the connection drops, so without it a runner the
//! deployer gave up on would run its whole plan on its own.
#![deny(missing_docs)]

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

/// The event format version.
pub const EVENTS_VERSION: u32 = 1;

/// A task's outcome as Ansible names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Ran, changed nothing.
    Ok,
    /// Ran and changed something (or would have, in check mode).
    Changed,
    /// Failed (see `ignored`).
    Failed,
    /// Did not run (condition false, check mode, ...).
    Skipped,
    /// The host could not be reached (set by the deployer, never by the runner).
    Unreachable,
}

impl Status {
    /// The lowercase name.
    pub fn as_str(&self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Changed => "changed",
            Status::Failed => "failed",
            Status::Skipped => "skipped",
            Status::Unreachable => "unreachable",
        }
    }
}

/// Per-host counts, as in Ansible's recap (`ok` includes changed tasks).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recap {
    /// Tasks that succeeded, changed or not, and ignored failures (as Ansible counts them).
    pub ok: u32,
    /// Tasks that changed something.
    pub changed: u32,
    /// Tasks that failed and stopped the host.
    pub failed: u32,
    /// Tasks skipped.
    pub skipped: u32,
    /// 1 when the host could not be reached.
    pub unreachable: u32,
    /// Blocks whose failure a rescue section handled.
    pub rescued: u32,
    /// Failures ignored by `ignore_errors`.
    pub ignored: u32,
}

/// One event of the stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Event {
    /// The runner verified its payload and is about to run it.
    Start {
        /// Format version.
        v: u32,
        /// Inventory name.
        host: String,
        /// Deployment id.
        deployment: String,
        /// Payload digest.
        digest: String,
        /// Runner version.
        runner_version: String,
        /// Check mode.
        check_mode: bool,
    },
    /// A play begins.
    Play {
        /// Format version.
        v: u32,
        /// Play name.
        name: String,
    },
    /// A task or handler finished.
    Task {
        /// Format version.
        v: u32,
        /// The play's name.
        play: String,
        /// The task's name.
        name: String,
        /// The module.
        module: String,
        /// The outcome.
        status: Status,
        /// A failure that `ignore_errors` let pass.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        ignored: bool,
        /// True for handlers.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        handler: bool,
        /// Wall time in milliseconds.
        duration_ms: f64,
        /// The registered result (rc, stdout, msg, results for loops, ...).
        result: Value,
    },
    /// The release was verified and installed but not run (`--stage`, blue-green).
    Staged {
        /// Format version.
        v: u32,
        /// Inventory name.
        host: String,
        /// Deployment id.
        deployment: String,
        /// Payload digest.
        digest: String,
    },
    /// The run is over.
    Recap {
        /// Format version.
        v: u32,
        /// Inventory name.
        host: String,
        /// The counts.
        recap: Recap,
        /// Wall time of the whole run in milliseconds.
        duration_ms: f64,
    },
}

/// Where events go.
pub trait Sink {
    /// Records one event.
    fn emit(&mut self, event: &Event);

    /// Whether the run should stop before its next task: whoever asked for it (the
    /// deployer) is gone. The executor asks before every task.
    fn stop_requested(&self) -> bool {
        false
    }
}

/// Set once the deployer reading this runner's stdout has gone away.
static DEPLOYER_GONE: AtomicBool = AtomicBool::new(false);

/// True once the deployer that started this runner (`--attached`) has gone away: its
/// end of stdout is closed. The run then stops before its next task, a command
/// running meanwhile is ended, and the release is recorded as failed.
pub fn deployer_gone() -> bool {
    DEPLOYER_GONE.load(Ordering::Relaxed)
}

/// Records that the deployer has gone away (a write to stdout failed).
pub fn mark_deployer_gone() {
    DEPLOYER_GONE.store(true, Ordering::Relaxed);
}

/// Starts a thread that writes an empty line to stdout every `every`, and marks the
/// deployer gone ([`deployer_gone`]) when that fails. Readers of the stream skip empty
/// lines (`docs/events.md`).
pub fn watch_deployer(every: std::time::Duration) {
    let spawned = std::thread::Builder::new()
        .name("deployer-watch".into())
        .spawn(move || {
            loop {
                std::thread::sleep(every);
                let mut out = std::io::stdout().lock();
                if out.write_all(b"\n").and_then(|()| out.flush()).is_err() {
                    mark_deployer_gone();
                    return;
                }
            }
        });
    if spawned.is_err() {
        // Without the thread the run still works; it only notices a lost deployer at
        // its next event.
        let _ = writeln!(
            std::io::stderr(),
            "rustle-runner: cannot start the thread that watches the deployer"
        );
    }
}

/// Writes each event as one JSON line and flushes it, so the deployer sees progress live.
pub struct JsonLines<W: Write> {
    out: W,
    broken: bool,
}

impl<W: Write> JsonLines<W> {
    /// Wraps a writer.
    pub fn new(out: W) -> Self {
        JsonLines { out, broken: false }
    }

    /// Whether a write has failed (the reader went away).
    pub fn is_broken(&self) -> bool {
        self.broken
    }
}

impl<W: Write> Sink for JsonLines<W> {
    fn emit(&mut self, event: &Event) {
        // A closed stdout must not stop a run half way: a runner run by hand keeps going
        // and its report file still records everything. (One started by the deployer
        // stops at the next task instead: see `watch_deployer`.)
        if self.broken {
            return;
        }
        let line = match serde_json::to_string(event) {
            Ok(l) => l,
            Err(_) => return,
        };
        if writeln!(self.out, "{line}")
            .and_then(|_| self.out.flush())
            .is_err()
        {
            self.broken = true;
        }
    }
}

/// Keeps events in memory (tests, and the report).
#[derive(Debug, Default)]
pub struct Collect(pub Vec<Event>);

impl Sink for Collect {
    fn emit(&mut self, event: &Event) {
        self.0.push(event.clone());
    }
}
