//! `--tags` / `--skip-tags`, applied when the plan is made, with Ansible's rules
//! (`Taggable.evaluate_tags`): special tags `always`, `never`, `all`, `tagged`, `untagged`.

use rustle_runner::plan::Task;
use std::collections::BTreeSet;

/// The tags asked for and the tags skipped.
#[derive(Debug, Clone)]
pub(crate) struct Selection {
    only: BTreeSet<String>,
    skip: BTreeSet<String>,
}

impl Selection {
    /// From the command line; entries may be comma-separated lists. No `--tags` means
    /// `all`, as in Ansible (which still leaves out tasks tagged `never`).
    pub(crate) fn new(tags: &[String], skip_tags: &[String]) -> Self {
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

    /// Whether a task with these (own and inherited) tags runs.
    fn should_run(&self, tags: &BTreeSet<String>) -> bool {
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

/// Keeps the tasks that run with this selection; `inherited` are the tags of everything
/// enclosing the list. A block is kept when something in its `block` or `always` is.
pub(crate) fn filter(
    tasks: Vec<Task>,
    inherited: &BTreeSet<String>,
    selection: &Selection,
) -> Vec<Task> {
    tasks
        .into_iter()
        .filter_map(|t| keep(t, inherited, selection))
        .collect()
}

fn keep(mut task: Task, inherited: &BTreeSet<String>, selection: &Selection) -> Option<Task> {
    let mut tags = inherited.clone();
    tags.extend(task.tags.iter().cloned());
    let Some(block) = task.block.take() else {
        return selection.should_run(&tags).then_some(task);
    };
    let block = filter(block, &tags, selection);
    let rescue = filter(std::mem::take(&mut task.rescue), &tags, selection);
    let always = filter(std::mem::take(&mut task.always), &tags, selection);
    // Rescue alone cannot run: only a failure in the block starts it.
    if block.is_empty() && always.is_empty() {
        return None;
    }
    task.block = Some(block);
    task.rescue = rescue;
    task.always = always;
    Some(task)
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
}
