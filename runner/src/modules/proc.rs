//! Running the host's own tools (apt-get, dpkg-query, systemctl, service, sysctl, ...)
//! for the system modules: finding them, running them with an argument vector (never a
//! shell string), and capturing rc, stdout and stderr for the registered result.

use super::Outcome;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Directories searched after `$PATH`: a runner started over a non-login SSH session
/// often has a PATH without the sbin directories where system tools live.
const EXTRA_DIRS: &[&str] = &[
    "/usr/local/sbin",
    "/usr/local/bin",
    "/usr/sbin",
    "/usr/bin",
    "/sbin",
    "/bin",
];

/// Where `name` is, as `which` would find it, also looking in the sbin directories.
pub(super) fn find(name: &str) -> Option<PathBuf> {
    let path = std::env::var("PATH").unwrap_or_default();
    path.split(':')
        .filter(|d| !d.is_empty())
        .chain(EXTRA_DIRS.iter().copied())
        .map(|d| Path::new(d).join(name))
        .find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// What a finished process said.
#[derive(Debug, Clone, Default)]
pub(super) struct Ran {
    /// The exit code; -1 when killed by a signal.
    pub rc: i32,
    /// Standard output, trailing newlines removed.
    pub stdout: String,
    /// Standard error, trailing newlines removed.
    pub stderr: String,
}

impl Ran {
    /// The process exited with 0.
    pub(super) fn ok(&self) -> bool {
        self.rc == 0
    }

    /// stderr, or stdout when stderr is empty: the most useful text for a message.
    pub(super) fn why(&self) -> &str {
        if self.stderr.trim().is_empty() {
            self.stdout.trim()
        } else {
            self.stderr.trim()
        }
    }
}

/// Runs `program` with `args` and the extra environment `env`, stdin closed. An error
/// is the process not starting at all, as a message naming the program.
pub(super) fn run(program: &Path, args: &[String], env: &[(&str, &str)]) -> Result<Ran, String> {
    let mut cmd = Command::new(program);
    cmd.args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = match super::tools::collect(&mut cmd, None, super::tools::OUTPUT_LIMIT, false) {
        Ok(super::tools::Ran::Done(out)) => out,
        Ok(super::tools::Ran::Stopped) => return Err(format!("{} was stopped", program.display())),
        Err(e) => return Err(format!("could not run {}: {e}", program.display())),
    };
    let text = |b: &[u8]| {
        String::from_utf8_lossy(b)
            .trim_end_matches(['\n', '\r'])
            .to_string()
    };
    Ok(Ran {
        rc: out.status.code().unwrap_or(-1),
        stdout: text(&out.stdout),
        stderr: text(&out.stderr),
    })
}

/// The command line as a list, as Ansible registers `cmd`.
pub(super) fn shown(program: &Path, args: &[String]) -> Value {
    let mut v = vec![Value::from(program.display().to_string())];
    v.extend(args.iter().map(|a| Value::from(a.as_str())));
    Value::from(v)
}

/// Adds `stdout`, `stderr` and their `_lines` forms to an outcome.
pub(super) fn with_output(o: Outcome, stdout: &str, stderr: &str) -> Outcome {
    let lines = |s: &str| Value::from(s.lines().map(str::to_string).collect::<Vec<_>>());
    o.with("stdout_lines", lines(stdout))
        .with("stderr_lines", lines(stderr))
        .with("stdout", stdout)
        .with("stderr", stderr)
}

/// Owned argument vectors from string literals and values.
pub(super) fn argv<I, S>(items: I) -> Vec<String>
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    items.into_iter().map(Into::into).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_tools_and_runs_them_without_a_shell() {
        let sh = find("sh").unwrap();
        assert!(sh.is_absolute());
        assert!(find("no-such-tool-rustle").is_none());
        let r = run(
            &sh,
            &argv(["-c", "echo out; echo err >&2; exit 4", "x"]),
            &[("RUSTLE_T", "1")],
        )
        .unwrap();
        assert_eq!(
            (r.rc, r.stdout.as_str(), r.stderr.as_str()),
            (4, "out", "err")
        );
        assert_eq!(r.why(), "err");
        let echo = find("echo").unwrap();
        let r = run(&echo, &argv(["$HOME", "a;b"]), &[]).unwrap();
        assert_eq!(r.stdout, "$HOME a;b");
        let e = run(Path::new("/nonexistent/tool"), &[], &[]).unwrap_err();
        assert!(e.contains("/nonexistent/tool"), "{e}");
    }
}
