//! Finding prebuilt runners, checking them against their manifest, and building the
//! native one on demand.
//!
//! `cargo xtask runners` writes each runner to `<dir>/<triple>/rustle-runner` and
//! records it in `<dir>/manifest.json` (triple, file, blake3, size, versions). The
//! packer looks for that directory, in order: `--runner-dir`, `$RUSTLE_RUNNER_DIR`,
//! `target/runners` of the source tree it was built from, `~/.rustle/runners`.

use crate::target::Triple;
use rustle_runner::payload::{Digest, FORMAT_VERSION};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The source tree this packer was built from (for on-demand runner builds).
const SOURCE_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");

/// The manifest's file name inside a runner directory.
pub const MANIFEST: &str = "manifest.json";

/// A runner problem; every message says what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum RunnerError {
    /// No runner for this triple in any searched directory.
    #[error("no prebuilt runner for {triple} (looked in: {searched}); build it with: {command}")]
    Missing {
        /// The triple.
        triple: Triple,
        /// The directories searched, joined for display.
        searched: String,
        /// The command that builds it.
        command: String,
    },
    /// The manifest cannot be read or parsed.
    #[error("runner manifest {path}: {reason}")]
    Manifest {
        /// The manifest file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The runner file does not match its manifest entry.
    #[error(
        "runner {path} is corrupt: blake3 {actual}, manifest says {expected}; rebuild with: cargo xtask runners --target {triple}"
    )]
    Corrupt {
        /// The runner file.
        path: PathBuf,
        /// Its triple.
        triple: Triple,
        /// Manifest digest.
        expected: String,
        /// Actual digest.
        actual: String,
    },
    /// The runner reads a different payload format than this packer writes.
    #[error(
        "runner {path} reads payload format {found}, this rustle-deploy writes {FORMAT_VERSION}; rebuild with: cargo xtask runners --target {triple}"
    )]
    Incompatible {
        /// The runner file.
        path: PathBuf,
        /// Its triple.
        triple: Triple,
        /// Its payload format.
        found: u16,
    },
    /// Reading the runner failed.
    #[error("cannot read runner {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The on-demand build failed.
    #[error("building the {triple} runner failed: {reason}")]
    BuildFailed {
        /// The triple.
        triple: Triple,
        /// Why.
        reason: String,
    },
}

#[derive(Debug, Deserialize)]
struct Manifest {
    runners: Vec<Entry>,
}

#[derive(Debug, Deserialize)]
struct Entry {
    triple: String,
    file: String,
    blake3: String,
    size: u64,
    payload_format: u16,
}

/// A prebuilt runner, read and checked.
#[derive(Debug, Clone)]
pub struct Runner {
    /// Its triple.
    pub triple: Triple,
    /// Where it was found.
    pub path: PathBuf,
    /// Its bytes.
    pub bytes: Vec<u8>,
    /// Its blake3 digest.
    pub digest: Digest,
}

/// The directories searched for runners, in order.
pub fn search_dirs(explicit: Option<&Path>) -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Some(d) = explicit {
        dirs.push(d.to_path_buf());
    }
    if let Some(d) = std::env::var_os("RUSTLE_RUNNER_DIR") {
        dirs.push(PathBuf::from(d));
    }
    let source = Path::new(SOURCE_DIR);
    if source.join("runner/Cargo.toml").exists() {
        dirs.push(source.join("target/runners"));
    }
    if let Some(home) = std::env::var_os("HOME") {
        dirs.push(Path::new(&home).join(".rustle/runners"));
    }
    dirs
}

/// The command a user runs to build a missing runner.
pub fn build_command(triple: Triple) -> String {
    format!("cargo xtask runners --target {triple}")
}

/// Finds the runner for `triple` in the first directory whose manifest lists it, and
/// checks its digest and payload format.
pub fn find(triple: Triple, explicit: Option<&Path>) -> Result<Runner, RunnerError> {
    find_in(triple, &search_dirs(explicit))
}

/// [`find`] over exactly `dirs`, in order.
fn find_in(triple: Triple, dirs: &[PathBuf]) -> Result<Runner, RunnerError> {
    for dir in dirs {
        let manifest_path = dir.join(MANIFEST);
        if !manifest_path.exists() {
            continue;
        }
        let text = std::fs::read_to_string(&manifest_path).map_err(|e| RunnerError::Manifest {
            path: manifest_path.clone(),
            reason: e.to_string(),
        })?;
        let manifest: Manifest =
            serde_json::from_str(&text).map_err(|e| RunnerError::Manifest {
                path: manifest_path.clone(),
                reason: e.to_string(),
            })?;
        let Some(entry) = manifest
            .runners
            .iter()
            .find(|e| e.triple == triple.as_str())
        else {
            continue;
        };
        let path = dir.join(&entry.file);
        if entry.payload_format != FORMAT_VERSION {
            return Err(RunnerError::Incompatible {
                path,
                triple,
                found: entry.payload_format,
            });
        }
        let bytes = std::fs::read(&path).map_err(|source| RunnerError::Io {
            path: path.clone(),
            source,
        })?;
        let digest = Digest::of(&bytes);
        if digest.to_hex() != entry.blake3 || bytes.len() as u64 != entry.size {
            return Err(RunnerError::Corrupt {
                path,
                triple,
                expected: entry.blake3.clone(),
                actual: digest.to_hex(),
            });
        }
        return Ok(Runner {
            triple,
            path,
            bytes,
            digest,
        });
    }
    Err(RunnerError::Missing {
        triple,
        searched: dirs
            .iter()
            .map(|d| d.display().to_string())
            .collect::<Vec<_>>()
            .join(", "),
        command: build_command(triple),
    })
}

/// True when this packer was built from a source tree that is still there, so it can
/// build a missing runner itself.
pub fn can_build() -> bool {
    Path::new(SOURCE_DIR).join("xtask/Cargo.toml").exists()
}

/// Builds the runner for `triple` from the source tree (`cargo xtask runners`), with
/// cargo's output going to our stderr so the user sees progress.
pub fn build(triple: Triple) -> Result<(), RunnerError> {
    let fail = |reason: String| RunnerError::BuildFailed { triple, reason };
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .args(["xtask", "runners", "--target", triple.as_str()])
        .current_dir(SOURCE_DIR)
        .stdout(std::process::Stdio::inherit())
        .status()
        .map_err(|e| fail(format!("cannot start cargo: {e}")))?;
    if status.success() {
        Ok(())
    } else {
        Err(fail(format!(
            "`{}` exited with {status}",
            build_command(triple)
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_manifest(dir: &Path, body: &[u8], digest: &str, format: u16) {
        std::fs::create_dir_all(dir.join("x86_64-unknown-linux-musl")).unwrap();
        std::fs::write(dir.join("x86_64-unknown-linux-musl/rustle-runner"), body).unwrap();
        let m = format!(
            r#"{{"format":"rustle-runner-manifest","version":1,"runners":[{{"triple":"x86_64-unknown-linux-musl","file":"x86_64-unknown-linux-musl/rustle-runner","blake3":"{digest}","size":{},"payload_format":{format},"runner_version":"0.1.0"}}]}}"#,
            body.len()
        );
        std::fs::write(dir.join(MANIFEST), m).unwrap();
    }

    #[test]
    fn finds_checks_and_refuses() {
        let dir = tempfile::tempdir().unwrap();
        let body = b"\x7fELF fake runner";
        write_manifest(dir.path(), body, &Digest::of(body).to_hex(), FORMAT_VERSION);
        let r = find(Triple::X86_64LinuxMusl, Some(dir.path())).unwrap();
        assert_eq!(r.bytes, body);

        write_manifest(
            dir.path(),
            body,
            &Digest::of(b"other").to_hex(),
            FORMAT_VERSION,
        );
        let e = find(Triple::X86_64LinuxMusl, Some(dir.path())).unwrap_err();
        assert!(matches!(e, RunnerError::Corrupt { .. }), "{e}");

        write_manifest(dir.path(), body, &Digest::of(body).to_hex(), 99);
        let e = find(Triple::X86_64LinuxMusl, Some(dir.path())).unwrap_err();
        assert!(matches!(e, RunnerError::Incompatible { .. }), "{e}");

        std::fs::write(dir.path().join(MANIFEST), "{").unwrap();
        let e = find(Triple::X86_64LinuxMusl, Some(dir.path())).unwrap_err();
        assert!(e.to_string().contains("manifest.json"), "{e}");
    }

    #[test]
    fn missing_runner_names_the_command() {
        let dir = tempfile::tempdir().unwrap();
        // Only an empty directory: the source tree's target/runners may well have
        // every runner of the matrix.
        let e = find_in(Triple::Aarch64Darwin, &[dir.path().to_path_buf()]).unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("cargo xtask runners --target aarch64-apple-darwin"),
            "{msg}"
        );
    }
}
