//! What the deployer trusts a host for, against real OpenSSH `sshd` test hosts on
//! loopback: host keys (another algorithm for a known host, `@revoked`,
//! `@cert-authority`, hashed known_hosts entries), a command that exits without reading
//! its stdin, and hosts that send more than the deployer takes.
//!
//! Needs root (test users) and `openssh-server`, like `ssh_deploy.rs`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

// Shared with the deploy tests; this one needs only part of it.
#[allow(dead_code)]
#[path = "support/sshd.rs"]
mod sshd;

use rustle_deploy::ssh::{self, SshError, Target};
use serde_json::json;
use sshd::{Lab, Sshd};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

fn target(lab: &Lab, h: &Sshd, accept_new: bool) -> Target {
    Target {
        name: h.name.clone(),
        address: "127.0.0.1".into(),
        port: h.port,
        user: h.user.clone(),
        identity_files: vec![lab.client_key.clone()],
        known_hosts: lab.known_hosts.clone(),
        accept_new,
        connect_timeout: Duration::from_secs(10),
    }
}

/// Connects and runs `id -un`; the login user's name on success.
async fn login(t: &Target) -> Result<String, SshError> {
    let conn = ssh::connect(t).await?;
    let mut lines = Vec::new();
    let (code, stderr) = conn
        .exec("id -un", b"", &mut |l| lines.push(l.to_string()))
        .await?;
    assert_eq!(code, Some(0), "{stderr}");
    conn.close().await;
    Ok(lines.join("\n"))
}

/// Makes a host offer only a fresh key of type `kind` (`ecdsa`, `ed25519`), as a
/// machine in the middle would, and restarts it. Returns the new public key line.
fn rekey(lab: &Lab, h: &mut Sshd, kind: &str) -> String {
    let base = lab.dir.path().join(&h.name);
    let key = base.join(format!("host_key_{kind}"));
    let _ = std::fs::remove_file(&key);
    let _ = std::fs::remove_file(key.with_extension("pub"));
    let out = Command::new("ssh-keygen")
        .args(["-q", "-t", kind, "-N", "", "-f"])
        .arg(&key)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let config = base.join("sshd_config");
    let old = std::fs::read_to_string(&config).unwrap();
    let new: String = old
        .lines()
        .map(|l| {
            if l.starts_with("HostKey ") {
                format!("HostKey {}\n", key.display())
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    std::fs::write(&config, new).unwrap();
    h.stop();
    h.start();
    let public = std::fs::read_to_string(key.with_extension("pub")).unwrap();
    public
        .split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[tokio::test]
async fn a_known_host_offering_a_key_of_another_algorithm_is_refused_even_with_accept_new() {
    let lab = Lab::new();
    let mut h = lab.start("algo", "rustle-d1");
    lab.trust(&[&h]);
    assert_eq!(login(&target(&lab, &h, false)).await.unwrap(), "rustle-d1");
    let before = std::fs::read_to_string(&lab.known_hosts).unwrap();

    // The host's ed25519 key is recorded; now it offers an ECDSA key only.
    rekey(&lab, &mut h, "ecdsa");
    for accept_new in [true, false] {
        match login(&target(&lab, &h, accept_new)).await {
            Err(e @ SshError::ChangedHostKey { .. }) => {
                let msg = e.to_string();
                assert!(
                    msg.contains("ecdsa-sha2-nistp256") && msg.contains("ssh-ed25519"),
                    "{msg}"
                );
                assert!(msg.contains("line 1"), "{msg}");
            }
            other => panic!("accept_new={accept_new}: expected a changed key, got {other:?}"),
        }
    }
    assert_eq!(
        std::fs::read_to_string(&lab.known_hosts).unwrap(),
        before,
        "the other key was recorded"
    );
}

#[tokio::test]
async fn hashed_known_hosts_entries_are_read_and_still_make_a_host_known() {
    let lab = Lab::new();
    let mut h = lab.start("hashed", "rustle-d2");
    lab.trust(&[&h]);
    let out = Command::new("ssh-keygen")
        .arg("-H")
        .arg("-f")
        .arg(&lab.known_hosts)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let hashed = std::fs::read_to_string(&lab.known_hosts).unwrap();
    assert!(
        hashed.starts_with("|1|") && !hashed.contains("127.0.0.1"),
        "{hashed}"
    );
    assert_eq!(login(&target(&lab, &h, false)).await.unwrap(), "rustle-d2");

    // A host recorded only under its hashed name is not new either.
    rekey(&lab, &mut h, "ecdsa");
    match login(&target(&lab, &h, true)).await {
        Err(SshError::ChangedHostKey { line, .. }) => assert_eq!(line, 1),
        other => panic!("expected a changed key, got {other:?}"),
    }
    assert_eq!(std::fs::read_to_string(&lab.known_hosts).unwrap(), hashed);
}

#[tokio::test]
async fn a_revoked_host_key_is_refused_even_when_it_is_also_known() {
    let lab = Lab::new();
    let h = lab.start("revoked", "rustle-d3");
    let name = format!("[127.0.0.1]:{}", h.port);
    // Known on line 1, revoked on line 3 (after an unrelated line).
    std::fs::write(
        &lab.known_hosts,
        format!(
            "{name} {key}\n# revoked after a compromise\n@revoked {name} {key}\n",
            key = h.host_key_pub
        ),
    )
    .unwrap();
    for accept_new in [false, true] {
        match login(&target(&lab, &h, accept_new)).await {
            Err(e @ SshError::RevokedHostKey { .. }) => {
                assert!(e.to_string().contains("line 3"), "{e}");
            }
            other => panic!("accept_new={accept_new}: expected a revoked key, got {other:?}"),
        }
    }

    // Revoked for every host, and recorded nowhere: not a new key to learn either.
    let only_revoked = format!("@revoked * {}\n", h.host_key_pub);
    std::fs::write(&lab.known_hosts, &only_revoked).unwrap();
    match login(&target(&lab, &h, true)).await {
        Err(SshError::RevokedHostKey { line, .. }) => assert_eq!(line, 1),
        other => panic!("expected a revoked key, got {other:?}"),
    }
    assert_eq!(
        std::fs::read_to_string(&lab.known_hosts).unwrap(),
        only_revoked
    );
}

#[tokio::test]
async fn a_cert_authority_line_is_not_a_host_key_and_no_plain_key_replaces_it() {
    let lab = Lab::new();
    let h = lab.start("ca", "rustle-d4");
    // A host meant to show a certificate signed by this CA key (here, by mistake or by
    // design, the very key the host offers plainly).
    let ca = format!(
        "@cert-authority [127.0.0.1]:{} {}\n",
        h.port, h.host_key_pub
    );
    std::fs::write(&lab.known_hosts, &ca).unwrap();
    for accept_new in [false, true] {
        match login(&target(&lab, &h, accept_new)).await {
            Err(SshError::Connect { reason, .. }) => {
                assert!(
                    reason.contains("@cert-authority") && reason.contains("line 1"),
                    "{reason}"
                );
            }
            other => panic!("accept_new={accept_new}: expected a refusal, got {other:?}"),
        }
    }
    assert_eq!(std::fs::read_to_string(&lab.known_hosts).unwrap(), ca);
}

/// Every path under `dir` with its type, size, mode and modification time, and every
/// entry of the temporary directory owned by `uid`: what a deploy would change.
fn snapshot(dir: &Path, uid: u32) -> Vec<String> {
    use std::os::unix::fs::MetadataExt;
    fn walk(dir: &Path, out: &mut Vec<String>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries {
            let e = e.unwrap();
            let m = std::fs::symlink_metadata(e.path()).unwrap();
            out.push(format!(
                "{} {:o} {} {}.{}",
                e.path().display(),
                m.mode(),
                m.size(),
                m.mtime(),
                m.mtime_nsec()
            ));
            if m.is_dir() {
                walk(&e.path(), out);
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, &mut out);
    for e in std::fs::read_dir(std::env::temp_dir()).unwrap().flatten() {
        if e.metadata().is_ok_and(|m| m.uid() == uid) {
            out.push(format!("tmp {}", e.path().display()));
        }
    }
    out.sort();
    out
}

fn uid_of(user: &str) -> u32 {
    let out = Command::new("id").args(["-u", user]).output().unwrap();
    text(&out.stdout).trim().parse().unwrap()
}

/// Runs the deployer binary with a private home.
fn deploy(lab: &Lab, home: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rustle-deploy"))
        .args(args)
        .arg("--known-hosts")
        .arg(&lab.known_hosts)
        .env("HOME", home)
        .env_remove("SSH_AUTH_SOCK")
        .env_remove("RUSTLE_DEPLOY_KEY")
        .output()
        .unwrap()
}

#[test]
fn a_changed_host_key_stops_the_deploy_before_anything_reaches_the_host() {
    let lab = Lab::new();
    let mut h = lab.start("victim", "rustle-d5");
    lab.trust(&[&h]);
    let inv = lab.inventory(&[&h]);
    let home = tempfile::tempdir().unwrap();
    let plan: PathBuf = home.path().join("plan.json");
    std::fs::write(
        &plan,
        serde_json::to_vec(&json!({
            "format": "rustle-deploy-plan", "version": 1,
            "plays": [{"name": "p", "hosts": ["all"], "tasks": [
                {"name": "mark", "module": "copy", "args": {"content": "marked\n", "dest": "{{ ansible_env_home }}/mark"}}
            ]}]
        }))
        .unwrap(),
    )
    .unwrap();
    let args = [
        "-i",
        inv.to_str().unwrap(),
        plan.to_str().unwrap(),
        "--accept-new-host-keys",
    ];
    let first = deploy(&lab, home.path(), &args);
    assert_eq!(first.status.code(), Some(0), "{}", text(&first.stderr));
    assert!(h.root().join("current").exists());
    let uid = uid_of(&h.user);
    let before = snapshot(&h.home, uid);
    let known = std::fs::read_to_string(&lab.known_hosts).unwrap();

    // A machine in the middle with a key of the same algorithm, then of another one.
    for kind in ["ed25519", "ecdsa"] {
        rekey(&lab, &mut h, kind);
        let out = deploy(&lab, home.path(), &args);
        assert_eq!(out.status.code(), Some(3), "{kind}: {}", text(&out.stderr));
        let stdout = text(&out.stdout);
        assert!(stdout.contains("HOST KEY CHANGED"), "{kind}: {stdout}");
        assert!(
            stdout.contains(lab.known_hosts.to_str().unwrap()),
            "{stdout}"
        );
        // Nothing was uploaded, installed or run there: no release, no cache entry, no
        // temporary directory, not a file touched.
        assert_eq!(snapshot(&h.home, uid), before, "{kind}: the host changed");
        assert_eq!(
            std::fs::read_to_string(&lab.known_hosts).unwrap(),
            known,
            "{kind}: a key was recorded"
        );
    }
}

#[tokio::test]
async fn a_command_that_exits_without_reading_its_stdin_returns_its_stderr_at_once() {
    let lab = Lab::new();
    let h = lab.start("early", "rustle-d6");
    lab.trust(&[&h]);
    let conn = ssh::connect(&target(&lab, &h, false)).await.unwrap();
    // Far more than OpenSSH's 2 MB window: the host stops reading after none of it.
    let stdin = vec![b'x'; 8 << 20];
    // The bound only keeps a regression from hanging the test run; the call must
    // return as soon as the host closes the channel.
    let guard = Duration::from_secs(60);
    let mut lines = Vec::new();
    let (code, stderr) = tokio::time::timeout(
        guard,
        conn.exec("echo 'disk full' >&2; exit 5", &stdin, &mut |l| {
            lines.push(l.to_string())
        }),
    )
    .await
    .expect("exec waited for window space after the host had exited")
    .unwrap();
    assert_eq!(code, Some(5));
    assert_eq!(stderr.trim(), "disk full");

    let (code, out, err) = tokio::time::timeout(
        guard,
        conn.exec_raw("echo partial; echo 'no space left' >&2; exit 6", &stdin),
    )
    .await
    .expect("exec_raw waited for window space after the host had exited")
    .unwrap();
    assert_eq!(code, Some(6));
    assert_eq!(text(&out), "partial\n");
    assert_eq!(text(&err).trim(), "no space left");

    // A command that does read everything still gets all of it.
    let (code, out, _) = conn.exec_raw("wc -c", &stdin).await.unwrap();
    assert_eq!(code, Some(0));
    assert_eq!(text(&out).trim(), (8 << 20).to_string());
    conn.close().await;
}

#[tokio::test]
async fn a_host_flooding_the_deployer_gets_a_clear_error_not_its_memory() {
    let lab = Lab::new();
    let h = lab.start("flood", "rustle-d7");
    lab.trust(&[&h]);
    let conn = ssh::connect(&target(&lab, &h, false)).await.unwrap();
    let guard = Duration::from_secs(120);

    // One line of 100 MB.
    let mut seen = 0usize;
    let r = tokio::time::timeout(
        guard,
        conn.exec("head -c 100000000 /dev/zero", b"", &mut |_| seen += 1),
    )
    .await
    .expect("no answer");
    match r {
        Err(e @ SshError::TooMuchOutput(_)) => {
            let msg = e.to_string();
            assert!(
                msg.contains("line") && msg.contains(&format!("{} MiB", ssh::MAX_LINE_BYTES >> 20)),
                "{msg}"
            );
        }
        other => panic!("expected the line limit, got {other:?}"),
    }
    assert_eq!(seen, 0);

    // Endless output in ordinary lines (of 4 kB, so the test does not spend its time
    // counting tiny ones), on stdout and on stderr, for each way of running a command.
    let endless = "yes \"$(head -c 4000 /dev/zero | tr '\\0' y)\"";
    for script in [endless.to_string(), format!("{endless} >&2")] {
        let r = tokio::time::timeout(guard, conn.exec(&script, b"", &mut |_| {}))
            .await
            .expect("no answer");
        match r {
            Err(e @ SshError::TooMuchOutput(_)) => {
                let msg = e.to_string();
                assert!(
                    msg.contains(&format!("{} MiB", ssh::MAX_OUTPUT_BYTES >> 20)),
                    "{msg}"
                );
            }
            other => panic!("{script}: expected the output limit, got {other:?}"),
        }
    }
    let r = tokio::time::timeout(guard, conn.exec_raw(endless, b""))
        .await
        .expect("no answer");
    assert!(
        matches!(r, Err(SshError::TooMuchOutput(_))),
        "{:?}",
        r.map(|(c, o, e)| (c, o.len(), e.len()))
    );
    // The connection is still good for the next command.
    let (code, out, _) = conn.exec_raw("echo fine", b"").await.unwrap();
    assert_eq!((code, text(&out)), (Some(0), "fine\n".to_string()));
    conn.close().await;
}
