//! mount (ansible.posix.mount, Linux): an fstab entry and the mount state of a path, as
//! that module manages them. `present` writes the entry, `mounted` writes it and mounts
//! (or remounts what changed), `unmounted` unmounts and leaves fstab alone, `absent`
//! removes the entry, unmounts and removes the mount point, `absent_from_fstab` only
//! removes the entry, `remounted` remounts, `ephemeral` mounts without fstab.
//!
//! fstab is read and rewritten line by line as the module does (fields escaped with
//! `\040`, `\011`, `\134`; comments and lines of other shapes kept as they are; a
//! matching entry rewritten only when a field differs), through the atomic writer, and
//! put back when a mount the task needed fails. Mounting runs the host's `mount` and
//! `umount` with argument vectors; what is mounted is read from
//! `/proc/self/mountinfo`, which also sees bind mounts.

use super::fsutil::{self, Step, WriteReq, fail};
use super::tools;
use super::{Ctx, ModuleError, Outcome, args};
use crate::plan::Vars;
use std::path::{Path, PathBuf};

const KNOWN: &[&str] = &[
    "path",
    "name",
    "src",
    "fstype",
    "opts",
    "dump",
    "passno",
    "state",
    "fstab",
    "boot",
    "backup",
    "opts_no_log",
];

const STATES: &[&str] = &[
    "absent",
    "absent_from_fstab",
    "mounted",
    "present",
    "unmounted",
    "remounted",
    "ephemeral",
];

/// One fstab entry's fields, escaped as fstab writes them.
#[derive(Debug, Clone, PartialEq)]
struct Entry {
    src: String,
    name: String,
    fstype: String,
    opts: String,
    dump: String,
    passno: String,
}

impl Entry {
    /// The entry a line holds (4 to 6 fields, not a comment), with fstab's defaults for
    /// the two optional ones.
    fn parse(line: &str) -> Option<Entry> {
        if line.trim_start().starts_with('#') {
            return None;
        }
        let f: Vec<&str> = line.split_whitespace().collect();
        if !(4..=6).contains(&f.len()) {
            return None;
        }
        let field = |i: usize, default: &str| f.get(i).map_or(default, |s| s).to_string();
        Some(Entry {
            src: field(0, ""),
            name: field(1, ""),
            fstype: field(2, ""),
            opts: field(3, ""),
            dump: field(4, "0"),
            passno: field(5, "0"),
        })
    }

    fn line(&self) -> String {
        format!(
            "{} {} {} {} {} {}\n",
            self.src, self.name, self.fstype, self.opts, self.dump, self.passno
        )
    }

    /// Whether this line is the entry for `want`: the same mount point, and for swap
    /// (whose mount point is `none`) the same source.
    fn is_for(&self, want: &Entry) -> bool {
        self.name == want.name
            && !(self.name == "none" && self.fstype == "swap" && self.src != want.src)
    }
}

/// fstab's escapes for a field: backslash, space, tab (and `&`, as the module does).
fn escape(s: &str) -> String {
    s.replace('\\', "\\134")
        .replace(' ', "\\040")
        .replace('\t', "\\011")
        .replace('&', "\\046")
}

/// The system's tools and files; other ones in tests.
struct Places {
    mountinfo: PathBuf,
    mount: Option<PathBuf>,
    umount: Option<PathBuf>,
}

/// Where Linux lists what is mounted, for this process's mount namespace.
#[cfg(target_os = "linux")]
fn system_mountinfo() -> PathBuf {
    "/proc/self/mountinfo".into()
}

/// Elsewhere nothing: the module is refused on other platforms before it runs.
#[cfg(not(target_os = "linux"))]
fn system_mountinfo() -> PathBuf {
    PathBuf::new()
}

/// `mount`.
pub(super) fn run(a: &Vars, ctx: &Ctx<'_>) -> Result<Outcome, ModuleError> {
    let places = Places {
        mountinfo: system_mountinfo(),
        mount: None,
        umount: None,
    };
    fsutil::finish(run_at(a, ctx, &places))
}

/// What the task asks for.
struct Task<'a> {
    want: Entry,
    path: String,
    fstab: PathBuf,
    backup: bool,
    ctx: &'a Ctx<'a>,
    places: &'a Places,
}

fn run_at(a: &Vars, ctx: &Ctx<'_>, places: &Places) -> Step<Outcome> {
    args::only(a, KNOWN)?;
    let path = match args::opt_str(a, "path")?.or(args::opt_str(a, "name")?) {
        Some(p) => p.trim_end_matches('/').to_string(),
        None => return Err(ModuleError::BadArgs("missing required arguments: path".into()).into()),
    };
    let path = if path.is_empty() {
        "/".to_string()
    } else {
        path
    };
    let Some(state) = args::opt_str(a, "state")? else {
        return Err(ModuleError::BadArgs("missing required arguments: state".into()).into());
    };
    if !STATES.contains(&state.as_str()) {
        return Err(ModuleError::BadArgs(format!(
            "value of state must be one of: {}, got: {state}",
            STATES.join(", ")
        ))
        .into());
    }
    let src = args::opt_str(a, "src")?;
    let fstype = args::opt_str(a, "fstype")?;
    let needs: &[&str] = match state.as_str() {
        "mounted" | "present" => &["src", "fstype"],
        "ephemeral" => &["src", "fstype", "opts"],
        _ => &[],
    };
    let missing: Vec<&str> = needs
        .iter()
        .copied()
        .filter(|n| a.get(*n).is_none_or(serde_json::Value::is_null))
        .collect();
    if !missing.is_empty() {
        return Err(ModuleError::BadArgs(format!(
            "state is {state} but all of the following are missing: {}",
            missing.join(", ")
        ))
        .into());
    }
    let boot = args::bool_or(a, "boot", true)?;
    let mut opts = args::opt_str(a, "opts")?.unwrap_or_else(|| "defaults".into());
    if !boot {
        // fstab's way of saying "not at boot".
        opts = if opts == "defaults" {
            "noauto".into()
        } else if opts.split(',').any(|o| o == "noauto") {
            opts
        } else {
            format!("{opts},noauto")
        };
    }
    let fstab = PathBuf::from(args::opt_str(a, "fstab")?.unwrap_or_else(|| "/etc/fstab".into()));
    let want = Entry {
        src: escape(src.as_deref().unwrap_or_default()),
        name: escape(&path),
        fstype: escape(fstype.as_deref().unwrap_or_default()),
        opts: escape(&opts),
        dump: args::opt_str(a, "dump")?.unwrap_or_else(|| "0".into()),
        passno: args::opt_str(a, "passno")?.unwrap_or_else(|| "0".into()),
    };
    let task = Task {
        want,
        path: path.clone(),
        fstab: fstab.clone(),
        backup: args::bool_or(a, "backup", false)?,
        ctx,
        places,
    };
    let check = ctx.check_mode;
    let changed = match state.as_str() {
        "present" => task.set_entry()?.is_some(),
        "absent_from_fstab" => task.unset_entry()?,
        "absent" => {
            let changed = task.unset_entry()?;
            if changed && !check {
                if task.is_mounted() {
                    task.umount()?;
                }
                let p = Path::new(&path);
                if p.exists() {
                    std::fs::remove_dir(p).map_err(|e| {
                        fsutil::failed(Outcome::fail(format!("Error rmdir {path}: {e}")))
                    })?;
                }
            }
            changed
        }
        "unmounted" => {
            let mounted = task.is_mounted();
            if mounted && !check {
                task.umount()?;
            }
            mounted
        }
        "remounted" => {
            if !check && let Err(msg) = task.remount()? {
                return fail(format!("Error remounting {path}: {msg}"));
            }
            true
        }
        "ephemeral" => task.ephemeral()?,
        _ => task.mounted()?,
    };
    Ok(Outcome::changed(changed)
        .with("name", path.as_str())
        .with("src", src)
        .with("fstype", fstype)
        .with("opts", opts.as_str())
        .with("dump", task.want.dump.as_str())
        .with("passno", task.want.passno.as_str())
        .with("fstab", fstab.display().to_string())
        .with("boot", if boot { "yes" } else { "no" }))
}

impl Task<'_> {
    /// fstab's lines (an absent fstab is an empty one).
    fn lines(&self) -> Step<Vec<String>> {
        match std::fs::read_to_string(&self.fstab) {
            Ok(text) => Ok(text.split_inclusive('\n').map(str::to_string).collect()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(fsutil::io_fail("read", &self.fstab, &e)),
        }
    }

    /// Writes the entry; `Some(old lines)` when fstab changed (or would, in check mode).
    fn set_entry(&self) -> Step<Option<Vec<String>>> {
        let old = self.lines()?;
        let mut exists = false;
        let mut changed = false;
        let mut lines = Vec::with_capacity(old.len() + 1);
        for line in &old {
            match Entry::parse(line).filter(|e| e.is_for(&self.want)) {
                Some(found) => {
                    exists = true;
                    let updated = Entry {
                        name: found.name.clone(),
                        ..self.want.clone()
                    };
                    if updated == found {
                        lines.push(line.clone());
                    } else {
                        changed = true;
                        lines.push(updated.line());
                    }
                }
                None => lines.push(line.clone()),
            }
        }
        if !exists {
            if lines.last().is_some_and(|l| !l.ends_with('\n')) {
                lines.push("\n".into());
            }
            lines.push(self.want.line());
            changed = true;
        }
        if changed && !self.ctx.check_mode {
            self.write(&lines)?;
        }
        Ok(changed.then_some(old))
    }

    /// Removes every entry for the mount point; whether there was one.
    fn unset_entry(&self) -> Step<bool> {
        let old = self.lines()?;
        let kept: Vec<String> = old
            .iter()
            .filter(|l| !Entry::parse(l).is_some_and(|e| e.is_for(&self.want)))
            .cloned()
            .collect();
        let changed = kept.len() != old.len();
        if changed && !self.ctx.check_mode {
            self.write(&kept)?;
        }
        Ok(changed)
    }

    fn write(&self, lines: &[String]) -> Step<()> {
        if let Some(dir) = self.fstab.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| fsutil::io_fail("create the directory", dir, &e))?;
        }
        let content = lines.concat();
        let req = WriteReq {
            dest: &self.fstab,
            content: content.as_bytes(),
            attrs: fsutil::Attrs::default(),
            force: true,
            backup: self.backup,
            follow: true,
            src: None,
            new_mode: Some(0o644),
        };
        fsutil::write_file(&req, self.ctx).map(|_| ())
    }

    /// Something is mounted at the path (a bind mount too), as `/proc/self/mountinfo`
    /// lists mount points (field 5, escaped as fstab's fields are).
    fn is_mounted(&self) -> bool {
        let Ok(info) = std::fs::read_to_string(&self.places.mountinfo) else {
            return false;
        };
        let want = escape_mountinfo(&self.path);
        info.lines()
            .any(|l| l.split_whitespace().nth(4) == Some(want.as_str()))
    }

    fn tool(&self, name: &str, given: Option<&PathBuf>) -> Step<PathBuf> {
        given
            .cloned()
            .or_else(|| tools::find_bin(name))
            .map_or_else(
                || {
                    fail(format!(
                        "Failed to find required executable \"{name}\" in paths"
                    ))
                },
                Ok,
            )
    }

    /// Runs `mount` (or `umount`) with `argv`; `Err` is its message.
    fn run(
        &self,
        name: &str,
        given: Option<&PathBuf>,
        argv: Vec<String>,
    ) -> Step<Result<(), String>> {
        let bin = self.tool(name, given)?;
        Ok(
            match tools::run_command(self.ctx.command(&bin), &argv, None) {
                Ok(o) if o.rc == 0 => Ok(()),
                Ok(o) => Err(format!("{}{}", o.stdout, o.stderr).trim().to_string()),
                Err(e) => Err(format!("could not run {}: {e}", bin.display())),
            },
        )
    }

    /// `-T FSTAB` when it is not the system's.
    fn fstab_args(&self) -> Vec<String> {
        if self.fstab == Path::new("/etc/fstab") {
            Vec::new()
        } else {
            vec!["-T".into(), self.fstab.display().to_string()]
        }
    }

    fn mount(&self) -> Step<Result<(), String>> {
        let mut argv = self.fstab_args();
        argv.push(self.path.clone());
        self.run("mount", self.places.mount.as_ref(), argv)
    }

    fn umount(&self) -> Step<()> {
        match self.run(
            "umount",
            self.places.umount.as_ref(),
            vec![self.path.clone()],
        )? {
            Ok(()) => Ok(()),
            Err(msg) => fail(format!("Error unmounting {}: {msg}", self.path)),
        }
    }

    /// `mount -o remount`, else unmount and mount again, as the module falls back;
    /// `Err` is the tools' message.
    fn remount(&self) -> Step<Result<(), String>> {
        let mut argv = vec!["-o".to_string(), "remount".to_string()];
        argv.extend(self.fstab_args());
        argv.push(self.path.clone());
        if self.run("mount", self.places.mount.as_ref(), argv)?.is_ok() {
            return Ok(Ok(()));
        }
        match self.run(
            "umount",
            self.places.umount.as_ref(),
            vec![self.path.clone()],
        )? {
            Ok(()) => self.mount(),
            Err(msg) => Ok(Err(msg)),
        }
    }

    /// `mounted`: the entry written, the path made, and mounted (remounted when the
    /// entry changed); a failed mount puts fstab and the made directories back.
    fn mounted(&self) -> Step<bool> {
        let check = self.ctx.check_mode;
        let made = if check {
            Vec::new()
        } else {
            make_dirs(Path::new(&self.path))?
        };
        let old = self.set_entry()?;
        let mut changed = old.is_some();
        let result = if self.is_mounted() {
            if changed && !check {
                self.remount()?
            } else {
                Ok(())
            }
        } else {
            changed = true;
            if check { Ok(()) } else { self.mount()? }
        };
        if let Err(msg) = result {
            // A broken entry could stop the next boot: undo what this task did.
            if let Some(lines) = old {
                let _ = self.write(&lines);
            }
            for dir in made.iter().rev() {
                let _ = std::fs::remove_dir(dir);
            }
            return fail(format!("Error mounting {}: {msg}", self.path));
        }
        Ok(changed)
    }

    /// `ephemeral`: mounted with the given source, type and options, fstab untouched;
    /// a path already mounted with the same source and type is left alone.
    fn ephemeral(&self) -> Step<bool> {
        if self.is_mounted() {
            return Ok(false);
        }
        if !self.ctx.check_mode {
            let argv = vec![
                "-t".into(),
                unescape(&self.want.fstype),
                "-o".into(),
                unescape(&self.want.opts),
                unescape(&self.want.src),
                self.path.clone(),
            ];
            if let Err(msg) = self.run("mount", self.places.mount.as_ref(), argv)? {
                return fail(format!("Error mounting {}: {msg}", self.path));
            }
        }
        Ok(true)
    }
}

/// mountinfo's escapes (octal for space, tab, newline and backslash).
fn escape_mountinfo(s: &str) -> String {
    s.replace('\\', "\\134")
        .replace(' ', "\\040")
        .replace('\t', "\\011")
        .replace('\n', "\\012")
}

fn unescape(s: &str) -> String {
    s.replace("\\040", " ")
        .replace("\\011", "\t")
        .replace("\\046", "&")
        .replace("\\134", "\\")
}

/// Makes `path` and its missing parents, returning those made (to undo them).
fn make_dirs(path: &Path) -> Step<Vec<PathBuf>> {
    let mut missing = Vec::new();
    let mut p = Some(path);
    while let Some(dir) = p.filter(|d| !d.as_os_str().is_empty() && !d.exists()) {
        missing.push(dir.to_path_buf());
        p = dir.parent();
    }
    missing.reverse();
    for dir in &missing {
        std::fs::create_dir(dir).map_err(|e| {
            fsutil::failed(Outcome::fail(format!(
                "Error making dir {}: {e}",
                dir.display()
            )))
        })?;
    }
    Ok(missing)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::modules::args_in;
    use serde_json::{Value, json};

    fn mount_task(dir: &Path, args: Value, check: bool) -> Outcome {
        let t = crate::modules::TestCtx::new();
        let places = Places {
            mountinfo: system_mountinfo(),
            mount: None,
            umount: None,
        };
        fsutil::finish(run_at(&args_in(dir, &args), &t.ctx(check, false), &places)).unwrap()
    }

    fn read(p: &Path) -> String {
        std::fs::read_to_string(p).unwrap_or_default()
    }

    /// What util-linux's `mountpoint` says, independently of the module's own reading.
    fn mounted(path: &Path) -> bool {
        std::process::Command::new("mountpoint")
            .arg("-q")
            .arg(path)
            .status()
            .expect("mountpoint (util-linux) is installed")
            .success()
    }

    /// fstab entries as the module writes them: added once, rewritten when a field
    /// differs, removed; comments and other lines kept; check mode writes nothing.
    #[test]
    fn fstab_entries_are_added_changed_and_removed() {
        let t = tempfile::tempdir().unwrap();
        let fstab = t.path().join("fstab");
        std::fs::write(
            &fstab,
            "# static table\nUUID=1 / ext4 errors=remount-ro 0 1\n",
        )
        .unwrap();
        let entry = json!({"path": "/srv/my data", "src": "server:/export", "fstype": "nfs",
                           "opts": "ro", "state": "present", "fstab": "{p}/fstab"});
        let dry = mount_task(t.path(), entry.clone(), true);
        assert!(dry.changed);
        assert!(!read(&fstab).contains("nfs"));

        let out = mount_task(t.path(), entry.clone(), false);
        assert!(out.changed && !out.failed, "{out:?}");
        assert_eq!(
            read(&fstab),
            "# static table\nUUID=1 / ext4 errors=remount-ro 0 1\nserver:/export /srv/my\\040data nfs ro 0 0\n"
        );
        assert_eq!(out.data["name"], "/srv/my data");
        assert_eq!(out.data["boot"], "yes");
        assert!(!mount_task(t.path(), entry.clone(), false).changed);

        let mut changed = entry.clone();
        changed["opts"] = json!("rw");
        changed["boot"] = json!(false);
        assert!(mount_task(t.path(), changed, false).changed);
        assert!(read(&fstab).ends_with("server:/export /srv/my\\040data nfs rw,noauto 0 0\n"));

        let mut gone = entry;
        gone["state"] = json!("absent_from_fstab");
        assert!(mount_task(t.path(), gone.clone(), false).changed);
        assert_eq!(
            read(&fstab),
            "# static table\nUUID=1 / ext4 errors=remount-ro 0 1\n"
        );
        assert!(!mount_task(t.path(), gone, false).changed);

        let r = crate::modules::run_in_dir_for_test(
            "mount",
            t.path(),
            &json!({"path": "/x", "state": "mounted"}),
            false,
        );
        assert_eq!(
            r,
            Err(ModuleError::BadArgs(
                "state is mounted but all of the following are missing: src, fstype".into()
            ))
        );
    }

    /// Real mounts (tmpfs; the tests run as root): mounted makes the path and mounts
    /// through the given fstab, a changed entry remounts, unmounted and absent undo it,
    /// and a mount that fails puts fstab and the made directory back.
    #[test]
    fn tmpfs_is_mounted_remounted_and_unmounted() {
        let t = tempfile::tempdir().unwrap();
        let fstab = t.path().join("fstab");
        let point = t.path().join("mnt/inner");
        let args = json!({"path": "{p}/mnt/inner", "src": "tmpfs", "fstype": "tmpfs",
                          "opts": "size=1m", "state": "mounted", "fstab": "{p}/fstab"});
        let out = mount_task(t.path(), args.clone(), false);
        assert!(out.changed && !out.failed, "{out:?}");
        assert!(mounted(&point));
        assert!(!mount_task(t.path(), args.clone(), false).changed);

        let mut bigger = args.clone();
        bigger["opts"] = json!("size=2m");
        let re = mount_task(t.path(), bigger, false);
        assert!(re.changed && !re.failed, "{re:?}");
        assert!(read(&fstab).contains("size=2m"));
        assert!(mounted(&point));

        let mut off = args.clone();
        off["state"] = json!("unmounted");
        assert!(mount_task(t.path(), off.clone(), false).changed);
        assert!(!mounted(&point));
        assert!(!mount_task(t.path(), off, false).changed);
        assert!(read(&fstab).contains("tmpfs"), "unmounted keeps the entry");

        let mut absent = args.clone();
        absent["state"] = json!("absent");
        assert!(mount_task(t.path(), absent, false).changed);
        assert!(!point.exists() && !read(&fstab).contains("tmpfs"));

        let mut broken = args;
        broken["fstype"] = json!("no-such-fs");
        let failed = mount_task(t.path(), broken, false);
        assert!(failed.failed);
        assert!(
            failed
                .msg
                .as_deref()
                .unwrap_or_default()
                .starts_with("Error mounting")
        );
        assert_eq!(read(&fstab), "", "fstab put back");
        // `mnt` was left by the first mount (absent removes only the mount point).
        assert!(
            !point.exists() && t.path().join("mnt").exists(),
            "made directory removed"
        );
    }
}
