//! The host layout: where a verified runner installs itself, keeps its report, and
//! records what was deployed.
//!
//! ```text
//! <root>/                     ~/.rustle, or /var/lib/rustle for root, or $RUSTLE_ROOT (0700)
//!   .lock                     held (flock) by the one runner working on this root
//!   releases/<deployment>/    one per deployment (0700), the last few kept
//!     rustle-runner           a copy of the runner, kept for --rollback
//!     report.json             its report
//!   current -> releases/<id>  the last release that ran without failure
//!   state.json                the kept deployments: id, host, digests, version, time, status
//! ```
//! Every change is a write to a fresh file and a rename, so a host interrupted at any
//! point keeps its previous `current` and a readable `state.json`. Every change is also
//! made under the root's lock ([`Lock`]): two deploys, a deploy and a rollback, or a
//! retry while a runner the deployer gave up on still runs, take turns instead of
//! losing each other's `state.json` entries.

use serde_json::{Value, json};
use std::io::{Read as _, Seek as _, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt as _, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

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
    /// `state.json` exists but cannot be read as a deployment record: the history is
    /// never silently replaced by an empty one.
    #[error("{path} is not a readable deployment record ({reason}); repair or remove it to go on")]
    State {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// Another runner holds the root's lock.
    #[error("another deploy is running on this host{holder} ({path})")]
    Busy {
        /// The lock file.
        path: PathBuf,
        /// " since <time>, pid <pid>" as the holder wrote it, or empty.
        holder: String,
    },
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

/// Creates `path` (and missing parents) mode 0700, as every directory of the layout is.
pub fn private_dir(path: &Path) -> Result<(), InstallError> {
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
    if let Err(e) = f.write_all(bytes).and_then(|_| f.sync_all()) {
        // A full disk must not leave a partial file behind.
        drop(f);
        let _ = std::fs::remove_file(&tmp);
        return Err(io(&tmp)(e));
    }
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
    /// The blake3 (hex) of the release's runner file, recorded in `state.json` so that
    /// `rollback` has that runner check it is still the file installed
    /// (`--expect-file`); empty when unknown.
    pub runner_digest: String,
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
/// already runs from there) and, for a runner given its payload as a file, the payload
/// beside it. Returns the release. A release that cannot be completed (a full disk, say)
/// is removed again when this call created it, so nothing half-written stays behind.
pub fn install_self(
    root: &Path,
    id: &str,
    payload: Option<&[u8]>,
) -> Result<Release, InstallError> {
    check_id(id)?;
    let dir = root.join("releases").join(id);
    let fresh = !dir.exists();
    private_dir(&dir)?;
    let filled = fill_release(&dir, payload);
    if filled.is_err() && fresh {
        let _ = std::fs::remove_dir_all(&dir);
    }
    Ok(Release {
        root: root.to_path_buf(),
        dir,
        id: id.to_string(),
        runner_digest: filled?,
    })
}

/// Puts the runner (and payload) into a release directory; returns the runner's digest.
fn fill_release(dir: &Path, payload: Option<&[u8]>) -> Result<String, InstallError> {
    // `me` opens the running file; its canonical name (none if it was deleted, or if
    // the platform cannot say) is what "already installed" compares.
    let me = crate::locate::own_executable().map_err(|e| InstallError::Io {
        path: PathBuf::from("<own executable>"),
        source: std::io::Error::other(e.to_string()),
    })?;
    let me_name = std::fs::canonicalize(&me).ok();
    let target = dir.join("rustle-runner");
    let digest = if already_installed(&target, me_name.as_deref()) {
        // Run from the release itself (blue-green's switch, a rollback).
        std::fs::File::open(&target)
            .and_then(crate::payload::Digest::of_reader)
            .map_err(io(&target))?
    } else {
        // Always a copy, never a hard link to the runner cache: under sudo the release is
        // root's, and must not share its inode with a file the login user can rewrite.
        let bytes = std::fs::read(&me).map_err(io(&me))?;
        write_atomic(&target, &bytes, 0o700)?;
        crate::payload::Digest::of(&bytes)
    };
    if let Some(p) = payload {
        write_atomic(&dir.join("payload.bin"), p, 0o600)?;
    }
    Ok(digest.to_hex())
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
    /// A task failed, or the run was stopped: `current` is unchanged.
    Failed,
    /// Verified and installed, not run yet (blue-green): `current` is unchanged.
    Staged,
}

/// Records a finished run in `state.json` and, when it succeeded, points `current` at
/// its release (a new symlink renamed over the old one). A `state.json` that cannot be
/// read is an error, and nothing changes: its history is never replaced.
pub fn record(
    release: &Release,
    host: &str,
    digest: &str,
    outcome: Outcome,
) -> Result<(), InstallError> {
    let mut state = read_state(&release.root)?;
    if outcome == Outcome::Ok {
        point_current(&release.root, &release.id)?;
    }
    let mut entry = json!({
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
    if let (false, Some(fields)) = (release.runner_digest.is_empty(), entry.as_object_mut()) {
        fields.insert("runner".into(), json!(release.runner_digest));
    }
    match state.get_mut("deployments").and_then(Value::as_array_mut) {
        Some(list) => list.push(entry),
        None => state = json!({"v": 1, "deployments": [entry]}),
    }
    write_state(&release.root, &state)
}

fn write_state(root: &Path, state: &Value) -> Result<(), InstallError> {
    let bytes = serde_json::to_vec_pretty(state).unwrap_or_default();
    write_atomic(&root.join("state.json"), &bytes, 0o600)
}

/// The recorded deployments: an empty record when there is no `state.json`, an error
/// naming the file when it cannot be read or is not a deployment record.
pub fn read_state(root: &Path) -> Result<Value, InstallError> {
    let path = root.join("state.json");
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(json!({"v": 1, "deployments": []}));
        }
        Err(e) => return Err(io(&path)(e)),
    };
    let state: Value = serde_json::from_slice(&bytes).map_err(|e| InstallError::State {
        path: path.clone(),
        reason: e.to_string(),
    })?;
    if !state.get("deployments").is_some_and(Value::is_array) {
        return Err(InstallError::State {
            path,
            reason: "it has no \"deployments\" list".into(),
        });
    }
    Ok(state)
}

/// The release `<root>/current` points at, if any.
pub fn current_id(root: &Path) -> Option<String> {
    std::fs::read_link(root.join("current"))
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
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

/// Removes all but the `keep` most recently run releases (by their last entry in
/// `state.json`; a release directory with no entry, left by a run that never recorded,
/// counts as the oldest), never the one `current` points at nor `running`, and drops
/// the entries of releases no longer on disk from `state.json`, so old payloads (and the
/// secrets in them) do not pile up. `keep` 0 keeps everything. Returns the removed ids.
/// Call with the root's lock held.
pub fn prune(root: &Path, keep: usize, running: &str) -> Result<Vec<String>, InstallError> {
    if keep == 0 {
        return Ok(Vec::new());
    }
    let mut state = read_state(root)?;
    let releases = root.join("releases");
    let mut on_disk: Vec<String> = match std::fs::read_dir(&releases) {
        Ok(entries) => entries
            .filter_map(Result::ok)
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| check_id(n).is_ok())
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(io(&releases)(e)),
    };
    on_disk.sort();
    let list = state
        .get("deployments")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut recent: Vec<&str> = Vec::new();
    for id in list.iter().rev().filter_map(|d| d.get("id")?.as_str()) {
        if !recent.contains(&id) && on_disk.iter().any(|n| n == id) {
            recent.push(id);
        }
    }
    let current = current_id(root);
    let kept: Vec<&str> = recent.iter().take(keep).copied().collect();
    let mut removed = Vec::new();
    let mut first_error = None;
    for name in &on_disk {
        if kept.contains(&name.as_str()) || Some(name) == current.as_ref() || name == running {
            continue;
        }
        let dir = releases.join(name);
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => removed.push(name.clone()),
            Err(e) => {
                first_error.get_or_insert(InstallError::Io {
                    path: dir,
                    source: e,
                });
            }
        }
    }
    let before = list.len();
    let left: Vec<Value> = list
        .into_iter()
        .filter(|d| {
            d.get("id")
                .and_then(Value::as_str)
                .is_some_and(|id| check_id(id).is_ok() && releases.join(id).is_dir())
        })
        .collect();
    if left.len() != before {
        if let Some(fields) = state.as_object_mut() {
            fields.insert("deployments".into(), Value::Array(left));
        }
        write_state(root, &state)?;
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(removed),
    }
}

/// The environment variable through which `rollback` tells the release runner it starts
/// that it already holds the root's lock for it: `<pid> <root>`.
const LOCK_HELD_ENV: &str = "RUSTLE_LOCK_HELD";

/// Exclusive use of a state root: an advisory lock (`flock`, std's `File::lock`) on
/// `<root>/.lock`, held from before the install to after `current` moves, by
/// `rollback` and `cleanup` as well. The kernel drops it however its holder ends (a
/// crash, a kill), so a lock is never left behind. The holder writes its pid and start
/// time into the file, for the message a runner that finds it taken gives.
#[derive(Debug)]
pub struct Lock {
    /// None when the parent process (`rollback`) holds the lock for this one.
    file: Option<std::fs::File>,
    path: PathBuf,
}

impl Lock {
    /// Takes the lock of `root` (which must exist), waiting up to `wait` for another
    /// holder to finish, or less if `give_up` says so (the deployer went away).
    pub fn acquire(
        root: &Path,
        wait: Duration,
        give_up: &dyn Fn() -> bool,
    ) -> Result<Lock, InstallError> {
        let path = root.join(".lock");
        if held_by_parent(root) {
            return Ok(Lock { file: None, path });
        }
        let deadline = Instant::now() + wait;
        loop {
            let mut file = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o600)
                .open(&path)
                .map_err(io(&path))?;
            match file.try_lock() {
                Ok(()) => {
                    // `cleanup` removes the file while it holds it: a lock on a file no
                    // longer at the path protects nothing, so take the one there now.
                    let here = std::fs::symlink_metadata(&path).ok();
                    let mine = file.metadata().ok();
                    let same = matches!((here, mine), (Some(h), Some(m)) if h.ino() == m.ino() && h.dev() == m.dev());
                    if !same {
                        continue;
                    }
                    let since = SystemTime::now()
                        .duration_since(UNIX_EPOCH)
                        .map_or(0, |d| d.as_secs());
                    // Who holds it is for messages only: a failure to say so is no reason
                    // to stop.
                    let _ = file
                        .set_len(0)
                        .and_then(|()| file.rewind())
                        .and_then(|()| writeln!(file, "pid={} since={since}", std::process::id()));
                    return Ok(Lock {
                        file: Some(file),
                        path,
                    });
                }
                Err(std::fs::TryLockError::WouldBlock) => {
                    if Instant::now() >= deadline || give_up() {
                        let mut text = String::new();
                        let _ = file.read_to_string(&mut text);
                        return Err(InstallError::Busy {
                            holder: describe_holder(&text),
                            path,
                        });
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(std::fs::TryLockError::Error(e)) => return Err(io(&path)(e)),
            }
        }
    }

    /// Whether the parent process (`rollback`) holds the lock for this one: pruning is
    /// then the parent's to do.
    pub fn by_parent(&self) -> bool {
        self.file.is_none()
    }

    /// The variable (name, value) that tells a child runner started for `root` while
    /// this lock is held that it need not (and must not wait to) take it itself.
    pub fn env_for_child(&self, root: &Path) -> (&'static str, String) {
        (
            LOCK_HELD_ENV,
            format!("{} {}", std::process::id(), root.display()),
        )
    }
}

/// Whether the parent process says it holds the lock of `root` for this one.
fn held_by_parent(root: &Path) -> bool {
    let Some(v) = std::env::var_os(LOCK_HELD_ENV) else {
        return false;
    };
    let v = v.to_string_lossy();
    let Some((pid, held)) = v.split_once(' ') else {
        return false;
    };
    pid.parse::<u32>().ok() == Some(std::os::unix::process::parent_id())
        && held == root.display().to_string()
}

/// " since <time> UTC, pid <pid>" from a lock file's text, or "" when it says nothing.
fn describe_holder(text: &str) -> String {
    let field = |k: &str| {
        text.split_whitespace()
            .find_map(|w| w.strip_prefix(k))
            .and_then(|v| v.parse::<u64>().ok())
    };
    match (field("pid="), field("since=")) {
        (Some(pid), Some(since)) => {
            let at = crate::facts::format_time(UNIX_EPOCH + Duration::from_secs(since));
            let at = at.split('.').next().unwrap_or_default().to_string();
            format!(" since {at} UTC, pid {pid}")
        }
        (Some(pid), None) => format!(", pid {pid}"),
        _ => String::new(),
    }
}

/// Removes what runners keep under `root`: releases, the runner cache, `current`,
/// `state.json` and leftover temporaries, then the lock file itself (while still held,
/// so a runner waiting for it takes a fresh one). A user's own files there, and
/// `trusted_keys`, stay. Returns what was removed.
pub fn cleanup(root: &Path, lock: Lock) -> Result<Vec<PathBuf>, InstallError> {
    let mut removed = Vec::new();
    for name in ["releases", "cache"] {
        let p = root.join(name);
        if p.is_dir() {
            std::fs::remove_dir_all(&p).map_err(io(&p))?;
            removed.push(p);
        }
    }
    let temporary = |n: &str| n.starts_with(".current.tmp") || n.starts_with("state.json.tmp");
    let mut files = vec![root.join("current"), root.join("state.json")];
    if let Ok(entries) = std::fs::read_dir(root) {
        files.extend(
            entries
                .filter_map(Result::ok)
                .filter(|e| temporary(&e.file_name().to_string_lossy()))
                .map(|e| e.path()),
        );
    }
    for p in files {
        match std::fs::remove_file(&p) {
            Ok(()) => removed.push(p),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(&p)(e)),
        }
    }
    if lock.file.is_some() {
        let _ = std::fs::remove_file(&lock.path);
    }
    drop(lock);
    Ok(removed)
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

    fn release(root: &Path, id: &str) -> Release {
        Release {
            root: root.to_path_buf(),
            dir: root.join("releases").join(id),
            id: id.into(),
            runner_digest: format!("runner-of-{id}"),
        }
    }

    #[test]
    fn record_keeps_history_and_moves_current_only_on_success() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        record(&release(root, "one"), "h", "d1", Outcome::Ok).unwrap();
        record(&release(root, "two"), "h", "d2", Outcome::Failed).unwrap();
        assert_eq!(
            std::fs::read_link(root.join("current")).unwrap(),
            Path::new("releases/one")
        );
        let state = read_state(root).unwrap();
        let list = state["deployments"].as_array().unwrap();
        assert_eq!(list.len(), 2);
        assert_eq!(list[1]["status"], "failed");
        assert_eq!(list[0]["runner"], "runner-of-one");
    }

    #[test]
    fn a_damaged_state_file_is_an_error_naming_it_and_is_never_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        record(&release(root, "one"), "h", "d1", Outcome::Ok).unwrap();
        for garbage in ["garbage", "{\"v\": 1}", "[]"] {
            std::fs::write(root.join("state.json"), garbage).unwrap();
            let e = read_state(root).unwrap_err().to_string();
            assert!(
                e.contains(&root.join("state.json").display().to_string()),
                "{e}"
            );
            let e = record(&release(root, "two"), "h", "d2", Outcome::Ok).unwrap_err();
            assert!(matches!(e, InstallError::State { .. }), "{e}");
            assert_eq!(
                std::fs::read_to_string(root.join("state.json")).unwrap(),
                garbage
            );
            assert_eq!(current_id(root).as_deref(), Some("one"), "current moved");
        }
    }

    #[test]
    fn pruning_keeps_the_latest_releases_current_and_the_running_one() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let ids: Vec<String> = (1..=7).map(|i| format!("r{i}")).collect();
        for id in &ids {
            std::fs::create_dir_all(root.join("releases").join(id)).unwrap();
        }
        // A leftover directory with no record counts as the oldest.
        std::fs::create_dir_all(root.join("releases/stray")).unwrap();
        record(&release(root, "r1"), "h", "d", Outcome::Ok).unwrap();
        for id in &ids[1..6] {
            record(&release(root, id), "h", "d", Outcome::Failed).unwrap();
        }
        // r7 is being run (not recorded yet); r1 is current.
        let removed = prune(root, 3, "r7").unwrap();
        let mut left: Vec<String> = std::fs::read_dir(root.join("releases"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(left, ["r1", "r4", "r5", "r6", "r7"], "removed {removed:?}");
        let state = read_state(root).unwrap();
        let recorded: Vec<&str> = state["deployments"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["id"].as_str().unwrap())
            .collect();
        assert_eq!(recorded, ["r1", "r4", "r5", "r6"]);
        // 0 keeps everything.
        assert!(prune(root, 0, "r7").unwrap().is_empty());
    }

    #[test]
    fn a_second_holder_waits_then_is_told_who_holds_the_lock() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let first = Lock::acquire(root, Duration::ZERO, &|| false).unwrap();
        let e = Lock::acquire(root, Duration::from_millis(300), &|| false)
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("another deploy is running on this host since ")
                && e.contains(&format!(" UTC, pid {} (", std::process::id()))
                && e.contains(".lock"),
            "{e}"
        );
        // A holder that goes away lets the next one in; so does `cleanup`, which
        // removes the file while it holds it.
        drop(first);
        let second = Lock::acquire(root, Duration::ZERO, &|| false).unwrap();
        cleanup(root, second).unwrap();
        assert!(!root.join(".lock").exists());
        let third = Lock::acquire(root, Duration::ZERO, &|| false).unwrap();
        assert!(Lock::acquire(root, Duration::ZERO, &|| false).is_err());
        drop(third);
    }

    #[test]
    fn cleanup_removes_what_runners_keep_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        record(&release(root, "one"), "h", "d", Outcome::Ok).unwrap();
        std::fs::create_dir_all(root.join("releases/one")).unwrap();
        std::fs::create_dir_all(root.join("cache/abc")).unwrap();
        std::fs::write(root.join("trusted_keys"), "k").unwrap();
        std::fs::write(root.join("notes.txt"), "mine").unwrap();
        std::fs::write(root.join("state.json.tmp42"), "").unwrap();
        let lock = Lock::acquire(root, Duration::ZERO, &|| false).unwrap();
        cleanup(root, lock).unwrap();
        let mut left: Vec<String> = std::fs::read_dir(root)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(left, ["notes.txt", "trusted_keys"]);
    }
}
