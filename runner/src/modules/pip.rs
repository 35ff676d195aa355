//! The pip module (ansible.builtin.pip): Python packages installed, upgraded or removed
//! with the host's own pip, in a virtualenv it makes when asked, as Ansible's module
//! runs it: argument vectors (never a shell), `changed` from pip's own report
//! ("Successfully installed"/"uninstalled"), or from `pip list` before and after for a
//! requirements file or a VCS URL; check mode compares `pip list` with what is asked.

use super::fsutil::{Step, fail, failed};
use super::{Ctx, ModuleError, Outcome, args, tools};
use crate::plan::Vars;
use serde_json::Value;
use std::path::{Path, PathBuf};

const KNOWN: &[&str] = &[
    "name",
    "version",
    "state",
    "requirements",
    "virtualenv",
    "virtualenv_site_packages",
    "virtualenv_command",
    "virtualenv_python",
    "extra_args",
    "editable",
    "chdir",
    "executable",
    "break_system_packages",
];

/// What each `state` runs.
fn state_args(state: &str) -> Option<&'static [&'static str]> {
    Some(match state {
        "present" => &["install"],
        "absent" => &["uninstall", "-y"],
        "latest" => &["install", "-U"],
        "forcereinstall" => &["install", "-U", "--force-reinstall"],
        _ => return None,
    })
}

pub(super) fn run(a: &Vars, ctx: &Ctx<'_>) -> Result<Outcome, ModuleError> {
    super::fsutil::finish(run_inner(a, ctx))
}

/// A process of the task (its environment and user) in `dir`, with `path` first in
/// its PATH when given (a virtualenv's `bin`).
fn command(
    ctx: &Ctx<'_>,
    program: &Path,
    dir: &Path,
    path: Option<&Path>,
) -> std::process::Command {
    let mut cmd = ctx.command(program);
    cmd.current_dir(dir);
    if let Some(p) = path {
        let rest = std::env::var_os("PATH").unwrap_or_default();
        let mut all = vec![p.to_path_buf()];
        all.extend(std::env::split_paths(&rest));
        if let Ok(joined) = std::env::join_paths(all) {
            cmd.env("PATH", joined);
        }
    }
    cmd
}

/// Runs `argv` (program first) as the task; a failure to start is the task's failure.
fn run_argv(
    ctx: &Ctx<'_>,
    argv: &[String],
    dir: &Path,
    path: Option<&Path>,
    env: &[(&str, &str)],
) -> Step<tools::Output> {
    let Some((program, rest)) = argv.split_first() else {
        return fail("pip: an empty command");
    };
    let mut cmd = command(ctx, Path::new(program), dir, path);
    cmd.envs(env.iter().copied());
    tools::run_command(cmd, rest, None).map_err(|e| {
        failed(Outcome::fail(format!("could not run {program}: {e}")).with("cmd", argv.to_vec()))
    })
}

/// Ansible's `_fail`: what the command printed.
fn pip_failed(argv: &[String], out: &str, err: &str) -> super::fsutil::Stop {
    let mut msg = String::new();
    if !out.is_empty() {
        msg.push_str(&format!("stdout: {out}"));
    }
    if !err.is_empty() {
        msg.push_str(&format!("\n:stderr: {err}"));
    }
    failed(Outcome::fail(msg).with("cmd", argv.to_vec()))
}

/// A `virtualenv_command` that is Python's venv (or pyvenv), which takes no `-p`.
fn is_venv(words: &[String]) -> bool {
    words.first().is_some_and(|w| {
        w.rsplit('/')
            .next()
            .is_some_and(|b| b.starts_with("pyvenv"))
    }) || words
        .windows(2)
        .any(|w| matches!(w, [m, v] if m == "-m" && v == "venv"))
}

/// The host's Python 3, for `python3 -m pip` and a virtualenv's default `-p`.
fn python3() -> Option<PathBuf> {
    tools::find_bin("python3")
}

/// The pip to run: `executable`, the virtualenv's, the host Python's pip module, or
/// `pip3` on the PATH, as Ansible's `_get_pip` picks.
fn find_pip(ctx: &Ctx<'_>, env: Option<&Path>, executable: Option<&str>) -> Step<Vec<String>> {
    if let Some(exe) = executable {
        if exe.starts_with('/') {
            return Ok(vec![exe.to_string()]);
        }
        return match tools::find_bin(exe) {
            Some(p) => Ok(vec![p.display().to_string()]),
            None => fail(format!(
                "Unable to find any of {exe} to use.  pip needs to be installed."
            )),
        };
    }
    if let Some(env) = env {
        for name in ["pip3", "pip"] {
            let p = env.join("bin").join(name);
            if p.is_file() {
                return Ok(vec![p.display().to_string()]);
            }
        }
        return fail(format!(
            "Unable to find pip in the virtualenv, {}, under any of these names: pip3, pip. Make sure pip is present in the virtualenv.",
            env.display()
        ));
    }
    if let Some(py) = python3() {
        let probe = ["-c".to_string(), "import pip".to_string()];
        if tools::run_command(ctx.command(&py), &probe, None).is_ok_and(|o| o.rc == 0) {
            return Ok(vec![py.display().to_string(), "-m".into(), "pip".into()]);
        }
    }
    match tools::find_bin("pip3") {
        Some(p) => Ok(vec![p.display().to_string()]),
        None => fail("Unable to find any of pip3 to use.  pip needs to be installed."),
    }
}

/// Ansible's `_recover_package_name`: `name: "foo>=1,<2"` comes split at the comma;
/// a piece that starts with a version operator belongs to the name before it.
fn recover_names(names: Vec<String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for n in names {
        let n = n.trim().to_string();
        let is_spec = n.starts_with(['<', '>', '=', '!', '~']);
        match out.last_mut() {
            Some(prev) if is_spec => {
                prev.push(',');
                prev.push_str(&n);
            }
            _ => out.push(n),
        }
    }
    out
}

fn is_vcs(name: &str) -> bool {
    ["svn+", "git+", "hg+", "bzr+"]
        .iter()
        .any(|p| name.starts_with(p))
}

/// PEP 503's normalised project name.
fn canonical(name: &str) -> String {
    let mut out = String::new();
    let mut sep = false;
    for c in name.chars() {
        if matches!(c, '-' | '_' | '.') {
            sep = true;
        } else {
            if sep && !out.is_empty() {
                out.push('-');
            }
            sep = false;
            out.push(c.to_ascii_lowercase());
        }
    }
    out
}

/// A requirement as far as check mode compares it: a project name and its version
/// clauses (`>=1.0`, `==2.*`); `None` for what is not a plain requirement (a URL, a
/// path), which is never found installed.
#[derive(Debug, Clone, PartialEq)]
struct Requirement {
    name: String,
    clauses: Vec<(String, String)>,
}

impl Requirement {
    fn parse(text: &str) -> Option<Requirement> {
        let text = text.split(';').next().unwrap_or_default().trim();
        let end = text
            .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
            .unwrap_or(text.len());
        let (name, mut rest) = text.split_at(end);
        if name.is_empty() {
            return None;
        }
        // Extras (`name[extra]`) do not change what is installed under the name.
        if let Some(r) = rest.trim_start().strip_prefix('[') {
            rest = r.split_once(']')?.1;
        }
        let mut clauses = Vec::new();
        for clause in rest.split(',').map(str::trim).filter(|c| !c.is_empty()) {
            let op_len = clause
                .find(|c: char| !matches!(c, '<' | '>' | '=' | '!' | '~'))
                .unwrap_or(clause.len());
            let (op, ver) = clause.split_at(op_len);
            if !["==", "===", "!=", ">=", "<=", ">", "<", "~="].contains(&op)
                || ver.trim().is_empty()
            {
                return None;
            }
            clauses.push((op.to_string(), ver.trim().to_string()));
        }
        Some(Requirement {
            name: canonical(name),
            clauses,
        })
    }

    fn satisfied_by(&self, version: &str) -> bool {
        self.clauses
            .iter()
            .all(|(op, want)| matches(op, want, version))
    }
}

/// A version's release numbers (`1.10.2rc1` -> [1, 10, 2]), and whether more follows
/// them (a pre-release or local part).
fn release(v: &str) -> (Vec<u64>, bool) {
    let v = v.trim().trim_start_matches(['v', 'V']);
    let v = v.split_once('!').map_or(v, |(_, r)| r);
    let mut nums = Vec::new();
    let mut rest = false;
    for part in v.split('.') {
        let digits: String = part.chars().take_while(char::is_ascii_digit).collect();
        match digits.parse() {
            Ok(n) => nums.push(n),
            Err(_) => {
                rest = true;
                break;
            }
        }
        if digits.len() != part.len() {
            rest = true;
            break;
        }
    }
    while nums.len() > 1 && nums.last() == Some(&0) {
        nums.pop();
    }
    (nums, rest)
}

fn matches(op: &str, want: &str, have: &str) -> bool {
    use std::cmp::Ordering;
    if let Some(prefix) = want.strip_suffix(".*") {
        let (p, _) = release(prefix);
        let (h, _) = release(have);
        let hit = h.len() >= p.len() && h.get(..p.len()) == Some(&p[..])
            || (p.iter().skip(h.len()).all(|n| *n == 0) && p.starts_with(&h));
        return (op == "==") == hit;
    }
    let (w, _) = release(want);
    let (h, _) = release(have);
    let ord = w
        .iter()
        .chain(std::iter::repeat(&0))
        .zip(h.iter().chain(std::iter::repeat(&0)))
        .take(w.len().max(h.len()))
        .map(|(a, b)| b.cmp(a))
        .find(|o| *o != Ordering::Equal)
        .unwrap_or(Ordering::Equal);
    match op {
        "===" => want == have,
        "==" => ord == Ordering::Equal,
        "!=" => ord != Ordering::Equal,
        ">=" => ord != Ordering::Less,
        "<=" => ord != Ordering::Greater,
        ">" => ord == Ordering::Greater,
        "<" => ord == Ordering::Less,
        "~=" => {
            // Compatible release: >= want, and the same release but for its last number.
            let prefix = w.get(..w.len().saturating_sub(1)).unwrap_or_default();
            ord != Ordering::Less && h.get(..prefix.len()) == Some(prefix)
        }
        _ => false,
    }
}

fn run_inner(a: &Vars, ctx: &Ctx<'_>) -> Step<Outcome> {
    args::only(a, KNOWN)?;
    let state = args::opt_str(a, "state")?.unwrap_or_else(|| "present".into());
    let Some(state_argv) = state_args(&state) else {
        return Err(ModuleError::BadArgs(format!(
            "argument 'state' must be one of: present, absent, latest, forcereinstall; got '{state}'"
        ))
        .into());
    };
    let names = match a.get("name") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(recover_names(s.split(',').map(str::to_string).collect())),
        Some(_) => Some(recover_names(args::str_list(a, "name")?)),
    };
    let requirements = args::opt_str(a, "requirements")?;
    match (&names, &requirements) {
        (None, None) => {
            return Err(ModuleError::BadArgs(
                "one of the following is required: name, requirements".into(),
            )
            .into());
        }
        (Some(_), Some(_)) => {
            return Err(ModuleError::BadArgs(
                "parameters are mutually exclusive: name|requirements".into(),
            )
            .into());
        }
        _ => {}
    }
    let executable = args::opt_str(a, "executable")?;
    let virtualenv = args::opt_str(a, "virtualenv")?;
    if executable.is_some() && virtualenv.is_some() {
        return Err(ModuleError::BadArgs(
            "parameters are mutually exclusive: executable|virtualenv".into(),
        )
        .into());
    }
    let version = args::opt_str(a, "version")?;
    if state == "latest" && version.is_some() {
        return fail("version is incompatible with state=latest");
    }
    let chdir = args::opt_str(a, "chdir")?;
    let env = virtualenv.map(|v| match &chdir {
        Some(c) if !v.starts_with('/') => format!("{}/{v}", c.trim_end_matches('/')),
        _ => v,
    });
    let dir = chdir.map_or_else(std::env::temp_dir, PathBuf::from);
    let mut out = String::new();
    let mut err = String::new();
    let mut venv_created = false;
    let mut venv_cmd: Vec<String> = Vec::new();
    if let Some(env) = &env
        && !Path::new(env).join("bin/activate").exists()
    {
        if ctx.check_mode {
            return Ok(Outcome::changed(true));
        }
        venv_created = true;
        let command =
            args::opt_str(a, "virtualenv_command")?.unwrap_or_else(|| "virtualenv".into());
        let mut words = super::split_command_line(&command)
            .map_err(|e| ModuleError::BadArgs(format!("argument 'virtualenv_command': {e}")))?;
        let Some(first) = words.first_mut() else {
            return Err(
                ModuleError::BadArgs("argument 'virtualenv_command' is empty".into()).into(),
            );
        };
        if !first.contains('/') {
            match tools::find_bin(first) {
                Some(p) => *first = p.display().to_string(),
                None => {
                    return fail(format!(
                        "Failed to find required executable \"{first}\" in paths: $PATH"
                    ));
                }
            }
        }
        if args::bool_or(a, "virtualenv_site_packages", false)? {
            words.push("--system-site-packages".into());
        }
        let python = args::opt_str(a, "virtualenv_python")?;
        if !is_venv(&words) {
            if let Some(p) = python.or_else(|| python3().map(|p| p.display().to_string())) {
                words.push(format!("-p{p}"));
            }
        } else if python.is_some() {
            return fail(
                "virtualenv_python should not be used when using the venv module or pyvenv as virtualenv_command",
            );
        }
        words.push(env.clone());
        let o = run_argv(ctx, &words, &dir, None, &[])?;
        out.push_str(&o.stdout);
        err.push_str(&o.stderr);
        if o.rc != 0 {
            return Err(pip_failed(&words, &out, &err));
        }
        venv_cmd = words;
    }
    let env_path = env.as_ref().map(PathBuf::from);
    let pip = find_pip(ctx, env_path.as_deref(), executable.as_deref())?;
    let mut cmd: Vec<String> = pip.clone();
    cmd.extend(state_argv.iter().map(|s| s.to_string()));
    let mut packages = names.clone().unwrap_or_default();
    if let Some(v) = &version {
        if packages.len() > 1 {
            return fail(
                "'version' argument is ambiguous when installing multiple package distributions. Please specify version restrictions next to each package in 'name' argument.",
            );
        }
        if let Some(first) = packages.first_mut() {
            if Requirement::parse(first).is_some_and(|r| !r.clauses.is_empty()) {
                return fail(
                    "The 'version' argument conflicts with any version specifier provided along with a package name. Please keep the version specifier, but remove the 'version' argument.",
                );
            }
            let v = v.trim_start();
            let sep = if v.starts_with(|c: char| c.is_ascii_digit()) {
                "=="
            } else {
                ""
            };
            *first = format!("{first}{sep}{v}");
        }
    }
    let mut extra = args::opt_str(a, "extra_args")?.unwrap_or_default();
    if args::bool_or(a, "editable", false)? && !extra.split(' ').any(|w| w == "-e") {
        extra = if extra.is_empty() {
            "-e".into()
        } else {
            format!("{extra} -e")
        };
    }
    if !extra.is_empty() {
        cmd.extend(
            super::split_command_line(&extra)
                .map_err(|e| ModuleError::BadArgs(format!("argument 'extra_args': {e}")))?,
        );
    }
    let mut pip_env: Vec<(&str, &str)> = vec![("LANG", "C.UTF-8"), ("LC_ALL", "C.UTF-8")];
    if args::bool_or(a, "break_system_packages", false)? {
        pip_env.push(("PIP_BREAK_SYSTEM_PACKAGES", "1"));
    }
    if names.is_some() {
        cmd.extend(packages.iter().cloned());
    } else if let Some(r) = &requirements {
        cmd.extend(["-r".to_string(), r.clone()]);
    }
    let bin = env_path.as_ref().map(|e| e.join("bin"));
    let list = |out: &mut String, err: &mut String| -> Step<(Vec<String>, String)> {
        let mut argv = pip.clone();
        argv.extend(["list".to_string(), "--format=freeze".to_string()]);
        let mut o = run_argv(ctx, &argv, &dir, None, &pip_env)?;
        if o.rc != 0 {
            argv.truncate(pip.len());
            argv.push("freeze".into());
            o = run_argv(ctx, &argv, &dir, None, &pip_env)?;
            if o.rc != 0 {
                return Err(pip_failed(&argv, &o.stdout, &o.stderr));
            }
        }
        out.push_str(&o.stdout);
        err.push_str(&o.stderr);
        Ok((argv, o.stdout))
    };
    if ctx.check_mode {
        if !extra.is_empty() || requirements.is_some() || state == "latest" || names.is_none() {
            return Ok(Outcome::changed(true));
        }
        let (list_cmd, listed) = list(&mut out, &mut err)?;
        let installed: Vec<(String, String)> = listed
            .lines()
            .filter_map(|l| l.split_once("=="))
            .map(|(n, v)| (canonical(n), v.trim().to_string()))
            .collect();
        let present = |p: &str| {
            Requirement::parse(p).is_some_and(|r| {
                installed
                    .iter()
                    .any(|(n, v)| *n == r.name && r.satisfied_by(v))
            })
        };
        let changed = packages.iter().any(|p| match state.as_str() {
            "present" => !present(p),
            "absent" => present(p),
            _ => false,
        });
        return Ok(Outcome::changed(changed)
            .with("cmd", list_cmd.join(" "))
            .with("stdout", out)
            .with("stderr", err));
    }
    let before = if requirements.is_some() || packages.iter().any(|p| is_vcs(p)) {
        Some(list(&mut String::new(), &mut String::new())?.1)
    } else {
        None
    };
    let o = run_argv(ctx, &cmd, &dir, bin.as_deref(), &pip_env)?;
    out.push_str(&o.stdout);
    err.push_str(&o.stderr);
    let not_installed = o.stdout.contains("not installed") || o.stderr.contains("not installed");
    if o.rc != 0 && !(o.rc == 1 && state == "absent" && not_installed) {
        return Err(pip_failed(&cmd, &out, &err));
    }
    let changed = if state == "absent" {
        o.stdout.contains("Successfully uninstalled")
    } else {
        match before {
            None => o.stdout.contains("Successfully installed"),
            Some(b) => list(&mut String::new(), &mut String::new())?.1 != b,
        }
    };
    let shown_cmd = if venv_created && names.is_none() && requirements.is_none() {
        venv_cmd
    } else {
        cmd
    };
    Ok(Outcome::changed(changed || venv_created)
        .with("cmd", shown_cmd)
        .with(
            "name",
            names.map_or(Value::Null, |n| {
                Value::Array(n.into_iter().map(Value::String).collect())
            }),
        )
        .with("version", version.map_or(Value::Null, Value::String))
        .with("state", state)
        .with(
            "requirements",
            requirements.map_or(Value::Null, Value::String),
        )
        .with("virtualenv", env.map_or(Value::Null, Value::String))
        .with("stdout", out)
        .with("stderr", err))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requirements_are_read_as_pip_reads_them() {
        let r = Requirement::parse("Foo_Bar[extra]>=1.0,<2").unwrap();
        assert_eq!(r.name, "foo-bar");
        assert!(r.satisfied_by("1.5") && r.satisfied_by("1.0.0"));
        assert!(!r.satisfied_by("2.0") && !r.satisfied_by("0.9"));
        let r = Requirement::parse("x==1.2.*").unwrap();
        assert!(r.satisfied_by("1.2.7") && !r.satisfied_by("1.3"));
        let r = Requirement::parse("x~=1.4.2").unwrap();
        assert!(r.satisfied_by("1.4.9") && !r.satisfied_by("1.5.0") && !r.satisfied_by("1.4.1"));
        assert!(Requirement::parse("git+https://example.invalid/x.git").is_none());
        assert_eq!(
            recover_names(vec!["a>=1".into(), "<2".into(), "b".into()]),
            vec!["a>=1,<2".to_string(), "b".to_string()]
        );
        assert!(is_venv(&["python3".into(), "-m".into(), "venv".into()]));
        assert!(!is_venv(&["/usr/bin/virtualenv".into()]));
    }
}
