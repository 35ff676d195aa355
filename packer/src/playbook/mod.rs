//! Ansible playbooks in, plans out: reads a playbook (with its roles, included task files
//! and vars files) into a [`DeployPlan`], keeping what the playbook says.
//!
//! [`load_playbook`] is the entry point; [`looks_like_playbook`] tells a playbook from a
//! plan file by its content. Everything is resolved on the control machine, before any
//! host is known: imports and roles are inlined, the files `copy`/`template` read are
//! embedded, `--tags`/`--skip-tags` are applied. Expressions (`when`, `{{ }}` in
//! arguments) stay unrendered: the runner evaluates them on the host. What Ansible
//! decides while the play runs (includes, templated file names) the runner decides,
//! among the controller files the plan carries (`library.rs`).
//!
//! # What is read
//!
//! - Playbook: a YAML list of plays and `import_playbook` entries (with `vars`, `tags`,
//!   `when`, relative to the importing playbook).
//! - Play: `hosts` (string, list, comma-separated; `{{ var }}` from extra vars or play vars
//!   is substituted), `name`, `vars`, `vars_files` (relative to the playbook's directory;
//!   `{{ var }}` substituted as for `hosts`), `gather_facts` (default true), `become`,
//!   `become_user`, `become_method: sudo`, `environment`, `no_log`, `ignore_errors`,
//!   `check_mode`, `diff`, `tags`, `pre_tasks`, `roles`, `tasks`,
//!   `post_tasks` (concatenated in that order), `handlers`.
//! - Task: one module key (short, `ansible.builtin.x`, `ansible.legacy.x` or any
//!   collection name), or `action:`; free-form text (`shell: echo hi`,
//!   `file: path=/x state=directory`) is split like Ansible's `parse_kv` and merged over
//!   `args:`. Keywords: `name`, `when`, `loop`, `with_<lookup>` for every lookup of
//!   ansible-core (kept as `loop_with` plus the terms as written, which the runner templates
//!   and hands to the lookup; a literal `with_dict` mapping keeps its written order),
//!   `loop_control` (all of its keys), `register`, `changed_when`,
//!   `failed_when`, `ignore_errors`, `ignore_unreachable` (plays, blocks, tasks),
//!   `notify`, `listen` (handlers), `vars`, `become`,
//!   `become_user`, `become_method: sudo`, `environment`, `no_log`, `tags`, `until`, `retries`, `delay`,
//!   `check_mode`, `diff`, `block`/`rescue`/`always`.
//! - Keywords Ansible templates (`ignore_errors`, `become`, `become_user`, `check_mode`,
//!   `diff`,
//!   `no_log`, `retries`, `delay`, `loop_control`'s `loop_var`, `index_var`, `label`,
//!   `pause`, `extended`, `extended_allitems`; `when`, `changed_when`, `failed_when`,
//!   `until` always) may be templates: the plan carries them as written and the runner
//!   evaluates them on the host when the task runs, per loop item, converting the result
//!   as Ansible does (`delay` and `pause` are floats, `retries` an integer).
//! - `import_tasks` with a static file name (relative to the including file, then its
//!   `tasks/` directory, then the role's `tasks/`): the file's tasks are inlined in a
//!   block that says which file they come from; keywords on the import (`when`, `tags`,
//!   `vars`, `become`, ...) go on that block, so they apply to each imported task.
//! - `include_tasks` and `include_role` (any file or role name, templated or not, with
//!   loops, `vars`, `apply`; `include_role`'s `tasks_from`, `vars_from`,
//!   `defaults_from`, `handlers_from`, `public`, `allow_duplicates`): carried as tasks
//!   the runner carries out when it reaches them, as Ansible does; the files they may
//!   name travel parsed in the plan's `library` (see `library.rs` and
//!   `docs/playbooks.md`).
//! - Roles (`roles:` entries, `import_role` with a static `name` and optional
//!   `tasks_from`, `vars_from`, `defaults_from`, `handlers_from`), from
//!   `<playbook dir>/roles/<name>`: `tasks/main.yml`,
//!   `handlers/main.yml`, `defaults/main.yml`, `vars/main.yml`, `meta/main.yml`
//!   `dependencies` (depth first, before the role; each role once per play unless its
//!   parameters differ or its meta says `allow_duplicates`). A role's `copy`/`template`
//!   `src` named literally is looked up as Ansible does (`roles/x/files|templates/<src>`,
//!   `roles/x/<src>`, `roles/x/tasks/files|templates/<src>`, `roles/x/tasks/<src>`, then
//!   the playbook's own), embedded under its path relative to the playbook directory
//!   (`roles/x/templates/app.j2`) and the task's `src` rewritten to that key; a templated
//!   or missing one is resolved by the runner when the task runs. Role handlers come
//!   before the play's own and also answer to `"<role> : <name>"`.
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
//! Known differences: role defaults sit in play and block `vars`, above the inventory, but are marked
//! (`__rustle_role_defaults`) and the deployer drops them for each host whose inventory
//! variables set them (`defaults.rs`), so inventory wins as in Ansible;
//! `register`/`set_fact` of a
//! name given with `-e` wins over the extra var in the runner, while Ansible keeps the
//! extra var.
//!
//! # Tags
//!
//! `--tags`/`--skip-tags` are applied at load with Ansible's rules: a task's tags are its
//! own plus those of every enclosing block, include, role and play; `always` runs unless
//! skipped by name; `never` runs only when asked for; `all`, `tagged`, `untagged` work as
//! in Ansible. Blocks left empty are dropped; handlers are not filtered. Tasks keep their
//! own `tags` in the plan, and a play's tags ride on a block around its tasks: the runner
//! filters what `include_tasks`/`include_role` bring in (task files of the library are
//! not filtered here) with the tags around the include and its `apply`'s, as Ansible
//! does when it loads them (`rustle_runner::tags`).
//!
//! # Handlers between sections
//!
//! Ansible flushes notified handlers after `pre_tasks`, after `roles`+`tasks` and at the
//! end. When a section before another notifies something, the loader inserts the
//! `meta: flush_handlers` task Ansible runs there (tagged `always`), so the plan says
//! what Ansible does; a runner without `meta` refuses it when packing instead of silently
//! running those handlers late.
//!
//! # Around the playbook
//!
//! `group_vars/`/`host_vars/` beside the playbook, `--limit` and the plays' agreed
//! `serial`/`max_fail_percentage` are carried in the plan's [`CARRIED_KEY`] entry for the
//! deployer to apply to the inventory; vaulted files and `!vault` values are opened with
//! [`PlaybookOptions::vault`]; see `docs/playbooks.md`.
//!
//! # Refused, with the file, the line, the task path and the keyword
//!
//! Vault content without `--vault-password-file` (or with a wrong password); YAML tags
//! Ansible's loader has no constructor for (anything but `!unsafe`, `!vault` and the
//! standard `!!str`-style tags), and `!!binary`/`!!set`/`!!omap`, whose Python objects a
//! plan cannot carry; `with_<name>` where no lookup has that name; keywords on
//! `include_tasks`/`include_role`
//! that Ansible refuses there too (`become`, ...: they go in `apply`); the old
//! `include:`; a templated `import_tasks`/`import_role` name not given in extra or play
//! vars; a templated `gather_facts`; and these Ansible keywords, not supported yet:
//! `delegate_to`, `delegate_facts`,
//! `local_action`, `run_once` and `throttle` on `include_tasks`/`include_role` or around
//! them (tasks, blocks, imports and, for `run_once` and `throttle`, plays have them,
//! through the controller channel), `async`, `poll`,
//! `diff`, `connection` other than a task's `local`, `port`, `module_defaults`,
//! `collections`, `any_errors_fatal` on blocks and tasks, task `max_fail_percentage`,
//! `debugger`, `become_flags`, `become_exe`, `become_method` other
//! than `sudo`; play `serial` lists or `serial`/`max_fail_percentage` that differ between
//! plays, `strategy` other than linear and free, `order`, `gather_subset`,
//! `gather_timeout`, `fact_path`, `vars_prompt`. Any other unknown
//! keyword is an error (with a "did you mean" for near misses), never silently dropped.
//!
//! YAML is read as Ansible reads it ([`crate::ansible_yaml`]): YAML 1.1 booleans
//! (`yes`/`no`/`on`/`off`), `0755` as the octal integer 493, `<<` merge keys, every null
//! form; `!unsafe` values are carried as `{"__ansible_unsafe": "..."}`, which the runner
//! never templates.

mod defaults;
mod freeform;
mod library;
mod lines;
mod play;
mod roles;
mod tags;
mod tasks;
mod yaml;

pub use defaults::apply_role_defaults;
pub use play::Rolling;
pub(crate) use roles::private_role_vars_in;

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
    /// `--vault-password-file`: opens vaulted files and `!vault` values.
    pub vault: Option<crate::vault::Vault>,
    /// `--limit`: carried in the plan, applied against the inventory at deploy time.
    pub limit: Option<String>,
    /// How many `-v` were given: `ansible_verbosity`.
    pub verbosity: u8,
    /// `--force-handlers` (or `ANSIBLE_FORCE_HANDLERS`): `force_handlers` of the plays
    /// that do not set it.
    pub force_handlers: bool,
    /// `ANSIBLE_ERROR_ON_MISSING_HANDLER` off: [`Play::missing_handler_warns`] of every
    /// play.
    ///
    /// [`Play::missing_handler_warns`]: rustle_runner::plan::Play::missing_handler_warns
    pub missing_handler_warns: bool,
    /// A playbook made on the command line (`rustle-deploy adhoc`), read instead of the
    /// file at this path, which only names it (its directory is the playbook's).
    pub adhoc: Option<(PathBuf, serde_norway::Value)>,
}

/// The plan file entry carrying what the inventory needs from the playbook's side:
/// `group_vars/`/`host_vars/` beside the playbook and `--limit`. A plan is made before any
/// inventory is read, so these travel with it and the deployer layers them onto the
/// inventory it is given (see [`Carried::take`]); no task can name this file.
pub const CARRIED_KEY: &str = ".rustle/inventory.json";

/// What [`CARRIED_KEY`] holds.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Carried {
    /// `serial`/`max_fail_percentage` the plays agree on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rolling: Option<play::Rolling>,
    /// `--limit` given when the plan was made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<String>,
    /// The variables of `group_vars/` and `host_vars/` beside the playbook.
    #[serde(flatten)]
    pub vars: crate::inventory::VarsDir,
}

impl Carried {
    /// Removes the carried entry from a plan and returns it.
    pub fn take(plan: &mut DeployPlan) -> Result<Option<Carried>, PlanError> {
        let Some(file) = plan.files.remove(CARRIED_KEY) else {
            return Ok(None);
        };
        let text = file.content.unwrap_or_default();
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| PlanError::Field {
                source_name: "plan".into(),
                path: format!("files.{CARRIED_KEY}"),
                reason: e.to_string(),
            })
    }

    /// Layers the variables onto the inventory and applies the limit.
    pub fn apply(
        self,
        inventory: &mut crate::inventory::Inventory,
    ) -> Result<(), crate::inventory::InventoryError> {
        inventory.add_vars(self.vars)?;
        if let Some(limit) = &self.limit {
            inventory.set_limit(limit)?;
        }
        Ok(())
    }
}

/// Where in the input something is: the file, and the path to the culprit inside it
/// (`plays[0] 'web' > tasks[2] 'install'`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Where {
    /// The file read.
    pub file: PathBuf,
    /// The path inside it; empty for the whole file.
    pub at: String,
    /// The 1-based line of the keyword (or entry), found when an error is reported.
    pub line: Option<usize>,
}

impl Where {
    pub(crate) fn new(file: &Path, at: &str) -> Self {
        Where {
            file: file.to_path_buf(),
            at: at.to_string(),
            line: None,
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
            line: None,
        }
    }

    /// The same place, with the name of the task or play there.
    pub(crate) fn named(&self, name: Option<&str>) -> Self {
        match name {
            Some(n) if !n.is_empty() => Where {
                file: self.file.clone(),
                at: format!("{} '{n}'", self.at),
                line: None,
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

    /// An error in Ansible's own words ([`PlaybookError::Ansible`]).
    pub(crate) fn ansible(&self, keyword: &str, detail: impl Into<String>) -> PlaybookError {
        PlaybookError::Ansible(Box::new(self.keyword_error(keyword, detail)))
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
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if !self.at.is_empty() {
            write!(f, ": {}", self.at)?;
        }
        Ok(())
    }
}

impl Where {
    /// Finds the line of `keyword` (or of the entry) in the file, once.
    fn find_line(&mut self, keyword: &str) {
        if self.line.is_some() || self.at.is_empty() {
            return;
        }
        if let Ok(text) = std::fs::read_to_string(&self.file) {
            self.line = lines::locate(&text, &self.at, keyword);
        }
    }
}

impl PlaybookError {
    /// Adds the line of the keyword to errors that name a place in a file.
    fn with_line(mut self) -> Self {
        match &mut self {
            PlaybookError::UnknownKeyword(k)
            | PlaybookError::Unsupported(k)
            | PlaybookError::Invalid(k)
            | PlaybookError::Ansible(k) => k.at.find_line(&k.keyword),
            PlaybookError::NotFound(n) => n.at.find_line(&n.keyword),
            _ => {}
        }
        self
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
    /// Ansible Vault encrypted content without the password, or with a wrong one.
    #[error(transparent)]
    Vault(Box<crate::vault::VaultError>),
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
    /// An error ansible-playbook itself gives for this playbook when it reads it, in
    /// its words (`detail`), which the command line prints as Ansible does: `ERROR!
    /// ...`, then where.
    #[error("{}\n\nThe error appears to be in {}", .0.detail, .0.at)]
    Ansible(Box<KeywordError>),
    /// `group_vars/`/`host_vars/` beside the playbook could not be read.
    #[error(transparent)]
    Inventory(Box<crate::inventory::InventoryError>),
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
    match crate::ansible_yaml::load(text) {
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
    load_playbooks(path, &[], opts)
}

/// Reads several playbooks into one plan, their plays one after the other, as
/// `ansible-playbook a.yml b.yml` runs them: one run, so facts and failed hosts carry
/// from one playbook to the next. The first playbook's directory is the one
/// `group_vars/`, `host_vars/` and the plan's files are taken from, as in Ansible.
pub fn load_playbooks(
    path: &Path,
    more: &[PathBuf],
    opts: &PlaybookOptions,
) -> Result<DeployPlan, PlaybookError> {
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
        reach: library::Reach::default(),
        next_play: 0,
    };
    let mut loaded = Vec::new();
    // Which playbook each play comes from: Ansible prints a recap after each one.
    let mut playbook_of = Vec::new();
    for (n, path) in std::iter::once(path)
        .chain(more.iter().map(PathBuf::as_path))
        .enumerate()
    {
        let plays = loader
            .playbook(path, &play::Imported::default())
            .map_err(PlaybookError::with_line)?;
        playbook_of.extend(std::iter::repeat_n(n, plays.len()));
        loaded.extend(plays);
    }
    let rolling = agreed_rolling(&loaded).map_err(PlaybookError::with_line)?;
    let (library, mut reach) = loader.build_library();
    let selection = tags::Selection::new(&opts.tags, &opts.skip_tags);
    let mut plays = Vec::with_capacity(loaded.len());
    for (i, lp) in loaded.into_iter().enumerate() {
        let mut play = lp.finish(&selection, &opts.extra_vars);
        play.reach = reach.remove(&i).unwrap_or_default();
        play.playbook = playbook_of.get(i).copied().unwrap_or_default();
        plays.push(play);
    }
    let mut plan = DeployPlan {
        format: PLAN_FORMAT.to_string(),
        version: PLAN_VERSION,
        check_mode: opts.check,
        diff_mode: opts.diff,
        plays,
        files: loader.files,
        modules: BTreeMap::new(),
        magic: run_magic(opts),
        library,
        controller_answers: BTreeMap::new(),
    };
    crate::plan::attach_files(&mut plan, &base).map_err(|e| PlaybookError::Files(Box::new(e)))?;
    open_vaulted_files(&mut plan.files, &base, opts.vault.as_ref())?;
    let carried = Carried {
        rolling,
        limit: opts.limit.clone(),
        vars: crate::inventory::VarsDir::load_all(&base, opts.vault.as_ref())
            .map_err(|e| PlaybookError::Inventory(Box::new(e)))?,
    };
    if carried.limit.is_some() || carried.rolling.is_some() || !carried.vars.is_empty() {
        let text = serde_json::to_string_pretty(&carried).unwrap_or_default();
        plan.files.insert(
            CARRIED_KEY.to_string(),
            PlanFile {
                content: Some(text),
                base64: None,
                mode: None,
            },
        );
    }
    Ok(plan)
}

/// `ansible_run_tags` and `ansible_skip_tags` as `ansible-playbook` sets them: the tags
/// given (each comma-separated entry on its own), `['all']` when none is.
fn run_magic(opts: &PlaybookOptions) -> Vars {
    let split = |tags: &[String]| -> Vec<Value> {
        tags.iter()
            .flat_map(|t| t.split(','))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(|t| Value::String(t.to_string()))
            .collect()
    };
    let mut run = split(&opts.tags);
    if run.is_empty() {
        run.push(Value::String("all".into()));
    }
    let mut magic = Vars::new();
    magic.insert("ansible_verbosity".into(), Value::from(opts.verbosity));
    magic.insert("ansible_run_tags".into(), Value::Array(run));
    magic.insert(
        "ansible_skip_tags".into(),
        Value::Array(split(&opts.skip_tags)),
    );
    magic
}

/// `-e` arguments, later ones winning: `@file` (YAML or JSON, vault allowed), a YAML/JSON
/// mapping (`'{"a": 1}'`), or `key=value` pairs (several per argument, split as Ansible's
/// `parse_kv` does; the values are strings, as in Ansible: `-e n=1` is the text `1`).
pub fn parse_extra_vars(
    args: &[String],
    vault: Option<&crate::vault::Vault>,
) -> Result<Vars, PlaybookError> {
    let cli = Path::new("-e");
    let mut out = Vars::new();
    for arg in args {
        let arg_trim = arg.trim();
        let mapping = |doc: serde_norway::Value, file: &Path| match doc {
            serde_norway::Value::Null => Ok(Vars::new()),
            serde_norway::Value::Mapping(m) => yaml::mapping_to_json(&m, &Where::new(file, "")),
            other => Err(Where::new(file, "").invalid(
                "",
                format!("extra vars are a mapping, found {}", yaml::describe(&other)),
            )),
        };
        if let Some(file) = arg_trim.strip_prefix('@') {
            let path = Path::new(file);
            out.extend(mapping(yaml::read(path, vault)?, path)?);
        } else if arg_trim.starts_with('{') {
            out.extend(mapping(yaml::parse(arg_trim, cli, vault)?, cli)?);
        } else {
            let pairs = freeform::parse_kv(arg_trim, false)
                .map_err(|e| Where::new(cli, "").invalid("", format!("-e {arg}: {e}")))?;
            if pairs.is_empty() || pairs.contains_key("_raw_params") {
                return Err(Where::new(cli, "").invalid(
                    "",
                    format!("-e {arg}: expected key=value, @file or a JSON/YAML mapping"),
                ));
            }
            out.extend(pairs);
        }
    }
    Ok(out)
}

/// Decrypts embedded `copy`/`template` sources that are vault-encrypted, as Ansible does
/// before sending them (binary plaintext is carried as base64).
fn open_vaulted_files(
    files: &mut BTreeMap<String, PlanFile>,
    base: &Path,
    vault: Option<&crate::vault::Vault>,
) -> Result<(), PlaybookError> {
    for (key, file) in files.iter_mut() {
        let what = base.join(key).display().to_string();
        open_vaulted(file, &what, vault).map_err(|e| PlaybookError::Vault(Box::new(e)))?;
    }
    Ok(())
}

/// A carried file's vault-encrypted content replaced by its plaintext (binary plaintext
/// as base64); any other file is left as it is. `what` names it in errors; without a
/// vault password the error is Ansible's.
pub(crate) fn open_vaulted(
    file: &mut PlanFile,
    what: &str,
    vault: Option<&crate::vault::Vault>,
) -> Result<(), crate::vault::VaultError> {
    use base64::Engine as _;
    let Some(text) = file.content.as_deref().filter(|t| yaml::is_vault(t)) else {
        return Ok(());
    };
    let plain = match vault {
        Some(v) => v.decrypt(text, what)?,
        None => crate::vault::open(None, text, what)?.into_bytes(),
    };
    match String::from_utf8(plain) {
        Ok(s) => file.content = Some(s),
        Err(e) => {
            file.content = None;
            file.base64 = Some(base64::engine::general_purpose::STANDARD.encode(e.as_bytes()));
        }
    }
    Ok(())
}

/// The `serial`/`max_fail_percentage` of the plays, when they all agree: the deployer
/// rolls through the hosts once for the whole plan, so plays cannot batch differently.
fn agreed_rolling(plays: &[play::LoadedPlay]) -> Result<Option<play::Rolling>, PlaybookError> {
    let Some((first, first_at)) = plays.first().map(|p| &p.rolling) else {
        return Ok(None);
    };
    for p in plays.iter().skip(1) {
        let (r, at) = &p.rolling;
        if r != first {
            let show = |r: &Option<play::Rolling>| match r {
                None => "no serial".to_string(),
                Some(r) => format!(
                    "serial {}{}",
                    r.serial,
                    r.max_fail_percentage
                        .map(|m| format!(", max_fail_percentage {m}"))
                        .unwrap_or_default()
                ),
            };
            return Err(at.unsupported(
                "serial",
                format!(
                    "this play has {} but {} has {}; the deployer rolls through the hosts \
                     once for all plays, so every play must have the same serial and \
                     max_fail_percentage",
                    show(r),
                    first_at,
                    show(first)
                ),
            ));
        }
    }
    Ok(first.clone())
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
    /// The controller trees the plays reach, for the library.
    reach: library::Reach,
    /// The index of the next play read (in the plan, imports included).
    next_play: usize,
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
    /// Roles whose handlers were added.
    roles_with_handlers: HashSet<PathBuf>,
    /// Roles being expanded, to refuse a dependency cycle.
    role_stack: Vec<PathBuf>,
    /// Names of the roles of the play's `roles:` section, in order.
    play_roles: Vec<String>,
    /// Names of the roles those depend on (through `meta/main.yml`, at any depth).
    dependent_roles: BTreeSet<String>,
}

pub use crate::plan::controller_path;

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
