//! lineinfile, blockinfile and replace: edit text files in place, with Ansible's
//! arguments, messages and matching rules.
//!
//! The three modules share one write path ([`commit`]): compute the new content in
//! memory, then let `fsutil::write_file` back up and atomically replace the file (the
//! real file behind a symlink, as Ansible writes to `realpath`), and reconcile
//! mode/owner/group, adding Ansible's "ownership, perms or SE linux context changed".
//!
//! Patterns are Python `re` syntax in Ansible; here they are compiled by
//! [`crate::pyre`]: the `regex` crate when it accepts the pattern, `fancy-regex` for
//! what it lacks (look-around, backreferences inside a pattern, `(?P=name)`).
//! A pattern neither accepts fails the task, naming the argument. Other differences:
//! - lineinfile/blockinfile match each line without its final `\n`, so `$` behaves as
//!   Python's "end or before the final newline"; a pattern that spells out `\n` never
//!   matches a single line (in Ansible it could match the line's terminator).
//! - `\w`, `\d`, `\s`, `\b` and `(?i)` are Unicode-aware in all three modules; Ansible's
//!   lineinfile/blockinfile use bytes patterns, where they are ASCII-only.
//!
//! Replacement templates (`replace`, lineinfile `backrefs`) use Python's syntax —
//! `\1`, `\g<1>`, `\g<name>`, `\n`, `\\` — expanded by [`crate::pyre::Template`]; a
//! reference to a group the pattern lacks fails, as in Python.
//!
//! `validate` runs its command on a temp file holding the new content before a changed
//! file is written, as Ansible's do.
//!
//! Not supported yet: `encoding` other than UTF-8 (replace),
//! `unsafe_writes`, SELinux and `attributes` arguments.

use super::fsutil::{self, Attrs, Step, Stop, WriteReq, fail, failed, io_fail};
use super::{Ctx, Diff, ModuleError, Outcome, args};
use crate::plan::Vars;
use crate::pyre::{Pattern, Template};
use std::fs;
use std::path::{Path, PathBuf};

/// The file arguments every text module takes.
const COMMON: &[&str] = &[
    "path",
    "dest",
    "destfile",
    "name",
    "backup",
    "mode",
    "owner",
    "group",
    "validate",
    "attributes",
    "attr",
];

const LINEINFILE: &[&str] = &[
    "line",
    "value",
    "regexp",
    "regex",
    "search_string",
    "state",
    "insertafter",
    "insertbefore",
    "create",
    "backrefs",
    "firstmatch",
];

const BLOCKINFILE: &[&str] = &[
    "block",
    "content",
    "marker",
    "marker_begin",
    "marker_end",
    "insertafter",
    "insertbefore",
    "create",
    "state",
    "append_newline",
    "prepend_newline",
];

const REPLACE: &[&str] = &["regexp", "replace", "after", "before", "encoding"];

/// Ansible's default block marker.
const DEFAULT_MARKER: &str = "# {mark} ANSIBLE MANAGED BLOCK";

/// `lineinfile`: ensure one line is present (added, or replacing the line a pattern
/// finds) or that matching lines are absent.
pub(super) fn lineinfile(a: &Vars, c: &Ctx<'_>) -> Result<Outcome, ModuleError> {
    // Ansible warns before it looks at the file, so the warning is in every result.
    let empty = |k: &str| matches!(a.get(k), Some(serde_json::Value::String(s)) if s.is_empty());
    let warning = if empty("regexp") || empty("regex") {
        Some(format!("{EMPTY_PATTERN_WARNING} If this is desired, use '^' to match every line in the file and avoid this warning.").replace("%s", "regular expression"))
    } else if empty("search_string") {
        Some(EMPTY_PATTERN_WARNING.replace("%s", "search string"))
    } else {
        None
    };
    let out = fsutil::finish(lineinfile_inner(a, c))?;
    Ok(match warning {
        Some(w) => out.warn(w),
        None => out,
    })
}

/// lineinfile's warning for an empty regexp or search_string (`%s` names which).
const EMPTY_PATTERN_WARNING: &str = "The %s is an empty string, which will match every line in the file. This may have unintended consequences, such as replacing the last line in the file rather than appending.";

/// `blockinfile`: ensure a marker-delimited block is present with given content, or
/// absent.
pub(super) fn blockinfile(a: &Vars, c: &Ctx<'_>) -> Result<Outcome, ModuleError> {
    fsutil::finish(blockinfile_inner(a, c))
}

/// `replace`: substitute every match of a pattern, optionally only between `after`
/// and `before`.
pub(super) fn replace(a: &Vars, c: &Ctx<'_>) -> Result<Outcome, ModuleError> {
    fsutil::finish(replace_inner(a, c))
}

// ---------------------------------------------------------------------------
// Arguments shared by the three modules

/// The first of `names` that is given: an argument and its aliases.
fn aliased(a: &Vars, names: &[&str]) -> Result<Option<String>, ModuleError> {
    for n in names {
        if let Some(v) = args::opt_str(a, n)? {
            return Ok(Some(v));
        }
    }
    Ok(None)
}

/// Checks the argument names and reads what all three modules share.
fn common(a: &Vars, own: &[&str]) -> Step<(PathBuf, Attrs, Backup)> {
    let known: Vec<&str> = COMMON.iter().chain(own).copied().collect();
    args::only(a, &known)?;
    let validate = args::opt_str(a, "validate")?;
    let path = aliased(a, &["path", "dest", "destfile", "name"])?
        .filter(|p| !p.is_empty())
        .ok_or_else(|| ModuleError::BadArgs("missing required argument 'path'".into()))?;
    let attrs = Attrs::from_args(a)?;
    let backup = args::bool_or(a, "backup", false)?;
    Ok((PathBuf::from(path), attrs, Backup { backup, validate }))
}

/// How a changed file is committed: backed up first, checked first.
struct Backup {
    /// Keep a copy of the file being replaced.
    backup: bool,
    /// A command (`%s`: a temp file with the new content) that must succeed first.
    validate: Option<String>,
}

/// `state`: present (the default) or absent.
fn state_present(a: &Vars) -> Result<bool, ModuleError> {
    match args::opt_str(a, "state")?.as_deref() {
        None | Some("present") => Ok(true),
        Some("absent") => Ok(false),
        Some(other) => Err(ModuleError::BadArgs(format!(
            "argument 'state' must be one of present, absent; got '{other}'"
        ))),
    }
}

/// Refuses two arguments given together, as Ansible's `mutually_exclusive`.
fn exclusive(a: &Vars, x: &str, y: &str) -> Result<(), ModuleError> {
    let given = |k: &str| a.get(k).is_some_and(|v| !v.is_null());
    if given(x) && given(y) {
        return Err(ModuleError::BadArgs(format!(
            "parameters are mutually exclusive: {x}|{y}"
        )));
    }
    Ok(())
}

/// The file's content; `None` when it does not exist. A directory fails with
/// Ansible's message and rc.
fn read_target(path: &Path) -> Step<Option<Vec<u8>>> {
    if path.is_dir() {
        return Err(failed(
            Outcome::fail(format!("Path {} is a directory !", path.display())).with("rc", 256),
        ));
    }
    // exists() follows symlinks: a dangling link counts as missing, as in Ansible.
    if !path.exists() {
        return Ok(None);
    }
    fs::read(path)
        .map(Some)
        .map_err(|e| io_fail("read", path, &e))
}

/// A module's decision about a file's content, for [`commit`].
struct Change<'a> {
    path: &'a Path,
    /// The content now; `None` when the file does not exist.
    before: Option<&'a [u8]>,
    after: &'a [u8],
    /// The module's verdict (blockinfile creates an empty file: changed, same bytes).
    changed: bool,
    msg: String,
}

/// Writes the new content when changed (backing up first when asked), reconciles
/// mode/owner/group, and builds the result: `msg`, `backup_file`, and in diff mode the
/// content diff and the attribute diff. Check mode writes nothing and reports the same.
fn commit(ctx: &Ctx<'_>, ch: Change<'_>, attrs: Attrs, how: &Backup) -> Step<Outcome> {
    let backup = how.backup;
    let Change {
        path,
        before,
        after,
        changed,
        mut msg,
    } = ch;
    let mut out = Outcome::changed(changed);
    // Attribute changes are judged against the file as it is: a rewrite keeps its mode
    // and owner, so what differs now is what the task changes. A new file gets the
    // requested attributes at creation.
    let attr_changes = match before {
        Some(_) => fsutil::apply_attrs(path, &attrs, true, ctx.check_mode || changed)?,
        None => fsutil::Changes::default(),
    };
    if changed && !ctx.check_mode {
        // As Ansible, the command is checked and run only when there is something to
        // write.
        if let Some(v) = &how.validate {
            if !v.contains("%s") {
                return fail(format!("validate must contain %s: {v}"));
            }
            super::copy::validate_content(v, path, after, true, ctx)?;
        }
        if before.is_none()
            && let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
            && !dir.exists()
        {
            fs::create_dir_all(dir).map_err(|e| {
                failed(Outcome::fail(format!(
                    "Error creating {} ({e})",
                    dir.display()
                )))
            })?;
        }
        let req = WriteReq {
            dest: path,
            content: after,
            attrs,
            force: true,
            backup: backup && before.is_some(),
            follow: true,
            src: None,
            new_mode: None,
        };
        let written = fsutil::write_file(&req, ctx)?;
        if let Some(b) = written.data.get("backup_file") {
            out = out.with("backup_file", b.clone());
        }
    }
    if ctx.diff_mode && changed {
        let header = format!("{} (content)", path.display());
        out.diff.push(Diff {
            before_header: header.clone(),
            after_header: header,
            before: before.map(fsutil::diff_text).unwrap_or_default(),
            after: fsutil::diff_text(after),
        });
    }
    if !attr_changes.is_empty() {
        if changed {
            msg.push_str(" and ");
        }
        msg.push_str("ownership, perms or SE linux context changed");
        out.changed = true;
        if ctx.diff_mode {
            out.diff.push(attr_changes.to_diff(path));
        }
    }
    Ok(out.msg(msg))
}

// ---------------------------------------------------------------------------
// Python regex compatibility

/// Python's inline-flag prefix says MULTILINE: `(?m)`, `(?im)`, ...
fn py_multiline(p: &str) -> bool {
    p.strip_prefix("(?")
        .and_then(|r| r.split_once(')'))
        .is_some_and(|(flags, _)| {
            flags.chars().all(|c| c.is_ascii_alphabetic()) && flags.contains('m')
        })
}

/// Why a pattern did not compile, as the failed task's message.
fn pattern_error(arg: &str, pattern: &str, e: &str) -> Stop {
    failed(Outcome::fail(format!(
        "argument '{arg}': cannot compile the regular expression '{pattern}': {e}"
    )))
}

/// Compiles a Python pattern, naming `arg` on failure.
fn bytes_regex(arg: &str, pattern: &str) -> Step<Pattern> {
    Pattern::new(pattern).map_err(|e| pattern_error(arg, pattern, &e))
}

/// A match the backtracking engine gave up on, as the failed task's message.
fn match_error(e: String) -> Stop {
    failed(Outcome::fail(e))
}

/// Does `re` match the line `l` (seen without its final newline)?
fn line_hit(re: &Pattern, l: &[u8]) -> Step<bool> {
    re.is_match(match_view(l)).map_err(match_error)
}

/// A replacement template failing to translate, as the failed task's message.
fn template_error(arg: &str, t: &str, e: &str) -> Stop {
    failed(Outcome::fail(format!(
        "argument '{arg}': invalid replacement template '{t}': {e}"
    )))
}

// ---------------------------------------------------------------------------
// Lines

/// Splits after each `\n`, as Python's `readlines()`; every piece keeps its ending.
fn split_lines(b: &[u8]) -> Vec<Vec<u8>> {
    b.split_inclusive(|&c| c == b'\n')
        .map(<[u8]>::to_vec)
        .collect()
}

/// Splits after `\n`, `\r\n` or a lone `\r`, as Python's `bytes.splitlines(True)`.
fn split_lines_universal(b: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        i += 1;
        let end = match c {
            b'\n' => Some(i),
            b'\r' if b.get(i) == Some(&b'\n') => Some(i + 1),
            b'\r' => Some(i),
            _ => None,
        };
        if let Some(e) = end {
            out.push(b.get(start..e).unwrap_or_default().to_vec());
            start = e;
            i = e;
        }
    }
    if let Some(rest) = b.get(start..).filter(|r| !r.is_empty()) {
        out.push(rest.to_vec());
    }
    out
}

/// A line without its trailing `\r`/`\n` characters (Python's `rstrip(b'\r\n')`).
fn trim_eol(l: &[u8]) -> &[u8] {
    let end = l
        .iter()
        .rposition(|&c| c != b'\r' && c != b'\n')
        .map_or(0, |p| p + 1);
    l.get(..end).unwrap_or_default()
}

/// A line as patterns see it: without its final `\n`, so that `$` matches where
/// Python's does.
fn match_view(l: &[u8]) -> &[u8] {
    l.strip_suffix(b"\n").unwrap_or(l)
}

/// True when the last line lacks a terminator (`\n` or `\r`).
fn last_unterminated(lines: &[Vec<u8>]) -> bool {
    lines
        .last()
        .is_some_and(|l| !matches!(l.last(), Some(b'\n' | b'\r')))
}

// ---------------------------------------------------------------------------
// lineinfile

/// Where lineinfile puts a line that no pattern found.
enum Place {
    Bof,
    Eof,
    After(Pattern),
    Before(Pattern),
}

fn lineinfile_inner(a: &Vars, ctx: &Ctx<'_>) -> Step<Outcome> {
    let (path, attrs, backup) = common(a, LINEINFILE)?;
    exclusive(a, "insertbefore", "insertafter")?;
    exclusive(a, "regexp", "search_string")?;
    exclusive(a, "regex", "search_string")?;
    let present = state_present(a)?;
    let regexp_src = aliased(a, &["regexp", "regex"])?;
    let search = args::opt_str(a, "search_string")?;
    let line = aliased(a, &["line", "value"])?;
    let backrefs = args::bool_or(a, "backrefs", false)?;
    if backrefs && search.is_some() {
        return Err(ModuleError::BadArgs(
            "parameters are mutually exclusive: backrefs|search_string".into(),
        )
        .into());
    }
    let firstmatch = args::bool_or(a, "firstmatch", false)?;
    let create = args::bool_or(a, "create", false)?;
    let regexp = match &regexp_src {
        Some(p) => Some(bytes_regex("regexp", p)?),
        None => None,
    };

    let before = read_target(&path)?;
    if present {
        if backrefs && regexp.is_none() {
            return Err(
                ModuleError::BadArgs("regexp is required with backrefs=true".into()).into(),
            );
        }
        let line =
            line.ok_or_else(|| ModuleError::BadArgs("line is required with state=present".into()))?;
        let place = match (
            args::opt_str(a, "insertafter")?,
            args::opt_str(a, "insertbefore")?,
        ) {
            (Some(x), _) if x == "EOF" => Place::Eof,
            (Some(x), _) if x == "BOF" => Place::Bof,
            (Some(x), _) => Place::After(bytes_regex("insertafter", &x)?),
            (None, Some(x)) if x == "BOF" => Place::Bof,
            (None, Some(x)) => Place::Before(bytes_regex("insertbefore", &x)?),
            (None, None) => Place::Eof,
        };
        if before.is_none() && !create {
            return Err(failed(
                Outcome::fail(format!("Destination {} does not exist !", path.display()))
                    .with("rc", 257),
            ));
        }
        let mut lines = split_lines(before.as_deref().unwrap_or_default());
        let Edit { msg, changed } = present_edit(
            &mut lines,
            &line,
            regexp.as_ref(),
            search.as_deref().map(str::as_bytes),
            &place,
            backrefs,
            firstmatch,
        )?;
        let after = lines.concat();
        let ch = Change {
            path: &path,
            before: before.as_deref(),
            after: &after,
            changed,
            msg,
        };
        let out = commit(ctx, ch, attrs, &backup)?;
        Ok(with_backup_key(out))
    } else {
        if regexp.is_none() && search.is_none() && line.is_none() {
            return Err(ModuleError::BadArgs(
                "one of line, search_string, or regexp is required with state=absent".into(),
            )
            .into());
        }
        let Some(before) = before else {
            return Ok(Outcome::ok().msg("file not present"));
        };
        let mut found = 0u64;
        let mut kept: Vec<Vec<u8>> = Vec::new();
        for l in split_lines(&before) {
            let hit = match (&regexp, &search, &line) {
                (Some(re), _, _) => line_hit(re, &l)?,
                (None, Some(s), _) => contains(&l, s.as_bytes()),
                (None, None, Some(want)) => trim_eol(&l) == want.as_bytes(),
                (None, None, None) => false,
            };
            found += u64::from(hit);
            if !hit {
                kept.push(l);
            }
        }
        let changed = found > 0;
        let msg = if changed {
            format!("{found} line(s) removed")
        } else {
            String::new()
        };
        let after = kept.concat();
        let ch = Change {
            path: &path,
            before: Some(&before),
            after: &after,
            changed,
            msg,
        };
        let out = commit(ctx, ch, attrs, &backup)?;
        Ok(with_backup_key(out).with("found", found))
    }
}

/// lineinfile registers the backup path as `backup` ("" when none); `backup_file`
/// is kept too, as blockinfile and replace name it.
fn with_backup_key(out: Outcome) -> Outcome {
    let b = out
        .data
        .get("backup_file")
        .cloned()
        .unwrap_or_else(|| "".into());
    out.with("backup", b)
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || hay.windows(needle.len()).any(|w| w == needle)
}

/// What a lineinfile edit did.
struct Edit {
    msg: String,
    changed: bool,
}

/// Ansible's `present()`: find the line (by regexp, search_string, or exact text),
/// replace it, or insert the line where `place` says. The template expansion of
/// `backrefs` and a backtracking match can fail.
fn present_edit(
    lines: &mut Vec<Vec<u8>>,
    line_text: &str,
    regexp: Option<&Pattern>,
    search: Option<&[u8]>,
    place: &Place,
    backrefs: bool,
    firstmatch: bool,
) -> Step<Edit> {
    let line = line_text.as_bytes();
    let mut found: Option<usize> = None;
    if let Some(re) = regexp {
        for (i, l) in lines.iter().enumerate() {
            if line_hit(re, l)? {
                found = Some(i);
                if firstmatch {
                    break;
                }
            }
        }
    }
    if let Some(s) = search {
        for (i, l) in lines.iter().enumerate() {
            if contains(l, s) {
                found = Some(i);
                if firstmatch {
                    break;
                }
            }
        }
    }
    let pattern_hit = found.is_some();
    let mut insert_at: Option<usize> = None;
    if !pattern_hit {
        let ins = match place {
            Place::After(re) | Place::Before(re) => Some(re),
            Place::Bof | Place::Eof => None,
        };
        for (i, l) in lines.iter().enumerate() {
            if trim_eol(l) == line {
                found = Some(i);
            } else if let Some(re) = ins
                && line_hit(re, l)?
            {
                insert_at = Some(if matches!(place, Place::After(_)) {
                    i + 1
                } else {
                    i
                });
                if firstmatch {
                    break;
                }
            }
        }
    }

    let mut new_line = line.to_vec();
    new_line.push(b'\n');
    let added = || Edit {
        msg: "line added".into(),
        changed: true,
    };
    if let Some(i) = found {
        let mut replacement = line.to_vec();
        if backrefs
            && pattern_hit
            && let Some(re) = regexp
            && let Some(cur) = lines.get(i).map(|l| match_view(l))
            && let Some(groups) = re.captures_at(cur, 0).map_err(match_error)?
        {
            let template = Template::parse(line_text, re)
                .map_err(|e| template_error("line", line_text, &e))?;
            replacement.clear();
            template.expand(cur, &groups, &mut replacement);
        }
        if !replacement.ends_with(b"\n") {
            replacement.push(b'\n');
        }
        return Ok(match lines.get_mut(i) {
            Some(cur) if *cur != replacement => {
                *cur = replacement;
                Edit {
                    msg: "line replaced".into(),
                    changed: true,
                }
            }
            _ => Edit {
                msg: String::new(),
                changed: false,
            },
        });
    }
    if backrefs {
        // No match to take the groups from: leave the file alone, as Ansible does.
        return Ok(Edit {
            msg: String::new(),
            changed: false,
        });
    }
    match (place, insert_at) {
        (Place::Bof, _) => lines.insert(0, new_line),
        (Place::After(_), Some(k)) => {
            let dup = if k >= lines.len() {
                lines.last()
            } else {
                lines.get(k)
            };
            if dup.is_some_and(|l| trim_eol(l) == line) {
                return Ok(Edit {
                    msg: String::new(),
                    changed: false,
                });
            }
            if k >= lines.len() {
                // Unlike Ansible, which would glue the line onto an unterminated
                // last line here, end that line first (as its EOF case does).
                if last_unterminated(lines) {
                    lines.push(b"\n".to_vec());
                }
                lines.push(new_line);
            } else {
                lines.insert(k, new_line);
            }
        }
        (Place::Before(_), Some(k)) => lines.insert(k, new_line),
        // EOF, or an insertafter/insertbefore pattern that matched nothing.
        _ => {
            if last_unterminated(lines) {
                lines.push(b"\n".to_vec());
            }
            lines.push(new_line);
        }
    }
    Ok(added())
}

// ---------------------------------------------------------------------------
// blockinfile

fn blockinfile_inner(a: &Vars, ctx: &Ctx<'_>) -> Step<Outcome> {
    let (path, attrs, backup) = common(a, BLOCKINFILE)?;
    exclusive(a, "insertbefore", "insertafter")?;
    let present = state_present(a)?;
    let block = aliased(a, &["block", "content"])?.unwrap_or_default();
    let marker = args::opt_str(a, "marker")?.unwrap_or_else(|| DEFAULT_MARKER.to_string());
    let begin = args::opt_str(a, "marker_begin")?.unwrap_or_else(|| "BEGIN".to_string());
    let end = args::opt_str(a, "marker_end")?.unwrap_or_else(|| "END".to_string());
    let create = args::bool_or(a, "create", false)?;
    let append_newline = args::bool_or(a, "append_newline", false)?;
    let prepend_newline = args::bool_or(a, "prepend_newline", false)?;
    let insertafter = args::opt_str(a, "insertafter")?;
    let insertbefore = args::opt_str(a, "insertbefore")?;
    // (pattern, after?, multiline?) when the block goes relative to a pattern.
    let insert_re = match (&insertafter, &insertbefore) {
        (Some(x), _) if x != "EOF" => Some((bytes_regex("insertafter", x)?, true, py_multiline(x))),
        (None, Some(x)) if x != "BOF" => {
            Some((bytes_regex("insertbefore", x)?, false, py_multiline(x)))
        }
        _ => None,
    };

    let original = read_target(&path)?;
    if original.is_none() {
        if !present {
            return Ok(Outcome::ok().msg(format!("File {} not present", path.display())));
        }
        if !create {
            return Err(failed(
                Outcome::fail(format!("Path {} does not exist !", path.display())).with("rc", 257),
            ));
        }
    }
    let orig = original.as_deref().unwrap_or_default();
    let mut lines = split_lines_universal(orig);

    let mark = |m: &str| {
        let mut l = marker.replace("{mark}", m).into_bytes();
        l.push(b'\n');
        l
    };
    let (marker0, marker1) = (mark(&begin), mark(&end));
    let mut blocklines: Vec<Vec<u8>> = Vec::new();
    if present && !block.is_empty() {
        let mut body = block.into_bytes();
        if !body.ends_with(b"\n") {
            body.push(b'\n');
        }
        blocklines.push(marker0.clone());
        blocklines.extend(split_lines_universal(&body));
        blocklines.push(marker1.clone());
    }

    // The last begin and end markers, as Ansible finds them.
    let n0_found = lines.iter().rposition(|l| *l == marker0);
    let n1_found = lines.iter().rposition(|l| *l == marker1);
    let mut n0 = match (n0_found, n1_found) {
        (Some(b), Some(e)) => {
            let (lo, hi) = if b < e { (b, e) } else { (e, b) };
            lines.drain(lo..=hi.min(lines.len().saturating_sub(1)));
            lo
        }
        _ => match &insert_re {
            Some((re, after, multiline)) => {
                let at = if *multiline {
                    // A (?m) pattern is searched in the whole text; count the newlines
                    // before where the match ends (after) or starts (before).
                    re.find(orig).map_err(match_error)?.map(|m| {
                        let upto = if *after { m.end } else { m.start };
                        orig.get(..upto)
                            .unwrap_or_default()
                            .iter()
                            .filter(|&&c| c == b'\n')
                            .count()
                    })
                } else {
                    let mut last = None;
                    for (i, l) in lines.iter().enumerate() {
                        if line_hit(re, l)? {
                            last = Some(i);
                        }
                    }
                    last
                };
                match at {
                    None => lines.len(),
                    // Ansible adds one in the (?m) case too: the block goes after the
                    // line *following* the one the match ends on.
                    Some(i) if *after => i + 1,
                    Some(i) => i,
                }
            }
            None if insertbefore.is_some() => 0,
            None => lines.len(),
        },
    };
    n0 = n0.min(lines.len());

    // The line before the block must end with a newline.
    if n0 > 0
        && let Some(prev) = lines.get_mut(n0 - 1)
        && !prev.ends_with(b"\n")
    {
        prev.push(b'\n');
    }
    if prepend_newline && present && n0 != 0 && lines.get(n0 - 1).is_some_and(|l| l != b"\n") {
        lines.insert(n0, b"\n".to_vec());
        n0 += 1;
    }
    let count = blocklines.len();
    lines.splice(n0..n0, blocklines);
    let after_block = n0 + count;
    if append_newline && present && lines.get(after_block).is_some_and(|l| l != b"\n") {
        lines.insert(after_block, b"\n".to_vec());
    }
    let result = lines.concat();

    let (changed, msg) = if original.as_deref() == Some(result.as_slice()) {
        (false, "")
    } else if original.is_none() {
        (true, "File created")
    } else if count == 0 {
        (true, "Block removed")
    } else {
        (true, "Block inserted")
    };
    let ch = Change {
        path: &path,
        before: original.as_deref(),
        after: &result,
        changed,
        msg: msg.to_string(),
    };
    commit(ctx, ch, attrs, &backup)
}

// ---------------------------------------------------------------------------
// replace

fn replace_inner(a: &Vars, ctx: &Ctx<'_>) -> Step<Outcome> {
    let (path, attrs, backup) = common(a, REPLACE)?;
    let regexp = args::req_str(a, "regexp")?;
    let replacement = args::opt_str(a, "replace")?.unwrap_or_default();
    let after = args::opt_str(a, "after")?.filter(|s| !s.is_empty());
    let before = args::opt_str(a, "before")?.filter(|s| !s.is_empty());
    if let Some(enc) = args::opt_str(a, "encoding")?
        && !matches!(enc.to_ascii_lowercase().as_str(), "utf-8" | "utf8")
    {
        return Err(ModuleError::BadArgs(format!(
            "argument 'encoding': only utf-8 is supported by this runner, got '{enc}'"
        ))
        .into());
    }
    let re =
        Pattern::new(&format!("(?m){regexp}")).map_err(|e| pattern_error("regexp", &regexp, &e))?;
    // Python's re reports a bad replacement when it substitutes; Ansible's message.
    let template = Template::parse(&replacement, &re).map_err(|e| {
        failed(Outcome::fail(format!(
            "Unable to process replace due to error: {e}"
        )))
    })?;
    // Each bound alone first, so an error names the argument at fault.
    for (arg, p) in [("after", &after), ("before", &before)] {
        if let Some(p) = p {
            bytes_regex(arg, p)?;
        }
    }
    let section_src = match (&after, &before) {
        (Some(x), Some(y)) => Some(format!("{x}(?P<subsection>.*?){y}")),
        (Some(x), None) => Some(format!("{x}(?P<subsection>.*)")),
        (None, Some(y)) => Some(format!("(?P<subsection>.*){y}")),
        (None, None) => None,
    };

    let Some(raw) = read_target(&path)? else {
        return fail_rc(format!("Path {} does not exist !", path.display()), 257);
    };
    let Ok(contents) = String::from_utf8(raw) else {
        return fail_rc(
            format!(
                "{} is not valid UTF-8 (only utf-8 is supported)",
                path.display()
            ),
            1,
        );
    };

    // The part of the file that is searched: all of it, or between the bounds.
    let range = match &section_src {
        None => 0..contents.len(),
        Some(src) => {
            let sre = Pattern::new(&format!("(?s){src}"))
                .map_err(|e| pattern_error("after/before", src, &e))?;
            let sub = sre.names().position(|n| n == Some("subsection"));
            let groups = sre
                .captures_at(contents.as_bytes(), 0)
                .map_err(match_error)?;
            match groups.and_then(|g| g.get(sub?).cloned().flatten()) {
                Some(m) => m,
                None => {
                    return Ok(Outcome::ok().with("rc", 0).msg(format!(
                        "Pattern for before/after params did not match the given file: {src}"
                    )));
                }
            }
        }
    };
    let section = contents.get(range.clone()).unwrap_or_default();

    let hay = section.as_bytes();
    let mut replaced: Vec<u8> = Vec::with_capacity(section.len());
    let mut last = 0;
    let mut count = 0u64;
    for groups in re.all(hay).map_err(match_error)? {
        let Some(m) = groups.first().cloned().flatten() else {
            continue;
        };
        replaced.extend_from_slice(hay.get(last..m.start).unwrap_or_default());
        template.expand(hay, &groups, &mut replaced);
        last = m.end;
        count += 1;
    }
    replaced.extend_from_slice(hay.get(last..).unwrap_or_default());
    // Matches start and end on character boundaries, so this is still UTF-8; a
    // template's octal escape above 0x7f is a character too (Python's str templates).
    let replaced = String::from_utf8_lossy(&replaced).into_owned();

    let changed = count > 0 && replaced != section;
    let result = if changed {
        format!(
            "{}{replaced}{}",
            contents.get(..range.start).unwrap_or_default(),
            contents.get(range.end..).unwrap_or_default()
        )
    } else {
        contents.clone()
    };
    let msg = if changed {
        format!("{count} replacements made")
    } else {
        String::new()
    };
    let ch = Change {
        path: &path,
        before: Some(contents.as_bytes()),
        after: result.as_bytes(),
        changed,
        msg,
    };
    let mut out = commit(ctx, ch, attrs, &backup)?;
    // replace's diff headers are the bare path.
    for d in out
        .diff
        .iter_mut()
        .filter(|d| d.before_header.ends_with(" (content)"))
    {
        d.before_header = path.display().to_string();
        d.after_header = path.display().to_string();
    }
    Ok(out.with("rc", 0))
}

/// A failed outcome with Ansible's `rc`.
fn fail_rc<T>(msg: String, rc: i64) -> Step<T> {
    Err(failed(Outcome::fail(msg).with("rc", rc)))
}

#[cfg(test)]
mod tests {
    use super::super::{ModuleError, Outcome};

    use serde_json::{Value, json};
    use std::collections::BTreeMap;
    use std::fs;
    use std::os::unix::fs::PermissionsExt;
    use std::path::Path;

    /// Runs `module` with `args` (`{p}` replaced by the temp dir).
    fn check(
        module: &str,
        dir: &Path,
        args: Value,
        check_mode: bool,
    ) -> Result<Outcome, ModuleError> {
        let args = crate::modules::args_in(dir, &args);
        crate::modules::run_for_test(module, &args, &BTreeMap::new(), &json!({}), check_mode)
    }

    fn write(dir: &Path, name: &str, body: &str) -> std::path::PathBuf {
        let f = dir.join(name);
        fs::write(&f, body).unwrap();
        f
    }

    fn read(f: &Path) -> String {
        fs::read_to_string(f).unwrap()
    }

    #[test]
    fn lineinfile_replaces_by_regexp_idempotently_and_check_mode_writes_nothing() {
        let t = tempfile::tempdir().unwrap();
        let f = write(
            t.path(),
            "sshd",
            "Port 22\n#PermitRootLogin yes\nUsePAM yes\n",
        );
        let args = json!({"path": "{p}/sshd", "regexp": "^#?PermitRootLogin", "line": "PermitRootLogin no"});
        let dry = check("lineinfile", t.path(), args.clone(), true).unwrap();
        assert!(
            dry.changed && dry.msg.as_deref() == Some("line replaced"),
            "{dry:?}"
        );
        assert_eq!(read(&f), "Port 22\n#PermitRootLogin yes\nUsePAM yes\n");
        assert_eq!(
            dry.diff[0].after,
            "Port 22\nPermitRootLogin no\nUsePAM yes\n"
        );
        assert_eq!(
            dry.diff[0].before_header,
            format!("{} (content)", f.display())
        );

        let out = check("lineinfile", t.path(), args.clone(), false).unwrap();
        assert!(out.changed && !out.failed);
        assert_eq!(read(&f), "Port 22\nPermitRootLogin no\nUsePAM yes\n");
        assert_eq!(out.data["backup"], json!(""));
        let again = check("lineinfile", t.path(), args, false).unwrap();
        assert!(!again.changed, "{again:?}");
        assert_eq!(again.msg.as_deref(), Some(""));
    }

    #[test]
    fn lineinfile_inserts_at_eof_bof_and_around_patterns() {
        let t = tempfile::tempdir().unwrap();
        // An unterminated last line is ended before the new line is appended.
        let f = write(t.path(), "a", "one\ntwo");
        let out = check(
            "lineinfile",
            t.path(),
            json!({"path": "{p}/a", "line": "three"}),
            false,
        )
        .unwrap();
        assert_eq!(out.msg.as_deref(), Some("line added"));
        assert_eq!(read(&f), "one\ntwo\nthree\n");
        assert!(
            !check(
                "lineinfile",
                t.path(),
                json!({"path": "{p}/a", "line": "three"}),
                false
            )
            .unwrap()
            .changed
        );

        check(
            "lineinfile",
            t.path(),
            json!({"dest": "{p}/a", "line": "zero", "insertbefore": "BOF"}),
            false,
        )
        .unwrap();
        assert_eq!(read(&f), "zero\none\ntwo\nthree\n");
        check(
            "lineinfile",
            t.path(),
            json!({"name": "{p}/a", "value": "one-b", "insertafter": "^one"}),
            false,
        )
        .unwrap();
        assert_eq!(read(&f), "zero\none\none-b\ntwo\nthree\n");
        check(
            "lineinfile",
            t.path(),
            json!({"destfile": "{p}/a", "line": "pre-two", "insertbefore": "^two$"}),
            false,
        )
        .unwrap();
        assert_eq!(read(&f), "zero\none\none-b\npre-two\ntwo\nthree\n");
        // An insertafter pattern that matches nothing appends at the end.
        check(
            "lineinfile",
            t.path(),
            json!({"path": "{p}/a", "line": "last", "insertafter": "^nothing"}),
            false,
        )
        .unwrap();
        assert_eq!(read(&f), "zero\none\none-b\npre-two\ntwo\nthree\nlast\n");
        // The line already present: nothing moves, whatever insertafter says.
        let out = check(
            "lineinfile",
            t.path(),
            json!({"path": "{p}/a", "line": "zero", "insertafter": "^three"}),
            false,
        )
        .unwrap();
        assert!(!out.changed);

        // insertafter the last match, or the first with firstmatch.
        let g = write(t.path(), "g", "x=1\nsep\nx=2\n");
        check(
            "lineinfile",
            t.path(),
            json!({"path": "{p}/g", "line": "after-last", "insertafter": "^x="}),
            false,
        )
        .unwrap();
        assert_eq!(read(&g), "x=1\nsep\nx=2\nafter-last\n");
        check("lineinfile", t.path(), json!({"path": "{p}/g", "line": "after-first", "insertafter": "^x=", "firstmatch": true}), false).unwrap();
        assert_eq!(read(&g), "x=1\nafter-first\nsep\nx=2\nafter-last\n");
    }

    #[test]
    fn lineinfile_backrefs_search_string_and_absent() {
        let t = tempfile::tempdir().unwrap();
        let f = write(
            t.path(),
            "c",
            "listen 80 default;\nname = old\nname = older\n",
        );
        let out = check(
            "lineinfile",
            t.path(),
            json!({"path": "{p}/c", "regexp": r"^listen (\d+) (?P<rest>.*)$", "line": r"listen \g<1>0 \g<rest> # $HOME", "backrefs": true}),
            false,
        )
        .unwrap();
        assert!(out.changed, "{out:?}");
        assert_eq!(
            read(&f),
            "listen 800 default; # $HOME\nname = old\nname = older\n"
        );
        // backrefs with no match changes nothing (no EOF append).
        let out = check(
            "lineinfile",
            t.path(),
            json!({"path": "{p}/c", "regexp": "^nomatch(.*)", "line": r"\1", "backrefs": true}),
            false,
        )
        .unwrap();
        assert!(!out.changed);
        // search_string replaces the last line containing it, or the first with firstmatch.
        check("lineinfile", t.path(), json!({"path": "{p}/c", "search_string": "name = ", "line": "name = new", "firstmatch": true}), false).unwrap();
        assert_eq!(
            read(&f),
            "listen 800 default; # $HOME\nname = new\nname = older\n"
        );
        // Removal counts lines, by regexp / search_string / exact line.
        let out = check(
            "lineinfile",
            t.path(),
            json!({"path": "{p}/c", "regexp": "^name", "state": "absent"}),
            true,
        )
        .unwrap();
        assert_eq!(out.msg.as_deref(), Some("2 line(s) removed"));
        assert_eq!(out.data["found"], json!(2));
        assert!(read(&f).contains("name = new"), "check mode removed lines");
        let out = check(
            "lineinfile",
            t.path(),
            json!({"path": "{p}/c", "search_string": "name", "state": "absent", "backup": true}),
            false,
        )
        .unwrap();
        assert_eq!(out.msg.as_deref(), Some("2 line(s) removed"));
        let b = out.data["backup_file"].as_str().unwrap();
        assert_eq!(out.data["backup"].as_str(), Some(b));
        assert!(read(Path::new(b)).contains("name = older"));
        assert_eq!(read(&f), "listen 800 default; # $HOME\n");
        let out = check(
            "lineinfile",
            t.path(),
            json!({"path": "{p}/c", "line": "listen 800 default; # $HOME", "state": "absent"}),
            false,
        )
        .unwrap();
        assert!(out.changed);
        assert_eq!(read(&f), "");
        let out = check(
            "lineinfile",
            t.path(),
            json!({"path": "{p}/none", "line": "x", "state": "absent"}),
            false,
        )
        .unwrap();
        assert!(!out.changed && !out.failed);
        assert_eq!(out.msg.as_deref(), Some("file not present"));
    }

    #[test]
    fn lineinfile_create_mode_and_errors() {
        let t = tempfile::tempdir().unwrap();
        let out = check(
            "lineinfile",
            t.path(),
            json!({"path": "{p}/new/f", "line": "x"}),
            false,
        )
        .unwrap();
        assert!(out.failed);
        assert_eq!(
            out.msg,
            Some(format!(
                "Destination {}/new/f does not exist !",
                t.path().display()
            ))
        );
        assert_eq!(out.data["rc"], json!(257));

        let args = json!({"path": "{p}/new/f", "line": "x", "create": true, "mode": "0600"});
        let dry = check("lineinfile", t.path(), args.clone(), true).unwrap();
        assert!(dry.changed && !t.path().join("new").exists());
        let out = check("lineinfile", t.path(), args.clone(), false).unwrap();
        assert!(out.changed, "{out:?}");
        let f = t.path().join("new/f");
        assert_eq!(read(&f), "x\n");
        assert_eq!(
            fs::metadata(&f).unwrap().permissions().mode() & 0o7777,
            0o600
        );
        assert!(!check("lineinfile", t.path(), args, false).unwrap().changed);
        // Only the mode differs: an attribute change, with Ansible's message.
        let out = check(
            "lineinfile",
            t.path(),
            json!({"path": "{p}/new/f", "line": "x", "mode": "0640"}),
            false,
        )
        .unwrap();
        assert!(out.changed);
        assert_eq!(
            out.msg.as_deref(),
            Some("ownership, perms or SE linux context changed")
        );
        assert_eq!(
            fs::metadata(&f).unwrap().permissions().mode() & 0o7777,
            0o640
        );
        // Content and mode together.
        let out = check(
            "lineinfile",
            t.path(),
            json!({"path": "{p}/new/f", "line": "y", "mode": "0644"}),
            false,
        )
        .unwrap();
        assert_eq!(
            out.msg.as_deref(),
            Some("line added and ownership, perms or SE linux context changed")
        );
        assert_eq!(
            fs::metadata(&f).unwrap().permissions().mode() & 0o7777,
            0o644
        );

        let bad = |args: Value| {
            check("lineinfile", t.path(), args, false)
                .unwrap_err()
                .to_string()
        };
        assert!(bad(json!({"path": "{p}/new/f", "regexp": "x"})).contains("line is required"));
        assert!(
            bad(json!({"path": "{p}/new/f", "line": "x", "backrefs": true}))
                .contains("regexp is required")
        );
        assert!(
            bad(json!({"path": "{p}/new/f", "line": "x", "insertafter": "a", "insertbefore": "b"}))
                .contains("mutually exclusive")
        );
        assert!(bad(json!({"path": "{p}/new/f", "state": "absent"})).contains("one of line"));
        assert!(bad(json!({"line": "x"})).contains("'path'"));
        // Python refuses a variable-width look-behind; so does the runner.
        let out = check(
            "lineinfile",
            t.path(),
            json!({"path": "{p}/new/f", "regexp": "(?<=a+)b", "line": "x"}),
            false,
        )
        .unwrap();
        assert!(out.failed);
        assert!(
            out.msg.as_deref().unwrap().contains("argument 'regexp'"),
            "{out:?}"
        );
        let out = check(
            "lineinfile",
            t.path(),
            json!({"path": "{p}/new", "line": "x"}),
            false,
        )
        .unwrap();
        assert!(out.failed && out.msg.as_deref().unwrap().ends_with("is a directory !"));
    }

    #[test]
    fn lineinfile_writes_through_symlinks() {
        let t = tempfile::tempdir().unwrap();
        let real = write(t.path(), "real", "a\n");
        std::os::unix::fs::symlink(&real, t.path().join("link")).unwrap();
        check(
            "lineinfile",
            t.path(),
            json!({"path": "{p}/link", "line": "b"}),
            false,
        )
        .unwrap();
        assert_eq!(read(&real), "a\nb\n");
        assert!(
            fs::symlink_metadata(t.path().join("link"))
                .unwrap()
                .file_type()
                .is_symlink()
        );
    }

    #[test]
    fn blockinfile_inserts_updates_and_removes() {
        let t = tempfile::tempdir().unwrap();
        let f = write(t.path(), "hosts", "127.0.0.1 localhost\n::1 localhost");
        let args = json!({"path": "{p}/hosts", "block": "10.0.0.1 a\n10.0.0.2 b"});
        let dry = check("blockinfile", t.path(), args.clone(), true).unwrap();
        assert!(dry.changed);
        assert_eq!(read(&f), "127.0.0.1 localhost\n::1 localhost");
        let want = "127.0.0.1 localhost\n::1 localhost\n# BEGIN ANSIBLE MANAGED BLOCK\n10.0.0.1 a\n10.0.0.2 b\n# END ANSIBLE MANAGED BLOCK\n";
        assert_eq!(dry.diff[0].after, want);
        let out = check("blockinfile", t.path(), args.clone(), false).unwrap();
        assert_eq!(out.msg.as_deref(), Some("Block inserted"));
        assert_eq!(read(&f), want);
        let again = check("blockinfile", t.path(), args, false).unwrap();
        assert!(!again.changed);
        assert_eq!(again.msg.as_deref(), Some(""));

        // New content replaces the block where it is, whatever insertbefore says.
        fs::write(&f, format!("{want}tail\n")).unwrap();
        let out = check("blockinfile", t.path(), json!({"path": "{p}/hosts", "content": "10.0.0.3 c", "insertbefore": "BOF", "backup": true}), false).unwrap();
        assert_eq!(out.msg.as_deref(), Some("Block inserted"));
        assert!(read(Path::new(out.data["backup_file"].as_str().unwrap())).contains("10.0.0.2"));
        assert_eq!(
            read(&f),
            "127.0.0.1 localhost\n::1 localhost\n# BEGIN ANSIBLE MANAGED BLOCK\n10.0.0.3 c\n# END ANSIBLE MANAGED BLOCK\ntail\n"
        );

        let out = check(
            "blockinfile",
            t.path(),
            json!({"path": "{p}/hosts", "state": "absent"}),
            false,
        )
        .unwrap();
        assert_eq!(out.msg.as_deref(), Some("Block removed"));
        assert_eq!(read(&f), "127.0.0.1 localhost\n::1 localhost\ntail\n");
        assert!(
            !check(
                "blockinfile",
                t.path(),
                json!({"path": "{p}/hosts", "state": "absent"}),
                false
            )
            .unwrap()
            .changed
        );
    }

    #[test]
    fn blockinfile_markers_positions_and_create() {
        let t = tempfile::tempdir().unwrap();
        let f = write(t.path(), "conf", "[main]\nkey=1\n[other]\nx=2\n");
        let out = check(
            "blockinfile",
            t.path(),
            json!({
                "path": "{p}/conf", "block": "added=1", "insertafter": r"^\[main\]",
                "marker": ";; {mark} rustle", "marker_begin": "start", "marker_end": "stop",
            }),
            false,
        )
        .unwrap();
        assert!(out.changed);
        assert_eq!(
            read(&f),
            "[main]\n;; start rustle\nadded=1\n;; stop rustle\nkey=1\n[other]\nx=2\n"
        );
        check("blockinfile", t.path(), json!({"path": "{p}/conf", "block": "o=1", "insertbefore": r"^\[other\]", "marker": "# {mark} two", "prepend_newline": true, "append_newline": true}), false).unwrap();
        assert_eq!(
            read(&f),
            "[main]\n;; start rustle\nadded=1\n;; stop rustle\nkey=1\n\n# BEGIN two\no=1\n# END two\n\n[other]\nx=2\n"
        );
        // A (?m) pattern is searched across lines.
        let g = write(t.path(), "g", "a\nb\nc\n");
        check(
            "blockinfile",
            t.path(),
            json!({"path": "{p}/g", "block": "X", "insertafter": "(?m)^a\\nb$"}),
            false,
        )
        .unwrap();
        assert_eq!(
            read(&g),
            "a\nb\n# BEGIN ANSIBLE MANAGED BLOCK\nX\n# END ANSIBLE MANAGED BLOCK\nc\n"
        );

        let out = check(
            "blockinfile",
            t.path(),
            json!({"path": "{p}/missing", "block": "x"}),
            false,
        )
        .unwrap();
        assert!(out.failed && out.msg.as_deref().unwrap().ends_with("does not exist !"));
        let out = check(
            "blockinfile",
            t.path(),
            json!({"path": "{p}/missing", "block": "x", "state": "absent"}),
            false,
        )
        .unwrap();
        assert!(!out.changed && !out.failed);
        let out = check(
            "blockinfile",
            t.path(),
            json!({"path": "{p}/sub/new", "block": "x", "create": true, "mode": "0640"}),
            false,
        )
        .unwrap();
        assert_eq!(out.msg.as_deref(), Some("File created"));
        let n = t.path().join("sub/new");
        assert_eq!(
            read(&n),
            "# BEGIN ANSIBLE MANAGED BLOCK\nx\n# END ANSIBLE MANAGED BLOCK\n"
        );
        assert_eq!(
            fs::metadata(&n).unwrap().permissions().mode() & 0o7777,
            0o640
        );
        let out = check(
            "blockinfile",
            t.path(),
            json!({"path": "{p}/g", "block": "x", "insertafter": "(?<!x+)"}),
            false,
        )
        .unwrap();
        assert!(
            out.failed
                && out
                    .msg
                    .as_deref()
                    .unwrap()
                    .contains("argument 'insertafter'")
        );
    }

    #[test]
    fn lineinfile_replace_a_line_with_backrefs_in_the_pattern() {
        // lineinfile target task 35: '^(REF) .* \1$' has a backreference inside the
        // pattern, which the regex crate refuses; Ansible replaces the line.
        let t = tempfile::tempdir().unwrap();
        let f = write(
            t.path(),
            "c",
            "REF this is a line for backrefs REF\nREF keep FER\n",
        );
        let args = json!({"path": "{p}/c", "regexp": r"^(REF) .* \1$", "line": r"\1 replaced \1", "backrefs": true});
        let out = check("lineinfile", t.path(), args.clone(), false).unwrap();
        assert!(out.changed && !out.failed, "{out:?}");
        assert_eq!(read(&f), "REF replaced REF\nREF keep FER\n");
        assert!(!check("lineinfile", t.path(), args, false).unwrap().changed);
        // Look-ahead as insertafter, (?P=name) in state=absent.
        let out = check(
            "lineinfile",
            t.path(),
            json!({"path": "{p}/c", "line": "new", "insertafter": "^REF (?!keep)"}),
            false,
        )
        .unwrap();
        assert!(out.changed, "{out:?}");
        assert_eq!(read(&f), "REF replaced REF\nnew\nREF keep FER\n");
        let out = check(
            "lineinfile",
            t.path(),
            json!({"path": "{p}/c", "regexp": r"^(?P<w>\w+) replaced (?P=w)$", "state": "absent"}),
            false,
        )
        .unwrap();
        assert_eq!(out.data["found"], json!(1), "{out:?}");
        assert_eq!(read(&f), "new\nREF keep FER\n");
    }

    #[test]
    fn replace_with_lookbehind_and_backreference() {
        let t = tempfile::tempdir().unwrap();
        let f = write(t.path(), "cfg", "a=1 aa=2\n#a=3\n");
        let out = check(
            "replace",
            t.path(),
            json!({"path": "{p}/cfg", "regexp": r"(?<!#)\b(a)\1?=(\d)", "replace": r"\1\1=\g<2>0"}),
            false,
        )
        .unwrap();
        assert_eq!(out.msg.as_deref(), Some("2 replacements made"), "{out:?}");
        assert_eq!(read(&f), "aa=10 aa=20\n#a=3\n");
    }

    #[test]
    fn replace_substitutes_with_python_backrefs() {
        let t = tempfile::tempdir().unwrap();
        let f = write(t.path(), "cfg", "host=a port=1\nhost=b port=2\n# host=c\n");
        let args = json!({"path": "{p}/cfg", "regexp": r"^host=(?P<h>\w+) port=(\d+)$", "replace": r"\g<h>:\2"});
        let dry = check("replace", t.path(), args.clone(), true).unwrap();
        assert_eq!(dry.msg.as_deref(), Some("2 replacements made"));
        assert_eq!(read(&f), "host=a port=1\nhost=b port=2\n# host=c\n");
        assert_eq!(dry.diff[0].after, "a:1\nb:2\n# host=c\n");
        assert_eq!(dry.diff[0].before_header, f.display().to_string());
        let out = check("replace", t.path(), args.clone(), false).unwrap();
        assert!(out.changed);
        assert_eq!(read(&f), "a:1\nb:2\n# host=c\n");
        let again = check("replace", t.path(), args, false).unwrap();
        assert!(!again.changed);
        // Matches that replace with the same text change nothing.
        let same = check(
            "replace",
            t.path(),
            json!({"path": "{p}/cfg", "regexp": "a", "replace": "a"}),
            false,
        )
        .unwrap();
        assert!(!same.changed);
        // Removal (no `replace`), and `$` in the replacement is literal.
        check(
            "replace",
            t.path(),
            json!({"path": "{p}/cfg", "regexp": r"^# .*\n"}),
            false,
        )
        .unwrap();
        assert_eq!(read(&f), "a:1\nb:2\n");
        check(
            "replace",
            t.path(),
            json!({"path": "{p}/cfg", "regexp": r":(\d)", "replace": r"=$\1"}),
            false,
        )
        .unwrap();
        assert_eq!(read(&f), "a=$1\nb=$2\n");
    }

    #[test]
    fn replace_between_after_and_before() {
        let t = tempfile::tempdir().unwrap();
        let f = write(t.path(), "s", "x=1\n<start>\nx=2\nx=3\n<end>\nx=4\n");
        let out = check("replace", t.path(), json!({"path": "{p}/s", "regexp": "x=", "replace": "y=", "after": "<start>", "before": "<end>", "mode": "0600"}), false).unwrap();
        assert_eq!(
            out.msg.as_deref(),
            Some("2 replacements made and ownership, perms or SE linux context changed")
        );
        assert_eq!(read(&f), "x=1\n<start>\ny=2\ny=3\n<end>\nx=4\n");
        assert_eq!(
            fs::metadata(&f).unwrap().permissions().mode() & 0o7777,
            0o600
        );
        check(
            "replace",
            t.path(),
            json!({"path": "{p}/s", "regexp": "x=", "replace": "z=", "after": "<end>"}),
            false,
        )
        .unwrap();
        assert_eq!(read(&f), "x=1\n<start>\ny=2\ny=3\n<end>\nz=4\n");
        check(
            "replace",
            t.path(),
            json!({"path": "{p}/s", "regexp": "x=", "replace": "w=", "before": "<start>"}),
            false,
        )
        .unwrap();
        assert_eq!(read(&f), "w=1\n<start>\ny=2\ny=3\n<end>\nz=4\n");
        let out = check(
            "replace",
            t.path(),
            json!({"path": "{p}/s", "regexp": "x", "after": "<nothing>"}),
            false,
        )
        .unwrap();
        assert!(!out.changed && !out.failed);
        assert!(
            out.msg
                .as_deref()
                .unwrap()
                .starts_with("Pattern for before/after params did not match")
        );
    }

    #[test]
    fn replace_failures_name_the_cause() {
        let t = tempfile::tempdir().unwrap();
        write(t.path(), "r", "abc\n");
        let out = check(
            "replace",
            t.path(),
            json!({"path": "{p}/none", "regexp": "a"}),
            false,
        )
        .unwrap();
        assert!(out.failed && out.msg.as_deref().unwrap().ends_with("does not exist !"));
        let out = check(
            "replace",
            t.path(),
            json!({"path": "{p}/r", "regexp": r"(a"}),
            false,
        )
        .unwrap();
        assert!(
            out.failed && out.msg.as_deref().unwrap().contains("argument 'regexp'"),
            "{out:?}"
        );
        let out = check(
            "replace",
            t.path(),
            json!({"path": "{p}/r", "regexp": "(a)", "replace": r"\2"}),
            false,
        )
        .unwrap();
        assert!(
            out.failed
                && out
                    .msg
                    .as_deref()
                    .unwrap()
                    .contains("invalid group reference 2"),
            "{out:?}"
        );
        let out = check(
            "replace",
            t.path(),
            json!({"path": "{p}/r", "regexp": "a", "before": "(?<!x+)c"}),
            false,
        )
        .unwrap();
        assert!(
            out.failed && out.msg.as_deref().unwrap().contains("argument 'before'"),
            "{out:?}"
        );
        fs::write(t.path().join("bin"), b"\xff\xfe").unwrap();
        let out = check(
            "replace",
            t.path(),
            json!({"path": "{p}/bin", "regexp": "a"}),
            false,
        )
        .unwrap();
        assert!(out.failed && out.msg.as_deref().unwrap().contains("UTF-8"));
        assert!(check("replace", t.path(), json!({"path": "{p}/r"}), false).is_err());
        assert!(
            check(
                "replace",
                t.path(),
                json!({"path": "{p}/r", "regexp": "a", "encoding": "latin-1"}),
                false
            )
            .is_err()
        );
        assert_eq!(read(&t.path().join("r")), "abc\n");
    }

    /// The lineinfile, blockinfile and replace targets validate: a command without
    /// `%s` fails with Ansible's message, a failing command leaves the file alone, a
    /// succeeding one lets it be written (it used to be refused).
    #[test]
    fn validate_runs_before_a_changed_file_is_written() {
        let t = tempfile::tempdir().unwrap();
        let f = t.path().join("v.txt");
        fs::write(&f, "old\n").unwrap();
        let no_s = check(
            "lineinfile",
            t.path(),
            json!({"path": "{p}/v.txt", "line": "x", "validate": "/some/path"}),
            false,
        )
        .unwrap();
        assert!(no_s.failed);
        assert!(
            no_s.msg
                .unwrap()
                .contains("validate must contain %s: /some/path")
        );
        let refused = check(
            "blockinfile",
            t.path(),
            json!({"path": "{p}/v.txt", "block": "line1", "validate": "grep line47 %s"}),
            false,
        )
        .unwrap();
        assert!(refused.failed, "{refused:?}");
        assert_eq!(fs::read_to_string(&f).unwrap(), "old\n");
        let ok = check(
            "blockinfile",
            t.path(),
            json!({"path": "{p}/v.txt", "block": "line1", "validate": "grep line1 %s"}),
            false,
        )
        .unwrap();
        assert!(ok.changed && !ok.failed, "{ok:?}");
        assert!(fs::read_to_string(&f).unwrap().contains("line1"));
    }

    #[test]
    fn a_bad_replacement_escape_fails_with_ansibles_message() {
        let t = tempfile::tempdir().unwrap();
        fs::write(t.path().join("f"), "a.b\n").unwrap();
        let out = check(
            "replace",
            t.path(),
            json!({"path": "{p}/f", "regexp": "\\.", "replace": "\\D"}),
            false,
        )
        .unwrap();
        assert!(out.failed);
        assert!(out.msg.unwrap().starts_with("Unable to process replace"));
    }
}
