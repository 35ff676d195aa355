//! Seed inputs for each fuzz target: real inputs from the repository's fixtures, small
//! archives made by real tar, zip, gzip and zstd (committed under `fuzz/seeds/`), and
//! payloads and packed runners made from the fixtures with the project's own code.
//!
//! Seeds give libFuzzer a start inside each format; without them it would spend most of
//! a short run discovering magic numbers and YAML syntax.

use crate::signing_key;
use rustle_deploy::plan::parse_plan;
use rustle_runner::payload;
use rustle_runner::plan::HostPlan;
use std::path::{Path, PathBuf};

/// The workspace root (the fixtures are found from there).
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from(".."))
}

/// Files under `dir` (recursively) whose names end with one of `suffixes`, sorted.
fn files(dir: &Path, suffixes: &[&str]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(list) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in list.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if suffixes.is_empty()
                || suffixes.iter().any(|s| path.to_string_lossy().ends_with(s))
            {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// Reads each file as a named seed (named by its path below the root).
fn read_all(paths: Vec<PathBuf>) -> Vec<(String, Vec<u8>)> {
    let root = root();
    paths
        .into_iter()
        .filter_map(|p| {
            let data = std::fs::read(&p).ok()?;
            let name = p.strip_prefix(&root).unwrap_or(&p).display().to_string();
            Some((name, data))
        })
        .collect()
}

/// Fixture files of one kind from the repository's fixture trees.
fn fixtures(suffixes: &[&str]) -> Vec<PathBuf> {
    let root = root();
    let mut out = Vec::new();
    for dir in ["tests/fixtures", "packer/tests/fixtures", "examples"] {
        out.extend(files(&root.join(dir), suffixes));
    }
    out
}

/// The fixture plans as host plans, the way the packer cuts them for a host.
fn host_plans() -> Vec<(String, HostPlan)> {
    let mut out = Vec::new();
    for path in fixtures(&[".plan.json", "_plan.json", "plan_output.json"]) {
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        let Ok(loaded) = parse_plan(&text, &path.display().to_string()) else {
            continue;
        };
        let files = rustle_deploy::pack::decode_files(&loaded.plan).unwrap_or_default();
        let mut vars = serde_json::Map::new();
        vars.insert("inventory_hostname".into(), "web1".into());
        vars.insert("group_names".into(), serde_json::json!(["webservers"]));
        let plan = HostPlan {
            deployment_id: "fuzz".into(),
            host: "web1".into(),
            created_at: 1_700_000_000,
            packer_version: "0.1.0".into(),
            check_mode: loaded.plan.check_mode,
            diff_mode: loaded.plan.diff_mode,
            host_vars: vars,
            group_by_vars: Default::default(),
            plays: loaded.plan.plays.clone(),
            magic: serde_json::Map::new(),
            controller_lookups: Vec::new(),
            shared: std::sync::Arc::new(rustle_runner::plan::Shared {
                files,
                ..Default::default()
            }),
        };
        let name = path.file_name().unwrap_or_default().display().to_string();
        out.push((name, plan));
    }
    out
}

/// Sealed payloads (valid, signed with the harness key), their compressed bodies, and
/// the encoded plans: the three readings of the payload harness.
fn payloads() -> Vec<(String, Vec<u8>)> {
    let key = signing_key();
    let mut out = Vec::new();
    for (name, plan) in host_plans() {
        let Ok(mut sealer) = rustle_deploy::pack::Sealer::new(&key) else {
            continue;
        };
        let Ok((sealed, _)) = sealer.seal(&plan) else {
            continue;
        };
        if let Some(body) = sealed.get(payload::HEADER_LEN..) {
            out.push((format!("{name}.body"), body.to_vec()));
        }
        out.push((format!("{name}.payload"), sealed));
        if let Ok(raw) = rmp_serde::to_vec_named(&plan) {
            out.push((format!("{name}.msgpack"), raw));
        }
    }
    out
}

/// Small real executables to pack: a Linux ELF from this machine and the Mach-O fixtures.
fn executables() -> Vec<(String, Vec<u8>)> {
    let mut paths = vec![PathBuf::from("/bin/true")];
    paths.extend(files(
        &root().join("tests/fixtures/macho"),
        &["hello-x86_64"],
    ));
    paths.extend(files(
        &root().join("tests/fixtures/macho"),
        &["hello-aarch64"],
    ));
    paths
        .into_iter()
        .filter_map(|p| Some((p.display().to_string(), std::fs::read(&p).ok()?)))
        .collect()
}

/// A small payload to embed: the smallest sealed fixture plan.
fn small_payload() -> Vec<u8> {
    payloads()
        .into_iter()
        .filter(|(n, _)| n.ends_with(".payload"))
        .map(|(_, d)| d)
        .min_by_key(Vec::len)
        .unwrap_or_else(|| b"RUSTLEPL".to_vec())
}

/// Packed runners, as the locator finds them on a host.
fn packed_runners() -> Vec<(String, Vec<u8>)> {
    let payload = small_payload();
    let mut out = Vec::new();
    for (name, exe) in executables() {
        if let Ok(p) = rustle_deploy::elf::embed(&exe, &payload) {
            out.push((format!("{name}.packed"), p));
        }
        if let Ok(p) = rustle_deploy::macho::embed(&exe, &payload) {
            out.push((format!("{name}.packed"), p));
        }
    }
    out
}

/// Runners with a payload length byte in front, as the embed harness reads its input.
fn embed_inputs() -> Vec<(String, Vec<u8>)> {
    executables()
        .into_iter()
        .map(|(name, exe)| {
            let mut input = vec![16u8];
            input.extend_from_slice(b"RUSTLEPL payload");
            input.extend(exe);
            (name, input)
        })
        .collect()
}

/// Inputs for the archive round trip (which reads its bytes as a list of members): a few
/// hand-made member lists covering each kind, long names and empty data.
fn member_lists() -> Vec<(String, Vec<u8>)> {
    let mut long = vec![3u8, 0, 150];
    long.extend(std::iter::repeat_n(b'd', 150));
    long.extend([0o644u32.to_le_bytes(), [0; 4], [0; 4], [0; 4]].concat());
    long.push(2);
    long.extend(std::iter::repeat_n(b'x', 32));
    vec![
        ("empty".into(), vec![0]),
        (
            "file".into(),
            [
                &[1u8, 0, 5][..],
                b"a.txt",
                &0o644u32.to_le_bytes(),
                &1_700_000_000u32.to_le_bytes(),
                &1000u32.to_le_bytes(),
                &1000u32.to_le_bytes(),
                &[1],
                &[b'z'; 16],
            ]
            .concat(),
        ),
        (
            "kinds".into(),
            (0u8..4)
                .flat_map(|k| [k, 3, b'n', b'/', b'1' + k, 2, b'l', b'k'])
                .fold(vec![4u8], |mut v, b| {
                    v.push(b);
                    v
                }),
        ),
        ("long-names".into(), long),
    ]
}

/// Committed seeds for a target (`fuzz/seeds/<target>/`).
fn committed(target: &str) -> Vec<(String, Vec<u8>)> {
    read_all(files(&root().join("fuzz/seeds").join(target), &[]))
}

/// Every seed of one target, by name.
pub fn all(target: &str) -> Vec<(String, Vec<u8>)> {
    let mut out = committed(target);
    match target {
        "payload" => out.extend(payloads()),
        "locate" => out.extend(packed_runners()),
        "embed" => out.extend(embed_inputs()),
        "archive_round_trip" => out.extend(member_lists()),
        "inventory" => out.extend(read_all(
            fixtures(&[".ini", ".yml", ".json"])
                .into_iter()
                .filter(|p| {
                    let s = p.to_string_lossy();
                    s.contains("inventor") || s.contains("hosts") || s.contains("_vars")
                })
                .collect(),
        )),
        "playbook" => out.extend(read_all(fixtures(&[".yml", ".json"]))),
        "vault" => out.extend(read_all(
            fixtures(&[".yml"])
                .into_iter()
                .filter(|p| std::fs::read_to_string(p).is_ok_and(|t| t.contains("$ANSIBLE_VAULT")))
                .collect(),
        )),
        "template" => out.extend(read_all(fixtures(&[".j2"]))),
        _ => {}
    }
    out
}
