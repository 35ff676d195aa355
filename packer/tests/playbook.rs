//! The playbook front end: Ansible playbooks (fixtures, a role-based project, free-form
//! arguments) into plans, and the errors for what it refuses.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

/// Named so that `cargo test playbook` selects these tests.
mod playbook {

    use rustle_deploy::playbook::{
        PlaybookError, PlaybookOptions, load_playbook, looks_like_playbook,
    };
    use rustle_runner::plan::{Condition, DeployPlan, Play, Task};
    use serde_json::{Value, json};
    use std::path::{Path, PathBuf};

    fn fixtures() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures")
    }

    fn load(path: &Path) -> DeployPlan {
        load_playbook(path, &PlaybookOptions::default())
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    /// Writes files (path, content) into a new temporary directory.
    fn project(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (name, content) in files {
            let path = dir.path().join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, content).unwrap();
        }
        dir
    }

    /// Loads a one-file playbook written into a temporary directory.
    fn load_text(text: &str) -> Result<DeployPlan, PlaybookError> {
        let dir = project(&[("play.yml", text)]);
        load_playbook(&dir.path().join("play.yml"), &PlaybookOptions::default())
    }

    fn err_text(text: &str) -> String {
        match load_text(text) {
            Ok(plan) => panic!("loaded: {plan:#?}"),
            Err(e) => e.to_string(),
        }
    }

    fn args(t: &Task) -> Value {
        Value::Object(t.args.clone())
    }

    fn block(t: &Task) -> &[Task] {
        t.block.as_deref().expect("a block")
    }

    fn names(tasks: &[Task]) -> Vec<String> {
        let mut all = Vec::new();
        for t in tasks {
            t.walk(&mut all);
        }
        all.iter()
            .filter(|t| t.block.is_none())
            .map(|t| t.display_name())
            .collect()
    }

    // ---------------------------------------------------------------- fixture playbooks

    /// A task file that is a sentence, not a list, is refused naming the file and
    /// showing the sentence, as Ansible shows its line (include_when_parent_is_static).
    #[test]
    fn a_task_file_that_is_not_a_list_shows_its_text() {
        let dir = project(&[
            (
                "play.yml",
                "- hosts: all\n  tasks:\n    - import_tasks: broken.yml\n",
            ),
            ("broken.yml", "intentional syntax error here\n"),
        ]);
        let e = load_playbook(&dir.path().join("play.yml"), &PlaybookOptions::default())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("broken.yml")
                && e.contains(
                    "must contain a list of tasks, found a string: intentional syntax error here"
                ),
            "{e}"
        );
    }

    #[test]
    fn simple_fixture() {
        let plan = load(&fixtures().join("playbooks/simple.yml"));
        assert_eq!(plan.format, "rustle-deploy-plan");
        let [play] = plan.plays.as_slice() else {
            panic!("one play")
        };
        assert_eq!(play.name, "Simple test playbook");
        assert_eq!(play.hosts, ["all"]);
        assert!(play.gather_facts, "Ansible's default");
        assert_eq!(play.vars["test_var"], json!("hello world"));
        assert_eq!(play.vars["number_var"], json!(42));
        let [print, install, notify] = play.tasks.as_slice() else {
            panic!("three tasks")
        };
        assert_eq!(print.module, "debug");
        assert_eq!(args(print), json!({"msg": "{{ test_var }}"}));
        assert_eq!(print.tags, ["debug", "test"]);
        assert_eq!(install.become_, Some(true.into()));
        assert_eq!(args(install), json!({"name": "git", "state": "present"}));
        assert_eq!(notify.module, "command");
        assert_eq!(args(notify), json!({"_raw_params": "/bin/true"}));
        assert_eq!(notify.notify, ["restart service"]);
        assert_eq!(
            notify.when,
            Some(Condition::One("test_var is defined".into()))
        );
        assert_eq!(play.handlers.len(), 1);
        assert_eq!(play.handlers[0].name.as_deref(), Some("restart service"));
        assert_eq!(
            args(&play.handlers[0]),
            json!({"name": "example", "state": "restarted"})
        );
    }

    #[test]
    fn package_and_service_fixtures() {
        let plan = load(&fixtures().join("playbooks/package_management.yml"));
        let play = &plan.plays[0];
        assert_eq!(play.hosts, ["test_hosts"]);
        assert_eq!(play.become_, Some(true.into()), "`become: yes`");
        let t = &play.tasks;
        assert_eq!(t.len(), 5);
        assert_eq!(t[0].module, "apt");
        // YAML 1.1, as Ansible reads it: a plain `yes` is a boolean.
        assert_eq!(args(&t[0]), json!({"update_cache": true}));
        assert_eq!(
            t[0].when,
            Some(Condition::One("ansible_os_family == \"Debian\"".into()))
        );
        assert_eq!(args(&t[3]), json!({"_raw_params": "which curl"}));
        assert_eq!(t[3].register.as_deref(), Some("curl_check"));
        assert_eq!(t[3].changed_when, Some(Condition::Bool(false)));

        let plan = load(&fixtures().join("playbooks/service_management.yml"));
        let t = &plan.plays[0].tasks;
        assert_eq!(t.len(), 5);
        assert_eq!(t[1].module, "service");
        assert_eq!(
            args(&t[1]),
            json!({"name": "nginx", "state": "started", "enabled": true})
        );
        assert_eq!(t[4].module, "wait_for");
        assert_eq!(
            args(&t[4]),
            json!({"port": 80, "host": "localhost", "delay": 2, "timeout": 30})
        );
    }

    #[test]
    fn system_facts_fixture() {
        let plan = load(&fixtures().join("playbooks/system_facts_playbook.yml"));
        let play = &plan.plays[0];
        assert!(play.gather_facts);
        assert_eq!(play.tasks[0].module, "setup");
        assert_eq!(
            args(&play.tasks[0]),
            json!({"gather_subset": "all", "gather_timeout": 10})
        );
        assert_eq!(play.tasks[0].tags, ["facts", "setup", "system"]);
        assert_eq!(
            play.tasks[2].when,
            Some(Condition::One("ansible_system == \"Linux\"".into()))
        );
    }

    #[test]
    fn probe_fixture_needs_its_template() {
        // The template is not beside the fixture: as in Ansible, that is the task's
        // failure when it runs (the runner names where it looked), not the plan's.
        let path = fixtures().join("playbooks/probe_playbook.yml");
        let plan = load(&path);
        assert!(!plan.files.contains_key("app.conf.j2"));

        // With the template where Ansible looks for it, everything the playbook says is kept.
        let text = std::fs::read_to_string(&path).unwrap();
        let dir = project(&[
            ("probe.yml", &text),
            ("templates/app.conf.j2", "dir={{ app_dir }}\n"),
        ]);
        let plan = load(&dir.path().join("probe.yml"));
        let play = &plan.plays[0];
        assert_eq!(play.hosts, ["webservers"]);
        assert_eq!(play.vars["pkgs"], json!(["curl", "git"]));
        let t = &play.tasks;
        assert_eq!(t[1].loop_, Some(json!(["a", "b"])));
        assert_eq!(t[2].module, "shell");
        assert_eq!(
            args(&t[2]),
            json!({"_raw_params": "echo hello > {{ app_dir }}/hello.txt",
               "creates": "{{ app_dir }}/hello.txt"})
        );
        assert_eq!(t[2].register.as_deref(), Some("out"));
        assert_eq!(t[2].notify, ["restart app"]);
        assert_eq!(t[4].become_user.as_deref(), Some("root"));
        assert_eq!(t[4].failed_when, Some(Condition::One("out.rc != 0".into())));
        assert_eq!(t[4].ignore_errors, Some(true.into()));
        assert_eq!(
            plan.files["templates/app.conf.j2"].content.as_deref(),
            Some("dir={{ app_dir }}\n")
        );
    }

    #[test]
    fn file_operations_fixture() {
        // Its copy src is relative to the repository root, not to the playbook as Ansible
        // resolves it: the task fails where it runs, as in Ansible; the plan loads.
        let path = fixtures().join("playbooks/file_operations_playbook.yml");
        let plan = load(&path);
        assert!(
            !plan
                .files
                .contains_key("tests/fixtures/files/test_files/sample.conf")
        );

        let text = std::fs::read_to_string(&path).unwrap();
        let dir = project(&[
            ("ops.yml", &text),
            ("tests/fixtures/files/test_files/sample.conf", "x=1\n"),
        ]);
        let plan = load(&dir.path().join("ops.yml"));
        let t = &plan.plays[0].tasks;
        assert_eq!(t.len(), 5);
        assert_eq!(t[0].args["recurse"], json!(true));
        assert_eq!(t[0].args["mode"], json!("0755"));
        assert_eq!(
            t[1].loop_,
            Some(json!(["config", "data", "logs", "backups"]))
        );
        assert_eq!(
            t[2].args["backup"],
            json!(true),
            "a plain `yes` is a boolean"
        );
        assert!(
            plan.files
                .contains_key("tests/fixtures/files/test_files/sample.conf")
        );
    }

    // ---------------------------------------------------------------- the role project

    fn site() -> PathBuf {
        fixtures().join("projects/webapp/site.yml")
    }

    fn web_play(plan: &DeployPlan) -> &Play {
        plan.plays.iter().find(|p| p.name == "web tier").unwrap()
    }

    #[test]
    fn role_project_structure() {
        let plan = load(&site());
        assert_eq!(plan.plays.len(), 2);
        let db = &plan.plays[0];
        assert_eq!(db.name, "db tier");
        assert!(!db.gather_facts);
        assert_eq!(db.tasks[0].args["src"], json!("motd.j2"));

        let web = web_play(&plan);
        assert_eq!(web.hosts, ["webservers"]);
        assert_eq!(web.become_, Some(true.into()));
        // pre_tasks, a handler flush, the common role, the web role, the import, a flush,
        // post_tasks.
        let t = &web.tasks;
        assert_eq!(t.len(), 7, "{:#?}", t);
        assert_eq!(t[0].name.as_deref(), Some("announce"));
        assert_eq!(t[0].module, "ansible.builtin.debug");
        assert_eq!(args(&t[0]), json!({"msg": "deploying {{ app_name }}"}));
        assert_eq!(t[1].module, "meta");
        assert_eq!(args(&t[1]), json!({"_raw_params": "flush_handlers"}));
        assert_eq!(t[5].module, "meta");
        assert_eq!(t[6].name.as_deref(), Some("done"));

        // common, then again as web's dependency: the same use of the role, which the
        // runner runs once on a host (Ansible's role cache and `role_complete`).
        let common = block(&t[2]);
        assert_eq!(names(common), ["common packages", "tools"]);
        let instance = |t: &Task| t.origin.as_ref().and_then(|o| o.instance.clone());
        let common_use = instance(&t[2]).expect("common's block says which use it is");
        assert!(!common_use.allow_duplicates);
        // with_items: the items lookup over the terms as written (it flattens them).
        assert_eq!(common[0].loop_, Some(json!(["{{ common_pkgs }}"])));
        assert_eq!(common[0].loop_with.as_deref(), Some("items"));
        assert_eq!(common[1].loop_, Some(json!(["jq", ["vim", "tmux"]])));
        assert_eq!(args(&common[1]), json!({"name": "{{ item }}"}));

        // web: the entry's tags on a wrapping block, the role's variables on the inner one.
        assert_eq!(t[3].tags, ["web"]);
        let [dependency, inner] = block(&t[3]) else {
            panic!("web's dependency and web's own block")
        };
        assert_eq!(instance(dependency), Some(common_use));
        assert_ne!(instance(inner), instance(dependency));
        let web_tasks = block(inner);
        assert_eq!(
            names(web_tasks),
            ["install web server", "site config", "index page", "users"],
            "the `never` task is left out without --tags"
        );
        assert_eq!(
            web_tasks[1].args["src"],
            json!("roles/web/templates/app.conf.j2")
        );
        assert_eq!(web_tasks[1].notify, ["restart web"]);
        assert_eq!(
            args(&web_tasks[2]),
            json!({"src": "roles/web/files/index.html", "dest": "{{ web_root }}/index.html"})
        );
        // with_dict over a written mapping keeps its order: one mapping per entry.
        assert_eq!(
            web_tasks[3].loop_,
            Some(json!([{"zed": "admin"}, {"amy": "dev"}]))
        );
        assert_eq!(web_tasks[3].loop_with.as_deref(), Some("dict"));

        // import_tasks with keywords: a block carrying them.
        assert_eq!(
            t[4].when,
            Some(Condition::One("extra_enabled | bool".into()))
        );
        assert_eq!(t[4].tags, ["extra"]);
        let extra = block(&t[4]);
        assert_eq!(
            args(&extra[0]),
            json!({"_raw_params": "echo extra > /tmp/extra", "chdir": "/tmp", "creates": "/tmp/extra"})
        );
        assert_eq!(
            args(&extra[1]),
            json!({"path": "/tmp/extra-dir", "state": "directory", "mode": "0755"})
        );

        // Role files are embedded under their path; playbook files by attach_files.
        assert_eq!(
            plan.files["roles/web/templates/app.conf.j2"]
                .content
                .as_deref(),
            Some("listen {{ app_port }};\nroot {{ web_root }};\n")
        );
        assert!(plan.files.contains_key("roles/web/files/index.html"));
        assert!(plan.files.contains_key("motd.j2"));
        // The rest are the roles' trees, by controller path, for names only known on
        // the host.
        let named: Vec<&String> = plan.files.keys().filter(|k| !k.starts_with('/')).collect();
        assert_eq!(named.len(), 3, "{named:?}");
    }

    #[test]
    fn role_project_variables_and_handlers() {
        let plan = load(&site());
        let web = web_play(&plan);
        // Play vars beat role defaults; vars_files and role vars are visible play-wide.
        assert_eq!(web.vars["app_port"], json!(8080));
        assert_eq!(web.vars["app_name"], json!("shop"));
        assert_eq!(web.vars["web_pkg"], json!("nginx"));
        assert_eq!(web.vars["common_pkgs"], json!(["curl", "git"]));
        assert_eq!(web.vars["web_user"], json!("nobody"));

        let common = &web.tasks[2];
        // Marked as a role default, for the deployer to drop where the inventory sets it.
        assert_eq!(
            Value::Object(common.vars.clone()),
            json!({"common_pkgs": ["curl", "git"], "__rustle_role_defaults": ["common_pkgs"]})
        );
        let web_block = &block(&web.tasks[3])[1];
        // Own defaults the play does not set, role vars, then the entry's parameters.
        assert_eq!(
            Value::Object(web_block.vars.clone()),
            json!({"web_root": "/srv/www", "web_user": "www", "web_pkg": "nginx",
                   "__rustle_role_defaults": ["web_root"]})
        );

        let handler_names: Vec<_> = web.handlers.iter().map(|h| h.display_name()).collect();
        assert_eq!(
            handler_names,
            ["reload common", "restart web", "pre handler"]
        );
        // It answers to `web : restart web` by its role (the runner's matching).
        assert!(web.handlers[1].listen.is_empty());
        let role = web.handlers[1]
            .origin
            .as_ref()
            .and_then(|o| o.role.as_ref());
        assert_eq!(role.map(|r| r.name.as_str()), Some("web"));
        assert_eq!(web.handlers[1].vars["web_pkg"], json!("nginx"));
        assert_eq!(web.handlers[1].vars["web_user"], json!("www"));
    }

    #[test]
    fn role_project_tags() {
        let opts = PlaybookOptions {
            tags: vec!["web".into()],
            ..PlaybookOptions::default()
        };
        let plan = load_playbook(&site(), &opts).unwrap();
        assert!(plan.plays[0].tasks.is_empty(), "the db play is tagged db");
        let web = web_play(&plan);
        // Inherited `web` selects every task of the role, `never` included (as in Ansible),
        // and of its dependency (through Ansible's dependency chain), which the untagged
        // `common` entry did not run; no flush: nothing after the section that notifies.
        assert_eq!(
            names(&web.tasks),
            [
                "common packages",
                "tools",
                "install web server",
                "site config",
                "index page",
                "users",
                "never unless asked"
            ]
        );

        let opts = PlaybookOptions {
            skip_tags: vec!["install,extra".into()],
            ..PlaybookOptions::default()
        };
        let plan = load_playbook(&site(), &opts).unwrap();
        let all = names(&web_play(&plan).tasks);
        assert!(!all.contains(&"install web server".to_string()), "{all:?}");
        assert!(!all.contains(&"extra one".to_string()), "{all:?}");
        assert!(all.contains(&"site config".to_string()), "{all:?}");

        let opts = PlaybookOptions {
            tags: vec!["debug".into()],
            ..PlaybookOptions::default()
        };
        let plan = load_playbook(&site(), &opts).unwrap();
        assert_eq!(names(&web_play(&plan).tasks), ["never unless asked"]);
    }

    #[test]
    fn extra_vars_win_everywhere() {
        let mut extra = serde_json::Map::new();
        extra.insert("web_user".into(), json!("root"));
        extra.insert("app_port".into(), json!(9));
        let opts = PlaybookOptions {
            extra_vars: extra,
            check: true,
            diff: true,
            ..PlaybookOptions::default()
        };
        let plan = load_playbook(&site(), &opts).unwrap();
        assert!(plan.check_mode && plan.diff_mode);
        let web = web_play(&plan);
        assert_eq!(web.vars["web_user"], json!("root"));
        assert_eq!(web.vars["app_port"], json!(9));
        assert_eq!(plan.plays[0].vars["app_port"], json!(9));
        let web_block = &block(&web.tasks[3])[1];
        assert_eq!(
            web_block.vars["web_user"],
            json!("root"),
            "beats the role parameter"
        );
        assert_eq!(web.handlers[1].vars["web_user"], json!("root"));
    }

    #[test]
    fn looks_like_playbook_by_content() {
        let site_text = std::fs::read_to_string(site()).unwrap();
        assert!(looks_like_playbook(&site_text));
        assert!(looks_like_playbook("- hosts: all\n  tasks: []\n"));
        assert!(looks_like_playbook("- import_playbook: x.yml\n"));
        assert!(looks_like_playbook("$ANSIBLE_VAULT;1.1;AES256\n6162\n"));
        assert!(
            looks_like_playbook("---\n- hosts: all\n  tasks: [\n"),
            "broken YAML list"
        );
        assert!(!looks_like_playbook("{\"format\": \"rustle-deploy-plan\"}"));
        assert!(!looks_like_playbook("- name: a task\n  debug: msg=x\n"));
        let plan =
            std::fs::read_to_string(fixtures().join("rustle-plan/simple.plan.json")).unwrap();
        assert!(!looks_like_playbook(&plan));
    }

    // ---------------------------------------------------------------- task forms

    #[test]
    fn task_forms() {
        let plan = load_text(
            r#"
- hosts: web,db
  gather_facts: no
  tasks:
    - name: merged args
      ansible.legacy.command: ls -l chdir=/tmp
      args:
        chdir: /ignored
        creates: /x
    - action: file path=/a state=touch
    - action:
        module: copy
        content: hi
        dest: /b
    - name: conditions
      debug: var=x
      when: [a is defined, "b == 1"]
      until: x is succeeded
      retries: "4"
      delay: 1
      failed_when: false
      check_mode: yes
      loop: "{{ things }}"
      loop_control: {loop_var: thing, label: "{{ thing.name }}"}
      vars: {x: 1}
      tags: "a, b"
    - name: free text with quotes
      debug: msg="a b=c" extra words
    - name: block
      block:
        - command: /bin/false
      rescue:
        - debug: msg=rescued
      always:
        - debug: msg=always
      become: true
      become_user: app
      ignore_errors: true
      when: true
  handlers:
    - name: h
      debug: msg=h
      listen: [topic]
"#,
        )
        .unwrap();
        let play = &plan.plays[0];
        assert_eq!(play.hosts, ["web", "db"]);
        assert!(!play.gather_facts);
        let t = &play.tasks;
        assert_eq!(
            args(&t[0]),
            json!({"_raw_params": "ls -l", "chdir": "/tmp", "creates": "/x"})
        );
        assert_eq!(t[0].module_name(), "command");
        assert_eq!(t[1].module, "file");
        assert_eq!(args(&t[1]), json!({"path": "/a", "state": "touch"}));
        assert_eq!(t[2].module, "copy");
        assert_eq!(args(&t[2]), json!({"content": "hi", "dest": "/b"}));
        let c = &t[3];
        assert_eq!(
            c.when,
            Some(Condition::All(vec!["a is defined".into(), "b == 1".into()]))
        );
        assert_eq!(c.until, Some(Condition::One("x is succeeded".into())));
        assert_eq!((&c.retries, &c.delay), (&Some(4.into()), &Some(1.0.into())));
        assert_eq!(c.failed_when, Some(Condition::Bool(false)));
        assert_eq!(c.check_mode, Some(true.into()));
        assert_eq!(c.loop_, Some(json!("{{ things }}")));
        let lc = c.loop_control.as_ref().unwrap();
        assert_eq!(lc.loop_var.as_deref(), Some("thing"));
        assert_eq!(lc.label.as_deref(), Some("{{ thing.name }}"));
        assert_eq!(c.vars["x"], json!(1));
        assert_eq!(c.tags, ["a", "b"]);
        assert_eq!(
            args(&t[4]),
            json!({"msg": "a b=c", "_raw_params": "extra words"})
        );
        let b = &t[5];
        assert_eq!(b.module, "");
        assert_eq!(block(b)[0].module, "command");
        assert_eq!(b.rescue.len(), 1);
        assert_eq!(b.always.len(), 1);
        assert_eq!(b.become_, Some(true.into()));
        assert_eq!(b.become_user.as_deref(), Some("app"));
        assert_eq!(b.ignore_errors, Some(true.into()));
        assert_eq!(b.when, Some(Condition::Bool(true)));
        assert_eq!(play.handlers[0].listen, ["topic"]);
    }

    #[test]
    fn with_loops_keep_their_terms_and_name_their_lookup() {
        let plan = load_text(
            r#"
- hosts: all
  tasks:
    - debug: msg="{{ item.key }}={{ item.value }}"
      with_dict: "{{ users }}"
    - debug: var=item
      with_items: "{{ nested }}"
    - debug: var=item
      loop: [1]
      loop_control: {index_var: i, pause: 0.5, extended: yes, break_when: "i > 3"}
"#,
        )
        .unwrap();
        let t = &plan.plays[0].tasks;
        assert_eq!(t[0].loop_, Some(json!("{{ users }}")));
        assert_eq!(t[0].loop_with.as_deref(), Some("dict"));
        assert_eq!(t[1].loop_, Some(json!("{{ nested }}")));
        assert_eq!(t[1].loop_with.as_deref(), Some("items"));
        assert_eq!(t[2].loop_with, None);
        let lc = t[2].loop_control.as_ref().unwrap();
        assert_eq!(lc.index_var.as_deref(), Some("i"));
        assert_eq!(lc.pause, Some(0.5.into()));
        assert_eq!(lc.extended, Some(true.into()));
        assert_eq!(lc.break_when, Some(Condition::One("i > 3".into())));
    }

    #[test]
    fn environment_and_no_log_are_carried() {
        let plan = load_text(
            r#"
- hosts: all
  environment: {PATH: "/opt/bin:{{ ansible_env.PATH }}"}
  tasks:
    - command: env
      environment: {A: "1"}
      no_log: yes
    - command: env
      environment: "{{ proxy_env }}"
"#,
        )
        .unwrap();
        let play = &plan.plays[0];
        assert_eq!(
            play.environment,
            Some(json!({"PATH": "/opt/bin:{{ ansible_env.PATH }}"}))
        );
        assert_eq!(play.tasks[0].environment, Some(json!({"A": "1"})));
        assert_eq!(play.tasks[0].no_log, Some(true.into()));
        assert_eq!(play.tasks[1].environment, Some(json!("{{ proxy_env }}")));
        let msg = err_text("- hosts: all\n  tasks:\n    - command: ls\n      environment: [A]\n");
        assert!(msg.contains("expected a mapping"), "{msg}");
    }

    #[test]
    fn shell_script_keeps_its_lines() {
        let plan = load_text(
        "- hosts: all\n  tasks:\n    - shell: |\n        set -e\n        if [ -f /x ]; then\n          echo  'a  b'\n        fi\n",
    )
    .unwrap();
        assert_eq!(
            plan.plays[0].tasks[0].args["_raw_params"],
            // With its last newline, as ansible-core's own command_shell target checks
            // (`shell_result7.cmd == 'cat <<EOF\n...EOF\n'`).
            json!("set -e\nif [ -f /x ]; then\n  echo  'a  b'\nfi\n")
        );
    }

    #[test]
    fn templated_names_from_extra_vars() {
        let dir = project(&[
            (
                "play.yml",
                "- hosts: \"{{ target }}\"\n  vars_files: [\"vars/{{ env }}.yml\"]\n  tasks:\n    - import_tasks: \"{{ env }}.yml\"\n",
            ),
            ("vars/prod.yml", "level: 3\n"),
            ("prod.yml", "- debug: msg=prod\n"),
        ]);
        let mut extra = serde_json::Map::new();
        extra.insert("target".into(), json!("web:&prod"));
        extra.insert("env".into(), json!("prod"));
        let opts = PlaybookOptions {
            extra_vars: extra,
            ..PlaybookOptions::default()
        };
        let plan = load_playbook(&dir.path().join("play.yml"), &opts).unwrap();
        assert_eq!(plan.plays[0].hosts, ["web:&prod"]);
        assert_eq!(plan.plays[0].vars["level"], json!(3));
        assert_eq!(block(&plan.plays[0].tasks[0])[0].args["msg"], json!("prod"));
    }

    // ---------------------------------------------------------------- refusals

    #[test]
    fn two_module_keys() {
        let msg = err_text(
            "- hosts: all\n  tasks:\n    - name: both\n      command: ls\n      shell: ls\n",
        );
        assert!(msg.contains("play.yml"), "{msg}");
        assert!(msg.contains("tasks[0] 'both'"), "{msg}");
        assert!(
            msg.contains("more than one module key (`command`, `shell`)"),
            "{msg}"
        );
    }

    #[test]
    fn no_module() {
        let msg = err_text("- hosts: all\n  tasks:\n    - name: nothing\n      register: x\n");
        assert!(msg.contains("no module"), "{msg}");
    }

    #[test]
    fn unknown_keywords() {
        let msg = err_text(
            "- hosts: all\n  tasks:\n    - name: typo\n      debug: msg=x\n      whne: x\n",
        );
        assert!(msg.contains("tasks[0] 'typo'"), "{msg}");
        assert!(
            msg.contains("unknown keyword `whne`; did you mean `when`?"),
            "{msg}"
        );

        // A lone typo would otherwise be taken for the module.
        let msg = err_text("- hosts: all\n  tasks:\n    - regster: x\n");
        assert!(
            msg.contains("unknown keyword `regster`; did you mean `register`?"),
            "{msg}"
        );

        let msg = err_text("- hosts: all\n  tsks: []\n");
        assert!(
            msg.contains("unknown keyword `tsks`; did you mean `tasks`?"),
            "{msg}"
        );

        let msg = err_text(
            "- hosts: all\n  tasks:\n    - debug: msg=x\n      loop: [1]\n      loop_control: {index_vr: i}\n",
        );
        assert!(
            msg.contains("unknown keyword `index_vr`; did you mean `index_var`?"),
            "{msg}"
        );
    }

    /// Every lookup ansible-core has is a `with_` loop; anything else is named as no lookup.
    #[test]
    fn with_loops_are_lookups() {
        let plan = load_text(
            "- hosts: all\n  tasks:\n    - debug: var=item\n      with_fileglob: ['*.conf']\n    - debug: var=item\n      with_sequence: count=3\n    - debug: var=item\n      with_ansible.builtin.nested: [[1], [2]]\n",
        )
        .unwrap();
        let t = &plan.plays[0].tasks;
        assert_eq!(t[0].loop_with.as_deref(), Some("fileglob"));
        assert_eq!(t[0].loop_, Some(json!(["*.conf"])));
        assert_eq!(t[1].loop_with.as_deref(), Some("sequence"));
        assert_eq!(t[1].loop_, Some(json!("count=3")));
        assert_eq!(t[2].loop_with.as_deref(), Some("ansible.builtin.nested"));

        let msg =
            err_text("- hosts: all\n  tasks:\n    - debug: var=item\n      with_nosuch: [1]\n");
        assert!(
            msg.contains("`with_nosuch`") && msg.contains("there is no lookup named 'nosuch'"),
            "{msg}"
        );
        let msg = err_text(
            "- hosts: all\n  tasks:\n    - debug: var=item\n      with_items: [1]\n      loop: [2]\n",
        );
        assert!(
            msg.contains("a task takes one loop, `with_items` is already given"),
            "{msg}"
        );
        let msg = err_text(
            "- hosts: all\n  tasks:\n    - block: [{debug: msg=x}]\n      with_items: [1]\n",
        );
        assert!(msg.contains("`with_items`"), "{msg}");
    }

    #[test]
    fn unsupported_keywords() {
        for (keyword, text) in [
            (
                "debugger",
                "- hosts: all\n  tasks:\n    - command: ls\n      debugger: always\n",
            ),
            (
                "run_once",
                "- hosts: all\n  run_once: true\n  tasks:\n    - include_tasks: x.yml\n",
            ),
            ("serial", "- hosts: all\n  serial: [1, 5]\n  tasks: []\n"),
            ("include", "- hosts: all\n  tasks:\n    - include: x.yml\n"),
        ] {
            let msg = err_text(text);
            assert!(
                msg.contains(&format!("`{keyword}` is not supported yet")),
                "{keyword}: {msg}"
            );
            // The file, the line of the keyword, the path to it.
            let line = text
                .lines()
                .position(|l| l.trim_start().trim_start_matches("- ").starts_with(keyword))
                .unwrap()
                + 1;
            assert!(
                msg.contains(&format!("play.yml:{line}: plays[0]")),
                "{keyword}: {msg}"
            );
        }
    }

    #[test]
    fn errors_in_included_files_and_roles_name_the_line() {
        let dir = project(&[
            (
                "play.yml",
                "---\n- name: p\n  hosts: all\n  roles: [r]\n  tasks:\n  - name: ok\n    debug: msg=x\n  - import_tasks: inc.yml\n",
            ),
            ("roles/r/tasks/main.yml", "- debug: msg=x\n"),
            (
                "inc.yml",
                "# included\n- name: fine\n  debug: msg=y\n\n- name: bad\n  command: ls\n  debugger: always\n",
            ),
        ]);
        let msg = load_playbook(&dir.path().join("play.yml"), &PlaybookOptions::default())
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("inc.yml:7: tasks[1] 'bad': `debugger` is not supported yet"),
            "{msg}"
        );
        let dir = project(&[
            ("play.yml", "- hosts: all\n  roles: [r]\n"),
            (
                "roles/r/tasks/main.yml",
                "- debug: msg=x\n- block:\n    - command: ls\n      whne: x\n",
            ),
        ]);
        let msg = load_playbook(&dir.path().join("play.yml"), &PlaybookOptions::default())
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("main.yml:4: tasks[1] > block[0]: unknown keyword `whne`"),
            "{msg}"
        );
    }

    #[test]
    fn bad_yaml_names_the_line() {
        let dir = project(&[(
            "play.yml",
            "- hosts: all\n  tasks:\n    - debug: msg=x\n   bad: [\n",
        )]);
        let err =
            load_playbook(&dir.path().join("play.yml"), &PlaybookOptions::default()).unwrap_err();
        match &err {
            PlaybookError::Yaml { file, line, .. } => {
                assert!(file.ends_with("play.yml"));
                assert_eq!(*line, Some(4), "{err}");
            }
            other => panic!("{other}"),
        }
        assert!(err.to_string().contains("play.yml:4:"), "{err}");
    }

    #[test]
    fn missing_role() {
        let msg = err_text("- hosts: all\n  roles:\n    - nosuchrole\n");
        assert!(msg.contains("plays[0] > roles[0] 'nosuchrole'"), "{msg}");
        assert!(msg.contains("'nosuchrole' not found"), "{msg}");
        assert!(msg.contains("roles/nosuchrole"), "{msg}");
    }

    #[test]
    fn missing_and_cyclic_includes() {
        let msg = err_text("- hosts: all\n  tasks:\n    - import_tasks: nope.yml\n");
        assert!(
            msg.contains("`import_tasks`: 'nope.yml' not found"),
            "{msg}"
        );

        let dir = project(&[
            (
                "play.yml",
                "- hosts: all\n  tasks:\n    - import_tasks: a.yml\n",
            ),
            ("a.yml", "- import_tasks: b.yml\n"),
            ("b.yml", "- import_tasks: a.yml\n"),
        ]);
        let msg = load_playbook(&dir.path().join("play.yml"), &PlaybookOptions::default())
            .unwrap_err()
            .to_string();
        assert!(msg.contains("includes itself"), "{msg}");

        let msg = err_text("- import_playbook: other.yml\n");
        assert!(
            msg.contains("`import_playbook`: 'other.yml' not found"),
            "{msg}"
        );

        // include_tasks is resolved on the host when it runs: a name only known there,
        // or a file that is not there, is not an error when the plan is made.
        for name in ["\"{{ dynamic }}.yml\"", "nope.yml"] {
            let plan = load_text(&format!(
                "- hosts: all\n  tasks:\n    - include_tasks: {name}\n"
            ))
            .unwrap();
            assert_eq!(plan.plays[0].tasks[0].module, "include_tasks");
            assert_eq!(
                plan.plays[0].tasks[0].args["file"],
                json!(name.trim_matches('"'))
            );
        }
    }

    #[test]
    fn a_vaulted_file_needs_the_password_an_inline_value_does_not() {
        let dir = project(&[
            (
                "play.yml",
                "- hosts: all\n  vars_files: [secret.yml]\n  tasks: []\n",
            ),
            ("secret.yml", "$ANSIBLE_VAULT;1.1;AES256\n3132333435\n"),
        ]);
        let err =
            load_playbook(&dir.path().join("play.yml"), &PlaybookOptions::default()).unwrap_err();
        assert!(matches!(err, PlaybookError::Vault(_)), "{err}");
        let msg = err.to_string();
        assert!(
            msg.contains("secret.yml is encrypted with Ansible Vault")
                && msg.contains("--vault-password-file"),
            "{msg}"
        );

        // An inline value is not opened until it is used (on the host): the plan
        // carries it encrypted.
        let plan = load_text(
            "- hosts: all\n  vars:\n    password: !vault |\n      $ANSIBLE_VAULT;1.1;AES256\n      3132\n  tasks: []\n",
        )
        .unwrap();
        assert_eq!(
            plan.plays[0].vars["password"],
            serde_json::json!({"__ansible_vault": "$ANSIBLE_VAULT;1.1;AES256\n3132\n"})
        );
    }

    #[test]
    fn vaulted_vars_files_and_inline_values_are_opened() {
        let fx = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ansible_project");
        let secrets = std::fs::read_to_string(fx.join("vars/secrets.yml")).unwrap();
        let inline = std::fs::read_to_string(fx.join("host_vars/web1.yml")).unwrap();
        // An inline value moved into play vars, indented under `vars:`.
        let inline_play: String = inline
            .lines()
            .filter(|l| !l.starts_with("app_port"))
            .map(|l| format!("    {l}\n"))
            .collect();
        let dir = project(&[
            (
                "play.yml",
                &format!(
                    "- hosts: all\n  vars_files: [secret.yml]\n  vars:\n{inline_play}  tasks:\n    - debug: msg={{{{ db_password }}}}\n"
                ),
            ),
            ("secret.yml", &secrets),
        ]);
        let vault =
            rustle_deploy::vault::Vault::from_password_file(&fx.join("vault-password")).unwrap();
        let opts = PlaybookOptions {
            vault: Some(vault),
            ..Default::default()
        };
        let plan = load_playbook(&dir.path().join("play.yml"), &opts).unwrap();
        let vars = &plan.plays[0].vars;
        assert_eq!(vars["db_password"], json!("s3cret-db"));
        assert_eq!(vars["api_token"], json!("tok-42"));
        // A whole vaulted file gives plain values; an inline `!vault` one stays marked as
        // vaulted (Ansible's `AnsibleVaultEncryptedUnicode`), opened.
        assert_eq!(
            rustle_runner::template::opened_vault(&vars["host_secret"]).map(|(plain, _)| plain),
            Some("inline-pass-web1")
        );

        let opts = PlaybookOptions {
            vault: Some(rustle_deploy::vault::Vault::from_password(b"wrong")),
            ..Default::default()
        };
        let msg = load_playbook(&dir.path().join("play.yml"), &opts)
            .unwrap_err()
            .to_string();
        assert!(
            msg.starts_with("HMAC mismatch: wrong vault password for ")
                && msg.ends_with("play.yml:4"),
            "{msg}"
        );
    }

    #[test]
    fn role_files_missing_and_templated() {
        let dir = project(&[
            ("play.yml", "- hosts: all\n  roles: [r]\n"),
            (
                "roles/r/tasks/main.yml",
                "- template: src=gone.j2 dest=/x\n",
            ),
        ]);
        // Missing, or named by a template: the runner looks for it when the task runs
        // (and fails it naming every place it looked), as Ansible does.
        let plan = load(&dir.path().join("play.yml"));
        assert_eq!(
            block(&plan.plays[0].tasks[0])[0].args["src"],
            json!("gone.j2")
        );

        let dir = project(&[
            ("play.yml", "- hosts: all\n  roles: [r]\n"),
            ("roles/r/tasks/main.yml", "- copy: src={{ f }} dest=/x\n"),
            ("roles/r/files/a", "a\n"),
        ]);
        let plan = load(&dir.path().join("play.yml"));
        assert_eq!(
            block(&plan.plays[0].tasks[0])[0].args["src"],
            json!("{{ f }}")
        );
        let root = rustle_deploy::playbook::controller_path(dir.path());
        assert!(plan.files.contains_key(&format!("{root}/roles/r/files/a")));
        let mut want: Vec<String> = ["tasks", "handlers", "vars", "files", "templates"]
            .iter()
            .map(|d| format!("{root}/{d}"))
            .collect();
        want.push(format!("{root}/roles/r"));
        assert_eq!(plan.plays[0].reach, want);
    }

    #[test]
    fn include_role_and_role_keywords() {
        let dir = project(&[
            (
                "play.yml",
                "- hosts: all\n  roles:\n    - role: r\n      when: go\n      http_port: 81\n  tasks:\n    - include_role:\n        name: r\n        tasks_from: other\n        apply: {become: true}\n",
            ),
            ("roles/r/tasks/main.yml", "- debug: msg=main\n"),
            ("roles/r/tasks/other.yml", "- debug: msg=other\n"),
            ("roles/r/defaults/main.yml", "http_port: 80\n"),
        ]);
        let plan = load(&dir.path().join("play.yml"));
        let t = &plan.plays[0].tasks;
        assert_eq!(t[0].when, Some(Condition::One("go".into())));
        let inner = &block(&t[0])[0];
        assert_eq!(
            inner.vars["http_port"],
            json!(81),
            "a role parameter beats the default"
        );
        // include_role runs when it is reached, on the host: the plan carries it, its
        // `apply` keywords, and the role (its meta, files and parsed tasks).
        assert_eq!(t[1].module, "include_role");
        assert_eq!(t[1].args["tasks_from"], json!("other"));
        assert_eq!(t[1].apply.as_ref().unwrap().become_, Some(true.into()));
        let root = rustle_deploy::playbook::controller_path(dir.path());
        assert_eq!(plan.library.roles[&format!("{root}/roles/r")].name, "r");
        assert!(
            plan.library
                .tasks
                .contains_key(&format!("{root}/roles/r/tasks/other.yml"))
        );
        // Ansible refuses keywords for the included tasks on the include itself.
        let msg = err_text(
            "- hosts: all\n  tasks:\n    - include_role:\n        name: r\n      become: true\n",
        );
        assert!(
            msg.contains("`become`: not valid on `include_role`"),
            "{msg}"
        );
    }
    #[test]
    fn import_playbook_from_another_directory() {
        let dir = project(&[
            (
                "site.yml",
                "- import_playbook: sub/inner.yml\n  vars: {x: outer}\n  when: flag\n",
            ),
            (
                "sub/inner.yml",
                "- hosts: all\n  vars: {x: inner, y: 1}\n  tasks:\n    - template: src=t.j2 dest=/t\n",
            ),
            ("sub/templates/t.j2", "{{ x }}\n"),
        ]);
        let plan = load(&dir.path().join("site.yml"));
        let play = &plan.plays[0];
        assert_eq!(
            play.vars["x"],
            json!("outer"),
            "import vars override the play's"
        );
        assert_eq!(play.vars["y"], json!(1));
        assert_eq!(play.tasks[0].when, Some(Condition::One("flag".into())));
        let inner = &block(&play.tasks[0])[0];
        // Found beside the imported playbook, keyed by its path from the top one.
        assert_eq!(inner.args["src"], json!("sub/templates/t.j2"));
        assert_eq!(
            plan.files["sub/templates/t.j2"].content.as_deref(),
            Some("{{ x }}\n")
        );
    }

    #[test]
    fn handler_blocks_are_carried() {
        let plan = load_text(
            "- hosts: all\n  handlers:\n    - name: hb\n      block:\n        - debug: msg=x\n",
        )
        .unwrap();
        assert_eq!(block(&plan.plays[0].handlers[0])[0].module, "debug");
    }

    #[test]
    fn a_roles_script_is_found_in_its_files() {
        // group's `script: 'grouplist.sh "{{ ansible_distribution }}"'` in the role.
        let dir = project(&[
            ("play.yml", "- hosts: all\n  roles: [r]\n"),
            (
                "roles/r/tasks/main.yml",
                "- script: 'list.sh \"{{ x }}\"'\n- script:\n    cmd: list.sh\n",
            ),
            ("roles/r/files/list.sh", "#!/bin/sh\necho hi\n"),
        ]);
        let plan =
            load_playbook(&dir.path().join("play.yml"), &PlaybookOptions::default()).unwrap();
        let tasks = block(&plan.plays[0].tasks[0]);
        assert_eq!(
            tasks[0].args["_raw_params"],
            json!("roles/r/files/list.sh \"{{ x }}\"")
        );
        assert_eq!(tasks[1].args["cmd"], json!("roles/r/files/list.sh"));
        assert!(plan.files.contains_key("roles/r/files/list.sh"));
    }

    #[test]
    fn an_action_plugin_is_refused_naming_it() {
        // until's shell_no_failed: a role's action_plugins/ holds Python for Ansible's
        // controller.
        let dir = project(&[
            ("play.yml", "- hosts: all\n  roles: [r]\n"),
            ("roles/r/tasks/main.yml", "- my_action:\n    cmd: x\n"),
            ("roles/r/action_plugins/my_action.py", "# python\n"),
        ]);
        let msg = load_playbook(&dir.path().join("play.yml"), &PlaybookOptions::default())
            .unwrap_err()
            .to_string();
        assert!(msg.contains("'my_action' is an action plugin"), "{msg}");
        assert!(msg.contains("roles/r/action_plugins/my_action.py"), "{msg}");
    }

    #[test]
    fn a_templated_serial_is_rendered_and_omit_leaves_it_out() {
        // omit's 48673.yml: `serial: "{{ testing_omitted_variable | default(omit) }}"`.
        let plan =
            load_text("- hosts: all\n  serial: \"{{ nope | default(omit) }}\"\n  tasks: []\n")
                .unwrap();
        assert!(
            !plan
                .files
                .contains_key(rustle_deploy::playbook::CARRIED_KEY)
        );
        let plan =
            load_text("- hosts: all\n  vars:\n    n: 3\n  serial: \"{{ n + 1 }}\"\n  tasks: []\n")
                .unwrap();
        let f = &plan.files[rustle_deploy::playbook::CARRIED_KEY];
        let c: Value = serde_json::from_str(f.content.as_deref().unwrap()).unwrap();
        assert_eq!(c["rolling"], json!({"serial": 4}));
    }

    #[test]
    fn serial_goes_with_the_plan_when_plays_agree() {
        let carried = |text: &str| -> Value {
            let plan = load_text(text).unwrap();
            let f = &plan.files[rustle_deploy::playbook::CARRIED_KEY];
            serde_json::from_str(f.content.as_deref().unwrap()).unwrap()
        };
        let c = carried(
            "- hosts: all\n  serial: 2\n  max_fail_percentage: 50\n  tasks: []\n- hosts: web\n  serial: '2'\n  max_fail_percentage: 50\n  tasks: []\n",
        );
        assert_eq!(
            c["rolling"],
            json!({"serial": 2, "max_fail_percentage": 50})
        );
        let c = carried("- hosts: all\n  serial: 30%\n  tasks: []\n");
        assert_eq!(c["rolling"], json!({"serial": "30%"}));
        let r: rustle_deploy::playbook::Rolling =
            serde_json::from_value(c["rolling"].clone()).unwrap();
        // Ansible: 30% of 10 hosts is 3; without max_fail_percentage only a batch where
        // every host failed stops the deploy.
        assert_eq!(r.batches(10), (3, 2));
        assert_eq!(r.batches(2), (1, 0));
        let r = rustle_deploy::playbook::Rolling {
            serial: json!(4),
            max_fail_percentage: Some(25),
        };
        assert_eq!(r.batches(100), (4, 1));

        // max_fail_percentage without serial applies inside the one batch, task by task:
        // a field of the play.
        let plan = load_text("- hosts: all\n  max_fail_percentage: 10\n  tasks: []\n").unwrap();
        assert_eq!(plan.plays[0].max_fail_percentage, Some(10));
        assert!(
            !plan
                .files
                .contains_key(rustle_deploy::playbook::CARRIED_KEY)
        );

        // No serial: nothing carried.
        let plan = load_text("- hosts: all\n  tasks: []\n").unwrap();
        assert!(
            !plan
                .files
                .contains_key(rustle_deploy::playbook::CARRIED_KEY)
        );

        let msg = err_text(
            "- hosts: all\n  serial: 2\n  tasks: []\n- name: second\n  hosts: all\n  tasks: []\n",
        );
        assert!(
            msg.contains("plays[1] 'second': `serial` is not supported yet"),
            "{msg}"
        );
        assert!(
            msg.contains("this play has no serial but") && msg.contains("has serial 2"),
            "{msg}"
        );
        let msg = err_text("- hosts: all\n  serial: 0\n  tasks: []\n");
        assert!(
            msg.contains("`serial`: expected a number of hosts"),
            "{msg}"
        );
    }

    #[test]
    fn extra_vars_forms() {
        use rustle_deploy::playbook::parse_extra_vars;
        let fx = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ansible_project");
        let vault =
            rustle_deploy::vault::Vault::from_password_file(&fx.join("vault-password")).unwrap();
        let dir = project(&[("more.yml", "b: from-file\nlist: [1, 2]\n")]);
        let args = vec![
            "a=1 b='two words' c=yes".to_string(),
            format!("@{}", dir.path().join("more.yml").display()),
            r#"{"d": {"e": true}, "a": 5}"#.to_string(),
            format!("@{}", fx.join("vars/secrets.yml").display()),
        ];
        let vars = parse_extra_vars(&args, Some(&vault)).unwrap();
        assert_eq!(vars["a"], json!(5), "later arguments win");
        assert_eq!(vars["b"], json!("from-file"));
        assert_eq!(vars["c"], json!("yes"), "key=value values are strings");
        assert_eq!(vars["list"], json!([1, 2]));
        assert_eq!(vars["d"], json!({"e": true}));
        assert_eq!(vars["db_password"], json!("s3cret-db"));
        let msg = parse_extra_vars(&["novalue".to_string()], None)
            .unwrap_err()
            .to_string();
        assert!(msg.contains("expected key=value"), "{msg}");
        let msg = parse_extra_vars(
            &[format!("@{}", fx.join("vars/secrets.yml").display())],
            None,
        )
        .unwrap_err()
        .to_string();
        assert!(msg.contains("--vault-password-file"), "{msg}");
    }

    #[test]
    fn inventory_variables_beat_role_defaults() {
        use rustle_deploy::inventory::Inventory;
        use rustle_deploy::playbook::apply_role_defaults;
        let dir = project(&[
            (
                "play.yml",
                "- hosts: all\n  vars: {c: play}\n  roles: [r]\n  tasks:\n    - debug: msg={{ a }}\n",
            ),
            ("roles/r/defaults/main.yml", "a: def\nb: def\nc: def\n"),
            ("roles/r/tasks/main.yml", "- debug: msg={{ b }}\n"),
            (
                "roles/r/handlers/main.yml",
                "- name: h\n  debug: msg=x\n  vars: {b: own}\n",
            ),
        ]);
        let mut plan = load(&dir.path().join("play.yml"));
        let inv =
            Inventory::parse_ini("h1 a=inv\nh2 a=inv b=inv\nh3 a=inv c=inv\nh4\n", "inv").unwrap();
        apply_role_defaults(&mut plan, &inv);
        let by_hosts: Vec<(Vec<String>, &Play)> =
            plan.plays.iter().map(|p| (p.hosts.clone(), p)).collect();
        assert_eq!(by_hosts.len(), 3, "{:#?}", plan.plays);
        for (hosts, play) in by_hosts {
            let role_block = &play.tasks[0].vars;
            let text = serde_json::to_string(&plan.plays).unwrap();
            assert!(!text.contains("__rustle_role_defaults"), "{text}");
            // Play vars beat inventory; `c` stays everywhere.
            assert_eq!(play.vars["c"], json!("play"));
            assert_eq!(play.handlers[0].vars["b"], json!("own"));
            match hosts.as_slice() {
                // h3 sets `c`, but play vars outrank the inventory: same as h1.
                [a, b] if a == "h1" && b == "h3" => {
                    assert!(!play.vars.contains_key("a") && !role_block.contains_key("a"));
                    assert_eq!(role_block["b"], json!("def"));
                }
                [h] if h == "h2" => {
                    assert!(!role_block.contains_key("a") && !role_block.contains_key("b"));
                }
                [h] if h == "h4" => {
                    assert_eq!(play.vars["a"], json!("def"));
                    assert_eq!(role_block["b"], json!("def"));
                }
                other => panic!("unexpected split {other:?}"),
            }
        }
    }

    /// YAML as Ansible reads it, in a role's vars file (where `key: ""` used to be
    /// refused) and in a playbook. The expected values are what ansible-core 2.18.19
    /// gives for the same files (`{{ {...} | to_json }}` in a debug task); `!unsafe`
    /// text is carried as the plan's `{"__ansible_unsafe": ...}` marker.
    #[test]
    fn yaml_as_ansible_reads_it() {
        let dir = project(&[
            (
                "play.yml",
                "- hosts: all\n  gather_facts: false\n  roles: [r]\n  tasks:\n    - command: !unsafe echo {{ x }}\n    - debug: !unsafe msg={{ x }}\n      vars:\n        d: !unsafe {a: '{{ x }}', b: yes}\n",
            ),
            ("roles/r/tasks/main.yml", "- debug: msg=hi\n"),
            (
                "roles/r/vars/main.yml",
                r#"empty: ""
nul:
tilde: ~
flags: [yes, no, on, off, y, n, True, "yes"]
mode: 0755
quoted_mode: "0755"
nine: 09
ratio: 1.0e+3
not_float: 1e3
minutes: 1:30
day: 2024-01-31
base: &base {port: 80, host: a}
site:
  <<: *base
  host: b
raw: !unsafe '{{ not_templated }}'
raw_list: !unsafe ['{{ a }}', 3]
"#,
            ),
        ]);
        let plan = load(&dir.path().join("play.yml"));
        let play = &plan.plays[0];
        let unsafe_ = |s: &str| json!({ "__ansible_unsafe": s });
        let want = json!({
            "empty": "", "nul": null, "tilde": null,
            "flags": [true, false, true, false, "y", "n", true, "yes"],
            "mode": 493, "quoted_mode": "0755", "nine": "09", "ratio": 1000.0,
            "not_float": "1e3", "minutes": 90, "day": "2024-01-31",
            "base": {"port": 80, "host": "a"},
            "site": {"port": 80, "host": "b"},
            "raw": unsafe_("{{ not_templated }}"),
            "raw_list": [unsafe_("{{ a }}"), 3],
        });
        for (k, v) in want.as_object().unwrap() {
            assert_eq!(&play.vars[k], v, "{k}");
        }
        // A raw module's command line stays untemplated; `k=v` text is split into new,
        // templated strings, as Ansible does.
        let t = &play.tasks;
        assert_eq!(t[1].args["_raw_params"], unsafe_("echo {{ x }}"));
        assert_eq!(t[2].args["msg"], json!("{{ x }}"));
        assert_eq!(t[2].vars["d"], json!({"a": unsafe_("{{ x }}"), "b": true}));

        // Tags Ansible's loader has no constructor for are refused with the line.
        let msg =
            err_text("- hosts: all\n  tasks:\n    - debug: msg=x\n      vars: {a: !custom 1}\n");
        assert!(msg.contains("play.yml:4"), "{msg}");
        assert!(msg.contains("'!custom'"), "{msg}");
    }

    /// `-e key=value` values are strings in Ansible (`x is string` holds for `-e x=1`).
    #[test]
    fn extra_vars_key_value_are_strings() {
        let vars =
            rustle_deploy::playbook::parse_extra_vars(&["n=1 b=yes z=null".into()], None).unwrap();
        assert_eq!(
            Value::Object(vars),
            json!({"n": "1", "b": "yes", "z": "null"})
        );
    }

    /// Keywords Ansible templates are carried as written, for the runner to evaluate on
    /// the host (they used to be refused: "the plan needs a literal"), and literals get
    /// Ansible's types (`delay` is a float).
    /// The assemble target's role copies `src: ./` (its `files/`): that name was also
    /// looked for beside the top playbook, which walked the whole playbook directory and
    /// stopped at the first vaulted file there. The role's directory is named by its
    /// controller path instead.
    #[test]
    fn a_role_copy_of_its_files_directory_does_not_walk_the_playbook_directory() {
        let dir = project(&[
            ("play.yml", "- hosts: all\n  roles: [r]\n"),
            ("roles/r/tasks/main.yml", "- copy: src=./ dest=/tmp/x/\n"),
            ("roles/r/files/fragment1", "one\n"),
            ("secret.yml", "$ANSIBLE_VAULT;1.1;AES256\n6162\n"),
        ]);
        let mut plan = load(&dir.path().join("play.yml"));
        rustle_deploy::plan::attach_files(&mut plan, dir.path()).unwrap();
        let mut all = Vec::new();
        for t in &plan.plays[0].tasks {
            t.walk(&mut all);
        }
        let copy = all.iter().find(|t| t.module == "copy").unwrap();
        let src = copy.args["src"].as_str().unwrap();
        assert!(src.ends_with("/roles/r/files/"), "{src}");
        assert!(!plan.files.keys().any(|k| k.contains("secret")));
    }

    /// assemble with `remote_src: false` reads a controller directory as copy does: in
    /// a role, its `files/`, named by controller path, never the playbook's directory.
    #[test]
    fn a_role_assemble_from_its_files_directory_does_not_walk_the_playbook_directory() {
        let dir = project(&[
            ("play.yml", "- hosts: all\n  roles: [r]\n"),
            (
                "roles/r/tasks/main.yml",
                "- assemble: src=./ dest=/tmp/x remote_src=no\n",
            ),
            ("roles/r/files/fragment1", "one\n"),
            ("secret.yml", "$ANSIBLE_VAULT;1.1;AES256\n6162\n"),
        ]);
        let mut plan = load(&dir.path().join("play.yml"));
        rustle_deploy::plan::attach_files(&mut plan, dir.path()).unwrap();
        let mut all = Vec::new();
        for t in &plan.plays[0].tasks {
            t.walk(&mut all);
        }
        let task = all.iter().find(|t| t.module == "assemble").unwrap();
        let src = task.args["src"].as_str().unwrap();
        assert!(src.ends_with("/roles/r/files/"), "{src}");
        assert!(!plan.files.keys().any(|k| k.contains("secret")));
    }

    /// `diff:` on plays, blocks and tasks used to be refused ("per-task diff mode is
    /// not carried by the plan"); it is carried, literal or template, for the runner.
    #[test]
    fn diff_keyword_is_carried_on_plays_blocks_and_tasks() {
        use rustle_runner::plan::Templated;
        let plan = load_text(
            r#"
- hosts: all
  diff: yes
  tasks:
    - block:
        - command: ls
          diff: "{{ show }}"
      diff: false
"#,
        )
        .unwrap();
        let play = &plan.plays[0];
        assert_eq!(play.diff, Some(true.into()));
        let block = &play.tasks[0];
        assert_eq!(block.diff, Some(false.into()));
        let inner = &block.block.as_ref().unwrap()[0];
        assert_eq!(inner.diff, Some(Templated::Template("{{ show }}".into())));
    }

    #[test]
    fn a_blocks_notify_reaches_the_tasks_inside_that_notify_nothing() {
        // geerlingguy.docker puts `notify` on a block, as Ansible allows: each task
        // inside notifies it unless it names handlers of its own.
        let plan = load_text(
            r#"
- hosts: all
  tasks:
    - block:
        - command: ls
        - command: pwd
          notify: own
        - block:
            - command: id
      rescue:
        - command: "true"
      notify: restart
  handlers:
    - name: restart
      command: "true"
    - name: own
      command: "true"
"#,
        )
        .unwrap();
        let outer = &plan.plays[0].tasks[0];
        let inner = block(outer);
        assert_eq!(inner[0].notify, ["restart"]);
        assert_eq!(inner[1].notify, ["own"]);
        assert_eq!(block(&inner[2])[0].notify, ["restart"]);
        assert_eq!(outer.rescue[0].notify, ["restart"]);
    }

    #[test]
    fn templated_keywords_are_carried_for_the_host() {
        use rustle_runner::plan::Templated;
        let plan = load_text(
            r#"
- hosts: all
  ignore_errors: "{{ lenient }}"
  check_mode: no
  no_log: "{{ quiet }}"
  become: "{{ want_root }}"
  tasks:
    - command: ls
      ignore_errors: "{{ ansible_check_mode }}"
      delay: 0.5
      retries: "{{ n + 2 }}"
      until: r is success
      register: r
      become: "{{ b }}"
      check_mode: "{{ dry }}"
      no_log:
    - debug: var=item
      loop: [1, 2]
      loop_control:
        pause: "{{ p }}"
        extended: "{{ ext }}"
        loop_var: "{{ lv }}"
"#,
        )
        .unwrap();
        let tpl = |s: &str| Some(Templated::Template(s.to_string()));
        let play = &plan.plays[0];
        assert_eq!(play.ignore_errors, tpl("{{ lenient }}"));
        assert_eq!(play.check_mode, Some(false.into()));
        assert_eq!(play.no_log, tpl("{{ quiet }}"));
        assert_eq!(play.become_, tpl("{{ want_root }}"));
        let t = &play.tasks[0];
        assert_eq!(t.ignore_errors, tpl("{{ ansible_check_mode }}"));
        assert_eq!(t.delay, Some(0.5.into()));
        assert_eq!(t.retries, Some(Templated::Template("{{ n + 2 }}".into())));
        assert_eq!(t.become_, tpl("{{ b }}"));
        assert_eq!(t.check_mode, tpl("{{ dry }}"));
        assert_eq!(t.no_log, None, "a null keyword is unset, as in Ansible");
        let lc = play.tasks[1].loop_control.as_ref().unwrap();
        assert_eq!(lc.pause, Some(Templated::Template("{{ p }}".into())));
        assert_eq!(lc.extended, tpl("{{ ext }}"));
        assert_eq!(lc.loop_var.as_deref(), Some("{{ lv }}"));

        let msg = err_text("- hosts: all\n  tasks:\n    - command: ls\n      retries: many\n");
        assert!(
            msg.contains("`retries`: expected an integer or a template"),
            "{msg}"
        );
        let msg =
            err_text("- hosts: all\n  tasks:\n    - command: ls\n      ignore_errors: perhaps\n");
        assert!(msg.contains("expected a boolean, found 'perhaps'"), "{msg}");
    }

    #[test]
    fn timeout_and_remote_user_are_carried_on_plays_blocks_and_tasks() {
        use rustle_runner::plan::Templated;
        let plan = load_text(
            "- hosts: all\n  timeout: 30\n  remote_user: deploy\n  tasks:\n    - block:\n        - command: ls\n          timeout: \"{{ t }}\"\n          remote_user: admin\n      timeout: 5\n",
        )
        .unwrap();
        let play = &plan.plays[0];
        assert_eq!(play.timeout, Some(Templated::Value(30)));
        assert_eq!(play.remote_user.as_deref(), Some("deploy"));
        let b = &play.tasks[0];
        assert_eq!(b.timeout, Some(Templated::Value(5)));
        let t = &block(b)[0];
        assert_eq!(t.timeout, Some(Templated::Template("{{ t }}".into())));
        assert_eq!(t.remote_user.as_deref(), Some("admin"));
        let msg = err_text("- hosts: all\n  tasks:\n    - command: ls\n      timeout: soon\n");
        assert!(msg.contains("timeout") && msg.contains("'soon'"), "{msg}");
    }

    #[test]
    fn import_tasks_hands_delegate_to_run_once_and_notify_to_the_imported_tasks() {
        let dir = project(&[
            (
                "play.yml",
                "- hosts: all\n  tasks:\n    - import_tasks: inner.yml\n      delegate_to: localhost\n      run_once: true\n      notify: restart\n  handlers:\n    - name: restart\n      debug: msg=r\n",
            ),
            (
                "inner.yml",
                "- command: ls\n- command: id\n  delegate_to: 127.0.0.1\n  notify: own\n",
            ),
        ]);
        let plan = load(&dir.path().join("play.yml"));
        let inner = block(&plan.plays[0].tasks[0]);
        assert_eq!(inner[0].delegate_to.as_deref(), Some("localhost"));
        assert!(inner[0].may_run_once() && inner[1].may_run_once());
        assert_eq!(inner[0].notify, ["restart"]);
        // A task's own keyword wins over the import's.
        assert_eq!(inner[1].delegate_to.as_deref(), Some("127.0.0.1"));
        assert_eq!(inner[1].notify, ["own"]);
    }

    #[test]
    fn include_role_named_by_its_path_under_role_path_travels() {
        let dir = project(&[
            ("play.yml", "- hosts: all\n  roles:\n    - outer\n"),
            (
                "roles/outer/tasks/main.yml",
                "- include_role:\n    name: \"{{ role_path }}/roles/a\"\n",
            ),
            ("roles/outer/roles/a/tasks/main.yml", "- debug: msg=a\n"),
        ]);
        let plan = load(&dir.path().join("play.yml"));
        let want =
            rustle_deploy::playbook::controller_path(&dir.path().join("roles/outer/roles/a"));
        assert!(
            plan.library.roles.values().any(|r| r.path == want),
            "{:?}",
            plan.library.roles.keys().collect::<Vec<_>>()
        );
    }

    /// omit target (setup_test_user): a role entry's `become_user` reaches the role's
    /// handlers, below a handler's own.
    #[test]
    fn a_role_entrys_become_applies_to_its_handlers() {
        let dir = project(&[
            (
                "play.yml",
                "- hosts: all\n  become: yes\n  become_user: nobody\n  roles:\n    - name: r\n      become_user: root\n",
            ),
            (
                "roles/r/tasks/main.yml",
                "- command: /bin/true\n  notify: [h1, h2]\n",
            ),
            (
                "roles/r/handlers/main.yml",
                "- name: h1\n  command: /bin/true\n- name: h2\n  command: /bin/true\n  become_user: app\n",
            ),
        ]);
        let plan = load(&dir.path().join("play.yml"));
        let h = &plan.plays[0].handlers;
        assert_eq!(h[0].become_user.as_deref(), Some("root"));
        assert_eq!(h[1].become_user.as_deref(), Some("app"));
    }

    /// include_vars target: a `dir:` under `role_path`, outside the role's `vars/`,
    /// travels with its variables files parsed, as a literal `file:` under it does.
    #[test]
    fn include_vars_dir_named_under_role_path_travels() {
        let dir = project(&[
            ("play.yml", "- hosts: all\n  roles:\n    - r\n"),
            (
                "roles/r/tasks/main.yml",
                "- include_vars:\n    dir: \"{{ role_path }}/vars2/hashes/\"\n- include_vars:\n    file: \"{{ role_path }}/vars3/keep.yml\"\n",
            ),
            ("roles/r/vars2/hashes/a.yml", "config: {a: 1}\n"),
            ("roles/r/vars2/hashes/deeper/b.yml", "other: 2\n"),
            ("roles/r/vars3/keep.yml", "kept: 3\n"),
            ("roles/r/vars3/not_named.yml", "secret: 4\n"),
        ]);
        let plan = load(&dir.path().join("play.yml"));
        let at = |p: &str| rustle_deploy::playbook::controller_path(&dir.path().join(p));
        for p in [
            "roles/r/vars2/hashes/a.yml",
            "roles/r/vars2/hashes/deeper/b.yml",
            "roles/r/vars3/keep.yml",
        ] {
            assert!(plan.library.vars.contains_key(&at(p)), "{p} not parsed");
        }
        assert!(plan.files.contains_key(&at("roles/r/vars2/hashes/a.yml")));
        // Only what a task names travels.
        assert!(!plan.files.contains_key(&at("roles/r/vars3/not_named.yml")));
        assert!(
            !plan
                .library
                .vars
                .contains_key(&at("roles/r/vars3/not_named.yml"))
        );
    }

    /// handlers target (test_handlers_listen.yml): a role named by its collection
    /// (`ns.col.role`) is found in the collections beside the playbook, as Ansible's
    /// collection loader finds it.
    #[test]
    fn a_collection_role_is_found_in_the_playbooks_collections() {
        let dir = project(&[
            ("play.yml", "- hosts: all\n  roles:\n    - ns.col.r\n"),
            (
                "collections/ansible_collections/ns/col/roles/r/tasks/main.yml",
                "- name: from the collection\n  debug: {msg: hi}\n",
            ),
        ]);
        let plan = load(&dir.path().join("play.yml"));
        let text = serde_json::to_string(&plan.plays[0].tasks).unwrap();
        assert!(text.contains("from the collection"), "{text}");
        // Not there: the error names where it looked, the collection first.
        let dir = project(&[("play.yml", "- hosts: all\n  roles:\n    - ns.col.gone\n")]);
        let e = load_playbook(&dir.path().join("play.yml"), &PlaybookOptions::default())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("collections/ansible_collections/ns/col/roles/gone"),
            "{e}"
        );
    }

    /// handlers target (test_handlers_include.yml): a role's handler file that imports
    /// a file neither the role nor its directories have gets the playbook's, as Ansible's
    /// `path_dwim_relative` finds it.
    #[test]
    fn a_role_handlers_import_falls_back_to_the_playbooks_file() {
        let dir = project(&[
            ("play.yml", "- hosts: all\n  roles:\n    - r\n"),
            (
                "roles/r/tasks/main.yml",
                "- command: /bin/true\n  notify: h\n",
            ),
            ("roles/r/handlers/main.yml", "- import_tasks: shared.yml\n"),
            ("shared.yml", "- name: h\n  debug: {msg: shared handler}\n"),
        ]);
        let plan = load(&dir.path().join("play.yml"));
        let text = serde_json::to_string(&plan.plays[0].handlers).unwrap();
        assert!(text.contains("shared handler"), "{text}");
    }

    /// handlers target (test_handlers_listen.yml): a role's handlers carry the role by
    /// the name it was asked for (a collection's by its FQCN), through which the runner
    /// matches `role : name` and `role : topic`; their own topics stay as written.
    #[test]
    fn role_handlers_carry_the_role_their_prefixed_names_come_from() {
        let dir = project(&[
            ("play.yml", "- hosts: all\n  roles:\n    - ns.col.r\n"),
            (
                "collections/ansible_collections/ns/col/roles/r/tasks/main.yml",
                "- debug: {}\n",
            ),
            (
                "collections/ansible_collections/ns/col/roles/r/handlers/main.yml",
                "- name: h\n  debug: {}\n  listen: topic\n",
            ),
        ]);
        let plan = load(&dir.path().join("play.yml"));
        let handler = &plan.plays[0].handlers[0];
        assert_eq!(handler.listen, ["topic"]);
        let role = handler.origin.as_ref().and_then(|o| o.role.as_ref());
        assert_eq!(role.map(|r| r.name.as_str()), Some("ns.col.r"));
    }

    /// handlers target (handler_notify_earlier_handler.yml): Ansible flushes handlers
    /// after each section of a play; those after the last section with tasks are the
    /// runner's to make at the end (`end_flushes`, unset meaning one).
    #[test]
    fn a_play_says_how_many_implicit_flushes_follow_its_last_section() {
        let flushes = |play: &str| {
            let dir = project(&[("play.yml", play)]);
            load(&dir.path().join("play.yml")).plays[0].end_flushes
        };
        let task = "\n    - debug: {}\n";
        assert_eq!(flushes(&format!("- hosts: all\n  tasks:{task}")), Some(2));
        assert_eq!(
            flushes(&format!("- hosts: all\n  pre_tasks:{task}")),
            Some(3)
        );
        assert_eq!(
            flushes(&format!("- hosts: all\n  tasks:{task}  post_tasks:{task}")),
            None
        );
    }

    /// handlers target (test_block_as_handler*.yml, test_role_as_handler.yml): what
    /// ansible-playbook refuses among handlers, refused in its words: a block inside a
    /// handler block (or inside an imported handler file's block), and a role.
    #[test]
    fn handlers_refuse_nested_blocks_and_roles_in_ansibles_words() {
        let refused = |files: &[(&str, &str)]| {
            let dir = project(files);
            match load_playbook(&dir.path().join("play.yml"), &PlaybookOptions::default()) {
                Err(e @ PlaybookError::Ansible(_)) => e.to_string(),
                other => panic!("expected Ansible's error, got {other:?}"),
            }
        };
        let nested = "- name: h\n  block:\n    - debug: {}\n    - block:\n        - debug: {}\n";
        let e = refused(&[(
            "play.yml",
            &format!("- hosts: all\n  handlers:\n{}", indent(nested)),
        )]);
        assert!(
            e.starts_with("Using a block as a handler is not supported."),
            "{e}"
        );
        let e = refused(&[
            (
                "play.yml",
                "- hosts: all\n  handlers:\n    - import_tasks: h.yml\n",
            ),
            ("h.yml", nested),
        ]);
        assert!(e.contains("h.yml"), "{e}");
        let e = refused(&[(
            "play.yml",
            "- hosts: all\n  handlers:\n    - name: h\n      include_role: {name: r}\n",
        )]);
        assert!(
            e.starts_with("Using 'include_role' as a handler is not supported."),
            "{e}"
        );
        // A block of the handlers list itself, and blocks among tasks, are fine.
        let dir = project(&[(
            "play.yml",
            &format!(
                "- hosts: all\n  tasks:\n{}  handlers:\n    - block:\n        - name: h\n          debug: {{}}\n",
                indent(nested)
            ),
        )]);
        load(&dir.path().join("play.yml"));
    }

    /// `text` indented as a list under a play key.
    fn indent(text: &str) -> String {
        text.lines().map(|l| format!("    {l}\n")).collect()
    }

    #[test]
    fn an_include_role_of_a_role_found_nowhere_fails_only_where_it_is_reached() {
        // any_errors_fatal's 50897.yml: Ansible looks for an included role when a host
        // reaches the include, so a missing one fails that host, with Ansible's message,
        // and the playbook loads. An imported role is read with the playbook: refused.
        let dir = project(&[(
            "play.yml",
            "- hosts: all\n  tasks:\n    - include_role: {name: non-existant-role}\n      when: false\n",
        )]);
        let plan = load(&dir.path().join("play.yml"));
        let why = &plan.library.missing_roles["non-existant-role"];
        assert!(
            why.starts_with("the role 'non-existant-role' was not found in "),
            "{why}"
        );
        let roles = rustle_deploy::playbook::controller_path(&dir.path().join("roles"));
        assert!(why.contains(&roles), "{why}");
        let e = err_text("- hosts: all\n  tasks:\n    - import_role: {name: non-existant-role}\n");
        assert!(e.contains("'non-existant-role' not found"), "{e}");
    }
}
