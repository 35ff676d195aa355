//! The file module: make a path a file, directory, symlink or hard link, touch it or
//! remove it, and set its mode/owner/group, with ansible.builtin.file's semantics.
//!
//! Symbolic modes (`u=rwX,o-w`) apply to the path's current mode (`args::SymbolicMode`);
//! `modification_time`/`access_time` work with state=file, directory and touch (which
//! sets both to now unless told otherwise).
//!
//! Differences from Ansible, on purpose or for now: a relative `src` of a hard link is taken relative to the link's
//! directory (as for symlinks) rather than the process's working directory; `recurse`
//! does not descend into symlinked directories and sets no mode on symlinks; and when
//! `state=directory` creates missing parents, mode/owner/group go on the leaf only.

use super::fsutil::{self, Attrs, Changes, Step, fail, failed, io_fail, lstat};
use super::{Ctx, ModuleError, Outcome, args};
use crate::plan::Vars;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

const KNOWN: &[&str] = &[
    "path",
    "dest",
    "name",
    "state",
    "mode",
    "owner",
    "group",
    "recurse",
    "src",
    "force",
    "follow",
    "_diff_peek",
    "modification_time",
    "modification_time_format",
    "access_time",
    "access_time_format",
    "attributes",
    "attr",
];

/// What the task asks the path to be.
#[derive(Debug, Clone, Copy, PartialEq)]
enum State {
    File,
    Directory,
    Link,
    Hard,
    Absent,
    Touch,
}

impl State {
    fn parse(s: &str) -> Result<State, ModuleError> {
        Ok(match s {
            "file" => State::File,
            "directory" => State::Directory,
            "link" => State::Link,
            "hard" => State::Hard,
            "absent" => State::Absent,
            "touch" => State::Touch,
            other => {
                return Err(ModuleError::BadArgs(format!(
                    "argument 'state' must be one of file, directory, link, hard, absent, touch; got '{other}'"
                )));
            }
        })
    }
}

/// Everything the task said, checked.
struct Req {
    path: PathBuf,
    state: State,
    attrs: Attrs,
    recurse: bool,
    src: Option<String>,
    force: bool,
    follow: bool,
}

pub(super) fn run(a: &Vars, ctx: &Ctx<'_>) -> Result<Outcome, ModuleError> {
    fsutil::finish(run_inner(a, ctx))
}

fn run_inner(a: &Vars, ctx: &Ctx<'_>) -> Step<Outcome> {
    args::only(a, KNOWN)?;
    let path = match ["path", "dest", "name"]
        .iter()
        .find_map(|k| args::opt_str(a, k).transpose())
    {
        Some(p) => p?,
        None => {
            return Err(ModuleError::BadArgs("missing required argument 'path'".into()).into());
        }
    };
    if path.is_empty() {
        return Err(ModuleError::BadArgs("argument 'path' must not be empty".into()).into());
    }
    let path = PathBuf::from(path);
    // The action plugins' internal question (is the file binary?), answered before
    // anything else, as Ansible's module does.
    if a.get("_diff_peek").is_some_and(|v| !v.is_null()) {
        return Ok(Outcome::ok()
            .with("path", path.display().to_string())
            .with("appears_binary", appears_binary(&path)));
    }
    let recurse = args::bool_or(a, "recurse", false)?;
    let follow = args::bool_or(a, "follow", true)?;
    let force = args::bool_or(a, "force", false)?;
    let src = args::opt_str(a, "src")?;
    let mut prev = lstat(&path)?;
    let state = match args::opt_str(a, "state")? {
        Some(s) => State::parse(&s)?,
        // Ansible keeps what is there, and makes a plain file the default otherwise.
        None => match prev.as_ref().map(fsutil::state_name) {
            Some("directory") => State::Directory,
            Some("link") => State::Link,
            _ if recurse && prev.is_none() => State::Directory,
            _ => State::File,
        },
    };
    if recurse && state != State::Directory {
        return Err(
            // Ansible's words (the file target checks them).
            ModuleError::BadArgs("recurse option requires state to be 'directory'".into()).into(),
        );
    }
    if src.is_some() && !matches!(state, State::Link | State::Hard) {
        return Err(ModuleError::BadArgs(
            "src option requires state to be 'link' or 'hard'".into(),
        )
        .into());
    }
    // Ansible's main: a directory given as the path of anything but a symlink (or its
    // removal) means the entry named after `src` inside it (a hard link goes in there).
    let mut path = path;
    if !matches!(state, State::Link | State::Absent)
        && path.is_dir()
        && let Some(base) = src.as_deref().and_then(|s| Path::new(s).file_name())
    {
        path = path.join(base);
        prev = lstat(&path)?;
    }
    let req = Req {
        path,
        state,
        attrs: Attrs::from_args(a)?,
        recurse,
        src,
        force,
        follow,
    };
    let times = Times::from_args(a, req.state)?;
    let prev_state = prev.as_ref().map_or("absent", fsutil::state_name);
    // What a directory about to be removed holds, for the diff (walked before it goes).
    let path_content =
        (req.state == State::Absent && prev_state == "directory").then(|| walk(&req.path));
    let mut changes = Changes::default();
    let mut out = match req.state {
        State::Absent => absent(&req, prev.as_ref(), ctx, &mut changes)?,
        State::File => file(&req, prev_state, ctx, &mut changes)?,
        State::Directory => directory(&req, prev_state, ctx, &mut changes)?,
        State::Touch => touch(&req, prev_state, ctx, &mut changes)?,
        State::Link => link(&req, prev.as_ref(), ctx, &mut changes)?,
        State::Hard => hard(&req, prev.as_ref(), ctx, &mut changes)?,
    };
    let mut time_changes = Vec::new();
    // A path check mode did not create has no times to compare (Ansible's touch
    // returns before looking at them).
    if !out.failed && times.wanted() && fs::metadata(&req.path).is_ok() {
        time_changes = times.apply(&req.path, ctx.check_mode)?;
    }
    out.changed = out.changed || !changes.is_empty() || !time_changes.is_empty();
    // Ansible's file module returns its diff always (not only in diff mode), except for
    // a path already absent.
    if !(out.failed || req.state == State::Absent && prev_state == "absent") {
        let diff = ansible_diff(&req, prev_state, &changes, &time_changes, path_content);
        out.data.insert("diff".into(), diff);
    }
    if ctx.diff_mode && out.changed {
        out.diff.push(changes.to_diff(&req.path));
    }
    // Ansible's file module in check mode warns of an owner or group nobody has (an
    // earlier checked task may create it).
    if ctx.check_mode
        && req.state != State::Absent
        && let Some(why) = &req.attrs.unknown
    {
        let (what, rest) = match why.split_once("failed to look up ") {
            Some((_, rest)) if rest.starts_with("group ") => ("group", rest),
            Some((_, rest)) => ("user", rest),
            None => ("user", why.as_str()),
        };
        out = out.warn(format!(
            "failed to look up {rest}. Create {what} up to this point in real play"
        ));
    }
    Ok(out)
}

/// A requested time: keep it, the current time, or a given instant (seconds).
#[derive(Debug, Clone, Copy, PartialEq)]
enum When {
    Preserve,
    Now,
    At(i64),
}

/// `modification_time` and `access_time`, as Ansible reads them.
struct Times {
    mtime: When,
    atime: When,
}

impl Times {
    /// Reads the times (`preserve`, `now`, or a time in `*_time_format`, by default
    /// `%Y%m%d%H%M.%S`, in the host's zone). A time not given is `now` for touch and
    /// kept for the other states, as Ansible's `keep_backward_compatibility_on_timestamps`
    /// decides.
    fn from_args(a: &Vars, state: State) -> Step<Times> {
        let unset = if state == State::Touch {
            When::Now
        } else {
            When::Preserve
        };
        let one = |key: &str, fmt_key: &str| -> Step<When> {
            let fmt = args::opt_str(a, fmt_key)?.unwrap_or_else(|| "%Y%m%d%H%M.%S".into());
            Ok(match args::opt_str(a, key)?.as_deref() {
                None => unset,
                Some("preserve") => When::Preserve,
                Some("now") => When::Now,
                Some(text) => When::At(crate::filters::datetime::local_epoch(text, &fmt).map_err(
                    |e| {
                        ModuleError::BadArgs(format!(
                            "argument '{key}': '{text}' does not match the format '{fmt}': {e}"
                        ))
                    },
                )?),
            })
        };
        let t = Times {
            mtime: one("modification_time", "modification_time_format")?,
            atime: one("access_time", "access_time_format")?,
        };
        if t.wanted() && !matches!(state, State::File | State::Directory | State::Touch) {
            return Err(ModuleError::BadArgs(
                "modification_time and access_time are supported by this runner with state=file, directory or touch".into(),
            )
            .into());
        }
        Ok(t)
    }

    fn wanted(&self) -> bool {
        self.mtime != When::Preserve || self.atime != When::Preserve
    }

    /// Sets the times that differ (not in check mode); what changed, as Ansible's
    /// `update_timestamp_for_file` puts it in the diff: `(key, before, after)` seconds.
    fn apply(&self, path: &Path, check: bool) -> Step<Vec<(&'static str, f64, f64)>> {
        let m = fs::metadata(path).map_err(|e| io_fail("inspect", path, &e))?;
        let secs = |s: i64, ns: i64| s as f64 + ns as f64 / 1e9;
        let (prev_m, prev_a) = (
            secs(m.mtime(), m.mtime_nsec()),
            secs(m.atime(), m.atime_nsec()),
        );
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        let target = |w: When, prev: f64| match w {
            When::Preserve => prev,
            When::Now => now,
            When::At(t) => t as f64,
        };
        let (new_m, new_a) = (target(self.mtime, prev_m), target(self.atime, prev_a));
        let mut out = Vec::new();
        if new_m != prev_m {
            out.push(("mtime", prev_m, new_m));
        }
        if new_a != prev_a {
            out.push(("atime", prev_a, new_a));
        }
        if !out.is_empty() && !check {
            let at =
                |t: f64| std::time::UNIX_EPOCH + std::time::Duration::from_secs_f64(t.max(0.0));
            fs::File::open(path)
                .and_then(|f| {
                    f.set_times(
                        fs::FileTimes::new()
                            .set_modified(at(new_m))
                            .set_accessed(at(new_a)),
                    )
                })
                .map_err(|e| io_fail("update the times of", path, &e))?;
        }
        Ok(out)
    }
}

/// Whether the first 8 KiB of `path` hold a NUL byte; an unreadable file counts as text.
fn appears_binary(path: &Path) -> bool {
    use std::io::Read as _;
    let mut head = Vec::new();
    fs::File::open(path)
        .and_then(|f| f.take(8192).read_to_end(&mut head))
        .is_ok_and(|_| head.contains(&0))
}

/// Ansible's name for a requested state.
fn state_str(s: State) -> &'static str {
    match s {
        State::File => "file",
        State::Directory => "directory",
        State::Link => "link",
        State::Hard => "hard",
        State::Absent => "absent",
        State::Touch => "touch",
    }
}

/// The file module's diff as Ansible shapes it (`initial_diff` and what the steps add):
/// `before`/`after` mappings holding the path, the state when it changes (with what a
/// removed directory held), and each attribute, link target or time that changes.
fn ansible_diff(
    req: &Req,
    prev_state: &str,
    changes: &Changes,
    times: &[(&'static str, f64, f64)],
    path_content: Option<serde_json::Value>,
) -> serde_json::Value {
    use serde_json::{Map, Value};
    let path = Value::from(req.path.display().to_string());
    let mut before = Map::new();
    let mut after = Map::new();
    before.insert("path".into(), path.clone());
    after.insert("path".into(), path);
    let state = state_str(req.state);
    if prev_state != state {
        before.insert("state".into(), prev_state.into());
        after.insert("state".into(), state.into());
        if let Some(content) = path_content {
            before.insert("path_content".into(), content);
        }
    }
    for (key, b, a) in changes.pairs().filter(|(k, _, _)| *k != "state") {
        before.insert(key.into(), b.into());
        after.insert(key.into(), a.into());
    }
    for (key, b, a) in times {
        before.insert((*key).into(), (*b).into());
        after.insert((*key).into(), (*a).into());
    }
    let mut d = Map::new();
    d.insert("before".into(), Value::Object(before));
    d.insert("after".into(), Value::Object(after));
    Value::Object(d)
}

/// The directories and files under `dir`, as Python's `os.walk` lists them (top down,
/// a directory's subdirectories and files before theirs; links not followed).
fn walk(dir: &Path) -> serde_json::Value {
    let mut dirs = Vec::new();
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        let Ok(entries) = fs::read_dir(&d) else {
            continue;
        };
        let mut subdirs = Vec::new();
        for e in entries.filter_map(Result::ok) {
            let p = e.path();
            let is_dir = e.file_type().is_ok_and(|t| t.is_dir());
            // os.walk names a link to a directory among the directories, not descending.
            if is_dir || (p.is_dir() && e.file_type().is_ok_and(|t| t.is_symlink())) {
                dirs.push(p.display().to_string());
                if is_dir {
                    subdirs.push(p);
                }
            } else {
                files.push(p.display().to_string());
            }
        }
        pending.extend(subdirs.into_iter().rev());
    }
    serde_json::json!({"directories": dirs, "files": files})
}

/// Registers the path's fields after the change; in check mode, for a path that does
/// not exist yet, the state it would have.
fn describe(req: &Req, out: Outcome, would_be: &str, ctx: &Ctx<'_>) -> Outcome {
    let key = if matches!(req.state, State::Link | State::Hard) {
        "dest"
    } else {
        "path"
    };
    let mut out = out.with(key, req.path.display().to_string());
    if let Some(src) = &req.src {
        out = out.with("src", src.as_str());
    }
    if ctx.check_mode && fs::symlink_metadata(&req.path).is_err() {
        out = out.with("state", would_be);
        let is_dir = would_be == "directory";
        let base = fsutil::default_file_mode() | if is_dir { 0o111 } else { 0 };
        if let Some(m) = req.attrs.mode_for(base, is_dir) {
            out = out.with("mode", args::mode_string(m));
        }
        return out;
    }
    // Symlinks report their own state, with the target's attributes when followed.
    fsutil::add_path_info(out, &req.path, req.follow)
}

/// Sets the requested attributes on the path as it is (no other change) and
/// describes it: the end of every state that finds the path already right.
fn settle(req: &Req, ctx: &Ctx<'_>, changes: &mut Changes, would_be: &str) -> Step<Outcome> {
    changes.extend(fsutil::apply_attrs(
        &req.path,
        &req.attrs,
        req.follow,
        ctx.check_mode,
    )?);
    Ok(describe(req, Outcome::ok(), would_be, ctx))
}

fn absent(
    req: &Req,
    prev: Option<&fs::Metadata>,
    ctx: &Ctx<'_>,
    changes: &mut Changes,
) -> Step<Outcome> {
    let out = Outcome::ok().with("path", req.path.display().to_string());
    let Some(m) = prev else {
        return Ok(out.with("state", "absent"));
    };
    changes.push("state", fsutil::state_name(m).into(), "absent".into());
    if !ctx.check_mode {
        let r = if m.is_dir() {
            fs::remove_dir_all(&req.path)
        } else {
            fs::remove_file(&req.path)
        };
        r.map_err(|e| io_fail("remove", &req.path, &e))?;
    }
    Ok(out.with("state", "absent"))
}

fn file(req: &Req, prev_state: &str, ctx: &Ctx<'_>, changes: &mut Changes) -> Step<Outcome> {
    // Through a symlink (follow), the target must be the file.
    let effective = if prev_state == "link" && req.follow {
        fs::metadata(&req.path).map_or("absent", |m| if m.is_dir() { "directory" } else { "file" })
    } else {
        prev_state
    };
    if !matches!(effective, "file" | "hard") {
        return Err(failed(
            Outcome::fail(format!(
                "file ({}) is {effective}, cannot continue",
                req.path.display()
            ))
            .with("path", req.path.display().to_string())
            .with("state", effective),
        ));
    }
    settle(req, ctx, changes, "file")
}

fn directory(req: &Req, prev_state: &str, ctx: &Ctx<'_>, changes: &mut Changes) -> Step<Outcome> {
    let is_dir = match prev_state {
        "directory" => true,
        "link" if req.follow => req.path.is_dir(),
        _ => false,
    };
    if prev_state == "absent" {
        changes.push("state", "absent".into(), "directory".into());
        if ctx.check_mode {
            return Ok(describe(req, Outcome::changed(true), "directory", ctx));
        }
        fs::create_dir_all(&req.path).map_err(|e| io_fail("create directory", &req.path, &e))?;
    } else if !is_dir {
        return Err(failed(
            Outcome::fail(format!(
                "{} already exists as a {prev_state}",
                req.path.display()
            ))
            .with("path", req.path.display().to_string())
            .with("state", prev_state),
        ));
    }
    let leaf = fsutil::apply_attrs(&req.path, &req.attrs, req.follow, ctx.check_mode)?;
    if prev_state != "absent" {
        changes.extend(leaf);
    }
    let mut out = Outcome::ok();
    if req.recurse && recurse_attrs(&req.path, &req.attrs, ctx.check_mode)? {
        out.changed = true;
    }
    Ok(describe(req, out, "directory", ctx))
}

/// Applies attributes to everything below `dir`, without following symlinks (a link
/// gets owner/group only). True when anything changed or would change.
fn recurse_attrs(dir: &Path, attrs: &Attrs, check: bool) -> Step<bool> {
    let mut changed = false;
    let entries = fs::read_dir(dir).map_err(|e| io_fail("list", dir, &e))?;
    for entry in entries {
        let entry = entry.map_err(|e| io_fail("list", dir, &e))?;
        let p = entry.path();
        let ft = entry.file_type().map_err(|e| io_fail("inspect", &p, &e))?;
        changed |= !fsutil::apply_attrs(&p, attrs, false, check)?.is_empty();
        if ft.is_dir() {
            changed |= recurse_attrs(&p, attrs, check)?;
        }
    }
    Ok(changed)
}

fn touch(req: &Req, prev_state: &str, ctx: &Ctx<'_>, changes: &mut Changes) -> Step<Outcome> {
    // Ansible's touch changes what it creates; an existing path changes when its
    // attributes or times do (`Times::apply`, which sets both to now unless told).
    if prev_state == "absent" {
        changes.push("state", prev_state.into(), "touch".into());
        if ctx.check_mode {
            return Ok(describe(req, Outcome::changed(true), "file", ctx));
        }
        // O_EXCL: a name planted after the check (a symlink to a file root must not
        // create) makes this fail instead of being followed.
        fs::File::options()
            .write(true)
            .create_new(true)
            .open(&req.path)
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::AlreadyExists => failed(Outcome::fail(format!(
                    "{} appeared while it was being touched (not followed)",
                    req.path.display()
                ))),
                _ => io_fail("create", &req.path, &e),
            })?;
    }
    settle(req, ctx, changes, "file")
}

/// `src` as seen from the link's directory (how the kernel resolves a relative link).
fn resolve_src(path: &Path, src: &str) -> PathBuf {
    let src = Path::new(src);
    if src.is_absolute() {
        return src.to_path_buf();
    }
    path.parent()
        .map_or_else(|| src.to_path_buf(), |p| p.join(src))
}

fn link(
    req: &Req,
    prev: Option<&fs::Metadata>,
    ctx: &Ctx<'_>,
    changes: &mut Changes,
) -> Step<Outcome> {
    let prev_state = prev.map_or("absent", fsutil::state_name);
    let Some(src) = req.src.as_deref() else {
        // An existing link without src: keep it and just set attributes.
        if prev_state == "link" {
            return settle(req, ctx, changes, "link");
        }
        return Err(
            ModuleError::BadArgs("src is required for creating new symlinks".into()).into(),
        );
    };
    let abs_src = resolve_src(&req.path, src);
    if !req.force && fs::symlink_metadata(&abs_src).is_err() {
        return fail(format!(
            "src file does not exist, use \"force=yes\" if you really want to create the link: {}",
            abs_src.display()
        ));
    }
    let replace = match prev_state {
        "absent" => false,
        "link" => {
            let current = fs::read_link(&req.path).map_err(|e| io_fail("read", &req.path, &e))?;
            if current == Path::new(src) {
                return settle(req, ctx, changes, "link");
            }
            changes.push("src", current.display().to_string(), src.into());
            true
        }
        other => {
            if !req.force {
                return fail(format!(
                    "refusing to convert from {other} to symlink for {}",
                    req.path.display()
                ));
            }
            if other == "directory" && fs::read_dir(&req.path).is_ok_and(|mut d| d.next().is_some())
            {
                return fail(format!(
                    "the directory {} is not empty, refusing to convert it",
                    req.path.display()
                ));
            }
            true
        }
    };
    if prev_state != "link" {
        changes.push("state", prev_state.into(), "link".into());
    }
    if !ctx.check_mode {
        if prev_state == "directory" {
            fs::remove_dir(&req.path).map_err(|e| io_fail("remove", &req.path, &e))?;
        }
        place(&req.path, replace && prev_state != "directory", |p| {
            std::os::unix::fs::symlink(src, p)
        })?;
        fsutil::apply_attrs(&req.path, &req.attrs, req.follow, false)?;
    }
    Ok(describe(req, Outcome::changed(true), "link", ctx))
}

/// Creates a link at `path` with `make`; when replacing something, makes it under a
/// temp name first and renames it over, so the path never goes missing.
fn place(path: &Path, replace: bool, make: impl Fn(&Path) -> std::io::Result<()>) -> Step<()> {
    if !replace {
        return make(path).map_err(|e| io_fail("create link", path, &e));
    }
    let base = path
        .file_name()
        .map_or_else(String::new, |b| b.to_string_lossy().into_owned());
    let tmp = path.with_file_name(format!(".{base}.{}.rustle-link", crate::random::tag()));
    make(&tmp).map_err(|e| io_fail("create link", &tmp, &e))?;
    fs::rename(&tmp, path).map_err(|e| {
        let _ = fs::remove_file(&tmp);
        io_fail("replace", path, &e)
    })
}

fn hard(
    req: &Req,
    prev: Option<&fs::Metadata>,
    ctx: &Ctx<'_>,
    changes: &mut Changes,
) -> Step<Outcome> {
    let Some(src) = req.src.as_deref() else {
        return Err(
            ModuleError::BadArgs("src is required for creating new hardlinks".into()).into(),
        );
    };
    let abs_src = resolve_src(&req.path, src);
    let Ok(src_meta) = fs::metadata(&abs_src) else {
        return fail(format!("src does not exist: {}", abs_src.display()));
    };
    let prev_state = prev.map_or("absent", fsutil::state_name);
    let replace = match prev {
        None => false,
        Some(m) if m.dev() == src_meta.dev() && m.ino() == src_meta.ino() => {
            changes.extend(fsutil::apply_attrs(
                &req.path,
                &req.attrs,
                true,
                ctx.check_mode,
            )?);
            return Ok(describe(req, Outcome::ok(), "hard", ctx));
        }
        Some(_) => match prev_state {
            "link" | "hard" => true,
            "file" if req.force => true,
            other => {
                return fail(format!(
                    "Cannot link, {other} exists at destination: {}",
                    req.path.display()
                ));
            }
        },
    };
    changes.push("state", prev_state.into(), "hard".into());
    if !ctx.check_mode {
        place(&req.path, replace, |p| fs::hard_link(&abs_src, p))?;
        fsutil::apply_attrs(&req.path, &req.attrs, true, false)?;
    }
    Ok(describe(req, Outcome::changed(true), "hard", ctx))
}

#[cfg(test)]
mod tests {
    use super::super::{ModuleError, Outcome};

    use serde_json::{Value, json};

    use std::fs;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    use std::path::Path;

    /// Runs the file module with `args` (`{p}` in strings replaced by the temp dir).
    fn check(dir: &Path, args: Value, check_mode: bool) -> Result<Outcome, ModuleError> {
        crate::modules::run_in_dir_for_test("file", dir, &args, check_mode)
    }

    /// An owner or group nobody has: in check mode a path a task would create is a
    /// change (the file module warns), an existing one fails; a real run fails. What
    /// ansible-core 2.18.19 does with the same tasks.
    #[test]
    fn an_unknown_owner_is_a_change_in_check_mode_where_the_path_is_new() {
        let t = tempfile::tempdir().unwrap();
        fs::write(t.path().join("exists"), "").unwrap();
        let run = |module: &str, args: Value, check_mode: bool| {
            crate::modules::run_in_dir_for_test(module, t.path(), &args, check_mode).unwrap()
        };
        let cases = [
            (
                "file",
                json!({"path": "{p}/newdir", "state": "directory", "owner": "nosuchuser"}),
            ),
            (
                "copy",
                json!({"content": "x\n", "dest": "{p}/new", "owner": "nosuchuser"}),
            ),
            (
                "lineinfile",
                json!({"path": "{p}/newl", "line": "x", "create": true, "group": "nosuchgroup"}),
            ),
        ];
        for (module, args) in &cases {
            let o = run(module, args.clone(), true);
            assert!(o.changed && !o.failed, "{module}: {o:?}");
        }
        let warned = run("file", cases[0].1.clone(), true);
        assert_eq!(
            warned.data["warnings"][0],
            "failed to look up user nosuchuser. Create user up to this point in real play"
        );
        for (module, args) in [
            ("file", json!({"path": "{p}/exists", "owner": "nosuchuser"})),
            (
                "copy",
                json!({"content": "", "dest": "{p}/exists", "owner": "nosuchuser"}),
            ),
        ] {
            let o = run(module, args, true);
            assert!(o.failed, "{module}: {o:?}");
            assert_eq!(
                o.msg.as_deref(),
                Some("chown failed: failed to look up user nosuchuser")
            );
        }
        for (module, args) in &cases {
            let o = run(module, args.clone(), false);
            assert!(o.failed, "{module}: {o:?}");
            assert!(
                o.msg
                    .unwrap()
                    .ends_with("failed to look up user nosuchuser")
                    || module == &"lineinfile"
            );
        }
        assert!(
            !t.path().join("new").exists(),
            "a copy that cannot be owned is not written"
        );
    }

    #[test]
    fn diff_peek_says_whether_the_file_looks_binary_and_changes_nothing() {
        let t = tempfile::tempdir().unwrap();
        fs::write(t.path().join("text"), "hello\n").unwrap();
        fs::write(t.path().join("bin"), b"a\0b").unwrap();
        let text = check(
            t.path(),
            json!({"path": "{p}/text", "_diff_peek": true}),
            false,
        )
        .unwrap();
        assert_eq!(text.data["appears_binary"], false);
        assert!(!text.changed && text.data.get("diff").is_none());
        let bin = check(
            t.path(),
            json!({"path": "{p}/bin", "_diff_peek": true}),
            false,
        )
        .unwrap();
        assert_eq!(bin.data["appears_binary"], true);
    }

    /// The file target checks Ansible's words for `src` without a link state, and for
    /// a link without `src`.
    #[test]
    fn src_without_a_link_state_fails_with_ansibles_message() {
        let t = tempfile::tempdir().unwrap();
        let r = check(t.path(), json!({"path": "{p}/l", "state": "link"}), false);
        assert!(
            matches!(&r, Err(ModuleError::BadArgs(m)) if m.contains("src is required for creating new symlinks")),
            "{r:?}"
        );
        let r = check(t.path(), json!({"path": "{p}/l", "src": "{p}/x"}), false);
        assert!(
            matches!(&r, Err(ModuleError::BadArgs(m)) if m.contains("src option requires state to be 'link' or 'hard'")),
            "{r:?}"
        );
    }

    /// The file target sets `mode: o=rwXt` (it was refused: symbolic modes).
    #[test]
    fn symbolic_modes_change_the_current_mode() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path().join("d");
        fs::create_dir(&d).unwrap();
        fs::set_permissions(&d, fs::Permissions::from_mode(0o750)).unwrap();
        let out = check(t.path(), json!({"path": "{p}/d", "mode": "o=rwXt"}), false).unwrap();
        assert!(out.changed, "{out:?}");
        assert_eq!(mode_of(&d), 0o1757);
        let again = check(t.path(), json!({"path": "{p}/d", "mode": "o=rwXt"}), false).unwrap();
        assert!(!again.changed);
    }

    /// The file target sets `modification_time` in check mode (changed, nothing
    /// touched), for real (changed, the diff has `mtime`), and again (unchanged, the
    /// diff holds the path only).
    #[test]
    fn modification_time_is_set_once_and_reported_in_the_diff() {
        let t = tempfile::tempdir().unwrap();
        let f = t.path().join("f");
        fs::write(&f, "x").unwrap();
        let before = fs::metadata(&f).unwrap().mtime();
        let args = json!({"path": "{p}/f", "modification_time": "202202081414.00"});
        let dry = check(t.path(), args.clone(), true).unwrap();
        assert!(dry.changed);
        assert_eq!(fs::metadata(&f).unwrap().mtime(), before);
        assert!(dry.data["diff"]["after"]["mtime"].is_number());
        let real = check(t.path(), args.clone(), false).unwrap();
        assert!(real.changed);
        assert_ne!(fs::metadata(&f).unwrap().mtime(), before);
        let again = check(t.path(), args, false).unwrap();
        assert!(!again.changed, "{again:?}");
        assert_eq!(again.data["diff"]["after"].as_object().unwrap().len(), 1);
        let bad = check(
            t.path(),
            json!({"path": "{p}/f", "access_time": "yesterday"}),
            false,
        );
        assert!(matches!(bad, Err(ModuleError::BadArgs(m)) if m.contains("access_time")));
    }

    /// The file target reads `diff.before.path_content`, `diff.before.src` and
    /// `diff.after | length`: the module's diff is Ansible's mappings, always there.
    #[test]
    fn the_diff_is_ansibles_before_and_after_mappings() {
        let t = tempfile::tempdir().unwrap();
        let p = |n: &str| t.path().join(n).display().to_string();
        fs::create_dir_all(t.path().join("d/sub")).unwrap();
        fs::write(t.path().join("d/sub/f"), "x").unwrap();
        let gone = check(t.path(), json!({"path": "{p}/d", "state": "absent"}), true).unwrap();
        let before = &gone.data["diff"]["before"];
        assert_eq!(before["state"], "directory");
        assert_eq!(before["path_content"]["directories"], json!([p("d/sub")]));
        assert_eq!(before["path_content"]["files"], json!([p("d/sub/f")]));
        assert_eq!(
            gone.data["diff"]["after"],
            json!({"path": p("d"), "state": "absent"})
        );
        let none = check(
            t.path(),
            json!({"path": "{p}/none", "state": "absent"}),
            false,
        )
        .unwrap();
        assert!(none.data.get("diff").is_none());

        fs::write(t.path().join("a"), "a").unwrap();
        fs::write(t.path().join("b"), "b").unwrap();
        check(
            t.path(),
            json!({"path": "{p}/l", "src": "{p}/a", "state": "link"}),
            false,
        )
        .unwrap();
        let moved = check(
            t.path(),
            json!({"path": "{p}/l", "src": "b", "state": "link", "force": true}),
            false,
        )
        .unwrap();
        assert_eq!(moved.data["diff"]["before"]["src"], p("a"));
        assert_eq!(moved.data["diff"]["after"]["src"], "b");
        let same = check(t.path(), json!({"path": "{p}/a", "state": "file"}), false).unwrap();
        assert_eq!(same.data["diff"]["after"], json!({"path": p("a")}));
    }

    fn mode_of(p: &Path) -> u32 {
        fs::metadata(p).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn directory_creates_parents_sets_leaf_mode_and_is_idempotent() {
        let t = tempfile::tempdir().unwrap();
        let args = json!({"path": "{p}/a/b/c", "state": "directory", "mode": "0750"});
        let dry = check(t.path(), args.clone(), true).unwrap();
        assert!(dry.changed && !dry.failed);
        assert!(!t.path().join("a").exists(), "check mode created something");
        assert!(dry.diff[0].before.contains("state: absent"));
        assert!(dry.diff[0].after.contains("state: directory"));

        let first = check(t.path(), args.clone(), false).unwrap();
        assert!(first.changed, "{first:?}");
        assert_eq!(mode_of(&t.path().join("a/b/c")), 0o750);
        assert_eq!(first.data["mode"], "0750");
        assert_eq!(first.data["state"], "directory");
        let second = check(t.path(), args, false).unwrap();
        assert!(!second.changed && second.diff.is_empty(), "{second:?}");
    }

    #[test]
    fn mode_changes_are_reported_in_diff_and_check_mode_leaves_them() {
        let t = tempfile::tempdir().unwrap();
        let f = t.path().join("f");
        fs::write(&f, "x").unwrap();
        fs::set_permissions(&f, fs::Permissions::from_mode(0o600)).unwrap();
        let args = json!({"path": "{p}/f", "mode": "0644"});
        let dry = check(t.path(), args.clone(), true).unwrap();
        assert!(dry.changed);
        assert_eq!(mode_of(&f), 0o600);
        assert!(dry.diff[0].before.contains("mode: 0600"));
        assert!(dry.diff[0].after.contains("mode: 0644"));
        assert!(check(t.path(), args.clone(), false).unwrap().changed);
        assert_eq!(mode_of(&f), 0o644);
        assert!(!check(t.path(), args, false).unwrap().changed);
    }

    #[test]
    fn state_file_on_missing_path_fails_like_ansible() {
        let t = tempfile::tempdir().unwrap();
        let out = check(
            t.path(),
            json!({"path": "{p}/nope", "state": "file"}),
            false,
        )
        .unwrap();
        assert!(out.failed);
        let msg = out.msg.unwrap();
        assert_eq!(
            msg,
            format!(
                "file ({}/nope) is absent, cannot continue",
                t.path().display()
            )
        );
        let dir = check(t.path(), json!({"path": "{p}", "state": "file"}), false).unwrap();
        assert!(dir.failed && dir.msg.unwrap().contains("is directory"));
    }

    #[test]
    fn absent_removes_trees_once() {
        let t = tempfile::tempdir().unwrap();
        fs::create_dir_all(t.path().join("d/e")).unwrap();
        fs::write(t.path().join("d/e/f"), "x").unwrap();
        let args = json!({"path": "{p}/d", "state": "absent"});
        assert!(check(t.path(), args.clone(), true).unwrap().changed);
        assert!(t.path().join("d/e/f").exists());
        let out = check(t.path(), args.clone(), false).unwrap();
        assert!(out.changed && out.diff[0].after.contains("state: absent"));
        assert!(!t.path().join("d").exists());
        assert!(!check(t.path(), args, false).unwrap().changed);
    }

    #[test]
    fn touch_creates_then_changes_every_time() {
        let t = tempfile::tempdir().unwrap();
        let f = t.path().join("t");
        let args = json!({"path": "{p}/t", "state": "touch", "mode": "0640"});
        assert!(check(t.path(), args.clone(), true).unwrap().changed);
        assert!(!f.exists());
        assert!(check(t.path(), args.clone(), false).unwrap().changed);
        assert_eq!(mode_of(&f), 0o640);
        let old = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1000);
        fs::File::options()
            .write(true)
            .open(&f)
            .unwrap()
            .set_modified(old)
            .unwrap();
        assert!(check(t.path(), args, false).unwrap().changed);
        assert!(fs::metadata(&f).unwrap().modified().unwrap() > old);
    }

    #[test]
    fn touch_never_follows_a_symlink_planted_after_its_check() {
        // Another user keeps planting `t -> victim` where root touches `t` (absent when
        // checked): the file must be created by name or the task fail, never `victim`.
        use std::sync::atomic::{AtomicBool, Ordering};
        let t = tempfile::tempdir().unwrap();
        let victim = t.path().join("victim");
        let path = t.path().join("t");
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let planter = {
            let (stop, victim, path) = (stop.clone(), victim.clone(), path.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let _ = std::os::unix::fs::symlink(&victim, &path);
                    let _ = fs::remove_file(&path);
                }
            })
        };
        let args = json!({"path": "{p}/t", "state": "touch"});
        for _ in 0..3000 {
            let _ = check(t.path(), args.clone(), false);
            let _ = fs::remove_file(&path);
            if victim.exists() {
                break;
            }
        }
        stop.store(true, Ordering::Relaxed);
        planter.join().unwrap();
        assert!(!victim.exists(), "touch followed a planted symlink");
    }

    #[test]
    fn symlinks_are_created_retargeted_and_guarded() {
        let t = tempfile::tempdir().unwrap();
        fs::write(t.path().join("target"), "x").unwrap();
        fs::write(t.path().join("other"), "y").unwrap();
        let l = t.path().join("l");
        let args = json!({"path": "{p}/l", "state": "link", "src": "target"});
        assert!(check(t.path(), args.clone(), true).unwrap().changed);
        assert!(fs::symlink_metadata(&l).is_err());
        let out = check(t.path(), args.clone(), false).unwrap();
        assert!(out.changed);
        assert_eq!(out.data["state"], "link");
        assert_eq!(fs::read_link(&l).unwrap(), Path::new("target"));
        assert!(!check(t.path(), args, false).unwrap().changed);

        let retarget = json!({"path": "{p}/l", "state": "link", "src": "other"});
        assert!(check(t.path(), retarget, false).unwrap().changed);
        assert_eq!(fs::read_to_string(&l).unwrap(), "y");

        // A missing target needs force; a regular file is not replaced without it.
        let dangling = json!({"path": "{p}/d", "state": "link", "src": "missing"});
        let out = check(t.path(), dangling, false).unwrap();
        assert!(out.failed && out.msg.unwrap().contains("src file does not exist"));
        let over_file = json!({"path": "{p}/other", "state": "link", "src": "target"});
        let out = check(t.path(), over_file.clone(), false).unwrap();
        assert!(out.failed && out.msg.unwrap().contains("refusing to convert from file"));
        let mut forced = over_file;
        forced["force"] = json!(true);
        assert!(check(t.path(), forced, false).unwrap().changed);
        assert!(
            fs::symlink_metadata(t.path().join("other"))
                .unwrap()
                .file_type()
                .is_symlink()
        );
    }

    #[test]
    fn hard_links_share_the_inode() {
        let t = tempfile::tempdir().unwrap();
        fs::write(t.path().join("src"), "x").unwrap();
        let args = json!({"path": "{p}/h", "state": "hard", "src": "{p}/src"});
        assert!(check(t.path(), args.clone(), false).unwrap().changed);
        let a = fs::metadata(t.path().join("src")).unwrap();
        let b = fs::metadata(t.path().join("h")).unwrap();
        assert_eq!(a.ino(), b.ino());
        assert!(!check(t.path(), args, false).unwrap().changed);
        let missing = json!({"path": "{p}/h2", "state": "hard", "src": "{p}/none"});
        assert!(
            check(t.path(), missing, false)
                .unwrap()
                .msg
                .unwrap()
                .contains("src does not exist")
        );
    }

    #[test]
    fn recurse_sets_mode_below() {
        let t = tempfile::tempdir().unwrap();
        fs::create_dir_all(t.path().join("r/s")).unwrap();
        fs::write(t.path().join("r/s/f"), "x").unwrap();
        let args = json!({"path": "{p}/r", "state": "directory", "mode": "0700", "recurse": true});
        assert!(check(t.path(), args.clone(), false).unwrap().changed);
        assert_eq!(mode_of(&t.path().join("r/s/f")), 0o700);
        assert!(!check(t.path(), args, false).unwrap().changed);
    }

    #[test]
    fn owner_and_group_by_name_or_number() {
        let t = tempfile::tempdir().unwrap();
        let f = t.path().join("o");
        fs::write(&f, "x").unwrap();
        let me = fs::metadata(&f).unwrap();
        // Our own ids never need a change.
        let same =
            json!({"path": "{p}/o", "owner": me.uid().to_string(), "group": me.gid().to_string()});
        assert!(!check(t.path(), same, false).unwrap().changed);
        let unknown = json!({"path": "{p}/o", "owner": "no-such-user-xyz"});
        let out = check(t.path(), unknown, false).unwrap();
        assert!(out.failed && out.msg.unwrap().contains("no-such-user-xyz"));
        if me.uid() == 0 {
            let other = json!({"path": "{p}/o", "owner": "65534", "group": "65534"});
            assert!(check(t.path(), other.clone(), false).unwrap().changed);
            let m = fs::metadata(&f).unwrap();
            assert_eq!((m.uid(), m.gid()), (65534, 65534));
            assert!(!check(t.path(), other, false).unwrap().changed);
        }
    }

    #[test]
    fn bad_arguments_name_the_argument() {
        let t = tempfile::tempdir().unwrap();
        let cases = [
            (json!({"state": "file"}), "path"),
            (json!({"path": "{p}/x", "state": "dir"}), "state"),
            (json!({"path": "{p}/x", "mode": "u+q"}), "mode"),
            (
                json!({"path": "{p}/x", "recurse": true, "state": "file"}),
                "recurse",
            ),
            (json!({"path": "{p}/x", "state": "link"}), "src"),
            (json!({"path": "{p}/x", "colour": "red"}), "colour"),
            (json!({"path": "{p}/x", "force": "maybe"}), "force"),
        ];
        for (args, name) in cases {
            match check(t.path(), args.clone(), false) {
                Err(ModuleError::BadArgs(m)) => assert!(m.contains(name), "{args}: {m}"),
                other => panic!("{args}: expected BadArgs, got {other:?}"),
            }
        }
    }

    /// The find target touches a file with an old `modification_time` ("...1200.0", one
    /// digit of seconds, as Python's strptime takes it): the file gets that time, the
    /// access time is now; touching again with both times fixed, or both preserved,
    /// changes nothing, as Ansible's `update_timestamp_for_file` decides.
    #[test]
    fn touch_sets_given_times_and_is_idempotent_when_they_are_fixed() {
        let t = tempfile::tempdir().unwrap();
        let f = t.path().join("old.txt");
        // The instant as the host's own `date` reads it in its zone.
        let want: i64 = String::from_utf8(
            std::process::Command::new("date")
                .args(["-d", "2020-01-01 12:00:00", "+%s"])
                .output()
                .unwrap()
                .stdout,
        )
        .unwrap()
        .trim()
        .parse()
        .unwrap();
        let args =
            json!({"path": "{p}/old.txt", "state": "touch", "modification_time": "202001011200.0"});
        let dry = check(t.path(), args.clone(), true).unwrap();
        assert!(dry.changed && !f.exists(), "{dry:?}");
        let made = check(t.path(), args, false).unwrap();
        assert!(made.changed, "{made:?}");
        let m = fs::metadata(&f).unwrap();
        assert_eq!(m.mtime(), want);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        assert!(
            (now - m.atime()).abs() < 60,
            "atime {} now {now}",
            m.atime()
        );
        let fixed = json!({"path": "{p}/old.txt", "state": "touch",
            "modification_time": "202001011200.0", "access_time": "202001011200.0"});
        assert!(check(t.path(), fixed.clone(), false).unwrap().changed);
        let again = check(t.path(), fixed, false).unwrap();
        assert!(!again.changed, "{again:?}");
        assert_eq!(again.data["diff"]["after"]["state"], "touch");
        let kept = json!({"path": "{p}/old.txt", "state": "touch",
            "modification_time": "preserve", "access_time": "preserve"});
        assert!(!check(t.path(), kept, false).unwrap().changed);
        assert_eq!(fs::metadata(&f).unwrap().mtime(), want);
    }

    /// The user target removes `path: '{{ item }}'` over find's `files`: the path is
    /// the text of a whole mapping, longer than a file name may be. Ansible's
    /// `os.path.lexists` says it is not there, so state=absent is ok.
    #[test]
    fn absent_of_a_name_too_long_or_under_a_file_is_ok() {
        let t = tempfile::tempdir().unwrap();
        fs::write(t.path().join("f"), "x").unwrap();
        let long = format!("{{p}}/{}", "n".repeat(300));
        for path in [long.as_str(), "{p}/f/under"] {
            let out = check(t.path(), json!({"path": path, "state": "absent"}), false).unwrap();
            assert!(!out.changed && !out.failed, "{path}: {out:?}");
        }
        assert!(t.path().join("f").is_file());
    }

    /// The file target's directory_as_dest: a hard link whose path is a directory is
    /// made inside it, named after src; the directory stays.
    #[test]
    fn a_hard_link_to_a_directory_path_goes_inside_it() {
        let t = tempfile::tempdir().unwrap();
        fs::write(t.path().join("file_to_link"), "x").unwrap();
        fs::create_dir(t.path().join("sub1")).unwrap();
        let args =
            json!({"src": "{p}/file_to_link", "dest": "{p}/sub1", "state": "hard", "force": false});
        let out = check(t.path(), args.clone(), false).unwrap();
        assert!(out.changed && !out.failed, "{out:?}");
        assert!(t.path().join("sub1").is_dir());
        let inside = fs::metadata(t.path().join("sub1/file_to_link")).unwrap();
        assert_eq!(
            inside.ino(),
            fs::metadata(t.path().join("file_to_link")).unwrap().ino()
        );
        assert!(!check(t.path(), args, false).unwrap().changed);
    }

    /// What the real `lsattr -d` shows for `path`: its letters, without the dashes
    /// (Ansible's `attr_flags`), or `None` where the file system has no attributes.
    fn lsattr(path: &Path) -> Option<String> {
        let out = std::process::Command::new("lsattr")
            .arg("-d")
            .arg(path)
            .output()
            .expect("lsattr (e2fsprogs) is installed");
        let text = String::from_utf8(out.stdout).unwrap();
        let flags = text.split_whitespace().next()?;
        out.status.success().then(|| flags.replace('-', ""))
    }

    /// `attributes` decides as Ansible's `set_attributes_if_different` does with lsattr
    /// and chattr: the letters lsattr shows are compared as text with those asked for
    /// (so `+A` stays a change where the file system adds `e` of its own), `-A` is
    /// always a change, an empty value none; check mode changes nothing; the flags set
    /// are the ones lsattr then reads.
    #[cfg(target_os = "linux")]
    #[test]
    fn attributes_are_set_and_compared_as_lsattr_shows_them() {
        let t = tempfile::tempdir().unwrap();
        let f = t.path().join("f");
        fs::write(&f, "x").unwrap();
        let Some(before) = lsattr(&f) else {
            // No attributes here: chattr fails, and so does the task, naming chattr.
            let r = check(
                t.path(),
                json!({"path": "{p}/f", "attributes": "+A"}),
                false,
            );
            assert!(format!("{r:?}").contains("chattr failed"), "{r:?}");
            return;
        };
        let dry = check(t.path(), json!({"path": "{p}/f", "attributes": "+A"}), true).unwrap();
        assert!(dry.changed);
        assert_eq!(lsattr(&f).as_deref(), Some(before.as_str()));

        let set = check(
            t.path(),
            json!({"path": "{p}/f", "attributes": "+A"}),
            false,
        )
        .unwrap();
        assert!(set.changed, "{set:?}");
        let now = lsattr(&f).unwrap();
        assert!(
            now.contains('A') && now.replace('A', "") == before,
            "{before} -> {now}"
        );
        let again = check(t.path(), json!({"path": "{p}/f", "attr": "+A"}), false).unwrap();
        assert_eq!(again.changed, now != "A", "lsattr shows {now}");
        let same = check(t.path(), json!({"path": "{p}/f", "attributes": now}), false).unwrap();
        assert!(!same.changed);

        let none = check(t.path(), json!({"path": "{p}/f", "attributes": ""}), false).unwrap();
        assert!(!none.changed);
        let off = check(
            t.path(),
            json!({"path": "{p}/f", "attributes": "-A"}),
            false,
        )
        .unwrap();
        assert!(off.changed);
        assert_eq!(lsattr(&f).unwrap(), before);
        let off_again = check(
            t.path(),
            json!({"path": "{p}/f", "attributes": "-A"}),
            false,
        );
        assert!(off_again.unwrap().changed);

        let bad = check(
            t.path(),
            json!({"path": "{p}/f", "attributes": "+Z"}),
            false,
        );
        assert!(format!("{bad:?}").contains("chattr failed"), "{bad:?}");
    }

    /// copy puts the attributes on the file it wrote (after the rename, as chattr runs
    /// after Ansible's move), and reconciles them on a file whose content is the same.
    #[cfg(target_os = "linux")]
    #[test]
    fn copy_sets_attributes_on_the_file_in_place() {
        let t = tempfile::tempdir().unwrap();
        let f = t.path().join("c");
        let copy = |args: Value| {
            crate::modules::run_in_dir_for_test("copy", t.path(), &args, false).unwrap()
        };
        let out = copy(json!({"dest": "{p}/c", "content": "hi\n", "attributes": "+A"}));
        assert!(out.changed);
        let Some(flags) = lsattr(&f) else { return };
        assert!(flags.contains('A'), "{flags}");
        let off = copy(json!({"dest": "{p}/c", "content": "hi\n", "attributes": "-A"}));
        assert!(off.changed);
        assert!(!lsattr(&f).unwrap().contains('A'));
    }
}
