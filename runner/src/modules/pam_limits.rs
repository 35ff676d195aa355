//! pam_limits (community.general, also reached as `ansible.builtin.pam_limits`): one
//! `domain type item value` line of limits.conf set, line by line as that module does
//! (comments kept, `use_max`/`use_min`, its value checks and messages), the file
//! written through `fsutil`'s atomic writer.

use super::fsutil::{self, Attrs, Step, WriteReq, fail};
use super::{Ctx, Diff, ModuleError, Outcome, args};
use crate::plan::Vars;
use std::path::Path;

const KNOWN: &[&str] = &[
    "domain",
    "limit_type",
    "limit_item",
    "value",
    "use_max",
    "use_min",
    "backup",
    "dest",
    "comment",
];

const ITEMS: &[&str] = &[
    "core",
    "data",
    "fsize",
    "memlock",
    "nofile",
    "rss",
    "stack",
    "cpu",
    "nproc",
    "as",
    "maxlogins",
    "maxsyslogins",
    "priority",
    "locks",
    "sigpending",
    "msgqueue",
    "nice",
    "rtprio",
    "chroot",
];

const TYPES: &[&str] = &["soft", "hard", "-"];

const UNLIMITED: &[&str] = &["unlimited", "infinity", "-1"];

/// `pam_limits`.
pub(super) fn run(a: &Vars, ctx: &Ctx<'_>) -> Result<Outcome, ModuleError> {
    fsutil::finish(run_inner(a, ctx))
}

/// The module's `_assert_is_valid_value`.
fn check_value(item: &str, value: &str, prefix: &str) -> Step<()> {
    if item == "nice" || item == "priority" {
        if value
            .trim()
            .parse::<i64>()
            .is_ok_and(|v| (-20..=19).contains(&v))
        {
            return Ok(());
        }
        return fail(format!(
            "{prefix} Value of '{value}' for item '{item}' is invalid. Value must be a number in the range -20 to 19 inclusive. Refer to the limits.conf(5) manual pages for more details."
        ));
    }
    if UNLIMITED.contains(&value)
        || (!value.is_empty() && value.chars().all(|c| c.is_ascii_digit()))
    {
        return Ok(());
    }
    fail(format!(
        "{prefix} Value of '{value}' for item '{item}' is invalid. Value must either be 'unlimited', 'infinity' or -1, all of which indicate no limit, or a limit of 0 or larger. Refer to the limits.conf(5) manual pages for more details."
    ))
}

fn one_of(a: &Vars, name: &str, choices: &[&str]) -> Step<String> {
    let v = args::req_str(a, name)?;
    if choices.contains(&v.as_str()) {
        return Ok(v);
    }
    fail(format!(
        "value of {name} must be one of: {}, got: {v}",
        choices.join(", ")
    ))
}

fn run_inner(a: &Vars, ctx: &Ctx<'_>) -> Step<Outcome> {
    args::only(a, KNOWN)?;
    let domain = args::req_str(a, "domain")?;
    let limit_type = one_of(a, "limit_type", TYPES)?;
    let limit_item = one_of(a, "limit_item", ITEMS)?;
    let value = args::req_str(a, "value")?;
    let use_max = args::bool_or(a, "use_max", false)?;
    let use_min = args::bool_or(a, "use_min", false)?;
    let backup = args::bool_or(a, "backup", false)?;
    let dest = args::opt_str(a, "dest")?.unwrap_or_else(|| "/etc/security/limits.conf".into());
    let mut new_comment = args::opt_str(a, "comment")?.unwrap_or_default();
    let path = Path::new(&dest);

    let exists = path.is_file();
    if exists {
        if !fsutil::writable(path) {
            return fail(format!("{dest} is not writable. Use sudo"));
        }
    } else {
        let dir = path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        if !(dir.is_dir() && fsutil::writable(dir)) {
            return fail(format!(
                "directory {} is not writable (check presence, access rights, use sudo)",
                dir.display()
            ));
        }
    }
    if use_max && use_min {
        return fail("Cannot use use_min and use_max at the same time.");
    }
    check_value(&limit_item, &value, "")?;

    let before = if exists {
        let bytes = std::fs::read(path).map_err(|e| fsutil::io_fail("read", path, &e))?;
        String::from_utf8(bytes)
            .map_err(|_| fsutil::failed(Outcome::fail(format!("{dest} is not UTF-8 text"))))?
    } else {
        String::new()
    };
    let mut changed = !exists;
    let mut message = String::new();
    let mut out = String::new();
    let mut found = false;
    let mut new_value = value.clone();
    let prefix = format!("Invalid configuration found in '{dest}'.");
    for line in before.split_inclusive('\n') {
        if line.starts_with('#') {
            out.push_str(line);
            continue;
        }
        let squeezed = line.split_whitespace().collect::<Vec<_>>().join(" ");
        if squeezed.is_empty() {
            out.push_str(line);
            continue;
        }
        let active = squeezed.split('#').next().unwrap_or("").trim_end();
        let old_comment = line.split_once('#').map_or("", |(_, c)| c);
        // As the module does: with no comment asked for, the last line's comment is
        // the one a changed line gets.
        if new_comment.is_empty() {
            new_comment = old_comment.to_string();
        }
        let fields: Vec<&str> = active.split(' ').collect();
        let [line_domain, line_type, line_item, actual] = fields.as_slice() else {
            out.push_str(line);
            continue;
        };
        check_value(line_item, actual, &prefix)?;
        if !(*line_domain == domain && *line_type == limit_type && *line_item == limit_item) {
            out.push_str(line);
            continue;
        }
        found = true;
        if value == *actual {
            message = line.to_string();
            out.push_str(line);
            continue;
        }
        let actual_unlimited = UNLIMITED.contains(actual);
        let value_unlimited = UNLIMITED.contains(&value.as_str());
        let num = |s: &str| s.trim().parse::<i64>().unwrap_or(0);
        if use_max {
            new_value = if actual_unlimited {
                (*actual).to_string()
            } else if value_unlimited {
                value.clone()
            } else {
                num(&value).max(num(actual)).to_string()
            };
        }
        if use_min {
            new_value = match (actual_unlimited, value_unlimited) {
                (true, true) => (*actual).to_string(),
                (true, false) => value.clone(),
                (false, true) => (*actual).to_string(),
                (false, false) => num(&value).min(num(actual)).to_string(),
            };
        }
        if new_value != *actual {
            changed = true;
            if !new_comment.is_empty() {
                new_comment = format!("\t#{new_comment}");
            }
            let limit = format!("{domain}\t{limit_type}\t{limit_item}\t{new_value}{new_comment}\n");
            message.clone_from(&limit);
            out.push_str(&limit);
        } else {
            message = line.to_string();
            out.push_str(line);
        }
    }
    if !found {
        changed = true;
        if !new_comment.is_empty() {
            new_comment = format!("\t#{new_comment}");
        }
        let limit = format!("{domain}\t{limit_type}\t{limit_item}\t{new_value}{new_comment}\n");
        message.clone_from(&limit);
        out.push_str(&limit);
    }

    let mut result = Outcome::changed(changed);
    if !ctx.check_mode && (out != before || !exists) {
        let req = WriteReq {
            dest: path,
            content: out.as_bytes(),
            attrs: Attrs::default(),
            force: true,
            backup: backup && exists,
            follow: true,
            src: None,
            new_mode: None,
        };
        let written = fsutil::write_file(&req, ctx)?;
        if let Some(b) = written.data.get("backup_file") {
            result = result.with("backup_file", b.clone());
        }
    }
    if ctx.diff_mode && changed {
        result.diff.push(Diff {
            before_header: dest.clone(),
            after_header: dest.clone(),
            before: before.clone(),
            after: out.clone(),
        });
    }
    Ok(result
        .msg(message)
        .with("diff", serde_json::json!({"before": before, "after": out})))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::modules::run_in_dir_for_test;
    use serde_json::{Value, json};

    fn pam(dir: &Path, args: Value, check: bool) -> Outcome {
        run_in_dir_for_test("pam_limits", dir, &args, check).unwrap()
    }

    fn read(dir: &Path) -> String {
        std::fs::read_to_string(dir.join("limits.conf")).unwrap()
    }

    #[test]
    fn a_limit_is_added_then_left_alone_and_check_mode_writes_nothing() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("limits.conf"), "# limits\n*   soft core 0\n").unwrap();
        let args = json!({"domain": "smith", "limit_type": "soft", "limit_item": "nofile",
                          "value": "64000", "dest": "{p}/limits.conf"});
        assert!(pam(d.path(), args.clone(), true).changed);
        assert_eq!(read(d.path()), "# limits\n*   soft core 0\n");
        let o = pam(d.path(), args.clone(), false);
        assert!(o.changed);
        assert_eq!(o.msg.as_deref(), Some("smith\tsoft\tnofile\t64000\n"));
        assert_eq!(
            read(d.path()),
            "# limits\n*   soft core 0\nsmith\tsoft\tnofile\t64000\n"
        );
        assert!(!pam(d.path(), args, false).changed);
    }

    #[test]
    fn use_max_keeps_the_larger_value_and_comments_are_written() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("limits.conf"), "joe hard nofile 5000\n").unwrap();
        let o = pam(
            d.path(),
            json!({"domain": "joe", "limit_type": "hard", "limit_item": "nofile",
                   "value": "100", "use_max": true, "dest": "{p}/limits.conf"}),
            false,
        );
        assert!(!o.changed, "{o:?}");
        let o = pam(
            d.path(),
            json!({"domain": "joe", "limit_type": "hard", "limit_item": "nofile",
                   "value": "9000", "comment": "more", "dest": "{p}/limits.conf"}),
            false,
        );
        assert!(o.changed);
        assert_eq!(read(d.path()), "joe\thard\tnofile\t9000\t#more\n");
        // A line's own comment is kept with its newline, as the module keeps it
        // (ansible-playbook 11: `joe hard nofile 5000 # old` becomes this).
        std::fs::write(d.path().join("limits.conf"), "joe hard nofile 5000 # old\n").unwrap();
        pam(
            d.path(),
            json!({"domain": "joe", "limit_type": "hard", "limit_item": "nofile",
                   "value": "9000", "dest": "{p}/limits.conf"}),
            false,
        );
        assert_eq!(read(d.path()), "joe\thard\tnofile\t9000\t# old\n\n");
    }

    #[test]
    fn bad_values_are_refused_with_the_modules_messages() {
        let d = tempfile::tempdir().unwrap();
        let o = pam(
            d.path(),
            json!({"domain": "a", "limit_type": "soft", "limit_item": "nice", "value": "40",
                   "dest": "{p}/limits.conf"}),
            false,
        );
        assert!(o.msg.unwrap().contains("range -20 to 19"));
        let o = pam(
            d.path(),
            json!({"domain": "a", "limit_type": "x", "limit_item": "nofile", "value": "1",
                   "dest": "{p}/limits.conf"}),
            false,
        );
        assert_eq!(
            o.msg.as_deref(),
            Some("value of limit_type must be one of: soft, hard, -, got: x")
        );
        assert!(!d.path().join("limits.conf").exists());
    }
}
