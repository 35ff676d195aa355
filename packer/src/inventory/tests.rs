//! Tests for inventory loading, variable precedence and host patterns, on the fixture files.

use std::path::PathBuf;

use serde_json::{Value, json};

use super::{Inventory, InventoryError};

fn fixture_path(name: &str) -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/fixtures/inventories/"
    ))
    .join(name)
}

fn fixture(name: &str) -> Inventory {
    match Inventory::load(&fixture_path(name)) {
        Ok(inv) => inv,
        Err(e) => panic!("{name} must load: {e}"),
    }
}

fn names<'a>(hosts: impl IntoIterator<Item = &'a super::Host>) -> Vec<&'a str> {
    hosts.into_iter().map(|h| h.name.as_str()).collect()
}

/// Checks variables of one host: each `(name, value)`; `Value::Null` means "absent".
fn check_vars(inv: &Inventory, host: &str, expect: &[(&str, Value)]) {
    let Some(h) = inv.host(host) else {
        panic!("no host {host}; hosts are {:?}", names(inv.hosts()));
    };
    for (var, want) in expect {
        let got = h.vars.get(*var).cloned().unwrap_or(Value::Null);
        assert_eq!(&got, want, "host {host}, variable {var}");
    }
}

/// Checks that `pattern` selects exactly `expect`, in this order.
fn check_select(inv: &Inventory, pattern: &str, expect: &[&str]) {
    assert_eq!(names(inv.select(pattern)), expect, "pattern {pattern:?}");
}

/// Checks that INI `text` is refused with a message containing every part of `expect`.
fn check_ini_error(text: &str, expect: &[&str]) {
    match Inventory::parse_ini(text, "test.ini") {
        Ok(inv) => panic!("accepted {text:?}: hosts {:?}", names(inv.hosts())),
        Err(e) => {
            let msg = e.to_string();
            for part in expect {
                assert!(
                    msg.contains(part),
                    "error {msg:?} lacks {part:?} for {text:?}"
                );
            }
        }
    }
}

#[test]
fn hosts_ini_groups_and_vars() {
    let inv = fixture("hosts.ini");
    assert_eq!(names(inv.hosts()), ["web1", "web2", "db1", "db2"]);
    let groups: Vec<&str> = inv.group_names().collect();
    assert_eq!(
        groups,
        ["all", "databases", "production", "ungrouped", "webservers"]
    );
    check_vars(
        &inv,
        "db1",
        &[
            ("ansible_port", json!(5432)),
            ("db_port", json!(5432)),
            ("backup_schedule", json!("0 2 * * *")),
            ("env", json!("production")),
            ("debug", json!(false)),
            ("http_port", Value::Null),
        ],
    );
    let web1 = inv.host("web1").unwrap();
    assert_eq!(web1.groups, ["production", "webservers"]);
    assert_eq!(web1.address(), "192.168.1.10");
    assert_eq!(web1.user(), Some("deploy"));
    assert_eq!(web1.port(), None);
    assert_eq!(web1.connection(), "ssh");
    assert!(!web1.is_local());
}

#[test]
fn complex_ini_ranges_and_inheritance() {
    let inv = fixture("complex.ini");
    assert_eq!(inv.hosts().count(), 16);
    check_select(&inv, "webservers", &["web01", "web02", "web03", "web-lb"]);
    check_select(&inv, "databases", &["db-a", "db-b", "db-c", "db-master"]);
    check_select(
        &inv,
        "cache",
        &["redis1", "redis3", "redis5", "memcached01", "memcached02"],
    );
    // Values are not range-expanded: every web host gets the literal text.
    assert_eq!(inv.host("web02").unwrap().address(), "192.168.1.1[0:2]");
    assert_eq!(
        inv.host("memcached01").unwrap().address(),
        "192.168.3.20:2[1:2]"
    );
    assert_eq!(
        inv.host("db-b").unwrap().groups,
        ["backend", "databases", "infrastructure", "production"]
    );
    check_vars(
        &inv,
        "db-master",
        &[
            ("is_master", json!(true)),
            ("network_segment", json!("backend")),
            ("datacenter", json!("us-east-1")),
            ("env", json!("production")),
            ("shared_buffers", json!("256MB")),
        ],
    );
    check_vars(
        &inv,
        "web01",
        &[
            ("network_segment", json!("frontend")),
            ("cdn_enabled", json!(true)),
            ("backup_schedule", json!("0 2 * * *")),
            ("ansible_port", json!(22)),
        ],
    );
    check_vars(
        &inv,
        "prometheus",
        &[
            ("retention_days", json!(30)),
            ("network_segment", Value::Null),
        ],
    );
    assert_eq!(inv.host("web01").unwrap().port(), Some(22));
}

#[test]
fn inheritance_ini_precedence() {
    let inv = fixture("inheritance.ini");
    check_vars(
        &inv,
        "web1",
        &[
            ("host_override", json!("from_host")),
            // webservers (depth 3) beats application (2), production (1) and all (0).
            ("common_var", json!("webserver_common")),
            ("group_var", json!("webserver_value")),
            ("app_var", json!("application_value")),
            ("deployment_stage", json!("prod")),
            ("global_var", json!("global_value")),
        ],
    );
    check_vars(
        &inv,
        "web2",
        &[
            ("host_override", json!("from_webservers")),
            ("global_var", json!("global_value")),
            ("host_var", json!("host_value_2")),
        ],
    );
    check_vars(
        &inv,
        "db1",
        &[
            ("host_override", json!("from_host_db")),
            ("common_var", json!("database_common")),
            ("group_var", json!("database_value")),
            ("datacenter", json!("us-east-1")),
        ],
    );
    assert_eq!(
        inv.host("db1").unwrap().groups,
        ["application", "database", "databases", "production"]
    );
}

#[test]
fn three_formats_agree() {
    let ini = fixture("inv.ini");
    let yml = fixture("inv.yml");
    let json = fixture("inv.json");
    for inv in [&ini, &yml, &json] {
        let web1 = inv.host("web1").unwrap();
        assert_eq!(web1.address(), "10.0.0.11");
        assert_eq!(web1.port(), Some(2222));
        assert_eq!(web1.user(), Some("deploy"));
        assert_eq!(web1.groups, ["webservers"]);
        check_vars(
            inv,
            "web2",
            &[
                ("http_port", json!(8080)),
                ("ansible_host", json!("10.0.0.12")),
            ],
        );
        check_select(inv, "webservers", &["web1", "web2"]);
    }
    assert_eq!(names(ini.hosts()), ["web1", "web2", "db1"]);
    assert_eq!(names(yml.hosts()), ["web1", "web2", "db1"]);
    assert_eq!(names(json.hosts()), ["web1", "web2"]);
    check_vars(
        &yml,
        "db1",
        &[("global_var", json!(1)), ("http_port", Value::Null)],
    );
    check_vars(&ini, "web1", &[("ansible_architecture", json!("aarch64"))]);
}

#[test]
fn patterns_ini_expansions() {
    let inv = fixture("patterns.ini");
    assert_eq!(inv.hosts().count(), 52);
    check_select(
        &inv,
        "numeric_patterns",
        &[
            "web01", "web02", "web03", "web04", "web05", "app1", "app2", "app3", "api10", "api11",
            "api12",
        ],
    );
    check_select(
        &inv,
        "alphabetic_patterns",
        &[
            "db-a", "db-b", "db-c", "db-d", "cache-x", "cache-y", "cache-z",
        ],
    );
    check_select(
        &inv,
        "list_patterns",
        &[
            "worker1",
            "worker3",
            "worker5",
            "worker7",
            "worker9",
            "queuered",
            "queueblue",
            "queuegreen",
        ],
    );
    check_select(
        &inv,
        "mixed_patterns",
        &[
            "server01.example.com",
            "server02.example.com",
            "server03.example.com",
            "nodea-1",
            "nodea-2",
            "nodeb-1",
            "nodeb-2",
            "nodec-1",
            "nodec-2",
        ],
    );
    check_select(
        &inv,
        "host00?",
        &[
            "host001", "host002", "host003", "host004", "host005", "host006", "host007", "host008",
            "host009",
        ],
    );
    check_select(&inv, "host010", &["host010"]);
    let localhost = inv.host("localhost").unwrap();
    assert_eq!(localhost.connection(), "local");
    assert!(localhost.is_local());
    assert_eq!(
        inv.host("bastion").unwrap().address(),
        "bastion.example.com"
    );
    // `[patterns:vars]` names a group with no hosts: nobody inherits from it.
    check_vars(
        &inv,
        "web01",
        &[
            ("common_var", Value::Null),
            ("ansible_user", json!("deploy")),
        ],
    );
    assert_eq!(
        inv.group_vars("patterns").unwrap().get("pattern_test"),
        Some(&json!(true))
    );
}

#[test]
fn edge_cases_ini_values() {
    let inv = fixture("edge_cases.ini");
    check_vars(
        &inv,
        "host1",
        &[
            ("ansible_host", json!("192.168.1.100")),
            ("description", json!("Host with spaces")),
            ("path", json!("/var/log/app")),
            ("port", json!(22)),
            ("ratio", json!(0.75)),
            ("enabled", json!(true)),
            ("disabled", json!(false)),
            // Only true/false are booleans in INI; YAML 1.1 words stay strings.
            ("debug", json!("yes")),
            ("active", json!("on")),
            (
                "ansible_ssh_extra_args",
                json!("-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null"),
            ),
        ],
    );
    check_vars(
        &inv,
        "host2",
        &[
            ("ansible_host", json!("192.168.1.101")),
            ("name", json!("single-quoted")),
            ("command", json!("echo \"hello\"")),
            // Quoted values stay strings even when they look like lists or objects.
            ("custom_list", json!("[1,2,3]")),
            ("custom_dict", json!("{\"key\": \"value\"}")),
        ],
    );
    let host1 = inv.host("host1").unwrap();
    assert_eq!(
        host1.groups,
        [
            "boolean_values",
            "complex_variables",
            "edge_cases",
            "numeric_values",
            "quoted_variables"
        ]
    );
    check_select(&inv, "empty_group", &[]);
    check_select(&inv, "edge_cases", &["lonely-host", "host1", "host2"]);
    check_select(&inv, "group.with.dots", &["dotted.host"]);
    check_select(&inv, "host.with.dots", &["host.with.dots"]);
    let special = inv.group_vars("special_vars").unwrap();
    assert_eq!(special.get("empty_string"), Some(&json!("")));
    assert_eq!(special.get("null_value"), Some(&json!("")));
    assert_eq!(special.get("negative_value"), Some(&json!(-1)));
    assert_eq!(special.get("scientific_notation"), Some(&json!(1.23e-4)));
    assert_eq!(special.get("unicode_value"), Some(&json!("こんにちは")));
}

#[test]
fn small_ini_fixtures() {
    let inv = fixture("simple_localhost.ini");
    check_select(&inv, "all", &["localhost"]);
    assert!(inv.host("localhost").unwrap().is_local());

    let inv = fixture("system_facts_inventory.ini");
    let host = inv.host("test-host-1").unwrap();
    // A host listed under [all] only is ungrouped, as in Ansible.
    assert_eq!(host.groups, ["ungrouped"]);
    assert_eq!(host.address(), "localhost");
    assert!(host.is_local());
    check_vars(&inv, "test-host-1", &[("test_var", json!("test_value"))]);
}

#[test]
fn invalid_ini_is_refused_naming_file_and_line() {
    let path = fixture_path("invalid.ini");
    let err = Inventory::load(&path).err().unwrap();
    let msg = err.to_string();
    assert!(msg.contains("invalid.ini:9:"), "{msg}");
    assert!(msg.contains("[invalid_group"), "{msg}");
    assert!(matches!(err, InventoryError::Parse { line: Some(9), .. }));
}

#[test]
fn ini_errors() {
    check_ini_error(
        "[web]\nh1\n[bad\nh2\n",
        &["test.ini:3:", "unterminated section header"],
    );
    check_ini_error(
        "[web]\nweb[05:01]\n",
        &["test.ini:2:", "web[05:01]", "before start"],
    );
    check_ini_error("[web]\nweb[01:3]\n", &["test.ini:2:", "same width"]);
    check_ini_error("[web]\nweb[1:3:0]\n", &["test.ini:2:", "step"]);
    check_ini_error("[web]\nweb[1:3\n", &["test.ini:2:", "closing"]);
    check_ini_error(
        "[a:children]\nb\n\n[b:children]\nc\n[c:children]\na\n",
        &["test.ini:7:", "cycle", "a -> b -> c -> a"],
    );
    check_ini_error("[a:children]\na\n", &["test.ini:2:", "cycle"]);
    check_ini_error(
        "[g]\nh1 123invalid=value\n",
        &["test.ini:2:", "'123invalid'"],
    );
    check_ini_error(
        "[g]\nh1 ansible-host=x\n",
        &["test.ini:2:", "'ansible-host'"],
    );
    check_ini_error(
        "[g]\nh1 \"quoted name\"=value\n",
        &["test.ini:2:", "'quoted name'"],
    );
    check_ini_error(
        "[g]\nh1 a=1 stray\n",
        &["test.ini:2:", "key=value", "'stray'"],
    );
    check_ini_error("[g]\nh1 a=\"open\n", &["test.ini:2:", "unterminated"]);
    check_ini_error(
        "[g:foo]\nh1\n",
        &["test.ini:1:", "unknown section suffix ':foo'"],
    );
    check_ini_error("[g:vars]\nnot a var\n", &["test.ini:2:", "key=value"]);
    check_ini_error("[g:vars]\n1x=2\n", &["test.ini:2:", "'1x'"]);
    check_ini_error("[p:children]\ntypo\n[q]\nh\n", &["test.ini:2:", "'typo'"]);
    check_ini_error("[g]\nh1:99999\n", &["test.ini:2:", "65535"]);
    check_ini_error(
        "[g]\nh1 ansible_port=ssh\n",
        &["test.ini", "h1", "ansible_port"],
    );
    check_ini_error("[g] trailing\n", &["test.ini:1:", "after section header"]);
}

#[test]
fn ini_details() {
    let text = "\
top1 a=1   # hosts before a section are ungrouped
; a comment
[g]
h1:2200 ansible_user=u x=007 y=1.5 z=None list=[1,2] quoted=\"5\" esc=a\\ b
h1 x=8
[g:vars]
v = spaced value
w='single'
";
    let inv = Inventory::parse_ini(text, "inline").unwrap();
    assert_eq!(names(inv.hosts()), ["top1", "h1"]);
    assert_eq!(inv.host("top1").unwrap().groups, ["ungrouped"]);
    let h1 = inv.host("h1").unwrap();
    assert_eq!(h1.port(), Some(2200));
    check_vars(
        &inv,
        "h1",
        &[
            // The later line for the same host wins.
            ("x", json!(8)),
            ("y", json!(1.5)),
            ("z", Value::Null),
            ("list", json!([1, 2])),
            ("quoted", json!("5")),
            ("esc", json!("a b")),
            ("v", json!("spaced value")),
            ("w", json!("single")),
        ],
    );
    check_vars(&inv, "top1", &[("a", json!(1))]);
    let inv = Inventory::parse_ini("[g]\nh x=007\n", "inline").unwrap();
    check_vars(&inv, "h", &[("x", json!("007"))]);
}

#[test]
fn same_depth_groups_later_name_wins() {
    let text = "[alpha]\nh\n[beta]\nh\n[alpha:vars]\nv=a\n[beta:vars]\nv=b\n[all:vars]\nv=all\n";
    let inv = Inventory::parse_ini(text, "inline").unwrap();
    check_vars(&inv, "h", &[("v", json!("b"))]);
    // ansible_group_priority outranks the name among groups of the same depth.
    let text = format!("{text}[alpha:vars]\nansible_group_priority=5\n");
    let inv = Inventory::parse_ini(&text, "inline").unwrap();
    check_vars(&inv, "h", &[("v", json!("a"))]);
}

#[test]
fn select_patterns() {
    let inv = fixture("complex.ini");
    check_select(
        &inv,
        "monitoring",
        &["prometheus", "grafana", "alertmanager"],
    );
    check_select(&inv, "grafana:prometheus", &["prometheus", "grafana"]);
    check_select(
        &inv,
        "grafana,prometheus,grafana",
        &["prometheus", "grafana"],
    );
    check_select(
        &inv,
        "backend:!cache",
        &["db-a", "db-b", "db-c", "db-master"],
    );
    check_select(
        &inv,
        "webservers:&frontend:!web-lb",
        &["web01", "web02", "web03"],
    );
    check_select(&inv, "!infrastructure", &[]);
    check_select(&inv, "&webservers", &["web01", "web02", "web03", "web-lb"]);
    check_select(&inv, "web0*", &["web01", "web02", "web03"]);
    check_select(&inv, "db-[ac]", &["db-a", "db-c"]);
    check_select(&inv, "db-[!a-b]", &["db-c"]);
    check_select(&inv, "db-[!a-b]*", &["db-c", "db-master"]);
    check_select(&inv, "db-?", &["db-a", "db-b", "db-c"]);
    check_select(
        &inv,
        "*cache*",
        &["redis1", "redis3", "redis5", "memcached01", "memcached02"],
    );
    check_select(&inv, "webservers[0]", &["web01"]);
    check_select(&inv, "webservers[-1]", &["web-lb"]);
    check_select(&inv, "webservers[1:2]", &["web02", "web03"]);
    check_select(&inv, "webservers[2:]", &["web03", "web-lb"]);
    check_select(&inv, "nonexistent", &[]);
    check_select(&inv, "", &[]);
    assert_eq!(inv.select("all").len(), 16);
    assert_eq!(inv.select("*").len(), 16);
    assert_eq!(inv.select("all:!cache").len(), 11);
    // The implicit localhost answers `localhost` but is not part of `all`.
    let local = inv.select("localhost");
    assert_eq!(names(local.iter().copied()), ["localhost"]);
    assert!(local[0].is_local());
    assert!(inv.host("localhost").is_none());
}

#[test]
fn a_comma_separated_host_list_is_an_inventory() {
    // ansible-playbook -i 'host1,host2' (the roles target's end_role_nested.yml).
    let inv = Inventory::load(std::path::Path::new("rustle-h1, rustle-h2,")).unwrap();
    check_select(&inv, "all", &["rustle-h1", "rustle-h2"]);
    check_select(&inv, "ungrouped", &["rustle-h1", "rustle-h2"]);
    let inv = Inventory::load(std::path::Path::new("solo,")).unwrap();
    check_select(&inv, "all", &["solo"]);
}

#[test]
fn localhost_default() {
    let inv = Inventory::localhost();
    check_select(&inv, "all", &["localhost"]);
    let host = inv.host("localhost").unwrap();
    assert!(host.is_local());
    assert_eq!(host.address(), "localhost");
}

#[test]
fn implicit_localhost_has_the_controllers_python_as_in_ansible() {
    // Ansible's implicit localhost sets ansible_python_interpreter (filter_mathstuff's
    // runme.yml runs `{{ ansible_python_interpreter }} -c ...` on localhost).
    let python = |h: &crate::inventory::Host| {
        let p = h.vars["ansible_python_interpreter"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        assert!(std::path::Path::new(&p).is_absolute(), "{p}");
        p
    };
    python(Inventory::localhost().host("localhost").unwrap());
    let inv = Inventory::parse_ini("[web]\nweb1\n", "hosts").unwrap();
    python(inv.select("localhost")[0]);
    // A host the inventory names keeps what the inventory says.
    let inv = Inventory::parse_ini("localhost ansible_connection=local\n", "hosts").unwrap();
    assert!(
        inv.host("localhost")
            .unwrap()
            .vars
            .get("ansible_python_interpreter")
            .is_none()
    );
}

#[test]
fn yaml_and_json_details() {
    let yaml = "\
all:
  hosts:
    solo:
  children:
    web:
      hosts:
        web[1:2]:2022:
          ansible_ssh_private_key_file: /k
    db:
      children:
        web:
          vars:
            role: web
";
    let inv = Inventory::parse_yaml(yaml, "inline.yml").unwrap();
    assert_eq!(names(inv.hosts()), ["solo", "web1", "web2"]);
    let web2 = inv.host("web2").unwrap();
    assert_eq!(web2.port(), Some(2022));
    assert_eq!(web2.private_key_file(), Some("/k"));
    assert_eq!(web2.groups, ["db", "web"]);
    check_vars(&inv, "web1", &[("role", json!("web"))]);

    let err = Inventory::parse_yaml("all:\n  web1:\n    hosts: {}\n", "bad.yml").unwrap_err();
    assert!(err.to_string().contains("unexpected key 'web1'"), "{err}");
    let err = Inventory::parse_yaml("all:\n  hosts: [a\n", "bad.yml").unwrap_err();
    assert!(
        matches!(err, InventoryError::Parse { line: Some(_), .. }),
        "{err}"
    );
    let err = Inventory::parse_json("{\"all\": {\"hosts\": [\"a\"]},}", "bad.json").unwrap_err();
    assert!(err.to_string().starts_with("bad.json:1:"), "{err}");
    let err = Inventory::parse_json(r#"{"g": {"vars": {"bad-name": 1}}}"#, "bad.json").unwrap_err();
    assert!(err.to_string().contains("'bad-name'"), "{err}");

    // ansible-inventory --list output, plus the YAML layout written as JSON.
    let json = r#"{"_meta": {"hostvars": {"a": {"ansible_user": 1000}, "lonely": {}}},
        "all": {"children": ["ungrouped", "g"]}, "g": ["a"], "ungrouped": {"hosts": []},
        "y": {"hosts": {"b": {"ansible_connection": "local"}}}}"#;
    let inv = Inventory::parse_json(json, "inline.json").unwrap();
    assert_eq!(names(inv.hosts()), ["a", "b", "lonely"]);
    assert_eq!(inv.host("a").unwrap().user(), Some("1000"));
    assert!(inv.host("b").unwrap().is_local());
    assert_eq!(inv.host("lonely").unwrap().groups, ["ungrouped"]);
}

#[test]
fn load_detects_format_by_content() {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in [
        (
            "yaml_inv",
            "all:\n  hosts:\n    h1:\n      ansible_port: 23\n",
        ),
        (
            "json_inv",
            r#"{"g": {"hosts": ["h1"], "vars": {"ansible_port": "23"}}}"#,
        ),
        ("ini_inv", "[g]\nh1 ansible_port=23\n"),
    ] {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        let inv = Inventory::load(&path).unwrap();
        assert_eq!(inv.host("h1").unwrap().port(), Some(23), "{name}");
    }
    let missing = dir.path().join("missing");
    let err = Inventory::load(&missing).unwrap_err();
    assert!(matches!(err, InventoryError::Io { .. }));
    assert!(err.to_string().contains("missing"), "{err}");
}

#[test]
fn truncated_fixtures_never_panic() {
    // Every prefix of every fixture, through every parser: errors are fine, panics are not.
    let dir = fixture_path("");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        for (end, _) in text.char_indices() {
            let prefix = &text[..end];
            let _ = Inventory::parse_ini(prefix, "prefix");
            let _ = Inventory::parse_yaml(prefix, "prefix");
            let _ = Inventory::parse_json(prefix, "prefix");
            checked += 1;
        }
    }
    assert!(checked > 1000, "only {checked} prefixes checked");
}

/// The project fixture's inventory, beside its `group_vars/` and `host_vars/`.
fn project_inventory(vault: bool) -> Result<Inventory, InventoryError> {
    let dir = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/ansible_project"
    ));
    let v = crate::vault::Vault::from_password_file(&dir.join("vault-password"));
    let v = v.unwrap_or_else(|e| panic!("{e}"));
    Inventory::load_with_vault(&dir.join("hosts.ini"), vault.then_some(&v))
}

#[test]
fn group_and_host_vars_directories() {
    // Expected values are what `ansible-inventory --host` prints for this fixture.
    let inv = project_inventory(true).unwrap_or_else(|e| panic!("{e}"));
    check_vars(
        &inv,
        "web1",
        &[
            // group_vars/web/ beats group_vars/prod.yml beats group_vars/all.yml beats
            // the inventory file's [web:vars].
            ("tier", json!("web")),
            ("greeting", json!("from-group-vars-all")),
            ("listen", json!("ini-web")),
            ("env_name", json!("production")),
            // host_vars beat group_vars; the inline !vault value is opened (and stays
            // marked as vaulted, see `opened_vault_marker`).
            ("app_port", json!(9001)),
            // A vaulted file inside group_vars/web/.
            ("web_secret", json!("web-only-secret")),
            ("ansible_connection", json!("local")),
        ],
    );
    let web1 = inv.host("web1").map(|h| h.vars.clone()).unwrap_or_default();
    assert_eq!(
        web1.get("host_secret")
            .and_then(rustle_runner::template::opened_vault)
            .map(|(plain, _)| plain),
        Some("inline-pass-web1")
    );
    check_vars(
        &inv,
        "web2",
        &[("app_port", json!(8081)), ("host_secret", Value::Null)],
    );
    check_vars(
        &inv,
        "db1",
        &[
            ("tier", json!("prod")),
            ("web_secret", Value::Null),
            ("greeting", json!("from-group-vars-all")),
        ],
    );
    // The implicit localhost gets group_vars/all too.
    let local = inv.select("localhost");
    assert_eq!(local[0].vars["greeting"], json!("from-group-vars-all"));

    let err = project_inventory(false).unwrap_err().to_string();
    assert!(
        err.contains("group_vars/web/20-vault.yml is encrypted with Ansible Vault"),
        "{err}"
    );
    assert!(err.contains("--vault-password-file"), "{err}");
}

#[test]
fn playbook_dir_layers_above_inventory_dir() {
    let d = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let write = |rel: &str, text: &str| {
        let p = d.path().join(rel);
        std::fs::create_dir_all(p.parent().unwrap_or(d.path())).unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(p, text).unwrap_or_else(|e| panic!("{e}"));
    };
    write("inv/hosts", "[web]\nw1 a=file b=file\n[web:vars]\nc=file\n");
    write("inv/group_vars/all.yml", "c: inv-all\nd: inv-all\n");
    write("inv/group_vars/web.yml", "d: inv-web\ne: inv-web\n");
    write("inv/host_vars/w1.yml", "b: inv-host\nf: inv-host\n");
    write("pb/group_vars/all.yml", "d: pb-all\n");
    write("pb/group_vars/web.yml", "e: pb-web\n");
    write("pb/host_vars/w1", "f: pb-host\n");
    let mut inv = Inventory::load(&d.path().join("inv/hosts")).unwrap_or_else(|e| panic!("{e}"));
    check_vars(
        &inv,
        "w1",
        &[
            ("a", json!("file")),
            ("b", json!("inv-host")),
            ("c", json!("inv-all")),
            ("d", json!("inv-web")),
            ("f", json!("inv-host")),
        ],
    );
    inv.add_vars_dir(&d.path().join("pb"), None)
        .unwrap_or_else(|e| panic!("{e}"));
    check_vars(
        &inv,
        "w1",
        &[
            ("a", json!("file")),
            ("b", json!("inv-host")),
            ("c", json!("inv-all")),
            // Any group's group_vars file beats every group_vars/all.
            ("d", json!("inv-web")),
            ("e", json!("pb-web")),
            ("f", json!("pb-host")),
        ],
    );
}

#[test]
fn limit_and_regex_patterns() {
    let mut inv = project_inventory(true).unwrap_or_else(|e| panic!("{e}"));
    check_select(&inv, "~web[12]", &["web1", "web2"]);
    check_select(&inv, "~(db|web2)", &["web2", "db1"]);
    check_select(&inv, "~eb", &[]);
    inv.set_limit("prod:!web2")
        .unwrap_or_else(|e| panic!("{e}"));
    check_select(&inv, "all", &["web1", "db1"]);
    check_select(&inv, "web", &["web1"]);
    // A second limit narrows the first.
    inv.set_limit("web*").unwrap_or_else(|e| panic!("{e}"));
    check_select(&inv, "all", &["web1"]);
    let err = inv.set_limit("db1").unwrap_err().to_string();
    assert_eq!(err, "--limit 'db1' matches no host of the inventory");

    // A retry file: one host a line.
    let d = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let retry = d.path().join("site.retry");
    std::fs::write(&retry, "db1\n\nweb2\n").unwrap_or_else(|e| panic!("{e}"));
    let mut inv = project_inventory(true).unwrap_or_else(|e| panic!("{e}"));
    inv.set_limit(&format!("@{}", retry.display()))
        .unwrap_or_else(|e| panic!("{e}"));
    check_select(&inv, "all", &["web2", "db1"]);
}

/// Several sources (`-i` more than once) merge as Ansible's inventory manager merges
/// them: hosts in the order first seen, a host's groups from every source, a later
/// source's host and group variables winning, group inheritance across sources, each
/// file source's group_vars/host_vars in the order of the sources, a directory's files
/// by name (ignored names left out), and an inline host list.
#[test]
fn several_sources_merge_as_ansible_merges_them() {
    let d = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let write = |rel: &str, text: &str| {
        let p = d.path().join(rel);
        std::fs::create_dir_all(p.parent().unwrap_or(d.path())).unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(p, text).unwrap_or_else(|e| panic!("{e}"));
    };
    write(
        "a/hosts",
        "[web]\nw1 a=first b=first\nw2\n[web:vars]\ng=first\n",
    );
    write("a/group_vars/web.yml", "v: a-dir\nonly_a: yes\n");
    write(
        "b/hosts.yml",
        "all:\n  children:\n    prod:\n      children:\n        web:\n          hosts:\n            w1: {b: second}\n          vars: {g: second}\n      vars: {p: prod}\n",
    );
    write("b/group_vars/web.yml", "v: b-dir\n");
    write("c/20-more", "[db]\nd1\n");
    write("c/10-first.ini", "[db]\nd0\n");
    write("c/README.md", "[broken\n");
    write("c/.hidden", "[broken\n");
    let sources = [
        d.path().join("a/hosts"),
        d.path().join("b/hosts.yml"),
        d.path().join("c"),
        PathBuf::from("x1,w2,"),
    ];
    let inv = Inventory::load_sources(&sources, None).unwrap_or_else(|e| panic!("{e}"));
    let names: Vec<&str> = inv.hosts().map(|h| h.name.as_str()).collect();
    assert_eq!(names, ["w1", "w2", "d0", "d1", "x1"]);
    check_vars(
        &inv,
        "w1",
        &[
            ("a", json!("first")),
            ("b", json!("second")),
            ("g", json!("second")),
            ("p", json!("prod")),
            ("v", json!("b-dir")),
            ("only_a", json!(true)),
        ],
    );
    check_select(&inv, "prod", &["w1", "w2"]);
    check_select(&inv, "db", &["d0", "d1"]);
    check_select(&inv, "ungrouped", &["x1"]);
    assert_eq!(inv.path(), Some(d.path().join("a/hosts").as_path()));
    assert_eq!(inv.sources(), sources);
    // A source that cannot be read is named.
    let err = Inventory::load_sources(&[sources[0].clone(), d.path().join("nope")], None)
        .unwrap_err()
        .to_string();
    assert!(err.contains("nope"), "{err}");
    // None at all is localhost.
    let inv = Inventory::load_sources(&[], None).unwrap_or_else(|e| panic!("{e}"));
    check_select(&inv, "all", &["localhost"]);
}

/// A connection variable given as an inline `!vault` value and no vault password: the
/// deployer needs its text to connect, so the inventory is refused, naming the variable
/// and the flag (another variable would travel encrypted, to be opened by `unvault`).
#[test]
fn a_vaulted_connection_variable_needs_the_password() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("hosts.ini"), "web1\n").unwrap();
    std::fs::create_dir(dir.path().join("host_vars")).unwrap();
    let sealed = "!vault |\n  $ANSIBLE_VAULT;1.1;AES256\n  3132\n";
    std::fs::write(
        dir.path().join("host_vars/web1.yml"),
        format!("other: {sealed}ansible_user: {sealed}"),
    )
    .unwrap();
    let e = Inventory::load_with_vault(&dir.path().join("hosts.ini"), None)
        .unwrap_err()
        .to_string();
    assert!(
        e.ends_with(
            "host 'web1': variable ansible_user: it is encrypted with Ansible Vault: give the password with --vault-password-file FILE"
        ),
        "{e}"
    );
}
