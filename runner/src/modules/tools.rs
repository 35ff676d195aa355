//! Helpers for modules that drive the host's own tools (useradd, crontab, scripts):
//! finding a program where sudo's or cron's short PATH would miss it, running it with an
//! argument vector (never through a shell) and capturing its output, and private
//! temporary directories for files handed to those tools.

use crate::atomic::{Dir, Finish};
use crate::privilege::RunAs;
use std::ffi::OsStr;
use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Where system tools live besides `$PATH`: the runner may be started with a PATH
/// without the sbin directories (a non-login ssh session, sudo without secure_path).
const SYSTEM_DIRS: &[&str] = &["/usr/local/sbin", "/usr/sbin", "/sbin", "/usr/bin", "/bin"];

/// The full path of an executable named `name`, searched in `$PATH` then the system
/// directories, as Ansible's `get_bin_path` does.
pub(super) fn find_bin(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(SYSTEM_DIRS.iter().map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// What a finished tool printed.
#[derive(Debug, Clone)]
pub(super) struct Output {
    /// Exit status; -1 when killed by a signal.
    pub rc: i32,
    /// Standard output, lossily decoded.
    pub stdout: String,
    /// Standard error, lossily decoded.
    pub stderr: String,
}

/// Runs `program` with `args` (no shell), stdin from `input` (or nothing), and
/// collects its output.
pub(super) fn run(program: &Path, args: &[String], input: Option<&[u8]>) -> io::Result<Output> {
    run_command(Command::new(program), args, input)
}

/// [`run`] for a prepared command, e.g. from `Ctx::command` (the task's environment and
/// `become_user`).
pub(super) fn run_command(
    mut cmd: Command,
    args: &[String],
    input: Option<&[u8]>,
) -> io::Result<Output> {
    cmd.args(args)
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = spawn_retrying(&mut cmd)?;
    // Feed stdin from a thread so a tool that writes before reading cannot deadlock us.
    let feeder = match (input, child.stdin.take()) {
        (Some(bytes), Some(mut pipe)) => {
            let bytes = bytes.to_vec();
            Some(std::thread::spawn(move || {
                let _ = pipe.write_all(&bytes);
            }))
        }
        _ => None,
    };
    let out = child.wait_with_output();
    if let Some(f) = feeder {
        let _ = f.join();
    }
    let out = out?;
    Ok(Output {
        rc: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}

/// Spawns `cmd`, retrying while the program is "busy" (ETXTBSY): a file this process
/// has just written can still be open for writing in a child another thread forked
/// and has not yet exec'd; that lasts microseconds.
pub(super) fn spawn_retrying(cmd: &mut Command) -> io::Result<std::process::Child> {
    let mut attempt = 0;
    loop {
        match cmd.spawn() {
            Err(e) if e.kind() == io::ErrorKind::ExecutableFileBusy && attempt < 100 => {
                attempt += 1;
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            other => return other,
        }
    }
}

/// The command line as one string, for messages.
pub(super) fn shown(program: &Path, args: &[String]) -> String {
    std::iter::once(program.display().to_string())
        .chain(args.iter().cloned())
        .collect::<Vec<_>>()
        .join(" ")
}

/// A fresh 0700 directory under the system temp directory that only this user can
/// enter, removed (with what is inside) when dropped. It is held open from its creation
/// on, and files are written into it through that descriptor ([`crate::atomic`]), so a
/// `become_user` who owns it and renames it away, leaving a symlink at its name, does
/// not redirect root's next write.
pub(super) struct PrivateDir {
    path: PathBuf,
    dir: Dir,
    /// Who gets the directory and its files (uid, gid): the task's `become_user`.
    owner: Option<(u32, u32)>,
}

impl PrivateDir {
    /// Creates the directory in the system temp directory with an unpredictable name.
    pub(super) fn new(prefix: &str) -> io::Result<PrivateDir> {
        PrivateDir::new_in(&std::env::temp_dir(), prefix, 0o700)
    }

    /// Creates `base/rustle-<prefix>-<random>` with `mode` (set on its descriptor, so the
    /// umask does not apply), refusing to reuse anything that already exists.
    pub(super) fn new_in(base: &Path, prefix: &str, mode: u32) -> io::Result<PrivateDir> {
        let mut attempt = 0;
        loop {
            let path = base.join(format!("rustle-{prefix}-{}", crate::random::tag()));
            match fs::DirBuilder::new().mode(0o700).create(&path) {
                Ok(()) => {
                    let made = PrivateDir {
                        dir: Dir::open(&path)?,
                        path,
                        owner: None,
                    };
                    made.dir.set_mode(mode).map_err(io::Error::from)?;
                    return Ok(made);
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists && attempt < 8 => {
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Like [`PrivateDir::new`], owned by the task's `become_user` when it has one, so
    /// the process that runs as that user can read what is written here.
    pub(super) fn for_task(prefix: &str, run_as: Option<&RunAs>) -> io::Result<PrivateDir> {
        let mut dir = PrivateDir::new(prefix)?;
        if let Some(who) = run_as {
            // Through the descriptor: the name is only ours until the chown.
            std::os::unix::fs::fchown(dir.dir.file(), Some(who.uid), Some(who.gid))?;
            dir.owner = Some((who.uid, who.gid));
        }
        Ok(dir)
    }

    /// Writes the file `name` in the directory with `mode` (owned by the directory's
    /// owner), replacing what is there, and returns its path.
    pub(super) fn write(&self, name: &str, content: &[u8], mode: u32) -> io::Result<PathBuf> {
        let name = OsStr::new(name);
        let mut new = self.dir.new_file(name)?;
        new.file().write_all(content)?;
        new.place(
            name,
            &Finish {
                mode,
                uid: self.owner.map(|(u, _)| u),
                gid: self.owner.map(|(_, g)| g),
                ..Finish::default()
            },
        )?;
        Ok(self.path.join(name))
    }

    /// The directory.
    pub(super) fn path(&self) -> &Path {
        &self.path
    }

    /// The directory, held open.
    pub(super) fn dir(&self) -> &Dir {
        &self.dir
    }
}

impl Drop for PrivateDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn finds_tools_and_runs_them_with_input() {
        let sh = find_bin("sh").unwrap();
        assert!(sh.is_absolute());
        assert!(find_bin("no-such-tool-rustle").is_none());
        let out = run(
            &sh,
            &["-c".into(), "cat; echo e >&2; exit 4".into()],
            Some(b"in"),
        )
        .unwrap();
        assert_eq!(
            (out.rc, out.stdout.as_str(), out.stderr.as_str()),
            (4, "in", "e\n")
        );
    }

    #[test]
    fn private_dirs_are_private_and_removed() {
        let d = PrivateDir::new("t").unwrap();
        let p = d.path().to_path_buf();
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o700
        );
        let f = d.write("x", b"hi", 0o700).unwrap();
        assert_eq!(fs::read(&f).unwrap(), b"hi");
        assert_eq!(
            fs::metadata(&f).unwrap().permissions().mode() & 0o7777,
            0o700
        );
        // A name written again is a new file, never the old one written through.
        let hard = d.path().join("hard");
        fs::hard_link(&f, &hard).unwrap();
        d.write("x", b"again", 0o600).unwrap();
        assert_eq!(fs::read(&f).unwrap(), b"again");
        assert_eq!(fs::read(&hard).unwrap(), b"hi");
        drop(d);
        assert!(!p.exists());
    }

    /// With a become_user the private directory is theirs; they swap each new file for
    /// a symlink to a root-only file while root writes it. The old chown by name then
    /// gave them the victim.
    #[test]
    fn files_for_a_become_user_are_chowned_through_their_descriptor() {
        let s = super::super::fsutil::hostile::Scene::new("rustle-ta-priv");
        let who = RunAs {
            user: s.user.name.clone(),
            uid: s.user.uid,
            gid: s.user.gid,
            home: "/".into(),
        };
        let d = PrivateDir::for_task("t", Some(&who)).unwrap();
        let swapper = s.swapper(d.path(), &[".scr", ".rustle-tmp"]);
        let body = vec![b'#'; 4 << 20];
        for i in 0..300 {
            let name = format!("f{i}.scr");
            let _ = d.write(&name, &body, 0o700);
            // Whatever is under the name now (the file, or the user's symlink) goes.
            let _ = fs::remove_file(d.path().join(name));
        }
        let swapped = swapper.finish();
        assert!(
            swapped > 0,
            "the attacker never caught a file: nothing was tested"
        );
        s.victim_untouched();
    }
}
