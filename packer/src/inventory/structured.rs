//! The YAML inventory format and the JSON formats (`ansible-inventory --list` / inventory
//! scripts, and the YAML structure written as JSON).
//!
//! Both are read into an order-preserving [`Node`] tree first: `serde_json::Map` is sorted
//! in this workspace, and hosts must come out in file order.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

use super::{Builder, Inventory, InventoryError, Vars, pattern};

/// A parsed YAML/JSON value whose mappings keep their order.
#[derive(Debug, Clone, PartialEq)]
enum Node {
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    Map(Vec<(String, Node)>),
    /// A value already in the plan's JSON form: `!unsafe` text as its marker.
    Json(Value),
}

impl Node {
    /// A scalar as a name (host, group or key); None for sequences, mappings and null.
    fn as_name(&self) -> Option<String> {
        match self {
            Node::Str(s) => Some(s.clone()),
            Node::Bool(b) => Some(b.to_string()),
            Node::Int(n) => Some(n.to_string()),
            Node::UInt(n) => Some(n.to_string()),
            Node::Float(f) => Some(f.to_string()),
            Node::Null | Node::Seq(_) | Node::Map(_) | Node::Json(_) => None,
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            Node::Null => "null",
            Node::Bool(_) => "a boolean",
            Node::Int(_) | Node::UInt(_) | Node::Float(_) => "a number",
            Node::Str(_) => "a string",
            Node::Seq(_) => "a list",
            Node::Map(_) => "a mapping",
            Node::Json(_) => "an !unsafe value",
        }
    }

    fn into_value(self) -> Value {
        match self {
            Node::Null => Value::Null,
            Node::Bool(b) => Value::Bool(b),
            Node::Int(n) => Value::from(n),
            Node::UInt(n) => Value::from(n),
            // JSON has no NaN or infinity; keep YAML's `.nan`/`.inf` readable as text.
            Node::Float(f) => serde_json::Number::from_f64(f)
                .map_or_else(|| Value::String(f.to_string()), Value::Number),
            Node::Str(s) => Value::String(s),
            Node::Seq(items) => Value::Array(items.into_iter().map(Node::into_value).collect()),
            Node::Map(entries) => Value::Object(
                entries
                    .into_iter()
                    .map(|(k, v)| (k, v.into_value()))
                    .collect(),
            ),
            Node::Json(v) => v,
        }
    }

    /// A value read by [`crate::ansible_yaml`] (YAML as Ansible reads it), in file order.
    fn from_yaml(value: serde_norway::Value) -> Result<Node, String> {
        use serde_norway::Value as Yaml;
        Ok(match value {
            Yaml::Null => Node::Null,
            Yaml::Bool(b) => Node::Bool(b),
            Yaml::Number(n) => {
                if let Some(i) = n.as_i64() {
                    Node::Int(i)
                } else if let Some(u) = n.as_u64() {
                    Node::UInt(u)
                } else {
                    Node::Float(n.as_f64().unwrap_or(f64::NAN))
                }
            }
            Yaml::String(s) => Node::Str(s),
            Yaml::Sequence(items) => Node::Seq(
                items
                    .into_iter()
                    .map(Node::from_yaml)
                    .collect::<Result<_, _>>()?,
            ),
            Yaml::Mapping(map) => {
                let mut entries = Vec::with_capacity(map.len());
                for (k, v) in map {
                    let key = crate::ansible_yaml::key_text(&k).ok_or_else(|| {
                        "mapping keys must be scalars, got a null, list or mapping".to_string()
                    })?;
                    entries.push((key, Node::from_yaml(v)?));
                }
                Node::Map(entries)
            }
            tagged @ Yaml::Tagged(_) => Node::Json(crate::ansible_yaml::to_json(&tagged)?),
        })
    }
}

/// Reads YAML text as Ansible's inventory plugin does (its YAML 1.1 loader).
fn load_yaml(text: &str) -> Result<Node, (Option<usize>, String)> {
    let value = crate::ansible_yaml::load(text).map_err(|e| (e.line, e.msg))?;
    Node::from_yaml(value).map_err(|e| (None, e))
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Node, D::Error> {
        deserializer.deserialize_any(NodeVisitor)
    }
}

struct NodeVisitor;

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = Node;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a YAML or JSON value")
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Node, E> {
        Ok(Node::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Node, E> {
        Ok(Node::Int(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Node, E> {
        Ok(Node::UInt(v))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Node, E> {
        Ok(Node::Float(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Node, E> {
        Ok(Node::Str(v.to_owned()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Node, E> {
        Ok(Node::Str(v))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Node, E> {
        Ok(Node::Null)
    }
    fn visit_none<E: de::Error>(self) -> Result<Node, E> {
        Ok(Node::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Node, D::Error> {
        Node::deserialize(d)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Node::Seq(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
        let mut entries = Vec::new();
        while let Some((key, value)) = map.next_entry::<Node, Node>()? {
            let key = key.as_name().ok_or_else(|| {
                de::Error::custom(format!("mapping keys must be scalars, got {}", key.kind()))
            })?;
            entries.push((key, value));
        }
        Ok(Node::Map(entries))
    }
}

/// Whether `text` is a YAML mapping of groups that have `hosts`, `children` or `vars`.
pub(super) fn looks_like_yaml_inventory(text: &str) -> bool {
    let Ok(Node::Map(groups)) = load_yaml(text) else {
        return false;
    };
    groups.iter().any(|(_, group)| match group {
        Node::Map(keys) => keys
            .iter()
            .any(|(k, _)| matches!(k.as_str(), "hosts" | "children" | "vars")),
        _ => false,
    })
}

/// Parses a YAML inventory.
pub(super) fn parse_yaml(text: &str, source: &str) -> Result<Inventory, InventoryError> {
    read_yaml(text, source)?.finish()
}

/// Reads a YAML inventory: its hosts and groups, inheritance not resolved yet.
pub(super) fn read_yaml(text: &str, source: &str) -> Result<Builder, InventoryError> {
    let root = load_yaml(text).map_err(|(line, msg)| InventoryError::Parse {
        source_name: source.to_owned(),
        line,
        msg: format!("invalid YAML: {msg}"),
    })?;
    build(root, source)
}

/// Parses a JSON inventory in either layout.
pub(super) fn parse_json(text: &str, source: &str) -> Result<Inventory, InventoryError> {
    read_json(text, source)?.finish()
}

/// Reads a JSON inventory: its hosts and groups, inheritance not resolved yet.
pub(super) fn read_json(text: &str, source: &str) -> Result<Builder, InventoryError> {
    let root = serde_json::from_str::<Node>(text).map_err(|e| InventoryError::Parse {
        source_name: source.to_owned(),
        line: Some(e.line()),
        msg: format!("invalid JSON: {e}"),
    })?;
    build(root, source)
}

/// Walks the tree: top-level keys are groups (`_meta` holds script-style host variables).
/// Both layouts share the walker: a list under `hosts`/`children` is the script layout,
/// a mapping is the YAML layout.
fn build(root: Node, source: &str) -> Result<Builder, InventoryError> {
    let mut b = Builder::new(source);
    let groups = match root {
        Node::Map(groups) => groups,
        Node::Null => return Err(b.parse_error(None, "the inventory is empty")),
        other => {
            return Err(b.parse_error(
                None,
                format!(
                    "expected a mapping of group names at the top, got {}",
                    other.kind()
                ),
            ));
        }
    };
    let mut meta = None;
    for (name, group) in groups {
        if name == "_meta" {
            meta = Some(group);
        } else {
            walk_group(&mut b, &name, group, &name)?;
        }
    }
    if let Some(meta) = meta {
        walk_meta(&mut b, meta)?;
    }
    Ok(b)
}

/// Reads one group; `path` (like `all.children.web`) names it in errors, since the YAML
/// and JSON parsers give no line numbers once the tree is built.
fn walk_group(b: &mut Builder, name: &str, group: Node, path: &str) -> Result<(), InventoryError> {
    b.add_group(name);
    let entries = match group {
        Node::Null => return Ok(()),
        // Script shorthand: `"group": ["host1", "host2"]`.
        Node::Seq(hosts) => return add_host_list(b, name, hosts, path),
        Node::Map(entries) => entries,
        other => {
            return Err(b.parse_error(
                None,
                format!("group at {path}: expected a mapping, got {}", other.kind()),
            ));
        }
    };
    for (key, value) in entries {
        let at = format!("{path}.{key}");
        match (key.as_str(), value) {
            (_, Node::Null) => {}
            ("hosts", Node::Seq(hosts)) => add_host_list(b, name, hosts, &at)?,
            ("hosts", Node::Map(hosts)) => {
                for (host, vars) in hosts {
                    let vars = to_vars(b, vars, &format!("{at}.{host}"))?;
                    let range_error = |reason| InventoryError::HostRange {
                        source_name: b.source.clone(),
                        line: None,
                        pattern: host.clone(),
                        reason,
                    };
                    let (base, port) = pattern::split_port(&host).map_err(range_error)?;
                    let names = pattern::expand_host_range(base).map_err(range_error)?;
                    let mut vars_with_port = Vars::new();
                    if let Some(port) = port {
                        vars_with_port.insert("ansible_port".into(), Value::from(port));
                    }
                    vars_with_port.extend(vars);
                    for expanded in names {
                        b.add_host(&expanded, Some(name), vars_with_port.clone());
                    }
                }
            }
            ("vars", vars @ Node::Map(_)) => {
                for (k, v) in to_vars(b, vars, &at)? {
                    b.set_group_var(name, k, v);
                }
            }
            ("children", Node::Seq(children)) => {
                for child in children {
                    let child = child.as_name().ok_or_else(|| {
                        b.parse_error(None, format!("{at}: child group names must be strings"))
                    })?;
                    b.add_child(name, &child, None)?;
                }
            }
            ("children", Node::Map(children)) => {
                for (child, def) in children {
                    b.add_child(name, &child, None)?;
                    walk_group(b, &child, def, &format!("{at}.{child}"))?;
                }
            }
            ("hosts" | "vars" | "children", other) => {
                return Err(b.parse_error(None, format!("{at}: unexpected {}", other.kind())));
            }
            (other, _) => {
                return Err(b.parse_error(
                    None,
                    format!(
                        "group at {path}: unexpected key '{other}' (expected hosts, vars or children)"
                    ),
                ));
            }
        }
    }
    Ok(())
}

fn add_host_list(
    b: &mut Builder,
    group: &str,
    hosts: Vec<Node>,
    at: &str,
) -> Result<(), InventoryError> {
    for host in hosts {
        let host = host
            .as_name()
            .ok_or_else(|| b.parse_error(None, format!("{at}: host names must be strings")))?;
        b.add_host(&host, Some(group), Vars::new());
    }
    Ok(())
}

/// Reads `_meta: {hostvars: {host: {vars}}}`.
fn walk_meta(b: &mut Builder, meta: Node) -> Result<(), InventoryError> {
    let Node::Map(entries) = meta else {
        return Err(b.parse_error(
            None,
            format!("_meta: expected a mapping, got {}", meta.kind()),
        ));
    };
    for (key, value) in entries {
        match (key.as_str(), value) {
            ("hostvars", Node::Map(hosts)) => {
                for (host, vars) in hosts {
                    let vars = to_vars(b, vars, &format!("_meta.hostvars.{host}"))?;
                    b.add_host(&host, None, vars);
                }
            }
            ("hostvars", Node::Null) => {}
            ("hostvars", other) => {
                return Err(b.parse_error(
                    None,
                    format!("_meta.hostvars: expected a mapping, got {}", other.kind()),
                ));
            }
            // Other `_meta` keys are informational in the script protocol.
            _ => {}
        }
    }
    Ok(())
}

/// Converts a mapping of variables, checking each name; null means no variables.
fn to_vars(b: &Builder, node: Node, at: &str) -> Result<Vars, InventoryError> {
    match node {
        Node::Null => Ok(Vars::new()),
        Node::Map(entries) => {
            let mut vars = Vars::new();
            for (k, v) in entries {
                b.check_var_name(&k, None)?;
                vars.insert(k, v.into_value());
            }
            Ok(vars)
        }
        other => Err(b.parse_error(
            None,
            format!(
                "{at}: expected a mapping of variables, got {}",
                other.kind()
            ),
        )),
    }
}
