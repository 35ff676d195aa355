//! Packing time for 100 and 1000 hosts with a 50-task plan: payloads, embedding, writing.
//!
//! Prints figures, asserts nothing about time. Three phases are timed separately because
//! they scale differently: (a) `pack_jobs` (per-host plan cut + msgpack + zstd + sign),
//! (b) embedding each payload into a copy of the runner in memory, (c) writing the packed
//! runners to disk. (a)+(b) is the headline "excluding the file write" figure; (c) depends
//! on the disk and page cache more than on rustle.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use ed25519_dalek::SigningKey;
use rustle_deploy::deploy::{self, Job};
use rustle_deploy::inventory::Inventory;
use rustle_deploy::pack::{self, PayloadSettings};
use rustle_runner::plan::DeployPlan;
use serde_json::{Value, json};
use std::hint::black_box;
use std::time::{Duration, Instant};

/// Host counts to measure.
const HOSTS: [usize; 2] = [100, 1000];
/// Repeats per phase; the median is reported so one noisy run (2 shared cores) does not
/// move the figure.
const REPEATS: usize = 5;
/// The runner triple every bench host gets (they are `ansible_connection=local` on x86_64).
const TRIPLE: &str = "x86_64-unknown-linux-musl";

fn main() {
    let runner_path = rustle_tests::runner_path(TRIPLE);
    let runner = std::fs::read(&runner_path).unwrap();
    let mut plan = bench_plan();
    let task_count = plan.plays[0].tasks.len();
    // A fixed key and settings: payloads are deterministic, so sizes are comparable runs apart.
    let signing = SigningKey::from_bytes(&[7; 32]);
    let settings = PayloadSettings {
        deployment_id: "20250101T000000Z-bench0".into(),
        created_at: 1_735_689_600,
        check_mode: false,
        diff_mode: false,
    };
    pack::check_modules(&mut plan).unwrap();

    println!("pack benchmark: {task_count}-task plan, median of {REPEATS} repeats");
    println!("runner: {} ({} bytes)", runner_path.display(), runner.len());

    for n in HOSTS {
        let inventory = Inventory::parse_ini(&inventory_text(n), "bench").unwrap();
        assert_eq!(inventory.hosts().count(), n, "inventory range expansion");

        // (a) payloads.
        let mut jobs: Vec<Job> = Vec::new();
        let seal_times = repeat(REPEATS, || {
            let mut notes = Vec::new();
            let start = Instant::now();
            jobs = deploy::pack_jobs(
                &plan, &inventory, &settings, &signing, None, None, &mut notes,
            )
            .unwrap();
            start.elapsed()
        });
        assert_eq!(jobs.len(), n, "every host takes part in the play on `all`");
        let triple = jobs[0].triple;
        assert_eq!(triple.as_str(), TRIPLE);

        // (b) embedding, in memory. Each packed copy is dropped at once: keeping 1000
        // runner copies would measure the allocator under 2 GB of pressure, not packing.
        let embed_times = repeat(REPEATS, || {
            let start = Instant::now();
            for job in &jobs {
                let packed = pack::pack(&job.host.name, job.triple, &runner, &job.sealed).unwrap();
                black_box(&packed);
            }
            start.elapsed()
        });

        // (c) writing, timed around the write alone (embedding happens untimed in the
        // same loop). Fewer repeats at 1000 hosts: each pass writes ~1.9 GB.
        let write_repeats = if n <= 100 { 3 } else { 1 };
        let mut written: u64 = 0;
        let write_times = repeat(write_repeats, || {
            let dir = tempfile::tempdir().unwrap();
            let mut spent = Duration::ZERO;
            written = 0;
            for job in &jobs {
                let packed = pack::pack(&job.host.name, job.triple, &runner, &job.sealed).unwrap();
                let path = dir.path().join(&job.host.name);
                let start = Instant::now();
                deploy::write_atomic(&path, &packed, 0o755).unwrap();
                spent += start.elapsed();
                written += packed.len() as u64;
            }
            spent
        });

        let sizes = {
            let mut s: Vec<usize> = jobs.iter().map(|j| j.sealed.len()).collect();
            s.sort_unstable();
            s
        };
        let seal = median(&seal_times);
        let embed = median(&embed_times);
        let write = median(&write_times);
        println!();
        println!("{n} hosts:");
        println!(
            "  payload per host: {} bytes (min {}, max {}), packed runner {} bytes",
            sizes[sizes.len() / 2],
            sizes[0],
            sizes[sizes.len() - 1],
            runner.len() + sizes[sizes.len() / 2]
        );
        line("(a) pack_jobs (cut+msgpack+zstd+sign)", seal, n);
        line("(b) embed into runner (in memory)", embed, n);
        line("(a)+(b) excluding the file write", seal + embed, n);
        line(
            &format!(
                "(c) file write ({write_repeats} repeat(s), {} MB)",
                written >> 20
            ),
            write,
            n,
        );
        line("(a)+(b)+(c) total", seal + embed + write, n);
        println!(
            "  spread: (a) {:.1}..{:.1} ms, (b) {:.1}..{:.1} ms",
            ms(min(&seal_times)),
            ms(max(&seal_times)),
            ms(min(&embed_times)),
            ms(max(&embed_times))
        );
    }
    per_triple(&plan, &settings, &signing);
}

/// (b) for each triple of the matrix whose runner is built here: the same 100 payloads
/// embedded into that runner (ELF for Linux; for macOS a new segment and an ad-hoc
/// signature whose page hashes are recomputed, so it costs more).
fn per_triple(plan: &DeployPlan, settings: &PayloadSettings, signing: &SigningKey) {
    const N: usize = 100;
    let inventory = Inventory::parse_ini(&inventory_text(N), "bench").unwrap();
    let mut notes = Vec::new();
    let jobs =
        deploy::pack_jobs(plan, &inventory, settings, signing, None, None, &mut notes).unwrap();
    println!();
    println!("embedding per triple ({N} hosts, in memory):");
    for triple in rustle_deploy::target::ALL {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../target/runners")
            .join(triple.as_str())
            .join("rustle-runner");
        let Ok(runner) = std::fs::read(&path) else {
            println!(
                "  {:<28} not built here (cargo xtask runners)",
                triple.as_str()
            );
            continue;
        };
        let times = repeat(REPEATS, || {
            let start = Instant::now();
            for job in &jobs {
                black_box(pack::pack(&job.host.name, triple, &runner, &job.sealed).unwrap());
            }
            start.elapsed()
        });
        line(
            &format!("{} ({} bytes)", triple.as_str(), runner.len()),
            median(&times),
            N,
        );
    }
}

/// A realistic 50-task play on `all`: files, copies, a ~2 KB template, commands, shells,
/// debug, stat, set_fact, assert, a loop, `when`, `register`, `notify` and a handler.
fn bench_plan() -> DeployPlan {
    let mut tasks: Vec<Value> = Vec::new();
    // Ten task shapes, five rounds: every module and keyword appears several times, as in
    // a real role, rather than 50 copies of one task.
    for i in 0..5 {
        tasks.push(json!({
            "name": format!("app directory {i}"),
            "module": "file",
            "args": {"path": format!("{{{{ app_root }}}}/part{i}"), "state": "directory", "mode": "0755"}
        }));
        tasks.push(json!({
            "name": format!("settings file {i}"),
            "module": "copy",
            "args": {
                "dest": format!("{{{{ app_root }}}}/part{i}/settings.ini"),
                "content": format!("[app]\nenv = {{{{ env }}}}\nport = {{{{ http_port }}}}\npart = {i}\nhost = {{{{ inventory_hostname }}}}\n"),
                "mode": "0644"
            },
            "notify": ["restart app"]
        }));
        tasks.push(json!({
            "name": format!("main config {i}"),
            "module": "template",
            "args": {"src": "app.conf.j2", "dest": format!("{{{{ app_root }}}}/part{i}/app.conf"), "mode": "0640"},
            "notify": ["restart app"]
        }));
        tasks.push(json!({
            "name": format!("probe version {i}"),
            "module": "command",
            "args": {"_raw_params": "uname -r"},
            "register": format!("kernel{i}"),
            "changed_when": false
        }));
        tasks.push(json!({
            "name": format!("count config lines {i}"),
            "module": "shell",
            "args": {"_raw_params": format!("wc -l < {{{{ app_root }}}}/part{i}/app.conf")},
            "register": format!("lines{i}"),
            "when": "env == 'prod'",
            "changed_when": false
        }));
        tasks.push(json!({
            "name": format!("show kernel {i}"),
            "module": "debug",
            "args": {"msg": format!("{{{{ inventory_hostname }}}} runs {{{{ kernel{i}.stdout }}}}")}
        }));
        tasks.push(json!({
            "name": format!("stat config {i}"),
            "module": "stat",
            "args": {"path": format!("{{{{ app_root }}}}/part{i}/app.conf")},
            "register": format!("conf{i}")
        }));
        tasks.push(json!({
            "name": format!("derive facts {i}"),
            "module": "set_fact",
            "args": {
                "worker_port": format!("{{{{ http_port | int + {i} }}}}"),
                "conf_size": format!("{{{{ conf{i}.stat.size }}}}")
            }
        }));
        tasks.push(json!({
            "name": format!("check config {i}"),
            "module": "assert",
            "args": {
                "that": [format!("conf{i}.stat.exists"), "worker_port | int > 1024", "env in ['prod', 'staging']"],
                "fail_msg": "configuration did not land",
                "success_msg": "configuration in place"
            }
        }));
        tasks.push(json!({
            "name": format!("feature flags {i}"),
            "module": "debug",
            "args": {"msg": "{{ item.name }} = {{ item.on }}"},
            "loop": "{{ features }}",
            "loop_control": {"label": "{{ item.name }}"},
            "when": ["features | length > 0", "env != 'dev'"]
        }));
    }
    let plan = json!({
        "format": rustle_runner::plan::PLAN_FORMAT,
        "version": rustle_runner::plan::PLAN_VERSION,
        "plays": [{
            "name": "configure app",
            "hosts": ["all"],
            "gather_facts": false,
            "vars": {
                "app_root": "/tmp/rustle-bench/app",
                "app_name": "bench",
                "workers": 4,
                "features": [
                    {"name": "cache", "on": true},
                    {"name": "metrics", "on": true},
                    {"name": "beta_ui", "on": false}
                ],
                "upstreams": ["10.0.0.1:9000", "10.0.0.2:9000", "10.0.0.3:9000"],
                "log": {"level": "info", "format": "json", "retention_days": 14}
            },
            "tasks": tasks,
            "handlers": [{
                "name": "restart app",
                "module": "command",
                "args": {"_raw_params": "echo restarting {{ app_name }}"}
            }]
        }],
        "files": {"app.conf.j2": {"content": template_text(), "mode": "0644"}}
    });
    serde_json::from_value(plan).unwrap()
}

/// A ~2 KB Jinja template of the kind a role ships: loops, conditionals, filters.
fn template_text() -> String {
    let mut t = String::from(
        "# {{ ansible_managed | default('Managed by rustle-deploy') }}\n\
         # {{ app_name }} on {{ inventory_hostname }} ({{ env }})\n\n\
         [server]\nlisten = 0.0.0.0:{{ http_port }}\nworkers = {{ workers }}\n\
         root = {{ app_root }}\n\n[upstreams]\n\
         {% for u in upstreams %}server{{ loop.index }} = {{ u }}\n{% endfor %}\n\
         [features]\n{% for f in features %}{{ f.name }} = {{ f.on | lower }}\n{% endfor %}\n\
         [logging]\nlevel = {{ log.level }}\nformat = {{ log.format }}\n\
         retention = {{ log.retention_days }}d\n\
         {% if env == 'prod' %}sampling = 0.1\n{% else %}sampling = 1.0\n{% endif %}\n",
    );
    // Padding sections with their own expressions bring it to a realistic size.
    let mut k = 0;
    while t.len() < 2048 {
        t.push_str(&format!(
            "[section{k}]\n# tuning block {k}: values derived from host and play variables\n\
             timeout_ms = {{{{ 1000 * {n} }}}}\nname = {{{{ app_name }}}}-{k}\n\
             enabled = {{{{ (env == 'prod') | lower }}}}\n\n",
            n = k + 1
        ));
        k += 1;
    }
    t
}

fn inventory_text(n: usize) -> String {
    format!(
        "[web]\nweb[0001:{n:04}] ansible_connection=local http_port=8080\n\n[web:vars]\nenv=prod\n"
    )
}

fn repeat(times: usize, mut f: impl FnMut() -> Duration) -> Vec<Duration> {
    (0..times).map(|_| f()).collect()
}

fn median(d: &[Duration]) -> Duration {
    let mut s = d.to_vec();
    s.sort_unstable();
    s[s.len() / 2]
}

fn min(d: &[Duration]) -> Duration {
    d.iter().copied().min().unwrap()
}

fn max(d: &[Duration]) -> Duration {
    d.iter().copied().max().unwrap()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn line(what: &str, total: Duration, hosts: usize) {
    println!(
        "  {what:<42} total {:>9.1} ms   per host {:>8.1} µs",
        ms(total),
        total.as_secs_f64() * 1e6 / hosts as f64
    );
}
