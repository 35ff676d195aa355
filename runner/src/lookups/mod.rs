//! Ansible's lookup plugins, and the `lookup()`, `query()` and `q()` functions of its
//! templates, with ansible-core 2.18's semantics.
//!
//! A lookup is a function of its *terms* (the positional arguments, or a `with_<lookup>`
//! loop's value) and its options (keyword arguments). Ansible runs every lookup on the
//! controller. Here the ones that only compute (`items`, `sequence`, `vars`, ...) run where
//! the template is rendered, on the host; the ones that read the controller's world
//! (`env`, `pipe`, `lines`, `password`) are answered by a [`Controller`]: on the host, the
//! answers the packer computed on the controller while packing and sealed into the
//! payload ([`Answers`]); in the packer, the controller itself.
//!
//! [`register`] installs `lookup`/`query`/`q` in a template environment; [`loop_items`]
//! is `with_<lookup>`. How the two differ is Ansible's: `lookup()` joins a list of strings
//! with commas unless `wantlist=True`, `query()` always returns the list; `errors=` applies
//! to the first and `with_` reports a plugin's own message unwrapped.

mod kv;
mod lists;
mod sequence;
#[cfg(test)]
mod tests;
mod vars;

pub use kv::{decode_escapes, parse_kv, parse_kv_checking_raw, unquote};

use crate::plan::{ControllerLookup, Vars};
use crate::template::{Engine, is_template};
use minijinja::value::{Kwargs, Rest, Value as JValue};
use minijinja::{Environment, Error, ErrorKind, State};
use serde_json::Value;
use std::cell::RefCell;
use std::sync::Arc;

/// Why a lookup failed, in Ansible's classes of failure: they decide whether `errors=`
/// applies and how the message is worded.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LookupError {
    /// `lookup plugin (x) not found`: raised before `errors=` is looked at.
    #[error("lookup plugin ({0}) not found")]
    NotFound(String),
    /// An undefined variable (`AnsibleUndefinedVariable`): always raised as it is.
    #[error("{0}")]
    Undefined(String),
    /// A bad option value (`AnsibleOptionsError`): always raised as it is.
    #[error("{0}")]
    Options(String),
    /// The lookup cannot run here: a controller lookup whose arguments only the host
    /// knows, or one this runner does not have yet. Always raised, whatever `errors=`
    /// says: it is not the lookup failing but rustle-deploy not running it.
    #[error("{0}")]
    Unavailable(String),
    /// Any other failure of the plugin, with the Python class Ansible names in its
    /// message (`ansible.errors.AnsibleError`, `TypeError`, ...). `errors=warn` and
    /// `errors=ignore` turn it into an empty result.
    #[error("{msg}")]
    Plugin {
        /// The Python exception class.
        class: String,
        /// The plugin's message.
        msg: String,
    },
}

impl LookupError {
    /// An `AnsibleError` raised by a plugin.
    pub fn ansible(msg: impl Into<String>) -> LookupError {
        LookupError::Plugin {
            class: ANSIBLE_ERROR.to_string(),
            msg: msg.into(),
        }
    }

    /// The Python class of this failure, as recorded in a payload's controller answers.
    pub fn class(&self) -> &str {
        match self {
            LookupError::Undefined(_) => UNDEFINED_ERROR,
            LookupError::Options(_) => OPTIONS_ERROR,
            LookupError::Plugin { class, .. } => class,
            LookupError::Unavailable(_) => UNAVAILABLE,
            LookupError::NotFound(_) => ANSIBLE_ERROR,
        }
    }

    /// The failure a recorded class and message stand for (the inverse of [`Self::class`]).
    pub fn from_class(class: &str, msg: String) -> LookupError {
        match class {
            UNDEFINED_ERROR => LookupError::Undefined(msg),
            OPTIONS_ERROR => LookupError::Options(msg),
            UNAVAILABLE => LookupError::Unavailable(msg),
            _ => LookupError::Plugin {
                class: class.to_string(),
                msg,
            },
        }
    }
}

/// Ansible's generic error class.
pub const ANSIBLE_ERROR: &str = "ansible.errors.AnsibleError";
const UNDEFINED_ERROR: &str = "ansible.errors.AnsibleUndefinedVariable";
const OPTIONS_ERROR: &str = "ansible.errors.AnsibleOptionsError";
/// Not a Python class: what a recorded answer says when rustle-deploy could not run the
/// lookup on the controller (an option it does not support).
const UNAVAILABLE: &str = "rustle-deploy: unsupported";

/// One call of a controller lookup: its canonical name, terms and options.
#[derive(Debug, Clone, Copy)]
pub struct Call<'a> {
    /// The lookup's short name (`pipe`, not `ansible.builtin.pipe`).
    pub lookup: &'a str,
    /// The terms, as the plugin receives them.
    pub terms: &'a Value,
    /// The options (keyword arguments other than `wantlist`, `errors`, `allow_unsafe`).
    pub options: &'a Vars,
}

impl Call<'_> {
    /// How the call is shown in messages: `lookup('pipe', 'date')`.
    pub fn display(&self) -> String {
        let mut out = format!("lookup('{}'", self.lookup);
        let terms: Vec<&Value> = match self.terms {
            Value::Array(items) => items.iter().collect(),
            other => vec![other],
        };
        for t in terms {
            out.push_str(", ");
            out.push_str(&py_repr(t));
        }
        for (k, v) in self.options {
            out.push_str(&format!(", {k}={}", py_repr(v)));
        }
        out.push(')');
        out
    }

    /// Whether a recorded answer is the answer to this call.
    pub fn matches(&self, answer: &ControllerLookup) -> bool {
        answer.lookup == self.lookup
            && &answer.terms == self.terms
            && &answer.options == self.options
    }
}

/// Answers the lookups that read the controller's world (`env`, `pipe`, `lines`,
/// `password`).
pub trait Controller: Send + Sync {
    /// The plugin's result for `call`.
    fn answer(&self, call: &Call<'_>) -> Result<Vec<Value>, LookupError>;
}

/// The lookups whose answers come from the controller.
pub const CONTROLLER_LOOKUPS: [&str; 5] = ["env", "pipe", "lines", "password", "config"];

/// Lookups that read the controller's files: they run over the files the payload
/// carries ([`crate::ctlfiles`]).
use crate::ctlfiles::FILE_LOOKUPS;

/// ansible-core's other lookups, which rustle-deploy does not run.
const OTHER_LOOKUPS: [&str; 1] = ["url"];

/// The host's side of controller lookups: the answers the packer computed while packing
/// (the payload's `controller_lookups`), and those the deployer gave over the controller
/// channel. A call that is among neither had arguments only the host knows: it fails,
/// and is kept as pending, for the executor to ask the deployer and render again.
#[derive(Debug, Default)]
pub struct Answers {
    answers: Vec<ControllerLookup>,
    /// Answers the deployer gave while the plan runs.
    learned: std::sync::Mutex<Vec<ControllerLookup>>,
    /// Calls that found no answer since [`Answers::take_pending`] last ran.
    pending: std::sync::Mutex<Vec<ControllerLookup>>,
}

impl Answers {
    /// The answers a payload carries.
    pub fn new(answers: Vec<ControllerLookup>) -> Answers {
        Answers {
            answers,
            ..Answers::default()
        }
    }

    /// The calls that found no answer since the last time this was asked (each once).
    pub fn take_pending(&self) -> Vec<ControllerLookup> {
        self.pending
            .lock()
            .map(|mut p| std::mem::take(&mut *p))
            .unwrap_or_default()
    }

    /// Records the deployer's answer (values, or error and class) to a call.
    pub fn learn(&self, answer: ControllerLookup) {
        if let Ok(mut l) = self.learned.lock() {
            l.push(answer);
        }
    }
}

/// A recorded answer replayed as the plugin's result.
fn replay(answer: &ControllerLookup) -> Result<Vec<Value>, LookupError> {
    match answer {
        ControllerLookup {
            values: Some(values),
            ..
        } => Ok(values.clone()),
        ControllerLookup {
            error, error_class, ..
        } => Err(LookupError::from_class(
            error_class.as_deref().unwrap_or(ANSIBLE_ERROR),
            error.clone().unwrap_or_default(),
        )),
    }
}

impl Controller for Answers {
    fn answer(&self, call: &Call<'_>) -> Result<Vec<Value>, LookupError> {
        if let Some(a) = self
            .answers
            .iter()
            .find(|a| call.matches(a) && (a.values.is_some() || a.error.is_some()))
        {
            return replay(a);
        }
        let learned = self.learned.lock().ok();
        if let Some(a) = learned
            .as_ref()
            .and_then(|l| l.iter().find(|a| call.matches(a)))
        {
            return replay(a);
        }
        drop(learned);
        if let Ok(mut p) = self.pending.lock()
            && !p.iter().any(|a| call.matches(a))
        {
            p.push(ControllerLookup {
                lookup: call.lookup.to_string(),
                terms: call.terms.clone(),
                options: call.options.clone(),
                values: None,
                error: None,
                error_class: None,
            });
        }
        Err(needs_controller(call))
    }
}

/// The error for a controller lookup the payload has no answer for.
pub fn needs_controller(call: &Call<'_>) -> LookupError {
    LookupError::Unavailable(format!(
        "{} needs the controller: its arguments are only known on the host (the controller \
         channel, issue 14, answers these)",
        call.display()
    ))
}

/// The name without an `ansible.builtin.` / `ansible.legacy.` prefix.
pub fn canonical(name: &str) -> &str {
    if let Some(short) = name.strip_prefix("community.general.")
        && COLLECTION_LOOKUPS.contains(&short)
    {
        return short;
    }
    name.strip_prefix("ansible.builtin.")
        .or_else(|| name.strip_prefix("ansible.legacy."))
        .unwrap_or(name)
}

/// community.general's lookups the runner has, known by their short names too (as
/// ansible-core routes `with_flattened` to the collection's).
const COLLECTION_LOOKUPS: &[&str] = &["flattened"];

/// Whether `name` (short or with its collection) is a lookup ansible-core has, so
/// `with_<name>` is a loop.
pub fn is_known(name: &str) -> bool {
    let name = canonical(name);
    host_plugin(name).is_some()
        || CONTROLLER_LOOKUPS.contains(&name)
        || FILE_LOOKUPS.contains(&name)
        || OTHER_LOOKUPS.contains(&name)
}

/// A lookup that runs where the template renders: terms, options, what else it sees.
type HostPlugin = fn(&Value, &Vars, &Scope) -> Result<Vec<Value>, LookupError>;

/// The lookups that run where the template renders.
fn host_plugin(name: &str) -> Option<HostPlugin> {
    Some(match name {
        "items" => lists::items,
        "list" => lists::list,
        "dict" => lists::dict,
        "indexed_items" => lists::indexed_items,
        "nested" => lists::nested,
        "together" => lists::together,
        "flattened" => lists::flattened,
        "subelements" => lists::subelements,
        "random_choice" => lists::random_choice,
        "sequence" => sequence::run,
        "vars" => vars::vars,
        "varnames" => vars::varnames,
        "inventory_hostnames" => vars::inventory_hostnames,
        _ => return None,
    })
}

/// What a plugin may look at besides its terms.
pub(crate) struct Scope {
    /// The variables of the template being rendered (a map value), when there is one.
    pub vars: Option<JValue>,
}

/// Where a lookup is called from, for the file lookups: the subdirectory `first_found`
/// looks in, and how names and templates it finds are rendered.
pub struct FileScope<'r> {
    /// `files`, or `templates`/`vars` for a `with_first_found` on a template or
    /// include_vars task (Ansible's task executor sets the plugin's `_subdir` so).
    pub subdir: &'r str,
    /// Renders a template source with variables.
    pub render: crate::ctlfiles::RenderFn<'r>,
}

/// Runs lookup `name` (short or qualified) on `terms` with `options`.
pub fn run(
    name: &str,
    terms: &Value,
    options: &Vars,
    controller: &dyn Controller,
    vars: Option<JValue>,
    files: &FileScope<'_>,
) -> Result<Vec<Value>, LookupError> {
    let short = canonical(name);
    if let Some(plugin) = host_plugin(short) {
        let scope = Scope { vars };
        return plugin(terms, options, &scope);
    }
    if CONTROLLER_LOOKUPS.contains(&short) {
        let call = Call {
            lookup: short,
            terms,
            options,
        };
        return controller.answer(&call);
    }
    if FILE_LOOKUPS.contains(&short) {
        let vars = vars.unwrap_or_else(|| JValue::from_serialize(Vars::new()));
        return match crate::ctlfiles::lookup_in_scope(
            short,
            terms,
            options,
            files.subdir,
            &vars,
            files.render,
        ) {
            Some(Ok(values)) => Ok(values),
            Some(Err(crate::ctlfiles::FileLookupError::Options(msg))) => {
                Err(LookupError::Options(msg))
            }
            Some(Err(crate::ctlfiles::FileLookupError::Plugin { class, msg })) => {
                Err(LookupError::Plugin {
                    class: class.to_string(),
                    msg,
                })
            }
            None => Err(LookupError::NotFound(name.to_string())),
        };
    }
    if OTHER_LOOKUPS.contains(&short) {
        return Err(LookupError::Unavailable(format!(
            "the '{short}' lookup is not supported by rustle-deploy"
        )));
    }
    Err(LookupError::NotFound(name.to_string()))
}

// ---------------------------------------------------------------------------
// The variables of the template being rendered.

thread_local! {
    /// The contexts being rendered on this thread, innermost last. `vars` and
    /// `varnames` read Ansible's "available variables", which minijinja's state only
    /// gives as an unordered set mixed with its globals and locals.
    static SCOPES: RefCell<Vec<JValue>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` with `ctx` as the variables lookups see.
pub(crate) fn with_scope<R>(ctx: &JValue, f: impl FnOnce() -> R) -> R {
    SCOPES.with(|s| {
        let mut s = s.borrow_mut();
        if s.is_empty() {
            crate::filters::reset_budget();
        }
        s.push(ctx.clone());
    });
    let out = f();
    SCOPES.with(|s| s.borrow_mut().pop());
    out
}

fn current_scope() -> Option<JValue> {
    SCOPES.with(|s| s.borrow().last().cloned())
}

// ---------------------------------------------------------------------------
// lookup(), query(), q()

/// Installs `lookup`, `query` and `q` in a template environment, with `controller`
/// answering the controller's lookups.
pub(crate) fn register(env: &mut Environment<'static>, controller: Arc<dyn Controller>) {
    let c = Arc::clone(&controller);
    env.add_function(
        "lookup",
        move |state: &State, name: String, args: Rest<JValue>, kwargs: Kwargs| {
            lookup_function(state, &name, &args, &kwargs, false, c.as_ref())
        },
    );
    for query in ["query", "q"] {
        let c = Arc::clone(&controller);
        env.add_function(
            query,
            move |state: &State, name: String, args: Rest<JValue>, kwargs: Kwargs| {
                lookup_function(state, &name, &args, &kwargs, true, c.as_ref())
            },
        );
    }
}

fn jinja_error(msg: String) -> Error {
    Error::new(ErrorKind::InvalidOperation, msg)
}

/// A template value as JSON; undefined is Ansible's undefined-variable error.
fn to_value(v: &JValue, what: &str) -> Result<Value, Error> {
    if v.is_undefined() {
        return Err(Error::new(
            ErrorKind::UndefinedError,
            format!("{what} is undefined"),
        ));
    }
    serde_json::to_value(v).map_err(|e| jinja_error(format!("{what}: {e}")))
}

/// Ansible's `Templar._lookup`: `query` forces `wantlist`.
fn lookup_function(
    state: &State,
    name: &str,
    args: &[JValue],
    kwargs: &Kwargs,
    query: bool,
    controller: &dyn Controller,
) -> Result<JValue, Error> {
    let mut wantlist = query;
    let mut errors = "strict".to_string();
    let mut options = Vars::new();
    for key in kwargs.args() {
        let v: JValue = kwargs.get(key)?;
        match key {
            "wantlist" => wantlist = query || v.is_true(),
            "errors" => errors = v.to_string(),
            "allow_unsafe" => {}
            // `default=Undefined` (the env lookup's way to fail on a missing variable)
            // is kept apart from every JSON value, `None` included.
            _ if v.is_undefined() => {
                options.insert(key.to_string(), undefined_marker());
            }
            _ => {
                options.insert(key.to_string(), to_value(&v, key)?);
            }
        }
    }
    // Ansible checks the plugin exists before anything else, `errors=` included.
    if !is_known(name) {
        return Err(jinja_error(
            LookupError::NotFound(name.to_string()).to_string(),
        ));
    }
    let terms = Value::Array(
        args.iter()
            .map(|a| to_value(a, "a lookup term"))
            .collect::<Result<_, _>>()?,
    );
    // A file lookup renders what it finds with the environment of the template it is
    // called from.
    let env = state.env();
    let render = |src: &str, ctx: &JValue, setup: Option<&crate::ctlfiles::TemplateSetup>| {
        with_scope(ctx, || match setup {
            Some(setup) => crate::ctlfiles::render_with_setup(env, src, ctx, setup),
            None => env.render_str(src, ctx),
        })
        .map_err(|e| e.to_string())
    };
    let files = FileScope {
        subdir: "files",
        render: &render,
    };
    match run(name, &terms, &options, controller, current_scope(), &files) {
        Ok(ran) => Ok(JValue::from_serialize(shape(ran, wantlist))),
        Err(e) => {
            let empty = || {
                Ok(if wantlist {
                    JValue::from_serialize(Vec::<Value>::new())
                } else {
                    JValue::from(())
                })
            };
            match e {
                LookupError::Plugin { class, msg } => {
                    if errors == "warn" || errors == "ignore" {
                        return empty();
                    }
                    let short = canonical(name);
                    Err(jinja_error(format!(
                        "An unhandled exception occurred while running the lookup plugin \
                         '{short}'. Error was a <class '{class}'>, original message: {msg}. {msg}"
                    )))
                }
                LookupError::Undefined(msg) => Err(Error::new(ErrorKind::UndefinedError, msg)),
                other => Err(jinja_error(other.to_string())),
            }
        }
    }
}

/// What `lookup()` returns for a plugin's list: the list itself with `wantlist` or when
/// it is empty; else the strings joined with commas, or the one value, or the list.
fn shape(ran: Vec<Value>, wantlist: bool) -> Value {
    if wantlist || ran.is_empty() {
        return Value::Array(ran);
    }
    if ran.iter().all(Value::is_string) {
        let joined: Vec<&str> = ran.iter().filter_map(Value::as_str).collect();
        return Value::String(joined.join(","));
    }
    if ran.len() == 1 {
        return ran.into_iter().next().unwrap_or(Value::Null);
    }
    Value::Array(ran)
}

/// How an undefined option value (`default=Undefined`) travels in a call's options.
pub fn undefined_marker() -> Value {
    serde_json::json!({"__ansible_undefined__": true})
}

/// Whether `v` is [`undefined_marker`].
pub fn is_undefined_marker(v: &Value) -> bool {
    v == &undefined_marker()
}

// ---------------------------------------------------------------------------
// with_<lookup>

/// The subdirectory a `with_<lookup>` loop's file lookup searches for a task running
/// `module`, as ansible-core's task executor picks it: `templates` when the action's name
/// holds "template", `vars` when it holds "var", else `files`.
pub fn loop_subdir(module: &str) -> &'static str {
    if module.contains("template") {
        "templates"
    } else if module.contains("var") {
        "vars"
    } else {
        "files"
    }
}

/// The items of a `with_<name>` loop over `spec`, as Ansible's task executor makes them:
/// the spec is templated (a string as a whole, after trimming) into the terms, a string
/// or scalar result becomes a one-element list, and the plugin gets them with
/// `wantlist=True`. `subdir` is where `first_found` looks ([`loop_subdir`]). On error: the
/// message, and whether it is an undefined variable (which Ansible only reports once
/// `when` holds).
pub fn loop_items(
    engine: &Engine,
    subdir: &str,
    name: &str,
    spec: &Value,
    ctx: &JValue,
) -> Result<Vec<Value>, (String, bool)> {
    let short = canonical(name);
    let terms = match spec {
        Value::String(s) => render_terms(engine, short, &Value::String(s.trim().to_string()), ctx),
        other => render_terms(engine, short, other, ctx),
    }
    .map_err(|e| (e, true))?;
    let terms = match terms {
        v @ (Value::Array(_) | Value::Object(_)) => v,
        scalar => Value::Array(vec![scalar]),
    };
    let vars = Some(ctx.clone());
    let render = |src: &str, ctx: &JValue, setup: Option<&crate::ctlfiles::TemplateSetup>| {
        match setup {
            Some(setup) => engine.render_with_setup(src, ctx, setup),
            None => engine.render_str(src, ctx),
        }
        .map_err(|e| e.to_string())
    };
    let files = FileScope {
        subdir,
        render: &render,
    };
    match run(
        short,
        &terms,
        &Vars::new(),
        engine.controller(),
        vars,
        &files,
    ) {
        Ok(items) => Ok(items),
        Err(LookupError::NotFound(_)) => Err((
            format!(
                "Unexpected failure in finding the lookup named '{short}' in the available lookup plugins"
            ),
            false,
        )),
        Err(LookupError::Undefined(msg)) => Err((msg, true)),
        Err(e) => Err((e.to_string(), false)),
    }
}

/// Templates a loop's terms. `first_found` is templated leniently, as Ansible does: a
/// string naming something undefined stays as written.
fn render_terms(engine: &Engine, name: &str, spec: &Value, ctx: &JValue) -> Result<Value, String> {
    if name != "first_found" {
        return engine.render_value(spec, ctx).map_err(|e| e.to_string());
    }
    Ok(match spec {
        Value::String(s) if is_template(s) => engine
            .render_value(spec, ctx)
            .unwrap_or_else(|_| Value::String(s.clone())),
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|i| render_terms(engine, name, i, ctx))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(map) => {
            let mut out = serde_json::Map::new();
            for (k, v) in map {
                out.insert(k.clone(), render_terms(engine, name, v, ctx)?);
            }
            Value::Object(out)
        }
        other => other.clone(),
    })
}

// ---------------------------------------------------------------------------
// Python's text forms, for messages that must read as Ansible's.

/// Python's `str()` of a value: a string as itself, anything else as `repr()`.
pub fn py_str(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => py_repr(other),
    }
}

/// Python's `repr()` of a value.
pub(crate) fn py_repr(v: &Value) -> String {
    let mut out = String::new();
    repr_into(v, &mut out);
    out
}

fn repr_into(v: &Value, out: &mut String) {
    match v {
        Value::Null => out.push_str("None"),
        Value::Bool(b) => out.push_str(if *b { "True" } else { "False" }),
        Value::Number(n) => match (n.is_f64(), n.as_f64()) {
            (true, Some(f)) => out.push_str(&crate::template::py_float(f)),
            _ => out.push_str(&n.to_string()),
        },
        Value::String(s) => crate::template::py_str_repr(s, out),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                repr_into(item, out);
            }
            out.push(']');
        }
        Value::Object(map) => {
            out.push('{');
            for (i, (k, item)) in map.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                repr_into(&Value::String(k.clone()), out);
                out.push_str(": ");
                repr_into(item, out);
            }
            out.push('}');
        }
    }
}

/// Python's type name of a value, as `type(v)` prints it.
pub(crate) fn py_type(v: &Value) -> &'static str {
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

/// Ansible's non-strict `boolean()`: true for its true words and numbers, false otherwise.
pub(crate) fn py_boolean(v: &Value) -> bool {
    match v {
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64() == Some(1.0),
        Value::String(s) => crate::modules::args::truthy_str(s) == Some(true),
        _ => false,
    }
}
