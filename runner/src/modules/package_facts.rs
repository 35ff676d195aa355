//! package_facts: the installed packages as the fact `packages` (name -> list of
//! installed versions), with ansible.builtin.package_facts' managers, aliases,
//! `strategy` and messages. The package database is read with the host's own tools
//! (`dpkg-query` for apt, `rpm -qa` for rpm, `apk info -v`) where Ansible reads apt and
//! rpm through their Python bindings; apt's `origin` (the archive a package came from,
//! which only apt's cache knows) is left empty.

use super::tools;
use super::{Ctx, ModuleError, Outcome, args};
use crate::plan::Vars;
use serde_json::{Map, Value, json};

/// Ansible's managers in its order (`auto` tries them so), then the aliases.
const MANAGERS: &[&str] = &["rpm", "apt", "pacman", "pkg", "portage", "apk", "pkg_info"];
const ALIASES: &[(&str, &[&str])] = &[
    ("rpm", &["dnf", "dnf5", "yum", "zypper"]),
    ("pkg", &["pkg5", "pkgng"]),
    ("pkg_info", &["openbsd_pkg"]),
];

/// `package_facts`.
pub(super) fn run(a: &Vars, ctx: &Ctx<'_>) -> Result<Outcome, ModuleError> {
    args::only(a, &["manager", "strategy"])?;
    let given: Vec<String> = match a.get("manager") {
        None | Some(Value::Null) => vec!["auto".into()],
        Some(_) => args::str_list(a, "manager")?,
    };
    let strategy = args::opt_str(a, "strategy")?.unwrap_or_else(|| "first".into());
    if strategy != "first" && strategy != "all" {
        return Err(ModuleError::BadArgs(format!(
            "argument 'strategy' must be one of first, all; got '{strategy}'"
        )));
    }
    let mut managers: Vec<String> = given.iter().map(|m| m.to_lowercase()).collect();
    let known: Vec<&str> = MANAGERS
        .iter()
        .copied()
        .chain(ALIASES.iter().flat_map(|(_, a)| a.iter().copied()))
        .collect();
    if let Some(i) = managers.iter().position(|m| m == "auto") {
        managers.remove(i);
        managers.extend(known.iter().map(|m| m.to_string()));
    }
    let unsupported: Vec<&str> = managers
        .iter()
        .map(String::as_str)
        .filter(|m| !known.contains(m))
        .collect();
    if !unsupported.is_empty() {
        let msg = if given.iter().any(|m| m == "auto") {
            "Could not auto detect a usable package manager, check warnings for details.".into()
        } else {
            format!(
                "Unsupported package managers requested: {}",
                unsupported.join(", ")
            )
        };
        return Ok(Outcome::fail(msg));
    }
    let mut packages = Map::new();
    let mut found = 0;
    let mut seen = Vec::new();
    let mut warnings = Vec::new();
    for m in &managers {
        if strategy == "first" && found > 0 {
            break;
        }
        let name = ALIASES
            .iter()
            .find(|(_, aliases)| aliases.contains(&m.as_str()))
            .map_or(m.as_str(), |(target, _)| target);
        if seen.contains(&name) {
            continue;
        }
        seen.push(name);
        // Ansible reads rpm through its Python bindings, which a dpkg host does not
        // have even where the rpm tool is installed (to manage repository keys, say):
        // there, looking for a manager on its own, it goes on to apt.
        if name == "rpm" && !given.iter().any(|g| g == m) && tools::find_bin("dpkg-query").is_some()
        {
            continue;
        }
        let Some(listed) = list(ctx, name) else {
            if given.iter().any(|g| g == m) {
                warnings.push(format!(
                    "Requested package manager {m} was not usable by this module: its tool is not on this host"
                ));
            }
            continue;
        };
        found += 1;
        match listed {
            Ok(entries) => {
                for e in entries {
                    let key = e
                        .get("name")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string();
                    if let Value::Array(all) = packages.entry(key).or_insert_with(|| json!([])) {
                        all.push(e);
                    }
                }
            }
            Err(e) => warnings.push(format!("Failed to retrieve packages with {name}: {e}")),
        }
    }
    if found == 0 {
        let shown: Vec<String> = managers.iter().map(|m| format!("'{m}'")).collect();
        // The warnings say why each requested manager was unusable: kept on the failure
        // too, as Ansible's module.warn() puts them in every result.
        let mut out = Outcome::fail(format!(
            "Could not detect a supported package manager from the following list: [{}], or the required Python library is not installed. Check warnings for details.",
            shown.join(", ")
        ));
        if !warnings.is_empty() {
            out = out.with("warnings", warnings);
        }
        return Ok(out);
    }
    let mut out = Outcome::ok().with(
        "ansible_facts",
        json!({"packages": Value::Object(packages)}),
    );
    if !warnings.is_empty() {
        out = out.with("warnings", warnings);
    }
    Ok(out)
}

/// The installed packages by `manager`; `None` when its tool is not on this host.
fn list(ctx: &Ctx<'_>, manager: &str) -> Option<Result<Vec<Value>, String>> {
    let (tool, argv): (&str, &[&str]) = match manager {
        "apt" => (
            "dpkg-query",
            &[
                "-W",
                "-f",
                "${db:Status-Status}\t${Package}\t${Version}\t${Architecture}\t${Section}\n",
            ],
        ),
        "rpm" => (
            "rpm",
            &[
                "-qa",
                "--qf",
                "%{NAME}\t%{VERSION}\t%{RELEASE}\t%{EPOCH}\t%{ARCH}\n",
            ],
        ),
        "apk" => ("apk", &["info", "-v"]),
        _ => return None,
    };
    let path = tools::find_bin(tool)?;
    let argv: Vec<String> = argv.iter().map(|s| s.to_string()).collect();
    let out = match tools::run_command(ctx.command(&path), &argv, None) {
        Ok(o) if o.rc == 0 => o,
        Ok(o) => {
            return Some(Err(format!(
                "Unable to list packages rc={} : {}",
                o.rc, o.stderr
            )));
        }
        Err(e) => return Some(Err(e.to_string())),
    };
    let entries = out
        .stdout
        .lines()
        .filter_map(|line| match manager {
            "apt" => {
                let f: Vec<&str> = line.split('\t').collect();
                match f.as_slice() {
                    [status, name, version, arch, section]
                        if !matches!(*status, "not-installed" | "config-files") =>
                    {
                        Some(json!({"name": name, "version": version, "arch": arch,
                                    "category": section, "origin": "", "source": "apt"}))
                    }
                    _ => None,
                }
            }
            "rpm" => {
                let f: Vec<&str> = line.split('\t').collect();
                let [name, version, release, epoch, arch] = f.as_slice() else {
                    return None;
                };
                let epoch = epoch.parse::<i64>().map_or(Value::Null, Value::from);
                Some(json!({"name": name, "version": version, "release": release,
                            "epoch": epoch, "arch": arch, "source": "rpm"}))
            }
            _ => {
                let nvr: Vec<&str> = line.rsplitn(3, '-').collect();
                Some(match nvr.as_slice() {
                    [release, version, name] => {
                        json!({"name": name, "version": version, "release": release, "source": "apk"})
                    }
                    _ => json!({"name": line, "version": "", "release": "", "source": "apk"}),
                })
            }
        })
        .collect();
    Some(Ok(entries))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::modules::run_in_dir_for_test;

    fn facts(args: Value) -> Outcome {
        run_in_dir_for_test("package_facts", &std::env::temp_dir(), &args, false).unwrap()
    }

    #[test]
    fn dpkg_hosts_list_their_packages_under_apt() {
        if tools::find_bin("dpkg-query").is_none() {
            return;
        }
        let o = facts(json!({"manager": "apt"}));
        assert!(!o.failed, "{o:?}");
        let dpkg = &o.data["ansible_facts"]["packages"]["dpkg"][0];
        assert_eq!(dpkg["name"], "dpkg");
        // A package built for several architectures is named without its `:arch`,
        // as python-apt names it for Ansible (libc6 is one on every Debian).
        let packages = o.data["ansible_facts"]["packages"].as_object().unwrap();
        assert!(packages.contains_key("libc6"), "libc6 by its plain name");
        assert!(
            !packages.keys().any(|k| k.contains(':')),
            "no :arch in names"
        );
        assert_eq!(dpkg["source"], "apt");
        assert!(
            dpkg["version"].as_str().is_some_and(|v| !v.is_empty()),
            "{dpkg}"
        );
        let o = facts(json!({}));
        assert!(
            o.data["ansible_facts"]["packages"]["dpkg"].is_array(),
            "{o:?}"
        );
    }

    #[test]
    fn unknown_managers_and_missing_tools_fail_with_ansibles_messages() {
        let o = facts(json!({"manager": ["nosuch"]}));
        assert_eq!(
            o.msg.as_deref(),
            Some("Unsupported package managers requested: nosuch")
        );
        let o = facts(json!({"manager": "pacman"}));
        assert!(o.failed);
        // package_facts target (test_warning_unusable.yml): the failure keeps the warning.
        if tools::find_bin("pacman").is_none() {
            assert!(
                o.data["warnings"][0]
                    .as_str()
                    .unwrap()
                    .starts_with("Requested package manager pacman was not usable by this module"),
                "{o:?}"
            );
        }
        assert!(o.msg.unwrap().starts_with(
            "Could not detect a supported package manager from the following list: ['pacman']"
        ));
    }
}
