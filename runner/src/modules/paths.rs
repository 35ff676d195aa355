//! Path arguments as Ansible's argument spec reads them: a `type='path'` value is
//! `os.path.expanduser(os.path.expandvars(value))` before the module sees it, so
//! `path: ~/.bashrc` and `dest: $HOME/x` name the user's files. The table lists, per
//! module, the arguments (and their aliases) Ansible declares as paths.

use super::Ctx;
use crate::plan::Vars;
use serde_json::Value;
use std::borrow::Cow;

/// The path-typed arguments of each module, aliases included (Ansible's specs).
/// Controller-side sources (`copy`/`template` `src`) are not here: the packer resolves
/// those.
const PATH_ARGS: &[(&str, &[&str])] = &[
    ("lineinfile", &["path", "dest", "destfile", "name"]),
    ("blockinfile", &["path", "dest", "destfile", "name"]),
    ("replace", &["path", "dest", "destfile", "name"]),
    ("file", &["path", "dest", "name", "src"]),
    ("copy", &["dest"]),
    ("template", &["dest"]),
    ("stat", &["path", "dest", "name"]),
    ("find", &["paths", "name", "path"]),
    ("slurp", &["src", "path"]),
    ("get_url", &["dest", "tmp_dest"]),
    ("tempfile", &["path"]),
    ("archive", &["path", "dest", "exclude_path"]),
    ("unarchive", &["dest"]),
    ("assemble", &["dest"]),
    ("ini_file", &["path", "dest"]),
    ("known_hosts", &["path"]),
    ("acl", &["path", "name"]),
    ("alternatives", &["path", "link"]),
    (
        "patch",
        &["src", "patchfile", "dest", "originalfile", "basedir"],
    ),
    ("authorized_key", &["path"]),
    ("yum_repository", &["reposdir"]),
    ("make", &["chdir", "file", "make"]),
    // A push's `src` is a controller path, looked up in the payload as written.
    ("synchronize", &["dest"]),
    ("pam_limits", &["dest"]),
    ("wait_for", &["path"]),
    ("git", &["dest", "key_file"]),
    ("mount", &["path", "name", "fstab"]),
    ("uri", &["dest", "creates", "removes"]),
    (
        "pip",
        &["virtualenv", "chdir", "executable", "virtualenv_command"],
    ),
    // `shell` is a plain string to Ansible, but run_command expands `~` and `$VAR` in
    // every argument it passes to useradd/usermod (and 2.18 compares the expanded value).
    ("user", &["home", "ssh_key_file", "shell"]),
    ("sysctl", &["sysctl_file"]),
    ("apt_key", &["file", "keyring"]),
    ("command", &["chdir", "creates", "removes"]),
    ("shell", &["chdir", "creates", "removes"]),
    ("script", &["chdir", "creates", "removes"]),
];

/// `args` with the module's path arguments expanded; borrowed when nothing changes.
/// `~` is the home of the user the module acts as: `HOME` from the task's
/// `environment`, else the `become_user`'s when the module runs in this process for it,
/// else `$HOME` (a child runner for another user has that user's), else the password
/// database's entry.
pub(super) fn expand<'a>(module: &str, args: &'a Vars, ctx: &Ctx<'_>) -> Cow<'a, Vars> {
    if !wants_expansion(module, args) {
        return Cow::Borrowed(args);
    }
    let become_home = ctx.run_as.map(|w| w.home.clone());
    let env = |n: &str| {
        if let Some(v) = task_env(ctx, n, become_home.as_deref()) {
            return Some(v);
        }
        std::env::var(n).ok()
    };
    match expand_with(module, args, &env, &super::command::passwd_home) {
        Some(v) => Cow::Owned(v),
        None => Cow::Borrowed(args),
    }
}

/// What the task itself says a variable is: its `environment`, then `HOME` of its
/// `become_user` (SSH mode asks the host for the rest).
pub fn task_env(ctx: &Ctx<'_>, name: &str, become_home: Option<&str>) -> Option<String> {
    if let Some((_, v)) = ctx.env.iter().rev().find(|(k, _)| k == name) {
        return Some(v.clone());
    }
    if name == "HOME" {
        return become_home.map(str::to_string);
    }
    None
}

/// The module's path arguments that `$` or `~` would change (so SSH mode asks its host
/// for names only then).
pub fn wants_expansion(module: &str, args: &Vars) -> bool {
    let Some((_, names)) = PATH_ARGS.iter().find(|(m, _)| *m == module) else {
        return false;
    };
    let marked = |s: &str| s.contains('~') || s.contains('$');
    names.iter().any(|n| match args.get(*n) {
        Some(Value::String(s)) => marked(s),
        Some(Value::Array(items)) => items.iter().any(|v| v.as_str().is_some_and(marked)),
        _ => false,
    })
}

/// `args` with the module's path arguments expanded by `env` (variables) and `home`
/// (home directories, `None` for the current user's); `None` when nothing changes.
pub fn expand_with(
    module: &str,
    args: &Vars,
    env: &dyn Fn(&str) -> Option<String>,
    home: &dyn Fn(Option<&str>) -> Option<String>,
) -> Option<Vars> {
    let (_, names) = PATH_ARGS.iter().find(|(m, _)| *m == module)?;
    let one = |s: &str| {
        if s.contains('~') || s.contains('$') {
            super::command::expand_word(s, env, home)
        } else {
            s.to_string()
        }
    };
    let mut out: Option<Vars> = None;
    for name in names.iter() {
        let new = match args.get(*name) {
            Some(Value::String(s)) => {
                let e = one(s);
                (e != *s).then_some(Value::String(e))
            }
            Some(Value::Array(items)) => {
                let e: Vec<Value> = items
                    .iter()
                    .map(|v| match v {
                        Value::String(s) => Value::String(one(s)),
                        other => other.clone(),
                    })
                    .collect();
                (e != *items).then_some(Value::Array(e))
            }
            _ => None,
        };
        if let Some(v) = new {
            out.get_or_insert_with(|| args.clone())
                .insert((*name).to_string(), v);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use crate::modules::run_for_test;
    use serde_json::json;
    use std::collections::BTreeMap;

    #[test]
    fn lineinfile_create_under_tilde_is_the_users_home() {
        // lineinfile target task 'Create file' (path: ~/.../test.txt, create: true):
        // the runner looked for a directory literally named '~'.
        let home = std::env::var("HOME").unwrap();
        let dir = tempfile::tempdir_in(&home).unwrap();
        let name = dir
            .path()
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let args = json!({"path": format!("~/{name}/t.txt"), "line": "x", "create": true});
        let out = run_for_test(
            "lineinfile",
            args.as_object().unwrap(),
            &BTreeMap::new(),
            &json!({}),
            false,
        )
        .unwrap();
        assert!(out.changed && !out.failed, "{out:?}");
        assert_eq!(
            std::fs::read_to_string(dir.path().join("t.txt")).unwrap(),
            "x\n"
        );
        // $HOME too (expandvars), and stat sees the same file.
        let args = json!({"path": format!("$HOME/{name}/t.txt")});
        let out = run_for_test(
            "stat",
            args.as_object().unwrap(),
            &BTreeMap::new(),
            &json!({}),
            false,
        )
        .unwrap();
        assert_eq!(out.data["stat"]["exists"], json!(true), "{out:?}");
        // Not a path argument: left alone.
        let args = json!({"msg": "~/x"});
        let out = run_for_test(
            "debug",
            args.as_object().unwrap(),
            &BTreeMap::new(),
            &json!({}),
            false,
        )
        .unwrap();
        assert_eq!(out.data["msg"], json!("~/x"), "{out:?}");
    }
}
