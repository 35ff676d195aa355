//! Deploying to SSH hosts: for each host, pack, connect, upload-and-run on one channel,
//! stream its events, under a per-host timeout, many hosts at a time.
//!
//! Each host is independent: a host that is down, slow, or refuses its runner is
//! reported and the others go on. Packing happens inside each host's task, so at most
//! `parallel` packed runners are in memory at once.

use crate::deploy::{self, HostResult, HostStatus, Job};
use crate::inventory::Host;
use crate::runners::Runner;
use crate::ssh::{self, RemoteRun, Target};
use crate::target::Triple;
use rustle_runner::events::Event;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How to reach and treat SSH hosts.
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
    /// Hosts deployed at once.
    pub parallel: usize,
}

/// Figures for one host, for the report.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct Timings {
    /// Milliseconds to connect and authenticate.
    pub connect_ms: f64,
    /// Milliseconds from the first byte sent to the runner's exit.
    pub upload_and_run_ms: f64,
    /// Bytes sent on the channel (the packed runner).
    pub bytes_sent: u64,
}

/// The SSH target for an inventory host: `ansible_host`/`ansible_port`/`ansible_user`/
/// `ansible_ssh_private_key_file`, falling back to the name, port 22 and `$USER`.
pub fn target(host: &Host, opts: &RemoteOptions) -> Target {
    let user = host
        .user()
        .map(str::to_string)
        .or_else(|| std::env::var("USER").ok())
        .or_else(rustle_runner::facts::current_user)
        .unwrap_or_else(|| "root".into());
    Target {
        name: host.name.clone(),
        address: host.address().to_string(),
        port: host.port().unwrap_or(22),
        user,
        identity_files: host
            .private_key_file()
            .map(|p| vec![expand_home(p)])
            .unwrap_or_default(),
        known_hosts: opts.known_hosts.clone(),
        accept_new: opts.accept_new_host_keys,
        connect_timeout: opts.connect_timeout,
    }
}

fn expand_home(p: &str) -> PathBuf {
    match (p.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) => PathBuf::from(home).join(rest),
        _ => PathBuf::from(p),
    }
}

/// Deploys one host: pack, connect, upload and run, read events.
async fn deploy_one(
    job: Arc<Job>,
    runners: Arc<BTreeMap<Triple, Runner>>,
    key_line: Arc<String>,
    opts: Arc<RemoteOptions>,
    on_event: Arc<dyn Fn(&str, &Event) + Send + Sync>,
) -> (HostResult, Timings) {
    let name = job.host.name.clone();
    let mut timings = Timings::default();
    let packed = match deploy::packed(&job, &runners) {
        Ok(p) => p,
        Err(e) => return (HostResult::unreachable(&name, e.to_string()), timings),
    };
    let t = target(&job.host, &opts);
    let started = Instant::now();
    let conn = match ssh::connect(&t).await {
        Ok(c) => c,
        Err(e) => return (HostResult::unreachable(&name, e.to_string()), timings),
    };
    timings.connect_ms = started.elapsed().as_secs_f64() * 1000.0;
    let root = job
        .host
        .vars
        .get("rustle_root")
        .and_then(|v| v.as_str())
        .map(PathBuf::from);
    let args = deploy::runner_args(&job, None, root.as_deref());
    let sudo = job.needs_become && t.user != "root";
    let script = ssh::remote_script(&RemoteRun {
        size: packed.len(),
        args: &args,
        key_line: &key_line,
        sudo,
    });
    let mut result = HostResult::new(&name, PathBuf::new());
    let run_started = Instant::now();
    timings.bytes_sent = packed.len() as u64;
    let exec = {
        let mut on_line = |line: &str| {
            deploy::handle_line(&name, line, &mut result, &mut |h, ev| on_event(h, ev));
        };
        conn.exec(&script, &packed, &mut on_line).await
    };
    timings.upload_and_run_ms = run_started.elapsed().as_secs_f64() * 1000.0;
    result.run_ms = timings.upload_and_run_ms;
    match exec {
        Ok((code, stderr)) => {
            let code = code.and_then(|c| i32::try_from(c).ok());
            deploy::finish(&mut result, code, &stderr);
        }
        Err(e) => {
            result.status = HostStatus::Unreachable;
            result.recap.unreachable = 1;
            result.error = Some(e.to_string());
        }
    }
    conn.close().await;
    (result, timings)
}

/// Deploys every job over SSH, `opts.parallel` at a time, each under `opts.timeout`.
/// Results come back in the jobs' order.
pub fn deploy_all(
    jobs: Vec<Job>,
    runners: BTreeMap<Triple, Runner>,
    key_line: String,
    opts: RemoteOptions,
    on_event: Arc<dyn Fn(&str, &Event) + Send + Sync>,
) -> Result<Vec<(HostResult, Timings)>, std::io::Error> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(std::thread::available_parallelism().map_or(2, |n| n.get().min(8)))
        .enable_all()
        .build()?;
    let runners = Arc::new(runners);
    let key_line = Arc::new(key_line);
    let timeout = opts.timeout;
    let opts = Arc::new(opts);
    let limit = Arc::new(tokio::sync::Semaphore::new(opts.parallel.max(1)));
    Ok(rt.block_on(async move {
        let mut tasks = Vec::new();
        for job in jobs {
            let job = Arc::new(job);
            let (runners, key_line, opts, on_event, limit) = (
                runners.clone(),
                key_line.clone(),
                opts.clone(),
                on_event.clone(),
                limit.clone(),
            );
            tasks.push(tokio::spawn(async move {
                let _permit = limit.acquire_owned().await;
                let name = job.host.name.clone();
                let work = deploy_one(job, runners, key_line, opts, on_event);
                match tokio::time::timeout(timeout, work).await {
                    Ok(r) => r,
                    Err(_) => (
                        HostResult::unreachable(
                            &name,
                            format!(
                                "timed out after {} s; the host was cut off",
                                timeout.as_secs()
                            ),
                        ),
                        Timings::default(),
                    ),
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
    }))
}
