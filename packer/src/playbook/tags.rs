//! `--tags` / `--skip-tags`, applied when the plan is made to what Ansible reads
//! statically (plays, roles, imports), with the runner's [`Selection`] (Ansible's rules);
//! the runner applies it to what includes bring in.

use rustle_runner::plan::Task;
pub(crate) use rustle_runner::tags::Selection;
use std::collections::BTreeSet;

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

    fn task(name: &str, tags: &[&str]) -> Task {
        Task {
            name: Some(name.into()),
            module: "debug".into(),
            tags: tags.iter().map(|s| s.to_string()).collect(),
            ..Task::default()
        }
    }

    #[test]
    fn a_block_keeps_what_its_tags_select_and_goes_when_nothing_is_left() {
        let inner = Task {
            block: Some(vec![task("a", &[]), task("b", &["x"])]),
            tags: vec!["blk".into()],
            ..Task::default()
        };
        let sel = Selection::new(&["blk".into()], &[]);
        let kept = filter(vec![inner.clone(), task("c", &[])], &BTreeSet::new(), &sel);
        assert_eq!(kept.len(), 1);
        assert_eq!(kept[0].block.as_ref().map(Vec::len), Some(2));
        let none = Selection::new(&["zzz".into()], &[]);
        assert!(filter(vec![inner], &BTreeSet::new(), &none).is_empty());
    }
}
