//! ini_file (community.general, also reached as `ansible.builtin.ini_file`): one option
//! of one section of an INI file set, added or removed, with that module's line-by-line
//! procedure (commented-out options reused, `exclusive`, `values`, `section_has_values`,
//! `allow_no_value`), messages and results; the file is written through `fsutil`.

use super::fsutil::{self, Attrs, Step, WriteReq, failed};
use super::{Ctx, Diff, ModuleError, Outcome, args};
use crate::plan::Vars;
use regex::Regex;
use serde_json::Value;
use std::path::{Path, PathBuf};

const KNOWN: &[&str] = &[
    "path",
    "dest",
    "section",
    "section_has_values",
    "option",
    "value",
    "values",
    "backup",
    "state",
    "exclusive",
    "no_extra_spaces",
    "ignore_spaces",
    "allow_no_value",
    "modify_inactive_option",
    "create",
    "follow",
];

/// The section the module puts in front of the file so that options outside any
/// section have one (community.general's own name for it).
const FAKE_SECTION: &str = "ad01e11446efb704fcdbdb21f2c43757423d91c5";

/// A `section_has_values` condition: the section must have `option` with one of
/// `values` (any value when empty).
struct Condition {
    option: String,
    values: Vec<String>,
}

/// What the edit is asked to do.
struct Want {
    section: Option<String>,
    conditions: Option<Vec<Condition>>,
    option: Option<String>,
    values: Vec<String>,
    present: bool,
    exclusive: bool,
    no_extra_spaces: bool,
    ignore_spaces: bool,
    allow_no_value: bool,
    modify_inactive_option: bool,
}

/// `ini_file`.
pub(super) fn run(a: &Vars, ctx: &Ctx<'_>) -> Result<Outcome, ModuleError> {
    fsutil::finish(run_inner(a, ctx))
}

fn run_inner(a: &Vars, ctx: &Ctx<'_>) -> Step<Outcome> {
    args::only(a, &[KNOWN, fsutil::FILE_COMMON_ARGS].concat())?;
    let path = match (args::opt_str(a, "path")?, args::opt_str(a, "dest")?) {
        (Some(p), _) | (None, Some(p)) => expand_user(&p),
        (None, None) => {
            return Err(ModuleError::BadArgs("missing required argument 'path'".into()).into());
        }
    };
    let given = |k: &str| a.get(k).is_some_and(|v| !v.is_null());
    if given("value") && given("values") {
        return Err(failed(Outcome::fail(
            "parameters are mutually exclusive: value|values",
        )));
    }
    let present = match args::opt_str(a, "state")?.as_deref() {
        None | Some("present") => true,
        Some("absent") => false,
        Some(other) => {
            return Err(ModuleError::BadArgs(format!(
                "argument 'state' must be one of absent, present; got '{other}'"
            ))
            .into());
        }
    };
    let allow_no_value = args::bool_or(a, "allow_no_value", false)?;
    let value = args::opt_str(a, "value")?;
    let values = args::str_list(a, "values")?;
    if present && !allow_no_value && value.is_none() && values.is_empty() {
        return Err(failed(Outcome::fail(
            "Parameter 'value(s)' must be defined if state=present and allow_no_value=False.",
        )));
    }
    let values = match value {
        Some(v) => vec![v],
        None => values,
    };
    let want = Want {
        section: args::opt_str(a, "section")?,
        conditions: conditions(a)?,
        option: args::opt_str(a, "option")?,
        values,
        present,
        exclusive: args::bool_or(a, "exclusive", true)?,
        no_extra_spaces: args::bool_or(a, "no_extra_spaces", false)?,
        ignore_spaces: args::bool_or(a, "ignore_spaces", false)?,
        allow_no_value,
        modify_inactive_option: args::bool_or(a, "modify_inactive_option", true)?,
    };
    let backup = args::bool_or(a, "backup", false)?;
    let create = args::bool_or(a, "create", true)?;
    let follow = args::bool_or(a, "follow", false)?;
    let attrs = Attrs::from_args(a)?;

    let target = if follow
        && path
            .symlink_metadata()
            .is_ok_and(|m| m.file_type().is_symlink())
    {
        std::fs::canonicalize(&path).unwrap_or_else(|_| path.clone())
    } else {
        path.clone()
    };
    // exists() follows links: a dangling link is a file to create, as in Python.
    let old = if target.exists() {
        Some(std::fs::read(&target).map_err(|e| fsutil::io_fail("read", &target, &e))?)
    } else {
        if !create {
            return Err(failed(
                Outcome::fail(format!("Destination {} does not exist!", target.display()))
                    .with("rc", 257),
            ));
        }
        if let Some(dir) = target.parent().filter(|d| !d.as_os_str().is_empty())
            && !dir.exists()
            && !ctx.check_mode
        {
            std::fs::create_dir_all(dir).map_err(|e| fsutil::io_fail("create", dir, &e))?;
        }
        None
    };
    let text = match &old {
        Some(bytes) => decode(bytes, &target)?,
        None => String::new(),
    };
    let lines = read_lines(&text);
    let before_text = lines.concat();
    let edit = do_ini(lines, want)?;
    let after_text = edit.lines.concat();

    let mut out = Outcome::changed(edit.changed);
    if edit.changed && !ctx.check_mode {
        let req = WriteReq {
            dest: &target,
            content: after_text.as_bytes(),
            attrs: Attrs::default(),
            force: true,
            backup: backup && old.is_some(),
            follow: false,
            src: None,
            new_mode: None,
        };
        let written = fsutil::write_file(&req, ctx)?;
        if let Some(b) = written.data.get("backup_file") {
            out = out.with("backup_file", b.clone());
        }
    }
    // The file's attributes are set after the edit, and only outside check mode, as the
    // module does (`set_fs_attributes_if_different` is skipped in check mode).
    if !ctx.check_mode && path.exists() {
        let changes = fsutil::apply_attrs(&path, &attrs, follow, false)?;
        if !changes.is_empty() {
            out.changed = true;
            if ctx.diff_mode {
                out.diff.push(changes.to_diff(&path));
            }
        }
    }
    let header = format!("{} (content)", target.display());
    // The module always returns `diff`, its texts filled only in diff mode.
    let shown = |t: &str| {
        if ctx.diff_mode {
            t.to_string()
        } else {
            String::new()
        }
    };
    let diff = serde_json::json!({
        "before": shown(&before_text),
        "after": shown(&after_text),
        "before_header": header,
        "after_header": header,
    });
    if ctx.diff_mode && (before_text != after_text || edit.changed) {
        out.diff.insert(
            0,
            Diff {
                before_header: header.clone(),
                after_header: header,
                before: before_text,
                after: after_text,
            },
        );
    }
    Ok(out
        .msg(edit.msg)
        .with("path", path.display().to_string())
        .with("diff", diff))
}

/// `section_has_values`: a list of `{option, value | values}`.
fn conditions(a: &Vars) -> Step<Option<Vec<Condition>>> {
    let Some(list) = a.get("section_has_values").filter(|v| !v.is_null()) else {
        return Ok(None);
    };
    let bad = |why: &str| -> Step<Option<Vec<Condition>>> {
        Err(ModuleError::BadArgs(format!("argument 'section_has_values': {why}")).into())
    };
    let Value::Array(items) = list else {
        return bad("must be a list of dictionaries");
    };
    let mut out = Vec::new();
    for item in items {
        let Value::Object(m) = item else {
            return bad("must be a list of dictionaries");
        };
        let m: Vars = m.clone().into_iter().collect();
        args::only(&m, &["option", "value", "values"])?;
        let option = args::req_str(&m, "option")?;
        let given = |k: &str| m.get(k).is_some_and(|v| !v.is_null());
        if given("value") && given("values") {
            return Err(failed(Outcome::fail(
                "parameters are mutually exclusive: value|values found in section_has_values",
            )));
        }
        let values = match args::opt_str(&m, "value")? {
            Some(v) => vec![v],
            None => args::str_list(&m, "values")?,
        };
        out.push(Condition { option, values });
    }
    Ok(Some(out))
}

/// `~` and `~/...` to the home directory, as the module's `path` type does.
fn expand_user(p: &str) -> PathBuf {
    match (p.strip_prefix('~'), std::env::var_os("HOME")) {
        (Some(""), Some(h)) => PathBuf::from(h),
        (Some(rest), Some(h)) if rest.starts_with('/') => {
            PathBuf::from(h).join(rest.trim_start_matches('/'))
        }
        _ => PathBuf::from(p),
    }
}

/// The file as text: UTF-8 with an optional byte-order mark (which is dropped, as
/// Python's `utf-8-sig` codec does).
fn decode(bytes: &[u8], path: &Path) -> Step<String> {
    let bytes = bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(bytes);
    match std::str::from_utf8(bytes) {
        Ok(s) => Ok(s.to_string()),
        Err(e) => Err(failed(Outcome::fail(format!(
            "{} is not UTF-8 text: {e}",
            path.display()
        )))),
    }
}

/// Lines as Python's text-mode `readlines()` returns them: `\r\n` and `\r` read as
/// `\n`, each line keeping its newline.
fn read_lines(text: &str) -> Vec<String> {
    let text = text.replace("\r\n", "\n").replace('\r', "\n");
    text.split_inclusive('\n').map(str::to_string).collect()
}

/// Python's `re.match(pattern % re.escape(option), line)` for the module's two option
/// patterns. `$` matches before the line's newline, as Python's does.
fn opt_regex(option: &str, inactive_too: bool) -> Option<Regex> {
    let lead = if inactive_too {
        "( |\t)*([#;]?)"
    } else {
        "()()"
    };
    Regex::new(&format!(
        r"(?m)\A{lead}( |\t)*({})( |\t)*(=|$)( |\t)*(.*)",
        regex::escape(option)
    ))
    .ok()
}

/// Group 8 (the value) of a match of `re` on `line`; `None` when it does not match.
fn opt_value<'l>(re: &Regex, line: &'l str) -> Option<(&'l str, bool)> {
    let c = re.captures(line)?;
    let value = c.get(8).map_or("", |m| m.as_str());
    let commented = c.get(2).is_some_and(|m| !m.as_str().is_empty());
    Some((value, commented))
}

/// The edited file.
struct Edit {
    lines: Vec<String>,
    changed: bool,
    msg: String,
}

/// community.general's `update_section_line`: replace a line, noting whether it
/// changed (with `ignore_spaces`, an active option whose value is unchanged did not).
fn update_line(
    w: &Want,
    opt_any: &Regex,
    lines: &mut [String],
    index: usize,
    touched: &mut [bool],
    newline: String,
    edit: &mut Edit,
) {
    let mut option_changed = None;
    if w.ignore_spaces
        && let Some(old) = lines.get(index)
        && let Some((old_value, false)) = opt_value(opt_any, old)
    {
        let new_value = opt_value(opt_any, &newline).map(|(v, _)| v);
        option_changed = Some(Some(old_value) != new_value);
    }
    let option_changed =
        option_changed.unwrap_or_else(|| lines.get(index).is_none_or(|l| *l != newline));
    if option_changed {
        if let Some(l) = lines.get_mut(index) {
            *l = newline;
        }
        edit.changed = true;
        edit.msg = "option changed".into();
    }
    if let Some(t) = touched.get_mut(index) {
        *t = true;
    }
}

fn section_has_values(conditions: Option<&[Condition]>, lines: &[String]) -> bool {
    let Some(conditions) = conditions else {
        return true;
    };
    conditions.iter().all(|c| {
        let Some(re) = opt_regex(&c.option, true) else {
            return false;
        };
        lines.iter().any(|l| {
            opt_value(&re, l)
                .is_some_and(|(v, _)| c.values.is_empty() || c.values.iter().any(|x| x == v))
        })
    })
}

/// community.general's `do_ini`, step by step.
fn do_ini(mut ini: Vec<String>, mut w: Want) -> Step<Edit> {
    // Values deduplicated, in order.
    let mut values: Vec<String> = Vec::new();
    for v in std::mem::take(&mut w.values) {
        if !values.contains(&v) {
            values.push(v);
        }
    }
    let mut edit = Edit {
        lines: Vec::new(),
        changed: false,
        msg: "OK".into(),
    };
    if ini.is_empty() {
        ini.push("\n".into());
    }
    if let Some(last) = ini.last_mut()
        && !last.ends_with('\n')
    {
        last.push('\n');
        edit.changed = true;
    }
    ini.insert(0, format!("[{FAKE_SECTION}]"));
    ini.push("[".into());
    let section = match w.section.as_deref() {
        Some(s) if !s.is_empty() => s.to_string(),
        _ => FAKE_SECTION.to_string(),
    };
    let assignment = |option: &str, value: &str| {
        if w.no_extra_spaces {
            format!("{option}={value}\n")
        } else {
            format!("{option} = {value}\n")
        }
    };
    let blank_or_comment =
        Regex::new(r"(?m)\A[ \t]*([#;].*)?$").map_err(|e| ModuleError::BadArgs(e.to_string()))?;
    let section_re = Regex::new(&format!(r"\A\[\s*{}\s*]", regex::escape(section.trim())))
        .map_err(|e| ModuleError::BadArgs(e.to_string()))?;

    let mut within = false;
    let (mut start, mut end) = (0usize, 0usize);
    for (index, line) in ini.iter().enumerate() {
        if within && line.starts_with('[') {
            if section_has_values(
                w.conditions.as_deref(),
                ini.get(start..index).unwrap_or(&[]),
            ) {
                end = index;
                break;
            }
            within = false;
            start = 0;
            end = 0;
        }
        if section_re.is_match(line) {
            within = true;
            start = index;
        }
    }
    let after: Vec<String> = ini.split_off(end.min(ini.len()));
    let mut lines: Vec<String> = ini.split_off(start.min(ini.len()));
    let before = ini;
    let mut touched = vec![false; lines.len()];

    let option = w.option.clone().filter(|o| !o.is_empty());
    let opt_any = option.as_deref().and_then(|o| opt_regex(o, true));
    let opt_active = option.as_deref().and_then(|o| opt_regex(o, false));
    let opt_fn = if w.modify_inactive_option {
        opt_any.clone()
    } else {
        opt_active.clone()
    };
    let mut no_value_present = false;

    if w.present
        && let (Some(option), Some(re), Some(any)) = (&option, &opt_fn, &opt_any)
    {
        for index in 0..lines.len() {
            let Some((matched, _)) = lines.get(index).and_then(|l| opt_value(re, l)) else {
                continue;
            };
            let matched = matched.to_string();
            if !values.is_empty() && values.contains(&matched) {
                let newline = if matched.is_empty() && w.allow_no_value {
                    no_value_present = true;
                    format!("{option}\n")
                } else {
                    assignment(option, &matched)
                };
                update_line(&w, any, &mut lines, index, &mut touched, newline, &mut edit);
                if let Some(i) = values.iter().position(|v| *v == matched) {
                    values.remove(i);
                }
            } else if values.is_empty() && w.allow_no_value {
                update_line(
                    &w,
                    any,
                    &mut lines,
                    index,
                    &mut touched,
                    format!("{option}\n"),
                    &mut edit,
                );
                no_value_present = true;
                break;
            }
        }
    }

    if w.present
        && w.exclusive
        && !w.allow_no_value
        && let (Some(option), Some(re), Some(any)) = (&option, &opt_fn, &opt_any)
    {
        if !values.is_empty() {
            for index in 0..lines.len() {
                let free = !touched.get(index).copied().unwrap_or(true);
                if free && lines.get(index).is_some_and(|l| re.is_match(l)) {
                    let v = values.remove(0);
                    let newline = assignment(option, &v);
                    update_line(&w, any, &mut lines, index, &mut touched, newline, &mut edit);
                    if values.is_empty() {
                        break;
                    }
                }
            }
        }
        // Every other occurrence goes (the section's header line is never one).
        for index in (1..lines.len()).rev() {
            let free = !touched.get(index).copied().unwrap_or(true);
            if free && lines.get(index).is_some_and(|l| re.is_match(l)) {
                lines.remove(index);
                touched.remove(index);
                edit.changed = true;
                edit.msg = "option changed".into();
            }
        }
    }

    if w.present {
        // Missing lines go after the section's last line that is neither blank nor a
        // comment.
        for index in (1..=lines.len()).rev() {
            let Some(prev) = lines.get(index - 1) else {
                continue;
            };
            if blank_or_comment.is_match(prev) {
                continue;
            }
            if let Some(option) = &option {
                if !values.is_empty() {
                    for v in values.iter().rev() {
                        lines.insert(index, assignment(option, v));
                        edit.msg = "option added".into();
                        edit.changed = true;
                    }
                } else if w.allow_no_value && !no_value_present {
                    lines.insert(index, format!("{option}\n"));
                    edit.msg = "option added".into();
                    edit.changed = true;
                }
            }
            break;
        }
    } else if let Some(active) = &opt_active {
        let kept: Vec<String> = if w.exclusive {
            lines
                .iter()
                .filter(|l| !active.is_match(l))
                .cloned()
                .collect()
        } else if !values.is_empty() {
            lines
                .iter()
                .filter(|l| {
                    !opt_value(active, l).is_some_and(|(v, _)| values.iter().any(|x| x == v))
                })
                .cloned()
                .collect()
        } else {
            lines.clone()
        };
        if kept != lines {
            edit.changed = true;
            edit.msg = "option changed".into();
            lines = kept;
        }
    } else if option.is_none() && !lines.is_empty() {
        lines.clear();
        edit.msg = "section removed".into();
        edit.changed = true;
    }

    let mut ini = before;
    ini.extend(lines);
    ini.extend(after);
    if !ini.is_empty() {
        ini.remove(0);
    }
    ini.pop();

    if !within && w.present {
        ini.push(format!("[{section}]\n"));
        edit.msg = "section and option added".into();
        for c in w.conditions.iter().flatten() {
            if Some(&c.option) != option.as_ref() {
                if !c.values.is_empty() {
                    for v in &c.values {
                        ini.push(assignment(&c.option, v));
                    }
                } else if w.allow_no_value {
                    ini.push(format!("{}\n", c.option));
                }
            } else if !w.exclusive {
                for v in &c.values {
                    if !values.contains(v) {
                        values.push(v.clone());
                    }
                }
            }
        }
        match &option {
            Some(option) if !values.is_empty() => {
                for v in &values {
                    ini.push(assignment(option, v));
                }
            }
            Some(option) if w.allow_no_value => ini.push(format!("{option}\n")),
            _ => edit.msg = "only section added".into(),
        }
        edit.changed = true;
    }
    edit.lines = ini;
    Ok(edit)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::modules::run_in_dir_for_test;
    use serde_json::json;

    fn ini(dir: &Path, args: Value, check: bool) -> Outcome {
        run_in_dir_for_test("ini_file", dir, &args, check).unwrap()
    }

    fn read(dir: &Path) -> String {
        std::fs::read_to_string(dir.join("f.ini")).unwrap()
    }

    #[test]
    fn a_new_file_gets_its_section_and_option_then_is_left_alone() {
        let d = tempfile::tempdir().unwrap();
        let args =
            json!({"path": "{p}/f.ini", "section": "drinks", "option": "fav", "value": "lemonade"});
        let o = ini(d.path(), args.clone(), true);
        assert!(o.changed && !d.path().join("f.ini").exists(), "{o:?}");
        let o = ini(d.path(), args.clone(), false);
        assert!(o.changed);
        assert_eq!(o.msg.as_deref(), Some("section and option added"));
        assert_eq!(read(d.path()), "\n[drinks]\nfav = lemonade\n");
        let o = ini(d.path(), args, false);
        assert!(!o.changed, "{o:?}");
        assert_eq!(o.msg.as_deref(), Some("OK"));
    }

    #[test]
    fn a_commented_option_is_reused_and_duplicates_removed() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(
            d.path().join("f.ini"),
            "[main]\n# port = 1\nport=2\n\n[other]\nport = 3\n",
        )
        .unwrap();
        let o = ini(
            d.path(),
            json!({"path": "{p}/f.ini", "section": "main", "option": "port", "value": "8"}),
            false,
        );
        assert!(o.changed);
        assert_eq!(o.msg.as_deref(), Some("option changed"));
        assert_eq!(read(d.path()), "[main]\nport = 8\n\n[other]\nport = 3\n");
        let o = ini(
            d.path(),
            json!({"path": "{p}/f.ini", "section": "main", "option": "port", "value": "9",
                   "modify_inactive_option": false, "no_extra_spaces": true}),
            false,
        );
        assert_eq!(
            read(d.path()),
            "[main]\nport=9\n\n[other]\nport = 3\n",
            "{o:?}"
        );
    }

    #[test]
    fn values_are_kept_together_and_absent_removes_options_and_sections() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("f.ini"), "[a]\nx = 1\ny = 2\n[b]\nz = 3\n").unwrap();
        let o = ini(
            d.path(),
            json!({"path": "{p}/f.ini", "section": "a", "option": "x", "values": ["1", "5"]}),
            false,
        );
        assert_eq!(o.msg.as_deref(), Some("option added"));
        assert_eq!(read(d.path()), "[a]\nx = 1\ny = 2\nx = 5\n[b]\nz = 3\n");
        let o = ini(
            d.path(),
            json!({"path": "{p}/f.ini", "section": "a", "option": "x", "state": "absent"}),
            false,
        );
        assert!(o.changed);
        assert_eq!(read(d.path()), "[a]\ny = 2\n[b]\nz = 3\n");
        let o = ini(
            d.path(),
            json!({"path": "{p}/f.ini", "section": "b", "state": "absent"}),
            false,
        );
        assert_eq!(o.msg.as_deref(), Some("section removed"));
        assert_eq!(read(d.path()), "[a]\ny = 2\n");
    }

    #[test]
    fn ansibles_messages_for_bad_arguments_and_missing_files() {
        let d = tempfile::tempdir().unwrap();
        let o = ini(
            d.path(),
            json!({"path": "{p}/f.ini", "section": "a", "option": "x", "value": "1", "values": ["2"]}),
            false,
        );
        assert_eq!(
            o.msg.as_deref(),
            Some("parameters are mutually exclusive: value|values")
        );
        let o = ini(
            d.path(),
            json!({"path": "{p}/f.ini", "section": "a", "option": "x"}),
            false,
        );
        assert!(o.failed);
        let o = ini(
            d.path(),
            json!({"path": "{p}/f.ini", "section": "a", "option": "x", "value": "1", "create": false}),
            false,
        );
        assert!(o.failed);
        assert_eq!(o.data["rc"], 257);
    }

    #[test]
    fn section_has_values_picks_the_matching_section() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(
            d.path().join("f.ini"),
            "[drive]\nletter = C\nsize = 1\n[drive]\nletter = D\nsize = 2\n",
        )
        .unwrap();
        ini(
            d.path(),
            json!({"path": "{p}/f.ini", "section": "drive", "option": "size", "value": "9",
                   "section_has_values": [{"option": "letter", "value": "D"}]}),
            false,
        );
        assert_eq!(
            read(d.path()),
            "[drive]\nletter = C\nsize = 1\n[drive]\nletter = D\nsize = 9\n"
        );
    }

    #[test]
    fn a_symlink_is_replaced_unless_followed() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("real.ini"), "[main]\nfoo=BAR\n").unwrap();
        std::os::unix::fs::symlink("real.ini", d.path().join("f.ini")).unwrap();
        let args = json!({"path": "{p}/f.ini", "section": "main", "option": "p", "value": "1", "follow": true});
        ini(d.path(), args, false);
        assert!(
            d.path()
                .join("f.ini")
                .symlink_metadata()
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(
            std::fs::read_to_string(d.path().join("real.ini")).unwrap(),
            "[main]\nfoo=BAR\np = 1\n"
        );
        let args = json!({"path": "{p}/f.ini", "section": "main", "option": "q", "value": "2"});
        ini(d.path(), args, false);
        assert!(d.path().join("f.ini").symlink_metadata().unwrap().is_file());
        assert_eq!(
            std::fs::read_to_string(d.path().join("real.ini")).unwrap(),
            "[main]\nfoo=BAR\np = 1\n"
        );
    }
}
