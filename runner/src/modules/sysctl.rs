//! The sysctl module: keeps a `key=value` line in a sysctl file (default
//! /etc/sysctl.conf) and, with `sysctl_set`, the kernel's live value in /proc/sys.
//!
//! Only the lines for the key change: the first is rewritten when its value differs,
//! later duplicates are dropped, everything else stays byte for byte. Values compare
//! word by word, as Ansible compares them (`4096 87380` equals `4096\t87380`).
//! `reload` (on by default) runs `sysctl -p <file>` after the file changed.
//!
//! `sysctl_set` is Linux's: the live values are files under /proc/sys. Elsewhere (macOS
//! has no procfs) a task asking for it fails naming the platform, before the file is
//! touched.

use super::fsutil::{self, Attrs, Step, failed};
use super::{Ctx, ModuleError, Outcome, args, proc};
use crate::plan::Vars;
use std::path::PathBuf;

const KNOWN: &[&str] = &[
    "name",
    "key",
    "value",
    "val",
    "state",
    "sysctl_file",
    "reload",
    "sysctl_set",
    "ignoreerrors",
];

pub(super) fn run(a: &Vars, ctx: &Ctx<'_>) -> Result<Outcome, ModuleError> {
    fsutil::finish(run_inner(a, ctx))
}

fn run_inner(a: &Vars, ctx: &Ctx<'_>) -> Step<Outcome> {
    args::only(a, KNOWN)?;
    let name = match args::opt_str(a, "name")? {
        Some(n) => n,
        None => args::req_str(a, "key")?,
    }
    .trim()
    .to_string();
    if name.is_empty()
        || name.contains(|c: char| c.is_whitespace() || c == '=')
        || name.contains("..")
    {
        return Err(
            ModuleError::BadArgs(format!("argument 'name' is not a sysctl key: '{name}'")).into(),
        );
    }
    let present = match args::opt_str(a, "state")?.as_deref() {
        None | Some("present") => true,
        Some("absent") => false,
        Some(other) => {
            return Err(ModuleError::BadArgs(format!(
                "argument 'state' must be present or absent, got '{other}'"
            ))
            .into());
        }
    };
    let value = match args::opt_str(a, "value")? {
        Some(v) => Some(v),
        None => args::opt_str(a, "val")?,
    }
    .map(|v| normalize_value(&v));
    if value.as_deref().is_some_and(|v| v.contains(['\n', '\r'])) {
        return Err(ModuleError::BadArgs("argument 'value' must be a single line".into()).into());
    }
    let value = match (present, value) {
        (true, None) => {
            return Err(ModuleError::BadArgs(
                "argument 'value' is required when state=present".into(),
            )
            .into());
        }
        (_, v) => v.unwrap_or_default(),
    };
    let file = PathBuf::from(
        args::opt_str(a, "sysctl_file")?.unwrap_or_else(|| "/etc/sysctl.conf".into()),
    );
    let reload = args::bool_or(a, "reload", true)?;
    let sysctl_set = args::bool_or(a, "sysctl_set", false)?;
    let ignoreerrors = args::bool_or(a, "ignoreerrors", false)?;

    // Where the live value is, found first: a platform without one fails the task
    // before the file changes.
    let live = if present && sysctl_set {
        Some(live_path(&name).or_else(fsutil::fail)?)
    } else {
        None
    };

    // The file.
    let old = match std::fs::read(&file) {
        Ok(b) => String::from_utf8(b).map_err(|_| {
            failed(Outcome::fail(format!(
                "{} is not UTF-8 text",
                file.display()
            )))
        })?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(fsutil::io_fail("read", &file, &e)),
    };
    let new = edit(&old, &name, present.then_some(value.as_str()));
    let mut out = Outcome::ok();
    let file_changed = new != old;
    if file_changed {
        let w = fsutil::write_config(&file, new.as_bytes(), Attrs::default(), ctx)?;
        out.changed = true;
        out.diff = w
            .diff
            .into_iter()
            .map(|mut d| {
                d.after_header = file.display().to_string();
                d
            })
            .collect();
    }

    // The kernel's live value.
    if let Some(proc_path) = live {
        match std::fs::read_to_string(&proc_path) {
            Ok(current) if same_value(&current, &value) => {}
            Ok(_) => {
                if !ctx.check_mode
                    && let Err(e) = std::fs::write(&proc_path, format!("{value}\n"))
                    && !ignoreerrors
                {
                    return fsutil::fail(format!("setting {name} failed: {e}"));
                }
                out.changed = true;
            }
            Err(e) if !ignoreerrors => {
                return fsutil::fail(format!(
                    "setting {name} failed: cannot read {}: {e}",
                    proc_path.display()
                ));
            }
            Err(_) => {}
        }
    }

    if file_changed && reload && !ctx.check_mode {
        let Some(sysctl) = proc::find("sysctl") else {
            return fsutil::fail(
                "Failed to reload sysctl: 'sysctl' was not found on this host (set reload: false to only edit the file)",
            );
        };
        let mut argv = vec!["-p".to_string(), file.display().to_string()];
        if ignoreerrors {
            argv.insert(0, "-e".into());
        }
        let r =
            proc::run(&sysctl, &argv, &[("LC_ALL", "C")]).map_err(|e| failed(Outcome::fail(e)))?;
        if !r.ok() || (!ignoreerrors && !r.stderr.trim().is_empty()) {
            return Err(failed(
                proc::with_output(
                    Outcome::fail(format!("Failed to reload sysctl: {}{}", r.stdout, r.stderr)),
                    &r.stdout,
                    &r.stderr,
                )
                .with("rc", r.rc),
            ));
        }
    }
    Ok(out)
}

/// A key's file under /proc/sys: dots are separators unless the key uses slashes.
#[cfg(target_os = "linux")]
fn live_path(name: &str) -> Result<PathBuf, String> {
    let rel = if name.contains('/') {
        name.trim_start_matches('/').to_string()
    } else {
        name.replace('.', "/")
    };
    Ok(std::path::Path::new("/proc/sys").join(rel))
}

/// Live values are procfs files, which only Linux has.
#[cfg(not(target_os = "linux"))]
fn live_path(name: &str) -> Result<PathBuf, String> {
    Err(format!(
        "setting {name} failed: sysctl_set changes live values through procfs, which only Linux has (this host runs {}); use sysctl_set: false to only edit the file",
        std::env::consts::OS
    ))
}

/// Ansible's value conversions: booleans become 1 and 0, surrounding space goes.
fn normalize_value(v: &str) -> String {
    match v.trim().to_ascii_lowercase().as_str() {
        "true" | "yes" => "1".into(),
        "false" | "no" => "0".into(),
        _ => v.trim().to_string(),
    }
}

/// Equal word by word, whatever the whitespace between the words.
fn same_value(a: &str, b: &str) -> bool {
    a.split_whitespace().eq(b.split_whitespace())
}

/// The same key, written with dots or slashes.
fn same_key(a: &str, b: &str) -> bool {
    a.trim().replace('/', ".") == b.trim().replace('/', ".")
}

/// The file's text with `name` set to `value` (`None` removes it). Comments, blank
/// lines and other keys are kept as they are.
fn edit(text: &str, name: &str, value: Option<&str>) -> String {
    let mut out = String::with_capacity(text.len() + name.len() + 16);
    let mut seen = false;
    for line in text.split_inclusive('\n') {
        let t = line.trim();
        let entry = (!t.starts_with('#') && !t.starts_with(';'))
            .then(|| t.split_once('='))
            .flatten()
            .filter(|(k, _)| same_key(k, name));
        let Some((_, current)) = entry else {
            out.push_str(line);
            continue;
        };
        match value {
            Some(v) if !seen => {
                seen = true;
                if same_value(current, v) {
                    out.push_str(line);
                } else {
                    out.push_str(&format!("{name}={v}\n"));
                }
            }
            // A duplicate of a key already written, or a key to remove.
            _ => {}
        }
    }
    if let Some(v) = value
        && !seen
    {
        if !out.is_empty() && !out.ends_with('\n') {
            out.push('\n');
        }
        out.push_str(&format!("{name}={v}\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};
    use std::collections::BTreeMap;
    use std::path::Path;

    fn run(args: Value, check_mode: bool) -> Result<Outcome, ModuleError> {
        let args = args.as_object().unwrap();
        crate::modules::run_for_test("sysctl", args, &BTreeMap::new(), &json!({}), check_mode)
    }

    #[test]
    fn edits_the_file_idempotently() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("99-test.conf");
        let fs = f.to_str().unwrap();
        std::fs::write(&f, "# tuning\nvm.swappiness = 10\nnet.core.somaxconn=128\n").unwrap();
        let set = |name: &str, value: Value, check: bool| {
            run(
                json!({"name": name, "value": value, "sysctl_file": fs, "reload": false}),
                check,
            )
            .unwrap()
        };

        // Adding a key: check mode first, then for real, then again.
        let o = set("net.ipv4.ip_forward", json!(1), true);
        assert!(o.changed && !o.failed, "{o:?}");
        assert!(!std::fs::read_to_string(&f).unwrap().contains("ip_forward"));
        let d = o.diff.first().unwrap();
        assert_eq!(
            (d.before_header.as_str(), d.after_header.as_str()),
            (fs, fs)
        );
        assert!(d.after.contains("net.ipv4.ip_forward=1\n") && !d.before.contains("ip_forward"));
        let o = set("net.ipv4.ip_forward", json!(1), false);
        assert!(o.changed && !o.failed, "{o:?}");
        assert_eq!(
            std::fs::read_to_string(&f).unwrap(),
            "# tuning\nvm.swappiness = 10\nnet.core.somaxconn=128\nnet.ipv4.ip_forward=1\n"
        );
        let o = set("net.ipv4.ip_forward", json!("1"), false);
        assert!(!o.changed, "{o:?}");

        // Spaces around '=' and slashes in the key are the same entry; yes is 1.
        let o = set("vm/swappiness", json!(" 10 "), false);
        assert!(!o.changed, "{o:?}");
        let o = set("net.ipv4.ip_forward", json!("yes"), false);
        assert!(!o.changed, "{o:?}");

        // Changing a value rewrites that line only.
        let o = set("vm.swappiness", json!(60), false);
        assert!(o.changed, "{o:?}");
        assert_eq!(
            std::fs::read_to_string(&f).unwrap(),
            "# tuning\nvm.swappiness=60\nnet.core.somaxconn=128\nnet.ipv4.ip_forward=1\n"
        );

        // Absent removes it; again is ok.
        let absent = json!({"name": "net.core.somaxconn", "state": "absent", "sysctl_file": fs, "reload": false});
        let o = run(absent.clone(), false).unwrap();
        assert!(o.changed, "{o:?}");
        assert_eq!(
            std::fs::read_to_string(&f).unwrap(),
            "# tuning\nvm.swappiness=60\nnet.ipv4.ip_forward=1\n"
        );
        let o = run(absent, false).unwrap();
        assert!(!o.changed && !o.failed, "{o:?}");
    }

    #[test]
    fn creates_a_missing_file() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("new.conf");
        let o = run(
            json!({"name": "kernel.panic", "value": "10", "sysctl_file": f.to_str(), "reload": "no"}),
            false,
        )
        .unwrap();
        assert!(o.changed && !o.failed, "{o:?}");
        assert_eq!(std::fs::read_to_string(&f).unwrap(), "kernel.panic=10\n");
    }

    #[test]
    fn live_values_are_compared_with_proc() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("s.conf");
        let fs = f.to_str().unwrap();
        // kernel.ostype is read-only and always "Linux": equal, so nothing to set.
        let o = run(
            json!({"name": "kernel.ostype", "value": "Linux", "sysctl_file": fs, "reload": false, "sysctl_set": true}),
            false,
        )
        .unwrap();
        assert!(o.changed && !o.failed, "the file changed: {o:?}");
        let o = run(
            json!({"name": "kernel.ostype", "value": "Linux", "sysctl_file": fs, "reload": false, "sysctl_set": true}),
            false,
        )
        .unwrap();
        assert!(!o.changed && !o.failed, "{o:?}");
        // A different value: check mode says it would set it and touches nothing.
        let o = run(
            json!({"name": "kernel.ostype", "value": "Plan9", "sysctl_file": fs, "reload": false, "sysctl_set": true}),
            true,
        )
        .unwrap();
        assert!(o.changed && !o.failed, "{o:?}");
        assert_eq!(
            std::fs::read_to_string("/proc/sys/kernel/ostype").unwrap(),
            "Linux\n"
        );
        // For real the kernel refuses: a failure naming the key, unless ignored.
        let o = run(
            json!({"name": "kernel.ostype", "value": "Plan9", "sysctl_file": fs, "reload": false, "sysctl_set": true}),
            false,
        )
        .unwrap();
        assert!(o.failed && o.msg.unwrap().contains("setting kernel.ostype failed"));
        let o = run(
            json!({"name": "rustle.no_such_key", "value": "1", "sysctl_file": fs, "reload": false, "sysctl_set": true}),
            false,
        )
        .unwrap();
        assert!(o.failed && o.msg.unwrap().contains("/proc/sys/rustle/no_such_key"));
        let o = run(
            json!({"name": "rustle.no_such_key", "value": "1", "sysctl_file": fs, "reload": false, "sysctl_set": true, "ignoreerrors": true}),
            false,
        )
        .unwrap();
        assert!(!o.failed, "{o:?}");
    }

    #[test]
    fn reload_failures_are_reported() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("s.conf");
        // sysctl -p refuses an unknown key: the task fails with what sysctl said.
        let o = run(
            json!({"name": "rustle.no_such_key", "value": "1", "sysctl_file": f.to_str()}),
            false,
        )
        .unwrap();
        assert!(o.failed, "{o:?}");
        let msg = o.msg.unwrap();
        assert!(
            msg.starts_with("Failed to reload sysctl") && msg.contains("no_such_key"),
            "{msg}"
        );
    }

    #[test]
    fn edit_keeps_other_lines_and_drops_duplicates() {
        let text = "a=1\n; note\nb = 2\na = 3\n#a=9\nc=4";
        assert_eq!(edit(text, "a", Some("1")), "a=1\n; note\nb = 2\n#a=9\nc=4");
        assert_eq!(edit(text, "a", Some("5")), "a=5\n; note\nb = 2\n#a=9\nc=4");
        assert_eq!(edit(text, "a", None), "; note\nb = 2\n#a=9\nc=4");
        assert_eq!(
            edit(text, "d", Some("x y")),
            "a=1\n; note\nb = 2\na = 3\n#a=9\nc=4\nd=x y\n"
        );
        assert_eq!(edit("", "d", Some("1")), "d=1\n");
        assert!(same_value("4096\t87380  6291456\n", "4096 87380 6291456"));
        assert_eq!(
            live_path("net.ipv4.ip_forward").unwrap(),
            Path::new("/proc/sys/net/ipv4/ip_forward")
        );
        assert_eq!(
            live_path("net/ipv4/conf/eth0.1/rp_filter").unwrap(),
            Path::new("/proc/sys/net/ipv4/conf/eth0.1/rp_filter")
        );
    }

    #[test]
    fn bad_arguments_are_named() {
        let e = run(json!({"name": "a.b"}), false).unwrap_err();
        assert!(e.to_string().contains("'value'"));
        let e = run(json!({"name": "a.b", "value": 1, "state": "gone"}), false).unwrap_err();
        assert!(e.to_string().contains("'state'"));
        let e = run(json!({"name": "a b", "value": 1}), false).unwrap_err();
        assert!(e.to_string().contains("'name'"));
        let e = run(json!({"name": "a=b", "value": 1}), false).unwrap_err();
        assert!(e.to_string().contains("'name'"));
        let e = run(json!({"name": "a", "value": "1\nb=2"}), false).unwrap_err();
        assert!(e.to_string().contains("single line"));
        let e = run(json!({"name": "a.b", "value": 1, "reloads": true}), false).unwrap_err();
        assert!(e.to_string().contains("'reloads'"));
    }
}
