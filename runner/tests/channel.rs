//! The runner's side of the controller channel: which tasks ask the deployer, what they
//! send, and how the answers are taken (registered, facts set, failures), with a sink
//! that plays the deployer.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use rustle_runner::events::{Answer, Collect, Event, Request, RequestKind, Sink};
use rustle_runner::exec::{Executor, RunOptions, RunSummary};
use rustle_runner::plan::HostPlan;
use serde_json::{Value, json};

fn host_plan(tasks: Value) -> HostPlan {
    serde_json::from_value(json!({
        "deployment_id": "test",
        "host": "web1",
        "created_at": 0,
        "packer_version": "0",
        "check_mode": false,
        "diff_mode": false,
        "host_vars": {"inventory_hostname": "web1", "greeting": "hi"},
        "plays": [{"name": "p", "hosts": ["all"], "tasks": tasks}],
        "files": {},
    }))
    .unwrap()
}

/// A deployer stand-in: answers each request with `answer`, keeps the requests.
struct Deployer<'p, F: FnMut(&HostPlan, &Request) -> Answer> {
    plan: &'p HostPlan,
    events: Collect,
    requests: Vec<Request>,
    answer: F,
}

impl<F: FnMut(&HostPlan, &Request) -> Answer> Sink for Deployer<'_, F> {
    fn emit(&mut self, event: &Event) {
        self.events.emit(event);
    }

    fn request(&mut self, mut request: Request) -> Result<Answer, String> {
        // The channel numbers requests, from 1.
        request.id = self.requests.len() as u64 + 1;
        let answer = (self.answer)(self.plan, &request);
        self.requests.push(request);
        Ok(answer)
    }
}

/// Runs the deployer's own code for a delegated task, as `channel.rs` does.
fn run_delegated(plan: &HostPlan, r: &Request) -> Answer {
    assert_eq!(r.kind, RequestKind::Delegate);
    let task = plan
        .channel_tasks()
        .into_iter()
        .find(|t| t.channel_id() == r.task)
        .expect("the request names a task of the plan");
    Answer {
        v: 1,
        id: r.id,
        result: Some(Value::Object(rustle_runner::exec::run_delegated(
            plan, task, r,
        ))),
        ..Answer::default()
    }
}

fn statuses(events: &[Event]) -> Vec<(String, String)> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Task { name, status, .. } => Some((name.clone(), status.as_str().into())),
            _ => None,
        })
        .collect()
}

fn result_of<'e>(events: &'e [Event], name: &str) -> &'e Value {
    events
        .iter()
        .find_map(|e| match e {
            Event::Task {
                name: n, result, ..
            } if n == name => Some(result),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no task {name}"))
}

fn run_with<F: FnMut(&HostPlan, &Request) -> Answer>(
    plan: &HostPlan,
    answer: F,
) -> (Vec<Event>, Vec<Request>, RunSummary) {
    let mut sink = Deployer {
        plan,
        events: Collect::default(),
        requests: Vec::new(),
        answer,
    };
    let summary = Executor::new(plan, &mut sink, RunOptions::default()).run();
    (sink.events.0, sink.requests, summary)
}

#[test]
fn without_a_channel_a_delegated_or_run_once_task_fails_naming_the_feature() {
    for (task, feature) in [
        (
            json!({"name": "on the controller", "module": "command", "args": {"_raw_params": "true"}, "delegate_to": "localhost"}),
            "delegated task",
        ),
        (
            json!({"name": "on the controller", "module": "command", "args": {"_raw_params": "true"}, "run_once": true}),
            "run_once task",
        ),
    ] {
        let plan = host_plan(json!([task]));
        let mut sink = Collect::default();
        let summary = Executor::new(&plan, &mut sink, RunOptions::default()).run();
        assert!(summary.host_failed);
        let msg = result_of(&sink.0, "on the controller")["msg"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(msg.contains("controller channel"), "{msg}");
        assert!(msg.contains(feature), "{msg}");
    }
}

#[test]
fn a_delegated_task_runs_through_the_deployer_and_its_result_is_registered_here() {
    let plan = host_plan(json!([
        {"name": "delegated", "module": "command", "args": {"_raw_params": "echo {{ greeting }} from {{ inventory_hostname }} {{ item }}"},
         "delegate_to": "localhost", "register": "d", "loop": ["a"]},
        {"name": "facts", "module": "set_fact", "args": {"from_controller": "{{ d.results[0].stdout }}"}, "delegate_to": "127.0.0.1"},
        {"name": "facts elsewhere", "module": "set_fact", "args": {"not_mine": 1}, "delegate_to": "localhost", "delegate_facts": true},
        {"name": "check", "module": "assert", "args": {"that": ["from_controller == 'hi from web1 a'", "not_mine is not defined"]}},
        {"name": "itself", "module": "command", "args": {"_raw_params": "true"}, "delegate_to": "{{ inventory_hostname }}"}
    ]));
    let (events, requests, summary) = run_with(&plan, run_delegated);
    assert!(!summary.host_failed, "{:#?}", statuses(&events));
    assert_eq!(
        statuses(&events),
        [
            ("delegated".into(), "changed".into()),
            ("facts".into(), "ok".into()),
            ("facts elsewhere".into(), "ok".into()),
            ("check".into(), "ok".into()),
            ("itself".into(), "changed".into()),
        ]
    );
    // One request per loop item and per delegated task; a task delegated to its own
    // host runs here.
    let kinds: Vec<(u64, RequestKind)> = requests.iter().map(|r| (r.id, r.kind)).collect();
    assert_eq!(
        kinds,
        [
            (1, RequestKind::Delegate),
            (2, RequestKind::Delegate),
            (3, RequestKind::Delegate)
        ]
    );
    // The loop item travels as data, marked never to be templated, as it is here.
    assert_eq!(
        requests[0].vars.as_ref().unwrap()["item"],
        json!({"__ansible_unsafe": "a"})
    );
}

/// A task delegated to another inventory host asks the deployer, naming that host and
/// the user the task's `become` keywords ask for there; this host's own
/// `ansible_become_user` (a connection variable, the delegated-to host's applies) is not
/// what is sent. The answer is registered here.
#[test]
fn delegating_to_another_inventory_host_asks_the_deployer_naming_it() {
    let plan = host_plan(json!([
        {"name": "elsewhere", "module": "command", "args": {"_raw_params": "true"}, "delegate_to": "{{ 'db1' }}", "register": "r"},
        {"name": "as admin", "module": "command", "args": {"_raw_params": "true"}, "delegate_to": "db1",
         "become": true, "become_user": "{{ 'admin' }}", "vars": {"ansible_become_user": "mine"}},
        {"name": "show", "module": "debug", "args": {"msg": "{{ r.stdout }}"}}
    ]));
    let (events, requests, summary) = run_with(&plan, |_, r| Answer {
        v: 1,
        id: r.id,
        result: Some(json!({"changed": false, "failed": false,
            "stdout": format!("ran on {}", r.delegate_to.as_deref().unwrap_or("the controller"))})),
        ..Answer::default()
    });
    assert!(!summary.host_failed);
    let asked: Vec<(Option<&str>, Option<&str>)> = requests
        .iter()
        .map(|r| (r.delegate_to.as_deref(), r.become_user.as_deref()))
        .collect();
    assert_eq!(asked, [(Some("db1"), None), (Some("db1"), Some("admin"))]);
    assert_eq!(result_of(&events, "show")["msg"], "ran on db1");
}

/// `delegate_to` that renders to `omit` delegates nothing (the task runs here, asking
/// nobody); one that renders to nothing fails the task, as in Ansible.
#[test]
fn delegate_to_omitted_runs_here_and_empty_fails() {
    let plan = host_plan(json!([
        {"name": "omitted", "module": "command", "args": {"_raw_params": "echo here"},
         "delegate_to": "{{ nobody | default(omit) }}", "register": "o"},
        {"name": "empty", "module": "command", "args": {"_raw_params": "true"},
         "delegate_to": "{{ '' }}", "ignore_errors": true}
    ]));
    let (events, requests, summary) = run_with(&plan, |_, _| panic!("nothing to ask"));
    assert!(!summary.host_failed);
    assert!(requests.is_empty());
    assert_eq!(result_of(&events, "omitted")["stdout"], "here");
    let msg = result_of(&events, "empty")["msg"].as_str().unwrap();
    assert!(msg.contains("empty host name"), "{msg}");
}

fn once_plan() -> HostPlan {
    host_plan(json!([
        {"name": "once", "module": "command", "args": {"_raw_params": "echo ran on {{ inventory_hostname }}"}, "run_once": true, "register": "o"},
        {"name": "once fact", "module": "set_fact", "args": {"shared": "x"}, "run_once": true},
        {"name": "show", "module": "debug", "args": {"msg": "{{ o.stdout }} {{ shared }}"}}
    ]))
}

#[test]
fn a_run_once_task_another_host_ran_is_registered_here_and_not_counted() {
    let plan = once_plan();
    let (events, requests, summary) = run_with(&plan, |_, r| Answer {
        v: 1,
        id: r.id,
        result: Some(if r.id == 1 {
            json!({"changed": true, "failed": false, "stdout": "ran on web0"})
        } else {
            json!({"changed": false, "failed": false, "ansible_facts": {"shared": "from web0"}})
        }),
        host: Some("web0".into()),
        ..Answer::default()
    });
    assert!(!summary.host_failed);
    assert_eq!(statuses(&events), [("show".into(), "ok".into())]);
    assert_eq!(result_of(&events, "show")["msg"], "ran on web0 from web0");
    assert_eq!(summary.recap.ok, 1);
    assert_eq!(summary.recap.changed, 0);
    assert!(requests.iter().all(|r| r.kind == RequestKind::RunOnce));
}

#[test]
fn the_host_whose_turn_it_is_runs_a_run_once_task_and_hands_over_its_result() {
    let plan = once_plan();
    let (events, requests, summary) = run_with(&plan, |_, r| Answer {
        v: 1,
        id: r.id,
        run: r.kind == RequestKind::RunOnce,
        ..Answer::default()
    });
    assert!(!summary.host_failed, "{:#?}", statuses(&events));
    assert_eq!(result_of(&events, "show")["msg"], "ran on web1 x");
    let kinds: Vec<RequestKind> = requests.iter().map(|r| r.kind).collect();
    assert_eq!(
        kinds,
        [
            RequestKind::RunOnce,
            RequestKind::RunOnceDone,
            RequestKind::RunOnce,
            RequestKind::RunOnceDone
        ]
    );
    assert_eq!(
        requests[1].result.as_ref().unwrap()["stdout"],
        "ran on web1"
    );
}

#[test]
fn a_failed_run_once_result_stops_this_host_too_and_a_refusal_fails_the_task() {
    let plan = once_plan();
    let (events, _, summary) = run_with(&plan, |_, r| Answer {
        v: 1,
        id: r.id,
        result: Some(json!({"changed": false, "failed": true, "msg": "boom"})),
        ..Answer::default()
    });
    assert!(summary.host_failed);
    assert!(statuses(&events).is_empty());
    let (events, _, summary) = run_with(&plan, |_, r| Answer {
        v: 1,
        id: r.id,
        error: Some("run_once task 'once' has no result: web0 ran it and ended".into()),
        ..Answer::default()
    });
    assert!(summary.host_failed);
    let msg = result_of(&events, "once")["msg"].as_str().unwrap();
    assert!(msg.contains("web0 ran it and ended"), "{msg}");
}

#[test]
fn group_by_and_add_host_change_groups_for_the_rest_of_the_run() {
    let mut plan = host_plan(json!([
        {"name": "by", "module": "group_by", "args": {"key": "os {{ 'x' }}", "parents": "linux"}},
        {"name": "again", "module": "group_by", "args": {"key": "os x", "parents": "linux"}},
        {"name": "quiet", "module": "group_by", "args": {"key": "other"}, "changed_when": false, "register": "g"},
        {"name": "add", "module": "add_host", "args": {"name": "new1", "groups": "web,db", "color": "blue"}, "register": "a"},
        {"name": "see", "module": "assert", "args": {"that": [
            "groups['os-x'] == ['web1']",
            "'web1' in groups['linux']",
            "group_names == ['linux', 'os-x', 'other']",
            "g.add_group == 'other' and g.parent_groups == ['all']",
            "groups['web'] == ['new1'] and 'new1' in groups['all']",
            "a.add_host.host_vars.color == 'blue'"
        ]}},
        {"name": "missing", "module": "group_by", "args": {}, "ignore_errors": true}
    ]));
    plan.plays[0].tasks[3].run_once = None;
    let mut sink = Collect::default();
    let summary = Executor::new(&plan, &mut sink, RunOptions::default()).run();
    assert_eq!(
        statuses(&sink.0),
        [
            ("by".into(), "changed".into()),
            ("again".into(), "ok".into()),
            ("quiet".into(), "ok".into()),
            ("add".into(), "changed".into()),
            ("see".into(), "ok".into()),
            ("missing".into(), "failed".into()),
        ],
        "{:#?}",
        sink.0
    );
    assert!(!summary.host_failed);
    let msg = result_of(&sink.0, "missing")["msg"].as_str().unwrap();
    assert!(msg.contains("the 'key' param is required"), "{msg}");
}

/// ansible-core's add_host target: a host `add_host` added has `hostvars` (what it was
/// given, its `group_names`), its arguments may be one template that renders to a
/// mapping, `name: host:port` gives the port, and giving the same again changes nothing.
#[test]
fn hosts_add_host_added_have_hostvars() {
    let plan = host_plan(json!([
        {"name": "data", "module": "set_fact", "args": {"data": {"hostname": "dyn2", "ansible_host": "127.0.0.3"}}},
        {"name": "from dict", "module": "add_host", "args": {"_raw_params": "{{ data }}"}},
        {"name": "add", "module": "add_host", "args": {"name": "dyn1", "groups": "newgroup", "a_var": "from add_host"}},
        {"name": "again", "module": "add_host", "args": {"name": "dyn1", "a_var": "from add_host"}},
        {"name": "more", "module": "add_host", "args": {"name": "dyn1", "b_var": 2}},
        {"name": "port", "module": "add_host", "args": {"name": "127.0.1.1:2222"}, "register": "p"},
        {"name": "see", "module": "assert", "args": {"that": [
            "hostvars['dyn2'].ansible_host == '127.0.0.3'",
            "hostvars['dyn2'].group_names == ['ungrouped']",
            "hostvars['dyn1'].group_names == ['newgroup']",
            "hostvars['dyn1'].a_var == 'from add_host' and hostvars['dyn1'].b_var == 2",
            "hostvars['dyn1'].bogusvar is not defined",
            "hostvars['bogushost'] is not defined",
            "p.add_host.host_name == '127.0.1.1'",
            "p.add_host.host_vars.ansible_ssh_port == 2222",
            "'127.0.1.1' in groups['all']"
        ]}}
    ]));
    let mut sink = Collect::default();
    let summary = Executor::new(&plan, &mut sink, RunOptions::default()).run();
    assert_eq!(
        statuses(&sink.0),
        [
            ("data".into(), "ok".into()),
            ("from dict".into(), "changed".into()),
            ("add".into(), "changed".into()),
            ("again".into(), "ok".into()),
            ("more".into(), "changed".into()),
            ("port".into(), "changed".into()),
            ("see".into(), "ok".into()),
        ],
        "{:#?}",
        sink.0
    );
    assert!(!summary.host_failed);
}

#[test]
fn an_add_host_another_host_ran_adds_the_host_here_too() {
    let plan = host_plan(json!([
        {"name": "add", "module": "add_host", "args": {"name": "new1"}, "run_once": true},
        {"name": "see", "module": "assert", "args": {"that": ["'new1' in groups['all']", "'new1' in groups['ungrouped']"]}}
    ]));
    let (events, _, summary) = run_with(&plan, |_, r| Answer {
        v: 1,
        id: r.id,
        result: Some(json!({"changed": true, "failed": false,
            "add_host": {"host_name": "new1", "groups": [], "host_vars": {}}})),
        ..Answer::default()
    });
    assert!(!summary.host_failed, "{:#?}", events);
    assert_eq!(statuses(&events), [("see".into(), "ok".into())]);
}

/// Only a plan with delegated or run_once tasks (anywhere: blocks, handlers, files it
/// may include) gets a channel; the others make no round trip.
#[test]
fn which_plans_need_the_channel() {
    let plain = host_plan(json!([
        {"name": "a", "module": "command", "args": {"_raw_params": "true"}},
        {"block": [{"name": "b", "module": "debug", "args": {}}]}
    ]));
    assert!(plain.channel_tasks().is_empty());
    let nested = host_plan(json!([
        {"block": [{"name": "b", "module": "debug", "args": {}}],
         "rescue": [{"name": "r", "module": "debug", "args": {}, "run_once": true}]}
    ]));
    assert_eq!(nested.channel_tasks().len(), 1);
    let mut in_handler = host_plan(json!([]));
    in_handler.plays[0].handlers = vec![
        serde_json::from_value(
            json!({"name": "h", "module": "debug", "args": {}, "delegate_to": "localhost"}),
        )
        .unwrap(),
    ];
    assert_eq!(in_handler.channel_tasks().len(), 1);
    let mut included = host_plan(json!([]));
    std::sync::Arc::make_mut(&mut included.shared)
        .library
        .tasks
        .insert(
            "/p/tasks/x.yml".into(),
            rustle_runner::plan::Parsed::Ok(vec![
                serde_json::from_value(
                    json!({"name": "i", "module": "debug", "args": {}, "run_once": true}),
                )
                .unwrap(),
            ]),
        );
    assert_eq!(included.channel_tasks().len(), 1);
    // A task's identity is its plan form: the same task, the same id; any change, another.
    let t = &included.channel_tasks()[0].clone();
    let mut other = t.clone();
    other.args.insert("msg".into(), json!("x"));
    assert_eq!(t.channel_id(), t.clone().channel_id());
    assert_ne!(t.channel_id(), other.channel_id());
    assert_eq!(t.channel_id().len(), 32);
}

/// A plan of a deploy whose hosts read each other's `hostvars` (the packer numbers its
/// plays), where another host `db1` has inventory variables.
fn sharing_plan(tasks: Value) -> HostPlan {
    let mut plan = host_plan(tasks);
    plan.plays[0].number = Some(3);
    let shared = std::sync::Arc::make_mut(&mut plan.shared);
    for (host, vars) in [
        ("db1", json!({"dbvar": "from the inventory"})),
        ("web1", json!({})),
    ] {
        shared
            .hostvars
            .insert(host.into(), vars.as_object().cloned().unwrap());
    }
    plan
}

#[test]
fn without_a_channel_another_hosts_inventory_variables_are_there_and_nothing_else() {
    let plan = sharing_plan(json!([
        {"name": "inventory", "module": "debug", "args": {"msg": "{{ hostvars.db1.dbvar }}"}},
        {"name": "facts", "module": "debug", "args": {"msg": "{{ hostvars.db1.ansible_default_ipv4.address }}"}}
    ]));
    let mut sink = Collect::default();
    let summary = Executor::new(&plan, &mut sink, RunOptions::default()).run();
    assert!(summary.host_failed);
    assert_eq!(result_of(&sink.0, "inventory")["msg"], "from the inventory");
    let msg = result_of(&sink.0, "facts")["msg"].as_str().unwrap();
    assert!(msg.contains("controller channel"), "{msg}");
    assert!(msg.contains("hostvars"), "{msg}");
    // Nobody listens: nothing is reported for the other hosts.
    assert!(!sink.0.iter().any(|e| matches!(e, Event::Vars { .. })));
}

/// A deployer stand-in for templates: answers `hostvars` requests with `vars`.
#[derive(Debug)]
struct Peers {
    asked: std::sync::Mutex<Vec<Request>>,
    vars: Value,
}

impl rustle_runner::events::Channel for Peers {
    fn request(&self, request: Request) -> Result<Answer, String> {
        assert_eq!(request.kind, RequestKind::Hostvars);
        self.asked.lock().unwrap().push(request);
        Ok(Answer {
            v: 1,
            vars: Some(self.vars.clone()),
            ..Answer::default()
        })
    }
}

struct WithPeers {
    events: Collect,
    peers: std::sync::Arc<Peers>,
}

impl Sink for WithPeers {
    fn emit(&mut self, event: &Event) {
        self.events.emit(event);
    }

    fn channel(&self) -> Option<std::sync::Arc<dyn rustle_runner::events::Channel>> {
        Some(self.peers.clone())
    }
}

#[test]
fn another_hosts_hostvars_are_asked_when_a_template_touches_it_and_this_host_reports_what_it_learns()
 {
    let plan = sharing_plan(json!([
        {"name": "plain", "module": "set_fact", "args": {"mine": 1}},
        {"name": "reg", "module": "command", "args": {"_raw_params": "echo out"}, "register": "r"},
        {"name": "read", "module": "debug", "args": {"msg": "{{ hostvars['db1'].ansible_default_ipv4.address }} {{ hostvars['db1'].dbvar }} {{ hostvars.db1.x }}"}}
    ]));
    let peers = std::sync::Arc::new(Peers {
        asked: std::sync::Mutex::new(Vec::new()),
        vars: json!({"ansible_default_ipv4": {"address": "10.0.0.9"}, "x": 7}),
    });
    let mut sink = WithPeers {
        events: Collect::default(),
        peers: peers.clone(),
    };
    let summary = Executor::new(&plan, &mut sink, RunOptions::default()).run();
    assert!(!summary.host_failed, "{:?}", sink.events.0);
    assert_eq!(
        result_of(&sink.events.0, "read")["msg"],
        "10.0.0.9 from the inventory 7"
    );
    // Asked once, at the third task of the play's tasks (part 1), about db1 only.
    let asked = peers.asked.lock().unwrap();
    assert_eq!(asked.len(), 1, "{asked:?}");
    assert_eq!(asked[0].host.as_deref(), Some("db1"));
    assert_eq!((asked[0].play, asked[0].at.clone()), (0, Some(vec![1, 2])));
    // What this host had learned as it started each task, and at the play's end.
    let reports: Vec<(Vec<u32>, Vec<String>)> = sink
        .events
        .0
        .iter()
        .filter_map(|e| match e {
            Event::Vars { at, set, .. } => Some((at.clone(), set.keys().cloned().collect())),
            _ => None,
        })
        .collect();
    assert_eq!(
        reports,
        [
            (vec![], vec!["ansible_facts".to_string()]),
            (vec![1, 0], vec![]),
            (vec![1, 1], vec!["mine".to_string()]),
            (vec![1, 2], vec!["r".to_string()]),
            (vec![3], vec![]),
        ]
    );
}

#[test]
fn fact_gathering_counts_as_a_task_of_every_play_that_asks_for_it() {
    // The second play gathers nothing new (the host has its facts), yet its first task
    // is the second of that play, as for a host that gathers there for the first time.
    let mut plan = sharing_plan(json!([{"name": "a", "module": "set_fact", "args": {"x": 1}}]));
    plan.plays[0].gather_facts = true;
    let mut second = plan.plays[0].clone();
    second.number = Some(4);
    plan.plays.push(second);
    let peers = std::sync::Arc::new(Peers {
        asked: std::sync::Mutex::new(Vec::new()),
        vars: json!({}),
    });
    let mut sink = WithPeers {
        events: Collect::default(),
        peers,
    };
    let summary = Executor::new(&plan, &mut sink, RunOptions::default()).run();
    assert!(!summary.host_failed);
    let positions: Vec<(usize, Vec<u32>)> = sink
        .events
        .0
        .iter()
        .filter_map(|e| match e {
            Event::Vars { play, at, .. } => Some((*play, at.clone())),
            _ => None,
        })
        .collect();
    let play = |p: usize| [(p, vec![]), (p, vec![0]), (p, vec![1, 0]), (p, vec![3])];
    assert_eq!(positions, [play(0), play(1)].concat());
}

/// Where a host stands follows the play's layout, not the count of tasks it ran: a
/// block's sections are steps of the path, so one host's `always` stands beyond every
/// rescue task another runs (Ansible's lockstep runs the rescue of the hosts that
/// failed first).
#[test]
fn a_hosts_position_follows_blocks_roles_and_includes_as_the_lockstep_does() {
    let plan = sharing_plan(json!([
        {"name": "b", "block": [
            {"name": "fails", "module": "fail", "args": {"msg": "no"}}
        ], "rescue": [
            {"name": "r1", "module": "set_fact", "args": {"was_in_rescue": true}},
            {"name": "r2", "module": "debug", "args": {"msg": "r2"}}
        ], "always": [
            {"name": "a1", "module": "debug", "args": {"msg": "a1"}}
        ]},
        {"name": "after", "module": "debug", "args": {"msg": "after"}}
    ]));
    let peers = std::sync::Arc::new(Peers {
        asked: std::sync::Mutex::new(Vec::new()),
        vars: json!({}),
    });
    let mut sink = WithPeers {
        events: Collect::default(),
        peers,
    };
    Executor::new(&plan, &mut sink, RunOptions::default()).run();
    let positions: Vec<Vec<u32>> = sink
        .events
        .0
        .iter()
        .filter_map(|e| match e {
            Event::Vars { at, .. } => Some(at.clone()),
            _ => None,
        })
        .collect();
    // Task 0 of the play's tasks is the block: its section 0 (block), 1 (rescue) and
    // 2 (always); then task 1.
    assert_eq!(
        positions,
        [
            vec![],
            vec![1, 0, 0, 0],
            vec![1, 0, 1, 0],
            vec![1, 0, 1, 1],
            vec![1, 0, 2, 0],
            vec![1, 1],
            vec![3],
        ]
    );
}

/// `run_once` given as a template is evaluated when the task runs, with its variables
/// (handlers target, test_handlers_template_run_once.yml): false runs the task here
/// without asking the deployer, true asks whose turn it is.
#[test]
fn a_templated_run_once_is_evaluated_where_the_task_runs() {
    let plan = |once: &str| {
        host_plan(json!([
            {"name": "maybe once", "module": "command",
             "args": {"_raw_params": "echo {{ inventory_hostname }}"},
             "run_once": format!("{{{{ {once} | default(False) }}}}"), "register": "o"}
        ]))
    };
    let (events, requests, summary) =
        run_with(&plan("undefined_flag"), |_, _| panic!("nothing to ask"));
    assert!(!summary.host_failed);
    assert!(requests.is_empty());
    assert_eq!(result_of(&events, "maybe once")["stdout"], "web1");
    let (_, requests, summary) = run_with(&plan("inventory_hostname == 'web1'"), |_, r| Answer {
        v: 1,
        id: r.id,
        run: r.kind == RequestKind::RunOnce,
        ..Answer::default()
    });
    assert!(!summary.host_failed);
    assert_eq!(requests[0].kind, RequestKind::RunOnce);
}

/// A runner without a deployer keeps what `fetch` copies in its release (the directory
/// `fetch_into` names), laid out as under `dest`; without one the task fails naming
/// the feature.
#[test]
fn without_a_channel_fetch_keeps_the_file_in_the_release_or_fails() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("motd");
    std::fs::write(&src, "hello\n").unwrap();
    let plan = host_plan(json!([
        {"name": "fetch", "module": "fetch", "register": "f",
         "args": {"src": src.display().to_string(), "dest": "/srv/fetched"}},
    ]));
    let kept = dir.path().join("release/fetched");
    let mut sink = Collect::default();
    Executor::new(&plan, &mut sink, RunOptions::default())
        .fetch_into(Some(kept.clone()))
        .run();
    assert_eq!(
        statuses(&sink.0),
        vec![("fetch".to_string(), "changed".to_string())]
    );
    let copy = kept
        .join("srv/fetched/web1")
        .join(src.strip_prefix("/").unwrap());
    assert_eq!(std::fs::read_to_string(&copy).unwrap(), "hello\n");

    let mut sink = Collect::default();
    Executor::new(&plan, &mut sink, RunOptions::default()).run();
    let failed = sink.0.iter().find_map(|e| match e {
        Event::Task { result, .. } => Some(result.clone()),
        _ => None,
    });
    let msg = failed.unwrap()["msg"].as_str().unwrap().to_string();
    assert!(
        msg.contains("needs the deployer") && msg.contains("fetch copies a file"),
        "{msg}"
    );
}
