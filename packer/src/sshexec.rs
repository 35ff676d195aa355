//! SSH execution mode: a host's plan run from the controller, one module at a time
//! over the host's SSH connection, for hosts without a usable runner and as the
//! baseline (`--strategy ssh`) binary mode is measured against.
//!
//! The controller runs the runner's own executor ([`rustle_runner::exec::Executor`])
//! with a [`ModuleHost`] that carries each module call to the host, so `when`, loops,
//! register, handlers, blocks, changed_when/failed_when, events and the recap are
//! exactly binary mode's. Each module becomes a few POSIX shell commands, one exec
//! channel each, with every value single-quoted ([`sh_quote`]); only command and shell
//! run plan text as a command line, as they do in binary mode. Modules that need no
//! host (debug, set_fact, assert, fail) run on the controller as they are; template
//! renders on the controller; lineinfile, blockinfile and replace fetch the file, run
//! the runner's own module on a scratch copy and send the result back, so their
//! semantics come for free; `setup` returns the facts SSH mode gathers. Any other
//! module fails with "cannot run in SSH mode". The same module back end runs the tasks
//! a host delegates to another inventory host (`crate::delegate`).
//!
//! Every script travels on the command's stdin behind a fixed loader ([`BOOT`]), so a
//! process list on the host shows no plan value, the task's `environment:` included.
//! Files are written as binary mode writes them: into a file the script creates itself
//! under a random name (`O_EXCL`, by the shell's noclobber redirection), whose owner and
//! mode are set through that open descriptor (`/proc/self/fd`), then renamed over the
//! destination; nothing is ever written, chowned or chmodded through a name someone
//! else could have planted. Changing only a file's attributes (mode, owner, times, a
//! recursive mode) goes through a descriptor too, opened on the name and checked to be
//! the file the name holds ([`SETATTR`]). A task's `become_user` runs its module's commands as that
//! user (`sudo -u`), so the files it makes are that user's and that user's permissions
//! apply, as in Ansible.
//!
//! The host needs `sh`, `stat -c`, `sha1sum`, `cat`, `mkdir`, `chmod`, `chown`, `ln`,
//! `rm`, `mv` (with `-T`), `touch` (with `-r`), `readlink -f`, `dirname`, `find`, `id`
//! and `env` (GNU coreutils or busybox), `/proc/self/fd` for descriptor-safe attribute
//! changes, and `sudo` for `become`/`become_user`. Without `/proc/self/fd` (a
//! Linux host without /proc) attributes are set by name after checking that the name
//! is still the plain file the script made, the closest a shell comes.

use crate::deploy::{HostResult, HostStatus, Job};
use crate::remote::OnEvent;
use crate::ssh::{self, sh_quote};
use rustle_runner::events::{EVENTS_VERSION, Event, Sink};
use rustle_runner::exec::{Executor, RunOptions};
use rustle_runner::modules::{self, Ctx, Diff, ModuleError, ModuleHost, Outcome, args};
use rustle_runner::plan::{HostPlan, Vars};
use serde_json::Value;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

/// How commands reach the host.
#[derive(Clone)]
pub enum Link {
    /// An authenticated SSH connection: one exec channel per command.
    Ssh(Arc<ssh::Connection>),
    /// `sh` on this machine (`ansible_connection=local`).
    Local,
    /// A host the deployer could not connect to (why): as in Ansible, the tasks that
    /// need no host still run, and the first that needs it is unreachable.
    Down(String),
}

/// What one command returned.
struct Output {
    code: Option<i32>,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
}

impl Output {
    fn ok(&self) -> bool {
        self.code == Some(0)
    }

    fn err_text(&self) -> String {
        let e = String::from_utf8_lossy(&self.stderr).trim().to_string();
        if e.is_empty() {
            format!("exit code {:?}", self.code)
        } else {
            e
        }
    }
}

/// Why a command gave no [`Output`].
#[derive(Debug)]
enum LinkError {
    /// The connection failed: the host is unreachable from then on.
    Lost(String),
    /// The command sent more than the deployer keeps of one command
    /// ([`ssh::MAX_OUTPUT_BYTES`]): that command fails, the host goes on.
    TooMuch(String),
}

impl std::fmt::Display for LinkError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LinkError::Lost(e) | LinkError::TooMuch(e) => f.write_str(e),
        }
    }
}

impl Link {
    async fn exec(&self, script: &str, stdin: &[u8]) -> Result<Output, LinkError> {
        match self {
            Link::Ssh(c) => c
                .exec_raw(script, stdin)
                .await
                .map(|(code, stdout, stderr)| Output {
                    code: code.and_then(|c| i32::try_from(c).ok()),
                    stdout,
                    stderr,
                })
                .map_err(|e| match e {
                    ssh::SshError::TooMuchOutput(_) => LinkError::TooMuch(e.to_string()),
                    e => LinkError::Lost(e.to_string()),
                }),
            Link::Local => local_exec(script, stdin).await,
            Link::Down(why) => Err(LinkError::Lost(why.clone())),
        }
    }
}

/// `sh -c script` on this machine, with `stdin`, within the same bound as over SSH
/// ([`ssh::MAX_OUTPUT_BYTES`] of stdout and stderr together).
async fn local_exec(script: &str, stdin: &[u8]) -> Result<Output, LinkError> {
    use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWriteExt as _};
    let mut child = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(script)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| LinkError::Lost(format!("cannot start sh: {e}")))?;
    if let Some(mut input) = child.stdin.take() {
        let data = stdin.to_vec();
        tokio::spawn(async move {
            let _ = input.write_all(&data).await;
            let _ = input.shutdown().await;
        });
    }
    let (Some(out), Some(err)) = (child.stdout.take(), child.stderr.take()) else {
        return Err(LinkError::Lost("sh has no output pipes".into()));
    };
    // Each stream reads one byte past the limit at most, so either alone going over it
    // is seen; both together are checked after.
    async fn bounded(r: impl AsyncRead + Unpin) -> Vec<u8> {
        let mut v = Vec::new();
        let _ = r.take(ssh::MAX_OUTPUT_BYTES + 1).read_to_end(&mut v).await;
        v
    }
    let (stdout, stderr) = tokio::join!(bounded(out), bounded(err));
    if (stdout.len() + stderr.len()) as u64 > ssh::MAX_OUTPUT_BYTES {
        let _ = child.kill().await;
        return Err(LinkError::TooMuch(format!(
            "the command sent more than {} MiB of output (the limit for a command whose output is kept whole)",
            ssh::MAX_OUTPUT_BYTES >> 20
        )));
    }
    let status = child
        .wait()
        .await
        .map_err(|e| LinkError::Lost(e.to_string()))?;
    Ok(Output {
        code: status.code(),
        stdout,
        stderr,
    })
}

/// Figures and state shared between the module host (on its blocking thread) and the
/// async side.
#[derive(Debug, Default)]
pub struct Stats {
    /// Commands run on the host (one SSH channel each).
    pub channels: u32,
    /// Bytes sent on stdin.
    pub bytes_sent: u64,
    /// The connection failed: the host is unreachable from then on.
    pub lost: Option<String>,
}

/// The [`ModuleHost`] that runs modules on a host over a [`Link`].
pub struct SshHost {
    link: Link,
    rt: tokio::runtime::Handle,
    sudo: bool,
    /// The module running now has a `become_user`: its commands run as that user.
    run_as: Option<String>,
    user: Option<Option<String>>,
    /// The host's login environment and /etc/passwd, asked for the first time a command
    /// word needs expanding (and again for each `~user`).
    expansion: Option<HostNames>,
    stats: Arc<Mutex<Stats>>,
    cancel: Arc<AtomicBool>,
}

/// What a host answers for `$NAME` and `~user` in command words.
#[derive(Debug, Default)]
struct HostNames {
    env: Vec<(String, String)>,
    passwd: String,
    user: Option<String>,
}

impl HostNames {
    fn parse(text: &str) -> HostNames {
        let (head, passwd) = text.split_once("--rustle:passwd\n").unwrap_or((text, ""));
        let (user_line, env) = head.split_once('\n').unwrap_or((head, ""));
        HostNames {
            env: parse_facts(&format!("--rustle:env\n{env}")).env,
            passwd: passwd.to_string(),
            user: user_line
                .strip_prefix("u=")
                .map(str::to_string)
                .filter(|u| !u.is_empty()),
        }
    }

    fn var(&self, name: &str) -> Option<String> {
        self.env
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    }

    /// A home directory from the host's /etc/passwd (`None`: the login user's).
    fn home(&self, user: Option<&str>) -> Option<String> {
        let name = user.map(str::to_string).or_else(|| self.user.clone())?;
        self.passwd.lines().find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.first() == Some(&name.as_str())).then(|| f.get(5).map(|h| h.to_string()))?
        })
    }

    /// `word` as the runner on that host would expand it.
    fn expand(&self, word: &str) -> String {
        modules::expand_command_word(word, &|n| self.var(n), &|u| self.home(u))
    }
}

/// Asks a host for what [`HostNames`] holds: the login user, its environment (`env`,
/// as the runner would inherit it), and /etc/passwd.
const HOST_NAMES: &str =
    "echo \"u=$(id -un)\"\nenv\necho '--rustle:passwd'\ncat /etc/passwd 2>/dev/null || true\n";

/// The command line every script runs under: a POSIX `sh` that reads a line count,
/// then that many lines of script from stdin, and evaluates them, so the rest of stdin
/// (file content, a command's input) is the script's. Scripts travel this way so that
/// nothing in them, the task's `environment:` values above all, is in any process's
/// argv (`/proc/*/cmdline` is world-readable). `read` takes a pipe one byte at a time,
/// so it never consumes what follows the script. The text holds no quote or backslash,
/// so a login shell passes it on unchanged.
const BOOT: &str = "IFS= read -r n || exit 125
s=
while [ \"$n\" -gt 0 ]; do IFS= read -r l || exit 125; s=\"$s$l
\"; n=$((n - 1)); done
eval \"$s\"
";

/// What goes on stdin for [`BOOT`]: the script's line count, the script, then `data`.
fn boot_input(script: &str, data: &[u8]) -> Vec<u8> {
    let mut text = script.to_string();
    if !text.ends_with('\n') {
        text.push('\n');
    }
    let lines = text.bytes().filter(|b| *b == b'\n').count();
    let mut input = format!("{lines}\n{text}").into_bytes();
    input.extend_from_slice(data);
    input
}

/// Eight random bytes ([`rustle_runner::random`], the runner's one source of names).
fn random_bytes() -> Step<[u8; 8]> {
    Ok(rustle_runner::random::bytes())
}

/// A name part nobody can guess (16 hex digits), for the files and directories
/// scripts create next to a destination.
fn random_name() -> Step<String> {
    Ok(rustle_runner::random::tag())
}

/// A failed module call: the module's failure, or the connection's.
enum Stop {
    Fail(Outcome),
    Bad(ModuleError),
}

impl From<ModuleError> for Stop {
    fn from(e: ModuleError) -> Stop {
        Stop::Bad(e)
    }
}

type Step<T> = Result<T, Stop>;

fn fail<T>(msg: impl Into<String>) -> Step<T> {
    Err(Stop::Fail(Outcome::fail(msg)))
}

/// The host cannot be reached (any more): the task's result is unreachable, as
/// Ansible's is, which the executor counts so (or, with `ignore_unreachable`, lets pass).
fn unreachable<T>(why: &str) -> Step<T> {
    let mut outcome = Outcome::ok();
    outcome.msg = Some(format!("host unreachable: {why}"));
    outcome.data.insert("unreachable".into(), true.into());
    Err(Stop::Fail(outcome))
}

/// The modules that need no host: they run on the controller as they are, and never
/// use the connection.
pub const NO_HOST: [&str; 7] = [
    "debug",
    "set_fact",
    "set_stats",
    "validate_argument_spec",
    "assert",
    "fail",
    "include_vars",
];

impl SshHost {
    /// A module host for `link`; with `sudo`, every command runs under `sudo -n`.
    pub fn new(link: Link, rt: tokio::runtime::Handle, sudo: bool) -> SshHost {
        SshHost {
            link,
            rt,
            sudo,
            run_as: None,
            user: None,
            expansion: None,
            stats: Arc::default(),
            cancel: Arc::default(),
        }
    }

    /// The shared figures.
    pub fn stats(&self) -> Arc<Mutex<Stats>> {
        self.stats.clone()
    }

    /// Set to stop running commands (the host timed out).
    pub fn cancel_flag(&self) -> Arc<AtomicBool> {
        self.cancel.clone()
    }

    /// Runs `script` on the host with `stdin`, as the running module's `become_user`
    /// when it has one. Blocks this (non-async) thread.
    fn sh(&mut self, script: &str, stdin: &[u8]) -> Step<Output> {
        let user = self.run_as.clone();
        self.sh_as(user.as_deref(), script, stdin)
    }

    /// Runs `script` on the host as `user` (`None`: the login user, or root under
    /// `sudo`), with `stdin` after it. The script goes on stdin behind [`BOOT`]: only
    /// that fixed text is on any command line.
    fn sh_as(&mut self, user: Option<&str>, script: &str, stdin: &[u8]) -> Step<Output> {
        if self.cancel.load(Ordering::Relaxed) {
            return fail("cancelled: the host timed out");
        }
        if let Ok(s) = self.stats.lock()
            && let Some(why) = &s.lost
        {
            return unreachable(why);
        }
        let command = match user {
            // A become_user: sudo as that user, with that user's HOME as binary mode
            // gives its processes. Root (the login, or sudo) may switch to anyone.
            Some(u) => format!("sudo -n -u {} -H sh -c {}", sh_quote(u), sh_quote(BOOT)),
            None if self.sudo => format!("sudo -n sh -c {}", sh_quote(BOOT)),
            None => format!("sh -c {}", sh_quote(BOOT)),
        };
        let input = boot_input(script, stdin);
        let r = self.rt.block_on(self.link.exec(&command, &input));
        let mut s = self
            .stats
            .lock()
            .map_err(|_| Stop::Fail(Outcome::fail("internal")))?;
        s.channels += 1;
        s.bytes_sent += input.len() as u64;
        match r {
            Ok(o) => Ok(o),
            // Too much output fails this module call only; the connection is fine.
            Err(LinkError::TooMuch(e)) => fail(e),
            Err(LinkError::Lost(e)) => {
                s.lost = Some(e.clone());
                unreachable(&e)
            }
        }
    }

    fn dispatch(&mut self, module: &str, a: &Vars, ctx: &Ctx<'_>) -> Step<Outcome> {
        // On a host never reached, a module that needs it is unreachable, whichever.
        if let Link::Down(why) = &self.link
            && !NO_HOST.contains(&module)
        {
            let why = why.clone();
            if let Ok(mut s) = self.stats.lock() {
                s.lost = Some(why.clone());
            }
            return unreachable(&why);
        }
        match module {
            m if NO_HOST.contains(&m) => Ok(modules::run(module, a, ctx)?),
            "command" => self.command(a, ctx, false),
            "shell" => self.command(a, ctx, true),
            "copy" => self.copy(a, ctx),
            "template" => self.template(a, ctx),
            "file" => self.file(a, ctx),
            "stat" => self.stat(a),
            "slurp" => self.slurp(a),
            "lineinfile" | "blockinfile" | "replace" => self.text(module, a, ctx),
            // The facts SSH mode gathers at a play's start (a task delegated to another
            // host with `delegate_facts` gathers that host's this way).
            "setup" | "gather_facts" => {
                Ok(Outcome::ok().with("ansible_facts", Value::Object(self.facts())))
            }
            other => fail(format!(
                "module {other} cannot run in SSH mode (it needs the runner on the host)"
            )),
        }
    }
}

impl ModuleHost for SshHost {
    fn run(&mut self, module: &str, a: &Vars, ctx: &Ctx<'_>) -> Result<Outcome, ModuleError> {
        // As Ansible runs the whole module as the become_user, every command of this
        // module runs as that user: its files are that user's and its permissions apply.
        self.run_as = ctx.run_as.map(|who| who.user.clone());
        // Path arguments expand `~` and `$VAR` as the runner expands them on its host
        // (Ansible's type='path'): with this host's environment and passwd.
        let expanded = if modules::paths::wants_expansion(module, a) {
            match self.sh_as(None, HOST_NAMES, b"") {
                Ok(o) => {
                    let names = HostNames::parse(&String::from_utf8_lossy(&o.stdout));
                    let become_home = ctx.run_as.map(|w| w.home.clone());
                    let env = |n: &str| {
                        modules::paths::task_env(ctx, n, become_home.as_deref())
                            .or_else(|| names.var(n))
                    };
                    modules::paths::expand_with(module, a, &env, &|u| names.home(u))
                }
                Err(Stop::Fail(o)) => return Ok(o),
                Err(Stop::Bad(e)) => return Err(e),
            }
        } else {
            None
        };
        let a = expanded.as_ref().unwrap_or(a);
        let r = self.dispatch(module, a, ctx);
        self.run_as = None;
        match r {
            Ok(o) | Err(Stop::Fail(o)) => Ok(o),
            Err(Stop::Bad(e)) => Err(e),
        }
    }

    fn facts(&mut self) -> Vars {
        match self.sh(FACTS, b"") {
            Ok(out) => {
                let f = parse_facts(&String::from_utf8_lossy(&out.stdout));
                if self.user.is_none() {
                    self.user = Some(f.user.clone());
                }
                rustle_runner::facts::from_sources(&f)
            }
            Err(_) => Vars::new(),
        }
    }

    /// SSH mode describes no interpreter: the facts it gathers come from a few shell
    /// commands, and the host may have no Python at all.
    fn python_facts(&mut self) -> Option<Vars> {
        None
    }

    fn is_root(&mut self) -> bool {
        self.user().as_deref() == Some("root")
    }

    /// The executor runs here, on the controller: `fetch` writes the file itself.
    fn on_controller(&self) -> bool {
        true
    }

    fn lookup_user(&mut self, user: &str) -> Option<rustle_runner::privilege::RunAs> {
        // No user name holds these; refusing them keeps the lookup from reading one as
        // an option or a field separator.
        if user.is_empty() || user.starts_with('-') || user.contains([':', '\n']) {
            return None;
        }
        // The host's own password database, not this machine's. Without getent, the
        // name (or uid) is compared as a whole field, never used as a pattern.
        let script = format!(
            "u={}\ngetent passwd \"$u\" 2>/dev/null && exit 0\n\
             while IFS= read -r l; do r=${{l#*:}}; r=${{r#*:}}\n\
             if [ \"${{l%%:*}}\" = \"$u\" ] || [ \"${{r%%:*}}\" = \"$u\" ]; then printf '%s\\n' \"$l\"; exit 0; fi\n\
             done < /etc/passwd\nexit 2\n",
            sh_quote(user)
        );
        let o = self.sh_as(None, &script, b"").ok()?;
        let line = String::from_utf8_lossy(&o.stdout)
            .lines()
            .next()?
            .to_string();
        let f: Vec<&str> = line.split(':').collect();
        let [name, _, uid, gid, _, home, ..] = f.as_slice() else {
            return None;
        };
        // As the runner's own lookup: the name, or a uid given as a number.
        if *name != user && *uid != user {
            return None;
        }
        Some(rustle_runner::privilege::RunAs {
            user: (*name).to_string(),
            uid: uid.parse().ok()?,
            gid: gid.parse().ok()?,
            home: (*home).to_string(),
        })
    }

    fn user(&mut self) -> Option<String> {
        if let Some(u) = &self.user {
            return u.clone();
        }
        let u = self.sh("id -un", b"").ok().and_then(|o| {
            o.ok()
                .then(|| String::from_utf8_lossy(&o.stdout).trim().to_string())
        });
        self.user = Some(u.clone());
        u
    }
}

const FACTS: &str = "echo \"h=$(cat /proc/sys/kernel/hostname 2>/dev/null || hostname)\"\n\
echo \"s=$(uname -s)\"\necho \"m=$(uname -m)\"\necho \"r=$(uname -r)\"\n\
echo \"n=$(getconf _NPROCESSORS_ONLN 2>/dev/null || echo 1)\"\necho \"u=$(id -un)\"\n\
echo '--rustle:os'\ncat /etc/os-release 2>/dev/null || cat /usr/lib/os-release 2>/dev/null\n\
echo '--rustle:mem'\ncat /proc/meminfo 2>/dev/null\necho '--rustle:env'\nenv\n";

fn parse_facts(text: &str) -> rustle_runner::facts::Sources {
    let mut s = rustle_runner::facts::Sources::default();
    let mut section = "";
    for line in text.lines() {
        if let Some(name) = line.strip_prefix("--rustle:") {
            section = match name {
                "os" => "os",
                "mem" => "mem",
                _ => "env",
            };
            continue;
        }
        match section {
            "os" => {
                s.os_release.push_str(line);
                s.os_release.push('\n');
            }
            "mem" => {
                s.meminfo.push_str(line);
                s.meminfo.push('\n');
            }
            "env" => {
                if let Some((k, v)) = line.split_once('=')
                    && !k.is_empty()
                    && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                {
                    s.env.push((k.to_string(), v.to_string()));
                }
            }
            _ => {
                let Some((k, v)) = line.split_once('=') else {
                    continue;
                };
                let v = v.trim().to_string();
                match k {
                    "h" => s.hostname = Some(v),
                    "s" => s.system = v,
                    "m" => s.arch = v,
                    "r" => s.kernel = Some(v),
                    "n" => s.cpus = v.parse().unwrap_or(1),
                    "u" => s.user = Some(v).filter(|u| !u.is_empty()),
                    _ => {}
                }
            }
        }
    }
    s
}

// ---------------------------------------------------------------------------
// Paths on the host

/// A path's metadata on the host, from `stat -c`.
#[derive(Debug, Clone, PartialEq)]
struct Meta {
    kind: String,
    mode: u32,
    uid: u32,
    gid: u32,
    owner: String,
    group: String,
    size: u64,
    nlink: u64,
}

impl Meta {
    /// A path about to be created: every requested attribute differs from it, so
    /// [`Attrs::changes`] gives the lines that set them all.
    fn new_path(kind: &str) -> Meta {
        Meta {
            kind: kind.to_string(),
            mode: u32::MAX,
            uid: u32::MAX,
            gid: u32::MAX,
            owner: String::new(),
            group: String::new(),
            size: 0,
            nlink: 1,
        }
    }

    /// Ansible's state name (fsutil::state_name's rules).
    fn state(&self) -> &'static str {
        match self.kind.as_str() {
            "symbolic link" => "link",
            "directory" => "directory",
            _ if self.nlink > 1 => "hard",
            _ => "file",
        }
    }

    fn is_file(&self) -> bool {
        self.kind.starts_with("regular")
    }
}

/// Shell function: `desc PATH` prints `stat:<fields>` for the path itself, or `stat:-`.
const DESC: &str = "desc() { if [ -L \"$1\" ] || [ -e \"$1\" ]; then stat -c 'stat:%F|%a|%u|%g|%U|%G|%s|%h' -- \"$1\"; else echo 'stat:-'; fi; }\n";

fn parse_meta(line: &str) -> Option<Meta> {
    let f: Vec<&str> = line.strip_prefix("stat:")?.split('|').collect();
    let [kind, mode, uid, gid, owner, group, size, nlink] = f.as_slice() else {
        return None;
    };
    Some(Meta {
        kind: (*kind).to_string(),
        mode: u32::from_str_radix(mode, 8).ok()?,
        uid: uid.parse().ok()?,
        gid: gid.parse().ok()?,
        owner: (*owner).to_string(),
        group: (*group).to_string(),
        size: size.parse().ok()?,
        nlink: nlink.parse().ok()?,
    })
}

/// The `key=value` lines of a probe's output (`stat:` lines under the key "stat", in
/// order).
fn lines_of(out: &Output) -> Vec<(String, String)> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            if l.starts_with("stat:") {
                Some(("stat".to_string(), l.to_string()))
            } else {
                l.split_once('=')
                    .map(|(k, v)| (k.to_string(), v.to_string()))
            }
        })
        .collect()
}

fn get<'a>(kv: &'a [(String, String)], key: &str) -> Option<&'a str> {
    kv.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

fn stats_of(kv: &[(String, String)]) -> Vec<Option<Meta>> {
    kv.iter()
        .filter(|(k, _)| k == "stat")
        .map(|(_, v)| parse_meta(v))
        .collect()
}

/// Registers a path's fields as fsutil::add_path_info does.
fn with_path_info(mut o: Outcome, lstate: &str, m: Option<&Meta>) -> Outcome {
    let Some(m) = m else {
        return o.with("state", "absent");
    };
    o = o
        .with("state", lstate)
        .with("mode", args::mode_string(m.mode))
        .with("uid", m.uid)
        .with("gid", m.gid)
        .with("owner", m.owner.clone())
        .with("group", m.group.clone())
        .with("size", m.size);
    o
}

/// The mode/owner/group a task asks for; owner and group stay names (or numbers) and
/// are resolved by the host's own chown.
#[derive(Debug, Clone, Default)]
struct Attrs {
    mode: Option<u32>,
    owner: Option<String>,
    group: Option<String>,
}

impl Attrs {
    fn from_args(a: &Vars) -> Step<Attrs> {
        Ok(Attrs {
            mode: args::opt_mode(a, "mode")?,
            owner: args::opt_str(a, "owner")?,
            group: args::opt_str(a, "group")?,
        })
    }

    /// What differs from `m`, as (key, before, after), and the shell lines that fix
    /// it for `path` (owner first: chown clears set-id bits). With `follow_link`, the
    /// lines act on what a symbolic link points to (the file module's `follow`);
    /// without, on the name itself: a link's owner and group with `-h` (and never its
    /// mode), anything else through [`SETATTR`], which refuses a name that has become a
    /// link. The script must define [`SETATTR`].
    fn changes(
        &self,
        m: &Meta,
        path: &str,
        follow_link: bool,
    ) -> (Vec<(&'static str, String, String)>, String) {
        let mut ch = Vec::new();
        let is_link = m.kind == "symbolic link";
        let owner = self
            .owner
            .as_ref()
            .filter(|o| **o != m.owner && **o != m.uid.to_string());
        if let Some(o) = owner {
            ch.push(("owner", m.owner.clone(), o.clone()));
        }
        let group = self
            .group
            .as_ref()
            .filter(|g| **g != m.group && **g != m.gid.to_string());
        if let Some(g) = group {
            ch.push(("group", m.group.clone(), g.clone()));
        }
        let mode = self
            .mode
            .filter(|md| (!is_link || follow_link) && *md != m.mode & 0o7777);
        if let Some(md) = mode {
            ch.push(("mode", args::mode_string(m.mode), args::mode_string(md)));
        }
        if ch.is_empty() {
            return (ch, String::new());
        }
        let fix = if is_link && !follow_link {
            let p = sh_quote(path);
            let mut fix = String::new();
            if let Some(o) = owner {
                fix.push_str(&format!("chown -h -- {} {p}\n", sh_quote(o)));
            }
            if let Some(g) = group {
                fix.push_str(&format!("chgrp -h -- {} {p}\n", sh_quote(g)));
            }
            fix
        } else {
            set_attrs(
                path,
                follow_link,
                owner.map(String::as_str),
                group.map(String::as_str),
                mode,
                false,
            )
        };
        (ch, fix)
    }
}

/// Shell function `sa FOLLOW OWNER GROUP MODE TOUCH PATH`: sets PATH's owner, group
/// and mode (each when not empty) and with TOUCH=1 its times, on the file or directory
/// itself, never through a symbolic link put in its place. With FOLLOW=1 a link at
/// PATH is resolved first (the file module's `follow`).
///
/// A name in a directory someone else can write to may be swapped for a symbolic link
/// between any check and a `chmod` by name, which would follow it. So the file is
/// opened (fd 5), the descriptor's device and inode compared with the name's own
/// (`stat` without `-L`: a link there now has its own inode), and the attributes set
/// through `/proc/self/fd/5`, which stays that file whatever the name becomes. Where
/// that cannot be done (no /proc, a file the user cannot read, a special file, which
/// opening could block on or disturb) the name is used right after checking it is no
/// link, the closest a shell comes. `command exec` keeps a failed open from ending the
/// shell (dash).
const SETATTR: &str = "sa() { sa_a=$6\n\
if [ \"$1\" = 1 ] && [ -L \"$sa_a\" ]; then sa_a=$(readlink -f -- \"$sa_a\"); fi\n\
if [ -d /proc/self/fd ] && [ ! -L \"$sa_a\" ] && [ -r \"$sa_a\" ] && { [ -f \"$sa_a\" ] || [ -d \"$sa_a\" ]; } && command exec 5<\"$sa_a\"; then sa_q=/proc/self/fd/5\n\
if [ \"$(stat -L -c %d:%i \"$sa_q\")\" != \"$(stat -c %d:%i -- \"$sa_a\")\" ]; then exec 5<&-; printf '%s changed while its attributes were being set\\n' \"$sa_a\" >&2; return 1; fi\n\
elif [ -L \"$sa_a\" ]; then printf '%s was replaced by a symbolic link\\n' \"$sa_a\" >&2; return 1\n\
else sa_q=$sa_a; fi\n\
sa_r=0\n\
if [ -n \"$2\" ]; then chown -- \"$2\" \"$sa_q\" || sa_r=1; fi\n\
if [ -n \"$3\" ]; then chgrp -- \"$3\" \"$sa_q\" || sa_r=1; fi\n\
if [ -n \"$4\" ]; then chmod -- \"$4\" \"$sa_q\" || sa_r=1; fi\n\
if [ \"$5\" = 1 ]; then touch -c -- \"$sa_q\" || sa_r=1; fi\n\
if [ \"$sa_q\" != \"$sa_a\" ]; then exec 5<&-; fi\n\
return \"$sa_r\"; }\n";

/// A call of [`SETATTR`]'s `sa` for `path`.
fn set_attrs(
    path: &str,
    follow_link: bool,
    owner: Option<&str>,
    group: Option<&str>,
    mode: Option<u32>,
    touch: bool,
) -> String {
    format!(
        "sa {} {} {} {} {} {}\n",
        u8::from(follow_link),
        sh_quote(owner.unwrap_or("")),
        sh_quote(group.unwrap_or("")),
        mode.map_or_else(|| "''".to_string(), |m| format!("{m:o}")),
        u8::from(touch),
        sh_quote(path)
    )
}

/// `path` as an operand for a command that takes no `--` (find): a relative path that
/// could read as an option gets `./` in front.
fn operand(path: &str) -> String {
    if path.starts_with('-') {
        format!("./{path}")
    } else {
        path.to_string()
    }
}

/// How [`put_script`] leaves the file it writes.
struct Put<'a> {
    mode: u32,
    /// The owner and group of the file being replaced, which the new one keeps (as
    /// binary mode's write does), where the script may give them away.
    keep: Option<(u32, u32)>,
    owner: Option<&'a str>,
    group: Option<&'a str>,
    /// Keep a copy of the file being replaced under Ansible's backup name, reported as
    /// `backup=<path>`.
    backup: bool,
}

/// Shell lines that replace the file named by `$d` with the rest of stdin, for a
/// script under `set -e`.
///
/// The new content goes into a file the script creates itself, next to `$d` under a
/// name nobody can guess, with noclobber (`set -C`: `O_CREAT|O_EXCL`, which also
/// refuses a symbolic link); owner and mode are set through that open descriptor
/// (`/proc/self/fd/N`), never through the name, so a name swapped for a symbolic link
/// meanwhile redirects nothing; then the file is renamed over `$d` (`mv -T`, which
/// never moves into a directory). A backup copies the old file, read through a
/// descriptor checked to be the file at `$d` itself, into another such file, and links
/// it under Ansible's name `$d.<pid>.<time>~` (`ln` never writes through an existing
/// name; a taken name gets another number). Without /proc, attributes are set by name
/// right after checking the name is still a plain file.
/// Host shell text: descriptors are reached through `/proc/self/fd` where the host has
/// it (`$F`), else names are used with `-h` (`$H`); see [`put_script`].
const PROC_FD: &str = "if [ -d /proc/self/fd ]; then F=/proc/self/fd; H=; else F=; H=-h; fi\n";

fn put_script(p: &Put<'_>) -> Step<String> {
    let tmp = random_name()?;
    let mut s = format!(
        "umask 077\n\
         {PROC_FD}\
         at() {{ if [ -n \"$F\" ]; then printf '%s\\n' \"$F/$1\"; elif [ -f \"$2\" ] && [ ! -L \"$2\" ]; then printf '%s\\n' \"$2\"; \
         else printf '%s was replaced while it was being written\\n' \"$2\" >&2; return 1; fi; }}\n\
         p=$(dirname -- \"$d\")\nt=\"$p/.rustle.{tmp}.tmp\"\nbt=\ntrap 'rm -f -- \"$t\" ${{bt:+\"$bt\"}}' EXIT\n"
    );
    if p.backup {
        let bak = random_name()?;
        // A taken backup name is tried again with random numbers in place of the
        // process id, of the size of one.
        let [a, b, c, d, e, f, g, h] = random_bytes()?;
        let (n1, n2) = (
            u32::from_le_bytes([a, b, c, d]) % 4_194_304,
            u32::from_le_bytes([e, f, g, h]) % 4_194_304,
        );
        s.push_str(&format!(
            "bt=\"$p/.rustle.{bak}.tmp\"\nexec 5<\"$d\"\n\
             if [ -n \"$F\" ]; then o=$F/5\n\
             if [ \"$(stat -L -c %d:%i -- \"$o\")\" != \"$(stat -c %d:%i -- \"$d\")\" ]; then printf '%s changed while it was being backed up\\n' \"$d\" >&2; exit 1; fi\n\
             else o=$d; at 5 \"$d\" >/dev/null; fi\n\
             set -C\nexec 4>\"$bt\"\nset +C\ncat <&5 >&4\n\
             q=$(at 4 \"$bt\")\nchown $H -- \"$(stat -L -c %u:%g -- \"$o\")\" \"$q\" 2>/dev/null || true\n\
             q=$(at 4 \"$bt\")\nchmod -- \"$(stat -L -c %a -- \"$o\")\" \"$q\"\n\
             q=$(at 4 \"$bt\")\ntouch -r \"$o\" -- \"$q\" 2>/dev/null || true\n\
             exec 4>&- 5<&-\nb=\n\
             for n in $$ {n1} {n2}; do c=\"$d.$n.{stamp}~\"\n\
             if [ ! -e \"$c\" ] && [ ! -L \"$c\" ] && ln -n -- \"$bt\" \"$c\"; then b=$c; break; fi\ndone\n\
             if [ -z \"$b\" ]; then printf 'cannot keep a backup of %s\\n' \"$d\" >&2; exit 1; fi\n\
             rm -f -- \"$bt\"\nbt=\nprintf 'backup=%s\\n' \"$b\"\n",
            stamp = backup_stamp()
        ));
    }
    s.push_str("set -C\nexec 3>\"$t\"\nset +C\ncat >&3\n");
    if let Some((uid, gid)) = p.keep {
        s.push_str(&format!(
            "q=$(at 3 \"$t\")\nchown $H -- {uid}:{gid} \"$q\" 2>/dev/null || true\n"
        ));
    }
    if let Some(o) = p.owner {
        s.push_str(&format!(
            "q=$(at 3 \"$t\")\nchown $H -- {} \"$q\"\n",
            sh_quote(o)
        ));
    }
    if let Some(g) = p.group {
        s.push_str(&format!(
            "q=$(at 3 \"$t\")\nchgrp $H -- {} \"$q\"\n",
            sh_quote(g)
        ));
    }
    s.push_str(&format!(
        "q=$(at 3 \"$t\")\nchmod -- {:o} \"$q\"\nexec 3>&-\n\
         if ! mv -f -T -- \"$t\" \"$d\" 2>/dev/null; then\n\
         if [ -d \"$d\" ]; then printf '%s is a directory\\n' \"$d\" >&2; exit 1; fi\n\
         mv -f -- \"$t\" \"$d\"\nfi\ntrap - EXIT\n",
        p.mode
    ));
    Ok(s)
}

/// The file module's diff as Ansible (and the runner's file module) shapes it:
/// `before`/`after` mappings holding the path and each thing that changes.
fn file_diff(
    path: &str,
    changes: &[(&'static str, String, String)],
    path_content: Option<Value>,
) -> Value {
    let mut before = serde_json::Map::new();
    before.insert("path".into(), path.into());
    let mut after = before.clone();
    if let Some(content) = path_content {
        before.insert("path_content".into(), content);
    }
    for (k, b, a) in changes {
        before.insert((*k).into(), b.as_str().into());
        after.insert((*k).into(), a.as_str().into());
    }
    serde_json::json!({"before": before, "after": after})
}

fn attr_diff(path: &str, changes: &[(&'static str, String, String)]) -> Diff {
    let mut before = format!("path: {path}\n");
    let mut after = before.clone();
    for (k, b, a) in changes {
        before.push_str(&format!("{k}: {b}\n"));
        after.push_str(&format!("{k}: {a}\n"));
    }
    Diff {
        before_header: path.to_string(),
        after_header: path.to_string(),
        before,
        after,
    }
}

/// A diff side, as the runner's fsutil::diff_text writes it (Ansible's max_diff_size,
/// and a note for binary content).
fn diff_text(bytes: &[u8]) -> String {
    const MAX_DIFF_SIZE: usize = 104_448;
    if bytes.len() > MAX_DIFF_SIZE {
        return format!("(diff skipped: file size exceeds {MAX_DIFF_SIZE} bytes)\n");
    }
    match std::str::from_utf8(bytes) {
        Ok(s) if !s.contains('\0') => s.to_string(),
        _ => format!("(binary content, {} bytes)\n", bytes.len()),
    }
}

// ---------------------------------------------------------------------------
// command, shell

impl SshHost {
    fn command(&mut self, a: &Vars, ctx: &Ctx<'_>, shell: bool) -> Step<Outcome> {
        args::only(a, modules::COMMAND_ARGS)?;
        let free = match args::opt_str(a, "cmd")? {
            Some(c) => Some(c),
            None => args::opt_str(a, "_raw_params")?,
        };
        let (line, shown) = if shell {
            let Some(line) = free else {
                return Err(ModuleError::BadArgs(
                    "no command given: use the free-form text or 'cmd'".into(),
                )
                .into());
            };
            let exe = args::opt_str(a, "executable")?.unwrap_or_else(|| "/bin/sh".into());
            (
                format!("exec {} -c {}", sh_quote(&exe), sh_quote(&line)),
                Value::from(line),
            )
        } else {
            let argv: Vec<String> = match (a.get("argv"), free) {
                (Some(Value::Array(_)), None) => args::str_list(a, "argv")?,
                (Some(_), Some(_)) => {
                    return Err(ModuleError::BadArgs(
                        "give either 'argv' or a command string, not both".into(),
                    )
                    .into());
                }
                (Some(other), None) => {
                    return Err(ModuleError::BadArgs(format!(
                        "argument 'argv' must be a list, got {other}"
                    ))
                    .into());
                }
                (None, Some(line)) => modules::split_command_line(&line)
                    .map_err(|e| ModuleError::BadArgs(format!("cannot parse command line: {e}")))?,
                (None, None) => {
                    return Err(ModuleError::BadArgs(
                        "no command given: use the free-form text, 'cmd' or 'argv'".into(),
                    )
                    .into());
                }
            };
            if argv.is_empty() {
                return Err(ModuleError::BadArgs("the command is empty".into()).into());
            }
            // As the runner does: $NAME and a leading ~ expand (no globbing, no word
            // splitting), with the host's environment and passwd; `cmd` shows the words
            // as given, as Ansible's does (run_command expands them).
            let shown = Value::from(argv.clone());
            let argv = if args::bool_or(a, "expand_argument_vars", true)?
                && argv.iter().any(|w| w.contains('$') || w.starts_with('~'))
            {
                // The environment is the login's and does not change; passwd may (an
                // earlier task adds a user), so `~user` asks the host again, as the
                // runner reads passwd on each use.
                let names_user = argv
                    .iter()
                    .any(|w| w.starts_with('~') && w != "~" && !w.starts_with("~/"));
                let names = match self.expansion.take() {
                    Some(n) if !names_user => n,
                    _ => HostNames::parse(&String::from_utf8_lossy(
                        &self.sh_as(None, HOST_NAMES, b"")?.stdout,
                    )),
                };
                let expanded = argv.iter().map(|w| names.expand(w)).collect();
                self.expansion = Some(names);
                expanded
            } else {
                argv
            };
            let words: Vec<String> = argv.iter().map(|w| sh_quote(w)).collect();
            (format!("exec {}", words.join(" ")), shown)
        };
        let chdir = args::opt_str(a, "chdir")?;
        let creates = args::opt_str(a, "creates")?;
        let removes = args::opt_str(a, "removes")?;
        let stdin = args::opt_str(a, "stdin")?;
        let add_newline = args::bool_or(a, "stdin_add_newline", true)?;
        let strip = args::bool_or(a, "strip_empty_ends", true)?;
        let resolve = |p: &str| match &chdir {
            Some(dir) if !p.starts_with('/') => format!("{}/{p}", dir.trim_end_matches('/')),
            _ => p.to_string(),
        };
        if creates.is_some() || removes.is_some() {
            // Each is a glob, as the runner's (Python's glob) are: the quoted pattern
            // goes through the shell's pathname expansion only (IFS empty: no word
            // splitting, and an expansion is never run as code); no match leaves the
            // pattern itself, which then does not exist.
            let mut probe = String::from("IFS=\n");
            if let Some(c) = &creates {
                probe.push_str(&format!(
                    "p={}; set -- $p; if [ -e \"$1\" ] || [ -L \"$1\" ]; then echo creates=1; fi\n",
                    sh_quote(&resolve(c))
                ));
            }
            if let Some(r) = &removes {
                probe.push_str(&format!(
                    "p={}; set -- $p; if [ ! -e \"$1\" ] && [ ! -L \"$1\" ]; then echo removes=1; fi\n",
                    sh_quote(&resolve(r))
                ));
            }
            let kv = lines_of(&self.sh(&probe, b"")?);
            if let (Some(c), Some(_)) = (&creates, get(&kv, "creates")) {
                return Ok(modules::command_not_run_by(shown, c, true, ctx.check_mode));
            }
            if let (Some(r), Some(_)) = (&removes, get(&kv, "removes")) {
                return Ok(modules::command_not_run_by(shown, r, false, ctx.check_mode));
            }
        }
        if ctx.check_mode {
            return Ok(modules::command_would_run(
                shown,
                creates.is_some() || removes.is_some(),
            ));
        }
        let mut script = String::new();
        // The task's `environment`: export lines in the script, which travels on stdin
        // (never in argv, where every user could read the values). Under a
        // `become_user` the whole script already runs as that user (sudo -u -H, with
        // that user's HOME), so these override sudo's, as binary mode's do.
        for (k, v) in ctx.env {
            if k.is_empty() || !k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return fail(format!("environment: '{k}' is not a variable name"));
            }
            script.push_str(&format!("export {k}={}\n", sh_quote(v)));
        }
        if let Some(dir) = &chdir {
            script.push_str(&format!("cd -- {} || exit 2\n", sh_quote(dir)));
        }
        script.push_str(&line);
        let input = match stdin {
            Some(mut s) => {
                if add_newline {
                    s.push('\n');
                }
                s.into_bytes()
            }
            // Binary mode gives the command /dev/null; here an empty stdin does the same.
            None => Vec::new(),
        };
        let start = SystemTime::now();
        let out = self.sh(&script, &input)?;
        let end = SystemTime::now();
        let rc = out.code.unwrap_or(-1);
        Ok(modules::command_finished(
            shown,
            rc,
            &out.stdout,
            &out.stderr,
            strip,
            start,
            end,
        ))
    }
}

// ---------------------------------------------------------------------------
// copy, template: the content is known on the controller; only the write is remote

/// What copy and template write, and how (fsutil::WriteReq's fields).
struct WriteReq<'a> {
    dest: &'a str,
    content: &'a [u8],
    attrs: Attrs,
    force: bool,
    backup: bool,
    follow: bool,
    src: Option<&'a str>,
    new_mode: Option<u32>,
}

impl SshHost {
    fn copy(&mut self, a: &Vars, ctx: &Ctx<'_>) -> Step<Outcome> {
        if let Some(msg) = modules::copy_action_check(a) {
            return fail(msg);
        }
        args::only(a, modules::COPY_ARGS)?;
        // The same arguments as the runner's copy, so errors read the same; these two
        // need the runner on the host.
        for key in ["validate", "directory_mode"] {
            if a.contains_key(key) {
                return fail(format!(
                    "copy with {key} cannot run in SSH mode (it needs the runner on the host)"
                ));
            }
        }
        let dest = args::req_str(a, "dest")?;
        if dest.is_empty() {
            return Err(ModuleError::BadArgs("argument 'dest' must not be empty".into()).into());
        }
        let content: Option<Vec<u8>> = match a.get("content") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone().into_bytes()),
            Some(v @ (Value::Array(_) | Value::Object(_))) => {
                Some(rustle_runner::template::python_json(v).into_bytes())
            }
            Some(other) => Some(other.to_string().into_bytes()),
        };
        let src = args::opt_str(a, "src")?;
        if args::bool_or(a, "remote_src", false)? {
            return fail(
                "copy with remote_src cannot run in SSH mode (it needs the runner on the host)",
            );
        }
        let force = args::bool_or(a, "force", true)?;
        let backup = args::bool_or(a, "backup", false)?;
        let follow = args::bool_or(a, "follow", false)?;
        let preserve = args::opt_str(a, "mode")?.is_some_and(|m| m == "preserve");
        let mut rest = a.clone();
        if preserve {
            rest.shift_remove("mode");
        }
        let attrs = Attrs::from_args(&rest)?;
        let (bytes, src_mode) = match (content, &src) {
            (Some(_), Some(_)) => {
                return Err(ModuleError::BadArgs(
                    "arguments 'src' and 'content' are mutually exclusive".into(),
                )
                .into());
            }
            (None, None) => {
                return Err(ModuleError::BadArgs(
                    "missing required argument 'src' or 'content'".into(),
                )
                .into());
            }
            (Some(c), None) => (c, None),
            (None, Some(s)) => {
                let f = embedded(ctx, s)?;
                (f.content.clone(), f.mode)
            }
        };
        let attrs = if preserve {
            Attrs {
                mode: src_mode,
                ..attrs
            }
        } else {
            attrs
        };
        self.write(
            &WriteReq {
                dest: &dest,
                content: &bytes,
                attrs,
                force,
                backup,
                follow,
                src: src.as_deref(),
                new_mode: if preserve { src_mode } else { None },
            },
            ctx,
        )
    }

    fn template(&mut self, a: &Vars, ctx: &Ctx<'_>) -> Step<Outcome> {
        args::only(a, modules::TEMPLATE_ARGS)?;
        let src = args::req_str(a, "src")?;
        let dest = args::req_str(a, "dest")?;
        if dest.is_empty() {
            return Err(ModuleError::BadArgs("argument 'dest' must not be empty".into()).into());
        }
        let force = args::bool_or(a, "force", true)?;
        let backup = args::bool_or(a, "backup", false)?;
        let follow = args::bool_or(a, "follow", false)?;
        let attrs = Attrs::from_args(a)?;
        let file = embedded(ctx, &src)?;
        let Ok(text) = std::str::from_utf8(&file.content) else {
            return fail(format!("template {src} is not valid UTF-8"));
        };
        let rendered = match ctx.engine.render_str(text, ctx.vars) {
            Ok(r) => r,
            Err(e) => return fail(format!("error templating {src}: {}", e.detail)),
        };
        self.write(
            &WriteReq {
                dest: &dest,
                content: rendered.as_bytes(),
                attrs,
                force,
                backup,
                follow,
                src: Some(&src),
                new_mode: None,
            },
            ctx,
        )
    }

    /// fsutil::write_file over SSH: one probe (where, what is there, its sha1), then
    /// at most one command that writes (content on stdin, to a private temp file
    /// renamed over the destination) or fixes attributes, and describes the result.
    fn write(&mut self, req: &WriteReq<'_>, ctx: &Ctx<'_>) -> Step<Outcome> {
        let base = req
            .src
            .and_then(|s| Path::new(s.trim_end_matches('/')).file_name())
            .map(|b| b.to_string_lossy().into_owned());
        let probe = format!(
            "{DESC}d={dest}\nif [ \"${{d%/}}\" != \"$d\" ] || [ -d \"$d\" ]; then\n\
             if [ -z {base} ]; then echo intodir=1; exit 0; fi\nd=\"${{d%/}}/\"{base}\nfi\n\
             if [ {follow} = 1 ] && [ -L \"$d\" ]; then d=$(readlink -f -- \"$d\"); fi\n\
             echo \"path=$d\"\np=$(dirname -- \"$d\")\n\
             if [ ! -d \"$p\" ]; then echo \"noparent=$p\"; exit 0; fi\n\
             desc \"$d\"\nif [ -f \"$d\" ] && [ ! -L \"$d\" ]; then echo \"sum=$(sha1sum < \"$d\" | cut -d' ' -f1)\"; fi\n\
             echo \"umask=$(umask)\"\n",
            dest = sh_quote(req.dest),
            base = sh_quote(base.as_deref().unwrap_or("")),
            follow = u8::from(req.follow),
        );
        let out = self.sh(&probe, b"")?;
        if !out.ok() {
            return fail(format!("cannot inspect {}: {}", req.dest, out.err_text()));
        }
        let kv = lines_of(&out);
        if get(&kv, "intodir").is_some() {
            return fail(format!(
                "can not use content with a dir as dest ({}); give a file path",
                req.dest
            ));
        }
        let dest = get(&kv, "path").unwrap_or(req.dest).to_string();
        if let Some(p) = get(&kv, "noparent") {
            return Err(Stop::Fail(
                Outcome::fail(format!("Destination directory {p} does not exist"))
                    .with("dest", dest),
            ));
        }
        let existing = stats_of(&kv).into_iter().next().flatten();
        let sum = get(&kv, "sum").map(str::to_string);
        let old_is_file = existing.as_ref().is_some_and(Meta::is_file);
        if let Some(m) = &existing {
            if m.kind == "directory" {
                return fail(format!("{dest} is a directory, cannot write a file there"));
            }
            if !req.force {
                return Ok(Outcome::ok().msg("file already exists").with("dest", dest));
            }
        }
        let checksum = rustle_runner::digest::sha1_hex(req.content);
        let content_changed = !(old_is_file && sum.as_deref() == Some(checksum.as_str()));
        let mut out = Outcome::ok();
        let mut attr_changes = Vec::new();
        let mut after: Option<Meta> = existing.clone();
        // The old content, for the diff only (one more read, in diff mode only).
        let old_text = if ctx.diff_mode && content_changed && old_is_file {
            let o = self.sh(&format!("cat -- {}", sh_quote(&dest)), b"")?;
            Some(diff_text(&o.stdout))
        } else {
            None
        };
        if content_changed {
            if !ctx.check_mode {
                let umask = get(&kv, "umask")
                    .and_then(|u| u32::from_str_radix(u.trim(), 8).ok())
                    .unwrap_or(0o022);
                let mode = req.attrs.mode.unwrap_or_else(|| match &existing {
                    Some(m) if old_is_file => m.mode & 0o7777,
                    _ => req.new_mode.unwrap_or(0o666 & !umask),
                });
                let put = put_script(&Put {
                    mode,
                    keep: existing
                        .as_ref()
                        .filter(|_| old_is_file)
                        .map(|m| (m.uid, m.gid)),
                    owner: req.attrs.owner.as_deref(),
                    group: req.attrs.group.as_deref(),
                    backup: req.backup && old_is_file,
                })?;
                let s = format!("{DESC}set -e\nd={}\n{put}desc \"$d\"\n", sh_quote(&dest));
                let w = self.sh(&s, req.content)?;
                if !w.ok() {
                    return fail(format!("cannot write {dest}: {}", w.err_text()));
                }
                let wkv = lines_of(&w);
                if let Some(b) = get(&wkv, "backup") {
                    out = out.with("backup_file", b);
                }
                after = stats_of(&wkv).into_iter().next().flatten();
            }
        } else if let Some(m) = &existing {
            // The destination is a plain file here (a link is always rewritten): its
            // attributes are set on that name, never through a link swapped in for it.
            let (ch, fix) = req.attrs.changes(m, &dest, false);
            if !ch.is_empty() && !ctx.check_mode {
                let w = self.sh(
                    &format!("{DESC}{SETATTR}set -e\n{fix}desc {}\n", sh_quote(&dest)),
                    b"",
                )?;
                if !w.ok() {
                    return fail(format!(
                        "cannot set the attributes of {dest}: {}",
                        w.err_text()
                    ));
                }
                after = stats_of(&lines_of(&w)).into_iter().next().flatten();
            }
            attr_changes = ch;
        }
        out.changed = content_changed || !attr_changes.is_empty();
        if ctx.diff_mode {
            if content_changed {
                out.diff.push(Diff {
                    before_header: dest.clone(),
                    // Without `src` this is copy's `content`, whose new side the action
                    // heads with the destination (as the runner's copy does).
                    after_header: req.src.map_or_else(|| dest.clone(), str::to_string),
                    before: old_text.unwrap_or_default(),
                    after: diff_text(req.content),
                });
            } else if !attr_changes.is_empty() {
                out.diff.push(attr_diff(&dest, &attr_changes));
            }
        }
        out = out.with("dest", dest.clone()).with("checksum", checksum);
        if content_changed {
            // The copy module's legacy `md5sum`, as the runner's copy gives it: Ansible's
            // action calls the module only when the content differs.
            out = out.with(
                "md5sum",
                rustle_runner::hex::encode(&rustle_runner::digest::md5(&[req.content])),
            );
        }
        if let Some(src) = req.src {
            out = out.with("src", src);
        }
        if ctx.check_mode && existing.is_none() {
            out = out
                .with("state", "file")
                .with("size", req.content.len() as u64);
            if let Some(m) = req.attrs.mode {
                out = out.with("mode", args::mode_string(m));
            }
            return Ok(out);
        }
        let state = after.as_ref().map_or("absent", Meta::state);
        Ok(with_path_info(out, state, after.as_ref()))
    }
}

fn embedded<'c>(ctx: &'c Ctx<'_>, src: &str) -> Step<&'c rustle_runner::plan::HostFile> {
    ctx.files.get(src).ok_or_else(|| {
        Stop::Fail(Outcome::fail(format!(
            "could not find src={src} among the files embedded for this host ({} embedded file{})",
            ctx.files.len(),
            if ctx.files.len() == 1 { "" } else { "s" }
        )))
    })
}

/// Ansible's backup suffix time, in UTC: `YYYY-MM-DD@HH:MM:SS`.
fn backup_stamp() -> String {
    let secs = SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    rustle_runner::facts::utc_seconds(secs, '@')
}

// ---------------------------------------------------------------------------
// file

impl SshHost {
    fn file(&mut self, a: &Vars, ctx: &Ctx<'_>) -> Step<Outcome> {
        args::only(
            a,
            &[
                "path",
                "dest",
                "name",
                "state",
                "mode",
                "owner",
                "group",
                "recurse",
                "src",
                "force",
                "follow",
                "access_time",
                "modification_time",
            ],
        )?;
        let path = match ["path", "dest", "name"]
            .iter()
            .find_map(|k| args::opt_str(a, k).transpose())
        {
            Some(p) => p?,
            None => {
                return Err(ModuleError::BadArgs("missing required argument 'path'".into()).into());
            }
        };
        if path.is_empty() {
            return Err(ModuleError::BadArgs("argument 'path' must not be empty".into()).into());
        }
        if a.contains_key("access_time") || a.contains_key("modification_time") {
            return fail("file with access_time/modification_time cannot run in SSH mode");
        }
        let recurse = args::bool_or(a, "recurse", false)?;
        let follow = args::bool_or(a, "follow", true)?;
        let force = args::bool_or(a, "force", false)?;
        let src = args::opt_str(a, "src")?;
        let attrs = Attrs::from_args(a)?;
        let q = sh_quote(&path);
        // One probe: the path itself, what a link points to and its target's metadata.
        let probe = format!(
            "{DESC}desc {q}\nif [ -L {q} ]; then echo \"target=$(readlink -- {q})\"; if [ -e {q} ]; then desc \"$(readlink -f -- {q})\"; fi; fi\n"
        );
        let kv = lines_of(&self.sh(&probe, b"")?);
        let stats = stats_of(&kv);
        let prev = stats.first().cloned().flatten();
        let target = stats.get(1).cloned().flatten();
        let prev_state = prev.as_ref().map_or("absent", Meta::state);
        let state = match args::opt_str(a, "state")? {
            Some(s) => {
                if !["file", "directory", "link", "hard", "absent", "touch"].contains(&s.as_str()) {
                    return Err(ModuleError::BadArgs(format!(
                        "argument 'state' must be one of file, directory, link, hard, absent, touch; got '{s}'"
                    ))
                    .into());
                }
                s
            }
            None => match prev_state {
                "directory" => "directory".into(),
                "link" => "link".into(),
                _ if recurse && prev.is_none() => "directory".into(),
                _ => "file".into(),
            },
        };
        if recurse && state != "directory" {
            return Err(
                ModuleError::BadArgs("argument 'recurse' requires state=directory".into()).into(),
            );
        }
        if src.is_some() && !matches!(state.as_str(), "link" | "hard") {
            return Err(ModuleError::BadArgs(
                "argument 'src' requires state=link or state=hard".into(),
            )
            .into());
        }
        // The metadata attributes are judged against: a followed link's target.
        let eff = if prev_state == "link" && follow {
            target.clone()
        } else {
            prev.clone()
        };
        let mut changes: Vec<(&'static str, String, String)> = Vec::new();
        let mut script = String::new();
        let mut out = Outcome::ok();
        let key = if matches!(state.as_str(), "link" | "hard") {
            "dest"
        } else {
            "path"
        };
        let mut path_content = None;
        match state.as_str() {
            "absent" => {
                if prev_state == "directory" {
                    // What the directory held, for the diff (the runner's `walk`; `find`
                    // lists a nested tree depth first, so deeper levels may be ordered
                    // differently from it).
                    let list = format!(
                        "find {q} -mindepth 1 -type d -exec printf 'd=%s\\n' {{}} + && \
                         find {q} -mindepth 1 ! -type d -exec printf 'f=%s\\n' {{}} +\n"
                    );
                    let kv = lines_of(&self.sh(&list, b"")?);
                    let pick = |k: &str| -> Vec<String> {
                        kv.iter()
                            .filter(|(key, _)| key == k)
                            .map(|(_, v)| v.clone())
                            .collect()
                    };
                    path_content =
                        Some(serde_json::json!({"directories": pick("d"), "files": pick("f")}));
                }
                if prev.is_some() {
                    changes.push(("state", prev_state.into(), "absent".into()));
                    script.push_str(&format!("rm -rf -- {q}\n"));
                }
            }
            "file" => {
                let effective = if prev_state == "link" && follow {
                    target.as_ref().map_or("absent", |m| {
                        if m.kind == "directory" {
                            "directory"
                        } else {
                            "file"
                        }
                    })
                } else {
                    prev_state
                };
                if !matches!(effective, "file" | "hard") {
                    return Err(Stop::Fail(
                        Outcome::fail(format!("file ({path}) is {effective}, cannot continue"))
                            .with("path", path.clone())
                            .with("state", effective),
                    ));
                }
                if let Some(m) = &eff {
                    let (ch, fix) = attrs.changes(m, &path, follow);
                    changes.extend(ch);
                    script.push_str(&fix);
                }
            }
            "directory" => {
                let is_dir = match prev_state {
                    "directory" => true,
                    "link" if follow => target.as_ref().is_some_and(|t| t.kind == "directory"),
                    _ => false,
                };
                if prev.is_none() {
                    changes.push(("state", "absent".into(), "directory".into()));
                    script.push_str(&format!("mkdir -p -- {q}\n"));
                    let (_, fix) = attrs.changes(&Meta::new_path("directory"), &path, follow);
                    script.push_str(&fix);
                } else if !is_dir {
                    return Err(Stop::Fail(
                        Outcome::fail(format!("{path} already exists as a {prev_state}"))
                            .with("path", path.clone())
                            .with("state", prev_state),
                    ));
                } else if let Some(m) = &eff {
                    let (ch, fix) = attrs.changes(m, &path, follow);
                    changes.extend(ch);
                    script.push_str(&fix);
                }
                if recurse
                    && (attrs.mode.is_some() || attrs.owner.is_some() || attrs.group.is_some())
                {
                    let mut test = Vec::new();
                    if let Some(m) = attrs.mode {
                        test.push(format!("\\( ! -type l ! -perm {m:o} \\)"));
                    }
                    if let Some(o) = &attrs.owner {
                        test.push(format!("! -user {}", sh_quote(o)));
                    }
                    if let Some(g) = &attrs.group {
                        test.push(format!("! -group {}", sh_quote(g)));
                    }
                    // find takes no `--`: a path that could read as an option starts
                    // with `./` instead.
                    let start = sh_quote(&operand(&path));
                    let find = format!(
                        "find {start} -mindepth 1 \\( {} \\) -print | head -n 1",
                        test.join(" -o ")
                    );
                    if prev.is_some() {
                        let o = self.sh(&find, b"")?;
                        if !o.stdout.is_empty() {
                            out.changed = true;
                        }
                    }
                    if let Some(o) = &attrs.owner {
                        script.push_str(&format!("chown -R -h -- {} {q}\n", sh_quote(o)));
                    }
                    if let Some(g) = &attrs.group {
                        script.push_str(&format!("chgrp -R -h -- {} {q}\n", sh_quote(g)));
                    }
                    if let Some(m) = attrs.mode {
                        // Each entry through `sa`, which refuses one swapped for a link
                        // after find looked at it.
                        let each = format!(
                            "{SETATTR}r=0; for f; do sa 0 '' '' {m:o} 0 \"$f\" || r=1; done; exit $r"
                        );
                        script.push_str(&format!(
                            "find {start} -mindepth 1 ! -type l -exec sh -c {} sh {{}} +\n",
                            sh_quote(&each)
                        ));
                    }
                }
            }
            "touch" => {
                changes.push(("state", prev_state.into(), "touch".into()));
                if prev.is_none() {
                    // Noclobber: a new file, never one a planted link points to.
                    script.push_str(&format!("(set -C; : > {q})\n"));
                } else if follow || prev_state != "link" {
                    // Its times, through the file itself (never a link put in its place).
                    script.push_str(&set_attrs(&path, follow, None, None, None, true));
                }
                let mut fresh = prev.clone().unwrap_or(Meta::new_path("regular file"));
                if prev.is_none() && attrs.mode.is_some() {
                    // What the new file's mode is before `mode` is applied, as the
                    // runner's diff shows it: the host's umask decides.
                    let o = self.sh("umask\n", b"")?;
                    let umask = u32::from_str_radix(String::from_utf8_lossy(&o.stdout).trim(), 8)
                        .unwrap_or(0o022);
                    fresh.mode = 0o100_666 & !umask;
                }
                let m = if prev_state == "link" && follow {
                    target.clone().unwrap_or(fresh)
                } else {
                    fresh
                };
                let (ch, fix) = attrs.changes(&m, &path, follow);
                // A new file's owner and group are the login user's: only its mode is
                // known to change before it exists.
                changes.extend(
                    ch.into_iter()
                        .filter(|(what, _, _)| prev.is_some() || *what == "mode"),
                );
                script.push_str(&fix);
            }
            "link" => {
                let Some(src) = src.as_deref() else {
                    if prev_state == "link" {
                        if let Some(m) = &eff {
                            let (ch, fix) = attrs.changes(m, &path, follow);
                            changes.extend(ch);
                            script.push_str(&fix);
                        }
                        return self.file_finish(
                            &path, key, None, changes, script, out, ctx, "link", follow, &attrs,
                            None,
                        );
                    }
                    return Err(ModuleError::BadArgs(
                        "argument 'src' is required for state=link".into(),
                    )
                    .into());
                };
                let abs_src = if src.starts_with('/') {
                    src.to_string()
                } else {
                    match Path::new(&path).parent() {
                        Some(p) => p.join(src).display().to_string(),
                        None => src.to_string(),
                    }
                };
                if !force {
                    let o = self.sh(
                        &format!(
                            "if [ -L {s} ] || [ -e {s} ]; then echo y; fi",
                            s = sh_quote(&abs_src)
                        ),
                        b"",
                    )?;
                    if o.stdout.is_empty() {
                        return fail(format!(
                            "src file does not exist, use \"force=yes\" if you really want to create the link: {abs_src}"
                        ));
                    }
                }
                let current = get(&kv, "target");
                if prev_state == "link" && current == Some(src) {
                    if let Some(m) = &eff {
                        let (ch, fix) = attrs.changes(m, &path, follow);
                        changes.extend(ch);
                        script.push_str(&fix);
                    }
                } else {
                    match prev_state {
                        "absent" => {}
                        "link" => {
                            changes.push(("src", current.unwrap_or("").to_string(), src.into()))
                        }
                        other => {
                            if !force {
                                return fail(format!(
                                    "refusing to convert from {other} to symlink for {path}"
                                ));
                            }
                        }
                    }
                    if prev_state != "link" {
                        changes.push(("state", prev_state.into(), "link".into()));
                    }
                    if prev_state == "directory" {
                        // rmdir refuses a non-empty directory, as binary mode does.
                        script.push_str(&format!(
                            "rmdir -- {q} 2>/dev/null || {{ printf 'the directory %s is not empty, refusing to convert it\\n' {q} >&2; exit 1; }}\n"
                        ));
                    }
                    // The link is made in a directory of the script's own, under a name
                    // nobody can guess, then renamed over the path: nothing is created
                    // through a name planted beside it. `mv -T` replaces a link to a
                    // directory rather than moving into it; where mv has no -T, such a
                    // link is removed first.
                    script.push_str(&format!(
                        "l=\"$(dirname -- {q})/.rustle.{r}.link\"\nmkdir -m 700 -- \"$l\"\n\
                         trap 'rm -f -- \"$l/l\"; rmdir -- \"$l\" 2>/dev/null' EXIT\n\
                         ln -s -n -- {s} \"$l/l\"\n\
                         if ! mv -f -T -- \"$l/l\" {q} 2>/dev/null; then\n\
                         if [ -d {q} ] && [ ! -L {q} ]; then printf '%s is a directory\\n' {q} >&2; exit 1; fi\n\
                         if [ -L {q} ]; then rm -f -- {q}; fi\nmv -f -- \"$l/l\" {q}\nfi\n\
                         rmdir -- \"$l\"\ntrap - EXIT\n",
                        s = sh_quote(src),
                        r = random_name()?,
                    ));
                    let fresh = Meta::new_path("symbolic link");
                    script.push_str(&attrs.changes(&fresh, &path, false).1);
                }
                return self.file_finish(
                    &path,
                    key,
                    Some(src),
                    changes,
                    script,
                    out,
                    ctx,
                    "link",
                    follow,
                    &attrs,
                    None,
                );
            }
            _ => {
                return fail(
                    "file with state=hard cannot run in SSH mode (it needs the runner on the host)",
                );
            }
        }
        let would_be = if state == "touch" {
            "file".to_string()
        } else {
            state.clone()
        };
        self.file_finish(
            &path,
            key,
            None,
            changes,
            script,
            out,
            ctx,
            &would_be,
            follow,
            &attrs,
            path_content,
        )
    }

    /// Runs the file module's change script (unless check mode), then registers what
    /// the path is now, as file.rs's `describe` does.
    #[allow(clippy::too_many_arguments)]
    fn file_finish(
        &mut self,
        path: &str,
        key: &str,
        src: Option<&str>,
        changes: Vec<(&'static str, String, String)>,
        script: String,
        mut out: Outcome,
        ctx: &Ctx<'_>,
        would_be: &str,
        follow: bool,
        attrs: &Attrs,
        path_content: Option<Value>,
    ) -> Step<Outcome> {
        let q = sh_quote(path);
        let describe = format!(
            "desc {q}\nif [ -L {q} ] && [ {f} = 1 ] && [ -e {q} ]; then desc \"$(readlink -f -- {q})\"; fi\n",
            f = u8::from(follow)
        );
        let run = if ctx.check_mode || script.is_empty() {
            format!("{DESC}{describe}")
        } else {
            format!("{DESC}{SETATTR}set -e\n{script}{describe}")
        };
        let o = self.sh(&run, b"")?;
        if !o.ok() {
            return fail(o.err_text());
        }
        let stats = stats_of(&lines_of(&o));
        let lmeta = stats.first().cloned().flatten();
        let meta = stats.get(1).cloned().flatten().or_else(|| lmeta.clone());
        out.changed = out.changed || !changes.is_empty();
        // The runner's file module returns Ansible's diff mappings always (not only in
        // diff mode), except for a path that is absent and stays so: the same here.
        if !(would_be == "absent" && changes.is_empty()) {
            out = out.with("diff", file_diff(path, &changes, path_content));
        }
        out = out.with(key, path);
        if let Some(s) = src {
            out = out.with("src", s);
        }
        if ctx.check_mode && lmeta.is_none() {
            out = out.with("state", would_be);
            if let Some(m) = attrs.mode {
                out = out.with("mode", args::mode_string(m));
            }
            return Ok(out);
        }
        let lstate = lmeta.as_ref().map_or("absent", Meta::state);
        Ok(with_path_info(out, lstate, meta.as_ref()))
    }
}

// ---------------------------------------------------------------------------
// stat

impl SshHost {
    /// `slurp` (and so `fetch`, whose executor reads the file with it): the file's
    /// bytes as the host's `cat` gives them, failing in slurp's words.
    fn slurp(&mut self, a: &Vars) -> Step<Outcome> {
        args::only(a, &["src", "path"])?;
        let src = match args::opt_str(a, "src")? {
            Some(s) => s,
            None => args::req_str(a, "path")
                .map_err(|_| ModuleError::BadArgs("missing required argument 'src'".to_string()))?,
        };
        // Why it cannot be read goes to stderr, as a word of ours.
        let script = format!(
            "p={}
[ -e \"$p\" ] || {{ echo missing >&2; exit 3; }}
             [ -r \"$p\" ] || {{ echo unreadable >&2; exit 3; }}
             [ -d \"$p\" ] && {{ echo directory >&2; exit 3; }}
             exec cat -- \"$p\"\n",
            sh_quote(&src)
        );
        let o = self.sh(&script, b"")?;
        if !o.ok() {
            let why = String::from_utf8_lossy(&o.stderr);
            return fail(match why.trim() {
                "missing" => format!("file not found: {src}"),
                "unreadable" => format!("file is not readable: {src}"),
                "directory" => format!("source is a directory and must be a file: {src}"),
                other => format!("unable to slurp file: {other}"),
            });
        }
        Ok(Outcome::ok()
            .with("content", rustle_runner::hex::base64(&o.stdout))
            .with("encoding", "base64")
            .with("source", src))
    }

    fn stat(&mut self, a: &Vars) -> Step<Outcome> {
        args::only(
            a,
            &[
                "path",
                "follow",
                "get_checksum",
                "get_mime",
                "get_attributes",
                "checksum_algorithm",
            ],
        )?;
        let path = args::req_str(a, "path")?;
        let follow = args::bool_or(a, "follow", false)?;
        let get_checksum = args::bool_or(a, "get_checksum", true)?;
        let get_mime = args::bool_or(a, "get_mime", true)?;
        args::bool_or(a, "get_attributes", true)?;
        if let Some(alg) = args::opt_str(a, "checksum_algorithm")?
            && !alg.eq_ignore_ascii_case("sha1")
        {
            return Err(ModuleError::BadArgs(format!(
                "argument 'checksum_algorithm' supports only sha1 here, got '{alg}'"
            ))
            .into());
        }
        let q = sh_quote(&path);
        let l = if follow { "-L " } else { "" };
        let script = format!(
            "if [ -L {q} ] || [ -e {q} ]; then\n\
             stat {l}-c 'f=%f|%u|%g|%U|%G|%s|%i|%d|%h|%Y|%X|%Z' -- {q} || exit 1\n\
             if [ -L {q} ]; then echo \"target=$(readlink -- {q})\"; echo \"source=$(readlink -f -- {q})\"; fi\n\
             if [ {c} = 1 ] && [ -f {q} ] && [ -r {q} ]; then echo \"sum=$(sha1sum < {q} | cut -d' ' -f1)\"; fi\n\
             if [ {m} = 1 ]; then echo \"mime=$(file --mime-type --mime-encoding -- {q} 2>/dev/null)\"; fi\n\
             else echo missing=1; fi\n",
            c = u8::from(get_checksum),
            m = u8::from(get_mime)
        );
        let o = self.sh(&script, b"")?;
        let kv = lines_of(&o);
        if get(&kv, "missing").is_some() {
            return Ok(Outcome::ok().with("stat", serde_json::json!({"exists": false})));
        }
        let Some(fields) = get(&kv, "f") else {
            return fail(format!("cannot stat {path}: {}", o.err_text()));
        };
        let f: Vec<&str> = fields.split('|').collect();
        let [
            raw,
            uid,
            gid,
            owner,
            group,
            size,
            ino,
            dev,
            nlink,
            mtime,
            atime,
            ctime,
        ] = f.as_slice()
        else {
            return fail(format!("cannot stat {path}: unexpected output {fields}"));
        };
        let raw = u32::from_str_radix(raw, 16).unwrap_or(0);
        let fmt = raw & 0o170_000;
        let num = |s: &str| s.parse::<u64>().unwrap_or(0);
        let bit = |b: u32| raw & b != 0;
        let mut s = serde_json::json!({
            "exists": true,
            "path": path,
            "isdir": fmt == 0o040_000,
            "isreg": fmt == 0o100_000,
            "islnk": fmt == 0o120_000,
            "isblk": fmt == 0o060_000,
            "ischr": fmt == 0o020_000,
            "isfifo": fmt == 0o010_000,
            "issock": fmt == 0o140_000,
            "mode": args::mode_string(raw),
            "uid": num(uid),
            "gid": num(gid),
            "pw_name": owner,
            "gr_name": group,
            "size": num(size),
            "inode": num(ino),
            "dev": num(dev),
            "nlink": num(nlink),
            "mtime": num(mtime) as f64,
            "atime": num(atime) as f64,
            "ctime": num(ctime) as f64,
            "isuid": bit(0o4000),
            "isgid": bit(0o2000),
            "rusr": bit(0o400), "wusr": bit(0o200), "xusr": bit(0o100),
            "rgrp": bit(0o040), "wgrp": bit(0o020), "xgrp": bit(0o010),
            "roth": bit(0o004), "woth": bit(0o002), "xoth": bit(0o001),
        });
        if let Value::Object(m) = &mut s {
            // Followed, the path describes its target, which is no link.
            if let Some(t) = get(&kv, "target").filter(|_| !follow) {
                m.insert("lnk_target".into(), t.into());
                let src = get(&kv, "source").filter(|x| !x.is_empty());
                m.insert("lnk_source".into(), src.map_or(Value::Null, Value::from));
            }
            if let Some(sum) = get(&kv, "sum") {
                m.insert("checksum".into(), sum.into());
            }
            if get_mime {
                // As the runner's stat: `file`'s `path: type; charset=name`, split after
                // the last colon; `unknown` without the tool or a usable answer.
                let (mimetype, charset) = get(&kv, "mime")
                    .and_then(|out| {
                        let (_, rest) = out.trim_end().rsplit_once(':')?;
                        let (t, c) = rest.split_once(';')?;
                        Some((
                            t.trim().to_string(),
                            c.split_once('=')?.1.trim().to_string(),
                        ))
                    })
                    .unwrap_or_else(|| ("unknown".into(), "unknown".into()));
                m.insert("mimetype".into(), mimetype.into());
                m.insert("charset".into(), charset.into());
            }
        }
        Ok(Outcome::ok().with("stat", s))
    }
}

// ---------------------------------------------------------------------------
// lineinfile, blockinfile, replace: the runner's module on a scratch copy

impl SshHost {
    fn text(&mut self, module: &str, a: &Vars, ctx: &Ctx<'_>) -> Step<Outcome> {
        // The path argument and its aliases, read as the module reads them.
        let mut found = None;
        for k in ["path", "dest", "destfile", "name"] {
            if let Some(p) = args::opt_str(a, k)? {
                found = Some((k, p));
                break;
            }
        }
        let Some((key, path)) = found.filter(|(_, p)| !p.is_empty()) else {
            return Err(ModuleError::BadArgs("missing required argument 'path'".into()).into());
        };
        let q = sh_quote(&path);
        // The real file (through symlinks), its metadata, then its bytes.
        let probe = format!(
            "{DESC}p={q}\nif [ -L \"$p\" ] && [ -e \"$p\" ]; then p=$(readlink -f -- \"$p\"); fi\n\
             echo \"path=$p\"\ndesc \"$p\"\nif [ -d \"$p\" ]; then echo isdir=1; fi\necho \"umask=$(umask)\"\necho --rustle:content\n\
             if [ -f \"$p\" ]; then cat -- \"$p\"; fi\n"
        );
        let o = self.sh(&probe, b"")?;
        let marker = b"--rustle:content\n";
        let Some(pos) = o.stdout.windows(marker.len()).position(|w| w == marker) else {
            return fail(format!("cannot read {path}: {}", o.err_text()));
        };
        let (head, rest) = o.stdout.split_at(pos);
        let content = rest.get(marker.len()..).unwrap_or_default();
        let kv = lines_of(&Output {
            code: Some(0),
            stdout: head.to_vec(),
            stderr: Vec::new(),
        });
        let real = get(&kv, "path").unwrap_or(&path).to_string();
        let before = stats_of(&kv).into_iter().next().flatten();
        if get(&kv, "isdir").is_some() {
            // The module's own message for a directory.
            let scratch = Scratch::new()?;
            let mut local = a.clone();
            local.insert(key.into(), scratch.path().display().to_string().into());
            let out = modules::run(module, &local, ctx)?;
            return Ok(rewrite(out, &scratch.path().display().to_string(), &path));
        }
        let scratch = Scratch::new()?;
        let name = Path::new(&real)
            .file_name()
            .map_or_else(|| "file".to_string(), |n| n.to_string_lossy().into_owned());
        let copy = scratch.path().join(&name);
        if let Some(m) = &before {
            std::fs::write(&copy, content).map_err(|e| Stop::Fail(Outcome::fail(e.to_string())))?;
            use std::os::unix::fs::PermissionsExt;
            let _ =
                std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(m.mode & 0o7777));
        }
        // Owner, group and backups are the host's business; the module sees the rest.
        let mut local = a.clone();
        local.insert(key.into(), copy.display().to_string().into());
        let backup = args::bool_or(a, "backup", false)?;
        let attrs = Attrs {
            mode: None,
            owner: args::opt_str(a, "owner")?,
            group: args::opt_str(a, "group")?,
        };
        local.shift_remove("owner");
        local.shift_remove("group");
        local.shift_remove("backup");
        let mut out = modules::run(module, &local, ctx)?;
        let scratch_path = copy.display().to_string();
        if out.failed {
            return Ok(rewrite(out, &scratch_path, &real));
        }
        let new_bytes = std::fs::read(&copy).ok();
        let new_mode = std::fs::metadata(&copy).ok().map(|m| {
            use std::os::unix::fs::PermissionsExt;
            m.permissions().mode() & 0o7777
        });
        let content_changed = new_bytes.as_deref() != before.as_ref().map(|_| content);
        let mut script = String::new();
        let mut owner_changes = Vec::new();
        if let Some(m) = &before {
            // `real` is the file itself (links were resolved above): its attributes are
            // set on that name, never through a link swapped in for it.
            let (ch, fix) = attrs.changes(m, &real, false);
            owner_changes = ch;
            if !content_changed {
                script.push_str(&fix);
                if let Some(nm) = new_mode.filter(|nm| *nm != m.mode & 0o7777) {
                    script.push_str(&set_attrs(&real, false, None, None, Some(nm), false));
                }
            }
        }
        let mut stdin = Vec::new();
        if content_changed
            && !ctx.check_mode
            && let Some(bytes) = &new_bytes
        {
            // The new file gets owner, group and mode before it takes the old one's place.
            let put = put_script(&Put {
                mode: new_mode.unwrap_or(0o644),
                keep: before.as_ref().map(|m| (m.uid, m.gid)),
                owner: attrs.owner.as_deref(),
                group: attrs.group.as_deref(),
                backup: backup && before.is_some(),
            })?;
            script = format!(
                "d={}\nmkdir -p -- \"$(dirname -- \"$d\")\"\n{put}",
                sh_quote(&real)
            );
            stdin = bytes.clone();
        }
        if !script.is_empty() && !ctx.check_mode {
            let w = self.sh(&format!("{SETATTR}set -e\n{script}"), &stdin)?;
            if !w.ok() {
                return fail(format!("cannot write {real}: {}", w.err_text()));
            }
            if let Some(b) = get(&lines_of(&w), "backup") {
                // These modules register it under both names (text.rs with_backup_key).
                out = out.with("backup_file", b).with("backup", b);
            }
        }
        if !owner_changes.is_empty() {
            let msg = out.msg.take().unwrap_or_default();
            out.msg = Some(if out.changed && !msg.is_empty() {
                format!("{msg} and ownership, perms or SE linux context changed")
            } else {
                "ownership, perms or SE linux context changed".to_string()
            });
            out.changed = true;
            if ctx.diff_mode {
                out.diff.push(attr_diff(&real, &owner_changes));
            }
        }
        Ok(rewrite(out, &scratch_path, &real))
    }
}

/// A private directory on the controller for one module call, removed afterwards.
struct Scratch(std::path::PathBuf);

impl Scratch {
    fn new() -> Step<Scratch> {
        static COUNT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = COUNT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!(
            "rustle-sshexec.{}.{n}.{}",
            std::process::id(),
            SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos())
        ));
        let mut b = std::fs::DirBuilder::new();
        std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
        b.create(&dir).map_err(|e| {
            Stop::Fail(Outcome::fail(format!(
                "cannot make a scratch directory: {e}"
            )))
        })?;
        Ok(Scratch(dir))
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Puts the host's path back where the module saw the scratch copy's.
fn rewrite(mut o: Outcome, scratch: &str, real: &str) -> Outcome {
    fn walk(v: &mut Value, from: &str, to: &str) {
        match v {
            Value::String(s) if s.contains(from) => *s = s.replace(from, to),
            Value::Array(a) => a.iter_mut().for_each(|x| walk(x, from, to)),
            Value::Object(m) => m.values_mut().for_each(|x| walk(x, from, to)),
            _ => {}
        }
    }
    for v in o.data.values_mut() {
        walk(v, scratch, real);
    }
    if let Some(m) = &mut o.msg {
        *m = m.replace(scratch, real);
    }
    for d in &mut o.diff {
        d.before_header = d.before_header.replace(scratch, real);
        d.after_header = d.after_header.replace(scratch, real);
    }
    o
}

// ---------------------------------------------------------------------------
// Driving a host

/// Forwards the executor's events to the deployer and keeps them in the host's result.
struct Forward {
    result: HostResult,
    on_event: OnEvent,
    /// Set when the host was cut off: what the thread still reports is not shown.
    cancel: Arc<AtomicBool>,
    /// The controller channel, as a runner's requests reach it (the same checks and the
    /// same `run_once` batch as binary mode), for a plan that needs it.
    channel: Option<SshModeChannel>,
}

/// SSH mode's way into the controller channel: requests go through a
/// [`crate::channel::HostChannel`] as a runner's lines would, and this blocking thread
/// waits for the answer.
struct SshModeChannel {
    channel: crate::channel::HostChannel,
    answers: tokio::sync::mpsc::UnboundedReceiver<Vec<u8>>,
    runtime: tokio::runtime::Handle,
    /// The number of the last request sent (the executor leaves numbering to us).
    last_id: u64,
    /// Other hosts' `hostvars`, asked from inside templates.
    peers: Option<Arc<dyn rustle_runner::events::Channel>>,
}

impl Sink for Forward {
    fn emit(&mut self, ev: &Event) {
        if self.cancel.load(Ordering::Relaxed) {
            return;
        }
        self.result.take_counts(ev);
        if matches!(ev, Event::Vars { .. }) {
            // For the other hosts' hostvars, not for the operator.
            if let Some(ch) = self.channel.as_mut() {
                ch.channel.take_event(ev, &mut self.result);
            }
            return;
        }
        (self.on_event)(&self.result.host, ev);
        if matches!(ev, Event::Task { .. }) {
            // Kept within the same bounds as a runner's events.
            let size = crate::deploy::json_size(ev);
            self.result.keep_task(ev.clone(), size);
        }
    }

    fn channel(&self) -> Option<Arc<dyn rustle_runner::events::Channel>> {
        self.channel.as_ref().and_then(|c| c.peers.clone())
    }

    fn request(
        &mut self,
        mut request: rustle_runner::events::Request,
    ) -> Result<rustle_runner::events::Answer, String> {
        let Some(ch) = self.channel.as_mut() else {
            return Err(format!(
                "needs the controller channel, which this run has not got: {}",
                rustle_runner::events::no_channel_reason(request.kind)
            ));
        };
        if self.cancel.load(Ordering::Relaxed) {
            return Err("the host was cut off".into());
        }
        ch.last_id += 1;
        request.id = ch.last_id;
        let id = request.id;
        let line = serde_json::to_string(&Event::Request(request)).map_err(|e| e.to_string())?;
        {
            let _inside = ch.runtime.enter();
            ch.channel.intercept(
                crate::ssh::Line {
                    text: &line,
                    cut: None,
                },
                &mut self.result,
            );
        }
        let answer = ch
            .answers
            .blocking_recv()
            .ok_or("the deploy ended before the answer came")?;
        rustle_runner::events::read_answer(&mut answer.as_slice(), id)
    }
}

/// Sets the cancel flag when the host's future is dropped (a `--timeout` cut it off),
/// so the blocking thread runs no further command.
struct CancelOnDrop(Arc<AtomicBool>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Runs a host's plan in SSH mode over `link`: the same events, recap and result as a
/// runner would produce. The plan comes from the job's sealed payload (the exact plan
/// binary mode would ship). Returns the result and the (channels, bytes sent) figures.
pub async fn run_host(
    job: &Job,
    deployment: &str,
    link: Link,
    sudo: bool,
    on_event: OnEvent,
    batch: Arc<crate::channel::Batch>,
) -> (HostResult, u32, u64) {
    let name = job.host.name.clone();
    let plan: HostPlan = match rustle_runner::payload::parse(&job.sealed)
        .and_then(|(_, body)| rustle_runner::payload::decode_body(body))
    {
        Ok(p) => p,
        Err(e) => {
            return (
                HostResult::unreachable(&name, format!("cannot read the plan: {e}")),
                0,
                0,
            );
        }
    };
    if sudo {
        // As in binary mode, a sudo that wants a password stops the host before any
        // task, with sudo's own words.
        match link.exec("sudo -n true", b"").await {
            Ok(o) if o.ok() => {}
            Ok(o) => {
                let why = format!("sudo -n failed: {}", o.err_text());
                return (HostResult::unreachable(&name, why), 1, 0);
            }
            Err(e) => return (HostResult::unreachable(&name, e.to_string()), 1, 0),
        }
    }
    let host = SshHost::new(link, tokio::runtime::Handle::current(), sudo);
    let stats = host.stats();
    let _cancel = CancelOnDrop(host.cancel_flag());
    let channel = job.channel.then(|| {
        let mut channel =
            crate::channel::HostChannel::new(&name, Arc::new(job.payload().to_vec()), batch);
        let answers = channel.open();
        let peers = channel.peers_channel(tokio::runtime::Handle::current());
        SshModeChannel {
            channel,
            answers,
            runtime: tokio::runtime::Handle::current(),
            last_id: 0,
            peers,
        }
    });
    let mut sink = Forward {
        result: HostResult::new(&name, std::path::PathBuf::new()),
        on_event,
        cancel: host.cancel_flag(),
        channel,
    };
    let digest = job.digest.to_hex();
    let deployment = deployment.to_string();
    let started = Instant::now();
    let work = tokio::task::spawn_blocking(move || {
        sink.emit(&Event::Start {
            v: EVENTS_VERSION,
            host: plan.host.clone(),
            deployment,
            digest,
            runner_version: format!("ssh-mode {}", env!("CARGO_PKG_VERSION")),
            check_mode: plan.check_mode,
        });
        let summary =
            Executor::with_host(&plan, &mut sink, RunOptions::default(), Box::new(host)).run();
        (sink.result, summary)
    })
    .await;
    let (channels, bytes, lost) = match stats.lock() {
        Ok(s) => (s.channels, s.bytes_sent, s.lost.clone()),
        Err(_) => (0, 0, None),
    };
    let mut result = match work {
        Ok((mut result, summary)) => {
            result.status = if summary.host_failed {
                HostStatus::Failed
            } else {
                HostStatus::Ok
            };
            result
        }
        Err(e) => HostResult::unreachable(&name, format!("internal error: {e}")),
    };
    // A host the run went on without because every unreachable result was ignored
    // (`ignore_unreachable`) finished as its recap says, as in Ansible.
    let all_ignored = result.status == HostStatus::Ok && result.recap.unreachable == 0;
    if let Some(why) = lost.filter(|_| !all_ignored) {
        result.status = HostStatus::Unreachable;
        result.recap.unreachable = 1;
        result.error = Some(why);
    }
    result.run_ms = started.elapsed().as_secs_f64() * 1000.0;
    (result, channels, bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shells a host's `sh` is likely to be (dash on Debian, bash on RHEL).
    const SHELLS: [&str; 2] = ["dash", "bash"];

    fn run_in(shell: &str, command: &str, stdin: &[u8]) -> std::process::Output {
        use std::io::Write as _;
        let mut child = std::process::Command::new(shell)
            .arg("-c")
            .arg(command)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(stdin).unwrap();
        child.wait_with_output().unwrap()
    }

    #[test]
    fn the_loader_runs_the_script_exactly_and_leaves_the_rest_of_stdin_to_it() {
        // Quotes, backslashes, blank and indented lines, a value with a newline.
        let script = format!(
            "export V={}\n\n  printf '%s|' \"$V\" 'a\\b'\ncat\n",
            sh_quote("it's\n two")
        );
        for shell in SHELLS {
            let out = run_in(shell, BOOT, &boot_input(&script, b"data\0 after"));
            assert!(out.status.success(), "{shell}: {out:?}");
            assert_eq!(out.stdout, b"it's\n two|a\\b|data\0 after", "{shell}");
            // A script cut short runs nothing.
            let mut cut = boot_input("echo one\necho two\n", b"");
            cut.truncate(cut.len() - 9);
            let out = run_in(shell, BOOT, &cut);
            assert_eq!(out.status.code(), Some(125), "{shell}: {out:?}");
            assert!(out.stdout.is_empty(), "{shell}");
        }
    }

    #[test]
    fn the_write_script_replaces_the_file_and_keeps_a_backup_in_every_shell() {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o7777;
        for shell in SHELLS {
            // With /proc (attributes through the descriptor) and without (by name).
            for proc in [true, false] {
                let dir = tempfile::tempdir().unwrap();
                let dest = dir.path().join("conf");
                std::fs::write(&dest, "old\n").unwrap();
                std::fs::set_permissions(&dest, std::fs::Permissions::from_mode(0o640)).unwrap();
                let Ok(put) = put_script(&Put {
                    mode: 0o604,
                    keep: None,
                    owner: None,
                    group: None,
                    backup: true,
                }) else {
                    panic!("no script");
                };
                let put = if proc {
                    put
                } else {
                    put.replace("[ -d /proc/self/fd ]", "false")
                };
                let script = format!("set -e\nd={}\n{put}", sh_quote(&dest.display().to_string()));
                let out = run_in(shell, &script, b"new\n");
                let what = format!("{shell}, /proc {proc}: {out:?}");
                assert!(out.status.success(), "{what}");
                assert!(std::fs::symlink_metadata(&dest).unwrap().is_file());
                assert_eq!(std::fs::read_to_string(&dest).unwrap(), "new\n", "{what}");
                assert_eq!(mode(&dest), 0o604, "{what}");
                let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
                let backup = stdout
                    .lines()
                    .find_map(|l| l.strip_prefix("backup="))
                    .unwrap_or_else(|| panic!("no backup: {what}"));
                let backup = Path::new(backup);
                assert_eq!(std::fs::read_to_string(backup).unwrap(), "old\n");
                assert_eq!(mode(backup), 0o640, "{what}");
                let name = backup.file_name().unwrap().to_string_lossy().into_owned();
                assert!(name.starts_with("conf.") && name.ends_with('~'), "{name}");
                // Nothing else is left behind.
                assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2, "{what}");
            }
        }
    }

    #[test]
    fn attributes_are_set_on_the_file_itself_never_through_a_link_in_its_place() {
        use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o7777;
        for shell in SHELLS {
            for proc in [true, false] {
                let what = format!("{shell}, /proc {proc}");
                let dir = tempfile::tempdir().unwrap();
                let at = |n: &str| dir.path().join(n);
                let q = |n: &str| sh_quote(&at(n).display().to_string());
                let victim = at("victim");
                std::fs::write(&victim, "secret").unwrap();
                std::fs::set_permissions(&victim, std::fs::Permissions::from_mode(0o600)).unwrap();
                std::fs::write(at("file"), "x").unwrap();
                std::fs::create_dir(at("dir")).unwrap();
                std::os::unix::fs::symlink(&victim, at("planted")).unwrap();
                let run = |lines: &str| {
                    let text = format!("{SETATTR}set -e\n{lines}");
                    let text = if proc {
                        text
                    } else {
                        text.replace("[ -d /proc/self/fd ]", "false")
                    };
                    run_in(shell, &text, b"")
                };
                let file = run(&format!(
                    "sa 0 4321 4322 604 0 {}\nsa 0 '' '' 711 0 {}\n",
                    q("file"),
                    q("dir")
                ));
                assert!(file.status.success(), "{what}: {file:?}");
                assert_eq!(mode(&at("file")), 0o604, "{what}");
                let m = std::fs::metadata(at("file")).unwrap();
                assert_eq!((m.uid(), m.gid()), (4321, 4322), "{what}");
                assert_eq!(mode(&at("dir")), 0o711, "{what}");
                // A link where a file was: refused, its target untouched.
                let before = std::fs::metadata(&victim).unwrap().mtime();
                for flags in ["0 4321 '' 644 0", "0 '' '' '' 1"] {
                    let out = run(&format!("sa {flags} {}\n", q("planted")));
                    assert!(!out.status.success(), "{what}: {flags}: {out:?}");
                    assert!(
                        String::from_utf8_lossy(&out.stderr).contains("symbolic link"),
                        "{what}: {out:?}"
                    );
                }
                let v = std::fs::metadata(&victim).unwrap();
                assert_eq!(
                    (v.uid(), mode(&victim), v.mtime()),
                    (0, 0o600, before),
                    "{what}"
                );
                // Following a link is asked for: its target is the file.
                let out = run(&format!("sa 1 '' '' 640 0 {}\n", q("planted")));
                assert!(out.status.success(), "{what}: {out:?}");
                assert_eq!(mode(&victim), 0o640, "{what}");
            }
        }
    }

    #[test]
    fn a_name_that_is_no_longer_the_opened_file_is_refused() {
        use std::os::unix::fs::PermissionsExt as _;
        // A `stat` that reports another inode for the name than for the descriptor, as
        // after a swap between the open and the check.
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("bin");
        std::fs::create_dir(&bin).unwrap();
        std::fs::write(
            bin.join("stat"),
            "#!/bin/sh\ncase \"$*\" in *-L*) exec /usr/bin/stat \"$@\";; *) echo 0:0;; esac\n",
        )
        .unwrap();
        std::fs::set_permissions(bin.join("stat"), std::fs::Permissions::from_mode(0o755)).unwrap();
        let file = dir.path().join("file");
        std::fs::write(&file, "x").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        for shell in SHELLS {
            let text = format!(
                "PATH={}:$PATH\n{SETATTR}sa 0 '' '' 666 0 {}\n",
                bin.display(),
                sh_quote(&file.display().to_string())
            );
            let out = run_in(shell, &text, b"");
            assert!(!out.status.success(), "{shell}: {out:?}");
            assert!(
                String::from_utf8_lossy(&out.stderr).contains("changed while"),
                "{shell}: {out:?}"
            );
            let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o7777;
            assert_eq!(mode, 0o600, "{shell}");
        }
    }

    #[test]
    fn meta_lines_parse() {
        let m = parse_meta("stat:regular file|644|0|0|root|root|12|1").unwrap();
        assert_eq!(m.state(), "file");
        assert_eq!(m.mode, 0o644);
        assert_eq!(parse_meta("stat:-"), None);
    }
}
