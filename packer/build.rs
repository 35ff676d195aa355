//! Embeds the runner crate's sources (and the workspace manifest, lockfile and runner
//! matrix) into rustle-deploy, so it can build custom runners for plans that carry Rust
//! modules without the source tree it was built from (see `src/custom.rs`).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

fn main() -> Result<()> {
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?);
    let root = manifest_dir
        .parent()
        .ok_or("the packer crate has no parent directory")?
        .to_path_buf();
    let runner = root.join("runner");

    let mut files = Vec::new();
    files.push(runner.join("Cargo.toml"));
    collect(&runner.join("src"), &mut files)?;
    files.sort();

    let mut out = String::from(
        "/// The runner crate's files, as (path relative to the workspace root, content).\n\
         pub const RUNNER_FILES: &[(&str, &str)] = &[\n",
    );
    for f in &files {
        let rel = f
            .strip_prefix(&root)?
            .to_str()
            .ok_or("a runner source path is not UTF-8")?;
        let abs = f.to_str().ok_or("a runner source path is not UTF-8")?;
        writeln!(out, "    ({rel:?}, include_str!({abs:?})),")?;
    }
    out.push_str("];\n");
    for (name, file, doc) in [
        (
            "WORKSPACE_MANIFEST",
            "Cargo.toml",
            "The workspace's Cargo.toml (shared package keys, dependencies, profiles).",
        ),
        (
            "LOCKFILE",
            "Cargo.lock",
            "The workspace's Cargo.lock: custom runners use the same dependency versions.",
        ),
        (
            "MATRIX",
            "prebuilt-targets.toml",
            "The runner matrix: how each triple is built (cargo or zigbuild, linker).",
        ),
    ] {
        let abs = root.join(file);
        let abs = abs.to_str().ok_or("a workspace path is not UTF-8")?;
        writeln!(
            out,
            "/// {doc}\npub const {name}: &str = include_str!({abs:?});"
        )?;
        println!("cargo:rerun-if-changed={abs}");
    }
    // A directory makes cargo rerun this script when any file under it changes, is
    // added or removed, so a new runner source file is never left out.
    println!("cargo:rerun-if-changed={}", runner.join("src").display());
    println!(
        "cargo:rerun-if-changed={}",
        runner.join("Cargo.toml").display()
    );

    let dest = PathBuf::from(std::env::var("OUT_DIR")?).join("runner_sources.rs");
    std::fs::write(dest, out)?;
    Ok(())
}

/// Every `.rs` file under `dir`, recursively.
fn collect(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            collect(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    Ok(())
}
