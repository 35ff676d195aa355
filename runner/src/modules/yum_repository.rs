//! yum_repository: one repository section of a `.repo` file in `reposdir`, as
//! ansible-core's module writes it with Python's `RawConfigParser`: the section is taken
//! out and, for `state: present`, put back at the end with the given options in sorted
//! order (booleans as `1`/`0`, `baseurl` and `gpgkey` lists one per continuation line,
//! `exclude`/`includepkgs` space-separated, `description` as `name`). Whether anything
//! changed is decided, as there, by comparing the file's sections and options sorted; a
//! file left without sections is removed. `mode`/`owner`/`group`/`attributes` apply to
//! the file as for the file modules.

use super::fsutil::{self, Attrs, Step, fail};
use super::{Ctx, Diff, ModuleError, Outcome, args};
use crate::plan::Vars;
use serde_json::Value;
use std::path::Path;

/// The module's options that become the section's keys, with their kinds.
const OPTIONS: &[(&str, Kind)] = &[
    ("async", Kind::Bool),
    ("bandwidth", Kind::Str),
    ("baseurl", Kind::Lines),
    ("cost", Kind::Str),
    ("countme", Kind::Bool),
    ("deltarpm_metadata_percentage", Kind::Str),
    ("deltarpm_percentage", Kind::Str),
    ("description", Kind::Str),
    ("enabled", Kind::Bool),
    ("enablegroups", Kind::Bool),
    ("exclude", Kind::Words),
    ("failovermethod", Kind::Choice(&["roundrobin", "priority"])),
    ("gpgcakey", Kind::Str),
    ("gpgcheck", Kind::Bool),
    ("gpgkey", Kind::Lines),
    ("module_hotfixes", Kind::Bool),
    ("http_caching", Kind::Choice(&["all", "packages", "none"])),
    ("include", Kind::Str),
    ("includepkgs", Kind::Words),
    (
        "ip_resolve",
        Kind::Choice(&["4", "6", "IPv4", "IPv6", "whatever"]),
    ),
    ("keepalive", Kind::Bool),
    ("keepcache", Kind::Choice(&["0", "1"])),
    ("metadata_expire", Kind::Str),
    (
        "metadata_expire_filter",
        Kind::Choice(&[
            "never",
            "read-only:past",
            "read-only:present",
            "read-only:future",
        ]),
    ),
    ("metalink", Kind::Str),
    ("mirrorlist", Kind::Str),
    ("mirrorlist_expire", Kind::Str),
    ("password", Kind::Str),
    ("priority", Kind::Str),
    ("protect", Kind::Bool),
    ("proxy", Kind::Str),
    ("proxy_password", Kind::Str),
    ("proxy_username", Kind::Str),
    ("repo_gpgcheck", Kind::Bool),
    ("retries", Kind::Str),
    ("s3_enabled", Kind::Bool),
    ("skip_if_unavailable", Kind::Bool),
    ("sslcacert", Kind::Str),
    ("ssl_check_cert_permissions", Kind::Bool),
    ("sslclientcert", Kind::Str),
    ("sslclientkey", Kind::Str),
    ("sslverify", Kind::Bool),
    ("throttle", Kind::Str),
    ("timeout", Kind::Str),
    ("ui_repoid_vars", Kind::Str),
    ("username", Kind::Str),
];

/// How an option's value is written.
#[derive(Clone, Copy)]
enum Kind {
    Str,
    Bool,
    Choice(&'static [&'static str]),
    /// A list, one item per line.
    Lines,
    /// A list, space-separated.
    Words,
}

/// The options' other names.
const ALIASES: &[(&str, &[&str])] = &[
    ("exclude", &["excludepkgs"]),
    ("sslcacert", &["ca_cert"]),
    ("sslclientcert", &["client_cert"]),
    ("sslclientkey", &["client_key"]),
    ("sslverify", &["validate_certs"]),
];

/// The arguments that are not options of the section.
const OTHERS: &[&str] = &["name", "state", "file", "reposdir"];

/// Options that still work but that the module says are going away.
const DEPRECATED: &[(&str, &str, &str)] = &[
    (
        "keepcache",
        "'keepcache' parameter is deprecated as it is only valid in the main configuration.",
        "2.20",
    ),
    (
        "async",
        "'async' parameter is deprecated as it has been removed on systems supported by ansible-core",
        "2.22",
    ),
];
const NO_EFFECT_WITH_DNF: &[&str] = &[
    "deltarpm_metadata_percentage",
    "gpgcakey",
    "http_caching",
    "keepalive",
    "metadata_expire_filter",
    "mirrorlist_expire",
    "protect",
    "ssl_check_cert_permissions",
    "ui_repoid_vars",
];

/// `yum_repository`.
pub(super) fn run(a: &Vars, ctx: &Ctx<'_>) -> Result<Outcome, ModuleError> {
    fsutil::finish(repository(a, ctx))
}

fn repository(raw: &Vars, ctx: &Ctx<'_>) -> Step<Outcome> {
    let spec: Vec<(&str, &[&str])> = (OPTIONS.iter().map(|(k, _)| *k))
        .chain(OTHERS.iter().copied())
        .chain(fsutil::FILE_COMMON_ARGS.iter().copied())
        .map(|k| {
            let aliases = ALIASES
                .iter()
                .find(|(n, _)| *n == k)
                .map_or(&[][..], |(_, a)| *a);
            (k, aliases)
        })
        .collect();
    let a = args::with_aliases(raw, &spec)?;
    let name = args::opt_str(&a, "name")?
        .ok_or_else(|| ModuleError::BadArgs("missing required arguments: name".into()))?;
    let state =
        args::opt_choice(&a, "state", &["absent", "present"])?.unwrap_or_else(|| "present".into());
    let given = |k: &str| a.get(k).is_some_and(|v| !v.is_null());
    if state == "present" {
        if !["baseurl", "mirrorlist", "metalink"]
            .iter()
            .any(|k| given(k))
        {
            return Err(ModuleError::BadArgs(
                "state is present but any of the following are missing: baseurl, mirrorlist, metalink"
                    .into(),
            )
            .into());
        }
        if !given("description") {
            return Err(ModuleError::BadArgs(
                "state is present but all of the following are missing: description".into(),
            )
            .into());
        }
    }
    let mut section: Vec<(String, String)> = Vec::new();
    let mut deprecations = Vec::new();
    for (key, kind) in OPTIONS {
        let Some(value) = option(&a, key, *kind)? else {
            continue;
        };
        if let Some((_, msg, version)) = DEPRECATED.iter().find(|(k, _, _)| k == key) {
            deprecations.push(serde_json::json!({"msg": msg, "version": version}));
        } else if NO_EFFECT_WITH_DNF.contains(key) {
            deprecations.push(serde_json::json!({
                "msg": format!("'{key}' parameter is deprecated as it has no effect with dnf as an underlying package manager."),
                "version": "2.22",
            }));
        }
        // `description` is the section's `name`.
        let key = if *key == "description" { "name" } else { key };
        section.push((key.to_string(), value));
    }
    section.sort();

    let reposdir = args::opt_str(&a, "reposdir")?.unwrap_or_else(|| "/etc/yum.repos.d".into());
    if !Path::new(&reposdir).is_dir() {
        return fail(format!("Repo directory '{reposdir}' does not exist."));
    }
    let file = args::opt_str(&a, "file")?.unwrap_or_else(|| name.clone());
    let dest = Path::new(&reposdir).join(format!("{file}.repo"));
    let shown = dest.display().to_string();
    let text = match std::fs::read_to_string(&dest) {
        Ok(t) => Some(t),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(fsutil::io_fail("read", &dest, &e)),
    };
    let mut sections = match &text {
        Some(t) => read(t).map_err(|e| fsutil::failed(Outcome::fail(format!("{shown}: {e}"))))?,
        None => Vec::new(),
    };
    let before = dump(&sections);
    sections.retain(|(s, _)| *s != name);
    if state == "present" {
        sections.push((
            name.clone(),
            section.into_iter().map(|(k, v)| (k, Some(v))).collect(),
        ));
    }
    let after = dump(&sections);
    let mut changed = before != after;
    let attrs = Attrs::from_args(&a)?;
    if changed && !ctx.check_mode {
        if sections.is_empty() {
            if let Err(e) = std::fs::remove_file(&dest) {
                return Err(fsutil::failed(
                    Outcome::fail(format!("Cannot remove empty repo file {shown}."))
                        .with("details", e.to_string()),
                ));
            }
        } else {
            fsutil::write_config(&dest, write(&sections).as_bytes(), attrs, ctx)?;
        }
    } else if dest.is_file() {
        let attributes = fsutil::apply_attrs(&dest, &attrs, true, ctx.check_mode)?;
        changed |= !attributes.is_empty();
    }
    let mut o = Outcome::changed(changed)
        .with("repo", name)
        .with("state", state);
    if !deprecations.is_empty() {
        o = o.with("deprecations", deprecations);
    }
    if ctx.diff_mode {
        o.diff.push(Diff {
            before_header: shown.clone(),
            after_header: shown,
            before,
            after,
        });
    }
    Ok(o)
}

/// An option's value as the module writes it, if given.
fn option(a: &Vars, key: &str, kind: Kind) -> Result<Option<String>, ModuleError> {
    if a.get(key).is_none_or(Value::is_null) {
        return Ok(None);
    }
    Ok(Some(match kind {
        Kind::Bool => {
            let on = args::opt_bool(a, key)?.unwrap_or(false);
            (if on { "1" } else { "0" }).to_string()
        }
        Kind::Choice(choices) => args::opt_choice(a, key, choices)?.unwrap_or_default(),
        Kind::Lines => list(a, key)?.join("\n"),
        Kind::Words => list(a, key)?.join(" "),
        Kind::Str => match a.get(key) {
            Some(Value::String(s)) => s.clone(),
            // Python's str() of a YAML scalar.
            Some(Value::Bool(true)) => "True".into(),
            Some(Value::Bool(false)) => "False".into(),
            Some(v @ Value::Number(_)) => v.to_string(),
            // Lists and mappings too, as their Python repr.
            Some(other) => crate::lookups::py_repr(other),
            None => return Ok(None),
        },
    }))
}

/// A list argument: a YAML list, or one string split on commas as Ansible's list type
/// splits it.
fn list(a: &Vars, key: &str) -> Result<Vec<String>, ModuleError> {
    match a.get(key) {
        Some(Value::String(s)) => Ok(s.split(',').map(|p| p.trim().to_string()).collect()),
        _ => args::str_list(a, key),
    }
}

/// One section: its options in file order (`None` for an option without a value).
type Section = (String, Vec<(String, Option<String>)>);

/// A `.repo` file's sections in file order, read as `RawConfigParser` reads them.
fn read(text: &str) -> Result<Vec<Section>, String> {
    let parsed = crate::ctlfiles::parse_ini(text, false, false)?;
    let mut order: Vec<&str> = Vec::new();
    for line in text.lines() {
        let t = line.trim();
        if let Some(name) = t.strip_prefix('[').and_then(|t| t.strip_suffix(']'))
            && !order.contains(&name)
        {
            order.push(name);
        }
    }
    Ok(order
        .into_iter()
        .map(|name| {
            let options = parsed.get(name).cloned().unwrap_or_default();
            (name.to_string(), options)
        })
        .collect())
}

/// The module's view of the file for comparing and for diffs: sections sorted, each
/// with its options sorted, `key = value` lines and a blank line after each.
fn dump(sections: &[Section]) -> String {
    let mut sorted: Vec<&Section> = sections.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    let mut out = String::new();
    for (name, options) in sorted {
        out.push_str(&format!("[{name}]\n"));
        let mut opts: Vec<&(String, Option<String>)> = options.iter().collect();
        opts.sort();
        for (k, v) in opts {
            out.push_str(&format!("{k} = {}\n", v.as_deref().unwrap_or("None")));
        }
        out.push('\n');
    }
    out
}

/// The file as `RawConfigParser.write` writes it: sections in order, a continuation
/// line (a tab) for each further line of a value, a blank line after each section.
fn write(sections: &[Section]) -> String {
    let mut out = String::new();
    for (name, options) in sections {
        out.push_str(&format!("[{name}]\n"));
        for (k, v) in options {
            match v {
                Some(v) => out.push_str(&format!("{k} = {}\n", v.replace('\n', "\n\t"))),
                None => out.push_str(&format!("{k}\n")),
            }
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::collections::BTreeMap;

    fn run_repo(args: Value, check: bool) -> Outcome {
        crate::modules::run_args_for_test("yum_repository", args, check).unwrap()
    }

    // The files and verdicts below are what ansible-core 2.18.19's module gives for the
    // same arguments (run with `ansible localhost -m yum_repository`).
    #[test]
    fn a_repository_is_written_as_the_module_writes_it_and_a_second_run_changes_nothing() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().display().to_string();
        let epel = json!({
            "name": "epel",
            "description": "EPEL YUM repo",
            "baseurl": ["https://a.example/epel/$releasever/", "https://b.example/epel/"],
            "gpgcheck": true,
            "enabled": "no",
            "exclude": ["kernel*", "foo"],
            "priority": 10,
            "reposdir": dir,
        });
        let checked = run_repo(epel.clone(), true);
        assert!(checked.changed, "{checked:?}");
        assert!(
            !t.path().join("epel.repo").exists(),
            "check mode writes nothing"
        );
        let first = run_repo(epel.clone(), false);
        assert!(first.changed && !first.failed, "{first:?}");
        assert_eq!(first.data["repo"], "epel");
        assert_eq!(
            std::fs::read_to_string(t.path().join("epel.repo")).unwrap(),
            "[epel]\nbaseurl = https://a.example/epel/$releasever/\n\thttps://b.example/epel/\nenabled = 0\nexclude = kernel* foo\ngpgcheck = 1\nname = EPEL YUM repo\npriority = 10\n\n"
        );
        assert!(!run_repo(epel.clone(), false).changed);

        // A second repository in the same file goes after the first; the first, changed,
        // moves to the end.
        let source = json!({
            "name": "epel-source", "file": "epel", "description": "EPEL sources",
            "metalink": "https://m.example/?repo=epel-source", "reposdir": dir,
        });
        assert!(run_repo(source.clone(), false).changed);
        let mut changed = epel.clone();
        changed["enabled"] = json!(true);
        let o = run_repo(changed, false);
        assert!(o.changed);
        let text = std::fs::read_to_string(t.path().join("epel.repo")).unwrap();
        assert!(text.starts_with("[epel-source]\n"), "{text}");
        assert!(
            text.contains("\n[epel]\n") && text.contains("enabled = 1\n"),
            "{text}"
        );
        assert_eq!(o.diff.len(), 1);

        // Removing one keeps the other; removing the last removes the file.
        let gone = |n: &str| json!({"name": n, "file": "epel", "state": "absent", "reposdir": dir});
        assert!(run_repo(gone("epel"), false).changed);
        assert!(!run_repo(gone("epel"), false).changed);
        assert!(t.path().join("epel.repo").exists());
        assert!(run_repo(gone("epel-source"), false).changed);
        assert!(!t.path().join("epel.repo").exists());
    }

    #[test]
    fn a_hand_written_file_that_means_the_same_is_left_alone_and_bad_arguments_are_named() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().display().to_string();
        std::fs::write(
            t.path().join("local.repo"),
            "# mine\n[local]\nNAME=Local\nbaseurl=file:///srv/repo\n",
        )
        .unwrap();
        let args = json!({"name": "local", "description": "Local", "baseurl": "file:///srv/repo", "reposdir": dir});
        let o = run_repo(args, false);
        assert!(!o.changed, "{o:?}");
        assert!(
            std::fs::read_to_string(t.path().join("local.repo"))
                .unwrap()
                .starts_with("# mine")
        );

        let bad = |args: Value| {
            crate::modules::run_for_test(
                "yum_repository",
                args.as_object().unwrap(),
                &BTreeMap::new(),
                &json!({}),
                false,
            )
        };
        assert_eq!(
            bad(json!({"name": "x", "description": "X", "reposdir": dir})).unwrap_err(),
            ModuleError::BadArgs("state is present but any of the following are missing: baseurl, mirrorlist, metalink".into())
        );
        assert_eq!(
            bad(json!({"name": "x", "baseurl": "u", "reposdir": dir})).unwrap_err(),
            ModuleError::BadArgs(
                "state is present but all of the following are missing: description".into()
            )
        );
        let o = run_repo(
            json!({"name": "x", "state": "absent", "reposdir": "/nonexistent/rustle"}),
            false,
        );
        assert!(o.failed);
        assert_eq!(
            o.msg.as_deref(),
            Some("Repo directory '/nonexistent/rustle' does not exist.")
        );
        let o = run_repo(
            json!({"name": "x", "description": "X", "baseurl": "u", "keepcache": "1", "reposdir": dir}),
            false,
        );
        assert!(
            o.changed && o.data["deprecations"][0]["version"] == "2.20",
            "{o:?}"
        );
    }
}
