//! Reading Ansible YAML files: syntax errors with their line, vault content opened, and
//! the conversion of YAML values into the JSON values the plan carries.
//!
//! The loader walks `serde_norway::Value`s rather than JSON because YAML mappings keep
//! their order (a `with_dict` loop runs in the order the mapping is written) while the
//! workspace's `serde_json::Map` sorts its keys.

use super::{PlaybookError, Where};
use crate::vault::{Vault, YamlError};
use serde_json::Value;
use serde_norway::{Mapping, Value as Yaml};
use std::path::Path;

/// True when the text is an Ansible Vault encrypted file.
pub(crate) fn is_vault(text: &str) -> bool {
    crate::vault::is_vaulted(text.as_bytes())
}

/// Reads and parses one YAML file, opening vaulted content with `vault`.
pub(crate) fn read(path: &Path, vault: Option<&Vault>) -> Result<Yaml, PlaybookError> {
    let text = std::fs::read_to_string(path).map_err(|source| PlaybookError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    parse(&text, path, vault)
}

/// Parses YAML text read from `path` (used in errors) as Ansible's loader reads it
/// ([`crate::ansible_yaml`]: YAML 1.1 scalars, `<<` merge keys, `!unsafe`); vaulted
/// content is decrypted (the whole file, or inline `!vault` values).
pub(crate) fn parse(text: &str, path: &Path, vault: Option<&Vault>) -> Result<Yaml, PlaybookError> {
    crate::vault::parse_yaml(text, path, vault).map_err(|e| match e {
        YamlError::Syntax { line, column, msg } => PlaybookError::Yaml {
            file: path.to_path_buf(),
            line,
            column,
            msg,
        },
        YamlError::Vault(v) => PlaybookError::Vault(Box::new(v)),
    })
}

/// A mapping key as a string; Ansible keys are strings, numbers and booleans are
/// accepted as their text.
pub(crate) fn key_str(key: &Yaml) -> Option<String> {
    crate::ansible_yaml::key_text(key)
}

/// A scalar as text (strings, numbers, booleans), `None` for anything else.
pub(crate) fn scalar_str(value: &Yaml) -> Option<String> {
    match value {
        Yaml::String(s) => Some(s.clone()),
        Yaml::Number(n) => Some(n.to_string()),
        // Jinja's spelling, so that `when: [true]` stays an expression that holds.
        Yaml::Bool(true) => Some("True".to_string()),
        Yaml::Bool(false) => Some("False".to_string()),
        _ => None,
    }
}

/// A short description of a YAML value's type, for errors.
pub(crate) fn describe(value: &Yaml) -> &'static str {
    match value {
        Yaml::Null => "null",
        Yaml::Bool(_) => "a boolean",
        Yaml::Number(_) => "a number",
        Yaml::String(_) => "a string",
        Yaml::Sequence(_) => "a list",
        Yaml::Mapping(_) => "a mapping",
        Yaml::Tagged(t) if t.tag == "unsafe" => "an !unsafe value",
        Yaml::Tagged(_) => "a tagged value",
    }
}

/// The text of an `!unsafe` scalar (`!unsafe '{{ x }}'`).
pub(crate) fn unsafe_text(value: &Yaml) -> Option<&str> {
    match value {
        Yaml::Tagged(t) if t.tag == "unsafe" => t.value.as_str(),
        _ => None,
    }
}

/// Converts a YAML value to JSON. `at` says where the value is, for errors: `!unsafe`
/// values become the plan's unsafe marker, other tags and numbers JSON cannot hold are
/// refused.
pub(crate) fn to_json(value: &Yaml, at: &Where) -> Result<Value, PlaybookError> {
    crate::ansible_yaml::to_json(value).map_err(|e| at.invalid("", e))
}

/// Converts a YAML mapping to a JSON object.
pub(crate) fn mapping_to_json(
    map: &Mapping,
    at: &Where,
) -> Result<serde_json::Map<String, Value>, PlaybookError> {
    let mut out = serde_json::Map::new();
    for (k, v) in map {
        let Some(key) = key_str(k) else {
            return Err(at.invalid(
                "",
                format!(
                    "mapping keys must be strings, found {} as a key",
                    describe(k)
                ),
            ));
        };
        out.insert(key, to_json(v, at)?);
    }
    Ok(out)
}
