//! Per-host payloads: cut the plan down to one host, seal it, and put it in a runner.
//!
//! This is the hot path of a large deploy (once per host), so it does no I/O: the
//! runner bytes are read once per triple by the caller, and everything here works on
//! memory. Only that host's plays, variables and files go into its payload.

use crate::elf;
use crate::inventory::{Host, Inventory};
use crate::target::Triple;
use ed25519_dalek::SigningKey;
use rustle_runner::modules;
use rustle_runner::payload::{self, Digest};
use rustle_runner::plan::{DeployPlan, HostFile, HostPlan, Play, Shared, Task, Vars};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// zstd level for payloads: plans are small and compress well at a fast level.
const ZSTD_LEVEL: i32 = 3;

/// Why a payload could not be made. Nothing has been sent anywhere when this happens.
#[derive(Debug, thiserror::Error)]
pub enum PackError {
    /// A task uses a module the runner does not have.
    #[error(
        "play '{play}', task '{task}': module '{module}' is neither the runner's nor one Ansible ships (ansible-core 2.18 and the ansible 11 collections; the runner's: {supported})"
    )]
    UnsupportedModule {
        /// The play.
        play: String,
        /// The task.
        task: String,
        /// The module.
        module: String,
        /// What the runner has.
        supported: String,
    },
    /// A play says `connection: local` and runs on a host reached over SSH.
    #[error(
        "play '{play}': `connection: local` on a play is supported only for hosts that connect locally (ansible_connection=local, or the implicit localhost); host '{host}' connects over {connection}: run the play's tasks with `delegate_to: localhost`, or set ansible_connection=local for the host"
    )]
    PlayConnection {
        /// The play.
        play: String,
        /// The first host reached otherwise.
        host: String,
        /// How it is reached.
        connection: String,
    },
    /// A task names neither a module nor a block.
    #[error("play '{play}', task '{task}': no module and no block")]
    NoModule {
        /// The play.
        play: String,
        /// The task.
        task: String,
    },
    /// A file a task needs is not in the plan.
    #[error(
        "play '{play}', task '{task}': file '{src}' is not in the plan's files (pass --files-dir, or embed it in the plan)"
    )]
    MissingFile {
        /// The play.
        play: String,
        /// The task.
        task: String,
        /// The file name the task uses.
        src: String,
    },
    /// A plan file's base64 content does not decode.
    #[error("plan file '{name}': {reason}")]
    BadFile {
        /// The file name.
        name: String,
        /// Why.
        reason: String,
    },
    /// No runner platform can be chosen for the host.
    #[error("host '{host}': {reason}")]
    Target {
        /// The host.
        host: String,
        /// Why.
        reason: String,
    },
    /// Encoding or compressing failed.
    #[error("host '{host}': cannot encode payload: {reason}")]
    Encode {
        /// The host.
        host: String,
        /// Why.
        reason: String,
    },
    /// Embedding into the runner failed.
    #[error("host '{host}': cannot pack into runner: {source}")]
    Embed {
        /// The host.
        host: String,
        /// Why.
        source: elf::ElfError,
    },
}

/// Settings that apply to every host's payload.
#[derive(Debug, Clone)]
pub struct PayloadSettings {
    /// The deployment id.
    pub deployment_id: String,
    /// Seconds since the epoch.
    pub created_at: u64,
    /// Force check mode.
    pub check_mode: bool,
    /// Force diff mode.
    pub diff_mode: bool,
}

/// Which hosts each play runs on, resolved against the inventory, in inventory order.
/// After a `group_by`, a play may also select hosts of earlier plays that joined its
/// groups: they get it too, and decide when it starts ([`Play::hosts_at_start`]).
pub fn play_hosts<'i>(plan: &DeployPlan, inventory: &'i Inventory) -> Vec<Vec<&'i Host>> {
    let mut per_play: Vec<Vec<&'i Host>> = Vec::with_capacity(plan.plays.len());
    for (play, grouped) in plan.plays.iter().zip(plan.groups_change_before()) {
        let mut hosts = inventory.select(&play.hosts.join(":"));
        if grouped {
            // Inventory order, then the implicit hosts; each name once.
            let wanted: std::collections::HashSet<&str> = hosts
                .iter()
                .chain(per_play.iter().flatten())
                .map(|h| h.name.as_str())
                .collect();
            let mut seen = std::collections::HashSet::new();
            let joined: Vec<&'i Host> = inventory
                .hosts()
                .chain(hosts.iter().copied())
                .chain(per_play.iter().flatten().copied())
                .filter(|h| wanted.contains(h.name.as_str()) && seen.insert(h.name.clone()))
                .collect();
            hosts = joined;
        }
        per_play.push(hosts);
    }
    per_play
}

/// Refuses a play with `connection: local` that would run on a host reached otherwise:
/// there Ansible would run every task on the controller, which the runner on the host
/// cannot do for a whole play.
pub fn check_play_connections(plan: &DeployPlan, inventory: &Inventory) -> Result<(), PackError> {
    for (play, hosts) in plan.plays.iter().zip(play_hosts(plan, inventory)) {
        if !play.connection_local {
            continue;
        }
        if let Some(h) = hosts.iter().find(|h| !h.is_local()) {
            return Err(PackError::PlayConnection {
                play: play.name.clone(),
                host: h.name.clone(),
                connection: h.connection().to_string(),
            });
        }
    }
    Ok(())
}

/// Every host that takes part in the plan, in inventory order, then the implicit
/// localhost when a play names it and the inventory does not have it (Ansible runs such
/// a play on an implicit local host).
pub fn participating_hosts<'i>(plan: &DeployPlan, inventory: &'i Inventory) -> Vec<&'i Host> {
    let per_play = play_hosts(plan, inventory);
    let mut out: Vec<&'i Host> = inventory
        .hosts()
        .filter(|h| {
            per_play
                .iter()
                .any(|hosts| hosts.iter().any(|x| x.name == h.name))
        })
        .collect();
    for host in per_play.iter().flatten() {
        if !out.iter().any(|h| h.name == host.name) {
            out.push(host);
        }
    }
    out
}

/// The tasks the executor carries out itself rather than through a module.
const EXECUTOR_TASKS: [&str; 2] = ["include_tasks", "include_role"];

/// What the runner lacks below some tasks.
#[derive(Default)]
struct Lacking {
    /// The first task whose module neither the runner (built in, the plan's own
    /// `modules`, `library/` scripts) nor Ansible knows, and that module; or a task
    /// without a module (an empty module name).
    unknown: Option<(String, String)>,
    /// Tasks whose module Ansible has and the runner lacks, with the module: they fail
    /// where a host runs them, as a failing module does.
    deferred: Vec<(String, String)>,
}

/// Looks at every task below `tasks` for modules the runner lacks.
fn lacking(plan: &DeployPlan, tasks: &[Task]) -> Lacking {
    let mut all = Vec::new();
    for t in tasks {
        t.walk(&mut all);
    }
    let mut out = Lacking::default();
    for t in all {
        if t.block.is_some() {
            continue;
        }
        let m = t.module_name();
        if m.is_empty() {
            out.unknown.get_or_insert((t.display_name(), String::new()));
            continue;
        }
        // A templated action is known only when the task runs: the runner renders it
        // and fails the task, naming the module, if it has no such module.
        if m.contains("{{") {
            continue;
        }
        // A plan's own Rust modules are built into its runner (crate::custom); its
        // library/ script modules travel as files.
        let library = format!("{}{m}", modules::LIBRARY_PREFIX);
        if modules::is_supported(m)
            || EXECUTOR_TASKS.contains(&m)
            || plan.modules.contains_key(m)
            || plan.files.contains_key(&library)
        {
            continue;
        }
        if crate::ansible_modules::is_ansible_module(&t.module) {
            out.deferred.push((t.display_name(), t.module.clone()));
        } else {
            out.unknown.get_or_insert((t.display_name(), m.to_string()));
        }
    }
    out
}

/// Refuses plans that use modules neither the runner nor Ansible knows (neither built in
/// nor among the plan's own `modules`), naming play and task, before any host is touched,
/// as ansible-playbook refuses a name it cannot resolve. In a task file only an include
/// may reach (the plan's library), such a module makes the file a refusal that fails a
/// host only if it includes the file, as the file's other refusals do.
///
/// A module Ansible has but the runner lacks is not refused: the task fails on a host
/// that runs it (one whose `when` holds it back, on a platform it is not for, runs as
/// in Ansible). The warnings returned name each such task, for the deployer to print.
pub fn check_modules(plan: &mut DeployPlan) -> Result<Vec<String>, PackError> {
    let mut warnings = Vec::new();
    let warn = |warnings: &mut Vec<String>, (task, module): (String, String)| {
        warnings.push(format!(
            "task '{task}': module '{module}' is not supported by rustle-deploy yet: a host that runs the task fails it"
        ));
    };
    for play in &plan.plays {
        let lists = [&play.tasks, &play.handlers];
        for list in lists {
            let found = lacking(plan, list);
            match found.unknown {
                None => {}
                Some((task, m)) if m.is_empty() => {
                    return Err(PackError::NoModule {
                        play: play.name.clone(),
                        task,
                    });
                }
                Some((task, module)) => {
                    let mut supported: Vec<&str> = modules::SUPPORTED.to_vec();
                    supported.extend(plan.modules.keys().map(String::as_str));
                    return Err(PackError::UnsupportedModule {
                        play: play.name.clone(),
                        task,
                        module,
                        supported: supported.join(", "),
                    });
                }
            }
            for d in found.deferred {
                warn(&mut warnings, d);
            }
        }
    }
    let mut refusals = Vec::new();
    for (path, parsed) in &plan.library.tasks {
        if let rustle_runner::plan::Parsed::Ok(tasks) = parsed {
            let found = lacking(plan, tasks);
            match found.unknown {
                Some((task, module)) => {
                    let why = if module.is_empty() {
                        format!("{path}: task '{task}': no module and no block")
                    } else {
                        format!(
                            "{path}: task '{task}': module '{module}' is neither the runner's nor one Ansible ships"
                        )
                    };
                    refusals.push((path.clone(), why));
                }
                None => found
                    .deferred
                    .into_iter()
                    .for_each(|d| warn(&mut warnings, d)),
            }
        }
    }
    for (path, why) in refusals {
        plan.library
            .tasks
            .insert(path, rustle_runner::plan::Parsed::Refused(why));
    }
    warnings.dedup();
    Ok(warnings)
}

/// Decodes the plan's files once, for all hosts.
pub fn decode_files(plan: &DeployPlan) -> Result<BTreeMap<String, HostFile>, PackError> {
    use base64::Engine as _;
    let mut out = BTreeMap::new();
    for (name, f) in &plan.files {
        let content = match (&f.content, &f.base64) {
            (Some(text), None) => text.as_bytes().to_vec(),
            (None, Some(b64)) => base64::engine::general_purpose::STANDARD
                .decode(b64.trim())
                .map_err(|e| PackError::BadFile {
                    name: name.clone(),
                    reason: format!("base64: {e}"),
                })?,
            _ => {
                return Err(PackError::BadFile {
                    name: name.clone(),
                    reason: "give exactly one of 'content' and 'base64'".into(),
                });
            }
        };
        let mode =
            match &f.mode {
                None => None,
                Some(m) => Some(u32::from_str_radix(m.trim_start_matches("0o"), 8).map_err(
                    |_| PackError::BadFile {
                        name: name.clone(),
                        reason: format!("mode '{m}' is not octal"),
                    },
                )?),
            };
        out.insert(name.clone(), HostFile { content, mode });
    }
    Ok(out)
}

/// The names of the embedded files a play's tasks use (`src` of copy, template and
/// unarchive, the script of script; see `plan::embedded_name`).
fn used_files(play: &Play, out: &mut Vec<(String, String)>) {
    let mut all = Vec::new();
    for t in play.tasks.iter().chain(&play.handlers) {
        t.walk(&mut all);
    }
    for t in all {
        if let Some(src) = crate::plan::embedded_name(t) {
            out.push((t.display_name(), src.to_string()));
        } else if t.block.is_none() && !modules::is_supported(t.module_name()) {
            // A library/ script module (check_modules made sure the plan carries it,
            // unless it is a Rust module built into the runner).
            let library = format!("{}{}", modules::LIBRARY_PREFIX, t.module_name());
            out.push((t.display_name(), library));
        }
    }
}

/// Whether `name` is one of Ansible's connection variables that hold a secret: the
/// login password (`ansible_password`, `ansible_ssh_pass`), the privilege escalation
/// password (`ansible_become_password`, `ansible_become_pass`, `ansible_sudo_pass`,
/// `ansible_su_pass`, ...), a key passphrase, or any other `ansible_*_pass`,
/// `ansible_*_password` or `ansible_*_passphrase`. Ansible needs them on the control
/// machine to log in and to become; rustle-deploy logs in with keys and becomes with
/// `sudo -n`, and no host needs them, so they never enter a payload (a payload sits in
/// the host's release directory for as long as the release is kept). A task that uses
/// one fails with the variable named as undefined. Connection variables that are not
/// secrets (`ansible_host`, `ansible_user`, `ansible_port`,
/// `ansible_ssh_private_key_file`, a path on the control machine) stay: tasks use them.
pub fn is_connection_secret(name: &str) -> bool {
    name.strip_prefix("ansible_").is_some_and(|rest| {
        rest == "password"
            || rest.ends_with("_pass")
            || rest.ends_with("_password")
            || rest.ends_with("_passphrase")
    })
}

/// Removes connection secrets ([`is_connection_secret`]) from a play's variables and
/// from every task's below it.
fn strip_secrets(play: &mut Play) {
    fn task(t: &mut Task) {
        t.vars.retain(|k, _| !is_connection_secret(k));
        for t in t
            .block
            .iter_mut()
            .flatten()
            .chain(t.rescue.iter_mut())
            .chain(t.always.iter_mut())
        {
            task(t);
        }
    }
    play.vars.retain(|k, _| !is_connection_secret(k));
    for t in play.tasks.iter_mut().chain(play.handlers.iter_mut()) {
        task(t);
    }
}

/// The variables the runner gets for a host: its inventory variables, less connection
/// secrets ([`is_connection_secret`]), plus Ansible's magic variables about itself
/// (never any other host's).
pub(crate) fn host_vars(host: &Host) -> Vars {
    let mut vars = host.vars.clone();
    vars.retain(|k, _| !is_connection_secret(k));
    vars.insert("inventory_hostname".into(), host.name.clone().into());
    let short = host
        .name
        .split('.')
        .next()
        .unwrap_or(&host.name)
        .to_string();
    vars.insert("inventory_hostname_short".into(), short.into());
    vars.insert("group_names".into(), host.groups.clone().into());
    connection_vars(&mut vars, &host.name);
    vars
}

/// The connection settings Ansible's `PlayContext.update_vars` gives every task under
/// their variable names when no variable sets them: the address (`ansible_host`,
/// `ansible_ssh_host`: the inventory name unless one of them is set) and the connection
/// type (`ssh` unless set).
fn connection_vars(vars: &mut Vars, name: &str) {
    let addr = ["ansible_host", "ansible_ssh_host"]
        .iter()
        .find_map(|k| vars.get(*k).cloned())
        .unwrap_or_else(|| name.into());
    for k in ["ansible_host", "ansible_ssh_host"] {
        vars.entry(k).or_insert_with(|| addr.clone());
    }
    vars.entry("ansible_connection")
        .or_insert_with(|| "ssh".into());
}

/// Cuts a plan down to each host: one per deploy, so that what hosts running the same
/// plays share ([`Shared`]: files, controller data) is built once for all of them.
#[derive(Debug)]
pub struct Planner<'p> {
    plan: &'p DeployPlan,
    inventory: &'p Inventory,
    per_play: Vec<Vec<&'p Host>>,
    /// Magic variables every host gets (`omit`, `ansible_version`, ...).
    magic: Vars,
    /// `groups`, computed once.
    groups: BTreeMap<String, Vec<String>>,
    files: BTreeMap<String, HostFile>,
    settings: &'p PayloadSettings,
    /// The shared part, by the indices of the plays a host takes part in.
    shared: HashMap<Vec<usize>, Arc<Shared>>,
    /// Something reads `hostvars` and the plays have more than one host: the runners
    /// tell the deployer what they learn, for other hosts' `hostvars` (`Play::number`).
    share_vars: bool,
    /// By play: a `group_by` may have changed the groups when it starts.
    grouped: Vec<bool>,
    /// The groups the plan's `group_by` tasks may put hosts in: hosts get the
    /// variables of those they may join, and of no other group.
    group_by_names: Vec<rustle_runner::plan::GroupName>,
}

impl<'p> Planner<'p> {
    /// Resolves the plays' hosts and decodes the plan's files, once.
    pub fn new(
        plan: &'p DeployPlan,
        inventory: &'p Inventory,
        settings: &'p PayloadSettings,
    ) -> Result<Planner<'p>, PackError> {
        let per_play = play_hosts(plan, inventory);
        let files = decode_files(plan)?;
        let hosts: std::collections::HashSet<&str> =
            per_play.iter().flatten().map(|h| h.name.as_str()).collect();
        let share_vars = hosts.len() > 1 && refers_to_hostvars(&plan.plays, &files);
        Ok(Planner {
            plan,
            inventory,
            per_play,
            magic: run_magic(plan, inventory, settings),
            groups: inventory.groups_dict(),
            files,
            settings,
            shared: HashMap::new(),
            share_vars,
            grouped: plan.groups_change_before(),
            group_by_names: plan.group_by_names(),
        })
    }

    /// Cuts the plan down to what `host` runs.
    pub fn host_plan(&mut self, host: &Host) -> Result<HostPlan, PackError> {
        let indices: Vec<usize> = self
            .per_play
            .iter()
            .enumerate()
            .filter(|(_, hosts)| hosts.iter().any(|h| h.name == host.name))
            .map(|(i, _)| i)
            .collect();
        let plays: Vec<Play> = indices
            .iter()
            .filter_map(|i| self.plan.plays.get(*i).map(|p| (*i, p)))
            .map(|(i, p)| {
                let mut p = p.clone();
                strip_secrets(&mut p);
                // Hosts of an any_errors_fatal play wait for each other after each task,
                // through the deployer, which knows the play by its number here. So do
                // those of a linear play with a throttle: Ansible's lockstep is what
                // keeps a throttled task's turns apart from the tasks around it.
                let linear = p.strategy.as_deref().is_none_or(|s| s != "free");
                p.fleet = ((p.any_errors_fatal
                    || p.max_fail_percentage.is_some()
                    || (linear && p.throttles()))
                    && self.per_play.get(i).is_some_and(|h| h.len() > 1))
                .then_some(i);
                p.number = self.share_vars.then_some(i);
                p.hosts_at_start = self.grouped.get(i).copied().unwrap_or(false);
                p
            })
            .collect();
        let shared = match self.shared.get(&indices) {
            Some(s) => Arc::clone(s),
            None => {
                let s = Arc::new(self.shared_for(&indices, &plays)?);
                self.shared.insert(indices, Arc::clone(&s));
                s
            }
        };
        let plan = self.plan;
        let settings = self.settings;
        Ok(HostPlan {
            deployment_id: settings.deployment_id.clone(),
            host: host.name.clone(),
            created_at: settings.created_at,
            packer_version: env!("CARGO_PKG_VERSION").to_string(),
            check_mode: plan.check_mode || settings.check_mode,
            diff_mode: plan.diff_mode || settings.diff_mode,
            host_vars: host_vars(host),
            group_by_vars: if self.group_by_names.is_empty() {
                BTreeMap::new()
            } else {
                self.inventory.joinable_group_vars(&host.name, |group| {
                    self.group_by_names.iter().any(|n| n.admits(group))
                })
            },
            plays,
            magic: self.magic.clone(),
            controller_lookups: plan
                .controller_answers
                .get(&host.name)
                .cloned()
                .unwrap_or_default(),
            shared,
        })
    }

    /// What the hosts running `plays` (the plan's plays at `indices`) share: the files
    /// their tasks use, `groups`, each play's hosts, and other hosts' variables when
    /// something refers to `hostvars`.
    fn shared_for(&self, indices: &[usize], plays: &[Play]) -> Result<Shared, PackError> {
        let files = &self.files;
        let mut wanted = Vec::new();
        let mut lenient = Vec::new();
        for p in plays {
            // A play from a playbook names files the runner finds among its trees when
            // the task runs; what is not embedded by name is looked for there.
            let mut of_play = Vec::new();
            used_files(p, &mut of_play);
            if !p.reach.is_empty() {
                lenient.extend(of_play.iter().map(|(_, src)| src.clone()));
            }
            wanted.extend(of_play);
        }
        let mut host_files = BTreeMap::new();
        for (task, src) in wanted {
            // A copied directory travels as its files, `<src>/<sub path>`.
            let prefix = format!("{}/", src.trim_end_matches('/'));
            let under: Vec<(&String, &HostFile)> = files
                .range(prefix.clone()..)
                .take_while(|(k, _)| k.starts_with(&prefix))
                .collect();
            if !files.contains_key(&src) && !under.is_empty() {
                for (k, f) in under {
                    host_files.insert(k.clone(), f.clone());
                }
                continue;
            }
            // A module that is neither built in nor a library/ script is one of the plan's
            // Rust modules, built into the runner: no file to carry.
            if src.starts_with(modules::LIBRARY_PREFIX) && !files.contains_key(&src) {
                continue;
            }
            if !files.contains_key(&src) && lenient.contains(&src) {
                continue;
            }
            let Some(f) = files.get(&src) else {
                let play = plays
                    .iter()
                    .find(|p| {
                        let mut all: Vec<&Task> = Vec::new();
                        p.tasks
                            .iter()
                            .chain(&p.handlers)
                            .for_each(|t| t.walk(&mut all));
                        all.iter().any(|t| t.display_name() == task)
                    })
                    .map(|p| p.name.clone())
                    .unwrap_or_default();
                return Err(PackError::MissingFile { play, task, src });
            };
            host_files.insert(src, f.clone());
        }
        let play_vars = indices
            .iter()
            .zip(plays)
            .map(|(i, play)| {
                let hosts: Vec<&str> = self
                    .per_play
                    .get(*i)
                    .map(|hs| hs.iter().map(|h| h.name.as_str()).collect())
                    .unwrap_or_default();
                play_magic(play, &hosts)
            })
            .collect();
        // The controller trees the plays reach: their files and parsed task and
        // variables files.
        // Only plays that name files while they run need them: a play whose files are
        // all named literally has them already, by name.
        let reach: Vec<String> = if names_files_at_run_time(plays, &host_files) {
            plays.iter().flat_map(|p| p.reach.iter().cloned()).collect()
        } else {
            Vec::new()
        };
        if !reach.is_empty() {
            for (k, f) in files
                .iter()
                .filter(|(k, _)| rustle_runner::plan::is_under(k, &reach))
            {
                host_files.entry(k.clone()).or_insert_with(|| f.clone());
            }
        }
        let mut library = self.plan.library.under(&reach);
        library
            .layout
            .extend(layout_of(&self.plan.library.layout, &host_files));
        let hostvars = if refers_to_hostvars(plays, &host_files) {
            self.inventory
                .hosts()
                .map(|h| (h.name.clone(), host_vars(h)))
                .collect()
        } else {
            BTreeMap::new()
        };
        Ok(Shared {
            files: host_files,
            library,
            play_vars,
            groups: self.groups.clone(),
            hostvars,
        })
    }
}

/// The directories and links of the trees `files` come from: those whose directory
/// holds some of the files (below it), so that a copy of a directory carried by name
/// makes its empty directories and links too.
fn layout_of(
    layout: &rustle_runner::plan::Layout,
    files: &BTreeMap<String, HostFile>,
) -> rustle_runner::plan::Layout {
    let mut holding = std::collections::BTreeSet::new();
    for name in files.keys() {
        let mut dir = rustle_runner::resolve::dirname(name);
        while !dir.is_empty() && dir != "/" && holding.insert(dir) {
            dir = rustle_runner::resolve::dirname(dir);
        }
    }
    let mut kept = layout.only(|k| holding.contains(rustle_runner::resolve::dirname(k)));
    // A synchronize source's top (a file, or a directory holding some) is stamped too.
    kept.stamps.extend(
        (layout.stamps.iter())
            .filter(|(k, _)| files.contains_key(*k) || holding.contains(k.as_str()))
            .map(|(k, v)| (k.clone(), *v)),
    );
    kept
}

/// The version of ansible-core whose semantics rustle-deploy follows, for
/// `ansible_version` (playbooks compare it to decide what they may use).
pub const ANSIBLE_VERSION: (u64, u64, u64) = (2, 18, 19);

/// The magic variables about the run and the inventory every host gets: the plan's own
/// (`ansible_run_tags`, `ansible_skip_tags`), `omit`, `ansible_version`,
/// `inventory_file`, `inventory_dir` and `ansible_inventory_sources`.
fn run_magic(plan: &DeployPlan, inventory: &Inventory, settings: &PayloadSettings) -> Vars {
    let mut magic = plan.magic.clone();
    // A plan made without `-v` says nothing: Ansible's default.
    magic
        .entry("ansible_verbosity")
        .or_insert_with(|| serde_json::Value::from(0));
    // Ansible's token is random per run; one per deployment serves the same purpose: a
    // value no template writes by accident.
    let token = Digest::of(format!("omit {}", settings.deployment_id).as_bytes()).to_hex();
    magic.insert(
        "omit".into(),
        format!("__omit_place_holder__{}", token.get(..40).unwrap_or(&token)).into(),
    );
    // The deployer has no verbosity levels; Ansible's default run is 0.
    magic.entry("ansible_verbosity").or_insert_with(|| 0.into());
    let (major, minor, revision) = ANSIBLE_VERSION;
    let full = format!("{major}.{minor}.{revision}");
    magic.insert(
        "ansible_version".into(),
        serde_json::json!({"string": full, "full": full, "major": major, "minor": minor,
                           "revision": revision}),
    );
    let file: Option<serde_json::Value> = inventory
        .path()
        .map(|p| crate::playbook::controller_path(p).into());
    let dir = inventory.path().map(|p| {
        let parent = match p.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => std::path::Path::new("."),
        };
        serde_json::Value::from(crate::playbook::controller_path(parent))
    });
    // Ansible's sources as given, paths made absolute (an inline host list as it is).
    let sources: Vec<serde_json::Value> = inventory
        .sources()
        .iter()
        .map(|p| match p.exists() {
            true => crate::playbook::controller_path(p).into(),
            false => p.to_string_lossy().into_owned().into(),
        })
        .collect();
    if !sources.is_empty() {
        magic.insert(
            "ansible_inventory_sources".into(),
            serde_json::Value::Array(sources),
        );
    }
    magic.insert(
        "inventory_file".into(),
        file.unwrap_or(serde_json::Value::Null),
    );
    magic.insert(
        "inventory_dir".into(),
        dir.unwrap_or(serde_json::Value::Null),
    );
    magic
}

/// The magic variables of a play on its hosts (`hosts`, in inventory order). Every
/// host runs the whole play, so the batch is every host and no host is ever removed
/// from `ansible_play_hosts` for failing (Ansible removes failed hosts from it).
fn play_magic(play: &Play, hosts: &[&str]) -> Vars {
    let names = serde_json::Value::Array(hosts.iter().map(|h| (*h).into()).collect());
    let mut vars = Vars::new();
    // One list travels; the runner gives it the other names (`ansible_play_hosts`,
    // `ansible_play_batch`, `play_hosts`), which are the same list here.
    vars.insert("ansible_play_hosts_all".into(), names);
    // A play without a name is named after its host pattern, as in Ansible.
    let name = if play.name.is_empty() {
        play.hosts.join(",")
    } else {
        play.name.clone()
    };
    vars.insert("ansible_play_name".into(), name.into());
    vars
}

/// Whether the plays (or the templates they render) may name a controller file only
/// when they run: an include, `include_vars`, a lookup, a `with_<lookup>` loop, or a
/// templated `src`.
fn names_files_at_run_time(plays: &[Play], files: &BTreeMap<String, HostFile>) -> bool {
    const MARKERS: [&str; 7] = [
        "include_tasks",
        "include_role",
        "include_vars",
        "lookup(",
        "query(",
        "q(",
        "loop_with",
    ];
    let mut all: Vec<&Task> = Vec::new();
    for p in plays {
        for t in p.tasks.iter().chain(&p.handlers) {
            t.walk(&mut all);
        }
    }
    let templated_src = all.iter().any(|t| {
        t.args
            .get("src")
            .and_then(serde_json::Value::as_str)
            .is_some_and(|s| s.contains("{{") || s.contains("{%"))
    });
    templated_src
        || serde_json::to_string(plays)
            .map(|t| MARKERS.iter().any(|m| t.contains(m)))
            .unwrap_or(true)
        || files.values().any(|f| {
            MARKERS
                .iter()
                .any(|m| f.content.windows(m.len()).any(|w| w == m.as_bytes()))
        })
}

/// Whether anything the hosts of these plays can run or render names `hostvars`: only
/// then do other hosts' variables travel in their payloads.
fn refers_to_hostvars(plays: &[Play], files: &BTreeMap<String, HostFile>) -> bool {
    const NAME: &[u8] = b"hostvars";
    let in_plays = serde_json::to_string(plays)
        .map(|t| t.contains("hostvars"))
        .unwrap_or(true);
    in_plays
        || files
            .values()
            .any(|f| f.content.windows(NAME.len()).any(|w| w == NAME))
}

/// Seals host plans: encode, compress, sign. One sealer serves every host of a deploy so
/// the compressor's tables are set up once, not per host (that set-up costs more than
/// compressing a typical plan), and the shared part of plans is compressed once for all
/// the hosts that share it.
pub struct Sealer<'k> {
    key: &'k SigningKey,
    compressor: zstd::bulk::Compressor<'static>,
    /// Compressed shared sections, by the shared part they encode (kept alive here so
    /// that a pointer is never reused for another one during the deploy).
    shared: Vec<(Arc<Shared>, Vec<u8>)>,
}

impl std::fmt::Debug for Sealer<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer")
    }
}

impl<'k> Sealer<'k> {
    /// A sealer signing with `key`.
    pub fn new(key: &'k SigningKey) -> Result<Sealer<'k>, PackError> {
        let compressor =
            zstd::bulk::Compressor::new(ZSTD_LEVEL).map_err(|e| PackError::Encode {
                host: String::new(),
                reason: format!("zstd: {e}"),
            })?;
        Ok(Sealer {
            key,
            compressor,
            shared: Vec::new(),
        })
    }

    /// Encodes, compresses and signs a host plan; returns the payload and its digest.
    pub fn seal(&mut self, plan: &HostPlan) -> Result<(Vec<u8>, Digest), PackError> {
        let encode_err = |reason: String| PackError::Encode {
            host: plan.host.clone(),
            reason,
        };
        let raw = payload::encode_host(plan).map_err(|e| encode_err(e.to_string()))?;
        let host_frame = self
            .compressor
            .compress(&raw)
            .map_err(|e| encode_err(e.to_string()))?;
        let cached = self
            .shared
            .iter()
            .position(|(s, _)| Arc::ptr_eq(s, &plan.shared));
        let at = match cached {
            Some(at) => at,
            None => {
                let raw =
                    payload::encode_shared(&plan.shared).map_err(|e| encode_err(e.to_string()))?;
                let frame = self
                    .compressor
                    .compress(&raw)
                    .map_err(|e| encode_err(e.to_string()))?;
                self.shared.push((Arc::clone(&plan.shared), frame));
                self.shared.len() - 1
            }
        };
        let shared_frame = self
            .shared
            .get(at)
            .map(|(_, f)| f.as_slice())
            .unwrap_or(&[]);
        let body = payload::body(&host_frame, shared_frame);
        let sealed = payload::seal(&body, self.key);
        Ok((sealed, Digest::of(&body)))
    }
}

/// Puts a sealed payload into a copy of the runner for the host's platform.
pub fn pack(
    host: &str,
    triple: Triple,
    runner: &[u8],
    sealed: &[u8],
) -> Result<Vec<u8>, PackError> {
    if triple.is_elf() {
        elf::embed(runner, sealed).map_err(|source| PackError::Embed {
            host: host.to_string(),
            source,
        })
    } else {
        crate::macho::embed(runner, sealed).map_err(|e| PackError::Target {
            host: host.to_string(),
            reason: format!("cannot pack the {triple} runner: {e}"),
        })
    }
}
