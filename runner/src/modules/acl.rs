//! acl (ansible.posix, also reached as `acl`): a file's POSIX ACL entries set, removed
//! or read with the host's `setfacl`/`getfacl` (argument vectors, never a shell), as that
//! module does: `setfacl --test` says whether an entry would change anything, and the
//! result's `acl` is `getfacl`'s listing after the change. NFSv4 ACLs are not supported.

use super::tools;
use super::{Ctx, ModuleError, Outcome, args};
use crate::plan::Vars;
use std::path::{Path, PathBuf};

const KNOWN: &[&str] = &[
    "path",
    "name",
    "entry",
    "entity",
    "etype",
    "permissions",
    "state",
    "follow",
    "default",
    "recursive",
    "recurse",
    "recalculate_mask",
    "use_nfsv4_acls",
];

/// A string argument restricted to `choices`, with its default.
fn choice(a: &Vars, name: &str, default: &str, choices: &[&str]) -> Result<String, ModuleError> {
    let v = args::opt_str(a, name)?.unwrap_or_else(|| default.to_string());
    if choices.contains(&v.as_str()) {
        Ok(v)
    } else {
        Err(ModuleError::BadArgs(format!(
            "value of {name} must be one of: {}, got: {v}",
            choices.join(", ")
        )))
    }
}

/// An entry (`[d[efault]:]type:qualifier[:perms]`) split as the module splits it: the
/// default flag when given, the type's full name (`None` for an unknown one), the
/// qualifier and the permissions.
fn split_entry(entry: &str) -> (Option<bool>, Option<&'static str>, String, Option<String>) {
    let mut parts: Vec<&str> = entry.split(':').collect();
    let mut default = None;
    if entry.to_lowercase().starts_with('d') && !parts.is_empty() {
        default = Some(true);
        parts.remove(0);
    }
    let etype = match parts.first().map(|t| t.to_lowercase()) {
        Some(t) if t.starts_with('u') => Some("user"),
        Some(t) if t.starts_with('g') => Some("group"),
        Some(t) if t.starts_with('m') => Some("mask"),
        Some(t) if t.starts_with('o') => Some("other"),
        _ => None,
    };
    let entity = parts.get(1).map(|s| s.to_string()).unwrap_or_default();
    let permissions = parts.get(2).map(|s| s.to_string());
    (default, etype, entity, permissions)
}

/// What the module was asked, checked as its argument rules check it.
struct Request {
    path: PathBuf,
    state: String,
    etype: Option<String>,
    entity: String,
    permissions: Option<String>,
    follow: bool,
    default: bool,
    recursive: bool,
    recalculate_mask: String,
}

fn request(a: &Vars) -> Result<Result<Request, String>, ModuleError> {
    args::only(a, KNOWN)?;
    let path = match args::opt_str(a, "path")? {
        Some(p) => p,
        None => args::req_str(a, "name")
            .map_err(|_| ModuleError::BadArgs("missing required arguments: path".into()))?,
    };
    let entry = args::opt_str(a, "entry")?.filter(|e| !e.is_empty());
    let mut entity = args::opt_str(a, "entity")?.unwrap_or_default();
    let mut etype = args::opt_str(a, "etype")?;
    if let Some(t) = &etype
        && !["group", "mask", "other", "user"].contains(&t.as_str())
    {
        return Err(ModuleError::BadArgs(format!(
            "value of etype must be one of: group, mask, other, user, got: {t}"
        )));
    }
    let mut permissions = args::opt_str(a, "permissions")?;
    let state = choice(a, "state", "query", &["absent", "present", "query"])?;
    let follow = args::bool_or(a, "follow", true)?;
    let mut default = args::bool_or(a, "default", false)?;
    let recursive = match args::opt_bool(a, "recursive")? {
        Some(r) => r,
        None => args::bool_or(a, "recurse", false)?,
    };
    let recalculate_mask = choice(
        a,
        "recalculate_mask",
        "default",
        &["default", "mask", "no_mask"],
    )?;
    if args::bool_or(a, "use_nfsv4_acls", false)? {
        return Ok(Err(
            "use_nfsv4_acls: NFSv4 ACLs (nfs4_setfacl) are not supported by this runner yet".into(),
        ));
    }
    let path = PathBuf::from(path);
    if std::fs::metadata(&path).is_err() {
        return Ok(Err("Path not found or not accessible.".into()));
    }
    if state == "query" {
        if recursive {
            return Ok(Err("'recursive' MUST NOT be set when 'state=query'.".into()));
        }
        if recalculate_mask != "default" {
            return Ok(Err(
                "'recalculate_mask' MUST NOT be set to 'mask' or 'no_mask' when 'state=query'."
                    .into(),
            ));
        }
    }
    match &entry {
        None => {
            if state == "absent" && permissions.is_some() {
                return Ok(Err(
                    "'permissions' MUST NOT be set when 'state=absent'.".into()
                ));
            }
            if state == "absent" && entity.is_empty() {
                return Ok(Err("'entity' MUST be set when 'state=absent'.".into()));
            }
            if state != "query" && etype.is_none() {
                return Ok(Err(format!("'etype' MUST be set when 'state={state}'.")));
            }
        }
        Some(entry) => {
            if etype.is_some() || !entity.is_empty() || permissions.is_some() {
                return Ok(Err(
                    "'entry' MUST NOT be set when 'entity', 'etype' or 'permissions' are set."
                        .into(),
                ));
            }
            let colons = entry.matches(':').count();
            if state == "present" && !(2..=3).contains(&colons) {
                return Ok(Err(
                    "'entry' MUST have 3 or 4 sections divided by ':' when 'state=present'.".into(),
                ));
            }
            if state == "absent" && !(1..=2).contains(&colons) {
                return Ok(Err(
                    "'entry' MUST have 2 or 3 sections divided by ':' when 'state=absent'.".into(),
                ));
            }
            if state == "query" {
                return Ok(Err("'entry' MUST NOT be set when 'state=query'.".into()));
            }
            let (d, t, e, p) = split_entry(entry);
            if let Some(d) = d {
                default = d;
            }
            etype = t.map(str::to_string);
            entity = e;
            permissions = p;
        }
    }
    Ok(Ok(Request {
        path,
        state,
        etype,
        entity,
        permissions,
        follow,
        default,
        recursive,
        recalculate_mask,
    }))
}

/// `acl`.
pub(super) fn run(a: &Vars, ctx: &Ctx<'_>) -> Result<Outcome, ModuleError> {
    let r = match request(a)? {
        Ok(r) => r,
        Err(msg) => return Ok(Outcome::fail(msg)),
    };
    let etype = r.etype.clone().unwrap_or_else(|| "None".into());
    let change = match r.state.as_str() {
        "present" => Some((
            Mode::Set,
            match &r.permissions {
                Some(p) if !p.is_empty() => format!("{etype}:{}:{p}", r.entity),
                _ => format!("{etype}:{}", r.entity),
            },
        )),
        "absent" => Some((Mode::Remove, format!("{etype}:{}", r.entity))),
        _ => None,
    };
    let (changed, msg) = match change {
        Some((mode, entry)) => {
            let bin = match tools::require_bin("setfacl") {
                Ok(b) => b,
                Err(o) => return Ok(o),
            };
            let argv = command(&r, &mode, &entry);
            let changed = match would_change(ctx, &bin, &argv) {
                Ok(c) => c,
                Err(o) => return Ok(o),
            };
            if changed && !ctx.check_mode {
                if mode == Mode::Set {
                    if let Err(o) = tools::run_checked(ctx, &bin, &argv) {
                        return Ok(o);
                    }
                } else {
                    // As the module does, a failing removal is not checked.
                    let _ = tools::run_command(ctx.command(&bin), &argv, None);
                }
            }
            let done = if mode == Mode::Set {
                "present"
            } else {
                "absent"
            };
            (changed, format!("{entry} is {done}"))
        }
        None => (false, "current acl".to_string()),
    };
    let getfacl = match tools::require_bin("getfacl") {
        Ok(b) => b,
        Err(o) => return Ok(o),
    };
    let listing = match tools::run_checked(ctx, &getfacl, &command(&r, &Mode::Get, "")) {
        Ok(out) => lines(&out.stdout),
        Err(o) => return Ok(o),
    };
    let mut out = Outcome::changed(changed);
    out.msg = Some(msg);
    Ok(out.with("acl", listing))
}

#[derive(PartialEq)]
enum Mode {
    Set,
    Remove,
    Get,
}

/// The arguments of `setfacl -m`/`-x` or `getfacl`, as the module builds them.
fn command(r: &Request, mode: &Mode, entry: &str) -> Vec<String> {
    let mut argv: Vec<String> = Vec::new();
    match mode {
        Mode::Set => argv.extend(["-m".into(), entry.to_string()]),
        Mode::Remove => argv.extend(["-x".into(), entry.to_string()]),
        Mode::Get => argv.extend(["--absolute-names".into(), "--omit-header".into()]),
    }
    if r.recursive {
        argv.push("--recursive".into());
    }
    if *mode != Mode::Get {
        match r.recalculate_mask.as_str() {
            "mask" => argv.push("--mask".into()),
            "no_mask" => argv.push("--no-mask".into()),
            _ => {}
        }
    }
    if !r.follow {
        argv.push("--physical".into());
    }
    if r.default {
        argv.insert(0, "-d".into());
    }
    argv.push(r.path.to_string_lossy().into_owned());
    argv
}

/// Whether `setfacl` with `argv` would change the ACL: its `--test` listing marks an
/// entry it leaves as it is with `*,*` at the end of the line.
fn would_change(ctx: &Ctx<'_>, bin: &Path, argv: &[String]) -> Result<bool, Outcome> {
    let mut test = argv.to_vec();
    test.insert(0, "--test".into());
    let out = tools::run_checked(ctx, bin, &test)?;
    Ok(!lines(&out.stdout).iter().any(|l| l.ends_with("*,*")))
}

/// A listing's lines, trimmed, without comments and without a last empty line.
fn lines(text: &str) -> Vec<String> {
    let mut out: Vec<String> = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| l.trim().to_string())
        .collect();
    if out.last().is_some_and(|l| l.is_empty()) {
        out.pop();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn acl(args: serde_json::Value, check: bool) -> Outcome {
        let t = crate::modules::TestCtx::new();
        let a = args.as_object().unwrap().clone();
        run(&a, &t.ctx(check, false)).unwrap()
    }

    fn has_setfacl() -> bool {
        tools::find_bin("setfacl").is_some() && tools::find_bin("getfacl").is_some()
    }

    #[test]
    fn entries_are_set_once_read_and_removed() {
        if !has_setfacl() {
            // CI installs `acl`; a developer machine without it says so.
            assert!(
                std::env::var_os("RUSTLE_ALLOW_SKIP").is_some(),
                "setfacl/getfacl are missing: apt-get install acl"
            );
            return;
        }
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("a file");
        std::fs::write(&f, "x").unwrap();
        let path = f.to_str().unwrap();
        let grant = json!({"path": path, "entity": "root", "etype": "user", "permissions": "rw", "state": "present"});
        let o = acl(grant.clone(), true);
        assert!(o.changed && !o.failed, "{o:?}");
        assert!(
            !o.data["acl"]
                .as_array()
                .unwrap()
                .contains(&json!("user:root:rw-"))
        );
        let o = acl(grant.clone(), false);
        assert!(o.changed && !o.failed, "{o:?}");
        assert!(
            o.data["acl"]
                .as_array()
                .unwrap()
                .contains(&json!("user:root:rw-")),
            "{o:?}"
        );
        assert_eq!(o.msg.as_deref(), Some("user:root:rw is present"));
        assert!(!acl(grant, false).changed);
        let o = acl(json!({"path": path}), false);
        assert_eq!(o.msg.as_deref(), Some("current acl"));
        assert!(
            o.data["acl"]
                .as_array()
                .unwrap()
                .contains(&json!("user:root:rw-"))
        );
        let remove = json!({"path": path, "entry": "u:root", "state": "absent"});
        let o = acl(remove.clone(), false);
        assert!(o.changed && !o.failed, "{o:?}");
        assert!(
            !o.data["acl"]
                .as_array()
                .unwrap()
                .contains(&json!("user:root:rw-"))
        );
        assert!(!acl(remove, false).changed);
    }

    #[test]
    fn bad_arguments_fail_as_the_module_does() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().to_str().unwrap();
        for (args, msg) in [
            (
                json!({"path": "/nonexistent/x"}),
                "Path not found or not accessible.",
            ),
            (
                json!({"path": path, "state": "absent", "etype": "user"}),
                "'entity' MUST be set when 'state=absent'.",
            ),
            (
                json!({"path": path, "state": "present", "entity": "root"}),
                "'etype' MUST be set when 'state=present'.",
            ),
            (
                json!({"path": path, "state": "present", "entry": "user:root", "etype": "user"}),
                "'entry' MUST NOT be set when 'entity', 'etype' or 'permissions' are set.",
            ),
            (
                json!({"path": path, "state": "present", "entry": "user"}),
                "'entry' MUST have 3 or 4 sections divided by ':' when 'state=present'.",
            ),
            (
                json!({"path": path, "recursive": true}),
                "'recursive' MUST NOT be set when 'state=query'.",
            ),
        ] {
            let o = acl(args, false);
            assert!(o.failed, "{o:?}");
            assert_eq!(o.msg.as_deref(), Some(msg));
        }
    }

    #[test]
    fn entries_split_as_the_module_splits_them() {
        assert_eq!(
            split_entry("d:u:bob:rwx"),
            (Some(true), Some("user"), "bob".into(), Some("rwx".into()))
        );
        assert_eq!(
            split_entry("group:staff"),
            (None, Some("group"), "staff".into(), None)
        );
        assert_eq!(
            split_entry("m::r"),
            (None, Some("mask"), String::new(), Some("r".into()))
        );
    }
}
