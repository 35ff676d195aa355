//! The fuzz harnesses: one function per target, each feeding arbitrary bytes to a reader of
//! outside input and checking the invariants that must hold for every input.
//!
//! Every harness holds these: no panic, no abort, no unbounded allocation or hang (libFuzzer
//! enforces the last two with `-rss_limit_mb` and `-timeout`). Where a round trip exists
//! (payload seal and open, archive write and read, packing a payload into a runner and
//! finding it again) the harness checks that it holds, and panics with what differed when
//! it does not: a panic is how a harness reports a failure to libFuzzer.
//!
//! The targets in `fuzz_targets/` are one line each on top of these, so that the same
//! functions also run, without libFuzzer, over every seed in this crate's tests.
#![allow(clippy::panic)]

pub mod seeds;

use ed25519_dalek::SigningKey;
use rustle_deploy::inventory::Inventory;
use rustle_deploy::playbook::{PlaybookOptions, load_playbook, looks_like_playbook};
use rustle_deploy::sshconfig::{Explicit, SshConfig};
use rustle_deploy::vault::{self, Vault};
use rustle_runner::payload::{self, Digest, PayloadError};
use rustle_runner::plan::HostPlan;
use rustle_runner::template::Engine;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The key the harnesses sign with and trust: fixed, so seeds made once stay valid.
pub fn signing_key() -> SigningKey {
    SigningKey::from_bytes(&[0x5e; 32])
}

/// The password of the vaulted fixtures (`packer/tests/fixtures/ansible_project`), so
/// seeds made from them get past the HMAC check into the decryption and padding code.
pub const VAULT_PASSWORD: &[u8] = b"correct horse battery staple";

/// A scratch directory for harnesses that need files, one per process: under `$TMPDIR`,
/// which `cargo xtask fuzz` points into `target/fuzz/`.
fn scratch() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("rustle-fuzz-{}", std::process::id()));
        if let Err(e) = std::fs::create_dir_all(&dir) {
            panic!("cannot create the scratch directory {}: {e}", dir.display());
        }
        dir
    })
}

/// Writes `data` to a file named `name` in the scratch directory.
fn scratch_file(name: &str, data: &[u8]) -> PathBuf {
    let path = scratch().join(name);
    if let Err(e) = std::fs::write(&path, data) {
        panic!("cannot write {}: {e}", path.display());
    }
    path
}

/// The payload, three ways. As a packed payload: parse and verify, with the harness key
/// trusted (and the trust store parser on the same text). As a body sealed with the
/// trusted key: it must pass parse and verify whatever it holds, then the section table,
/// decompression and decoding must fail cleanly or give a plan. As an encoded host plan: sealing it as the
/// packer does and opening it as the runner does gives the same plan back.
pub fn payload(data: &[u8]) {
    let key = signing_key();
    let trusted = [key.verifying_key()];
    let _ = payload::open(data, None, &trusted);
    let _ = payload::open(data, Some(&Digest::of(data)), &trusted);
    let _ = rustle_runner::trust::parse_keys(&String::from_utf8_lossy(data), Path::new("fuzz"));

    let sealed = payload::seal(data, &key);
    match payload::open(&sealed, None, &trusted) {
        Ok(_)
        | Err(PayloadError::Sections(_) | PayloadError::Decompress(_) | PayloadError::Decode(_)) => {
        }
        Err(e) => panic!("a body sealed with a trusted key was refused before decoding: {e}"),
    }

    if let Ok(plan) = rmp_serde::from_slice::<HostPlan>(data) {
        let mut sealer = match rustle_deploy::pack::Sealer::new(&key) {
            Ok(s) => s,
            Err(e) => panic!("cannot make a sealer: {e}"),
        };
        let (packed, digest) = match sealer.seal(&plan) {
            Ok(p) => p,
            Err(e) => panic!("a decoded plan cannot be sealed again: {e}"),
        };
        match payload::open(&packed, Some(&digest), &trusted) {
            Ok((d, opened)) => {
                assert_eq!(d, digest, "digest changed between seal and open");
                assert_eq!(opened, plan, "the plan changed between seal and open");
            }
            Err(e) => panic!("a payload the packer sealed does not open: {e}"),
        }
    }
}

/// The runner's payload locator (ELF and Mach-O) on a buffer and on a file: both read
/// through the same parser and must agree exactly.
pub fn locate(data: &[u8]) {
    use rustle_runner::locate;
    let in_memory = locate::find_payload(data)
        .map(<[u8]>::to_vec)
        .map_err(|e| e.to_string());
    let path = scratch_file("image", data);
    let from_file = locate::read_payload_from(&path).map_err(|e| e.to_string());
    assert_eq!(
        in_memory, from_file,
        "the payload found in memory differs from the one read from the file"
    );
}

/// The packer's ELF and Mach-O writers on an arbitrary "runner": when they accept it,
/// the runner's locator must find exactly the payload they embedded. The first byte
/// chooses the payload's length, so payloads of many sizes are tried.
pub fn embed(data: &[u8]) {
    let Some((len, rest)) = data.split_first() else {
        return;
    };
    let (payload, runner) = rest.split_at(usize::from(*len).min(rest.len()));
    let packed = [
        ("ELF", rustle_deploy::elf::embed(runner, payload).ok()),
        ("Mach-O", rustle_deploy::macho::embed(runner, payload).ok()),
    ];
    for (format, packed) in packed {
        if let Some(image) = packed {
            match rustle_runner::locate::find_payload(&image) {
                Ok(found) => assert_eq!(found, payload, "{format}: another payload found"),
                Err(e) => panic!("{format}: the embedded payload is not found: {e}"),
            }
        }
    }
}

/// Every archive reader unarchive uses (tar, zip, gzip, zstd), on any bytes.
pub fn archive(data: &[u8]) {
    std::hint::black_box(rustle_runner::modules::fuzzing::read_archives(data));
}

/// What the archive module writes, unarchive reads back.
pub fn archive_round_trip(data: &[u8]) {
    if let Err(e) = rustle_runner::modules::fuzzing::archive_round_trip(data) {
        panic!("archive round trip: {e}");
    }
}

/// Host patterns tried on every inventory that loads: the forms `--limit` and plays use.
const PATTERNS: [&str; 8] = [
    "all",
    "*",
    "web*",
    "webservers:&prod",
    "webservers:!web2",
    "~(web|db)[0-9]+",
    "web[1:2]",
    "ungrouped",
];

/// The INI, YAML and JSON inventory readers on the same text, then host selection with
/// common patterns and with the text's first line as a pattern.
pub fn inventory(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let first_line = text.lines().next().unwrap_or_default();
    for parsed in [
        Inventory::parse_ini(text, "fuzz.ini"),
        Inventory::parse_yaml(text, "fuzz.yml"),
        Inventory::parse_json(text, "fuzz.json"),
    ] {
        let Ok(mut inv) = parsed else {
            continue;
        };
        for h in inv.hosts() {
            std::hint::black_box((
                h.address(),
                h.port(),
                h.user(),
                h.connection(),
                h.private_key_file(),
                h.is_local(),
            ));
        }
        for pattern in PATTERNS.iter().copied().chain([first_line]) {
            std::hint::black_box(inv.select(pattern).len());
        }
        let _ = inv.set_limit(first_line);
    }
}

/// Options for the playbook harness: a vault password (so `!vault` values are opened)
/// and an extra variable (so `{{ }}` in `hosts` and `vars_files` is substituted).
fn playbook_options() -> PlaybookOptions {
    let mut extra = serde_json::Map::new();
    extra.insert("env".into(), "prod".into());
    PlaybookOptions {
        extra_vars: extra,
        tags: vec!["web".into()],
        skip_tags: vec!["never".into()],
        vault: Some(Vault::from_password(VAULT_PASSWORD)),
        ..PlaybookOptions::default()
    }
}

/// The playbook loader on a playbook file (with the error path that finds the
/// culprit's line in it), the playbook sniffing, and the plan readers (native and
/// rustle-plan JSON) on the same text.
pub fn playbook(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    std::hint::black_box(looks_like_playbook(text));
    let _ = rustle_deploy::plan::parse_plan(text, "fuzz.json");
    let path = scratch_file("site.yml", data);
    let _ = load_playbook(&path, &playbook_options());
}

/// The ssh_config reader, then the lookups a deploy makes with what it read.
pub fn ssh_config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(cfg) = SshConfig::parse(text, Path::new("fuzz_config")) else {
        return;
    };
    for host in ["web1", "db.example.com", "10.0.0.1", "[::1]"] {
        let mut t = rustle_deploy::ssh::Target {
            name: host.into(),
            address: host.into(),
            port: 22,
            user: "deploy".into(),
            identity_files: Vec::new(),
            known_hosts: PathBuf::from("/dev/null"),
            global_known_hosts: Vec::new(),
            accept_new: false,
            connect_timeout: std::time::Duration::from_secs(10),
        };
        let jumps = cfg.apply(&mut t, Explicit::default());
        std::hint::black_box(jumps.len());
    }
}

/// Ansible Vault: a whole-file vault text and YAML with inline `!vault` values, opened
/// with the fixtures' password, and read without one.
pub fn vault(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let v = Vault::from_password(VAULT_PASSWORD);
    std::hint::black_box(vault::is_vaulted(data));
    let _ = v.decrypt(text, "fuzz");
    let _ = vault::parse_yaml(text, Path::new("fuzz.yml"), Some(&v));
    // No password: inline values are left closed and become the plan's encrypted marker.
    if let Ok(value) = vault::parse_yaml(text, Path::new("fuzz.yml"), None) {
        let _ = rustle_deploy::ansible_yaml::to_json(&value);
    }
}

/// Variables a template sees: the kinds of values inventories, facts and registered
/// results give (strings, numbers, lists, nested mappings, a command's output).
fn template_context() -> minijinja::Value {
    let vars = serde_json::json!({
        "inventory_hostname": "web1",
        "group_names": ["webservers", "prod"],
        "port": 8080,
        "ratio": 0.5,
        "enabled": true,
        "nothing": null,
        "packages": ["nginx", "curl", "git"],
        "users": [{"name": "alice", "uid": 1001}, {"name": "bob", "uid": 1002}],
        "app": {"name": "demo", "env": {"LANG": "C.UTF-8"}, "paths": ["/srv", "/opt"]},
        "result": {"rc": 0, "stdout": "a\nb\nc", "stdout_lines": ["a", "b", "c"], "changed": true},
        "ansible_facts": {"os_family": "Debian", "memtotal_mb": 2048},
        "hostvars": {"web1": {"ansible_host": "10.0.0.1"}},
    });
    minijinja::Value::from_serialize(&vars)
}

/// Template rendering as the runner does it: a template file's text, the same text as a
/// module argument (native types for one `{{ expression }}`), and as a condition.
pub fn template(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    thread_local! {
        static ENGINE: (Engine, minijinja::Value) = (fuzz_engine(), template_context());
    }
    ENGINE.with(|(engine, ctx)| {
        let _ = engine.render_str(text, ctx);
        let _ = engine.render_value(&serde_json::Value::String(text.into()), ctx);
        let _ = engine.eval_bool(text, ctx);
    });
}

/// The runner's engine, with a bound on the work one template may do: a template is
/// written by the controller (trusted), so a loop of a billion steps is its author's
/// choice, not a defect, but it would stop the fuzzer at its first such input.
fn fuzz_engine() -> Engine {
    let mut engine = Engine::new();
    engine.set_fuel(Some(FUEL));
    engine
}

/// Instructions one template may run in the harness: far more than any real template
/// needs (the fixtures use under a thousand), and well under libFuzzer's timeout.
const FUEL: u64 = 200_000;

/// A harness: takes the fuzzer's input, panics when an invariant does not hold.
pub type Harness = fn(&[u8]);

/// Every target, by name, with its harness.
pub const TARGETS: [(&str, Harness); 10] = [
    ("payload", payload),
    ("locate", locate),
    ("embed", embed),
    ("archive", archive),
    ("archive_round_trip", archive_round_trip),
    ("inventory", inventory),
    ("playbook", playbook),
    ("ssh_config", ssh_config),
    ("vault", vault),
    ("template", template),
];

#[cfg(test)]
mod tests {
    use super::*;

    /// Every seed, through its harness, without libFuzzer: the harnesses compile and run,
    /// and the seeds (real inputs) hold every invariant.
    #[test]
    fn every_seed_passes_its_harness() {
        let mut ran = 0;
        for (target, harness) in TARGETS {
            for (name, data) in seeds::all(target) {
                eprintln!("{target}: {name}");
                harness(&data);
                ran += 1;
            }
        }
        assert!(ran > 50, "only {ran} seeds found");
    }
}
