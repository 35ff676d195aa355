//! Carrying a deployment out on hosts, local or over SSH, with a fleet strategy.
//!
//! Every host is reached through a [`Shell`]: an SSH connection (one TCP connection,
//! one channel per step) or, for `ansible_connection=local`, `sh` on this machine. Both
//! run the same scripts ([`ssh::script`]), so a local host and a remote one behave
//! the same. Hosts are independent: a host that is down, slow, or refuses its runner is
//! reported and the others go on, unless the strategy says to stop.

use crate::deploy::{self, HostResult, HostStatus, Job};
use crate::inventory::Host;
use crate::runners::Runner;
use crate::ssh::{self, Script, Target};
use crate::target::Triple;
use rustle_runner::events::Event;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};

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
    /// known_hosts file for host key checks.
    pub known_hosts: PathBuf,
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

    /// True when the login user is root.
    fn is_root(&self) -> bool {
        match self {
            Shell::Ssh(_, user) => user == "root",
            Shell::Local => rustle_runner::facts::current_uid() == Some(0),
        }
    }

    async fn exec(
        &self,
        script: &str,
        stdin: &[u8],
        on_line: &mut (dyn FnMut(&str) + Send),
    ) -> Result<(Option<i32>, String), String> {
        match self {
            Shell::Ssh(c, _) => c
                .exec(script, stdin, on_line)
                .await
                .map(|(code, err)| (code.and_then(|c| i32::try_from(c).ok()), err))
                .map_err(|e| e.to_string()),
            Shell::Local => local_exec(script, stdin, on_line).await,
        }
    }

    /// Runs a [`Script::DeployCached`] script: after its first line says whether the
    /// host has the runner cached, sends the payload, and the runner when it is needed.
    /// Returns the exit code, stderr and the bytes sent.
    async fn exec_cached(
        &self,
        script: &str,
        payload: &[u8],
        runner: &[u8],
        on_line: &mut (dyn FnMut(&str) + Send),
    ) -> Result<(Option<i32>, String, u64), String> {
        let mut answer = |first: &str| match first {
            "rustle:have-runner" => Some(payload.to_vec()),
            "rustle:need-runner" => Some([payload, runner].concat()),
            // Less than half the bytes: on a first deploy the hosts' sshd spends most of
            // its time on the data, so this is what a fleet's first deploy waits for.
            "rustle:need-runner-gz" => {
                let gz = gzip(runner);
                let mut v = Vec::with_capacity(payload.len() + gz.len() + 16);
                v.extend_from_slice(payload);
                v.extend_from_slice(format!("{}\n", gz.len()).as_bytes());
                v.extend_from_slice(&gz);
                Some(v)
            }
            _ => None,
        };
        match self {
            Shell::Ssh(c, _) => c
                .exec_after_first_line(script, &mut answer, on_line)
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

async fn local_exec(
    script: &str,
    stdin: &[u8],
    on_line: &mut (dyn FnMut(&str) + Send),
) -> Result<(Option<i32>, String), String> {
    let mut child = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(script)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot start sh: {e}"))?;
    let mut input = child.stdin.take().ok_or("no stdin")?;
    let data = stdin.to_vec();
    let writer = tokio::spawn(async move {
        let _ = input.write_all(&data).await;
        let _ = input.shutdown().await;
    });
    let mut err = child.stderr.take().ok_or("no stderr")?;
    let reader = tokio::spawn(async move {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s).await;
        s
    });
    let out = child.stdout.take().ok_or("no stdout")?;
    let mut lines = tokio::io::BufReader::new(out).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        on_line(&line);
    }
    let status = child.wait().await.map_err(|e| e.to_string())?;
    let _ = writer.await;
    let stderr = reader.await.unwrap_or_default();
    Ok((status.code(), stderr))
}

/// gzip-compresses a runner once per process (every host of a deploy gets the same bytes).
fn gzip(runner: &[u8]) -> Arc<Vec<u8>> {
    use std::io::Write as _;
    static CACHE: std::sync::Mutex<Vec<(rustle_runner::payload::Digest, Arc<Vec<u8>>)>> =
        std::sync::Mutex::new(Vec::new());
    let key = rustle_runner::payload::Digest::of(runner);
    if let Ok(cache) = CACHE.lock()
        && let Some((_, v)) = cache.iter().find(|(k, _)| *k == key)
    {
        return v.clone();
    }
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let gz = match enc.write_all(runner).and_then(|()| enc.finish()) {
        Ok(v) => Arc::new(v),
        Err(_) => return Arc::new(Vec::new()),
    };
    if let Ok(mut cache) = CACHE.lock() {
        cache.push((key, gz.clone()));
    }
    gz
}

/// Shared, read-only context for every host task.
struct Ctx {
    runners: BTreeMap<Triple, Runner>,
    /// Run every host in SSH mode (`--strategy ssh`).
    ssh_mode: bool,
    opts: RemoteOptions,
    on_event: OnEvent,
}

/// Where the host keeps its state: `rustle_root` if set, else decided on the host.
fn host_root(host: &Host, opts: &RemoteOptions) -> Option<String> {
    match host.vars.get("rustle_root").and_then(Value::as_str) {
        Some(r) => Some(r.to_string()),
        None if host.is_local() => Some(opts.local_root.display().to_string()),
        None => None,
    }
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

/// Runs one script step on a host, reading runner events from its stdout.
async fn step(
    shell: &Shell,
    name: &str,
    script: &str,
    stdin: &[u8],
    ctx: &Ctx,
    result: &mut HostResult,
    timings: &mut Timings,
) {
    let started = Instant::now();
    timings.channels += 1;
    timings.bytes_sent += stdin.len() as u64;
    let mut first_event: Option<Instant> = None;
    let exec = {
        let on_event = ctx.on_event.clone();
        let mut on_line = |line: &str| {
            first_event.get_or_insert_with(Instant::now);
            deploy::handle_line(name, line, result, &mut |h, ev| on_event(h, ev));
        };
        shell.exec(script, stdin, &mut on_line).await
    };
    split_timings(timings, started, first_event);
    result.run_ms = timings.upload_and_run_ms;
    match exec {
        Ok((code, stderr)) => deploy::finish(result, code, &stderr),
        Err(e) => {
            result.status = HostStatus::Unreachable;
            result.recap.unreachable = 1;
            result.error = Some(e);
        }
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

/// One host through a whole deploy: pack, connect, (stage, wait for the switch,) run.
async fn deploy_host(
    job: Arc<Job>,
    deployment: Arc<String>,
    ctx: Arc<Ctx>,
    staged: Option<(tokio::sync::mpsc::Sender<bool>, Switch)>,
) -> (HostResult, Timings) {
    let name = job.host.name.clone();
    let mut timings = Timings::default();
    let (shell, connect_ms) = match Shell::open(&job.host, &ctx.opts).await {
        Ok(s) => s,
        Err(e) => {
            if let Some((tx, _)) = &staged {
                let _ = tx.send(false).await;
            }
            return (HostResult::unreachable(&name, e), timings);
        }
    };
    timings.connect_ms = connect_ms;
    let root = host_root(&job.host, &ctx.opts);
    let sudo = (job.needs_become || become_var(&job.host)) && !shell.is_root();
    if staged.is_none() && use_ssh_mode(&job, &ctx) {
        return ssh_mode_host(&job, &deployment, shell, sudo, &ctx, timings).await;
    }
    // Over SSH without sudo, the host's runner cache lets a repeat deploy ship only the
    // payload; otherwise the packed runner goes up whole.
    let cached =
        staged.is_none() && !sudo && job.prepacked.is_none() && matches!(shell, Shell::Ssh(..));
    let packed = if cached {
        Vec::new()
    } else {
        match deploy::packed(&job, &ctx.runners) {
            Ok(p) => p,
            Err(e) => {
                if let Some((tx, _)) = &staged {
                    let _ = tx.send(false).await;
                }
                shell.close().await;
                return (HostResult::unreachable(&name, e.to_string()), timings);
            }
        }
    };
    let mut args = vec!["--expect".to_string(), job.digest.to_hex()];
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
        // Over SSH without sudo, ship only the payload when the host's runner cache has
        // the bare runner (a repeat deploy sends a few kilobytes instead of megabytes).
        None if cached => {
            let Some(runner) = ctx.runners.get(&job.triple) else {
                return (HostResult::unreachable(&name, "no runner".into()), timings);
            };
            let s = ssh::script(
                &Script::DeployCached {
                    runner_digest: &runner.digest.to_hex(),
                    payload_size: job.sealed.len(),
                    runner_size: runner.bytes.len(),
                    args: &args,
                },
                &ctx.opts.key_line,
                sudo,
                root.as_deref(),
            );
            let started = Instant::now();
            timings.channels += 1;
            let mut first_event: Option<Instant> = None;
            let exec = {
                let on_event = ctx.on_event.clone();
                let mut on_line = |line: &str| {
                    first_event.get_or_insert_with(Instant::now);
                    deploy::handle_line(&name, line, &mut result, &mut |h, ev| on_event(h, ev));
                };
                shell
                    .exec_cached(&s, &job.sealed, &runner.bytes, &mut on_line)
                    .await
            };
            split_timings(&mut timings, started, first_event);
            result.run_ms = timings.upload_and_run_ms;
            match exec {
                Ok((code, stderr, sent)) => {
                    timings.bytes_sent += sent;
                    deploy::finish(&mut result, code, &stderr);
                }
                Err(e) => {
                    result.status = HostStatus::Unreachable;
                    result.recap.unreachable = 1;
                    result.error = Some(e);
                }
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
            step(&shell, &name, &s, &packed, &ctx, &mut result, &mut timings).await;
        }
        Some((tx, mut switch)) => {
            let mut stage_args = args.clone();
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
            step(&shell, &name, &s, &packed, &ctx, &mut result, &mut timings).await;
            let ok = result.status == HostStatus::Ok;
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
                step(&shell, &name, &s, &[], &ctx, &mut run, &mut timings).await;
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
) -> (HostResult, Timings) {
    let link = match shell {
        Shell::Ssh(c, _) => crate::sshexec::Link::Ssh(Arc::new(c)),
        Shell::Local => crate::sshexec::Link::Local,
    };
    let (result, channels, bytes) =
        crate::sshexec::run_host(job, deployment, link.clone(), sudo, ctx.on_event.clone()).await;
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
    let mut tasks = Vec::new();
    for job in jobs {
        let (deployment, ctx, limit) = (deployment.clone(), ctx.clone(), limit.clone());
        tasks.push(tokio::spawn(async move {
            let _permit = limit.acquire_owned().await;
            let name = job.host.name.clone();
            match tokio::time::timeout(timeout, deploy_host(job, deployment, ctx, None)).await {
                Ok(r) => r,
                Err(_) => timed_out(&name, timeout),
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

fn timed_out(name: &str, timeout: Duration) -> (HostResult, Timings) {
    (
        HostResult::unreachable(
            name,
            format!(
                "timed out after {} s; the host was cut off",
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
    let mut tasks = Vec::new();
    for job in jobs {
        let (deployment, ctx) = (deployment.clone(), ctx.clone());
        let staged = Some((tx.clone(), switch_rx.clone()));
        tasks.push(tokio::spawn(async move {
            let name = job.host.name.clone();
            match tokio::time::timeout(timeout, deploy_host(job, deployment, ctx, staged)).await {
                Ok(r) => r,
                Err(_) => timed_out(&name, timeout),
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

/// Deploys every job with `strategy`. Results come back in the jobs' order.
pub fn deploy_all(
    jobs: Vec<Job>,
    deployment: &str,
    strategy: Strategy,
    runners: BTreeMap<Triple, Runner>,
    opts: RemoteOptions,
    on_event: OnEvent,
) -> Result<Vec<(HostResult, Timings)>, std::io::Error> {
    let rt = runtime()?;
    let limit = Arc::new(tokio::sync::Semaphore::new(opts.parallel.max(1)));
    let ctx = Arc::new(Ctx {
        runners,
        ssh_mode: strategy == Strategy::Ssh,
        opts,
        on_event,
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
            answer.get_or_insert_with(|| line.to_string());
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
    opts: RemoteOptions,
    on_event: OnEvent,
) -> Result<Vec<OpResult>, std::io::Error> {
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
                        result: timed_out(&name, Duration::from_secs(600)).0,
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
    let sudo = become_var(&host) && !shell.is_root();
    let script = ssh::script(
        &match op {
            Op::Rollback => Script::Rollback,
            Op::List => Script::List,
            Op::Cleanup => Script::Cleanup,
        },
        &opts.key_line,
        sudo,
        root.as_deref(),
    );
    let mut result = HostResult::new(&name, PathBuf::new());
    let mut output = Vec::new();
    let exec = {
        let mut on_line = |line: &str| {
            if op == Op::Rollback && line.starts_with('{') {
                deploy::handle_line(&name, line, &mut result, &mut |h, ev| on_event(h, ev));
            } else {
                output.push(line.to_string());
            }
        };
        shell.exec(&script, &[], &mut on_line).await
    };
    match exec {
        Ok((code, stderr)) => deploy::finish(&mut result, code, &stderr),
        Err(e) => {
            result.status = HostStatus::Unreachable;
            result.recap.unreachable = 1;
            result.error = Some(e);
        }
    }
    shell.close().await;
    OpResult { result, output }
}
