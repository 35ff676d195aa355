//! Lookups against ansible-core 2.18.19's answers.
//!
//! `testdata/cases.json` holds expressions and `with_<lookup>` loops with the answer the
//! real Ansible gave for each (written by `testdata/ansible_reference.py`, run with the
//! `ansible-playbook` of an ansible-core 2.18.19 virtualenv, over the play variables in
//! `testdata/vars.json`). Each case is rendered here with the same variables and
//! compared, with two allowances that come from Ansible's templating, not its lookups:
//! without jinja2_native, a lone expression that gives a number or `None` comes out as
//! text (`"1"`, `""`), and an error message comes wrapped in the task's own text.

use super::*;
use serde_json::json;

const CASES: &str = include_str!("testdata/cases.json");
const VARS: &str = include_str!("testdata/vars.json");

fn context(engine: &Arc<Engine>) -> JValue {
    let Value::Object(vars) = serde_json::from_str(VARS).unwrap() else {
        panic!("vars.json is an object")
    };
    crate::lazyvars::context(&vars, engine)
}

/// Our answer to one case: the value, or the error text.
fn ours(engine: &Engine, ctx: &JValue, case: &Value) -> Result<Value, String> {
    if let Some(name) = case.get("with").and_then(Value::as_str) {
        return loop_items(engine, "files", name, &case["terms"], ctx)
            .map(Value::Array)
            .map_err(|(msg, _)| msg);
    }
    let expr = case["expr"].as_str().unwrap();
    engine
        .render_value(&Value::String(format!("{{{{ {expr} }}}}")), ctx)
        .map_err(|e| e.to_string())
}

/// Whether our value is what Ansible printed, allowing for its text conversion of a
/// lone number or `None`.
fn same_value(want: &Value, got: &Value) -> bool {
    match (want, got) {
        (Value::String(w), Value::Number(n)) => w == &n.to_string(),
        (Value::String(w), Value::Null) => w.is_empty(),
        _ => want == got,
    }
}

/// The lookup's own message inside Ansible's task-level wrapping.
fn core_message(msg: &str) -> &str {
    let msg = msg
        .strip_prefix("The task includes an option with an undefined variable.. ")
        .unwrap_or(msg);
    msg.split("\n\nThe error appears").next().unwrap_or(msg)
}

#[test]
fn lookups_answer_as_ansible_does() {
    let engine = Arc::new(Engine::new());
    let ctx = context(&engine);
    let cases: Vec<Value> = serde_json::from_str(CASES).unwrap();
    let mut failures = Vec::new();
    for case in &cases {
        let want = &case["ansible"];
        let got = ours(&engine, &ctx, case);
        let ok = match (want.get("ok"), want.get("err"), &got) {
            (Some(w), _, Ok(g)) => same_value(w, g),
            (_, Some(Value::String(w)), Err(g)) => g.contains(core_message(w)),
            _ => false,
        };
        if !ok {
            failures.push(format!("{case}\n    rustle: {got:?}"));
        }
    }
    assert!(cases.len() > 150, "the cases were read");
    assert!(
        failures.is_empty(),
        "{} of {} cases differ from Ansible:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

/// A recorded controller answer is given back for the same call, and only for it; a
/// call with other arguments fails naming the lookup and why.
#[test]
fn controller_lookups_answer_from_the_payload_only() {
    let answers = Answers::new(vec![
        crate::plan::ControllerLookup {
            lookup: "env".into(),
            terms: json!(["HOME"]),
            options: Vars::new(),
            values: Some(vec![json!("/home/deploy")]),
            error: None,
            error_class: None,
        },
        crate::plan::ControllerLookup {
            lookup: "pipe".into(),
            terms: json!(["false"]),
            options: Vars::new(),
            values: None,
            error: Some("lookup_plugin.pipe(false) returned 1".into()),
            error_class: Some(ANSIBLE_ERROR.into()),
        },
    ]);
    let engine = Engine::with_controller(Arc::new(answers));
    let ctx = JValue::from_serialize(json!({"name": "HOME"}));
    let render = |s: &str| engine.render_str(s, &ctx).map_err(|e| e.to_string());
    assert_eq!(
        render("{{ lookup('env', 'HOME') }}").unwrap(),
        "/home/deploy"
    );
    assert_eq!(
        render("{{ lookup('ansible.builtin.env', name) }}").unwrap(),
        "/home/deploy"
    );
    assert_eq!(
        render("{{ query('env', 'HOME') }}").unwrap(),
        "['/home/deploy']"
    );
    let err = render("{{ lookup('env', 'USER') }}").unwrap_err();
    assert!(
        err.contains(
            "lookup('env', 'USER') needs the controller: its arguments are only known on the host"
        ),
        "{err}"
    );
    // errors= does not hide that rustle-deploy could not run it.
    assert!(render("{{ lookup('env', 'USER', errors='ignore') }}").is_err());
    // A failure recorded on the controller is the lookup's failure, where it is used.
    let err = render("{{ lookup('pipe', 'false') }}").unwrap_err();
    assert!(
        err.contains("Error was a <class 'ansible.errors.AnsibleError'>, original message: lookup_plugin.pipe(false) returned 1"),
        "{err}"
    );
    assert_eq!(
        render("{{ lookup('pipe', 'false', errors='ignore') }}").unwrap(),
        ""
    );
    let items = loop_items(&engine, "files", "env", &json!("HOME"), &ctx).unwrap();
    assert_eq!(items, vec![json!("/home/deploy")]);
    let (msg, undefined) = loop_items(&engine, "files", "pipe", &json!("date"), &ctx).unwrap_err();
    assert!(
        msg.contains("lookup('pipe', 'date') needs the controller"),
        "{msg}"
    );
    assert!(!undefined);
}

/// The file lookups fail naming what is missing (outside a run no controller file is
/// carried), and unknown names as Ansible says.
#[test]
fn file_lookups_and_unknown_names_fail_clearly() {
    let engine = Engine::new();
    let ctx = JValue::from_serialize(json!({}));
    let err = engine
        .render_str("{{ lookup('file', 'x') }}", &ctx)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("<class 'ansible.errors.AnsibleLookupError'>")
            && err
                .contains("The 'file' lookup had an issue accessing the file 'x'. file not found"),
        "{err}"
    );
    let (msg, _) = loop_items(&engine, "files", "nosuch", &json!(["a"]), &ctx).unwrap_err();
    assert_eq!(
        msg,
        "Unexpected failure in finding the lookup named 'nosuch' in the available lookup plugins"
    );
    assert!(is_known("ansible.builtin.first_found"));
    assert!(!is_known("nosuch"));
}

/// An undefined variable in a `with_` loop's terms is reported as undefined, so the
/// executor can skip the task when `when` is false, as Ansible does.
#[test]
fn undefined_loop_terms_are_marked_undefined() {
    let engine = Engine::new();
    let ctx = JValue::from_serialize(json!({}));
    let (_, undefined) =
        loop_items(&engine, "files", "items", &json!("{{ nope }}"), &ctx).unwrap_err();
    assert!(undefined);
    let (msg, undefined) = loop_items(&engine, "files", "vars", &json!("nope"), &ctx).unwrap_err();
    assert_eq!(msg, "No variable found with this name: nope");
    assert!(undefined);
    // first_found keeps an undefined name as written, as Ansible's lenient templating:
    // not an undefined-variable error, but no such file.
    let err = loop_items(
        &engine,
        "files",
        "first_found",
        &json!(["{{ nope }}.yml"]),
        &ctx,
    )
    .unwrap_err();
    assert_eq!(
        err,
        (
            "No file was found when using first_found.".to_string(),
            false
        )
    );
}

/// Outside data never makes a sequence panic or exhaust memory: a huge count is refused
/// with the limit named, and numbers past 128 bits are refused as invalid.
#[test]
fn huge_sequences_are_refused_not_attempted() {
    let engine = Engine::new();
    let ctx = JValue::from_serialize(json!({}));
    for term in [
        "count=100000000000",
        "start=-170141183460469231731687303715884105727 end=170141183460469231731687303715884105727",
        "count=170141183460469231731687303715884105727 stride=2",
    ] {
        let (msg, _) = loop_items(&engine, "files", "sequence", &json!(term), &ctx).unwrap_err();
        assert!(msg.contains("rustle-deploy's limit"), "{term}: {msg}");
    }
    let (msg, _) = loop_items(&engine, "files", "sequence", &json!("end=1e40"), &ctx).unwrap_err();
    assert!(
        msg.starts_with("Invalid type for configuration option"),
        "{msg}"
    );
    let items = loop_items(
        &engine,
        "files",
        "sequence",
        &json!("start=1e30 count=2"),
        &ctx,
    )
    .unwrap();
    assert_eq!(
        items,
        [
            json!("1000000000000000000000000000000"),
            json!("1000000000000000000000000000001")
        ]
    );
}
