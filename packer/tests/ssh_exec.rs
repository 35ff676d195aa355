//! SSH execution mode (`--strategy ssh`) against real OpenSSH `sshd` test hosts: the
//! same plan gives the same files, results and recap as binary mode, a second run
//! changes nothing, check mode changes nothing, and a module that needs the runner
//! fails clearly.
//!
//! Needs root (test users), `openssh-server`, and the native runner (for the binary-mode
//! side of the comparison; `cargo xtask test` builds it).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]
// The edge-case plan is one large json! literal.
#![recursion_limit = "256"]

#[path = "support/sshd.rs"]
mod sshd;

use serde_json::{Value, json};
use sshd::{Lab, Sshd};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

struct Deployer {
    home: tempfile::TempDir,
}

impl Deployer {
    fn new() -> Deployer {
        Deployer {
            home: tempfile::tempdir().unwrap(),
        }
    }

    fn run(&self, lab: &Lab, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_rustle-deploy"))
            .args(args)
            .arg("--known-hosts")
            .arg(&lab.known_hosts)
            .env("HOME", self.home.path())
            .env_remove("SSH_AUTH_SOCK")
            .env_remove("RUSTLE_DEPLOY_KEY")
            .output()
            .unwrap()
    }

    fn plan(&self, v: &Value) -> PathBuf {
        let p = self.home.path().join("plan.json");
        std::fs::write(&p, serde_json::to_vec(v).unwrap()).unwrap();
        p
    }

    /// Deploys `plan` to `hosts`, in SSH mode or not, and returns the output and report.
    fn deploy(&self, lab: &Lab, hosts: &[&Sshd], plan: &Path, extra: &[&str]) -> (Output, Value) {
        let inv = lab.inventory(hosts);
        let report = self.home.path().join("report.json");
        let _ = std::fs::remove_file(&report);
        let mut args = vec![
            "-i",
            inv.to_str().unwrap(),
            plan.to_str().unwrap(),
            "--report",
            report.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        let out = self.run(lab, &args);
        let r = serde_json::from_slice(&std::fs::read(&report).unwrap_or_default())
            .unwrap_or(Value::Null);
        (out, r)
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A plan that exercises every module SSH mode carries out, and the executor's
/// keywords around them; everything lands in the login user's home.
fn plan() -> Value {
    json!({
        "format": "rustle-deploy-plan", "version": 1,
        "plays": [{"name": "lab", "hosts": ["all"], "gather_facts": true,
          "vars": {"ports": [80, 443]},
          "tasks": [
            {"name": "conf dir", "module": "file", "args": {"path": "{{ ansible_env_home }}/app/conf", "state": "directory", "mode": "0750"}},
            {"name": "hello", "module": "copy", "args": {"content": "hello {{ inventory_hostname }} from {{ ansible_user_id }} on {{ ansible_system }}\n", "dest": "{{ ansible_env_home }}/app/conf/hello", "mode": "0640"}, "notify": ["restart"]},
            {"name": "data", "module": "copy", "args": {"src": "data.bin", "dest": "{{ ansible_env_home }}/app/"}},
            {"name": "app.conf", "module": "template", "args": {"src": "app.conf.j2", "dest": "{{ ansible_env_home }}/app/conf/app.conf"}},
            {"name": "seed", "module": "copy", "args": {"content": "port=80\n", "dest": "{{ ansible_env_home }}/app/conf/edit.conf", "force": false}},
            {"name": "extra line", "module": "lineinfile", "args": {"path": "{{ ansible_env_home }}/app/conf/edit.conf", "line": "extra=1", "insertbefore": "BOF"}},
            {"name": "block", "module": "blockinfile", "args": {"path": "~/app/conf/block.txt", "create": true, "block": "a\nb"}},
            {"name": "port", "module": "replace", "args": {"path": "{{ ansible_env_home }}/app/conf/edit.conf", "regexp": "port=80$", "replace": "port=8080"}},
            {"name": "link", "module": "file", "args": {"src": "conf", "dest": "{{ ansible_env_home }}/app/current", "state": "link"}},
            {"name": "stat hello", "module": "stat", "args": {"path": "{{ ansible_env_home }}/app/conf/hello"}, "register": "st"},
            {"name": "check stat", "module": "assert", "args": {"that": ["st.stat.exists", "st.stat.mode == '0640'", "st.stat.isreg"]}},
            {"name": "read", "module": "command", "args": {"_raw_params": "cat hello", "chdir": "{{ ansible_env_home }}/app/conf"}, "register": "cat", "changed_when": false},
            {"name": "echo", "module": "debug", "args": {"msg": "{{ cat.stdout }}"}},
            {"name": "once", "module": "shell", "args": {"cmd": "echo $((1 + 2)) > out.txt", "chdir": "{{ ansible_env_home }}/app", "creates": "out.txt"}},
            {"name": "dirs", "module": "file", "args": {"path": "{{ ansible_env_home }}/app/d/{{ item }}", "state": "directory"}, "loop": ["a", "b"]},
            {"name": "never", "module": "debug", "args": {"msg": "no"}, "when": "ports | length > 5"},
            {"name": "fact", "module": "set_fact", "args": {"answer": "{{ 6 * 7 }}"}},
            {"name": "fails", "module": "command", "args": {"_raw_params": "false"}, "ignore_errors": true, "changed_when": false},
            {"name": "nothing to remove", "module": "file", "args": {"path": "{{ ansible_env_home }}/app/gone", "state": "absent"}},
            {"name": "guarded", "block": [
                {"name": "boom", "module": "fail", "args": {"msg": "planned"}}
            ], "rescue": [
                {"name": "rescued", "module": "debug", "args": {"msg": "{{ ansible_failed_result.msg }} {{ answer }}"}}
            ]}
          ],
          "handlers": [
            {"name": "restart", "module": "shell", "args": {"cmd": "echo restarted >> {{ ansible_env_home }}/app/handler.log"}}
          ]
        }],
        "files": {
            "data.bin": {"base64": "AAECA/8KcnVzdGxlAA==", "mode": "0600"},
            "app.conf.j2": {"content": "{% for p in ports %}listen {{ p }}\n{% endfor %}port=80\nos={{ ansible_os_family }}\n"}
        }
    })
}

/// Everything under `dir`, relative: (path, kind, mode, content or link target).
fn tree(dir: &Path, h: &Sshd) -> Vec<(String, String, u32, Vec<u8>)> {
    tree_with(dir, &[(&h.user, "USER"), (&h.name, "HOST")])
}

/// [`tree`], with the given (text, placeholder) substitutions in file contents.
fn tree_with(dir: &Path, subs: &[(&str, &str)]) -> Vec<(String, String, u32, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let m = std::fs::symlink_metadata(&p).unwrap();
            let rel = p.strip_prefix(dir).unwrap().display().to_string();
            let mode = m.permissions().mode() & 0o7777;
            if m.file_type().is_symlink() {
                let t = std::fs::read_link(&p).unwrap();
                out.push((rel, "link".into(), 0, t.display().to_string().into_bytes()));
            } else if m.is_dir() {
                out.push((rel, "dir".into(), mode, Vec::new()));
                stack.push(p);
            } else {
                out.push((rel, "file".into(), mode, std::fs::read(&p).unwrap()));
            }
        }
    }
    out.sort();
    for e in &mut out {
        let mut t = text(&e.3);
        for (from, to) in subs {
            t = t.replace(from, to);
        }
        e.3 = t.into_bytes();
    }
    out
}

/// A host's task results with what legitimately differs between two hosts and two
/// runs (names, homes, ids, times, inode numbers) taken out.
fn normalized(report: &Value, h: &Sshd) -> Vec<Value> {
    fn clean(v: &mut Value, h: &Sshd) {
        match v {
            Value::String(s) => {
                *s = s
                    .replace(&h.home.display().to_string(), "HOME")
                    .replace(&h.user, "USER")
                    .replace(&h.name, "HOST");
            }
            Value::Array(a) => a.iter_mut().for_each(|x| clean(x, h)),
            Value::Object(m) => {
                for k in [
                    "start",
                    "end",
                    "delta",
                    "uid",
                    "gid",
                    "mtime",
                    "atime",
                    "ctime",
                    "inode",
                    "dev",
                    "duration_ms",
                    "ansible_facts",
                    // Of content that names the host, so it differs; `tree` compares it.
                    "checksum",
                ] {
                    m.shift_remove(k);
                }
                // Of content that names the host too: compared as present or not.
                if m.contains_key("md5sum") {
                    m.insert("md5sum".into(), "MD5".into());
                }
                // Backup names carry a process id and a time.
                for k in ["backup", "backup_file"] {
                    if m.get(k)
                        .and_then(Value::as_str)
                        .is_some_and(|b| !b.is_empty())
                    {
                        m.insert(k.into(), "BACKUP".into());
                    }
                }
                m.values_mut().for_each(|x| clean(x, h));
            }
            _ => {}
        }
    }
    report["hosts"][&h.name]["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            let mut t = t.clone();
            clean(&mut t, h);
            t
        })
        .collect()
}

#[test]
fn ssh_mode_matches_binary_mode_and_a_second_run_changes_nothing() {
    let lab = Lab::new();
    let bin = lab.start("xbin", "rustle-x0");
    let ssh = lab.start("xssh", "rustle-x1");
    lab.trust(&[&bin, &ssh]);
    let d = Deployer::new();
    let plan = d.plan(&plan());

    // Diff mode on: the diffs must agree too.
    let (out, rb) = d.deploy(&lab, &[&bin], &plan, &["--diff"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let (out, rs) = d.deploy(&lab, &[&ssh], &plan, &["--strategy", "ssh", "--diff"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let stdout = text(&out.stdout);
    // The same task lines as binary mode, facts from the host (its login user).
    assert!(
        stdout.contains(&format!("hello {} from {} on Linux", ssh.name, ssh.user)),
        "{stdout}"
    );
    // No runner went to the host: nothing was installed.
    assert!(!ssh.root().join("current").exists());
    assert!(!ssh.root().join("cache").exists());

    let (b, s) = (&rb["hosts"][&bin.name], &rs["hosts"][&ssh.name]);
    assert_eq!(b["status"], "ok");
    assert_eq!(s["status"], "ok");
    assert_eq!(b["recap"], s["recap"], "recaps differ");
    assert_eq!(s["recap"]["rescued"], 1);
    assert_eq!(s["recap"]["ignored"], 1);
    assert_eq!(s["recap"]["skipped"], 1);
    let (nb, ns) = (normalized(&rb, &bin), normalized(&rs, &ssh));
    assert_eq!(nb.len(), ns.len());
    for (x, y) in nb.iter().zip(&ns) {
        assert_eq!(x, y, "task results differ between binary and SSH mode");
    }
    let app = |h: &Sshd| h.home.join("app");
    assert_eq!(
        tree(&app(&bin), &bin),
        tree(&app(&ssh), &ssh),
        "files differ"
    );
    let hello = std::fs::read_to_string(app(&ssh).join("conf/hello")).unwrap();
    assert_eq!(
        hello,
        format!("hello {} from {} on Linux\n", ssh.name, ssh.user)
    );
    assert_eq!(
        std::fs::read(app(&ssh).join("data.bin")).unwrap(),
        b"\x00\x01\x02\x03\xff\nrustle\x00"
    );
    let conf = std::fs::read_to_string(app(&ssh).join("conf/app.conf")).unwrap();
    assert_eq!(conf, "listen 80\nlisten 443\nport=80\nos=Debian\n");
    let edit = std::fs::read_to_string(app(&ssh).join("conf/edit.conf")).unwrap();
    assert_eq!(edit, "extra=1\nport=8080\n");
    // Files belong to the login user, as when the runner writes them.
    let owner = std::os::unix::fs::MetadataExt::uid(
        &std::fs::metadata(app(&ssh).join("conf/hello")).unwrap(),
    );
    let expect = std::os::unix::fs::MetadataExt::uid(&std::fs::metadata(&ssh.home).unwrap());
    assert_eq!(owner, expect);

    // A second run changes nothing, in both modes, and they still agree.
    let (out, rs2) = d.deploy(&lab, &[&ssh], &plan, &["--strategy", "ssh"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let (out, rb2) = d.deploy(&lab, &[&bin], &plan, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(rs2["hosts"][&ssh.name]["recap"]["changed"], 0, "{}", rs2);
    assert_eq!(
        rb2["hosts"][&bin.name]["recap"],
        rs2["hosts"][&ssh.name]["recap"]
    );
    let (nb, ns) = (normalized(&rb2, &bin), normalized(&rs2, &ssh));
    for (x, y) in nb.iter().zip(&ns) {
        assert_eq!(
            x, y,
            "second-run results differ between binary and SSH mode"
        );
    }
    assert_eq!(
        std::fs::read_to_string(app(&ssh).join("handler.log")).unwrap(),
        "restarted\n",
        "the handler ran again on an unchanged run"
    );
    assert_eq!(tree(&app(&bin), &bin), tree(&app(&ssh), &ssh));
}

#[test]
fn check_mode_changes_nothing_and_unsupported_modules_fail_clearly() {
    let lab = Lab::new();
    let h = lab.start("ychk", "rustle-y0");
    lab.trust(&[&h]);
    let d = Deployer::new();
    let plan = d.plan(&json!({
        "format": "rustle-deploy-plan", "version": 1,
        "plays": [{"name": "lab", "hosts": ["all"], "tasks": [
            {"name": "dir", "module": "file", "args": {"path": "{{ ansible_env_home }}/app", "state": "directory"}},
            {"name": "file", "module": "copy", "args": {"content": "x\n", "dest": "{{ ansible_env_home }}/f"}},
            {"name": "line", "module": "lineinfile", "args": {"path": "{{ ansible_env_home }}/l", "line": "x", "create": true}},
            {"name": "cmd", "module": "command", "args": {"_raw_params": "touch {{ ansible_env_home }}/c"}}
        ]}]
    }));
    let (out, r) = d.deploy(&lab, &[&h], &plan, &["--strategy", "ssh", "--check"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let recap = &r["hosts"][&h.name]["recap"];
    assert_eq!(recap["changed"], 3, "{r}");
    assert_eq!(recap["skipped"], 1, "{r}");
    for f in ["app", "f", "l", "c"] {
        assert!(!h.home.join(f).exists(), "check mode wrote {f} to the host");
    }

    // A hard link is something the runner's file module makes and SSH mode does not.
    let bad = d.plan(&json!({
        "format": "rustle-deploy-plan", "version": 1,
        "plays": [{"name": "lab", "hosts": ["all"], "tasks": [
            {"name": "first", "module": "command", "args": {"_raw_params": "touch {{ ansible_env_home }}/first"}},
            {"name": "hard link", "module": "file", "args": {"src": "{{ ansible_env_home }}/first", "dest": "{{ ansible_env_home }}/hard", "state": "hard"}},
            {"name": "after", "module": "command", "args": {"_raw_params": "touch {{ ansible_env_home }}/after"}}
        ]}]
    }));
    let (out, r) = d.deploy(&lab, &[&h], &bad, &["--strategy", "ssh"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let host = &r["hosts"][&h.name];
    assert_eq!(host["status"], "failed");
    assert_eq!(host["recap"]["failed"], 1);
    let failed = &host["tasks"][1];
    assert_eq!(failed["name"], "hard link");
    let msg = failed["result"]["msg"].as_str().unwrap();
    assert!(msg.contains("cannot run in SSH mode"), "{msg}");
    assert!(h.home.join("first").exists());
    assert!(
        !h.home.join("after").exists(),
        "the host went on after a failure"
    );
}

#[test]
fn become_without_passwordless_sudo_stops_the_host_before_any_task() {
    let lab = Lab::new();
    let h = lab.start("ynosudo", "rustle-y1");
    lab.trust(&[&h]);
    let d = Deployer::new();
    let plan = d.plan(&json!({
        "format": "rustle-deploy-plan", "version": 1,
        "plays": [{"name": "lab", "hosts": ["all"], "become": true, "tasks": [
            {"name": "dir", "module": "file", "args": {"path": "{{ ansible_env_home }}/app", "state": "directory"}}
        ]}]
    }));
    let (out, r) = d.deploy(&lab, &[&h], &plan, &["--strategy", "ssh"]);
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let err = r["hosts"][&h.name]["error"].as_str().unwrap();
    assert!(err.contains("sudo"), "{err}");
    assert!(!h.home.join("app").exists());
}

#[test]
fn local_hosts_run_in_ssh_mode_through_sh_with_binary_modes_results() {
    let d = Deployer::new();
    let plan = d.plan(&plan());
    let work = tempfile::tempdir().unwrap();
    let (mut recaps, mut statuses) = (Vec::new(), Vec::new());
    for (mode, extra) in [("bin", &[][..]), ("ssh", &["--strategy", "ssh"][..])] {
        let home = work.path().join(mode);
        std::fs::create_dir_all(&home).unwrap();
        let inv = work.path().join(format!("{mode}.ini"));
        std::fs::write(
            &inv,
            format!(
                "loc ansible_connection=local ansible_env_home={} rustle_root={}\n",
                home.display(),
                work.path().join(format!("{mode}-root")).display()
            ),
        )
        .unwrap();
        let report = work.path().join(format!("{mode}.json"));
        let mut args = vec![
            "-i",
            inv.to_str().unwrap(),
            plan.to_str().unwrap(),
            "--report",
            report.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        let out = Command::new(env!("CARGO_BIN_EXE_rustle-deploy"))
            .args(&args)
            // Each mode its own HOME too: the plan's `~` paths are then apart, as
            // `ansible_env_home` keeps the others.
            .env("HOME", &home)
            .env_remove("RUSTLE_DEPLOY_KEY")
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{mode}: {}{}",
            text(&out.stdout),
            text(&out.stderr)
        );
        let r: Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
        recaps.push(r["hosts"]["loc"]["recap"].clone());
        statuses.push(
            r["hosts"]["loc"]["tasks"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|t| format!("{} {}", t["name"], t["status"]))
                .collect::<Vec<_>>(),
        );
    }
    // Task by task first, so a difference names its task.
    assert_eq!(statuses[0], statuses[1]);
    assert_eq!(recaps[0], recaps[1]);
    assert_eq!(recaps[1]["rescued"], 1);
    let bin = work.path().join("bin");
    let ssh = work.path().join("ssh");
    let (b, s) = (bin.display().to_string(), ssh.display().to_string());
    assert_eq!(
        tree_with(&bin.join("app"), &[(&b, "HOME")]),
        tree_with(&ssh.join("app"), &[(&s, "HOME")])
    );
    // SSH mode installed nothing.
    assert!(!work.path().join("ssh-root").exists());
}

/// Edge cases of each module, twice: SSH mode's results must be binary mode's.
fn edge_plan() -> Value {
    let b = "{{ ansible_env_home }}/edge";
    json!({
        "format": "rustle-deploy-plan", "version": 1,
        "plays": [{"name": "edge", "hosts": ["all"], "gather_facts": true, "tasks": [
            {"name": "base", "module": "file", "args": {"path": b, "state": "directory"}},
            {"name": "old dir", "module": "file", "args": {"path": format!("{b}/old/sub"), "state": "directory"}},
            {"name": "remove dir", "module": "file", "args": {"path": format!("{b}/old"), "state": "absent"}},
            {"name": "touch", "module": "file", "args": {"path": format!("{b}/touched"), "state": "touch", "mode": "0600"}},
            {"name": "f", "module": "copy", "args": {"content": "one\n", "dest": format!("{b}/f"), "backup": true}},
            {"name": "f mode", "module": "copy", "args": {"content": "one\n", "dest": format!("{b}/f"), "mode": "0604"}},
            {"name": "f keep", "module": "copy", "args": {"content": "other\n", "dest": format!("{b}/f"), "force": false}},
            {"name": "f as file", "module": "file", "args": {"path": format!("{b}/f"), "mode": "0644"}},
            {"name": "missing file", "module": "file", "args": {"path": format!("{b}/nope"), "state": "file"}, "ignore_errors": true},
            {"name": "no parent", "module": "copy", "args": {"content": "x", "dest": format!("{b}/no/such/dir/f")}, "ignore_errors": true},
            {"name": "into dir", "module": "copy", "args": {"content": "x", "dest": format!("{b}/")}, "ignore_errors": true},
            {"name": "link a", "module": "file", "args": {"src": "f", "dest": format!("{b}/ln"), "state": "link"}},
            {"name": "link b", "module": "file", "args": {"src": "touched", "dest": format!("{b}/ln"), "state": "link"}},
            {"name": "dangling", "module": "file", "args": {"src": "nowhere", "dest": format!("{b}/dangling"), "state": "link"}, "ignore_errors": true},
            {"name": "stat dir", "module": "stat", "args": {"path": b}},
            {"name": "stat link", "module": "stat", "args": {"path": format!("{b}/ln")}},
            {"name": "stat link followed", "module": "stat", "args": {"path": format!("{b}/ln"), "follow": true, "get_checksum": false}},
            {"name": "stat missing", "module": "stat", "args": {"path": format!("{b}/nope")}},
            {"name": "lines", "module": "lineinfile", "args": {"path": format!("{b}/lines"), "line": "a=1", "create": true, "mode": "0640"}},
            {"name": "lines again", "module": "lineinfile", "args": {"path": format!("{b}/lines"), "regexp": "^a=", "line": "a=2", "backup": true}},
            {"name": "lines absent", "module": "lineinfile", "args": {"path": format!("{b}/lines"), "regexp": "^zzz", "state": "absent"}},
            {"name": "lines no file", "module": "lineinfile", "args": {"path": format!("{b}/none"), "line": "x"}, "ignore_errors": true},
            {"name": "block", "module": "blockinfile", "args": {"path": format!("{b}/lines"), "block": "k=v", "marker": "# {mark} X"}},
            {"name": "no match", "module": "replace", "args": {"path": format!("{b}/lines"), "regexp": "^nothing$", "replace": "x"}},
            // expand_argument_vars off: SSH mode passes every word quoted, unexpanded.
            {"name": "argv", "module": "command", "args": {"argv": ["printf", "%s|", "a b", "$HOME"], "expand_argument_vars": false}, "changed_when": false},
            // On (the default): $NAME and a leading ~ expand with the host's environment
            // and passwd, unset names stay, nothing is globbed or split.
            {"name": "expand", "module": "command", "args": {"argv": ["printf", "%s|", "$HOME/x", "~", "~root/y", "$RUSTLE_NOT_SET", "${LOGNAME}", "a*b c", "x~"]}, "changed_when": false},
            {"name": "expand free", "module": "command", "args": {"_raw_params": "printf %s| ~/z $USER"}, "changed_when": false},
            {"name": "stdin", "module": "command", "args": {"_raw_params": "cat", "stdin": "fed"}, "changed_when": false},
            {"name": "bash", "module": "shell", "args": {"cmd": "echo ${BASH_VERSION:+bash}; echo err >&2; exit 3", "executable": "/bin/bash"}, "ignore_errors": true},
            {"name": "removes", "module": "command", "args": {"_raw_params": "true", "removes": format!("{b}/nope")}},
            {"name": "full dir", "module": "copy", "args": {"content": "x", "dest": format!("{b}/full/")}, "ignore_errors": true},
            {"name": "full dir file", "module": "copy", "args": {"content": "x", "dest": format!("{b}/full/x")}, "ignore_errors": true},
            {"name": "tree", "module": "file", "args": {"path": format!("{b}/r/sub"), "state": "directory"}},
            {"name": "tree file", "module": "copy", "args": {"content": "t", "dest": format!("{b}/r/sub/t")}},
            {"name": "recurse", "module": "file", "args": {"path": format!("{b}/r"), "state": "directory", "recurse": true, "mode": "0750", "group": "{{ ansible_user_id }}"}},
            {"name": "own group", "module": "file", "args": {"path": format!("{b}/f"), "group": "{{ ansible_user_id }}", "owner": "{{ ansible_user_id }}"}},
            {"name": "link over full dir", "module": "file", "args": {"src": "f", "dest": format!("{b}/r"), "state": "link", "force": true}, "ignore_errors": true},
            {"name": "bad arg", "module": "copy", "args": {"content": "x", "dest": format!("{b}/g"), "colour": "red"}, "ignore_errors": true}
        ]}]
    })
}

#[test]
fn edge_cases_give_binary_modes_results_on_both_runs() {
    let lab = Lab::new();
    let bin = lab.start("zbin", "rustle-z0");
    let ssh = lab.start("zssh", "rustle-z1");
    lab.trust(&[&bin, &ssh]);
    let d = Deployer::new();
    let plan = d.plan(&edge_plan());
    for run in ["first", "second"] {
        let (out, rb) = d.deploy(&lab, &[&bin], &plan, &["--diff"]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}{}",
            text(&out.stdout),
            text(&out.stderr)
        );
        let (out, rs) = d.deploy(&lab, &[&ssh], &plan, &["--strategy", "ssh", "--diff"]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}{}",
            text(&out.stdout),
            text(&out.stderr)
        );
        let (nb, ns) = (normalized(&rb, &bin), normalized(&rs, &ssh));
        assert_eq!(nb.len(), ns.len());
        for (x, y) in nb.iter().zip(&ns) {
            assert_eq!(
                x, y,
                "{run} run: results differ between binary and SSH mode"
            );
        }
        assert_eq!(
            rb["hosts"][&bin.name]["recap"],
            rs["hosts"][&ssh.name]["recap"]
        );
        let expanded = ns
            .iter()
            .filter(|t| t["name"].as_str().is_some_and(|n| n.starts_with("expand")))
            .map(|t| t["result"]["stdout"].as_str().unwrap_or("").to_string())
            .collect::<Vec<_>>();
        assert_eq!(
            expanded,
            [
                "HOME/x|HOME|/root/y|$RUSTLE_NOT_SET|USER|a*b c|x~|",
                "HOME/z|USER|"
            ],
            "{ns:#?}"
        );
    }
    // Backups carry a process id and a time: compare everything else.
    let strip = |t: Vec<(String, String, u32, Vec<u8>)>| {
        t.into_iter()
            .filter(|e| !e.0.ends_with('~'))
            .collect::<Vec<_>>()
    };
    let edge = |h: &Sshd| h.home.join("edge");
    assert_eq!(
        strip(tree(&edge(&bin), &bin)),
        strip(tree(&edge(&ssh), &ssh))
    );
    let backups = |h: &Sshd| {
        std::fs::read_dir(edge(h))
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .ends_with('~')
            })
            .count()
    };
    assert_eq!(backups(&bin), backups(&ssh));
}

#[test]
fn a_host_cut_off_at_the_timeout_runs_no_further_task() {
    let d = Deployer::new();
    let work = tempfile::tempdir().unwrap();
    let after = work.path().join("after");
    let plan = d.plan(&json!({
        "format": "rustle-deploy-plan", "version": 1,
        "plays": [{"name": "p", "hosts": ["all"], "tasks": [
            {"name": "hang", "module": "command", "args": {"_raw_params": "sleep 60"}},
            {"name": "after", "module": "command", "args": {"argv": ["touch", after.to_str().unwrap()]}}
        ]}]
    }));
    let inv = work.path().join("hosts.ini");
    std::fs::write(
        &inv,
        format!(
            "loc ansible_connection=local rustle_root={}\n",
            work.path().join("root").display()
        ),
    )
    .unwrap();
    let report = work.path().join("r.json");
    let out = Command::new(env!("CARGO_BIN_EXE_rustle-deploy"))
        .args(["-i", inv.to_str().unwrap(), plan.to_str().unwrap()])
        .args(["--strategy", "ssh", "--timeout", "1", "--report"])
        .arg(&report)
        .env("HOME", d.home.path())
        .env_remove("RUSTLE_DEPLOY_KEY")
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let r: Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    let host = &r["hosts"]["loc"];
    assert!(
        host["error"].as_str().unwrap().contains("timed out"),
        "{host}"
    );
    // What the cut-off host still reported is not shown as a task result.
    assert!(
        !text(&out.stdout).contains("=> hang"),
        "{}",
        text(&out.stdout)
    );
    // The deployer is gone; the host's thread must not start the next task either.
    std::thread::sleep(std::time::Duration::from_secs(2));
    assert!(!after.exists(), "a task ran after the host was cut off");
}

#[test]
fn ssh_mode_ships_no_runner_so_a_platform_without_one_deploys() {
    let d = Deployer::new();
    let work = tempfile::tempdir().unwrap();
    let out_file = work.path().join("out");
    let plan = d.plan(&json!({
        "format": "rustle-deploy-plan", "version": 1,
        "plays": [{"name": "p", "hosts": ["all"], "tasks": [
            {"name": "mk", "module": "copy", "args": {"content": "hi\n", "dest": out_file.to_str().unwrap()}}
        ]}]
    }));
    let inv = work.path().join("hosts.ini");
    std::fs::write(
        &inv,
        format!(
            "loc ansible_connection=local rustle_root={}\n",
            work.path().join("root").display()
        ),
    )
    .unwrap();
    // No macOS runner is built here (the tests never build one); SSH mode needs none.
    let out = Command::new(env!("CARGO_BIN_EXE_rustle-deploy"))
        .args(["-i", inv.to_str().unwrap(), plan.to_str().unwrap()])
        .args(["--target", "x86_64-apple-darwin", "--strategy", "ssh"])
        .env("HOME", d.home.path())
        .env_remove("RUSTLE_DEPLOY_KEY")
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert_eq!(std::fs::read_to_string(&out_file).unwrap(), "hi\n");
}

#[test]
fn check_mode_results_match_binary_mode() {
    let lab = Lab::new();
    let bin = lab.start("cbin", "rustle-c0");
    let ssh = lab.start("cssh", "rustle-c1");
    lab.trust(&[&bin, &ssh]);
    let d = Deployer::new();
    let plan = d.plan(&plan());
    // A first real run makes the plan's directories; then change some files so
    // check mode has something to report, and check in both modes.
    for (h, extra) in [(&bin, &[][..]), (&ssh, &["--strategy", "ssh"][..])] {
        let (out, _) = d.deploy(&lab, &[h], &plan, extra);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        let app = h.home.join("app");
        std::fs::write(app.join("conf/hello"), "tampered\n").unwrap();
        std::fs::remove_file(app.join("conf/app.conf")).unwrap();
        std::fs::write(app.join("conf/edit.conf"), "port=80\n").unwrap();
        std::fs::remove_file(app.join("current")).unwrap();
        std::fs::remove_dir(app.join("d/b")).unwrap();
    }
    // In check mode the command that reads a file does not run; its result still has
    // an empty stdout (Ansible's command module registers one), so the task that shows
    // it renders nothing rather than failing: both modes run to the end alike.
    let (out, rb) = d.deploy(&lab, &[&bin], &plan, &["--check", "--diff"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let (out, rs) = d.deploy(
        &lab,
        &[&ssh],
        &plan,
        &["--strategy", "ssh", "--check", "--diff"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(
        rb["hosts"][&bin.name]["recap"],
        rs["hosts"][&ssh.name]["recap"]
    );
    assert!(rs["hosts"][&ssh.name]["recap"]["changed"].as_u64().unwrap() >= 5);
    let (nb, ns) = (normalized(&rb, &bin), normalized(&rs, &ssh));
    for (x, y) in nb.iter().zip(&ns) {
        assert_eq!(
            x, y,
            "check-mode results differ between binary and SSH mode"
        );
    }
    // Nothing changed on the host.
    let app = ssh.home.join("app");
    assert_eq!(
        std::fs::read_to_string(app.join("conf/hello")).unwrap(),
        "tampered\n"
    );
    assert!(!app.join("conf/app.conf").exists());
    assert!(!app.join("current").exists());
    assert!(!app.join("d/b").exists());
}

#[test]
fn the_tasks_environment_reaches_commands() {
    let d = Deployer::new();
    let work = tempfile::tempdir().unwrap();
    let plan = d.plan(&json!({
        "format": "rustle-deploy-plan", "version": 1,
        "plays": [{"name": "p", "hosts": ["all"], "environment": {"PLAY_VAR": "from play"}, "tasks": [
            {"name": "env", "module": "shell", "args": {"cmd": "echo \"$PLAY_VAR|$GREETING\""},
             "environment": {"GREETING": "it's {{ 1 + 1 }}"}, "register": "out"},
            {"name": "check", "module": "assert", "args": {"that": ["out.stdout == \"from play|it's 2\""]}}
        ]}]
    }));
    let inv = work.path().join("hosts.ini");
    std::fs::write(
        &inv,
        format!(
            "loc ansible_connection=local rustle_root={}\n",
            work.path().join("root").display()
        ),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_rustle-deploy"))
        .args(["-i", inv.to_str().unwrap(), plan.to_str().unwrap()])
        .args(["--strategy", "ssh"])
        .env("HOME", d.home.path())
        .env_remove("RUSTLE_DEPLOY_KEY")
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
}

/// A host whose login user may run anything as any user through `sudo -n`, as deploy
/// users usually may; the sudoers rule goes when the value is dropped.
struct SudoHost {
    host: Sshd,
    rule: PathBuf,
}

impl Drop for SudoHost {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.rule);
    }
}

fn sudo_host(lab: &Lab, name: &str, user: &str) -> SudoHost {
    assert!(
        Path::new("/usr/bin/sudo").exists(),
        "this test needs sudo: apt-get install sudo (.ci/run does)"
    );
    let host = lab.start(name, user);
    let rule = PathBuf::from(format!("/etc/sudoers.d/{user}"));
    std::fs::write(&rule, format!("{user} ALL=(ALL) NOPASSWD: ALL\n")).unwrap();
    std::fs::set_permissions(&rule, std::fs::Permissions::from_mode(0o440)).unwrap();
    SudoHost { host, rule }
}

fn uid_of(p: &Path) -> u32 {
    std::os::unix::fs::MetadataExt::uid(&std::fs::symlink_metadata(p).unwrap())
}

fn gid_of(p: &Path) -> u32 {
    std::os::unix::fs::MetadataExt::gid(&std::fs::symlink_metadata(p).unwrap())
}

/// The per-task results of a host in a report.
fn tasks<'a>(r: &'a Value, host: &str) -> &'a Vec<Value> {
    r["hosts"][host]["tasks"].as_array().unwrap()
}

/// A task's result by its name.
fn result<'a>(r: &'a Value, host: &str, name: &str) -> &'a Value {
    &tasks(r, host)
        .iter()
        .find(|t| t["name"] == name)
        .unwrap_or_else(|| panic!("no task {name} in {r}"))["result"]
}

#[test]
fn root_never_writes_through_names_a_user_planted_in_their_directory() {
    let lab = Lab::new();
    let s = sudo_host(&lab, "yplant", "rustle-y3");
    let h = &s.host;
    lab.trust(&[h]);
    let (uid, gid) = (uid_of(&h.home), gid_of(&h.home));
    // The login user's own directory, where the plan writes as root (become): a home,
    // a ~/.ssh, an app directory owned by the app's user.
    let dir = h.home.join("app");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("conf"), "old conf\n").unwrap();
    std::fs::write(dir.join("lines"), "a=1\n").unwrap();
    for p in [&dir, &dir.join("conf"), &dir.join("lines")] {
        std::os::unix::fs::chown(p, Some(uid), Some(gid)).unwrap();
    }
    // What that user would like root to overwrite, chmod and chown.
    let victim = lab.dir.path().join("victim");
    std::fs::write(&victim, "ORIGINAL SECRET\n").unwrap();
    std::fs::set_permissions(&victim, std::fs::Permissions::from_mode(0o600)).unwrap();

    // The user plants links under every name root's scripts used to write through, for
    // the next few thousand process ids (the host's shells get ids in turn): the temp
    // files `.<name>.<pid>.rustle-tmp` and `<name>.<pid>.rustle-link` (this one pointing
    // at a directory of the user's, which `ln -s` would put its link into), then the
    // backup names `<name>.<pid>.<time>~` for the next seconds.
    let elsewhere = lab.dir.path().join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    std::os::unix::fs::chown(&elsewhere, Some(uid), Some(gid)).unwrap();
    let read_num = |p: &str| -> u32 { std::fs::read_to_string(p).unwrap().trim().parse().unwrap() };
    let pid_max = read_num("/proc/sys/kernel/pid_max");
    let last = read_num("/proc/sys/kernel/ns_last_pid");
    let pids = |n: u32| -> Vec<u32> {
        (1..=n)
            .map(|i| (last + i) % pid_max)
            .filter(|p| *p > 1)
            .collect()
    };
    let plant = |name: &Path, target: &Path| {
        std::os::unix::fs::symlink(target, name).unwrap();
        std::os::unix::fs::lchown(name, Some(uid), Some(gid)).unwrap();
    };
    for pid in pids(4_000) {
        for base in ["conf", "lines"] {
            plant(&dir.join(format!(".{base}.{pid}.rustle-tmp")), &victim);
        }
        plant(&dir.join(format!("current.{pid}.rustle-link")), &elsewhere);
    }
    let now = std::time::SystemTime::now();
    for pid in pids(2_000) {
        for s in 0..5u64 {
            let t = rustle_runner::facts::format_time(now + std::time::Duration::from_secs(s));
            let (date, time) = t.split_once(' ').unwrap();
            let stamp = format!("{date}@{}", time.split('.').next().unwrap());
            for base in ["conf", "lines"] {
                plant(&dir.join(format!("{base}.{pid}.{stamp}~")), &victim);
            }
        }
    }
    let d = Deployer::new();
    let at = dir.display().to_string();
    let plan = d.plan(&json!({
        "format": "rustle-deploy-plan", "version": 1,
        "plays": [{"name": "p", "hosts": ["all"], "become": true, "gather_facts": false, "tasks": [
            {"name": "conf", "module": "copy", "args": {"content": "new conf\n", "dest": format!("{at}/conf"), "backup": true}},
            {"name": "lines", "module": "lineinfile", "args": {"path": format!("{at}/lines"), "line": "b=2", "backup": true}},
            {"name": "link", "module": "file", "args": {"src": "conf", "dest": format!("{at}/current"), "state": "link"}}
        ]}]
    }));
    let (out, r) = d.deploy(&lab, &[h], &plan, &["--strategy", "ssh"]);
    let victim_meta = std::fs::metadata(&victim).unwrap();
    assert_eq!(
        std::fs::read_to_string(&victim).unwrap(),
        "ORIGINAL SECRET\n",
        "root wrote through a planted link"
    );
    assert_eq!(
        (
            uid_of(&victim),
            gid_of(&victim),
            victim_meta.permissions().mode() & 0o7777
        ),
        (0, 0, 0o600),
        "root chowned or chmodded through a planted link"
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    // The writes themselves happened, as they would without the planted names.
    let conf = dir.join("conf");
    assert!(std::fs::symlink_metadata(&conf).unwrap().is_file());
    assert_eq!(std::fs::read_to_string(&conf).unwrap(), "new conf\n");
    assert_eq!(uid_of(&conf), uid, "a replaced file keeps its owner");
    assert_eq!(
        std::fs::read_to_string(dir.join("lines")).unwrap(),
        "a=1\nb=2\n"
    );
    assert_eq!(
        std::fs::read_dir(&elsewhere).unwrap().count(),
        0,
        "root made a link in a directory the user chose"
    );
    let current = dir.join("current");
    assert!(std::fs::symlink_metadata(&current).unwrap().is_symlink());
    assert_eq!(std::fs::read_link(&current).unwrap(), Path::new("conf"));
    // Backups are plain copies of the old files, under Ansible's name form.
    for (task, name, old) in [("conf", "conf", "old conf\n"), ("lines", "lines", "a=1\n")] {
        let b = result(&r, &h.name, task)["backup_file"]
            .as_str()
            .unwrap_or_else(|| panic!("{task}: no backup in {r}"))
            .to_string();
        let b = Path::new(&b);
        let file = b.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            file.starts_with(&format!("{name}.")) && file.ends_with('~'),
            "{file}"
        );
        assert!(std::fs::symlink_metadata(b).unwrap().is_file(), "{file}");
        assert_eq!(std::fs::read_to_string(b).unwrap(), old);
        assert_eq!(uid_of(b), uid, "a backup keeps the old file's owner");
    }
}

/// Waits for `path` to appear while `child` runs; fails when the child ends first.
fn wait_for(path: &Path, child: &mut std::process::Child) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while !path.exists() {
        if let Some(status) = child.try_wait().unwrap() {
            panic!(
                "the deploy ended ({status}) before {} appeared",
                path.display()
            );
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{} never appeared",
            path.display()
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// Every process on this machine (the test hosts included) whose command line holds
/// `needle`, as (pid, command line).
fn command_lines_holding(needle: &[u8]) -> Vec<(String, String)> {
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap() {
        let e = e.unwrap();
        let pid = e.file_name().to_string_lossy().into_owned();
        if !pid.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        // A process may end while it is read.
        let Ok(cmdline) = std::fs::read(e.path().join("cmdline")) else {
            continue;
        };
        if cmdline.windows(needle.len()).any(|w| w == needle) {
            found.push((pid, text(&cmdline).replace('\0', " ")));
        }
    }
    found
}

#[test]
fn environment_values_appear_in_no_command_line_on_the_host() {
    let lab = Lab::new();
    let s = sudo_host(&lab, "ysecret", "rustle-y4");
    let h = &s.host;
    lab.trust(&[h]);
    let secret = format!(
        "rustle-secret-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos()
    );
    // Where the tasks say they are running and wait to be let go: root and the login
    // user both write here.
    let sync = lab.dir.path().join("sync");
    std::fs::create_dir(&sync).unwrap();
    std::fs::set_permissions(&sync, std::fs::Permissions::from_mode(0o777)).unwrap();
    let at = sync.display().to_string();
    let task = |phase: &str| {
        format!(
            "printf %s \"$RUSTLE_SECRET\" > {at}/seen-{phase}; : > {at}/ready-{phase}; \
             while [ ! -e {at}/go-{phase} ]; do sleep 0.1; done"
        )
    };
    let d = Deployer::new();
    let plan = d.plan(&json!({
        "format": "rustle-deploy-plan", "version": 1,
        "plays": [{"name": "p", "hosts": ["all"], "become": true, "gather_facts": false,
          "environment": {"RUSTLE_SECRET": secret},
          "tasks": [
            {"name": "as root", "module": "shell", "args": {"cmd": task("root")}},
            {"name": "as a become_user", "module": "shell", "args": {"cmd": task("user")}, "become_user": h.user},
            {"name": "argv", "module": "command", "args": {"argv": ["sh", "-c", task("argv")]}, "become_user": h.user}
        ]}]
    }));
    let inv = lab.inventory(&[h]);
    let mut child = Command::new(env!("CARGO_BIN_EXE_rustle-deploy"))
        .args(["-i", inv.to_str().unwrap(), plan.to_str().unwrap()])
        .args(["--strategy", "ssh", "--known-hosts"])
        .arg(&lab.known_hosts)
        .env("HOME", d.home.path())
        .env_remove("SSH_AUTH_SOCK")
        .env_remove("RUSTLE_DEPLOY_KEY")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // While each command runs (it waits for us), every command line on the machine is
    // read: sudo's, the shells', the command's own.
    let mut seen = Vec::new();
    for phase in ["root", "user", "argv"] {
        wait_for(&sync.join(format!("ready-{phase}")), &mut child);
        seen.extend(command_lines_holding(secret.as_bytes()));
        std::fs::write(sync.join(format!("go-{phase}")), "").unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        seen.is_empty(),
        "environment values in process command lines: {seen:#?}"
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    // The commands did get the value.
    for phase in ["root", "user", "argv"] {
        assert_eq!(
            std::fs::read_to_string(sync.join(format!("seen-{phase}"))).unwrap(),
            secret
        );
    }
    assert_eq!(uid_of(&sync.join("seen-root")), 0);
    assert_eq!(uid_of(&sync.join("seen-user")), uid_of(&h.home));
}

#[test]
fn file_modules_under_become_user_act_as_that_user() {
    let lab = Lab::new();
    let s = sudo_host(&lab, "ybecome", "rustle-y5");
    let h = &s.host;
    // Another user on the host, with a home of its own (its sshd is not used).
    let alice = lab.start("yalice", "rustle-y6");
    lab.trust(&[h]);
    // Root's own directory: nobody else may create anything in it.
    let locked = lab.dir.path().join("locked");
    std::fs::create_dir(&locked).unwrap();
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o700)).unwrap();
    let (l, a) = (locked.display(), alice.home.display());
    let d = Deployer::new();
    let plan = d.plan(&json!({
        "format": "rustle-deploy-plan", "version": 1,
        "plays": [{"name": "p", "hosts": ["all"], "become": true, "become_user": alice.user, "gather_facts": false, "tasks": [
            {"name": "locked copy", "module": "copy", "args": {"content": "x\n", "dest": format!("{l}/copy")}, "ignore_errors": true},
            {"name": "locked template", "module": "template", "args": {"src": "t.j2", "dest": format!("{l}/template")}, "ignore_errors": true},
            {"name": "locked dir", "module": "file", "args": {"path": format!("{l}/dir"), "state": "directory"}, "ignore_errors": true},
            {"name": "locked touch", "module": "file", "args": {"path": format!("{l}/touched"), "state": "touch"}, "ignore_errors": true},
            {"name": "locked link", "module": "file", "args": {"src": "/etc/hostname", "dest": format!("{l}/link"), "state": "link"}, "ignore_errors": true},
            {"name": "locked lines", "module": "lineinfile", "args": {"path": format!("{l}/lines"), "line": "x", "create": true}, "ignore_errors": true},
            {"name": "locked block", "module": "blockinfile", "args": {"path": format!("{l}/block"), "block": "x", "create": true}, "ignore_errors": true},
            {"name": "copy", "module": "copy", "args": {"content": "x\n", "dest": format!("{a}/copy")}},
            {"name": "template", "module": "template", "args": {"src": "t.j2", "dest": format!("{a}/template")}},
            {"name": "dir", "module": "file", "args": {"path": format!("{a}/dir"), "state": "directory"}},
            {"name": "touch", "module": "file", "args": {"path": format!("{a}/touched"), "state": "touch"}},
            {"name": "link", "module": "file", "args": {"src": "copy", "dest": format!("{a}/link"), "state": "link"}},
            {"name": "lines", "module": "lineinfile", "args": {"path": format!("{a}/lines"), "line": "x", "create": true}},
            {"name": "stat", "module": "stat", "args": {"path": format!("{a}/copy")}, "register": "st"},
            {"name": "whoami", "module": "command", "args": {"_raw_params": "id -un"}, "register": "who"},
            {"name": "check", "module": "assert", "args": {"that": [format!("st.stat.pw_name == '{}'", alice.user), format!("who.stdout == '{}'", alice.user)]}}
          ]},
          {"name": "lookup", "hosts": ["all"], "become": true, "gather_facts": false, "tasks": [
            // Not a user: the name's '.' must not match the '-' of the login user's.
            {"name": "pattern user", "module": "command", "args": {"_raw_params": "id -un"}, "become_user": h.user.replace('-', "."), "ignore_errors": true}
          ]}],
        "files": {"t.j2": {"content": "{{ inventory_hostname }}\n"}}
    }));
    let (out, r) = d.deploy(&lab, &[h], &plan, &["--strategy", "ssh"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    // As alice, root's directory is closed: every write there fails with the host's
    // own words, and nothing was made in it.
    for name in [
        "locked copy",
        "locked template",
        "locked dir",
        "locked touch",
        "locked link",
        "locked lines",
        "locked block",
    ] {
        let res = result(&r, &h.name, name);
        assert_eq!(res["failed"], true, "{name}: {res}");
        let msg = res["msg"].as_str().unwrap_or_default();
        assert!(msg.contains("Permission denied"), "{name}: {msg}");
    }
    assert_eq!(std::fs::read_dir(&locked).unwrap().count(), 0);
    // In alice's home, what the modules make is alice's.
    let alice_uid = uid_of(&alice.home);
    for f in ["copy", "template", "dir", "touched", "link", "lines"] {
        assert_eq!(uid_of(&alice.home.join(f)), alice_uid, "{f}");
    }
    assert_eq!(
        std::fs::read_to_string(alice.home.join("template")).unwrap(),
        format!("{}\n", h.name)
    );
    let res = result(&r, &h.name, "pattern user");
    assert_eq!(res["failed"], true, "{res}");
    let msg = res["msg"].as_str().unwrap_or_default();
    assert!(msg.contains("no such user"), "{msg}");
}

#[test]
fn paths_and_owners_that_look_like_options_are_operands() {
    let lab = Lab::new();
    let h = lab.start("ydash", "rustle-y7");
    lab.trust(&[&h]);
    let d = Deployer::new();
    // Relative paths are the login's home's; these begin with '-'.
    let plan = d.plan(&json!({
        "format": "rustle-deploy-plan", "version": 1,
        "plays": [{"name": "p", "hosts": ["all"], "gather_facts": false, "tasks": [
            {"name": "dir", "module": "file", "args": {"path": "-opt", "state": "directory", "mode": "0750"}},
            {"name": "file", "module": "copy", "args": {"content": "x\n", "dest": "-opt/f", "mode": "0640", "backup": true}},
            {"name": "again", "module": "copy", "args": {"content": "y\n", "dest": "-opt/f", "backup": true}},
            {"name": "tree", "module": "file", "args": {"path": "-opt", "state": "directory", "recurse": true, "mode": "0700"}},
            {"name": "lines", "module": "lineinfile", "args": {"path": "-opt/l", "line": "x", "create": true, "mode": "0600"}},
            // GNU chown would read this owner as its --reference option.
            {"name": "owner", "module": "copy", "args": {"content": "z\n", "dest": "g", "owner": "--reference=-opt/f"}, "ignore_errors": true}
        ]}]
    }));
    let (out, r) = d.deploy(&lab, &[&h], &plan, &["--strategy", "ssh"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let opt = h.home.join("-opt");
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode(&opt), 0o700);
    assert_eq!(std::fs::read_to_string(opt.join("f")).unwrap(), "y\n");
    assert_eq!(mode(&opt.join("f")), 0o700);
    assert_eq!(std::fs::read_to_string(opt.join("l")).unwrap(), "x\n");
    let res = result(&r, &h.name, "owner");
    assert_eq!(res["failed"], true, "{res}");
    let msg = res["msg"].as_str().unwrap_or_default();
    assert!(msg.contains("invalid user"), "{msg}");
    assert!(!h.home.join("g").exists());
}

/// A plan whose first task prints 20 MiB (registered, so its event carries it twice:
/// `stdout` and `stdout_lines`), then tasks that use it and go on.
fn big_output_plan() -> Value {
    json!({
        "format": "rustle-deploy-plan", "version": 1,
        "plays": [{"name": "big", "hosts": ["all"], "tasks": [
            {"name": "big", "module": "shell", "args": {"cmd": "head -c 20971520 /dev/zero | tr '\\0' x"},
             "register": "big", "changed_when": false},
            {"name": "size", "module": "debug", "args": {"msg": "{{ big.stdout | length }}"}},
            {"name": "after", "module": "copy", "args": {"content": "after\n", "dest": "{{ ansible_env_home }}/after"}}
        ]}]
    })
}

#[test]
fn a_task_printing_20_mib_still_deploys_in_binary_and_ssh_mode() {
    let lab = Lab::new();
    let bin = lab.start("pbig", "rustle-p0");
    let ssh = lab.start("pbigssh", "rustle-p1");
    lab.trust(&[&bin, &ssh]);
    let d = Deployer::new();
    let plan = d.plan(&big_output_plan());
    for (h, extra) in [(&bin, &[][..]), (&ssh, &["--strategy", "ssh"][..])] {
        let (out, r) = d.deploy(&lab, &[h], &plan, extra);
        let what = format!("{extra:?}: {}{}", text(&out.stdout), text(&out.stderr));
        assert_eq!(out.status.code(), Some(0), "{what}");
        assert_eq!(r["hosts"][&h.name]["status"], "ok", "{what}");
        // The host saw all of it; the next tasks ran.
        assert_eq!(result(&r, &h.name, "size")["msg"], 20971520, "{what}");
        assert_eq!(
            std::fs::read_to_string(h.home.join("after")).unwrap(),
            "after\n"
        );
        let big = &tasks(&r, &h.name)
            .iter()
            .find(|t| t["name"] == "big")
            .unwrap();
        assert_eq!(big["status"], "ok", "{what}");
        // The report keeps it whole where it fits, or its small fields and a note.
        let res = &big["result"];
        match res["stdout"].as_str() {
            Some(s) => assert_eq!(s.len(), 20 << 20),
            None => {
                assert_eq!(res["rc"], 0, "{res}");
                assert!(
                    res["rustle_truncated"].as_str().unwrap().contains("stdout"),
                    "{res}"
                );
            }
        }
    }
}

#[test]
fn ssh_mode_keeps_a_commands_whole_stderr_and_fails_only_the_task_that_sends_too_much() {
    let lab = Lab::new();
    let h = lab.start("pnoisy", "rustle-p2");
    lab.trust(&[&h]);
    let d = Deployer::new();
    let plan = d.plan(&json!({
        "format": "rustle-deploy-plan", "version": 1,
        "plays": [{"name": "noisy", "hosts": ["all"], "tasks": [
            {"name": "noisy", "module": "shell", "args": {"cmd": "head -c 100000 /dev/zero | tr '\\0' e >&2"},
             "register": "noisy", "changed_when": false},
            {"name": "whole", "module": "debug", "args": {"msg": "{{ noisy.stderr | length }}"}},
            {"name": "flood", "module": "command", "args": {"_raw_params": "head -c 140000000 /dev/zero"},
             "ignore_errors": true},
            {"name": "after", "module": "copy", "args": {"content": "after\n", "dest": "{{ ansible_env_home }}/after"}}
        ]}]
    }));
    let (out, r) = d.deploy(&lab, &[&h], &plan, &["--strategy", "ssh"]);
    let what = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "{what}");
    assert_eq!(r["hosts"][&h.name]["status"], "ok", "{what}");
    assert_eq!(result(&r, &h.name, "whole")["msg"], 100000, "{what}");
    let flood = tasks(&r, &h.name)
        .iter()
        .find(|t| t["name"] == "flood")
        .unwrap();
    assert_eq!(flood["status"], "failed", "{flood}");
    assert!(
        flood["result"]["msg"].as_str().unwrap().contains("128 MiB"),
        "{flood}"
    );
    assert_eq!(
        std::fs::read_to_string(h.home.join("after")).unwrap(),
        "after\n",
        "the host was given up after one command sent too much"
    );
}

#[test]
fn attribute_changes_never_follow_a_link_swapped_in_while_they_run() {
    use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
    let lab = Lab::new();
    let s = sudo_host(&lab, "pattr", "rustle-p4");
    let h = &s.host;
    lab.trust(&[h]);
    let (uid, gid) = (uid_of(&h.home), gid_of(&h.home));
    // A tree of the login user's, which the plan makes 0755 all through, as root.
    let tree = h.home.join("tree");
    let sub = tree.join("sub");
    let bulk = tree.join("bulk");
    std::fs::create_dir_all(&sub).unwrap();
    std::fs::create_dir_all(&bulk).unwrap();
    std::fs::write(sub.join("f"), "mine").unwrap();
    for i in 0..300 {
        std::fs::write(bulk.join(format!("file-{i:04}")), "x").unwrap();
    }
    for entry in [&tree, &sub, &bulk] {
        std::fs::set_permissions(entry, std::fs::Permissions::from_mode(0o700)).unwrap();
    }
    Command::new("chown")
        .args(["-R", &format!("{uid}:{gid}")])
        .arg(&tree)
        .status()
        .unwrap();
    let victim = lab.dir.path().join("victim");
    std::fs::write(&victim, "ROOT ONLY\n").unwrap();
    std::fs::set_permissions(&victim, std::fs::Permissions::from_mode(0o600)).unwrap();

    // The user waits for root to start changing the tree (its top directory's mode
    // changes), then for the next read of `sub` (root listing what to chmod), and
    // swaps `sub/f` for a link to the victim at once.
    let inotify = Inotify::init(InitFlags::empty()).unwrap();
    let top = inotify
        .add_watch(&tree, AddWatchFlags::IN_ATTRIB | AddWatchFlags::IN_ONLYDIR)
        .unwrap();
    let listed = inotify
        .add_watch(
            &sub,
            AddWatchFlags::IN_CLOSE_NOWRITE | AddWatchFlags::IN_ONLYDIR,
        )
        .unwrap();
    let (f, tmp, target) = (sub.join("f"), sub.join(".swap"), victim.clone());
    let racer = std::thread::spawn(move || {
        let mut armed = false;
        loop {
            for ev in inotify.read_events().unwrap() {
                if ev.wd == top && ev.name.is_none() {
                    armed = true;
                } else if armed && ev.wd == listed && ev.name.is_none() {
                    std::os::unix::fs::symlink(&target, &tmp).unwrap();
                    std::os::unix::fs::lchown(&tmp, Some(uid), Some(gid)).unwrap();
                    std::fs::rename(&tmp, &f).unwrap();
                    return;
                }
            }
        }
    });

    let d = Deployer::new();
    let plan = d.plan(&json!({
        "format": "rustle-deploy-plan", "version": 1,
        "plays": [{"name": "p", "hosts": ["all"], "become": true, "gather_facts": false, "tasks": [
            {"name": "tree", "module": "file", "args": {"path": tree.to_str().unwrap(), "state": "directory",
             "recurse": true, "mode": "0755"}}
        ]}]
    }));
    let (out, _) = d.deploy(&lab, &[h], &plan, &["--strategy", "ssh"]);
    let what = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(
        racer.is_finished()
            && std::fs::symlink_metadata(sub.join("f"))
                .unwrap()
                .is_symlink(),
        "the race did not run: {what}"
    );
    racer.join().unwrap();
    let v = std::fs::metadata(&victim).unwrap();
    assert_eq!(
        (v.permissions().mode() & 0o7777, uid_of(&victim)),
        (0o600, 0),
        "root chmodded through a link swapped in while it ran: {what}"
    );
    // The rest of the tree was done; the swapped name is the task's error.
    assert_eq!(
        std::fs::metadata(bulk.join("file-0000"))
            .unwrap()
            .permissions()
            .mode()
            & 0o7777,
        0o755
    );
    assert!(what.contains("symbolic link"), "{what}");
}
