//! The project's plan types: what a play and a task say, shared by the plan file and the payload.
//!
//! These shapes are a superset of rustle-plan 0.1.0's tasks: they keep what a playbook
//! says (loops, register, unrendered `when` expressions, become, changed_when/failed_when,
//! ignore_errors, handlers, vars at every level, block/rescue/always) instead of the
//! pre-rendered, lossy form. `docs/plan-format.md` documents them field by field.
#![deny(missing_docs)]

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet};

/// The name written in the `format` field of a plan file.
pub const PLAN_FORMAT: &str = "rustle-deploy-plan";
/// The plan file version this build writes and reads.
pub const PLAN_VERSION: u32 = 1;

/// The key of the marker for text that is never templated, Ansible's `!unsafe`:
/// `{"__ansible_unsafe": "text"}` anywhere a value is carried (variables, arguments,
/// loop items) stands for the string `text`, used as it is.
pub const UNSAFE_KEY: &str = "__ansible_unsafe";

/// Variables: a JSON object, names to values.
pub type Vars = Map<String, Value>;

/// A keyword given as a literal or as a template that the runner evaluates on the host
/// where Ansible does (`ignore_errors: "{{ ansible_check_mode }}"`, `delay: "{{ d }}"`,
/// `retries: "{{ n + 2 }}"`), with the task's variables, loop item included.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Templated<T> {
    /// A literal value.
    Value(T),
    /// A template, rendered and then converted to the keyword's type as Ansible converts
    /// it (`"yes"` is true, `"0.5"` is 0.5).
    Template(String),
}

/// A boolean keyword: a literal, or a template that renders to one of Ansible's booleans.
pub type Flag = Templated<bool>;

impl<T> From<T> for Templated<T> {
    fn from(value: T) -> Self {
        Templated::Value(value)
    }
}

impl<T: PartialEq> Templated<T> {
    /// True when this is the literal `value`.
    pub fn is(&self, value: &T) -> bool {
        matches!(self, Templated::Value(v) if v == value)
    }
}

impl Flag {
    /// True unless this is the literal `false`: a template may turn out true.
    pub fn may_be_true(&self) -> bool {
        !self.is(&false)
    }
}

/// A whole plan file, for every host: what `rustle-deploy` reads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeployPlan {
    /// Always [`PLAN_FORMAT`]; lets a reader tell this format from rustle-plan output.
    pub format: String,
    /// The plan format version, [`PLAN_VERSION`] for this build.
    pub version: u32,
    /// Run every task in check mode (report what would change, change nothing).
    #[serde(default)]
    pub check_mode: bool,
    /// Report differences for the files that tasks change.
    #[serde(default)]
    pub diff_mode: bool,
    /// The plays, in order.
    pub plays: Vec<Play>,
    /// The content of every file a task refers to (`copy src`, `template src`), keyed by
    /// the name the task uses.
    #[serde(default)]
    pub files: BTreeMap<String, PlanFile>,
    /// Custom modules written in Rust, by the name tasks call them with. A plan that has
    /// any is run by a runner built for it (the generic runner plus these modules); the
    /// contract a module's source fulfils is in `docs/plan-format.md`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub modules: BTreeMap<String, ModuleImplementation>,
    /// Ansible's magic variables that making the plan decided (`ansible_run_tags`,
    /// `ansible_skip_tags`), for every play.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub magic: Vars,
    /// The controller's task and variables files that tasks may name at run time,
    /// parsed ahead of time, by controller path (their bytes, and the other files of
    /// the same trees, are in `files` under the same paths).
    #[serde(default, skip_serializing_if = "Library::is_empty")]
    pub library: Library,
    /// The controller lookups (`env`, `pipe`, `lines`, `password`) the deployer answered
    /// on the controller for each host, by host name. Computed while deploying, never
    /// read from or written to a plan file: a plan file cannot bring answers of its own.
    #[serde(skip)]
    pub controller_answers: BTreeMap<String, Vec<ControllerLookup>>,
}

/// What a playbook's directory and its roles hold for the runner to resolve at run time,
/// as Ansible does: task files for `include_tasks`, variables files for `include_vars`,
/// parsed on the controller (the runner reads no YAML), each keyed by its controller path.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Library {
    /// Task files.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tasks: BTreeMap<String, Parsed<Vec<Task>>>,
    /// Variables files: a mapping (null for an empty file).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub vars: BTreeMap<String, Parsed<Value>>,
    /// Files of those trees that could not be read into the plan (a vaulted file with no
    /// vault password, an unreadable file), with the reason: naming one fails there.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub unreadable: BTreeMap<String, String>,
    /// The roles `include_role` may name, by their directory: their meta.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub roles: BTreeMap<String, RoleSpec>,
    /// The handlers of the roles a task file of `tasks` imports (`import_role` in it or
    /// in a file it imports), by that file: they join the play's when the file is
    /// included, as Ansible adds an imported role's handlers to the play when it reads
    /// the import.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub handlers: BTreeMap<String, Vec<Task>>,
    /// Roles an `include_role` names literally that are nowhere on the controller, by
    /// name, with Ansible's message: as in Ansible, only a host that reaches the include
    /// fails, with that message.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub missing_roles: BTreeMap<String, String>,
    /// The directories and symbolic links of the carried trees, for a `copy` of a
    /// directory (its files are among the plan's files).
    #[serde(default, skip_serializing_if = "Layout::is_empty")]
    pub layout: Layout,
}

/// What a controller tree holds besides its files, by controller path: what a `copy` of
/// a directory makes as Ansible's copy action does (empty directories too; links as
/// links with `local_follow: false`, or where a link cannot be followed).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Layout {
    /// Every directory below a tree's top (a followed link to one too).
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub dirs: BTreeSet<String>,
    /// Every symbolic link, with the text it holds (`readlink`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub links: BTreeMap<String, String>,
    /// Modification times and modes of a `synchronize` source's files, directories
    /// (its top too) and links: rsync compares and keeps them, so the copy the runner
    /// hands it must have the controller's, or every run would change something.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub stamps: BTreeMap<String, Stamp>,
}

/// What a controller file, directory or link looked like besides its content.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Stamp {
    /// Modification time, nanoseconds since the epoch.
    pub mtime_ns: i64,
    /// Permission bits (not for links).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<u32>,
}

impl Layout {
    /// True when it holds nothing.
    pub fn is_empty(&self) -> bool {
        self.dirs.is_empty() && self.links.is_empty() && self.stamps.is_empty()
    }

    /// The part of it whose paths `keep` accepts.
    pub fn only(&self, keep: impl Fn(&str) -> bool) -> Layout {
        Layout {
            dirs: self.dirs.iter().filter(|k| keep(k)).cloned().collect(),
            links: (self.links.iter())
                .filter(|(k, _)| keep(k))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            stamps: (self.stamps.iter())
                .filter(|(k, _)| keep(k))
                .map(|(k, v)| (k.clone(), *v))
                .collect(),
        }
    }

    /// Adds what `other` holds.
    pub fn extend(&mut self, other: Layout) {
        self.dirs.extend(other.dirs);
        self.links.extend(other.links);
        self.stamps.extend(other.stamps);
    }
}

/// A role as `include_role` needs it when it runs: where it is and what its
/// `meta/main.yml` says; its task, handler, defaults and vars files are in the library
/// under its directory.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleSpec {
    /// The name it is found by.
    pub name: String,
    /// Its directory, a controller path.
    pub path: String,
    /// Its dependencies, run before it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dependencies: Vec<RoleDep>,
    /// `allow_duplicates` from its meta: run again with the same parameters.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_duplicates: bool,
    /// The argument check Ansible runs before the role's tasks, by entry point (`main`
    /// or a `tasks_from` name), for the entry points its argument spec describes.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub argument_checks: BTreeMap<String, Task>,
}

/// One of a role's dependencies.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleDep {
    /// The dependency's directory (its [`RoleSpec`] is in the library under it).
    pub path: String,
    /// Its parameters (the entry's `vars:` and other keys).
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub params: Vars,
    /// The entry's keywords (`when`, `tags`, `become`, ...), for a block around it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keywords: Option<Box<Task>>,
}

impl Library {
    /// Every task of its task and handler files, blocks and their tasks alike.
    pub fn walk<'a>(&'a self, out: &mut Vec<&'a Task>) {
        for parsed in self.tasks.values() {
            if let Parsed::Ok(list) = parsed {
                for t in list {
                    t.walk(out);
                }
            }
        }
        for t in self.handlers.values().flatten() {
            t.walk(out);
        }
    }

    /// True when it holds nothing.
    pub fn is_empty(&self) -> bool {
        self.tasks.is_empty()
            && self.vars.is_empty()
            && self.unreadable.is_empty()
            && self.roles.is_empty()
            && self.handlers.is_empty()
            && self.layout.is_empty()
    }

    /// The part of the library under any of `roots` (controller directories).
    pub fn under(&self, roots: &[String]) -> Library {
        fn pick<T: Clone>(m: &BTreeMap<String, T>, roots: &[String]) -> BTreeMap<String, T> {
            m.iter()
                .filter(|(k, _)| is_under(k, roots))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        }
        Library {
            tasks: pick(&self.tasks, roots),
            vars: pick(&self.vars, roots),
            unreadable: pick(&self.unreadable, roots),
            roles: pick(&self.roles, roots),
            handlers: pick(&self.handlers, roots),
            // Keyed by name, not by path: a few words each, kept whole.
            missing_roles: self.missing_roles.clone(),
            layout: self.layout.only(|k| is_under(k, roots)),
        }
    }
}

/// Whether the controller path `path` is one of `roots` or inside one of them.
pub fn is_under(path: &str, roots: &[String]) -> bool {
    roots.iter().any(|r| {
        path.strip_prefix(r.trim_end_matches('/'))
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    })
}

/// A controller file parsed ahead of time, or why it cannot run: a file that uses
/// something unsupported is refused only where a host includes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Parsed<T> {
    /// The file's content in plan form.
    Ok(T),
    /// Why it cannot be used, naming file, line and keyword.
    Refused(String),
    /// Ansible itself refuses the file when it reads it (its words, then where):
    /// including it ends the run with `ERROR! ...`, as in Ansible.
    Ansible(String),
}

/// A custom module's Rust source: given inline, or as a file the packer reads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModuleImplementation {
    /// The module's Rust source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// A `.rs` file holding the source, relative to the plan file's directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

/// A file carried in the plan, with its content.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanFile {
    /// UTF-8 content, for text files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    /// Base64 content, for anything else.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base64: Option<String>,
    /// Octal permission bits the file had at its source, e.g. "0644".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
}

/// One play: a host pattern and what to run there.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Play {
    /// The play's name, shown in output.
    #[serde(default)]
    pub name: String,
    /// Host patterns: host names, group names or `all`, resolved against the inventory.
    #[serde(default)]
    pub hosts: Vec<String>,
    /// Play variables.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub vars: Vars,
    /// Gather facts (`setup`) before the first task.
    #[serde(default)]
    pub gather_facts: bool,
    /// Run the play's tasks with privilege.
    #[serde(default, rename = "become", skip_serializing_if = "Option::is_none")]
    pub become_: Option<Flag>,
    /// The user to become (default root).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub become_user: Option<String>,
    /// Environment variables for every task's processes (a mapping, or a template that
    /// renders to one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<Value>,
    /// A failure of any task or handler of the play is reported but the host goes on
    /// (unless a block or task says otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ignore_errors: Option<Flag>,
    /// A host a task of the play cannot reach is reported unreachable but goes on
    /// (Ansible's play keyword `ignore_unreachable`, inherited by every task and handler
    /// unless a block or task says otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ignore_unreachable: Option<Flag>,
    /// Run the play's tasks in check mode (true) or for real (false).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check_mode: Option<Flag>,
    /// Report differences (diff mode) for the play's tasks (true) or not (false),
    /// whatever the run's `--diff` says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diff: Option<Flag>,
    /// Hide the results of the play's tasks and handlers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub no_log: Option<Flag>,
    /// Seconds each task of the play may run (`timeout`), unless a block or the task
    /// says otherwise; 0 or unset: no limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Templated<i64>>,
    /// `remote_user`: the user the play's connection logs in as (a template allowed).
    /// A local connection ignores it, as Ansible's does; see [`Task::remote_user`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_user: Option<String>,
    /// The tasks, in order.
    #[serde(default)]
    pub tasks: Vec<Task>,
    /// Handlers, run at the end of the play when notified.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub handlers: Vec<Task>,
    /// Ansible's magic variables that the playbook decides for this play
    /// (`playbook_dir`, `ansible_play_role_names`, `ansible_role_names`,
    /// `ansible_dependent_role_names`, `role_names`), set by the playbook loader. Like
    /// every magic variable they rank above all others.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub magic: Vars,
    /// The controller directories (the playbook's, its roles') whose files the play's
    /// tasks may name at run time: what of the plan's files and library its hosts get.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reach: Vec<String>,
    /// The play's tags (and those of the `import_playbook` that brought it): the tasks
    /// includes bring in inherit them when the runner filters them by `--tags`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// `any_errors_fatal`: a task that fails on a host (not ignored) fails every other
    /// host of the play once they have all run it; a host in a block goes to its rescue.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub any_errors_fatal: bool,
    /// `max_fail_percentage`: once more than this share of the play's hosts (of the
    /// batch) have failed, at the end of a task, every other host is failed too and
    /// the run stops after the play, as in Ansible.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_fail_percentage: Option<u32>,
    /// Set by the packer when an earlier play may put hosts in groups (`group_by`): the
    /// play is in the plan of every host that may belong to it then, and each host
    /// matches `hosts` against its groups as they stand when the play starts, skipping
    /// a play that does not select it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub hosts_at_start: bool,
    /// `strategy` as the playbook gives it (rendered): `free` lets each host go at its
    /// own pace even in a play whose hosts otherwise wait for each other after every
    /// task (one with a `throttle`); unset or `linear`, Ansible's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strategy: Option<String>,
    /// `force_handlers`: the handlers notified so far run even on a host that failed.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub force_handlers: bool,
    /// `connection: local` on the play: the deployer runs it only on hosts that connect
    /// locally anyway (`ansible_connection=local`, the implicit localhost), where it
    /// changes nothing.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub connection_local: bool,
    /// A changed task notifying a name no handler answers to is warned about and the
    /// play goes on (Ansible's `ERROR_ON_MISSING_HANDLER` off,
    /// `ANSIBLE_ERROR_ON_MISSING_HANDLER=false`); by default it ends the run with an error.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub missing_handler_warns: bool,
    /// How many of Ansible's implicit handler flushes come at the end of the play: one
    /// after each of its sections (`pre_tasks`, roles and `tasks`, `post_tasks`) from the
    /// last that has tasks on (3, 2 or 1); unset, one. A handler that notifies an
    /// earlier one gets it run by the next of them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_flushes: Option<u8>,
    /// The play's number in the deploy, set by the packer when its hosts must wait for
    /// each other after every task (`any_errors_fatal`, `max_fail_percentage`, or a
    /// `throttle` under the linear strategy, on more than one host): the
    /// runners name it in their `barrier` requests (`docs/events.md`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fleet: Option<usize>,
    /// The play's number in the deploy, set by the packer when the deploy reads other
    /// hosts' `hostvars`: the runner then tells the deployer what it knows of itself
    /// after each task (`vars` events) and asks it for other hosts' (`docs/events.md`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub number: Option<usize>,
    /// Which of the run's playbooks the play comes from (`ansible-playbook a.yml b.yml`:
    /// 0 for a.yml's plays, 1 for b.yml's): Ansible prints a recap after each playbook.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub playbook: usize,
}

impl DeployPlan {
    /// For each play, whether hosts may have joined groups by the time it starts: a
    /// `group_by` task is in an earlier play, or in a task file an earlier play may
    /// include.
    pub fn groups_change_before(&self) -> Vec<bool> {
        let in_library = self.library_groups_hosts();
        let mut before = false;
        self.plays
            .iter()
            .map(|play| {
                let now = before;
                before |= in_library
                    || play
                        .tasks
                        .iter()
                        .chain(play.handlers.iter())
                        .any(Task::groups_hosts);
                now
            })
            .collect()
    }
}

impl DeployPlan {
    /// Whether a task file the plays may include holds a `group_by`.
    fn library_groups_hosts(&self) -> bool {
        let mut all = Vec::new();
        self.library.walk(&mut all);
        all.iter().any(|t| t.module_name() == "group_by")
    }

    /// The groups the plan's `group_by` tasks (in plays or in files they may include)
    /// may put hosts in, as name patterns: each task's `key` and `parents` up to their
    /// first template (`os_{{ x }}` gives `os_*`), exactly when they hold none. Empty
    /// when the plan has no `group_by`.
    pub fn group_by_names(&self) -> Vec<GroupName> {
        let mut all = Vec::new();
        for t in self
            .plays
            .iter()
            .flat_map(|p| p.tasks.iter().chain(p.handlers.iter()))
        {
            t.walk(&mut all);
        }
        self.library.walk(&mut all);
        let mut names = Vec::new();
        for t in all.into_iter().filter(|t| t.module_name() == "group_by") {
            let mut given: Vec<&Value> = t.args.get("key").into_iter().collect();
            match t.args.get("parents") {
                Some(Value::Array(list)) => given.extend(list),
                Some(other) => given.push(other),
                None => {}
            }
            // A key given otherwise (a template for all of the arguments) may be any.
            if given.is_empty() {
                given.push(&Value::Null);
            }
            for v in given {
                let text = match v {
                    Value::String(s) => s.replace(' ', "-"),
                    Value::Null => String::new(),
                    other => other.to_string(),
                };
                let cut = text.find("{{").or_else(|| text.find("{%"));
                names.push(GroupName {
                    exact: cut.is_none() && !text.is_empty(),
                    text: text
                        .get(..cut.unwrap_or(text.len()))
                        .unwrap_or_default()
                        .to_string(),
                });
            }
        }
        names
    }
}

/// A group a `group_by` may make: a name, or the start of one ([`DeployPlan::group_by_names`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupName {
    /// The name, or what every name it may give starts with.
    pub text: String,
    /// `text` is the whole name.
    pub exact: bool,
}

impl GroupName {
    /// Whether `group` may be this name.
    pub fn admits(&self, group: &str) -> bool {
        if self.exact {
            group == self.text
        } else {
            group.starts_with(&self.text)
        }
    }
}

impl Play {
    /// Whether a task or handler of the play has a `throttle` (the files its includes
    /// bring are not counted: what they hold is known when they run).
    pub fn throttles(&self) -> bool {
        let mut all = Vec::new();
        for t in self.tasks.iter().chain(self.handlers.iter()) {
            t.walk(&mut all);
        }
        all.iter().any(|t| t.throttle.is_some())
    }
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// A condition keyword that is either a literal boolean or Jinja expressions (all must hold).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Condition {
    /// `changed_when: false`.
    Bool(bool),
    /// `when: x == 1`.
    One(String),
    /// `when: [a, b]`: every expression must be true.
    All(Vec<String>),
}

impl Condition {
    /// The expressions to evaluate, or the literal value.
    pub fn expressions(&self) -> Result<Vec<&str>, bool> {
        match self {
            Condition::Bool(b) => Err(*b),
            Condition::One(s) => Ok(vec![s.as_str()]),
            Condition::All(v) => Ok(v.iter().map(String::as_str).collect()),
        }
    }
}

/// `loop_control`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoopControl {
    /// The name of the loop variable (default `item`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loop_var: Option<String>,
    /// A template shown instead of the whole item.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// A variable that holds the item's 0-based index.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index_var: Option<String>,
    /// Seconds to wait between items.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pause: Option<Templated<f64>>,
    /// Provide `ansible_loop` (index, first, last, length, revindex, previtem, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extended: Option<Flag>,
    /// With `extended`, leave `ansible_loop.allitems` out (false), as Ansible allows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extended_allitems: Option<Flag>,
    /// Stop looping after the first item for which this holds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub break_when: Option<Condition>,
}

/// A task, a handler, or a block (when `block` is set, `module` is empty).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Task {
    /// The task's name, shown in output.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The module to run, e.g. `copy` (`ansible.builtin.` prefixes are accepted).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub module: String,
    /// The module's arguments; free-form text arrives as `_raw_params`.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub args: Vars,
    /// Run only when every expression holds.
    #[serde(default, rename = "when", skip_serializing_if = "Option::is_none")]
    pub when: Option<Condition>,
    /// Items to loop over: a list, or a template that renders to one. With
    /// `loop_with`, the terms of that lookup instead.
    #[serde(default, rename = "loop", skip_serializing_if = "Option::is_none")]
    pub loop_: Option<Value>,
    /// The lookup of a `with_<lookup>` loop (`sequence` for `with_sequence`): the items
    /// are what that lookup returns for the terms in `loop`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loop_with: Option<String>,
    /// Loop options.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loop_control: Option<LoopControl>,
    /// Store the result in this variable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub register: Option<String>,
    /// Overrides whether the result counts as changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub changed_when: Option<Condition>,
    /// Overrides whether the result counts as failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_when: Option<Condition>,
    /// A failure is reported but the host goes on. Unset, the enclosing block's or
    /// play's value applies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ignore_errors: Option<Flag>,
    /// `ignore_unreachable`: a host this task cannot reach (the host a task is delegated
    /// to) counts as ok and ignored, and this host goes on, as in Ansible. Unset, the
    /// enclosing block's value applies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ignore_unreachable: Option<Flag>,
    /// Handlers (by name or `listen` topic) to notify when this task changes something.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notify: Vec<String>,
    /// Topics this handler also answers to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub listen: Vec<String>,
    /// Task variables.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub vars: Vars,
    /// Run with privilege.
    #[serde(default, rename = "become", skip_serializing_if = "Option::is_none")]
    pub become_: Option<Flag>,
    /// The user to become.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub become_user: Option<String>,
    /// Environment variables for the processes this task (or block) starts, over the
    /// play's and enclosing blocks' (a mapping, or a template that renders to one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<Value>,
    /// Hide the task's result (arguments, output) from events and reports. Unset, the
    /// enclosing block's or play's value applies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub no_log: Option<Flag>,
    /// Tags, for `--tags` / `--skip-tags` selection when the plan is made.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// Repeat until this holds (with `retries` and `delay`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<Condition>,
    /// How many times to retry (Ansible's default is 3 with `until`; without `until`,
    /// the task is retried until it succeeds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<Templated<i64>>,
    /// Seconds between retries (default 5; fractions allowed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay: Option<Templated<f64>>,
    /// Run this task in check mode (true) or for real (false) whatever the plan says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check_mode: Option<Flag>,
    /// Report differences (diff mode) for this task (true) or not (false) whatever
    /// the plan says. Unset, the enclosing block's or play's value applies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diff: Option<Flag>,
    /// Seconds the task's module may run before Ansible's "failed to execute in the
    /// expected time frame" failure (each retry has its own); 0: no limit. Unset, the
    /// enclosing block's or play's value applies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Templated<i64>>,
    /// `remote_user`: the login user of the task's connection. A local connection
    /// ignores it (it runs as whoever runs it, as Ansible's local connection does); an
    /// SSH host's runner cannot change the user it was started as, so a task asking
    /// for another user there fails, naming both. Unset, the block's or play's applies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_user: Option<String>,
    /// The tasks of a block.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub block: Option<Vec<Task>>,
    /// Run when a task of the block fails.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rescue: Vec<Task>,
    /// Run after the block whatever happened.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub always: Vec<Task>,
    /// Where this task (or the tasks of this block) was read from: its file and role, for
    /// Ansible's search path and `role_name`/`role_path`. Set by the playbook loader on
    /// the block holding a role's or an imported file's tasks, and on role handlers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<Origin>,
    /// `include_tasks`' `apply`: keywords for a block around the included tasks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub apply: Option<Box<Task>>,
    /// Ansible's `delegate_to` (also set for `local_action` and `connection: local`):
    /// the host the task's module runs on, with this host's variables; a template is
    /// rendered when the task runs. The runner asks the deployer to run it
    /// (`docs/events.md`): on the controller (`localhost`, `127.0.0.1`, `::1`), or on
    /// another inventory host over that host's own connection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delegate_to: Option<String>,
    /// `delegate_facts`: facts the delegated task returns belong to the delegated host
    /// (the deployer keeps them for it), not to this one.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub delegate_facts: bool,
    /// `run_once`: the first host of the batch to reach the task runs it; the others
    /// take its result (through the deployer). A template is evaluated when the task
    /// runs, with its variables, as Ansible does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_once: Option<Flag>,
    /// `async`: the module runs as a background job on the host for at most this many
    /// seconds (`modules::async_job`); 0 or unset, in the foreground.
    #[serde(default, rename = "async", skip_serializing_if = "Option::is_none")]
    pub async_: Option<Templated<i64>>,
    /// `poll`: seconds between checks on an `async` job (Ansible's default 10); 0 starts
    /// the job and goes on, registering its `ansible_job_id` for `async_status`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub poll: Option<Templated<i64>>,
    /// `throttle`: at most this many hosts run the task at once (the deployer hands out
    /// the turns over the channel).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub throttle: Option<Templated<i64>>,
}

/// Where tasks come from (see [`Task::origin`]).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Origin {
    /// The controller path of the file the tasks were read from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// The role the tasks belong to, entered here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<RoleRef>,
    /// This is the whole body of one use of a role (Ansible's cached role object):
    /// which, so that the executor runs it again for a host only until it has completed
    /// there once (see [`RoleInstance`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<RoleInstance>,
}

/// One use of a role, as Ansible's role cache tells uses apart: a role used again with
/// the same `key` is the same use. Once a host has come to its end (or to `meta:
/// end_role`) having run at least one of its tasks (ok, changed or failed, not skipped
/// or unreachable), the use has completed there, and a later use with the same key that
/// does not allow duplicates runs nothing on that host (Ansible's `role_complete`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleInstance {
    /// The role's path, files, parameters, `when`, `tags` and whether a task named it:
    /// see [`RoleInstance::key_of`].
    pub key: String,
    /// Runs again even once completed (its meta's `allow_duplicates`, or an
    /// `import_role`/`include_role`, which default to it).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_duplicates: bool,
}

impl RoleInstance {
    /// The key of a use of the role at `path`: the packer's (static uses) and the
    /// executor's (roles an `include_role` brings in) are made here alike, so that a
    /// dependency met by both is one use. `files` names the chosen task, vars, defaults
    /// and handlers files (empty for `main`); `keywords` is the entry's `when` and `tags`.
    pub fn key_of(
        path: &str,
        files: &[Option<&str>; 4],
        params: &Vars,
        keywords: Option<&Task>,
        from_task: bool,
    ) -> String {
        let when = keywords.and_then(|k| k.when.as_ref());
        let tags = keywords.map(|k| k.tags.as_slice()).unwrap_or_default();
        serde_json::json!([path, files, params, when, tags, from_task]).to_string()
    }
}

/// A role whose tasks run: `role_name`, `role_path`, and how it was entered.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleRef {
    /// The role's name.
    pub name: String,
    /// Its directory, a controller path.
    pub path: String,
    /// Entered by a task (`import_role`/`include_role`) rather than from `roles:` or a
    /// dependency: the enclosing roles are then its `ansible_parent_role_names`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub from_task: bool,
}

impl Task {
    /// The module's name as the runner knows it ([`crate::modules::canonical`]): without
    /// an `ansible.builtin.` / `ansible.legacy.` prefix, a collection module the runner
    /// implements by its short name.
    pub fn module_name(&self) -> &str {
        crate::modules::canonical(&self.module)
    }

    /// The name shown for this task: its own, or the module's as Ansible does.
    pub fn display_name(&self) -> String {
        match (&self.name, &self.block) {
            (Some(n), _) => n.clone(),
            (None, Some(_)) => "block".to_string(),
            // A collection's module keeps its collection in the name shown.
            (None, None) => {
                let m = self.module.as_str();
                m.strip_prefix("ansible.builtin.")
                    .or_else(|| m.strip_prefix("ansible.legacy."))
                    .unwrap_or(m)
                    .to_string()
            }
        }
    }

    /// Whether this task (not counting the tasks inside it) needs the controller
    /// channel: it is delegated, runs once for all hosts, is throttled, or fetches a
    /// file for the controller.
    pub fn needs_channel(&self) -> bool {
        self.delegate_to.is_some()
            || self.may_run_once()
            || self.throttle.is_some()
            || self.module_name() == "fetch"
    }

    /// Whether the task may run once for the batch: `run_once` is true or a template.
    pub fn may_run_once(&self) -> bool {
        self.run_once.as_ref().is_some_and(Flag::may_be_true)
    }

    /// The task's identity in the signed plan, by which a runner names it to the
    /// deployer over the channel: the blake3 digest of its JSON form, cut to 128 bits.
    /// Both sides compute it from the same plan, so it needs no field of its own, and a
    /// host cannot name a task its plan does not hold.
    pub fn channel_id(&self) -> String {
        let json = serde_json::to_vec(self).unwrap_or_default();
        let digest = blake3::hash(&json);
        crate::hex::encode(digest.as_bytes().get(..16).unwrap_or_default())
    }

    /// Whether this task or one inside it is a `group_by`.
    pub fn groups_hosts(&self) -> bool {
        let mut all = Vec::new();
        self.walk(&mut all);
        all.iter().any(|t| t.module_name() == "group_by")
    }

    /// Every task below this one, this one included, depth first.
    pub fn walk<'a>(&'a self, out: &mut Vec<&'a Task>) {
        out.push(self);
        for t in self
            .block
            .iter()
            .flatten()
            .chain(self.rescue.iter())
            .chain(self.always.iter())
        {
            t.walk(out);
        }
    }
}

/// What one host's payload carries: its plays (only the ones it is in), its variables,
/// and what it shares with every host that runs the same plays ([`Shared`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostPlan {
    /// The deployment this plan belongs to.
    pub deployment_id: String,
    /// The host's inventory name (`inventory_hostname`).
    pub host: String,
    /// Seconds since the Unix epoch when the payload was made.
    pub created_at: u64,
    /// The packer version that made it.
    pub packer_version: String,
    /// Check mode for every task.
    pub check_mode: bool,
    /// Diff mode for every task.
    pub diff_mode: bool,
    /// Inventory variables for this host (group and host vars merged), plus the magic
    /// variables `inventory_hostname` and `group_names`.
    pub host_vars: Vars,
    /// What `host_vars` becomes, by group, when `group_by` puts the host in a group it
    /// is not in: the variables of that group's `group_vars` files that win over the
    /// host's others. Only in a plan with a `group_by`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub group_by_vars: BTreeMap<String, Vars>,
    /// The plays this host takes part in.
    pub plays: Vec<Play>,
    /// Ansible's magic variables about the run and the inventory that do not depend on
    /// the play or task (`omit`, `ansible_version`, `inventory_file`, `ansible_run_tags`,
    /// ...): they rank above every other variable, as in Ansible.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub magic: Vars,
    /// What the controller answered, while packing, for the lookups that read the
    /// controller's world (`env`, `pipe`, `lines`, `password`) and whose arguments were
    /// known there, for this host. The runner answers those lookups from here and
    /// nowhere else.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub controller_lookups: Vec<ControllerLookup>,
    /// The files, controller data and variables this host shares with the other hosts
    /// that run the same plays; one copy serves them all while packing.
    #[serde(flatten)]
    pub shared: std::sync::Arc<Shared>,
}

impl HostPlan {
    /// Every task of the plan that needs the controller channel (delegated, run once),
    /// in the plays, their handlers and the task files they may include: a plan with
    /// none runs without asking the deployer anything.
    pub fn channel_tasks(&self) -> Vec<&Task> {
        let mut all = self.all_tasks();
        all.retain(|t| t.needs_channel());
        all
    }

    /// Every task of the plan, blocks and their tasks alike: in the plays, their
    /// handlers and the task files they may include.
    pub fn all_tasks(&self) -> Vec<&Task> {
        let mut all = Vec::new();
        for play in &self.plays {
            for t in play.tasks.iter().chain(play.handlers.iter()) {
                t.walk(&mut all);
            }
        }
        self.shared.library.walk(&mut all);
        all
    }
}

/// The part of a host's payload that every host running the same plays has alike: the
/// packer builds it once per set of plays, and the payload format compresses it once.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Shared {
    /// The files the tasks use, by the name the tasks use (controller files by their
    /// controller path).
    #[serde(default)]
    pub files: BTreeMap<String, HostFile>,
    /// Magic variables of each play, in the order of [`HostPlan::plays`]
    /// (`ansible_play_hosts`, `ansible_play_batch`, `play_hosts`, ...).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub play_vars: Vec<Vars>,
    /// The parsed controller files the plays' tasks may include.
    #[serde(default, skip_serializing_if = "Library::is_empty")]
    pub library: Library,
    /// `groups`: every inventory group with its hosts, in inventory order.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub groups: BTreeMap<String, Vec<String>>,
    /// Other hosts' inventory variables, for `hostvars` (connection secrets left out);
    /// carried only when something the hosts can run refers to `hostvars`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub hostvars: BTreeMap<String, Vars>,
}

/// One controller lookup answered while packing: the call, and what it returned or why
/// it failed (Ansible reports that failure where the lookup is used, on the host).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ControllerLookup {
    /// The lookup's short name: `env`, `pipe`, `lines` or `password`.
    pub lookup: String,
    /// The terms the lookup received (a list for `lookup()`, what the loop rendered to
    /// for `with_<lookup>`).
    pub terms: Value,
    /// Its keyword options, other than `wantlist`, `errors` and `allow_unsafe`.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub options: Vars,
    /// The plugin's result.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub values: Option<Vec<Value>>,
    /// Why the plugin failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The Python class of that failure, which decides how Ansible reports it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_class: Option<String>,
}

/// A file embedded in a host payload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostFile {
    /// The bytes.
    #[serde(with = "serde_bytes")]
    pub content: Vec<u8>,
    /// Permission bits at the source, when known.
    pub mode: Option<u32>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn group_by_names_are_the_literal_starts_of_keys_and_parents() {
        let plan: DeployPlan = serde_json::from_value(json!({
            "format": "rustle-deploy-plan", "version": 1,
            "plays": [{"name": "p", "hosts": ["all"], "tasks": [
                {"module": "group_by", "args": {"key": "os_{{ ansible_distribution }}", "parents": ["linux"]}},
                {"block": [{"module": "group_by", "args": {"key": "static name"}}]},
                {"module": "debug", "args": {"msg": "x"}}
            ]}]
        }))
        .unwrap();
        let names = plan.group_by_names();
        let admitted = |g: &str| names.iter().any(|n| n.admits(g));
        assert!(admitted("os_Debian") && admitted("linux") && admitted("static-name"));
        assert!(!admitted("db") && !admitted("linux2") && !admitted("static"));
        let none: DeployPlan = serde_json::from_value(json!({
            "format": "rustle-deploy-plan", "version": 1,
            "plays": [{"name": "p", "hosts": ["all"], "tasks": []}]
        }))
        .unwrap();
        assert!(none.group_by_names().is_empty());
    }
}
