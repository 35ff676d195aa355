//! Converts rustle-plan 0.1.0 output into the project's plan types.
//!
//! The input is read level by level (plan, play, batch, task, condition) from a JSON tree so
//! that every error carries the path of the part at fault. Fields rustle-deploy has no use
//! for (estimates, scores, risk levels, binary deployments) are ignored whatever they hold.

use super::{LoadedPlan, PlanError, PlanSource, describe};
use rustle_runner::plan::{Condition, DeployPlan, PLAN_FORMAT, PLAN_VERSION, Play, Task};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use std::collections::{BTreeMap, HashMap};

/// The top level; everything else there (estimates, `hosts`, ...) is ignored.
#[derive(Deserialize)]
struct RpPlan {
    metadata: RpMetadata,
    plays: Vec<Value>,
}

#[derive(Deserialize)]
struct RpMetadata {
    #[serde(default)]
    planning_options: RpOptions,
}

#[derive(Deserialize, Default)]
struct RpOptions {
    #[serde(default)]
    check_mode: bool,
    #[serde(default)]
    diff_mode: bool,
}

#[derive(Deserialize)]
struct RpPlay {
    #[serde(default)]
    name: String,
    #[serde(default)]
    strategy: Value,
    #[serde(default)]
    serial: Value,
    #[serde(default)]
    hosts: Vec<String>,
    #[serde(default)]
    batches: Vec<Value>,
    #[serde(default)]
    handlers: Vec<Value>,
}

#[derive(Deserialize)]
struct RpBatch {
    batch_id: String,
    #[serde(default)]
    tasks: Vec<Value>,
    #[serde(default)]
    dependencies: Vec<String>,
}

#[derive(Deserialize)]
struct RpTask {
    task_id: String,
    #[serde(default)]
    name: Option<String>,
    module: String,
    #[serde(default)]
    args: Map<String, Value>,
    #[serde(default)]
    conditions: Vec<Value>,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default)]
    notify: Vec<String>,
    #[serde(default)]
    execution_order: u64,
}

#[derive(Deserialize)]
struct RpHandler {
    name: String,
    module: String,
    #[serde(default)]
    args: Map<String, Value>,
    #[serde(default)]
    conditions: Vec<Value>,
    #[serde(default)]
    execution_order: u64,
}

/// Strategies whose batch layout is plain "every task in order on every host", which is
/// exactly what the runner does; anything else is worth a note.
const PLAIN_STRATEGIES: [&str; 2] = ["BinaryHybrid", "Linear"];

/// What the condition variants of rustle-plan 0.1.0 are called, for error messages.
const CONDITION_VARIANTS: &str = "When, Tag, SkipTag, Host, CheckMode";

/// Shared state of one conversion: the input's name (for errors) and the notes gathered.
struct Converter<'a> {
    source_name: &'a str,
    notes: Vec<String>,
}

/// Converts a parsed rustle-plan document (already known to carry `plays` and
/// `metadata.rustle_plan_version`) into a [`LoadedPlan`].
pub(super) fn convert(
    value: Value,
    version: &str,
    source_name: &str,
) -> Result<LoadedPlan, PlanError> {
    let mut cx = Converter {
        source_name,
        notes: Vec::new(),
    };
    let top: RpPlan = cx.decode(value, "(top level)")?;
    if version != "0.1.0" {
        cx.notes.push(format!(
            "read as rustle-plan 0.1.0 output although it says version {version}"
        ));
    }
    let mut plays = Vec::with_capacity(top.plays.len());
    for (i, play) in top.plays.into_iter().enumerate() {
        plays.push(cx.play(play, &format!("plays[{i}]"))?);
    }
    let plan = DeployPlan {
        format: PLAN_FORMAT.to_string(),
        version: PLAN_VERSION,
        check_mode: top.metadata.planning_options.check_mode,
        diff_mode: top.metadata.planning_options.diff_mode,
        plays,
        files: BTreeMap::new(),
        modules: BTreeMap::new(),
        magic: Default::default(),
        library: Default::default(),
        controller_answers: BTreeMap::new(),
    };
    Ok(LoadedPlan {
        plan,
        source: PlanSource::RustlePlan {
            version: version.to_string(),
        },
        notes: cx.notes,
    })
}

impl Converter<'_> {
    fn field_error(&self, path: &str, reason: impl Into<String>) -> PlanError {
        PlanError::Field {
            source_name: self.source_name.to_string(),
            path: path.to_string(),
            reason: reason.into(),
        }
    }

    /// Deserializes one level, reporting failures at `path`.
    fn decode<T: DeserializeOwned>(&self, value: Value, path: &str) -> Result<T, PlanError> {
        serde_json::from_value(value).map_err(|e| self.field_error(path, e.to_string()))
    }

    fn play(&mut self, value: Value, path: &str) -> Result<Play, PlanError> {
        let rp: RpPlay = self.decode(value, path)?;
        let label = if rp.name.is_empty() {
            path.to_string()
        } else {
            format!("play '{}'", rp.name)
        };

        let hosts = if rp.hosts.is_empty() {
            self.notes.push(format!(
                "{label}: hosts were empty in the rustle-plan output (it leaves group patterns \
                 unresolved); resolved as all inventory hosts"
            ));
            vec!["all".to_string()]
        } else {
            rp.hosts
        };
        let plain = rp
            .strategy
            .as_str()
            .is_some_and(|s| PLAIN_STRATEGIES.contains(&s));
        if !plain && !rp.strategy.is_null() {
            self.notes.push(format!(
                "{label}: strategy {} is not applied; every host runs the tasks in order",
                rp.strategy
            ));
        }
        if !rp.serial.is_null() {
            self.notes.push(format!(
                "{label}: serial {} is not applied; all hosts are deployed together",
                rp.serial
            ));
        }

        let tasks = self.tasks_from_batches(rp.batches, path, &label)?;

        // Ansible runs handlers in the order they are defined; a later handler with the
        // same name replaces an earlier one (rustle-plan's handler ids are not unique, so
        // names are the only key).
        let mut handlers: Vec<(u64, Task)> = Vec::new();
        for (i, value) in rp.handlers.into_iter().enumerate() {
            let hpath = format!("{path}.handlers[{i}]");
            let rh: RpHandler = self.decode(value, &hpath)?;
            let mut task = Task {
                name: Some(rh.name.clone()),
                module: rh.module,
                args: rh.args,
                ..Task::default()
            };
            self.apply_conditions(&mut task, rh.conditions, &hpath)?;
            if let Some(pos) = handlers
                .iter()
                .position(|(_, h)| h.name.as_deref() == Some(rh.name.as_str()))
            {
                self.notes.push(format!(
                    "{label}: handler '{}' is defined more than once; the last one is used",
                    rh.name
                ));
                handlers.remove(pos);
            }
            handlers.push((rh.execution_order, task));
        }
        handlers.sort_by_key(|(order, _)| *order);

        Ok(Play {
            name: rp.name,
            hosts,
            // Ansible gathers facts unless the playbook says otherwise, and rustle-plan does
            // not carry `gather_facts`; the runner only gathers when facts are referred to.
            gather_facts: true,
            tasks,
            handlers: handlers.into_iter().map(|(_, t)| t).collect(),
            ..Play::default()
        })
    }

    /// The play's tasks: batches in dependency order, each batch's tasks by
    /// `execution_order`, a task repeated in several batches (host-split rolling batches)
    /// kept once.
    fn tasks_from_batches(
        &mut self,
        batches: Vec<Value>,
        path: &str,
        label: &str,
    ) -> Result<Vec<Task>, PlanError> {
        let mut decoded = Vec::with_capacity(batches.len());
        for (i, value) in batches.into_iter().enumerate() {
            let bpath = format!("{path}.batches[{i}]");
            let batch: RpBatch = self.decode(value, &bpath)?;
            decoded.push((bpath, batch));
        }
        let order = self.batch_order(&decoded, path)?;

        // A task is identified by its id *and* its order: ids restart inside included
        // files, so the same id legitimately names several tasks of one play.
        let mut seen: HashMap<(String, u64), (String, Task)> = HashMap::new();
        let mut tasks = Vec::new();
        for index in order {
            let Some((bpath, batch)) = decoded.get_mut(index) else {
                continue;
            };
            let mut in_batch = Vec::with_capacity(batch.tasks.len());
            for (k, value) in std::mem::take(&mut batch.tasks).into_iter().enumerate() {
                let tpath = format!("{bpath}.tasks[{k}]");
                let rt: RpTask = self.decode(value, &tpath)?;
                in_batch.push((rt.execution_order, rt, tpath));
            }
            // Stable: tasks with equal orders keep their file order.
            in_batch.sort_by_key(|(order, _, _)| *order);
            for (order, rt, tpath) in in_batch {
                let id = rt.task_id.clone();
                let task = self.task(rt, &tpath)?;
                match seen.get(&(id.clone(), order)) {
                    Some((_, earlier)) if *earlier == task => {}
                    Some((first, _)) => {
                        return Err(self.field_error(
                            &tpath,
                            format!(
                                "task id `{id}` with execution_order {order} was already \
                                 used by a different task at {first}"
                            ),
                        ));
                    }
                    None => {
                        seen.insert((id, order), (tpath, task.clone()));
                        tasks.push(task);
                    }
                }
            }
        }
        if tasks.is_empty() {
            self.notes.push(format!("{label}: has no tasks"));
        }
        Ok(tasks)
    }

    /// Indexes of the batches in an order that respects their `dependencies`; among the
    /// batches ready to run, file order decides.
    fn batch_order(
        &self,
        batches: &[(String, RpBatch)],
        path: &str,
    ) -> Result<Vec<usize>, PlanError> {
        let mut index_of: HashMap<&str, usize> = HashMap::new();
        for (i, (bpath, batch)) in batches.iter().enumerate() {
            if index_of.insert(batch.batch_id.as_str(), i).is_some() {
                return Err(self.field_error(
                    &format!("{bpath}.batch_id"),
                    format!(
                        "batch id `{}` is used by more than one batch",
                        batch.batch_id
                    ),
                ));
            }
        }
        let mut deps: Vec<Vec<usize>> = Vec::with_capacity(batches.len());
        for (bpath, batch) in batches {
            let mut these = Vec::with_capacity(batch.dependencies.len());
            for (d, dep) in batch.dependencies.iter().enumerate() {
                let Some(&j) = index_of.get(dep.as_str()) else {
                    return Err(self.field_error(
                        &format!("{bpath}.dependencies[{d}]"),
                        format!("unknown batch id `{dep}`"),
                    ));
                };
                these.push(j);
            }
            deps.push(these);
        }

        let mut done = vec![false; batches.len()];
        let mut order = Vec::with_capacity(batches.len());
        while order.len() < batches.len() {
            let ready = (0..batches.len()).find(|&i| {
                !done.get(i).copied().unwrap_or(true)
                    && deps
                        .get(i)
                        .is_some_and(|d| d.iter().all(|&j| done.get(j).copied().unwrap_or(false)))
            });
            let Some(i) = ready else {
                let stuck: Vec<&str> = batches
                    .iter()
                    .zip(&done)
                    .filter(|(_, d)| !**d)
                    .map(|((_, b), _)| b.batch_id.as_str())
                    .collect();
                return Err(self.field_error(
                    &format!("{path}.batches"),
                    format!(
                        "batch dependencies form a cycle among: {}",
                        stuck.join(", ")
                    ),
                ));
            };
            if let Some(d) = done.get_mut(i) {
                *d = true;
            }
            order.push(i);
        }
        Ok(order)
    }

    fn task(&mut self, rt: RpTask, path: &str) -> Result<Task, PlanError> {
        let mut task = Task {
            name: rt.name,
            module: rt.module,
            args: rt.args,
            tags: Vec::new(),
            notify: rt.notify,
            ..Task::default()
        };
        add_unique(&mut task.tags, rt.tags);
        self.apply_conditions(&mut task, rt.conditions, path)?;
        if refers_to_item(&Value::Object(task.args.clone())) {
            self.notes.push(format!(
                "{path} ('{}'): arguments refer to `item`, but rustle-plan drops loops; \
                 the task runs once without it",
                task.display_name()
            ));
        }
        Ok(task)
    }

    /// Turns rustle-plan conditions into task keywords: `When` and `Host` into `when`,
    /// `Tag`/`SkipTag` into `tags` (filtering already happened in rustle-plan; they are
    /// kept for information), `CheckMode` into `check_mode`.
    fn apply_conditions(
        &self,
        task: &mut Task,
        conditions: Vec<Value>,
        path: &str,
    ) -> Result<(), PlanError> {
        let mut when: Vec<String> = Vec::new();
        for (n, condition) in conditions.into_iter().enumerate() {
            let cpath = format!("{path}.conditions[{n}]");
            let (variant, body) = match condition {
                Value::Object(map) if map.len() == 1 => match map.into_iter().next() {
                    Some(pair) => pair,
                    None => continue,
                },
                other => {
                    return Err(self.field_error(
                        &cpath,
                        format!(
                            "expected an object with exactly one key naming the condition \
                             ({CONDITION_VARIANTS}), found {}",
                            describe(&other)
                        ),
                    ));
                }
            };
            let vpath = format!("{cpath}.{variant}");
            match variant.as_str() {
                "When" => {
                    let c: WhenBody = self.decode(body, &vpath)?;
                    when.push(c.expression);
                }
                "Tag" | "SkipTag" => {
                    let c: TagsBody = self.decode(body, &vpath)?;
                    add_unique(&mut task.tags, c.tags);
                }
                "CheckMode" => {
                    let c: CheckModeBody = self.decode(body, &vpath)?;
                    task.check_mode = Some(c.enabled.into());
                }
                "Host" => {
                    let c: HostBody = self.decode(body, &vpath)?;
                    if !is_plain_host_name(&c.pattern) {
                        return Err(self.field_error(
                            &format!("{vpath}.pattern"),
                            format!(
                                "host pattern `{}` cannot be turned into a task condition; only \
                                 a plain host name can",
                                c.pattern
                            ),
                        ));
                    }
                    when.push(format!("inventory_hostname == \"{}\"", c.pattern));
                }
                other => {
                    return Err(self.field_error(
                        &cpath,
                        format!(
                            "unknown condition variant `{other}`; rustle-plan 0.1.0 has \
                             {CONDITION_VARIANTS}"
                        ),
                    ));
                }
            }
        }
        task.when = match when.len() {
            0 => None,
            1 => when.pop().map(Condition::One),
            _ => Some(Condition::All(when)),
        };
        Ok(())
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WhenBody {
    expression: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TagsBody {
    tags: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CheckModeBody {
    enabled: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HostBody {
    pattern: String,
}

/// Appends the values not already present, keeping order.
fn add_unique(into: &mut Vec<String>, values: Vec<String>) {
    for v in values {
        if !into.contains(&v) {
            into.push(v);
        }
    }
}

/// A single host name, as opposed to a group, `all`, a wildcard, a regex or a combination;
/// only such a pattern can be checked on the host with `inventory_hostname`. It must also
/// be safe to place inside a double-quoted Jinja string.
fn is_plain_host_name(pattern: &str) -> bool {
    !pattern.is_empty()
        && pattern != "all"
        && pattern
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// Whether a value has a `{{ item ... }}` reference in it, a sign of a loop rustle-plan lost.
fn refers_to_item(value: &Value) -> bool {
    match value {
        Value::String(s) => s
            .split("{{")
            .skip(1)
            .filter_map(|rest| rest.trim_start().strip_prefix("item"))
            .any(|after| {
                !after
                    .chars()
                    .next()
                    .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
            }),
        Value::Array(a) => a.iter().any(refers_to_item),
        Value::Object(o) => o.values().any(refers_to_item),
        _ => false,
    }
}
