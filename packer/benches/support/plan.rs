//! The fleet benchmarks' shared 25-step plan and machine CPU counter.

use serde_json::{Value, json};

/// The issue's 25 steps: directories, copies, a template, lineinfile, stat, assert,
/// command, shell, a 10-item loop, a link, debug.
pub fn plan() -> Value {
    plan_revision(1)
}

/// The same steps with content that depends on `rev`: a later revision of the plan
/// changes the copies, the template and the loop's files, as an everyday deploy does.
pub fn plan_revision(rev: u32) -> Value {
    let base = "{{ ansible_env_home }}/bench";
    let mut tasks = vec![
        json!({"name": "base", "module": "file", "args": {"path": base, "state": "directory"}}),
        json!({"name": "etc", "module": "file", "args": {"path": format!("{base}/etc"), "state": "directory", "mode": "0750"}}),
        json!({"name": "var", "module": "file", "args": {"path": format!("{base}/var"), "state": "directory"}}),
        json!({"name": "log", "module": "file", "args": {"path": format!("{base}/var/log"), "state": "directory"}}),
    ];
    for i in 0..5 {
        tasks.push(json!({"name": format!("copy {i}"), "module": "copy",
            "args": {"content": format!("file {i} rev {rev} on {{{{ inventory_hostname }}}}\n"), "dest": format!("{base}/etc/f{i}.conf"), "mode": "0644"}}));
    }
    tasks.extend([
        json!({"name": "template", "module": "template", "args": {"src": "app.conf.j2", "dest": format!("{base}/etc/app.conf")}}),
        json!({"name": "lineinfile", "module": "lineinfile", "args": {"path": format!("{base}/etc/tuning.conf"), "line": "tuned = yes", "regexp": "^tuned", "create": true}}),
        json!({"name": "stat", "module": "stat", "args": {"path": format!("{base}/etc/app.conf")}, "register": "st"}),
        json!({"name": "assert", "module": "assert", "args": {"that": ["st.stat.exists", "st.stat.size > 10"]}}),
        json!({"name": "command", "module": "command", "args": {"_raw_params": "uname -r"}, "register": "k", "changed_when": false}),
        json!({"name": "shell", "module": "shell", "args": {"_raw_params": format!("echo ok > {base}/var/shell.out"), "creates": format!("{base}/var/shell.out")}}),
        json!({"name": "loop", "module": "copy", "args": {"content": format!("{{{{ item }}}} rev {rev}\n"), "dest": format!("{base}/var/item-{{{{ item }}}}")}, "loop": (1..=10).collect::<Vec<_>>()}),
        json!({"name": "link", "module": "file", "args": {"src": format!("{base}/etc/app.conf"), "dest": format!("{base}/app.conf"), "state": "link"}}),
        json!({"name": "debug", "module": "debug", "args": {"msg": "kernel {{ k.stdout }}"}}),
        json!({"name": "no stale file", "module": "file", "args": {"path": format!("{base}/var/stale"), "state": "absent"}}),
    ]);
    for i in 0..6 {
        tasks.push(json!({"name": format!("fact {i}"), "module": "set_fact", "args": {format!("f{i}"): i}}));
    }
    assert_eq!(tasks.len(), 25);
    json!({
        "format": "rustle-deploy-plan", "version": 1,
        "plays": [{"name": "bench", "hosts": ["all"], "vars": {"port": 8080 + rev}, "tasks": tasks}],
        "files": {"app.conf.j2": {"content": "host = {{ inventory_hostname }}\nport = {{ port }}\n"}}
    })
}

/// CPU seconds the whole machine spent busy so far (all cores, from /proc/stat), to see
/// what the hosts' sshd, shell and runner cost next to the deployer.
pub fn busy_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let fields: Vec<f64> = stat
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .skip(1)
        .filter_map(|f| f.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal: busy = all but idle and iowait.
    let busy: f64 = fields
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != 3 && *i != 4)
        .map(|(_, v)| v)
        .sum();
    busy / 100.0
}
