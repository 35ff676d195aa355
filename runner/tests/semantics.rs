//! Data-driven tests of the executor against the results Ansible gives for the same plays.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use rustle_runner::events::{Collect, Event, Recap};
use rustle_runner::exec::{Executor, RunOptions, RunSummary};
use rustle_runner::plan::HostPlan;
use serde_json::{Value, json};
use std::path::Path;

/// One finished run: the events it emitted and its summary.
struct Run {
    events: Vec<Event>,
    summary: RunSummary,
}

impl Run {
    /// The registered result of the task (or handler) shown as `name`; the last one
    /// when several share the name.
    fn result(&self, name: &str) -> &Value {
        self.events
            .iter()
            .rev()
            .find_map(|e| match e {
                Event::Task {
                    name: n, result, ..
                } if n == name => Some(result),
                _ => None,
            })
            .unwrap_or_else(|| panic!("no task named {name:?} ran: {:#?}", self.statuses()))
    }

    /// `(name, status)` for every task event, in order. The status is Ansible's word,
    /// with `,ignored` for a failure ignore_errors let pass and `,handler` for handlers.
    fn statuses(&self) -> Vec<(String, String)> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::Task {
                    name,
                    status,
                    ignored,
                    handler,
                    ..
                } => {
                    let mut s = status.as_str().to_string();
                    if *ignored {
                        s.push_str(",ignored");
                    }
                    if *handler {
                        s.push_str(",handler");
                    }
                    Some((name.clone(), s))
                }
                _ => None,
            })
            .collect()
    }

    /// The recap in the words of Ansible's PLAY RECAP line, so tests read like its output.
    fn recap(&self) -> String {
        let r: Recap = self.summary.recap;
        // The recap event must agree with the summary the caller gets.
        let last = self.events.last().expect("no events");
        assert!(
            matches!(last, Event::Recap { recap, .. } if *recap == r),
            "the last event must be the recap"
        );
        format!(
            "ok={} changed={} unreachable={} failed={} skipped={} rescued={} ignored={}",
            r.ok, r.changed, r.unreachable, r.failed, r.skipped, r.rescued, r.ignored
        )
    }
}

/// Builds a HostPlan from the fields a test cares about (`plays`, and optionally
/// `host_vars`, `check_mode`, `files`), with the rest defaulted.
fn host_plan(v: Value) -> HostPlan {
    let mut plan = json!({
        "deployment_id": "test",
        "host": "web1",
        "created_at": 0,
        "packer_version": "0",
        "check_mode": false,
        "diff_mode": false,
        "host_vars": {"inventory_hostname": "web1"},
        "plays": [],
        "files": {},
    });
    for (k, val) in v.as_object().expect("plan must be an object") {
        plan[k] = val.clone();
    }
    serde_json::from_value(plan).expect("plan deserializes")
}

/// Runs a plan with options and checks the `(task name, status)` sequence exactly: a task
/// missing, extra or out of order fails the test. Returns the run for finer assertions.
fn check_run(plan_json: Value, opts: RunOptions, expect: &[(&str, &str)]) -> Run {
    let plan = host_plan(plan_json);
    let mut sink = Collect::default();
    let summary = Executor::new(&plan, &mut sink, opts).run();
    let run = Run {
        events: sink.0,
        summary,
    };
    let got = run.statuses();
    let want: Vec<(String, String)> = expect
        .iter()
        .map(|(n, s)| ((*n).to_string(), (*s).to_string()))
        .collect();
    assert_eq!(got, want, "task statuses differ; events: {:#?}", run.events);
    run
}

/// [`check_run`] with default options.
fn check(plan_json: Value, expect: &[(&str, &str)]) -> Run {
    check_run(plan_json, RunOptions::default(), expect)
}

/// A plan of one play with these tasks (and optional play-level fields merged in).
fn play(tasks: Value, extra: Value) -> Value {
    let mut p = json!({"name": "p", "hosts": ["all"], "tasks": tasks});
    if let Some(o) = extra.as_object() {
        for (k, v) in o {
            p[k] = v.clone();
        }
    }
    json!({"plays": [p]})
}

fn dbg(name: &str, msg: &str) -> Value {
    json!({"name": name, "module": "debug", "args": {"msg": msg}})
}

fn sh(name: &str, cmd: &str) -> Value {
    json!({"name": name, "module": "shell", "args": {"_raw_params": cmd}})
}

fn with(mut task: Value, extra: Value) -> Value {
    for (k, v) in extra.as_object().expect("object") {
        task[k] = v.clone();
    }
    task
}

fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().expect("tempdir")
}

fn p(dir: &Path, name: &str) -> String {
    dir.join(name).to_string_lossy().into_owned()
}

#[test]
fn tasks_run_in_order_and_a_failure_stops_the_host() {
    let d = tmp();
    let plan = json!({"plays": [
        {"name": "one", "tasks": [
            dbg("a", "first"),
            with(
                json!({"name": "write", "module": "copy",
                       "args": {"content": "x\n", "dest": p(d.path(), "f")}}),
                json!({"notify": ["restart"]}),
            ),
            json!({"name": "boom", "module": "command", "args": {"_raw_params": "false"}}),
            dbg("after", "never"),
        ], "handlers": [dbg("restart", "never: the host failed")]},
        {"name": "two", "tasks": [dbg("later play", "never")]},
    ]});
    let run = check(
        plan,
        &[("a", "ok"), ("write", "changed"), ("boom", "failed")],
    );
    assert!(run.summary.host_failed);
    assert_eq!(run.result("boom")["rc"], 1);
    assert_eq!(
        run.recap(),
        "ok=2 changed=1 unreachable=0 failed=1 skipped=0 rescued=0 ignored=0"
    );
}

#[test]
fn when_in_every_form() {
    let plan = json!({
        "host_vars": {"env": "prod", "inventory_hostname": "web1"},
        "plays": [{"name": "p", "vars": {"n": 3}, "tasks": [
            with(dbg("host var true", "x"), json!({"when": "env == 'prod'"})),
            with(dbg("host var false", "x"), json!({"when": "env == 'dev'"})),
            with(dbg("play var list true", "x"), json!({"when": ["n > 1", "n == 3"]})),
            with(dbg("list one false", "x"), json!({"when": ["n > 1", "n < 3"]})),
            with(dbg("bool true", "x"), json!({"when": true})),
            with(dbg("bool false", "x"), json!({"when": false})),
            with(dbg("defined", "x"), json!({"when": "env is defined"})),
            with(dbg("undefined", "x"), json!({"when": "nope is defined"})),
            with(dbg("braces accepted", "x"), json!({"when": "{{ n == 3 }}"})),
            with(sh("register", "true"), json!({"register": "r"})),
            with(dbg("rc is 0", "x"), json!({"when": "r.rc == 0"})),
            with(dbg("is changed", "x"), json!({"when": "r is changed"})),
            with(dbg("is not changed", "x"), json!({"when": "r is not changed"})),
            with(dbg("bad expression", "x"), json!({"when": "n =="})),
            dbg("not reached", "x"),
        ]}],
    });
    let run = check(
        plan,
        &[
            ("host var true", "ok"),
            ("host var false", "skipped"),
            ("play var list true", "ok"),
            ("list one false", "skipped"),
            ("bool true", "ok"),
            ("bool false", "skipped"),
            ("defined", "ok"),
            ("undefined", "skipped"),
            ("braces accepted", "ok"),
            ("register", "changed"),
            ("rc is 0", "ok"),
            ("is changed", "ok"),
            ("is not changed", "skipped"),
            ("bad expression", "failed"),
        ],
    );
    let skipped = run.result("list one false");
    assert_eq!(skipped["skip_reason"], "Conditional result was False");
    // Ansible names the first expression of the list that was false.
    assert_eq!(skipped["false_condition"], "n < 3");
    assert_eq!(skipped["changed"], false);
    assert_eq!(
        run.result("host var false")["false_condition"],
        "env == 'dev'"
    );
    let msg = run.result("bad expression")["msg"].as_str().unwrap();
    assert!(
        msg.starts_with("The conditional check 'n ==' failed"),
        "{msg}"
    );
    assert!(run.summary.host_failed);
    assert_eq!(
        run.recap(),
        "ok=8 changed=1 unreachable=0 failed=1 skipped=5 rescued=0 ignored=0"
    );
}

#[test]
fn loops() {
    let plan = play(
        json!([
            with(
                dbg("literal", "{{ item }}"),
                json!({"loop": [1, 2, 3], "register": "lit"}),
            ),
            with(
                dbg("templated with loop_var and per-item when", "{{ pkg }}"),
                json!({"loop": "{{ pkgs }}", "loop_control": {"loop_var": "pkg"},
                       "when": "pkg != 'b'", "register": "tl"}),
            ),
            with(
                sh("aggregate", "exit {{ item }}"),
                json!({"loop": [0, 1, 0], "ignore_errors": true, "register": "agg"}),
            ),
            with(dbg("empty", "x"), json!({"loop": []})),
            with(
                dbg("all items skipped", "x"),
                json!({"loop": [1, 2], "when": "item > 5"}),
            ),
            with(
                dbg(
                    "loop index",
                    "{{ ansible_loop.index }}/{{ ansible_loop.length }}"
                ),
                json!({"loop": ["x", "y"], "register": "idx",
                       "loop_control": {"extended": true}})
            ),
            with(dbg("not a list", "x"), json!({"loop": "{{ n }}"})),
        ]),
        json!({"vars": {"pkgs": ["a", "b", "c"], "n": 3}}),
    );
    let run = check(
        plan,
        &[
            ("literal", "ok"),
            ("templated with loop_var and per-item when", "ok"),
            ("aggregate", "failed,ignored"),
            ("empty", "skipped"),
            ("all items skipped", "skipped"),
            ("loop index", "ok"),
            ("not a list", "failed"),
        ],
    );
    let lit = run.result("literal");
    let msgs: Vec<&Value> = lit["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| &r["msg"])
        .collect();
    assert_eq!(msgs, [&json!(1), &json!(2), &json!(3)]);
    assert_eq!(lit["results"][2]["item"], 3);
    assert_eq!(lit["results"][0]["ansible_loop_var"], "item");
    assert_eq!(lit["msg"], "All items completed");
    assert_eq!(lit["changed"], false);

    let tl = &run.result("templated with loop_var and per-item when")["results"];
    assert_eq!(tl[0]["pkg"], "a");
    assert_eq!(tl[0]["msg"], "a");
    assert_eq!(tl[1]["skipped"], true);
    assert_eq!(tl[1]["pkg"], "b", "a skipped item still records its item");
    assert_eq!(tl[1]["false_condition"], "pkg != 'b'");
    assert_eq!(tl[2]["ansible_loop_var"], "pkg");

    let agg = run.result("aggregate");
    assert_eq!(agg["changed"], true);
    assert_eq!(agg["failed"], true);
    assert_eq!(agg["msg"], "One or more items failed");
    let rcs: Vec<i64> = agg["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["rc"].as_i64().unwrap())
        .collect();
    assert_eq!(rcs, [0, 1, 0], "a failed item does not stop the loop");

    let empty = run.result("empty");
    assert_eq!(empty["skipped_reason"], "No items in the list");
    assert_eq!(empty["results"], json!([]));
    assert_eq!(run.result("all items skipped")["msg"], "All items skipped");
    assert_eq!(run.result("loop index")["results"][1]["msg"], "2/2");

    let msg = run.result("not a list")["msg"].as_str().unwrap();
    assert!(msg.contains("requires a list"), "{msg}");
    assert!(run.summary.host_failed);
}

/// Ansible defers an undefined loop variable until after `when`: the common
/// `loop: "{{ extra }}"` + `when: extra is defined` skips instead of failing.
#[test]
fn loop_over_undefined_var_is_skipped_when_condition_false() {
    let plan = play(
        json!([
            with(
                dbg("guarded", "{{ item }}"),
                json!({"loop": "{{ extra_pkgs }}", "when": "extra_pkgs is defined"}),
            ),
            with(
                dbg("unguarded", "{{ item }}"),
                json!({"loop": "{{ extra_pkgs }}"})
            ),
        ]),
        json!({}),
    );
    let run = check(plan, &[("guarded", "skipped"), ("unguarded", "failed")]);
    assert_eq!(
        run.result("guarded")["false_condition"],
        "extra_pkgs is defined"
    );
}

#[test]
fn register_changed_when_failed_when() {
    let plan = play(
        json!([
            with(
                sh("changed_when false", "echo hi"),
                json!({"changed_when": false})
            ),
            with(
                sh("changed_when on registered", "echo hi"),
                json!({"register": "r1", "changed_when": "'hi' in r1.stdout"}),
            ),
            with(
                sh("changed_when false expr", "echo hi"),
                json!({"register": "r2", "changed_when": "r2.rc != 0"}),
            ),
            with(
                sh("rc 1 tolerated", "exit 1"),
                json!({"register": "r3", "failed_when": "r3.rc > 1", "changed_when": false}),
            ),
            with(
                sh("boom in stdout", "echo boom"),
                json!({"register": "r4", "failed_when": "'boom' in r4.stdout",
                       "ignore_errors": true}),
            ),
            with(
                dbg("sees registered", "{{ r3.rc }} {{ r1.stdout }}"),
                json!({})
            ),
            with(
                sh("failed_when list", "echo ok"),
                json!({"register": "r5", "failed_when": ["r5.rc == 0", "'nope' in r5.stdout"]}),
            ),
        ]),
        json!({}),
    );
    let run = check(
        plan,
        &[
            ("changed_when false", "ok"),
            ("changed_when on registered", "changed"),
            ("changed_when false expr", "ok"),
            ("rc 1 tolerated", "ok"),
            ("boom in stdout", "failed,ignored"),
            ("sees registered", "ok"),
            ("failed_when list", "changed"),
        ],
    );
    let r3 = run.result("rc 1 tolerated");
    assert_eq!(r3["rc"], 1);
    assert_eq!(r3["failed"], false);
    assert_eq!(r3["failed_when_result"], false);
    assert_eq!(run.result("boom in stdout")["failed_when_result"], true);
    assert_eq!(run.result("sees registered")["msg"], "1 hi");
    assert!(!run.summary.host_failed);
    // An ignored failure counts as ok and ignored (and as changed when it changed),
    // as in Ansible's strategy: a shell result is changed.
    assert_eq!(
        run.recap(),
        "ok=7 changed=3 unreachable=0 failed=0 skipped=0 rescued=0 ignored=1"
    );
}

/// Ansible's recap counts a failure that ignore_errors let pass under `ok` and
/// `ignored` (and `changed` when the result changed), not only `ignored`.
#[test]
fn ignored_failure_counts_as_ok_and_ignored() {
    let plan = play(
        json!([
            with(
                json!({"name": "fail", "module": "fail", "args": {"msg": "nope"}}),
                json!({"ignore_errors": true, "register": "f"}),
            ),
            with(
                dbg("goes on", "{{ f.msg }}"),
                json!({"when": "f is failed"})
            ),
        ]),
        json!({}),
    );
    let run = check(plan, &[("fail", "failed,ignored"), ("goes on", "ok")]);
    assert_eq!(run.result("goes on")["msg"], "nope");
    assert!(!run.summary.host_failed);
    assert_eq!(
        run.recap(),
        "ok=2 changed=0 unreachable=0 failed=0 skipped=0 rescued=0 ignored=1"
    );
}

#[test]
fn set_fact_and_variable_precedence() {
    let assert_task = |name: &str, that: Value, extra: Value| {
        with(
            json!({"name": name, "module": "assert", "args": {"that": that}}),
            extra,
        )
    };
    let plan = json!({
        "host_vars": {"a": "host", "b": "host", "c": "host", "d": "host", "e": "host"},
        "plays": [
            {"name": "one", "vars": {"b": "play", "c": "play", "d": "play", "e": "play"}, "tasks": [
                {"name": "block", "vars": {"c": "block", "d": "block", "e": "block"}, "block": [
                    assert_task(
                        "levels",
                        json!(["a == 'host'", "b == 'play'", "c == 'block'", "d == 'task'"]),
                        json!({"vars": {"d": "task"}}),
                    ),
                ]},
                json!({"name": "set", "module": "set_fact", "args": {"e": "fact", "f": "{{ b }}-x"}}),
                assert_task(
                    "fact beats task vars",
                    json!(["e == 'fact'", "f == 'play-x'"]),
                    json!({"vars": {"e": "task"}}),
                ),
                with(sh("reg", "echo one"), json!({"register": "reg"})),
            ]},
            {"name": "two", "vars": {"e": "play2"}, "tasks": [
                assert_task(
                    "facts and registered outlive the play",
                    json!(["e == 'fact'", "reg.stdout == 'one'", "b == 'host'"]),
                    json!({}),
                ),
            ]},
        ],
    });
    let run = check(
        plan,
        &[
            ("levels", "ok"),
            ("set", "ok"),
            ("fact beats task vars", "ok"),
            ("reg", "changed"),
            ("facts and registered outlive the play", "ok"),
        ],
    );
    assert_eq!(
        run.result("set")["ansible_facts"],
        json!({"e": "fact", "f": "play-x"})
    );
}

#[test]
fn a_failed_when_verdict_decides_even_when_retries_run_out() {
    // until's and loop-until's "Test access to attempts in changed_when/failed_when":
    // Ansible marks the result failed when retries run out, but TaskResult.is_failed
    // takes failed_when's verdict where there is one.
    let task = json!({"name": "t", "module": "shell", "args": {"_raw_params": "true"},
        "register": "r", "until": "1 == 0", "retries": 2, "delay": 0,
        "failed_when": "r.attempts > 6"});
    let mut looped = task.clone();
    looped["name"] = json!("looped");
    looped["loop"] = json!([1, 2]);
    let run = check(
        play(json!([task, looped]), json!({})),
        &[("t", "changed"), ("looped", "changed")],
    );
    assert_eq!(run.result("t")["failed"], json!(true));
    assert_eq!(run.result("t")["attempts"], json!(2));
}

#[test]
fn every_handler_listening_to_a_topic_runs() {
    // handlers' test_listening_handlers.yml: two handlers listen to one topic, and a
    // third to another topic notified twice.
    let plan = json!({"plays": [
        {"name": "one", "tasks": [
            with(sh("a", "true"), json!({"notify": ["t1"]})),
            with(sh("b", "true"), json!({"notify": ["t2"]})),
            with(sh("c", "true"), json!({"notify": ["t2"]})),
        ], "handlers": [
            with(dbg("l1", "one"), json!({"listen": ["t1"]})),
            with(dbg("l2", "two"), json!({"listen": ["t1"]})),
            with(dbg("l3", "three"), json!({"listen": ["t2"]})),
        ]},
    ]});
    check(
        plan,
        &[
            ("a", "changed"),
            ("b", "changed"),
            ("c", "changed"),
            ("l1", "ok,handler"),
            ("l2", "ok,handler"),
            ("l3", "ok,handler"),
        ],
    );
}

#[test]
fn handlers_run_once_in_definition_order_when_notified_by_a_change() {
    let d = tmp();
    let f = p(d.path(), "conf");
    let copy = |name: &str, content: &str, notify: Value| {
        json!({"name": name, "module": "copy", "args": {"content": content, "dest": f},
               "notify": notify})
    };
    let plan = json!({"plays": [
        {"name": "one", "tasks": [
            copy("first write", "1\n", json!(["h3", "h1"])),
            copy("same again", "1\n", json!(["h2"])),
            with(dbg("ok task", "x"), json!({"notify": ["h2"]})),
            with(sh("changes", "true"), json!({"notify": ["a topic"]})),
            copy("second write", "2\n", json!(["h1"])),
        ], "handlers": [
            dbg("h1", "one"),
            dbg("h2", "never: only ok tasks notified it"),
            dbg("h3", "three"),
            with(dbg("h4", "four"), json!({"listen": ["a topic"]})),
        ]},
        {"name": "two", "tasks": [dbg("quiet", "x")], "handlers": [dbg("h1", "not notified here")]},
    ]});
    let run = check(
        plan,
        &[
            ("first write", "changed"),
            ("same again", "ok"),
            ("ok task", "ok"),
            ("changes", "changed"),
            ("second write", "changed"),
            ("h1", "ok,handler"),
            ("h3", "ok,handler"),
            ("h4", "ok,handler"),
            ("quiet", "ok"),
        ],
    );
    assert_eq!(
        run.recap(),
        "ok=9 changed=3 unreachable=0 failed=0 skipped=0 rescued=0 ignored=0"
    );
}

#[test]
fn block_rescue_always() {
    let fail = |name: &str| json!({"name": name, "module": "fail", "args": {"msg": "boom"}});
    let plan = play(
        json!([
            {"name": "rescued block", "block": [dbg("b1", "x"), fail("b2"), dbg("b3", "never")],
             "rescue": [dbg("r1", "{{ ansible_failed_result.msg }} in {{ ansible_failed_task.name }}")],
             "always": [dbg("a1", "x")]},
            {"name": "fine block", "block": [dbg("b4", "x")],
             "rescue": [dbg("r2", "never")], "always": [dbg("a2", "x")]},
            {"name": "skipped block", "when": "false_var", "block": [dbg("b5", "x")],
             "rescue": [dbg("r3", "never")], "always": [dbg("a3", "x")]},
            dbg("after blocks", "x"),
        ]),
        json!({"vars": {"false_var": false}}),
    );
    let run = check(
        plan,
        &[
            ("b1", "ok"),
            ("b2", "failed"),
            ("r1", "ok"),
            ("a1", "ok"),
            ("b4", "ok"),
            ("a2", "ok"),
            ("b5", "skipped"),
            ("a3", "skipped"),
            ("after blocks", "ok"),
        ],
    );
    assert!(!run.summary.host_failed);
    assert_eq!(
        run.recap(),
        "ok=6 changed=0 unreachable=0 failed=0 skipped=2 rescued=1 ignored=0"
    );
    assert_eq!(run.result("r1")["msg"], "boom in b2");
}

/// Ansible sets `ansible_failed_task` and `ansible_failed_result` for the rescue section.
#[test]
fn rescue_sees_ansible_failed_result() {
    let plan = play(
        json!([
            {"block": [with(sh("cmd", "echo out; exit 3"), json!({}))],
             "rescue": [dbg("why", "{{ ansible_failed_task.name }} rc={{ ansible_failed_result.rc }} {{ ansible_failed_result.stdout }}")]},
        ]),
        json!({}),
    );
    let run = check(plan, &[("cmd", "failed"), ("why", "ok")]);
    assert_eq!(run.result("why")["msg"], "cmd rc=3 out");
}

#[test]
fn failure_in_rescue_fails_the_host_after_always() {
    let fail = |name: &str| json!({"name": name, "module": "fail", "args": {"msg": name}});
    let plan = json!({"plays": [
        {"name": "one", "tasks": [
            {"block": [fail("b")], "rescue": [fail("r")], "always": [dbg("a", "x")]},
            dbg("after", "never"),
        ]},
        {"name": "two", "tasks": [dbg("later play", "never")]},
    ]});
    let run = check(plan, &[("b", "failed"), ("r", "failed"), ("a", "ok")]);
    assert!(run.summary.host_failed);
    assert_eq!(
        run.recap(),
        "ok=1 changed=0 unreachable=0 failed=1 skipped=0 rescued=1 ignored=0"
    );
}

#[test]
fn block_without_rescue_runs_always_then_fails_the_host() {
    let plan = play(
        json!([
            {"block": [json!({"name": "b", "module": "fail", "args": {}})],
             "always": [dbg("a", "x")]},
            dbg("after", "never"),
        ]),
        json!({}),
    );
    let run = check(plan, &[("b", "failed"), ("a", "ok")]);
    assert!(run.summary.host_failed);
    assert_eq!(run.result("b")["msg"], "Failed as requested from task");
}

fn check_mode_plan(dir: &Path, plan_check_mode: bool) -> Value {
    json!({
        "check_mode": plan_check_mode,
        "plays": [{"name": "p", "tasks": [
            {"name": "copy", "module": "copy",
             "args": {"content": "x\n", "dest": p(dir, "copied")}},
            {"name": "dir", "module": "file",
             "args": {"path": p(dir, "d"), "state": "directory"}},
            sh("command", &format!("touch {}", p(dir, "touched"))),
            {"name": "real copy", "module": "copy", "check_mode": false,
             "args": {"content": "y\n", "dest": p(dir, "real")}},
            with(dbg("sees check mode", "{{ ansible_check_mode }}"), json!({})),
        ]}],
    })
}

#[test]
fn check_mode_from_plan_or_options_changes_nothing() {
    for (plan_flag, opt_flag) in [(true, false), (false, true)] {
        let d = tmp();
        let run = check_run(
            check_mode_plan(d.path(), plan_flag),
            RunOptions {
                check_mode: opt_flag,
                diff_mode: false,
            },
            &[
                ("copy", "changed"),
                ("dir", "changed"),
                ("command", "skipped"),
                ("real copy", "changed"),
                ("sees check mode", "ok"),
            ],
        );
        for f in ["copied", "d", "touched"] {
            assert!(!d.path().join(f).exists(), "{f} was created in check mode");
        }
        assert_eq!(
            std::fs::read_to_string(d.path().join("real")).unwrap(),
            "y\n"
        );
        assert_eq!(run.result("sees check mode")["msg"], true);
    }
}

/// `diff:` on a task, block or play turns diff mode on or off for those tasks whatever
/// the run says, templated as Ansible templates it; results carry the module's `diff`.
#[test]
fn diff_keyword_turns_diff_mode_on_and_off() {
    let d = tmp();
    let copy = |name: &str, file: &str| {
        json!({"name": name, "module": "copy",
               "args": {"content": "x\n", "dest": p(d.path(), file)}})
    };
    let plan = play(
        json!([
            with(copy("own", "a"), json!({"diff": "{{ show }}"})),
            copy("inherited", "b"),
            {"block": [copy("in block", "c")], "diff": false},
        ]),
        json!({"diff": true, "vars": {"show": true}}),
    );
    let run = check(
        plan,
        &[
            ("own", "changed"),
            ("inherited", "changed"),
            ("in block", "changed"),
        ],
    );
    assert_eq!(run.result("own")["diff"][0]["after"], "x\n");
    assert_eq!(run.result("inherited")["diff"][0]["before"], "");
    assert!(run.result("in block").get("diff").is_none());
    // Without the keyword, the run's setting (off here) applies.
    let plain = play(json!([copy("plain", "e")]), json!({}));
    let run = check(plain, &[("plain", "changed")]);
    assert!(run.result("plain").get("diff").is_none());
}

/// `ansible_facts` is `{}` before anything is gathered, as in Ansible: roles test
/// `when: ansible_facts == {}` to decide whether to gather.
#[test]
fn ansible_facts_is_empty_before_gathering() {
    let plan = play(
        json!([dbg("empty", "{{ ansible_facts == {} }}")]),
        json!({"gather_facts": false}),
    );
    let run = check(plan, &[("empty", "ok")]);
    assert_eq!(run.result("empty")["msg"], true);
}

/// `gather_facts` as a task runs `setup`: its facts become the host's facts.
#[test]
fn gather_facts_task_sets_facts() {
    let plan = play(
        json!([
            {"name": "gather", "module": "gather_facts",
             "args": {"gather_subset": "distribution", "parallel": true}},
            dbg("seen", "{{ ansible_distribution is defined and ansible_facts.system is defined }}"),
        ]),
        json!({}),
    );
    let run = check(plan, &[("gather", "ok"), ("seen", "ok")]);
    assert_eq!(run.result("seen")["msg"], true);
}

/// Ansible evaluates changed_when/failed_when only when the result is not skipped, so a
/// command skipped in check mode does not fail on `r.stdout` being undefined.
#[test]
fn changed_when_not_evaluated_on_skipped_result() {
    let plan = json!({"check_mode": true, "plays": [{"name": "p", "tasks": [
        with(sh("probe", "echo hi"), json!({"register": "r",
            "changed_when": "'hi' in r.stdout", "failed_when": "r.stderr != ''"})),
    ]}]});
    let run = check(plan, &[("probe", "skipped")]);
    assert!(run.result("probe").get("failed_when_result").is_none());
}

#[test]
fn retries_until() {
    let d = tmp();
    let counter = p(d.path(), "count");
    // Fails on the first attempt, succeeds from the second.
    let script = format!(
        "n=$(cat {counter} 2>/dev/null || echo 0); n=$((n+1)); echo $n > {counter}; [ $n -ge 2 ]"
    );
    let plan = play(
        json!([
            with(
                sh("second time lucky", &script),
                json!({"register": "r", "until": "r.rc == 0", "retries": 5, "delay": 0}),
            ),
            with(
                sh("never", "exit 7"),
                json!({"register": "n", "until": "n.rc == 0", "retries": 2, "delay": 0,
                       "ignore_errors": true}),
            ),
        ]),
        json!({}),
    );
    let run = check(
        plan,
        &[
            ("second time lucky", "changed"),
            ("never", "failed,ignored"),
        ],
    );
    assert_eq!(run.result("second time lucky")["attempts"], 2);
    assert_eq!(std::fs::read_to_string(&counter).unwrap().trim(), "2");
    // retries: 2 means one try and two retries; giving up, Ansible (2.18) reports
    // `attempts` as the retries made, 2, not the 3 runs.
    assert_eq!(run.result("never")["attempts"], 2);
    assert_eq!(run.result("never")["rc"], 7);
}

#[test]
fn second_run_changes_nothing() {
    let d = tmp();
    let plan = json!({
        "files": {"app.conf.j2": {"content": b"port={{ port }}\n".to_vec(), "mode": null}},
        "plays": [{"name": "p", "vars": {"port": 8080}, "tasks": [
            {"name": "dir", "module": "file", "args": {"path": p(d.path(), "etc"), "state": "directory", "mode": "0755"}},
            {"name": "copy", "module": "copy", "args": {"content": "a\n", "dest": p(d.path(), "etc/a"), "mode": "0640"}},
            {"name": "template", "module": "template", "args": {"src": "app.conf.j2", "dest": p(d.path(), "etc/app.conf")}},
            {"name": "guarded command", "module": "command",
             "args": {"_raw_params": format!("touch {}", p(d.path(), "once")), "creates": p(d.path(), "once")}},
        ]}],
    });
    let first = check(
        plan.clone(),
        &[
            ("dir", "changed"),
            ("copy", "changed"),
            ("template", "changed"),
            ("guarded command", "changed"),
        ],
    );
    assert_eq!(first.summary.recap.changed, 4);
    assert_eq!(
        std::fs::read_to_string(d.path().join("etc/app.conf")).unwrap(),
        "port=8080\n"
    );
    let second = check(
        plan,
        &[
            ("dir", "ok"),
            ("copy", "ok"),
            ("template", "ok"),
            ("guarded command", "ok"),
        ],
    );
    assert_eq!(
        second.recap(),
        "ok=4 changed=0 unreachable=0 failed=0 skipped=0 rescued=0 ignored=0"
    );
}

#[test]
fn gathered_facts_are_visible_to_when() {
    let plan = play(
        json!([
            with(
                dbg("family", "{{ ansible_os_family }}"),
                json!({"when": ["ansible_os_family is defined",
                                "ansible_facts.os_family == ansible_os_family",
                                "ansible_system == 'Linux' or ansible_system == 'Darwin'"]}),
            ),
            with(
                dbg("other family", "x"),
                json!({"when": "ansible_os_family == 'NoSuchFamily'"})
            ),
        ]),
        json!({"gather_facts": true}),
    );
    let run = check(
        plan,
        &[
            ("Gathering Facts", "ok"),
            ("family", "ok"),
            ("other family", "skipped"),
        ],
    );
    let family = run.result("family")["msg"].as_str().unwrap();
    assert!(!family.is_empty());
    assert_eq!(
        run.result("Gathering Facts")["ansible_facts"]["os_family"],
        family
    );
}

#[test]
fn templated_task_names() {
    let plan = play(
        json!([
            dbg("set {{ x }}", "x"),
            with(dbg("item {{ item }}", "x"), json!({"loop": [1]})),
            dbg("missing {{ nope }}", "x"),
        ]),
        json!({"vars": {"x": "foo"}}),
    );
    // A name referring to the loop item or an undefined variable is shown as written.
    check(
        plan,
        &[
            ("set foo", "ok"),
            ("item {{ item }}", "ok"),
            ("missing {{ nope }}", "ok"),
        ],
    );
}

fn meta(action: &str) -> Value {
    json!({"module": "meta", "args": {"_raw_params": action}})
}

#[test]
fn flush_handlers_runs_notified_handlers_mid_play_and_again_if_notified_again() {
    let plan = play(
        json!([
            with(sh("change 1", "true"), json!({"notify": ["h"]})),
            meta("flush_handlers"),
            dbg("after flush", "x"),
            with(sh("change 2", "true"), json!({"notify": ["h"]})),
            with(dbg("not notified again", "x"), json!({"notify": ["h"]})),
        ]),
        json!({"handlers": [dbg("h", "handled")]}),
    );
    let run = check(
        plan,
        &[
            ("change 1", "changed"),
            ("h", "ok,handler"),
            ("after flush", "ok"),
            ("change 2", "changed"),
            ("not notified again", "ok"),
            ("h", "ok,handler"),
        ],
    );
    // meta tasks are directives, not counted, as in Ansible's recap.
    assert_eq!(
        run.recap(),
        "ok=6 changed=2 unreachable=0 failed=0 skipped=0 rescued=0 ignored=0"
    );
}

#[test]
fn end_play_skips_the_rest_of_the_play_and_end_host_the_rest_of_the_run() {
    let second = json!({"name": "second", "tasks": [dbg("in second play", "x")]});
    let plan = json!({"plays": [
        {"name": "first", "tasks": [
            dbg("before", "x"),
            with(meta("end_play"), json!({"when": "false"})),
            dbg("still running", "x"),
            meta("end_play"),
            dbg("never", "x"),
        ]},
        second.clone(),
    ]});
    check(
        plan,
        &[
            ("before", "ok"),
            // Ansible shows a meta task its `when` skips (and counts it nowhere).
            ("meta", "skipped"),
            ("still running", "ok"),
            ("in second play", "ok"),
        ],
    );
    let plan = json!({"plays": [
        {"name": "first", "tasks": [
            {"block": [meta("end_host"), dbg("never", "x")], "always": [dbg("nor this", "x")]},
        ]},
        second,
    ]});
    let run = check(plan, &[]);
    assert!(!run.summary.host_failed, "end_host is not a failure");
}

#[test]
fn unknown_meta_action_fails_naming_it() {
    let run = check(
        play(
            json!([with(meta("end_everything"), json!({"name": "m"}))]),
            json!({}),
        ),
        &[("m", "failed")],
    );
    let msg = run.result("m")["msg"].as_str().unwrap();
    assert!(msg.contains("'end_everything'"), "{msg}");
}

#[test]
fn facts_are_gathered_only_when_the_plan_refers_to_them() {
    let unused = play(json!([dbg("plain", "x")]), json!({"gather_facts": true}));
    let run = check(unused, &[("Gathering Facts", "ok"), ("plain", "ok")]);
    assert_eq!(run.result("Gathering Facts")["ansible_facts"], json!({}));
    // A reference inside an embedded template counts too.
    let mut used = play(json!([dbg("plain", "x")]), json!({"gather_facts": true}));
    used["files"] = json!({"t.j2": {"content": b"{{ ansible_hostname }}".to_vec(), "mode": null}});
    let run = check(used, &[("Gathering Facts", "ok"), ("plain", "ok")]);
    assert!(run.result("Gathering Facts")["ansible_facts"]["hostname"].is_string());
}

/// `ansible_python` describes the host's python3 (the replace target reads
/// `ansible_python.version.major`); starting the interpreter is paid only by plans
/// that mention it.
#[test]
fn python_facts_only_for_plans_that_mention_them() {
    if !std::path::Path::new("/usr/bin/python3").is_file() {
        eprintln!("no /usr/bin/python3 here: nothing to describe");
        return;
    }
    let used = play(
        json!([dbg(
            "py",
            "{{ ansible_python.version.major }} {{ ansible_python.executable }}"
        )]),
        json!({"gather_facts": true}),
    );
    let run = check(used, &[("Gathering Facts", "ok"), ("py", "ok")]);
    assert_eq!(run.result("py")["msg"], "3 /usr/bin/python3");
    assert!(
        run.result("Gathering Facts")["ansible_facts"]["python"]["has_sslcontext"].is_boolean()
    );
    // The name spelled so that this plan does not mention it.
    let unused = play(
        json!([dbg(
            "keys",
            "{{ ansible_facts.keys() | select('match', 'pyt' ~ 'hon') | list }}"
        )]),
        json!({"gather_facts": true}),
    );
    let run = check(unused, &[("Gathering Facts", "ok"), ("keys", "ok")]);
    assert_eq!(run.result("keys")["msg"], json!([]));
}

#[test]
fn loop_control_index_var_label_extended_and_break_when() {
    let plan = play(
        json!([
            with(
                dbg("indexed", "{{ i }}:{{ item.name }}"),
                json!({"loop": [{"name": "a", "big": 1}, {"name": "b", "big": 2}],
                       "loop_control": {"index_var": "i", "label": "{{ item.name }}"},
                       "register": "indexed"}),
            ),
            with(
                dbg(
                    "extended",
                    "{{ ansible_loop.revindex }} {{ ansible_loop.previtem | default('-') }} {{ ansible_loop.allitems | default('none') }}"
                ),
                json!({"loop": ["x", "y"], "loop_control": {"extended": true, "extended_allitems": false}}),
            ),
            with(
                dbg("not extended", "{{ ansible_loop is defined }}"),
                json!({"loop": ["x"]}),
            ),
            with(
                dbg("breaks", "{{ item }}"),
                json!({"loop": [1, 2, 3, 4], "loop_control": {"break_when": "item >= 2"}}),
            ),
        ]),
        json!({}),
    );
    let run = check(
        plan,
        &[
            ("indexed", "ok"),
            ("extended", "ok"),
            ("not extended", "ok"),
            ("breaks", "ok"),
        ],
    );
    let r = &run.result("indexed")["results"];
    assert_eq!(r[1]["msg"], "1:b");
    assert_eq!(r[1]["i"], 1);
    assert_eq!(r[1]["ansible_index_var"], "i");
    assert_eq!(r[0]["_ansible_item_label"], "a");
    let r = &run.result("extended")["results"];
    assert_eq!(r[0]["msg"], "2 - none");
    assert_eq!(r[1]["msg"], "1 x none");
    assert_eq!(run.result("not extended")["results"][0]["msg"], false);
    let msgs: Vec<&Value> = run.result("breaks")["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| &r["msg"])
        .collect();
    assert_eq!(msgs, [&json!(1), &json!(2)]);
}

#[test]
fn environment_from_play_block_and_task_reaches_processes() {
    let plan = play(
        json!([
            {"block": [
                with(sh("env", "echo $A-$B-$C"), json!({"environment": {"C": "{{ c }}", "B": "task"}, "register": "e"})),
                with(sh("plain", "echo ${C:-none}"), json!({"register": "p"})),
            ], "environment": {"B": "block"}},
            with(sh("bad", "true"), json!({"environment": "not a mapping"})),
        ]),
        json!({"environment": {"A": "play", "B": "play"}, "vars": {"c": "templated"}}),
    );
    let run = check(
        plan,
        &[("env", "changed"), ("plain", "changed"), ("bad", "failed")],
    );
    assert_eq!(run.result("env")["stdout"], "play-task-templated");
    assert_eq!(run.result("plain")["stdout"], "none");
    let msg = run.result("bad")["msg"].as_str().unwrap();
    assert!(msg.contains("environment must be a mapping"), "{msg}");
}

/// Non-text environment values are exported as Python's str() gives them, as Ansible
/// does: with YAML 1.1, `B: yes` is a boolean and reaches the process as `True`
/// (ansible-core 2.18.19 prints `A=[None] B=[True] C=[1.5]` for this task).
#[test]
fn environment_values_are_exported_as_python_text() {
    let plan = play(
        json!([with(
            sh("env", "echo \"A=[$A] B=[$B] C=[$C]\""),
            json!({"environment": {"A": null, "B": true, "C": 1.5}}),
        )]),
        json!({}),
    );
    let run = check(plan, &[("env", "changed")]);
    assert_eq!(run.result("env")["stdout"], "A=[None] B=[True] C=[1.5]");
}

#[test]
fn become_user_runs_the_task_as_that_user_when_the_runner_is_root() {
    let plan = play(
        json!([
            with(
                sh("as nobody", "id -un; echo $HOME"),
                json!({"become": true, "become_user": "nobody"})
            ),
            with(
                sh("no such user", "true"),
                json!({"become": true, "become_user": "rustle-nobody-here"})
            ),
        ]),
        json!({}),
    );
    if rustle_runner::facts::current_uid() == Some(0) {
        let run = check(
            plan,
            &[("as nobody", "changed"), ("no such user", "failed")],
        );
        let out = run.result("as nobody")["stdout_lines"].clone();
        let home = rustle_runner::privilege::RunAs::lookup("nobody")
            .unwrap()
            .home;
        assert_eq!(out, json!(["nobody", home]));
        let msg = run.result("no such user")["msg"].as_str().unwrap();
        assert!(msg.contains("no such user on this host"), "{msg}");
    } else {
        // Not root: switching users is impossible, and the task says how to get there.
        let run = check(plan, &[("as nobody", "failed")]);
        let msg = run.result("as nobody")["msg"].as_str().unwrap();
        assert!(msg.contains("cannot switch users"), "{msg}");
    }
}

#[test]
fn no_log_hides_the_reported_result_but_register_keeps_it() {
    let plan = play(
        json!([
            with(
                sh("secret", "echo s3cret"),
                json!({"no_log": true, "register": "out"})
            ),
            dbg("uses it", "{{ out.stdout }}"),
        ]),
        json!({}),
    );
    let run = check(plan, &[("secret", "changed"), ("uses it", "ok")]);
    let shown = run.result("secret");
    assert!(!shown.to_string().contains("s3cret"), "{shown}");
    assert!(shown["censored"].as_str().unwrap().contains("no_log: true"));
    assert_eq!(run.result("uses it")["msg"], "s3cret");
}

#[test]
fn a_setup_task_fills_ansible_facts_as_gathering_does() {
    let plan = play(
        json!([
            {"name": "facts", "module": "setup", "args": {"gather_subset": ["!all"]}},
            dbg("both spellings", "{{ ansible_facts.system }}={{ ansible_system }}"),
        ]),
        json!({}),
    );
    let run = check(plan, &[("facts", "ok"), ("both spellings", "ok")]);
    let msg = run.result("both spellings")["msg"].as_str().unwrap();
    let (a, b) = msg.split_once('=').unwrap();
    assert!(!a.is_empty() && a == b, "{msg}");
}

#[test]
fn variables_defined_with_other_variables_render_where_they_are_used() {
    let d = tmp();
    let mut plan = play(
        json!([
            {"name": "dir", "module": "file", "args": {"path": "{{ app_dir }}", "state": "directory"}},
            {"name": "conf", "module": "template", "args": {"src": "t.j2", "dest": "{{ app_dir }}/app.conf"}},
            with(dbg("later scope wins", "{{ app_dir }}"), json!({"vars": {"base": "/elsewhere"}})),
        ]),
        json!({"vars": {"app_dir": "{{ base }}/app", "greeting": "hi {{ inventory_hostname }}"}}),
    );
    plan["host_vars"] = json!({"inventory_hostname": "web1", "base": p(d.path(), "root")});
    plan["files"] =
        json!({"t.j2": {"content": b"{{ greeting }} in {{ app_dir }}\n".to_vec(), "mode": null}});
    std::fs::create_dir(d.path().join("root")).unwrap();
    let run = check(
        plan,
        &[
            ("dir", "changed"),
            ("conf", "changed"),
            ("later scope wins", "ok"),
        ],
    );
    // Rendered with the variables in scope where it is used, as Ansible does.
    assert_eq!(run.result("later scope wins")["msg"], "/elsewhere/app");
    let app = d.path().join("root/app");
    assert!(app.is_dir(), "the directory is the rendered path");
    assert_eq!(
        std::fs::read_to_string(app.join("app.conf")).unwrap(),
        format!("hi web1 in {}\n", app.display())
    );
}

/// Keywords given as templates are evaluated on the host when the task runs, per loop
/// item, with Ansible's types. Expected statuses and values are ansible-core 2.18.19's
/// for the same play (written as a playbook; `yes_` stands for a variable "yes").
#[test]
fn templated_keywords_evaluate_when_the_task_runs() {
    let d = tmp();
    let counter = p(d.path(), "counter");
    let touched = p(d.path(), "touched");
    let tpl = |s: &str| Value::String(s.to_string());
    let plan = play(
        json!([
            with(
                sh("ignored by template", "false"),
                json!({"ignore_errors": tpl("{{ yes_ }}")}),
            ),
            {"name": "block", "ignore_errors": tpl("{{ yes_ }}"), "block": [
                sh("inherits block ignore", "false"),
                with(sh("own false beats block", "true"), json!({"ignore_errors": tpl("{{ no_ }}")})),
            ]},
            with(
                sh("retries template", "false"),
                json!({"register": "r", "until": "r.rc == 0", "retries": tpl("{{ n }}"),
                       "delay": tpl("{{ d }}"), "ignore_errors": true}),
            ),
            dbg("show attempts", "attempts {{ r.attempts }}"),
            json!({"name": "reset counter", "module": "copy",
                   "args": {"content": "", "dest": counter}}),
            with(
                sh("retries per item", &format!("echo x >> {counter}; false")),
                json!({"register": "per", "until": false, "retries": tpl("{{ idx + 1 }}"),
                       "delay": 0.01, "loop": ["a", "b"], "loop_control": {"index_var": "idx"},
                       "ignore_errors": true}),
            ),
            with(
                sh("count runs", &format!("wc -l < {counter}")),
                json!({"register": "runs"}),
            ),
            dbg("show runs", "{{ runs.stdout | trim }} {{ per.results | map(attribute='attempts') | list }}"),
            with(
                json!({"name": "retries without until", "module": "fail", "args": {"msg": "no"}}),
                json!({"retries": 2, "delay": 0.01, "register": "nu", "ignore_errors": true}),
            ),
            dbg("show nu", "attempts {{ nu.attempts }}"),
            with(
                json!({"name": "check mode template", "module": "command",
                       "args": {"_raw_params": format!("touch {touched}")}}),
                json!({"check_mode": tpl("{{ yes_ }}")}),
            ),
            with(dbg("no_log template", "secret"), json!({"no_log": tpl("{{ yes_ }}")})),
            with(
                dbg("loop control templated", "{{ x }} {{ ansible_loop.index }} {{ i }}"),
                json!({"loop": ["p", "q"], "register": "lc",
                       "loop_control": {"loop_var": tpl("{{ 'x' }}"), "index_var": tpl("{{ 'i' }}"),
                                        "extended": tpl("{{ yes_ }}"), "pause": tpl("{{ d }}")}}),
            ),
            with(
                dbg("bad flag", "x"),
                json!({"no_log": tpl("{{ 'perhaps' }}"), "ignore_errors": true}),
            ),
            with(
                dbg("bad retries", "x"),
                json!({"retries": tpl("{{ 'lots' }}"), "ignore_errors": true}),
            ),
        ]),
        json!({"vars": {"yes_": "yes", "no_": "no", "n": 2, "d": "0.01"}}),
    );
    let run = check(
        plan,
        &[
            ("ignored by template", "failed,ignored"),
            ("inherits block ignore", "failed,ignored"),
            ("own false beats block", "changed"),
            ("retries template", "failed,ignored"),
            ("show attempts", "ok"),
            ("reset counter", "changed"),
            ("retries per item", "failed,ignored"),
            ("count runs", "changed"),
            ("show runs", "ok"),
            ("retries without until", "failed,ignored"),
            ("show nu", "ok"),
            ("check mode template", "skipped"),
            ("no_log template", "ok"),
            ("loop control templated", "ok"),
            ("bad flag", "failed,ignored"),
            ("bad retries", "failed,ignored"),
        ],
    );
    assert_eq!(run.result("show attempts")["msg"], "attempts 2");
    // Item a: retries 1 (two runs, reported 1); item b: retries 2 (three runs).
    assert_eq!(run.result("show runs")["msg"], "5 [1, 2]");
    assert_eq!(run.result("show nu")["msg"], "attempts 2");
    assert!(!d.path().join("touched").exists());
    assert!(run.result("no_log template")["censored"].is_string());
    let msgs: Vec<&Value> = run.result("loop control templated")["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| &r["msg"])
        .collect();
    assert_eq!(msgs, [&json!("p 1 0"), &json!("q 2 1")]);
    // A keyword that cannot be converted: no_log hides the result (its text is true to
    // Ansible), retries fails the task with Ansible's message.
    assert!(run.result("bad flag")["censored"].is_string());
    let msg = run.result("bad retries")["msg"].as_str().unwrap();
    assert!(
        msg.starts_with(
            "the field 'retries' has an invalid value (\"{{ 'lots' }}\"), and could not be converted to int."
        ),
        "{msg}"
    );
    assert_eq!(
        run.recap(),
        "ok=15 changed=7 unreachable=0 failed=0 skipped=1 rescued=0 ignored=7"
    );
}

/// `!unsafe` text (the plan's `{"__ansible_unsafe": ...}` marker) and module results are
/// never templated: not as variables, not inside lists and mappings, not when another
/// variable or `set_fact` passes them on, not as loop items. The play is ansible-core's
/// `yaml_parsing/tasks/unsafe.yml` and `templating` checks, with the results 2.18.19
/// gives for it (written as a playbook with `!unsafe`).
#[test]
fn unsafe_text_is_never_templated() {
    let u = |s: &str| json!({ "__ansible_unsafe": s });
    let plan = play(
        json!([
            {"name": "check unsafe values", "module": "assert", "args": {"that": [
                "regstr != resolved",
                "'Fail' not in regstr",
                "'{' in regstr",
                "ulist[0] != resolved",
                "'}' in ulist[0]",
                "udict['a'] != resolved",
                "via == regstr",
            ]}},
            with(
                json!({"name": "echo braces", "module": "command",
                       "args": {"_raw_params": "echo {% raw %}{{ foo }}{% endraw %}"}}),
                json!({"register": "result"}),
            ),
            {"name": "registered text is not templated", "module": "assert",
             "args": {"that": ["result.stdout_lines|first == expected"]}},
            {"name": "keep through set_fact", "module": "set_fact",
             "args": {"sf": "{{ regstr }}", "out": "{{ result.stdout }}"}},
            dbg("show set facts", "{{ [sf, out] }}"),
            with(dbg("loop over registered lines", "{{ item }}"),
                 json!({"loop": "{{ result.stdout_lines }}"})),
            with(
                json!({"name": "unsafe argument", "module": "command",
                       "args": {"_raw_params": u("echo {{ nottemplate }}")}}),
                json!({"register": "raw"}),
            ),
            dbg("show raw", "{{ raw.stdout }}"),
        ]),
        json!({"vars": {
            "nottemplate": "FAIL",
            "resolved": "b{{nottemplate}}",
            "regstr": u("b{{nottemplate}}"),
            "ulist": [u("b{{nottemplate}}"), u("c"), u("d")],
            "udict": {"a": u("b{{nottemplate}}"), "c": u("d")},
            "via": "{{ regstr }}",
            "expected": u("{{ foo }}"),
        }}),
    );
    let run = check(
        plan,
        &[
            ("check unsafe values", "ok"),
            ("echo braces", "changed"),
            ("registered text is not templated", "ok"),
            ("keep through set_fact", "ok"),
            ("show set facts", "ok"),
            ("loop over registered lines", "ok"),
            ("unsafe argument", "changed"),
            ("show raw", "ok"),
        ],
    );
    assert_eq!(
        run.result("show set facts")["msg"],
        json!(["b{{nottemplate}}", "{{ foo }}"])
    );
    assert_eq!(
        run.result("loop over registered lines")["results"][0]["msg"],
        "{{ foo }}"
    );
    assert_eq!(run.result("show raw")["msg"], "{{ nottemplate }}");
    // set_fact's own result shows the text, not the markers.
    assert_eq!(
        run.result("keep through set_fact")["ansible_facts"]["sf"],
        "b{{nottemplate}}"
    );
    assert_eq!(
        run.recap(),
        "ok=8 changed=2 unreachable=0 failed=0 skipped=0 rescued=0 ignored=0"
    );
}

/// A condition naming something undefined fails the task instead of counting as false;
/// for changed_when/failed_when the error goes in `changed_when_result` /
/// `failed_when_result` beside the module's own result (ansible-core 2.18.19's
/// `changed_when` and `failed_when` targets, "invalid conditional").
#[test]
fn conditions_naming_undefined_variables_fail() {
    let echo = |name: &str| {
        json!({"name": name, "module": "command", "args": {"_raw_params": "echo foo"},
               "register": name, "ignore_errors": true})
    };
    let plan = play(
        json!([
            with(echo("fw"), json!({"failed_when": "boomboomboom"})),
            with(echo("cw"), json!({"changed_when": "boomboomboom"})),
            with(
                dbg("when", "x"),
                json!({"when": "nope", "ignore_errors": true})
            ),
        ]),
        json!({}),
    );
    let run = check(
        plan,
        &[
            ("fw", "failed,ignored"),
            ("cw", "failed,ignored"),
            ("when", "failed,ignored"),
        ],
    );
    let fw = run.result("fw");
    assert_eq!(fw["stdout"], "foo");
    let text = fw["failed_when_result"].as_str().unwrap();
    assert!(
        text.starts_with("The conditional check 'boomboomboom' failed. The error was: error while evaluating conditional (boomboomboom): 'boomboomboom' is undefined"),
        "{text}"
    );
    assert!(
        run.result("cw")["changed_when_result"]
            .as_str()
            .unwrap()
            .contains("'boomboomboom' is undefined")
    );
    assert!(
        run.result("when")["msg"]
            .as_str()
            .unwrap()
            .contains("'nope' is undefined")
    );
}

/// filter_core: an argument that names an undefined variable fails in Ansible's words
/// (`Base.post_validate`), which playbooks assert with `msg.startswith(...)`; a chained
/// attribute of an undefined value under `default` is not such a failure.
#[test]
fn undefined_variable_in_arguments_fails_with_ansibles_message() {
    let plan = play(
        json!([
            with(
                json!({"name": "combine", "module": "set_fact",
                       "args": {"c": "{{ {'a': 1} | combine({'key2': undef_variable}) }}"}}),
                json!({"ignore_errors": true, "register": "r"}),
            ),
            dbg(
                "chained",
                "{{ (nope | default({})).x.y | default('a') }}-{{ nope.x.y | default('b') }}"
            ),
        ]),
        json!({}),
    );
    let run = check(plan, &[("combine", "failed,ignored"), ("chained", "ok")]);
    let msg = run.result("combine")["msg"].as_str().unwrap();
    assert!(
        msg.starts_with("The task includes an option with an undefined variable"),
        "{msg}"
    );
    assert_eq!(run.result("chained")["msg"], "a-b");
}

#[test]
fn force_handlers_runs_what_a_failed_host_was_notified_of() {
    // Ansible's any_errors_fatal/36308.yml: the handler runs once, the host stays failed.
    let fail = json!({"name": "boom", "module": "fail", "args": {"msg": "boom"}});
    let tasks = json!([with(sh("notify", "true"), json!({"notify": ["h1"]})), fail]);
    let handlers = json!([dbg("h1", "handler1 ran")]);
    let run = check(
        play(
            tasks.clone(),
            json!({"force_handlers": true, "handlers": handlers}),
        ),
        &[
            ("notify", "changed"),
            ("boom", "failed"),
            ("h1", "ok,handler"),
        ],
    );
    assert!(run.summary.host_failed);
    // Without it, a failed host runs no handler.
    check(
        play(tasks, json!({"handlers": handlers})),
        &[("notify", "changed"), ("boom", "failed")],
    );
}

#[test]
fn a_modules_ansible_facts_become_host_facts_below_play_vars() {
    // package_facts target: `ansible_facts.packages` after the module. Ansible's
    // strategy puts every module's `ansible_facts` (set_fact and include_vars aside) in
    // the fact cache: `ansible_facts.<name>` and a variable of that name, ranking below
    // play vars. getent stands in (its passwd database has root everywhere).
    let assert_task =
        |name: &str, that: Value| json!({"name": name, "module": "assert", "args": {"that": that}});
    let plan = json!({
        "plays": [
            {"name": "one", "gather_facts": false, "vars": {"getent_group": "play"}, "tasks": [
                assert_task("none yet", json!(["ansible_facts.getent_passwd is undefined"])),
                json!({"name": "passwd", "module": "getent", "args": {"database": "passwd", "key": "root"}}),
                json!({"name": "group", "module": "getent", "args": {"database": "group", "key": "root"}}),
                assert_task("facts", json!([
                    "ansible_facts.getent_passwd.root[1] == '0'",
                    "getent_passwd.root[1] == '0'",
                    "ansible_facts.getent_group.root[1] == '0'",
                    "getent_group == 'play'",
                ])),
            ]},
            {"name": "two", "gather_facts": true, "tasks": [
                assert_task("gathered after a module's facts", json!([
                    "ansible_facts.os_family is defined",
                    "ansible_facts.getent_passwd.root[1] == '0'",
                ])),
                json!({"name": "clear", "module": "meta", "args": {"_raw_params": "clear_facts"}}),
                assert_task("cleared", json!(["ansible_facts.getent_passwd is undefined"])),
            ]},
        ],
    });
    check(
        plan,
        &[
            ("none yet", "ok"),
            ("passwd", "ok"),
            ("group", "ok"),
            ("facts", "ok"),
            ("Gathering Facts", "ok"),
            ("gathered after a module's facts", "ok"),
            ("cleared", "ok"),
        ],
    );
}

#[test]
fn lineinfile_warns_about_an_empty_regexp_in_its_result() {
    // lineinfile target: `warning_message in insert_empty_regexp.warnings`.
    let d = tmp();
    let f = p(d.path(), "f");
    std::fs::write(&f, "one\ntwo\n").unwrap();
    let run = check(
        play(
            json!([
                {"name": "empty", "module": "lineinfile", "args": {"path": f, "regexp": "", "line": "three"}, "register": "r"},
                {"name": "plain", "module": "lineinfile", "args": {"path": f, "line": "four"}},
            ]),
            json!({}),
        ),
        &[("empty", "changed"), ("plain", "changed")],
    );
    let w = run.result("empty")["warnings"][0].as_str().unwrap();
    assert!(
        w.starts_with("The regular expression is an empty string, which will match every line")
            && w.ends_with("use '^' to match every line in the file and avoid this warning."),
        "{w}"
    );
    assert!(run.result("plain").get("warnings").is_none());
    // The empty pattern matched every line: the last was replaced.
    assert_eq!(std::fs::read_to_string(&f).unwrap(), "one\nthree\nfour\n");
}

#[test]
fn timeout_ends_a_long_command_with_ansibles_timedout_result() {
    let d = tmp();
    let marker = p(d.path(), "after");
    let plan = play(
        json!([
            with(
                sh("slow", &format!("sleep 5; touch {marker}")),
                json!({"timeout": 1, "register": "timed", "ignore_errors": true,
                       "retries": 3, "until": "false", "delay": 0}),
            ),
            with(sh("quick", "true"), json!({"timeout": "{{ 2 + 1 }}"})),
            with(
                dbg(
                    "check",
                    "{{ timed is timedout }} {{ timed.timedout.period }}"
                ),
                json!({}),
            ),
        ]),
        json!({}),
    );
    let started = std::time::Instant::now();
    let run = check(
        plan,
        &[
            ("slow", "failed,ignored"),
            ("quick", "changed"),
            ("check", "ok"),
        ],
    );
    // One attempt, not four: Ansible's alarm ends the attempt loop.
    assert!(started.elapsed() < std::time::Duration::from_secs(4));
    assert_eq!(
        run.result("slow")["msg"],
        "The shell action failed to execute in the expected time frame (1) and was terminated"
    );
    assert_eq!(run.result("check")["msg"], "True 1");
    // The command was ended with its process group, not left to finish.
    std::thread::sleep(std::time::Duration::from_secs(5));
    assert!(!Path::new(&marker).exists());
}

#[test]
fn a_play_timeout_applies_to_its_tasks_unless_a_block_says_otherwise() {
    let plan = play(
        json!([
            with(sh("limited", "sleep 3"), json!({"ignore_errors": true})),
            {"block": [sh("unlimited", "sleep 2")], "timeout": 0},
        ]),
        json!({"timeout": 1}),
    );
    check(
        plan,
        &[("limited", "failed,ignored"), ("unlimited", "changed")],
    );
}

#[test]
fn shell_backgrounding_a_process_that_keeps_its_output_open_does_not_hang() {
    let started = std::time::Instant::now();
    let run = check(
        play(json!([sh("bg", "echo hi; sleep 30 &")]), json!({})),
        &[("bg", "changed")],
    );
    // Ansible's run_command returns once the shell has exited and its output stayed
    // quiet for a second, whatever the background process holds open.
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    assert_eq!(run.result("bg")["stdout"], "hi");
}

#[test]
fn remote_user_is_ignored_on_a_local_connection_and_refused_over_ssh_as_another_user() {
    let local = json!({
        "host_vars": {"inventory_hostname": "web1", "ansible_connection": "local"},
        "plays": [{"name": "p", "hosts": ["all"], "remote_user": "nobody-here",
                   "tasks": [with(sh("as me", "true"), json!({"remote_user": "{{ 'x' }}"}))]}]
    });
    check(local, &[("as me", "changed")]);
    let ssh = json!({
        "host_vars": {"inventory_hostname": "web1", "ansible_connection": "ssh",
                      "ansible_user": "deploy"},
        "plays": [{"name": "p", "hosts": ["all"], "remote_user": "deploy",
                   "tasks": [sh("same user", "true"),
                             with(sh("other user", "true"), json!({"remote_user": "admin"}))]}]
    });
    let run = check(ssh, &[("same user", "changed"), ("other user", "failed")]);
    let msg = run.result("other user")["msg"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(msg.contains("'admin'") && msg.contains("'deploy'"), "{msg}");
}

#[test]
fn command_module_checks_and_messages_are_ansibles() {
    let d = tmp();
    std::fs::write(d.path().join("made-1.txt"), "").unwrap();
    let dir = p(d.path(), "");
    let cmd = |name: &str, args: Value| json!({"name": name, "module": "command", "args": args});
    let shell = |name: &str, args: Value| json!({"name": name, "module": "shell", "args": args});
    let ignore = json!({"ignore_errors": true});
    let plan = play(
        json!([
            cmd(
                "executable",
                json!({"_raw_params": "echo hi", "executable": "/bogus"})
            ),
            with(cmd("nothing", json!({"chdir": "/"})), ignore.clone()),
            with(
                cmd(
                    "both",
                    json!({"_raw_params": "echo a", "argv": ["echo", "b"]})
                ),
                ignore.clone(),
            ),
            with(
                cmd(
                    "no dir",
                    json!({"_raw_params": "true", "chdir": "/no/such/dir"})
                ),
                ignore.clone(),
            ),
            cmd(
                "glob creates",
                json!({"_raw_params": "false", "chdir": dir, "creates": "made-*.txt"})
            ),
            cmd(
                "glob removes",
                json!({"_raw_params": "false", "removes": format!("{dir}/gone-*")})
            ),
            shell(
                "bash",
                json!({"_raw_params": "echo ${BASH_VERSION:+bash}", "executable": "/bin/bash"})
            ),
            with(
                shell(
                    "no expand",
                    json!({"_raw_params": "true", "expand_argument_vars": false})
                ),
                ignore,
            ),
        ]),
        json!({}),
    );
    let run = check(
        plan,
        &[
            ("executable", "changed"),
            ("nothing", "failed,ignored"),
            ("both", "failed,ignored"),
            ("no dir", "failed,ignored"),
            ("glob creates", "ok"),
            ("glob removes", "ok"),
            ("bash", "changed"),
            ("no expand", "failed,ignored"),
        ],
    );
    let r = run.result("executable");
    assert_eq!(r["stdout"], "hi");
    assert_eq!(
        r["warnings"][0],
        "As of Ansible 2.4, the parameter 'executable' is no longer supported with the 'command' module. Not using '/bogus'."
    );
    assert_eq!(run.result("nothing")["msg"], "no command given");
    assert_eq!(run.result("nothing")["rc"], 256);
    assert_eq!(
        run.result("both")["msg"],
        "only command or argv can be given, not both"
    );
    assert_eq!(run.result("both")["rc"], 256);
    assert_eq!(
        run.result("no dir")["msg"],
        "Unable to change directory before execution: [Errno 2] No such file or directory: b'/no/such/dir'"
    );
    assert_eq!(
        run.result("glob creates")["msg"],
        "Did not run command since 'made-*.txt' exists"
    );
    assert_eq!(
        run.result("glob creates")["stdout"],
        "skipped, since made-*.txt exists"
    );
    assert_eq!(
        run.result("glob removes")["msg"],
        format!("Did not run command since '{dir}/gone-*' does not exist")
    );
    assert_eq!(run.result("bash")["stdout"], "bash");
    assert_eq!(
        run.result("no expand")["msg"],
        "Unsupported parameters for (shell) module: expand_argument_vars"
    );
}

#[test]
fn command_expands_variables_from_the_tasks_environment() {
    let cmd = json!({"name": "expand", "module": "command",
                     "args": {"_raw_params": "/bin/sh -c 'echo \"\\$TEST\"'"},
                     "environment": {"TEST": "z"}});
    let kept = json!({"name": "kept", "module": "command",
                      "args": {"_raw_params": "echo $TEST", "expand_argument_vars": false},
                      "environment": {"TEST": "z"}});
    let run = check(
        play(json!([cmd, kept]), json!({})),
        &[("expand", "changed"), ("kept", "changed")],
    );
    // Python's expandvars leaves the backslash; the shell then prints it.
    assert_eq!(run.result("expand")["stdout"], "\\z");
    assert_eq!(run.result("kept")["stdout"], "$TEST");
}

#[test]
fn copy_argument_checks_are_the_copy_actions() {
    let d = tmp();
    let dest = p(d.path(), "out");
    let copy = |name: &str, args: Value| json!({"name": name, "module": "copy", "args": args, "ignore_errors": true});
    let plan = play(
        json!([
            copy("empty src", json!({"src": "", "dest": dest})),
            copy("no dest", json!({"content": "x"})),
            copy("both", json!({"content": "x", "src": "f", "dest": dest})),
            copy(
                "content to dir",
                json!({"content": "x", "dest": format!("{dest}/")})
            ),
            copy(
                "internal",
                json!({"content": "x", "dest": dest, "_original_basename": "f"})
            ),
        ]),
        json!({}),
    );
    let run = check(
        plan,
        &[
            ("empty src", "failed,ignored"),
            ("no dest", "failed,ignored"),
            ("both", "failed,ignored"),
            ("content to dir", "failed,ignored"),
            ("internal", "failed,ignored"),
        ],
    );
    assert_eq!(
        run.result("empty src")["msg"],
        "src (or content) is required"
    );
    assert_eq!(run.result("no dest")["msg"], "dest is required");
    assert_eq!(
        run.result("both")["msg"],
        "src and content are mutually exclusive"
    );
    assert_eq!(
        run.result("content to dir")["msg"],
        "can not use content with a dir as dest"
    );
    assert_eq!(
        run.result("internal")["msg"],
        "Invalid parameter specified: \"_original_basename\""
    );
    assert!(!Path::new(&dest).exists());
}

#[test]
fn copy_expands_variables_and_tilde_in_remote_src_and_dest() {
    let d = tmp();
    std::fs::write(d.path().join("a"), "A").unwrap();
    let task = json!({"name": "dup", "module": "copy",
                      "args": {"src": "$SRCDIR/a", "dest": "${SRCDIR}/b", "remote_src": true},
                      "environment": {"SRCDIR": p(d.path(), "")}});
    let run = check(play(json!([task]), json!({})), &[("dup", "changed")]);
    assert_eq!(std::fs::read_to_string(d.path().join("b")).unwrap(), "A");
    assert!(run.result("dup")["dest"].as_str().unwrap().ends_with("/b"));
}

#[test]
fn copy_reports_the_legacy_md5sum_when_it_writes() {
    let d = tmp();
    let dest = p(d.path(), "f");
    let task = |name: &str| json!({"name": name, "module": "copy", "args": {"content": "foo.txt\n", "dest": dest}});
    let run = check(
        play(json!([task("first"), task("again")]), json!({})),
        &[("first", "changed"), ("again", "ok")],
    );
    // md5 of "foo.txt\n" (md5sum(1) gives the same).
    assert_eq!(
        run.result("first")["md5sum"],
        "c47397529fe81ab62ba3f85e9f4c71f2"
    );
    assert!(run.result("again").get("md5sum").is_none());
}

#[test]
fn copy_takes_decrypt_and_copies_a_vaulted_file_only_without_it() {
    let d = tmp();
    let vaulted = b"$ANSIBLE_VAULT;1.1;AES256\n6162\n".to_vec();
    let copy = |name: &str, dest: &str, extra: Value| {
        let mut args = json!({"src": "secret", "dest": p(d.path(), dest)});
        for (k, v) in extra.as_object().unwrap() {
            args[k] = v.clone();
        }
        json!({"name": name, "module": "copy", "args": args, "ignore_errors": true})
    };
    let mut plan = play(
        json!([
            copy("as is", "raw", json!({"decrypt": false})),
            copy("decrypted", "plain", json!({})),
        ]),
        json!({}),
    );
    plan["files"] = json!({"secret": {"content": vaulted, "mode": null}});
    let run = check(
        plan,
        &[("as is", "changed"), ("decrypted", "failed,ignored")],
    );
    assert_eq!(
        std::fs::read(d.path().join("raw")).unwrap(),
        b"$ANSIBLE_VAULT;1.1;AES256\n6162\n"
    );
    assert!(!d.path().join("plain").exists());
    assert_eq!(
        run.result("decrypted")["msg"],
        "A vault password or secret must be specified to decrypt secret"
    );
}

/// loops: `ansible_loop_var` and `ansible_index_var` name the loop's variables inside
/// each item's task, as Ansible's `_run_loop` sets them.
#[test]
fn loop_variable_names_are_visible_inside_the_loop() {
    let plan = play(
        json!([with(
            dbg(
                "names",
                "{{ ansible_loop_var }}={{ alvin }} {{ ansible_index_var }}={{ i }}"
            ),
            json!({"loop": ["a"], "register": "r",
                   "loop_control": {"loop_var": "alvin", "index_var": "i"}}),
        )]),
        json!({}),
    );
    let run = check(plan, &[("names", "ok")]);
    assert_eq!(run.result("names")["results"][0]["msg"], "alvin=a i=0");
}

/// omit: a task's `become: '{{ omit }}'` is unset, so the play's `become` applies (here
/// to a user that does not exist, which fails), where `become: false` turns it off.
#[test]
fn become_that_renders_to_omit_inherits_the_plays() {
    let plan = play(
        json!([
            with(
                dbg("omitted", "x"),
                json!({"become": "{{ omit }}", "ignore_errors": true}),
            ),
            with(dbg("explicit no", "x"), json!({"become": false})),
        ]),
        json!({"become": true, "become_user": "rustle_no_such_user_x"}),
    );
    let run = check(
        plan,
        &[("omitted", "failed,ignored"), ("explicit no", "ok")],
    );
    let msg = run.result("omitted")["msg"].as_str().unwrap();
    assert!(msg.contains("rustle_no_such_user_x"), "{msg}");
}

/// A sink with a controller channel that answers `lookup` requests as the deployer
/// does for `pipe`: it runs each term with `sh -c` and answers with its output.
#[derive(Default)]
struct PipeAnswering {
    events: Vec<Event>,
    asked: Vec<rustle_runner::events::Request>,
}

impl rustle_runner::events::Sink for PipeAnswering {
    fn emit(&mut self, event: &Event) {
        self.events.push(event.clone());
    }

    fn request(
        &mut self,
        request: rustle_runner::events::Request,
    ) -> Result<rustle_runner::events::Answer, String> {
        self.asked.push(request.clone());
        let mut call = *request.lookup.clone().ok_or("not a lookup request")?;
        let mut values = Vec::new();
        for term in call.terms.as_array().ok_or("terms are not a list")? {
            let out = std::process::Command::new("sh")
                .args(["-c", term.as_str().ok_or("a term that is not text")?])
                .output()
                .map_err(|e| e.to_string())?;
            values.push(json!(
                String::from_utf8_lossy(&out.stdout).trim_end().to_string()
            ));
        }
        call.values = Some(values);
        Ok(rustle_runner::events::Answer {
            v: rustle_runner::events::EVENTS_VERSION,
            id: request.id,
            lookup: Some(call),
            ..Default::default()
        })
    }
}

/// template target ("show jinja2 version"): a controller lookup whose arguments only the
/// host knows (here a fact-like host variable) is asked of the deployer over the channel
/// with its rendered terms, and the task's arguments are rendered again with the answer;
/// without a channel it fails naming the call.
#[test]
fn a_controller_lookup_with_host_arguments_is_asked_over_the_channel() {
    let plan = play(
        json!([
            dbg(
                "version",
                "v={{ lookup('pipe', shell_cmd ~ ' ' ~ inventory_hostname) }}"
            ),
            dbg(
                "twice",
                "{{ lookup('pipe', 'echo a') }}-{{ lookup('pipe', 'echo ' ~ lookup('pipe', 'echo b')) }}"
            ),
        ]),
        json!({"vars": {"shell_cmd": "echo host"}}),
    );
    let plan = host_plan(plan);
    let mut sink = PipeAnswering::default();
    let summary = Executor::new(&plan, &mut sink, RunOptions::default()).run();
    assert!(!summary.host_failed, "{:#?}", sink.events);
    let msg = |name: &str| {
        sink.events
            .iter()
            .find_map(|e| match e {
                Event::Task {
                    name: n, result, ..
                } if n == name => Some(result["msg"].clone()),
                _ => None,
            })
            .unwrap()
    };
    assert_eq!(msg("version"), "v=host web1");
    assert_eq!(msg("twice"), "a-b");
    let first = &sink.asked[0];
    assert_eq!(first.kind, rustle_runner::events::RequestKind::Lookup);
    assert_eq!(first.task, plan.plays[0].tasks[0].channel_id());
    let call = first.lookup.as_ref().unwrap();
    assert_eq!(
        (call.lookup.as_str(), &call.terms),
        ("pipe", &json!(["echo host web1"]))
    );
    // Each call is asked once (the sink numbers requests, so only their count is ours).
    assert_eq!(sink.asked.len(), 3);

    // Without a channel the render's own error stands.
    let run = check(
        play(
            json!([dbg(
                "version",
                "{{ lookup('pipe', 'echo ' ~ inventory_hostname) }}"
            )]),
            json!({}),
        ),
        &[("version", "failed")],
    );
    let msg = run.result("version")["msg"].as_str().unwrap();
    assert!(msg.contains("needs the controller"), "{msg}");
}

/// template target: the module's Jinja settings (ansible-core's template action):
/// other delimiters, `lstrip_blocks`, `trim_blocks: false`, `newline_sequence`; an
/// output encoding rustle-deploy cannot write fails and says so.
#[test]
fn the_template_modules_jinja_settings_apply() {
    let d = tmp();
    let t = |name: &str, extra: Value| {
        let mut args = json!({"src": "t.j2", "dest": p(d.path(), name)});
        for (k, v) in extra.as_object().unwrap() {
            args[k] = v.clone();
        }
        json!({"name": name, "module": "template", "args": args})
    };
    let mut plan = play(
        json!([
            t(
                "delims",
                json!({"variable_start_string": "[%", "variable_end_string": "%]",
                               "block_start_string": "[+", "block_end_string": "+]",
                               "comment_start_string": "[#", "comment_end_string": "#]"})
            ),
            t("lstrip", json!({"lstrip_blocks": true, "src": "b.j2"})),
            t("no trim", json!({"trim_blocks": false, "src": "b.j2"})),
            t("crlf", json!({"newline_sequence": "\r\n", "src": "b.j2"})),
            t("block last", json!({"src": "l.j2"})),
            // As YAML's single quotes give it: backslash escapes, which mean the same.
            t(
                "crlf escaped",
                json!({"newline_sequence": "\\r\\n", "src": "b.j2"})
            ),
            with(
                t("sjis", json!({"output_encoding": "shift_jis"})),
                json!({"ignore_errors": true})
            ),
        ]),
        json!({"vars": {"x": "X"}}),
    );
    plan["files"] = json!({
        "t.j2": {"content": b"[# note #][+ if true +][% x %]{{ x }}[+ endif +]\n".to_vec(), "mode": null},
        "b.j2": {"content": b"a\n  {% if true %}\n{{ x }}\n  {% endif %}\nb\n".to_vec(), "mode": null},
        "l.j2": {"content": b"{% for i in [1] %}\n  {{ i }}{% endfor %}\n".to_vec(), "mode": null},
    });
    let run = check(
        plan,
        &[
            ("delims", "changed"),
            ("lstrip", "changed"),
            ("no trim", "changed"),
            ("crlf", "changed"),
            ("block last", "changed"),
            ("crlf escaped", "changed"),
            ("sjis", "failed,ignored"),
        ],
    );
    let read = |n: &str| std::fs::read_to_string(d.path().join(n)).unwrap();
    // Jinja2's output for the same templates and settings.
    assert_eq!(read("delims"), "X{{ x }}\n");
    assert_eq!(read("lstrip"), "a\nX\nb\n");
    assert_eq!(read("no trim"), "a\n  \nX\n  \nb\n");
    assert_eq!(read("crlf"), "a\r\n  X\r\n  b\r\n");
    assert_eq!(read("crlf escaped"), read("crlf"));
    // Jinja2 drops the source's final newline before trim_blocks could eat it after
    // the closing tag, and Ansible gives back only the newlines the output lacks.
    assert_eq!(read("block last"), "  1\n");
    let msg = run.result("sjis")["msg"].as_str().unwrap();
    assert!(msg.contains("shift_jis"), "{msg}");
}

/// lineinfile replaces its file through a temp file and a rename, and the file keeps
/// the POSIX ACL it had (ansible-core's lineinfile target, acls.yml: Ansible's
/// atomic_move copies the old file's extended attributes onto the new one).
#[test]
fn a_rewritten_file_keeps_its_acl() {
    let d = tmp();
    let f = p(d.path(), "test.txt");
    let plan = play(
        json!([
            {"name": "create", "module": "copy",
             "args": {"content": "TEST", "mode": "0644", "dest": f}},
            sh("acl", &format!("setfacl -m nobody:rwx '{f}'")),
            {"name": "edit", "module": "lineinfile",
             "args": {"path": f, "regexp": "TEST", "line": "UPDATE"}},
            with(sh("show", &format!("getfacl '{f}'")), json!({"register": "acls"})),
        ]),
        json!({}),
    );
    let run = check(
        plan,
        &[
            ("create", "changed"),
            ("acl", "changed"),
            ("edit", "changed"),
            ("show", "changed"),
        ],
    );
    assert_eq!(std::fs::read_to_string(&f).unwrap(), "UPDATE\n");
    let acl = run.result("show")["stdout"].as_str().unwrap().to_string();
    for line in ["user::rw-", "user:nobody:rwx", "group::r--", "other::r--"] {
        assert!(
            acl.lines().any(|l| l == line),
            "{line} missing from:\n{acl}"
        );
    }
}

/// Task events say the role a task (or a role's handler) belongs to, which Ansible shows
/// as `role : name`; tasks of the play itself, and the handlers it defines, have none.
#[test]
fn task_events_name_the_role_of_role_tasks_and_role_handlers() {
    let role = json!({"role": {"name": "r", "path": "/p/roles/r"}});
    let plan = play(
        json!([
            {"block": [with(sh("in role", "true"), json!({"notify": ["rh", "ph"]}))],
             "origin": role},
            dbg("in play", "x"),
        ]),
        json!({"handlers": [
            with(dbg("rh", "role handler"), json!({"origin": role})),
            dbg("ph", "play handler"),
        ]}),
    );
    let run = check(
        plan,
        &[
            ("in role", "changed"),
            ("in play", "ok"),
            ("rh", "ok,handler"),
            ("ph", "ok,handler"),
        ],
    );
    let roles: Vec<(String, Option<String>)> = run
        .events
        .iter()
        .filter_map(|e| match e {
            Event::Task { name, role, .. } => Some((name.clone(), role.clone())),
            _ => None,
        })
        .collect();
    let r = Some("r".to_string());
    assert_eq!(
        roles,
        vec![
            ("in role".into(), r.clone()),
            ("in play".into(), None),
            ("rh".into(), r),
            ("ph".into(), None),
        ]
    );
}

/// handlers target (test_handlers_listen.yml): a notification wakes the first handler of
/// its name only, and each handler listening to it, but of listeners sharing a name only
/// the first (Ansible 2.18's `search_handlers_by_notification` over one block).
#[test]
fn a_notification_wakes_one_handler_of_its_name_and_its_listeners_once_per_name() {
    let plan = play(
        json!([with(sh("notify", "true"), json!({"notify": ["topic"]}))]),
        json!({"handlers": [
            dbg("topic", "first of the name"),
            dbg("topic", "second of the name"),
            with(dbg("listener", "first listener"), json!({"listen": ["topic"]})),
            with(dbg("listener", "same-named listener"), json!({"listen": ["topic"]})),
            with(dbg("other", "another listener"), json!({"listen": ["topic"]})),
            with(dbg("elsewhere", "not notified"), json!({"listen": ["nothing"]})),
        ]}),
    );
    let run = check(
        plan,
        &[
            ("notify", "changed"),
            ("topic", "ok,handler"),
            ("listener", "ok,handler"),
            ("other", "ok,handler"),
        ],
    );
    assert_eq!(run.result("topic")["msg"], "first of the name");
    assert_eq!(run.result("listener")["msg"], "first listener");
}

/// The events that are neither tasks nor the recap: `(type, msg)` of the warnings and
/// errors the runner gave.
fn notes(run: &Run) -> Vec<(&'static str, String)> {
    run.events
        .iter()
        .filter_map(|e| match e {
            Event::Warning { msg, .. } => Some(("warning", msg.clone())),
            Event::Error { msg, .. } => Some(("error", msg.clone())),
            _ => None,
        })
        .collect()
}

#[test]
fn notifying_a_handler_nobody_defines_ends_the_run_with_ansibles_error() {
    // handlers target (test_handlers_inexistent_notify.yml): ansible-playbook stops with
    // "ERROR! The requested handler ... was not found ..." as soon as the changed task's
    // result comes in: nothing else runs, not even the handlers notified before.
    let tasks = json!([
        with(sh("first", "true"), json!({"notify": ["h"]})),
        with(
            sh("notifies nothing", "true"),
            json!({"notify": ["missing one"]})
        ),
        dbg("after", "never"),
    ]);
    let handlers = json!({"handlers": [dbg("h", "never: the run ended")]});
    let run = check(
        play(tasks.clone(), handlers.clone()),
        &[("first", "changed")],
    );
    assert!(run.summary.host_failed);
    assert_eq!(
        notes(&run),
        [(
            "error",
            "The requested handler 'missing one' was not found in either the main handlers list nor in the listening handlers list".to_string()
        )]
    );
    // An unchanged task notifies nothing, so names nothing missing either.
    let quiet = json!([with(
        sh("unchanged", "true"),
        json!({"notify": ["missing one"], "changed_when": false})
    )]);
    check(play(quiet, json!({})), &[("unchanged", "ok")]);
    // ANSIBLE_ERROR_ON_MISSING_HANDLER=false: a warning, and the play goes on.
    let mut warns = handlers.clone();
    warns["missing_handler_warns"] = json!(true);
    let run = check(
        play(tasks, warns),
        &[
            ("first", "changed"),
            ("notifies nothing", "changed"),
            ("after", "ok"),
            ("h", "ok,handler"),
        ],
    );
    assert!(!run.summary.host_failed);
    assert_eq!(notes(&run)[0].0, "warning");
    assert!(notes(&run)[0].1.contains("'missing one' was not found"));
}

#[test]
fn notify_and_handler_names_are_templated_but_listen_topics_are_not() {
    // handlers target (test_templating_in_handlers.yml), as ansible-core 2.18 runs it.
    let plan = play(
        json!([
            with(
                sh("notify", "true"),
                json!({"notify": ["{{ h1 }}", "{{ h2 }}", "{{ h3 }}"]})
            ),
            with(
                sh("notify a list", "true"),
                json!({"notify": ["{{ names }}"]})
            ),
        ]),
        json!({
            "vars": {"h1": "name1", "h2": "name2", "h3": "name3",
                     "names": ["name5", "name6"]},
            "missing_handler_warns": true,
            "handlers": [
                dbg("name1", "plain name"),
                dbg("{{ h2 }}", "templated name"),
                with(dbg("listener", "plain topic"), json!({"listen": ["name3"]})),
                with(dbg("templated listener", "never"), json!({"listen": ["{{ h1 }}"]})),
                dbg("name5", "five"),
                with(dbg("six", "six"), json!({"listen": ["name6"]})),
            ]
        }),
    );
    check(
        plan,
        &[
            ("notify", "changed"),
            ("notify a list", "changed"),
            ("name1", "ok,handler"),
            ("name2", "ok,handler"),
            ("listener", "ok,handler"),
            ("name5", "ok,handler"),
            ("six", "ok,handler"),
        ],
    );
}

#[test]
fn a_handler_name_that_cannot_be_templated_is_unusable_and_warned_about() {
    // handlers target (58841.yml): a handler's name is templated without the host's
    // variables, so one naming a registered value cannot be; that handler is skipped
    // (warned about, as it has no listen topic) and the next one of the name answers.
    let plan = play(
        json!([
            with(sh("register", "true"), json!({"register": "test_var"})),
            with(sh("notify", "true"), json!({"notify": ["handler name"]})),
        ]),
        json!({"handlers": [
            dbg("handler name with {{ test_var.rc }}", "never"),
            dbg("handler name", "ran"),
        ]}),
    );
    let run = check(
        plan,
        &[
            ("register", "changed"),
            ("notify", "changed"),
            ("handler name", "ok,handler"),
        ],
    );
    let notes = notes(&run);
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert!(
        notes[0]
            .1
            .starts_with("Handler 'handler name with {{ test_var.rc }}' is unusable"),
        "{notes:?}"
    );
    // With the variable in the play's (extra) vars, the templated name answers.
    let plan = play(
        json!([with(
            sh("notify", "true"),
            json!({"notify": ["handler name with myvar"]})
        )]),
        json!({"vars": {"test_var": "myvar"}, "handlers": [
            dbg("handler name with {{ test_var }}", "ran"),
        ]}),
    );
    check(
        plan,
        &[
            ("notify", "changed"),
            ("handler name with myvar", "ok,handler"),
        ],
    );
}

#[test]
fn role_handlers_answer_to_role_prefixed_names_and_topics() {
    // handlers target (test_handlers_listen.yml): `role : name` and `role : topic`, a
    // collection's role by its FQCN and by its short name; a by-name notification wakes
    // the first handler of the name only, a topic every listener.
    let role = json!({"role": {"name": "ns.col.r", "path": "/p/roles/r"}});
    let plan = play(
        json!([
            with(sh("by fqcn", "true"), json!({"notify": ["ns.col.r : h"]})),
            with(
                sh("by short name", "true"),
                json!({"notify": ["r : topic"]})
            ),
        ]),
        json!({"handlers": [
            with(dbg("h", "role handler"), json!({"origin": role, "listen": ["topic"]})),
            with(dbg("other", "listens too"), json!({"origin": role, "listen": ["topic"]})),
        ]}),
    );
    check(
        plan,
        &[
            ("by fqcn", "changed"),
            ("by short name", "changed"),
            ("h", "ok,handler"),
            ("other", "ok,handler"),
        ],
    );
    // Another role's prefix names nothing.
    let plan = play(
        json!([with(sh("wrong role", "true"), json!({"notify": ["x : h"]}))]),
        json!({"handlers": [with(dbg("h", "never"), json!({"origin": role}))]}),
    );
    let run = check(plan, &[]);
    assert!(notes(&run)[0].1.contains("'x : h' was not found"));
}

#[test]
fn a_handler_notifying_an_earlier_one_gets_it_run_by_the_next_implicit_flush() {
    // handlers target (handler_notify_earlier_handler.yml, test_handlers_infinite_loop.yml):
    // a play of `tasks` alone has two implicit flushes after them (after tasks, after the
    // empty post_tasks); what a handler notifies behind it waits for the next one.
    let plan = |end_flushes: Value| {
        play(
            json!([with(sh("t", "true"), json!({"notify": ["h2", "self"]}))]),
            json!({"end_flushes": end_flushes, "handlers": [
                dbg("h1", "earlier"),
                with(dbg("h2", "notifies h1"), json!({"changed_when": true, "notify": ["h1"]})),
                with(dbg("self", "again"), json!({"changed_when": true, "notify": ["self"]})),
            ]}),
        )
    };
    check(
        plan(json!(2)),
        &[
            ("t", "changed"),
            ("h2", "changed,handler"),
            ("self", "changed,handler"),
            ("h1", "ok,handler"),
            ("self", "changed,handler"),
        ],
    );
    // One flush left (post_tasks ran last): the earlier handler never gets its turn.
    check(
        plan(Value::Null),
        &[
            ("t", "changed"),
            ("h2", "changed,handler"),
            ("self", "changed,handler"),
        ],
    );
}

#[test]
fn flush_handlers_run_as_a_handler_ends_the_run_with_ansibles_error() {
    // handlers target (test_flush_handlers_as_handler.yml).
    let plan = play(
        json!([
            with(sh("t", "true"), json!({"notify": ["h", "later handler"]})),
            dbg("before the flush", "runs"),
        ]),
        json!({"handlers": [
            {"name": "h", "module": "meta", "args": {"_raw_params": "flush_handlers"}},
            dbg("later handler", "never"),
        ]}),
    );
    let run = check(plan, &[("t", "changed"), ("before the flush", "ok")]);
    assert!(run.summary.host_failed);
    assert_eq!(
        notes(&run),
        [(
            "error",
            "flush_handlers cannot be used as a handler".to_string()
        )]
    );
}

#[test]
fn including_a_file_ansible_refuses_ends_the_run_with_its_error() {
    // handlers target (test_block_as_handler-include.yml): the packer read the file a
    // handler includes as Ansible does and refused it in Ansible's words; including it
    // ends the run with that error, as ansible-playbook's parser error does.
    let mut plan = play(
        json!([
            with(sh("t", "true"), json!({"notify": ["h"]})),
            dbg("before the handlers", "runs"),
        ]),
        json!({"handlers": [
            {"name": "h", "module": "include_tasks", "args": {"_raw_params": "/p/h.yml"}},
        ]}),
    );
    plan["library"] = json!({"tasks": {
        "/p/h.yml": {"ansible": "Using a block as a handler is not supported.\n\nThe error appears to be in /p/h.yml:4"}
    }});
    let run = check(plan, &[("t", "changed"), ("before the handlers", "ok")]);
    assert!(run.summary.host_failed);
    let notes = notes(&run);
    assert_eq!(notes[0].0, "error");
    assert!(
        notes[0]
            .1
            .starts_with("Using a block as a handler is not supported."),
        "{notes:?}"
    );
}

#[test]
fn a_handler_failing_in_a_blocks_flush_goes_to_its_rescue_and_still_counts_as_failed() {
    // handlers target (test_flush_handlers_rescue_always.yml), as ansible-playbook 2.18
    // counts it: the rescue and always run and the play goes on, but the recap keeps
    // the handler's failure and counts no rescue.
    let plan = play(
        json!([
            {"block": [
                with(sh("t", "true"), json!({"notify": ["h"]})),
                {"module": "meta", "args": {"_raw_params": "flush_handlers"}},
            ], "rescue": [dbg("rescue", "rescue ran")], "always": [dbg("always", "always ran")]},
            dbg("after", "runs"),
        ]),
        json!({"handlers": [
            {"name": "h", "module": "fail", "args": {}},
        ]}),
    );
    let run = check(
        plan,
        &[
            ("t", "changed"),
            ("h", "failed,handler"),
            ("rescue", "ok"),
            ("always", "ok"),
            ("after", "ok"),
        ],
    );
    assert!(!run.summary.host_failed);
    assert_eq!(
        run.recap(),
        "ok=4 changed=1 unreachable=0 failed=1 skipped=0 rescued=0 ignored=0"
    );
}

/// A wheel of the project `rustle-probe` at `version` in `dir`, made by the host's
/// Python (zipfile), so pip installs it with no index.
fn probe_wheel(dir: &Path, version: &str) -> String {
    let wheel = dir.join(format!("rustle_probe-{version}-py3-none-any.whl"));
    let script = format!(
        "import zipfile\n\
         with zipfile.ZipFile({w:?}, 'w') as z:\n\
         \x20   z.writestr('rustle_probe/__init__.py', 'V = {version:?}\\n')\n\
         \x20   d = 'rustle_probe-{version}.dist-info/'\n\
         \x20   z.writestr(d + 'METADATA', 'Metadata-Version: 2.1\\nName: rustle-probe\\nVersion: {version}\\n')\n\
         \x20   z.writestr(d + 'WHEEL', 'Wheel-Version: 1.0\\nGenerator: test\\nRoot-Is-Purelib: true\\nTag: py3-none-any\\n')\n\
         \x20   z.writestr(d + 'RECORD', '')\n",
        w = wheel.to_str().unwrap()
    );
    let ok = std::process::Command::new("python3")
        .args(["-c", &script])
        .status()
        .unwrap();
    assert!(ok.success());
    wheel.to_string_lossy().into_owned()
}

#[test]
fn pip_installs_into_a_virtualenv_it_makes_and_reports_changes_as_ansible_does() {
    let d = tmp();
    let venv = p(d.path(), "venv");
    let wheel = probe_wheel(d.path(), "1.0");
    let pip = |name: &str, args: Value| {
        let mut a = json!({"virtualenv": venv, "virtualenv_command": "python3 -m venv",
                           "extra_args": "--no-index"});
        for (k, v) in args.as_object().unwrap() {
            a[k] = v.clone();
        }
        with(
            json!({"name": name, "module": "pip", "args": a}),
            json!({"register": name.replace(' ', "_")}),
        )
    };
    let plan = play(
        json!([
            pip("install", json!({"name": [wheel]})),
            pip("again", json!({"name": "rustle-probe", "state": "present"})),
            with(
                pip(
                    "check absent",
                    json!({"name": "rustle-probe", "state": "absent", "extra_args": ""})
                ),
                json!({"check_mode": true}),
            ),
            with(
                pip(
                    "check other",
                    json!({"name": "rustle-probe>=2", "extra_args": ""})
                ),
                json!({"check_mode": true}),
            ),
            pip(
                "remove",
                json!({"name": "rustle-probe", "state": "absent", "extra_args": ""})
            ),
            pip(
                "remove again",
                json!({"name": "rustle-probe", "state": "absent", "extra_args": ""})
            ),
        ]),
        json!({}),
    );
    let run = check(
        plan,
        &[
            ("install", "changed"),
            ("again", "ok"),
            ("check absent", "changed"),
            ("check other", "changed"),
            ("remove", "changed"),
            ("remove again", "ok"),
        ],
    );
    let install = run.result("install");
    assert!(Path::new(&venv).join("bin/activate").exists(), "{install}");
    assert_eq!(install["virtualenv"], venv.as_str());
    assert_eq!(install["state"], "present");
    let cmd: Vec<&str> = install["cmd"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(cmd.first(), Some(&format!("{venv}/bin/pip3").as_str()));
    assert!(
        cmd.ends_with(&["install", "--no-index", wheel.as_str()]),
        "{cmd:?}"
    );
    assert!(
        run.result("remove")["stdout"]
            .as_str()
            .unwrap()
            .contains("Successfully uninstalled")
    );
    // The package is gone from the virtualenv as its own pip sees it.
    let listed = std::process::Command::new(format!("{venv}/bin/pip"))
        .args(["list", "--format=freeze"])
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&listed.stdout).contains("rustle-probe"));
}

/// A `!vault` value the packer had no password for (the plan's `{"__ansible_vault": ...}`)
/// stays encrypted, as ansible-core 2.18's `AnsibleVaultEncryptedUnicode` does: a play
/// that never uses it runs, `unvault` opens it with the password it is given,
/// `type_debug` and `vault_encrypted` see an encrypted value, and every use of its text
/// (in text, through a filter, `set_fact`, `debug: var=`) fails with Ansible's words for
/// a missing secret. (Statuses and messages are what ansible-playbook 2.18.19 gave for
/// the same tasks and no vault password.)
#[test]
fn a_vault_value_without_its_password_is_decrypted_only_by_unvault() {
    // `'secret' | vault('test', salt=7)` as ansible-core writes it (the vars of its
    // filter_encryption integration target).
    let sealed = "$ANSIBLE_VAULT;1.2;AES256;filter_default\n\
        33370a34333734353636633035656232613935353432656132646533346233326431346232616261\n\
        6133383034376566366261316365633931356133633337396363370a376664386236313834326561\n\
        6338373864623763613165366636633031303739\n";
    let assert =
        |name: &str, that: Value| json!({"name": name, "module": "assert", "args": {"that": that}});
    let ignored = |task: Value| with(task, json!({"ignore_errors": true}));
    let run = check(
        play(
            json!([
                dbg("unused", "the play runs"),
                assert(
                    "opened",
                    json!([
                        "sealed | unvault('test') == 'secret'",
                        "sealed | type_debug == 'AnsibleVaultEncryptedUnicode'",
                        "sealed | default('d') | type_debug == 'AnsibleVaultEncryptedUnicode'",
                        "[sealed] | type_debug == 'list'",
                        "sealed is vault_encrypted",
                        "sealed is not string",
                        "('x' | vault('p', wrap_object=True)) is not vault_encrypted",
                        "('x' | vault('p', wrap_object=True)) | unvault('p') == 'x'",
                    ])
                ),
                ignored(dbg("as text", "password={{ sealed }}")),
                ignored(dbg("filtered", "{{ sealed | upper }}")),
                ignored(dbg("length", "{{ sealed | length }}")),
                ignored(json!({"name": "kept", "module": "set_fact",
                               "args": {"copy": "{{ sealed }}"}})),
                ignored(json!({"name": "shown", "module": "debug", "args": {"var": "sealed"}})),
                ignored(dbg("wrong password", "{{ sealed | unvault('nope') }}")),
            ]),
            json!({"vars": {"sealed": {"__ansible_vault": sealed}}}),
        ),
        &[
            ("unused", "ok"),
            ("opened", "ok"),
            ("as text", "failed,ignored"),
            ("filtered", "failed,ignored"),
            ("length", "failed,ignored"),
            ("kept", "failed,ignored"),
            ("shown", "failed,ignored"),
            ("wrong password", "failed,ignored"),
        ],
    );
    for name in ["as text", "filtered", "length", "kept", "shown"] {
        assert_eq!(
            run.result(name)["msg"],
            "Attempting to decrypt but no vault secrets found",
            "{name}"
        );
    }
    // An encrypted value given its own (wrong) secret fails with VaultLib's message as
    // it is, without the "Unable to decrypt" that vault text given as a string gets.
    assert_eq!(
        run.result("wrong password")["msg"],
        "Decryption failed (no vault secrets were found that could decrypt)"
    );
}

#[test]
fn a_literal_false_when_is_the_false_condition_itself() {
    // test_core's 'Assert skipped tests work': `when: false` gives `false_condition:
    // false` (the boolean), an expression gives its text, as ansible-core 2.18 records.
    let run = check(
        play(
            json!([
                with(dbg("literal", "x"), json!({"when": false, "register": "a"})),
                with(dbg("expression", "x"), json!({"when": ["True == True", "foo == 'bar'"], "vars": {"foo": "foo"}, "register": "b"})),
                {"name": "check", "module": "assert", "args": {"that": [
                    "a is skipped", "a.false_condition == False", "a.false_condition is boolean",
                    "b is skipped", "b.false_condition == \"foo == 'bar'\"",
                ]}},
            ]),
            json!({}),
        ),
        &[
            ("literal", "skipped"),
            ("expression", "skipped"),
            ("check", "ok"),
        ],
    );
    assert!(!run.summary.host_failed);
}

#[test]
fn an_include_role_of_a_role_the_controller_lacks_fails_with_ansibles_message_where_reached() {
    // any_errors_fatal's 50897.yml: the packer found the literally named role nowhere
    // and recorded Ansible's message; a host whose `when` is false skips the include,
    // one that reaches it fails with that message.
    let tasks = json!([
        {"name": "skipped here", "module": "include_role", "args": {"name": "gone"}, "when": "false"},
        {"name": "reached", "module": "include_role", "args": {"name": "gone"}},
        dbg("after", "not reached"),
    ]);
    let mut plan = play(tasks, json!({}));
    plan["library"] = json!({"missing_roles": {
        "gone": "the role 'gone' was not found in /p/roles:/p"
    }});
    let run = check(plan, &[("skipped here", "skipped"), ("reached", "failed")]);
    assert!(run.summary.host_failed);
    assert_eq!(
        run.result("reached")["msg"],
        "the role 'gone' was not found in /p/roles:/p"
    );
}

#[test]
fn a_run_of_several_playbooks_reports_the_counts_at_the_end_of_each() {
    // omit's runme.sh (`ansible-playbook 48673.yml 75692.yml`): Ansible prints a recap
    // after each playbook, counted from the start of the run. A host with no play in a
    // playbook reports nothing for it.
    let plan = json!({"plays": [
        {"name": "a", "hosts": ["all"], "tasks": [dbg("one", "1")]},
        {"name": "b", "hosts": ["all"], "playbook": 1, "tasks": [dbg("two", "2"), with(dbg("three", "3"), json!({"when": false}))]},
        {"name": "c", "hosts": ["all"], "playbook": 3, "tasks": [dbg("four", "4")]},
    ]});
    let run = check(
        plan,
        &[
            ("one", "ok"),
            ("two", "ok"),
            ("three", "skipped"),
            ("four", "ok"),
        ],
    );
    let ends: Vec<(usize, u32, u32)> = run
        .events
        .iter()
        .filter_map(|e| match e {
            Event::PlaybookEnd {
                playbook, recap, ..
            } => Some((*playbook, recap.ok, recap.skipped)),
            _ => None,
        })
        .collect();
    assert_eq!(ends, vec![(0, 1, 0), (1, 2, 1), (3, 3, 1)]);
    // A single playbook's run has its recap alone.
    let run = check(play(json!([dbg("one", "1")]), json!({})), &[("one", "ok")]);
    assert!(
        !run.events
            .iter()
            .any(|e| matches!(e, Event::PlaybookEnd { .. }))
    );
}

#[test]
fn set_fact_from_a_template_that_reads_unsafe_data_is_unsafe_as_a_whole() {
    // loops target (issue 64169), as ansible-core 2.18 runs it: hostvars leaves
    // `foo{{ version }}` as it is (`version` is no host variable). Read through the item
    // of a `with_dict` loop (a lookup's result, unsafe), the value set stays that text
    // for good; read through a `loop:` item (safe), it is rendered where it is used.
    let mut plan = play(
        json!([
            {"name": "with", "module": "set_fact", "args": {"a": "{{ hostvars[inventory_hostname][item.value] }}"},
             "loop_with": "dict", "loop": {"foo": "__foo"}},
            {"name": "loop", "module": "set_fact", "args": {"b": "{{ hostvars[inventory_hostname][item.value] }}"},
             "loop": [{"key": "foo", "value": "__foo"}]},
            {"name": "reads unsafe", "module": "set_fact", "args": {"c": "{{ [u, 'x'] }}", "d": "{{ ['x'] + __foo }}",
             "e": {"a": "{{ u }}", "b": "{{ '{{' }} version }}"}},
             "vars": {"u": {"__ansible_unsafe": "{{ version }}"}}},
            {"name": "with_ item", "module": "assert", "args": {"that": ["a[0] == raw", "a[0] != 'foo1.0'"]},
             "vars": {"raw": {"__ansible_unsafe": "foo{{ version }}"}}},
            {"name": "loop item", "module": "assert", "args": {"that": ["b[0] == 'foo1.0'"]}},
            {"name": "unsafe var", "module": "assert", "args": {"that": ["c == [u, 'x']", "d == ['x', 'foo1.0']",
                "e.a == u", "e.b == '1.0'"]},
             "vars": {"u": {"__ansible_unsafe": "{{ version }}"}}},
        ]),
        json!({"vars": {"version": "1.0"}}),
    );
    plan["host_vars"] = json!({"inventory_hostname": "web1", "__foo": ["foo{{ version }}"]});
    check(
        plan,
        &[
            ("with", "ok"),
            ("loop", "ok"),
            ("reads unsafe", "ok"),
            ("with_ item", "ok"),
            ("loop item", "ok"),
            ("unsafe var", "ok"),
        ],
    );
}

#[test]
fn a_loop_label_sees_the_items_registered_result_and_an_undefined_one_fails_the_item() {
    // loops target (issue 83619), as ansible-core 2.18 runs it: each item's result is
    // registered before the label is templated; the skipped item has no stdout, so its
    // label fails that item, with Ansible's message.
    let run = check(
        play(
            json!([
                {"name": "echo", "module": "command", "args": {"_raw_params": "echo {{ item }}"},
                 "register": "r", "loop": ["changed", "skipped"],
                 "loop_control": {"label": "{{ r.stdout }}"},
                 "when": "item == \"changed\"", "ignore_errors": true},
                {"name": "check", "module": "assert", "args": {"that": [
                    "r.results[0]._ansible_item_label == 'changed'",
                    "r['results'][1]['msg'] is contains(\"no attribute 'stdout'\")",
                    "r['results'][1]['msg'] is match('Failed to template loop_control.label: ')",
                    "r is failed",
                ]}},
            ]),
            json!({}),
        ),
        &[("echo", "failed,ignored"), ("check", "ok")],
    );
    assert!(!run.summary.host_failed);
}

#[test]
fn vars_holds_every_variable_the_task_sees_templated_ones_rendered() {
    // roles target, vars_scope.yml: Ansible's `vars` is the mapping of the variables
    // in scope (play, block, task, set_fact), read as `vars[name]` and `name in vars`;
    // a variable whose value is a template is rendered there too.
    let run = check(
        play(
            json!([
                {"name": "fact", "module": "set_fact", "args": {"from_fact": "f"}},
                with(
                    json!({"name": "check", "module": "assert", "args": {"that": [
                        "'play_var' in vars", "vars['play_var'] == 'p'",
                        "vars.task_var == 't'", "vars['from_fact'] == 'f'",
                        "vars['derived'] == 'p-t'", "'nowhere' not in vars",
                    ]}}),
                    json!({"vars": {"task_var": "t", "derived": "{{ play_var }}-{{ task_var }}"}}),
                ),
                with(
                    json!({"name": "plain", "module": "assert", "args": {"that": [
                        "vars['play_var'] == 'p'", "'task_var' not in vars",
                    ]}}),
                    json!({}),
                ),
            ]),
            json!({"vars": {"play_var": "p"}}),
        ),
        &[("fact", "ok"), ("check", "ok"), ("plain", "ok")],
    );
    assert!(!run.summary.host_failed);
}

/// template target (and ansible-core 2.18 run on these very tasks): an argument or a
/// condition that uses something undefined fails naming it as Jinja2 does: the
/// variable, or the attribute or element missing from its parent; a lookup guarded by
/// `default` is not the one named.
#[test]
fn an_undefined_variable_is_named_as_ansible_names_it() {
    let fails = |name: &str, msg: &str| with(dbg(name, msg), json!({"ignore_errors": true}));
    let run = check(
        play(
            json!([
                fails("in", "{{ 'x' in y }}"),
                fails("attr", "{{ d.b }}"),
                fails("key", "{{ d['b'].c }}"),
                fails("element", "{{ l[3] }}"),
                fails("guarded", "x {{ nope | default(d.q) }}"),
                fails("later", "{{ 'a' ~ d.a ~ nope }}"),
                with(
                    dbg("when", "x"),
                    json!({"when": "d.b == 1", "ignore_errors": true})
                ),
            ]),
            json!({"vars": {"d": {"a": 1}, "l": [1]}}),
        ),
        &[
            ("in", "failed,ignored"),
            ("attr", "failed,ignored"),
            ("key", "failed,ignored"),
            ("element", "failed,ignored"),
            ("guarded", "failed,ignored"),
            ("later", "failed,ignored"),
            ("when", "failed,ignored"),
        ],
    );
    let msg = |name: &str| run.result(name)["msg"].as_str().unwrap().to_string();
    let wrapped = |words: &str| {
        format!("The task includes an option with an undefined variable.. {words}\n\n")
    };
    // The template target asserts exactly this: "'y' is undefined\n\n" in error.msg.
    assert!(
        msg("in").starts_with(&wrapped("'y' is undefined")),
        "{}",
        msg("in")
    );
    let no_b = "'dict object' has no attribute 'b'";
    assert!(msg("attr").starts_with(&wrapped(no_b)), "{}", msg("attr"));
    assert!(msg("key").starts_with(&wrapped(no_b)), "{}", msg("key"));
    assert!(
        msg("element").starts_with(&wrapped("list object has no element 3")),
        "{}",
        msg("element")
    );
    assert!(
        msg("guarded").starts_with(&wrapped("'dict object' has no attribute 'q'")),
        "{}",
        msg("guarded")
    );
    assert!(
        msg("later").starts_with(&wrapped("'nope' is undefined")),
        "{}",
        msg("later")
    );
    assert_eq!(
        msg("when"),
        "The conditional check 'd.b == 1' failed. The error was: error while evaluating conditional (d.b == 1): 'dict object' has no attribute 'b'"
    );
}

/// test_core: a `!vault` value the packer opened with the vault password reads as its
/// plaintext everywhere (filters, comparisons, module arguments), is never templated,
/// and is `vault_encrypted` where it is used as it is (through variables and
/// `set_fact` of the value itself), as Ansible's `AnsibleVaultEncryptedUnicode` is; a string made from it
/// (`{{ v }}`, `v ~ ''`) is plain text, as the object's `.data` is in Ansible.
#[test]
fn an_opened_vault_value_reads_as_text_and_stays_vault_encrypted() {
    let opened = rustle_runner::template::opened_vault_marker(
        "s3cret {{ not_templated }}",
        "$ANSIBLE_VAULT;1.1;AES256\n6162",
    );
    let run = check(
        play(
            json!([
                {"name": "keep", "module": "set_fact",
                 "args": {"kept": opened.clone(), "copied": "{{ vaulted }}"}},
                {"name": "check", "module": "assert", "args": {"that": [
                    "vaulted is vault_encrypted",
                    "kept is vault_encrypted",
                    "alias is not vault_encrypted",
                    "copied is not vault_encrypted",
                    "(vaulted ~ '') is not vault_encrypted",
                    "inventory_hostname is not vault_encrypted",
                    "vaulted is search('^s3cret .. not_templated ..$')",
                    "vaulted | upper is search('^S3CRET .. NOT_TEMPLATED ..$')",
                    "vaulted.split(' ') | first == 's3cret'",
                    "copied == vaulted",
                ]}},
                dbg("shown", "{{ vaulted }}"),
                dbg("defaulted", "{{ vaulted | default('none') }}"),
                sh("given", "printf %s {{ vaulted | quote }}"),
            ]),
            json!({"vars": {"vaulted": opened, "alias": "{{ vaulted }}"}}),
        ),
        &[
            ("keep", "ok"),
            ("check", "ok"),
            ("shown", "ok"),
            ("defaulted", "ok"),
            ("given", "changed"),
        ],
    );
    assert_eq!(run.result("shown")["msg"], "s3cret {{ not_templated }}");
    assert_eq!(run.result("defaulted")["msg"], "s3cret {{ not_templated }}");
    assert_eq!(run.result("given")["stdout"], "s3cret {{ not_templated }}");
}
