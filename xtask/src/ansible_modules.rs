//! `cargo xtask ansible-modules`: writes `packer/src/ansible_modules.txt`, the module
//! names Ansible itself knows, from the pinned ansible-core and `ansible` sdists: every
//! `ansible.builtin` module, every short name ansible-core's runtime routes to a
//! collection, and the collections the `ansible` package ships. The packer refuses a
//! module nobody knows before anything runs (a typo, as Ansible does), and leaves one
//! Ansible knows but the runner lacks to fail where a host runs it.

use crate::Result;
use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

pub fn main() -> Result<()> {
    let (core, collections) = crate::conformance::sdists()?;
    let core_files = tar_list(&core)?;
    let builtin: BTreeSet<String> = core_files
        .iter()
        .filter_map(|f| {
            let rest = f.split_once("/lib/ansible/modules/")?.1;
            let name = rest.strip_suffix(".py")?;
            (!name.contains('/') && !name.starts_with('_')).then(|| name.to_string())
        })
        .collect();
    let runtime = tar_read(&core, "lib/ansible/config/ansible_builtin_runtime.yml")?;
    let routed = routed_modules(&runtime);
    let colls: BTreeSet<String> = tar_list(&collections)?
        .iter()
        .filter_map(|f| {
            let mut parts = f.split('/').skip(1);
            match (parts.next(), parts.next(), parts.next(), parts.next()) {
                (Some("ansible_collections"), Some(ns), Some(coll), Some(_)) => {
                    Some(format!("{ns}.{coll}"))
                }
                _ => None,
            }
        })
        .collect();
    if builtin.len() < 50 || routed.len() < 1000 || colls.len() < 50 {
        return Err(format!(
            "the sdists hold fewer names than expected ({} builtin, {} routed, {} collections): not writing",
            builtin.len(),
            routed.len(),
            colls.len()
        ));
    }
    let mut out = String::from(
        "# Written by `cargo xtask ansible-modules` from the pinned ansible-core and ansible\n\
         # sdists; not edited by hand. `module NAME`: a short name ansible-core knows (its\n\
         # own modules and the names its runtime routes to collections); `collection NS.COLL`:\n\
         # a collection the ansible package ships.\n",
    );
    for name in builtin.union(&routed) {
        out.push_str(&format!("module {name}\n"));
    }
    for c in &colls {
        out.push_str(&format!("collection {c}\n"));
    }
    let path = crate::root().join("packer/src/ansible_modules.txt");
    std::fs::write(&path, out).map_err(|e| format!("{}: {e}", path.display()))?;
    eprintln!(
        "xtask: wrote {} ({} modules, {} collections)",
        path.display(),
        builtin.union(&routed).count(),
        colls.len()
    );
    Ok(())
}

/// The entries of `plugin_routing: modules:` in ansible-core's runtime file: the keys
/// four spaces in, up to the next section at two.
fn routed_modules(runtime: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let (mut routing, mut modules) = (false, false);
    for line in runtime.lines() {
        let indent = line.len() - line.trim_start().len();
        let text = line.trim();
        if text.is_empty() || text.starts_with('#') {
            continue;
        }
        match indent {
            0 => routing = text == "plugin_routing:",
            2 => modules = routing && text == "modules:",
            4 if modules => {
                if let Some(name) = text.strip_suffix(':') {
                    names.insert(name.to_string());
                }
            }
            _ => {}
        }
    }
    names
}

fn tar_list(sdist: &Path) -> Result<Vec<String>> {
    let out = Command::new("tar")
        .arg("-tzf")
        .arg(sdist)
        .output()
        .map_err(|e| format!("tar: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "tar -tzf {}: {}",
            sdist.display(),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(String::from)
        .collect())
}

/// One file of the sdist (`inner` below its top directory).
fn tar_read(sdist: &Path, inner: &str) -> Result<String> {
    let top = sdist
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_suffix(".tar.gz"))
        .ok_or_else(|| format!("{}: not an sdist name", sdist.display()))?;
    let out = Command::new("tar")
        .arg("-xzOf")
        .arg(sdist)
        .arg(format!("{top}/{inner}"))
        .output()
        .map_err(|e| format!("tar: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "tar -xzOf {} {inner}: {}",
            sdist.display(),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    String::from_utf8(out.stdout).map_err(|e| format!("{inner}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routed_module_names_are_the_keys_of_the_modules_section_only() {
        let runtime = "\
plugin_routing:
  action:
    not_a_module:
      redirect: x.y.z
  modules:
    # a comment
    firewalld:
      redirect: ansible.posix.firewalld
    make:
      redirect: community.general.make
  lookup:
    nor_this:
      redirect: a.b.c
other:
  modules:
    nope:
";
        let names: Vec<String> = routed_modules(runtime).into_iter().collect();
        assert_eq!(names, ["firewalld", "make"]);
    }
}
