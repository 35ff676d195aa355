//! How a host's platform is found, end to end against real `sshd` test hosts: probed
//! with `uname -sm` when the inventory says nothing, cached in the deployer's
//! `~/.rustle/targets.json` (and forgotten when the runner cannot execute there), and
//! hosts whose platform has no runner reported by name while the others deploy.
//!
//! Needs root, `openssh-server`, the x86_64 and aarch64 Linux runners and the x86_64
//! macOS runner (`cargo xtask test` builds them all).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

// Shared with other test files; not every helper is used here.
#[allow(dead_code)]
#[path = "support/sshd.rs"]
mod sshd;

use serde_json::{Value, json};
use sshd::Lab;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn deploy(home: &Path, lab: &Lab, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rustle-deploy"))
        .args(args)
        .arg("--known-hosts")
        .arg(&lab.known_hosts)
        .env("HOME", home)
        .env_remove("SSH_AUTH_SOCK")
        .env_remove("RUSTLE_DEPLOY_KEY")
        .env_remove("RUSTLE_RUNNER_DIR")
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}--- stderr\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn plan(home: &Path) -> PathBuf {
    let p = home.join("plan.json");
    let plan = json!({
        "format": "rustle-deploy-plan", "version": 1,
        "plays": [{"name": "lab", "hosts": ["all"], "tasks": [
            {"name": "hello", "module": "copy", "args": {"content": "hello {{ inventory_hostname }}\n", "dest": "{{ ansible_env_home }}/hello"}}
        ]}]
    });
    std::fs::write(&p, serde_json::to_vec(&plan).unwrap()).unwrap();
    p
}

fn cache(home: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(home.join(".rustle/targets.json")).unwrap()).unwrap()
}

#[test]
fn an_unknown_host_is_probed_once_and_the_answer_cached() {
    let lab = Lab::new();
    let mut h = lab.start("probed", "rustle-tp0");
    lab.trust(&[&h]);
    let inv = lab.inventory(&[&h]);
    let home = tempfile::tempdir().unwrap();
    let plan = plan(home.path());
    let args = ["-v", "-i", inv.to_str().unwrap(), plan.to_str().unwrap()];

    let first = deploy(home.path(), &lab, &args);
    assert_eq!(first.status.code(), Some(0), "{}", text(&first));
    assert_eq!(
        std::fs::read_to_string(h.home.join("hello")).unwrap(),
        "hello probed\n"
    );
    let stderr = String::from_utf8_lossy(&first.stderr);
    assert!(
        stderr.contains("host 'probed': probed `uname -sm`: Linux x86_64"),
        "{}",
        text(&first)
    );
    let key = format!("127.0.0.1:{}", h.port);
    let c = cache(home.path());
    assert_eq!(c[&key]["triple"], "x86_64-unknown-linux-musl", "{c}");
    assert_eq!(c[&key]["uname"], "Linux x86_64", "{c}");

    // The second deploy takes the cached answer and asks nothing.
    let second = deploy(home.path(), &lab, &args);
    assert_eq!(second.status.code(), Some(0), "{}", text(&second));
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(stderr.contains("(cached in"), "{}", text(&second));
    assert!(!stderr.contains("probed `uname"), "{}", text(&second));

    // The cache alone decides, with the host down: packing for it needs no connection,
    // and a cached answer of another platform is what gets packed.
    let mut c = cache(home.path());
    c[&key]["triple"] = json!("aarch64-unknown-linux-musl");
    std::fs::write(
        home.path().join(".rustle/targets.json"),
        serde_json::to_vec(&c).unwrap(),
    )
    .unwrap();
    h.stop();
    let out_dir = home.path().join("packed");
    let compile = |extra: &[&str]| {
        let mut a = vec![
            "-i",
            inv.to_str().unwrap(),
            plan.to_str().unwrap(),
            "--compile-only",
            "-o",
            out_dir.to_str().unwrap(),
            "--connect-timeout",
            "3",
        ];
        a.extend_from_slice(extra);
        deploy(home.path(), &lab, &a)
    };
    let packed = compile(&[]);
    assert_eq!(packed.status.code(), Some(0), "{}", text(&packed));
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(out_dir.join("deployment.json")).unwrap()).unwrap();
    assert_eq!(
        manifest["hosts"]["probed"]["triple"], "aarch64-unknown-linux-musl",
        "{manifest}"
    );

    // --rebuild asks again; the host being down, it is reported and gets nothing.
    let again = compile(&["--rebuild"]);
    assert_eq!(again.status.code(), Some(3), "{}", text(&again));
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(
        stderr.contains(
            "host 'probed' not packed: no runner for this host: cannot ask it for its platform"
        ),
        "{}",
        text(&again)
    );
}

#[test]
fn hosts_without_a_runner_run_their_tasks_over_ssh_and_the_others_deploy() {
    let lab = Lab::new();
    let h = lab.start("linux", "rustle-tp1");
    let r = lab.start("riscv", "rustle-tp2");
    lab.trust(&[&h, &r]);
    let inv = lab.inventory(&[&h, &r]);
    // The riscv host says its platform in the inventory; the BSD one too, at a port
    // where nothing listens. Neither has a runner: both fall back to SSH mode, which
    // the reachable one completes and the other fails to reach.
    let nobody = sshd::free_port();
    let mut text_inv = std::fs::read_to_string(&inv).unwrap().replace(
        "riscv ansible_env_home",
        "riscv rustle_target=riscv64gc-unknown-linux-gnu ansible_env_home",
    );
    text_inv.push_str(&format!(
        "bsd ansible_host=127.0.0.1 ansible_port={nobody} ansible_env_home=/nonexistent ansible_system=FreeBSD\n"
    ));
    std::fs::write(&inv, text_inv).unwrap();
    let home = tempfile::tempdir().unwrap();
    let plan = plan(home.path());
    let report = home.path().join("report.json");
    let out = deploy(
        home.path(),
        &lab,
        &[
            "-i",
            inv.to_str().unwrap(),
            plan.to_str().unwrap(),
            "--report",
            report.to_str().unwrap(),
        ],
    );
    // Exit 3: the BSD host was unreachable. The others did their tasks.
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert_eq!(
        std::fs::read_to_string(h.home.join("hello")).unwrap(),
        "hello linux\n"
    );
    assert_eq!(
        std::fs::read_to_string(r.home.join("hello")).unwrap(),
        "hello riscv\n"
    );
    let all = text(&out);
    assert!(
        all.contains("host 'riscv': no runner for this host: rustle_target=riscv64gc-unknown-linux-gnu has no runner; its tasks run over SSH"),
        "{all}"
    );
    assert!(
        all.contains("host 'bsd': no runner for this host: ansible_system=FreeBSD has no runner; its tasks run over SSH"),
        "{all}"
    );
    let rep: Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert_eq!(rep["hosts"]["linux"]["status"], "ok", "{rep}");
    assert_eq!(rep["hosts"]["riscv"]["status"], "ok", "{rep}");
    assert_eq!(rep["hosts"]["bsd"]["status"], "unreachable", "{rep}");
    // No runner went to the riscv host: SSH mode keeps no release there.
    assert!(!r.home.join(".rustle/cache").exists());
    // Only the lab's Linux host was probed; the others declared their platform.
    let c = cache(home.path());
    assert_eq!(c.as_object().unwrap().len(), 1, "{c}");
}

#[test]
fn a_cached_platform_that_proves_wrong_is_forgotten() {
    let lab = Lab::new();
    let h = lab.start("moved", "rustle-tp3");
    lab.trust(&[&h]);
    let inv = lab.inventory(&[&h]);
    let home = tempfile::tempdir().unwrap();
    let plan = plan(home.path());
    let args = ["-i", inv.to_str().unwrap(), plan.to_str().unwrap()];
    // The cache says macOS (say the machine was reinstalled since): the packed macOS
    // runner cannot execute on this Linux host.
    let key = format!("127.0.0.1:{}", h.port);
    std::fs::create_dir_all(home.path().join(".rustle")).unwrap();
    std::fs::write(
        home.path().join(".rustle/targets.json"),
        serde_json::to_vec(
            &json!({&key: {"uname": "Darwin x86_64", "triple": "x86_64-apple-darwin"}}),
        )
        .unwrap(),
    )
    .unwrap();
    let first = deploy(home.path(), &lab, &args);
    assert_eq!(first.status.code(), Some(3), "{}", text(&first));
    let stderr = String::from_utf8_lossy(&first.stderr);
    assert!(
        stderr.contains("host 'moved': the x86_64-apple-darwin runner cannot execute there; its cached platform is forgotten"),
        "{}",
        text(&first)
    );
    assert!(
        cache(home.path()).get(&key).is_none(),
        "{}",
        cache(home.path())
    );
    assert!(!h.home.join("hello").exists());
    // The next deploy asks the host, and deploys.
    let second = deploy(home.path(), &lab, &["-v", args[0], args[1], args[2]]);
    assert_eq!(second.status.code(), Some(0), "{}", text(&second));
    assert!(
        String::from_utf8_lossy(&second.stderr).contains("probed `uname -sm`: Linux x86_64"),
        "{}",
        text(&second)
    );
    assert_eq!(
        cache(home.path())[&key]["triple"],
        "x86_64-unknown-linux-musl"
    );
    assert!(h.home.join("hello").exists());
}
