//! Python `re` patterns and replacement templates, as Ansible's Python takes them: in
//! the regex filters and tests (`regex_replace`, `regex_search`, `regex_findall`,
//! `is match`/`search`/`regex`), the lookups and modules that take a regex
//! (lineinfile, blockinfile, replace, include_vars' `files_matching`, `ini`'s `re`,
//! `varnames`).
//!
//! A pattern runs on the `regex` crate when that crate accepts it (linear time, the
//! common case). Python features it refuses — backreferences inside the pattern (`\1`,
//! `(?P=name)`), look-ahead/look-behind, atomic groups — fall back to `fancy-regex`
//! (pure Rust, backtracking with a step limit), so a pattern Ansible accepts compiles
//! here too. Both see the same translated pattern ([`py_pattern`]: `\Z`, literal `{`,
//! `\<`, ...) with Unicode classes. The `regex` crate matches any bytes; `fancy-regex`
//! is given text only (UTF-8), since its byte mode indexes out of bounds on invalid
//! UTF-8 (0.20) and the runner must not panic: a non-UTF-8 haystack with a pattern that
//! needs it fails the task instead.
//!
//! Replacement templates are expanded with Python's rules (`\1`, `\g<1>`, `\g<name>`,
//! escapes; a group that did not take part expands to nothing), for either engine.

use std::ops::Range;

/// The spans of one match's groups; index 0 is the whole match.
pub(crate) type Groups = Vec<Option<Range<usize>>>;

/// A compiled Python pattern.
pub(crate) struct Pattern {
    engine: Engine,
    /// Group names by index (None for unnamed groups and group 0).
    names: Vec<Option<String>>,
}

enum Engine {
    Fast(regex::bytes::Regex),
    Fancy(fancy_regex::Regex),
}

impl Pattern {
    /// Compiles `py` (Python syntax); the error is the engine's message, on one line.
    pub(crate) fn new(py: &str) -> Result<Self, String> {
        Self::with_flags(py, false, false)
    }

    /// Compiles `py` with Python's `re.IGNORECASE` and `re.MULTILINE` flags as asked.
    pub(crate) fn with_flags(py: &str, ignorecase: bool, multiline: bool) -> Result<Self, String> {
        let flags = match (ignorecase, multiline) {
            (false, false) => "",
            (true, false) => "(?i)",
            (false, true) => "(?m)",
            (true, true) => "(?im)",
        };
        let translated = format!("{flags}{}", py_pattern(py));
        match regex::bytes::Regex::new(&translated) {
            Ok(re) => {
                let names = re.capture_names().map(|n| n.map(String::from)).collect();
                Ok(Self {
                    engine: Engine::Fast(re),
                    names,
                })
            }
            Err(fast_err) => {
                // The regex crate's refusal is final for what fancy-regex would hand
                // back to it anyway (bad syntax); only constructs it lacks get the
                // backtracking engine.
                let re = fancy_regex::Regex::new(&translated)
                    .map_err(|e| one_line(&format!("{fast_err} ({e})")))?;
                let names = re.capture_names().map(|n| n.map(String::from)).collect();
                Ok(Self {
                    engine: Engine::Fancy(re),
                    names,
                })
            }
        }
    }

    /// Group names by index, as `regex::Regex::capture_names` gives them.
    pub(crate) fn names(&self) -> impl Iterator<Item = Option<&str>> {
        self.names.iter().map(Option::as_deref)
    }

    /// Python's `re.search(...) is not None`.
    pub(crate) fn is_match(&self, hay: &[u8]) -> Result<bool, String> {
        match &self.engine {
            Engine::Fast(re) => Ok(re.is_match(hay)),
            Engine::Fancy(re) => re.is_match(text(hay)?).map_err(|e| runtime(&e)),
        }
    }

    /// The first match's span.
    pub(crate) fn find(&self, hay: &[u8]) -> Result<Option<Range<usize>>, String> {
        Ok(self
            .captures_at(hay, 0)?
            .and_then(|g| g.into_iter().next().flatten()))
    }

    /// The first match at or after `start`, with its groups (the text before `start`
    /// still counts for look-behind and `^`, as in Python's `pattern.search(s, pos)`).
    pub(crate) fn captures_at(&self, hay: &[u8], start: usize) -> Result<Option<Groups>, String> {
        match &self.engine {
            Engine::Fast(re) => Ok(re
                .captures_at(hay, start)
                .map(|c| (0..c.len()).map(|i| c.get(i).map(|m| m.range())).collect())),
            Engine::Fancy(re) => re
                .captures_from_pos(text(hay)?, start)
                .map(|caps| {
                    caps.map(|c| {
                        (0..self.names.len())
                            .map(|i| c.get(i).map(|m| m.range()))
                            .collect()
                    })
                })
                .map_err(|e| runtime(&e)),
        }
    }

    /// Every match as Python's `re.sub`/`finditer` find them: left to right, no
    /// overlap, and an empty match allowed right after a non-empty one but never at
    /// the position where the previous empty match was (Python 3.7+).
    pub(crate) fn all(&self, hay: &[u8]) -> Result<Vec<Groups>, String> {
        let mut out = Vec::new();
        let mut pos = 0;
        let mut must_advance = false;
        while pos <= hay.len() {
            let Some(mut g) = self.captures_at(hay, pos)? else {
                break;
            };
            let mut whole = g.first().cloned().flatten().unwrap_or(pos..pos);
            if must_advance && whole.is_empty() && whole.start == pos {
                let next = pos + char_len(hay, pos);
                if next > hay.len() {
                    break;
                }
                match self.captures_at(hay, next)? {
                    Some(again) => {
                        g = again;
                        whole = g.first().cloned().flatten().unwrap_or(next..next);
                    }
                    None => break,
                }
            }
            must_advance = whole.is_empty();
            pos = whole.end;
            out.push(g);
        }
        Ok(out)
    }
}

/// The text of group `n` of one match of `hay`: `None` when the group took no part.
pub(crate) fn group<'h>(hay: &'h str, groups: &Groups, n: usize) -> Option<&'h str> {
    groups.get(n).cloned().flatten().and_then(|r| hay.get(r))
}

/// The length of the character at `pos` (UTF-8), 1 for a byte that starts none.
fn char_len(hay: &[u8], pos: usize) -> usize {
    let Some(&b) = hay.get(pos) else { return 1 };
    let want = match b {
        0xC0..=0xDF => 2,
        0xE0..=0xEF => 3,
        0xF0..=0xF7 => 4,
        _ => 1,
    };
    let end = (pos + want).min(hay.len());
    match hay.get(pos..end).map(std::str::from_utf8) {
        Some(Ok(_)) => end - pos,
        _ => 1,
    }
}

/// The haystack as text for `fancy-regex`.
fn text(hay: &[u8]) -> Result<&str, String> {
    std::str::from_utf8(hay).map_err(|e| {
        format!(
            "this pattern (look-around or a backreference) matches UTF-8 text only, and the text is not: {e}"
        )
    })
}

fn one_line(s: &str) -> String {
    s.replace('\n', " ")
}

/// A match that the backtracking engine gave up on (its step limit): Python would
/// have gone on, possibly for very long; the task fails saying so.
fn runtime(e: &fancy_regex::Error) -> String {
    one_line(&format!("the regular expression could not be matched: {e}"))
}

/// A parsed Python replacement template.
pub(crate) struct Template {
    pieces: Vec<Piece>,
}

enum Piece {
    Text(Vec<u8>),
    Group(usize),
}

impl Template {
    /// Parses `t` as Python's `re` parses a replacement template for `pattern`,
    /// with its error messages.
    pub(crate) fn parse(t: &str, pattern: &Pattern) -> Result<Self, String> {
        let names: Vec<Option<&str>> = pattern.names().collect();
        let group = |n: usize| {
            if n < names.len() {
                Ok(Piece::Group(n))
            } else {
                Err(format!("invalid group reference {n}"))
            }
        };
        let cs: Vec<char> = t.chars().collect();
        let at = |i: usize| cs.get(i).copied();
        let octal = |c: Option<char>| c.is_some_and(|c| ('0'..='7').contains(&c));
        let mut pieces: Vec<Piece> = Vec::new();
        let mut text = String::new();
        let mut i = 0;
        while let Some(c) = at(i) {
            i += 1;
            if c != '\\' {
                text.push(c);
                continue;
            }
            let Some(d) = at(i) else {
                return Err("bad escape (end of pattern)".into());
            };
            i += 1;
            let literal = match d {
                'n' => '\n',
                't' => '\t',
                'r' => '\r',
                'f' => '\x0c',
                'v' => '\x0b',
                'a' => '\x07',
                'b' => '\x08',
                '\\' => '\\',
                'g' => {
                    if at(i) != Some('<') {
                        return Err("missing <".into());
                    }
                    let rest: String = cs.get(i + 1..).unwrap_or_default().iter().collect();
                    let Some((name, _)) = rest.split_once('>') else {
                        return Err("missing >, unterminated name".into());
                    };
                    i += name.chars().count() + 2;
                    let piece = if let Ok(n) = name.parse::<usize>() {
                        group(n)?
                    } else if let Some(n) = names.iter().position(|x| *x == Some(name)) {
                        Piece::Group(n)
                    } else if name.is_empty() {
                        return Err("missing group name".into());
                    } else {
                        return Err(format!("unknown group name '{name}'"));
                    };
                    flush(&mut pieces, &mut text);
                    pieces.push(piece);
                    continue;
                }
                // \0, or three octal digits: an octal character escape.
                '0'..='9' if d == '0' || (octal(Some(d)) && octal(at(i)) && octal(at(i + 1))) => {
                    let mut v = d.to_digit(8).unwrap_or(0);
                    let mut taken = 0;
                    while taken < 2 && octal(at(i)) {
                        v = v * 8 + at(i).and_then(|c| c.to_digit(8)).unwrap_or(0);
                        i += 1;
                        taken += 1;
                    }
                    if v > 0o377 {
                        return Err(format!(
                            "octal escape value \\{v:o} outside of range 0-0o377"
                        ));
                    }
                    char::from_u32(v).unwrap_or('\0')
                }
                '1'..='9' => {
                    // One or two digits name a group.
                    let mut n = d.to_digit(10).unwrap_or(0) as usize;
                    if let Some(e) = at(i).and_then(|c| c.to_digit(10)) {
                        n = n * 10 + e as usize;
                        i += 1;
                    }
                    let piece = group(n)?;
                    flush(&mut pieces, &mut text);
                    pieces.push(piece);
                    continue;
                }
                x if x.is_ascii_alphabetic() => return Err(format!("bad escape \\{x}")),
                // Python keeps other unknown escapes as they are, backslash included.
                x => {
                    text.push('\\');
                    x
                }
            };
            text.push(literal);
        }
        flush(&mut pieces, &mut text);
        Ok(Self { pieces })
    }

    /// The most bytes one expansion can take when a match is `matched` bytes long
    /// (each group is at most the whole match); `None` on overflow.
    pub(crate) fn most(&self, matched: usize) -> Option<usize> {
        self.pieces.iter().try_fold(0usize, |n, p| match p {
            Piece::Text(t) => n.checked_add(t.len()),
            Piece::Group(_) => n.checked_add(matched),
        })
    }

    /// Appends the expansion for one match of the pattern in `hay` to `out`.
    pub(crate) fn expand(&self, hay: &[u8], groups: &Groups, out: &mut Vec<u8>) {
        for p in &self.pieces {
            match p {
                Piece::Text(t) => out.extend_from_slice(t),
                Piece::Group(n) => {
                    if let Some(g) = groups.get(*n).cloned().flatten().and_then(|r| hay.get(r)) {
                        out.extend_from_slice(g);
                    }
                }
            }
        }
    }
}

fn flush(pieces: &mut Vec<Piece>, text: &mut String) {
    if !text.is_empty() {
        pieces.push(Piece::Text(std::mem::take(text).into_bytes()));
    }
}

/// Translates a Python `re` pattern into the regex crate's syntax where the two differ
/// only in spelling; anything else is passed through for the crate to judge.
fn py_pattern(p: &str) -> String {
    let cs: Vec<char> = p.chars().collect();
    let at = |i: usize| cs.get(i).copied();
    let mut out = String::with_capacity(p.len() + 8);
    let mut i = 0;
    let mut in_class = false;
    while let Some(c) = at(i) {
        i += 1;
        match c {
            '\\' => {
                let Some(d) = at(i) else {
                    // A trailing backslash: let the crate report it.
                    out.push('\\');
                    break;
                };
                i += 1;
                match d {
                    // Python's end of text; the crate spells it \z.
                    'Z' if !in_class => out.push_str(r"\z"),
                    // Literal in Python, word boundaries in the crate.
                    '<' | '>' => out.push(d),
                    _ => {
                        out.push('\\');
                        out.push(d);
                    }
                }
            }
            '[' if !in_class => {
                in_class = true;
                out.push('[');
                if at(i) == Some('^') {
                    out.push('^');
                    i += 1;
                }
                // A `]` first in a class is literal in both; spell it so anyway.
                if at(i) == Some(']') {
                    out.push_str(r"\]");
                    i += 1;
                }
            }
            // Python has no nested classes or class set operations: all literal.
            '[' => out.push_str(r"\["),
            ']' if in_class => {
                in_class = false;
                out.push(']');
            }
            '&' | '~' | '-' if in_class && at(i) == Some(c) => {
                out.push(c);
                out.push('\\');
                out.push(c);
                i += 1;
            }
            '{' if !in_class => {
                // Python reads `{` as a quantifier only in {n}, {n,}, {,m}, {n,m};
                // otherwise it is a literal brace (`server {`).
                let close = cs
                    .get(i..)
                    .and_then(|rest| rest.iter().position(|&x| x == '}'))
                    .map(|k| i + k);
                let body: String = close
                    .and_then(|k| cs.get(i..k))
                    .map(|s| s.iter().collect())
                    .unwrap_or_default();
                let (lo, hi) = body.split_once(',').unwrap_or((&body, ""));
                let digits = |s: &str| s.chars().all(|x| x.is_ascii_digit());
                let valid = close.is_some()
                    && digits(lo)
                    && digits(hi)
                    && (!lo.is_empty() || (body.contains(',') && !hi.is_empty()));
                match close {
                    Some(k) if valid => {
                        out.push('{');
                        if lo.is_empty() {
                            out.push('0');
                        }
                        out.push_str(&body);
                        out.push('}');
                        i = k + 1;
                    }
                    _ => out.push_str(r"\{"),
                }
            }
            '}' if !in_class => out.push_str(r"\}"),
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sub(p: &str, t: &str, hay: &str) -> String {
        let re = Pattern::new(p).unwrap();
        let tpl = Template::parse(t, &re).unwrap();
        let mut out = Vec::new();
        let mut last = 0;
        for g in re.all(hay.as_bytes()).unwrap() {
            let m = g[0].clone().unwrap();
            out.extend_from_slice(&hay.as_bytes()[last..m.start]);
            tpl.expand(hay.as_bytes(), &g, &mut out);
            last = m.end;
        }
        out.extend_from_slice(&hay.as_bytes()[last..]);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn backreference_in_pattern_uses_the_fallback_engine() {
        // lineinfile's 'Replace a line with backrefs' pattern: the regex crate refuses it.
        let re = Pattern::new(r"^(REF) .* \1$").unwrap();
        assert!(matches!(re.engine, Engine::Fancy(_)));
        assert!(re.is_match(b"REF this is a line for backrefs REF").unwrap());
        assert!(!re.is_match(b"REF this is a line for backrefs FER").unwrap());
        let plain = Pattern::new(r"^(REF) .*$").unwrap();
        assert!(matches!(plain.engine, Engine::Fast(_)));
    }

    #[test]
    fn python_named_backreference_and_lookaround() {
        let re = Pattern::new(r"(?P<q>['\x22])(?P<v>.*?)(?P=q)").unwrap();
        let g = re.captures_at(b"x = 'abc' y", 0).unwrap().unwrap();
        assert_eq!(g[2], Some(5..8));
        assert_eq!(sub(r"(?<=a)b", "X", "ab cb ab"), "aX cb aX");
        assert_eq!(sub(r"b(?!c)", "X", "bc bd"), "bc Xd");
        // \Z is the very end in Python (not before a final newline).
        assert!(!Pattern::new(r"(a)\1\Z").unwrap().is_match(b"aa\n").unwrap());
        assert!(Pattern::new(r"(a)\1\Z").unwrap().is_match(b"aa").unwrap());
    }

    #[test]
    fn templates_expand_as_python_for_both_engines() {
        assert_eq!(sub(r"(\w+)=(\w+)", r"\2=\1", "a=b c=d"), "b=a d=c");
        assert_eq!(sub(r"(?P<k>\w+)=(\w+)", r"\g<k>:\g<2>\n", "a=b"), "a:b\n");
        assert_eq!(sub(r"(\w)\1", r"[\1\g<0>]", "aabcc"), "[aaa]b[ccc]");
        // A group that did not take part expands to nothing (Python 3.5+).
        assert_eq!(sub(r"a(x)?", r"<\1>", "a"), "<>");
        // `$` is not special in Python templates; an unknown escape keeps its backslash.
        assert_eq!(sub("a", r"$0\.", "a"), r"$0\.");
        assert_eq!(sub("a", r"\101", "a"), "A");
    }

    #[test]
    fn template_errors_are_pythons() {
        let re = Pattern::new(r"(a)").unwrap();
        let err = |t: &str| Template::parse(t, &re).err().unwrap();
        assert_eq!(err(r"\2"), "invalid group reference 2");
        assert_eq!(err(r"\g<x>"), "unknown group name 'x'");
        assert_eq!(err(r"\g<1"), "missing >, unterminated name");
        assert_eq!(err(r"\q"), r"bad escape \q");
        assert_eq!(err("\\"), "bad escape (end of pattern)");
    }

    #[test]
    fn empty_matches_follow_python_3_7() {
        // re.sub('x*', '-', 'abxd') == '-a-b--d-'
        assert_eq!(sub("x*", "-", "abxd"), "-a-b--d-");
        assert_eq!(sub("", "-", "ab"), "-a-b-");
        assert_eq!(sub("x*", "-", "é"), "-é-");
    }

    #[test]
    fn bad_pattern_errors_and_non_utf8_input() {
        assert!(Pattern::new(r"(a").is_err());
        // Python refuses a look-behind of variable width too.
        assert!(Pattern::new(r"(?<=a+)b").is_err());
        // Text that is not UTF-8: a clear error from the backtracking engine (its byte
        // mode panicked on this input), while the regex crate still matches.
        let re = Pattern::new(r"(.)\1").unwrap();
        assert_eq!(re.find("é zz".as_bytes()).unwrap(), Some(3..5));
        assert!(re.find(b"\xff\xffzz").unwrap_err().contains("UTF-8"));
        assert_eq!(
            Pattern::new("z+").unwrap().find(b"\xffzz").unwrap(),
            Some(1..3)
        );
    }

    #[test]
    fn python_patterns_are_translated() {
        assert_eq!(py_pattern(r"^server {"), r"^server \{");
        assert_eq!(py_pattern(r"a{2}b{1,}c{,3}"), r"a{2}b{1,}c{0,3}");
        assert_eq!(py_pattern(r"end\Z"), r"end\z");
        assert_eq!(py_pattern(r"[[]x"), r"[\[]x");
        assert_eq!(py_pattern(r"[]a]"), r"[\]a]");
        assert_eq!(py_pattern(r"\<tag\>"), r"<tag>");
        assert_eq!(py_pattern(r"\\{x}"), r"\\\{x\}");
        assert_eq!(py_pattern(r"[a&&b]"), r"[a&\&b]");
        for p in [r"^server {", r"c{,3}", r"[[]", r"x}"] {
            assert!(regex::Regex::new(&py_pattern(p)).is_ok(), "{p}");
        }
    }
}
