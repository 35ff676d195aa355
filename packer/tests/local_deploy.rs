//! End-to-end tests of the `rustle-deploy` binary with the real prebuilt runner: local
//! deploys, `--compile-only` binaries run by hand, tampered payloads, strip, bad input.
//!
//! They need the native runner that `cargo xtask runners --native` builds (`cargo xtask
//! test` does it first).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const RUNNER: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../target/runners/x86_64-unknown-linux-musl/rustle-runner"
);
const EXAMPLES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples");
const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures");

/// A private home, state root and key for one test, so tests never share state.
struct Env {
    dir: tempfile::TempDir,
}

impl Env {
    fn new() -> Env {
        assert!(
            Path::new(RUNNER).exists(),
            "no prebuilt runner at {RUNNER}: run `cargo xtask runners --native` (or `cargo xtask test`)"
        );
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("home")).unwrap();
        Env { dir }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn key(&self) -> PathBuf {
        self.path("home/.rustle/keys/deploy.key")
    }

    fn deploy(&self, args: &[&str]) -> Output {
        self.command().args(args).output().unwrap()
    }

    /// rustle-deploy with this test's home and state root, run in its directory.
    fn command(&self) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_rustle-deploy"));
        cmd.env("HOME", self.path("home"))
            .env("RUSTLE_ROOT", self.path("root"))
            .env_remove("RUSTLE_DEPLOY_KEY")
            .env_remove("RUSTLE_RUNNER_DIR")
            .current_dir(self.dir.path());
        cmd
    }

    /// Runs a binary by hand, as an operator on an air-gapped host would.
    /// A file this process just wrote can be briefly busy (ETXTBSY) while another test
    /// thread forks a child that still holds our write descriptor: retry that.
    fn run_by_hand(&self, bin: &Path, args: &[&str]) -> Output {
        for _ in 0..100 {
            let out = Command::new(bin)
                .args(args)
                .env_clear()
                .env("HOME", self.path("home"))
                .env("PATH", "/usr/bin:/bin")
                .output();
            match out {
                Err(e) if e.kind() == std::io::ErrorKind::ExecutableFileBusy => {
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                other => return other.unwrap(),
            }
        }
        panic!("{} stayed busy", bin.display())
    }

    fn write_json(&self, name: &str, v: &Value) -> PathBuf {
        let p = self.path(name);
        std::fs::write(&p, serde_json::to_vec_pretty(v).unwrap()).unwrap();
        p
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Fails the test, showing `out`, unless it holds `wanted`.
fn assert_has(out: &[u8], wanted: &str) {
    let out = text(out);
    assert!(out.contains(wanted), "{wanted:?} not in:\n{out}");
}

/// Deploys `playbook`, written as the environment's `site.yml`, and checks its exit code.
fn deploy_site(env: &Env, playbook: &str, want: i32) -> Output {
    let site = env.path("site.yml");
    std::fs::write(&site, playbook).unwrap();
    let o = env.deploy(&[site.to_str().unwrap()]);
    assert_eq!(code(&o), want, "{}{}", text(&o.stdout), text(&o.stderr));
    o
}

fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

/// A small plan whose every task writes under `dir`.
fn plan_in(dir: &Path) -> Value {
    json!({
        "format": "rustle-deploy-plan",
        "version": 1,
        "plays": [{
            "name": "files",
            "hosts": ["all"],
            "vars": {"base": dir.to_str().unwrap()},
            "tasks": [
                {"name": "dir", "module": "file", "args": {"path": "{{ base }}/{{ inventory_hostname }}", "state": "directory"}},
                {"name": "greeting", "module": "copy", "args": {"content": "hi {{ inventory_hostname }} {{ colour | default('none') }}\n", "dest": "{{ base }}/{{ inventory_hostname }}/greeting"}},
                {"name": "conf", "module": "template", "args": {"src": "t.j2", "dest": "{{ base }}/{{ inventory_hostname }}/conf"}},
                {"name": "marker", "module": "shell", "args": {"_raw_params": "touch {{ base }}/{{ inventory_hostname }}/ran", "creates": "{{ base }}/{{ inventory_hostname }}/ran"}}
            ]
        }],
        "files": {"t.j2": {"content": "host={{ inventory_hostname }}\n"}}
    })
}

/// The (task name, status) pairs of one host from a `--report` file.
fn statuses(report: &Path, host: &str) -> Vec<(String, String)> {
    let r: Value = serde_json::from_slice(&std::fs::read(report).unwrap()).unwrap();
    r["hosts"][host]["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["name"].as_str().unwrap().to_string(),
                t["status"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
    v.iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

#[test]
fn local_deploy_then_second_run_changes_nothing() {
    let env = Env::new();
    let work = env.path("work");
    std::fs::create_dir_all(&work).unwrap();
    let plan = env.write_json("plan.json", &plan_in(&work));
    let report = env.path("report.json");
    let args = [plan.to_str().unwrap(), "--report", report.to_str().unwrap()];

    let first = env.deploy(&args);
    assert_eq!(
        code(&first),
        0,
        "{}{}",
        text(&first.stdout),
        text(&first.stderr)
    );
    assert!(text(&first.stderr).contains("created a signing key"));
    assert!(env.key().exists());
    assert_eq!(
        statuses(&report, "localhost"),
        pairs(&[
            ("dir", "changed"),
            ("greeting", "changed"),
            ("conf", "changed"),
            ("marker", "changed")
        ])
    );
    assert_eq!(
        std::fs::read_to_string(work.join("localhost/greeting")).unwrap(),
        "hi localhost none\n"
    );
    assert!(text(&first.stdout).contains("localhost            : ok=4 changed=4"));

    let second = env.deploy(&args);
    assert_eq!(code(&second), 0, "{}", text(&second.stderr));
    assert!(
        statuses(&report, "localhost")
            .iter()
            .all(|(_, s)| s == "ok")
    );
    assert!(text(&second.stdout).contains("ok=4 changed=0"));

    // The release is kept on the host with its report, and `current` points at it.
    let root = env.path("root");
    let current = std::fs::read_link(root.join("current")).unwrap();
    let release = root.join(&current);
    assert!(release.join("rustle-runner").exists());
    assert!(release.join("report.json").exists());
    let state: Value =
        serde_json::from_slice(&std::fs::read(root.join("state.json")).unwrap()).unwrap();
    assert_eq!(state["deployments"].as_array().unwrap().len(), 2);
}

#[test]
fn check_mode_changes_nothing_on_disk() {
    let env = Env::new();
    let work = env.path("work");
    std::fs::create_dir_all(&work).unwrap();
    let w = work.to_str().unwrap();
    let plan = env.write_json(
        "plan.json",
        &json!({"format": "rustle-deploy-plan", "version": 1, "plays": [{"name": "p", "hosts": ["all"], "tasks": [
            {"name": "dir", "module": "file", "args": {"path": format!("{w}/d"), "state": "directory"}},
            {"name": "file", "module": "copy", "args": {"content": "x", "dest": format!("{w}/f")}},
            {"name": "cmd", "module": "shell", "args": {"_raw_params": format!("touch {w}/t")}}
        ]}]}),
    );
    let report = env.path("report.json");
    let out = env.deploy(&[
        plan.to_str().unwrap(),
        "--check",
        "--report",
        report.to_str().unwrap(),
    ]);
    assert_eq!(code(&out), 0, "{}", text(&out.stderr));
    // As Ansible: file and copy say what they would change; command cannot know, so it skips.
    assert_eq!(
        statuses(&report, "localhost"),
        pairs(&[("dir", "changed"), ("file", "changed"), ("cmd", "skipped")])
    );
    assert!(
        std::fs::read_dir(&work).unwrap().next().is_none(),
        "check mode wrote files"
    );
}

/// Three hosts, all local so their binaries can be run here by hand.
fn three_host_inventory(env: &Env) -> PathBuf {
    let inv = env.path("hosts.ini");
    std::fs::write(
        &inv,
        "[web]\nweb[1:2] ansible_connection=local colour=blue\n[db]\ndb1 ansible_connection=local\n[web:vars]\nrole=frontend\n",
    )
    .unwrap();
    inv
}

/// `group_by` puts hosts in groups while the plays run: a later play whose `hosts`
/// name such a group runs on the hosts that joined it, `all:!group` on the others, and
/// a host that joined takes the group's `group_vars` (ranked among its groups as Ansible
/// ranks them: `web` sorts after `kind_blue` at the same depth and wins). ansible-core
/// 2.18 writes the same files with the same contents for this playbook.
#[test]
fn group_by_groups_select_later_plays_and_bring_their_group_vars() {
    let env = Env::new();
    let inv = three_host_inventory(&env);
    let out = env.path("out");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::create_dir_all(env.path("group_vars")).unwrap();
    std::fs::write(
        env.path("group_vars/kind_blue.yml"),
        "tier: gold\nshade: navy\n",
    )
    .unwrap();
    std::fs::write(env.path("group_vars/web.yml"), "tier: silver\n").unwrap();
    let site = env.path("site.yml");
    std::fs::write(
        &site,
        format!(
            "- hosts: all\n  gather_facts: false\n  tasks:\n\
             \x20   - group_by:\n        key: \"kind_{{{{ 'blue' if colour is defined else 'plain' }}}}\"\n\
             - hosts: kind_blue\n  gather_facts: false\n  tasks:\n\
             \x20   - copy:\n        content: \"{{{{ tier }}}} {{{{ shade }}}}\"\n        dest: {o}/{{{{ inventory_hostname }}}}\n\
             - hosts: all:!kind_blue\n  gather_facts: false\n  tasks:\n\
             \x20   - copy:\n        content: \"{{{{ shade | default('none') }}}}\"\n        dest: {o}/rest-{{{{ inventory_hostname }}}}\n",
            o = out.display()
        ),
    )
    .unwrap();
    let o = env.deploy(&["-i", inv.to_str().unwrap(), site.to_str().unwrap()]);
    assert_eq!(code(&o), 0, "{}{}", text(&o.stdout), text(&o.stderr));
    let mut written: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    written.sort();
    assert_eq!(written, ["rest-db1", "web1", "web2"]);
    for web in ["web1", "web2"] {
        assert_eq!(
            std::fs::read_to_string(out.join(web)).unwrap(),
            "silver navy"
        );
    }
    assert_eq!(
        std::fs::read_to_string(out.join("rest-db1")).unwrap(),
        "none"
    );
}

/// A role with `meta/argument_specs.yml` gets Ansible's check before its first task:
/// good variables pass (converted as Ansible converts them), a bad one fails the role's
/// use with Ansible's message before any of its tasks runs. set_stats figures add up
/// and are shown after the recap when asked for.
#[test]
fn role_argument_specs_are_checked_first_and_custom_stats_add_up() {
    let env = Env::new();
    let out = env.path("out");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::create_dir_all(env.path("roles/web/tasks")).unwrap();
    std::fs::create_dir_all(env.path("roles/web/meta")).unwrap();
    std::fs::write(
        env.path("roles/web/tasks/main.yml"),
        format!(
            "- copy:\n    content: \"{{{{ port }}}}\"\n    dest: {}/port\n",
            out.display()
        ),
    )
    .unwrap();
    std::fs::write(
        env.path("roles/web/meta/argument_specs.yml"),
        "argument_specs:\n  main:\n    short_description: The web role\n    options:\n      port:\n        type: int\n        required: true\n",
    )
    .unwrap();
    let site = env.path("site.yml");
    std::fs::write(
        &site,
        format!(
            "- hosts: localhost\n  gather_facts: false\n  tasks:\n\
             \x20   - include_role:\n        name: web\n      vars:\n        port: \"8080\"\n\
             \x20   - set_stats:\n        data:\n          deployed: 1\n\
             \x20   - set_stats:\n        data:\n          deployed: 2\n\
             \x20   - block:\n        - include_role:\n            name: web\n          vars:\n            port: eighty\n\
             \x20     rescue:\n        - copy:\n            content: \"{{{{ ansible_failed_result.argument_errors | join('|') }}}}\"\n            dest: {o}/errors\n",
            o = out.display()
        ),
    )
    .unwrap();
    let report = env.path("report.json");
    let o = env
        .command()
        .env("ANSIBLE_SHOW_CUSTOM_STATS", "yes")
        .args([site.to_str().unwrap(), "--report", report.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(code(&o), 0, "{}{}", text(&o.stdout), text(&o.stderr));
    assert_eq!(std::fs::read_to_string(out.join("port")).unwrap(), "8080");
    assert_eq!(
        std::fs::read_to_string(out.join("errors")).unwrap(),
        "argument 'port' is of type <class 'str'> and we were unable to convert to int: \"'eighty'\" cannot be converted to an int"
    );
    let names = statuses(&report, "localhost");
    let checks: Vec<&(String, String)> = names
        .iter()
        .filter(|(n, _)| n.contains("Validating arguments against arg spec 'main' - The web role"))
        .collect();
    assert_eq!(checks.len(), 2, "{names:?}");
    assert_eq!(
        (checks[0].1.as_str(), checks[1].1.as_str()),
        ("ok", "failed")
    );
    assert_has(&o.stdout, "CUSTOM STATS:");
    assert_has(&o.stdout, "RUN: { \"deployed\": 3}");
    let r: Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert_eq!(r["custom_stats"]["run"], json!({"deployed": 3}));
}

/// Files beside the playbook that lookups name literally travel (`lookup('file',
/// 'deploy.pub')`, an ini file); other files there stay on the controller.
#[test]
fn files_lookups_name_beside_the_playbook_travel_and_nothing_else_there() {
    let env = Env::new();
    let out = env.path("out");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(env.path("deploy.pub"), "ssh-ed25519 AAAA-key deployer\n").unwrap();
    std::fs::write(env.path("app.properties"), "port=8080\n").unwrap();
    std::fs::write(env.path("motd.txt"), "welcome").unwrap();
    std::fs::write(env.path("secret.txt"), "TOP-SECRET-4711\n").unwrap();
    std::fs::write(env.path("hosts.ini"), "web1 ansible_connection=local\n").unwrap();
    let site = env.path("site.yml");
    std::fs::write(
        &site,
        format!(
            "- hosts: all\n  gather_facts: false\n  vars:\n    motd: \"{{{{ lookup('file', 'motd.txt') }}}}\"\n  tasks:\n\
             \x20   - copy:\n        content: \"{{{{ lookup('file', 'deploy.pub') }}}} {{{{ lookup('ini', 'port type=properties file=app.properties') }}}} {{{{ motd }}}}\"\n        dest: {}/got\n",
            out.display()
        ),
    )
    .unwrap();
    let inv = env.path("hosts.ini");
    let o = env.deploy(&["-i", inv.to_str().unwrap(), site.to_str().unwrap()]);
    assert_eq!(code(&o), 0, "{}{}", text(&o.stdout), text(&o.stderr));
    assert_eq!(
        std::fs::read_to_string(out.join("got")).unwrap(),
        "ssh-ed25519 AAAA-key deployer 8080 welcome"
    );
    let bins = env.path("bins");
    let o = env.deploy(&[
        "--compile-only",
        "-i",
        inv.to_str().unwrap(),
        site.to_str().unwrap(),
        "-o",
        bins.to_str().unwrap(),
    ]);
    assert_eq!(code(&o), 0, "{}", text(&o.stderr));
    let (_, raw) = payload_plan(&env, &bins.join("web1"));
    let holds = |needle: &[u8]| raw.windows(needle.len()).any(|w| w == needle);
    assert!(holds(b"AAAA-key"), "the looked-up file did not travel");
    assert!(
        !holds(b"TOP-SECRET-4711"),
        "a file no lookup names travelled"
    );

    // A vault-encrypted file named so is opened with the vault password, as Ansible's
    // file lookup opens it; without the password the task says why.
    let project = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ansible_project");
    std::fs::copy(
        project.join("roles/app/files/secret.txt"),
        env.path("sealed.txt"),
    )
    .unwrap();
    std::fs::write(
        &site,
        format!(
            "- hosts: all\n  gather_facts: false\n  tasks:\n\
             \x20   - copy:\n        content: \"{{{{ lookup('file', 'sealed.txt') }}}}\"\n        dest: {}/sealed\n",
            out.display()
        ),
    )
    .unwrap();
    let pw = project.join("vault-password");
    let o = env.deploy(&[
        "-i",
        inv.to_str().unwrap(),
        "--vault-password-file",
        pw.to_str().unwrap(),
        site.to_str().unwrap(),
    ]);
    assert_eq!(code(&o), 0, "{}{}", text(&o.stdout), text(&o.stderr));
    assert_eq!(
        std::fs::read_to_string(out.join("sealed")).unwrap(),
        "api-key=abc123"
    );
    let o = env.deploy(&["-i", inv.to_str().unwrap(), site.to_str().unwrap()]);
    assert_ne!(code(&o), 0);
    assert_has(&o.stdout, "encrypted with Ansible Vault");
}

fn compile_only(env: &Env, work: &Path) -> (Vec<(String, String, PathBuf)>, PathBuf) {
    let plan = env.write_json("plan.json", &plan_in(work));
    let inv = three_host_inventory(env);
    let out_dir = env.path("out");
    let out = env.deploy(&[
        "--compile-only",
        "-i",
        inv.to_str().unwrap(),
        plan.to_str().unwrap(),
        "-o",
        out_dir.to_str().unwrap(),
    ]);
    assert_eq!(code(&out), 0, "{}", text(&out.stderr));
    let rows = text(&out.stdout)
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            (f[0].to_string(), f[1].to_string(), PathBuf::from(f[2]))
        })
        .collect();
    (rows, out_dir)
}

#[test]
fn compile_only_writes_one_runner_per_host_that_runs_by_hand() {
    let env = Env::new();
    let work = env.path("work");
    std::fs::create_dir_all(&work).unwrap();
    let (rows, out_dir) = compile_only(&env, &work);
    let hosts: Vec<&str> = rows.iter().map(|r| r.0.as_str()).collect();
    assert_eq!(hosts, ["web1", "web2", "db1"]);
    // One runner per host, plus the manifest --deploy-only reads and its signature.
    assert_eq!(std::fs::read_dir(&out_dir).unwrap().count(), 5);
    assert!(out_dir.join("deployment.json").exists());
    assert!(out_dir.join("deployment.json.sig").exists());
    assert!(
        !work.join("web1").exists(),
        "--compile-only must run nothing"
    );

    // Each binary carries its own host's payload, with the digest printed for it.
    for (host, digest, path) in &rows {
        let info = env.run_by_hand(path, &["info"]);
        assert_eq!(code(&info), 0, "{}", text(&info.stderr));
        let v: Value = serde_json::from_slice(&info.stdout).unwrap();
        assert_eq!(&v["digest"], digest.as_str(), "{host}");
    }
    let digests: std::collections::BTreeSet<_> = rows.iter().map(|r| &r.1).collect();
    assert_eq!(digests.len(), 3, "each host gets its own payload");

    let pubkey = format!("{}.pub", env.key().display());
    let (_, digest, web1) = &rows[0];
    let run = env.run_by_hand(web1, &["--trusted-key", &pubkey, "--expect", digest]);
    assert_eq!(code(&run), 0, "{}", text(&run.stderr));
    assert_eq!(
        std::fs::read_to_string(work.join("web1/greeting")).unwrap(),
        "hi web1 blue\n",
        "group vars of the host reach its payload"
    );
    let events: Vec<Value> = text(&run.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(events[0]["type"], "start");
    assert_eq!(events[0]["host"], "web1");
    assert!(events.iter().all(|e| e["v"] == 1));
    assert_eq!(events.last().unwrap()["type"], "recap");
    assert_eq!(events.last().unwrap()["recap"]["changed"], 4);
    assert!(
        !work.join("web2").exists(),
        "web1's binary ran only web1's plan"
    );
}

/// Offset of the payload inside a packed file.
fn payload_range(bytes: &[u8]) -> std::ops::Range<usize> {
    let p = rustle_runner::locate::find_payload(bytes).unwrap();
    let start = p.as_ptr() as usize - bytes.as_ptr() as usize;
    start..start + p.len()
}

#[test]
fn tampered_or_untrusted_payload_is_refused_before_any_task() {
    let env = Env::new();
    let work = env.path("work");
    std::fs::create_dir_all(&work).unwrap();
    let (rows, _) = compile_only(&env, &work);
    let pubkey = format!("{}.pub", env.key().display());
    let (_, digest, web1) = &rows[0];
    let original = std::fs::read(web1).unwrap();
    let range = payload_range(&original);

    // (what to change, extra args, expected exit code, words in the message)
    let cases: Vec<(&str, usize, Vec<&str>, i32, &str)> = vec![
        (
            "flipped body byte",
            range.end - 10,
            vec!["--expect", digest],
            65,
            "corrupt",
        ),
        (
            "flipped signature byte",
            range.start + 100,
            vec![],
            67,
            "signature",
        ),
        (
            "flipped version byte",
            range.start + 8,
            vec![],
            65,
            "version",
        ),
    ];
    for (what, offset, extra, want, words) in cases {
        let mut bytes = original.clone();
        bytes[offset] ^= 0x01;
        let bin = env.path("tampered");
        std::fs::write(&bin, &bytes).unwrap();
        std::fs::set_permissions(&bin, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        let mut args = vec!["--trusted-key", pubkey.as_str()];
        args.extend(extra);
        let out = env.run_by_hand(&bin, &args);
        assert_eq!(code(&out), want, "{what}: {}", text(&out.stderr));
        assert!(
            text(&out.stderr).contains(words),
            "{what}: {}",
            text(&out.stderr)
        );
        assert!(out.stdout.is_empty(), "{what}: events were emitted");
        assert!(!work.join("web1").exists(), "{what}: a task ran");
    }

    // Intact payload, but not the digest the deployer expects.
    let other = "00".repeat(32);
    let out = env.run_by_hand(web1, &["--trusted-key", &pubkey, "--expect", &other]);
    assert_eq!(code(&out), 66, "{}", text(&out.stderr));
    // Intact payload, but nobody trusts its signer: no key given, empty trust store.
    let out = env.run_by_hand(web1, &[]);
    assert_eq!(code(&out), 67, "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("not trusted"));
    // A different key than the signer's.
    let other_key = env.path("other.key");
    let kg = env.deploy(&["keygen", "--out", other_key.to_str().unwrap()]);
    assert_eq!(code(&kg), 0, "{}", text(&kg.stderr));
    let other_pub = format!("{}.pub", other_key.display());
    let out = env.run_by_hand(web1, &["--trusted-key", &other_pub]);
    assert_eq!(code(&out), 67);
    // The trust store in the home directory works like --trusted-key.
    std::fs::copy(&pubkey, env.path("home/.rustle/trusted_keys")).unwrap();
    let out = env.run_by_hand(web1, &[]);
    assert_eq!(code(&out), 0, "{}", text(&out.stderr));
    assert!(work.join("web1/ran").exists());
}

#[test]
fn packed_runner_survives_gnu_strip_and_llvm_strip() {
    let env = Env::new();
    let work = env.path("work");
    std::fs::create_dir_all(&work).unwrap();
    let (rows, _) = compile_only(&env, &work);
    let pubkey = format!("{}.pub", env.key().display());
    for (tool, host) in [("strip", 0), ("llvm-strip", 1)] {
        let (name, digest, bin) = &rows[host];
        let stripped = env.path(&format!("{name}.{tool}"));
        std::fs::copy(bin, &stripped).unwrap();
        let st = Command::new(tool).arg(&stripped).status().unwrap();
        assert!(st.success(), "{tool} failed");
        let out = env.run_by_hand(&stripped, &["--trusted-key", &pubkey, "--expect", digest]);
        assert_eq!(code(&out), 0, "after {tool}: {}", text(&out.stderr));
        assert!(
            work.join(name).join("ran").exists(),
            "after {tool}: plan did not run"
        );
    }
}

#[test]
fn dry_run_shows_every_host_and_writes_nothing() {
    let env = Env::new();
    let work = env.path("work");
    let plan = env.write_json("plan.json", &plan_in(&work));
    let inv = three_host_inventory(&env);
    let out = env.deploy(&[
        "--dry-run",
        "-i",
        inv.to_str().unwrap(),
        plan.to_str().unwrap(),
    ]);
    assert_eq!(code(&out), 0, "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    for host in ["web1", "web2", "db1"] {
        let line = stdout.lines().find(|l| l.starts_with(host)).unwrap();
        assert!(line.contains("x86_64-unknown-linux-musl"), "{line}");
        assert!(line.contains("rustle-runner"), "{line}");
    }
    assert!(!env.key().exists(), "a dry run must not create a key");
    assert!(!env.path("target").exists() && !env.path("root").exists());
}

#[test]
fn probe_playbook_gives_ansibles_results() {
    let env = Env::new();
    let mut plan: Value =
        serde_json::from_slice(&std::fs::read(format!("{EXAMPLES}/probe.plan.json")).unwrap())
            .unwrap();
    let app_dir = env.path("probe");
    plan["plays"][0]["vars"]["app_dir"] = json!(app_dir.to_str().unwrap());
    // The play asks for root; as another user the deploy would go through sudo, which a
    // test machine may not allow.
    if rustle_runner::facts::current_uid() != Some(0) {
        plan["plays"][0]
            .as_object_mut()
            .unwrap()
            .shift_remove("become");
    }
    let plan = env.write_json("probe.json", &plan);
    let report = env.path("report.json");
    let args = [plan.to_str().unwrap(), "--report", report.to_str().unwrap()];
    let debian = std::fs::read_to_string("/etc/os-release")
        .unwrap_or_default()
        .lines()
        .any(|l| l == "ID=debian" || l.starts_with("ID_LIKE=") && l.contains("debian"));
    let when = if debian { "ok" } else { "skipped" };

    let first = env.deploy(&args);
    assert_eq!(
        code(&first),
        0,
        "{}{}",
        text(&first.stdout),
        text(&first.stderr)
    );
    assert_eq!(
        statuses(&report, "localhost"),
        pairs(&[
            ("Gathering Facts", "ok"),
            ("make dir", "changed"),
            ("loop dirs", "changed"),
            ("shell with register", "changed"),
            ("fact-based when", when),
            ("template", "ok"),
            ("restart app", "changed"),
        ])
    );
    assert_eq!(
        std::fs::read_to_string(app_dir.join("app.conf")).unwrap(),
        format!(
            "# app.conf for localhost\napp_dir = {}\npackages = curl,git\n",
            app_dir.display()
        )
    );
    assert!(app_dir.join("a").is_dir() && app_dir.join("b").is_dir());

    let second = env.deploy(&args);
    assert_eq!(code(&second), 0, "{}", text(&second.stderr));
    assert_eq!(
        statuses(&report, "localhost"),
        pairs(&[
            ("Gathering Facts", "ok"),
            ("make dir", "ok"),
            ("loop dirs", "ok"),
            ("shell with register", "ok"),
            ("fact-based when", when),
            ("template", "ok"),
        ]),
        "second run: nothing changes and the handler is not notified"
    );
}

#[test]
fn bad_input_is_refused_with_the_culprit_named() {
    let env = Env::new();
    let work = env.path("work");
    let plan = env.write_json("plan.json", &plan_in(&work));
    let plan = plan.to_str().unwrap();
    let invalid_inv = format!("{FIXTURES}/inventories/invalid.ini");
    let broken_plan = env.path("broken.json");
    std::fs::write(
        &broken_plan,
        "{\"format\": \"rustle-deploy-plan\",\n \"version\": 1,\n \"plays\": [}",
    )
    .unwrap();
    let unknown_module = env.write_json(
        "unknown.json",
        &json!({"format": "rustle-deploy-plan", "version": 1,
                "plays": [{"name": "p", "hosts": ["all"], "tasks": [{"name": "pkg", "module": "frobnicate"}]}]}),
    );
    let wrong_version = env.write_json(
        "v99.json",
        &json!({"format": "rustle-deploy-plan", "version": 99, "plays": []}),
    );
    let bad_key = env.path("bad.key");
    std::fs::write(&bad_key, "not a key").unwrap();
    std::fs::set_permissions(
        &bad_key,
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();

    // (arguments, exit code, words the message must contain)
    let cases: Vec<(Vec<&str>, i32, Vec<&str>)> = vec![
        (
            vec!["-i", &invalid_inv, plan],
            4,
            vec!["invalid.ini:", "[invalid_group"],
        ),
        (
            vec![broken_plan.to_str().unwrap()],
            4,
            vec!["broken.json:3"],
        ),
        (
            vec![unknown_module.to_str().unwrap()],
            4,
            vec!["'pkg'", "frobnicate"],
        ),
        (vec![wrong_version.to_str().unwrap()], 4, vec!["99"]),
        (
            vec!["--key", bad_key.to_str().unwrap(), plan],
            4,
            vec!["bad.key"],
        ),
        (
            vec!["/nonexistent/plan.json"],
            4,
            vec!["/nonexistent/plan.json"],
        ),
        (
            vec!["--target", "sparc-sun-solaris", plan],
            4,
            vec!["sparc-sun-solaris"],
        ),
        // A bad command line is bad input too (not clap's 2, which here means a task
        // failed).
        (vec!["--bogus", plan], 4, vec!["--bogus"]),
        (
            vec!["--vault-password-file", "/nonexistent/vault-pw", plan],
            4,
            vec!["/nonexistent/vault-pw"],
        ),
        (
            vec!["--strategy", "bluegreen", plan],
            4,
            vec!["bluegreen", "blue-green"],
        ),
    ];
    for (args, want, words) in cases {
        let out = env.deploy(&args);
        let err = text(&out.stderr);
        assert_eq!(code(&out), want, "{args:?}: {err}");
        for w in words {
            assert!(err.contains(w), "{args:?}: '{w}' not in: {err}");
        }
        assert!(!work.exists(), "{args:?}: something ran");
    }
}

/// Each mode decides on its own what the run does, so two of them are refused, naming
/// both, rather than one silently winning (`--dry-run --cleanup` would clean up,
/// `--rollback --deploy-only` would roll back), with or without a plan, and for
/// `adhoc` too.
#[test]
fn two_modes_are_refused_naming_both() {
    let env = Env::new();
    let work = env.path("work");
    let plan = env.write_json("plan.json", &plan_in(&work));
    let plan = plan.to_str().unwrap();
    let modes = [
        "--compile-only",
        "--deploy-only",
        "--dry-run",
        "--rollback",
        "--list-deployments",
        "--cleanup",
    ];
    for (i, first) in modes.iter().enumerate() {
        for second in &modes[i + 1..] {
            for args in [
                vec![*first, *second],
                vec![*second, plan, *first],
                vec!["adhoc", "localhost", "-a", "true", *first, *second],
            ] {
                let out = env.deploy(&args);
                let err = text(&out.stderr);
                assert_eq!(code(&out), 4, "{args:?}: {err}");
                for w in [*first, *second, "cannot be used with"] {
                    assert!(err.contains(w), "{args:?}: '{w}' not in: {err}");
                }
                assert!(!work.exists(), "{args:?}: something ran");
            }
        }
    }
}

#[test]
fn plan_from_stdin_and_rustle_plan_input() {
    let env = Env::new();
    let work = env.path("work");
    std::fs::create_dir_all(&work).unwrap();
    let plan = serde_json::to_vec(&plan_in(&work)).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_rustle-deploy"))
        .arg("-")
        .env("HOME", env.path("home"))
        .env("RUSTLE_ROOT", env.path("root"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), &plan).unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(code(&out), 0, "{}", text(&out.stderr));
    assert!(work.join("localhost/ran").exists());

    // rustle-plan 0.1.0 output packs too (its modules permitting): the fixture's template
    // src is found beside it.
    let out = env.deploy(&[
        "--dry-run",
        "-i",
        &format!("{FIXTURES}/inventories/inv.ini"),
        &format!("{FIXTURES}/rustle-plan/simple.plan.json"),
    ]);
    // Every module it uses (package, template, ...) is the runner's: it packs.
    assert_eq!(code(&out), 0, "{}", text(&out.stderr));
    assert!(text(&out.stdout).starts_with("deployment "));
}

#[test]
fn library_script_modules_and_include_vars_files_travel_with_the_plan() {
    let env = Env::new();
    let dir = env.path("project");
    std::fs::create_dir_all(dir.join("library")).unwrap();
    std::fs::create_dir_all(dir.join("vars")).unwrap();
    // A WANT_JSON module, as a playbook's library/ holds them: reads its args file.
    std::fs::write(
        dir.join("library/shout.sh"),
        "#!/bin/sh\nword=$(sed -n 's/.*\"word\": *\"\\([^\"]*\\)\".*/\\1/p' \"$1\")\necho \"{\\\"changed\\\": false, \\\"said\\\": \\\"$word!\\\"}\"\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("vars/app.yml"),
        "app_port: 8080\napp_users: [ann, bob]\n",
    )
    .unwrap();
    let work = env.path("work");
    let plan = json!({
        "format": "rustle-deploy-plan", "version": 1,
        "plays": [{"name": "p", "hosts": ["all"], "tasks": [
            {"name": "vars", "module": "include_vars", "args": {"_raw_params": "app.yml"}},
            {"name": "shout", "module": "shout", "args": {"word": "{{ app_users | first }}"}, "register": "s"},
            {"name": "write", "module": "copy",
             "args": {"content": "{{ app_port }} {{ s.said }}\n", "dest": format!("{}/out", work.display())}}
        ]}]
    });
    std::fs::create_dir_all(&work).unwrap();
    let plan_file = dir.join("plan.json");
    std::fs::write(&plan_file, serde_json::to_vec(&plan).unwrap()).unwrap();
    let out = env.deploy(&[plan_file.to_str().unwrap()]);
    assert_eq!(code(&out), 0, "{}{}", text(&out.stdout), text(&out.stderr));
    assert_eq!(
        std::fs::read_to_string(work.join("out")).unwrap(),
        "8080 ann!\n"
    );
}

#[test]
fn config_file_and_environment_are_read_and_checked() {
    let env = Env::new();
    let work = env.path("work");
    std::fs::create_dir_all(&work).unwrap();
    let plan = env.write_json("plan.json", &plan_in(&work));
    let plan = plan.to_str().unwrap();
    // A misspelt key is refused, naming the file, line and key.
    std::fs::write(
        env.path("rustle-deploy.toml"),
        "[deployment]\nparalel_jobs = 4\n",
    )
    .unwrap();
    let out = env.deploy(&[plan]);
    assert_eq!(code(&out), 4, "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("rustle-deploy.toml:2"),
        "{}",
        text(&out.stderr)
    );
    assert!(text(&out.stderr).contains("paralel_jobs"));
    // The size limit from the file stops the deploy before anything runs ...
    std::fs::write(
        env.path("rustle-deploy.toml"),
        "[compilation]\nbinary_size_limit_mb = 1\n",
    )
    .unwrap();
    let out = env.deploy(&[plan]);
    assert_eq!(code(&out), 4, "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("limit"), "{}", text(&out.stderr));
    assert!(!work.join("localhost").exists());
    // ... and the environment overrides the file.
    let out = Command::new(env!("CARGO_BIN_EXE_rustle-deploy"))
        .arg(plan)
        .env("HOME", env.path("home"))
        .env("RUSTLE_ROOT", env.path("root"))
        .env("RUSTLE_BINARY_SIZE_LIMIT", "50M")
        .current_dir(env.dir.path())
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{}", text(&out.stderr));
    assert!(work.join("localhost/ran").exists());
}

/// The upload script makes its temporary directory under umask 077, but the runner's
/// tasks must see the caller's umask, as Ansible's modules do: a copy without `mode` and
/// a file a shell redirect creates come out 0644 under umask 022, not 0600.
#[test]
fn tasks_run_with_the_callers_umask() {
    use std::os::unix::fs::PermissionsExt;
    let env = Env::new();
    let work = env.path("work");
    std::fs::create_dir_all(&work).unwrap();
    let w = work.to_str().unwrap();
    let plan = env.write_json(
        "plan.json",
        &json!({"format": "rustle-deploy-plan", "version": 1, "plays": [{"name": "p", "hosts": ["all"], "tasks": [
            {"name": "copy", "module": "copy", "args": {"content": "x\n", "dest": format!("{w}/copied")}},
            {"name": "shell", "module": "shell", "args": {"_raw_params": format!("echo x > {w}/redirected && mkdir {w}/made")}},
            {"name": "dir", "module": "file", "args": {"path": format!("{w}/dir"), "state": "directory"}}
        ]}]}),
    );
    let out = Command::new("sh")
        .args(["-c", "umask 022 && exec \"$0\" \"$@\""])
        .arg(env!("CARGO_BIN_EXE_rustle-deploy"))
        .arg(&plan)
        .env("HOME", env.path("home"))
        .env("RUSTLE_ROOT", env.path("root"))
        .env_remove("RUSTLE_DEPLOY_KEY")
        .env_remove("RUSTLE_RUNNER_DIR")
        .current_dir(env.dir.path())
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{}{}", text(&out.stdout), text(&out.stderr));
    let mode = |name: &str| {
        std::fs::metadata(work.join(name))
            .unwrap()
            .permissions()
            .mode()
            & 0o7777
    };
    assert_eq!(mode("copied"), 0o644);
    assert_eq!(mode("redirected"), 0o644);
    assert_eq!(mode("made"), 0o755);
    assert_eq!(mode("dir"), 0o755);
    // The state the runner keeps stays private whatever the umask.
    let release = env
        .path("root")
        .join(std::fs::read_link(env.path("root/current")).unwrap());
    assert_eq!(
        std::fs::metadata(&release).unwrap().permissions().mode() & 0o777,
        0o700
    );
}

/// The host plan inside a packed runner, opened with the runner's own payload API.
fn payload_plan(env: &Env, bin: &Path) -> (rustle_runner::plan::HostPlan, Vec<u8>) {
    let bytes = std::fs::read(bin).unwrap();
    let payload = rustle_runner::locate::find_payload(&bytes).unwrap();
    let key = rustle_deploy::keys::load(&env.key()).unwrap().public();
    let (_, plan) = rustle_runner::payload::open(payload, None, &[key]).unwrap();
    let (_, body) = rustle_runner::payload::parse(payload).unwrap();
    let raw = zstd::decode_all(body).unwrap();
    (plan, raw)
}

#[test]
fn connection_secrets_never_enter_a_payload() {
    let env = Env::new();
    let work = env.path("work");
    std::fs::create_dir_all(&work).unwrap();
    let w = work.to_str().unwrap();
    let secrets = [
        ("ansible_password", "login-pw-1"),
        ("ansible_ssh_pass", "login-pw-2"),
        ("ansible_become_password", "become-pw-3"),
        ("ansible_become_pass", "become-pw-4"),
        ("ansible_sudo_pass", "sudo-pw-5"),
    ];
    let mut inv_text = String::from("[web]\nweb1 ansible_connection=local ansible_user=deployer");
    for (k, v) in &secrets {
        inv_text.push_str(&format!(" {k}={v}"));
    }
    inv_text.push_str("\n[web:vars]\nansible_ssh_private_key_passphrase=key-pw-6\n");
    let inv = env.path("hosts.ini");
    std::fs::write(&inv, inv_text).unwrap();
    let plan = env.write_json(
        "plan.json",
        &json!({"format": "rustle-deploy-plan", "version": 1, "plays": [{
            "name": "p", "hosts": ["all"],
            "vars": {"ansible_become_password": "play-pw-7", "kept": "play-var"},
            "tasks": [
                {"name": "user", "module": "copy", "args": {"content": "{{ ansible_user }} {{ kept }}", "dest": format!("{w}/user")}},
                {"name": "block", "block": [
                    {"name": "leak", "module": "copy", "vars": {"ansible_sudo_pass": "task-pw-8"},
                     "args": {"content": "{{ ansible_become_password }}", "dest": format!("{w}/leak")}}
                ]}
            ]
        }]}),
    );
    let out_dir = env.path("out");
    let out = env.deploy(&[
        "--compile-only",
        "-i",
        inv.to_str().unwrap(),
        plan.to_str().unwrap(),
        "-o",
        out_dir.to_str().unwrap(),
    ]);
    assert_eq!(code(&out), 0, "{}", text(&out.stderr));
    let bin = out_dir.join("web1");
    let (host_plan, raw) = payload_plan(&env, &bin);
    let all_secrets = secrets
        .iter()
        .map(|(_, v)| *v)
        .chain(["key-pw-6", "play-pw-7", "task-pw-8"]);
    for v in all_secrets {
        assert!(
            !raw.windows(v.len()).any(|w| w == v.as_bytes()),
            "{v} is in the payload"
        );
    }
    for (k, _) in &secrets {
        assert!(!host_plan.host_vars.contains_key(*k), "{k}");
    }
    // What is not a secret stays: tasks use it.
    assert_eq!(host_plan.host_vars["ansible_user"], "deployer");
    assert_eq!(host_plan.plays[0].vars["kept"], "play-var");

    // A task that uses one fails, naming the variable, and shows no value.
    let pubkey = format!("{}.pub", env.key().display());
    let run = env.run_by_hand(&bin, &["--trusted-key", &pubkey]);
    assert_eq!(code(&run), 2, "{}", text(&run.stderr));
    assert_eq!(
        std::fs::read_to_string(work.join("user")).unwrap(),
        "deployer play-var"
    );
    assert!(!work.join("leak").exists());
    let events = text(&run.stdout);
    let leak = events
        .lines()
        .find(|l| l.contains("\"name\":\"leak\""))
        .unwrap();
    assert!(leak.contains("ansible_become_password"), "{leak}");
    assert!(!leak.contains("pw-"), "{leak}");
}

fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777
}

fn set_mode(p: &Path, m: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap();
}

#[test]
fn compile_only_output_and_plans_are_private_to_their_owner() {
    let env = Env::new();
    let work = env.path("work");
    std::fs::create_dir_all(&work).unwrap();
    // Packed runners carry the plan's secrets: 0700 in a directory made 0700, the
    // manifest and its signature 0600, whatever the umask (here the usual 022).
    let (rows, out_dir) = compile_only(&env, &work);
    assert_eq!(mode(&out_dir), 0o700);
    for (host, _, path) in &rows {
        assert_eq!(mode(path), 0o700, "{host}");
    }
    assert_eq!(mode(&out_dir.join("deployment.json")), 0o600);
    assert_eq!(mode(&out_dir.join("deployment.json.sig")), 0o600);

    let plan = env.path("plan.json");
    let inv = three_host_inventory(&env);
    let compile = |dir: &Path| {
        env.deploy(&[
            "--compile-only",
            "-i",
            inv.to_str().unwrap(),
            plan.to_str().unwrap(),
            "-o",
            dir.to_str().unwrap(),
        ])
    };
    // A directory other users can write to is refused, and nothing is written there.
    let shared = env.path("shared");
    std::fs::create_dir(&shared).unwrap();
    set_mode(&shared, 0o777);
    let out = compile(&shared);
    assert_eq!(code(&out), 4, "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("other users can write to it (mode 0777"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(std::fs::read_dir(&shared).unwrap().count(), 0);
    // One they can only list is used, with a warning; the files are private still.
    let listed = env.path("listed");
    std::fs::create_dir(&listed).unwrap();
    set_mode(&listed, 0o755);
    let out = compile(&listed);
    assert_eq!(code(&out), 0, "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("can be listed by other users"));
    assert_eq!(mode(&listed), 0o755, "the user's directory was chmodded");
    assert_eq!(mode(&listed.join("web1")), 0o700);

    // `plan -o`: 0600, written through a file of its own, never through a symlink
    // someone planted at the destination.
    let playbook = env.path("site.yml");
    std::fs::write(
        &playbook,
        "- hosts: all\n  vars:\n    secret: from-a-vault\n  tasks:\n    - debug:\n        msg: \"{{ secret }}\"\n",
    )
    .unwrap();
    let victim = env.path("victim");
    std::fs::write(&victim, "untouched").unwrap();
    set_mode(&victim, 0o644);
    let planned = env.path("planned.json");
    std::os::unix::fs::symlink(&victim, &planned).unwrap();
    let out = env.deploy(&[
        "plan",
        playbook.to_str().unwrap(),
        "-o",
        planned.to_str().unwrap(),
    ]);
    assert_eq!(code(&out), 0, "{}", text(&out.stderr));
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "untouched");
    assert_eq!(mode(&victim), 0o644);
    assert_eq!(mode(&planned), 0o600);
    assert!(
        std::fs::read_to_string(&planned)
            .unwrap()
            .contains("from-a-vault")
    );
}

#[test]
fn deploy_only_refuses_a_swapped_runner_or_a_changed_manifest_before_any_host() {
    let env = Env::new();
    let work = env.path("work");
    std::fs::create_dir_all(&work).unwrap();
    let (_, out_dir) = compile_only(&env, &work);
    let inv = three_host_inventory(&env);
    let deploy_only = || {
        env.deploy(&[
            "--deploy-only",
            "-i",
            inv.to_str().unwrap(),
            "-o",
            out_dir.to_str().unwrap(),
        ])
    };
    let untouched = |what: &str| {
        assert_eq!(
            std::fs::read_dir(&work).unwrap().count(),
            0,
            "{what}: a host ran something"
        );
        assert!(
            !env.path("root").exists(),
            "{what}: a host installed something"
        );
    };
    let web1 = out_dir.join("web1");
    let original = std::fs::read(&web1).unwrap();

    // Another runner under web1's genuine payload: the bare runner with one byte of its
    // text changed (the kind of edit that plants code), packed the way rustle-deploy
    // packs, so the payload is found and verifies as before.
    let payload = rustle_runner::locate::find_payload(&original)
        .unwrap()
        .to_vec();
    let mut runner = std::fs::read(RUNNER).unwrap();
    let at = runner
        .windows(13)
        .position(|w| w == b"rustle-runner")
        .unwrap();
    runner[at] = b'R';
    let swapped = rustle_deploy::elf::embed(&runner, &payload).unwrap();
    assert_eq!(
        rustle_runner::locate::find_payload(&swapped).unwrap(),
        &payload[..]
    );
    std::fs::write(&web1, &swapped).unwrap();
    let out = deploy_only();
    assert_eq!(code(&out), 4, "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("the signed manifest records for host web1"),
        "{}",
        text(&out.stderr)
    );
    untouched("swapped runner");
    std::fs::write(&web1, &original).unwrap();

    // A manifest rewritten to send web2's file (and its digests) to web1, and web1's to
    // web2: consistent in itself, but no longer what the deploy key signed.
    let manifest_path = out_dir.join("deployment.json");
    let genuine = std::fs::read(&manifest_path).unwrap();
    let mut m: Value = serde_json::from_slice(&genuine).unwrap();
    let hosts = m["hosts"].as_object_mut().unwrap();
    let (a, b) = (hosts["web1"].clone(), hosts["web2"].clone());
    hosts.insert("web1".into(), b);
    hosts.insert("web2".into(), a);
    std::fs::write(&manifest_path, serde_json::to_vec_pretty(&m).unwrap()).unwrap();
    let out = deploy_only();
    assert_eq!(code(&out), 4, "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("signature does not match"),
        "{}",
        text(&out.stderr)
    );
    untouched("rewritten manifest");

    // An unsigned manifest is refused too.
    std::fs::write(&manifest_path, &genuine).unwrap();
    let sig = out_dir.join("deployment.json.sig");
    let sig_text = std::fs::read(&sig).unwrap();
    std::fs::remove_file(&sig).unwrap();
    let out = deploy_only();
    assert_eq!(code(&out), 4, "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("unsigned"),
        "{}",
        text(&out.stderr)
    );
    untouched("unsigned manifest");

    // The genuine files deploy, each host checking the whole file it received.
    std::fs::write(&sig, &sig_text).unwrap();
    let out = deploy_only();
    assert_eq!(code(&out), 0, "{}{}", text(&out.stdout), text(&out.stderr));
    for host in ["web1", "web2", "db1"] {
        assert_eq!(
            std::fs::read_to_string(work.join(host).join("greeting")).unwrap(),
            format!(
                "hi {host} {}\n",
                if host == "db1" { "none" } else { "blue" }
            )
        );
    }
}

#[test]
fn what_hosts_send_reaches_the_terminal_escaped() {
    let env = Env::new();
    let plan = env.write_json(
        "plan.json",
        &json!({"format": "rustle-deploy-plan", "version": 1, "plays": [{
            "name": "p\u{1b}]0;retitled\u{7}", "hosts": ["all"], "tasks": [
                {"name": "say \u{1b}[2J", "module": "debug", "args": {"msg": "cleared\r\nok: [elsewhere] => forged"}},
                {"name": "fail", "module": "command", "args": {"_raw_params": "sh -c \"printf '\\\\033[31mred' >&2; exit 3\""}, "ignore_errors": true}
            ]
        }]}),
    );
    let out = env.deploy(&[plan.to_str().unwrap()]);
    assert_eq!(code(&out), 0, "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        !stdout.contains('\u{1b}') && !stdout.contains('\r') && !stdout.contains('\u{7}'),
        "{stdout:?}"
    );
    assert!(stdout.contains("PLAY [p\\x1b]0;retitled\\x07]"), "{stdout}");
    assert!(
        stdout.contains(
            "ok: [localhost] => say \\x1b[2J => {\"msg\": \"cleared\\r\\nok: [elsewhere] => forged\"}"
        ),
        "{stdout}"
    );
    assert!(
        !stdout.lines().any(|l| l.starts_with("ok: [elsewhere]")),
        "{stdout}"
    );
    assert!(stdout.contains("failed: [localhost] => fail"), "{stdout}");
}

#[test]
fn plan_output_to_a_pipe_or_a_fifo_is_written_through_it_never_replaced() {
    use std::os::unix::fs::{FileTypeExt as _, OpenOptionsExt as _};
    let env = Env::new();
    let playbook = env.path("site.yml");
    std::fs::write(
        &playbook,
        "- hosts: all\n  vars:\n    secret: from-a-vault\n  tasks:\n    - debug:\n        msg: \"{{ secret }}\"\n",
    )
    .unwrap();
    let plan = |to: &Path| {
        env.deploy(&[
            "plan",
            playbook.to_str().unwrap(),
            "-o",
            to.to_str().unwrap(),
        ])
    };

    // Standard output, a pipe here, through a link as /dev/stdout is one (this
    // process's own /proc link: renaming a file over /dev/stdout, as the deployer once
    // did as root, is not something a test may try).
    let out = plan(Path::new("/proc/self/fd/1"));
    assert_eq!(code(&out), 0, "{}", text(&out.stderr));
    let planned: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(planned.to_string().contains("from-a-vault"));

    // A FIFO of the user's: the reader gets the plan, and the FIFO stays one. (Its read
    // end is opened first without waiting, so the writer finds a reader; the plan fits
    // in the pipe's buffer, so the deployer finishes before it is read.)
    let fifo = env.path("plan.fifo");
    let made = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(made.success());
    let mut reader = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::fcntl::OFlag::O_NONBLOCK.bits())
        .open(&fifo)
        .unwrap();
    let out = plan(&fifo);
    assert_eq!(code(&out), 0, "{}", text(&out.stderr));
    assert!(
        std::fs::symlink_metadata(&fifo)
            .unwrap()
            .file_type()
            .is_fifo(),
        "the FIFO was replaced by a file"
    );
    let mut got = Vec::new();
    std::io::Read::read_to_end(&mut reader, &mut got).unwrap();
    assert!(text(&got).contains("from-a-vault"), "{}", text(&got));

    // Another user's FIFO would hand them the secrets: refused.
    std::os::unix::fs::chown(&fifo, Some(65534), Some(65534)).unwrap();
    let out = plan(&fifo);
    assert_eq!(code(&out), 4, "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("another user's"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn the_report_is_private_to_its_owner_and_replaces_no_planted_link() {
    let env = Env::new();
    let work = env.path("work");
    std::fs::create_dir_all(&work).unwrap();
    let plan = env.write_json("plan.json", &plan_in(&work));
    // Someone's link where the report goes: replaced, not written through.
    let victim = env.path("victim");
    std::fs::write(&victim, "untouched").unwrap();
    let report = env.path("report.json");
    std::os::unix::fs::symlink(&victim, &report).unwrap();
    let out = env.deploy(&[plan.to_str().unwrap(), "--report", report.to_str().unwrap()]);
    assert_eq!(code(&out), 0, "{}{}", text(&out.stdout), text(&out.stderr));
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "untouched");
    // Task results can carry what secrets made: 0600, whatever the umask.
    assert_eq!(mode(&report), 0o600);
    assert!(!statuses(&report, "localhost").is_empty());
}

#[test]
fn ansible_playbook_arguments_run_several_playbooks_as_one() {
    // What runme.sh targets pass: several playbooks, --tags/--skip-tags, -C, -vv, -f.
    let env = Env::new();
    let out = env.path("out");
    std::fs::create_dir_all(&out).unwrap();
    let a = env.path("a.yml");
    std::fs::write(
        &a,
        format!(
            "- hosts: localhost\n  gather_facts: false\n  tasks:\n    - name: first\n      set_fact: {{from_a: 1}}\n      tags: [t]\n    - name: skipped by tag\n      debug: {{msg: no}}\n      tags: [s]\n    - name: not selected\n      debug: {{msg: no}}\n    - name: write\n      copy: {{content: x, dest: '{}/f'}}\n      tags: [t]\n",
            out.display()
        ),
    )
    .unwrap();
    let b = env.path("b.yml");
    std::fs::write(
        &b,
        "- hosts: localhost\n  gather_facts: false\n  tags: [t]\n  tasks:\n    - name: second\n      debug: {msg: \"{{ from_a }} {{ ansible_verbosity }} {{ ansible_check_mode }}\"}\n",
    )
    .unwrap();
    let report = env.path("report.json");
    let o = env.deploy(&[
        a.to_str().unwrap(),
        b.to_str().unwrap(),
        "--tags",
        "t,s",
        "--skip-tags",
        "s",
        "-C",
        "-vv",
        "-f",
        "3",
        "--flush-cache",
        "--report",
        report.to_str().unwrap(),
    ]);
    assert_eq!(code(&o), 0, "{}{}", text(&o.stdout), text(&o.stderr));
    assert_eq!(
        statuses(&report, "localhost"),
        pairs(&[("first", "ok"), ("write", "changed"), ("second", "ok")])
    );
    let r: Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert_eq!(
        r["hosts"]["localhost"]["tasks"][2]["result"]["msg"],
        "1 2 True"
    );
    assert!(!out.join("f").exists(), "-C changed nothing");

    // An argument ansible-playbook has and rustle-deploy does not is refused by name.
    let o = env.deploy(&[a.to_str().unwrap(), "--start-at-task", "write"]);
    assert_ne!(code(&o), 0);
    assert!(
        text(&o.stderr).contains("--start-at-task"),
        "{}",
        text(&o.stderr)
    );
}

/// Several local hosts each get a state root of their own under the local one
/// (`hosts/<name>`): sharing one, their runners would wait for each other's lock, and
/// hosts that wait for each other (any_errors_fatal) would never finish.
#[test]
fn local_hosts_get_roots_of_their_own_and_any_errors_fatal_stops_them_together() {
    let env = Env::new();
    let work = env.path("work");
    std::fs::create_dir_all(&work).unwrap();
    let w = work.to_str().unwrap();
    let inv = env.path("hosts.ini");
    std::fs::write(
        &inv,
        "testhost ansible_connection=local\ntesthost2 ansible_connection=local\n",
    )
    .unwrap();
    let plan = env.write_json(
        "plan.json",
        &json!({"format": "rustle-deploy-plan", "version": 1, "plays": [{"name": "p", "hosts": ["all"], "any_errors_fatal": true, "tasks": [
            {"name": "first", "module": "shell", "args": {"_raw_params": format!("[ {{{{ inventory_hostname }}}} != testhost2 ] && touch {w}/{{{{ inventory_hostname }}}}-first")}},
            {"name": "second", "module": "shell", "args": {"_raw_params": format!("touch {w}/{{{{ inventory_hostname }}}}-second")}}
        ]}]}),
    );
    let out = env.deploy(&["-i", inv.to_str().unwrap(), plan.to_str().unwrap()]);
    assert_ne!(code(&out), 0, "{}{}", text(&out.stdout), text(&out.stderr));
    assert!(
        work.join("testhost-first").exists(),
        "{}",
        text(&out.stderr)
    );
    assert!(!work.join("testhost-second").exists());
    assert!(!work.join("testhost2-second").exists());
    for h in ["testhost", "testhost2"] {
        assert!(
            env.path(&format!("root/hosts/{h}/releases")).is_dir(),
            "{h} has no root of its own"
        );
    }
    assert!(!env.path("root/releases").exists());
}

/// omit target: a play on `localhost` with an inventory that lacks it runs on Ansible's
/// implicit localhost (local connection, outside `all`) instead of matching no host.
#[test]
fn a_play_on_localhost_runs_on_the_implicit_localhost() {
    let env = Env::new();
    let inv = env.path("hosts.ini");
    std::fs::write(&inv, "[g]\nh1 ansible_connection=local\n").unwrap();
    let book = env.path("site.yml");
    let marker = env.path("ran-on-localhost");
    std::fs::write(
        &book,
        format!(
            "- hosts: localhost\n  gather_facts: false\n  tasks:\n    - copy: dest={} content=\"{{{{ inventory_hostname }}}} {{{{ groups.all }}}}\"\n",
            marker.display()
        ),
    )
    .unwrap();
    let out = env.deploy(&["-i", inv.to_str().unwrap(), book.to_str().unwrap()]);
    assert_eq!(code(&out), 0, "{}{}", text(&out.stdout), text(&out.stderr));
    assert_eq!(
        std::fs::read_to_string(&marker).unwrap(),
        "localhost ['h1']"
    );
}

/// `rustle-deploy adhoc` is Ansible's ad-hoc command (lookup_env's runme.sh): one module
/// on the hosts of a pattern, its result printed as `ansible` prints it, no recap; the
/// arguments as `key=value`, a command line or a JSON mapping; a failure is a non-zero
/// exit.
#[test]
fn adhoc_mode_runs_one_module_as_ansibles_ad_hoc_command() {
    let env = Env::new();
    let adhoc = |args: &[&str], usr: Option<&str>| {
        let mut cmd = env.command();
        cmd.arg("adhoc").args(args).env_remove("RUSTLE_ADHOC_USR");
        if let Some(v) = usr {
            cmd.env("RUSTLE_ADHOC_USR", v);
        }
        cmd.output().unwrap()
    };
    let msg = "msg={{ lookup('env', 'RUSTLE_ADHOC_USR', default='nobody') }}";
    let o = adhoc(&["-m", "debug", "-a", msg, "localhost"], None);
    assert_eq!(code(&o), 0, "{}{}", text(&o.stdout), text(&o.stderr));
    assert_eq!(
        text(&o.stdout),
        "localhost | SUCCESS => {\n    \"msg\": \"nobody\"\n}\n",
        "{}",
        text(&o.stderr)
    );
    // Set but empty: the empty text, not the default.
    let o = adhoc(&["localhost", "-m", "debug", "-a", msg], Some(""));
    assert_eq!(code(&o), 0, "{}", text(&o.stderr));
    assert!(
        text(&o.stdout).contains("\"msg\": \"\""),
        "{}",
        text(&o.stdout)
    );
    // An undefined default fails the task, and the command.
    let o = adhoc(
        &[
            "localhost",
            "-m",
            "debug",
            "-a",
            "msg={{ lookup('env', 'RUSTLE_ADHOC_USR', default=Undefined) }}",
        ],
        None,
    );
    assert_eq!(code(&o), 2, "{}{}", text(&o.stdout), text(&o.stderr));
    assert!(
        text(&o.stdout).starts_with("localhost | FAILED! => {"),
        "{}",
        text(&o.stdout)
    );
    // The default module is command; its output is printed as text.
    let o = adhoc(&["localhost", "-a", "echo a=b"], None);
    assert_eq!(code(&o), 0, "{}", text(&o.stderr));
    assert_eq!(text(&o.stdout), "localhost | CHANGED | rc=0 >>\na=b\n\n");
    // Arguments as a JSON mapping, through a file module.
    let dest = env.path("made.txt");
    let json_args = format!(
        "{{\"content\": \"made by adhoc\\n\", \"dest\": \"{}\"}}",
        dest.display()
    );
    let o = adhoc(&["localhost", "-m", "copy", "-a", &json_args], None);
    assert_eq!(code(&o), 0, "{}{}", text(&o.stdout), text(&o.stderr));
    assert!(
        text(&o.stdout).starts_with("localhost | CHANGED => {"),
        "{}",
        text(&o.stdout)
    );
    assert_eq!(std::fs::read_to_string(&dest).unwrap(), "made by adhoc\n");
    // A pattern is one argument: a second one is refused by name.
    let o = adhoc(&["localhost", "site.yml", "-m", "ping"], None);
    assert_eq!(code(&o), 4, "{}", text(&o.stderr));
    assert!(
        text(&o.stderr).contains("'site.yml'"),
        "{}",
        text(&o.stderr)
    );
}

/// `--force-handlers` and `ANSIBLE_FORCE_HANDLERS` make a failed host run the handlers
/// notified before it failed, in the plays that do not say otherwise; a play's own
/// `force_handlers: false` wins over both (handlers target, test_force_handlers.yml).
#[test]
fn force_handlers_from_the_command_line_or_environment_unless_the_play_says() {
    let env = Env::new();
    let marker = env.path("handled");
    let play = |keyword: &str| {
        let path = env.path("force.yml");
        std::fs::write(
            &path,
            format!(
                "- hosts: localhost\n  gather_facts: false\n{keyword}  tasks:\n    - command: /bin/true\n      notify: h\n    - fail: {{msg: stop}}\n  handlers:\n    - name: h\n      file: {{path: '{}', state: touch}}\n",
                marker.display()
            ),
        )
        .unwrap();
        path
    };
    let run = |keyword: &str, args: &[&str], force_env: Option<&str>| {
        let _ = std::fs::remove_file(&marker);
        let path = play(keyword);
        let mut cmd = env.command();
        cmd.arg(&path)
            .args(args)
            .env_remove("ANSIBLE_FORCE_HANDLERS");
        if let Some(v) = force_env {
            cmd.env("ANSIBLE_FORCE_HANDLERS", v);
        }
        let o = cmd.output().unwrap();
        assert_eq!(code(&o), 2, "{}{}", text(&o.stdout), text(&o.stderr));
        marker.exists()
    };
    assert!(
        !run("", &[], None),
        "not forced: the failed host runs no handler"
    );
    assert!(run("", &["--force-handlers"], None));
    assert!(run("", &[], Some("yes")));
    assert!(!run("", &[], Some("false")));
    assert!(!run(
        "  force_handlers: false\n",
        &["--force-handlers"],
        Some("true")
    ));
    assert!(run("  force_handlers: true\n", &[], None));
}

/// What a deploy prints follows Ansible's default callback where runme.sh scripts read
/// it: a banner before a task's results (`TASK [role : name]`, `RUNNING HANDLER [...]`),
/// a debug task's message as `"msg": "..."`, and with -v every task's result.
#[test]
fn task_output_has_ansibles_banners_debug_messages_and_verbose_results() {
    let env = Env::new();
    std::fs::create_dir_all(env.path("roles/r/tasks")).unwrap();
    std::fs::create_dir_all(env.path("roles/r/handlers")).unwrap();
    std::fs::write(
        env.path("roles/r/tasks/main.yml"),
        "- name: say\n  debug: {msg: A}\n- name: run\n  command: echo CALLED_TASK\n  notify: h\n",
    )
    .unwrap();
    std::fs::write(
        env.path("roles/r/handlers/main.yml"),
        "- name: h\n  command: echo CALLED_HANDLER\n",
    )
    .unwrap();
    let site = env.path("site.yml");
    std::fs::write(
        &site,
        "- hosts: localhost\n  gather_facts: false\n  roles: [r]\n  tasks:\n    - debug: {var: ansible_verbosity}\n",
    )
    .unwrap();
    let o = env.deploy(&[site.to_str().unwrap()]);
    assert_eq!(code(&o), 0, "{}{}", text(&o.stdout), text(&o.stderr));
    let out = text(&o.stdout);
    let star_line = |prefix: &str| {
        out.lines()
            .any(|l| l.starts_with(prefix) && l.len() == 80 && l.ends_with("***"))
    };
    assert!(star_line("TASK [r : say] *"), "{out}");
    assert!(star_line("RUNNING HANDLER [r : h] *"), "{out}");
    assert_eq!(out.matches("\"msg\": \"A\"").count(), 1, "{out}");
    assert!(out.contains("=> {\"ansible_verbosity\": 0}"), "{out}");
    // Without -v a command's output is not shown; with it, the whole result is.
    assert!(!out.contains("CALLED_"), "{out}");
    let o = env.deploy(&[site.to_str().unwrap(), "-v"]);
    let out = text(&o.stdout);
    assert!(out.contains("\"stdout\": \"CALLED_TASK\""), "{out}");
    assert!(out.contains("\"stdout\": \"CALLED_HANDLER\""), "{out}");
    assert!(!out.contains("_ansible_"), "{out}");
}

/// A changed task notifying a handler nobody defines ends the run as ansible-playbook
/// does: `ERROR! The requested handler ...` on stderr and no recap (handlers target,
/// test_handlers_inexistent_notify.yml); `ANSIBLE_ERROR_ON_MISSING_HANDLER=false` makes
/// it a warning and the play goes on.
#[test]
fn a_notification_of_no_handler_is_ansibles_error_or_with_the_setting_a_warning() {
    let env = Env::new();
    let marker = env.path("after");
    let site = env.path("site.yml");
    std::fs::write(
        &site,
        format!(
            "- hosts: localhost\n  gather_facts: false\n  tasks:\n    - command: /bin/true\n      notify: nobody_listens\n    - file: {{path: '{}', state: touch}}\n",
            marker.display()
        ),
    )
    .unwrap();
    let run = |setting: Option<&str>| {
        let mut cmd = env.command();
        cmd.arg(&site)
            .env_remove("ANSIBLE_ERROR_ON_MISSING_HANDLER");
        if let Some(v) = setting {
            cmd.env("ANSIBLE_ERROR_ON_MISSING_HANDLER", v);
        }
        cmd.output().unwrap()
    };
    let wanted = "The requested handler 'nobody_listens' was not found in either the main handlers list nor in the listening handlers list";
    let o = run(None);
    assert_eq!(code(&o), 2, "{}{}", text(&o.stdout), text(&o.stderr));
    assert_has(&o.stderr, &format!("ERROR! {wanted}"));
    assert!(
        !text(&o.stdout).contains("PLAY RECAP"),
        "{}",
        text(&o.stdout)
    );
    assert!(!marker.exists(), "nothing runs after the error");

    let o = run(Some("false"));
    assert_eq!(code(&o), 0, "{}{}", text(&o.stdout), text(&o.stderr));
    assert_has(&o.stderr, &format!("[WARNING]: {wanted}"));
    assert_has(&o.stdout, "PLAY RECAP");
    assert!(marker.exists());
}

/// The handlers of a role imported by a role included at run time join the play's
/// when the include runs, as Ansible adds them when it reads the import (handlers
/// target, 58841.yml).
#[test]
fn handlers_of_a_role_an_included_role_imports_answer_notifications() {
    let env = Env::new();
    let marker = env.path("handled");
    for (path, text) in [
        (
            "roles/outer/tasks/main.yml",
            "- import_role: {name: inner}\n".to_string(),
        ),
        (
            "roles/inner/tasks/main.yml",
            "- command: /bin/true\n  notify: inner handler\n".to_string(),
        ),
        (
            "roles/inner/handlers/main.yml",
            format!(
                "- name: inner handler\n  file: {{path: '{}', state: touch}}\n",
                marker.display()
            ),
        ),
    ] {
        let p = env.path(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
    let o = deploy_site(
        &env,
        "- hosts: localhost\n  gather_facts: false\n  tasks:\n    - include_role: {name: outer}\n",
        0,
    );
    assert_has(&o.stdout, "RUNNING HANDLER [inner : inner handler]");
    assert!(marker.exists());
}

/// A playbook ansible-playbook itself refuses is refused in its words and form:
/// `ERROR! ...` on stderr, then where, exit 4 (handlers target, test_role_as_handler.yml).
#[test]
fn a_playbook_error_ansible_gives_is_printed_as_ansible_prints_it() {
    let env = Env::new();
    let o = deploy_site(
        &env,
        "- hosts: localhost\n  gather_facts: false\n  handlers:\n    - name: h\n      import_role: {name: r}\n",
        4,
    );
    let err = text(&o.stderr);
    assert!(
        err.starts_with("ERROR! Using 'import_role' as a handler is not supported."),
        "{err}"
    );
    assert!(err.contains("site.yml:5"), "{err}");
}

/// A local host is the controller: a `copy` or `template` `src` that an earlier task of
/// the same run wrote there (by absolute path, or found in the playbook's `files/` and
/// `templates/`) is read when the task runs, as ansible-playbook reads it then, modes
/// included (copy target, 'Copy with mode=preserve'; template target, 'Use template with
/// mode=preserve'). A src that exists nowhere still fails naming where it was looked for.
#[test]
fn a_local_hosts_copy_and_template_read_files_an_earlier_task_wrote() {
    use std::os::unix::fs::PermissionsExt;
    let env = Env::new();
    let made = env.path("made");
    let out = env.path("out");
    std::fs::create_dir_all(&out).unwrap();
    // The template's text is written raw, so only the template task renders it.
    let playbook = r#"- hosts: localhost
  gather_facts: false
  vars:
    made: 'MADE'
    out: 'OUT'
    greeting: hello
  tasks:
    - file: {path: '{{ made }}/tree/sub', state: directory}
    - copy: {content: "foo.txt\n", dest: '{{ made }}/foo.txt', mode: '0547'}
    - copy: {content: "{% raw %}{{ greeting }}{% endraw %} world\n", dest: '{{ made }}/t.j2', mode: '0604'}
    - copy: {content: "one\n", dest: '{{ made }}/tree/a'}
    - copy: {content: "two\n", dest: '{{ made }}/tree/sub/b'}
    - file: {path: '{{ playbook_dir }}/files', state: directory}
    - copy: {content: "relative\n", dest: '{{ playbook_dir }}/files/rel.txt'}
    - name: copy preserve
      copy: {src: '{{ made }}/foo.txt', dest: '{{ out }}/copy-foo.txt', mode: preserve}
      register: copied
    - assert: {that: ["copied is changed", "copied.mode == '0547'"]}
    - copy: {src: '{{ made }}/tree', dest: '{{ out }}/'}
    - copy: {src: rel.txt, dest: '{{ out }}/rel.txt'}
    - template: {src: '{{ made }}/t.j2', dest: '{{ out }}/t.txt', mode: preserve}
"#
    .replace("MADE", made.to_str().unwrap())
    .replace("OUT", out.to_str().unwrap());
    deploy_site(&env, &playbook, 0);
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o7777;
    assert_eq!(
        std::fs::read_to_string(out.join("copy-foo.txt")).unwrap(),
        "foo.txt\n"
    );
    assert_eq!(mode(&out.join("copy-foo.txt")), 0o547);
    assert_eq!(
        std::fs::read_to_string(out.join("tree/a")).unwrap(),
        "one\n"
    );
    assert_eq!(
        std::fs::read_to_string(out.join("tree/sub/b")).unwrap(),
        "two\n"
    );
    assert_eq!(
        std::fs::read_to_string(out.join("rel.txt")).unwrap(),
        "relative\n"
    );
    assert_eq!(
        std::fs::read_to_string(out.join("t.txt")).unwrap(),
        "hello world\n"
    );
    assert_eq!(mode(&out.join("t.txt")), 0o604);

    let o = deploy_site(
        &env,
        &format!(
            "- hosts: localhost\n  gather_facts: false\n  tasks:\n    - copy: {{src: '{}/nowhere', dest: /tmp/x}}\n",
            made.display()
        ),
        2,
    );
    assert_has(
        &o.stdout,
        &format!(
            "Could not find or access '{}/nowhere'\\nSearched in:\\n\\t{}/nowhere on the Ansible Controller.",
            made.display(),
            made.display()
        ),
    );
}

/// `-i` given more than once merges the sources as ansible-playbook does (roles target:
/// `-i ../../inventory -i fake,`): a file, an inline host list and a directory of
/// inventories; a host in several is one host, the later source's variables winning, and
/// each file source's group_vars apply.
#[test]
fn several_inventories_are_merged_as_ansible_playbook_merges_them() {
    let env = Env::new();
    for (path, text) in [
        (
            "inv/hosts",
            "[web]\nlocalhost ansible_connection=local colour=red\n",
        ),
        ("inv/group_vars/web.yml", "size: big\n"),
        (
            "more/a.yml",
            "all:\n  children:\n    db:\n      hosts:\n        localhost:\n          colour: blue\n",
        ),
        ("more/notes.md", "not an inventory [\n"),
    ] {
        let p = env.path(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
    let site = env.path("site.yml");
    std::fs::write(
        &site,
        "- hosts: all\n  gather_facts: false\n  tasks:\n    - debug: {msg: \"{{ inventory_hostname }} {{ colour }} {{ size }} {{ group_names | join(',') }}\"}\n",
    )
    .unwrap();
    let o = env.deploy(&[
        site.to_str().unwrap(),
        "-i",
        env.path("inv/hosts").to_str().unwrap(),
        "-i",
        env.path("more").to_str().unwrap(),
    ]);
    assert_eq!(code(&o), 0, "{}{}", text(&o.stdout), text(&o.stderr));
    assert_has(&o.stdout, "\"msg\": \"localhost blue big db,web\"");

    // An inline list adds an ungrouped host: --limit leaves it out of the run, and the
    // plan would go to both.
    let inline = ["-i", "rustle-no-such-host.invalid,"];
    let hosts_file = env.path("inv/hosts");
    let hosts = ["-i", hosts_file.to_str().unwrap()];
    let site = site.to_str().unwrap();
    let o = env.deploy(&[&[site][..], &hosts, &inline, &["--limit", "web"]].concat());
    assert_eq!(code(&o), 0, "{}{}", text(&o.stdout), text(&o.stderr));
    assert_has(&o.stdout, "\"msg\": \"localhost red big web\"");
    assert!(
        !text(&o.stdout).contains("rustle-no-such-host"),
        "{}",
        text(&o.stdout)
    );
    let dry = ["--dry-run", "--target", "x86_64-unknown-linux-musl"];
    let o = env.deploy(&[&[site][..], &hosts, &inline, &dry].concat());
    assert_eq!(code(&o), 0, "{}{}", text(&o.stdout), text(&o.stderr));
    assert_has(&o.stdout, "(2 hosts)");
    assert_has(&o.stdout, "rustle-no-such-host.invalid");
}

/// Meta tasks show their banner, and from -vv what Ansible's strategy says of them
/// (`META: noop`), but no result and no recap count (handlers target,
/// test_handlers_meta.yml run with -vv).
#[test]
fn meta_tasks_show_their_banner_and_at_vv_their_meta_line() {
    let env = Env::new();
    let site = env.path("site.yml");
    std::fs::write(
        &site,
        "- hosts: localhost\n  gather_facts: false\n  tasks:\n    - command: echo\n      notify: [noop_handler]\n    - meta: flush_handlers\n    - meta: end_play\n      when: false\n  handlers:\n    - name: noop_handler\n      meta: noop\n",
    )
    .unwrap();
    let o = env.deploy(&[site.to_str().unwrap(), "-vv"]);
    assert_eq!(code(&o), 0, "{}{}", text(&o.stdout), text(&o.stderr));
    let out = text(&o.stdout);
    assert_eq!(
        out.matches("RUNNING HANDLER [noop_handler]").count(),
        1,
        "{out}"
    );
    assert_eq!(out.matches("META: noop").count(), 1, "{out}");
    assert_eq!(
        out.matches("META: triggered running handlers for localhost")
            .count(),
        1,
        "{out}"
    );
    assert_has(
        &o.stdout,
        "META: end_play conditional evaluated to False, continuing play",
    );
    // The handler's banner comes after the flush's line, its META line after it.
    let flush = out.find("META: triggered").unwrap();
    let banner = out.find("RUNNING HANDLER [noop_handler]").unwrap();
    assert!(
        flush < banner && banner < out.find("META: noop").unwrap(),
        "{out}"
    );
    assert_has(&o.stdout, "ok=1 changed=1 unreachable=0 failed=0 skipped=0");
    let o = env.deploy(&[site.to_str().unwrap(), "-v"]);
    let out = text(&o.stdout);
    assert_eq!(
        out.matches("RUNNING HANDLER [noop_handler]").count(),
        1,
        "{out}"
    );
    assert!(!out.contains("META:"), "{out}");
}

/// A role's `tasks_from` that names a file outside the role's `tasks/` (an absolute
/// path, or `..` climbing out) is refused in Ansible's words, by `import_role` when the
/// plan is made and by `include_role` when it runs (roles target, no_outside*.yml).
#[test]
fn a_roles_tasks_from_outside_the_role_is_refused_in_ansibles_words() {
    let env = Env::new();
    for (path, text) in [
        ("roles/a/tasks/main.yml", "- debug: {msg: main}\n"),
        ("tasks/dummy.yml", "- debug: {msg: outside}\n"),
    ] {
        let p = env.path(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
    let wanted = "as it is not inside the expected role path";
    let o = deploy_site(
        &env,
        "- hosts: localhost\n  gather_facts: false\n  tasks:\n    - include_role:\n        name: a\n        tasks_from: \"{{ playbook_dir }}/tasks/dummy.yml\"\n",
        2,
    );
    assert_has(&o.stdout, wanted);
    assert!(
        !text(&o.stdout).contains("outside\""),
        "{}",
        text(&o.stdout)
    );
    let o = deploy_site(
        &env,
        "- hosts: localhost\n  gather_facts: false\n  tasks:\n    - import_role:\n        name: a\n        tasks_from: ../../../tasks/dummy.yml\n",
        4,
    );
    assert_has(&o.stderr, &format!("for role (a) {wanted}"));
}

/// An inline `!vault` value and no `--vault-password-file`: the deploy goes on (Ansible
/// loads such a file and decrypts a value only when it is used), the value travels
/// encrypted, `unvault` opens it on the host, and a task that uses it as text fails with
/// Ansible's words, naming no secret.
#[test]
fn a_vault_value_without_the_password_travels_encrypted_and_fails_only_where_used() {
    let env = Env::new();
    // `'secret' | vault('test', salt=7)` as ansible-core writes it (its filter_encryption
    // integration target's vars).
    let play = |task: &str| {
        format!(
            "- hosts: localhost\n  gather_facts: false\n  vars:\n    sealed: !vault |\n      \
             $ANSIBLE_VAULT;1.2;AES256;filter_default\n      \
             33370a34333734353636633035656232613935353432656132646533346233326431346232616261\n      \
             6133383034376566366261316365633931356133633337396363370a376664386236313834326561\n      \
             6338373864623763613165366636633031303739\n  tasks:\n    - {task}\n"
        )
    };
    let o = deploy_site(
        &env,
        &play("debug: {msg: \"opened={{ sealed | unvault('test') }}\"}"),
        0,
    );
    assert_has(&o.stdout, "opened=secret");
    // The plan holds the vault text, not what it encrypts.
    let site = env.path("site.yml");
    let out = env.deploy(&["plan", site.to_str().unwrap()]);
    assert_eq!(code(&out), 0, "{}", text(&out.stderr));
    assert_has(&out.stdout, "__ansible_vault");
    assert!(
        !text(&out.stdout).contains("\"secret\""),
        "{}",
        text(&out.stdout)
    );

    let o = deploy_site(&env, &play("debug: {msg: \"used={{ sealed }}\"}"), 2);
    assert_has(
        &o.stdout,
        "Attempting to decrypt but no vault secrets found",
    );
}

/// Deploys `site` to `inv` with a report: the exit code, stdout and stderr, and the
/// report's path.
fn deploy_reported(env: &Env, site: &Path, inv: &Path) -> (i32, String, PathBuf) {
    let report = env.path("report.json");
    let o = env.deploy(&[
        site.to_str().unwrap(),
        "-i",
        inv.to_str().unwrap(),
        "--report",
        report.to_str().unwrap(),
    ]);
    (
        code(&o),
        format!("{}{}", text(&o.stdout), text(&o.stderr)),
        report,
    )
}

/// An inventory of `before` and then `down`, a host that listens on no port.
fn down_inventory(env: &Env, before: &str) -> PathBuf {
    let inv = env.path("hosts.ini");
    std::fs::write(
        &inv,
        format!("{before}down ansible_host=127.0.0.1 ansible_port=1 ansible_user=nobody\n"),
    )
    .unwrap();
    inv
}

#[test]
fn a_task_delegated_to_an_unreachable_host_makes_this_host_unreachable_unless_ignored() {
    // test_core's 'Try unreachable host', as ansible-core 2.18 runs it: the host
    // delegated to listens on no port, so the task is unreachable; `ignore_unreachable`
    // counts it ok and ignored and the host goes on, registering a result the
    // `unreachable` test sees. Without it the host is unreachable: no rescue, no later
    // task, unreachable in the recap and the exit code.
    let env = Env::new();
    let inv = down_inventory(&env, "web1 ansible_connection=local\n[elsewhere]\n");
    let site = env.path("site.yml");
    std::fs::write(
        &site,
        "- hosts: web1\n  gather_facts: false\n  tasks:\n\
         \x20   - name: try down\n      command: id\n      delegate_to: down\n      ignore_unreachable: true\n      register: r\n\
         \x20   - name: seen\n      assert:\n        that:\n          - r is unreachable\n          - r is not reachable\n          - r is not failed\n\
         \x20   - block:\n        - name: down again\n          command: id\n          delegate_to: down\n\
         \x20     rescue:\n        - name: rescued\n          debug: {msg: no}\n\
         \x20   - name: after\n      debug: {msg: no}\n",
    )
    .unwrap();
    let (rc, out, report) = deploy_reported(&env, &site, &inv);
    assert_eq!(rc, 3, "{out}");
    assert_eq!(
        statuses(&report, "web1"),
        pairs(&[
            ("try down", "unreachable"),
            ("seen", "ok"),
            ("down again", "unreachable")
        ]),
        "{out}"
    );
    assert!(
        out.contains("web1                 : ok=2 changed=0 unreachable=1 failed=0 skipped=0 rescued=0 ignored=1"),
        "{out}"
    );
    assert!(
        out.contains("cannot connect to the host delegated to, 'down'"),
        "{out}"
    );
}

#[test]
fn several_playbooks_print_a_recap_after_each_counted_from_the_start() {
    // `ansible-playbook a.yml b.yml` prints a PLAY RECAP after each playbook, the
    // second counting the first's tasks too (omit's runme.sh).
    let env = Env::new();
    let a = env.path("a.yml");
    let b = env.path("b.yml");
    std::fs::write(
        &a,
        "- hosts: localhost\n  gather_facts: false\n  tasks:\n    - debug: {msg: one}\n",
    )
    .unwrap();
    std::fs::write(
        &b,
        "- hosts: localhost\n  gather_facts: false\n  tasks:\n    - debug: {msg: two}\n    - debug: {msg: three}\n      when: false\n",
    )
    .unwrap();
    let o = env.deploy(&[a.to_str().unwrap(), b.to_str().unwrap()]);
    assert_eq!(code(&o), 0, "{}{}", text(&o.stdout), text(&o.stderr));
    let out = text(&o.stdout);
    let recaps: Vec<&str> = out
        .lines()
        .skip_while(|l| *l != "PLAY RECAP")
        .filter(|l| l.starts_with("localhost"))
        .collect();
    assert_eq!(
        recaps,
        [
            "localhost            : ok=1 changed=0 unreachable=0 failed=0 skipped=0 rescued=0 ignored=0",
            "localhost            : ok=2 changed=0 unreachable=0 failed=0 skipped=1 rescued=0 ignored=0",
        ],
        "{out}"
    );
    assert_eq!(out.matches("PLAY RECAP").count(), 2, "{out}");
}

/// Writes files (path under the environment, text) for a role-based project.
fn write_files(env: &Env, files: &[(&str, &str)]) {
    for (path, text) in files {
        let p = env.path(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
}

#[test]
fn a_play_level_ignore_unreachable_reaches_every_task_unless_one_says_otherwise() {
    // Ansible's play keyword `ignore_unreachable` (roles target, role_complete.yml) is
    // inherited by every task of the play: each unreachable result is ok and ignored
    // and the host goes on; a task saying `ignore_unreachable: false` makes the host
    // unreachable as without it.
    let env = Env::new();
    let inv = down_inventory(&env, "web1 ansible_connection=local\n[elsewhere]\n");
    write_files(
        &env,
        &[
            (
                "roles/probe/tasks/main.yml",
                "- name: probe down\n  command: id\n  delegate_to: down\n",
            ),
            (
                "site.yml",
                "- hosts: web1\n  gather_facts: false\n  ignore_unreachable: yes\n  roles:\n    - probe\n  tasks:\n\
                 \x20   - name: try down\n      command: id\n      delegate_to: down\n\
                 \x20   - name: goes on\n      debug: {msg: on}\n\
                 \x20   - name: not ignored\n      command: id\n      delegate_to: down\n      ignore_unreachable: false\n\
                 \x20   - name: never\n      debug: {msg: no}\n",
            ),
        ],
    );
    let (rc, out, report) = deploy_reported(&env, &env.path("site.yml"), &inv);
    assert_eq!(rc, 3, "{out}");
    assert_eq!(
        statuses(&report, "web1"),
        pairs(&[
            ("probe down", "unreachable"),
            ("try down", "unreachable"),
            ("goes on", "ok"),
            ("not ignored", "unreachable"),
        ]),
        "{out}"
    );
    assert!(
        out.contains("web1                 : ok=3 changed=0 unreachable=1 failed=0 skipped=0 rescued=0 ignored=2"),
        "{out}"
    );
}

#[test]
fn a_role_runs_again_until_it_has_completed_on_the_host_then_never_in_that_play() {
    // roles target, role_complete.yml and no_dupes.yml: a use of a role that a `when`
    // skipped has not completed, so the same use later runs; once it has run, the same
    // use again (directly, or as another role's dependency, or through include_role)
    // runs nothing in that play; the next play starts afresh. An import_role runs it
    // again (allow_duplicates defaults to true there).
    let env = Env::new();
    write_files(
        &env,
        &[
            ("roles/a/tasks/main.yml", "- debug: {msg: A}\n"),
            ("roles/b/meta/main.yml", "dependencies: [a]\n"),
            ("roles/b/tasks/main.yml", "- debug: {msg: B}\n"),
            ("roles/set_var/tasks/main.yml", "- set_fact: {flag: true}\n"),
        ],
    );
    let count_a = |playbook: &str| {
        let o = deploy_site(&env, playbook, 0);
        text(&o.stdout).matches("\"msg\": \"A\"").count()
    };
    let when_flag = "    - {role: a, when: flag is defined}\n";
    assert_eq!(
        count_a(&format!(
            "- hosts: localhost\n  gather_facts: false\n  roles:\n{when_flag}    - set_var\n{when_flag}{when_flag}"
        )),
        1
    );
    assert_eq!(
        count_a(
            "- hosts: localhost\n  gather_facts: false\n  roles:\n    - a\n    - b\n  tasks:\n    - include_role: {name: b}\n"
        ),
        1
    );
    assert_eq!(
        count_a(
            "- hosts: localhost\n  gather_facts: false\n  tasks:\n    - include_role: {name: b}\n    - include_role: {name: b}\n"
        ),
        1
    );
    assert_eq!(
        count_a(
            "- hosts: localhost\n  gather_facts: false\n  roles: [a]\n  tasks:\n    - import_role: {name: a}\n- hosts: localhost\n  gather_facts: false\n  roles: [b]\n"
        ),
        3
    );
}

#[test]
fn end_role_ends_the_innermost_role_which_counts_as_completed() {
    // roles target, end_role.yml and end_role_nested.yml as ansible-core 2.18 runs them:
    // `meta: end_role` skips the rest of its role (through include_tasks and
    // import_tasks), the play goes on after the role, the role's notified handler still
    // runs, and a role ended so has completed (an include_role of the same use with
    // `allow_duplicates: false` runs nothing).
    let env = Env::new();
    write_files(
        &env,
        &[
            (
                "roles/e/tasks/main.yml",
                "- set_fact: {role_executed: \"{{ role_executed|default(0)|int + 1 }}\"}\n\
                 - debug:\n  changed_when: true\n  notify: role_handler\n\
                 - meta: end_role\n\
                 - set_fact: {after_end_role: true}\n",
            ),
            (
                "roles/e/handlers/main.yml",
                "- name: role_handler\n  set_fact: {role_handler_ran: true}\n",
            ),
            (
                "roles/e/tasks/nested.yml",
                "- include_role: {name: n}\n- assert: {that: [after_end_role is undefined]}\n\
                 - debug: {msg: CHECKPOINT}\n",
            ),
            ("roles/n/tasks/main.yml", "- include_tasks: inc.yml\n"),
            ("roles/n/tasks/inc.yml", "- import_tasks: imp.yml\n"),
            (
                "roles/n/tasks/imp.yml",
                "- meta: end_role\n  when: true\n- set_fact: {after_end_role: true}\n",
            ),
        ],
    );
    let o = deploy_site(
        &env,
        "- hosts: localhost\n  gather_facts: false\n  pre_tasks:\n    - set_fact: {play_checkpoint: 1}\n  roles:\n    - e\n  tasks:\n\
         \x20   - set_fact: {play_checkpoint: \"{{ play_checkpoint|int + 1 }}\"}\n\
         \x20   - import_role: {name: e, allow_duplicates: true}\n\
         \x20   - set_fact: {play_checkpoint: \"{{ play_checkpoint|int + 1 }}\"}\n\
         \x20   - include_role: {name: e, allow_duplicates: false}\n\
         \x20   - set_fact: {play_checkpoint: \"{{ play_checkpoint|int + 1 }}\"}\n\
         \x20 post_tasks:\n    - assert:\n        that:\n          - role_executed|int == 2\n          - after_end_role is undefined\n          - play_checkpoint|int == 4\n          - role_handler_ran is defined\n\
         \x20   - debug: {msg: CHECKPOINT}\n\
         - hosts: localhost\n  gather_facts: false\n  tasks:\n    - include_role: {name: e, tasks_from: nested.yml}\n",
        0,
    );
    assert_eq!(
        text(&o.stdout).matches("\"msg\": \"CHECKPOINT\"").count(),
        2
    );
}

#[test]
fn end_role_in_a_handler_or_outside_a_role_is_ansibles_error() {
    // roles target's runme.sh: ansible-playbook refuses a handler that is
    // `meta: end_role` when it reads the playbook, and `ansible -m meta -a end_role`
    // (no role around it) fails with its error.
    let env = Env::new();
    let o = deploy_site(
        &env,
        "- hosts: localhost\n  gather_facts: false\n  tasks:\n    - debug:\n      changed_when: true\n      notify: invalid_handler\n  handlers:\n    - name: invalid_handler\n      meta: end_role\n",
        4,
    );
    let err = text(&o.stderr);
    assert!(
        err.starts_with("ERROR! Cannot execute 'end_role' from a handler"),
        "{err}"
    );
    let o = env.deploy(&["adhoc", "localhost", "-m", "meta", "-a", "end_role"]);
    let out = format!("{}{}", text(&o.stdout), text(&o.stderr));
    assert_ne!(code(&o), 0, "{out}");
    assert!(
        out.contains("ERROR! Cannot execute 'end_role' from outside of a role"),
        "{out}"
    );
}

#[test]
fn a_roles_defaults_and_vars_main_may_be_directories_of_files_merged_in_name_order() {
    // roles target, data_integrity.yml: `defaults/main/` (and `vars/main/`) stand for
    // every file in them, read in sorted order (subdirectories in place, hidden files
    // and backups left out), a later file's key replacing an earlier one's; a
    // `main.yml` beside such a directory wins, as Ansible's role loader finds it first.
    let env = Env::new();
    write_files(
        &env,
        &[
            (
                "roles/d/defaults/main/00.yml",
                "x: zero\ny: zero\nz: zero\n",
            ),
            ("roles/d/defaults/main/01.yml", "y: one\n"),
            ("roles/d/defaults/main/02/a.yml", "z: two-a\n"),
            ("roles/d/defaults/main/.hidden.yml", "x: hidden\n"),
            ("roles/d/defaults/main/03.yml~", "x: backup\n"),
            ("roles/d/vars/main/10.yml", "v: ten\n"),
            ("roles/d/vars/main/20.json", "{\"w\": \"twenty\"}\n"),
            ("roles/d/vars/main/30.txt", "v: text\n"),
            (
                "roles/d/tasks/main.yml",
                "- assert:\n    that:\n      - x == 'zero'\n      - y == 'one'\n      - z == 'two-a'\n      - v == 'ten'\n      - w == 'twenty'\n",
            ),
            ("roles/f/defaults/main.yml", "m: file\n"),
            ("roles/f/defaults/main/00.yml", "m: directory\n"),
            (
                "roles/f/tasks/main.yml",
                "- assert: {that: [m == 'file']}\n",
            ),
        ],
    );
    let o = deploy_site(
        &env,
        "- hosts: localhost\n  gather_facts: false\n  roles: [d, f]\n",
        0,
    );
    assert_has(&o.stdout, "ok=2");
}

#[test]
fn a_host_never_reached_runs_what_needs_no_connection_then_is_unreachable_unless_ignored() {
    // roles target (role_complete.yml with `-i fake,`, end_role.yml with `-i testhost,`):
    // ansible-playbook connects to a host only for a module that runs there, so a host
    // that cannot be reached still runs `debug`/`set_fact`/`assert`, and the first task
    // that needs it is unreachable: the host stops there, or goes on when the play
    // ignores unreachable hosts (ok and ignored each time).
    let env = Env::new();
    let inv = down_inventory(&env, "");
    let site = env.path("site.yml");
    let run = |ignore: bool| {
        std::fs::write(
            &site,
            format!(
                "- hosts: down\n  gather_facts: false\n  ignore_unreachable: {ignore}\n  tasks:\n\
                 \x20   - set_fact: {{x: 1}}\n\
                 \x20   - name: needs no host\n      debug: {{msg: 'x is {{{{ x }}}}'}}\n\
                 \x20   - name: needs the host\n      ping:\n\
                 \x20   - name: again\n      ping:\n\
                 \x20   - name: after\n      debug: {{msg: after}}\n"
            ),
        )
        .unwrap();
        let o = env.deploy(&[site.to_str().unwrap(), "-i", inv.to_str().unwrap()]);
        (code(&o), format!("{}{}", text(&o.stdout), text(&o.stderr)))
    };
    let (rc, out) = run(false);
    assert_eq!(rc, 3, "{out}");
    assert!(out.contains("\"msg\": \"x is 1\""), "{out}");
    assert!(!out.contains("TASK [again]"), "{out}");
    assert!(
        out.contains("down                 : ok=2 changed=0 unreachable=1 failed=0 skipped=0 rescued=0 ignored=0"),
        "{out}"
    );
    let (rc, out) = run(true);
    assert_eq!(rc, 0, "{out}");
    assert!(out.contains("\"msg\": \"after\""), "{out}");
    assert!(
        out.contains("down                 : ok=5 changed=0 unreachable=0 failed=0 skipped=0 rescued=0 ignored=2"),
        "{out}"
    );
}

#[test]
fn role_variables_are_private_or_public_to_the_play_as_ansible_private_role_vars_says() {
    // roles target, privacy.yml: unset, roles: and import_role show a role's vars to
    // the whole play and include_role keeps them to the role; ANSIBLE_PRIVATE_ROLE_VARS
    // makes every one private (1) or public (0); `public` on an import or include wins;
    // `lookup('config', 'DEFAULT_PRIVATE_ROLE_VARS')` gives the setting.
    let env = Env::new();
    write_files(
        &env,
        &[
            ("roles/a/vars/main.yml", "privacy: in role a\n"),
            (
                "roles/a/tasks/main.yml",
                "- assert: {that: [privacy is defined]}\n",
            ),
        ],
    );
    let play = |tasks: &str, that: &str| {
        format!(
            "- hosts: localhost\n  gather_facts: false\n{tasks}  post_tasks:\n    - assert: {{that: [\"{that}\"]}}\n"
        )
    };
    let site = env.path("site.yml");
    let run = |private: Option<&str>, plays: &[String]| {
        std::fs::write(&site, plays.concat()).unwrap();
        let mut cmd = env.command();
        cmd.arg(site.to_str().unwrap());
        match private {
            Some(p) => cmd.env("ANSIBLE_PRIVATE_ROLE_VARS", p),
            None => cmd.env_remove("ANSIBLE_PRIVATE_ROLE_VARS"),
        };
        let o = cmd.output().unwrap();
        assert_eq!(
            code(&o),
            0,
            "{private:?}: {}{}",
            text(&o.stdout),
            text(&o.stderr)
        );
    };
    let roles = "  roles: [a]\n";
    let import = |extra: &str| format!("  tasks:\n    - import_role: {{name: a{extra}}}\n");
    let include = |extra: &str| format!("  tasks:\n    - include_role: {{name: a{extra}}}\n");
    // As privacy_vars.yml reads it: in a variable, a lookup the packer answers.
    let setting = |v: bool| {
        play(
            "  vars:\n    is_private: \"{{ lookup('config', 'DEFAULT_PRIVATE_ROLE_VARS') }}\"\n",
            &format!(
                "is_private is boolean and is_private == {}",
                if v { "True" } else { "False" }
            ),
        )
    };
    run(
        None,
        &[
            play(roles, "privacy is defined"),
            play(&import(""), "privacy is defined"),
            play(&include(""), "privacy is undefined"),
            play(&import(", public: false"), "privacy is undefined"),
            play(&include(", public: true"), "privacy is defined"),
            setting(false),
        ],
    );
    run(
        Some("1"),
        &[
            play(roles, "privacy is undefined"),
            play(&import(""), "privacy is undefined"),
            play(&include(""), "privacy is undefined"),
            play(&import(", public: true"), "privacy is defined"),
            setting(true),
        ],
    );
    run(
        Some("0"),
        &[
            play(roles, "privacy is defined"),
            play(&import(""), "privacy is defined"),
            play(&include(""), "privacy is defined"),
            play(&include(", public: false"), "privacy is undefined"),
            setting(false),
        ],
    );
}

/// A role's `files/` tree with links and an empty directory, copied as Ansible's copy
/// action copies one, the same whether the host reads the tree when the task runs (a
/// local host: the controller) or its runner carries it (a host packed with
/// `--compile-only`, run by hand): links made as links with `local_follow: false`,
/// followed by default unless they cannot be, and every directory made.
#[test]
fn a_copied_tree_keeps_its_links_and_empty_directories_on_every_kind_of_host() {
    let env = Env::new();
    let files = env.path("roles/r/files/tree");
    for d in ["sub", "empty", "real"] {
        std::fs::create_dir_all(files.join(d)).unwrap();
    }
    std::fs::write(files.join("top.txt"), "top\n").unwrap();
    std::fs::write(files.join("real/inner.txt"), "inner\n").unwrap();
    for (name, text) in [
        ("to_top", "../top.txt"),
        ("to_real", "../real"),
        ("up", "../"),
        ("nowhere", "../missing"),
    ] {
        std::os::unix::fs::symlink(text, files.join("sub").join(name)).unwrap();
    }
    std::fs::create_dir_all(env.path("roles/r/tasks")).unwrap();
    std::fs::write(
        env.path("roles/r/tasks/main.yml"),
        "- copy: {src: tree, dest: '{{ out }}/kept', local_follow: false, directory_mode: '0700'}\n\
         - copy: {src: tree/, dest: '{{ out }}/followed'}\n",
    )
    .unwrap();
    std::fs::write(env.path("site.yml"), "- hosts: all\n  roles: [r]\n").unwrap();
    let site = env.path("site.yml");
    let check = |out: &Path| {
        let kept = out.join("kept/tree");
        for (name, text) in [
            ("to_top", "../top.txt"),
            ("to_real", "../real"),
            ("up", "../"),
            ("nowhere", "../missing"),
        ] {
            assert_eq!(
                std::fs::read_link(kept.join("sub").join(name)).unwrap(),
                Path::new(text),
                "{name}"
            );
        }
        assert!(kept.join("empty").is_dir(), "the empty directory is made");
        let mode = std::fs::metadata(kept.join("empty")).unwrap().permissions();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
            0o700
        );
        let followed = out.join("followed");
        assert_eq!(
            std::fs::read_to_string(followed.join("sub/to_top")).unwrap(),
            "top\n"
        );
        assert!(!followed.join("sub/to_real").is_symlink());
        assert_eq!(
            std::fs::read_to_string(followed.join("sub/to_real/inner.txt")).unwrap(),
            "inner\n"
        );
        assert_eq!(
            std::fs::read_link(followed.join("sub/up")).unwrap(),
            Path::new("../")
        );
        assert_eq!(
            std::fs::read_link(followed.join("sub/nowhere")).unwrap(),
            Path::new("../missing")
        );
        assert!(followed.join("empty").is_dir());
    };

    // A local host: the controller's tree as it is when the task runs.
    let local = env.path("local");
    let inv = env.path("local.ini");
    std::fs::write(
        &inv,
        format!("h1 ansible_connection=local out={}\n", local.display()),
    )
    .unwrap();
    let args = ["-i", inv.to_str().unwrap(), site.to_str().unwrap()];
    let o = env.deploy(&args);
    assert_eq!(code(&o), 0, "{}{}", text(&o.stdout), text(&o.stderr));
    check(&local);
    let again = env.deploy(&args);
    assert_eq!(code(&again), 0, "{}", text(&again.stderr));
    assert_has(&again.stdout, "changed=0");

    // A host whose runner carries the tree, run by hand.
    let carried = env.path("carried");
    let inv = env.path("remote.ini");
    std::fs::write(
        &inv,
        format!("h2 ansible_host=192.0.2.1 out={}\n", carried.display()),
    )
    .unwrap();
    let out_dir = env.path("packed");
    // This machine's runner, so that the packed binary runs here.
    let triple = format!("{}-unknown-linux-musl", std::env::consts::ARCH);
    let o = env.deploy(&[
        "--compile-only",
        "--target",
        &triple,
        "-i",
        inv.to_str().unwrap(),
        site.to_str().unwrap(),
        "-o",
        out_dir.to_str().unwrap(),
    ]);
    assert_eq!(code(&o), 0, "{}", text(&o.stderr));
    let row = text(&o.stdout);
    let fields: Vec<&str> = row.trim().split('\t').collect();
    let pubkey = format!("{}.pub", env.key().display());
    let run = env.run_by_hand(
        Path::new(fields[2]),
        &["--trusted-key", &pubkey, "--expect", fields[1]],
    );
    assert_eq!(code(&run), 0, "{}{}", text(&run.stdout), text(&run.stderr));
    check(&carried);
}

/// `connection: local` on a play: nothing to change for hosts that connect locally; a
/// host reached over SSH is refused before anything runs, naming the play and host.
#[test]
fn a_play_with_connection_local_runs_on_local_hosts_and_is_refused_for_others() {
    let env = Env::new();
    let out = deploy_site(
        &env,
        "- hosts: localhost\n  connection: local\n  gather_facts: false\n  tasks:\n    - debug: msg=ran-here\n",
        0,
    );
    assert_has(&out.stdout, "ran-here");

    let inventory = env.path("hosts.ini");
    std::fs::write(
        &inventory,
        "web1 ansible_host=192.0.2.1\nlocal1 ansible_connection=local\n",
    )
    .unwrap();
    let site = env.path("site.yml");
    std::fs::write(
        &site,
        "- name: api calls\n  hosts: all\n  connection: local\n  gather_facts: false\n  tasks:\n    - debug: msg=never\n",
    )
    .unwrap();
    let o = env.deploy(&["-i", inventory.to_str().unwrap(), site.to_str().unwrap()]);
    assert_eq!(code(&o), 4, "{}", text(&o.stderr));
    assert_has(
        &o.stderr,
        "play 'api calls': `connection: local` on a play is supported only for hosts that connect locally (ansible_connection=local, or the implicit localhost); host 'web1' connects over ssh",
    );
    assert!(!text(&o.stdout).contains("never"));

    std::fs::write(&site, "- hosts: all\n  connection: ssh\n  tasks: []\n").unwrap();
    let o = env.deploy(&["-i", inventory.to_str().unwrap(), site.to_str().unwrap()]);
    assert_eq!(code(&o), 4, "{}", text(&o.stderr));
    assert_has(&o.stderr, "only `connection: local` is supported on a play");
}
