//! URLs: ansible-core's `urldecode` (urls.py) and `urlsplit` (urlsplit.py), and Jinja2's
//! `urlencode`, all as Python's `urllib.parse` does them.

use super::core::is_sequence;
use super::{add_filters, invalid, only, opts, py_str};
use minijinja::value::{Value as JValue, ValueKind};
use minijinja::{Environment, Error};

/// Python's `urllib.parse.quote_from_bytes(b, safe)`: unreserved characters as they
/// are, everything else `%XX` (upper-case hex).
fn quote(s: &str, safe: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        let c = char::from(b);
        if b.is_ascii_alphanumeric() || "_.-~".contains(c) || (b.is_ascii() && safe.contains(c)) {
            out.push(c);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Python's `urllib.parse.quote_plus`: a form field, `+` for spaces (uri's
/// `form-urlencoded` bodies).
pub(crate) fn quote_plus(s: &str) -> String {
    quote(s, "").replace("%20", "+")
}

/// Jinja's `url_quote`: `/` kept in a path, `+` for spaces in a query string.
fn url_quote(v: &JValue, for_qs: bool) -> String {
    let q = quote(&py_str(v), if for_qs { "" } else { "/" });
    if for_qs { q.replace("%20", "+") } else { q }
}

/// Jinja's `urlencode`: a string quoted; a dict or a list of pairs as a query string.
fn urlencode(v: JValue) -> Result<String, Error> {
    if v.kind() == ValueKind::String || !(is_sequence(&v) || v.kind() == ValueKind::Map) {
        return Ok(url_quote(&v, false));
    }
    let pairs: Vec<(JValue, JValue)> = if v.kind() == ValueKind::Map {
        v.try_iter()?
            .map(|k| {
                let val = v.get_item(&k).unwrap_or_default();
                (k, val)
            })
            .collect()
    } else {
        v.try_iter()?
            .map(|pair| {
                let mut it = pair.try_iter().into_iter().flatten();
                (it.next().unwrap_or_default(), it.next().unwrap_or_default())
            })
            .collect()
    };
    Ok(pairs
        .iter()
        .map(|(k, val)| format!("{}={}", url_quote(k, true), url_quote(val, true)))
        .collect::<Vec<_>>()
        .join("&"))
}

/// Python's `urllib.parse.unquote_plus`: `+` is a space, `%XX` bytes decoded as UTF-8
/// (invalid sequences replaced).
fn urldecode(v: JValue) -> String {
    let s = py_str(&v).replace('+', " ");
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (b, hex) {
            (b'%', Some(x)) => {
                out.push(x);
                i += 3;
            }
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The parts of a URL as Python's `urllib.parse.urlsplit` gives them.
struct Split {
    scheme: String,
    netloc: String,
    path: String,
    query: String,
    fragment: String,
}

fn split(url: &str) -> Split {
    // Python strips leading C0 controls and spaces, and removes tabs and newlines.
    let url: String = url
        .trim_start_matches(|c: char| c <= ' ')
        .chars()
        .filter(|c| !matches!(c, '\t' | '\r' | '\n'))
        .collect();
    let mut rest = url.as_str();
    let mut scheme = String::new();
    if let Some(i) = rest.find(':') {
        let candidate = rest.get(..i).unwrap_or_default();
        let valid = candidate
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic())
            && candidate
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c));
        if valid {
            scheme = candidate.to_ascii_lowercase();
            rest = rest.get(i + 1..).unwrap_or_default();
        }
    }
    let mut netloc = String::new();
    if let Some(after) = rest.strip_prefix("//") {
        let end = after.find(['/', '?', '#']).unwrap_or(after.len());
        netloc = after.get(..end).unwrap_or_default().to_string();
        rest = after.get(end..).unwrap_or_default();
    }
    let (rest, fragment) = match rest.split_once('#') {
        Some((r, f)) => (r, f.to_string()),
        None => (rest, String::new()),
    };
    let (path, query) = match rest.split_once('?') {
        Some((p, q)) => (p.to_string(), q.to_string()),
        None => (rest.to_string(), String::new()),
    };
    Split {
        scheme,
        netloc,
        path,
        query,
        fragment,
    }
}

/// `urlsplit(url, query='')`: every component as a dict, or the one named.
fn urlsplit(v: JValue, query: Option<String>) -> Result<JValue, Error> {
    let s = split(&py_str(&v));
    let (userinfo, hostport) = match s.netloc.rsplit_once('@') {
        Some((u, h)) => (Some(u.to_string()), h.to_string()),
        None => (None, s.netloc.clone()),
    };
    let (username, password) = match &userinfo {
        Some(u) => match u.split_once(':') {
            Some((n, p)) => (JValue::from(n), JValue::from(p)),
            None => (JValue::from(u.as_str()), JValue::from(())),
        },
        None => (JValue::from(()), JValue::from(())),
    };
    // Host and port, with an IPv6 literal in brackets.
    let (host, port_text) = if let Some(b) = hostport.strip_prefix('[') {
        match b.split_once(']') {
            Some((h, p)) => (h.to_string(), p.strip_prefix(':').map(str::to_string)),
            None => (b.to_string(), None),
        }
    } else {
        match hostport.split_once(':') {
            Some((h, p)) => (h.to_string(), Some(p.to_string())),
            None => (hostport.clone(), None),
        }
    };
    let hostname = if host.is_empty() {
        JValue::from(())
    } else {
        JValue::from(host.to_lowercase())
    };
    let port = match port_text.filter(|p| !p.is_empty()) {
        None => JValue::from(()),
        Some(p) => match p.parse::<u32>() {
            Ok(n) if n <= 65535 && p.chars().all(|c| c.is_ascii_digit()) => JValue::from(n),
            Ok(_) => return Err(invalid("Port out of range 0-65535")),
            Err(_) => {
                return Err(invalid(format!(
                    "Port could not be cast to integer value as '{p}'"
                )));
            }
        },
    };
    let parts: Vec<(&str, JValue)> = vec![
        ("fragment", JValue::from(s.fragment)),
        ("hostname", hostname),
        ("netloc", JValue::from(s.netloc)),
        ("password", password),
        ("path", JValue::from(s.path)),
        ("port", port),
        ("query", JValue::from(s.query)),
        ("scheme", JValue::from(s.scheme)),
        ("username", username),
    ];
    match query.filter(|q| !q.is_empty()) {
        None => Ok(JValue::from_iter(parts)),
        Some(q) => parts
            .into_iter()
            .find(|(k, _)| *k == q)
            .map(|(_, v)| v)
            .ok_or_else(|| invalid(format!("urlsplit: unknown URL component: {q}"))),
    }
}

/// Registers `urldecode`, `urlencode` and `urlsplit`.
pub(crate) fn register(env: &mut Environment<'static>) {
    add_filters(
        env,
        &[
            ("urldecode", |a| {
                Ok(JValue::from(urldecode(only(a, "urldecode")?.clone())))
            }),
            ("urlencode", |a| {
                urlencode(only(a, "urlencode")?.clone()).map(JValue::from)
            }),
            ("urlsplit", |a| {
                let (v, o) = opts(a)?;
                let query = o.arg(0, "query")?.map(|q| py_str(&q));
                o.done("urlsplit", 2)?;
                urlsplit(v, query)
            }),
        ],
    );
}

/// `urlparse` as the `uri`/`url`/`urn` tests use it: the scheme and whether there is a
/// network location.
pub(crate) fn scheme_and_netloc(url: &str) -> (String, bool) {
    let s = split(url);
    (s.scheme, !s.netloc.is_empty())
}
