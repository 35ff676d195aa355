//! The controller's files as a payload carries them, read as Ansible reads the controller:
//! whether a path exists (as a file or a directory), a file's bytes, a variables file's
//! content, a directory's files; and `include_vars` over them (files and `dir:`), as
//! ansible-core 2.18's `include_vars` action does.
//!
//! Paths are controller paths: the packer stores the files of the trees a play reaches
//! under them, and the YAML among them parsed (`Shared::library`). A file the payload does
//! not carry does not exist here; errors say where they looked.

use crate::plan::{HostFile, Parsed, Shared, Vars};
use crate::resolve::{Place, dirname, join};
use serde_json::Value;
use std::collections::BTreeMap;

/// The extensions `include_vars` reads by default.
const VAR_EXTENSIONS: [&str; 3] = ["yaml", "yml", "json"];

/// A view of the controller files one payload carries.
#[derive(Debug, Clone, Copy)]
pub struct CtlFiles<'a> {
    shared: &'a Shared,
}

impl<'a> CtlFiles<'a> {
    /// The controller files of `shared`.
    pub fn new(shared: &'a Shared) -> CtlFiles<'a> {
        CtlFiles { shared }
    }

    /// Whether `path` is a file the payload carries (or knows of and could not carry).
    pub fn is_file(&self, path: &str) -> bool {
        self.shared.files.contains_key(path)
            || self.shared.library.tasks.contains_key(path)
            || self.shared.library.vars.contains_key(path)
            || self.shared.library.unreadable.contains_key(path)
    }

    /// Whether `path` is a directory holding carried files.
    pub fn is_dir(&self, path: &str) -> bool {
        let prefix = format!("{}/", path.trim_end_matches('/'));
        self.shared
            .files
            .range(prefix.clone()..)
            .next()
            .is_some_and(|(k, _)| k.starts_with(&prefix))
    }

    /// Whether `path` exists as a file or a directory.
    pub fn exists(&self, path: &str) -> bool {
        self.is_file(path) || self.is_dir(path)
    }

    /// A carried file's bytes, or why there are none.
    pub fn bytes(&self, path: &str) -> Result<&'a [u8], String> {
        if let Some(f) = self.shared.files.get(path) {
            return Ok(&f.content);
        }
        Err(self.unreadable(path).unwrap_or_else(|| not_carried(path)))
    }

    /// Why a known file could not be carried, if it is one.
    fn unreadable(&self, path: &str) -> Option<String> {
        self.shared
            .library
            .unreadable
            .get(path)
            .map(|why| format!("{path}: {why}"))
    }

    /// A variables file's mapping (empty for an empty file), or Ansible's message.
    pub fn vars(&self, path: &str) -> Result<Vars, String> {
        match self.shared.library.vars.get(path) {
            Some(Parsed::Ok(Value::Object(m))) => Ok(m.clone()),
            Some(Parsed::Ok(Value::Null)) => Ok(Vars::new()),
            Some(Parsed::Ok(_)) => Err(format!("{path} must be stored as a dictionary/hash")),
            Some(Parsed::Refused(why) | Parsed::Ansible(why)) => Err(why.clone()),
            None if self.shared.library.tasks.contains_key(path) => {
                Err(format!("{path} must be stored as a dictionary/hash"))
            }
            None => Err(self.unreadable(path).unwrap_or_else(|| {
                if self.shared.files.contains_key(path) {
                    format!("{path} is not a YAML or JSON variables file")
                } else {
                    not_carried(path)
                }
            })),
        }
    }

    /// A variables file the packer embedded as JSON under the name a task gave.
    fn embedded_json(&self, name: &str) -> Result<Vars, String> {
        let bytes = self.bytes(name)?;
        match serde_json::from_slice(bytes) {
            Ok(Value::Object(m)) => Ok(m),
            Ok(Value::Null) => Ok(Vars::new()),
            Ok(_) => Err(format!("{name} must be stored as a dictionary/hash")),
            Err(e) => Err(format!(
                "{name} is not a variables file the packer converted: {e}"
            )),
        }
    }

    /// The files below `dir`, by directory (sorted by path, as `sorted(os.walk(...))`),
    /// each directory's file names sorted; directories nested deeper than `depth`
    /// (1 is `dir` itself; 0 for no limit) are left out.
    pub fn walk(&self, dir: &str, depth: usize) -> Vec<(String, Vec<String>)> {
        let root = dir.trim_end_matches('/');
        let prefix = format!("{root}/");
        let mut by_dir: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let names = self
            .shared
            .files
            .keys()
            .chain(self.shared.library.unreadable.keys())
            .filter(|k| k.starts_with(&prefix));
        for path in names {
            let parent = dirname(path).to_string();
            let rel = parent.strip_prefix(root).unwrap_or("");
            let level = rel.split('/').filter(|p| !p.is_empty()).count() + 1;
            if depth != 0 && level > depth {
                continue;
            }
            let name = path.rsplit('/').next().unwrap_or(path).to_string();
            by_dir.entry(parent).or_default().push(name);
        }
        by_dir
            .into_iter()
            .map(|(d, mut files)| {
                files.sort();
                files.dedup();
                (d, files)
            })
            .collect()
    }
}

/// The error for a path the payload does not carry.
fn not_carried(path: &str) -> String {
    format!(
        "Could not find or access '{path}' on the Ansible Controller (it is not among the \
         controller files this payload carries)"
    )
}

/// What `include_vars` read: the variables, the files they came from, or the failure
/// (Ansible reports it under `message`).
#[derive(Debug, Clone, PartialEq)]
pub struct Included {
    /// The variables (nested under `name` when it is given).
    pub vars: Vars,
    /// `ansible_included_var_files`.
    pub files: Vec<String>,
    /// Why it failed, if it did.
    pub error: Option<String>,
}

/// `include_vars` with rendered `args`, run at `place` (in the role at `role_path`, if
/// any; the task read from `task_dir`), `current` giving a variable's value in scope (for
/// `hash_behaviour: merge`).
pub fn include_vars(
    args: &Vars,
    place: &Place<'_>,
    role_path: Option<&str>,
    files: CtlFiles<'_>,
    local: bool,
    current: &dyn Fn(&str) -> Option<Value>,
) -> Result<Included, String> {
    const DIR_ARGS: [&str; 6] = [
        "dir",
        "depth",
        "files_matching",
        "ignore_files",
        "extensions",
        "ignore_unknown_extensions",
    ];
    let mut dirs = 0;
    let mut file_args = 0;
    for k in args.keys() {
        match k.as_str() {
            k if DIR_ARGS.contains(&k) => dirs += 1,
            "file" | "_raw_params" => file_args += 1,
            "name" | "hash_behaviour" => {}
            other => return Err(format!("{other} is not a valid option in include_vars")),
        }
    }
    if dirs > 0 && file_args > 0 {
        return Err(
            "You are mixing file only and dir only arguments, these are incompatible".into(),
        );
    }
    let text = |k: &str| match args.get(k) {
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Null) | None => None,
        Some(other) => Some(other.to_string()),
    };
    let mut out = Included {
        vars: Vars::new(),
        files: Vec::new(),
        error: None,
    };
    let loaded = match text("dir") {
        Some(dir) => read_dir(args, &dir, place, role_path, files, local, &mut out.files),
        None => 'file: {
            // An empty `file` counts as none, as the action's `_set_args` reads it.
            let Some(source) = text("file")
                .filter(|f| !f.is_empty())
                .or_else(|| text("_raw_params").map(|s| s.trim_end_matches('\n').to_string()))
            else {
                // A `null` name (a lookup that failed with errors='ignore'): Ansible
                // searches nowhere and says so.
                break 'file Err(
                    "Could not find file on the Ansible Controller.\nIf you are using a module and expect the file to exist on the remote, see the remote_src option".to_string(),
                );
            };
            let candidates = place.stack_candidates("vars", &source);
            match candidates.iter().find(|c| files.is_file(c)) {
                Some(found) => files.vars(found).inspect(|_| out.files.push(found.clone())),
                // A file the packer found by its literal name when the plan was made,
                // carried as JSON under that name.
                None if files.shared.files.contains_key(&source) => files
                    .embedded_json(&source)
                    .inspect(|_| out.files.push(source.clone())),
                // A local host is the controller: a file a task wrote during the run,
                // named by its absolute path, is read from the machine (as `file`).
                None if local
                    && source.starts_with('/')
                    && std::path::Path::new(&source).is_file() =>
                {
                    read_local(&source)
                        .and_then(|b| local_vars(&b))
                        .map_err(|e| format!("{source}: {e}"))
                        .inspect(|_| out.files.push(source.clone()))
                }
                None => Err(format!(
                    "Could not find or access '{source}'\nSearched in:\n\t{} on the Ansible Controller.\nIf you are using a module and expect the file to exist on the remote, see the remote_src option",
                    candidates.join("\n\t")
                )),
            }
        }
    };
    let mut vars = match loaded {
        Ok(v) => v,
        Err(e) => {
            out.error = Some(e);
            Vars::new()
        }
    };
    if let Some(name) = text("name") {
        let mut scope = Vars::new();
        scope.insert(name, Value::Object(vars));
        vars = scope;
    }
    if out.error.is_none() && text("hash_behaviour").as_deref() == Some("merge") {
        for (k, v) in vars.iter_mut() {
            if let Some(old) = current(k) {
                *v = merge(&old, v);
            }
        }
    }
    out.vars = vars;
    Ok(out)
}

/// `include_vars dir:`: every variables file below the directory (relative to the role's
/// `vars/`, or to the including task file's directory), in Ansible's order and filters.
fn read_dir(
    args: &Vars,
    dir: &str,
    place: &Place<'_>,
    role_path: Option<&str>,
    files: CtlFiles<'_>,
    local: bool,
    included: &mut Vec<String>,
) -> Result<Vars, String> {
    let source =
        crate::resolve::include_vars_dir(dir, role_path, place.task_dir, |p| files.exists(p));
    // A local host is the controller: a directory the payload does not carry (one a
    // delegated task made during the run) is read from the machine, as `file:` is.
    let on_machine = local
        && source.starts_with('/')
        && !files.exists(&source)
        && std::path::Path::new(&source).is_dir();
    if !on_machine && !files.exists(&source) {
        return Err(format!("{source} directory does not exist"));
    }
    if !on_machine && !files.is_dir(&source) {
        return Err(format!("{source} is not a directory"));
    }
    let depth = match args.get("depth") {
        Some(Value::Number(n)) => n.as_u64().unwrap_or(0) as usize,
        Some(Value::String(s)) => s.trim().parse().unwrap_or(0),
        _ => 0,
    };
    let matcher = match args.get("files_matching") {
        Some(Value::String(p)) => Some(crate::pyre::Pattern::new(p)?),
        _ => None,
    };
    let ignore: Vec<String> = match args.get("ignore_files") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(s)) => s.split_whitespace().map(str::to_string).collect(),
        Some(Value::Array(a)) => a
            .iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| v.to_string())
            })
            .collect(),
        Some(other) => return Err(format!("{other} must be a list")),
    };
    let ignore: Vec<crate::pyre::Pattern> = ignore
        .iter()
        .map(|p| {
            crate::pyre::Pattern::new(&format!("{p}$"))
                .map_err(|_| format!("Invalid regular expression: {p}"))
        })
        .collect::<Result<_, _>>()?;
    let extensions: Vec<String> = match args.get("extensions") {
        None | Some(Value::Null) => VAR_EXTENSIONS.iter().map(|e| e.to_string()).collect(),
        Some(Value::Array(a)) => a
            .iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| v.to_string())
            })
            .collect(),
        // Ansible turns a string into the list of its characters.
        Some(Value::String(s)) => s.chars().map(String::from).collect(),
        Some(_) => return Err("Invalid type for \"extensions\" option, it must be a list".into()),
    };
    let ignore_unknown = match args.get("ignore_unknown_extensions") {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => crate::modules::args::truthy_str(s).unwrap_or(false),
        _ => false,
    };
    let valid_ext = |name: &str| {
        let ext = match name.rfind('.') {
            // Python's splitext: a leading dot is part of the name.
            Some(i) if i > 0 => name.get(i + 1..).unwrap_or(""),
            _ => "",
        };
        extensions.iter().any(|e| e == ext)
    };
    let mut results = Vars::new();
    let listing = if on_machine {
        walk_local(&source, depth)
    } else {
        files.walk(&source, depth)
    };
    for (root, names) in listing {
        let mut dir_results = Vars::new();
        for name in names {
            let path = join(&root, &name);
            // A role's vars/main.yml is never included again.
            if role_path.is_some_and(|r| join(r, "vars/main.yml") == path) {
                continue;
            }
            if let Some(m) = &matcher
                && !m.is_match(name.as_bytes())?
            {
                continue;
            }
            if ignore
                .iter()
                .map(|r| r.is_match(name.as_bytes()))
                .collect::<Result<Vec<_>, _>>()?
                .contains(&true)
            {
                continue;
            }
            if ignore_unknown && !valid_ext(&name) {
                continue;
            }
            if !valid_ext(&name) {
                return Err(format!(
                    "{path} does not have a valid extension: {}",
                    extensions.join(", ")
                ));
            }
            let vars = if on_machine {
                read_local(&path)
                    .and_then(|b| local_vars(&b))
                    .map_err(|e| format!("{path}: {e}"))?
            } else {
                files.vars(&path)?
            };
            dir_results.extend(vars);
            included.push(path);
        }
        results.extend(dir_results);
    }
    Ok(results)
}

/// The files below `dir` on this machine, grouped as [`CtlFiles::walk`] groups carried
/// ones (directories sorted by path, names sorted; `depth` 1 is `dir` itself, 0 no
/// limit), symbolic links followed as `os.walk(followlinks=True)` follows them (a link
/// loop stops at [`MAX_LOCAL_DEPTH`]).
fn walk_local(dir: &str, depth: usize) -> Vec<(String, Vec<String>)> {
    fn visit(d: &str, level: usize, depth: usize, out: &mut Vec<(String, Vec<String>)>) {
        if (depth != 0 && level > depth) || level > MAX_LOCAL_DEPTH {
            return;
        }
        let Ok(entries) = std::fs::read_dir(d) else {
            return;
        };
        let mut names = Vec::new();
        let mut dirs = Vec::new();
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let path = join(d, &name);
            match std::fs::metadata(&path) {
                Ok(m) if m.is_dir() => dirs.push(path),
                Ok(m) if m.is_file() => names.push(name),
                _ => {}
            }
        }
        names.sort();
        if !names.is_empty() {
            out.push((d.to_string(), names));
        }
        for sub in dirs {
            visit(&sub, level + 1, depth, out);
        }
    }
    let mut out = Vec::new();
    visit(dir.trim_end_matches('/'), 1, depth, &mut out);
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// How deep [`walk_local`] goes.
const MAX_LOCAL_DEPTH: usize = 16;

/// A local host's own files read from the machine, as a payload carries controller
/// files: their content by path, and the directories and links among them.
#[derive(Debug, Default)]
pub struct LocalTree {
    /// The files, each with its permission bits.
    pub files: BTreeMap<String, HostFile>,
    /// The directories and links below a directory read.
    pub layout: crate::plan::Layout,
}

/// A local host's own file or directory at `path` (one a task wrote during the run,
/// which no payload could carry: the local host is the controller, and Ansible reads a
/// `copy`/`template` `src` there when the task runs), as a payload carries controller
/// files: the file under `path`, or every file below the directory under its path
/// (links followed, with its directories and links, as [`crate::tree::walk`] walks),
/// each with its permission bits. At most [`LOCAL_READ_LIMIT`] bytes in all are read.
pub fn local_tree(path: &str) -> Result<LocalTree, String> {
    use std::os::unix::fs::PermissionsExt as _;
    let root = path.trim_end_matches('/');
    let root = if root.is_empty() { "/" } else { root };
    let mut out = LocalTree::default();
    let names: Vec<String> = if std::path::Path::new(root).is_dir() {
        let walked = crate::tree::walk(std::path::Path::new(root), MAX_LOCAL_DEPTH)
            .map_err(|e| format!("{root}: {e}"))?;
        out.layout = walked.layout;
        (walked.files.iter())
            .map(|p| p.to_string_lossy().into_owned())
            .collect()
    } else {
        vec![root.to_string()]
    };
    let mut total = 0u64;
    for name in names {
        let content = read_local(&name).map_err(|e| format!("{name}: {e}"))?;
        total += content.len() as u64;
        if total > LOCAL_READ_LIMIT {
            return Err(format!(
                "{path}: the files are larger than {} MiB in all, the most read from the controller for one task",
                LOCAL_READ_LIMIT >> 20
            ));
        }
        let mode = std::fs::metadata(&name)
            .ok()
            .map(|m| m.permissions().mode() & 0o7777);
        out.files.insert(name, HostFile { content, mode });
    }
    Ok(out)
}

/// Ansible's `combine_vars(..., merge=True)`: mappings merged recursively, the new value
/// winning elsewhere.
fn merge(old: &Value, new: &Value) -> Value {
    match (old, new) {
        (Value::Object(a), Value::Object(b)) => {
            let mut out = a.clone();
            for (k, v) in b {
                let merged = match a.get(k) {
                    Some(prev) => merge(prev, v),
                    None => v.clone(),
                };
                out.insert(k.clone(), merged);
            }
            Value::Object(out)
        }
        _ => new.clone(),
    }
}

// ---------------------------------------------------------------------------
// The lookups that read the controller's files: `file`, `first_found`, `fileglob`,
// `template`, `unvault`, `ini`, `csvfile`, on the files the payload carries.

/// Where a lookup runs: Ansible's `ansible_search_path`, the playbook's directory (its
/// loader base directory) and whether the task is in a role.
#[derive(Debug, Clone, Default)]
pub struct LookupPlace {
    /// `ansible_search_path`.
    pub search: Vec<String>,
    /// `playbook_dir`.
    pub basedir: String,
    /// Whether `role_path` is defined.
    pub in_role: bool,
    /// Whether the host is the controller (`ansible_connection: local`): then a file the
    /// payload does not carry, named by an absolute path, is read where Ansible reads
    /// it, from this machine (a file a task wrote during the run, say).
    pub local: bool,
}

impl LookupPlace {
    /// The place the variables of the template being rendered describe.
    pub fn from_vars(vars: &minijinja::value::Value) -> LookupPlace {
        let text = |name: &str| {
            vars.get_attr(name)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
        };
        let basedir = text("playbook_dir").unwrap_or_default();
        let search = vars
            .get_attr("ansible_search_path")
            .ok()
            .and_then(|v| {
                v.try_iter().ok().map(|it| {
                    it.filter_map(|p| p.as_str().map(str::to_string))
                        .collect::<Vec<_>>()
                })
            })
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| vec![basedir.clone()]);
        LookupPlace {
            search,
            in_role: text("role_path").is_some(),
            local: text("ansible_connection").as_deref() == Some("local"),
            basedir,
        }
    }

    /// `LookupBase.find_file_in_search_path`: the first candidate of `needle` in
    /// `subdir` that the payload carries.
    pub fn find(&self, files: CtlFiles<'_>, subdir: &str, needle: &str) -> Option<String> {
        crate::resolve::stack_candidates(&self.search, subdir, needle, self.in_role, &self.basedir)
            .into_iter()
            .find(|c| files.is_file(c) || files.is_dir(c))
    }
}

/// Why a file lookup failed, in Ansible's classes (they decide how `errors=` applies).
#[derive(Debug, Clone, PartialEq)]
pub enum FileLookupError {
    /// `AnsibleOptionsError`: a bad option, raised as it is.
    Options(String),
    /// Any other failure: the Python class Ansible names, and the message.
    Plugin {
        /// The Python exception class.
        class: &'static str,
        /// The message.
        msg: String,
    },
}

const ANSIBLE_ERROR: &str = "ansible.errors.AnsibleError";
const LOOKUP_ERROR: &str = "ansible.errors.AnsibleLookupError";
const PARSER_ERROR: &str = "ansible.errors.AnsibleParserError";

fn plugin(class: &'static str, msg: impl Into<String>) -> FileLookupError {
    FileLookupError::Plugin {
        class,
        msg: msg.into(),
    }
}

/// The names of the file lookups.
pub const FILE_LOOKUPS: [&str; 7] = [
    "file",
    "template",
    "fileglob",
    "first_found",
    "ini",
    "csvfile",
    "unvault",
];

/// The terms as a list of strings (Ansible passes each term to the plugin as given).
fn term_strings(terms: &Value) -> Vec<String> {
    let one = |v: &Value| match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    match terms {
        Value::Array(items) => items.iter().map(one).collect(),
        other => vec![one(other)],
    }
}

fn opt_bool(options: &Vars, name: &str, default: bool) -> bool {
    match options.get(name) {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => crate::modules::args::truthy_str(s).unwrap_or(default),
        _ => default,
    }
}

fn text_of(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `bytes` decoded as the ini and csvfile lookups' `encoding` option says, as Python's
/// codec of that name decodes them: UTF-8 (the default), ASCII, or the Latin ones
/// (ISO 8859-1 and -15, Windows-1252's printable range as Latin-1).
fn decode(bytes: &[u8], encoding: &str) -> Result<String, String> {
    let name = encoding
        .trim()
        .to_ascii_lowercase()
        .replace(['-', '_', ' '], "");
    // ISO 8859-15 differs from -1 in eight places.
    const LATIN9: [(u8, char); 8] = [
        (0xA4, '€'),
        (0xA6, 'Š'),
        (0xA8, 'š'),
        (0xB4, 'Ž'),
        (0xB8, 'ž'),
        (0xBC, 'Œ'),
        (0xBD, 'œ'),
        (0xBE, 'Ÿ'),
    ];
    match name.as_str() {
        "utf8" | "utf8sig" | "u8" => Ok(text_of(
            bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(bytes),
        )),
        "ascii" | "usascii" => match bytes.iter().position(|b| !b.is_ascii()) {
            None => Ok(text_of(bytes)),
            Some(at) => Err(format!(
                "'ascii' codec can't decode byte 0x{:02x} in position {at}: ordinal not in range(128)",
                bytes.get(at).copied().unwrap_or_default()
            )),
        },
        "latin1" | "latin" | "l1" | "iso88591" | "iso885918859" | "8859" | "cp819" => {
            Ok(bytes.iter().map(|b| char::from(*b)).collect())
        }
        "iso885915" | "latin9" | "l9" => Ok(bytes
            .iter()
            .map(|b| {
                LATIN9
                    .iter()
                    .find(|(at, _)| at == b)
                    .map_or(char::from(*b), |(_, c)| *c)
            })
            .collect()),
        _ => Err(format!("unknown encoding: {encoding}")),
    }
}

/// `lookup('file', ...)`: each file's content, stripped on the right (`rstrip`, default
/// true) and, with `lstrip`, on the left.
pub fn file(
    terms: &Value,
    options: &Vars,
    place: &LookupPlace,
    files: CtlFiles<'_>,
) -> Result<Vec<Value>, FileLookupError> {
    let mut out = Vec::new();
    for term in term_strings(terms) {
        let issue = |e: String| {
            plugin(
                LOOKUP_ERROR,
                format!("The 'file' lookup had an issue accessing the file '{term}'. {e}"),
            )
        };
        let found = place
            .find(files, "files", &term)
            .filter(|f| files.is_file(f));
        let mut text = match found {
            Some(found) => text_of(files.bytes(&found).map_err(issue)?),
            None if place.local && term.starts_with('/') => {
                text_of(&read_local(&term).map_err(issue)?)
            }
            None => {
                return Err(issue(
                    "file not found, use -vvvvv to see paths searched".to_string(),
                ));
            }
        };
        if opt_bool(options, "lstrip", false) {
            text = text.trim_start().to_string();
        }
        if opt_bool(options, "rstrip", true) {
            text = text.trim_end().to_string();
        }
        out.push(Value::String(text));
    }
    Ok(out)
}

/// A variables file of a local host's own, read as Ansible's loader reads YAML (JSON is
/// YAML): one mapping.
fn local_vars(bytes: &[u8]) -> Result<Vars, String> {
    let text = std::str::from_utf8(bytes).map_err(|_| "the file is not UTF-8".to_string())?;
    let docs = crate::filters::yaml_in::load_all(text)?;
    match docs.into_iter().next() {
        None => Ok(Vars::new()),
        Some(v) if v.is_none() => Ok(Vars::new()),
        Some(v) => match serde_json::to_value(&v).map_err(|e| e.to_string())? {
            Value::Object(m) => Ok(m),
            _ => Err("a variables file must hold a mapping".into()),
        },
    }
}

/// The most a file lookup reads from a local host's own files.
const LOCAL_READ_LIMIT: u64 = 64 << 20;

/// A regular file of this machine, for a local host's file lookup (bounded, so that a
/// lookup of `/dev/zero` or a huge log fails instead of exhausting memory).
fn read_local(path: &str) -> Result<Vec<u8>, String> {
    use std::io::Read as _;
    let missing = || "file not found, use -vvvvv to see paths searched".to_string();
    let f = std::fs::File::open(path).map_err(|_| missing())?;
    let meta = f.metadata().map_err(|_| missing())?;
    if !meta.is_file() {
        return Err(missing());
    }
    let mut buf = Vec::new();
    f.take(LOCAL_READ_LIMIT + 1)
        .read_to_end(&mut buf)
        .map_err(|e| e.to_string())?;
    if buf.len() as u64 > LOCAL_READ_LIMIT {
        return Err(format!(
            "the file is larger than {} MiB, the most a lookup reads",
            LOCAL_READ_LIMIT >> 20
        ));
    }
    Ok(buf)
}

/// `lookup('unvault', ...)`: each file's content as it is (the packer carries a vaulted
/// file only decrypted, and only when a task names it literally).
pub fn unvault(
    terms: &Value,
    place: &LookupPlace,
    files: CtlFiles<'_>,
) -> Result<Vec<Value>, FileLookupError> {
    let mut out = Vec::new();
    for term in term_strings(terms) {
        let found = place
            .find(files, "files", &term)
            .filter(|f| files.is_file(f))
            .ok_or_else(|| {
                plugin(
                    PARSER_ERROR,
                    format!("Unable to find file matching \"{term}\" "),
                )
            })?;
        let bytes = files.bytes(&found).map_err(|e| plugin(ANSIBLE_ERROR, e))?;
        out.push(Value::String(text_of(bytes)));
    }
    Ok(out)
}

/// `first_found`'s `_splitter`: `value` cut at any of `chars`.
fn split_on(value: &Value, chars: &[char]) -> Vec<String> {
    match value {
        Value::String(s) => s
            .split(|c| chars.contains(&c))
            .map(str::to_string)
            .collect(),
        Value::Array(items) => items.iter().flat_map(|v| split_on(v, chars)).collect(),
        Value::Null => Vec::new(),
        other => vec![other.to_string()],
    }
}

/// `lookup('first_found', ...)`: the first of the named files (strings, lists, or
/// mappings with `files`, `paths` and `skip`) found in the search path's `subdir`
/// (`files`, or what the task's action implies for `with_first_found`), as a
/// controller path; `render` templates a name (one that names something undefined is
/// passed over, as Ansible does).
pub fn first_found(
    terms: &Value,
    options: &Vars,
    subdir: &str,
    place: &LookupPlace,
    files: CtlFiles<'_>,
    render: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<Value>, FileLookupError> {
    let mut terms = match terms {
        Value::Array(items) => items.clone(),
        other => vec![other.clone()],
    };
    if terms.is_empty()
        && let Some(f) = options.get("files")
    {
        terms = vec![f.clone()];
    }
    let mut skip = opt_bool(options, "skip", false);
    let mut search = Vec::new();
    process_terms(&terms, options, &mut search, &mut skip)?;
    for name in search {
        let Some(name) = render(&name) else {
            continue;
        };
        if let Some(found) = place.find(files, subdir, &name) {
            return Ok(vec![Value::String(crate::resolve::normalize(&found))]);
        }
        // A local host is the controller: an absolute name is looked for on it too.
        if place.local && name.starts_with('/') && std::path::Path::new(&name).exists() {
            return Ok(vec![Value::String(crate::resolve::normalize(&name))]);
        }
    }
    if skip {
        return Ok(Vec::new());
    }
    Err(plugin(
        LOOKUP_ERROR,
        "No file was found when using first_found.",
    ))
}

fn process_terms(
    terms: &[Value],
    options: &Vars,
    out: &mut Vec<String>,
    skip: &mut bool,
) -> Result<(), FileLookupError> {
    for term in terms {
        let (files, paths) = match term {
            Value::Object(m) => {
                for k in m.keys() {
                    if !["files", "paths", "skip"].contains(&k.as_str()) {
                        return Err(FileLookupError::Options(format!(
                            "Invalid option \"{k}\" for first_found"
                        )));
                    }
                }
                *skip = opt_bool(m, "skip", false);
                (
                    m.get("files").cloned().unwrap_or(Value::Array(Vec::new())),
                    m.get("paths").cloned().unwrap_or(Value::Array(Vec::new())),
                )
            }
            Value::String(s) => (
                Value::Array(vec![Value::String(s.clone())]),
                options.get("paths").cloned().unwrap_or(Value::Null),
            ),
            Value::Array(items) => {
                process_terms(items, options, out, skip)?;
                continue;
            }
            other => {
                return Err(plugin(
                    LOOKUP_ERROR,
                    format!(
                        "Invalid term supplied, can handle string, mapping or list of strings but got: {other}"
                    ),
                ));
            }
        };
        let filelist = split_on(&files, &[',', ';']);
        let pathlist = split_on(&paths, &[',', ':', ';']);
        if !pathlist.is_empty() {
            for path in &pathlist {
                for f in &filelist {
                    out.push(join(path, f));
                }
            }
        } else if !filelist.is_empty() {
            out.extend(filelist);
        } else if let Value::String(s) = term {
            out.push(s.clone());
        }
    }
    Ok(())
}

/// `lookup('fileglob', ...)`: the carried files matching each pattern (its directory
/// part found in the search path's `files`, or, for a bare pattern, each search path's
/// `files/` and itself, the first that matches).
pub fn fileglob(terms: &Value, place: &LookupPlace, files: CtlFiles<'_>) -> Vec<Value> {
    let mut out = Vec::new();
    for term in term_strings(terms) {
        let (dir, pattern) = match term.rfind('/') {
            Some(i) => (term.get(..i).unwrap_or(""), term.get(i + 1..).unwrap_or("")),
            None => ("", term.as_str()),
        };
        let dirs: Vec<String> = if !dir.is_empty() || term.starts_with('/') {
            let dir = if dir.is_empty() { "/" } else { dir };
            let carried = place.find(files, "files", dir);
            // On the controller, a directory the payload does not carry is found
            // where Ansible finds it.
            let here = || {
                let candidates = crate::resolve::stack_candidates(
                    &place.search,
                    "files",
                    dir,
                    place.in_role,
                    &place.basedir,
                );
                candidates
                    .into_iter()
                    .find(|c| std::path::Path::new(c).is_dir())
            };
            carried
                .or_else(|| place.local.then(here).flatten())
                .into_iter()
                .collect()
        } else {
            place
                .search
                .iter()
                .flat_map(|p| [join(p, "files"), p.clone()])
                .collect()
        };
        for d in dirs {
            let mut hits: Vec<String> = files
                .walk(&d, 1)
                .into_iter()
                .filter(|(root, _)| root.trim_end_matches('/') == d.trim_end_matches('/'))
                .flat_map(|(root, names)| {
                    names
                        .into_iter()
                        .filter(|n| glob(pattern, n))
                        .map(move |n| join(&root, &n))
                })
                .filter(|p| files.shared.files.contains_key(p))
                .collect();
            // On the controller itself the directory is read as it is now, as Ansible
            // globs it (files a task made during the run, ones no task names).
            if hits.is_empty() && place.local {
                hits = local_glob(&d, pattern);
            }
            if !hits.is_empty() {
                hits.sort();
                out.extend(hits.into_iter().map(Value::String));
                break;
            }
        }
    }
    out
}

/// The regular files of this machine's directory `dir` whose names match `pattern`.
fn local_glob(dir: &str, pattern: &str) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| glob(pattern, n))
        .map(|n| join(dir, &n))
        .filter(|p| std::path::Path::new(p).is_file())
        .collect()
}

/// Python's `glob` of one path component: `*`, `?` and `[...]` as `fnmatch`, and a
/// leading `.` only matched by a pattern that starts with one.
fn glob(pattern: &str, name: &str) -> bool {
    if name.starts_with('.') && !pattern.starts_with('.') {
        return false;
    }
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    glob_at(&p, &n)
}

fn glob_at(p: &[char], n: &[char]) -> bool {
    match p.split_first() {
        None => n.is_empty(),
        Some(('*', rest)) => (0..=n.len()).any(|i| n.get(i..).is_some_and(|t| glob_at(rest, t))),
        Some(('?', rest)) => n.split_first().is_some_and(|(_, t)| glob_at(rest, t)),
        Some(('[', rest)) => {
            let negate = rest.first() == Some(&'!');
            let start = usize::from(negate);
            let close = rest
                .iter()
                .enumerate()
                .skip(start + 1)
                .find(|(_, c)| **c == ']')
                .map(|(i, _)| i);
            match (close, n.split_first()) {
                (Some(close), Some((c, t))) => {
                    let body = rest.get(start..close).unwrap_or(&[]);
                    let mut hit = false;
                    let mut i = 0;
                    while let Some(&lo) = body.get(i) {
                        if body.get(i + 1) == Some(&'-')
                            && let Some(&hi) = body.get(i + 2)
                        {
                            hit |= lo <= *c && *c <= hi;
                            i += 3;
                        } else {
                            hit |= lo == *c;
                            i += 1;
                        }
                    }
                    hit != negate && glob_at(rest.get(close + 1..).unwrap_or(&[]), t)
                }
                (Some(_), None) => false,
                (None, Some(('[', t))) => glob_at(rest, t),
                (None, _) => false,
            }
        }
        Some((c, rest)) => n
            .split_first()
            .is_some_and(|(nc, t)| nc == c && glob_at(rest, t)),
    }
}

/// `lookup('template', ...)`: each template found in the search path's `templates/`,
/// rendered by `render` with the variables in scope plus Ansible's `template_*`
/// variables and the `template_vars` option.
pub fn template(
    terms: &Value,
    options: &Vars,
    place: &LookupPlace,
    files: CtlFiles<'_>,
    render: &dyn Fn(&str, &Vars, &TemplateSetup) -> Result<String, String>,
) -> Result<Vec<Value>, FileLookupError> {
    let convert = match options.get("convert_data") {
        None | Some(Value::Null) => true,
        Some(Value::Bool(b)) => *b,
        Some(Value::String(t)) => crate::modules::args::truthy_str(t).unwrap_or(true),
        Some(_) => true,
    };
    let delimiter = |name: &str, default: &str| match options.get(name) {
        Some(Value::String(s)) => s.clone(),
        _ => default.to_string(),
    };
    let syntax = [
        delimiter("variable_start_string", "{{"),
        delimiter("variable_end_string", "}}"),
        delimiter("comment_start_string", "{#"),
        delimiter("comment_end_string", "#}"),
    ];
    let mut out = Vec::new();
    for term in term_strings(terms) {
        let found = place
            .find(files, "templates", &term)
            .filter(|f| files.is_file(f))
            .ok_or_else(|| {
                plugin(
                    ANSIBLE_ERROR,
                    format!("the template file {term} could not be found for the lookup"),
                )
            })?;
        let source = text_of(files.bytes(&found).map_err(|e| plugin(ANSIBLE_ERROR, e))?);
        let mut extra = Vars::new();
        extra.insert("template_path".into(), Value::String(found.clone()));
        extra.insert("template_fullpath".into(), Value::String(found.clone()));
        extra.insert("template_destpath".into(), Value::Null);
        extra.insert("template_host".into(), Value::String(String::new()));
        if let Some(Value::Object(tv)) = options.get("template_vars") {
            extra.extend(tv.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        // Jinja's search path for includes: the template's directory, then each entry
        // of `ansible_search_path` with `templates/` and without, as the plugin sets it.
        let mut search = vec![crate::resolve::dirname(&found).to_string()];
        for p in &place.search {
            search.push(crate::resolve::join(p, "templates"));
            search.push(p.clone());
        }
        let setup = TemplateSetup {
            search,
            syntax: syntax.clone(),
            ..TemplateSetup::default()
        };
        let text = render(&source, &extra, &setup).map_err(|e| plugin(ANSIBLE_ERROR, e))?;
        // convert_data (the default): text that reads as a Python literal becomes it.
        out.push(
            convert
                .then(|| crate::pyliteral::convert_rendered(&text))
                .flatten()
                .unwrap_or(Value::String(text)),
        );
    }
    Ok(out)
}

/// How a template lookup has its template rendered: where `{% include %}`,
/// `{% import %}` and `{% extends %}` find other templates among the carried files, and
/// the variable and comment delimiters (`{{`, `}}`, `{#`, `#}` unless the lookup's
/// options change them).
#[derive(Debug, Clone)]
pub struct TemplateSetup {
    /// Directories, in order.
    pub search: Vec<String>,
    /// Variable start and end, comment start and end.
    pub syntax: [String; 4],
    /// Block start and end.
    pub block: [String; 2],
    /// Jinja's `trim_blocks` (on in Ansible's template lookup and module).
    pub trim_blocks: bool,
    /// Jinja's `lstrip_blocks`.
    pub lstrip_blocks: bool,
    /// Jinja's `line_statement_prefix` and `line_comment_prefix` (none by default).
    pub line_prefixes: [Option<String>; 2],
}

impl Default for TemplateSetup {
    /// Jinja's delimiters, with Ansible's `trim_blocks`; no search path.
    fn default() -> Self {
        TemplateSetup {
            search: Vec::new(),
            syntax: ["{{", "}}", "{#", "#}"].map(String::from),
            block: ["{%", "%}"].map(String::from),
            trim_blocks: true,
            lstrip_blocks: false,
            line_prefixes: [None, None],
        }
    }
}

/// Renders `source` with `env`'s filters and settings, `setup`'s delimiters, and
/// includes read from the files of the run ([`with_files`]) along `setup.search`, as
/// Jinja's FileSystemLoader reads them on the controller.
pub fn render_with_setup(
    env: &minijinja::Environment<'_>,
    source: &str,
    ctx: &minijinja::value::Value,
    setup: &TemplateSetup,
) -> Result<String, minijinja::Error> {
    let mut env = env.clone();
    let [vs, ve, cs, ce] = &setup.syntax;
    let [bs, be] = &setup.block;
    let mut syntax = minijinja::syntax::SyntaxConfig::builder();
    syntax
        .variable_delimiters(vs.clone(), ve.clone())
        .block_delimiters(bs.clone(), be.clone())
        .comment_delimiters(cs.clone(), ce.clone());
    if let [Some(statement), _] = &setup.line_prefixes {
        syntax.line_statement_prefix(statement.clone());
    }
    if let [_, Some(comment)] = &setup.line_prefixes {
        syntax.line_comment_prefix(comment.clone());
    }
    let syntax = syntax.build()?;
    env.set_syntax(syntax);
    env.set_trim_blocks(setup.trim_blocks);
    env.set_lstrip_blocks(setup.lstrip_blocks);
    // Jinja's default, which Ansible keeps: an included template loses its final
    // newline; the template itself gets its own back (`preserve_trailing_newlines`).
    env.set_keep_trailing_newline(false);
    let shared = FILES.with(|c| c.borrow().clone()).unwrap_or_default();
    let search = setup.search.clone();
    env.set_loader(move |name: &str| {
        let files = CtlFiles::new(&shared);
        for dir in &search {
            let path = crate::resolve::join(dir, name);
            if files.is_file(&path) {
                let bytes = files.bytes(&path).map_err(|e| {
                    minijinja::Error::new(minijinja::ErrorKind::InvalidOperation, e)
                })?;
                return Ok(Some(text_of(bytes)));
            }
        }
        Ok(None)
    });
    let out = env.render_str(source, ctx)?;
    Ok(crate::template::with_trailing_newlines(source, out))
}

/// An option's text (`what` names it in errors), or its default.
fn opt_text(options: &Vars, name: &str, default: &str) -> String {
    match options.get(name) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => default.to_string(),
        Some(other) => other.to_string(),
    }
}

/// `ini`'s inline form, `key section=s file=f`: the key, and the options it sets (a
/// value runs until the next `name=` of a known option, spaces kept).
fn ini_inline(term: &str, known: &[&str]) -> (String, Vars) {
    let mut key = String::new();
    let mut opts = Vars::new();
    let mut current: Option<String> = None;
    for (i, phrase) in term.split_whitespace().enumerate() {
        let named = known
            .iter()
            .find(|k| phrase.starts_with(&format!("{k}=")))
            .map(|k| k.to_string());
        match named {
            Some(k) => {
                let v = phrase.get(k.len() + 1..).unwrap_or("").to_string();
                opts.insert(k.clone(), Value::String(v));
                current = Some(k);
            }
            None if i == 0 => key = phrase.to_string(),
            None => match &current {
                Some(k) => {
                    if let Some(Value::String(v)) = opts.get_mut(k) {
                        v.push(' ');
                        v.push_str(phrase);
                    }
                }
                None => {
                    key.push(' ');
                    key.push_str(phrase);
                }
            },
        }
    }
    (key, opts)
}

/// Ansible's `split_args` as `parse_kv` uses it: words split at whitespace outside
/// quotes, the quotes kept (`"The Rock" Johnson` is two words, the first quoted).
fn split_args(text: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    for c in text.chars() {
        match quote {
            Some(q) if c == q => {
                quote = None;
                cur.push(c);
            }
            Some(_) => cur.push(c),
            None if c == '"' || c == '\'' => {
                quote = Some(c);
                cur.push(c);
            }
            None if c.is_whitespace() => {
                if !cur.is_empty() {
                    words.push(std::mem::take(&mut cur));
                }
            }
            None => cur.push(c),
        }
    }
    if !cur.is_empty() {
        words.push(cur);
    }
    words
}

/// An INI file's sections, each a list of keys and values (`None`: a key with no value).
type IniSections = BTreeMap<String, Vec<(String, Option<String>)>>;

/// configparser's `BasicInterpolation` of option `key`'s `raw` value in `section`:
/// `%(name)s` is the value of option `name` of the section (or of `DEFAULT`), itself
/// interpolated, `%%` is `%`; anything else after `%` is its error, as is a name that
/// is no option, or references deeper than its limit of 10.
fn interpolate(
    sections: &IniSections,
    section: &str,
    key: &str,
    raw: &str,
    case_sensitive: bool,
    depth: usize,
) -> Result<String, String> {
    const MAX_DEPTH: usize = 10;
    if depth > MAX_DEPTH {
        return Err(format!(
            "Recursion limit exceeded in value substitution: option '{key}' in section '{section}' contains an interpolation key which cannot be substituted in {MAX_DEPTH} steps. Raw value: '{raw}'"
        ));
    }
    let find = |name: &str| {
        [section, "DEFAULT"].iter().find_map(|s| {
            sections
                .get(*s)?
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone().unwrap_or_default())
        })
    };
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(at) = rest.find('%') {
        out.push_str(rest.get(..at).unwrap_or_default());
        let after = rest.get(at + 1..).unwrap_or_default();
        if let Some(tail) = after.strip_prefix('%') {
            out.push('%');
            rest = tail;
        } else if let Some(body) = after.strip_prefix('(')
            && let Some(close) = body.find(")s")
        {
            let name = body.get(..close).unwrap_or_default();
            let wanted = if case_sensitive {
                name.to_string()
            } else {
                name.to_lowercase()
            };
            let Some(value) = find(&wanted) else {
                return Err(format!(
                    "Bad value substitution: option '{key}' in section '{section}' contains an interpolation key '{wanted}' which is not a valid option name. Raw value: '{raw}'"
                ));
            };
            out.push_str(&interpolate(
                sections,
                section,
                &wanted,
                &value,
                case_sensitive,
                depth + 1,
            )?);
            rest = body.get(close + 2..).unwrap_or_default();
        } else {
            return Err(format!(
                "'%' must be followed by '%' or '(', found: '%{after}'"
            ));
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// An INI file as Python's `configparser` reads it: sections of `key = value` or
/// `key: value` (keys lowercased unless `case_sensitive`), `#`/`;` comment lines,
/// indented lines continuing a value.
pub(crate) fn parse_ini(
    text: &str,
    case_sensitive: bool,
    allow_no_value: bool,
) -> Result<IniSections, String> {
    let mut out: IniSections = BTreeMap::new();
    let mut section: Option<String> = None;
    for (n, raw) in text.lines().enumerate() {
        let line = raw.trim_end();
        let trimmed = line.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with(';') {
            continue;
        }
        if line.starts_with(char::is_whitespace)
            && let Some(sec) = &section
            && let Some((_, Some(v))) = out.get_mut(sec).and_then(|e| e.last_mut())
        {
            v.push('\n');
            v.push_str(trimmed);
            continue;
        }
        if let Some(name) = trimmed.strip_prefix('[').and_then(|t| t.strip_suffix(']')) {
            section = Some(name.to_string());
            out.entry(name.to_string()).or_default();
            continue;
        }
        let Some(sec) = &section else {
            return Err(format!(
                "File contains no section headers. line {}: {raw:?}",
                n + 1
            ));
        };
        let (k, v) = match trimmed.find(['=', ':']) {
            Some(at) => (
                trimmed.get(..at).unwrap_or("").trim(),
                Some(trimmed.get(at + 1..).unwrap_or("").trim().to_string()),
            ),
            None if allow_no_value => (trimmed, None),
            None => {
                return Err(format!(
                    "Source contains parsing errors: line {}: {raw:?}",
                    n + 1
                ));
            }
        };
        let k = if case_sensitive {
            k.to_string()
        } else {
            k.to_lowercase()
        };
        let entries = out.entry(sec.clone()).or_default();
        if entries.iter().any(|(name, _)| *name == k) {
            return Err(format!(
                "While reading from '<???>' [line {:2}]: option '{k}' in section '{sec}' already exists",
                n + 1
            ));
        }
        entries.push((k, v));
    }
    Ok(out)
}

/// `lookup('ini', ...)`: values from an INI (or Java properties) file found in the
/// search path's `files/`.
pub fn ini(
    terms: &Value,
    options: &Vars,
    place: &LookupPlace,
    files: CtlFiles<'_>,
) -> Result<Vec<Value>, FileLookupError> {
    const KNOWN: [&str; 9] = [
        "type",
        "file",
        "section",
        "re",
        "encoding",
        "default",
        "case_sensitive",
        "allow_no_value",
        "interpolation",
    ];
    let mut out = Vec::new();
    for term in term_strings(terms) {
        let mut opts = options.clone();
        let mut key = term.clone();
        if term.contains('=') || term.trim().contains(' ') {
            let (k, inline) = ini_inline(&term, &KNOWN);
            // `name=value` that names no option is Ansible's error before anything else.
            if let Some((name, _)) = k.split_once('=') {
                return Err(plugin(
                    LOOKUP_ERROR,
                    format!("{name} is not a valid option."),
                ));
            }
            if k.is_empty() {
                return Err(FileLookupError::Options(format!(
                    "No key to lookup was provided as first term with in string inline options: {term}"
                )));
            }
            key = k;
            opts.extend(inline);
        }
        let file_name = opt_text(&opts, "file", "ansible.ini");
        let properties = opt_text(&opts, "type", "ini") == "properties";
        let section = if properties {
            "java_properties".to_string()
        } else {
            opt_text(&opts, "section", "global")
        };
        let found = place
            .find(files, "files", &file_name)
            .filter(|f| files.is_file(f))
            .ok_or_else(|| {
                plugin(
                    ANSIBLE_ERROR,
                    format!("could not locate file in lookup: {file_name}"),
                )
            })?;
        let bytes = files.bytes(&found).map_err(|e| plugin(ANSIBLE_ERROR, e))?;
        let mut text = decode(bytes, &opt_text(&opts, "encoding", "utf-8"))
            .map_err(|e| plugin(ANSIBLE_ERROR, e))?;
        if properties {
            text = format!("[java_properties]\n{text}");
        }
        let allow = opt_bool(
            &opts,
            "allow_no_value",
            opt_bool(&opts, "allow_none", false),
        );
        let parsed =
            parse_ini(&text, opt_bool(&opts, "case_sensitive", false), allow).map_err(|e| {
                plugin(
                    LOOKUP_ERROR,
                    format!("Duplicate option in '{file_name}': {e}"),
                )
            })?;
        let Some(entries) = parsed.get(&section) else {
            return Err(plugin(
                LOOKUP_ERROR,
                format!("No section '{section}' in {file_name}"),
            ));
        };
        let lookup_key = if opt_bool(&opts, "case_sensitive", false) {
            key.clone()
        } else {
            key.to_lowercase()
        };
        // configparser's BasicInterpolation (`%(name)s`, `%%`) unless turned off.
        let entries: Vec<(String, Option<String>)> = if opt_bool(&opts, "interpolation", true) {
            let case_sensitive = opt_bool(&opts, "case_sensitive", false);
            entries
                .iter()
                .map(|(k, v)| {
                    let v = match v {
                        Some(raw) => Some(
                            interpolate(&parsed, &section, k, raw, case_sensitive, 1)
                                .map_err(|e| plugin(ANSIBLE_ERROR, e))?,
                        ),
                        None => None,
                    };
                    Ok((k.clone(), v))
                })
                .collect::<Result<_, FileLookupError>>()?
        } else {
            entries.clone()
        };
        let entries = &entries;
        if opt_bool(&opts, "re", false) {
            let re = crate::pyre::Pattern::new(&format!("^(?:{key})"))
                .map_err(|e| plugin(ANSIBLE_ERROR, e))?;
            for (k, v) in entries {
                if re
                    .is_match(k.as_bytes())
                    .map_err(|e| plugin(ANSIBLE_ERROR, e))?
                {
                    out.push(v.clone().map(Value::String).unwrap_or(Value::Null));
                }
            }
            continue;
        }
        match entries.iter().find(|(k, _)| *k == lookup_key) {
            Some((_, Some(v))) => out.push(Value::String(v.clone())),
            Some((_, None)) => {}
            None => out.push(options_default(&opts)),
        }
    }
    Ok(out)
}

/// The `default` option, `''` when not given.
fn options_default(opts: &Vars) -> Value {
    match opts.get("default") {
        Some(v) => v.clone(),
        None => Value::String(String::new()),
    }
}

/// One CSV record's fields, as Python's `csv` reader (excel dialect) splits a line.
fn csv_fields(line: &str, delimiter: char) -> Vec<String> {
    let mut out = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                field.push('"');
                chars.next();
            }
            '"' if quoted => quoted = false,
            '"' if field.is_empty() => quoted = true,
            c if c == delimiter && !quoted => out.push(std::mem::take(&mut field)),
            c => field.push(c),
        }
    }
    out.push(field);
    out
}

/// `lookup('csvfile', ...)`: the `col` field of the row whose `keycol` field is the key.
pub fn csvfile(
    terms: &Value,
    options: &Vars,
    place: &LookupPlace,
    files: CtlFiles<'_>,
) -> Result<Vec<Value>, FileLookupError> {
    let terms = term_strings(terms);
    if terms.is_empty() {
        return Err(plugin(
            ANSIBLE_ERROR,
            "Search key is required but was not found",
        ));
    }
    const KNOWN: [&str; 6] = ["file", "delimiter", "col", "keycol", "default", "encoding"];
    if let Some(k) = options.keys().find(|k| !KNOWN.contains(&k.as_str())) {
        return Err(plugin(ANSIBLE_ERROR, format!("{k} is not a valid option")));
    }
    let mut out = Vec::new();
    for term in terms {
        let mut opts = options.clone();
        // Ansible's parse_kv: `name=value` words are options, the others the key.
        let mut key_words = Vec::new();
        let words = split_args(&term);
        for w in &words {
            let w = w.as_str();
            let option = w.split_once('=').filter(|(k, _)| {
                !k.is_empty() && k.chars().all(|c| c.is_alphanumeric() || c == '_')
            });
            match option {
                Some((k, v)) => {
                    // A quoted value may hold the delimiter itself (`delimiter="<TAB>"`).
                    let v = ['"', '\'']
                        .iter()
                        .find_map(|q| v.strip_prefix(*q).and_then(|v| v.strip_suffix(*q)))
                        .unwrap_or(v);
                    if !KNOWN.contains(&k) {
                        return Err(plugin(ANSIBLE_ERROR, format!("{k} is not a valid option")));
                    }
                    opts.insert(k.to_string(), Value::String(v.to_string()));
                }
                None => key_words.push(w),
            }
        }
        if key_words.is_empty() {
            return Err(plugin(
                ANSIBLE_ERROR,
                "Search key is required but was not found",
            ));
        }
        let key = key_words.join(" ");
        let mut delimiter = opt_text(&opts, "delimiter", "TAB");
        if delimiter == "TAB" || delimiter == "\\t" {
            delimiter = "\t".to_string();
        }
        let delim = delimiter.chars().next().unwrap_or('\t');
        // `col` is text, made a number only for a row that matched (Python's int()).
        let col_text = opt_text(&opts, "col", "1");
        let keycol: usize = opt_text(&opts, "keycol", "0").trim().parse().unwrap_or(0);
        let file_name = opt_text(&opts, "file", "ansible.csv");
        let found = place
            .find(files, "files", &file_name)
            .filter(|f| files.is_file(f))
            // Ansible opens the path its search found, None for a missing file.
            .ok_or_else(|| {
                plugin(
                    ANSIBLE_ERROR,
                    "csvfile: expected str, bytes or os.PathLike object, not NoneType",
                )
            })?;
        let bytes = files.bytes(&found).map_err(|e| plugin(ANSIBLE_ERROR, e))?;
        let text = decode(bytes, &opt_text(&opts, "encoding", "utf-8"))
            .map_err(|e| plugin(ANSIBLE_ERROR, e))?;
        let mut value = opts.get("default").cloned().filter(|v| !v.is_null());
        for line in text.lines() {
            let row = csv_fields(line, delim);
            if row.get(keycol).is_some_and(|k| *k == key) {
                let col: i64 = col_text.trim().parse().map_err(|_| {
                    plugin(
                        ANSIBLE_ERROR,
                        format!("csvfile: invalid literal for int() with base 10: '{col_text}'"),
                    )
                })?;
                // Python's negative indices count from the end.
                let at = if col < 0 {
                    i64::try_from(row.len()).unwrap_or(i64::MAX) + col
                } else {
                    col
                };
                let v = usize::try_from(at)
                    .ok()
                    .and_then(|i| row.get(i))
                    .cloned()
                    .ok_or_else(|| {
                        plugin(
                            ANSIBLE_ERROR,
                            "csvfile: list index out of range".to_string(),
                        )
                    })?;
                value = Some(Value::String(v));
                break;
            }
        }
        out.extend(value);
    }
    Ok(out)
}

/// How a file lookup templates: a name (`first_found`'s, `None` when it names something
/// undefined) and a template with extra variables (`template`'s).
pub struct Render<'r> {
    /// Templates a file name.
    pub name: &'r dyn Fn(&str) -> Option<String>,
    /// Renders a template's text with extra variables over those in scope.
    pub template: &'r dyn Fn(&str, &Vars, &TemplateSetup) -> Result<String, String>,
}

/// Runs the file lookup `name` (short name, one of [`FILE_LOOKUPS`]); `subdir` is where
/// `first_found` looks (`files`, or `templates`/`vars` for a `with_first_found` on a
/// template or include_vars task). `None` for any other lookup.
pub fn run_file_lookup(
    name: &str,
    terms: &Value,
    options: &Vars,
    subdir: &str,
    place: &LookupPlace,
    files: CtlFiles<'_>,
    render: &Render<'_>,
) -> Option<Result<Vec<Value>, FileLookupError>> {
    Some(match name {
        "file" => file(terms, options, place, files),
        "first_found" => first_found(terms, options, subdir, place, files, render.name),
        "fileglob" => Ok(fileglob(terms, place, files)),
        "template" => template(terms, options, place, files, render.template),
        "unvault" => unvault(terms, place, files),
        "ini" => ini(terms, options, place, files),
        "csvfile" => csvfile(terms, options, place, files),
        _ => return None,
    })
}

// ---------------------------------------------------------------------------
// The files of the run, for lookups called from templates.

thread_local! {
    /// The controller files of the plan being run on this thread.
    static FILES: std::cell::RefCell<Option<std::sync::Arc<Shared>>> =
        const { std::cell::RefCell::new(None) };
}

/// Runs `f` with `shared`'s files as those the file lookups read.
pub fn with_files<R>(shared: &std::sync::Arc<Shared>, f: impl FnOnce() -> R) -> R {
    let before = FILES.with(|c| c.replace(Some(std::sync::Arc::clone(shared))));
    let out = f();
    FILES.with(|c| *c.borrow_mut() = before);
    out
}

/// Variables over a template context: what `template` renders with.
#[derive(Debug)]
struct Layered {
    extra: BTreeMap<String, minijinja::value::Value>,
    base: minijinja::value::Value,
}

impl minijinja::value::Object for Layered {
    fn repr(self: &std::sync::Arc<Self>) -> minijinja::value::ObjectRepr {
        minijinja::value::ObjectRepr::Map
    }

    fn get_value(
        self: &std::sync::Arc<Self>,
        key: &minijinja::value::Value,
    ) -> Option<minijinja::value::Value> {
        if let Some(v) = key.as_str().and_then(|k| self.extra.get(k)) {
            return Some(v.clone());
        }
        self.base.get_item(key).ok().filter(|v| !v.is_undefined())
    }

    fn enumerate(self: &std::sync::Arc<Self>) -> minijinja::value::Enumerator {
        let mut keys: Vec<minijinja::value::Value> = self
            .extra
            .keys()
            .map(|k| minijinja::value::Value::from(k.as_str()))
            .collect();
        if let Ok(it) = self.base.try_iter() {
            keys.extend(it.filter(|k| k.as_str().is_none_or(|k| !self.extra.contains_key(k))));
        }
        minijinja::value::Enumerator::Values(keys)
    }
}

/// `base` (a template context) with `extra` over it: the variables a template renders
/// with when Ansible adds its own (`template_path`, `ansible_managed`, ...).
pub fn layered(base: &minijinja::value::Value, extra: &Vars) -> minijinja::value::Value {
    minijinja::value::Value::from_object(Layered {
        extra: extra
            .iter()
            .map(|(k, v)| (k.clone(), crate::template::to_jvalue(v)))
            .collect(),
        base: base.clone(),
    })
}

/// A template renderer: source and variables (and, for a template lookup, its setup)
/// to text.
pub type RenderFn<'r> =
    &'r dyn Fn(&str, &minijinja::value::Value, Option<&TemplateSetup>) -> Result<String, String>;

/// A file lookup called from a template whose variables are `vars`, on the files of the
/// run ([`with_files`]): what the lookup registry calls for the names in
/// [`FILE_LOOKUPS`] (`None` for another name); `render` renders the names and templates
/// it finds with the caller's engine. Outside a run (no files), every file is missing.
pub fn lookup_in_scope(
    name: &str,
    terms: &Value,
    options: &Vars,
    subdir: &str,
    vars: &minijinja::value::Value,
    render: RenderFn<'_>,
) -> Option<Result<Vec<Value>, FileLookupError>> {
    let shared = FILES.with(|c| c.borrow().clone()).unwrap_or_default();
    let files = CtlFiles::new(&shared);
    let place = LookupPlace::from_vars(vars);
    let name_render = |t: &str| -> Option<String> {
        if crate::template::is_template(t) {
            render(t, vars, None).ok()
        } else {
            Some(t.to_string())
        }
    };
    let template_render = |src: &str, extra: &Vars, setup: &TemplateSetup| {
        render(src, &layered(vars, extra), Some(setup))
    };
    let render = Render {
        name: &name_render,
        template: &template_render,
    };
    run_file_lookup(name, terms, options, subdir, &place, files, &render)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{HostFile, Library};
    use serde_json::json;

    fn shared(vars: &[(&str, Value)]) -> Shared {
        let mut s = Shared::default();
        for (path, v) in vars {
            s.files.insert(
                path.to_string(),
                HostFile {
                    content: v.to_string().into_bytes(),
                    mode: None,
                },
            );
            s.library
                .vars
                .insert(path.to_string(), Parsed::Ok(v.clone()));
        }
        s
    }

    #[test]
    fn ini_values_interpolate_as_configparser_does() {
        let sections = parse_ini(
            "[DEFAULT]\nroot = /srv\n[global]\nhome_dir: /Users\nmy_dir: %(home_dir)s/lumberjack\nweb = %(ROOT)s/www 100%%\nbad = 5%\nloop = %(loop)s\n",
            false,
            false,
        )
        .unwrap();
        let get = |k: &str| {
            let raw = sections["global"]
                .iter()
                .find(|(n, _)| n == k)
                .unwrap()
                .1
                .clone()
                .unwrap();
            interpolate(&sections, "global", k, &raw, false, 1)
        };
        assert_eq!(get("my_dir").unwrap(), "/Users/lumberjack");
        assert_eq!(get("web").unwrap(), "/srv/www 100%");
        assert!(
            get("bad")
                .unwrap_err()
                .contains("'%' must be followed by '%' or '('")
        );
        assert!(
            get("loop")
                .unwrap_err()
                .contains("Recursion limit exceeded")
        );
    }

    #[test]
    fn encodings_decode_as_pythons_codecs() {
        let latin = b"\xe9t\xe9 \xa4";
        assert_eq!(decode(latin, "iso8859-1").unwrap(), "été ¤");
        assert_eq!(decode(latin, "ISO-8859-15").unwrap(), "été €");
        assert_eq!(decode("été".as_bytes(), "utf-8").unwrap(), "été");
        assert!(decode(latin, "ascii").unwrap_err().contains("position 0"));
        assert!(
            decode(latin, "klingon")
                .unwrap_err()
                .contains("unknown encoding")
        );
    }

    #[test]
    fn walk_groups_by_directory_with_depth() {
        let s = shared(&[
            ("/r/vars/b/x.yml", json!({})),
            ("/r/vars/a.yml", json!({})),
            ("/r/vars/b/c/y.yml", json!({})),
        ]);
        let f = CtlFiles::new(&s);
        assert_eq!(
            f.walk("/r/vars", 0),
            vec![
                ("/r/vars".to_string(), vec!["a.yml".to_string()]),
                ("/r/vars/b".to_string(), vec!["x.yml".to_string()]),
                ("/r/vars/b/c".to_string(), vec!["y.yml".to_string()]),
            ]
        );
        assert_eq!(f.walk("/r/vars", 2).len(), 2);
        assert!(f.is_dir("/r/vars/b") && !f.is_file("/r/vars/b"));
        assert!(f.is_file("/r/vars/a.yml"));
    }

    #[test]
    fn include_vars_dir_given_as_an_absolute_path_in_a_role_is_that_directory() {
        // include_vars target: `dir: "{{ role_path }}/vars2/hashes/"`; Ansible joins
        // role, 'vars' and dir with os.path.join, where an absolute dir stands alone.
        let s = shared(&[("/r/vars2/hashes/h.yml", json!({"k": 1}))]);
        let f = CtlFiles::new(&s);
        let place = crate::resolve::Place {
            roles: Vec::new(),
            task_dir: "/r/tasks",
            playbook_dir: "/p",
        };
        let args = json!({"dir": "/r/vars2/hashes/"})
            .as_object()
            .cloned()
            .unwrap();
        let got = include_vars(&args, &place, Some("/r"), f, false, &|_: &str| None).unwrap();
        assert_eq!(got.error, None);
        assert_eq!(Value::Object(got.vars), json!({"k": 1}));
    }

    #[test]
    fn merge_combines_mappings_recursively() {
        assert_eq!(
            merge(
                &json!({"a": {"x": 1, "y": 2}, "b": 1}),
                &json!({"a": {"y": 3}, "c": 2})
            ),
            json!({"a": {"x": 1, "y": 3}, "b": 1, "c": 2})
        );
        assert_eq!(merge(&json!([1]), &json!([2])), json!([2]));
    }

    #[test]
    fn a_list_or_refused_file_is_not_variables() {
        let mut s = shared(&[]);
        s.library = Library {
            tasks: [("/p/t.yml".to_string(), Parsed::Ok(vec![]))].into(),
            vars: [(
                "/p/bad.yml".to_string(),
                Parsed::Refused("bad.yml:2: nope".into()),
            )]
            .into(),
            unreadable: [("/p/v.yml".to_string(), "it is vault-encrypted".into())].into(),
            ..Library::default()
        };
        let f = CtlFiles::new(&s);
        assert_eq!(
            f.vars("/p/t.yml").unwrap_err(),
            "/p/t.yml must be stored as a dictionary/hash"
        );
        assert_eq!(f.vars("/p/bad.yml").unwrap_err(), "bad.yml:2: nope");
        assert!(f.vars("/p/v.yml").unwrap_err().contains("vault-encrypted"));
        assert!(f.vars("/p/none.yml").unwrap_err().contains("not among"));
    }

    /// The files of the project the lookup tests ran in with ansible-playbook 2.18.19
    /// (`/p` standing for its directory), as a payload carries them.
    fn lookup_project() -> (Shared, LookupPlace) {
        let mut s = Shared::default();
        for (path, content) in [
            ("/p/roles/r/files/foo1", "  hello \n\n"),
            ("/p/roles/r/files/a.txt", "a\n"),
            ("/p/roles/r/files/b.txt", "b\n"),
            ("/p/roles/r/files/.hidden.txt", "h\n"),
            ("/p/roles/r/files/sub/c.txt", "c\n"),
            ("/p/files/p.txt", "play\n"),
            ("/p/roles/r/templates/t.j2", "T {{ who }} {{ extra }}\n"),
            (
                "/p/roles/r/templates/hello.txt",
                "Hello {% include 'world.txt' %}!\n",
            ),
            ("/p/templates/world.txt", "world\n"),
            (
                "/p/roles/r/templates/custom.txt",
                "Hello [% who %][# no #] {{ x }}!\n",
            ),
            ("/p/roles/r/templates/dict.j2", "{'a': '{{ who }}'}\n"),
            (
                "/p/roles/r/templates/bad.txt",
                "{% include 'nowhere.txt' %}",
            ),
        ] {
            s.files.insert(
                path.to_string(),
                HostFile {
                    content: content.as_bytes().to_vec(),
                    mode: None,
                },
            );
        }
        let place = LookupPlace {
            search: vec!["/p/roles/r".into(), "/p/roles/r/tasks".into(), "/p".into()],
            basedir: "/p".into(),
            in_role: true,
            local: false,
        };
        (s, place)
    }

    fn strs(v: &[Value]) -> Vec<&str> {
        v.iter().filter_map(Value::as_str).collect()
    }

    #[test]
    fn first_found_as_ansible_finds() {
        let (s, place) = lookup_project();
        let f = CtlFiles::new(&s);
        let render = |t: &str| Some(t.to_string());
        let opts = Vars::new();
        let ff = |terms: Value| first_found(&terms, &opts, "files", &place, f, &render);
        assert_eq!(
            strs(&ff(json!(["does_not_exist", "foo1"])).unwrap()),
            ["/p/roles/r/files/foo1"]
        );
        assert_eq!(
            strs(&ff(json!([{"files": ["x.txt", "c.txt"], "paths": ["sub"]}])).unwrap()),
            ["/p/roles/r/files/sub/c.txt"]
        );
        assert_eq!(
            ff(json!([{"files": "nope", "skip": true}])).unwrap(),
            Vec::<Value>::new()
        );
        assert_eq!(
            ff(json!(["nope"])).unwrap_err(),
            plugin(LOOKUP_ERROR, "No file was found when using first_found.")
        );
        // Names that cannot be templated are passed over.
        let undefined = |t: &str| (t != "foo1").then(|| t.to_string());
        assert!(first_found(&json!(["foo1"]), &opts, "files", &place, f, &undefined).is_err());
    }

    /// A task read from `/p/`, in the playbook of `/p`, in no role.
    fn at_p() -> crate::resolve::Place<'static> {
        crate::resolve::Place {
            roles: Vec::new(),
            task_dir: "/p",
            playbook_dir: "/p",
        }
    }

    #[test]
    fn a_local_hosts_include_vars_reads_its_own_file_by_absolute_path() {
        // special_vars: a template task writes a YAML file into output_dir, then
        // include_vars reads it back on a host that is the controller.
        let s = Shared::default();
        let f = CtlFiles::new(&s);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v.yaml");
        std::fs::write(&path, "a: 1\nb: \"x\"\nc: yes\n").unwrap();
        let args = json!({"file": path.display().to_string()})
            .as_object()
            .cloned()
            .unwrap();
        let place = at_p();
        let none = |_: &str| None;
        let got = include_vars(&args, &place, None, f, true, &none).unwrap();
        assert_eq!(got.error, None);
        assert_eq!(
            Value::Object(got.vars),
            json!({"a": 1, "b": "x", "c": true})
        );
        assert_eq!(got.files, [path.display().to_string()]);
        // Not the controller: only carried files.
        let got = include_vars(&args, &place, None, f, false, &none).unwrap();
        assert!(got.error.unwrap().contains("Could not find or access"));
    }

    #[test]
    fn a_local_hosts_include_vars_dir_reads_its_own_directory_through_links() {
        // include_vars target: a delegated task links `test_symlink/symlink` to a
        // directory of variables files during the run; `dir:` then reads it on a host
        // that is the controller, following the link as os.walk(followlinks=True) does.
        let s = Shared::default();
        let f = CtlFiles::new(&s);
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("vars2/hashes");
        std::fs::create_dir_all(&real).unwrap();
        std::fs::write(real.join("hash2.yml"), "config: {b: 2}\nsecond: 2\n").unwrap();
        std::fs::write(real.join("hash1.yml"), "config: {a: 1}\nfirst: 1\n").unwrap();
        let linked = dir.path().join("test_symlink");
        std::fs::create_dir(&linked).unwrap();
        std::os::unix::fs::symlink(dir.path().join("vars2"), linked.join("symlink")).unwrap();
        let args = json!({"dir": linked.display().to_string()})
            .as_object()
            .cloned()
            .unwrap();
        let place = at_p();
        let none = |_: &str| None;
        let got = include_vars(&args, &place, None, f, true, &none).unwrap();
        assert_eq!(got.error, None);
        let at = |n: &str| format!("{}/symlink/hashes/{n}", linked.display());
        assert_eq!(got.files, [at("hash1.yml"), at("hash2.yml")]);
        // Later files win, whole values replaced (no hash_behaviour).
        assert_eq!(
            Value::Object(got.vars),
            json!({"config": {"b": 2}, "first": 1, "second": 2})
        );
        // Not the controller: only carried directories.
        let got = include_vars(&args, &place, None, f, false, &none).unwrap();
        assert!(got.error.unwrap().contains("directory does not exist"));
    }

    #[test]
    fn include_vars_of_an_empty_or_null_file_name_searches_nowhere() {
        // include_vars target: `file: "{{ lookup('first_found', ..., errors='ignore') }}"`
        // renders empty (or null): the action falls back to `_raw_params`, finds no
        // name, and says "Could not find file".
        let s = Shared::default();
        let f = CtlFiles::new(&s);
        let place = at_p();
        for name in [json!(null), json!("")] {
            let args = json!({"file": name}).as_object().cloned().unwrap();
            let got = include_vars(&args, &place, None, f, true, &|_: &str| None).unwrap();
            assert_eq!(
                got.error.as_deref(),
                Some(
                    "Could not find file on the Ansible Controller.\nIf you are using a module and expect the file to exist on the remote, see the remote_src option"
                )
            );
        }
    }

    #[test]
    fn a_local_hosts_file_lookup_reads_its_own_files_by_absolute_path() {
        // lookup_file: a file a task wrote during the run, on a host that is the
        // controller (ansible_connection: local).
        let (s, mut place) = lookup_project();
        let f = CtlFiles::new(&s);
        let none = Vars::new();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("foo.txt");
        std::fs::write(&path, "bar\n").unwrap();
        let term = json!([path.display().to_string()]);
        // Not the controller: only carried files are found.
        assert!(file(&term, &none, &place, f).is_err());
        place.local = true;
        assert_eq!(strs(&file(&term, &none, &place, f).unwrap()), ["bar"]);
        // A directory or a missing file is "file not found", as in Ansible.
        let dir_term = json!([dir.path().display().to_string()]);
        let e = format!("{:?}", file(&dir_term, &none, &place, f).unwrap_err());
        assert!(e.contains("file not found"), "{e}");
        // Relative names still come from the carried trees only.
        assert!(file(&json!(["foo.txt"]), &none, &place, f).is_err());
        // first_found looks for an absolute name on the machine too (lookup_first_found:
        // `paths: /etc` finds /etc/hosts).
        let name = |t: &str| Some(t.to_string());
        let found = first_found(
            &json!(["/nope/x", path.display().to_string()]),
            &none,
            "files",
            &place,
            f,
            &name,
        )
        .unwrap();
        assert_eq!(strs(&found), [path.display().to_string()]);
        place.local = false;
        assert!(first_found(&term, &none, "files", &place, f, &name).is_err());
    }

    #[test]
    fn fileglob_on_the_controller_reads_directories_the_payload_does_not_carry() {
        let t = tempfile::tempdir().unwrap();
        let base = t.path().display().to_string();
        std::fs::create_dir_all(t.path().join("files/made")).unwrap();
        for f in ["files/made/x.conf", "files/made/y.conf", "beside.txt"] {
            std::fs::write(t.path().join(f), "x").unwrap();
        }
        std::fs::create_dir(t.path().join("files/made/dir.conf")).unwrap();
        let s = Shared::default();
        let f = CtlFiles::new(&s);
        let mut place = LookupPlace {
            search: vec![base.clone()],
            basedir: base.clone(),
            in_role: false,
            local: true,
        };
        // A directory part is found in the search path's files/; only files match.
        assert_eq!(
            strs(&fileglob(&json!(["made/*.conf"]), &place, f)),
            [
                format!("{base}/files/made/x.conf"),
                format!("{base}/files/made/y.conf")
            ]
        );
        assert_eq!(
            strs(&fileglob(&json!(["beside.*"]), &place, f)),
            [format!("{base}/beside.txt")]
        );
        // Elsewhere the host is not the controller: only carried files count.
        place.local = false;
        assert!(fileglob(&json!(["made/*.conf", "beside.*"]), &place, f).is_empty());
    }

    #[test]
    fn file_fileglob_and_template_as_ansible_reads_them() {
        let (s, place) = lookup_project();
        let f = CtlFiles::new(&s);
        let none = Vars::new();
        assert_eq!(
            strs(&file(&json!(["foo1"]), &none, &place, f).unwrap()),
            ["  hello"]
        );
        let opts = json!({"rstrip": false, "lstrip": true})
            .as_object()
            .cloned()
            .unwrap();
        assert_eq!(
            strs(&file(&json!(["foo1"]), &opts, &place, f).unwrap()),
            ["hello \n\n"]
        );
        assert_eq!(
            file(&json!(["nope"]), &none, &place, f).unwrap_err(),
            plugin(
                LOOKUP_ERROR,
                "The 'file' lookup had an issue accessing the file 'nope'. file not found, use -vvvvv to see paths searched"
            )
        );
        // Ansible lists a.txt and b.txt in directory order; they are sorted here.
        assert_eq!(
            strs(&fileglob(&json!(["*.txt"]), &place, f)),
            ["/p/roles/r/files/a.txt", "/p/roles/r/files/b.txt"]
        );
        assert_eq!(
            strs(&fileglob(&json!(["sub/*.txt"]), &place, f)),
            ["/p/roles/r/files/sub/c.txt"]
        );
        assert_eq!(
            strs(&fileglob(&json!(["p*"]), &place, f)),
            ["/p/files/p.txt"]
        );
        let opts = json!({"template_vars": {"extra": "x"}})
            .as_object()
            .cloned()
            .unwrap();
        let render = |src: &str, extra: &Vars, _: &TemplateSetup| -> Result<String, String> {
            assert_eq!(extra["template_path"], json!("/p/roles/r/templates/t.j2"));
            let engine = crate::template::Engine::new();
            let mut vars = json!({"who": "me"}).as_object().cloned().unwrap();
            vars.extend(extra.clone());
            let ctx = minijinja::value::Value::from_serialize(&vars);
            engine.render_str(src, &ctx).map_err(|e| e.to_string())
        };
        assert_eq!(
            strs(&template(&json!(["t.j2"]), &opts, &place, f, &render).unwrap()),
            ["T me x\n"]
        );
    }

    #[test]
    fn ini_and_csvfile_as_ansible_reads_them() {
        let (mut s, place) = lookup_project();
        for (path, content) in [
            (
                "/p/files/app.ini",
                "[global]\nName = Top\n[prod]\nuser = bob\nUser2 = carol\nport: 80\nmulti = a\n  b\n",
            ),
            ("/p/files/app.properties", "a.b=1\nc = two\n"),
            (
                "/p/files/data.csv",
                "k1,v1,w1\n\"k,2\",\"v \"\"2\"\"\",w2\n",
            ),
            ("/p/files/data.tsv", "k1\tt1\n"),
        ] {
            s.files.insert(
                path.to_string(),
                HostFile {
                    content: content.as_bytes().to_vec(),
                    mode: None,
                },
            );
        }
        let f = CtlFiles::new(&s);
        let o = |v: Value| v.as_object().cloned().unwrap();
        let one = |r: Result<Vec<Value>, FileLookupError>| -> Value {
            let v = r.unwrap();
            if v.len() == 1 {
                v[0].clone()
            } else {
                Value::Array(v)
            }
        };
        // ansible-playbook 2.18.19: bob|Top|carol|dflt|a\nb|['bob', 'carol'], then
        // 1|two, then v1|v "2"|w1|t1|none.
        let prod = o(json!({"section": "prod", "file": "app.ini"}));
        assert_eq!(one(ini(&json!(["user"]), &prod, &place, f)), json!("bob"));
        assert_eq!(
            one(ini(
                &json!(["name"]),
                &o(json!({"file": "app.ini"})),
                &place,
                f
            )),
            json!("Top")
        );
        assert_eq!(
            one(ini(
                &json!(["user2 section=prod file=app.ini"]),
                &Vars::new(),
                &place,
                f
            )),
            json!("carol")
        );
        let mut with_default = prod.clone();
        with_default.insert("default".into(), json!("dflt"));
        assert_eq!(
            one(ini(&json!(["nope"]), &with_default, &place, f)),
            json!("dflt")
        );
        assert_eq!(one(ini(&json!(["multi"]), &prod, &place, f)), json!("a\nb"));
        let mut re = prod.clone();
        re.insert("re".into(), json!(true));
        assert_eq!(
            one(ini(&json!(["u.*"]), &re, &place, f)),
            json!(["bob", "carol"])
        );
        let props = o(json!({"type": "properties", "file": "app.properties"}));
        assert_eq!(one(ini(&json!(["a.b"]), &props, &place, f)), json!("1"));
        assert_eq!(one(ini(&json!(["c"]), &props, &place, f)), json!("two"));
        assert_eq!(
            ini(
                &json!(["x"]),
                &o(json!({"section": "nosuch", "file": "app.ini"})),
                &place,
                f
            )
            .unwrap_err(),
            plugin(LOOKUP_ERROR, "No section 'nosuch' in app.ini")
        );
        let csv = o(json!({"file": "data.csv", "delimiter": ","}));
        assert_eq!(one(csvfile(&json!(["k1"]), &csv, &place, f)), json!("v1"));
        assert_eq!(
            one(csvfile(&json!(["k,2"]), &csv, &place, f)),
            json!("v \"2\"")
        );
        let mut col2 = csv.clone();
        col2.insert("col".into(), json!(2));
        assert_eq!(one(csvfile(&json!(["k1"]), &col2, &place, f)), json!("w1"));
        assert_eq!(
            one(csvfile(
                &json!(["k1"]),
                &o(json!({"file": "data.tsv"})),
                &place,
                f
            )),
            json!("t1")
        );
        let mut dflt = csv.clone();
        dflt.insert("default".into(), json!("none"));
        assert_eq!(
            one(csvfile(&json!(["zz"]), &dflt, &place, f)),
            json!("none")
        );
    }

    #[test]
    fn lookups_called_from_templates_read_the_files_of_the_run() {
        let (s, _) = lookup_project();
        let shared = std::sync::Arc::new(s);
        let vars = minijinja::value::Value::from_serialize(json!({
            "ansible_search_path": ["/p/roles/r", "/p/roles/r/tasks", "/p"],
            "playbook_dir": "/p",
            "role_path": "/p/roles/r",
            "who": "me",
            "name": "foo1",
        }));
        let engine = crate::template::Engine::new();
        let render = |s: &str, v: &minijinja::value::Value, setup: Option<&TemplateSetup>| {
            match setup {
                Some(setup) => engine.render_with_setup(s, v, setup),
                None => engine.render_str(s, v),
            }
            .map_err(|e| e.to_string())
        };
        let none = Vars::new();
        let call = |name: &str, terms: Value| {
            lookup_in_scope(name, &terms, &none, "files", &vars, &render).unwrap()
        };
        with_files(&shared, || {
            assert_eq!(
                strs(&call("first_found", json!(["nope", "{{ name }}"])).unwrap()),
                ["/p/roles/r/files/foo1"]
            );
            let tv = json!({"template_vars": {"extra": "x"}})
                .as_object()
                .cloned()
                .unwrap();
            let out = lookup_in_scope("template", &json!(["t.j2"]), &tv, "files", &vars, &render)
                .unwrap()
                .unwrap();
            assert_eq!(strs(&out), ["T me x\n"]);
            // lookup_template: includes are found beside the template and along the
            // search path (with and without `templates/`), delimiters can be changed,
            // and text that reads as a Python dict becomes one unless convert_data=False.
            let opts = |o: Value| o.as_object().cloned().unwrap();
            let one = |t: &str, o: Value| {
                lookup_in_scope("template", &json!([t]), &opts(o), "files", &vars, &render)
                    .unwrap()
                    .unwrap()
                    .remove(0)
            };
            assert_eq!(one("hello.txt", json!({})), json!("Hello world!\n"));
            assert_eq!(
                one(
                    "custom.txt",
                    json!({"variable_start_string": "[%", "variable_end_string": "%]",
                    "comment_start_string": "[#", "comment_end_string": "#]"})
                ),
                json!("Hello me {{ x }}!\n")
            );
            assert_eq!(one("dict.j2", json!({})), json!({"a": "me"}));
            assert_eq!(
                one("dict.j2", json!({"convert_data": false})),
                json!("{'a': 'me'}\n")
            );
            let missing = lookup_in_scope(
                "template",
                &json!(["bad.txt"]),
                &none,
                "files",
                &vars,
                &render,
            )
            .unwrap()
            .unwrap_err();
            assert!(
                format!("{missing:?}").contains("nowhere.txt"),
                "{missing:?}"
            );
        });
        // Outside a run nothing is carried.
        assert!(call("file", json!(["foo1"])).is_err());
        assert!(lookup_in_scope("pipe", &json!([]), &none, "files", &vars, &render).is_none());
    }
}
