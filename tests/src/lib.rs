//! Shared support for the end-to-end tests and benchmarks: finding the prebuilt runner.

use std::path::PathBuf;

/// The prebuilt, unpacked runner for `triple` (e.g. `x86_64-unknown-linux-musl`), as
/// `cargo xtask runners` leaves it under the workspace's `target/runners/`.
///
/// # Panics
///
/// When the runner has not been built. Tests and benchmarks cannot do anything useful
/// without it, and building it from here would hide a slow musl build inside a test run,
/// so the message says which command builds it instead.
#[allow(clippy::panic)] // only ever called from tests and benchmarks, where panicking is the report
pub fn runner_path(triple: &str) -> PathBuf {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("target")
        .join("runners")
        .join(triple)
        .join("rustle-runner");
    if !path.is_file() {
        panic!(
            "no prebuilt runner at {}: run `cargo xtask runners --native` (or `cargo xtask test`, which builds it first)",
            path.display()
        );
    }
    path
}
