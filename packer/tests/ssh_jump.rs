//! ProxyJump against real OpenSSH `sshd` test hosts on loopback: the final host is
//! reached through `direct-tcpip` channels of one or two jump hosts, every hop's host
//! key checked against the same known_hosts file.
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
use sshd::{Lab, Sshd};
use std::time::Duration;

fn target(lab: &Lab, h: &Sshd) -> Target {
    Target {
        name: h.name.clone(),
        address: "127.0.0.1".into(),
        port: h.port,
        user: h.user.clone(),
        identity_files: vec![lab.client_key.clone()],
        known_hosts: lab.known_hosts.clone(),
        global_known_hosts: Vec::new(),
        accept_new: false,
        connect_timeout: Duration::from_secs(10),
    }
}

async fn echo(t: &Target, jump: &[Target]) -> Result<String, SshError> {
    let conn = ssh::connect_via(t, jump).await?;
    let mut lines = Vec::new();
    let (code, stderr) = conn
        .exec("echo ok; id -un", b"", &mut |l| lines.push(l.to_string()))
        .await?;
    assert_eq!(code, Some(0), "{stderr}");
    conn.close().await;
    Ok(lines.join("\n"))
}

#[tokio::test]
async fn runs_a_command_through_one_and_two_jump_hosts() {
    let lab = Lab::new();
    let j1 = lab.start("jump1", "rustle-j1");
    let j2 = lab.start("jump2", "rustle-j2");
    let end = lab.start("final", "rustle-j3");
    lab.trust(&[&j1, &j2, &end]);

    let end_t = target(&lab, &end);
    let one = [target(&lab, &j1)];
    assert_eq!(echo(&end_t, &one).await.unwrap(), "ok\nrustle-j3");

    let two = [target(&lab, &j1), target(&lab, &j2)];
    assert_eq!(echo(&end_t, &two).await.unwrap(), "ok\nrustle-j3");
}

#[tokio::test]
async fn the_final_host_key_is_checked_through_the_tunnel() {
    let lab = Lab::new();
    let jump = lab.start("jump", "rustle-j4");
    let stranger = lab.start("stranger", "rustle-j5");
    lab.trust(&[&jump]);
    let t = target(&lab, &stranger);
    match echo(&t, &[target(&lab, &jump)]).await {
        Err(SshError::UnknownHostKey { addr, .. }) => {
            assert_eq!(
                addr,
                format!("127.0.0.1:{} (via 127.0.0.1:{})", stranger.port, jump.port)
            );
        }
        other => panic!("expected an unknown host key, got {other:?}"),
    }
}

#[tokio::test]
async fn a_jump_host_refusing_forwarding_is_reported() {
    let lab = Lab::new();
    let mut jump = lab.start("nofwd", "rustle-j6");
    let end = lab.start("behind", "rustle-j7");
    lab.trust(&[&jump, &end]);
    // Direct connections to `end` work, so success would mean the tunnel was bypassed.
    let config = lab.dir.path().join("nofwd").join("sshd_config");
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str("AllowTcpForwarding no\n");
    std::fs::write(&config, text).unwrap();
    jump.stop();
    jump.start();
    let t = target(&lab, &end);
    match echo(&t, &[target(&lab, &jump)]).await {
        Err(e @ SshError::Tunnel { .. }) => {
            let msg = e.to_string();
            assert!(
                msg.contains(&format!("jump host 127.0.0.1:{}", jump.port))
                    && msg.contains(&format!("reach 127.0.0.1:{}", end.port)),
                "{msg}"
            );
        }
        other => panic!("expected a tunnel refusal, got {other:?}"),
    }
    // And without the jump host the same target is fine.
    assert_eq!(echo(&t, &[]).await.unwrap(), "ok\nrustle-j7");
}
