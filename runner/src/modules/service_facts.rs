//! service_facts: the host's services as the fact `services`, gathered as
//! ansible.builtin.service_facts gathers them on Linux: SysV scripts from
//! `service --status-all`, then systemd's units and unit files through `systemctl` when
//! systemd runs the machine (its entries win). Upstart, chkconfig (RHEL 6) and OpenRC
//! listings are not read here.

use super::tools;
use super::{Ctx, ModuleError, Outcome, args};
use crate::plan::Vars;
use serde_json::{Map, Value, json};
use std::path::Path;

const BAD_STATES: &[&str] = &["not-found", "masked", "failed"];

/// `service_facts`.
pub(super) fn run(a: &Vars, ctx: &Ctx<'_>) -> Result<Outcome, ModuleError> {
    args::only(a, &[])?;
    let mut services = Map::new();
    let mut warnings = Vec::new();
    let run = |program: &Path, argv: &[&str]| {
        let mut cmd = ctx.command(program);
        cmd.env("LANG", "C").env("LC_ALL", "C");
        let argv: Vec<String> = argv.iter().map(|s| s.to_string()).collect();
        tools::run_command(cmd, &argv, None).ok()
    };
    let no_chkconfig = tools::find_bin("chkconfig").is_none();
    if let Some(service) = tools::find_bin("service")
        && no_chkconfig
        && tools::find_bin("rc-status").is_none()
        && let Some(out) = run(&service, &["--status-all"])
        // rc 4 without /etc/init.d: `service` of a system without SysV scripts.
        && (out.rc != 4 || Path::new("/etc/init.d").exists())
    {
        if out.rc != 0 {
            warnings.push(format!(
                "Unable to query 'service' tool ({}): {}",
                out.rc, out.stderr
            ));
        }
        sysv(&out.stdout, &mut services);
    }
    if let Some(systemctl) = tools::find_bin("systemctl")
        && systemd_managed()
    {
        match run(
            &systemctl,
            &[
                "list-units",
                "--no-pager",
                "--type",
                "service",
                "--all",
                "--plain",
            ],
        ) {
            Some(out) if out.rc == 0 => units(&out.stdout, &mut services),
            Some(out) => {
                warnings.push(format!("Could not list units from systemd: {}", out.stderr))
            }
            None => {}
        }
        match run(
            &systemctl,
            &[
                "list-unit-files",
                "--no-pager",
                "--type",
                "service",
                "--all",
            ],
        ) {
            Some(out) if out.rc == 0 => {
                for line in out.stdout.split('\n').filter(|l| l.contains(".service")) {
                    let mut f = line.split_whitespace();
                    let (Some(name), Some(status)) = (f.next(), f.next()) else {
                        return Ok(Outcome::fail(format!(
                            "Malformed output discovered from systemd list-unit-files: {line}"
                        )));
                    };
                    match services.get_mut(name) {
                        None => {
                            let state = run(&systemctl, &["show", name, "--property=ActiveState"])
                                .filter(|o| o.rc == 0 && !o.stdout.is_empty())
                                .map_or_else(
                                    || "unknown".to_string(),
                                    |o| o.stdout.replace("ActiveState=", "").trim_end().to_string(),
                                );
                            services.insert(
                                name.to_string(),
                                json!({"name": name, "state": state, "status": status, "source": "systemd"}),
                            );
                        }
                        Some(Value::Object(entry)) => {
                            let bad = entry
                                .get("status")
                                .and_then(Value::as_str)
                                .is_some_and(|s| BAD_STATES.contains(&s));
                            if !bad {
                                entry.insert("status".into(), Value::from(status));
                            }
                        }
                        Some(_) => {}
                    }
                }
            }
            Some(out) => warnings.push(format!(
                "Could not get unit files data from systemd: {}",
                out.stderr
            )),
            None => {}
        }
    }
    let mut out = if services.is_empty() {
        Outcome {
            skipped: true,
            ..Outcome::default()
        }
        .msg("Failed to find any services. This can be due to privileges or some other configuration issue.")
    } else {
        Outcome::ok().with(
            "ansible_facts",
            json!({"services": Value::Object(services)}),
        )
    };
    if !warnings.is_empty() {
        out = out.with("warnings", warnings);
    }
    Ok(out)
}

/// systemd's own test (sd_booted), and init's name, as Ansible's `is_systemd_managed`.
fn systemd_managed() -> bool {
    [
        "/run/systemd/system/",
        "/dev/.run/systemd/",
        "/dev/.systemd/",
    ]
    .iter()
    .any(|p| Path::new(p).exists())
        || init_is_systemd()
}

/// Whether process 1 is systemd (Linux's `/proc/1/comm`).
#[cfg(target_os = "linux")]
fn init_is_systemd() -> bool {
    std::fs::read_to_string("/proc/1/comm")
        .is_ok_and(|c| c.lines().next().map(str::trim) == Some("systemd"))
}

/// systemd runs only on Linux.
#[cfg(not(target_os = "linux"))]
fn init_is_systemd() -> bool {
    false
}

/// `service --status-all`: ` [ + ]  name` running, ` [ - ]  name` stopped.
fn sysv(stdout: &str, services: &mut Map<String, Value>) {
    let Ok(re) = regex::Regex::new(r"(?m)^\s*\[ (\+|-) \]\s+(.+)$") else {
        return;
    };
    for c in re.captures_iter(stdout) {
        let (Some(state), Some(name)) = (c.get(1), c.get(2)) else {
            continue;
        };
        let state = if state.as_str() == "+" {
            "running"
        } else {
            "stopped"
        };
        services.insert(
            name.as_str().to_string(),
            json!({"name": name.as_str(), "state": state, "source": "sysv"}),
        );
    }
}

/// `systemctl list-units --plain`: unit, load, active, sub, description.
fn units(stdout: &str, services: &mut Map<String, Value>) {
    for line in stdout.split('\n').filter(|l| l.contains(".service")) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (Some(name), Some(active), Some(sub)) = (fields.first(), fields.get(2), fields.get(3))
        else {
            continue;
        };
        let head = fields.get(..fields.len().saturating_sub(1)).unwrap_or(&[]);
        let status = BAD_STATES
            .iter()
            .find(|b| head.contains(b))
            .copied()
            .unwrap_or(active);
        let state = if *sub == "running" {
            "running"
        } else {
            "stopped"
        };
        services.insert(
            (*name).to_string(),
            json!({"name": name, "state": state, "status": status, "source": "systemd"}),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sysv_listing_gives_running_and_stopped_services() {
        let mut s = Map::new();
        sysv(" [ + ]  cron\n [ - ]  ssh\n [ ? ]  odd\n", &mut s);
        assert_eq!(
            s["cron"],
            json!({"name": "cron", "state": "running", "source": "sysv"})
        );
        assert_eq!(s["ssh"]["state"], "stopped");
        assert!(!s.contains_key("odd"));
    }

    #[test]
    fn systemd_units_take_bad_states_before_the_active_column() {
        let mut s = Map::new();
        units(
            "cron.service loaded active running Regular background program\n\
             gone.service not-found inactive dead gone.service\n\
             x.socket loaded active listening X\n",
            &mut s,
        );
        assert_eq!(
            s["cron.service"],
            json!({"name": "cron.service", "state": "running", "status": "active", "source": "systemd"})
        );
        assert_eq!(s["gone.service"]["status"], "not-found");
        assert_eq!(s["gone.service"]["state"], "stopped");
        assert!(!s.contains_key("x.socket"));
    }

    #[test]
    fn this_hosts_services_are_gathered_or_the_task_is_skipped() {
        let o = crate::modules::run_in_dir_for_test(
            "service_facts",
            &std::env::temp_dir(),
            &json!({}),
            false,
        )
        .unwrap();
        assert!(!o.failed, "{o:?}");
        assert!(
            o.skipped || o.data["ansible_facts"]["services"].is_object(),
            "{o:?}"
        );
    }
}
