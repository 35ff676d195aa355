//! Python literals as `ast.literal_eval` reads them, for Ansible's conversion of rendered
//! text that looks like a list, a dictionary or a boolean back into that value.
//!
//! Ansible (2.18, `ansible_eval_concat`) takes the text a template made of several parts
//! (`'{{ "" }}{"a": null}'`, `"[{{ x }}, 2]"`), and when it starts with `{` or `[` or is
//! `True`/`False`, parses it with `ast.literal_eval`, JSON's `true`/`false`/`null` read as
//! Python's; when that fails, the text stays text. This reads the same subset: lists,
//! tuples (as lists), dictionaries, strings, numbers, booleans and `None`. Whatever
//! `literal_eval` would refuse, or what a plan cannot carry (sets, bytes, complex numbers,
//! non-scalar keys), gives `None`, so the caller keeps the text.

use serde_json::{Map, Number, Value};

/// Deepest nesting read; deeper text stays text (Python's parser has a limit too).
const MAX_DEPTH: usize = 200;

/// The value Ansible's conversion gives `text`, or `None` when the text stays text.
pub fn convert_rendered(text: &str) -> Option<Value> {
    if !(text.starts_with('{') || text.starts_with('[') || text == "True" || text == "False") {
        return None;
    }
    let mut p = Parser {
        s: text.as_bytes(),
        i: 0,
        depth: 0,
    };
    let v = p.value()?;
    p.skip_ws();
    (p.i == p.s.len()).then_some(v)
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
    depth: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn skip_ws(&mut self) {
        while let Some(c) = self.peek() {
            match c {
                b' ' | b'\t' | b'\n' | b'\r' | b'\x0c' => self.i += 1,
                // A line continuation inside brackets is whitespace to Python.
                b'\\' if matches!(self.s.get(self.i + 1), Some(b'\n')) => self.i += 2,
                _ => break,
            }
        }
    }

    fn eat(&mut self, c: u8) -> bool {
        self.skip_ws();
        if self.peek() == Some(c) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    fn value(&mut self) -> Option<Value> {
        self.skip_ws();
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return None;
        }
        let v = match self.peek()? {
            b'[' => {
                self.i += 1;
                Value::Array(self.items(b']')?.0)
            }
            b'(' => {
                self.i += 1;
                let (items, comma) = self.items(b')')?;
                // `(x)` is x; `(x,)` and `()` are tuples, carried as lists.
                if items.len() == 1 && !comma {
                    items.into_iter().next()?
                } else {
                    Value::Array(items)
                }
            }
            b'{' => {
                self.i += 1;
                self.dict()?
            }
            b'\'' | b'"' => Value::String(self.strings()?),
            b'-' | b'+' => {
                let neg = self.peek() == Some(b'-');
                self.i += 1;
                self.skip_ws();
                let n = self.number()?;
                if neg { negate(n)? } else { n }
            }
            b'0'..=b'9' | b'.' => self.number()?,
            c if c.is_ascii_alphabetic() || c == b'_' => {
                let start = self.i;
                while self
                    .peek()
                    .is_some_and(|c| c.is_ascii_alphanumeric() || c == b'_')
                {
                    self.i += 1;
                }
                let word = std::str::from_utf8(self.s.get(start..self.i)?).ok()?;
                match word {
                    "True" | "true" => Value::Bool(true),
                    "False" | "false" => Value::Bool(false),
                    "None" | "null" => Value::Null,
                    // String prefixes (u'', r'', b'') and other names: not read here.
                    _ => return None,
                }
            }
            _ => return None,
        };
        self.depth -= 1;
        Some(v)
    }

    /// Comma-separated values up to `close`; also whether a comma came last.
    fn items(&mut self, close: u8) -> Option<(Vec<Value>, bool)> {
        let mut out = Vec::new();
        let mut comma = false;
        loop {
            if self.eat(close) {
                return Some((out, comma));
            }
            out.push(self.value()?);
            comma = self.eat(b',');
            if !comma {
                return self.eat(close).then_some((out, false));
            }
        }
    }

    fn dict(&mut self) -> Option<Value> {
        let mut out = Map::new();
        loop {
            if self.eat(b'}') {
                return Some(Value::Object(out));
            }
            let key = match self.value()? {
                Value::String(s) => s,
                Value::Number(n) => n.to_string(),
                Value::Bool(true) => "True".into(),
                Value::Bool(false) => "False".into(),
                Value::Null => "None".into(),
                // A list key is a TypeError to Python; a set (`{a, b}`) lacks the colon.
                _ => return None,
            };
            if !self.eat(b':') {
                return None;
            }
            let v = self.value()?;
            out.insert(key, v);
            if !self.eat(b',') {
                return self.eat(b'}').then_some(Value::Object(out));
            }
        }
    }

    /// One string literal, or several side by side (Python joins `'a' "b"`).
    fn strings(&mut self) -> Option<String> {
        let mut out = self.string()?;
        loop {
            let save = self.i;
            self.skip_ws();
            match self.peek() {
                Some(b'\'' | b'"') => out.push_str(&self.string()?),
                _ => {
                    self.i = save;
                    return Some(out);
                }
            }
        }
    }

    fn string(&mut self) -> Option<String> {
        let q = self.peek()?;
        // Triple-quoted strings are left to Python: the text stays text.
        if self.s.get(self.i..self.i + 3) == Some(&[q, q, q][..]) {
            return None;
        }
        self.i += 1;
        let mut buf: Vec<u8> = Vec::new();
        loop {
            let c = self.peek()?;
            self.i += 1;
            match c {
                c if c == q => break,
                b'\n' => return None,
                b'\\' => {
                    let e = self.peek()?;
                    self.i += 1;
                    let ch = match e {
                        b'\n' => continue,
                        b'\\' => '\\',
                        b'\'' => '\'',
                        b'"' => '"',
                        b'a' => '\x07',
                        b'b' => '\x08',
                        b'f' => '\x0c',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'v' => '\x0b',
                        b'x' => self.hex(2)?,
                        b'u' => self.hex(4)?,
                        b'U' => self.hex(8)?,
                        b'0'..=b'7' => {
                            let mut n = u32::from(e - b'0');
                            for _ in 0..2 {
                                match self.peek() {
                                    Some(d @ b'0'..=b'7') => {
                                        n = n * 8 + u32::from(d - b'0');
                                        self.i += 1;
                                    }
                                    _ => break,
                                }
                            }
                            char::from_u32(n)?
                        }
                        // An unknown escape keeps its backslash, as in Python.
                        other => {
                            buf.push(b'\\');
                            buf.push(other);
                            continue;
                        }
                    };
                    let mut tmp = [0u8; 4];
                    buf.extend_from_slice(ch.encode_utf8(&mut tmp).as_bytes());
                }
                other => buf.push(other),
            }
        }
        String::from_utf8(buf).ok()
    }

    fn hex(&mut self, n: usize) -> Option<char> {
        let digits = std::str::from_utf8(self.s.get(self.i..self.i + n)?).ok()?;
        self.i += n;
        char::from_u32(u32::from_str_radix(digits, 16).ok()?)
    }

    fn number(&mut self) -> Option<Value> {
        let start = self.i;
        while self
            .peek()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'.')
            || (matches!(self.peek(), Some(b'+' | b'-'))
                && matches!(self.s.get(self.i.wrapping_sub(1)), Some(b'e' | b'E'))
                && !self
                    .s
                    .get(start..self.i)
                    .is_some_and(|t| t.starts_with(b"0x") || t.starts_with(b"0X")))
        {
            self.i += 1;
        }
        let text = std::str::from_utf8(self.s.get(start..self.i)?).ok()?;
        // Underscores only between digits, as Python allows them.
        if text.starts_with('_') || text.ends_with('_') || text.contains("__") {
            return None;
        }
        let t = text.replace('_', "");
        let lower = t.to_ascii_lowercase();
        let radix = |p: &str, r: u32| -> Option<Value> {
            let digits = lower.strip_prefix(p)?;
            i64::from_str_radix(digits, r).ok().map(Value::from)
        };
        if lower.starts_with("0x") {
            return radix("0x", 16);
        }
        if lower.starts_with("0o") {
            return radix("0o", 8);
        }
        if lower.starts_with("0b") {
            return radix("0b", 2);
        }
        if lower.ends_with('j') {
            return None;
        }
        if lower.bytes().all(|c| c.is_ascii_digit()) {
            // Python refuses leading zeros in a decimal (`007`), except zero itself.
            if lower.len() > 1 && lower.starts_with('0') && lower.bytes().any(|c| c != b'0') {
                return None;
            }
            return lower.parse::<i64>().ok().map(Value::from);
        }
        let f: f64 = lower.parse().ok()?;
        Number::from_f64(f).map(Value::Number)
    }
}

fn negate(n: Value) -> Option<Value> {
    match n {
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                Some(Value::from(i.checked_neg()?))
            } else {
                Number::from_f64(-n.as_f64()?).map(Value::Number)
            }
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::convert_rendered;
    use serde_json::json;

    #[test]
    fn rendered_text_that_python_reads_as_a_literal_becomes_that_value() {
        // Each value is what Python 3's ast.literal_eval (after Ansible's Json2Python)
        // gives for the text.
        let cases = [
            (
                r#"{"null": null, "true": true, "false": false}"#,
                json!({"null": null, "true": true, "false": false}),
            ),
            (
                "[1, 'two', 3.5, -4, None, True]",
                json!([1, "two", 3.5, -4, null, true]),
            ),
            ("[(1, 2), (3,), ()]", json!([[1, 2], [3], []])),
            ("{'a': [1, {'b': 'c'}],}", json!({"a": [1, {"b": "c"}]})),
            ("{1: 'x', None: 'y'}", json!({"1": "x", "None": "y"})),
            (
                "['a\\tb', \"it's\", 'x' 'y', '\\x41\\u00e9']",
                json!(["a\tb", "it's", "xy", "Aé"]),
            ),
            (
                "[0x1F, 0o17, 0b101, 1_000, 1e3, .5, (7)]",
                json!([31, 15, 5, 1000, 1000.0, 0.5, 7]),
            ),
            ("True", json!(true)),
            ("False", json!(false)),
            ("[\n  1,\n  2\n]\n", json!([1, 2])),
        ];
        for (text, want) in cases {
            assert_eq!(convert_rendered(text), Some(want), "{text}");
        }
    }

    #[test]
    fn text_python_cannot_read_stays_text() {
        for text in [
            "[x]",
            "[1, 2] and more",
            "{1, 2}",
            "{[1]: 2}",
            "[007]",
            "[b'bytes']",
            "[1j]",
            "['unterminated]",
            "['''triple''']",
            "true",
            "None",
            " [1]",
            "[1,,2]",
            "{'a' 1}",
        ] {
            assert_eq!(convert_rendered(text), None, "{text}");
        }
        // Nesting beyond the bound stays text rather than exhausting the stack.
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert_eq!(convert_rendered(&deep), None);
    }
}
