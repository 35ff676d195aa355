//! Loading execution plans: the project's own format, or rustle-plan 0.1.0 output converted to it.
//!
//! Whatever the input, the result is a [`DeployPlan`] (`rustle_runner::plan`), the one shape
//! the rest of the packer works with. `docs/plan-format.md` documents the native format and
//! what a rustle-plan file loses on the way in.

mod files;
mod rustle_plan;
#[cfg(test)]
mod tests;

pub use files::attach_files;
pub(crate) use files::{embedded_name, is_truthy, plan_file, synchronize_pushes};

use rustle_runner::plan::{DeployPlan, PLAN_FORMAT, PLAN_VERSION, PlanFile, Play, Task};
use serde_json::Value;
use std::io::Read;
use std::path::{Path, PathBuf};

/// A path on the controller as Ansible shows it in magic variables (`playbook_dir`,
/// `role_path`): absolute, `.` and `..` resolved, symbolic links kept.
pub fn controller_path(path: &Path) -> String {
    let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let mut out = PathBuf::new();
    for c in abs.components() {
        match c {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out.to_string_lossy().into_owned()
}

/// [`PLAN_VERSION`] as text, for errors.
const SUPPORTED_VERSION: &str = "1";

/// The name used in errors for a plan read from standard input.
pub const STDIN_NAME: &str = "<stdin>";

/// Which format a plan was read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlanSource {
    /// The project's own format (`"format": "rustle-deploy-plan"`).
    Native,
    /// Output of rustle-plan, converted; `version` is its `metadata.rustle_plan_version`.
    RustlePlan {
        /// The rustle-plan version that wrote the file, e.g. `0.1.0`.
        version: String,
    },
}

/// A plan ready for the packer, with what was noticed while loading it.
#[derive(Debug, Clone)]
pub struct LoadedPlan {
    /// The plan in the project's own shape.
    pub plan: DeployPlan,
    /// The format it was read from.
    pub source: PlanSource,
    /// Things worth telling the user (shown with `--verbose`): guesses made while
    /// converting, information the input format could not carry, settings not applied.
    pub notes: Vec<String>,
}

/// Why a plan could not be loaded. Every variant names the input and the culprit.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// The plan file (or a file a task refers to) could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The file, or `<stdin>`.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The input is not well-formed JSON.
    #[error("{source_name}:{line}:{column}: invalid JSON: {msg}")]
    Json {
        /// The file name, or `<stdin>`.
        source_name: String,
        /// 1-based line of the error.
        line: usize,
        /// 1-based column of the error.
        column: usize,
        /// What the JSON parser said.
        msg: String,
    },
    /// A field is missing, has the wrong type or an unsupported value.
    #[error("{source_name}: {path}: {reason}")]
    Field {
        /// The file name, or `<stdin>`.
        source_name: String,
        /// Where in the document, e.g. `plays[0].batches[1].tasks[3].conditions[0]`.
        path: String,
        /// What is wrong there.
        reason: String,
    },
    /// The file is a plan of a known format, in a version this build does not read.
    #[error(
        "{source_name}: {format} version {found} is not supported (this build reads {supported})"
    )]
    UnsupportedVersion {
        /// The file name, or `<stdin>`.
        source_name: String,
        /// `rustle-deploy-plan` or `rustle-plan`.
        format: &'static str,
        /// The version the file declares.
        found: String,
        /// The version(s) this build reads.
        supported: &'static str,
    },
    /// The document is JSON but not a plan of any format this build knows.
    #[error(
        "{source_name}: not an execution plan: found {found}; expected an object with \
         \"format\": \"{PLAN_FORMAT}\" (rustle-deploy's own plan) or rustle-plan 0.1.0 output \
         (an object with \"plays\" and \"metadata.rustle_plan_version\")"
    )]
    NotAPlan {
        /// The file name, or `<stdin>`.
        source_name: String,
        /// A short description of what the document is instead.
        found: String,
    },
    /// A `copy`/`template` source was not found in any of the places searched.
    #[error(
        "play '{play}', task '{task}': src '{src}' not found; searched: {}",
        searched.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
    )]
    MissingFile {
        /// The play the task belongs to.
        play: String,
        /// The task (its name, or its module when unnamed).
        task: String,
        /// The `src` argument as written.
        src: String,
        /// Every path tried, in order.
        searched: Vec<PathBuf>,
    },
    /// A `copy`/`template` source depends on variables, so the file to embed is unknown
    /// until the task runs on the host, after the payload is sealed.
    #[error(
        "play '{play}', task '{task}': src '{src}' is templated; the file to embed must be \
         known when the payload is built, so write the path literally"
    )]
    TemplatedSrc {
        /// The play the task belongs to.
        play: String,
        /// The task (its name, or its module when unnamed).
        task: String,
        /// The `src` argument as written.
        src: String,
    },
    /// A `copy`/`template` source is not a regular file (e.g. a directory).
    #[error("play '{play}', task '{task}': src '{src}' resolved to {}, which is not a regular file (directories are not supported)", path.display())]
    NotAFile {
        /// The play the task belongs to.
        play: String,
        /// The task (its name, or its module when unnamed).
        task: String,
        /// The `src` argument as written.
        src: String,
        /// Where it was found.
        path: PathBuf,
    },
    /// Two tasks use the same `src` name but it resolves to different files (a `copy`
    /// finds `files/x`, a `template` finds `templates/x`), while the plan keys files by name
    /// for every play at once.
    #[error(
        "task '{task}': src '{src}' resolves to {} but another task's '{src}' resolved to {}; rename one of them",
        second.display(), first.display()
    )]
    FileConflict {
        /// The later task.
        task: String,
        /// The `src` argument both use.
        src: String,
        /// The file found for the first task.
        first: PathBuf,
        /// The file found for the later task.
        second: PathBuf,
    },
}

/// Reads a plan from a file, or from standard input when `path` is `-`.
///
/// Errors name the file, or `<stdin>`.
pub fn load_plan(path: &Path) -> Result<LoadedPlan, PlanError> {
    if path == Path::new("-") {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|source| PlanError::Io {
                path: PathBuf::from(STDIN_NAME),
                source,
            })?;
        return parse_plan(&text, STDIN_NAME);
    }
    let text = std::fs::read_to_string(path).map_err(|source| PlanError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    parse_plan(&text, &path.display().to_string())
}

/// Parses a plan, telling the format from the document itself.
///
/// An object with `"format": "rustle-deploy-plan"` is the native format (its `version` must be
/// [`PLAN_VERSION`]); an object with `plays` and `metadata.rustle_plan_version` is rustle-plan
/// output, converted. Anything else is refused with an error saying what was expected.
/// `source_name` is used in error messages.
pub fn parse_plan(text: &str, source_name: &str) -> Result<LoadedPlan, PlanError> {
    // Parse once into a tree first: syntax errors get a line and column, and the format can
    // be told from the content before committing to a schema.
    let value: Value = serde_json::from_str(text).map_err(|e| json_error(&e, source_name))?;
    let Value::Object(top) = &value else {
        return Err(PlanError::NotAPlan {
            source_name: source_name.to_string(),
            found: describe(&value),
        });
    };
    if let Some(format) = top.get("format") {
        if format.as_str() != Some(PLAN_FORMAT) {
            return Err(PlanError::Field {
                source_name: source_name.to_string(),
                path: "format".to_string(),
                reason: format!("unknown plan format {format}; expected \"{PLAN_FORMAT}\""),
            });
        }
        return parse_native(text, value, source_name);
    }
    let rp_version = top
        .get("metadata")
        .and_then(|m| m.get("rustle_plan_version"));
    if let (Some(_), Some(version)) = (top.get("plays"), rp_version) {
        let version = version.as_str().ok_or_else(|| PlanError::Field {
            source_name: source_name.to_string(),
            path: "metadata.rustle_plan_version".to_string(),
            reason: format!("expected a version string, found {}", describe(version)),
        })?;
        // 0.1.x releases are expected to keep the 0.1.0 shape; anything else may not.
        if !(version == "0.1" || version.starts_with("0.1.")) {
            return Err(PlanError::UnsupportedVersion {
                source_name: source_name.to_string(),
                format: "rustle-plan",
                found: version.to_string(),
                supported: "0.1.x",
            });
        }
        let version = version.to_string();
        return rustle_plan::convert(value, &version, source_name);
    }
    Err(PlanError::NotAPlan {
        source_name: source_name.to_string(),
        found: describe(&value),
    })
}

/// Reads the native format, after checking its version.
fn parse_native(text: &str, value: Value, source_name: &str) -> Result<LoadedPlan, PlanError> {
    let field = |path: &str, reason: String| PlanError::Field {
        source_name: source_name.to_string(),
        path: path.to_string(),
        reason,
    };
    // Check the version before the schema: a newer file most likely fails the schema too,
    // and "version 2 is not supported" is the useful message then.
    match value.get("version") {
        None => return Err(field("version", "missing field `version`".to_string())),
        Some(v) if v.as_u64() == Some(u64::from(PLAN_VERSION)) => {}
        Some(v) if v.is_u64() => {
            return Err(PlanError::UnsupportedVersion {
                source_name: source_name.to_string(),
                format: PLAN_FORMAT,
                found: v.to_string(),
                supported: SUPPORTED_VERSION,
            });
        }
        Some(v) => {
            return Err(field(
                "version",
                format!("expected an integer, found {}", describe(v)),
            ));
        }
    }
    // Deserialize from the text so the message carries a line and column, then walk the
    // tree to say which play/task/file it is about (serde alone reports neither).
    serde_json::from_str::<DeployPlan>(text)
        .map(|plan| LoadedPlan {
            plan,
            source: PlanSource::Native,
            notes: Vec::new(),
        })
        .map_err(|e| {
            let path = locate_native_error(&value).unwrap_or_else(|| "(top level)".to_string());
            field(&path, e.to_string())
        })
}

/// Finds the innermost part of a native plan that does not deserialize, as a path.
fn locate_native_error(value: &Value) -> Option<String> {
    let plays = value.get("plays").and_then(Value::as_array);
    for (i, play) in plays.into_iter().flatten().enumerate() {
        if serde_json::from_value::<Play>(play.clone()).is_err() {
            let here = format!("plays[{i}]");
            for key in ["tasks", "handlers"] {
                if let Some(found) = locate_task_list(play.get(key), &format!("{here}.{key}")) {
                    return Some(found);
                }
            }
            return Some(here);
        }
    }
    let files = value.get("files").and_then(Value::as_object);
    for (name, file) in files.into_iter().flatten() {
        if serde_json::from_value::<PlanFile>(file.clone()).is_err() {
            return Some(format!("files[{name:?}]"));
        }
    }
    None
}

/// Finds the innermost task of a task list that does not deserialize.
fn locate_task_list(list: Option<&Value>, here: &str) -> Option<String> {
    let tasks = list.and_then(Value::as_array)?;
    for (i, task) in tasks.iter().enumerate() {
        if serde_json::from_value::<Task>(task.clone()).is_err() {
            let here = format!("{here}[{i}]");
            for key in ["block", "rescue", "always"] {
                if let Some(found) = locate_task_list(task.get(key), &format!("{here}.{key}")) {
                    return Some(found);
                }
            }
            return Some(here);
        }
    }
    None
}

/// A JSON syntax error, with the position split out of serde_json's message.
fn json_error(e: &serde_json::Error, source_name: &str) -> PlanError {
    let full = e.to_string();
    let suffix = format!(" at line {} column {}", e.line(), e.column());
    let msg = full.strip_suffix(&suffix).unwrap_or(&full).to_string();
    PlanError::Json {
        source_name: source_name.to_string(),
        line: e.line(),
        column: e.column(),
        msg,
    }
}

/// A short description of a JSON value for error messages.
pub(crate) fn describe(value: &Value) -> String {
    match value {
        Value::Null => "null".to_string(),
        Value::Bool(b) => format!("the boolean {b}"),
        Value::Number(n) => format!("the number {n}"),
        Value::String(s) => format!("the string {s:?}"),
        Value::Array(a) => format!("a JSON array of {} element(s)", a.len()),
        Value::Object(o) if o.is_empty() => "an empty object".to_string(),
        Value::Object(o) => {
            let keys: Vec<&str> = o.keys().map(String::as_str).take(8).collect();
            format!("an object with keys [{}]", keys.join(", "))
        }
    }
}
