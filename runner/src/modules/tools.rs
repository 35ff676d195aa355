//! Helpers for modules that start processes (the host's tools, a plan's commands, child
//! runners): finding a program where sudo's or cron's short PATH would miss it, the one
//! procedure that starts a process, feeds its input and collects its output, bounded and
//! (for a plan's commands and child runners) stoppable with everything they started
//! ([`collect`]), and private temporary directories for files handed to those tools.

use crate::atomic::{Dir, Finish};
use crate::privilege::RunAs;
use std::ffi::OsStr;
use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Where system tools live besides `$PATH`: the runner may be started with a PATH
/// without the sbin directories (a non-login ssh session, sudo without secure_path).
const SYSTEM_DIRS: &[&str] = &["/usr/local/sbin", "/usr/sbin", "/sbin", "/usr/bin", "/bin"];

/// The full path of an executable named `name`, searched in `$PATH` then the system
/// directories, as Ansible's `get_bin_path` does.
pub(super) fn find_bin(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(SYSTEM_DIRS.iter().map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// What a finished tool printed.
#[derive(Debug, Clone)]
pub(super) struct Output {
    /// Exit status; -1 when killed by a signal.
    pub rc: i32,
    /// Standard output, lossily decoded.
    pub stdout: String,
    /// Standard error, lossily decoded.
    pub stderr: String,
}

/// Runs `program` with `args` (no shell), stdin from `input` (or nothing), and
/// collects its output.
pub(super) fn run(program: &Path, args: &[String], input: Option<&[u8]>) -> io::Result<Output> {
    run_command(Command::new(program), args, input)
}

/// The most bytes kept of each of a process's standard output and error. A host's tool
/// or a plan's command that prints more (a runaway loop, a file cat'ed by mistake)
/// would otherwise take the runner's memory with it, and the run's record with that.
pub(super) const OUTPUT_LIMIT: usize = 64 << 20;

/// [`run`] for a prepared command, e.g. from `Ctx::command` (the task's environment and
/// `become_user`). The host's tools run to their end even when the deployer goes away:
/// a package manager stopped halfway leaves worse than one that finishes.
pub(super) fn run_command(
    mut cmd: Command,
    args: &[String],
    input: Option<&[u8]>,
) -> io::Result<Output> {
    cmd.args(args);
    let out = match collect(&mut cmd, input.map(<[u8]>::to_vec), OUTPUT_LIMIT, false)? {
        Ran::Done(out) => out,
        Ran::Stopped => return Err(io::Error::other("stopped")),
    };
    Ok(Output {
        rc: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}

/// The path of a tool a module requires, or the failure Ansible's
/// `get_bin_path(name, required=True)` gives without it.
pub(super) fn require_bin(name: &str) -> Result<PathBuf, super::Outcome> {
    find_bin(name).ok_or_else(|| {
        super::Outcome::fail(format!(
            "Failed to find required executable \"{name}\" in paths: $PATH, /usr/local/sbin, /usr/sbin, /sbin"
        ))
    })
}

/// Runs a tool for a task as Ansible's `run_command(check_rc=True)`: its output when it
/// exits 0, else the failure that carries its stderr as the message and its `cmd`, `rc`,
/// `stdout` and `stderr`.
pub(super) fn run_checked(
    ctx: &super::Ctx<'_>,
    program: &Path,
    argv: &[String],
) -> Result<Output, super::Outcome> {
    match run_command(ctx.command(program), argv, None) {
        Ok(o) if o.rc == 0 => Ok(o),
        Ok(o) => Err(super::Outcome::fail(o.stderr.trim_end().to_string())
            .with("cmd", shown(program, argv))
            .with("rc", o.rc)
            .with("stdout", o.stdout)
            .with("stderr", o.stderr)),
        Err(e) => Err(super::Outcome::fail(format!("{}: {e}", program.display()))),
    }
}

/// A string as a double-quoted value in a curl config file (`\` and `"` escaped;
/// line breaks are refused before this).
pub(super) fn curl_quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The curl config read on stdin: the URL and the headers, which must not be in argv.
pub(super) fn curl_config(url: &str, headers: &[(String, String)]) -> String {
    let mut conf = format!("url = {}\n", curl_quoted(url));
    for (k, v) in headers {
        conf.push_str(&format!("header = {}\n", curl_quoted(&format!("{k}: {v}"))));
    }
    conf
}

/// What a process that ran to its end said.
#[derive(Debug)]
pub(super) struct Collected {
    /// How it ended.
    pub status: std::process::ExitStatus,
    /// Its standard output, up to the limit.
    pub stdout: Vec<u8>,
    /// Its standard error, up to the limit.
    pub stderr: Vec<u8>,
    /// How many bytes of standard output and error (together) were read past the limit
    /// and dropped.
    pub dropped: u64,
}

/// How [`collect`] ended.
#[derive(Debug)]
pub(super) enum Ran {
    /// The process ended by itself.
    Done(Collected),
    /// The deployer went away, and the process was ended with its process group.
    Stopped,
}

/// Starts `cmd` with `input` on its standard input (fed from a thread, so a process that
/// writes before it reads cannot deadlock against us; `None`: no standard input),
/// collects its standard output and error (at most `limit` bytes of each kept, the rest
/// read and dropped, so it never blocks on a full pipe) and waits for it.
///
/// A `stoppable` process (a plan's command, a `become_user` child runner) runs in a
/// process group of its own, watched by a small `sh` that ends the whole group (the
/// process and whatever it started that stayed in the group) when told to or when this
/// runner dies, however it dies; it is told to when the deployer that started this runner
/// goes away ([`crate::events::deployer_gone`]): nobody waits for the output any more.
/// A process that ends by itself leaves what it started running (a service a command
/// launched in the background), as under Ansible.
pub(super) fn collect(
    cmd: &mut Command,
    input: Option<Vec<u8>>,
    limit: usize,
    stoppable: bool,
) -> io::Result<Ran> {
    use std::os::unix::process::CommandExt as _;
    use std::sync::mpsc;
    cmd.stdin(if input.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut watchdog = if stoppable { Watchdog::start() } else { None };
    if let Some(w) = &watchdog {
        cmd.process_group(w.pgid);
    }
    let mut child = match spawn_retrying(cmd) {
        Ok(c) => c,
        Err(e) => match watchdog.take() {
            // The group may be what failed (its watchdog gone): a group of its own then,
            // which the runner still ends when it stops (not when it dies).
            Some(w) => {
                w.release();
                cmd.process_group(0);
                spawn_retrying(cmd)?
            }
            None => return Err(e),
        },
    };
    let feeder = match (input, child.stdin.take()) {
        (Some(bytes), Some(mut pipe)) => Some(std::thread::spawn(move || {
            // A process that exits without reading closes the pipe: its status says why.
            let _ = pipe.write_all(&bytes);
        })),
        _ => None,
    };
    let (done, finished) = mpsc::channel::<()>();
    let reader = |pipe: Option<Box<dyn io::Read + Send>>| {
        let done = done.clone();
        let kept = Arc::new(Captured::default());
        let filled = Arc::clone(&kept);
        std::thread::spawn(move || {
            if let Some(p) = pipe {
                read_capped(p, limit, &filled);
            }
            let _ = done.send(());
        });
        kept
    };
    let out = reader(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn io::Read + Send>),
    );
    let err = reader(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn io::Read + Send>),
    );
    drop(done);
    // The readers wake this wait as soon as the process closes its output, so a short
    // process costs no polling delay; only a long one is looked at four times a second.
    // A process that has exited while something it started in the background still
    // holds its output open is done once nothing more came for a second, as Ansible's
    // run_command decides (`select(1)` finding nothing after `poll()` says it ended).
    let mut open = 2;
    let mut exited: Option<std::process::ExitStatus> = None;
    let mut quiet_since: Option<(std::time::Instant, u64)> = None;
    while open > 0 {
        match finished.recv_timeout(std::time::Duration::from_millis(250)) {
            Ok(()) => open -= 1,
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if stoppable && (crate::events::deployer_gone() || crate::deadline::passed()) {
                    match watchdog.take() {
                        Some(w) => w.end_group(),
                        None => {
                            let _ = child.kill();
                        }
                    }
                    let _ = child.wait();
                    // The readers and the feeder end when whatever still holds the
                    // pipes does; they are not waited for.
                    return Ok(Ran::Stopped);
                }
                if exited.is_none() {
                    exited = child.try_wait()?;
                }
                if exited.is_some() {
                    let seen = out.seen().saturating_add(err.seen());
                    match quiet_since {
                        Some((since, before)) if before == seen => {
                            if since.elapsed() >= std::time::Duration::from_secs(1) {
                                break;
                            }
                        }
                        _ => quiet_since = Some((std::time::Instant::now(), seen)),
                    }
                }
            }
        }
    }
    let status = match exited {
        Some(s) => s,
        None => child.wait()?,
    };
    if let Some(w) = watchdog {
        w.release();
    }
    if let Some(f) = feeder
        && (open == 0 || f.is_finished())
    {
        let _ = f.join();
    }
    let (stdout, out_dropped) = out.take();
    let (stderr, err_dropped) = err.take();
    Ok(Ran::Done(Collected {
        status,
        stdout,
        stderr,
        dropped: out_dropped.saturating_add(err_dropped),
    }))
}

/// What a reader thread has read of one pipe so far: shared, so a process whose
/// background children keep the pipe open can be finished without waiting for them.
#[derive(Default)]
struct Captured {
    /// The bytes kept and how many were dropped past the limit.
    bytes: Mutex<(Vec<u8>, u64)>,
    /// How many reads returned data (to see that nothing more is coming).
    reads: AtomicU64,
}

impl Captured {
    fn seen(&self) -> u64 {
        self.reads.load(Ordering::Relaxed)
    }

    fn take(&self) -> (Vec<u8>, u64) {
        match self.bytes.lock() {
            Ok(mut g) => std::mem::take(&mut *g),
            Err(poisoned) => std::mem::take(&mut *poisoned.into_inner()),
        }
    }
}

/// Reads `pipe` to its end into `into`, keeping the first `limit` bytes and counting
/// how many more were read and dropped.
fn read_capped(mut pipe: impl io::Read, limit: usize, into: &Captured) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match pipe.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                let mut g = match into.bytes.lock() {
                    Ok(g) => g,
                    Err(poisoned) => poisoned.into_inner(),
                };
                let (kept, dropped) = &mut *g;
                let take = n.min(limit.saturating_sub(kept.len()));
                kept.extend_from_slice(buf.get(..take).unwrap_or_default());
                *dropped = dropped.saturating_add((n - take) as u64);
                drop(g);
                into.reads.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
}

/// What the watchdog of a stoppable process runs: it waits for one line on its standard
/// input, and unless that line is `done`, kills its whole process group, itself and the
/// watched process included. The runner's end of that pipe closes when the runner ends,
/// however it ends (a kill, the deployer's own timeout ending its process group), so the
/// watched process never outlives a runner that did not see it finish. std cannot
/// signal a process group (that needs unsafe code or a C library binding); the shell's
/// `kill` builtin can.
const WATCHDOG: &str = "read -r w; [ \"$w\" = done ] || kill -s KILL 0";

/// The process-group leader that ends a stoppable process's group (see [`collect`]).
struct Watchdog {
    child: std::process::Child,
    /// Closing it without writing `done` ends the group.
    order: Option<std::process::ChildStdin>,
    pgid: i32,
}

impl Watchdog {
    /// Starts one, in a new process group; `None` when it cannot be started (the
    /// process then gets a group of its own, ended by the runner when it stops).
    fn start() -> Option<Watchdog> {
        use std::os::unix::process::CommandExt as _;
        let mut child = Command::new("/bin/sh")
            .arg("-c")
            .arg(WATCHDOG)
            .process_group(0)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        let order = child.stdin.take();
        match i32::try_from(child.id()) {
            Ok(pgid) if order.is_some() => Some(Watchdog { child, order, pgid }),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                None
            }
        }
    }

    /// The watched process ended by itself: the watchdog leaves the group alone.
    fn release(mut self) {
        if let Some(mut order) = self.order.take() {
            let _ = order.write_all(b"done\n");
        }
        let _ = self.child.wait();
    }

    /// Kills the whole group.
    fn end_group(mut self) {
        self.order = None;
        let _ = self.child.wait();
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        // Dropped without a word (an early return): the group goes, as when the runner
        // dies. After release or end_group the watchdog is gone already, and std keeps
        // its exit status, so this waits for nothing.
        self.order = None;
        let _ = self.child.wait();
    }
}

/// Spawns `cmd`, retrying while the program is "busy" (ETXTBSY): a file this process
/// has just written can still be open for writing in a child another thread forked
/// and has not yet exec'd; that lasts microseconds.
pub(super) fn spawn_retrying(cmd: &mut Command) -> io::Result<std::process::Child> {
    let mut attempt = 0;
    loop {
        match cmd.spawn() {
            Err(e) if e.kind() == io::ErrorKind::ExecutableFileBusy && attempt < 100 => {
                attempt += 1;
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            other => return other,
        }
    }
}

/// An argument vector from literal words.
pub(super) fn argv(words: &[&str]) -> Vec<String> {
    words.iter().map(|w| w.to_string()).collect()
}

/// Python's `shlex.quote`: a word left as it is when it holds only safe characters,
/// else single-quoted; for command lines shown as modules show them.
pub(super) fn shlex_quote(s: &str) -> String {
    let safe = |c: char| c.is_ascii_alphanumeric() || "_@%+=:,./-".contains(c);
    if !s.is_empty() && s.chars().all(safe) {
        s.to_string()
    } else {
        super::script::quote(s)
    }
}

/// The command line as one string, for messages.
pub(super) fn shown(program: &Path, args: &[String]) -> String {
    std::iter::once(program.display().to_string())
        .chain(args.iter().cloned())
        .collect::<Vec<_>>()
        .join(" ")
}

/// A fresh 0700 directory under the system temp directory that only this user can
/// enter, removed (with what is inside) when dropped. It is held open from its creation
/// on, and files are written into it through that descriptor ([`crate::atomic`]), so a
/// `become_user` who owns it and renames it away, leaving a symlink at its name, does
/// not redirect root's next write.
pub(super) struct PrivateDir {
    path: PathBuf,
    dir: Dir,
    /// Who gets the directory and its files (uid, gid): the task's `become_user`.
    owner: Option<(u32, u32)>,
}

impl PrivateDir {
    /// Creates the directory in the system temp directory with an unpredictable name.
    pub(super) fn new(prefix: &str) -> io::Result<PrivateDir> {
        PrivateDir::new_in(&std::env::temp_dir(), prefix, 0o700)
    }

    /// Creates `base/rustle-<prefix>-<random>` with `mode` (set on its descriptor, so the
    /// umask does not apply), refusing to reuse anything that already exists.
    pub(super) fn new_in(base: &Path, prefix: &str, mode: u32) -> io::Result<PrivateDir> {
        let mut attempt = 0;
        loop {
            let path = base.join(format!("rustle-{prefix}-{}", crate::random::tag()));
            match fs::DirBuilder::new().mode(0o700).create(&path) {
                Ok(()) => {
                    let made = PrivateDir {
                        dir: Dir::open(&path)?,
                        path,
                        owner: None,
                    };
                    made.dir.set_mode(mode).map_err(io::Error::from)?;
                    return Ok(made);
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists && attempt < 8 => {
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Like [`PrivateDir::new`], owned by the task's `become_user` when it has one, so
    /// the process that runs as that user can read what is written here.
    pub(super) fn for_task(prefix: &str, run_as: Option<&RunAs>) -> io::Result<PrivateDir> {
        let mut dir = PrivateDir::new(prefix)?;
        if let Some(who) = run_as {
            // Through the descriptor: the name is only ours until the chown.
            std::os::unix::fs::fchown(dir.dir.file(), Some(who.uid), Some(who.gid))?;
            dir.owner = Some((who.uid, who.gid));
        }
        Ok(dir)
    }

    /// Writes the file `name` in the directory with `mode` (owned by the directory's
    /// owner), replacing what is there, and returns its path.
    pub(super) fn write(&self, name: &str, content: &[u8], mode: u32) -> io::Result<PathBuf> {
        let name = OsStr::new(name);
        let mut new = self.dir.new_file(name)?;
        new.file().write_all(content)?;
        new.place(
            name,
            &Finish {
                mode,
                uid: self.owner.map(|(u, _)| u),
                gid: self.owner.map(|(_, g)| g),
                ..Finish::default()
            },
        )?;
        Ok(self.path.join(name))
    }

    /// The directory.
    pub(super) fn path(&self) -> &Path {
        &self.path
    }

    /// The directory, held open.
    pub(super) fn dir(&self) -> &Dir {
        &self.dir
    }
}

impl Drop for PrivateDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn finds_tools_and_runs_them_with_input() {
        let sh = find_bin("sh").unwrap();
        assert!(sh.is_absolute());
        assert!(find_bin("no-such-tool-rustle").is_none());
        let out = run(
            &sh,
            &["-c".into(), "cat; echo e >&2; exit 4".into()],
            Some(b"in"),
        )
        .unwrap();
        assert_eq!(
            (out.rc, out.stdout.as_str(), out.stderr.as_str()),
            (4, "in", "e\n")
        );
    }

    #[test]
    fn private_dirs_are_private_and_removed() {
        let d = PrivateDir::new("t").unwrap();
        let p = d.path().to_path_buf();
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o700
        );
        let f = d.write("x", b"hi", 0o700).unwrap();
        assert_eq!(fs::read(&f).unwrap(), b"hi");
        assert_eq!(
            fs::metadata(&f).unwrap().permissions().mode() & 0o7777,
            0o700
        );
        // A name written again is a new file, never the old one written through.
        let hard = d.path().join("hard");
        fs::hard_link(&f, &hard).unwrap();
        d.write("x", b"again", 0o600).unwrap();
        assert_eq!(fs::read(&f).unwrap(), b"again");
        assert_eq!(fs::read(&hard).unwrap(), b"hi");
        drop(d);
        assert!(!p.exists());
    }

    /// With a become_user the private directory is theirs; they swap each new file for
    /// a symlink to a root-only file while root writes it. The old chown by name then
    /// gave them the victim.
    #[test]
    fn files_for_a_become_user_are_chowned_through_their_descriptor() {
        let s = super::super::fsutil::hostile::Scene::new("rustle-ta-priv");
        let who = RunAs {
            user: s.user.name.clone(),
            uid: s.user.uid,
            gid: s.user.gid,
            home: "/".into(),
        };
        let d = PrivateDir::for_task("t", Some(&who)).unwrap();
        let swapper = s.swapper(d.path(), &[".scr", ".rustle-tmp"]);
        let body = vec![b'#'; 4 << 20];
        for i in 0..300 {
            let name = format!("f{i}.scr");
            let _ = d.write(&name, &body, 0o700);
            // Whatever is under the name now (the file, or the user's symlink) goes.
            let _ = fs::remove_file(d.path().join(name));
        }
        let swapped = swapper.finish();
        assert!(
            swapped > 0,
            "the attacker never caught a file: nothing was tested"
        );
        s.victim_untouched();
    }
}
