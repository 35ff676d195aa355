//! alternatives (community.general): a link group of the host's alternatives system
//! (Debian's `update-alternatives`, or Red Hat's from chkconfig), read from
//! `update-alternatives --display NAME` and changed with its `--install`, `--set`,
//! `--auto` and `--remove` (argument vectors), as that module reads and changes it: the
//! same states, messages, diff and check mode. `path` and `link` are expanded (`~`,
//! `$VAR`) by `paths` before it runs; the subcommands' paths are taken as given.

use super::{Ctx, ModuleError, Outcome, args, tools};
use crate::plan::Vars;
use regex::Regex;
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::LazyLock;

const SPEC: &[(&str, &[&str])] = &[
    ("name", &[]),
    ("path", &[]),
    ("family", &[]),
    ("link", &[]),
    ("priority", &[]),
    ("state", &[]),
    ("subcommands", &["slaves"]),
];

/// A secondary link that follows the group's choice (`--slave LINK NAME PATH`).
#[derive(Debug, Clone, PartialEq)]
struct Subcommand {
    name: String,
    path: String,
    link: Option<String>,
}

impl Subcommand {
    fn to_json(&self) -> Value {
        json!({"name": self.name, "path": self.path, "link": self.link})
    }
}

/// One alternative of the group, as `--display` lists it.
#[derive(Debug, Default, PartialEq)]
struct Alternative {
    priority: i64,
    family: String,
    subcommands: Vec<Subcommand>,
}

/// What `update-alternatives --display NAME` says of the group.
#[derive(Debug, Default, PartialEq)]
struct Group {
    /// `auto` or `manual`; none when the group does not exist.
    mode: Option<String>,
    /// The alternative the link points to now.
    current: Option<String>,
    /// The group's link (`/usr/bin/java`).
    link: Option<String>,
    alternatives: BTreeMap<String, Alternative>,
}

static MODE: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(r"(?m)\s-\s(?:status\sis\s)?(\w*)(?:\smode|.)$").ok());
static CURRENT: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(r"(?m)^\s*link currently points to (.*)$").ok());
static LINK: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(r"(?m)^\s*link \w+ is (.*)$").ok());
static SUB_LINK: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(r"(?m)^\s*(?:slave|follower) (\S+) is (.*)$").ok());
static ALTERNATIVE: LazyLock<Option<Regex>> = LazyLock::new(|| {
    Regex::new(r"(?m)^(/.*)\s-\s(?:family\s(\S+)\s)?priority\s(\d+)((?:\s+(?:slave|follower).*)*)")
        .ok()
});
static SUB: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(r"(?m)^\s+(?:slave|follower) (.*): (.*)$").ok());

/// Reads `--display` output; `given` are the task's subcommands, whose links stand in
/// when the output names none (Red Hat's tool).
fn parse(display: &str, given: Option<&[Subcommand]>) -> Group {
    let mut g = Group::default();
    let Some(mode) = MODE.as_ref().and_then(|re| re.captures(display)) else {
        return g;
    };
    let group = |c: &regex::Captures<'_>, i: usize| c.get(i).map_or("", |m| m.as_str()).to_string();
    g.mode = Some(group(&mode, 1));
    g.current = CURRENT
        .as_ref()
        .and_then(|re| re.captures(display))
        .map(|c| group(&c, 1));
    g.link = LINK
        .as_ref()
        .and_then(|re| re.captures(display))
        .map(|c| group(&c, 1));
    let mut links: BTreeMap<String, String> = SUB_LINK
        .iter()
        .flat_map(|re| re.captures_iter(display))
        .map(|c| (group(&c, 1), group(&c, 2)))
        .collect();
    if links.is_empty()
        && let Some(given) = given
    {
        links = given
            .iter()
            .filter_map(|s| Some((s.name.clone(), s.link.clone()?)))
            .collect();
    }
    for c in ALTERNATIVE.iter().flat_map(|re| re.captures_iter(display)) {
        let subs = SUB
            .iter()
            .flat_map(|re| re.captures_iter(c.get(4).map_or("", |m| m.as_str())))
            .filter(|s| group(s, 2) != "(null)")
            .map(|s| Subcommand {
                link: links.get(&group(&s, 1)).cloned(),
                name: group(&s, 1),
                path: group(&s, 2),
            })
            .collect();
        g.alternatives.insert(
            group(&c, 1),
            Alternative {
                priority: group(&c, 3).parse().unwrap_or(0),
                family: group(&c, 2),
                subcommands: subs,
            },
        );
    }
    g
}

struct Params {
    name: String,
    path: Option<String>,
    family: Option<String>,
    link: Option<String>,
    priority: Option<i64>,
    state: String,
    subcommands: Option<Vec<Subcommand>>,
}

fn read(raw: &Vars) -> Result<Params, ModuleError> {
    let a = args::with_aliases(raw, SPEC)?;
    let path = args::opt_str(&a, "path")?;
    let family = args::opt_str(&a, "family")?;
    if path.is_none() && family.is_none() {
        return Err(ModuleError::BadArgs(
            "one of the following is required: path, family".into(),
        ));
    }
    let priority = args::opt_int(&a, "priority")?;
    let subcommands = match a.get("subcommands") {
        None | Some(Value::Null) => None,
        Some(Value::Array(items)) => Some(
            items
                .iter()
                .map(|item| {
                    let Some(m) = item.as_object() else {
                        return Err(ModuleError::BadArgs(format!(
                            "subcommands: each entry must be a mapping, got {item}"
                        )));
                    };
                    let field = |n: &str| {
                        args::opt_str(m, n)?.ok_or_else(|| {
                            ModuleError::BadArgs(format!(
                                "missing required arguments: {n} found in subcommands"
                            ))
                        })
                    };
                    Ok(Subcommand {
                        name: field("name")?,
                        path: field("path")?,
                        link: Some(field("link")?),
                    })
                })
                .collect::<Result<Vec<_>, _>>()?,
        ),
        Some(other) => {
            return Err(ModuleError::BadArgs(format!(
                "argument 'subcommands' must be a list, got {other}"
            )));
        }
    };
    Ok(Params {
        name: args::req_str(&a, "name")?,
        path,
        family,
        link: args::opt_str(&a, "link")?,
        priority,
        state: args::opt_choice(&a, "state", &["present", "selected", "absent", "auto"])?
            .unwrap_or_else(|| "selected".into()),
        subcommands,
    })
}

/// `alternatives`.
pub(super) fn run(a: &Vars, ctx: &Ctx<'_>) -> Result<Outcome, ModuleError> {
    let p = read(a)?;
    let bin = match tools::require_bin("update-alternatives") {
        Ok(bin) => bin,
        Err(o) => return Ok(o),
    };
    let mut alt = Alternatives {
        ctx,
        bin,
        changed: false,
        messages: Vec::new(),
        before: Map::new(),
        after: Map::new(),
    };
    Ok(match alt.apply(&p) {
        Ok(()) => {
            let diff = json!({"before": alt.before, "after": alt.after});
            Outcome::changed(alt.changed)
                .with("msg", alt.messages.join(" "))
                .with("diff", diff)
        }
        Err(o) => o,
    })
}

struct Alternatives<'a> {
    ctx: &'a Ctx<'a>,
    bin: PathBuf,
    changed: bool,
    messages: Vec<String>,
    before: Map<String, Value>,
    after: Map<String, Value>,
}

impl Alternatives<'_> {
    /// Runs update-alternatives in the C locale; with `check`, a failure fails the task.
    fn tool(&self, argv: &[String], check: bool) -> Result<tools::Output, Outcome> {
        let mut cmd = self.ctx.command(&self.bin);
        cmd.env("LC_ALL", "C");
        let out = tools::run_command(cmd, argv, None)
            .map_err(|e| Outcome::fail(format!("{}: {e}", self.bin.display())))?;
        if check && out.rc != 0 {
            let msg = if out.stderr.trim().is_empty() {
                "Error executing command.".to_string()
            } else {
                out.stderr.trim_end().to_string()
            };
            return Err(Outcome::fail(msg)
                .with("cmd", tools::shown(&self.bin, argv))
                .with("rc", out.rc)
                .with("stdout", out.stdout)
                .with("stderr", out.stderr));
        }
        Ok(out)
    }

    /// Changes the host's alternatives unless in check mode.
    fn change(&mut self, argv: Vec<String>, message: String) -> Result<(), Outcome> {
        self.changed = true;
        self.messages.push(message);
        if !self.ctx.check_mode {
            self.tool(&argv, true)?;
        }
        Ok(())
    }

    fn apply(&mut self, p: &Params) -> Result<(), Outcome> {
        let display = self.tool(&tools::argv(&["--display", &p.name]), false)?;
        let g = if display.rc == 0 {
            parse(&display.stdout, p.subcommands.as_deref())
        } else {
            Group::default()
        };
        let diff = self.ctx.diff_mode;
        let existing = p.path.as_ref().and_then(|path| g.alternatives.get(path));
        if diff {
            self.before = match (existing, &p.path) {
                (Some(alt), Some(path)) => {
                    let mut b = json!({"state": "present", "path": path, "priority": alt.priority, "link": g.link})
                        .as_object()
                        .cloned()
                        .unwrap_or_default();
                    if !alt.subcommands.is_empty() {
                        b.insert("subcommands".into(), subs_json(&alt.subcommands));
                    }
                    if g.mode.as_deref() == Some("manual") && g.current != p.path {
                        b.insert("state".into(), "selected".into());
                    }
                    b
                }
                _ => Map::from_iter([("state".to_string(), Value::from("absent"))]),
            };
        }
        if p.state == "absent" {
            if let (Some(path), Some(_)) = (&p.path, existing) {
                self.change(
                    tools::argv(&["--remove", &p.name, path]),
                    format!("Remove alternative '{path}' from '{}'.", p.name),
                )?;
                if diff {
                    self.after = Map::from_iter([("state".to_string(), Value::from("absent"))]);
                }
            }
            return Ok(());
        }
        if let Some(path) = &p.path {
            let differs = |given: &[Subcommand], have: &[Subcommand]| {
                let same = |a: &Subcommand, b: &Subcommand| {
                    a.name == b.name && a.path == b.path && a.link == b.link
                };
                !have.iter().all(|h| given.iter().any(|g| same(g, h)))
                    || !given.iter().all(|g| have.iter().any(|h| same(g, h)))
            };
            let reinstall = match existing {
                None => true,
                Some(alt) => {
                    p.priority.is_some_and(|want| want != alt.priority)
                        || p.subcommands
                            .as_ref()
                            .is_some_and(|given| differs(given, &alt.subcommands))
                }
            };
            if reinstall {
                self.install(p, path, &g)?;
            }
        }
        let same_path = p.path.is_some() && g.current == p.path;
        let same_family = g
            .current
            .as_ref()
            .and_then(|c| g.alternatives.get(c))
            .is_some_and(|alt| Some(&alt.family) == p.family.as_ref());
        if p.state == "selected" && !(same_path || same_family) {
            let arg = p.path.clone().or(p.family.clone()).unwrap_or_default();
            self.change(
                tools::argv(&["--set", &p.name, &arg]),
                format!("Set alternative '{arg}' for '{}'.", p.name),
            )?;
            if diff {
                self.after.insert("state".into(), "selected".into());
            }
        }
        if p.state == "auto" && g.mode.as_deref() == Some("manual") {
            self.change(
                tools::argv(&["--auto", &p.name]),
                format!("Set alternative to auto for '{}'.", p.name),
            )?;
            if diff {
                self.after.insert("state".into(), "present".into());
            }
        }
        Ok(())
    }

    fn install(&mut self, p: &Params, path: &str, g: &Group) -> Result<(), Outcome> {
        if !std::path::Path::new(path).exists() {
            return Err(Outcome::fail(format!(
                "Specified path {path} does not exist"
            )));
        }
        let Some(link) = p.link.clone().or(g.link.clone()) else {
            return Err(Outcome::fail(
                "Needed to install the alternative, but unable to do so as we are missing the link",
            ));
        };
        let existing = g.alternatives.get(path);
        let priority = p.priority.or(existing.map(|a| a.priority)).unwrap_or(50);
        let subcommands = p.subcommands.clone().or_else(|| {
            existing
                .filter(|a| !a.subcommands.is_empty())
                .map(|a| a.subcommands.clone())
        });
        let mut argv = tools::argv(&["--install", &link, &p.name, path, &priority.to_string()]);
        if let Some(family) = &p.family {
            argv.extend(tools::argv(&["--family", family]));
        }
        // Only the task's own subcommands are passed on, as the module passes them.
        if let Some(subs) = &p.subcommands {
            for s in subs {
                let sub_link = s.link.clone().unwrap_or_default();
                argv.extend(tools::argv(&["--slave", &sub_link, &s.name, &s.path]));
            }
        }
        self.change(
            argv,
            format!("Install alternative '{path}' for '{}'.", p.name),
        )?;
        if self.ctx.diff_mode {
            self.after = json!({"state": "present", "path": path, "family": p.family, "priority": priority, "link": link})
                .as_object()
                .cloned()
                .unwrap_or_default();
            if let Some(subs) = subcommands {
                self.after.insert("subcommands".into(), subs_json(&subs));
            }
        }
        Ok(())
    }
}

fn subs_json(subs: &[Subcommand]) -> Value {
    Value::Array(subs.iter().map(Subcommand::to_json).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What Debian's update-alternatives 1.21 prints for a group with two alternatives,
    /// one with a follower link, in manual mode.
    const DEBIAN: &str = "dummy - manual mode
  link best version is /usr/bin/dummy2
  link currently points to /usr/bin/dummy1
  link dummy is /usr/bin/dummy
  follower dummysub is /usr/bin/dummysub
/usr/bin/dummy1 - priority 50
  follower dummysub: /usr/bin/dummysub1
/usr/bin/dummy2 - priority 60
  follower dummysub: (null)
";

    #[test]
    fn display_output_is_read_as_the_module_reads_it() {
        let g = parse(DEBIAN, None);
        assert_eq!(g.mode.as_deref(), Some("manual"));
        assert_eq!(g.current.as_deref(), Some("/usr/bin/dummy1"));
        assert_eq!(g.link.as_deref(), Some("/usr/bin/dummy"));
        let one = &g.alternatives["/usr/bin/dummy1"];
        assert_eq!(one.priority, 50);
        assert_eq!(
            one.subcommands,
            [Subcommand {
                name: "dummysub".into(),
                path: "/usr/bin/dummysub1".into(),
                link: Some("/usr/bin/dummysub".into())
            }]
        );
        assert!(g.alternatives["/usr/bin/dummy2"].subcommands.is_empty());
        assert_eq!(parse("", None), Group::default());
        let auto = parse(
            "java - auto mode\n  link currently points to /opt/j\n/opt/j - family jdk priority 3\n",
            None,
        );
        assert_eq!(auto.mode.as_deref(), Some("auto"));
        assert_eq!(auto.alternatives["/opt/j"].family, "jdk");
    }

    #[test]
    fn arguments_name_what_is_missing() {
        let e = read(json!({"name": "x"}).as_object().unwrap())
            .err()
            .unwrap();
        assert!(e.to_string().contains("path, family"), "{e}");
        let e = read(
            json!({"name": "x", "path": "/p", "subcommands": [{"name": "s"}]})
                .as_object()
                .unwrap(),
        )
        .err()
        .unwrap();
        assert!(e.to_string().contains("path found in subcommands"), "{e}");
        let p = read(json!({"name": "x", "path": "/p", "slaves": [{"name": "s", "path": "/s", "link": "/l"}]}).as_object().unwrap()).unwrap();
        assert_eq!(p.state, "selected");
        assert_eq!(p.subcommands.unwrap().len(), 1);
    }

    /// Against the host's update-alternatives (Debian's dpkg has it; tests run as root
    /// in CI): a group is installed, selected, left alone the second time, and removed.
    #[test]
    fn a_group_is_installed_selected_and_removed_with_the_hosts_tool() {
        if tools::find_bin("update-alternatives").is_none()
            || crate::facts::current_uid() != Some(0)
        {
            assert!(
                std::env::var_os("RUSTLE_ALLOW_SKIP").is_some(),
                "update-alternatives is missing or the tests do not run as root"
            );
            return;
        }
        let d = tempfile::tempdir().unwrap();
        let target = d.path().join("one");
        std::fs::write(&target, "#!/bin/sh\necho one\n").unwrap();
        let link = d.path().join("rustle-alt-link");
        let name = format!("rustle-test-{}", std::process::id());
        let args = json!({"name": name, "path": target, "link": link, "priority": 20});
        let run = |a: &Value, check: bool| {
            crate::modules::run_for_test(
                "alternatives",
                a.as_object().unwrap(),
                &BTreeMap::new(),
                &json!({}),
                check,
            )
            .unwrap()
        };
        let o = run(&args, true);
        assert!(o.changed && !o.failed, "{o:?}");
        assert!(!link.exists(), "check mode made the link");
        let o = run(&args, false);
        assert!(o.changed && !o.failed, "{o:?}");
        assert_eq!(std::fs::canonicalize(&link).unwrap(), target);
        assert!(
            !run(&args, false).changed,
            "the second run changed it again"
        );
        let mut absent = args.clone();
        absent["state"] = "absent".into();
        let o = run(&absent, false);
        assert!(o.changed && !o.failed, "{o:?}");
        assert!(!link.exists());
        assert!(!run(&absent, false).changed);
    }
}
