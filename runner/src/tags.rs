//! `--tags` / `--skip-tags` selection with Ansible's rules (`Taggable.evaluate_tags`):
//! special tags `always`, `never`, `all`, `tagged`, `untagged`. The packer applies it to
//! what it reads statically; the executor applies it to the tasks an `include_tasks` or
//! `include_role` brings in, which Ansible filters when it loads them.

use serde_json::Value;
use std::collections::BTreeSet;

/// The tags asked for and the tags skipped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection {
    only: BTreeSet<String>,
    skip: BTreeSet<String>,
}

impl Default for Selection {
    /// No `--tags` and no `--skip-tags`: everything but `never`.
    fn default() -> Self {
        Selection::new(&[], &[])
    }
}

impl Selection {
    /// From the command line; entries may be comma-separated lists. No `--tags` means
    /// `all`, as in Ansible (which still leaves out tasks tagged `never`).
    pub fn new(tags: &[String], skip_tags: &[String]) -> Self {
        let split = |list: &[String]| -> BTreeSet<String> {
            list.iter()
                .flat_map(|t| t.split(','))
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(str::to_string)
                .collect()
        };
        let mut only = split(tags);
        if only.is_empty() {
            only.insert("all".to_string());
        }
        Selection {
            only,
            skip: split(skip_tags),
        }
    }

    /// From the run's magic variables `ansible_run_tags` and `ansible_skip_tags`, which
    /// say the same as the command line did.
    pub fn from_magic(run_tags: Option<&Value>, skip_tags: Option<&Value>) -> Self {
        let list = |v: Option<&Value>| -> Vec<String> {
            v.and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|t| t.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default()
        };
        Selection::new(&list(run_tags), &list(skip_tags))
    }

    /// Whether a task with these (own and inherited) tags runs.
    pub fn should_run(&self, tags: &BTreeSet<String>) -> bool {
        let untagged: BTreeSet<String> = ["untagged".to_string()].into();
        let tags = if tags.is_empty() { &untagged } else { tags };
        let has = |t: &str| tags.contains(t);
        let only = |t: &str| self.only.contains(t);
        let skip = |t: &str| self.skip.contains(t);
        let run = has("always")
            || (only("all") && !has("never"))
            || !tags.is_disjoint(&self.only)
            || (only("tagged") && *tags != untagged && !has("never"));
        if !run {
            return false;
        }
        if skip("all") {
            return has("always") && !skip("always");
        }
        tags.is_disjoint(&self.skip) && !(skip("tagged") && *tags != untagged)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(tags: &[&str]) -> BTreeSet<String> {
        tags.iter().map(|s| s.to_string()).collect()
    }

    fn sel(only: &[&str], skip: &[&str]) -> Selection {
        let v = |l: &[&str]| l.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        Selection::new(&v(only), &v(skip))
    }

    #[test]
    fn ansible_rules() {
        let default = sel(&[], &[]);
        assert!(default.should_run(&set(&[])));
        assert!(default.should_run(&set(&["x"])));
        assert!(!default.should_run(&set(&["never"])));
        assert!(default.should_run(&set(&["never", "always"])));

        let web = sel(&["web"], &[]);
        assert!(web.should_run(&set(&["web", "db"])));
        assert!(!web.should_run(&set(&["db"])));
        assert!(!web.should_run(&set(&[])));
        assert!(web.should_run(&set(&["always"])));
        assert!(web.should_run(&set(&["never", "web"])));

        assert!(sel(&["untagged"], &[]).should_run(&set(&[])));
        assert!(!sel(&["untagged"], &[]).should_run(&set(&["a"])));
        assert!(sel(&["tagged"], &[]).should_run(&set(&["a"])));
        assert!(!sel(&["tagged"], &[]).should_run(&set(&[])));

        let skip = sel(&[], &["db"]);
        assert!(!skip.should_run(&set(&["db"])));
        assert!(skip.should_run(&set(&["web"])));
        assert!(!sel(&[], &["always"]).should_run(&set(&["always"])));
        assert!(sel(&[], &["all"]).should_run(&set(&["always"])));
        assert!(!sel(&[], &["all"]).should_run(&set(&["x"])));
        assert!(!sel(&[], &["untagged"]).should_run(&set(&[])));
        assert!(!sel(&["a,b"], &[]).should_run(&set(&["c"])));
        assert!(sel(&["a,b"], &[]).should_run(&set(&["b"])));
    }

    #[test]
    fn the_magic_variables_say_what_the_command_line_said() {
        let run = serde_json::json!(["web"]);
        let skip = serde_json::json!(["db"]);
        assert_eq!(
            Selection::from_magic(Some(&run), Some(&skip)),
            sel(&["web"], &["db"])
        );
        assert_eq!(Selection::from_magic(None, None), sel(&[], &[]));
        assert_eq!(
            Selection::from_magic(Some(&serde_json::json!(["all"])), None),
            Selection::default()
        );
    }
}
