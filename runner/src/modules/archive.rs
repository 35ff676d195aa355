//! The archive and unarchive modules, with ansible.builtin's (community.general's for
//! archive) arguments and results. Archives are built and read in memory by
//! [`super::archive_fmt`].
//!
//! archive is idempotent by content: the would-be archive is built (deterministically:
//! sorted members, gzip without a timestamp) and compared with the existing `dest`, so
//! unchanged sources report ok. Formats: gz, tar, zip, and `zst` (zstd, not in Ansible);
//! bz2 and xz are refused. A `dest` inside an archived tree changes that directory's
//! mtime, so such an archive is rewritten on every run.
//!
//! unarchive never lets a member land outside `dest`: absolute names, `..`, links whose
//! target leaves `dest`, and members written through a symlink (one from the archive
//! or one already in `dest`) are refused, all names and link targets being checked
//! before anything is written. Member owners are not restored (`owner`/`group` apply
//! to everything extracted, as in Ansible); `extra_opts`, `keep_newer`, `validate_certs`
//! and URL sources are not supported.

use super::archive_fmt::{self as fmt, Entry, Kind};
use super::find::glob_match;
use super::fsutil::{self, Attrs, Step, WriteReq, fail};
use super::{Ctx, Diff, ModuleError, Outcome, args};
use crate::plan::Vars;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

// ---------------------------------------------------------------------------
// archive

const ARCHIVE_KNOWN: &[&str] = &[
    "path",
    "dest",
    "format",
    "exclude_path",
    "exclusion_patterns",
    "force_archive",
    "remove",
    "mode",
    "owner",
    "group",
];

pub(super) fn archive(a: &Vars, ctx: &Ctx<'_>) -> Result<Outcome, ModuleError> {
    fsutil::finish(archive_inner(a, ctx))
}

fn has_glob(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// Python's `glob.glob`: each component with wildcards is matched against a directory
/// listing (names starting with `.` only by patterns that start with `.`); sorted.
fn glob_paths(pattern: &str) -> Vec<PathBuf> {
    let mut current = vec![if pattern.starts_with('/') {
        PathBuf::from("/")
    } else {
        PathBuf::new()
    }];
    for comp in pattern.split('/').filter(|c| !c.is_empty()) {
        let mut next = Vec::new();
        for base in &current {
            if !has_glob(comp) {
                next.push(base.join(comp));
                continue;
            }
            let dir = if base.as_os_str().is_empty() {
                Path::new(".")
            } else {
                base.as_path()
            };
            let Ok(rd) = fs::read_dir(dir) else { continue };
            let mut names: Vec<String> = rd
                .filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| (!n.starts_with('.') || comp.starts_with('.')) && glob_match(comp, n))
                .collect();
            names.sort();
            next.extend(names.into_iter().map(|n| base.join(n)));
        }
        current = next;
    }
    current.retain(|p| fs::symlink_metadata(p).is_ok());
    current
}

/// The longest common directory of the targets' parents: members are named relative
/// to it, so a single directory is archived with its own name.
fn common_root(targets: &[PathBuf]) -> PathBuf {
    let mut root: Option<Vec<Component<'_>>> = None;
    for t in targets {
        let parent: Vec<Component<'_>> = t
            .parent()
            .map(|p| p.components().collect())
            .unwrap_or_default();
        root = Some(match root {
            None => parent,
            Some(r) => r
                .into_iter()
                .zip(parent)
                .take_while(|(a, b)| a == b)
                .map(|(a, _)| a)
                .collect(),
        });
    }
    root.unwrap_or_default().into_iter().collect()
}

/// What archive collects: members, and the paths they came from.
struct Collect<'a> {
    root: &'a Path,
    dest: &'a Path,
    exclude: &'a [PathBuf],
    patterns: &'a [String],
    entries: Vec<Entry>,
    archived: Vec<String>,
}

impl Collect<'_> {
    fn excluded(&self, p: &Path) -> bool {
        let s = p.display().to_string();
        p == self.dest
            || self.exclude.iter().any(|e| p.starts_with(e))
            || self.patterns.iter().any(|pat| {
                glob_match(pat, &s)
                    || p.file_name()
                        .is_some_and(|n| glob_match(pat, &n.to_string_lossy()))
            })
    }

    /// Adds `p` (and, for a directory, everything below it, sorted).
    fn add(&mut self, p: &Path) -> Step<()> {
        if self.excluded(p) {
            return Ok(());
        }
        let Some(m) = fsutil::lstat(p)? else {
            return Ok(());
        };
        let name = p
            .strip_prefix(self.root)
            .unwrap_or(p)
            .to_string_lossy()
            .trim_start_matches('/')
            .to_string();
        let t = m.file_type();
        let kind = if t.is_symlink() {
            Kind::Symlink(
                fs::read_link(p)
                    .map_err(|e| fsutil::io_fail("read", p, &e))?
                    .to_string_lossy()
                    .into_owned(),
            )
        } else if t.is_dir() {
            Kind::Dir
        } else if t.is_file() {
            Kind::File
        } else {
            // Sockets, fifos and devices are skipped, as zipfile cannot hold them either.
            return Ok(());
        };
        let data = if kind == Kind::File {
            fs::read(p).map_err(|e| fsutil::io_fail("read", p, &e))?
        } else {
            Vec::new()
        };
        if !name.is_empty() {
            self.entries.push(Entry {
                name,
                kind: kind.clone(),
                mode: m.mode() & 0o7777,
                mtime: u64::try_from(m.mtime()).unwrap_or(0),
                uid: m.uid(),
                gid: m.gid(),
                data,
            });
            self.archived.push(p.display().to_string());
        }
        if kind == Kind::Dir {
            let rd = fs::read_dir(p).map_err(|e| fsutil::io_fail("list", p, &e))?;
            let mut children: Vec<PathBuf> = rd.filter_map(Result::ok).map(|e| e.path()).collect();
            children.sort();
            for c in children {
                self.add(&c)?;
            }
        }
        Ok(())
    }
}

/// Member names of an archive, one a line, for diffs.
fn listing(entries: &[Entry]) -> String {
    entries.iter().map(|e| format!("{}\n", e.name)).collect()
}

fn archive_inner(a: &Vars, ctx: &Ctx<'_>) -> Step<Outcome> {
    args::only(a, ARCHIVE_KNOWN)?;
    let paths = args::str_list(a, "path")?;
    if paths.is_empty() {
        return Err(ModuleError::BadArgs("missing required argument 'path'".into()).into());
    }
    let format = args::opt_str(a, "format")?.unwrap_or_else(|| "gz".into());
    let ext = match format.as_str() {
        "gz" | "tar" | "zip" | "zst" => format.clone(),
        "bz2" | "xz" => {
            return Err(ModuleError::BadArgs(format!(
                "argument 'format' {format} is not supported by this runner (gz, tar, zip, zst)"
            ))
            .into());
        }
        other => {
            return Err(ModuleError::BadArgs(format!(
                "argument 'format' must be one of gz, tar, zip, zst; got '{other}'"
            ))
            .into());
        }
    };
    let force_archive = args::bool_or(a, "force_archive", false)?;
    let remove = args::bool_or(a, "remove", false)?;
    let attrs = Attrs::from_args(a)?;
    let exclude: Vec<PathBuf> = args::str_list(a, "exclude_path")?
        .iter()
        .flat_map(|e| {
            if has_glob(e) {
                glob_paths(e)
            } else {
                vec![PathBuf::from(e)]
            }
        })
        .collect();
    let patterns = args::str_list(a, "exclusion_patterns")?;

    let mut expanded = Vec::new();
    let mut missing = Vec::new();
    for p in &paths {
        if has_glob(p) {
            expanded.extend(glob_paths(p));
        } else if fs::symlink_metadata(p).is_ok() {
            expanded.push(PathBuf::from(p));
        } else {
            missing.push(p.clone());
        }
    }
    let must_archive = force_archive
        || format == "tar"
        || format == "zip"
        || expanded.len() > 1
        || expanded.iter().any(|p| p.is_dir());
    let dest = match args::opt_str(a, "dest")? {
        Some(d) => PathBuf::from(d),
        None if must_archive => {
            return Err(ModuleError::BadArgs(
                "argument 'dest' is required when archiving multiple files or trees".into(),
            )
            .into());
        }
        None => PathBuf::from(format!(
            "{}.{ext}",
            expanded
                .first()
                .map(|p| p.display().to_string())
                .or_else(|| paths.first().cloned())
                .unwrap_or_default()
        )),
    };
    let expanded_str: Vec<String> = expanded.iter().map(|p| p.display().to_string()).collect();
    let base = |o: Outcome| {
        o.with("dest", dest.display().to_string())
            .with("missing", missing.clone())
            .with("expanded_paths", expanded_str.clone())
            .with(
                "expanded_exclude_paths",
                exclude
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>(),
            )
    };
    if expanded.is_empty() {
        if paths.iter().all(|p| has_glob(p)) {
            return Err(fsutil::failed(base(Outcome::fail(
                "Error, no source paths were found",
            ))));
        }
        // Sources already gone (e.g. removed by an earlier run): nothing to do.
        let state = if dest.exists() { "archive" } else { "absent" };
        return Ok(base(Outcome::ok())
            .with("dest_state", state)
            .with("state", state)
            .with("archived", Vec::<String>::new()));
    }

    let root = common_root(&expanded);
    let mut c = Collect {
        root: &root,
        dest: &dest,
        exclude: &exclude,
        patterns: &patterns,
        entries: Vec::new(),
        archived: Vec::new(),
    };
    let (bytes, state) = if must_archive {
        for p in &expanded {
            c.add(p)?;
        }
        let bytes = match format.as_str() {
            "zip" => fmt::write_zip(&c.entries),
            "tar" => fmt::write_tar(&c.entries),
            "zst" => fmt::zstd(&fmt::write_tar(&c.entries)),
            _ => fmt::gzip(&fmt::write_tar(&c.entries)),
        };
        let state = if missing.is_empty() {
            "archive"
        } else {
            "incomplete"
        };
        (bytes, state)
    } else {
        let src = expanded
            .first()
            .map(PathBuf::as_path)
            .unwrap_or(Path::new(""));
        let plain = fs::read(src).map_err(|e| fsutil::io_fail("read", src, &e))?;
        c.archived.push(src.display().to_string());
        let bytes = if format == "zst" {
            fmt::zstd(&plain)
        } else {
            fmt::gzip(&plain)
        };
        (bytes, "compress")
    };

    let old = fs::read(&dest).ok();
    let req = WriteReq {
        dest: &dest,
        content: &bytes,
        attrs,
        force: true,
        backup: false,
        follow: false,
        src: None,
        new_mode: None,
    };
    let mut out = fsutil::write_file(&req, ctx)?;
    // Binary archives make poor diffs: show member lists instead.
    if must_archive && old.as_deref() != Some(bytes.as_slice()) {
        for d in &mut out.diff {
            d.before = old
                .as_deref()
                .and_then(|o| fmt::read_any(o).ok())
                .map(|(_, e)| listing(&e))
                .unwrap_or_default();
            d.after = listing(&c.entries);
            d.after_header = format!("{} (members)", dest.display());
        }
    }
    if remove {
        if !ctx.check_mode {
            for p in &expanded {
                if p == &dest {
                    continue;
                }
                let r = if p.is_dir() && !p.is_symlink() {
                    fs::remove_dir_all(p)
                } else {
                    fs::remove_file(p)
                };
                r.map_err(|e| fsutil::io_fail("remove", p, &e))?;
            }
        }
        out.changed = true;
    }
    Ok(base(out)
        .with("state", state)
        .with("dest_state", state)
        .with("arcroot", root.display().to_string())
        .with("archived", c.archived))
}

// ---------------------------------------------------------------------------
// unarchive

const UNARCHIVE_KNOWN: &[&str] = &[
    "src",
    "dest",
    "remote_src",
    "copy",
    "creates",
    "list_files",
    "exclude",
    "include",
    "mode",
    "owner",
    "group",
];

pub(super) fn unarchive(a: &Vars, ctx: &Ctx<'_>) -> Result<Outcome, ModuleError> {
    fsutil::finish(unarchive_inner(a, ctx))
}

/// A member's name as a path below dest: `./` and empty parts dropped; absolute names
/// and `..` refused. `None` for the archive's root (`./`).
fn member_path(name: &str) -> Result<Option<PathBuf>, String> {
    if name.starts_with('/') {
        return Err(format!("member '{name}' has an absolute path"));
    }
    let mut p = PathBuf::new();
    for part in name.split('/') {
        match part {
            "" | "." => {}
            ".." => return Err(format!("member '{name}' contains '..'")),
            other => p.push(other),
        }
    }
    Ok(if p.as_os_str().is_empty() {
        None
    } else {
        Some(p)
    })
}

/// A symlink's target must stay in dest judged from where the link is: relative, any
/// `..` only leading and no more of them than the link's depth (a `..` after a name
/// could climb out through another link).
fn check_link_target(rel: &Path, target: &str) -> Result<(), String> {
    let name = rel.display();
    if target.is_empty() || target.starts_with('/') {
        return Err(format!(
            "symlink '{name}' points to '{target}', outside dest"
        ));
    }
    let depth = rel.components().count().saturating_sub(1);
    let mut ups = 0usize;
    let mut seen_name = false;
    for part in target.split('/') {
        match part {
            "" | "." => {}
            ".." if !seen_name => ups += 1,
            ".." => {
                return Err(format!(
                    "symlink '{name}' points to '{target}': '..' after a name is refused"
                ));
            }
            _ => seen_name = true,
        }
    }
    if ups > depth {
        return Err(format!(
            "symlink '{name}' points to '{target}', outside dest"
        ));
    }
    Ok(())
}

/// A member after validation: where it goes and what it is.
struct Planned<'e> {
    entry: &'e Entry,
    rel: PathBuf,
}

/// Checks every member before anything is written.
fn plan_members<'e>(
    entries: &'e [Entry],
    include: &[String],
    exclude: &[String],
) -> Result<Vec<Planned<'e>>, String> {
    let mut out = Vec::new();
    let mut links: Vec<PathBuf> = Vec::new();
    for e in entries {
        let Some(rel) = member_path(&e.name)? else {
            continue;
        };
        let shown = rel.display().to_string();
        let selected = (include.is_empty()
            || include
                .iter()
                .any(|p| glob_match(p, &shown) || glob_match(p, &e.name)))
            && !exclude
                .iter()
                .any(|p| glob_match(p, &shown) || glob_match(p, &e.name));
        if !selected {
            continue;
        }
        if let Some(l) = links.iter().find(|l| rel.starts_with(l) && rel != **l) {
            return Err(format!(
                "member '{}' would be written through the symlink '{}'",
                e.name,
                l.display()
            ));
        }
        match &e.kind {
            Kind::Symlink(t) => {
                check_link_target(&rel, t)?;
                links.push(rel.clone());
            }
            Kind::Hardlink(t) => {
                if member_path(t)?.is_none() {
                    return Err(format!("hard link '{}' has an empty target", e.name));
                }
            }
            Kind::Other(t) => {
                return Err(format!(
                    "member '{}' has type '{}' (device or fifo), which is not extracted",
                    e.name,
                    char::from(*t)
                ));
            }
            Kind::File | Kind::Dir => {}
        }
        out.push(Planned { entry: e, rel });
    }
    Ok(out)
}

/// Refuses a path whose directories below dest include a symlink (already on disk).
fn no_symlink_parents(dest: &Path, rel: &Path) -> Step<()> {
    let mut p = dest.to_path_buf();
    let parts: Vec<Component<'_>> = rel.components().collect();
    for c in parts.iter().take(parts.len().saturating_sub(1)) {
        p.push(c);
        if let Some(m) = fsutil::lstat(&p)?
            && m.file_type().is_symlink()
        {
            return fail(format!(
                "refusing to write {} through the symlink {}",
                rel.display(),
                p.display()
            ));
        }
    }
    Ok(())
}

/// Does the member already exist as it would be extracted?
fn up_to_date(dest: &Path, p: &Planned<'_>, mode: u32) -> bool {
    let path = dest.join(&p.rel);
    let Ok(m) = fs::symlink_metadata(&path) else {
        return false;
    };
    let perms_ok = m.mode() & 0o7777 == mode;
    match &p.entry.kind {
        Kind::Dir => m.is_dir() && perms_ok,
        Kind::File => {
            m.is_file()
                && perms_ok
                && m.len() == p.entry.data.len() as u64
                && fs::read(&path).is_ok_and(|d| d == p.entry.data)
        }
        Kind::Symlink(t) => {
            m.file_type().is_symlink() && fs::read_link(&path).is_ok_and(|l| l == Path::new(t))
        }
        Kind::Hardlink(t) => member_path(t).ok().flatten().is_some_and(|trel| {
            fs::symlink_metadata(dest.join(trel))
                .is_ok_and(|tm| tm.ino() == m.ino() && tm.dev() == m.dev())
        }),
        Kind::Other(_) => false,
    }
}

/// Removes whatever non-directory is at `path` (a directory is an error).
fn clear(path: &Path) -> Step<()> {
    match fsutil::lstat(path)? {
        Some(m) if m.is_dir() => fail(format!(
            "{} is a directory, cannot replace it with a non-directory",
            path.display()
        )),
        Some(_) => fs::remove_file(path).map_err(|e| fsutil::io_fail("remove", path, &e)),
        None => Ok(()),
    }
}

/// Writes one member (parents already checked).
fn extract(dest: &Path, p: &Planned<'_>, mode: u32) -> Step<()> {
    let path = dest.join(&p.rel);
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).map_err(|e| fsutil::io_fail("create", parent, &e))?;
    }
    match &p.entry.kind {
        Kind::Dir => {
            if !fsutil::lstat(&path)?.is_some_and(|m| m.is_dir()) {
                clear(&path)?;
                fs::create_dir(&path).map_err(|e| fsutil::io_fail("create", &path, &e))?;
            }
            fs::set_permissions(&path, fs::Permissions::from_mode(mode))
                .map_err(|e| fsutil::io_fail("change the mode of", &path, &e))?;
        }
        Kind::File => {
            if fsutil::lstat(&path)?.is_some_and(|m| m.is_dir()) {
                return fail(format!(
                    "{} is a directory, cannot extract a file there",
                    path.display()
                ));
            }
            // A fresh file renamed into place: an existing symlink there is replaced,
            // never written through.
            let tmp = path.with_file_name(format!(
                ".{}.rustle-unarchive",
                path.file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default()
            ));
            let _ = fs::remove_file(&tmp);
            let mut f = fs::File::options()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp)
                .map_err(|e| fsutil::io_fail("create", &tmp, &e))?;
            let written = f
                .write_all(&p.entry.data)
                .and_then(|()| f.set_modified(UNIX_EPOCH + Duration::from_secs(p.entry.mtime)))
                .and_then(|()| fs::set_permissions(&tmp, fs::Permissions::from_mode(mode)))
                .and_then(|()| fs::rename(&tmp, &path));
            if let Err(e) = written {
                let _ = fs::remove_file(&tmp);
                return Err(fsutil::io_fail("write", &path, &e));
            }
        }
        Kind::Symlink(t) => {
            clear(&path)?;
            std::os::unix::fs::symlink(t, &path)
                .map_err(|e| fsutil::io_fail("create the symlink", &path, &e))?;
        }
        Kind::Hardlink(t) => {
            let trel = member_path(t).ok().flatten().unwrap_or_default();
            no_symlink_parents(dest, &trel)?;
            let target = dest.join(&trel);
            if !fsutil::lstat(&target)?.is_some_and(|m| m.is_file()) {
                return fail(format!(
                    "hard link '{}' points to '{t}', which is not a regular file in dest",
                    p.entry.name
                ));
            }
            clear(&path)?;
            fs::hard_link(&target, &path)
                .map_err(|e| fsutil::io_fail("create the hard link", &path, &e))?;
        }
        Kind::Other(_) => {}
    }
    Ok(())
}

fn unarchive_inner(a: &Vars, ctx: &Ctx<'_>) -> Step<Outcome> {
    args::only(a, UNARCHIVE_KNOWN)?;
    let src = args::req_str(a, "src")?;
    let dest_arg = args::req_str(a, "dest")?;
    // `copy: false` is the old spelling of `remote_src: true`.
    let remote_src = args::bool_or(a, "remote_src", false)? || !args::bool_or(a, "copy", true)?;
    let list_files = args::bool_or(a, "list_files", false)?;
    let include = args::str_list(a, "include")?;
    let exclude = args::str_list(a, "exclude")?;
    let attrs = Attrs::from_args(a)?;
    if let Some(c) = args::opt_str(a, "creates")?
        && Path::new(&c).exists()
    {
        let mut o = Outcome::ok().msg(format!("skipped, since {c} exists"));
        o.skipped = true;
        return Ok(o);
    }
    let dest = match fs::canonicalize(&dest_arg) {
        Ok(d) if d.is_dir() => d,
        _ => return fail(format!("dest '{dest_arg}' must be an existing dir")),
    };
    // Ansible downloads a URL src on the host; this runner leaves that to get_url.
    if src.contains("://") {
        return fail(format!(
            "src '{src}' is a URL, which unarchive does not download here; fetch it with get_url first"
        ));
    }
    let bytes = if remote_src {
        match fs::read(&src) {
            Ok(b) => b,
            Err(e) => return fail(format!("Source '{src}' failed to read: {e}")),
        }
    } else {
        fsutil::embedded(ctx, &src)?.content.clone()
    };
    let (format, entries) = match fmt::read_any(&bytes) {
        Ok(r) => r,
        Err(e) => return fail(format!("Failed to find handler for \"{src}\": {e}")),
    };
    let planned = match plan_members(&entries, &include, &exclude) {
        Ok(p) => p,
        Err(e) => return fail(format!("refusing to extract {src}: {e}")),
    };
    let want_mode = |p: &Planned<'_>| attrs.mode.unwrap_or(p.entry.mode & 0o7777);
    // Symlinks already on disk are checked for every member before the first write.
    for p in &planned {
        no_symlink_parents(&dest, &p.rel)?;
    }
    let mut changed_members = Vec::new();
    for p in &planned {
        if !up_to_date(&dest, p, want_mode(p)) {
            changed_members.push(p.rel.display().to_string());
            if !ctx.check_mode {
                extract(&dest, p, want_mode(p))?;
            }
        }
    }
    // Belt and braces: a link that resolves (through links already in dest) outside
    // dest is removed again.
    if !ctx.check_mode {
        for p in planned
            .iter()
            .filter(|p| matches!(p.entry.kind, Kind::Symlink(_)))
        {
            let path = dest.join(&p.rel);
            if let Ok(real) = fs::canonicalize(&path)
                && !real.starts_with(&dest)
            {
                let _ = fs::remove_file(&path);
                return fail(format!(
                    "refusing symlink {}: it resolves to {}, outside dest",
                    p.rel.display(),
                    real.display()
                ));
            }
        }
    }
    if attrs.uid.is_some() || attrs.gid.is_some() {
        let owners = Attrs {
            mode: None,
            ..attrs
        };
        for p in &planned {
            let c = fsutil::apply_attrs(&dest.join(&p.rel), owners, false, ctx.check_mode)?;
            if !c.is_empty() && !changed_members.contains(&p.rel.display().to_string()) {
                changed_members.push(p.rel.display().to_string());
            }
        }
    }
    let mut out = Outcome::changed(!changed_members.is_empty())
        .with("dest", dest.display().to_string())
        .with("src", src.clone())
        .with("handler", format.handler());
    if list_files {
        out = out.with(
            "files",
            entries.iter().map(|e| e.name.clone()).collect::<Vec<_>>(),
        );
    }
    if ctx.check_mode && out.changed {
        out = out.msg(format!("would extract {} member(s)", changed_members.len()));
    }
    if ctx.diff_mode && out.changed {
        out.diff.push(Diff {
            before_header: dest.display().to_string(),
            after_header: src.clone(),
            before: String::new(),
            after: changed_members.iter().map(|m| format!("{m}\n")).collect(),
        });
    }
    Ok(fsutil::add_path_info(out, &dest, true))
}

#[cfg(test)]
mod tests {
    use super::super::archive_fmt::{self as fmt, Entry, Kind};
    use super::super::{ModuleError, Outcome};
    use crate::plan::HostFile;
    use serde_json::{Value, json};
    use std::collections::BTreeMap;
    use std::fs;
    use std::os::unix::fs::PermissionsExt;
    use std::path::Path;
    use std::process::Command;

    fn run(
        module: &str,
        dir: &Path,
        args: Value,
        files: &BTreeMap<String, HostFile>,
        check_mode: bool,
    ) -> Result<Outcome, ModuleError> {
        let args = crate::modules::args_in(dir, &args);
        crate::modules::run_for_test(module, &args, files, &json!({}), check_mode)
    }

    fn none() -> BTreeMap<String, HostFile> {
        BTreeMap::new()
    }

    /// src/ with a.txt, sub/b.txt (0600) and link -> a.txt.
    fn sources(p: &Path) {
        fs::create_dir_all(p.join("src/sub")).unwrap();
        fs::write(p.join("src/a.txt"), "alpha\n").unwrap();
        fs::write(p.join("src/sub/b.txt"), "beta\n").unwrap();
        fs::set_permissions(p.join("src/sub/b.txt"), fs::Permissions::from_mode(0o600)).unwrap();
        std::os::unix::fs::symlink("a.txt", p.join("src/link")).unwrap();
    }

    fn tar_list(path: &Path) -> String {
        let out = Command::new("tar").arg("-tf").arg(path).output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    #[test]
    fn archive_tree_formats_are_readable_by_real_tools_and_idempotent() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path();
        sources(p);
        for (format, name) in [
            ("gz", "x.tar.gz"),
            ("tar", "x.tar"),
            ("zst", "x.tar.zst"),
            ("zip", "x.zip"),
        ] {
            let args =
                json!({"path": "{p}/src", "dest": format!("{{p}}/{name}"), "format": format});
            let dest = p.join(name);
            let dry = run("archive", p, args.clone(), &none(), true).unwrap();
            assert!(dry.changed && !dest.exists(), "{format}: {dry:?}");
            assert!(dry.diff[0].after.contains("src/sub/b.txt"), "{format}");
            let out = run("archive", p, args.clone(), &none(), false).unwrap();
            assert!(out.changed && !out.failed, "{format}: {out:?}");
            assert_eq!(out.data["state"], "archive");
            assert_eq!(out.data["archived"].as_array().unwrap().len(), 5);
            let again = run("archive", p, args.clone(), &none(), false).unwrap();
            assert!(!again.changed, "{format}: second run changed");
            match format {
                "zip" => {
                    let out = Command::new("python3")
                        .args(["-c", "import sys,zipfile; print('\\n'.join(zipfile.ZipFile(sys.argv[1]).namelist()))"])
                        .arg(&dest)
                        .output()
                        .unwrap();
                    let names = String::from_utf8(out.stdout).unwrap();
                    assert!(
                        names.contains("src/sub/b.txt") && names.contains("src/a.txt"),
                        "{names}"
                    );
                }
                "zst" => {
                    let got =
                        fmt::read_tar(&fmt::unzstd(&fs::read(&dest).unwrap()).unwrap()).unwrap();
                    assert!(
                        got.iter()
                            .any(|e| e.name == "src/sub/b.txt" && e.data == b"beta\n")
                    );
                }
                _ => {
                    let list = tar_list(&dest);
                    assert!(
                        list.contains("src/sub/b.txt") && list.contains("src/link"),
                        "{list}"
                    );
                }
            }
        }
        // A source change makes the next run change the archive.
        fs::write(p.join("src/a.txt"), "changed\n").unwrap();
        let out = run(
            "archive",
            p,
            json!({"path": "{p}/src", "dest": "{p}/x.tar"}),
            &none(),
            false,
        )
        .unwrap();
        assert!(out.changed);
    }

    #[test]
    fn archive_single_file_compresses_and_remove_removes() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path();
        fs::write(p.join("log.txt"), "line\n".repeat(100)).unwrap();
        let args = json!({"path": "{p}/log.txt", "remove": true});
        let out = run("archive", p, args.clone(), &none(), false).unwrap();
        assert!(out.changed && out.data["state"] == "compress", "{out:?}");
        assert!(!p.join("log.txt").exists());
        let unzipped = Command::new("gzip")
            .arg("-dc")
            .arg(p.join("log.txt.gz"))
            .output()
            .unwrap();
        assert_eq!(unzipped.stdout, "line\n".repeat(100).as_bytes());
        let again = run("archive", p, args, &none(), false).unwrap();
        assert!(!again.changed && !again.failed, "{again:?}");
        // Globs, exclusions and mode.
        sources(p);
        let out = run(
            "archive",
            p,
            json!({"path": "{p}/src/*.txt", "dest": "{p}/t.tar", "format": "tar", "exclude_path": ["{p}/src/sub"], "mode": "0600"}),
            &none(),
            false,
        )
        .unwrap();
        assert_eq!(out.data["mode"], "0600");
        assert_eq!(tar_list(&p.join("t.tar")), "a.txt\n");
    }

    #[test]
    fn archive_bad_arguments_name_the_argument() {
        let t = tempfile::tempdir().unwrap();
        sources(t.path());
        for (args, name) in [
            (json!({"dest": "{p}/x"}), "path"),
            (json!({"path": "{p}/src", "format": "rar"}), "format"),
            (
                json!({"path": "{p}/src", "format": "bz2", "dest": "{p}/x"}),
                "format",
            ),
            (json!({"path": "{p}/src"}), "dest"),
            (
                json!({"path": "{p}/src", "dest": "{p}/x", "compression": 9}),
                "compression",
            ),
        ] {
            match run("archive", t.path(), args.clone(), &none(), false) {
                Err(ModuleError::BadArgs(m)) => assert!(m.contains(name), "{args}: {m}"),
                other => panic!("{args}: expected BadArgs, got {other:?}"),
            }
        }
    }

    fn entry(name: &str, kind: Kind, data: &[u8]) -> Entry {
        Entry {
            name: name.into(),
            kind,
            mode: 0o644,
            mtime: 1_600_000_000,
            uid: 0,
            gid: 0,
            data: data.to_vec(),
        }
    }

    fn embedded(name: &str, bytes: Vec<u8>) -> BTreeMap<String, HostFile> {
        let mut m = BTreeMap::new();
        m.insert(
            name.to_string(),
            HostFile {
                content: bytes,
                mode: None,
            },
        );
        m
    }

    #[test]
    fn unarchive_extracts_each_format_once_and_check_mode_writes_nothing() {
        let entries = vec![
            entry("./app/", Kind::Dir, b""),
            entry("./app/bin.sh", Kind::File, b"#!/bin/sh\n"),
            entry("./app/conf/x.conf", Kind::File, b"x=1\n"),
            entry("./app/current", Kind::Symlink("conf/x.conf".into()), b""),
            entry("./app/hard", Kind::Hardlink("app/bin.sh".into()), b""),
        ];
        let tar = fmt::write_tar(&entries);
        for (name, bytes) in [
            ("files/a.tar", tar.clone()),
            ("files/a.tgz", fmt::gzip(&tar)),
            ("files/a.tar.zst", fmt::zstd(&tar)),
            ("files/a.zip", fmt::write_zip(&entries[..4])),
        ] {
            let t = tempfile::tempdir().unwrap();
            let p = t.path();
            let files = embedded(name, bytes);
            let args = json!({"src": name, "dest": "{p}", "list_files": true});
            let dry = run("unarchive", p, args.clone(), &files, true).unwrap();
            assert!(dry.changed && !dry.failed, "{name}: {dry:?}");
            assert!(dry.diff[0].after.contains("app/bin.sh"));
            assert_eq!(
                fs::read_dir(p).unwrap().count(),
                0,
                "{name}: check mode wrote"
            );
            let out = run("unarchive", p, args.clone(), &files, false).unwrap();
            assert!(out.changed && !out.failed, "{name}: {out:?}");
            assert_eq!(fs::read(p.join("app/conf/x.conf")).unwrap(), b"x=1\n");
            assert_eq!(
                fs::read_link(p.join("app/current")).unwrap(),
                Path::new("conf/x.conf")
            );
            assert_eq!(
                fs::metadata(p.join("app/bin.sh"))
                    .unwrap()
                    .permissions()
                    .mode()
                    & 0o777,
                0o644
            );
            assert!(
                out.data["files"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|f| f == "./app/bin.sh")
            );
            let again = run("unarchive", p, args, &files, false).unwrap();
            assert!(!again.changed, "{name}: second run changed: {again:?}");
            // A modified file is put back.
            fs::write(p.join("app/bin.sh"), "tampered").unwrap();
            let fix = run(
                "unarchive",
                p,
                json!({"src": name, "dest": "{p}"}),
                &files,
                false,
            )
            .unwrap();
            assert!(fix.changed);
            assert_eq!(fs::read(p.join("app/bin.sh")).unwrap(), b"#!/bin/sh\n");
        }
    }

    #[test]
    fn unarchive_reads_real_tar_and_honours_creates_mode_and_remote_src() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path();
        fs::create_dir_all(p.join("in/d")).unwrap();
        fs::write(p.join("in/d/f.txt"), "from gnu tar\n").unwrap();
        assert!(
            Command::new("tar")
                .arg("-C")
                .arg(p.join("in"))
                .arg("-czf")
                .arg(p.join("real.tgz"))
                .arg("d")
                .status()
                .unwrap()
                .success()
        );
        fs::create_dir(p.join("out")).unwrap();
        let args =
            json!({"src": "{p}/real.tgz", "dest": "{p}/out", "remote_src": true, "mode": "0640"});
        let out = run("unarchive", p, args.clone(), &none(), false).unwrap();
        assert!(
            out.changed && out.data["handler"] == "TgzArchive",
            "{out:?}"
        );
        assert_eq!(fs::read(p.join("out/d/f.txt")).unwrap(), b"from gnu tar\n");
        assert_eq!(
            fs::metadata(p.join("out/d/f.txt"))
                .unwrap()
                .permissions()
                .mode()
                & 0o777,
            0o640
        );
        assert!(!run("unarchive", p, args, &none(), false).unwrap().changed);
        let skipped = run(
            "unarchive",
            p,
            json!({"src": "{p}/real.tgz", "dest": "{p}/out", "remote_src": true, "creates": "{p}/out/d"}),
            &none(),
            false,
        )
        .unwrap();
        assert!(skipped.skipped && skipped.msg.unwrap().contains("since"));
        let missing_dest = run(
            "unarchive",
            p,
            json!({"src": "{p}/real.tgz", "dest": "{p}/nope", "remote_src": true}),
            &none(),
            false,
        )
        .unwrap();
        assert!(missing_dest.failed && missing_dest.msg.unwrap().contains("existing dir"));
        let url = run(
            "unarchive",
            p,
            json!({"src": "https://example.invalid/a.tgz", "dest": "{p}/out"}),
            &none(),
            false,
        )
        .unwrap();
        assert!(url.failed && url.msg.unwrap().contains("get_url"));
        let not_archive = run(
            "unarchive",
            p,
            json!({"src": "{p}/in/d/f.txt", "dest": "{p}/out", "remote_src": true}),
            &none(),
            false,
        )
        .unwrap();
        assert!(not_archive.failed && not_archive.msg.unwrap().contains("handler"));
    }

    /// Extracts a hostile archive into `root/dest` and checks that it is refused and
    /// that nothing appeared outside dest (or, for all-or-nothing checks, in it).
    fn refused(entries: Vec<Entry>, zip: bool, why: &str) {
        let t = tempfile::tempdir().unwrap();
        let p = t.path();
        fs::create_dir(p.join("dest")).unwrap();
        let bytes = if zip {
            fmt::write_zip(&entries)
        } else {
            fmt::gzip(&fmt::write_tar(&entries))
        };
        let files = embedded("files/evil", bytes);
        let out = run(
            "unarchive",
            p,
            json!({"src": "files/evil", "dest": "{p}/dest"}),
            &files,
            false,
        )
        .unwrap();
        assert!(out.failed, "{why}: {out:?}");
        assert!(
            out.msg.clone().unwrap().contains("refusing"),
            "{why}: {:?}",
            out.msg
        );
        let outside: Vec<_> = fs::read_dir(p)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(
            outside,
            vec![std::ffi::OsString::from("dest")],
            "{why}: wrote outside dest"
        );
        assert_eq!(
            fs::read_dir(p.join("dest")).unwrap().count(),
            0,
            "{why}: partial extraction"
        );
    }

    #[test]
    fn hostile_archives_are_refused_with_nothing_written_outside_dest() {
        for zip in [false, true] {
            refused(
                vec![
                    entry("ok.txt", Kind::File, b"x"),
                    entry("../escape.txt", Kind::File, b"x"),
                ],
                zip,
                "dot-dot",
            );
            refused(
                vec![entry("a/../../escape.txt", Kind::File, b"x")],
                zip,
                "inner dot-dot",
            );
            refused(
                vec![entry("/tmp/rustle-abs-escape.txt", Kind::File, b"x")],
                zip,
                "absolute",
            );
            refused(
                vec![
                    entry("out", Kind::Symlink("..".into()), b""),
                    entry("out/escape.txt", Kind::File, b"x"),
                ],
                zip,
                "symlink to parent then a file through it",
            );
            refused(
                vec![
                    entry("etc", Kind::Symlink("/etc".into()), b""),
                    entry("etc/evil.conf", Kind::File, b"x"),
                ],
                zip,
                "absolute symlink",
            );
            refused(
                vec![
                    entry("in", Kind::Symlink("sub".into()), b""),
                    entry("in/x", Kind::File, b"x"),
                ],
                zip,
                "writing through an inside symlink",
            );
            refused(
                vec![entry("t", Kind::Symlink("a/../..".into()), b"")],
                zip,
                "dot-dot after a name",
            );
        }
        refused(
            vec![entry("h", Kind::Hardlink("../../etc/passwd".into()), b"")],
            false,
            "hard link outside",
        );
        refused(
            vec![entry("h", Kind::Hardlink("/etc/passwd".into()), b"")],
            false,
            "absolute hard link",
        );
        assert!(Path::new("/tmp/rustle-abs-escape.txt").metadata().is_err());
    }

    #[test]
    fn a_symlink_already_in_dest_is_not_written_through() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path();
        fs::create_dir_all(p.join("dest")).unwrap();
        fs::create_dir_all(p.join("outside")).unwrap();
        std::os::unix::fs::symlink(p.join("outside"), p.join("dest/lib")).unwrap();
        let files = embedded(
            "files/a.tar",
            fmt::write_tar(&[entry("lib/x.so", Kind::File, b"x")]),
        );
        let out = run(
            "unarchive",
            p,
            json!({"src": "files/a.tar", "dest": "{p}/dest"}),
            &files,
            false,
        )
        .unwrap();
        assert!(out.failed && out.msg.unwrap().contains("symlink"));
        assert_eq!(fs::read_dir(p.join("outside")).unwrap().count(), 0);
        // A final-component symlink is replaced by the file, not followed.
        std::os::unix::fs::symlink(p.join("outside/target"), p.join("dest/f")).unwrap();
        let files = embedded(
            "files/b.tar",
            fmt::write_tar(&[entry("f", Kind::File, b"y")]),
        );
        let out = run(
            "unarchive",
            p,
            json!({"src": "files/b.tar", "dest": "{p}/dest"}),
            &files,
            false,
        )
        .unwrap();
        assert!(out.changed && !out.failed, "{out:?}");
        assert!(!p.join("outside/target").exists());
        assert_eq!(fs::read(p.join("dest/f")).unwrap(), b"y");
    }

    #[test]
    fn unarchive_bad_arguments_name_the_argument() {
        let t = tempfile::tempdir().unwrap();
        for (args, name) in [
            (json!({"dest": "{p}"}), "src"),
            (json!({"src": "files/x"}), "dest"),
            (
                json!({"src": "files/x", "dest": "{p}", "extra_opts": ["-v"]}),
                "extra_opts",
            ),
            (
                json!({"src": "files/x", "dest": "{p}", "list_files": "maybe"}),
                "list_files",
            ),
        ] {
            match run("unarchive", t.path(), args.clone(), &none(), false) {
                Err(ModuleError::BadArgs(m)) => assert!(m.contains(name), "{args}: {m}"),
                other => panic!("{args}: expected BadArgs, got {other:?}"),
            }
        }
    }
}
