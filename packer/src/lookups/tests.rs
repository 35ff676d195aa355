//! Controller lookups: which calls are found, and what the controller answers for each
//! host, with real commands, real files and the runner's own template engine reading the
//! answers back. Messages and results are Ansible's (checked with ansible-core 2.18.19:
//! `ansible localhost -m debug -a "msg={{ lookup('pipe', 'exit 3') }}"` and the like).

use super::*;
use rustle_runner::lookups::Answers;
use rustle_runner::plan::HostPlan;
use serde_json::json;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

fn found(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    calls_in_template(text, &mut out);
    out
}

#[test]
fn calls_are_found_where_templates_run_them() {
    assert_eq!(
        found("{{ lookup('pipe', 'date') }}"),
        ["lookup('pipe', 'date')"]
    );
    assert_eq!(
        found("a {{ q( \"ansible.builtin.env\" , 'HOME') | first }} b"),
        ["q( \"ansible.builtin.env\" , 'HOME')"]
    );
    assert_eq!(
        found("{{ lookup('pipe', 'echo ' ~ lookup('env', 'H')) }}"),
        [
            "lookup('pipe', 'echo ' ~ lookup('env', 'H'))",
            "lookup('env', 'H')"
        ]
    );
    assert_eq!(
        found("{% if x %}{{ query('lines', 'ls') }}{% endif %}"),
        ["query('lines', 'ls')"]
    );
    // Nothing runs that Ansible would not template: text outside tags, string
    // literals, comments, raw blocks, other lookups, methods named alike.
    assert!(found("lookup('pipe', 'rm -rf /tmp/x') as plain text").is_empty());
    assert!(found("{{ 'see lookup(\"pipe\", \"rm -rf /tmp/x\")' }}").is_empty());
    assert!(found("{# {{ lookup('pipe', 'rm -rf /tmp/x') }} #}").is_empty());
    assert_eq!(
        found("{% raw %}{{ lookup('pipe', 'rm') }}{% endraw %}{{ lookup('env', 'A') }}"),
        ["lookup('env', 'A')"]
    );
    assert!(found("{{ lookup('items', xs) }} {{ lookup(name, 'x') }}").is_empty());
    assert!(found("{{ obj.lookup('pipe', 'x') }}").is_empty());
    let mut bare = Vec::new();
    calls_matching("lookup('env', 'X') == 'y'", is_controller, &mut bare);
    assert_eq!(bare, ["lookup('env', 'X')"]);
}

struct Project {
    dir: tempfile::TempDir,
    plan: DeployPlan,
    inventory: Inventory,
    world: World,
}

fn project(playbook: &str, inventory: &str) -> Project {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("site.yml");
    std::fs::write(&path, playbook).unwrap();
    let plan = crate::playbook::load_playbook(&path, &Default::default()).unwrap();
    let inventory = Inventory::parse_ini(inventory, "hosts").unwrap();
    let env: BTreeMap<String, String> = [
        ("PATH", "/usr/bin:/bin"),
        ("RUSTLE_K_VAR", "v1"),
        ("HOME", "/home/deployer"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let world = World {
        basedir: dir.path().to_path_buf(),
        env: Some(env),
    };
    Project {
        dir,
        plan,
        inventory,
        world,
    }
}

/// The runner's engine with a host's answers, as the payload gives them.
fn host_engine(p: &Project, host: &str) -> Arc<Engine> {
    let answers = p
        .plan
        .controller_answers
        .get(host)
        .cloned()
        .unwrap_or_default();
    Arc::new(Engine::with_controller(Arc::new(Answers::new(answers))))
}

/// Reads the project's playbook again (files written since are found), answers its
/// controller lookups, and gives `host`'s engine.
fn reload_and_answer(p: &mut Project, host: &str) -> Arc<Engine> {
    p.plan = crate::playbook::load_playbook(&p.dir.path().join("site.yml"), &Default::default())
        .unwrap();
    answer(&mut p.plan, &p.inventory, &p.world);
    host_engine(p, host)
}

fn render(engine: &Arc<Engine>, vars: Value, text: &str) -> Result<String, String> {
    let Value::Object(vars) = vars else {
        panic!("variables are a mapping")
    };
    engine
        .render_str(text, &rustle_runner::lazyvars::context(&vars, engine))
        .map_err(|e| e.to_string())
}

#[test]
fn literal_and_play_variable_arguments_are_answered_on_the_controller() {
    let mut p = project(
        r#"
- hosts: all
  gather_facts: false
  vars:
    greeting_cmd: "echo hello"
    composed: "{{ greeting_cmd }} world"
  tasks:
    - debug: msg="{{ lookup('env', 'RUSTLE_K_VAR', 'NOPE_K', default='d') }}"
    - debug: msg="{{ lookup('env', 'NOPE_K', default=Undefined) }}|{{ lookup('env', 'NOPE_K', default=None) }}"
    - debug: msg="{{ lookup('pipe', composed) }}|{{ lookup('pipe', 'echo ' + inventory_hostname) }}"
    - debug: msg="{{ item }}"
      with_lines: "printf 'a\\r\\nb\\rc\\n\\nd'"
    - debug: msg="{{ lookup('pipe', 'pwd') }}"
    - debug: msg="{{ lookup('pipe', 'exit 3') }}"
      when: "lookup('env', 'RUSTLE_K_VAR') == 'v1'"
    - debug: msg="{{ lookup('pipe', 'echo ' + ansible_facts.hostname) }}"
"#,
        "web1\nweb2\n",
    );
    answer(&mut p.plan, &p.inventory, &p.world);
    let e = host_engine(&p, "web1");
    let vars = json!({"inventory_hostname": "web1", "composed": "echo hello world"});
    assert_eq!(
        render(
            &e,
            vars.clone(),
            "{{ lookup('env', 'RUSTLE_K_VAR', 'NOPE_K', default='d') }}"
        ),
        Ok("v1,d".into())
    );
    // default=Undefined makes a missing variable an error (ansible-core's message).
    let undefined = render(
        &e,
        vars.clone(),
        "{{ lookup('env', 'NOPE_K', default=Undefined) }}",
    );
    assert!(
        undefined
            .as_ref()
            .is_err_and(|e| e.contains("The \"env\" lookup, found an undefined variable: NOPE_K")),
        "{undefined:?}"
    );
    assert_eq!(
        render(
            &e,
            vars.clone(),
            "{{ lookup('env', 'NOPE_K', default=None) }}"
        ),
        Ok(String::new())
    );
    assert_eq!(
        render(
            &e,
            vars.clone(),
            "{{ lookup('pipe', composed) }}|{{ lookup('pipe', 'echo ' + inventory_hostname) }}"
        ),
        Ok("hello world|web1".into())
    );
    let items = lookups::loop_items(
        &e,
        "files",
        "lines",
        &json!("printf 'a\\r\\nb\\rc\\n\\nd'"),
        &rustle_runner::lazyvars::context(vars.as_object().unwrap(), &e),
    )
    .unwrap();
    assert_eq!(
        items,
        [json!("a"), json!("b"), json!("c"), json!(""), json!("d")]
    );
    // Commands run in the playbook's directory.
    let pwd = render(&e, vars.clone(), "{{ lookup('pipe', 'pwd') }}").unwrap();
    assert_eq!(
        Path::new(&pwd).canonicalize().unwrap(),
        p.dir.path().canonicalize().unwrap()
    );
    let failed = render(&e, vars.clone(), "{{ lookup('pipe', 'exit 3') }}").unwrap_err();
    assert!(
        failed.contains("Error was a <class 'ansible.errors.AnsibleError'>, original message: lookup_plugin.pipe(exit 3) returned 3. lookup_plugin.pipe(exit 3) returned 3"),
        "{failed}"
    );
    // Facts are the host's: that call waits for the controller channel.
    let later = render(
        &e,
        json!({"ansible_facts": {"hostname": "h1"}}),
        "{{ lookup('pipe', 'echo ' + ansible_facts.hostname) }}",
    )
    .unwrap_err();
    assert!(
        later.contains("lookup('pipe', 'echo h1') needs the controller"),
        "{later}"
    );
    // Each host carries its own answers only.
    let web2 = host_engine(&p, "web2");
    assert_eq!(
        render(
            &web2,
            json!({"inventory_hostname": "web2"}),
            "{{ lookup('pipe', 'echo ' + inventory_hostname) }}"
        ),
        Ok("web2".into())
    );
    assert!(
        render(
            &web2,
            json!({"inventory_hostname": "web1"}),
            "{{ lookup('pipe', 'echo ' + inventory_hostname) }}"
        )
        .is_err()
    );
}

#[test]
fn a_plan_without_controller_lookups_gets_no_answers() {
    let mut p = project(
        "- hosts: all\n  tasks:\n    - debug: msg=\"{{ lookup('items', [1]) }} {{ query('sequence', 'count=2') }}\"\n",
        "web1\n",
    );
    answer(&mut p.plan, &p.inventory, &p.world);
    assert!(p.plan.controller_answers.is_empty());
}

#[test]
fn password_files_are_written_and_read_on_the_controller_as_ansible_does() {
    let playbook = r#"
- hosts: all
  gather_facts: false
  tasks:
    - debug: msg="{{ lookup('password', 'creds/' + inventory_hostname + '/db length=8') }}"
    - debug: msg="{{ lookup('password', '/dev/null', seed=inventory_hostname) }}"
    - debug: msg="{{ lookup('password', '/dev/null length=6 chars=digits') }}"
    - debug: msg="{{ lookup('password', 'creds/x encrypt=sha512_crypt') }}"
"#;
    let mut p = project(playbook, "web1\nweb2\n");
    answer(&mut p.plan, &p.inventory, &p.world);
    let file = p.dir.path().join("creds/web1/db");
    let stored = std::fs::read_to_string(&file).unwrap();
    assert_eq!(
        stored.len(),
        9,
        "eight characters and a newline: {stored:?}"
    );
    let mode = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&file), 0o600);
    assert_eq!(mode(&p.dir.path().join("creds/web1")), 0o700);
    assert!(p.dir.path().join("creds/web2/db").exists());
    let e = host_engine(&p, "web1");
    let vars = json!({"inventory_hostname": "web1"});
    let password = render(
        &e,
        vars.clone(),
        "{{ lookup('password', 'creds/' + inventory_hostname + '/db length=8') }}",
    )
    .unwrap();
    assert_eq!(format!("{password}\n"), stored);
    // A seed gives Ansible's password for it (`seed=web1` checked with ansible-core).
    let seeded = render(
        &e,
        vars.clone(),
        "{{ lookup('password', '/dev/null', seed=inventory_hostname) }}",
    )
    .unwrap();
    assert_eq!(seeded, "PHReYru8meWgwuf2LQh8");
    let fresh = render(
        &e,
        vars.clone(),
        "{{ lookup('password', '/dev/null length=6 chars=digits') }}",
    )
    .unwrap();
    assert!(
        fresh.len() == 6 && fresh.chars().all(|c| c.is_ascii_digit()),
        "{fresh}"
    );
    // encrypt= needs crypt hashes: refused, and no file is written.
    let err = render(
        &e,
        vars.clone(),
        "{{ lookup('password', 'creds/x encrypt=sha512_crypt') }}",
    )
    .unwrap_err();
    assert!(
        err.contains("encrypt=sha512_crypt is not supported yet"),
        "{err}"
    );
    assert!(!p.dir.path().join("creds/x").exists());
    // No lock file is left behind.
    let leftovers: Vec<_> = std::fs::read_dir(p.dir.path().join("creds/web1"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(leftovers, ["db"]);

    // The next deploy reads the file instead of making a new password.
    let mut again = project(playbook, "web1\n");
    again.world.basedir = p.dir.path().to_path_buf();
    answer(&mut again.plan, &again.inventory, &again.world);
    let e = host_engine(&again, "web1");
    assert_eq!(
        render(
            &e,
            vars,
            "{{ lookup('password', 'creds/' + inventory_hostname + '/db length=8') }}"
        )
        .unwrap(),
        password
    );
}

#[test]
fn answers_travel_in_the_host_payload() {
    let mut p = project(
        "- hosts: all\n  gather_facts: false\n  tasks:\n    - debug: msg=\"{{ lookup('env', 'RUSTLE_K_VAR') }}\"\n",
        "web1\n",
    );
    answer(&mut p.plan, &p.inventory, &p.world);
    let host = p.inventory.hosts().next().unwrap();
    let settings = pack::PayloadSettings {
        deployment_id: "d".into(),
        created_at: 0,
        check_mode: false,
        diff_mode: false,
    };
    let mut planner = pack::Planner::new(&p.plan, &p.inventory, &settings).unwrap();
    let hp: HostPlan = planner.host_plan(host).unwrap();
    assert_eq!(hp.controller_lookups.len(), 1);
    assert_eq!(hp.controller_lookups[0].values, Some(vec![json!("v1")]));
}

/// setup_test_user's `lookup('password', '/dev/null')` sits in a task file only a
/// templated `include_tasks` reaches: such files' calls are answered too (the runner
/// failed them: "answered from the payload and nothing else").
#[test]
fn calls_in_files_only_an_include_reaches_are_answered() {
    let mut p = project(
        r#"
- hosts: all
  gather_facts: false
  tasks:
    - include_tasks: "{{ 'inc' }}.yml"
"#,
        "web1\n",
    );
    std::fs::create_dir(p.dir.path().join("tasks")).unwrap();
    std::fs::write(
        p.dir.path().join("tasks/inc.yml"),
        "- debug: msg=\"{{ lookup('env', 'RUSTLE_K_VAR') }}\"\n",
    )
    .unwrap();
    // The playbook is read again now that the included file exists.
    let e = reload_and_answer(&mut p, "web1");
    assert_eq!(
        render(&e, json!({}), "{{ lookup('env', 'RUSTLE_K_VAR') }}").unwrap(),
        "v1"
    );
}

/// template target (template_import_macro_globals.j2): a call in a template that the
/// task's template imports or includes (beside it, however its path is written) runs
/// with the task's variables too, so it is answered; a name only a variable gives is not
/// followed.
#[test]
fn calls_in_templates_a_template_imports_are_answered() {
    let mut p = project(
        r#"
- hosts: all
  gather_facts: false
  tasks:
    - template: src=main.j2 dest=/tmp/out
"#,
        "web1\n",
    );
    let t = p.dir.path().join("templates");
    std::fs::create_dir(&t).unwrap();
    std::fs::write(
        t.join("main.j2"),
        "{% from 'macros.j2' import foo %}{% include \"inc.j2\" %}{% include name %}{{ foo() }}\n",
    )
    .unwrap();
    std::fs::write(
        t.join("macros.j2"),
        "{% macro foo() -%}{{ lookup('env', 'RUSTLE_K_VAR') }}{%- endmacro %}\n",
    )
    .unwrap();
    std::fs::write(t.join("inc.j2"), "{{ lookup('env', 'HOME') }}\n").unwrap();
    // The template named through `..` (as a role's path can be): the templates beside it
    // are found all the same.
    let dir = p.dir.path().to_path_buf();
    let base = dir.file_name().unwrap().to_string_lossy().into_owned();
    std::fs::write(
        dir.join("site.yml"),
        format!(
            "- hosts: all\n  gather_facts: false\n  tasks:\n    - template: src={}/../{base}/templates/main.j2 dest=/tmp/out\n",
            dir.display()
        ),
    )
    .unwrap();
    let e = reload_and_answer(&mut p, "web1");
    assert_eq!(
        render(&e, json!({}), "{{ lookup('env', 'RUSTLE_K_VAR') }}").unwrap(),
        "v1"
    );
    assert_eq!(
        render(&e, json!({}), "{{ lookup('env', 'HOME') }}").unwrap(),
        "/home/deployer"
    );
    assert_eq!(
        templates_named("{% from 'a.j2' import x %}{%- import \"b.j2\" as b -%}{% include c %}"),
        ["a.j2", "b.j2"]
    );
}

#[test]
fn literal_file_names_are_the_files_lookups_read() {
    let task: Task = serde_json::from_value(json!({
        "module": "copy",
        "args": {
            "content": "{{ lookup('file', 'keys/id.pub') }} {{ lookup('ini', 'k section=s file=app.ini') }}",
            "dest": "{{ lookup('csvfile', 'a col=1', file='data.csv') }}",
            "mode": "{{ lookup('ini', 'plain') }} {{ query('first_found', 'a.txt', 'b.txt') }}",
        },
        "when": "lookup('template', 'x.j2') and lookup('file', name_from_var) and lookup('env', 'HOME')",
        "vars": {"t": "{{ lookup('file', '{{ dynamic }}.txt') }}"},
    }))
    .unwrap();
    assert_eq!(
        literal_file_names(&task),
        [
            "a.txt",
            "ansible.ini",
            "app.ini",
            "b.txt",
            "data.csv",
            "keys/id.pub",
            "x.j2"
        ]
    );
    let looped: Task = serde_json::from_value(json!({
        "module": "debug", "args": {"msg": "{{ item }}"},
        "loop_with": "file", "loop": ["one.txt", "{{ two }}"],
    }))
    .unwrap();
    assert_eq!(literal_file_names(&looped), ["one.txt"]);
    let asserted: Task = serde_json::from_value(json!({
        "module": "assert",
        "args": {"that": ["lookup('ini', 'k', file='i.ini') == 'v'"]},
    }))
    .unwrap();
    assert_eq!(literal_file_names(&asserted), ["i.ini"]);
}
