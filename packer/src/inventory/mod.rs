//! Ansible inventories (INI, YAML, JSON): hosts, groups, merged variables and host patterns.
//!
//! The packer needs, for every host named in a plan, where to connect (address, port, user,
//! key, connection type) and which variables apply. This module loads the three inventory
//! formats Ansible reads from a file, merges variables with Ansible's precedence and resolves
//! Ansible host patterns (`webservers:&prod:!web2`), all without running Ansible.
//!
//! Deliberate differences from Ansible, each chosen to refuse mistakes rather than guess:
//! - INI values are typed the same way in host lines and in `[g:vars]` sections (Ansible's
//!   code does the same, though its documentation says `:vars` values stay strings): integers
//!   without leading zeros, floats, `true`/`false`/`True`/`False`, `None`, and unquoted JSON
//!   lists or objects. A quoted value always stays a string (`port="22"` is `"22"`), so a
//!   quote is the way to force a string.
//! - `[g:vars]` for a group that has no other section creates the group (Ansible refuses);
//!   a `[g:children]` entry naming a group that has no section anywhere is refused, as in
//!   Ansible, because it is almost always a typo.
//! - Unknown keys in a YAML/JSON group (anything but `hosts`, `vars`, `children`) are
//!   refused, where Ansible only warns: a forgotten `hosts:` level would otherwise silently
//!   leave a group empty.
//! - Hosts that appear only in a JSON `_meta.hostvars` are kept (as ungrouped hosts).
//! - `~regex` host patterns match host and group names with a regular expression
//!   subset (see `pattern.rs`).
//!
//! `group_vars/` and `host_vars/` beside the inventory file are read by [`Inventory::load`]
//! (and beside the playbook with [`Inventory::add_vars_dir`]), merged with Ansible's
//! precedence; see `vars_dirs.rs`. `--limit` is [`Inventory::set_limit`].

mod ini;
mod pattern;
mod structured;
mod vars_dirs;

pub use vars_dirs::VarsDir;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::fmt;
use std::path::{Path, PathBuf};

use rustle_runner::hostpattern;
use serde_json::Value;

/// Variables of a host or group, as JSON values.
pub type Vars = serde_json::Map<String, Value>;

/// Host names Ansible answers for with an implicit local host when the inventory lacks them.
const IMPLICIT_LOCALHOSTS: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

/// The Python an implicit local host gets as `ansible_python_interpreter`: Ansible gives it
/// the interpreter running ansible-playbook; here, the first `python3` (then `python`) on
/// the deployer's `PATH`, or `/usr/bin/python3`. A local host is the controller, so this
/// is a path on the machine the tasks run on.
fn controller_python() -> String {
    let path = std::env::var_os("PATH").unwrap_or_default();
    ["python3", "python"]
        .iter()
        .find_map(|name| {
            std::env::split_paths(&path)
                .filter(|d| d.is_absolute())
                .map(|d| d.join(name))
                .find(|p| p.is_file())
        })
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "/usr/bin/python3".to_string())
}

/// Connection variables that must be strings (numbers are accepted and converted, since a
/// YAML user name `1000` or host `10` is plausible; anything else is refused).
const STRING_CONNECTION_VARS: [&str; 7] = [
    "ansible_host",
    "ansible_ssh_host",
    "ansible_user",
    "ansible_ssh_user",
    "ansible_connection",
    "ansible_ssh_private_key_file",
    "ansible_private_key_file",
];

/// What a connection variable given as a `!vault` value without the vault password says.
const NEEDS_PASSWORD: &str =
    "it is encrypted with Ansible Vault: give the password with --vault-password-file FILE";

/// Why an inventory could not be loaded. Every variant names the file (or the name given
/// to a `parse_*` function) and, where the format allows, the line.
#[derive(Debug, thiserror::Error)]
pub enum InventoryError {
    /// The inventory file could not be read.
    #[error("cannot read inventory {}: {source}", path.display())]
    Io {
        /// The file that could not be read.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The text is not a valid inventory (syntax or structure).
    #[error("{}: {msg}", at(source_name, *line))]
    Parse {
        /// The file (or name given to a `parse_*` function).
        source_name: String,
        /// 1-based line, when the format reports one.
        line: Option<usize>,
        /// What is wrong.
        msg: String,
    },
    /// A host name range like `web[05:01]` cannot be expanded.
    #[error("{}: invalid host range in '{pattern}': {reason}", at(source_name, *line))]
    HostRange {
        /// The file (or name given to a `parse_*` function).
        source_name: String,
        /// 1-based line, when the format reports one.
        line: Option<usize>,
        /// The host name as written.
        pattern: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A variable name is not an identifier (letters, digits, `_`, not starting with a digit).
    #[error("{}: invalid variable name '{name}' (must be letters, digits and '_', not starting with a digit)", at(source_name, *line))]
    InvalidVarName {
        /// The file (or name given to a `parse_*` function).
        source_name: String,
        /// 1-based line, when the format reports one.
        line: Option<usize>,
        /// The offending name.
        name: String,
    },
    /// Groups are their own ancestors through `children`.
    #[error("{}: cycle in group children: {}", at(source_name, *line), cycle.join(" -> "))]
    Cycle {
        /// The file (or name given to a `parse_*` function).
        source_name: String,
        /// The line of the `children` entry that closes the cycle, when known.
        line: Option<usize>,
        /// The groups on the cycle, parent first, the first group repeated at the end.
        cycle: Vec<String>,
    },
    /// A `group_vars`/`host_vars` file could not be read.
    #[error("{}: {msg}", at(&path.display().to_string(), *line))]
    VarsFile {
        /// The file.
        path: PathBuf,
        /// 1-based line, when known.
        line: Option<usize>,
        /// What is wrong.
        msg: String,
    },
    /// Vaulted content that could not be opened.
    #[error(transparent)]
    Vault(#[from] crate::vault::VaultError),
    /// `--limit` selects no host.
    #[error("--limit '{0}' matches no host of the inventory")]
    LimitMatchesNothing(String),
    /// A connection variable of a host has a value that cannot be used.
    #[error("{source_name}: host '{host}': variable {var}: {msg}")]
    HostVar {
        /// The file (or name given to a `parse_*` function).
        source_name: String,
        /// The host whose merged variables are wrong.
        host: String,
        /// The variable.
        var: String,
        /// What is wrong with it.
        msg: String,
    },
}

/// Formats "file:line" or "file" for error messages.
fn at(source_name: &str, line: Option<usize>) -> String {
    match line {
        Some(line) => format!("{source_name}:{line}"),
        None => source_name.to_owned(),
    }
}

/// One inventory host with its variables merged by Ansible's precedence.
#[derive(Debug, Clone, PartialEq)]
pub struct Host {
    /// The inventory name (also the address unless `ansible_host` is set).
    pub name: String,
    /// Variables merged from `all`, its groups (by depth, priority, name) and the host itself.
    pub vars: Vars,
    /// Every group the host is in, ancestors included, sorted, without `all`. A host in no
    /// other group is in `ungrouped`, as in Ansible's `group_names`.
    pub groups: Vec<String>,
}

impl Host {
    fn str_var(&self, names: &[&str]) -> Option<&str> {
        names
            .iter()
            .find_map(|name| self.vars.get(*name).and_then(Value::as_str))
    }

    /// The address to connect to: `ansible_host` (or the older `ansible_ssh_host`), else the name.
    pub fn address(&self) -> &str {
        self.str_var(&["ansible_host", "ansible_ssh_host"])
            .unwrap_or(&self.name)
    }

    /// The SSH port from `ansible_port` (or `ansible_ssh_port`), an integer or numeric string.
    pub fn port(&self) -> Option<u16> {
        ["ansible_port", "ansible_ssh_port"]
            .iter()
            .find_map(|name| self.vars.get(*name).and_then(port_value))
    }

    /// The remote user from `ansible_user` (or the older `ansible_ssh_user`).
    pub fn user(&self) -> Option<&str> {
        self.str_var(&["ansible_user", "ansible_ssh_user"])
    }

    /// The connection type from `ansible_connection`; `ssh` when unset.
    pub fn connection(&self) -> &str {
        self.str_var(&["ansible_connection"]).unwrap_or("ssh")
    }

    /// The private key from `ansible_ssh_private_key_file` or `ansible_private_key_file`.
    pub fn private_key_file(&self) -> Option<&str> {
        self.str_var(&["ansible_ssh_private_key_file", "ansible_private_key_file"])
    }

    /// Whether the host is reached without SSH (`ansible_connection=local`).
    pub fn is_local(&self) -> bool {
        self.connection() == "local"
    }
}

/// A port as Ansible accepts it: an integer or a numeric string, 1 to 65535.
fn port_value(value: &Value) -> Option<u16> {
    let port = match value {
        Value::Number(n) => n.as_u64().and_then(|n| u16::try_from(n).ok()),
        Value::String(s) => s.trim().parse::<u16>().ok(),
        _ => None,
    };
    port.filter(|p| *p != 0)
}

/// A loaded inventory: hosts in file order, groups with their own variables.
#[derive(Debug, Clone)]
pub struct Inventory {
    hosts: Vec<Host>,
    index: HashMap<String, usize>,
    /// Every group (including `all` and `ungrouped`) with its own, unmerged variables.
    groups: BTreeMap<String, Vars>,
    /// Hosts Ansible creates on demand for `localhost`, `127.0.0.1` and `::1` patterns when
    /// the inventory does not define them; they are never part of `all`.
    implicit: Vec<Host>,
    /// What each host's variables are merged from (hosts, then implicit hosts), kept so
    /// that `group_vars`/`host_vars` directories can be layered in later.
    layers: Vec<vars_dirs::Layers>,
    /// `group_vars`/`host_vars` directories read, lowest precedence first.
    dirs: Vec<vars_dirs::VarsDir>,
    /// Each group's depth below `all` and `ansible_group_priority`, by which a host's
    /// groups' variables are ordered.
    ranks: BTreeMap<String, (usize, i64)>,
    /// `--limit`: the names of the hosts that may take part; `None` for all.
    limit: Option<BTreeSet<String>>,
    /// The inventory file, for errors.
    source: String,
    /// The inventory file, when one was read (`inventory_file`, `inventory_dir`): the
    /// first of several.
    path: Option<PathBuf>,
    /// The sources as given (`-i`, each time), for `ansible_inventory_sources`.
    sources: Vec<PathBuf>,
}

impl Inventory {
    /// Loads an inventory file. The format comes from the extension (`.json`, `.yml`,
    /// `.yaml`, `.ini`), else from the content: a JSON object, a YAML mapping whose groups
    /// have `hosts`, `children` or `vars`, otherwise INI.
    pub fn load(path: &Path) -> Result<Inventory, InventoryError> {
        Self::load_with_vault(path, None)
    }

    /// [`Inventory::load`], opening vaulted `group_vars`/`host_vars` with `vault`.
    pub fn load_with_vault(
        path: &Path,
        vault: Option<&crate::vault::Vault>,
    ) -> Result<Inventory, InventoryError> {
        Self::load_sources(&[path.to_path_buf()], vault)
    }

    /// Inventory sources (`-i` given once or more), merged as ansible-playbook merges
    /// them: each a file, a directory (every file in it, by name, subdirectories too,
    /// leaving out hidden names, `group_vars`, `host_vars` and Ansible's ignored
    /// extensions) or an inline host list (`web1,web2,`). A host or group named in
    /// several is one host or group, a later source's variables winning; `group_vars/`
    /// and `host_vars/` beside each file source (inside a directory source) are read in
    /// the order of the sources, later above earlier. No source at all is localhost.
    pub fn load_sources(
        paths: &[PathBuf],
        vault: Option<&crate::vault::Vault>,
    ) -> Result<Inventory, InventoryError> {
        let mut merged: Option<Builder> = None;
        let mut vars_dirs: Vec<PathBuf> = Vec::new();
        let mut files: Vec<PathBuf> = Vec::new();
        for path in paths {
            // Ansible's host_list source: `-i 'web1,web2,'` (a comma, and no such file).
            let text = path.to_string_lossy();
            let read = if text.contains(',') && !path.exists() {
                let hosts: String = text
                    .split(',')
                    .map(str::trim)
                    .filter(|h| !h.is_empty())
                    .map(|h| format!("{h}\n"))
                    .collect();
                vec![ini::read(&hosts, &text)?]
            } else if path.is_dir() {
                let mut read = Vec::new();
                read_dir(path, &mut read, &mut files)?;
                vars_dirs.push(path.clone());
                read
            } else {
                files.push(path.clone());
                vars_dirs.push(match path.parent() {
                    Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
                    _ => PathBuf::from("."),
                });
                vec![read_file(path)?]
            };
            for b in read {
                match &mut merged {
                    Some(m) => m.absorb(b),
                    None => merged = Some(b),
                }
            }
        }
        let Some(merged) = merged else {
            return Ok(Self::localhost());
        };
        let mut inv = merged.finish()?;
        inv.path = files.first().cloned();
        inv.sources = paths.to_vec();
        for dir in &vars_dirs {
            inv.add_vars_dir(dir, vault)?;
        }
        Ok(inv)
    }

    /// Parses an Ansible INI inventory; `source` names it in errors.
    pub fn parse_ini(text: &str, source: &str) -> Result<Inventory, InventoryError> {
        ini::parse(text, source)
    }

    /// Parses an Ansible YAML inventory (`all: {hosts, vars, children}`).
    pub fn parse_yaml(text: &str, source: &str) -> Result<Inventory, InventoryError> {
        structured::parse_yaml(text, source)
    }

    /// Parses a JSON inventory: the `ansible-inventory --list` / inventory script format
    /// (`_meta.hostvars`, groups with `hosts` and `children` lists), or the YAML structure
    /// written as JSON.
    pub fn parse_json(text: &str, source: &str) -> Result<Inventory, InventoryError> {
        structured::parse_json(text, source)
    }

    /// The implicit default inventory: one host `localhost` with `ansible_connection=local`.
    /// Unlike Ansible's implicit localhost it is a real (ungrouped) host, so `all` selects it:
    /// running without an inventory means running here.
    pub fn localhost() -> Inventory {
        let mut vars = Vars::new();
        vars.insert("ansible_connection".into(), Value::from("local"));
        vars.insert(
            "ansible_python_interpreter".into(),
            Value::from(controller_python()),
        );
        let host = Host {
            name: "localhost".into(),
            vars,
            groups: vec!["ungrouped".into()],
        };
        let groups = ["all", "ungrouped"]
            .into_iter()
            .map(|g| (g.to_owned(), Vars::new()))
            .collect();
        let layers = vec![vars_dirs::Layers {
            groups: host.vars.clone(),
            own: Vars::new(),
            order: host.groups.clone(),
        }];
        Inventory {
            index: HashMap::from([(host.name.clone(), 0)]),
            hosts: vec![host],
            groups,
            implicit: Vec::new(),
            layers,
            dirs: Vec::new(),
            ranks: BTreeMap::new(),
            limit: None,
            source: "localhost".into(),
            path: None,
            sources: Vec::new(),
        }
    }

    /// Hosts in the order they first appear in the file.
    pub fn hosts(&self) -> impl Iterator<Item = &Host> {
        self.hosts.iter()
    }

    /// The inventory file read, if any (the first of several).
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// The sources the inventory was read from, as given (files, directories, inline
    /// host lists).
    pub fn sources(&self) -> &[PathBuf] {
        &self.sources
    }

    /// Ansible's `groups`: every group (`all` and `ungrouped` included) with the names of
    /// its hosts (in subgroups too), in inventory order. `--limit` does not change it.
    pub fn groups_dict(&self) -> BTreeMap<String, Vec<String>> {
        let mut out: BTreeMap<String, Vec<String>> = self
            .groups
            .keys()
            .map(|g| (g.clone(), Vec::new()))
            .collect();
        for host in &self.hosts {
            if let Some(all) = out.get_mut("all") {
                all.push(host.name.clone());
            }
            for g in &host.groups {
                out.entry(g.clone()).or_default().push(host.name.clone());
            }
        }
        out
    }

    /// The variables `host` takes on when `group_by` puts it in a group it is not in,
    /// by group: what that group's `group_vars` files give that wins over the host's
    /// other variables, with the group placed among the host's groups as Ansible orders
    /// them (depth, `ansible_group_priority`, name; a group the inventory does not have
    /// is a child of `all`). The inventory file's own group variables are not included.
    /// Only groups `may_join` admits are considered: a host gets no other group's
    /// variables (they may hold another group's secrets).
    pub fn joinable_group_vars(
        &self,
        host: &str,
        may_join: impl Fn(&str) -> bool,
    ) -> BTreeMap<String, Vars> {
        let found = self
            .hosts
            .iter()
            .chain(&self.implicit)
            .zip(&self.layers)
            .find(|(h, _)| h.name == host);
        let Some((host, layers)) = found else {
            return BTreeMap::new();
        };
        let rank = |g: &str| {
            let (depth, priority) = self.ranks.get(g).copied().unwrap_or((1, 1));
            (depth, priority, g.to_owned())
        };
        let candidates: BTreeSet<&String> = self
            .dirs
            .iter()
            .flat_map(|d| d.groups.keys())
            .filter(|g| *g != "all" && !layers.order.contains(g) && may_join(g))
            .collect();
        let mut out = BTreeMap::new();
        for group in candidates {
            let mut joined = layers.clone();
            let at = joined
                .order
                .iter()
                .position(|o| rank(o) > rank(group))
                .unwrap_or(joined.order.len());
            joined.order.insert(at, group.clone());
            let delta: Vars = joined
                .merge(&host.name, &self.dirs)
                .into_iter()
                .filter(|(k, v)| host.vars.get(k) != Some(v))
                .collect();
            if !delta.is_empty() {
                out.insert(group.clone(), delta);
            }
        }
        out
    }

    /// The host with exactly this inventory name.
    pub fn host(&self, name: &str) -> Option<&Host> {
        self.index.get(name).and_then(|i| self.hosts.get(*i))
    }

    /// Every group name, sorted; `all` and `ungrouped` are always present.
    pub fn group_names(&self) -> impl Iterator<Item = &str> {
        self.groups.keys().map(String::as_str)
    }

    /// A group's own variables (not merged with its parents), if the group exists.
    pub fn group_vars(&self, name: &str) -> Option<&Vars> {
        self.groups.get(name)
    }

    /// Ansible host patterns: "all", "*", a host name, a group name, globs with * (fnmatch-style),
    /// "a:b" / "a,b" unions, "!x" exclusion, "&x" intersection. Result in inventory order, no duplicates.
    /// A pattern that matches nothing is not an error (Ansible warns); return an empty list.
    ///
    /// As in Ansible, unions are applied first, then intersections, then exclusions; a
    /// pattern with only `&`/`!` terms starts from `all`; `group[0]`, `group[1:3]` and
    /// `group[-1]` pick hosts of a term by position; `localhost`, `127.0.0.1` and `::1`
    /// yield an implicit local host when the inventory has no such host.
    pub fn select(&self, pattern: &str) -> Vec<&Host> {
        let total = self.hosts.len() + self.implicit.len();
        let selected = hostpattern::evaluate(pattern, total, |term| self.match_term(term));
        self.hosts
            .iter()
            .chain(self.implicit.iter())
            .zip(selected)
            .filter_map(|(host, keep)| keep.then_some(host))
            .filter(|host| self.limit.as_ref().is_none_or(|l| l.contains(&host.name)))
            .collect()
    }

    /// `--limit`: from now on only hosts matching `pattern` (Ansible pattern syntax) are
    /// selected by any play; a limit that matches nothing is an error naming it.
    /// `@file` reads host names, one a line (an Ansible retry file), as the pattern.
    pub fn set_limit(&mut self, pattern: &str) -> Result<(), InventoryError> {
        let from_file;
        let terms = match pattern.strip_prefix('@') {
            Some(file) => {
                let text = std::fs::read_to_string(file).map_err(|source| InventoryError::Io {
                    path: PathBuf::from(file),
                    source,
                })?;
                from_file = text
                    .lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty())
                    .collect::<Vec<_>>()
                    .join(",");
                from_file.as_str()
            }
            None => pattern,
        };
        let names: BTreeSet<String> = self
            .select(terms)
            .into_iter()
            .map(|h| h.name.clone())
            .collect();
        if names.is_empty() {
            return Err(InventoryError::LimitMatchesNothing(pattern.to_owned()));
        }
        self.limit = Some(names);
        Ok(())
    }

    /// Reads `group_vars/` and `host_vars/` in `dir` (if there) above those read before,
    /// and merges every host's variables again. A directory already read is skipped, so
    /// an inventory beside its playbook is read once.
    pub fn add_vars_dir(
        &mut self,
        dir: &Path,
        vault: Option<&crate::vault::Vault>,
    ) -> Result<(), InventoryError> {
        let canon = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
        if self.dirs.iter().any(|d| d.dir == canon) {
            return Ok(());
        }
        // Every file, also for groups the inventory does not have: `group_by` may put
        // hosts in them while the plays run (see `joinable_group_vars`).
        let loaded = vars_dirs::VarsDir::load_all(&canon, vault)?;
        self.add_vars(loaded)
    }

    /// Layers variables from a `group_vars`/`host_vars` pair above those read before.
    pub fn add_vars(&mut self, dir: vars_dirs::VarsDir) -> Result<(), InventoryError> {
        if dir.is_empty() {
            return Ok(());
        }
        self.dirs.push(dir);
        let source = self.source.clone();
        for (host, layers) in self
            .hosts
            .iter_mut()
            .chain(self.implicit.iter_mut())
            .zip(&self.layers)
        {
            host.vars = layers.merge(&host.name, &self.dirs);
            check_connection_vars(&source, host)?;
        }
        Ok(())
    }

    /// Indices (into hosts, then implicit hosts) matched by one pattern term (without
    /// its subscript), in order.
    fn match_term(&self, base: &str) -> Vec<usize> {
        let name = hostpattern::NameMatch::new(base);
        let matches = |n: &str| name.matches(n);
        let groups: Vec<&str> = self.group_names().filter(|g| matches(g)).collect();
        let mut mask = vec![false; self.hosts.len()];
        for (host, slot) in self.hosts.iter().zip(mask.iter_mut()) {
            *slot = groups.iter().any(|g| {
                *g == "all" || host.groups.binary_search_by(|h| h.as_str().cmp(g)).is_ok()
            });
        }
        // As in Ansible, names are tried as hosts when no group matched, or always when the
        // term looks like a glob or a dotted host name.
        if groups.is_empty() || name.tries_hosts(base) {
            for (host, slot) in self.hosts.iter().zip(mask.iter_mut()) {
                *slot |= matches(&host.name);
            }
        }
        let mut found: Vec<usize> = mask
            .iter()
            .enumerate()
            .filter_map(|(i, m)| m.then_some(i))
            .collect();
        if found.is_empty()
            && let Some(pos) = self.implicit.iter().position(|h| h.name == base)
        {
            found.push(self.hosts.len() + pos);
        }
        found
    }
}

/// Reads one inventory file. The format comes from the extension (`.json`, `.yml`,
/// `.yaml`, `.ini`), else from the content: a JSON object, a YAML mapping whose groups
/// have `hosts`, `children` or `vars`, otherwise INI.
fn read_file(path: &Path) -> Result<Builder, InventoryError> {
    let text = std::fs::read_to_string(path).map_err(|source| InventoryError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let source = path.display().to_string();
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    match ext.as_deref() {
        Some("json") => structured::read_json(&text, &source),
        Some("yml" | "yaml") => structured::read_yaml(&text, &source),
        Some("ini") => ini::read(&text, &source),
        _ if text.trim_start().starts_with('{') => structured::read_json(&text, &source),
        _ if structured::looks_like_yaml_inventory(&text) => structured::read_yaml(&text, &source),
        _ => ini::read(&text, &source),
    }
}

/// What an inventory directory's listing leaves out: hidden names and the variables
/// directories (Ansible's `IGNORED_ALWAYS`), and the extensions of
/// `INVENTORY_IGNORE_EXTS`'s default.
fn ignored_in_dir(name: &str) -> bool {
    const EXTS: [&str; 12] = [
        ".pyc", ".pyo", ".swp", ".bak", "~", ".rpm", ".md", ".txt", ".rst", ".orig", ".cfg",
        ".retry",
    ];
    name.starts_with('.')
        || matches!(name, "host_vars" | "group_vars" | "vars_plugins")
        || EXTS.iter().any(|e| name.ends_with(e))
}

/// The names in the directory `dir`, sorted (Python's `sorted(os.listdir())`).
fn sorted_names(dir: &Path) -> std::io::Result<Vec<String>> {
    let mut names: Vec<String> = std::fs::read_dir(dir)?
        .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect::<Result<_, _>>()?;
    names.sort();
    Ok(names)
}

/// Reads every inventory file below `dir`, by name (Ansible's `sorted(os.listdir())`),
/// into `out`, and names them in `files`.
fn read_dir(
    dir: &Path,
    out: &mut Vec<Builder>,
    files: &mut Vec<PathBuf>,
) -> Result<(), InventoryError> {
    let names = sorted_names(dir).map_err(|source| InventoryError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    for name in names.iter().filter(|n| !ignored_in_dir(n)) {
        let path = dir.join(name);
        if path.is_dir() {
            read_dir(&path, out, files)?;
        } else {
            out.push(read_file(&path)?);
            files.push(path);
        }
    }
    Ok(())
}

/// A group as read from the file, before inheritance is resolved.
#[derive(Debug, Default)]
struct RawGroup {
    vars: Vars,
    /// Direct children with the line that declared each edge.
    children: Vec<(String, Option<usize>)>,
}

/// A host as read from the file: its own variables and the groups it is listed in.
#[derive(Debug, Default)]
struct RawHost {
    vars: Vars,
    groups: Vec<String>,
}

/// Collects hosts, groups and variables from any format, then resolves inheritance.
#[derive(Debug)]
struct Builder {
    source: String,
    host_order: Vec<String>,
    hosts: HashMap<String, RawHost>,
    groups: BTreeMap<String, RawGroup>,
}

impl Builder {
    fn new(source: &str) -> Builder {
        let mut groups = BTreeMap::new();
        groups.insert("all".to_owned(), RawGroup::default());
        groups.insert("ungrouped".to_owned(), RawGroup::default());
        Builder {
            source: source.to_owned(),
            host_order: Vec::new(),
            hosts: HashMap::new(),
            groups,
        }
    }

    fn parse_error(&self, line: Option<usize>, msg: impl fmt::Display) -> InventoryError {
        InventoryError::Parse {
            source_name: self.source.clone(),
            line,
            msg: msg.to_string(),
        }
    }

    fn check_var_name(&self, name: &str, line: Option<usize>) -> Result<(), InventoryError> {
        if rustle_runner::modules::args::is_identifier(name) {
            Ok(())
        } else {
            Err(InventoryError::InvalidVarName {
                source_name: self.source.clone(),
                line,
                name: name.to_owned(),
            })
        }
    }

    fn add_group(&mut self, name: &str) {
        if !self.groups.contains_key(name) {
            self.groups.insert(name.to_owned(), RawGroup::default());
        }
    }

    /// Adds (or extends) a host; `group` is None when only variables are given.
    fn add_host(&mut self, name: &str, group: Option<&str>, vars: Vars) {
        if let Some(group) = group {
            self.add_group(group);
        }
        let host = match self.hosts.entry(name.to_owned()) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => {
                self.host_order.push(name.to_owned());
                e.insert(RawHost::default())
            }
        };
        if let Some(group) = group
            && !host.groups.iter().any(|g| g == group)
        {
            host.groups.push(group.to_owned());
        }
        // A host listed twice keeps one entry; the later line's values win.
        host.vars.extend(vars);
    }

    fn set_group_var(&mut self, group: &str, key: String, value: Value) {
        self.add_group(group);
        if let Some(g) = self.groups.get_mut(group) {
            g.vars.insert(key, value);
        }
    }

    fn add_child(
        &mut self,
        parent: &str,
        child: &str,
        line: Option<usize>,
    ) -> Result<(), InventoryError> {
        if child == "all" {
            return Err(
                self.parse_error(line, format!("group 'all' cannot be a child of '{parent}'"))
            );
        }
        if parent == child {
            return Err(InventoryError::Cycle {
                source_name: self.source.clone(),
                line,
                cycle: vec![parent.to_owned(), child.to_owned()],
            });
        }
        self.add_group(parent);
        self.add_group(child);
        if let Some(g) = self.groups.get_mut(parent)
            && !g.children.iter().any(|(c, _)| c == child)
        {
            g.children.push((child.to_owned(), line));
        }
        Ok(())
    }

    /// Adds what another source read: its new hosts after these, the groups and
    /// variables of hosts and groups both name merged, `other`'s values winning.
    fn absorb(&mut self, other: Builder) {
        self.source = format!("{}, {}", self.source, other.source);
        let Builder {
            host_order,
            mut hosts,
            groups,
            ..
        } = other;
        for (name, group) in groups {
            self.add_group(&name);
            if let Some(g) = self.groups.get_mut(&name) {
                g.vars.extend(group.vars);
                for (child, line) in group.children {
                    if !g.children.iter().any(|(c, _)| *c == child) {
                        g.children.push((child, line));
                    }
                }
            }
        }
        for name in host_order {
            let Some(raw) = hosts.remove(&name) else {
                continue;
            };
            for group in &raw.groups {
                self.add_host(&name, Some(group), Vars::new());
            }
            self.add_host(&name, None, raw.vars);
        }
    }

    /// Resolves inheritance and merges variables into the final inventory.
    fn finish(self) -> Result<Inventory, InventoryError> {
        let order = self.topological_order()?;
        // Depth is the longest path from `all` (depth 0); groups without a parent hang off
        // `all` at depth 1. Ancestors exclude `all`, which every host is in anyway.
        let mut depth: HashMap<&str, usize> = self
            .groups
            .keys()
            .map(|g| (g.as_str(), usize::from(g != "all")))
            .collect();
        let mut ancestors: HashMap<&str, BTreeSet<&str>> = HashMap::new();
        for parent in &order {
            let parent_depth = depth.get(parent.as_str()).copied().unwrap_or(0);
            let mut inherited = ancestors.get(parent.as_str()).cloned().unwrap_or_default();
            if parent != "all" {
                inherited.insert(parent.as_str());
            }
            let children = self.groups.get(parent).map(|g| g.children.as_slice());
            for (child, _) in children.unwrap_or_default() {
                let d = depth.entry(child.as_str()).or_insert(1);
                *d = (*d).max(parent_depth + 1);
                ancestors
                    .entry(child.as_str())
                    .or_default()
                    .extend(inherited.iter().copied());
            }
        }
        let priority = |group: &str| -> i64 {
            self.groups
                .get(group)
                .and_then(|g| g.vars.get("ansible_group_priority"))
                .and_then(|v| v.as_i64().or_else(|| v.as_str()?.trim().parse().ok()))
                .unwrap_or(1)
        };

        let mut hosts = Vec::with_capacity(self.host_order.len());
        let mut layers = Vec::with_capacity(self.host_order.len() + IMPLICIT_LOCALHOSTS.len());
        for name in &self.host_order {
            let Some(raw) = self.hosts.get(name) else {
                continue;
            };
            let mut direct: BTreeSet<&str> = raw
                .groups
                .iter()
                .map(String::as_str)
                .filter(|g| *g != "all" && *g != "ungrouped")
                .collect();
            // Ansible puts a host into `ungrouped` exactly when it is in no other group.
            if direct.is_empty() {
                direct.insert("ungrouped");
            }
            let mut all_groups = direct.clone();
            for g in &direct {
                if let Some(anc) = ancestors.get(g) {
                    all_groups.extend(anc.iter().copied());
                }
            }
            let mut by_precedence: Vec<&str> = all_groups.iter().copied().collect();
            by_precedence.sort_by_key(|g| (depth.get(g).copied().unwrap_or(1), priority(g), *g));
            let mut vars = self.group_vars("all");
            for g in &by_precedence {
                vars.extend(self.group_vars(g));
            }
            layers.push(vars_dirs::Layers {
                groups: vars.clone(),
                own: raw.vars.clone(),
                order: by_precedence.iter().map(|g| (*g).to_owned()).collect(),
            });
            vars.extend(raw.vars.clone());
            let mut host = Host {
                name: name.clone(),
                vars,
                groups: all_groups.into_iter().map(str::to_owned).collect(),
            };
            self.check_connection_vars(&mut host)?;
            hosts.push(host);
        }

        let mut implicit = Vec::new();
        for name in IMPLICIT_LOCALHOSTS {
            let mut vars = self.group_vars("all");
            let mut own = Vars::new();
            own.insert("ansible_connection".into(), Value::from("local"));
            own.insert(
                "ansible_python_interpreter".into(),
                Value::from(controller_python()),
            );
            layers.push(vars_dirs::Layers {
                groups: vars.clone(),
                own: own.clone(),
                order: Vec::new(),
            });
            vars.extend(own);
            let mut host = Host {
                name: name.to_owned(),
                vars,
                groups: Vec::new(),
            };
            self.check_connection_vars(&mut host)?;
            implicit.push(host);
        }

        let index = hosts
            .iter()
            .enumerate()
            .map(|(i, h)| (h.name.clone(), i))
            .collect();
        let ranks = self
            .groups
            .keys()
            .map(|g| {
                (
                    g.clone(),
                    (depth.get(g.as_str()).copied().unwrap_or(1), priority(g)),
                )
            })
            .collect();
        let groups = self
            .groups
            .into_iter()
            .map(|(name, g)| (name, g.vars))
            .collect();
        Ok(Inventory {
            hosts,
            index,
            groups,
            implicit,
            layers,
            dirs: Vec::new(),
            ranks,
            limit: None,
            source: self.source,
            path: None,
            sources: Vec::new(),
        })
    }

    fn group_vars(&self, group: &str) -> Vars {
        self.groups
            .get(group)
            .map(|g| g.vars.clone())
            .unwrap_or_default()
    }

    /// Groups ordered parents before children (Kahn's algorithm, ties by name), or the
    /// cycle that prevents such an order.
    fn topological_order(&self) -> Result<Vec<String>, InventoryError> {
        let mut indegree: BTreeMap<&str, usize> =
            self.groups.keys().map(|g| (g.as_str(), 0)).collect();
        for group in self.groups.values() {
            for (child, _) in &group.children {
                *indegree.entry(child.as_str()).or_insert(0) += 1;
            }
        }
        let mut ready: VecDeque<&str> = indegree
            .iter()
            .filter_map(|(g, d)| (*d == 0).then_some(*g))
            .collect();
        let mut order = Vec::with_capacity(indegree.len());
        while let Some(group) = ready.pop_front() {
            order.push(group.to_owned());
            let children = self.groups.get(group).map(|g| g.children.as_slice());
            for (child, _) in children.unwrap_or_default() {
                if let Some(d) = indegree.get_mut(child.as_str()) {
                    *d = d.saturating_sub(1);
                    if *d == 0 {
                        ready.push_back(child.as_str());
                    }
                }
            }
        }
        if order.len() == indegree.len() {
            return Ok(order);
        }
        Err(self.find_cycle(&order))
    }

    /// Builds the error for a cycle among the groups left out of the topological order.
    fn find_cycle(&self, ordered: &[String]) -> InventoryError {
        let done: BTreeSet<&str> = ordered.iter().map(String::as_str).collect();
        let remaining: BTreeSet<&str> = self
            .groups
            .keys()
            .map(String::as_str)
            .filter(|g| !done.contains(g))
            .collect();
        // Every remaining group still has a remaining parent, so walking up parents must
        // come back to a group already on the path.
        let parent_of = |child: &str| {
            self.groups.iter().find_map(|(p, g)| {
                (remaining.contains(p.as_str()) && g.children.iter().any(|(c, _)| c == child))
                    .then_some(p.as_str())
            })
        };
        let mut path: Vec<&str> = Vec::new();
        let mut current = remaining.first().copied();
        while let Some(group) = current {
            if let Some(start) = path.iter().position(|g| *g == group) {
                // The path walked parents, so reverse it to read parent -> child.
                let mut nodes: Vec<&str> = path.get(start..).unwrap_or_default().to_vec();
                nodes.reverse();
                let edge_line = |i: usize| {
                    let parent = nodes.get(i)?;
                    let child = nodes.get((i + 1) % nodes.len())?;
                    self.edge_line(parent, child)
                };
                // Report the edge written last in the file, and end the cycle with it: that
                // is the line that closed the loop.
                let closing = (0..nodes.len()).max_by_key(|i| edge_line(*i));
                let line = closing.and_then(edge_line);
                if let Some(k) = closing {
                    let shift = (k + 1) % nodes.len().max(1);
                    nodes.rotate_left(shift);
                }
                let mut cycle: Vec<String> = nodes.iter().map(|g| (*g).to_owned()).collect();
                if let Some(first) = cycle.first().cloned() {
                    cycle.push(first);
                }
                return InventoryError::Cycle {
                    source_name: self.source.clone(),
                    line,
                    cycle,
                };
            }
            path.push(group);
            current = parent_of(group);
        }
        InventoryError::Cycle {
            source_name: self.source.clone(),
            line: None,
            cycle: remaining.iter().map(|g| (*g).to_owned()).collect(),
        }
    }

    fn edge_line(&self, parent: &str, child: &str) -> Option<usize> {
        self.groups
            .get(parent)?
            .children
            .iter()
            .find(|(c, _)| c == child)
            .and_then(|(_, line)| *line)
    }

    /// Makes sure the variables the deployer connects with have usable types.
    fn check_connection_vars(&self, host: &mut Host) -> Result<(), InventoryError> {
        check_connection_vars(&self.source, host)
    }
}

/// Makes sure the variables the deployer connects with have usable types.
fn check_connection_vars(source: &str, host: &mut Host) -> Result<(), InventoryError> {
    {
        let name = host.name.clone();
        let error = |var: &str, msg: String| InventoryError::HostVar {
            source_name: source.to_owned(),
            host: name.clone(),
            var: var.to_owned(),
            msg,
        };
        // The deployer itself reads these: an opened `!vault` value is its plaintext.
        for var in STRING_CONNECTION_VARS
            .iter()
            .chain(&["ansible_port", "ansible_ssh_port"])
        {
            let plain = host
                .vars
                .get(*var)
                .and_then(rustle_runner::template::opened_vault)
                .map(|(plain, _)| plain.to_string());
            if let Some(plain) = plain {
                host.vars.insert((*var).to_owned(), Value::String(plain));
            }
        }
        for var in STRING_CONNECTION_VARS {
            match host.vars.get(var) {
                None | Some(Value::String(_) | Value::Null) => {}
                Some(Value::Number(n)) => {
                    let text = n.to_string();
                    host.vars.insert(var.to_owned(), Value::String(text));
                }
                // A `!vault` value left closed: the deployer itself needs its text.
                Some(v) if rustle_runner::template::vault_inner(v).is_some() => {
                    return Err(error(var, NEEDS_PASSWORD.to_string()));
                }
                Some(other) => return Err(error(var, format!("expected a string, got {other}"))),
            }
        }
        for var in ["ansible_port", "ansible_ssh_port"] {
            match host.vars.get(var) {
                None | Some(Value::Null) => {}
                Some(v) if rustle_runner::template::vault_inner(v).is_some() => {
                    return Err(error(var, NEEDS_PASSWORD.to_string()));
                }
                Some(value) if port_value(value).is_some() => {}
                Some(other) => {
                    return Err(error(var, format!("expected a port 1-65535, got {other}")));
                }
            }
        }
        Ok(())
    }
}
