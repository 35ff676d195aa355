//! Jinja2's built-in filters as Ansible's templates see them, where minijinja's differ
//! or are missing: Python's number conversions (`"1.5"|int` is 1, a bad value gives the
//! default instead of an error), Python's `round`, `string` of a list as Python prints
//! it, `min`/`max`/`sum`/`join` with `attribute`, `unique` with Ansible's fallback, and
//! the text filters minijinja has not (`center`, `truncate`, `wordwrap`, ...).

use super::core::items;
use super::{Opts, add_filters, invalid, only, only_str, opts, py_str, py_type, split, text_fits};
use crate::template::py_display;
use minijinja::value::{Rest, Value as JValue, ValueKind};
use minijinja::{Environment, Error, ErrorKind, State};

/// Python's `int(text, base)`: surrounding whitespace, a sign, `_` between digits, and
/// for base 0 (or a matching base) a `0x`/`0o`/`0b` prefix.
fn py_int_text(s: &str, base: u32) -> Option<i128> {
    let t = s.trim();
    let (neg, t) = match t.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, t.strip_prefix('+').unwrap_or(t)),
    };
    let lower = t.to_ascii_lowercase();
    let (base, digits) = match (base, lower.get(..2)) {
        (0 | 16, Some("0x")) => (16, lower.get(2..)?),
        (0 | 8, Some("0o")) => (8, lower.get(2..)?),
        (0 | 2, Some("0b")) => (2, lower.get(2..)?),
        (0, _)
            if lower.len() > 1
                && lower.starts_with('0')
                && lower.trim_start_matches(['0', '_']).is_empty() =>
        {
            (10, "0")
        }
        (0, _) if lower.starts_with('0') && lower.len() > 1 => return None,
        (0, _) => (10, lower.as_str()),
        (b, _) => (b, lower.as_str()),
    };
    let digits = digits.strip_prefix('_').unwrap_or(digits);
    if digits.is_empty()
        || digits.starts_with('_')
        || digits.ends_with('_')
        || digits.contains("__")
    {
        return None;
    }
    let n = i128::from_str_radix(&digits.replace('_', ""), base).ok()?;
    Some(if neg { -n } else { n })
}

/// Python's `float(text)`.
pub(crate) fn py_float_text(s: &str) -> Option<f64> {
    let t = s.trim();
    let lower = t.to_ascii_lowercase();
    let unsigned = lower.trim_start_matches(['+', '-']);
    if matches!(unsigned, "inf" | "infinity" | "nan") {
        let v = if unsigned == "nan" {
            f64::NAN
        } else {
            f64::INFINITY
        };
        return Some(if lower.starts_with('-') { -v } else { v });
    }
    if t.is_empty() || t.contains("__") || t.starts_with('_') || t.ends_with('_') {
        return None;
    }
    let cleaned = t.replace('_', "");
    if !cleaned
        .chars()
        .all(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '+' | '-'))
    {
        return None;
    }
    cleaned.parse::<f64>().ok()
}

/// Jinja's `int(value, default=0, base=10)`.
fn int(v: JValue, rest: Rest<JValue>) -> Result<JValue, Error> {
    let o = Opts::new(rest.0)?;
    let default = o.arg(0, "default")?.unwrap_or(JValue::from(0));
    let base = o.arg(1, "base")?.and_then(|b| b.as_i64()).unwrap_or(10);
    o.done("int", 2)?;
    super::defined(&v)?;
    let from_float = |f: f64| -> Result<JValue, Error> {
        if f.is_infinite() {
            return Err(invalid("cannot convert float infinity to integer"));
        }
        if f.is_nan() {
            return Ok(default.clone());
        }
        Ok(JValue::from(f.trunc() as i128))
    };
    match v.kind() {
        ValueKind::Number if v.is_integer() => Ok(v),
        ValueKind::Number => from_float(f64::try_from(v).unwrap_or(0.0)),
        ValueKind::Bool => Ok(JValue::from(i64::from(v.is_true()))),
        ValueKind::String => {
            let s = v.as_str().unwrap_or_default();
            let base = u32::try_from(base).unwrap_or(10);
            match py_int_text(s, base) {
                Some(n) => Ok(JValue::from(n)),
                None => match py_float_text(s) {
                    Some(f) => from_float(f),
                    None => Ok(default),
                },
            }
        }
        _ => Ok(default),
    }
}

/// Jinja's `float(value, default=0.0)`.
fn float(v: JValue, rest: Rest<JValue>) -> Result<JValue, Error> {
    let o = Opts::new(rest.0)?;
    let default = o.arg(0, "default")?.unwrap_or(JValue::from(0.0));
    o.done("float", 1)?;
    super::defined(&v)?;
    Ok(match v.kind() {
        ValueKind::Number | ValueKind::Bool => JValue::from(f64::try_from(v).unwrap_or(0.0)),
        ValueKind::String => match py_float_text(v.as_str().unwrap_or_default()) {
            Some(f) => JValue::from(f),
            None => default,
        },
        _ => default,
    })
}

/// Python's `round(x, ndigits)`: the exact binary value rounded half to even.
pub(crate) fn py_round(x: f64, precision: i32) -> f64 {
    if !x.is_finite() {
        return x;
    }
    if precision >= 0 {
        let p = precision.min(300) as usize;
        format!("{x:.p$}").parse().unwrap_or(x)
    } else {
        let scale = 10f64.powi(-precision);
        (x / scale).round_ties_even() * scale
    }
}

/// Jinja's `round(value, precision=0, method='common')`.
fn round(v: JValue, rest: Rest<JValue>) -> Result<JValue, Error> {
    let o = Opts::new(rest.0)?;
    let precision = o.arg(0, "precision")?.and_then(|p| p.as_i64()).unwrap_or(0) as i32;
    let method = o
        .arg(1, "method")?
        .map(|m| py_str(&m))
        .unwrap_or_else(|| "common".into());
    o.done("round", 2)?;
    if !matches!(method.as_str(), "common" | "ceil" | "floor") {
        return Err(invalid("method must be common, ceil or floor"));
    }
    if v.kind() != ValueKind::Number && v.kind() != ValueKind::Bool {
        return Err(invalid(format!(
            "type {} doesn't define __round__ method",
            py_type(&v)
        )));
    }
    if method == "common" && v.is_integer() {
        // round(int, n) stays an int (rounded to tens and more for negative n).
        let n = v.as_i64().unwrap_or(0);
        if precision >= 0 {
            return Ok(v);
        }
        let scale = 10i64
            .checked_pow(precision.unsigned_abs())
            .unwrap_or(i64::MAX);
        let q = n as f64 / scale as f64;
        return Ok(JValue::from(q.round_ties_even() as i64 * scale));
    }
    let x = f64::try_from(v).unwrap_or(0.0);
    let scale = 10f64.powi(precision);
    Ok(JValue::from(match method.as_str() {
        "ceil" => (x * scale).ceil() / scale,
        "floor" => (x * scale).floor() / scale,
        _ => py_round(x, precision),
    }))
}

/// An item's value at a dotted attribute path (`a.b`, `0.name`), as Jinja's attrgetter.
fn attr_path(item: &JValue, path: &str) -> JValue {
    let mut v = item.clone();
    for part in path.split('.') {
        let next = match part.parse::<i64>() {
            Ok(i) if v.kind() == ValueKind::Seq => v.get_item(&JValue::from(i)),
            _ => v.get_attr(part),
        };
        v = next.unwrap_or(JValue::UNDEFINED);
    }
    v
}

/// Orders two values as Python does for the types that compare (numbers with numbers,
/// strings with strings, lists item by item); strings fold case unless `case_sensitive`.
fn py_cmp(a: &JValue, b: &JValue, case_sensitive: bool) -> Result<std::cmp::Ordering, Error> {
    use std::cmp::Ordering;
    match (a.kind(), b.kind()) {
        (ValueKind::String, ValueKind::String) => {
            let (x, y) = (
                a.as_str().unwrap_or_default(),
                b.as_str().unwrap_or_default(),
            );
            Ok(if case_sensitive {
                x.cmp(y)
            } else {
                x.to_lowercase().cmp(&y.to_lowercase())
            })
        }
        (ValueKind::Number | ValueKind::Bool, ValueKind::Number | ValueKind::Bool) => {
            let (x, y) = (
                f64::try_from(a.clone()).unwrap_or(0.0),
                f64::try_from(b.clone()).unwrap_or(0.0),
            );
            Ok(x.partial_cmp(&y).unwrap_or(Ordering::Equal))
        }
        (ValueKind::Seq, ValueKind::Seq) => {
            let (xs, ys): (Vec<JValue>, Vec<JValue>) =
                (a.try_iter()?.collect(), b.try_iter()?.collect());
            for (x, y) in xs.iter().zip(&ys) {
                let o = py_cmp(x, y, case_sensitive)?;
                if o != Ordering::Equal {
                    return Ok(o);
                }
            }
            Ok(xs.len().cmp(&ys.len()))
        }
        _ => Err(invalid(format!(
            "'<' not supported between instances of '{}' and '{}'",
            py_type(a),
            py_type(b)
        ))),
    }
}

/// Jinja's `min`/`max(value, case_sensitive=False, attribute=None)`.
fn min_max(v: JValue, rest: Rest<JValue>, want_max: bool) -> Result<JValue, Error> {
    let o = Opts::new(rest.0)?;
    let case_sensitive = o.flag(0, "case_sensitive")?;
    let attribute = o
        .arg(1, "attribute")?
        .filter(|a| !a.is_none())
        .map(|a| py_str(&a));
    o.done(if want_max { "max" } else { "min" }, 2)?;
    let all = items(&v, if want_max { "max" } else { "min" })?;
    let key = |x: &JValue| match &attribute {
        Some(a) => attr_path(x, a),
        None => x.clone(),
    };
    let mut best: Option<JValue> = None;
    for item in all {
        best = Some(match best {
            None => item,
            Some(b) => {
                let ord = py_cmp(&key(&item), &key(&b), case_sensitive)?;
                let better = if want_max {
                    ord == std::cmp::Ordering::Greater
                } else {
                    ord == std::cmp::Ordering::Less
                };
                if better { item } else { b }
            }
        });
    }
    Ok(best.unwrap_or(JValue::UNDEFINED))
}

/// Jinja's `sum(iterable, attribute=None, start=0)`.
fn sum(v: JValue, rest: Rest<JValue>) -> Result<JValue, Error> {
    let o = Opts::new(rest.0)?;
    let attribute = o
        .arg(0, "attribute")?
        .filter(|a| !a.is_none())
        .map(|a| py_str(&a));
    let start = o.arg(1, "start")?.unwrap_or(JValue::from(0));
    o.done("sum", 2)?;
    let mut total = start;
    for item in items(&v, "sum")? {
        let x = match &attribute {
            Some(a) => attr_path(&item, a),
            None => item,
        };
        total = add(&total, &x)?;
    }
    Ok(total)
}

/// Python's `+` for the types `sum` meets: numbers, and lists (`sum(start=[])`).
fn add(a: &JValue, b: &JValue) -> Result<JValue, Error> {
    match (a.kind(), b.kind()) {
        (ValueKind::Seq, ValueKind::Seq) => {
            let mut out: Vec<JValue> = a.try_iter()?.collect();
            out.extend(b.try_iter()?);
            Ok(JValue::from(out))
        }
        (ValueKind::Number | ValueKind::Bool, ValueKind::Number | ValueKind::Bool) => {
            if (a.is_integer() || a.kind() == ValueKind::Bool)
                && (b.is_integer() || b.kind() == ValueKind::Bool)
            {
                let x = a.as_i64().unwrap_or(i64::from(a.is_true()));
                let y = b.as_i64().unwrap_or(i64::from(b.is_true()));
                Ok(JValue::from(
                    x.checked_add(y)
                        .ok_or_else(|| invalid("integer overflow"))?,
                ))
            } else {
                let x = f64::try_from(a.clone()).unwrap_or(0.0);
                let y = f64::try_from(b.clone()).unwrap_or(0.0);
                Ok(JValue::from(x + y))
            }
        }
        _ => Err(invalid(format!(
            "unsupported operand type(s) for +: '{}' and '{}'",
            py_type(a),
            py_type(b)
        ))),
    }
}

/// Jinja's `join(value, d='', attribute=None)`: items as Python's `str()`.
fn join(v: JValue, rest: Rest<JValue>) -> Result<String, Error> {
    let o = Opts::new(rest.0)?;
    let sep = o.arg(0, "d")?.map(|d| py_str(&d)).unwrap_or_default();
    let attribute = o
        .arg(1, "attribute")?
        .filter(|a| !a.is_none())
        .map(|a| py_str(&a));
    o.done("join", 2)?;
    // The length is known before anything is built, so an oversized join allocates
    // nothing (a chain of joins with long separators multiplies a string's length at
    // each step).
    let fits = |parts_len: usize, count: usize| -> Result<usize, Error> {
        let total = count
            .saturating_sub(1)
            .checked_mul(sep.len())
            .and_then(|seps| seps.checked_add(parts_len));
        text_fits("join", total)
    };
    // A string joins its characters: walked as they are, not as one value each.
    if let (Some(text), None) = (v.as_str(), &attribute) {
        let mut out = String::with_capacity(fits(text.len(), text.chars().count())?);
        for (i, c) in text.chars().enumerate() {
            if i > 0 {
                out.push_str(&sep);
            }
            out.push(c);
        }
        return Ok(out);
    }
    let parts: Vec<String> = items(&v, "join")?
        .iter()
        .map(|i| match &attribute {
            Some(a) => py_str(&attr_path(i, a)),
            None => py_str(i),
        })
        .collect();
    fits(parts.iter().map(String::len).sum(), parts.len())?;
    Ok(parts.join(&sep))
}

/// Jinja's `unique` as Ansible calls it: case-insensitive unless `case_sensitive`,
/// by `attribute` if given; with unhashable items (dicts, lists) and neither option,
/// Ansible falls back to its own order-keeping, case-sensitive version.
fn unique(v: JValue, rest: Rest<JValue>) -> Result<JValue, Error> {
    let o = Opts::new(rest.0)?;
    let case_sensitive = o.arg(0, "case_sensitive")?;
    let attribute = o
        .arg(1, "attribute")?
        .filter(|a| !a.is_none())
        .map(|a| py_str(&a));
    o.done("unique", 2)?;
    if !matches!(
        v.kind(),
        ValueKind::Seq | ValueKind::Iterable | ValueKind::Map | ValueKind::String
    ) {
        return Err(invalid(format!("'{}' object is not iterable", py_type(&v))));
    }
    let all: Vec<JValue> = v.try_iter()?.collect();
    let fold = !case_sensitive.as_ref().is_some_and(JValue::is_true);
    let key = |x: &JValue| -> JValue {
        let k = match &attribute {
            Some(a) => attr_path(x, a),
            None => x.clone(),
        };
        match k.as_str() {
            Some(s) if fold && k.kind() == ValueKind::String => JValue::from(s.to_lowercase()),
            _ => k,
        }
    };
    let unhashable = all.iter().any(|x| {
        matches!(
            key(x).kind(),
            ValueKind::Map | ValueKind::Seq | ValueKind::Iterable
        )
    });
    if unhashable {
        let explicit_false = case_sensitive.as_ref().is_some_and(|c| !c.is_true());
        if explicit_false || attribute.is_some() {
            return Err(invalid(
                "Jinja2's unique filter failed and we cannot fall back to Ansible's version as it does not support the parameters supplied",
            ));
        }
        return Ok(JValue::from(super::core::distinct(all)));
    }
    let mut seen: Vec<JValue> = Vec::new();
    let mut out = Vec::new();
    for item in all {
        let k = key(&item);
        if !seen.contains(&k) {
            seen.push(k);
            out.push(item);
        }
    }
    Ok(JValue::from(out))
}

/// Jinja's `string`: Python's `str()` (a list as `['a', 1]`, `True`, `None`).
fn string(v: JValue) -> Result<JValue, Error> {
    super::defined(&v)?;
    Ok(if v.kind() == ValueKind::String {
        v
    } else {
        JValue::from(py_display(&v))
    })
}

/// Jinja's `title`: each word (after whitespace, `-`, or an opening bracket) capitalised.
fn title(v: JValue) -> String {
    let s = py_str(&v);
    let mut out = String::with_capacity(s.len());
    let mut start = true;
    for c in s.chars() {
        if c.is_whitespace() || matches!(c, '-' | '(' | '{' | '[' | '<') {
            out.push(c);
            start = true;
        } else if start {
            out.extend(c.to_uppercase());
            start = false;
        } else {
            out.extend(c.to_lowercase());
        }
    }
    out
}

/// Python's `str.replace(old, new, count)`.
fn replace(v: JValue, old: JValue, new: JValue, count: Option<i64>) -> Result<String, Error> {
    let (s, old, new) = (py_str(&v), py_str(&old), py_str(&new));
    let limit = match count {
        Some(n) if n >= 0 => usize::try_from(n).unwrap_or(usize::MAX),
        _ => usize::MAX,
    };
    // An empty `old` matches between every two characters and at both ends, as in
    // Python; the size is known before anything is built.
    let found = if old.is_empty() {
        s.chars().count() + 1
    } else {
        s.matches(old.as_str()).count()
    }
    .min(limit);
    if new.len() > old.len() {
        let growth = found.checked_mul(new.len() - old.len());
        text_fits("replace", growth.and_then(|g| g.checked_add(s.len())))?;
    }
    Ok(s.replacen(&old, &new, limit))
}

/// Python's `str.center(width)`: extra padding goes right for an odd count only when
/// the text is odd-sized, as CPython does it.
fn center(v: JValue, width: Option<usize>) -> Result<String, Error> {
    let s = py_str(&v);
    let width = width.unwrap_or(80);
    let len = s.chars().count();
    if width <= len {
        return Ok(s);
    }
    text_fits("center", (width - len).checked_add(s.len()))?;
    let marg = width - len;
    let left = marg / 2 + (marg & width & 1);
    Ok(format!(
        "{}{s}{}",
        " ".repeat(left),
        " ".repeat(marg - left)
    ))
}

/// Jinja's `filesizeformat(value, binary=False)`.
fn filesizeformat(v: JValue, binary: Option<bool>) -> Result<String, Error> {
    let bytes = f64::try_from(v.clone()).or_else(|_| {
        py_float_text(&py_str(&v)).ok_or_else(|| invalid("filesizeformat: not a number"))
    })?;
    let binary = binary.unwrap_or(false);
    let base: f64 = if binary { 1024.0 } else { 1000.0 };
    let prefixes = if binary {
        ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB"]
    } else {
        ["kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"]
    };
    if bytes == 1.0 {
        return Ok("1 Byte".into());
    }
    if bytes < base {
        return Ok(format!("{} Bytes", bytes as i64));
    }
    let mut unit = base;
    for (i, prefix) in prefixes.iter().enumerate() {
        unit = base.powi(i as i32 + 2);
        if bytes < unit {
            return Ok(format!("{:.1} {prefix}", base * bytes / unit));
        }
    }
    Ok(format!(
        "{:.1} {}",
        base * bytes / unit,
        prefixes.last().copied().unwrap_or("YB")
    ))
}

/// Jinja's `truncate(s, length=255, killwords=False, end='...', leeway=None)`.
fn truncate(v: JValue, rest: Rest<JValue>) -> Result<String, Error> {
    let o = Opts::new(rest.0)?;
    let length = o
        .arg(0, "length")?
        .and_then(|l| l.as_usize())
        .unwrap_or(255);
    let killwords = o.flag(1, "killwords")?;
    let end = o
        .arg(2, "end")?
        .map(|e| py_str(&e))
        .unwrap_or_else(|| "...".into());
    let leeway = o.arg(3, "leeway")?.and_then(|l| l.as_usize()).unwrap_or(5);
    o.done("truncate", 4)?;
    let s = py_str(&v);
    let chars: Vec<char> = s.chars().collect();
    let end_len = end.chars().count();
    if length < end_len {
        return Err(invalid(format!(
            "expected length >= {end_len}, got {length}"
        )));
    }
    if chars.len() <= length + leeway {
        return Ok(s);
    }
    let head: String = chars.iter().take(length - end_len).collect();
    if killwords {
        return Ok(format!("{head}{end}"));
    }
    let cut = head.rsplit_once(' ').map_or("", |(h, _)| h);
    Ok(format!("{cut}{end}"))
}

/// Jinja's `wordwrap(s, width=79, break_long_words=True, wrapstring=None,
/// break_on_hyphens=True)`: Python's textwrap on each paragraph line.
fn wordwrap(v: JValue, rest: Rest<JValue>) -> Result<String, Error> {
    let o = Opts::new(rest.0)?;
    let width = o
        .arg(0, "width")?
        .and_then(|w| w.as_usize())
        .unwrap_or(79)
        .max(1);
    let break_long = o.arg(1, "break_long_words")?.is_none_or(|b| b.is_true());
    let wrapstring = o
        .arg(2, "wrapstring")?
        .filter(|w| !w.is_none())
        .map(|w| py_str(&w))
        .unwrap_or_else(|| "\n".into());
    let _break_on_hyphens = o.arg(3, "break_on_hyphens")?;
    o.done("wordwrap", 4)?;
    let s = py_str(&v);
    let mut lines_out = Vec::new();
    for line in s.split('\n') {
        let mut current = String::new();
        for word in line.split_whitespace() {
            let mut word = word.to_string();
            loop {
                let cur_len = current.chars().count();
                let need = if current.is_empty() { 0 } else { 1 };
                if cur_len + need + word.chars().count() <= width {
                    if !current.is_empty() {
                        current.push(' ');
                    }
                    current.push_str(&word);
                    break;
                }
                if !current.is_empty() {
                    lines_out.push(std::mem::take(&mut current));
                    continue;
                }
                if break_long && word.chars().count() > width {
                    let head: String = word.chars().take(width).collect();
                    word = word.chars().skip(width).collect();
                    lines_out.push(head);
                    continue;
                }
                current = word;
                break;
            }
        }
        if !current.is_empty() {
            lines_out.push(current);
        }
    }
    Ok(lines_out.join(&wrapstring))
}

/// Jinja's `striptags`: tags and comments removed, whitespace collapsed, entities decoded.
fn striptags(v: JValue) -> String {
    let s = py_str(&v);
    let mut out = String::with_capacity(s.len());
    let mut rest = s.as_str();
    while let Some(i) = rest.find('<') {
        out.push_str(rest.get(..i).unwrap_or_default());
        let after = rest.get(i..).unwrap_or_default();
        let close = if after.starts_with("<!--") {
            "-->"
        } else {
            ">"
        };
        match after.find(close) {
            Some(j) => rest = after.get(j + close.len()..).unwrap_or_default(),
            None => {
                out.push_str(after);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    let collapsed = out.split_whitespace().collect::<Vec<_>>().join(" ");
    collapsed
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&#x27;", "'")
        .replace("&amp;", "&")
}

/// Jinja's `wordcount`: the number of words (runs of word characters).
fn wordcount(v: JValue) -> usize {
    let s = py_str(&v);
    let mut count = 0;
    let mut in_word = false;
    for c in s.chars() {
        let w = c.is_alphanumeric() || c == '_';
        if w && !in_word {
            count += 1;
        }
        in_word = w;
    }
    count
}

/// HTML-escapes text as markupsafe does.
fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&#34;")
        .replace('\'', "&#39;")
}

/// Jinja's `xmlattr(d, autospace=True)`: `key="value"` pairs, None and undefined skipped.
fn xmlattr(v: JValue, autospace: Option<bool>) -> Result<String, Error> {
    if v.kind() != ValueKind::Map {
        return Err(invalid("xmlattr: expected a dictionary"));
    }
    let mut parts = Vec::new();
    for k in v.try_iter()? {
        let val = v.get_item(&k)?;
        if val.is_none() || val.is_undefined() {
            continue;
        }
        let key = py_str(&k);
        if key.chars().any(|c| c.is_whitespace() || "/>=".contains(c)) {
            return Err(invalid(format!(
                "Invalid character in attribute name: {key:?}"
            )));
        }
        parts.push(format!(
            "{}=\"{}\"",
            html_escape(&key),
            html_escape(&py_str(&val))
        ));
    }
    let out = parts.join(" ");
    Ok(if autospace.unwrap_or(true) && !out.is_empty() {
        format!(" {out}")
    } else {
        out
    })
}

/// Jinja's `urlize` for the common case: `http(s)://` and `www.` links made anchors.
fn urlize(v: JValue, rest: Rest<JValue>) -> Result<String, Error> {
    let o = Opts::new(rest.0)?;
    let trim = o.arg(0, "trim_url_limit")?.and_then(|t| t.as_usize());
    let nofollow = o.flag(1, "nofollow")?;
    let target = o
        .arg(2, "target")?
        .filter(|t| !t.is_none())
        .map(|t| py_str(&t));
    let rel = o
        .arg(3, "rel")?
        .filter(|t| !t.is_none())
        .map(|t| py_str(&t));
    let _extra = o.arg(4, "extra_schemes")?;
    o.done("urlize", 5)?;
    let s = py_str(&v);
    let mut rel_words: Vec<String> = rel
        .map(|r| r.split_whitespace().map(str::to_string).collect())
        .unwrap_or_default();
    if nofollow {
        rel_words.push("nofollow".into());
    }
    rel_words.push("noopener".into());
    rel_words.sort();
    rel_words.dedup();
    let rel_attr = format!(" rel=\"{}\"", html_escape(&rel_words.join(" ")));
    let target_attr = target
        .map(|t| format!(" target=\"{}\"", html_escape(&t)))
        .unwrap_or_default();
    let mut out = Vec::new();
    for word in s.split(' ') {
        let core = word.trim_end_matches(['.', ',', ')', '>', '\n', '&']);
        let tail = word.get(core.len()..).unwrap_or_default();
        let href = if core.starts_with("http://") || core.starts_with("https://") {
            Some(core.to_string())
        } else if core.starts_with("www.") {
            Some(format!("https://{core}"))
        } else {
            None
        };
        match href {
            Some(h) => {
                let shown: String = match trim {
                    Some(n) if core.chars().count() > n => {
                        format!("{}...", core.chars().take(n).collect::<String>())
                    }
                    _ => core.to_string(),
                };
                out.push(format!(
                    "<a href=\"{}\"{rel_attr}{target_attr}>{}</a>{}",
                    html_escape(&h),
                    html_escape(&shown),
                    html_escape(tail)
                ));
            }
            None => out.push(html_escape(word)),
        }
    }
    Ok(out.join(" "))
}

/// Jinja's `pprint`: Python's `pprint.pformat` (its `repr` for values that fit a line),
/// which sorts dicts' keys.
fn pprint(v: JValue) -> String {
    match super::to_json(&v, "pprint") {
        Ok(json) => {
            crate::template::py_repr_of(&JValue::from_serialize(crate::template::sort_keys(&json)))
        }
        Err(_) => crate::template::py_repr_of(&v),
    }
}

/// Jinja's `tojson(value, indent=None)`: JSON with `<`, `>`, `&` and `'` escaped, so the
/// text is safe inside HTML and single-quoted shell strings; keys sorted, as Jinja's
/// default `json.dumps_kwargs` say.
fn tojson(v: JValue, indent: Option<usize>) -> Result<String, Error> {
    let json = crate::template::sort_keys(&super::to_json(&v, "tojson")?);
    let mut out = String::new();
    let mut style = crate::template::JsonStyle::python(indent);
    style.ensure_ascii = false;
    crate::template::py_json_styled(&json, &style, 0, &mut out);
    Ok(out
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
        .replace('\'', "\\u0027"))
}

/// Jinja's `sort(value, reverse=False, case_sensitive=False, attribute=None)`, also
/// with positional arguments.
fn sort(v: JValue, rest: Rest<JValue>) -> Result<JValue, Error> {
    let o = Opts::new(rest.0)?;
    let reverse = o.flag(0, "reverse")?;
    let case_sensitive = o.flag(1, "case_sensitive")?;
    let attribute = o
        .arg(2, "attribute")?
        .filter(|a| !a.is_none())
        .map(|a| py_str(&a));
    o.done("sort", 3)?;
    super::defined(&v)?;
    let mut all = items(&v, "sort")?;
    let keys: Vec<String> = attribute
        .map(|a| {
            a.split(',')
                .map(|k| k.trim().to_string())
                .filter(|k| !k.is_empty())
                .collect()
        })
        .unwrap_or_default();
    let key = |x: &JValue| -> JValue {
        match keys.as_slice() {
            [] => x.clone(),
            [one] => attr_path(x, one),
            many => JValue::from(many.iter().map(|k| attr_path(x, k)).collect::<Vec<_>>()),
        }
    };
    let mut err = None;
    all.sort_by(|a, b| match py_cmp(&key(a), &key(b), case_sensitive) {
        Ok(o) => o,
        Err(e) => {
            err.get_or_insert(e);
            std::cmp::Ordering::Equal
        }
    });
    if let Some(e) = err {
        return Err(e);
    }
    if reverse {
        all.reverse();
    }
    Ok(JValue::from(all))
}

/// The error Ansible gives for a test or filter name its plugin loader cannot find
/// (`JinjaPluginIntercept.__getitem__`): the loader's `KeyError` after "Could not load".
/// A short name is looked up as `ansible.builtin.NAME`, and one that is not a well-formed
/// collection reference (`ns.coll.name`, word characters only) is refused as such.
pub(crate) fn could_not_load(name: &str) -> String {
    let key = if name.contains('.') {
        name.to_string()
    } else {
        format!("ansible.builtin.{name}")
    };
    let parts: Vec<&str> = key.split('.').collect();
    let well_formed = parts.len() >= 3
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_alphanumeric() || c == '_'));
    let reason = if well_formed {
        name.to_string()
    } else {
        format!("invalid plugin name: {key}")
    };
    format!("TemplateSyntaxError: Could not load \"{name}\": '{reason}'")
}

/// `select`/`reject`/`selectattr`/`rejectattr` name their test as text, which Jinja2
/// looks up through Ansible's plugin loader: an unknown name fails with the loader's
/// message (minijinja's says only "unknown test").
fn known_test(state: &State, name: Option<&str>) -> Result<(), Error> {
    let Some(name) = name else {
        return Ok(());
    };
    match state.perform_test(name, &[]) {
        Err(e) if e.kind() == ErrorKind::UnknownTest => Err(invalid(could_not_load(name))),
        _ => Ok(()),
    }
}

fn register_select_family(env: &mut Environment<'static>) {
    use minijinja::filters as builtin;
    use std::borrow::Cow;
    env.add_filter(
        "select",
        |state: &State, v: JValue, test: Option<Cow<'_, str>>, rest: Rest<JValue>| {
            known_test(state, test.as_deref())?;
            builtin::select(state, v, test, rest)
        },
    );
    env.add_filter(
        "reject",
        |state: &State, v: JValue, test: Option<Cow<'_, str>>, rest: Rest<JValue>| {
            known_test(state, test.as_deref())?;
            builtin::reject(state, v, test, rest)
        },
    );
    env.add_filter(
        "selectattr",
        |state: &State,
         v: JValue,
         attr: Cow<'_, str>,
         test: Option<Cow<'_, str>>,
         rest: Rest<JValue>| {
            known_test(state, test.as_deref())?;
            builtin::selectattr(state, v, attr, test, rest)
        },
    );
    env.add_filter(
        "rejectattr",
        |state: &State,
         v: JValue,
         attr: Cow<'_, str>,
         test: Option<Cow<'_, str>>,
         rest: Rest<JValue>| {
            known_test(state, test.as_deref())?;
            builtin::rejectattr(state, v, attr, test, rest)
        },
    );
}

/// Jinja2's `format`: `value % args` with Python's `%` (minijinja's `format` has no
/// `%r`), the keyword arguments as a mapping when given; not both.
fn format(v: JValue, rest: Rest<JValue>) -> Result<JValue, Error> {
    let mut args = rest.0;
    let kwargs = args
        .last()
        .is_some_and(JValue::is_kwargs)
        .then(|| args.pop());
    let operand = match kwargs.flatten() {
        Some(_) if !args.is_empty() => {
            return Err(invalid(
                "can't handle positional and keyword arguments at the same time",
            ));
        }
        Some(kw) => kw,
        None => JValue::from(args),
    };
    let fmt = if v.kind() == minijinja::value::ValueKind::String {
        v.as_str().unwrap_or_default().to_string()
    } else {
        crate::template::py_display(&v)
    };
    crate::pyformat::format(&fmt, &operand).map(JValue::from)
}

/// Registers the Jinja2 built-ins that differ from minijinja's, and those it lacks.
pub(crate) fn register(env: &mut Environment<'static>) {
    register_select_family(env);
    add_filters(
        env,
        &[
            ("format", |a| split(a).and_then(|(v, r)| format(v, r))),
            ("int", |a| split(a).and_then(|(v, r)| int(v, r))),
            ("float", |a| split(a).and_then(|(v, r)| float(v, r))),
            ("round", |a| split(a).and_then(|(v, r)| round(v, r))),
            ("min", |a| split(a).and_then(|(v, r)| min_max(v, r, false))),
            ("max", |a| split(a).and_then(|(v, r)| min_max(v, r, true))),
            ("sum", |a| split(a).and_then(|(v, r)| sum(v, r))),
            ("join", |a| {
                split(a).and_then(|(v, r)| join(v, r)).map(JValue::from)
            }),
            ("unique", |a| split(a).and_then(|(v, r)| unique(v, r))),
            ("string", |a| string(only(a, "string")?.clone())),
            ("title", |a| {
                Ok(JValue::from(title(only(a, "title")?.clone())))
            }),
            ("replace", |a| {
                let (v, o) = opts(a)?;
                let old = o.req(0, "old", "replace")?;
                let new = o.req(1, "new", "replace")?;
                let count = o.arg(2, "count")?.and_then(|c| c.as_i64());
                o.done("replace", 3)?;
                replace(v, old, new, count).map(JValue::from)
            }),
            ("center", |a| {
                let (v, o) = opts(a)?;
                let width = o.arg(0, "width")?.and_then(|w| w.as_usize());
                o.done("center", 1)?;
                center(v, width).map(JValue::from)
            }),
            ("filesizeformat", |a| {
                let (v, o) = opts(a)?;
                let binary = o.flag(0, "binary")?;
                o.done("filesizeformat", 1)?;
                filesizeformat(v, Some(binary)).map(JValue::from)
            }),
            ("truncate", |a| {
                split(a).and_then(|(v, r)| truncate(v, r)).map(JValue::from)
            }),
            ("wordwrap", |a| {
                split(a).and_then(|(v, r)| wordwrap(v, r)).map(JValue::from)
            }),
            ("striptags", |a| {
                Ok(JValue::from(striptags(only(a, "striptags")?.clone())))
            }),
            ("wordcount", |a| {
                Ok(JValue::from(wordcount(only(a, "wordcount")?.clone())))
            }),
            ("xmlattr", |a| {
                let (v, o) = opts(a)?;
                let autospace = o.arg(0, "autospace")?.map(|x| x.is_true());
                o.done("xmlattr", 1)?;
                xmlattr(v, autospace).map(JValue::from)
            }),
            ("urlize", |a| {
                split(a).and_then(|(v, r)| urlize(v, r)).map(JValue::from)
            }),
            ("forceescape", |a| {
                Ok(JValue::from(html_escape(&only_str(a, "forceescape")?)))
            }),
            ("pprint", |a| {
                Ok(JValue::from(pprint(only(a, "pprint")?.clone())))
            }),
            ("tojson", |a| {
                let (v, o) = opts(a)?;
                let indent = o.arg(0, "indent")?.and_then(|i| i.as_usize());
                o.done("tojson", 1)?;
                tojson(v, indent).map(JValue::from)
            }),
            ("sort", |a| split(a).and_then(|(v, r)| sort(v, r))),
        ],
    );
}

#[cfg(test)]
mod tests {
    use super::super::check::{errors, table};
    use serde_json::json;

    #[test]
    fn format_is_pythons_percent_operator() {
        // ansible-core 2.18.19 gives these (its `undefined` target checks the repr).
        table(
            &json!({}),
            &[
                (r#""%r" | format("x")"#, r#""'x'""#),
                (r#""%s-%s" | format("a", 2)"#, r#""a-2""#),
                (r#""%(x)s" | format(x=1)"#, r#""1""#),
                (r#""%5.1f" | format(3.14159)"#, r#""  3.1""#),
                (r#""%s" | format([1, 2])"#, r#""[1, 2]""#),
                (
                    r#"("%r" | format(nope)).startswith("AnsibleUndefined")"#,
                    "true",
                ),
            ],
        );
    }

    #[test]
    fn chained_joins_are_bounded_not_a_runner_abort() {
        // Found by the template fuzz target: each join of a string puts the separator
        // between its characters, so three joins with 100-character separators ask for
        // gigabytes, and the runner aborted on the failed allocation.
        let sep = "V".repeat(100);
        let expr = format!("('abcdefghij' * 100) | join('{sep}') | join('{sep}') | join('{sep}')");
        errors(
            &json!({}),
            &[(&expr, "join: the result would be longer than 64 MiB")],
        );
    }

    #[test]
    fn text_multiplying_filters_are_bounded_before_they_build() {
        // Each of these asks for gigabytes (or more than memory can address) from a
        // short template; without a bound the runner aborts on the failed allocation
        // (the template fuzz target found the regex_replace chain). Each is refused
        // with the filter's name before anything is built.
        let rep = |n: usize| "\\g<0>".repeat(n);
        // 100 bytes to 100 KB (fits), then to 100 MB.
        let chained = format!(
            "('abcdefghij' * 10) | regex_replace('.+', '{0}') | regex_replace('.+', '{0}')",
            rep(1000),
        );
        let replaced = "('x' * 10000) | replace('x', 'V' * 10000)";
        errors(
            &json!({}),
            &[
                (
                    &chained,
                    "regex_replace: the result would be longer than 64 MiB",
                ),
                (replaced, "replace: the result would be longer than 64 MiB"),
                (
                    "'x' | center(1000000000000)",
                    "center: the result would be longer",
                ),
                (
                    "'x' | comment(prefix_count=100000000000)",
                    "comment: the result would be longer",
                ),
                (
                    "range(30) | list | permutations",
                    "permutations: the result would have more than",
                ),
                (
                    "range(60) | list | combinations(30)",
                    "combinations: the result would have more than",
                ),
                (
                    "[1, 2] | product(repeat=64)",
                    "product: the result would have more than",
                ),
            ],
        );
        // What fits still works, to the byte.
        let small = json!({});
        table(
            &small,
            &[
                (r#""ab" | regex_replace("(.)", "\\1\\1-")"#, r#""aa-bb-""#),
                (r#""abc" | replace("", "-")"#, r#""-a-b-c-""#),
                (r#""aXbX" | replace("X", "yy", 1)"#, r#""ayybX""#),
                (r#""x" | center(5)"#, r#""  x  ""#),
                ("[1, 2, 3] | combinations(2) | list | length", "3"),
                ("[1, 2, 3] | permutations | list | length", "6"),
                ("[1, 2] | product(repeat=3) | list | length", "8"),
            ],
        );
    }

    #[test]
    fn many_results_that_each_fit_cannot_add_up_past_the_render_budget() {
        // Nine 60 MiB strings, each under the per-call bound, are more than one render
        // may build through filters in all.
        let one = "(('x' * 1000) | replace('x', 'y' * 60000))";
        let expr = format!("[{}] | length", [one; 9].join(", "));
        errors(
            &json!({}),
            &[(&expr, "filters have built more than 512 MiB in all")],
        );
    }

    #[test]
    fn each_render_has_a_budget_of_its_own() {
        // Five 60 MiB results fit one render's budget; so they do in the next render,
        // which does not inherit what the first spent.
        let one = "(('x' * 1000) | replace('x', 'y' * 60000))";
        let expr = format!("[{}] | length", [one; 5].join(", "));
        table(&json!({}), &[(&expr, "5"), (&expr, "5")]);
    }

    #[test]
    fn chained_regex_replace_and_join_are_bounded_not_a_runner_abort() {
        // The second fuzzing round's open finding: regex_replace and join feeding each
        // other multiply the text; each result is a new string until an allocation
        // fails and the runner aborts. Now a result past the bound is an error.
        let expr =
            "('ab' * 50) | join('z' * 1000) | regex_replace('', 'y' * 1000) | join('z' * 1000)";
        errors(
            &json!({}),
            &[(
                expr,
                "regex_replace: the result would be longer than 64 MiB",
            )],
        );
        // Any filter's result is measured, whatever it is.
        for (expr, want) in [
            (
                "[('x' * 34000000), ('y' * 34000000)] | to_json",
                "to_json: the result would hold more than 64 MiB",
            ),
            (
                "[('x' * 34000000), ('y' * 34000000)] | unique",
                "unique: the result would hold more than 64 MiB",
            ),
        ] {
            errors(&json!({}), &[(expr, want)]);
        }
    }

    // Expected values: ansible-core 2.18.19 (ansible 11.13.0, with netaddr 1.3.0 and
    // jmespath 1.1.0 for the collections), each expression evaluated as
    //   init_plugin_loader(); Templar(loader=DataLoader(), variables={'nl': '\n'})
    //       .template('{{ (EXPR) | to_json }}')
    // and an error's text matched by the part of Ansible's message shown.
    #[test]
    fn jinja_builtins_behave_as_jinja2_under_ansible() {
        let vars = json!({"nl": "\n"});
        table(
            &vars,
            &[
                (r#""1"|int"#, r#"1"#),
                (r#""1.5"|int"#, r#"1"#),
                (r#""abc"|int"#, r#"0"#),
                (r#""0x1A"|int(base=16)"#, r#"26"#),
                (r#""0x1A"|int(0, 0)"#, r#"26"#),
                (r#"" 12 "|int"#, r#"12"#),
                (r#""1_000"|int"#, r#"1000"#),
                (r#"1.9|int"#, r#"1"#),
                (r#"none|int"#, r#"0"#),
                (r#""abc"|float"#, r#"0.0"#),
                (r#""1.5"|float"#, r#"1.5"#),
                (r#"" 2 "|float"#, r#"2.0"#),
                (r#"3|float"#, r#"3.0"#),
                (r#"2.5|round"#, r#"2.0"#),
                (r#"3.5|round"#, r#"4.0"#),
                (r#"2.675|round(2)"#, r#"2.67"#),
                (r#"5|round"#, r#"5"#),
                (r#"1234.5|round(-2)"#, r#"1200.0"#),
                (r#"2.1|round(0, 'ceil')"#, r#"3.0"#),
                (r#"[1,2]|string"#, r#""[1, 2]""#),
                (r#"{'a': 'b'}|string"#, r#""{'a': 'b'}""#),
                (r#"true|string"#, r#""True""#),
                (r#"none|string"#, r#""None""#),
                (r#"[3,1,2]|min"#, r#"1"#),
                (r#"['b','A','c']|max"#, r#""c""#),
                (r#"[{'a':3},{'a':1}]|min(attribute='a')"#, r#"{"a": 1}"#),
                (r#"[1,2,3]|sum"#, r#"6"#),
                (r#"[{'a':3},{'a':1}]|sum(attribute='a')"#, r#"4"#),
                (r#"[[1],[2]]|sum(start=[])"#, r#"[1, 2]"#),
                (r#"[1,'a',none,true]|join(',')"#, r#""1,a,None,True""#),
                (r#"'abc'|join('-')"#, r#""a-b-c""#),
                (
                    r#"[{'n':'x'},{'n':'y'}]|join('-', attribute='n')"#,
                    r#""x-y""#,
                ),
                (r#"[1,2,3,4,4,3,2,1]|unique"#, r#"[1, 2, 3, 4]"#),
                (r#"["a", "b", "A", "B"]|unique"#, r#"["a", "b"]"#),
                (
                    r#"["a", "b", "A", "B"]|unique(case_sensitive=True)"#,
                    r#"["a", "b", "A", "B"]"#,
                ),
                (
                    r#"[{"foo": "bar", "moo": "cow"}, {"foo": "bar", "moo": "cow"}, {"haha": "bar", "moo": "mar"}]|unique"#,
                    r#"[{"foo": "bar", "moo": "cow"}, {"haha": "bar", "moo": "mar"}]"#,
                ),
                (
                    r#"[{"foo": "bar", "moo": "cow"}, {"foo": "bar", "moo": "mar"}]|unique(attribute="foo")"#,
                    r#"[{"foo": "bar", "moo": "cow"}]"#,
                ),
                (
                    r#"{"foo": "bar", "moo": "cow"}|unique"#,
                    r#"["foo", "moo"]"#,
                ),
                (r#""foo"|unique|sort|join"#, r#""fo""#),
                (
                    r#""hello world-foo (bar) they're"|title"#,
                    r#""Hello World-Foo (Bar) They're""#,
                ),
                (r#""hello"|capitalize"#, r#""Hello""#),
                (r#""aaa"|replace("a", "b", 2)"#, r#""bba""#),
                (r#""ab"|center(7)"#, r#""   ab  ""#),
                (r#""abc"|center(8)"#, r#""  abc   ""#),
                (r#"1000|filesizeformat"#, r#""1.0 kB""#),
                (r#"1|filesizeformat"#, r#""1 Byte""#),
                (r#"123456789|filesizeformat"#, r#""123.5 MB""#),
                (r#"123456789|filesizeformat(true)"#, r#""117.7 MiB""#),
                (
                    r#""Joel is a slug and more words here that goes on"|truncate(20)"#,
                    r#""Joel is a slug...""#,
                ),
                (
                    r#""Joel is a slug and more words here that goes on"|truncate(20, True)"#,
                    r#""Joel is a slug an...""#,
                ),
                (
                    r#""a b c d e f g h i j k"|wordwrap(5)"#,
                    r#""a b c\nd e f\ng h i\nj k""#,
                ),
                (
                    r#""<b>hi</b>  there &amp; <!-- c -->x"|striptags"#,
                    r#""hi there & x""#,
                ),
                (r#""hello world, foo_bar"|wordcount"#, r#"3"#),
                (
                    r#"{'class': 'x', 'id': none, 'data': 'a<b'}|xmlattr"#,
                    r#"" class=\"x\" data=\"a&lt;b\"""#,
                ),
                (r#""<&>"|forceescape"#, r#""&lt;&amp;&gt;""#),
                (r#"'abc'|pprint"#, r#""'abc'""#),
                (r#"[1,'a']|pprint"#, r#""[1, 'a']""#),
                (r#"{'a':[1,2]}|tojson"#, r#""{\"a\": [1, 2]}""#),
                (
                    r#"{'a':"<'&>"}|tojson"#,
                    r#""{\"a\": \"\\u003c\\u0027\\u0026\\u003e\"}""#,
                ),
                (r#"[3,1,2]|sort"#, r#"[1, 2, 3]"#),
                (r#"[3,1,2]|sort(true)"#, r#"[3, 2, 1]"#),
                (r#"['b','A','c']|sort"#, r#"["A", "b", "c"]"#),
                (
                    r#"['b','A','c']|sort(case_sensitive=True)"#,
                    r#"["A", "b", "c"]"#,
                ),
                (
                    r#"[{'a':3},{'a':1}]|sort(attribute='a')"#,
                    r#"[{"a": 1}, {"a": 3}]"#,
                ),
                (r#""%s-%d"|format("a", 3)"#, r#""a-3""#),
                (r#"[1,2,3]|batch(2)|list"#, r#"[[1, 2], [3]]"#),
                (r#"[1,2,3]|slice(2)|list"#, r#"[[1, 2], [3]]"#),
                (r#"{'b':1,'a':2}|dictsort"#, r#"[["a", 2], ["b", 1]]"#),
                (
                    r#"[{'a':1,'b':2},{'a':1,'b':3},{'a':2,'b':4}]|groupby('a')"#,
                    r#"[[1, [{"a": 1, "b": 2}, {"a": 1, "b": 3}]], [2, [{"a": 2, "b": 4}]]]"#,
                ),
                (r#""a b"|urlencode"#, r#""a%20b""#),
                (r#"{'a': 'b c', 'd': 'é'}|urlencode"#, r#""a=b+c&d=%C3%A9""#),
                // A dict keeps the order it was written in, as Python's does (filter_urls).
                (
                    r#"{'foo': 'bar', 'baz': 'buz'}|urlencode"#,
                    r#""foo=bar&baz=buz""#,
                ),
                (r#"[['a','b'],['c','d']]|urlencode"#, r#""a=b&c=d""#),
                (r#""a+b%20c%C3%A9"|urldecode"#, r#""a b cé""#),
                (r#""  a  "|trim"#, r#""a""#),
                (r#""x"|indent(2)"#, r#""x""#),
                (r#"[1,[2,[3]]]|flatten"#, r#"[1, 2, 3]"#),
                (r#"[1,[2,[3]]]|flatten(1)"#, r#"[1, 2, [3]]"#),
                (r#"[1,none,'None','null',[2]]|flatten"#, r#"[1, 2]"#),
                (
                    r#"[1,none,[2]]|flatten(skip_nulls=False)"#,
                    r#"[1, null, 2]"#,
                ),
            ],
        );
        errors(
            &vars,
            &[
                (r#"True|unique"#, "'bool' object is not iterable"),
                (
                    r#"[{"foo": "bar", "moo": "cow"}]|unique(case_sensitive=False)"#,
                    "Jinja2's unique filter failed and we cannot fall back to Ansible's version as it does not support the parameters supplied",
                ),
            ],
        );
    }
}
