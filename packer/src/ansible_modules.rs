//! The modules Ansible itself knows (`ansible_modules.txt`, written by `cargo xtask
//! ansible-modules` from the pinned ansible-core and `ansible` releases): a plan may
//! name one the runner lacks, and the task then fails on the host that runs it, as a
//! module fails there; a name Ansible does not know either is refused before anything
//! runs, as ansible-playbook refuses it when it parses the playbook.

use std::collections::HashSet;
use std::sync::LazyLock;

/// The short names and the collections, read once.
static KNOWN: LazyLock<(HashSet<&'static str>, HashSet<&'static str>)> = LazyLock::new(|| {
    let mut modules = HashSet::new();
    let mut collections = HashSet::new();
    for line in include_str!("ansible_modules.txt").lines() {
        if let Some(m) = line.strip_prefix("module ") {
            modules.insert(m);
        } else if let Some(c) = line.strip_prefix("collection ") {
            collections.insert(c);
        }
    }
    (modules, collections)
});

/// True when Ansible knows `module` as written: an `ansible.builtin`/`ansible.legacy`
/// module or a short name ansible-core routes, or any module of a collection the
/// `ansible` package ships (`community.general.make`).
pub fn is_ansible_module(module: &str) -> bool {
    let (modules, collections) = &*KNOWN;
    if let Some(short) = module
        .strip_prefix("ansible.builtin.")
        .or_else(|| module.strip_prefix("ansible.legacy."))
    {
        return modules.contains(short);
    }
    let mut parts = module.splitn(3, '.');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(ns), Some(coll), Some(name)) if !name.is_empty() => {
            collections.contains(format!("{ns}.{coll}").as_str())
        }
        (Some(short), None, None) => modules.contains(short),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ansibles_own_and_routed_names_and_shipped_collections_are_known_and_typos_not() {
        for known in [
            "yum_repository",
            "ansible.builtin.rpm_key",
            "ansible.legacy.dnf5",
            "firewalld",
            "make",
            "community.general.make",
            "ansible.posix.firewalld",
            // ansible-core routes `ansible.builtin.` names as it routes short ones.
            "ansible.builtin.make",
            "community.mysql.mysql_db",
        ] {
            assert!(is_ansible_module(known), "{known}");
        }
        for unknown in [
            "yum_repsitory",
            "ansible.builtin.mkae",
            "nosuch.collection.module",
            "community.general.",
            "",
        ] {
            assert!(!is_ansible_module(unknown), "{unknown}");
        }
    }
}
