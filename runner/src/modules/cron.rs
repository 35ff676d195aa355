//! The cron module: jobs and environment variables in a user's crontab (through the
//! `crontab` command) or in a file under /etc/cron.d, with ansible.builtin.cron's
//! arguments and markers.
//!
//! Each job is the line after a `#Ansible: <name>` comment, exactly as Ansible writes
//! it, so crontabs Ansible manages and crontabs this runner manages are the same thing.
//! Environment variables (`env: true`) are `NAME=value` lines without a marker.
//! Registered: `jobs` and `envs` (the names now in the crontab); diff mode shows the
//! whole crontab before and after.

use super::fsutil::{self, Step, fail, failed};
use super::tools;
use super::{Ctx, Diff, ModuleError, Outcome, args};
use crate::plan::Vars;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

const KNOWN: &[&str] = &[
    "name",
    "minute",
    "hour",
    "day",
    "month",
    "weekday",
    "special_time",
    "job",
    "state",
    "user",
    "cron_file",
    "disabled",
    "env",
    "insertafter",
    "insertbefore",
    "backup",
];

const SPECIAL: &[&str] = &[
    "reboot", "yearly", "annually", "monthly", "weekly", "daily", "hourly",
];

const MARKER: &str = "#Ansible: ";

/// Where the crontab lives.
enum Target {
    /// A user's crontab, read and installed with the crontab command.
    User(Option<String>),
    /// A file in the system crontab format (with a user field).
    File(PathBuf),
}

impl Target {
    fn header(&self) -> String {
        match self {
            Target::User(_) => "crontab".into(),
            Target::File(p) => p.display().to_string(),
        }
    }
}

pub(super) fn run(a: &Vars, ctx: &Ctx<'_>) -> Result<Outcome, ModuleError> {
    fsutil::finish(run_inner(a, ctx))
}

/// A time field, `*` when not given; one word (a space would shift the fields).
fn field(a: &Vars, name: &str) -> Result<String, ModuleError> {
    let v = args::opt_str(a, name)?.unwrap_or_else(|| "*".into());
    if v.is_empty() || v.contains(char::is_whitespace) {
        return Err(ModuleError::BadArgs(format!(
            "argument '{name}' must be one cron field without spaces, got '{v}'"
        )));
    }
    Ok(v)
}

fn run_inner(a: &Vars, ctx: &Ctx<'_>) -> Step<Outcome> {
    args::only(a, KNOWN)?;
    let name = args::opt_str(a, "name")?;
    let job = args::opt_str(a, "job")?;
    let present = match args::opt_str(a, "state")?.as_deref() {
        None | Some("present") => true,
        Some("absent") => false,
        Some(other) => {
            return Err(ModuleError::BadArgs(format!(
                "argument 'state' must be one of: present, absent; got '{other}'"
            ))
            .into());
        }
    };
    let user = args::opt_str(a, "user")?;
    let cron_file = args::opt_str(a, "cron_file")?;
    let disabled = args::bool_or(a, "disabled", false)?;
    let env = args::bool_or(a, "env", false)?;
    let insertafter = args::opt_str(a, "insertafter")?;
    let insertbefore = args::opt_str(a, "insertbefore")?;
    if args::bool_or(a, "backup", false)? {
        return Err(ModuleError::BadArgs("argument 'backup' is not supported".into()).into());
    }
    let times = [
        field(a, "minute")?,
        field(a, "hour")?,
        field(a, "day")?,
        field(a, "month")?,
        field(a, "weekday")?,
    ];
    let special = args::opt_str(a, "special_time")?;
    if let Some(s) = &special {
        if !SPECIAL.contains(&s.as_str()) {
            return Err(ModuleError::BadArgs(format!(
                "argument 'special_time' must be one of: {}; got '{s}'",
                SPECIAL.join(", ")
            ))
            .into());
        }
        if times.iter().any(|t| t != "*") {
            return fail("You must specify time and date fields or special time.");
        }
    }
    if insertafter.is_some() && insertbefore.is_some() {
        return Err(ModuleError::BadArgs(
            "'insertafter' and 'insertbefore' are mutually exclusive".into(),
        )
        .into());
    }
    for (arg, v) in [("name", &name), ("job", &job), ("user", &user)] {
        if v.as_deref().is_some_and(|s| s.contains(['\n', '\r'])) {
            return Err(
                ModuleError::BadArgs(format!("argument '{arg}' must be a single line")).into(),
            );
        }
    }

    let target = match &cron_file {
        Some(f) if f.is_empty() => {
            return Err(
                ModuleError::BadArgs("argument 'cron_file' must not be empty".into()).into(),
            );
        }
        Some(f) if f.starts_with('/') => Target::File(PathBuf::from(f)),
        Some(f) if f.contains('/') => {
            return Err(ModuleError::BadArgs(format!(
                "argument 'cron_file' must be a file name in /etc/cron.d or an absolute path, got '{f}'"
            ))
            .into());
        }
        Some(f) => Target::File(Path::new("/etc/cron.d").join(f)),
        None => Target::User(user.clone()),
    };

    // Absent with a cron_file and no name: the whole file goes.
    if let (Target::File(path), false, None) = (&target, present, &name) {
        return remove_file(path, ctx);
    }
    let Some(name) = name else {
        return Err(ModuleError::BadArgs("missing required argument 'name'".into()).into());
    };
    if present && job.is_none() {
        return fail("You must specify 'job' to install a new cron job or variable");
    }
    if present && !env && matches!(target, Target::File(_)) && user.is_none() {
        return fail("To use cron_file=... parameter you must specify user=... as well");
    }

    let before = read(&target)?;
    let mut lines: Vec<String> = before.lines().map(str::to_string).collect();
    if env {
        let value = job.clone().unwrap_or_default();
        edit_env(
            &mut lines,
            &name,
            present.then(|| format!("{name}={value}")),
            insertafter.as_deref(),
            insertbefore.as_deref(),
        );
    } else {
        let job_line = job.as_ref().map(|j| {
            let when = match &special {
                Some(s) => format!("@{s}"),
                None => times.join(" "),
            };
            let line = match (&target, &user) {
                (Target::File(_), Some(u)) => format!("{when} {u} {j}"),
                _ => format!("{when} {j}"),
            };
            if disabled { format!("#{line}") } else { line }
        });
        edit_job(&mut lines, &name, present.then_some(job_line).flatten());
    }
    let after = render(&lines);
    let changed = after != before;
    let mut o = Outcome::changed(changed)
        .with("jobs", job_names(&lines))
        .with("envs", env_names(&lines));
    if let Target::File(p) = &target {
        o = o.with("cron_file", p.display().to_string());
    }
    if changed && ctx.diff_mode {
        o.diff.push(Diff {
            before_header: target.header(),
            after_header: target.header(),
            before: before.clone(),
            after: after.clone(),
        });
    }
    if changed && !ctx.check_mode {
        write(&target, &after)?;
    }
    Ok(o)
}

/// Puts, replaces (`Some`) or removes (`None`) the job marked `name`.
fn edit_job(lines: &mut Vec<String>, name: &str, want: Option<String>) {
    let marker = format!("{MARKER}{name}");
    let at = lines.iter().position(|l| l.trim_end() == marker);
    match (at, want) {
        (Some(i), Some(line)) => {
            // The marker's job is the next line; a marker at the end has none yet.
            match lines.get_mut(i + 1) {
                Some(next) if !next.starts_with(MARKER) => *next = line,
                _ => lines.insert(i + 1, line),
            }
        }
        (Some(i), None) => {
            let end = match lines.get(i + 1) {
                Some(next) if !next.starts_with(MARKER) => i + 2,
                _ => i + 1,
            };
            lines.drain(i..end);
        }
        (None, Some(line)) => {
            // The same job without a marker (written by hand, or by an old Ansible):
            // mark it instead of adding a duplicate, as Ansible does.
            match lines.iter().position(|l| *l == line) {
                Some(i) => lines.insert(i, marker),
                None => {
                    lines.push(marker);
                    lines.push(line);
                }
            }
        }
        (None, None) => {}
    }
}

/// Puts, replaces or removes the variable `name`; new ones go on top of the crontab
/// unless `insertafter`/`insertbefore` name another variable.
fn edit_env(
    lines: &mut Vec<String>,
    name: &str,
    want: Option<String>,
    insertafter: Option<&str>,
    insertbefore: Option<&str>,
) {
    let find = |lines: &[String], n: &str| {
        let prefix = format!("{n}=");
        lines
            .iter()
            .position(|l| l.trim_start().starts_with(&prefix))
    };
    match (find(lines, name), want) {
        (Some(i), Some(line)) => {
            if let Some(l) = lines.get_mut(i) {
                *l = line;
            }
        }
        (Some(i), None) => {
            lines.remove(i);
        }
        (None, Some(line)) => {
            let at = match (insertafter, insertbefore) {
                (Some(n), _) => find(lines, n).map_or(0, |i| i + 1),
                (None, Some(n)) => find(lines, n).unwrap_or(0),
                (None, None) => 0,
            };
            lines.insert(at.min(lines.len()), line);
        }
        (None, None) => {}
    }
}

fn render(lines: &[String]) -> String {
    if lines.is_empty() {
        String::new()
    } else {
        let mut s = lines.join("\n");
        s.push('\n');
        s
    }
}

fn job_names(lines: &[String]) -> Vec<String> {
    lines
        .iter()
        .filter_map(|l| l.strip_prefix(MARKER))
        .map(|n| n.trim_end().to_string())
        .collect()
}

fn env_names(lines: &[String]) -> Vec<String> {
    lines
        .iter()
        .filter_map(|l| {
            let (n, _) = l.trim_start().split_once('=')?;
            let ok = !n.is_empty()
                && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                && !n.starts_with(|c: char| c.is_ascii_digit());
            ok.then(|| n.to_string())
        })
        .collect()
}

/// Drops the banner some crontab implementations print at the top of `crontab -l`,
/// so it is not written back as content (Ansible does the same).
fn strip_banner(text: &str) -> String {
    let mut lines: Vec<&str> = text.lines().collect();
    while lines.first().is_some_and(|l| {
        l.starts_with("# DO NOT EDIT THIS FILE")
            || (l.starts_with("# (")
                && (l.contains(" installed on ") || l.contains("Cron version")))
    }) {
        lines.remove(0);
    }
    if lines.is_empty() {
        String::new()
    } else {
        let mut s = lines.join("\n");
        s.push('\n');
        s
    }
}

fn crontab_bin() -> Step<PathBuf> {
    tools::find_bin("crontab").map_or_else(
        || {
            fail(
                "Failed to find required executable \"crontab\" in paths: $PATH, /usr/sbin, /sbin, /usr/bin, /bin (is cron installed?)",
            )
        },
        Ok,
    )
}

fn user_flag(user: &Option<String>) -> Vec<String> {
    match user {
        Some(u) => vec!["-u".into(), u.clone()],
        None => Vec::new(),
    }
}

fn read(target: &Target) -> Step<String> {
    match target {
        Target::File(p) => match fs::read_to_string(p) {
            Ok(s) => Ok(s),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(String::new()),
            Err(e) => Err(fsutil::io_fail("read", p, &e)),
        },
        Target::User(user) => {
            let bin = crontab_bin()?;
            let mut argv = user_flag(user);
            argv.push("-l".into());
            let out = tools::run(&bin, &argv, None)
                .map_err(|e| failed(Outcome::fail(format!("could not run crontab: {e}"))))?;
            if out.rc == 0 {
                Ok(strip_banner(&out.stdout))
            } else if out.stderr.to_ascii_lowercase().contains("no crontab") || out.rc == 1 {
                // The module takes exit status 1 as "no crontab", whatever the reason
                // (a user that does not exist yet, in check mode, too).
                Ok(String::new())
            } else {
                Err(failed(
                    Outcome::fail(format!("could not read the crontab: {}", out.stderr.trim()))
                        .with("rc", out.rc),
                ))
            }
        }
    }
}

fn write(target: &Target, content: &str) -> Step<()> {
    match target {
        Target::File(p) => write_cron_file(p, content),
        Target::User(user) => {
            let bin = crontab_bin()?;
            let dir = tools::PrivateDir::new("cron").map_err(|e| {
                failed(Outcome::fail(format!(
                    "could not create a temp directory: {e}"
                )))
            })?;
            let file = dir
                .write("crontab", content.as_bytes(), 0o600)
                .map_err(|e| fsutil::io_fail("write", dir.path(), &e))?;
            // crontab -u runs as root and reads the file itself, so a private file works.
            let mut argv = user_flag(user);
            argv.push(file.display().to_string());
            let out = tools::run(&bin, &argv, None)
                .map_err(|e| failed(Outcome::fail(format!("could not run crontab: {e}"))))?;
            if out.rc != 0 {
                return Err(failed(
                    Outcome::fail(format!(
                        "could not install the crontab: {}",
                        out.stderr.trim()
                    ))
                    .with("rc", out.rc),
                ));
            }
            Ok(())
        }
    }
}

/// Writes a cron.d file through a new temp file and a rename ([`crate::atomic::write`]),
/// so cron never reads half a file. The temp name starts with a dot, which cron's file
/// name rules make it ignore.
fn write_cron_file(path: &Path, content: &str) -> Step<()> {
    Ok(crate::atomic::write(path, content.as_bytes(), 0o644)?)
}

fn remove_file(path: &Path, ctx: &Ctx<'_>) -> Step<Outcome> {
    let exists = fsutil::lstat(path)?.is_some();
    let mut o = Outcome::changed(exists)
        .with("cron_file", path.display().to_string())
        .with("state", "absent");
    if exists && ctx.diff_mode {
        o.diff.push(Diff {
            before_header: path.display().to_string(),
            after_header: path.display().to_string(),
            before: fs::read_to_string(path).unwrap_or_default(),
            after: String::new(),
        });
    }
    if exists && !ctx.check_mode {
        fs::remove_file(path).map_err(|e| fsutil::io_fail("remove", path, &e))?;
    }
    Ok(o)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};
    use std::collections::BTreeMap;

    fn run(args: Value, check_mode: bool) -> Result<Outcome, ModuleError> {
        let args = args.as_object().unwrap();
        crate::modules::run_for_test("cron", args, &BTreeMap::new(), &json!({}), check_mode)
    }

    /// crontab's exit status 1 is "no crontab" to the module, also for a user an
    /// earlier (checked) task would create: check mode reports the job as a change.
    #[test]
    fn a_user_without_a_crontab_or_an_account_has_no_jobs_yet() {
        if tools::find_bin("crontab").is_none() {
            eprintln!("skipped: no crontab");
            return;
        }
        let o = run(
            json!({"name": "t", "job": "/bin/true", "minute": "20", "user": "rustle-nosuchuser"}),
            true,
        )
        .unwrap();
        assert!(o.changed && !o.failed, "{o:?}");
    }

    #[test]
    fn cron_file_jobs_are_marked_idempotent_and_removable() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("app");
        let fs_ = f.to_str().unwrap();
        let job = json!({"name": "backup", "minute": "5", "hour": "2", "job": "/usr/bin/backup",
                         "user": "root", "cron_file": fs_});
        let check = run(job.clone(), true).unwrap();
        assert!(check.changed);
        assert!(!f.exists(), "check mode wrote nothing");
        assert_eq!(
            check.diff[0].after,
            "#Ansible: backup\n5 2 * * * root /usr/bin/backup\n"
        );

        let o = run(job.clone(), false).unwrap();
        assert!(o.changed && !o.failed, "{o:?}");
        assert_eq!(o.data["jobs"], json!(["backup"]));
        assert_eq!(
            fs::read_to_string(&f).unwrap(),
            "#Ansible: backup\n5 2 * * * root /usr/bin/backup\n"
        );
        assert!(!run(job, false).unwrap().changed, "second run is ok");

        // A second job, then a change of the first in place, then disabling it.
        run(
            json!({"name": "weekly", "special_time": "weekly", "job": "/bin/true",
                   "user": "app", "cron_file": fs_}),
            false,
        )
        .unwrap();
        let o = run(
            json!({"name": "backup", "minute": "10", "job": "/usr/bin/backup",
                           "user": "root", "cron_file": fs_, "disabled": true}),
            false,
        )
        .unwrap();
        assert!(o.changed);
        assert_eq!(o.diff[0].before_header, fs_);
        assert_eq!(
            fs::read_to_string(&f).unwrap(),
            "#Ansible: backup\n#10 * * * * root /usr/bin/backup\n#Ansible: weekly\n@weekly app /bin/true\n"
        );

        let gone = json!({"name": "backup", "state": "absent", "cron_file": fs_});
        assert!(run(gone.clone(), false).unwrap().changed);
        assert_eq!(
            fs::read_to_string(&f).unwrap(),
            "#Ansible: weekly\n@weekly app /bin/true\n"
        );
        assert!(!run(gone, false).unwrap().changed);

        let whole = json!({"state": "absent", "cron_file": fs_});
        assert!(run(whole.clone(), true).unwrap().changed);
        assert!(f.exists());
        assert!(run(whole.clone(), false).unwrap().changed);
        assert!(!f.exists());
        assert!(!run(whole, false).unwrap().changed);
    }

    #[test]
    fn a_job_in_etc_cron_d() {
        let path = Path::new("/etc/cron.d/rustletest-cron");
        struct Rm(&'static Path);
        impl Drop for Rm {
            fn drop(&mut self) {
                let _ = fs::remove_file(self.0);
            }
        }
        let _rm = Rm(path);
        let _ = fs::remove_file(path);
        let job = json!({"name": "tick", "job": "echo tick", "user": "root",
                         "cron_file": "rustletest-cron"});
        let o = run(job.clone(), false).unwrap();
        assert!(o.changed, "{o:?}");
        assert_eq!(o.data["cron_file"], "/etc/cron.d/rustletest-cron");
        assert_eq!(
            fs::read_to_string(path).unwrap(),
            "#Ansible: tick\n* * * * * root echo tick\n"
        );
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            fs::metadata(path).unwrap().permissions().mode() & 0o777,
            0o644
        );
        assert!(!run(job, false).unwrap().changed);
    }

    #[test]
    fn env_variables_go_on_top_and_interoperate_with_jobs() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("envs");
        fs::write(&f, "#Ansible: a\n* * * * * root x\n").unwrap();
        let fs_ = f.to_str().unwrap();
        let o = run(
            json!({"name": "PATH", "env": true, "job": "/bin", "cron_file": fs_}),
            false,
        )
        .unwrap();
        assert!(o.changed);
        assert_eq!(o.data["envs"], json!(["PATH"]));
        run(
            json!({"name": "MAILTO", "env": true, "job": "ops", "cron_file": fs_,
                   "insertafter": "PATH"}),
            false,
        )
        .unwrap();
        assert_eq!(
            fs::read_to_string(&f).unwrap(),
            "PATH=/bin\nMAILTO=ops\n#Ansible: a\n* * * * * root x\n"
        );
        assert!(
            !run(
                json!({"name": "PATH", "env": true, "job": "/bin", "cron_file": fs_}),
                false
            )
            .unwrap()
            .changed
        );
        run(
            json!({"name": "PATH", "env": true, "state": "absent", "cron_file": fs_}),
            false,
        )
        .unwrap();
        assert_eq!(
            fs::read_to_string(&f).unwrap(),
            "MAILTO=ops\n#Ansible: a\n* * * * * root x\n"
        );
    }

    #[test]
    fn an_unmarked_identical_job_gets_marked_not_duplicated() {
        let mut lines = vec!["0 * * * * /bin/x".to_string()];
        edit_job(&mut lines, "x", Some("0 * * * * /bin/x".into()));
        assert_eq!(lines, vec!["#Ansible: x", "0 * * * * /bin/x"]);
        assert_eq!(
            strip_banner(
                "# DO NOT EDIT THIS FILE - edit the master and reinstall.\n# (/tmp/x installed on Fri)\n# (Cron version -- $Id$)\n* * * * * y\n"
            ),
            "* * * * * y\n"
        );
    }

    #[test]
    fn user_crontab_needs_the_crontab_command() {
        // This machine has no cron package (it cannot be installed from a test), so the
        // user-crontab path is checked for its failure: clear, and nothing written.
        if tools::find_bin("crontab").is_some() {
            let o = run(
                json!({"name": "rustletest", "job": "true", "state": "absent"}),
                true,
            )
            .unwrap();
            assert!(!o.failed, "{o:?}");
            return;
        }
        let o = run(json!({"name": "rustletest", "job": "true"}), false).unwrap();
        assert!(o.failed);
        assert!(o.msg.unwrap().contains("\"crontab\""));
    }

    #[test]
    fn bad_arguments_and_refusals() {
        let e = run(json!({"name": "x", "job": "y", "minute": "1 2"}), false).unwrap_err();
        assert!(e.to_string().contains("minute"));
        let e = run(
            json!({"name": "x", "job": "y", "special_time": "often"}),
            false,
        )
        .unwrap_err();
        assert!(e.to_string().contains("special_time"));
        let e = run(json!({"name": "x", "jobb": "y"}), false).unwrap_err();
        assert!(e.to_string().contains("jobb"));
        let o = run(
            json!({"name": "x", "job": "y", "hour": "1", "special_time": "daily",
                           "cron_file": "/tmp/none"}),
            false,
        )
        .unwrap();
        assert_eq!(
            o.msg.as_deref(),
            Some("You must specify time and date fields or special time.")
        );
        let o = run(
            json!({"name": "x", "job": "y", "cron_file": "/tmp/rustletest-none"}),
            false,
        )
        .unwrap();
        assert!(o.failed && o.msg.unwrap().contains("user="));
        let o = run(
            json!({"name": "x", "cron_file": "/tmp/rustletest-none"}),
            false,
        )
        .unwrap();
        assert!(o.failed && o.msg.unwrap().contains("'job'"));
    }
}
