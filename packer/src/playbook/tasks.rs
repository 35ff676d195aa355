//! Tasks, handlers and blocks: keywords, the module and its arguments, and the static
//! `import_tasks`/`include_tasks` that are inlined.

use super::freeform;
use super::roles::{RoleEntry, RoleInfo};
use super::yaml::{self, key_str, mapping_to_json, scalar_str, to_json};
use super::{Loader, NotFound, PlaybookError, Where, canonical, render_static};
use rustle_runner::plan::{Condition, Flag, LoopControl, Origin, Task, Templated, Vars};
use serde_json::Value;
use serde_norway::{Mapping, Value as Yaml};
use std::path::{Path, PathBuf};
use std::rc::Rc;

/// Keywords valid on tasks, blocks and includes alike.
const COMMON: [&str; 15] = [
    "name",
    "environment",
    "no_log",
    "when",
    "tags",
    "vars",
    "become",
    "become_user",
    "become_method",
    "ignore_errors",
    "ignore_unreachable",
    "check_mode",
    "diff",
    "timeout",
    "remote_user",
];

/// Keywords valid on tasks (and handlers) only.
const TASK_ONLY: [&str; 22] = [
    "delegate_to",
    "delegate_facts",
    "run_once",
    "connection",
    "loop",
    "with_items",
    "with_list",
    "with_dict",
    "loop_control",
    "register",
    "changed_when",
    "failed_when",
    "until",
    "retries",
    "delay",
    "notify",
    "args",
    "action",
    "listen",
    "async",
    "poll",
    "throttle",
];

/// Keywords of a block.
const BLOCK_ONLY: [&str; 3] = ["block", "rescue", "always"];

/// The lookup a `with_<lookup>` keyword loops over, when `key` is one: any lookup
/// ansible-core has (the runner runs it over the keyword's terms, as Ansible does).
fn with_lookup(key: &str) -> Option<&str> {
    key.strip_prefix("with_")
        .filter(|name| rustle_runner::lookups::is_known(name))
}

/// Loop keywords (`loop`, `with_<lookup>`): a task takes at most one.
fn is_loop(key: &str) -> bool {
    key == "loop" || with_lookup(key).is_some()
}

/// Modules the loader does not know must be checked for typos of keywords; these are
/// taken as modules without a second thought (the runner says later which it runs).
const KNOWN_MODULES: &[&str] = &[
    "acl",
    "add_host",
    "apk",
    "apt",
    "apt_key",
    "apt_repository",
    "archive",
    "assemble",
    "assert",
    "async_status",
    "authorized_key",
    "blockinfile",
    "command",
    "copy",
    "cron",
    "debconf",
    "debug",
    "dnf",
    "dpkg_selections",
    "expect",
    "fail",
    "fetch",
    "file",
    "find",
    "gem",
    "get_url",
    "getent",
    "git",
    "group",
    "group_by",
    "hostname",
    "include_vars",
    "iptables",
    "known_hosts",
    "lineinfile",
    "locale_gen",
    "make",
    "meta",
    "mount",
    "npm",
    "package",
    "package_facts",
    "pacman",
    "pause",
    "ping",
    "pip",
    "raw",
    "reboot",
    "replace",
    "rpm_key",
    "script",
    "seboolean",
    "selinux",
    "service",
    "service_facts",
    "set_fact",
    "set_stats",
    "setup",
    "shell",
    "slurp",
    "stat",
    "synchronize",
    "sysctl",
    "systemd",
    "systemd_service",
    "tempfile",
    "template",
    "timezone",
    "ufw",
    "unarchive",
    "uri",
    "user",
    "validate_argument_spec",
    "wait_for",
    "wait_for_connection",
    "yum",
    "yum_repository",
    "zypper",
    "import_tasks",
    "include_tasks",
    "import_role",
    "include_role",
    "include",
    "import_playbook",
];

/// Ansible keywords (task or play) the plan cannot carry yet, and why.
pub(crate) fn unsupported_reason(key: &str) -> Option<&'static str> {
    Some(match key {
        "delegate_to" | "delegate_facts" | "local_action" => {
            "delegation is supported on tasks, blocks and imports, not yet on include_tasks and include_role"
        }
        "run_once" => {
            "run_once is supported on tasks, blocks, imports and plays, not yet on include_tasks and include_role"
        }
        "connection" | "port" => "connection settings come from the inventory, not the playbook",
        "module_defaults" | "collections" => {
            "module defaults and collection search paths are not implemented"
        }
        "any_errors_fatal" => "any_errors_fatal is supported on plays, not yet on blocks and tasks",
        "max_fail_percentage" => {
            "max_fail_percentage is supported on plays, not on blocks and tasks"
        }
        "throttle" => {
            "throttle is supported on tasks, blocks, imports and plays, not yet on include_tasks and include_role"
        }
        "serial" | "strategy" | "order" => {
            "every host runs its own plan in full; batches and ordering across hosts are not implemented"
        }
        "debugger" => "the interactive debugger is not available on the runner",
        "become_flags" | "become_exe" => {
            "become is done by the deployer (sudo -n); its options are fixed"
        }
        "force_handlers" => "force_handlers is a play keyword",
        "gather_subset" | "gather_timeout" | "fact_path" => "fact gathering options are fixed",
        "vars_prompt" => "there is no terminal on the hosts to prompt at",
        "include" => "`include` was removed from Ansible (2.16); use import_tasks or include_tasks",
        _ => return None,
    })
}

/// A `register` name, checked as Ansible checks it when the task is loaded: a Python
/// identifier.
fn register_name(v: &Yaml, at: &Where) -> Result<Option<String>, PlaybookError> {
    let name = opt_string(v, at, "register")?;
    if let Some(n) = &name
        && !rustle_runner::modules::args::is_identifier(n)
    {
        return Err(at.invalid(
            "register",
            format!("Invalid variable name in 'register' specified: '{n}'"),
        ));
    }
    Ok(name)
}

/// The module name without `ansible.builtin.` / `ansible.legacy.`.
pub(crate) fn short_name(module: &str) -> &str {
    module
        .strip_prefix("ansible.builtin.")
        .or_else(|| module.strip_prefix("ansible.legacy."))
        .unwrap_or(module)
}

/// What a task file being read is, and where.
#[derive(Debug, Clone)]
pub(crate) struct Cx {
    /// The directory includes are relative to.
    pub(crate) dir: PathBuf,
    /// The directory of the playbook being read (roles and `src` files are found there).
    pub(crate) playbook_dir: PathBuf,
    /// The role the tasks belong to.
    pub(crate) role: Option<Rc<RoleInfo>>,
    /// Reading handlers (`listen` is allowed).
    pub(crate) handler: bool,
    /// Reading the tasks of a block: among handlers, a block there is one Ansible
    /// refuses (a block of the handlers list itself is only handlers with keywords).
    pub(crate) in_block: bool,
}

/// A mapping key as a string, or an error naming where.
pub(crate) fn key_of(key: &Yaml, at: &Where) -> Result<String, PlaybookError> {
    key_str(key).ok_or_else(|| {
        at.invalid(
            "",
            format!(
                "keys must be strings, found {} as a key",
                yaml::describe(key)
            ),
        )
    })
}

/// The error for a keyword that is not in `allowed`: not supported yet, or unknown (with
/// the nearest allowed keyword when it looks like a typo).
pub(crate) fn bad_keyword(key: &str, allowed: &[&str], at: &Where) -> PlaybookError {
    if let Some(reason) = unsupported_reason(key) {
        return at.unsupported(key, reason);
    }
    if is_loop(key) {
        return at.invalid(key, "a loop is only valid on a task");
    }
    if let Some(name) = key.strip_prefix("with_") {
        return at.invalid(
            key,
            format!("there is no lookup named '{name}' (`with_<lookup>` loops over a lookup)"),
        );
    }
    match nearest(key, allowed.iter().copied()) {
        Some(near) => at.unknown(key, format!("; did you mean `{near}`?")),
        None => at.unknown(key, format!("; expected one of: {}", allowed.join(", "))),
    }
}

/// The keyword closest to `key` when it is close enough to be a typo.
fn nearest<'a>(key: &str, candidates: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    let limit = if key.chars().count() <= 5 { 1 } else { 2 };
    candidates
        .map(|c| (distance(key, c), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Edit distance with transpositions (optimal string alignment).
fn distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let width = b.len() + 1;
    let mut d = vec![0usize; (a.len() + 1) * width];
    let at = |i: usize, j: usize| i * width + j;
    let get = |d: &[usize], i: usize, j: usize| d.get(at(i, j)).copied().unwrap_or(usize::MAX / 2);
    for i in 0..=a.len() {
        if let Some(x) = d.get_mut(at(i, 0)) {
            *x = i;
        }
    }
    for j in 0..=b.len() {
        if let Some(x) = d.get_mut(at(0, j)) {
            *x = j;
        }
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let (ai, bj) = (a.get(i - 1), b.get(j - 1));
            let cost = usize::from(ai != bj);
            let mut best = (get(&d, i - 1, j) + 1)
                .min(get(&d, i, j - 1) + 1)
                .min(get(&d, i - 1, j - 1) + cost);
            if i > 1 && j > 1 && ai == b.get(j - 2) && a.get(i - 2) == bj {
                best = best.min(get(&d, i - 2, j - 2) + 1);
            }
            if let Some(x) = d.get_mut(at(i, j)) {
                *x = best;
            }
        }
    }
    get(&d, a.len(), b.len())
}

/// Every keyword a task may have, for "did you mean".
fn all_task_keywords() -> impl Iterator<Item = &'static str> {
    COMMON
        .iter()
        .chain(TASK_ONLY.iter())
        .chain(BLOCK_ONLY.iter())
        .copied()
}

/// An optional string keyword.
fn opt_string(v: &Yaml, at: &Where, key: &str) -> Result<Option<String>, PlaybookError> {
    match v {
        Yaml::Null => Ok(None),
        other => scalar_str(other).map(Some).ok_or_else(|| {
            at.invalid(
                key,
                format!("expected a string, found {}", yaml::describe(other)),
            )
        }),
    }
}

/// `environment`: a mapping (values rendered by the runner) or one template that
/// renders to a mapping.
pub(crate) fn environment(v: &Yaml, at: &Where) -> Result<Value, PlaybookError> {
    match v {
        Yaml::Mapping(_) => to_json(v, &at.child("environment")),
        Yaml::String(s) if is_whole_expression_str(s) => Ok(Value::String(s.clone())),
        other => Err(at.invalid(
            "environment",
            format!(
                "expected a mapping or a `{{{{ expression }}}}`, found {}",
                yaml::describe(other)
            ),
        )),
    }
}

/// A boolean keyword, with Ansible's spellings (`yes`, `no`, `on`, ...).
pub(crate) fn boolean(v: &Yaml, at: &Where, key: &str) -> Result<bool, PlaybookError> {
    match v {
        Yaml::Bool(b) => Ok(*b),
        Yaml::Number(n) if n.as_u64() == Some(0) => Ok(false),
        Yaml::Number(n) if n.as_u64() == Some(1) => Ok(true),
        Yaml::String(s) if s.contains("{{") || s.contains("{%") => Err(at.unsupported(
            key,
            format!("'{s}' is templated; the plan needs a literal true or false here"),
        )),
        Yaml::String(s) => rustle_runner::modules::args::strict_bool(s)
            .ok_or_else(|| at.invalid(key, format!("expected a boolean, found '{s}'"))),
        other => Err(at.invalid(
            key,
            format!("expected a boolean, found {}", yaml::describe(other)),
        )),
    }
}

/// True when a keyword's text is a template the runner evaluates on the host.
fn is_template(s: &str) -> bool {
    s.contains("{{") || s.contains("{%")
}

/// A boolean keyword Ansible templates (`ignore_errors`, `become`, `check_mode`,
/// `no_log`, ...): a literal with Ansible's spellings, or a template the runner
/// evaluates when the task runs. `None` for a null value (unset, as in Ansible).
pub(crate) fn flag(v: &Yaml, at: &Where, key: &str) -> Result<Option<Flag>, PlaybookError> {
    match v {
        Yaml::Null => Ok(None),
        Yaml::String(s) if is_template(s) => Ok(Some(Templated::Template(s.clone()))),
        other => boolean(other, at, key).map(|b| Some(Templated::Value(b))),
    }
}

/// A number of seconds Ansible takes as a float (`delay`, `loop_control.pause`): a
/// literal (`0.5`, `"2"`) or a template. Literals must be finite and not negative.
fn seconds(v: &Yaml, at: &Where, key: &str) -> Result<Option<Templated<f64>>, PlaybookError> {
    let n = match v {
        Yaml::Null => return Ok(None),
        Yaml::String(s) if is_template(s) => return Ok(Some(Templated::Template(s.clone()))),
        Yaml::Number(n) => n.as_f64(),
        Yaml::String(s) => s.trim().parse::<f64>().ok(),
        _ => None,
    };
    n.filter(|n| n.is_finite() && *n >= 0.0)
        .map(|n| Some(Templated::Value(n)))
        .ok_or_else(|| {
            at.invalid(
                key,
                format!(
                    "expected a number of seconds or a template, found {}",
                    show(v)
                ),
            )
        })
}

/// An integer keyword Ansible templates (`retries`): a literal (a float with nothing
/// after the point is accepted, as Ansible accepts it) or a template.
pub(crate) fn integer(
    v: &Yaml,
    at: &Where,
    key: &str,
) -> Result<Option<Templated<i64>>, PlaybookError> {
    let n = match v {
        Yaml::Null => return Ok(None),
        Yaml::String(s) if is_template(s) => return Ok(Some(Templated::Template(s.clone()))),
        Yaml::Number(n) => n.as_i64().or_else(|| {
            n.as_f64()
                .filter(|f| f.fract() == 0.0 && f.abs() < 9.0e18)
                .map(|f| f as i64)
        }),
        Yaml::String(s) => s.trim().parse::<i64>().ok(),
        _ => None,
    };
    n.map(|n| Some(Templated::Value(n))).ok_or_else(|| {
        at.invalid(
            key,
            format!("expected an integer or a template, found {}", show(v)),
        )
    })
}

/// Whether `from` (a block's, an import's or a play's keywords) carries any keyword that
/// [`push_down`] hands to the tasks inside.
pub(crate) fn carries(from: &Task) -> bool {
    from.delegate_to.is_some()
        || from.run_once.is_some()
        || from.delegate_facts
        || from.throttle.is_some()
}

/// Gives the tasks inside `block` the block's `delegate_to`, `delegate_facts`,
/// `run_once` and `throttle` where they set none, as Ansible's parent attributes do.
fn push_down(block: &mut Task, from: &Task, at: &Where) -> Result<(), PlaybookError> {
    push_down_into(inner_tasks(block), from, at)
}

/// [`push_down`] over a list of tasks (a play's sections, for its own keywords). An
/// include among them cannot take the keywords (its tasks are known only when it runs):
/// refused, naming the keyword.
pub(crate) fn push_down_into<'a>(
    tasks: impl Iterator<Item = &'a mut Task>,
    from: &Task,
    at: &Where,
) -> Result<(), PlaybookError> {
    for t in tasks {
        if t.block.is_some() {
            push_down(t, from, at)?;
            continue;
        }
        if matches!(t.module_name(), "include_tasks" | "include_role") {
            let key = if from.delegate_to.is_some() {
                "delegate_to"
            } else if from.run_once.is_some() {
                "run_once"
            } else if from.throttle.is_some() {
                "throttle"
            } else {
                "delegate_facts"
            };
            return Err(at.unsupported(
                key,
                "on a block, import or play holding include_tasks or include_role; put it on the included tasks",
            ));
        }
        if t.delegate_to.is_none() {
            t.delegate_to.clone_from(&from.delegate_to);
        }
        t.delegate_facts |= from.delegate_facts;
        if t.run_once.is_none() {
            t.run_once.clone_from(&from.run_once);
        }
        if t.throttle.is_none() {
            t.throttle.clone_from(&from.throttle);
        }
    }
    Ok(())
}

/// The tasks directly inside a block: its `block`, `rescue` and `always` lists.
fn inner_tasks(block: &mut Task) -> impl Iterator<Item = &mut Task> {
    block
        .block
        .iter_mut()
        .flatten()
        .chain(block.rescue.iter_mut())
        .chain(block.always.iter_mut())
}

/// A block's `notify` given to each task inside it that notifies nothing itself, as a
/// task's `notify` in Ansible falls back to its enclosing blocks'.
fn notify_down(block: &mut Task, notify: &[String]) {
    for t in inner_tasks(block) {
        if t.block.is_some() {
            notify_down(t, notify);
        } else if t.notify.is_empty() {
            t.notify = notify.to_vec();
        }
    }
}

/// `delegate_to`: a template (rendered when the task runs), the controller by one of
/// its names, or another inventory host (checked against the inventory when the task
/// runs, where the deployer runs it).
fn delegate_target(v: &Yaml, at: &Where) -> Result<Option<String>, PlaybookError> {
    Ok(opt_string(v, at, "delegate_to")?.map(|to| to.trim().to_string()))
}

/// A value as an error shows it: scalars as written, others by their kind.
fn show(v: &Yaml) -> String {
    match scalar_str(v) {
        Some(s) => format!("'{s}'"),
        None => yaml::describe(v).to_string(),
    }
}

/// `become_method`: the runner becomes the way the deployer starts it (sudo).
pub(crate) fn become_method(v: &Yaml, at: &Where) -> Result<(), PlaybookError> {
    match scalar_str(v).as_deref() {
        Some("sudo") => Ok(()),
        _ => Err(at.unsupported(
            "become_method",
            "only `sudo`, the way the deployer starts the runner, is supported",
        )),
    }
}

/// `tags`: a list, or a comma-separated string.
pub(crate) fn tag_list(v: &Yaml, at: &Where) -> Result<Vec<String>, PlaybookError> {
    let bad = || at.invalid("tags", "expected a tag or a list of tags");
    match v {
        Yaml::Null => Ok(Vec::new()),
        Yaml::Sequence(list) => list.iter().map(|t| scalar_str(t).ok_or_else(bad)).collect(),
        other => Ok(scalar_str(other)
            .ok_or_else(bad)?
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_string)
            .collect()),
    }
}

/// `when`, `changed_when`, `failed_when`, `until`.
fn condition(v: &Yaml, at: &Where, key: &str) -> Result<Option<Condition>, PlaybookError> {
    Ok(match v {
        Yaml::Null => None,
        Yaml::Bool(b) => Some(Condition::Bool(*b)),
        Yaml::Sequence(_) => Some(Condition::All(condition_strings(v, at, key)?)),
        other => Some(Condition::One(scalar_str(other).ok_or_else(|| {
            at.invalid(
                key,
                format!("expected an expression, found {}", yaml::describe(other)),
            )
        })?)),
    })
}

/// A condition as a list of expressions (booleans as `True`/`False`).
pub(crate) fn condition_strings(
    v: &Yaml,
    at: &Where,
    key: &str,
) -> Result<Vec<String>, PlaybookError> {
    let one = |x: &Yaml| {
        scalar_str(x).ok_or_else(|| {
            at.invalid(
                key,
                format!("expected an expression, found {}", yaml::describe(x)),
            )
        })
    };
    match v {
        Yaml::Null => Ok(Vec::new()),
        Yaml::Sequence(list) => list.iter().map(one).collect(),
        other => Ok(vec![one(other)?]),
    }
}

/// A `vars` mapping (Ansible also takes a list of mappings, merged in order).
pub(crate) fn vars(v: &Yaml, at: &Where) -> Result<Vars, PlaybookError> {
    match v {
        Yaml::Null => Ok(Vars::new()),
        Yaml::Mapping(m) => mapping_to_json(m, at),
        Yaml::Sequence(list) => {
            let mut out = Vars::new();
            for item in list {
                match item {
                    Yaml::Mapping(m) => out.extend(mapping_to_json(m, at)?),
                    other => {
                        return Err(at.invalid(
                            "vars",
                            format!("expected a mapping, found {}", yaml::describe(other)),
                        ));
                    }
                }
            }
            Ok(out)
        }
        other => Err(at.invalid(
            "vars",
            format!("expected a mapping, found {}", yaml::describe(other)),
        )),
    }
}

/// A file of variables (vars_files, role defaults and vars): a mapping, or empty.
pub(crate) fn vars_file(
    path: &Path,
    vault: Option<&crate::vault::Vault>,
) -> Result<Vars, PlaybookError> {
    let at = Where::new(path, "");
    match yaml::read(path, vault)? {
        Yaml::Null => Ok(Vars::new()),
        Yaml::Mapping(m) => mapping_to_json(&m, &at),
        other => Err(at.invalid(
            "",
            format!(
                "a variables file is a mapping, found {}",
                yaml::describe(&other)
            ),
        )),
    }
}

/// Applies a keyword valid on tasks, blocks and includes; false when `key` is not one.
pub(crate) fn common(
    task: &mut Task,
    key: &str,
    v: &Yaml,
    at: &Where,
) -> Result<bool, PlaybookError> {
    match key {
        "name" => task.name = opt_string(v, at, key)?,
        "when" => task.when = condition(v, at, key)?,
        "tags" => task.tags = tag_list(v, at)?,
        "vars" => task.vars = vars(v, &at.child("vars"))?,
        "become" => task.become_ = flag(v, at, key)?,
        "become_user" => task.become_user = opt_string(v, at, key)?,
        "become_method" => become_method(v, at)?,
        "ignore_errors" => task.ignore_errors = flag(v, at, key)?,
        "ignore_unreachable" => task.ignore_unreachable = flag(v, at, key)?,
        "check_mode" => task.check_mode = flag(v, at, key)?,
        "diff" => task.diff = flag(v, at, key)?,
        "environment" => task.environment = Some(environment(v, at)?),
        "no_log" => task.no_log = flag(v, at, key)?,
        "timeout" => task.timeout = integer(v, at, key)?,
        "remote_user" => task.remote_user = opt_string(v, at, key)?,
        _ => return Ok(false),
    }
    Ok(true)
}

/// What kind of entry a task mapping is, once its module key is known.
enum Include {
    Tasks,
    Role,
}

impl Loader<'_> {
    /// A list of tasks under `key` (`tasks`, `block`, ...); null is an empty list.
    pub(crate) fn task_list(
        &mut self,
        value: Option<&Yaml>,
        cx: &Cx,
        at: &Where,
        key: &str,
    ) -> Result<Vec<Task>, PlaybookError> {
        let list = match value {
            None | Some(Yaml::Null) => return Ok(Vec::new()),
            Some(Yaml::Sequence(list)) => list,
            Some(other) => {
                return Err(at.invalid(
                    key,
                    format!("expected a list of tasks, found {}", yaml::describe(other)),
                ));
            }
        };
        let mut out = Vec::new();
        for (i, item) in list.iter().enumerate() {
            let here = at.child(&format!("{key}[{i}]"));
            let Yaml::Mapping(map) = item else {
                return Err(here.invalid(
                    "",
                    format!("a task is a mapping, found {}", yaml::describe(item)),
                ));
            };
            out.extend(self.task(map, cx, &here)?);
        }
        Ok(out)
    }

    /// The tasks of a file (an included task file, a role's tasks or handlers).
    pub(crate) fn task_file(&mut self, path: &Path, cx: &Cx) -> Result<Vec<Task>, PlaybookError> {
        let canon = canonical(path);
        let here = Where::new(path, "");
        if self.includes.contains(&canon) {
            return Err(here.invalid(
                "include_tasks",
                "the file includes itself (directly or through other files)",
            ));
        }
        let doc = yaml::read(path, self.opts.vault.as_ref())?;
        if !matches!(doc, Yaml::Null | Yaml::Sequence(_)) {
            // The offending text is shown, as Ansible shows the line of such a file (a
            // stray sentence is a common slip).
            let shown = match &doc {
                Yaml::String(text) => format!(": {}", one_line(text, 120)),
                _ => String::new(),
            };
            return Err(here.invalid(
                "",
                format!(
                    "included task files must contain a list of tasks, found {}{shown}",
                    yaml::describe(&doc)
                ),
            ));
        }
        self.includes.push(canon);
        let key = if cx.handler { "handlers" } else { "tasks" };
        let tasks = self.task_list(Some(&doc), cx, &here, key);
        self.includes.pop();
        tasks
    }

    /// One task entry: a task, a block, or an include (which may expand to several).
    fn task(&mut self, map: &Mapping, cx: &Cx, at: &Where) -> Result<Vec<Task>, PlaybookError> {
        let mut entries: Vec<(String, &Yaml)> = Vec::with_capacity(map.len());
        for (k, v) in map {
            entries.push((key_of(k, at)?, v));
        }
        let name = entries
            .iter()
            .find(|(k, _)| k == "name")
            .and_then(|(_, v)| scalar_str(v));
        let at = at.named(name.as_deref());
        if entries.iter().any(|(k, _)| k == "block") {
            if cx.handler && cx.in_block {
                return Err(at.ansible("block", "Using a block as a handler is not supported."));
            }
            // Among handlers, the tasks inside a block are the handlers notified by name,
            // with the block's keywords.
            return Ok(vec![self.block(&entries, cx, &at)?]);
        }

        let mut candidates = Vec::new();
        let mut action = None;
        for (k, v) in &entries {
            let key = k.as_str();
            if key == "action" || key == "local_action" {
                if action.is_some() {
                    return Err(at.invalid(
                        key,
                        "`action` and `local_action` are both given; a task runs one module",
                    ));
                }
                action = Some(*v);
            } else if COMMON.contains(&key) || TASK_ONLY.contains(&key) || is_loop(key) {
            } else if BLOCK_ONLY.contains(&key) {
                return Err(at.invalid(key, "only valid on a block (with `block:`)"));
            } else if unsupported_reason(key).is_some() || key.starts_with("with_") {
                return Err(bad_keyword(key, &[], &at));
            } else {
                candidates.push((key, *v));
            }
        }
        let (module, value) = module_of(&candidates, action, &at)?;
        if let Some(plugin) = action_plugin(&module, cx) {
            return Err(at.unsupported(
                &module,
                format!(
                    "'{module}' is an action plugin ({}): Ansible runs action plugins, Python \
                     code written against its own controller API, on the controller; the \
                     runner cannot run them",
                    plugin.display()
                ),
            ));
        }
        if cx.handler && matches!(short_name(&module), "include_role" | "import_role") {
            return Err(at.ansible(
                &module,
                format!("Using '{module}' as a handler is not supported."),
            ));
        }
        match short_name(&module) {
            "include_tasks" => Ok(vec![
                self.dynamic_include(&module, &value, &entries, cx, &at)?,
            ]),
            "import_tasks" => self.include(Include::Tasks, &module, &value, &entries, cx, &at),
            "include_role" => Ok(vec![
                self.dynamic_include(&module, &value, &entries, cx, &at)?,
            ]),
            "import_role" => self.include(Include::Role, &module, &value, &entries, cx, &at),
            "include" => Err(bad_keyword("include", &[], &at)),
            "import_playbook" => Err(at.invalid(
                &module,
                "only valid as a playbook entry, next to plays, not as a task",
            )),
            _ => Ok(vec![self.leaf(&module, &value, &entries, cx, &at)?]),
        }
    }

    /// A block with its `rescue` and `always`.
    fn block(
        &mut self,
        entries: &[(String, &Yaml)],
        cx: &Cx,
        at: &Where,
    ) -> Result<Task, PlaybookError> {
        let mut task = Task::default();
        let (mut block, mut rescue, mut always) = (None, None, None);
        // Delegation, run_once and throttle given on a block apply to each task inside it that
        // does not say otherwise, as Ansible's inheritance does.
        let mut channel = Task::default();
        for (k, v) in entries {
            let key = k.as_str();
            match key {
                "block" => block = Some(*v),
                "rescue" => rescue = Some(*v),
                "always" => always = Some(*v),
                "delegate_to" => channel.delegate_to = delegate_target(v, at)?,
                "delegate_facts" => channel.delegate_facts = boolean(v, at, key)?,
                "run_once" => channel.run_once = flag(v, at, key)?,
                "throttle" => channel.throttle = integer(v, at, key)?,
                "notify" => channel.notify = string_list(v, at, key)?,
                _ if common(&mut task, key, v, at)? => {}
                _ if TASK_ONLY.contains(&key) => {
                    return Err(at.invalid(key, "not valid on a block; put it on the tasks inside"));
                }
                _ => {
                    let allowed: Vec<&str> =
                        COMMON.iter().chain(BLOCK_ONLY.iter()).copied().collect();
                    return Err(bad_keyword(key, &allowed, at));
                }
            }
        }
        let inner = Cx {
            in_block: true,
            ..cx.clone()
        };
        task.block = Some(self.task_list(block, &inner, at, "block")?);
        task.rescue = self.task_list(rescue, &inner, at, "rescue")?;
        task.always = self.task_list(always, &inner, at, "always")?;
        if carries(&channel) {
            push_down(&mut task, &channel, at)?;
        }
        if !channel.notify.is_empty() {
            notify_down(&mut task, &channel.notify);
        }
        Ok(task)
    }

    /// A task that runs a module.
    fn leaf(
        &mut self,
        module: &str,
        value: &ModuleValue,
        entries: &[(String, &Yaml)],
        cx: &Cx,
        at: &Where,
    ) -> Result<Task, PlaybookError> {
        let mut task = Task {
            module: module.to_string(),
            ..Task::default()
        };
        let mut args = Vars::new();
        let mut loop_key: Option<&str> = None;
        // `local_action` or `connection: local`: the task runs on the controller.
        let mut local = false;
        for (k, v) in entries {
            let key = k.as_str();
            if common(&mut task, key, v, at)? {
                continue;
            }
            if is_loop(key) {
                if let Some(first) = loop_key {
                    return Err(at.invalid(
                        key,
                        format!("a task takes one loop, `{first}` is already given"),
                    ));
                }
                loop_key = Some(key);
                match with_lookup(key) {
                    Some(lookup) => {
                        task.loop_ = Some(with_terms(key, lookup, v, at)?);
                        task.loop_with = Some(lookup.to_string());
                    }
                    None => task.loop_ = Some(loop_items(v, at)?),
                }
                continue;
            }
            match key {
                "loop_control" => task.loop_control = Some(loop_control(v, at)?),
                "register" => task.register = register_name(v, at)?,
                "changed_when" => task.changed_when = condition(v, at, key)?,
                "failed_when" => task.failed_when = condition(v, at, key)?,
                "until" => task.until = condition(v, at, key)?,
                "retries" => task.retries = integer(v, at, key)?,
                "delay" => task.delay = seconds(v, at, key)?,
                "notify" => task.notify = string_list(v, at, key)?,
                "delegate_to" => task.delegate_to = delegate_target(v, at)?,
                "delegate_facts" => task.delegate_facts = boolean(v, at, key)?,
                "run_once" => task.run_once = flag(v, at, key)?,
                "async" => task.async_ = integer(v, at, key)?,
                "poll" => task.poll = integer(v, at, key)?,
                "throttle" => task.throttle = integer(v, at, key)?,
                "connection" => match scalar_str(v).as_deref() {
                    Some("local") => local = true,
                    _ => {
                        return Err(at.unsupported(
                            key,
                            "only `connection: local` (run the task on the controller) is supported on a task; other connection settings come from the inventory",
                        ));
                    }
                },
                "local_action" => local = true,
                "listen" if cx.handler => task.listen = string_list(v, at, key)?,
                "listen" => return Err(at.invalid(key, "only valid on handlers")),
                "args" => match v {
                    Yaml::Null => {}
                    Yaml::Mapping(m) => args = mapping_to_json(m, &at.child("args"))?,
                    other => {
                        return Err(at.invalid(
                            key,
                            format!("expected a mapping, found {}", yaml::describe(other)),
                        ));
                    }
                },
                // The module key itself and `action`, handled by the caller.
                _ => {}
            }
        }
        if local && task.delegate_to.is_none() {
            task.delegate_to = Some("localhost".into());
        }
        // Ansible runs `add_host` once for the batch (its action bypasses the host
        // loop); the others take its result, and the new host, from the one that ran it.
        if short_name(module) == "add_host" {
            task.run_once = Some(true.into());
        }
        // The module's own arguments win over `args:`, as in Ansible.
        args.extend(module_args(module, value, at)?);
        task.args = args;
        // Ansible refuses this when it reads the handlers (its handlers are the play's,
        // outside any role).
        if cx.handler
            && short_name(module) == "meta"
            && task
                .args
                .get("_raw_params")
                .and_then(Value::as_str)
                .map(str::trim)
                == Some("end_role")
        {
            return Err(at.ansible("meta", "Cannot execute 'end_role' from a handler"));
        }
        if task.loop_control.is_some() && task.loop_.is_none() {
            return Err(at.invalid("loop_control", "given without a loop"));
        }
        if cx.role.is_some() || cx.playbook_dir != self.base {
            self.embed_src(&mut task, cx)?;
        }
        // A variables file or directory named literally travels parsed, wherever it is.
        if short_name(module) == "include_vars" {
            let lookup = self.static_lookup(cx);
            let literal = |k: &str| match task.args.get(k) {
                Some(Value::String(s)) => render_static(s, &lookup).filter(|n| !is_template(n)),
                _ => None,
            };
            if let Some(dir) = literal("dir") {
                self.register_static_vars_dir(&dir, cx);
            } else if let Some(name) = literal("file").or_else(|| {
                task.args
                    .get("file")
                    .is_none()
                    .then(|| literal("_raw_params"))?
            }) {
                self.register_static_vars(name.trim_end_matches('\n'), cx);
            }
        }
        // Files its lookups name literally travel too (a key beside the playbook).
        for name in crate::lookups::literal_file_names(&task) {
            self.register_lookup_file(&name, cx);
        }
        Ok(task)
    }

    /// The variables a name can be rendered with while packing: the play's, plus
    /// `role_path` and `playbook_dir`, known here as they are on the host
    /// (`include_role: name: "{{ role_path }}/roles/a"`).
    fn static_lookup(&self, cx: &Cx) -> Vars {
        let mut lookup = self.play.lookup.clone();
        if let Some(role) = &cx.role {
            lookup
                .entry("role_path")
                .or_insert_with(|| Value::String(super::controller_path(&role.dir)));
        }
        lookup
            .entry("playbook_dir")
            .or_insert_with(|| Value::String(super::controller_path(&cx.playbook_dir)));
        lookup
    }

    /// `import_tasks`/`include_tasks`/`import_role`/`include_role`, inlined.
    fn include(
        &mut self,
        kind: Include,
        module: &str,
        value: &ModuleValue,
        entries: &[(String, &Yaml)],
        cx: &Cx,
        at: &Where,
    ) -> Result<Vec<Task>, PlaybookError> {
        let mut wrapper = Task::default();
        // Delegation, run_once, throttle and notify on an import reach each imported task that
        // does not say otherwise, as Ansible's parent attributes do.
        let mut channel = Task::default();
        for (k, v) in entries {
            let key = k.as_str();
            if key == module || key == "action" || common(&mut wrapper, key, v, at)? {
                continue;
            }
            match key {
                "delegate_to" => {
                    channel.delegate_to = delegate_target(v, at)?;
                    continue;
                }
                "delegate_facts" => {
                    channel.delegate_facts = boolean(v, at, key)?;
                    continue;
                }
                "run_once" => {
                    channel.run_once = flag(v, at, key)?;
                    continue;
                }
                "throttle" => {
                    channel.throttle = integer(v, at, key)?;
                    continue;
                }
                "notify" => {
                    channel.notify = string_list(v, at, key)?;
                    continue;
                }
                _ => {}
            }
            if is_loop(key) {
                return Err(at.unsupported(
                    key,
                    format!(
                        "a loop over `{module}` is a dynamic include; only static includes are read"
                    ),
                ));
            }
            return Err(at.invalid(key, format!("not valid on `{module}`")));
        }
        let args = module_args(module, value, at)?;
        let (tasks, file) = match kind {
            Include::Tasks => {
                let name = include_arg(module, &args, &["file"], at)?;
                let path = self.find_task_file(module, &name, cx, at)?;
                let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
                // An imported file's entries are a list of blocks again, as Ansible
                // reads it.
                let child = Cx {
                    dir,
                    in_block: false,
                    ..cx.clone()
                };
                (self.task_file(&path, &child)?, Some(path))
            }
            Include::Role => {
                let args = include_role_args(module, args, at)?;
                let name = match args.get("name") {
                    Some(Value::String(s)) => self.static_name(module, s, at)?,
                    _ => return Err(at.invalid(module, "expected a `name`")),
                };
                let from = |key: &str| -> Result<Option<String>, PlaybookError> {
                    match args.get(key) {
                        None | Some(Value::Null) => Ok(None),
                        Some(Value::String(s)) => Ok(Some(self.static_name(module, s, at)?)),
                        Some(_) => Err(at.invalid(key, "expected a file name")),
                    }
                };
                let entry = RoleEntry {
                    name,
                    // The import's `vars` rank above the role's own vars inside it (the
                    // import is the parent of the role's tasks in Ansible), and stay
                    // private to it (roles target, vars_scope.yml).
                    params: std::mem::take(&mut wrapper.vars),
                    wrapper: Task::default(),
                    tasks_from: from("tasks_from")?,
                    vars_from: from("vars_from")?,
                    defaults_from: from("defaults_from")?,
                    handlers_from: from("handlers_from")?,
                    from_task: true,
                    public: match args.get("public") {
                        None | Some(Value::Null) => None,
                        Some(v) => Some(crate::plan::is_truthy(v)),
                    },
                    // Ansible's import_role runs its role again unless told otherwise.
                    allow_duplicates: Some(match args.get("allow_duplicates") {
                        None | Some(Value::Null) => true,
                        Some(v) => crate::plan::is_truthy(v),
                    }),
                    validate: args
                        .get("rolespec_validate")
                        .is_none_or(|v| v.is_null() || crate::plan::is_truthy(v)),
                };
                // An imported role's variables are the play's, as Ansible exposes them
                // when it reads the playbook.
                (self.role(entry, cx, at, true)?, None)
            }
        };
        // Keywords on the include apply to every included task: a block carries them,
        // and says which file its tasks come from (for the search path at run time).
        if let Some(path) = file {
            wrapper.origin = Some(Origin {
                file: Some(super::controller_path(&path)),
                ..Origin::default()
            });
        }
        let pushed = carries(&channel);
        if wrapper == Task::default() && !pushed && channel.notify.is_empty() {
            return Ok(tasks);
        }
        wrapper.block = Some(tasks);
        if pushed {
            push_down(&mut wrapper, &channel, at)?;
        }
        if !channel.notify.is_empty() {
            notify_down(&mut wrapper, &channel.notify);
        }
        Ok(vec![wrapper])
    }

    /// `include_tasks`: a task the runner carries out when it is reached, on each host
    /// (and for each loop item), as Ansible does: it templates the file name, finds the
    /// file in Ansible's search order among the controller files the payload carries, and
    /// runs its tasks with the include's `vars` and `apply` keywords. A file named
    /// literally is found and parsed now; one whose name is templated is among the files
    /// of the trees the play reaches, parsed when the plan is made (see `library.rs`).
    fn dynamic_include(
        &mut self,
        module: &str,
        value: &ModuleValue,
        entries: &[(String, &Yaml)],
        cx: &Cx,
        at: &Where,
    ) -> Result<Task, PlaybookError> {
        const VALID: [&str; 14] = [
            "name",
            "when",
            "tags",
            "vars",
            "ignore_errors",
            "no_log",
            "loop",
            "with_items",
            "with_list",
            "with_dict",
            "loop_control",
            "register",
            "args",
            "listen",
        ];
        let mut task = Task {
            module: module.to_string(),
            ..Task::default()
        };
        let mut apply = None;
        let mut extra_args = Vars::new();
        for (k, v) in entries {
            let key = k.as_str();
            match key {
                _ if key == module || key == "action" => {}
                "name" | "when" | "tags" | "vars" | "ignore_errors" | "no_log" => {
                    common(&mut task, key, v, at)?;
                }
                _ if is_loop(key) => {
                    if task.loop_.is_some() {
                        return Err(at.invalid(key, "a task takes one loop"));
                    }
                    match with_lookup(key) {
                        Some(lookup) => {
                            task.loop_ = Some(with_terms(key, lookup, v, at)?);
                            task.loop_with = Some(lookup.to_string());
                        }
                        None => task.loop_ = Some(loop_items(v, at)?),
                    }
                }
                "loop_control" => task.loop_control = Some(loop_control(v, at)?),
                "register" => task.register = register_name(v, at)?,
                "listen" if cx.handler => task.listen = string_list(v, at, key)?,
                "args" => match v {
                    Yaml::Null => {}
                    Yaml::Mapping(m) => {
                        let mut m = m.clone();
                        if let Some(a) = m.shift_remove("apply") {
                            apply = Some(a);
                        }
                        extra_args = mapping_to_json(&m, &at.child("args"))?;
                    }
                    other => {
                        return Err(at.invalid(
                            key,
                            format!("expected a mapping, found {}", yaml::describe(other)),
                        ));
                    }
                },
                other => {
                    return Err(at.invalid(
                        other,
                        format!(
                            "not valid on `{module}` (Ansible takes only {} there; keywords for \
                             the included tasks go in `apply`)",
                            VALID.join(", ")
                        ),
                    ));
                }
            }
        }
        if task.loop_control.is_some() && task.loop_.is_none() {
            return Err(at.invalid("loop_control", "given without a loop"));
        }
        let value = match value {
            ModuleValue::Yaml(Yaml::Mapping(m)) => {
                let mut m = m.clone();
                if let Some(a) = m.shift_remove("apply") {
                    apply = Some(a);
                }
                ModuleValue::Yaml(Yaml::Mapping(m))
            }
            other => other.clone(),
        };
        let mut args = extra_args;
        args.extend(module_args(module, &value, at)?);
        if let Some(a) = apply {
            task.apply = Some(Box::new(self.apply_block(&a, &at.child("apply"))?));
        }
        if short_name(module) == "include_role" {
            task.args = include_role_args(module, args, at)?;
            // An included role's variables stay private unless `public` says otherwise
            // or ANSIBLE_PRIVATE_ROLE_VARS is set (then it decides for every role).
            if let (false, Some(private)) = (
                task.args.contains_key("public"),
                super::roles::private_role_vars(),
            ) {
                task.args.insert("public".into(), Value::Bool(!private));
            }
            // A role named literally is found now, and travels with its meta; one whose
            // name is templated must be one of the roles the plan carries. A literal
            // name found nowhere fails only the hosts that reach the include, as
            // Ansible looks for an included role only then.
            if let Some(Value::String(name)) = task.args.get("name") {
                let name = render_static(name, &self.static_lookup(cx)).unwrap_or(name.clone());
                if !is_template(&name) {
                    match self.find_role(&name, cx, at, None) {
                        Ok(dir) => self.register_role(&name, &dir, cx),
                        Err(PlaybookError::NotFound(missing)) => {
                            self.register_missing_role(&name, &missing.searched);
                        }
                        Err(e) => return Err(e),
                    }
                }
            }
            return Ok(task);
        }
        let name = include_arg(module, &args, &["file"], at)?;
        task.args = Vars::new();
        task.args.insert("file".into(), Value::String(name.clone()));
        // A literal name is found now (the runner finds it again the same way), so the
        // file travels parsed; a missing one fails on the host that reaches the include.
        let name = render_static(&name, &self.play.lookup).unwrap_or(name);
        if !is_template(&name) {
            self.register_static_include(&name, cx);
        }
        Ok(task)
    }

    /// `apply`: keywords for a block around the included tasks.
    fn apply_block(&self, v: &Yaml, at: &Where) -> Result<Task, PlaybookError> {
        let Yaml::Mapping(m) = v else {
            return Err(at.invalid(
                "apply",
                format!("expected a mapping, found {}", yaml::describe(v)),
            ));
        };
        let mut block = Task::default();
        for (k, v) in m {
            let key = key_of(k, at)?;
            if key == "name" || !common(&mut block, &key, v, at)? {
                return Err(bad_keyword(&key, &COMMON[1..], at));
            }
        }
        Ok(block)
    }

    /// A name that must be known now: `{{ var }}` from extra or play vars, nothing else.
    pub(crate) fn static_name(
        &self,
        keyword: &str,
        name: &str,
        at: &Where,
    ) -> Result<String, PlaybookError> {
        render_static(name, &self.play.lookup).ok_or_else(|| {
            at.unsupported(
                keyword,
                format!(
                    "'{name}' is templated with something not in extra vars or play vars; \
                     only static includes are read"
                ),
            )
        })
    }

    /// Finds an included task file: next to the including file, in its `tasks/`, then,
    /// in a role, where Ansible's `path_dwim_relative` looks from the role (the runner's
    /// list for includes: the role's `handlers/` or `tasks/`, the role's directory, the
    /// playbook's).
    fn find_task_file(
        &self,
        module: &str,
        name: &str,
        cx: &Cx,
        at: &Where,
    ) -> Result<PathBuf, PlaybookError> {
        let name = self.static_name(module, name, at)?;
        let mut searched = vec![cx.dir.join(&name), cx.dir.join("tasks").join(&name)];
        if let Some(role) = &cx.role {
            let (role_dir, task_dir, playbook_dir) = (
                role.dir.to_string_lossy(),
                cx.dir.to_string_lossy(),
                cx.playbook_dir.to_string_lossy(),
            );
            let place = rustle_runner::resolve::Place {
                roles: vec![&role_dir],
                task_dir: &task_dir,
                playbook_dir: &playbook_dir,
            };
            for p in place.include_candidates(&name, cx.handler) {
                let p = PathBuf::from(p);
                if !searched.contains(&p) {
                    searched.push(p);
                }
            }
        }
        searched.dedup();
        match searched.iter().find(|p| p.is_file()) {
            Some(p) => Ok(p.clone()),
            None => Err(PlaybookError::NotFound(Box::new(NotFound {
                at: at.clone(),
                keyword: module.to_string(),
                name,
                searched,
            }))),
        }
    }
}

/// The value under a module key (or `action:`), kept until the module is known.
#[derive(Debug, Clone)]
enum ModuleValue {
    /// From YAML as written.
    Yaml(Yaml),
    /// From `action: module k=v` (free-form text after the module name).
    Text(String),
}

/// The action plugin `module` names, when the runner has no module of that name and
/// Ansible would find one beside the playbook or in the task's role (`action_plugins/`).
fn action_plugin(module: &str, cx: &Cx) -> Option<PathBuf> {
    let short = short_name(module);
    if short.contains("{{")
        || short.contains('/')
        || rustle_runner::modules::is_supported(short)
        || KNOWN_MODULES.contains(&short)
    {
        return None;
    }
    let file = format!("{short}.py");
    let mut dirs = Vec::new();
    if let Some(role) = &cx.role {
        dirs.push(role.dir.join("action_plugins"));
    }
    dirs.push(cx.playbook_dir.join("action_plugins"));
    dirs.into_iter()
        .map(|d| d.join(&file))
        .find(|p| p.is_file())
}

/// Picks the module among the keys that are not keywords.
fn module_of(
    candidates: &[(&str, &Yaml)],
    action: Option<&Yaml>,
    at: &Where,
) -> Result<(String, ModuleValue), PlaybookError> {
    let is_known = |k: &str| k.contains('.') || KNOWN_MODULES.contains(&k);
    let typo = |k: &str| nearest(k, all_task_keywords()).filter(|_| !is_known(k));
    if let Some(action) = action {
        if let Some((k, _)) = candidates.first() {
            return Err(match typo(k) {
                Some(near) => at.unknown(k, format!("; did you mean `{near}`?")),
                None => at.invalid(
                    "action",
                    format!(
                        "`action` and the module key `{k}` are both given; a task runs one module"
                    ),
                ),
            });
        }
        return action_module(action, at);
    }
    match candidates {
        [] => Err(at.invalid(
            "",
            "no module: a task needs exactly one module key (such as `command:`), `action:` or `block:`",
        )),
        [(k, v)] => match typo(k) {
            Some(near) => Err(at.unknown(
                k,
                format!("; did you mean `{near}`? (if `{k}` is a module, the task has no other)"),
            )),
            None => Ok(((*k).to_string(), ModuleValue::Yaml((*v).clone()))),
        },
        many => {
            let known: Vec<&(&str, &Yaml)> = many.iter().filter(|(k, _)| is_known(k)).collect();
            if let [(module, value)] = known.as_slice() {
                if let Some((other, _)) = many.iter().find(|(k, _)| k != module) {
                    let hint = match nearest(other, all_task_keywords()) {
                        Some(near) => format!("; did you mean `{near}`?"),
                        None => format!(" (the task's module is `{module}`)"),
                    };
                    return Err(at.unknown(other, hint));
                }
                return Ok(((*module).to_string(), ModuleValue::Yaml((*value).clone())));
            }
            let names: Vec<String> = many.iter().map(|(k, _)| format!("`{k}`")).collect();
            Err(at.invalid(
                "",
                format!(
                    "more than one module key ({}); a task runs exactly one module",
                    names.join(", ")
                ),
            ))
        }
    }
}

/// Where a module name given as a template (`{{ x }}`, possibly glued to text, as in
/// `{{ mgr }}_key`) ends: the first whitespace outside `{{ }}`. `None` when the text
/// does not start with a template.
fn templated_name(s: &str) -> Option<usize> {
    if !s.starts_with("{{") {
        return None;
    }
    let mut depth = 0usize;
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match (bytes.get(i), bytes.get(i + 1)) {
            (Some(b'{'), Some(b'{')) => {
                depth += 1;
                i += 2;
            }
            (Some(b'}'), Some(b'}')) if depth > 0 => {
                depth -= 1;
                i += 2;
            }
            (Some(c), _) if depth == 0 && c.is_ascii_whitespace() => return Some(i),
            _ => i += 1,
        }
    }
    Some(s.len())
}

/// `action: copy src=a dest=b` or `action: {module: copy, src: a}`.
fn action_module(action: &Yaml, at: &Where) -> Result<(String, ModuleValue), PlaybookError> {
    match action {
        Yaml::String(s) => {
            let s = s.trim_start();
            // `action: "{{ ansible_facts.pkg_mgr }}"`: the name is a template the runner
            // renders when the task runs, as Ansible does; it ends where the template does.
            let (module, rest) = match templated_name(s) {
                Some(end) => (
                    s.get(..end).unwrap_or(s),
                    s.get(end..).unwrap_or("").trim_start(),
                ),
                None => s.split_once(char::is_whitespace).unwrap_or((s, "")),
            };
            if module.is_empty() {
                return Err(at.invalid("action", "no module named"));
            }
            Ok((module.to_string(), ModuleValue::Text(rest.to_string())))
        }
        Yaml::Mapping(m) => {
            let mut rest = m.clone();
            let module = rest
                .shift_remove("module")
                .and_then(|v| scalar_str(&v))
                .ok_or_else(|| at.invalid("action", "a mapping needs `module`"))?;
            Ok((module, ModuleValue::Yaml(Yaml::Mapping(rest))))
        }
        other => Err(at.invalid(
            "action",
            format!(
                "expected a string or a mapping, found {}",
                yaml::describe(other)
            ),
        )),
    }
}

/// The module's arguments: a mapping, or free-form text split like Ansible.
fn module_args(module: &str, value: &ModuleValue, at: &Where) -> Result<Vars, PlaybookError> {
    let raw = freeform::is_raw_module(short_name(module));
    match value {
        ModuleValue::Text(t) => freeform::parse_kv(t, raw).map_err(|e| at.invalid(module, e)),
        ModuleValue::Yaml(Yaml::Null) => Ok(Vars::new()),
        ModuleValue::Yaml(Yaml::Mapping(m)) => mapping_to_json(m, &at.child(module)),
        // `command: !unsafe echo {{ x }}`: Ansible runs the command line untemplated; for
        // other modules its `k=v` splitting makes new, templated strings.
        ModuleValue::Yaml(other) if yaml::unsafe_text(other).is_some() => {
            let text = yaml::unsafe_text(other).unwrap_or_default();
            let mut args = freeform::parse_kv(text, raw).map_err(|e| at.invalid(module, e))?;
            if raw {
                for v in args.values_mut() {
                    if let Value::String(s) = v {
                        *v = crate::ansible_yaml::unsafe_marker(s);
                    }
                }
            }
            Ok(args)
        }
        ModuleValue::Yaml(other) => match scalar_str(other) {
            Some(text) => freeform::parse_kv(&text, raw).map_err(|e| at.invalid(module, e)),
            None => {
                // Surfaces `!vault` and other tags with their own message.
                to_json(other, &at.child(module))?;
                Err(at.invalid(
                    module,
                    format!(
                        "module arguments are a mapping or free-form text, found {}",
                        yaml::describe(other)
                    ),
                ))
            }
        },
    }
}

/// The file or role name of an include: free form, `file=`/`name=`, or a mapping.
fn include_arg(
    module: &str,
    args: &Vars,
    allowed: &[&str],
    at: &Where,
) -> Result<String, PlaybookError> {
    for key in args.keys() {
        if key != "_raw_params" && !allowed.contains(&key.as_str()) {
            return Err(bad_keyword(key, allowed, &at.child(module)));
        }
    }
    let Some(main) = allowed.first() else {
        return Err(at.invalid(module, "no argument expected"));
    };
    match (args.get("_raw_params"), args.get(*main)) {
        (Some(Value::String(s)), None) | (None, Some(Value::String(s))) if !s.trim().is_empty() => {
            Ok(s.trim().to_string())
        }
        _ => Err(at.invalid(module, format!("expected a `{main}` (a file or role name)"))),
    }
}

/// `text` on one line, cut to `max` characters (with `...`), for an error message.
fn one_line(text: &str, max: usize) -> String {
    let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() <= max {
        return flat;
    }
    let cut: String = flat.chars().take(max).collect();
    format!("{cut}...")
}

/// `include_role`'s arguments: `name` (or `role`, or free-form `name=...`), the
/// `*_from` files, `public`, `allow_duplicates`; the runner templates them when it runs.
fn include_role_args(module: &str, args: Vars, at: &Where) -> Result<Vars, PlaybookError> {
    const ALLOWED: [&str; 9] = [
        "name",
        "role",
        "tasks_from",
        "vars_from",
        "defaults_from",
        "handlers_from",
        "public",
        "allow_duplicates",
        "rolespec_validate",
    ];
    let mut out = Vars::new();
    for (k, v) in args {
        match k.as_str() {
            "_raw_params" | "role" => {
                out.insert("name".into(), v);
            }
            other if ALLOWED.contains(&other) => {
                out.insert(k, v);
            }
            other => return Err(bad_keyword(other, &ALLOWED, &at.child(module))),
        }
    }
    match out.get("name") {
        Some(Value::String(s)) if !s.trim().is_empty() => Ok(out),
        _ => Err(at.invalid(module, "expected a `name` (the role's name)")),
    }
}

/// `notify`, `listen`: one string or a list.
fn string_list(v: &Yaml, at: &Where, key: &str) -> Result<Vec<String>, PlaybookError> {
    let bad = |x: &Yaml| {
        at.invalid(
            key,
            format!(
                "expected a string or a list of strings, found {}",
                yaml::describe(x)
            ),
        )
    };
    match v {
        Yaml::Null => Ok(Vec::new()),
        Yaml::Sequence(list) => list
            .iter()
            .map(|x| scalar_str(x).ok_or_else(|| bad(x)))
            .collect(),
        other => Ok(vec![scalar_str(other).ok_or_else(|| bad(other))?]),
    }
}

/// The items of `loop`: a list, or a template that renders to one.
fn loop_items(v: &Yaml, at: &Where) -> Result<Value, PlaybookError> {
    match v {
        Yaml::Sequence(_) | Yaml::String(_) => to_json(v, &at.child("loop")),
        other => Err(at.invalid(
            "loop",
            format!(
                "expected a list or a template, found {}",
                yaml::describe(other)
            ),
        )),
    }
}

/// The terms of a `with_<lookup>` loop, as written: the runner templates them and runs
/// the lookup, as Ansible's task executor does. A literal mapping for `with_dict`
/// becomes a list of one-entry mappings, which the lookup reads the same way, so its
/// items keep the order they are written in (the plan's mappings sort their keys).
fn with_terms(key: &str, lookup: &str, v: &Yaml, at: &Where) -> Result<Value, PlaybookError> {
    let here = at.child(key);
    match (rustle_runner::lookups::canonical(lookup), v) {
        ("dict", Yaml::Mapping(m)) => {
            let mut entries = Vec::with_capacity(m.len());
            for (k, val) in m {
                let name = key_str(k).ok_or_else(|| at.invalid(key, "keys must be strings"))?;
                let mut entry = serde_json::Map::new();
                entry.insert(name, to_json(val, &here)?);
                entries.push(Value::Object(entry));
            }
            Ok(Value::Array(entries))
        }
        _ => to_json(v, &here),
    }
}

/// True when `s` is one `{{ expression }}` and nothing else.
fn is_whole_expression_str(s: &str) -> bool {
    let s = s.trim();
    s.starts_with("{{") && s.ends_with("}}") && s.matches("{{").count() == 1
}

/// `loop_control`: `loop_var`, `label`, `index_var`, `pause`, `extended`,
/// `extended_allitems` and `break_when`.
fn loop_control(v: &Yaml, at: &Where) -> Result<LoopControl, PlaybookError> {
    let Yaml::Mapping(m) = v else {
        return Err(at.invalid(
            "loop_control",
            format!("expected a mapping, found {}", yaml::describe(v)),
        ));
    };
    let here = at.child("loop_control");
    let mut lc = LoopControl::default();
    for (k, val) in m {
        let key = key_of(k, &here)?;
        match key.as_str() {
            "loop_var" => lc.loop_var = opt_string(val, &here, &key)?,
            "label" => lc.label = opt_string(val, &here, &key)?,
            "index_var" => lc.index_var = opt_string(val, &here, &key)?,
            "pause" => lc.pause = seconds(val, &here, &key)?,
            "extended" => lc.extended = flag(val, &here, &key)?,
            "extended_allitems" => lc.extended_allitems = flag(val, &here, &key)?,
            "break_when" => lc.break_when = condition(val, &here, &key)?,
            other => {
                return Err(bad_keyword(
                    other,
                    &[
                        "loop_var",
                        "label",
                        "index_var",
                        "pause",
                        "extended",
                        "extended_allitems",
                        "break_when",
                    ],
                    &here,
                ));
            }
        }
    }
    Ok(lc)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edit_distance() {
        assert_eq!(distance("whne", "when"), 1);
        assert_eq!(distance("regster", "register"), 1);
        assert_eq!(distance("abc", "abc"), 0);
        assert_eq!(distance("", "ab"), 2);
        assert_eq!(nearest("tgas", all_task_keywords()), Some("tags"));
        assert_eq!(nearest("debug", all_task_keywords()), None);
    }
}
