//! git (ansible.builtin.git): a working copy of a repository at `dest`, at `version`,
//! with the host's `git` (argument vectors through the task's process door, never a
//! shell string), deciding as the module does: clone where there is no repository,
//! fetch and switch where there is one, fail on local modifications unless `force`,
//! leave it alone with `update: no`; `before` and `after` are the commits, and the task
//! changed when they differ (or the remote's URL was changed, or local modifications
//! were reset). Check mode asks the remote (`ls-remote`) and touches nothing.
//!
//! SSH transport options (`key_file`, `ssh_opts`, `accept_hostkey`, `accept_newhostkey`)
//! reach git as `GIT_SSH_COMMAND`, which git hands to a shell: every value in it is
//! quoted.

use super::tools::{self, Output};
use super::{Ctx, ModuleError, Outcome, args};
use crate::plan::Vars;
use std::path::{Path, PathBuf};

const KNOWN: &[&str] = &[
    "repo",
    "name",
    "dest",
    "version",
    "remote",
    "force",
    "depth",
    "clone",
    "update",
    "bare",
    "accept_hostkey",
    "accept_newhostkey",
    "key_file",
    "ssh_opts",
    "executable",
    "recursive",
    "single_branch",
];

/// What the task asks for.
struct Want {
    repo: String,
    dest: PathBuf,
    version: String,
    remote: String,
    force: bool,
    depth: Option<u64>,
    bare: bool,
    single_branch: bool,
    recursive: bool,
}

/// The host's git, run for one task.
struct Git<'c> {
    bin: PathBuf,
    ctx: &'c Ctx<'c>,
    ssh: Option<String>,
}

impl Git<'_> {
    /// Runs git with `argv` in `cwd`; an error only when it could not start.
    fn run(&self, cwd: Option<&Path>, argv: &[&str]) -> Result<Output, Outcome> {
        let mut cmd = self.ctx.command(&self.bin);
        if let Some(dir) = cwd {
            cmd.current_dir(dir);
        }
        if let Some(ssh) = &self.ssh {
            cmd.env("GIT_SSH_COMMAND", ssh);
        }
        // git must never stop to ask for a password or a host key: nobody can answer.
        cmd.env("GIT_TERMINAL_PROMPT", "0");
        let argv: Vec<String> = argv.iter().map(|s| s.to_string()).collect();
        tools::run_command(cmd, &argv, None)
            .map_err(|e| Outcome::fail(format!("could not run {}: {e}", self.bin.display())))
    }

    /// Runs git and fails the task with `msg` (and git's output) when it fails.
    fn must(&self, cwd: Option<&Path>, argv: &[&str], msg: &str) -> Result<Output, Outcome> {
        let out = self.run(cwd, argv)?;
        if out.rc != 0 {
            return Err(Outcome::fail(msg.to_string())
                .with("rc", out.rc)
                .with("stdout", out.stdout.trim_end())
                .with("stderr", out.stderr.trim_end())
                .with("cmd", format!("{} {}", self.bin.display(), argv.join(" "))));
        }
        Ok(out)
    }

    /// The commit checked out at `dest` (`git rev-parse HEAD`).
    fn version(&self, dest: &Path) -> Option<String> {
        let out = self.run(Some(dest), &["rev-parse", "HEAD"]).ok()?;
        (out.rc == 0).then(|| out.stdout.trim().to_string())
    }

    /// The remote's refs matching `pattern` (`git ls-remote REMOTE KIND PATTERN`).
    fn ls_remote(
        &self,
        cwd: Option<&Path>,
        remote: &str,
        kind: &str,
        pattern: &str,
    ) -> Result<String, Outcome> {
        let out = self.must(
            cwd,
            &["ls-remote", remote, kind, pattern],
            &format!("Could not determine remote revision for {pattern}"),
        )?;
        Ok(out.stdout)
    }

    fn is_remote_branch(&self, cwd: Option<&Path>, remote: &str, version: &str) -> bool {
        let pattern = format!("refs/heads/{version}");
        self.ls_remote(cwd, remote, "--heads", &pattern)
            .is_ok_and(|out| out.contains(&pattern))
    }

    fn is_remote_tag(&self, cwd: Option<&Path>, remote: &str, version: &str) -> bool {
        let pattern = format!("refs/tags/{version}");
        self.ls_remote(cwd, remote, "--tags", &pattern)
            .is_ok_and(|out| out.contains(&pattern))
    }

    fn is_local_branch(&self, dest: &Path, version: &str) -> bool {
        self.run(
            Some(dest),
            &[
                "show-ref",
                "--verify",
                "--quiet",
                &format!("refs/heads/{version}"),
            ],
        )
        .is_ok_and(|o| o.rc == 0)
    }

    /// The remote's default branch as the working copy knows it (`REMOTE/HEAD`).
    fn head_branch(&self, dest: &Path, remote: &str) -> Result<String, Outcome> {
        let symbolic = format!("refs/remotes/{remote}/HEAD");
        let out = self.run(Some(dest), &["symbolic-ref", "--short", &symbolic]);
        if let Ok(o) = &out
            && o.rc == 0
            && let Some(branch) = o.stdout.trim().strip_prefix(&format!("{remote}/"))
        {
            return Ok(branch.to_string());
        }
        // A repository fetched into rather than cloned may lack REMOTE/HEAD: ask.
        self.must(
            Some(dest),
            &["remote", "set-head", remote, "--auto"],
            &format!("Failed to determine the default branch of {remote}"),
        )?;
        let o = self.must(
            Some(dest),
            &["symbolic-ref", "--short", &symbolic],
            &format!("Failed to determine the default branch of {remote}"),
        )?;
        Ok(o.stdout
            .trim()
            .strip_prefix(&format!("{remote}/"))
            .unwrap_or(o.stdout.trim())
            .to_string())
    }

    /// The commit `version` names on the remote, as the module's `get_remote_head`
    /// finds it (a version that is neither a branch nor a tag is taken as a commit).
    fn remote_head(&self, want: &Want, cloning: bool) -> Result<String, Outcome> {
        let (cwd, remote) = if cloning {
            (None, want.repo.as_str())
        } else {
            (Some(want.dest.as_path()), want.remote.as_str())
        };
        let version = want.version.as_str();
        let out = if version == "HEAD" {
            if cloning {
                self.ls_remote(cwd, remote, "--", "HEAD")?
            } else {
                let branch = self.head_branch(&want.dest, remote)?;
                self.ls_remote(cwd, remote, "--heads", &format!("refs/heads/{branch}"))?
            }
        } else if self.is_remote_branch(cwd, remote, version) {
            self.ls_remote(cwd, remote, "--heads", &format!("refs/heads/{version}"))?
        } else if self.is_remote_tag(cwd, remote, version) {
            let tags = self.ls_remote(cwd, remote, "--tags", &format!("refs/tags/{version}*"))?;
            // An annotated tag's commit is its dereferenced line (`^{}`).
            let mut line = String::new();
            for l in tags.lines() {
                if l.ends_with(&format!("{version}^{{}}")) {
                    line = l.to_string();
                    break;
                } else if l.ends_with(version) {
                    line = l.to_string();
                }
            }
            line
        } else {
            return Ok(version.to_string());
        };
        out.split_whitespace()
            .next()
            .map(str::to_string)
            .ok_or_else(|| {
                Outcome::fail(format!("Could not determine remote revision for {version}"))
            })
    }
}

/// `git`.
pub(super) fn run(a: &Vars, ctx: &Ctx<'_>) -> Result<Outcome, ModuleError> {
    args::only(a, KNOWN)?;
    let repo = match args::opt_str(a, "repo")?.or(args::opt_str(a, "name")?) {
        Some(r) => r,
        None => {
            return Err(ModuleError::BadArgs(
                "missing required arguments: repo".into(),
            ));
        }
    };
    let clone = args::opt_bool(a, "clone")?.unwrap_or(true);
    let dest = match args::opt_str(a, "dest")? {
        Some(d) => PathBuf::from(d),
        None if clone => {
            return Err(ModuleError::BadArgs(
                "the destination directory must be specified unless clone=no".into(),
            ));
        }
        None => PathBuf::new(),
    };
    let want = Want {
        repo,
        dest,
        version: args::opt_str(a, "version")?.unwrap_or_else(|| "HEAD".into()),
        remote: args::opt_str(a, "remote")?.unwrap_or_else(|| "origin".into()),
        force: args::opt_bool(a, "force")?.unwrap_or(false),
        depth: args::opt_u64(a, "depth")?.filter(|d| *d > 0),
        bare: args::opt_bool(a, "bare")?.unwrap_or(false),
        single_branch: args::opt_bool(a, "single_branch")?.unwrap_or(false),
        recursive: args::opt_bool(a, "recursive")?.unwrap_or(true),
    };
    let update = args::opt_bool(a, "update")?.unwrap_or(true);
    let bin = match args::opt_str(a, "executable")? {
        Some(e) => PathBuf::from(e),
        None => match super::proc::find("git") {
            Some(found) => found,
            None => {
                return Ok(Outcome::fail(
                    "Failed to find required executable \"git\" in paths",
                ));
            }
        },
    };
    let git = Git {
        bin,
        ctx,
        ssh: ssh_command(a)?,
    };
    Ok(match converge(&git, &want, clone, update, ctx.check_mode) {
        Ok(o) | Err(o) => o,
    })
}

/// `GIT_SSH_COMMAND` for the SSH options given, each value quoted for the shell git
/// runs it with; `None` when none are given.
fn ssh_command(a: &Vars) -> Result<Option<String>, ModuleError> {
    let mut parts = vec!["ssh".to_string()];
    if let Some(key) = args::opt_str(a, "key_file")? {
        parts.extend([
            "-i".into(),
            super::script::quote(&key),
            "-o".into(),
            "IdentitiesOnly=yes".into(),
        ]);
    }
    if args::opt_bool(a, "accept_hostkey")?.unwrap_or(false) {
        parts.extend(["-o".into(), "StrictHostKeyChecking=no".into()]);
    } else if args::opt_bool(a, "accept_newhostkey")?.unwrap_or(false) {
        parts.extend(["-o".into(), "StrictHostKeyChecking=accept-new".into()]);
    }
    if let Some(opts) = args::opt_str(a, "ssh_opts")? {
        // ssh_opts is a list of ssh options as one string, split as a shell would.
        let words = super::command::split(&opts)
            .map_err(|e| ModuleError::BadArgs(format!("ssh_opts: {e}")))?;
        parts.extend(words.iter().map(|w| super::script::quote(w)));
    }
    Ok((parts.len() > 1).then(|| parts.join(" ")))
}

/// The module's main line; `Err` is a failed result (with what is known so far).
fn converge(
    git: &Git<'_>,
    want: &Want,
    clone: bool,
    update: bool,
    check: bool,
) -> Result<Outcome, Outcome> {
    let dest = want.dest.as_path();
    let config = if want.bare {
        dest.join("config")
    } else {
        dest.join(".git").join("config")
    };
    let mut before = None;
    let mut local_mods = false;
    let mut remote_url_changed = false;
    let existed = config.exists();
    if !existed {
        if check || !clone {
            let after = git.remote_head(want, true)?;
            return Ok(Outcome::changed(clone)
                .with("before", serde_json::Value::Null)
                .with("after", after));
        }
        do_clone(git, want)?;
    } else if !update {
        let before = git.version(dest);
        return Ok(Outcome::ok()
            .with("before", before.clone())
            .with("after", before));
    } else {
        local_mods = has_local_mods(git, want)?;
        before = git.version(dest);
        let so_far = |o: Outcome| o.with("before", before.clone());
        if local_mods {
            // Refused whatever the mode, as the module does.
            if !want.force {
                return Err(so_far(Outcome::fail(format!(
                    "Local modifications exist in the destination: {} (force=no).",
                    dest.display()
                ))));
            }
            if !check {
                git.must(Some(dest), &["reset", "--hard", "HEAD"], "Failed to reset")
                    .map_err(so_far)?;
            }
        }
        let url = git
            .run(Some(dest), &["remote", "get-url", &want.remote])
            .ok()
            .filter(|o| o.rc == 0)
            .map(|o| o.stdout.trim().to_string());
        remote_url_changed = url.as_deref().is_some_and(|u| u != want.repo);
        if check {
            let after = git.remote_head(want, false).map_err(so_far)?;
            let changed = before.as_deref() != Some(after.as_str()) || remote_url_changed;
            return Ok(so_far(Outcome::changed(changed))
                .with("after", after)
                .with("remote_url_changed", remote_url_changed));
        }
        if remote_url_changed {
            git.must(
                Some(dest),
                &["remote", "set-url", &want.remote, &want.repo],
                "Failed to update remote",
            )
            .map_err(so_far)?;
        }
        fetch(git, want).map_err(so_far)?;
    }
    if !want.bare {
        switch_version(git, want).map_err(|o| o.with("before", before.clone()))?;
        if want.recursive && dest.join(".gitmodules").exists() {
            git.must(
                Some(dest),
                &["submodule", "update", "--init", "--recursive"],
                "Failed to init/update submodules",
            )?;
        }
    }
    let after = git.version(dest);
    let changed = before != after || local_mods || remote_url_changed;
    let mut out = Outcome::changed(changed)
        .with("before", before)
        .with("after", after);
    // Only an update of an existing copy compares the remote's URL.
    if existed {
        out = out.with("remote_url_changed", remote_url_changed);
    }
    Ok(out)
}

/// `git status --porcelain` shows a change to a tracked file (untracked ones do not
/// count, as in the module).
fn has_local_mods(git: &Git<'_>, want: &Want) -> Result<bool, Outcome> {
    if want.bare {
        return Ok(false);
    }
    let out = git.must(
        Some(&want.dest),
        &["status", "--porcelain"],
        "Failed to check for local modifications",
    )?;
    Ok(out.stdout.lines().any(|l| !l.starts_with("??")))
}

fn do_clone(git: &Git<'_>, want: &Want) -> Result<(), Outcome> {
    if let Some(parent) = want.dest.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .map_err(|e| Outcome::fail(format!("Failed to create {}: {e}", parent.display())))?;
    }
    let depth = want.depth.map(|d| d.to_string());
    let mut argv: Vec<&str> = vec!["clone"];
    if want.bare {
        argv.push("--bare");
    } else {
        argv.extend(["--origin", &want.remote]);
    }
    let mut warning = None;
    if let Some(depth) = &depth {
        let version = want.version.as_str();
        if version == "HEAD" {
            argv.extend(["--depth", depth]);
        } else if git.is_remote_branch(None, &want.repo, version)
            || git.is_remote_tag(None, &want.repo, version)
        {
            argv.extend(["--depth", depth, "--branch", version]);
        } else {
            warning = Some(
                "Ignoring depth argument. Shallow clones are only available for HEAD, branches, tags or in combination with refspec.",
            );
        }
    }
    if want.single_branch {
        argv.push("--single-branch");
        if want.version != "HEAD" && !argv.contains(&"--branch") {
            argv.extend(["--branch", &want.version]);
        }
    }
    let dest = want.dest.to_string_lossy();
    argv.extend(["--", &want.repo, &dest]);
    git.must(None, &argv, "Failed to clone the repository")
        .map_err(|o| o.with("warnings", warning.map(|w| vec![w]).unwrap_or_default()))?;
    Ok(())
}

/// Fetches the remote's branches and tags (`--force` with `force`).
fn fetch(git: &Git<'_>, want: &Want) -> Result<(), Outcome> {
    let heads = format!("+refs/heads/*:refs/remotes/{}/*", want.remote);
    let depth = want.depth.map(|d| d.to_string());
    let mut argv = vec!["fetch", "--tags"];
    if let Some(d) = &depth {
        argv.extend(["--depth", d]);
    }
    if want.force {
        argv.push("--force");
    }
    argv.extend([want.remote.as_str(), &heads, "+refs/tags/*:refs/tags/*"]);
    let out = git.run(Some(&want.dest), &argv)?;
    if out.rc != 0 {
        return Err(Outcome::fail(format!(
            "Failed to download remote objects and refs:  {} {}",
            out.stdout.trim(),
            out.stderr.trim()
        )));
    }
    Ok(())
}

/// Checks out `version`: the remote's default branch for HEAD, a branch tracking the
/// remote's, or a tag or commit detached.
fn switch_version(git: &Git<'_>, want: &Want) -> Result<(), Outcome> {
    let dest = Some(want.dest.as_path());
    let remote = want.remote.as_str();
    let version = want.version.as_str();
    if version == "HEAD" {
        let branch = git.head_branch(&want.dest, remote)?;
        let failed = format!("Failed to checkout branch {branch}");
        git.must(dest, &["checkout", "--force", &branch], &failed)?;
        git.must(
            dest,
            &["reset", "--hard", &format!("{remote}/{branch}"), "--"],
            &failed,
        )?;
        return Ok(());
    }
    let failed = format!("Failed to checkout {version}");
    if git.is_remote_branch(dest, remote, version) {
        let tracking = format!("{remote}/{version}");
        if want.depth.is_some() && !git.is_local_branch(&want.dest, version) {
            // A shallow clone has only its one branch: fetch the one asked for.
            let depth = want.depth.unwrap_or(1).to_string();
            let spec = format!("+refs/heads/{version}:refs/remotes/{remote}/{version}");
            git.must(
                dest,
                &["fetch", "--depth", &depth, remote, &spec],
                &format!("Failed to fetch branch from remote: {version}"),
            )?;
        }
        if git.is_local_branch(&want.dest, version) {
            git.must(
                dest,
                &["checkout", "--force", version],
                &format!("Failed to checkout branch {version}"),
            )?;
            git.must(dest, &["reset", "--hard", &tracking], &failed)?;
        } else {
            git.must(
                dest,
                &["checkout", "--track", "-b", version, &tracking],
                &failed,
            )?;
        }
    } else {
        git.must(dest, &["checkout", "--force", version], &failed)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::Outcome;
    use serde_json::{Value, json};
    use std::path::Path;
    use std::process::Command;

    /// Runs the host's git in `dir` (for setting up and reading repositories).
    fn sh_git(dir: &Path, argv: &[&str]) -> String {
        let out = Command::new("git")
            .args([
                "-c",
                "user.name=t",
                "-c",
                "user.email=t@e",
                "-c",
                "init.defaultBranch=main",
            ])
            .args(argv)
            .current_dir(dir)
            .output()
            .expect("git is installed");
        assert!(out.status.success(), "git {argv:?}: {out:?}");
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    }

    /// A repository `origin` under `t` with one commit on `main`; returns its commit.
    fn origin(t: &Path) -> String {
        let o = t.join("origin");
        std::fs::create_dir(&o).unwrap();
        sh_git(&o, &["init", "-q"]);
        commit(&o, "a", "1")
    }

    fn commit(repo: &Path, file: &str, text: &str) -> String {
        std::fs::write(repo.join(file), text).unwrap();
        sh_git(repo, &["add", file]);
        sh_git(repo, &["commit", "-qm", text]);
        sh_git(repo, &["rev-parse", "HEAD"])
    }

    fn git(t: &Path, args: Value, check: bool) -> Outcome {
        crate::modules::run_in_dir_for_test("git", t, &args, check).unwrap()
    }

    /// Clone, nothing to do, a new upstream commit, `update: no`, check mode on both
    /// sides of a change: `before`/`after` are the commits git itself reports.
    #[test]
    fn clones_then_follows_the_default_branch() {
        let t = tempfile::tempdir().unwrap();
        let first = origin(t.path());
        let args = json!({"repo": "{p}/origin", "dest": "{p}/work/copy"});

        let dry = git(t.path(), args.clone(), true);
        assert!(dry.changed && !t.path().join("work").exists());
        assert_eq!(
            (&dry.data["before"], &dry.data["after"]),
            (&Value::Null, &json!(first))
        );

        let cloned = git(t.path(), args.clone(), false);
        assert!(cloned.changed && !cloned.failed, "{cloned:?}");
        assert_eq!(cloned.data["before"], Value::Null);
        assert_eq!(cloned.data["after"], json!(first));
        let copy = t.path().join("work/copy");
        assert_eq!(sh_git(&copy, &["rev-parse", "HEAD"]), first);

        // As ansible-core reports: only an update says whether the remote's URL moved.
        assert!(cloned.data.get("remote_url_changed").is_none());
        let again = git(t.path(), args.clone(), false);
        assert!(!again.changed, "{again:?}");
        assert_eq!(again.data["remote_url_changed"], json!(false));
        assert_eq!(again.data["after"], json!(first));

        let second = commit(&t.path().join("origin"), "b", "2");
        let would = git(t.path(), args.clone(), true);
        assert!(would.changed);
        assert_eq!(would.data["after"], json!(second));
        assert_eq!(sh_git(&copy, &["rev-parse", "HEAD"]), first);

        let mut frozen = args.clone();
        frozen["update"] = json!(false);
        let left = git(t.path(), frozen, false);
        assert!(!left.changed);
        assert_eq!(left.data["before"], json!(first));

        let pulled = git(t.path(), args, false);
        assert!(pulled.changed);
        assert_eq!(
            (&pulled.data["before"], &pulled.data["after"]),
            (&json!(first), &json!(second))
        );
        assert_eq!(sh_git(&copy, &["rev-parse", "HEAD"]), second);
    }

    /// Tags (annotated: the commit, not the tag object), branches tracked, commits.
    #[test]
    fn versions_are_tags_branches_or_commits() {
        let t = tempfile::tempdir().unwrap();
        let first = origin(t.path());
        let o = t.path().join("origin");
        sh_git(&o, &["tag", "-a", "v1", "-m", "v1"]);
        sh_git(&o, &["checkout", "-qb", "feature"]);
        let feature = commit(&o, "f", "feature");
        sh_git(&o, &["checkout", "-q", "main"]);
        let second = commit(&o, "b", "2");

        let at = |version: &str, check: bool| {
            git(
                t.path(),
                json!({"repo": "{p}/origin", "dest": "{p}/copy", "version": version}),
                check,
            )
        };
        let copy = t.path().join("copy");
        let tag = at("v1", false);
        assert_eq!(tag.data["after"], json!(first), "{tag:?}");
        assert_eq!(at("v1", true).data["after"], json!(first));
        let branch = at("feature", false);
        assert!(branch.changed);
        assert_eq!(branch.data["after"], json!(feature));
        assert_eq!(
            sh_git(&copy, &["rev-parse", "--abbrev-ref", "HEAD"]),
            "feature"
        );
        assert!(!at("feature", false).changed);
        let sha = at(&second, false);
        assert_eq!(
            (&sha.data["before"], &sha.data["after"]),
            (&json!(feature), &json!(second))
        );
        let missing = at("no-such-ref", false);
        assert!(missing.failed);
        assert!(
            missing
                .msg
                .as_deref()
                .unwrap_or_default()
                .contains("Failed to checkout no-such-ref"),
            "{missing:?}"
        );
    }

    /// Changes to tracked files stop the task unless `force`, which resets them; an
    /// untracked file is no modification.
    #[test]
    fn local_modifications_need_force() {
        let t = tempfile::tempdir().unwrap();
        let first = origin(t.path());
        let args = json!({"repo": "{p}/origin", "dest": "{p}/copy"});
        git(t.path(), args.clone(), false);
        let copy = t.path().join("copy");
        std::fs::write(copy.join("untracked"), "x").unwrap();
        assert!(!git(t.path(), args.clone(), false).changed);
        std::fs::write(copy.join("a"), "edited").unwrap();
        let refused = git(t.path(), args.clone(), false);
        assert!(refused.failed);
        assert!(
            refused
                .msg
                .as_deref()
                .unwrap_or_default()
                .starts_with("Local modifications exist in the destination")
        );
        assert_eq!(std::fs::read_to_string(copy.join("a")).unwrap(), "edited");
        let mut forced = args;
        forced["force"] = json!(true);
        let reset = git(t.path(), forced, false);
        assert!(reset.changed && !reset.failed, "{reset:?}");
        assert_eq!(reset.data["after"], json!(first));
        assert_eq!(std::fs::read_to_string(copy.join("a")).unwrap(), "1");
    }

    /// A remote whose URL changed is pointed at the new one, and says so.
    #[test]
    fn a_moved_remote_is_followed() {
        let t = tempfile::tempdir().unwrap();
        origin(t.path());
        git(
            t.path(),
            json!({"repo": "{p}/origin", "dest": "{p}/copy"}),
            false,
        );
        std::fs::rename(t.path().join("origin"), t.path().join("moved")).unwrap();
        let out = git(
            t.path(),
            json!({"repo": "{p}/moved", "dest": "{p}/copy"}),
            false,
        );
        assert!(out.changed && !out.failed, "{out:?}");
        assert_eq!(out.data["remote_url_changed"], json!(true));
        let url = sh_git(&t.path().join("copy"), &["remote", "get-url", "origin"]);
        assert_eq!(url, t.path().join("moved").display().to_string());
    }

    /// `key_file` and `ssh_opts` reach git quoted, so a value cannot become shell syntax.
    #[test]
    fn ssh_options_are_quoted() {
        let args: crate::plan::Vars = serde_json::from_value(json!({
            "key_file": "/k/it's; rm -rf x",
            "ssh_opts": "-o 'ProxyCommand=nc %h 22' -p 2222",
            "accept_hostkey": true,
        }))
        .unwrap();
        let cmd = super::ssh_command(&args).unwrap().unwrap();
        let words = super::super::command::split(&cmd).unwrap();
        assert_eq!(
            words,
            [
                "ssh",
                "-i",
                "/k/it's; rm -rf x",
                "-o",
                "IdentitiesOnly=yes",
                "-o",
                "StrictHostKeyChecking=no",
                "-o",
                "ProxyCommand=nc %h 22",
                "-p",
                "2222"
            ]
        );
    }
}
