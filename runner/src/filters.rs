//! Ansible's list, set, path, hash and version filters and tests, beyond minijinja's
//! built-ins and the text filters in `template.rs`.
//!
//! Each one follows the Python original's results for the inputs plans give it; where
//! Ansible relies on Python specifics (set ordering), the order of first appearance is
//! kept, which is what Ansible's own implementations of these filters do for lists.

use crate::digest;
use minijinja::value::{Kwargs, Rest, Value as JValue, ValueKind};
use minijinja::{Environment, Error, ErrorKind};
use std::path::{Component, Path, PathBuf};

fn invalid(msg: impl Into<String>) -> Error {
    Error::new(ErrorKind::InvalidOperation, msg.into())
}

/// The items of a sequence (or the keys of a mapping), for the set filters.
fn items(v: &JValue, filter: &str) -> Result<Vec<JValue>, Error> {
    match v.kind() {
        ValueKind::Seq | ValueKind::Map | ValueKind::Iterable => Ok(v.try_iter()?.collect()),
        ValueKind::Undefined => Err(invalid(format!("{filter}: the value is undefined"))),
        _ => Err(invalid(format!(
            "{filter}: expected a list, got {}",
            v.kind()
        ))),
    }
}

/// Distinct values, in the order they first appear.
fn distinct(values: impl IntoIterator<Item = JValue>) -> Vec<JValue> {
    let mut out: Vec<JValue> = Vec::new();
    for v in values {
        if !out.contains(&v) {
            out.push(v);
        }
    }
    out
}

fn flatten_into(v: &JValue, levels: Option<usize>, skip_nulls: bool, out: &mut Vec<JValue>) {
    for item in v.try_iter().into_iter().flatten() {
        match item.kind() {
            ValueKind::Seq if levels != Some(0) => {
                flatten_into(&item, levels.map(|l| l - 1), skip_nulls, out)
            }
            ValueKind::None | ValueKind::Undefined if skip_nulls => {}
            _ => out.push(item),
        }
    }
}

/// `path_join`, like Python's `os.path.join`: an absolute part restarts the path.
fn path_join(parts: &[String]) -> String {
    let mut out = PathBuf::new();
    for p in parts {
        out.push(p);
    }
    out.to_string_lossy().into_owned()
}

/// Removes `.` and resolves `..` lexically, as Python's `os.path.normpath`.
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    out.push("..");
                }
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

/// Compares two version strings the way Ansible's `version` test does by default
/// (loose: numeric runs compare as numbers, other runs as text).
pub(crate) fn compare_versions(a: &str, b: &str) -> std::cmp::Ordering {
    fn parts(s: &str) -> Vec<Result<u64, String>> {
        let mut out = Vec::new();
        let mut cur = String::new();
        let mut digits = false;
        let flush = |cur: &mut String, digits: bool, out: &mut Vec<Result<u64, String>>| {
            if !cur.is_empty() {
                out.push(if digits {
                    cur.parse::<u64>().map_err(|_| cur.clone())
                } else {
                    Err(cur.clone())
                });
                cur.clear();
            }
        };
        for c in s.chars() {
            if c == '.' || c == '-' || c == '_' || c == '+' || c == ' ' {
                flush(&mut cur, digits, &mut out);
                continue;
            }
            if !cur.is_empty() && c.is_ascii_digit() != digits {
                flush(&mut cur, digits, &mut out);
            }
            digits = c.is_ascii_digit();
            cur.push(c);
        }
        flush(&mut cur, digits, &mut out);
        out
    }
    let (pa, pb) = (parts(a), parts(b));
    for i in 0..pa.len().max(pb.len()) {
        let ord = match (pa.get(i), pb.get(i)) {
            (Some(Ok(x)), Some(Ok(y))) => x.cmp(y),
            // Python's LooseVersion puts numbers before strings.
            (Some(Ok(_)), Some(Err(_))) => std::cmp::Ordering::Less,
            (Some(Err(_)), Some(Ok(_))) => std::cmp::Ordering::Greater,
            (Some(Err(x)), Some(Err(y))) => x.cmp(y),
            (Some(_), None) => std::cmp::Ordering::Greater,
            (None, Some(_)) => std::cmp::Ordering::Less,
            (None, None) => std::cmp::Ordering::Equal,
        };
        if ord != std::cmp::Ordering::Equal {
            return ord;
        }
    }
    std::cmp::Ordering::Equal
}

fn version_test(v: String, other: String, rest: Rest<JValue>) -> Result<bool, Error> {
    use std::cmp::Ordering::{Equal, Greater, Less};
    let op = match rest.0.first() {
        Some(o) => o.to_string(),
        None => "eq".to_string(),
    };
    let ord = compare_versions(&v, &other);
    Ok(match op.as_str() {
        "<" | "lt" => ord == Less,
        "<=" | "le" => ord != Greater,
        ">" | "gt" => ord == Greater,
        ">=" | "ge" => ord != Less,
        "==" | "=" | "eq" => ord == Equal,
        "!=" | "<>" | "ne" => ord != Equal,
        other => return Err(invalid(format!("version: unknown operator '{other}'"))),
    })
}

/// Registers the filters and tests of this file.
pub(crate) fn register(env: &mut Environment<'static>) {
    env.add_filter(
        "flatten",
        |v: JValue, kw: Kwargs| -> Result<JValue, Error> {
            let levels: Option<usize> = kw.get("levels")?;
            let skip_nulls: Option<bool> = kw.get("skip_nulls")?;
            kw.assert_all_used()?;
            let mut out = Vec::new();
            flatten_into(&v, levels, skip_nulls.unwrap_or(true), &mut out);
            Ok(JValue::from(out))
        },
    );
    env.add_filter("unique_list", |v: JValue| -> Result<JValue, Error> {
        Ok(JValue::from(distinct(items(&v, "unique")?)))
    });
    env.add_filter("union", |a: JValue, b: JValue| -> Result<JValue, Error> {
        let mut all = items(&a, "union")?;
        all.extend(items(&b, "union")?);
        Ok(JValue::from(distinct(all)))
    });
    env.add_filter(
        "intersect",
        |a: JValue, b: JValue| -> Result<JValue, Error> {
            let other = items(&b, "intersect")?;
            let both = items(&a, "intersect")?
                .into_iter()
                .filter(|x| other.contains(x));
            Ok(JValue::from(distinct(both)))
        },
    );
    env.add_filter(
        "difference",
        |a: JValue, b: JValue| -> Result<JValue, Error> {
            let other = items(&b, "difference")?;
            let only = items(&a, "difference")?
                .into_iter()
                .filter(|x| !other.contains(x));
            Ok(JValue::from(distinct(only)))
        },
    );
    env.add_filter(
        "symmetric_difference",
        |a: JValue, b: JValue| -> Result<JValue, Error> {
            let (xa, xb) = (
                items(&a, "symmetric_difference")?,
                items(&b, "symmetric_difference")?,
            );
            let left = xa.iter().filter(|x| !xb.contains(x)).cloned();
            let right = xb.iter().filter(|x| !xa.contains(x)).cloned();
            Ok(JValue::from(distinct(left.chain(right))))
        },
    );
    env.add_filter(
        "product",
        |a: JValue, rest: Rest<JValue>| -> Result<JValue, Error> {
            let mut acc: Vec<Vec<JValue>> =
                items(&a, "product")?.into_iter().map(|x| vec![x]).collect();
            for other in rest.0.iter() {
                let next = items(other, "product")?;
                acc = acc
                    .into_iter()
                    .flat_map(|prefix| {
                        next.iter().map(move |x| {
                            let mut p = prefix.clone();
                            p.push(x.clone());
                            p
                        })
                    })
                    .collect();
            }
            Ok(JValue::from(
                acc.into_iter().map(JValue::from).collect::<Vec<_>>(),
            ))
        },
    );
    env.add_filter(
        "subelements",
        |v: JValue, key: String, kw: Kwargs| -> Result<JValue, Error> {
            let skip_missing: Option<bool> = kw.get("skip_missing")?;
            kw.assert_all_used()?;
            let mut out = Vec::new();
            for parent in items(&v, "subelements")? {
                let children = parent.get_attr(&key)?;
                if children.is_undefined() {
                    if skip_missing.unwrap_or(false) {
                        continue;
                    }
                    return Err(invalid(format!(
                        "subelements: could not find '{key}' key in iterated item"
                    )));
                }
                for child in items(&children, "subelements")? {
                    out.push(JValue::from(vec![parent.clone(), child]));
                }
            }
            Ok(JValue::from(out))
        },
    );
    env.add_filter(
        "hash",
        |v: String, algo: Option<String>| -> Result<String, Error> {
            let algo = algo.unwrap_or_else(|| "sha1".to_string());
            digest::hex(&algo, v.as_bytes())
                .ok_or_else(|| invalid(format!("hash: unsupported hash type '{algo}'")))
        },
    );
    env.add_filter("checksum", |v: String| -> String {
        digest::hex("sha1", v.as_bytes()).unwrap_or_default()
    });
    env.add_filter("md5", |v: String| -> String {
        digest::hex("md5", v.as_bytes()).unwrap_or_default()
    });
    env.add_filter("sha1", |v: String| -> String {
        digest::hex("sha1", v.as_bytes()).unwrap_or_default()
    });
    env.add_filter("path_join", |v: JValue| -> Result<String, Error> {
        let parts: Vec<String> = match v.kind() {
            ValueKind::Seq | ValueKind::Iterable => v.try_iter()?.map(|p| p.to_string()).collect(),
            _ => vec![v.to_string()],
        };
        Ok(path_join(&parts))
    });
    env.add_filter("splitext", |v: String| -> JValue {
        // As Python's os.path.splitext: the extension starts at the file name's last
        // dot, unless only dots come before it (`.bashrc` has none).
        let name_start = v.rfind('/').map_or(0, |i| i + 1);
        let name = v.get(name_start..).unwrap_or_default();
        let leading_dots = name.len() - name.trim_start_matches('.').len();
        let split = match name.rfind('.') {
            Some(i) if i > leading_dots => name_start + i,
            _ => v.len(),
        };
        let (stem, ext) = v.split_at(split);
        JValue::from(vec![JValue::from(stem), JValue::from(ext)])
    });
    env.add_filter("expanduser", |v: String| -> String {
        let home = std::env::var("HOME").unwrap_or_default();
        if v == "~" {
            home
        } else if let Some(rest) = v.strip_prefix("~/") {
            format!("{}/{rest}", home.trim_end_matches('/'))
        } else {
            v
        }
    });
    env.add_filter("realpath", |v: String| -> String {
        std::fs::canonicalize(&v)
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_else(|_| normalize(Path::new(&v)).to_string_lossy().into_owned())
    });
    env.add_filter("normpath", |v: String| -> String {
        normalize(Path::new(&v)).to_string_lossy().into_owned()
    });
    env.add_filter("relpath", |v: String, start: String| -> String {
        let (p, s) = (normalize(Path::new(&v)), normalize(Path::new(&start)));
        let pc: Vec<_> = p.components().collect();
        let sc: Vec<_> = s.components().collect();
        let common = pc.iter().zip(&sc).take_while(|(a, b)| a == b).count();
        let mut out = PathBuf::new();
        for _ in common..sc.len() {
            out.push("..");
        }
        for c in pc.iter().skip(common) {
            out.push(c.as_os_str());
        }
        if out.as_os_str().is_empty() {
            ".".to_string()
        } else {
            out.to_string_lossy().into_owned()
        }
    });
    env.add_filter("type_debug", |v: JValue| -> &'static str {
        match v.kind() {
            ValueKind::Undefined => "AnsibleUndefined",
            ValueKind::None => "NoneType",
            ValueKind::Bool => "bool",
            ValueKind::Number if v.is_integer() => "int",
            ValueKind::Number => "float",
            ValueKind::String => "str",
            ValueKind::Bytes => "bytes",
            ValueKind::Seq | ValueKind::Iterable => "list",
            ValueKind::Map => "dict",
            _ => "object",
        }
    });

    // Tests.
    env.add_test("version", version_test);
    env.add_test("version_compare", version_test);
    let regex_test = |name: &'static str| {
        move |v: String, pattern: String, kw: Kwargs| -> Result<bool, Error> {
            let ignorecase: Option<bool> = kw.get("ignorecase")?;
            let multiline: Option<bool> = kw.get("multiline")?;
            kw.assert_all_used()?;
            let re = crate::template::python_regex(
                &pattern,
                ignorecase.unwrap_or(false),
                multiline.unwrap_or(false),
            )
            .map_err(|e| invalid(format!("{name}: {e}")))?;
            Ok(match name {
                // `match` anchors at the start, as Python's re.match.
                "match" => re.find(&v).is_some_and(|m| m.start() == 0),
                _ => re.is_match(&v),
            })
        }
    };
    env.add_test("match", regex_test("match"));
    env.add_test("search", regex_test("search"));
    env.add_test("regex", regex_test("search"));
    env.add_test("contains", |v: JValue, x: JValue| -> Result<bool, Error> {
        Ok(items(&v, "contains")?.contains(&x))
    });
    env.add_test("subset", |a: JValue, b: JValue| -> Result<bool, Error> {
        let big = items(&b, "subset")?;
        Ok(items(&a, "subset")?.iter().all(|x| big.contains(x)))
    });
    env.add_test("superset", |a: JValue, b: JValue| -> Result<bool, Error> {
        let big = items(&a, "superset")?;
        Ok(items(&b, "superset")?.iter().all(|x| big.contains(x)))
    });
    env.add_test("truthy", |v: JValue| v.is_true());
    env.add_test("falsy", |v: JValue| !v.is_true());
    env.add_test("file", |v: String| Path::new(&v).is_file());
    env.add_test("directory", |v: String| Path::new(&v).is_dir());
    env.add_test("exists", |v: String| Path::new(&v).exists());
    env.add_test("link", |v: String| Path::new(&v).is_symlink());
    env.add_test("abs", |v: String| Path::new(&v).is_absolute());
}

#[cfg(test)]
mod tests {
    use crate::template::Engine;
    use serde_json::json;

    fn render(t: &str) -> String {
        let ctx = minijinja::Value::from_serialize(json!({"users": [
            {"name": "a", "groups": ["x", "y"]}, {"name": "b", "groups": ["z"]}]}));
        Engine::new().render_str(t, &ctx).unwrap()
    }

    #[test]
    fn list_and_set_filters() {
        assert_eq!(render("{{ [1, [2, [3]], none] | flatten }}"), "[1, 2, 3]");
        assert_eq!(
            render("{{ [1, [2, [3]]] | flatten(levels=1) }}"),
            "[1, 2, [3]]"
        );
        assert_eq!(render("{{ [1, 2, 2, 3] | union([3, 4]) }}"), "[1, 2, 3, 4]");
        assert_eq!(render("{{ [1, 2, 3] | intersect([3, 2, 9]) }}"), "[2, 3]");
        assert_eq!(render("{{ [1, 2, 3] | difference([2]) }}"), "[1, 3]");
        assert_eq!(
            render("{{ [1, 2] | symmetric_difference([2, 3]) }}"),
            "[1, 3]"
        );
        assert_eq!(
            render("{{ ['a', 'b'] | product([1, 2]) | map('join', '') | join(',') }}"),
            "a1,a2,b1,b2"
        );
        assert_eq!(
            render(
                "{% for u, g in users | subelements('groups') %}{{ u.name }}{{ g }} {% endfor %}"
            ),
            "ax ay bz "
        );
    }

    #[test]
    fn hashes_match_known_digests() {
        assert_eq!(
            render("{{ 'abc' | hash('md5') }}"),
            "900150983cd24fb0d6963f7d28e17f72"
        );
        assert_eq!(
            render("{{ 'abc' | hash }}"),
            "a9993e364706816aba3e25717850c26c9cd0d89d"
        );
        assert_eq!(
            render("{{ 'abc' | checksum }}"),
            "a9993e364706816aba3e25717850c26c9cd0d89d"
        );
        assert_eq!(
            render("{{ 'abc' | hash('sha256') }}"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let err = Engine::new()
            .render_str("{{ 'abc' | hash('crc99') }}", &minijinja::Value::UNDEFINED)
            .unwrap_err();
        assert!(err.to_string().contains("crc99"), "{err}");
    }

    #[test]
    fn path_filters() {
        assert_eq!(
            render("{{ ['/etc', 'app', 'x.conf'] | path_join }}"),
            "/etc/app/x.conf"
        );
        assert_eq!(render("{{ ['a', '/abs'] | path_join }}"), "/abs");
        assert_eq!(render("{{ 'dir/file.tar.gz' | splitext | last }}"), ".gz");
        assert_eq!(render("{{ '.bashrc' | splitext | last }}"), "");
        assert_eq!(render("{{ '/a/b/../c/./d' | normpath }}"), "/a/c/d");
        assert_eq!(render("{{ '/a/b/c' | relpath('/a/x') }}"), "../b/c");
    }

    #[test]
    fn version_regex_and_set_tests() {
        assert_eq!(render("{{ '20.04' is version('9.10', '>=') }}"), "True");
        assert_eq!(render("{{ '1.2.10' is version('1.2.9', 'gt') }}"), "True");
        assert_eq!(render("{{ '1.2' is version('1.2.0', '<') }}"), "True");
        assert_eq!(render("{{ 'foobar' is match('foo') }}"), "True");
        assert_eq!(render("{{ 'foobar' is match('bar') }}"), "False");
        assert_eq!(render("{{ 'foobar' is search('b.r') }}"), "True");
        assert_eq!(render("{{ [1, 2] is subset([1, 2, 3]) }}"), "True");
        assert_eq!(render("{{ [1, 2, 3] is superset([4]) }}"), "False");
        assert_eq!(render("{{ [1, 2] is contains(2) }}"), "True");
        assert_eq!(render("{{ '/' is directory }}"), "True");
    }
}
