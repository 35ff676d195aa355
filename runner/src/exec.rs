//! The executor: runs a host's plays with Ansible's semantics.
//!
//! Tasks run in order; a task's `when` is evaluated (per item for loops); the module
//! runs with arguments rendered against the variables in scope; `changed_when` and
//! `failed_when` may rewrite the outcome; `register` stores it; a change notifies
//! handlers, which run once each at the end of the play in the order they are defined.
//! A failure that is not ignored or rescued stops the host: no further task or play
//! runs for it, and notified handlers do not run (Ansible's default without
//! `force_handlers`).
//!
//! Variable precedence, lowest first: inventory (group then host), gathered facts, play
//! vars, block vars, task vars, registered results and `set_fact`, the loop variable.

use crate::events::{EVENTS_VERSION, Event, Recap, Request, RequestKind, Sink, Status};
use crate::facts;
use crate::keywords;
use crate::modules::{Ctx, Local, ModuleError, ModuleHost, Outcome};
use crate::plan::{
    Condition, Flag, HostFile, HostPlan, Origin, Parsed, Play, RoleRef, Task, Templated, Vars,
};
use crate::privilege::RunAs;
use crate::template::Engine;
use minijinja::value::Value as JValue;
use serde_json::{Value, json};
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write as _;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What a `no_log` task's reported result says instead of the result (Ansible's words).
/// Actions the executor carries out itself: a templated action name may not become one
/// (Ansible decides these when it reads the task, before any template is rendered).
const EXECUTOR_ACTIONS: [&str; 6] = [
    "meta",
    "include_tasks",
    "include_role",
    "import_tasks",
    "import_role",
    "import_playbook",
];

const NO_LOG_CENSORED: &str =
    "the output has been hidden due to the fact that 'no_log: true' was specified for this result";

/// Options given on the runner's command line that override the plan.
#[derive(Debug, Clone, Copy, Default)]
pub struct RunOptions {
    /// Force check mode on.
    pub check_mode: bool,
    /// Force diff mode on.
    pub diff_mode: bool,
}

/// Why a host stops going through its task list early.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Halt {
    /// A task failed and nothing rescued it: no further task or play runs.
    Failed,
    /// `meta: end_play` (or `end_batch`): the rest of this play is skipped.
    EndPlay,
    /// `meta: end_host`: the rest of the run is skipped, without failing.
    EndHost,
    /// The sink asked to stop (the deployer went away): no further task runs, and no
    /// rescue or always section either; the host counts as failed.
    Stopped,
    /// Another host of an `any_errors_fatal` play failed a task this host ran too: this
    /// host is failed as Ansible marks it (a block's rescue and always still run), with
    /// no failed task of its own in the recap.
    Fatal,
    /// An error with which Ansible ends the whole run (`Executor::abort` says which):
    /// nothing more runs on the host, no rescue, always or handler either.
    Aborted,
    /// A task could not reach its host (the host it was delegated to) and did not
    /// ignore it: Ansible takes the host out of the run, so nothing more runs on it, no
    /// rescue, always or handler either, and it counts as unreachable, not failed.
    Unreachable,
    /// `meta: end_role`: the rest of the innermost role being run is skipped (no
    /// rescue or always of its blocks either), and the role counts as completed.
    EndRole,
}

/// A scope of variables: one the plan holds, or one made while running (the loop
/// variables of an `include_tasks`).
#[derive(Debug, Clone)]
enum Scope<'a> {
    Plan(&'a Vars),
    Run(Rc<Vars>),
}

impl std::ops::Deref for Scope<'_> {
    type Target = Vars;
    fn deref(&self) -> &Vars {
        match self {
            Scope::Plan(v) => v,
            Scope::Run(v) => v,
        }
    }
}

/// Keywords a block hands down to the tasks inside it. Templated keywords are handed
/// down as written and evaluated at each task, with its variables, as Ansible does.
#[derive(Debug, Clone, Default)]
struct Inherited<'a> {
    vars: Vec<Scope<'a>>,
    /// Role defaults of roles included at run time: below the inventory, as in Ansible.
    defaults: Vec<Scope<'a>>,
    /// The roles the tasks run in, outermost first (Ansible's dependency chain).
    roles: Vec<Rc<RoleRef>>,
    /// The controller path of the file the tasks were read from.
    file: Option<Rc<str>>,
    when: Vec<&'a Condition>,
    become_: Option<&'a Flag>,
    become_user: Option<&'a str>,
    environment: Vec<&'a Value>,
    ignore_errors: Option<&'a Flag>,
    ignore_unreachable: Option<&'a Flag>,
    check_mode: Option<&'a Flag>,
    diff: Option<&'a Flag>,
    no_log: Option<&'a Flag>,
    timeout: Option<&'a Templated<i64>>,
    remote_user: Option<&'a str>,
    /// The tags of the blocks, roles, imports and play around the tasks (not those of
    /// an include: Ansible's included tasks do not inherit them, only `apply`'s).
    tags: Rc<BTreeSet<String>>,
    /// The tasks were brought in by an include, so `--tags`/`--skip-tags` still have
    /// to be applied to them (the packer applied them to everything else).
    filter_tags: bool,
}

/// Runs one host's plan, reporting through a [`Sink`].
pub struct Executor<'a> {
    plan: &'a HostPlan,
    engine: Arc<Engine>,
    /// The engine's controller lookups: the payload's answers, the deployer's, and the
    /// calls still to ask it.
    lookups: Arc<crate::lookups::Answers>,
    sink: &'a mut dyn Sink,
    opts: RunOptions,
    /// The host's facts (Ansible's fact cache): gathered ones, and what other modules
    /// return as `ansible_facts` (package_facts' `packages`).
    facts: Vars,
    /// Registered results and `set_fact` values: they outlive plays, as in Ansible.
    host_facts: Vars,
    /// Where `fetch` keeps files when no deployer takes them (a runner run by hand
    /// with a release: its `fetched/` directory).
    fetch_dir: Option<std::path::PathBuf>,
    recap: Recap,
    play_name: String,
    /// The role of the task being run, for its events ([`Event::Task`]'s `role`).
    shown_role: Option<String>,
    notified: BTreeSet<String>,
    /// Handler names that are templates, as rendered (by the handler's address): Ansible
    /// templates a handler's name once, when a notification first looks at it.
    handler_names: RefCell<std::collections::HashMap<usize, String>>,
    /// Warnings that belong to no task's result, to emit ([`Event::Warning`]), and
    /// those already given (Ansible's display gives each once).
    warnings: RefCell<(Vec<String>, BTreeSet<String>)>,
    /// Why the run ended with [`Halt::Aborted`].
    abort: Option<String>,
    /// The handlers notified and not run yet (Ansible's `notified_hosts`, for this host).
    woken: Woken,
    /// Handlers are running (a flush): notifications wake handlers at once.
    in_handlers: bool,
    /// The failure that stopped the host (`failure`) was a handler's.
    failed_handler: bool,
    /// The last failure that stopped the host (task name, module, result): a rescue
    /// section sees it as `ansible_failed_task` / `ansible_failed_result`.
    failure: Option<(String, String, Value)>,
    /// The current play, whose handlers `meta: flush_handlers` runs.
    play: Option<&'a Play>,
    /// Whether anything in the plan refers to a gathered fact (decided once).
    facts_used: Option<bool>,
    /// Whether anything in the plan mentions Python's facts (decided once).
    python_used: Option<bool>,
    /// Where modules run: here, or (the deployer's SSH mode) on a remote host.
    host: Box<dyn ModuleHost + 'a>,
    /// Magic variables of the current play (the plan's, the play's and its hosts'),
    /// as template values: they rank above every other variable.
    globals: Vec<(String, JValue)>,
    /// Whether anything in the plan refers to `hostvars` (decided once): only then is
    /// it built for each task.
    hostvars_used: bool,
    /// Ansible's `omit`: an argument that renders to it is left out.
    omit: String,
    /// The current play's playbook directory (its `playbook_dir`, Ansible's base
    /// directory for finding files).
    playbook_dir: String,
    /// Handlers of roles included at run time, with the scope they run in; a role
    /// included again replaces its earlier ones.
    dyn_handlers: Vec<(String, &'a [Task], Inherited<'a>)>,
    /// Defaults and vars of roles included with `public: true`, for the rest of the play.
    public_defaults: Vars,
    public_vars: Vars,
    /// Uses of roles ([`crate::plan::RoleInstance`] keys) in this play that ran a task
    /// (ok, changed or failed), and those that then came to their end: a completed use
    /// does not run again unless duplicates are allowed (Ansible's `role_complete`).
    roles_had_run: BTreeSet<String>,
    roles_completed: BTreeSet<String>,
    /// The uses of roles being run, innermost last: a task's result counts for the last.
    role_instances: Vec<String>,
    /// Roles being run at run time (directory and task file), to stop a dependency cycle.
    role_stack: Vec<String>,
    /// The index of the current play in the plan (requests name it).
    play_index: usize,
    /// The way to the deployer, for what templates ask it (`hostvars` of other hosts).
    channel: Option<Arc<dyn crate::events::Channel>>,
    /// Other hosts may read this host's variables (`Play::number`): it tells the
    /// deployer what it knows of itself after each task.
    share: bool,
    /// Where this host stands in the current play, for the other hosts' `hostvars`:
    /// the path of the task it runs, its index in each list that holds it, with the
    /// part of the play ([`PART_GATHER`]...), of a block ([`SECTION_BLOCK`]...) or of a
    /// role, the inclusion and the handler flush on the way. Paths compare in the order
    /// Ansible's linear strategy runs the play's tasks across hosts (block, then
    /// rescue, then always; included tasks where their include is), so that a host
    /// that skipped a rescue reads one that runs it as it stands after it, as the
    /// lockstep has them.
    at: Vec<u32>,
    /// What it last told the deployer of itself.
    published: Vars,
    /// Other hosts' variables as the deployer gave them at this point of the play.
    peers: crate::lazyvars::PeerCache,
    /// `groups` as `group_by` and `add_host` changed it (from the plan's when `None`).
    groups: Option<std::collections::BTreeMap<String, Vec<String>>>,
    /// The variables `add_host` gave hosts, by host (`hostvars` shows them).
    added_hosts: std::collections::BTreeMap<String, Vars>,
    /// What `hostvars` shows of them ([`Self::added_hostvars`], kept by
    /// [`Self::refresh_groups`]).
    added_view: Arc<std::collections::BTreeMap<String, Vars>>,
    /// The inventory variables of the groups `group_by` put this host in
    /// ([`HostPlan::group_by_vars`]), over its own.
    joined_vars: Vars,
    /// `--tags`/`--skip-tags` of the run (from `ansible_run_tags`/`ansible_skip_tags`),
    /// for the tasks includes bring in.
    selection: crate::tags::Selection,
}

/// The names by which a task is delegated to the controller itself.
pub const CONTROLLER_NAMES: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

/// What a `run_once` task's host learns from the deployer.
enum OnceTurn {
    /// This host runs it, and reports its result after.
    Mine,
    /// Another host ran it: its result.
    Done(Vars),
}

/// What a finished run amounts to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunSummary {
    /// The counts.
    pub recap: Recap,
    /// Whether the host stopped on a failure.
    pub host_failed: bool,
}

impl<'a> Executor<'a> {
    /// Prepares to run `plan`.
    pub fn new(plan: &'a HostPlan, sink: &'a mut dyn Sink, opts: RunOptions) -> Self {
        Self::with_host(plan, sink, opts, Box::new(Local::default()))
    }

    /// Prepares to run `plan` with its modules run (and facts gathered) by `host`.
    pub fn with_host(
        plan: &'a HostPlan,
        sink: &'a mut dyn Sink,
        opts: RunOptions,
        host: Box<dyn ModuleHost + 'a>,
    ) -> Self {
        let channel = sink.channel();
        let lookups = Arc::new(crate::lookups::Answers::new(
            plan.controller_lookups.clone(),
        ));
        Executor {
            plan,
            engine: Arc::new(Engine::with_controller(lookups.clone())),
            lookups,
            sink,
            opts,
            facts: Vars::new(),
            host_facts: Vars::new(),
            recap: Recap::default(),
            shown_role: None,
            play_name: String::new(),
            notified: BTreeSet::new(),
            handler_names: RefCell::default(),
            warnings: RefCell::default(),
            abort: None,
            woken: Woken::default(),
            in_handlers: false,
            failed_handler: false,
            failure: None,
            play: None,
            facts_used: None,
            python_used: None,
            host,
            globals: Vec::new(),
            hostvars_used: refers_to(plan, "hostvars"),
            omit: omit_token(plan),
            playbook_dir: String::new(),
            dyn_handlers: Vec::new(),
            public_defaults: Vars::new(),
            public_vars: Vars::new(),
            roles_had_run: BTreeSet::new(),
            roles_completed: BTreeSet::new(),
            role_instances: Vec::new(),
            role_stack: Vec::new(),
            play_index: 0,
            channel,
            share: plan.plays.iter().any(|p| p.number.is_some()),
            at: Vec::new(),
            published: Vars::new(),
            peers: crate::lazyvars::PeerCache::default(),
            groups: None,
            added_hosts: std::collections::BTreeMap::new(),
            added_view: Arc::default(),
            joined_vars: Vars::new(),
            selection: crate::tags::Selection::from_magic(
                plan.magic.get("ansible_run_tags"),
                plan.magic.get("ansible_skip_tags"),
            ),
            fetch_dir: None,
        }
    }

    /// `fetch` keeps the files it copies under `dir` when the run has no deployer to
    /// hand them to.
    pub fn fetch_into(mut self, dir: Option<std::path::PathBuf>) -> Self {
        self.fetch_dir = dir;
        self
    }

    /// Runs every play and emits the recap.
    pub fn run(self) -> RunSummary {
        // The file lookups read the controller files this plan carries.
        let shared = Arc::clone(&self.plan.shared);
        crate::ctlfiles::with_files(&shared, || self.run_plays())
    }

    fn run_plays(mut self) -> RunSummary {
        let started = Instant::now();
        let mut host_failed = false;
        // The playbook of the last play reached, for the recap after each playbook.
        let mut playbook = None;
        for (index, play) in self.plan.plays.iter().enumerate() {
            self.play_index = index;
            if let Some(done) = playbook.filter(|p| *p != play.playbook) {
                self.playbook_end(done);
            }
            playbook = Some(play.playbook);
            if play.hosts_at_start && !self.selected_by(play) {
                // Not among the play's hosts as the groups stand now: the others stop
                // waiting for this one in it, as for a play it has finished.
                self.at = vec![PART_DONE];
                self.publish();
                if play.fleet.is_some() {
                    self.play_done(play);
                }
                continue;
            }
            self.globals = self.play_globals(play, index);
            self.playbook_dir = match play.magic.get("playbook_dir") {
                Some(Value::String(d)) => d.clone(),
                _ => String::new(),
            };
            let outcome = self.run_play(play);
            if play.fleet.is_some() && outcome != Err(Halt::Stopped) {
                // The other hosts of the play stop waiting for this one.
                self.play_done(play);
            }
            match outcome {
                // An `end_role` never leaves its role (see `in_instance`).
                Ok(()) | Err(Halt::EndPlay | Halt::EndRole) => {}
                Err(Halt::EndHost) => break,
                Err(Halt::Failed | Halt::Stopped | Halt::Fatal | Halt::Unreachable) => {
                    host_failed = true;
                    break;
                }
                Err(Halt::Aborted) => {
                    self.emit_warnings();
                    let msg = self.abort.take().unwrap_or_default();
                    self.sink.emit(&Event::Error {
                        v: EVENTS_VERSION,
                        msg,
                    });
                    host_failed = true;
                    break;
                }
            }
        }
        self.emit_warnings();
        if let Some(done) = playbook
            && self.plan.plays.iter().any(|p| p.playbook > 0)
        {
            self.playbook_end(done);
        }
        self.sink.emit(&Event::Recap {
            v: EVENTS_VERSION,
            host: self.plan.host.clone(),
            recap: self.recap,
            duration_ms: ms(started.elapsed()),
        });
        RunSummary {
            recap: self.recap,
            host_failed,
        }
    }

    /// Reports the counts so far at the end of the run's playbook `playbook`.
    fn playbook_end(&mut self, playbook: usize) {
        self.sink.emit(&Event::PlaybookEnd {
            v: EVENTS_VERSION,
            host: self.plan.host.clone(),
            playbook,
            recap: self.recap,
        });
    }

    fn run_play(&mut self, play: &'a Play) -> Result<(), Halt> {
        let ran = self.run_play_parts(play);
        // Done with the play, however it ended: what its last task set is seen.
        self.at = vec![PART_DONE];
        self.publish();
        ran
    }

    /// [`Self::run_play`]'s fact gathering, tasks and handler flushes.
    fn run_play_parts(&mut self, play: &'a Play) -> Result<(), Halt> {
        self.play_name = play.name.clone();
        self.notified.clear();
        self.woken = Woken::default();
        self.handler_names.borrow_mut().clear();
        self.dyn_handlers.clear();
        self.public_defaults.clear();
        self.public_vars.clear();
        self.roles_had_run.clear();
        self.roles_completed.clear();
        self.sink.emit(&Event::Play {
            v: EVENTS_VERSION,
            name: play.name.clone(),
        });
        self.at.clear();
        self.publish();
        if play.gather_facts {
            // Fact gathering is the play's first task for every host, as in Ansible,
            // even for one that gathered in an earlier play: hosts count alike.
            self.at = vec![PART_GATHER];
            self.publish();
        }
        // Each play that gathers gathers again, as Ansible's default (implicit)
        // gathering does: facts change as plays run (a package installed, an
        // environment given to the play).
        if play.gather_facts {
            let started = Instant::now();
            // Gathering reads /proc, /etc and runs a few syscalls per interface; a plan
            // that never refers to a fact does not pay for it (the task is still
            // reported, so the counts match Ansible's). Other hosts may refer to them
            // through `hostvars` when this host shares what it knows.
            let share = self.share;
            if *self
                .facts_used
                .get_or_insert_with(|| share || facts_referenced(self.plan))
            {
                // Rendered before gathering, with the facts known before it.
                let environment = self.gathering_environment(play);
                self.facts.extend(self.host.facts());
                if let Some(Value::Object(env)) = self.facts.get_mut("ansible_env") {
                    for (k, v) in environment {
                        env.insert(k, Value::String(v));
                    }
                }
                // Describing the interpreter starts it: only for plans that ask.
                if *self
                    .python_used
                    .get_or_insert_with(|| refers_to(self.plan, "python"))
                    && let Some(py) = self.host.python_facts()
                {
                    self.facts.extend(py);
                }
            }
            let mut result = Vars::new();
            result.insert("changed".into(), false.into());
            result.insert("failed".into(), false.into());
            result.insert(
                "ansible_facts".into(),
                facts::unprefixed(&self.facts).into(),
            );
            self.record(
                "Gathering Facts",
                "setup",
                Status::Ok,
                false,
                false,
                started,
                Value::Object(result),
            );
        }
        self.play = Some(play);
        self.at = vec![PART_TASKS];
        let ran = self.run_list(&play.tasks, &play_scope(play), false);
        self.at = vec![PART_END_FLUSHES];
        if play.force_handlers && matches!(ran, Err(Halt::Failed | Halt::Fatal)) {
            // The host stays failed; what it was notified of still runs, as Ansible's
            // force_handlers does.
            let _ = self.end_of_play_flushes(play);
            return ran;
        }
        ran?;
        self.end_of_play_flushes(play)
    }

    /// Runs the notified handlers, in the order they are defined, each once per flush.
    /// Called by `meta: flush_handlers` and where Ansible's implicit flushes are.
    /// What was notified since the last flush wakes its handlers first; a handler that
    /// runs may notify others, which run in this flush when they come after it, and
    /// wait for the next one otherwise (Ansible's `notify_host` while iterating
    /// handlers).
    fn flush_handlers(&mut self) -> Result<(), Halt> {
        let Some(play) = self.play else {
            return Ok(());
        };
        // Handlers see the play's keywords, not those of the task that flushed them.
        let inherited = play_scope(play);
        let pending = std::mem::take(&mut self.notified);
        let order = self.handler_search_order();
        for n in &pending {
            for h in self.finds(&order, n) {
                self.woken.wake(h);
            }
        }
        let was = std::mem::replace(&mut self.in_handlers, true);
        // The handler lists in turn, each a step of the flush's path.
        self.at.push(0);
        let mut flushed = self.flush_list(&play.handlers, &inherited);
        for (_, list, scope) in self.dyn_handlers.clone() {
            if flushed.is_ok() {
                self.bump();
                flushed = self.flush_list(list, &scope);
            }
        }
        self.at.pop();
        self.in_handlers = was;
        flushed
    }

    /// The handler flushes Ansible makes at the end of a play: one after each of its
    /// sections from the last one that has tasks (`Play::end_flushes`), each run only
    /// while a handler is notified; a handler that notified an earlier one gets it run
    /// by the next.
    fn end_of_play_flushes(&mut self, play: &Play) -> Result<(), Halt> {
        for k in 0..play.end_flushes.unwrap_or(1).max(1) {
            if self.notified.is_empty() && self.woken.is_empty() {
                break;
            }
            self.at.push(u32::from(k));
            let flushed = self.flush_handlers();
            self.at.pop();
            flushed?;
        }
        Ok(())
    }

    /// Every handler of the play (inside blocks too), in the order Ansible 2.18 searches
    /// them for a notification (`search_handlers_by_notification`): its handler blocks
    /// from the last to the first (the roles included while the play runs, latest
    /// first, then the play's own handlers, then each role's, last role first), each
    /// block's handlers in order.
    fn handler_search_order(&self) -> Vec<Candidate<'a>> {
        fn flat<'t>(
            list: &'t [Task],
            scope: Option<usize>,
            role: Option<&'t RoleRef>,
            out: &mut Vec<Candidate<'t>>,
        ) {
            for t in list {
                let role = t.origin.as_ref().and_then(|o| o.role.as_ref()).or(role);
                match &t.block {
                    Some(inner) => flat(inner, scope, role, out),
                    None => out.push(Candidate {
                        task: t,
                        scope,
                        role,
                    }),
                }
            }
        }
        let mut out = Vec::new();
        for (i, (_, list, _)) in self.dyn_handlers.iter().enumerate().rev() {
            flat(list, Some(i), None, &mut out);
        }
        let Some(play) = self.play else {
            return out;
        };
        // A role's handlers carry their role; the play's own (and the files they
        // import) make one block.
        let mut groups: Vec<(Option<&str>, Vec<Candidate<'a>>)> = Vec::new();
        for top in &play.handlers {
            let role = top
                .origin
                .as_ref()
                .and_then(|o| o.role.as_ref())
                .map(|r| r.path.as_str());
            let mut tasks = Vec::new();
            flat(std::slice::from_ref(top), None, None, &mut tasks);
            match groups.iter_mut().find(|(g, _)| *g == role) {
                Some((_, list)) => list.extend(tasks),
                None => groups.push((role, tasks)),
            }
        }
        for (_, list) in groups.into_iter().rev() {
            out.extend(list);
        }
        out
    }

    /// The names a handler's role gives it: `role : name` by the role's name and, for
    /// a collection's role, by its short name too (Ansible's `get_name` with and
    /// without the role's FQCN). Empty outside roles.
    fn handler_roles(&self, c: &Candidate<'a>) -> Vec<String> {
        // The role its file says, else the role included at run time it came with.
        let name = match (c.role, c.scope.and_then(|i| self.dyn_handlers.get(i))) {
            (Some(r), _) => r.name.clone(),
            (None, Some((_, _, s))) => match s.roles.last() {
                Some(r) => r.name.clone(),
                None => return Vec::new(),
            },
            (None, None) => return Vec::new(),
        };
        let parts: Vec<&str> = name.split('.').collect();
        match parts.as_slice() {
            [_, _, short] if parts.iter().all(|p| !p.is_empty()) => {
                vec![name.clone(), (*short).to_string()]
            }
            _ => vec![name],
        }
    }

    /// A handler's name as notifications match it: templated, the first time a
    /// notification looks at it, with the play's variables and the handler's own (not
    /// the host's: Ansible templates it without a host). A name that cannot be
    /// templated makes the handler unusable by name (warned about when it has no
    /// `listen` topic either).
    fn handler_name(&self, c: &Candidate<'a>) -> Option<String> {
        let raw = c.task.name.as_ref()?;
        if !crate::template::is_template(raw) {
            return Some(raw.clone());
        }
        let key = c.task as *const Task as usize;
        if let Some(n) = self.handler_names.borrow().get(&key) {
            return Some(n.clone());
        }
        let of_play;
        let scope = match c.scope.and_then(|i| self.dyn_handlers.get(i)) {
            Some((_, _, s)) => s,
            None => {
                of_play = self.play.map(play_scope).unwrap_or_default();
                &of_play
            }
        };
        let mut vars = Vars::new();
        for s in scope.defaults.iter().chain(&scope.vars) {
            vars.extend(s.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        vars.extend(c.task.vars.iter().map(|(k, v)| (k.clone(), v.clone())));
        self.place_vars(scope, &mut vars);
        match self.engine.render_str(raw, &self.jctx(&vars)) {
            Ok(name) => {
                self.handler_names.borrow_mut().insert(key, name.clone());
                Some(name)
            }
            Err(e) => {
                if c.task.listen.is_empty() {
                    self.warn(format!(
                        "Handler '{raw}' is unusable because it has no listen topics and the name could not be templated (host-specific variables are not supported in handler names). The error: {e}"
                    ));
                }
                None
            }
        }
    }

    /// The handlers `notification` wakes, as Ansible 2.18 finds them in `order`
    /// ([`Self::handler_search_order`]): the first handler of that name (or `role :
    /// name`), and every handler listening to it (or to `role : topic`) but the later
    /// ones of a name already found among them.
    fn finds(&self, order: &[Candidate<'a>], notification: &str) -> Vec<&'a Task> {
        let answers = |c: &Candidate<'a>, own: &str| {
            own == notification
                || self.handler_roles(c).iter().any(|r| {
                    notification
                        .strip_prefix(r.as_str())
                        .and_then(|rest| rest.strip_prefix(" : "))
                        == Some(own)
                })
        };
        let mut found = Vec::new();
        for c in order {
            if c.task.name.is_none() {
                continue;
            }
            if let Some(name) = self.handler_name(c)
                && answers(c, &name)
            {
                found.push(c.task);
                break;
            }
        }
        let mut seen: Vec<String> = Vec::new();
        for c in order {
            if !c.task.listen.iter().any(|l| answers(c, l)) {
                continue;
            }
            if let Some(name) = c.task.name.as_ref() {
                let name = self.handler_name(c).unwrap_or_else(|| name.clone());
                if seen.contains(&name) {
                    continue;
                }
                seen.push(name);
            }
            found.push(c.task);
        }
        found
    }

    /// Takes note of what a changed task notifies (its `notify`, templated with the
    /// task's variables; a template may give a list of names). A name no handler
    /// answers to ends the run with Ansible's error, or is only warned about when the
    /// play says so ([`Play::missing_handler_warns`]).
    fn notify(&mut self, task: &Task, ctx: &JValue) -> Result<(), Halt> {
        let mut names = Vec::new();
        for n in &task.notify {
            if !crate::template::is_template(n) {
                names.push(n.clone());
                continue;
            }
            match self.engine.render_value(&Value::String(n.clone()), ctx) {
                Ok(Value::Array(list)) => names.extend(list.iter().map(crate::lookups::py_str)),
                Ok(other) => names.push(crate::lookups::py_str(&other)),
                // Ansible fails the task on a `notify` it cannot template; the name as
                // written then notifies nothing, which says as much below.
                Err(_) => names.push(n.clone()),
            }
        }
        let order = self.handler_search_order();
        for n in names {
            if self.finds(&order, &n).is_empty() {
                let msg = format!(
                    "The requested handler '{n}' was not found in either the main handlers list nor in the listening handlers list"
                );
                if self.play.is_some_and(|p| p.missing_handler_warns) {
                    self.warn(msg);
                } else {
                    self.abort = Some(msg);
                    return Err(Halt::Aborted);
                }
            }
            if self.in_handlers {
                // While handlers run, a notification wakes its handlers at once.
                for h in self.finds(&order, &n) {
                    self.woken.wake(h);
                }
            } else {
                self.notified.insert(n);
            }
        }
        Ok(())
    }

    /// Gives a warning that belongs to no task's result, once.
    fn warn(&self, msg: String) {
        let mut w = self.warnings.borrow_mut();
        if w.1.insert(msg.clone()) {
            w.0.push(msg);
        }
    }

    /// Emits the warnings given since the last time.
    fn emit_warnings(&mut self) {
        let pending = std::mem::take(&mut self.warnings.get_mut().0);
        for msg in pending {
            self.sink.emit(&Event::Warning {
                v: EVENTS_VERSION,
                msg,
            });
        }
    }

    /// Runs the woken handlers of `list`, each woken no more once it starts (so one
    /// that notifies itself runs again at the next flush); a block among handlers (an
    /// imported file's, or one the playbook wrote) is looked into, its keywords applying
    /// to the handlers inside it.
    fn flush_list(&mut self, list: &'a [Task], inherited: &Inherited<'a>) -> Result<(), Halt> {
        for (i, handler) in list.iter().enumerate() {
            self.at.push(index(i));
            let ran = if let Some(block) = &handler.block {
                let entered = self.enter(handler.origin.as_ref(), inherited);
                let inner = Self::child_inherited(handler, &entered);
                self.flush_list(block, &inner)
            } else if self.woken.take(handler) {
                self.run_task(handler, inherited, true)
            } else {
                Ok(())
            };
            self.at.pop();
            ran?;
        }
        Ok(())
    }

    /// The scope inside a block or task that says where its tasks come from: its role
    /// (entered, on top of the enclosing ones) and its file.
    fn enter(&self, origin: Option<&Origin>, parent: &Inherited<'a>) -> Inherited<'a> {
        let mut inh = parent.clone();
        if let Some(o) = origin {
            if let Some(role) = &o.role {
                inh.roles.push(Rc::new(role.clone()));
            }
            if let Some(file) = &o.file {
                inh.file = Some(Rc::from(file.as_str()));
            }
        }
        inh
    }

    /// Where a task runs from, for Ansible's search path.
    fn place<'i>(&'i self, inherited: &'i Inherited<'_>) -> crate::resolve::Place<'i> {
        crate::resolve::Place {
            roles: inherited.roles.iter().map(|r| r.path.as_str()).collect(),
            task_dir: match &inherited.file {
                Some(f) => crate::resolve::dirname(f),
                None => &self.playbook_dir,
            },
            playbook_dir: &self.playbook_dir,
        }
    }

    /// `meta`: executor directives rather than modules. Like Ansible, they are not
    /// reported as tasks unless they go wrong.
    fn run_meta(
        &mut self,
        task: &'a Task,
        inherited: &Inherited<'a>,
        handler: bool,
    ) -> Result<(), Halt> {
        let started = Instant::now();
        let action = match task
            .args
            .get("_raw_params")
            .or_else(|| task.args.get("action"))
        {
            Some(Value::String(a)) => a.trim().to_string(),
            _ => String::new(),
        };
        let ctx = self.jctx(&self.context(inherited, task, &[]));
        // Ansible runs these whatever `when` says (it warns that they ignore it).
        let unconditional = matches!(
            action.as_str(),
            "noop" | "refresh_inventory" | "reset_connection"
        );
        if let Some(not_run) = self
            .conditions(task, inherited, &ctx)
            .filter(|_| !unconditional)
        {
            if not_run.get("failed") != Some(&Value::Bool(true)) {
                // Ansible shows a meta task its condition skips, but counts it in no
                // recap (its strategy sends the callback without touching the stats).
                let name = self.task_name(task, &ctx);
                let reason = self.meta_skip_reason(&action, inherited);
                self.emit_meta(&name, handler, reason.clone());
                let mut result = Vars::new();
                result.insert("msg".into(), action.clone().into());
                result.insert("skipped".into(), true.into());
                result.insert("skip_reason".into(), reason.into());
                self.emit_task(
                    &name,
                    "meta",
                    Status::Skipped,
                    false,
                    handler,
                    started,
                    Value::Object(result),
                );
                return Ok(());
            }
            let name = self.task_name(task, &ctx);
            self.record(
                &name,
                "meta",
                Status::Failed,
                false,
                handler,
                started,
                Value::Object(not_run),
            );
            return Err(Halt::Failed);
        }
        if let Some(msg) = self.meta_message(&action, inherited) {
            let name = self.task_name(task, &ctx);
            self.emit_meta(&name, handler, msg);
        }
        match action.as_str() {
            "flush_handlers" if self.in_handlers => {
                self.abort = Some("flush_handlers cannot be used as a handler".into());
                Err(Halt::Aborted)
            }
            "flush_handlers" => self.flush_handlers(),
            "end_play" | "end_batch" => Err(Halt::EndPlay),
            "end_host" => Err(Halt::EndHost),
            // Ansible refuses both when it reads the playbook; a handler's is refused by
            // the packer, this is for what only the run shows.
            "end_role" if handler || self.in_handlers => {
                self.abort = Some("Cannot execute 'end_role' from a handler".into());
                Err(Halt::Aborted)
            }
            "end_role" if self.role_instances.is_empty() => {
                self.abort = Some("Cannot execute 'end_role' from outside of a role".into());
                Err(Halt::Aborted)
            }
            "end_role" => Err(Halt::EndRole),
            "clear_facts" => {
                self.facts.clear();
                Ok(())
            }
            // Nothing to do on a host that runs its own plan: there is no connection to
            // reset, no inventory to reload and no other host's error to clear.
            "noop" | "refresh_inventory" | "reset_connection" | "clear_host_errors" => Ok(()),
            other => {
                let name = self.task_name(task, &ctx);
                let msg = format!(
                    "meta: unsupported action '{other}' (supported: flush_handlers, end_play, end_batch, end_host, end_role, clear_facts, noop, refresh_inventory, reset_connection, clear_host_errors)"
                );
                self.record(
                    &name,
                    "meta",
                    Status::Failed,
                    false,
                    handler,
                    started,
                    Value::Object(failed_result(msg)),
                );
                Err(Halt::Failed)
            }
        }
    }

    /// What Ansible's strategy says of a meta `action` it carries out on this host
    /// (`_execute_meta`'s message, which `-vv` shows as `META: ...`); `None` for an
    /// action it refuses.
    fn meta_message(&self, action: &str, inherited: &Inherited<'_>) -> Option<String> {
        let host = &self.plan.host;
        Some(match action {
            "noop" => "noop".into(),
            "flush_handlers" if !self.in_handlers => {
                format!("triggered running handlers for {host}")
            }
            "refresh_inventory" => "inventory successfully refreshed".into(),
            "clear_facts" => "facts cleared".into(),
            "clear_host_errors" => "cleared host errors".into(),
            "end_batch" => "ending batch".into(),
            "end_play" => "ending play".into(),
            "end_host" => format!("ending play for {host}"),
            "end_role" => format!(
                "ending role {} for {host}",
                inherited.roles.last().map_or("", |r| r.name.as_str())
            ),
            "reset_connection" => "reset connection".into(),
            _ => return None,
        })
    }

    /// Why a meta `action` whose condition is false did nothing, in Ansible's words.
    fn meta_skip_reason(&self, action: &str, inherited: &Inherited<'_>) -> String {
        let host = &self.plan.host;
        let rest = match action {
            "flush_handlers" => format!(", not running handlers for {host}"),
            "clear_facts" => format!(", not clearing facts and fact cache for {host}"),
            "clear_host_errors" => format!(", not clearing host error state for {host}"),
            "end_batch" => ", continuing current batch".into(),
            "end_play" => ", continuing play".into(),
            "end_host" => format!(", continuing execution for {host}"),
            // Ansible's message has no separator here.
            "end_role" => format!(
                "continuing role {} for {host}",
                inherited.roles.last().map_or("", |r| r.name.as_str())
            ),
            _ => String::new(),
        };
        format!("{action} conditional evaluated to False{rest}")
    }

    /// Tells the deployer a meta task was reached ([`Event::Meta`]).
    fn emit_meta(&mut self, name: &str, handler: bool, msg: String) {
        self.sink.emit(&Event::Meta {
            v: EVENTS_VERSION,
            name: name.to_string(),
            handler,
            role: self.shown_role.clone(),
            msg,
        });
    }

    fn run_list(
        &mut self,
        tasks: &'a [Task],
        inherited: &Inherited<'a>,
        handler: bool,
    ) -> Result<(), Halt> {
        for (i, task) in tasks.iter().enumerate() {
            self.at.push(index(i));
            let ran = self.run_task(task, inherited, handler);
            self.at.pop();
            ran?;
        }
        Ok(())
    }

    fn child_inherited(task: &'a Task, parent: &Inherited<'a>) -> Inherited<'a> {
        let mut inh = parent.clone();
        inh.vars.push(Scope::Plan(&task.vars));
        if let Some(w) = &task.when {
            inh.when.push(w);
        }
        // A keyword set on the block replaces what the enclosing one says.
        inh.become_ = task.become_.as_ref().or(parent.become_);
        inh.become_user = task.become_user.as_deref().or(parent.become_user);
        inh.environment.extend(task.environment.as_ref());
        inh.ignore_errors = task.ignore_errors.as_ref().or(parent.ignore_errors);
        inh.ignore_unreachable = task
            .ignore_unreachable
            .as_ref()
            .or(parent.ignore_unreachable);
        inh.check_mode = task.check_mode.as_ref().or(parent.check_mode);
        inh.diff = task.diff.as_ref().or(parent.diff);
        inh.no_log = task.no_log.as_ref().or(parent.no_log);
        inh.timeout = task.timeout.as_ref().or(parent.timeout);
        inh.remote_user = task.remote_user.as_deref().or(parent.remote_user);
        if !task.tags.is_empty() {
            let mut tags = (*parent.tags).clone();
            tags.extend(task.tags.iter().cloned());
            inh.tags = Rc::new(tags);
        }
        inh
    }

    fn run_block(
        &mut self,
        task: &'a Task,
        block: &'a [Task],
        parent: &Inherited<'a>,
        handler: bool,
    ) -> Result<(), Halt> {
        let inh = Self::child_inherited(task, parent);
        let mut result = self.run_section(SECTION_BLOCK, block, &inh, handler);
        if result == Err(Halt::Fatal) && !task.rescue.is_empty() {
            // Failed by another host's failure: the rescue runs, as Ansible's iterator
            // sends a host marked failed there, but nothing of this host failed.
            result = self.run_section(SECTION_RESCUE, &task.rescue, &inh, handler);
        } else if result == Err(Halt::Failed) && !task.rescue.is_empty() {
            // The failure that rescue handled no longer counts against the host; but a
            // handler's (a flush in the block) still does, and rescues nothing in the
            // recap, as Ansible counts it.
            if !std::mem::take(&mut self.failed_handler) {
                self.recap.rescued += 1;
                self.recap.failed = self.recap.failed.saturating_sub(1);
            }
            // As Ansible does, the rescue section sees what failed.
            if let Some((name, action, result)) = self.failure.take() {
                self.host_facts.insert(
                    "ansible_failed_task".into(),
                    json!({"name": name, "action": action}),
                );
                self.host_facts
                    .insert("ansible_failed_result".into(), unsafe_data(result));
            }
            result = self.run_section(SECTION_RESCUE, &task.rescue, &inh, handler);
        }
        // `end_play` / `end_host` leave at once; `always` is for failures.
        if matches!(
            result,
            Err(Halt::EndPlay
                | Halt::EndHost
                | Halt::EndRole
                | Halt::Stopped
                | Halt::Aborted
                | Halt::Unreachable)
        ) {
            return result;
        }
        let always = self.run_section(SECTION_ALWAYS, &task.always, &inh, handler);
        result.and(always)
    }

    /// [`Self::run_list`] for one part of what holds the tasks (a block's section, a
    /// role's dependencies or tasks, one inclusion), `part` being its step in the path.
    fn run_section(
        &mut self,
        part: u32,
        tasks: &'a [Task],
        inherited: &Inherited<'a>,
        handler: bool,
    ) -> Result<(), Halt> {
        self.at.push(part);
        let ran = self.run_list(tasks, inherited, handler);
        self.at.pop();
        ran
    }

    /// The next step at the path's last level (a handler list of a flush after the
    /// play's own).
    fn bump(&mut self) {
        if let Some(last) = self.at.last_mut() {
            *last = last.saturating_add(1);
        }
    }

    /// A template context over `vars`: variables whose values are templates render
    /// where they are used, as Ansible's do (see [`crate::lazyvars`]); the magic
    /// variables rank above them.
    fn jctx(&self, vars: &Vars) -> JValue {
        if !self.hostvars_used {
            return crate::lazyvars::context_with(vars, &self.globals, &self.engine);
        }
        let mut globals = self.globals.clone();
        let mut hostvars = crate::lazyvars::HostVars::new(
            &self.plan.host,
            self.own_vars(),
            &self.plan.shared,
            self.globals.clone(),
            &self.engine,
        );
        if !self.added_view.is_empty() {
            hostvars = hostvars.with_added(Arc::clone(&self.added_view));
        }
        if self.share {
            hostvars = hostvars.with_peers(crate::lazyvars::Peers {
                channel: self.channel.clone(),
                play: self.play_index,
                at: self.at.clone(),
                cache: self.peers.clone(),
            });
        }
        globals.push(("hostvars".into(), JValue::from_object(hostvars)));
        crate::lazyvars::context_with(vars, &globals, &self.engine)
    }

    /// What this host knows of itself outside any play, as `hostvars[inventory_hostname]`
    /// gives it: inventory variables, facts, `set_fact`/`include_vars` and registered
    /// values.
    fn own_vars(&self) -> Vars {
        let mut vars = self.plan.host_vars.clone();
        vars.extend(self.learned_vars());
        vars
    }

    /// What this host knows of itself beyond its inventory variables: facts,
    /// `set_fact`/`include_vars` and registered values (what other hosts' `hostvars`
    /// get from the deployer), over the variables of groups `group_by` put it in.
    fn learned_vars(&self) -> Vars {
        let mut vars = self.joined_vars.clone();
        vars.extend(
            self.facts
                .iter()
                .map(|(k, v)| (k.clone(), unsafe_data(v.clone()))),
        );
        // Ansible defines `ansible_facts` always: `{}` before anything is gathered
        // (`when: ansible_facts == {}` is how roles ask whether to gather).
        vars.insert(
            "ansible_facts".into(),
            unsafe_data(facts::unprefixed(&self.facts).into()),
        );
        vars.extend(self.host_facts.iter().map(|(k, v)| (k.clone(), v.clone())));
        vars
    }

    /// Tells the deployer where this host stands in the play and what changed of what
    /// it knows of itself, when other hosts may read it (and a deployer listens). The
    /// other hosts' answers cached for the previous position are dropped.
    fn publish(&mut self) {
        self.peers.clear();
        if !self.share || self.channel.is_none() {
            return;
        }
        let now = self.learned_vars();
        let set: serde_json::Map<String, Value> = now
            .iter()
            .filter(|(k, v)| self.published.get(*k) != Some(*v))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let unset: Vec<String> = self
            .published
            .keys()
            .filter(|k| !now.contains_key(*k))
            .cloned()
            .collect();
        self.sink.emit(&Event::Vars {
            v: EVENTS_VERSION,
            play: self.play_index,
            at: self.at.clone(),
            set,
            unset,
        });
        self.published = now;
    }

    /// The magic variables of play number `index`: the run's (`omit`,
    /// `ansible_version`, tags, inventory), the play's from its playbook
    /// (`playbook_dir`, role names), its hosts' (`ansible_play_hosts`, ...), `groups`
    /// and `ansible_diff_mode`.
    fn play_globals(&self, play: &Play, index: usize) -> Vec<(String, JValue)> {
        fn put(out: &mut Vec<(String, JValue)>, k: &str, v: JValue) {
            out.retain(|(name, _)| name != k);
            out.push((k.to_string(), v));
        }
        let mut out: Vec<(String, JValue)> = Vec::new();
        for (k, v) in self
            .plan
            .magic
            .iter()
            .chain(play.magic.iter())
            .chain(self.plan.shared.play_vars.get(index).into_iter().flatten())
        {
            put(&mut out, k, crate::template::to_jvalue(v));
        }
        // The packer carries the play's hosts once; every host runs the whole play, so
        // the batch and the hosts left are the same list.
        if let Some((_, hosts)) = out.iter().find(|(k, _)| k == "ansible_play_hosts_all") {
            let hosts = hosts.clone();
            for alias in ["ansible_play_hosts", "ansible_play_batch", "play_hosts"] {
                if !out.iter().any(|(k, _)| k == alias) {
                    out.push((alias.to_string(), hosts.clone()));
                }
            }
        }
        let groups = self.groups.as_ref().unwrap_or(&self.plan.shared.groups);
        if !groups.is_empty() {
            put(&mut out, "groups", JValue::from_serialize(groups));
        }
        if self.groups.is_some() {
            put(
                &mut out,
                "group_names",
                JValue::from_serialize(self.group_names()),
            );
        }
        put(
            &mut out,
            "ansible_diff_mode",
            JValue::from(self.plan.diff_mode || self.opts.diff_mode),
        );
        if !self.plan.magic.contains_key("omit") {
            put(&mut out, "omit", JValue::from(self.omit.as_str()));
        }
        out
    }

    /// The variables visible to a task, lowest precedence first.
    fn context(&self, inherited: &Inherited<'_>, task: &Task, extra: &[(&str, &Value)]) -> Vars {
        let mut vars = if inherited.defaults.is_empty() && self.public_defaults.is_empty() {
            self.plan.host_vars.clone()
        } else {
            // Role defaults rank below everything else.
            let mut v = self.public_defaults.clone();
            for scope in &inherited.defaults {
                v.extend(scope.iter().map(|(k, v)| (k.clone(), v.clone())));
            }
            v.extend(
                self.plan
                    .host_vars
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone())),
            );
            v
        };
        vars.extend(self.joined_vars.clone());
        // Facts, module results and loop items are data, never templated (Ansible
        // marks them unsafe): they enter templates marked so.
        vars.extend(
            self.facts
                .iter()
                .map(|(k, v)| (k.clone(), unsafe_data(v.clone()))),
        );
        // Ansible defines `ansible_facts` always: `{}` before anything is gathered
        // (`when: ansible_facts == {}` is how roles ask whether to gather).
        vars.insert(
            "ansible_facts".into(),
            unsafe_data(facts::unprefixed(&self.facts).into()),
        );
        if let Some((play, rest)) = inherited.vars.split_first() {
            vars.extend(play.iter().map(|(k, v)| (k.clone(), v.clone())));
            // Public role vars rank with the play's role vars, above its vars.
            vars.extend(self.public_vars.iter().map(|(k, v)| (k.clone(), v.clone())));
            for scope in rest {
                vars.extend(scope.iter().map(|(k, v)| (k.clone(), v.clone())));
            }
        }
        vars.extend(task.vars.iter().map(|(k, v)| (k.clone(), v.clone())));
        vars.extend(self.host_facts.iter().map(|(k, v)| (k.clone(), v.clone())));
        // Ansible's `ansible_check_mode` is the run's `--check`, not a task's `check_mode`.
        vars.insert(
            "ansible_check_mode".into(),
            (self.plan.check_mode || self.opts.check_mode).into(),
        );
        self.place_vars(inherited, &mut vars);
        for (k, v) in extra {
            vars.insert((*k).to_string(), unsafe_data((*v).clone()));
        }
        vars
    }

    /// The magic variables of where a task runs: `ansible_search_path`, and in a role
    /// `role_name`, `role_path`, `ansible_role_name` and, for a role a task of another
    /// role imported or included, `ansible_parent_role_names`/`_paths` (the enclosing
    /// roles, innermost first, as far as roles were entered by tasks).
    fn place_vars(&self, inherited: &Inherited<'_>, vars: &mut Vars) {
        let search: Vec<Value> = self
            .place(inherited)
            .search_path()
            .into_iter()
            .map(Value::String)
            .collect();
        vars.insert("ansible_search_path".into(), Value::Array(search));
        let Some(role) = inherited.roles.last() else {
            return;
        };
        vars.insert("role_name".into(), role.name.clone().into());
        vars.insert("ansible_role_name".into(), role.name.clone().into());
        vars.insert("role_path".into(), role.path.clone().into());
        // The collection a role comes from (`ns.coll`), "" for a role of its own.
        vars.insert(
            "ansible_collection_name".into(),
            collection_of(&role.path).unwrap_or_default().into(),
        );
        let mut names = Vec::new();
        let mut paths = Vec::new();
        let mut i = inherited.roles.len();
        while i > 1 {
            let Some(r) = inherited.roles.get(i - 1) else {
                break;
            };
            if !r.from_task {
                break;
            }
            if let Some(parent) = inherited.roles.get(i - 2) {
                names.push(Value::String(parent.name.clone()));
                paths.push(Value::String(parent.path.clone()));
            }
            i -= 1;
        }
        if !names.is_empty() {
            vars.insert("ansible_parent_role_names".into(), Value::Array(names));
            vars.insert("ansible_parent_role_paths".into(), Value::Array(paths));
        }
    }

    /// Whether the task runs in check mode: its own `check_mode` (or the enclosing
    /// block's or play's), evaluated with `ctx`, else the run's.
    fn check_mode(
        &self,
        inherited: &Inherited<'_>,
        task: &Task,
        ctx: &JValue,
    ) -> Result<bool, String> {
        let run = self.plan.check_mode || self.opts.check_mode;
        match task.check_mode.as_ref().or(inherited.check_mode) {
            None => Ok(run),
            Some(f) => Ok(keywords::flag(&self.engine, f, ctx, "check_mode")?.unwrap_or(run)),
        }
    }

    /// Whether the task reports differences: its own `diff` (or the enclosing block's or
    /// play's), evaluated with `ctx`, else the run's `--diff`.
    fn diff_mode(
        &self,
        inherited: &Inherited<'_>,
        task: &Task,
        ctx: &JValue,
    ) -> Result<bool, String> {
        let run = self.plan.diff_mode || self.opts.diff_mode;
        match task.diff.as_ref().or(inherited.diff) {
            None => Ok(run),
            Some(f) => Ok(keywords::flag(&self.engine, f, ctx, "diff")?.unwrap_or(run)),
        }
    }

    /// A boolean keyword of the task (or inherited) evaluated with `ctx`; `unset` when
    /// neither says anything or it renders to null, `on_error` when it cannot be
    /// evaluated (the error is reported by [`Self::keyword_error`] before the module runs).
    fn task_flag(
        &self,
        own: Option<&Flag>,
        inherited: Option<&Flag>,
        ctx: &JValue,
        name: &str,
        on_error: bool,
    ) -> bool {
        match own.or(inherited) {
            None => false,
            Some(f) => {
                keywords::flag(&self.engine, f, ctx, name).map_or(on_error, |v| v.unwrap_or(false))
            }
        }
    }

    /// The first templated keyword of the task that cannot be evaluated, as Ansible's
    /// message: the task then fails without running its module.
    fn keyword_error(
        &self,
        task: &Task,
        inherited: &Inherited<'_>,
        ctx: &JValue,
    ) -> Option<String> {
        let flags = [
            (
                "ignore_errors",
                task.ignore_errors.as_ref().or(inherited.ignore_errors),
            ),
            ("no_log", task.no_log.as_ref().or(inherited.no_log)),
            ("run_once", task.run_once.as_ref()),
        ];
        for (name, f) in flags {
            if let Some(Err(e)) = f.map(|f| keywords::flag(&self.engine, f, ctx, name)) {
                return Some(e);
            }
        }
        None
    }

    /// A `remote_user` the host's connection cannot honour, as the task's failure
    /// message: a local connection ignores the keyword (Ansible's runs as whoever runs
    /// it); any other connection logged in once, as the inventory's `ansible_user`.
    fn remote_user_error(
        &self,
        task: &Task,
        inherited: &Inherited<'_>,
        vars: &Vars,
        ctx: &JValue,
    ) -> Option<String> {
        let wanted = task.remote_user.as_deref().or(inherited.remote_user)?;
        let connection = vars.get("ansible_connection").and_then(Value::as_str);
        if matches!(connection, Some("local")) || task.delegate_to.is_some() {
            return None;
        }
        let wanted = match keywords::text(&self.engine, wanted, ctx, "remote_user") {
            Ok(w) => w,
            Err(e) => return Some(e),
        };
        let login = vars.get("ansible_user").and_then(Value::as_str);
        if login == Some(wanted.as_str()) {
            return None;
        }
        Some(format!(
            "remote_user '{wanted}' asks for a login as another user than this host's connection ({}); the runner cannot change the user it was started as: set ansible_user in the inventory",
            login.map_or_else(|| "the inventory's user".to_string(), |l| format!("'{l}'"))
        ))
    }

    fn run_task(
        &mut self,
        task: &'a Task,
        inherited: &Inherited<'a>,
        handler: bool,
    ) -> Result<(), Halt> {
        // The role shown with the task's events (a role's handler says its role itself);
        // an include's own event, after the tasks it brought in, shows its own again.
        let role = match task.origin.as_ref().and_then(|o| o.role.as_ref()) {
            Some(r) => Some(r.name.clone()),
            None => inherited.roles.last().map(|r| r.name.clone()),
        };
        if task.block.is_none() {
            // Where it stands now, with what the tasks before this one set: other hosts
            // reading this one's `hostvars` from here on see that.
            self.publish();
        }
        let outer = std::mem::replace(&mut self.shown_role, role);
        let outcome = self.run_task_here(task, inherited, handler);
        self.shown_role = outer;
        // In an `any_errors_fatal` (or `max_fail_percentage`) play with other hosts,
        // every host waits for the others after each task (Ansible's linear strategy),
        // and fails when one of them failed it (or too many have failed). A block is not a task; a host already halted does not wait.
        let fleet = self.play.is_some_and(|p| p.fleet.is_some());
        if !fleet
            || task.block.is_some()
            || !matches!(outcome, Ok(()) | Err(Halt::Failed | Halt::EndRole))
        {
            return outcome;
        }
        let failed = outcome == Err(Halt::Failed);
        // While it waits, other hosts read it as it stands: past this task, with what
        // the task set (a step beyond every one inside the task).
        self.at.push(u32::MAX);
        self.publish();
        self.at.pop();
        match self.ask(RequestKind::Barrier, task, None, |r| r.failed = failed) {
            Ok(answer) if answer.stop && !failed => Err(Halt::Fatal),
            Ok(_) => outcome,
            Err(e) => {
                // Without the deployer each host runs alone, as a single host would.
                let _ = writeln!(
                    std::io::stderr(),
                    "rustle-runner: any_errors_fatal: cannot learn whether another host failed task '{}': {e}",
                    task.display_name()
                );
                outcome
            }
        }
    }

    /// Runs `body`, a use of a role (`instance`; `None`: no role's), as Ansible's
    /// iterator does: not at all when that use has completed on this host already and
    /// allows no duplicates; otherwise it completes when it comes to its end (or to an
    /// `end_role`) having run a task here.
    fn in_instance(
        &mut self,
        instance: Option<&crate::plan::RoleInstance>,
        body: impl FnOnce(&mut Self) -> Result<(), Halt>,
    ) -> Result<(), Halt> {
        let Some(instance) = instance else {
            return body(self);
        };
        if !instance.allow_duplicates && self.roles_completed.contains(&instance.key) {
            return Ok(());
        }
        self.role_instances.push(instance.key.clone());
        let outcome = match body(self) {
            Err(Halt::EndRole) => Ok(()),
            other => other,
        };
        self.role_instances.pop();
        if outcome.is_ok() && self.roles_had_run.contains(&instance.key) {
            self.roles_completed.insert(instance.key.clone());
        }
        outcome
    }

    /// Tells the deployer this host has left an `any_errors_fatal` play.
    fn play_done(&mut self, play: &Play) {
        let marker = Task {
            name: Some(play.name.clone()),
            ..Task::default()
        };
        let _ = self.ask(RequestKind::PlayDone, &marker, None, |_| {});
    }

    /// [`Self::run_task`] before any waiting for the other hosts.
    fn run_task_here(
        &mut self,
        task: &'a Task,
        inherited: &Inherited<'a>,
        handler: bool,
    ) -> Result<(), Halt> {
        if self.sink.stop_requested() {
            return Err(Halt::Stopped);
        }
        let entered;
        let inherited = match &task.origin {
            Some(o) => {
                entered = self.enter(Some(o), inherited);
                &entered
            }
            None => inherited,
        };
        // What an include brought in is filtered by tags as Ansible filters it when it
        // loads the file: a block stays (its tasks are judged one by one), a task runs
        // when its own tags and those around it are selected. Handlers are not filtered.
        if inherited.filter_tags && !handler && task.block.is_none() {
            let mut tags = (*inherited.tags).clone();
            tags.extend(task.tags.iter().cloned());
            if !self.selection.should_run(&tags) {
                return Ok(());
            }
        }
        if let Some(block) = &task.block {
            let instance = task.origin.as_ref().and_then(|o| o.instance.as_ref());
            return self.in_instance(instance, |this| {
                this.run_block(task, block, inherited, handler)
            });
        }
        match task.module_name() {
            "meta" => return self.run_meta(task, inherited, handler),
            "include_tasks" | "include_role" => return self.run_include(task, inherited, handler),
            _ => {}
        }
        let started = Instant::now();
        let base = self.context(inherited, task, &[]);
        let ctx = self.jctx(&base);
        let name = self.task_name(task, &ctx);
        let module = task.module_name().to_string();

        // `run_once`: the first host of the batch to get here runs the task; the others
        // take its result, as Ansible hands it to every host of the batch.
        let mut once_mine = false;
        let early = if self.task_flag(task.run_once.as_ref(), None, &ctx, "run_once", false) {
            match self.once_turn(task) {
                Ok(OnceTurn::Mine) => {
                    once_mine = true;
                    None
                }
                Ok(OnceTurn::Done(result)) => {
                    return self.take_once_result(task, inherited, &ctx, result);
                }
                Err(msg) => Some(failed_result(format!(
                    "task '{}': {msg}",
                    task.display_name()
                ))),
            }
        } else {
            None
        };
        let result = if let Some(r) = early {
            r
        } else {
            match self.throttle_turn(task, &ctx) {
                Err(msg) => failed_result(format!("task '{}': {msg}", task.display_name())),
                Ok(held) => {
                    let r = self.task_result(task, inherited, &ctx);
                    if held {
                        let _ = self.ask(RequestKind::ThrottleDone, task, None, |_| {});
                    }
                    r
                }
            }
        };
        if once_mine {
            self.report_once(task, &result);
        }
        self.after_result(
            task, inherited, handler, started, &ctx, name, module, result,
        )
    }

    /// The result of running a task: once, or for each item of its loop.
    fn task_result(&mut self, task: &'a Task, inherited: &Inherited<'a>, ctx: &JValue) -> Vars {
        match &task.loop_ {
            None => self.run_once(task, inherited, &[]),
            Some(spec) => match self.loop_items(task, spec, ctx) {
                Ok(items) => self.run_loop(task, inherited, &items),
                // Ansible defers a loop that fails to render (an undefined variable)
                // until after `when`: `loop: "{{ x }}"` with `when: x is defined` skips.
                Err((msg, true)) => self
                    .conditions(task, inherited, ctx)
                    .filter(|r| r.get("skipped") == Some(&Value::Bool(true)))
                    .unwrap_or_else(|| failed_result(msg)),
                Err((msg, false)) => failed_result(msg),
            },
        }
    }

    /// Asks the deployer whose turn a `run_once` task is.
    fn once_turn(&mut self, task: &Task) -> Result<OnceTurn, String> {
        let answer = self.ask(RequestKind::RunOnce, task, None, |_| {})?;
        if answer.run {
            return Ok(OnceTurn::Mine);
        }
        match answer.result {
            Some(Value::Object(r)) => Ok(OnceTurn::Done(r)),
            _ => Err("the deployer's answer to run_once holds no result".into()),
        }
    }

    /// Waits for this host's turn at a `throttle` task; true when the deployer gave one
    /// (to hand back after the task). Without a channel the host runs alone: no wait.
    fn throttle_turn(&mut self, task: &Task, ctx: &JValue) -> Result<bool, String> {
        let Some(t) = &task.throttle else {
            return Ok(false);
        };
        let limit = keywords::int(&self.engine, t, ctx, "throttle")?.unwrap_or(0);
        if limit <= 0 {
            return Ok(false);
        }
        let limit = limit.unsigned_abs();
        match self.ask(RequestKind::Throttle, task, None, |r| r.limit = Some(limit)) {
            Ok(_) => Ok(true),
            // A runner alone (no deployer to count the hosts) is one host: its turn.
            Err(e) if e.starts_with("needs the deployer") => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Sends the result of a `run_once` task this host ran, for the other hosts.
    fn report_once(&mut self, task: &Task, result: &Vars) {
        let result = Value::Object(result.clone());
        if let Err(e) = self.ask(RequestKind::RunOnceDone, task, None, |r| {
            r.result = Some(result)
        }) {
            // The others then learn from the deployer that this host never reported.
            let _ = writeln!(
                std::io::stderr(),
                "rustle-runner: cannot hand the result of run_once task '{}' to the other hosts: {e}",
                task.display_name()
            );
        }
    }

    /// A `run_once` task another host ran: its result is registered here and its facts
    /// set, as Ansible does for every host of the batch; nothing is reported or counted
    /// (the host that ran it did). A failure stops this host too, unless ignored.
    fn take_once_result(
        &mut self,
        task: &'a Task,
        inherited: &Inherited<'a>,
        ctx: &JValue,
        result: Vars,
    ) -> Result<(), Halt> {
        if let Some(Value::Object(f)) = result.get("ansible_facts")
            && !task.delegate_facts
        {
            self.absorb_facts(task.module_name(), f.clone());
        }
        // `add_host` runs once for the batch (Ansible bypasses the host loop); every
        // host's `groups` then has the new host.
        let added: Vec<Vars> = match (task.module_name(), &task.loop_) {
            ("add_host", None) => result
                .get("add_host")
                .and_then(Value::as_object)
                .cloned()
                .into_iter()
                .collect(),
            ("add_host", Some(_)) => match result.get("results") {
                Some(Value::Array(items)) => items
                    .iter()
                    .filter_map(|r| r.get("add_host").and_then(Value::as_object).cloned())
                    .collect(),
                _ => Vec::new(),
            },
            _ => Vec::new(),
        };
        for info in &added {
            self.apply_add_host(info);
        }
        if let Some(reg) = &task.register {
            self.host_facts
                .insert(reg.clone(), unsafe_data(Value::Object(result.clone())));
        }
        let failed = status_of(&result) == Status::Failed
            && !self.task_flag(
                task.ignore_errors.as_ref(),
                inherited.ignore_errors,
                ctx,
                "ignore_errors",
                true,
            );
        if failed {
            self.failed_handler = false;
            self.failure = Some((
                task.display_name(),
                task.module_name().to_string(),
                Value::Object(result),
            ));
            return Err(Halt::Failed);
        }
        Ok(())
    }

    /// Sends one request to the deployer (`fill` adds what its kind carries) and waits
    /// for the answer; an answer that refuses is an error.
    fn ask(
        &mut self,
        kind: RequestKind,
        task: &Task,
        vars: Option<Value>,
        fill: impl FnOnce(&mut Request),
    ) -> Result<crate::events::Answer, String> {
        let mut request = Request::new(kind, task.channel_id(), self.play_index);
        request.vars = vars;
        fill(&mut request);
        let answer = self.sink.request(request)?;
        match answer.error {
            Some(e) => Err(e),
            None => Ok(answer),
        }
    }

    /// Renders with `render`, asking the deployer for the controller lookups the render
    /// met without an answer (arguments only this host knows: `lookup('pipe', ...)` of
    /// a fact) and rendering again with their answers, as Ansible runs such a lookup on
    /// the controller while it templates. Without a channel the first error stands.
    fn with_controller<T>(
        &mut self,
        task: &Task,
        render: impl Fn(&Engine) -> Result<T, crate::template::TemplateError>,
    ) -> Result<T, crate::template::TemplateError> {
        // A render may reach a further call only once an earlier one is answered (a
        // lookup's terms made from another lookup): a few rounds, then the error stands.
        let _ = self.lookups.take_pending();
        let mut rounds = 0;
        loop {
            let rendered = render(&self.engine);
            let pending = self.lookups.take_pending();
            // Asked even when the render succeeded: `errors='ignore'` hid the failure.
            if pending.is_empty() || rounds == 4 {
                return rendered;
            }
            rounds += 1;
            for call in pending {
                let asked = self.ask(RequestKind::Lookup, task, None, |r| {
                    r.lookup = Some(Box::new(call.clone()));
                });
                match asked {
                    Ok(crate::events::Answer {
                        lookup: Some(answer),
                        ..
                    }) if answer.lookup == call.lookup
                        && answer.terms == call.terms
                        && answer.options == call.options =>
                    {
                        self.lookups.learn(answer);
                    }
                    // No channel, or an answer that is not one: the render's own error
                    // (naming the call and why it needs the controller) stands.
                    _ => return rendered,
                }
            }
        }
    }

    /// Where a delegated task runs: `None` here (not delegated, or delegated to this
    /// host itself), `Some(name)` elsewhere: on the controller (one of
    /// [`CONTROLLER_NAMES`]) or on another inventory host, both through the deployer.
    fn delegation(&self, task: &Task, ctx: &JValue) -> Result<Option<String>, String> {
        let Some(to) = &task.delegate_to else {
            return Ok(None);
        };
        let to = self
            .engine
            .render_str(to, ctx)
            .map_err(|e| format!("delegate_to: {e}"))?;
        let to = to.trim().to_string();
        // `delegate_to: "{{ x | default(omit) }}"`: no delegation, as in Ansible.
        if to == self.plan.host || to == self.omit {
            return Ok(None);
        }
        if to.is_empty() {
            return Err("delegate_to renders to an empty host name".into());
        }
        Ok(Some(to))
    }

    /// Has the deployer run a delegated task's module on the controller or on the
    /// inventory host `to`, with this host's variables, and takes its result as if the
    /// module had run here.
    fn delegate(
        &mut self,
        task: &Task,
        inherited: &Inherited<'_>,
        vars: &Vars,
        ctx: &JValue,
        to: &str,
    ) -> Vars {
        let check_mode = match self.check_mode(inherited, task, ctx) {
            Ok(c) => c,
            Err(msg) => return failed_result(msg),
        };
        // Another host: the deployer connects to it with its own connection variables,
        // and `become` there is what the task's keywords ask for.
        let (delegate_to, become_user) = if CONTROLLER_NAMES.contains(&to) {
            (None, None)
        } else {
            match self.become_keywords(task, inherited, ctx) {
                Ok(user) => (Some(to.to_string()), user),
                Err(msg) => return failed_result(msg),
            }
        };
        let roles: Vec<String> = inherited.roles.iter().map(|r| r.path.clone()).collect();
        let file = inherited.file.as_deref().map(str::to_string);
        let asked = self.ask(
            RequestKind::Delegate,
            task,
            Some(Value::Object(vars.clone())),
            |r| {
                r.roles = roles;
                r.file = file;
                r.check_mode = check_mode;
                r.delegate_to = delegate_to;
                r.become_user = become_user;
            },
        );
        let result = match asked {
            Ok(a) => match a.result {
                Some(Value::Object(r)) => r,
                _ => return failed_result("the deployer's answer holds no result".into()),
            },
            Err(e) => {
                return failed_result(format!("task '{}': {e}", task.display_name()));
            }
        };
        if !task.delegate_facts
            && let Some(Value::Object(f)) = result.get("ansible_facts")
        {
            let f = f.clone();
            self.absorb_facts(task.module_name(), f);
        }
        result
    }

    /// `group_by`: puts this host in the group `key` (spaces become dashes), under
    /// `parents` (default `all`), for the rest of the run's `groups` and `group_names`;
    /// changed when that is new, as Ansible's strategy decides.
    fn group_by(&mut self, args: &Vars) -> Result<Outcome, ModuleError> {
        let key = match args.get("key") {
            Some(Value::String(s)) => s.clone(),
            Some(v @ (Value::Number(_) | Value::Bool(_))) => v.to_string(),
            _ => {
                return Err(ModuleError::BadArgs(
                    "the 'key' param is required when using group_by".into(),
                ));
            }
        };
        let parents: Vec<String> = match args.get("parents") {
            None | Some(Value::Null) => vec!["all".into()],
            Some(Value::String(s)) => vec![s.clone()],
            Some(Value::Array(l)) => l
                .iter()
                .map(|v| match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .collect(),
            Some(other) => vec![other.to_string()],
        };
        let group = key.replace(' ', "-");
        let parents: Vec<String> = parents.iter().map(|p| p.replace(' ', "-")).collect();
        let host = self.plan.host.clone();
        let groups = self.groups_mut();
        let mut changed = !groups.contains_key(&group);
        let mut joined = Vec::new();
        for name in parents.iter().chain(std::iter::once(&group)) {
            let members = groups.entry(name.clone()).or_default();
            if !members.contains(&host) {
                members.push(host.clone());
                changed |= name == &group;
                joined.push(name.clone());
            }
        }
        // The inventory variables of the groups it joined apply from now on.
        for name in joined {
            if let Some(vars) = self.plan.group_by_vars.get(&name) {
                self.joined_vars.extend(vars.clone());
            }
        }
        self.refresh_groups();
        let mut data = Vars::new();
        data.insert("add_group".into(), group.into());
        data.insert(
            "parent_groups".into(),
            Value::Array(parents.into_iter().map(Value::String).collect()),
        );
        Ok(Outcome {
            changed,
            data,
            ..Outcome::default()
        })
    }

    /// `add_host`: adds a host (`name`, `host` or `hostname`) to `all` and to `groups`
    /// for the rest of the run's `groups`; changed when that is new. Its other arguments
    /// are its variables, reported in the result (`hostvars` does not get them).
    fn add_host(&mut self, args: &Vars) -> Result<Outcome, ModuleError> {
        let name = ["name", "hostname", "host"]
            .iter()
            .find_map(|k| args.get(*k))
            .map(|v| match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .ok_or_else(|| {
                ModuleError::BadArgs("name, host or hostname needs to be provided".into())
            })?;
        let wanted: Vec<String> = match ["groupname", "groups", "group"]
            .iter()
            .find_map(|k| args.get(*k))
        {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::String(s)) => s
                .split(',')
                .map(|g| g.trim().to_string())
                .filter(|g| !g.is_empty())
                .collect(),
            Some(Value::Array(l)) => l
                .iter()
                .map(|v| match v {
                    Value::String(s) => s.trim().to_string(),
                    other => other.to_string(),
                })
                .collect(),
            Some(_) => {
                return Err(ModuleError::BadArgs(
                    "Groups must be specified as a list.".into(),
                ));
            }
        };
        let mut host_vars: Vars = args
            .iter()
            .filter(|(k, _)| !["name", "hostname", "groupname", "groups"].contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        // `name: host:port` names the host and its SSH port, as Ansible's parse_address.
        let (name, port) = host_and_port(&name);
        if let Some(port) = port {
            host_vars.insert("ansible_ssh_port".into(), port.into());
        }
        let mut info = Vars::new();
        info.insert("host_name".into(), name.clone().into());
        info.insert(
            "groups".into(),
            Value::Array(wanted.iter().cloned().map(Value::String).collect()),
        );
        info.insert("host_vars".into(), Value::Object(host_vars));
        let changed = self.apply_add_host(&info);
        let mut data = Vars::new();
        data.insert("add_host".into(), Value::Object(info));
        Ok(Outcome {
            changed,
            data,
            ..Outcome::default()
        })
    }

    /// Applies an `add_host` result (`host_name`, `groups`) to this run's `groups`;
    /// true when it changed them.
    fn apply_add_host(&mut self, info: &Vars) -> bool {
        let Some(Value::String(name)) = info.get("host_name") else {
            return false;
        };
        let name = name.clone();
        // Its variables: a new one or a new value is a change, as in Ansible.
        let mut changed = false;
        if let Some(Value::Object(given)) = info.get("host_vars") {
            let vars = self.added_hosts.entry(name.clone()).or_default();
            for (k, v) in given {
                if vars.get(k) != Some(v) {
                    vars.insert(k.clone(), v.clone());
                    changed = true;
                }
            }
        }
        let wanted: Vec<String> = match info.get("groups") {
            Some(Value::Array(l)) => l
                .iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect(),
            _ => Vec::new(),
        };
        let groups = self.groups_mut();
        let known = groups.values().any(|m| m.contains(&name));
        let join = |groups: &mut std::collections::BTreeMap<String, Vec<String>>, g: &str| {
            let members = groups.entry(g.to_string()).or_default();
            if !members.contains(&name) {
                members.push(name.clone());
                true
            } else {
                false
            }
        };
        if !known {
            changed |= join(groups, "all");
            if wanted.is_empty() {
                join(groups, "ungrouped");
            }
        }
        for g in &wanted {
            changed |= join(groups, g);
        }
        self.refresh_groups();
        changed
    }

    /// Whether the play's `hosts` select this host with the groups as they stand now
    /// (`group_by` may have put it in some since the plan was made).
    fn selected_by(&self, play: &Play) -> bool {
        let groups = self.groups.as_ref().unwrap_or(&self.plan.shared.groups);
        crate::hostpattern::selects(&play.hosts.join(":"), &self.plan.host, groups)
    }

    fn groups_mut(&mut self) -> &mut std::collections::BTreeMap<String, Vec<String>> {
        let plan = self.plan;
        self.groups
            .get_or_insert_with(|| plan.shared.groups.clone())
    }

    /// What `hostvars` shows of the hosts `add_host` added or changed: the variables it
    /// gave them, their `inventory_hostname` and their `group_names` now.
    fn added_hostvars(&self) -> std::collections::BTreeMap<String, Vars> {
        let groups = self.groups.as_ref().unwrap_or(&self.plan.shared.groups);
        self.added_hosts
            .iter()
            .map(|(name, given)| {
                let mut vars = given.clone();
                vars.insert("group_names".into(), group_names_of(groups, name).into());
                vars.insert("inventory_hostname".into(), Value::String(name.clone()));
                let short = name.split('.').next().unwrap_or(name);
                vars.insert(
                    "inventory_hostname_short".into(),
                    Value::String(short.into()),
                );
                (name.clone(), vars)
            })
            .collect()
    }

    fn group_names(&self) -> Vec<String> {
        let groups = self.groups.as_ref().unwrap_or(&self.plan.shared.groups);
        group_names_of(groups, &self.plan.host)
    }

    /// Puts the changed `groups` and `group_names` in the magic variables.
    fn refresh_groups(&mut self) {
        let Some(groups) = &self.groups else {
            return;
        };
        let groups = JValue::from_serialize(groups);
        let names = JValue::from_serialize(self.group_names());
        self.globals
            .retain(|(k, _)| k != "groups" && k != "group_names");
        self.globals.push(("groups".into(), groups));
        self.globals.push(("group_names".into(), names));
        // The added hosts' entries of `hostvars` change with the groups: made here,
        // once, not for every template context.
        self.added_view = Arc::new(self.added_hostvars());
    }

    /// Facts a module returned: `setup`'s are gathered facts (also seen as
    /// `ansible_facts.<name>`); `set_fact` and `include_vars` set variables; other
    /// modules' are host variables, as data.
    fn absorb_facts(&mut self, module: &str, f: Vars) {
        // `set_fact` and `include_vars` set host variables. Every other module's facts
        // go to the fact cache, as Ansible's strategy does (`set_host_facts`): seen as
        // `ansible_facts.<name>` and as a variable of that name, with facts' precedence.
        if module == "set_fact" || module == "include_vars" {
            self.host_facts.extend(f);
        } else {
            self.facts.extend(f);
        }
    }

    /// Registers, notifies and records a finished task.
    #[allow(clippy::too_many_arguments)]
    fn after_result(
        &mut self,
        task: &'a Task,
        inherited: &Inherited<'a>,
        handler: bool,
        started: Instant,
        ctx: &JValue,
        name: String,
        module: String,
        result: Vars,
    ) -> Result<(), Halt> {
        let status = status_of(&result);
        if let Some(reg) = &task.register {
            self.host_facts
                .insert(reg.clone(), unsafe_data(Value::Object(result.clone())));
        }
        if status == Status::Changed {
            self.notify(task, ctx)?;
        }
        // Ansible decides on a keyword it could not template as written: a template's
        // text is a true value there.
        let ignored = match status {
            Status::Failed => self.task_flag(
                task.ignore_errors.as_ref(),
                inherited.ignore_errors,
                ctx,
                "ignore_errors",
                true,
            ),
            Status::Unreachable => self.task_flag(
                task.ignore_unreachable.as_ref(),
                inherited.ignore_unreachable,
                ctx,
                "ignore_unreachable",
                true,
            ),
            _ => false,
        };
        if status == Status::Failed && !ignored {
            self.failure = Some((name.clone(), module.clone(), Value::Object(result.clone())));
            self.failed_handler = handler;
        }
        // no_log hides what a task saw and said, as Ansible's output does; the
        // registered variable keeps the real result.
        // A no_log that cannot be evaluated hides the result: the safe side.
        let no_log = self.task_flag(task.no_log.as_ref(), inherited.no_log, ctx, "no_log", true);
        let shown = if no_log {
            json!({"censored": NO_LOG_CENSORED, "changed": status == Status::Changed,
                   "failed": status == Status::Failed})
        } else {
            Value::Object(result)
        };
        self.record(&name, &module, status, ignored, handler, started, shown);
        match status {
            Status::Failed if !ignored => Err(Halt::Failed),
            Status::Unreachable if !ignored => Err(Halt::Unreachable),
            _ => Ok(()),
        }
    }

    /// `include_tasks`, when it is reached: for each loop item (or once), its `when`,
    /// then the file name is templated and found in Ansible's search order among the
    /// files the payload carries; the include is one ok task (a looped one too, its
    /// items' results inside, counted once per item in the recap), as in Ansible, and
    /// the included tasks then run, in order of the items, with the include's `vars`,
    /// the loop variables and the `apply` keywords. A file that cannot be included fails
    /// the host, whatever `ignore_errors` says (Ansible's include is not a module).
    fn run_include(
        &mut self,
        task: &'a Task,
        inherited: &Inherited<'a>,
        handler: bool,
    ) -> Result<(), Halt> {
        let started = Instant::now();
        let base = self.context(inherited, task, &[]);
        let ctx = self.jctx(&base);
        let name = self.task_name(task, &ctx);
        let module = task.module_name().to_string();
        // Each run: the loop variables (none without a loop).
        let runs: Vec<Vec<(String, Value)>> = match &task.loop_ {
            None => vec![Vec::new()],
            Some(spec) => {
                let items = match self.loop_items(task, spec, &ctx) {
                    Ok(items) => items,
                    Err((msg, templated)) => {
                        let result = if templated {
                            self.conditions(task, inherited, &ctx)
                                .filter(|r| r.get("skipped") == Some(&Value::Bool(true)))
                                .unwrap_or_else(|| failed_result(msg))
                        } else {
                            failed_result(msg)
                        };
                        return self.finish_include(task, &name, &module, handler, started, result);
                    }
                };
                let control = task.loop_control.clone().unwrap_or_default();
                let settings = match self.loop_settings(&control, task, inherited) {
                    Ok(s) => s,
                    Err(msg) => {
                        let r = failed_result(msg);
                        return self.finish_include(task, &name, &module, handler, started, r);
                    }
                };
                items
                    .iter()
                    .enumerate()
                    .map(|(i, item)| {
                        let mut v = vec![
                            (settings.loop_var.clone(), item.clone()),
                            (
                                "ansible_loop_var".to_string(),
                                settings.loop_var.clone().into(),
                            ),
                        ];
                        if let Some(ix) = &settings.index_var {
                            v.push((ix.clone(), Value::from(i)));
                            v.push(("ansible_index_var".to_string(), ix.clone().into()));
                        }
                        if settings.extended {
                            v.push((
                                "ansible_loop".to_string(),
                                loop_info(&items, i, settings.allitems),
                            ));
                        }
                        v
                    })
                    .collect()
            }
        };
        if runs.is_empty() {
            let mut r = Vars::new();
            r.insert("changed".into(), false.into());
            r.insert("skipped".into(), true.into());
            r.insert("skipped_reason".into(), "No items in the list".into());
            return self.finish_include(task, &name, &module, handler, started, r);
        }
        let mut included: Vec<Included<'a>> = Vec::new();
        let mut item_results = Vec::new();
        let mut skipped = None;
        for extra in runs {
            let refs: Vec<(&str, &Value)> = extra.iter().map(|(k, v)| (k.as_str(), v)).collect();
            let vars = self.context(inherited, task, &refs);
            let ctx = self.jctx(&vars);
            if let Some(not_run) = self.conditions(task, inherited, &ctx) {
                if not_run.get("failed") == Some(&Value::Bool(true)) {
                    return self.finish_include(task, &name, &module, handler, started, not_run);
                }
                skipped = Some(not_run);
                continue;
            }
            let found = if module == "include_role" {
                self.find_role_included(task, &ctx)
            } else {
                match self.find_included(task, inherited, handler, &ctx) {
                    Ok((path, tasks)) => Ok(Inclusion::Tasks { path, tasks }),
                    Err(NotIncluded::Failed(result)) => Err(result),
                    Err(NotIncluded::Ansible(msg)) => {
                        self.abort = Some(msg);
                        return Err(Halt::Aborted);
                    }
                }
            };
            let found = match found {
                Ok(found) => found,
                Err(result) => {
                    // The items included before this one count as Ansible counts them.
                    self.recap.ok += u32::try_from(item_results.len()).unwrap_or(u32::MAX);
                    let name = self.task_name(task, &ctx);
                    self.record(
                        &name,
                        &module,
                        Status::Failed,
                        false,
                        handler,
                        started,
                        Value::Object(result),
                    );
                    return Err(Halt::Failed);
                }
            };
            let mut result = Vars::new();
            result.insert("changed".into(), false.into());
            if let Inclusion::Tasks { path, .. } = &found {
                result.insert("include".into(), path.clone().into());
                result.insert("include_args".into(), Value::Object(Vars::new()));
            }
            for (k, v) in &extra {
                result.insert(k.clone(), v.clone());
            }
            if task.loop_.is_none() {
                let shown = self.task_name(task, &ctx);
                self.record(
                    &shown,
                    &module,
                    Status::Ok,
                    false,
                    handler,
                    started,
                    Value::Object(result),
                );
            } else {
                item_results.push(Value::Object(result));
            }
            included.push((found, extra));
        }
        if included.is_empty()
            && let Some(r) = skipped
        {
            return self.finish_include(task, &name, &module, handler, started, r);
        }
        // A looped include is one task result holding its items' results, as Ansible
        // reports it; its recap still counts an ok for each item included, as
        // ansible-playbook 2.18's does.
        if task.loop_.is_some() && !included.is_empty() {
            self.recap.ok +=
                u32::try_from(item_results.len().saturating_sub(1)).unwrap_or(u32::MAX);
            let mut result = Vars::new();
            result.insert("changed".into(), false.into());
            result.insert("results".into(), Value::Array(item_results));
            self.record(
                &name,
                &module,
                Status::Ok,
                false,
                handler,
                started,
                Value::Object(result),
            );
        }
        for (k, (found, extra)) in included.into_iter().enumerate() {
            let mut inh = inherited.clone();
            inh.filter_tags = true;
            inh.vars.push(Scope::Plan(&task.vars));
            if !extra.is_empty() {
                inh.vars.push(Scope::Run(Rc::new(
                    extra
                        .into_iter()
                        .map(|(k, v)| (k, unsafe_data(v)))
                        .collect(),
                )));
            }
            // Each inclusion (one per loop item) is a step of the path.
            self.at.push(index(k));
            let ran = match found {
                Inclusion::Tasks { path, tasks } => {
                    self.join_imported_handlers(&path, &inh);
                    inh.file = Some(Rc::from(path.as_str()));
                    let inh = match &task.apply {
                        Some(apply) => Self::child_inherited(apply, &inh),
                        None => inh,
                    };
                    self.run_list(tasks, &inh, handler)
                }
                Inclusion::Role(run) => self.run_role(*run, &inh, task.apply.as_deref(), handler),
            };
            self.at.pop();
            ran?;
        }
        Ok(())
    }

    /// The handlers of the roles the task file `path` imports join the play's as it is
    /// included (Ansible adds them when it reads the imports); included again, the file's
    /// replace its earlier ones.
    fn join_imported_handlers(&mut self, path: &str, scope: &Inherited<'a>) {
        let library: &'a crate::plan::Library = &self.plan.shared.library;
        let Some(list) = library.handlers.get(path) else {
            return;
        };
        let key = format!("{path}\nimports");
        self.dyn_handlers.retain(|(k, _, _)| *k != key);
        self.dyn_handlers.push((key, list, scope.clone()));
    }

    /// The role an `include_role` names (templated with `ctx`), among the roles the plan
    /// carries, with its files chosen by `tasks_from`, `vars_from`, `defaults_from` and
    /// `handlers_from`; or the failed result.
    fn find_role_included(&self, task: &Task, ctx: &JValue) -> Result<Inclusion<'a>, Vars> {
        let args = match self
            .engine
            .render_value(&Value::Object(task.args.clone()), ctx)
        {
            Ok(Value::Object(a)) => remove_omit(a, &self.omit),
            Ok(_) => Vars::new(),
            Err(e) => return Err(failed_result(e.to_string())),
        };
        let text = |k: &str| match args.get(k) {
            Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
            _ => None,
        };
        let flag = |k: &str, default: bool| match args.get(k) {
            Some(Value::Bool(b)) => *b,
            Some(Value::String(s)) => crate::modules::args::truthy_str(s).unwrap_or(default),
            _ => default,
        };
        let Some(name) = text("name") else {
            return Err(failed_result("include_role: no role name".into()));
        };
        let library: &'a crate::plan::Library = &self.plan.shared.library;
        // A role named by its path (`{{ role_path }}/roles/a`) is the one read there,
        // whatever name it travelled under.
        let Some(spec) = library
            .roles
            .values()
            .find(|r| r.name == name)
            .or_else(|| library.roles.values().find(|r| r.path == name))
        else {
            if let Some(why) = library.missing_roles.get(&name) {
                return Err(failed_result(why.clone()));
            }
            let known: Vec<&str> = library.roles.values().map(|r| r.name.as_str()).collect();
            return Err(failed_result(format!(
                "the role '{name}' was not found among the roles this payload carries ({}): a role whose name is only known on the host must be named literally elsewhere in the playbook (roles:, import_role or include_role) to travel",
                if known.is_empty() {
                    "none".to_string()
                } else {
                    known.join(", ")
                }
            )));
        };
        let files = RoleFiles {
            tasks: text("tasks_from"),
            vars: text("vars_from"),
            defaults: text("defaults_from"),
            handlers: text("handlers_from"),
        };
        let mut run = self.role_run(spec, &files).map_err(failed_result)?;
        run.public = flag("public", false);
        // `rolespec_validate: false` skips the role's argument check.
        if !flag("rolespec_validate", true) {
            run.check = None;
        }
        run.from_task = true;
        // The include's `vars` rank above the role's own vars inside it, as an
        // import's do (the include is the parent of the role's tasks in Ansible).
        run.params = task.vars.clone();
        // The same use as an `import_role` of the role with these files (Ansible's role
        // cache); it runs again unless `allow_duplicates: false`.
        run.instance = Some(crate::plan::RoleInstance {
            key: crate::plan::RoleInstance::key_of(
                &spec.path,
                &[
                    files.tasks.as_deref(),
                    files.vars.as_deref(),
                    files.defaults.as_deref(),
                    files.handlers.as_deref(),
                ],
                &run.params,
                None,
                true,
            ),
            allow_duplicates: flag("allow_duplicates", true),
        });
        Ok(Inclusion::Role(Box::new(run)))
    }

    /// A role's files: each named one (`<name>`, `.yml`, `.yaml` or `.json`) or `main`;
    /// a named one that is missing is Ansible's error.
    fn role_run(
        &self,
        spec: &'a crate::plan::RoleSpec,
        files: &RoleFiles,
    ) -> Result<RoleRun<'a>, String> {
        let library: &'a crate::plan::Library = &self.plan.shared.library;
        let ctl = crate::ctlfiles::CtlFiles::new(&self.plan.shared);
        let pick = |sub: &str, from: &Option<String>| -> Result<Option<String>, String> {
            let names: Vec<String> = match from {
                Some(f) => ["", ".yml", ".yaml", ".json"]
                    .iter()
                    .map(|e| format!("{f}{e}"))
                    .collect(),
                None => ["main.yml", "main.yaml", "main"]
                    .iter()
                    .map(|m| m.to_string())
                    .collect(),
            };
            let dir = crate::resolve::join(&spec.path, sub);
            // os.path.join's: an absolute name is itself.
            let candidates: Vec<String> = names
                .iter()
                .map(|n| crate::resolve::join(&dir, n))
                .collect();
            // Ansible's role loader refuses a file outside the role's directory for it
            // (an absolute name, or `..` climbing out); the payload carries only what
            // the plays reach, so such a name is refused whether it exists or not.
            if from.is_some()
                && let Some(c) = candidates
                    .iter()
                    .find(|c| !crate::resolve::is_within(c, &dir))
            {
                return Err(crate::resolve::outside_role(c, &spec.name, &dir));
            }
            match candidates.iter().find(|c| ctl.is_file(c)) {
                Some(c) => Ok(Some(c.clone())),
                None => match from {
                    Some(f) => Err(format!(
                        "Could not find specified file in role: {sub}/{f} (looked for {})",
                        candidates.join(", ")
                    )),
                    None => Ok(None),
                },
            }
        };
        let task_list = |path: Option<String>| -> Result<Option<(String, &'a [Task])>, String> {
            match path {
                None => Ok(None),
                Some(p) => match library.tasks.get(&p) {
                    Some(Parsed::Ok(t)) => Ok(Some((p, t.as_slice()))),
                    Some(Parsed::Refused(why) | Parsed::Ansible(why)) => {
                        Err(format!("{p} cannot be included: {why}"))
                    }
                    None => Err(format!("{p} cannot be included: it is not a list of tasks")),
                },
            }
        };
        // Defaults and vars: the named file, else `main` as Ansible's role loader finds
        // it, a directory `main/` standing for its files in order, merged.
        let vars_of = |sub: &str, from: &Option<String>| -> Result<Vars, String> {
            if from.is_some() {
                return match pick(sub, from)? {
                    None => Ok(Vars::new()),
                    Some(p) => ctl.vars(&p),
                };
            }
            let dir = crate::resolve::join(&spec.path, sub);
            let Some(main) = ["main.yml", "main.yaml", "main.json", "main"]
                .iter()
                .map(|m| crate::resolve::join(&dir, m))
                .find(|p| ctl.exists(p))
            else {
                return Ok(Vars::new());
            };
            if !ctl.is_dir(&main) {
                return ctl.vars(&main);
            }
            let walked = ctl.walk(&main, 0);
            let carried = walked
                .iter()
                .flat_map(|(d, names)| names.iter().map(move |n| format!("{d}/{n}")))
                .collect::<Vec<_>>();
            let mut vars = Vars::new();
            for file in
                crate::resolve::role_vars_dir_files(&main, carried.iter().map(String::as_str))
            {
                vars.extend(ctl.vars(&file)?);
            }
            Ok(vars)
        };
        if let Some(why) = library.unreadable.get(&spec.path) {
            return Err(why.clone());
        }
        Ok(RoleRun {
            spec,
            tasks: task_list(pick("tasks", &files.tasks)?)?,
            handlers: task_list(pick("handlers", &files.handlers)?)?,
            defaults: vars_of("defaults", &files.defaults)?,
            vars: vars_of("vars", &files.vars)?,
            params: Vars::new(),
            public: false,
            from_task: false,
            instance: None,
            check: spec
                .argument_checks
                .get(files.tasks.as_deref().unwrap_or("main")),
        })
    }

    /// Runs a role included at run time: its dependencies first (each once in the play
    /// unless its meta allows duplicates), then its tasks with its defaults (below the
    /// inventory), vars and parameters, in its role; its handlers join the play's.
    fn run_role(
        &mut self,
        run: RoleRun<'a>,
        base: &Inherited<'a>,
        apply: Option<&'a Task>,
        handler: bool,
    ) -> Result<(), Halt> {
        let spec = run.spec;
        // A role may include itself for another of its task files (Ansible allows it);
        // the same file again inside itself would never end.
        let entry = format!(
            "{}\n{}",
            spec.path,
            run.tasks.as_ref().map_or("", |(p, _)| p.as_str())
        );
        if self.role_stack.contains(&entry) {
            return Ok(());
        }
        self.role_stack.push(entry);
        let instance = run.instance.clone();
        let result = self.in_instance(instance.as_ref(), |this| {
            this.run_role_body(run, base, apply, handler)
        });
        self.role_stack.pop();
        result
    }

    fn run_role_body(
        &mut self,
        run: RoleRun<'a>,
        base: &Inherited<'a>,
        apply: Option<&'a Task>,
        handler: bool,
    ) -> Result<(), Halt> {
        let spec = run.spec;
        // The dependencies, each a step of the path, then the role's own tasks.
        self.at.push(ROLE_DEPENDENCIES);
        let deps = self.run_dependencies(spec, base, handler);
        self.at.pop();
        deps?;
        self.run_role_own(run, base, apply, handler)
    }

    /// The dependencies of the role `spec`, in order ([`Self::run_role_body`]).
    fn run_dependencies(
        &mut self,
        spec: &'a crate::plan::RoleSpec,
        base: &Inherited<'a>,
        handler: bool,
    ) -> Result<(), Halt> {
        for (k, dep) in spec.dependencies.iter().enumerate() {
            self.at.push(index(k));
            let ran = self.run_dependency(spec, dep, base, handler);
            self.at.pop();
            ran?;
        }
        Ok(())
    }

    /// One dependency `dep` of the role `spec`.
    fn run_dependency(
        &mut self,
        spec: &'a crate::plan::RoleSpec,
        dep: &'a crate::plan::RoleDep,
        base: &Inherited<'a>,
        handler: bool,
    ) -> Result<(), Halt> {
        let Some(dep_spec) = self.plan.shared.library.roles.get(&dep.path) else {
            return Ok(());
        };
        let mut dep_run = match self.role_run(dep_spec, &RoleFiles::default()) {
            Ok(r) => r,
            Err(msg) => {
                let started = Instant::now();
                self.record(
                    &format!("{} : dependency", spec.name),
                    "include_role",
                    Status::Failed,
                    false,
                    handler,
                    started,
                    Value::Object(failed_result(msg)),
                );
                return Err(Halt::Failed);
            }
        };
        dep_run.params = dep.params.clone();
        dep_run.instance = Some(crate::plan::RoleInstance {
            key: crate::plan::RoleInstance::key_of(
                &dep.path,
                &[None; 4],
                &dep.params,
                dep.keywords.as_deref(),
                false,
            ),
            allow_duplicates: dep_spec.allow_duplicates,
        });
        let dep_base = match &dep.keywords {
            Some(k) => Self::child_inherited(k, base),
            None => base.clone(),
        };
        self.run_role(dep_run, &dep_base, None, handler)
    }

    /// The role of `run` itself, after its dependencies ([`Self::run_role_body`]).
    fn run_role_own(
        &mut self,
        run: RoleRun<'a>,
        base: &Inherited<'a>,
        apply: Option<&'a Task>,
        handler: bool,
    ) -> Result<(), Halt> {
        let spec = run.spec;
        let mut inh = base.clone();
        inh.defaults.push(Scope::Run(Rc::new(run.defaults.clone())));
        // Role vars, then its parameters; both below the task's own.
        let mut vars = run.vars.clone();
        vars.extend(run.params.iter().map(|(k, v)| (k.clone(), v.clone())));
        inh.vars.push(Scope::Run(Rc::new(vars)));
        inh.roles.push(Rc::new(RoleRef {
            name: spec.name.clone(),
            path: spec.path.clone(),
            from_task: run.from_task,
        }));
        if let Some((path, _)) = &run.tasks {
            self.join_imported_handlers(path, &inh);
        }
        if let Some((path, list)) = &run.handlers {
            let mut scope = inh.clone();
            scope.file = Some(Rc::from(path.as_str()));
            self.dyn_handlers.retain(|(role, _, _)| *role != spec.path);
            self.dyn_handlers.push((spec.path.clone(), list, scope));
        }
        if run.public {
            self.public_defaults.extend(run.defaults.clone());
            self.public_vars.extend(run.vars.clone());
        }
        let inh = match apply {
            Some(a) => Self::child_inherited(a, &inh),
            None => inh,
        };
        if let Some(check) = run.check {
            self.run_section(
                ROLE_ARGUMENT_CHECK,
                std::slice::from_ref(check),
                &inh,
                handler,
            )?;
        }
        if let Some((path, list)) = run.tasks {
            let mut inh = inh;
            inh.file = Some(Rc::from(path.as_str()));
            self.run_section(ROLE_TASKS, list, &inh, handler)?;
        }
        Ok(())
    }

    /// Reports an include that did not include anything (skipped, or failed before
    /// finding a file); a failure stops the host unless ignored.
    fn finish_include(
        &mut self,
        task: &Task,
        name: &str,
        module: &str,
        handler: bool,
        started: Instant,
        result: Vars,
    ) -> Result<(), Halt> {
        let status = status_of(&result);
        if let Some(reg) = &task.register {
            self.host_facts
                .insert(reg.clone(), unsafe_data(Value::Object(result.clone())));
        }
        self.record(
            name,
            module,
            status,
            false,
            handler,
            started,
            Value::Object(result),
        );
        if status == Status::Failed {
            return Err(Halt::Failed);
        }
        Ok(())
    }

    /// The task file an `include_tasks` names, templated with `ctx` and found in
    /// Ansible's order among the payload's files: its controller path and tasks; or the
    /// failed result, naming the path and every place looked at.
    fn find_included(
        &self,
        task: &Task,
        inherited: &Inherited<'_>,
        handler: bool,
        ctx: &JValue,
    ) -> Result<(String, &'a [Task]), NotIncluded> {
        let raw = task
            .args
            .get("file")
            .or_else(|| task.args.get("_raw_params"))
            .cloned()
            .unwrap_or(Value::Null);
        let target = match self.engine.render_value(&raw, ctx) {
            Ok(Value::String(s)) if !s.trim().is_empty() => s.trim().to_string(),
            Ok(other) => {
                return Err(NotIncluded::Failed(failed_result(format!(
                    "include_tasks: expected a file name, got: {other}"
                ))));
            }
            Err(e) => return Err(NotIncluded::Failed(failed_result(e.to_string()))),
        };
        let fail = |reason: String| {
            let mut r = failed_result(reason.clone());
            r.insert("include".into(), target.clone().into());
            r.insert("reason".into(), reason.into());
            r
        };
        let shared: &'a crate::plan::Shared = &self.plan.shared;
        let library = &shared.library;
        let candidates = self.place(inherited).include_candidates(&target, handler);
        for c in &candidates {
            if let Some(parsed) = library.tasks.get(c) {
                return match parsed {
                    Parsed::Ok(tasks) => Ok((c.clone(), tasks.as_slice())),
                    Parsed::Refused(why) => Err(NotIncluded::Failed(fail(format!(
                        "{c} cannot be included: {why}"
                    )))),
                    Parsed::Ansible(why) => Err(NotIncluded::Ansible(why.clone())),
                };
            }
            if let Some(why) = library.unreadable.get(c) {
                return Err(NotIncluded::Failed(fail(format!(
                    "{c} cannot be included: {why}"
                ))));
            }
            if shared.files.contains_key(c) || library.vars.contains_key(c) {
                return Err(NotIncluded::Failed(fail(format!(
                    "{c} cannot be included: it is not a list of tasks"
                ))));
            }
        }
        let last = candidates.last().cloned().unwrap_or_else(|| target.clone());
        Err(NotIncluded::Failed(fail(format!(
            "Could not find or access '{last}' on the Ansible Controller. Looked for '{target}' at: {}, among the controller files this payload carries",
            candidates.join(", ")
        ))))
    }

    fn task_name(&self, task: &Task, ctx: &JValue) -> String {
        let raw = task.display_name();
        // Ansible templates names where it can; a name that refers to a loop item or
        // a variable not yet defined is shown as written.
        if crate::template::is_template(&raw) {
            self.engine.render_str(&raw, ctx).unwrap_or(raw)
        } else {
            raw
        }
    }

    /// The loop's items; on error the message and whether it came from templating
    /// (which Ansible reports only if `when` holds).
    fn loop_items(
        &self,
        task: &Task,
        spec: &Value,
        ctx: &JValue,
    ) -> Result<Vec<Value>, (String, bool)> {
        if let Some(lookup) = &task.loop_with {
            let subdir = crate::lookups::loop_subdir(&task.module);
            return crate::lookups::loop_items(&self.engine, subdir, lookup, spec, ctx);
        }
        match self.engine.render_value(spec, ctx) {
            Ok(Value::Array(items)) => Ok(items),
            Ok(other) => Err((
                format!(
                    "Invalid data passed to 'loop', it requires a list, got this instead: {other}"
                ),
                false,
            )),
            Err(e) => Err((e.to_string(), true)),
        }
    }

    fn run_loop(&mut self, task: &'a Task, inherited: &Inherited<'a>, items: &[Value]) -> Vars {
        let control = task.loop_control.clone().unwrap_or_default();
        let LoopSettings {
            loop_var,
            index_var,
            pause,
            extended,
            allitems,
        } = match self.loop_settings(&control, task, inherited) {
            Ok(s) => s,
            Err(msg) => return failed_result(msg),
        };
        // The pause between items. A value a sleep cannot last (Python's time.sleep
        // refuses more than 2^63 ns, so Ansible fails such a loop) fails the task here
        // instead of panicking in Duration::from_secs_f64; a loop of one item never
        // pauses, so its pause is never checked, as in Ansible.
        let pause = match pause.filter(|s| s.is_finite() && *s > 0.0) {
            Some(secs) if items.len() > 1 => {
                match Duration::try_from_secs_f64(secs)
                    .ok()
                    .filter(|d| *d <= MAX_PAUSE)
                {
                    Some(d) => Some(d),
                    None => {
                        return failed_result(format!(
                            "loop_control.pause is {secs} seconds, more than a sleep can last ({} seconds)",
                            MAX_PAUSE.as_secs()
                        ));
                    }
                }
            }
            _ => None,
        };
        let mut results = Vec::with_capacity(items.len());
        // What Ansible's `_run_loop` sets for each item besides the item itself.
        let loop_var_name = Value::from(loop_var.clone());
        let index_var_name = index_var.clone().map(Value::from);
        for (index, item) in items.iter().enumerate() {
            if index > 0
                && let Some(d) = pause
            {
                std::thread::sleep(d);
            }
            let index_value = Value::from(index);
            let mut extra: Vec<(&str, &Value)> =
                vec![(&loop_var, item), ("ansible_loop_var", &loop_var_name)];
            if let Some(name) = &index_var {
                extra.push((name, &index_value));
            }
            if let Some(name) = &index_var_name {
                extra.push(("ansible_index_var", name));
            }
            let loop_info = extended.then(|| loop_info(items, index, allitems));
            if let Some(info) = &loop_info {
                extra.push(("ansible_loop", info));
            }
            let mut r = self.run_once(task, inherited, &extra);
            r.insert(loop_var.clone(), item.clone());
            r.insert("ansible_loop_var".into(), loop_var.clone().into());
            if let Some(name) = &index_var {
                r.insert("ansible_index_var".into(), name.clone().into());
                r.insert(name.clone(), index_value.clone());
            }
            if let Some(label) = &control.label {
                // Ansible registers each item's result before it templates the label, so
                // the label may show it (`label: "{{ r.stdout }}"`); a label naming
                // something undefined fails the item (ansible-core 2.18, issue 83619).
                let mut scope = self.context(inherited, task, &extra);
                if let Some(reg) = &task.register {
                    scope.insert(reg.clone(), unsafe_data(Value::Object(r.clone())));
                }
                let scope = self.jctx(&scope);
                match self.engine.render_str(label, &scope) {
                    Ok(shown) => {
                        r.insert("_ansible_item_label".into(), shown.into());
                    }
                    Err(e) if e.undefined => {
                        let why = self
                            .engine
                            .undefined_reason(label, &scope)
                            .unwrap_or_else(|| e.to_string());
                        r.insert("failed".into(), true.into());
                        r.insert(
                            "msg".into(),
                            format!("Failed to template loop_control.label: {why}").into(),
                        );
                    }
                    Err(_) => {
                        r.insert("_ansible_item_label".into(), label.clone().into());
                    }
                }
            }
            let stop = control.break_when.as_ref().is_some_and(|cond| {
                let mut scope = self.context(inherited, task, &extra);
                if let Some(reg) = &task.register {
                    scope.insert(reg.clone(), unsafe_data(Value::Object(r.clone())));
                }
                self.eval_condition(cond, &self.jctx(&scope))
                    .is_ok_and(|(b, _)| b)
            });
            results.push(Value::Object(r));
            if stop {
                break;
            }
        }
        let any = |k: &str| results.iter().any(|r| r.get(k) == Some(&Value::Bool(true)));
        let all_skipped = !results.is_empty()
            && results
                .iter()
                .all(|r| r.get("skipped") == Some(&Value::Bool(true)));
        let mut out = Vars::new();
        out.insert("changed".into(), any("changed").into());
        let failed = any("failed");
        out.insert("failed".into(), failed.into());
        if all_skipped || results.is_empty() {
            out.insert("skipped".into(), true.into());
            if results.is_empty() {
                out.insert("skipped_reason".into(), "No items in the list".into());
            }
        }
        // Ansible's messages; an empty loop carries none.
        let msg = if failed {
            Some("One or more items failed")
        } else if results.is_empty() {
            None
        } else if all_skipped {
            Some("All items skipped")
        } else {
            Some("All items completed")
        };
        if let Some(m) = msg {
            out.insert("msg".into(), m.into());
        }
        out.insert("results".into(), Value::Array(results));
        out
    }

    /// `loop_control`'s settings, templates evaluated once before the first item with the
    /// task's variables, as Ansible does (`label` is rendered per item).
    fn loop_settings(
        &self,
        control: &crate::plan::LoopControl,
        task: &Task,
        inherited: &Inherited<'_>,
    ) -> Result<LoopSettings, String> {
        let templated = |s: &Option<String>| s.as_deref().is_some_and(crate::template::is_template);
        let any_template = templated(&control.loop_var)
            || templated(&control.index_var)
            || [&control.extended, &control.extended_allitems]
                .iter()
                .any(|f| matches!(f, Some(crate::plan::Templated::Template(_))))
            || matches!(control.pause, Some(crate::plan::Templated::Template(_)));
        // Plain values need no context; building one costs a copy of the variables.
        let ctx = if any_template {
            self.jctx(&self.context(inherited, task, &[]))
        } else {
            JValue::UNDEFINED
        };
        let text = |s: &Option<String>, name: &str| -> Result<Option<String>, String> {
            s.as_deref()
                .map(|s| keywords::text(&self.engine, s, &ctx, name))
                .transpose()
        };
        let flag = |f: &Option<Flag>, name: &str| -> Result<Option<bool>, String> {
            Ok(match f {
                None => None,
                Some(f) => keywords::flag(&self.engine, f, &ctx, name)?,
            })
        };
        Ok(LoopSettings {
            loop_var: text(&control.loop_var, "loop_var")?.unwrap_or_else(|| "item".into()),
            index_var: text(&control.index_var, "index_var")?,
            pause: match &control.pause {
                None => None,
                Some(p) => keywords::float(&self.engine, p, &ctx, "pause")?,
            },
            extended: flag(&control.extended, "extended")?.unwrap_or(false),
            allitems: flag(&control.extended_allitems, "extended_allitems")?.unwrap_or(true),
        })
    }

    /// Runs the task once (or once for one loop item): condition, module, retries,
    /// changed_when / failed_when.
    fn run_once(
        &mut self,
        task: &'a Task,
        inherited: &Inherited<'a>,
        extra: &[(&str, &Value)],
    ) -> Vars {
        let vars = self.context(inherited, task, extra);
        let ctx = self.jctx(&vars);
        if let Some(not_run) = self.conditions(task, inherited, &ctx) {
            return not_run;
        }
        // Ansible templates the task's keywords after `when`, before the module runs.
        if let Some(msg) = self.keyword_error(task, inherited, &ctx) {
            return failed_result(msg);
        }
        // Ansible's attempt loop: one run plus `retries` (3 by default with `until`;
        // without `until`, retries repeat the task until it succeeds).
        let retries = match &task.retries {
            Some(r) => match keywords::int(&self.engine, r, &ctx, "retries") {
                Ok(n) => n.map(|n| n.max(0)),
                Err(msg) => return failed_result(msg),
            },
            None => None,
        };
        let attempts_allowed = 1 + retries.unwrap_or(if task.until.is_some() { 3 } else { 0 });
        let delay = match &task.delay {
            None => 5.0,
            Some(d) => match keywords::float(&self.engine, d, &ctx, "delay") {
                Ok(d) => d.unwrap_or(5.0),
                Err(msg) => return failed_result(msg),
            },
        };
        // A negative delay is one second, as in Ansible.
        let delay = if delay < 0.0 { 1.0 } else { delay };
        let timeout = match task.timeout.as_ref().or(inherited.timeout) {
            Some(t) => match keywords::int(&self.engine, t, &ctx, "timeout") {
                Ok(t) => t.and_then(|t| u64::try_from(t).ok()).filter(|t| *t > 0),
                Err(msg) => return failed_result(msg),
            },
            None => None,
        };
        if let Some(msg) = self.remote_user_error(task, inherited, &vars, &ctx) {
            return failed_result(msg);
        }
        let mut attempt = 0i64;
        loop {
            attempt += 1;
            let started = Instant::now();
            let limit = crate::deadline::start(timeout);
            let mut result = match self.delegation(task, &ctx) {
                Ok(None) => {
                    let scope = TaskScope { vars: &vars, extra };
                    self.invoke(task, inherited, &scope, &ctx)
                }
                // Ansible's synchronize runs rsync on the controller for a push anyway:
                // delegated there, it is the same push from the payload's copy.
                Ok(Some(to))
                    if task.module_name() == "synchronize"
                        && CONTROLLER_NAMES.contains(&to.as_str()) =>
                {
                    let scope = TaskScope { vars: &vars, extra };
                    self.invoke(task, inherited, &scope, &ctx)
                }
                Ok(Some(to)) => self.delegate(task, inherited, &vars, &ctx, &to),
                Err(msg) => failed_result(msg),
            };
            drop(limit);
            // A host that cannot be reached ends the attempt loop as it is: no retry, no
            // changed_when/failed_when (Ansible's executor returns at once).
            if result.get("unreachable") == Some(&Value::Bool(true)) {
                return result;
            }
            if let Some(period) = timeout
                && started.elapsed() >= Duration::from_secs(period)
            {
                // Ansible's alarm ends the attempt loop: no retry, no
                // changed_when/failed_when.
                return timed_out(&task.module, period);
            }
            if attempts_allowed > 1 {
                // Before changed_when/failed_when, which may look at it.
                result.insert("attempts".into(), attempt.into());
            }
            self.apply_overrides(task, &vars, &mut result);
            if attempts_allowed <= 1 {
                return result;
            }
            let mut with_result = vars.clone();
            if let Some(reg) = &task.register {
                with_result.insert(reg.clone(), unsafe_data(Value::Object(result.clone())));
            }
            let done = match &task.until {
                Some(until) => self
                    .eval_condition(until, &self.jctx(&with_result))
                    .map(|(b, _)| b)
                    .unwrap_or(false),
                None => result.get("failed") != Some(&Value::Bool(true)),
            };
            if done {
                return result;
            }
            if attempt >= attempts_allowed {
                // Ansible reports the retries made, not the runs, when it gives up.
                result.insert("attempts".into(), (attempts_allowed - 1).into());
                result.insert("failed".into(), true.into());
                return result;
            }
            match Duration::try_from_secs_f64(delay)
                .ok()
                .filter(|d| *d <= MAX_PAUSE)
            {
                Some(d) => std::thread::sleep(d),
                None => {
                    return failed_result(format!(
                        "delay is {delay} seconds, more than a sleep can last ({} seconds)",
                        MAX_PAUSE.as_secs()
                    ));
                }
            }
        }
    }

    /// Evaluates the inherited and own `when`: `None` when the task is to run, else
    /// its skipped (or, for a bad expression, failed) result.
    fn conditions(&self, task: &Task, inherited: &Inherited<'_>, ctx: &JValue) -> Option<Vars> {
        let conditions = inherited.when.iter().copied().chain(task.when.as_ref());
        for cond in conditions {
            match self.eval_condition(cond, ctx) {
                Ok((true, _)) => {}
                Ok((false, expr)) => {
                    let mut r = Vars::new();
                    r.insert("changed".into(), false.into());
                    r.insert("skipped".into(), true.into());
                    r.insert("skip_reason".into(), "Conditional result was False".into());
                    r.insert("false_condition".into(), expr);
                    return Some(r);
                }
                Err(e) => {
                    return Some(failed_result(format!(
                        "The conditional check '{}' failed. The error was: {}",
                        e.source_text, e.detail
                    )));
                }
            }
        }
        None
    }

    /// Evaluates a condition; on false, also returns the expression that was false (a
    /// literal `when: false` as the boolean, as Ansible's `false_condition` gives it).
    fn eval_condition(
        &self,
        cond: &Condition,
        ctx: &JValue,
    ) -> Result<(bool, Value), crate::template::TemplateError> {
        match cond.expressions() {
            Err(b) => Ok((b, Value::Bool(b))),
            Ok(exprs) => {
                for e in exprs {
                    if !self.engine.eval_bool(e, ctx)? {
                        return Ok((false, Value::String(e.to_string())));
                    }
                }
                Ok((true, Value::Null))
            }
        }
    }

    /// Applies `changed_when` and `failed_when`, which see the result under the
    /// registered name (Ansible evaluates them after registering).
    fn apply_overrides(&self, task: &Task, vars: &Vars, result: &mut Vars) {
        // Ansible evaluates them only when the module did not skip (e.g. a command in
        // check mode), so they may refer to fields only a real run registers.
        if (task.changed_when.is_none() && task.failed_when.is_none())
            || result.get("skipped") == Some(&Value::Bool(true))
        {
            return;
        }
        let mut scope = vars.clone();
        if let Some(reg) = &task.register {
            scope.insert(reg.clone(), unsafe_data(Value::Object(result.clone())));
        }
        let ctx = self.jctx(&scope);
        // A condition that cannot be evaluated fails the task; as Ansible does, the
        // error goes in `changed_when_result`/`failed_when_result` and the module's
        // own result (its `msg`, `stdout`, ...) stays.
        let failed = |result: &mut Vars, key: &str, e: crate::template::TemplateError| {
            result.insert("failed".into(), true.into());
            result.insert(
                key.into(),
                format!(
                    "The conditional check '{}' failed. The error was: {}",
                    e.source_text, e.detail
                )
                .into(),
            );
        };
        if let Some(cond) = &task.changed_when {
            match self.eval_condition(cond, &ctx) {
                Ok((b, _)) => {
                    result.insert("changed".into(), b.into());
                }
                Err(e) => {
                    failed(result, "changed_when_result", e);
                    return;
                }
            }
        }
        if let Some(cond) = &task.failed_when {
            match self.eval_condition(cond, &ctx) {
                Ok((b, _)) => {
                    result.insert("failed_when_result".into(), b.into());
                    result.insert("failed".into(), b.into());
                }
                Err(e) => failed(result, "failed_when_result", e),
            }
        }
    }

    /// Renders the arguments and runs the module.
    fn invoke(
        &mut self,
        task: &Task,
        inherited: &Inherited<'_>,
        scope: &TaskScope<'_>,
        ctx: &JValue,
    ) -> Vars {
        // `action: "{{ ansible_facts.pkg_mgr }}"`: Ansible templates the action when the
        // task runs, after `when`.
        let templated;
        let module = if task.module.contains("{{") {
            templated = match self.engine.render_str(&task.module, ctx) {
                Ok(m) => m.trim().to_string(),
                Err(e) => return failed_result(format!("the action '{}': {e}", task.module)),
            };
            if EXECUTOR_ACTIONS.contains(&templated.as_str()) {
                return failed_result(format!(
                    "the action '{}' renders to '{templated}', which cannot be chosen by a template: name it literally",
                    task.module
                ));
            }
            templated
                .strip_prefix("ansible.builtin.")
                .or_else(|| templated.strip_prefix("ansible.legacy."))
                .unwrap_or(&templated)
        } else {
            task.module_name()
        };
        // `set_fact` keeps what it is given unsafe where it was (`!unsafe`, a result's
        // text), since the variables it sets are rendered again where they are used.
        let keeps_vars = module == "set_fact";
        let rendered = self.with_controller(task, |engine| {
            if keeps_vars {
                engine.render_value_keeping_unsafe(&Value::Object(task.args.clone()), ctx)
            } else {
                engine.render_value(&Value::Object(task.args.clone()), ctx)
            }
        });
        let args = match rendered {
            Ok(Value::Object(a)) if keeps_vars => {
                remove_omit(self.unsafe_reads(task, scope, a), &self.omit)
            }
            Ok(Value::Object(a)) => remove_omit(variable_params(a), &self.omit),
            Ok(_) => Vars::new(),
            // ansible-core 2.18's words for an argument that names something undefined
            // (`Base.post_validate`'s message, then the error's own, then where the task
            // is), which playbooks assert on.
            Err(e) if e.undefined => {
                let place = match &inherited.file {
                    Some(file) => format!("'{file}'"),
                    None => format!("a playbook in '{}'", self.playbook_dir),
                };
                let task_name = match &task.name {
                    Some(n) => format!(", task '{n}'"),
                    None => String::new(),
                };
                return failed_result(format!(
                    "The task includes an option with an undefined variable.. {e}\n\nThe error appears to be in {place}{task_name}"
                ));
            }
            Err(e) => return failed_result(format!("{e}")),
        };
        let mut args = args;
        if module == "synchronize" {
            // Delegated to the host itself, both paths are the host's (Ansible's
            // `dest_is_local`); otherwise `src` is the controller's, carried in the payload.
            let on_host = task.delegate_to.as_ref().is_some_and(|to| {
                (self.engine.render_str(to, ctx)).is_ok_and(|to| to.trim() == self.plan.host)
            });
            args.insert(
                crate::modules::SYNCHRONIZE_ON_HOST.into(),
                Value::Bool(on_host),
            );
            // The action finds both paths as files (`path_dwim`, which drops one pair of
            // quotes), or hands a remote one to the remote shell: quotes never reach rsync.
            for key in ["src", "dest"] {
                if let Some(Value::String(p)) = args.get_mut(key) {
                    *p = crate::lookups::unquote(p).to_string();
                }
            }
        }
        let (args, made_here) = match self.resolve_src(module, args, inherited, is_local(ctx)) {
            Ok(a) => a,
            Err(msg) => return failed_result(msg),
        };
        let (files, layout) = match &made_here {
            Some(tree) => (&tree.files, &tree.layout),
            None => (&self.plan.shared.files, &self.plan.shared.library.layout),
        };
        let args = template_mode_preserve(module, args, files);
        let run_as = match self.check_become(task, inherited, ctx) {
            Ok(r) => r,
            Err(msg) => return failed_result(msg),
        };
        let env = match self.environment(task, inherited, ctx) {
            Ok(e) => e,
            Err(msg) => return failed_result(msg),
        };
        let check_mode = match self.check_mode(inherited, task, ctx) {
            Ok(c) => c,
            Err(msg) => return failed_result(msg),
        };
        let diff_mode = match self.diff_mode(inherited, task, ctx) {
            Ok(d) => d,
            Err(msg) => return failed_result(msg),
        };
        let mctx = Ctx {
            check_mode,
            diff_mode,
            files,
            layout,
            engine: &self.engine,
            vars: ctx,
            env: &env,
            run_as: run_as.as_ref(),
        };
        let limit = match &task.async_ {
            Some(a) => match keywords::int(&self.engine, a, ctx, "async") {
                Ok(n) => n.unwrap_or(0),
                Err(msg) => return failed_result(msg),
            },
            None => 0,
        };
        if limit > 0 {
            // Ansible's default poll interval (DEFAULT_POLL_INTERVAL).
            let poll = match &task.poll {
                Some(p) => match keywords::int(&self.engine, p, ctx, "poll") {
                    Ok(n) => n.unwrap_or(15),
                    Err(msg) => return failed_result(msg),
                },
                None => 15,
            };
            if !crate::modules::async_job::supports_async(module) {
                return failed_result(format!(
                    "This action ({}) does not support async.",
                    task.module
                ));
            }
            let dir = crate::modules::async_job::async_dir(ctx);
            let limit = limit.unsigned_abs();
            let (job, started) = match self.host.start_async(module, &args, &mctx, &dir, limit) {
                Ok(s) => s,
                Err(msg) => return failed_result(msg),
            };
            if poll <= 0 || !self.host.local_jobs() {
                return started;
            }
            let result = crate::modules::async_job::wait(
                &job,
                limit,
                poll.unsigned_abs(),
                &crate::events::deployer_gone,
            );
            if let Some(Value::Object(f)) = result.get("ansible_facts") {
                self.absorb_facts(module, f.clone());
            }
            return result;
        }
        let ran = if module == "include_vars" && !self.playbook_dir.is_empty() {
            self.include_vars(&args, inherited, ctx)
        } else if module == "group_by" {
            self.group_by(&args)
        } else if module == "add_host" {
            self.add_host(&args)
        } else if module == "fetch" {
            match crate::modules::fetch::read_on(&mut *self.host, &args, &mctx) {
                Ok(Ok((f, file))) => Ok(self.fetch(task, &f, &file)),
                Ok(Err(result)) => Ok(result),
                Err(e) => Err(e),
            }
        } else {
            self.host.run(module, &args, &mctx)
        };
        match ran {
            Ok(outcome) => {
                if let Some(Value::Object(f)) = outcome.data.get("ansible_facts") {
                    self.absorb_facts(module, f.clone());
                }
                let result = outcome_to_result(outcome);
                if keeps_vars {
                    // The markers are for the variables; the result shows the text.
                    match crate::template::strip_unsafe(&Value::Object(result)) {
                        Value::Object(r) => r,
                        _ => Vars::new(),
                    }
                } else {
                    result
                }
            }
            Err(ModuleError::BadArgs(msg)) => failed_result(format!("{module}: {msg}")),
            Err(e @ ModuleError::Unsupported(_)) => failed_result(e.to_string()),
        }
    }

    /// `fetch`: the host's file, read by `slurp` (as the task's user), goes to the
    /// controller: written here when this executor runs there (SSH mode), else sent to
    /// the deployer in pieces; a run without a deployer keeps it in its release.
    fn fetch(
        &mut self,
        task: &Task,
        f: &crate::modules::fetch::Fetch,
        file: &crate::modules::fetch::File,
    ) -> Outcome {
        use crate::modules::fetch::{self, CHUNK, Destination};
        let part = file.part(f);
        let host = self.plan.host.clone();
        if self.host.on_controller() {
            let r = Destination::fetch_here(&part, &file.data, &host, &self.playbook_dir);
            return fetch::outcome_of(r);
        }
        if self.sink.channel().is_none() {
            let Some(dir) = self.fetch_dir.clone() else {
                return Outcome::fail(format!(
                    "task '{}': needs the deployer (the controller channel), and this run has none: {}",
                    task.display_name(),
                    crate::events::no_channel_reason(RequestKind::Fetch)
                ));
            };
            // Kept under the release: `dest` is taken inside it, whatever it says.
            let root = dir.display().to_string();
            let kept = fetch::Part {
                dest: format!("{root}/{}", part.dest.trim_start_matches('/')),
                ..part
            };
            let r = Destination::fetch_here(&kept, &file.data, &host, &root);
            return fetch::outcome_of(r);
        }
        // The first request names the file; each next one carries a piece from `offset`.
        let mut pieces = file.data.chunks(CHUNK);
        let mut piece: Option<&[u8]> = None;
        let mut offset = 0u64;
        loop {
            let asked = self.ask(RequestKind::Fetch, task, None, |r| {
                r.fetch = Some(Box::new(fetch::Part {
                    offset,
                    data: piece.map(crate::hex::base64),
                    ..part.clone()
                }));
            });
            match asked {
                Err(e) => {
                    return Outcome::fail(format!("task '{}': {e}", task.display_name()));
                }
                Ok(crate::events::Answer {
                    result: Some(Value::Object(r)),
                    ..
                }) => return fetch::outcome_of(r),
                Ok(_) => {}
            }
            offset += piece.map_or(0, |p| p.len() as u64);
            piece = pieces.next();
            if piece.is_none() {
                return Outcome::fail(
                    "fetch: the deployer took the whole file but answered with no result",
                );
            }
        }
    }

    /// Ansible's `AnsibleContext`: a template that reads a variable holding unsafe data
    /// anywhere inside it (`!unsafe`, a registered result, the item of a
    /// `with_<lookup>` loop, which is a lookup's result) gives an unsafe value as a whole,
    /// never templated again. `rendered` is `task`'s arguments rendered; those whose
    /// templates read such a variable become unsafe. (The loop variables are held as
    /// unsafe data so that they are never rendered again; what counts for them is what
    /// they hold, and whether the loop is a lookup's.)
    fn unsafe_reads(&self, task: &Task, scope: &TaskScope<'_>, mut rendered: Vars) -> Vars {
        let vars = scope.vars;
        let loop_var = vars
            .get("ansible_loop_var")
            .map(|v| crate::template::unsafe_inner(v).unwrap_or(v));
        let lookup_item = match (&task.loop_with, loop_var) {
            (Some(_), Some(Value::String(name))) => Some(name.as_str()),
            _ => None,
        };
        let is_unsafe = |name: &str| {
            if lookup_item == Some(name) {
                return true;
            }
            let Some(v) = vars.get(name) else {
                return false;
            };
            if scope.extra.iter().any(|(k, _)| *k == name) {
                return crate::template::unsafe_inner(v).is_some_and(holds_unsafe);
            }
            holds_unsafe(v)
        };
        // Each template string is one template to Ansible: its own result is unsafe or not.
        let reads_unsafe = |source: &str| self.engine.names_in(source).iter().any(|n| is_unsafe(n));
        fn mark(raw: &Value, rendered: Value, reads_unsafe: &dyn Fn(&str) -> bool) -> Value {
            match (raw, rendered) {
                _ if crate::template::unsafe_inner(raw).is_some() => {
                    // Already unsafe text, kept as it was.
                    raw.clone()
                }
                (Value::String(s), v) if crate::template::is_template(s) && reads_unsafe(s) => {
                    unsafe_data(crate::template::strip_unsafe(&v))
                }
                (Value::Array(raw), Value::Array(items)) if raw.len() == items.len() => {
                    Value::Array(
                        raw.iter()
                            .zip(items)
                            .map(|(r, v)| mark(r, v, reads_unsafe))
                            .collect(),
                    )
                }
                (Value::Object(raw), Value::Object(map)) => Value::Object(
                    map.into_iter()
                        .map(|(k, v)| match raw.get(&k) {
                            Some(r) => (k, mark(r, v, reads_unsafe)),
                            None => (k, v),
                        })
                        .collect(),
                ),
                (_, v) => v,
            }
        }
        for (key, raw) in &task.args {
            // In place: the arguments keep their order.
            if let Some(v) = rendered.get_mut(key) {
                *v = mark(raw, std::mem::take(v), &reads_unsafe);
            }
        }
        rendered
    }

    /// `include_vars` in a play from a playbook: the file (or `dir:`) found and read among
    /// the controller files the payload carries, as Ansible's action does on the
    /// controller ([`crate::ctlfiles`]).
    fn include_vars(
        &self,
        args: &Vars,
        inherited: &Inherited<'_>,
        ctx: &JValue,
    ) -> Result<Outcome, ModuleError> {
        let place = self.place(inherited);
        let role_path = inherited.roles.last().map(|r| r.path.as_str());
        let current = |name: &str| {
            ctx.get_attr(name)
                .ok()
                .filter(|v| !v.is_undefined())
                .and_then(|v| serde_json::to_value(&v).ok())
        };
        let files = crate::ctlfiles::CtlFiles::new(&self.plan.shared);
        let included = match crate::ctlfiles::include_vars(
            args,
            &place,
            role_path,
            files,
            is_local(ctx),
            &current,
        ) {
            Ok(i) => i,
            // Ansible's own words, before the action runs.
            Err(msg) => return Ok(Outcome::fail(msg)),
        };
        let mut outcome = Outcome::ok()
            .with("ansible_facts", Value::Object(included.vars))
            .with(
                "ansible_included_var_files",
                Value::Array(included.files.into_iter().map(Value::String).collect()),
            );
        if let Some(e) = included.error {
            outcome.failed = true;
            outcome.data.insert("message".into(), e.clone().into());
            outcome.msg = Some(e);
        }
        Ok(outcome)
    }

    /// Finds the controller file a `template`, `copy` or `unarchive` task names in its
    /// `src` (after templating) as Ansible's `_find_needle` does: in the search path's
    /// `templates/` or `files/` and itself, then the playbook's; the argument becomes the
    /// file's controller path, under which the payload carries it. A name the packer
    /// embedded as written (a plan's own files) is used as it is. Plans not made from a
    /// playbook carry only their named files, and are left to the module.
    ///
    /// On a `local` host (the controller itself) a candidate the payload does not carry
    /// but the machine has (a file an earlier task wrote) is read from the machine when
    /// the task runs, as Ansible reads it then: it comes back as the files the module
    /// gets instead of the payload's.
    fn resolve_src(
        &self,
        module: &str,
        mut args: Vars,
        inherited: &Inherited<'_>,
        local: bool,
    ) -> Result<(Vars, Option<crate::ctlfiles::LocalTree>), String> {
        if self.playbook_dir.is_empty() {
            return Ok((args, None));
        }
        let flag = |k: &str| match args.get(k) {
            Some(Value::Bool(b)) => Some(*b),
            Some(Value::String(s)) => crate::modules::args::truthy_str(s),
            _ => None,
        };
        let subdir = match module {
            "template" => "templates",
            "copy" if flag("remote_src") != Some(true) => "files",
            "unarchive" if flag("remote_src") != Some(true) && flag("copy") != Some(false) => {
                "files"
            }
            // The action reads a controller directory unless told the host has it.
            "assemble" if flag("remote_src") == Some(false) => "files",
            // A push's source is the controller's, found as copy's.
            "synchronize"
                if flag(crate::modules::SYNCHRONIZE_ON_HOST) != Some(true)
                    && args.get("mode").and_then(Value::as_str) != Some("pull") =>
            {
                "files"
            }
            _ => return Ok((args, None)),
        };
        let Some(Value::String(src)) = args.get("src") else {
            return Ok((args, None));
        };
        if src.is_empty() || (module == "unarchive" && src.contains("://")) {
            return Ok((args, None));
        }
        let files = &self.plan.shared.files;
        let exists = |p: &str| {
            let prefix = format!("{}/", p.trim_end_matches('/'));
            files.contains_key(p)
                || files
                    .range(prefix.clone()..)
                    .next()
                    .is_some_and(|(k, _)| k.starts_with(&prefix))
        };
        let candidates = self.place(inherited).stack_candidates(subdir, src);
        // `copy src=dir/` copies what is in the directory, `src=dir` the directory.
        let as_given = |found: &str| {
            if src.ends_with('/') {
                format!("{found}/")
            } else {
                found.to_string()
            }
        };
        // A local host is the controller: rsync reads the source where it is.
        if local
            && module == "synchronize"
            && let Some(found) = (candidates.iter()).find(|c| std::path::Path::new(c).exists())
        {
            args.insert("src".into(), Value::String(as_given(found)));
            args.insert(
                crate::modules::SYNCHRONIZE_ON_HOST.into(),
                Value::Bool(true),
            );
            return Ok((args, None));
        }
        if let Some(found) = candidates.iter().find(|c| exists(c)) {
            // A local host is the controller: a directory is copied as it is when the
            // task runs (an earlier task may have added links or directories to it, as
            // Ansible would see), not as it was when the plan was made.
            if local && module == "copy" && std::path::Path::new(found.as_str()).is_dir() {
                let tree = crate::ctlfiles::local_tree(found).map_err(|e| {
                    format!("Could not read '{src}' on the Ansible Controller: {e}")
                })?;
                args.insert("src".into(), Value::String(as_given(found)));
                return Ok((args, Some(tree)));
            }
            args.insert("src".into(), Value::String(as_given(found)));
            return Ok((args, None));
        }
        if exists(src) {
            return Ok((args, None));
        }
        if let Some(why) = candidates
            .iter()
            .find_map(|c| self.plan.shared.library.unreadable.get(c))
        {
            return Err(format!("Could not use '{src}': {why}"));
        }
        if local
            && let Some(found) = candidates
                .iter()
                .find(|c| std::path::Path::new(c.as_str()).exists())
        {
            let tree = crate::ctlfiles::local_tree(found)
                .map_err(|e| format!("Could not read '{src}' on the Ansible Controller: {e}"))?;
            args.insert("src".into(), Value::String(as_given(found)));
            return Ok((args, Some(tree)));
        }
        Err(format!(
            "Could not find or access '{src}'\nSearched in:\n\t{} on the Ansible Controller.\nIf you are using a module and expect the file to exist on the remote, see the remote_src option",
            candidates.join("\n\t")
        ))
    }

    /// Gathering at a play's start runs with the play's `environment`, as Ansible's
    /// setup does, so `ansible_env` shows it; an entry that cannot be rendered before
    /// gathering (one that reads `ansible_env` in a play's first gathering) is left out,
    /// as there.
    fn gathering_environment(&self, play: &'a Play) -> Vec<(String, String)> {
        let Some(environment) = &play.environment else {
            return Vec::new();
        };
        let scope = play_scope(play);
        let ctx = self.jctx(&self.context(&scope, &Task::default(), &[]));
        let rendered: Vec<(String, Value)> = match environment {
            Value::Object(map) => map
                .iter()
                .filter_map(|(k, v)| Some((k.clone(), self.engine.render_value(v, &ctx).ok()?)))
                .collect(),
            other => match self.engine.render_value(other, &ctx) {
                Ok(Value::Object(map)) => map.into_iter().collect(),
                _ => Vec::new(),
            },
        };
        rendered
            .into_iter()
            .map(|(k, v)| (k, env_text(v)))
            .collect()
    }

    /// The task's `environment`: the play's, then each enclosing block's, then its own,
    /// later names winning. Values are rendered; a mapping is required.
    fn environment(
        &self,
        task: &Task,
        inherited: &Inherited<'_>,
        ctx: &JValue,
    ) -> Result<Vec<(String, String)>, String> {
        let mut env: Vec<(String, String)> = Vec::new();
        for scope in inherited
            .environment
            .iter()
            .copied()
            .chain(task.environment.as_ref())
        {
            let rendered = self
                .engine
                .render_value(scope, ctx)
                .map_err(|e| format!("environment: {e}"))?;
            let Value::Object(map) = rendered else {
                return Err(format!(
                    "environment must be a mapping of names to values, got: {rendered}"
                ));
            };
            for (k, v) in map {
                env.retain(|(name, _)| *name != k);
                env.push((k, env_text(v)));
            }
        }
        Ok(env)
    }

    /// Privilege: the deployer starts the runner as the user the plan needs (through
    /// sudo when it asks for root). Becoming that same user needs nothing; becoming
    /// another one works when the runner is root: the task's module then runs as that
    /// user, in a child runner or through the processes it starts (see
    /// [`crate::privilege`]).
    /// The `become` keyword of the task, or of its block, role or play: a task's that
    /// renders to omit (or null) is unset and the enclosing one applies, as Ansible's
    /// keyword inheritance has it.
    fn become_keyword(
        &self,
        task: &Task,
        inherited: &Inherited<'_>,
        ctx: &JValue,
    ) -> Result<bool, String> {
        let own = match &task.become_ {
            Some(f) => keywords::flag(&self.engine, f, ctx, "become")?,
            None => None,
        };
        let value = match (own, inherited.become_) {
            (Some(v), _) => Some(v),
            (None, Some(f)) => keywords::flag(&self.engine, f, ctx, "become")?,
            (None, None) => None,
        };
        Ok(value.unwrap_or(false))
    }

    /// For a task delegated to another host: the user its `become` keywords ask for
    /// (`None`: no become), without this host's `ansible_become*` variables, which are
    /// connection variables (the delegated-to host's own apply there, as in Ansible).
    fn become_keywords(
        &self,
        task: &Task,
        inherited: &Inherited<'_>,
        ctx: &JValue,
    ) -> Result<Option<String>, String> {
        if !self.become_keyword(task, inherited, ctx)? {
            return Ok(None);
        }
        let wanted = task
            .become_user
            .as_deref()
            .or(inherited.become_user)
            .unwrap_or("root");
        self.engine
            .render_str(wanted, ctx)
            .map(|u| Some(u.trim().to_string()))
            .map_err(|e| format!("become_user: {e}"))
    }

    fn check_become(
        &mut self,
        task: &Task,
        inherited: &Inherited<'_>,
        ctx: &JValue,
    ) -> Result<Option<RunAs>, String> {
        // The connection variables `ansible_become` and `ansible_become_user` (task or
        // play vars, inventory) win over the keywords, as Ansible's play context lets
        // them.
        let var = |name: &str| {
            ctx.get_attr(name)
                .ok()
                .filter(|v| !v.is_undefined() && !v.is_none())
                .and_then(|v| serde_json::to_value(&v).ok())
        };
        let become_ = match (
            var("ansible_become"),
            task.become_.as_ref().or(inherited.become_),
        ) {
            (Some(v), _) => {
                let f = match v {
                    Value::String(s) => Flag::Template(s),
                    Value::Bool(b) => Flag::Value(b),
                    other => Flag::Template(other.to_string()),
                };
                keywords::flag(&self.engine, &f, ctx, "ansible_become")?.unwrap_or(false)
            }
            (None, _) => self.become_keyword(task, inherited, ctx)?,
        };
        if !become_ {
            return Ok(None);
        }
        let from_var = var("ansible_become_user").and_then(|v| v.as_str().map(str::to_string));
        let wanted = from_var.as_deref().unwrap_or_else(|| {
            task.become_user
                .as_deref()
                .or(inherited.become_user)
                .unwrap_or("root")
        });
        let wanted = self
            .engine
            .render_str(wanted, ctx)
            .unwrap_or_else(|_| wanted.to_string());
        let me = self.host.user();
        if me.as_deref() == Some(wanted.as_str()) {
            return Ok(None);
        }
        if !self.host.is_root() {
            return Err(format!(
                "become_user '{wanted}' requested but the runner runs as '{}', which cannot switch users; set become: true on the play so the deployer starts the runner as root",
                me.unwrap_or_else(|| "unknown".into())
            ));
        }
        self.host
            .lookup_user(&wanted)
            .map(Some)
            .ok_or_else(|| format!("become_user '{wanted}': no such user on this host"))
    }

    #[allow(clippy::too_many_arguments)]
    fn record(
        &mut self,
        name: &str,
        module: &str,
        status: Status,
        ignored: bool,
        handler: bool,
        started: Instant,
        result: Value,
    ) {
        // A task of a role that ran (whatever its result, unless skipped or unreachable)
        // lets that use of the role complete (Ansible's `_had_task_run`).
        if !handler
            && matches!(status, Status::Ok | Status::Changed | Status::Failed)
            && let Some(key) = self.role_instances.last()
            && !self.roles_had_run.contains(key)
        {
            self.roles_had_run.insert(key.clone());
        }
        match status {
            Status::Ok => self.recap.ok += 1,
            Status::Changed => {
                self.recap.ok += 1;
                self.recap.changed += 1;
            }
            Status::Skipped => self.recap.skipped += 1,
            // Ansible counts an ignored failure as ok and ignored, and changed if it changed.
            Status::Failed if ignored => {
                self.recap.ok += 1;
                self.recap.ignored += 1;
                if result.get("changed") == Some(&Value::Bool(true)) {
                    self.recap.changed += 1;
                }
            }
            Status::Failed => self.recap.failed += 1,
            // An ignored unreachable host is ok and ignored, never changed (Ansible's
            // strategy).
            Status::Unreachable if ignored => {
                self.recap.ok += 1;
                self.recap.ignored += 1;
            }
            Status::Unreachable => self.recap.unreachable += 1,
        }
        self.emit_task(name, module, status, ignored, handler, started, result);
    }

    /// Reports a task's result without counting it in the recap.
    #[allow(clippy::too_many_arguments)]
    fn emit_task(
        &mut self,
        name: &str,
        module: &str,
        status: Status,
        ignored: bool,
        handler: bool,
        started: Instant,
        result: Value,
    ) {
        self.sink.emit(&Event::Task {
            v: EVENTS_VERSION,
            play: self.play_name.clone(),
            name: name.to_string(),
            module: module.to_string(),
            status,
            ignored,
            handler,
            role: self.shown_role.clone(),
            duration_ms: ms(started.elapsed()),
            result,
        });
    }
}

/// Why an `include_tasks` file is not included.
enum NotIncluded {
    /// The include fails, with this result.
    Failed(Vars),
    /// Ansible refuses the file when it reads it: the run ends with its error.
    Ansible(String),
}

/// A handler as notifications look for it: the task, and where it came from (`None`:
/// the play's handlers; `Some(i)`: the `i`th role included while the play runs).
#[derive(Clone, Copy)]
struct Candidate<'a> {
    task: &'a Task,
    scope: Option<usize>,
    /// The role the handler's file (or an enclosing one) says it belongs to.
    role: Option<&'a RoleRef>,
}

/// The handlers notified and not run yet.
#[derive(Default)]
struct Woken {
    handlers: Vec<*const Task>,
}

impl Woken {
    fn wake(&mut self, handler: &Task) {
        let p: *const Task = handler;
        if !self.handlers.contains(&p) {
            self.handlers.push(p);
        }
    }

    /// Whether `handler` was woken; it is not any more.
    fn take(&mut self, handler: &Task) -> bool {
        let before = self.handlers.len();
        self.handlers.retain(|p| !std::ptr::eq(*p, handler));
        self.handlers.len() != before
    }

    fn is_empty(&self) -> bool {
        self.handlers.is_empty()
    }
}

/// Runs the module of a delegated task here, for the deployer (`delegate_to:
/// localhost`), as the delegating host's runner asked in `request`: the task comes from
/// that host's signed plan, its variables from the host. Block-level `environment` and
/// `become` do not reach it: the controller runs it as the deploying user.
pub fn run_delegated(plan: &HostPlan, task: &Task, request: &Request) -> Vars {
    let mut task = task.clone();
    task.become_ = None;
    task.become_user = None;
    let vars = match &request.vars {
        Some(Value::Object(v)) => v.clone(),
        _ => Vars::new(),
    };
    run_delegated_on(plan, &task, request, vars, Box::new(Local::default()))
}

/// Runs the module of a task delegated to another inventory host, for the deployer:
/// as [`run_delegated`], with its modules run by `host` (SSH mode's module back end
/// for that host), with `vars` (the delegating host's, with the delegated-to host's
/// connection variables put in by the deployer) and the task's `become` as given.
pub fn run_delegated_on(
    plan: &HostPlan,
    task: &Task,
    request: &Request,
    vars: Vars,
    host: Box<dyn ModuleHost + '_>,
) -> Vars {
    let Some(play) = plan.plays.get(request.play) else {
        return failed_result(format!("the plan has no play number {}", request.play));
    };
    let mut sink = crate::events::Collect::default();
    let opts = RunOptions {
        check_mode: request.check_mode,
        diff_mode: false,
    };
    let mut ex = Executor::with_host(plan, &mut sink, opts, host);
    ex.play_index = request.play;
    ex.globals = ex.play_globals(play, request.play);
    ex.playbook_dir = match play.magic.get("playbook_dir") {
        Some(Value::String(d)) => d.clone(),
        _ => String::new(),
    };
    ex.play = Some(play);
    // The delegating host decided check mode with the blocks around the task, which
    // this side does not see (`check_mode: false` on a block overrides `--check`).
    let check_mode = Flag::Value(request.check_mode);
    let inherited = Inherited {
        check_mode: Some(&check_mode),
        roles: request
            .roles
            .iter()
            .map(|path| {
                Rc::new(RoleRef {
                    name: path.rsplit('/').next().unwrap_or(path).to_string(),
                    path: path.clone(),
                    from_task: false,
                })
            })
            .collect(),
        file: request.file.as_deref().map(Rc::from),
        ..Inherited::default()
    };
    let shared = Arc::clone(&plan.shared);
    crate::ctlfiles::with_files(&shared, || {
        let ctx = ex.jctx(&vars);
        let scope = TaskScope {
            vars: &vars,
            extra: &[],
        };
        ex.invoke(task, &inherited, &scope, &ctx)
    })
}

/// One inclusion of an `include_tasks` or `include_role`, and the loop variables of that
/// item.
type Included<'a> = (Inclusion<'a>, Vec<(String, Value)>);

/// What an include brings in.
enum Inclusion<'a> {
    /// A task file: its controller path and tasks.
    Tasks { path: String, tasks: &'a [Task] },
    /// A role.
    Role(Box<RoleRun<'a>>),
}

/// The files an `include_role` chooses (`None`: `main`).
#[derive(Debug, Default)]
struct RoleFiles {
    tasks: Option<String>,
    vars: Option<String>,
    defaults: Option<String>,
    handlers: Option<String>,
}

/// A role to run, with the files chosen for it.
struct RoleRun<'a> {
    spec: &'a crate::plan::RoleSpec,
    /// Its tasks file (controller path and tasks), if it has one.
    tasks: Option<(String, &'a [Task])>,
    /// Its handlers file's handlers.
    handlers: Option<(String, &'a [Task])>,
    defaults: Vars,
    vars: Vars,
    /// Its parameters (a dependency's entry); above its vars.
    params: Vars,
    /// `public`: its defaults and vars stay for the rest of the play.
    public: bool,
    /// Entered by a task (`include_role`), not as a dependency.
    from_task: bool,
    /// Which use of the role this is, for Ansible's once-per-play rule.
    instance: Option<crate::plan::RoleInstance>,
    /// The argument check of its entry point, run before its tasks.
    check: Option<&'a Task>,
}

/// `loop_control` once its templates are evaluated.
struct LoopSettings {
    loop_var: String,
    index_var: Option<String>,
    pause: Option<f64>,
    extended: bool,
    allitems: bool,
}

/// The groups of `host` but `all`, sorted: its `group_names`.
fn group_names_of(
    groups: &std::collections::BTreeMap<String, Vec<String>>,
    host: &str,
) -> Vec<String> {
    let mut names: Vec<String> = groups
        .iter()
        .filter(|(g, m)| g.as_str() != "all" && m.iter().any(|h| h == host))
        .map(|(g, _)| g.clone())
        .collect();
    names.sort();
    names
}

/// `host:port` and `[v6]:port` as the host and its port; a name with no port (an IPv6
/// address without brackets among them) as it is.
fn host_and_port(name: &str) -> (String, Option<u16>) {
    if let Some(rest) = name.strip_prefix('[') {
        if let Some((host, port)) = rest.split_once("]:")
            && let Ok(port) = port.parse()
        {
            return (host.to_string(), Some(port));
        }
        if let Some(host) = rest.strip_suffix(']') {
            return (host.to_string(), None);
        }
    } else if let Some((host, port)) = name.split_once(':')
        && !port.contains(':')
        && let Ok(port) = port.parse()
    {
        return (host.to_string(), Some(port));
    }
    (name.to_string(), None)
}

/// `module: "{{ a_dict }}"`: free-form text that renders to a mapping is the module's
/// arguments, the task's own (`args:`) over it, as Ansible takes its `_variable_params`.
fn variable_params(mut args: Vars) -> Vars {
    let Some(Value::Object(from_text)) = args.get("_raw_params") else {
        return args;
    };
    let mut merged = from_text.clone();
    args.shift_remove("_raw_params");
    merged.extend(args);
    merged
}

/// The parts of a play in [`Executor::at`]'s paths: fact gathering, the tasks (the
/// play's sections in order), the handler flushes at its end, and its end.
const PART_GATHER: u32 = 0;
const PART_TASKS: u32 = 1;
const PART_END_FLUSHES: u32 = 2;
const PART_DONE: u32 = 3;
/// The sections of a block, in the order Ansible lays out a play's tasks.
const SECTION_BLOCK: u32 = 0;
const SECTION_RESCUE: u32 = 1;
const SECTION_ALWAYS: u32 = 2;
/// A role's dependencies come before its own tasks.
const ROLE_DEPENDENCIES: u32 = 0;
/// Then the check of its variables against its argument spec, if it has one.
const ROLE_ARGUMENT_CHECK: u32 = 1;
const ROLE_TASKS: u32 = 2;

/// An index in a list, as a step of a path (lists longer than `u32` cannot be read).
fn index(i: usize) -> u32 {
    u32::try_from(i).unwrap_or(u32::MAX)
}

/// `ansible_loop` for item `index` with `loop_control: {extended: true}`.
fn loop_info(items: &[Value], index: usize, allitems: bool) -> Value {
    let len = items.len();
    let mut info = json!({
        "index": index + 1, "index0": index,
        "revindex": len - index, "revindex0": len - index - 1,
        "first": index == 0, "last": index + 1 == len, "length": len,
    });
    if let Some(map) = info.as_object_mut() {
        if let Some(prev) = index.checked_sub(1).and_then(|i| items.get(i)) {
            map.insert("previtem".into(), prev.clone());
        }
        if let Some(next) = items.get(index + 1) {
            map.insert("nextitem".into(), next.clone());
        }
        if allitems {
            map.insert("allitems".into(), Value::Array(items.to_vec()));
        }
    }
    info
}

/// What a play hands down to its tasks and handlers.
/// An environment variable's value: Python's str() of the rendered value, as Ansible
/// exports it.
fn env_text(v: Value) -> String {
    match v {
        Value::String(s) => s,
        Value::Null => "None".to_string(),
        Value::Bool(b) => if b { "True" } else { "False" }.to_string(),
        Value::Number(n) if n.is_f64() => crate::template::py_float(n.as_f64().unwrap_or_default()),
        other => other.to_string(),
    }
}

fn play_scope(play: &Play) -> Inherited<'_> {
    Inherited {
        vars: vec![Scope::Plan(&play.vars)],
        become_: play.become_.as_ref(),
        become_user: play.become_user.as_deref(),
        environment: play.environment.iter().collect(),
        ignore_errors: play.ignore_errors.as_ref(),
        ignore_unreachable: play.ignore_unreachable.as_ref(),
        check_mode: play.check_mode.as_ref(),
        diff: play.diff.as_ref(),
        no_log: play.no_log.as_ref(),
        timeout: play.timeout.as_ref(),
        remote_user: play.remote_user.as_deref(),
        tags: Rc::new(play.tags.iter().cloned().collect()),
        ..Inherited::default()
    }
}

/// Whether `name` appears anywhere in the plan's plays, variables, embedded files or
/// the task and vars files includes may reach.
fn refers_to(plan: &HostPlan, name: &str) -> bool {
    let plays = serde_json::to_string(&plan.plays).unwrap_or_default();
    let vars = serde_json::to_string(&plan.host_vars).unwrap_or_default();
    let library = serde_json::to_string(&plan.shared.library).unwrap_or_default();
    plays.contains(name)
        || vars.contains(name)
        || library.contains(name)
        || plan
            .shared
            .files
            .values()
            .any(|f| f.content.windows(name.len()).any(|w| w == name.as_bytes()))
}

/// The plan's `omit` token, or (a plan made without one) one derived from the
/// deployment, in Ansible's shape.
fn omit_token(plan: &HostPlan) -> String {
    match plan.magic.get("omit") {
        Some(Value::String(t)) => t.clone(),
        _ => {
            let hex = crate::payload::Digest::of(plan.deployment_id.as_bytes()).to_hex();
            format!("__omit_place_holder__{}", hex.get(..40).unwrap_or(&hex))
        }
    }
}

/// Module arguments without those that rendered to `omit`, as Ansible's `remove_omit`
/// does: at every level of mappings, and in mappings inside lists (a list item that is
/// `omit` itself stays).
fn remove_omit(args: Vars, omit: &str) -> Vars {
    fn clean(v: Value, omit: &str) -> Value {
        match v {
            Value::Object(m) => Value::Object(remove_omit(m, omit)),
            Value::Array(items) => Value::Array(
                items
                    .into_iter()
                    .map(|i| match i {
                        Value::Object(m) => Value::Object(remove_omit(m, omit)),
                        other => other,
                    })
                    .collect(),
            ),
            other => other,
        }
    }
    args.into_iter()
        .filter(|(_, v)| v.as_str() != Some(omit))
        .map(|(k, v)| (k, clean(v, omit)))
        .collect()
}

/// Whether the plan (its tasks, variables or embedded templates) may use a gathered
/// fact. Conservative: dynamic lookups (`vars[...]`, `hostvars`, `lookup(`) count as
/// a use, since what they name cannot be known before the run.
fn facts_referenced(plan: &HostPlan) -> bool {
    const MARKERS: &[&str] = &["ansible_facts", "hostvars", "vars[", "lookup(", "setup"];
    let plays = serde_json::to_string(&plan.plays).unwrap_or_default();
    let vars = serde_json::to_string(&plan.host_vars).unwrap_or_default();
    // Files an include may reach at run time count too.
    let library = serde_json::to_string(&plan.shared.library).unwrap_or_default();
    let texts = plan
        .shared
        .files
        .values()
        .filter_map(|f| std::str::from_utf8(&f.content).ok());
    [plays.as_str(), vars.as_str(), library.as_str()]
        .into_iter()
        .chain(texts)
        .any(|t| MARKERS.iter().any(|m| t.contains(m)) || mentions_fact(t))
}

/// True when `text` has `ansible_<name>` for a name gathering provides (facts and
/// interfaces), as opposed to connection and magic variables such as `ansible_host`
/// or `ansible_check_mode`.
fn mentions_fact(text: &str) -> bool {
    const NOT_FACTS: &[&str] = &[
        "check_mode",
        "diff_mode",
        "loop",
        "loop_var",
        "failed_task",
        "failed_result",
        "host",
        "port",
        "user",
        "connection",
        "become",
        "become_user",
        "become_method",
        "become_pass",
        "password",
        "ssh_private_key_file",
        "python_interpreter",
        "shell_type",
        "play_hosts",
        "play_batch",
        "run_tags",
        "skip_tags",
        "version",
        "index_var",
        "parent_role_names",
        "role_names",
        "play_role_names",
        "play_name",
        "verbosity",
        "search_path",
        "included_var_files",
        "limit",
        "forks",
        "inventory_sources",
        "config_file",
        "dependent_role_names",
        "collection_name",
        "playbook_python",
    ];
    let mut rest = text;
    while let Some(at) = rest.find("ansible_") {
        let tail = rest.get(at + "ansible_".len()..).unwrap_or("");
        let name: String = tail
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        // Registered results and loop fields are spelled `ansible_` too, but only
        // the names above; anything else may be a fact (including `ansible_eth0`).
        if !name.is_empty() && !NOT_FACTS.contains(&name.as_str()) {
            return true;
        }
        rest = tail;
    }
    false
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1000.0 * 1000.0).round() / 1000.0
}

/// The longest `loop_control.pause`: 2^63 - 1 nanoseconds, Python's limit for a sleep.
const MAX_PAUSE: Duration = Duration::from_nanos(i64::MAX as u64);

/// A value that is data, never templated: a module's result, a fact, a loop item.
/// The variables a task runs with, and which of them are its loop's (`item`,
/// `ansible_loop_var`, `index_var`, `ansible_loop`).
struct TaskScope<'v> {
    vars: &'v Vars,
    extra: &'v [(&'v str, &'v Value)],
}

/// Whether unsafe data is anywhere inside `v` (Ansible's `AnsibleContext._is_unsafe`).
fn holds_unsafe(v: &Value) -> bool {
    crate::template::unsafe_inner(v).is_some()
        || match v {
            Value::Array(items) => items.iter().any(holds_unsafe),
            Value::Object(map) => map.values().any(holds_unsafe),
            _ => false,
        }
}

fn unsafe_data(v: Value) -> Value {
    let mut m = serde_json::Map::with_capacity(1);
    m.insert(crate::plan::UNSAFE_KEY.to_string(), v);
    Value::Object(m)
}

/// Ansible's result for a task whose `timeout` ran out (`TaskTimeoutError`).
fn timed_out(action: &str, period: u64) -> Vars {
    let mut r = failed_result(format!(
        "The {action} action failed to execute in the expected time frame ({period}) and was terminated"
    ));
    r.insert(
        "timedout".into(),
        json!({"frame": format!("the {action} module"), "period": period}),
    );
    r
}

/// `template` with `mode: preserve` gives the destination its source's mode, which the
/// template action reads on the controller before the module runs: here the mode the
/// payload (or the machine, for a file made during the run) gives the found `src`.
fn template_mode_preserve(
    module: &str,
    mut args: Vars,
    files: &BTreeMap<String, HostFile>,
) -> Vars {
    if module != "template" || args.get("mode").and_then(Value::as_str) != Some("preserve") {
        return args;
    }
    let mode = args
        .get("src")
        .and_then(Value::as_str)
        .and_then(|s| files.get(s))
        .and_then(|f| f.mode);
    if let Some(mode) = mode {
        args.insert("mode".into(), format!("0{mode:03o}").into());
    }
    args
}

/// Whether the task's host is the controller itself (`ansible_connection: local`): its
/// controller files may then be read from the machine when the task runs.
fn is_local(ctx: &JValue) -> bool {
    ctx.get_attr("ansible_connection")
        .ok()
        .is_some_and(|v| v.as_str() == Some("local"))
}

/// The collection (`ns.coll`) a role directory belongs to: the two names after
/// `ansible_collections/` when the role is in that collection's `roles/`.
fn collection_of(role_path: &str) -> Option<String> {
    let rest = role_path.rsplit_once("/ansible_collections/")?.1;
    let mut parts = rest.split('/');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(ns), Some(coll), Some("roles")) if !ns.is_empty() && !coll.is_empty() => {
            Some(format!("{ns}.{coll}"))
        }
        _ => None,
    }
}

/// A failed task's result, saying `msg` (also the deployer's, for a task it could not
/// carry out).
pub fn failed_result(msg: String) -> Vars {
    let mut r = Vars::new();
    r.insert("changed".into(), false.into());
    r.insert("failed".into(), true.into());
    r.insert("msg".into(), msg.into());
    r
}

/// The result of a task whose host could not be reached (the host it was delegated to),
/// as Ansible's task executor gives it.
pub fn unreachable_result(msg: String) -> Vars {
    let mut r = Vars::new();
    r.insert("changed".into(), false.into());
    r.insert("msg".into(), msg.into());
    r.insert("unreachable".into(), true.into());
    r
}

/// A module's outcome as the result `register` stores.
pub(crate) fn outcome_to_result(o: Outcome) -> Vars {
    let mut r = o.data;
    r.insert("changed".into(), o.changed.into());
    r.insert("failed".into(), o.failed.into());
    if o.skipped {
        r.insert("skipped".into(), true.into());
    }
    if let Some(m) = o.msg {
        r.insert("msg".into(), m.into());
    }
    // A module whose Ansible counterpart shapes its `diff` otherwise (a single mapping,
    // or state mappings as `file` gives) registers it in its data; the others register
    // the list of before/after pairs, as copy and lineinfile do.
    if !o.diff.is_empty() && !r.contains_key("diff") {
        r.insert(
            "diff".into(),
            serde_json::to_value(&o.diff).unwrap_or(Value::Null),
        );
    }
    r
}

fn status_of(r: &Vars) -> Status {
    let flag = |k: &str| r.get(k) == Some(&Value::Bool(true));
    // Ansible's TaskResult.is_failed: where failed_when gave a verdict (the task's, or a
    // loop item's), that verdict decides, not `failed`, which running out of retries sets
    // as well. An error evaluating it is a (true) text.
    let truthy = |v: Option<&Value>| match v {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => !s.is_empty(),
        _ => false,
    };
    let items = r.get("results").and_then(Value::as_array);
    let by_items = items.is_some_and(|i| i.iter().any(|x| x.get("failed_when_result").is_some()));
    let failed = if by_items {
        items.is_some_and(|i| i.iter().any(|x| truthy(x.get("failed_when_result"))))
    } else if r.contains_key("failed_when_result") {
        truthy(r.get("failed_when_result"))
    } else {
        flag("failed")
    };
    // TaskResult.is_unreachable: the task's flag, or any loop item's.
    let unreachable = flag("unreachable")
        || items.is_some_and(|i| {
            i.iter()
                .any(|x| x.get("unreachable") == Some(&Value::Bool(true)))
        });
    if failed {
        Status::Failed
    } else if unreachable {
        Status::Unreachable
    } else if flag("skipped") {
        Status::Skipped
    } else if flag("changed") {
        Status::Changed
    } else {
        Status::Ok
    }
}
