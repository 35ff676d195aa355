//! Real OpenSSH test hosts: one `sshd` per host on a free loopback port, each with its
//! own host key, login user and home, plus a client key and a known_hosts file.
//!
//! Needs root (to create the login users) and Debian's `openssh-server`; `.ci/run`
//! installs it. Each [`Sshd`] stops its daemon when dropped.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Where the test hosts' shared material lives.
pub struct Lab {
    /// The directory holding keys, configs and logs.
    pub dir: tempfile::TempDir,
    /// The client's private key (ed25519, no passphrase).
    pub client_key: PathBuf,
    /// The known_hosts file listing every started host.
    pub known_hosts: PathBuf,
}

/// One running sshd test host.
pub struct Sshd {
    /// Inventory name.
    pub name: String,
    /// Login user (one per host, so each has its own home as real hosts do).
    pub user: String,
    /// Its home directory.
    pub home: PathBuf,
    /// The loopback port.
    pub port: u16,
    /// The host's public key line (`ssh-ed25519 AAAA...`).
    pub host_key_pub: String,
    config: PathBuf,
    child: Option<Child>,
}

fn run(cmd: &mut Command) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn keygen(path: &Path) {
    run(Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(path));
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Lab {
    /// Prepares keys; fails clearly when not root or sshd is missing.
    pub fn new() -> Lab {
        assert!(
            rustle_runner::facts::current_uid() == Some(0),
            "the SSH tests need root to create test users (CI runs as root)"
        );
        assert!(
            Path::new("/usr/sbin/sshd").exists(),
            "the SSH tests need OpenSSH's sshd: apt-get install openssh-server"
        );
        std::fs::create_dir_all("/run/sshd").unwrap();
        let dir = tempfile::Builder::new()
            .prefix("rustle-lab")
            .tempdir()
            .unwrap();
        // Test users must be able to reach their homes under this directory.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let client_key = dir.path().join("client_key");
        keygen(&client_key);
        let known_hosts = dir.path().join("known_hosts");
        std::fs::write(&known_hosts, "").unwrap();
        Lab {
            dir,
            client_key,
            known_hosts,
        }
    }

    /// Starts a host whose login user is `user` (created when missing).
    pub fn start(&self, name: &str, user: &str) -> Sshd {
        let base = self.dir.path().join(name);
        std::fs::create_dir_all(&base).unwrap();
        let home = base.join("home");
        ensure_user(user, &home);
        let ssh_dir = home.join(".ssh");
        std::fs::create_dir_all(&ssh_dir).unwrap();
        let public = std::fs::read_to_string(self.client_key.with_extension("pub")).unwrap();
        std::fs::write(ssh_dir.join("authorized_keys"), public).unwrap();
        run(Command::new("chown")
            .arg("-R")
            .arg(format!("{user}:"))
            .arg(&home));
        let host_key = base.join("host_key");
        keygen(&host_key);
        let host_key_pub = std::fs::read_to_string(host_key.with_extension("pub"))
            .unwrap()
            .split_whitespace()
            .take(2)
            .collect::<Vec<_>>()
            .join(" ");
        let port = free_port();
        let config = base.join("sshd_config");
        std::fs::write(
            &config,
            format!(
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {}\nPidFile {}\n\
                 AuthorizedKeysFile .ssh/authorized_keys\nStrictModes no\nUsePAM no\n\
                 PasswordAuthentication no\nKbdInteractiveAuthentication no\n\
                 PubkeyAuthentication yes\nAllowUsers {user}\nMaxStartups 200\n\
                 MaxSessions 20\nLogLevel ERROR\n",
                host_key.display(),
                base.join("sshd.pid").display()
            ),
        )
        .unwrap();
        let mut sshd = Sshd {
            name: name.to_string(),
            user: user.to_string(),
            home,
            port,
            host_key_pub,
            config,
            child: None,
        };
        sshd.start();
        sshd
    }

    /// Adds hosts to the known_hosts file.
    pub fn trust(&self, hosts: &[&Sshd]) {
        let mut text = std::fs::read_to_string(&self.known_hosts).unwrap_or_default();
        for h in hosts {
            text.push_str(&format!("[127.0.0.1]:{} {}\n", h.port, h.host_key_pub));
        }
        std::fs::write(&self.known_hosts, text).unwrap();
    }

    /// An INI inventory for the given hosts. Each host also gets `ansible_env_home`, its
    /// login user's home, so plans can write under it and hosts never collide.
    pub fn inventory(&self, hosts: &[&Sshd]) -> PathBuf {
        let mut text = String::from("[lab]\n");
        for h in hosts {
            text.push_str(&format!(
                "{} ansible_env_home={} ansible_host=127.0.0.1 ansible_port={} ansible_user={} ansible_ssh_private_key_file={}\n",
                h.name,
                h.home.display(),
                h.port,
                h.user,
                self.client_key.display()
            ));
        }
        let path = self.dir.path().join("hosts.ini");
        std::fs::write(&path, text).unwrap();
        path
    }
}

impl Default for Lab {
    fn default() -> Self {
        Lab::new()
    }
}

/// useradd and usermod lock /etc/passwd and fail rather than wait when another holds
/// it, so the test threads of one binary take turns (a fresh machine creates every user).
static ACCOUNTS: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn ensure_user(user: &str, home: &Path) {
    let _turn = ACCOUNTS.lock().unwrap_or_else(|e| e.into_inner());
    let exists = Command::new("id")
        .arg(user)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !exists {
        run(Command::new("useradd").args(["-M", "-s", "/bin/sh", user]));
    }
    // sshd without PAM refuses accounts whose password is locked.
    run(Command::new("usermod")
        .args(["-p", "*", "-d"])
        .arg(home)
        .arg(user));
    std::fs::create_dir_all(home).unwrap();
}

impl Sshd {
    /// (Re)starts the daemon and waits until it accepts connections.
    pub fn start(&mut self) {
        let log = std::fs::File::create(self.config.with_extension("log")).unwrap();
        let child = Command::new("/usr/sbin/sshd")
            .args(["-D", "-e", "-f"])
            .arg(&self.config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "sshd for {} did not start",
                self.name
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops the daemon (the host goes down).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// The host's state root (`~/.rustle` of its login user).
    pub fn root(&self) -> PathBuf {
        self.home.join(".rustle")
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        self.stop();
    }
}
