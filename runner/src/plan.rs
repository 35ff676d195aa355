//! The project's plan types: what a play and a task say, shared by the plan file and the payload.
//!
//! These shapes are a superset of rustle-plan 0.1.0's tasks: they keep what a playbook
//! says (loops, register, unrendered `when` expressions, become, changed_when/failed_when,
//! ignore_errors, handlers, vars at every level, block/rescue/always) instead of the
//! pre-rendered, lossy form. `docs/plan-format.md` documents them field by field.
#![deny(missing_docs)]

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// The name written in the `format` field of a plan file.
pub const PLAN_FORMAT: &str = "rustle-deploy-plan";
/// The plan file version this build writes and reads.
pub const PLAN_VERSION: u32 = 1;

/// Variables: a JSON object, names to values.
pub type Vars = Map<String, Value>;

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
    /// The controller lookups (`env`, `pipe`, `lines`, `password`) the deployer answered
    /// on the controller for each host, by host name. Computed while deploying, never
    /// read from or written to a plan file: a plan file cannot bring answers of its own.
    #[serde(skip)]
    pub controller_answers: BTreeMap<String, Vec<ControllerLookup>>,
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
    pub become_: Option<bool>,
    /// The user to become (default root).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub become_user: Option<String>,
    /// Environment variables for every task's processes (a mapping, or a template that
    /// renders to one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<Value>,
    /// The tasks, in order.
    #[serde(default)]
    pub tasks: Vec<Task>,
    /// Handlers, run at the end of the play when notified.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub handlers: Vec<Task>,
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
    pub pause: Option<f64>,
    /// Provide `ansible_loop` (index, first, last, length, revindex, previtem, ...).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub extended: bool,
    /// With `extended`, leave `ansible_loop.allitems` out (false), as Ansible allows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extended_allitems: Option<bool>,
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
    /// A failure is reported but the host goes on.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub ignore_errors: bool,
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
    pub become_: Option<bool>,
    /// The user to become.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub become_user: Option<String>,
    /// Environment variables for the processes this task (or block) starts, over the
    /// play's and enclosing blocks' (a mapping, or a template that renders to one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<Value>,
    /// Hide the task's result (arguments, output) from events and reports.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub no_log: bool,
    /// Tags, for `--tags` / `--skip-tags` selection when the plan is made.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// Repeat until this holds (with `retries` and `delay`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<Condition>,
    /// How many times to retry with `until` (Ansible's default is 3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<u32>,
    /// Seconds between retries (default 5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay: Option<u64>,
    /// Run this task in check mode (true) or for real (false) whatever the plan says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check_mode: Option<bool>,
    /// The tasks of a block.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub block: Option<Vec<Task>>,
    /// Run when a task of the block fails.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rescue: Vec<Task>,
    /// Run after the block whatever happened.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub always: Vec<Task>,
}

impl Task {
    /// The module name without an `ansible.builtin.` / `ansible.legacy.` prefix.
    pub fn module_name(&self) -> &str {
        let m = self.module.as_str();
        m.strip_prefix("ansible.builtin.")
            .or_else(|| m.strip_prefix("ansible.legacy."))
            .unwrap_or(m)
    }

    /// The name shown for this task: its own, or the module's as Ansible does.
    pub fn display_name(&self) -> String {
        match (&self.name, &self.block) {
            (Some(n), _) => n.clone(),
            (None, Some(_)) => "block".to_string(),
            (None, None) => self.module_name().to_string(),
        }
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

/// What one host's payload carries: its plays (only the ones it is in), its variables
/// and the files its tasks use. Nothing of any other host.
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
    /// The plays this host takes part in.
    pub plays: Vec<Play>,
    /// The files this host's tasks use, by the name the tasks use.
    pub files: BTreeMap<String, HostFile>,
    /// What the controller answered, while packing, for the lookups that read the
    /// controller's world (`env`, `pipe`, `lines`, `password`) and whose arguments were
    /// known there. The runner answers those lookups from here and nowhere else.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub controller_lookups: Vec<ControllerLookup>,
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
