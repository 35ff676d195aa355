//! Python's `fnmatch.fnmatchcase`, the one shell-pattern matcher of the project (find,
//! archive and unarchive, setup's `filter`, `fileglob`, and in the packer inventory
//! patterns and ssh_config `Host` patterns).
//!
//! A pattern is translated to a `regex` the way Python's `fnmatch.translate` does it, so
//! matching takes time linear in the name whatever the pattern (a backtracking matcher
//! is exponential on patterns like `*a*a*a*b`).

use std::fmt::Write as _;

/// A compiled shell pattern: `*` any run (slashes too), `?` one character, `[abc]`,
/// `[a-z]`, `[!x]` sets (a `]` right after `[` or `[!` is a member); a `[` without its
/// `]` is literal. Case-sensitive.
#[derive(Debug, Clone)]
pub struct Pattern(Option<regex::Regex>);

impl Pattern {
    /// Compiles `pattern`.
    pub fn new(pattern: &str) -> Pattern {
        // The translation is always a valid expression; only a pattern too large for the
        // regex size limit fails, and it then matches nothing.
        Pattern(regex::Regex::new(&translate(pattern)).ok())
    }

    /// Whether the whole of `name` matches.
    pub fn matches(&self, name: &str) -> bool {
        self.0.as_ref().is_some_and(|r| r.is_match(name))
    }
}

/// Whether the whole of `name` matches `pattern` (compiles it each time: hold a
/// [`Pattern`] to match many names).
pub fn fnmatch(pattern: &str, name: &str) -> bool {
    Pattern::new(pattern).matches(name)
}

/// `pattern` as an anchored regular expression, as `fnmatch.translate` builds it.
fn translate(pattern: &str) -> String {
    let p: Vec<char> = pattern.chars().collect();
    let mut out = String::from(r"(?s)\A");
    let mut i = 0;
    while let Some(&c) = p.get(i) {
        i += 1;
        match c {
            '*' => {
                while p.get(i) == Some(&'*') {
                    i += 1;
                }
                out.push_str(".*");
            }
            '?' => out.push('.'),
            '[' => match class_end(&p, i) {
                Some(end) => {
                    push_class(&mut out, p.get(i..end).unwrap_or_default());
                    i = end + 1;
                }
                None => out.push_str(r"\["),
            },
            c => out.push_str(&regex::escape(c.encode_utf8(&mut [0; 4]))),
        }
    }
    out.push_str(r"\z");
    out
}

/// Index of the `]` closing a set whose body starts at `start` (after the `[`).
fn class_end(p: &[char], start: usize) -> Option<usize> {
    let mut j = start;
    if p.get(j) == Some(&'!') {
        j += 1;
    }
    if p.get(j) == Some(&']') {
        j += 1;
    }
    (j..p.len()).find(|&k| p.get(k) == Some(&']'))
}

/// A set's body (between `[` and `]`) as a regex class. Every member is written as a
/// `\x{..}` escape, so no character means anything to the regex syntax; `a-z` is a
/// range, a `-` first or last is a member, and a reversed range (`z-a`) is empty, as
/// Python drops it.
fn push_class(out: &mut String, body: &[char]) {
    let (negate, body) = match body.split_first() {
        Some(('!', rest)) => (true, rest),
        _ => (false, body),
    };
    let mut members = String::new();
    let mut i = 0;
    while let Some(&lo) = body.get(i) {
        if let (Some('-'), Some(&hi)) = (body.get(i + 1), body.get(i + 2)) {
            if lo <= hi {
                let _ = write!(
                    members,
                    r"\x{{{:x}}}-\x{{{:x}}}",
                    u32::from(lo),
                    u32::from(hi)
                );
            }
            i += 3;
        } else {
            let _ = write!(members, r"\x{{{:x}}}", u32::from(lo));
            i += 1;
        }
    }
    match (negate, members.is_empty()) {
        // Python: an empty set never matches, a negated empty set matches any character.
        (false, true) => out.push_str(r"[^\x{0}-\x{10FFFF}]"),
        (true, true) => out.push('.'),
        (false, false) => {
            let _ = write!(out, "[{members}]");
        }
        (true, false) => {
            let _ = write!(out, "[^{members}]");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fnmatch;

    /// Expected values are what CPython's `fnmatch.fnmatchcase` returns.
    #[test]
    fn matches_like_python() {
        for (p, t, want) in [
            ("*.txt", "a.txt", true),
            ("*.txt", "a.txt.bak", false),
            ("a?c", "abc", true),
            ("a?c", "ac", false),
            ("[a-c]x", "bx", true),
            ("[!a-c]x", "bx", false),
            ("[!a-c]x", "dx", true),
            ("[]]", "]", true),
            ("[!]]", "]", false),
            ("[!]]", "a", true),
            ("[x", "[x", true),
            ("[", "[", true),
            ("[!]", "[!]", true),
            ("*/d/*", "x/y/d/z", true),
            ("", "a", false),
            ("", "", true),
            ("*", "", true),
            ("*", "a\nb", true),
            ("?", "\n", true),
            ("a*b*c", "axxbyyc", true),
            ("a*b*c", "axxbyy", false),
            ("eth[0-9]", "eth3", true),
            ("eth?", "eth10", false),
            ("[a-]", "-", true),
            ("[-a]", "-", true),
            ("[a-b-c]", "-", true),
            ("[a-b-c]", "c", true),
            ("[z-a]", "m", false),
            ("[az-ab]", "b", true),
            ("[az-ab]", "m", false),
            ("a.b", "axb", false),
            ("a+(b)|c^$\\", "a+(b)|c^$\\", true),
            ("[\\]", "\\", true),
            ("[&&]", "&", true),
            ("[^a]", "^", true),
            ("[^a]", "b", false),
            ("é?", "éü", true),
        ] {
            assert_eq!(fnmatch(p, t), want, "{p:?} vs {t:?}");
        }
    }

    /// Regression: find's recursive matcher tried every split for each `*`, so a pattern
    /// like this one took exponential time on a name that almost matches.
    #[test]
    fn pathological_pattern_takes_linear_time() {
        let pattern = format!("{}b", "*a".repeat(30));
        let name = "a".repeat(200);
        let start = std::time::Instant::now();
        assert!(!fnmatch(&pattern, &name));
        assert!(fnmatch(&pattern, &format!("{name}b")));
        assert!(start.elapsed() < std::time::Duration::from_secs(2));
    }
}
