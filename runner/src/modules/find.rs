//! The find module: lists files under given directories that match name patterns, age,
//! size, type and content, with ansible.builtin.find's arguments and result (`files`,
//! `matched`, `examined`, `skipped_paths`). It only reads, so it is always ok and
//! behaves the same in check mode.
//!
//! Also home of the shell-style glob matcher (Python's `fnmatch`) that archive uses.
//! Not supported (refused as unknown arguments): `checksum_algorithm`.

use super::fsutil::{self, Step};
use super::{Ctx, ModuleError, Outcome, args};
use crate::fnmatch::Pattern;
use crate::plan::Vars;
use serde_json::{Map, Value};
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

const KNOWN: &[&str] = &[
    "paths",
    "path",
    "name",
    "patterns",
    "pattern",
    "excludes",
    "exclude",
    "contains",
    "read_whole_file",
    "file_type",
    "recurse",
    "depth",
    "hidden",
    "age",
    "age_stamp",
    "size",
    "follow",
    "get_checksum",
    "use_regex",
    "limit",
    "encoding",
    "mode",
    "exact_mode",
];

pub(super) fn run(a: &Vars, ctx: &Ctx<'_>) -> Result<Outcome, ModuleError> {
    fsutil::finish(run_inner(a, ctx))
}

/// Ansible's list arguments also take one comma-separated string.
fn list_arg(a: &Vars, names: &[&str]) -> Result<Vec<String>, ModuleError> {
    for name in names {
        if a.contains_key(*name) {
            let items = args::str_list(a, name)?;
            return Ok(match a.get(*name) {
                Some(Value::String(_)) => items
                    .iter()
                    .flat_map(|s| s.split(','))
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
                    .collect(),
                _ => items,
            });
        }
    }
    Ok(Vec::new())
}

/// How names are matched: shell globs, or regexes anchored at the start (`re.match`).
enum Matcher {
    Glob(Vec<Pattern>),
    Regex(Vec<crate::pyre::Pattern>),
}

impl Matcher {
    fn new(pats: Vec<String>, use_regex: bool, name: &str) -> Result<Matcher, ModuleError> {
        if !use_regex {
            return Ok(Matcher::Glob(
                pats.iter().map(|p| Pattern::new(p)).collect(),
            ));
        }
        pats.iter()
            .map(|p| {
                crate::pyre::Pattern::new(&format!("^(?:{p})")).map_err(|e| {
                    ModuleError::BadArgs(format!(
                        "argument '{name}' has an invalid regex '{p}': {e}"
                    ))
                })
            })
            .collect::<Result<_, _>>()
            .map(Matcher::Regex)
    }

    fn any(&self, name: &str) -> bool {
        match self {
            Matcher::Glob(g) => g.iter().any(|p| p.matches(name)),
            Matcher::Regex(r) => r.iter().any(|r| r.is_match(name.as_bytes()) == Ok(true)),
        }
    }
}

/// `age`/`size` thresholds: at least the value, or (negative) at most it.
fn threshold(
    a: &Vars,
    name: &str,
    units: &[(char, u64)],
    default_unit: u64,
) -> Result<Option<i128>, ModuleError> {
    let Some(s) = args::opt_str(a, name)? else {
        return Ok(None);
    };
    let bad = || {
        ModuleError::BadArgs(format!(
            "argument '{name}' must be a number with an optional unit ({}), got '{s}'",
            units
                .iter()
                .map(|(c, _)| c.to_string())
                .collect::<Vec<_>>()
                .join("/")
        ))
    };
    let t = s.trim().to_ascii_lowercase();
    let (num, mult) = match t.chars().last() {
        Some(c) if c.is_ascii_alphabetic() => {
            let m = units.iter().find(|(u, _)| *u == c).ok_or_else(bad)?.1;
            (t.get(..t.len() - 1).unwrap_or_default(), m)
        }
        _ => (t.as_str(), default_unit),
    };
    let n: i128 = num.parse().map_err(|_| bad())?;
    Ok(Some(n * i128::from(mult)))
}

/// Passes the "at least |t|" (t >= 0) or "at most |t|" (t < 0) test.
fn within(value: i128, t: Option<i128>) -> bool {
    match t {
        None => true,
        Some(t) if t >= 0 => value >= t,
        Some(t) => value <= -t,
    }
}

struct Query {
    patterns: Matcher,
    excludes: Option<Matcher>,
    contains: Option<crate::pyre::Pattern>,
    /// How `contains` reads files: UTF-8 (the default), or what the host's iconv decodes.
    encoding: Option<String>,
    whole_file: bool,
    file_type: String,
    recurse: bool,
    depth: Option<u64>,
    hidden: bool,
    age: Option<i128>,
    age_stamp: String,
    size: Option<i128>,
    follow: bool,
    checksum: bool,
    limit: Option<usize>,
    /// `mode` as permission bits, and whether they must be exactly the entry's
    /// (`exact_mode`, the default) or only share a bit with them.
    mode: Option<(u32, bool)>,
}

/// find's `mode`: octal text (as Python's `int(mode, 8)` reads it) or a symbolic mode
/// applied to nothing (`_symbolic_mode_to_octal` of a mode-0 file), or a number.
fn mode_arg(a: &Vars) -> Result<Option<u32>, ModuleError> {
    let Some(Value::String(text)) = a.get("mode") else {
        return args::opt_mode(a, "mode");
    };
    let t = text.trim();
    let digits = t.strip_prefix("0o").unwrap_or(t);
    if let Ok(m) = u32::from_str_radix(digits, 8) {
        return Ok(Some(m & 0o7777));
    }
    Ok(Some(args::SymbolicMode::parse(t)?.apply(0, false)))
}

fn run_inner(a: &Vars, _ctx: &Ctx<'_>) -> Step<Outcome> {
    args::only(a, KNOWN)?;
    let paths = list_arg(a, &["paths", "path", "name"])?;
    if paths.is_empty() {
        return Err(ModuleError::BadArgs("missing required argument 'paths'".into()).into());
    }
    let use_regex = args::bool_or(a, "use_regex", false)?;
    let mut patterns = list_arg(a, &["patterns", "pattern"])?;
    if patterns.is_empty() {
        patterns.push(if use_regex { ".*" } else { "*" }.to_string());
    }
    let excludes = list_arg(a, &["excludes", "exclude"])?;
    let file_type = args::opt_str(a, "file_type")?.unwrap_or_else(|| "file".into());
    if !["file", "directory", "link", "any"].contains(&file_type.as_str()) {
        return Err(ModuleError::BadArgs(format!(
            "argument 'file_type' must be one of file, directory, link, any; got '{file_type}'"
        ))
        .into());
    }
    let age_stamp = args::opt_str(a, "age_stamp")?.unwrap_or_else(|| "mtime".into());
    if !["atime", "ctime", "mtime"].contains(&age_stamp.as_str()) {
        return Err(ModuleError::BadArgs(format!(
            "argument 'age_stamp' must be one of atime, ctime, mtime; got '{age_stamp}'"
        ))
        .into());
    }
    let depth = args::opt_u64(a, "depth")?;
    let limit = match a.get("limit") {
        None | Some(Value::Null) => None,
        Some(v) => Some(
            v.as_u64()
                .and_then(|n| usize::try_from(n).ok())
                .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
                .ok_or_else(|| {
                    ModuleError::BadArgs(format!("argument 'limit' must be an integer, got {v}"))
                })?,
        ),
    };
    let contains = args::opt_str(a, "contains")?
        .map(|c| {
            crate::pyre::Pattern::new(&c).map_err(|e| {
                ModuleError::BadArgs(format!("argument 'contains' is not a valid regex: {e}"))
            })
        })
        .transpose()?;
    let q = Query {
        patterns: Matcher::new(patterns, use_regex, "patterns")?,
        excludes: if excludes.is_empty() {
            None
        } else {
            Some(Matcher::new(excludes, use_regex, "excludes")?)
        },
        contains,
        encoding: args::opt_str(a, "encoding")?,
        whole_file: args::bool_or(a, "read_whole_file", false)?,
        file_type,
        recurse: args::bool_or(a, "recurse", false)?,
        depth,
        hidden: args::bool_or(a, "hidden", false)?,
        age: threshold(
            a,
            "age",
            &[
                ('s', 1),
                ('m', 60),
                ('h', 3600),
                ('d', 86_400),
                ('w', 604_800),
            ],
            1,
        )?,
        age_stamp,
        size: threshold(
            a,
            "size",
            &[
                ('b', 1),
                ('k', 1 << 10),
                ('m', 1 << 20),
                ('g', 1 << 30),
                ('t', 1 << 40),
            ],
            1,
        )?,
        follow: args::bool_or(a, "follow", false)?,
        checksum: args::bool_or(a, "get_checksum", false)?,
        limit,
        mode: mode_arg(a)?
            .map(|m| Ok::<_, ModuleError>((m, args::bool_or(a, "exact_mode", true)?)))
            .transpose()?,
    };

    let mut files = Vec::new();
    let mut examined: u64 = 0;
    let mut skipped = Map::new();
    for p in &paths {
        let root = expand_home(p);
        if !root.is_dir() {
            skipped.insert(p.clone(), format!("'{p}' is not a directory").into());
            continue;
        }
        // An encoding problem stops the walk of that path, as Ansible's exception does.
        if let Err(msg) = walk(&q, &root, 1, &mut files, &mut examined, &mut skipped) {
            skipped.insert(p.clone(), msg.into());
        }
    }
    let msg = if skipped.is_empty() {
        "All paths examined"
    } else {
        "Not all paths examined, check warnings for details"
    };
    Ok(Outcome::ok()
        .msg(msg)
        .with("matched", files.len())
        .with("examined", examined)
        .with("files", Value::Array(files))
        .with("skipped_paths", Value::Object(skipped)))
}

/// `~` and `~/...` as the invoking user's home, as Ansible's expanduser.
fn expand_home(p: &str) -> PathBuf {
    match (p.strip_prefix('~'), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) if rest.is_empty() || rest.starts_with('/') => {
            PathBuf::from(home).join(rest.trim_start_matches('/'))
        }
        _ => PathBuf::from(p),
    }
}

/// One directory level of an `os.walk`: every entry is examined; directories are
/// entered when recursing (symlinked ones only with `follow`) within `depth`.
fn walk(
    q: &Query,
    dir: &Path,
    level: u64,
    files: &mut Vec<Value>,
    examined: &mut u64,
    skipped: &mut Map<String, Value>,
) -> Result<(), String> {
    let entries = match fs::read_dir(dir) {
        Ok(rd) => {
            let mut v: Vec<_> = rd.filter_map(Result::ok).map(|e| e.file_name()).collect();
            // Sorted, so results do not depend on directory order.
            v.sort();
            v
        }
        Err(e) => {
            skipped.insert(dir.display().to_string(), e.to_string().into());
            return Ok(());
        }
    };
    *examined += entries.len() as u64;
    let mut subdirs = Vec::new();
    for name in entries {
        let path = dir.join(&name);
        let name = name.to_string_lossy();
        if q.depth.is_some_and(|d| level > d) {
            continue;
        }
        let Ok(st) = fs::symlink_metadata(&path) else {
            skipped.insert(path.display().to_string(), "could not stat".into());
            continue;
        };
        let is_dir = st.is_dir() || (q.follow && st.file_type().is_symlink() && path.is_dir());
        if is_dir {
            subdirs.push(path.clone());
        }
        if name.starts_with('.') && !q.hidden {
            continue;
        }
        if q.limit.is_some_and(|l| files.len() >= l) {
            continue;
        }
        if matches(q, &name, &path, &st)? {
            let mut info = super::stat::describe(&path.display().to_string(), &st);
            info.shift_remove("exists");
            if st.is_file()
                && q.checksum
                && let Ok(sum) = fsutil::sha1_file(&path)
            {
                info.insert("checksum".into(), sum.into());
            }
            files.push(Value::Object(info));
        }
    }
    if q.recurse {
        for sub in subdirs {
            walk(q, &sub, level + 1, files, examined, skipped)?;
        }
    }
    Ok(())
}

/// Ansible's filters for one entry: type, name patterns, age, size, content.
fn matches(q: &Query, name: &str, path: &Path, st: &fs::Metadata) -> Result<bool, String> {
    let t = st.file_type();
    let type_ok = match q.file_type.as_str() {
        "file" => t.is_file(),
        "directory" => t.is_dir(),
        "link" => t.is_symlink(),
        _ => true,
    };
    if !type_ok || !q.patterns.any(name) || q.excludes.as_ref().is_some_and(|e| e.any(name)) {
        return Ok(false);
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i128::from(d.as_secs()));
    let stamp = match q.age_stamp.as_str() {
        "atime" => st.atime(),
        "ctime" => st.ctime(),
        _ => st.mtime(),
    };
    if !within(now - i128::from(stamp), q.age) {
        return Ok(false);
    }
    // Ansible's mode_filter, for every type.
    if let Some((mode, exact)) = q.mode {
        let have = st.mode() & 0o7777;
        if !(if exact {
            have == mode
        } else {
            have & mode != 0
        }) {
            return Ok(false);
        }
    }
    // Size and content only filter regular files (with `any`, others pass).
    if t.is_file() {
        if !within(i128::from(st.size()), q.size) {
            return Ok(false);
        }
        if let Some(re) = &q.contains
            && q.file_type == "file"
            && !content_matches(re, path, q.whole_file, q.encoding.as_deref())?
        {
            return Ok(false);
        }
    }
    Ok(true)
}

/// `contains`: a line that matches from its start, or anywhere in the whole file.
/// An unreadable file does not match; one the encoding cannot decode (or an encoding
/// nobody knows) is an error for the whole path, with Ansible's message.
fn content_matches(
    re: &crate::pyre::Pattern,
    path: &Path,
    whole: bool,
    encoding: Option<&str>,
) -> Result<bool, String> {
    let Ok(bytes) = fs::read(path) else {
        return Ok(false);
    };
    let Some(text) = decode(&bytes, path, encoding)? else {
        return Ok(false);
    };
    // Python's `$` also matches before a final newline, the crate's only at the end:
    // the text is tried without that newline too.
    let found = |t: &str, at_start: bool| {
        let hit = |t: &str| {
            re.find(t.as_bytes())
                .ok()
                .flatten()
                .is_some_and(|m| !at_start || m.start == 0)
        };
        hit(t) || t.strip_suffix('\n').is_some_and(hit)
    };
    if whole {
        return Ok(found(&text, false));
    }
    Ok(text.split_inclusive('\n').any(|l| found(l, true)))
}

/// A file's text in `encoding`: UTF-8 here, others through the host's `iconv`
/// (`None` when it cannot be run: the file does not match, as an unreadable one).
fn decode(bytes: &[u8], path: &Path, encoding: Option<&str>) -> Result<Option<String>, String> {
    let shown =
        encoding.unwrap_or(r#"None (default determined by the Python built-in function "open")"#);
    let encoding_error = || {
        format!(
            "Failed to read the file {} due to an encoding error. current encoding: {shown}",
            path.display()
        )
    };
    let utf8 = encoding.is_none_or(|e| {
        matches!(
            e.to_ascii_lowercase().replace('_', "-").as_str(),
            "utf-8" | "utf8" | "u8" | "utf"
        )
    });
    if utf8 {
        return String::from_utf8(bytes.to_vec())
            .map(Some)
            .map_err(|_| encoding_error());
    }
    let enc = encoding.unwrap_or_default();
    let Some(iconv) = super::tools::find_bin("iconv") else {
        return Ok(None);
    };
    let args = vec![
        "-f".to_string(),
        enc.to_string(),
        "-t".to_string(),
        "UTF-8".to_string(),
    ];
    match super::tools::run(&iconv, &args, Some(bytes)) {
        Ok(out) if out.rc == 0 => Ok(Some(out.stdout)),
        // glibc's iconv says "illegal input sequence" or "incomplete character" of
        // bytes it cannot decode; anything else is an encoding it cannot start.
        Ok(out) if out.stderr.contains("illegal input") || out.stderr.contains("incomplete") => {
            Err(encoding_error())
        }
        Ok(_) => Err(format!("unknown encoding: {enc}")),
        Err(_) => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::super::{ModuleError, Outcome};

    use serde_json::{Value, json};

    use std::fs;
    use std::path::Path;

    fn check(dir: &Path, args: Value, check_mode: bool) -> Result<Outcome, ModuleError> {
        crate::modules::run_in_dir_for_test("find", dir, &args, check_mode)
    }

    fn names(o: &Outcome, root: &Path) -> Vec<String> {
        let mut v: Vec<String> = o.data["files"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| {
                f["path"]
                    .as_str()
                    .unwrap()
                    .strip_prefix(&format!("{}/", root.display()))
                    .unwrap()
                    .to_string()
            })
            .collect();
        v.sort();
        v
    }

    /// a.txt, b.log, .hidden.txt, big.bin (5000 bytes), sub/c.txt, sub/deep/d.txt,
    /// link.txt -> a.txt
    fn tree() -> tempfile::TempDir {
        let t = tempfile::tempdir().unwrap();
        let p = t.path();
        fs::write(p.join("a.txt"), "alpha\nneedle here\n").unwrap();
        fs::write(p.join("b.log"), "log\n").unwrap();
        fs::write(p.join(".hidden.txt"), "h").unwrap();
        fs::write(p.join("big.bin"), vec![0u8; 5000]).unwrap();
        fs::create_dir_all(p.join("sub/deep")).unwrap();
        fs::write(p.join("sub/c.txt"), "no needle at start\n").unwrap();
        fs::write(p.join("sub/deep/d.txt"), "d").unwrap();
        std::os::unix::fs::symlink("a.txt", p.join("link.txt")).unwrap();
        t
    }

    #[test]
    fn patterns_recurse_depth_and_hidden() {
        let t = tree();
        let p = t.path();
        let top = check(p, json!({"paths": "{p}", "patterns": "*.txt"}), false).unwrap();
        assert!(!top.changed && !top.failed);
        assert_eq!(names(&top, p), vec!["a.txt"]);
        assert_eq!(top.data["matched"], 1);
        // a.txt b.log .hidden.txt big.bin sub link.txt
        assert_eq!(top.data["examined"], 6);
        let f = &top.data["files"][0];
        assert_eq!(f["isreg"], true);
        assert_eq!(f["size"], 18);
        assert!(f["mtime"].as_f64().unwrap() > 1e9);
        assert!(f.get("mode").is_some() && f.get("islnk").is_some());

        let all = check(
            p,
            json!({"paths": ["{p}"], "patterns": ["*.txt"], "recurse": true, "hidden": true}),
            false,
        )
        .unwrap();
        assert_eq!(
            names(&all, p),
            vec![".hidden.txt", "a.txt", "sub/c.txt", "sub/deep/d.txt"]
        );
        let shallow = check(
            p,
            json!({"paths": "{p}", "patterns": "*.txt,*.log", "recurse": true, "depth": 2}),
            false,
        )
        .unwrap();
        assert_eq!(names(&shallow, p), vec!["a.txt", "b.log", "sub/c.txt"]);
        let excl = check(
            p,
            json!({"paths": "{p}", "recurse": true, "excludes": "c.*"}),
            false,
        )
        .unwrap();
        assert_eq!(
            names(&excl, p),
            vec!["a.txt", "b.log", "big.bin", "sub/deep/d.txt"]
        );
    }

    /// The find target reads a GBK file as UTF-8 (skipped with Ansible's message), as
    /// GBK (found), and with an encoding nobody knows (skipped: `unknown encoding`).
    #[test]
    fn contains_reads_files_in_their_encoding() {
        let t = tempfile::tempdir().unwrap();
        // 你好世界 in GBK.
        fs::write(
            t.path().join("hello.gbk"),
            b"\xc4\xe3\xba\xc3\xca\xc0\xbd\xe7\n",
        )
        .unwrap();
        let p = t.path().display().to_string();
        let utf8 = check(t.path(), json!({"paths": "{p}", "patterns": "*.gbk", "contains": "你好世界", "encoding": "utf-8"}), false).unwrap();
        assert_eq!(
            utf8.data["skipped_paths"][&p],
            format!(
                "Failed to read the file {p}/hello.gbk due to an encoding error. current encoding: utf-8"
            )
        );
        if super::super::tools::find_bin("iconv").is_some() {
            let gbk = check(t.path(), json!({"paths": "{p}", "patterns": "*.gbk", "contains": "你好世界", "encoding": "gbk"}), false).unwrap();
            assert_eq!(gbk.data["matched"], 1, "{gbk:?}");
            let unknown = check(t.path(), json!({"paths": "{p}", "patterns": "*.gbk", "contains": "x", "encoding": "idontexist"}), false).unwrap();
            assert_eq!(
                unknown.data["skipped_paths"][&p],
                "unknown encoding: idontexist"
            );
        }
    }

    /// The find target: `$` matches before a file's final newline with
    /// `read_whole_file`, and at each line's end without it, as Python's `$` does.
    #[test]
    fn dollar_matches_before_a_final_newline_as_in_python() {
        let t = tempfile::tempdir().unwrap();
        fs::write(
            t.path().join("a.txt"),
            "this is a file\nthat has\na few lines KO\nand OK\n",
        )
        .unwrap();
        let n = |contains: &str, whole: bool| {
            check(t.path(), json!({"paths": "{p}", "patterns": "*.txt", "contains": contains, "read_whole_file": whole}), false)
                .unwrap()
                .data["matched"]
                .clone()
        };
        assert_eq!(n("OK$", true), 1);
        assert_eq!(n("KO$", true), 0);
        assert_eq!(n(".*KO$", false), 1);
        assert_eq!(n("has\na few", true), 1);
        assert_eq!(n("has\na few", false), 0);
    }

    #[test]
    fn regex_types_size_contains_and_age() {
        let t = tree();
        let p = t.path();
        let re = check(
            p,
            json!({"paths": "{p}", "patterns": "^[ab]\\..*", "use_regex": true}),
            false,
        )
        .unwrap();
        assert_eq!(names(&re, p), vec!["a.txt", "b.log"]);
        let dirs = check(
            p,
            json!({"paths": "{p}", "file_type": "directory", "recurse": true}),
            false,
        )
        .unwrap();
        assert_eq!(names(&dirs, p), vec!["sub", "sub/deep"]);
        assert_eq!(dirs.data["files"][0]["isdir"], true);
        let links = check(p, json!({"paths": "{p}", "file_type": "link"}), false).unwrap();
        assert_eq!(names(&links, p), vec!["link.txt"]);
        assert_eq!(links.data["files"][0]["islnk"], true);
        let big = check(p, json!({"paths": "{p}", "size": "4k"}), false).unwrap();
        assert_eq!(names(&big, p), vec!["big.bin"]);
        let small = check(p, json!({"paths": "{p}", "size": "-1k"}), true).unwrap();
        assert_eq!(names(&small, p), vec!["a.txt", "b.log"]);
        let needle = check(
            p,
            json!({"paths": "{p}", "recurse": true, "contains": "needle"}),
            false,
        )
        .unwrap();
        assert_eq!(names(&needle, p), vec!["a.txt"]);
        let whole = check(
            p,
            json!({"paths": "{p}", "recurse": true, "contains": "needle", "read_whole_file": true}),
            false,
        )
        .unwrap();
        assert_eq!(names(&whole, p), vec!["a.txt", "sub/c.txt"]);
        // Just written: nothing is a day old, everything is younger than a day.
        let old = check(p, json!({"paths": "{p}", "age": "1d"}), false).unwrap();
        assert_eq!(old.data["matched"], 0);
        let young = check(p, json!({"paths": "{p}", "age": "-1d"}), false).unwrap();
        assert_eq!(young.data["matched"], 3);
        let any = check(
            p,
            json!({"paths": "{p}", "file_type": "any", "limit": 2}),
            false,
        )
        .unwrap();
        assert_eq!(any.data["matched"], 2);
    }

    #[test]
    fn missing_paths_are_skipped_not_fatal() {
        let t = tree();
        let out = check(t.path(), json!({"paths": ["{p}/nope", "{p}/sub"]}), false).unwrap();
        assert!(!out.failed);
        assert_eq!(names(&out, t.path()), vec!["sub/c.txt"]);
        let skipped = out.data["skipped_paths"].as_object().unwrap();
        assert!(skipped.keys().any(|k| k.ends_with("/nope")));
        assert!(out.msg.unwrap().contains("Not all paths"));
    }

    #[test]
    fn bad_arguments_name_the_argument() {
        let t = tree();
        let cases = [
            (json!({}), "paths"),
            (json!({"paths": "{p}", "file_type": "fifo"}), "file_type"),
            (json!({"paths": "{p}", "age": "3y"}), "age"),
            (json!({"paths": "{p}", "size": "big"}), "size"),
            (json!({"paths": "{p}", "depth": "deep"}), "depth"),
            (
                json!({"paths": "{p}", "patterns": "(", "use_regex": true}),
                "patterns",
            ),
            (json!({"paths": "{p}", "contains": "("}), "contains"),
            (json!({"paths": "{p}", "recursive": true}), "recursive"),
        ];
        for (args, name) in cases {
            match check(t.path(), args.clone(), false) {
                Err(ModuleError::BadArgs(m)) => assert!(m.contains(name), "{args}: {m}"),
                other => panic!("{args}: expected BadArgs, got {other:?}"),
            }
        }
    }

    /// find's mode.yml: `mode` in octal or symbolic form, matched exactly (the
    /// default) or as any shared bit (`exact_mode: false`).
    #[test]
    fn mode_matches_exactly_or_by_any_shared_bit() {
        use std::os::unix::fs::PermissionsExt;
        let t = tempfile::tempdir().unwrap();
        for m in [0o644, 0o444, 0o400, 0o700, 0o666] {
            let f = t.path().join(format!("mode_{m:04o}"));
            fs::write(&f, "").unwrap();
            fs::set_permissions(&f, fs::Permissions::from_mode(m)).unwrap();
        }
        let find = |mode: &str, exact: bool| {
            let args = json!({"paths": "{p}", "mode": mode, "exact_mode": exact});
            names(&check(t.path(), args, false).unwrap(), t.path())
        };
        assert_eq!(find("0644", true), ["mode_0644"]);
        assert_eq!(find("u=rw,g=r,o=r", true), ["mode_0644"]);
        let user_readable = [
            "mode_0400",
            "mode_0444",
            "mode_0644",
            "mode_0666",
            "mode_0700",
        ];
        assert_eq!(find("0400", false), user_readable);
        assert_eq!(find("u=r", false), user_readable);
        let other_readable = ["mode_0444", "mode_0644", "mode_0666"];
        assert_eq!(find("0004", false), other_readable);
        assert_eq!(find("o=r", false), other_readable);
        let bad = check(t.path(), json!({"paths": "{p}", "mode": "rw"}), false);
        assert!(matches!(bad, Err(ModuleError::BadArgs(m)) if m.contains("mode")));
    }
}
