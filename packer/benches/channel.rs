//! Controller-channel benchmark: a playbook with one `run_once` task, one task delegated
//! to the controller and one template over every host's `hostvars`, deployed to 20 real
//! sshd hosts on loopback by rustle-deploy and, in the same run, by ansible-playbook
//! with its linear strategy and with Mitogen's. Prints each tool's wall time side by
//! side; asserts nothing about them.
//!
//! `cargo xtask channel-bench` sets up Ansible and Mitogen (`target/bench-venv`) and
//! runs this; run directly (`cargo bench -p rustle-deploy --bench channel`) it finds them
//! through `RUSTLE_BENCH_ANSIBLE_BIN` (a virtualenv's `bin`) and measures rustle-deploy
//! alone without it.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

// The SSH tests' host helpers; the benchmark uses only some of them.
#[allow(dead_code)]
#[path = "../tests/support/sshd.rs"]
mod sshd;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

/// The hosts the playbook runs on.
const HOSTS: usize = 20;

/// One database migration for the fleet, a question only the controller can answer, and
/// a file every host writes from what every other host learned.
const PLAYBOOK: &str = r#"- hosts: lab
  gather_facts: false
  tasks:
    - name: one migration for the fleet
      command: echo migrated
      run_once: true
      register: migration
    - name: ask the controller
      command: echo "{{ inventory_hostname }}"
      delegate_to: localhost
      changed_when: false
    - name: learn a token
      set_fact:
        token: "{{ inventory_hostname | hash('sha1') }}"
    - name: peers file from every host's hostvars
      copy:
        dest: "{{ ansible_env_home }}/peers"
        content: |
          {% for h in ansible_play_hosts %}
          {{ h }} {{ hostvars[h].token }} {{ migration.stdout }}
          {% endfor %}
"#;

/// One tool's command line, and what it needs in its environment.
struct Tool {
    name: &'static str,
    command: Command,
}

fn main() {
    let lab = sshd::Lab::new();
    let dir = tempfile::tempdir().unwrap();
    let hosts: Vec<sshd::Sshd> = (0..HOSTS)
        .map(|i| lab.start(&format!("b{i}"), &format!("rustle-b{i}")))
        .collect();
    let refs: Vec<&sshd::Sshd> = hosts.iter().collect();
    lab.trust(&refs);
    // The lab's inventory, plus what Ansible needs to use the same hosts as rustle-deploy:
    // the hosts' python, and the lab's known_hosts file.
    let lab_inventory = std::fs::read_to_string(lab.inventory(&refs)).unwrap();
    let inventory = dir.path().join("hosts.ini");
    std::fs::write(
        &inventory,
        format!(
            "{lab_inventory}[lab:vars]\nansible_python_interpreter=/usr/bin/python3\n\
             ansible_ssh_common_args='-o UserKnownHostsFile={}'\n",
            lab.known_hosts.display()
        ),
    )
    .unwrap();
    let playbook = dir.path().join("site.yml");
    std::fs::write(&playbook, PLAYBOOK).unwrap();

    let mut tools = vec![rustle(&inventory, &playbook, &lab.known_hosts, dir.path())];
    match std::env::var_os("RUSTLE_BENCH_ANSIBLE_BIN") {
        Some(bin) => {
            let bin = PathBuf::from(bin);
            tools.push(ansible(&bin, &inventory, &playbook, dir.path(), None));
            tools.push(ansible(
                &bin,
                &inventory,
                &playbook,
                dir.path(),
                Some(mitogen_strategies(&bin)),
            ));
        }
        None => println!(
            "(ansible-playbook not measured: `cargo xtask channel-bench` sets it up, or set \
             RUSTLE_BENCH_ANSIBLE_BIN to a virtualenv's bin holding ansible-playbook and mitogen)"
        ),
    }
    println!(
        "{HOSTS} hosts, run_once + delegate_to: localhost + a template over every host's hostvars:"
    );
    for run in ["first run", "second run"] {
        let mut line = format!("  {run:<10}");
        for tool in &mut tools {
            for h in &hosts {
                let _ = std::fs::remove_file(h.home.join("peers"));
            }
            let started = Instant::now();
            let out = tool.command.output().unwrap();
            let wall = started.elapsed().as_secs_f64();
            let rc = out.status.code().unwrap_or(-1);
            let peers = hosts
                .iter()
                .filter(|h| {
                    std::fs::read_to_string(h.home.join("peers"))
                        .is_ok_and(|t| t.lines().filter(|l| !l.trim().is_empty()).count() == HOSTS)
                })
                .count();
            line.push_str(&format!(
                "  {}: {wall:>6.2} s (exit {rc}, {peers}/{HOSTS} peers files)",
                tool.name
            ));
            if rc != 0 {
                eprintln!(
                    "{} exited {rc}:\n{}{}",
                    tool.name,
                    tail(&out.stdout),
                    tail(&out.stderr)
                );
            }
        }
        println!("{line}");
    }
}

fn rustle(inventory: &Path, playbook: &Path, known_hosts: &Path, home: &Path) -> Tool {
    let mut command = Command::new(env!("CARGO_BIN_EXE_rustle-deploy"));
    command
        .arg("-i")
        .arg(inventory)
        .arg(playbook)
        .arg("--known-hosts")
        .arg(known_hosts)
        .env("HOME", home);
    Tool {
        name: "rustle-deploy",
        command,
    }
}

/// ansible-playbook from `bin` with as many forks as hosts; with Mitogen's linear
/// strategy when `mitogen` (its strategy plugins' directory) is given.
fn ansible(
    bin: &Path,
    inventory: &Path,
    playbook: &Path,
    home: &Path,
    mitogen: Option<PathBuf>,
) -> Tool {
    let mut command = Command::new(bin.join("ansible-playbook"));
    command
        .arg("-i")
        .arg(inventory)
        .arg(playbook)
        .arg("--forks")
        .arg(HOSTS.to_string())
        .env("HOME", home)
        .env("ANSIBLE_LOCALHOST_WARNING", "false");
    let name = match mitogen {
        Some(dir) => {
            command
                .env("ANSIBLE_STRATEGY_PLUGINS", dir)
                .env("ANSIBLE_STRATEGY", "mitogen_linear");
            "ansible+mitogen"
        }
        None => "ansible",
    };
    Tool { name, command }
}

/// Where the Mitogen installed beside `bin`'s python keeps its strategy plugins.
fn mitogen_strategies(bin: &Path) -> PathBuf {
    let out = Command::new(bin.join("python3"))
        .args([
            "-c",
            "import ansible_mitogen, os; print(os.path.dirname(ansible_mitogen.__file__))",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "mitogen is not installed beside {}: {}",
        bin.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()).join("plugins/strategy")
}

/// The last lines of a tool's output, for a run that failed.
fn tail(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let lines: Vec<&str> = text.lines().collect();
    let from = lines.len().saturating_sub(20);
    lines[from..].join("\n") + "\n"
}
