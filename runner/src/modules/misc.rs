//! ping, pause, wait_for_connection and setup: small modules that change nothing on the host.

use super::{Ctx, ModuleError, Outcome, args};
use crate::facts::{self, Subset};
use crate::fnmatch::Pattern;
use crate::plan::Vars;
use serde_json::Value;
use std::time::{Duration, Instant, SystemTime};

/// `ping`: answers `ping: <data>` ("pong" by default); `data: crash` fails, which is
/// how Ansible's ping is used to test failure handling.
pub(super) fn ping(a: &Vars, _ctx: &Ctx<'_>) -> Result<Outcome, ModuleError> {
    args::only(a, &["data"])?;
    let data = a.get("data").cloned().unwrap_or_else(|| "pong".into());
    if data == "crash" {
        // What Ansible reports of its ping module raising `Exception('boom')`: a
        // module that printed a traceback and no JSON.
        return Ok(Outcome::fail(
            "MODULE FAILURE: No start of json char found\nSee stdout/stderr for the exact error",
        )
        .with("module_stdout", "")
        .with(
            "module_stderr",
            "Traceback (most recent call last):\n  File \"ansible/modules/ping.py\", line 78, in main\nException: boom\n",
        )
        .with("rc", 1));
    }
    // Ansible's modules return the parameters they ran with (`invocation`, which its
    // callback shows from -vvv on); ping's only one is `data`.
    let invocation = serde_json::json!({"module_args": {"data": data}});
    Ok(Outcome::ok()
        .with("ping", data)
        .with("invocation", invocation))
}

/// `pause`: waits `seconds` or `minutes`. The runner is unattended (no terminal), so
/// a pause that would wait for someone to press a key fails instead of hanging, and
/// a prompt with a duration is shown in the result and simply waited out.
pub(super) fn pause(a: &Vars, _ctx: &Ctx<'_>) -> Result<Outcome, ModuleError> {
    args::only(a, &["seconds", "minutes", "prompt", "echo"])?;
    let num = |name: &str| -> Result<Option<f64>, ModuleError> {
        match args::opt_str(a, name)? {
            None => Ok(None),
            Some(s) => s
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|v| v.is_finite() && *v >= 0.0)
                .map(Some)
                .ok_or_else(|| {
                    ModuleError::BadArgs(format!(
                        "argument '{name}' must be a non-negative number, got '{s}'"
                    ))
                }),
        }
    };
    let seconds = num("seconds")?;
    let minutes = num("minutes")?;
    let echo = args::bool_or(a, "echo", true)?;
    let prompt = args::opt_str(a, "prompt")?;
    let (secs, stdout) = match (seconds, minutes) {
        (Some(_), Some(_)) => {
            return Err(ModuleError::BadArgs(
                "'seconds' and 'minutes' are mutually exclusive".into(),
            ));
        }
        (Some(s), None) => (s, format!("Paused for {} seconds", py_float(s))),
        (None, Some(m)) => (m * 60.0, format!("Paused for {} minutes", py_float(m))),
        (None, None) => {
            return Ok(Outcome::fail(match &prompt {
                Some(p) => format!(
                    "pause with prompt '{p}' waits for input, but the runner runs unattended (no terminal); give 'seconds' or 'minutes'"
                ),
                None => "pause without 'seconds' or 'minutes' waits for input, but the runner runs unattended (no terminal); give 'seconds' or 'minutes'".into(),
            }));
        }
    };
    let start = SystemTime::now();
    let began = Instant::now();
    std::thread::sleep(Duration::from_secs_f64(secs.min(1e9)));
    let stop = SystemTime::now();
    let mut o = Outcome::ok()
        .with("start", facts::format_time(start))
        .with("stop", facts::format_time(stop))
        .with("delta", began.elapsed().as_secs())
        .with("user_input", "")
        .with("echo", echo)
        .with("rc", 0)
        .with("stderr", "")
        .with("stdout", stdout);
    if let Some(p) = prompt {
        o = o.with("prompt", p);
    }
    Ok(o)
}

/// `wait_for_connection`: waits `delay` seconds, then for the host to answer. The
/// runner is a process on the host, so the host answers as soon as it asks: the task
/// reports the seconds waited (`elapsed`), as Ansible's action does once its ping
/// succeeds. Check mode skips it, as Ansible's does.
pub(super) fn wait_for_connection(a: &Vars, ctx: &Ctx<'_>) -> Result<Outcome, ModuleError> {
    const KNOWN: [&str; 4] = ["connect_timeout", "delay", "sleep", "timeout"];
    let bad: Vec<&str> = (a.keys().map(String::as_str))
        .filter(|k| !KNOWN.contains(k))
        .collect();
    if !bad.is_empty() {
        // The action's own words (`ActionBase.validate_argument_spec`'s older form).
        return Ok(Outcome::fail(format!(
            "Invalid options for wait_for_connection: {}",
            bad.join(",")
        )));
    }
    let mut seconds = [0u64; 4];
    for (name, slot) in KNOWN.iter().zip(&mut seconds) {
        if let Some(s) = args::opt_str(a, name)? {
            *slot = s.trim().parse().map_err(|_| {
                ModuleError::BadArgs(format!(
                    "argument '{name}' must be a whole number of seconds, got '{s}'"
                ))
            })?;
        }
    }
    if ctx.check_mode {
        let mut o = Outcome::ok();
        o.skipped = true;
        return Ok(o);
    }
    let began = Instant::now();
    std::thread::sleep(Duration::from_secs(seconds[1].min(1 << 30)));
    Ok(Outcome::ok().with("elapsed", began.elapsed().as_secs()))
}

/// A number as Python prints a float (`5.0`, `0.5`).
fn py_float(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{v:.1}")
    } else {
        v.to_string()
    }
}

/// ansible-core's fact collector names (and the aliases `devices`, `dmi`,
/// `interfaces`), which `gather_subset` may name.
const SUBSETS: &[&str] = &[
    "all",
    "min",
    "apparmor",
    "caps",
    "chroot",
    "cmdline",
    "date_time",
    "devices",
    "distribution",
    "dmi",
    "dns",
    "env",
    "facter",
    "fibre_channel_wwn",
    "fips",
    "hardware",
    "interfaces",
    "iscsi",
    "loadavg",
    "local",
    "lsb",
    "network",
    "nvme",
    "ohai",
    "pkg_mgr",
    "platform",
    "python",
    "selinux",
    "service_mgr",
    "ssh_pub_keys",
    "user",
    "virtual",
];

/// `setup`: gathers facts now and returns them as `ansible_facts` (`ansible_`
/// names, as Ansible's setup returns them), limited by `gather_subset` and `filter`.
pub(super) fn setup(a: &Vars, _ctx: &Ctx<'_>) -> Result<Outcome, ModuleError> {
    args::only(
        a,
        &["gather_subset", "filter", "gather_timeout", "fact_path"],
    )?;
    let subset = subset(&split_list(a, "gather_subset")?)?;
    let patterns = split_list(a, "filter")?;
    let mut facts = facts::gather_subset(subset);
    if let Some(path) = args::opt_str(a, "fact_path")?.filter(|p| p != facts::DEFAULT_FACT_PATH) {
        facts.insert(
            "ansible_local".into(),
            facts::local(std::path::Path::new(&path)),
        );
    }
    // Asked for explicitly, the interpreter's facts are worth starting it for.
    if let Some(py) = facts::python() {
        facts.extend(py);
    }
    if !patterns.is_empty() {
        let patterns: Vec<Pattern> = patterns.iter().map(|p| Pattern::new(p)).collect();
        facts.retain(|k, _| {
            let bare = k.strip_prefix("ansible_").unwrap_or(k);
            patterns.iter().any(|p| p.matches(k) || p.matches(bare))
        });
    }
    Ok(Outcome::ok().with("ansible_facts", Value::Object(facts)))
}

/// `gather_facts` as a task: Ansible's action runs the `setup` module with the task's
/// arguments (`parallel` is the action's own: with one fact module there is nothing
/// to run side by side).
pub(super) fn gather_facts(a: &Vars, ctx: &Ctx<'_>) -> Result<Outcome, ModuleError> {
    let mut a = a.clone();
    a.shift_remove("parallel");
    setup(&a, ctx)
}

/// A list argument whose items may also be comma-separated, as Ansible's are.
fn split_list(a: &Vars, name: &str) -> Result<Vec<String>, ModuleError> {
    Ok(args::str_list(a, name)?
        .iter()
        .flat_map(|s| s.split(','))
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect())
}

/// Ansible's subset rules (`get_collector_names`), for the groups this runner has:
/// the minimal facts always; `all` (the default when nothing is named) adds every
/// group; a named group is added even where `!all` or `!group` would remove it; with
/// only other groups named (`gather_subset: distribution`), hardware and network are
/// left out.
fn subset(items: &[String]) -> Result<Subset, ModuleError> {
    let all_items = [String::from("all")];
    let items = if items.is_empty() {
        &all_items[..]
    } else {
        items
    };
    let mut add_all = false;
    let mut exclude_all = false;
    let mut explicit = Vec::new();
    let mut excluded = Vec::new();
    for item in items {
        let (neg, name) = match item.strip_prefix('!') {
            Some(n) => (true, n),
            None => (false, item.as_str()),
        };
        if !SUBSETS.contains(&name) {
            return Err(ModuleError::BadArgs(format!(
                "argument 'gather_subset' has an unknown subset '{item}' (known: {})",
                SUBSETS.join(", ")
            )));
        }
        match (neg, name) {
            (_, "min") => {}
            (false, "all") => add_all = true,
            (true, "all") => exclude_all = true,
            (true, n) => excluded.push(n),
            (false, n) => explicit.push(n),
        }
    }
    let wanted = |names: &[&str]| {
        names.iter().any(|n| explicit.contains(n))
            || (add_all && !exclude_all && !names.iter().any(|n| excluded.contains(n)))
    };
    Ok(Subset {
        hardware: wanted(&["hardware", "devices", "dmi"]),
        network: wanted(&["network", "interfaces"]),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::collections::BTreeMap;

    fn run(module: &str, args: Value) -> Result<Outcome, ModuleError> {
        let args = args.as_object().unwrap();
        crate::modules::run_for_test(module, args, &BTreeMap::new(), &json!({}), false)
    }

    #[test]
    fn wait_for_connection_waits_its_delay_and_names_unknown_options() {
        let o = run("wait_for_connection", json!({"delay": 1, "timeout": "10"})).unwrap();
        assert!(!o.failed && !o.changed, "{o:?}");
        assert_eq!(o.data["elapsed"], 1);
        let o = run("wait_for_connection", json!({"foo": "bar"})).unwrap();
        assert_eq!(
            o.msg.as_deref(),
            Some("Invalid options for wait_for_connection: foo")
        );
        assert!(run("wait_for_connection", json!({"delay": "soon"})).is_err());
        let args = json!({"delay": 5});
        let o = crate::modules::run_for_test(
            "wait_for_connection",
            args.as_object().unwrap(),
            &BTreeMap::new(),
            &json!({}),
            true,
        )
        .unwrap();
        assert!(o.skipped, "check mode waits for nothing");
    }

    #[test]
    fn ping_pongs_and_crashes_on_request() {
        let o = run("ping", json!({})).unwrap();
        assert!(!o.changed && !o.failed);
        assert_eq!(o.data["ping"], "pong");
        assert_eq!(
            o.data["invocation"],
            json!({"module_args": {"data": "pong"}})
        );
        assert_eq!(
            run("ping", json!({"data": "hi"})).unwrap().data["ping"],
            "hi"
        );
        let o = run("ping", json!({"data": "crash"})).unwrap();
        assert!(o.failed);
        assert!(o.msg.as_deref().unwrap().starts_with("MODULE FAILURE"));
        assert!(
            o.data["module_stderr"]
                .as_str()
                .unwrap()
                .ends_with("Exception: boom\n")
        );
        assert!(run("ping", json!({"date": "x"})).is_err());
    }

    #[test]
    fn pause_waits_and_reports() {
        let began = Instant::now();
        let o = run("pause", json!({"seconds": 1, "prompt": "wait"})).unwrap();
        assert!(began.elapsed() >= Duration::from_secs(1));
        assert!(!o.failed && !o.changed);
        assert_eq!(o.data["user_input"], "");
        assert!(o.data["delta"].as_u64().unwrap() >= 1);
        assert_eq!(o.data["stdout"], "Paused for 1.0 seconds");
        assert!(o.data["start"].as_str().unwrap() <= o.data["stop"].as_str().unwrap());
        let o = run("pause", json!({"minutes": "0"})).unwrap();
        assert_eq!(o.data["stdout"], "Paused for 0.0 minutes");
    }

    #[test]
    fn pause_without_a_duration_fails_unattended() {
        let o = run("pause", json!({"prompt": "Continue?"})).unwrap();
        assert!(o.failed);
        assert!(o.msg.unwrap().contains("unattended"));
        assert!(run("pause", json!({})).unwrap().failed);
        assert!(run("pause", json!({"seconds": 1, "minutes": 1})).is_err());
        assert!(run("pause", json!({"seconds": "-1"})).is_err());
    }

    #[test]
    fn setup_returns_filtered_facts() {
        let o = run("setup", json!({})).unwrap();
        let f = o.data["ansible_facts"].as_object().unwrap();
        assert_eq!(f["ansible_system"], "Linux");
        assert!(f.contains_key("ansible_memtotal_mb"));
        let o = run("setup", json!({"filter": ["ansible_*_mb", "distribution"]})).unwrap();
        let f = o.data["ansible_facts"].as_object().unwrap();
        assert!(f.contains_key("ansible_memtotal_mb") && f.contains_key("ansible_distribution"));
        assert!(
            f.keys()
                .all(|k| k.ends_with("_mb") || k == "ansible_distribution"),
            "{f:?}"
        );
        let o = run("setup", json!({"gather_subset": "!all"})).unwrap();
        let f = o.data["ansible_facts"].as_object().unwrap();
        assert!(f.contains_key("ansible_hostname") && !f.contains_key("ansible_interfaces"));
        let o = run("setup", json!({"gather_subset": ["!all", "network"]})).unwrap();
        let f = o.data["ansible_facts"].as_object().unwrap();
        assert!(f.contains_key("ansible_interfaces") && !f.contains_key("ansible_memtotal_mb"));
        assert!(run("setup", json!({"gather_subset": "gpu"})).is_err());
    }
}
