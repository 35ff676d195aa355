//! Filesystem helpers shared by the file, copy, template and stat modules: owner and
//! group lookups, mode/owner/group reconciliation, the write procedure of the modules
//! that write a file (compare, back up, then write through [`crate::atomic`]: descriptors,
//! never names someone else could swap), SHA-1 checksums, and the small result/diff
//! vocabulary they have in common.
//!
//! Everything here is std only and `unsafe`-free: user and group names come from
//! `/etc/passwd` and `/etc/group`, not from libc's NSS (so LDAP users are unknown by
//! name; numeric ids always work).

use super::{Ctx, Diff, ModuleError, Outcome, args, iflags};
use crate::atomic::open_nonblocking;
pub(super) use crate::atomic::{Dir, Finish, WriteError, same_file};
use crate::passwd;
use crate::plan::Vars;
use std::ffi::OsStr;
use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
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

/// access(2)'s W_OK, which modules ask of a `dest` before they change it: without libc,
/// whether the file opens for appending (which changes nothing); for a directory,
/// whether it is not read-only (the write itself tells whether a file can be made).
pub(super) fn writable(p: &Path) -> bool {
    if p.is_dir() {
        return fs::metadata(p).is_ok_and(|m| !m.permissions().readonly());
    }
    fs::OpenOptions::new().append(true).open(p).is_ok()
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

/// A path's metadata without following a final symlink; `None` when nothing is there,
/// which includes a name too long or a parent that is not a directory (Python's
/// `os.path.lexists`, which Ansible's file module asks, says False to those).
pub(super) fn lstat(path: &Path) -> Step<Option<fs::Metadata>> {
    match fs::symlink_metadata(path) {
        Ok(m) => Ok(Some(m)),
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::NotFound
                    | io::ErrorKind::InvalidFilename
                    | io::ErrorKind::NotADirectory
            ) =>
        {
            Ok(None)
        }
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

/// A user's uid by name, or the name as a number (Ansible tries the name first).
fn uid_of(name: &str) -> Option<u32> {
    passwd::user(name)
        .map(|u| u.uid)
        .or_else(|| name.trim().parse().ok())
}

/// A group's gid by name, or the name as a number.
fn gid_of(name: &str) -> Option<u32> {
    passwd::groups()
        .into_iter()
        .find(|g| g.name == name)
        .map(|g| g.gid)
        .or_else(|| name.trim().parse().ok())
}

/// A user's name for a uid (the number as text when unknown, as Ansible does).
pub(super) fn user_name(uid: u32) -> String {
    passwd::users()
        .into_iter()
        .find(|u| u.uid == uid)
        .map_or_else(|| uid.to_string(), |u| u.name)
}

/// A group's name for a gid (the number as text when unknown).
pub(super) fn group_name(gid: u32) -> String {
    passwd::groups()
        .into_iter()
        .find(|g| g.gid == gid)
        .map_or_else(|| gid.to_string(), |g| g.name)
}

// ---------------------------------------------------------------------------
// Mode, owner and group

/// Ansible's file arguments (`FILE_COMMON_ARGUMENTS`) besides a module's own.
pub(super) const FILE_COMMON_ARGS: &[&str] = &[
    "mode",
    "owner",
    "group",
    "seuser",
    "serole",
    "setype",
    "selevel",
    "unsafe_writes",
    "attributes",
];

/// The mode/owner/group a task asks for; `None` leaves that attribute alone.
#[derive(Debug, Clone, Default)]
pub(super) struct Attrs {
    pub mode: Option<u32>,
    /// A symbolic mode (`u+x,g-w`), resolved against the path's mode when applied.
    pub sym: Option<args::SymbolicMode>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    /// File attributes (`chattr` letters), set after mode and owner.
    pub flags: Option<iflags::Request>,
    /// Why `owner` or `group` names nobody (`chown failed: failed to look up user
    /// x`): the task fails with it when the attributes are applied to a file that
    /// exists, as Ansible's do; check mode reports a file it would create or rewrite
    /// as changed without looking (an earlier checked task may create the user).
    pub unknown: Option<String>,
}

impl Attrs {
    /// Reads `mode`, `owner` and `group`. A malformed mode is a bad argument; an
    /// unknown user or group is a failed task, as in Ansible (the name may be created
    /// by an earlier task on another run).
    pub(super) fn from_args(a: &Vars) -> Step<Attrs> {
        let (mode, sym) = match a.get("mode") {
            Some(serde_json::Value::String(s)) if args::SymbolicMode::looks_symbolic(s) => {
                (None, Some(args::SymbolicMode::parse(s)?))
            }
            _ => (args::opt_mode(a, "mode")?, None),
        };
        let mut unknown = None;
        let uid = match args::opt_str(a, "owner")? {
            Some(name) => uid_of(&name).or_else(|| {
                unknown = Some(format!("chown failed: failed to look up user {name}"));
                None
            }),
            None => None,
        };
        let gid = match args::opt_str(a, "group")? {
            Some(name) => gid_of(&name).or_else(|| {
                unknown.get_or_insert(format!("chgrp failed: failed to look up group {name}"));
                None
            }),
            None => None,
        };
        let flags = match args::opt_str(a, "attributes")?.or(args::opt_str(a, "attr")?) {
            Some(text) => iflags::Request::parse(&text).map_err(ModuleError::BadArgs)?,
            None => None,
        };
        Ok(Attrs {
            mode,
            sym,
            uid,
            gid,
            flags,
            unknown,
        })
    }

    /// The mode asked for, for a path whose mode is `current` (a symbolic mode changes
    /// that one; `is_dir` decides `X`).
    pub(super) fn mode_for(&self, current: u32, is_dir: bool) -> Option<u32> {
        self.mode
            .or_else(|| self.sym.map(|s| s.apply(current & 0o7777, is_dir)))
    }
}

fn fail_stop(msg: String) -> Stop {
    failed(Outcome::fail(msg))
}

impl From<WriteError> for Stop {
    fn from(e: WriteError) -> Stop {
        fail_stop(e.to_string())
    }
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

    /// Each change as `(key, before, after)`, in the order recorded.
    pub(super) fn pairs(&self) -> impl Iterator<Item = (&'static str, &str, &str)> {
        self.before
            .iter()
            .zip(&self.after)
            .map(|((k, b), (_, a))| (*k, b.as_str(), a.as_str()))
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
///
/// The directory part of `path` is resolved once and held open; the last name is
/// looked up in it, and a file or directory is changed through a descriptor checked to
/// be the very one inspected. So a user who can write in that directory cannot swap
/// the name for a symlink between the check and the change and have root chown or
/// chmod another file.
pub(super) fn apply_attrs(path: &Path, want: &Attrs, follow: bool, check: bool) -> Step<Changes> {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    // "/" and names ending in ".." have no last name to look up; a directory this user
    // may not read cannot be held open (only as non-root, on files of its own).
    let (Some(name), Ok(dir)) = (path.file_name(), Dir::open(parent)) else {
        return apply_attrs_by_path(path, want, follow, check);
    };
    apply_attrs_at(&dir, name, want, follow, check)
}

/// What [`apply_attrs`] would change on a file described by `meta`.
struct AttrPlan {
    uid: Option<u32>,
    gid: Option<u32>,
    mode: Option<u32>,
    changes: Changes,
}

fn plan_attrs(meta: &fs::Metadata, want: &Attrs, mode_applies: bool) -> AttrPlan {
    let mut changes = Changes::default();
    let uid = want.uid.filter(|u| *u != meta.uid());
    let gid = want.gid.filter(|g| *g != meta.gid());
    if let Some(u) = uid {
        changes.push("owner", user_name(meta.uid()), user_name(u));
    }
    if let Some(g) = gid {
        changes.push("group", group_name(meta.gid()), group_name(g));
    }
    let mode = want
        .mode_for(meta.mode(), meta.is_dir())
        .filter(|m| mode_applies && *m != meta.mode() & 0o7777);
    if let Some(m) = mode {
        changes.push("mode", args::mode_string(meta.mode()), args::mode_string(m));
    }
    AttrPlan {
        uid,
        gid,
        mode,
        changes,
    }
}

/// [`apply_attrs`] for `name` in an open directory.
pub(super) fn apply_attrs_at(
    dir: &Dir,
    name: &OsStr,
    want: &Attrs,
    follow: bool,
    check: bool,
) -> Step<Changes> {
    let shown = dir.shown(name);
    let Some(lmeta) = dir.lstat(name)? else {
        return Ok(Changes::default());
    };
    if let Some(why) = &want.unknown {
        return fail(why.clone());
    }
    let is_link = lmeta.file_type().is_symlink();
    let meta = if is_link && follow {
        match fs::metadata(dir.at(name)?) {
            Ok(m) => m,
            // A dangling link has no target to change.
            Err(_) => return Ok(Changes::default()),
        }
    } else {
        lmeta
    };
    let mut plan = plan_attrs(&meta, want, !is_link || follow);
    // Attributes are read from the file itself, so it is opened even when mode and
    // owner need nothing (or only checking).
    let flags = want
        .flags
        .filter(|_| iflags::SUPPORTED && (meta.is_file() || meta.is_dir()) && (!is_link || follow));
    if (check || plan.changes.is_empty()) && flags.is_none() {
        return Ok(plan.changes);
    }
    let target = dir.at(name)?;
    if is_link && !follow {
        // lchown never follows the last name, wherever it points now.
        std::os::unix::fs::lchown(&target, plan.uid, plan.gid)
            .map_err(|e| io_fail("change the owner/group of", &shown, &e))?;
        return Ok(plan.changes);
    }
    if meta.is_file() || meta.is_dir() {
        match open_nonblocking(&target) {
            Ok(f) => {
                let now = f.metadata().map_err(|e| io_fail("inspect", &shown, &e))?;
                if !same_file(&now, &meta) {
                    return Err(WriteError::Replaced {
                        path: shown,
                        dir: dir.path().to_path_buf(),
                    }
                    .into());
                }
                if !check {
                    set_attrs_fd(&f, &plan, &shown)?;
                }
                set_flags_fd(&f, flags, check, &shown, &mut plan.changes)?;
                return Ok(plan.changes);
            }
            // Only a non-root runner is refused a file it may not read; it can change
            // nothing but its own files, so the path is as good as it gets there.
            Err(e) if e.kind() == io::ErrorKind::PermissionDenied && !check => {}
            Err(e) if e.kind() == io::ErrorKind::PermissionDenied => return Ok(plan.changes),
            Err(e) => return Err(io_fail("open", &shown, &e)),
        }
    }
    // FIFOs, sockets and devices are not opened (that could block, or act on a device):
    // the owner is changed without following a link that may have replaced the name,
    // and the mode after checking the name is still no link.
    if plan.uid.is_some() || plan.gid.is_some() {
        let r = if is_link {
            std::os::unix::fs::chown(&target, plan.uid, plan.gid)
        } else {
            std::os::unix::fs::lchown(&target, plan.uid, plan.gid)
        };
        r.map_err(|e| io_fail("change the owner/group of", &shown, &e))?;
    }
    if let Some(m) = plan.mode {
        if !is_link && dir.lstat(name)?.is_none_or(|n| n.file_type().is_symlink()) {
            return Err(WriteError::Replaced {
                path: shown,
                dir: dir.path().to_path_buf(),
            }
            .into());
        }
        fs::set_permissions(&target, fs::Permissions::from_mode(m))
            .map_err(|e| io_fail("change the mode of", &shown, &e))?;
    }
    Ok(plan.changes)
}

/// Sets owner, group and mode on an open file. The owner comes first: chown clears
/// set-id bits, which the mode may set again.
fn set_attrs_fd(f: &fs::File, plan: &AttrPlan, shown: &Path) -> Step<()> {
    if plan.uid.is_some() || plan.gid.is_some() {
        std::os::unix::fs::fchown(f, plan.uid, plan.gid)
            .map_err(|e| io_fail("change the owner/group of", shown, &e))?;
    }
    if let Some(m) = plan.mode {
        f.set_permissions(fs::Permissions::from_mode(m))
            .map_err(|e| io_fail("change the mode of", shown, &e))?;
    }
    Ok(())
}

/// Brings an open file's attributes to `want` as Ansible's `set_attributes_if_different`
/// decides (see [`iflags`]), recording the change; in check mode only records it.
fn set_flags_fd(
    f: &fs::File,
    want: Option<iflags::Request>,
    check: bool,
    shown: &Path,
    changes: &mut Changes,
) -> Step<()> {
    let Some(want) = want.filter(|_| iflags::SUPPORTED) else {
        return Ok(());
    };
    let current = iflags::get(f);
    let before = current.map(iflags::letters);
    if !want.differs(before.as_deref()) {
        return Ok(());
    }
    changes.push("attributes", before.unwrap_or_default(), want.shown());
    if check {
        return Ok(());
    }
    let chattr_failed = |details: String| {
        failed(
            Outcome::fail("chattr failed")
                .with("path", shown.display().to_string())
                .with("details", details),
        )
    };
    let new = want
        .apply(current.unwrap_or_default())
        .map_err(chattr_failed)?;
    iflags::set(f, new).map_err(|e| {
        chattr_failed(format!(
            "Error while setting attributes: {}: {e}",
            shown.display()
        ))
    })
}

/// [`apply_attrs`] by path, for the few paths that have no directory to hold open.
fn apply_attrs_by_path(path: &Path, want: &Attrs, follow: bool, check: bool) -> Step<Changes> {
    let Some(lmeta) = lstat(path)? else {
        return Ok(Changes::default());
    };
    if let Some(why) = &want.unknown {
        return fail(why.clone());
    }
    let is_link = lmeta.file_type().is_symlink();
    let meta = if is_link && follow {
        match fs::metadata(path) {
            Ok(m) => m,
            Err(_) => return Ok(Changes::default()),
        }
    } else {
        lmeta
    };
    let plan = plan_attrs(&meta, want, !is_link || follow);
    if check {
        return Ok(plan.changes);
    }
    if plan.uid.is_some() || plan.gid.is_some() {
        let r = if is_link && !follow {
            std::os::unix::fs::lchown(path, plan.uid, plan.gid)
        } else {
            std::os::unix::fs::chown(path, plan.uid, plan.gid)
        };
        r.map_err(|e| io_fail("change the owner/group of", path, &e))?;
    }
    if let Some(m) = plan.mode {
        fs::set_permissions(path, fs::Permissions::from_mode(m))
            .map_err(|e| io_fail("change the mode of", path, &e))?;
    }
    Ok(plan.changes)
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
pub(crate) fn process_umask() -> u32 {
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
pub(crate) fn process_umask() -> u32 {
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

/// Writes a system configuration file a module builds whole (sysctl.conf, locale.gen, an
/// APT source): through a symlink, replacing different content, 0644 when new unless
/// `attrs` says otherwise; the same compare-then-write as [`write_file`].
pub(super) fn write_config(
    path: &Path,
    content: &[u8],
    attrs: Attrs,
    ctx: &Ctx<'_>,
) -> Step<Outcome> {
    let req = WriteReq {
        dest: path,
        content,
        attrs,
        force: true,
        backup: false,
        follow: true,
        src: None,
        new_mode: Some(0o644),
    };
    write_file(&req, ctx)
}

/// The write logic of copy, template, lineinfile, blockinfile, replace, sysctl and
/// archive: compare, then back up, write a private temp file beside the destination
/// and rename it over (see [`crate::atomic::NewFile`]), then reconcile mode/owner/group.
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
        // In check mode Ansible's copy and template actions compare checksums and report
        // a file that is not there yet as a change without asking the host anything; a
        // directory an earlier task would have made (also only checked) is no error.
        if ctx.check_mode && !parent.exists() {
            return Ok(Outcome::changed(true).with("dest", dest.display().to_string()));
        }
        return Err(failed(
            Outcome::fail(format!(
                "Destination directory {} does not exist",
                parent.display()
            ))
            .with("dest", dest.display().to_string()),
        ));
    }
    let Some(name) = dest.file_name().map(OsStr::to_os_string) else {
        return fail(format!(
            "{} does not name a file, cannot write a file there",
            dest.display()
        ));
    };
    // From here on the directory is held open and every name is used through it.
    let dir = Dir::open(&parent).map_err(|e| io_fail("open the directory", &parent, &e))?;
    let existing = dir.lstat(&name)?;
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
    // A regular file is read through a descriptor checked to be the file inspected, so
    // a name swapped meanwhile for a link to a secret cannot be read into a diff or backup.
    let old_file = match &existing {
        Some(m) if m.is_file() => Some(dir.open_seen(&name, m)?),
        _ => None,
    };
    let old: Option<Vec<u8>> = match &old_file {
        Some(f) => {
            let mut buf = Vec::new();
            let mut reader: &fs::File = f;
            reader
                .read_to_end(&mut buf)
                .map_err(|e| io_fail("read", &dest, &e))?;
            Some(buf)
        }
        None => None,
    };
    let content_changed = old.as_deref() != Some(req.content);
    // An owner or group nobody has: check mode reports a write as a change without
    // looking (Ansible's copy exits before it sets attributes); anything else fails,
    // before the file is touched.
    if let Some(why) = &req.attrs.unknown
        && !(content_changed && ctx.check_mode)
    {
        return fail(why.clone());
    }

    let mut out = Outcome::ok();
    let mut attr_changes = Changes::default();
    if content_changed {
        if !ctx.check_mode {
            if req.backup
                && let (Some(bytes), Some(m)) = (&old, &existing)
            {
                let b = backup(&dir, &name, bytes, m)?;
                out = out.with("backup_file", b.display().to_string());
            }
            // A replaced file keeps its mode unless one is asked for; a new one gets
            // the umask default or the preserved source mode.
            let base = match (&existing, old.is_some()) {
                (Some(m), true) => m.mode() & 0o7777,
                _ => req.new_mode.unwrap_or_else(default_file_mode),
            };
            let mode = req.attrs.mode_for(base, false).unwrap_or(base);
            let keep_owner = existing
                .as_ref()
                .filter(|_| old.is_some())
                .map(|m| (m.uid(), m.gid()));
            let mut new = dir.new_file(&name)?;
            new.file()
                .write_all(req.content)
                .map_err(|e| io_fail("write", &new.shown(), &e))?;
            new.place(
                &name,
                &Finish {
                    mode,
                    keep_owner,
                    uid: req.attrs.uid,
                    gid: req.attrs.gid,
                    mtime: None,
                    // Replacing a file: the new content must be on disk before the
                    // rename is, or a crash could leave an empty file where the old one
                    // was. A new file has no old content to lose, so it skips the flush
                    // (it costs milliseconds per file on a busy disk, more than the
                    // rest of the task).
                    sync: existing.is_some(),
                    keep_xattrs: old_file.as_ref(),
                },
            )?;
            // Attributes go on the file in place, as chattr after Ansible's move: an
            // immutable temporary file could not be renamed.
            if req.attrs.flags.is_some() {
                let flags_only = Attrs {
                    flags: req.attrs.flags,
                    ..Attrs::default()
                };
                apply_attrs_at(&dir, &name, &flags_only, false, false)?;
            }
        }
    } else if let (Some(f), Some(m)) = (&old_file, &existing) {
        // Same content: the file just read is the one whose attributes are reconciled.
        let mut plan = plan_attrs(m, &req.attrs, true);
        if !ctx.check_mode {
            set_attrs_fd(f, &plan, &dest)?;
        }
        set_flags_fd(f, req.attrs.flags, ctx.check_mode, &dest, &mut plan.changes)?;
        attr_changes = plan.changes;
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
    if content_changed {
        // The copy module's legacy `md5sum` of the source: Ansible's action calls the
        // module only when the content differs (the file module otherwise).
        out = out.with(
            "md5sum",
            crate::hex::encode(&crate::digest::md5(&[req.content])),
        );
    }
    if let Some(src) = req.src {
        out = out.with("src", src);
    }
    if ctx.check_mode && existing.is_none() {
        // Nothing exists to describe yet: say what would be there.
        out = out
            .with("state", "file")
            .with("size", req.content.len() as u64);
        if let Some(m) = req.attrs.mode_for(default_file_mode(), false) {
            out = out.with("mode", args::mode_string(m));
        }
        Ok(out)
    } else {
        Ok(add_path_info(out, &dest, true))
    }
}

/// How many backup names are tried before giving up: Ansible's name first, then the
/// same with a counter, then unpredictable ones (names someone planted are skipped).
const BACKUP_ATTEMPTS: u32 = 16;

/// Keeps a copy of `name` (whose content is `bytes` and whose lstat is `meta`) as
/// `name.<pid>.<YYYY-MM-DD@HH:MM:SS>~`, Ansible's backup name (the time in UTC: local
/// time needs libc), with its owner, mode and mtime.
///
/// The backup is a new file this process creates (O_CREAT|O_EXCL, which also refuses a
/// symlink planted under the predictable name) and fills through its descriptor. Set-id
/// bits are not copied: a backup is kept to restore from, not to run.
fn backup(dir: &Dir, name: &OsStr, bytes: &[u8], meta: &fs::Metadata) -> Step<PathBuf> {
    let now = SystemTime::now();
    let stamp = crate::facts::utc_seconds(
        now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()),
        '@',
    );
    let mut base = name.to_os_string();
    base.push(format!(".{}.{stamp}", std::process::id()));
    let mut attempt = 0u32;
    let (bname, mut file) = loop {
        let mut candidate = base.clone();
        match attempt {
            0 => {}
            1..=7 => candidate.push(format!(".{attempt}")),
            _ => candidate.push(format!(".{}", crate::random::tag())),
        }
        candidate.push("~");
        match dir.create_new(&candidate, 0o600) {
            Ok(f) => break (candidate, f),
            Err(WriteError::Io { source, .. })
                if source.kind() == io::ErrorKind::AlreadyExists && attempt < BACKUP_ATTEMPTS =>
            {
                attempt += 1;
            }
            Err(e) => return Err(e.into()),
        }
    };
    let shown = dir.shown(&bname);
    let done = (|| -> io::Result<()> {
        file.write_all(bytes)?;
        // The owner's own copy, where we may set it (root); others get EPERM.
        match std::os::unix::fs::fchown(&file, Some(meta.uid()), Some(meta.gid())) {
            Err(e) if e.kind() != io::ErrorKind::PermissionDenied => return Err(e),
            _ => {}
        }
        file.set_permissions(fs::Permissions::from_mode(meta.mode() & 0o777))?;
        if let Ok(mtime) = meta.modified() {
            file.set_modified(mtime)?;
        }
        Ok(())
    })();
    if let Err(e) = done {
        let _ = dir.remove(&bname);
        return Err(io_fail("write the backup", &shown, &e));
    }
    Ok(shown)
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
    fn ids_resolve_by_name_or_number() {
        assert_eq!(uid_of("root"), Some(0));
        assert_eq!(uid_of("4242"), Some(4242));
        assert_eq!(uid_of("no-such-user-xyz"), None);
        assert_eq!(user_name(0), "root");
        assert_eq!(group_name(4_000_000), "4000000");
    }

    fn copy(content: &str, dest: &Path, extra: serde_json::Value) -> Outcome {
        let mut args = serde_json::json!({"content": content, "dest": dest});
        for (k, v) in extra.as_object().unwrap() {
            args[k] = v.clone();
        }
        crate::modules::run_for_test(
            "copy",
            args.as_object().unwrap(),
            &std::collections::BTreeMap::new(),
            &serde_json::json!({}),
            false,
        )
        .unwrap()
    }

    /// A user who owns the directory renames each temp file away as it appears and
    /// leaves a symlink to a root-only file in its place: root must never chown, chmod
    /// or write that file. (The old writer chowned the temp file by name to the
    /// replaced file's owner, the user, so the user got the victim.)
    #[test]
    fn a_temp_file_swapped_for_a_symlink_gets_no_chown_chmod_or_content() {
        let s = hostile::Scene::new("rustle-ta-race");
        let dest = s.home.join("conf");
        let swapper = s.swapper(&s.home, &[".rustle-tmp"]);
        // Big enough that writing and flushing it leaves the attacker time to act.
        let body = "x".repeat(256 * 1024);
        let mut failures = Vec::new();
        for i in 0..150 {
            // Each round replaces a file of the user's, as `template: dest=~alice/...` does.
            s.user_file(&dest, b"the user's file\n");
            let out = copy(
                &format!("{i}\n{body}"),
                &dest,
                serde_json::json!({"mode": "0640"}),
            );
            if out.failed {
                failures.push(out.msg.unwrap_or_default());
            }
        }
        let swapped = swapper.finish();
        assert!(
            swapped > 0,
            "the attacker never caught a temp file: nothing was tested"
        );
        s.victim_untouched();
        // Each swap caught is a clear failure naming what happened.
        assert!(!failures.is_empty(), "{swapped} swaps went unnoticed");
        for msg in &failures {
            assert!(msg.contains("was replaced while being written"), "{msg}");
        }
    }

    /// Backups have a predictable name (Ansible's: dest.<pid>.<time>~); a user who owns
    /// the directory plants symlinks under the next minutes' names. The backup must be
    /// a new file of its own, never written through them.
    #[test]
    fn a_backup_is_never_written_through_a_planted_symlink() {
        let s = hostile::Scene::new("rustle-ta-bak");
        let dest = s.home.join("profile");
        s.user_file(&dest, b"the user's content\n");
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let planted: Vec<PathBuf> = (now.saturating_sub(2)..now + 120)
            .map(|t| {
                let mut n = dest.as_os_str().to_os_string();
                n.push(format!(
                    ".{}.{}~",
                    std::process::id(),
                    crate::facts::utc_seconds(t, '@')
                ));
                PathBuf::from(n)
            })
            .collect();
        s.plant(&planted);
        let out = copy(
            "root's new content\n",
            &dest,
            serde_json::json!({"backup": true}),
        );
        assert!(out.changed && !out.failed, "{out:?}");
        s.victim_untouched();
        let b = PathBuf::from(out.data["backup_file"].as_str().unwrap());
        assert!(!planted.contains(&b), "{}", b.display());
        let m = fs::symlink_metadata(&b).unwrap();
        assert!(m.is_file(), "the backup is not a file of its own");
        assert_eq!(fs::read(&b).unwrap(), b"the user's content\n");
        assert_eq!((m.uid(), m.mode() & 0o7777), (s.user.uid, 0o644));
        // Still Ansible's name, with a counter.
        let name = b.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            name.starts_with(&format!("profile.{}.", std::process::id())) && name.ends_with('~'),
            "{name}"
        );
        assert_eq!(fs::read(&dest).unwrap(), b"root's new content\n");
    }
}

/// Real accounts and a real attacker for the tests of symlink-safe writes: a test user
/// who owns a directory root writes into, a root-only file for them to aim at, and a
/// process running as that user that swaps names for symlinks as fast as it can.
#[cfg(test)]
pub(crate) mod hostile {
    use std::fs;
    use std::io::{BufRead, BufReader};
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    use std::os::unix::process::CommandExt;
    use std::path::{Path, PathBuf};
    use std::process::{Child, Command, Stdio};

    /// Runs an account tool, retrying while a parallel test holds the passwd lock.
    fn account_tool(tool: &str, args: &[&str]) -> std::process::Output {
        for _ in 0..50 {
            let out = Command::new(tool).args(args).output().unwrap();
            let err = String::from_utf8_lossy(&out.stderr).to_lowercase();
            if out.status.success() || !err.contains("lock") {
                return out;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        panic!("{tool} {args:?}: the passwd lock stayed taken");
    }

    fn id_of(flag: &str, name: &str) -> u32 {
        let out = Command::new("id").args([flag, name]).output().unwrap();
        String::from_utf8(out.stdout)
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    }

    /// A real unprivileged account, removed when dropped.
    pub(crate) struct TestUser {
        pub name: String,
        pub uid: u32,
        pub gid: u32,
    }

    impl TestUser {
        pub(crate) fn create(name: &str) -> TestUser {
            let me = Command::new("id").arg("-u").output().unwrap();
            assert_eq!(
                String::from_utf8_lossy(&me.stdout).trim(),
                "0",
                "these tests play root against a local user: run them as root"
            );
            // Leftovers of a killed run.
            let _ = account_tool("userdel", &[name]);
            let out = account_tool("useradd", &["-M", "-U", "-s", "/bin/sh", name]);
            assert!(
                out.status.success(),
                "useradd {name}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            TestUser {
                name: name.to_string(),
                uid: id_of("-u", name),
                gid: id_of("-g", name),
            }
        }
    }

    impl Drop for TestUser {
        fn drop(&mut self) {
            let _ = account_tool("userdel", &[&self.name]);
        }
    }

    /// The scene: `base` (0755) holds `home`, owned by the test user, where root will
    /// write, and `vault` (root, 0700) with `victim`, a root-owned 0600 secret.
    pub(crate) struct Scene {
        pub user: TestUser,
        _base: tempfile::TempDir,
        pub home: PathBuf,
        pub victim: PathBuf,
        pub stop: PathBuf,
    }

    pub(crate) const SECRET: &[u8] = b"root's secret\n";

    impl Scene {
        pub(crate) fn new(user: &str) -> Scene {
            let user = TestUser::create(user);
            let base = tempfile::tempdir().unwrap();
            fs::set_permissions(base.path(), fs::Permissions::from_mode(0o755)).unwrap();
            let home = base.path().join("home");
            fs::create_dir(&home).unwrap();
            fs::set_permissions(&home, fs::Permissions::from_mode(0o755)).unwrap();
            std::os::unix::fs::chown(&home, Some(user.uid), Some(user.gid)).unwrap();
            let vault = base.path().join("vault");
            fs::create_dir(&vault).unwrap();
            fs::set_permissions(&vault, fs::Permissions::from_mode(0o700)).unwrap();
            let victim = vault.join("victim");
            fs::write(&victim, SECRET).unwrap();
            fs::set_permissions(&victim, fs::Permissions::from_mode(0o600)).unwrap();
            let stop = base.path().join("stop");
            Scene {
                user,
                home,
                victim,
                stop,
                _base: base,
            }
        }

        /// Runs a python snippet as the test user (argv: the snippet's arguments).
        pub(crate) fn as_user(&self, script: &str, args: &[&Path]) -> Child {
            Command::new("python3")
                .arg("-c")
                .arg(script)
                .args(args)
                .uid(self.user.uid)
                .gid(self.user.gid)
                .current_dir(&self.home)
                .stdout(Stdio::piped())
                .spawn()
                .unwrap()
        }

        /// Creates each of `paths` as the test user's symlink to the victim.
        pub(crate) fn plant(&self, paths: &[PathBuf]) {
            let mut args: Vec<&Path> = vec![&self.victim];
            args.extend(paths.iter().map(PathBuf::as_path));
            let status = self
                .as_user(
                    "import os,sys\nfor p in sys.argv[2:]: os.symlink(sys.argv[1], p)",
                    &args,
                )
                .wait()
                .unwrap();
            assert!(status.success(), "planting {paths:?}");
        }

        /// Makes `path` a regular file of the test user's with `content`.
        pub(crate) fn user_file(&self, path: &Path, content: &[u8]) {
            if fs::symlink_metadata(path).is_ok() {
                fs::remove_file(path).unwrap();
            }
            fs::write(path, content).unwrap();
            fs::set_permissions(path, fs::Permissions::from_mode(0o644)).unwrap();
            std::os::unix::fs::chown(path, Some(self.user.uid), Some(self.user.gid)).unwrap();
        }

        /// Starts the attacker: as the test user, it lists `dir` in a tight loop and
        /// swaps every entry whose name ends with one of `suffixes` (files or
        /// directories) for a symlink to the victim.
        pub(crate) fn swapper(&self, dir: &Path, suffixes: &[&str]) -> Swapper {
            self.swapper_to(dir, suffixes, &self.victim)
        }

        /// [`Scene::swapper`] with symlinks to `target` (e.g. the vault directory).
        pub(crate) fn swapper_to(&self, dir: &Path, suffixes: &[&str], target: &Path) -> Swapper {
            let mut args: Vec<&Path> = vec![dir, target, &self.stop];
            args.extend(suffixes.iter().map(Path::new));
            let mut child = self.as_user(SWAPPER, &args);
            let mut out = BufReader::new(child.stdout.take().unwrap());
            let mut line = String::new();
            out.read_line(&mut line).unwrap();
            assert_eq!(line.trim(), "ready", "the swapper did not start");
            Swapper {
                child,
                out,
                stop: self.stop.clone(),
            }
        }

        /// The root-only directory that holds the victim.
        pub(crate) fn vault(&self) -> &Path {
            self.victim.parent().unwrap()
        }

        /// Asserts the victim is as it was (content, owner and mode) and alone in the vault.
        pub(crate) fn victim_untouched(&self) {
            let names: Vec<_> = fs::read_dir(self.vault())
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .collect();
            assert_eq!(names, ["victim"], "something was written into the vault");
            let m = fs::symlink_metadata(&self.victim).unwrap();
            assert!(m.is_file(), "the victim was replaced");
            let now = fs::read(&self.victim).unwrap();
            assert!(
                now == SECRET,
                "the victim was written: it now holds {} bytes",
                now.len()
            );
            assert_eq!((m.uid(), m.gid()), (0, 0), "the victim was chowned");
            assert_eq!(m.mode() & 0o7777, 0o600, "the victim was chmodded");
        }
    }

    /// The attacker's loop; prints "ready", then at the end how many swaps it made.
    const SWAPPER: &str = r#"
import os, sys
d, victim, stop = sys.argv[1], sys.argv[2], sys.argv[3]
suffixes = tuple(sys.argv[4:])
swapped = 0
print("ready", flush=True)
while not os.path.exists(stop):
    try:
        names = os.listdir(d)
    except OSError:
        continue
    for n in names:
        if not n.endswith(suffixes) or n.startswith("moved-"):
            continue
        p = os.path.join(d, n)
        try:
            if os.path.islink(p):
                continue
            os.rename(p, os.path.join(d, "moved-%d" % swapped))
            os.symlink(victim, p)
            swapped += 1
        except OSError:
            pass
print(swapped, flush=True)
"#;

    /// A running attacker.
    pub(crate) struct Swapper {
        child: Child,
        out: BufReader<std::process::ChildStdout>,
        stop: PathBuf,
    }

    impl Swapper {
        /// Stops it and returns how many names it swapped.
        pub(crate) fn finish(mut self) -> u64 {
            fs::write(&self.stop, b"").unwrap();
            let mut line = String::new();
            self.out.read_line(&mut line).unwrap();
            self.child.wait().unwrap();
            let _ = fs::remove_file(&self.stop);
            line.trim().parse().unwrap()
        }
    }

    impl Drop for Swapper {
        fn drop(&mut self) {
            // After finish() the child is gone and this does nothing.
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
