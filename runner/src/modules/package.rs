//! Package modules: `package` (picks the host's manager), `apt`, `dnf`/`yum` and `apk`.
//!
//! Each asks the package database what is installed first (dpkg-query, rpm -q,
//! apk info -e) and runs the manager only for what must change, so an installed
//! package is ok without the manager ever running. The tools run with argument
//! vectors and, for apt, DEBIAN_FRONTEND=noninteractive; their stdout and stderr are
//! registered, and a failure's msg carries the command and what it said.
//! Not supported: apt `state: build-dep`/`fixed`, `clean`/`autoclean`, `policy_rc_d`,
//! URLs in `deb` (the runner makes no downloads); dnf/yum package groups (`@group`).

use super::fsutil::{self, Step, Stop, fail, failed};
use super::proc::{self, Ran};
use super::{Ctx, ModuleError, Outcome, args};
use crate::plan::Vars;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// Managers `package` looks for, in order, with the module that drives each.
const MANAGERS: &[(&str, &str)] = &[
    ("apt-get", "apt"),
    ("dnf", "dnf"),
    ("yum", "yum"),
    ("apk", "apk"),
];

/// Where Debian's invoke-rc.d asks whether a package may start its service.
const POLICY_RC_D: &str = "/usr/sbin/policy-rc.d";

/// A policy-rc.d that exits with a given code while this lives (apt's `policy_rc_d`);
/// one the host had is set aside beside it and put back when this is dropped.
struct PolicyRcD {
    path: PathBuf,
    kept: Option<PathBuf>,
}

impl PolicyRcD {
    fn install(path: &Path, code: i64) -> Step<PolicyRcD> {
        use std::io::Write as _;
        use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
        let kept = if std::fs::symlink_metadata(path).is_ok() {
            let aside =
                path.with_file_name(format!(".policy-rc.d.rustle-{}", crate::random::tag()));
            std::fs::rename(path, &aside).map_err(|e| fsutil::io_fail("set aside", path, &e))?;
            Some(aside)
        } else {
            None
        };
        let guard = PolicyRcD {
            path: path.to_path_buf(),
            kept,
        };
        // A new file (never through a link someone left), executable by all as the
        // module makes it.
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o755)
            .open(path)
            .map_err(|e| fsutil::io_fail("create", path, &e))?;
        f.write_all(format!("#!/bin/sh\nexit {code}\n").as_bytes())
            .and_then(|()| f.set_permissions(std::fs::Permissions::from_mode(0o755)))
            .map_err(|e| fsutil::io_fail("write", path, &e))?;
        Ok(guard)
    }
}

impl Drop for PolicyRcD {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
        if let Some(aside) = &self.kept {
            let _ = std::fs::rename(aside, &self.path);
        }
    }
}

/// The generic `package` module: hands its arguments to the host's manager module.
pub(super) fn package(a: &Vars, ctx: &Ctx<'_>) -> Result<Outcome, ModuleError> {
    let wanted = args::opt_str(a, "use")?.unwrap_or_else(|| "auto".into());
    let module = if wanted == "auto" {
        match detect() {
            Some(m) => m,
            None => {
                return Ok(Outcome::fail(format!(
                    "no package manager found on this host: looked for {} in PATH and the sbin directories",
                    MANAGERS
                        .iter()
                        .map(|(tool, _)| *tool)
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
        }
    } else {
        wanted.as_str()
    };
    let mut rest = a.clone();
    rest.shift_remove("use");
    match module {
        "apt" => apt(&rest, ctx),
        "dnf" => dnf(&rest, ctx),
        "dnf5" => dnf5(&rest, ctx),
        "yum" => yum(&rest, ctx),
        "apk" => apk(&rest, ctx),
        other => Err(ModuleError::BadArgs(format!(
            "argument 'use' must be auto, apt, dnf, dnf5, yum or apk, got '{other}'"
        ))),
    }
}

/// The manager module for this host, by which manager executable exists.
fn detect() -> Option<&'static str> {
    MANAGERS
        .iter()
        .find(|(tool, _)| proc::find(tool).is_some())
        .map(|(_, module)| *module)
}

/// Finds a tool the module needs, or fails naming it and where we looked.
fn need(tool: &str, module: &str) -> Step<PathBuf> {
    proc::find(tool).ok_or_else(|| {
        failed(Outcome::fail(format!(
            "the {module} module needs '{tool}', which was not found on this host (looked in PATH and the sbin directories); is this the right package manager for it?"
        )))
    })
}

/// Package names: a list, or a string that may hold several names separated by
/// commas (Ansible's list conversion), from `name` or its aliases.
fn names(a: &Vars, keys: &[&str]) -> Result<Vec<String>, ModuleError> {
    for k in keys {
        let items = args::str_list(a, k)?;
        if !items.is_empty() {
            return Ok(items
                .iter()
                .flat_map(|s| s.split(','))
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect());
        }
    }
    Ok(Vec::new())
}

/// The first boolean given among an argument and its aliases.
fn bool_alias(a: &Vars, keys: &[&str]) -> Result<Option<bool>, ModuleError> {
    for k in keys {
        if let Some(b) = args::opt_bool(a, k)? {
            return Ok(Some(b));
        }
    }
    Ok(None)
}

/// The first string given among an argument and its aliases.
fn str_alias(a: &Vars, keys: &[&str]) -> Result<Option<String>, ModuleError> {
    for k in keys {
        if let Some(s) = args::opt_str(a, k)? {
            return Ok(Some(s));
        }
    }
    Ok(None)
}

/// What a state argument asks for, with the synonyms the managers share.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Want {
    Present,
    Absent,
    Latest,
}

fn want(a: &Vars, module: &str) -> Result<Want, ModuleError> {
    match args::opt_str(a, "state")?.as_deref() {
        None | Some("present" | "installed") => Ok(Want::Present),
        Some("absent" | "removed") => Ok(Want::Absent),
        Some("latest") => Ok(Want::Latest),
        Some(other) => Err(ModuleError::BadArgs(format!(
            "argument 'state' of {module} must be present, installed, absent, removed or latest, got '{other}'"
        ))),
    }
}

/// Runs a manager command; a process that cannot start is a failed outcome.
fn exec(program: &Path, argv: &[String], env: &[(&str, &str)]) -> Step<Ran> {
    proc::run(program, argv, env).map_err(|e| failed(Outcome::fail(e)))
}

/// A failed manager command as Ansible reports it: the command line and its words.
fn cmd_failed(program: &Path, argv: &[String], r: &Ran) -> Stop {
    let line = std::iter::once(program.display().to_string())
        .chain(argv.iter().cloned())
        .collect::<Vec<_>>()
        .join(" ");
    failed(
        proc::with_output(
            Outcome::fail(format!("'{line}' failed: {}", r.why())),
            &r.stdout,
            &r.stderr,
        )
        .with("rc", r.rc)
        .with("cmd", proc::shown(program, argv)),
    )
}

/// Collects the output of the commands a task ran, for `stdout`/`stderr`.
#[derive(Default)]
struct Output {
    stdout: String,
    stderr: String,
}

impl Output {
    fn add(&mut self, r: &Ran) {
        for (acc, text) in [(&mut self.stdout, &r.stdout), (&mut self.stderr, &r.stderr)] {
            if !text.is_empty() {
                if !acc.is_empty() {
                    acc.push('\n');
                }
                acc.push_str(text);
            }
        }
    }
}

// ---------------------------------------------------------------------------
// apt

const APT_ARGS: &[&str] = &[
    "policy_rc_d",
    "name",
    "pkg",
    "package",
    "state",
    "deb",
    "update_cache",
    "update-cache",
    "cache_valid_time",
    "purge",
    "autoremove",
    "install_recommends",
    "install-recommends",
    "allow_downgrade",
    "allow-downgrade",
    "allow_downgrades",
    "allow-downgrades",
    "allow_unauthenticated",
    "allow-unauthenticated",
    "force",
    "default_release",
    "default-release",
    "dpkg_options",
    "only_upgrade",
    "upgrade",
    "lock_timeout",
    "force_apt_get",
];

/// What apt-get and dpkg run with: no prompts (debconf included), and untranslated
/// output that we can parse.
const APT_ENV: &[(&str, &str)] = &[
    ("DEBIAN_FRONTEND", "noninteractive"),
    ("DEBIAN_PRIORITY", "critical"),
    ("LANG", "C"),
    ("LC_ALL", "C"),
];

/// Options every apt-get call that changes packages gets.
#[derive(Debug, Clone, Default, PartialEq)]
struct AptOpts {
    dpkg_options: Vec<String>,
    lock_timeout: u64,
    install_recommends: Option<bool>,
    allow_downgrade: bool,
    allow_unauthenticated: bool,
    force: bool,
    default_release: Option<String>,
    autoremove: bool,
    purge: bool,
    only_upgrade: bool,
}

/// The apt-get argument vector for `action` (install, remove, upgrade, dist-upgrade,
/// autoremove) on `pkgs`; `simulate` asks apt-get only to say what it would do.
fn apt_argv(action: &str, pkgs: &[String], o: &AptOpts, simulate: bool) -> Vec<String> {
    let mut v = vec![if simulate { "-s" } else { "-y" }.to_string(), "-q".into()];
    for opt in &o.dpkg_options {
        v.push("-o".into());
        v.push(format!("Dpkg::Options::=--{opt}"));
    }
    v.push("-o".into());
    v.push(format!("DPkg::Lock::Timeout={}", o.lock_timeout));
    match o.install_recommends {
        Some(true) => v.extend(["-o".into(), "APT::Install-Recommends=yes".into()]),
        Some(false) => v.push("--no-install-recommends".into()),
        None => {}
    }
    if o.allow_downgrade || o.force {
        v.push("--allow-downgrades".into());
    }
    if o.allow_unauthenticated || o.force {
        v.push("--allow-unauthenticated".into());
    }
    if o.force {
        v.extend([
            "--allow-remove-essential".into(),
            "--allow-change-held-packages".into(),
        ]);
    }
    if let Some(r) = &o.default_release {
        v.extend(["-t".into(), r.clone()]);
    }
    if o.autoremove && action != "autoremove" {
        v.push("--auto-remove".into());
    }
    if o.purge && (action == "remove" || action == "autoremove") {
        v.push("--purge".into());
    }
    if o.only_upgrade && action == "install" {
        v.push("--only-upgrade".into());
    }
    if action == "upgrade" {
        v.push("--with-new-pkgs".into());
    }
    v.push(action.into());
    v.extend(pkgs.iter().cloned());
    v
}

/// A package's state in dpkg's database.
#[derive(Debug, Clone, Default, PartialEq)]
struct DpkgState {
    installed: bool,
    /// Removed, but its configuration files remain (what `purge` cleans).
    config_files: bool,
    version: String,
}

/// Parses `dpkg-query -W -f='${Status} ${Version}\n'` output: "install ok installed 1.2".
/// Several lines come for a multi-arch package; any installed one counts.
fn parse_dpkg_status(out: &str) -> DpkgState {
    let mut st = DpkgState::default();
    for line in out.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        let status = words.get(2).copied().unwrap_or_default();
        let version = words.get(3).copied().unwrap_or_default();
        if status == "installed" {
            st.installed = true;
            st.version = version.to_string();
        } else if status == "config-files" && !st.installed {
            st.config_files = true;
        }
    }
    st
}

fn dpkg_state(query: &Path, name: &str) -> Step<DpkgState> {
    let r = exec(
        query,
        &proc::argv(["-W", "-f=${Status} ${Version}\n", "--", name]),
        APT_ENV,
    )?;
    // rc 1 with "no packages found": dpkg has never heard of it, so not installed.
    Ok(if r.ok() {
        parse_dpkg_status(&r.stdout)
    } else {
        DpkgState::default()
    })
}

/// The candidate version apt would install, from `apt-cache policy`; `None` when no
/// source offers the package.
fn apt_candidate(cache: &Path, name: &str) -> Step<Option<String>> {
    let r = exec(cache, &proc::argv(["policy", "--", name]), APT_ENV)?;
    Ok(r.stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("Candidate:"))
        .map(str::trim)
        .filter(|v| !v.is_empty() && *v != "(none)")
        .map(str::to_string))
}

/// `name=version` (the version may end in `*`) split in two.
fn split_version(spec: &str) -> (&str, Option<&str>) {
    match spec.split_once('=') {
        Some((n, v)) => (n, Some(v)),
        None => (spec, None),
    }
}

/// Whether an installed version satisfies a requested one (`1.2*` matches by prefix).
fn version_matches(installed: &str, wanted: &str) -> bool {
    match wanted.strip_suffix('*') {
        Some(prefix) => installed.starts_with(prefix),
        None => installed == wanted,
    }
}

/// The `apt` module.
pub(super) fn apt(a: &Vars, ctx: &Ctx<'_>) -> Result<Outcome, ModuleError> {
    fsutil::finish(apt_inner(a, ctx))
}

fn apt_inner(a: &Vars, ctx: &Ctx<'_>) -> Step<Outcome> {
    args::only(a, APT_ARGS)?;
    let pkgs = names(a, &["name", "pkg", "package"])?;
    let state = match args::opt_str(a, "state")?.as_deref() {
        Some("build-dep" | "fixed") => {
            return Err(ModuleError::BadArgs(
                "argument 'state': build-dep and fixed are not supported by this runner's apt module".into(),
            )
            .into());
        }
        _ => want(a, "apt")?,
    };
    let deb = args::opt_str(a, "deb")?;
    let cache_valid_time = match args::opt_str(a, "cache_valid_time")? {
        None => None,
        Some(s) => Some(s.trim().parse::<u64>().map_err(|_| {
            ModuleError::BadArgs(format!(
                "argument 'cache_valid_time' must be a number of seconds, got '{s}'"
            ))
        })?),
    };
    // As in Ansible since 2.4, giving cache_valid_time asks for the cache update.
    let update_cache =
        bool_alias(a, &["update_cache", "update-cache"])?.unwrap_or(cache_valid_time.is_some());
    let upgrade = match args::opt_str(a, "upgrade")?.as_deref() {
        None | Some("no" | "false" | "False") => None,
        Some("yes" | "true" | "True" | "safe") => Some("upgrade"),
        Some("full" | "dist") => Some("dist-upgrade"),
        Some(other) => {
            return Err(ModuleError::BadArgs(format!(
                "argument 'upgrade' must be no, yes, safe, full or dist, got '{other}'"
            ))
            .into());
        }
    };
    let lock_timeout = match args::opt_str(a, "lock_timeout")? {
        None => 60,
        Some(s) => s.trim().parse::<u64>().map_err(|_| {
            ModuleError::BadArgs(format!(
                "argument 'lock_timeout' must be a number of seconds, got '{s}'"
            ))
        })?,
    };
    let dpkg_options = args::opt_str(a, "dpkg_options")?
        .unwrap_or_else(|| "force-confdef,force-confold".into())
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    args::bool_or(a, "force_apt_get", false)?;
    let opts = AptOpts {
        dpkg_options,
        lock_timeout,
        install_recommends: bool_alias(a, &["install_recommends", "install-recommends"])?,
        allow_downgrade: bool_alias(
            a,
            &[
                "allow_downgrade",
                "allow-downgrade",
                "allow_downgrades",
                "allow-downgrades",
            ],
        )?
        .unwrap_or(false),
        allow_unauthenticated: bool_alias(a, &["allow_unauthenticated", "allow-unauthenticated"])?
            .unwrap_or(false),
        force: args::bool_or(a, "force", false)?,
        default_release: str_alias(a, &["default_release", "default-release"])?,
        autoremove: args::bool_or(a, "autoremove", false)?,
        purge: args::bool_or(a, "purge", false)?,
        only_upgrade: args::bool_or(a, "only_upgrade", false)?,
    };
    if pkgs.is_empty() && deb.is_none() && !update_cache && upgrade.is_none() && !opts.autoremove {
        return Err(ModuleError::BadArgs(
            "one of the following is required: name, pkg, package, deb, update_cache, upgrade, autoremove".into(),
        )
        .into());
    }
    if state == Want::Latest && pkgs.iter().any(|p| p.contains('=')) {
        return Err(ModuleError::BadArgs(
            "argument 'name': a version (name=version) cannot be combined with state=latest".into(),
        )
        .into());
    }

    let apt_get = need("apt-get", "apt")?;
    let mut out = Output::default();
    let mut changed = false;
    let mut msgs: Vec<String> = Vec::new();

    // The cache first, so installs see fresh lists.
    let (cache_updated, cache_time) = if update_cache {
        let last = cache_mtime();
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let fresh = match (cache_valid_time, last) {
            (Some(valid), Some(t)) if valid > 0 => now.saturating_sub(t) < valid,
            _ => false,
        };
        if fresh {
            (false, last.unwrap_or(0))
        } else if ctx.check_mode {
            changed = true;
            msgs.push("the apt cache would be updated".into());
            (false, last.unwrap_or(0))
        } else {
            let argv = proc::argv(["-q", "update"]);
            let r = exec(&apt_get, &argv, APT_ENV)?;
            out.add(&r);
            if !r.ok() {
                return Err(failed(
                    proc::with_output(
                        Outcome::fail(format!("Failed to update apt cache: {}", r.why())),
                        &r.stdout,
                        &r.stderr,
                    )
                    .with("rc", r.rc)
                    .with("cache_updated", false),
                ));
            }
            changed = true;
            (true, now)
        }
    } else {
        (false, cache_mtime().unwrap_or(0))
    };

    // `policy_rc_d`: what /usr/sbin/policy-rc.d answers while packages change (101: no
    // service a package installs is started), the host's own put back afterwards.
    let _policy = match args::opt_int(a, "policy_rc_d")? {
        Some(code) if !ctx.check_mode => Some(PolicyRcD::install(Path::new(POLICY_RC_D), code)?),
        _ => None,
    };
    // Runs (or in check mode simulates) one apt-get action.
    let act = |action: &str, targets: &[String], out: &mut Output| -> Step<()> {
        let argv = apt_argv(action, targets, &opts, ctx.check_mode);
        let r = exec(&apt_get, &argv, APT_ENV)?;
        out.add(&r);
        if r.ok() {
            Ok(())
        } else {
            Err(cmd_failed(&apt_get, &argv, &r))
        }
    };

    if let Some(deb) = &deb {
        if deb.contains("://") {
            return fail(format!(
                "deb must be a path on this host, got '{deb}': this runner does not download (fetch it with get_url first)"
            ));
        }
        let path = Path::new(deb);
        if !path.is_file() {
            return fail(format!("deb file not found: {deb}"));
        }
        let dpkg_deb = need("dpkg-deb", "apt")?;
        let fields = exec(
            &dpkg_deb,
            &proc::argv(["-f", deb.as_str(), "Package", "Version"]),
            APT_ENV,
        )?;
        if !fields.ok() {
            return fail(format!("cannot read {deb} as a package: {}", fields.why()));
        }
        let field = |k: &str| {
            fields
                .stdout
                .lines()
                .find_map(|l| l.strip_prefix(k).and_then(|r| r.strip_prefix(':')))
                .map(|v| v.trim().to_string())
                .unwrap_or_default()
        };
        let (pkg, version) = (field("Package"), field("Version"));
        let query = need("dpkg-query", "apt")?;
        let st = dpkg_state(&query, &pkg)?;
        if !st.installed || st.version != version || opts.force {
            // apt-get resolves the package's dependencies (it wants a path with a slash
            // and a .deb name); anything else goes to dpkg as it is.
            let abs = std::fs::canonicalize(path).map_err(|e| fsutil::io_fail("read", path, &e))?;
            if abs.extension().is_some_and(|e| e == "deb") {
                act("install", &[abs.display().to_string()], &mut out)?;
            } else {
                let dpkg = need("dpkg", "apt")?;
                let argv = vec![
                    if ctx.check_mode {
                        "--dry-run"
                    } else {
                        "--force-confold"
                    }
                    .to_string(),
                    "-i".into(),
                    abs.display().to_string(),
                ];
                let r = exec(&dpkg, &argv, APT_ENV)?;
                out.add(&r);
                if !r.ok() {
                    return Err(cmd_failed(&dpkg, &argv, &r));
                }
            }
            changed = true;
            msgs.push(format!("{pkg} {version} installed from {deb}"));
        }
    }

    if !pkgs.is_empty() {
        let query = need("dpkg-query", "apt")?;
        let mut targets: Vec<String> = Vec::new();
        for spec in &pkgs {
            let (name, version) = split_version(spec);
            let st = dpkg_state(&query, name)?;
            let act_on = match state {
                Want::Present => {
                    !st.installed || version.is_some_and(|v| !version_matches(&st.version, v))
                }
                Want::Absent => {
                    (st.installed || (opts.purge && st.config_files))
                        && version.is_none_or(|v| version_matches(&st.version, v))
                }
                Want::Latest => {
                    if st.installed {
                        let cache = need("apt-cache", "apt")?;
                        apt_candidate(&cache, name)?.is_some_and(|c| c != st.version)
                    } else {
                        !opts.only_upgrade
                    }
                }
            };
            if !act_on {
                continue;
            }
            if state != Want::Absent && !st.installed && version.is_none() {
                let cache = need("apt-cache", "apt")?;
                if apt_candidate(&cache, name)?.is_none() {
                    return fail(format!("No package matching '{name}' is available"));
                }
            }
            targets.push(spec.clone());
        }
        if !targets.is_empty() {
            let action = if state == Want::Absent {
                "remove"
            } else {
                "install"
            };
            act(action, &targets, &mut out)?;
            changed = true;
            let verb = if state == Want::Absent {
                "removed"
            } else {
                "installed"
            };
            msgs.push(format!("{verb}: {}", targets.join(", ")));
        }
    }

    // upgrade and a bare autoremove: simulate first, act only if apt-get would.
    let mut pending: Vec<(&str, &str)> = Vec::new();
    if let Some(u) = upgrade {
        pending.push((u, "Inst "));
    }
    if opts.autoremove && pkgs.is_empty() && deb.is_none() {
        pending.push(("autoremove", "Remv "));
    }
    for (action, marker) in pending {
        let sim = apt_argv(action, &[], &opts, true);
        let r = exec(&apt_get, &sim, APT_ENV)?;
        if !r.ok() {
            return Err(cmd_failed(&apt_get, &sim, &r));
        }
        let n = r.stdout.lines().filter(|l| l.starts_with(marker)).count();
        if n == 0 {
            continue;
        }
        act(action, &[], &mut out)?;
        changed = true;
        msgs.push(format!("{action}: {n} package(s)"));
    }

    let mut o = proc::with_output(Outcome::changed(changed), &out.stdout, &out.stderr)
        .with("cache_updated", cache_updated)
        .with("cache_update_time", cache_time);
    if !msgs.is_empty() {
        let prefix = if ctx.check_mode { "would be " } else { "" };
        o = o.msg(
            msgs.iter()
                .map(|m| format!("{prefix}{m}"))
                .collect::<Vec<_>>()
                .join("; "),
        );
    }
    Ok(o)
}

/// When the apt lists were last updated: the success stamp apt's periodic job and
/// `apt-get update` hooks leave, else the lists directory's mtime.
fn cache_mtime() -> Option<u64> {
    [
        "/var/lib/apt/periodic/update-success-stamp",
        "/var/lib/apt/lists",
    ]
    .iter()
    .find_map(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok())
    .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
    .map(|d| d.as_secs())
}

// ---------------------------------------------------------------------------
// dnf and yum

const RPM_ARGS: &[&str] = &[
    "name",
    "pkg",
    "state",
    "update_cache",
    "disable_gpg_check",
    "enablerepo",
    "disablerepo",
];

/// Options for dnf/yum commands.
#[derive(Debug, Clone, Default, PartialEq)]
struct RpmOpts {
    update_cache: bool,
    disable_gpg_check: bool,
    enablerepo: Vec<String>,
    disablerepo: Vec<String>,
}

/// The dnf/yum argument vector for `action` (install, remove, upgrade, check-update).
fn rpm_argv(tool: &str, action: &str, pkgs: &[String], o: &RpmOpts) -> Vec<String> {
    let mut v = Vec::new();
    if action != "check-update" {
        v.push("-y".to_string());
    }
    v.push("-q".into());
    if o.disable_gpg_check {
        v.push("--nogpgcheck".into());
    }
    if o.update_cache {
        // yum has no --refresh; expiring its metadata first is the same effect.
        v.push(
            if tool != "yum" {
                "--refresh"
            } else {
                "--setopt=metadata_expire=0"
            }
            .into(),
        );
    }
    for r in &o.enablerepo {
        v.push(format!("--enablerepo={r}"));
    }
    for r in &o.disablerepo {
        v.push(format!("--disablerepo={r}"));
    }
    v.push(action.into());
    v.extend(pkgs.iter().cloned());
    v
}

/// The `dnf` module.
pub(super) fn dnf(a: &Vars, ctx: &Ctx<'_>) -> Result<Outcome, ModuleError> {
    fsutil::finish(rpm_family(a, ctx, "dnf"))
}

/// The `dnf5` module: the same options through dnf5 (Fedora 41's `dnf`).
pub(super) fn dnf5(a: &Vars, ctx: &Ctx<'_>) -> Result<Outcome, ModuleError> {
    fsutil::finish(rpm_family(a, ctx, "dnf5"))
}

/// The `yum` module.
pub(super) fn yum(a: &Vars, ctx: &Ctx<'_>) -> Result<Outcome, ModuleError> {
    fsutil::finish(rpm_family(a, ctx, "yum"))
}

fn rpm_family(a: &Vars, ctx: &Ctx<'_>, tool: &str) -> Step<Outcome> {
    args::only(a, RPM_ARGS)?;
    let pkgs = names(a, &["name", "pkg"])?;
    let state = want(a, tool)?;
    let opts = RpmOpts {
        update_cache: args::bool_or(a, "update_cache", false)?,
        disable_gpg_check: args::bool_or(a, "disable_gpg_check", false)?,
        enablerepo: names(a, &["enablerepo"])?,
        disablerepo: names(a, &["disablerepo"])?,
    };
    if pkgs.is_empty() {
        return Err(
            ModuleError::BadArgs(format!("missing required argument 'name' for {tool}")).into(),
        );
    }
    if let Some(g) = pkgs.iter().find(|p| p.starts_with('@')) {
        return Err(ModuleError::BadArgs(format!(
            "argument 'name': package groups ({g}) are not supported by this runner"
        ))
        .into());
    }
    let manager = need(tool, tool)?;
    let rpm = need("rpm", tool)?;

    let mut install = Vec::new();
    let mut upgrade = Vec::new();
    let mut remove = Vec::new();
    for p in &pkgs {
        // A path asks for whatever package provides it.
        let q = if p.contains('/') {
            proc::argv(["-q", "--whatprovides", p.as_str()])
        } else {
            proc::argv(["-q", p.as_str()])
        };
        let installed = exec(&rpm, &q, &[("LC_ALL", "C")])?.ok();
        match (state, installed) {
            (Want::Present | Want::Latest, false) => install.push(p.clone()),
            (Want::Absent, true) => remove.push(p.clone()),
            (Want::Latest, true) => {
                // check-update exits 100 when an update is available.
                let argv = rpm_argv(tool, "check-update", std::slice::from_ref(p), &opts);
                let r = exec(&manager, &argv, &[("LC_ALL", "C")])?;
                match r.rc {
                    100 => upgrade.push(p.clone()),
                    0 => {}
                    _ => return Err(cmd_failed(&manager, &argv, &r)),
                }
            }
            _ => {}
        }
    }

    let mut out = Output::default();
    let mut results = Vec::new();
    for (action, list, word) in [
        ("install", &install, "Installed"),
        ("upgrade", &upgrade, "Upgraded"),
        ("remove", &remove, "Removed"),
    ] {
        if list.is_empty() {
            continue;
        }
        if !ctx.check_mode {
            let argv = rpm_argv(tool, action, list, &opts);
            let r = exec(&manager, &argv, &[("LC_ALL", "C")])?;
            out.add(&r);
            if !r.ok() {
                return Err(cmd_failed(&manager, &argv, &r));
            }
        }
        results.extend(list.iter().map(|p| format!("{word}: {p}")));
    }
    let changed = !results.is_empty();
    let msg = if !changed {
        "Nothing to do".to_string()
    } else if ctx.check_mode {
        "Check mode: No changes made, but would have if not in check mode".to_string()
    } else {
        String::new()
    };
    Ok(
        proc::with_output(Outcome::changed(changed), &out.stdout, &out.stderr)
            .with("rc", 0)
            .with("results", Value::from(results))
            .msg(msg),
    )
}

// ---------------------------------------------------------------------------
// apk

const APK_ARGS: &[&str] = &["name", "state", "update_cache", "no_cache"];

/// The apk argument vector for `action` (add, del) on `pkgs`.
fn apk_argv(
    action: &str,
    pkgs: &[String],
    upgrade: bool,
    update_cache: bool,
    no_cache: bool,
) -> Vec<String> {
    let mut v = vec![action.to_string()];
    if update_cache {
        v.push("--update-cache".into());
    }
    if no_cache {
        v.push("--no-cache".into());
    }
    if upgrade {
        v.push("--upgrade".into());
    }
    v.extend(pkgs.iter().cloned());
    v
}

/// The `apk` module.
pub(super) fn apk(a: &Vars, ctx: &Ctx<'_>) -> Result<Outcome, ModuleError> {
    fsutil::finish(apk_inner(a, ctx))
}

fn apk_inner(a: &Vars, ctx: &Ctx<'_>) -> Step<Outcome> {
    args::only(a, APK_ARGS)?;
    let pkgs = names(a, &["name"])?;
    let state = want(a, "apk")?;
    let update_cache = args::bool_or(a, "update_cache", false)?;
    let no_cache = args::bool_or(a, "no_cache", false)?;
    if pkgs.is_empty() && !update_cache {
        return Err(ModuleError::BadArgs(
            "one of the following is required: name, update_cache".into(),
        )
        .into());
    }
    let apk = need("apk", "apk")?;
    let env = [("LC_ALL", "C")];
    let mut out = Output::default();

    let mut targets = Vec::new();
    for p in &pkgs {
        let installed = exec(&apk, &proc::argv(["info", "-e", p.as_str()]), &env)?.ok();
        let needed = match state {
            Want::Present => !installed,
            Want::Absent => installed,
            Want::Latest if !installed => true,
            Want::Latest => {
                // Only a simulated upgrade knows whether a newer version is available.
                let argv = {
                    let mut v = apk_argv("add", std::slice::from_ref(p), true, false, no_cache);
                    v.insert(1, "--simulate".into());
                    v
                };
                let r = exec(&apk, &argv, &env)?;
                if !r.ok() {
                    return Err(cmd_failed(&apk, &argv, &r));
                }
                r.stdout.contains("Upgrading") || r.stdout.contains("Installing")
            }
        };
        if needed {
            targets.push(p.clone());
        }
    }
    let mut changed = false;
    if update_cache && targets.is_empty() && !ctx.check_mode {
        let r = exec(&apk, &proc::argv(["update"]), &env)?;
        out.add(&r);
        if !r.ok() {
            return Err(cmd_failed(&apk, &proc::argv(["update"]), &r));
        }
    }
    if !targets.is_empty() {
        changed = true;
        if !ctx.check_mode {
            let action = if state == Want::Absent { "del" } else { "add" };
            let argv = apk_argv(
                action,
                &targets,
                state == Want::Latest,
                update_cache && state != Want::Absent,
                no_cache,
            );
            let r = exec(&apk, &argv, &env)?;
            out.add(&r);
            if !r.ok() {
                return Err(cmd_failed(&apk, &argv, &r));
            }
        }
    }
    let verb = match state {
        Want::Absent => "removed",
        Want::Present => "installed",
        Want::Latest => "upgraded",
    };
    let msg = if changed {
        format!("{verb} {} package(s)", targets.len())
    } else {
        "package(s) already in the requested state".into()
    };
    Ok(
        proc::with_output(Outcome::changed(changed), &out.stdout, &out.stderr)
            .with("packages", Value::from(targets))
            .msg(msg),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::collections::BTreeMap;
    use std::sync::Mutex;

    /// The tests that install and remove share dpkg's lock and the test package.
    static DPKG: Mutex<()> = Mutex::new(());

    const PKG: &str = "rustle-test-pkg";
    const FILE: &str = "/usr/share/rustle-test/hello.txt";

    fn run(module: &str, args: Value, check_mode: bool) -> Result<Outcome, ModuleError> {
        let args = args.as_object().unwrap();
        crate::modules::run_for_test(module, args, &BTreeMap::new(), &json!({}), check_mode)
    }

    /// Purges the test package when the test ends, passed or not.
    struct Purge;
    impl Drop for Purge {
        fn drop(&mut self) {
            let _ = std::process::Command::new("dpkg")
                .args(["--purge", PKG])
                .env("DEBIAN_FRONTEND", "noninteractive")
                .output();
        }
    }

    /// Builds rustle-test-pkg (one file under /usr/share/rustle-test) with dpkg-deb.
    fn build_deb(dir: &Path) -> PathBuf {
        let root = dir.join("pkg");
        std::fs::create_dir_all(root.join("DEBIAN")).unwrap();
        std::fs::create_dir_all(root.join("usr/share/rustle-test")).unwrap();
        std::fs::write(
            root.join("DEBIAN/control"),
            format!(
                "Package: {PKG}\nVersion: 1.0-1\nArchitecture: all\nMaintainer: rustle tests <root@localhost>\nDescription: throwaway package for rustle's apt tests\n"
            ),
        )
        .unwrap();
        std::fs::write(root.join("usr/share/rustle-test/hello.txt"), "hello\n").unwrap();
        let deb = dir.join(format!("{PKG}_1.0-1_all.deb"));
        let st = std::process::Command::new("dpkg-deb")
            .args(["--root-owner-group", "--build"])
            .arg(&root)
            .arg(&deb)
            .output()
            .unwrap();
        assert!(st.status.success(), "{st:?}");
        deb
    }

    fn installed() -> bool {
        let q = proc::find("dpkg-query").unwrap();
        dpkg_state(&q, PKG).ok().unwrap().installed
    }

    #[test]
    fn apt_installs_a_local_deb_and_removes_it_idempotently() {
        let _lock = DPKG.lock().unwrap_or_else(|e| e.into_inner());
        let _purge = Purge;
        let _ = std::process::Command::new("dpkg")
            .args(["--purge", PKG])
            .output();
        let dir = tempfile::tempdir().unwrap();
        let deb = build_deb(dir.path());
        let deb = deb.to_str().unwrap();

        // Check mode: would install, installs nothing.
        let o = run("apt", json!({"deb": deb}), true).unwrap();
        assert!(o.changed && !o.failed, "{o:?}");
        assert!(!installed() && !Path::new(FILE).exists());

        let o = run("apt", json!({"deb": deb}), false).unwrap();
        assert!(o.changed && !o.failed, "{o:?}");
        assert!(installed() && Path::new(FILE).exists());
        assert_eq!(o.data["cache_updated"], false);
        assert!(o.data.contains_key("stdout") && o.data.contains_key("stderr"));

        let o = run("apt", json!({"deb": deb}), false).unwrap();
        assert!(!o.changed && !o.failed, "{o:?}");

        // Installed: ok by name, through apt and through package, without apt-get.
        let o = run("apt", json!({"name": PKG, "state": "present"}), false).unwrap();
        assert!(!o.changed && !o.failed, "{o:?}");
        let o = run("package", json!({"name": [PKG], "state": "present"}), false).unwrap();
        assert!(!o.changed && !o.failed, "{o:?}");
        let o = run("apt", json!({"name": format!("{PKG}=1.0*")}), false).unwrap();
        assert!(!o.changed && !o.failed, "{o:?}");

        // The installed version is the only candidate: latest is ok too.
        let o = run("apt", json!({"name": PKG, "state": "latest"}), false).unwrap();
        assert!(!o.changed && !o.failed, "{o:?}");
        // A version no source has: apt-get's own words, the command line, the rc.
        let o = run("apt", json!({"name": format!("{PKG}=9.9")}), false).unwrap();
        assert!(o.failed, "{o:?}");
        let msg = o.msg.unwrap();
        assert!(
            msg.contains("install rustle-test-pkg=9.9' failed: ") && msg.contains("9.9"),
            "{msg}"
        );
        assert_ne!(o.data["rc"], 0);
        assert!(installed());

        // Check mode for absent: would remove, removes nothing.
        let o = run("apt", json!({"name": PKG, "state": "absent"}), true).unwrap();
        assert!(o.changed && !o.failed, "{o:?}");
        assert!(installed() && Path::new(FILE).exists());

        let o = run(
            "package",
            json!({"name": PKG, "state": "absent", "purge": true}),
            false,
        )
        .unwrap();
        assert!(o.changed && !o.failed, "{o:?}");
        assert!(!installed() && !Path::new(FILE).exists());
        let o = run("apt", json!({"name": PKG, "state": "absent"}), false).unwrap();
        assert!(!o.changed && !o.failed, "{o:?}");
    }

    #[test]
    fn apt_reports_unknown_packages_and_bad_debs() {
        let _lock = DPKG.lock().unwrap_or_else(|e| e.into_inner());
        for check in [true, false] {
            let o = run("apt", json!({"name": "rustle-no-such-package-xyz"}), check).unwrap();
            assert!(o.failed, "{o:?}");
            assert_eq!(
                o.msg.as_deref(),
                Some("No package matching 'rustle-no-such-package-xyz' is available")
            );
        }
        // Not installed and asked absent: ok, nothing run.
        let o = run(
            "apt",
            json!({"name": "rustle-no-such-package-xyz", "state": "absent"}),
            false,
        )
        .unwrap();
        assert!(!o.changed && !o.failed, "{o:?}");
        let o = run("apt", json!({"deb": "/nonexistent/x.deb"}), false).unwrap();
        assert!(o.failed && o.msg.unwrap().contains("/nonexistent/x.deb"));
        let o = run(
            "apt",
            json!({"deb": "https://example.invalid/x.deb"}),
            false,
        )
        .unwrap();
        assert!(o.failed && o.msg.unwrap().contains("does not download"));
        let dir = tempfile::tempdir().unwrap();
        let junk = dir.path().join("junk.deb");
        std::fs::write(&junk, "not a package").unwrap();
        let o = run("apt", json!({"deb": junk.to_str()}), false).unwrap();
        assert!(o.failed && o.msg.unwrap().contains("cannot read"));
    }

    #[test]
    fn a_fresh_cache_is_not_updated_and_check_mode_updates_nothing() {
        // No network in tests: a cache younger than ten years is fresh, so apt-get
        // update never runs; check mode reports the update it would do.
        let before = cache_mtime();
        assert!(before.is_some(), "this host has no /var/lib/apt/lists");
        let o = run(
            "apt",
            json!({"update_cache": true, "cache_valid_time": 315_360_000}),
            false,
        )
        .unwrap();
        assert!(!o.changed && !o.failed, "{o:?}");
        assert_eq!(o.data["cache_updated"], false);
        assert_eq!(o.data["cache_update_time"], before.unwrap());
        let o = run("apt", json!({"update_cache": "yes"}), true).unwrap();
        assert!(o.changed && !o.failed, "{o:?}");
        assert_eq!(o.data["cache_updated"], false);
        assert_eq!(cache_mtime(), before);
        let e = run(
            "apt",
            json!({"update_cache": true, "cache_valid_time": "soon"}),
            true,
        )
        .unwrap_err();
        assert!(e.to_string().contains("'cache_valid_time'"));
    }

    #[test]
    fn upgrade_and_autoremove_in_check_mode_only_simulate() {
        let _lock = DPKG.lock().unwrap_or_else(|e| e.into_inner());
        let status = || std::fs::read("/var/lib/dpkg/status").unwrap();
        let before = status();
        // apt-get's simulations are slow (seconds each): one upgrade kind is enough.
        for args in [json!({"upgrade": "dist"}), json!({"autoremove": true})] {
            let o = run("apt", args.clone(), true).unwrap();
            assert!(!o.failed, "{args}: {o:?}");
            // changed only when apt-get's simulation listed something to do.
            assert_eq!(o.changed, o.msg.is_some(), "{args}: {o:?}");
        }
        assert!(status() == before, "check mode changed dpkg's database");
        let e = run("apt", json!({"upgrade": "sideways"}), true).unwrap_err();
        assert!(e.to_string().contains("'upgrade'"));
    }

    /// apt's `policy_rc_d`: the script answers the code while the guard lives; the
    /// host's own is put back after, and none is left where there was none.
    #[test]
    fn policy_rc_d_answers_while_packages_change_and_the_hosts_own_comes_back() {
        use std::os::unix::fs::PermissionsExt as _;
        let t = tempfile::tempdir().unwrap();
        let path = t.path().join("policy-rc.d");
        {
            let Ok(_g) = PolicyRcD::install(&path, 101) else {
                panic!("policy-rc.d not installed")
            };
            assert_eq!(
                std::fs::read_to_string(&path).unwrap(),
                "#!/bin/sh\nexit 101\n"
            );
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o755);
            let rc = std::process::Command::new(&path).status().unwrap().code();
            assert_eq!(rc, Some(101));
        }
        assert!(!path.exists(), "none was there before");
        std::fs::write(&path, "#!/bin/sh\nexit 0\n").unwrap();
        {
            let Ok(_g) = PolicyRcD::install(&path, 101) else {
                panic!("policy-rc.d not installed")
            };
            assert!(std::fs::read_to_string(&path).unwrap().contains("exit 101"));
        }
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "#!/bin/sh\nexit 0\n"
        );
        assert_eq!(
            std::fs::read_dir(t.path()).unwrap().count(),
            1,
            "nothing left beside it"
        );
    }

    #[test]
    fn absent_managers_fail_naming_the_tool() {
        // dnf, dnf5, yum and apk cannot exist as working managers on this Debian host.
        for m in ["dnf", "dnf5", "yum", "apk"] {
            assert!(
                proc::find(m).is_none(),
                "{m} exists here; this test assumes Debian"
            );
            let o = run(m, json!({"name": "x"}), false).unwrap();
            assert!(o.failed, "{o:?}");
            let msg = o.msg.unwrap();
            assert!(
                msg.contains(&format!("'{m}'")) && msg.contains("not found"),
                "{msg}"
            );
            let o = run("package", json!({"name": "x", "use": m}), true).unwrap();
            assert!(o.failed && o.msg.unwrap().contains(&format!("'{m}'")));
        }
        assert_eq!(detect(), Some("apt"));
    }

    #[test]
    fn bad_arguments_are_named() {
        let e = run("apt", json!({"name": "x", "stat": "present"}), false).unwrap_err();
        assert!(e.to_string().contains("'stat'"));
        let e = run("apt", json!({"name": "x", "state": "build-dep"}), false).unwrap_err();
        assert!(e.to_string().contains("build-dep"));
        let e = run("apt", json!({"name": "x", "state": "sideways"}), false).unwrap_err();
        assert!(e.to_string().contains("sideways"));
        let e = run("apt", json!({}), false).unwrap_err();
        assert!(e.to_string().contains("one of the following"));
        let e = run("apt", json!({"name": "x=1", "state": "latest"}), false).unwrap_err();
        assert!(e.to_string().contains("latest"));
        let e = run("package", json!({"name": "x", "use": "pacman"}), false).unwrap_err();
        assert!(e.to_string().contains("'use'"));
        let e = run("dnf", json!({"name": "@web"}), false).unwrap_err();
        assert!(e.to_string().contains("groups"));
    }

    // The command builders are pure functions: dnf, yum and apk are tested here only,
    // since they cannot run on this host.
    #[test]
    fn apt_command_lines() {
        let o = AptOpts {
            dpkg_options: vec!["force-confdef".into(), "force-confold".into()],
            lock_timeout: 60,
            install_recommends: Some(false),
            purge: true,
            autoremove: true,
            ..AptOpts::default()
        };
        assert_eq!(
            apt_argv("remove", &["a".into(), "b=1".into()], &o, false).join(" "),
            "-y -q -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold -o DPkg::Lock::Timeout=60 --no-install-recommends --auto-remove --purge remove a b=1"
        );
        let o = AptOpts {
            install_recommends: Some(true),
            default_release: Some("bookworm-backports".into()),
            allow_downgrade: true,
            ..AptOpts::default()
        };
        assert_eq!(
            apt_argv("install", &["a".into()], &o, true).join(" "),
            "-s -q -o DPkg::Lock::Timeout=0 -o APT::Install-Recommends=yes --allow-downgrades -t bookworm-backports install a"
        );
        assert_eq!(
            apt_argv("upgrade", &[], &AptOpts::default(), true).join(" "),
            "-s -q -o DPkg::Lock::Timeout=0 --with-new-pkgs upgrade"
        );
    }

    #[test]
    fn rpm_and_apk_command_lines() {
        let o = RpmOpts {
            update_cache: true,
            disable_gpg_check: true,
            enablerepo: vec!["epel".into()],
            disablerepo: vec![],
        };
        assert_eq!(
            rpm_argv("dnf", "install", &["nginx".into()], &o).join(" "),
            "-y -q --nogpgcheck --refresh --enablerepo=epel install nginx"
        );
        assert_eq!(
            rpm_argv("yum", "check-update", &["nginx".into()], &o).join(" "),
            "-q --nogpgcheck --setopt=metadata_expire=0 --enablerepo=epel check-update nginx"
        );
        assert_eq!(
            rpm_argv(
                "dnf",
                "remove",
                &["a".into(), "b".into()],
                &RpmOpts::default()
            )
            .join(" "),
            "-y -q remove a b"
        );
        assert_eq!(
            apk_argv("add", &["curl".into()], true, true, false).join(" "),
            "add --update-cache --upgrade curl"
        );
        assert_eq!(
            apk_argv("del", &["curl".into()], false, false, true).join(" "),
            "del --no-cache curl"
        );
    }

    #[test]
    fn dpkg_status_and_versions() {
        let st = parse_dpkg_status("install ok installed 2.36-9+deb12u4\n");
        assert!(st.installed && !st.config_files);
        assert_eq!(st.version, "2.36-9+deb12u4");
        let st = parse_dpkg_status("deinstall ok config-files 1.0\n");
        assert!(!st.installed && st.config_files);
        let st = parse_dpkg_status("deinstall ok config-files 1.0\ninstall ok installed 1.1\n");
        assert!(st.installed && st.version == "1.1");
        assert!(!parse_dpkg_status("").installed);
        assert!(version_matches("1.2.3-1", "1.2*"));
        assert!(version_matches("1.2.3-1", "1.2.3-1"));
        assert!(!version_matches("1.2.3-1", "1.2"));
        assert_eq!(split_version("nginx=1.2*"), ("nginx", Some("1.2*")));
        assert_eq!(split_version("nginx"), ("nginx", None));
        let a = json!({"name": "a, b,c"});
        assert_eq!(
            names(a.as_object().unwrap(), &["name"]).unwrap(),
            vec!["a", "b", "c"]
        );
    }
}
