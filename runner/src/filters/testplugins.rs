//! ansible-core's tests (`plugins/test/core.py`, `files.py`, `mathstuff.py`, `uri.py`):
//! task results (`failed`, `changed`, `skipped`, ...), regular expressions, version
//! comparison with each of Ansible's version types, truthiness, vault markers, paths,
//! sets and URIs.
//!
//! Paths are those of the machine the runner runs on: on a host-side runner that is the
//! host, where Ansible's tests look at the controller's files.

use super::core::{is_sequence, items};
use super::{Opts, add_tests, invalid, only, opts, py_str, py_type, split};
use minijinja::value::{Rest, Value as JValue, ValueKind};
use minijinja::{Environment, Error};
use std::cmp::Ordering;
use std::path::Path;

/// A task result's field, after checking the value is a result (a mapping).
fn result_field(v: &JValue, test: &str, field: &str) -> Result<JValue, Error> {
    if v.kind() != ValueKind::Map {
        return Err(invalid(format!("The '{test}' test expects a dictionary")));
    }
    Ok(v.get_attr(field).unwrap_or(JValue::UNDEFINED))
}

fn flag(v: &JValue, test: &str, field: &str) -> Result<bool, Error> {
    let f = result_field(v, test, field)?;
    Ok(!f.is_undefined() && f.is_true())
}

fn changed(v: JValue) -> Result<bool, Error> {
    let c = result_field(&v, "changed", "changed")?;
    if !c.is_undefined() {
        return Ok(c.is_true());
    }
    // Loop results: changed when any item changed.
    let results = v.get_attr("results").unwrap_or(JValue::UNDEFINED);
    if is_sequence(&results) {
        let all: Vec<JValue> = results.try_iter()?.collect();
        if all.first().is_some_and(|r| r.kind() == ValueKind::Map) {
            return Ok(all
                .iter()
                .any(|r| r.get_attr("changed").is_ok_and(|c| c.is_true())));
        }
    }
    Ok(false)
}

/// `started`/`finished`: an async result's status (`1`), true for a non-async task.
fn async_state(v: JValue, test: &str) -> Result<bool, Error> {
    let f = result_field(&v, test, test)?;
    if f.is_undefined() {
        return Ok(true);
    }
    Ok(f.as_i64() == Some(1) || f.kind() == ValueKind::Bool && f.is_true())
}

fn timedout(v: JValue) -> Result<bool, Error> {
    let t = result_field(&v, "timedout", "timedout")?;
    if t.is_undefined() || !t.is_true() {
        return Ok(false);
    }
    Ok(t.get_attr("period").is_ok_and(|p| p.is_true()))
}

/// `regex`/`match`/`search`: Python's `re` on the value's text.
fn regex_test(v: JValue, rest: Rest<JValue>, default_type: &str) -> Result<bool, Error> {
    let o = Opts::new(rest.0)?;
    super::defined(&v)?;
    let pattern = o.arg(0, "pattern")?.map(|p| py_str(&p)).unwrap_or_default();
    let ignorecase = o.flag(1, "ignorecase")?;
    let multiline = o.flag(2, "multiline")?;
    let match_type = match default_type {
        "regex" => o
            .arg(3, "match_type")?
            .map(|m| py_str(&m))
            .unwrap_or_else(|| "search".into()),
        other => other.to_string(),
    };
    o.done(default_type, if default_type == "regex" { 4 } else { 3 })?;
    // `match` anchors at the start, as Python's re.match; fullmatch at both ends.
    let pattern = match match_type.as_str() {
        "match" => format!(r"\A(?:{pattern})"),
        "fullmatch" => format!(r"\A(?:{pattern})\Z"),
        _ => pattern,
    };
    let re = super::py_regex(&pattern, ignorecase, multiline)?;
    re.is_match(py_str(&v).as_bytes()).map_err(super::invalid)
}

// ---------------------------------------------------------------------------
// Versions.

/// One part of a `LooseVersion`: a number or a run of other characters.
#[derive(Debug, Clone, PartialEq)]
enum Loose {
    Num(u128),
    Text(String),
}

/// `LooseVersion.parse`: runs of digits, runs of lower-case letters, and whatever lies
/// between them (dots dropped).
fn loose_parts(s: &str) -> Vec<Loose> {
    let mut out = Vec::new();
    let mut cur = String::new();
    #[derive(PartialEq, Clone, Copy)]
    enum K {
        Digit,
        Lower,
        Other,
    }
    let kind = |c: char| {
        if c.is_ascii_digit() {
            K::Digit
        } else if c.is_ascii_lowercase() {
            K::Lower
        } else {
            K::Other
        }
    };
    let mut cur_kind = K::Other;
    let flush = |cur: &mut String, k: K, out: &mut Vec<Loose>| {
        if cur.is_empty() {
            return;
        }
        let piece = std::mem::take(cur);
        // Text between matches, with the dots taken out as separators.
        if k == K::Other {
            for part in piece.split('.').filter(|p| !p.is_empty()) {
                out.push(match part.trim().parse::<u128>() {
                    Ok(n) => Loose::Num(n),
                    Err(_) => Loose::Text(part.to_string()),
                });
            }
            return;
        }
        out.push(match piece.parse::<u128>() {
            Ok(n) if k == K::Digit => Loose::Num(n),
            _ => Loose::Text(piece),
        });
    };
    for c in s.chars() {
        let k = kind(c);
        if c == '.' {
            flush(&mut cur, cur_kind, &mut out);
            cur_kind = K::Other;
            continue;
        }
        if !cur.is_empty() && (k != cur_kind || k == K::Other && cur_kind != K::Other) {
            flush(&mut cur, cur_kind, &mut out);
        }
        cur_kind = k;
        cur.push(c);
    }
    flush(&mut cur, cur_kind, &mut out);
    out
}

fn loose_cmp(a: &[Loose], b: &[Loose]) -> Result<Ordering, String> {
    if a == b {
        return Ok(Ordering::Equal);
    }
    for (x, y) in a.iter().zip(b) {
        let o = match (x, y) {
            (Loose::Num(p), Loose::Num(q)) => p.cmp(q),
            (Loose::Text(p), Loose::Text(q)) => p.cmp(q),
            (Loose::Num(_), Loose::Text(_)) => {
                return Err("'<' not supported between instances of 'int' and 'str'".into());
            }
            (Loose::Text(_), Loose::Num(_)) => {
                return Err("'<' not supported between instances of 'str' and 'int'".into());
            }
        };
        if o != Ordering::Equal {
            return Ok(o);
        }
    }
    Ok(a.len().cmp(&b.len()))
}

/// `StrictVersion`: `N.N[.N]` with an optional `aN`/`bN` pre-release.
/// A `StrictVersion`'s parts: major, minor, patch and the pre-release letter and number.
type StrictKey = (u64, u64, u64, Option<(char, u64)>);

fn strict_key(s: &str) -> Result<StrictKey, String> {
    let bad = || format!("invalid version number '{s}'");
    let re = regex::Regex::new(r"^(\d+)\.(\d+)(?:\.(\d+))?(?:([ab])(\d+))?$").map_err(|_| bad())?;
    let c = re.captures(s).ok_or_else(bad)?;
    let num = |i: usize| -> Result<u64, String> {
        c.get(i)
            .map_or(Ok(0), |m| m.as_str().parse().map_err(|_| bad()))
    };
    let pre = match (c.get(4), c.get(5)) {
        (Some(l), Some(_)) => Some((l.as_str().chars().next().unwrap_or('a'), num(5)?)),
        _ => None,
    };
    Ok((num(1)?, num(2)?, num(3)?, pre))
}

fn strict_cmp(a: &str, b: &str) -> Result<Ordering, String> {
    let (x, y) = (strict_key(a)?, strict_key(b)?);
    let base = (x.0, x.1, x.2).cmp(&(y.0, y.1, y.2));
    if base != Ordering::Equal {
        return Ok(base);
    }
    Ok(match (x.3, y.3) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Greater,
        (Some(_), None) => Ordering::Less,
        (Some(p), Some(q)) => p.cmp(&q),
    })
}

/// A semantic version's prerelease identifier.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Ident {
    Num(u128),
    Text(String),
}

/// A semantic version's major, minor, patch and pre-release identifiers.
type SemverKey = (u128, u128, u128, Option<Vec<Ident>>);

fn semver_key(s: &str) -> Result<SemverKey, String> {
    let bad = || format!("invalid semantic version '{s}'");
    let re = regex::Regex::new(concat!(
        r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)",
        r"(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][a-zA-Z0-9-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][a-zA-Z0-9-]*))*))?",
        r"(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$"
    ))
    .map_err(|_| bad())?;
    let c = re.captures(s).ok_or_else(bad)?;
    let num = |i: usize| -> Result<u128, String> {
        c.get(i)
            .map_or(Ok(0), |m| m.as_str().parse().map_err(|_| bad()))
    };
    let pre = c.get(4).map(|m| {
        m.as_str()
            .split('.')
            .map(|p| match p.parse::<u128>() {
                Ok(n) if p.chars().all(|x| x.is_ascii_digit()) => Ident::Num(n),
                _ => Ident::Text(p.to_string()),
            })
            .collect()
    });
    Ok((num(1)?, num(2)?, num(3)?, pre))
}

fn semver_cmp(a: &str, b: &str) -> Result<Ordering, String> {
    let (x, y) = (semver_key(a)?, semver_key(b)?);
    let base = (x.0, x.1, x.2).cmp(&(y.0, y.1, y.2));
    if base != Ordering::Equal {
        return Ok(base);
    }
    Ok(match (&x.3, &y.3) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Greater,
        (Some(_), None) => Ordering::Less,
        (Some(p), Some(q)) => p.cmp(q),
    })
}

/// A PEP 440 version's sort key, as `packaging.version.Version` orders versions.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Pep440 {
    epoch: u128,
    release: Vec<u128>,
    /// (0 = before any pre-release, 1 = a/b/rc with its rank and number, 2 = none).
    pre: (u8, u8, u128),
    /// None sorts before any post-release.
    post: Option<u128>,
    /// A dev release sorts before the release without one.
    dev: (u8, u128),
    local: Vec<(u8, u128, String)>,
}

fn pep440_key(s: &str) -> Result<Pep440, String> {
    let bad = || format!("Invalid version: '{s}'");
    let re = regex::RegexBuilder::new(concat!(
        r"^\s*v?(?:(?:([0-9]+)!)?([0-9]+(?:\.[0-9]+)*)",
        r"([-_\.]?(alpha|a|beta|b|preview|pre|c|rc)[-_\.]?([0-9]+)?)?",
        r"((?:-([0-9]+))|(?:[-_\.]?(post|rev|r)[-_\.]?([0-9]+)?))?",
        r"([-_\.]?(dev)[-_\.]?([0-9]+)?)?)",
        r"(?:\+([a-z0-9]+(?:[-_\.][a-z0-9]+)*))?\s*$"
    ))
    .case_insensitive(true)
    .build()
    .map_err(|_| bad())?;
    let c = re.captures(s).ok_or_else(bad)?;
    let n = |i: usize| -> u128 { c.get(i).and_then(|m| m.as_str().parse().ok()).unwrap_or(0) };
    let mut release: Vec<u128> = c
        .get(2)
        .map(|m| {
            m.as_str()
                .split('.')
                .filter_map(|p| p.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    while release.len() > 1 && release.last() == Some(&0) {
        release.pop();
    }
    let has_pre = c.get(3).is_some();
    let has_post = c.get(6).is_some();
    let has_dev = c.get(10).is_some();
    let pre = if has_pre {
        let rank = match c.get(4).map(|m| m.as_str().to_lowercase()).as_deref() {
            Some("alpha" | "a") => 0,
            Some("beta" | "b") => 1,
            _ => 2,
        };
        (1, rank, n(5))
    } else if !has_post && has_dev {
        (0, 0, 0)
    } else {
        (2, 0, 0)
    };
    let post = has_post.then(|| if c.get(7).is_some() { n(7) } else { n(9) });
    let dev = if has_dev { (0, n(12)) } else { (1, 0) };
    let local = c
        .get(13)
        .map(|m| {
            m.as_str()
                .split(['-', '_', '.'])
                .map(|p| match p.parse::<u128>() {
                    Ok(v) => (1, v, String::new()),
                    Err(_) => (0, 0, p.to_lowercase()),
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(Pep440 {
        epoch: n(1),
        release,
        pre,
        post,
        dev,
        local,
    })
}

fn version_test(v: JValue, version: JValue, rest: Rest<JValue>) -> Result<bool, Error> {
    let o = Opts::new(rest.0)?;
    let operator = o
        .arg(0, "operator")?
        .map(|x| py_str(&x))
        .unwrap_or_else(|| "eq".into());
    let strict = o.arg(1, "strict")?.filter(|s| !s.is_none());
    let version_type = o
        .arg(2, "version_type")?
        .filter(|s| !s.is_none())
        .map(|t| py_str(&t));
    o.done("version", 3)?;
    if strict.is_some() && version_type.is_some() {
        return Err(invalid("Cannot specify both 'strict' and 'version_type'"));
    }
    if !v.is_true() {
        return Err(invalid("Input version value cannot be empty"));
    }
    if !version.is_true() {
        return Err(invalid(
            "Version parameter to compare against cannot be empty",
        ));
    }
    let kind = if strict.is_some_and(|s| s.is_true()) {
        "strict".to_string()
    } else {
        version_type.unwrap_or_else(|| "loose".into())
    };
    if !matches!(
        kind.as_str(),
        "loose" | "strict" | "semver" | "semantic" | "pep440"
    ) {
        return Err(invalid(format!(
            "Invalid version type ({kind}). Must be one of 'loose', 'strict', 'semver', 'semantic', 'pep440'"
        )));
    }
    let op = match operator.as_str() {
        "==" | "=" | "eq" => "eq",
        "<" | "lt" => "lt",
        "<=" | "le" => "le",
        ">" | "gt" => "gt",
        ">=" | "ge" => "ge",
        "!=" | "<>" | "ne" => "ne",
        other => {
            return Err(invalid(format!(
                "Invalid operator type ({other}). Must be one of '==', '=', 'eq', '<', 'lt', '<=', 'le', '>', 'gt', '>=', 'ge', '!=', '<>', 'ne'"
            )));
        }
    };
    let (a, b) = (py_str(&v), py_str(&version));
    let compared = match kind.as_str() {
        "strict" => strict_cmp(&a, &b),
        "semver" | "semantic" => semver_cmp(&a, &b),
        "pep440" => pep440_key(&a).and_then(|x| pep440_key(&b).map(|y| x.cmp(&y))),
        // LooseVersion's `_cmp` orders unequal versions even for `==`, so a number
        // against text fails there too.
        _ => loose_cmp(&loose_parts(&a), &loose_parts(&b)),
    };
    let ord = compared.map_err(|e| invalid(format!("Version comparison failed: {e}")))?;
    Ok(match op {
        "eq" => ord == Ordering::Equal,
        "ne" => ord != Ordering::Equal,
        "lt" => ord == Ordering::Less,
        "le" => ord != Ordering::Greater,
        "gt" => ord == Ordering::Greater,
        _ => ord != Ordering::Less,
    })
}

/// Ansible's `boolean()` for `truthy(convert_bool=True)`: the strings and numbers it
/// knows; anything else keeps its own truthiness.
fn convert_bool(v: &JValue) -> Option<bool> {
    match v.kind() {
        ValueKind::Bool => Some(v.is_true()),
        // An empty string is not one of boolean()'s words, but is false anyway.
        ValueKind::String => crate::modules::args::truthy_str(v.as_str().unwrap_or_default()),
        ValueKind::Number => match py_str(v).as_str() {
            "1" | "1.0" => Some(true),
            "0" | "0.0" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

fn truthy(v: JValue, rest: Rest<JValue>) -> Result<bool, Error> {
    let o = Opts::new(rest.0)?;
    let convert = o.flag(0, "convert_bool")?;
    o.done("truthy", 1)?;
    if convert && let Some(b) = convert_bool(&v) {
        return Ok(b);
    }
    Ok(v.is_true())
}

fn exists_on_disk(v: &JValue, test: &str) -> Result<String, Error> {
    if v.kind() != ValueKind::String {
        return Err(invalid(format!(
            "{test}: expected a path, got {}",
            py_type(v)
        )));
    }
    Ok(v.as_str().unwrap_or_default().to_string())
}

/// Python's `os.path.ismount`.
fn is_mount(p: &str) -> bool {
    use std::os::unix::fs::MetadataExt as _;
    let path = Path::new(p);
    let Ok(meta) = path.symlink_metadata() else {
        return false;
    };
    if meta.file_type().is_symlink() {
        return false;
    }
    let parent = path.join("..");
    let Ok(pmeta) = parent.symlink_metadata() else {
        return false;
    };
    meta.dev() != pmeta.dev() || meta.ino() == pmeta.ino()
}

fn same_file(a: JValue, b: JValue) -> Result<bool, Error> {
    use std::os::unix::fs::MetadataExt as _;
    let (a, b) = (py_str(&a), py_str(&b));
    let stat = |p: &str| std::fs::metadata(p).map_err(|e| invalid(format!("[Errno 2] {e}: '{p}'")));
    let (x, y) = (stat(&a)?, stat(&b)?);
    Ok(x.dev() == y.dev() && x.ino() == y.ino())
}

fn vaulted_file(v: JValue) -> Result<bool, Error> {
    use std::io::Read as _;
    let p = py_str(&v);
    let mut head = [0u8; 14];
    let mut f = std::fs::File::open(&p)
        .map_err(|_| invalid(format!("Cannot test if the file {p} is a vault")))?;
    let n = f.read(&mut head).unwrap_or(0);
    Ok(head.get(..n).is_some_and(|h| h == b"$ANSIBLE_VAULT"))
}

fn is_uri(v: &JValue, schemes: Option<JValue>) -> bool {
    let (scheme, _) = super::urls::scheme_and_netloc(&py_str(v));
    match schemes.filter(|s| s.is_true()) {
        None => true,
        Some(list) => items(&list, "uri")
            .unwrap_or_default()
            .iter()
            .any(|s| py_str(s) == scheme),
    }
}

/// A test's value and its one optional argument.
fn with_opt(a: &[JValue], name: &str, test: &str) -> Result<(JValue, Option<JValue>), Error> {
    let (v, o) = opts(a)?;
    let x = o.arg(0, name)?;
    o.done(test, 1)?;
    Ok((v, x))
}

/// A test's value and its one required argument.
fn with_req(a: &[JValue], name: &str, test: &str) -> Result<(JValue, JValue), Error> {
    let (v, o) = opts(a)?;
    let x = o.req(0, name, test)?;
    o.done(test, 1)?;
    Ok((v, x))
}

fn path_test(a: &[JValue], test: &str, check: fn(&Path) -> bool) -> Result<bool, Error> {
    Ok(check(Path::new(&exists_on_disk(only(a, test)?, test)?)))
}

fn subset(a: &[JValue]) -> Result<bool, Error> {
    let (small, big) = with_req(a, "b", "subset")?;
    let big = items(&big, "subset")?;
    Ok(items(&small, "subset")?.iter().all(|x| big.contains(x)))
}

fn superset(a: &[JValue]) -> Result<bool, Error> {
    let (big, small) = with_req(a, "b", "superset")?;
    let big = items(&big, "superset")?;
    Ok(items(&small, "superset")?.iter().all(|x| big.contains(x)))
}

fn failed(a: &[JValue]) -> Result<bool, Error> {
    flag(only(a, "failed")?, "failed", "failed")
}

fn skipped(a: &[JValue]) -> Result<bool, Error> {
    flag(only(a, "skipped")?, "skipped", "skipped")
}

fn version(a: &[JValue]) -> Result<bool, Error> {
    let (v, mut r) = split(a)?;
    let version = super::first_positional(&mut r, "version", "version")?;
    version_test(v, version, r)
}

fn directory(a: &[JValue]) -> Result<bool, Error> {
    path_test(a, "directory", Path::is_dir)
}

fn file(a: &[JValue]) -> Result<bool, Error> {
    path_test(a, "file", Path::is_file)
}

fn link(a: &[JValue]) -> Result<bool, Error> {
    path_test(a, "link", Path::is_symlink)
}

fn is_abs(a: &[JValue]) -> Result<bool, Error> {
    Ok(py_str(only(a, "abs")?).starts_with('/'))
}

fn same(a: &[JValue]) -> Result<bool, Error> {
    let (x, y) = with_req(a, "other", "same_file")?;
    same_file(x, y)
}

fn mount(a: &[JValue]) -> Result<bool, Error> {
    Ok(is_mount(&py_str(only(a, "mount")?)))
}

fn nan(a: &[JValue]) -> Result<bool, Error> {
    let v = only(a, "nan")?;
    Ok(v.kind() == ValueKind::Number && f64::try_from(v.clone()).is_ok_and(f64::is_nan))
}

/// Registers Ansible's tests.
pub(crate) fn register(env: &mut Environment<'static>) {
    add_tests(
        env,
        &[
            ("failed", failed),
            ("failure", failed),
            ("succeeded", |a| failed(a).map(|f| !f)),
            ("success", |a| failed(a).map(|f| !f)),
            ("successful", |a| failed(a).map(|f| !f)),
            ("unreachable", |a| {
                flag(only(a, "unreachable")?, "unreachable", "unreachable")
            }),
            ("reachable", |a| {
                flag(only(a, "reachable")?, "unreachable", "unreachable").map(|f| !f)
            }),
            ("timedout", |a| timedout(only(a, "timedout")?.clone())),
            ("changed", |a| changed(only(a, "changed")?.clone())),
            ("change", |a| changed(only(a, "change")?.clone())),
            ("skipped", skipped),
            ("skip", skipped),
            ("finished", |a| {
                async_state(only(a, "finished")?.clone(), "finished")
            }),
            ("started", |a| {
                async_state(only(a, "started")?.clone(), "started")
            }),
            ("match", |a| {
                split(a).and_then(|(v, r)| regex_test(v, r, "match"))
            }),
            ("search", |a| {
                split(a).and_then(|(v, r)| regex_test(v, r, "search"))
            }),
            ("regex", |a| {
                split(a).and_then(|(v, r)| regex_test(v, r, "regex"))
            }),
            ("version", version),
            ("version_compare", version),
            ("any", |a| {
                Ok(items(only(a, "any")?, "any")?.iter().any(JValue::is_true))
            }),
            ("all", |a| {
                Ok(items(only(a, "all")?, "all")?.iter().all(JValue::is_true))
            }),
            ("truthy", |a| split(a).and_then(|(v, r)| truthy(v, r))),
            ("falsy", |a| {
                split(a).and_then(|(v, r)| truthy(v, r)).map(|t| !t)
            }),
            ("vault_encrypted", |a| {
                Ok(super::encryption::vault_encrypted(only(
                    a,
                    "vault_encrypted",
                )?))
            }),
            ("vaulted_file", |a| {
                vaulted_file(only(a, "vaulted_file")?.clone())
            }),
            ("directory", directory),
            ("is_dir", directory),
            ("file", file),
            ("is_file", file),
            ("link", link),
            ("is_link", link),
            ("exists", |a| path_test(a, "exists", Path::exists)),
            ("link_exists", |a| {
                path_test(a, "link_exists", |p| p.symlink_metadata().is_ok())
            }),
            ("abs", is_abs),
            ("is_abs", is_abs),
            ("same_file", same),
            ("is_same_file", same),
            ("mount", mount),
            ("is_mount", mount),
            ("subset", subset),
            ("issubset", subset),
            ("superset", superset),
            ("issuperset", superset),
            ("contains", |a| {
                let (seq, x) = with_req(a, "value", "contains")?;
                match (seq.as_str(), x.as_str()) {
                    (Some(s), Some(sub)) if seq.kind() == ValueKind::String => Ok(s.contains(sub)),
                    _ => Ok(items(&seq, "contains")?.contains(&x)),
                }
            }),
            ("nan", nan),
            ("isnan", nan),
            ("uri", |a| {
                let (v, schemes) = with_opt(a, "schemes", "uri")?;
                Ok(is_uri(&v, schemes))
            }),
            ("url", |a| {
                let (v, schemes) = with_opt(a, "schemes", "url")?;
                let (scheme, netloc) = super::urls::scheme_and_netloc(&py_str(&v));
                Ok(is_uri(&v, schemes) && (netloc || scheme == "file"))
            }),
            ("urn", |a| {
                let v = only(a, "urn")?;
                Ok(is_uri(v, Some(JValue::from(vec![JValue::from("urn")]))))
            }),
        ],
    );
}

#[cfg(test)]
mod tests {
    use super::super::check::{errors, table};
    use serde_json::json;

    // Expected values: ansible-core 2.18.19 (ansible 11.13.0, with netaddr 1.3.0 and
    // jmespath 1.1.0 for the collections), each expression evaluated as
    //   init_plugin_loader(); Templar(loader=DataLoader(), variables={'nl': '\n'})
    //       .template('{{ (EXPR) | to_json }}')
    // and an error's text matched by the part of Ansible's message shown.
    #[test]
    fn tests_match_ansible() {
        let vars = json!({"nl": "\n"});
        table(
            &vars,
            &[
                (r#"{'failed': true} is failed"#, r#"true"#),
                (r#"{'failed': false} is failure"#, r#"false"#),
                (r#"{} is succeeded"#, r#"true"#),
                (r#"{'failed': true} is successful"#, r#"false"#),
                (r#"{'unreachable': true} is unreachable"#, r#"true"#),
                (r#"{} is reachable"#, r#"true"#),
                (r#"{'changed': true} is changed"#, r#"true"#),
                (
                    r#"{'results': [{'changed': false}, {'changed': true}]} is changed"#,
                    r#"true"#,
                ),
                (r#"{'results': [{'changed': false}]} is change"#, r#"false"#),
                (r#"{} is changed"#, r#"false"#),
                (r#"{'skipped': true} is skipped"#, r#"true"#),
                (r#"{} is skip"#, r#"false"#),
                (r#"{'finished': 1} is finished"#, r#"true"#),
                (r#"{'finished': 0} is finished"#, r#"false"#),
                (r#"{} is finished"#, r#"true"#),
                (r#"{'started': 1} is started"#, r#"true"#),
                (r#"'hello' is match('h.ll.')"#, r#"true"#),
                (r#"'hello' is match('.ll.')"#, r#"false"#),
                (r#"'hello' is search('.l')"#, r#"true"#),
                (r#"'hello' is regex('.L', ignorecase=true)"#, r#"true"#),
                (r#"'hello' is regex('.L')"#, r#"false"#),
                (r#"'hello' is regex('ll', match_type='match')"#, r#"false"#),
                (r#"'1.0' is version_compare('1.0', '==')"#, r#"true"#),
                (r#"'1.0' is version('2.0', '!=')"#, r#"true"#),
                (r#"'1.0' is version('2.0', '<')"#, r#"true"#),
                (r#"'2.0' is version('1.0', '>')"#, r#"true"#),
                (r#"'1.0' is version('1.0', '<=')"#, r#"true"#),
                (r#"'1.0' is version('1.0', '>=', true)"#, r#"true"#),
                (
                    r#"'1.2.3' is version('2.0.0', 'lt', version_type='semver')"#,
                    r#"true"#,
                ),
                (
                    r#"'2.14.0rc1' is version('2.14.0', 'lt', version_type='pep440')"#,
                    r#"true"#,
                ),
                (
                    r#"'1.0.post1' is version('1.0', 'gt', version_type='pep440')"#,
                    r#"true"#,
                ),
                (
                    r#"'1.0.dev1' is version('1.0a1', 'lt', version_type='pep440')"#,
                    r#"true"#,
                ),
                (
                    r#"'1.0+local' is version('1.0', 'gt', version_type='pep440')"#,
                    r#"true"#,
                ),
                (
                    r#"'1!0.1' is version('2.0', 'gt', version_type='pep440')"#,
                    r#"true"#,
                ),
                (
                    r#"'1.0.0-alpha' is version('1.0.0-alpha.1', 'lt', version_type='semver')"#,
                    r#"true"#,
                ),
                (
                    r#"'1.0.0-alpha.beta' is version('1.0.0-beta', 'lt', version_type='semver')"#,
                    r#"true"#,
                ),
                (
                    r#"'1.0.0-rc.1' is version('1.0.0', 'lt', version_type='semver')"#,
                    r#"true"#,
                ),
                (
                    r#"'1.0.0+build' is version('1.0.0', 'eq', version_type='semver')"#,
                    r#"true"#,
                ),
                (r#"'20.04' is version('9.10', '>=')"#, r#"true"#),
                (r#"'1.2.10' is version('1.2.9', 'gt')"#, r#"true"#),
                (r#"'1.2' is version('1.2.0', '<')"#, r#"true"#),
                (r#"'1.0-rc1' is version('1.0-rc2', '<')"#, r#"true"#),
                (
                    r#"'1.0' is version('1.0a1', 'lt', strict=true)"#,
                    r#"false"#,
                ),
                (
                    r#"'1.0a1' is version('1.0b1', 'lt', strict=true)"#,
                    r#"true"#,
                ),
                (r#"'1.0.0' is version('1.0', 'eq', strict=true)"#, r#"true"#),
                (r#"'5.4.0-42-generic' is version('5.4.0', '>=')"#, r#"true"#),
                (r#"'3.10' is version('3.9', 'gt')"#, r#"true"#),
                (r#"[true, false] is any"#, r#"true"#),
                (r#"[false] is any"#, r#"false"#),
                (r#"[true] is all"#, r#"true"#),
                (r#"[true, false] is all"#, r#"false"#),
                (r#""string" is truthy"#, r#"true"#),
                (r#""" is truthy"#, r#"false"#),
                (r#"[""] is truthy"#, r#"true"#),
                (r#""on" is truthy(convert_bool=True)"#, r#"true"#),
                (r#""off" is truthy(convert_bool=True)"#, r#"false"#),
                (r#""fred" is truthy(convert_bool=True)"#, r#"true"#),
                (r#""off" is falsy(convert_bool=True)"#, r#"true"#),
                (r#"{} is falsy"#, r#"true"#),
                (r#"0 is falsy"#, r#"true"#),
                (r#"[1] is issubset([1, 2])"#, r#"true"#),
                (r#"[1] is subset([2])"#, r#"false"#),
                (r#"[1, 2] is superset([1])"#, r#"true"#),
                (r#"[2] is issuperset([1])"#, r#"false"#),
                (r#"[1] is contains(1)"#, r#"true"#),
                (r#"'abc' is contains('b')"#, r#"true"#),
                (r#"{'a': 1} is contains('a')"#, r#"true"#),
                (r#"'bad' is nan"#, r#"false"#),
                (r#"1.1 | float is nan"#, r#"false"#),
                (r#"'nan' | float is isnan"#, r#"true"#),
                (r#"'.' is directory"#, r#"true"#),
                (r#"'/etc/passwd' is file"#, r#"true"#),
                (r#"'/etc/passwd' is is_file"#, r#"true"#),
                (r#"'/nope' is exists"#, r#"false"#),
                (r#"'/' is abs"#, r#"true"#),
                (r#"'../' is abs"#, r#"false"#),
                (r#"'/' is same_file('/')"#, r#"true"#),
                (r#"'/' is mount"#, r#"true"#),
                (r#"'/does_not_exist' is mount"#, r#"false"#),
                (r#"'http://x.com/a' is uri"#, r#"true"#),
                (r#"'http://x.com/a' is url"#, r#"true"#),
                (r#"'/a/b' is url"#, r#"false"#),
                (r#"'file:///a' is url"#, r#"true"#),
                (r#"'urn:isbn:123' is urn"#, r#"true"#),
                (r#"'http://x' is urn"#, r#"false"#),
                (r#"'http://x' is uri(['https'])"#, r#"false"#),
                (r#"'mailto:a@b' is url"#, r#"false"#),
                (r#"'foo' is vault_encrypted"#, r#"false"#),
            ],
        );
        errors(
            &vars,
            &[
                (
                    r#"'nope' is failed"#,
                    "The 'failed' test expects a dictionary",
                ),
                (
                    r#"'nope' is reachable"#,
                    "The 'unreachable' test expects a dictionary",
                ),
                (
                    r#"'nope' is changed"#,
                    "The 'changed' test expects a dictionary",
                ),
                (
                    r#"'nope' is started"#,
                    "The 'started' test expects a dictionary",
                ),
                (
                    r#"'1.0' is version('1.0', 'equals')"#,
                    "Invalid operator type (equals). Must be one of '==', '=', 'eq', '<', 'lt', '<=', 'le', '>', 'gt', '>=', 'ge', '!=', '<>', 'ne'",
                ),
                (
                    r#"'1.0' is version('nope', '==', true)"#,
                    "Version comparison failed: invalid version number 'nope'",
                ),
                (
                    r#"'1.0' is version('1.0', strict=False, version_type='loose')"#,
                    "Cannot specify both 'strict' and 'version_type'",
                ),
                (
                    r#"'1.0' is version('1.0', version_type='boom')"#,
                    "Invalid version type (boom). Must be one of 'loose', 'strict', 'semver', 'semantic', 'pep440'",
                ),
                (
                    r#"'nope' is version('nopenope', version_type='semver')"#,
                    "Version comparison failed: invalid semantic version 'nope'",
                ),
                (
                    r#"'' is version('1.0', '>')"#,
                    "Input version value cannot be empty",
                ),
                (
                    r#"'1.0' is version('', '>')"#,
                    "Version parameter to compare against cannot be empty",
                ),
                (
                    r#"'1.0a' is version('1.0.1', '<')"#,
                    "Version comparison failed: '<' not supported between instances of 'str' and 'int'",
                ),
                (
                    r#"'1.0' is version('1.a', '<')"#,
                    "Version comparison failed: '<' not supported between instances of 'int' and 'str'",
                ),
                (
                    r#"'1.0' is version('1.a', '==')"#,
                    "Version comparison failed: '<' not supported between instances of 'int' and 'str'",
                ),
                (
                    r#"'abc' is version('1.0', 'eq', strict=true)"#,
                    "Version comparison failed: invalid version number 'abc'",
                ),
            ],
        );
    }
}
