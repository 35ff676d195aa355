//! `async` tasks as background jobs, and the `async_status` module, with the files and
//! fields of Ansible's `async_wrapper`.
//!
//! A task with `async: N` does not run its module in the runner: the runner starts its
//! own executable again in the hidden `--async-job` mode ([`JOB_FLAG`]), in a process
//! group of its own with its standard streams detached, and hands it the rendered module
//! call on its standard input (MessagePack, as `asuser` does). The job then lives on its
//! own: the runner may end (`poll: 0`) and the job goes on, as Ansible's daemonised
//! wrapper does. (Without `unsafe` the runner cannot call `setsid`; a process group of
//! its own is what keeps the job out of the runner's and the deployer's signals, and no
//! terminal is involved.)
//!
//! The job's status is a JSON file named after the job id in the async directory
//! (`ansible_async_dir`, by default `~/.ansible_async`, as in Ansible): first
//! `{"started": 1, "finished": 0, "ansible_job_id": ...}`, written before the job
//! starts, then the module's result when it ends, or `{"msg": "Timeout exceeded",
//! "failed": true, ...}` when it outlives its `N` seconds (what it started is ended with
//! it). Every version is written whole through [`crate::atomic`], so a reader never sees
//! half a file. `async_status` reads that file as Ansible's module and action do.

use super::asuser::ModuleCall;
use super::{Ctx, ModuleError, Outcome};
use crate::plan::Vars;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::ffi::OsString;
use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// The hidden first argument that makes a runner run one background job.
pub const JOB_FLAG: &str = "--async-job";

/// Where job files go when the task's variables do not say (`ansible_async_dir`).
const DEFAULT_DIR: &str = "~/.ansible_async";

/// The most bytes of a job request read (a module call with its embedded files).
const REQUEST_LIMIT: u64 = 1 << 30;

/// Modules whose Ansible action plugin does not support `async`: Ansible fails such a
/// task with "This action (X) does not support async." (`ActionBase.run`).
const NO_ASYNC: &[&str] = &[
    "add_host",
    "assemble",
    "assert",
    "async_status",
    "copy",
    "debug",
    "fail",
    "fetch",
    "group_by",
    "include_vars",
    "pause",
    "raw",
    "reboot",
    "script",
    "set_fact",
    "set_stats",
    "template",
    "unarchive",
    "validate_argument_spec",
    "wait_for_connection",
];

/// True when Ansible runs `module` (its canonical name) as a background job under `async`.
pub fn supports_async(module: &str) -> bool {
    !NO_ASYNC.contains(&module)
}

/// One module call for a job, as the runner sends it.
#[derive(Debug, Serialize, Deserialize)]
struct JobRequest {
    /// The module call itself, as a child running as another user gets it.
    call: ModuleCall,
    /// The job's status file.
    path: PathBuf,
    jid: String,
    /// Seconds the job may run.
    limit: u64,
}

/// A job that was started: what `poll` and `async_status` need.
#[derive(Debug, Clone)]
pub struct Started {
    /// `ansible_job_id`.
    pub jid: String,
    /// The status file.
    pub path: PathBuf,
}

/// The async directory for a task: `ansible_async_dir` from its variables, `~` expanded
/// for the user the runner runs as.
pub fn async_dir(vars: &minijinja::Value) -> PathBuf {
    let given = vars
        .get_attr("ansible_async_dir")
        .ok()
        .filter(|v| !v.is_undefined() && !v.is_none())
        .map(|v| v.to_string());
    expand_home(given.as_deref().unwrap_or(DEFAULT_DIR))
}

/// `~` and `~/...` under the runner's user's home (`HOME`, else the password database).
fn expand_home(path: &str) -> PathBuf {
    let rest = match path.strip_prefix('~') {
        Some(r) if r.is_empty() || r.starts_with('/') => r.trim_start_matches('/'),
        _ => return PathBuf::from(path),
    };
    let home = std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            crate::facts::current_user()
                .and_then(|u| crate::privilege::RunAs::lookup(&u))
                .map(|r| PathBuf::from(r.home))
        })
        .unwrap_or_else(|| PathBuf::from("/"));
    if rest.is_empty() {
        home
    } else {
        home.join(rest)
    }
}

/// A new job id in Ansible's form, `j<random>.<pid>`.
fn new_jid() -> String {
    let n = u64::from_le_bytes(crate::random::bytes::<8>()) % 999_999_999_999;
    format!("j{n}.{}", std::process::id())
}

/// Writes a status file whole, readable by its owner only (a result may hold secrets).
fn write_status(path: &Path, v: &Value) -> Result<(), String> {
    let text = serde_json::to_vec(v).map_err(|e| format!("cannot encode the job status: {e}"))?;
    crate::atomic::write(path, &text, 0o600).map_err(|e| e.to_string())
}

/// Starts `module` as a background job of at most `limit` seconds, run by `exe` (a
/// runner executable) with its files under `dir`. Returns the job, and the result
/// Ansible registers for a job it started (`started`, `finished`, `ansible_job_id`,
/// `results_file`, `changed`).
pub fn start(
    exe: &Path,
    module: &str,
    args: &Vars,
    ctx: &Ctx<'_>,
    dir: &Path,
    limit: u64,
) -> Result<(Started, Vars), String> {
    {
        use std::os::unix::fs::DirBuilderExt as _;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| format!("could not create directory: {} - {e}", dir.display()))?;
    }
    let jid = new_jid();
    let path = dir.join(&jid);
    write_status(
        &path,
        &json!({"started": 1, "finished": 0, "ansible_job_id": jid}),
    )?;
    let mut files = super::asuser::files_named(args, ctx.files);
    let library = format!("{}{module}", super::LIBRARY_PREFIX);
    if let Some(f) = ctx.files.get(&library) {
        files.insert(library, f.clone());
    }
    let request = JobRequest {
        call: ModuleCall::new(module, args, ctx, files, None),
        path: path.clone(),
        jid: jid.clone(),
        limit,
    };
    let bytes = rmp_serde::to_vec_named(&request)
        .map_err(|e| format!("cannot encode the job request: {e}"))?;
    let mut cmd = Command::new(exe);
    cmd.arg(JOB_FLAG)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        // Out of the runner's process group: neither the runner's end nor a signal to
        // its group ends the job.
        .process_group(0);
    let mut child = super::tools::spawn_retrying(&mut cmd)
        .map_err(|e| format!("cannot start the background job ({}): {e}", exe.display()))?;
    let sent = child
        .stdin
        .take()
        .map(|mut stdin| stdin.write_all(&bytes))
        .unwrap_or_else(|| Err(std::io::Error::other("no pipe to the job")));
    if let Err(e) = sent {
        let _ = child.kill();
        let _ = child.wait();
        let _ = std::fs::remove_file(&path);
        return Err(format!("cannot hand the module to the background job: {e}"));
    }
    // Reaped when it ends, if the runner is still there.
    let _ = std::thread::Builder::new()
        .name("async-job".into())
        .spawn(move || child.wait());
    let mut result = Vars::new();
    result.insert("failed".into(), false.into());
    result.insert("started".into(), 1.into());
    result.insert("finished".into(), 0.into());
    result.insert("ansible_job_id".into(), jid.clone().into());
    result.insert("results_file".into(), path.display().to_string().into());
    // Ansible marks every job it starts as changed ("for backwards compat").
    result.insert("changed".into(), true.into());
    Ok((Started { jid, path }, result))
}

/// The `--async-job` mode: reads a [`JobRequest`] on standard input, runs the module
/// for at most its limit and writes its result as the job's status. Returns the exit
/// code.
pub fn job_main(extra: &[OsString]) -> i32 {
    if !extra.is_empty() {
        eprintln!("rustle-runner: {JOB_FLAG} takes no arguments");
        return crate::exit::USAGE;
    }
    let mut input = Vec::new();
    if let Err(e) = std::io::stdin()
        .lock()
        .take(REQUEST_LIMIT)
        .read_to_end(&mut input)
    {
        eprintln!("rustle-runner: {JOB_FLAG}: cannot read the request: {e}");
        return crate::exit::INTERNAL;
    }
    let request: JobRequest = match rmp_serde::from_slice(&input) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("rustle-runner: {JOB_FLAG}: not a job request: {e}");
            return crate::exit::USAGE;
        }
    };
    let (tx, rx) = std::sync::mpsc::channel();
    let path = request.path.clone();
    let limit = request.limit;
    let worker = std::thread::Builder::new()
        .name("async-module".into())
        .spawn(move || {
            let _ = tx.send(run_request(&request));
        });
    let status = match worker {
        Err(e) => json!({"failed": 1, "msg": format!("cannot start the module: {e}")}),
        Ok(_) => match rx.recv_timeout(Duration::from_secs(limit)) {
            Ok(result) => Value::Object(result),
            // The module's processes run under watchdogs that end them when this
            // process ends, which it does right after recording the timeout.
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => json!({
                "msg": "Timeout exceeded",
                "failed": true,
                "child_pid": std::process::id(),
            }),
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                json!({"failed": 1, "msg": "the module ended without a result"})
            }
        },
    };
    match write_status(&path, &status) {
        Ok(()) => crate::exit::OK,
        Err(e) => {
            eprintln!("rustle-runner: {JOB_FLAG}: {e}");
            crate::exit::INTERNAL
        }
    }
}

/// Runs the job's module here and gives its result as the executor registers it.
fn run_request(request: &JobRequest) -> Vars {
    let module = request.call.module();
    let mut result = match request.call.run() {
        Ok(o) => crate::exec::outcome_to_result(o),
        Err(ModuleError::BadArgs(m)) => failed(format!("{module}: {m}")),
        Err(e @ ModuleError::Unsupported(_)) => failed(e.to_string()),
    };
    if !result.contains_key("ansible_job_id") && result.get("failed").is_some_and(truthy) {
        result.insert("ansible_job_id".into(), request.jid.clone().into());
    }
    result
}

fn failed(msg: String) -> Vars {
    let mut r = Vars::new();
    r.insert("changed".into(), false.into());
    r.insert("failed".into(), true.into());
    r.insert("msg".into(), msg.into());
    r
}

/// Python's truth of a JSON value (`failed: 1` is a failure).
fn truthy(v: &Value) -> bool {
    match v {
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Null => false,
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

/// What `async_status` (status mode) returns for job `jid` whose file is `path`: the
/// action's defaults, under what Ansible's module reads from the file.
pub fn status(jid: &str, path: &Path) -> Vars {
    let mut r = Vars::new();
    r.insert("started".into(), 1.into());
    r.insert("finished".into(), 0.into());
    r.insert("stdout".into(), "".into());
    r.insert("stderr".into(), "".into());
    r.insert("stdout_lines".into(), json!([]));
    r.insert("stderr_lines".into(), json!([]));
    r.insert("ansible_job_id".into(), jid.into());
    r.insert("results_file".into(), path.display().to_string().into());
    r.insert("changed".into(), false.into());
    r.insert("failed".into(), false.into());
    let text = match std::fs::read(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            r.insert("failed".into(), true.into());
            r.insert("finished".into(), 1.into());
            r.insert("msg".into(), "could not find job".into());
            return r;
        }
        Err(e) => {
            r.insert("failed".into(), true.into());
            r.insert("finished".into(), 1.into());
            r.insert(
                "msg".into(),
                format!("cannot read {}: {e}", path.display()).into(),
            );
            return r;
        }
    };
    let mut data = match serde_json::from_slice::<Value>(&text) {
        Ok(Value::Object(d)) => d,
        // Not written yet (Ansible's wrapper writes in place; ours never leaves half a
        // file, but an empty one may be another tool's): the job is running.
        _ if text.iter().all(u8::is_ascii_whitespace) => return r,
        _ => {
            r.insert("failed".into(), true.into());
            r.insert("finished".into(), 1.into());
            r.insert(
                "msg".into(),
                format!(
                    "Could not parse job output: {}",
                    String::from_utf8_lossy(&text)
                )
                .into(),
            );
            return r;
        }
    };
    if !data.contains_key("started") {
        data.insert("finished".into(), 1.into());
        data.insert("ansible_job_id".into(), jid.into());
    } else if !data.contains_key("finished") {
        data.insert("finished".into(), 0.into());
    }
    for key in ["stdout", "stderr"] {
        let lines = format!("{key}_lines");
        if let Some(text) = data.get(key)
            && !data.contains_key(&lines)
        {
            let split: Vec<Value> = text
                .as_str()
                .unwrap_or_default()
                .lines()
                .map(|l| Value::String(l.to_string()))
                .collect();
            data.insert(lines, Value::Array(split));
        }
    }
    for key in ["changed", "failed"] {
        if let Some(v) = data.shift_remove(key) {
            r.insert(key.into(), truthy(&v).into());
        }
    }
    r.extend(data);
    r
}

/// Whether a status says the job is over (Ansible's poll loop: finished, or failed).
pub fn is_over(status: &Vars) -> bool {
    status.get("finished").is_some_and(truthy)
        || status.get("failed").is_some_and(truthy)
        || status.contains_key("skipped")
}

/// Polls job `job` every `poll` seconds for at most `limit` seconds, as Ansible's task
/// executor does; the finished job's result, its status file removed, or the timeout
/// failure with the last status. `stop` is asked between polls (the deployer went
/// away).
pub fn wait(job: &Started, limit: u64, poll: u64, stop: &dyn Fn() -> bool) -> Vars {
    let mut left = limit as i64;
    let mut last = status(&job.jid, &job.path);
    while left > 0 {
        std::thread::sleep(Duration::from_secs(poll));
        last = status(&job.jid, &job.path);
        if is_over(&last) || stop() {
            break;
        }
        left = left.saturating_sub(poll as i64);
    }
    if !last.get("finished").is_some_and(truthy) {
        let mut r = failed(format!(
            "async task did not complete within the requested time - {limit}s"
        ));
        r.insert("async_result".into(), Value::Object(last));
        return r;
    }
    let _ = std::fs::remove_file(&job.path);
    last
}

/// The `async_status` module: `jid` and `mode` (`status`, `cleanup`).
pub fn run(args: &Vars, ctx: &Ctx<'_>) -> Result<Outcome, ModuleError> {
    let jid = match args.get("jid") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        Some(other) => {
            return Err(ModuleError::BadArgs(format!(
                "jid must be a string, found {other}"
            )));
        }
        None => {
            return Err(ModuleError::BadArgs(
                "missing required arguments: jid".into(),
            ));
        }
    };
    let mode = match args.get("mode").and_then(Value::as_str) {
        None | Some("status") => "status",
        Some("cleanup") => "cleanup",
        Some(other) => {
            return Err(ModuleError::BadArgs(format!(
                "value of mode must be one of: status, cleanup, got: {other}"
            )));
        }
    };
    if jid.contains('/') || jid.is_empty() || jid.starts_with('.') {
        return Err(ModuleError::BadArgs(format!("not a job id: {jid}")));
    }
    let path = async_dir(ctx.vars).join(&jid);
    let data = if mode == "cleanup" {
        let mut r = Vars::new();
        r.insert("started".into(), 0.into());
        r.insert("finished".into(), 0.into());
        r.insert("stdout".into(), "".into());
        r.insert("stderr".into(), "".into());
        r.insert("stdout_lines".into(), json!([]));
        r.insert("stderr_lines".into(), json!([]));
        r.insert("ansible_job_id".into(), jid.clone().into());
        r.insert("erased".into(), path.display().to_string().into());
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                r.insert("started".into(), 1.into());
                r.insert("finished".into(), 1.into());
                r.insert("failed".into(), true.into());
                r.insert("msg".into(), "could not find job".into());
            }
            Err(e) => {
                r.insert("failed".into(), true.into());
                r.insert(
                    "msg".into(),
                    format!("cannot remove {}: {e}", path.display()).into(),
                );
            }
        }
        r
    } else {
        status(&jid, &path)
    };
    Ok(into_outcome(data))
}

/// A registered result as an [`Outcome`] (the executor turns it back).
fn into_outcome(mut data: Vars) -> Outcome {
    let flag = |d: &mut Vars, k: &str| d.shift_remove(k).is_some_and(|v| truthy(&v));
    let changed = flag(&mut data, "changed");
    let failed = flag(&mut data, "failed");
    let skipped = flag(&mut data, "skipped");
    let msg = match data.shift_remove("msg") {
        Some(Value::String(s)) => Some(s),
        Some(Value::Null) | None => None,
        Some(other) => Some(other.to_string()),
    };
    Outcome {
        changed,
        failed,
        skipped,
        msg,
        data,
        diff: Vec::new(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn status_reads_a_finished_result_as_ansible_does() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j1.2");
        std::fs::write(&path, r#"{"changed": true, "rc": 0, "stdout": "a\nb"}"#).unwrap();
        let s = status("j1.2", &path);
        assert_eq!(s["finished"], 1);
        assert_eq!(s["started"], 1);
        assert_eq!(s["changed"], true);
        assert_eq!(s["stdout_lines"], json!(["a", "b"]));
        assert_eq!(s["ansible_job_id"], "j1.2");
        assert!(is_over(&s));
    }

    #[test]
    fn status_of_a_running_job_and_of_no_job() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j1.2");
        std::fs::write(
            &path,
            r#"{"started": 1, "finished": 0, "ansible_job_id": "j1.2"}"#,
        )
        .unwrap();
        let s = status("j1.2", &path);
        assert_eq!(s["finished"], 0);
        assert!(!is_over(&s));
        let gone = status("j9.9", &dir.path().join("j9.9"));
        assert_eq!(gone["msg"], "could not find job");
        assert_eq!(gone["failed"], true);
    }

    #[test]
    fn a_home_relative_async_dir_is_under_home() {
        let home = std::env::var("HOME").unwrap_or_default();
        if home.is_empty() {
            return;
        }
        assert_eq!(
            expand_home("~/.ansible_async"),
            Path::new(&home).join(".ansible_async")
        );
        assert_eq!(expand_home("/var/x"), Path::new("/var/x"));
        assert_eq!(expand_home("~other/x"), Path::new("~other/x"));
    }
}
