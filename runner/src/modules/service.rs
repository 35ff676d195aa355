//! `service` and `systemd` (alias `systemd_service`): start, stop, restart, reload and
//! enable services, asking the init system for the current state first.
//!
//! systemd goes through `systemctl` (is-active, is-enabled, show). `service` uses it
//! when systemd is PID 1 (/run/systemd/system exists); otherwise SysV: the `service`
//! command or /etc/init.d/<name> directly, with `status` (or `pattern`, matched
//! against running processes) deciding whether it runs, and update-rc.d, chkconfig or
//! rc-update for `enabled`. Without systemd as PID 1, systemctl can still enable,
//! disable and mask units (it edits unit files) but cannot start or stop them.

use super::fsutil::{self, Step, failed};
use super::proc::{self, Ran};
use super::{Ctx, ModuleError, Outcome, args};
use crate::plan::Vars;
use serde_json::{Map, Value};
use std::path::{Path, PathBuf};

/// A state a task asks for.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Want {
    Started,
    Stopped,
    Restarted,
    Reloaded,
}

impl Want {
    fn parse(a: &Vars) -> Result<Option<Want>, ModuleError> {
        Ok(match args::opt_str(a, "state")?.as_deref() {
            None => None,
            Some("started") => Some(Want::Started),
            Some("stopped") => Some(Want::Stopped),
            Some("restarted") => Some(Want::Restarted),
            Some("reloaded") => Some(Want::Reloaded),
            Some(other) => {
                return Err(ModuleError::BadArgs(format!(
                    "argument 'state' must be started, stopped, restarted or reloaded, got '{other}'"
                )));
            }
        })
    }

    fn name(self) -> &'static str {
        match self {
            Want::Started => "started",
            Want::Stopped => "stopped",
            Want::Restarted => "restarted",
            Want::Reloaded => "reloaded",
        }
    }

    /// The action that brings a service to this state from `running`, if any.
    fn action(self, running: bool) -> Option<&'static str> {
        match (self, running) {
            (Want::Started, false) => Some("start"),
            (Want::Stopped, true) => Some("stop"),
            (Want::Restarted, _) => Some("restart"),
            (Want::Reloaded, false) => Some("start"),
            (Want::Reloaded, true) => Some("reload"),
            _ => None,
        }
    }
}

/// True when systemd is the running init: what systemd itself checks (sd_booted).
fn systemd_booted() -> bool {
    Path::new("/run/systemd/system").is_dir()
}

const NOT_BOOTED: &str =
    "systemd is not running as init (PID 1) on this host (/run/systemd/system does not exist)";

fn exec(program: &Path, argv: &[String]) -> Step<Ran> {
    proc::run(program, argv, &[("LC_ALL", "C")]).map_err(|e| failed(Outcome::fail(e)))
}

/// What the task asked for, common to both modules.
struct Req {
    name: String,
    state: Option<Want>,
    enabled: Option<bool>,
}

/// The registered result: name, state, enabled, and status where known.
fn result(req: &Req, changed: bool, enabled: Option<bool>) -> Outcome {
    let mut o = Outcome::changed(changed).with("name", req.name.as_str());
    if let Some(s) = req.state {
        o = o.with("state", s.name());
    }
    if let Some(e) = enabled {
        o = o.with("enabled", e);
    }
    o
}

// ---------------------------------------------------------------------------
// systemd

const SYSTEMD_ARGS: &[&str] = &[
    "name",
    "unit",
    "service",
    "state",
    "enabled",
    "masked",
    "daemon_reload",
    "daemon-reload",
    "daemon_reexec",
    "daemon-reexec",
    "scope",
    "no_block",
    "force",
];

/// The `systemd` module.
pub(super) fn systemd(a: &Vars, ctx: &Ctx<'_>) -> Result<Outcome, ModuleError> {
    fsutil::finish(systemd_inner(a, ctx))
}

fn systemd_inner(a: &Vars, ctx: &Ctx<'_>) -> Step<Outcome> {
    args::only(a, SYSTEMD_ARGS)?;
    let mut name = None;
    for k in ["name", "unit", "service"] {
        if name.is_none() {
            name = args::opt_str(a, k)?;
        }
    }
    let state = Want::parse(a)?;
    let enabled = args::opt_bool(a, "enabled")?;
    let masked = args::opt_bool(a, "masked")?;
    let reload =
        args::bool_or(a, "daemon_reload", false)? || args::bool_or(a, "daemon-reload", false)?;
    let reexec =
        args::bool_or(a, "daemon_reexec", false)? || args::bool_or(a, "daemon-reexec", false)?;
    match args::opt_str(a, "scope")?.as_deref() {
        None | Some("system") => {}
        Some(other) => {
            return Err(ModuleError::BadArgs(format!(
                "argument 'scope' supports only 'system' here, got '{other}'"
            ))
            .into());
        }
    }
    let opts = SystemdOpts {
        no_block: args::bool_or(a, "no_block", false)?,
        force: args::bool_or(a, "force", false)?,
    };
    if name.is_none() && !reload && !reexec {
        return Err(ModuleError::BadArgs("missing required argument 'name'".into()).into());
    }
    if name.is_some()
        && state.is_none()
        && enabled.is_none()
        && masked.is_none()
        && !reload
        && !reexec
    {
        return Err(ModuleError::BadArgs(
            "at least one of state, enabled, masked, daemon_reload or daemon_reexec is required"
                .into(),
        )
        .into());
    }
    let systemctl = proc::find("systemctl").ok_or_else(|| {
        failed(Outcome::fail(
            "the systemd module needs 'systemctl', which was not found on this host (looked in PATH and the sbin directories)",
        ))
    })?;

    for (wanted, action) in [(reexec, "daemon-reexec"), (reload, "daemon-reload")] {
        if !wanted {
            continue;
        }
        if !systemd_booted() {
            return fsutil::fail(format!("{NOT_BOOTED}, so 'systemctl {action}' cannot run"));
        }
        if !ctx.check_mode {
            let argv = proc::argv([action]);
            let r = exec(&systemctl, &argv)?;
            if !r.ok() {
                return fsutil::fail(format!("failure {} during {action}: {}", r.rc, r.why()));
            }
        }
    }
    let Some(name) = name else {
        return Ok(Outcome::ok());
    };
    let req = Req {
        name,
        state,
        enabled,
    };
    drive_systemd(&systemctl, &req, masked, opts, ctx)
}

#[derive(Debug, Clone, Copy, Default)]
struct SystemdOpts {
    no_block: bool,
    force: bool,
}

/// What `systemctl is-enabled` says: (rc, first word of stdout).
fn unit_file_state(systemctl: &Path, name: &str) -> Step<(i32, String, Ran)> {
    let r = exec(systemctl, &proc::argv(["is-enabled", "--", name]))?;
    let word = r
        .stdout
        .lines()
        .next()
        .unwrap_or_default()
        .trim()
        .to_string();
    Ok((r.rc, word, r))
}

/// Brings a unit to the requested mask, enablement and run state through systemctl.
fn drive_systemd(
    systemctl: &Path,
    req: &Req,
    masked: Option<bool>,
    opts: SystemdOpts,
    ctx: &Ctx<'_>,
) -> Step<Outcome> {
    let name = req.name.as_str();
    let run = |verb: &str| -> Step<()> {
        if ctx.check_mode {
            return Ok(());
        }
        let mut argv = Vec::new();
        if opts.no_block && !matches!(verb, "enable" | "disable" | "mask" | "unmask") {
            argv.push("--no-block".to_string());
        }
        if opts.force && matches!(verb, "enable" | "disable" | "mask" | "unmask") {
            argv.push("--force".to_string());
        }
        argv.push(verb.to_string());
        argv.push("--".into());
        argv.push(name.to_string());
        let r = exec(systemctl, &argv)?;
        if r.ok() {
            Ok(())
        } else {
            Err(failed(
                Outcome::fail(format!("Unable to {verb} service {name}: {}", r.why()))
                    .with("name", name)
                    .with("rc", r.rc),
            ))
        }
    };
    let mut changed = false;

    let (rc, word, raw) = unit_file_state(systemctl, name)?;
    // is-enabled prints nothing on stdout for a unit it has no file for.
    let found = !(rc != 0 && word.is_empty());
    if !found && masked != Some(true) {
        return Err(failed(
            Outcome::fail(format!(
                "Could not find the requested service {name}: {}",
                raw.why()
            ))
            .with("name", name),
        ));
    }

    if let Some(m) = masked {
        let is_masked = word.starts_with("masked");
        if m != is_masked {
            run(if m { "mask" } else { "unmask" })?;
            changed = true;
        }
    }

    let mut enabled_now = None;
    if let Some(e) = req.enabled {
        let (rc, _, _) = unit_file_state(systemctl, name)?;
        let is_enabled = rc == 0;
        if is_enabled != e {
            run(if e { "enable" } else { "disable" })?;
            changed = true;
        }
        enabled_now = Some(e);
    }

    if let Some(want) = req.state {
        if !systemd_booted() {
            return Err(failed(
                Outcome::fail(format!(
                    "{NOT_BOOTED}, so systemctl cannot {} {name}; use the service module, which falls back to SysV init scripts",
                    // The verb of what was asked, not of a guess at the current state.
                    match want {
                        Want::Started => "start",
                        Want::Stopped => "stop",
                        Want::Restarted => "restart",
                        Want::Reloaded => "reload",
                    }
                ))
                .with("name", name),
            ));
        }
        let r = exec(systemctl, &proc::argv(["is-active", "--", name]))?;
        let running = matches!(r.stdout.trim(), "active" | "activating" | "reloading");
        if let Some(action) = want.action(running) {
            run(action)?;
            changed = true;
        }
    }

    let mut o = result(req, changed, enabled_now);
    if systemd_booted() {
        o = o.with("status", Value::Object(unit_status(systemctl, name)?));
    }
    Ok(o)
}

/// `systemctl show` as the `status` dict Ansible registers.
fn unit_status(systemctl: &Path, name: &str) -> Step<Map<String, Value>> {
    let r = exec(systemctl, &proc::argv(["show", "--", name]))?;
    Ok(parse_show(&r.stdout))
}

fn parse_show(out: &str) -> Map<String, Value> {
    out.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), Value::from(v)))
        .collect()
}

// ---------------------------------------------------------------------------
// service

const SERVICE_ARGS: &[&str] = &[
    "name",
    "state",
    "enabled",
    "pattern",
    "sleep",
    "arguments",
    "args",
    "runlevel",
    "use",
];

/// The `service` module.
pub(super) fn service(a: &Vars, ctx: &Ctx<'_>) -> Result<Outcome, ModuleError> {
    fsutil::finish(service_inner(a, ctx))
}

fn service_inner(a: &Vars, ctx: &Ctx<'_>) -> Step<Outcome> {
    args::only(a, SERVICE_ARGS)?;
    let req = Req {
        name: args::req_str(a, "name")?,
        state: Want::parse(a)?,
        enabled: args::opt_bool(a, "enabled")?,
    };
    if req.state.is_none() && req.enabled.is_none() {
        return Err(ModuleError::BadArgs(
            "at least one of the arguments 'state' and 'enabled' is required".into(),
        )
        .into());
    }
    let sysv = Sysv {
        pattern: args::opt_str(a, "pattern")?,
        sleep: match args::opt_str(a, "sleep")? {
            None => None,
            Some(s) => Some(s.trim().parse::<u64>().map_err(|_| {
                ModuleError::BadArgs(format!(
                    "argument 'sleep' must be a number of seconds, got '{s}'"
                ))
            })?),
        },
        extra: match args::opt_str(a, "arguments")? {
            Some(s) => super::command::split(&s),
            None => super::command::split(&args::opt_str(a, "args")?.unwrap_or_default()),
        }
        .map_err(|e| ModuleError::BadArgs(format!("argument 'arguments': {e}")))?,
        runlevel: args::opt_str(a, "runlevel")?.unwrap_or_else(|| "default".into()),
    };
    let use_ = args::opt_str(a, "use")?.unwrap_or_else(|| "auto".into());
    let systemctl = proc::find("systemctl");
    let backend = match use_.as_str() {
        "auto" if systemd_booted() && systemctl.is_some() => "systemd",
        "auto" => "sysv",
        "systemd" | "sysv" | "openrc" => use_.as_str(),
        "service" => "sysv",
        other => {
            return Err(ModuleError::BadArgs(format!(
                "argument 'use' must be auto, systemd, sysv, service or openrc, got '{other}'"
            ))
            .into());
        }
    };
    if backend == "systemd" {
        let Some(systemctl) = systemctl else {
            return fsutil::fail(
                "use=systemd, but 'systemctl' was not found on this host (looked in PATH and the sbin directories)",
            );
        };
        return drive_systemd(&systemctl, &req, None, SystemdOpts::default(), ctx);
    }
    sysv.drive(&req, ctx)
}

/// The SysV (and OpenRC) side of the service module.
struct Sysv {
    pattern: Option<String>,
    sleep: Option<u64>,
    extra: Vec<String>,
    runlevel: String,
}

impl Sysv {
    fn drive(&self, req: &Req, ctx: &Ctx<'_>) -> Step<Outcome> {
        let name = req.name.as_str();
        if name.contains('/') || name.is_empty() {
            return Err(ModuleError::BadArgs(format!(
                "argument 'name' is not a service name: '{name}'"
            ))
            .into());
        }
        let script = Path::new("/etc/init.d").join(name);
        let service_cmd = proc::find("service");
        if !script.is_file() {
            let systemd = if systemd_booted() {
                "systemd runs but systemctl was not found"
            } else {
                "systemd is not PID 1"
            };
            let service = if service_cmd.is_some() {
                ""
            } else {
                ", and there is no 'service' command"
            };
            return Err(failed(
                Outcome::fail(format!(
                    "Could not find the requested service {name}: no init system answered (systemctl: {systemd}; SysV: {} does not exist{service})",
                    script.display()
                ))
                .with("name", name),
            ));
        }
        let invoke = |action: &str| -> Step<Ran> {
            let (program, mut argv) = match &service_cmd {
                Some(s) => (s.clone(), vec![name.to_string(), action.to_string()]),
                None => (script.clone(), vec![action.to_string()]),
            };
            argv.extend(self.extra.iter().cloned());
            exec(&program, &argv)
        };
        let act = |action: &str| -> Step<()> {
            if ctx.check_mode {
                return Ok(());
            }
            let r = invoke(action)?;
            if r.ok() {
                Ok(())
            } else {
                Err(failed(
                    proc::with_output(
                        Outcome::fail(format!("Unable to {action} service {name}: {}", r.why())),
                        &r.stdout,
                        &r.stderr,
                    )
                    .with("name", name)
                    .with("rc", r.rc),
                ))
            }
        };

        let mut changed = false;
        let mut enabled_now = None;
        if let Some(e) = req.enabled {
            let tool = EnableTool::find().ok_or_else(|| {
                failed(
                    Outcome::fail(format!(
                        "cannot tell whether {name} is enabled: none of update-rc.d, chkconfig or rc-update was found"
                    ))
                    .with("name", name),
                )
            })?;
            if tool.is_enabled(name, &self.runlevel)? != e {
                if !ctx.check_mode {
                    tool.set(name, e, &self.runlevel)?;
                }
                changed = true;
            }
            enabled_now = Some(e);
        }

        if let Some(want) = req.state {
            let running = match &self.pattern {
                Some(p) => process_matches(p),
                None => invoke("status")?.ok(),
            };
            match want.action(running) {
                Some("restart") if self.sleep.is_some() => {
                    if running {
                        act("stop")?;
                    }
                    if !ctx.check_mode
                        && let Some(s) = self.sleep
                    {
                        std::thread::sleep(std::time::Duration::from_secs(s));
                    }
                    act("start")?;
                    changed = true;
                }
                Some(action) => {
                    act(action)?;
                    changed = true;
                }
                None => {}
            }
        }
        Ok(result(req, changed, enabled_now))
    }
}

/// Whether any running process's command line contains `pattern` (what Ansible's
/// `pattern` does with ps), read from /proc. Our own process is skipped: its
/// arguments may contain the pattern.
#[cfg(target_os = "linux")]
fn process_matches(pattern: &str) -> bool {
    let me = std::process::id().to_string();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return false;
    };
    dir.flatten()
        .filter(|e| {
            let n = e.file_name();
            let n = n.to_string_lossy();
            n.bytes().all(|b| b.is_ascii_digit()) && n != me.as_str()
        })
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .any(|raw| {
            let line = String::from_utf8_lossy(&raw).replace('\0', " ");
            line.contains(pattern)
        })
}

/// Whether any running process's command line contains `pattern`, from `ps` where
/// there is no procfs (macOS and the BSDs: `-ww` for whole command lines). Our own
/// process is skipped: its arguments may contain the pattern.
#[cfg(not(target_os = "linux"))]
fn process_matches(pattern: &str) -> bool {
    let me = std::process::id().to_string();
    let Some(ps) = proc::find("ps") else {
        return false;
    };
    let Ok(r) = proc::run(&ps, &proc::argv(["-axww", "-o", "pid=,command="]), &[]) else {
        return false;
    };
    r.ok()
        && r.stdout.lines().any(|l| {
            let (pid, command) = l.trim_start().split_once(' ').unwrap_or((l, ""));
            pid != me && command.contains(pattern)
        })
}

/// The tool that enables SysV/OpenRC services at boot on this host.
enum EnableTool {
    /// Debian: S/K links in /etc/rc?.d.
    UpdateRcD(PathBuf),
    /// RedHat-family SysV.
    Chkconfig(PathBuf),
    /// OpenRC (Alpine): links in /etc/runlevels/<runlevel>.
    RcUpdate(PathBuf),
}

impl EnableTool {
    fn find() -> Option<EnableTool> {
        proc::find("update-rc.d")
            .map(EnableTool::UpdateRcD)
            .or_else(|| proc::find("chkconfig").map(EnableTool::Chkconfig))
            .or_else(|| proc::find("rc-update").map(EnableTool::RcUpdate))
    }

    fn is_enabled(&self, name: &str, runlevel: &str) -> Step<bool> {
        Ok(match self {
            EnableTool::UpdateRcD(_) => sysv_start_links(Path::new("/etc"), name),
            EnableTool::Chkconfig(tool) => exec(tool, &proc::argv([name]))?.ok(),
            EnableTool::RcUpdate(_) => Path::new("/etc/runlevels")
                .join(runlevel)
                .join(name)
                .exists(),
        })
    }

    fn set(&self, name: &str, enable: bool, runlevel: &str) -> Step<()> {
        let steps: Vec<(&Path, Vec<String>)> = match self {
            // `defaults` makes the links from the script's LSB header when there are
            // none; `enable`/`disable` then turns them into S or K links.
            EnableTool::UpdateRcD(t) if enable => vec![
                (t, proc::argv([name, "defaults"])),
                (t, proc::argv([name, "enable"])),
            ],
            EnableTool::UpdateRcD(t) => vec![(t, proc::argv([name, "disable"]))],
            EnableTool::Chkconfig(t) => {
                vec![(t, proc::argv([name, if enable { "on" } else { "off" }]))]
            }
            EnableTool::RcUpdate(t) => vec![(
                t,
                proc::argv([if enable { "add" } else { "del" }, name, runlevel]),
            )],
        };
        for (tool, argv) in steps {
            let r = exec(tool, &argv)?;
            if !r.ok() {
                return fsutil::fail(format!(
                    "Unable to {} service {name}: {} {}: {}",
                    if enable { "enable" } else { "disable" },
                    tool.display(),
                    argv.join(" "),
                    r.why()
                ));
            }
        }
        Ok(())
    }
}

/// Whether a start link (`S<nn><name>`) exists in any of the multi-user runlevels 2-5.
fn sysv_start_links(etc: &Path, name: &str) -> bool {
    (2..=5).any(|level| {
        std::fs::read_dir(etc.join(format!("rc{level}.d")))
            .map(|d| {
                d.flatten().any(|e| {
                    let f = e.file_name();
                    let f = f.to_string_lossy();
                    f.strip_prefix('S')
                        .map(|rest| rest.trim_start_matches(|c: char| c.is_ascii_digit()))
                        == Some(name)
                })
            })
            .unwrap_or(false)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::collections::BTreeMap;
    use std::sync::Mutex;

    /// The tests share /etc/init.d and /etc/systemd/system entries by fixed names.
    static SERIAL: Mutex<()> = Mutex::new(());

    const SVC: &str = "rustle-test-svc";
    const UNIT: &str = "rustle-test-unit.service";

    fn run(module: &str, args: Value, check_mode: bool) -> Result<Outcome, ModuleError> {
        let args = args.as_object().unwrap();
        crate::modules::run_for_test(module, args, &BTreeMap::new(), &json!({}), check_mode)
    }

    /// Removes the throwaway init script, its rc links and unit file, passed or not.
    struct Cleanup;
    impl Drop for Cleanup {
        fn drop(&mut self) {
            let _ = std::process::Command::new("update-rc.d")
                .args(["-f", SVC, "remove"])
                .output();
            let _ = std::fs::remove_file(format!("/etc/init.d/{SVC}"));
            let _ = std::process::Command::new("systemctl")
                .args(["disable", UNIT])
                .output();
            let _ = std::fs::remove_file(format!("/etc/systemd/system/{UNIT}"));
        }
    }

    /// A SysV script whose start appends to a log and leaves a marker that status checks.
    fn install_script(dir: &Path) -> (PathBuf, PathBuf) {
        let marker = dir.join("running");
        let log = dir.join("log");
        let script = format!(
            "#!/bin/sh\n### BEGIN INIT INFO\n# Provides:          {SVC}\n# Required-Start:\n# Required-Stop:\n# Default-Start:     2 3 4 5\n# Default-Stop:      0 1 6\n# Short-Description: rustle test service\n### END INIT INFO\n\
             case \"$1\" in\n  start) echo start >> {log}; touch {m} ;;\n  stop) echo stop >> {log}; rm -f {m} ;;\n  restart) echo restart >> {log}; touch {m} ;;\n  status) [ -e {m} ] || exit 3 ;;\n  *) echo \"usage: $0 start|stop|status\" >&2; exit 3 ;;\nesac\n",
            log = log.display(),
            m = marker.display()
        );
        let path = format!("/etc/init.d/{SVC}");
        std::fs::write(&path, script).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        (marker, log)
    }

    fn log_of(log: &Path) -> String {
        std::fs::read_to_string(log).unwrap_or_default()
    }

    #[test]
    fn sysv_service_starts_once_and_stops() {
        let _lock = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        assert!(
            !systemd_booted(),
            "this test expects a host without systemd as PID 1"
        );
        let _clean = Cleanup;
        let dir = tempfile::tempdir().unwrap();
        let (marker, log) = install_script(dir.path());

        let o = run("service", json!({"name": SVC, "state": "started"}), true).unwrap();
        assert!(o.changed && !o.failed, "{o:?}");
        assert!(!marker.exists() && log_of(&log).is_empty());

        let o = run("service", json!({"name": SVC, "state": "started"}), false).unwrap();
        assert!(o.changed && !o.failed, "{o:?}");
        assert!(marker.exists());
        assert_eq!(o.data["name"], SVC);
        assert_eq!(o.data["state"], "started");

        let o = run("service", json!({"name": SVC, "state": "started"}), false).unwrap();
        assert!(!o.changed && !o.failed, "{o:?}");
        assert_eq!(log_of(&log), "start\n");

        // A pattern decides by the process table: nothing runs with this text.
        let o = run(
            "service",
            json!({"name": SVC, "state": "stopped", "pattern": "rustle-no-such-process-xyz"}),
            false,
        )
        .unwrap();
        assert!(!o.changed && !o.failed, "{o:?}");
        assert!(marker.exists());

        let o = run("service", json!({"name": SVC, "state": "restarted"}), false).unwrap();
        assert!(o.changed && !o.failed, "{o:?}");
        assert_eq!(log_of(&log), "start\nrestart\n");

        let o = run("service", json!({"name": SVC, "state": "stopped"}), false).unwrap();
        assert!(o.changed && !o.failed, "{o:?}");
        assert!(!marker.exists());
        let o = run("service", json!({"name": SVC, "state": "stopped"}), false).unwrap();
        assert!(!o.changed && !o.failed, "{o:?}");
        assert_eq!(log_of(&log), "start\nrestart\nstop\n");

        // A script that refuses an action: the failure carries what it said.
        let o = run("service", json!({"name": SVC, "state": "reloaded"}), false).unwrap();
        assert!(
            !o.failed && o.changed,
            "reload of a stopped service starts it: {o:?}"
        );
        let o = run("service", json!({"name": SVC, "state": "reloaded"}), false).unwrap();
        assert!(o.failed, "{o:?}");
        assert!(o.msg.unwrap().contains("usage:"));
    }

    #[test]
    fn sysv_service_is_enabled_with_rc_links() {
        let _lock = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        let _clean = Cleanup;
        let dir = tempfile::tempdir().unwrap();
        install_script(dir.path());
        let etc = Path::new("/etc");
        assert!(!sysv_start_links(etc, SVC));

        let o = run("service", json!({"name": SVC, "enabled": true}), true).unwrap();
        assert!(o.changed && !sysv_start_links(etc, SVC), "{o:?}");
        let o = run("service", json!({"name": SVC, "enabled": true}), false).unwrap();
        assert!(o.changed && !o.failed, "{o:?}");
        assert!(sysv_start_links(etc, SVC));
        assert_eq!(o.data["enabled"], true);
        let o = run("service", json!({"name": SVC, "enabled": "yes"}), false).unwrap();
        assert!(!o.changed && !o.failed, "{o:?}");
        let o = run("service", json!({"name": SVC, "enabled": false}), false).unwrap();
        assert!(
            o.changed && !o.failed && !sysv_start_links(etc, SVC),
            "{o:?}"
        );
        let o = run("service", json!({"name": SVC, "enabled": false}), false).unwrap();
        assert!(!o.changed && !o.failed, "{o:?}");
    }

    #[test]
    fn unknown_services_fail_clearly() {
        let o = run(
            "service",
            json!({"name": "rustle-no-such-svc", "state": "started"}),
            false,
        )
        .unwrap();
        assert!(o.failed, "{o:?}");
        let msg = o.msg.unwrap();
        assert!(
            msg.contains("Could not find the requested service rustle-no-such-svc")
                && msg.contains("no init system answered")
                && msg.contains("systemd is not PID 1")
                && msg.contains("/etc/init.d/rustle-no-such-svc does not exist"),
            "{msg}"
        );
        let o = run(
            "systemd",
            json!({"name": "rustle-no-such-svc", "enabled": true}),
            false,
        )
        .unwrap();
        assert!(o.failed, "{o:?}");
        assert!(
            o.msg
                .unwrap()
                .contains("Could not find the requested service")
        );
    }

    #[test]
    fn systemd_enables_offline_but_cannot_start_without_pid1() {
        let _lock = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        assert!(
            !systemd_booted(),
            "this test expects a host without systemd as PID 1"
        );
        let _clean = Cleanup;
        std::fs::write(
            format!("/etc/systemd/system/{UNIT}"),
            "[Unit]\nDescription=rustle test\n[Service]\nExecStart=/bin/true\n[Install]\nWantedBy=multi-user.target\n",
        )
        .unwrap();
        let link = format!("/etc/systemd/system/multi-user.target.wants/{UNIT}");

        let o = run("systemd", json!({"name": UNIT, "enabled": true}), true).unwrap();
        assert!(o.changed && !o.failed, "{o:?}");
        assert!(!Path::new(&link).exists());
        let o = run(
            "systemd_service",
            json!({"name": UNIT, "enabled": true}),
            false,
        )
        .unwrap();
        assert!(o.changed && !o.failed, "{o:?}");
        assert!(Path::new(&link).exists());
        assert_eq!(o.data["enabled"], true);
        let o = run("systemd", json!({"name": UNIT, "enabled": true}), false).unwrap();
        assert!(!o.changed && !o.failed, "{o:?}");
        let o = run("systemd", json!({"name": UNIT, "enabled": false}), false).unwrap();
        assert!(o.changed && !Path::new(&link).exists(), "{o:?}");

        let o = run("systemd", json!({"name": UNIT, "state": "started"}), false).unwrap();
        assert!(o.failed, "{o:?}");
        assert!(o.msg.unwrap().contains("not running as init (PID 1)"));
        // The message says what was asked.
        let o = run("systemd", json!({"name": UNIT, "state": "stopped"}), false).unwrap();
        assert!(
            o.msg
                .unwrap()
                .contains(&format!("systemctl cannot stop {UNIT}"))
        );
        let o = run("systemd", json!({"daemon_reload": true}), false).unwrap();
        assert!(o.failed && o.msg.unwrap().contains("daemon-reload"));
    }

    #[test]
    fn bad_arguments_are_named() {
        let e = run("service", json!({"name": "x", "state": "running"}), false).unwrap_err();
        assert!(e.to_string().contains("'state'"));
        let e = run("service", json!({"name": "x"}), false).unwrap_err();
        assert!(e.to_string().contains("state"));
        let e = run(
            "systemd",
            json!({"name": "x", "scope": "user", "state": "started"}),
            false,
        )
        .unwrap_err();
        assert!(e.to_string().contains("'scope'"));
        let e = run("systemd", json!({"state": "started"}), false).unwrap_err();
        assert!(e.to_string().contains("'name'"));
        let e = run(
            "service",
            json!({"name": "../x", "state": "started"}),
            false,
        )
        .unwrap_err();
        assert!(e.to_string().contains("'name'"));
    }

    #[test]
    fn show_output_and_actions() {
        let m = parse_show("ActiveState=active\nUnitFileState=enabled\nDescription=a=b\n");
        assert_eq!(m["ActiveState"], "active");
        assert_eq!(m["Description"], "a=b");
        assert_eq!(Want::Started.action(true), None);
        assert_eq!(Want::Started.action(false), Some("start"));
        assert_eq!(Want::Stopped.action(true), Some("stop"));
        assert_eq!(Want::Reloaded.action(true), Some("reload"));
        assert_eq!(Want::Restarted.action(false), Some("restart"));
    }
}
