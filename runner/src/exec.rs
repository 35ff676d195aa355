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

use crate::events::{EVENTS_VERSION, Event, Recap, Sink, Status};
use crate::facts;
use crate::modules::{Ctx, Local, ModuleError, ModuleHost, Outcome};
use crate::plan::{Condition, HostPlan, Play, Task, Vars};
use crate::privilege::RunAs;
use crate::template::Engine;
use minijinja::value::Value as JValue;
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What a `no_log` task's reported result says instead of the result (Ansible's words).
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
}

/// Keywords a block hands down to the tasks inside it.
#[derive(Debug, Clone, Default)]
struct Inherited<'a> {
    vars: Vec<&'a Vars>,
    when: Vec<&'a Condition>,
    become_: Option<bool>,
    become_user: Option<&'a str>,
    environment: Vec<&'a Value>,
    ignore_errors: bool,
    check_mode: Option<bool>,
}

/// Runs one host's plan, reporting through a [`Sink`].
pub struct Executor<'a> {
    plan: &'a HostPlan,
    engine: Arc<Engine>,
    sink: &'a mut dyn Sink,
    opts: RunOptions,
    facts: Vars,
    /// Registered results and `set_fact` values: they outlive plays, as in Ansible.
    host_facts: Vars,
    recap: Recap,
    play_name: String,
    notified: BTreeSet<String>,
    /// The last failure that stopped the host (task name, module, result): a rescue
    /// section sees it as `ansible_failed_task` / `ansible_failed_result`.
    failure: Option<(String, String, Value)>,
    /// The current play, whose handlers `meta: flush_handlers` runs.
    play: Option<&'a Play>,
    /// Whether anything in the plan refers to a gathered fact (decided once).
    facts_used: Option<bool>,
    /// Where modules run: here, or (the deployer's SSH mode) on a remote host.
    host: Box<dyn ModuleHost + 'a>,
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
        Self::with_host(plan, sink, opts, Box::new(Local))
    }

    /// Prepares to run `plan` with its modules run (and facts gathered) by `host`.
    pub fn with_host(
        plan: &'a HostPlan,
        sink: &'a mut dyn Sink,
        opts: RunOptions,
        host: Box<dyn ModuleHost + 'a>,
    ) -> Self {
        Executor {
            plan,
            engine: Arc::new(Engine::with_controller(Arc::new(
                crate::lookups::Answers::new(plan.controller_lookups.clone()),
            ))),
            sink,
            opts,
            facts: Vars::new(),
            host_facts: Vars::new(),
            recap: Recap::default(),
            play_name: String::new(),
            notified: BTreeSet::new(),
            failure: None,
            play: None,
            facts_used: None,
            host,
        }
    }

    /// Runs every play and emits the recap.
    pub fn run(mut self) -> RunSummary {
        let started = Instant::now();
        let mut host_failed = false;
        for play in &self.plan.plays {
            match self.run_play(play) {
                Ok(()) | Err(Halt::EndPlay) => {}
                Err(Halt::EndHost) => break,
                Err(Halt::Failed | Halt::Stopped) => {
                    host_failed = true;
                    break;
                }
            }
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

    fn run_play(&mut self, play: &'a Play) -> Result<(), Halt> {
        self.play_name = play.name.clone();
        self.notified.clear();
        self.sink.emit(&Event::Play {
            v: EVENTS_VERSION,
            name: play.name.clone(),
        });
        if play.gather_facts && self.facts.is_empty() {
            let started = Instant::now();
            // Gathering reads /proc, /etc and runs a few syscalls per interface; a plan
            // that never refers to a fact does not pay for it (the task is still
            // reported, so the counts match Ansible's).
            if *self
                .facts_used
                .get_or_insert_with(|| facts_referenced(self.plan))
            {
                self.facts = self.host.facts();
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
        self.run_list(&play.tasks, &play_scope(play), false)?;
        self.flush_handlers()
    }

    /// Runs the notified handlers, in the order they are defined, each once; a handler
    /// may notify a later one. Called at the end of a play and by `meta: flush_handlers`.
    fn flush_handlers(&mut self) -> Result<(), Halt> {
        let Some(play) = self.play else {
            return Ok(());
        };
        // Handlers see the play's keywords, not those of the task that flushed them.
        let inherited = play_scope(play);
        for handler in &play.handlers {
            let name = handler.name.clone().unwrap_or_default();
            let wanted = self.notified.remove(&name)
                | handler
                    .listen
                    .iter()
                    .fold(false, |any, l| self.notified.remove(l) | any);
            if wanted {
                self.run_task(handler, &inherited, true)?;
            }
        }
        Ok(())
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
        if let Some(not_run) = self.conditions(task, inherited, &ctx) {
            if not_run.get("failed") != Some(&Value::Bool(true)) {
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
        match action.as_str() {
            "flush_handlers" => self.flush_handlers(),
            "end_play" | "end_batch" => Err(Halt::EndPlay),
            "end_host" => Err(Halt::EndHost),
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
                    "meta: unsupported action '{other}' (supported: flush_handlers, end_play, end_batch, end_host, clear_facts, noop, refresh_inventory, reset_connection, clear_host_errors)"
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

    fn run_list(
        &mut self,
        tasks: &'a [Task],
        inherited: &Inherited<'a>,
        handler: bool,
    ) -> Result<(), Halt> {
        for task in tasks {
            self.run_task(task, inherited, handler)?;
        }
        Ok(())
    }

    fn child_inherited(task: &'a Task, parent: &Inherited<'a>) -> Inherited<'a> {
        let mut inh = parent.clone();
        inh.vars.push(&task.vars);
        if let Some(w) = &task.when {
            inh.when.push(w);
        }
        inh.become_ = task.become_.or(parent.become_);
        inh.become_user = task.become_user.as_deref().or(parent.become_user);
        inh.environment.extend(task.environment.as_ref());
        inh.ignore_errors = parent.ignore_errors || task.ignore_errors;
        inh.check_mode = task.check_mode.or(parent.check_mode);
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
        let mut result = self.run_list(block, &inh, handler);
        if result == Err(Halt::Failed) && !task.rescue.is_empty() {
            self.recap.rescued += 1;
            // The failure that rescue handled no longer counts against the host.
            self.recap.failed = self.recap.failed.saturating_sub(1);
            // As Ansible does, the rescue section sees what failed.
            if let Some((name, action, result)) = self.failure.take() {
                self.host_facts.insert(
                    "ansible_failed_task".into(),
                    json!({"name": name, "action": action}),
                );
                self.host_facts
                    .insert("ansible_failed_result".into(), result);
            }
            result = self.run_list(&task.rescue, &inh, handler);
        }
        // `end_play` / `end_host` leave at once; `always` is for failures.
        if matches!(result, Err(Halt::EndPlay | Halt::EndHost | Halt::Stopped)) {
            return result;
        }
        let always = self.run_list(&task.always, &inh, handler);
        result.and(always)
    }

    /// A template context over `vars`: variables whose values are templates render
    /// where they are used, as Ansible's do (see [`crate::lazyvars`]).
    fn jctx(&self, vars: &Vars) -> JValue {
        crate::lazyvars::context(vars, &self.engine)
    }

    /// The variables visible to a task, lowest precedence first.
    fn context(&self, inherited: &Inherited<'_>, task: &Task, extra: &[(&str, &Value)]) -> Vars {
        let mut vars = self.plan.host_vars.clone();
        vars.extend(self.facts.iter().map(|(k, v)| (k.clone(), v.clone())));
        if !self.facts.is_empty() {
            vars.insert(
                "ansible_facts".into(),
                facts::unprefixed(&self.facts).into(),
            );
        }
        for scope in &inherited.vars {
            vars.extend(scope.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        vars.extend(task.vars.iter().map(|(k, v)| (k.clone(), v.clone())));
        vars.extend(self.host_facts.iter().map(|(k, v)| (k.clone(), v.clone())));
        vars.insert(
            "ansible_check_mode".into(),
            self.check_mode(inherited, task).into(),
        );
        for (k, v) in extra {
            vars.insert((*k).to_string(), (*v).clone());
        }
        vars
    }

    fn check_mode(&self, inherited: &Inherited<'_>, task: &Task) -> bool {
        task.check_mode
            .or(inherited.check_mode)
            .unwrap_or(self.plan.check_mode || self.opts.check_mode)
    }

    fn run_task(
        &mut self,
        task: &'a Task,
        inherited: &Inherited<'a>,
        handler: bool,
    ) -> Result<(), Halt> {
        if self.sink.stop_requested() {
            return Err(Halt::Stopped);
        }
        if let Some(block) = &task.block {
            return self.run_block(task, block, inherited, handler);
        }
        if task.module_name() == "meta" {
            return self.run_meta(task, inherited, handler);
        }
        let started = Instant::now();
        let base = self.context(inherited, task, &[]);
        let ctx = self.jctx(&base);
        let name = self.task_name(task, &ctx);
        let module = task.module_name().to_string();
        let ignore_errors = inherited.ignore_errors || task.ignore_errors;

        let result = match &task.loop_ {
            None => self.run_once(task, inherited, &[]),
            Some(spec) => match self.loop_items(task, spec, &ctx) {
                Ok(items) => self.run_loop(task, inherited, &items),
                // Ansible defers a loop that fails to render (an undefined variable)
                // until after `when`: `loop: "{{ x }}"` with `when: x is defined` skips.
                Err((msg, true)) => self
                    .conditions(task, inherited, &ctx)
                    .filter(|r| r.get("skipped") == Some(&Value::Bool(true)))
                    .unwrap_or_else(|| failed_result(msg)),
                Err((msg, false)) => failed_result(msg),
            },
        };
        let status = status_of(&result);
        if let Some(reg) = &task.register {
            self.host_facts
                .insert(reg.clone(), Value::Object(result.clone()));
        }
        if status == Status::Changed {
            for n in &task.notify {
                self.notified.insert(n.clone());
            }
        }
        let ignored = status == Status::Failed && ignore_errors;
        if status == Status::Failed && !ignored {
            self.failure = Some((name.clone(), module.clone(), Value::Object(result.clone())));
        }
        // no_log hides what a task saw and said, as Ansible's output does; the
        // registered variable keeps the real result.
        let shown = if task.no_log {
            json!({"censored": NO_LOG_CENSORED, "changed": status == Status::Changed,
                   "failed": status == Status::Failed})
        } else {
            Value::Object(result)
        };
        self.record(&name, &module, status, ignored, handler, started, shown);
        if status == Status::Failed && !ignored {
            return Err(Halt::Failed);
        }
        Ok(())
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
            return crate::lookups::loop_items(&self.engine, lookup, spec, ctx);
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
        let loop_var = control
            .loop_var
            .clone()
            .unwrap_or_else(|| "item".to_string());
        // The pause between items. A value a sleep cannot last (Python's time.sleep
        // refuses more than 2^63 ns, so Ansible fails such a loop) fails the task here
        // instead of panicking in Duration::from_secs_f64; a loop of one item never
        // pauses, so its pause is never checked, as in Ansible.
        let pause = match control.pause.filter(|s| s.is_finite() && *s > 0.0) {
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
        for (index, item) in items.iter().enumerate() {
            if index > 0
                && let Some(d) = pause
            {
                std::thread::sleep(d);
            }
            let index_value = Value::from(index);
            let mut extra: Vec<(&str, &Value)> = vec![(&loop_var, item)];
            if let Some(name) = &control.index_var {
                extra.push((name, &index_value));
            }
            let loop_info = control
                .extended
                .then(|| loop_info(items, index, control.extended_allitems != Some(false)));
            if let Some(info) = &loop_info {
                extra.push(("ansible_loop", info));
            }
            let mut r = self.run_once(task, inherited, &extra);
            r.insert(loop_var.clone(), item.clone());
            r.insert("ansible_loop_var".into(), loop_var.clone().into());
            if let Some(name) = &control.index_var {
                r.insert("ansible_index_var".into(), name.clone().into());
                r.insert(name.clone(), index_value.clone());
            }
            if let Some(label) = &control.label {
                let scope = self.jctx(&self.context(inherited, task, &extra));
                let shown = self
                    .engine
                    .render_str(label, &scope)
                    .unwrap_or_else(|_| label.clone());
                r.insert("_ansible_item_label".into(), shown.into());
            }
            let stop = control.break_when.as_ref().is_some_and(|cond| {
                let mut scope = self.context(inherited, task, &extra);
                if let Some(reg) = &task.register {
                    scope.insert(reg.clone(), Value::Object(r.clone()));
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
        let retries = task.until.as_ref().map(|_| task.retries.unwrap_or(3));
        let mut attempts = 0u32;
        loop {
            attempts += 1;
            let mut result = self.invoke(task, inherited, &ctx);
            self.apply_overrides(task, &vars, &mut result);
            let Some(until) = &task.until else {
                return result;
            };
            let mut with_result = vars.clone();
            if let Some(reg) = &task.register {
                with_result.insert(reg.clone(), Value::Object(result.clone()));
            }
            let done = self
                .eval_condition(until, &self.jctx(&with_result))
                .map(|(b, _)| b)
                .unwrap_or(false);
            if done || attempts > retries.unwrap_or(0) {
                result.insert("attempts".into(), attempts.into());
                if !done {
                    result.insert("failed".into(), true.into());
                    result
                        .entry("msg")
                        .or_insert_with(|| "Retries exhausted".into());
                }
                return result;
            }
            std::thread::sleep(Duration::from_secs(task.delay.unwrap_or(5)));
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
                    r.insert("false_condition".into(), expr.into());
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

    /// Evaluates a condition; on false, also returns the expression that was false.
    fn eval_condition(
        &self,
        cond: &Condition,
        ctx: &JValue,
    ) -> Result<(bool, String), crate::template::TemplateError> {
        match cond.expressions() {
            Err(b) => Ok((b, b.to_string())),
            Ok(exprs) => {
                for e in exprs {
                    if !self.engine.eval_bool(e, ctx)? {
                        return Ok((false, e.to_string()));
                    }
                }
                Ok((true, String::new()))
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
            scope.insert(reg.clone(), Value::Object(result.clone()));
        }
        let ctx = self.jctx(&scope);
        if let Some(cond) = &task.changed_when {
            match self.eval_condition(cond, &ctx) {
                Ok((b, _)) => {
                    result.insert("changed".into(), b.into());
                }
                Err(e) => {
                    result.insert("failed".into(), true.into());
                    result.insert("msg".into(), format!("changed_when: {e}").into());
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
                Err(e) => {
                    result.insert("failed".into(), true.into());
                    result.insert("msg".into(), format!("failed_when: {e}").into());
                }
            }
        }
    }

    /// Renders the arguments and runs the module.
    fn invoke(&mut self, task: &Task, inherited: &Inherited<'_>, ctx: &JValue) -> Vars {
        let module = task.module_name();
        let args = match self
            .engine
            .render_value(&Value::Object(task.args.clone()), ctx)
        {
            Ok(Value::Object(a)) => a,
            Ok(_) => Vars::new(),
            Err(e) => return failed_result(format!("{e}")),
        };
        let run_as = match self.check_become(task, inherited, ctx) {
            Ok(r) => r,
            Err(msg) => return failed_result(msg),
        };
        let env = match self.environment(task, inherited, ctx) {
            Ok(e) => e,
            Err(msg) => return failed_result(msg),
        };
        let check_mode = self.check_mode(inherited, task);
        let mctx = Ctx {
            check_mode,
            diff_mode: self.plan.diff_mode || self.opts.diff_mode,
            files: &self.plan.files,
            engine: &self.engine,
            vars: ctx,
            env: &env,
            run_as: run_as.as_ref(),
        };
        match self.host.run(module, &args, &mctx) {
            Ok(outcome) => {
                if let Some(Value::Object(f)) = outcome.data.get("ansible_facts") {
                    let facts = f.iter().map(|(k, v)| (k.clone(), v.clone()));
                    // Facts from `setup` are gathered facts (also seen as
                    // `ansible_facts.<name>`); other modules' are host variables.
                    if module == "setup" {
                        self.facts.extend(facts);
                    } else {
                        self.host_facts.extend(facts);
                    }
                }
                outcome_to_result(outcome)
            }
            Err(ModuleError::BadArgs(msg)) => failed_result(format!("{module}: {msg}")),
            Err(e @ ModuleError::Unsupported(_)) => failed_result(e.to_string()),
        }
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
                let v = match v {
                    Value::String(s) => s,
                    Value::Null => String::new(),
                    other => other.to_string(),
                };
                env.retain(|(name, _)| *name != k);
                env.push((k, v));
            }
        }
        Ok(env)
    }

    /// Privilege: the deployer starts the runner as the user the plan needs (through
    /// sudo when it asks for root). Becoming that same user needs nothing; becoming
    /// another one works when the runner is root: the task's processes then start as
    /// that user (see [`crate::privilege`]).
    fn check_become(
        &mut self,
        task: &Task,
        inherited: &Inherited<'_>,
        ctx: &JValue,
    ) -> Result<Option<RunAs>, String> {
        let become_ = task.become_.or(inherited.become_).unwrap_or(false);
        if !become_ {
            return Ok(None);
        }
        let wanted = task
            .become_user
            .as_deref()
            .or(inherited.become_user)
            .unwrap_or("root");
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
            Status::Unreachable => self.recap.unreachable += 1,
        }
        self.sink.emit(&Event::Task {
            v: EVENTS_VERSION,
            play: self.play_name.clone(),
            name: name.to_string(),
            module: module.to_string(),
            status,
            ignored,
            handler,
            duration_ms: ms(started.elapsed()),
            result,
        });
    }
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
fn play_scope(play: &Play) -> Inherited<'_> {
    Inherited {
        vars: vec![&play.vars],
        become_: play.become_,
        become_user: play.become_user.as_deref(),
        environment: play.environment.iter().collect(),
        ..Inherited::default()
    }
}

/// Whether the plan (its tasks, variables or embedded templates) may use a gathered
/// fact. Conservative: dynamic lookups (`vars[...]`, `hostvars`, `lookup(`) count as
/// a use, since what they name cannot be known before the run.
fn facts_referenced(plan: &HostPlan) -> bool {
    const MARKERS: &[&str] = &["ansible_facts", "hostvars", "vars[", "lookup(", "setup"];
    let plays = serde_json::to_string(&plan.plays).unwrap_or_default();
    let vars = serde_json::to_string(&plan.host_vars).unwrap_or_default();
    let texts = plan
        .files
        .values()
        .filter_map(|f| std::str::from_utf8(&f.content).ok());
    [plays.as_str(), vars.as_str()]
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

fn failed_result(msg: String) -> Vars {
    let mut r = Vars::new();
    r.insert("changed".into(), false.into());
    r.insert("failed".into(), true.into());
    r.insert("msg".into(), msg.into());
    r
}

fn outcome_to_result(o: Outcome) -> Vars {
    let mut r = o.data;
    r.insert("changed".into(), o.changed.into());
    r.insert("failed".into(), o.failed.into());
    if o.skipped {
        r.insert("skipped".into(), true.into());
    }
    if let Some(m) = o.msg {
        r.insert("msg".into(), m.into());
    }
    if !o.diff.is_empty() {
        r.insert(
            "diff".into(),
            serde_json::to_value(&o.diff).unwrap_or(Value::Null),
        );
    }
    r
}

fn status_of(r: &Vars) -> Status {
    let flag = |k: &str| r.get(k) == Some(&Value::Bool(true));
    if flag("failed") {
        Status::Failed
    } else if flag("skipped") {
        Status::Skipped
    } else if flag("changed") {
        Status::Changed
    } else {
        Status::Ok
    }
}
