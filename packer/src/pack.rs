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
use rustle_runner::plan::{DeployPlan, HostFile, HostPlan, Play, Task, Vars};
use std::collections::BTreeMap;

/// zstd level for payloads: plans are small and compress well at a fast level.
const ZSTD_LEVEL: i32 = 3;

/// Why a payload could not be made. Nothing has been sent anywhere when this happens.
#[derive(Debug, thiserror::Error)]
pub enum PackError {
    /// A task uses a module the runner does not have.
    #[error(
        "play '{play}', task '{task}': module '{module}' is not supported by the runner (supported: {supported})"
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
pub fn play_hosts<'i>(plan: &DeployPlan, inventory: &'i Inventory) -> Vec<Vec<&'i Host>> {
    plan.plays
        .iter()
        .map(|p| inventory.select(&p.hosts.join(":")))
        .collect()
}

/// Every host that takes part in the plan, in inventory order.
pub fn participating_hosts<'i>(plan: &DeployPlan, inventory: &'i Inventory) -> Vec<&'i Host> {
    let per_play = play_hosts(plan, inventory);
    inventory
        .hosts()
        .filter(|h| {
            per_play
                .iter()
                .any(|hosts| hosts.iter().any(|x| x.name == h.name))
        })
        .collect()
}

/// Refuses plans that use modules the runner lacks (neither built in nor among the plan's
/// own `modules`), naming play and task, before any host is touched.
pub fn check_modules(plan: &DeployPlan) -> Result<(), PackError> {
    for play in &plan.plays {
        let mut all = Vec::new();
        for t in play.tasks.iter().chain(&play.handlers) {
            t.walk(&mut all);
        }
        for t in all {
            if t.block.is_some() {
                continue;
            }
            let m = t.module_name();
            if m.is_empty() {
                return Err(PackError::NoModule {
                    play: play.name.clone(),
                    task: t.display_name(),
                });
            }
            // A plan's own Rust modules are built into its runner (crate::custom); its
            // library/ script modules travel as files.
            let library = format!("{}{m}", modules::LIBRARY_PREFIX);
            if !modules::is_supported(m)
                && !plan.modules.contains_key(m)
                && !plan.files.contains_key(&library)
            {
                let mut supported: Vec<&str> = modules::SUPPORTED.to_vec();
                supported.extend(plan.modules.keys().map(String::as_str));
                return Err(PackError::UnsupportedModule {
                    play: play.name.clone(),
                    task: t.display_name(),
                    module: m.to_string(),
                    supported: supported.join(", "),
                });
            }
        }
    }
    Ok(())
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
    vars
}

/// Cuts the plan down to what `host` runs.
pub fn host_plan(
    plan: &DeployPlan,
    plays_hosts: &[Vec<&Host>],
    files: &BTreeMap<String, HostFile>,
    host: &Host,
    settings: &PayloadSettings,
) -> Result<HostPlan, PackError> {
    let plays: Vec<Play> = plan
        .plays
        .iter()
        .zip(plays_hosts)
        .filter(|(_, hosts)| hosts.iter().any(|h| h.name == host.name))
        .map(|(p, _)| {
            let mut p = p.clone();
            strip_secrets(&mut p);
            p
        })
        .collect();
    let mut wanted = Vec::new();
    for p in &plays {
        used_files(p, &mut wanted);
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
    Ok(HostPlan {
        deployment_id: settings.deployment_id.clone(),
        host: host.name.clone(),
        created_at: settings.created_at,
        packer_version: env!("CARGO_PKG_VERSION").to_string(),
        check_mode: plan.check_mode || settings.check_mode,
        diff_mode: plan.diff_mode || settings.diff_mode,
        host_vars: host_vars(host),
        plays,
        files: host_files,
        controller_lookups: plan
            .controller_answers
            .get(&host.name)
            .cloned()
            .unwrap_or_default(),
    })
}

/// Seals host plans: encode, compress, sign. One sealer serves every host of a deploy so
/// the compressor's tables are set up once, not per host (that set-up costs more than
/// compressing a typical plan).
pub struct Sealer<'k> {
    key: &'k SigningKey,
    compressor: zstd::bulk::Compressor<'static>,
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
        Ok(Sealer { key, compressor })
    }

    /// Encodes, compresses and signs a host plan; returns the payload and its digest.
    pub fn seal(&mut self, plan: &HostPlan) -> Result<(Vec<u8>, Digest), PackError> {
        let encode_err = |reason: String| PackError::Encode {
            host: plan.host.clone(),
            reason,
        };
        let raw = payload::encode_plan(plan).map_err(|e| encode_err(e.to_string()))?;
        let compressed = self
            .compressor
            .compress(&raw)
            .map_err(|e| encode_err(e.to_string()))?;
        let sealed = payload::seal(&compressed, self.key);
        Ok((sealed, Digest::of(&compressed)))
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
