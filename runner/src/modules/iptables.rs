//! iptables (ansible.builtin): one rule, a chain or a chain's policy, through the host's
//! `iptables`/`ip6tables` with argument vectors built as the module builds them (its
//! `construct_rule` order and negations), `-C` to see whether the rule is there, so a
//! second run reports ok; check mode asks and changes nothing.

use super::fsutil::{self, Step, fail};
use super::{Ctx, ModuleError, Outcome, args, tools};
use crate::plan::Vars;
use serde_json::Value;
use std::path::{Path, PathBuf};

/// The arguments that are not plain strings or choices.
const OTHER_ARGS: &[&str] = &[
    "match",
    "destination_ports",
    "ctstate",
    "tcp_flags",
    "flush",
    "chain_management",
    "numeric",
];

/// The string arguments (type='str' without choices checked elsewhere).
const STRINGS: &[&str] = &[
    "chain",
    "rule_num",
    "protocol",
    "wait",
    "source",
    "to_source",
    "destination",
    "to_destination",
    "jump",
    "gateway",
    "log_prefix",
    "goto",
    "in_interface",
    "out_interface",
    "fragment",
    "set_counters",
    "source_port",
    "destination_port",
    "to_ports",
    "set_dscp_mark",
    "set_dscp_mark_class",
    "comment",
    "src_range",
    "dst_range",
    "match_set",
    "limit",
    "limit_burst",
    "uid_owner",
    "gid_owner",
    "reject_with",
    "icmp_type",
];

/// Arguments with a fixed set of values: name, default, choices.
const CHOICES: &[(&str, Option<&str>, &[&str])] = &[
    (
        "table",
        Some("filter"),
        &["filter", "nat", "mangle", "raw", "security"],
    ),
    ("state", Some("present"), &["absent", "present"]),
    ("action", Some("append"), &["append", "insert"]),
    ("ip_version", Some("ipv4"), &["ipv4", "ipv6"]),
    (
        "log_level",
        None,
        &[
            "0", "1", "2", "3", "4", "5", "6", "7", "emerg", "alert", "crit", "error", "warning",
            "notice", "info", "debug",
        ],
    ),
    (
        "match_set_flags",
        None,
        &["src", "dst", "src,dst", "dst,src", "src,src", "dst,dst"],
    ),
    ("syn", Some("ignore"), &["ignore", "match", "negate"]),
    ("policy", None, &["ACCEPT", "DROP", "QUEUE", "RETURN"]),
];

/// Since these releases iptables takes `-w` (and `-w SECONDS`).
const WAIT_ADDED: &[u64] = &[1, 4, 20];
const WAIT_SECONDS_ADDED: &[u64] = &[1, 6, 0];

/// The module's arguments, typed.
#[derive(Debug, Clone, Default)]
struct Params {
    strs: std::collections::BTreeMap<&'static str, String>,
    matches: Vec<String>,
    destination_ports: Vec<String>,
    ctstate: Vec<String>,
    /// `tcp_flags`: flags, flags_set.
    tcp_flags: Option<(Vec<String>, Vec<String>)>,
    flush: bool,
    chain_management: bool,
    numeric: bool,
}

impl Params {
    fn get(&self, name: &str) -> Option<&str> {
        self.strs.get(name).map(String::as_str)
    }

    fn parse(a: &Vars) -> Result<Params, ModuleError> {
        let known: Vec<&str> = STRINGS
            .iter()
            .chain(CHOICES.iter().map(|(n, _, _)| n))
            .chain(OTHER_ARGS)
            .copied()
            .collect();
        args::only(a, &known)?;
        let mut p = Params::default();
        for name in STRINGS {
            if let Some(v) = args::opt_str(a, name)? {
                p.strs.insert(name, v);
            }
        }
        for (name, default, choices) in CHOICES {
            let v = args::opt_str(a, name)?.or(default.map(str::to_string));
            if let Some(v) = v {
                if !choices.contains(&v.as_str()) {
                    return Err(ModuleError::BadArgs(format!(
                        "value of {name} must be one of: {}, got: {v}",
                        choices.join(", ")
                    )));
                }
                p.strs.insert(name, v);
            }
        }
        p.matches = args::str_list(a, "match")?;
        p.destination_ports = args::str_list(a, "destination_ports")?;
        p.ctstate = args::str_list(a, "ctstate")?;
        p.tcp_flags = match a.get("tcp_flags") {
            None | Some(Value::Null) => None,
            Some(Value::Object(m)) => {
                if let Some(k) = m
                    .keys()
                    .find(|k| !matches!(k.as_str(), "flags" | "flags_set"))
                {
                    return Err(ModuleError::BadArgs(format!(
                        "Unsupported parameters for tcp_flags: {k}. Supported parameters include: flags, flags_set."
                    )));
                }
                let sub: Vars = m.clone().into_iter().collect();
                match (sub.get("flags"), sub.get("flags_set")) {
                    (Some(_), Some(_)) => Some((
                        args::str_list(&sub, "flags")?,
                        args::str_list(&sub, "flags_set")?,
                    )),
                    _ => None,
                }
            }
            Some(other) => {
                return Err(ModuleError::BadArgs(format!(
                    "argument 'tcp_flags' must be a dictionary, got {other}"
                )));
            }
        };
        p.flush = args::bool_or(a, "flush", false)?;
        p.chain_management = args::bool_or(a, "chain_management", false)?;
        p.numeric = args::bool_or(a, "numeric", false)?;

        for pair in [
            ["set_dscp_mark", "set_dscp_mark_class"],
            ["flush", "policy"],
        ] {
            let given = |n: &str| match n {
                "flush" => p.flush,
                n => p.get(n).is_some(),
            };
            if given(pair[0]) && given(pair[1]) {
                return Err(ModuleError::BadArgs(format!(
                    "parameters are mutually exclusive: {}|{}",
                    pair[0], pair[1]
                )));
            }
        }
        for by in ["set_dscp_mark", "set_dscp_mark_class"] {
            if p.get(by).is_some() && p.get("jump").is_none() {
                return Err(ModuleError::BadArgs(format!(
                    "missing parameter(s) required by '{by}': jump"
                )));
            }
        }
        if let Some(j @ ("TEE" | "tee")) = p.get("jump")
            && p.get("gateway").is_none()
        {
            return Err(ModuleError::BadArgs(format!(
                "jump is {j} but all of the following are missing: gateway"
            )));
        }
        if !p.flush && p.get("chain").is_none() {
            return Err(ModuleError::BadArgs(
                "flush is False but all of the following are missing: chain".into(),
            ));
        }
        Ok(p)
    }

    /// The rule's arguments, in the module's `construct_rule` order.
    fn rule(&self) -> Vec<String> {
        let mut r = Rule(Vec::new());
        let g = |n: &str| self.get(n);
        let has_match = |m: &str| self.matches.iter().any(|x| x == m);
        if let Some(w) = g("wait").filter(|w| !w.is_empty()) {
            r.push(&["-w", w]);
        }
        r.param(g("protocol"), "-p");
        r.param(g("source"), "-s");
        r.param(g("destination"), "-d");
        for m in &self.matches {
            r.param(Some(m), "-m");
        }
        if let Some((flags, set)) = &self.tcp_flags {
            r.push(&["--tcp-flags", &flags.join(","), &set.join(",")]);
        }
        r.param(g("jump"), "-j");
        if g("jump").is_some_and(|j| j.eq_ignore_ascii_case("tee")) {
            r.param(g("gateway"), "--gateway");
        }
        r.param(g("log_prefix"), "--log-prefix");
        r.param(g("log_level"), "--log-level");
        r.param(g("to_destination"), "--to-destination");
        if !self.destination_ports.is_empty() {
            r.push(&[
                "-m",
                "multiport",
                "--dports",
                &self.destination_ports.join(","),
            ]);
        }
        r.param(g("to_source"), "--to-source");
        r.param(g("goto"), "-g");
        r.param(g("in_interface"), "-i");
        r.param(g("out_interface"), "-o");
        r.param(g("fragment"), "-f");
        r.param(g("set_counters"), "-c");
        r.param(g("source_port"), "--source-port");
        r.param(g("destination_port"), "--destination-port");
        r.param(g("to_ports"), "--to-ports");
        let not_dscp_jump = || g("jump").is_some_and(|j| !j.eq_ignore_ascii_case("dscp"));
        r.param(g("set_dscp_mark"), "--set-dscp");
        if truthy(g("set_dscp_mark")) && not_dscp_jump() {
            r.push(&["-j", "DSCP"]);
        }
        r.param(g("set_dscp_mark_class"), "--set-dscp-class");
        if truthy(g("set_dscp_mark_class")) && not_dscp_jump() {
            r.push(&["-j", "DSCP"]);
        }
        r.match_flag(g("syn"), "--syn", true);
        let ctstate = self.ctstate.join(",");
        if has_match("conntrack") {
            r.csv(&ctstate, "--ctstate");
        } else if has_match("state") {
            r.csv(&ctstate, "--state");
        } else if !ctstate.is_empty() {
            r.push(&["-m", "conntrack", "--ctstate", &ctstate]);
        }
        if !has_match("iprange") && (truthy(g("src_range")) || truthy(g("dst_range"))) {
            r.push(&["-m", "iprange"]);
        }
        if has_match("iprange") || truthy(g("src_range")) || truthy(g("dst_range")) {
            r.param(g("src_range"), "--src-range");
            r.param(g("dst_range"), "--dst-range");
        }
        if has_match("set") || truthy(g("match_set")) {
            if !has_match("set") {
                r.push(&["-m", "set"]);
            }
            r.param(g("match_set"), "--match-set");
            if let Some(f) = g("match_set_flags") {
                r.push(&[f]);
            }
        }
        if truthy(g("limit")) || truthy(g("limit_burst")) {
            r.push(&["-m", "limit"]);
        }
        r.param(g("limit"), "--limit");
        r.param(g("limit_burst"), "--limit-burst");
        for (arg, flag) in [("uid_owner", "--uid-owner"), ("gid_owner", "--gid-owner")] {
            if truthy(g(arg)) {
                r.push(&["-m", "owner"]);
            }
            r.match_flag(g(arg), flag, true);
            r.param(g(arg), flag);
        }
        if g("jump").is_none() {
            for n in ["reject_with", "set_dscp_mark_class", "set_dscp_mark"] {
                if truthy(g(n)) {
                    r.push(&["-j", if n == "reject_with" { "REJECT" } else { "DSCP" }]);
                }
            }
        }
        r.param(g("reject_with"), "--reject-with");
        let icmp = if g("ip_version") == Some("ipv6") {
            "--icmpv6-type"
        } else {
            "--icmp-type"
        };
        r.param(g("icmp_type"), icmp);
        if truthy(g("comment")) {
            r.push(&["-m", "comment"]);
        }
        r.param(g("comment"), "--comment");
        r.0
    }

    /// The command line for `action` on the table's chain (the module's
    /// `push_arguments`), with the rule when `with_rule`.
    fn command(&self, action: &str, with_rule: bool) -> Vec<String> {
        let mut cmd = vec![
            "-t".to_string(),
            self.get("table").unwrap_or("filter").to_string(),
            action.to_string(),
        ];
        // Without a chain (flush) the module's None is dropped from the command line by
        // run_command, so every chain of the table is meant.
        if let Some(chain) = self.get("chain") {
            cmd.push(chain.to_string());
        }
        if action == "-I"
            && let Some(n) = self.get("rule_num").filter(|n| !n.is_empty())
        {
            cmd.push(n.to_string());
        }
        if with_rule {
            cmd.extend(self.rule());
        }
        cmd
    }
}

/// Python's truth of an optional string: given and not empty.
fn truthy(v: Option<&str>) -> bool {
    v.is_some_and(|s| !s.is_empty())
}

/// A rule's arguments as they are built.
struct Rule(Vec<String>);

impl Rule {
    fn push(&mut self, words: &[&str]) {
        self.0.extend(words.iter().map(|w| w.to_string()));
    }

    /// The module's `append_param`: `flag value`, or `! flag value` for `!value`.
    fn param(&mut self, v: Option<&str>, flag: &str) {
        if let Some(v) = v {
            match v.strip_prefix('!') {
                Some(rest) => self.push(&["!", flag, rest]),
                None => self.push(&[flag, v]),
            }
        }
    }

    /// The module's `append_match_flag`: `match` gives the flag, `negate` `! flag`.
    fn match_flag(&mut self, v: Option<&str>, flag: &str, negatable: bool) {
        match v {
            Some("match") => self.push(&[flag]),
            Some("negate") if negatable => self.push(&["!", flag]),
            _ => {}
        }
    }

    fn csv(&mut self, joined: &str, flag: &str) {
        if !joined.is_empty() {
            self.push(&[flag, joined]);
        }
    }
}

/// The leading numbers of a version (`1.8.9 (nf_tables)` -> 1, 8, 9).
fn version_numbers(v: &str) -> Vec<u64> {
    v.trim()
        .split(|c: char| !c.is_ascii_digit() && c != '.')
        .next()
        .unwrap_or_default()
        .split('.')
        .map_while(|n| n.parse().ok())
        .collect()
}

/// `iptables`.
pub(super) fn run(a: &Vars, ctx: &Ctx<'_>) -> Result<Outcome, ModuleError> {
    fsutil::finish(run_with(a, ctx, None))
}

/// The module with `bin` instead of the host's iptables (tests).
fn run_with(a: &Vars, ctx: &Ctx<'_>, bin: Option<&Path>) -> Step<Outcome> {
    let mut p = Params::parse(a)?;
    let ipv6 = p.get("ip_version") == Some("ipv6");
    let state = p.get("state").unwrap_or("present").to_string();
    // The registered rule is the one given, before LOG and wait are filled in below.
    let rule = p.rule().join(" ");
    let registered = Outcome::ok()
        .with("ip_version", p.get("ip_version").unwrap_or("ipv4"))
        .with("table", p.get("table").unwrap_or("filter"))
        .with("chain", p.get("chain").map_or(Value::Null, Value::from))
        .with("flush", p.flush)
        .with("rule", rule.as_str())
        .with("state", state.as_str())
        .with("chain_management", p.chain_management);
    let result = |changed: bool| Outcome {
        changed,
        ..registered.clone()
    };
    let bin: PathBuf = match bin {
        Some(b) => b.to_path_buf(),
        None => tools::require_bin(if ipv6 { "ip6tables" } else { "iptables" })
            .map_err(fsutil::failed)?,
    };
    let tool = |argv: Vec<String>| tools::run_checked(ctx, &bin, &argv).map_err(fsutil::failed);

    if p.get("log_prefix").is_some() || p.get("log_level").is_some() {
        match p.get("jump") {
            None => {
                p.strs.insert("jump", "LOG".into());
            }
            Some("LOG") => {}
            Some(_) => return fail("Logging options can only be used with the LOG jump target."),
        }
    }
    let version = tool(vec!["--version".into()])?.stdout;
    let version = version_numbers(version.split_once('v').map_or("", |(_, v)| v));
    if version.as_slice() < WAIT_SECONDS_ADDED {
        // Older releases take no seconds (1.4.20 and later) or no -w at all.
        if version.as_slice() >= WAIT_ADDED {
            p.strs.insert("wait", String::new());
        } else {
            p.strs.remove("wait");
        }
    }
    let listing = |p: &Params| {
        let mut cmd = p.command("-L", false);
        if p.numeric {
            cmd.push("--numeric".into());
        }
        cmd
    };

    if p.flush {
        if !ctx.check_mode {
            tool(p.command("-F", false))?;
        }
        return Ok(result(true));
    }
    if let Some(policy) = p.get("policy") {
        let out = tool(listing(&p))?.stdout;
        let header = out.split('\n').next().unwrap_or_default();
        let current = header
            .split_once("(policy ")
            .and_then(|(_, rest)| rest.split_once(')'))
            .map(|(name, _)| name)
            .filter(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_uppercase()));
        let Some(current) = current else {
            return fail("Can't detect current policy");
        };
        let changed = current != policy;
        if changed && !ctx.check_mode {
            let mut cmd = p.command("-P", false);
            cmd.push(policy.to_string());
            tool(cmd)?;
        }
        return Ok(result(changed));
    }
    if rule.is_empty() {
        // No rule: the chain itself (created or deleted only with chain_management).
        let present = tools::run_command(ctx.command(&bin), &listing(&p), None)
            .map_err(|e| fsutil::failed(Outcome::fail(format!("{}: {e}", bin.display()))))?
            .rc
            == 0;
        let wanted = state == "present";
        let changed = present != wanted;
        if changed && p.chain_management && !ctx.check_mode {
            tool(p.command(if wanted { "-N" } else { "-X" }, false))?;
        }
        return Ok(result(changed));
    }
    let present = tools::run_command(ctx.command(&bin), &p.command("-C", true), None)
        .map_err(|e| fsutil::failed(Outcome::fail(format!("{}: {e}", bin.display()))))?
        .rc
        == 0;
    let wanted = state == "present";
    if present == wanted {
        return Ok(result(false));
    }
    if !ctx.check_mode {
        let action = match (wanted, p.get("action")) {
            (false, _) => "-D",
            (true, Some("insert")) => "-I",
            (true, _) => "-A",
        };
        tool(p.command(action, true))?;
    }
    Ok(result(true))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn params(v: Value) -> Result<Params, ModuleError> {
        let a: Vars = serde_json::from_value(v).unwrap();
        Params::parse(&a)
    }

    fn rule(v: Value) -> String {
        params(v).unwrap().rule().join(" ")
    }

    /// The rules of the module's documented examples, as its construct_rule writes them.
    #[test]
    fn rules_are_built_in_the_modules_order() {
        assert_eq!(
            rule(json!({"chain": "INPUT", "source": "8.8.8.8", "jump": "DROP"})),
            "-s 8.8.8.8 -j DROP"
        );
        assert_eq!(
            rule(
                json!({"chain": "INPUT", "protocol": "tcp", "destination_port": "22",
                        "ctstate": ["NEW"], "syn": "match", "jump": "ACCEPT",
                        "comment": "Accept new SSH connections."})
            ),
            "-p tcp -j ACCEPT --destination-port 22 --syn -m conntrack --ctstate NEW -m comment --comment Accept new SSH connections."
        );
        assert_eq!(
            rule(
                json!({"chain": "INPUT", "protocol": "tcp", "destination_ports": ["80", "443", "8081:8083"],
                        "jump": "ACCEPT"})
            ),
            "-p tcp -j ACCEPT -m multiport --dports 80,443,8081:8083"
        );
        assert_eq!(
            rule(
                json!({"chain": "INPUT", "match": ["state"], "ctstate": ["ESTABLISHED", "RELATED"],
                        "source": "!10.0.0.0/8", "jump": "ACCEPT"})
            ),
            "! -s 10.0.0.0/8 -m state -j ACCEPT --state ESTABLISHED,RELATED"
        );
        assert_eq!(
            rule(
                json!({"chain": "OUTPUT", "uid_owner": "!1000", "reject_with": "tcp-reset",
                        "tcp_flags": {"flags": ["ALL"], "flags_set": ["ACK", "RST"]}})
            ),
            "--tcp-flags ALL ACK,RST -m owner ! --uid-owner 1000 -j REJECT --reject-with tcp-reset"
        );
        assert_eq!(
            rule(
                json!({"chain": "INPUT", "protocol": "icmp", "icmp_type": "echo-request",
                        "ip_version": "ipv6", "src_range": "::1-::2", "limit": "2/s"})
            ),
            "-p icmp -m iprange --src-range ::1-::2 -m limit --limit 2/s --icmpv6-type echo-request"
        );
        assert_eq!(rule(json!({"chain": "FOO"})), "");
    }

    #[test]
    fn arguments_are_checked_as_the_module_declares_them() {
        let msg = |v: Value| params(v).unwrap_err().to_string();
        assert_eq!(
            msg(json!({"source": "1.2.3.4"})),
            "flush is False but all of the following are missing: chain"
        );
        assert_eq!(
            msg(json!({"chain": "X", "flush": true, "policy": "DROP"})),
            "parameters are mutually exclusive: flush|policy"
        );
        assert_eq!(
            msg(json!({"chain": "X", "set_dscp_mark": "1"})),
            "missing parameter(s) required by 'set_dscp_mark': jump"
        );
        assert_eq!(
            msg(json!({"chain": "X", "jump": "TEE"})),
            "jump is TEE but all of the following are missing: gateway"
        );
        assert_eq!(
            msg(json!({"chain": "X", "table": "nope"})),
            "value of table must be one of: filter, nat, mangle, raw, security, got: nope"
        );
        assert!(params(json!({"flush": true})).is_ok());
    }

    #[test]
    fn commands_name_the_table_chain_and_rule() {
        let p = params(
            json!({"chain": "INPUT", "action": "insert", "rule_num": "2",
                              "jump": "ACCEPT", "table": "nat"}),
        )
        .unwrap();
        assert_eq!(
            p.command("-I", true).join(" "),
            "-t nat -I INPUT 2 -j ACCEPT"
        );
        assert_eq!(p.command("-A", true).join(" "), "-t nat -A INPUT -j ACCEPT");
        let all = params(json!({"flush": true})).unwrap();
        assert_eq!(all.command("-F", false).join(" "), "-t filter -F");
    }

    #[test]
    fn versions_compare_by_their_numbers() {
        assert_eq!(version_numbers("1.8.9 (nf_tables)\n"), vec![1, 8, 9]);
        assert!(version_numbers("1.4.21").as_slice() >= WAIT_ADDED);
        assert!(version_numbers("1.4.21").as_slice() < WAIT_SECONDS_ADDED);
    }

    /// The host's own iptables, in a network namespace of its own (`unshare -n`), so
    /// this machine's rules are never touched: a chain made, a rule added once, flushed,
    /// the policy set, the chain removed; each a second time reports ok.
    #[test]
    fn rules_and_chains_in_a_private_network_namespace() {
        let (Some(unshare), Some(ipt)) = (tools::find_bin("unshare"), tools::find_bin("iptables"))
        else {
            eprintln!("skipped: unshare or iptables missing");
            return;
        };
        let euid = std::process::Command::new("id").arg("-u").output().unwrap();
        if String::from_utf8_lossy(&euid.stdout).trim() != "0" {
            eprintln!("skipped: needs root for a network namespace");
            return;
        }
        // One namespace for the whole scenario: a small shell in it runs each iptables
        // call the module makes, read from a fifo, so state persists between tasks.
        let dir = tempfile::tempdir().unwrap();
        let ns = dir.path().join("ns");
        std::fs::write(&ns, "").unwrap();
        let made = std::process::Command::new(&unshare)
            .arg(format!("--net={}", ns.display()))
            .arg("true")
            .status()
            .unwrap();
        if !made.success() {
            eprintln!("skipped: no network namespaces here");
            return;
        }
        /// The namespace's bind mount goes however the test ends.
        struct Unmount(PathBuf);
        impl Drop for Unmount {
            fn drop(&mut self) {
                let _ = std::process::Command::new("umount").arg(&self.0).status();
            }
        }
        let _unmount = Unmount(ns.clone());
        let nsenter = tools::find_bin("nsenter").unwrap();
        let wrapper = dir.path().join("iptables");
        std::fs::write(
            &wrapper,
            format!(
                "#!/bin/sh\nexec {} --net={} {} \"$@\"\n",
                nsenter.display(),
                ns.display(),
                ipt.display()
            ),
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
        let t = crate::modules::TestCtx::new();
        let task = |v: Value, check: bool| {
            let a: Vars = serde_json::from_value(v).unwrap();
            fsutil::finish(run_with(&a, &t.ctx(check, false), Some(&wrapper))).unwrap()
        };
        let listed = || {
            let o = std::process::Command::new(&wrapper)
                .arg("-S")
                .output()
                .unwrap();
            String::from_utf8_lossy(&o.stdout).into_owned()
        };
        let chain = json!({"chain": "RUSTLE-T", "chain_management": true});
        let dry = task(chain.clone(), true);
        assert!(dry.changed && !listed().contains("RUSTLE-T"), "{dry:?}");
        assert!(task(chain.clone(), false).changed);
        assert!(listed().contains("-N RUSTLE-T"));
        assert!(!task(chain.clone(), false).changed);

        let r = json!({"chain": "RUSTLE-T", "source": "10.1.2.3", "protocol": "tcp",
                       "destination_port": "22", "jump": "DROP", "comment": "two words"});
        let added = task(r.clone(), false);
        assert!(added.changed && !added.failed, "{added:?}");
        assert_eq!(
            added.data["rule"],
            json!(
                "-p tcp -s 10.1.2.3 -j DROP --destination-port 22 -m comment --comment two words"
            )
        );
        assert!(listed().contains("\"two words\""), "{}", listed());
        assert!(!task(r.clone(), false).changed);
        let mut gone = r.clone();
        gone["state"] = json!("absent");
        assert!(task(gone.clone(), true).changed);
        assert!(listed().contains("10.1.2.3"), "check mode removed nothing");

        assert!(task(json!({"chain": "RUSTLE-T", "flush": true}), false).changed);
        assert!(!listed().contains("10.1.2.3"));
        assert!(!task(gone, false).changed);

        let policy = json!({"chain": "FORWARD", "policy": "DROP"});
        assert!(task(policy.clone(), false).changed);
        assert!(listed().contains("-P FORWARD DROP"));
        assert!(!task(policy, false).changed);

        let mut del = chain.clone();
        del["state"] = json!("absent");
        assert!(task(del.clone(), false).changed);
        assert!(!listed().contains("RUSTLE-T"));
        assert!(!task(del, false).changed);

        let bad = task(
            json!({"chain": "NO-SUCH", "jump": "DROP", "source": "1.1.1.1"}),
            false,
        );
        assert!(bad.failed && bad.data.contains_key("rc"), "{bad:?}");
    }
}
