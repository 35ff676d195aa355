//! The `sequence` lookup: numbers from `start=`, `end=` or `count=`, `stride=`, formatted
//! with a printf-style `format=`, or the shortcut `[start-]end[/stride][:format]`, with
//! ansible-core 2.18's option checking and messages.

use super::{LookupError, Scope, kv, py_repr, py_type};
use crate::plan::Vars;
use serde_json::Value;

/// The most numbers one sequence may hold: Ansible sets no limit, but a runner that
/// tried to hold `count=10000000000` strings would be killed for its memory.
const MAX_ITEMS: i128 = 1 << 24;

/// The options, in the order Ansible checks them.
const FIELDS: [&str; 5] = ["start", "end", "stride", "count", "format"];

#[derive(Debug, Clone)]
struct Options {
    start: i128,
    end: Option<i128>,
    stride: i128,
    count: Option<i128>,
    format: String,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            start: 1,
            end: None,
            stride: 1,
            count: None,
            format: "%d".to_string(),
        }
    }
}

/// Ansible's `ensure_type(value, 'integer')`: a number, or text Python's `Decimal`
/// reads as a whole number (`0600` is 600, `2.0` is 2, `0x10` is not a number).
fn integer(field: &str, v: &Value) -> Result<i128, LookupError> {
    let invalid = |detail: String| {
        LookupError::Options(format!(
            "Invalid type for configuration option plugin_type: lookup plugin: sequence \
             setting: {field} (from Direct): {detail}"
        ))
    };
    match v {
        Value::Number(n) => match n.as_i64() {
            Some(i) => Ok(i128::from(i)),
            None => Err(invalid(String::new())),
        },
        Value::Bool(b) => Ok(i128::from(*b)),
        Value::String(s) => match decimal(s) {
            Some(Decimal::Whole(i)) => Ok(i),
            Some(Decimal::Fraction) => Err(invalid(format!(
                "Invalid type provided for \"int\": {}",
                py_repr(v)
            ))),
            None => Err(invalid(String::new())),
        },
        _ => Err(invalid(String::new())),
    }
}

enum Decimal {
    Whole(i128),
    Fraction,
}

/// Python's `Decimal(text)` for finite numbers: sign, digits (underscores between them),
/// an optional fraction and exponent, surrounding whitespace ignored.
fn decimal(text: &str) -> Option<Decimal> {
    let t = text.trim();
    let (negative, t) = match t.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, t.strip_prefix('+').unwrap_or(t)),
    };
    let (mantissa, exponent) = match t.find(['e', 'E']) {
        Some(i) => (t.get(..i)?, t.get(i + 1..)?.parse::<i32>().ok()?),
        None => (t, 0),
    };
    let (whole, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits_ok = |s: &str| {
        !s.starts_with('_')
            && !s.ends_with('_')
            && !s.contains("__")
            && s.chars().all(|c| c.is_ascii_digit() || c == '_')
    };
    if whole.is_empty() && frac.is_empty() || !digits_ok(whole) || !digits_ok(frac) {
        return None;
    }
    let mut digits: String = whole.chars().filter(char::is_ascii_digit).collect();
    let frac: String = frac.chars().filter(char::is_ascii_digit).collect();
    digits.push_str(&frac);
    let scale = exponent.checked_sub(i32::try_from(frac.len()).ok()?)?;
    let value: i128 = if scale >= 0 {
        let factor = 10i128.checked_pow(u32::try_from(scale).ok()?)?;
        digits.parse::<i128>().ok()?.checked_mul(factor)?
    } else {
        let cut = usize::try_from(scale.unsigned_abs()).ok()?;
        let keep = digits.len().saturating_sub(cut);
        let (int_part, rest) = digits.split_at(keep);
        if rest.chars().any(|c| c != '0') {
            return Some(Decimal::Fraction);
        }
        if int_part.is_empty() {
            0
        } else {
            int_part.parse().ok()?
        }
    };
    Some(Decimal::Whole(if negative { -value } else { value }))
}

impl Options {
    fn set(&mut self, field: &str, v: &Value) -> Result<(), LookupError> {
        match field {
            "start" => self.start = integer(field, v)?,
            "end" => self.end = Some(integer(field, v)?),
            "stride" => self.stride = integer(field, v)?,
            "count" => self.count = Some(integer(field, v)?),
            _ => {
                self.format = match v {
                    Value::String(s) => s.clone(),
                    other => super::py_str(other),
                }
            }
        }
        Ok(())
    }
}

/// The shortcut form: `[start-]end[/stride][:format]`, numbers as `0?x?[0-9a-f]+`.
fn shortcut(term: &str) -> Option<Vec<(&'static str, String)>> {
    fn number(s: &str) -> Option<(&str, &str)> {
        let mut i = 0;
        let b = s.as_bytes();
        if b.get(i) == Some(&b'0') && matches!(b.get(i + 1), Some(b'x' | b'X')) {
            i += 2;
        } else if matches!(b.first(), Some(b'x' | b'X')) {
            i += 1;
        }
        let digits = b
            .get(i..)?
            .iter()
            .take_while(|c| c.is_ascii_hexdigit())
            .count();
        if digits == 0 {
            // `0?x?` may have eaten a `0` that the hex digits need: "0" alone.
            if i > 0 && s.starts_with('0') {
                return number_plain(s);
            }
            return None;
        }
        Some((s.get(..i + digits)?, s.get(i + digits..)?))
    }
    fn number_plain(s: &str) -> Option<(&str, &str)> {
        let n = s.bytes().take_while(u8::is_ascii_hexdigit).count();
        (n > 0).then(|| (s.get(..n).unwrap_or(""), s.get(n..).unwrap_or("")))
    }
    let mut out = Vec::new();
    let (first, rest) = number(term)?;
    let rest = match rest.strip_prefix('-') {
        Some(after) => {
            let (end, rest) = number(after)?;
            out.push(("start", first.to_string()));
            out.push(("end", end.to_string()));
            rest
        }
        None => {
            out.push(("end", first.to_string()));
            rest
        }
    };
    let rest = match rest.strip_prefix('/') {
        Some(after) => {
            let (stride, rest) = number(after)?;
            out.push(("stride", stride.to_string()));
            rest
        }
        None => rest,
    };
    match rest.strip_prefix(':') {
        Some(format) if !format.is_empty() && !format.contains('\n') => {
            out.push(("format", format.to_string()));
        }
        _ if rest.is_empty() => {}
        _ => return None,
    }
    Some(out)
}

/// The lookup: every term is one sequence, the options given as keyword arguments are
/// the defaults each term starts from.
pub(super) fn run(terms: &Value, kwargs: &Vars, _: &Scope) -> Result<Vec<Value>, LookupError> {
    let terms = match terms {
        Value::Array(items) => items.clone(),
        Value::Object(map) => map.keys().map(|k| Value::String(k.clone())).collect(),
        other => vec![other.clone()],
    };
    let mut out = Vec::new();
    for term in &terms {
        let mut o = Options::default();
        for field in FIELDS {
            if let Some(v) = kwargs.get(field).filter(|v| !v.is_null()) {
                o.set(field, v)?;
            }
        }
        let Value::String(text) = term else {
            return Err(LookupError::ansible(format!(
                "unknown error parsing with_sequence arguments: {}. Error was: expected \
                 string or bytes-like object, got '{}'",
                py_repr(term),
                py_type(term)
            )));
        };
        match shortcut(text) {
            Some(fields) => {
                for (field, v) in fields {
                    o.set(field, &Value::String(v))?;
                }
            }
            None => {
                let mut args = kv::parse_kv(text).map_err(LookupError::ansible)?;
                for field in FIELDS {
                    if let Some(v) = args.shift_remove(field) {
                        o.set(field, &v)?;
                    }
                }
                if !args.is_empty() {
                    let names: Vec<String> = args
                        .keys()
                        .map(|k| py_repr(&Value::String(k.clone())))
                        .collect();
                    return Err(LookupError::ansible(format!(
                        "unrecognized arguments to with_sequence: [{}]",
                        names.join(", ")
                    )));
                }
            }
        }
        out.extend(generate(o)?);
    }
    Ok(out)
}

/// Checks the options as Ansible's `sanity_check` does and makes the numbers.
fn generate(mut o: Options) -> Result<Vec<Value>, LookupError> {
    let too_large = || {
        LookupError::ansible(format!(
            "the sequence would hold more than {MAX_ITEMS} items, rustle-deploy's limit"
        ))
    };
    let end = match (o.count, o.end) {
        (None, None) => {
            return Err(LookupError::ansible(
                "must specify count or end in with_sequence",
            ));
        }
        (Some(_), Some(_)) => {
            return Err(LookupError::ansible(
                "can't specify both count and end in with_sequence",
            ));
        }
        (Some(0), None) => {
            o.start = 0;
            o.stride = 0;
            0
        }
        // Ansible's arithmetic, including what it gives for a negative stride.
        (Some(count), None) => count
            .checked_mul(o.stride)
            .and_then(|n| n.checked_add(o.start))
            .and_then(|n| n.checked_sub(1))
            .ok_or_else(too_large)?,
        (None, Some(end)) => end,
    };
    if o.stride > 0 && end < o.start {
        return Err(LookupError::ansible(
            "to count backwards make stride negative",
        ));
    }
    if o.stride < 0 && end > o.start {
        return Err(LookupError::ansible(
            "to count forward don't make stride negative",
        ));
    }
    if o.format.matches('%').count() != 1 {
        return Err(LookupError::ansible(format!(
            "bad formatting string: {}",
            o.format
        )));
    }
    if o.stride == 0 {
        return Ok(Vec::new());
    }
    // Python's range(start, end + 1, stride), or end - 1 counting down.
    let stop = end.checked_add(o.stride.signum()).ok_or_else(too_large)?;
    let span = stop.checked_sub(o.start).ok_or_else(too_large)?;
    let len = span
        .checked_add(o.stride - o.stride.signum())
        .map(|n| n / o.stride)
        .ok_or_else(too_large)?;
    if len > MAX_ITEMS {
        return Err(too_large());
    }
    let mut out = Vec::new();
    let mut i = o.start;
    for _ in 0..len {
        out.push(Value::String(percent_format(&o.format, i)?));
        i += o.stride;
    }
    Ok(out)
}

/// `format % i`: Python's printf-style formatting of one integer, for a format with one
/// `%` conversion (the caller checked there is exactly one `%`).
fn percent_format(format: &str, i: i128) -> Result<String, LookupError> {
    let problem = || {
        LookupError::ansible(format!(
            "problem formatting {i} with {}",
            py_repr(&Value::String(format.to_string()))
        ))
    };
    let (before, spec) = format.split_once('%').ok_or_else(problem)?;
    let mut chars = spec.char_indices().peekable();
    let (mut left, mut zero, mut plus, mut space, mut alt) = (false, false, false, false, false);
    while let Some((_, c)) = chars.peek().copied() {
        match c {
            '-' => left = true,
            '0' => zero = true,
            '+' => plus = true,
            ' ' => space = true,
            '#' => alt = true,
            _ => break,
        }
        chars.next();
    }
    let mut width = String::new();
    while let Some((_, c)) = chars.peek().copied().filter(|(_, c)| c.is_ascii_digit()) {
        width.push(c);
        chars.next();
    }
    let mut precision: Option<usize> = None;
    if chars.peek().is_some_and(|(_, c)| *c == '.') {
        chars.next();
        let mut p = String::new();
        while let Some((_, c)) = chars.peek().copied().filter(|(_, c)| c.is_ascii_digit()) {
            p.push(c);
            chars.next();
        }
        precision = Some(p.parse().unwrap_or(0));
    }
    // Python accepts and ignores C's length modifiers.
    while chars
        .peek()
        .is_some_and(|(_, c)| matches!(c, 'h' | 'l' | 'L'))
    {
        chars.next();
    }
    let (conv_at, conv) = chars.next().ok_or_else(problem)?;
    let after = spec.get(conv_at + conv.len_utf8()..).unwrap_or_default();
    let width: usize = width.parse().unwrap_or(0);
    let negative = i < 0;
    let magnitude = i.unsigned_abs();
    let (prefix, body) = match conv {
        'd' | 'i' | 'u' => ("", magnitude.to_string()),
        'o' => (if alt { "0o" } else { "" }, format!("{magnitude:o}")),
        'x' => (if alt { "0x" } else { "" }, format!("{magnitude:x}")),
        'X' => (if alt { "0X" } else { "" }, format!("{magnitude:X}")),
        'e' | 'E' | 'f' | 'F' | 'g' | 'G' => {
            // Sequence numbers are small integers: exact as floats.
            #[allow(clippy::cast_precision_loss)]
            let f = magnitude as f64;
            ("", float_format(f, conv, precision, alt))
        }
        's' | 'r' | 'a' => {
            let mut s = i.to_string();
            if let Some(p) = precision {
                s = s.chars().take(p).collect();
            }
            return Ok(format!("{before}{}{after}", pad(&s, width, left)));
        }
        'c' => {
            if !(0..0x11_0000).contains(&i) {
                return Err(LookupError::ansible(
                    "unknown error generating sequence: %c arg not in range(0x110000)",
                ));
            }
            let c = u32::try_from(i)
                .ok()
                .and_then(char::from_u32)
                .ok_or_else(problem)?;
            return Ok(format!(
                "{before}{}{after}",
                pad(&c.to_string(), width, left)
            ));
        }
        _ => return Err(problem()),
    };
    // An integer's precision is its minimum number of digits.
    let body = match (conv, precision) {
        ('d' | 'i' | 'u' | 'o' | 'x' | 'X', Some(p)) if body.len() < p => {
            format!("{}{body}", "0".repeat(p - body.len()))
        }
        _ => body,
    };
    let sign = if negative {
        "-"
    } else if plus {
        "+"
    } else if space {
        " "
    } else {
        ""
    };
    let text = if zero && !left {
        let used = sign.len() + prefix.len() + body.len();
        format!(
            "{sign}{prefix}{}{body}",
            "0".repeat(width.saturating_sub(used))
        )
    } else {
        pad(&format!("{sign}{prefix}{body}"), width, left)
    };
    Ok(format!("{before}{text}{after}"))
}

/// `s` padded with spaces to `width`, on the right when `left`.
fn pad(s: &str, width: usize, left: bool) -> String {
    let n = s.chars().count();
    if n >= width {
        return s.to_string();
    }
    let fill = " ".repeat(width - n);
    if left {
        format!("{s}{fill}")
    } else {
        format!("{fill}{s}")
    }
}

/// Python's `%e`, `%f` and `%g` of a non-negative number.
fn float_format(f: f64, conv: char, precision: Option<usize>, alt: bool) -> String {
    let p = precision.unwrap_or(6);
    let exp_form = |p: usize, upper: bool| {
        let s = format!("{f:.p$e}");
        let (mantissa, exp) = s.split_once('e').unwrap_or((&s, "0"));
        let exp: i32 = exp.parse().unwrap_or(0);
        let sign = if exp < 0 { '-' } else { '+' };
        let e = if upper { 'E' } else { 'e' };
        format!("{mantissa}{e}{sign}{:02}", exp.abs())
    };
    match conv {
        'f' | 'F' => format!("{f:.p$}"),
        'e' => exp_form(p, false),
        'E' => exp_form(p, true),
        _ => {
            let p = if p == 0 { 1 } else { p };
            let exp = if f == 0.0 {
                0
            } else {
                // The decimal exponent of the number rounded to p digits.
                let s = format!("{f:.prec$e}", prec = p - 1);
                s.split_once('e')
                    .and_then(|(_, e)| e.parse::<i32>().ok())
                    .unwrap_or(0)
            };
            let p_i = i32::try_from(p).unwrap_or(6);
            let mut s = if (-4..p_i).contains(&exp) {
                let decimals = usize::try_from(p_i - 1 - exp).unwrap_or(0);
                format!("{f:.decimals$}")
            } else {
                exp_form(p - 1, conv == 'G')
            };
            if !alt {
                // Trailing zeros (and a bare point) go, in the mantissa only.
                let (mantissa, tail) = match s.find(['e', 'E']) {
                    Some(i) => {
                        let (m, t) = s.split_at(i);
                        (m.to_string(), t.to_string())
                    }
                    None => (s.clone(), String::new()),
                };
                let mantissa = if mantissa.contains('.') {
                    mantissa
                        .trim_end_matches('0')
                        .trim_end_matches('.')
                        .to_string()
                } else {
                    mantissa
                };
                s = format!("{mantissa}{tail}");
            }
            s
        }
    }
}
