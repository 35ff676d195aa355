//! Role defaults below inventory variables, as in Ansible.
//!
//! The plan's lowest variable scope is the inventory, so role defaults have to live in a
//! play's or a role block's `vars`, which rank above it. The loader marks the names it put
//! there only as defaults (the [`MARK`] entry of those `vars`); once the inventory is known
//! [`apply_role_defaults`] drops, for each host, the marked names its inventory variables
//! set, so `group_vars`/`host_vars` override role defaults as they do in Ansible. A play
//! whose hosts differ in which of those names they set is split into one copy per set of
//! hosts (named explicitly): each host still runs the same tasks in the same order,
//! since every host runs its own plan.

use crate::inventory::Inventory;
use rustle_runner::plan::{DeployPlan, Play, Task, Vars};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

/// The `vars` entry listing the names of that scope that are only role defaults.
pub const MARK: &str = "__rustle_role_defaults";

/// Records which names of `vars` are role defaults.
pub(crate) fn mark(vars: &mut Vars, names: Vec<String>) {
    if !names.is_empty() {
        vars.insert(
            MARK.to_string(),
            Value::Array(names.into_iter().map(Value::String).collect()),
        );
    }
}

/// Takes names off the mark (they are set by something above the defaults).
pub(crate) fn unmark<'a>(vars: &mut Vars, names: impl IntoIterator<Item = &'a String>) {
    let names: BTreeSet<&String> = names.into_iter().collect();
    if let Some(Value::Array(list)) = vars.get_mut(MARK) {
        list.retain(|v| v.as_str().is_none_or(|s| !names.contains(&s.to_string())));
        if list.is_empty() {
            vars.shift_remove(MARK);
        }
    }
}

/// Takes names off every mark of a play.
pub(crate) fn unmark_all<'a>(play: &mut Play, names: impl IntoIterator<Item = &'a String>) {
    let names: Vec<&String> = names.into_iter().collect();
    if names.is_empty() {
        return;
    }
    unmark(&mut play.vars, names.iter().copied());
    walk_mut(&mut play.tasks, &mut |vars| {
        unmark(vars, names.iter().copied())
    });
    walk_mut(&mut play.handlers, &mut |vars| {
        unmark(vars, names.iter().copied())
    });
}

fn walk_mut(tasks: &mut [Task], f: &mut dyn FnMut(&mut Vars)) {
    for t in tasks {
        f(&mut t.vars);
        if let Some(b) = t.block.as_mut() {
            walk_mut(b, f);
        }
        walk_mut(&mut t.rescue, f);
        walk_mut(&mut t.always, f);
    }
}

/// The marked names of one scope.
fn marked(vars: &Vars) -> Vec<String> {
    match vars.get(MARK) {
        Some(Value::Array(list)) => list
            .iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect(),
        _ => Vec::new(),
    }
}

/// Drops from every marked scope the names in `drop`, and the marks.
fn resolve(play: &mut Play, drop: &BTreeSet<String>) {
    let apply = |vars: &mut Vars| {
        for name in marked(vars) {
            if drop.contains(&name) {
                vars.shift_remove(&name);
            }
        }
        vars.shift_remove(MARK);
    };
    apply(&mut play.vars);
    walk_mut(&mut play.tasks, &mut |v| apply(v));
    walk_mut(&mut play.handlers, &mut |v| apply(v));
}

/// Lets each host's inventory variables beat the role defaults of the plays it runs
/// (see the module documentation). Plays are split per set of overriding names when
/// their hosts differ.
pub fn apply_role_defaults(plan: &mut DeployPlan, inventory: &Inventory) {
    let mut plays = Vec::with_capacity(plan.plays.len());
    for mut play in std::mem::take(&mut plan.plays) {
        let mut names: BTreeSet<String> = marked(&play.vars).into_iter().collect();
        let mut collect = |vars: &mut Vars| names.extend(marked(vars));
        walk_mut(&mut play.tasks, &mut collect);
        walk_mut(&mut play.handlers, &mut collect);
        if names.is_empty() {
            plays.push(play);
            continue;
        }
        let mut classes: BTreeMap<BTreeSet<String>, Vec<String>> = BTreeMap::new();
        for host in inventory.select(&play.hosts.join(":")) {
            let set: BTreeSet<String> = names
                .iter()
                .filter(|n| host.vars.contains_key(*n))
                .cloned()
                .collect();
            classes.entry(set).or_default().push(host.name.clone());
        }
        // Copies name their hosts; a name that is also a group, or that a pattern would
        // split, cannot be named safely: keep the defaults over the inventory there.
        let unsafe_name = |h: &String| {
            h.contains([':', ',', '!', '&', '*', '?', '[', '~'])
                || inventory.group_names().any(|g| g == h)
        };
        if classes.len() > 1 && classes.values().flatten().any(unsafe_name) {
            resolve(&mut play, &BTreeSet::new());
            plays.push(play);
            continue;
        }
        if classes.len() <= 1 {
            let drop = classes.into_keys().next().unwrap_or_default();
            resolve(&mut play, &drop);
            plays.push(play);
            continue;
        }
        for (drop, hosts) in classes {
            let mut copy = play.clone();
            copy.hosts = hosts;
            resolve(&mut copy, &drop);
            plays.push(copy);
        }
    }
    plan.plays = plays;
}
