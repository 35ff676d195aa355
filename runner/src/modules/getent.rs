//! getent: a database of the name service switch (passwd, group, shadow, hosts,
//! services, ...) read with the host's `getent` and returned as the fact
//! `getent_<database>`, with ansible.builtin.getent's arguments, messages and layout.

use super::tools;
use super::{Ctx, ModuleError, Outcome, args};
use crate::plan::Vars;
use serde_json::{Map, Value};

const KNOWN: &[&str] = &["database", "key", "service", "split", "fail_key"];

/// The databases whose records are colon-separated (split on ':' unless told).
const COLON: &[&str] = &["passwd", "shadow", "group", "gshadow"];

/// `getent`: reads nothing but the database, so check mode runs it as usual.
pub(super) fn run(a: &Vars, ctx: &Ctx<'_>) -> Result<Outcome, ModuleError> {
    args::only(a, KNOWN)?;
    let database = args::req_str(a, "database")?;
    let key = args::opt_str(a, "key")?;
    let service = args::opt_str(a, "service")?;
    let split = args::opt_str(a, "split")?;
    let fail_key = args::bool_or(a, "fail_key", true)?;
    let Some(getent) = tools::find_bin("getent") else {
        return Ok(Outcome::fail(
            "Failed to find required executable \"getent\" in paths: $PATH, /usr/local/sbin, /usr/sbin, /sbin",
        ));
    };
    let mut argv = vec![database.clone()];
    argv.extend(key.clone());
    if let Some(s) = service {
        argv.extend(["-s".to_string(), s]);
    }
    let split = split.or_else(|| COLON.contains(&database.as_str()).then(|| ":".to_string()));
    let out = match tools::run_command(ctx.command(&getent), &argv, None) {
        Ok(o) => o,
        Err(e) => return Ok(Outcome::fail(format!("{}: {e}", getent.display()))),
    };
    let tree = format!("getent_{database}");
    let msg = match out.rc {
        0 => {
            let facts =
                Map::from_iter([(tree, Value::Object(records(&out.stdout, split.as_deref())))]);
            return Ok(Outcome::ok().with("ansible_facts", Value::Object(facts)));
        }
        1 => "Missing arguments, or database unknown.",
        2 => {
            let msg = "One or more supplied key could not be found in the database.";
            if !fail_key {
                let mut found = Map::new();
                found.insert(key.unwrap_or_default(), Value::Null);
                let facts = Map::from_iter([(tree, Value::Object(found))]);
                return Ok(Outcome::ok()
                    .msg(msg)
                    .with("ansible_facts", Value::Object(facts)));
            }
            msg
        }
        3 => "Enumeration not supported on this database.",
        _ => "Unexpected failure!",
    };
    Ok(Outcome::fail(msg))
}

/// getent's output as Ansible lays it out: each record's first field is the key and the
/// rest its value; a key seen again (a host with several addresses) gets the list of
/// its values. `split: None` splits on runs of whitespace, as Python's `str.split()`.
fn records(stdout: &str, split: Option<&str>) -> Map<String, Value> {
    let mut tree = Map::new();
    let mut seen: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    for line in stdout.lines() {
        let fields: Vec<String> = match split {
            Some(s) if !s.is_empty() => line.split(s).map(str::to_string).collect(),
            _ => line.split_whitespace().map(str::to_string).collect(),
        };
        let Some((first, rest)) = fields.split_first() else {
            continue;
        };
        let rest = Value::from(rest.to_vec());
        let count = seen.entry(first.clone()).or_insert(0);
        *count += 1;
        if *count == 1 {
            tree.insert(first.clone(), rest);
            continue;
        }
        let entry = tree.entry(first.clone()).or_insert(Value::Null);
        if *count == 2 {
            *entry = Value::Array(vec![entry.take()]);
        }
        if let Value::Array(all) = entry {
            all.push(rest);
        }
    }
    tree
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::modules::run_in_dir_for_test;
    use serde_json::json;

    fn getent(args: Value) -> Outcome {
        let dir = std::env::temp_dir();
        run_in_dir_for_test("getent", &dir, &args, false).unwrap()
    }

    #[test]
    fn passwd_root_is_split_on_colons() {
        let o = getent(json!({"database": "passwd", "key": "root"}));
        assert!(!o.failed && !o.changed, "{o:?}");
        let root = &o.data["ansible_facts"]["getent_passwd"]["root"];
        assert_eq!(root[1], "0", "{root}");
        assert_eq!(root[2], "0", "{root}");
    }

    #[test]
    fn a_missing_key_fails_unless_fail_key_is_off() {
        let o = getent(json!({"database": "passwd", "key": "no-such-user-here-x"}));
        assert!(o.failed);
        assert_eq!(
            o.msg.as_deref(),
            Some("One or more supplied key could not be found in the database.")
        );
        let o =
            getent(json!({"database": "passwd", "key": "no-such-user-here-x", "fail_key": false}));
        assert!(!o.failed, "{o:?}");
        assert_eq!(
            o.data["ansible_facts"]["getent_passwd"],
            json!({"no-such-user-here-x": null})
        );
    }

    #[test]
    fn an_unknown_database_fails_with_ansibles_message() {
        let o = getent(json!({"database": "nosuchdb"}));
        assert!(o.failed);
        assert_eq!(
            o.msg.as_deref(),
            Some("Missing arguments, or database unknown.")
        );
    }

    #[test]
    fn whitespace_databases_and_repeated_keys_become_lists() {
        let tree = records(
            "127.0.0.1 localhost\n::1 localhost ip6\n::1 other\n\n",
            None,
        );
        assert_eq!(tree["127.0.0.1"], json!(["localhost"]));
        assert_eq!(tree["::1"], json!([["localhost", "ip6"], ["other"]]));
        let tree = records("a:b::c\n", Some(":"));
        assert_eq!(tree["a"], json!(["b", "", "c"]));
    }

    #[test]
    fn unknown_arguments_are_refused() {
        let dir = std::env::temp_dir();
        let e = run_in_dir_for_test(
            "getent",
            &dir,
            &json!({"database": "passwd", "x": 1}),
            false,
        )
        .unwrap_err();
        assert!(e.to_string().contains("'x'"), "{e}");
    }
}
