//! community.general.timezone on Linux: the system time zone (`name`) and whether the
//! hardware clock keeps UTC or local time (`hwclock`), with the collection's rules,
//! `diff` ({before, after} mappings of the keys given), messages and check mode.
//!
//! As the collection does, a host where `timedatectl` answers is driven through it
//! (`set-timezone`, `set-local-rtc`); elsewhere (no systemd as PID 1) the files are
//! edited: `/etc/timezone` and `/etc/localtime` (linked, then `dpkg-reconfigure tzdata`)
//! where dpkg-reconfigure exists, `/etc/sysconfig/clock` (`ZONE=`/`TIMEZONE=`) and a
//! copied `/etc/localtime` otherwise; the hardware clock through `hwclock --systohc`
//! and `/etc/default/rcS` or `/etc/sysconfig/clock`. Not supported: Alpine's
//! setup-timezone and Gentoo's conf.d file (they get the sysconfig layout).

use super::{Ctx, ModuleError, Outcome, args, tools};
use crate::plan::Vars;
use regex::Regex;
use serde_json::{Map, Value};
use std::path::{Path, PathBuf};

/// The argument keys in the collection's argument-spec order (its diff's order).
const KEYS: [&str; 2] = ["hwclock", "name"];

/// `timezone`.
pub(super) fn run(a: &Vars, ctx: &Ctx<'_>) -> Result<Outcome, ModuleError> {
    args::only(a, &["name", "hwclock", "rtc"])?;
    let name = args::opt_str(a, "name")?;
    let hwclock = match args::opt_str(a, "hwclock")? {
        Some(h) => Some(h),
        None => args::opt_str(a, "rtc")?,
    };
    if let Some(h) = &hwclock
        && h != "local"
        && h != "UTC"
    {
        return Err(ModuleError::BadArgs(format!(
            "value of hwclock must be one of: local, UTC, got: {h}"
        )));
    }
    if name.is_none() && hwclock.is_none() {
        return Err(ModuleError::BadArgs(
            "one of the following is required: hwclock, name".into(),
        ));
    }
    let planned = Planned { hwclock, name };
    let systemd = tools::find_bin("timedatectl")
        .filter(|t| tools::run_command(ctx.command(t), &[], None).is_ok_and(|o| o.rc == 0));
    if let Some(t) = systemd {
        return Ok(with_systemd(&t, &planned, ctx).unwrap_or_else(|o| o));
    }
    let Some(hwclock_bin) = tools::find_bin("hwclock") else {
        return Ok(Outcome::fail(
            "Failed to find required executable \"hwclock\" in paths",
        ));
    };
    let layout = Layout::of_host(hwclock_bin);
    Ok(without_systemd(&layout, &planned, ctx).unwrap_or_else(|o| o))
}

/// What the task asks for.
struct Planned {
    hwclock: Option<String>,
    name: Option<String>,
}

impl Planned {
    fn get(&self, key: &str) -> Option<&str> {
        match key {
            "hwclock" => self.hwclock.as_deref(),
            _ => self.name.as_deref(),
        }
    }
}

/// A failed outcome as the collection's `abort`: its message, then what was done.
fn abort(msg: &str, done: &[String]) -> Outcome {
    let mut lines = vec!["Error message:".to_string(), msg.to_string()];
    if !done.is_empty() {
        lines.push("Other message(s):".into());
        lines.extend(done.iter().cloned());
    }
    Outcome::fail(lines.join("\n"))
}

/// Runs a tool as the collection's `execute` (check_rc): a failure fails the task with
/// the tool's stderr.
fn execute(ctx: &Ctx<'_>, program: &Path, argv: &[&str]) -> Result<String, Outcome> {
    let argv: Vec<String> = argv.iter().map(|s| s.to_string()).collect();
    tools::run_checked(ctx, program, &argv).map(|o| o.stdout)
}

/// The module's result from the before/after values of the keys given.
fn finish(before: &Map<String, Value>, after: &Map<String, Value>, done: &[String]) -> Outcome {
    let changed = before != after;
    let mut diff = Map::new();
    diff.insert("before".into(), Value::Object(before.clone()));
    diff.insert("after".into(), Value::Object(after.clone()));
    let out = Outcome::changed(changed).with("diff", Value::Object(diff));
    if done.is_empty() {
        out
    } else {
        out.msg(done.join("\n"))
    }
}

/// `planned` as the "after" of check mode, or the state read after the changes.
fn planned_map(planned: &Planned) -> Map<String, Value> {
    KEYS.iter()
        .filter_map(|k| planned.get(k).map(|v| ((*k).to_string(), Value::from(v))))
        .collect()
}

// ---------------------------------------------------------------------------
// timedatectl

fn with_systemd(t: &Path, planned: &Planned, ctx: &Ctx<'_>) -> Result<Outcome, Outcome> {
    if let Some(n) = &planned.name
        && !Path::new("/usr/share/zoneinfo").join(n).is_file()
    {
        return Err(abort(
            &format!("given timezone \"{n}\" is not available"),
            &[],
        ));
    }
    let read = |status: &str| -> Result<Map<String, Value>, Outcome> {
        let mut m = Map::new();
        for k in KEYS {
            if planned.get(k).is_none() {
                continue;
            }
            let re = match k {
                "hwclock" => r"(?m)^\s*RTC in local TZ\s*:\s*(\S+)",
                _ => r"(?m)^\s*Time ?zone\s*:\s*(\S+)",
            };
            let v = Regex::new(re)
                .ok()
                .and_then(|r| r.captures(status))
                .and_then(|c| c.get(1))
                .map(|m| m.as_str().to_string())
                .ok_or_else(|| abort(&format!("timedatectl status shows no value for {k}"), &[]))?;
            let v = if k == "hwclock" {
                if args::truthy_str(&v) == Some(true) {
                    "local"
                } else {
                    "UTC"
                }
                .to_string()
            } else {
                v
            };
            m.insert(k.to_string(), Value::from(v));
        }
        Ok(m)
    };
    let before = read(&execute(ctx, t, &["status"])?)?;
    let want = planned_map(planned);
    if ctx.check_mode {
        return Ok(finish(&before, &want, &[]));
    }
    let mut done = Vec::new();
    for k in KEYS {
        let Some(p) = planned.get(k) else { continue };
        if before.get(k).and_then(Value::as_str) == Some(p) {
            continue;
        }
        let (sub, value) = match k {
            "hwclock" => ("set-local-rtc", if p == "local" { "yes" } else { "no" }),
            _ => ("set-timezone", p),
        };
        execute(ctx, t, &[sub, value])?;
        done.push(format!("executed `{} {sub} {value}`", t.display()));
    }
    let after = read(&execute(ctx, t, &["status"])?)?;
    if after != want {
        return Err(abort(
            &format!(
                "still not desired state, though changes have made - planned: {want:?}, after: {after:?}"
            ),
            &done,
        ));
    }
    Ok(finish(&before, &after, &done))
}

// ---------------------------------------------------------------------------
// Files (no systemd)

/// Where the files are, and how the zone is applied (a root other than `/` in tests).
struct Layout {
    root: PathBuf,
    /// dpkg-reconfigure exists: /etc/timezone, a linked /etc/localtime, rcS.
    debian: bool,
    hwclock_bin: PathBuf,
    /// `ZONE="%s"` or `TIMEZONE="%s"` in /etc/sysconfig/clock (SuSE's when the file says so).
    suse: bool,
}

impl Layout {
    fn of_host(hwclock_bin: PathBuf) -> Layout {
        let mut l = Layout {
            root: PathBuf::from("/"),
            debian: tools::find_bin("dpkg-reconfigure").is_some(),
            hwclock_bin,
            suse: false,
        };
        l.suse = !l.debian && l.sysconfig_is_suse();
        l
    }

    fn sysconfig_is_suse(&self) -> bool {
        std::fs::read_to_string(self.at("etc/sysconfig/clock"))
            .is_ok_and(|t| Regex::new(r"(?m)^TIMEZONE\s*=").is_ok_and(|r| r.is_match(&t)))
    }

    fn at(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    fn conf(&self, key: &str) -> PathBuf {
        match (key, self.debian) {
            ("name", true) => self.at("etc/timezone"),
            ("hwclock", true) => self.at("etc/default/rcS"),
            ("adjtime", _) => self.at("etc/adjtime"),
            _ => self.at("etc/sysconfig/clock"),
        }
    }

    fn pattern(&self, key: &str) -> &'static str {
        match (key, self.debian, self.suse) {
            ("name", true, _) => r"^(\S+)",
            ("name", false, true) => r#"^TIMEZONE\s*=\s*"?([^"\s]+)"?"#,
            ("name", false, false) => r#"^ZONE\s*=\s*"?([^"\s]+)"?"#,
            ("hwclock", _, _) => r"^UTC\s*=\s*(\S+)",
            _ => r"^(UTC|LOCAL)$",
        }
    }

    fn zonefile(&self, tz: &str) -> PathBuf {
        self.at("usr/share/zoneinfo").join(tz)
    }

    /// The collection's `_get_value_from_config`.
    fn config_value(&self, key: &str, phase_before: bool) -> Result<String, Outcome> {
        let file = self.conf(key);
        let text = match std::fs::read_to_string(&file) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(if key == "adjtime" { "UTC" } else { "n/a" }.into());
            }
            Err(_) => {
                return Err(abort(
                    &format!(
                        "tried to configure {key} using a file \"{}\", but could not read it",
                        file.display()
                    ),
                    &[],
                ));
            }
        };
        let found = Regex::new(&format!("(?m){}", self.pattern(key)))
            .ok()
            .and_then(|r| {
                r.captures(&text)
                    .and_then(|c| c.get(1))
                    .map(|m| m.as_str().to_string())
            });
        Ok(match (key, found) {
            ("hwclock", None) => "n/a".into(),
            ("adjtime", None) => "UTC".into(),
            (_, None) if phase_before => "n/a".into(),
            (_, None) => {
                return Err(abort(
                    &format!(
                        "tried to configure name using a file \"{}\", but could not find a valid value in it",
                        file.display()
                    ),
                    &[],
                ));
            }
            ("hwclock", Some(v)) => if args::truthy_str(&v) == Some(true) {
                "UTC"
            } else {
                "local"
            }
            .into(),
            ("adjtime", Some(v)) if v != "UTC" => v.to_lowercase(),
            (_, Some(v)) => v,
        })
    }

    /// The collection's `get` for the no-systemd case.
    fn get(&self, key: &str, planned: &str, phase_before: bool) -> Result<String, Outcome> {
        if key == "hwclock" {
            let v = self.config_value("hwclock", phase_before)?;
            return if v == planned {
                self.config_value("adjtime", phase_before)
            } else {
                Ok(v)
            };
        }
        let v = self.config_value("name", phase_before)?;
        if v != planned {
            return Ok(v);
        }
        let localtime = self.at("etc/localtime");
        let is_link =
            std::fs::symlink_metadata(&localtime).is_ok_and(|m| m.file_type().is_symlink());
        if is_link {
            if !localtime.exists() {
                return Ok("n/a".into());
            }
            let target = std::fs::read_link(&localtime).unwrap_or_default();
            let target = target.to_string_lossy();
            let linked = Regex::new(r"/(?:usr/share|etc)/zoneinfo/(.*)")
                .ok()
                .and_then(|r| {
                    r.captures(&target)
                        .and_then(|c| c.get(1))
                        .map(|m| m.as_str().to_string())
                });
            return Ok(match linked {
                Some(l) if l != planned => l,
                Some(_) => v,
                None => "n/a".into(),
            });
        }
        let same = match (
            std::fs::read(&localtime),
            std::fs::read(self.zonefile(planned)),
        ) {
            (Ok(a), Ok(b)) => a == b,
            _ => false,
        };
        Ok(if same { v } else { "n/a".into() })
    }

    /// The collection's `_edit_file`: the first line `key`'s pattern finds becomes
    /// `value`, the others it finds go; without one, `value` goes first.
    fn edit(&self, key: &str, value: &str, done: &mut Vec<String>) -> Result<(), Outcome> {
        let file = self.conf(key);
        let text = match std::fs::read_to_string(&file) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(_) => {
                return Err(abort(
                    &format!(
                        "tried to configure {key} using a file \"{}\", but could not read it",
                        file.display()
                    ),
                    done,
                ));
            }
        };
        let re = Regex::new(&format!("(?m){}", self.pattern(key)))
            .map_err(|e| abort(&e.to_string(), done))?;
        let mut lines: Vec<&str> = text.split_inclusive('\n').collect();
        let hits: Vec<usize> = lines
            .iter()
            .enumerate()
            .filter(|(_, l)| re.is_match(l))
            .map(|(i, _)| i)
            .collect();
        let at = hits.first().copied().unwrap_or(0);
        for i in hits.iter().rev() {
            lines.remove(*i);
        }
        lines.insert(at.min(lines.len()), value);
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&file).map_or(0o644, |m| m.permissions().mode() & 0o7777);
        crate::atomic::write(&file, lines.concat().as_bytes(), mode).map_err(|_| {
            abort(
                &format!(
                    "tried to configure {key} using a file \"{}\", but could not write to it",
                    file.display()
                ),
                done,
            )
        })?;
        done.push(format!(
            "Added 1 line and deleted {} line(s) on {}",
            hits.len(),
            file.display()
        ));
        Ok(())
    }

    fn set(
        &self,
        key: &str,
        value: &str,
        ctx: &Ctx<'_>,
        done: &mut Vec<String>,
    ) -> Result<(), Outcome> {
        if key == "hwclock" {
            let (option, utc) = if value == "local" {
                ("--localtime", "no")
            } else {
                ("--utc", "yes")
            };
            self.edit("hwclock", &format!("UTC={utc}\n"), done)?;
            execute(ctx, &self.hwclock_bin, &["--systohc", option])?;
            done.push(format!(
                "executed `{} --systohc {option}`",
                self.hwclock_bin.display()
            ));
            return Ok(());
        }
        let line = if self.debian {
            format!("{value}\n")
        } else if self.suse {
            format!("TIMEZONE=\"{value}\"\n")
        } else {
            format!("ZONE=\"{value}\"\n")
        };
        self.edit("name", &line, done)?;
        let zone = self.zonefile(value).display().to_string();
        let localtime = self.at("etc/localtime").display().to_string();
        let bin = |n: &str| {
            tools::find_bin(n)
                .ok_or_else(|| abort(&format!("Failed to find required executable \"{n}\""), done))
        };
        if self.debian {
            execute(ctx, &bin("ln")?, &["-sf", &zone, &localtime])?;
            if self.root == Path::new("/") {
                execute(
                    ctx,
                    &bin("dpkg-reconfigure")?,
                    &["--frontend", "noninteractive", "tzdata"],
                )?;
            }
        } else {
            execute(
                ctx,
                &bin("cp")?,
                &["--remove-destination", &zone, &localtime],
            )?;
        }
        Ok(())
    }
}

fn without_systemd(l: &Layout, planned: &Planned, ctx: &Ctx<'_>) -> Result<Outcome, Outcome> {
    if let Some(n) = &planned.name
        && !l.zonefile(n).is_file()
    {
        return Err(abort(
            &format!("given timezone \"{n}\" is not available"),
            &[],
        ));
    }
    let read = |before: bool| -> Result<Map<String, Value>, Outcome> {
        let mut m = Map::new();
        for k in KEYS {
            if let Some(p) = planned.get(k) {
                m.insert(k.to_string(), Value::from(l.get(k, p, before)?));
            }
        }
        Ok(m)
    };
    let before = read(true)?;
    let want = planned_map(planned);
    if ctx.check_mode {
        return Ok(finish(&before, &want, &[]));
    }
    let mut done = Vec::new();
    for k in KEYS {
        let Some(p) = planned.get(k) else { continue };
        if before.get(k).and_then(Value::as_str) != Some(p) {
            l.set(k, p, ctx, &mut done)?;
        }
    }
    let after = read(false)?;
    if after != want {
        return Err(abort(
            &format!(
                "still not desired state, though changes have made - planned: {want:?}, after: {after:?}"
            ),
            &done,
        ));
    }
    Ok(finish(&before, &after, &done))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ctx_run(l: &Layout, planned: Planned, check: bool) -> Outcome {
        let t = crate::modules::TestCtx::new();
        without_systemd(l, &planned, &t.ctx(check, true)).unwrap_or_else(|o| o)
    }

    fn root() -> (tempfile::TempDir, Layout) {
        let t = tempfile::tempdir().unwrap();
        for (z, body) in [("Etc/UTC", "utc"), ("Europe/Belgrade", "belgrade")] {
            let p = t.path().join("usr/share/zoneinfo").join(z);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, body).unwrap();
        }
        std::fs::create_dir_all(t.path().join("etc")).unwrap();
        std::os::unix::fs::symlink(
            t.path().join("usr/share/zoneinfo/Etc/UTC"),
            t.path().join("etc/localtime"),
        )
        .unwrap();
        std::fs::write(t.path().join("etc/timezone"), "Etc/UTC\n").unwrap();
        let l = Layout {
            root: t.path().to_path_buf(),
            debian: true,
            hwclock_bin: PathBuf::from("/nonexistent/hwclock"),
            suse: false,
        };
        (t, l)
    }

    fn name(n: &str) -> Planned {
        Planned {
            hwclock: None,
            name: Some(n.into()),
        }
    }

    #[test]
    fn timezone_set_check_mode_and_idempotence_on_debian_files() {
        let (t, l) = root();
        let dry = ctx_run(&l, name("Europe/Belgrade"), true);
        assert!(dry.changed && !dry.failed, "{dry:?}");
        assert_eq!(
            dry.data["diff"],
            json!({"before": {"name": "Etc/UTC"}, "after": {"name": "Europe/Belgrade"}})
        );
        assert_eq!(
            std::fs::read_to_string(t.path().join("etc/timezone")).unwrap(),
            "Etc/UTC\n"
        );
        let out = ctx_run(&l, name("Europe/Belgrade"), false);
        assert!(out.changed && !out.failed, "{out:?}");
        assert_eq!(
            std::fs::read_to_string(t.path().join("etc/timezone")).unwrap(),
            "Europe/Belgrade\n"
        );
        assert_eq!(
            std::fs::read_to_string(t.path().join("etc/localtime")).unwrap(),
            "belgrade"
        );
        assert!(
            out.msg
                .as_deref()
                .unwrap()
                .starts_with("Added 1 line and deleted 1 line(s) on ")
        );
        let again = ctx_run(&l, name("Europe/Belgrade"), false);
        assert!(!again.changed && !again.failed, "{again:?}");
    }

    #[test]
    fn timezone_before_is_na_for_a_missing_config_or_a_copied_localtime() {
        let (t, l) = root();
        std::fs::remove_file(t.path().join("etc/timezone")).unwrap();
        let out = ctx_run(&l, name("Europe/Belgrade"), false);
        assert_eq!(out.data["diff"]["before"]["name"], "n/a", "{out:?}");
        assert_eq!(out.data["diff"]["after"]["name"], "Europe/Belgrade");
        // A copied (not linked) /etc/localtime that differs from the zone: n/a.
        std::fs::remove_file(t.path().join("etc/localtime")).unwrap();
        std::fs::write(t.path().join("etc/localtime"), "utc").unwrap();
        let out = ctx_run(&l, name("Europe/Belgrade"), true);
        assert!(out.changed);
        assert_eq!(out.data["diff"]["before"]["name"], "n/a", "{out:?}");
        let bad = ctx_run(&l, name("Nowhere/Atlantis"), false);
        assert_eq!(
            bad.msg.as_deref(),
            Some("Error message:\ngiven timezone \"Nowhere/Atlantis\" is not available")
        );
    }
}
