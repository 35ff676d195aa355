//! `cargo xtask conformance`: ansible-core's own integration targets, run with
//! `ansible-playbook` (the reference) and with `rustle-deploy`, compared task by task.
//!
//! The targets come from the ansible-core source distribution on the Python package
//! index (pinned version, checked digest), and a collection's (`NS.COLL/TARGET` in the
//! list) from the `ansible` source distribution of the reference's release, which
//! carries each collection's `tests/integration/targets/`. Either is laid out as
//! `ansible-test` lays it out: a
//! copy of `test/integration/targets/` beside an `inventory` holding `testhost` with a
//! local connection. A target with a `runme.sh` runs that script, with the tool's
//! `ansible-playbook` first on `PATH` (for rustle-deploy, a two-line shim); any other
//! target runs the playbook ansible-test writes for it (`hosts: testhost`,
//! `gather_facts`, `vars: {output_dir}`, `roles: [TARGET]`).
//!
//! The targets run as root and change the machine as they would a throwaway container
//! (packages, users, groups, crontab, time zone). Each run first undoes what the listed
//! targets leave behind (`restore_baseline`), so its results do not depend on what ran on
//! the machine before; run it on a test machine, as CI does.
//!
//! Ansible's results are slow to make and depend on nothing of ours, so they are kept in
//! `xtask/conformance/reference.json`, written only by `--reference`. rustle-deploy's are
//! written to `xtask/conformance/expected.json` and rendered as `docs/conformance.md`;
//! `--check` (what CI runs) fails when a target does worse than that checked-in record
//! (a target marked `timing:` in the list is reported, not failed).

use crate::{Result, cargo, root, run, venv_with};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The ansible-core release whose targets are run, and its sdist's SHA-256 as the
/// package index publishes it (pip checks it with `--require-hashes`).
const CORE_VERSION: &str = "2.18.19";
const CORE_SHA256: &str = "1b92051152c24a5bdee92ee88fccf848ba056d835b58640508328f877f0957db";

/// The `ansible` release whose collections' targets are run (`NS.COLL/TARGET`), and its
/// sdist's SHA-256 as the package index publishes it.
const COLLECTIONS_VERSION: &str = "11.13.0";
const COLLECTIONS_SHA256: &str = "c15a046c851c22e8430783bdbcb8f6603c35f0d7c766992ca0a6a9ed975e4a9a";

/// The reference: the `ansible` package of the same release series (ansible-core plus
/// the collections part 3 needs), and passlib, which ansible-test's container has.
const REFERENCE_PACKAGES: &[&str] = &["ansible==11.13.0", "passlib==1.7.4"];

/// The inventory ansible-test writes for controller-side targets, with the interpreter
/// the machine is set up for (python3-jinja2 installed for it).
const INVENTORY: &str = "[testgroup]\ntesthost ansible_connection=local ansible_pipelining=yes ansible_python_interpreter=/usr/bin/python3\n";

/// Longest a single target may run before it is stopped and recorded as timed out.
const TARGET_TIMEOUT: Duration = Duration::from_secs(900);

/// Which tool runs a target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tool {
    Ansible,
    Rustle,
}

impl Tool {
    fn name(self) -> &'static str {
        match self {
            Tool::Ansible => "ansible",
            Tool::Rustle => "rustle",
        }
    }
}

/// One line of `xtask/conformance/targets.txt`: a target and, for one that fails with
/// ansible-playbook on this kind of machine, the reason.
#[derive(Debug, Clone)]
struct Listed {
    name: String,
    note: String,
}

impl Listed {
    /// A note starting `timing:` says the target's result depends on the clock (a
    /// cron job that must fire within seconds): `--check` reports a worse result for it
    /// without failing, since the same code gives either result from run to run.
    fn timing(&self) -> bool {
        self.note.starts_with("timing:")
    }
}

/// Recap counts, in Ansible's order.
const COUNTS: [&str; 7] = [
    "ok",
    "changed",
    "unreachable",
    "failed",
    "skipped",
    "rescued",
    "ignored",
];

/// What one tool did with one target.
#[derive(Debug, Clone, Default)]
struct Run {
    /// Exit code (None: killed or timed out).
    rc: Option<i32>,
    /// Recap counts of `testhost` (summed over a runme.sh's playbooks).
    recap: BTreeMap<String, i64>,
    /// Each task's name and result (`ok`, `changed`, `failed`, `skipped`,
    /// `unreachable`), in order; empty for runme.sh targets.
    tasks: Vec<(String, String, String)>,
    /// A short reason when the run did not get as far as a recap.
    error: String,
    /// Seconds it took.
    secs: f64,
}

impl Run {
    fn to_json(&self) -> Value {
        json!({
            "rc": self.rc,
            "recap": self.recap,
            "tasks": self.tasks.iter().map(|(n, s, m)| json!([n, s, m])).collect::<Vec<_>>(),
            "error": self.error,
            "secs": (self.secs * 10.0).round() / 10.0,
        })
    }

    fn from_json(v: &Value) -> Run {
        let recap = at(v, "/recap")
            .as_object()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| (k.clone(), v.as_i64().unwrap_or(0)))
                    .collect()
            })
            .unwrap_or_default();
        let tasks = at(v, "/tasks")
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|t| {
                        let s =
                            |i: usize| t.get(i).and_then(Value::as_str).unwrap_or("").to_string();
                        (s(0), s(1), s(2))
                    })
                    .collect()
            })
            .unwrap_or_default();
        Run {
            rc: at(v, "/rc").as_i64().map(|c| c as i32),
            recap,
            tasks,
            error: at(v, "/error").as_str().unwrap_or("").to_string(),
            secs: at(v, "/secs").as_f64().unwrap_or(0.0),
        }
    }

    /// A run that ended without failures: exit 0, and for a playbook run a recap with
    /// nothing failed or unreachable (a runme.sh decides for itself, by its exit code).
    fn passed(&self, script: bool) -> bool {
        self.rc == Some(0)
            && (script
                || (self.recap.get("failed").copied().unwrap_or(0) == 0
                    && self.recap.get("unreachable").copied().unwrap_or(0) == 0
                    && !self.recap.is_empty()))
    }

    fn recap_text(&self) -> String {
        if self.recap.is_empty() {
            return "-".into();
        }
        ["ok", "changed", "failed", "skipped", "rescued", "ignored"]
            .iter()
            .map(|k| format!("{k}={}", self.recap.get(*k).copied().unwrap_or(0)))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// How rustle-deploy's run of a target compares with Ansible's.
#[derive(Debug, Clone)]
struct Verdict {
    /// `pass`, `differs`, `refused` (stopped before any task ran), `error`.
    outcome: &'static str,
    /// Leading tasks with the same name and result in both runs.
    matched: usize,
    /// The first difference, in words.
    detail: String,
}

fn compare(reference: &Run, ours: &Run, script: bool) -> Verdict {
    let matched = reference
        .tasks
        .iter()
        .zip(&ours.tasks)
        .take_while(|(a, b)| a.0 == b.0 && a.1 == b.1)
        .count();
    let same_recap = COUNTS
        .iter()
        .all(|k| reference.recap.get(*k) == ours.recap.get(*k))
        && (script || !ours.recap.is_empty());
    let outcome = if ours.recap.is_empty() && ours.tasks.is_empty() && !(script && same_recap) {
        if ours.rc.is_some() {
            "refused"
        } else {
            "error"
        }
    } else if same_recap && reference.rc == ours.rc {
        "pass"
    } else {
        "differs"
    };
    let detail = if outcome == "pass" {
        String::new()
    } else if !ours.error.is_empty() && ours.tasks.len() <= matched {
        ours.error.clone()
    } else {
        match (reference.tasks.get(matched), ours.tasks.get(matched)) {
            (Some(a), Some(b)) => format!(
                "task {} '{}': ansible {}, rustle {} '{}'{}",
                matched + 1,
                a.0,
                a.1,
                b.1,
                b.0,
                if b.2.is_empty() {
                    String::new()
                } else {
                    format!(": {}", b.2)
                }
            ),
            (Some(a), None) => format!(
                "task {} '{}' ({}) not reached{}",
                matched + 1,
                a.0,
                a.1,
                if ours.error.is_empty() {
                    String::new()
                } else {
                    format!(": {}", ours.error)
                }
            ),
            (None, Some(b)) => format!("extra task {} '{}' ({})", matched + 1, b.0, b.1),
            (None, None) => format!(
                "exit {} against {}; recap {} against {}",
                show_rc(ours.rc),
                show_rc(reference.rc),
                ours.recap_text(),
                reference.recap_text()
            ),
        }
    };
    Verdict {
        outcome,
        matched,
        detail: one_line(&detail, 240),
    }
}

fn show_rc(rc: Option<i32>) -> String {
    rc.map_or_else(|| "none".into(), |c| c.to_string())
}

/// Text squeezed onto one table line: no newlines or pipes, at most `max` characters.
fn one_line(s: &str, max: usize) -> String {
    let flat: String = s
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .replace('|', "\\|");
    if flat.chars().count() > max {
        let cut: String = flat.chars().take(max).collect();
        format!("{cut}...")
    } else {
        flat
    }
}

/// Where everything lives.
struct Layout {
    root: PathBuf,
    /// `target/conformance`: the sdist, its unpacked tree, one work tree per run.
    work: PathBuf,
    /// `xtask/conformance`: the target list and the two result records.
    records: PathBuf,
}

impl Layout {
    fn new() -> Layout {
        let root = root();
        Layout {
            work: root.join("target/conformance"),
            records: root.join("xtask/conformance"),
            root,
        }
    }

    fn integration_src(&self) -> PathBuf {
        self.work
            .join(format!("ansible_core-{CORE_VERSION}"))
            .join("test/integration")
    }

    fn collections_src(&self) -> PathBuf {
        self.work
            .join(format!("ansible-{COLLECTIONS_VERSION}"))
            .join("ansible_collections")
    }

    /// The `targets/` directory a listed target comes from, and its name there:
    /// ansible-core's for a plain name, the collection's for `NS.COLL/TARGET`.
    fn targets_of<'n>(&self, name: &'n str) -> (PathBuf, &'n str) {
        match collection_target(name) {
            Some((ns, coll, target)) => (
                self.collections_src()
                    .join(ns)
                    .join(coll)
                    .join("tests/integration/targets"),
                target,
            ),
            None => (self.integration_src().join("targets"), name),
        }
    }
}

/// `NS.COLL/TARGET` as its three parts; `None` for an ansible-core target.
fn collection_target(name: &str) -> Option<(&str, &str, &str)> {
    let (collection, target) = name.split_once('/')?;
    let (ns, coll) = collection.split_once('.')?;
    Some((ns, coll, target))
}

/// Entry point: `cargo xtask conformance [--reference | --check] [TARGET...]`.
pub fn main(args: &[String]) -> Result<()> {
    let mut reference = false;
    let mut check = false;
    let mut names = Vec::new();
    for a in args {
        match a.as_str() {
            "--reference" => reference = true,
            "--check" => check = true,
            s if s.starts_with('-') => {
                return Err(format!(
                    "unknown argument {s}; usage: cargo xtask conformance [--reference | --check] [TARGET...]"
                ));
            }
            s => names.push(s.to_string()),
        }
    }
    if reference && check {
        return Err("--reference and --check do not go together".into());
    }
    let layout = Layout::new();
    let listed = read_list(&layout.records.join("targets.txt"))?;
    let selected: Vec<Listed> = if names.is_empty() {
        listed.clone()
    } else {
        names
            .iter()
            .map(|n| {
                listed
                    .iter()
                    .find(|l| &l.name == n)
                    .cloned()
                    .ok_or_else(|| format!("{n} is not in xtask/conformance/targets.txt"))
            })
            .collect::<Result<_>>()?
    };
    check_machine()?;
    restore_baseline()?;
    fetch_targets(&layout)?;
    if selected
        .iter()
        .any(|t| collection_target(&t.name).is_some())
    {
        fetch_collections(&layout)?;
    }
    if reference {
        let bin = venv_with(
            &layout.root.join("target/conformance-venv"),
            &REFERENCE_PACKAGES
                .iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>(),
            "the Ansible side of `cargo xtask conformance --reference`",
            |_, bin| bin.join("ansible-playbook").exists(),
        )?;
        let mut record = read_record(&layout.records.join("reference.json"));
        for t in &selected {
            let r = run_target(&layout, t, Tool::Ansible, &bin)?;
            eprintln!(
                "xtask: conformance: {}: ansible-playbook exit {} {} ({:.0} s)",
                t.name,
                show_rc(r.rc),
                r.recap_text(),
                r.secs
            );
            record.insert(t.name.clone(), r.to_json());
        }
        let doc = json!({
            "ansible_core": CORE_VERSION,
            "packages": REFERENCE_PACKAGES,
            "written_by": "cargo xtask conformance --reference",
            "targets": record,
        });
        write_json(&layout.records.join("reference.json"), &doc)?;
        return render(&layout, &listed);
    }
    let deployer = build_rustle(&layout)?;
    let shims = write_shims(&layout, &deployer)?;
    let references = read_record(&layout.records.join("reference.json"));
    let expected = read_record(&layout.records.join("expected.json"));
    let mut results = expected.clone();
    let mut regressions = Vec::new();
    for t in &selected {
        let ours = run_target(&layout, t, Tool::Rustle, &shims)?;
        let theirs = references.get(&t.name).map(Run::from_json).ok_or_else(|| {
            format!(
                "{} has no Ansible reference yet: run cargo xtask conformance --reference {}",
                t.name, t.name
            )
        })?;
        let v = compare(&theirs, &ours, is_script(&layout, &t.name));
        eprintln!(
            "xtask: conformance: {}: {} ({} tasks alike) {}",
            t.name, v.outcome, v.matched, v.detail
        );
        if let Some(before) = expected.get(&t.name) {
            let was = at(before, "/outcome").as_str().unwrap_or("");
            let was_matched = at(before, "/matched").as_u64().unwrap_or(0) as usize;
            let worse = (was == "pass" && v.outcome != "pass") || v.matched < was_matched;
            if worse && t.timing() {
                eprintln!(
                    "xtask: conformance: {}: worse than expected.json ({was} with {was_matched} tasks alike), not counted: {}",
                    t.name, t.note
                );
            } else if worse {
                regressions.push(format!(
                    "{}: was {was} with {was_matched} tasks alike, now {} with {}: {}",
                    t.name, v.outcome, v.matched, v.detail
                ));
            }
        }
        let mut entry = ours.to_json();
        if let Some(m) = entry.as_object_mut() {
            m.insert("outcome".into(), v.outcome.into());
            m.insert("matched".into(), v.matched.into());
            m.insert("detail".into(), v.detail.into());
        }
        results.insert(t.name.clone(), entry);
    }
    if check {
        if regressions.is_empty() {
            eprintln!(
                "xtask: conformance: no target does worse than xtask/conformance/expected.json"
            );
            return Ok(());
        }
        return Err(format!(
            "conformance regressions against xtask/conformance/expected.json:\n  {}",
            regressions.join("\n  ")
        ));
    }
    let doc = json!({
        "written_by": "cargo xtask conformance",
        "targets": results,
    });
    write_json(&layout.records.join("expected.json"), &doc)?;
    render(&layout, &listed)
}

/// Reads the target list: a name per line, `# reason` after it for a target that fails
/// with ansible-playbook here; blank lines and whole-line comments are skipped.
fn read_list(path: &Path) -> Result<Vec<Listed>> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(text
        .lines()
        .filter_map(|l| {
            let (name, note) = l.split_once('#').unwrap_or((l, ""));
            let name = name.trim();
            (!name.is_empty()).then(|| Listed {
                name: name.to_string(),
                note: note.trim().to_string(),
            })
        })
        .collect())
}

fn read_record(path: &Path) -> Map<String, Value> {
    std::fs::read(path)
        .ok()
        .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
        .and_then(|v| v.get("targets").and_then(Value::as_object).cloned())
        .unwrap_or_default()
}

fn write_json(path: &Path, v: &Value) -> Result<()> {
    let mut text = serde_json::to_string_pretty(v).map_err(|e| e.to_string())?;
    text.push('\n');
    std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))?;
    eprintln!("xtask: wrote {}", path.display());
    Ok(())
}

/// The machine must be set up as ansible-test's default container is, or targets fail
/// for reasons of the machine: say what is missing, and how `.ci/run` installs it.
fn check_machine() -> Result<()> {
    let mut missing = Vec::new();
    let python_jinja = Command::new("/usr/bin/python3")
        .args(["-c", "import jinja2"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !python_jinja {
        missing.push("python3-jinja2 for /usr/bin/python3 (apt-get install python3-jinja2)");
    }
    if !Path::new("/usr/bin/setfacl").exists() {
        missing.push("acl (apt-get install acl)");
    }
    // The records were made with ufw, at and rsync installed, as .ci/run installs them for the
    // modules' own tests: the targets' install tasks are then `ok`.
    if !Path::new("/usr/sbin/ufw").exists() {
        missing.push("ufw (apt-get install ufw)");
    }
    if !Path::new("/usr/bin/at").exists() {
        missing.push("at (apt-get install at)");
    }
    if !Path::new("/usr/bin/rsync").exists() {
        missing.push("rsync (apt-get install rsync)");
    }
    let cron = Command::new("pgrep")
        .args(["-x", "cron"])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !cron {
        missing.push("a running cron (apt-get install cron; then start it: cron)");
    }
    let keys = std::env::var_os("HOME")
        .map(|h| Path::new(&h).join(".ssh/authorized_keys"))
        .is_some_and(|p| p.exists());
    if !keys {
        missing.push("~/.ssh/authorized_keys (the user target reads it; an empty file will do)");
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "this machine is not set up as ansible-test's container is (see .ci/run):\n  {}",
            missing.join("\n  ")
        ))
    }
}

/// What the listed targets leave behind on the machine and a fresh ansible-test
/// container does not have: the packages they install, the users and groups they make,
/// root's crontab, the debconf answers they set, the time zone they end on.
/// `restore_baseline` undoes them before a run, so a run's results do not depend on what
/// ran on the machine before it (the records were made from this baseline).
const LEFTOVER_PACKAGES: &[&str] = &[
    "libuser",
    "libfaketime",
    "equivs",
    "dpkg-dev",
    "libfile-fcntllock-perl",
];
const LEFTOVER_USERS: &[&str] = &["ansibulluser", "ansibletest0", "ansible_user"];
const LEFTOVER_GROUPS: &[&str] = &[
    "testgroupone",
    "testgrouptwo",
    "testgroupthree",
    "testgroupfour",
    "testgroupfive",
    "ansible_group",
];
const LEFTOVER_DEBCONF: &[&str] = &["ddclient", "ddclient2", "libnss-ldapd", "libnns-ldap"];
const LEFTOVER_PATHS: &[&str] = &["/tmp/repo"];
const BASELINE_TIMEZONE: &str = "Etc/UTC";

/// Quietly runs a command and says whether it succeeded (a probe, not a step).
fn probe(cmd: &mut Command) -> bool {
    cmd.stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Brings the machine back to the state the records were made from (see
/// `LEFTOVER_PACKAGES`): the targets run as root and change the machine as they would
/// a throwaway container, so an earlier run (or one of another tool) would otherwise
/// decide whether a later one reports `changed` or `ok`.
fn restore_baseline() -> Result<()> {
    let installed: Vec<&str> = LEFTOVER_PACKAGES
        .iter()
        .copied()
        .filter(|p| {
            Command::new("dpkg-query")
                .args(["-W", "-f", "${db:Status-Status}", p])
                .stderr(Stdio::null())
                .output()
                .is_ok_and(|o| o.stdout == b"installed")
        })
        .collect();
    if !installed.is_empty() {
        run(Command::new("apt-get")
            .args(["purge", "-y", "-qq"])
            .args(&installed)
            .env("DEBIAN_FRONTEND", "noninteractive"))?;
        run(Command::new("apt-get")
            .args(["autoremove", "-y", "-qq"])
            .env("DEBIAN_FRONTEND", "noninteractive"))?;
    }
    for user in LEFTOVER_USERS {
        if probe(Command::new("getent").args(["passwd", user])) {
            run(Command::new("userdel").args(["-r", user]))?;
        }
    }
    for group in LEFTOVER_GROUPS {
        if probe(Command::new("getent").args(["group", group])) {
            run(Command::new("groupdel").arg(group))?;
        }
    }
    if probe(Command::new("crontab").arg("-l")) {
        run(Command::new("crontab").arg("-r"))?;
    }
    for package in LEFTOVER_DEBCONF {
        // debconf-communicate reads its commands from stdin; PURGE forgets the
        // package's answers (a no-op when it has none).
        let mut child = Command::new("debconf-communicate")
            .arg(package)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start debconf-communicate: {e}"))?;
        if let Some(mut stdin) = child.stdin.take() {
            use std::io::Write;
            stdin
                .write_all(b"PURGE\n")
                .map_err(|e| format!("debconf-communicate {package}: {e}"))?;
        }
        child
            .wait()
            .map_err(|e| format!("debconf-communicate {package}: {e}"))?;
    }
    for path in LEFTOVER_PATHS {
        if Path::new(path).exists() {
            std::fs::remove_dir_all(path).map_err(|e| format!("{path}: {e}"))?;
        }
    }
    // The file target's absolute-link tests leave these behind in /tmp.
    if let Ok(entries) = std::fs::read_dir("/tmp") {
        for entry in entries.flatten() {
            if entry
                .file_name()
                .to_string_lossy()
                .starts_with("ansible-test-abs-link")
            {
                let path = entry.path();
                let removed = if path.is_dir() && !path.is_symlink() {
                    std::fs::remove_dir_all(&path)
                } else {
                    std::fs::remove_file(&path)
                };
                removed.map_err(|e| format!("{}: {e}", path.display()))?;
            }
        }
    }
    let zone = Path::new("/usr/share/zoneinfo").join(BASELINE_TIMEZONE);
    let current = std::fs::read_link("/etc/localtime").ok();
    if current.as_deref() != Some(zone.as_path()) {
        let _ = std::fs::remove_file("/etc/localtime");
        std::os::unix::fs::symlink(&zone, "/etc/localtime")
            .map_err(|e| format!("/etc/localtime: {e}"))?;
    }
    std::fs::write("/etc/timezone", format!("{BASELINE_TIMEZONE}\n"))
        .map_err(|e| format!("/etc/timezone: {e}"))?;
    eprintln!("xtask: conformance: the machine is at the records' baseline");
    Ok(())
}

/// Downloads one pinned sdist into the work directory with pip (which checks its
/// digest; `requirement` is a `name==version --hash=...` line written to `req_file`) and
/// returns the file's path. `why` names the use in an error about the venv.
fn download_sdist(
    layout: &Layout,
    req_file: &str,
    requirement: String,
    why: &str,
    file: String,
) -> Result<PathBuf> {
    std::fs::create_dir_all(&layout.work).map_err(|e| format!("{}: {e}", layout.work.display()))?;
    // pip from a bare virtualenv: Debian's python3 may have no pip of its own.
    let bin = venv_with(
        &layout.root.join("target/conformance-pip"),
        &["pip".to_string()],
        why,
        |_, bin| bin.join("pip").exists(),
    )?;
    let req = layout.work.join(req_file);
    std::fs::write(&req, requirement).map_err(|e| format!("{}: {e}", req.display()))?;
    run(Command::new(bin.join("pip"))
        .args([
            "download",
            "--quiet",
            "--disable-pip-version-check",
            "--no-deps",
            "--no-binary",
            ":all:",
            "--require-hashes",
            "-r",
        ])
        .arg(&req)
        .arg("-d")
        .arg(&layout.work))?;
    Ok(layout.work.join(file))
}

/// The pinned ansible-core and `ansible` sdists, downloaded (pip checks their digests)
/// where they are not yet: for `cargo xtask ansible-modules`.
pub fn sdists() -> Result<(PathBuf, PathBuf)> {
    let layout = Layout::new();
    let core = download_sdist(
        &layout,
        "requirements.txt",
        format!("ansible-core=={CORE_VERSION} --hash=sha256:{CORE_SHA256}\n"),
        "downloading ansible-core",
        format!("ansible_core-{CORE_VERSION}.tar.gz"),
    )?;
    let collections = download_sdist(
        &layout,
        "requirements-collections.txt",
        format!("ansible=={COLLECTIONS_VERSION} --hash=sha256:{COLLECTIONS_SHA256}\n"),
        "downloading ansible's collections",
        format!("ansible-{COLLECTIONS_VERSION}.tar.gz"),
    )?;
    Ok((core, collections))
}

/// Downloads the pinned ansible-core sdist and unpacks its integration tests once.
fn fetch_targets(layout: &Layout) -> Result<()> {
    if layout.integration_src().join("targets").is_dir() {
        return Ok(());
    }
    let sdist = download_sdist(
        layout,
        "requirements.txt",
        format!("ansible-core=={CORE_VERSION} --hash=sha256:{CORE_SHA256}\n"),
        "downloading ansible-core's integration targets",
        format!("ansible_core-{CORE_VERSION}.tar.gz"),
    )?;
    run(Command::new("tar")
        .arg("-xzf")
        .arg(&sdist)
        .arg("-C")
        .arg(&layout.work)
        .arg(format!("ansible_core-{CORE_VERSION}/test/integration")))
}

/// Downloads the pinned `ansible` sdist and unpacks its collections' integration tests
/// once.
fn fetch_collections(layout: &Layout) -> Result<()> {
    if layout.collections_src().is_dir() {
        return Ok(());
    }
    let sdist = download_sdist(
        layout,
        "requirements-collections.txt",
        format!("ansible=={COLLECTIONS_VERSION} --hash=sha256:{COLLECTIONS_SHA256}\n"),
        "downloading the collections' integration targets",
        format!("ansible-{COLLECTIONS_VERSION}.tar.gz"),
    )?;
    run(Command::new("tar")
        .arg("-xzf")
        .arg(&sdist)
        .arg("-C")
        .arg(&layout.work)
        .arg("--wildcards")
        .arg(format!(
            "ansible-{COLLECTIONS_VERSION}/ansible_collections/*/*/tests/integration/*"
        )))
}

/// Builds the deployer and this machine's runner, and returns the deployer's path.
fn build_rustle(layout: &Layout) -> Result<PathBuf> {
    crate::runners(&["--native".to_string()])?;
    run(cargo().args(["build", "--package", "rustle-deploy", "--locked"]))?;
    Ok(layout.root.join("target/debug/rustle-deploy"))
}

/// A directory with an `ansible-playbook` that is rustle-deploy and an `ansible` that is
/// its ad-hoc mode, for runme.sh targets.
fn write_shims(layout: &Layout, deployer: &Path) -> Result<PathBuf> {
    let dir = layout.work.join("shims");
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let quote = |p: &Path| p.display().to_string().replace('\'', "'\\''");
    let quoted = quote(deployer);
    let state = quote(&layout.work.join("state"));
    // Every ansible-playbook run stands alone, while rustle-deploy runs one deploy per
    // state root at a time: a run started by a task of another (yaml_parsing runs
    // ansible-playbook from a task) gets a root of its own instead of waiting for the
    // outer run's lock. `ansible PATTERN -m MODULE -a ARGS` is rustle-deploy's ad-hoc
    // mode.
    for (tool, mode) in [("ansible-playbook", ""), ("ansible", " adhoc")] {
        let shim = dir.join(tool);
        std::fs::write(
            &shim,
            format!(
                "#!/bin/sh\n# {tool}, played by rustle-deploy{mode} (cargo xtask conformance)\n\
                 if [ -n \"$RUSTLE_CONFORMANCE_ROOT\" ]; then RUSTLE_CONFORMANCE_ROOT=\"$RUSTLE_CONFORMANCE_ROOT/nested\"; \
                 else RUSTLE_CONFORMANCE_ROOT='{state}'; fi\n\
                 export RUSTLE_CONFORMANCE_ROOT\n\
                 RUSTLE_ROOT=\"$RUSTLE_CONFORMANCE_ROOT\" exec '{quoted}'{mode} \"$@\"\n"
            ),
        )
        .map_err(|e| format!("{}: {e}", shim.display()))?;
        crate::set_executable(&shim)?;
    }
    Ok(dir)
}

/// What targets leave outside their own tree and never remove (the copy target's link
/// targets, made with `delegate_to: localhost`): removed before each run, so that a run
/// finds the machine as a fresh one (CI's) would, whatever ran before it.
const LEFTOVERS: &[&str] = &[
    "/tmp/ansible-test-abs-link",
    "/tmp/ansible-test-abs-link-dir",
];

/// Runs one target with one tool in a fresh copy of the integration tree.
fn run_target(layout: &Layout, t: &Listed, tool: Tool, bin: &Path) -> Result<Run> {
    let base = layout.work.join("run").join(tool.name());
    let _ = std::fs::remove_dir_all(&base);
    for leftover in LEFTOVERS {
        let path = Path::new(leftover);
        let gone = if path.is_dir() && !path.is_symlink() {
            std::fs::remove_dir_all(path)
        } else {
            std::fs::remove_file(path)
        };
        if let Err(e) = gone
            && e.kind() != std::io::ErrorKind::NotFound
        {
            return Err(format!(
                "cannot remove {leftover}, left by an earlier run: {e}"
            ));
        }
    }
    let integration = base.join("test/integration");
    let targets = integration.join("targets");
    std::fs::create_dir_all(&integration).map_err(|e| format!("{}: {e}", integration.display()))?;
    let (source, name) = layout.targets_of(&t.name);
    run(Command::new("cp").arg("-a").arg(&source).arg(&integration))?;
    let target_dir = targets.join(name);
    if !target_dir.is_dir() {
        return Err(format!(
            "{} is not a target of {}",
            t.name,
            match collection_target(&t.name) {
                Some(_) => format!("ansible {COLLECTIONS_VERSION}'s collections"),
                None => format!("ansible-core {CORE_VERSION}"),
            }
        ));
    }
    let inventory = integration.join("inventory");
    std::fs::write(&inventory, INVENTORY).map_err(|e| format!("{}: {e}", inventory.display()))?;
    let output_dir = base.join("output");
    std::fs::create_dir_all(&output_dir).map_err(|e| format!("{}: {e}", output_dir.display()))?;
    let logs = layout.work.join("logs");
    std::fs::create_dir_all(&logs).map_err(|e| format!("{}: {e}", logs.display()))?;
    let log = logs.join(format!("{}-{}.log", t.name.replace('/', "-"), tool.name()));
    let aliases = std::fs::read_to_string(target_dir.join("aliases")).unwrap_or_default();

    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut dirs = vec![bin.to_path_buf()];
    dirs.extend(std::env::split_paths(&path));
    let path = std::env::join_paths(dirs).map_err(|e| format!("cannot build PATH: {e}"))?;

    let script = target_dir.join("runme.sh");
    let report = base.join("report.json");
    let mut cmd;
    if script.exists() {
        cmd = Command::new("./runme.sh");
        cmd.current_dir(&target_dir);
    } else {
        let gather = !aliases.contains("gather_facts/no/");
        let play = integration.join(format!("{name}-conformance.yml"));
        let text = format!(
            "- hosts: testhost\n  gather_facts: {gather}\n  vars:\n    output_dir: '{}'\n  roles:\n    - {name}\n",
            output_dir.display(),
        );
        std::fs::write(&play, text).map_err(|e| format!("{}: {e}", play.display()))?;
        match tool {
            Tool::Ansible => {
                cmd = Command::new(bin.join("ansible-playbook"));
                cmd.env("ANSIBLE_STDOUT_CALLBACK", "ansible.posix.json");
            }
            Tool::Rustle => {
                cmd = Command::new(bin.join("ansible-playbook"));
                cmd.arg("--report").arg(&report);
            }
        }
        cmd.arg(&play).arg("-i").arg(&inventory);
        cmd.current_dir(&integration);
    }
    // ansible-test's environment for a target, and nothing from the caller's Ansible
    // settings.
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("ANSIBLE_") {
            cmd.env_remove(k);
        }
    }
    let playbook_dir = cmd.get_current_dir().unwrap_or(&integration).to_path_buf();
    cmd.env("PATH", path)
        .env("ANSIBLE_ROLES_PATH", &targets)
        .env("ANSIBLE_PLAYBOOK_DIR", playbook_dir)
        .env("OUTPUT_DIR", &output_dir)
        .env("INVENTORY_PATH", &inventory)
        .env("ANSIBLE_NOCOLOR", "1")
        .env("ANSIBLE_FORCE_COLOR", "0")
        .env("RUSTLE_RUNNER_DIR", layout.root.join("target/runners"));
    let out = std::fs::File::create(&log).map_err(|e| format!("{}: {e}", log.display()))?;
    let err = out
        .try_clone()
        .map_err(|e| format!("{}: {e}", log.display()))?;
    let stdout_file = base.join("stdout");
    let stdout = std::fs::File::create(&stdout_file)
        .map_err(|e| format!("{}: {e}", stdout_file.display()))?;
    // Role targets under Ansible print their JSON on stdout; everything else is the log.
    let json_stdout = !script.exists() && tool == Tool::Ansible;
    cmd.stdin(Stdio::null())
        .stdout(if json_stdout {
            Stdio::from(stdout)
        } else {
            Stdio::from(out)
        })
        .stderr(Stdio::from(err));
    eprintln!("xtask: conformance: {} with {}", t.name, tool.name());
    let started = Instant::now();
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot start {cmd:?}: {e}"))?;
    let rc = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status.code(),
            Ok(None) if started.elapsed() > TARGET_TIMEOUT => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(100)),
            Err(e) => return Err(format!("waiting for {}: {e}", t.name)),
        }
    };
    let secs = started.elapsed().as_secs_f64();
    let log_text = std::fs::read_to_string(&log).unwrap_or_default();
    let mut r = if script.exists() {
        Run {
            recap: summed_recaps(&log_text),
            ..Run::default()
        }
    } else if tool == Tool::Ansible {
        let text = std::fs::read_to_string(&stdout_file).unwrap_or_default();
        let mut all = log_text.clone();
        all.push_str(&text);
        std::fs::write(&log, &all).map_err(|e| format!("{}: {e}", log.display()))?;
        parse_ansible_json(&text)
    } else {
        parse_report(&report)
    };
    r.rc = rc;
    r.secs = secs;
    if rc.is_none() {
        r.error = format!("stopped after {} s", TARGET_TIMEOUT.as_secs());
    } else if r.error.is_empty() && rc != Some(0) {
        r.error = first_error(&log_text);
    }
    // The records are the same from any checkout: the run directory is not named.
    let scrub = |text: &mut String| {
        *text = text
            .replace(&format!("{}/", base.display()), "")
            .replace(&layout.work.display().to_string(), "target/conformance");
    };
    scrub(&mut r.error);
    for task in &mut r.tasks {
        // Names too: `include_tasks: "{{ item }}"` over a fileglob names the run's path.
        scrub(&mut task.0);
        scrub(&mut task.2);
    }
    Ok(r)
}

/// Whether ansible-test runs this target through its `runme.sh`.
fn is_script(layout: &Layout, name: &str) -> bool {
    let (targets, name) = layout.targets_of(name);
    targets.join(name).join("runme.sh").exists()
}

/// The first line of a log that says what went wrong.
fn first_error(log: &str) -> String {
    log.lines()
        .find(|l| {
            l.contains("error:")
                || l.starts_with("ERROR!")
                || l.starts_with("fatal:")
                || l.starts_with("failed:")
        })
        .map(|l| one_line(l, 240))
        .unwrap_or_default()
}

/// Normalises a task name: Ansible's JSON callback writes `role : name`.
fn task_name(name: &str) -> String {
    match name.split_once(" : ") {
        Some((_, rest)) => rest.to_string(),
        None => name.to_string(),
    }
}

/// A task result's status as the recap counts it.
fn status_of(r: &Value) -> &'static str {
    let yes = |k: &str| r.get(k).and_then(Value::as_bool).unwrap_or(false);
    if yes("unreachable") {
        "unreachable"
    } else if yes("failed") {
        "failed"
    } else if yes("skipped") {
        "skipped"
    } else if yes("changed") {
        "changed"
    } else {
        "ok"
    }
}

/// Ansible's `ansible.posix.json` callback output: recap and per-task results.
fn parse_ansible_json(text: &str) -> Run {
    let start = text.find("{\n").or_else(|| text.find('{')).unwrap_or(0);
    let Ok(v) = serde_json::from_str::<Value>(text.get(start..).unwrap_or("")) else {
        return Run {
            error: "no JSON result from ansible-playbook".into(),
            ..Run::default()
        };
    };
    let recap = at(&v, "/stats/testhost")
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| {
                    let k = if k == "failures" {
                        "failed"
                    } else {
                        k.as_str()
                    };
                    (k.to_string(), v.as_i64().unwrap_or(0))
                })
                .collect()
        })
        .unwrap_or_default();
    let mut tasks = Vec::new();
    for play in at(&v, "/plays").as_array().into_iter().flatten() {
        for task in at(play, "/tasks").as_array().into_iter().flatten() {
            if let Some(r) = at(task, "/hosts").get("testhost") {
                let name = task_name(at(task, "/task/name").as_str().unwrap_or(""));
                let msg = if status_of(r) == "failed" {
                    one_line(at(r, "/msg").as_str().unwrap_or(""), 160)
                } else {
                    String::new()
                };
                tasks.push((name, status_of(r).to_string(), msg));
            }
        }
    }
    Run {
        recap,
        tasks,
        ..Run::default()
    }
}

/// rustle-deploy's `--report` file: recap and per-task results of `testhost`.
fn parse_report(path: &Path) -> Run {
    let Some(v) = std::fs::read(path)
        .ok()
        .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
    else {
        return Run::default();
    };
    let host = at(&v, "/hosts/testhost");
    let recap = at(host, "/recap")
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_i64().unwrap_or(0)))
                .collect()
        })
        .unwrap_or_default();
    let tasks = at(host, "/tasks")
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| {
            let status = at(t, "/status").as_str().unwrap_or("").to_string();
            let msg = if status == "failed" {
                one_line(at(t, "/result/msg").as_str().unwrap_or(""), 160)
            } else {
                String::new()
            };
            (
                task_name(at(t, "/name").as_str().unwrap_or("")),
                status,
                msg,
            )
        })
        .collect();
    Run {
        recap,
        tasks,
        error: at(host, "/error")
            .as_str()
            .map(|e| one_line(e, 240))
            .unwrap_or_default(),
        ..Run::default()
    }
}

/// The recaps of every `PLAY RECAP` in a log, summed per count, for `testhost` and
/// `localhost` (runme.sh playbooks use either).
fn summed_recaps(log: &str) -> BTreeMap<String, i64> {
    let mut sum = BTreeMap::new();
    let mut in_recap = false;
    for line in log.lines() {
        if line.starts_with("PLAY RECAP") {
            in_recap = true;
            continue;
        }
        if !in_recap {
            continue;
        }
        let Some((host, counts)) = line.split_once(" : ").or_else(|| line.split_once(": ")) else {
            in_recap = false;
            continue;
        };
        if !matches!(host.trim(), "testhost" | "localhost") {
            continue;
        }
        for pair in counts.split_whitespace() {
            if let Some((k, v)) = pair.split_once('=')
                && let Ok(n) = v.parse::<i64>()
            {
                *sum.entry(k.to_string()).or_insert(0) += n;
            }
        }
    }
    sum
}

/// Writes docs/conformance.md from the two records.
fn render(layout: &Layout, listed: &[Listed]) -> Result<()> {
    let references = read_record(&layout.records.join("reference.json"));
    let expected = read_record(&layout.records.join("expected.json"));
    let mut rows = Vec::new();
    let (mut ansible_pass, mut both_pass, mut measured) = (0, 0, 0);
    for t in listed {
        let theirs = references.get(&t.name).map(Run::from_json);
        let ours = expected.get(&t.name);
        let ansible = match &theirs {
            Some(r) if r.passed(is_script(layout, &t.name)) => {
                ansible_pass += 1;
                format!("passes: {}", r.recap_text())
            }
            Some(r) => format!("**fails** (exit {}): {}", show_rc(r.rc), r.recap_text()),
            None => "not run".into(),
        };
        let (rustle, result, detail) = match ours {
            Some(o) => {
                measured += 1;
                let outcome = at(o, "/outcome").as_str().unwrap_or("");
                if outcome == "pass"
                    && theirs
                        .as_ref()
                        .is_some_and(|r| r.passed(is_script(layout, &t.name)))
                {
                    both_pass += 1;
                }
                let r = Run::from_json(o);
                (
                    r.recap_text(),
                    format!("{outcome} ({} tasks alike)", at(o, "/matched")),
                    at(o, "/detail").as_str().unwrap_or("").to_string(),
                )
            }
            None => ("not run".into(), "-".into(), String::new()),
        };
        let note = if t.note.is_empty() {
            detail
        } else if detail.is_empty() {
            format!("Ansible here: {}", t.note)
        } else {
            format!("Ansible here: {}. {detail}", t.note)
        };
        rows.push(format!(
            "| {} | {ansible} | {rustle} | {result} | {} |",
            t.name,
            one_line(&note, 300)
        ));
    }
    let text = format!(
        "# Conformance: ansible-core's own integration targets\n\
         \n\
         Written by `cargo xtask conformance` (never by hand). Each target of\n\
         ansible-core {CORE_VERSION}'s `test/integration/targets/`, or of a collection's\n\
         `tests/integration/targets/` in the ansible {COLLECTIONS_VERSION} sdist (`NS.COLL/TARGET`),\n\
         listed in `xtask/conformance/targets.txt` is run as ansible-test runs it on its default\n\
         container (`testhost`, local connection, `output_dir`; a `runme.sh` with the tool's\n\
         `ansible-playbook` first on PATH), once with ansible-playbook ({}) and once with\n\
         rustle-deploy, on a machine set up as `.ci/run` sets it up (passlib, python3-jinja2\n\
         for /usr/bin/python3, acl, a running cron, `~/.ssh/authorized_keys`), as root.\n\
         Each run first undoes what the listed targets leave on the machine (packages,\n\
         users, groups, root's crontab, debconf answers, the time zone), so that no run\n\
         depends on the ones before it: run it on a test machine.\n\
         \n\
         - `cargo xtask conformance --reference [TARGET...]` runs Ansible and rewrites\n  \
           `xtask/conformance/reference.json` (slow; its results do not depend on our code).\n\
         - `cargo xtask conformance [TARGET...]` runs rustle-deploy, compares task by task and\n  \
           rewrites `xtask/conformance/expected.json` and this page.\n\
         - `cargo xtask conformance --check` (CI) fails when a target does worse than\n  \
           `expected.json`: a pass that no longer passes, or fewer leading tasks alike\n  \
           (a target whose note starts `timing:` depends on the clock: reported, not failed).\n\
         \n\
         A target *passes* when rustle-deploy's exit code and recap (ok, changed, unreachable,\n\
         failed, skipped, rescued, ignored) equal Ansible's. *Tasks alike* counts the leading\n\
         tasks with the same name and result in both runs.\n\
         \n\
         **{ansible_pass} of {} targets pass with ansible-playbook here; rustle-deploy passes\n\
         {both_pass} of those ({measured} measured).**\n\
         \n\
         | target | ansible-playbook | rustle-deploy | result | first difference / notes |\n\
         |---|---|---|---|---|\n\
         {}\n",
        REFERENCE_PACKAGES.join(", "),
        listed.len(),
        rows.join("\n")
    );
    let path = layout.root.join("docs/conformance.md");
    std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))?;
    eprintln!("xtask: wrote {}", path.display());
    Ok(())
}

/// The value at a JSON pointer, or null: results from outside are read without panics.
fn at<'v>(v: &'v Value, pointer: &str) -> &'v Value {
    static NULL: Value = Value::Null;
    v.pointer(pointer).unwrap_or(&NULL)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_timing_note_marks_a_clock_dependent_target_only() {
        let path = std::env::temp_dir().join(format!("targets-{}.txt", std::process::id()));
        std::fs::write(
            &path,
            "# a comment\ncron   # timing: the canary fires by the clock\nfile # chattr here\nstat\n",
        )
        .unwrap();
        let listed = read_list(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        let flags: Vec<(&str, bool)> = listed
            .iter()
            .map(|l| (l.name.as_str(), l.timing()))
            .collect();
        assert_eq!(flags, [("cron", true), ("file", false), ("stat", false)]);
    }

    #[test]
    fn collection_targets_come_from_their_collection() {
        assert_eq!(
            collection_target("community.general/ini_file"),
            Some(("community", "general", "ini_file"))
        );
        assert_eq!(collection_target("getent"), None);
        let layout = Layout::new();
        let (dir, name) = layout.targets_of("ansible.posix/mount");
        assert!(
            dir.ends_with("ansible_collections/ansible/posix/tests/integration/targets"),
            "{}",
            dir.display()
        );
        assert_eq!(name, "mount");
        let (dir, name) = layout.targets_of("getent");
        assert!(dir.ends_with("test/integration/targets"));
        assert_eq!(name, "getent");
    }

    #[test]
    fn recaps_of_several_plays_are_summed_for_the_test_hosts() {
        let log = "PLAY RECAP ****\n\
                   testhost                   : ok=3    changed=1    unreachable=0    failed=0    skipped=2    rescued=0    ignored=0\n\
                   other : ok=9\n\
                   \n\
                   PLAY RECAP\n\
                   localhost            : ok=1 changed=0 unreachable=0 failed=1 skipped=0 rescued=0 ignored=1\n";
        let sum = summed_recaps(log);
        assert_eq!(sum["ok"], 4);
        assert_eq!(sum["changed"], 1);
        assert_eq!(sum["failed"], 1);
        assert_eq!(sum["skipped"], 2);
        assert_eq!(sum["ignored"], 1);
    }

    #[test]
    fn the_first_differing_task_is_named() {
        let task = |n: &str, s: &str| (n.to_string(), s.to_string(), String::new());
        let recap = |failed: i64| {
            COUNTS
                .iter()
                .map(|k| (k.to_string(), if *k == "failed" { failed } else { 1 }))
                .collect()
        };
        let theirs = Run {
            rc: Some(0),
            recap: recap(0),
            tasks: vec![task("a", "ok"), task("b", "changed")],
            ..Run::default()
        };
        let mut ours = Run {
            rc: Some(2),
            recap: recap(1),
            tasks: vec![task("a", "ok"), task("b", "failed")],
            ..Run::default()
        };
        let v = compare(&theirs, &ours, false);
        assert_eq!((v.outcome, v.matched), ("differs", 1));
        assert!(
            v.detail
                .contains("task 2 'b': ansible changed, rustle failed"),
            "{}",
            v.detail
        );
        ours = theirs.clone();
        assert_eq!(compare(&theirs, &ours, false).outcome, "pass");
        let refused = Run {
            rc: Some(4),
            error: "rustle-deploy: error: x.yml:3: not supported".into(),
            ..Run::default()
        };
        let v = compare(&theirs, &refused, false);
        assert_eq!(v.outcome, "refused");
        assert!(v.detail.contains("not supported"));
    }

    #[test]
    fn ansible_json_results_become_statuses() {
        let text = r#"{"plays":[{"tasks":[
            {"task":{"name":"Gathering Facts"},"hosts":{"testhost":{"changed":false}}},
            {"task":{"name":"r : make"},"hosts":{"testhost":{"changed":true}}},
            {"task":{"name":"r : skip"},"hosts":{"testhost":{"skipped":true}}},
            {"task":{"name":"r : boom"},"hosts":{"testhost":{"failed":true,"msg":"no"}}}]}],
            "stats":{"testhost":{"ok":2,"changed":1,"failures":1,"skipped":1}}}"#;
        let r = parse_ansible_json(text);
        let statuses: Vec<&str> = r.tasks.iter().map(|t| t.1.as_str()).collect();
        assert_eq!(statuses, ["ok", "changed", "skipped", "failed"]);
        assert_eq!(r.tasks[1].0, "make");
        assert_eq!(r.recap["failed"], 1);
    }
}
