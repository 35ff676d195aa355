//! apt_repository (ansible.builtin.apt_repository): a one-line APT source (`deb ...` or
//! `deb-src ...`) present in or absent from `sources.list` and `sources.list.d/*.list`,
//! decided and written as the module does: every file read line by line into
//! (enabled, source, comment), a source compared with its whitespace collapsed, a
//! disabled copy of a wanted source enabled again, a new one appended to the file named
//! after its URL (or `filename`), every entry of an unwanted one removed, the changed
//! files written back in the module's normal form (through the atomic writer) and an
//! emptied file deleted, then `apt-get update` when `update_cache` (the files put back as
//! they were when it fails). PPAs (`ppa:user/name`) need Launchpad and are refused.

use super::fsutil::{self, Attrs, Step, WriteReq, fail};
use super::tools;
use super::{Ctx, Diff, ModuleError, Outcome, args};
use crate::plan::Vars;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const KNOWN: &[&str] = &[
    "repo",
    "state",
    "mode",
    "update_cache",
    "update-cache",
    "update_cache_retries",
    "update_cache_retry_max_delay",
    "validate_certs",
    "filename",
    "codename",
    "install_python_apt",
];

/// The source types a line may start with.
const SOURCE_TYPES: &[&str] = &["deb", "deb-src"];

/// The mode of a sources file the module creates, unless `mode` says otherwise.
const DEFAULT_MODE: u32 = 0o644;

/// One line of a sources file, as the module reads it.
#[derive(Debug, Clone, PartialEq)]
struct Line {
    valid: bool,
    enabled: bool,
    source: String,
    comment: String,
}

impl Line {
    /// The module's `_parse`: a leading `#` disables, the text after the next `#` is
    /// the comment, and a line whose first word is a source type is a source, its
    /// whitespace collapsed.
    fn parse(raw: &str) -> Line {
        let mut line = raw.trim();
        let mut enabled = true;
        if let Some(rest) = line.strip_prefix('#') {
            enabled = false;
            line = rest;
        }
        let mut comment = String::new();
        if let Some(i) = line.find('#').filter(|&i| i > 0) {
            comment = line.get(i + 1..).unwrap_or_default().trim().to_string();
            line = line.get(..i).unwrap_or_default();
        }
        let mut source = line.trim().to_string();
        let words: Vec<&str> = source.split_whitespace().collect();
        let valid = words.first().is_some_and(|w| SOURCE_TYPES.contains(w));
        if valid {
            source = words.join(" ");
        }
        Line {
            valid,
            enabled,
            source,
            comment,
        }
    }

    /// The line as the module writes it back.
    fn render(&self) -> String {
        let mut out = String::new();
        if !self.enabled {
            out.push_str("# ");
        }
        out.push_str(&self.source);
        if !self.comment.is_empty() {
            out.push_str(" # ");
            out.push_str(&self.comment);
        }
        out.push('\n');
        out
    }
}

/// Every sources file, by path, with its lines.
#[derive(Debug, Clone, PartialEq)]
struct SourcesList {
    files: BTreeMap<PathBuf, Vec<Line>>,
    /// Each file's text as read, to put back byte for byte if the cache update fails.
    read: BTreeMap<PathBuf, String>,
}

impl SourcesList {
    /// Reads `list` and the `*.list` files of `dir` (files that cannot be read are
    /// left out, as the module's glob and open would fail them anyway).
    fn load(list: &Path, dir: &Path) -> Result<SourcesList, String> {
        let mut files = BTreeMap::new();
        let mut read = BTreeMap::new();
        let mut paths = vec![list.to_path_buf()];
        if let Ok(entries) = std::fs::read_dir(dir) {
            let mut found: Vec<PathBuf> = entries
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "list"))
                .collect();
            found.sort();
            paths.extend(found);
        }
        for path in paths {
            match std::fs::read_to_string(&path) {
                Ok(text) => {
                    files.insert(path.clone(), text.lines().map(Line::parse).collect());
                    read.insert(path, text);
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
            }
        }
        Ok(SourcesList { files, read })
    }

    /// Each file's text as the module would write it; a file without lines has none
    /// (and is deleted when saved).
    fn dump(&self) -> BTreeMap<PathBuf, String> {
        self.files
            .iter()
            .filter(|(_, lines)| !lines.is_empty())
            .map(|(p, lines)| (p.clone(), lines.iter().map(Line::render).collect()))
            .collect()
    }

    /// The module's `add_source`: enable every copy of the source, else append it to
    /// `file`. Returns whether `file` was created by this.
    fn add(&mut self, source: &str, file: &Path) -> bool {
        let mut found = false;
        for line in self.files.values_mut().flatten() {
            if line.valid && line.source == source {
                line.enabled = true;
                found = true;
            }
        }
        if found {
            return false;
        }
        let new = !self.files.contains_key(file);
        self.files
            .entry(file.to_path_buf())
            .or_default()
            .push(Line {
                valid: true,
                enabled: true,
                source: source.to_string(),
                comment: String::new(),
            });
        new
    }

    /// The module's `remove_source`: every enabled entry of the source goes.
    fn remove(&mut self, source: &str) {
        for lines in self.files.values_mut() {
            lines.retain(|l| !(l.valid && l.enabled && l.source == source));
        }
    }
}

/// The file a new source goes to: `filename` (with `.list`), else its URL's host and
/// path with everything but letters and digits as `_` (the module's
/// `_suggest_filename`); a name without `/` is in `dir`.
fn suggest_filename(source: &str, filename: Option<&str>, dir: &Path) -> PathBuf {
    let name = match filename {
        Some(f) => f.to_string(),
        None => {
            let no_options = strip_between(source, '[', ']');
            let first = no_options
                .split_whitespace()
                .find(|w| !SOURCE_TYPES.contains(w))
                .unwrap_or_default();
            let no_scheme = first.split_once("://").map_or(first, |(_, rest)| rest);
            let no_user = no_scheme.rsplit_once('@').map_or(no_scheme, |(_, h)| h);
            no_user
                .split(|c: char| !c.is_ascii_alphanumeric())
                .filter(|w| !w.is_empty())
                .collect::<Vec<_>>()
                .join("_")
        }
    };
    let file = format!("{name}.list");
    if file.contains('/') {
        PathBuf::from(file)
    } else {
        dir.join(file)
    }
}

/// `s` without its `[...]` parts (a source's options).
fn strip_between(s: &str, open: char, close: char) -> String {
    let mut out = String::new();
    let mut depth = false;
    for c in s.chars() {
        match c {
            c if c == open => depth = true,
            c if c == close && depth => depth = false,
            c if !depth => out.push(c),
            _ => {}
        }
    }
    out
}

/// Where the module looks; the system's places, other directories in tests.
struct Places {
    list: PathBuf,
    dir: PathBuf,
    /// apt-get, for `update_cache`; `None`: the host's.
    apt_get: Option<PathBuf>,
}

/// `apt_repository`.
pub(super) fn run(a: &Vars, ctx: &Ctx<'_>) -> Result<Outcome, ModuleError> {
    let places = Places {
        list: "/etc/apt/sources.list".into(),
        dir: "/etc/apt/sources.list.d".into(),
        apt_get: None,
    };
    fsutil::finish(run_at(a, ctx, &places))
}

fn run_at(a: &Vars, ctx: &Ctx<'_>, places: &Places) -> Step<Outcome> {
    args::only(a, KNOWN)?;
    let repo = args::req_str(a, "repo")?;
    let state = args::opt_str(a, "state")?.unwrap_or_else(|| "present".into());
    if !matches!(state.as_str(), "present" | "absent") {
        return Err(ModuleError::BadArgs(format!(
            "value of state must be one of: absent, present, got: {state}"
        ))
        .into());
    }
    let update_cache = match args::opt_bool(a, "update_cache")? {
        Some(b) => b,
        None => args::bool_or(a, "update-cache", true)?,
    };
    let mode = args::opt_mode(a, "mode")?.unwrap_or(DEFAULT_MODE);
    if repo.starts_with("ppa:") {
        return fail(format!(
            "{repo}: PPA repositories need Launchpad's key service, which the runner does not use; give the repository line (deb URL SUITE COMPONENTS) and its key (signed-by) instead"
        ));
    }
    let wanted = Line::parse(&repo);
    if !wanted.valid || !wanted.enabled {
        return fail(format!("Invalid repository string: {}", repo.trim()));
    }
    let mut list = SourcesList::load(&places.list, &places.dir)
        .map_err(|e| fsutil::failed(Outcome::fail(e)))?;
    let before = list.dump();
    let mut created = None;
    if state == "present" {
        let file = suggest_filename(
            &wanted.source,
            args::opt_str(a, "filename")?.as_deref(),
            &places.dir,
        );
        if list.add(&wanted.source, &file) {
            created = Some(file);
        }
    } else {
        list.remove(&wanted.source);
    }
    let after = list.dump();
    let changed = before != after;

    let mut out = Outcome::changed(changed)
        .with("repo", repo.as_str())
        .with("state", state.as_str())
        .with("sources_added", names(&after, &before))
        .with("sources_removed", names(&before, &after));
    if ctx.diff_mode && changed {
        for path in before.keys().chain(after.keys()).collect::<BTreeSet<_>>() {
            let (b, f) = (before.get(path), after.get(path));
            if b == f {
                continue;
            }
            let header = |side: Option<&String>| {
                side.map_or("/dev/null".to_string(), |_| path.display().to_string())
            };
            out.diff.push(Diff {
                before_header: header(b),
                after_header: header(f),
                before: b.cloned().unwrap_or_default(),
                after: f.cloned().unwrap_or_default(),
            });
        }
    }
    if !changed || ctx.check_mode {
        return Ok(out);
    }
    save(&before, &after, created.as_deref(), mode, ctx)?;
    if update_cache {
        let Some(apt_get) = places
            .apt_get
            .clone()
            .or_else(|| tools::find_bin("apt-get"))
        else {
            restore(&list.read, &after, ctx)?;
            return fail("Failed to update apt cache: apt-get is not installed");
        };
        let ran = tools::run_command(ctx.command(&apt_get), &["update".to_string()], None);
        let why = match ran {
            Ok(o) if o.rc == 0 => None,
            Ok(o) => Some(o.stderr.trim().to_string()),
            Err(e) => Some(e.to_string()),
        };
        if let Some(why) = why {
            restore(&list.read, &after, ctx)?;
            let why = if why.is_empty() {
                "unknown reason".into()
            } else {
                why
            };
            return fail(format!("Failed to update apt cache: {why}"));
        }
    }
    Ok(out)
}

/// The files in `a` that `b` does not have.
fn names(a: &BTreeMap<PathBuf, String>, b: &BTreeMap<PathBuf, String>) -> Value {
    Value::from(
        a.keys()
            .filter(|p| !b.contains_key(*p))
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>(),
    )
}

/// Writes every file whose text changed and deletes those left without lines; a file
/// this task created gets `mode`.
fn save(
    before: &BTreeMap<PathBuf, String>,
    after: &BTreeMap<PathBuf, String>,
    created: Option<&Path>,
    mode: u32,
    ctx: &Ctx<'_>,
) -> Step<()> {
    for path in before.keys().filter(|p| !after.contains_key(*p)) {
        remove(path)?;
    }
    for (path, text) in after {
        if before.get(path) == Some(text) {
            continue;
        }
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| fsutil::io_fail("create the directory", dir, &e))?;
        }
        let attrs = Attrs {
            mode: (created == Some(path.as_path())).then_some(mode),
            ..Attrs::default()
        };
        write(path, text, attrs, ctx)?;
    }
    Ok(())
}

/// Puts the files back as they were read, byte for byte (the module writes its own
/// form of them back; the bytes are what the host had).
fn restore(
    read: &BTreeMap<PathBuf, String>,
    after: &BTreeMap<PathBuf, String>,
    ctx: &Ctx<'_>,
) -> Step<()> {
    for path in after.keys().filter(|p| !read.contains_key(*p)) {
        remove(path)?;
    }
    for (path, text) in read {
        let now = std::fs::read_to_string(path).ok();
        if now.as_deref() != Some(text.as_str()) {
            write(path, text, Attrs::default(), ctx)?;
        }
    }
    Ok(())
}

fn remove(path: &Path) -> Step<()> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(fsutil::io_fail("remove", path, &e)),
    }
}

fn write(path: &Path, text: &str, attrs: Attrs, ctx: &Ctx<'_>) -> Step<()> {
    let req = WriteReq {
        dest: path,
        content: text.as_bytes(),
        attrs,
        force: true,
        backup: false,
        follow: true,
        src: None,
        new_mode: Some(DEFAULT_MODE),
    };
    // Check mode never gets here; the writer's own check is the task's.
    fsutil::write_file(&req, ctx).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::modules::args_in;
    use serde_json::json;
    use std::os::unix::fs::PermissionsExt;

    const CHROME: &str = "deb [arch=amd64] http://dl.google.com/linux/chrome/deb/ stable main";

    /// Runs the module on the sources under `dir` (`sources.list`, `sources.list.d/`),
    /// with `apt_get` standing in for the host's apt-get.
    fn apt_repo(dir: &Path, args: Value, check: bool, apt_get: &str) -> Outcome {
        let t = crate::modules::TestCtx::new();
        let places = Places {
            list: dir.join("sources.list"),
            dir: dir.join("sources.list.d"),
            apt_get: Some(PathBuf::from(apt_get)),
        };
        fsutil::finish(run_at(&args_in(dir, &args), &t.ctx(check, true), &places)).unwrap()
    }

    fn read(p: &Path) -> String {
        std::fs::read_to_string(p).unwrap()
    }

    #[test]
    fn a_new_source_gets_a_file_named_after_its_url() {
        let t = tempfile::tempdir().unwrap();
        let file = t
            .path()
            .join("sources.list.d/dl_google_com_linux_chrome_deb.list");
        let args = json!({"repo": CHROME, "update_cache": true});

        let dry = apt_repo(t.path(), args.clone(), true, "/bin/true");
        assert!(dry.changed && !file.exists());
        assert_eq!(dry.diff.len(), 1);
        assert_eq!(dry.diff[0].before_header, "/dev/null");
        assert_eq!(dry.diff[0].after, format!("{CHROME}\n"));

        let out = apt_repo(t.path(), args.clone(), false, "/bin/true");
        assert!(out.changed && !out.failed, "{out:?}");
        assert_eq!(read(&file), format!("{CHROME}\n"));
        assert_eq!(
            std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
            0o644
        );
        assert_eq!(
            out.data["sources_added"],
            json!([file.display().to_string()])
        );
        assert!(!apt_repo(t.path(), args, false, "/bin/true").changed);

        let named = json!({"repo": "deb http://example.org/x stable main", "filename": "mine",
                           "mode": "0600", "update_cache": false});
        apt_repo(t.path(), named, false, "/bin/true");
        let mine = t.path().join("sources.list.d/mine.list");
        assert_eq!(read(&mine), "deb http://example.org/x stable main\n");
        assert_eq!(
            std::fs::metadata(&mine).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }

    /// A source already listed (with other spacing) is left alone; a disabled copy is
    /// enabled where it is, and that file is written back in the module's form.
    #[test]
    fn listed_sources_are_found_and_disabled_ones_enabled() {
        let t = tempfile::tempdir().unwrap();
        let list = t.path().join("sources.list");
        std::fs::write(
            &list,
            "deb   http://deb.example/debian  bookworm main\n#deb http://x/y stable main #  note\n#plain comment\n",
        )
        .unwrap();
        let same =
            json!({"repo": "deb http://deb.example/debian bookworm main", "update_cache": false});
        assert!(!apt_repo(t.path(), same, false, "/bin/true").changed);
        assert!(
            read(&list).starts_with("deb   http"),
            "untouched when nothing changes"
        );

        let enable = json!({"repo": "deb http://x/y stable main", "update_cache": false});
        let out = apt_repo(t.path(), enable, false, "/bin/true");
        assert!(out.changed);
        assert_eq!(
            read(&list),
            "deb http://deb.example/debian bookworm main\ndeb http://x/y stable main # note\n# plain comment\n"
        );
        assert!(!t.path().join("sources.list.d").exists());
    }

    #[test]
    fn absent_removes_every_enabled_copy_and_empty_files() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path().join("sources.list.d");
        std::fs::create_dir(&d).unwrap();
        std::fs::write(d.join("a.list"), "deb http://r/x s main\n").unwrap();
        std::fs::write(
            d.join("b.list"),
            "deb http://r/x  s main\ndeb http://other s main\n",
        )
        .unwrap();
        let args =
            json!({"repo": "deb http://r/x s main", "state": "absent", "update_cache": false});
        let out = apt_repo(t.path(), args.clone(), false, "/bin/true");
        assert!(out.changed);
        assert!(!d.join("a.list").exists());
        assert_eq!(read(&d.join("b.list")), "deb http://other s main\n");
        assert_eq!(
            out.data["sources_removed"],
            json!([d.join("a.list").display().to_string()])
        );
        assert!(!apt_repo(t.path(), args, false, "/bin/true").changed);
    }

    /// When apt-get update fails (`/bin/false` stands in for it), the files are put
    /// back as they were and the task fails.
    #[test]
    fn a_failed_cache_update_puts_the_files_back() {
        let t = tempfile::tempdir().unwrap();
        let list = t.path().join("sources.list");
        std::fs::write(&list, "#deb http://x/y stable main\n").unwrap();
        let out = apt_repo(
            t.path(),
            json!({"repo": "deb http://x/y stable main"}),
            false,
            "/bin/false",
        );
        assert!(out.failed);
        assert!(
            out.msg
                .as_deref()
                .unwrap_or_default()
                .starts_with("Failed to update apt cache")
        );
        assert_eq!(read(&list), "#deb http://x/y stable main\n");
        let bad = apt_repo(
            t.path(),
            json!({"repo": "http://x/y stable"}),
            false,
            "/bin/true",
        );
        assert_eq!(
            bad.msg.as_deref(),
            Some("Invalid repository string: http://x/y stable")
        );
    }
}
