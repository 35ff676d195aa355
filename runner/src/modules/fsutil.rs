//! Filesystem helpers shared by the file, copy, template and stat modules: owner and
//! group lookups, mode/owner/group reconciliation, the atomic write behind copy and
//! template, SHA-1 checksums, and the small result/diff vocabulary they have in common.
//!
//! Everything here is std only and `unsafe`-free: user and group names come from
//! `/etc/passwd` and `/etc/group`, not from libc's NSS (so LDAP users are unknown by
//! name; numeric ids always work).

use super::{Ctx, Diff, ModuleError, Outcome, args};
use crate::plan::Vars;
use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Why a module stopped early: bad arguments (an error for the executor) or a failed
/// outcome (a task result). Lets module code use `?` for both.
pub(super) enum Stop {
    /// The arguments were wrong.
    Bad(ModuleError),
    /// The task failed; the outcome says why.
    Failed(Box<Outcome>),
}

impl From<ModuleError> for Stop {
    fn from(e: ModuleError) -> Stop {
        Stop::Bad(e)
    }
}

/// A module step that may stop the module.
pub(super) type Step<T> = Result<T, Stop>;

/// Turns a module's internal result into the module interface's result.
pub(super) fn finish(r: Step<Outcome>) -> Result<Outcome, ModuleError> {
    match r {
        Ok(o) => Ok(o),
        Err(Stop::Bad(e)) => Err(e),
        Err(Stop::Failed(o)) => Ok(*o),
    }
}

/// Stops with a failed outcome carrying `msg`.
pub(super) fn fail<T>(msg: impl Into<String>) -> Step<T> {
    Err(failed(Outcome::fail(msg)))
}

/// Wraps a failed outcome (with extra registered fields) as a [`Stop`].
pub(super) fn failed(o: Outcome) -> Stop {
    Stop::Failed(Box::new(o))
}

/// An I/O error as a failed outcome naming what was attempted and on which path.
pub(super) fn io_fail(action: &str, path: &Path, e: &io::Error) -> Stop {
    failed(Outcome::fail(format!(
        "could not {action} {}: {e}",
        path.display()
    )))
}

/// A path's metadata without following a final symlink; `None` when nothing is there.
pub(super) fn lstat(path: &Path) -> Step<Option<fs::Metadata>> {
    match fs::symlink_metadata(path) {
        Ok(m) => Ok(Some(m)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_fail("inspect", path, &e)),
    }
}

/// Ansible's name for what a path is: directory, link, hard (a file with several
/// links), file (anything else that exists).
pub(super) fn state_name(m: &fs::Metadata) -> &'static str {
    let t = m.file_type();
    if t.is_symlink() {
        "link"
    } else if t.is_dir() {
        "directory"
    } else if m.nlink() > 1 {
        "hard"
    } else {
        "file"
    }
}

// ---------------------------------------------------------------------------
// Users and groups

/// The `name:x:id:...` databases, read fresh each time: they are small and a plan may
/// create users between tasks.
fn db_entries(file: &str) -> Vec<(String, u32)> {
    let Ok(text) = fs::read_to_string(file) else {
        return Vec::new();
    };
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let mut parts = l.split(':');
            let name = parts.next()?;
            let _password = parts.next()?;
            let id = parts.next()?.trim().parse().ok()?;
            Some((name.to_string(), id))
        })
        .collect()
}

fn id_by_name(file: &str, name: &str) -> Option<u32> {
    db_entries(file)
        .into_iter()
        .find(|(n, _)| n == name)
        .map(|(_, id)| id)
        // Ansible tries the name first, then the number.
        .or_else(|| name.trim().parse().ok())
}

fn name_by_id(file: &str, id: u32) -> String {
    db_entries(file)
        .into_iter()
        .find(|(_, i)| *i == id)
        .map_or_else(|| id.to_string(), |(n, _)| n)
}

/// A user's name for a uid (the number as text when unknown, as Ansible does).
pub(super) fn user_name(uid: u32) -> String {
    name_by_id("/etc/passwd", uid)
}

/// A group's name for a gid (the number as text when unknown).
pub(super) fn group_name(gid: u32) -> String {
    name_by_id("/etc/group", gid)
}

// ---------------------------------------------------------------------------
// Mode, owner and group

/// The mode/owner/group a task asks for; `None` leaves that attribute alone.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Attrs {
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
}

impl Attrs {
    /// Reads `mode`, `owner` and `group`. A malformed mode is a bad argument; an
    /// unknown user or group is a failed task, as in Ansible (the name may be created
    /// by an earlier task on another run).
    pub(super) fn from_args(a: &Vars) -> Step<Attrs> {
        let mode = args::opt_mode(a, "mode")?;
        let uid = match args::opt_str(a, "owner")? {
            Some(name) => Some(id_by_name("/etc/passwd", &name).ok_or_else(|| {
                fail_stop(format!("chown failed: failed to look up user {name}"))
            })?),
            None => None,
        };
        let gid = match args::opt_str(a, "group")? {
            Some(name) => Some(id_by_name("/etc/group", &name).ok_or_else(|| {
                fail_stop(format!("chgrp failed: failed to look up group {name}"))
            })?),
            None => None,
        };
        Ok(Attrs { mode, uid, gid })
    }
}

fn fail_stop(msg: String) -> Stop {
    failed(Outcome::fail(msg))
}

/// Before/after key-value pairs describing a state change, for diff mode.
#[derive(Debug, Default)]
pub(super) struct Changes {
    before: Vec<(&'static str, String)>,
    after: Vec<(&'static str, String)>,
}

impl Changes {
    /// Records that `key` goes from `before` to `after`.
    pub(super) fn push(&mut self, key: &'static str, before: String, after: String) {
        self.before.push((key, before));
        self.after.push((key, after));
    }

    /// Nothing changed.
    pub(super) fn is_empty(&self) -> bool {
        self.before.is_empty()
    }

    /// Appends another set of changes.
    pub(super) fn extend(&mut self, other: Changes) {
        self.before.extend(other.before);
        self.after.extend(other.after);
    }

    /// A diff in Ansible's spirit: `key: value` lines for the path before and after.
    pub(super) fn to_diff(&self, path: &Path) -> Diff {
        let render = |side: &[(&str, String)]| {
            let mut s = format!("path: {}\n", path.display());
            for (k, v) in side {
                s.push_str(&format!("{k}: {v}\n"));
            }
            s
        };
        Diff {
            before_header: path.display().to_string(),
            after_header: path.display().to_string(),
            before: render(&self.before),
            after: render(&self.after),
        }
    }
}

/// Brings `path`'s mode, owner and group to `want`, or in check mode only says what
/// would change. With `follow`, a symlink's target is changed (nothing, when the
/// target is missing); without, the link itself: owner and group via lchown, and no
/// mode, since Linux has no lchmod.
pub(super) fn apply_attrs(path: &Path, want: Attrs, follow: bool, check: bool) -> Step<Changes> {
    let mut changes = Changes::default();
    let Some(lmeta) = lstat(path)? else {
        return Ok(changes);
    };
    let is_link = lmeta.file_type().is_symlink();
    let meta = if is_link && follow {
        match fs::metadata(path) {
            Ok(m) => m,
            // A dangling link has no target to change.
            Err(_) => return Ok(changes),
        }
    } else {
        lmeta
    };
    let uid_change = want.uid.filter(|u| *u != meta.uid());
    let gid_change = want.gid.filter(|g| *g != meta.gid());
    if let Some(u) = uid_change {
        changes.push("owner", user_name(meta.uid()), user_name(u));
    }
    if let Some(g) = gid_change {
        changes.push("group", group_name(meta.gid()), group_name(g));
    }
    let mode_change = want
        .mode
        .filter(|m| (!is_link || follow) && *m != meta.mode() & 0o7777);
    if let Some(m) = mode_change {
        changes.push("mode", args::mode_string(meta.mode()), args::mode_string(m));
    }
    if check {
        return Ok(changes);
    }
    // Owner first: chown clears set-id bits, which the mode below may set again.
    if uid_change.is_some() || gid_change.is_some() {
        let r = if is_link && !follow {
            std::os::unix::fs::lchown(path, uid_change, gid_change)
        } else {
            std::os::unix::fs::chown(path, uid_change, gid_change)
        };
        r.map_err(|e| io_fail("change the owner/group of", path, &e))?;
    }
    if let Some(m) = mode_change {
        fs::set_permissions(path, fs::Permissions::from_mode(m))
            .map_err(|e| io_fail("change the mode of", path, &e))?;
    }
    Ok(changes)
}

/// Registers what Ansible registers about a path after a change: state, mode, uid,
/// gid, owner, group, size. A missing path registers `state: absent` only.
pub(super) fn add_path_info(mut o: Outcome, path: &Path, follow: bool) -> Outcome {
    let meta = if follow {
        fs::metadata(path).or_else(|_| fs::symlink_metadata(path))
    } else {
        fs::symlink_metadata(path)
    };
    let Ok(m) = meta else {
        return o.with("state", "absent");
    };
    let lstate = fs::symlink_metadata(path)
        .map(|l| state_name(&l))
        .unwrap_or("absent");
    o = o
        .with("state", lstate)
        .with("mode", args::mode_string(m.mode()))
        .with("uid", m.uid())
        .with("gid", m.gid())
        .with("owner", user_name(m.uid()))
        .with("group", group_name(m.gid()))
        .with("size", m.size());
    o
}

// ---------------------------------------------------------------------------
// Checksums

// The hashes live in `crate::digest`; modules reach them through here.
pub(super) use crate::digest::{sha1_file, sha1_hex};

// ---------------------------------------------------------------------------
// Writing files (copy and template)

/// Larger contents are not shown in diffs, as Ansible's `max_diff_size` (100 KiB).
const MAX_DIFF_SIZE: usize = 104_448;

/// A file's content as diff text, or a note when it is binary or too large.
pub(super) fn diff_text(bytes: &[u8]) -> String {
    if bytes.len() > MAX_DIFF_SIZE {
        return format!("(diff skipped: file size exceeds {MAX_DIFF_SIZE} bytes)\n");
    }
    match std::str::from_utf8(bytes) {
        Ok(s) if !s.contains('\0') => s.to_string(),
        _ => format!("(binary content, {} bytes)\n", bytes.len()),
    }
}

/// The permission bits a newly created file gets when no mode is asked for:
/// 0666 less the process umask, as Ansible's atomic move leaves them.
pub(super) fn default_file_mode() -> u32 {
    0o666 & !process_umask()
}

/// The umask, from /proc/self/status: std has no call that reads it, and umask(2)
/// would need unsafe code (and sets it while reading it). 022 if it cannot be read.
#[cfg(target_os = "linux")]
fn process_umask() -> u32 {
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Umask:"))
                .and_then(|v| u32::from_str_radix(v.trim(), 8).ok())
        })
        .unwrap_or(0o022)
}

/// Without procfs (macOS) the umask cannot be read without unsafe code: the usual 022
/// is assumed, which is also what a runner started over SSH normally has there.
#[cfg(not(target_os = "linux"))]
fn process_umask() -> u32 {
    0o022
}

/// Where copy and template write: `dest`, or `dest/<basename of src>` when `dest`
/// ends with a slash or is an existing directory (only when there is a src name).
pub(super) fn resolve_dest(dest: &str, src: Option<&str>) -> Step<PathBuf> {
    let into_dir = dest.ends_with('/') || Path::new(dest).is_dir();
    if !into_dir {
        return Ok(PathBuf::from(dest));
    }
    let Some(src) = src else {
        return fail(format!(
            "can not use content with a dir as dest ({dest}); give a file path"
        ));
    };
    let base = Path::new(src.trim_end_matches('/'))
        .file_name()
        .ok_or_else(|| fail_stop(format!("cannot tell a file name from src '{src}'")))?;
    Ok(Path::new(dest).join(base))
}

/// What to write and how, for [`write_file`].
pub(super) struct WriteReq<'a> {
    /// The file to write (already resolved against directories).
    pub dest: &'a Path,
    /// The new content.
    pub content: &'a [u8],
    /// Requested mode/owner/group.
    pub attrs: Attrs,
    /// Replace an existing file whose content differs.
    pub force: bool,
    /// Keep a timestamped copy of a file before replacing it.
    pub backup: bool,
    /// Write through a symlink at dest (else the link is replaced by a file).
    pub follow: bool,
    /// The `src` argument, registered and used as the diff's after header.
    pub src: Option<&'a str>,
    /// Mode for a new file when `mode` is not given (`mode: preserve`).
    pub new_mode: Option<u32>,
}

/// The write logic of copy and template: compare, then back up, write a private temp
/// file beside the destination and rename it over, then reconcile mode/owner/group.
/// Unchanged content and attributes report ok; check mode decides the same way and
/// touches nothing.
pub(super) fn write_file(req: &WriteReq<'_>, ctx: &Ctx<'_>) -> Step<Outcome> {
    let mut dest = req.dest.to_path_buf();
    if req.follow
        && fs::symlink_metadata(&dest).is_ok_and(|m| m.file_type().is_symlink())
        && let Ok(real) = fs::canonicalize(&dest)
    {
        dest = real;
    }
    let parent = match dest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if !parent.is_dir() {
        return Err(failed(
            Outcome::fail(format!(
                "Destination directory {} does not exist",
                parent.display()
            ))
            .with("dest", dest.display().to_string()),
        ));
    }
    let existing = lstat(&dest)?;
    if let Some(m) = &existing {
        if m.is_dir() {
            return fail(format!(
                "{} is a directory, cannot write a file there",
                dest.display()
            ));
        }
        if !req.force {
            return Ok(Outcome::ok()
                .msg("file already exists")
                .with("dest", dest.display().to_string()));
        }
    }
    // A symlink left at dest (follow=no) is replaced by a regular file, as Ansible does.
    let old: Option<Vec<u8>> = match &existing {
        Some(m) if m.is_file() => Some(fs::read(&dest).map_err(|e| io_fail("read", &dest, &e))?),
        _ => None,
    };
    let content_changed = old.as_deref() != Some(req.content);

    let mut out = Outcome::ok();
    let mut attr_changes = Changes::default();
    if content_changed {
        if !ctx.check_mode {
            if req.backup && old.is_some() {
                let b = backup(&dest)?;
                out = out.with("backup_file", b.display().to_string());
            }
            // A replaced file keeps its mode unless one is asked for; a new one gets
            // the umask default or the preserved source mode.
            let mode = req
                .attrs
                .mode
                .unwrap_or_else(|| match (&existing, old.is_some()) {
                    (Some(m), true) => m.mode() & 0o7777,
                    _ => req.new_mode.unwrap_or_else(default_file_mode),
                });
            let keep_owner = existing
                .as_ref()
                .filter(|_| old.is_some())
                .map(|m| (m.uid(), m.gid()));
            atomic_write(&dest, req.content, mode, keep_owner, req.attrs)?;
        }
    } else {
        attr_changes = apply_attrs(&dest, req.attrs, true, ctx.check_mode)?;
    }
    out.changed = content_changed || !attr_changes.is_empty();

    if ctx.diff_mode {
        if content_changed {
            out.diff.push(Diff {
                before_header: dest.display().to_string(),
                after_header: req
                    .src
                    .map_or_else(|| "dynamically generated".to_string(), str::to_string),
                before: old.as_deref().map(diff_text).unwrap_or_default(),
                after: diff_text(req.content),
            });
        } else if !attr_changes.is_empty() {
            out.diff.push(attr_changes.to_diff(&dest));
        }
    }

    out = out
        .with("dest", dest.display().to_string())
        .with("checksum", sha1_hex(req.content));
    if let Some(src) = req.src {
        out = out.with("src", src);
    }
    if ctx.check_mode && existing.is_none() {
        // Nothing exists to describe yet: say what would be there.
        out = out
            .with("state", "file")
            .with("size", req.content.len() as u64);
        if let Some(m) = req.attrs.mode {
            out = out.with("mode", args::mode_string(m));
        }
        Ok(out)
    } else {
        Ok(add_path_info(out, &dest, true))
    }
}

/// Keeps a copy of `dest` as `dest.<pid>.<YYYY-MM-DD@HH:MM:SS>~`, Ansible's backup
/// name (the time in UTC: local time needs libc), with its mode and mtime.
fn backup(dest: &Path) -> Step<PathBuf> {
    let now = SystemTime::now();
    let stamp = utc_stamp(now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()));
    let mut name = dest.as_os_str().to_os_string();
    name.push(format!(".{}.{stamp}~", std::process::id()));
    let b = PathBuf::from(name);
    fs::copy(dest, &b).map_err(|e| io_fail("back up", dest, &e))?;
    if let Ok(mtime) = fs::metadata(dest).and_then(|m| m.modified()) {
        // Best effort: a backup with today's mtime is still a backup.
        let _ = fs::File::options()
            .write(true)
            .open(&b)
            .and_then(|f| f.set_modified(mtime));
    }
    Ok(b)
}

/// `YYYY-MM-DD@HH:MM:SS` for seconds since the epoch, in UTC.
fn utc_stamp(secs: u64) -> String {
    let (y, m, d) = crate::facts::civil(i64::try_from(secs / 86_400).unwrap_or(0));
    let rem = secs % 86_400;
    format!(
        "{y:04}-{m:02}-{d:02}@{:02}:{:02}:{:02}",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// Distinguishes temp names made in the same process in the same nanosecond.
static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// A name for a temp file beside `dest` that others cannot predict or pre-create:
/// it mixes pid, time and a counter through blake3, and is opened with create_new.
fn temp_name(dest: &Path) -> PathBuf {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let n = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
    let seed = format!("{}:{nanos}:{n}:{}", std::process::id(), dest.display());
    let tag = blake3::hash(seed.as_bytes()).to_hex();
    let base = dest
        .file_name()
        .map_or_else(String::new, |b| b.to_string_lossy().into_owned());
    let name = format!(".{base}.{}.rustle-tmp", tag.get(..16).unwrap_or_default());
    dest.with_file_name(name)
}

/// Writes `content` to a fresh 0600 temp file beside `dest`, gives it its final mode
/// and owner, and renames it over `dest`, so readers see the old file or the new one,
/// never a partial one. The temp file is removed on any failure.
fn atomic_write(
    dest: &Path,
    content: &[u8],
    mode: u32,
    keep_owner: Option<(u32, u32)>,
    attrs: Attrs,
) -> Step<()> {
    let mut attempt = 0;
    let (tmp, mut file) = loop {
        let tmp = temp_name(dest);
        match fs::File::options()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
        {
            Ok(f) => break (tmp, f),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && attempt < 8 => attempt += 1,
            Err(e) => return Err(io_fail("create a temp file beside", dest, &e)),
        }
    };
    // Replacing a file: the new content must be on disk before the rename is, or a
    // crash could leave an empty file where the old one was. A new file has no old
    // content to lose, so it skips the flush (it costs milliseconds per file on a busy
    // disk, more than the rest of the task).
    let replacing = fs::symlink_metadata(dest).is_ok();
    let result = (|| -> Step<()> {
        file.write_all(content)
            .and_then(|()| if replacing { file.sync_all() } else { Ok(()) })
            .map_err(|e| io_fail("write", &tmp, &e))?;
        // A replaced file keeps its owner where we may set it (root); others get EPERM,
        // which Ansible ignores too.
        if let Some((uid, gid)) = keep_owner {
            match std::os::unix::fs::chown(&tmp, Some(uid), Some(gid)) {
                Err(e) if e.kind() != io::ErrorKind::PermissionDenied => {
                    return Err(io_fail("change the owner of", &tmp, &e));
                }
                _ => {}
            }
        }
        apply_attrs(
            &tmp,
            Attrs {
                mode: Some(mode),
                ..attrs
            },
            false,
            false,
        )?;
        fs::rename(&tmp, dest).map_err(|e| io_fail("rename a temp file onto", dest, &e))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Reads an embedded file by its exact key, or fails naming the key and how many
/// files the payload holds.
pub(super) fn embedded<'c>(ctx: &'c Ctx<'_>, src: &str) -> Step<&'c crate::plan::HostFile> {
    ctx.files.get(src).ok_or_else(|| {
        fail_stop(format!(
            "could not find src={src} among the files embedded for this host ({} embedded file{})",
            ctx.files.len(),
            if ctx.files.len() == 1 { "" } else { "s" }
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backup_stamps_are_utc_calendar_dates() {
        assert_eq!(utc_stamp(0), "1970-01-01@00:00:00");
        assert_eq!(utc_stamp(951_782_400 + 3661), "2000-02-29@01:01:01");
        assert_eq!(utc_stamp(1_700_000_000), "2023-11-14@22:13:20");
    }

    #[test]
    fn ids_resolve_by_name_or_number() {
        assert_eq!(id_by_name("/etc/passwd", "root"), Some(0));
        assert_eq!(id_by_name("/etc/passwd", "4242"), Some(4242));
        assert_eq!(id_by_name("/etc/passwd", "no-such-user-xyz"), None);
        assert_eq!(user_name(0), "root");
        assert_eq!(group_name(4_000_000), "4000000");
    }
}
