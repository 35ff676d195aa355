//! `group_vars/` and `host_vars/` directories and how their variables are merged into a
//! host's, the way Ansible's `host_group_vars` plugin and variable manager do it.
//!
//! For an entity (group or host) named `x`, the first of `x` (a file, or a directory of
//! files read recursively in lexical order, skipping hidden files and `~` backups),
//! `x.yml`, `x.yaml`, `x.json` is read; files in a directory need one of those extensions
//! or none. Each file is a YAML mapping, possibly vault-encrypted or holding `!vault`
//! values.
//!
//! A host's variables, lowest first (Ansible's default `VARIABLE_PRECEDENCE`):
//! the inventory file's `all` and group variables (by depth, priority, name), then
//! `group_vars/all` of every directory (inventory's, then playbook's), then every
//! directory's `group_vars/<group>` for the host's groups in the same order, then the
//! inventory file's host variables, then every directory's `host_vars/<host>`. So a
//! `group_vars/all.yml` beats a `[web:vars]` in the inventory file, as in Ansible.

use super::{InventoryError, Vars};
use crate::vault::{Vault, YamlError};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// What one host's variables are merged from, apart from the directories.
#[derive(Debug, Clone)]
pub(crate) struct Layers {
    /// The inventory file's `all` and group variables, merged.
    pub(crate) groups: Vars,
    /// The inventory file's variables of the host itself.
    pub(crate) own: Vars,
    /// The host's groups, lowest precedence first, without `all`.
    pub(crate) order: Vec<String>,
}

impl Layers {
    /// The host's variables with the directories' layered in.
    pub(crate) fn merge(&self, host: &str, dirs: &[VarsDir]) -> Vars {
        let mut vars = self.groups.clone();
        for d in dirs {
            vars.extend(d.groups.get("all").cloned().unwrap_or_default());
        }
        for d in dirs {
            for g in &self.order {
                vars.extend(d.groups.get(g).cloned().unwrap_or_default());
            }
        }
        vars.extend(self.own.clone());
        for d in dirs {
            vars.extend(d.hosts.get(host).cloned().unwrap_or_default());
        }
        vars
    }
}

/// The variables of one directory's `group_vars/` and `host_vars/`.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct VarsDir {
    /// The directory holding `group_vars/` and `host_vars/`.
    #[serde(skip)]
    pub dir: PathBuf,
    /// Variables per group name.
    #[serde(
        default,
        rename = "group_vars",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub groups: BTreeMap<String, Vars>,
    /// Variables per host name.
    #[serde(
        default,
        rename = "host_vars",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub hosts: BTreeMap<String, Vars>,
}

impl VarsDir {
    /// Reads the files for the given groups and hosts; names without files are skipped.
    pub fn load(
        dir: &Path,
        groups: &[String],
        hosts: &[String],
        vault: Option<&Vault>,
    ) -> Result<VarsDir, InventoryError> {
        let mut out = VarsDir {
            dir: dir.to_path_buf(),
            ..VarsDir::default()
        };
        for (sub, names, slot) in [
            ("group_vars", groups, &mut out.groups),
            ("host_vars", hosts, &mut out.hosts),
        ] {
            let base = dir.join(sub);
            if !base.is_dir() {
                continue;
            }
            for name in names {
                let mut vars = Vars::new();
                for file in entity_files(&base, name)? {
                    vars.extend(read_vars_file(&file, vault)?);
                }
                if !vars.is_empty() {
                    slot.insert(name.clone(), vars);
                }
            }
        }
        Ok(out)
    }

    /// Reads every entity found in `dir/group_vars` and `dir/host_vars`, whatever the
    /// inventory: for a playbook's directory, read before any inventory is known.
    pub fn load_all(dir: &Path, vault: Option<&Vault>) -> Result<VarsDir, InventoryError> {
        let names = |sub: &str| -> Result<Vec<String>, InventoryError> {
            let base = dir.join(sub);
            let Ok(entries) = std::fs::read_dir(&base) else {
                return Ok(Vec::new());
            };
            let mut names = std::collections::BTreeSet::new();
            for e in entries {
                let e = e.map_err(|e| InventoryError::VarsFile {
                    path: base.clone(),
                    line: None,
                    msg: e.to_string(),
                })?;
                let name = e.file_name().to_string_lossy().into_owned();
                if name.starts_with('.') || name.ends_with('~') {
                    continue;
                }
                let stem = EXTENSIONS
                    .iter()
                    .find_map(|x| name.strip_suffix(x))
                    .unwrap_or(&name);
                names.insert(stem.to_owned());
            }
            Ok(names.into_iter().collect())
        };
        Self::load(dir, &names("group_vars")?, &names("host_vars")?, vault)
    }

    /// True when no file gave any variable.
    pub fn is_empty(&self) -> bool {
        self.groups.is_empty() && self.hosts.is_empty()
    }
}

/// The extensions Ansible reads vars files with (`YAML_FILENAME_EXTENSIONS`).
const EXTENSIONS: [&str; 3] = [".yml", ".yaml", ".json"];

/// The files for entity `name` under `base`: the first of `name`, `name.yml`,
/// `name.yaml`, `name.json` that exists; a directory gives its files.
fn entity_files(base: &Path, name: &str) -> Result<Vec<PathBuf>, InventoryError> {
    // A name with a path separator would reach outside the directory.
    if name.contains('/') || name == "." || name == ".." {
        return Ok(Vec::new());
    }
    let candidates = std::iter::once(base.join(name))
        .chain(EXTENSIONS.iter().map(|e| base.join(format!("{name}{e}"))));
    for path in candidates {
        if path.is_dir() {
            let mut files = Vec::new();
            dir_files(&path, &mut files)?;
            return Ok(files);
        }
        if path.is_file() {
            return Ok(vec![path]);
        }
    }
    Ok(Vec::new())
}

/// Files of a `group_vars/<group>/` directory, recursively, in lexical order.
fn dir_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), InventoryError> {
    let names = super::sorted_names(dir).map_err(|e| InventoryError::VarsFile {
        path: dir.to_path_buf(),
        line: None,
        msg: e.to_string(),
    })?;
    for name in names {
        if name.starts_with('.') || name.ends_with('~') {
            continue;
        }
        let path = dir.join(&name);
        let ext = Path::new(&name)
            .extension()
            .map(|e| format!(".{}", e.to_string_lossy()));
        if path.is_dir() && ext.is_none() {
            dir_files(&path, out)?;
        } else if path.is_file()
            && ext
                .as_ref()
                .is_none_or(|e| EXTENSIONS.contains(&e.as_str()))
        {
            out.push(path);
        }
    }
    Ok(())
}

/// One vars file: a mapping (or nothing), vaulted content opened.
fn read_vars_file(path: &Path, vault: Option<&Vault>) -> Result<Vars, InventoryError> {
    let err = |line: Option<usize>, msg: String| InventoryError::VarsFile {
        path: path.to_path_buf(),
        line,
        msg,
    };
    let text = std::fs::read_to_string(path).map_err(|e| err(None, e.to_string()))?;
    let value = crate::vault::parse_yaml(&text, path, vault).map_err(|e| match e {
        YamlError::Syntax { line, msg, .. } => err(line, format!("invalid YAML: {msg}")),
        YamlError::Vault(v) => InventoryError::Vault(v),
    })?;
    match value {
        serde_norway::Value::Null => Ok(Vars::new()),
        serde_norway::Value::Mapping(_) => match crate::ansible_yaml::to_json(&value) {
            Ok(serde_json::Value::Object(map)) => Ok(map),
            Ok(_) => Err(err(None, "expected a mapping of variables".into())),
            Err(e) => Err(err(None, format!("cannot use these values: {e}"))),
        },
        _ => Err(err(None, "expected a mapping of variables".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(root: &Path, rel: &str, text: &str) {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    #[test]
    fn file_forms_and_lexical_order() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        write(r, "group_vars/all.yml", "a: 1\n");
        write(r, "group_vars/web/20-late.yml", "x: late\n");
        write(r, "group_vars/web/10-early.yaml", "x: early\ny: 1\n");
        write(r, "group_vars/web/.hidden.yml", "x: hidden\n");
        write(r, "group_vars/web/sub/30.json", "{\"z\": true}\n");
        write(r, "group_vars/web/notes.txt", "x: txt\n");
        // The directory is found first, so web.yml is not read (as in Ansible).
        write(r, "group_vars/web.yml", "x: file\n");
        write(r, "group_vars/db", "d: plain\n");
        write(r, "host_vars/h1.json", "{\"h\": 1}");
        let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let vd = VarsDir::load(
            r,
            &names(&["all", "web", "db", "none"]),
            &names(&["h1"]),
            None,
        )
        .unwrap();
        assert_eq!(vd.groups["all"]["a"], 1);
        assert_eq!(vd.groups["web"]["x"], "late");
        assert_eq!(vd.groups["web"]["y"], 1);
        assert_eq!(vd.groups["web"]["z"], true);
        assert_eq!(vd.groups["db"]["d"], "plain");
        assert!(!vd.groups.contains_key("none"));
        assert_eq!(vd.hosts["h1"]["h"], 1);
    }

    #[test]
    fn errors_name_the_file() {
        let d = tempfile::tempdir().unwrap();
        write(d.path(), "group_vars/all.yml", "- a list\n");
        let e = VarsDir::load(d.path(), &["all".to_string()], &[], None).unwrap_err();
        assert!(e.to_string().contains("group_vars/all.yml"), "{e}");
        write(d.path(), "group_vars/all.yml", "a: [\n");
        let e = VarsDir::load(d.path(), &["all".to_string()], &[], None).unwrap_err();
        assert!(e.to_string().contains("group_vars/all.yml:"), "{e}");
        assert!(e.to_string().contains("invalid YAML"), "{e}");
    }
}
