//! The runner's event stream: one JSON object per line on stdout, versioned, so the
//! deployer (or a person with `jq`) can follow a run as it happens.
//!
//! Version 1's events all carry `"v": 1` and `"type"`: `start` (host, deployment,
//! digest, runner version, check mode), `play` (name), `task` (one finished task or
//! handler, with its status and registered result), `staged`, `request` and `vars` (the
//! controller channel) and `recap` (the per-host counts). `docs/events.md` documents
//! each field.
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
    /// 1 when the host (or a host a task was delegated to) could not be reached.
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
        /// The role the task belongs to, which Ansible shows before its name (`role :
        /// name`); absent outside roles.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        role: Option<String>,
        /// Wall time in milliseconds.
        duration_ms: f64,
        /// The registered result (rc, stdout, msg, results for loops, ...).
        result: Value,
    },
    /// A `meta` task of the plan was reached (not one of the flushes Ansible makes
    /// implicitly): what Ansible's strategy says of it (`noop`, `triggered running handlers
    /// for web1`, or why its condition skipped it, a skipped [`Event::Task`] then
    /// following). Meta tasks count in no recap; the deployer prints the task's banner,
    /// and from `-vv` on `META: msg`, as ansible-playbook does.
    Meta {
        /// Format version.
        v: u32,
        /// The task's name.
        name: String,
        /// True for handlers.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        handler: bool,
        /// The role the task belongs to; absent outside roles.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        role: Option<String>,
        /// What the action did.
        msg: String,
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
    /// The runner asks the deployer for something only the controller can do, and
    /// waits for the [`Answer`] on its stdin (`--channel`; see `docs/events.md`).
    Request(Request),
    /// What the host's runner now knows of itself beyond its inventory (facts,
    /// registered and `set_fact` values), for the other hosts' `hostvars`: written after
    /// each task of a plan whose deploy reads `hostvars` (`Play::number`), when the
    /// runner has a channel; `set` and `unset` say what changed since the last one.
    Vars {
        /// Format version.
        v: u32,
        /// The index of the play (in the host's plan) the host is in.
        play: usize,
        /// Where the host stands in that play: the path of the task it is starting
        /// ([`crate::exec`]'s position), everything before it done.
        at: Vec<u32>,
        /// Variables given a new value.
        #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
        set: serde_json::Map<String, Value>,
        /// Variables removed (`meta: clear_facts`).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        unset: Vec<String>,
    },
    /// Something Ansible would warn about that belongs to no task's result (a handler
    /// whose name cannot be templated, a notification of no handler when Ansible's
    /// `ERROR_ON_MISSING_HANDLER` is off): the deployer prints it as `[WARNING]: msg`.
    Warning {
        /// Format version.
        v: u32,
        /// The warning's text.
        msg: String,
    },
    /// An error with which Ansible ends the whole playbook run (a changed task notifies
    /// a handler that does not exist): no further task, handler or play runs on this
    /// host, which counts as failed; the deployer prints it as `ERROR! msg`.
    Error {
        /// Format version.
        v: u32,
        /// The error's text.
        msg: String,
    },
    /// The host is done with a playbook of a run of several (`ansible-playbook a.yml
    /// b.yml`; the plays' `playbook` index), having run its plays (or stopped in one):
    /// its counts so far, for the recap Ansible prints after each playbook.
    PlaybookEnd {
        /// Format version.
        v: u32,
        /// Inventory name.
        host: String,
        /// The playbook's index in the run.
        playbook: usize,
        /// The counts from the start of the run.
        recap: Recap,
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

/// The longest answer line a runner reads from the deployer, and the longest request
/// line a deployer takes from a runner (its line limit, `MAX_LINE_BYTES` there): a
/// task's result, with `stdout` and `stdout_lines`, fits.
pub const MAX_CHANNEL_LINE: usize = 16 << 20;

/// What a runner asks the deployer for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RequestKind {
    /// Run a delegated task's module on the controller (`delegate_to: localhost`,
    /// `local_action`, `connection: local`) with the variables sent, and answer with
    /// its result.
    Delegate,
    /// A `run_once` task is reached: answer `run` (this host runs it) or with the
    /// result of the host that ran it.
    RunOnce,
    /// The result of a `run_once` task this host was told to run, for the others.
    RunOnceDone,
    /// The host has run a task of an `any_errors_fatal` play (`failed`: it failed
    /// there): answered once every host of the play has, with `stop` when one failed.
    Barrier,
    /// The host has left such a play (finished, ended or failed): nobody waits for it.
    PlayDone,
    /// A task with `throttle: limit` is reached: answered when fewer than `limit` hosts
    /// are running it.
    Throttle,
    /// The host has finished a `throttle` task it was let run.
    ThrottleDone,
    /// What another host (`host`) knows of itself, as Ansible's `hostvars` would show
    /// it to this host's task (the `done`-th of play `play`): answered once that host
    /// has got as far (see `docs/playbooks.md`), with `vars`.
    Hostvars,
    /// Run a controller lookup (`pipe`, `env`, `lines`, `password`) whose arguments only
    /// the host knows, for a task that uses it, and answer with its result.
    Lookup,
    /// A `fetch` task's file for the controller: the first request names it (`fetch`
    /// without `data`), and is answered with the task's `result` when the controller's
    /// copy is that file already; the next ones carry its content in order, the last
    /// answered with the `result`.
    Fetch,
}

/// A request on the event stream (`"type": "request"`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Request {
    /// Format version.
    pub v: u32,
    /// The request's number, from 1; its answer carries the same.
    pub id: u64,
    /// What is asked.
    pub kind: RequestKind,
    /// The task, by [`crate::plan::Task::channel_id`].
    pub task: String,
    /// The index of the play (in the host's plan) the task runs in.
    pub play: usize,
    /// `delegate`: the task's variables.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vars: Option<Value>,
    /// `delegate`: the controller paths of the roles the task runs in (outermost
    /// first) and of its task file, where `src` files are searched.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
    /// `delegate`: the task's file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// `delegate`: run the module in check mode.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub check_mode: bool,
    /// `run_once_done`: the task's result.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    /// `barrier`: the task failed on this host (and was not ignored).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub failed: bool,
    /// `throttle`: how many hosts may run the task at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u64>,
    /// `delegate`: the inventory host the task's `delegate_to` rendered to, when it is
    /// not the controller; the deployer runs the module there over SSH.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delegate_to: Option<String>,
    /// `delegate` to another host: the user the task's `become` keywords ask for there
    /// (absent: no become); that host's own `ansible_become*` variables win over it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub become_user: Option<String>,
    /// `hostvars`: the other host asked about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// `hostvars`: where this host stands in the play (the path of its task).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<Vec<u32>>,
    /// `lookup`: the call (its lookup, terms and options; no result).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lookup: Option<Box<crate::plan::ControllerLookup>>,
    /// `fetch`: the file (its source, the task's `dest` and `flat`, size, SHA-1) and a
    /// piece of its content.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fetch: Option<Box<crate::modules::fetch::Part>>,
}

impl Request {
    /// A request of `kind` about the task whose channel id is `task`, in play `play`;
    /// its number is given by whoever sends it ([`Channel::request`]).
    pub fn new(kind: RequestKind, task: String, play: usize) -> Request {
        Request {
            v: EVENTS_VERSION,
            id: 0,
            kind,
            task,
            play,
            vars: None,
            roles: Vec::new(),
            file: None,
            check_mode: false,
            result: None,
            failed: false,
            limit: None,
            delegate_to: None,
            become_user: None,
            host: None,
            at: None,
            lookup: None,
            fetch: None,
        }
    }
}

/// The deployer's answer to a [`Request`]: one JSON line on the runner's stdin.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Answer {
    /// Format version.
    pub v: u32,
    /// The request's number.
    pub id: u64,
    /// `run_once`: this host runs the task (and sends `run_once_done` after).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub run: bool,
    /// `delegate`: the module's result; `run_once`: the result of the host that ran it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    /// `barrier`: another host of the play failed the task: this host fails too.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub stop: bool,
    /// `run_once`: the host that ran the task.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// `hostvars`: the other host's variables beyond its inventory ones.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vars: Option<Value>,
    /// Why the request is refused or could not be carried out: the task fails with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// `lookup`: the call with the plugin's result (`values`) or its failure (`error`,
    /// `error_class`), which the task meets as Ansible's would.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lookup: Option<crate::plan::ControllerLookup>,
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

    /// Sends a request to the deployer and waits for its answer. Without a channel (a
    /// runner run by hand, or started without `--channel`), `Err` says so.
    fn request(&mut self, request: Request) -> Result<Answer, String> {
        match self.channel() {
            Some(channel) => channel.request(request),
            None => Err(format!(
                "needs the deployer (the controller channel), and this run has none: {}",
                no_channel_reason(request.kind)
            )),
        }
    }

    /// The controller channel, for what asks the deployer from inside a template
    /// (another host's `hostvars`); `None` without one.
    fn channel(&self) -> Option<std::sync::Arc<dyn Channel>> {
        None
    }
}

/// The way to the deployer, shareable with templates: one request at a time (the
/// executor renders and asks on one thread), each numbered by the channel.
pub trait Channel: Send + Sync + std::fmt::Debug {
    /// Numbers `request`, sends it and waits for its answer; an answer that refuses is
    /// returned as it is (its `error` set).
    fn request(&self, request: Request) -> Result<Answer, String>;
}

/// A runner's channel over its stdout (requests, with the events) and stdin (answers).
#[derive(Debug, Default)]
pub struct StdioChannel {
    last_id: std::sync::atomic::AtomicU64,
}

impl Channel for StdioChannel {
    fn request(&self, mut request: Request) -> Result<Answer, String> {
        let id = self.last_id.fetch_add(1, Ordering::Relaxed) + 1;
        request.id = id;
        let line = serde_json::to_string(&Event::Request(request))
            .map_err(|e| format!("cannot write the request: {e}"))?;
        let mut out = std::io::stdout().lock();
        if writeln!(out, "{line}").and_then(|()| out.flush()).is_err() {
            drop(out);
            mark_deployer_gone();
            return Err("the deployer went away before it was asked".into());
        }
        drop(out);
        let answer = read_answer(&mut std::io::stdin().lock(), id);
        if answer.is_err() {
            // A deployer that cannot answer any more cannot follow the run either.
            mark_deployer_gone();
        }
        answer
    }
}

/// Why a task that needs the channel cannot run without one.
pub fn no_channel_reason(kind: RequestKind) -> &'static str {
    match kind {
        RequestKind::Delegate => {
            "a delegated task (delegate_to, local_action, connection: local) runs on the controller"
        }
        RequestKind::RunOnce | RequestKind::RunOnceDone => {
            "a run_once task runs on one host and hands its result to the others"
        }
        RequestKind::Barrier | RequestKind::PlayDone => {
            "any_errors_fatal fails the other hosts of the play, which the deployer tells them"
        }
        RequestKind::Throttle | RequestKind::ThrottleDone => {
            "throttle limits how many hosts run a task at once, which the deployer counts"
        }
        RequestKind::Hostvars => {
            "other hosts' facts and registered or set_fact values (hostvars) come from the deployer"
        }
        RequestKind::Lookup => {
            "a controller lookup (pipe, env, lines, password) whose arguments only the host knows runs on the controller"
        }
        RequestKind::Fetch => "fetch copies a file of the host to the controller",
    }
}

/// Reads one answer line from `input` (at most [`MAX_CHANNEL_LINE`] bytes) and checks
/// it answers request `id`.
pub fn read_answer(input: &mut dyn std::io::BufRead, id: u64) -> Result<Answer, String> {
    let mut line = Vec::new();
    let mut limited = std::io::Read::take(&mut *input, MAX_CHANNEL_LINE as u64 + 1);
    let n = std::io::BufRead::read_until(&mut limited, b'\n', &mut line)
        .map_err(|e| format!("cannot read the deployer's answer: {e}"))?;
    if n == 0 {
        return Err("the deployer went away before it answered".into());
    }
    if line.last() != Some(&b'\n') {
        return Err(if line.len() > MAX_CHANNEL_LINE {
            format!(
                "the deployer's answer is longer than {} MiB",
                MAX_CHANNEL_LINE >> 20
            )
        } else {
            "the deployer went away in the middle of its answer".into()
        });
    }
    let answer: Answer = serde_json::from_slice(&line)
        .map_err(|e| format!("the deployer's answer is not one this runner reads: {e}"))?;
    if answer.v != EVENTS_VERSION || answer.id != id {
        return Err(format!(
            "the deployer answered request {} (version {}) when request {id} (version {EVENTS_VERSION}) was asked",
            answer.id, answer.v
        ));
    }
    Ok(answer)
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
