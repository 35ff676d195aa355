//! Playbooks and plays: the list of plays, `import_playbook`, play keywords, and the
//! assembly of a play's sections once tags are applied.

use super::tasks::{self, Cx};
use super::yaml::{self, scalar_str};
use super::{Loader, PlayState, PlaybookError, Where, canonical, override_vars, render_static};
use crate::playbook::tags::{self as tagsel, Selection};
use rustle_runner::plan::{Condition, Play, Task, Vars};
use serde_json::Value;
use serde_norway::{Mapping, Value as Yaml};
use std::collections::BTreeSet;
use std::path::Path;

/// Play keywords read here.
const PLAY_KEYWORDS: [&str; 30] = [
    "name",
    "connection",
    "timeout",
    "remote_user",
    "ignore_errors",
    "ignore_unreachable",
    "check_mode",
    "diff",
    "no_log",
    "environment",
    "hosts",
    "vars",
    "vars_files",
    "gather_facts",
    "become",
    "become_user",
    "become_method",
    "tags",
    "pre_tasks",
    "roles",
    "tasks",
    "post_tasks",
    "handlers",
    "serial",
    "max_fail_percentage",
    "any_errors_fatal",
    "force_handlers",
    "strategy",
    "run_once",
    "throttle",
];

/// Keywords of an `import_playbook` entry.
const IMPORT_KEYWORDS: [&str; 4] = ["name", "vars", "tags", "when"];

/// True for `import_playbook` and its long names.
pub(crate) fn is_import_playbook(key: &str) -> bool {
    tasks::short_name(key) == "import_playbook"
}

/// What an `import_playbook` hands down to the plays it imports.
#[derive(Debug, Clone, Default)]
pub(crate) struct Imported {
    /// Variables, over each play's own `vars`.
    vars: Vars,
    /// Tags added to every play.
    tags: Vec<String>,
    /// Conditions on every task of every play.
    when: Vec<String>,
}

/// A play read, before tag selection and extra vars.
pub(crate) struct LoadedPlay {
    /// The play, `tasks` still empty.
    play: Play,
    /// `pre_tasks`; roles then `tasks`; `post_tasks`.
    sections: [Vec<Task>; 3],
    /// The play's tags (with those of the imports it came through).
    tags: Vec<String>,
    /// Conditions from `import_playbook ... when:`.
    when: Vec<String>,
    /// `serial` and `max_fail_percentage`, and where the play is.
    pub(crate) rolling: (Option<Rolling>, Where),
}

/// A play's `serial` and `max_fail_percentage`: the deployer's rolling strategy.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Rolling {
    /// Hosts per batch: a number, or `"N%"` of the participating hosts.
    pub serial: Value,
    /// Abort after a batch where more than this share of hosts failed; `None` stops
    /// only when every host of a batch failed, as Ansible does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_fail_percentage: Option<u32>,
}

impl Rolling {
    /// Batch size and failed hosts tolerated per batch, for `hosts` participating hosts.
    pub fn batches(&self, hosts: usize) -> (usize, usize) {
        let batch = match &self.serial {
            Value::String(s) => {
                let pct = s
                    .trim_end_matches('%')
                    .trim()
                    .parse::<usize>()
                    .unwrap_or(100);
                // Ansible's pct_to_int: the share rounded down, at least one host.
                (pct.saturating_mul(hosts) / 100).max(1)
            }
            other => other
                .as_u64()
                .and_then(|n| usize::try_from(n).ok())
                .unwrap_or(1)
                .max(1),
        };
        let tolerated = match self.max_fail_percentage {
            // Ansible aborts when failed * 100 / batch > percentage.
            Some(p) => (p as usize).saturating_mul(batch) / 100,
            None => batch.saturating_sub(1),
        };
        (batch, tolerated)
    }
}

/// The magic variables a play's playbook decides: `playbook_dir` (the directory of the
/// playbook file, as an absolute controller path) and the role name lists, as
/// `VariableManager._get_magic_variables` makes them (`ansible_role_names` is a set
/// there; here it is sorted).
fn play_magic(dir: &Path, play_roles: &[String], dependent: &BTreeSet<String>) -> Vars {
    let names = |v: Vec<String>| Value::Array(v.into_iter().map(Value::String).collect());
    let mut all: BTreeSet<String> = dependent.clone();
    all.extend(play_roles.iter().cloned());
    let mut magic = Vars::new();
    magic.insert(
        "playbook_dir".into(),
        Value::String(super::controller_path(dir)),
    );
    magic.insert("ansible_play_role_names".into(), names(play_roles.to_vec()));
    magic.insert("role_names".into(), names(play_roles.to_vec()));
    magic.insert(
        "ansible_dependent_role_names".into(),
        names(dependent.iter().cloned().collect()),
    );
    magic.insert(
        "ansible_role_names".into(),
        names(all.into_iter().collect()),
    );
    magic
}

/// A play keyword given as a template, rendered with the play's and the extra variables
/// (what Ansible has when it starts a play), lookups run in the playbook's directory
/// `dir`; `None` when it renders to `omit`.
fn play_keyword(text: &str, vars: &Vars, dir: &Path) -> Result<Option<String>, String> {
    // Lookups in a play keyword run on the controller, as they do in Ansible.
    let controller = crate::lookups::Direct(crate::lookups::World::new(dir.to_path_buf()));
    let engine = std::sync::Arc::new(rustle_runner::template::Engine::with_controller(
        std::sync::Arc::new(controller),
    ));
    // A marker no template writes by accident stands for `omit` here.
    const OMIT: &str = "__omit_place_holder__rustle_play_keyword";
    let mut vars = vars.clone();
    vars.insert("omit".into(), Value::String(OMIT.into()));
    let ctx = rustle_runner::lazyvars::context(&vars, &engine);
    let rendered = engine
        .render_str(text, &ctx)
        .map_err(|e| format!("'{text}': {e}"))?;
    Ok((rendered != OMIT).then_some(rendered))
}

/// `serial`: a positive number or `"N%"`; a list of one such value.
fn serial_value(v: &Yaml, at: &Where) -> Result<Value, PlaybookError> {
    let bad = || {
        at.invalid(
            "serial",
            "expected a number of hosts or a percentage like \"30%\"",
        )
    };
    match v {
        Yaml::Sequence(items) => match items.as_slice() {
            [one] => serial_value(one, at),
            _ => Err(at.unsupported(
                "serial",
                "a list of batch sizes is not supported: the deployer's rolling strategy \
                 uses one batch size (give one value)",
            )),
        },
        Yaml::Number(n) => match n.as_u64() {
            Some(n) if n > 0 => Ok(Value::from(n)),
            _ => Err(bad()),
        },
        Yaml::String(s) => {
            let t = s.trim();
            if let Some(p) = t.strip_suffix('%') {
                match p.trim().parse::<u32>() {
                    Ok(p) if (1..=100).contains(&p) => Ok(Value::from(format!("{p}%"))),
                    _ => Err(bad()),
                }
            } else {
                match t.parse::<u64>() {
                    Ok(n) if n > 0 => Ok(Value::from(n)),
                    _ => Err(bad()),
                }
            }
        }
        _ => Err(bad()),
    }
}

impl LoadedPlay {
    /// Applies tag selection and extra vars and joins the sections, with the handler
    /// flushes Ansible runs between them.
    pub(crate) fn finish(self, selection: &Selection, extra: &Vars) -> Play {
        let LoadedPlay {
            mut play,
            sections,
            tags,
            when,
            rolling: _,
        } = self;
        let inherited: BTreeSet<String> = tags.iter().cloned().collect();
        let mut parts: Vec<Vec<Task>> = sections
            .into_iter()
            .map(|s| tagsel::filter(s, &inherited, selection))
            .collect();
        // The runner filters what includes bring in with the tags around them, the
        // play's among them.
        play.tags = tags;
        if !when.is_empty() {
            for part in parts.iter_mut().filter(|p| !p.is_empty()) {
                let condition = match when.as_slice() {
                    [one] => Condition::One(one.clone()),
                    _ => Condition::All(when.clone()),
                };
                *part = vec![Task {
                    block: Some(std::mem::take(part)),
                    when: Some(condition),
                    ..Task::default()
                }];
            }
        }
        // Ansible flushes after each section; those after the last section with tasks
        // are the runner's to make at the end of the play.
        let last = parts.iter().rposition(|p| !p.is_empty()).unwrap_or(0);
        let end_flushes = u8::try_from(parts.len() - last).unwrap_or(1);
        play.end_flushes = (end_flushes != 1).then_some(end_flushes);
        let mut out = Vec::new();
        for i in 0..parts.len() {
            let Some(part) = parts.get_mut(i) else {
                continue;
            };
            let part = std::mem::take(part);
            let notifies = notifies(&part);
            out.extend(part);
            // Ansible flushes handlers after each section; after the last one that is
            // the runner's own end-of-play handler run.
            let more = parts.iter().skip(i + 1).any(|p| !p.is_empty());
            if notifies && more {
                out.push(flush_handlers());
            }
        }
        override_vars(&mut out, extra);
        override_vars(&mut play.handlers, extra);
        super::defaults::unmark_all(&mut play, extra.keys());
        play.vars
            .extend(extra.iter().map(|(k, v)| (k.clone(), v.clone())));
        play.tasks = out;
        play
    }
}

/// True when a task of the list (or below it) notifies a handler.
fn notifies(list: &[Task]) -> bool {
    let mut all = Vec::new();
    for t in list {
        t.walk(&mut all);
    }
    all.iter().any(|t| !t.notify.is_empty())
}

/// The `meta: flush_handlers` task Ansible runs between a play's sections.
fn flush_handlers() -> Task {
    let mut args = Vars::new();
    args.insert(
        "_raw_params".to_string(),
        Value::String("flush_handlers".to_string()),
    );
    Task {
        module: "meta".to_string(),
        args,
        tags: vec!["always".to_string()],
        ..Task::default()
    }
}

impl Loader<'_> {
    /// Reads a playbook file: its plays and those it imports, in order.
    pub(crate) fn playbook(
        &mut self,
        path: &Path,
        inherit: &Imported,
    ) -> Result<Vec<LoadedPlay>, PlaybookError> {
        let canon = canonical(path);
        let here = Where::new(path, "");
        if self.playbooks.contains(&canon) {
            return Err(here.invalid(
                "import_playbook",
                "the playbook imports itself (directly or through other playbooks)",
            ));
        }
        let doc = match &self.opts.adhoc {
            Some((named, doc)) if named == path => doc.clone(),
            _ => yaml::read(path, self.opts.vault.as_ref())?,
        };
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => Path::new(".").to_path_buf(),
        };
        let entries = match &doc {
            Yaml::Sequence(entries) if !entries.is_empty() => entries,
            other => {
                return Err(here.invalid(
                    "",
                    format!(
                        "a playbook is a non-empty list of plays, found {}",
                        yaml::describe(other)
                    ),
                ));
            }
        };
        self.playbooks.push(canon);
        let mut plays = Vec::new();
        for (i, entry) in entries.iter().enumerate() {
            let at = here.child(&format!("plays[{i}]"));
            let Yaml::Mapping(map) = entry else {
                return Err(at.invalid(
                    "",
                    format!("a play is a mapping, found {}", yaml::describe(entry)),
                ));
            };
            let import = map
                .iter()
                .find_map(|(k, v)| k.as_str().filter(|k| is_import_playbook(k)).map(|_| v));
            match import {
                Some(target) => plays.extend(self.import(map, target, &dir, inherit, &at)?),
                None => plays.push(self.play(map, &dir, inherit, &at)?),
            }
        }
        self.playbooks.pop();
        Ok(plays)
    }

    /// An `import_playbook` entry.
    fn import(
        &mut self,
        map: &Mapping,
        target: &Yaml,
        dir: &Path,
        inherit: &Imported,
        at: &Where,
    ) -> Result<Vec<LoadedPlay>, PlaybookError> {
        let mut next = inherit.clone();
        for (k, v) in map {
            let key = tasks::key_of(k, at)?;
            match key.as_str() {
                k if is_import_playbook(k) => {}
                "name" => {}
                "vars" => next.vars.extend(tasks::vars(v, &at.child("vars"))?),
                "tags" => next.tags.extend(tasks::tag_list(v, at)?),
                "when" => next.when.extend(tasks::condition_strings(v, at, "when")?),
                other => return Err(tasks::bad_keyword(other, &IMPORT_KEYWORDS, at)),
            }
        }
        let Some(name) = scalar_str(target) else {
            return Err(at.invalid("import_playbook", "expected a file name"));
        };
        let Some(name) = render_static(&name, &self.opts.extra_vars) else {
            return Err(at.unsupported(
                "import_playbook",
                format!("'{name}' is templated with something only known on the host"),
            ));
        };
        let path = dir.join(&name);
        if !path.is_file() {
            return Err(PlaybookError::NotFound(Box::new(super::NotFound {
                at: at.clone(),
                keyword: "import_playbook".to_string(),
                name,
                searched: vec![path],
            })));
        }
        self.playbook(&path, &next)
    }

    /// One play.
    fn play(
        &mut self,
        map: &Mapping,
        dir: &Path,
        inherit: &Imported,
        at: &Where,
    ) -> Result<LoadedPlay, PlaybookError> {
        let mut entries = Vec::new();
        for (k, v) in map {
            let key = tasks::key_of(k, at)?;
            if !PLAY_KEYWORDS.contains(&key.as_str()) {
                return Err(tasks::bad_keyword(&key, &PLAY_KEYWORDS, at));
            }
            entries.push((key, v));
        }
        let get = |name: &str| {
            entries
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| *v)
                .filter(|v| !v.is_null())
        };
        let name = match get("name") {
            None => String::new(),
            Some(v) => scalar_str(v).ok_or_else(|| at.invalid("name", "expected a string"))?,
        };
        let at = at.named(Some(&name));
        // What this play reaches on the controller: its playbook's directory, and (as
        // they are read) its roles.
        self.reach.plays = std::iter::once(self.next_play).collect();
        self.next_play += 1;
        self.reach_root(dir, None, dir);

        // Variables first: static names below may refer to them.
        // Variables given on `import_playbook` override the play's own, as in Ansible.
        let mut play_vars = match get("vars") {
            Some(v) => tasks::vars(v, &at.child("vars"))?,
            None => Vars::new(),
        };
        play_vars.extend(inherit.vars.clone());
        let mut lookup = play_vars.clone();
        lookup.extend(self.opts.extra_vars.clone());
        if let Some(v) = get("vars_files") {
            for file_vars in self.vars_files(v, dir, &lookup, &at)? {
                play_vars.extend(file_vars);
            }
        }
        let mut lookup = play_vars.clone();
        lookup.extend(self.opts.extra_vars.clone());
        let fixed = lookup.keys().cloned().collect();
        self.play = PlayState {
            lookup,
            fixed,
            ..PlayState::default()
        };

        let hosts = match get("hosts") {
            None => return Err(at.invalid("hosts", "a play needs `hosts`")),
            Some(v) => self.hosts(v, &at)?,
        };
        let gather_facts = match get("gather_facts") {
            None => true,
            Some(v) => tasks::boolean(v, &at, "gather_facts")?,
        };
        let max_fail_percentage = match get("max_fail_percentage") {
            None => None,
            Some(v) => {
                let p = scalar_str(v)
                    .and_then(|s| s.trim().trim_end_matches('%').parse::<u32>().ok())
                    .filter(|p| *p <= 100);
                Some(p.ok_or_else(|| {
                    at.invalid("max_fail_percentage", "expected a number from 0 to 100")
                })?)
            }
        };
        // A templated `serial` is rendered as Ansible renders play keywords, with play
        // and extra vars; one that renders to `omit` is not given.
        let serial = match get("serial") {
            Some(Yaml::String(text)) if text.contains("{{") => {
                play_keyword(text, &self.play.lookup, dir)
                    .map_err(|e| at.invalid("serial", e))?
                    .map(Yaml::String)
            }
            other => other.cloned(),
        };
        // `strategy`: linear (Ansible's default) is how the deployer runs a play; with
        // free each host goes at its own pace in Ansible, as every host runs its own
        // plan here, only other hosts' `hostvars` are still read at the same point of
        // the play. Others (host_pinned, debug, a collection's) are refused.
        let mut strategy = None;
        if let Some(v) = get("strategy") {
            let text = scalar_str(v).unwrap_or_default();
            let given = if text.contains("{{") {
                play_keyword(&text, &self.play.lookup, dir)
                    .map_err(|e| at.invalid("strategy", e))?
                    .unwrap_or_else(|| "linear".into())
            } else {
                text
            };
            let name = tasks::short_name(given.trim());
            if !matches!(name, "linear" | "free") {
                return Err(at.unsupported(
                    "strategy",
                    format!("'{given}': only the linear and free strategies are"),
                ));
            }
            strategy = Some(name.to_string());
        }
        let rolling = match &serial {
            Some(v) => Some(Rolling {
                serial: serial_value(v, &at)?,
                max_fail_percentage,
            }),
            None => None,
        };
        let flag = |key: &str| -> Result<Option<rustle_runner::plan::Flag>, PlaybookError> {
            Ok(match get(key) {
                None => None,
                Some(v) => tasks::flag(v, &at, key)?,
            })
        };
        let become_ = flag("become")?;
        let ignore_errors = flag("ignore_errors")?;
        let ignore_unreachable = flag("ignore_unreachable")?;
        let check_mode = flag("check_mode")?;
        let diff = flag("diff")?;
        let no_log = flag("no_log")?;
        let force_handlers = match get("force_handlers") {
            None => self.opts.force_handlers,
            Some(v) => tasks::boolean(v, &at, "force_handlers")?,
        };
        let connection_local = match get("connection") {
            None => false,
            Some(v) if scalar_str(v).as_deref() == Some("local") => true,
            Some(_) => {
                return Err(at.unsupported(
                    "connection",
                    "only `connection: local` is supported on a play (for hosts that connect locally); other connection settings come from the inventory",
                ));
            }
        };
        let any_errors_fatal = match get("any_errors_fatal") {
            None => false,
            Some(v) => tasks::boolean(v, &at, "any_errors_fatal")?,
        };
        let timeout = match get("timeout") {
            None => None,
            Some(v) => tasks::integer(v, &at, "timeout")?,
        };
        let remote_user = get("remote_user")
            .map(|v| scalar_str(v).ok_or_else(|| at.invalid("remote_user", "expected a string")))
            .transpose()?;
        let become_user = get("become_user")
            .map(|v| scalar_str(v).ok_or_else(|| at.invalid("become_user", "expected a string")))
            .transpose()?;
        if let Some(v) = get("become_method") {
            tasks::become_method(v, &at)?;
        }
        let environment = get("environment")
            .map(|v| tasks::environment(v, &at))
            .transpose()?;
        let mut tags = inherit.tags.clone();
        if let Some(v) = get("tags") {
            tags.extend(tasks::tag_list(v, &at)?);
        }

        let cx = Cx {
            dir: dir.to_path_buf(),
            playbook_dir: dir.to_path_buf(),
            role: None,
            handler: false,
            in_block: false,
        };
        // Files the play's own variables look up by literal name travel as a task's do.
        let play_level = Task {
            vars: play_vars.clone(),
            ..Task::default()
        };
        for name in crate::lookups::literal_file_names(&play_level) {
            self.register_lookup_file(&name, &cx);
        }
        let mut pre = self.task_list(get("pre_tasks"), &cx, &at, "pre_tasks")?;
        let mut main = self.roles_section(get("roles"), &cx, &at)?;
        main.extend(self.task_list(get("tasks"), &cx, &at, "tasks")?);
        let mut post = self.task_list(get("post_tasks"), &cx, &at, "post_tasks")?;
        let handler_cx = Cx {
            handler: true,
            in_block: false,
            ..cx.clone()
        };
        let mut own_handlers = self.task_list(get("handlers"), &handler_cx, &at, "handlers")?;

        let state = std::mem::take(&mut self.play);
        let from_defaults: Vec<String> = state
            .role_defaults
            .keys()
            .filter(|k| !play_vars.contains_key(*k) && !state.role_vars.contains_key(*k))
            .cloned()
            .collect();
        let mut vars = state.role_defaults;
        vars.extend(play_vars);
        vars.extend(state.role_vars);
        super::defaults::mark(&mut vars, from_defaults);
        let mut handlers = state.handlers;
        handlers.append(&mut own_handlers);
        // `run_once` and `throttle` on a play reach each of its tasks and handlers that
        // does not say otherwise, as Ansible's parent attributes do.
        let channel = Task {
            run_once: flag("run_once")?,
            throttle: match get("throttle") {
                None => None,
                Some(v) => tasks::integer(v, &at, "throttle")?,
            },
            ..Task::default()
        };
        if tasks::carries(&channel) {
            tasks::push_down_into(
                pre.iter_mut()
                    .chain(main.iter_mut())
                    .chain(post.iter_mut())
                    .chain(handlers.iter_mut()),
                &channel,
                &at,
            )?;
        }
        let magic = play_magic(dir, &state.play_roles, &state.dependent_roles);
        Ok(LoadedPlay {
            play: Play {
                name,
                hosts,
                vars,
                gather_facts,
                become_,
                become_user,
                environment,
                ignore_errors,
                ignore_unreachable,
                check_mode,
                diff,
                no_log,
                timeout,
                remote_user,
                tasks: Vec::new(),
                handlers,
                magic,
                reach: Vec::new(),
                tags: Vec::new(),
                any_errors_fatal,
                max_fail_percentage,
                force_handlers,
                connection_local,
                strategy,
                hosts_at_start: false,
                missing_handler_warns: self.opts.missing_handler_warns,
                end_flushes: None,
                fleet: None,
                number: None,
                playbook: 0,
            },
            sections: [pre, main, post],
            tags,
            when: inherit.when.clone(),
            rolling: (rolling, at.clone()),
        })
    }

    /// `hosts`: a pattern, a comma-separated list of them, or a YAML list.
    fn hosts(&self, value: &Yaml, at: &Where) -> Result<Vec<String>, PlaybookError> {
        let items: Vec<String> = match value {
            Yaml::Sequence(list) => list
                .iter()
                .map(|v| scalar_str(v).ok_or_else(|| at.invalid("hosts", "expected strings")))
                .collect::<Result<_, _>>()?,
            other => vec![
                scalar_str(other)
                    .ok_or_else(|| at.invalid("hosts", "expected a host pattern or a list"))?,
            ],
        };
        let mut hosts = Vec::new();
        for item in items {
            let Some(pattern) = render_static(&item, &self.play.lookup) else {
                return Err(at.unsupported(
                    "hosts",
                    format!(
                        "'{item}' is templated with something not given in extra vars or play \
                         vars; the hosts must be known when the payloads are made"
                    ),
                ));
            };
            // The packer joins patterns with ':'; a comma inside one would change how
            // the whole joined pattern is split.
            hosts.extend(
                pattern
                    .split(',')
                    .map(str::trim)
                    .filter(|p| !p.is_empty())
                    .map(str::to_string),
            );
        }
        if hosts.is_empty() {
            return Err(at.invalid("hosts", "no host pattern given"));
        }
        Ok(hosts)
    }

    /// `vars_files`: each file's variables, in order.
    fn vars_files(
        &self,
        value: &Yaml,
        dir: &Path,
        lookup: &Vars,
        at: &Where,
    ) -> Result<Vec<Vars>, PlaybookError> {
        let names: Vec<&Yaml> = match value {
            Yaml::Sequence(list) => list.iter().collect(),
            other => vec![other],
        };
        let mut out = Vec::new();
        for (i, name) in names.into_iter().enumerate() {
            let here = at.child(&format!("vars_files[{i}]"));
            let Some(name) = scalar_str(name) else {
                return Err(here.unsupported(
                    "vars_files",
                    format!(
                        "found {}; a list of candidates (the first found is read) is not \
                         supported, give one file name",
                        yaml::describe(name)
                    ),
                ));
            };
            let Some(rendered) = render_static(&name, lookup) else {
                return Err(here.unsupported(
                    "vars_files",
                    format!("'{name}' is templated with something not in extra vars or play vars"),
                ));
            };
            let path = dir.join(&rendered);
            if !path.is_file() {
                return Err(PlaybookError::NotFound(Box::new(super::NotFound {
                    at: here,
                    keyword: "vars_files".to_string(),
                    name: rendered,
                    searched: vec![path],
                })));
            }
            out.push(tasks::vars_file(&path, self.opts.vault.as_ref())?);
        }
        Ok(out)
    }
}
