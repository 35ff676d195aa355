//! Ansible's `parse_kv` and `split_args` (ansible.parsing.splitter), as lookups use them
//! for `key=value` terms (`with_sequence: start=1 end=4`, the password lookup's options).

use serde_json::{Map, Value};

/// The `key=value` options Ansible's `parse_kv` takes out of a command line when
/// `check_raw` is set (`expand_argument_vars` is not among them, so on a command line it
/// stays command text).
const RAW_KEYS: [&str; 8] = [
    "creates",
    "removes",
    "chdir",
    "executable",
    "warn",
    "stdin",
    "stdin_add_newline",
    "strip_empty_ends",
];

/// Splits `args` into `key=value` options; anything else is joined into `_raw_params`.
/// Keys are taken as written up to the first `=` not escaped by a backslash (Ansible
/// does not check that they are identifiers), values lose one pair of surrounding quotes.
/// Errors on unbalanced quotes or Jinja blocks, with Ansible's message.
pub fn parse_kv(args: &str) -> Result<Map<String, Value>, String> {
    parse_kv_checking_raw(args, false)
}

/// [`parse_kv`] as Ansible calls it with `check_raw=True` for the modules that take a
/// command line (`command: echo a=b chdir=/tmp`): only the keys in [`RAW_KEYS`] become
/// options; every other token, `=` or not, stays command text in `_raw_params`.
pub fn parse_kv_checking_raw(args: &str, check_raw: bool) -> Result<Map<String, Value>, String> {
    let mut options = Map::new();
    let mut raw: Vec<String> = Vec::new();
    for orig in split_args(args)? {
        let x = decode_escapes(&orig);
        if !x.contains('=') {
            raw.push(orig);
            continue;
        }
        // The first `=` after the first character that is not escaped.
        let pos = x
            .char_indices()
            .skip(1)
            .filter(|(_, c)| *c == '=')
            .map(|(i, _)| i)
            .find(|&i| x.get(..i).is_some_and(|before| !before.ends_with('\\')));
        match pos {
            Some(pos) => {
                let k = x.get(..pos).unwrap_or_default();
                let v = x.get(pos + 1..).unwrap_or_default();
                if check_raw && !RAW_KEYS.contains(&k) {
                    raw.push(orig);
                    continue;
                }
                options.insert(
                    k.trim().to_string(),
                    Value::String(unquote(v.trim()).to_string()),
                );
            }
            None => raw.push(x.replace("\\=", "=")),
        }
    }
    if !raw.is_empty() {
        options.insert("_raw_params".to_string(), Value::String(join_args(&raw)));
    }
    Ok(options)
}

/// Removes one pair of matching quotes around a value, as Ansible's `unquote`: not when
/// the closing quote is escaped (`"a\"` stays as written).
pub fn unquote(value: &str) -> &str {
    let b = value.as_bytes();
    match (b.first(), b.last()) {
        (Some(&first), Some(&last))
            if b.len() > 1
                && first == last
                && (first == b'"' || first == b'\'')
                && b.get(b.len() - 2) != Some(&b'\\') =>
        {
            value.get(1..value.len() - 1).unwrap_or(value)
        }
        _ => value,
    }
}

/// Ansible's `join_args`: the tokens with a space between them, none after a newline.
fn join_args(tokens: &[String]) -> String {
    let mut out = String::new();
    for t in tokens {
        if !out.is_empty() && !out.ends_with('\n') {
            out.push(' ');
        }
        out.push_str(t);
    }
    out
}

/// The quote still open after `token`, starting with `quote` open.
fn quote_state(token: &str, mut quote: Option<char>) -> Option<char> {
    let mut prev: Option<char> = None;
    for c in token.chars() {
        if (c == '"' || c == '\'') && prev != Some('\\') {
            match quote {
                Some(q) if q == c => quote = None,
                Some(_) => {}
                None => quote = Some(c),
            }
        }
        prev = Some(c);
    }
    quote
}

/// The block depth after `token`: its opening tags less its closing ones, never below 0.
fn block_depth(token: &str, depth: usize, open: &str, close: &str) -> usize {
    let opened = token.matches(open).count();
    let closed = token.matches(close).count();
    (depth + opened).saturating_sub(closed)
}

/// Ansible's `split_args`: splits on spaces and newlines, keeping quoted text and Jinja
/// blocks in one token (quotes kept), runs of spaces and the newlines kept in the tokens.
fn split_args(args: &str) -> Result<Vec<String>, String> {
    let mut params: Vec<String> = Vec::new();
    if args.is_empty() {
        return Ok(params);
    }
    let mut quote: Option<char> = None;
    let mut inside_quotes = false;
    let (mut print, mut block, mut comment) = (0usize, 0usize, 0usize);
    let lines: Vec<&str> = args.split('\n').collect();
    for (line_idx, line) in lines.iter().enumerate() {
        let mut continuation = false;
        for (idx, token) in line.split(' ').enumerate() {
            if token.is_empty() && idx != 0 {
                match params.last_mut() {
                    Some(last) => last.push(' '),
                    None => params.push(" ".to_string()),
                }
                continue;
            }
            if token == "\\" && !inside_quotes {
                continuation = true;
                continue;
            }
            let was_inside_quotes = inside_quotes;
            quote = quote_state(token, quote);
            inside_quotes = quote.is_some();
            let in_block = print > 0 || block > 0 || comment > 0;
            let mut appended = false;
            if inside_quotes && !was_inside_quotes && !in_block {
                params.push(token.to_string());
                appended = true;
            } else if in_block || inside_quotes || was_inside_quotes {
                let spacer = if idx == 0 { "" } else { " " };
                match params.last_mut() {
                    Some(last) => {
                        last.push_str(spacer);
                        last.push_str(token);
                    }
                    None => params.push(token.to_string()),
                }
                appended = true;
            }
            for (depth, open, close) in [
                (&mut print, "{{", "}}"),
                (&mut block, "{%", "%}"),
                (&mut comment, "{#", "#}"),
            ] {
                let before = *depth;
                *depth = block_depth(token, *depth, open, close);
                if *depth != before && !appended {
                    params.push(token.to_string());
                    appended = true;
                }
            }
            if print == 0
                && block == 0
                && comment == 0
                && !inside_quotes
                && !appended
                && !token.is_empty()
            {
                params.push(token.to_string());
            }
        }
        if lines.len() > 1 && line_idx != lines.len() - 1 && !continuation {
            match params.last_mut() {
                Some(last) => last.push('\n'),
                None => params.push("\n".to_string()),
            }
        }
    }
    if print > 0 || block > 0 || comment > 0 || inside_quotes {
        return Err(format!(
            "failed at splitting arguments, either an unbalanced jinja2 block or quotes: {args}"
        ));
    }
    Ok(params)
}

/// Decodes the backslash escapes Ansible's `parse_kv` decodes: `\\ \' \" \a \b \f \n \r
/// \t \v`, `\xHH`, `\uHHHH`, `\UHHHHHHHH`; anything else stays as written.
pub fn decode_escapes(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(pos) = rest.find('\\') {
        out.push_str(rest.get(..pos).unwrap_or_default());
        let after = rest.get(pos + 1..).unwrap_or_default();
        let simple = match after.chars().next() {
            Some(c @ ('\\' | '\'' | '"')) => Some(c),
            Some('a') => Some('\u{7}'),
            Some('b') => Some('\u{8}'),
            Some('f') => Some('\u{c}'),
            Some('n') => Some('\n'),
            Some('r') => Some('\r'),
            Some('t') => Some('\t'),
            Some('v') => Some('\u{b}'),
            _ => None,
        };
        if let Some(c) = simple {
            out.push(c);
            rest = after.get(1..).unwrap_or_default();
            continue;
        }
        let hex_len = match after.chars().next() {
            Some('x') => 2,
            Some('u') => 4,
            Some('U') => 8,
            _ => 0,
        };
        let decoded = after
            .get(1..1 + hex_len)
            .filter(|h| hex_len > 0 && h.chars().all(|c| c.is_ascii_hexdigit()))
            .and_then(|h| u32::from_str_radix(h, 16).ok())
            .and_then(char::from_u32);
        match decoded {
            Some(c) => {
                out.push(c);
                rest = after.get(1 + hex_len..).unwrap_or_default();
            }
            None => {
                out.push('\\');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Expected values from ansible-core 2.18.19's `parse_kv` (`python3 -c "from
    /// ansible.parsing.splitter import parse_kv; print(parse_kv(...))"`).
    #[test]
    fn splits_like_ansible() {
        let check = |text: &str, want: Value| {
            assert_eq!(Value::Object(parse_kv(text).unwrap()), want, "{text}");
        };
        check("start=1 end=4", json!({"start": "1", "end": "4"}));
        check("a=1  b=2", json!({"a": "1", "b": "2"}));
        check("-3", json!({"_raw_params": "-3"}));
        check(
            r#"end=3 "format=%d x""#,
            json!({"end": "3", "\"format": "%d x\""}),
        );
        check("x y=1 z", json!({"y": "1", "_raw_params": "x z"}));
        check("a='b c' d=\"e\"", json!({"a": "b c", "d": "e"}));
        check("p=a\\=b", json!({"p": "a\\=b"}));
        check("=x", json!({"_raw_params": "=x"}));
        check("k = v", json!({"_raw_params": "k = v"}));
        check("", json!({}));
        assert!(parse_kv("a='b").is_err());
    }
}
