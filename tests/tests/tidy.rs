//! Project-wide facts checked as plain tests: what the runner may link, and that every
//! source file says what it is for.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::Command;

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");

/// The runner's normal (linked) dependencies, by crate name, for a target triple.
fn runner_dependencies(triple: &str) -> Vec<String> {
    let out = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args([
            "tree",
            "--package",
            "rustle-runner",
            "--edges",
            "normal",
            "--prefix",
            "none",
            "--target",
            triple,
            "--offline",
        ])
        .current_dir(ROOT)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect()
}

#[test]
fn runner_links_no_async_runtime_no_ssh_and_no_c() {
    // Forbidden because the runner must stay small, synchronous, offline, and link for
    // any musl target with rustup alone (C code needs a cross C compiler there).
    let forbidden = [
        "tokio",
        "async-std",
        "mio",
        "russh",
        "russh-sftp",
        "ssh2",
        "zstd",
        "reqwest",
    ];
    for triple in ["x86_64-unknown-linux-musl", "aarch64-unknown-linux-musl"] {
        let deps = runner_dependencies(triple);
        assert!(
            deps.iter().any(|d| d == "ruzstd"),
            "dependency list looks wrong: {deps:?}"
        );
        for d in &deps {
            assert!(
                !forbidden.contains(&d.as_str()),
                "{triple}: runner depends on {d}"
            );
            assert!(!d.ends_with("-sys"), "{triple}: runner links C through {d}");
        }
    }
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if path.is_dir() && name != "target" && name != "fixtures" && !name.starts_with('.') {
            rust_files(&path, out);
        } else if name.ends_with(".rs") {
            out.push(path);
        }
    }
}

#[test]
fn every_rust_file_opens_with_a_doc_line() {
    let mut files = Vec::new();
    for dir in ["runner", "packer", "xtask", "tests"] {
        rust_files(&Path::new(ROOT).join(dir), &mut files);
    }
    assert!(files.len() > 20, "found only {} files", files.len());
    let missing: Vec<_> = files
        .iter()
        .filter(|f| !std::fs::read_to_string(f).unwrap().starts_with("//!"))
        .collect();
    assert!(missing.is_empty(), "files without a //! line: {missing:?}");
}
