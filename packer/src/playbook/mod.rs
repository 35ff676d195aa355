//! Ansible playbooks in, plans out: reads a playbook (with its roles, included task files
//! and vars files) into a [`DeployPlan`], keeping what the playbook says.
//!
//! [`load_playbook`] is the entry point; [`looks_like_playbook`] tells a playbook from a
//! plan file by its content. Everything is resolved on the control machine, before any
//! host is known: imports and roles are inlined, the files `copy`/`template` read are
//! embedded, `--tags`/`--skip-tags` are applied. Expressions (`when`, `{{ }}` in
//! arguments) stay unrendered: the runner evaluates them on the host.
//!
//! # What is read
//!
//! - Playbook: a YAML list of plays and `import_playbook` entries (with `vars`, `tags`,
//!   `when`, relative to the importing playbook).
//! - Play: `hosts` (string, list, comma-separated; `{{ var }}` from extra vars or play vars
//!   is substituted), `name`, `vars`, `vars_files` (relative to the playbook's directory;
//!   `{{ var }}` substituted as for `hosts`), `gather_facts` (default true), `become`,
//!   `become_user`, `become_method: sudo`, `environment`, `no_log`, `tags`, `pre_tasks`, `roles`, `tasks`,
//!   `post_tasks` (concatenated in that order), `handlers`.
//! - Task: one module key (short, `ansible.builtin.x`, `ansible.legacy.x` or any
//!   collection name), or `action:`; free-form text (`shell: echo hi`,
//!   `file: path=/x state=directory`) is split like Ansible's `parse_kv` and merged over
//!   `args:`. Keywords: `name`, `when`, `loop`, `with_items` (flattened one level),
//!   `with_list`, `with_dict` (a literal mapping, into `{key, value}` items in written
//!   order), `loop_control` (all of its keys), `register`, `changed_when`,
//!   `failed_when`, `ignore_errors`, `notify`, `listen` (handlers), `vars`, `become`,
//!   `become_user`, `become_method: sudo`, `environment`, `no_log`, `tags`, `until`, `retries`, `delay`,
//!   `check_mode`, `block`/`rescue`/`always`.
//! - `import_tasks`/`include_tasks` with a static file name (relative to the including
//!   file, then its `tasks/` directory, then the role's `tasks/`): the file's tasks are
//!   inlined; keywords on the include (`when`, `tags`, `vars`, `become`, ...) go on a block
//!   wrapping them, so they apply to each included task as with `import_tasks`.
//! - Roles (`roles:` entries, `import_role`/`include_role` with a static `name` and
//!   optional `tasks_from`), from `<playbook dir>/roles/<name>`: `tasks/main.yml`,
//!   `handlers/main.yml`, `defaults/main.yml`, `vars/main.yml`, `meta/main.yml`
//!   `dependencies` (depth first, before the role; each role once per play unless its
//!   parameters differ or its meta says `allow_duplicates`). A role's `copy`/`template`
//!   `src` is looked up as Ansible does (`roles/x/files|templates/<src>`, `roles/x/<src>`,
//!   `roles/x/tasks/files|templates/<src>`, `roles/x/tasks/<src>`, then the playbook's
//!   own), embedded under its path relative to the playbook directory
//!   (`roles/x/templates/app.j2`) and the task's `src` rewritten to that key. Role
//!   handlers come before the play's own and also answer to `"<role> : <name>"`.
//! - Playbook-level `copy`/`template` files are embedded by [`crate::plan::attach_files`]
//!   with the playbook's directory as base.
//!
//! # Variable precedence (how Ansible's is mapped onto the plan's scopes)
//!
//! The runner's scopes, lowest first, are inventory, facts, play vars, block vars, task
//! vars, registered/`set_fact` results. The loader fills them so that the playbook's own
//! variables rank as in Ansible:
//!
//! - play `vars` = role defaults of the play's `roles:` (and their dependencies), then
//!   `import_playbook` vars, play `vars`, `vars_files`, then those roles' `vars` (Ansible
//!   exposes role vars and defaults to the whole play), then extra vars;
//! - each role's tasks are wrapped in a block whose vars are the role's defaults (only the
//!   names no play-level source sets, so play vars still beat them), its `vars`, then its
//!   parameters (`vars:` or other keys of the role entry);
//! - role handlers get the same variables, below their own `vars`;
//! - extra vars (`-e`) are added to play vars, and every block or task that sets a
//!   variable of the same name gets the extra value instead, so they win everywhere.
//!
//! Known differences: `with_items: "{{ x }}"` (or `["{{ x }}"]`) loops over the rendered
//! list without flattening nested lists in it (the runner has no `flatten` filter yet);
//! role defaults (and any play variable) rank above inventory
//! variables, where Ansible puts role defaults below them; `register`/`set_fact` of a
//! name given with `-e` wins over the extra var in the runner, while Ansible keeps the
//! extra var. A role included with `include_role`/`import_role` exposes its variables to
//! its own tasks only.
//!
//! # Tags
//!
//! `--tags`/`--skip-tags` are applied at load with Ansible's rules: a task's tags are its
//! own plus those of every enclosing block, include, role and play; `always` runs unless
//! skipped by name; `never` runs only when asked for; `all`, `tagged`, `untagged` work as
//! in Ansible. Blocks left empty are dropped; handlers are not filtered. Tasks keep their
//! own `tags` in the plan.
//!
//! # Handlers between sections
//!
//! Ansible flushes notified handlers after `pre_tasks`, after `roles`+`tasks` and at the
//! end. When a section before another notifies something, the loader inserts the
//! `meta: flush_handlers` task Ansible runs there (tagged `always`), so the plan says
//! what Ansible does; a runner without `meta` refuses it when packing instead of silently
//! running those handlers late.
//!
//! # Refused, with the file, the task path and the keyword
//!
//! Vault content (`$ANSIBLE_VAULT` files and `!vault` values) and other YAML tags;
//! blocks among handlers and keywords on includes among handlers (the runner notifies
//! handlers by name); `with_items` lists mixing `{{ expression }}` items with others;
//! dynamic includes (templated file or role names, loops on includes, `apply`), the old
//! `include:`; lookups other than `with_items`/`with_list`/`with_dict`; templated values where the plan needs a literal (`become`,
//! `retries`, ...); and these Ansible keywords, not supported yet: `delegate_to`,
//! `delegate_facts`, `local_action`, `async`, `poll`, `run_once`,
//! `diff`, `connection`, `port`, `remote_user`, `module_defaults`,
//! `collections`, `any_errors_fatal`, `max_fail_percentage`, `throttle`, `timeout`,
//! `debugger`, `ignore_unreachable`, `become_flags`, `become_exe`, `become_method` other
//! than `sudo`; play `serial`, `strategy`, `order`, `force_handlers`, `gather_subset`,
//! `gather_timeout`, `fact_path`, `vars_prompt`, `check_mode`, `ignore_errors`.
//! Any other unknown
//! keyword is an error (with a "did you mean" for near misses), never silently dropped.
//!
//! YAML is read as YAML 1.2 (`serde_norway`): unquoted `yes`/`no` are strings, which
//! keywords and the runner's modules accept as booleans, and `0755` stays the string
//! `"0755"`, which modules read as octal as Ansible does. `group_vars/`/`host_vars/` are
//! the inventory's business and not read here.

mod freeform;
mod play;
mod roles;
mod tags;
mod tasks;
mod yaml;

use crate::plan::PlanError;
use rustle_runner::plan::{DeployPlan, PLAN_FORMAT, PLAN_VERSION, PlanFile, Task, Vars};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};

/// Settings given on the command line that shape the plan made from a playbook.
#[derive(Debug, Clone, Default)]
pub struct PlaybookOptions {
    /// `-e` variables: the highest precedence (see the module documentation).
    pub extra_vars: serde_json::Map<String, Value>,
    /// `--tags`: keep only tasks with one of these tags (comma-separated entries allowed).
    pub tags: Vec<String>,
    /// `--skip-tags`: drop tasks with one of these tags.
    pub skip_tags: Vec<String>,
    /// `--check`: the plan runs in check mode.
    pub check: bool,
    /// `--diff`: the plan reports differences.
    pub diff: bool,
}

/// Where in the input something is: the file, and the path to the culprit inside it
/// (`plays[0] 'web' > tasks[2] 'install'`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Where {
    /// The file read.
    pub file: PathBuf,
    /// The path inside it; empty for the whole file.
    pub at: String,
}

impl Where {
    pub(crate) fn new(file: &Path, at: &str) -> Self {
        Where {
            file: file.to_path_buf(),
            at: at.to_string(),
        }
    }

    /// One level down.
    pub(crate) fn child(&self, segment: &str) -> Self {
        let at = if self.at.is_empty() {
            segment.to_string()
        } else {
            format!("{} > {segment}", self.at)
        };
        Where {
            file: self.file.clone(),
            at,
        }
    }

    /// The same place, with the name of the task or play there.
    pub(crate) fn named(&self, name: Option<&str>) -> Self {
        match name {
            Some(n) if !n.is_empty() => Where {
                file: self.file.clone(),
                at: format!("{} '{n}'", self.at),
            },
            _ => self.clone(),
        }
    }

    pub(crate) fn invalid(&self, keyword: &str, detail: impl Into<String>) -> PlaybookError {
        PlaybookError::Invalid(Box::new(self.keyword_error(keyword, detail)))
    }

    pub(crate) fn unsupported(&self, keyword: &str, detail: impl Into<String>) -> PlaybookError {
        PlaybookError::Unsupported(Box::new(self.keyword_error(keyword, detail)))
    }

    pub(crate) fn unknown(&self, keyword: &str, detail: impl Into<String>) -> PlaybookError {
        PlaybookError::UnknownKeyword(Box::new(self.keyword_error(keyword, detail)))
    }

    fn keyword_error(&self, keyword: &str, detail: impl Into<String>) -> KeywordError {
        KeywordError {
            at: self.clone(),
            keyword: keyword.to_string(),
            detail: detail.into(),
        }
    }
}

impl fmt::Display for Where {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.at.is_empty() {
            write!(f, "{}", self.file.display())
        } else {
            write!(f, "{}: {}", self.file.display(), self.at)
        }
    }
}

/// A problem with one keyword (or, with an empty keyword, with a whole entry).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeywordError {
    /// Where it is.
    pub at: Where,
    /// The keyword, e.g. `delegate_to`; empty when the entry as a whole is wrong.
    pub keyword: String,
    /// What is wrong, or why it is not supported.
    pub detail: String,
}

impl fmt::Display for KeywordError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.keyword.is_empty() {
            write!(f, "{}: {}", self.at, self.detail)
        } else {
            write!(f, "{}: `{}`: {}", self.at, self.keyword, self.detail)
        }
    }
}

/// A file or role that was looked for and not found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotFound {
    /// Where it is referred to.
    pub at: Where,
    /// The keyword that refers to it (`import_tasks`, `roles`, `src`, ...).
    pub keyword: String,
    /// The name as written.
    pub name: String,
    /// Every path tried, in order.
    pub searched: Vec<PathBuf>,
}

impl fmt::Display for NotFound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let searched: Vec<String> = self
            .searched
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        write!(
            f,
            "{}: `{}`: '{}' not found; searched: {}",
            self.at,
            self.keyword,
            self.name,
            searched.join(", ")
        )
    }
}

/// Why a playbook could not be turned into a plan. Every variant names the file and,
/// where it applies, the line or the play/task path and the keyword.
#[derive(Debug, thiserror::Error)]
pub enum PlaybookError {
    /// A file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A file is not valid YAML.
    #[error("{}{}: invalid YAML: {msg}", file.display(), line_col(*line, *column))]
    Yaml {
        /// The file.
        file: PathBuf,
        /// 1-based line, when the parser reports one.
        line: Option<usize>,
        /// 1-based column, when the parser reports one.
        column: Option<usize>,
        /// What the parser said.
        msg: String,
    },
    /// Ansible Vault encrypted content.
    #[error(
        "{0}: Ansible Vault encrypted content: vault is not supported yet (decrypt it with \
         `ansible-vault decrypt` or pass the secrets with -e)"
    )]
    Vault(Box<Where>),
    /// A keyword this loader does not know (a typo, or something Ansible does not have).
    #[error("{}: unknown keyword `{}`{}", .0.at, .0.keyword, .0.detail)]
    UnknownKeyword(Box<KeywordError>),
    /// An Ansible feature the plan or the runner cannot carry yet.
    #[error("{}: `{}` is not supported yet: {}", .0.at, .0.keyword, .0.detail)]
    Unsupported(Box<KeywordError>),
    /// A value of the wrong shape, or an entry that is wrong as a whole.
    #[error("{0}")]
    Invalid(Box<KeywordError>),
    /// A role, an included file or a `src` that does not exist.
    #[error("{0}")]
    NotFound(Box<NotFound>),
    /// Embedding the playbook's own `copy`/`template` files failed.
    #[error(transparent)]
    Files(Box<PlanError>),
}

/// `:line:column` when known.
fn line_col(line: Option<usize>, column: Option<usize>) -> String {
    match (line, column) {
        (Some(l), Some(c)) => format!(":{l}:{c}"),
        (Some(l), None) => format!(":{l}"),
        _ => String::new(),
    }
}

/// True when the text looks like an Ansible playbook: a YAML list whose entries are
/// mappings with `hosts` or `import_playbook`. A vault-encrypted file counts (so that
/// loading it says vault is not supported), and so does text that fails to parse as
/// YAML but starts like a YAML list (so that loading it reports the syntax error).
pub fn looks_like_playbook(text: &str) -> bool {
    if yaml::is_vault(text) {
        return true;
    }
    match serde_norway::from_str::<serde_norway::Value>(text) {
        Ok(serde_norway::Value::Sequence(items)) => {
            !items.is_empty()
                && items.iter().all(|item| {
                    item.as_mapping().is_some_and(|m| {
                        m.keys()
                            .filter_map(serde_norway::Value::as_str)
                            .any(|k| k == "hosts" || play::is_import_playbook(k))
                    })
                })
        }
        Ok(_) => false,
        Err(_) => text
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty() && !l.starts_with('#') && *l != "---")
            .is_some_and(|l| l.starts_with("- ") || l == "-"),
    }
}

/// Reads the playbook at `path` (with everything it imports) into a plan.
///
/// Errors name the file and the play/task path or line; see the module documentation
/// for what is read and what is refused.
pub fn load_playbook(path: &Path, opts: &PlaybookOptions) -> Result<DeployPlan, PlaybookError> {
    let base = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let mut loader = Loader {
        opts,
        base: base.clone(),
        files: BTreeMap::new(),
        playbooks: Vec::new(),
        includes: Vec::new(),
        play: PlayState::default(),
    };
    let loaded = loader.playbook(path, &play::Imported::default())?;
    let selection = tags::Selection::new(&opts.tags, &opts.skip_tags);
    let mut plays = Vec::with_capacity(loaded.len());
    for lp in loaded {
        plays.push(lp.finish(&selection, &opts.extra_vars));
    }
    let mut plan = DeployPlan {
        format: PLAN_FORMAT.to_string(),
        version: PLAN_VERSION,
        check_mode: opts.check,
        diff_mode: opts.diff,
        plays,
        files: loader.files,
        modules: BTreeMap::new(),
    };
    crate::plan::attach_files(&mut plan, &base).map_err(|e| PlaybookError::Files(Box::new(e)))?;
    Ok(plan)
}

/// Gives extra vars the last word: every vars scope that sets one of their names gets
/// the extra value (the play's vars get all of them, by the caller).
fn override_vars(tasks: &mut [Task], extra: &Vars) {
    for t in tasks {
        for (k, v) in extra {
            if let Some(slot) = t.vars.get_mut(k) {
                *slot = v.clone();
            }
        }
        if let Some(b) = t.block.as_mut() {
            override_vars(b, extra);
        }
        override_vars(&mut t.rescue, extra);
        override_vars(&mut t.always, extra);
    }
}

/// What the loader carries from file to file.
struct Loader<'o> {
    opts: &'o PlaybookOptions,
    /// The top playbook's directory: relative `src` keys and role lookups start here.
    base: PathBuf,
    /// Files embedded for role tasks (and plays of playbooks in other directories).
    files: BTreeMap<String, PlanFile>,
    /// Playbooks being read, to refuse an import cycle.
    playbooks: Vec<PathBuf>,
    /// Task files being read, to refuse an include cycle.
    includes: Vec<PathBuf>,
    /// The play being read.
    play: PlayState,
}

/// What is gathered while reading one play.
#[derive(Default)]
struct PlayState {
    /// Extra vars over play vars: what `{{ name }}` in static names (includes, roles,
    /// vars_files, hosts) may refer to.
    lookup: Vars,
    /// Names set at play level above role defaults (play vars, vars_files, role vars,
    /// extra vars): a role's own defaults for these are left out of its block.
    fixed: BTreeSet<String>,
    /// Defaults of the play's `roles:`, merged in order.
    role_defaults: Vars,
    /// Vars of the play's `roles:`, merged in order.
    role_vars: Vars,
    /// Handlers of every role used in the play, in the order the roles were read.
    handlers: Vec<Task>,
    /// Roles already expanded (directory and parameters), to run each once.
    seen_roles: HashSet<String>,
    /// Roles whose handlers were added.
    roles_with_handlers: HashSet<PathBuf>,
    /// Roles being expanded, to refuse a dependency cycle.
    role_stack: Vec<PathBuf>,
}

/// Reads `file` relative to nothing: the canonical form, for cycle checks.
fn canonical(path: &Path) -> PathBuf {
    path.canonicalize().unwrap_or_else(|_| path.to_path_buf())
}

/// Substitutes `{{ name }}` from `lookup` in a name that must be known at load time
/// (an include, a role, a vars file, a host pattern). `None` when something is left
/// that only the host could render.
fn render_static(text: &str, lookup: &Vars) -> Option<String> {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        let (before, after) = rest.split_at(start);
        out.push_str(before);
        let after = after.get(2..)?;
        let end = after.find("}}")?;
        let name = after.get(..end)?.trim();
        let value = match lookup.get(name)? {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => b.to_string(),
            _ => return None,
        };
        // A value that is itself a template would need the host.
        if value.contains("{{") || value.contains("{%") {
            return None;
        }
        out.push_str(&value);
        rest = after.get(end + 2..)?;
    }
    out.push_str(rest);
    (!out.contains("{%")).then_some(out)
}

#[cfg(test)]
mod unit_tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn static_names() {
        let Value::Object(lookup) = json!({"env": "prod", "n": 2, "t": "{{ x }}"}) else {
            unreachable!()
        };
        assert_eq!(
            render_static("vars/{{ env }}-{{n}}.yml", &lookup).as_deref(),
            Some("vars/prod-2.yml")
        );
        assert_eq!(render_static("plain", &lookup).as_deref(), Some("plain"));
        assert_eq!(render_static("{{ missing }}", &lookup), None);
        assert_eq!(render_static("{{ env | upper }}", &lookup), None);
        assert_eq!(render_static("{{ t }}", &lookup), None);
    }
}
