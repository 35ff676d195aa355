//! modprobe (community.general, also reached as `ansible.builtin.modprobe`): a kernel
//! module loaded or unloaded with the host's `modprobe` (argument vectors), and with
//! `persistent`, listed in /etc/modules-load.d and its options in /etc/modprobe.d, as
//! that module does (its patterns, files and results); files are written through
//! `fsutil`'s atomic writer.

use super::fsutil::{self, Attrs, Step, Stop, WriteReq, fail, failed};
use super::tools;
use super::{Ctx, ModuleError, Outcome, args};
use crate::plan::Vars;
use regex::Regex;
use std::path::{Path, PathBuf};

const KNOWN: &[&str] = &["name", "state", "params", "persistent"];

/// Where the module looks; the system's places, other directories in tests.
struct Places {
    modules_load: PathBuf,
    modprobe_d: PathBuf,
    proc_modules: PathBuf,
    builtin: PathBuf,
    /// The modprobe to run; `None`: the host's, found as Ansible's `get_bin_path` does.
    bin: Option<PathBuf>,
}

/// The running kernel's release and its list of loaded modules (Linux's `/proc`).
#[cfg(target_os = "linux")]
fn kernel_places() -> (String, PathBuf) {
    (
        std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default(),
        "/proc/modules".into(),
    )
}

/// Elsewhere there are none: modprobe is refused on other platforms before it runs.
#[cfg(not(target_os = "linux"))]
fn kernel_places() -> (String, PathBuf) {
    (String::new(), PathBuf::new())
}

impl Places {
    fn system() -> Places {
        let (release, proc_modules) = kernel_places();
        Places {
            modules_load: "/etc/modules-load.d".into(),
            modprobe_d: "/etc/modprobe.d".into(),
            proc_modules,
            builtin: Path::new("/lib/modules/")
                .join(release.trim())
                .join("modules.builtin"),
            bin: None,
        }
    }
}

/// `modprobe`.
pub(super) fn run(a: &Vars, ctx: &Ctx<'_>) -> Result<Outcome, ModuleError> {
    fsutil::finish(run_at(a, ctx, &Places::system()))
}

struct Modprobe<'a> {
    ctx: &'a Ctx<'a>,
    places: &'a Places,
    bin: PathBuf,
    name: String,
    params: String,
    state: String,
    changed: bool,
    find_module: Regex,
    find_params: Regex,
    get_params: Regex,
    warnings: Vec<String>,
}

fn choice(a: &Vars, name: &str, default: &str, choices: &[&str]) -> Step<String> {
    let v = args::opt_str(a, name)?.unwrap_or_else(|| default.to_string());
    if choices.contains(&v.as_str()) {
        Ok(v)
    } else {
        Err(ModuleError::BadArgs(format!(
            "argument '{name}' must be one of {}; got '{v}'",
            choices.join(", ")
        ))
        .into())
    }
}

fn run_at(a: &Vars, ctx: &Ctx<'_>, places: &Places) -> Step<Outcome> {
    args::only(a, KNOWN)?;
    let name = args::req_str(a, "name")?;
    let state = choice(a, "state", "present", &["absent", "present"])?;
    let params = args::opt_str(a, "params")?.unwrap_or_default();
    let persistent = choice(
        a,
        "persistent",
        "disabled",
        &["disabled", "present", "absent"],
    )?;
    let Some(bin) = places.bin.clone().or_else(|| tools::find_bin("modprobe")) else {
        return fail(
            "Failed to find required executable \"modprobe\" in paths: $PATH, /usr/local/sbin, /usr/sbin, /sbin",
        );
    };
    let n = regex::escape(&name);
    let re = |p: String| Regex::new(&p).map_err(|e| ModuleError::BadArgs(e.to_string()));
    let mut m = Modprobe {
        ctx,
        places,
        bin,
        find_module: re(format!(r"^ *{n} *(?:[#;].*)?\n?\z"))?,
        find_params: re(format!(r"^options {n} \w+=\S+ *(?:[#;].*)?\n?\z"))?,
        get_params: re(format!(r"^options {n} (\w+=\S+) *(?:[#;].*)?\n?\z"))?,
        name,
        params,
        state,
        changed: false,
        warnings: Vec::new(),
    };
    if m.state == "present" && !m.loaded()? {
        m.load()?;
    } else if m.state == "absent" && m.loaded()? {
        m.unload()?;
    }
    if persistent == "present" && !(m.listed()? && m.params_set()?) {
        if !m.listed()? {
            let file = m.places.modules_load.join(format!("{}.conf", m.name));
            m.write(&file, format!("{}\n", m.name))?;
            m.changed = true;
        }
        if !m.params_set()? {
            m.comment_out(&m.places.modprobe_d.clone(), true)?;
            let content: Vec<String> = m
                .params
                .split_whitespace()
                .map(|p| format!("options {} {p}", m.name))
                .collect();
            let file = m.places.modprobe_d.join(format!("{}.conf", m.name));
            m.write(&file, content.join("\n") + "\n")?;
            m.changed = true;
        }
    } else if persistent == "absent" && (m.listed()? || !m.permanent_params()?.is_empty()) {
        if m.listed()? {
            m.comment_out(&m.places.modules_load.clone(), false)?;
            m.changed = true;
        }
        if !m.permanent_params()?.is_empty() {
            m.comment_out(&m.places.modprobe_d.clone(), true)?;
            m.changed = true;
        }
    }
    let mut out = m.result(Outcome::changed(m.changed));
    if !m.warnings.is_empty() {
        out = out.with("warnings", m.warnings.clone());
    }
    Ok(out)
}

impl Modprobe<'_> {
    fn result(&self, o: Outcome) -> Outcome {
        o.with("name", self.name.clone())
            .with("params", self.params.clone())
            .with("state", self.state.clone())
    }

    fn words(&self) -> Step<Vec<String>> {
        super::split_command_line(&self.params)
            .map_err(|e| failed(Outcome::fail(format!("params: {e}"))))
    }

    fn modprobe(&self, argv: Vec<String>) -> Step<tools::Output> {
        tools::run_command(self.ctx.command(&self.bin), &argv, None)
            .map_err(|e| fsutil::io_fail("run", &self.bin, &e))
    }

    fn fail_with(&self, out: tools::Output) -> Stop {
        failed(
            self.result(Outcome::fail(out.stderr.clone()))
                .with("rc", out.rc)
                .with("stdout", out.stdout)
                .with("stderr", out.stderr),
        )
    }

    fn load(&mut self) -> Step<()> {
        let mut argv = Vec::new();
        if self.ctx.check_mode {
            argv.push("-n".to_string());
        }
        argv.push(self.name.clone());
        argv.extend(self.words()?);
        let out = self.modprobe(argv)?;
        if out.rc != 0 {
            return Err(self.fail_with(out));
        }
        if self.ctx.check_mode || self.loaded()? {
            self.changed = true;
        } else {
            let mut argv = vec![
                "-n".to_string(),
                "--first-time".to_string(),
                self.name.clone(),
            ];
            argv.extend(self.words()?);
            let out = self.modprobe(argv)?;
            if out.rc != 0 {
                self.warnings.push(out.stderr);
            }
        }
        Ok(())
    }

    fn unload(&mut self) -> Step<()> {
        let mut argv = vec!["-r".to_string(), self.name.clone()];
        if self.ctx.check_mode {
            argv.push("-n".to_string());
        }
        let out = self.modprobe(argv)?;
        if out.rc != 0 {
            return Err(self.fail_with(out));
        }
        self.changed = true;
        Ok(())
    }

    /// Loaded: in /proc/modules, or built into the kernel (modules.builtin); a file
    /// that cannot be read fails as the module fails, with Python's message.
    fn loaded(&self) -> Step<bool> {
        let read = |p: &Path| {
            std::fs::read_to_string(p).map_err(|e| {
                let errno = e.raw_os_error().unwrap_or(0);
                failed(self.result(Outcome::fail(format!(
                    "[Errno {errno}] {}: '{}'",
                    python_strerror(&e),
                    p.display()
                ))))
            })
        };
        let prefix = format!("{} ", self.name.replace('-', "_"));
        if read(&self.places.proc_modules)?
            .lines()
            .any(|l| l.starts_with(&prefix))
        {
            return Ok(true);
        }
        let ko = format!("/{}.ko", self.name);
        Ok(read(&self.places.builtin)?
            .lines()
            .any(|l| l.trim_end().ends_with(&ko)))
    }

    /// The regular files directly in `dir`.
    fn files(dir: &Path) -> Vec<PathBuf> {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return Vec::new();
        };
        let mut out: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file())
            .collect();
        out.sort();
        out
    }

    fn lines(path: &Path) -> Step<Vec<String>> {
        let text = std::fs::read_to_string(path).map_err(|e| fsutil::io_fail("read", path, &e))?;
        Ok(text.split_inclusive('\n').map(str::to_string).collect())
    }

    fn listed(&self) -> Step<bool> {
        for f in Self::files(&self.places.modules_load) {
            if Self::lines(&f)?
                .iter()
                .any(|l| self.find_module.is_match(l))
            {
                return Ok(true);
            }
        }
        Ok(false)
    }

    fn permanent_params(&self) -> Step<std::collections::BTreeSet<String>> {
        let mut set = std::collections::BTreeSet::new();
        for f in Self::files(&self.places.modprobe_d) {
            for l in Self::lines(&f)? {
                if let Some(c) = self.get_params.captures(&l).and_then(|c| c.get(1)) {
                    set.insert(c.as_str().to_string());
                }
            }
        }
        Ok(set)
    }

    fn params_set(&self) -> Step<bool> {
        let want: std::collections::BTreeSet<String> =
            self.params.split_whitespace().map(str::to_string).collect();
        Ok(want == self.permanent_params()?)
    }

    /// Comments out the module's lines (its options lines when `options`) in every file
    /// of `dir`; the file is written back with its lines joined by newlines, as the
    /// module writes it.
    fn comment_out(&self, dir: &Path, options: bool) -> Step<()> {
        let re = if options {
            &self.find_params
        } else {
            &self.find_module
        };
        for f in Self::files(dir) {
            let mut lines = Self::lines(&f)?;
            let mut changed = false;
            for l in &mut lines {
                if re.is_match(l) {
                    l.insert(0, '#');
                    changed = true;
                }
            }
            if changed {
                self.write(&f, lines.join("\n"))?;
            }
        }
        Ok(())
    }

    fn write(&self, path: &Path, content: String) -> Step<()> {
        if self.ctx.check_mode {
            return Ok(());
        }
        let req = WriteReq {
            dest: path,
            content: content.as_bytes(),
            attrs: Attrs::default(),
            force: true,
            backup: false,
            follow: true,
            src: None,
            new_mode: None,
        };
        fsutil::write_file(&req, self.ctx).map(|_| ())
    }
}

/// Python's text for the usual errors of opening a file.
fn python_strerror(e: &std::io::Error) -> &'static str {
    match e.kind() {
        std::io::ErrorKind::NotFound => "No such file or directory",
        std::io::ErrorKind::PermissionDenied => "Permission denied",
        _ => "Input/output error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::modules::args_in;
    use serde_json::{Value, json};

    fn places(dir: &Path) -> Places {
        for d in ["load", "opts"] {
            std::fs::create_dir_all(dir.join(d)).unwrap();
        }
        std::fs::write(dir.join("modules"), "dummy_mod 16384 0 - Live 0x0\n").unwrap();
        std::fs::write(dir.join("builtin"), "kernel/fs/ext4/ext4.ko\n").unwrap();
        Places {
            modules_load: dir.join("load"),
            modprobe_d: dir.join("opts"),
            proc_modules: dir.join("modules"),
            builtin: dir.join("builtin"),
            // Stands in for modprobe, which these cases never need to load anything.
            bin: Some(PathBuf::from("/bin/true")),
        }
    }

    fn modprobe(dir: &Path, args: Value, check: bool) -> Outcome {
        let t = crate::modules::TestCtx::new();
        fsutil::finish(run_at(
            &args_in(dir, &args),
            &t.ctx(check, false),
            &places(dir),
        ))
        .unwrap()
    }

    #[test]
    fn loaded_and_builtin_modules_are_left_alone_and_persisted() {
        let d = tempfile::tempdir().unwrap();
        let o = modprobe(d.path(), json!({"name": "dummy-mod"}), false);
        assert!(!o.failed && !o.changed, "{o:?}");
        let o = modprobe(d.path(), json!({"name": "ext4"}), false);
        assert!(!o.changed, "{o:?}");
        let args = json!({"name": "dummy_mod", "params": "numdummies=2", "persistent": "present"});
        assert!(modprobe(d.path(), args.clone(), true).changed);
        assert!(!d.path().join("load/dummy_mod.conf").exists());
        let o = modprobe(d.path(), args.clone(), false);
        assert!(o.changed, "{o:?}");
        assert_eq!(
            std::fs::read_to_string(d.path().join("load/dummy_mod.conf")).unwrap(),
            "dummy_mod\n"
        );
        assert_eq!(
            std::fs::read_to_string(d.path().join("opts/dummy_mod.conf")).unwrap(),
            "options dummy_mod numdummies=2\n"
        );
        assert!(!modprobe(d.path(), args, false).changed);
        let o = modprobe(
            d.path(),
            json!({"name": "dummy_mod", "persistent": "absent", "state": "present"}),
            false,
        );
        assert!(o.changed, "{o:?}");
        assert_eq!(
            std::fs::read_to_string(d.path().join("load/dummy_mod.conf")).unwrap(),
            "#dummy_mod\n"
        );
    }
}
