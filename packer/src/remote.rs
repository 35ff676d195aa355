//! Carrying a deployment out on hosts, local or over SSH, with a fleet strategy.
//!
//! Every host is reached through a [`Shell`]: an SSH connection (one TCP connection,
//! one channel per step) or, for `ansible_connection=local`, `sh` on this machine. Both
//! run the same scripts ([`ssh::script`]), so a local host and a remote one behave
//! the same. Hosts are independent: a host that is down, slow, or refuses its runner is
//! reported and the others go on, unless the strategy says to stop.

use crate::channel::{Batch, HostChannel};
use crate::deploy::{self, HostResult, HostStatus, Job};
use crate::inventory::Host;
use crate::runners::Runner;
use crate::ssh::{self, Reply, Script, Target};
use crate::target::Triple;
use rustle_runner::events::Event;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Called with (host, event) for every event a host's runner sends, as it arrives.
pub type OnEvent = Arc<dyn Fn(&str, &Event) + Send + Sync>;

/// How hosts are rolled through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// Every host at once (up to `--parallel`).
    Parallel,
    /// Batches of `batch` hosts; stop after a batch with more than `max_failures` failed hosts.
    Rolling {
        /// Hosts per batch.
        batch: usize,
        /// Failed hosts tolerated per batch.
        max_failures: usize,
    },
    /// `percent`% of hosts first (at least one); the rest only if all of those succeeded.
    Canary {
        /// Share of hosts in the canary batch.
        percent: u32,
    },
    /// Stage the release on every host; switch every host to it only if all staged.
    BlueGreen,
    /// Every host at once (up to `--parallel`), with no runner: each task is run from
    /// here over SSH ([`crate::sshexec`]), the baseline binary mode is measured against.
    Ssh,
}

/// How to reach and treat hosts.
#[derive(Debug, Clone)]
pub struct RemoteOptions {
    /// known_hosts file for host key checks (and where new keys are recorded).
    pub known_hosts: PathBuf,
    /// The system-wide known_hosts files, read as well (OpenSSH's GlobalKnownHostsFile).
    pub global_known_hosts: Vec<PathBuf>,
    /// Trust and record keys of hosts not yet known.
    pub accept_new_host_keys: bool,
    /// Limit for establishing a connection.
    pub connect_timeout: Duration,
    /// Limit for a whole host (connect, upload, run).
    pub timeout: Duration,
    /// Hosts worked on at once.
    pub parallel: usize,
    /// Have the runner check the blake3 of the file that arrived (`--verify`).
    pub verify: bool,
    /// The deployer's public key line.
    pub key_line: String,
    /// The local state root (for local hosts).
    pub local_root: PathBuf,
    /// Several local hosts without a `rustle_root` of their own take part: each gets
    /// `<local_root>/hosts/<name>`, so their runners neither wait for each other's lock
    /// nor share a `current` release (set by [`deploy_all`] and [`run_op`]).
    pub local_apart: bool,
    /// The deployer's cache (compressed runners are kept in its `gz/`).
    pub cache_dir: PathBuf,
    /// Releases each host keeps (`--keep-releases`); its runner cache keeps as many runners.
    pub keep_releases: usize,
    /// Fail at once on a host where another deploy holds the state root (`--no-wait`),
    /// instead of waiting for it up to the runner's limit.
    pub no_wait: bool,
}

/// Figures for one host, for the report.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct Timings {
    /// Milliseconds to connect and authenticate (0 for local hosts).
    pub connect_ms: f64,
    /// Milliseconds from the first byte sent to the runner's exit.
    pub upload_and_run_ms: f64,
    /// Of that, milliseconds until the runner announced its verified payload (upload,
    /// unpacking and checks); the rest is the run itself.
    pub upload_ms: f64,
    /// Milliseconds from the runner's start event to its exit.
    pub run_ms: f64,
    /// Bytes sent to the host (the packed runner).
    pub bytes_sent: u64,
    /// SSH channels (or local shells) opened.
    pub channels: u32,
}

/// The SSH target (and jump hosts) for an inventory host: `ansible_host`/`ansible_port`/
/// `ansible_user`/`ansible_ssh_private_key_file`, then `~/.ssh/config`, then the name,
/// port 22 and the local user.
pub fn target(host: &Host, opts: &RemoteOptions) -> (Target, Vec<Target>) {
    let mut t = Target {
        name: host.name.clone(),
        address: host.address().to_string(),
        port: host.port().unwrap_or(22),
        user: host
            .user()
            .map(str::to_string)
            .unwrap_or_else(crate::sshconfig::local_user),
        identity_files: host
            .private_key_file()
            .map(|p| vec![expand_home(p)])
            .unwrap_or_default(),
        known_hosts: opts.known_hosts.clone(),
        global_known_hosts: opts.global_known_hosts.clone(),
        accept_new: opts.accept_new_host_keys,
        connect_timeout: opts.connect_timeout,
    };
    // ~/.ssh/config fills in what the inventory leaves open (HostName, Port, User,
    // IdentityFile, ProxyJump), as Ansible's OpenSSH connection would.
    let jump = crate::sshconfig::SshConfig::shared().apply(
        &mut t,
        crate::sshconfig::Explicit {
            port: host.port().is_some(),
            user: host.user().is_some(),
            identity: host.private_key_file().is_some(),
            known_hosts: true,
            connect_timeout: true,
        },
    );
    (t, jump)
}

fn expand_home(p: &str) -> PathBuf {
    match (p.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) => PathBuf::from(home).join(rest),
        _ => PathBuf::from(p),
    }
}

/// A way to run scripts on a host.
enum Shell {
    Ssh(ssh::Connection, String),
    Local,
}

impl Shell {
    async fn open(host: &Host, opts: &RemoteOptions) -> Result<(Shell, f64), String> {
        if host.is_local() {
            return Ok((Shell::Local, 0.0));
        }
        let (t, jump) = target(host, opts);
        let started = Instant::now();
        let user = t.user.clone();
        match ssh::connect_via(&t, &jump).await {
            Ok(c) => Ok((
                Shell::Ssh(c, user),
                started.elapsed().as_secs_f64() * 1000.0,
            )),
            Err(e) => Err(e.to_string()),
        }
    }

    /// True when the SSH connection has gone (a command that ended with no exit status
    /// then did not end on the host's terms: the host or the network went away).
    fn lost(&self) -> bool {
        match self {
            Shell::Ssh(c, _) => c.is_closed(),
            Shell::Local => false,
        }
    }

    /// True when the login user is root.
    fn is_root(&self) -> bool {
        match self {
            Shell::Ssh(_, user) => user == "root",
            Shell::Local => rustle_runner::facts::current_uid() == Some(0),
        }
    }

    /// Runs `script` with `stdin`; with `more` (the controller channel), stdin stays
    /// open after it for what `more` brings.
    async fn exec(
        &self,
        script: &str,
        stdin: &[u8],
        more: Option<Answers>,
        on_line: &mut (dyn FnMut(ssh::Line<'_>) + Send),
    ) -> Result<(Option<i32>, String), String> {
        match self {
            Shell::Ssh(c, _) => match more {
                None => c.exec(script, stdin, on_line).await,
                Some(more) => c.exec_channel(script, stdin, more, on_line).await,
            }
            .map(|(code, err)| (code.and_then(|c| i32::try_from(c).ok()), err))
            .map_err(|e| e.to_string()),
            Shell::Local => local_exec(script, stdin, more, on_line).await,
        }
    }

    /// Runs a [`Script::DeployCached`] script: its first line says whether the host has
    /// the runner cached; if not, the runner goes first (see [`RunnerUpload`]), then the
    /// payload, on the runner's stdin. Returns the exit code, stderr and the bytes sent.
    async fn exec_cached(
        &self,
        script: &str,
        payload: &[u8],
        runner: &[u8],
        cache: &Path,
        more: Option<Answers>,
        on_line: &mut (dyn FnMut(ssh::Line<'_>) + Send),
    ) -> Result<(Option<i32>, String, u64), String> {
        let mut upload = RunnerUpload::new(payload);
        let mut answer = |line: &str| upload.reply(line, runner, cache);
        match self {
            Shell::Ssh(c, _) => c
                .exec_conversation(script, &mut answer, more, on_line)
                .await
                .map(|(code, err, sent)| (code.and_then(|c| i32::try_from(c).ok()), err, sent))
                .map_err(|e| e.to_string()),
            // Local hosts get the packed runner directly (see `deploy_host`): there is no
            // network to save.
            Shell::Local => Err("the runner cache is only used over SSH".to_string()),
        }
    }

    async fn close(self) {
        if let Shell::Ssh(c, _) = self {
            c.close().await;
        }
    }
}

/// Ends a local host's whole process group (the script's `sh`, the runner and what its
/// tasks started) when dropped before [`GroupGuard::done`]: the deploy of that host was
/// given up (its timeout), and killing `sh` alone would leave the runner going.
struct GroupGuard(Option<u32>);

impl GroupGuard {
    fn done(mut self) {
        self.0 = None;
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if let Some(pid) = self.0.take().and_then(|p| i32::try_from(p).ok()) {
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
    }
}

/// What the controller channel sends a runner after its payload: its answers.
type Answers = tokio::sync::mpsc::UnboundedReceiver<Vec<u8>>;

async fn local_exec(
    script: &str,
    stdin: &[u8],
    more: Option<Answers>,
    on_line: &mut (dyn FnMut(ssh::Line<'_>) + Send),
) -> Result<(Option<i32>, String), String> {
    let mut child = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(script)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        // Its own process group, so that giving up on the host ends all of it.
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot start sh: {e}"))?;
    let group = GroupGuard(child.id());
    let mut input = child.stdin.take().ok_or("no stdin")?;
    let data = stdin.to_vec();
    let channel = more.is_some();
    let writer = tokio::spawn(async move {
        if input.write_all(&data).await.is_err() {
            return;
        }
        if let Some(mut more) = more {
            while let Some(bytes) = more.recv().await {
                if input.write_all(&bytes).await.is_err() {
                    return;
                }
            }
        }
        let _ = input.shutdown().await;
    });
    let mut err = child.stderr.take().ok_or("no stderr")?;
    // Stderr's end is kept, as over SSH (the runner's recap and last words are there).
    let reader = tokio::spawn(async move {
        let mut tail = ssh::StderrTail::default();
        let mut chunk = vec![0u8; 64 << 10];
        while let Ok(n) = err.read(&mut chunk).await {
            if n == 0 {
                break;
            }
            tail.push(chunk.get(..n).unwrap_or_default());
        }
        tail.text()
    });
    // The same bounds as over SSH: at most a line is held, a longer one cut.
    let mut out = child.stdout.take().ok_or("no stdout")?;
    let mut lines = ssh::LineSplitter::default();
    let mut chunk = vec![0u8; 64 << 10];
    loop {
        match out.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => lines.push(chunk.get(..n).unwrap_or_default(), &mut |l| on_line(l)),
        }
    }
    lines.finish(&mut |l| on_line(l));
    let status = child.wait().await.map_err(|e| e.to_string())?;
    group.done();
    if channel {
        // Answers still on their way have nobody to read them.
        writer.abort();
    }
    let _ = writer.await;
    let stderr = reader.await.unwrap_or_default();
    Ok((status.code(), stderr))
}

/// The deployer's side of a [`Script::DeployCached`] conversation: which frame of the
/// runner goes next, how many the host has taken in, how many may be unacknowledged
/// (the host's `window`: 2 where `head -c` reads exactly, 1 where it may read ahead and
/// would swallow the next frame), and the payload that follows the last.
struct RunnerUpload<'a> {
    payload: &'a [u8],
    body: Vec<u8>,
    window: usize,
    next: usize,
    acked: usize,
}

impl<'a> RunnerUpload<'a> {
    fn new(payload: &'a [u8]) -> RunnerUpload<'a> {
        RunnerUpload {
            payload,
            body: Vec::new(),
            window: 1,
            next: 0,
            acked: 0,
        }
    }

    /// What to send for a line of the script's output.
    fn reply(&mut self, line: &str, runner: &[u8], cache: &Path) -> Reply {
        let window = |rest: &str| {
            rest.trim()
                .strip_prefix("window=")
                .and_then(|w| w.parse::<usize>().ok())
                .unwrap_or(1)
                .clamp(1, ssh::RUNNER_FRAMES_IN_FLIGHT)
        };
        if line == "rustle:have-runner" {
            Reply::Last(self.payload.to_vec())
        } else if let Some(rest) = line.strip_prefix("rustle:need-runner-gz") {
            // Less than half the bytes; compressing takes a while the first time, so the
            // runtime's other tasks move on meanwhile.
            let gz = tokio::task::block_in_place(|| gzip(runner, cache));
            self.start(gz.to_vec(), window(rest))
        } else if let Some(rest) = line.strip_prefix("rustle:need-runner") {
            self.start(runner.to_vec(), window(rest))
        } else if line == "rustle:ack" {
            self.acked()
        } else {
            // Not the script's (a shell profile's chatter, say): shown, not answered.
            Reply::Pass
        }
    }

    fn frames(&self) -> usize {
        self.body.len().div_ceil(ssh::RUNNER_FRAME)
    }

    /// Frame `i`: its size line and bytes, and after the last one the `0` line when
    /// the host reads exactly (else it follows the last ack).
    fn frame(&self, i: usize) -> Vec<u8> {
        let start = i * ssh::RUNNER_FRAME;
        let bytes = self
            .body
            .get(start..(start + ssh::RUNNER_FRAME).min(self.body.len()))
            .unwrap_or_default();
        let mut v = format!("{}\n", bytes.len()).into_bytes();
        v.extend_from_slice(bytes);
        if i + 1 == self.frames() && self.window > 1 {
            v.extend_from_slice(b"0\n");
        }
        v
    }

    /// The first frames of `body` (the runner, maybe compressed).
    fn start(&mut self, body: Vec<u8>, window: usize) -> Reply {
        self.body = body;
        self.window = window;
        if self.body.is_empty() {
            // Nothing to send (compressing failed): the host's size check says so.
            return Reply::Last([&b"0\n"[..], self.payload].concat());
        }
        let mut v = Vec::new();
        while self.next < self.frames().min(self.window) {
            v.extend(self.frame(self.next));
            self.next += 1;
        }
        Reply::Send(v)
    }

    /// The next frame, if any; once the host has every frame, the payload, and stdin
    /// closes.
    fn acked(&mut self) -> Reply {
        self.acked += 1;
        if self.acked >= self.frames() {
            let end: &[u8] = if self.window > 1 { b"" } else { b"0\n" };
            return Reply::Last([end, self.payload].concat());
        }
        if self.next < self.frames() {
            self.next += 1;
            return Reply::Send(self.frame(self.next - 1));
        }
        Reply::Send(Vec::new())
    }
}

/// A runner gzip-compressed, as hosts with gzip receive it, made once per process
/// (every host of a deploy gets the same bytes) through [`gzip_on_disk`].
fn gzip(runner: &[u8], cache: &Path) -> Arc<Vec<u8>> {
    static MEMORY: std::sync::Mutex<Vec<(rustle_runner::payload::Digest, Arc<Vec<u8>>)>> =
        std::sync::Mutex::new(Vec::new());
    let key = rustle_runner::payload::Digest::of(runner);
    // Held while compressing: the other hosts wanting it wait, then find it made.
    let mut memory = MEMORY
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some((_, v)) = memory.iter().find(|(k, _)| *k == key) {
        return v.clone();
    }
    let gz = Arc::new(gzip_on_disk(runner, &key, cache));
    memory.push((key, gz.clone()));
    gz
}

/// A runner gzip-compressed at the best level, kept in `<cache>/gz/<blake3>.gz`: 10%
/// fewer bytes than a fast level for every host of every later deploy, for half a
/// second once. A cached file is used only when it expands to exactly this runner (a
/// few milliseconds, once per process): the host runs what arrives, and only the
/// uploaded runner itself would check it there. Anything else is remade. Empty when
/// compressing fails (the host then refuses the upload).
fn gzip_on_disk(runner: &[u8], key: &rustle_runner::payload::Digest, cache: &Path) -> Vec<u8> {
    use std::io::{Read as _, Write as _};
    let file = cache.join("gz").join(format!("{}.gz", key.to_hex()));
    let expands_to_runner = |gz: &[u8]| {
        let mut out = Vec::with_capacity(runner.len());
        flate2::read::GzDecoder::new(gz)
            .read_to_end(&mut out)
            .is_ok_and(|_| rustle_runner::payload::Digest::of(&out) == *key)
    };
    if let Some(gz) = std::fs::read(&file).ok().filter(|gz| expands_to_runner(gz)) {
        return gz;
    }
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    let Ok(gz) = enc.write_all(runner).and_then(|()| enc.finish()) else {
        return Vec::new();
    };
    // A cache that cannot be written only costs the next deploy this work again.
    let _ = std::fs::create_dir_all(cache.join("gz"));
    let _ = rustle_runner::atomic::write(&file, &gz, 0o644);
    gz
}

/// Shared, read-only context for every host task.
struct Ctx {
    runners: BTreeMap<Triple, Runner>,
    /// Run every host in SSH mode (`--strategy ssh`).
    ssh_mode: bool,
    opts: RemoteOptions,
    on_event: OnEvent,
    /// The inventory's hosts, for tasks delegated to them.
    delegates: Arc<crate::delegate::Delegates>,
}

/// Where the host keeps its state: `rustle_root` if set, else decided on the host.
fn host_root(host: &Host, opts: &RemoteOptions) -> Option<String> {
    match host.vars.get("rustle_root").and_then(Value::as_str) {
        Some(r) => Some(r.to_string()),
        None if host.is_local() && opts.local_apart => {
            // A name that is not one path component is named by its hex instead.
            let plain = !host.name.is_empty()
                && !host.name.contains('/')
                && host.name != "."
                && host.name != "..";
            let part = if plain {
                host.name.clone()
            } else {
                rustle_runner::hex::encode(host.name.as_bytes())
            };
            Some(
                opts.local_root
                    .join("hosts")
                    .join(part)
                    .display()
                    .to_string(),
            )
        }
        None if host.is_local() => Some(opts.local_root.display().to_string()),
        None => None,
    }
}

/// Whether more than one of `hosts` would use the local state root.
fn local_apart<'h>(hosts: impl Iterator<Item = &'h Host>) -> bool {
    hosts
        .filter(|h| h.is_local() && !h.vars.contains_key("rustle_root"))
        .nth(1)
        .is_some()
}

fn become_var(host: &Host) -> bool {
    ["rustle_become", "ansible_become"]
        .iter()
        .any(|k| match host.vars.get(*k) {
            Some(Value::Bool(b)) => *b,
            Some(Value::String(s)) => rustle_runner::modules::args::truthy_str(s) == Some(true),
            _ => false,
        })
}

/// A `rustle_root` the host scripts cannot carry: they keep roots one per line.
fn bad_root(root: Option<&str>) -> Option<String> {
    root.filter(|r| r.contains(['\n', '\r']) || r.is_empty())
        .map(|r| {
            format!("rustle_root {r:?} is not usable: it must be a non-empty path on one line")
        })
}

/// Sets a host's outcome from its runner's exit. A command that ended with no exit
/// status because the SSH connection went (the host, its sshd or the network died) is
/// said to be that, not a runner killed by a signal.
fn ended(result: &mut HostResult, code: Option<i32>, stderr: &str, lost: bool) {
    if code.is_none() && lost {
        result.status = HostStatus::Unreachable;
        result.recap.unreachable = 1;
        result.error = Some(
            "the connection to the host was lost before its runner finished: a runner that was running stops before its next task (ending a running command) and records this release as failed; the host's current release stays"
                .into(),
        );
        return;
    }
    deploy::finish(result, code, stderr);
}

/// Runs one script step on a host, reading runner events from its stdout.
#[allow(clippy::too_many_arguments)]
async fn step(
    shell: &Shell,
    name: &str,
    script: &str,
    stdin: &[u8],
    mut channel: Option<&mut HostChannel>,
    ctx: &Ctx,
    result: &mut HostResult,
    timings: &mut Timings,
) {
    let started = Instant::now();
    timings.channels += 1;
    timings.bytes_sent += stdin.len() as u64;
    let mut first_event: Option<Instant> = None;
    let more = channel.as_mut().map(|c| c.open());
    let exec = {
        let on_event = ctx.on_event.clone();
        let mut on_line = |line: ssh::Line<'_>| {
            // Empty lines are the runner's signs of life (`--attached`), not events.
            if line.text.trim().is_empty() {
                return;
            }
            first_event.get_or_insert_with(Instant::now);
            if let Some(c) = channel.as_mut()
                && c.intercept(line, result)
            {
                return;
            }
            deploy::handle_line(name, line, result, &mut |h, ev| on_event(h, ev));
        };
        shell.exec(script, stdin, more, &mut on_line).await
    };
    split_timings(timings, started, first_event);
    result.run_ms = timings.upload_and_run_ms;
    match exec {
        Ok((code, stderr)) => ended(result, code, &stderr, shell.lost()),
        Err(e) => {
            result.status = HostStatus::Unreachable;
            result.recap.unreachable = 1;
            result.error = Some(e);
        }
    }
    if let Some(c) = channel {
        c.settle(result);
    }
}

/// Adds a step's time to the host's figures, split at the runner's first event.
fn split_timings(t: &mut Timings, started: Instant, first_event: Option<Instant>) {
    let total = started.elapsed().as_secs_f64() * 1000.0;
    let upload = first_event.map_or(total, |f| (f - started).as_secs_f64() * 1000.0);
    t.upload_and_run_ms += total;
    t.upload_ms += upload;
    t.run_ms += total - upload;
}

/// What a host task waits for between blue-green's two phases.
type Switch = tokio::sync::watch::Receiver<Option<bool>>;

/// A host's time limit, which blue-green sets afresh for each of its phases (staging,
/// waiting for the other hosts to stage, switching), with what the host is doing then:
/// a host that staged early must not spend its own switch's time waiting for the
/// slowest one.
#[derive(Clone)]
struct Deadline(Arc<tokio::sync::watch::Sender<(Instant, &'static str)>>);

impl Deadline {
    fn new(limit: Duration, phase: &'static str) -> Deadline {
        Deadline(Arc::new(tokio::sync::watch::Sender::new((
            Instant::now() + limit,
            phase,
        ))))
    }

    /// A fresh `limit` from now, for `phase`.
    fn restart(&self, limit: Duration, phase: &'static str) {
        self.0.send_replace((Instant::now() + limit, phase));
    }

    /// Runs `work` until it ends or the deadline (as it is moved meanwhile) passes; the
    /// phase it passed in when it does.
    async fn run<F: std::future::Future>(&self, work: F) -> Result<F::Output, &'static str> {
        let mut moved = self.0.subscribe();
        tokio::pin!(work);
        loop {
            let (at, phase) = *moved.borrow_and_update();
            tokio::select! {
                out = &mut work => return Ok(out),
                () = tokio::time::sleep_until(at.into()) => return Err(phase),
                _ = moved.changed() => {}
            }
        }
    }
}

/// One host through a whole deploy: pack, connect, (stage, wait for the switch,) run.
async fn deploy_host(
    job: Arc<Job>,
    deployment: Arc<String>,
    ctx: Arc<Ctx>,
    staged: Option<(tokio::sync::mpsc::Sender<bool>, Switch, Deadline)>,
    batch: Arc<Batch>,
) -> (HostResult, Timings) {
    let name = job.host.name.clone();
    let mut timings = Timings::default();
    let (shell, connect_ms) = match Shell::open(&job.host, &ctx.opts).await {
        Ok(s) => s,
        Err(e) => {
            if let Some((tx, _, _)) = &staged {
                let _ = tx.send(false).await;
                return (HostResult::unreachable(&name, e), timings);
            }
            // As Ansible does, the host's tasks that need no connection still run
            // (`debug`, `set_fact`, ...), and the first that needs one is unreachable
            // (or ignored, under `ignore_unreachable`).
            let (result, _, _) = crate::sshexec::run_host(
                &job,
                &deployment,
                crate::sshexec::Link::Down(e),
                false,
                ctx.on_event.clone(),
                batch,
            )
            .await;
            return (result, timings);
        }
    };
    timings.connect_ms = connect_ms;
    let root = host_root(&job.host, &ctx.opts);
    if let Some(e) = bad_root(root.as_deref()) {
        if let Some((tx, _, _)) = &staged {
            let _ = tx.send(false).await;
        }
        shell.close().await;
        return (HostResult::unreachable(&name, e), timings);
    }
    let sudo = (job.needs_become || become_var(&job.host)) && !shell.is_root();
    if staged.is_none() && use_ssh_mode(&job, &ctx) {
        return ssh_mode_host(&job, &deployment, shell, sudo, &ctx, timings, batch).await;
    }
    // Over SSH (with sudo or without), the host's runner cache lets a repeat deploy ship
    // only the payload; blue-green, --deploy-only and local hosts get the packed runner
    // whole.
    let cached = staged.is_none() && job.prepacked.is_none() && matches!(shell, Shell::Ssh(..));
    let packed = if cached {
        Vec::new()
    } else {
        match deploy::packed(&job, &ctx.runners) {
            Ok(p) => p,
            Err(e) => {
                if let Some((tx, _, _)) = &staged {
                    let _ = tx.send(false).await;
                }
                shell.close().await;
                return (HostResult::unreachable(&name, e.to_string()), timings);
            }
        }
    };
    let mut args = vec![
        "--expect".to_string(),
        job.digest.to_hex(),
        // The runner stops if this deployer goes away (a timeout, a lost connection).
        "--attached".to_string(),
        "--keep-releases".to_string(),
        ctx.opts.keep_releases.to_string(),
    ];
    if ctx.opts.no_wait {
        args.push("--no-wait".into());
    }
    // Only a plan with tasks that need the controller keeps the runner's stdin open:
    // the others make no round trip.
    let mut channel = job
        .channel
        .then(|| HostChannel::new(&name, Arc::new(job.payload().to_vec()), batch));
    if channel.is_some() {
        args.push("--channel".into());
    }
    // The cached path always has the runner check its own file against the cache key.
    if ctx.opts.verify && !cached {
        args.push("--expect-file".into());
        args.push(rustle_runner::payload::Digest::of(&packed).to_hex());
    }
    let release_dir = PathBuf::from(root.clone().unwrap_or_else(|| "~/.rustle".into()))
        .join("releases")
        .join(deployment.as_str());
    let mut result = HostResult::new(&name, release_dir);
    match staged {
        // Over SSH, ship only the payload when the host's runner cache has
        // the bare runner (a repeat deploy sends a few kilobytes instead of megabytes).
        None if cached => {
            let Some(runner) = ctx.runners.get(&job.triple) else {
                return (HostResult::unreachable(&name, "no runner".into()), timings);
            };
            let runner_digest = runner.digest.to_hex();
            let mut refresh = false;
            loop {
                let s = ssh::script(
                    &Script::DeployCached {
                        runner_digest: &runner_digest,
                        runner_size: runner.bytes.len(),
                        args: &args,
                        refresh,
                        keep_runners: ctx.opts.keep_releases,
                    },
                    &ctx.opts.key_line,
                    sudo,
                    root.as_deref(),
                );
                let started = Instant::now();
                timings.channels += 1;
                let mut first_event: Option<Instant> = None;
                let mut ran = false;
                let more = channel.as_mut().map(HostChannel::open);
                let exec = {
                    let on_event = ctx.on_event.clone();
                    let mut on_line = |line: ssh::Line<'_>| {
                        // Empty lines are the runner's signs of life, not events.
                        if line.text.trim().is_empty() {
                            return;
                        }
                        first_event.get_or_insert_with(Instant::now);
                        if let Some(c) = channel.as_mut()
                            && c.intercept(line, &mut result)
                        {
                            return;
                        }
                        deploy::handle_line(&name, line, &mut result, &mut |h, ev| {
                            ran |= matches!(ev, Event::Start { .. });
                            on_event(h, ev)
                        });
                    };
                    shell
                        .exec_cached(
                            &s,
                            &job.sealed,
                            &runner.bytes,
                            &ctx.opts.cache_dir,
                            more,
                            &mut on_line,
                        )
                        .await
                };
                split_timings(&mut timings, started, first_event);
                result.run_ms = timings.upload_and_run_ms;
                match exec {
                    Ok((code, stderr, sent)) => {
                        timings.bytes_sent += sent;
                        // The cached runner is not the file it should be (its own
                        // `--expect-file` check refused it, or it could not even start):
                        // damaged on the host's disk. It ran nothing; send it again, once.
                        let damaged = !ran
                            && (code == Some(rustle_runner::exit::PAYLOAD_UNEXPECTED)
                                || (code.is_none() && !shell.lost()));
                        if damaged && !refresh {
                            eprintln!(
                                "rustle-deploy: host '{name}': the runner in its cache failed its own check ({}); sending it again",
                                stderr.trim().lines().last().unwrap_or("no exit status")
                            );
                            refresh = true;
                            result = HostResult::new(&name, result.release_dir.clone());
                            continue;
                        }
                        ended(&mut result, code, &stderr, shell.lost());
                        if let Some(c) = &channel {
                            c.settle(&mut result);
                        }
                    }
                    Err(e) => {
                        result.status = HostStatus::Unreachable;
                        result.recap.unreachable = 1;
                        result.error = Some(e);
                    }
                }
                break;
            }
        }
        None => {
            let s = ssh::script(
                &Script::Deploy {
                    size: packed.len(),
                    args: &args,
                },
                &ctx.opts.key_line,
                sudo,
                root.as_deref(),
            );
            step(
                &shell,
                &name,
                &s,
                &packed,
                channel.as_mut(),
                &ctx,
                &mut result,
                &mut timings,
            )
            .await;
        }
        Some((tx, mut switch, deadline)) => {
            // Staging runs no task: its runner needs no channel.
            let mut stage_args: Vec<String> =
                args.iter().filter(|a| *a != "--channel").cloned().collect();
            stage_args.push("--stage".into());
            let s = ssh::script(
                &Script::Deploy {
                    size: packed.len(),
                    args: &stage_args,
                },
                &ctx.opts.key_line,
                sudo,
                root.as_deref(),
            );
            step(
                &shell,
                &name,
                &s,
                &packed,
                None,
                &ctx,
                &mut result,
                &mut timings,
            )
            .await;
            let ok = result.status == HostStatus::Ok;
            // The others stage within their own limit, so this wait has one too.
            deadline.restart(ctx.opts.timeout, "waiting for the other hosts to stage");
            let _ = tx.send(ok).await;
            drop(tx);
            // Wait for the coordinator: every host staged (switch) or not (stay).
            let go = loop {
                if let Some(go) = *switch.borrow() {
                    break go;
                }
                if switch.changed().await.is_err() {
                    break false;
                }
            };
            if !go {
                if ok {
                    result.status = HostStatus::NotRun;
                    result.error = Some(
                        "staged, not switched: another host failed to stage (blue-green)".into(),
                    );
                }
            } else {
                // The switch (the release's run) has a whole limit of its own.
                deadline.restart(ctx.opts.timeout, "switching to the staged release");
                let mut run = HostResult::new(&name, result.release_dir.clone());
                let s = ssh::script(
                    &Script::RunInstalled {
                        id: &deployment,
                        args: &args,
                    },
                    &ctx.opts.key_line,
                    sudo,
                    root.as_deref(),
                );
                step(
                    &shell,
                    &name,
                    &s,
                    &[],
                    channel.as_mut(),
                    &ctx,
                    &mut run,
                    &mut timings,
                )
                .await;
                result = run;
            }
        }
    }
    shell.close().await;
    (result, timings)
}

/// Whether a host runs in SSH mode: `--strategy ssh`, or no runner for its platform was
/// loaded (a host that target detection finds unsupported can be left out of the runner
/// map to fall back here).
fn use_ssh_mode(job: &Job, ctx: &Ctx) -> bool {
    ctx.ssh_mode
        || job.ssh_fallback.is_some()
        || (job.prepacked.is_none() && !ctx.runners.contains_key(&job.triple))
}

/// One host in SSH mode: its tasks run from here, one command at a time, over the
/// connection already open (no runner is uploaded).
async fn ssh_mode_host(
    job: &Job,
    deployment: &str,
    shell: Shell,
    sudo: bool,
    ctx: &Ctx,
    mut timings: Timings,
    batch: Arc<Batch>,
) -> (HostResult, Timings) {
    let link = match shell {
        Shell::Ssh(c, _) => crate::sshexec::Link::Ssh(Arc::new(c)),
        Shell::Local => crate::sshexec::Link::Local,
    };
    let (result, channels, bytes) = crate::sshexec::run_host(
        job,
        deployment,
        link.clone(),
        sudo,
        ctx.on_event.clone(),
        batch,
    )
    .await;
    timings.upload_and_run_ms = result.run_ms;
    timings.run_ms = result.run_ms;
    timings.channels = channels;
    timings.bytes_sent = bytes;
    if let crate::sshexec::Link::Ssh(c) = link
        && let Ok(c) = Arc::try_unwrap(c)
    {
        c.close().await;
    }
    (result, timings)
}

fn not_run(job: &Job, why: &str) -> (HostResult, Timings) {
    let mut r = HostResult::new(&job.host.name, PathBuf::new());
    r.status = HostStatus::NotRun;
    r.error = Some(why.to_string());
    (r, Timings::default())
}

async fn run_batch(
    jobs: Vec<Arc<Job>>,
    deployment: &Arc<String>,
    ctx: &Arc<Ctx>,
    limit: &Arc<tokio::sync::Semaphore>,
) -> Vec<(HostResult, Timings)> {
    let timeout = ctx.opts.timeout;
    // `run_once` is once per batch, as in Ansible.
    let batch = Arc::new(Batch::of(&jobs).delegating_to(ctx.delegates.clone()));
    let mut tasks = Vec::new();
    for job in jobs {
        let (deployment, ctx, limit) = (deployment.clone(), ctx.clone(), limit.clone());
        let batch = batch.clone();
        tasks.push(tokio::spawn(async move {
            let _permit = limit.acquire_owned().await;
            let name = job.host.name.clone();
            let left = given_up(&job, &ctx);
            let host = deploy_host(job, deployment, ctx, None, batch);
            match tokio::time::timeout(timeout, host).await {
                Ok(r) => r,
                Err(_) => timed_out(&name, timeout, left),
            }
        }));
    }
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap_or_else(|e| {
            (
                HostResult::unreachable("?", format!("internal error: {e}")),
                Timings::default(),
            )
        }));
    }
    out
}

/// What giving up on a host at its timeout leaves there, as the recap says it: a local
/// runner is ended with its process group; an SSH host's runner learns it only when its
/// next write to the closed connection fails (within a second), so it may still be
/// running when the recap is printed; SSH mode starts no further command.
fn given_up(job: &Job, ctx: &Ctx) -> &'static str {
    if use_ssh_mode(job, ctx) {
        "the connection was closed, and no further task was started"
    } else if job.host.is_local() {
        "its runner was stopped (its whole process group was ended); the current release stays"
    } else {
        "the connection was closed, so the host's runner may still be running: it stops before its next task (ending a running command) and records this release as failed; the host's current release stays"
    }
}

fn timed_out(name: &str, timeout: Duration, left: &str) -> (HostResult, Timings) {
    (
        HostResult::unreachable(
            name,
            format!(
                "timed out: no answer within {} s; {left}",
                timeout.as_secs()
            ),
        ),
        Timings::default(),
    )
}

fn failed(r: &HostResult) -> bool {
    matches!(r.status, HostStatus::Failed | HostStatus::Unreachable)
}

async fn blue_green(
    jobs: Vec<Arc<Job>>,
    deployment: Arc<String>,
    ctx: Arc<Ctx>,
) -> Vec<(HostResult, Timings)> {
    // Every host holds its connection between the phases, so a blue-green deploy still
    // uses one TCP connection per host. That needs every host in flight at once.
    let (tx, mut rx) = tokio::sync::mpsc::channel::<bool>(jobs.len().max(1));
    let (switch_tx, switch_rx) = tokio::sync::watch::channel(None);
    let timeout = ctx.opts.timeout;
    let count = jobs.len();
    let batch = Arc::new(Batch::of(&jobs).delegating_to(ctx.delegates.clone()));
    let mut tasks = Vec::new();
    for job in jobs {
        let (deployment, ctx, batch) = (deployment.clone(), ctx.clone(), batch.clone());
        let deadline = Deadline::new(timeout, "staging");
        let staged = Some((tx.clone(), switch_rx.clone(), deadline.clone()));
        tasks.push(tokio::spawn(async move {
            let name = job.host.name.clone();
            let left = given_up(&job, &ctx);
            match deadline
                .run(deploy_host(job, deployment, ctx, staged, batch))
                .await
            {
                Ok(r) => r,
                Err(phase) => {
                    let (mut r, t) = timed_out(&name, timeout, left);
                    r.error = r.error.map(|e| format!("{e} (while {phase})"));
                    (r, t)
                }
            }
        }));
    }
    drop(tx);
    let mut all_staged = true;
    for _ in 0..count {
        match rx.recv().await {
            Some(ok) => all_staged &= ok,
            None => {
                all_staged = false;
                break;
            }
        }
    }
    let _ = switch_tx.send(Some(all_staged));
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap_or_else(|e| {
            (
                HostResult::unreachable("?", format!("internal error: {e}")),
                Timings::default(),
            )
        }));
    }
    out
}

fn runtime() -> Result<tokio::runtime::Runtime, std::io::Error> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(std::thread::available_parallelism().map_or(2, |n| n.get().min(8)))
        .enable_all()
        .build()
}

/// Deploys every job with `strategy`. Results come back in the jobs' order. `inventory`
/// is every host of the inventory (`--limit` aside), which tasks may be delegated to.
pub fn deploy_all(
    jobs: Vec<Job>,
    deployment: &str,
    strategy: Strategy,
    runners: BTreeMap<Triple, Runner>,
    mut opts: RemoteOptions,
    on_event: OnEvent,
    inventory: Vec<Host>,
) -> Result<Vec<(HostResult, Timings)>, std::io::Error> {
    opts.local_apart = local_apart(jobs.iter().map(|j| &j.host));
    let rt = runtime()?;
    let limit = Arc::new(tokio::sync::Semaphore::new(opts.parallel.max(1)));
    let delegates = Arc::new(crate::delegate::Delegates::new(inventory, opts.clone()));
    let ctx = Arc::new(Ctx {
        runners,
        ssh_mode: strategy == Strategy::Ssh,
        opts,
        on_event,
        delegates,
    });
    let deployment = Arc::new(deployment.to_string());
    let jobs: Vec<Arc<Job>> = jobs.into_iter().map(Arc::new).collect();
    let batches: Vec<Vec<Arc<Job>>> = match strategy {
        Strategy::BlueGreen => {
            return Ok(rt.block_on(blue_green(jobs, deployment, ctx)));
        }
        Strategy::Parallel | Strategy::Ssh => vec![jobs],
        Strategy::Rolling { batch, .. } => jobs.chunks(batch.max(1)).map(<[_]>::to_vec).collect(),
        Strategy::Canary { percent } => {
            let n = (jobs.len() * percent.min(100) as usize)
                .div_ceil(100)
                .max(1);
            let (first, rest) = jobs.split_at(n.min(jobs.len()));
            vec![first.to_vec(), rest.to_vec()]
        }
    };
    let max_failures = match strategy {
        Strategy::Rolling { max_failures, .. } => max_failures,
        _ => 0,
    };
    Ok(rt.block_on(async move {
        let mut out = Vec::new();
        let mut stopped: Option<String> = None;
        for (i, batch) in batches.into_iter().enumerate() {
            if let Some(why) = &stopped {
                out.extend(batch.iter().map(|j| not_run(j, why)));
                continue;
            }
            let results = run_batch(batch, &deployment, &ctx, &limit).await;
            let failures = results.iter().filter(|(r, _)| failed(r)).count();
            out.extend(results);
            if !matches!(strategy, Strategy::Parallel | Strategy::Ssh) && failures > max_failures {
                stopped = Some(match strategy {
                    Strategy::Canary { .. } => {
                        "not deployed: the canary hosts did not all succeed".to_string()
                    }
                    _ => format!(
                        "not deployed: batch {} had {failures} failed host(s), more than the {max_failures} allowed",
                        i + 1
                    ),
                });
            }
        }
        ctx.delegates.close().await;
        out
    }))
}

/// Asks each host for its platform with `uname -sm` (one connection and one short exec
/// channel per host, up to `parallel` at once), before anything is packed for it.
/// Answers come back in `hosts`' order: the first line of output, or why there is none.
pub fn probe_platforms(
    hosts: &[Host],
    opts: &RemoteOptions,
) -> Result<Vec<Result<String, String>>, std::io::Error> {
    let rt = runtime()?;
    let limit = Arc::new(tokio::sync::Semaphore::new(opts.parallel.max(1)));
    // Connecting has its own limit inside; this bounds a host that connects but hangs.
    let timeout = opts.connect_timeout + Duration::from_secs(30);
    Ok(rt.block_on(async move {
        let mut tasks = Vec::new();
        for host in hosts {
            let (t, jump) = target(host, opts);
            let limit = limit.clone();
            tasks.push(tokio::spawn(async move {
                let _permit = limit.acquire_owned().await;
                tokio::time::timeout(timeout, probe_one(t, jump))
                    .await
                    .unwrap_or_else(|_| {
                        Err(format!(
                            "no answer to `uname -sm` within {} s",
                            timeout.as_secs()
                        ))
                    })
            }));
        }
        let mut out = Vec::new();
        for t in tasks {
            out.push(
                t.await
                    .unwrap_or_else(|e| Err(format!("internal error: {e}"))),
            );
        }
        out
    }))
}

async fn probe_one(t: Target, jump: Vec<Target>) -> Result<String, String> {
    let conn = ssh::connect_via(&t, &jump)
        .await
        .map_err(|e| e.to_string())?;
    let mut answer: Option<String> = None;
    let ran = conn
        .exec("uname -sm", &[], &mut |line| {
            answer.get_or_insert_with(|| line.text.to_string());
        })
        .await;
    conn.close().await;
    let (code, stderr) = ran.map_err(|e| e.to_string())?;
    match (code, answer) {
        (Some(0), Some(a)) => Ok(a),
        (code, _) => Err(format!(
            "`uname -sm` failed (exit {code:?}): {}",
            stderr.trim()
        )),
    }
}

/// The most lines of a host-level operation's output kept (a listing of every root's
/// `state.json`, pretty-printed, is a few lines per release).
const MAX_OP_LINES: usize = 100_000;

/// A host-level operation that ships no new runner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `--rollback`.
    Rollback,
    /// `--list-deployments`.
    List,
    /// `--cleanup`.
    Cleanup,
}

/// What an [`Op`] produced on one host.
#[derive(Debug, Clone)]
pub struct OpResult {
    /// The host's result (for rollback, the re-run's events and recap).
    pub result: HostResult,
    /// stdout lines that were not events (list output).
    pub output: Vec<String>,
}

/// Runs `op` on every host, `parallel` at a time.
pub fn run_op(
    hosts: Vec<Host>,
    op: Op,
    mut opts: RemoteOptions,
    on_event: OnEvent,
) -> Result<Vec<OpResult>, std::io::Error> {
    opts.local_apart = local_apart(hosts.iter());
    let rt = runtime()?;
    let limit = Arc::new(tokio::sync::Semaphore::new(opts.parallel.max(1)));
    let opts = Arc::new(opts);
    Ok(rt.block_on(async move {
        let mut tasks = Vec::new();
        for host in hosts {
            let (opts, limit, on_event) = (opts.clone(), limit.clone(), on_event.clone());
            tasks.push(tokio::spawn(async move {
                let _permit = limit.acquire_owned().await;
                let name = host.name.clone();
                let work = op_host(host, op, opts, on_event);
                match tokio::time::timeout(Duration::from_secs(600), work).await {
                    Ok(r) => r,
                    Err(_) => OpResult {
                        result: timed_out(
                            &name,
                            Duration::from_secs(600),
                            "the connection was closed",
                        )
                        .0,
                        output: Vec::new(),
                    },
                }
            }));
        }
        let mut out = Vec::new();
        for t in tasks {
            if let Ok(r) = t.await {
                out.push(r);
            }
        }
        out
    }))
}

async fn op_host(host: Host, op: Op, opts: Arc<RemoteOptions>, on_event: OnEvent) -> OpResult {
    let name = host.name.clone();
    let (shell, _) = match Shell::open(&host, &opts).await {
        Ok(s) => s,
        Err(e) => {
            return OpResult {
                result: HostResult::unreachable(&name, e),
                output: Vec::new(),
            };
        }
    };
    let root = host_root(&host, &opts);
    if let Some(e) = bad_root(root.as_deref()) {
        shell.close().await;
        return OpResult {
            result: HostResult::unreachable(&name, e),
            output: Vec::new(),
        };
    }
    // The inventory's word on sudo; the host's record of its deploys (`~/.rustle/roots`,
    // see `ssh::script`) says which roots a plan's `become` put under sudo.
    let sudo = become_var(&host) && !shell.is_root();
    let mut args: Vec<String> = Vec::new();
    if op == Op::Rollback {
        args.extend([
            "--attached".to_string(),
            "--keep-releases".to_string(),
            opts.keep_releases.to_string(),
        ]);
    }
    if opts.no_wait {
        args.push("--no-wait".into());
    }
    let script = ssh::script(
        &match op {
            Op::Rollback => Script::Rollback { args: &args },
            Op::List => Script::List,
            Op::Cleanup => Script::Cleanup { args: &args },
        },
        &opts.key_line,
        sudo,
        root.as_deref(),
    );
    let mut result = HostResult::new(&name, PathBuf::new());
    let mut output = Vec::new();
    let exec = {
        let mut on_line = |line: ssh::Line<'_>| {
            if line.text.trim().is_empty() {
                return;
            }
            if op == Op::Rollback && line.text.starts_with('{') {
                deploy::handle_line(&name, line, &mut result, &mut |h, ev| on_event(h, ev));
            } else if output.len() < MAX_OP_LINES {
                output.push(line.text.to_string());
            }
        };
        shell.exec(&script, &[], None, &mut on_line).await
    };
    match exec {
        Ok((code, stderr)) => {
            ended(&mut result, code, &stderr, shell.lost());
            // A rollback that did not succeed says where `current` stays, even when
            // only a task failed (which has no error line of its own).
            if let Some(line) = stderr
                .lines()
                .rev()
                .find(|l| l.contains("current is still"))
            {
                result.error = Some(line.trim().to_string());
            }
        }
        Err(e) => {
            result.status = HostStatus::Unreachable;
            result.recap.unreachable = 1;
            result.error = Some(e);
        }
    }
    shell.close().await;
    OpResult { result, output }
}

/// One state root of a host, as `--list-deployments` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RootListing {
    /// The root's path on the host.
    pub root: String,
    /// Whether it is reached through sudo.
    pub sudo: bool,
    /// Its `state.json` text, then the `current=<link>` line.
    pub lines: Vec<String>,
}

/// Splits a host's [`Op::List`] output by state root (each begins with a
/// `rustle:root <how> <root>` line).
pub fn listings(output: &[String]) -> Vec<RootListing> {
    let mut out: Vec<RootListing> = Vec::new();
    for line in output {
        if let Some(rest) = line.strip_prefix("rustle:root ") {
            let (how, root) = rest.split_once(' ').unwrap_or(("user", rest));
            out.push(RootListing {
                root: root.to_string(),
                sudo: how == "sudo",
                lines: Vec::new(),
            });
        } else if let Some(last) = out.last_mut() {
            last.lines.push(line.clone());
        }
    }
    out
}

impl RootListing {
    /// Why its `state.json` is not a deployment record, if it is not (the listing must
    /// not show a damaged history as an empty one).
    pub fn problem(&self) -> Option<String> {
        let json: String = self
            .lines
            .iter()
            .filter(|l| !l.starts_with("current="))
            .cloned()
            .collect::<Vec<_>>()
            .join("\n");
        match serde_json::from_str::<Value>(&json) {
            Ok(v) if v.get("deployments").is_some_and(Value::is_array) => None,
            Ok(_) => Some(format!(
                "{}/state.json is not a deployment record: it has no \"deployments\" list",
                self.root
            )),
            Err(e) => Some(format!(
                "{}/state.json is not a readable deployment record ({e})",
                self.root
            )),
        }
    }
}

/// The roots a [`Op::Cleanup`] emptied, from its `rustle:cleaned <how> <root>` lines:
/// `<root>`, with " (through sudo)" where it was root's.
pub fn cleaned_roots(output: &[String]) -> Vec<String> {
    output
        .iter()
        .filter_map(|l| l.strip_prefix("rustle:cleaned "))
        .map(|rest| match rest.split_once(' ') {
            Some(("sudo", root)) => format!("{root} (through sudo)"),
            Some((_, root)) => root.to_string(),
            None => rest.to_string(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead as _, Write as _};
    use std::process::{Command, Stdio};

    /// A stand-in runner: a shell script that prints its arguments and its stdin (the
    /// payload), so the upload script's whole conversation can be checked with real
    /// processes on this machine.
    const FAKE_RUNNER: &[u8] = b"#!/bin/sh\necho \"args: $*\"\necho \"stdin: $(cat)\"\nexit 0\n";

    /// Runs a [`Script::DeployCached`] script under `sh` in `home`, with PATH limited to
    /// `path`, answered by [`RunnerUpload::reply`] as over SSH (`runner` is what the
    /// deployer has; `runner_size` what the script is told). Returns stdout's other
    /// lines, the number of acks, stderr and the exit code.
    fn converse(
        home: &Path,
        path: &str,
        runner: &[u8],
        runner_size: usize,
        digest: &str,
    ) -> (Vec<String>, usize, String, Option<i32>) {
        let args = vec!["--expect".to_string(), "x".to_string()];
        let script = ssh::script(
            &Script::DeployCached {
                runner_digest: digest,
                runner_size,
                args: &args,
                refresh: false,
                keep_runners: 5,
            },
            "rustle-ed25519 0011 test",
            false,
            Some(home.join("root").to_str().unwrap()),
        );
        let mut child = Command::new("/bin/sh")
            .arg("-c")
            .arg(&script)
            .env_clear()
            .env("HOME", home)
            .env("PATH", path)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = Some(child.stdin.take().unwrap());
        let stdout = std::io::BufReader::new(child.stdout.take().unwrap());
        let payload = b"the payload".to_vec();
        let cache = home.join("deployer-cache");
        let mut upload = RunnerUpload::new(&payload);
        let (mut lines, mut acks) = (Vec::new(), 0);
        for line in stdout.lines() {
            let line = line.unwrap();
            acks += usize::from(line == "rustle:ack");
            let (bytes, last) = match upload.reply(&line, runner, &cache) {
                Reply::Send(b) => (b, false),
                Reply::Last(b) => (b, true),
                Reply::Pass => {
                    lines.push(line);
                    continue;
                }
            };
            // A script that has already failed (say, its gzip) no longer reads: the
            // write then fails, as sending does over SSH, and its exit says why.
            if let Some(s) = stdin.as_mut() {
                let _ = s.write_all(&bytes);
            }
            if last {
                stdin = None;
            }
        }
        let out = child.wait_with_output().unwrap();
        (
            lines,
            acks,
            String::from_utf8_lossy(&out.stderr).into_owned(),
            out.status.code(),
        )
    }

    /// A directory of links to the tools the script uses: gzip only when asked, and
    /// with `exact_head` false a `head` that, like busybox's or BSD's, knows no
    /// `--version` (so the script asks for one frame at a time).
    fn tools(dir: &Path, with_gzip: bool, exact_head: bool) -> String {
        let bin = dir.join(format!("bin-{with_gzip}-{exact_head}"));
        std::fs::create_dir_all(&bin).unwrap();
        let mut names = vec![
            "wc", "mkdir", "find", "chmod", "mv", "rm", "cat", "ls", "mktemp", "rmdir",
        ];
        if with_gzip {
            names.push("gzip");
        }
        let real = |name: &str| {
            ["/usr/bin", "/bin"]
                .iter()
                .map(|d| Path::new(d).join(name))
                .find(|p| p.exists())
                .unwrap()
        };
        if exact_head {
            names.push("head");
        } else {
            let head = bin.join("head");
            std::fs::write(
                &head,
                format!(
                    "#!/bin/sh\ncase \"$1\" in --version) exit 1;; esac\nexec {} \"$@\"\n",
                    real("head").display()
                ),
            )
            .unwrap();
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(&head, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        for name in names {
            let _ = std::os::unix::fs::symlink(real(name), bin.join(name));
        }
        bin.to_str().unwrap().to_string()
    }

    fn compressed(bytes: &[u8]) -> Vec<u8> {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(bytes).unwrap();
        enc.finish().unwrap()
    }

    #[test]
    fn frames_stay_within_the_window_and_the_payload_follows_the_last() {
        let payload = b"P".to_vec();
        let body = vec![7u8; ssh::RUNNER_FRAME * 3 + 5];
        for window in [1, 2] {
            let mut u = RunnerUpload::new(&payload);
            // Bytes sent, and how many frames went out before each ack.
            let mut sent = Vec::new();
            let mut out = 0usize;
            let first = match u.start(body.clone(), window) {
                Reply::Send(b) => b,
                other => panic!("ended before the runner was sent: {other:?}"),
            };
            assert_eq!(
                first.len(),
                window * (ssh::RUNNER_FRAME + 7),
                "window {window}"
            );
            out += window;
            sent.extend(first);
            let mut acks = 0;
            let last = loop {
                acks += 1;
                assert!(
                    out - (acks - 1) <= window,
                    "more than {window} unacknowledged"
                );
                match u.acked() {
                    Reply::Send(b) => {
                        out += usize::from(!b.is_empty());
                        sent.extend(b);
                    }
                    Reply::Last(b) => break b,
                    Reply::Pass => panic!("an ack is answered"),
                }
            };
            assert_eq!(acks, 4, "one ack per frame");
            // The end line comes with the last frame where the host reads exactly, else
            // after the last ack; the payload follows it.
            let end: &[u8] = if window > 1 { b"" } else { b"0\n" };
            assert_eq!(last, [end, &payload[..]].concat(), "window {window}");
            sent.extend_from_slice(end);
            // What was sent parses back, frame by frame, into the body.
            let mut rest = &sent[..];
            let mut got = Vec::new();
            loop {
                let nl = rest.iter().position(|b| *b == b'\n').unwrap();
                let n: usize = std::str::from_utf8(&rest[..nl]).unwrap().parse().unwrap();
                rest = &rest[nl + 1..];
                if n == 0 {
                    break;
                }
                got.extend_from_slice(&rest[..n]);
                rest = &rest[n..];
            }
            assert!(rest.is_empty());
            assert_eq!(got, body);
        }
    }

    #[test]
    fn a_host_takes_the_runner_in_frames_then_reuses_it() {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path();
        // Bigger than two frames even compressed (the shell never reads past `exit`), so
        // acks pace it.
        let mut runner = FAKE_RUNNER.to_vec();
        let mut x = 0x2545_f491_u32;
        runner.extend((0..ssh::RUNNER_FRAME * 3).map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x.to_le_bytes()[0]
        }));
        let frames = |n: usize| n.div_ceil(ssh::RUNNER_FRAME);
        let gz_frames = frames(compressed(&runner).len());
        assert!(gz_frames > ssh::RUNNER_FRAMES_IN_FLIGHT);
        let cached = |d: &str| home.join("root/cache").join(d).join("rustle-runner");
        // gzip and an exact head; gzip with a head that may read ahead (one frame at a
        // time); no gzip (the runner as it is).
        for (digest, gz, exact) in [("d1", true, true), ("d2", true, false), ("d3", false, true)] {
            let path = tools(home, gz, exact);
            let (lines, acks, err, code) = converse(home, &path, &runner, runner.len(), digest);
            assert_eq!(code, Some(0), "{digest}: {err}");
            let want = if gz { gz_frames } else { frames(runner.len()) };
            assert_eq!(acks, want, "{digest}: {lines:?}");
            assert_eq!(
                lines.last().map(String::as_str),
                Some("stdin: the payload"),
                "{digest}: {lines:?}"
            );
            let args = lines.iter().find(|l| l.starts_with("args: ")).unwrap();
            assert!(
                args.contains(&format!("--expect-file {digest} --payload - --trusted-key")),
                "{args}"
            );
            assert_eq!(std::fs::read(cached(digest)).unwrap(), runner);
            use std::os::unix::fs::PermissionsExt as _;
            let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(&cached(digest)), 0o700);
            assert_eq!(mode(&home.join("root")), 0o700, "the state root is private");
        }
        // A second deploy finds it and sends only the payload.
        let (_, acks, err, code) =
            converse(home, &tools(home, true, true), &runner, runner.len(), "d1");
        assert_eq!((code, acks), (Some(0), 0), "{err}");
    }

    #[test]
    fn the_key_is_remembered_once_even_after_an_unfinished_line() {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path();
        let path = tools(home, true, true);
        std::fs::create_dir_all(home.join(".rustle")).unwrap();
        // A store whose last line has no newline, as an editor may leave it.
        std::fs::write(home.join(".rustle/trusted_keys"), "rustle-ed25519 aa other").unwrap();
        for _ in 0..2 {
            let (_, _, err, code) = converse(home, &path, FAKE_RUNNER, FAKE_RUNNER.len(), "k");
            assert_eq!(code, Some(0), "{err}");
        }
        assert_eq!(
            std::fs::read_to_string(home.join(".rustle/trusted_keys")).unwrap(),
            "rustle-ed25519 aa other\nrustle-ed25519 0011 test\n"
        );
    }

    #[test]
    fn a_short_upload_is_refused_and_leaves_no_runner() {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path();
        for (digest, gz) in [("s1", true), ("s2", false)] {
            let path = tools(home, gz, true);
            let (lines, _, err, code) =
                converse(home, &path, FAKE_RUNNER, FAKE_RUNNER.len() + 1, digest);
            assert_eq!(code, Some(70), "{lines:?}");
            assert!(err.contains("upload truncated"), "{err}");
            let dir = home.join("root/cache").join(digest);
            let left: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
            assert!(left.is_empty(), "{left:?}");
        }
    }

    #[test]
    fn a_gzip_that_fails_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path();
        let path = tools(home, false, true);
        // A gzip that exists but cannot expand anything.
        let gzip = Path::new(&path).join("gzip");
        std::fs::write(&gzip, "#!/bin/sh\necho 'gzip: broken' >&2\nexit 1\n").unwrap();
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&gzip, std::fs::Permissions::from_mode(0o755)).unwrap();
        let (_, _, err, code) = converse(home, &path, FAKE_RUNNER, FAKE_RUNNER.len(), "g");
        assert_eq!(code, Some(70), "{err}");
        assert!(
            err.contains("gzip could not expand the uploaded runner"),
            "{err}"
        );
        assert!(!home.join("root/cache/g/rustle-runner").exists());
    }

    #[test]
    fn chatter_before_the_first_line_is_shown_not_answered() {
        let payload = b"P".to_vec();
        let mut u = RunnerUpload::new(&payload);
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            u.reply("Welcome to host", b"runner", dir.path()),
            Reply::Pass
        ));
        assert!(matches!(
            u.reply("rustle:have-runner", b"runner", dir.path()),
            Reply::Last(b) if b == payload
        ));
    }

    #[test]
    fn the_compressed_runner_is_cached_and_a_wrong_copy_remade() {
        let dir = tempfile::tempdir().unwrap();
        let runner: Vec<u8> = (0..200_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect();
        let key = rustle_runner::payload::Digest::of(&runner);
        let expands = |gz: &[u8]| {
            let mut back = Vec::new();
            std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(gz), &mut back).unwrap();
            back
        };
        let gz = gzip_on_disk(&runner, &key, dir.path());
        assert_eq!(expands(&gz), runner);
        let file = dir.path().join("gz").join(format!("{}.gz", key.to_hex()));
        assert_eq!(std::fs::read(&file).unwrap(), gz);
        // A later deploy reads it back rather than compressing again: a copy made at
        // another level is taken as it is...
        let other_level = compressed(&runner);
        assert_ne!(other_level, gz);
        std::fs::write(&file, &other_level).unwrap();
        assert_eq!(gzip_on_disk(&runner, &key, dir.path()), other_level);
        // ...but a file that is damaged, or expands to something else, is never sent.
        for wrong in [b"damaged".to_vec(), compressed(b"another runner")] {
            std::fs::write(&file, &wrong).unwrap();
            assert_eq!(expands(&gzip_on_disk(&runner, &key, dir.path())), runner);
            assert_eq!(expands(&std::fs::read(&file).unwrap()), runner);
        }
    }
}
