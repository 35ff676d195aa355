//! Finds the line of a keyword in a YAML file from the path the loader reports
//! (`plays[0] 'web' > tasks[2] 'install'` and the keyword `delegate_to`), so that errors
//! name the file, the line and the keyword.
//!
//! The YAML parser in use gives no positions for values, so this walks the text by
//! indentation: block mappings and block sequences (indented or not), which is how
//! playbooks are written. Anything it cannot follow (flow style `{...}`/`[...]`, anchors,
//! multi-document files) gives `None`, and the error keeps its path without a line.

/// A region of the text that holds one mapping: lines `first..=last` (0-based), keys at
/// column `col`; `item` when `first` starts with `- ` (the key follows the dash).
#[derive(Debug, Clone, Copy)]
struct Node {
    first: usize,
    last: usize,
    col: usize,
}

/// One line split into its indentation and content; `None` for blanks and comments.
fn content(line: &str) -> Option<(usize, &str)> {
    let trimmed = line.trim_start();
    if trimmed.is_empty() || trimmed.starts_with('#') {
        return None;
    }
    Some((line.len() - trimmed.len(), trimmed))
}

/// The column and text of a line's first key or item, looking past `- ` marks when
/// `through_dash` (the first line of a sequence item).
fn key_at(line: &str, through_dash: bool) -> Option<(usize, &str)> {
    let (mut col, mut text) = content(line)?;
    while through_dash && (text.starts_with("- ") || text == "-") {
        let rest = text.get(1..).unwrap_or_default();
        let trimmed = rest.trim_start();
        col += 1 + rest.len() - trimmed.len();
        text = trimmed;
    }
    Some((col, text))
}

/// Whether `text` starts with the mapping key `key` (plain or quoted).
fn is_key(text: &str, key: &str) -> bool {
    for quoted in [key.to_string(), format!("\"{key}\""), format!("'{key}'")] {
        if let Some(rest) = text.strip_prefix(&quoted)
            && rest.trim_start().starts_with(':')
        {
            return true;
        }
    }
    false
}

/// The line (1-based) of `keyword` at `path` in `text`; the entry's own line when the
/// keyword is not a key there (or is empty).
pub(crate) fn locate(text: &str, path: &str, keyword: &str) -> Option<usize> {
    let lines: Vec<&str> = text.lines().collect();
    if lines.iter().filter(|l| l.trim_end() == "---").count() > 1 {
        return None;
    }
    let first = lines
        .iter()
        .position(|l| content(l).is_some_and(|(_, t)| t != "---" && !t.starts_with('%')))?;
    let (col, _) = content(lines.get(first)?)?;
    let mut node = Node {
        first,
        last: lines.len().saturating_sub(1),
        col,
    };
    let mut at_root = true;
    for segment in path.split(" > ").filter(|s| !s.is_empty()) {
        let head = segment.split(" '").next().unwrap_or(segment).trim();
        let (key, index) = match head.split_once('[') {
            Some((k, rest)) => (k, rest.trim_end_matches(']').parse::<usize>().ok()),
            None => (head, None),
        };
        let root_list = at_root
            && index.is_some()
            && lines
                .get(node.first)
                .and_then(|l| content(l))
                .is_some_and(|(_, t)| t.starts_with("- ") || t == "-");
        node = if root_list {
            item(&lines, node, index?)?
        } else {
            let value = value_of(&lines, node, key)?;
            match index {
                Some(i) => item(&lines, value, i)?,
                None => value,
            }
        };
        at_root = false;
    }
    if !keyword.is_empty()
        && let Some(line) = find_key(&lines, node, keyword)
    {
        return Some(line + 1);
    }
    Some(node.first + 1)
}

/// The line of `key` among the keys of `node`.
fn find_key(lines: &[&str], node: Node, key: &str) -> Option<usize> {
    (node.first..=node.last).find(|&i| {
        lines
            .get(i)
            .and_then(|l| key_at(l, i == node.first))
            .is_some_and(|(c, t)| c == node.col && is_key(t, key))
    })
}

/// The region of the value of `key` in `node`: the lines after the key line that are
/// indented deeper (or sequence items at the key's own column).
fn value_of(lines: &[&str], node: Node, key: &str) -> Option<Node> {
    let at = find_key(lines, node, key)?;
    let mut last = at;
    let mut col = None;
    for i in at + 1..=node.last {
        let Some((c, t)) = lines.get(i).and_then(|l| content(l)) else {
            continue;
        };
        let dash = t.starts_with("- ") || t == "-";
        if c < node.col || (c == node.col && !dash) {
            break;
        }
        col.get_or_insert(c);
        last = i;
    }
    let first = at + 1;
    Some(Node {
        first: first.min(last),
        last,
        col: col?,
    })
}

/// The `index`-th item of the sequence in `node`, as a mapping region.
fn item(lines: &[&str], node: Node, index: usize) -> Option<Node> {
    let starts: Vec<usize> = (node.first..=node.last)
        .filter(|&i| {
            lines
                .get(i)
                .and_then(|l| content(l))
                .is_some_and(|(c, t)| c == node.col && (t.starts_with("- ") || t == "-"))
        })
        .collect();
    let first = *starts.get(index)?;
    let last = starts
        .get(index + 1)
        .map(|n| n.saturating_sub(1))
        .unwrap_or(node.last);
    let (col, _) = key_at(lines.get(first)?, true)?;
    Some(Node { first, last, col })
}

#[cfg(test)]
mod tests {
    use super::locate;

    const PLAYBOOK: &str = "---
# a comment
- name: first
  hosts: all
  tasks:
    - name: one
      debug: msg=x
    - name: two
      command: ls
      delegate_to: other

- name: second
  hosts: web
  tasks:
  - name: a
    block:
      - shell: echo
        async: 5
  - name: b
    loop_control:
      index_var: i
";

    #[test]
    fn finds_keywords_by_path() {
        assert_eq!(
            locate(PLAYBOOK, "plays[0] 'first' > tasks[1] 'two'", "delegate_to"),
            Some(10)
        );
        assert_eq!(locate(PLAYBOOK, "plays[0] 'first'", "hosts"), Some(4));
        assert_eq!(locate(PLAYBOOK, "plays[1] 'second'", "tasks"), Some(14));
        // Indentless sequences and nested blocks.
        assert_eq!(
            locate(
                PLAYBOOK,
                "plays[1] 'second' > tasks[0] 'a' > block[0]",
                "async"
            ),
            Some(18)
        );
        assert_eq!(
            locate(
                PLAYBOOK,
                "plays[1] > tasks[1] 'b' > loop_control",
                "index_var"
            ),
            Some(21)
        );
        // The entry itself when the keyword is not one of its keys.
        assert_eq!(locate(PLAYBOOK, "plays[0] > tasks[0]", "nope"), Some(6));
        assert_eq!(locate(PLAYBOOK, "plays[0] > tasks[0]", ""), Some(6));
        // A task file is a list at the top.
        assert_eq!(
            locate(
                "- debug: msg=x\n- command: ls\n  async: 3\n",
                "tasks[1]",
                "async"
            ),
            Some(3)
        );
        // Flow style cannot be followed.
        assert_eq!(
            locate("- {hosts: all, tasks: []}\n", "plays[0]", "tasks"),
            Some(1)
        );
        assert_eq!(locate("[{hosts: all}]\n", "plays[0]", "hosts"), None);
    }
}
