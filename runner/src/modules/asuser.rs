//! Modules for a task whose `become_user` is not the runner's user run in a child runner
//! process with that user's identity, so the kernel checks that user's permissions and
//! new files are that user's, as when Ansible runs the module as that user.
//!
//! The runner cannot switch identity for part of its own work (std has no safe
//! `fork` without `exec`, and `unsafe` is forbidden), so it starts its own executable again
//! with `Command::uid`/`gid` and the hidden `--module-child` mode ([`CHILD_FLAG`]). The
//! parent sends one [`ModuleCall`] on the child's standard input (MessagePack) and reads one
//! [`Reply`] from its standard output; the child runs the very same [`super::run`] with a
//! [`Ctx`] built from the call (as an async job's process does).
//!
//! The runner usually lives in a 0700 release directory the other user cannot enter, so
//! the first such task of a run copies the executable, once, into a fresh directory:
//! root-owned, mode 0711 (others may enter it, not list or change it), the copy
//! root-owned and 0555 with the payload section zeroed (the copy carries no plan, no
//! secrets). The directory is removed when the run ends. Where it goes is checked by
//! starting the copy as the task's user: the temp directory first, then `/tmp` and
//! `/var/tmp`, then the deepest root-owned directory every user may pass through on the
//! way to the runner itself (`/var/lib` for a release under `/var/lib/rustle`), which is
//! on a filesystem that runs programs: the runner runs from it. So a host whose temp
//! directories are mounted `noexec`, or whose `TMPDIR` is private to root, still runs
//! these tasks.
//!
//! On macOS the payload of a Mach-O runner cannot be zeroed (the code signature covers
//! it): that copy keeps its payload and is 0511, which others may run but not read.
//!
//! The child runs in a process group of its own, ended with whatever it started when
//! the deployer goes away or this runner dies, and at most [`REPLY_LIMIT`] bytes of what
//! it says are read into memory: it runs as the other user, who may make it do anything
//! (ptrace it), and must not be able to stall or exhaust the root runner.
//!
//! What the child is given is what Ansible gives a module it runs as that user: the
//! rendered arguments, the task's environment and the embedded files the arguments name.
//! A template is rendered here, by the runner that holds the variables (Ansible renders it
//! on the controller), and only its text travels: the child never sees the host's
//! variables, which may hold secrets.
//!
//! std drops every supplementary group when root sets a child's uid (it calls
//! `setgroups(0)`), and setting the user's own groups needs the unstable
//! `CommandExt::groups`: the child has the user's uid and primary group only. That can
//! refuse what a group membership would allow, never allow more.

use super::tools::{self, PrivateDir};
use super::{Ctx, ModuleError, Outcome, fsutil, template};
use crate::plan::{HostFile, Vars};
use crate::privilege::RunAs;
use crate::template::Engine;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The hidden first argument that makes a runner serve one module request.
pub const CHILD_FLAG: &str = "--module-child";

/// The most of a failed child's standard error a task's message quotes.
const STDERR_SHOWN: usize = 2000;

/// The most bytes of a child's answer (and of its standard error) read into memory.
/// A module's result is small; a `find` over a large tree registers a few MiB.
const REPLY_LIMIT: usize = 64 << 20;

/// One module call made by another process of this runner (a child running as the
/// task's user, or an async job): what the module needs, and none of the task's other
/// variables.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct ModuleCall {
    /// The module's name.
    module: String,
    /// Its rendered arguments.
    args: Vars,
    /// Check mode.
    check_mode: bool,
    /// Diff mode.
    diff_mode: bool,
    /// The task's `environment`, for the processes the module starts.
    env: Vec<(String, String)>,
    /// The embedded files the arguments name (`src`, or a directory's files under it).
    files: BTreeMap<String, HostFile>,
    /// The directories and links of a directory `src` (copy of an embedded tree).
    #[serde(default)]
    layout: crate::plan::Layout,
    /// For `template`: the rendered text, written instead of rendering again.
    rendered: Option<String>,
    /// The few variables modules read as settings (see [`SETTINGS`]), when the task has them.
    #[serde(default)]
    settings: Vars,
}

impl ModuleCall {
    /// The call of `module` with `args` under `ctx`, carrying `files` and, for a
    /// template, its `rendered` text.
    pub(super) fn new(
        module: &str,
        args: &Vars,
        ctx: &Ctx<'_>,
        files: BTreeMap<String, HostFile>,
        rendered: Option<String>,
    ) -> Self {
        Self {
            module: module.to_string(),
            args: args.clone(),
            check_mode: ctx.check_mode,
            diff_mode: ctx.diff_mode,
            env: ctx.env.to_vec(),
            files,
            layout: layout_named(args, ctx.layout),
            rendered,
            settings: settings(ctx),
        }
    }

    /// The module's name.
    pub(super) fn module(&self) -> &str {
        &self.module
    }

    /// Runs the module in this process, as whoever this process is.
    pub(super) fn run(&self) -> Result<Outcome, ModuleError> {
        let engine = Engine::new();
        // A template arrives rendered; modules read only their settings from variables.
        let vars = minijinja::Value::from_serialize(&self.settings);
        let ctx = Ctx {
            check_mode: self.check_mode,
            diff_mode: self.diff_mode,
            files: &self.files,
            layout: &self.layout,
            engine: &engine,
            vars: &vars,
            env: &self.env,
            // This process already is the task's user (or the job's).
            run_as: None,
        };
        match (&self.rendered, self.module.as_str()) {
            (Some(text), "template") => template::run_rendered(&self.args, text, &ctx),
            _ => super::run(&self.module, &self.args, &ctx),
        }
    }
}

/// Variables a module itself reads from the task's variables (not from its arguments):
/// only these cross to the child, never the task's other variables.
const SETTINGS: &[&str] = &[super::archive::MAX_VAR];

/// The task's values of [`SETTINGS`].
pub(super) fn settings(ctx: &Ctx<'_>) -> Vars {
    SETTINGS
        .iter()
        .filter_map(|name| {
            let v = ctx.vars.get_attr(name).ok()?;
            if v.is_undefined() {
                return None;
            }
            Some((name.to_string(), serde_json::to_value(&v).ok()?))
        })
        .collect()
}

/// What the module answered.
#[derive(Debug, Serialize, Deserialize)]
enum Reply {
    /// The module ran (successfully or not).
    Done(Outcome),
    /// [`ModuleError::BadArgs`].
    BadArgs(String),
    /// [`ModuleError::Unsupported`].
    Unsupported(String),
}

/// Where child processes come from: the copy of a runner executable made for this run.
#[derive(Default)]
pub(super) struct Children {
    /// The executable to copy; `None` for this process's own.
    source: Option<PathBuf>,
    /// The copies made, and the users known to be able to start each.
    copies: Vec<(RunnerCopy, Vec<u32>)>,
}

impl std::fmt::Debug for Children {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Children")
            .field("source", &self.source)
            .field(
                "copies",
                &self.copies.iter().map(|(c, _)| &c.exe).collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// A runner executable other users may start but not change.
struct RunnerCopy {
    /// Removed, with the copy, when the run ends.
    _dir: PrivateDir,
    exe: PathBuf,
}

impl Children {
    /// Children started from a copy of `runner` instead of this process's executable.
    pub(super) fn from(runner: PathBuf) -> Children {
        Children {
            source: Some(runner),
            copies: Vec::new(),
        }
    }

    /// The runner executable children start from: the one given, or this process's.
    pub(super) fn source(&self) -> io::Result<PathBuf> {
        match &self.source {
            Some(p) => Ok(p.clone()),
            None => crate::locate::own_executable().map_err(io::Error::other),
        }
    }

    /// Runs `module` as `who` in a child runner. Whatever goes wrong with the child
    /// (it cannot start, dies, answers nonsense) is a failed task naming the module and
    /// the user, never an error of the runner itself.
    pub(super) fn run(
        &mut self,
        module: &str,
        args: &Vars,
        ctx: &Ctx<'_>,
        who: &RunAs,
    ) -> Result<Outcome, ModuleError> {
        let mut rendered = None;
        if module == "template" {
            // Argument errors come first, as the module reports them; then rendering,
            // here, where the variables are.
            let checked =
                template::parse(args).and_then(|t| template::render(&t, ctx).map(|text| (t, text)));
            match checked {
                Ok((_, text)) => rendered = Some(text),
                Err(stop) => return fsutil::finish(Err(stop)),
            }
        }
        let files = if rendered.is_some() {
            BTreeMap::new()
        } else {
            files_named(args, ctx.files)
        };
        let request = ModuleCall::new(module, args, ctx, files, rendered);
        let failed = |what: String| {
            Ok(Outcome::fail(format!(
                "{module} as user '{}': {what}",
                who.user
            )))
        };
        let exe = match self.executable(who) {
            Ok(p) => p.to_path_buf(),
            Err(e) => {
                return failed(format!(
                    "cannot prepare the runner to start as that user: {e}"
                ));
            }
        };
        let bytes = match rmp_serde::to_vec_named(&request) {
            Ok(b) => b,
            Err(e) => return failed(format!("cannot encode the module request: {e}")),
        };
        let output = match exchange(&exe, who, bytes) {
            Ok(tools::Ran::Done(o)) => o,
            Ok(tools::Ran::Stopped) => {
                return failed(
                    "stopped: the deployer went away, so the runner ended the module process"
                        .to_string(),
                );
            }
            Err(e) => {
                return failed(format!(
                    "the module process ({}) could not start: {e}",
                    exe.display()
                ));
            }
        };
        if output.dropped > 0 {
            return failed(format!(
                "the module process said more than {} MiB; it was not read further, and nothing it said is used",
                REPLY_LIMIT >> 20
            ));
        }
        if !output.status.success() {
            let how = match (output.status.code(), output.status.signal()) {
                (Some(code), _) => format!("exited with code {code}"),
                (None, Some(sig)) => format!("was killed by signal {sig}"),
                (None, None) => "ended abnormally".to_string(),
            };
            return failed(format!(
                "the module process {how}{}",
                stderr_note(&output.stderr)
            ));
        }
        match rmp_serde::from_slice::<Reply>(&output.stdout) {
            Ok(Reply::Done(outcome)) => Ok(outcome),
            Ok(Reply::BadArgs(msg)) => Err(ModuleError::BadArgs(msg)),
            Ok(Reply::Unsupported(name)) => Err(ModuleError::Unsupported(name)),
            Err(e) => failed(format!(
                "the module process answered something that is not a module result ({e}){}",
                stderr_note(&output.stderr)
            )),
        }
    }

    /// A copy of the runner `who` can start, made on first use (and again, elsewhere,
    /// for a user who cannot start the first one).
    fn executable(&mut self, who: &RunAs) -> io::Result<&Path> {
        let mut usable = None;
        for (i, (copy, users)) in self.copies.iter_mut().enumerate() {
            if users.contains(&who.uid) {
                usable = Some(i);
                break;
            }
            if can_start(&copy.exe, who).is_ok() {
                users.push(who.uid);
                usable = Some(i);
                break;
            }
        }
        let i = match usable {
            Some(i) => i,
            None => {
                let copy = RunnerCopy::make(self.source.as_deref(), who)?;
                self.copies.push((copy, vec![who.uid]));
                self.copies.len().saturating_sub(1)
            }
        };
        match self.copies.get(i) {
            Some((c, _)) => Ok(&c.exe),
            None => Err(io::Error::other("no runner copy")),
        }
    }
}

impl RunnerCopy {
    /// Copies `source` (or this process's executable) into a fresh directory that other
    /// users may enter but not list, as an executable they may start but not change, in
    /// the first of [`places`] where `who` can start it.
    fn make(source: Option<&Path>, who: &RunAs) -> io::Result<RunnerCopy> {
        let own;
        let from = match source {
            Some(p) => p,
            None => {
                own = crate::locate::own_executable().map_err(io::Error::other)?;
                own.as_path()
            }
        };
        let mut bytes = Vec::new();
        if let Err(e) = File::open(from).and_then(|mut f| f.read_to_end(&mut bytes)) {
            let what = source.map_or_else(
                || "its own executable".to_string(),
                |p| p.display().to_string(),
            );
            return Err(io::Error::new(e.kind(), format!("cannot read {what}: {e}")));
        }
        let mode = blank_payload(&mut bytes);
        let mut refused = Vec::new();
        for base in places(from) {
            let made = PrivateDir::new_in(&base, "become", 0o711).and_then(|dir| {
                let exe = dir.write("rustle-runner", &bytes, mode)?;
                Ok(RunnerCopy { _dir: dir, exe })
            });
            let copy = match made {
                Ok(c) => c,
                Err(e) => {
                    refused.push(format!("{}: {e}", base.display()));
                    continue;
                }
            };
            match can_start(&copy.exe, who) {
                Ok(()) => return Ok(copy),
                // Dropping the copy removes its directory.
                Err(e) => refused.push(format!("{}: {e}", base.display())),
            }
        }
        Err(io::Error::other(format!(
            "found no directory from which user '{}' can start a copy of the runner ({})",
            who.user,
            refused.join("; ")
        )))
    }
}

/// Where a runner copy may go, in order: the temp directory, `/tmp`, `/var/tmp`, and the
/// deepest directory on the way to `exe` that is root's, changed by no one else and
/// passable by everyone (see the module's documentation).
fn places(exe: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = Vec::new();
    let beside = passable_ancestor(exe);
    for p in [
        Some(std::env::temp_dir()),
        Some(PathBuf::from("/tmp")),
        Some(PathBuf::from("/var/tmp")),
        beside,
    ]
    .into_iter()
    .flatten()
    {
        if !out.contains(&p) {
            out.push(p);
        }
    }
    out
}

/// The deepest directory (other than `/`) on the real path to `exe` such that it and
/// every directory above it are root's, writable by no one else, and passable by all.
fn passable_ancestor(exe: &Path) -> Option<PathBuf> {
    use std::os::unix::fs::MetadataExt as _;
    let real = fs::canonicalize(exe).ok()?;
    let mut at = PathBuf::new();
    let mut best = None;
    for part in real.parent()?.components() {
        at.push(part);
        let ok = fs::metadata(&at).is_ok_and(|m| {
            m.is_dir() && m.uid() == 0 && m.mode() & 0o022 == 0 && m.mode() & 0o001 != 0
        });
        if !ok {
            break;
        }
        if at.parent().is_some() {
            best = Some(at.clone());
        }
    }
    best
}

/// Whether `who` can start `exe` where it is: it is started, and ended at once (std
/// reports a failed exec from `spawn` itself, so a started process has shown what was
/// to be shown). Only a refusal to start it counts against the place: a `noexec` mount
/// or a directory on the way that `who` may not pass (both "permission denied").
/// Anything else is for the real exchange to report.
fn can_start(exe: &Path, who: &RunAs) -> io::Result<()> {
    let mut cmd = Command::new(exe);
    cmd.arg(CHILD_FLAG)
        .uid(who.uid)
        .gid(who.gid)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    match tools::spawn_retrying(&mut cmd) {
        Ok(mut child) => {
            let _ = child.kill();
            let _ = child.wait();
            Ok(())
        }
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => Err(e),
        Err(_) => Ok(()),
    }
}

/// Zeroes the payload of an ELF runner image (the plan, with whatever secrets its
/// variables hold, must not be readable by the user the copy runs as) and returns the
/// mode the copy may have: 0555 when no payload is left in it. A Mach-O payload is
/// covered by the code signature, which must stay intact: that copy is 0511, which
/// other users may execute but not read. Anything else cannot hold a payload.
fn blank_payload(bytes: &mut [u8]) -> u32 {
    const MACHO_64: &[u8] = b"\xcf\xfa\xed\xfe";
    if bytes.starts_with(MACHO_64) {
        return 0o511;
    }
    if !bytes.starts_with(b"\x7fELF") {
        return 0o555;
    }
    let base = bytes.as_ptr().addr();
    let range = match crate::locate::find_payload(bytes) {
        Ok(p) => p
            .as_ptr()
            .addr()
            .checked_sub(base)
            .map(|start| start..start.saturating_add(p.len())),
        // An ELF runner without a payload section (a bare runner given its payload as a
        // file) has nothing to hide.
        Err(crate::locate::LocateError::NoPayload) => return 0o555,
        Err(_) => None,
    };
    match range.and_then(|r| bytes.get_mut(r)) {
        Some(payload) => {
            payload.fill(0);
            0o555
        }
        None => 0o511,
    }
}

/// The embedded files a module's arguments name: `src` itself, or the files of the
/// directory `src` (copy of an embedded tree).
pub(super) fn files_named(
    args: &Vars,
    files: &BTreeMap<String, HostFile>,
) -> BTreeMap<String, HostFile> {
    let Some(src) = args.get("src").and_then(serde_json::Value::as_str) else {
        return BTreeMap::new();
    };
    let under = format!("{}/", src.trim_end_matches('/'));
    files
        .iter()
        .filter(|(k, _)| k.as_str() == src || k.starts_with(&under))
        .map(|(k, f)| (k.clone(), f.clone()))
        .collect()
}

/// The directories and links below a directory `src` the arguments name.
fn layout_named(args: &Vars, layout: &crate::plan::Layout) -> crate::plan::Layout {
    let Some(src) = args.get("src").and_then(serde_json::Value::as_str) else {
        return crate::plan::Layout::default();
    };
    let top = src.trim_end_matches('/');
    let under = format!("{top}/");
    layout.only(|k| k == top || k.starts_with(&under))
}

/// Starts `exe` as `who` in child mode, sends it `request` and collects what it says
/// (see [`REPLY_LIMIT`]), unless the deployer goes away first.
fn exchange(exe: &Path, who: &RunAs, request: Vec<u8>) -> io::Result<tools::Ran> {
    let mut cmd = Command::new(exe);
    cmd.arg(CHILD_FLAG)
        .uid(who.uid)
        .gid(who.gid)
        .env("HOME", &who.home)
        .env("USER", &who.user)
        .env("LOGNAME", &who.user);
    tools::collect(&mut cmd, Some(request), REPLY_LIMIT, true)
}

/// `: <stderr>` for a message, the last part of it when long, or nothing.
fn stderr_note(stderr: &[u8]) -> String {
    let text = String::from_utf8_lossy(stderr);
    let text = text.trim();
    if text.is_empty() {
        return String::new();
    }
    let start = text
        .char_indices()
        .rev()
        .nth(STDERR_SHOWN)
        .map_or(0, |(i, _)| i);
    format!(": {}", text.get(start..).unwrap_or(text))
}

/// The `--module-child` mode: reads one [`ModuleCall`] from standard input, runs the module
/// and writes the [`Reply`] on standard output. Returns the exit code.
///
/// Anyone may start a runner in this mode; it runs the module with the identity of
/// whoever started it, and changes to nothing else. The copy that users other than root
/// start carries no payload and no set-id bit. So it grants a local user nothing that
/// user could not do with a program of their own: it trusts nothing but its caller, over
/// the pipe the caller gave it.
pub fn child_main(extra: &[OsString]) -> i32 {
    if !extra.is_empty() {
        eprintln!("rustle-runner: {CHILD_FLAG} takes no arguments");
        return crate::exit::USAGE;
    }
    let mut input = Vec::new();
    if let Err(e) = io::stdin().lock().read_to_end(&mut input) {
        eprintln!("rustle-runner: {CHILD_FLAG}: cannot read the request: {e}");
        return crate::exit::INTERNAL;
    }
    let request: ModuleCall = match rmp_serde::from_slice(&input) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("rustle-runner: {CHILD_FLAG}: not a module request: {e}");
            return crate::exit::USAGE;
        }
    };
    let reply = serve(&request);
    let bytes = match rmp_serde::to_vec_named(&reply) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("rustle-runner: {CHILD_FLAG}: cannot encode the result: {e}");
            return crate::exit::INTERNAL;
        }
    };
    let mut out = io::stdout().lock();
    if let Err(e) = out.write_all(&bytes).and_then(|()| out.flush()) {
        eprintln!("rustle-runner: {CHILD_FLAG}: cannot send the result: {e}");
        return crate::exit::INTERNAL;
    }
    crate::exit::OK
}

/// Runs the request's module here, as whoever this process is.
fn serve(request: &ModuleCall) -> Reply {
    match request.run() {
        Ok(o) => Reply::Done(o),
        Err(ModuleError::BadArgs(m)) => Reply::BadArgs(m),
        Err(ModuleError::Unsupported(m)) => Reply::Unsupported(m),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn file(text: &str) -> HostFile {
        HostFile {
            content: text.as_bytes().to_vec(),
            mode: None,
        }
    }

    #[test]
    fn only_the_files_the_arguments_name_travel() {
        let files: BTreeMap<String, HostFile> = [
            "files/a.conf",
            "files/a.conf.d/x",
            "files/tree/one",
            "files/tree/sub/two",
            "files/treetop",
            "files/secret.key",
        ]
        .into_iter()
        .map(|k| (k.to_string(), file(k)))
        .collect();
        let names = |args: serde_json::Value| {
            files_named(args.as_object().unwrap(), &files)
                .into_keys()
                .collect::<Vec<_>>()
        };
        assert_eq!(names(json!({"src": "files/a.conf"})), ["files/a.conf"]);
        assert_eq!(
            names(json!({"src": "files/tree/"})),
            ["files/tree/one", "files/tree/sub/two"]
        );
        assert_eq!(
            names(json!({"src": "files/tree"})),
            ["files/tree/one", "files/tree/sub/two"]
        );
        assert!(names(json!({"path": "/etc/x"})).is_empty());
        assert!(names(json!({"src": 3})).is_empty());
    }

    #[test]
    fn requests_and_replies_survive_the_pipe() {
        let request = ModuleCall {
            module: "copy".into(),
            args: json!({"dest": "/x", "content": "é\u{0}"})
                .as_object()
                .unwrap()
                .clone(),
            check_mode: true,
            diff_mode: false,
            env: vec![("A".into(), "b c".into())],
            files: [("f".to_string(), file("\u{1}bytes"))].into(),
            layout: crate::plan::Layout {
                dirs: ["d/empty".to_string()].into(),
                links: [("d/l".to_string(), "../x".to_string())].into(),
                stamps: [(
                    "d/l".to_string(),
                    crate::plan::Stamp {
                        mtime_ns: -1,
                        mode: None,
                    },
                )]
                .into(),
            },
            rendered: None,
            settings: Vars::new(),
        };
        let bytes = rmp_serde::to_vec_named(&request).unwrap();
        let back: ModuleCall = rmp_serde::from_slice(&bytes).unwrap();
        assert_eq!(back.args, request.args);
        assert_eq!(back.files, request.files);
        assert_eq!(back.layout, request.layout);
        assert_eq!((back.check_mode, back.diff_mode), (true, false));
        assert_eq!(back.env, request.env);

        let outcome = Outcome::changed(true)
            .with("n", u64::MAX)
            .with("f", 1.5)
            .with("nested", json!({"a": [1, null, "x"]}))
            .msg("done");
        let bytes = rmp_serde::to_vec_named(&Reply::Done(outcome.clone())).unwrap();
        match rmp_serde::from_slice::<Reply>(&bytes).unwrap() {
            Reply::Done(o) => assert_eq!(o, outcome),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn copies_of_images_without_a_payload_stay_readable_and_others_do_not() {
        // This test binary is ELF without a payload section: nothing to hide, unchanged.
        let own = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        let mut copy = own.clone();
        assert_eq!(blank_payload(&mut copy), 0o555);
        assert!(copy == own);
        // A Mach-O runner, whose payload the code signature covers, keeps its bytes and
        // is not readable by others.
        let mut macho = b"\xcf\xfa\xed\xfe not really".to_vec();
        assert_eq!(blank_payload(&mut macho), 0o511);
        assert_eq!(macho, b"\xcf\xfa\xed\xfe not really");
        // Anything else (a script) cannot carry a payload.
        assert_eq!(blank_payload(&mut b"#!/bin/sh\n".to_vec()), 0o555);
    }
}
