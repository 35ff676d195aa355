//! The host layout: where a verified runner installs itself, keeps its report, and
//! records what was deployed.
//!
//! ```text
//! <root>/                     ~/.rustle, or /var/lib/rustle for root, or $RUSTLE_ROOT (0700)
//!   releases/<deployment>/    one per deployment (0700)
//!     rustle-runner           the packed runner, kept for --rollback
//!     report.json             its report
//!   current -> releases/<id>  the last release that ran without failure
//!   state.json                every deployment: id, host, digest, version, time, status
//! ```
//! Every change is a write to a fresh file and a rename, so a host interrupted at any
//! point keeps its previous `current` and a readable `state.json`.

use serde_json::{Value, json};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// A file operation on the host that failed, naming the path.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    /// Filesystem error.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A deployment id that is not a plain file name.
    #[error("deployment id {0:?} is not a safe directory name")]
    BadId(String),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> InstallError + '_ {
    move |source| InstallError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The state root: `$RUSTLE_ROOT`, `/var/lib/rustle` for root, else `~/.rustle`.
pub fn default_root() -> PathBuf {
    if let Some(r) = std::env::var_os("RUSTLE_ROOT") {
        return PathBuf::from(r);
    }
    if crate::facts::current_uid() == Some(0) {
        return PathBuf::from("/var/lib/rustle");
    }
    match std::env::var_os("HOME") {
        Some(h) => Path::new(&h).join(".rustle"),
        None => PathBuf::from("/var/lib/rustle"),
    }
}

/// Deployment ids become directory names: only `[A-Za-z0-9._-]`, not starting with a dot.
pub fn check_id(id: &str) -> Result<(), InstallError> {
    let ok = !id.is_empty()
        && !id.starts_with('.')
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(InstallError::BadId(id.to_string()))
    }
}

fn private_dir(path: &Path) -> Result<(), InstallError> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
        .map_err(io(path))
}

/// Writes a file through a temporary sibling and a rename.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<(), InstallError> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".tmp{}", std::process::id()));
    let tmp = PathBuf::from(tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)
        .map_err(io(&tmp))?;
    f.write_all(bytes)
        .and_then(|_| f.sync_all())
        .map_err(io(&tmp))?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(io(path))
}

/// A release directory on this host.
#[derive(Debug, Clone)]
pub struct Release {
    /// The state root.
    pub root: PathBuf,
    /// `<root>/releases/<id>`.
    pub dir: PathBuf,
    /// The deployment id.
    pub id: String,
}

impl Release {
    /// The installed runner.
    pub fn exe(&self) -> PathBuf {
        self.dir.join("rustle-runner")
    }

    /// The report file.
    pub fn report(&self) -> PathBuf {
        self.dir.join("report.json")
    }

    /// The payload, for a release shipped as a bare runner plus its payload.
    pub fn payload(&self) -> PathBuf {
        self.dir.join("payload.bin")
    }
}

/// Copies the running executable into `<root>/releases/<id>/rustle-runner` (unless it
/// already runs from there; a hard link when it runs from the runner cache) and, for a
/// runner given its payload as a file, the payload beside it. Returns the release.
pub fn install_self(
    root: &Path,
    id: &str,
    payload: Option<&[u8]>,
) -> Result<Release, InstallError> {
    check_id(id)?;
    let dir = root.join("releases").join(id);
    private_dir(&dir)?;
    let release = Release {
        root: root.to_path_buf(),
        dir,
        id: id.to_string(),
    };
    // `me` opens the running file; its canonical name (none if it was deleted, or if
    // the platform cannot say) is what "already installed" compares and hard-links.
    let me = crate::locate::own_executable().map_err(|e| InstallError::Io {
        path: PathBuf::from("<own executable>"),
        source: std::io::Error::other(e.to_string()),
    })?;
    let me_name = std::fs::canonicalize(&me).ok();
    let target = release.exe();
    if !already_installed(&target, me_name.as_deref()) {
        // A cached bare runner is shared by its releases through hard links; a packed
        // one (or one on another filesystem, or one without a name) is copied.
        let _ = std::fs::remove_file(&target);
        let linked = me_name
            .as_deref()
            .is_some_and(|name| std::fs::hard_link(name, &target).is_ok());
        if !linked {
            let bytes = std::fs::read(&me).map_err(io(&me))?;
            write_atomic(&target, &bytes, 0o700)?;
        }
    }
    if let Some(p) = payload {
        write_atomic(&release.payload(), p, 0o600)?;
    }
    Ok(release)
}

/// Whether the runner already runs from `target`: `me` (its canonical name) is the
/// file `target` resolves to. A runner whose own name could not be resolved is never
/// "already installed": it copies itself rather than leave the release without one.
fn already_installed(target: &Path, me: Option<&Path>) -> bool {
    match (std::fs::canonicalize(target), me) {
        (Ok(target), Some(me)) => target == me,
        _ => false,
    }
}

/// How a deployment ended on this host, as `state.json` records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Every task succeeded: the release is now `current`.
    Ok,
    /// A task failed: `current` is unchanged.
    Failed,
    /// Verified and installed, not run yet (blue-green): `current` is unchanged.
    Staged,
}

/// Records a finished run in `state.json` and, when it succeeded, points `current` at
/// its release (a new symlink renamed over the old one).
pub fn record(
    release: &Release,
    host: &str,
    digest: &str,
    outcome: Outcome,
) -> Result<(), InstallError> {
    if outcome == Outcome::Ok {
        point_current(&release.root, &release.id)?;
    }
    let path = release.root.join("state.json");
    let mut state = read_state(&release.root);
    let entry = json!({
        "id": release.id,
        "host": host,
        "digest": digest,
        "version": env!("CARGO_PKG_VERSION"),
        "at": SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0),
        "status": match outcome {
            Outcome::Ok => "ok",
            Outcome::Failed => "failed",
            Outcome::Staged => "staged",
        },
    });
    match state.get_mut("deployments").and_then(Value::as_array_mut) {
        Some(list) => list.push(entry),
        None => state = json!({"v": 1, "deployments": [entry]}),
    }
    let bytes = serde_json::to_vec_pretty(&state).unwrap_or_default();
    write_atomic(&path, &bytes, 0o600)
}

/// The recorded deployments (an empty record when there is none or it is unreadable).
pub fn read_state(root: &Path) -> Value {
    std::fs::read(root.join("state.json"))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .filter(|v: &Value| v.get("deployments").is_some_and(Value::is_array))
        .unwrap_or_else(|| json!({"v": 1, "deployments": []}))
}

/// Points `<root>/current` at `releases/<id>`, atomically.
pub fn point_current(root: &Path, id: &str) -> Result<(), InstallError> {
    check_id(id)?;
    let target = Path::new("releases").join(id);
    let tmp = root.join(format!(".current.tmp{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(&target, &tmp).map_err(io(&tmp))?;
    let current = root.join("current");
    std::fs::rename(&tmp, &current).map_err(io(&current))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unresolvable_own_executable_is_not_already_installed() {
        // On macOS `/proc/self/exe` does not exist: its name resolved to nothing, as did
        // the release's not-yet-copied runner, and "nothing == nothing" skipped the copy.
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("releases/one/rustle-runner");
        let unresolvable = std::fs::canonicalize(dir.path().join("no-such-executable")).ok();
        assert!(!already_installed(&target, unresolvable.as_deref()));

        // The same file, reached through a symlink, is already installed; another is not.
        let runner = dir.path().join("rustle-runner");
        std::fs::write(&runner, b"runner").unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&runner, &link).unwrap();
        let name = std::fs::canonicalize(&runner).unwrap();
        assert!(already_installed(&link, Some(&name)));
        let other = dir.path().join("other");
        std::fs::write(&other, b"runner").unwrap();
        assert!(!already_installed(&other, Some(&name)));
        assert!(!already_installed(&target, Some(&name)));
    }

    #[test]
    fn install_self_copies_the_running_executable() {
        // The test binary stands in for the runner: it must end up in the release,
        // byte for byte, through whichever means this platform names its own file.
        let dir = tempfile::tempdir().unwrap();
        let release = install_self(dir.path(), "one", Some(b"payload")).unwrap();
        let me = std::env::current_exe().unwrap();
        assert_eq!(
            std::fs::read(release.exe()).unwrap(),
            std::fs::read(&me).unwrap()
        );
        assert_eq!(std::fs::read(release.payload()).unwrap(), b"payload");
    }

    #[test]
    fn ids_must_be_plain_names() {
        assert!(check_id("20261127T063310Z-624712").is_ok());
        for bad in ["", ".", "..", "../x", "a/b", ".hidden", "a b"] {
            assert!(check_id(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn record_keeps_history_and_moves_current_only_on_success() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let r1 = Release {
            root: root.to_path_buf(),
            dir: root.join("releases/one"),
            id: "one".into(),
        };
        let r2 = Release {
            id: "two".into(),
            dir: root.join("releases/two"),
            ..r1.clone()
        };
        record(&r1, "h", "d1", Outcome::Ok).unwrap();
        record(&r2, "h", "d2", Outcome::Failed).unwrap();
        assert_eq!(
            std::fs::read_link(root.join("current")).unwrap(),
            Path::new("releases/one")
        );
        let state = read_state(root);
        let list = state["deployments"].as_array().unwrap();
        assert_eq!(list.len(), 2);
        assert_eq!(list[1]["status"], "failed");
        std::fs::write(root.join("state.json"), "garbage").unwrap();
        assert_eq!(read_state(root)["deployments"], json!([]));
    }
}
