//! The lookups that read the controller's world (`env`, `pipe`, `lines`, `password`),
//! answered on the controller while packing.
//!
//! Ansible runs every lookup on the controller when a task's template uses it. A runner
//! runs on the host, so before packing, [`answer`] finds every call of these four
//! lookups the plan can reach (in task arguments, keywords, variables, inventory
//! variables, `template` files and `with_env`/`with_pipe`/`with_lines`/`with_password`
//! loops), evaluates the arguments of each with what is known of each host here (its
//! inventory variables and the plan's variables), and runs the lookup for the calls whose
//! arguments that fixes. The answers travel in each host's signed payload
//! (`HostPlan::controller_lookups`); the runner answers from them and fails, naming the
//! call, for any call whose arguments only the host knows.
//!
//! As in Ansible, `pipe` and `lines` run their command with `/bin/sh -c` in the
//! playbook's directory with the deployer's environment, and `password` reads or writes
//! its file on the controller. Unlike Ansible, a call runs once per deploy for its
//! arguments (once per host for `password` with `/dev/null`), and whether or not the
//! task that uses it runs: see `docs/playbooks.md`.

use crate::inventory::{Host, Inventory};
use crate::pack;
use rustle_runner::lookups::{
    self, ANSIBLE_ERROR, Call, Controller, LookupError, is_undefined_marker,
};
use rustle_runner::plan::{ControllerLookup, DeployPlan, HostPlan, Play, Task, Vars};
use rustle_runner::template::Engine;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Component, PathBuf};
use std::sync::{Arc, Mutex};

mod password;

/// The controller as the lookups see it.
#[derive(Debug, Clone)]
pub struct World {
    /// The playbook's directory: commands run there, relative password paths start there.
    pub basedir: PathBuf,
    /// The environment the `env` lookup reads and commands get; `None` is the deployer's
    /// own.
    pub env: Option<BTreeMap<String, String>>,
}

impl World {
    /// The controller with the deployer's environment, for a playbook in `basedir`
    /// (made absolute: `site.yml` given as is lives in the current directory, which a
    /// relative path would only name as "").
    pub fn new(basedir: PathBuf) -> World {
        let basedir = if basedir.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            basedir
        };
        let basedir = std::path::absolute(&basedir).unwrap_or(basedir);
        World { basedir, env: None }
    }

    fn var(&self, name: &str) -> Option<String> {
        match &self.env {
            Some(env) => env.get(name).cloned(),
            None => std::env::var(name).ok(),
        }
    }
}

// ---------------------------------------------------------------------------
// Finding the calls.

/// Something to evaluate for each host: a lookup call's source text, or a
/// `with_<controller lookup>` loop.
#[derive(Debug, Clone)]
enum Probe {
    Expr(String),
    Loop { lookup: String, spec: Value },
}

/// Probes that share a scope: a play, the `vars` of the blocks and task around them.
#[derive(Debug, Clone)]
struct Site {
    play: usize,
    scopes: Vec<Vars>,
    probes: Vec<Probe>,
}

/// Whether `name` is a lookup answered here.
fn is_controller(name: &str) -> bool {
    lookups::CONTROLLER_LOOKUPS.contains(&lookups::canonical(name))
}

/// The source text of every `lookup(...)`, `query(...)` or `q(...)` call in Jinja
/// expression text whose lookup (its first argument, a string literal) is a controller
/// lookup. String literals are skipped, so a call written inside one is not a call.
///
/// `pick` says which lookups: the controller's, or those that read a controller file.
fn calls_matching(text: &str, pick: fn(&str) -> bool, out: &mut Vec<String>) {
    let b = text.as_bytes();
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        if c == b'\'' || c == b'"' {
            i = rustle_runner::template::string_literal_end(b, i);
            continue;
        }
        if c.is_ascii_alphabetic() || c == b'_' {
            let start = i;
            while b
                .get(i)
                .is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_')
            {
                i += 1;
            }
            let ident = text.get(start..i).unwrap_or_default();
            let attribute = start > 0 && b.get(start - 1) == Some(&b'.');
            if matches!(ident, "lookup" | "query" | "q") && !attribute {
                let mut j = i;
                while b.get(j).is_some_and(u8::is_ascii_whitespace) {
                    j += 1;
                }
                if b.get(j) == Some(&b'(')
                    && let Some(end) = closing_paren(b, j)
                    && first_arg_is(text.get(j + 1..end).unwrap_or_default(), pick)
                {
                    out.push(text.get(start..=end).unwrap_or_default().to_string());
                }
            }
            continue;
        }
        i += 1;
    }
}

/// The index of the `)` matching the `(` at `open`.
fn closing_paren(b: &[u8], open: usize) -> Option<usize> {
    let mut depth = 0usize;
    let mut i = open;
    while let Some(&c) = b.get(i) {
        match c {
            b'\'' | b'"' => {
                i = rustle_runner::template::string_literal_end(b, i);
                continue;
            }
            b'(' | b'[' | b'{' => depth += 1,
            b')' | b']' | b'}' => {
                depth = depth.checked_sub(1)?;
                if depth == 0 {
                    return (c == b')').then_some(i);
                }
            }
            _ => {}
        }
        i += 1;
    }
    None
}

/// Whether a call's argument text starts with a string literal naming a lookup `pick`
/// chooses.
fn first_arg_is(args: &str, pick: fn(&str) -> bool) -> bool {
    let args = args.trim_start();
    let Some(quote) = args.chars().next().filter(|c| *c == '\'' || *c == '"') else {
        return false;
    };
    let rest = args.get(1..).unwrap_or_default();
    rest.find(quote)
        .and_then(|end| rest.get(..end))
        .is_some_and(pick)
}

/// The calls in template text: in `{{ }}` and `{% %}`, not in comments or `raw` blocks.
fn calls_in_template(text: &str, out: &mut Vec<String>) {
    template_calls_matching(text, is_controller, out);
}

/// [`calls_in_template`] for the lookups `pick` chooses.
fn template_calls_matching(text: &str, pick: fn(&str) -> bool, out: &mut Vec<String>) {
    let mut rest = text;
    while let Some(open) = rest.find('{') {
        let after = rest.get(open..).unwrap_or_default();
        let close = if after.starts_with("{{") {
            "}}"
        } else if after.starts_with("{%") {
            "%}"
        } else if after.starts_with("{#") {
            // A comment: nothing in it runs.
            rest = after
                .find("#}")
                .and_then(|e| after.get(e + 2..))
                .unwrap_or_default();
            continue;
        } else {
            rest = after.get(1..).unwrap_or_default();
            continue;
        };
        let body_start = 2;
        let Some(end) = find_close(after, body_start, close) else {
            return;
        };
        let body = after.get(body_start..end).unwrap_or_default();
        let tag = body.trim_matches(|c: char| c == '-' || c == '+' || c.is_whitespace());
        if close == "%}" && tag == "raw" {
            // `{% raw %}` text is not Jinja.
            rest = after
                .find("endraw")
                .and_then(|e| after.get(e..))
                .and_then(|a| a.find("%}").and_then(|e| a.get(e + 2..)))
                .unwrap_or_default();
            continue;
        }
        calls_matching(body, pick, out);
        rest = after.get(end + 2..).unwrap_or_default();
    }
}

/// The templates a template names literally in `{% import %}`, `{% from ... import %}`
/// and `{% include %}` tags.
fn templates_named(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(open) = rest.find("{%") {
        let after = rest.get(open + 2..).unwrap_or_default();
        let end = find_close(after, 0, "%}").unwrap_or(after.len());
        let body = after
            .get(..end)
            .unwrap_or_default()
            .trim_matches(|c: char| c == '-' || c == '+' || c.is_whitespace());
        let word = body.split_whitespace().next().unwrap_or_default();
        if matches!(word, "import" | "from" | "include") {
            let name = body.get(word.len()..).unwrap_or_default().trim_start();
            if let Some(q @ ('\'' | '"')) = name.chars().next()
                && let Some(close) = name.get(1..).and_then(|n| n.find(q))
            {
                out.extend(name.get(1..=close).map(str::to_string));
            }
        }
        rest = after.get(end..).unwrap_or_default();
    }
    out
}

/// Where `close` ends the tag whose body starts at `from`, string literals skipped.
fn find_close(text: &str, from: usize, close: &str) -> Option<usize> {
    let b = text.as_bytes();
    let mut i = from;
    while i < b.len() {
        match b.get(i) {
            Some(b'\'' | b'"') => i = rustle_runner::template::string_literal_end(b, i),
            _ if text.get(i..).is_some_and(|r| r.starts_with(close)) => return Some(i),
            _ => i += 1,
        }
    }
    None
}

/// Every string inside a JSON value, templates and conditions apart.
fn strings_in(v: &Value, bare: bool, out: &mut Vec<String>) {
    strings_matching(v, bare, is_controller, out);
}

/// [`strings_in`] for the lookups `pick` chooses.
fn strings_matching(v: &Value, bare: bool, pick: fn(&str) -> bool, out: &mut Vec<String>) {
    match v {
        Value::String(s) if bare => calls_matching(s, pick, out),
        Value::String(s) => template_calls_matching(s, pick, out),
        Value::Array(items) => items
            .iter()
            .for_each(|i| strings_matching(i, bare, pick, out)),
        Value::Object(map) => map
            .values()
            .for_each(|i| strings_matching(i, bare, pick, out)),
        _ => {}
    }
}

// ---------------------------------------------------------------------------
// Files that lookups name literally.

/// The lookups that read a controller file, and so need it carried.
fn is_file_lookup(name: &str) -> bool {
    matches!(
        lookups::canonical(name),
        "file" | "template" | "first_found" | "ini" | "csvfile" | "unvault"
    )
}

/// The controller files a task's lookups name literally (`lookup('file', 'id.pub')`,
/// `lookup('ini', 'k file=app.ini')`, `with_file: [a, b]`), as written: the loader finds
/// each where Ansible would and carries it, so a file beside the playbook (outside the
/// directories a payload carries whole) reaches the host. A name built by a template is
/// the host's to find among what travels.
pub(crate) fn literal_file_names(task: &Task) -> Vec<String> {
    let Some(fields) = own_fields(task) else {
        return Vec::new();
    };
    let mut calls = Vec::new();
    for (key, v) in &fields {
        if key == "args" {
            continue;
        }
        let bare = matches!(
            key.as_str(),
            "when" | "changed_when" | "failed_when" | "until"
        );
        strings_matching(v, bare, is_file_lookup, &mut calls);
    }
    // An assert's `that` and a debug's `var` are expressions, not templates.
    let module = task.module_name();
    for (key, v) in &task.args {
        let bare = matches!(
            (module, key.as_str()),
            ("assert", "that") | ("debug", "var")
        );
        strings_matching(v, bare, is_file_lookup, &mut calls);
    }
    let mut names = Vec::new();
    for call in &calls {
        names.extend(names_in_call(call));
    }
    if let (Some(lookup), Some(Value::Array(items))) = (&task.loop_with, &task.loop_)
        && matches!(
            lookups::canonical(lookup),
            "file" | "template" | "first_found"
        )
    {
        names.extend(
            items
                .iter()
                .filter_map(Value::as_str)
                .filter(|n| !n.contains("{{") && !n.contains("{%"))
                .map(str::to_string),
        );
    }
    names.sort();
    names.dedup();
    names
}

/// The file names one call's literal arguments give (see [`literal_file_names`]).
fn names_in_call(call: &str) -> Vec<String> {
    let Some(open) = call.find('(') else {
        return Vec::new();
    };
    let inner = call
        .get(open + 1..call.len().saturating_sub(1))
        .unwrap_or_default();
    let args = split_args(inner);
    let Some(lookup) = args.first().and_then(|a| literal(a)) else {
        return Vec::new();
    };
    let (positional, keywords): (Vec<&String>, Vec<&String>) =
        args.iter().skip(1).partition(|a| keyword(a).is_none());
    let mut names = Vec::new();
    match lookups::canonical(&lookup) {
        "ini" | "csvfile" => {
            // Each term may carry `file=NAME` inline; a `file=` keyword names it for
            // all; the default is the lookup's own (`ansible.ini`, `ansible.csv`).
            let given = keywords
                .iter()
                .filter_map(|a| keyword(a))
                .find(|(k, _)| *k == "file")
                .and_then(|(_, v)| literal(v));
            let default = if lookup.ends_with("ini") {
                "ansible.ini"
            } else {
                "ansible.csv"
            };
            for term in positional.iter().filter_map(|a| literal(a)) {
                let inline = term
                    .split_whitespace()
                    .filter_map(|w| w.strip_prefix("file="))
                    .next()
                    .map(str::to_string);
                names.push(
                    inline
                        .or_else(|| given.clone())
                        .unwrap_or_else(|| default.to_string()),
                );
            }
        }
        _ => names.extend(positional.iter().filter_map(|a| literal(a))),
    }
    names.retain(|n| !n.is_empty() && !n.contains("{{") && !n.contains("{%"));
    names
}

/// A call's argument text split at its top-level commas.
fn split_args(text: &str) -> Vec<String> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    let (mut depth, mut start, mut i) = (0usize, 0usize, 0usize);
    while let Some(&c) = b.get(i) {
        match c {
            b'\'' | b'"' => {
                i = rustle_runner::template::string_literal_end(b, i);
                continue;
            }
            b'(' | b'[' | b'{' => depth += 1,
            b')' | b']' | b'}' => depth = depth.saturating_sub(1),
            b',' if depth == 0 => {
                out.push(text.get(start..i).unwrap_or_default().trim().to_string());
                start = i + 1;
            }
            _ => {}
        }
        i += 1;
    }
    let last = text.get(start..).unwrap_or_default().trim();
    if !last.is_empty() {
        out.push(last.to_string());
    }
    out
}

/// `name=value` of a keyword argument.
fn keyword(arg: &str) -> Option<(&str, &str)> {
    let (k, v) = arg.split_once('=')?;
    let k = k.trim();
    (!k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
        .then_some((k, v.trim()))
}

/// The text of a plain string literal (no escapes), or none for anything else.
fn literal(arg: &str) -> Option<String> {
    let arg = arg.trim();
    let quote = arg.chars().next().filter(|c| *c == '\'' || *c == '"')?;
    let body = arg.strip_prefix(quote)?.strip_suffix(quote)?;
    (!body.contains(quote) && !body.contains('\\')).then(|| body.to_string())
}

/// A task's (or block's) own fields as JSON, its children left out.
fn own_fields(task: &Task) -> Option<serde_json::Map<String, Value>> {
    let mut own = task.clone();
    own.block = None;
    own.rescue.clear();
    own.always.clear();
    match serde_json::to_value(&own) {
        Ok(Value::Object(fields)) => Some(fields),
        _ => None,
    }
}

/// The probes of one task (or block), its children apart.
fn task_probes(task: &Task, files: &BTreeMap<String, String>) -> Vec<Probe> {
    let Some(fields) = own_fields(task) else {
        return Vec::new();
    };
    let mut exprs = Vec::new();
    for (key, v) in &fields {
        match key.as_str() {
            // Conditions are expressions without `{{ }}`.
            "when" | "changed_when" | "failed_when" | "until" => strings_in(v, true, &mut exprs),
            "loop_control" => {
                for (k, inner) in v.as_object().into_iter().flatten() {
                    strings_in(inner, k == "break_when", &mut exprs);
                }
            }
            "loop" if task.loop_with.is_some() => {}
            _ => strings_in(v, false, &mut exprs),
        }
    }
    // A template file's expressions run with the task's variables, and so do those of
    // the templates it imports or includes (found beside it, as Jinja's loader does).
    if task.module_name() == "template"
        && let Some(src) = task.args.get("src").and_then(Value::as_str)
    {
        // The loader's search path: the directories the template was found in (the
        // plan keeps it under its name as given and under the path it resolved to).
        let tail = format!("/{src}");
        let dirs: Vec<&str> = files
            .keys()
            .filter(|k| *k == src || k.ends_with(&tail))
            .map(|k| rustle_runner::resolve::dirname(k))
            .collect();
        let mut seen = vec![src.to_string()];
        let mut todo = vec![src.to_string()];
        while let Some(path) = todo.pop() {
            let Some(text) = files.get(&path) else {
                continue;
            };
            calls_in_template(text, &mut exprs);
            for name in templates_named(text) {
                // The plan may keep a path as written (`role/../role/templates`) or
                // resolved: either names the file.
                let found = dirs
                    .iter()
                    .map(|d| format!("{d}/{name}"))
                    .flat_map(|p| [rustle_runner::resolve::normalize(&p), p])
                    .find(|p| files.contains_key(p));
                if let Some(next) = found
                    && !seen.contains(&next)
                {
                    seen.push(next.clone());
                    todo.push(next);
                }
            }
        }
    }
    let mut probes: Vec<Probe> = exprs.into_iter().map(Probe::Expr).collect();
    if let (Some(lookup), Some(spec)) = (&task.loop_with, &task.loop_)
        && is_controller(lookup)
    {
        probes.push(Probe::Loop {
            lookup: lookup.clone(),
            spec: spec.clone(),
        });
    }
    probes
}

fn collect_tasks(
    tasks: &[Task],
    play: usize,
    scopes: &[Vars],
    files: &BTreeMap<String, String>,
    out: &mut Vec<Site>,
) {
    for task in tasks {
        let mut inner = scopes.to_vec();
        inner.push(task.vars.clone());
        let probes = task_probes(task, files);
        if !probes.is_empty() {
            out.push(Site {
                play,
                scopes: inner.clone(),
                probes,
            });
        }
        for children in [
            task.block.as_deref().unwrap_or_default(),
            &task.rescue,
            &task.always,
        ] {
            collect_tasks(children, play, &inner, files, out);
        }
    }
}

/// Every site of a play: its variables and environment, then its tasks and handlers.
fn play_sites(play: &Play, index: usize, files: &BTreeMap<String, String>, out: &mut Vec<Site>) {
    let mut exprs = Vec::new();
    play.vars
        .values()
        .for_each(|v| strings_in(v, false, &mut exprs));
    if let Some(env) = &play.environment {
        strings_in(env, false, &mut exprs);
    }
    if !exprs.is_empty() {
        out.push(Site {
            play: index,
            scopes: Vec::new(),
            probes: exprs.into_iter().map(Probe::Expr).collect(),
        });
    }
    collect_tasks(&play.tasks, index, &[], files, out);
    collect_tasks(&play.handlers, index, &[], files, out);
}

// ---------------------------------------------------------------------------
// Answering them.

/// Answers controller lookups for one host, reusing what other hosts already asked.
struct Recorder {
    world: Arc<World>,
    /// Answers any host may reuse (everything but fresh `/dev/null` passwords).
    shared: Arc<Mutex<Vec<ControllerLookup>>>,
    /// What this host's payload carries.
    host: Mutex<Vec<ControllerLookup>>,
}

fn record(call: &Call<'_>, answer: &Result<Vec<Value>, LookupError>) -> ControllerLookup {
    let (values, error, error_class) = match answer {
        Ok(v) => (Some(v.clone()), None, None),
        Err(e) => (None, Some(e.to_string()), Some(e.class().to_string())),
    };
    ControllerLookup {
        lookup: call.lookup.to_string(),
        terms: call.terms.clone(),
        options: call.options.clone(),
        values,
        error,
        error_class,
    }
}

fn replay(a: &ControllerLookup) -> Result<Vec<Value>, LookupError> {
    match (&a.values, &a.error) {
        (Some(v), _) => Ok(v.clone()),
        (None, e) => Err(LookupError::from_class(
            a.error_class.as_deref().unwrap_or(ANSIBLE_ERROR),
            e.clone().unwrap_or_default(),
        )),
    }
}

impl Controller for Recorder {
    fn answer(&self, call: &Call<'_>) -> Result<Vec<Value>, LookupError> {
        let lock_err = || LookupError::ansible("the deployer's lookup table is unusable");
        if let Some(a) = self
            .host
            .lock()
            .map_err(|_| lock_err())?
            .iter()
            .find(|a| call.matches(a))
        {
            return replay(a);
        }
        let shared = self
            .shared
            .lock()
            .map_err(|_| lock_err())?
            .iter()
            .find(|a| call.matches(a))
            .cloned();
        let entry = match shared {
            Some(a) => a,
            None => {
                let (answer, reusable) = run(&self.world, call);
                let entry = record(call, &answer);
                if reusable {
                    self.shared
                        .lock()
                        .map_err(|_| lock_err())?
                        .push(entry.clone());
                }
                entry
            }
        };
        self.host
            .lock()
            .map_err(|_| lock_err())?
            .push(entry.clone());
        replay(&entry)
    }
}

/// Runs controller lookups as they are called, for templates the deployer renders
/// itself while it reads the playbook (play keywords such as `strategy` and `serial`).
pub struct Direct(pub World);

impl Controller for Direct {
    fn answer(&self, call: &Call<'_>) -> Result<Vec<Value>, LookupError> {
        run(&self.0, call).0
    }
}

/// Runs a controller lookup; also says whether its answer may serve other hosts.
fn run(world: &World, call: &Call<'_>) -> (Result<Vec<Value>, LookupError>, bool) {
    let terms: Vec<Value> = match call.terms {
        Value::Array(items) => items.clone(),
        Value::Object(map) => map.keys().map(|k| Value::String(k.clone())).collect(),
        other => vec![other.clone()],
    };
    match call.lookup {
        "env" => (env(world, &terms, call.options), true),
        "pipe" => (pipe(world, &terms, false), true),
        "lines" => (pipe(world, &terms, true), true),
        "password" => password::run(world, &terms, call.options),
        "config" => (config(world, &terms), true),
        other => (Err(LookupError::NotFound(other.to_string())), false),
    }
}

/// The `config` lookup, for the settings the plan itself follows: each term names one
/// (`DEFAULT_PRIVATE_ROLE_VARS`, from `ANSIBLE_PRIVATE_ROLE_VARS`); any other is an
/// error naming it.
fn config(world: &World, terms: &[Value]) -> Result<Vec<Value>, LookupError> {
    terms
        .iter()
        .map(|term| match term.as_str() {
            Some("DEFAULT_PRIVATE_ROLE_VARS") => Ok(Value::Bool(
                crate::playbook::private_role_vars_in(world.var(PRIVATE_ROLE_VARS_ENV))
                    .unwrap_or(false),
            )),
            _ => Err(LookupError::Plugin {
                class: "AnsibleLookupError".into(),
                msg: format!(
                    "Unable to find setting {} (rustle-deploy's config lookup knows \
                     DEFAULT_PRIVATE_ROLE_VARS only)",
                    term.as_str()
                        .map_or_else(|| term.to_string(), str::to_string)
                ),
            }),
        })
        .collect()
}

/// The environment variable of Ansible's `DEFAULT_PRIVATE_ROLE_VARS`.
pub(crate) const PRIVATE_ROLE_VARS_ENV: &str = "ANSIBLE_PRIVATE_ROLE_VARS";

/// The `env` lookup: each term's first word names a variable; a missing one is
/// `default=` (empty text unless given).
fn env(world: &World, terms: &[Value], options: &Vars) -> Result<Vec<Value>, LookupError> {
    let default = options
        .get("default")
        .cloned()
        .unwrap_or(Value::String(String::new()));
    let mut out = Vec::new();
    for term in terms {
        let Value::String(text) = term else {
            return Err(LookupError::Plugin {
                class: "AttributeError".into(),
                msg: format!("'{}' object has no attribute 'split'", json_type_name(term)),
            });
        };
        let Some(name) = text.split_whitespace().next() else {
            return Err(LookupError::Plugin {
                class: "IndexError".into(),
                msg: "list index out of range".into(),
            });
        };
        match world.var(name) {
            Some(v) => out.push(Value::String(v)),
            None if is_undefined_marker(&default) => {
                return Err(LookupError::Undefined(format!(
                    "The \"env\" lookup, found an undefined variable: {name}"
                )));
            }
            None => out.push(default.clone()),
        }
    }
    Ok(out)
}

fn json_type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "NoneType",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_f64() => "float",
        Value::Number(_) => "int",
        Value::String(_) => "str",
        Value::Array(_) => "list",
        Value::Object(_) => "dict",
    }
}

/// Python's `str()` of a term, as the command text `pipe` runs.
fn term_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "None".into(),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        other => other.to_string(),
    }
}

/// The `pipe` lookup (the command's output without trailing whitespace) and, with
/// `lines`, the `lines` lookup (its output's lines). Each term is a shell command run
/// with `/bin/sh -c` in the playbook's directory, as Ansible's `Popen(shell=True)`.
fn pipe(world: &World, terms: &[Value], lines: bool) -> Result<Vec<Value>, LookupError> {
    let name = if lines { "lines" } else { "pipe" };
    let mut out = Vec::new();
    for term in terms {
        let command = term_text(term);
        let mut cmd = std::process::Command::new("/bin/sh");
        cmd.arg("-c")
            .arg(&command)
            .current_dir(&world.basedir)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::inherit());
        if let Some(env) = &world.env {
            cmd.env_clear().envs(env);
        }
        let output = cmd.output().map_err(|e| LookupError::Plugin {
            class: "OSError".into(),
            msg: format!("cannot run /bin/sh in {}: {e}", world.basedir.display()),
        })?;
        let rc = output.status.code().unwrap_or_else(|| {
            use std::os::unix::process::ExitStatusExt;
            output.status.signal().map_or(-1, |s| -s)
        });
        if rc != 0 {
            return Err(LookupError::ansible(format!(
                "lookup_plugin.{name}({command}) returned {rc}"
            )));
        }
        let text = String::from_utf8(output.stdout).map_err(|e| LookupError::Plugin {
            class: "UnicodeDecodeError".into(),
            msg: format!("'utf-8' codec can't decode the output of {command}: {e}"),
        })?;
        if lines {
            out.extend(split_lines(&text).map(|l| Value::String(l.to_string())));
        } else {
            out.push(Value::String(text.trim_end().to_string()));
        }
    }
    Ok(out)
}

/// Python's `bytes.splitlines()`: lines ended by `\n`, `\r\n` or `\r`.
fn split_lines(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = text;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let end = rest.find(['\n', '\r']).unwrap_or(rest.len());
        let line = rest.get(..end).unwrap_or_default();
        let skip = if rest.get(end..).is_some_and(|r| r.starts_with("\r\n")) {
            2
        } else if end < rest.len() {
            1
        } else {
            0
        };
        rest = rest.get(end + skip..).unwrap_or_default();
        Some(line)
    })
}

/// Ansible's `path_dwim`: an absolute or `~` path as it is, else below the playbook's
/// directory; `~` expanded and `.`/`..` resolved without following links.
fn path_dwim(world: &World, given: &str) -> PathBuf {
    let given = given.trim_matches(|c| c == '"' || c == '\'');
    let joined = if let Some(rest) = given.strip_prefix('~') {
        let home = world.var("HOME").unwrap_or_default();
        PathBuf::from(format!("{home}{rest}"))
    } else if given.starts_with('/') {
        PathBuf::from(given)
    } else {
        world.basedir.join(given)
    };
    let mut out = PathBuf::new();
    for c in joined.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

// ---------------------------------------------------------------------------
// Per host.

/// Answers, for every host of the plan, the controller lookups its tasks can reach, and
/// stores them in `plan.controller_answers`. A lookup that fails is recorded as failed;
/// its task fails on the host, as in Ansible. Does nothing (and costs next to nothing)
/// for a plan that calls none of them.
pub fn answer(plan: &mut DeployPlan, inventory: &Inventory, world: &World) {
    let files: BTreeMap<String, String> = plan
        .files
        .iter()
        .filter_map(|(k, f)| f.content.clone().map(|c| (k.clone(), c)))
        .collect();
    let mut sites = Vec::new();
    for (i, play) in plan.plays.iter().enumerate() {
        play_sites(play, i, &files, &mut sites);
        // Task files only an include reaches (parsed ahead, run when included): their
        // calls are answered too, with what the play knows.
        for (path, parsed) in &plan.library.tasks {
            if let rustle_runner::plan::Parsed::Ok(tasks) = parsed
                && rustle_runner::plan::is_under(path, &play.reach)
            {
                collect_tasks(tasks, i, &[], &files, &mut sites);
            }
        }
    }
    let plays_hosts = pack::play_hosts(plan, inventory);
    let hosts = pack::participating_hosts(plan, inventory);
    let inventory_calls: Vec<(&Host, Vec<String>)> = hosts
        .iter()
        .map(|h| {
            let mut exprs = Vec::new();
            h.vars
                .values()
                .for_each(|v| strings_in(v, false, &mut exprs));
            (*h, exprs)
        })
        .collect();
    if sites.is_empty() && inventory_calls.iter().all(|(_, e)| e.is_empty()) {
        return;
    }
    let world = Arc::new(world.clone());
    let shared = Arc::new(Mutex::new(Vec::new()));
    let mut answers = BTreeMap::new();
    for (host, inventory_exprs) in inventory_calls {
        let recorder = Arc::new(Recorder {
            world: Arc::clone(&world),
            shared: Arc::clone(&shared),
            host: Mutex::new(Vec::new()),
        });
        let engine = Arc::new(Engine::with_controller(recorder.clone()));
        let base = pack::host_vars(host);
        for (i, play) in plan.plays.iter().enumerate() {
            let in_play = plays_hosts
                .get(i)
                .is_some_and(|hs| hs.iter().any(|h| h.name == host.name));
            if !in_play {
                continue;
            }
            let mut play_vars = base.clone();
            play_vars.extend(play.vars.iter().map(|(k, v)| (k.clone(), v.clone())));
            let ctx = rustle_runner::lazyvars::context(&play_vars, &engine);
            for expr in &inventory_exprs {
                let _ = engine.eval(expr, &ctx);
            }
            for site in sites.iter().filter(|s| s.play == i) {
                let mut vars = play_vars.clone();
                for scope in &site.scopes {
                    vars.extend(scope.iter().map(|(k, v)| (k.clone(), v.clone())));
                }
                let ctx = rustle_runner::lazyvars::context(&vars, &engine);
                for probe in &site.probes {
                    // A call whose arguments need the host fails here; the host reports it.
                    match probe {
                        Probe::Expr(expr) => {
                            let _ = engine.eval(expr, &ctx);
                        }
                        Probe::Loop { lookup, spec } => {
                            // Only the controller lookups matter here; file lookups
                            // find nothing in the packer, which is ignored like any
                            // other failure.
                            let _ = lookups::loop_items(&engine, "files", lookup, spec, &ctx);
                        }
                    }
                }
            }
        }
        let recorded = recorder.host.lock().map(|r| r.clone()).unwrap_or_default();
        if !recorded.is_empty() {
            answers.insert(host.name.clone(), recorded);
        }
    }
    plan.controller_answers = answers;
}

// ---------------------------------------------------------------------------
// Asked over the controller channel.

/// The lookup a call's source text names (`lookup('pipe', ...)` is `pipe`).
fn called_lookup(call: &str) -> Option<&str> {
    let open = call.find('(')?;
    let args = call.get(open + 1..)?.trim_start();
    let quote = args.chars().next().filter(|c| *c == '\'' || *c == '"')?;
    let rest = args.get(1..)?;
    rest.get(..rest.find(quote)?).map(lookups::canonical)
}

/// The controller lookup calls of `task` of `plan`: in its own fields, as its
/// `with_<lookup>` loop, in the template it renders.
fn task_calls(plan: &HostPlan, task: &Task) -> Vec<Probe> {
    let files: BTreeMap<String, String> = task
        .args
        .get("src")
        .and_then(Value::as_str)
        .filter(|_| task.module_name() == "template")
        .and_then(|src| {
            let f = plan.shared.files.get(src)?;
            Some((
                src.to_string(),
                String::from_utf8_lossy(&f.content).into_owned(),
            ))
        })
        .into_iter()
        .collect();
    task_probes(task, &files)
}

/// The controller lookup calls in the plan's variables (the host's, the plays', the
/// tasks' and blocks', the variables files'): a task meets one where it uses the
/// variable.
fn vars_calls(plan: &HostPlan) -> Vec<String> {
    let mut exprs = Vec::new();
    let vars = std::iter::once(&plan.host_vars)
        .chain(plan.plays.iter().map(|p| &p.vars))
        .chain(plan.all_tasks().into_iter().map(|t| &t.vars));
    for v in vars {
        v.values().for_each(|v| strings_in(v, false, &mut exprs));
    }
    for parsed in plan.shared.library.vars.values() {
        if let rustle_runner::plan::Parsed::Ok(v) = parsed {
            strings_in(v, false, &mut exprs);
        }
    }
    exprs
}

/// Whether `task` of `plan` may call the controller lookup `lookup` (its short name),
/// itself or through a variable. The deployer runs a lookup a runner asks for only
/// then, so a host cannot make it run one the plan does not hold.
pub fn task_uses(plan: &HostPlan, task: &Task, lookup: &str) -> bool {
    let own = task_calls(plan, task).iter().any(|p| match p {
        Probe::Expr(e) => called_lookup(e) == Some(lookup),
        Probe::Loop { lookup: l, .. } => lookups::canonical(l) == lookup,
    });
    own || vars_calls(plan)
        .iter()
        .any(|e| called_lookup(e) == Some(lookup))
}

/// Whether the plan calls a controller lookup anywhere: its runner may have to ask the
/// deployer for one whose arguments only the host knows, so it gets the channel.
pub fn plan_uses_any(plan: &HostPlan) -> bool {
    plan.all_tasks()
        .into_iter()
        .any(|t| !task_calls(plan, t).is_empty())
        || !vars_calls(plan).is_empty()
}

/// Runs, on the controller, a call a runner asked for over the channel: the call with
/// its result or failure. Commands run in the playbook's directory `basedir`.
pub fn answer_call(basedir: PathBuf, call: &ControllerLookup) -> ControllerLookup {
    let world = World::new(basedir);
    let call = Call {
        lookup: &call.lookup,
        terms: &call.terms,
        options: &call.options,
    };
    let (answer, _) = run(&world, &call);
    record(&call, &answer)
}

#[cfg(test)]
mod tests;
