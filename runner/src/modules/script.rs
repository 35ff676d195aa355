//! script and raw: run a script embedded in the payload, or a raw shell line, with
//! command's results (rc, stdout, stderr, their _lines, start/end/delta).
//!
//! `script` takes the script by the name written in the task (`script: files/x.sh
//! arg1 arg2`; the packer embeds it under that name), writes it to a private 0700
//! temp file, and runs it through `/bin/sh -c` as Ansible does, so the arguments get
//! shell quoting and the script its shebang (or `executable`). The temp file is
//! removed afterwards. Output keeps its trailing newline, as Ansible's script and raw
//! register it.

use super::command::{run_process, split};
use super::tools::PrivateDir;
use super::{Ctx, ModuleError, Outcome, args};
use crate::plan::Vars;
use serde_json::Value;

const SCRIPT_ARGS: &[&str] = &[
    "_raw_params",
    "cmd",
    "chdir",
    "creates",
    "removes",
    "executable",
    "decrypt",
];

/// Single-quotes a word for a POSIX shell, embedded single quotes spliced in as
/// `'"'"'` (as Python's `shlex.quote` does): the shell reads it back as exactly `s`,
/// whatever it holds. The one quoter of the project (the deployer's host scripts use
/// it too, as `modules::sh_quote`, and so does the `quote` filter).
pub fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r#"'"'"'"#))
}

/// Splits a script line into its first word (the script's name, unquoted) and the
/// rest exactly as written (for the shell to parse). The packer finds the script to
/// embed by the same name.
pub fn first_word(line: &str) -> Result<(String, String), ModuleError> {
    let t = line.trim_start();
    let mut end = 0;
    let mut quote_char: Option<char> = None;
    let mut escaped = false;
    for (i, c) in t.char_indices() {
        end = i + c.len_utf8();
        match (quote_char, c) {
            _ if escaped => escaped = false,
            (None, '\\') | (Some('"'), '\\') => escaped = true,
            (None, '\'' | '"') => quote_char = Some(c),
            (Some(q), c) if c == q => quote_char = None,
            (None, c) if c.is_whitespace() => {
                end = i;
                break;
            }
            _ => {}
        }
    }
    let word = t.get(..end).unwrap_or_default();
    let rest = t.get(end..).unwrap_or_default().trim_start().to_string();
    let name = split(word)
        .map_err(|e| ModuleError::BadArgs(format!("cannot parse the script line: {e}")))?
        .into_iter()
        .next()
        .unwrap_or_default();
    Ok((name, rest))
}

/// The `script` module.
pub(super) fn script(a: &Vars, ctx: &Ctx<'_>) -> Result<Outcome, ModuleError> {
    args::only(a, SCRIPT_ARGS)?;
    let line = match args::opt_str(a, "cmd")? {
        Some(c) => c,
        None => args::opt_str(a, "_raw_params")?.ok_or_else(|| {
            ModuleError::BadArgs("one of the following is required: _raw_params, cmd".into())
        })?,
    };
    let (name, rest) = first_word(&line)?;
    if name.is_empty() {
        return Err(ModuleError::BadArgs("the script line is empty".into()));
    }
    // As Ansible's script action: `creates`/`removes` skip the task before anything
    // else is looked at.
    let exists = |p: &str| std::fs::symlink_metadata(p).is_ok();
    let creates = args::opt_str(a, "creates")?.filter(|c| !c.is_empty());
    let removes = args::opt_str(a, "removes")?.filter(|r| !r.is_empty());
    let skip = match (&creates, &removes) {
        (Some(c), _) if exists(c) => Some(format!("{c} exists, matching creates option")),
        (_, Some(r)) if !exists(r) => Some(format!("{r} does not exist, matching removes option")),
        _ => None,
    };
    if let Some(msg) = skip {
        let mut o = Outcome::ok().msg(msg);
        o.skipped = true;
        return Ok(o);
    }
    let Some(file) = ctx.files.get(&name) else {
        return Ok(Outcome::fail(format!(
            "Could not find or access '{name}' among the files embedded for this host ({} embedded)",
            ctx.files.len()
        )));
    };
    let executable = args::opt_str(a, "executable")?;
    // The packer embedded it already decrypted (or refused the plan); accepted so
    // plans written for Ansible pass.
    args::bool_or(a, "decrypt", true)?;
    if ctx.check_mode {
        // As Ansible's: with `creates` or `removes` (not skipped above) the script would
        // run, so the task reports a change; without, nothing can tell.
        if creates.is_some() || removes.is_some() {
            return Ok(Outcome::changed(true));
        }
        let mut o = Outcome::ok().msg("Check mode is not supported for this task.");
        o.skipped = true;
        return Ok(o);
    }

    let dir = match PrivateDir::for_task("script", ctx.run_as) {
        Ok(d) => d,
        Err(e) => {
            return Ok(Outcome::fail(format!(
                "could not create a temp directory: {e}"
            )));
        }
    };
    let base = std::path::Path::new(&name).file_name().map_or_else(
        || "script".to_string(),
        |b| b.to_string_lossy().into_owned(),
    );
    let path = match dir.write(&base, &file.content, 0o700) {
        Ok(p) => p,
        Err(e) => return Ok(Outcome::fail(format!("could not write the script: {e}"))),
    };
    let mut text = quote(&path.display().to_string());
    // Like Ansible, `executable` is joined in as written ("awk -f" works).
    if let Some(exe) = &executable {
        text = format!("{exe} {text}");
    }
    if !rest.is_empty() {
        text = format!("{text} {rest}");
    }
    // The shell execs the script we just wrote; if another thread of this process
    // forked meanwhile, the child may briefly hold our write descriptor and the exec
    // fails with "Text file busy" before the script ran at all, so running it again
    // is safe.
    let mut attempt = 0;
    loop {
        let mut cmd = ctx.command("/bin/sh");
        cmd.arg("-c").arg(&text);
        let o = run_process(a, ctx, cmd, Value::from(line.clone()), false)?;
        let busy = o.data.get("rc") == Some(&Value::from(126))
            && o.data
                .get("stderr")
                .and_then(Value::as_str)
                .is_some_and(|e| e.contains("Text file busy"));
        if busy && attempt < 100 {
            attempt += 1;
            std::thread::sleep(std::time::Duration::from_millis(10));
            continue;
        }
        drop(dir);
        return Ok(o);
    }
}

/// The `raw` module: the line runs under `/bin/sh -c` (or `executable -c`); not at
/// all in check mode, which Ansible's raw does not support.
pub(super) fn raw(a: &Vars, ctx: &Ctx<'_>) -> Result<Outcome, ModuleError> {
    args::only(a, &["_raw_params", "executable"])?;
    let line = args::opt_str(a, "_raw_params")?
        .ok_or_else(|| ModuleError::BadArgs("no command given: use the free-form text".into()))?;
    if ctx.check_mode {
        let mut o = Outcome::ok().msg("Check mode is not supported for raw");
        o.skipped = true;
        return Ok(o);
    }
    let shell = args::opt_str(a, "executable")?.unwrap_or_else(|| "/bin/sh".into());
    let mut cmd = ctx.command(shell);
    cmd.arg("-c").arg(&line);
    // Only the free form and executable reach run_process: no creates/chdir for raw.
    let mut o = run_process(&Vars::new(), ctx, cmd, Value::from(line), false)?;
    // Ansible's raw registers rc, stdout and stderr, not command's timing fields.
    for k in ["start", "end", "delta", "cmd"] {
        o.data.shift_remove(k);
    }
    Ok(o)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::HostFile;
    use serde_json::json;
    use std::collections::BTreeMap;

    fn files(entries: &[(&str, &str)]) -> BTreeMap<String, HostFile> {
        entries
            .iter()
            .map(|(k, v)| {
                (
                    k.to_string(),
                    HostFile {
                        content: v.as_bytes().to_vec(),
                        mode: Some(0o644),
                    },
                )
            })
            .collect()
    }

    fn run(
        module: &str,
        args: Value,
        files: &BTreeMap<String, HostFile>,
        check: bool,
    ) -> Result<Outcome, ModuleError> {
        let args = args.as_object().unwrap();
        crate::modules::run_for_test(module, args, files, &json!({}), check)
    }

    const SCRIPT: &str =
        "#!/bin/sh\necho \"args: $# [$1] [$2]\"\necho \"self: $0\" >&2\npwd\nexit ${EXIT:-0}\n";

    #[test]
    fn script_runs_with_arguments_and_is_removed() {
        let f = files(&[("files/probe.sh", SCRIPT)]);
        let dir = tempfile::tempdir().unwrap();
        let o = run(
            "script",
            json!({"_raw_params": "files/probe.sh one 'two words'", "chdir": dir.path().to_str()}),
            &f,
            false,
        )
        .unwrap();
        assert!(o.changed && !o.failed, "{o:?}");
        assert_eq!(o.data["rc"], 0);
        let cwd = dir.path().canonicalize().unwrap();
        assert_eq!(
            o.data["stdout"],
            format!("args: 2 [one] [two words]\n{}\n", cwd.display())
        );
        assert_eq!(o.data["stdout_lines"][0], "args: 2 [one] [two words]");
        let script_path = o.data["stderr"]
            .as_str()
            .unwrap()
            .trim()
            .strip_prefix("self: ")
            .unwrap()
            .to_string();
        assert!(script_path.contains("rustle-script-"), "{script_path}");
        assert!(
            !std::path::Path::new(&script_path).exists(),
            "temp script removed"
        );
    }

    #[test]
    fn script_fails_on_nonzero_and_respects_creates_and_check_mode() {
        let f = files(&[("fail.sh", "#!/bin/sh\necho bad >&2\nexit 3\n")]);
        let o = run("script", json!({"cmd": "fail.sh"}), &f, false).unwrap();
        assert!(o.failed);
        assert_eq!(o.data["rc"], 3);
        assert_eq!(o.data["stderr"], "bad\n");
        let o = run(
            "script",
            json!({"cmd": "fail.sh", "creates": "/"}),
            &f,
            false,
        )
        .unwrap();
        assert!(!o.failed && !o.changed && o.skipped, "{o:?}");
        assert_eq!(o.msg.as_deref(), Some("/ exists, matching creates option"));
        let o = run(
            "script",
            json!({"cmd": "fail.sh", "removes": "/nonexistent/x"}),
            &f,
            false,
        )
        .unwrap();
        assert!(o.skipped && !o.changed, "{o:?}");
        let o = run("script", json!({"cmd": "fail.sh"}), &f, true).unwrap();
        assert!(!o.failed && !o.changed && o.skipped);
    }

    #[test]
    fn script_executable_and_missing_file() {
        // No shebang, not valid sh: only the given interpreter can run it.
        let f = files(&[("x.awk", "BEGIN { print \"from awk\" }\n")]);
        let o = run(
            "script",
            json!({"cmd": "x.awk", "executable": "awk -f"}),
            &f,
            false,
        )
        .unwrap();
        assert_eq!(o.data["stdout"], "from awk\n", "{o:?}");
        let f2 = files(&[("y.sh", "echo plain $1\n")]);
        let o = run(
            "script",
            json!({"cmd": "y.sh arg", "executable": "/bin/sh"}),
            &f2,
            false,
        )
        .unwrap();
        assert_eq!(o.data["stdout"], "plain arg\n");
        let o = run("script", json!({"cmd": "nope.sh"}), &f, false).unwrap();
        assert!(o.failed && o.msg.unwrap().contains("nope.sh"));
        assert!(run("script", json!({"cmdd": "x"}), &f, false).is_err());
    }

    #[test]
    fn first_words() {
        assert_eq!(
            first_word("a.sh b c").unwrap(),
            ("a.sh".into(), "b c".into())
        );
        assert_eq!(
            first_word("  'my script.sh' \"x y\"").unwrap(),
            ("my script.sh".into(), "\"x y\"".into())
        );
        assert_eq!(
            first_word("a\\ b.sh").unwrap(),
            ("a b.sh".into(), String::new())
        );
    }

    /// Whatever a word holds, `sh` reads its quoted form back as exactly that word.
    #[test]
    fn quoted_words_come_back_unchanged_through_sh() {
        for word in [
            "it's",
            "",
            "''",
            "a b\tc\n",
            "$(id) `id` $HOME \\ \"x\" ;|&*?[]!#~",
        ] {
            let out = std::process::Command::new("sh")
                .args(["-c", &format!("printf %s {}", quote(word))])
                .output()
                .unwrap();
            assert_eq!(String::from_utf8(out.stdout).unwrap(), word);
        }
    }

    #[test]
    fn raw_runs_a_shell_line_and_skips_in_check_mode() {
        let none = BTreeMap::new();
        let o = run(
            "raw",
            json!({"_raw_params": "echo $((1+2)); exit 4"}),
            &none,
            false,
        )
        .unwrap();
        assert!(o.failed && o.changed);
        assert_eq!(o.data["rc"], 4);
        assert_eq!(o.data["stdout"], "3\n");
        assert!(!o.data.contains_key("delta"));
        let o = run(
            "raw",
            json!({"_raw_params": "echo $0", "executable": "/bin/bash"}),
            &none,
            false,
        )
        .unwrap();
        assert_eq!(o.data["stdout"], "/bin/bash\n");
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("m");
        let o = run(
            "raw",
            json!({"_raw_params": format!("touch {}", marker.display())}),
            &none,
            true,
        )
        .unwrap();
        assert!(o.skipped && !marker.exists());
        assert!(
            run(
                "raw",
                json!({"_raw_params": "x", "chdir": "/"}),
                &none,
                false
            )
            .is_err()
        );
    }
}
