//! Tasks delegated to another inventory host (`delegate_to: db1`, `delegate_to: "{{
//! groups.lb[0] }}"`): the deployer runs the task's module on that host over that host's
//! own SSH connection, with SSH mode's module back end ([`crate::sshexec::SshHost`]),
//! and the delegating host's runner registers the result as if it had run there.
//!
//! As in Ansible, the task is rendered with the delegating host's variables, while the
//! connection (`ansible_host`, `ansible_port`, `ansible_user`, the key, `ansible_connection`)
//! and the `ansible_become*` variables are the delegated-to host's, from the inventory.
//! The name must be a host of this deploy's inventory (`--limit` does not matter, as in
//! Ansible), by its inventory name or its address; anything else is refused, so a host
//! cannot make the deployer connect where the inventory does not say.

use crate::inventory::Host;
use crate::remote::RemoteOptions;
use crate::sshexec::{Link, SshHost};
use rustle_runner::events::Request;
use rustle_runner::exec::{failed_result as failed, unreachable_result as unreachable};
use rustle_runner::plan::{HostPlan, Task, Templated, Vars};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

/// The connection variables a delegated task takes from the delegated-to host rather
/// than from the delegating one: those the runner's executor reads (`become`).
const BECOME_VARS: [&str; 2] = ["ansible_become", "ansible_become_user"];

/// What the deployer needs to run delegated tasks on the inventory's hosts, for a
/// whole deploy (every batch).
pub struct Delegates {
    /// Every host of the inventory, by name.
    hosts: BTreeMap<String, Host>,
    opts: RemoteOptions,
    /// The connections opened to hosts delegated to, by name, reused by later tasks.
    links: tokio::sync::Mutex<HashMap<String, Link>>,
    /// Facts tasks delegated with `delegate_facts: true` returned, by the host they
    /// belong to.
    facts: Mutex<BTreeMap<String, Vars>>,
}

impl std::fmt::Debug for Delegates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Delegates")
            .field("hosts", &self.hosts.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl Delegates {
    /// Delegation to `hosts` (the inventory's), connecting as `opts` says.
    pub fn new(hosts: impl IntoIterator<Item = Host>, opts: RemoteOptions) -> Delegates {
        Delegates {
            hosts: hosts.into_iter().map(|h| (h.name.clone(), h)).collect(),
            opts,
            links: tokio::sync::Mutex::new(HashMap::new()),
            facts: Mutex::new(BTreeMap::new()),
        }
    }

    /// The inventory host `name` names: by inventory name, else the first whose
    /// address it is (Ansible's `get_delegated_vars_and_hostname` does the same).
    pub fn host(&self, name: &str) -> Option<&Host> {
        self.hosts
            .get(name)
            .or_else(|| self.hosts.values().find(|h| h.address() == name))
    }

    /// The facts delegated to `host` so far (`delegate_facts: true`).
    pub fn facts_of(&self, host: &str) -> Option<Vars> {
        self.lock_facts().get(host).cloned()
    }

    /// Keeps `facts` for `host`, over what it was given before.
    pub fn keep_facts(&self, host: &str, facts: &Vars) {
        let mut all = self.lock_facts();
        let kept = all.entry(host.to_string()).or_default();
        for (k, v) in facts {
            kept.insert(k.clone(), v.clone());
        }
    }

    /// The facts; nothing panics while holding them.
    fn lock_facts(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Vars>> {
        self.facts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Closes the connections opened to hosts delegated to (at the end of a deploy).
    pub async fn close(&self) {
        let links: Vec<Link> = self.links.lock().await.drain().map(|(_, l)| l).collect();
        for link in links {
            if let Link::Ssh(c) = link
                && let Ok(c) = Arc::try_unwrap(c)
            {
                c.close().await;
            }
        }
    }

    /// A connection to `host`: the one opened before while it lasts, else a new one.
    async fn link(&self, host: &Host) -> Result<Link, String> {
        if host.is_local() {
            return Ok(Link::Local);
        }
        let mut links = self.links.lock().await;
        if let Some(Link::Ssh(c)) = links.get(&host.name)
            && !c.is_closed()
        {
            return Ok(Link::Ssh(c.clone()));
        }
        let (target, jump) = crate::remote::target(host, &self.opts);
        let c = crate::ssh::connect_via(&target, &jump).await.map_err(|e| {
            format!(
                "cannot connect to the host delegated to, '{}': {e}",
                host.name
            )
        })?;
        let link = Link::Ssh(Arc::new(c));
        links.insert(host.name.clone(), link.clone());
        Ok(link)
    }
}

/// Whether the login on `host` is root, so `become` needs no sudo.
fn login_is_root(host: &Host, opts: &RemoteOptions) -> bool {
    if host.is_local() {
        rustle_runner::facts::current_uid() == Some(0)
    } else {
        crate::remote::target(host, opts).0.user == "root"
    }
}

/// Runs `task` (delegated by the host whose plan is `plan`, as its runner asked in
/// `request`) on the inventory host `to`: the result the delegating runner registers.
/// A connection that fails makes the task's result unreachable (naming the host), as
/// Ansible's is: the delegating host is then unreachable, unless the task ignores it.
pub async fn run(
    delegates: Arc<Delegates>,
    plan: Arc<HostPlan>,
    mut task: Task,
    request: Request,
    to: Host,
) -> Vars {
    let becomes = match to.vars.get("ansible_become") {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => rustle_runner::modules::args::truthy_str(s).unwrap_or(false),
        _ => request.become_user.is_some(),
    };
    // A module that needs no host (`set_fact` with `delegate_facts`, `debug`) runs
    // without connecting, as Ansible's connection is made only when a module runs
    // there: a host that is down does not fail it. A templated action might be anything,
    // and `become` asks the host who it is, so those connect.
    let no_host = crate::sshexec::NO_HOST.contains(&task.module_name()) && !becomes;
    let link = if no_host {
        Link::Local
    } else {
        match delegates.link(&to).await {
            Ok(l) => l,
            Err(e) => return unreachable(e),
        }
    };
    let mut vars = match &request.vars {
        Some(Value::Object(v)) => v.clone(),
        _ => Vars::new(),
    };
    for name in BECOME_VARS {
        vars.shift_remove(name);
        if let Some(v) = to.vars.get(name) {
            vars.insert(name.to_string(), v.clone());
        }
    }
    // The task's keywords as the delegating runner evaluated them; the variables just
    // put in win over them, as on any host.
    task.become_ = Some(Templated::Value(request.become_user.is_some()));
    task.become_user = request.become_user.clone();
    let sudo = becomes && !login_is_root(&to, &delegates.opts);
    let rt = tokio::runtime::Handle::current();
    let name = to.name.clone();
    let ran = tokio::task::spawn_blocking(move || {
        let host = SshHost::new(link, rt, sudo);
        let stats = host.stats();
        let result =
            rustle_runner::exec::run_delegated_on(&plan, &task, &request, vars, Box::new(host));
        let lost = stats.lock().ok().and_then(|s| s.lost.clone());
        (result, lost)
    })
    .await;
    match ran {
        Ok((_, Some(lost))) => unreachable(format!(
            "the host delegated to, '{name}', became unreachable: {lost}"
        )),
        Ok((result, None)) => result,
        Err(e) => failed(format!("internal error running the task on '{name}': {e}")),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use crate::channel::tests::sealed;
    use crate::channel::{Batch, HostChannel};
    use crate::deploy::HostResult;
    use rustle_runner::events::{Answer, RequestKind};
    use serde_json::json;
    use std::time::Duration;

    fn options() -> RemoteOptions {
        RemoteOptions {
            known_hosts: "/nonexistent/known_hosts".into(),
            global_known_hosts: Vec::new(),
            accept_new_host_keys: false,
            connect_timeout: Duration::from_secs(5),
            timeout: Duration::from_secs(30),
            parallel: 1,
            verify: false,
            key_line: String::new(),
            local_root: std::env::temp_dir(),
            local_apart: false,
            cache_dir: std::env::temp_dir(),
            keep_releases: 1,
            no_wait: false,
        }
    }

    fn host(name: &str, vars: Value) -> Host {
        Host {
            name: name.into(),
            vars: vars.as_object().cloned().unwrap_or_default(),
            groups: Vec::new(),
        }
    }

    fn delegated(name: &str, module: &str, args: Value, to: &str, facts: bool) -> Task {
        Task {
            name: Some(name.into()),
            module: module.into(),
            args: args.as_object().cloned().unwrap_or_default(),
            delegate_to: Some(to.into()),
            delegate_facts: facts,
            ..Task::default()
        }
    }

    /// A `delegate` request for `task` on `to`.
    fn request(id: u64, task: &Task, to: &str, vars: Value) -> String {
        let line = crate::channel::tests::request(id, RequestKind::Delegate, task, Some(vars));
        // The runner writes the event's type first: the field goes at the end.
        let open = line.strip_suffix('}').unwrap();
        format!("{open},\"delegate_to\":{}}}", json!(to))
    }

    async fn next(rx: &mut tokio::sync::mpsc::UnboundedReceiver<Vec<u8>>) -> Answer {
        let bytes = tokio::time::timeout(Duration::from_secs(20), rx.recv())
            .await
            .expect("an answer in time")
            .expect("an answer");
        serde_json::from_slice(&bytes).unwrap()
    }

    /// `db1` is a local host of the inventory (`ansible_connection=local`), so its
    /// module runs here through `sh`, as SSH mode runs a local host's.
    fn inventory() -> Arc<Delegates> {
        Arc::new(Delegates::new(
            [
                host(
                    "db1",
                    json!({"ansible_connection": "local", "ansible_host": "10.9.9.9"}),
                ),
                host("web1", json!({"ansible_connection": "local"})),
            ],
            options(),
        ))
    }

    #[tokio::test]
    async fn a_task_delegated_to_an_inventory_host_runs_there_with_the_delegating_hosts_variables()
    {
        let echo = delegated(
            "echo",
            "command",
            json!({"_raw_params": "echo {{ who }}"}),
            "{{ target }}",
            false,
        );
        let delegates = inventory();
        let batch = Arc::new(Batch::with_delegates(delegates.clone()));
        let mut ch = HostChannel::new("web1", Arc::new(sealed(vec![echo.clone()])), batch);
        let mut rx = ch.open();
        let mut r = HostResult::new("web1", Default::default());
        // By name, then by address (Ansible finds a host by its address too).
        for (id, to) in [(1, "db1"), (2, "10.9.9.9")] {
            let req = request(id, &echo, to, json!({"who": "web1-var", "target": to}));
            assert!(ch.intercept(
                crate::ssh::Line {
                    text: &req,
                    cut: None
                },
                &mut r
            ));
            let answer = next(&mut rx).await;
            assert_eq!(answer.error, None, "{to}");
            assert_eq!(answer.result.unwrap()["stdout"], "web1-var", "{to}");
        }
        // A name no inventory host has fails the task; the host is not refused.
        let req = request(3, &echo, "elsewhere", json!({"who": "x"}));
        ch.intercept(
            crate::ssh::Line {
                text: &req,
                cut: None,
            },
            &mut r,
        );
        let error = next(&mut rx).await.error.expect("an error");
        assert!(
            error.contains("'elsewhere'") && error.contains("inventory"),
            "{error}"
        );
        assert!(ch.refused.is_none() && r.error.is_none(), "{:?}", r.error);
    }

    #[tokio::test]
    async fn a_request_for_another_host_than_a_literal_delegate_to_names_is_refused() {
        let task = delegated("t", "command", json!({"_raw_params": "true"}), "db1", false);
        let batch = Arc::new(Batch::with_delegates(inventory()));
        let mut ch = HostChannel::new("web1", Arc::new(sealed(vec![task.clone()])), batch);
        let mut rx = ch.open();
        let mut r = HostResult::new("web1", Default::default());
        let req = request(1, &task, "web1", json!({}));
        ch.intercept(
            crate::ssh::Line {
                text: &req,
                cut: None,
            },
            &mut r,
        );
        let error = next(&mut rx).await.error.expect("refused");
        assert!(
            error.contains("delegated to 'db1', not to 'web1'"),
            "{error}"
        );
        assert!(ch.refused.is_some());
    }

    #[tokio::test]
    async fn delegated_facts_are_kept_for_the_host_delegated_to() {
        let with = delegated("with", "set_fact", json!({"a": "{{ who }}"}), "db1", true);
        let without = delegated("without", "set_fact", json!({"b": 2}), "db1", false);
        let delegates = inventory();
        let batch = Arc::new(Batch::with_delegates(delegates.clone()));
        let payload = sealed(vec![with.clone(), without.clone()]);
        let mut ch = HostChannel::new("web1", Arc::new(payload), batch);
        let mut rx = ch.open();
        let mut r = HostResult::new("web1", Default::default());
        for (id, t) in [(1, &with), (2, &without)] {
            let req = request(id, t, "db1", json!({"who": "web1-var"}));
            ch.intercept(
                crate::ssh::Line {
                    text: &req,
                    cut: None,
                },
                &mut r,
            );
            let answer = next(&mut rx).await;
            assert_eq!(answer.error, None);
            // The delegating runner gets the facts either way: it decides where they go.
            assert!(answer.result.unwrap()["ansible_facts"].is_object());
        }
        let kept = delegates.facts_of("db1").expect("facts for db1");
        assert_eq!(kept.get("a"), Some(&json!("web1-var")));
        assert_eq!(kept.get("b"), None, "not delegated with delegate_facts");
        assert!(delegates.facts_of("web1").is_none());
        // To the controller: kept as localhost's.
        let local = delegated("local", "set_fact", json!({"c": 3}), "localhost", true);
        let batch = Arc::new(Batch::with_delegates(delegates.clone()));
        let mut ch = HostChannel::new("web1", Arc::new(sealed(vec![local.clone()])), batch);
        let mut rx = ch.open();
        let req = crate::channel::tests::request(1, RequestKind::Delegate, &local, None);
        ch.intercept(
            crate::ssh::Line {
                text: &req,
                cut: None,
            },
            &mut r,
        );
        assert_eq!(next(&mut rx).await.error, None);
        assert_eq!(delegates.facts_of("localhost").unwrap()["c"], 3);
    }

    /// A host that is down: a module that needs no host runs without connecting (its
    /// facts still go to that host); any other is unreachable, naming the host.
    #[tokio::test]
    async fn only_a_module_that_runs_there_needs_the_host_delegated_to_to_be_up() {
        let fact = delegated("fact", "set_fact", json!({"up": false}), "down", true);
        let probe = delegated(
            "probe",
            "command",
            json!({"_raw_params": "true"}),
            "down",
            false,
        );
        let delegates = Arc::new(Delegates::new(
            [host(
                "down",
                json!({"ansible_host": "127.0.0.1", "ansible_port": 1, "ansible_user": "nobody"}),
            )],
            options(),
        ));
        let batch = Arc::new(Batch::with_delegates(delegates.clone()));
        let payload = sealed(vec![fact.clone(), probe.clone()]);
        let mut ch = HostChannel::new("web1", Arc::new(payload), batch);
        let mut rx = ch.open();
        let mut r = HostResult::new("web1", Default::default());
        ch.intercept(
            crate::ssh::Line {
                text: &request(1, &fact, "down", json!({})),
                cut: None,
            },
            &mut r,
        );
        let answer = next(&mut rx).await.result.unwrap();
        assert_eq!(answer["failed"], false, "{answer}");
        assert_eq!(delegates.facts_of("down").unwrap()["up"], false);
        ch.intercept(
            crate::ssh::Line {
                text: &request(2, &probe, "down", json!({})),
                cut: None,
            },
            &mut r,
        );
        let answer = next(&mut rx).await.result.unwrap();
        assert_eq!(answer["unreachable"], true, "{answer}");
        let msg = answer["msg"].as_str().unwrap();
        assert!(
            msg.contains("cannot connect to the host delegated to, 'down'"),
            "{msg}"
        );
    }

    /// `become` on the host delegated to: the user the delegating task's keywords ask
    /// for, unless that host's own `ansible_become_user` says another (its connection
    /// variables win, as in Ansible). Needs root and sudo, as the lab tests do.
    #[tokio::test]
    async fn become_on_the_host_delegated_to_follows_its_own_become_variables() {
        let who = delegated(
            "who",
            "command",
            json!({"_raw_params": "id -un"}),
            "{{ t }}",
            false,
        );
        let delegates = Arc::new(Delegates::new(
            [
                host("plain", json!({"ansible_connection": "local"})),
                host(
                    "own",
                    json!({"ansible_connection": "local", "ansible_become_user": "daemon"}),
                ),
            ],
            options(),
        ));
        let batch = Arc::new(Batch::with_delegates(delegates));
        let mut ch = HostChannel::new("web1", Arc::new(sealed(vec![who.clone()])), batch);
        let mut rx = ch.open();
        let mut r = HostResult::new("web1", Default::default());
        // The delegating host's own ansible_become_user does not reach the other host.
        let vars = json!({"ansible_become_user": "root"});
        for (id, to, expected) in [(1, "plain", "nobody"), (2, "own", "daemon")] {
            let line = request(id, &who, to, vars.clone());
            let open = line.strip_suffix('}').unwrap();
            let line = format!("{open},\"become_user\":\"nobody\"}}");
            ch.intercept(
                crate::ssh::Line {
                    text: &line,
                    cut: None,
                },
                &mut r,
            );
            let answer = next(&mut rx).await;
            assert_eq!(answer.error, None, "{to}");
            let result = answer.result.unwrap();
            assert_eq!(result["stdout"], expected, "{to}: {result}");
        }
    }
}
