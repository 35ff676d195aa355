//! The deployer's side of the controller channel: it answers the requests a runner
//! started with `--channel` writes on its event stream (`docs/events.md`), on that
//! runner's stdin, for the tasks only the controller can carry out: a delegated task's
//! module run here (`delegate_to: localhost`), and `run_once` (the first host of the
//! batch to reach the task runs it, the others get its result).
//!
//! It answers only what the host's signed plan holds: a request names a task by its
//! [`Task::channel_id`], and the task must be one of the plan's delegated or `run_once`
//! tasks, as the request's kind requires. Anything else (a malformed line, a task the
//! plan does not hold, a request out of turn) is refused: the runner gets an error and
//! the host is failed with it; the deployer goes on with the other hosts.

use crate::deploy::HostResult;
use crate::hostvars::{Peers, Position};
use crate::ssh::Line;
use rustle_runner::events::{
    Answer, EVENTS_VERSION, Event, MAX_CHANNEL_LINE, Request, RequestKind,
};
use rustle_runner::modules::fetch::{self, Destination};
use rustle_runner::plan::{HostPlan, Task};
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc::UnboundedSender;

/// Where a `run_once` task of the batch stands.
#[derive(Debug, Clone)]
enum Once {
    /// A host is running it.
    Running,
    /// A host ran it: its result.
    Done(String, Value),
    /// The host that was running it ended first: why the others cannot have a result.
    Lost(String),
}

/// What the hosts of one batch share: the `run_once` tasks reached so far, keyed by
/// task and by how many times a host has reached it (a task in a loop of includes is
/// reached again).
#[derive(Debug)]
pub struct Batch {
    once: Mutex<HashMap<(String, u32), Once>>,
    /// Where the hosts of the batch's `any_errors_fatal` plays stand.
    fleet: Mutex<Fleet>,
    /// How many hosts run each `throttle` task (by task id) right now.
    throttled: Mutex<HashMap<String, u64>>,
    /// What the hosts reported they learned, for the others' `hostvars`.
    peers: Mutex<Peers>,
    /// Bumped at every change, so a waiting host looks again.
    changed: tokio::sync::watch::Sender<u64>,
    /// The inventory's hosts tasks may be delegated to (none: only the controller).
    delegates: Option<Arc<crate::delegate::Delegates>>,
}

impl Default for Batch {
    fn default() -> Self {
        Batch {
            once: Mutex::new(HashMap::new()),
            fleet: Mutex::new(Fleet::default()),
            throttled: Mutex::new(HashMap::new()),
            peers: Mutex::new(Peers::default()),
            changed: tokio::sync::watch::Sender::new(0),
            delegates: None,
        }
    }
}

impl Batch {
    /// A batch whose hosts may delegate tasks to the inventory's hosts in `delegates`.
    pub fn with_delegates(delegates: Arc<crate::delegate::Delegates>) -> Batch {
        Batch::default().delegating_to(delegates)
    }

    /// This batch, its hosts allowed to delegate tasks to the hosts in `delegates`.
    pub fn delegating_to(mut self, delegates: Arc<crate::delegate::Delegates>) -> Batch {
        self.delegates = Some(delegates);
        self
    }
}

/// The hosts of a batch's `any_errors_fatal` plays, and the barriers they reached.
///
/// Each host counts the barriers it reaches in a play (one after each task); barrier
/// `k` of a play is passed once every host running that play has reached its `k`-th
/// barrier or left the play, and stops the others when one of them failed there. A host
/// joins when its runner starts (its connection is open), so a host that starts later
/// (`--forks`) or is unreachable never holds the others up: it finds the barriers the
/// others passed decided already.
#[derive(Debug, Default)]
struct Fleet {
    /// Hosts running, with the plays (by number) they have not left.
    live: HashMap<String, HashSet<usize>>,
    /// By play and barrier number: the hosts that reached it, and whether one failed.
    points: HashMap<(usize, u32), (HashSet<String>, bool)>,
    /// By play and host: the first barrier where the host had failed.
    failed: HashMap<(usize, String), u32>,
    /// By play: the hosts of the batch that run it (`Batch::of`), and those that joined.
    sizes: HashMap<usize, usize>,
    joined: HashMap<usize, HashSet<String>>,
    /// By play, from the hosts' plans: `any_errors_fatal`, `max_fail_percentage`.
    rules: HashMap<usize, (bool, Option<u32>)>,
}

impl Fleet {
    /// Whether barrier `k` of `play` is passed, and then whether the other hosts stop
    /// there: one failed there and the play has `any_errors_fatal`, or more than its
    /// `max_fail_percentage` of the batch's hosts of the play have failed by then
    /// (Ansible's `failed / batch_size > percentage`).
    fn decided(&self, play: usize, k: u32) -> Option<bool> {
        let (arrived, failed) = self.points.get(&(play, k))?;
        let passed = self
            .live
            .iter()
            .filter(|(_, plays)| plays.contains(&play))
            .all(|(host, _)| arrived.contains(host));
        if !passed {
            return None;
        }
        let (fatal, percentage) = self.rules.get(&play).copied().unwrap_or((true, None));
        let too_many = percentage.is_some_and(|p| {
            let failed = self
                .failed
                .iter()
                .filter(|((pl, _), at)| *pl == play && **at <= k)
                .count();
            let size = self
                .sizes
                .get(&play)
                .copied()
                .unwrap_or(0)
                .max(self.joined.get(&play).map_or(0, HashSet::len))
                .max(1);
            failed.saturating_mul(100) > (p as usize).saturating_mul(size)
        });
        Some((fatal && *failed) || too_many)
    }
}

impl Batch {
    fn peers(&self) -> std::sync::MutexGuard<'_, Peers> {
        self.peers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn fleet(&self) -> std::sync::MutexGuard<'_, Fleet> {
        self.fleet
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn throttled(&self) -> std::sync::MutexGuard<'_, HashMap<String, u64>> {
        self.throttled
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Takes a turn at `task` when fewer than `limit` hosts hold one.
    fn try_turn(&self, task: &str, limit: u64) -> bool {
        let mut running = self.throttled();
        let n = running.entry(task.to_string()).or_insert(0);
        if *n < limit {
            *n += 1;
            true
        } else {
            false
        }
    }

    /// Hands back a turn at `task`.
    fn end_turn(&self, task: &str) {
        if let Some(n) = self.throttled().get_mut(task) {
            *n = n.saturating_sub(1);
        }
        self.changed.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// The batch of `jobs`: how many of them run each play whose hosts wait for each
    /// other, for `max_fail_percentage`.
    pub fn of(jobs: &[Arc<crate::deploy::Job>]) -> Batch {
        let batch = Batch::default();
        {
            let mut fleet = batch.fleet();
            for play in jobs.iter().flat_map(|j| j.fleet.iter()) {
                *fleet.sizes.entry(*play).or_default() += 1;
            }
        }
        batch
    }

    /// `host` runs the `any_errors_fatal` plays numbered `plays`.
    fn join(&self, host: &str, plays: HashSet<usize>) {
        if plays.is_empty() {
            return;
        }
        {
            let mut fleet = self.fleet();
            for play in &plays {
                fleet
                    .joined
                    .entry(*play)
                    .or_default()
                    .insert(host.to_string());
            }
        }
        self.fleet().live.insert(host.to_string(), plays);
        self.changed.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// `host` has left `play` (or, for `None`, ended).
    fn leave(&self, host: &str, play: Option<usize>) {
        {
            let mut fleet = self.fleet();
            match play {
                Some(p) => {
                    if let Some(plays) = fleet.live.get_mut(host) {
                        plays.remove(&p);
                    }
                }
                None => {
                    fleet.live.remove(host);
                }
            }
        }
        self.changed.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// `host` reached barrier `k` of `play`, having failed the task there or not.
    fn arrive(&self, host: &str, play: usize, k: u32, failed: bool) {
        {
            let mut fleet = self.fleet();
            let point = fleet.points.entry((play, k)).or_default();
            point.0.insert(host.to_string());
            point.1 |= failed;
            if failed {
                fleet.failed.entry((play, host.to_string())).or_insert(k);
            }
        }
        self.changed.send_modify(|n| *n = n.wrapping_add(1));
    }

    fn set(&self, key: (String, u32), state: Once) {
        self.lock().insert(key, state);
        self.changed.send_modify(|n| *n = n.wrapping_add(1));
    }

    fn get(&self, key: &(String, u32)) -> Option<Once> {
        self.lock().get(key).cloned()
    }

    /// The states; nothing panics while holding them, so a poisoned lock still holds
    /// whole states.
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(String, u32), Once>> {
        self.once
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Refuses a `fetch` request whose `dest` or `flat` is not what the task's literal
/// arguments say: the host renders templated ones (as Ansible renders them with its
/// facts), but cannot move a file the plan puts in one place to another.
fn fetch_matches_plan(task: &Task, part: &fetch::Part) -> Result<(), String> {
    let literal = |k: &str| match task.args.get(k) {
        Some(Value::String(s)) if s.contains("{{") || s.contains("{%") => None,
        other => Some(other.cloned().unwrap_or(Value::Null)),
    };
    if let Some(Value::String(dest)) = literal("dest")
        && dest != part.dest
    {
        return Err(format!(
            "task '{}' fetches into '{dest}', not '{}'",
            task.display_name(),
            part.dest
        ));
    }
    if let Some(flat) = literal("flat") {
        let want = match &flat {
            Value::Bool(b) => *b,
            Value::String(s) => rustle_runner::modules::args::truthy_str(s) == Some(true),
            _ => false,
        };
        if want != part.flat {
            return Err(format!(
                "task '{}' has flat: {want}, not {}",
                task.display_name(),
                part.flat
            ));
        }
    }
    Ok(())
}

/// A file a host's `fetch` task is sending.
struct Fetching {
    /// The task, by channel id.
    task: String,
    dest: Destination,
    size: usize,
    data: Vec<u8>,
}

/// One host's channel: its plan (read from its sealed payload when first needed), the
/// requests seen, and where answers go.
pub struct HostChannel {
    host: String,
    payload: Arc<Vec<u8>>,
    plan: Option<Result<Arc<HostPlan>, String>>,
    /// The plan's tasks that may use the channel, by id.
    tasks: HashMap<String, Task>,
    batch: Arc<Batch>,
    /// How many times this host reached each `run_once` task.
    reached: HashMap<String, u32>,
    /// The `run_once` runs this host was told to carry out and has not reported.
    running: Vec<(String, u32)>,
    /// How many barriers this host reached in each `any_errors_fatal` play.
    barriers: HashMap<usize, u32>,
    /// The `throttle` turns given to this host and not handed back, by task id; shared
    /// with the tasks that wait for a turn, so a turn given after the host ended is
    /// handed back too.
    turns: Arc<Mutex<Vec<String>>>,
    last_id: u64,
    /// The file a `fetch` task is sending, as far as it came.
    fetching: Option<Fetching>,
    answers: UnboundedSender<Vec<u8>>,
    /// Why a request was refused (the host is failed with it).
    pub refused: Option<String>,
}

impl HostChannel {
    /// A channel for `host`, whose signed payload is `payload`; answers are sent to
    /// the runner's stdin (see [`HostChannel::open`]).
    pub fn new(host: &str, payload: Arc<Vec<u8>>, batch: Arc<Batch>) -> HostChannel {
        let (answers, _) = tokio::sync::mpsc::unbounded_channel();
        let mut channel = HostChannel {
            host: host.to_string(),
            payload,
            plan: None,
            tasks: HashMap::new(),
            batch,
            reached: HashMap::new(),
            running: Vec::new(),
            barriers: HashMap::new(),
            turns: Arc::new(Mutex::new(Vec::new())),
            last_id: 0,
            fetching: None,
            answers,
            refused: None,
        };
        // The other hosts of its any_errors_fatal plays wait for it from now on.
        if let Ok(plan) = channel.plan() {
            let plays = plan.plays.iter().filter_map(|p| p.fleet).collect();
            channel.batch.fleet().rules.extend(
                plan.plays
                    .iter()
                    .filter_map(|p| Some((p.fleet?, (p.any_errors_fatal, p.max_fail_percentage)))),
            );
            channel.batch.join(host, plays);
            // The other hosts reading its hostvars wait for it from now on.
            if plan.plays.iter().any(|p| p.number.is_some()) {
                channel.batch.peers().join(host);
            }
        }
        channel
    }

    /// A fresh stream of answers for one run of the host's runner: what the returned
    /// receiver gets follows the payload on the runner's stdin.
    pub fn open(&mut self) -> tokio::sync::mpsc::UnboundedReceiver<Vec<u8>> {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        self.answers = tx;
        rx
    }

    /// Fails a host whose runner made a request the deployer refused, whatever the
    /// runner then reported.
    pub fn settle(&self, result: &mut HostResult) {
        if self.refused.is_some() && result.status == crate::deploy::HostStatus::Ok {
            result.status = crate::deploy::HostStatus::Failed;
        }
    }

    /// Takes `line` if it is a request (answering it, or refusing it and failing the
    /// host); false for any other line, which is an event.
    pub fn intercept(&mut self, line: Line<'_>, result: &mut HostResult) -> bool {
        if is_vars(line.text) {
            let event = match line.cut {
                Some(len) => Err(format!(
                    "a report of its variables of {len} bytes, longer than the {} MiB a line may have",
                    MAX_CHANNEL_LINE >> 20
                )),
                None => serde_json::from_str::<Event>(line.text).map_err(|e| {
                    format!("a report of its variables this deployer cannot read: {e}")
                }),
            };
            match event {
                Ok(e) => self.take_event(&e, result),
                Err(why) => self.refuse_host(why, result),
            }
            return true;
        }
        if !is_request(line.text) {
            return false;
        }
        if let Err(why) = self.handle(line) {
            self.refuse_host(why, result);
        }
        true
    }

    /// Fails the host with why something its runner sent was refused.
    fn refuse_host(&mut self, why: String, result: &mut HostResult) {
        let why = format!("refused a request from the host's runner: {why}");
        result
            .error
            .get_or_insert_with(String::new)
            .push_str(&format!("{why}\n"));
        self.refused.get_or_insert(why);
    }

    /// Takes what the host reports it learned (a `vars` event), for the other hosts'
    /// `hostvars`; any other event is left alone. A report for a play that does not
    /// share hostvars, or one beyond the bounds, fails the host.
    pub fn take_event(&mut self, event: &Event, result: &mut HostResult) {
        let Event::Vars {
            play,
            at,
            set,
            unset,
            ..
        } = event
        else {
            return;
        };
        let number = self
            .plan()
            .ok()
            .and_then(|p| p.plays.get(*play).and_then(|p| p.number));
        let recorded = match number {
            None => Err(format!(
                "a report of its variables for play {play} of its plan, which shares none"
            )),
            Some(n) => {
                self.batch
                    .peers()
                    .record(&self.host, (n, at.clone()), set.clone(), unset.clone())
            }
        };
        self.batch.changed.send_modify(|n| *n = n.wrapping_add(1));
        if let Err(why) = recorded {
            self.refuse_host(why, result);
        }
    }

    /// A channel for the executor that runs this host's plan here (SSH mode): it
    /// answers `hostvars` requests from the batch as [`HostChannel`] answers a
    /// runner's, blocking the executor's thread meanwhile.
    pub fn peers_channel(
        &mut self,
        runtime: tokio::runtime::Handle,
    ) -> Option<Arc<dyn rustle_runner::events::Channel>> {
        let plan = self.plan().ok()?;
        Some(Arc::new(PeersChannel {
            plan,
            batch: self.batch.clone(),
            runtime,
        }))
    }

    fn plan(&mut self) -> Result<Arc<HostPlan>, String> {
        if self.plan.is_none() {
            let decoded = rustle_runner::payload::parse(&self.payload)
                .and_then(|(_, body)| rustle_runner::payload::decode_body(body))
                .map(Arc::new)
                .map_err(|e| format!("cannot read the host's plan: {e}"));
            if let Ok(p) = &decoded {
                self.tasks = p
                    .channel_tasks()
                    .into_iter()
                    .map(|t| (t.channel_id(), t.clone()))
                    .collect();
            }
            self.plan = Some(decoded);
        }
        self.plan.clone().unwrap_or_else(|| Err("no plan".into()))
    }

    /// Runs a task delegated to the inventory host `to` there (see [`crate::delegate`])
    /// and answers with its result; the facts it returns with `delegate_facts: true` are
    /// kept for `to`. A name that is no inventory host's fails the task (a plan's
    /// mistake, or a loop's item); an error refuses the request: `to` is not the host a
    /// literal `delegate_to` names, which only a forged request can ask.
    fn delegate_elsewhere(
        &self,
        plan: Arc<HostPlan>,
        task: Task,
        request: rustle_runner::events::Request,
        to: &str,
    ) -> Result<(), String> {
        let literal = task.delegate_to.as_deref().filter(|d| !d.contains("{{"));
        if literal.is_some_and(|d| d.trim() != to) {
            return Err(format!(
                "task '{}' is delegated to '{}', not to '{to}'",
                task.display_name(),
                literal.unwrap_or_default()
            ));
        }
        let id = request.id;
        let host = self
            .batch
            .delegates
            .as_ref()
            .and_then(|d| d.host(to).cloned());
        let (Some(delegates), Some(host)) = (self.batch.delegates.clone(), host) else {
            self.send(Answer {
                v: EVENTS_VERSION,
                id,
                error: Some(format!(
                    "delegate_to '{to}': no host of this deploy's inventory has that name or address"
                )),
                ..Answer::default()
            });
            return Ok(());
        };
        let answers = self.answers.clone();
        let (name, facts) = (host.name.clone(), task.delegate_facts);
        tokio::spawn(async move {
            let result = crate::delegate::run(delegates.clone(), plan, task, request, host).await;
            keep_delegated_facts(Some(&delegates), facts, &name, &result);
            let _ = answers.send(result_line(id, result));
        });
        Ok(())
    }

    /// Takes one `fetch` request of task `task` (in play `play`): the first names the
    /// file, and is answered with the task's result when the controller has that file
    /// already (or it is empty); the next ones bring its content in order, the last
    /// answered with the result of writing it (see [`Destination`]). `Err` refuses.
    fn fetch(
        &mut self,
        plan: &HostPlan,
        task: &str,
        play: usize,
        part: &fetch::Part,
    ) -> Result<Option<Value>, String> {
        let Some(text) = &part.data else {
            self.fetching = None;
            let base = plan
                .plays
                .get(play)
                .and_then(|p| p.magic.get("playbook_dir"))
                .and_then(Value::as_str)
                .unwrap_or_default();
            let dest = match Destination::new(part, &self.host, base) {
                Ok(d) => d,
                Err(msg) => return Ok(Some(Value::Object(fetch::failure(msg)))),
            };
            let size = dest.size()?;
            if let Some(same) = dest.unchanged() {
                return Ok(Some(Value::Object(same)));
            }
            if size == 0 {
                return Ok(Some(Value::Object(dest.store(&[]))));
            }
            self.fetching = Some(Fetching {
                task: task.to_string(),
                dest,
                size,
                data: Vec::new(),
            });
            return Ok(None);
        };
        let Some(f) = self.fetching.as_mut().filter(|f| f.task == task) else {
            return Err("a piece of a file no fetch request of that task named".into());
        };
        if part.offset != f.data.len() as u64 {
            return Err(format!(
                "a piece of the fetched file at {} when {} bytes came",
                part.offset,
                f.data.len()
            ));
        }
        let bytes = rustle_runner::hex::base64_decode(text)
            .map_err(|e| format!("a piece of the fetched file that is not base64: {e}"))?;
        if f.data.len() + bytes.len() > f.size {
            return Err(format!(
                "more of the fetched file than the {} bytes announced",
                f.size
            ));
        }
        f.data.extend_from_slice(&bytes);
        if f.data.len() < f.size {
            return Ok(None);
        }
        let done = self.fetching.take();
        Ok(done.map(|f| Value::Object(f.dest.store(&f.data))))
    }

    fn handle(&mut self, line: Line<'_>) -> Result<(), String> {
        if let Some(len) = line.cut {
            return Err(format!(
                "a request of {len} bytes, longer than the {} MiB a request may have",
                MAX_CHANNEL_LINE >> 20
            ));
        }
        let request = match serde_json::from_str::<rustle_runner::events::Event>(line.text) {
            Ok(rustle_runner::events::Event::Request(r)) => r,
            Ok(_) => return Err("not a request".into()),
            Err(e) => return Err(format!("not a request this deployer reads: {e}")),
        };
        let id = request.id;
        let refuse = |this: &Self, why: String| {
            this.send(Answer {
                v: EVENTS_VERSION,
                id,
                error: Some(format!("the deployer refused the request: {why}")),
                ..Answer::default()
            });
            Err(why)
        };
        if request.v != EVENTS_VERSION {
            return refuse(
                self,
                format!("request version {}, not {EVENTS_VERSION}", request.v),
            );
        }
        if request.id != self.last_id + 1 {
            return refuse(
                self,
                format!("request number {} after {}", request.id, self.last_id),
            );
        }
        self.last_id = request.id;
        let plan = match self.plan() {
            Ok(p) => p,
            Err(e) => return refuse(self, e),
        };
        if matches!(request.kind, RequestKind::Barrier | RequestKind::PlayDone) {
            let Some(number) = plan.plays.get(request.play).and_then(|p| p.fleet) else {
                return refuse(
                    self,
                    format!(
                        "play {} of the host's plan is not an any_errors_fatal play of several hosts",
                        request.play
                    ),
                );
            };
            if request.kind == RequestKind::PlayDone {
                self.batch.leave(&self.host, Some(number));
                self.send(Answer {
                    v: EVENTS_VERSION,
                    id,
                    ..Answer::default()
                });
                return Ok(());
            }
            let k = self.barriers.entry(number).or_insert(0);
            *k += 1;
            let k = *k;
            self.batch.arrive(&self.host, number, k, request.failed);
            let batch = self.batch.clone();
            let answers = self.answers.clone();
            let waiting = Waiting::new(&batch, &self.host);
            tokio::spawn(async move {
                let stop = wait_barrier(&batch, number, k).await;
                drop(waiting);
                let _ = answers.send(answer_line(&Answer {
                    v: EVENTS_VERSION,
                    id,
                    stop,
                    ..Answer::default()
                }));
            });
            return Ok(());
        }
        if request.kind == RequestKind::Hostvars {
            let (other, at) = match hostvars_question(&plan, &request) {
                Ok(q) => q,
                Err(why) => return refuse(self, why),
            };
            let batch = self.batch.clone();
            let answers = self.answers.clone();
            tokio::spawn(async move {
                let vars = wait_hostvars(&batch, &other, at).await;
                let _ = answers.send(answer_line(&Answer {
                    v: EVENTS_VERSION,
                    id,
                    vars: Some(Value::Object(vars)),
                    ..Answer::default()
                }));
            });
            return Ok(());
        }
        if request.kind == RequestKind::Lookup {
            return match self.lookup(request, plan) {
                Ok(()) => Ok(()),
                Err(why) => refuse(self, why),
            };
        }
        let Some(task) = self.tasks.get(&request.task).cloned() else {
            return refuse(
                self,
                format!(
                    "task {} is not a delegated or run_once task of the host's plan",
                    request.task
                ),
            );
        };
        match request.kind {
            RequestKind::Delegate => {
                if task.delegate_to.is_none() {
                    return refuse(
                        self,
                        format!("task '{}' is not delegated", task.display_name()),
                    );
                }
                if let Some(to) = request.delegate_to.clone() {
                    return match self.delegate_elsewhere(plan, task, request, &to) {
                        Ok(()) => Ok(()),
                        Err(why) => refuse(self, why),
                    };
                }
                let answers = self.answers.clone();
                let delegates = self.batch.delegates.clone();
                tokio::task::spawn_blocking(move || {
                    let result = rustle_runner::exec::run_delegated(&plan, &task, &request);
                    let facts = task.delegate_facts;
                    keep_delegated_facts(delegates.as_deref(), facts, "localhost", &result);
                    let _ = answers.send(result_line(id, result));
                });
                Ok(())
            }
            RequestKind::RunOnce => {
                if !task.may_run_once() {
                    return refuse(
                        self,
                        format!("task '{}' is not run_once", task.display_name()),
                    );
                }
                let n = self.reached.entry(request.task.clone()).or_insert(0);
                *n += 1;
                let key = (request.task.clone(), *n);
                let first = {
                    let mut once = self.batch.lock();
                    if once.contains_key(&key) {
                        false
                    } else {
                        once.insert(key.clone(), Once::Running);
                        true
                    }
                };
                if first {
                    self.running.push(key);
                    self.send(Answer {
                        v: EVENTS_VERSION,
                        id,
                        run: true,
                        ..Answer::default()
                    });
                    return Ok(());
                }
                let batch = self.batch.clone();
                let answers = self.answers.clone();
                let name = task.display_name();
                let waiting = Waiting::new(&batch, &self.host);
                tokio::spawn(async move {
                    let answer = wait_once(&batch, &key, id, &name).await;
                    drop(waiting);
                    let _ = answers.send(answer_line(&answer));
                });
                Ok(())
            }
            RequestKind::Fetch => {
                if task.module_name() != "fetch" {
                    return refuse(
                        self,
                        format!("task '{}' is not a fetch task", task.display_name()),
                    );
                }
                let Some(part) = request.fetch.as_deref() else {
                    return refuse(self, "a fetch request without its file".into());
                };
                if let Err(why) = fetch_matches_plan(&task, part) {
                    return refuse(self, why);
                }
                match self.fetch(&plan, &request.task, request.play, part) {
                    Ok(result) => {
                        self.send(Answer {
                            v: EVENTS_VERSION,
                            id,
                            result,
                            ..Answer::default()
                        });
                        Ok(())
                    }
                    Err(why) => refuse(self, why),
                }
            }
            // Answered above.
            RequestKind::Barrier
            | RequestKind::PlayDone
            | RequestKind::Hostvars
            | RequestKind::Lookup => Ok(()),
            RequestKind::Throttle => {
                if task.throttle.is_none() {
                    return refuse(
                        self,
                        format!("task '{}' has no throttle", task.display_name()),
                    );
                }
                let limit = request.limit.unwrap_or(1).max(1);
                let batch = self.batch.clone();
                let answers = self.answers.clone();
                let turns = self.turns.clone();
                let key = request.task.clone();
                let waiting = Waiting::new(&batch, &self.host);
                tokio::spawn(async move {
                    let mut changed = batch.changed.subscribe();
                    while !batch.try_turn(&key, limit) {
                        if changed.changed().await.is_err() {
                            return;
                        }
                    }
                    drop(waiting);
                    turns
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .push(key.clone());
                    // The host went away meanwhile: the turn goes back at once.
                    if Arc::strong_count(&turns) == 1 {
                        give_back(&batch, &turns, &key);
                        return;
                    }
                    let _ = answers.send(answer_line(&Answer {
                        v: EVENTS_VERSION,
                        id,
                        ..Answer::default()
                    }));
                });
                Ok(())
            }
            RequestKind::ThrottleDone => {
                let held = self
                    .turns
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .contains(&request.task);
                if !held {
                    return refuse(
                        self,
                        format!(
                            "the end of a throttle turn at '{}' that this host was not given",
                            task.display_name()
                        ),
                    );
                }
                give_back(&self.batch, &self.turns, &request.task);
                self.send(Answer {
                    v: EVENTS_VERSION,
                    id,
                    ..Answer::default()
                });
                Ok(())
            }
            RequestKind::RunOnceDone => {
                let Some(at) = self.running.iter().rposition(|k| k.0 == request.task) else {
                    return refuse(
                        self,
                        format!(
                            "a result for run_once task '{}', which this host was not running",
                            task.display_name()
                        ),
                    );
                };
                let key = self.running.remove(at);
                let result = match request.result {
                    Some(Value::Object(r)) => Value::Object(r),
                    _ => {
                        self.batch.set(
                            key,
                            Once::Lost(format!("{} sent no result for it", self.host)),
                        );
                        return refuse(self, "a run_once result that is not a mapping".into());
                    }
                };
                self.batch.set(key, Once::Done(self.host.clone(), result));
                self.send(Answer {
                    v: EVENTS_VERSION,
                    id,
                    ..Answer::default()
                });
                Ok(())
            }
        }
    }

    /// `lookup`: runs a controller lookup the runner met with arguments only the host
    /// knows, when the task the request names is one of the plan's and uses that
    /// lookup (`crate::lookups::task_uses`); the answer carries its result or failure.
    fn lookup(
        &mut self,
        request: rustle_runner::events::Request,
        plan: Arc<HostPlan>,
    ) -> Result<(), String> {
        let Some(call) = request.lookup else {
            return Err("a lookup request without its call".into());
        };
        if !rustle_runner::lookups::CONTROLLER_LOOKUPS.contains(&call.lookup.as_str()) {
            return Err(format!("'{}' is not a controller lookup", call.lookup));
        }
        let Some(task) = plan
            .all_tasks()
            .into_iter()
            .find(|t| t.channel_id() == request.task)
        else {
            return Err(format!(
                "task {} is not a task of the host's plan",
                request.task
            ));
        };
        if !crate::lookups::task_uses(&plan, task, &call.lookup) {
            return Err(format!(
                "task '{}' does not use the {} lookup",
                task.display_name(),
                call.lookup
            ));
        }
        // Ansible runs `pipe` and `lines` in the playbook's directory.
        let basedir = plan
            .plays
            .get(request.play)
            .and_then(|p| p.magic.get("playbook_dir"))
            .and_then(Value::as_str)
            .map_or_else(|| std::path::PathBuf::from("."), std::path::PathBuf::from);
        let answers = self.answers.clone();
        let id = request.id;
        tokio::task::spawn_blocking(move || {
            let answer = crate::lookups::answer_call(basedir, &call);
            let _ = answers.send(answer_line(&Answer {
                v: EVENTS_VERSION,
                id,
                lookup: Some(answer),
                ..Answer::default()
            }));
        });
        Ok(())
    }

    fn send(&self, answer: Answer) {
        let _ = self.answers.send(answer_line(&answer));
    }
}

impl Drop for HostChannel {
    /// The `run_once` tasks this host was running and never reported: the hosts
    /// waiting for them learn that it ended (whatever ended it, a timeout included).
    fn drop(&mut self) {
        self.batch.peers().end(&self.host);
        self.batch.leave(&self.host, None);
        let held: Vec<String> = std::mem::take(
            &mut *self
                .turns
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        for key in held {
            self.batch.end_turn(&key);
        }
        for key in std::mem::take(&mut self.running) {
            let why = format!("{} ran it and ended before it reported a result", self.host);
            self.batch.set(key, Once::Lost(why));
        }
    }
}

/// The other host and the point of the play a `hostvars` request asks about, if the
/// host's signed plan may ask it: a play that shares hostvars, a host of the deploy.
fn hostvars_question(plan: &HostPlan, request: &Request) -> Result<(String, Position), String> {
    let Some(number) = plan.plays.get(request.play).and_then(|p| p.number) else {
        return Err(format!(
            "play {} of the host's plan does not read other hosts' hostvars",
            request.play
        ));
    };
    let Some(other) = &request.host else {
        return Err("a hostvars request that names no host".into());
    };
    if !plan.shared.hostvars.contains_key(other) {
        return Err(format!(
            "hostvars of '{other}', which is not a host of this deploy's inventory"
        ));
    }
    Ok((
        other.clone(),
        (number, request.at.clone().unwrap_or_default()),
    ))
}

/// Marks a host as waiting on the deployer while it lives: the hosts reading its
/// hostvars meanwhile take it as it stands (it cannot get further until answered).
struct Waiting {
    batch: Arc<Batch>,
    host: String,
}

impl Waiting {
    fn new(batch: &Arc<Batch>, host: &str) -> Waiting {
        batch.peers().wait(host, true);
        batch.changed.send_modify(|n| *n = n.wrapping_add(1));
        Waiting {
            batch: batch.clone(),
            host: host.to_string(),
        }
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        self.batch.peers().wait(&self.host, false);
    }
}

/// Waits until `other` has got as far as `at` (or cannot get further), and gives
/// what it learned up to there.
///
/// The asker is not marked as waiting meanwhile: it still moves, since the host it
/// reads is behind it (a host that got as far is answered at once) and that one's own
/// reads point further behind, so such waits never close a circle. Marking it would
/// let a third host that reads the asker take it as it stands while it is still on
/// its way (the asker would seem stuck during a read answered a moment later).
async fn wait_hostvars(
    batch: &Arc<Batch>,
    other: &str,
    at: Position,
) -> serde_json::Map<String, Value> {
    let mut changed = batch.changed.subscribe();
    loop {
        let seen = batch.peers().view(other, &at);
        if let Some(mut vars) = seen {
            if let Some(facts) = batch.delegates.as_ref().and_then(|d| d.facts_of(other)) {
                add_delegated_facts(&mut vars, facts);
            }
            return vars;
        }
        if changed.changed().await.is_err() {
            return serde_json::Map::new();
        }
    }
}

/// Adds the facts other hosts' tasks delegated to this one (`delegate_facts: true`) to
/// what it reported itself, as Ansible keeps them among its host facts: each as a
/// variable, and in `ansible_facts` without the `ansible_` prefix. They are there from
/// the moment the delegating task ran, whatever point of the play the reader is at.
fn add_delegated_facts(
    vars: &mut serde_json::Map<String, Value>,
    facts: rustle_runner::plan::Vars,
) {
    let mut namespaced = match vars.shift_remove("ansible_facts") {
        Some(Value::Object(f)) => f,
        _ => serde_json::Map::new(),
    };
    for (name, value) in facts {
        let short = name.strip_prefix("ansible_").unwrap_or(&name).to_string();
        namespaced.insert(short, value.clone());
        vars.insert(name, value);
    }
    vars.insert("ansible_facts".into(), Value::Object(namespaced));
}

/// SSH mode's way to other hosts' `hostvars` (see [`HostChannel::peers_channel`]).
#[derive(Debug)]
struct PeersChannel {
    plan: Arc<HostPlan>,
    batch: Arc<Batch>,
    runtime: tokio::runtime::Handle,
}

impl rustle_runner::events::Channel for PeersChannel {
    fn request(&self, request: Request) -> Result<Answer, String> {
        if request.kind != RequestKind::Hostvars {
            return Err(format!(
                "{:?} requests go through the host's channel",
                request.kind
            ));
        }
        let (other, at) = hostvars_question(&self.plan, &request)?;
        let vars = self
            .runtime
            .block_on(wait_hostvars(&self.batch, &other, at));
        Ok(Answer {
            v: EVENTS_VERSION,
            id: request.id,
            vars: Some(Value::Object(vars)),
            ..Answer::default()
        })
    }
}

/// Hands back one turn at `key` that `turns` holds.
fn give_back(batch: &Batch, turns: &Mutex<Vec<String>>, key: &str) {
    let mut held = turns
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(at) = held.iter().position(|k| k == key) {
        held.remove(at);
        drop(held);
        batch.end_turn(key);
    }
}

/// Waits until barrier `k` of play `play` is passed; whether a host failed there.
async fn wait_barrier(batch: &Batch, play: usize, k: u32) -> bool {
    let mut changed = batch.changed.subscribe();
    loop {
        if let Some(failed) = batch.fleet().decided(play, k) {
            return failed;
        }
        if changed.changed().await.is_err() {
            return false;
        }
    }
}

/// Waits until another host has run a `run_once` task, or ended without a result.
async fn wait_once(batch: &Batch, key: &(String, u32), id: u64, name: &str) -> Answer {
    let mut changed = batch.changed.subscribe();
    loop {
        match batch.get(key) {
            Some(Once::Done(host, result)) => {
                return Answer {
                    v: EVENTS_VERSION,
                    id,
                    result: Some(result),
                    host: Some(host),
                    ..Answer::default()
                };
            }
            Some(Once::Lost(why)) => {
                return Answer {
                    v: EVENTS_VERSION,
                    id,
                    error: Some(format!("run_once task '{name}' has no result: {why}")),
                    ..Answer::default()
                };
            }
            Some(Once::Running) | None => {}
        }
        if changed.changed().await.is_err() {
            return Answer {
                v: EVENTS_VERSION,
                id,
                error: Some(format!("run_once task '{name}': the deploy ended")),
                ..Answer::default()
            };
        }
    }
}

/// An answer as the line the runner reads; one too long for it becomes an error.
fn answer_line(answer: &Answer) -> Vec<u8> {
    let mut line = serde_json::to_vec(answer).unwrap_or_default();
    if line.len() >= MAX_CHANNEL_LINE {
        line = serde_json::to_vec(&Answer {
            v: EVENTS_VERSION,
            id: answer.id,
            error: Some(format!(
                "the answer is {} bytes, more than the {} MiB the channel carries",
                line.len(),
                MAX_CHANNEL_LINE >> 20
            )),
            ..Answer::default()
        })
        .unwrap_or_default();
    }
    line.push(b'\n');
    line
}

/// Keeps the facts `result` holds for `host` when the task delegates its facts
/// (`delegate_facts: true`): they belong to the host delegated to (the controller's are
/// kept as `localhost`'s).
fn keep_delegated_facts(
    delegates: Option<&crate::delegate::Delegates>,
    delegate_facts: bool,
    host: &str,
    result: &rustle_runner::plan::Vars,
) {
    if let (true, Some(d), Some(Value::Object(f))) =
        (delegate_facts, delegates, result.get("ansible_facts"))
    {
        d.keep_facts(host, f);
    }
}

/// The answer line to request `id` carrying a module's `result`.
fn result_line(id: u64, result: rustle_runner::plan::Vars) -> Vec<u8> {
    answer_line(&Answer {
        v: EVENTS_VERSION,
        id,
        result: Some(Value::Object(result)),
        ..Answer::default()
    })
}

/// Whether a line of the event stream is a report of what the host learned (`vars`).
pub fn is_vars(text: &str) -> bool {
    text.starts_with("{\"type\":\"vars\"")
}

/// Whether a line of the event stream is a request (a cheap look before parsing: the
/// runner writes an event's type first).
pub fn is_request(text: &str) -> bool {
    text.starts_with("{\"type\":\"request\"")
}

#[cfg(test)]
pub(crate) mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use crate::ssh::Line;
    use rustle_runner::plan::{Play, Shared};
    use serde_json::json;

    fn task(name: &str, module: &str, args: Value) -> Task {
        Task {
            name: Some(name.into()),
            module: module.into(),
            args: args.as_object().cloned().unwrap_or_default(),
            ..Task::default()
        }
    }

    /// A host's sealed payload holding a plain task, a delegated one and a run_once one.
    fn payload() -> (Vec<u8>, Task, Task, Task) {
        let plain = task("plain", "command", json!({"_raw_params": "id -un"}));
        let mut delegated = task(
            "delegated",
            "command",
            json!({"_raw_params": "echo {{ who }}"}),
        );
        delegated.delegate_to = Some("localhost".into());
        let mut once = task("once", "debug", json!({"msg": "x"}));
        once.run_once = Some(true.into());
        let sealed = sealed(vec![plain.clone(), delegated.clone(), once.clone()]);
        (sealed, plain, delegated, once)
    }

    /// The sealed payload of host `web1` whose one play runs `tasks`.
    pub(crate) fn sealed(tasks: Vec<Task>) -> Vec<u8> {
        let plan = HostPlan {
            deployment_id: "d1".into(),
            host: "web1".into(),
            created_at: 1,
            packer_version: "0".into(),
            check_mode: false,
            diff_mode: false,
            host_vars: Default::default(),
            group_by_vars: Default::default(),
            plays: vec![Play {
                name: "p".into(),
                tasks,
                ..Play::default()
            }],
            magic: Default::default(),
            controller_lookups: Vec::new(),
            shared: Arc::new(Shared::default()),
        };
        let key = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
        crate::pack::Sealer::new(&key)
            .unwrap()
            .seal(&plan)
            .unwrap()
            .0
    }

    pub(crate) fn request(id: u64, kind: RequestKind, task: &Task, vars: Option<Value>) -> String {
        with_result(id, kind, task, vars, None)
    }

    fn with_result(
        id: u64,
        kind: RequestKind,
        task: &Task,
        vars: Option<Value>,
        result: Option<Value>,
    ) -> String {
        let mut request = Request::new(kind, task.channel_id(), 0);
        request.id = id;
        request.vars = vars;
        request.result = result;
        serde_json::to_string(&Event::Request(request)).unwrap()
    }

    #[test]
    fn delegated_facts_join_what_the_host_reported_as_ansible_keeps_host_facts() {
        let mut vars = serde_json::Map::new();
        vars.insert("mine".into(), json!(1));
        vars.insert("ansible_facts".into(), json!({"hostname": "lb0"}));
        let facts = json!({"kept": "yes", "ansible_local_thing": 2});
        add_delegated_facts(&mut vars, facts.as_object().cloned().unwrap());
        assert_eq!(
            Value::Object(vars),
            json!({
                "mine": 1, "kept": "yes", "ansible_local_thing": 2,
                "ansible_facts": {"hostname": "lb0", "kept": "yes", "local_thing": 2}
            })
        );
    }

    #[test]
    fn a_barrier_waits_for_every_running_host_of_the_play_and_no_host_that_left() {
        let batch = Batch::default();
        batch.join("a", [7].into_iter().collect());
        batch.join("b", [7].into_iter().collect());
        batch.join("c", [7].into_iter().collect());
        batch.arrive("a", 7, 1, false);
        batch.arrive("b", 7, 1, true);
        assert_eq!(batch.fleet().decided(7, 1), None, "c has not reached it");
        batch.leave("c", Some(7));
        assert_eq!(batch.fleet().decided(7, 1), Some(true), "b failed there");
        batch.arrive("a", 7, 2, false);
        assert_eq!(batch.fleet().decided(7, 2), None, "b is still in the play");
        batch.leave("b", None);
        assert_eq!(batch.fleet().decided(7, 2), Some(false));
        // A host that starts late finds the barriers the others passed decided.
        batch.join("d", [7].into_iter().collect());
        batch.arrive("d", 7, 1, false);
        assert_eq!(batch.fleet().decided(7, 1), Some(true));
    }

    #[test]
    fn max_fail_percentage_stops_the_others_once_more_than_that_share_of_the_batch_failed() {
        let batch = Batch::default();
        batch.fleet().sizes.insert(4, 4);
        batch.fleet().rules.insert(4, (false, Some(25)));
        for h in ["a", "b", "c", "d"] {
            batch.join(h, [4].into_iter().collect());
        }
        // One of four (25%) is not more than 25%: nobody stops.
        batch.arrive("a", 4, 1, true);
        batch.leave("a", Some(4));
        for h in ["b", "c", "d"] {
            batch.arrive(h, 4, 1, false);
        }
        assert_eq!(batch.fleet().decided(4, 1), Some(false));
        // A second failure, at the next task, is more: the others stop there.
        batch.arrive("b", 4, 2, true);
        batch.arrive("c", 4, 2, false);
        batch.arrive("d", 4, 2, false);
        assert_eq!(batch.fleet().decided(4, 2), Some(true));
        // The failure at the second task does not count at the first.
        assert_eq!(batch.fleet().decided(4, 1), Some(false));
    }

    /// The failure seen in CI: `b`, behind, reads `c` while `a`, already in the next
    /// play, reads `b`. `a` must wait for `b` to finish the play, not take it as it
    /// stood during its own read.
    #[tokio::test]
    async fn a_host_reading_another_is_still_on_its_way_for_those_reading_it() {
        let batch = Arc::new(Batch::default());
        {
            let mut peers = batch.peers();
            for h in ["a", "b", "c"] {
                peers.join(h);
            }
            peers
                .record("a", (1, vec![0]), serde_json::Map::new(), vec![])
                .unwrap();
            peers
                .record("b", (0, vec![3]), serde_json::Map::new(), vec![])
                .unwrap();
            peers
                .record("c", (0, vec![2]), serde_json::Map::new(), vec![])
                .unwrap();
        }
        let reader = {
            let batch = batch.clone();
            tokio::spawn(async move { wait_hostvars(&batch, "b", (1, vec![0])).await })
        };
        // b waits for c (behind it) to finish its third task.
        let middle = {
            let batch = batch.clone();
            tokio::spawn(async move { wait_hostvars(&batch, "c", (0, vec![3])).await })
        };
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        assert!(!reader.is_finished() && !middle.is_finished());
        let record = |host: &str, at: Position, set: Value| {
            batch
                .peers()
                .record(host, at, set.as_object().cloned().unwrap(), vec![])
                .unwrap();
            batch.changed.send_modify(|n| *n = n.wrapping_add(1));
        };
        record("c", (0, vec![3]), json!({}));
        assert_eq!(middle.await.unwrap(), serde_json::Map::new());
        assert!(!reader.is_finished());
        record("b", (0, vec![4]), json!({"later": true}));
        record("b", (1, vec![0]), json!({}));
        let seen = tokio::time::timeout(std::time::Duration::from_secs(20), reader)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(seen["later"], true);
    }

    fn line(text: &str) -> Line<'_> {
        Line { text, cut: None }
    }

    async fn next(rx: &mut tokio::sync::mpsc::UnboundedReceiver<Vec<u8>>) -> Answer {
        let bytes = tokio::time::timeout(std::time::Duration::from_secs(20), rx.recv())
            .await
            .expect("an answer in time")
            .expect("an answer");
        assert_eq!(bytes.last(), Some(&b'\n'), "one line");
        serde_json::from_slice(&bytes).unwrap()
    }

    #[tokio::test]
    async fn a_delegated_task_runs_here_with_the_hosts_variables() {
        let (sealed, _, delegated, _) = payload();
        let mut ch = HostChannel::new("web1", Arc::new(sealed), Arc::new(Batch::default()));
        let mut rx = ch.open();
        let mut result = HostResult::new("web1", Default::default());
        let req = request(
            1,
            RequestKind::Delegate,
            &delegated,
            Some(json!({"who": "web1-var"})),
        );
        assert!(ch.intercept(line(&req), &mut result));
        let answer = next(&mut rx).await;
        assert_eq!(answer.id, 1);
        assert_eq!(answer.error, None);
        assert_eq!(answer.result.unwrap()["stdout"], "web1-var");
        assert!(ch.refused.is_none() && result.error.is_none());
    }

    #[tokio::test]
    async fn a_forged_request_for_a_task_that_is_not_delegated_is_refused() {
        let (sealed, plain, _, once) = payload();
        // Not delegated, though in the plan; and a task the plan does not hold at all.
        let mut foreign = plain.clone();
        foreign
            .args
            .insert("_raw_params".into(), json!("touch /tmp/pwned"));
        foreign.delegate_to = Some("localhost".into());
        for (forged, why) in [
            (plain, "not a delegated or run_once task"),
            (once, "is not delegated"),
            (foreign, "not a delegated or run_once task"),
        ] {
            let mut ch =
                HostChannel::new("web1", Arc::new(sealed.clone()), Arc::new(Batch::default()));
            let mut rx = ch.open();
            let mut result = HostResult::new("web1", Default::default());
            let req = request(1, RequestKind::Delegate, &forged, Some(json!({})));
            assert!(ch.intercept(line(&req), &mut result));
            let answer = next(&mut rx).await;
            let error = answer.error.expect("refused");
            assert!(error.contains(why), "{error}");
            assert!(answer.result.is_none());
            assert!(result.error.unwrap().contains(why));
            let mut r = HostResult::new("web1", Default::default());
            r.status = crate::deploy::HostStatus::Ok;
            ch.settle(&mut r);
            assert_eq!(r.status, crate::deploy::HostStatus::Failed);
        }
    }

    #[tokio::test]
    async fn malformed_and_out_of_turn_requests_fail_the_host_not_the_deployer() {
        let (sealed, _, delegated, _) = payload();
        let mut ch = HostChannel::new("web1", Arc::new(sealed), Arc::new(Batch::default()));
        let _rx = ch.open();
        let mut result = HostResult::new("web1", Default::default());
        assert!(ch.intercept(line("{\"type\":\"request\",\"v\":1,\"id\":"), &mut result));
        assert!(result.error.as_deref().unwrap().contains("not a request"));
        let mut result = HostResult::new("web1", Default::default());
        let req = request(5, RequestKind::Delegate, &delegated, None);
        assert!(ch.intercept(line(&req), &mut result));
        assert!(result.error.unwrap().contains("request number 5 after 0"));
        let mut result = HostResult::new("web1", Default::default());
        let cut = Line {
            text: "{\"type\":\"request\"",
            cut: Some(40 << 20),
        };
        assert!(ch.intercept(cut, &mut result));
        assert!(result.error.unwrap().contains("longer than"));
        // Events are not requests.
        let ev = "{\"type\":\"task\",\"v\":1,\"result\":{\"type\":\"request\"}}";
        assert!(!ch.intercept(line(ev), &mut HostResult::new("web1", Default::default())));
    }

    #[tokio::test]
    async fn run_once_runs_on_the_first_host_and_the_others_get_its_result() {
        let (sealed, _, _, once) = payload();
        let batch = Arc::new(Batch::default());
        let sealed = Arc::new(sealed);
        let mut first = HostChannel::new("web1", sealed.clone(), batch.clone());
        let mut second = HostChannel::new("web2", sealed.clone(), batch.clone());
        let (mut rx1, mut rx2) = (first.open(), second.open());
        let mut r = HostResult::new("x", Default::default());
        first.intercept(line(&request(1, RequestKind::RunOnce, &once, None)), &mut r);
        assert!(next(&mut rx1).await.run);
        second.intercept(line(&request(1, RequestKind::RunOnce, &once, None)), &mut r);
        // The second waits for the first's result.
        assert!(
            tokio::time::timeout(std::time::Duration::from_millis(300), rx2.recv())
                .await
                .is_err()
        );
        let done = with_result(
            2,
            RequestKind::RunOnceDone,
            &once,
            None,
            Some(json!({"changed": false, "failed": false, "msg": "x"})),
        );
        assert!(first.intercept(line(&done), &mut r));
        assert_eq!(next(&mut rx1).await.id, 2);
        let got = next(&mut rx2).await;
        assert!(!got.run);
        assert_eq!(got.result.unwrap()["msg"], "x");
        assert_eq!(got.host.as_deref(), Some("web1"));
        assert!(r.error.is_none(), "{:?}", r.error);
        // A host that reports a run it was not given is refused.
        let mut r = HostResult::new("x", Default::default());
        second.intercept(line(&done), &mut r);
        assert!(r.error.unwrap().contains("was not running"));
    }

    #[tokio::test]
    async fn hosts_waiting_on_a_run_once_host_that_ends_get_an_error() {
        let (sealed, _, _, once) = payload();
        let batch = Arc::new(Batch::default());
        let sealed = Arc::new(sealed);
        let mut first = HostChannel::new("web1", sealed.clone(), batch.clone());
        let mut second = HostChannel::new("web2", sealed, batch);
        let (mut rx1, mut rx2) = (first.open(), second.open());
        let mut r = HostResult::new("x", Default::default());
        first.intercept(line(&request(1, RequestKind::RunOnce, &once, None)), &mut r);
        assert!(next(&mut rx1).await.run);
        second.intercept(line(&request(1, RequestKind::RunOnce, &once, None)), &mut r);
        drop(first);
        let got = next(&mut rx2).await;
        let error = got.error.expect("an error");
        assert!(
            error.contains("web1 ran it and ended before it reported"),
            "{error}"
        );
    }

    /// A lookup request is answered by running the lookup here, for a task that calls
    /// it; any other is refused and fails the host.
    #[tokio::test]
    async fn a_lookup_request_runs_only_for_a_task_that_calls_that_lookup() {
        let uses = task(
            "version",
            "debug",
            json!({"msg": "{{ lookup('pipe', python ~ ' -c \"print(1)\"') }}"}),
        );
        let plain = task("plain", "debug", json!({"msg": "{{ python }}"}));
        let sealed = sealed(vec![uses.clone(), plain.clone()]);
        let ask =
            |id: u64, task: &Task, lookup: &str, command: &str| {
                let mut req: Request =
                    match serde_json::from_str(&request(id, RequestKind::Lookup, task, None))
                        .unwrap()
                    {
                        Event::Request(r) => r,
                        _ => unreachable!(),
                    };
                req.lookup = Some(Box::new(rustle_runner::plan::ControllerLookup {
                    lookup: lookup.into(),
                    terms: json!([command]),
                    options: Default::default(),
                    values: None,
                    error: None,
                    error_class: None,
                }));
                serde_json::to_string(&Event::Request(req)).unwrap()
            };
        let mut ch = HostChannel::new("web1", Arc::new(sealed.clone()), Arc::new(Batch::default()));
        let mut rx = ch.open();
        let mut result = HostResult::new("web1", Default::default());
        assert!(ch.intercept(
            line(&ask(1, &uses, "pipe", "echo from-controller")),
            &mut result
        ));
        let answer = next(&mut rx).await;
        assert_eq!(answer.error, None);
        let call = answer.lookup.expect("the call answered");
        assert_eq!(call.terms, json!(["echo from-controller"]));
        assert_eq!(call.values, Some(vec![json!("from-controller")]));
        // A failing command is the lookup's failure, which the task meets.
        assert!(ch.intercept(line(&ask(2, &uses, "pipe", "exit 3")), &mut result));
        let call = next(&mut rx).await.lookup.expect("the call answered");
        assert!(call.values.is_none());
        assert!(call.error.unwrap().contains("exit 3"));
        assert!(ch.refused.is_none() && result.error.is_none());
        for (task, lookup, why) in [
            (&plain, "pipe", "does not use the pipe lookup"),
            (&uses, "env", "does not use the env lookup"),
            (&uses, "file", "not a controller lookup"),
        ] {
            let mut ch =
                HostChannel::new("web1", Arc::new(sealed.clone()), Arc::new(Batch::default()));
            let mut rx = ch.open();
            let mut result = HostResult::new("web1", Default::default());
            assert!(ch.intercept(line(&ask(1, task, lookup, "touch /tmp/pwned")), &mut result));
            let answer = next(&mut rx).await;
            let error = answer.error.expect("refused");
            assert!(error.contains(why), "{error}");
            assert!(answer.lookup.is_none());
        }
    }

    /// Forged `fetch` requests: a `dest` or `flat` other than the task's literal ones, a
    /// `src` that climbs out of `dest`, a piece nobody announced, more than announced,
    /// all refused or failed without a file written outside `dest`.
    #[tokio::test]
    async fn forged_fetch_requests_write_nothing_outside_dest() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out").display().to_string();
        let literal = task("literal", "fetch", json!({"src": "/etc/motd", "dest": out}));
        let templated = task("templated", "fetch", json!({"src": "x", "dest": "{{ d }}"}));
        let sealed = sealed(vec![literal.clone(), templated.clone()]);
        let ask = |id: u64, t: &Task, part: fetch::Part| {
            let mut r = Request::new(RequestKind::Fetch, t.channel_id(), 0);
            r.id = id;
            r.fetch = Some(Box::new(part));
            serde_json::to_string(&Event::Request(r)).unwrap()
        };
        let part = |src: &str, dest: &str, flat: bool, data: Option<&[u8]>| fetch::Part {
            src: src.into(),
            dest: dest.into(),
            flat,
            validate_checksum: true,
            checksum: rustle_runner::digest::sha1_hex(b"hi"),
            size: 2,
            offset: 0,
            data: data.map(rustle_runner::hex::base64),
        };
        let elsewhere = dir.path().join("elsewhere").display().to_string();
        for (t, p, why) in [
            (
                &literal,
                part("/etc/motd", &elsewhere, false, None),
                "fetches into",
            ),
            (
                &literal,
                part("/etc/motd", &out, true, None),
                "has flat: false",
            ),
            (
                &literal,
                part("/etc/motd", &out, false, Some(b"hi")),
                "no fetch request",
            ),
        ] {
            let mut ch =
                HostChannel::new("web1", Arc::new(sealed.clone()), Arc::new(Batch::default()));
            let mut rx = ch.open();
            let mut result = HostResult::new("web1", Default::default());
            assert!(ch.intercept(line(&ask(1, t, p)), &mut result));
            let error = next(&mut rx).await.error.expect("refused");
            assert!(error.contains(why), "{error}");
        }
        // A templated dest is the host's to render, but `..` cannot leave it.
        let mut ch = HostChannel::new("web1", Arc::new(sealed.clone()), Arc::new(Batch::default()));
        let mut rx = ch.open();
        let mut result = HostResult::new("web1", Default::default());
        let climb = part("../../../elsewhere/x", &out, false, None);
        assert!(ch.intercept(line(&ask(1, &templated, climb)), &mut result));
        let answer = next(&mut rx).await;
        assert_eq!(answer.error, None);
        let r = answer.result.expect("the task's result");
        assert_eq!(r["failed"], true);
        assert!(
            r["msg"].as_str().unwrap().contains("directory traversal"),
            "{r}"
        );
        // Announced, then more than announced.
        let ok = part("/f", &out, false, None);
        assert!(ch.intercept(line(&ask(2, &templated, ok)), &mut result));
        let answer = next(&mut rx).await;
        assert!(
            answer.error.is_none() && answer.result.is_none(),
            "{answer:?}"
        );
        let too_much = part("/f", &out, false, Some(b"hi!"));
        assert!(ch.intercept(line(&ask(3, &templated, too_much)), &mut result));
        assert!(
            next(&mut rx)
                .await
                .error
                .unwrap()
                .contains("more of the fetched file")
        );
        assert!(!dir.path().join("elsewhere").exists());
        assert!(!dir.path().join("out/web1/f").exists());
    }
}
