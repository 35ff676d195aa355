//! Variables whose values are templates themselves, rendered when a task uses them.
//!
//! Ansible templates variables lazily: `app_dir: "{{ base }}/app"` in role vars, or
//! `root="{{ out_root }}/web1"` in an inventory, means the rendered text wherever
//! `app_dir` or `root` is used, with whatever `base` is in scope there. The executor hands
//! templates a [`LazyVars`] context instead of a plain map when any variable holds
//! template syntax; a plan without such variables keeps the plain (faster) map.
//!
//! Unsafe text (`{"__ansible_unsafe": ...}`: Ansible's `!unsafe`, and the results and
//! facts the executor marks so) is never rendered: it reaches templates as the text it
//! is, and a variable rendered from it stays unsafe.

use crate::events::{Answer, Channel, Request, RequestKind, no_channel_reason};
use crate::plan::Vars;
use crate::template::{Engine, is_template, to_jvalue, unsafe_inner};
use minijinja::value::{Enumerator, Object, ObjectRepr, Value as JValue};
use serde_json::Value;
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// How deep variables may refer to variables that refer to variables; Ansible stops
/// recursive templating too. Deeper (or circular) references stay unrendered.
const MAX_DEPTH: usize = 32;

thread_local! {
    /// The variables being rendered on this thread, innermost last: a variable that
    /// refers back to itself (directly or in a cycle) is given unrendered.
    static RESOLVING: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
}

/// A task's variables as a template context that renders template-valued variables on
/// first use (and remembers the result for the task).
#[derive(Debug)]
pub struct LazyVars {
    vars: Vars,
    /// Values that are already template values and rank above `vars` (magic variables,
    /// `hostvars`); templates in `vars` see them too.
    globals: Vec<(String, JValue)>,
    engine: Arc<Engine>,
    rendered: Mutex<BTreeMap<String, Option<JValue>>>,
    /// A value whose template names something undefined is given as it is, not
    /// undefined: Ansible's `hostvars` templates with `fail_on_undefined=False`.
    lenient: bool,
}

/// True when any string inside `v` holds template syntax (unsafe text does not count).
fn has_template(v: &Value) -> bool {
    if unsafe_inner(v).is_some() {
        return false;
    }
    match v {
        Value::String(s) => is_template(s),
        Value::Array(items) => items.iter().any(has_template),
        Value::Object(map) => map.values().any(has_template),
        _ => false,
    }
}

/// The template context for `vars`: lazy when some value is a template, else the plain map.
pub fn context(vars: &Vars, engine: &Arc<Engine>) -> JValue {
    context_with(vars, &[], engine)
}

/// [`context`] with `globals` over `vars`: values that are template values already
/// (magic variables, `hostvars`), which win over a variable of the same name.
pub fn context_with(vars: &Vars, globals: &[(String, JValue)], engine: &Arc<Engine>) -> JValue {
    lazy_context(vars, globals, engine, false)
}

/// [`context_with`], `lenient` as [`LazyVars`] says.
fn lazy_context(
    vars: &Vars,
    globals: &[(String, JValue)],
    engine: &Arc<Engine>,
    lenient: bool,
) -> JValue {
    if vars.values().any(has_template) {
        JValue::from_object(LazyVars {
            vars: vars.clone(),
            globals: globals.to_vec(),
            engine: Arc::clone(engine),
            rendered: Mutex::new(BTreeMap::new()),
            lenient,
        })
    } else {
        let all: Vec<(&str, JValue)> = vars
            .iter()
            .map(|(k, v)| (k.as_str(), to_jvalue(v)))
            .chain(globals.iter().map(|(k, v)| (k.as_str(), v.clone())))
            .collect();
        // Ansible's `vars`: every variable the task sees, as one mapping
        // (`vars[name]`, `name in vars`).
        let own = JValue::from_iter(all.iter().cloned());
        if vars.contains_key(VARS) || globals.iter().any(|(k, _)| k == VARS) {
            return own;
        }
        JValue::from_iter(all.into_iter().chain(std::iter::once((VARS, own))))
    }
}

/// The name of Ansible's variable holding all the others.
const VARS: &str = "vars";

/// Ansible's `hostvars`: every host's variables by its inventory name, each rendered
/// lazily in that host's own context. This host's entry is what it knows of itself
/// (inventory variables, facts, `set_fact` and registered values); another host's is
/// its inventory variables as the packer carried them (see `Shared::hostvars`).
#[derive(Debug)]
pub struct HostVars {
    own_name: String,
    own: Vars,
    others: Arc<crate::plan::Shared>,
    globals: Vec<(String, JValue)>,
    engine: Arc<Engine>,
    seen: Mutex<BTreeMap<String, JValue>>,
    /// Where other hosts' facts and registered values come from, when the deploy
    /// shares them (`Play::number`); without, another host has its inventory only.
    peers: Option<Peers>,
    /// Hosts `add_host` added or gave variables, with those variables (and their
    /// `group_names`), over what the inventory has of them.
    added: Arc<BTreeMap<String, Vars>>,
}

/// Other hosts' variables as the deployer gave them at one point of a play, by host:
/// the answer for the same point is the same, so it is kept until this host finishes
/// its next task.
#[derive(Debug, Clone, Default)]
pub struct PeerCache(Arc<Mutex<BTreeMap<String, Result<Vars, String>>>>);

impl PeerCache {
    /// Forgets every answer (this host has moved on).
    pub fn clear(&self) {
        if let Ok(mut cache) = self.0.lock() {
            cache.clear();
        }
    }
}

/// How `hostvars` of another host reaches what that host learned while running
/// (facts, registered and `set_fact` values): a `hostvars` request to the deployer,
/// asked only when a template touches that host.
#[derive(Debug, Clone)]
pub struct Peers {
    /// The way to the deployer (`None`: a runner run by hand).
    pub channel: Option<Arc<dyn Channel>>,
    /// The index of the current play in this host's plan.
    pub play: usize,
    /// Where this host stands in the play (the path of its task).
    pub at: Vec<u32>,
    /// Answers already given at this point.
    pub cache: PeerCache,
}

impl Peers {
    /// What `host` learned while running, as this host's task may see it.
    fn learned(&self, host: &str) -> Result<Vars, String> {
        if let Ok(cache) = self.cache.0.lock()
            && let Some(known) = cache.get(host)
        {
            return known.clone();
        }
        let answer = match &self.channel {
            None => Err(format!(
                "needs the deployer (the controller channel), and this run has none: {}",
                no_channel_reason(RequestKind::Hostvars)
            )),
            Some(channel) => {
                let mut request = Request::new(RequestKind::Hostvars, String::new(), self.play);
                request.host = Some(host.to_string());
                request.at = Some(self.at.clone());
                match channel.request(request) {
                    Ok(Answer { error: Some(e), .. }) | Err(e) => Err(e),
                    Ok(Answer {
                        vars: Some(Value::Object(vars)),
                        ..
                    }) => Ok(vars),
                    Ok(_) => Err("the deployer's answer holds no variables".into()),
                }
            }
        };
        if let Ok(mut cache) = self.cache.0.lock() {
            cache.insert(host.to_string(), answer.clone());
        }
        answer
    }
}

/// Another host's variables when what it learned while running cannot be had: its
/// inventory variables, and for any other name an error saying why.
#[derive(Debug)]
struct Partial {
    inner: JValue,
    host: String,
    why: String,
}

impl Object for Partial {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Map
    }

    fn get_value(self: &Arc<Self>, key: &JValue) -> Option<JValue> {
        match self.inner.get_item(key) {
            Ok(v) if !v.is_undefined() => Some(v),
            _ => Some(JValue::from(minijinja::Error::new(
                minijinja::ErrorKind::InvalidOperation,
                format!("hostvars['{}']['{key}']: {}", self.host, self.why),
            ))),
        }
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        match self.inner.try_iter() {
            Ok(keys) => Enumerator::Values(keys.collect()),
            Err(_) => Enumerator::Empty,
        }
    }
}

impl HostVars {
    /// `hostvars` for a host named `own_name` whose variables are `own`; other hosts
    /// come from `shared`, and every host's view has `globals` (magic variables).
    pub fn new(
        own_name: &str,
        own: Vars,
        shared: &Arc<crate::plan::Shared>,
        globals: Vec<(String, JValue)>,
        engine: &Arc<Engine>,
    ) -> HostVars {
        HostVars {
            own_name: own_name.to_string(),
            own,
            others: Arc::clone(shared),
            globals,
            engine: Arc::clone(engine),
            seen: Mutex::new(BTreeMap::new()),
            peers: None,
            added: Arc::default(),
        }
    }

    /// The hosts `add_host` added or changed, with their variables.
    pub fn with_added(mut self, added: Arc<BTreeMap<String, Vars>>) -> HostVars {
        self.added = added;
        self
    }

    /// Other hosts' entries get what they learned while running from `peers`.
    pub fn with_peers(mut self, peers: Peers) -> HostVars {
        self.peers = Some(peers);
        self
    }
}

impl Object for HostVars {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Map
    }

    fn get_value(self: &Arc<Self>, key: &JValue) -> Option<JValue> {
        let name = key.as_str()?;
        if let Ok(seen) = self.seen.lock()
            && let Some(v) = seen.get(name)
        {
            return Some(v.clone());
        }
        // `hostvars[h].x` whose template names what h's variables lack is its text
        // (HostVarsVars templates with fail_on_undefined=False).
        let value = if name == self.own_name {
            lazy_context(&self.own, &self.globals, &self.engine, true)
        } else {
            let merged;
            let inventory = match (self.others.hostvars.get(name), self.added.get(name)) {
                (Some(inventory), None) => inventory,
                (None, None) => return None,
                (inventory, Some(added)) => {
                    let mut vars = inventory.cloned().unwrap_or_default();
                    vars.extend(added.iter().map(|(k, v)| (k.clone(), v.clone())));
                    merged = vars;
                    &merged
                }
            };
            // A host only `add_host` knows runs nowhere: it has what it was given.
            let peers = self
                .peers
                .as_ref()
                .filter(|_| self.others.hostvars.contains_key(name));
            // This host's magic variables are every host's, but for those another
            // host has of its own (`group_names`, `inventory_hostname`).
            let globals: Vec<(String, JValue)> = self
                .globals
                .iter()
                .filter(|(k, _)| !inventory.contains_key(k))
                .cloned()
                .collect();
            match peers.map(|p| p.learned(name)) {
                None => lazy_context(inventory, &globals, &self.engine, true),
                Some(Ok(learned)) => {
                    let mut vars = inventory.clone();
                    vars.extend(learned);
                    lazy_context(&vars, &globals, &self.engine, true)
                }
                Some(Err(why)) => JValue::from_object(Partial {
                    inner: lazy_context(inventory, &globals, &self.engine, true),
                    host: name.to_string(),
                    why,
                }),
            }
        };
        if let Ok(mut seen) = self.seen.lock() {
            seen.insert(name.to_string(), value.clone());
        }
        Some(value)
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        let mut names: Vec<&str> = self.others.hostvars.keys().map(String::as_str).collect();
        for name in std::iter::once(&self.own_name).chain(self.added.keys()) {
            if !names.contains(&name.as_str()) {
                names.push(name);
            }
        }
        names.sort_unstable();
        Enumerator::Values(names.into_iter().map(JValue::from).collect())
    }
}

impl LazyVars {
    fn render(self: &Arc<Self>, name: &str, raw: &Value) -> Option<JValue> {
        let cycle = RESOLVING.with(|r| {
            let r = r.borrow();
            r.len() >= MAX_DEPTH || r.iter().any(|n| n == name)
        });
        if cycle {
            return Some(to_jvalue(raw));
        }
        RESOLVING.with(|r| r.borrow_mut().push(name.to_string()));
        let ctx = JValue::from_dyn_object(Arc::clone(self));
        // A variable that is a host's variables (`{{ hostvars[inventory_hostname] }}`)
        // stays lazy: turning it into plain data would render every member, including
        // ones that refer back to the variable being rendered.
        if let Value::String(text) = raw
            && let Some(obj) = self.engine.lone_lazy_object(text, &ctx)
        {
            RESOLVING.with(|r| r.borrow_mut().pop());
            return Some(obj);
        }
        // Unsafe text the value refers to stays unsafe in what it renders to.
        let out = self.engine.render_value_keeping_unsafe(raw, &ctx);
        RESOLVING.with(|r| r.borrow_mut().pop());
        // A variable whose template fails (it names something undefined) is itself
        // undefined where it is used, so `x is defined` and `default()` see through it;
        // in `hostvars` it is its text.
        match out {
            Ok(v) => Some(to_jvalue(&v)),
            Err(e) if self.lenient && e.undefined => Some(to_jvalue(raw)),
            Err(_) => None,
        }
    }
}

impl Object for LazyVars {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Map
    }

    fn get_value(self: &Arc<Self>, key: &JValue) -> Option<JValue> {
        let name = key.as_str()?;
        if let Some((_, v)) = self.globals.iter().rev().find(|(k, _)| k == name) {
            return Some(v.clone());
        }
        // Ansible's `vars`: these variables themselves, rendered as they are used.
        if name == VARS && !self.vars.contains_key(VARS) {
            return Some(JValue::from_dyn_object(Arc::clone(self)));
        }
        let raw = self.vars.get(name)?;
        if !has_template(raw) {
            return Some(to_jvalue(raw));
        }
        if let Ok(cache) = self.rendered.lock()
            && let Some(done) = cache.get(name)
        {
            return done.clone();
        }
        let value = self.render(name, raw);
        if let Ok(mut cache) = self.rendered.lock() {
            cache.insert(name.to_string(), value.clone());
        }
        value
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        let mut keys: Vec<&str> = self.vars.keys().map(String::as_str).collect();
        keys.extend(
            self.globals
                .iter()
                .map(|(k, _)| k.as_str())
                .filter(|k| !self.vars.contains_key(*k)),
        );
        Enumerator::Values(keys.into_iter().map(JValue::from).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn render(vars: Value, template: &str) -> Result<String, crate::template::TemplateError> {
        let engine = Arc::new(Engine::new());
        let ctx = context(vars.as_object().unwrap(), &engine);
        engine.render_str(template, &ctx)
    }

    #[test]
    fn variables_made_of_variables_render_where_used() {
        let vars = json!({
            "out_root": "/srv",
            "root": "{{ out_root }}/web1",
            "conf": "{{ root }}/app.conf",
            "ports": ["{{ base_port }}", "{{ base_port + 1 }}"],
            "base_port": 8000,
        });
        assert_eq!(
            render(vars.clone(), "{{ conf }}").unwrap(),
            "/srv/web1/app.conf"
        );
        // A lone expression keeps its type inside lists too.
        assert_eq!(render(vars, "{{ ports | sum }}").unwrap(), "16001");
    }

    #[test]
    fn a_hostvars_value_naming_what_the_host_lacks_is_its_text() {
        // loops target (issue 64169): `__foo: ["foo{{ version_64169 }}"]` from
        // include_vars, with `version_64169` a play variable: hostvars renders in the
        // host's variables only, with fail_on_undefined=False, so the text stays.
        let engine = Arc::new(Engine::new());
        let own = json!({"__foo": ["foo{{ version_64169 }}"], "n": 1, "m": "{{ n + 1 }}"})
            .as_object()
            .cloned()
            .unwrap();
        let shared = Arc::new(crate::plan::Shared::default());
        let hv = JValue::from_object(HostVars::new("h", own, &shared, Vec::new(), &engine));
        let vars = json!({"version_64169": "1.0", "x": "{{ missing }}"});
        let globals = vec![("hostvars".to_string(), hv)];
        let ctx = context_with(vars.as_object().unwrap(), &globals, &engine);
        assert_eq!(
            engine
                .render_str("{{ hostvars.h.__foo[0] }}", &ctx)
                .unwrap(),
            "foo{{ version_64169 }}"
        );
        assert_eq!(engine.render_str("{{ hostvars.h.m }}", &ctx).unwrap(), "2");
        // Elsewhere such a variable is undefined where it is used.
        assert!(engine.render_str("{{ x }}", &ctx).unwrap_err().undefined);
    }

    #[test]
    fn a_variable_holding_a_hosts_variables_renders_only_the_members_used() {
        // filter_mathstuff: `all_vars: "{{ hostvars[inventory_hostname] }}"`,
        // `test_var: "{{ all_vars.foo }}"`, and a variable that fails while
        // `test_var` is being rendered (it refers back to it).
        let engine = Arc::new(Engine::new());
        let own = json!({"foo": "test", "later": "{{ test_var | int + nope }}"})
            .as_object()
            .cloned()
            .unwrap();
        let shared = Arc::new(crate::plan::Shared::default());
        let hv = JValue::from_object(HostVars::new("h", own, &shared, Vec::new(), &engine));
        let globals = vec![
            ("hostvars".to_string(), hv),
            ("inventory_hostname".to_string(), JValue::from("h")),
        ];
        let vars = json!({
            "all_vars": "{{ hostvars[inventory_hostname] }}",
            "test_var": "{{ all_vars.foo }}",
        });
        let ctx = context_with(vars.as_object().unwrap(), &globals, &engine);
        assert_eq!(engine.render_str("{{ test_var }}", &ctx).unwrap(), "test");
    }

    #[test]
    fn cycles_and_undefined_references_do_not_hang_or_leak_templates() {
        let vars = json!({"a": "{{ b }}", "b": "{{ a }}", "c": "{{ nope }}/x"});
        // The cycle stops: whatever comes out, it terminates.
        let _ = render(vars.clone(), "{{ a }}");
        assert_eq!(render(vars.clone(), "{{ c is defined }}").unwrap(), "False");
        assert_eq!(
            render(vars.clone(), "{{ c | default('dflt') }}").unwrap(),
            "dflt"
        );
        assert!(render(vars, "{{ c }}").is_err());
    }
}
