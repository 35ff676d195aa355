//! locale_gen (community.general): locales generated or removed as that module does:
//! with glibc's mechanism (Debian, current Ubuntu) the locale's line in /etc/locale.gen
//! is uncommented or commented out and `locale-gen` regenerates; with Ubuntu's old one
//! (/var/lib/locales/supported.d) `locale-gen` adds and `locale-gen --purge` removes.
//! Presence is what `locale -a` lists, before and after, so a locale the C library
//! carries built in (C.UTF-8) is reported unchanged when asked to go, as there.

use super::fsutil::{self, Attrs, Step, fail};
use super::{Ctx, ModuleError, Outcome, args, tools};
use crate::plan::Vars;
use regex::Regex;
use std::path::{Path, PathBuf};

const KNOWN: &[&str] = &["name", "state"];

/// `locale -a` may spell an encoding in lower case; these make both spellings compare
/// equal (the module's `LOCALE_NORMALIZATION`).
const NORMALIZATION: &[(&str, &str)] = &[
    (".utf8", ".UTF-8"),
    (".eucjp", ".EUC-JP"),
    (".iso885915", ".ISO-8859-15"),
    (".cp1251", ".CP1251"),
    (".koi8r", ".KOI8-R"),
    (".armscii8", ".ARMSCII-8"),
    (".euckr", ".EUC-KR"),
    (".gbk", ".GBK"),
    (".gb18030", ".GB18030"),
    (".euctw", ".EUC-TW"),
];

/// Where the module looks and what it runs; the system's, other places in tests.
struct Places {
    locale_gen: PathBuf,
    supported_d: PathBuf,
    /// The locales the C library can build.
    supported: PathBuf,
    /// `locale` and `locale-gen`; `None`: the host's, found as `get_bin_path` does.
    locale_bin: Option<PathBuf>,
    locale_gen_bin: Option<PathBuf>,
}

impl Places {
    fn system() -> Places {
        Places {
            locale_gen: "/etc/locale.gen".into(),
            supported_d: "/var/lib/locales/supported.d".into(),
            supported: "/usr/share/i18n/SUPPORTED".into(),
            locale_bin: None,
            locale_gen_bin: None,
        }
    }
}

/// `locale_gen`.
pub(super) fn run(a: &Vars, ctx: &Ctx<'_>) -> Result<Outcome, ModuleError> {
    fsutil::finish(run_at(a, ctx, &Places::system()))
}

fn run_at(a: &Vars, ctx: &Ctx<'_>, places: &Places) -> Step<Outcome> {
    args::only(a, KNOWN)?;
    if !a.contains_key("name") {
        return Err(ModuleError::BadArgs("missing required arguments: name".into()).into());
    }
    let names = args::str_list(a, "name")?;
    let state = args::opt_str(a, "state")?.unwrap_or_else(|| "present".into());
    if !matches!(state.as_str(), "present" | "absent") {
        return Err(ModuleError::BadArgs(format!(
            "value of state must be one of: absent, present, got: {state}"
        ))
        .into());
    }
    let glibc = if places.locale_gen.exists() {
        true
    } else if places.supported_d.exists() {
        false
    } else {
        return fail(format!(
            "{} and {} are missing. Is the package \"locales\" installed?",
            places.supported_d.display(),
            places.locale_gen.display()
        ));
    };
    let mechanism = if glibc { "glibc" } else { "ubuntu_legacy" };
    let tool = |given: &Option<PathBuf>, name: &str| -> Step<PathBuf> {
        given.clone().or_else(|| tools::find_bin(name)).ok_or_else(|| {
            fsutil::failed(Outcome::fail(format!(
                "Failed to find required executable \"{name}\" in paths: $PATH, /usr/local/sbin, /usr/sbin, /sbin"
            )))
        })
    };
    let locale = tool(&places.locale_bin, "locale")?;

    let listed = installed(ctx, &locale)?;
    let missing = not_present(&names, &listed);
    let supported = std::fs::read_to_string(&places.supported)
        .map_err(|e| fsutil::io_fail("read", &places.supported, &e))?;
    let unavailable: Vec<&String> = missing
        .iter()
        .filter(|n| !available(&supported, n))
        .copied()
        .collect();
    if !unavailable.is_empty() {
        let list: Vec<&str> = unavailable.iter().map(|s| s.as_str()).collect();
        return fail(format!(
            "The following locales you have entered are not available on your system: {}",
            list.join(", ")
        ));
    }
    let present_before = missing.is_empty();
    let out = |present: bool| {
        Outcome::changed(present != present_before)
            .with("name", names.clone())
            .with("mechanism", mechanism)
    };
    let wanted = state == "present";
    if present_before == wanted {
        return Ok(out(present_before));
    }
    if ctx.check_mode {
        // The collection's module compares `locale -a` before and after, and in check
        // mode nothing ran in between: it reports no change.
        return Ok(out(present_before));
    }
    let locale_gen = tool(&places.locale_gen_bin, "locale-gen")?;
    if glibc {
        let text = std::fs::read_to_string(&places.locale_gen)
            .map_err(|e| fsutil::io_fail("read", &places.locale_gen, &e))?;
        let edited = set_enabled(&text, &names, wanted)?;
        write(&places.locale_gen, &edited, ctx)?;
        execute(ctx, &locale_gen, &[])?;
    } else if wanted {
        // Ubuntu's own locale-gen lists what it generates in supported.d/local itself.
        execute(ctx, &locale_gen, &[])?;
    } else {
        let local = places.supported_d.join("local");
        let text =
            std::fs::read_to_string(&local).map_err(|e| fsutil::io_fail("read", &local, &e))?;
        let kept: String = text
            .split_inclusive('\n')
            .filter(|line| {
                let first = line.split(' ').next().unwrap_or_default();
                !names.iter().any(|n| n == first)
            })
            .collect();
        write(&local, &kept, ctx)?;
        execute(ctx, &locale_gen, &["--purge"])?;
    }
    let present_after = not_present(&names, &installed(ctx, &locale)?).is_empty();
    Ok(out(present_after))
}

/// What `locale -a` lists (the module runs it with check_rc).
fn installed(ctx: &Ctx<'_>, locale: &Path) -> Step<Vec<String>> {
    let out = execute(ctx, locale, &["-a"])?;
    Ok(out.lines().map(str::to_string).collect())
}

/// Runs a tool as the module's CmdRunner with check_rc.
fn execute(ctx: &Ctx<'_>, program: &Path, argv: &[&str]) -> Step<String> {
    let argv: Vec<String> = argv.iter().map(|s| s.to_string()).collect();
    tools::run_checked(ctx, program, &argv)
        .map(|o| o.stdout)
        .map_err(fsutil::failed)
}

/// The module's `fix_case`: encodings in one spelling.
fn fix_case(name: &str) -> String {
    NORMALIZATION
        .iter()
        .fold(name.to_string(), |n, (from, to)| n.replace(from, to))
}

/// The names `locale -a` does not list.
fn not_present<'n>(names: &'n [String], installed: &[String]) -> Vec<&'n String> {
    names
        .iter()
        .filter(|n| !installed.iter().any(|i| fix_case(i) == fix_case(n)))
        .collect()
}

/// Whether `name` is a locale the C library can build: the first word of a
/// `NAME CHARSET` line of SUPPORTED (the module's pattern, comments allowed).
fn available(supported: &str, name: &str) -> bool {
    supported.lines().any(|line| {
        let l = line.trim_start();
        let l = l.strip_prefix('#').unwrap_or(l).trim_start();
        let l = l.trim_end();
        match l.split_once(' ') {
            Some((locale, charset)) => {
                locale == name
                    && locale.chars().count() >= 2
                    && !charset.is_empty()
                    && !charset.contains(char::is_whitespace)
            }
            None => false,
        }
    })
}

/// /etc/locale.gen with each `NAME CHARSET` line (commented or not) enabled or
/// commented out (`# NAME CHARSET`), as the module's `set_locale_glibc` rewrites it.
fn set_enabled(text: &str, names: &[String], enabled: bool) -> Result<String, ModuleError> {
    let patterns = names
        .iter()
        .map(|n| {
            Regex::new(&format!(r"^#?\s*{} (.+)", regex::escape(n)))
                .map(|re| (n, re))
                .map_err(|e| ModuleError::BadArgs(format!("name {n}: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut out = String::with_capacity(text.len() + 8);
    for line in text.split_inclusive('\n') {
        let mut line = line.to_string();
        for (name, re) in &patterns {
            if let Some(c) = re.captures(&line) {
                let whole = c.get(0).map_or(0..0, |m| m.range());
                let charset = c.get(1).map_or("", |m| m.as_str());
                let new = if enabled {
                    format!("{name} {charset}")
                } else {
                    format!("# {name} {charset}")
                };
                line.replace_range(whole, &new);
            }
        }
        out.push_str(&line);
    }
    Ok(out)
}

fn write(path: &Path, text: &str, ctx: &Ctx<'_>) -> Step<()> {
    fsutil::write_config(path, text.as_bytes(), Attrs::default(), ctx).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const LOCALE_GEN: &str = "# This file lists locales\n#\n# de_CH ISO-8859-1\n# de_CH.UTF-8 UTF-8\nen_US.UTF-8 UTF-8\n# eo UTF-8\n";

    /// The host's own `locale`; `locale-gen` is `true`, since generating locales would
    /// change this machine (the conformance target runs the real one).
    fn places(dir: &Path) -> Places {
        Places {
            locale_gen: dir.join("locale.gen"),
            supported_d: dir.join("supported.d"),
            supported: dir.join("SUPPORTED"),
            locale_bin: None,
            locale_gen_bin: tools::find_bin("true"),
        }
    }

    fn locale_gen(dir: &Path, args: serde_json::Value, check: bool) -> Outcome {
        let t = crate::modules::TestCtx::new();
        let a: Vars = serde_json::from_value(args).unwrap();
        fsutil::finish(run_at(&a, &t.ctx(check, false), &places(dir))).unwrap()
    }

    fn setup() -> tempfile::TempDir {
        let t = tempfile::tempdir().unwrap();
        std::fs::write(t.path().join("locale.gen"), LOCALE_GEN).unwrap();
        std::fs::write(
            t.path().join("SUPPORTED"),
            "de_CH.UTF-8 UTF-8\nde_CH ISO-8859-1\neo UTF-8\nC.UTF-8 UTF-8\n",
        )
        .unwrap();
        t
    }

    #[test]
    fn lines_are_enabled_and_commented_out_as_the_module_does() {
        let on = set_enabled(LOCALE_GEN, &["de_CH.UTF-8".into()], true).unwrap();
        assert!(on.contains("\nde_CH.UTF-8 UTF-8\n"), "{on}");
        assert!(
            on.contains("# de_CH ISO-8859-1\n"),
            "other charsets untouched"
        );
        let off = set_enabled(&on, &["de_CH.UTF-8".into(), "en_US.UTF-8".into()], false).unwrap();
        assert!(off.contains("\n# de_CH.UTF-8 UTF-8\n# en_US.UTF-8 UTF-8\n"));
        // A name is a whole word: `de_CH` does not take `de_CH.UTF-8`'s line.
        let plain = set_enabled(LOCALE_GEN, &["de_CH".into()], true).unwrap();
        assert!(plain.contains("\nde_CH ISO-8859-1\n# de_CH.UTF-8 UTF-8\n"));
    }

    #[test]
    fn encodings_compare_in_either_spelling() {
        let installed = vec!["C.utf8".to_string(), "de_CH.utf8".to_string()];
        let names = vec!["C.UTF-8".to_string(), "de_CH.UTF-8".into(), "eo".into()];
        assert_eq!(not_present(&names, &installed), vec![&names[2]]);
        assert!(available("# eo UTF-8\n", "eo"));
        assert!(!available("eo_XX UTF-8\n", "eo"));
    }

    /// C.UTF-8 is built into this host's C library (`locale -a` lists it): present
    /// already, so asking for it is ok; a name the library cannot build fails naming it.
    #[test]
    fn a_listed_locale_is_ok_and_an_unknown_one_fails() {
        let t = setup();
        let ok = locale_gen(t.path(), json!({"name": "C.UTF-8"}), false);
        assert!(!ok.changed && !ok.failed, "{ok:?}");
        assert_eq!(ok.data["mechanism"], json!("glibc"));
        assert_eq!(ok.data["name"], json!(["C.UTF-8"]));
        let bad = locale_gen(t.path(), json!({"name": ["C.UTF-8", "xx_NOPE"]}), false);
        assert!(bad.failed);
        assert_eq!(
            bad.msg.as_deref(),
            Some(
                "The following locales you have entered are not available on your system: xx_NOPE"
            )
        );
        assert_eq!(read(t.path()), LOCALE_GEN, "nothing written");
    }

    /// A locale not generated here (`eo`, unless this host has it) would be made:
    /// check mode touches nothing and, as the collection's module (which compares
    /// `locale -a` before and after), reports no change.
    #[test]
    fn check_mode_writes_nothing_and_reports_no_change_as_the_module_does() {
        if std::process::Command::new("locale")
            .arg("-a")
            .output()
            .is_ok_and(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .lines()
                    .any(|l| l == "eo")
            })
        {
            return;
        }
        let t = setup();
        let out = locale_gen(t.path(), json!({"name": "eo", "state": "present"}), true);
        assert!(!out.changed && !out.failed, "{out:?}");
        assert_eq!(read(t.path()), LOCALE_GEN);
        // Not there, so absent is already so.
        let gone = locale_gen(t.path(), json!({"name": "eo", "state": "absent"}), false);
        assert!(!gone.changed && !gone.failed, "{gone:?}");
    }

    /// Asking C.UTF-8 to go comments its line out and regenerates, but `locale -a` still
    /// lists it afterwards (built in): not changed, as with the module.
    #[test]
    fn a_built_in_locale_asked_to_go_is_edited_but_reported_unchanged() {
        let t = setup();
        std::fs::write(t.path().join("locale.gen"), "C.UTF-8 UTF-8\n").unwrap();
        let out = locale_gen(
            t.path(),
            json!({"name": "C.UTF-8", "state": "absent"}),
            false,
        );
        assert!(!out.changed && !out.failed, "{out:?}");
        assert_eq!(read(t.path()), "# C.UTF-8 UTF-8\n");
    }

    #[test]
    fn without_either_list_the_module_fails_naming_both() {
        let t = tempfile::tempdir().unwrap();
        let out = locale_gen(t.path(), json!({"name": "eo"}), false);
        assert!(out.failed);
        assert!(
            out.msg
                .as_deref()
                .unwrap_or_default()
                .contains("supported.d and"),
            "{out:?}"
        );
        let t2 = setup();
        let t = crate::modules::TestCtx::new();
        let a: Vars = serde_json::from_value(json!({"state": "present"})).unwrap();
        assert!(run_at(&a, &t.ctx(false, false), &places(t2.path())).is_err());
    }

    fn read(dir: &Path) -> String {
        std::fs::read_to_string(dir.join("locale.gen")).unwrap()
    }
}
