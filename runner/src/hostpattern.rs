//! Ansible host patterns (`web:&prod:!web2`, `group[0:2]`, `~regex`, globs): split into
//! terms and evaluated over a list of hosts. The deployer selects each play's hosts with
//! it; a runner matches a play's `hosts` against its own groups again when `group_by`
//! may have changed them.

use std::collections::BTreeMap;

/// Which of `n` hosts the pattern selects, given the hosts (indices, in order) each
/// term matches (`term` gets the term without its `[subscript]`, `!` or `&`). As in
/// Ansible, unions are applied first, then intersections, then exclusions; a pattern
/// with only `&`/`!` terms starts from `all`.
pub fn evaluate(pattern: &str, n: usize, mut term: impl FnMut(&str) -> Vec<usize>) -> Vec<bool> {
    let terms = split_host_pattern(pattern);
    let (mut regular, mut intersect, mut exclude) = (Vec::new(), Vec::new(), Vec::new());
    for t in &terms {
        if let Some(t) = t.strip_prefix('!') {
            exclude.push(t);
        } else if let Some(t) = t.strip_prefix('&') {
            intersect.push(t);
        } else {
            regular.push(t.as_str());
        }
    }
    if regular.is_empty() && !terms.is_empty() {
        regular.push("all");
    }
    let mut matched = |t: &str| {
        let (base, subscript) = split_subscript(t);
        let found = term(base);
        match subscript {
            Some(sub) => sub.apply(found),
            None => found,
        }
    };
    let mut selected = vec![false; n];
    for t in regular {
        for i in matched(t) {
            if let Some(slot) = selected.get_mut(i) {
                *slot = true;
            }
        }
    }
    for t in intersect {
        let found: std::collections::BTreeSet<usize> = matched(t).into_iter().collect();
        for (i, slot) in selected.iter_mut().enumerate() {
            *slot &= found.contains(&i);
        }
    }
    for t in exclude {
        for i in matched(t) {
            if let Some(slot) = selected.get_mut(i) {
                *slot = false;
            }
        }
    }
    selected
}

/// How one term (without subscript) matches names: `~regex` from the start of the name,
/// as Python's `re.match` does (an invalid expression matches nothing, like a name that
/// is not there), else an fnmatch glob (a plain name matches itself).
pub struct NameMatch {
    regex: Option<Option<regex::Regex>>,
    glob: crate::fnmatch::Pattern,
}

impl NameMatch {
    pub fn new(base: &str) -> NameMatch {
        NameMatch {
            regex: base
                .strip_prefix('~')
                .map(|re| regex::Regex::new(&format!("^(?:{re})")).ok()),
            glob: crate::fnmatch::Pattern::new(base),
        }
    }

    pub fn matches(&self, name: &str) -> bool {
        match &self.regex {
            Some(Some(r)) => r.is_match(name),
            Some(None) => false,
            None => self.glob.matches(name),
        }
    }

    /// Whether names are tried as host names even when a group matched: as in Ansible,
    /// for a regex, a glob or a dotted host name.
    pub fn tries_hosts(&self, base: &str) -> bool {
        self.regex.is_some() || base.contains(['.', '?', '*', '['])
    }
}

/// The hosts of `all` (indices, in order) one term (without subscript) matches, given
/// `groups`: the members of the groups whose names it matches, and (when none does, or
/// it is a glob, regex or dotted name) the hosts whose names it matches.
pub fn matching(base: &str, all: &[&str], groups: &BTreeMap<String, Vec<String>>) -> Vec<usize> {
    let m = NameMatch::new(base);
    // Each host's place, looked up once per member rather than searched for.
    let index: std::collections::HashMap<&str, usize> =
        all.iter().enumerate().map(|(i, h)| (*h, i)).collect();
    let mut mask = vec![false; all.len()];
    let mut any_group = false;
    for (name, members) in groups {
        if !m.matches(name) {
            continue;
        }
        any_group = true;
        for h in members {
            if let Some(slot) = index.get(h.as_str()).and_then(|i| mask.get_mut(*i)) {
                *slot = true;
            }
        }
    }
    if !any_group || m.tries_hosts(base) {
        for (slot, h) in mask.iter_mut().zip(all) {
            *slot |= m.matches(h);
        }
    }
    mask.iter()
        .enumerate()
        .filter_map(|(i, on)| on.then_some(i))
        .collect()
}

/// Whether `pattern` selects `host`, given `groups` (every group's hosts in inventory
/// order, `all` holding every host): what a runner decides for itself at the start of a
/// play after `group_by` has put it in groups the deployer did not know of.
pub fn selects(pattern: &str, host: &str, groups: &BTreeMap<String, Vec<String>>) -> bool {
    let mut all: Vec<&str> = groups
        .get("all")
        .map(|h| h.iter().map(String::as_str).collect())
        .unwrap_or_default();
    // The implicit localhost is in no group, `all` included.
    let me = all.iter().position(|h| *h == host).unwrap_or_else(|| {
        all.push(host);
        all.len() - 1
    });
    let selected = evaluate(pattern, all.len(), |base| matching(base, &all, groups));
    selected.get(me).copied().unwrap_or(false)
}

/// Splits an Ansible host pattern into terms: on commas if there are any, else on colons
/// outside brackets (so `web[1:3]` stays one term). A whole IPv6 address stays one term.
pub fn split_host_pattern(pattern: &str) -> Vec<String> {
    let pattern = pattern.trim();
    let terms: Vec<&str> = if pattern.contains(',') {
        pattern.split(',').collect()
    } else if pattern.parse::<std::net::Ipv6Addr>().is_ok() {
        vec![pattern]
    } else {
        let mut terms = Vec::new();
        let (mut depth, mut start) = (0usize, 0usize);
        for (i, c) in pattern.char_indices() {
            match c {
                '[' => depth += 1,
                ']' => depth = depth.saturating_sub(1),
                ':' if depth == 0 => {
                    terms.push(pattern.get(start..i).unwrap_or_default());
                    start = i + 1;
                }
                _ => {}
            }
        }
        terms.push(pattern.get(start..).unwrap_or_default());
        terms
    };
    terms
        .into_iter()
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Positional selection of a term's hosts: `[i]`, `[-i]`, `[a:b]`, `[a:]` (`-` also
/// separates), inclusive of both ends as in Ansible.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subscript {
    /// One host; negative counts from the end.
    Index(i64),
    /// Hosts from `start` to `end` inclusive; `None` means to the last.
    Range(usize, Option<usize>),
}

impl Subscript {
    /// Keeps the matched items this subscript selects; out of range selects nothing.
    pub fn apply(self, items: Vec<usize>) -> Vec<usize> {
        match self {
            Subscript::Index(i) => {
                let len = i64::try_from(items.len()).unwrap_or(i64::MAX);
                let pos = if i < 0 { len + i } else { i };
                usize::try_from(pos)
                    .ok()
                    .and_then(|p| items.get(p).copied())
                    .into_iter()
                    .collect()
            }
            Subscript::Range(start, end) => {
                let end = end.unwrap_or(usize::MAX);
                items
                    .into_iter()
                    .enumerate()
                    .filter_map(|(i, item)| (start <= i && i <= end).then_some(item))
                    .collect()
            }
        }
    }
}

/// Splits `name[subscript]` as Ansible does (`~regex` terms are never split).
pub fn split_subscript(term: &str) -> (&str, Option<Subscript>) {
    let not_split = (term, None);
    if term.starts_with('~') || !term.ends_with(']') {
        return not_split;
    }
    let Some(open) = term.rfind('[') else {
        return not_split;
    };
    let (base, inner) = (
        term.get(..open).unwrap_or_default(),
        term.get(open + 1..term.len() - 1).unwrap_or_default(),
    );
    if base.is_empty() {
        return not_split;
    }
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let signed = inner.strip_prefix('-').unwrap_or(inner);
    if digits(signed) {
        return match inner.parse() {
            Ok(i) => (base, Some(Subscript::Index(i))),
            Err(_) => not_split,
        };
    }
    let Some(sep) = inner.find([':', '-']) else {
        return not_split;
    };
    let (start, end) = (
        inner.get(..sep).unwrap_or_default(),
        inner.get(sep + 1..).unwrap_or_default(),
    );
    if !digits(start) || !(end.is_empty() || digits(end)) {
        return not_split;
    }
    match (start.parse(), end.parse().ok()) {
        (Ok(s), e) if end.is_empty() || e.is_some() => (base, Some(Subscript::Range(s, e))),
        _ => not_split,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn groups() -> BTreeMap<String, Vec<String>> {
        let g = |hosts: &[&str]| hosts.iter().map(|h| h.to_string()).collect::<Vec<_>>();
        BTreeMap::from([
            ("all".into(), g(&["web1", "web2", "db1"])),
            ("web".into(), g(&["web1", "web2"])),
            ("db".into(), g(&["db1"])),
            ("kind_blue".into(), g(&["web2", "db1"])),
        ])
    }

    #[test]
    fn one_host_is_matched_as_the_inventory_would_select_it() {
        let g = groups();
        for (pattern, host, want) in [
            ("kind_blue", "web2", true),
            ("kind_blue", "web1", false),
            ("all:!kind_blue", "web1", true),
            ("all:!kind_blue", "db1", false),
            ("web:&kind_blue", "web2", true),
            ("web:&kind_blue", "db1", false),
            ("!db", "web1", true),
            ("web[1]", "web2", true),
            ("web[1]", "web1", false),
            ("kind_*", "db1", true),
            ("~w.b1", "web1", true),
            ("db1,web1", "web1", true),
            ("nothere", "web1", false),
            // The implicit localhost is in no group, `all` included.
            ("localhost", "localhost", true),
            ("all", "localhost", false),
        ] {
            assert_eq!(selects(pattern, host, &g), want, "{pattern} {host}");
        }
    }

    #[test]
    fn terms_match_groups_then_host_names_in_order() {
        let g = groups();
        let all = ["web1", "web2", "db1"];
        assert_eq!(matching("kind_blue", &all, &g), [1, 2]);
        assert_eq!(matching("web?", &all, &g), [0, 1]);
        assert_eq!(matching("db1", &all, &g), [2]);
        assert!(matching("~(", &all, &g).is_empty());
        let picked = evaluate("web:db:!web1", all.len(), |t| matching(t, &all, &g));
        assert_eq!(picked, [false, true, true]);
    }
}
