//! The controller's files as a payload carries them, read as Ansible reads the controller:
//! whether a path exists (as a file or a directory), a file's bytes, a variables file's
//! content, a directory's files; and `include_vars` over them (files and `dir:`), as
//! ansible-core 2.18's `include_vars` action does.
//!
//! Paths are controller paths: the packer stores the files of the trees a play reaches
//! under them, and the YAML among them parsed (`Shared::library`). A file the payload does
//! not carry does not exist here; errors say where they looked.

use crate::plan::{Parsed, Shared, Vars};
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
            Some(Parsed::Refused(why)) => Err(why.clone()),
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
        Some(dir) => read_dir(args, &dir, place, role_path, files, &mut out.files),
        None => {
            let source = text("file")
                .or_else(|| text("_raw_params").map(|s| s.trim_end_matches('\n').to_string()))
                .unwrap_or_default();
            let candidates = place.stack_candidates("vars", &source);
            match candidates.iter().find(|c| files.is_file(c)) {
                Some(found) => files.vars(found).inspect(|_| out.files.push(found.clone())),
                // A file the packer found by its literal name when the plan was made,
                // carried as JSON under that name.
                None if files.shared.files.contains_key(&source) => files
                    .embedded_json(&source)
                    .inspect(|_| out.files.push(source.clone())),
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
    included: &mut Vec<String>,
) -> Result<Vars, String> {
    let source = match role_path {
        Some(role) if dir.split('/').next() == Some("vars") => {
            let p = join(role, dir);
            if files.exists(&p) { p } else { dir.to_string() }
        }
        Some(role) => join(role, &format!("vars/{dir}")),
        None => join(place.task_dir, dir),
    };
    if !files.exists(&source) {
        return Err(format!("{source} directory does not exist"));
    }
    if !files.is_dir(&source) {
        return Err(format!("{source} is not a directory"));
    }
    let depth = match args.get("depth") {
        Some(Value::Number(n)) => n.as_u64().unwrap_or(0) as usize,
        Some(Value::String(s)) => s.trim().parse().unwrap_or(0),
        _ => 0,
    };
    let matcher = match args.get("files_matching") {
        Some(Value::String(p)) => {
            Some(crate::template::python_regex(p, false, false).map_err(|e| e.to_string())?)
        }
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
    let ignore: Vec<regex::Regex> = ignore
        .iter()
        .map(|p| {
            crate::template::python_regex(&format!("{p}$"), false, false)
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
    for (root, names) in files.walk(&source, depth) {
        let mut dir_results = Vars::new();
        for name in names {
            let path = join(&root, &name);
            // A role's vars/main.yml is never included again.
            if role_path.is_some_and(|r| join(r, "vars/main.yml") == path) {
                continue;
            }
            if matcher.as_ref().is_some_and(|m| !m.is_match(&name)) {
                continue;
            }
            if ignore.iter().any(|r| r.is_match(&name)) {
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
            dir_results.extend(files.vars(&path)?);
            included.push(path);
        }
        results.extend(dir_results);
    }
    Ok(results)
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
}
