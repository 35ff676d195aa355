//! Where Ansible decides at run time, the runner does: playbooks are loaded, cut to a host
//! and run by the runner's executor in this process, and what they print is compared with
//! what ansible-core 2.18 prints for the same playbook (each expected value was taken from
//! a run of `ansible-playbook` 2.18.19, noted beside it).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

/// Named so that `cargo test resolve` selects these tests.
mod resolve {
    use rustle_deploy::inventory::Inventory;
    use rustle_deploy::pack::{PayloadSettings, Planner};
    use rustle_deploy::playbook::{PlaybookOptions, load_playbook, load_playbooks};
    use rustle_runner::events::{Collect, Event};
    use rustle_runner::exec::{Executor, RunOptions};
    use serde_json::Value;
    use std::path::Path;

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

    /// What one host's run said.
    struct Run {
        events: Vec<Event>,
    }

    impl Run {
        /// `(task name, status)` of every task, in order.
        fn statuses(&self) -> Vec<(String, String)> {
            self.events
                .iter()
                .filter_map(|e| match e {
                    Event::Task { name, status, .. } => {
                        Some((name.clone(), status.as_str().to_string()))
                    }
                    _ => None,
                })
                .collect()
        }

        /// The `msg` of every `debug` task, in order.
        fn msgs(&self) -> Vec<String> {
            self.events
                .iter()
                .filter_map(|e| match e {
                    Event::Task { result, module, .. } if module == "debug" => {
                        // Other values as Ansible's callback shows them: JSON, keys sorted.
                        result.get("msg").map(|m| match m {
                            Value::String(s) => s.clone(),
                            other => rustle_runner::template::sort_keys(other).to_string(),
                        })
                    }
                    _ => None,
                })
                .collect()
        }

        /// The result of the last task shown as `name`.
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
                .unwrap_or_else(|| panic!("no task {name:?}: {:#?}", self.statuses()))
        }

        /// Ansible's recap line.
        fn recap(&self) -> String {
            match self.events.last() {
                Some(Event::Recap { recap: r, .. }) => format!(
                    "ok={} changed={} failed={} skipped={} rescued={} ignored={}",
                    r.ok, r.changed, r.failed, r.skipped, r.rescued, r.ignored
                ),
                other => panic!("no recap: {other:?}"),
            }
        }
    }

    /// Loads `playbook` (a file in `dir`) with `opts`, cuts it for `host` of the
    /// inventory file `inventory` (in `dir`) and runs it here.
    fn run_with(
        dir: &Path,
        playbook: &str,
        inventory: &str,
        host: &str,
        opts: &PlaybookOptions,
    ) -> Run {
        let mut plan = load_playbook(&dir.join(playbook), opts).unwrap_or_else(|e| panic!("{e}"));
        let mut inv = Inventory::load(&dir.join(inventory)).unwrap();
        if let Some(carried) = rustle_deploy::playbook::Carried::take(&mut plan).unwrap() {
            carried.apply(&mut inv).unwrap();
        }
        rustle_deploy::playbook::apply_role_defaults(&mut plan, &inv);
        rustle_deploy::pack::check_modules(&mut plan).unwrap();
        let settings = PayloadSettings {
            deployment_id: "resolve-test".into(),
            created_at: 0,
            check_mode: false,
            diff_mode: false,
        };
        let mut planner = Planner::new(&plan, &inv, &settings).unwrap();
        let hp = planner.host_plan(inv.host(host).unwrap()).unwrap();
        let mut sink = Collect::default();
        Executor::new(&hp, &mut sink, RunOptions::default()).run();
        Run { events: sink.0 }
    }

    fn run(dir: &Path, playbook: &str, host: &str) -> Run {
        run_with(
            dir,
            playbook,
            "hosts.ini",
            host,
            &PlaybookOptions::default(),
        )
    }

    const HOSTS: &str = "[web]\nweb1 ansible_connection=local color=blue\n\
        web2 ansible_connection=local color=green\n\
        [db]\ndb1 ansible_connection=local color=red ansible_become_password=nope\n\
        [app:children]\nweb\n";

    #[test]
    fn magic_variables_about_the_inventory_and_the_play() {
        let dir = project(&[
            ("hosts.ini", HOSTS),
            (
                "site.yml",
                r#"
- hosts: web
  gather_facts: false
  tasks:
    - debug:
        msg: "{{ inventory_hostname }} {{ inventory_hostname_short }} {{ group_names }} {{ groups.all | sort }} {{ groups.web }} {{ groups.app }} {{ groups.db }} {{ groups.ungrouped }} {{ ansible_play_hosts }} {{ ansible_play_hosts_all }} {{ ansible_play_batch }} {{ play_hosts }} {{ ansible_play_name }}"
    - debug:
        msg: "{{ hostvars['db1'].color }} {{ hostvars[inventory_hostname].color }} {{ hostvars['db1'].group_names }} {{ hostvars.web2.inventory_hostname }}"
    - set_fact:
        mine: "x"
    - debug:
        msg: "{{ hostvars[inventory_hostname].mine }} {{ inventory_file | basename }} {{ ansible_version.major }}.{{ ansible_version.minor }} {{ ansible_run_tags }} {{ ansible_skip_tags }} {{ ansible_check_mode }} {{ ansible_diff_mode }}"
    - debug:
        msg: "{{ ansible_role_names }} {{ ansible_play_role_names }} {{ role_names }} {{ ansible_dependent_role_names }}"
"#,
            ),
        ]);
        let run = run(dir.path(), "site.yml", "web1");
        // ansible-playbook 2.18.19 -i hosts.ini site.yml, host web1.
        assert_eq!(
            run.msgs(),
            vec![
                "web1 web1 ['app', 'web'] ['db1', 'web1', 'web2'] ['web1', 'web2'] ['web1', 'web2'] ['db1'] [] ['web1', 'web2'] ['web1', 'web2'] ['web1', 'web2'] ['web1', 'web2'] web",
                "red blue ['db'] web2",
                "x hosts.ini 2.18 ['all'] [] False False",
                "[] [] [] []",
            ]
        );
        assert_eq!(
            run.recap(),
            "ok=5 changed=0 failed=0 skipped=0 rescued=0 ignored=0"
        );
    }

    #[test]
    fn connection_settings_and_verbosity_are_variables_as_in_ansible() {
        // PlayContext.update_vars: the address and connection type are variables even
        // when the inventory does not set them (lookup_vars reads `ansible_host`).
        let dir = project(&[
            (
                "hosts.ini",
                "[web]\nweb1 ansible_connection=local\nweb2 ansible_ssh_host=10.0.0.2 ansible_connection=local\nweb3 ansible_host=10.0.0.3\n",
            ),
            (
                "site.yml",
                r#"
- hosts: web
  gather_facts: false
  tasks:
    - debug:
        msg: "{{ ansible_host }} {{ ansible_ssh_host }} {{ ansible_connection }} {{ lookup('vars', 'ansible_host') }} {{ ansible_verbosity }}"
"#,
            ),
        ]);
        let msgs = |h| run(dir.path(), "site.yml", h).msgs();
        assert_eq!(msgs("web1"), vec!["web1 web1 local web1 0"]);
        assert_eq!(msgs("web2"), vec!["10.0.0.2 10.0.0.2 local 10.0.0.2 0"]);
        assert_eq!(msgs("web3"), vec!["10.0.0.3 10.0.0.3 ssh 10.0.0.3 0"]);
    }

    #[test]
    fn playbook_and_inventory_directories_are_the_controller_paths() {
        let dir = project(&[
            ("inv/hosts.ini", HOSTS),
            (
                "pb/site.yml",
                r#"
- hosts: web1
  gather_facts: false
  tasks:
    - debug:
        msg: "{{ playbook_dir }}|{{ inventory_dir }}|{{ inventory_file }}"
"#,
            ),
        ]);
        let run = run_with(
            dir.path(),
            "pb/site.yml",
            "inv/hosts.ini",
            "web1",
            &PlaybookOptions::default(),
        );
        let root = dir.path().display();
        assert_eq!(
            run.msgs(),
            vec![format!("{root}/pb|{root}/inv|{root}/inv/hosts.ini")]
        );
    }

    #[test]
    fn other_hosts_connection_secrets_are_not_in_hostvars() {
        // Ansible would show 'nope' here: rustle-deploy never carries a connection
        // secret in a payload, another host's least of all.
        let dir = project(&[
            ("hosts.ini", HOSTS),
            (
                "site.yml",
                r#"
- hosts: web1
  gather_facts: false
  tasks:
    - debug:
        msg: "{{ hostvars['db1'].ansible_become_password | default('absent') }}"
"#,
            ),
        ]);
        assert_eq!(run(dir.path(), "site.yml", "web1").msgs(), vec!["absent"]);
    }

    #[test]
    fn tags_given_to_the_run_are_magic_variables() {
        let dir = project(&[
            ("hosts.ini", HOSTS),
            (
                "site.yml",
                r#"
- hosts: web1
  gather_facts: false
  tasks:
    - debug:
        msg: "{{ ansible_run_tags | sort }} {{ ansible_skip_tags }}"
      tags: x
"#,
            ),
        ]);
        let opts = PlaybookOptions {
            tags: vec!["x,y".into()],
            skip_tags: vec!["z".into()],
            ..PlaybookOptions::default()
        };
        // ansible-playbook --tags x,y --skip-tags z: ['y', 'x'] (a set) and ['z'].
        assert_eq!(
            run_with(dir.path(), "site.yml", "hosts.ini", "web1", &opts).msgs(),
            vec!["['x', 'y'] ['z']"]
        );
    }

    #[test]
    fn an_argument_that_renders_to_omit_is_left_out() {
        let dir = project(&[
            ("hosts.ini", HOSTS),
            (
                "site.yml",
                r#"
- hosts: web1
  gather_facts: false
  tasks:
    - name: omit drops the argument
      debug:
        msg: "{{ nope | default(omit) }}"
    - name: omit in a nested mapping
      set_fact:
        d: {a: 1, b: "{{ omit }}", c: [ "{{ omit }}", {e: "{{ omit }}", f: 2} ]}
    - debug:
        msg: "{{ d.a }} {{ d.b | default('no b') }} {{ d.c[0] == omit }} {{ d.c[1] }}"
    - name: set_fact with omit
      set_fact:
        gone: "{{ omit }}"
        kept: 1
    - debug:
        msg: "{{ gone | default('undefined') }} {{ kept }}"
    - name: a keyword that renders to omit is unset
      command: /bin/false
      ignore_errors: "{{ omit }}"
"#,
            ),
        ]);
        let run = run(dir.path(), "site.yml", "web1");
        // ansible-playbook 2.18.19: "Hello world!" (debug's default message), d is
        // {'a': 1, 'c': ['__omit_place_holder__...', {'f': 2}]}, gone is undefined, and
        // the command fails, not ignored.
        assert_eq!(
            run.msgs()[..3],
            ["Hello world!", "1 no b True {'f': 2}", "undefined 1"]
        );
        assert_eq!(
            run.statuses().last().unwrap(),
            &(
                "a keyword that renders to omit is unset".to_string(),
                "failed".to_string()
            )
        );
        assert_eq!(
            run.recap(),
            "ok=5 changed=0 failed=1 skipped=0 rescued=0 ignored=0"
        );
        let _ = run.result("omit drops the argument");
    }

    /// A project with a role whose tasks include a file named by a variable, a handler
    /// that is an include, loops over includes and `apply`.
    fn include_project() -> tempfile::TempDir {
        project(&[
            ("hosts.ini", "web1 ansible_connection=local\n"),
            (
                "site.yml",
                r#"
- hosts: web1
  gather_facts: false
  vars:
    os: Debian
  roles:
    - r
  tasks:
    - include_tasks: inc.yml
      vars: {v: 1}
      loop: [a, b]
      loop_control: {loop_var: lv}
    - include_tasks: inc.yml
      when: false
    - name: apply keywords
      include_tasks:
        file: applied.yml
        apply:
          vars: {av: applied}
          when: av is defined
    - import_role:
        name: p
    - debug: msg="{{ ansible_parent_role_names | default('none') }}"
"#,
            ),
            (
                "inc.yml",
                "- debug: msg=\"inc {{ lv | default('-') }} {{ v | default('-') }} {{ ansible_search_path }}\"\n",
            ),
            ("applied.yml", "- debug: msg=\"applied {{ av }}\"\n"),
            (
                "roles/r/tasks/main.yml",
                r#"
- debug: msg="{{ role_name }} {{ role_path == playbook_dir + '/roles/r' }} {{ ansible_search_path | map('replace', playbook_dir, '.') | list }}"
- include_tasks: "{{ os }}.yml"
- command: /bin/true
  notify: cleanup
"#,
            ),
            (
                "roles/r/tasks/Debian.yml",
                "- debug: msg=\"debian {{ ansible_search_path | map('replace', playbook_dir, '.') | list }} {{ role_name }}\"\n",
            ),
            // Uses what rustle-deploy refuses: only a host that includes it fails.
            (
                "roles/r/tasks/RedHat.yml",
                "- debug: msg=redhat\n  debugger: always\n",
            ),
            (
                "roles/r/tasks/cleanup.yml",
                "- debug: msg=\"cleaning {{ role_name }}\"\n",
            ),
            (
                "roles/r/handlers/main.yml",
                "- name: cleanup\n  include_tasks: cleanup.yml\n  when: not skip_cleanup | bool\n",
            ),
            ("roles/r/defaults/main.yml", "skip_cleanup: no\n"),
            (
                "roles/p/tasks/main.yml",
                "- debug: msg=\"p {{ ansible_parent_role_names | default('none') }} {{ role_name }}\"\n",
            ),
        ])
    }

    #[test]
    fn include_tasks_is_resolved_when_it_runs() {
        let dir = include_project();
        let run = run(dir.path(), "site.yml", "web1");
        let root = std::fs::canonicalize(dir.path()).unwrap();
        let msgs: Vec<String> = run
            .msgs()
            .into_iter()
            .map(|m| {
                m.replace(&root.display().to_string(), "ROOT")
                    .replace(&dir.path().display().to_string(), "ROOT")
            })
            .collect();
        // ansible-playbook 2.18.19 -i hosts.ini site.yml (the project in /tmp/jexp/inc
        // there, shown as ROOT here).
        assert_eq!(
            msgs,
            vec![
                "r True ['./roles/r', './roles/r/tasks', '.']",
                "debian ['./roles/r', './roles/r/tasks', '.'] r",
                "inc a 1 ['ROOT']",
                "inc b 1 ['ROOT']",
                "applied applied",
                "p none p",
                "none",
                "cleaning r",
            ]
        );
        assert_eq!(
            run.recap(),
            "ok=14 changed=1 failed=0 skipped=1 rescued=0 ignored=0"
        );
        let includes: Vec<(String, String)> = run
            .statuses()
            .into_iter()
            .filter(|(n, _)| n == "include_tasks" || n == "cleanup" || n == "apply keywords")
            .collect();
        // The looped include is one result, as ansible-playbook shows it (its recap
        // above still counts one ok per item).
        assert_eq!(includes.len(), 5, "{includes:?}");
        let looped = run
            .events
            .iter()
            .find_map(|e| match e {
                Event::Task { name, result, .. }
                    if name == "include_tasks" && result.get("results").is_some() =>
                {
                    Some(result)
                }
                _ => None,
            })
            .unwrap();
        assert_eq!(
            looped["results"].as_array().map(Vec::len),
            Some(2),
            "{looped}"
        );
        let r = run.result("cleanup");
        assert!(
            r["include"]
                .as_str()
                .unwrap()
                .ends_with("/roles/r/tasks/cleanup.yml"),
            "{r}"
        );
    }

    #[test]
    fn a_refused_candidate_fails_only_where_it_is_included() {
        let dir = include_project();
        let opts = PlaybookOptions {
            extra_vars: serde_json::json!({"os": "RedHat"})
                .as_object()
                .cloned()
                .unwrap(),
            ..PlaybookOptions::default()
        };
        let run = run_with(dir.path(), "site.yml", "hosts.ini", "web1", &opts);
        let failed = run.result("include_tasks");
        let msg = failed["msg"].as_str().unwrap();
        assert!(
            msg.contains("roles/r/tasks/RedHat.yml cannot be included")
                && msg.contains("RedHat.yml:2")
                && msg.contains("debugger"),
            "{msg}"
        );
        assert_eq!(
            run.recap(),
            "ok=1 changed=0 failed=1 skipped=0 rescued=0 ignored=0"
        );
    }

    #[test]
    fn a_missing_include_names_where_it_looked() {
        let dir = project(&[
            ("hosts.ini", "web1 ansible_connection=local\n"),
            (
                "site.yml",
                "- hosts: web1\n  gather_facts: false\n  tasks:\n    - include_tasks: nope.yml\n      ignore_errors: true\n    - debug: msg=after\n",
            ),
        ]);
        let run = run(dir.path(), "site.yml", "web1");
        // ansible-playbook: fatal, "Could not find or access '<dir>/nope.yml' on the
        // Ansible Controller.", ok=0 failed=1: ignore_errors does not apply.
        let msg = run.result("include_tasks")["reason"]
            .as_str()
            .unwrap()
            .to_string();
        let pb = dir.path().display().to_string();
        assert!(
            msg.starts_with(&format!(
                "Could not find or access '{pb}/nope.yml' on the Ansible Controller."
            )),
            "{msg}"
        );
        assert_eq!(
            run.recap(),
            "ok=0 changed=0 failed=1 skipped=0 rescued=0 ignored=0"
        );
    }

    #[test]
    fn template_and_copy_sources_are_found_when_the_task_runs() {
        let dir = project(&[
            ("hosts.ini", "web1 ansible_connection=local\n"),
            ("roles/w/templates/a.j2", "role {{ who }}\n"),
            ("templates/a.j2", "play {{ who }}\n"),
            ("templates/b.j2", "play b {{ who }}\n"),
            ("roles/w/files/conf/one", "one\n"),
            ("roles/w/files/conf/sub/two", "two\n"),
            (
                "roles/w/tasks/main.yml",
                r#"
- template: src="{{ name }}.j2" dest="{{ out }}/role-a"
- template: src="{{ 'b' }}.j2" dest="{{ out }}/role-b"
- copy: src="{{ 'conf' }}/" dest="{{ out }}/conf"
- name: missing
  template: src="{{ 'missing' }}.j2" dest="{{ out }}/m"
  ignore_errors: true
"#,
            ),
            (
                "site.yml",
                r#"
- hosts: web1
  gather_facts: false
  vars: {who: me, name: a}
  roles: [w]
  tasks:
    - template: src="{{ name }}.j2" dest="{{ out }}/play-a"
    - command: cat {{ out }}/role-a {{ out }}/role-b {{ out }}/play-a {{ out }}/conf/one {{ out }}/conf/sub/two
      register: c
    - debug: msg="{{ c.stdout_lines }}"
"#,
            ),
        ]);
        let out = dir.path().join("out");
        std::fs::create_dir_all(&out).unwrap();
        let opts = PlaybookOptions {
            extra_vars: serde_json::json!({"out": out.display().to_string()})
                .as_object()
                .cloned()
                .unwrap(),
            ..PlaybookOptions::default()
        };
        let run = run_with(dir.path(), "site.yml", "hosts.ini", "web1", &opts);
        // ansible-playbook 2.18.19: the role's a.j2, the playbook's b.j2 (the role has
        // none), the playbook's a.j2 for the play's own task, the role's directory.
        assert_eq!(
            run.msgs(),
            vec![r#"["role me","play b me","play me","one","two"]"#]
        );
        assert_eq!(
            run.recap(),
            "ok=7 changed=5 failed=0 skipped=0 rescued=0 ignored=1"
        );
        let root = dir.path().display();
        assert_eq!(
            run.result("missing")["msg"].as_str().unwrap(),
            format!(
                "Could not find or access 'missing.j2'\nSearched in:\n\t{root}/roles/w/templates/missing.j2\n\t{root}/roles/w/missing.j2\n\t{root}/roles/w/tasks/templates/missing.j2\n\t{root}/roles/w/tasks/missing.j2\n\t{root}/templates/missing.j2\n\t{root}/missing.j2 on the Ansible Controller.\nIf you are using a module and expect the file to exist on the remote, see the remote_src option"
            )
        );
    }

    #[test]
    fn include_vars_finds_files_and_directories_when_it_runs() {
        // The variables files of ansible-core's own include_vars target.
        let dir = project(&[
            ("hosts.ini", "web1 ansible_connection=local\n"),
            (
                "roles/iv/defaults/main.yml",
                "testing: 1\nbase_dir: defaults\n",
            ),
            ("roles/iv/vars/all/all.yml", "testing: 123\nbase_dir: all\n"),
            (
                "roles/iv/vars/environments/development/all.yml",
                "testing: 789\nbase_dir: environments/development\n",
            ),
            (
                "roles/iv/vars/environments/development/services/webapp.yml",
                "testing: 101112\nbase_dir: development/services\nwebapp_containers: 20\n",
            ),
            ("roles/iv/vars/no_auto_unsafe.yml", "foo: bar\n"),
            (
                "roles/iv/vars/services/service_vars.yml",
                "service_name: my_custom_service\n",
            ),
            (
                "roles/iv/vars/services/service_vars_fqcn.yml",
                "service_name_fqcn: my_custom_service\nservice_name_tmpl_fqcn: '{{ service_name_fqcn }}'\n",
            ),
            (
                "roles/iv/vars/services/webapp.yml",
                "testing: 456\nbase_dir: services\nwebapp_containers: 10\n",
            ),
            (
                "roles/iv/vars/webapp/file_without_extension",
                "webapp_version: '1'\n",
            ),
            (
                "roles/iv/vars2/hashes/hash1.yml",
                "config:\n  key0: 0\n  key1: 0\n  key2: { a: 21 }\n",
            ),
            (
                "roles/iv/vars2/hashes/hash2.yml",
                "config:\n  key1: 1\n  key2: { b: 22 }\n  key3: 3\n",
            ),
            ("vars/pl.yml", "pv: play-level\n"),
            (
                "roles/iv/tasks/main.yml",
                r#"- include_vars: "{{ env }}/all.yml"
  register: one
- debug: msg="{{ testing }} {{ base_dir }} {{ one.ansible_included_var_files | map('replace', role_path + '/', '') | list }}"
- include_vars: {dir: all, depth: 1}
- debug: msg="{{ testing }} {{ base_dir }}"
- include_vars:
    dir: vars
    extensions: ['', 'yaml', 'yml', 'json']
    ignore_files: [no_auto_unsafe.yml]
  register: every
- debug: msg="{{ testing }} {{ base_dir }} {{ webapp_containers }} {{ every.ansible_included_var_files | map('replace', role_path + '/', '') | list }}"
- include_vars: {dir: environments, files_matching: webapp.yml, name: webapp}
- debug: msg="{{ webapp }}"
- include_vars: {dir: webapp}
  register: bad
  ignore_errors: true
- debug: msg="{{ bad.message | replace(role_path + '/', '') }} {{ bad.failed }}"
- include_vars: {file: ../vars2/hashes/hash1.yml}
- include_vars: {file: ../vars2/hashes/hash2.yml, hash_behaviour: merge}
- debug: msg="{{ config }}"
- include_vars: nope.yml
  register: nope
  ignore_errors: true
- debug: msg="{{ nope.message | replace(playbook_dir + '/', '') }}"
- include_vars: {file: all/all.yml, depth: 1}
  ignore_errors: true
  register: mixed
- debug: msg="{{ mixed.msg }}"
"#,
            ),
            (
                "site.yml",
                r#"
- hosts: web1
  gather_facts: false
  vars: {env: environments/development}
  roles: [iv]
  tasks:
    - include_vars: pl.yml
    - debug: msg="{{ pv }}"
"#,
            ),
        ]);
        let run = run(dir.path(), "site.yml", "web1");
        // ansible-playbook 2.18.19 -i hosts.ini site.yml.
        assert_eq!(
            run.msgs(),
            vec![
                "789 environments/development ['vars/environments/development/all.yml']",
                "123 all",
                "456 services 10 ['vars/all/all.yml', 'vars/environments/development/all.yml', 'vars/environments/development/services/webapp.yml', 'vars/services/service_vars.yml', 'vars/services/service_vars_fqcn.yml', 'vars/services/webapp.yml', 'vars/webapp/file_without_extension']",
                r#"{"base_dir":"development/services","testing":101112,"webapp_containers":20}"#,
                "vars/webapp/file_without_extension does not have a valid extension: yaml, yml, json True",
                r#"{"key0":0,"key1":1,"key2":{"a":21,"b":22},"key3":3}"#,
                "Could not find or access 'nope.yml'\nSearched in:\n\troles/iv/vars/nope.yml\n\troles/iv/nope.yml\n\troles/iv/tasks/vars/nope.yml\n\troles/iv/tasks/nope.yml\n\tvars/nope.yml\n\tnope.yml on the Ansible Controller.\nIf you are using a module and expect the file to exist on the remote, see the remote_src option",
                "You are mixing file only and dir only arguments, these are incompatible",
                "play-level",
            ]
        );
        assert_eq!(
            run.recap(),
            "ok=19 changed=0 failed=0 skipped=0 rescued=0 ignored=3"
        );
    }

    #[test]
    fn include_role_runs_the_role_when_it_is_reached() {
        let dir = project(&[
            ("hosts.ini", "web1 ansible_connection=local\n"),
            (
                "roles/a/defaults/alt.yml",
                r#"adef: default-alt
"#,
            ),
            (
                "roles/a/defaults/main.yml",
                r#"adef: default-main
"#,
            ),
            (
                "roles/a/handlers/alt.yml",
                r#"- name: a handler
  debug: msg="handler alt"
"#,
            ),
            (
                "roles/a/handlers/main.yml",
                r#"- name: a handler
  debug: msg="handler main"
"#,
            ),
            (
                "roles/a/meta/main.yml",
                r#"dependencies:
  - role: dep
    dv: 1
"#,
            ),
            (
                "roles/a/tasks/main.yml",
                r#"- debug: msg="a main {{ adef }} {{ avar }} {{ p | default('-') }} {{ role_name }} {{ ansible_parent_role_names | default('none') }}"
- command: /bin/true
  notify: a handler
"#,
            ),
            (
                "roles/a/tasks/other.yml",
                r#"- debug: msg="a other {{ adef }} {{ avar }} {{ item | default('-') }}"
"#,
            ),
            (
                "roles/a/vars/alt.yml",
                r#"avar: vars-alt
"#,
            ),
            (
                "roles/a/vars/main.yml",
                r#"avar: vars-main
"#,
            ),
            (
                "roles/dep/tasks/main.yml",
                r#"- debug: msg="dep {{ dv }}"
"#,
            ),
            (
                "site.yml",
                r#"- hosts: web1
  gather_facts: false
  tasks:
    - include_role:
        name: a
      vars: {p: 1}
    - debug: msg="after {{ adef | default('private') }}"
    - include_role:
        name: "{{ 'a' }}"
        tasks_from: other
        vars_from: alt
        defaults_from: alt
        public: true
      loop: [x, y]
    - debug: msg="after public {{ adef | default('private') }} {{ avar | default('private') }}"
    - include_role: name=a
      when: false
    - include_role:
        name: a
        handlers_from: alt
        allow_duplicates: false
"#,
            ),
        ]);
        let run = run(dir.path(), "site.yml", "web1");
        // ansible-playbook 2.18.19 -i hosts.ini site.yml: the dependency once, role
        // defaults and vars private unless public, the handlers of the last inclusion.
        assert_eq!(
            run.msgs(),
            vec![
                "dep 1",
                "a main default-main vars-main 1 a none",
                "after private",
                "a other default-alt vars-alt x",
                "a other default-alt vars-alt y",
                "after public default-alt vars-alt",
                "a main default-main vars-main - a none",
                "handler alt",
            ]
        );
        assert_eq!(
            run.recap(),
            "ok=14 changed=2 failed=0 skipped=1 rescued=0 ignored=0"
        );
    }

    #[test]
    fn import_role_takes_its_files_and_exposes_its_variables_to_the_play() {
        let dir = project(&[
            ("hosts.ini", "web1 ansible_connection=local\n"),
            ("roles/a/tasks/main.yml", "- debug: msg=main\n"),
            (
                "roles/a/tasks/other.yml",
                "- debug: msg=\"a other {{ adef }} {{ avar }} {{ item | default('-') }}\"\n",
            ),
            ("roles/a/defaults/main.yml", "adef: default-main\n"),
            ("roles/a/defaults/alt.yml", "adef: default-alt\n"),
            ("roles/a/vars/main.yml", "avar: vars-main\n"),
            ("roles/a/vars/alt.yml", "avar: vars-alt\n"),
            (
                "roles/a/meta/main.yml",
                "dependencies:\n  - role: dep\n    dv: 1\n",
            ),
            (
                "roles/dep/tasks/main.yml",
                "- debug: msg=\"dep {{ dv }}\"\n",
            ),
            (
                "site.yml",
                r#"
- hosts: web1
  gather_facts: false
  tasks:
    - debug: msg="before {{ adef | default('undef') }} {{ avar | default('undef') }}"
    - import_role:
        name: a
        tasks_from: other
        vars_from: alt
        defaults_from: alt
    - debug: msg="after {{ adef | default('undef') }} {{ avar | default('undef') }}"
"#,
            ),
        ]);
        let run = run(dir.path(), "site.yml", "web1");
        // ansible-playbook 2.18.19: an imported role's variables are the play's from the
        // start.
        assert_eq!(
            run.msgs(),
            vec![
                "before default-alt vars-alt",
                "dep 1",
                "a other default-alt vars-alt -",
                "after default-alt vars-alt",
            ]
        );
        assert_eq!(
            run.recap(),
            "ok=4 changed=0 failed=0 skipped=0 rescued=0 ignored=0"
        );
    }

    #[test]
    fn handlers_may_be_blocks() {
        let dir = project(&[
            ("hosts.ini", "web1 ansible_connection=local\n"),
            (
                "site.yml",
                r#"
- hosts: web1
  gather_facts: false
  tasks:
    - command: /bin/true
      notify: [h1]
  handlers:
    - name: blockname
      block:
        - name: h1
          debug: msg="h1 {{ x }}"
        - name: h2
          debug: msg="h2"
      vars: {x: blockvar}
"#,
            ),
        ]);
        let run = run(dir.path(), "site.yml", "web1");
        // ansible-playbook 2.18.19: the task inside the block is the handler, with the
        // block's variables.
        assert_eq!(run.msgs(), vec!["h1 blockvar"]);
        assert_eq!(
            run.recap(),
            "ok=2 changed=1 failed=0 skipped=0 rescued=0 ignored=0"
        );
    }

    /// `ansible_collection_name` in a role: its collection, "" for a role of its own
    /// (what ansible-core 2.18 gives; prometheus' roles build names from it).
    #[test]
    fn a_roles_collection_name_is_known_in_its_tasks() {
        let dir = project(&[
            ("hosts.ini", "web1 ansible_connection=local\n"),
            (
                "roles/own/tasks/main.yml",
                "- debug: msg=\"own:{{ ansible_collection_name }}\"\n",
            ),
            (
                "collections/ansible_collections/acme/tools/roles/r/tasks/main.yml",
                "- debug: msg=\"coll:{{ ansible_collection_name }}\"\n",
            ),
            (
                "site.yml",
                "- hosts: web1\n  gather_facts: false\n  roles:\n    - own\n    - acme.tools.r\n",
            ),
        ]);
        let ran = run(dir.path(), "site.yml", "web1");
        assert_eq!(ran.msgs(), vec!["own:", "coll:acme.tools"]);
    }

    #[test]
    fn a_module_the_runner_lacks_fails_where_it_runs_and_an_unknown_one_where_its_file_is_included()
    {
        let site = "- hosts: web1\n  gather_facts: false\n  tasks:\n    - include_tasks: \"tasks/{{ os }}.yml\"\n      loop: [Debian, Suse]\n      loop_control: {loop_var: os}\n";
        // Ansible's module, which the runner lacks: the file is included, and the task
        // fails when it runs, as a failing module would.
        let dir = project(&[
            ("hosts.ini", "web1 ansible_connection=local\n"),
            ("tasks/Debian.yml", "- debug: msg=debian\n"),
            (
                "tasks/Suse.yml",
                "- name: skipped\n  community.general.zypper: name=x\n  when: false\n- name: not here\n  community.general.zypper: name=x\n",
            ),
            ("site.yml", site),
        ]);
        let ran = run(dir.path(), "site.yml", "web1");
        assert_eq!(ran.msgs(), vec!["debian"]);
        let failed = ran.result("not here");
        let msg = failed["msg"].as_str().unwrap();
        assert_eq!(
            msg,
            "module 'community.general.zypper' is not supported by rustle-deploy yet",
        );
        // ansible-playbook 2.18.19 (with `fail` for the module): each included file
        // counts, and so does the debug.
        assert_eq!(
            ran.recap(),
            "ok=3 changed=0 failed=1 skipped=1 rescued=0 ignored=0"
        );

        // A name Ansible does not know either: the file is refused where it is included.
        let dir = project(&[
            ("hosts.ini", "web1 ansible_connection=local\n"),
            ("tasks/Debian.yml", "- debug: msg=debian\n"),
            (
                "tasks/Suse.yml",
                "- name: typo\n  nosuch.collection.zypper: name=x\n",
            ),
            ("site.yml", site),
        ]);
        let ran = run(dir.path(), "site.yml", "web1");
        assert_eq!(ran.msgs(), Vec::<String>::new());
        let failed = ran.result("include_tasks");
        let msg = failed["msg"].as_str().unwrap();
        assert!(
            msg.contains("tasks/Suse.yml cannot be included")
                && msg.contains(
                    "module 'nosuch.collection.zypper' is neither the runner's nor one Ansible ships"
                ),
            "{msg}"
        );
        assert_eq!(
            ran.recap(),
            "ok=1 changed=0 failed=1 skipped=0 rescued=0 ignored=0"
        );
    }

    #[test]
    fn trees_travel_only_with_plays_that_name_files_when_they_run() {
        let dir = project(&[
            (
                "hosts.ini",
                "[a]\nweb1 ansible_connection=local\n[b]\ndb1 ansible_connection=local\n",
            ),
            ("roles/r/tasks/main.yml", "- debug: msg=r\n"),
            ("roles/r/files/big.bin", "payload bytes of a role file\n"),
            (
                "roles/d/tasks/main.yml",
                "- include_tasks: \"{{ 'x' }}.yml\"\n",
            ),
            ("roles/d/tasks/x.yml", "- debug: msg=x\n"),
            (
                "site.yml",
                "- hosts: a\n  gather_facts: false\n  roles: [r]\n- hosts: b\n  gather_facts: false\n  roles: [d]\n",
            ),
        ]);
        let plan =
            load_playbook(&dir.path().join("site.yml"), &PlaybookOptions::default()).unwrap();
        let inv = Inventory::load(&dir.path().join("hosts.ini")).unwrap();
        let settings = PayloadSettings {
            deployment_id: "t".into(),
            created_at: 0,
            check_mode: false,
            diff_mode: false,
        };
        let mut planner = Planner::new(&plan, &inv, &settings).unwrap();
        let web = planner.host_plan(inv.host("web1").unwrap()).unwrap();
        let db = planner.host_plan(inv.host("db1").unwrap()).unwrap();
        // web1's play names every file literally: no tree travels with it.
        assert!(web.shared.files.is_empty(), "{:?}", web.shared.files.keys());
        assert!(web.shared.library.is_empty());
        // db1's includes a templated name: its role's tree travels, and nothing of r.
        let root = rustle_deploy::playbook::controller_path(dir.path());
        assert!(
            db.shared
                .files
                .contains_key(&format!("{root}/roles/d/tasks/x.yml"))
        );
        assert!(
            db.shared
                .library
                .tasks
                .contains_key(&format!("{root}/roles/d/tasks/x.yml"))
        );
        assert!(!db.shared.files.keys().any(|k| k.contains("/roles/r/")));
    }

    #[test]
    fn collection_names_and_assemble_from_a_controller_directory() {
        let out = tempfile::tempdir().unwrap();
        let dir = project(&[
            ("hosts.ini", "web1 ansible_connection=local\n"),
            ("files/frags/b", "two\n"),
            ("files/frags/a", "one"),
            (
                "site.yml",
                &format!(
                    r#"
- hosts: web1
  gather_facts: false
  vars:
    out: "{}"
  tasks:
    - name: assemble
      assemble:
        src: frags
        dest: "{{{{ out }}}}/joined"
        remote_src: false
    - name: ini
      community.general.ini_file:
        path: "{{{{ out }}}}/x.ini"
        section: s
        option: o
        value: v
    - name: ini again
      ansible.builtin.ini_file:
        path: "{{{{ out }}}}/x.ini"
        section: s
        option: o
        value: v
    - name: sysctl by its collection
      ansible.posix.sysctl:
        name: net.ipv4.ip_forward
        value: "1"
        sysctl_file: "{{{{ out }}}}/sysctl.conf"
        reload: false
      check_mode: true
"#,
                    out.path().display()
                ),
            ),
        ]);
        let run = run(dir.path(), "site.yml", "web1");
        assert_eq!(
            run.statuses(),
            [
                ("assemble".to_string(), "changed".to_string()),
                ("ini".to_string(), "changed".to_string()),
                ("ini again".to_string(), "ok".to_string()),
                (
                    "sysctl by its collection".to_string(),
                    "changed".to_string()
                ),
            ]
        );
        assert_eq!(
            std::fs::read_to_string(out.path().join("joined")).unwrap(),
            "one\ntwo\n"
        );
        assert_eq!(
            std::fs::read_to_string(out.path().join("x.ini")).unwrap(),
            "\n[s]\no = v\n"
        );
    }

    /// Runs `site.yml` of `dir` for web1 with these tags, and says which tasks ran.
    fn tagged_run(dir: &Path, tags: &[&str], skip: &[&str]) -> Vec<(String, String)> {
        let opts = PlaybookOptions {
            tags: tags.iter().map(|s| s.to_string()).collect(),
            skip_tags: skip.iter().map(|s| s.to_string()).collect(),
            ..PlaybookOptions::default()
        };
        run_with(dir, "site.yml", "hosts.ini", "web1", &opts).statuses()
    }

    fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn included_tasks_inherit_the_tags_around_the_include_but_not_its_own() {
        // Ansible 2.18 (Block._get_parent_attribute skips a dynamic include's own
        // attributes): tasks brought in by include_tasks carry the tags of the blocks,
        // role and play around the include and of `apply`, not those of the include.
        let dir = project(&[
            ("hosts.ini", HOSTS),
            (
                "inc.yml",
                "- name: untagged\n  debug: {msg: u}\n- name: tagged x\n  debug: {msg: x}\n  tags: x\n- name: never\n  debug: {msg: n}\n  tags: never\n",
            ),
            (
                "site.yml",
                r#"
- hosts: web1
  gather_facts: false
  tags: p
  tasks:
    - block:
        - name: plain include
          include_tasks: inc.yml
          tags: inc
        - name: applied include
          include_tasks:
            file: inc.yml
            apply:
              tags: app
          tags: inc2
      tags: b
"#,
            ),
        ]);
        let all = pairs(&[
            ("plain include", "ok"),
            ("untagged", "ok"),
            ("tagged x", "ok"),
            ("applied include", "ok"),
            ("untagged", "ok"),
            ("tagged x", "ok"),
        ]);
        assert_eq!(tagged_run(dir.path(), &[], &[]), all);
        // The block's and the play's tags reach the included tasks (never among them,
        // since a selected tag runs a `never` task).
        let with_never = pairs(&[
            ("plain include", "ok"),
            ("untagged", "ok"),
            ("tagged x", "ok"),
            ("never", "ok"),
            ("applied include", "ok"),
            ("untagged", "ok"),
            ("tagged x", "ok"),
            ("never", "ok"),
        ]);
        assert_eq!(tagged_run(dir.path(), &["b"], &[]), with_never);
        assert_eq!(tagged_run(dir.path(), &["p"], &[]), with_never);
        // The include's own tag selects the include, not what it brings in.
        assert_eq!(
            tagged_run(dir.path(), &["inc"], &[]),
            pairs(&[("plain include", "ok")])
        );
        // `apply`'s tags do reach them.
        assert_eq!(
            tagged_run(dir.path(), &["inc2,app"], &[]),
            pairs(&[
                ("applied include", "ok"),
                ("untagged", "ok"),
                ("tagged x", "ok"),
                ("never", "ok"),
            ])
        );
        assert_eq!(
            tagged_run(dir.path(), &["inc,x"], &[]),
            pairs(&[("plain include", "ok"), ("tagged x", "ok")])
        );
        assert_eq!(
            tagged_run(dir.path(), &[], &["x"]),
            pairs(&[
                ("plain include", "ok"),
                ("untagged", "ok"),
                ("applied include", "ok"),
                ("untagged", "ok"),
            ])
        );
    }

    #[test]
    fn a_templated_action_is_rendered_when_the_task_runs() {
        let dir = project(&[
            ("hosts.ini", HOSTS),
            (
                "site.yml",
                r#"
- hosts: web1
  gather_facts: false
  vars:
    m: debug
  tasks:
    - name: templated
      action: "{{ m }}"
      args:
        msg: hi
    - name: templated and free-form
      action: "{{ m }} msg=there"
    - name: not run
      action: "{{ nosuch }}"
      when: false
    - name: no such module
      action: "{{ m }}_nope"
"#,
            ),
        ]);
        let run = run(dir.path(), "site.yml", "web1");
        assert_eq!(
            run.statuses(),
            pairs(&[
                ("templated", "ok"),
                ("templated and free-form", "ok"),
                ("not run", "skipped"),
                ("no such module", "failed"),
            ])
        );
        let msg = run.result("no such module")["msg"].as_str().unwrap();
        assert!(msg.contains("debug_nope"), "{msg}");
    }

    #[test]
    fn a_skipped_meta_task_is_shown_but_not_counted() {
        // Ansible's strategy sends a skipped meta task to the callbacks without
        // counting it in the stats.
        let dir = project(&[
            ("hosts.ini", HOSTS),
            (
                "site.yml",
                r#"
- hosts: web1
  gather_facts: false
  tasks:
    - name: not the end
      meta: end_host
      when: false
    - debug: {msg: after}
"#,
            ),
        ]);
        let run = run(dir.path(), "site.yml", "web1");
        assert_eq!(
            run.statuses(),
            pairs(&[("not the end", "skipped"), ("debug", "ok")])
        );
        assert_eq!(
            run.recap(),
            "ok=1 changed=0 failed=0 skipped=0 rescued=0 ignored=0"
        );
    }

    #[test]
    fn several_playbooks_are_one_run_and_verbosity_is_a_magic_variable() {
        let dir = project(&[
            ("hosts.ini", HOSTS),
            (
                "a.yml",
                "- hosts: web1\n  gather_facts: false\n  tasks:\n    - set_fact: {from_a: 1}\n",
            ),
            (
                "sub/b.yml",
                "- hosts: web1\n  gather_facts: false\n  tasks:\n    - debug: {msg: \"{{ from_a }} {{ ansible_verbosity }} {{ playbook_dir | basename }}\"}\n",
            ),
        ]);
        let opts = PlaybookOptions {
            verbosity: 2,
            ..PlaybookOptions::default()
        };
        let mut plan = load_playbooks(
            &dir.path().join("a.yml"),
            &[dir.path().join("sub/b.yml")],
            &opts,
        )
        .unwrap();
        let inv = Inventory::load(&dir.path().join("hosts.ini")).unwrap();
        rustle_deploy::pack::check_modules(&mut plan).unwrap();
        let settings = PayloadSettings {
            deployment_id: "t".into(),
            created_at: 0,
            check_mode: false,
            diff_mode: false,
        };
        let mut planner = Planner::new(&plan, &inv, &settings).unwrap();
        let hp = planner.host_plan(inv.host("web1").unwrap()).unwrap();
        let mut sink = Collect::default();
        Executor::new(&hp, &mut sink, RunOptions::default()).run();
        assert_eq!(Run { events: sink.0 }.msgs(), vec!["1 2 sub"]);
    }

    /// ansible-core's include_parent_role_vars target: a role includes itself for another
    /// task file, and the inclusion tree shows it twice.
    #[test]
    fn a_role_including_itself_for_another_task_file_runs_it() {
        let dir = project(&[
            ("hosts.ini", HOSTS),
            (
                "play.yml",
                "- hosts: web1\n  gather_facts: false\n  roles:\n    - outer\n",
            ),
            (
                "roles/outer/tasks/main.yml",
                "- include_role:\n    name: inner\n",
            ),
            (
                "roles/inner/tasks/main.yml",
                "- include_role:\n    name: inner\n    tasks_from: again.yml\n- debug:\n    msg: main {{ ansible_parent_role_names }}\n",
            ),
            (
                "roles/inner/tasks/again.yml",
                "- debug:\n    msg: again {{ ansible_parent_role_names }}\n",
            ),
        ]);
        let run = run(dir.path(), "play.yml", "web1");
        assert_eq!(
            run.msgs(),
            vec![
                "again ['inner', 'outer']".to_string(),
                "main ['outer']".to_string()
            ]
        );
    }
}
