//! The copy module: write given content, an embedded file or directory, or
//! (remote_src) a file on the host to a destination, with ansible.builtin.copy's
//! semantics.
//!
//! `validate` runs its command (`%s` standing for a temp file holding the new content)
//! before a changed file replaces `dest`; a failing check leaves `dest` untouched.
//! An embedded directory (the packer embeds it file by file as `dir/sub/file`) is
//! copied recursively: `src: dir` creates `dest/dir`, `src: dir/` copies its contents
//! into `dest`, as Ansible does.
//!
//! `decrypt` is accepted; a vault-encrypted `src` is copied only with `decrypt: false`
//! (the runner holds no vault secret).
//! A `remote_src` directory is copied on the host as the module copies one
//! ([`copy_remote_dir`]). An embedded directory brings its directories and links too
//! (`plan::Layout`): the copy makes every directory (empty ones too) and, with
//! `local_follow: false` or for a link that could not be followed, the links, through
//! the file module as the action does. Not supported (refused as an unknown argument):
//! `checksum`.

use super::fsutil::{self, Attrs, Step, WriteReq, fail};
use super::{Ctx, Diff, ModuleError, Outcome, args};
use crate::plan::Vars;
use serde_json::Value;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// The arguments copy takes (SSH mode checks the same).
pub const KNOWN: &[&str] = &[
    "content",
    "src",
    "dest",
    "mode",
    "owner",
    "group",
    "force",
    "backup",
    "follow",
    "remote_src",
    "validate",
    "directory_mode",
    "decrypt",
    "attributes",
    "attr",
    "local_follow",
];

pub(super) fn run(a: &Vars, ctx: &Ctx<'_>) -> Result<Outcome, ModuleError> {
    fsutil::finish(run_inner(a, ctx))
}

/// `content` as bytes: a string as is; YAML that parsed into a list or mapping is
/// written as JSON, as Ansible does.
fn content_arg(a: &Vars) -> Result<Option<Vec<u8>>, ModuleError> {
    match a.get("content") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone().into_bytes())),
        // Python's json.dumps text (", " and ": "), as Ansible writes it.
        Some(v @ (Value::Array(_) | Value::Object(_))) => {
            Ok(Some(crate::template::python_json(v).into_bytes()))
        }
        Some(other) => Ok(Some(other.to_string().into_bytes())),
    }
}

/// The copy action's checks before anything runs, with its messages: an empty `src`
/// counts as none, `content: ""` as given. SSH mode's copy makes the same checks.
pub fn action_check(a: &Vars) -> Option<String> {
    for internal in ["_original_basename", "_diff_peek"] {
        if a.get(internal).is_some_and(|v| !v.is_null()) {
            return Some(format!("Invalid parameter specified: \"{internal}\""));
        }
    }
    let given = |k: &str| match a.get(k) {
        None | Some(Value::Null) => false,
        Some(Value::String(s)) => !s.is_empty(),
        Some(_) => true,
    };
    let content = a.get("content").is_some_and(|v| !v.is_null());
    let dest = a.get("dest").and_then(Value::as_str);
    if !given("src") && !content {
        Some("src (or content) is required".into())
    } else if !given("dest") {
        Some("dest is required".into())
    } else if given("src") && content {
        Some("src and content are mutually exclusive".into())
    } else if content && dest.is_some_and(|d| d.ends_with('/')) {
        Some("can not use content with a dir as dest".into())
    } else {
        None
    }
}

fn run_inner(a: &Vars, ctx: &Ctx<'_>) -> Step<Outcome> {
    if let Some(msg) = action_check(a) {
        return fail(msg);
    }
    args::only(a, KNOWN)?;
    // `src` and `dest` are paths to the module: `~` and `$VAR` expand on the host.
    let dest = super::command::expand_path(&args::req_str(a, "dest")?, ctx);
    if dest.is_empty() {
        return Err(ModuleError::BadArgs("argument 'dest' must not be empty".into()).into());
    }
    let content = content_arg(a)?;
    let src = args::opt_str(a, "src")?;
    let remote_src = args::bool_or(a, "remote_src", false)?;
    let force = args::bool_or(a, "force", true)?;
    let backup = args::bool_or(a, "backup", false)?;
    let follow = args::bool_or(a, "follow", false)?;
    let validate = validate_arg(a)?;
    let directory_mode = args::opt_mode(a, "directory_mode")?;
    // `mode: preserve` gives the destination the source's mode.
    let preserve = args::opt_str(a, "mode")?.is_some_and(|m| m == "preserve");
    let attrs = if preserve {
        let mut rest = a.clone();
        rest.shift_remove("mode");
        Attrs::from_args(&rest)?
    } else {
        Attrs::from_args(a)?
    };

    let (bytes, src_mode, src_name) = match (content, src) {
        (Some(_), Some(_)) => {
            return Err(ModuleError::BadArgs(
                "arguments 'src' and 'content' are mutually exclusive".into(),
            )
            .into());
        }
        (None, None) => {
            return Err(ModuleError::BadArgs(
                "missing required argument 'src' or 'content'".into(),
            )
            .into());
        }
        (Some(c), None) => (c, None, None),
        (None, Some(s)) if remote_src => {
            let s = super::command::expand_path(&s, ctx);
            let p = std::path::Path::new(&s);
            if p.is_dir() {
                let mode = if preserve {
                    fs::metadata(p)
                        .ok()
                        .map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o7777)
                } else {
                    attrs.mode
                };
                let attrs = Attrs { mode, ..attrs };
                // The module follows links only when told (`local_follow: true`).
                let follow = args::opt_bool(a, "local_follow")? == Some(true);
                let how = RemoteDir {
                    attrs,
                    force,
                    directory_mode,
                    follow,
                };
                return copy_remote_dir(&s, &dest, &how, ctx);
            }
            // As the module checks a remote source: there, then a regular file (a
            // device such as /dev/null is refused, not read).
            match fs::metadata(p) {
                Err(_) => return fail(format!("Source {s} not found")),
                Ok(m) if !m.is_file() => {
                    return fail(format!("Cannot copy invalid source '{s}': not a file"));
                }
                Ok(_) => {}
            }
            let bytes = std::fs::read(p).map_err(|e| fsutil::io_fail("read", p, &e))?;
            let mode = std::fs::metadata(p)
                .ok()
                .map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o7777);
            (bytes, mode, Some(s))
        }
        (None, Some(s)) if !ctx.files.contains_key(&s) && has_embedded_dir(ctx, &s) => {
            let dir = DirCopy {
                src: &s,
                dest: &dest,
                attrs,
                preserve,
                force,
                backup,
                validate: validate.as_deref(),
                directory_mode,
                local_follow: args::bool_or(a, "local_follow", true)?,
                args: a,
            };
            if args::bool_or(a, "decrypt", true)? {
                // As the action, which opens every file of the tree before copying any,
                // in os.walk's order: a directory's files before its subdirectories'.
                let prefix = format!("{}/", s.trim_end_matches('/'));
                let walk_order = |k: &str| {
                    let (dir, name) = k.rsplit_once('/').unwrap_or(("", k));
                    format!("{dir}/\0{name}")
                };
                let first = (ctx.files.range(prefix.clone()..))
                    .take_while(|(k, _)| k.starts_with(&prefix))
                    .filter(|(_, f)| is_vaulted(&f.content))
                    .map(|(k, _)| k)
                    .min_by_key(|k| walk_order(k));
                if let Some(key) = first {
                    return fail(no_vault_secret(key));
                }
            }
            return copy_dir(&dir, ctx);
        }
        (None, Some(s)) => {
            let f = fsutil::embedded(ctx, &s)?;
            if args::bool_or(a, "decrypt", true)? && is_vaulted(&f.content) {
                return fail(no_vault_secret(&s));
            }
            (f.content.clone(), f.mode, Some(s))
        }
    };
    let attrs = if preserve {
        Attrs {
            mode: src_mode,
            ..attrs
        }
    } else {
        attrs
    };
    let into_dir = dest.ends_with('/');
    let dest = fsutil::resolve_dest(&dest, src_name.as_deref())?;
    // A `dest` ending in `/` is a directory the module makes when missing (with
    // `directory_mode`), as it does for a recursive copy.
    let mut made_dir = false;
    if into_dir
        && let Some(dir) = dest.parent()
        && !dir.exists()
    {
        if ctx.check_mode {
            return Ok(Outcome::changed(true).with("dest", dest.display().to_string()));
        }
        let missing: Vec<&Path> = (dir.ancestors())
            .take_while(|d| !d.as_os_str().is_empty() && !d.exists())
            .collect();
        make_dirs(dir, directory_mode)?;
        if let Some(mode) = directory_mode {
            // The umask must not narrow an explicit directory_mode.
            for d in missing {
                fs::set_permissions(d, std::os::unix::fs::PermissionsExt::from_mode(mode))
                    .map_err(|e| fsutil::io_fail("set the mode of", d, &e))?;
            }
        }
        made_dir = true;
    }
    if let Some(v) = &validate {
        validate_content(v, &dest, &bytes, follow, ctx)?;
    }
    let req = WriteReq {
        dest: &dest,
        content: &bytes,
        attrs,
        force,
        backup,
        follow,
        src: src_name.as_deref(),
        new_mode: if preserve { src_mode } else { None },
    };
    let mut out = fsutil::write_file(&req, ctx)?;
    out.changed |= made_dir;
    if src_name.is_none() {
        // Given `content`, the action writes it to a local file first and shows the
        // destination as the diff's new side.
        for d in &mut out.diff {
            d.after_header = dest.display().to_string();
        }
    }
    Ok(out)
}

/// Whether a controller file is vault-encrypted.
fn is_vaulted(content: &[u8]) -> bool {
    content.starts_with(b"$ANSIBLE_VAULT;")
}

/// Why a vaulted controller file cannot be copied with `decrypt` (the default), in
/// Ansible's words: the packer opens only files a task names literally (with the
/// deploy's vault password), and the runner holds no vault secret, so a vaulted file
/// reaching it is one it cannot open; `decrypt: false` copies it as it is.
fn no_vault_secret(name: &str) -> String {
    format!("A vault password or secret must be specified to decrypt {name}")
}

/// True when the payload holds files, directories or links under `src/` (a directory
/// copied by name; it may hold no file at all).
fn has_embedded_dir(ctx: &Ctx<'_>, src: &str) -> bool {
    let prefix = format!("{}/", src.trim_end_matches('/'));
    let under = |k: &String| k.starts_with(&prefix);
    ctx.files
        .range(prefix.clone()..)
        .next()
        .is_some_and(|(k, _)| under(k))
        || ctx
            .layout
            .dirs
            .range(prefix.clone()..)
            .next()
            .is_some_and(under)
        || (ctx.layout.links.range(prefix.clone()..).next()).is_some_and(|(k, _)| under(k))
}

/// The `validate` argument: a command line with `%s` for the file to check.
pub(super) fn validate_arg(a: &Vars) -> Result<Option<String>, ModuleError> {
    let validate = args::opt_str(a, "validate")?;
    if let Some(v) = &validate
        && !v.contains("%s")
    {
        return Err(ModuleError::BadArgs(format!(
            "argument 'validate' must contain %s (the file to check), got '{v}'"
        )));
    }
    Ok(validate)
}

/// Runs `validate` on a temp file holding the new content, when the content is about
/// to replace dest (not in check mode, not when nothing changes: Ansible does the same).
pub(super) fn validate_content(
    cmd: &str,
    dest: &Path,
    content: &[u8],
    follow: bool,
    ctx: &Ctx<'_>,
) -> Step<()> {
    if ctx.check_mode {
        return Ok(());
    }
    let current = if follow {
        fs::read(dest).ok()
    } else {
        fsutil::lstat(dest)?
            .filter(|m| m.is_file())
            .and_then(|_| fs::read(dest).ok())
    };
    if current.as_deref() == Some(content) {
        return Ok(());
    }
    let parent = match dest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if !parent.is_dir() {
        // write_file reports the missing directory.
        return Ok(());
    }
    let base = dest
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    let tmp = parent.join(format!(".{base}.{}.rustle-validate", std::process::id()));
    let _ = fs::remove_file(&tmp);
    let written = fs::File::options()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .and_then(|mut f| f.write_all(content));
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(fsutil::io_fail(
            "write a temp file for validate beside",
            dest,
            &e,
        ));
    }
    let line = cmd.replace("%s", &tmp.display().to_string());
    let result = super::command::split(&line)
        .map_err(|e| format!("cannot parse validate command: {e}"))
        .and_then(|argv| {
            let (program, rest) = argv
                .split_first()
                .ok_or_else(|| "validate command is empty".to_string())?;
            // Through the task's door: its environment and become_user.
            ctx.command(program)
                .args(rest)
                .stdin(std::process::Stdio::null())
                .output()
                .map_err(|e| format!("could not run validate command {program}: {e}"))
        });
    let _ = fs::remove_file(&tmp);
    match result {
        Err(msg) => fail(format!("failed to validate: {msg}")),
        Ok(out) if out.status.success() => Ok(()),
        Ok(out) => Err(fsutil::failed(
            Outcome::fail("failed to validate")
                .with("exit_status", out.status.code().unwrap_or(-1))
                .with("stdout", String::from_utf8_lossy(&out.stdout).into_owned())
                .with("stderr", String::from_utf8_lossy(&out.stderr).into_owned())
                .with("validate", line),
        )),
    }
}

/// How [`copy_remote_dir`] copies.
struct RemoteDir {
    attrs: Attrs,
    force: bool,
    directory_mode: Option<u32>,
    /// `local_follow: true`: links in the tree are copied as what they point at.
    follow: bool,
}

/// `remote_src` with a directory `src`, as the copy module handles one on the host: a
/// `dest` ending in `/` is created first (with `directory_mode`); the tree then goes to
/// `dest` (`src` ending in `/`) or `dest/<basename of src>`, copied whole (as
/// `shutil.copytree`: modes and times kept, symlinks as symlinks, empty directories
/// too) where nothing is there yet, else only the files whose content differs and the
/// entries only `src` has, directory by directory (as `filecmp.dircmp` finds them);
/// `owner` and `group` apply to everything below, `mode` to the destination itself.
fn copy_remote_dir(src: &str, dest: &str, how: &RemoteDir, ctx: &Ctx<'_>) -> Step<Outcome> {
    let RemoteDir {
        ref attrs,
        force,
        directory_mode,
        follow,
    } = *how;
    let check = ctx.check_mode;
    let mut changed = false;
    if dest.ends_with('/') {
        let dirname = dest.trim_end_matches('/');
        if !dirname.is_empty() && !Path::new(dirname).exists() {
            if check {
                return Ok(Outcome::changed(true)
                    .with("msg", format!("dest directory {dirname} would be created"))
                    .with("src", src));
            }
            make_dirs(Path::new(dirname), directory_mode)?;
            changed = true;
        }
    }
    let base = Path::new(src)
        .file_name()
        .filter(|_| !src.ends_with('/'))
        .map(|b| b.to_string_lossy().into_owned())
        .unwrap_or_default();
    // Where the result says it copied to: the module's `dest` after its checks.
    let mut shown = dest.to_string();
    if Path::new(dest).is_dir() {
        shown = crate::resolve::join(dest, &base);
    }
    if Path::new(&shown).exists() {
        if !force {
            return Ok(Outcome::ok()
                .with("msg", "file already exists")
                .with("src", src)
                .with("dest", shown));
        }
    } else {
        let parent = Path::new(shown.trim_end_matches('/'))
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        if !check && !parent.exists() {
            return fail(format!(
                "Destination directory {} does not exist",
                parent.display()
            ));
        }
    }
    let target = if base.is_empty() {
        PathBuf::from(dest)
    } else {
        Path::new(dest).join(&base)
    };
    let ids = Attrs {
        mode: None,
        sym: None,
        ..attrs.clone()
    };
    if fsutil::lstat(&target)?.is_none() {
        if !check {
            make_dirs(target.parent().unwrap_or(Path::new("/")), directory_mode)?;
            copy_tree(Path::new(src), &target, &ids, follow, 0, ctx)?;
        }
        changed = true;
    } else {
        changed |= copy_tree(Path::new(src), &target, &ids, follow, 0, ctx)?;
    }
    let shown_path = Path::new(shown.trim_end_matches('/'));
    if fsutil::lstat(shown_path)?.is_some() {
        changed |= !fsutil::apply_attrs(shown_path, attrs, true, check)?.is_empty();
    }
    Ok(Outcome::changed(changed)
        .with("src", src)
        .with("dest", shown))
}

/// Creates `dir` and its missing parents, each with `mode` (default 0755, less the umask).
fn make_dirs(dir: &Path, mode: Option<u32>) -> Step<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(mode.unwrap_or(0o755))
        .create(dir)
        .map_err(|e| fsutil::io_fail("create", dir, &e))
}

/// Brings the directory `to` in line with `from` (both on this host): an entry only
/// `from` has is copied whole (a file with its mode and time, a symlink as a symlink, a
/// directory recursively, with its mode);
/// a file both have whose content differs gets `from`'s content and mode; directories
/// both have are compared the same way. `ids` (owner, group) applies to everything.
/// Whether anything changed (or would, in check mode).
fn copy_tree(
    from: &Path,
    to: &Path,
    ids: &Attrs,
    follow: bool,
    depth: usize,
    ctx: &Ctx<'_>,
) -> Step<bool> {
    use std::os::unix::fs::MetadataExt as _;
    if depth > MAX_TREE_DEPTH {
        // Followed links can lead round in a circle; Python's copytree fails there too.
        return fail(format!(
            "{}: more than {MAX_TREE_DEPTH} levels of directories (a link leading back?)",
            from.display()
        ));
    }
    let check = ctx.check_mode;
    let io = |action: &str, p: &Path| {
        let p = p.to_path_buf();
        let action = action.to_string();
        move |e: std::io::Error| fsutil::io_fail(&action, &p, &e)
    };
    let from_meta = fs::metadata(from).map_err(io("read", from))?;
    let new_top = fsutil::lstat(to)?.is_none();
    if new_top {
        if check {
            return Ok(true);
        }
        fs::DirBuilder::new()
            .mode(from_meta.mode() & 0o7777)
            .create(to)
            .map_err(io("create", to))?;
    }
    let dir = crate::atomic::Dir::open(to).map_err(io("open", to))?;
    let mut names: Vec<std::ffi::OsString> = fs::read_dir(from)
        .map_err(io("read", from))?
        .filter_map(|e| e.ok().map(|e| e.file_name()))
        .collect();
    names.sort();
    let mut changed = new_top;
    for name in names {
        let src = from.join(&name);
        let lmeta = fs::symlink_metadata(&src).map_err(io("read", &src))?;
        let here = dir.lstat(&name)?;
        let dest = to.join(&name);
        // Followed, a link is what it points at (a link to nothing stays a link).
        let followed = (follow && lmeta.file_type().is_symlink())
            .then(|| fs::metadata(&src).ok())
            .flatten();
        let is_link = lmeta.file_type().is_symlink() && followed.is_none();
        let is_dir = followed
            .as_ref()
            .map_or(lmeta.is_dir(), fs::Metadata::is_dir);
        if is_link && here.is_none() {
            changed = true;
            if !check {
                let target = fs::read_link(&src).map_err(io("read", &src))?;
                dir.symlink(&target, &name)?;
            }
        } else if is_dir {
            match &here {
                Some(m) if !m.is_dir() => continue,
                _ => changed |= copy_tree(&src, &dest, ids, follow, depth + 1, ctx)?,
            }
        } else if let Ok(meta) = fs::metadata(&src)
            && meta.is_file()
        {
            let same = match &here {
                None => false,
                Some(m) if !m.is_file() => continue,
                // dircmp's shallow comparison: same size and time is the same file.
                Some(m) if m.len() == meta.len() && m.mtime() == meta.mtime() => true,
                Some(_) => fs::read(&dest).ok() == Some(fs::read(&src).map_err(io("read", &src))?),
            };
            if same {
                continue;
            }
            changed = true;
            if !check {
                let content = fs::read(&src).map_err(io("read", &src))?;
                let mut new = dir.new_file(&name)?;
                new.file().write_all(&content).map_err(io("write", &dest))?;
                let fin = crate::atomic::Finish {
                    mode: meta.mode() & 0o7777,
                    // copytree keeps a new file's time; a changed one gets a new one.
                    mtime: here.is_none().then(|| meta.modified().ok()).flatten(),
                    ..Default::default()
                };
                new.place(&name, &fin)?;
            }
        }
        if !check && (ids.uid.is_some() || ids.gid.is_some()) {
            changed |= !fsutil::apply_attrs(&dest, ids, false, false)?.is_empty();
        }
    }
    if ids.uid.is_some() || ids.gid.is_some() {
        changed |= !fsutil::apply_attrs(to, ids, true, check)?.is_empty();
    }
    if new_top {
        // As copystat at the end of copytree: the new directory gets src's mode
        // whatever the umask.
        dir.set_mode(from_meta.mode() & 0o7777)?;
    }
    Ok(changed)
}

/// How deep [`copy_tree`] goes.
const MAX_TREE_DEPTH: usize = 64;

/// A recursive copy of an embedded directory.
struct DirCopy<'a> {
    src: &'a str,
    dest: &'a str,
    attrs: Attrs,
    preserve: bool,
    force: bool,
    backup: bool,
    validate: Option<&'a str>,
    directory_mode: Option<u32>,
    /// Links in the tree are followed (the default), or copied as links.
    local_follow: bool,
    /// The task's arguments, whose file arguments the directories and links get.
    args: &'a Vars,
}

/// What of an embedded tree under `prefix` a copy makes besides the files, as the
/// action's walk gives it: the directories, and the links (with their text) made as
/// links. Without `local_follow`, everything below a link is left out (the link is
/// made instead); with it, only links that could not be followed (to nothing, or back
/// to a directory they lie in) are made as links. Also which files to leave out.
struct Shape {
    dirs: Vec<String>,
    links: Vec<(String, String)>,
    skipped: std::collections::BTreeSet<String>,
}

fn shape(prefix: &str, local_follow: bool, ctx: &Ctx<'_>) -> Shape {
    let layout = ctx.layout;
    let in_tree = |k: &&String| k.starts_with(prefix);
    // Below a link, strictly: the tree's own top may be a link, which is walked.
    let below_link = |k: &str| {
        let rel = &k[prefix.len()..];
        rel.match_indices('/')
            .any(|(i, _)| layout.links.contains_key(&k[..prefix.len() + i]))
    };
    let kept = |k: &str| local_follow || !(below_link(k) || layout.links.contains_key(k));
    let mut dirs: std::collections::BTreeSet<String> = (layout.dirs.iter())
        .filter(in_tree)
        .filter(|k| kept(k))
        .cloned()
        .collect();
    let mut skipped = std::collections::BTreeSet::new();
    for key in ctx.files.range(prefix.to_string()..).map(|(k, _)| k) {
        if !key.starts_with(prefix) {
            break;
        }
        if !kept(key) {
            skipped.insert(key.clone());
            continue;
        }
        // A plan without a layout still has the directories that hold files.
        let mut dir = crate::resolve::dirname(key);
        while dir.len() > prefix.len() {
            dirs.insert(dir.to_string());
            dir = crate::resolve::dirname(dir);
        }
    }
    let links = (layout.links.iter())
        .filter(|(k, _)| k.starts_with(prefix))
        .filter(|(k, _)| {
            if local_follow {
                !ctx.files.contains_key(*k) && !layout.dirs.contains(*k)
            } else {
                !below_link(k)
            }
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    Shape {
        dirs: dirs.into_iter().collect(),
        links,
        skipped,
    }
}

/// Runs the file module on `path` as the copy action does for a tree's directories
/// and links: with the task's file arguments (owner, group, ...) and `extra`.
fn file_module(
    d: &DirCopy<'_>,
    path: &Path,
    extra: &[(&str, Option<Value>)],
    ctx: &Ctx<'_>,
) -> Step<Outcome> {
    let mut a: Vars = (d.args.iter())
        .filter(|(k, _)| ["mode", "owner", "group", "attributes", "force"].contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    a.insert("path".into(), Value::String(path.display().to_string()));
    for (k, v) in extra {
        match v {
            Some(v) => a.insert((*k).to_string(), v.clone()),
            None => a.shift_remove(*k),
        };
    }
    let out = super::file::run(&a, ctx)?;
    if out.failed {
        return Err(fsutil::failed(out));
    }
    Ok(out)
}

/// Copies every embedded `src/...` file below dest (`dest/<basename of src>` unless
/// src ends with `/`), creating directories as needed; changed when any file is.
fn copy_dir(d: &DirCopy<'_>, ctx: &Ctx<'_>) -> Step<Outcome> {
    let trimmed = d.src.trim_end_matches('/');
    let prefix = format!("{trimmed}/");
    let root = if d.src.ends_with('/') {
        PathBuf::from(d.dest)
    } else {
        let base = Path::new(trimmed).file_name().ok_or_else(|| {
            fsutil::failed(Outcome::fail(format!(
                "cannot tell a directory name from src '{}'",
                d.src
            )))
        })?;
        Path::new(d.dest).join(base)
    };
    let mut out = Outcome::ok();
    let mut created_dirs = Vec::new();
    let shape = shape(&prefix, d.local_follow, ctx);
    // Names come from the packer; still, never let one climb out of dest.
    let place = |key: &str| -> Step<PathBuf> {
        let rel = &key[prefix.len()..];
        if rel
            .split('/')
            .any(|c| c == ".." || c == "." || c.is_empty())
        {
            return fail(format!("refusing embedded file name '{key}'"));
        }
        Ok(root.join(rel))
    };
    // How many files the tree has, and whether the last module the action would run
    // changed something: for a tree of one file Ansible reports that module's result.
    let mut files = 0usize;
    let mut last_changed = false;
    for (key, file) in ctx.files.range(prefix.clone()..) {
        if !key.starts_with(&prefix) {
            break;
        }
        if shape.skipped.contains(key) {
            continue;
        }
        files += 1;
        let target = place(key)?;
        let parent = target
            .parent()
            .map_or_else(|| root.clone(), Path::to_path_buf);
        let mut missing = Vec::new();
        let mut p = parent.as_path();
        while !p.exists() {
            missing.push(p.to_path_buf());
            match p.parent() {
                Some(up) if !up.as_os_str().is_empty() => p = up,
                _ => break,
            }
        }
        for m in missing.iter().rev() {
            if !created_dirs.contains(m) {
                created_dirs.push(m.clone());
                if !ctx.check_mode {
                    fs::DirBuilder::new()
                        .mode(d.directory_mode.unwrap_or(0o755))
                        .create(m)
                        .map_err(|e| fsutil::io_fail("create", m, &e))?;
                    if let Some(dm) = d.directory_mode {
                        // The umask must not narrow an explicit directory_mode.
                        fsutil::apply_attrs(
                            m,
                            &Attrs {
                                mode: Some(dm),
                                sym: None,
                                ..d.attrs.clone()
                            },
                            true,
                            false,
                        )?;
                    }
                }
            }
        }
        let attrs = if d.preserve {
            Attrs {
                mode: file.mode,
                ..d.attrs.clone()
            }
        } else {
            d.attrs.clone()
        };
        let one = if ctx.check_mode && !parent.is_dir() {
            // The directory would be created first: the file is new.
            let mut o = Outcome::changed(true);
            if ctx.diff_mode {
                o.diff.push(Diff {
                    before_header: target.display().to_string(),
                    after_header: key.clone(),
                    before: String::new(),
                    after: fsutil::diff_text(&file.content),
                });
            }
            o
        } else {
            if let Some(v) = d.validate {
                validate_content(v, &target, &file.content, false, ctx)?;
            }
            let req = WriteReq {
                dest: &target,
                content: &file.content,
                attrs,
                force: d.force,
                backup: d.backup,
                follow: false,
                src: Some(key),
                new_mode: if d.preserve { file.mode } else { None },
            };
            fsutil::write_file(&req, ctx)?
        };
        out.changed |= one.changed;
        last_changed = one.changed;
        out.diff.extend(one.diff);
    }
    out.changed |= !created_dirs.is_empty();
    // Then, as the action does, every directory through the file module (the
    // directory mode on each, empty ones made), then the links.
    for dir in &shape.dirs {
        let path = place(dir)?;
        let mode = d.directory_mode.map(|m| Value::String(format!("{m:04o}")));
        let extra = [
            ("state", Some(Value::String("directory".into()))),
            ("mode", mode),
            ("recurse", Some(Value::Bool(false))),
        ];
        let one = file_module(d, &path, &extra, ctx)?;
        out.changed |= one.changed;
        last_changed = one.changed;
    }
    for (link, text) in &shape.links {
        let path = place(link)?;
        let mut extra = vec![
            ("state", Some(Value::String("link".into()))),
            ("src", Some(Value::String(text.clone()))),
            ("force", Some(Value::Bool(true))),
        ];
        if !shape.dirs.is_empty() {
            extra.push(("follow", Some(Value::Bool(false))));
        }
        if d.args.get("mode").and_then(Value::as_str) == Some("preserve") {
            extra.push(("mode", None));
        }
        let one = file_module(d, &path, &extra, ctx)?;
        out.changed |= one.changed;
        last_changed = one.changed;
    }
    if files == 1 {
        // Ansible's copy action reports, for a tree of one file, the last module it
        // ran: the file module making the tree's last directory or link when it has
        // any (which the file's copy made already: a change only in check mode).
        out.changed = last_changed;
    }
    Ok(out
        .with("dest", root.display().to_string())
        .with("src", d.src))
}

#[cfg(test)]
mod tests {
    use super::super::{ModuleError, Outcome};
    use crate::plan::HostFile;
    use serde_json::{Value, json};
    use std::collections::BTreeMap;
    use std::fs;
    use std::os::unix::fs::PermissionsExt;
    use std::path::Path;

    /// Runs copy over the controller directory `top`, read with its directories and
    /// links as a local host reads it when the task runs.
    fn copy_walked(top: &Path, args: &Value, check_mode: bool) -> Outcome {
        let tree = crate::ctlfiles::local_tree(&top.display().to_string()).unwrap();
        let engine = crate::template::Engine::new();
        let vars = minijinja::Value::from(());
        let ctx = super::super::Ctx {
            check_mode,
            diff_mode: false,
            files: &tree.files,
            layout: &tree.layout,
            engine: &engine,
            vars: &vars,
            env: &[],
            run_as: None,
        };
        super::run(args.as_object().unwrap(), &ctx).unwrap()
    }

    /// Runs copy with `args` (`{p}` replaced by the temp dir) and two embedded files.
    fn check(dir: &Path, args: Value, check_mode: bool) -> Result<Outcome, ModuleError> {
        let args = crate::modules::args_in(dir, &args);
        let mut files = BTreeMap::new();
        files.insert(
            "files/app.conf".to_string(),
            HostFile {
                content: b"port=80\n".to_vec(),
                mode: Some(0o640),
            },
        );
        files.insert(
            "files/blob.bin".to_string(),
            HostFile {
                content: vec![0, 1, 2, 255],
                mode: None,
            },
        );
        crate::modules::run_for_test("copy", &args, &files, &json!({}), check_mode)
    }

    fn mode_of(p: &Path) -> u32 {
        fs::metadata(p).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn content_is_written_once_with_mode_and_checksum() {
        let t = tempfile::tempdir().unwrap();
        let f = t.path().join("out.txt");
        let args = json!({"content": "hello\n", "dest": "{p}/out.txt", "mode": "0600"});
        let dry = check(t.path(), args.clone(), true).unwrap();
        assert!(dry.changed && !f.exists());
        assert_eq!(dry.diff[0].before, "");
        assert_eq!(dry.diff[0].after, "hello\n");

        let out = check(t.path(), args.clone(), false).unwrap();
        assert!(out.changed && !out.failed, "{out:?}");
        assert_eq!(fs::read_to_string(&f).unwrap(), "hello\n");
        assert_eq!(mode_of(&f), 0o600);
        assert_eq!(
            out.data["checksum"],
            "f572d396fae9206628714fb2ce00f72e94f2258f"
        );
        assert_eq!(out.data["size"], 6);
        assert_eq!(out.data["mode"], "0600");
        assert_eq!(out.data["state"], "file");
        let again = check(t.path(), args, false).unwrap();
        assert!(!again.changed && again.diff.is_empty(), "{again:?}");
        // No temp files are left beside the destination.
        assert_eq!(fs::read_dir(t.path()).unwrap().count(), 1);
    }

    #[test]
    fn changed_content_shows_a_diff_and_keeps_a_backup() {
        let t = tempfile::tempdir().unwrap();
        let f = t.path().join("c");
        fs::write(&f, "old\n").unwrap();
        fs::set_permissions(&f, fs::Permissions::from_mode(0o604)).unwrap();
        let args = json!({"content": "new\n", "dest": "{p}/c", "backup": true});
        let dry = check(t.path(), args.clone(), true).unwrap();
        assert!(dry.changed && dry.data.get("backup_file").is_none());
        assert_eq!(fs::read_to_string(&f).unwrap(), "old\n");
        let out = check(t.path(), args, false).unwrap();
        assert_eq!(
            (out.diff[0].before.as_str(), out.diff[0].after.as_str()),
            ("old\n", "new\n")
        );
        // Given content, the action shows the destination on both sides.
        let dest = f.display().to_string();
        assert_eq!(out.diff[0].before_header, dest);
        assert_eq!(out.diff[0].after_header, dest);
        assert_eq!(fs::read_to_string(&f).unwrap(), "new\n");
        // A replaced file keeps its mode when none is asked for.
        assert_eq!(mode_of(&f), 0o604);
        let backup = out.data["backup_file"].as_str().unwrap();
        assert!(backup.starts_with(&format!("{}.", f.display())) && backup.ends_with('~'));
        assert_eq!(fs::read_to_string(backup).unwrap(), "old\n");
    }

    #[test]
    fn embedded_src_goes_into_a_directory_dest() {
        let t = tempfile::tempdir().unwrap();
        let args = json!({"src": "files/app.conf", "dest": "{p}/", "mode": "preserve"});
        let out = check(t.path(), args.clone(), false).unwrap();
        let f = t.path().join("app.conf");
        assert!(out.changed, "{out:?}");
        assert_eq!(fs::read(&f).unwrap(), b"port=80\n");
        assert_eq!(mode_of(&f), 0o640);
        assert_eq!(out.data["src"], "files/app.conf");
        assert_eq!(out.diff[0].after_header, "files/app.conf");
        assert!(!check(t.path(), args, false).unwrap().changed);
        // Binary content is not pasted into diffs.
        let bin = check(
            t.path(),
            json!({"src": "files/blob.bin", "dest": "{p}/b"}),
            false,
        )
        .unwrap();
        assert!(bin.diff[0].after.contains("binary"));
    }

    #[test]
    fn mode_only_change_is_changed_without_rewriting() {
        let t = tempfile::tempdir().unwrap();
        let f = t.path().join("m");
        fs::write(&f, "same").unwrap();
        fs::set_permissions(&f, fs::Permissions::from_mode(0o600)).unwrap();
        let args = json!({"content": "same", "dest": "{p}/m", "mode": "0644"});
        let dry = check(t.path(), args.clone(), true).unwrap();
        assert!(dry.changed && mode_of(&f) == 0o600);
        assert!(dry.diff[0].after.contains("mode: 0644"));
        assert!(check(t.path(), args.clone(), false).unwrap().changed);
        assert_eq!(mode_of(&f), 0o644);
        assert!(!check(t.path(), args, false).unwrap().changed);
    }

    #[test]
    fn force_no_keeps_an_existing_file() {
        let t = tempfile::tempdir().unwrap();
        let f = t.path().join("k");
        fs::write(&f, "mine").unwrap();
        let out = check(
            t.path(),
            json!({"content": "theirs", "dest": "{p}/k", "force": false}),
            false,
        )
        .unwrap();
        assert!(!out.changed && !out.failed);
        assert_eq!(fs::read_to_string(&f).unwrap(), "mine");
    }

    #[test]
    fn error_paths_fail_with_clear_messages() {
        let t = tempfile::tempdir().unwrap();
        let out = check(
            t.path(),
            json!({"content": "x", "dest": "{p}/no/such/f"}),
            false,
        )
        .unwrap();
        assert!(out.failed);
        assert!(
            out.msg.unwrap().contains("Destination directory"),
            "missing parent"
        );
        assert!(!t.path().join("no").exists());
        // In check mode the directory may be one an earlier (checked) task would make:
        // Ansible's copy action reports the file as a change, and nothing is made.
        let out = check(
            t.path(),
            json!({"content": "x", "dest": "{p}/no/such/f"}),
            true,
        )
        .unwrap();
        assert!(out.changed && !out.failed, "{:?}", out.msg);
        assert!(!t.path().join("no").exists());
        let out = check(
            t.path(),
            json!({"src": "files/nope", "dest": "{p}/f"}),
            false,
        )
        .unwrap();
        let msg = out.msg.unwrap();
        assert!(
            out.failed && msg.contains("files/nope") && msg.contains("2 embedded files"),
            "{msg}"
        );
        let out = check(t.path(), json!({"content": "x", "dest": "{p}"}), false).unwrap();
        assert!(out.failed && out.msg.unwrap().contains("content"));
    }

    /// Runs copy with an embedded directory `conf/` (a.conf 0640, sub/b.conf).
    fn check_dir(dir: &Path, args: Value, check_mode: bool) -> Result<Outcome, ModuleError> {
        let args = crate::modules::args_in(dir, &args);
        let mut files = BTreeMap::new();
        for (name, body, mode) in [
            ("conf/a.conf", "a=1\n", Some(0o640)),
            ("conf/sub/b.conf", "b=2\n", Some(0o600)),
            ("confx.txt", "not in the directory\n", None),
        ] {
            files.insert(
                name.to_string(),
                HostFile {
                    content: body.as_bytes().to_vec(),
                    mode,
                },
            );
        }
        crate::modules::run_for_test("copy", &args, &files, &json!({}), check_mode)
    }

    #[test]
    fn an_embedded_directory_is_copied_with_or_without_its_name() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path();
        let args = json!({"src": "conf", "dest": "{p}/etc", "mode": "preserve"});
        let dry = check_dir(p, args.clone(), true).unwrap();
        assert!(dry.changed && !dry.failed, "{dry:?}");
        assert_eq!(dry.diff.len(), 2);
        assert!(!p.join("etc").exists(), "check mode created something");
        let out = check_dir(p, args.clone(), false).unwrap();
        assert!(out.changed && !out.failed, "{out:?}");
        assert_eq!(
            fs::read_to_string(p.join("etc/conf/a.conf")).unwrap(),
            "a=1\n"
        );
        assert_eq!(
            fs::read_to_string(p.join("etc/conf/sub/b.conf")).unwrap(),
            "b=2\n"
        );
        assert_eq!(mode_of(&p.join("etc/conf/a.conf")), 0o640);
        assert_eq!(mode_of(&p.join("etc/conf/sub/b.conf")), 0o600);
        assert!(!p.join("etc/conf/confx.txt").exists() && !p.join("etc/confx.txt").exists());
        assert_eq!(out.data["dest"], p.join("etc/conf").display().to_string());
        let again = check_dir(p, args, false).unwrap();
        assert!(!again.changed && again.diff.is_empty(), "{again:?}");
        // A trailing slash copies the contents; a changed file shows in the diff.
        fs::create_dir(p.join("flat")).unwrap();
        fs::write(p.join("flat/a.conf"), "old\n").unwrap();
        let flat = check_dir(
            p,
            json!({"src": "conf/", "dest": "{p}/flat", "directory_mode": "0750"}),
            false,
        )
        .unwrap();
        assert!(flat.changed);
        assert_eq!(fs::read_to_string(p.join("flat/a.conf")).unwrap(), "a=1\n");
        assert_eq!(
            fs::read_to_string(p.join("flat/sub/b.conf")).unwrap(),
            "b=2\n"
        );
        assert_eq!(mode_of(&p.join("flat/sub")), 0o750);
        assert!(
            flat.diff
                .iter()
                .any(|d| d.before == "old\n" && d.after == "a=1\n")
        );
    }

    #[test]
    fn validate_runs_on_the_new_content_and_a_failure_keeps_dest() {
        let t = tempfile::tempdir().unwrap();
        let f = t.path().join("v.conf");
        fs::write(&f, "good old\n").unwrap();
        // grep succeeds only when the candidate file holds "good".
        let bad = check(
            t.path(),
            json!({"content": "broken\n", "dest": "{p}/v.conf", "validate": "grep -q good %s"}),
            false,
        )
        .unwrap();
        assert!(
            bad.failed && bad.msg.as_deref() == Some("failed to validate"),
            "{bad:?}"
        );
        assert_eq!(bad.data["exit_status"], 1);
        assert_eq!(fs::read_to_string(&f).unwrap(), "good old\n");
        let names: Vec<_> = fs::read_dir(t.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1, "validate temp file left behind: {names:?}");
        let ok = check(
            t.path(),
            json!({"content": "good new\n", "dest": "{p}/v.conf", "validate": "grep -q good %s"}),
            false,
        )
        .unwrap();
        assert!(ok.changed && !ok.failed, "{ok:?}");
        assert_eq!(fs::read_to_string(&f).unwrap(), "good new\n");
        // Unchanged content and check mode do not run the validator (it would fail).
        for (content, check_mode) in [("good new\n", false), ("broken\n", true)] {
            let out = check(
                t.path(),
                json!({"content": content, "dest": "{p}/v.conf", "validate": "false %s"}),
                check_mode,
            )
            .unwrap();
            assert!(!out.failed, "{out:?}");
        }
    }

    #[test]
    fn bad_arguments_name_the_argument() {
        let t = tempfile::tempdir().unwrap();
        // The copy action's own checks fail the task with its messages.
        for (args, msg) in [
            (json!({"content": "x"}), "dest is required"),
            (json!({"dest": "{p}/f"}), "src (or content) is required"),
            (
                json!({"content": "x", "src": "files/app.conf", "dest": "{p}/f"}),
                "src and content are mutually exclusive",
            ),
        ] {
            match check(t.path(), args.clone(), false) {
                Ok(o) => assert!(o.failed && o.msg.as_deref() == Some(msg), "{args}: {o:?}"),
                other => panic!("{args}: expected a failed outcome, got {other:?}"),
            }
        }
        let cases = [
            (
                json!({"content": "x", "dest": "{p}/f", "mode": "rw"}),
                "mode",
            ),
            (
                json!({"content": "x", "dest": "{p}/f", "backup": "often"}),
                "backup",
            ),
            (
                json!({"content": "x", "dest": "{p}/f", "validate": "true"}),
                "validate",
            ),
        ];
        for (args, name) in cases {
            match check(t.path(), args.clone(), false) {
                Err(ModuleError::BadArgs(m)) => assert!(m.contains(name), "{args}: {m}"),
                other => panic!("{args}: expected BadArgs, got {other:?}"),
            }
        }
    }

    /// The user target copies `files/skel` (one file, `.ssh/known_hosts`) and Ansible
    /// reports ok: its copy action returns the last module it ran, the file module
    /// on `.ssh`, which the file's copy had already made. In check mode, changed.
    #[test]
    fn a_one_file_tree_reports_its_last_directory_as_ansible_does() {
        let t = tempfile::tempdir().unwrap();
        let args = crate::modules::args_in(t.path(), &json!({"src": "skel", "dest": "{p}/t"}));
        let mut files = BTreeMap::new();
        files.insert(
            "skel/.ssh/known_hosts".to_string(),
            HostFile {
                content: b"host key\n".to_vec(),
                mode: None,
            },
        );
        let run = |check| crate::modules::run_for_test("copy", &args, &files, &json!({}), check);
        let dry = run(true).unwrap();
        assert!(dry.changed && !dry.failed, "{dry:?}");
        let out = run(false).unwrap();
        assert!(!out.changed && !out.failed, "{out:?}");
        assert_eq!(
            fs::read(t.path().join("t/skel/.ssh/known_hosts")).unwrap(),
            b"host key\n"
        );
    }

    /// `remote_src` with a directory, as the copy module handles one on the host (copy
    /// target, 'test copying an empty dir to a dir that does not exist' and the
    /// testcase*_remote_src_subdirs tasks): `src/` into a `dest/` it creates, `src` as
    /// `dest/src`, modes and symlinks kept, nothing changed the second time, a changed
    /// file's content brought over, and check mode writing nothing.
    #[test]
    fn a_remote_src_directory_is_copied_as_the_module_copies_one() {
        let t = tempfile::tempdir().unwrap();
        let src = t.path().join("src");
        fs::create_dir_all(src.join("sub/empty")).unwrap();
        fs::write(src.join("a"), "one\n").unwrap();
        fs::set_permissions(src.join("a"), fs::Permissions::from_mode(0o640)).unwrap();
        fs::write(src.join("sub/b"), "two\n").unwrap();
        std::os::unix::fs::symlink("a", src.join("link")).unwrap();
        fs::create_dir(t.path().join("empty")).unwrap();
        let run = |args: Value, check_mode: bool| check(t.path(), args, check_mode).unwrap();

        let args = json!({"src": "{p}/empty/", "dest": "{p}/d1/", "remote_src": true});
        assert!(run(args.clone(), true).changed);
        assert!(!t.path().join("d1").exists(), "check mode wrote");
        assert!(run(args.clone(), false).changed);
        assert!(t.path().join("d1").is_dir());
        assert!(!run(args, false).changed);

        let args = json!({"src": "{p}/src", "dest": "{p}/d2", "remote_src": true});
        let out = run(args.clone(), false);
        assert!(out.changed && !out.failed, "{out:?}");
        let copied = t.path().join("d2/src");
        assert_eq!(fs::read_to_string(copied.join("a")).unwrap(), "one\n");
        assert_eq!(mode_of(&copied.join("a")), 0o640);
        assert_eq!(fs::read_to_string(copied.join("sub/b")).unwrap(), "two\n");
        assert!(copied.join("sub/empty").is_dir());
        assert_eq!(fs::read_link(copied.join("link")).unwrap(), Path::new("a"));
        assert!(!run(args.clone(), false).changed);

        fs::write(src.join("sub/b"), "changed!\n").unwrap();
        fs::write(src.join("new"), "new\n").unwrap();
        let args = json!({"src": "{p}/src/", "dest": "{p}/d2/src", "remote_src": true});
        assert!(run(args.clone(), true).changed);
        assert_eq!(fs::read_to_string(copied.join("sub/b")).unwrap(), "two\n");
        assert!(run(args.clone(), false).changed);
        assert_eq!(
            fs::read_to_string(copied.join("sub/b")).unwrap(),
            "changed!\n"
        );
        assert_eq!(fs::read_to_string(copied.join("new")).unwrap(), "new\n");
        assert!(!run(args, false).changed);
    }

    /// A controller tree with links and an empty directory, as the copy target's
    /// recursive tests make it: with `local_follow: false` the links are made as links
    /// with their own text and nothing below a linked directory is copied; by default
    /// links are followed, and only those that cannot be (to nothing, or back to a
    /// directory they lie in) stay links. Every directory gets `directory_mode`, empty
    /// ones too, and a second run changes nothing.
    #[test]
    fn an_embedded_tree_brings_its_directories_and_links_as_the_action_does() {
        let t = tempfile::tempdir().unwrap();
        let top = t.path().join("files/subdir");
        for d in ["subdir1", "subdira", "subdir2/subdir3/subdir4"] {
            fs::create_dir_all(top.join(d)).unwrap();
        }
        fs::write(top.join("bar.txt"), "bar\n").unwrap();
        fs::write(top.join("subdir1/empty.txt"), "").unwrap();
        fs::write(top.join("subdir2/subdir3/subdir4/qux.txt"), "qux\n").unwrap();
        let abs = t.path().join("abs-target");
        fs::write(&abs, "target").unwrap();
        let abs = abs.display().to_string();
        let links = [
            ("abs-link", abs.as_str()),
            ("bar.txt", "../bar.txt"),
            ("invalid", "invalid"),
            ("invalid2", "../invalid"),
            ("subdir3", "../subdir2/subdir3"),
            ("circles", "../"),
        ];
        for (name, text) in links {
            std::os::unix::fs::symlink(text, top.join("subdir1").join(name)).unwrap();
        }
        let run = |args: Value, check_mode: bool| {
            let out = copy_walked(&top, &args, check_mode);
            assert!(!out.failed, "{out:?}");
            out
        };
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o7777;

        let dest = t.path().join("kept");
        let args =
            json!({"src": top, "dest": dest, "directory_mode": "0700", "local_follow": false});
        assert!(run(args.clone(), true).changed);
        assert!(!dest.exists(), "check mode wrote");
        assert!(run(args.clone(), false).changed);
        let copied = dest.join("subdir");
        for (name, text) in links {
            let link = copied.join("subdir1").join(name);
            assert_eq!(fs::read_link(&link).unwrap(), Path::new(text), "{name}");
        }
        assert_eq!(fs::read_to_string(copied.join("bar.txt")).unwrap(), "bar\n");
        for d in [
            "",
            "subdira",
            "subdir1",
            "subdir2",
            "subdir2/subdir3",
            "subdir2/subdir3/subdir4",
        ] {
            assert_eq!(mode(&copied.join(d)), 0o700, "'{d}'");
        }
        assert!(!run(args, false).changed, "a second run changed something");

        let dest = t.path().join("followed");
        let args = json!({"src": format!("{}/", top.display()), "dest": dest});
        assert!(run(args.clone(), false).changed);
        let sub1 = dest.join("subdir1");
        assert!(!sub1.join("bar.txt").is_symlink());
        assert_eq!(fs::read_to_string(sub1.join("bar.txt")).unwrap(), "bar\n");
        assert_eq!(fs::read_to_string(sub1.join("abs-link")).unwrap(), "target");
        assert!(!sub1.join("subdir3").is_symlink());
        assert_eq!(
            fs::read_to_string(sub1.join("subdir3/subdir4/qux.txt")).unwrap(),
            "qux\n"
        );
        for (name, text) in [
            ("circles", "../"),
            ("invalid", "invalid"),
            ("invalid2", "../invalid"),
        ] {
            assert_eq!(
                fs::read_link(sub1.join(name)).unwrap(),
                Path::new(text),
                "{name}"
            );
        }
        assert!(dest.join("subdira").is_dir());
        assert!(!run(args, false).changed, "a second run changed something");
    }

    /// The copy target's tricky links: a tree holding no file, only a link to a
    /// directory outside it, which links back into the tree. Followed, the outside
    /// directory becomes a directory of the copy and the link back stays a link.
    #[test]
    fn a_tree_of_links_only_is_copied_with_the_circle_kept_as_a_link() {
        let t = tempfile::tempdir().unwrap();
        let (one, two) = (t.path().join("source1"), t.path().join("source2"));
        fs::create_dir(&one).unwrap();
        fs::create_dir(&two).unwrap();
        std::os::unix::fs::symlink(&two, one.join("link")).unwrap();
        std::os::unix::fs::symlink("../source1", two.join("circle")).unwrap();
        let dest = t.path().join("dest1");
        let args = json!({"src": one, "dest": dest, "local_follow": true});
        let out = copy_walked(&one, &args, false);
        assert!(out.changed && !out.failed, "{out:?}");
        let link = dest.join("source1/link");
        assert!(link.is_dir() && !link.is_symlink());
        assert_eq!(
            fs::read_link(link.join("circle")).unwrap(),
            Path::new("../source1")
        );
    }

    /// `remote_src` of something that is not there, or not a regular file, fails in
    /// the module's words (copy target, src_remote_file_is_not_file).
    #[test]
    fn a_remote_src_that_is_missing_or_not_a_file_fails_as_the_module_does() {
        let t = tempfile::tempdir().unwrap();
        let run = |src: &str| {
            let args = json!({"src": src, "dest": "{p}/whocares", "remote_src": true});
            check(t.path(), args, false).unwrap()
        };
        let out = run("/dev/null");
        assert!(out.failed);
        assert_eq!(
            out.msg.as_deref(),
            Some("Cannot copy invalid source '/dev/null': not a file")
        );
        let missing = t.path().join("nope").display().to_string();
        assert_eq!(
            run(&missing).msg.as_deref(),
            Some(format!("Source {missing} not found").as_str())
        );
        assert!(!t.path().join("whocares").exists());
    }

    /// A `dest` ending in `/` that does not exist yet is made, parents too (copy
    /// target, dest_in_non_existent_directories); without the `/` it is a file whose
    /// directory must exist.
    #[test]
    fn a_dest_ending_in_a_slash_is_a_directory_made_when_missing() {
        let t = tempfile::tempdir().unwrap();
        let args =
            json!({"src": "files/app.conf", "dest": "{p}/new1/sub2/", "directory_mode": "0750"});
        let dry = check(t.path(), args.clone(), true).unwrap();
        assert!(dry.changed && !dry.failed, "{dry:?}");
        assert!(!t.path().join("new1").exists(), "check mode wrote");
        let out = check(t.path(), args.clone(), false).unwrap();
        assert!(out.changed && !out.failed, "{out:?}");
        assert!(t.path().join("new1/sub2/app.conf").is_file());
        assert_eq!(mode_of(&t.path().join("new1")), 0o750);
        assert!(!check(t.path(), args, false).unwrap().changed);
        let out = check(
            t.path(),
            json!({"src": "files/app.conf", "dest": "{p}/new3/app.conf"}),
            false,
        )
        .unwrap();
        assert!(out.failed, "{out:?}");
    }

    /// `remote_src` with `local_follow: true`: links in the tree are copied as what they
    /// point at (copy target, 'remote_dir_src has copied with local_follow True'); by
    /// default, and with `false`, they stay links.
    #[test]
    fn a_remote_src_tree_follows_its_links_only_when_told() {
        let t = tempfile::tempdir().unwrap();
        let src = t.path().join("src");
        fs::create_dir_all(src.join("subdir")).unwrap();
        fs::write(src.join("subdir/file12"), "12\n").unwrap();
        std::os::unix::fs::symlink("subdir/file12", src.join("link_file12")).unwrap();
        std::os::unix::fs::symlink("subdir", src.join("link_subdir")).unwrap();
        for (follow, name) in [(Some(true), "t"), (Some(false), "f"), (None, "n")] {
            let mut args =
                json!({"src": "{p}/src/", "dest": format!("{{p}}/{name}/"), "remote_src": true});
            if let Some(f) = follow {
                args["local_follow"] = json!(f);
            }
            let out = check(t.path(), args.clone(), false).unwrap();
            assert!(out.changed && !out.failed, "{out:?}");
            let d = t.path().join(name);
            let followed = follow == Some(true);
            assert_eq!(d.join("link_file12").is_symlink(), !followed, "{name}");
            assert_eq!(d.join("link_subdir").is_symlink(), !followed, "{name}");
            assert_eq!(fs::read_to_string(d.join("link_file12")).unwrap(), "12\n");
            assert_eq!(
                fs::read_to_string(d.join("link_subdir/file12")).unwrap(),
                "12\n"
            );
            assert!(!check(t.path(), args, false).unwrap().changed, "{name}");
        }
    }

    /// A copied directory holding vaulted files fails before writing anything, naming
    /// the first vaulted file in os.walk's order (a directory's own files before its
    /// subdirectories'), as the copy target asserts.
    #[test]
    fn a_directory_with_a_vaulted_file_fails_naming_the_first_in_walk_order() {
        let t = tempfile::tempdir().unwrap();
        let vaulted = b"$ANSIBLE_VAULT;1.1;AES256\n6162\n".to_vec();
        let file = |content: &[u8]| HostFile {
            content: content.to_vec(),
            mode: None,
        };
        let files: BTreeMap<String, HostFile> = [
            ("v/a-plain".to_string(), file(b"x")),
            ("v/folder/nested".to_string(), file(&vaulted)),
            ("v/zz-vault".to_string(), file(&vaulted)),
        ]
        .into();
        let args = crate::modules::args_in(t.path(), &json!({"src": "v", "dest": "{p}/out"}));
        let out = crate::modules::run_for_test("copy", &args, &files, &json!({}), false).unwrap();
        assert!(out.failed);
        assert_eq!(
            out.msg.as_deref(),
            Some("A vault password or secret must be specified to decrypt v/zz-vault")
        );
        assert!(!t.path().join("out").exists(), "a file was written");
    }
}
