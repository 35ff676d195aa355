//! Tests for plan loading: every rustle-plan fixture, refusals of bad input, file embedding.

use super::*;
use rustle_runner::plan::Condition;
use serde_json::json;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures");

fn fixture_path(name: &str) -> PathBuf {
    Path::new(FIXTURES).join("rustle-plan").join(name)
}

fn load(name: &str) -> LoadedPlan {
    load_plan(&fixture_path(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn fixture_json(name: &str) -> Value {
    let text = std::fs::read_to_string(fixture_path(name)).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn task_names(play: &Play) -> Vec<&str> {
    play.tasks
        .iter()
        .map(|t| t.name.as_deref().unwrap_or(""))
        .collect()
}

// ---------------------------------------------------------------------------------------
// Loading the rustle-plan fixtures
// ---------------------------------------------------------------------------------------

/// Loads a fixture, checks it converted from rustle-plan 0.1.0 with these task counts per
/// play, and returns it for further checks.
fn check(name: &str, tasks_per_play: &[usize]) -> LoadedPlan {
    let loaded = load(name);
    assert_eq!(
        loaded.source,
        PlanSource::RustlePlan {
            version: "0.1.0".to_string()
        },
        "{name}"
    );
    assert_eq!(loaded.plan.format, PLAN_FORMAT, "{name}");
    assert_eq!(loaded.plan.version, PLAN_VERSION, "{name}");
    let counts: Vec<usize> = loaded.plan.plays.iter().map(|p| p.tasks.len()).collect();
    assert_eq!(counts, tasks_per_play, "{name}: tasks per play");
    loaded
}

const FIXTURE_TASK_COUNTS: &[(&str, &[usize])] = &[
    ("complex_inv_simple.plan.json", &[3]),
    ("example_rustle_plan_output.json", &[3]),
    ("file_operations_plan.json", &[5]),
    ("file_operations_playbook_with_facts_plan.json", &[5]),
    ("fileops.plan.json", &[5]),
    ("includes_main.plan.json", &[10, 4, 1, 5, 1]),
    ("package.plan.json", &[5]),
    ("package_management_plan.json", &[5]),
    ("probe_ini.plan.json", &[5]),
    ("service.plan.json", &[5]),
    ("service_management_plan.json", &[5]),
    ("simple.plan.json", &[3]),
    ("simple_check.plan.json", &[3]),
    ("simple_linear.plan.json", &[3]),
    ("simple_rolling.plan.json", &[3]),
];

#[test]
fn every_rustle_plan_fixture_loads() {
    let mut on_disk: Vec<String> = std::fs::read_dir(Path::new(FIXTURES).join("rustle-plan"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    on_disk.sort();
    let listed: Vec<&str> = FIXTURE_TASK_COUNTS.iter().map(|(n, _)| *n).collect();
    assert_eq!(
        on_disk, listed,
        "a fixture was added or removed: list it here"
    );
    for (name, counts) in FIXTURE_TASK_COUNTS {
        check(name, counts);
    }
}

#[test]
fn probe_ini_keeps_args_notify_handler_and_conditions() {
    let loaded = check("probe_ini.plan.json", &[5]);
    let play = &loaded.plan.plays[0];
    // Group patterns arrive unresolved as `hosts: []`.
    assert_eq!(play.hosts, vec!["all"]);
    assert!(
        loaded.notes.iter().any(
            |n| n.contains("Probe what survives parse->plan") && n.contains("hosts were empty")
        ),
        "{:?}",
        loaded.notes
    );
    assert!(play.gather_facts);

    let shell = &play.tasks[2];
    assert_eq!(shell.module, "shell");
    assert_eq!(
        shell.args.get("_raw_params"),
        Some(&json!("echo hello > /tmp/rustle_probe/hello.txt"))
    );
    assert_eq!(shell.notify, vec!["restart app"]);

    assert_eq!(play.tasks[0].tags, vec!["setup"]);
    assert_eq!(
        play.tasks[3].when,
        Some(Condition::One(
            "ansible_os_family == \"Debian\"".to_string()
        ))
    );
    assert_eq!(play.tasks[1].when, None);

    assert_eq!(play.handlers.len(), 1);
    let handler = &play.handlers[0];
    assert_eq!(handler.name.as_deref(), Some("restart app"));
    assert_eq!(handler.module, "service");
    assert_eq!(handler.args.get("name"), Some(&json!("app")));
    assert_eq!(handler.args.get("state"), Some(&json!("restarted")));
}

#[test]
fn check_mode_comes_from_planning_options_and_conditions() {
    let checked = check("simple_check.plan.json", &[3]);
    assert!(checked.plan.check_mode);
    assert!(!checked.plan.diff_mode);
    for task in &checked.plan.plays[0].tasks {
        assert_eq!(task.check_mode, Some(true.into()), "{:?}", task.name);
    }
    // CheckMode and Tag conditions are not `when` expressions.
    assert_eq!(checked.plan.plays[0].tasks[0].when, None);
    assert_eq!(checked.plan.plays[0].tasks[0].tags, vec!["debug", "test"]);

    let plain = check("simple.plan.json", &[3]);
    assert!(!plain.plan.check_mode);
    assert!(
        plain.plan.plays[0]
            .tasks
            .iter()
            .all(|t| t.check_mode.is_none())
    );
    assert_eq!(plain.plan.plays[0].hosts, vec!["localhost"]);
    assert!(plain.notes.is_empty(), "{:?}", plain.notes);
}

#[test]
fn linear_batches_run_in_dependency_order() {
    let loaded = check("simple_linear.plan.json", &[3]);
    let play = &loaded.plan.plays[0];
    assert_eq!(
        task_names(play),
        vec!["Print a message", "Install package", "Notify handler"]
    );
    // Linear is what the runner does anyway: nothing to say.
    assert!(loaded.notes.is_empty(), "{:?}", loaded.notes);
}

#[test]
fn rolling_plan_notes_strategy() {
    let loaded = check("simple_rolling.plan.json", &[3]);
    assert!(
        loaded.notes.iter().any(|n| n.contains("Rolling")),
        "{:?}",
        loaded.notes
    );
}

#[test]
fn rolling_host_split_batches_do_not_duplicate_tasks() {
    // rustle-plan splits a rolling play into one batch per host group, each with the same
    // tasks; the fixture has one group, so add a second one that depends on the first and
    // put it first in the file.
    let mut doc = fixture_json("simple_rolling.plan.json");
    let batches = doc["plays"][0]["batches"].as_array_mut().unwrap();
    let mut second = batches[0].clone();
    second["batch_id"] = json!("rolling-batch-1");
    second["hosts"] = json!(["web1"]);
    second["dependencies"] = json!(["rolling-batch-0"]);
    batches.insert(0, second);

    let loaded = parse_plan(&doc.to_string(), "rolling").unwrap();
    assert_eq!(
        task_names(&loaded.plan.plays[0]),
        vec!["Print a message", "Install package", "Notify handler"]
    );
}

#[test]
fn includes_keep_tasks_whose_ids_collide() {
    // Ids restart in included files: three different `task_0` in the first play.
    let loaded = check("includes_main.plan.json", &[10, 4, 1, 5, 1]);
    let main = &loaded.plan.plays[0];
    assert_eq!(main.tasks[0].name.as_deref(), Some("Task before includes"));
    assert_eq!(main.tasks[1].module, "file");
    assert_eq!(main.tasks[4].module, "assert");
    assert_eq!(main.tasks[9].name.as_deref(), Some("Task between includes"));
    assert!(
        loaded
            .notes
            .iter()
            .any(|n| n.contains("Setup directories") && n.contains("item")),
        "{:?}",
        loaded.notes
    );
    let db = &loaded.plan.plays[1];
    assert_eq!(db.hosts, vec!["all"]);
    assert_eq!(db.handlers[0].name.as_deref(), Some("restart postgresql"));
    assert_eq!(db.tasks[2].notify, vec!["restart postgresql"]);
}

#[test]
fn task_order_follows_execution_order_within_a_batch() {
    let mut doc = fixture_json("simple.plan.json");
    doc["plays"][0]["batches"][0]["tasks"]
        .as_array_mut()
        .unwrap()
        .reverse();
    let loaded = parse_plan(&doc.to_string(), "reversed").unwrap();
    assert_eq!(
        task_names(&loaded.plan.plays[0]),
        vec!["Print a message", "Install package", "Notify handler"]
    );
}

#[test]
fn host_condition_becomes_when_for_a_plain_host_name() {
    let mut doc = fixture_json("simple.plan.json");
    doc["plays"][0]["batches"][0]["tasks"][2]["conditions"]
        .as_array_mut()
        .unwrap()
        .push(json!({"Host": {"pattern": "web1"}}));
    let loaded = parse_plan(&doc.to_string(), "host").unwrap();
    assert_eq!(
        loaded.plan.plays[0].tasks[2].when,
        Some(Condition::All(vec![
            "test_var is defined".to_string(),
            "inventory_hostname == \"web1\"".to_string()
        ]))
    );
}

#[test]
fn converted_plan_round_trips_through_the_native_format() {
    let loaded = load("includes_main.plan.json");
    let text = serde_json::to_string_pretty(&loaded.plan).unwrap();
    let again = parse_plan(&text, "native").unwrap();
    assert_eq!(again.source, PlanSource::Native);
    assert_eq!(again.plan, loaded.plan);
}

// ---------------------------------------------------------------------------------------
// Refusals
// ---------------------------------------------------------------------------------------

/// Parses `text`, expects an error, and checks its message names every `culprit`.
fn check_refused(text: &str, culprits: &[&str]) -> PlanError {
    let err = match parse_plan(text, "bad.json") {
        Ok(p) => panic!("accepted: {:?}", p.plan),
        Err(e) => e,
    };
    let msg = err.to_string();
    assert!(msg.starts_with("bad.json"), "{msg}");
    for c in culprits {
        assert!(msg.contains(c), "{msg:?} does not mention {c:?}");
    }
    err
}

fn with_condition(condition: Value) -> String {
    let mut doc = fixture_json("simple.plan.json");
    doc["plays"][0]["batches"][0]["tasks"][1]["conditions"] = json!([condition]);
    doc.to_string()
}

#[test]
fn unknown_condition_variant_is_refused_with_its_path() {
    let err = check_refused(
        &with_condition(json!({"Frobnicate": {"x": 1}})),
        &["plays[0].batches[0].tasks[1].conditions[0]", "`Frobnicate`"],
    );
    assert!(matches!(err, PlanError::Field { .. }));
}

#[test]
fn malformed_conditions_are_refused_with_their_path() {
    check_refused(
        &with_condition(json!("When")),
        &[
            "plays[0].batches[0].tasks[1].conditions[0]",
            "exactly one key",
        ],
    );
    check_refused(
        &with_condition(json!({"When": {"expr": "x"}})),
        &["conditions[0].When", "expr"],
    );
    check_refused(
        &with_condition(json!({"Host": {"pattern": "webservers:&prod"}})),
        &["conditions[0].Host.pattern", "webservers:&prod"],
    );
}

#[test]
fn broken_json_reports_line_and_column() {
    let err = check_refused("{\n  \"plays\": [\n    {\"name\": }\n", &["invalid JSON"]);
    match err {
        PlanError::Json { line, column, .. } => assert_eq!((line, column), (3, 14)),
        other => panic!("{other:?}"),
    }
}

#[test]
fn native_plan_of_another_version_is_refused() {
    let err = check_refused(
        r#"{"format": "rustle-deploy-plan", "version": 99, "plays": []}"#,
        &["version 99", "reads 1"],
    );
    assert!(matches!(err, PlanError::UnsupportedVersion { .. }));
    check_refused(
        r#"{"format": "rustle-deploy-plan", "version": "1", "plays": []}"#,
        &["version", "expected an integer"],
    );
    check_refused(
        r#"{"format": "ansible-plan", "version": 1, "plays": []}"#,
        &["format", "ansible-plan"],
    );
}

#[test]
fn native_unknown_field_is_named_with_its_path() {
    let err = check_refused(
        r#"{"format": "rustle-deploy-plan", "version": 1, "plays": [
            {"name": "p", "hosts": ["all"], "tasks": [
                {"module": "debug", "args": {"msg": "hi"}},
                {"module": "debug", "frobnicate": true}
            ]}
        ]}"#,
        &["plays[0].tasks[1]", "unknown field `frobnicate`", "line 4"],
    );
    assert!(matches!(err, PlanError::Field { .. }));
    // Inside a block of a handler.
    check_refused(
        r#"{"format": "rustle-deploy-plan", "version": 1, "plays": [
            {"name": "p", "handlers": [{"block": [{"module": "debug", "whn": "x"}]}]}
        ]}"#,
        &["plays[0].handlers[0].block[0]", "unknown field `whn`"],
    );
}

#[test]
fn things_that_are_not_plans_are_refused() {
    let err = check_refused("{}", &["not an execution plan", "an empty object"]);
    assert!(matches!(err, PlanError::NotAPlan { .. }));
    check_refused("[1, 2]", &["not an execution plan", "array"]);
    check_refused(r#"{"plays": []}"#, &["not an execution plan", "plays"]);
    check_refused("", &["invalid JSON"]);
}

#[test]
fn rustle_plan_of_another_version_is_refused() {
    let mut doc = fixture_json("simple.plan.json");
    doc["metadata"]["rustle_plan_version"] = json!("0.2.0");
    let err = check_refused(&doc.to_string(), &["rustle-plan version 0.2.0", "0.1.x"]);
    assert!(matches!(err, PlanError::UnsupportedVersion { .. }));
}

#[test]
fn rustle_plan_structure_errors_name_the_path() {
    let mut doc = fixture_json("simple.plan.json");
    doc["plays"][0]["batches"][0]["tasks"][0]
        .as_object_mut()
        .unwrap()
        .shift_remove("task_id");
    check_refused(
        &doc.to_string(),
        &["plays[0].batches[0].tasks[0]", "missing field `task_id`"],
    );

    let mut doc = fixture_json("simple_linear.plan.json");
    doc["plays"][0]["batches"][0]["dependencies"] = json!(["batch-2"]);
    check_refused(&doc.to_string(), &["plays[0].batches", "cycle", "batch-0"]);

    let mut doc = fixture_json("simple_linear.plan.json");
    doc["plays"][0]["batches"][1]["dependencies"] = json!(["batch-9"]);
    check_refused(
        &doc.to_string(),
        &["plays[0].batches[1].dependencies[0]", "batch-9"],
    );
}

#[test]
fn supported_version_text_matches_the_constant() {
    assert_eq!(SUPPORTED_VERSION, PLAN_VERSION.to_string());
}

#[test]
fn plan_error_stays_small() {
    // It travels in every `Result` of the packer; clippy's `result_large_err` draws the
    // line at 128 bytes, and wrapping errors add their own tag.
    assert!(
        std::mem::size_of::<PlanError>() <= 104,
        "{}",
        std::mem::size_of::<PlanError>()
    );
}

#[test]
fn load_plan_names_a_missing_file() {
    let err = load_plan(Path::new("/nonexistent/plan.json")).unwrap_err();
    assert!(matches!(err, PlanError::Io { .. }));
    assert!(err.to_string().contains("/nonexistent/plan.json"), "{err}");
}

// ---------------------------------------------------------------------------------------
// Embedding files
// ---------------------------------------------------------------------------------------

/// A native plan with one play holding `tasks` and `handlers`.
fn plan_with(tasks: Value, handlers: Value) -> DeployPlan {
    let doc = json!({
        "format": PLAN_FORMAT, "version": PLAN_VERSION,
        "plays": [{"name": "files", "hosts": ["all"], "tasks": tasks, "handlers": handlers}]
    });
    parse_plan(&doc.to_string(), "files-test").unwrap().plan
}

/// Attaches files from `base` and checks the plan then holds exactly `expect`
/// (name, file on disk it must equal).
fn check_attach(tasks: Value, handlers: Value, base: &Path, expect: &[(&str, PathBuf)]) {
    let mut plan = plan_with(tasks, handlers);
    attach_files(&mut plan, base).unwrap();
    let names: Vec<&str> = plan.files.keys().map(String::as_str).collect();
    let want: Vec<&str> = expect.iter().map(|(n, _)| *n).collect();
    assert_eq!(names, want);
    for (name, disk) in expect {
        let file = &plan.files[*name];
        let bytes = std::fs::read(disk).unwrap();
        match (&file.content, &file.base64) {
            (Some(text), None) => assert_eq!(text.as_bytes(), bytes, "{name}"),
            (None, Some(b64)) => assert_eq!(
                base64::Engine::decode(&base64::engine::general_purpose::STANDARD, b64).unwrap(),
                bytes,
                "{name}"
            ),
            other => panic!("{name}: {other:?}"),
        }
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(disk).unwrap().permissions(),
        );
        assert_eq!(file.mode, Some(format!("{:04o}", mode & 0o7777)), "{name}");
    }
}

fn files_base() -> PathBuf {
    Path::new(FIXTURES).join("files")
}

#[test]
fn templates_and_copies_are_found_like_ansible() {
    let base = files_base();
    check_attach(
        json!([
            {"name": "t", "module": "template", "args": {"src": "simple.txt.j2", "dest": "/tmp/a"}},
            {"name": "c", "module": "ansible.builtin.copy",
             "args": {"src": "test_files/small.txt", "dest": "/tmp/b"}},
            {"name": "blk", "block": [
                {"module": "template", "args": {"src": "config.yaml.j2", "dest": "/tmp/c"}}
            ], "rescue": [
                {"module": "template", "args": {"src": "templates/linux_config.j2", "dest": "/tmp/d"}}
            ], "always": [
                {"module": "copy", "args": {"content": "inline", "dest": "/tmp/e"}},
                {"module": "copy", "args": {"src": "/etc/hostname", "remote_src": true, "dest": "/tmp/f"}}
            ]}
        ]),
        json!([
            {"name": "h", "module": "template", "args": {"src": "system_report.j2", "dest": "/tmp/g"}},
            {"name": "h2", "module": "template", "args": {"src": "simple.txt.j2", "dest": "/tmp/h"}}
        ]),
        &base,
        &[
            ("config.yaml.j2", base.join("templates/config.yaml.j2")),
            ("simple.txt.j2", base.join("templates/simple.txt.j2")),
            ("system_report.j2", base.join("templates/system_report.j2")),
            (
                "templates/linux_config.j2",
                base.join("templates/linux_config.j2"),
            ),
            ("test_files/small.txt", base.join("test_files/small.txt")),
        ],
    );
}

#[test]
fn fileops_fixture_copy_src_resolves_from_the_playbook_directory() {
    // rustle-parse ran at the repository root, so that is the base.
    let mut plan = load("fileops.plan.json").plan;
    let root = Path::new(FIXTURES).join("../..");
    attach_files(&mut plan, &root).unwrap();
    let file = &plan.files["tests/fixtures/files/test_files/sample.conf"];
    let disk = std::fs::read_to_string(files_base().join("test_files/sample.conf")).unwrap();
    assert_eq!(file.content.as_deref(), Some(disk.as_str()));
}

#[test]
fn binary_files_go_in_base64_and_absolute_src_is_used_as_is() {
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("blob.bin");
    std::fs::write(&bin, [0u8, 159, 146, 150, 255]).unwrap();
    let abs = bin.to_string_lossy().into_owned();
    check_attach(
        json!([{"module": "copy", "args": {"src": abs, "dest": "/tmp/x"}}]),
        json!([]),
        &files_base(),
        &[(abs.as_str(), bin.clone())],
    );
}

#[test]
fn existing_plan_files_are_kept() {
    let mut plan = plan_with(
        json!([{"module": "template", "args": {"src": "simple.txt.j2", "dest": "/tmp/a"}}]),
        json!([]),
    );
    let given = PlanFile {
        content: Some("given".to_string()),
        base64: None,
        mode: None,
    };
    plan.files
        .insert("simple.txt.j2".to_string(), given.clone());
    attach_files(&mut plan, &files_base()).unwrap();
    assert_eq!(plan.files["simple.txt.j2"], given);
}

/// Attaches from `base`, expects an error, and checks its message names every `culprit`.
fn check_attach_refused(tasks: Value, base: &Path, culprits: &[&str]) -> PlanError {
    let mut plan = plan_with(tasks, json!([]));
    let err = attach_files(&mut plan, base).unwrap_err();
    let msg = err.to_string();
    for c in culprits {
        assert!(msg.contains(c), "{msg:?} does not mention {c:?}");
    }
    err
}

#[test]
fn missing_file_lists_the_searched_paths() {
    let base = files_base();
    let err = check_attach_refused(
        json!([{"name": "cfg", "module": "template", "args": {"src": "nope.j2", "dest": "/x"}}]),
        &base,
        &["task 'cfg'", "nope.j2"],
    );
    match err {
        PlanError::MissingFile { searched, task, .. } => {
            assert_eq!(task, "cfg");
            assert_eq!(
                searched,
                vec![base.join("templates/nope.j2"), base.join("nope.j2")]
            );
        }
        other => panic!("{other:?}"),
    }
    let err = check_attach_refused(
        json!([{"module": "copy", "args": {"src": "gone.txt", "dest": "/x"}}]),
        &base,
        &["task 'copy'"],
    );
    assert!(
        matches!(&err, PlanError::MissingFile { searched, .. }
            if *searched == vec![base.join("files/gone.txt"), base.join("gone.txt")]),
        "{err:?}"
    );
}

#[test]
fn unusable_src_values_are_refused() {
    let base = files_base();
    let err = check_attach_refused(
        json!([{"name": "per os", "module": "template",
                "args": {"src": "{{ ansible_system | lower }}_config.j2", "dest": "/x"}}]),
        &base,
        &["task 'per os'", "templated"],
    );
    assert!(matches!(err, PlanError::TemplatedSrc { .. }));
    check_attach_refused(
        json!([{"name": "dir", "module": "template", "args": {"src": "test_files", "dest": "/x"}}]),
        &base,
        &["task 'dir'", "not a regular file"],
    );
    check_attach_refused(
        json!([{"name": "n", "module": "copy", "args": {"src": 3, "dest": "/x"}}]),
        &base,
        &["plays[0].tasks[0].args.src", "task 'n'"],
    );
}

#[test]
fn same_src_name_resolving_to_two_files_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("templates")).unwrap();
    std::fs::create_dir(dir.path().join("files")).unwrap();
    std::fs::write(dir.path().join("templates/app.conf"), "t").unwrap();
    std::fs::write(dir.path().join("files/app.conf"), "f").unwrap();
    let err = check_attach_refused(
        json!([
            {"module": "template", "args": {"src": "app.conf", "dest": "/a"}},
            {"name": "second", "module": "copy", "args": {"src": "app.conf", "dest": "/b"}}
        ]),
        dir.path(),
        &["task 'second'", "app.conf"],
    );
    assert!(matches!(err, PlanError::FileConflict { .. }));
}

#[test]
fn the_documented_example_is_a_valid_plan() {
    let doc = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../docs/plan-format.md"
    ))
    .unwrap();
    let start = doc.find("```json\n").unwrap() + "```json\n".len();
    let len = doc[start..].find("```").unwrap();
    let loaded = parse_plan(&doc[start..start + len], "docs/plan-format.md").unwrap();
    assert_eq!(loaded.source, PlanSource::Native);
    let play = &loaded.plan.plays[0];
    assert_eq!(play.tasks.len(), 3);
    assert_eq!(play.tasks[2].block.as_ref().map(Vec::len), Some(1));
    assert_eq!(
        loaded.plan.files["app.conf.j2"].content.as_deref(),
        Some("listen {{ port }}\n")
    );
}

#[test]
fn a_copied_directory_is_embedded_file_by_file_with_modes() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path();
    std::fs::create_dir_all(base.join("files/conf/sub/deeper")).unwrap();
    std::fs::write(base.join("files/conf/a.conf"), "a").unwrap();
    std::fs::write(base.join("files/conf/sub/b.bin"), [0u8, 255]).unwrap();
    std::fs::write(base.join("files/conf/sub/deeper/c.sh"), "#!/bin/sh\n").unwrap();
    std::fs::set_permissions(
        base.join("files/conf/sub/deeper/c.sh"),
        std::os::unix::fs::PermissionsExt::from_mode(0o750),
    )
    .unwrap();
    let f = |rel: &str| base.join("files/conf").join(rel);
    let want = [
        ("conf/a.conf", f("a.conf")),
        ("conf/sub/b.bin", f("sub/b.bin")),
        ("conf/sub/deeper/c.sh", f("sub/deeper/c.sh")),
    ];
    // With and without the trailing slash the names are the same.
    for src in ["conf", "conf/"] {
        check_attach(
            json!([{"module": "copy", "args": {"src": src, "dest": "/etc/app/"}}]),
            json!([]),
            base,
            &want,
        );
    }
    let mut plan = plan_with(
        json!([{"module": "copy", "args": {"src": "conf", "dest": "/etc"}}]),
        json!([]),
    );
    attach_files(&mut plan, base).unwrap();
    assert_eq!(
        plan.files["conf/sub/deeper/c.sh"].mode.as_deref(),
        Some("0750")
    );
    assert!(plan.files["conf/sub/b.bin"].base64.is_some());
}

#[test]
fn unarchive_and_script_sources_are_embedded_like_copy() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path();
    std::fs::create_dir_all(base.join("files")).unwrap();
    std::fs::write(base.join("files/app.tar.gz"), [0x1fu8, 0x8b, 8]).unwrap();
    std::fs::write(base.join("files/setup.sh"), "#!/bin/sh\necho hi\n").unwrap();
    std::fs::write(base.join("other.sh"), "#!/bin/sh\n").unwrap();
    check_attach(
        json!([
            {"module": "unarchive", "args": {"src": "app.tar.gz", "dest": "/opt"}},
            {"module": "ansible.builtin.script", "args": {"_raw_params": "setup.sh --now 1"}},
            {"module": "script", "args": {"cmd": "other.sh"}},
            {"module": "unarchive", "args": {"src": "/srv/on-host.tgz", "dest": "/opt", "remote_src": true}},
            {"module": "unarchive", "args": {"src": "/srv/old-style.tgz", "dest": "/opt", "copy": false}},
            {"module": "unarchive", "args": {"src": "https://example.invalid/a.tgz", "dest": "/opt"}}
        ]),
        json!([]),
        base,
        &[
            ("app.tar.gz", base.join("files/app.tar.gz")),
            ("other.sh", base.join("other.sh")),
            ("setup.sh", base.join("files/setup.sh")),
        ],
    );
    let err = check_attach_refused(
        json!([{"name": "gone", "module": "script", "args": {"_raw_params": "missing.sh arg"}}]),
        base,
        &["task 'gone'", "missing.sh"],
    );
    assert!(matches!(err, PlanError::MissingFile { .. }));
}

#[test]
fn each_payload_carries_directory_copies_unarchive_sources_and_scripts() {
    use crate::inventory::Inventory;
    use crate::pack::{PayloadSettings, Planner};
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path();
    std::fs::create_dir_all(base.join("files/conf/sub")).unwrap();
    std::fs::write(base.join("files/conf/a.conf"), "a").unwrap();
    std::fs::write(base.join("files/conf/sub/b.conf"), "b").unwrap();
    std::fs::write(base.join("files/app.tgz"), [0x1fu8, 0x8b]).unwrap();
    std::fs::write(base.join("files/run.sh"), "#!/bin/sh\n").unwrap();
    std::fs::write(base.join("files/unused.txt"), "not used").unwrap();
    let mut plan = plan_with(
        json!([
            {"module": "copy", "args": {"src": "conf/", "dest": "/etc/app"}},
            {"module": "unarchive", "args": {"src": "app.tgz", "dest": "/opt"}},
            {"module": "script", "args": {"_raw_params": "run.sh --fast"}},
            {"module": "copy", "args": {"src": "/etc/hostname", "dest": "/tmp/h", "remote_src": true}}
        ]),
        json!([]),
    );
    attach_files(&mut plan, base).unwrap();
    let inventory = Inventory::parse_ini("web1\n", "hosts").unwrap();
    let host = inventory.host("web1").unwrap();
    let settings = PayloadSettings {
        deployment_id: "d".into(),
        created_at: 0,
        check_mode: false,
        diff_mode: false,
    };
    let mut planner = Planner::new(&plan, &inventory, &settings).unwrap();
    let hp = planner.host_plan(host).unwrap();
    let names: Vec<&str> = hp.shared.files.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        vec!["app.tgz", "conf/a.conf", "conf/sub/b.conf", "run.sh"]
    );
}

#[test]
fn a_synchronize_push_carries_its_source_with_stamps_and_other_modes_carry_nothing() {
    use std::os::unix::fs::MetadataExt as _;
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path();
    std::fs::create_dir_all(base.join("files/site/sub")).unwrap();
    std::fs::write(base.join("files/site/sub/a.txt"), "a").unwrap();
    std::os::unix::fs::symlink("sub/a.txt", base.join("files/site/link")).unwrap();
    let mut plan = plan_with(
        json!([
            {"name": "push", "module": "ansible.posix.synchronize", "args": {"src": "site/", "dest": "/srv"}},
            {"name": "pull", "module": "synchronize", "args": {"src": "nothing-here", "dest": "/x", "mode": "pull"}},
            {"name": "there", "module": "synchronize", "args": {"src": "nor-here", "dest": "/x"}, "delegate_to": "db1"},
            {"name": "on host", "module": "synchronize", "args": {"src": "/no/such", "dest": "/x"}, "delegate_to": "{{ inventory_hostname }}"},
            {"name": "controller", "module": "synchronize", "args": {"src": "site/sub/a.txt", "dest": "/x"}, "delegate_to": "localhost"}
        ]),
        json!([]),
    );
    attach_files(&mut plan, base).unwrap();
    let names: Vec<&str> = plan.files.keys().map(String::as_str).collect();
    assert_eq!(names, ["site/link", "site/sub/a.txt"]);
    let layout = &plan.library.layout;
    assert!(layout.dirs.contains("site/sub"));
    assert_eq!(layout.links["site/link"], "sub/a.txt");
    let meta = std::fs::metadata(base.join("files/site/sub")).unwrap();
    let stamp = layout.stamps["site/sub"];
    assert_eq!(stamp.mode, Some(meta.mode() & 0o7777));
    assert_eq!(
        stamp.mtime_ns,
        meta.mtime() * 1_000_000_000 + meta.mtime_nsec()
    );
    assert_eq!(layout.stamps["site/link"].mode, None, "a link's own stamp");
    // The top, by the name the task uses and by its controller path.
    assert!(layout.stamps.contains_key("site"));
    let top = super::controller_path(&base.join("files/site"));
    assert_eq!(layout.stamps[&top], layout.stamps["site"]);
}
