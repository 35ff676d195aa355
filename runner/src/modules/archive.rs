//! The archive and unarchive modules, with ansible.builtin's (community.general's for
//! archive) arguments and results. archive builds archives in memory; unarchive reads
//! them as streams ([`super::archive_fmt`]), so no archive is ever held whole.
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
//! before anything is written. It reads the archive twice: a first pass reads every
//! header and hashes each file's content; the second extracts, walking from `dest`'s
//! descriptor one name at a time without following symlinks (so a user who can write
//! in `dest` cannot redirect a write by swapping a directory for a symlink midway),
//! writing each file as a new file renamed into place with its mode set on its
//! descriptor, and refusing any member that differs from what the first pass checked.
//! What one archive may expand to is capped (1 GiB; the variable
//! `rustle_unarchive_max_bytes` changes it), counting both what headers declare and
//! what decompression yields. Member owners are not restored (`owner`/`group` apply
//! to everything extracted, as in Ansible); `extra_opts`, `keep_newer`, `validate_certs`
//! and URL sources are not supported.

use super::archive_fmt::{self as fmt, Entry, Kind, Member, Members, ReadError};
use super::fsutil::{self, Attrs, Dir, Finish, Step, Stop, WriteError, WriteReq, fail};
use super::{Ctx, Diff, ModuleError, Outcome, args};
use crate::fnmatch::fnmatch as glob_match;
use crate::plan::Vars;
use std::ffi::OsStr;
use std::fs;
use std::io::{self, Read, Seek};
use std::os::unix::fs::MetadataExt;
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
pub(super) fn glob_paths(pattern: &str) -> Vec<PathBuf> {
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
                .and_then(|o| fmt::member_names(o, DEFAULT_MAX_EXPANDED).ok())
                .map(|names| names.iter().map(|n| format!("{n}\n")).collect())
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

/// What one archive may expand to unless the variable [`MAX_VAR`] says otherwise.
/// Archives are streamed to disk, so this is about the host's disk and the time spent,
/// not memory: 1 GiB fits software releases and most data sets, and stops a
/// decompression bomb (a few MB that inflate to terabytes) long before it fills a disk.
pub(super) const DEFAULT_MAX_EXPANDED: u64 = 1 << 30;

/// The variable that sets the limit, in bytes or with a unit (`4G`, `512MiB`). A
/// variable rather than a module argument: it can be set once per host or group in the
/// inventory, and playbooks stay valid for Ansible, which ignores unknown variables
/// but refuses unknown module arguments.
pub(super) const MAX_VAR: &str = "rustle_unarchive_max_bytes";

/// How many members, and how many bytes of names, one archive may list: the list is
/// held in memory while every member is checked before the first write.
const MAX_MEMBERS: usize = 1_000_000;
const MAX_NAME_BYTES: usize = 256 << 20;

pub(super) fn unarchive(a: &Vars, ctx: &Ctx<'_>) -> Result<Outcome, ModuleError> {
    fsutil::finish(unarchive_inner(a, ctx))
}

/// `2G`, `512MiB`, `1048576`: a byte count with an optional binary unit.
fn parse_size(s: &str) -> Option<u64> {
    let t = s.trim();
    let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let n: u64 = t.get(..digits)?.parse().ok()?;
    let unit = t.get(digits..)?.trim().to_ascii_lowercase();
    let shift = match unit.trim_end_matches('b').trim_end_matches('i') {
        "" => 0,
        "k" => 10,
        "m" => 20,
        "g" => 30,
        "t" => 40,
        _ => return None,
    };
    n.checked_mul(1 << shift)
}

/// The expansion limit for this task.
fn expansion_limit(ctx: &Ctx<'_>) -> Step<u64> {
    let v = ctx
        .vars
        .get_attr(MAX_VAR)
        .unwrap_or(minijinja::Value::UNDEFINED);
    if v.is_undefined() || v.is_none() {
        return Ok(DEFAULT_MAX_EXPANDED);
    }
    let n = match v.as_str() {
        Some(s) => parse_size(s),
        None => v.as_i64().and_then(|n| u64::try_from(n).ok()),
    };
    match n {
        Some(n) if n > 0 => Ok(n),
        _ => fail(format!(
            "{MAX_VAR} must be a positive number of bytes (or like 4G, 512MiB), got {v}"
        )),
    }
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

/// A member as the first pass saw it: what it is and, for a file, its content's hash.
struct Surveyed {
    member: Member,
    digest: Option<blake3::Hash>,
}

/// A selected member after validation: its index in the archive and where it goes.
struct Planned {
    idx: usize,
    rel: PathBuf,
}

/// Checks every member before anything is written.
fn plan_members(
    members: &[Surveyed],
    include: &[String],
    exclude: &[String],
) -> Result<Vec<Planned>, String> {
    let mut out = Vec::new();
    let mut links: Vec<PathBuf> = Vec::new();
    for (idx, s) in members.iter().enumerate() {
        let e = &s.member;
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
        out.push(Planned { idx, rel });
    }
    Ok(out)
}

/// The archive to read, twice: a file on the host (one descriptor, rewound) or bytes
/// embedded in the payload.
enum Source<'b> {
    File(fs::File),
    Bytes(&'b [u8]),
}

impl Source<'_> {
    fn members(&self, limit: u64) -> Result<(fmt::Format, Box<dyn Members + '_>), ReadError> {
        match self {
            Source::File(f) => {
                let mut r: &fs::File = f;
                r.rewind()?;
                fmt::open(r, limit)
            }
            Source::Bytes(b) => fmt::open(io::Cursor::new(*b), limit),
        }
    }
}

/// Copies into a file and a hash at once.
struct Tee<'a> {
    file: &'a mut fs::File,
    hash: &'a mut blake3::Hasher,
}

impl io::Write for Tee<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        self.hash.update(buf.get(..n).unwrap_or_default());
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

/// The first pass: every member's header, and each file's content hashed (streamed,
/// never held), so that all names are checked before anything is written and the
/// second pass can prove it extracts what was checked.
fn survey(source: &Source<'_>, limit: u64) -> Result<(fmt::Format, Vec<Surveyed>), ReadError> {
    let (format, mut rd) = source.members(limit)?;
    let mut out = Vec::new();
    let mut names = 0usize;
    while let Some(member) = rd.next_member()? {
        names += member.name.len();
        if let Kind::Symlink(t) | Kind::Hardlink(t) = &member.kind {
            names += t.len();
        }
        if out.len() >= MAX_MEMBERS || names > MAX_NAME_BYTES {
            return Err(ReadError::Format(format!(
                "it lists more than {MAX_MEMBERS} members or {} of names, more than is checked in memory",
                fmt::human_size(MAX_NAME_BYTES as u64)
            )));
        }
        let digest = if member.kind == Kind::File {
            let mut h = blake3::Hasher::new();
            io::copy(&mut rd, &mut h)?;
            Some(h.finalize())
        } else {
            None
        };
        out.push(Surveyed { member, digest });
    }
    Ok((format, out))
}

/// A failed write below dest as a failed task, in unarchive's words.
fn write_fail(rel: &Path, e: WriteError) -> Stop {
    match e {
        WriteError::Symlink { path } => fsutil::failed(Outcome::fail(format!(
            "refusing to write {} through the symlink {}",
            rel.display(),
            path.display()
        ))),
        other => other.into(),
    }
}

/// The directory that holds `rel` below dest, walked one name at a time from dest's
/// descriptor without following any symlink (a symlink on the way is refused). Missing
/// directories are created with `create` (less the umask); without it, `None` says one
/// is missing.
fn parent_dir(root: &Dir, rel: &Path, create: Option<u32>) -> Step<Option<Dir>> {
    let mut cur = root.try_clone().map_err(|e| write_fail(rel, e))?;
    for part in rel.parent().into_iter().flat_map(Path::components) {
        let name = part.as_os_str();
        if create.is_none() && cur.lstat(name).map_err(|e| write_fail(rel, e))?.is_none() {
            return Ok(None);
        }
        cur = cur.subdir(name, create).map_err(|e| write_fail(rel, e))?;
    }
    Ok(Some(cur))
}

/// The last name of a member's path (always there: member paths are never empty).
fn leaf(rel: &Path) -> &OsStr {
    rel.file_name().unwrap_or(rel.as_os_str())
}

/// Does the member already exist as it would be extracted?
fn up_to_date(root: &Dir, p: &Planned, s: &Surveyed, mode: u32) -> Step<bool> {
    let Some(dir) = parent_dir(root, &p.rel, None)? else {
        return Ok(false);
    };
    let name = leaf(&p.rel);
    let Some(m) = dir.lstat(name)? else {
        return Ok(false);
    };
    let perms_ok = m.mode() & 0o7777 == mode;
    Ok(match &s.member.kind {
        Kind::Dir => m.is_dir() && perms_ok,
        Kind::File => {
            m.is_file() && perms_ok && m.len() == s.member.size && {
                let mut h = blake3::Hasher::new();
                let mut f = dir.open_seen(name, &m)?;
                io::copy(&mut f, &mut h).is_ok() && Some(h.finalize()) == s.digest
            }
        }
        Kind::Symlink(t) => {
            m.file_type().is_symlink() && dir.read_link(name).is_ok_and(|l| l == Path::new(t))
        }
        Kind::Hardlink(t) => match member_path(t).ok().flatten() {
            Some(trel) => match parent_dir(root, &trel, None)? {
                Some(tdir) => tdir
                    .lstat(leaf(&trel))?
                    .is_some_and(|tm| fsutil::same_file(&tm, &m)),
                None => false,
            },
            None => false,
        },
        Kind::Other(_) => false,
    })
}

/// Removes whatever non-directory is at `name` (a directory is an error).
fn clear(dir: &Dir, name: &OsStr) -> Step<()> {
    match dir.lstat(name)? {
        Some(m) if m.is_dir() => fail(format!(
            "{} is a directory, cannot replace it with a non-directory",
            dir.shown(name).display()
        )),
        Some(_) => Ok(dir.remove(name)?),
        None => Ok(()),
    }
}

/// Writes one member, its content read from `content`. Everything goes through
/// descriptors: the parent directories are walked from dest without following
/// symlinks, a file is a new file renamed into place with its mode and mtime set on
/// the descriptor, a directory's mode is set on the directory's own descriptor.
fn extract(
    root: &Dir,
    rel: &Path,
    s: &Surveyed,
    content: &mut dyn Read,
    mode: u32,
    src: &str,
) -> Step<()> {
    let Some(dir) = parent_dir(root, rel, Some(0o777))? else {
        return fail(format!(
            "could not create the directories of {}",
            rel.display()
        ));
    };
    let name = leaf(rel);
    match &s.member.kind {
        Kind::Dir => {
            if dir.lstat(name)?.is_some_and(|m| !m.is_dir()) {
                dir.remove(name)?;
            }
            let d = dir
                .subdir(name, Some(mode))
                .map_err(|e| write_fail(rel, e))?;
            d.set_mode(mode)?;
        }
        Kind::File => {
            if dir.lstat(name)?.is_some_and(|m| m.is_dir()) {
                return fail(format!(
                    "{} is a directory, cannot extract a file there",
                    dir.shown(name).display()
                ));
            }
            // A fresh file renamed into place: an existing symlink there is replaced,
            // never written through.
            let mut new = dir.new_file(name)?;
            let mut hash = blake3::Hasher::new();
            let copied = io::copy(
                content,
                &mut Tee {
                    file: new.file(),
                    hash: &mut hash,
                },
            );
            if let Err(e) = copied {
                return fail(format!(
                    "could not extract {} from {src}: {}",
                    rel.display(),
                    ReadError::from(e)
                ));
            }
            if Some(hash.finalize()) != s.digest {
                return fail(format!(
                    "refusing to extract {}: {src} changed while it was being extracted",
                    rel.display()
                ));
            }
            // An mtime past what the system can represent is left at now.
            let mtime = UNIX_EPOCH.checked_add(Duration::from_secs(s.member.mtime));
            new.place(
                name,
                &Finish {
                    mode,
                    mtime,
                    ..Finish::default()
                },
            )?;
        }
        Kind::Symlink(t) => {
            clear(&dir, name)?;
            dir.symlink(Path::new(t), name)?;
        }
        Kind::Hardlink(t) => {
            let not_file = || {
                fail(format!(
                    "hard link '{}' points to '{t}', which is not a regular file in dest",
                    s.member.name
                ))
            };
            let Some(trel) = member_path(t).ok().flatten() else {
                return not_file();
            };
            let Some(tdir) = parent_dir(root, &trel, None)? else {
                return not_file();
            };
            let tname = leaf(&trel);
            let Some(tm) = tdir.lstat(tname)?.filter(fs::Metadata::is_file) else {
                return not_file();
            };
            clear(&dir, name)?;
            dir.hard_link(&tdir, tname, name)?;
            // The link must be to the file just checked, not to what replaced it.
            if !dir.lstat(name)?.is_some_and(|m| fsutil::same_file(&m, &tm)) {
                let _ = dir.remove(name);
                return Err(WriteError::Replaced {
                    path: tdir.shown(tname),
                    dir: tdir.path().to_path_buf(),
                }
                .into());
            }
        }
        Kind::Other(_) => {}
    }
    Ok(())
}

/// A failed read of the archive, in unarchive's words.
fn read_fail(src: &str, e: ReadError) -> Stop {
    fsutil::failed(Outcome::fail(match e {
        ReadError::TooLarge { limit } => format!(
            "refusing to extract {src}: it expands to more than {} (the limit for one archive; set the variable {MAX_VAR} to change it)",
            fmt::human_size(limit)
        ),
        ReadError::Format(m) => format!("Failed to find handler for \"{src}\": {m}"),
        ReadError::Io(e) => format!("Source '{src}' failed to read: {e}"),
    }))
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
    let limit = expansion_limit(ctx)?;
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
    let source = if remote_src {
        match fs::File::open(&src) {
            Ok(f) => Source::File(f),
            Err(e) => return fail(format!("Source '{src}' failed to read: {e}")),
        }
    } else {
        Source::Bytes(&fsutil::embedded(ctx, &src)?.content)
    };
    let (format, members) = survey(&source, limit).map_err(|e| read_fail(&src, e))?;
    let planned = match plan_members(&members, &include, &exclude) {
        Ok(p) => p,
        Err(e) => return fail(format!("refusing to extract {src}: {e}")),
    };
    let root = Dir::open(&dest).map_err(|e| fsutil::io_fail("open", &dest, &e))?;
    let want_mode = |p: &Planned| {
        attrs
            .mode
            .unwrap_or(members.get(p.idx).map_or(0, |s| s.member.mode) & 0o7777)
    };
    // Symlinks already on disk are checked for every member before the first write.
    for p in &planned {
        parent_dir(&root, &p.rel, None)?;
    }
    let mut changed_members = Vec::new();
    let mut todo: Vec<Option<&Planned>> = members.iter().map(|_| None).collect();
    for p in &planned {
        let Some(s) = members.get(p.idx) else {
            continue;
        };
        if !up_to_date(&root, p, s, want_mode(p))? {
            changed_members.push(p.rel.display().to_string());
            if let Some(slot) = todo.get_mut(p.idx) {
                *slot = Some(p);
            }
        }
    }
    if !ctx.check_mode && !changed_members.is_empty() {
        // The second pass: the same members in the same order, or the archive changed.
        let changed = || {
            fail(format!(
                "refusing to extract {src}: it changed while it was being extracted"
            ))
        };
        let (_, mut rd) = source.members(limit).map_err(|e| read_fail(&src, e))?;
        let mut idx = 0usize;
        while let Some(m) = rd.next_member().map_err(|e| read_fail(&src, e))? {
            let Some(s) = members.get(idx).filter(|s| s.member == m) else {
                return changed();
            };
            if let Some(p) = todo.get(idx).copied().flatten() {
                extract(&root, &p.rel, s, &mut rd, want_mode(p), &src)?;
            }
            idx += 1;
        }
        if idx != members.len() {
            return changed();
        }
        // Belt and braces: a link that resolves (through links already in dest)
        // outside dest is removed again.
        for p in planned.iter().filter(|p| {
            members
                .get(p.idx)
                .is_some_and(|s| matches!(s.member.kind, Kind::Symlink(_)))
        }) {
            let path = dest.join(&p.rel);
            if let Ok(real) = fs::canonicalize(&path)
                && !real.starts_with(&dest)
            {
                if let Some(dir) = parent_dir(&root, &p.rel, None)? {
                    let _ = dir.remove(leaf(&p.rel));
                }
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
            sym: None,
            ..attrs
        };
        for p in &planned {
            let Some(dir) = parent_dir(&root, &p.rel, None)? else {
                continue;
            };
            let c = fsutil::apply_attrs_at(&dir, leaf(&p.rel), &owners, false, ctx.check_mode)?;
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
            members
                .iter()
                .map(|s| s.member.name.clone())
                .collect::<Vec<_>>(),
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
    use super::{MAX_VAR, parse_size};
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
                    let got = super::super::archive_fmt::read_all(
                        &fs::read(&dest).unwrap(),
                        None,
                        u64::MAX,
                    )
                    .unwrap()
                    .1;
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

    fn run_with_vars(
        dir: &Path,
        args: Value,
        files: &BTreeMap<String, HostFile>,
        vars: Value,
    ) -> Outcome {
        let args = crate::modules::args_in(dir, &args);
        crate::modules::run_for_test("unarchive", &args, files, &vars, false).unwrap()
    }

    /// A tar header for a file of `size` bytes (only the header: the content follows).
    fn tar_header_for(name: &str, size: u64) -> Vec<u8> {
        let tar = fmt::write_tar(&[entry(name, Kind::File, b"")]);
        let mut h = tar[..512].to_vec();
        let field = format!("{size:011o}\0");
        h[124..136].copy_from_slice(field.as_bytes());
        h[148..156].copy_from_slice(b"        ");
        let sum: u32 = h.iter().map(|b| u32::from(*b)).sum();
        h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
        h
    }

    /// A zstd frame that expands to `prefix` then `zeros` zero bytes, made of RLE
    /// blocks (4 bytes per 128 KiB): a decompression bomb of a few dozen KiB.
    fn zstd_zero_bomb(prefix: &[u8], zeros: u64) -> Vec<u8> {
        let mut out = vec![0x28, 0xb5, 0x2f, 0xfd, 0x00, 0x50]; // no size, 1 MiB window
        let block = |out: &mut Vec<u8>, last: bool, kind: u32, size: u32| {
            let h = u32::from(last) | kind << 1 | size << 3;
            out.extend(&h.to_le_bytes()[..3]);
        };
        block(&mut out, false, 0, prefix.len() as u32);
        out.extend(prefix);
        let mut left = zeros;
        while left > 0 {
            let n = left.min(128 * 1024);
            left -= n;
            block(&mut out, left == 0, 1, n as u32);
            out.push(0);
        }
        out
    }

    /// The process's peak resident memory so far, in KiB.
    fn peak_rss_kib() -> u64 {
        fs::read_to_string("/proc/self/status")
            .unwrap()
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap()
    }

    /// A few dozen KiB of zstd that say they hold a 2 GiB file of zeros: refused at the
    /// default limit, before anything is written, without the whole thing ever being
    /// in memory (the old reader inflated every archive into memory, twice).
    #[test]
    fn a_zstd_bomb_is_refused_at_the_default_limit_without_filling_memory() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path();
        let size = 2u64 << 30;
        let bomb = zstd_zero_bomb(&tar_header_for("zeros.bin", size), size + 1024);
        assert!(bomb.len() < 100_000, "{}", bomb.len());
        let before = peak_rss_kib();
        let out = run_with_vars(
            p,
            json!({"src": "files/bomb.tar.zst", "dest": "{p}"}),
            &embedded("files/bomb.tar.zst", bomb),
            json!({}),
        );
        let grew = peak_rss_kib().saturating_sub(before);
        assert!(out.failed, "{out:?}");
        let msg = out.msg.unwrap();
        assert!(
            msg.contains("files/bomb.tar.zst") && msg.contains("1 GiB") && msg.contains(MAX_VAR),
            "{msg}"
        );
        assert_eq!(fs::read_dir(p).unwrap().count(), 0, "something was written");
        assert!(grew < 256 * 1024, "peak memory grew by {grew} KiB");
    }

    /// The limit is what the variable says: a 64 MiB file in a tar.gz (64 KiB of gzip)
    /// is refused under `rustle_unarchive_max_bytes: 1M`, and extracted under `128M`,
    /// streamed to disk.
    #[test]
    fn the_expansion_limit_is_set_by_a_variable() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path();
        let zeros = vec![0u8; 64 << 20];
        let tgz = fmt::gzip(&fmt::write_tar(&[entry("big.bin", Kind::File, &zeros)]));
        assert!(tgz.len() < 1 << 20);
        let files = embedded("files/big.tgz", tgz);
        let args = json!({"src": "files/big.tgz", "dest": "{p}"});
        let small = run_with_vars(p, args.clone(), &files, json!({MAX_VAR: "1M"}));
        assert!(small.failed, "{small:?}");
        let msg = small.msg.unwrap();
        assert!(msg.contains("1 MiB") && msg.contains(MAX_VAR), "{msg}");
        assert!(!p.join("big.bin").exists());
        let big = run_with_vars(p, args.clone(), &files, json!({MAX_VAR: 128 << 20}));
        assert!(big.changed && !big.failed, "{big:?}");
        assert_eq!(fs::metadata(p.join("big.bin")).unwrap().len(), 64 << 20);
        let bad = run_with_vars(p, args, &files, json!({MAX_VAR: "lots"}));
        assert!(bad.failed && bad.msg.unwrap().contains(MAX_VAR));
        assert_eq!(parse_size("512MiB"), Some(512 << 20));
        assert_eq!(parse_size("2g"), Some(2 << 30));
        assert_eq!(parse_size("7"), Some(7));
        assert_eq!(parse_size("1 KB"), Some(1024));
        assert_eq!(parse_size("3X"), None);
    }

    /// A tar member's mtime is taken as given; one past what the system clock can hold
    /// (base-256 numbers go far past it) used to panic in `UNIX_EPOCH + Duration`.
    #[test]
    fn an_mtime_beyond_the_clock_does_not_panic() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path();
        let mut tar = fmt::write_tar(&[entry("late.txt", Kind::File, b"late\n")]);
        // Base-256: high bit set, then a big-endian number (here 2^63 s, past i64).
        tar[136..148].copy_from_slice(&[0x80, 0, 0, 0, 0x80, 0, 0, 0, 0, 0, 0, 0]);
        tar[148..156].copy_from_slice(b"        ");
        let sum: u32 = tar[..512].iter().map(|b| u32::from(*b)).sum();
        tar[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
        let out = run(
            "unarchive",
            p,
            json!({"src": "files/late.tar", "dest": "{p}"}),
            &embedded("files/late.tar", tar),
            false,
        )
        .unwrap();
        assert!(out.changed && !out.failed, "{out:?}");
        assert_eq!(fs::read(p.join("late.txt")).unwrap(), b"late\n");
    }

    /// unarchive into a directory the test user owns, with that user swapping every
    /// member's temp file (and every new member directory) for a symlink to a root-only
    /// file: root used to chmod those by name (the victim became 0644).
    #[test]
    fn member_files_and_directories_swapped_for_symlinks_are_never_chmodded() {
        let s = crate::modules::fsutil::hostile::Scene::new("rustle-ta-unarc");
        let swapper = s.swapper(&s.home, &[".rustle-unarchive", ".rustle-tmp", ".dirm"]);
        let mut failures = Vec::new();
        for i in 0..30 {
            let mut entries = Vec::new();
            for f in 0..8 {
                let body = format!("{i}:{f}\n").repeat(256 * 1024);
                entries.push(entry(&format!("m{f}.txt"), Kind::File, body.as_bytes()));
                entries.push(entry(&format!("d{i}-{f}.dirm"), Kind::Dir, b""));
            }
            // A module error fails the task just as a failed outcome does: the
            // attacker may catch a name between its rename and its symlink, and then
            // the open finds nothing there.
            match run(
                "unarchive",
                &s.home,
                json!({"src": "files/a.tar", "dest": "{p}"}),
                &embedded("files/a.tar", fmt::write_tar(&entries)),
                false,
            ) {
                Ok(out) if out.failed => failures.push(out.msg.unwrap_or_default()),
                Ok(_) => {}
                Err(e) => failures.push(e.to_string()),
            }
        }
        let swapped = swapper.finish();
        assert!(
            swapped > 0,
            "the attacker never caught a name: nothing was tested"
        );
        s.victim_untouched();
        for msg in &failures {
            assert!(
                msg.contains("was replaced while being written")
                    || msg.contains("symlink")
                    || msg.contains("No such file"),
                "{msg}"
            );
        }
    }

    /// The user replaces a directory the archive just created with a symlink to a root
    /// directory; later members must not follow it (the old code checked for symlinks
    /// once, before writing, then created parents with create_dir_all, which follows).
    #[test]
    fn a_parent_swapped_for_a_symlink_midway_is_not_followed() {
        let mut entries = Vec::new();
        for f in 0..400 {
            entries.push(entry(&format!("sub/f{f:03}"), Kind::File, &[b'x'; 4096]));
        }
        let files = embedded("files/p.tar", fmt::write_tar(&entries));
        // The attacker is a process of its own: on a loaded machine it may not be
        // scheduled while the directory exists. Such a run tests nothing; try again.
        for _ in 0..5 {
            let s = crate::modules::fsutil::hostile::Scene::new("rustle-ta-parent");
            let swapper = s.swapper_to(&s.home, &["sub"], s.vault());
            let out = run(
                "unarchive",
                &s.home,
                json!({"src": "files/p.tar", "dest": "{p}"}),
                &files,
                false,
            );
            let swapped = swapper.finish();
            s.victim_untouched();
            if swapped == 0 {
                continue;
            }
            // A module error fails the task as a failed outcome does (the open may
            // come between the attacker's rename and its symlink).
            let msg = match out {
                Ok(out) => {
                    assert!(out.failed, "{out:?}");
                    out.msg.unwrap()
                }
                Err(e) => e.to_string(),
            };
            assert!(
                msg.contains("symlink") || msg.contains("replaced") || msg.contains("No such file"),
                "{msg}"
            );
            return;
        }
        panic!("the attacker never caught the directory in 5 runs: nothing was tested");
    }
}
