//! The modules a plan's tasks call, and the interface every module implements.
//!
//! A module gets its arguments already rendered (templates resolved by the executor)
//! and a [`Ctx`] with check/diff mode and the embedded files, and answers with an
//! [`Outcome`] whose `data` holds the fields Ansible registers (rc, stdout, path, ...).
//! A module never exits the process or panics: argument problems are
//! [`ModuleError::BadArgs`] naming the argument, everything else a failed [`Outcome`].

mod acl;
mod alternatives;
mod apt_key;
mod apt_repository;
mod archive;
mod archive_fmt;
pub mod args;
mod argspec;
mod assemble;
mod asuser;
pub mod async_job;
mod at;
mod authorized_key;
mod capabilities;
mod command;
mod control;
mod copy;
mod cron;
pub mod custom;
mod deb822_repository;
mod debian;
pub mod fetch;
mod file;
mod find;
pub(crate) mod fsutil;
// Entry points for the fuzz targets (fuzz/); absent from every normal build.
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
mod get_url;
mod getent;
mod git;
mod hostname;
mod iflags;
mod ini_file;
mod iptables;
mod known_hosts;
mod library;
mod locale_gen;
mod make;
mod misc;
mod modprobe;
mod mount;
mod package;
mod package_facts;
mod pam_limits;
mod patch;
pub mod paths;
mod pip;
mod proc;
mod rpm_key;
mod script;
mod service;
mod service_facts;
mod slurp;
mod stat;
mod synchronize;
mod sysctl;
mod tempfile;
mod template;
mod text;
mod timezone;
mod tools;
mod ufw;
mod uri;
mod user;
mod wait_for;
mod yum_repository;

pub use asuser::{CHILD_FLAG, child_main};
pub use async_job::{JOB_FLAG, job_main};
pub use library::{LIBRARY_PREFIX, is_custom};

pub use command::COMMON as COMMAND_ARGS;
pub use command::expand_word as expand_command_word;
pub use command::split as split_command_line;
pub use command::{finished as command_finished, not_run as command_not_run};
pub use command::{not_run_by as command_not_run_by, would_run as command_would_run};
pub use copy::KNOWN as COPY_ARGS;
pub use copy::action_check as copy_action_check;
pub use script::first_word as script_first_word;
pub use script::quote as sh_quote;
pub use template::KNOWN as TEMPLATE_ARGS;

use crate::plan::{HostFile, Vars};
use crate::privilege::RunAs;
use crate::template::Engine;
use std::borrow::Cow;
use std::collections::BTreeMap;

/// What a module may use besides its arguments.
pub struct Ctx<'a> {
    /// Report what would change, change nothing.
    pub check_mode: bool,
    /// Fill [`Outcome::diff`] for files that change.
    pub diff_mode: bool,
    /// Files embedded in the payload, by the name tasks use for them.
    pub files: &'a BTreeMap<String, HostFile>,
    /// The directories and links of the trees those files come from.
    pub layout: &'a crate::plan::Layout,
    /// The templating engine (for the template module).
    pub engine: &'a Engine,
    /// The task's variables as a template context (for the template module).
    pub vars: &'a minijinja::Value,
    /// The task's `environment`, for every process a module starts.
    pub env: &'a [(String, String)],
    /// The user the task's processes run as (`become_user`), when not the runner's.
    pub run_as: Option<&'a RunAs>,
}

impl Ctx<'_> {
    /// A process to start for this task: with the task's `environment` and, under
    /// `become_user`, that user's identity. Modules start every process through this.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> std::process::Command {
        let mut cmd = std::process::Command::new(program);
        if let Some(who) = self.run_as {
            use std::os::unix::process::CommandExt as _;
            cmd.uid(who.uid)
                .gid(who.gid)
                .env("HOME", &who.home)
                .env("USER", &who.user)
                .env("LOGNAME", &who.user);
        }
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)));
        cmd
    }
}

/// A before/after pair for diff mode.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Diff {
    /// What the "before" side is, e.g. the path.
    pub before_header: String,
    /// What the "after" side is.
    pub after_header: String,
    /// Content or state before.
    pub before: String,
    /// Content or state after.
    pub after: String,
}

/// What a module did. It crosses a pipe (MessagePack) when the module ran as another
/// user (see `asuser`).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Outcome {
    /// Something changed (or would have, in check mode).
    pub changed: bool,
    /// The module failed.
    pub failed: bool,
    /// The module decided not to act (e.g. command in check mode).
    pub skipped: bool,
    /// A human message (`msg`).
    pub msg: Option<String>,
    /// Fields registered with the result (rc, stdout, path, stat, ansible_facts, ...).
    pub data: Vars,
    /// Diffs, in diff mode.
    pub diff: Vec<Diff>,
}

impl Outcome {
    /// An unchanged, successful outcome.
    pub fn ok() -> Outcome {
        Outcome::default()
    }

    /// A successful outcome that changed something when `changed`.
    pub fn changed(changed: bool) -> Outcome {
        Outcome {
            changed,
            ..Outcome::default()
        }
    }

    /// A failed outcome with a message.
    pub fn fail(msg: impl Into<String>) -> Outcome {
        Outcome {
            failed: true,
            msg: Some(msg.into()),
            ..Outcome::default()
        }
    }

    /// Adds a warning to the result's `warnings` (Ansible's `module.warn`): the deployer
    /// prints it as `[WARNING]: ...`.
    pub fn warn(mut self, warning: impl Into<String>) -> Outcome {
        let w = serde_json::Value::String(warning.into());
        match self.data.get_mut("warnings") {
            Some(serde_json::Value::Array(list)) => list.push(w),
            _ => {
                self.data
                    .insert("warnings".to_string(), serde_json::Value::Array(vec![w]));
            }
        }
        self
    }

    /// Adds a registered field.
    pub fn with(mut self, key: &str, value: impl Into<serde_json::Value>) -> Outcome {
        self.data.insert(key.to_string(), value.into());
        self
    }

    /// Sets the message.
    pub fn msg(mut self, msg: impl Into<String>) -> Outcome {
        self.msg = Some(msg.into());
        self
    }
}

/// A task the module could not even attempt.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ModuleError {
    /// A missing, unknown or ill-typed argument; the message names it.
    #[error("{0}")]
    BadArgs(String),
    /// The module does not exist in this runner.
    #[error("module '{0}' is not supported by rustle-deploy yet")]
    Unsupported(String),
}

/// The modules this runner implements. The packer refuses plans that use others.
pub const SUPPORTED: &[&str] = &[
    "acl",
    // Handled by the executor itself: they change the run's `groups`.
    "add_host",
    "alternatives",
    "apk",
    "apt",
    "apt_key",
    "apt_repository",
    "archive",
    "assemble",
    "assert",
    "async_status",
    "at",
    "authorized_key",
    "blockinfile",
    "capabilities",
    "command",
    "copy",
    "cron",
    "deb822_repository",
    "debconf",
    "debug",
    "dnf",
    "dnf5",
    "dpkg_selections",
    "fail",
    "fetch",
    "file",
    "find",
    "gather_facts",
    "get_url",
    "getent",
    "git",
    "group",
    // Handled by the executor itself, as `add_host`.
    "group_by",
    "hostname",
    "include_vars",
    "ini_file",
    "iptables",
    "known_hosts",
    "lineinfile",
    "locale_gen",
    "make",
    // Handled by the executor itself (flush_handlers, end_play, ...), not by `run`.
    "meta",
    "modprobe",
    "mount",
    "package",
    "package_facts",
    "pam_limits",
    "patch",
    "pause",
    "ping",
    "pip",
    "raw",
    "replace",
    "rpm_key",
    "script",
    "service",
    "service_facts",
    "set_fact",
    "set_stats",
    "setup",
    "shell",
    "slurp",
    "stat",
    "synchronize",
    "sysctl",
    "systemd",
    "systemd_service",
    "tempfile",
    "template",
    "timezone",
    "ufw",
    "unarchive",
    "uri",
    "user",
    "validate_argument_spec",
    "wait_for",
    "wait_for_connection",
    "yum",
    "yum_repository",
];

pub use argspec::role_argument_check;
pub use synchronize::ON_HOST as SYNCHRONIZE_ON_HOST;

/// True when `module` (its [`canonical`] name) is implemented here.
pub fn is_supported(module: &str) -> bool {
    SUPPORTED.contains(&module)
}

/// The modules of collections this runner implements, by collection. ansible-core
/// redirects their short names (`mount`, `ansible.builtin.sysctl`) to these collections
/// (its `ansible_builtin_runtime.yml`), so the short name, the `ansible.builtin.` name and
/// the collection's name all reach the same module.
const COLLECTION_MODULES: &[(&str, &[&str])] = &[
    (
        "ansible.posix.",
        &[
            "acl",
            "at",
            "authorized_key",
            "mount",
            "patch",
            "synchronize",
            "sysctl",
        ],
    ),
    (
        "community.general.",
        &[
            "alternatives",
            "capabilities",
            "ini_file",
            "locale_gen",
            "make",
            "modprobe",
            "pam_limits",
            "timezone",
            "ufw",
        ],
    ),
];

/// The name a task's module is known by here: without `ansible.builtin.` /
/// `ansible.legacy.`, and a collection's module that this runner implements by its short
/// name. Anything else is returned as written (and is refused, or is a plan's own).
pub fn canonical(module: &str) -> &str {
    if let Some(short) = module
        .strip_prefix("ansible.builtin.")
        .or_else(|| module.strip_prefix("ansible.legacy."))
    {
        return short;
    }
    for (prefix, names) in COLLECTION_MODULES {
        if let Some(short) = module.strip_prefix(prefix)
            && names.contains(&short)
        {
            return short;
        }
    }
    module
}

/// Modules whose tools and files exist on Linux only (Debian's package configuration,
/// Linux PAM and kernel modules, the Linux service managers).
const LINUX_ONLY: &[&str] = &[
    "acl",
    "alternatives",
    "apt_key",
    "apt_repository",
    "capabilities",
    "deb822_repository",
    "debconf",
    "dpkg_selections",
    "iptables",
    "locale_gen",
    "modprobe",
    "mount",
    "pam_limits",
    "rpm_key",
    "service_facts",
    "timezone",
    "ufw",
    "yum_repository",
];

/// A module that cannot work on this host's platform fails on that host, naming the
/// module and the platform, rather than refusing the whole deploy when it is planned.
fn platform_refusal(module: &str, os: &str) -> Option<Outcome> {
    (LINUX_ONLY.contains(&module) && os != "linux").then(|| {
        Outcome::fail(format!(
            "module '{module}' is not supported on this host's platform ({os}): it works on Linux only"
        ))
    })
}

/// The modules that take Ansible's file arguments (`add_file_common_args`).
const FILE_COMMON_MODULES: &[&str] = &[
    "archive",
    "assemble",
    "blockinfile",
    "copy",
    "file",
    "get_url",
    "ini_file",
    "lineinfile",
    "replace",
    "template",
    "unarchive",
    "uri",
    "yum_repository",
];

/// The file arguments that set an SELinux context.
const SELINUX_ARGS: &[&str] = &["seuser", "serole", "setype", "selevel"];

/// A file module's arguments without the SELinux context ones, which change nothing
/// on a host without SELinux, as Ansible ignores them there; on a host with SELinux
/// enabled the task fails naming them (the runner does not set contexts yet).
fn without_selinux<'a>(module: &str, args: &'a Vars) -> Result<Cow<'a, Vars>, Outcome> {
    let given: Vec<&str> = SELINUX_ARGS
        .iter()
        .copied()
        .filter(|k| args.contains_key(*k))
        .collect();
    if given.is_empty() || !FILE_COMMON_MODULES.contains(&module) {
        return Ok(Cow::Borrowed(args));
    }
    if selinux_enabled() {
        return Err(Outcome::fail(format!(
            "{module}: SELinux is enabled on this host, and setting a file's SELinux context ({}) is not supported by rustle-deploy yet",
            given.join(", ")
        )));
    }
    let mut kept = args.clone();
    for k in given {
        kept.shift_remove(k);
    }
    Ok(Cow::Owned(kept))
}

/// Whether the host enforces or logs SELinux (its file system is mounted).
#[cfg(target_os = "linux")]
fn selinux_enabled() -> bool {
    std::path::Path::new("/sys/fs/selinux/enforce").exists()
}

/// Whether the host enforces or logs SELinux: never off Linux.
#[cfg(not(target_os = "linux"))]
fn selinux_enabled() -> bool {
    false
}

/// Runs a module.
pub fn run(module: &str, args: &Vars, ctx: &Ctx<'_>) -> Result<Outcome, ModuleError> {
    if let Some(refusal) = platform_refusal(module, std::env::consts::OS) {
        return Ok(refusal);
    }
    let args = &*paths::expand(module, args, ctx);
    let args = match without_selinux(module, args) {
        Ok(a) => a,
        Err(refusal) => return Ok(refusal),
    };
    let args = &*args;
    match module {
        "async_status" => async_job::run(args, ctx),
        "command" => command::command(args, ctx),
        "shell" => command::shell(args, ctx),
        "copy" => copy::run(args, ctx),
        "cron" => cron::run(args, ctx),
        "file" => file::run(args, ctx),
        "template" => template::run(args, ctx),
        "stat" => stat::run(args, ctx),
        "find" => find::run(args, ctx),
        "slurp" => slurp::run(args, ctx),
        // The executor reads the file with slurp and hands it to the controller.
        "fetch" => Ok(Outcome::fail(
            "fetch runs in a host's executor, which hands the file to the controller: it cannot run here",
        )),
        "get_url" => get_url::run(args, ctx),
        "getent" => getent::run(args, ctx),
        "tempfile" => tempfile::run(args, ctx),
        "archive" => archive::archive(args, ctx),
        "assemble" => assemble::run(args, ctx),
        "unarchive" => archive::unarchive(args, ctx),
        "debug" => control::debug(args, ctx),
        "set_fact" => control::set_fact(args, ctx),
        "set_stats" => control::set_stats(args, ctx),
        "validate_argument_spec" => argspec::run(args, ctx),
        "assert" => control::assert(args, ctx),
        "fail" => control::fail(args, ctx),
        "include_vars" => control::include_vars(args, ctx),
        "lineinfile" => text::lineinfile(args, ctx),
        "ini_file" => ini_file::run(args, ctx),
        "known_hosts" => known_hosts::run(args, ctx),
        "authorized_key" => authorized_key::run(args, ctx),
        "debconf" => debian::debconf(args, ctx),
        "dpkg_selections" => debian::dpkg_selections(args, ctx),
        "pam_limits" => pam_limits::run(args, ctx),
        "patch" => patch::run(args, ctx),
        "timezone" => timezone::run(args, ctx),
        "package_facts" => package_facts::run(args, ctx),
        "service_facts" => service_facts::run(args, ctx),
        "modprobe" => modprobe::run(args, ctx),
        "acl" => acl::run(args, ctx),
        "at" => at::run(args, ctx),
        "synchronize" => synchronize::run(args, ctx),
        "make" => make::run(args, ctx),
        "rpm_key" => rpm_key::run(args, ctx),
        "capabilities" => capabilities::run(args, ctx),
        "yum_repository" => yum_repository::run(args, ctx),
        "alternatives" => alternatives::run(args, ctx),
        "locale_gen" => locale_gen::run(args, ctx),
        "iptables" => iptables::run(args, ctx),
        "git" => git::run(args, ctx),
        "mount" => mount::run(args, ctx),
        "apt_key" => apt_key::run(args, ctx),
        "apt_repository" => apt_repository::run(args, ctx),
        "deb822_repository" => deb822_repository::run(args, ctx),
        "uri" => uri::run(args, ctx),
        "ufw" => ufw::run(args, ctx),
        "blockinfile" => text::blockinfile(args, ctx),
        "replace" => text::replace(args, ctx),
        "package" => package::package(args, ctx),
        "apt" => package::apt(args, ctx),
        "dnf" => package::dnf(args, ctx),
        "dnf5" => package::dnf5(args, ctx),
        "yum" => package::yum(args, ctx),
        "apk" => package::apk(args, ctx),
        "service" => service::service(args, ctx),
        "systemd" | "systemd_service" => service::systemd(args, ctx),
        "sysctl" => sysctl::run(args, ctx),
        "hostname" => hostname::run(args, ctx),
        "user" => user::user(args, ctx),
        "group" => user::group_module(args, ctx),
        "wait_for" => wait_for::run(args, ctx),
        "pip" => pip::run(args, ctx),
        "ping" => misc::ping(args, ctx),
        "pause" => misc::pause(args, ctx),
        "wait_for_connection" => misc::wait_for_connection(args, ctx),
        "setup" => misc::setup(args, ctx),
        "gather_facts" => misc::gather_facts(args, ctx),
        "script" => script::script(args, ctx),
        "raw" => script::raw(args, ctx),
        // Not built in: a script module shipped in the payload's library/, if any,
        // else a Rust module compiled into a custom runner (the generic runner has none).
        other if library::is_custom(other, ctx.files) => library::run(other, args, ctx),
        other => match custom::find(other) {
            Some(f) => Ok(custom::call(other, f, args, ctx.check_mode)),
            None => Err(ModuleError::Unsupported(other.to_string())),
        },
    }
}

/// Where the executor's modules run and its facts come from: this machine ([`Local`],
/// the runner), or a host the deployer drives over SSH one module at a time (its SSH
/// mode), so both share one executor and the same semantics.
pub trait ModuleHost {
    /// Runs one module with its rendered arguments.
    fn run(&mut self, module: &str, args: &Vars, ctx: &Ctx<'_>) -> Result<Outcome, ModuleError>;

    /// The host's facts, for `gather_facts`.
    fn facts(&mut self) -> Vars {
        crate::facts::gather()
    }

    /// The facts of the host's Python (`ansible_python`, `ansible_python_version`),
    /// which gathering adds only for plans that mention them (they cost a process).
    fn python_facts(&mut self) -> Option<Vars> {
        crate::facts::python()
    }

    /// The user tasks run as, for the `become` check.
    fn user(&mut self) -> Option<String> {
        crate::facts::current_user()
    }

    /// Whether tasks run as root (and so may switch to a `become_user`).
    fn is_root(&mut self) -> bool {
        crate::facts::current_uid() == Some(0)
    }

    /// A `become_user` looked up in the host's password database.
    fn lookup_user(&mut self, user: &str) -> Option<RunAs> {
        RunAs::lookup(user)
    }

    /// Starts `module` as an `async` background job of at most `limit` seconds with its
    /// status file in `dir` ([`async_job::start`]). Only a runner on the host can leave
    /// a job running there; elsewhere (SSH mode) the task fails saying so.
    fn start_async(
        &mut self,
        module: &str,
        _args: &Vars,
        _ctx: &Ctx<'_>,
        _dir: &std::path::Path,
        _limit: u64,
    ) -> Result<(async_job::Started, Vars), String> {
        Err(format!(
            "async: the module '{module}' cannot run as a background job here: background jobs need the runner on the host (not SSH mode)"
        ))
    }

    /// Whether the executor runs on the controller (SSH mode), where `fetch` writes the
    /// host's file itself instead of sending it to the deployer.
    fn on_controller(&self) -> bool {
        false
    }

    /// Whether job status files are on this machine (`async: N` with `poll` waits by
    /// reading them).
    fn local_jobs(&self) -> bool {
        false
    }
}

/// Modules that run in this process even for a task whose `become_user` is not the
/// runner's user: those that touch nothing on the host themselves, and those that do all
/// their work in processes they start through [`Ctx::command`], which takes the task's
/// identity. Every other module runs as that user in a child runner (see `asuser`).
const IN_PROCESS: &[&str] = &[
    "assert",
    "async_status",
    "command",
    "debug",
    "fail",
    "include_vars",
    "pause",
    "ping",
    "raw",
    "script",
    "set_fact",
    "set_stats",
    "shell",
    "validate_argument_spec",
    "wait_for_connection",
];

/// True when `module` runs in the runner's own process whatever the task's user; a
/// playbook's `library/` script module also starts its process through [`Ctx::command`].
pub fn runs_in_process(module: &str, files: &BTreeMap<String, HostFile>) -> bool {
    IN_PROCESS.contains(&module) || library::is_custom(module, files)
}

/// Modules run right here, in this process; for a task whose `become_user` is not the
/// runner's own user, in a child runner process with that user's identity (made only
/// when such a task runs).
#[derive(Debug, Default)]
pub struct Local {
    as_user: asuser::Children,
}

impl Local {
    /// Modules for another user run in a copy of `runner` (a `rustle-runner` executable)
    /// instead of a copy of this process's executable: for tests, whose executable is a
    /// test harness.
    pub fn with_runner(runner: impl Into<std::path::PathBuf>) -> Local {
        Local {
            as_user: asuser::Children::from(runner.into()),
        }
    }
}

impl ModuleHost for Local {
    fn run(&mut self, module: &str, args: &Vars, ctx: &Ctx<'_>) -> Result<Outcome, ModuleError> {
        match ctx.run_as {
            Some(who) if !runs_in_process(module, ctx.files) => {
                self.as_user.run(module, args, ctx, who)
            }
            _ => run(module, args, ctx),
        }
    }

    fn start_async(
        &mut self,
        module: &str,
        args: &Vars,
        ctx: &Ctx<'_>,
        dir: &std::path::Path,
        limit: u64,
    ) -> Result<(async_job::Started, Vars), String> {
        if let Some(who) = ctx.run_as {
            return Err(format!(
                "async with become_user '{}' (not the runner's user) is not supported yet: the background job would run as the runner's user",
                who.user
            ));
        }
        let exe = self
            .as_user
            .source()
            .map_err(|e| format!("cannot find the runner executable: {e}"))?;
        async_job::start(&exe, module, args, ctx, dir, limit)
    }

    fn local_jobs(&self) -> bool {
        true
    }
}

/// Module test arguments: `args` with every `{p}` replaced by `dir` (the test's
/// temporary directory).
#[cfg(test)]
#[allow(clippy::panic)]
pub(crate) fn args_in(dir: &std::path::Path, args: &serde_json::Value) -> Vars {
    let text = args.to_string().replace("{p}", &dir.display().to_string());
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("test arguments {text}: {e}"))
}

/// What a module's [`Ctx`] borrows, for module tests that call a module's own entry
/// point (with test places): no embedded files, no variables.
#[cfg(test)]
pub(crate) struct TestCtx {
    files: BTreeMap<String, HostFile>,
    layout: crate::plan::Layout,
    engine: Engine,
    vars: minijinja::Value,
}

#[cfg(test)]
impl TestCtx {
    pub(crate) fn new() -> TestCtx {
        TestCtx {
            files: BTreeMap::new(),
            layout: crate::plan::Layout::default(),
            engine: Engine::new(),
            vars: minijinja::Value::from(()),
        }
    }

    /// A context in check mode or not, diff mode or not.
    pub(crate) fn ctx(&self, check_mode: bool, diff_mode: bool) -> Ctx<'_> {
        Ctx {
            check_mode,
            diff_mode,
            files: &self.files,
            layout: &self.layout,
            engine: &self.engine,
            vars: &self.vars,
            env: &[],
            run_as: None,
        }
    }
}

/// Runs `module` with `args` (see [`args_in`]), no embedded files and no variables.
#[cfg(test)]
pub(crate) fn run_in_dir_for_test(
    module: &str,
    dir: &std::path::Path,
    args: &serde_json::Value,
    check_mode: bool,
) -> Result<Outcome, ModuleError> {
    let files = BTreeMap::<String, HostFile>::new();
    run_for_test(
        module,
        &args_in(dir, args),
        &files,
        &serde_json::json!({}),
        check_mode,
    )
}

/// Runs a module with JSON arguments, no files and no variables, for the module tests.
#[cfg(test)]
pub(crate) fn run_args_for_test(
    module: &str,
    args: serde_json::Value,
    check_mode: bool,
) -> Result<Outcome, ModuleError> {
    let args = args.as_object().cloned().unwrap_or_default();
    run_for_test(
        module,
        &args,
        &BTreeMap::new(),
        &serde_json::json!({}),
        check_mode,
    )
}

/// Runs a module as the executor would (diff mode on), for the module tests.
#[cfg(test)]
pub(crate) fn run_for_test(
    module: &str,
    args: &Vars,
    files: &BTreeMap<String, HostFile>,
    vars: &serde_json::Value,
    check_mode: bool,
) -> Result<Outcome, ModuleError> {
    let engine = Engine::new();
    let vars = minijinja::Value::from_serialize(vars);
    let layout = crate::plan::Layout::default();
    let ctx = Ctx {
        check_mode,
        diff_mode: true,
        files,
        layout: &layout,
        engine: &engine,
        vars: &vars,
        env: &[],
        run_as: None,
    };
    run(module, args, &ctx)
}

#[cfg(test)]
mod routing_tests {
    use super::canonical;

    #[test]
    fn builtin_collection_and_short_names_reach_one_module() {
        assert_eq!(canonical("ansible.builtin.getent"), "getent");
        assert_eq!(canonical("ansible.legacy.getent"), "getent");
        assert_eq!(canonical("ansible.builtin.sysctl"), "sysctl");
        assert_eq!(canonical("ansible.posix.sysctl"), "sysctl");
        assert_eq!(canonical("community.general.ini_file"), "ini_file");
        assert_eq!(canonical("ansible.builtin.ini_file"), "ini_file");
        assert_eq!(canonical("ansible.posix.authorized_key"), "authorized_key");
        // A collection's module the runner lacks keeps its name, so the refusal names it.
        assert_eq!(
            canonical("community.general.zypper"),
            "community.general.zypper"
        );
        assert_eq!(canonical("ansible.posix.getent"), "ansible.posix.getent");
    }

    #[test]
    fn a_linux_only_module_fails_on_another_platform_naming_both() {
        let o = super::platform_refusal("debconf", "macos").unwrap();
        assert!(o.failed);
        assert_eq!(
            o.msg.as_deref(),
            Some(
                "module 'debconf' is not supported on this host's platform (macos): it works on Linux only"
            )
        );
        assert!(super::platform_refusal("debconf", "linux").is_none());
        assert!(super::platform_refusal("ini_file", "macos").is_none());
    }
}
