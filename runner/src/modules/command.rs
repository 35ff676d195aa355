//! command and shell: run a process, register rc, stdout and stderr as Ansible does.
//! The process runner here ([`run_process`], on [`tools::collect`]) is shared with
//! script and raw.

use super::{Ctx, ModuleError, Outcome, args, tools};
use crate::plan::Vars;
use serde_json::Value;
use std::path::Path;
use std::process::Command;
use std::time::SystemTime;

/// The arguments command and shell take (SSH mode checks the same).
pub const COMMON: &[&str] = &[
    "_raw_params",
    "cmd",
    "argv",
    "chdir",
    "creates",
    "removes",
    "stdin",
    "stdin_add_newline",
    "strip_empty_ends",
    "executable",
    "expand_argument_vars",
];

/// The `command` module: no shell, so no pipes, redirections or variable expansion.
pub(super) fn command(a: &Vars, ctx: &Ctx<'_>) -> Result<Outcome, ModuleError> {
    command_module(a, ctx, false)
}

/// The `shell` module: Ansible's command module with `_uses_shell`, the text run by
/// `/bin/sh -c` (or `executable -c`).
pub(super) fn shell(a: &Vars, ctx: &Ctx<'_>) -> Result<Outcome, ModuleError> {
    // The shell action refuses the command-only option before the module runs.
    if a.contains_key("expand_argument_vars") {
        return Ok(Outcome::fail(
            "Unsupported parameters for (shell) module: expand_argument_vars",
        ));
    }
    command_module(a, ctx, true)
}

/// Ansible's command module (`modules/command.py` `main`), shared by command and shell,
/// in its order: the `executable` warning, the argument checks (rc 256), `chdir`,
/// `creates`/`removes` as globs (relative to `chdir`), check mode, the run.
fn command_module(a: &Vars, ctx: &Ctx<'_>, uses_shell: bool) -> Result<Outcome, ModuleError> {
    args::only(a, COMMON)?;
    let mut warnings: Vec<String> = Vec::new();
    let mut executable = args::opt_str(a, "executable")?;
    if !uses_shell && let Some(e) = executable.take() {
        warnings.push(format!(
            "As of Ansible 2.4, the parameter 'executable' is no longer supported with the 'command' module. Not using '{e}'."
        ));
    }
    let line = free_form(a)?;
    let argv = match a.get("argv") {
        None | Some(Value::Null) => None,
        Some(Value::Array(_)) => Some(args::str_list(a, "argv")?),
        Some(other) => {
            return Err(ModuleError::BadArgs(format!(
                "argument 'argv' must be a list, got {other}"
            )));
        }
    };
    let line = line.filter(|l| !l.trim().is_empty());
    let argv = argv.filter(|v| !v.is_empty());
    let early_fail = |msg: &str, warnings: &[String]| {
        let mut o = without_output(Outcome::fail(msg).with("rc", 256).with("cmd", Value::Null));
        if !warnings.is_empty() {
            o = o.with("warnings", Value::from(warnings.to_vec()));
        }
        o
    };
    let (mut cmd, shown) = match (line, argv) {
        (None, None) => return Ok(early_fail("no command given", &warnings)),
        (Some(_), Some(_)) => {
            return Ok(early_fail(
                "only command or argv can be given, not both",
                &warnings,
            ));
        }
        (Some(line), None) if uses_shell => {
            let shell = executable.unwrap_or_else(|| "/bin/sh".into());
            let mut cmd = ctx.command(shell);
            cmd.arg("-c").arg(&line);
            (cmd, Value::from(line))
        }
        (None, Some(words)) if uses_shell => {
            // run_command joins a list for the shell with each word quoted.
            let line = words
                .iter()
                .map(|w| super::script::quote(w))
                .collect::<Vec<_>>()
                .join(" ");
            let shell = executable.unwrap_or_else(|| "/bin/sh".into());
            let mut cmd = ctx.command(shell);
            cmd.arg("-c").arg(&line);
            (cmd, Value::from(words))
        }
        (line, words) => {
            let words = match (line, words) {
                (Some(line), _) => split(&line)
                    .map_err(|e| ModuleError::BadArgs(format!("cannot parse command line: {e}")))?,
                (None, Some(w)) => w,
                (None, None) => Vec::new(),
            };
            // run_command expands $VAR, ${VAR} and a leading ~ in each word (not a
            // shell: no globbing, no word splitting) unless expand_argument_vars is off.
            let run: Vec<String> = if args::bool_or(a, "expand_argument_vars", true)? {
                // The module's process environment: the task's `environment` over the
                // runner's own.
                let env = |name: &str| {
                    ctx.env
                        .iter()
                        .rev()
                        .find(|(k, _)| k == name)
                        .map(|(_, v)| v.clone())
                        .or_else(|| std::env::var(name).ok())
                };
                words
                    .iter()
                    .map(|w| expand_word(w, &env, &passwd_home))
                    .collect()
            } else {
                words.clone()
            };
            let Some((program, rest)) = run.split_first() else {
                return Ok(early_fail("no command given", &warnings));
            };
            let mut cmd = ctx.command(program);
            cmd.args(rest);
            (cmd, Value::from(words))
        }
    };
    let strip = args::bool_or(a, "strip_empty_ends", true)?;
    let chdir = args::opt_str(a, "chdir")?;
    if let Some(dir) = &chdir {
        // Ansible's os.chdir, with Python's text of the error.
        if let Err(e) = std::fs::read_dir(dir).map(drop).or_else(|e| {
            if std::path::Path::new(dir).is_dir() {
                Ok(())
            } else {
                Err(e)
            }
        }) {
            let mut o = Outcome::fail(format!(
                "Unable to change directory before execution: {}",
                python_os_error(&e, dir)
            ))
            .with("rc", Value::Null)
            .with("cmd", shown)
            .with("stdout", "")
            .with("stderr", "")
            .with("stdout_lines", Value::Array(Vec::new()))
            .with("stderr_lines", Value::Array(Vec::new()));
            if !warnings.is_empty() {
                o = o.with("warnings", Value::from(warnings));
            }
            return Ok(o);
        }
        cmd.current_dir(dir);
    }
    let mut o = run_process_checked(a, ctx, cmd, shown, strip, chdir.as_deref())?;
    if !warnings.is_empty() {
        let mut all: Vec<Value> = warnings.into_iter().map(Value::from).collect();
        if let Some(Value::Array(more)) = o.data.shift_remove("warnings") {
            all.extend(more);
        }
        o = o.with("warnings", Value::Array(all));
    }
    Ok(o)
}

/// Python's text of an `OSError` for a path given as bytes
/// (`[Errno 2] No such file or directory: b'/x'`).
fn python_os_error(e: &std::io::Error, path: &str) -> String {
    let errno = e.raw_os_error().unwrap_or(0);
    let text = e.to_string();
    let reason = text.split(" (os error").next().unwrap_or(&text);
    format!("[Errno {errno}] {reason}: {}", bytes_repr(path.as_bytes()))
}

/// A `type='path'` argument as Ansible's modules read it (`expandvars`, then
/// `expanduser`), with the task's environment over the runner's.
pub(super) fn expand_path(path: &str, ctx: &Ctx<'_>) -> String {
    let env = |name: &str| {
        ctx.env
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .or_else(|| std::env::var(name).ok())
    };
    expand_word(path, &env, &passwd_home)
}

/// A command word as Ansible's command module expands it: `os.path.expandvars` then
/// `os.path.expanduser`, with `env` for variables and `home` for home directories
/// (`None`: the current user's), so SSH mode can give the host's answers.
pub fn expand_word(
    word: &str,
    env: &dyn Fn(&str) -> Option<String>,
    home: &dyn Fn(Option<&str>) -> Option<String>,
) -> String {
    expand_user(&expand_vars(word, env), env, home)
}

/// Python's `os.path.expandvars`: `$name` and `${name}` of set variables are
/// replaced, anything else (unset names, a lone `$`) is left as written.
fn expand_vars(word: &str, env: &dyn Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(word.len());
    let mut rest = word;
    while let Some(i) = rest.find('$') {
        out.push_str(rest.get(..i).unwrap_or_default());
        let after = rest.get(i + 1..).unwrap_or_default();
        let (name, consumed) = match after.strip_prefix('{') {
            Some(inner) => match inner.find('}') {
                Some(end) => (inner.get(..end).unwrap_or_default(), end + 2),
                None => ("", 0),
            },
            None => {
                let end = after
                    .find(|c: char| !(c.is_alphanumeric() || c == '_'))
                    .unwrap_or(after.len());
                (after.get(..end).unwrap_or_default(), end)
            }
        };
        match env(name) {
            Some(v) if !name.is_empty() => {
                out.push_str(&v);
                rest = after.get(consumed..).unwrap_or_default();
            }
            _ => {
                out.push('$');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// Python's `os.path.expanduser`: a leading `~` is $HOME (or the passwd home), a
/// leading `~user` that user's home; unknown users are left as written.
fn expand_user(
    word: &str,
    env: &dyn Fn(&str) -> Option<String>,
    home_of: &dyn Fn(Option<&str>) -> Option<String>,
) -> String {
    let Some(after) = word.strip_prefix('~') else {
        return word.to_string();
    };
    let (user, tail) = match after.find('/') {
        Some(i) => (
            after.get(..i).unwrap_or_default(),
            after.get(i..).unwrap_or_default(),
        ),
        None => (after, ""),
    };
    let home = if user.is_empty() {
        env("HOME").or_else(|| home_of(None))
    } else {
        home_of(Some(user))
    };
    match home {
        Some(h) => format!(
            "{}{tail}",
            if h == "/" && !tail.is_empty() {
                ""
            } else {
                h.as_str()
            }
        ),
        None => word.to_string(),
    }
}

/// A home directory from /etc/passwd: of `user`, or of the user this process runs as.
pub(super) fn passwd_home(user: Option<&str>) -> Option<String> {
    let name = match user {
        Some(u) => u.to_string(),
        None => crate::facts::current_user()?,
    };
    crate::passwd::user(&name).map(|u| u.home)
}

fn free_form(a: &Vars) -> Result<Option<String>, ModuleError> {
    Ok(match args::opt_str(a, "cmd")? {
        Some(c) => Some(c),
        None => args::opt_str(a, "_raw_params")?,
    })
}

/// command/shell from `creates`/`removes` on: each a glob (Python's `glob.glob`, relative
/// to `chdir`), with Ansible's messages; then check mode, or the run.
fn run_process_checked(
    a: &Vars,
    ctx: &Ctx<'_>,
    cmd: Command,
    shown: Value,
    strip: bool,
    chdir: Option<&str>,
) -> Result<Outcome, ModuleError> {
    let creates = args::opt_str(a, "creates")?;
    let removes = args::opt_str(a, "removes")?;
    let matches = |pattern: &str| {
        let full = match chdir {
            Some(dir) if !pattern.starts_with('/') => {
                format!("{}/{pattern}", dir.trim_end_matches('/'))
            }
            _ => pattern.to_string(),
        };
        !super::archive::glob_paths(&full).is_empty()
    };
    if let Some(c) = &creates
        && matches(c)
    {
        return Ok(not_run_by(shown, c, true, ctx.check_mode));
    }
    if let Some(r) = &removes
        && !matches(r)
    {
        return Ok(not_run_by(shown, r, false, ctx.check_mode));
    }
    let mut rest = a.clone();
    rest.shift_remove("creates");
    rest.shift_remove("removes");
    rest.shift_remove("chdir");
    if ctx.check_mode {
        return Ok(would_run(shown, creates.is_some() || removes.is_some()));
    }
    run_process(&rest, ctx, cmd, shown, strip)
}

/// What command and shell register when `creates` (`exists`) or `removes` (not
/// `exists`) decided against a run, in Ansible's words; SSH mode gives the same.
pub fn not_run_by(shown: Value, path: &str, exists: bool, check_mode: bool) -> Outcome {
    let would = if check_mode { "Would" } else { "Did" };
    let state = if exists { "exists" } else { "does not exist" };
    let stdout = format!("skipped, since {path} {state}");
    Outcome::ok()
        .with("cmd", shown)
        .with("rc", 0)
        .with("stdout_lines", Value::from(vec![stdout.clone()]))
        .with("stdout", stdout)
        .with("stderr", "")
        .with("stderr_lines", Value::Array(Vec::new()))
        .with("start", Value::Null)
        .with("end", Value::Null)
        .with("delta", Value::Null)
        .msg(format!("{would} not run command since '{path}' {state}"))
}

/// What command and shell register in check mode when they would run: a change when
/// `creates`/`removes` decided so, skipped when nothing could decide (Ansible's
/// check-mode support of the module).
pub fn would_run(shown: Value, decided: bool) -> Outcome {
    let mut o = Outcome::ok()
        .with("rc", 0)
        .with("cmd", shown)
        .with("stdout", "")
        .with("stderr", "")
        .msg("Command would have run if not in check mode");
    o.skipped = !decided;
    o.changed = decided;
    o
}

/// The command module's output fields for a command that did not run: empty output,
/// no times.
fn without_output(o: Outcome) -> Outcome {
    o.with("stdout", "")
        .with("stderr", "")
        .with("stdout_lines", Value::Array(Vec::new()))
        .with("stderr_lines", Value::Array(Vec::new()))
        .with("start", Value::Null)
        .with("end", Value::Null)
        .with("delta", Value::Null)
}

/// Runs `cmd` as command/shell/script/raw do: `creates`/`removes` (relative to
/// `chdir`) may decide it needs no run, check mode only reports, `stdin` is fed;
/// registers cmd, rc, stdout(_lines), stderr(_lines), start, end and delta, and fails
/// on a non-zero rc. `strip` removes trailing newlines from the output.
pub(super) fn run_process(
    a: &Vars,
    ctx: &Ctx<'_>,
    mut cmd: Command,
    shown: Value,
    strip: bool,
) -> Result<Outcome, ModuleError> {
    let chdir = args::opt_str(a, "chdir")?;
    let creates = args::opt_str(a, "creates")?;
    let removes = args::opt_str(a, "removes")?;
    let stdin = args::opt_str(a, "stdin")?;
    let add_newline = args::bool_or(a, "stdin_add_newline", true)?;

    let resolve = |p: &str| match &chdir {
        Some(dir) if !p.starts_with('/') => Path::new(dir).join(p),
        _ => Path::new(p).to_path_buf(),
    };
    if let Some(c) = &creates
        && resolve(c).exists()
    {
        return Ok(not_run(shown, format!("{c} exists")));
    }
    if let Some(r) = &removes
        && !resolve(r).exists()
    {
        return Ok(not_run(shown, format!("{r} does not exist")));
    }
    if ctx.check_mode {
        // The command module's result in check mode: its empty output fields too.
        let mut o = without_output(Outcome::ok().with("rc", 0).with("cmd", shown))
            .msg("Command would have run if not in check mode");
        // Ansible marks it skipped only when creates/removes could not decide; when
        // they decided it would run, it is a change (geerlingguy.firewall's first flush).
        o.skipped = creates.is_none() && removes.is_none();
        o.changed = !o.skipped;
        return Ok(o);
    }

    if crate::events::deployer_gone() {
        return Ok(Outcome::fail(STOPPED).with("cmd", shown));
    }
    if let Some(dir) = &chdir {
        cmd.current_dir(dir);
    }
    let input = stdin.map(|mut text| {
        if add_newline {
            text.push('\n');
        }
        text.into_bytes()
    });
    let program = cmd.get_program().to_os_string();
    let start = SystemTime::now();
    let ran = tools::collect(&mut cmd, input, tools::OUTPUT_LIMIT, true);
    let end = SystemTime::now();
    let output = match ran {
        Ok(tools::Ran::Done(o)) => o,
        Ok(tools::Ran::Stopped) => return Ok(Outcome::fail(STOPPED).with("cmd", shown)),
        Err(e) => return Ok(not_started(&e, &program, shown)),
    };
    let rc = output.status.code().unwrap_or(-1);
    let mut o = finished(shown, rc, &output.stdout, &output.stderr, strip, start, end);
    if output.dropped > 0 {
        o = o.with(
            "warnings",
            Value::from(vec![format!(
                "the command printed {} bytes beyond the {} MiB of standard output and of standard error a task keeps; they were dropped",
                output.dropped,
                tools::OUTPUT_LIMIT >> 20
            )]),
        );
    }
    Ok(o)
}

/// A command that could not be started (no such program, not executable), as
/// Ansible's `run_command` reports it: failed, `rc` the error number, empty output (so
/// `failed_when` and `changed_when` can look at it) and Python's text of the error.
fn not_started(e: &std::io::Error, program: &std::ffi::OsStr, shown: Value) -> Outcome {
    let errno = e.raw_os_error().unwrap_or(0);
    let text = e.to_string();
    let reason = text.split(" (os error").next().unwrap_or(&text);
    let program = bytes_repr(program.as_encoded_bytes());
    Outcome::fail(format!("[Errno {errno}] {reason}: {program}"))
        .with("rc", errno)
        .with("cmd", shown)
        .with("stdout", "")
        .with("stderr", "")
        .with("stdout_lines", Value::Array(Vec::new()))
        .with("stderr_lines", Value::Array(Vec::new()))
}

/// Python's `repr` of `bytes` (`b'prog'`), which Ansible's message shows.
fn bytes_repr(b: &[u8]) -> String {
    let quote = if b.contains(&b'\'') && !b.contains(&b'"') {
        b'"'
    } else {
        b'\''
    };
    let mut out = format!("b{}", quote as char);
    for &c in b {
        match c {
            b'\\' => out.push_str("\\\\"),
            b'\t' => out.push_str("\\t"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            c if c == quote => {
                out.push('\\');
                out.push(c as char);
            }
            0x20..=0x7e => out.push(c as char),
            c => out.push_str(&format!("\\x{c:02x}")),
        }
    }
    out.push(quote as char);
    out
}

/// Why a command did not run to its end: the deployer that started the runner went away
/// (see [`crate::events::deployer_gone`]).
const STOPPED: &str = "stopped: the deployer went away, so the runner ended this command (and what it started) and runs no further task";

/// The result of a command that ran, as Ansible registers it: output (trailing
/// newlines cut when `strip`), its lines, times, and failure on a non-zero `rc`. SSH
/// mode builds its command results with it too.
pub fn finished(
    shown: Value,
    rc: i32,
    stdout: &[u8],
    stderr: &[u8],
    strip: bool,
    start: SystemTime,
    end: SystemTime,
) -> Outcome {
    let text = |b: &[u8]| {
        let s = String::from_utf8_lossy(b).into_owned();
        if strip {
            s.trim_end_matches(['\n', '\r']).to_string()
        } else {
            s
        }
    };
    let stdout = text(stdout);
    let stderr = text(stderr);
    let lines = |s: &str| Value::from(s.lines().map(str::to_string).collect::<Vec<_>>());
    let mut o = Outcome::changed(true)
        .with("cmd", shown)
        .with("rc", rc)
        .with("stdout_lines", lines(&stdout))
        .with("stderr_lines", lines(&stderr))
        .with("stdout", stdout)
        .with("stderr", stderr)
        .with("start", crate::facts::format_time(start))
        .with("end", crate::facts::format_time(end))
        .with("delta", delta(start, end));
    if rc != 0 {
        o.failed = true;
        o.msg = Some("non-zero return code".into());
    } else {
        o.msg = Some(String::new());
    }
    o
}

/// The result of a command skipped for `creates`/`removes` (`why` says which).
pub fn not_run(shown: Value, why: String) -> Outcome {
    Outcome::ok()
        .with("cmd", shown)
        .with("rc", 0)
        .with("stdout", format!("skipped, since {why}"))
        .with("stderr", "")
        .msg(format!("Did not run command since {why}"))
}

fn delta(start: SystemTime, end: SystemTime) -> String {
    let d = end.duration_since(start).unwrap_or_default();
    let s = d.as_secs();
    format!(
        "{}:{:02}:{:02}.{:06}",
        s / 3600,
        s / 60 % 60,
        s % 60,
        d.subsec_micros()
    )
}

/// Splits a command line as a POSIX shell would split words (quotes and backslashes),
/// without any expansion: what Ansible's command module does with shlex.
pub fn split(line: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(ch) => cur.push(ch),
                        None => return Err("unterminated single quote".into()),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(ch @ ('"' | '\\' | '$' | '`')) => cur.push(ch),
                            Some('\n') => {}
                            Some(ch) => {
                                cur.push('\\');
                                cur.push(ch);
                            }
                            None => return Err("unterminated double quote".into()),
                        },
                        Some(ch) => cur.push(ch),
                        None => return Err("unterminated double quote".into()),
                    }
                }
            }
            '\\' => {
                in_word = true;
                match chars.next() {
                    Some('\n') | None => {}
                    Some(ch) => cur.push(ch),
                }
            }
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            c => {
                in_word = true;
                cur.push(c);
            }
        }
    }
    if in_word {
        words.push(cur);
    }
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::collections::BTreeMap;

    fn check(module: &str, args: Value, check_mode: bool) -> Result<Outcome, ModuleError> {
        let args = args.as_object().unwrap();
        crate::modules::run_for_test(module, args, &BTreeMap::new(), &json!({}), check_mode)
    }

    #[test]
    fn splits_like_a_shell() {
        assert_eq!(
            split(r#"echo 'a b' "c \"d\"" e\ f"#).unwrap(),
            vec!["echo", "a b", "c \"d\"", "e f"]
        );
        assert!(split("echo 'open").is_err());
        assert_eq!(split("  ").unwrap(), Vec::<String>::new());
    }

    #[test]
    fn command_registers_output() {
        let o = check("command", json!({"_raw_params": "echo 'hi there'"}), false).unwrap();
        assert!(o.changed && !o.failed);
        assert_eq!(o.data["stdout"], "hi there");
        assert_eq!(o.data["rc"], 0);
        assert_eq!(o.data["cmd"], json!(["echo", "hi there"]));
    }

    #[test]
    fn a_missing_program_fails_with_empty_output_for_failed_when() {
        // command_nonexisting: `failed_when: res.stdout != '' or res.stderr != ''` must
        // be able to read the output of a command that never started.
        let o = check(
            "command",
            json!({"_raw_params": "rustle-no-such-command --flag"}),
            false,
        )
        .unwrap();
        assert!(o.failed && !o.changed);
        assert_eq!(o.data["stdout"], "");
        assert_eq!(o.data["stderr"], "");
        assert_eq!(o.data["rc"], 2);
        assert_eq!(
            o.msg.as_deref(),
            Some("[Errno 2] No such file or directory: b'rustle-no-such-command'")
        );
        assert_eq!(bytes_repr(b"it's"), "b\"it's\"");
        assert_eq!(bytes_repr(b"a\\\xff'\""), "b'a\\\\\\xff\\'\"'");
    }

    #[test]
    fn command_does_not_use_a_shell_but_expands_variables_like_ansible() {
        let home = std::env::var("HOME").unwrap();
        let o = check("command", json!({"_raw_params": "echo $HOME > x *"}), false).unwrap();
        assert_eq!(o.data["stdout"], format!("{home} > x *"));
        let o = check(
            "command",
            json!({"argv": ["echo", "${HOME}/a", "~", "$RUSTLE_UNSET_VAR", "$"]}),
            false,
        )
        .unwrap();
        assert_eq!(
            o.data["stdout"],
            format!("{home}/a {home} $RUSTLE_UNSET_VAR $")
        );
        let o = check(
            "command",
            json!({"_raw_params": "echo $HOME ~", "expand_argument_vars": false}),
            false,
        )
        .unwrap();
        assert_eq!(o.data["stdout"], "$HOME ~");
        let here = |w: &str| expand_word(w, &|n| std::env::var(n).ok(), &passwd_home);
        assert_eq!(here("~root/x"), "/root/x");
        assert_eq!(here("~no-such-user-rustle/x"), "~no-such-user-rustle/x");
        assert_eq!(here("a~"), "a~");
        assert_eq!(here("${unterminated"), "${unterminated");
    }

    #[test]
    fn expansion_asks_the_given_environment_and_homes() {
        // As SSH mode uses it: another machine's variables and passwd entries.
        let env = |n: &str| match n {
            "HOME" => Some("/home/op".to_string()),
            "APP" => Some("web".to_string()),
            _ => None,
        };
        let home = |u: Option<&str>| match u {
            Some("deploy") => Some("/srv/deploy".to_string()),
            Some(_) => None,
            None => Some("/home/from-passwd".to_string()),
        };
        let x = |w: &str| expand_word(w, &env, &home);
        assert_eq!(x("~/$APP.conf"), "/home/op/web.conf");
        assert_eq!(x("~deploy/${APP}"), "/srv/deploy/web");
        assert_eq!(x("~nobody-here/x"), "~nobody-here/x");
        assert_eq!(x("$NOT_SET-$APP"), "$NOT_SET-web");
        // HOME unset: the passwd home of the current user, as Python does.
        let x = |w: &str| expand_word(w, &|_: &str| None, &home);
        assert_eq!(x("~/a"), "/home/from-passwd/a");
    }

    #[test]
    fn output_endings_and_stdin_newline() {
        let o = check("command", json!({"argv": ["printf", "a\\n\\n"]}), false).unwrap();
        assert_eq!(o.data["stdout"], "a");
        let o = check(
            "command",
            json!({"argv": ["printf", "a\\n\\n"], "strip_empty_ends": false}),
            false,
        )
        .unwrap();
        assert_eq!(o.data["stdout"], "a\n\n");
        assert_eq!(o.data["stdout_lines"], json!(["a", ""]));
        let o = check(
            "command",
            json!({"argv": ["od", "-c"], "stdin": "x", "stdin_add_newline": false}),
            false,
        )
        .unwrap();
        assert!(!o.data["stdout"].as_str().unwrap().contains("\\n"));
        let o = check(
            "command",
            json!({"argv": ["od", "-c"], "stdin": "x"}),
            false,
        )
        .unwrap();
        assert!(o.data["stdout"].as_str().unwrap().contains("\\n"));
    }

    #[test]
    fn creates_is_relative_to_chdir() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("done"), "").unwrap();
        let o = check(
            "command",
            json!({"cmd": "false", "chdir": dir.path().to_str(), "creates": "done"}),
            false,
        )
        .unwrap();
        assert!(!o.changed && !o.failed);
        let o = check(
            "command",
            json!({"cmd": "true", "chdir": dir.path().to_str(), "removes": "done"}),
            false,
        )
        .unwrap();
        assert!(o.changed && !o.failed);
    }

    #[test]
    fn shell_uses_a_shell_and_fails_on_nonzero() {
        let o = check(
            "shell",
            json!({"_raw_params": "echo out; echo err >&2; exit 3"}),
            false,
        )
        .unwrap();
        assert!(o.failed);
        assert_eq!(o.data["rc"], 3);
        assert_eq!(o.data["stdout"], "out");
        assert_eq!(o.data["stderr"], "err");
        assert_eq!(o.msg.as_deref(), Some("non-zero return code"));
    }

    /// A command's output was read into memory without bound: a runaway command took
    /// the runner, and the run's record, with it. What is kept is bounded and the rest
    /// said to be dropped.
    #[test]
    fn output_beyond_the_limit_is_dropped_and_said_to_be() {
        let over = tools::OUTPUT_LIMIT + 100_000;
        let o = check(
            "shell",
            json!({"_raw_params": format!("head -c {over} /dev/zero | tr '\\0' x; echo err >&2")}),
            false,
        )
        .unwrap();
        assert!(o.changed && !o.failed, "{:?}", o.msg);
        assert_eq!(
            o.data["stdout"].as_str().unwrap().len(),
            tools::OUTPUT_LIMIT
        );
        assert_eq!(o.data["stderr"], "err");
        let warning = o.data["warnings"][0].as_str().unwrap();
        assert!(
            warning.contains("100000 bytes beyond the 64 MiB"),
            "{warning}"
        );
        // A command that stays within it says nothing of the kind.
        let o = check("shell", json!({"_raw_params": "echo fine"}), false).unwrap();
        assert!(o.data.get("warnings").is_none());
    }

    /// A command that leaves work in the background (a service it starts) keeps it after
    /// the task, as under Ansible: only a stopped command's process group is ended.
    #[test]
    fn commands_still_start_background_work_that_outlives_them() {
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("pid");
        let o = check(
            "shell",
            json!({"_raw_params": format!("sleep 30 >/dev/null 2>&1 & echo $! > {}", pid_file.display())}),
            false,
        )
        .unwrap();
        assert!(o.changed && !o.failed, "{:?}", o.msg);
        let pid = std::fs::read_to_string(&pid_file).unwrap();
        let pid = pid.trim();
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
        assert!(!stat.contains(") Z "), "{stat}");
        let _ = std::process::Command::new("kill").arg(pid).status();
    }

    #[test]
    fn creates_and_removes_decide_without_running() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("m");
        let a = json!({"_raw_params": format!("touch {}", marker.display()), "creates": marker.to_str()});
        let first = check("shell", a.clone(), false).unwrap();
        assert!(first.changed && marker.exists());
        let second = check("shell", a, false).unwrap();
        assert!(!second.changed && !second.failed);
        assert_eq!(second.data["rc"], 0);
        let r = check(
            "command",
            json!({"cmd": "false", "removes": "/nonexistent/x"}),
            false,
        )
        .unwrap();
        assert!(!r.changed && !r.failed);
    }

    #[test]
    fn check_mode_does_not_run() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("m");
        let o = check(
            "shell",
            json!({"cmd": format!("touch {}", marker.display())}),
            true,
        )
        .unwrap();
        assert!(o.skipped && !o.changed);
        assert!(!marker.exists());
        // With `creates` naming a file that is not there, Ansible reports the run it
        // would make as a change, not a skip.
        let o = check(
            "shell",
            json!({"cmd": format!("touch {}", marker.display()), "creates": marker.display().to_string()}),
            true,
        )
        .unwrap();
        assert!(o.changed && !o.skipped && !o.failed);
        assert!(!marker.exists());
    }

    #[test]
    fn stdin_and_chdir_and_argv() {
        let o = check("command", json!({"argv": ["cat"], "stdin": "fed"}), false).unwrap();
        assert_eq!(o.data["stdout"], "fed");
        let o = check(
            "command",
            json!({"_raw_params": "pwd", "chdir": "/tmp"}),
            false,
        )
        .unwrap();
        assert_eq!(o.data["stdout"], "/tmp");
    }

    #[test]
    fn bad_arguments_are_named() {
        let e = check("command", json!({"cmdd": "x"}), false).unwrap_err();
        assert!(e.to_string().contains("cmdd"));
        // Ansible's module fails the task (rc 256) rather than refusing the arguments.
        let o = check("command", json!({}), false).unwrap();
        assert!(o.failed && o.msg.as_deref() == Some("no command given"));
        let o = check(
            "command",
            json!({"_raw_params": "/nonexistent/prog"}),
            false,
        )
        .unwrap();
        assert!(o.failed && o.data["rc"] == 2);
    }
}
