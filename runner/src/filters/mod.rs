//! Ansible's filters and tests on minijinja: ansible-core 2.18's `ansible.builtin` set
//! (reachable by short name, `ansible.builtin.X` and `ansible.legacy.X`), Jinja2's
//! built-ins where minijinja's differ in a way a playbook sees, and the two collection
//! families roles use most: `community.general.json_query` and `ansible.utils`' ipaddr
//! filters (by FQCN and by the short names ansible-core routes to them).
//!
//! Each family lives in its own file, named after the ansible-core plugin file it
//! follows; expected values in their tests come from running ansible-core 2.18.19.

mod core;
pub(crate) use core::encode_text;
pub(crate) mod datetime;
pub(crate) mod encryption;
mod ipaddr;
pub(crate) mod jinja;
mod json_query;
mod math;
mod password;
mod testplugins;
pub(crate) mod urls;
pub(crate) mod yaml_in;

use minijinja::value::{Kwargs, Rest, Value as JValue, ValueKind};
use minijinja::{Environment, Error, ErrorKind, State};

/// The message of a filter or test that failed, carried as the engine error's source so
/// the task's `msg` can be that message alone, as Ansible's is.
#[derive(Debug)]
pub(crate) struct FilterFailure(String);

impl std::fmt::Display for FilterFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for FilterFailure {}

/// An error a filter reports: a playbook's mistake (or data the filter cannot take),
/// with the message Ansible gives where its tests check the text.
pub(crate) fn invalid(msg: impl Into<String>) -> Error {
    let msg = msg.into();
    Error::new(ErrorKind::InvalidOperation, msg.clone()).with_source(FilterFailure(msg))
}

/// Fails on an undefined value, as Ansible's undefined does when a filter uses it.
pub(crate) fn defined(v: &JValue) -> Result<(), Error> {
    if v.is_undefined() {
        // Without a detail of its own, so the error names what was undefined, as the
        // engine's own undefined errors do.
        Err(Error::from(ErrorKind::UndefinedError))
    } else {
        Ok(())
    }
}

/// Python's name for a value's type, as Ansible's messages print it (`'bool' object is
/// not iterable`).
pub(crate) fn py_type(v: &JValue) -> &'static str {
    match v.kind() {
        ValueKind::Undefined => "AnsibleUndefined",
        ValueKind::None => "NoneType",
        ValueKind::Bool => "bool",
        ValueKind::Number if v.is_integer() => "int",
        ValueKind::Number => "float",
        ValueKind::String => "str",
        ValueKind::Bytes => "bytes",
        ValueKind::Seq | ValueKind::Iterable => "list",
        ValueKind::Map => "dict",
        _ if encryption::Vaulted::of(v).is_some() => "AnsibleVaultEncryptedUnicode",
        _ => "object",
    }
}

/// Positional and keyword arguments after a filter's fixed ones: `Rest<Value>` also
/// takes the keyword arguments' value, so it is split off here.
pub(crate) struct Opts {
    /// Positional arguments, in order.
    pub(crate) pos: Vec<JValue>,
    /// Keyword arguments (empty when none were given).
    pub(crate) kw: Kwargs,
}

impl Opts {
    pub(crate) fn new(rest: Vec<JValue>) -> Result<Opts, Error> {
        let mut pos = rest;
        let kw = match pos.last() {
            Some(last) if last.is_kwargs() => {
                let kw = <Kwargs as minijinja::value::ArgType>::from_value(Some(last))?;
                pos.pop();
                kw
            }
            _ => Kwargs::from_iter(std::iter::empty::<(&str, JValue)>()),
        };
        Ok(Opts { pos, kw })
    }

    /// A parameter Python requires: by name or at `index`, else an error naming it.
    pub(crate) fn req(&self, index: usize, name: &str, filter: &str) -> Result<JValue, Error> {
        self.arg(index, name)?.ok_or_else(|| {
            Error::new(
                ErrorKind::MissingArgument,
                format!("{filter}() missing required argument: '{name}'"),
            )
        })
    }

    /// A Python-style parameter: given by name, else at `index` among the positional
    /// arguments (counted after the fixed ones), else None.
    pub(crate) fn arg(&self, index: usize, name: &str) -> Result<Option<JValue>, Error> {
        match self.kw.get::<Option<JValue>>(name)? {
            Some(v) => Ok(Some(v)),
            None => Ok(self.pos.get(index).cloned()),
        }
    }

    /// A boolean parameter (Python truthiness), false when not given.
    pub(crate) fn flag(&self, index: usize, name: &str) -> Result<bool, Error> {
        Ok(self.arg(index, name)?.is_some_and(|v| v.is_true()))
    }

    /// Fails on positional arguments beyond `max` and on unknown keywords.
    pub(crate) fn done(&self, filter: &str, max: usize) -> Result<(), Error> {
        if self.pos.len() > max {
            return Err(invalid(format!(
                "{filter}() takes at most {max} positional argument(s) after its input, {} given",
                self.pos.len()
            )));
        }
        self.kw.assert_all_used()
    }
}

/// The text of a value as Python's `str()` gives it (a string as is, `True`, `None`,
/// a list as its repr), which Ansible filters apply to non-string input.
pub(crate) fn py_str(v: &JValue) -> String {
    match v.kind() {
        ValueKind::String => v.as_str().unwrap_or_default().to_string(),
        _ => crate::template::py_display(v),
    }
}

// ---------------------------------------------------------------------------
// Bounds on what filters build.
//
// Python has none, but a runner that runs out of memory aborts without reporting
// anything, on a production host whose other services it starves first. Filters whose
// output grows with an argument (a separator, a replacement, a width, a count) check
// the size before building; and all filter output of one render counts against a
// budget, so many results that each fit cannot add up to the host's memory.

/// The longest text (bytes) one filter call builds: far past any real file or argument,
/// well below memory (the result is also copied into template values).
pub(crate) const MAX_TEXT: usize = 64 << 20;

/// The most items one filter call builds into a list.
pub(crate) const MAX_ITEMS: usize = 4 << 20;

/// What all filter calls of one render (a task's arguments, a template file) may
/// produce together, in bytes of text and [`ITEM_WEIGHT`] per list or mapping item.
pub(crate) const RENDER_BUDGET: usize = 512 << 20;

/// What one list or mapping item counts against [`RENDER_BUDGET`] besides its text.
const ITEM_WEIGHT: usize = 16;

/// Compiles a pattern in Python's `re` syntax for a regex filter or test, or fails the
/// template naming the pattern.
pub(crate) fn py_regex(
    pattern: &str,
    ignorecase: bool,
    multiline: bool,
) -> Result<crate::pyre::Pattern, Error> {
    crate::pyre::Pattern::with_flags(pattern, ignorecase, multiline).map_err(|e| {
        invalid(format!(
            "cannot compile the regular expression '{pattern}': {e}"
        ))
    })
}

/// `len`, when text of that many bytes fits [`MAX_TEXT`]; `None` is an arithmetic
/// overflow while computing it, which does not fit either. Called before building.
pub(crate) fn text_fits(filter: &str, len: Option<usize>) -> Result<usize, Error> {
    len.filter(|n| *n <= MAX_TEXT).ok_or_else(|| {
        invalid(format!(
            "{filter}: the result would be longer than {} MiB",
            MAX_TEXT >> 20
        ))
    })
}

/// `count`, when a list of that many items fits [`MAX_ITEMS`] (see [`text_fits`]).
pub(crate) fn items_fit(filter: &str, count: Option<usize>) -> Result<usize, Error> {
    count.filter(|n| *n <= MAX_ITEMS).ok_or_else(|| {
        invalid(format!(
            "{filter}: the result would have more than {} items",
            MAX_ITEMS
        ))
    })
}

thread_local! {
    /// What this thread's current render has produced through filters so far.
    static SPENT: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Starts a render's budget afresh; called for the outermost render only, so a lookup
/// rendering a template inside a task's render shares the task's budget.
pub(crate) fn reset_budget() {
    SPENT.with(|s| s.set(0));
}

/// Counts a filter's result against the render's budget.
fn charge(filter: &str, out: &JValue) -> Result<(), Error> {
    let weight = match out.kind() {
        ValueKind::String => out.as_str().map_or(0, str::len),
        ValueKind::Seq | ValueKind::Map => {
            let n = out.len().unwrap_or(0);
            let text: usize = out
                .try_iter()
                .map(|it| it.filter_map(|i| i.as_str().map(str::len)).sum())
                .unwrap_or(0);
            n.saturating_mul(ITEM_WEIGHT).saturating_add(text)
        }
        _ => 0,
    };
    let spent = SPENT.with(|s| {
        let total = s.get().saturating_add(weight);
        s.set(total);
        total
    });
    if spent > RENDER_BUDGET {
        return Err(invalid(format!(
            "{filter}: this template's filters have built more than {} MiB in all",
            RENDER_BUDGET >> 20
        )));
    }
    Ok(())
}

/// A filter as the registry holds it: the call's arguments as given, the filtered value
/// first and a keyword-arguments value last.
pub(crate) type FilterFn = fn(&[JValue]) -> Result<JValue, Error>;

/// A test as the registry holds it (see [`FilterFn`]).
pub(crate) type TestFn = fn(&[JValue]) -> Result<bool, Error>;

/// Registers filters through one closure type, so minijinja's argument conversion is
/// compiled once for all of them instead of once per filter: with some two hundred
/// filters and tests that is a good part of the runner's size.
pub(crate) fn add_filters(env: &mut Environment<'static>, table: &[(&'static str, FilterFn)]) {
    for &(name, f) in table {
        env.add_filter(name, move |args: Rest<JValue>| {
            let out = f(&args.0)?;
            let out = bounded(name, out)?;
            charge(name, &out)?;
            Ok::<_, Error>(out)
        });
    }
}

/// `out`, or an error naming the filter when it holds more than [`MAX_TEXT`]: bytes of
/// text, counting every string (keys included) and 8 bytes for each other value inside.
///
/// Every filter's result is measured, so a template whose filters feed each other
/// (each `regex_replace` or `join` multiplying the text) stops with an error at the
/// first result past the bound instead of growing until an allocation fails, which
/// aborts the runner with no report. Filters that can multiply their input in one step
/// also bound what they build before building it ([`text_fits`], [`items_fit`]).
fn bounded(name: &str, out: JValue) -> Result<JValue, Error> {
    let mut budget = MAX_TEXT;
    if fits(&out, &mut budget, 0) {
        Ok(out)
    } else {
        Err(invalid(format!(
            "{name}: the result would hold more than {} MiB",
            MAX_TEXT >> 20
        )))
    }
}

/// Takes what `v` holds from `budget`; false once the budget runs out. Lists and
/// mappings nested deeper than the walk goes are counted as one value each (templates
/// do not build such values; the walk must not exhaust the stack on them).
fn fits(v: &JValue, budget: &mut usize, depth: usize) -> bool {
    let mut take = |n: usize| match budget.checked_sub(n) {
        Some(left) => {
            *budget = left;
            true
        }
        None => false,
    };
    match v.kind() {
        minijinja::value::ValueKind::String => take(v.as_str().map_or(0, str::len)),
        minijinja::value::ValueKind::Bytes => take(v.as_bytes().map_or(0, <[u8]>::len)),
        minijinja::value::ValueKind::Seq | minijinja::value::ValueKind::Map if depth < 64 => {
            if !take(8) {
                return false;
            }
            let is_map = v.kind() == minijinja::value::ValueKind::Map;
            let Ok(items) = v.try_iter() else {
                return true;
            };
            for item in items {
                if !fits(&item, budget, depth + 1) {
                    return false;
                }
                if is_map {
                    let value = v.get_item(&item).unwrap_or_default();
                    if !fits(&value, budget, depth + 1) {
                        return false;
                    }
                }
            }
            true
        }
        _ => take(8),
    }
}

/// Registers tests as [`add_filters`] registers filters.
pub(crate) fn add_tests(env: &mut Environment<'static>, table: &[(&'static str, TestFn)]) {
    for &(name, f) in table {
        env.add_test(name, move |args: Rest<JValue>| f(&args.0));
    }
}

/// A call's filtered (or tested) value and its other arguments.
pub(crate) fn split(args: &[JValue]) -> Result<(JValue, Rest<JValue>), Error> {
    match args.split_first() {
        Some((v, rest)) => Ok((v.clone(), Rest(rest.to_vec()))),
        None => Err(invalid("no value to filter")),
    }
}

/// A call's value and its other arguments as [`Opts`].
pub(crate) fn opts(args: &[JValue]) -> Result<(JValue, Opts), Error> {
    let (v, rest) = split(args)?;
    Ok((v, Opts::new(rest.0)?))
}

/// Takes the first positional argument after the value (or the keyword `name`).
pub(crate) fn first_positional(
    r: &mut Rest<JValue>,
    name: &str,
    filter: &str,
) -> Result<JValue, Error> {
    let is_kw = r.0.first().is_some_and(JValue::is_kwargs);
    if !r.0.is_empty() && !is_kw {
        return Ok(r.0.remove(0));
    }
    // Given by name: take it out of the keyword arguments the filter will read.
    let o = Opts::new(std::mem::take(&mut r.0))?;
    let v = o.req(usize::MAX, name, filter)?;
    let rest: Vec<(String, JValue)> =
        o.kw.args()
            .filter(|k| *k != name)
            .map(|k| (k.to_string(), o.kw.peek::<JValue>(k).unwrap_or_default()))
            .collect();
    if !rest.is_empty() {
        r.0.push(JValue::from(Kwargs::from_iter(rest)));
    }
    Ok(v)
}

/// The value of a call that takes no other argument.
pub(crate) fn only<'a>(args: &'a [JValue], name: &str) -> Result<&'a JValue, Error> {
    match args {
        [v] => Ok(v),
        [] => Err(invalid(format!("{name}: no value to filter"))),
        _ => Err(Error::new(
            ErrorKind::TooManyArguments,
            format!("{name}() takes no arguments"),
        )),
    }
}

/// The value of a call that takes no other argument, as Python's `str()`.
pub(crate) fn only_str(args: &[JValue], name: &str) -> Result<String, Error> {
    only(args, name).map(py_str)
}

/// A template value as JSON (undefined is an error, naming the filter).
pub(crate) fn to_json(v: &JValue, filter: &str) -> Result<serde_json::Value, Error> {
    if v.is_undefined() {
        return Err(invalid(format!("{filter}: the value is undefined")));
    }
    serde_json::to_value(v).map_err(|e| invalid(format!("{filter}: {e}")))
}

/// Filters ansible-core ships (`ansible.builtin`, also reachable as `ansible.legacy`).
/// Jinja2's own filters have no such name in Ansible, so they are not listed.
const BUILTIN_FILTERS: &[&str] = &[
    // core.py
    "b64decode",
    "b64encode",
    "to_uuid",
    "to_json",
    "to_nice_json",
    "from_json",
    "to_yaml",
    "to_nice_yaml",
    "from_yaml",
    "from_yaml_all",
    "basename",
    "dirname",
    "expanduser",
    "expandvars",
    "path_join",
    "realpath",
    "relpath",
    "splitext",
    "win_basename",
    "win_dirname",
    "win_splitdrive",
    "commonpath",
    "normpath",
    "fileglob",
    "bool",
    "to_datetime",
    "strftime",
    "quote",
    "md5",
    "sha1",
    "checksum",
    "password_hash",
    "hash",
    "regex_replace",
    "regex_escape",
    "regex_search",
    "regex_findall",
    "ternary",
    "random",
    "shuffle",
    "mandatory",
    "comment",
    "type_debug",
    "combine",
    "extract",
    "flatten",
    "dict2items",
    "items2dict",
    "subelements",
    "split",
    // mathstuff.py
    "log",
    "pow",
    "root",
    "unique",
    "intersect",
    "difference",
    "symmetric_difference",
    "union",
    "product",
    "permutations",
    "combinations",
    "human_readable",
    "human_to_bytes",
    "rekey_on_member",
    "zip",
    "zip_longest",
    // urls.py, urlsplit.py, encryption.py
    "urldecode",
    "urlsplit",
    "vault",
    "unvault",
];

/// Tests ansible-core ships (core.py, files.py, mathstuff.py, uri.py).
const BUILTIN_TESTS: &[&str] = &[
    "failed",
    "failure",
    "succeeded",
    "success",
    "successful",
    "reachable",
    "unreachable",
    "timedout",
    "changed",
    "change",
    "skipped",
    "skip",
    "finished",
    "started",
    "match",
    "search",
    "regex",
    "version_compare",
    "version",
    "any",
    "all",
    "truthy",
    "falsy",
    "vault_encrypted",
    "vaulted_file",
    "directory",
    "is_dir",
    "file",
    "is_file",
    "link",
    "is_link",
    "exists",
    "link_exists",
    "abs",
    "is_abs",
    "same_file",
    "is_same_file",
    "mount",
    "is_mount",
    "subset",
    "issubset",
    "superset",
    "issuperset",
    "contains",
    "nan",
    "isnan",
    "uri",
    "url",
    "urn",
];

/// A second name for a filter: calls the filter registered as `target`.
pub(crate) fn alias_filter(env: &mut Environment<'static>, name: String, target: &'static str) {
    env.add_filter(name, move |state: &State, args: Rest<JValue>| {
        state.apply_filter(target, &args.0)
    });
}

/// A second name for a test: calls the test registered as `target`.
pub(crate) fn alias_test(env: &mut Environment<'static>, name: String, target: &'static str) {
    env.add_test(name, move |state: &State, args: Rest<JValue>| {
        state.perform_test(target, &args.0)
    });
}

/// Registers every filter and test, then their fully qualified names.
pub(crate) fn register(env: &mut Environment<'static>) {
    jinja::register(env);
    core::register(env);
    datetime::register(env);
    math::register(env);
    urls::register(env);
    encryption::register(env);
    password::register(env);
    yaml_in::register(env);
    testplugins::register(env);
    for name in BUILTIN_FILTERS {
        for collection in ["ansible.builtin", "ansible.legacy"] {
            alias_filter(env, format!("{collection}.{name}"), name);
        }
    }
    for name in BUILTIN_TESTS {
        for collection in ["ansible.builtin", "ansible.legacy"] {
            alias_test(env, format!("{collection}.{name}"), name);
        }
    }
    json_query::register(env);
    ipaddr::register(env);
}

#[cfg(test)]
pub(crate) mod check {
    //! The table-driven checks every filter family uses: an expression evaluated by the
    //! runner's engine against the value (as JSON) ansible-core 2.18.19 gives for it.

    use crate::template::Engine;
    use serde_json::Value;
    use std::sync::OnceLock;

    fn engine() -> &'static Engine {
        static ENGINE: OnceLock<Engine> = OnceLock::new();
        ENGINE.get_or_init(Engine::new)
    }

    /// Evaluates `expr` with `vars` and returns its value as JSON, or the error text.
    pub(crate) fn eval_with(expr: &str, vars: &Value) -> Result<Value, String> {
        let ctx = minijinja::Value::from_serialize(vars);
        let v = engine().eval(expr, &ctx).map_err(|e| e.to_string())?;
        crate::template::to_json(&v, expr).map_err(|e| e.to_string())
    }

    /// Checks each (expression, expected JSON text) pair; all failures are reported.
    pub(crate) fn table(vars: &Value, cases: &[(&str, &str)]) {
        let mut failures = Vec::new();
        for (expr, want) in cases {
            let want: Value = match serde_json::from_str(want) {
                Ok(v) => v,
                Err(e) => {
                    failures.push(format!("{expr}: bad expected JSON {want:?}: {e}"));
                    continue;
                }
            };
            match eval_with(expr, vars) {
                Ok(got) if same(&got, &want) => {}
                Ok(got) => failures.push(format!("{expr}\n   got  {got}\n   want {want}")),
                Err(e) => failures.push(format!("{expr}\n   error {e}\n   want  {want}")),
            }
        }
        assert!(failures.is_empty(), "\n{}", failures.join("\n"));
    }

    /// Checks each (expression, part of the error message) pair: the expression must fail.
    pub(crate) fn errors(vars: &Value, cases: &[(&str, &str)]) {
        let mut failures = Vec::new();
        for (expr, want) in cases {
            match eval_with(expr, vars) {
                Ok(got) => failures.push(format!("{expr}: no error, got {got}")),
                Err(e) if e.contains(want) => {}
                Err(e) => failures.push(format!("{expr}\n   error {e}\n   want  {want:?}")),
            }
        }
        assert!(failures.is_empty(), "\n{}", failures.join("\n"));
    }

    /// Equal values of the same types (an int is not a float); floats within two units
    /// in the last place, as serde_json's reading of the expected text may round once.
    fn same(a: &Value, b: &Value) -> bool {
        match (a, b) {
            (Value::Number(x), Value::Number(y)) if x.is_f64() || y.is_f64() => {
                let (p, q) = (x.as_f64().unwrap_or(0.0), y.as_f64().unwrap_or(0.0));
                x.is_f64() == y.is_f64()
                    && (p == q || (p - q).abs() <= 2.0 * f64::EPSILON * p.abs().max(q.abs()))
            }
            (Value::Number(x), Value::Number(y)) => x == y,
            (Value::Array(x), Value::Array(y)) => {
                x.len() == y.len() && x.iter().zip(y).all(|(p, q)| same(p, q))
            }
            (Value::Object(x), Value::Object(y)) => {
                x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
            }
            _ => a == b,
        }
    }

    /// Prints each expression of `/tmp/h-probe.txt` (one per line) with its value, for
    /// comparing against ansible-core by hand: `cargo test -p rustle-runner --lib
    /// filters::check::probe -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn probe() {
        let text = std::fs::read_to_string("/tmp/h-probe.txt").unwrap_or_default();
        // `nl` is a newline, for building multi-line text inside one line.
        let vars = serde_json::json!({"nl": "\n"});
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            match eval_with(line, &vars) {
                Ok(v) => println!("{v}"),
                Err(e) => println!("ERROR: {}", e.replace('\n', " ")),
            }
        }
    }
}
