//! synchronize (ansible.posix): rsync, with the module's options turned into rsync's
//! as that module turns them (`archive` and its `no-` exceptions, `delete` as
//! `--delete-after`, `checksum`, `link_dest`, `rsync_opts`, ...) and its change read
//! from rsync's itemized `--out-format` lines.
//!
//! Ansible runs rsync on the controller and pushes over SSH; here the runner is on the
//! host. A push's source is the controller's, so the payload carries it (files,
//! directories, links, and each one's modification time and mode, which rsync
//! compares and keeps); the runner lays it out in a private directory and rsync copies
//! from there to `dest`, with rsync's own semantics for everything else. Delegated to
//! the host itself, both paths are the host's, as in Ansible. A pull (the host's files
//! to the controller) is not supported yet. rsync runs with an argument vector.

use super::fsutil::{self, Step, fail};
use super::tools::{self, PrivateDir};
use super::{Ctx, ModuleError, Outcome, args};
use crate::plan::{Stamp, Vars};
use std::collections::BTreeMap;
use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::Path;

/// The argument the executor sets: both paths are the host's (the task is delegated
/// to the host itself, or the host is the controller).
pub const ON_HOST: &str = "_rustle_on_host";

const KNOWN: &[&str] = &[
    "src",
    "dest",
    "dest_port",
    "delete",
    "private_key",
    "rsync_path",
    "archive",
    "checksum",
    "compress",
    "existing_only",
    "dirs",
    "recursive",
    "links",
    "copy_links",
    "perms",
    "times",
    "owner",
    "group",
    "set_remote_user",
    "rsync_timeout",
    "rsync_opts",
    "use_ssh_args",
    "ssh_connection_multiplexing",
    "partial",
    "verify_host",
    "delay_updates",
    "mode",
    "link_dest",
    ON_HOST,
];

/// The mark rsync puts before each itemized line, as the module's.
const CHANGED: &str = "<<CHANGED>>";

/// `synchronize`.
pub(super) fn run(a: &Vars, ctx: &Ctx<'_>) -> Result<Outcome, ModuleError> {
    fsutil::finish(sync(a, ctx))
}

fn sync(a: &Vars, ctx: &Ctx<'_>) -> Step<Outcome> {
    args::only(a, KNOWN)?;
    let on_host = args::bool_or(a, ON_HOST, false)?;
    let mode = args::opt_choice(a, "mode", &["pull", "push"])?.unwrap_or_else(|| "push".into());
    let (Some(src), Some(dest)) = (args::opt_str(a, "src")?, args::opt_str(a, "dest")?) else {
        return fail("synchronize requires both src and dest parameters are set");
    };
    if !on_host && mode == "pull" {
        return fail(
            "synchronize: mode=pull copies the host's files to the controller, which rustle-deploy does not support yet (fetch does, one file at a time); delegated to the host itself (delegate_to: \"{{ inventory_hostname }}\"), both paths are the host's",
        );
    }
    let flag = |k: &str| args::opt_bool(a, k);
    let rsync_timeout = args::opt_int(a, "rsync_timeout")?.unwrap_or(0);
    let rsync_path = args::opt_str(a, "rsync_path")?;
    let link_dest = args::str_list(a, "link_dest")?;
    // A list argument given as one string is split on commas, as Ansible's list type is.
    let rsync_opts: Vec<String> = match a.get("rsync_opts") {
        Some(serde_json::Value::String(s)) => s.split(',').map(|o| o.trim().to_string()).collect(),
        _ => args::str_list(a, "rsync_opts")?,
    };
    let rsync = match tools::require_bin("rsync") {
        Ok(p) => p,
        Err(o) => return Err(fsutil::failed(o)),
    };

    // rsync's options in the module's order; `shown` is the command as the module
    // prints it (its quoted words quoted).
    let mut argv: Vec<String> = Vec::new();
    let mut shown: Vec<String> = Vec::new();
    let mut push = |word: String, display: Option<String>| {
        shown.push(display.unwrap_or_else(|| word.clone()));
        argv.push(word);
    };
    let mut opt = |word: &str| push(word.to_string(), None);
    if flag("delay_updates")?.unwrap_or(true) {
        opt("--delay-updates");
        opt("-F");
    }
    if flag("compress")?.unwrap_or(true) {
        opt("--compress");
    }
    if rsync_timeout != 0 {
        opt(&format!("--timeout={rsync_timeout}"));
    }
    if ctx.check_mode {
        opt("--dry-run");
    }
    for (key, default, word) in [
        ("delete", false, "--delete-after"),
        ("existing_only", false, "--existing"),
        ("checksum", false, "--checksum"),
        ("copy_links", false, "--copy-links"),
    ] {
        if flag(key)?.unwrap_or(default) {
            opt(word);
        }
    }
    // Under `archive` the others only say what to leave out; without it, what to add.
    let archive = flag("archive")?.unwrap_or(true);
    if archive {
        opt("--archive");
    }
    for key in ["recursive", "links", "perms", "times", "owner", "group"] {
        match (archive, flag(key)?) {
            (true, Some(false)) => opt(&format!("--no-{key}")),
            (false, Some(true)) => opt(&format!("--{key}")),
            _ => {}
        }
    }
    if flag("dirs")?.unwrap_or(false) {
        opt("--dirs");
    }
    if let Some(p) = &rsync_path {
        push(
            format!("--rsync-path={p}"),
            Some(format!("--rsync-path={}", tools::shlex_quote(p))),
        );
    }
    for o in &rsync_opts {
        push(o.clone(), None);
    }
    if flag("partial")?.unwrap_or(false) {
        push("--partial".into(), None);
    }
    if !link_dest.is_empty() {
        push("-H".into(), None);
        // rsync does not itemize a new hard link as a change without it.
        push("-vv".into(), None);
        let dest_dir = absolute(crate::resolve::dirname(&dest));
        for l in &link_dest {
            let link = absolute(l);
            if dest_dir.starts_with(&link) {
                return fail(format!(
                    "Hardlinking into a subdirectory of the source would cause recursion. {dest_dir} and {dest}"
                ));
            }
            push(format!("--link-dest={link}"), None);
        }
    }
    let format = format!("{CHANGED}%i %n%L");
    push(
        format!("--out-format={format}"),
        Some(format!("--out-format={}", tools::shlex_quote(&format))),
    );

    // The source: the host's own path, or the payload's copy laid out for rsync.
    // (The staging directory lives until rsync is done.)
    let (_staging, source) = if on_host {
        (None, src.clone())
    } else {
        let (dir, path) = stage(ctx, &src, flag("copy_links")?.unwrap_or(false))?;
        (Some(dir), path)
    };
    push(source.clone(), Some(tools::shlex_quote(&source)));
    push(dest.clone(), Some(tools::shlex_quote(&dest)));
    let cmd = std::iter::once(rsync.display().to_string())
        .chain(shown)
        .collect::<Vec<_>>()
        .join(" ");

    let out = tools::run_command(ctx.command(&rsync), &argv, None)
        .map_err(|e| fsutil::io_fail("run", &rsync, &e))?;
    if out.rc != 0 {
        return Err(fsutil::failed(
            Outcome::fail(out.stderr)
                .with("rc", out.rc)
                .with("cmd", cmd),
        ));
    }
    let changed = if link_dest.is_empty() {
        out.stdout.contains(CHANGED)
    } else {
        // A leading period marks an item rsync left as it was.
        !out.stdout.contains(&format!("{CHANGED}."))
    };
    let clean = out.stdout.replace(CHANGED, "");
    let lines: Vec<String> = (clean.split('\n'))
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect();
    let mut o = Outcome::changed(changed)
        .msg(clean)
        .with("rc", out.rc)
        .with("cmd", cmd)
        .with("stdout_lines", lines);
    if rsync_opts.iter().any(String::is_empty) {
        o = o.warn(
            "The empty string is present in rsync_opts which will cause rsync to transfer the current working directory. If this is intended, use \".\" instead to get rid of this warning. If this is unintended, check for problems in your playbook leading to empty string in rsync_opts.",
        );
    }
    Ok(o)
}

/// `path` made absolute and normalized, as Python's `os.path.abspath`.
fn absolute(path: &str) -> String {
    let joined = match std::env::current_dir() {
        Ok(cwd) if !path.starts_with('/') => format!("{}/{path}", cwd.display()),
        _ => path.to_string(),
    };
    crate::resolve::normalize(&joined)
}

/// Lays the payload's copy of the controller's `src` out in a new private directory
/// (the task user's), with the controller's modes and modification times, and returns
/// the directory and the path rsync reads, `src`'s trailing slash kept (rsync then
/// copies what is in the directory, not the directory).
///
/// Everything is made as this runner's user inside a directory only it can enter, and
/// given to the task's user at the end, top directory last, so nobody can swap a name
/// while it is built.
fn stage(ctx: &Ctx<'_>, src: &str, follow_links: bool) -> Step<(PrivateDir, String)> {
    let key = src.trim_end_matches('/');
    let key = if key.is_empty() { "/" } else { key };
    let base = match key.rsplit('/').next() {
        Some(b) if !b.is_empty() => b,
        _ => "root",
    };
    let prefix = format!("{key}/");
    let layout = ctx.layout;
    // The file itself, or the files below `key/` (contiguous from `key/` on; names such
    // as `key.bak` sort between the two).
    let files: Vec<(&String, &crate::plan::HostFile)> = (ctx.files.get_key_value(key))
        .into_iter()
        .chain((ctx.files.range(prefix.clone()..)).take_while(|(k, _)| k.starts_with(&prefix)))
        .collect();
    let is_dir = layout.dirs.contains(key)
        || files.iter().any(|(k, _)| k.starts_with(&prefix))
        || layout.dirs.iter().any(|d| d.starts_with(&prefix));
    if files.is_empty() && !is_dir {
        return fail(format!(
            "synchronize: src {src} is not in the payload: a push's source is the controller's, and the plan carries none by that name"
        ));
    }
    let dir = PrivateDir::new("synchronize")
        .map_err(|e| fsutil::io_fail("create a directory for", Path::new(src), &e))?;
    let top = dir.path().join(base);
    let io = |what: &str, p: &Path, e: std::io::Error| fsutil::io_fail(what, p, &e);
    // Where a payload name lands, and whether it lies below a link kept as a link.
    let place = |k: &str| match k.strip_prefix(&prefix) {
        Some(rel) => top.join(rel),
        None => top.clone(),
    };
    let links: Vec<(&String, &String)> = (layout.links.range(prefix.clone()..))
        .take_while(|(k, _)| k.starts_with(&prefix))
        .collect();
    // Kept as a link (rsync's default), a link hides what the walk found through it.
    let under_link =
        |k: &str| !follow_links && links.iter().any(|(l, _)| k.starts_with(&format!("{l}/")));
    let is_link = |k: &str| !follow_links && layout.links.contains_key(k);
    let mut made: BTreeMap<String, Kind> = BTreeMap::new();
    if is_dir {
        std::fs::create_dir(&top).map_err(|e| io("create", &top, e))?;
        made.insert(key.to_string(), Kind::Dir);
        let dirs = (layout.dirs.range(prefix.clone()..)).take_while(|d| d.starts_with(&prefix));
        for d in dirs.filter(|d| !under_link(d) && !is_link(d)) {
            let p = place(d);
            std::fs::create_dir_all(&p).map_err(|e| io("create", &p, e))?;
            made.insert(d.clone(), Kind::Dir);
        }
        for (l, text) in &links {
            // Followed, a link became the file or directory it points to; one that
            // points nowhere stays a link either way.
            let followed = follow_links && (ctx.files.contains_key(*l) || layout.dirs.contains(*l));
            if followed || under_link(l) {
                continue;
            }
            let p = place(l);
            std::os::unix::fs::symlink(text, &p).map_err(|e| io("create", &p, e))?;
            made.insert((*l).clone(), Kind::Link);
        }
    }
    for (k, f) in &files {
        if under_link(k) || is_link(k) {
            continue;
        }
        let p = place(k);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).map_err(|e| io("create", parent, e))?;
        }
        let mode = (layout.stamps.get(*k).and_then(|s| s.mode))
            .or(f.mode)
            .unwrap_or(0o644);
        let mut out = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&p)
            .map_err(|e| io("write", &p, e))?;
        out.write_all(&f.content)
            .and_then(|()| out.set_permissions(std::fs::Permissions::from_mode(mode)))
            .map_err(|e| io("write", &p, e))?;
        made.insert((*k).clone(), Kind::File);
    }
    // Owners, then directory modes and every time, deepest first: making a child
    // changes its directory's time. Nothing here follows a link.
    for (k, kind) in made.iter().rev() {
        let p = place(k);
        if let Some(who) = ctx.run_as {
            std::os::unix::fs::lchown(&p, Some(who.uid), Some(who.gid))
                .map_err(|e| io("set the owner of", &p, e))?;
        }
        let stamp = layout.stamps.get(k).copied();
        if *kind == Kind::Dir {
            let mode = stamp.and_then(|s| s.mode).unwrap_or(0o755);
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode))
                .map_err(|e| io("set the mode of", &p, e))?;
        }
        if let Some(s) = stamp {
            set_mtime(&p, s).map_err(|e| io("set the time of", &p, e))?;
        }
    }
    if let Some(who) = ctx.run_as {
        std::os::unix::fs::fchown(dir.dir().file(), Some(who.uid), Some(who.gid))
            .map_err(|e| io("set the owner of", dir.path(), e))?;
    }
    let path = top.display().to_string();
    let path = if src.ends_with('/') && is_dir {
        format!("{path}/")
    } else {
        path
    };
    Ok((dir, path))
}

/// What [`stage`] made at a name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Dir,
    File,
    Link,
}

/// Sets a path's access and modification times to the stamp's, not following a link.
fn set_mtime(path: &Path, s: Stamp) -> std::io::Result<()> {
    let at = rustix::fs::Timespec {
        tv_sec: s.mtime_ns.div_euclid(1_000_000_000),
        tv_nsec: s.mtime_ns.rem_euclid(1_000_000_000),
    };
    rustix::fs::utimensat(
        rustix::fs::CWD,
        path,
        &rustix::fs::Timestamps {
            last_access: at,
            last_modification: at,
        },
        rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
    )
    .map_err(std::io::Error::from)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{HostFile, Layout};
    use serde_json::json;
    use std::collections::BTreeMap;

    fn have_rsync() -> bool {
        if tools::find_bin("rsync").is_none() {
            eprintln!("skipped: no rsync on this machine");
            return false;
        }
        true
    }

    fn run_with(
        args: serde_json::Value,
        files: &BTreeMap<String, HostFile>,
        layout: &Layout,
        check: bool,
    ) -> Outcome {
        let engine = crate::template::Engine::new();
        let vars = minijinja::Value::from_serialize(json!({}));
        let ctx = Ctx {
            check_mode: check,
            diff_mode: false,
            files,
            layout,
            engine: &engine,
            vars: &vars,
            env: &[],
            run_as: None,
        };
        super::super::run("synchronize", args.as_object().unwrap(), &ctx).unwrap()
    }

    const T0: i64 = 1_600_000_000_123_456_789;

    /// A controller tree as the packer carries it: `/ctl/site/{index.html, css/a.css,
    /// empty/, link -> index.html}`, with stamps.
    fn site() -> (BTreeMap<String, HostFile>, Layout) {
        let file = |s: &str, mode| HostFile {
            content: s.as_bytes().to_vec(),
            mode: Some(mode),
        };
        let files = BTreeMap::from([
            (
                "/ctl/site/index.html".to_string(),
                file("<h1>hi</h1>\n", 0o644),
            ),
            ("/ctl/site/css/a.css".to_string(), file("a{}\n", 0o640)),
            // The walk follows links: the linked file's content is there too.
            ("/ctl/site/link".to_string(), file("<h1>hi</h1>\n", 0o644)),
        ]);
        let stamp = |n: i64, mode| Stamp {
            mtime_ns: T0 + n,
            mode,
        };
        let layout = Layout {
            dirs: ["/ctl/site/css", "/ctl/site/empty", "/ctl/site"]
                .map(String::from)
                .into(),
            links: [("/ctl/site/link".to_string(), "index.html".to_string())].into(),
            stamps: [
                ("/ctl/site", stamp(1, Some(0o755))),
                ("/ctl/site/index.html", stamp(2, Some(0o644))),
                ("/ctl/site/css", stamp(3, Some(0o750))),
                ("/ctl/site/css/a.css", stamp(4, Some(0o640))),
                ("/ctl/site/empty", stamp(5, Some(0o700))),
                ("/ctl/site/link", stamp(6, None)),
            ]
            .map(|(k, v)| (k.to_string(), v))
            .into(),
        };
        (files, layout)
    }

    #[test]
    fn a_pushed_tree_lands_with_its_modes_times_and_links_and_a_second_run_changes_nothing() {
        if !have_rsync() {
            return;
        }
        use std::os::unix::fs::MetadataExt as _;
        let t = tempfile::tempdir().unwrap();
        let dest = t.path().join("www");
        let (files, layout) = site();
        let args = json!({"src": "/ctl/site/", "dest": dest.display().to_string()});

        let checked = run_with(args.clone(), &files, &layout, true);
        assert!(checked.changed && !checked.failed, "{checked:?}");
        assert!(!dest.exists(), "check mode copies nothing");

        let first = run_with(args.clone(), &files, &layout, false);
        assert!(first.changed && !first.failed, "{first:?}");
        let msg = first.msg.clone().unwrap();
        assert!(msg.contains(">f+++++++++ index.html\n"), "{msg}");
        assert!(msg.contains("cL+++++++++ link -> index.html\n"), "{msg}");
        let cmd = first.data["cmd"].as_str().unwrap();
        assert!(cmd.contains(" --archive ") && cmd.contains("--out-format='<<CHANGED>>%i %n%L'"));
        assert_eq!(std::fs::read(dest.join("css/a.css")).unwrap(), b"a{}\n");
        let meta = |p: &str| std::fs::symlink_metadata(dest.join(p)).unwrap();
        assert_eq!(meta("css/a.css").mode() & 0o7777, 0o640);
        assert_eq!(meta("css").mode() & 0o7777, 0o750);
        assert_eq!(meta("empty").mode() & 0o7777, 0o700);
        assert_eq!(
            (meta("index.html").mtime(), meta("index.html").mtime_nsec()),
            ((T0 + 2) / 1_000_000_000, (T0 + 2) % 1_000_000_000)
        );
        assert!(meta("link").file_type().is_symlink());
        assert_eq!(
            std::fs::read_link(dest.join("link")).unwrap(),
            Path::new("index.html")
        );
        assert_eq!(meta(".").mtime(), (T0 + 1) / 1_000_000_000);

        let again = run_with(args.clone(), &files, &layout, false);
        assert!(!again.changed && !again.failed, "{again:?}");

        // `delete` removes what the source does not have; without it, it stays.
        std::fs::write(dest.join("stray"), "x").unwrap();
        // (The new file changed the directory's time, which rsync puts back.)
        run_with(args.clone(), &files, &layout, false);
        assert!(dest.join("stray").exists());
        let mut deleting = args.clone();
        deleting["delete"] = json!(true);
        let deleted = run_with(deleting, &files, &layout, false);
        assert!(deleted.changed, "{deleted:?}");
        assert!(deleted.msg.unwrap().contains("*deleting   stray"));
        assert!(!dest.join("stray").exists());
    }

    #[test]
    fn without_a_trailing_slash_the_directory_itself_is_copied_and_links_can_be_followed() {
        if !have_rsync() {
            return;
        }
        let t = tempfile::tempdir().unwrap();
        let (mut files, layout) = site();
        // A neighbour that sorts between `/ctl/site` and `/ctl/site/` is not part of it.
        files.insert(
            "/ctl/site.bak".to_string(),
            crate::plan::HostFile {
                content: b"old".to_vec(),
                mode: None,
            },
        );
        let dest = t.path().display().to_string();
        let args = json!({"src": "/ctl/site", "dest": dest, "copy_links": true});
        let o = run_with(args, &files, &layout, false);
        assert!(o.changed && !o.failed, "{o:?}");
        assert!(t.path().join("site/index.html").exists());
        assert!(!t.path().join("site.bak").exists());
        let link = t.path().join("site/link");
        assert!(
            !std::fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(std::fs::read(&link).unwrap(), b"<h1>hi</h1>\n");
    }

    #[test]
    fn on_the_host_both_paths_are_the_hosts_and_rsync_failures_are_reported() {
        if !have_rsync() {
            return;
        }
        let t = tempfile::tempdir().unwrap();
        let src = t.path().join("foo.txt");
        std::fs::write(&src, "hello world").unwrap();
        let dest = t.path().join("foo.result");
        let none = BTreeMap::new();
        let layout = Layout::default();
        let args = json!({
            "src": src.display().to_string(),
            "dest": dest.display().to_string(),
            ON_HOST: true,
        });
        let o = run_with(args.clone(), &none, &layout, false);
        assert!(o.changed, "{o:?}");
        let msg = o.msg.unwrap();
        assert!(
            msg.starts_with(">f+") && msg.ends_with("+ foo.txt\n"),
            "{msg}"
        );
        assert_eq!(std::fs::read(&dest).unwrap(), b"hello world");
        assert!(!run_with(args, &none, &layout, false).changed);

        let missing = json!({"src": "/nonexistent/rustle", "dest": dest.display().to_string(), ON_HOST: true});
        let o = run_with(missing, &none, &layout, false);
        assert!(o.failed && o.data["rc"] != json!(0), "{o:?}");
        assert!(
            o.msg
                .unwrap()
                .contains("change_dir \"/nonexistent\" failed")
        );

        // A push's source must be in the payload.
        let pushed = json!({"src": "/ctl/none", "dest": dest.display().to_string()});
        let o = run_with(pushed, &none, &layout, false);
        assert!(o.failed && o.msg.unwrap().contains("not in the payload"));

        let pull = json!({"src": "a", "dest": "b", "mode": "pull"});
        let o = run_with(pull, &none, &layout, false);
        assert!(o.failed && o.msg.unwrap().contains("mode=pull"));
    }

    #[test]
    fn link_dest_hard_links_unchanged_files_and_refuses_recursion() {
        if !have_rsync() {
            return;
        }
        use std::os::unix::fs::MetadataExt as _;
        let t = tempfile::tempdir().unwrap();
        let (a, b) = (t.path().join("a"), t.path().join("b"));
        std::fs::create_dir_all(&a).unwrap();
        std::fs::create_dir_all(&b).unwrap();
        let src = t.path().join("foo.txt");
        std::fs::write(&src, "hello").unwrap();
        let none = BTreeMap::new();
        let layout = Layout::default();
        let p = |x: &Path| x.display().to_string();
        let first = json!({"src": p(&src), "dest": p(&a.join("foo.txt")), ON_HOST: true});
        assert!(run_with(first, &none, &layout, false).changed);
        let linked = json!({
            "src": p(&a.join("foo.txt")), "dest": p(&b.join("foo.txt")),
            "link_dest": [p(&a)], ON_HOST: true,
        });
        let o = run_with(linked, &none, &layout, false);
        assert!(o.changed && !o.failed, "{o:?}");
        let ino = |x: &Path| std::fs::metadata(x).unwrap().ino();
        assert_eq!(ino(&a.join("foo.txt")), ino(&b.join("foo.txt")));

        let recursive = json!({
            "src": p(&src), "dest": p(&t.path().join("foo.result")),
            "link_dest": [p(t.path())], ON_HOST: true,
        });
        let o = run_with(recursive, &none, &layout, false);
        assert!(o.failed && !o.changed);
        assert!(
            o.msg
                .unwrap()
                .starts_with("Hardlinking into a subdirectory")
        );
    }
}
