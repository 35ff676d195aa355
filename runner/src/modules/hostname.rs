//! The hostname module: sets the kernel's hostname and the permanent one in
//! /etc/hostname, or through `hostnamectl` where systemd runs (`use: systemd`, the
//! default there). Ok when both already match; registers the hostname facts.
//!
//! The running name is set first, so a kernel that refuses (a container without
//! CAP_SYS_ADMIN) fails the task before /etc/hostname is touched: on Linux by writing
//! /proc/sys/kernel/hostname (what `hostname NAME` does through sethostname), elsewhere
//! (macOS has no procfs) through the `hostname` command itself.

use super::fsutil::{self, Step, failed};
use super::{Ctx, Diff, ModuleError, Outcome, args, proc};
use crate::plan::Vars;
use serde_json::json;
use std::path::Path;

const KNOWN: &[&str] = &["name", "use"];

const PERMANENT: &str = "/etc/hostname";

/// How the name is set.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Strategy {
    /// `hostnamectl set-hostname`.
    Systemd,
    /// The running name (see [`running`]) and /etc/hostname.
    File,
}

pub(super) fn run(a: &Vars, ctx: &Ctx<'_>) -> Result<Outcome, ModuleError> {
    fsutil::finish(run_inner(a, ctx))
}

fn run_inner(a: &Vars, ctx: &Ctx<'_>) -> Step<Outcome> {
    args::only(a, KNOWN)?;
    let name = args::req_str(a, "name")?.trim().to_string();
    check_name(&name)?;
    let hostnamectl = proc::find("hostnamectl");
    let booted = Path::new("/run/systemd/system").is_dir();
    let strategy = match args::opt_str(a, "use")?.as_deref() {
        None => {
            if booted && hostnamectl.is_some() {
                Strategy::Systemd
            } else {
                Strategy::File
            }
        }
        Some("systemd") => Strategy::Systemd,
        Some("debian" | "alpine" | "openrc" | "redhat" | "sles" | "generic") => Strategy::File,
        Some(other) => {
            return Err(ModuleError::BadArgs(format!(
                "argument 'use' must be systemd, debian, alpine, openrc, redhat, sles or generic on Linux, got '{other}'"
            ))
            .into());
        }
    };

    let current = running::get()?;
    let permanent = match std::fs::read_to_string(PERMANENT) {
        Ok(s) => s.lines().next().unwrap_or_default().trim().to_string(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(fsutil::io_fail("read", Path::new(PERMANENT), &e)),
    };
    let changed = current != name || permanent != name;

    if changed && !ctx.check_mode {
        match strategy {
            Strategy::Systemd => {
                let Some(tool) = hostnamectl else {
                    return fsutil::fail(
                        "use=systemd, but 'hostnamectl' was not found on this host (looked in PATH and the sbin directories)",
                    );
                };
                let argv = proc::argv(["set-hostname", name.as_str()]);
                let r = proc::run(&tool, &argv, &[("LC_ALL", "C")])
                    .map_err(|e| failed(Outcome::fail(e)))?;
                if !r.ok() {
                    return fsutil::fail(format!(
                        "Command failed rc={}, out={}, err={}",
                        r.rc, r.stdout, r.stderr
                    ));
                }
            }
            Strategy::File => {
                if current != name {
                    running::set(&name)?;
                }
                if permanent != name {
                    // Written in place, not renamed over: container engines bind-mount
                    // /etc/hostname, and a rename onto a mount point fails.
                    std::fs::write(PERMANENT, format!("{name}\n"))
                        .map_err(|e| fsutil::io_fail("write", Path::new(PERMANENT), &e))?;
                }
            }
        }
    }

    let mut o = Outcome::changed(changed)
        .with("name", name.as_str())
        .with("ansible_facts", facts(&name));
    if changed && ctx.diff_mode {
        o.diff.push(Diff {
            before_header: "hostname".into(),
            after_header: "hostname".into(),
            before: format!("hostname = {current}\n"),
            after: format!("hostname = {name}\n"),
        });
    }
    Ok(o)
}

/// The kernel's running host name on Linux: the procfs file sethostname(2) backs.
#[cfg(target_os = "linux")]
mod running {
    use super::super::Outcome;
    use super::super::fsutil::{self, Step, failed};
    use std::path::Path;

    pub(super) const PATH: &str = "/proc/sys/kernel/hostname";

    pub(super) fn get() -> Step<String> {
        Ok(std::fs::read_to_string(PATH)
            .map_err(|e| fsutil::io_fail("read", Path::new(PATH), &e))?
            .trim()
            .to_string())
    }

    pub(super) fn set(name: &str) -> Step<()> {
        std::fs::write(PATH, name).map_err(|e| failed(Outcome::fail(refused(name, &e))))
    }

    /// The kernel refused the name: say so, and the usual reason.
    pub(super) fn refused(name: &str, e: &std::io::Error) -> String {
        let mut msg = format!("the kernel refused to set the hostname to {name}: {e}");
        if matches!(e.kind(), std::io::ErrorKind::PermissionDenied) || e.raw_os_error() == Some(30)
        {
            msg.push_str(
                " (changing it needs CAP_SYS_ADMIN in the host's UTS namespace, which containers usually lack)",
            );
        }
        msg
    }
}

/// The running host name without procfs (macOS): the `hostname` command reads it and
/// sets it (sethostname(2), which std cannot call without unsafe code). On macOS the
/// name a reboot restores lives in the System Configuration (`scutil --set HostName`),
/// which this module does not manage.
#[cfg(not(target_os = "linux"))]
mod running {
    use super::super::fsutil::{self, Step};
    use super::super::proc;

    fn hostname(args: &[String]) -> Step<String> {
        let Some(tool) = proc::find("hostname") else {
            return fsutil::fail("'hostname' was not found on this host");
        };
        let r = proc::run(&tool, args, &[("LC_ALL", "C")]).or_else(fsutil::fail)?;
        if !r.ok() {
            return fsutil::fail(format!(
                "hostname {} failed (rc={}): {}",
                args.join(" "),
                r.rc,
                r.why()
            ));
        }
        Ok(r.stdout.trim().to_string())
    }

    pub(super) fn get() -> Step<String> {
        hostname(&[])
    }

    pub(super) fn set(name: &str) -> Step<()> {
        // `hostname -x` would be an option, not a name (and no valid host name starts
        // with a dash).
        if name.starts_with('-') {
            return fsutil::fail(format!(
                "cannot set the hostname to {name}: it starts with '-'"
            ));
        }
        hostname(&proc::argv([name])).map(drop)
    }
}

/// A name the kernel accepts: 1 to 64 bytes, no whitespace, no slash.
fn check_name(name: &str) -> Result<(), ModuleError> {
    if name.is_empty()
        || name.len() > 64
        || name.contains(|c: char| c.is_whitespace() || c == '/' || c.is_control())
    {
        return Err(ModuleError::BadArgs(format!(
            "argument 'name' is not a valid hostname (1 to 64 characters, no spaces or slashes): '{name}'"
        )));
    }
    Ok(())
}

/// The facts Ansible's hostname module returns for the new name.
fn facts(name: &str) -> serde_json::Value {
    let (short, domain) = name.split_once('.').unwrap_or((name, ""));
    json!({
        "ansible_hostname": short,
        "ansible_nodename": name,
        "ansible_fqdn": name,
        "ansible_domain": domain,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};
    use std::collections::BTreeMap;

    fn run(args: Value, check_mode: bool) -> Result<Outcome, ModuleError> {
        let args = args.as_object().unwrap();
        crate::modules::run_for_test("hostname", args, &BTreeMap::new(), &json!({}), check_mode)
    }

    fn names() -> (String, String) {
        let runtime = std::fs::read_to_string(running::PATH)
            .unwrap()
            .trim()
            .to_string();
        let permanent = std::fs::read_to_string(PERMANENT).unwrap_or_default();
        (runtime, permanent)
    }

    #[test]
    fn the_current_name_is_ok() {
        let (runtime, permanent) = names();
        // Only when /etc/hostname agrees is a real run a no-op; otherwise check mode
        // must say it would fix the file (and we must not fix it here).
        let agrees = permanent.lines().next().unwrap_or_default().trim() == runtime;
        let o = run(json!({"name": runtime, "use": "debian"}), !agrees).unwrap();
        assert_eq!(o.changed, !agrees, "{o:?}");
        assert!(!o.failed);
        assert_eq!(o.data["name"], runtime.as_str());
        assert_eq!(
            o.data["ansible_facts"]["ansible_nodename"],
            runtime.as_str()
        );
        assert_eq!(names(), (runtime, permanent));
    }

    #[test]
    fn check_mode_changes_nothing() {
        let before = names();
        let o = run(json!({"name": "rustle-other-name.example.org"}), true).unwrap();
        assert!(o.changed && !o.failed, "{o:?}");
        assert_eq!(names(), before);
        let d = o.diff.first().unwrap();
        assert_eq!(d.before, format!("hostname = {}\n", before.0));
        assert_eq!(d.after, "hostname = rustle-other-name.example.org\n");
        let f = &o.data["ansible_facts"];
        assert_eq!(f["ansible_hostname"], "rustle-other-name");
        assert_eq!(f["ansible_domain"], "example.org");
    }

    #[test]
    fn bad_names_and_strategies_are_refused() {
        for bad in ["", "two words", "a/b", &"x".repeat(65)] {
            let e = run(json!({"name": bad}), true).unwrap_err();
            assert!(e.to_string().contains("'name'"), "{e}");
        }
        let e = run(json!({"name": "h", "use": "freebsd"}), true).unwrap_err();
        assert!(e.to_string().contains("'use'"));
        let e = run(json!({"name": "h", "nme": "x"}), true).unwrap_err();
        assert!(e.to_string().contains("'nme'"));
    }

    #[test]
    fn refusals_name_the_capability() {
        let e = std::io::Error::from_raw_os_error(1);
        let msg = running::refused("web1", &e);
        assert!(msg.starts_with("the kernel refused to set the hostname to web1"));
        assert!(msg.contains("CAP_SYS_ADMIN"), "{msg}");
    }
}
