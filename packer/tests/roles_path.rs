//! `ANSIBLE_ROLES_PATH`: roles found outside the playbook's directory, in Ansible's
//! search order, through the real `rustle-deploy plan` with the variable in its
//! environment (as ansible-core's `runme.sh` targets run `ANSIBLE_ROLES_PATH=../
//! ansible-playbook ...`).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use serde_json::Value;
use std::path::Path;
use std::process::Command;

/// Writes files (path, content) under `root`.
fn write(root: &Path, files: &[(&str, &str)]) {
    for (name, content) in files {
        let path = root.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, content).unwrap();
    }
}

/// A role whose one task says which copy of the role ran.
fn role(which: &str) -> String {
    format!("- debug:\n    msg: {which}\n")
}

/// Runs `rustle-deploy plan PLAYBOOK` from `cwd` with `roles_path` (None: unset) and
/// returns the plan, or the error text.
fn plan(cwd: &Path, playbook: &str, roles_path: Option<&str>) -> Result<Value, String> {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_rustle-deploy"));
    cmd.current_dir(cwd).arg("plan").arg(playbook);
    cmd.env_remove("ANSIBLE_ROLES_PATH")
        .env_remove("ANSIBLE_HOME")
        // A home of our own, so the default roles path does not see the real one.
        .env("HOME", cwd.join("home"));
    if let Some(p) = roles_path {
        cmd.env("ANSIBLE_ROLES_PATH", p);
    }
    let out = cmd.output().unwrap();
    if out.status.success() {
        Ok(serde_json::from_slice(&out.stdout).unwrap())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// The `msg` of every debug task the plan's plays run, in order (the plan's library of
/// files includes may name holds the role's tasks again).
fn messages(plan: &Value) -> Vec<String> {
    fn walk(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                if let Some(Value::Object(args)) = m.get("args")
                    && m.get("module").and_then(Value::as_str) == Some("debug")
                    && let Some(Value::String(msg)) = args.get("msg")
                {
                    out.push(msg.clone());
                }
                for child in m.values() {
                    walk(child, out);
                }
            }
            Value::Array(a) => a.iter().for_each(|c| walk(c, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(&plan["plays"], &mut out);
    out
}

const PLAY: &str = "- hosts: all\n  gather_facts: false\n  roles:\n    - common\n";

#[test]
fn roles_path_is_searched_after_the_playbooks_roles_dir_and_before_its_own_dir() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    write(
        root,
        &[
            ("pb/play.yml", PLAY),
            ("pb/common/tasks/main.yml", &role("beside the playbook")),
            ("shared/common/tasks/main.yml", &role("from the roles path")),
            ("other/unused/tasks/main.yml", &role("unused")),
        ],
    );
    // Found in the second entry of a colon-separated path, before the playbook's dir.
    let p = plan(root, "pb/play.yml", Some("other:shared")).unwrap();
    assert_eq!(messages(&p), ["from the roles path"]);
    // The playbook's own roles/ comes first of all.
    write(
        root,
        &[("pb/roles/common/tasks/main.yml", &role("in roles/"))],
    );
    let p = plan(root, "pb/play.yml", Some("shared")).unwrap();
    assert_eq!(messages(&p), ["in roles/"]);
}

#[test]
fn roles_path_entries_are_relative_to_the_current_directory_and_expand_home() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    write(
        root,
        &[
            // As ansible-core's targets: the playbook inside the role's sibling.
            ("targets/filter_x/runme.yml", PLAY),
            ("targets/common/tasks/main.yml", &role("sibling")),
            ("home/roles/other/tasks/main.yml", &role("home")),
        ],
    );
    let p = plan(&root.join("targets/filter_x"), "runme.yml", Some("../")).unwrap();
    assert_eq!(messages(&p), ["sibling"]);
    let p = plan(
        root,
        "targets/filter_x/runme.yml",
        Some("/nonexistent:~/roles"),
    );
    // `common` is not under ~/roles: the error names where it looked, ~ expanded.
    let err = p.unwrap_err();
    assert!(
        err.contains(&root.join("home/roles/common").display().to_string()),
        "{err}"
    );
    assert!(err.contains("/nonexistent/common"), "{err}");
}

#[test]
fn without_roles_path_the_default_under_home_is_searched() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    write(
        root,
        &[
            ("pb/play.yml", PLAY),
            (
                "home/.ansible/roles/common/tasks/main.yml",
                &role("default path"),
            ),
        ],
    );
    let p = plan(root, "pb/play.yml", None).unwrap();
    assert_eq!(messages(&p), ["default path"]);
}

#[test]
fn a_dependency_is_found_beside_the_role_that_needs_it() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    write(
        root,
        &[
            ("pb/play.yml", PLAY),
            ("lib/common/tasks/main.yml", &role("common")),
            ("lib/common/meta/main.yml", "dependencies:\n  - helper\n"),
            ("lib/helper/tasks/main.yml", &role("helper")),
        ],
    );
    let p = plan(
        root,
        "pb/play.yml",
        Some(&root.join("lib/common/..").display().to_string()),
    );
    assert_eq!(messages(&p.unwrap()), ["helper", "common"]);
    // Found only through the dependent role's directory, with the roles path elsewhere.
    write(
        root,
        &[(
            "pb/play2.yml",
            "- hosts: all\n  gather_facts: false\n  roles:\n    - ../lib/common\n",
        )],
    );
    let p = plan(root, "pb/play2.yml", Some("/nonexistent")).unwrap();
    assert_eq!(messages(&p), ["helper", "common"]);
}
