//! A deployment, planned first and then carried out: load, resolve hosts, pack, and
//! (for local hosts) run.
//!
//! [`prepare`] computes everything a deploy will do (host -> triple -> payload digest)
//! without touching any host; `--dry-run` prints it. [`compile`] turns it into packed
//! runners, and [`run_local`] runs them on this machine.

use crate::inventory::{Host, Inventory, InventoryError};
use crate::keys::{self, KeyError, KeyPair};
use crate::pack::{self, PackError, PayloadSettings};
use crate::plan::{self, PlanError};
use crate::runners::{self, Runner, RunnerError};
use crate::target::Triple;
use ed25519_dalek::SigningKey;
use rustle_runner::events::{Event, Recap, Status};
use rustle_runner::payload::Digest;
use rustle_runner::plan::HostPlan;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// rustle-deploy's exit codes (documented in `docs/exit-codes.md`).
pub mod exit {
    /// Every host ran every task without failure.
    pub const OK: i32 = 0;
    /// Internal error (I/O on this machine).
    pub const INTERNAL: i32 = 1;
    /// At least one host had a failed task.
    pub const HOST_FAILED: i32 = 2;
    /// At least one host was unreachable or refused its runner.
    pub const UNREACHABLE: i32 = 3;
    /// Bad input: plan, inventory, key or command line. No host was touched.
    pub const BAD_INPUT: i32 = 4;
    /// A runner could not be found, built or packed. No host was touched.
    pub const PACK_FAILED: i32 = 5;
}

/// Everything that can stop a deploy before or while it runs.
#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    /// The plan.
    #[error(transparent)]
    Plan(#[from] PlanError),
    /// The inventory.
    #[error(transparent)]
    Inventory(#[from] InventoryError),
    /// The signing key.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// Making a payload.
    #[error(transparent)]
    Pack(#[from] PackError),
    /// The config file or environment.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// Reading an Ansible playbook.
    #[error(transparent)]
    Playbook(#[from] crate::playbook::PlaybookError),
    /// The vault password (`--vault-password-file`).
    #[error(transparent)]
    Vault(#[from] crate::vault::VaultError),
    /// Finding or building a runner.
    #[error(transparent)]
    Runner(#[from] RunnerError),
    /// Building a runner with the plan's custom modules.
    #[error(transparent)]
    Custom(#[from] crate::custom::CustomError),
    /// Something this build cannot do yet, said plainly.
    #[error("{0}")]
    Unsupported(String),
    /// A file on this machine.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

impl DeployError {
    /// Whether this is an error ansible-playbook gives in the same words, which the
    /// command line prints as Ansible does (`ERROR! ...`).
    pub fn is_ansibles(&self) -> bool {
        matches!(
            self,
            DeployError::Playbook(crate::playbook::PlaybookError::Ansible(_))
        )
    }

    /// The process exit code for this error.
    pub fn exit_code(&self) -> i32 {
        match self {
            DeployError::Plan(_)
            | DeployError::Inventory(_)
            | DeployError::Key(_)
            | DeployError::Playbook(_)
            | DeployError::Vault(_)
            | DeployError::Config(_) => exit::BAD_INPUT,
            DeployError::Unsupported(_) => exit::BAD_INPUT,
            // A plan the runner cannot run is bad input; a runner that cannot be packed is not.
            DeployError::Pack(
                PackError::UnsupportedModule { .. }
                | PackError::PlayConnection { .. }
                | PackError::NoModule { .. }
                | PackError::MissingFile { .. }
                | PackError::BadFile { .. }
                | PackError::Target { .. },
            ) => exit::BAD_INPUT,
            // A module that does not compile is the plan's fault; a missing toolchain is not.
            DeployError::Custom(e) if e.is_bad_input() => exit::BAD_INPUT,
            DeployError::Pack(_) | DeployError::Runner(_) | DeployError::Custom(_) => {
                exit::PACK_FAILED
            }
            DeployError::Io { .. } => exit::INTERNAL,
        }
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> DeployError + '_ {
    move |source| DeployError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// What to deploy and how.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// The plan file, or `-` for stdin.
    pub plan: PathBuf,
    /// The inventory sources (`-i`, each time), merged; none means just localhost, run
    /// locally.
    pub inventory: Vec<PathBuf>,
    /// Where `src` files of a rustle-plan input are found (default: the plan's directory).
    pub files_dir: Option<PathBuf>,
    /// Force one target triple for every host.
    pub target: Option<Triple>,
    /// The signing key (default `~/.rustle/keys/deploy.key`).
    pub key: Option<PathBuf>,
    /// Where prebuilt runners are.
    pub runner_dir: Option<PathBuf>,
    /// Force check mode.
    pub check_mode: bool,
    /// Force diff mode.
    pub diff_mode: bool,
    /// Platform for hosts that say nothing about theirs (`[targets] default_arch`).
    pub default_target: Option<Triple>,
    /// `--vault-password-file`, read: opens vaulted playbook, vars and inventory files.
    pub vault: Option<crate::vault::Vault>,
    /// `-e` arguments, as given (for playbooks).
    pub extra_vars: Vec<String>,
    /// `--limit`: an Ansible host pattern the participating hosts must match.
    pub limit: Option<String>,
    /// Playbooks given after the first: their plays run after the first one's, in
    /// the same run, as ansible-playbook runs several playbooks.
    pub more_plans: Vec<PathBuf>,
    /// `--tags` (for playbooks).
    pub tags: Vec<String>,
    /// `--skip-tags` (for playbooks).
    pub skip_tags: Vec<String>,
    /// How many `-v` were given: the plays' `ansible_verbosity`.
    pub verbosity: u8,
    /// Ask SSH hosts that say nothing about their platform (`uname -sm`); without this
    /// they get `default_target` (dry runs touch no host).
    pub probe: Option<Probe>,
    /// The playbook `rustle-deploy adhoc` made ([`crate::adhoc::play`]), read in place
    /// of the file `plan` names (which gives it a directory, the current one).
    pub adhoc: Option<serde_norway::Value>,
    /// `--force-handlers`: the plays' default `force_handlers`.
    pub force_handlers: bool,
    /// `ANSIBLE_ERROR_ON_MISSING_HANDLER` off: a notification of no handler only warns.
    pub missing_handler_warns: bool,
}

/// How SSH hosts are probed for their platform.
#[derive(Debug, Clone)]
pub struct Probe {
    /// How to reach them.
    pub remote: crate::remote::RemoteOptions,
    /// The cache of earlier answers (`~/.rustle/targets.json`).
    pub cache: PathBuf,
    /// Probe again even when the cache has an answer (`--rebuild`).
    pub refresh: bool,
}

/// A host that gets nothing, and why (its platform has no runner, or it could not be
/// asked for its platform). Reported with the other hosts' results.
#[derive(Debug, Clone, PartialEq)]
pub struct Skipped {
    /// The host.
    pub host: String,
    /// Why, naming the platform.
    pub reason: String,
}

/// One host's share of a deployment.
#[derive(Debug)]
pub struct Job {
    /// The inventory host.
    pub host: Host,
    /// Its runner platform.
    pub triple: Triple,
    /// The sealed payload.
    pub sealed: Vec<u8>,
    /// The payload digest (the runner's `--expect`).
    pub digest: Digest,
    /// Tasks in its plan (blocks count their tasks), for display.
    pub tasks: usize,
    /// Whether its plan asks for privilege anywhere.
    pub needs_become: bool,
    /// A runner packed earlier (`--deploy-only`): shipped as it is.
    pub prepacked: Option<Vec<u8>>,
    /// Why this host gets no runner and has its tasks run over SSH one at a time
    /// instead (its platform has none): the deployer's SSH mode.
    pub ssh_fallback: Option<String>,
    /// Its plan has tasks that need the controller channel (delegated, `run_once`):
    /// its runner is started with `--channel` and its stdin stays open for answers.
    pub channel: bool,
    /// The plays of its plan whose hosts wait for each other after each task
    /// (`Play::fleet`), by number: the deployer counts a batch's hosts of each.
    pub fleet: Vec<usize>,
}

impl Job {
    /// The signed payload (the one inside a runner packed earlier, for those).
    pub fn payload(&self) -> &[u8] {
        match &self.prepacked {
            Some(packed) => rustle_runner::locate::find_payload(packed).unwrap_or_default(),
            None => &self.sealed,
        }
    }
}

/// A deployment computed but not carried out.
#[derive(Debug)]
pub struct Prepared {
    /// The deployment id.
    pub id: String,
    /// One job per participating host, in inventory order.
    pub jobs: Vec<Job>,
    /// Things worth saying with `--verbose`.
    pub notes: Vec<String>,
    /// The signing key (`None` for a dry run without a key yet).
    pub key: Option<KeyPair>,
    /// From the playbook's `serial`/`max_fail_percentage`: hosts per batch and failed
    /// hosts tolerated per batch, for the rolling strategy.
    pub rolling: Option<(usize, usize)>,
    /// Hosts that get nothing because no runner fits them, in inventory order.
    pub skipped: Vec<Skipped>,
    /// The plan's custom Rust modules, sources read: when there are any, every host's
    /// runner is built with them ([`crate::custom`]) instead of taken prebuilt.
    pub custom: Vec<crate::custom::Module>,
    /// Every host of the inventory (`--limit` aside), with its variables: the hosts
    /// tasks may be delegated to (`delegate_to`).
    pub inventory: Vec<Host>,
}

/// A new deployment id: UTC time plus randomness, sortable and unique.
pub fn new_deployment_id() -> String {
    let now = SystemTime::now();
    let t = rustle_runner::facts::date_time(now);
    let field = |k: &str| t.get(k).and_then(Value::as_str).unwrap_or("00").to_string();
    let mut rnd = [0u8; 3];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut rnd);
    format!(
        "{}{}{}T{}{}{}Z-{}",
        field("year"),
        field("month"),
        field("day"),
        field("hour"),
        field("minute"),
        field("second"),
        rustle_runner::hex::encode(&rnd)
    )
}

fn count_tasks(hp: &HostPlan) -> usize {
    let mut all = Vec::new();
    for p in &hp.plays {
        for t in p.tasks.iter().chain(&p.handlers) {
            t.walk(&mut all);
        }
    }
    all.iter().filter(|t| t.block.is_none()).count()
}

fn needs_become(hp: &HostPlan) -> bool {
    hp.plays.iter().any(|p| {
        let mut all = Vec::new();
        for t in p.tasks.iter().chain(&p.handlers) {
            t.walk(&mut all);
        }
        // A templated `become` is known only on the host: it may need root.
        let may =
            |f: &Option<rustle_runner::plan::Flag>| f.as_ref().is_some_and(|f| f.may_be_true());
        may(&p.become_) || all.iter().any(|t| may(&t.become_))
    })
}

/// Loads the inputs and computes every host's payload. Touches no host. With
/// `create_key` false (dry runs), a missing key is replaced by a throwaway one.
pub fn prepare(opts: &Options, create_key: bool) -> Result<Prepared, DeployError> {
    let is_playbook = opts.adhoc.is_some()
        || opts.plan.as_os_str() != "-"
            && std::fs::read_to_string(&opts.plan)
                .map(|t| crate::playbook::looks_like_playbook(&t))
                .unwrap_or(false);
    let (mut the_plan, mut notes) = if is_playbook {
        let pb = crate::playbook::PlaybookOptions {
            check: opts.check_mode,
            diff: opts.diff_mode,
            extra_vars: crate::playbook::parse_extra_vars(&opts.extra_vars, opts.vault.as_ref())?,
            vault: opts.vault.clone(),
            tags: opts.tags.clone(),
            skip_tags: opts.skip_tags.clone(),
            verbosity: opts.verbosity,
            adhoc: opts.adhoc.clone().map(|doc| (opts.plan.clone(), doc)),
            force_handlers: opts.force_handlers,
            missing_handler_warns: opts.missing_handler_warns,
            ..Default::default()
        };
        let plan = crate::playbook::load_playbooks(&opts.plan, &opts.more_plans, &pb)?;
        (plan, Vec::new())
    } else {
        if !opts.more_plans.is_empty() {
            return Err(DeployError::Unsupported(format!(
                "{} is not a playbook: only playbooks can be given several at a time",
                opts.plan.display()
            )));
        }
        if !opts.tags.is_empty() || !opts.skip_tags.is_empty() {
            return Err(DeployError::Unsupported(
                "--tags and --skip-tags apply to playbooks; a plan's tasks are chosen when it \
                 is made (give them to `rustle-deploy plan`)"
                    .into(),
            ));
        }
        if !opts.extra_vars.is_empty() {
            return Err(DeployError::Unsupported(
                "-e applies to playbooks; a plan's variables are fixed when it is made \
                 (give -e to `rustle-deploy plan`)"
                    .into(),
            ));
        }
        let loaded = plan::load_plan(&opts.plan)?;
        (loaded.plan, loaded.notes)
    };
    let base = match &opts.files_dir {
        Some(d) => d.clone(),
        None if opts.plan.as_os_str() == "-" => PathBuf::from("."),
        None => opts
            .plan
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from(".")),
    };
    plan::attach_files(&mut the_plan, &base)?;
    let plan_dir = match opts.plan.parent() {
        Some(d) if opts.plan.as_os_str() != "-" => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let custom = crate::custom::resolve(&the_plan, &plan_dir)?;
    // Inventory-side group_vars/host_vars, then what the plan carries from beside the
    // playbook (its group_vars/host_vars and a --limit given to `plan`), then --limit.
    let mut inventory = Inventory::load_sources(&opts.inventory, opts.vault.as_ref())?;
    let mut rolling = None;
    if let Some(carried) = crate::playbook::Carried::take(&mut the_plan)? {
        rolling = carried.rolling.clone();
        carried.apply(&mut inventory)?;
    }
    if let Some(limit) = &opts.limit {
        inventory.set_limit(limit)?;
    }
    crate::playbook::apply_role_defaults(&mut the_plan, &inventory);
    for warning in pack::check_modules(&mut the_plan)? {
        eprintln!("[WARNING]: {warning}");
    }
    pack::check_play_connections(&the_plan, &inventory)?;
    // env/pipe/lines/password read the controller: answered here, sealed into payloads.
    crate::lookups::answer(
        &mut the_plan,
        &inventory,
        &crate::lookups::World::new(plan_dir.clone()),
    );

    let key_path = match &opts.key {
        Some(k) => k.clone(),
        None => keys::default_key_path()?,
    };
    let key = if create_key {
        let (pair, made) = keys::load_or_create(&key_path)?;
        if made {
            eprintln!(
                "rustle-deploy: created a signing key at {} (public key: {}); hosts trust it from their first deploy",
                pair.path.display(),
                pair.public_path.display()
            );
        }
        Some(pair)
    } else if key_path.exists() {
        Some(keys::load(&key_path)?)
    } else {
        notes.push(format!(
            "no signing key at {} yet: sizes below use a throwaway key",
            key_path.display()
        ));
        None
    };
    let signing = match &key {
        Some(k) => k.signing.clone(),
        None => SigningKey::generate(&mut rand_core::OsRng),
    };

    let settings = PayloadSettings {
        deployment_id: new_deployment_id(),
        created_at: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
        check_mode: opts.check_mode,
        diff_mode: opts.diff_mode,
    };
    let hosts = pack::participating_hosts(&the_plan, &inventory);
    let platforms = detect_platforms(&hosts, opts, &mut notes)?;
    let (jobs, skipped) = pack_hosts(&the_plan, &inventory, &settings, &signing, &platforms)?;
    if jobs.is_empty() && skipped.is_empty() {
        notes.push("no host of the inventory matches any play".into());
    }
    let rolling = rolling.map(|r| r.batches(jobs.len()));
    if let Some((batch, tolerated)) = rolling {
        notes.push(format!(
            "serial: rolling through the hosts {batch} at a time, stopping after a batch \
             with more than {tolerated} failed hosts (unless --strategy is given)"
        ));
    }
    Ok(Prepared {
        id: settings.deployment_id,
        jobs,
        notes,
        key,
        rolling,
        skipped,
        custom,
        inventory: inventory.hosts().cloned().collect(),
    })
}

/// Each host's platform, or why it has none: `--target`, else the inventory's
/// `rustle_target` or `ansible_system`/`ansible_architecture`, else this machine's for
/// local hosts, else `default_target` (`[targets] default_arch`), else for SSH hosts the
/// cached or freshly probed `uname -sm` (with [`Options::probe`]), else x86_64 Linux
/// with a note.
pub fn detect_platforms(
    hosts: &[&Host],
    opts: &Options,
    notes: &mut Vec<String>,
) -> Result<BTreeMap<String, Result<Triple, String>>, DeployError> {
    use crate::target::{Declared, TargetCache};
    let mut out = BTreeMap::new();
    let mut to_probe: Vec<(Host, String)> = Vec::new();
    let mut cache = opts.probe.as_ref().map(|p| TargetCache::load(&p.cache));
    for host in hosts {
        let found = match crate::target::declared(host, opts.target) {
            Declared::Triple(t) => Ok(t),
            Declared::Unsupported(why) => Err(why),
            Declared::Unknown if host.is_local() => {
                Triple::native().ok_or_else(|| "this machine's platform has no runner".to_string())
            }
            // A configured default is the user's word for hosts that say nothing.
            Declared::Unknown if opts.default_target.is_some() => {
                Ok(assumed(host, opts.default_target, notes))
            }
            Declared::Unknown => match (&opts.probe, &cache) {
                (Some(probe), Some(cache)) => {
                    let (t, _) = crate::remote::target(host, &probe.remote);
                    let key = TargetCache::key(&t.address, t.port);
                    match cache.get(&key) {
                        Some(triple) if !probe.refresh => {
                            notes.push(format!(
                                "host '{}': platform {triple} (cached in {})",
                                host.name,
                                cache.path().display()
                            ));
                            Ok(triple)
                        }
                        _ => {
                            to_probe.push(((*host).clone(), key));
                            continue;
                        }
                    }
                }
                _ => Ok(assumed(host, opts.default_target, notes)),
            },
        };
        out.insert(host.name.clone(), found);
    }
    if let (Some(probe), Some(cache), false) = (&opts.probe, &mut cache, to_probe.is_empty()) {
        let hosts: Vec<Host> = to_probe.iter().map(|(h, _)| h.clone()).collect();
        let answers = crate::remote::probe_platforms(&hosts, &probe.remote).map_err(|source| {
            DeployError::Io {
                path: PathBuf::from("tokio runtime"),
                source,
            }
        })?;
        for ((host, key), answer) in to_probe.iter().zip(answers) {
            let found = match answer {
                Ok(uname) => {
                    let t = crate::target::from_uname(&uname);
                    notes.push(format!(
                        "host '{}': probed `uname -sm`: {}",
                        host.name,
                        printable(&uname)
                    ));
                    match &t {
                        Ok(triple) => cache.set(key, &uname, *triple),
                        Err(_) => cache.remove(key),
                    }
                    t
                }
                Err(e) => Err(format!(
                    "cannot ask it for its platform: {}",
                    printable(&e.to_string())
                )),
            };
            out.insert(host.name.clone(), found);
        }
        // A cache that cannot be written costs a probe next time, nothing more.
        if let Err(e) = cache.save() {
            notes.push(format!("cannot write {}: {e}", cache.path().display()));
        }
    }
    Ok(out)
}

fn assumed(host: &Host, default: Option<Triple>, notes: &mut Vec<String>) -> Triple {
    default.unwrap_or_else(|| {
        notes.push(format!(
            "host '{}': platform unknown, assuming {} (set rustle_target or ansible_architecture)",
            host.name,
            Triple::X86_64LinuxMusl
        ));
        Triple::X86_64LinuxMusl
    })
}

/// Packs every participating host whose platform is known; the others are returned as
/// skipped, with the reason naming the platform.
fn pack_hosts(
    the_plan: &rustle_runner::plan::DeployPlan,
    inventory: &Inventory,
    settings: &PayloadSettings,
    signing: &SigningKey,
    platforms: &BTreeMap<String, Result<Triple, String>>,
) -> Result<(Vec<Job>, Vec<Skipped>), DeployError> {
    let mut planner = pack::Planner::new(the_plan, inventory, settings)?;
    let mut jobs = Vec::new();
    let mut skipped = Vec::new();
    let mut sealer = pack::Sealer::new(signing)?;
    for host in pack::participating_hosts(the_plan, inventory) {
        let (triple, ssh_fallback) = match platforms.get(&host.name) {
            Some(Ok(t)) => (*t, None),
            // An SSH host whose platform has no runner still gets its tasks, run over
            // SSH one at a time (the triple is then only a placeholder, never shipped).
            Some(Err(why)) if !host.is_local() => (
                Triple::X86_64LinuxMusl,
                Some(format!("no runner for this host: {why}")),
            ),
            Some(Err(why)) => {
                skipped.push(Skipped {
                    host: host.name.clone(),
                    reason: format!("no runner for this host: {why}"),
                });
                continue;
            }
            None => continue,
        };
        let hp = planner.host_plan(host)?;
        let (sealed, digest) = sealer.seal(&hp)?;
        jobs.push(Job {
            host: host.clone(),
            triple,
            sealed,
            digest,
            tasks: count_tasks(&hp),
            needs_become: needs_become(&hp),
            prepacked: None,
            ssh_fallback,
            channel: needs_channel(&hp),
            fleet: hp.plays.iter().filter_map(|p| p.fleet).collect(),
        });
    }
    Ok((jobs, skipped))
}

/// Whether a host's runner needs the controller channel: tasks only the controller
/// can carry out, a play whose hosts wait for each other (`any_errors_fatal`), or one
/// whose hosts read each other's `hostvars`, or a controller lookup whose arguments
/// only the host knows.
fn needs_channel(hp: &rustle_runner::plan::HostPlan) -> bool {
    !hp.channel_tasks().is_empty()
        || hp
            .plays
            .iter()
            .any(|p| p.fleet.is_some() || p.number.is_some())
        || crate::lookups::plan_uses_any(hp)
}

/// Computes every participating host's sealed payload. This is the per-host hot path
/// the pack benchmark measures.
pub fn pack_jobs(
    the_plan: &rustle_runner::plan::DeployPlan,
    inventory: &Inventory,
    settings: &PayloadSettings,
    signing: &SigningKey,
    target: Option<Triple>,
    default_target: Option<Triple>,
    notes: &mut Vec<String>,
) -> Result<Vec<Job>, DeployError> {
    let hosts = pack::participating_hosts(the_plan, inventory);
    let opts = Options {
        target,
        default_target,
        ..Options::default()
    };
    let platforms = detect_platforms(&hosts, &opts, notes)?;
    let (jobs, skipped) = pack_hosts(the_plan, inventory, settings, signing, &platforms)?;
    // Callers of this function (benchmarks) want every host packed or an error.
    if let Some(s) = skipped.into_iter().next() {
        return Err(PackError::Target {
            host: s.host,
            reason: s.reason,
        }
        .into());
    }
    Ok(jobs)
}

/// The `--dry-run` table: which host gets which triple, runner and payload size.
pub fn dry_run_table(p: &Prepared, runner_dir: Option<&Path>) -> String {
    let mut out = format!("deployment {} ({} hosts)\n", p.id, p.jobs.len());
    out.push_str("HOST\tCONNECTION\tTARGET\tRUNNER\tTASKS\tPAYLOAD BYTES\tPAYLOAD DIGEST\n");
    let mut found: BTreeMap<Triple, String> = BTreeMap::new();
    for j in &p.jobs {
        let runner = found
            .entry(j.triple)
            .or_insert_with(|| match runners::find(j.triple, runner_dir) {
                Ok(r) => format!("{} ({} bytes)", r.path.display(), r.bytes.len()),
                Err(_) => format!("missing: {}", runners::build_command(j.triple)),
            })
            .clone();
        out.push_str(&format!(
            "{}\t{}\t{}\t{}\t{}\t{}\t{}\n",
            j.host.name,
            j.host.connection(),
            j.triple,
            runner,
            j.tasks,
            j.sealed.len(),
            j.digest
        ));
    }
    for s in &p.skipped {
        out.push_str(&format!(
            "{}\t-\tnone\tskipped: {}\t-\t-\t-\n",
            s.host, s.reason
        ));
    }
    out
}

/// Finds (or, for this machine's own platform, builds) the runner of every triple the
/// jobs need.
pub fn runners_for(
    jobs: &[Job],
    runner_dir: Option<&Path>,
) -> Result<BTreeMap<Triple, Runner>, DeployError> {
    let mut out = BTreeMap::new();
    for j in jobs {
        if out.contains_key(&j.triple) {
            continue;
        }
        let runner = match runners::find(j.triple, runner_dir) {
            Ok(r) => r,
            Err(RunnerError::Missing { .. })
                if Some(j.triple) == Triple::native() && runners::can_build() =>
            {
                eprintln!(
                    "rustle-deploy: no {} runner yet; building it once with `{}`",
                    j.triple,
                    runners::build_command(j.triple)
                );
                runners::build(j.triple)?;
                runners::find(j.triple, runner_dir)?
            }
            Err(e) => return Err(e.into()),
        };
        out.insert(j.triple, runner);
    }
    Ok(out)
}

/// Like [`runners_for`], but a platform whose runner is missing costs only its hosts:
/// they move to `p.skipped` (the message says how to build the runner) and the other
/// hosts go on. When no host has a runner at all, the error is returned as it is.
pub fn runners_or_skip(
    p: &mut Prepared,
    runner_dir: Option<&Path>,
) -> Result<BTreeMap<Triple, Runner>, DeployError> {
    let mut out = BTreeMap::new();
    let mut missing: BTreeMap<Triple, DeployError> = BTreeMap::new();
    let order: Vec<String> = p.jobs.iter().map(|j| j.host.name.clone()).collect();
    for j in &p.jobs {
        if j.ssh_fallback.is_some()
            || out.contains_key(&j.triple)
            || missing.contains_key(&j.triple)
        {
            continue;
        }
        match runners_for(std::slice::from_ref(j), runner_dir) {
            Ok(found) => out.extend(found),
            Err(e @ DeployError::Runner(RunnerError::Missing { .. })) => {
                missing.insert(j.triple, e);
            }
            Err(e) => return Err(e),
        }
    }
    if out.is_empty()
        && p.jobs
            .iter()
            .all(|j| j.prepacked.is_none() && (j.ssh_fallback.is_none() || j.host.is_local()))
    {
        if let Some((_, e)) = missing.into_iter().next() {
            return Err(e);
        }
        return Ok(out);
    }
    let (mut keep, drop): (Vec<Job>, Vec<Job>) =
        std::mem::take(&mut p.jobs).into_iter().partition(|j| {
            out.contains_key(&j.triple) || j.prepacked.is_some() || j.ssh_fallback.is_some()
        });
    // An SSH host whose runner is not built here runs its tasks over SSH instead.
    let (fallback, drop): (Vec<Job>, Vec<Job>) = drop.into_iter().partition(|j| !j.host.is_local());
    for mut j in fallback {
        let why = missing
            .get(&j.triple)
            .map_or_else(String::new, ToString::to_string);
        j.ssh_fallback = Some(format!("no runner for {} here: {why}", j.triple));
        keep.push(j);
    }
    keep.sort_by_key(|j| order.iter().position(|n| *n == j.host.name));
    p.jobs = keep;
    for j in drop {
        let why = missing
            .get(&j.triple)
            .map_or_else(String::new, ToString::to_string);
        p.skipped.push(Skipped {
            host: j.host.name.clone(),
            reason: format!("no runner for this host's platform {}: {why}", j.triple),
        });
    }
    Ok(out)
}

/// Packs one job into its runner.
pub fn packed(job: &Job, runners: &BTreeMap<Triple, Runner>) -> Result<Vec<u8>, DeployError> {
    if let Some(p) = &job.prepacked {
        return Ok(p.clone());
    }
    let runner = runners
        .get(&job.triple)
        .ok_or_else(|| DeployError::Unsupported(format!("no runner loaded for {}", job.triple)))?;
    Ok(pack::pack(
        &job.host.name,
        job.triple,
        &runner.bytes,
        &job.sealed,
    )?)
}

/// Writes `bytes` to `path` atomically with `mode`, naming `path` in the error: through
/// the one writer of runner and deployer ([`rustle_runner::atomic::write`]), a new file of
/// its own renamed over `path`, so nothing another user planted in a shared directory is
/// written through, and a reader sees the old file or the new one, never half of one.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<(), DeployError> {
    rustle_runner::atomic::write(path, bytes, mode).map_err(|e| io(path)(e.into()))
}

/// Makes `dir` fit to hold packed runners, which carry decrypted vault values: a new
/// directory is created 0700. An existing one must be this user's and writable by no
/// one else: another user who can write there could swap a packed runner between
/// `--compile-only` and the moment it is run (`--deploy-only` would notice, through the
/// signed manifest; a file run by hand would not). One that others may only list is
/// used with a warning: every file in it is 0700 or 0600, so only the names show.
/// Existing directories are never chmodded behind the user's back (`-o .` would change
/// the whole project's).
fn private_output_dir(dir: &Path) -> Result<(), DeployError> {
    use std::os::unix::fs::{DirBuilderExt as _, MetadataExt as _, PermissionsExt as _};
    let refuse = |why: String| {
        DeployError::Unsupported(format!(
            "{}: {why}; packed runners hold the plan's secrets, so they are written only to a directory no other user can write to",
            dir.display()
        ))
    };
    match std::fs::metadata(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(io(dir))?;
            // The umask may have taken bits away, never added any; set it exactly.
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(io(dir))
        }
        Err(e) => Err(io(dir)(e)),
        Ok(m) if !m.is_dir() => Err(refuse("not a directory".into())),
        Ok(m) => {
            if let Some(me) = rustle_runner::facts::current_uid()
                && m.uid() != me
            {
                return Err(refuse(format!(
                    "owned by uid {}, not by this user (uid {me})",
                    m.uid()
                )));
            }
            let mode = m.mode() & 0o7777;
            if mode & 0o022 != 0 {
                return Err(refuse(format!(
                    "other users can write to it (mode {mode:04o}; `chmod go-w` it, or choose another --output-dir)"
                )));
            }
            if mode & 0o077 != 0 {
                eprintln!(
                    "rustle-deploy: warning: {} can be listed by other users (mode {mode:04o}): the packed runners in it are private (0700), but their names show; `chmod 700` it to hide them",
                    dir.display()
                );
            }
            Ok(())
        }
    }
}

/// One packed runner written by `--compile-only`.
#[derive(Debug, Clone)]
pub struct Compiled {
    /// The host.
    pub host: String,
    /// The file written.
    pub path: PathBuf,
    /// Payload digest.
    pub digest: Digest,
    /// File size.
    pub size: u64,
}

/// Writes one packed runner per host into `out_dir` as `<host><suffix>` (0700, in a
/// private directory: see [`private_output_dir`]), and the manifest `--deploy-only`
/// reads, signed with the deploy key.
/// The tasks of the prepared hosts' plans that need the controller channel, each once
/// (by its identity in the plan): its name, what it needs, and the hosts that have it.
/// A packed runner run by hand has no channel, so `--compile-only` lists them.
pub fn channel_tasks(p: &Prepared) -> Vec<(String, &'static str, Vec<String>)> {
    type Entry = (String, String, &'static str, Vec<String>);
    /// Adds `host` to the entry `id`, made with `name` and `what` the first time.
    fn add(out: &mut Vec<Entry>, id: String, name: String, what: &'static str, host: &str) {
        match out.iter_mut().find(|(i, ..)| *i == id) {
            Some((.., hosts)) => hosts.push(host.to_string()),
            None => out.push((id, name, what, vec![host.to_string()])),
        }
    }
    let mut out: Vec<Entry> = Vec::new();
    for job in p.jobs.iter().filter(|j| j.channel) {
        let Ok(plan) = rustle_runner::payload::parse(job.payload())
            .and_then(|(_, body)| rustle_runner::payload::decode_body(body))
        else {
            continue;
        };
        for task in plan.channel_tasks() {
            let id = task.channel_id();
            let to_controller = task
                .delegate_to
                .as_deref()
                .is_some_and(|d| rustle_runner::exec::CONTROLLER_NAMES.contains(&d));
            let what = match (
                task.delegate_to.is_some(),
                task.may_run_once(),
                to_controller,
            ) {
                (true, true, true) => "run_once, delegated to the controller",
                (true, false, true) => "delegated to the controller",
                (true, true, false) => "run_once, delegated (delegate_to)",
                (true, false, false) => "delegated (delegate_to)",
                _ => "run_once",
            };
            add(&mut out, id, task.display_name(), what, &job.host.name);
        }
        // A template reading another host's facts or registered values fails too.
        if plan.plays.iter().any(|p| p.number.is_some()) {
            add(
                &mut out,
                "hostvars".into(),
                "any template reading another host's hostvars".into(),
                "other hosts' facts and registered or set_fact values (their inventory variables are carried)",
                &job.host.name,
            );
        }
    }
    out.into_iter()
        .map(|(_, name, what, hosts)| (name, what, hosts))
        .collect()
}

pub fn compile(
    p: &Prepared,
    runners: &BTreeMap<Triple, Runner>,
    out_dir: &Path,
    suffix: &str,
) -> Result<Vec<Compiled>, DeployError> {
    let key = p
        .key
        .as_ref()
        .ok_or_else(|| DeployError::Unsupported("no signing key".into()))?;
    private_output_dir(out_dir)?;
    let mut out = Vec::new();
    let mut manifest = serde_json::Map::new();
    // A host whose platform has no runner has nothing to compile: its tasks can only
    // run over SSH at deploy time.
    for job in p.jobs.iter().filter(|j| j.ssh_fallback.is_none()) {
        let bytes = packed(job, runners)?;
        let name = format!("{}{}", job.host.name, suffix);
        if name.contains('/') || name.starts_with('.') {
            return Err(DeployError::Unsupported(format!(
                "host name '{}' cannot be used as a file name",
                job.host.name
            )));
        }
        let path = out_dir.join(&name);
        write_atomic(&path, &bytes, 0o700)?;
        manifest.insert(
            job.host.name.clone(),
            json!({
                "file": name,
                "triple": job.triple.as_str(),
                "digest": job.digest.to_hex(),
                "runner_digest": runners.get(&job.triple).map(|r| r.digest.to_hex()),
                "file_digest": Digest::of(&bytes).to_hex(),
                "needs_become": job.needs_become,
            }),
        );
        out.push(Compiled {
            host: job.host.name.clone(),
            path,
            digest: job.digest,
            size: bytes.len() as u64,
        });
    }
    // What --deploy-only ships later: which file is whose, and what each must verify
    // as, the whole file included (its runner part is code that may run as root).
    let text = serde_json::to_vec_pretty(&json!({
        "format": DEPLOYMENT_MANIFEST_FORMAT,
        "version": DEPLOYMENT_MANIFEST_VERSION,
        "deployment": p.id,
        "hosts": manifest,
    }))
    .unwrap_or_default();
    let signature = ed25519_dalek::Signer::sign(&key.signing, &manifest_message(&text));
    let sig_line = format!(
        "{} {}\n",
        rustle_runner::hex::encode(key.public().as_bytes()),
        rustle_runner::hex::encode(&signature.to_bytes())
    );
    write_atomic(&out_dir.join(DEPLOYMENT_MANIFEST), &text, 0o600)?;
    write_atomic(
        &out_dir.join(DEPLOYMENT_MANIFEST_SIGNATURE),
        sig_line.as_bytes(),
        0o600,
    )?;
    Ok(out)
}

/// The file `--compile-only` writes beside the packed runners.
pub const DEPLOYMENT_MANIFEST: &str = "deployment.json";
/// The deploy key's signature of [`DEPLOYMENT_MANIFEST`]: `<public key hex> <signature
/// hex>`, over [`MANIFEST_SIGNING_DOMAIN`] followed by the manifest's bytes.
pub const DEPLOYMENT_MANIFEST_SIGNATURE: &str = "deployment.json.sig";
/// Prefix of the signed message, so a manifest signature can never pass for a payload
/// signature made with the same key, or the other way round.
pub const MANIFEST_SIGNING_DOMAIN: &[u8] = b"rustle-deploy manifest v2\0";
const DEPLOYMENT_MANIFEST_FORMAT: &str = "rustle-deployment";
/// Version 2 is signed and records each file's whole digest; version 1 was neither,
/// and is refused.
const DEPLOYMENT_MANIFEST_VERSION: u64 = 2;

fn manifest_message(text: &[u8]) -> Vec<u8> {
    let mut msg = Vec::with_capacity(MANIFEST_SIGNING_DOMAIN.len() + text.len());
    msg.extend_from_slice(MANIFEST_SIGNING_DOMAIN);
    msg.extend_from_slice(text);
    msg
}

/// Checks the manifest's signature by `trusted` (the deploy key).
fn check_manifest_signature(
    out_dir: &Path,
    text: &[u8],
    trusted: &ed25519_dalek::VerifyingKey,
) -> Result<(), DeployError> {
    let path = out_dir.join(DEPLOYMENT_MANIFEST_SIGNATURE);
    let bad = |why: String| DeployError::Unsupported(format!("{}: {why}", path.display()));
    let line = match std::fs::read_to_string(&path) {
        Ok(l) => l,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(bad(
                "missing, so the manifest is unsigned (written by an older rustle-deploy, or tampered with); run --compile-only again".into(),
            ));
        }
        Err(e) => return Err(io(&path)(e)),
    };
    let mut fields = line.split_whitespace();
    let (Some(signer), Some(sig), None) = (fields.next(), fields.next(), fields.next()) else {
        return Err(bad("not `<public key> <signature>`".into()));
    };
    if rustle_runner::hex::decode(signer).as_deref() != Some(trusted.as_bytes().as_slice()) {
        return Err(bad(format!(
            "signed by key {signer}, not by this deploy key ({}); deploy with the key that compiled it (--key)",
            rustle_runner::hex::encode(trusted.as_bytes())
        )));
    }
    let sig: [u8; 64] = rustle_runner::hex::decode(sig)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| bad("the signature is not 64 bytes of hex".into()))?;
    trusted
        .verify_strict(
            &manifest_message(text),
            &ed25519_dalek::Signature::from_bytes(&sig),
        )
        .map_err(|_| {
            bad(format!(
                "the signature does not match {DEPLOYMENT_MANIFEST}: it was changed after --compile-only wrote it"
            ))
        })
}

/// Jobs for `--deploy-only`: the packed runners `--compile-only` wrote in `out_dir`, for
/// the inventory's hosts. Before any host is touched, the manifest's signature is
/// checked against `trusted` (the deploy key), then each whole file against the digest
/// the manifest records for it (so a runner part swapped under a genuine payload is
/// refused, not shipped), then its payload's digest and signature.
pub fn load_compiled(
    out_dir: &Path,
    inventory: &Inventory,
    trusted: &ed25519_dalek::VerifyingKey,
) -> Result<(String, Vec<Job>), DeployError> {
    let path = out_dir.join(DEPLOYMENT_MANIFEST);
    let bad = |why: String| DeployError::Unsupported(format!("{}: {why}", path.display()));
    let text = std::fs::read(&path).map_err(io(&path))?;
    check_manifest_signature(out_dir, &text, trusted)?;
    let m: Value = serde_json::from_slice(&text).map_err(|e| bad(e.to_string()))?;
    if m.get("format").and_then(Value::as_str) != Some(DEPLOYMENT_MANIFEST_FORMAT) {
        return Err(bad("not a rustle-deploy --compile-only manifest".into()));
    }
    if m.get("version").and_then(Value::as_u64) != Some(DEPLOYMENT_MANIFEST_VERSION) {
        return Err(bad(format!(
            "manifest version {}, but this rustle-deploy reads version {DEPLOYMENT_MANIFEST_VERSION}; run --compile-only again",
            m.get("version").unwrap_or(&Value::Null)
        )));
    }
    let id = m
        .get("deployment")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("no deployment id".into()))?
        .to_string();
    let hosts = m
        .get("hosts")
        .and_then(Value::as_object)
        .ok_or_else(|| bad("no hosts".into()))?;
    let mut jobs = Vec::new();
    for host in inventory.hosts() {
        let Some(entry) = hosts.get(&host.name) else {
            continue;
        };
        let field = |k: &str| {
            entry
                .get(k)
                .and_then(Value::as_str)
                .ok_or_else(|| bad(format!("host {}: no {k}", host.name)))
        };
        let file = field("file")?;
        if file.contains('/') || file.starts_with('.') {
            return Err(bad(format!("host {}: bad file name {file:?}", host.name)));
        }
        let triple: Triple = field("triple")?
            .parse()
            .map_err(|e: crate::target::UnknownTriple| bad(e.to_string()))?;
        let digest = Digest::from_hex(field("digest")?)
            .ok_or_else(|| bad(format!("host {}: bad digest", host.name)))?;
        let file_digest = Digest::from_hex(field("file_digest")?)
            .ok_or_else(|| bad(format!("host {}: bad file_digest", host.name)))?;
        let file_path = out_dir.join(file);
        let bytes = std::fs::read(&file_path).map_err(io(&file_path))?;
        let actual = Digest::of(&bytes);
        if actual != file_digest {
            return Err(bad(format!(
                "{}: the file's digest {actual} is not the {file_digest} the signed manifest records for host {} (its runner or its payload was changed or swapped)",
                file_path.display(),
                host.name
            )));
        }
        let payload = rustle_runner::locate::find_payload(&bytes)
            .map_err(|e| bad(format!("{}: {e}", file_path.display())))?;
        let checked = rustle_runner::payload::parse(payload).and_then(|(h, _)| {
            rustle_runner::payload::verify(
                payload,
                &h,
                Some(&digest),
                std::slice::from_ref(trusted),
            )
        });
        if let Err(e) = checked {
            return Err(bad(format!("{}: {e}", file_path.display())));
        }
        let plan = rustle_runner::payload::parse(payload)
            .and_then(|(_, body)| rustle_runner::payload::decode_body(body))
            .ok();
        let channel = plan.as_ref().is_some_and(needs_channel);
        let fleet = plan
            .iter()
            .flat_map(|p| p.plays.iter().filter_map(|p| p.fleet))
            .collect();
        jobs.push(Job {
            host: host.clone(),
            triple,
            sealed: Vec::new(),
            digest,
            tasks: 0,
            needs_become: entry
                .get("needs_become")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            prepacked: Some(bytes),
            ssh_fallback: None,
            channel,
            fleet,
        });
    }
    Ok((id, jobs))
}

/// How a host's run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostStatus {
    /// Every task succeeded.
    Ok,
    /// A task failed.
    Failed,
    /// The runner could not be started or refused its payload.
    Unreachable,
    /// Not attempted, or staged but not switched: the strategy stopped before this host.
    NotRun,
}

/// One host's result.
#[derive(Debug, Clone)]
pub struct HostResult {
    /// The host.
    pub host: String,
    /// The outcome.
    pub status: HostStatus,
    /// Counts.
    pub recap: Recap,
    /// Every task event.
    pub tasks: Vec<Event>,
    /// Why it failed, when the runner did not say.
    pub error: Option<String>,
    /// The runner's exit code, once it ended with one (`None`: not run yet, or killed
    /// by a signal).
    pub exit_code: Option<i32>,
    /// Milliseconds spent running.
    pub run_ms: f64,
    /// Where the host keeps this release.
    pub release_dir: PathBuf,
    /// The host sent more than the deployer keeps ([`MAX_TASK_EVENTS`]); `error` says so.
    pub overflowed: bool,
    /// Bytes of task results held in `tasks` (as JSON), bounded by [`MAX_KEPT_BYTES`].
    pub kept_bytes: u64,
    /// The host's run ended with an error with which Ansible ends a whole run
    /// ([`Event::Error`], also in `error`): as Ansible prints no recap then, the
    /// recap leaves the host out.
    pub aborted: bool,
    /// The counts at the end of each playbook of a run of several
    /// ([`Event::PlaybookEnd`]), in order: Ansible prints a recap after each.
    pub playbook_recaps: Vec<(usize, Recap)>,
}

impl HostResult {
    /// A result for a host that has not answered yet.
    pub fn new(host: &str, release_dir: PathBuf) -> HostResult {
        HostResult {
            host: host.to_string(),
            status: HostStatus::Unreachable,
            recap: Recap::default(),
            tasks: Vec::new(),
            error: None,
            exit_code: None,
            run_ms: 0.0,
            release_dir,
            overflowed: false,
            kept_bytes: 0,
            aborted: false,
            playbook_recaps: Vec::new(),
        }
    }

    /// Takes what a host's event says of its counts: the run's last ones, or those
    /// at the end of a playbook.
    pub fn take_counts(&mut self, ev: &Event) {
        match ev {
            Event::Recap { recap, .. } => self.recap = *recap,
            Event::PlaybookEnd {
                playbook, recap, ..
            } => self.playbook_recaps.push((*playbook, *recap)),
            _ => {}
        }
    }

    /// Keeps a task event, `size` bytes as JSON. Past [`MAX_KEPT_BYTES`] of results for
    /// this host, its large result fields are replaced by a note saying so ([`trimmed`]):
    /// the deployer's memory is bounded, the run is not disturbed, and the task's name,
    /// status and small fields (rc, changed, msg) stay in the report.
    pub fn keep_task(&mut self, ev: Event, size: u64) {
        if self.tasks.len() >= MAX_TASK_EVENTS {
            over_limit(
                self,
                &format!(
                    "the host sent more than {MAX_TASK_EVENTS} task events (the limit per host); later ones were dropped"
                ),
            );
            return;
        }
        let ev = if self.kept_bytes.saturating_add(size) > MAX_KEPT_BYTES {
            trimmed(
                ev,
                &format!(
                    "the deployer keeps at most {} MiB of task results per host, and this host's reached it",
                    MAX_KEPT_BYTES >> 20
                ),
            )
        } else {
            ev
        };
        let size = match &ev {
            Event::Task { result, .. } => json_size(result),
            _ => 0,
        };
        self.kept_bytes = self.kept_bytes.saturating_add(size);
        self.tasks.push(ev);
    }

    /// A host that could not be reached at all.
    pub fn unreachable(host: &str, error: String) -> HostResult {
        let mut r = HostResult::new(host, PathBuf::new());
        r.recap.unreachable = 1;
        r.error = Some(error);
        r
    }
}

/// The state root on this machine (the runner's own default, so both sides agree).
pub fn local_root() -> PathBuf {
    rustle_runner::install::default_root()
}

/// The most task events kept for one host: far more than any plan has tasks (a loop's
/// items travel inside their task's event), and a bound on what a host that floods the
/// deployer with events can make it hold; [`MAX_KEPT_BYTES`] bounds their size.
pub const MAX_TASK_EVENTS: usize = 100_000;
/// The most bytes of task results (as JSON) kept for one host's report. A result that
/// would go past it is kept without its large fields ([`trimmed`]); the host's run and
/// status are not affected.
pub const MAX_KEPT_BYTES: u64 = 64 << 20;
/// Result fields kept in a [`trimmed`] result: those whose JSON is at most this long.
const SMALL_FIELD_BYTES: u64 = 4 << 10;
/// The most stray (non-event) output kept for one host's error message.
pub const MAX_STRAY_BYTES: usize = 64 << 10;

/// The length of `v` as compact JSON, counted without making the text.
pub fn json_size<T: serde::Serialize + ?Sized>(v: &T) -> u64 {
    struct Count(u64);
    impl std::io::Write for Count {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0 = self.0.saturating_add(b.len() as u64);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut c = Count(0);
    let _ = serde_json::to_writer(&mut c, v);
    c.0
}

/// A task event with its result cut down to its small fields (rc, changed, failed,
/// msg, ...), and `rustle_truncated` saying which fields were dropped and `why`.
pub fn trimmed(ev: Event, why: &str) -> Event {
    let Event::Task {
        v,
        play,
        name,
        module,
        status,
        ignored,
        handler,
        role,
        duration_ms,
        result,
    } = ev
    else {
        return ev;
    };
    let mut kept = serde_json::Map::new();
    let mut dropped = Vec::new();
    if let Value::Object(fields) = result {
        for (k, val) in fields {
            if json_size(&val) <= SMALL_FIELD_BYTES {
                kept.insert(k, val);
            } else {
                dropped.push(k);
            }
        }
    }
    let note = if dropped.is_empty() {
        format!("the result was not kept: {why}")
    } else {
        format!("{} not kept: {why}", dropped.join(", "))
    };
    kept.insert("rustle_truncated".into(), Value::String(note));
    Event::Task {
        v,
        play,
        name,
        module,
        status,
        ignored,
        handler,
        role,
        duration_ms,
        result: Value::Object(kept),
    }
}

/// The event a line cut by the SSH layer ([`crate::ssh::Line::cut`], `len` bytes in
/// all) began, from its head: a runner writes a task event's name, module and status
/// before its result, and the result's fields in name order, so those and the result's
/// fields before the first long one (`changed`, `cmd`, `rc`, `stderr`, ... before
/// `stdout`) survive; a note says what was not kept. In JSON text a quote inside a
/// string is always escaped, so the first `,"result":` is the field itself.
fn cut_event(head: &str, len: u64) -> Option<Event> {
    let at = head.find(",\"result\":")?;
    let ev: Event = serde_json::from_str(&format!("{},\"result\":{{}}}}", head.get(..at)?)).ok()?;
    let Event::Task {
        v,
        play,
        name,
        module,
        status,
        ignored,
        handler,
        role,
        duration_ms,
        ..
    } = ev
    else {
        return None;
    };
    let (fields, unfinished) = object_prefix(head.get(at + ",\"result\":".len()..)?);
    let limit = format!(
        "the task's event was {len} bytes long, more than the {} MiB the deployer takes for one line",
        crate::ssh::MAX_LINE_BYTES >> 20
    );
    let mut result = fields;
    result.insert(
        "rustle_truncated".into(),
        Value::String(match unfinished {
            Some(k) => format!("{k} and the fields after it were not kept: {limit}"),
            None => format!("the result was not kept whole: {limit}"),
        }),
    );
    Some(Event::Task {
        v,
        play,
        name,
        module,
        status,
        ignored,
        handler,
        role,
        duration_ms,
        result: Value::Object(result),
    })
}

/// The complete fields at the start of the JSON object `text` begins (which may be
/// cut anywhere), and the name of the field it was cut in, if one had begun.
fn object_prefix(text: &str) -> (serde_json::Map<String, Value>, Option<String>) {
    let mut fields = serde_json::Map::new();
    // One JSON value at the start of `s`, and the rest after it.
    fn value(s: &str) -> Option<(Value, &str)> {
        let mut it = serde_json::Deserializer::from_str(s).into_iter::<Value>();
        let v = it.next()?.ok()?;
        Some((v, s.get(it.byte_offset()..)?))
    }
    let Some(mut rest) = text.trim_start().strip_prefix('{') else {
        return (fields, None);
    };
    loop {
        let Some((Value::String(key), after)) = value(rest) else {
            return (fields, None);
        };
        let Some(after) = after.trim_start().strip_prefix(':') else {
            return (fields, Some(key));
        };
        let Some((val, after)) = value(after) else {
            return (fields, Some(key));
        };
        fields.insert(key, val);
        match after.trim_start().strip_prefix(',') {
            Some(next) => rest = next,
            None => return (fields, None),
        }
    }
}

/// Takes one line of a runner's stdout: an event, or stray output kept for the error.
/// What is kept is bounded ([`MAX_TASK_EVENTS`], [`MAX_KEPT_BYTES`],
/// [`MAX_STRAY_BYTES`]); a task event too long to take whole (a line the SSH layer cut)
/// is kept and shown with its name and status, and a note for its result.
pub fn handle_line(
    host: &str,
    line: crate::ssh::Line<'_>,
    result: &mut HostResult,
    on_event: &mut dyn FnMut(&str, &Event),
) {
    let parsed = match line.cut {
        None => serde_json::from_str::<Event>(line.text).ok(),
        Some(len) => cut_event(line.text, len),
    };
    match parsed {
        // Requests are the channel's (`channel::HostChannel::intercept`); one reaching
        // here came from a runner that has none, and is refused.
        Some(Event::Request(r)) => {
            result.error.get_or_insert_with(String::new).push_str(&format!(
                "the host's runner sent request {} ({:?}) but was started without the controller channel; refused\n",
                r.id, r.kind
            ));
            result.overflowed = true;
        }
        Some(ev) => {
            result.take_counts(&ev);
            if let Event::Error { msg, .. } = &ev {
                result.aborted = true;
                let e = result.error.get_or_insert_with(String::new);
                e.push_str(msg);
                e.push('\n');
            }
            if !matches!(ev, Event::Task { .. }) {
                on_event(host, &ev);
            } else if result.tasks.len() < MAX_TASK_EVENTS {
                on_event(host, &ev);
                result.keep_task(ev, line.text.len() as u64);
            } else {
                // Past the count limit: neither shown nor kept, and the host is failed.
                result.keep_task(ev, 0);
            }
        }
        // A line that is not an event (a runner from another version, or stray output)
        // is kept for the error message rather than dropped silently.
        None => {
            let e = result.error.get_or_insert_with(String::new);
            if e.len() >= MAX_STRAY_BYTES {
                return;
            }
            let text = line.text;
            let room = MAX_STRAY_BYTES - e.len();
            let mut cut = text.len().min(room);
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            e.push_str(text.get(..cut).unwrap_or_default());
            if cut < text.len() || line.cut.is_some() || e.len() >= MAX_STRAY_BYTES {
                e.push_str(" [more output cut]");
            }
            e.push('\n');
        }
    }
}

/// Marks a host failed because it sent more than the deployer keeps, once.
fn over_limit(result: &mut HostResult, why: &str) {
    if result.overflowed {
        return;
    }
    result.overflowed = true;
    let e = result.error.get_or_insert_with(String::new);
    e.push_str(why);
    e.push('\n');
}

/// Sets the outcome from the runner's exit code and stderr.
pub fn finish(result: &mut HostResult, code: Option<i32>, stderr: &str) {
    // A host that flooded the deployer did not give an account of itself to trust,
    // whatever its exit code says.
    if result.overflowed {
        result.status = HostStatus::Failed;
        return;
    }
    result.exit_code = code;
    match code {
        Some(rustle_runner::exit::OK) => result.status = HostStatus::Ok,
        // A host a delegated task could not reach stops unreachable, not failed, as
        // Ansible takes it out of the run.
        Some(rustle_runner::exit::TASKS_FAILED)
            if result.recap.unreachable > 0 && result.recap.failed == 0 =>
        {
            result.status = HostStatus::Unreachable;
        }
        Some(rustle_runner::exit::TASKS_FAILED) => result.status = HostStatus::Failed,
        code => {
            result.status = HostStatus::Unreachable;
            result.recap.unreachable = 1;
            let why = stderr.trim().lines().last().unwrap_or("").to_string();
            result.error = Some(match code {
                Some(c) => format!("runner exited with code {c}: {why}"),
                None => format!("runner was killed by a signal: {why}"),
            });
        }
    }
}

/// `--list-deployments` output for one host, from the List script's lines (the
/// state.json text, then `current=<link>`).
pub fn deployments_text(host: &str, lines: &[String]) -> String {
    let current = lines
        .iter()
        .find_map(|l| l.strip_prefix("current="))
        .map(|c| c.rsplit('/').next().unwrap_or(c).to_string())
        .unwrap_or_default();
    let json: String = lines
        .iter()
        .filter(|l| !l.starts_with("current="))
        .cloned()
        .collect::<Vec<_>>()
        .join("\n");
    let state: Value = serde_json::from_str(&json).unwrap_or(Value::Null);
    let list = state
        .get("deployments")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut out = format!("{host}:\n");
    if list.is_empty() {
        out.push_str("  (no deployments)\n");
    }
    for d in list {
        let field = |k: &str| match d.get(k) {
            Some(Value::String(s)) => s.clone(),
            Some(v) => v.to_string(),
            None => String::new(),
        };
        let id = field("id");
        // A host's record may say any number: formatted as is, never added to a
        // SystemTime (which panics past its range).
        let at = d
            .get("at")
            .and_then(Value::as_u64)
            .map(|s| rustle_runner::facts::utc_seconds(s, ' '))
            .unwrap_or_default();
        let mark = if id == current { "*" } else { " " };
        out.push_str(&format!(
            "{mark} {}  version {}  {at} UTC  {}  digest {}\n",
            printable(&id),
            printable(&field("version")),
            printable(&field("status")),
            printable(field("digest").get(..16).unwrap_or_default())
        ));
    }
    out
}

/// The JSON report of a whole deployment.
pub fn report_json(id: &str, results: &[HostResult]) -> Value {
    let hosts: serde_json::Map<String, Value> = results
        .iter()
        .map(|r| {
            (
                r.host.clone(),
                json!({
                    "status": match r.status {
                        HostStatus::Ok => "ok",
                        HostStatus::Failed => "failed",
                        HostStatus::Unreachable => "unreachable",
                        HostStatus::NotRun => "not deployed",
                    },
                    "recap": r.recap,
                    "error": r.error,
                    "run_ms": r.run_ms,
                    "release_dir": r.release_dir,
                    "tasks": r.tasks,
                }),
            )
        })
        .collect();
    json!({"v": 1, "deployment": id, "hosts": hosts})
}

/// The custom statistics of a run: what its `set_stats` tasks set or added up, per host
/// (`per_host: true`) and for the whole run, as Ansible's `AggregateStats.custom` holds them.
#[derive(Debug, Default, PartialEq)]
pub struct CustomStats {
    /// By host name.
    pub hosts: BTreeMap<String, serde_json::Map<String, Value>>,
    /// For the run (`_run` in Ansible).
    pub run: serde_json::Map<String, Value>,
}

impl CustomStats {
    /// The statistics every host's `set_stats` results set, host by host in the order
    /// of `results` and task by task (an item of a loop counts as a task), as Ansible's
    /// strategy applies them when each result comes in.
    pub fn of(results: &[HostResult]) -> CustomStats {
        let mut stats = CustomStats::default();
        for r in results {
            for event in &r.tasks {
                let Event::Task { result, status, .. } = event else {
                    continue;
                };
                if matches!(status, Status::Failed | Status::Skipped) {
                    continue;
                }
                let items = result.get("results").and_then(Value::as_array);
                for item in std::iter::once(result).chain(items.into_iter().flatten()) {
                    stats.apply(&r.host, item);
                }
            }
        }
        stats
    }

    /// Takes in one result's `ansible_stats`, if it has any data.
    fn apply(&mut self, host: &str, result: &Value) {
        let Some(s) = result.get("ansible_stats") else {
            return;
        };
        let Some(data) = s.get("data").and_then(Value::as_object) else {
            return;
        };
        let per_host = s.get("per_host").and_then(Value::as_bool).unwrap_or(true);
        let aggregate = s.get("aggregate").and_then(Value::as_bool).unwrap_or(false);
        let into = if per_host {
            self.hosts.entry(host.to_string()).or_default()
        } else {
            &mut self.run
        };
        for (k, v) in data {
            match into.get_mut(k) {
                Some(old) if aggregate => add_stat(old, v),
                _ => {
                    into.insert(k.clone(), v.clone());
                }
            }
        }
    }

    /// True when no `set_stats` task set anything.
    pub fn is_empty(&self) -> bool {
        self.hosts.is_empty() && self.run.is_empty()
    }

    /// The block Ansible's default output prints after the recap when
    /// `ANSIBLE_SHOW_CUSTOM_STATS` is on: a line per host, then the run's, each value
    /// as JSON with one-space indents and the line breaks taken out.
    pub fn text(&self) -> String {
        if self.is_empty() {
            return String::new();
        }
        let one_line = |v: &serde_json::Map<String, Value>| {
            let mut buf = Vec::new();
            let fmt = serde_json::ser::PrettyFormatter::with_indent(b" ");
            let mut ser = serde_json::Serializer::with_formatter(&mut buf, fmt);
            // Serializing a map of JSON values into memory cannot fail.
            if serde::Serialize::serialize(v, &mut ser).is_err() {
                return String::new();
            }
            printable(&String::from_utf8_lossy(&buf).replace('\n', "")).into_owned()
        };
        let mut out = String::from("CUSTOM STATS:\n");
        for (host, v) in &self.hosts {
            out.push_str(&format!("\t{}: {}\n", printable(host), one_line(v)));
        }
        if !self.run.is_empty() {
            out.push_str(&format!("\tRUN: {}\n", one_line(&self.run)));
        }
        out
    }

    /// The statistics as the report's `custom_stats`: `{"hosts": {...}, "run": {...}}`.
    pub fn to_json(&self) -> Value {
        json!({"hosts": self.hosts, "run": self.run})
    }
}

/// Adds `new` to a statistic as Ansible's `update_custom_stats` does: mappings merge
/// (recursively), numbers add, strings and lists concatenate; a value of another type
/// leaves the statistic as it was.
fn add_stat(old: &mut Value, new: &Value) {
    match (old, new) {
        (Value::Object(o), Value::Object(n)) => {
            for (k, v) in n {
                match o.get_mut(k) {
                    Some(existing @ Value::Object(_)) if v.is_object() => add_stat(existing, v),
                    _ => {
                        o.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (Value::Number(o), Value::Number(n)) => {
            let sum = match (o.as_i64(), n.as_i64()) {
                (Some(a), Some(b)) => a.checked_add(b).map(Value::from),
                _ => None,
            };
            let sum = sum.unwrap_or_else(|| {
                json!(o.as_f64().unwrap_or_default() + n.as_f64().unwrap_or_default())
            });
            *o = match sum {
                Value::Number(n) => n,
                _ => return,
            };
        }
        (Value::String(o), Value::String(n)) => o.push_str(n),
        (Value::Array(o), Value::Array(n)) => o.extend(n.iter().cloned()),
        _ => {}
    }
}

/// The exit code for a finished deployment.
pub fn exit_code(results: &[HostResult]) -> i32 {
    if results.iter().any(|r| r.status == HostStatus::Unreachable) {
        exit::UNREACHABLE
    } else if results.iter().any(|r| r.status == HostStatus::Failed) {
        exit::HOST_FAILED
    } else {
        exit::OK
    }
}

/// One line per finished task, Ansible-style: `changed: [web1] => make dir`.
pub fn task_line(host: &str, ev: &Event, verbosity: u8) -> Option<String> {
    // Names, messages and results come from the host: printed escaped, so a host (or a
    // command's output) cannot move the cursor, retitle the terminal or fake a line.
    match ev {
        Event::Play { name, .. } => Some(format!("PLAY [{}] [{host}]", printable(name))),
        Event::Task {
            name,
            status,
            ignored,
            result,
            module,
            ..
        } => {
            // What Ansible's default callback shows: a debug task's message (or
            // variable) and a result its action marks `_ansible_verbose_always` (an
            // assert's) always, every result from -v on; on one line, as Python's
            // json.dumps writes it.
            let debug = rustle_runner::modules::canonical(module) == "debug"
                || result.get("_ansible_verbose_always") == Some(&Value::Bool(true));
            // A loop's items first, each on its line, as Ansible prints them.
            let mut line = item_lines(host, result, module, verbosity > 0 || debug)
                .into_iter()
                .map(|l| l + "\n")
                .collect::<String>();
            line.push_str(&format!(
                "{}: [{host}] => {}",
                status.as_str(),
                printable(name)
            ));
            let msg = result.get("msg").and_then(Value::as_str);
            if matches!(status, Status::Failed | Status::Unreachable) {
                line.push_str(&format!(" | {}", printable(msg.unwrap_or(status.as_str()))));
                if *ignored {
                    line.push_str(" (ignored)");
                }
            }
            if verbosity > 0 || debug && *status != Status::Skipped {
                let shown = crate::display::clean(result, module, verbosity);
                line.push_str(" => ");
                line.push_str(&printable(&crate::display::json_text(&shown, None)));
            }
            Some(line)
        }
        // Ansible's strategy says what a meta task did at -vv (`display.vv`).
        Event::Meta { msg, .. } if verbosity >= 2 => Some(format!("META: {}", printable(msg))),
        _ => None,
    }
}

/// One line per item of a loop's result, as Ansible's default callback prints it:
/// `ok: [web1] => (item=LABEL)`, the label being the rendered `loop_control.label`, or
/// else the item as Python's `str()` shows it; when the task's results are shown
/// (`verbose`: -v, a debug task), an item that ran is followed by its result.
fn item_lines(host: &str, result: &Value, module: &str, verbose: bool) -> Vec<String> {
    let Some(items) = result.get("results").and_then(Value::as_array) else {
        return Vec::new();
    };
    items
        .iter()
        .filter_map(Value::as_object)
        .filter_map(|r| {
            let label = match r.get("_ansible_item_label") {
                Some(l) => l,
                None => r.get(r.get("ansible_loop_var")?.as_str()?)?,
            };
            let label = rustle_runner::lookups::py_str(label);
            let flag = |k: &str| r.get(k).and_then(Value::as_bool).unwrap_or(false);
            let status = if flag("failed") {
                "failed"
            } else if flag("skipped") {
                "skipping"
            } else if flag("changed") {
                "changed"
            } else {
                "ok"
            };
            let mut line = format!("{status}: [{host}] => (item={})", printable(&label));
            if verbose && matches!(status, "ok" | "changed") {
                let shown = crate::display::clean(&Value::Object(r.clone()), module, 0);
                line.push_str(" => ");
                line.push_str(&printable(&crate::display::json_text(&shown, None)));
            }
            Some(line)
        })
        .collect()
}

/// The banner Ansible's default callback prints before a task's results: `TASK [role :
/// name]` (`RUNNING HANDLER [...]` for a handler), stars up to 80 columns. A meta task
/// has one too, though it reports no result.
pub fn task_header(ev: &Event) -> Option<String> {
    let (Event::Task {
        name,
        handler,
        role,
        ..
    }
    | Event::Meta {
        name,
        handler,
        role,
        ..
    }) = ev
    else {
        return None;
    };
    let kind = if *handler { "RUNNING HANDLER" } else { "TASK" };
    let shown = match role {
        Some(role) => format!("{role} : {name}"),
        None => name.clone(),
    };
    let text = format!("{kind} [{}]", printable(&shown));
    let stars = 80usize.saturating_sub(text.chars().count() + 1).max(3);
    Some(format!("{text} {}", "*".repeat(stars)))
}

/// The deployer's output for the events of every host: [`task_line`]s, and before a
/// task's first line (or a line of another task than the last one printed, as hosts
/// running at once interleave) the task's [`task_header`].
pub struct Printer {
    verbosity: u8,
    last_header: std::sync::Mutex<Option<String>>,
}

impl Printer {
    /// Task results shown as at `verbosity` (`-v` count).
    pub fn new(verbosity: u8) -> Self {
        Printer {
            verbosity,
            last_header: std::sync::Mutex::new(None),
        }
    }

    /// Hands `out` the lines `ev` of `host` prints, while no other host's are printed.
    pub fn print(&self, host: &str, ev: &Event, out: &mut dyn FnMut(String)) {
        let line = task_line(host, ev, self.verbosity);
        // A meta task shows its banner even when it has no line to print.
        if line.is_none() && !matches!(ev, Event::Meta { .. }) {
            return;
        }
        let mut last = self
            .last_header
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let header = task_header(ev);
        if header.is_some() && *last != header {
            out(String::new());
            out(header.clone().unwrap_or_default());
        }
        *last = header;
        if let Some(line) = line {
            out(line);
        }
    }
}

/// What Ansible writes to stderr for an event: the warnings a finished task's module
/// gave (its result's `warnings`, and each loop item's) and the runner's own
/// ([`Event::Warning`]) as `[WARNING]: text`, and an error that ended the host's run
/// ([`Event::Error`]) as `ERROR! text`; escaped like every host string.
pub fn stderr_lines(ev: &Event) -> Vec<String> {
    let result = match ev {
        Event::Task { result, .. } => result,
        Event::Warning { msg, .. } => return vec![format!("[WARNING]: {}", printable(msg))],
        // An error runs over several lines (its text, then where), each escaped.
        Event::Error { msg, .. } => {
            return msg
                .lines()
                .enumerate()
                .map(|(i, l)| match i {
                    0 => format!("ERROR! {}", printable(l)),
                    _ => printable(l).into_owned(),
                })
                .collect();
        }
        _ => return Vec::new(),
    };
    let items = result
        .get("results")
        .and_then(Value::as_array)
        .into_iter()
        .flatten();
    std::iter::once(result.get("warnings"))
        .chain(items.map(|r| r.get("warnings")))
        .flatten()
        .filter_map(Value::as_array)
        .flatten()
        .filter_map(Value::as_str)
        .map(|w| format!("[WARNING]: {}", printable(w)))
        .collect()
}

/// `text` fit for a terminal: control characters (C0, DEL, C1: escape sequences, carriage
/// returns, line feeds) and invisible formatting characters (bidirectional overrides,
/// zero-width characters) are written as escapes (`\x1b`, `\n`, `\u{202e}`), the rest as
/// it is. Everything a host sends goes through this before it is printed.
pub fn printable(text: &str) -> std::borrow::Cow<'_, str> {
    fn hidden(c: char) -> bool {
        c.is_control()
            || matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2060}'..='\u{2069}' | '\u{feff}')
    }
    if !text.chars().any(hidden) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if hidden(c) && u32::from(c) < 0x100 => {
                out.push_str(&format!("\\x{:02x}", u32::from(c)));
            }
            c if hidden(c) => out.push_str(&format!("\\u{{{:x}}}", u32::from(c))),
            c => out.push(c),
        }
    }
    std::borrow::Cow::Owned(out)
}

/// The recap block: every host but those whose run an error ended, as Ansible prints
/// no recap after such an error (nothing when no other host is left). A run of several
/// playbooks has one block before it for the end of each playbook but the last, with
/// the counts from the start of the run to there, as `ansible-playbook a.yml b.yml`
/// prints them (a host shows its counts at the end of its last playbook up to there;
/// one that had not started yet is left out).
pub fn recap_text(results: &[HostResult]) -> String {
    if results.iter().all(|r| r.aborted) && !results.is_empty() {
        return String::new();
    }
    let row = |host: &str, c: &Recap| {
        format!(
            "{:<20} : ok={} changed={} unreachable={} failed={} skipped={} rescued={} ignored={}\n",
            host, c.ok, c.changed, c.unreachable, c.failed, c.skipped, c.rescued, c.ignored
        )
    };
    let ends: std::collections::BTreeSet<usize> = results
        .iter()
        .flat_map(|r| r.playbook_recaps.iter().map(|(p, _)| *p))
        .collect();
    let mut out = String::new();
    // The last playbook's counts are the final ones, below.
    let last = ends.last();
    for end in ends.iter().filter(|e| Some(*e) != last) {
        out.push_str("PLAY RECAP\n");
        for r in results.iter().filter(|r| !r.aborted) {
            if let Some((_, c)) = r.playbook_recaps.iter().rev().find(|(p, _)| p <= end) {
                out.push_str(&row(&r.host, c));
            }
        }
    }
    out.push_str("PLAY RECAP\n");
    for r in results.iter().filter(|r| !r.aborted) {
        out.push_str(&row(&r.host, &r.recap));
        if let Some(e) = &r.error {
            for line in e.trim().lines() {
                out.push_str(&format!("{:<20}   {}\n", "", printable(line)));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task_event(name: &str, status: &str, msg: &str) -> String {
        json!({"type": "task", "v": 1, "play": "p", "name": name, "module": "debug",
               "status": status, "duration_ms": 1.0, "result": {"msg": msg}})
        .to_string()
    }

    /// A host whose set_stats tasks returned `stats`, one task each.
    fn with_stats(host: &str, stats: &[Value]) -> HostResult {
        let mut r = HostResult::new(host, PathBuf::new());
        for s in stats {
            let e = json!({"type": "task", "v": 1, "play": "p", "name": "s",
                           "module": "set_stats", "status": "ok", "duration_ms": 1.0,
                           "result": {"changed": false, "ansible_stats": s}});
            r.tasks.push(serde_json::from_value(e).unwrap());
        }
        r
    }

    #[test]
    fn custom_stats_add_up_as_ansibles_do_and_print_on_one_line() {
        let run = |data: Value| json!({"data": data, "per_host": false, "aggregate": true});
        let a = with_stats(
            "a",
            &[
                run(json!({"my_int": 10, "s": "x", "l": [1], "d": {"k": {"a": 1}}})),
                run(json!({"my_int": "not a number", "s": "y"})),
                json!({"data": {"mine": 1}, "per_host": true, "aggregate": false}),
                json!({"data": {"mine": 2}, "per_host": true, "aggregate": false}),
            ],
        );
        let b = with_stats(
            "b",
            &[
                run(json!({"my_int": 15, "l": [2], "d": {"k": {"b": 2}}})),
                json!({"data": {"set": 1}, "per_host": false, "aggregate": false}),
            ],
        );
        let stats = CustomStats::of(&[a, b]);
        assert_eq!(
            Value::Object(stats.run.clone()),
            json!({"my_int": 25, "s": "xy", "l": [1, 2], "d": {"k": {"a": 1, "b": 2}}, "set": 1})
        );
        assert_eq!(Value::Object(stats.hosts["a"].clone()), json!({"mine": 2}));
        assert!(!stats.hosts.contains_key("b"));
        let text = stats.text();
        assert!(
            text.starts_with("CUSTOM STATS:\n\ta: { \"mine\": 2}\n\tRUN: {"),
            "{text}"
        );
        assert!(text.contains("\"my_int\": 25,"), "{text}");
        assert_eq!(CustomStats::of(&[]).text(), "");
    }

    fn whole(text: &str) -> crate::ssh::Line<'_> {
        crate::ssh::Line { text, cut: None }
    }

    #[test]
    fn a_task_event_too_long_for_a_line_is_kept_by_name_and_status() {
        // A runner's event for a task that registered ~20 MiB: the SSH layer hands on
        // its head only.
        let big = "x".repeat(20 << 20);
        // Written as the runner writes it: the runner's own event type.
        let line = serde_json::to_string(&Event::Task {
            v: 1,
            play: "p".into(),
            name: "big \",\"result\": out".into(),
            module: "command".into(),
            status: Status::Changed,
            ignored: false,
            handler: false,
            role: None,
            duration_ms: 2.0,
            result: json!({"rc": 0, "changed": true, "stdout": big}),
        })
        .unwrap();
        let head = &line[..crate::ssh::CUT_LINE_HEAD];
        let mut r = HostResult::new("h", PathBuf::new());
        let mut shown = Vec::new();
        handle_line(
            "h",
            crate::ssh::Line {
                text: head,
                cut: Some(line.len() as u64),
            },
            &mut r,
            &mut |_, ev| shown.push(ev.clone()),
        );
        assert_eq!(shown.len(), 1, "{:?}", r.error);
        let Event::Task {
            name,
            status,
            result,
            ..
        } = &r.tasks[0]
        else {
            panic!("{:?}", r.tasks);
        };
        assert_eq!(name, "big \",\"result\": out");
        assert_eq!(*status, Status::Changed);
        let note = result["rustle_truncated"].as_str().unwrap();
        assert!(note.contains(&line.len().to_string()), "{note}");
        assert!(note.starts_with("stdout and the fields after it"), "{note}");
        // The fields before the long one are whole.
        assert_eq!(result["rc"], 0);
        assert_eq!(result["changed"], true);
        assert!(r.error.is_none() && !r.overflowed);
        finish(&mut r, Some(rustle_runner::exit::OK), "");
        assert_eq!(r.status, HostStatus::Ok);

        // A cut line that is no task event is stray output, said to be cut.
        let mut r = HostResult::new("h", PathBuf::new());
        handle_line(
            "h",
            crate::ssh::Line {
                text: "not an event",
                cut: Some(1 << 30),
            },
            &mut r,
            &mut |_, _| {},
        );
        assert!(r.error.unwrap().contains("[more output cut]"));
    }

    #[test]
    fn task_results_past_the_kept_bytes_lose_their_large_fields_not_the_run() {
        let mut r = HostResult::new("h", PathBuf::new());
        let chunk = "y".repeat(8 << 20);
        let n = (MAX_KEPT_BYTES / (8 << 20)) as usize + 3;
        for i in 0..n {
            let line = json!({"type": "task", "v": 1, "play": "p", "name": format!("t{i}"),
                              "module": "command", "status": "ok", "duration_ms": 1.0,
                              "result": {"rc": 3, "stdout": chunk}})
            .to_string();
            handle_line("h", whole(&line), &mut r, &mut |_, _| {});
        }
        assert_eq!(r.tasks.len(), n);
        assert!(r.kept_bytes <= MAX_KEPT_BYTES, "{}", r.kept_bytes);
        let Event::Task { result, .. } = &r.tasks[n - 1] else {
            panic!()
        };
        assert_eq!(result["rc"], 3, "small fields stay");
        assert!(result.get("stdout").is_none());
        assert!(
            result["rustle_truncated"]
                .as_str()
                .unwrap()
                .starts_with("stdout not kept"),
            "{result}"
        );
        let Event::Task { result, .. } = &r.tasks[0] else {
            panic!()
        };
        assert_eq!(result["stdout"].as_str().unwrap().len(), 8 << 20);
        finish(&mut r, Some(rustle_runner::exit::OK), "");
        assert_eq!(r.status, HostStatus::Ok);
    }

    #[test]
    fn what_a_host_sends_is_kept_within_bounds() {
        let mut r = HostResult::new("h", PathBuf::new());
        let mut printed = 0usize;
        let line = task_event("t", "ok", "m");
        for _ in 0..MAX_TASK_EVENTS + 10 {
            handle_line("h", whole(&line), &mut r, &mut |_, _| printed += 1);
        }
        assert_eq!(r.tasks.len(), MAX_TASK_EVENTS);
        assert_eq!(printed, MAX_TASK_EVENTS, "events past the limit were shown");
        let error = r.error.clone().unwrap();
        assert!(
            error.contains(&format!("more than {MAX_TASK_EVENTS} task events")),
            "{error}"
        );
        assert_eq!(error.matches("task events").count(), 1, "{error}");
        // A host that flooded the deployer is not reported as fine, whatever it exits with.
        finish(&mut r, Some(rustle_runner::exit::OK), "");
        assert_eq!(r.status, HostStatus::Failed);
        assert_eq!(exit_code(&[r]), exit::HOST_FAILED);

        // Stray output is kept up to a bound, and says it was cut.
        let mut r = HostResult::new("h", PathBuf::new());
        let junk = "é".repeat(10_000);
        for _ in 0..100 {
            handle_line("h", whole(&junk), &mut r, &mut |_, _| {});
        }
        let error = r.error.unwrap();
        assert!(error.len() <= MAX_STRAY_BYTES + 64, "{}", error.len());
        assert!(error.contains("[more output cut]"));
    }

    #[test]
    fn module_warnings_are_printed_as_ansible_prints_them() {
        let ev: Event = serde_json::from_value(json!({"type": "task", "v": 1, "play": "p",
            "name": "t", "module": "lineinfile", "status": "changed", "duration_ms": 1.0,
            "result": {"warnings": ["empty \u{1b}[2J regexp"],
                       "results": [{"warnings": ["item one"]}, {"changed": true}]}}))
        .unwrap();
        assert_eq!(
            stderr_lines(&ev),
            ["[WARNING]: empty \\x1b[2J regexp", "[WARNING]: item one"]
        );
        let quiet: Event = serde_json::from_str(&task_event("t", "ok", "m")).unwrap();
        assert!(stderr_lines(&quiet).is_empty());
    }

    /// loop_control target (runme.sh greps `(item=looped_var foo_label)`): each item
    /// gets Ansible's line before the task's, with the rendered label, else the item
    /// as Python's str() shows it; the item's own status; host text escaped.
    #[test]
    fn a_loops_items_are_printed_one_line_each_with_their_label() {
        let ev: Event = serde_json::from_value(json!({
            "type": "task", "v": 1, "play": "p", "name": "loop", "module": "command",
            "status": "changed", "duration_ms": 1.0, "result": {"changed": true, "results": [
                {"changed": true, "i": {"name": "foo"}, "ansible_loop_var": "i",
                 "_ansible_item_label": "looped_var foo_label"},
                {"changed": false, "i": {"name": "bar"}, "ansible_loop_var": "i"},
                {"skipped": true, "i": "x\u{1b}[2J", "ansible_loop_var": "i"},
                {"failed": true, "changed": true, "i": 3, "ansible_loop_var": "i"},
            ]}
        }))
        .unwrap();
        assert_eq!(
            task_line("h", &ev, 0).unwrap(),
            "changed: [h] => (item=looped_var foo_label)\n\
             ok: [h] => (item={'name': 'bar'})\n\
             skipping: [h] => (item=x\\x1b[2J)\n\
             failed: [h] => (item=3)\n\
             changed: [h] => loop"
        );
        // A debug task's items show their results (debug target's runme greps them).
        let ev: Event = serde_json::from_value(json!({
            "type": "task", "v": 1, "play": "p", "name": "show", "module": "debug",
            "status": "ok", "duration_ms": 1.0, "result": {"msg": "All items completed", "results": [
                {"item": 1, "ansible_loop_var": "item", "changed": false},
                {"skipped": true, "item": 2, "ansible_loop_var": "item"},
            ]}
        }))
        .unwrap();
        let text = task_line("h", &ev, 0).unwrap();
        assert!(
            text.starts_with("ok: [h] => (item=1) => {\"ansible_loop_var\": \"item\", \"item\": 1")
                && text.contains("\nskipping: [h] => (item=2)\n"),
            "{text}"
        );
    }

    #[test]
    fn host_strings_are_escaped_before_they_are_printed() {
        assert_eq!(printable("plain text, ünïcode"), "plain text, ünïcode");
        assert_eq!(
            printable("a\u{1b}[2Jb\r\nc\td\u{7}\u{7f}\u{9b}"),
            "a\\x1b[2Jb\\r\\nc\\td\\x07\\x7f\\x9b"
        );
        assert_eq!(printable("abc\u{202e}fed"), "abc\\u{202e}fed");
        let ev: Event = serde_json::from_str(&task_event(
            "evil \u{1b}]0;owned\u{7}",
            "failed",
            "boom\r\nok: [web9] => fake",
        ))
        .unwrap();
        let line = task_line("h", &ev, 0).unwrap();
        assert_eq!(
            line,
            "failed: [h] => evil \\x1b]0;owned\\x07 | boom\\r\\nok: [web9] => fake \
             => {\"msg\": \"boom\\r\\nok: [web9] => fake\"}"
        );
        let mut r = HostResult::new("h", PathBuf::new());
        r.error = Some("first\u{1b}[31m\nsecond".into());
        let recap = recap_text(&[r]);
        assert!(!recap.contains('\u{1b}'), "{recap}");
        assert!(
            recap.contains("first\\x1b[31m\n") && recap.contains("   second\n"),
            "{recap}"
        );
    }

    #[test]
    fn files_are_written_through_a_new_file_never_through_what_was_there() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "precious").unwrap();
        std::fs::set_permissions(&victim, std::fs::Permissions::from_mode(0o644)).unwrap();
        // Someone made the destination a symlink to a file they want overwritten.
        let dest = dir.path().join("plan.json");
        std::os::unix::fs::symlink(&victim, &dest).unwrap();
        write_atomic(&dest, b"secret plan", 0o600).unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
        let m = std::fs::symlink_metadata(&dest).unwrap();
        assert!(m.is_file());
        assert_eq!(m.permissions().mode() & 0o7777, 0o600);
        assert_eq!(std::fs::read_to_string(&dest).unwrap(), "secret plan");
        // No temporary file is left behind.
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
    }

    /// A host's state.json is the host's to write: a record whose time was past what
    /// `SystemTime` holds panicked the deployer listing it.
    #[test]
    fn a_recorded_time_out_of_range_is_listed_without_a_panic() {
        let lines = vec![
            format!(
                r#"{{"v": 1, "deployments": [{{"id": "a", "at": {}, "status": "ok"}}, {{"id": "b", "at": 0, "status": "ok"}}]}}"#,
                u64::MAX
            ),
            "current=releases/b".to_string(),
        ];
        let text = deployments_text("h", &lines);
        assert!(text.contains(" 07:00:15 UTC"), "{text}");
        assert!(text.contains("1970-01-01 00:00:00 UTC"), "{text}");
    }
}
