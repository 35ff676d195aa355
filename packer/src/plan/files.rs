//! Embeds the files that `copy`, `template`, `unarchive` and `script` tasks read from the
//! control machine.
//!
//! The runner executes on the target host, where the playbook directory does not exist, so
//! every local `src` must travel inside the plan. Files are looked up the way Ansible does
//! for a playbook (no roles): `templates/` or `files/` next to the playbook first, then the
//! playbook directory itself. A `copy` whose `src` is a directory embeds every file below
//! it as `<src>/<sub path>`, which the runner's copy finds by that prefix.

use super::PlanError;
use base64::Engine as _;
use rustle_runner::plan::{DeployPlan, PlanFile, Stamp, Task};
use serde_json::Value;
use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

/// Fills `plan.files` for every `copy`/`template`/`unarchive` task `src` and `script` file
/// (through block/rescue/always, and in handlers) that is not already there, reading it
/// from disk.
///
/// Search order, as Ansible's: for `template`, `base/templates/<src>` then `base/<src>`; for
/// `copy`, `unarchive` and `script`, `base/files/<src>` then `base/<src>`; an absolute `src`
/// as it is. `base` is the directory the playbook was parsed in (by default, the plan file's
/// directory). A `copy`/`unarchive` with `remote_src` (or `copy: false` for unarchive) or
/// without `src` reads nothing here. The script is the first word of the free-form text
/// (`_raw_params`) or of `cmd`. A templated `src` (with `{{` or `{%`) is refused: the file
/// to embed must be known before the run. A `copy` `src` that is a directory embeds each
/// file below it (symlinks followed) as `<src without trailing />/<relative path>`, and
/// its directories and links in the plan's layout (`Library::layout`).
///
/// Text files are stored in `content`, anything else base64-encoded; the permission bits
/// are recorded as an octal string such as `"0644"`.
///
/// A play from a playbook (one that reaches controller trees, `Play::reach`) is resolved
/// as Ansible resolves it, on the host when the task runs: a templated `src`, or one not
/// found here, is left to the runner, which looks for it among the trees' files and fails
/// the task naming every place it looked.
pub fn attach_files(plan: &mut DeployPlan, base: &Path) -> Result<(), PlanError> {
    let mut found: Vec<Found> = Vec::new();
    for (p, play) in plan.plays.iter().enumerate() {
        for (key, list) in [("tasks", &play.tasks), ("handlers", &play.handlers)] {
            for (i, task) in list.iter().enumerate() {
                let path = format!("plays[{p}].{key}[{i}]");
                let cx = Collect {
                    play: &play.name,
                    base,
                    embedded: &plan.files,
                    lenient: !play.reach.is_empty(),
                };
                collect(task, &path, &cx, &mut found)?;
            }
        }
    }

    // The plan keys files by the name tasks use; two different files under one name would
    // silently give one task the other's content.
    let mut resolved: HashMap<&str, &Path> = HashMap::new();
    for f in &found {
        if f.shape.is_some() || plan.files.contains_key(&f.src) {
            continue;
        }
        match resolved.get(f.src.as_str()) {
            Some(first) if *first != f.path.as_path() => {
                return Err(PlanError::FileConflict {
                    task: f.task.clone(),
                    src: f.src.clone(),
                    first: first.to_path_buf(),
                    second: f.path.clone(),
                });
            }
            Some(_) => {}
            None => {
                resolved.insert(&f.src, &f.path);
            }
        }
    }
    for f in &found {
        if let Some(stamp) = f.stamp {
            // Under the controller path too: the runner may find the source among the
            // carried trees (`files/` beside the playbook or in a role), named so.
            let at = super::controller_path(&f.path);
            plan.library.layout.stamps.insert(at, stamp);
            plan.library.layout.stamps.insert(f.src.clone(), stamp);
        }
        match &f.shape {
            Some(None) => {
                plan.library.layout.dirs.insert(f.src.clone());
                continue;
            }
            Some(Some(text)) => {
                plan.library
                    .layout
                    .links
                    .insert(f.src.clone(), text.clone());
                continue;
            }
            None => {}
        }
        if !plan.files.contains_key(&f.src) {
            let file = if f.vars_file {
                vars_as_json(&f.path)?
            } else {
                read_file(&f.path)?
            };
            plan.files.insert(f.src.clone(), file);
        }
    }
    attach_library_modules(plan, base)
}

/// Embeds `library/<module>` for every task whose module is not built into the runner
/// and has a file of that name (with any extension, as `mymod.py`) in `base/library/`,
/// Ansible's place for a playbook's own modules. The runner runs it by Ansible's
/// WANT_JSON convention.
fn attach_library_modules(plan: &mut DeployPlan, base: &Path) -> Result<(), PlanError> {
    let dir = base.join("library");
    if !dir.is_dir() {
        return Ok(());
    }
    let mut wanted = Vec::new();
    for play in &plan.plays {
        let mut all = Vec::new();
        for t in play.tasks.iter().chain(&play.handlers) {
            t.walk(&mut all);
        }
        for t in all {
            let m = t.module_name();
            if !m.is_empty()
                && t.block.is_none()
                && !rustle_runner::modules::is_supported(m)
                && !plan.modules.contains_key(m)
            {
                wanted.push(m.to_string());
            }
        }
    }
    wanted.sort();
    wanted.dedup();
    for module in wanted {
        let key = format!("{}{module}", rustle_runner::modules::LIBRARY_PREFIX);
        if plan.files.contains_key(&key) {
            continue;
        }
        let exact = dir.join(&module);
        let found = if exact.is_file() {
            Some(exact)
        } else {
            let mut candidates: Vec<PathBuf> = std::fs::read_dir(&dir)
                .map_err(|source| PlanError::Io {
                    path: dir.clone(),
                    source,
                })?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_file() && p.file_stem().is_some_and(|s| s == module.as_str()))
                .collect();
            candidates.sort();
            candidates.into_iter().next()
        };
        if let Some(path) = found {
            plan.files.insert(key, read_file(&path)?);
        }
    }
    Ok(())
}

/// A variables file (YAML or JSON) as the JSON the runner's include_vars reads: the
/// runner carries no YAML parser, so the conversion happens here.
fn vars_as_json(path: &Path) -> Result<PlanFile, PlanError> {
    let text = std::fs::read_to_string(path).map_err(|source| PlanError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    // Read as Ansible reads it (YAML 1.1 booleans and numbers, `!unsafe` as the plan's marker).
    let value = crate::ansible_yaml::load(&text)
        .map_err(|e| match e.line {
            Some(line) => format!("line {line}: {}", e.msg),
            None => e.msg,
        })
        .and_then(|v| crate::ansible_yaml::to_json(&v))
        .map_err(|e| PlanError::Field {
            source_name: path.display().to_string(),
            path: "include_vars".to_string(),
            reason: format!("not a YAML or JSON variables file: {e}"),
        })?;
    if !(value.is_object() || value.is_null()) {
        return Err(PlanError::Field {
            source_name: path.display().to_string(),
            path: "include_vars".to_string(),
            reason: "a variables file must hold a mapping".to_string(),
        });
    }
    Ok(PlanFile {
        content: Some(value.to_string()),
        base64: None,
        mode: None,
    })
}

/// A `src` a task refers to and the file it resolved to.
struct Found {
    /// An include_vars file: embedded as JSON.
    vars_file: bool,
    task: String,
    src: String,
    path: PathBuf,
    /// Not a file: a directory (`None`) or a link (its text) of a copied directory,
    /// carried in the plan's layout.
    shape: Option<Option<String>>,
    /// What a synchronize source looked like, for the plan's layout.
    stamp: Option<Stamp>,
}

/// What [`collect`] looks at tasks with.
struct Collect<'a> {
    play: &'a str,
    base: &'a Path,
    embedded: &'a BTreeMap<String, PlanFile>,
    /// A play resolved on the host: templated or missing files are the runner's.
    lenient: bool,
}

/// Looks at one task and everything below it.
fn collect(
    task: &Task,
    path: &str,
    cx: &Collect<'_>,
    found: &mut Vec<Found>,
) -> Result<(), PlanError> {
    match resolve(task, path, cx.play, cx.base, cx.embedded) {
        Ok(files) => found.extend(files),
        // The runner resolves these on the host, as Ansible does when the task runs.
        Err(PlanError::TemplatedSrc { .. } | PlanError::MissingFile { .. }) if cx.lenient => {}
        Err(e) => return Err(e),
    }
    let children = [
        ("block", task.block.as_deref().unwrap_or(&[])),
        ("rescue", task.rescue.as_slice()),
        ("always", task.always.as_slice()),
    ];
    for (key, list) in children {
        for (i, child) in list.iter().enumerate() {
            collect(child, &format!("{path}.{key}[{i}]"), cx, found)?;
        }
    }
    Ok(())
}

/// The `src` a task reads from the control machine, if any, and where Ansible looks for
/// it first (`templates` or `files`).
fn local_src<'t>(
    task: &'t Task,
    path: &str,
) -> Result<Option<(Cow<'t, str>, &'static str)>, PlanError> {
    let module = task.module_name();
    let remote = |key: &str| task.args.get(key).is_some_and(is_truthy);
    let key = match module {
        "template" => "src",
        // `remote_src` means the source is already on the target host.
        "copy" if !remote("remote_src") => "src",
        // assemble's fragments are on the host unless `remote_src` is false; then they
        // are a controller directory, carried as copy carries one.
        "assemble" if task.args.get("remote_src").is_some_and(|v| !is_truthy(v)) => "src",
        // unarchive's old `copy: false` means the same as `remote_src: true`.
        "unarchive" if !remote("remote_src") && task.args.get("copy").is_none_or(is_truthy) => {
            "src"
        }
        // patch's file (`src` or its alias `patchfile`) is the controller's unless
        // `remote_src`.
        "patch" if !remote("remote_src") => {
            if task.args.contains_key("src") {
                "src"
            } else {
                "patchfile"
            }
        }
        // synchronize pushes a controller path unless it pulls or runs elsewhere.
        "synchronize" if synchronize_pushes(task) => "src",
        // include_vars names its file free-form or as `file`; found in `vars/` first.
        "include_vars" => {
            let name = match (task.args.get("file"), task.args.get("_raw_params")) {
                (Some(Value::String(s)), _) | (None, Some(Value::String(s))) => s.as_str(),
                _ => return Ok(None),
            };
            return Ok(Some((Cow::Borrowed(name), "vars")));
        }
        "script" => {
            // The script is the first shell word of the command line, unquoted, as the
            // runner reads it; the rest are its arguments.
            let line = match (task.args.get("cmd"), task.args.get("_raw_params")) {
                (Some(Value::String(s)), _) | (None, Some(Value::String(s))) => s.as_str(),
                _ => return Ok(None),
            };
            return Ok(rustle_runner::modules::script_first_word(line)
                .ok()
                .map(|(first, _)| first)
                .filter(|first| !first.is_empty())
                .map(|first| (Cow::Owned(first), "files")));
        }
        _ => return Ok(None),
    };
    let dir = if module == "template" {
        "templates"
    } else {
        "files"
    };
    match task.args.get(key) {
        // A `copy` with `content` has nothing to read; a `template` without `src` is the
        // runner's to report, with the task's other errors.
        // An empty `src` is the runner's to report (copy's "src (or content) is required").
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() && module == "copy" => Ok(None),
        // unarchive fetches a URL src on the host itself: nothing to embed.
        Some(Value::String(s)) if module == "unarchive" && s.contains("://") => Ok(None),
        Some(Value::String(s)) if !s.is_empty() => Ok(Some((Cow::Borrowed(s.as_str()), dir))),
        Some(other) => Err(PlanError::Field {
            source_name: "(plan)".to_string(),
            path: format!("{path}.args.{key}"),
            reason: format!(
                "task '{}': expected a non-empty path, found {}",
                task.display_name(),
                super::describe(other)
            ),
        }),
    }
}

/// True when a `synchronize` task's `src` is a controller path the payload carries: a
/// push (its default `mode`) that is not delegated, or is delegated to the controller,
/// where Ansible's rsync runs for a push anyway. Delegated to the host itself (or,
/// templated, to whatever the host decides), the paths are the host's; delegated to
/// another host, its module runs there.
pub(crate) fn synchronize_pushes(task: &Task) -> bool {
    let pull = matches!(task.args.get("mode"), Some(Value::String(m)) if m == "pull");
    let elsewhere = (task.delegate_to.as_deref())
        .is_some_and(|d| !rustle_runner::exec::CONTROLLER_NAMES.contains(&d.trim()));
    !pull && !elsewhere
}

/// The name under which a task's local file (or, for a `copy` of a directory, files
/// under `<name>/`) is embedded, if the task reads one; what the packer puts in each
/// host's payload.
pub(crate) fn embedded_name(task: &Task) -> Option<Cow<'_, str>> {
    local_src(task, "").ok().flatten().map(|(src, _)| src)
}

/// The local files a task reads: none, one, or (a `copy` of a directory) every file
/// below the directory.
fn resolve(
    task: &Task,
    path: &str,
    play: &str,
    base: &Path,
    embedded: &BTreeMap<String, PlanFile>,
) -> Result<Vec<Found>, PlanError> {
    let Some((src, dir)) = local_src(task, path)? else {
        return Ok(Vec::new());
    };
    let src = src.as_ref();
    let sync = task.module_name() == "synchronize";
    // The plan already carries this file (or this directory's files): nothing to find,
    // unless rsync needs their stamps.
    let prefix = format!("{}/", src.trim_end_matches('/'));
    if !sync && (embedded.contains_key(src) || embedded.keys().any(|k| k.starts_with(&prefix))) {
        return Ok(Vec::new());
    }
    let task_name = task.display_name();
    if src.contains("{{") || src.contains("{%") {
        return Err(PlanError::TemplatedSrc {
            play: play.to_string(),
            task: task_name,
            src: src.to_string(),
        });
    }
    let given = Path::new(src);
    let searched: Vec<PathBuf> = if given.is_absolute() {
        vec![given.to_path_buf()]
    } else {
        vec![base.join(dir).join(given), base.join(given)]
    };
    let Some(hit) = searched.iter().find(|p| p.exists()) else {
        return Err(PlanError::MissingFile {
            play: play.to_string(),
            task: task_name,
            src: src.to_string(),
            searched,
        });
    };
    if hit.is_dir() && matches!(task.module_name(), "copy" | "assemble" | "synchronize") {
        let walked =
            rustle_runner::tree::walk(hit, MAX_TREE_DEPTH).map_err(|source| PlanError::Io {
                path: hit.clone(),
                source,
            })?;
        let name = |p: &Path| {
            let rel = p.strip_prefix(hit).unwrap_or(p);
            format!("{prefix}{}", rel.to_string_lossy())
        };
        let found = |path: &Path, shape| Found {
            vars_file: false,
            task: task_name.clone(),
            src: name(path),
            path: path.to_path_buf(),
            shape,
            stamp: None,
        };
        let mut out: Vec<Found> = walked.files.iter().map(|p| found(p, None)).collect();
        // The directories and links, for the copy to make them as Ansible's does.
        if task.module_name() != "assemble" {
            out.extend((walked.layout.dirs.iter()).map(|d| found(Path::new(d), Some(None))));
            out.extend(
                (walked.layout.links.iter())
                    .map(|(l, text)| found(Path::new(l), Some(Some(text.clone())))),
            );
        }
        if sync {
            for f in &mut out {
                f.stamp = stamp(&f.path, f.shape.as_ref().is_some_and(Option::is_some))?;
            }
            // The directory itself: rsync keeps its time and mode too.
            out.push(Found {
                src: src.trim_end_matches('/').to_string(),
                shape: Some(None),
                stamp: stamp(hit, false)?,
                ..found(hit, Some(None))
            });
        }
        return Ok(out);
    }
    if !hit.is_file() {
        return Err(PlanError::NotAFile {
            play: play.to_string(),
            task: task_name,
            src: src.to_string(),
            path: hit.clone(),
        });
    }
    Ok(vec![Found {
        vars_file: task.module_name() == "include_vars",
        task: task_name,
        src: src.to_string(),
        path: hit.clone(),
        shape: None,
        stamp: if sync { stamp(hit, false)? } else { None },
    }])
}

/// A synchronize source entry's modification time and mode (of the link itself when
/// `link`).
fn stamp(path: &Path, link: bool) -> Result<Option<Stamp>, PlanError> {
    use std::os::unix::fs::MetadataExt as _;
    let meta = if link {
        std::fs::symlink_metadata(path)
    } else {
        std::fs::metadata(path)
    }
    .map_err(|source| PlanError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(Some(Stamp {
        mtime_ns: meta.mtime().saturating_mul(1_000_000_000) + meta.mtime_nsec(),
        mode: (!link).then_some(meta.mode() & 0o7777),
    }))
}

/// How deep a copied directory is walked.
const MAX_TREE_DEPTH: usize = 64;

/// Ansible's booleans as they appear in arguments: `true`, `yes`, `1`, ...
pub(crate) fn is_truthy(v: &Value) -> bool {
    match v {
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_u64() == Some(1),
        Value::String(s) => rustle_runner::modules::args::truthy_str(s) == Some(true),
        _ => false,
    }
}

/// Reads a file into its plan form.
fn read_file(path: &Path) -> Result<PlanFile, PlanError> {
    plan_file(path).map_err(|source| PlanError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// A file in its plan form: text as `content`, anything else base64, with its
/// permission bits. Shared with the playbook loader, which embeds role files.
pub(crate) fn plan_file(path: &Path) -> std::io::Result<PlanFile> {
    let bytes = std::fs::read(path)?;
    let mode = file_mode(&std::fs::metadata(path)?);
    Ok(match String::from_utf8(bytes) {
        Ok(text) => PlanFile {
            content: Some(text),
            base64: None,
            mode,
        },
        Err(e) => PlanFile {
            content: None,
            base64: Some(base64::engine::general_purpose::STANDARD.encode(e.into_bytes())),
            mode,
        },
    })
}

/// The permission bits as Ansible writes them, e.g. `"0644"`.
#[cfg(unix)]
fn file_mode(meta: &std::fs::Metadata) -> Option<String> {
    use std::os::unix::fs::PermissionsExt as _;
    Some(format!("{:04o}", meta.permissions().mode() & 0o7777))
}

/// Other systems have no Unix permission bits to record.
#[cfg(not(unix))]
fn file_mode(_meta: &std::fs::Metadata) -> Option<String> {
    None
}
