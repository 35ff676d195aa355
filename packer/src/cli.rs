//! The `rustle-deploy` command line as clap types, and what the arguments resolve to
//! (settings and options over the config file's); [`crate::commands`] carries it out.

use crate::config::{self, Settings, StrategyKind};
use crate::deploy::{self, DeployError};
use crate::remote::RemoteOptions;
use crate::target::Triple;
use clap::{Parser, Subcommand};
use std::path::PathBuf;

/// Pack each host's plan into a signed runner and run it on the host.
#[derive(Debug, Parser)]
#[command(
    name = "rustle-deploy",
    version,
    args_conflicts_with_subcommands = true,
    after_help = "EXAMPLES:
    rustle-deploy examples/hello.plan.json               # run a plan on this machine
    rustle-deploy -i hosts.ini site.yml                  # an Ansible playbook, over SSH
    rustle-deploy -i hosts.ini plan.json --dry-run       # show what each host would get
    rustle-deploy -i hosts.ini plan.json --compile-only -o out/   # one packed runner per host
    rustle-deploy -i hosts.ini plan.json --strategy rolling --batch-size 10
    rustle-deploy -i hosts.ini --rollback                # previous release, run again
    rustle-deploy -i hosts.ini --list-deployments
    rustle-deploy -i hosts.ini --cleanup                 # remove what rustle-deploy put there
    rustle-deploy plan site.yml -i hosts.ini -o plan.json   # playbook -> plan
    rustle-deploy adhoc web -i hosts.ini -m command -a uptime   # Ansible's ad-hoc command
    rustle-deploy keygen                                 # make a signing key

EXIT CODES: 0 ok, 2 a task failed on some host, 3 a host was unreachable or refused its
runner, 4 bad input (plan, inventory, key, arguments), 5 no usable runner, 1 internal error."
)]
pub struct Cli {
    #[command(subcommand)]
    pub(crate) command: Option<Cmd>,
    #[command(flatten)]
    pub(crate) deploy: DeployArgs,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Cmd {
    /// Make an ed25519 signing key pair (private key mode 0600, public key beside it).
    Keygen {
        /// Where to write the private key [default: ~/.rustle/keys/deploy.key].
        #[arg(long, short = 'o')]
        out: Option<PathBuf>,
        /// Replace an existing key.
        #[arg(long)]
        force: bool,
    },
    /// Turn an Ansible playbook into a plan in the project's format.
    Plan(PlanArgs),
    /// Run one module on the hosts a pattern selects, as Ansible's ad-hoc command
    /// (`ansible PATTERN -m MODULE -a ARGS`) does: a play of that one task, without
    /// facts; each host's result printed as Ansible prints it, and no recap.
    #[command(mut_arg("plan", |a| a.hide(true)))]
    Adhoc {
        /// The hosts (an Ansible pattern: `all`, `web:db`, `localhost`, ...).
        pattern: String,
        /// The module.
        #[arg(short = 'm', long = "module-name", default_value = "command")]
        module: String,
        /// Its arguments: `key=value ...`, a command line (command, shell, raw), or a
        /// JSON mapping.
        #[arg(short = 'a', long = "args", value_name = "ARGS", default_value = "")]
        module_args: String,
        #[command(flatten)]
        deploy: Box<DeployArgs>,
    },
}

/// `rustle-deploy plan`'s arguments.
#[derive(Debug, clap::Args)]
pub(crate) struct PlanArgs {
    /// The playbook.
    pub(crate) playbook: PathBuf,
    /// Mark the plan for check mode.
    #[arg(short = 'C', long)]
    pub(crate) check: bool,
    /// Mark the plan for diff mode.
    #[arg(short = 'D', long)]
    pub(crate) diff: bool,
    /// Inventory: checks that --limit matches a host (the plan itself stays
    /// host-independent; give the inventory again when deploying it). May be given
    /// more than once, as for a deploy.
    #[arg(short, long, value_name = "FILE")]
    pub(crate) inventory: Vec<PathBuf>,
    #[command(flatten)]
    pub(crate) input: InputArgs,
    /// Write the plan here instead of stdout.
    #[arg(short, long)]
    pub(crate) output: Option<PathBuf>,
}

/// What a playbook deploy and `plan` share: variables, host limit, vault.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct InputArgs {
    /// Extra variables (highest precedence): `key=value ...`, `@file.yml` or a JSON/YAML
    /// mapping; repeatable.
    #[arg(short = 'e', long = "extra-vars", value_name = "VARS")]
    pub(crate) extra_vars: Vec<String>,
    /// Only these hosts (an Ansible pattern: `web:db`, `all:!web2`, `web:&prod`, `web*`,
    /// `~regex`); a limit that matches no host is an error.
    #[arg(short = 'l', long, value_name = "PATTERN")]
    pub(crate) limit: Option<String>,
    /// File with the Ansible Vault password (an executable file is run for it).
    #[arg(long, value_name = "FILE")]
    pub(crate) vault_password_file: Option<PathBuf>,
    /// Run only the tasks with one of these tags (Ansible's rules: `always`, `never`,
    /// `tagged`, `untagged`, `all`; inherited from blocks, roles, imports and plays).
    /// ansible-playbook's `-t` is `--target` here.
    #[arg(long, value_delimiter = ',', value_name = "TAGS")]
    pub(crate) tags: Vec<String>,
    /// Leave out the tasks with one of these tags.
    #[arg(long, value_delimiter = ',', value_name = "TAGS")]
    pub(crate) skip_tags: Vec<String>,
    /// Run the notified handlers of a host even after it failed, in every play that
    /// does not set `force_handlers` itself [default: $ANSIBLE_FORCE_HANDLERS].
    #[arg(long)]
    pub(crate) force_handlers: bool,
}

impl InputArgs {
    /// The vault, when a password file is given.
    pub(crate) fn vault(&self) -> Result<Option<crate::vault::Vault>, DeployError> {
        self.vault_password_file
            .as_deref()
            .map(crate::vault::Vault::from_password_file)
            .transpose()
            .map_err(DeployError::from)
    }
}

/// At most one mode: each of these decides on its own what the run does, so a second
/// one would be silently ignored (`--dry-run --cleanup` would really clean up).
#[derive(Debug, clap::Args)]
#[command(group(
    clap::ArgGroup::new("mode")
        .multiple(false)
        .args(["compile_only", "deploy_only", "dry_run", "rollback", "list_deployments", "cleanup"])
))]
pub(crate) struct DeployArgs {
    /// Execution plan (the project's format or rustle-plan output) or Ansible
    /// playbooks, run one after the other as one run, as ansible-playbook runs them;
    /// `-` reads a plan from stdin.
    #[arg(value_name = "EXECUTION_PLAN")]
    pub(crate) plan: Vec<PathBuf>,
    /// Inventory (Ansible INI, YAML or JSON), a directory of them, or a comma-separated
    /// host list (`host1,host2,`); given more than once, the sources are merged, later
    /// ones' variables winning, as ansible-playbook merges them. Without one:
    /// localhost, run locally.
    #[arg(short, long, value_name = "FILE")]
    pub(crate) inventory: Vec<PathBuf>,
    /// Directory for packed runners (--compile-only, --deploy-only) [default: ./target/deploy].
    #[arg(short, long, value_name = "DIR")]
    pub(crate) output_dir: Option<PathBuf>,
    /// Config file [default: ./rustle-deploy.toml, else ~/.rustle/config.toml].
    #[arg(long, value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,
    /// Target triple for every host (default: the inventory's rustle_target or
    /// ansible_system + ansible_architecture, else the host's `uname -sm`, probed once
    /// and cached in ~/.rustle/targets.json; local hosts: this machine's).
    #[arg(short, long, value_name = "TRIPLE")]
    pub(crate) target: Option<Triple>,
    /// Write one packed runner per host and run nothing.
    #[arg(long)]
    pub(crate) compile_only: bool,
    /// Ship the runners a previous --compile-only wrote to --output-dir, as they are.
    #[arg(long)]
    pub(crate) deploy_only: bool,
    /// Show what would be packed and deployed; write nothing.
    #[arg(long)]
    pub(crate) dry_run: bool,
    /// Run every task in check mode.
    #[arg(short = 'C', long)]
    pub(crate) check: bool,
    /// Show differences for changed files.
    #[arg(short = 'D', long)]
    pub(crate) diff: bool,
    /// Suffix for packed runner file names.
    #[arg(long, value_name = "SUFFIX", default_value = "")]
    pub(crate) binary_suffix: String,
    /// Signing key [default: ~/.rustle/keys/deploy.key, made on first use].
    #[arg(long, value_name = "FILE", env = "RUSTLE_DEPLOY_KEY")]
    pub(crate) key: Option<PathBuf>,
    /// Directory of prebuilt runners (with manifest.json).
    #[arg(long, value_name = "DIR")]
    pub(crate) runner_dir: Option<PathBuf>,
    /// Where `src` files named by a rustle-plan input live [default: the plan's directory].
    #[arg(long, value_name = "DIR")]
    pub(crate) files_dir: Option<PathBuf>,
    /// Write a JSON report of every host and task.
    #[arg(long, value_name = "FILE")]
    pub(crate) report: Option<PathBuf>,
    /// How hosts are rolled through [default: parallel].
    #[arg(long, value_enum)]
    pub(crate) strategy: Option<StrategyKind>,
    /// Hosts per batch (rolling) [default: 5].
    #[arg(long, value_name = "NUM")]
    pub(crate) batch_size: Option<usize>,
    /// Failed hosts a rolling batch may have before the deploy stops [default: 0].
    #[arg(long, value_name = "NUM")]
    pub(crate) max_failures: Option<usize>,
    /// Share of hosts deployed first (canary) [default: 10].
    #[arg(long, value_name = "PERCENT")]
    pub(crate) canary_percent: Option<u32>,
    /// Have each host check the blake3 of the runner file it received before running it.
    #[arg(long)]
    pub(crate) verify: bool,
    /// On every host: make the previous release current again and run it.
    #[arg(long)]
    pub(crate) rollback: bool,
    /// On every host: list the deployments it has.
    #[arg(long)]
    pub(crate) list_deployments: bool,
    /// On every host: remove everything rustle-deploy put there.
    #[arg(long)]
    pub(crate) cleanup: bool,
    /// Releases each host keeps: after a deploy (or rollback) older ones, with their
    /// payloads, are removed; the current release always stays.
    #[arg(long, value_name = "NUM", default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..))]
    pub(crate) keep_releases: u32,
    /// On a host where another deploy, rollback or cleanup is running, fail at once
    /// instead of waiting for it (up to a minute).
    #[arg(long)]
    pub(crate) no_wait: bool,
    /// known_hosts file SSH host keys are checked against [default: ~/.ssh/known_hosts].
    #[arg(long, value_name = "FILE")]
    pub(crate) known_hosts: Option<PathBuf>,
    /// The system-wide known_hosts files, read as well and never written, as OpenSSH's
    /// GlobalKnownHostsFile (repeat for more than one) [default:
    /// /etc/ssh/ssh_known_hosts and /etc/ssh/ssh_known_hosts2].
    #[arg(long, value_name = "FILE")]
    pub(crate) global_known_hosts: Vec<PathBuf>,
    /// Trust and record the keys of hosts not yet in known_hosts (a changed key is
    /// always refused).
    #[arg(long)]
    pub(crate) accept_new_host_keys: bool,
    /// When a custom runner (a plan with Rust modules) cannot be built for a platform,
    /// run its hosts' tasks over SSH instead of stopping; the custom modules' tasks
    /// then fail, naming the module.
    #[arg(long)]
    pub(crate) fallback_ssh: bool,
    /// Per-host limit in seconds for connecting, uploading and running [default: 120,
    /// or $RUSTLE_DEPLOYMENT_TIMEOUT].
    #[arg(long, value_name = "SECONDS")]
    pub(crate) timeout: Option<u64>,
    /// Seconds to wait for an SSH connection [default: 10].
    #[arg(long, value_name = "SECONDS")]
    pub(crate) connect_timeout: Option<u64>,
    /// Hosts worked on at once, and at most this many compile jobs when building a
    /// custom runner (capped at the CPU count) [default: 64]. `-f`/`--forks` is
    /// ansible-playbook's name for it.
    #[arg(long, short = 'f', visible_alias = "forks", value_name = "NUM")]
    pub(crate) parallel: Option<usize>,
    /// Accepted for ansible-playbook's sake: rustle-deploy keeps no fact cache, so there
    /// is nothing to clear (facts are gathered on the host each run).
    #[arg(long)]
    pub(crate) flush_cache: bool,
    /// Where runners built for plans with custom Rust modules are cached [default:
    /// $RUSTLE_DEPLOY_CACHE_DIR, else deployment.cache_dir, else ~/.rustle/cache].
    #[arg(long, value_name = "DIR")]
    pub(crate) cache_dir: Option<PathBuf>,
    /// Ignore caches: build the custom runner even if the cache has it, and probe
    /// every host's platform again.
    #[arg(long)]
    pub(crate) rebuild: bool,
    /// For iterating on custom modules: keep one cargo target directory in the cache
    /// for every custom runner build and compile incrementally without whole-program
    /// LTO, so a changed module rebuilds in seconds (the runner comes out larger).
    #[arg(long)]
    pub(crate) incremental: bool,
    /// Say more (notes made while reading the plan); repeated (`-vvv`), it also sets
    /// `ansible_verbosity` for the plays, as in Ansible.
    #[arg(short, long, action = clap::ArgAction::Count)]
    pub(crate) verbose: u8,
    #[command(flatten)]
    pub(crate) input: InputArgs,
    /// The playbook of `rustle-deploy adhoc`, which then prints as Ansible's ad-hoc
    /// command does.
    #[arg(skip)]
    pub(crate) adhoc: Option<serde_norway::Value>,
}

/// The settings in force: command line over environment over config file over defaults.
pub(crate) fn settings(args: &DeployArgs) -> Result<Settings, DeployError> {
    let mut s = config::load(args.config.as_deref(), &|k| std::env::var(k).ok())?;
    if let Some(v) = &args.output_dir {
        s.output_dir = v.clone();
    }
    if let Some(v) = args.parallel {
        s.parallel = v;
    }
    if let Some(v) = &args.cache_dir {
        s.cache_dir = Some(v.clone());
    }
    if let Some(v) = args.timeout {
        s.timeout_secs = v;
    }
    if let Some(v) = args.connect_timeout {
        s.connect_timeout_secs = v;
    }
    if let Some(v) = args.batch_size {
        s.batch_size = v;
    }
    if let Some(v) = args.max_failures {
        s.max_failures = v;
    }
    if let Some(v) = args.canary_percent {
        s.canary_percent = v;
    }
    if let Some(v) = &args.known_hosts {
        s.known_hosts = Some(v.clone());
    }
    s.strategy = args.strategy.unwrap_or(s.strategy);
    s.verify |= args.verify;
    s.accept_new_host_keys |= args.accept_new_host_keys;
    s.fallback_ssh |= args.fallback_ssh;
    Ok(s)
}

/// How custom runners are built: the cache from the settings, compile jobs capped at
/// this machine's CPUs (`--parallel` also counts hosts, where 64 is a sane default).
pub(crate) fn build_options(args: &DeployArgs, s: &Settings) -> crate::custom::BuildOptions {
    let cpus = std::thread::available_parallelism().map_or(1, usize::from);
    crate::custom::BuildOptions {
        cache_dir: s
            .cache_dir
            .clone()
            .unwrap_or_else(crate::custom::BuildOptions::default_cache_dir),
        rebuild: args.rebuild,
        incremental: args.incremental,
        jobs: s.parallel.clamp(1, cpus),
        profile: crate::custom::profile(s.optimization_level, s.strip_symbols, args.incremental),
    }
}

/// [`remote_options`] with the host-state flags of the command line.
pub(crate) fn host_options(args: &DeployArgs, s: &Settings, key_line: String) -> RemoteOptions {
    let mut o = remote_options(args, s, key_line);
    o.keep_releases = args.keep_releases as usize;
    o.no_wait = args.no_wait;
    o
}

pub(crate) fn remote_options(args: &DeployArgs, s: &Settings, key_line: String) -> RemoteOptions {
    RemoteOptions {
        known_hosts: match &s.known_hosts {
            Some(k) => k.clone(),
            None => std::env::var_os("HOME")
                .map(|h| PathBuf::from(h).join(".ssh/known_hosts"))
                .unwrap_or_else(|| PathBuf::from("known_hosts")),
        },
        global_known_hosts: if args.global_known_hosts.is_empty() {
            crate::ssh::GLOBAL_KNOWN_HOSTS
                .iter()
                .map(PathBuf::from)
                .collect()
        } else {
            args.global_known_hosts.clone()
        },
        accept_new_host_keys: s.accept_new_host_keys,
        connect_timeout: std::time::Duration::from_secs(s.connect_timeout_secs),
        timeout: std::time::Duration::from_secs(s.timeout_secs),
        parallel: s.parallel,
        verify: s.verify,
        key_line,
        local_root: deploy::local_root(),
        local_apart: false,
        cache_dir: s
            .cache_dir
            .clone()
            .unwrap_or_else(crate::custom::BuildOptions::default_cache_dir),
        keep_releases: 5,
        no_wait: false,
    }
}
