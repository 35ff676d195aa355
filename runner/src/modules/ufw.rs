//! ufw (community.general): the host's Uncomplicated Firewall driven through its own
//! `ufw` command, as that module drives it: the firewall's state, default policies,
//! logging and rules, each a `ufw` call with an argument vector built from the task's
//! arguments (never a shell line). Whether anything changed is read, as the module
//! reads it, from `ufw status verbose` and the `### tuple` lines of ufw's rule files
//! before and after; in check mode rules go through `ufw --dry-run` instead.

use super::{Ctx, ModuleError, Outcome, args, tools};
use crate::plan::Vars;
use regex::Regex;
use std::path::PathBuf;
use std::sync::LazyLock;

/// The module's arguments and their aliases.
const SPEC: &[(&str, &[&str])] = &[
    ("state", &[]),
    ("default", &["policy"]),
    ("logging", &[]),
    ("direction", &[]),
    ("delete", &[]),
    ("route", &[]),
    ("insert", &[]),
    ("insert_relative_to", &[]),
    ("rule", &[]),
    ("interface", &["if"]),
    ("interface_in", &["if_in"]),
    ("interface_out", &["if_out"]),
    ("log", &[]),
    ("from_ip", &["from", "src"]),
    ("from_port", &[]),
    ("to_ip", &["dest", "to"]),
    ("to_port", &["port"]),
    ("proto", &["protocol"]),
    ("name", &["app"]),
    ("comment", &[]),
];

/// Where ufw keeps its rules, in the order the module reads them (older and newer
/// layouts both).
const RULE_FILES: &[&str] = &[
    "/lib/ufw/user.rules",
    "/lib/ufw/user6.rules",
    "/etc/ufw/user.rules",
    "/etc/ufw/user6.rules",
    "/var/lib/ufw/user.rules",
    "/var/lib/ufw/user6.rules",
];

static IPV4: LazyLock<Option<Regex>> = LazyLock::new(|| {
    Regex::new(r"((25[0-5]|(2[0-4]|1?[0-9])?[0-9])\.){3}(25[0-5]|(2[0-4]|1?[0-9])?[0-9])").ok()
});

static IPV6: LazyLock<Option<Regex>> = LazyLock::new(|| {
    let h = "[0-9a-fA-F]{1,4}";
    let v4 = r"((25[0-5]|(2[0-4]|1?[0-9])?[0-9])\.){3}(25[0-5]|(2[0-4]|1?[0-9])?[0-9])";
    let alternatives = [
        format!("({h}:){{7}}{h}"),
        format!("({h}:){{1,7}}:"),
        format!("({h}:){{1,6}}:{h}"),
        format!("({h}:){{1,5}}(:{h}){{1,2}}"),
        format!("({h}:){{1,4}}(:{h}){{1,3}}"),
        format!("({h}:){{1,3}}(:{h}){{1,4}}"),
        format!("({h}:){{1,2}}(:{h}){{1,5}}"),
        format!("{h}:((:{h}){{1,6}})"),
        format!(":((:{h}){{1,7}}|:)"),
        "fe80:(:[0-9a-fA-F]{0,4}){0,4}%[0-9a-zA-Z]+".to_string(),
        format!("::(ffff(:0{{1,4}})?:)?{v4}"),
        format!("({h}:){{1,4}}:{v4}"),
    ];
    Regex::new(&alternatives.join("|")).ok()
});

/// The first line of `ufw --version`, whose numbers the module reads (with its
/// greedy pattern) to decide whether `comment` is supported.
static VERSION: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(r"^ufw.+(\d+)\.(\d+)(?:\.(\d+))?.*$").ok());

/// `ufw`.
pub(super) fn run(a: &Vars, ctx: &Ctx<'_>) -> Result<Outcome, ModuleError> {
    let p = Params::read(a)?;
    let ufw = match tools::require_bin("ufw") {
        Ok(bin) => bin,
        Err(o) => return Ok(o),
    };
    let mut u = Ufw {
        ctx,
        bin: ufw,
        commands: Vec::new(),
    };
    match u.apply(&p) {
        Ok(o) | Err(o) => Ok(o),
    }
}

/// The arguments, checked as the module's argument spec checks them.
struct Params {
    state: Option<String>,
    default: Option<String>,
    logging: Option<String>,
    rule: Option<String>,
    direction: Option<String>,
    delete: bool,
    route: bool,
    insert: Option<i64>,
    insert_relative_to: String,
    interface: Option<String>,
    interface_in: Option<String>,
    interface_out: Option<String>,
    log: bool,
    from_ip: String,
    from_port: Option<String>,
    to_ip: String,
    to_port: Option<String>,
    proto: Option<String>,
    name: Option<String>,
    comment: Option<String>,
}

impl Params {
    fn read(raw: &Vars) -> Result<Params, ModuleError> {
        let a = args::with_aliases(raw, SPEC)?;
        let given = |n: &str| a.get(n).is_some_and(|v| !v.is_null());
        for group in [
            &["name", "proto", "logging"][..],
            &["direction", "interface_in"],
            &["direction", "interface_out"],
        ] {
            if group.iter().filter(|n| given(n)).count() > 1 {
                return Err(ModuleError::BadArgs(format!(
                    "parameters are mutually exclusive: {}",
                    group.join("|")
                )));
            }
        }
        if !["state", "default", "rule", "logging"]
            .iter()
            .any(|n| given(n))
        {
            return Err(ModuleError::BadArgs(
                "one of the following is required: state, default, rule, logging".into(),
            ));
        }
        if given("interface") && !given("direction") {
            return Err(ModuleError::BadArgs(
                "missing parameter(s) required by 'interface': direction".into(),
            ));
        }
        let insert = args::opt_int(&a, "insert")?;
        let relative = ["zero", "first-ipv4", "last-ipv4", "first-ipv6", "last-ipv6"];
        let protos = [
            "ah", "any", "esp", "ipv6", "tcp", "udp", "gre", "igmp", "vrrp",
        ];
        Ok(Params {
            state: args::opt_choice(&a, "state", &["enabled", "disabled", "reloaded", "reset"])?,
            default: args::opt_choice(&a, "default", &["allow", "deny", "reject"])?,
            logging: args::opt_choice(
                &a,
                "logging",
                &["full", "high", "low", "medium", "off", "on"],
            )?,
            rule: args::opt_choice(&a, "rule", &["allow", "deny", "limit", "reject"])?,
            direction: args::opt_choice(
                &a,
                "direction",
                &["in", "incoming", "out", "outgoing", "routed"],
            )?,
            delete: args::bool_or(&a, "delete", false)?,
            route: args::bool_or(&a, "route", false)?,
            insert,
            insert_relative_to: args::opt_choice(&a, "insert_relative_to", &relative)?
                .unwrap_or_else(|| "zero".into()),
            interface: args::opt_str(&a, "interface")?,
            interface_in: args::opt_str(&a, "interface_in")?,
            interface_out: args::opt_str(&a, "interface_out")?,
            log: args::bool_or(&a, "log", false)?,
            from_ip: args::opt_str(&a, "from_ip")?.unwrap_or_else(|| "any".into()),
            from_port: args::opt_str(&a, "from_port")?,
            to_ip: args::opt_str(&a, "to_ip")?.unwrap_or_else(|| "any".into()),
            to_port: args::opt_str(&a, "to_port")?,
            proto: args::opt_choice(&a, "proto", &protos)?,
            name: args::opt_str(&a, "name")?,
            comment: args::opt_str(&a, "comment")?,
        })
    }
}

/// One run of the module: the ufw it calls and the command lines it ran (returned as
/// `commands`, as the module returns them).
struct Ufw<'a> {
    ctx: &'a Ctx<'a>,
    bin: PathBuf,
    commands: Vec<String>,
}

/// The task's result either way: a failure stops the run with the commands so far.
type Ran<T> = Result<T, Outcome>;

impl Ufw<'_> {
    /// Runs ufw with `argv` in the C locale (its output is parsed), failing the task with
    /// its error output unless `ignore_error`.
    fn ufw(&mut self, argv: &[String], ignore_error: bool) -> Ran<String> {
        self.commands.push(tools::shown(&self.bin, argv));
        let mut cmd = self.ctx.command(&self.bin);
        cmd.env("LANG", "C");
        let out = tools::run_command(cmd, argv, None).map_err(|e| {
            Outcome::fail(format!("{}: {e}", self.bin.display()))
                .with("commands", self.commands.clone())
        })?;
        if out.rc != 0 && !ignore_error {
            let msg = if out.stderr.is_empty() {
                out.stdout
            } else {
                out.stderr
            };
            return Err(Outcome::fail(msg).with("commands", self.commands.clone()));
        }
        Ok(out.stdout)
    }

    /// The firewall's state as `ufw status verbose` shows it.
    fn status(&mut self) -> Ran<String> {
        self.ufw(&tools::argv(&["status", "verbose"]), false)
    }

    /// The `### tuple` lines of ufw's rule files, the rules as ufw stores them (the
    /// module greps them; they are read here, so `commands` lists only ufw's runs).
    fn rules(&self) -> String {
        RULE_FILES
            .iter()
            .filter_map(|f| std::fs::read_to_string(f).ok())
            .flat_map(|text| tuple_lines(&text))
            .collect()
    }

    fn apply(&mut self, p: &Params) -> Ran<Outcome> {
        let check = self.ctx.check_mode;
        let pre_state = self.status()?;
        let pre_rules = self.rules();
        let mut changed = false;
        let base: Vec<String> = if check {
            tools::argv(&["--dry-run"])
        } else {
            Vec::new()
        };
        if let Some(state) = &p.state {
            if matches!(state.as_str(), "reloaded" | "reset") {
                changed = true;
            }
            if check {
                // " active" with its space: "inactive" holds "active" too.
                let enabled = pre_state.contains(" active");
                if (state == "disabled" && enabled) || (state == "enabled" && !enabled) {
                    changed = true;
                }
            } else {
                let verb = match state.as_str() {
                    "enabled" => "enable",
                    "disabled" => "disable",
                    "reloaded" => "reload",
                    _ => "reset",
                };
                self.ufw(&[base.clone(), tools::argv(&["-f", verb])].concat(), false)?;
            }
        }
        if let Some(policy) = &p.default {
            if !matches!(
                p.direction.as_deref(),
                None | Some("outgoing" | "incoming" | "routed")
            ) {
                return Err(self.failure(
                    "For default, direction must be one of \"outgoing\", \"incoming\" and \"routed\", or direction must not be specified.",
                ));
            }
            if check {
                changed |= default_differs(&pre_state, p.direction.as_deref(), policy);
            } else {
                let mut argv = [base.clone(), tools::argv(&["default", policy])].concat();
                argv.extend(p.direction.clone());
                self.ufw(&argv, false)?;
            }
        }
        if let Some(rule) = &p.rule {
            changed |= self.rule(p, rule, &base, &pre_rules)?;
        }
        if let Some(level) = &p.logging {
            changed |= logging_differs(&pre_state, level);
            if !check {
                self.ufw(&[base, tools::argv(&["logging", level])].concat(), false)?;
            }
        }
        if check {
            return Ok(Outcome::changed(changed).with("commands", self.commands.clone()));
        }
        let post_state = self.status()?;
        if !changed {
            let post_rules = self.rules();
            changed = pre_state != post_state || pre_rules != post_rules;
        }
        Ok(Outcome::changed(changed)
            .with("commands", self.commands.clone())
            .with("msg", post_state.trim_end()))
    }

    fn failure(&self, msg: &str) -> Outcome {
        Outcome::fail(msg).with("commands", self.commands.clone())
    }

    /// Adds, inserts or deletes one rule (`ufw [route] [delete | insert N] RULE ...`);
    /// in check mode, whether doing so would change ufw's rules, from its dry run.
    fn rule(&mut self, p: &Params, rule: &str, base: &[String], pre_rules: &str) -> Ran<bool> {
        if !matches!(p.direction.as_deref(), None | Some("in" | "out")) {
            return Err(self.failure(
                "For rules, direction must be one of \"in\" and \"out\", or direction must not be specified.",
            ));
        }
        if !p.route && p.interface_in.is_some() && p.interface_out.is_some() {
            return Err(self.failure("Only route rules can combine interface_in and interface_out"));
        }
        let mut argv = base.to_vec();
        if p.route {
            argv.push("route".into());
        }
        if p.delete {
            argv.push("delete".into());
        }
        if let (Some(n), false) = (p.insert, p.delete)
            && let Some(at) = self.insert_position(n, &p.insert_relative_to)?
        {
            argv.extend(["insert".to_string(), at.to_string()]);
        }
        argv.push(rule.into());
        argv.extend(p.direction.clone());
        let on = |prefix: &[&str], name: &Option<String>| {
            name.iter()
                .flat_map(|n| tools::argv(prefix).into_iter().chain([n.clone()]))
                .collect::<Vec<_>>()
        };
        argv.extend(on(&["on"], &p.interface));
        argv.extend(on(&["in", "on"], &p.interface_in));
        argv.extend(on(&["out", "on"], &p.interface_out));
        if p.log {
            argv.push("log".into());
        }
        argv.extend(["from".to_string(), p.from_ip.clone()]);
        argv.extend(on(&["port"], &p.from_port));
        argv.extend(["to".to_string(), p.to_ip.clone()]);
        argv.extend(on(&["port"], &p.to_port));
        argv.extend(on(&["proto"], &p.proto));
        argv.extend(on(&["app"], &p.name));
        if p.comment.is_some() && self.supports_comments()? {
            argv.extend(on(&["comment"], &p.comment));
        }
        let dry = self.ufw(&argv, false)?;
        if !self.ctx.check_mode {
            return Ok(false);
        }
        let lines: Vec<&str> = dry.split_inclusive('\n').collect();
        let skipping = lines.iter().filter(|l| l.contains("Skipping")).count();
        if skipping > 0 && skipping == lines.len() {
            return Ok(false);
        }
        let dry = tuple_lines(&dry).concat();
        // A dry run shows the rules of one family only: compare that family's.
        let starts = |re: &Option<Regex>, ip: &str| {
            re.as_ref()
                .and_then(|re| re.find(ip))
                .is_some_and(|m| m.start() == 0)
        };
        let family = |re: &Option<Regex>, text: &str| -> String {
            text.split_inclusive('\n')
                .filter(|l| re.as_ref().is_some_and(|re| re.is_match(l)))
                .collect()
        };
        Ok(if starts(&IPV4, &p.from_ip) || starts(&IPV4, &p.to_ip) {
            family(&IPV4, pre_rules) != family(&IPV4, &dry)
        } else if starts(&IPV6, &p.from_ip) || starts(&IPV6, &p.to_ip) {
            family(&IPV6, pre_rules) != family(&IPV6, &dry)
        } else {
            pre_rules != dry
        })
    }

    /// The rule number for `insert` counted from `relative_to` (the first or last rule
    /// of a family in `ufw status numbered`), or none when it is past the last rule,
    /// which ufw refuses: the rule is then added at the end.
    fn insert_position(&mut self, n: i64, relative_to: &str) -> Ran<Option<i64>> {
        if relative_to == "zero" {
            return Ok(Some(n));
        }
        let mut cmd = self.ctx.command(&self.bin);
        cmd.env("LANG", "C");
        let numbered = tools::run_command(cmd, &tools::argv(&["status", "numbered"]), None)
            .map(|o| o.stdout)
            .unwrap_or_default();
        let rules = numbered_rules(&numbered);
        let last = rules.iter().map(|(no, _)| *no).max().unwrap_or(0);
        let last_v4 = rules.iter().filter(|(_, v6)| !v6).map(|(no, _)| *no).max();
        let has_v6 = rules.iter().any(|(_, v6)| *v6);
        let base = match relative_to {
            "first-ipv4" => 1,
            "last-ipv4" => last_v4.unwrap_or(1),
            "first-ipv6" => last_v4.map_or(1, |l| l + 1),
            _ if has_v6 => last,
            _ => last + 1,
        };
        let at = n + base;
        Ok((at <= last).then_some(at))
    }

    /// Whether this ufw takes `comment` (from 0.35 on), read from `ufw --version`.
    fn supports_comments(&mut self) -> Ran<bool> {
        let out = self.ufw(&tools::argv(&["--version"]), false)?;
        let first = out.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
        let Some(c) = VERSION.as_ref().and_then(|re| re.captures(first)) else {
            return Err(Outcome::fail("Failed to get ufw version.")
                .with("rc", 0)
                .with("out", out));
        };
        let num = |i: usize| {
            c.get(i)
                .and_then(|m| m.as_str().parse::<u64>().ok())
                .unwrap_or(0)
        };
        Ok(num(1) > 0 || num(2) >= 35)
    }
}

/// The lines of `text` that start with `### tuple`, each with its line break.
fn tuple_lines(text: &str) -> Vec<String> {
    text.split_inclusive('\n')
        .filter(|l| l.starts_with("### tuple"))
        .map(str::to_string)
        .collect()
}

/// `[ N] ...` lines of `ufw status numbered`: each rule's number and whether it is an
/// IPv6 rule (`(v6)`).
fn numbered_rules(text: &str) -> Vec<(i64, bool)> {
    text.lines()
        .filter_map(|l| {
            let rest = l.strip_prefix('[')?;
            let (no, after) = rest.split_once(']')?;
            if !after.starts_with(' ') {
                return None;
            }
            Some((no.trim().parse().ok()?, l.contains("(v6)")))
        })
        .collect()
}

/// Whether setting `policy` for `direction` would change the defaults `ufw status
/// verbose` shows (the check mode answer; an unreadable status counts as a change).
fn default_differs(status: &str, direction: Option<&str>, policy: &str) -> bool {
    static DEFAULTS: LazyLock<Option<Regex>> = LazyLock::new(|| {
        Regex::new(
            r"Default: (deny|allow|reject) \(incoming\), (deny|allow|reject) \(outgoing\), (deny|allow|reject|disabled) \(routed\)",
        )
        .ok()
    });
    let Some(c) = DEFAULTS.as_ref().and_then(|re| re.captures(status)) else {
        return true;
    };
    let at = match direction {
        Some("outgoing") => 2,
        Some("routed") => 3,
        _ => 1,
    };
    let now = c.get(at).map_or("", |m| m.as_str());
    now != policy && now != "disabled"
}

/// Whether `logging: level` would change what `ufw status verbose` shows.
fn logging_differs(status: &str, level: &str) -> bool {
    static LOGGING: LazyLock<Option<Regex>> =
        LazyLock::new(|| Regex::new(r"Logging: (on|off)(?: \(([a-z]+)\))?").ok());
    let Some(c) = LOGGING.as_ref().and_then(|re| re.captures(status)) else {
        return true;
    };
    let on_off = c.get(1).map_or("", |m| m.as_str());
    let current = c.get(2).map(|m| m.as_str());
    if level == "off" {
        on_off != "off"
    } else {
        on_off == "off" || (level != "on" && Some(level) != current)
    }
}

/// Path of a rule file, for tests that look at them.
#[cfg(test)]
fn rule_files() -> impl Iterator<Item = &'static std::path::Path> {
    RULE_FILES.iter().map(std::path::Path::new)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::collections::BTreeMap;

    #[test]
    fn arguments_are_checked_as_the_modules_spec_checks_them() {
        let bad = |args: serde_json::Value| {
            let a = args.as_object().unwrap();
            match Params::read(a) {
                Err(e) => e.to_string(),
                Ok(_) => panic!("accepted {args}"),
            }
        };
        assert!(bad(json!({"direction": "in"})).contains("one of the following is required"));
        assert!(
            bad(json!({"rule": "allow", "app": "x", "proto": "tcp"}))
                .contains("name|proto|logging")
        );
        assert!(
            bad(json!({"rule": "allow", "interface": "eth0"})).contains("required by 'interface'")
        );
        assert!(bad(json!({"rule": "permit"})).contains("value of rule must be one of"));
        assert!(bad(json!({"rule": "allow", "port": 1, "to_port": 2})).contains("twice"));
        let p = Params::read(json!({"logging": false}).as_object().unwrap()).unwrap();
        assert_eq!(
            p.logging.as_deref(),
            Some("off"),
            "YAML's `off` is the choice 'off'"
        );
        let p = Params::read(
            json!({"rule": "allow", "port": 22, "src": "10.0.0.1"})
                .as_object()
                .unwrap(),
        )
        .unwrap();
        assert_eq!(
            (p.to_port.as_deref(), p.from_ip.as_str(), p.to_ip.as_str()),
            (Some("22"), "10.0.0.1", "any")
        );
    }

    #[test]
    fn status_answers_for_check_mode() {
        let status = "Status: active\nLogging: on (low)\nDefault: deny (incoming), allow (outgoing), disabled (routed)\n";
        assert!(!default_differs(status, None, "deny"));
        assert!(default_differs(status, Some("outgoing"), "deny"));
        assert!(!default_differs(status, Some("routed"), "allow"));
        assert!(default_differs("Status: inactive\n", None, "deny"));
        assert!(!logging_differs(status, "on"));
        assert!(!logging_differs(status, "low"));
        assert!(logging_differs(status, "full"));
        assert!(logging_differs(status, "off"));
        assert!(!logging_differs("Logging: off\n", "off"));
        assert!(logging_differs("Logging: off\n", "on"));
    }

    #[test]
    fn numbered_rules_and_families() {
        let text = "Status: active\n\n     To                         Action      From\n     --                         ------      ----\n[ 1] 22/tcp                     ALLOW IN    Anywhere\n[ 2] 22/tcp (v6)                ALLOW IN    Anywhere (v6)\n[10] 80                         ALLOW IN    10.0.0.1\n";
        assert_eq!(numbered_rules(text), [(1, false), (2, true), (10, false)]);
        assert!(VERSION.is_some(), "the version pattern compiles");
        let (v4, v6) = (IPV4.as_ref().unwrap(), IPV6.as_ref().unwrap());
        assert!(v4.is_match("### tuple ### allow any 23 0.0.0.0/0 any 0.0.0.0/0 in"));
        assert!(v6.is_match("### tuple ### allow any 23 ::/0 any ::/0 in"));
        assert!(v6.find("::1").is_some_and(|m| m.start() == 0));
        assert!(v4.find("any").is_none());
        assert_eq!(
            tuple_lines("# x\n### tuple ### a\n\n### tuple ### b"),
            ["### tuple ### a\n", "### tuple ### b"]
        );
    }

    /// Against the host's own ufw, when it has one and tests run as root (ufw's files
    /// are root's): a rule is added once, found again, deleted, and check mode changes
    /// nothing. The firewall is left disabled, as it was found (ufw refuses to enable
    /// itself without the kernel's netfilter, so only rules are exercised).
    #[test]
    fn rules_are_added_once_and_deleted_with_the_hosts_ufw() {
        if tools::find_bin("ufw").is_none() || crate::facts::current_uid() != Some(0) {
            // CI installs ufw and runs as root; a developer machine without them says so.
            assert!(
                std::env::var_os("RUSTLE_ALLOW_SKIP").is_some(),
                "ufw is missing (apt-get install ufw) or the tests do not run as root"
            );
            return;
        }
        let run = |args: serde_json::Value, check: bool| {
            crate::modules::run_for_test(
                "ufw",
                args.as_object().unwrap(),
                &BTreeMap::new(),
                &json!({}),
                check,
            )
            .unwrap()
        };
        let rules_now = || -> String {
            rule_files()
                .filter_map(|f| std::fs::read_to_string(f).ok())
                .flat_map(|t| tuple_lines(&t))
                .collect()
        };
        let rule = json!({"rule": "allow", "port": "61234", "proto": "tcp", "to_ip": "0.0.0.0", "comment": "rustle test"});
        let mut delete = rule.clone();
        delete["delete"] = json!(true);
        run(delete.clone(), false);
        let before = rules_now();
        let o = run(rule.clone(), true);
        assert!(o.changed && !o.failed, "{o:?}");
        assert_eq!(rules_now(), before, "check mode wrote a rule");
        let o = run(rule.clone(), false);
        assert!(o.changed && !o.failed, "{o:?}");
        assert!(rules_now().contains("61234"), "{}", rules_now());
        assert!(
            !run(rule.clone(), false).changed,
            "the second run added it again"
        );
        assert!(!run(rule, true).changed);
        let o = run(delete.clone(), false);
        assert!(o.changed, "{o:?}");
        assert_eq!(rules_now(), before);
        assert!(!run(delete, false).changed);
    }
}
