//! The runner's event stream: one JSON object per line on stdout, versioned, so the
//! deployer (or a person with `jq`) can follow a run as it happens.
//!
//! Version 1 has four event types, all carrying `"v": 1` and `"type"`:
//! `start` (host, deployment, digest, runner version, check mode), `play` (name),
//! `task` (one finished task or handler, with its status and registered result) and
//! `recap` (the per-host counts). `docs/events.md` documents each field.
#![deny(missing_docs)]

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::io::Write;

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
}

impl<W: Write> Sink for JsonLines<W> {
    fn emit(&mut self, event: &Event) {
        // A closed stdout (the deployer went away) must not stop the run half way: the
        // host keeps going and the report file still records everything.
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
