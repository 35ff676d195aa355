//! Python's `%` string formatting (`"%s/x" % var`, `"%(name)s" % d`, `"%-5s|%.2f"`), which
//! Ansible's templates have because Jinja2 runs Python's operator; minijinja's `%` is
//! only the remainder. `format` is the operator; [`rewrite`] turns `'literal' % operand`
//! in an expression into a call of it (the engine does so only for an expression that
//! failed, so templates that work are untouched).

use crate::template::{py_display, py_float, py_repr_of};
use minijinja::Error;
use minijinja::value::{Value as JValue, ValueKind};

/// The function `'literal' % operand` is rewritten into.
pub(crate) const FUNCTION: &str = "__rustle_pyformat";

fn type_error(msg: String) -> Error {
    crate::filters::invalid(msg)
}

/// One conversion's flags, width and precision.
#[derive(Default)]
struct Spec {
    left: bool,
    zero: bool,
    plus: bool,
    space: bool,
    alt: bool,
    width: usize,
    precision: Option<usize>,
}

/// Python's `fmt % args`.
pub(crate) fn format(fmt: &str, args: &JValue) -> Result<String, Error> {
    let mapping = args.kind() == ValueKind::Map;
    let positional: Vec<JValue> = match args.kind() {
        ValueKind::Seq => args.try_iter()?.collect(),
        _ => vec![args.clone()],
    };
    // A list given for one conversion is that one value, as Python prints a list.
    let conversions = count_conversions(fmt);
    let positional = if args.kind() == ValueKind::Seq && conversions == 1 && positional.len() != 1 {
        vec![args.clone()]
    } else {
        positional
    };
    let mut next = positional.iter();
    let mut out = String::new();
    let mut chars = fmt.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let mut key: Option<String> = None;
        if chars.peek() == Some(&'(') {
            chars.next();
            let mut depth = 1;
            let mut k = String::new();
            for c in chars.by_ref() {
                match c {
                    '(' => depth += 1,
                    ')' => {
                        depth -= 1;
                        if depth == 0 {
                            break;
                        }
                    }
                    _ => {}
                }
                k.push(c);
            }
            key = Some(k);
        }
        let mut spec = Spec::default();
        while let Some(&f) = chars.peek() {
            match f {
                '-' => spec.left = true,
                '0' => spec.zero = true,
                '+' => spec.plus = true,
                ' ' => spec.space = true,
                '#' => spec.alt = true,
                _ => break,
            }
            chars.next();
        }
        while let Some(d) = chars.peek().and_then(|c| c.to_digit(10)) {
            spec.width = spec.width.saturating_mul(10).saturating_add(d as usize);
            chars.next();
        }
        if chars.peek() == Some(&'.') {
            chars.next();
            let mut p = 0usize;
            while let Some(d) = chars.peek().and_then(|c| c.to_digit(10)) {
                p = p.saturating_mul(10).saturating_add(d as usize);
                chars.next();
            }
            spec.precision = Some(p);
        }
        // Length modifiers are accepted and ignored, as Python does.
        while matches!(chars.peek(), Some('h' | 'l' | 'L')) {
            chars.next();
        }
        let Some(conv) = chars.next() else {
            return Err(type_error("incomplete format".into()));
        };
        if conv == '%' {
            out.push('%');
            continue;
        }
        let value = match &key {
            Some(k) => {
                if !mapping {
                    return Err(type_error("format requires a mapping".into()));
                }
                let v = args.get_attr(k).unwrap_or(JValue::UNDEFINED);
                if v.is_undefined() {
                    return Err(type_error(format!("'{k}'")));
                }
                v
            }
            None => next
                .next()
                .cloned()
                .ok_or_else(|| type_error("not enough arguments for format string".into()))?,
        };
        let body = convert(conv, &value, &spec)?;
        pad(
            &mut out,
            &body,
            &spec,
            matches!(
                conv,
                'd' | 'i' | 'u' | 'f' | 'F' | 'e' | 'E' | 'g' | 'G' | 'x' | 'X' | 'o'
            ),
        );
    }
    if !mapping && next.next().is_some() {
        return Err(type_error(
            "not all arguments converted during string formatting".into(),
        ));
    }
    Ok(out)
}

fn count_conversions(fmt: &str) -> usize {
    let mut n = 0;
    let mut chars = fmt.chars();
    while let Some(c) = chars.next() {
        if c == '%' {
            match chars.next() {
                Some('%') | None => {}
                Some(_) => n += 1,
            }
        }
    }
    n
}

fn number(conv: char, v: &JValue) -> Result<f64, Error> {
    match v.kind() {
        ValueKind::Number | ValueKind::Bool => f64::try_from(v.clone()).map_err(|_| {
            type_error(format!(
                "%{conv} format: a real number is required, not {}",
                crate::filters::py_type(v)
            ))
        }),
        _ => Err(type_error(format!(
            "%{conv} format: a real number is required, not {}",
            crate::filters::py_type(v)
        ))),
    }
}

fn integer(conv: char, v: &JValue) -> Result<i128, Error> {
    if v.is_integer()
        && let Ok(i) = i128::try_from(v.clone())
    {
        return Ok(i);
    }
    if v.kind() == ValueKind::Bool {
        return Ok(i128::from(v.is_true()));
    }
    if matches!(conv, 'x' | 'X' | 'o' | 'c') && v.kind() == ValueKind::Number {
        return Err(type_error(format!(
            "%{conv} format: an integer is required, not float"
        )));
    }
    Ok(number(conv, v)?.trunc() as i128)
}

fn signed(n: String, negative: bool, spec: &Spec) -> String {
    if negative {
        format!("-{n}")
    } else if spec.plus {
        format!("+{n}")
    } else if spec.space {
        format!(" {n}")
    } else {
        n
    }
}

fn convert(conv: char, v: &JValue, spec: &Spec) -> Result<String, Error> {
    Ok(match conv {
        's' | 'r' | 'a' => {
            let text = if v.is_undefined() {
                // Ansible's undefined has a repr (its class name first); as text it
                // fails as any use of an undefined value does.
                if conv == 's' {
                    return Err(Error::new(
                        minijinja::ErrorKind::UndefinedError,
                        "a value given to '%s' is undefined",
                    ));
                }
                "AnsibleUndefined(hint=None, obj=missing)".to_string()
            } else if conv == 's' {
                py_display(v)
            } else {
                py_repr_of(v)
            };
            match spec.precision {
                Some(p) => text.chars().take(p).collect(),
                None => text,
            }
        }
        'd' | 'i' | 'u' => {
            let i = integer(conv, v)?;
            signed(i.unsigned_abs().to_string(), i < 0, spec)
        }
        'x' | 'X' | 'o' => {
            let i = integer(conv, v)?;
            let digits = match conv {
                'x' => format!("{:x}", i.unsigned_abs()),
                'X' => format!("{:X}", i.unsigned_abs()),
                _ => format!("{:o}", i.unsigned_abs()),
            };
            let prefix = match (spec.alt, conv) {
                (true, 'x') => "0x",
                (true, 'X') => "0X",
                (true, _) => "0o",
                _ => "",
            };
            signed(format!("{prefix}{digits}"), i < 0, spec)
        }
        'f' | 'F' => {
            let f = number(conv, v)?;
            let p = spec.precision.unwrap_or(6);
            if f.is_finite() {
                signed(
                    format!("{:.p$}", f.abs()),
                    f.is_sign_negative() && f != 0.0,
                    spec,
                )
            } else {
                py_float(f)
            }
        }
        'e' | 'E' => {
            let f = number(conv, v)?;
            let p = spec.precision.unwrap_or(6);
            let s = format!("{:.p$e}", f.abs());
            let (m, e) = s.split_once('e').unwrap_or((&s, "0"));
            let e: i32 = e.parse().unwrap_or(0);
            let sign = if e < 0 { '-' } else { '+' };
            let text = format!("{m}e{sign}{:02}", e.abs());
            let text = if conv == 'E' {
                text.to_uppercase()
            } else {
                text
            };
            signed(text, f.is_sign_negative() && f != 0.0, spec)
        }
        'g' | 'G' => {
            let f = number(conv, v)?;
            let p = spec.precision.unwrap_or(6).max(1);
            let exp = if f == 0.0 {
                0
            } else {
                f.abs().log10().floor() as i32
            };
            let text = if exp < -4 || exp >= p as i32 {
                let s = format!("{:.*e}", p - 1, f.abs());
                let (m, e) = s.split_once('e').unwrap_or((&s, "0"));
                let m = if spec.alt || !m.contains('.') {
                    m.to_string()
                } else {
                    m.trim_end_matches('0').trim_end_matches('.').to_string()
                };
                let e: i32 = e.parse().unwrap_or(0);
                let sign = if e < 0 { '-' } else { '+' };
                format!("{m}e{sign}{:02}", e.abs())
            } else {
                let decimals = (p as i32 - 1 - exp).max(0) as usize;
                let s = format!("{:.decimals$}", f.abs());
                if s.contains('.') && !spec.alt {
                    s.trim_end_matches('0').trim_end_matches('.').to_string()
                } else {
                    s
                }
            };
            let text = if conv == 'G' {
                text.to_uppercase()
            } else {
                text
            };
            signed(text, f.is_sign_negative() && f != 0.0, spec)
        }
        'c' => match v.as_str() {
            Some(s) if v.kind() == ValueKind::String && s.chars().count() == 1 => s.to_string(),
            _ => {
                let i = integer(conv, v)?;
                u32::try_from(i)
                    .ok()
                    .and_then(char::from_u32)
                    .map(String::from)
                    .ok_or_else(|| type_error("%c arg not in range(0x110000)".into()))?
            }
        },
        other => {
            return Err(type_error(format!(
                "unsupported format character '{other}' (0x{:x})",
                other as u32
            )));
        }
    })
}

/// Pads to the width: left-justified with `-`, zeros after the sign with `0` for numbers.
fn pad(out: &mut String, body: &str, spec: &Spec, numeric: bool) {
    let len = body.chars().count();
    if len >= spec.width {
        out.push_str(body);
        return;
    }
    let fill = spec.width - len;
    if spec.left {
        out.push_str(body);
        out.push_str(&" ".repeat(fill));
    } else if spec.zero && numeric {
        let (sign, digits) = match body.chars().next() {
            Some(c @ ('-' | '+' | ' ')) => (c.to_string(), body.get(1..).unwrap_or_default()),
            _ => (String::new(), body),
        };
        out.push_str(&sign);
        out.push_str(&"0".repeat(fill));
        out.push_str(digits);
    } else {
        out.push_str(&" ".repeat(fill));
        out.push_str(body);
    }
}

/// `source` with every `'literal' % operand` inside its expressions (all of it when
/// `template` is false, else what is inside `{{ }}` and `{% %}`) made a call of
/// [`FUNCTION`]; `None` when there is none.
pub(crate) fn rewrite(source: &str, template: bool) -> Option<String> {
    if !source.contains('%') {
        return None;
    }
    let bytes = source.as_bytes();
    let mut out = String::with_capacity(source.len() + 32);
    let mut changed = false;
    let mut i = 0;
    let mut in_expr = !template;
    let mut close: &[u8] = b"";
    let mut copied = 0;
    while i < bytes.len() {
        if template && !in_expr {
            if bytes.get(i..i + 2) == Some(b"{{") {
                in_expr = true;
                close = b"}}";
                i += 2;
            } else if bytes.get(i..i + 2) == Some(b"{%") {
                in_expr = true;
                close = b"%}";
                i += 2;
            } else {
                i += 1;
            }
            continue;
        }
        if template && bytes.get(i..i + 2) == Some(close) {
            in_expr = false;
            i += 2;
            continue;
        }
        match bytes.get(i).copied() {
            Some(q @ (b'\'' | b'"')) => {
                let start = i;
                i += 1;
                while let Some(&c) = bytes.get(i) {
                    if c == b'\\' {
                        i += 1;
                    } else if c == q {
                        break;
                    }
                    i += 1;
                }
                let lit_end = i + 1;
                let mut j = lit_end;
                while bytes.get(j).is_some_and(u8::is_ascii_whitespace) {
                    j += 1;
                }
                if bytes.get(j) == Some(&b'%')
                    && !matches!(bytes.get(j + 1), Some(b'}' | b'%'))
                    && let Some(op_end) = operand_end(bytes, j + 1)
                {
                    let literal = source.get(start..lit_end)?;
                    let operand = source.get(j + 1..op_end)?.trim();
                    out.push_str(source.get(copied..start)?);
                    out.push_str(&format!("{FUNCTION}({literal}, {operand})"));
                    copied = op_end;
                    changed = true;
                    i = op_end;
                    continue;
                }
                i = lit_end;
            }
            _ => i += 1,
        }
    }
    if !changed {
        return None;
    }
    out.push_str(source.get(copied..)?);
    Some(out)
}

/// Where the right operand of `%` that starts at `start` ends: a unary expression with
/// its postfix accesses and filters, as Jinja2 binds them tighter than `%`.
fn operand_end(bytes: &[u8], start: usize) -> Option<usize> {
    let skip_ws = |mut i: usize| {
        while bytes.get(i).is_some_and(u8::is_ascii_whitespace) {
            i += 1;
        }
        i
    };
    let is_ident = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let group_end = |open: usize| -> Option<usize> {
        let mut depth = 0usize;
        let mut i = open;
        while let Some(&c) = bytes.get(i) {
            match c {
                b'(' | b'[' | b'{' => depth += 1,
                b')' | b']' | b'}' => {
                    depth = depth.checked_sub(1)?;
                    if depth == 0 {
                        return Some(i + 1);
                    }
                }
                q @ (b'\'' | b'"') => {
                    i += 1;
                    while let Some(&d) = bytes.get(i) {
                        if d == b'\\' {
                            i += 1;
                        } else if d == q {
                            break;
                        }
                        i += 1;
                    }
                }
                _ => {}
            }
            i += 1;
        }
        None
    };
    let mut i = skip_ws(start);
    if bytes.get(i) == Some(&b'-') {
        i = skip_ws(i + 1);
    }
    // The primary.
    match bytes.get(i).copied()? {
        b'(' | b'[' | b'{' => i = group_end(i)?,
        q @ (b'\'' | b'"') => {
            i += 1;
            while let Some(&c) = bytes.get(i) {
                if c == b'\\' {
                    i += 1;
                } else if c == q {
                    break;
                }
                i += 1;
            }
            i += 1;
        }
        b if is_ident(b) => {
            while bytes
                .get(i)
                .copied()
                .is_some_and(|c| is_ident(c) || c == b'.')
            {
                i += 1;
            }
        }
        _ => return None,
    }
    // Postfix accesses and calls, then filters.
    loop {
        match bytes.get(i).copied() {
            Some(b'.') => {
                i += 1;
                while bytes.get(i).copied().is_some_and(is_ident) {
                    i += 1;
                }
            }
            Some(b'(' | b'[') => i = group_end(i)?,
            _ => {
                let j = skip_ws(i);
                if bytes.get(j) == Some(&b'|') && bytes.get(j + 1) != Some(&b'|') {
                    let mut k = skip_ws(j + 1);
                    let name_start = k;
                    while bytes
                        .get(k)
                        .copied()
                        .is_some_and(|c| is_ident(c) || c == b'.')
                    {
                        k += 1;
                    }
                    if k == name_start {
                        return Some(i);
                    }
                    i = k;
                    if bytes.get(i) == Some(&b'(') {
                        i = group_end(i)?;
                    }
                } else {
                    return Some(i);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(fmt: &str, args: JValue) -> String {
        format(fmt, &args).unwrap()
    }

    #[test]
    fn formats_as_python_does() {
        // Expected values from Python 3.11's `%`.
        assert_eq!(f("%s/x", JValue::from("/tmp")), "/tmp/x");
        assert_eq!(
            f(
                "%s-%d",
                JValue::from(vec![JValue::from("a"), JValue::from(5)])
            ),
            "a-5"
        );
        assert_eq!(f("%-5s|", JValue::from("ab")), "ab   |");
        assert_eq!(f("%5s|", JValue::from("ab")), "   ab|");
        assert_eq!(f("%.2f", JValue::from(1.23456)), "1.23");
        assert_eq!(f("%05d", JValue::from(-42)), "-0042");
        assert_eq!(
            f(
                "%+d %x %X %o %#x",
                JValue::from(vec![
                    JValue::from(7),
                    JValue::from(255),
                    JValue::from(255),
                    JValue::from(8),
                    JValue::from(255)
                ])
            ),
            "+7 ff FF 10 0xff"
        );
        assert_eq!(f("%d%%", JValue::from(3.9)), "3%");
        assert_eq!(
            f("%s", JValue::from(vec![JValue::from(1), JValue::from(2)])),
            "[1, 2]"
        );
        assert_eq!(f("%r", JValue::from("a")), "'a'");
        assert_eq!(f("%s", JValue::from(true)), "True");
        assert_eq!(f("%e", JValue::from(12345.678)), "1.234568e+04");
        assert_eq!(
            f(
                "%g %g",
                JValue::from(vec![JValue::from(0.0001), JValue::from(123456789.0)])
            ),
            "0.0001 1.23457e+08"
        );
        let d = JValue::from_serialize(serde_json::json!({"name": "web", "n": 3}));
        assert_eq!(f("%(name)s-%(n)03d", d), "web-003");
        assert!(
            format("%d", &JValue::from("x"))
                .unwrap_err()
                .to_string()
                .contains("%d format: a real number is required, not str")
        );
        assert!(format("%s %s", &JValue::from("x")).is_err());
        assert!(
            format(
                "%s",
                &JValue::from(vec![JValue::from(1), JValue::from(2), JValue::from(3)])
            )
            .is_ok()
        );
    }

    #[test]
    fn rewrites_a_literal_formatted_with_percent() {
        assert_eq!(
            rewrite(r#"x == ("a %s b" % (d))"#, false).unwrap(),
            r#"x == (__rustle_pyformat("a %s b", (d)))"#
        );
        assert_eq!(
            rewrite("{{ '%02d' % item | int }} 50% '%s' % x", true).unwrap(),
            "{{ __rustle_pyformat('%02d', item | int) }} 50% '%s' % x"
        );
        assert_eq!(
            rewrite("{% set y = '%s.%s' % (a.b, c[0]) %}{{ y }}", true).unwrap(),
            "{% set y = __rustle_pyformat('%s.%s', (a.b, c[0])) %}{{ y }}"
        );
        assert_eq!(rewrite("{{ 5 % 2 }}", true), None);
    }
}
