//! The `rustle-deploy` command line: argument definitions and the top-level flow.

use crate::config::{self, Settings, StrategyKind};
use crate::custom::CustomError;
use crate::deploy::{self, DeployError, Options, exit};
use crate::inventory::Inventory;
use crate::keys;
use crate::remote::{self, Op, RemoteOptions};
use crate::target::Triple;
use clap::{Parser, Subcommand};
use std::path::{Path, PathBuf};
use std::sync::Arc;

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
    command: Option<Cmd>,
    #[command(flatten)]
    deploy: DeployArgs,
}

#[derive(Debug, Subcommand)]
enum Cmd {
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
    Plan {
        /// The playbook.
        playbook: PathBuf,
        /// Mark the plan for check mode.
        #[arg(short = 'C', long)]
        check: bool,
        /// Mark the plan for diff mode.
        #[arg(short = 'D', long)]
        diff: bool,
        /// Inventory: checks that --limit matches a host (the plan itself stays
        /// host-independent; give the inventory again when deploying it). May be given
        /// more than once, as for a deploy.
        #[arg(short, long, value_name = "FILE")]
        inventory: Vec<PathBuf>,
        #[command(flatten)]
        input: InputArgs,
        /// Write the plan here instead of stdout.
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
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

/// What a playbook deploy and `plan` share: variables, host limit, vault.
#[derive(Debug, Clone, clap::Args)]
struct InputArgs {
    /// Extra variables (highest precedence): `key=value ...`, `@file.yml` or a JSON/YAML
    /// mapping; repeatable.
    #[arg(short = 'e', long = "extra-vars", value_name = "VARS")]
    extra_vars: Vec<String>,
    /// Only these hosts (an Ansible pattern: `web:db`, `all:!web2`, `web:&prod`, `web*`,
    /// `~regex`); a limit that matches no host is an error.
    #[arg(short = 'l', long, value_name = "PATTERN")]
    limit: Option<String>,
    /// File with the Ansible Vault password (an executable file is run for it).
    #[arg(long, value_name = "FILE")]
    vault_password_file: Option<PathBuf>,
    /// Run only the tasks with one of these tags (Ansible's rules: `always`, `never`,
    /// `tagged`, `untagged`, `all`; inherited from blocks, roles, imports and plays).
    /// ansible-playbook's `-t` is `--target` here.
    #[arg(long, value_delimiter = ',', value_name = "TAGS")]
    tags: Vec<String>,
    /// Leave out the tasks with one of these tags.
    #[arg(long, value_delimiter = ',', value_name = "TAGS")]
    skip_tags: Vec<String>,
    /// Run the notified handlers of a host even after it failed, in every play that
    /// does not set `force_handlers` itself [default: $ANSIBLE_FORCE_HANDLERS].
    #[arg(long)]
    force_handlers: bool,
}

impl InputArgs {
    /// The vault, when a password file is given.
    fn vault(&self) -> Result<Option<crate::vault::Vault>, DeployError> {
        self.vault_password_file
            .as_deref()
            .map(crate::vault::Vault::from_password_file)
            .transpose()
            .map_err(|e| DeployError::Unsupported(e.to_string()))
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
struct DeployArgs {
    /// Execution plan (the project's format or rustle-plan output) or Ansible
    /// playbooks, run one after the other as one run, as ansible-playbook runs them;
    /// `-` reads a plan from stdin.
    #[arg(value_name = "EXECUTION_PLAN")]
    plan: Vec<PathBuf>,
    /// Inventory (Ansible INI, YAML or JSON), a directory of them, or a comma-separated
    /// host list (`host1,host2,`); given more than once, the sources are merged, later
    /// ones' variables winning, as ansible-playbook merges them. Without one:
    /// localhost, run locally.
    #[arg(short, long, value_name = "FILE")]
    inventory: Vec<PathBuf>,
    /// Directory for packed runners (--compile-only, --deploy-only) [default: ./target/deploy].
    #[arg(short, long, value_name = "DIR")]
    output_dir: Option<PathBuf>,
    /// Config file [default: ./rustle-deploy.toml, else ~/.rustle/config.toml].
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Target triple for every host (default: the inventory's rustle_target or
    /// ansible_system + ansible_architecture, else the host's `uname -sm`, probed once
    /// and cached in ~/.rustle/targets.json; local hosts: this machine's).
    #[arg(short, long, value_name = "TRIPLE")]
    target: Option<Triple>,
    /// Write one packed runner per host and run nothing.
    #[arg(long)]
    compile_only: bool,
    /// Ship the runners a previous --compile-only wrote to --output-dir, as they are.
    #[arg(long)]
    deploy_only: bool,
    /// Show what would be packed and deployed; write nothing.
    #[arg(long)]
    dry_run: bool,
    /// Run every task in check mode.
    #[arg(short = 'C', long)]
    check: bool,
    /// Show differences for changed files.
    #[arg(short = 'D', long)]
    diff: bool,
    /// Suffix for packed runner file names.
    #[arg(long, value_name = "SUFFIX", default_value = "")]
    binary_suffix: String,
    /// Signing key [default: ~/.rustle/keys/deploy.key, made on first use].
    #[arg(long, value_name = "FILE", env = "RUSTLE_DEPLOY_KEY")]
    key: Option<PathBuf>,
    /// Directory of prebuilt runners (with manifest.json).
    #[arg(long, value_name = "DIR")]
    runner_dir: Option<PathBuf>,
    /// Where `src` files named by a rustle-plan input live [default: the plan's directory].
    #[arg(long, value_name = "DIR")]
    files_dir: Option<PathBuf>,
    /// Write a JSON report of every host and task.
    #[arg(long, value_name = "FILE")]
    report: Option<PathBuf>,
    /// How hosts are rolled through [default: parallel].
    #[arg(long, value_enum)]
    strategy: Option<StrategyKind>,
    /// Hosts per batch (rolling) [default: 5].
    #[arg(long, value_name = "NUM")]
    batch_size: Option<usize>,
    /// Failed hosts a rolling batch may have before the deploy stops [default: 0].
    #[arg(long, value_name = "NUM")]
    max_failures: Option<usize>,
    /// Share of hosts deployed first (canary) [default: 10].
    #[arg(long, value_name = "PERCENT")]
    canary_percent: Option<u32>,
    /// Have each host check the blake3 of the runner file it received before running it.
    #[arg(long)]
    verify: bool,
    /// On every host: make the previous release current again and run it.
    #[arg(long)]
    rollback: bool,
    /// On every host: list the deployments it has.
    #[arg(long)]
    list_deployments: bool,
    /// On every host: remove everything rustle-deploy put there.
    #[arg(long)]
    cleanup: bool,
    /// Releases each host keeps: after a deploy (or rollback) older ones, with their
    /// payloads, are removed; the current release always stays.
    #[arg(long, value_name = "NUM", default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..))]
    keep_releases: u32,
    /// On a host where another deploy, rollback or cleanup is running, fail at once
    /// instead of waiting for it (up to a minute).
    #[arg(long)]
    no_wait: bool,
    /// known_hosts file SSH host keys are checked against [default: ~/.ssh/known_hosts].
    #[arg(long, value_name = "FILE")]
    known_hosts: Option<PathBuf>,
    /// The system-wide known_hosts files, read as well and never written, as OpenSSH's
    /// GlobalKnownHostsFile (repeat for more than one) [default:
    /// /etc/ssh/ssh_known_hosts and /etc/ssh/ssh_known_hosts2].
    #[arg(long, value_name = "FILE")]
    global_known_hosts: Vec<PathBuf>,
    /// Trust and record the keys of hosts not yet in known_hosts (a changed key is
    /// always refused).
    #[arg(long)]
    accept_new_host_keys: bool,
    /// When a custom runner (a plan with Rust modules) cannot be built for a platform,
    /// run its hosts' tasks over SSH instead of stopping; the custom modules' tasks
    /// then fail, naming the module.
    #[arg(long)]
    fallback_ssh: bool,
    /// Per-host limit in seconds for connecting, uploading and running [default: 120,
    /// or $RUSTLE_DEPLOYMENT_TIMEOUT].
    #[arg(long, value_name = "SECONDS")]
    timeout: Option<u64>,
    /// Seconds to wait for an SSH connection [default: 10].
    #[arg(long, value_name = "SECONDS")]
    connect_timeout: Option<u64>,
    /// Hosts worked on at once, and at most this many compile jobs when building a
    /// custom runner (capped at the CPU count) [default: 64]. `-f`/`--forks` is
    /// ansible-playbook's name for it.
    #[arg(long, short = 'f', visible_alias = "forks", value_name = "NUM")]
    parallel: Option<usize>,
    /// Accepted for ansible-playbook's sake: rustle-deploy keeps no fact cache, so there
    /// is nothing to clear (facts are gathered on the host each run).
    #[arg(long)]
    flush_cache: bool,
    /// Where runners built for plans with custom Rust modules are cached [default:
    /// $RUSTLE_DEPLOY_CACHE_DIR, else deployment.cache_dir, else ~/.rustle/cache].
    #[arg(long, value_name = "DIR")]
    cache_dir: Option<PathBuf>,
    /// Ignore caches: build the custom runner even if the cache has it, and probe
    /// every host's platform again.
    #[arg(long)]
    rebuild: bool,
    /// For iterating on custom modules: keep one cargo target directory in the cache
    /// for every custom runner build and compile incrementally without whole-program
    /// LTO, so a changed module rebuilds in seconds (the runner comes out larger).
    #[arg(long)]
    incremental: bool,
    /// Say more (notes made while reading the plan); repeated (`-vvv`), it also sets
    /// `ansible_verbosity` for the plays, as in Ansible.
    #[arg(short, long, action = clap::ArgAction::Count)]
    verbose: u8,
    #[command(flatten)]
    input: InputArgs,
    /// The playbook of `rustle-deploy adhoc`, which then prints as Ansible's ad-hoc
    /// command does.
    #[arg(skip)]
    adhoc: Option<serde_norway::Value>,
}

/// Parses arguments and runs; returns the exit code.
pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        // clap's own exit code for a bad command line is 2, which here means a task
        // failed: a bad command line is bad input (4), as the exit-code table says.
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                exit::BAD_INPUT
            } else {
                exit::OK
            };
        }
    };
    let result = match cli.command {
        Some(Cmd::Keygen { out, force }) => keygen(out, force),
        Some(Cmd::Plan {
            playbook,
            check,
            diff,
            inventory,
            input,
            output,
        }) => plan_cmd(PlanCmd {
            playbook,
            check,
            diff,
            inventory,
            input,
            output,
        }),
        Some(Cmd::Adhoc {
            pattern,
            module,
            module_args,
            mut deploy,
        }) => match deploy.plan.first() {
            Some(extra) => Err(DeployError::Unsupported(format!(
                "adhoc takes one host pattern ('{pattern}'), then options; '{}' is one more",
                extra.display()
            ))),
            None => {
                deploy.adhoc = Some(crate::adhoc::play(&pattern, &module, &module_args));
                run(*deploy)
            }
        },
        None => run(cli.deploy),
    };
    match result {
        Ok(code) => code,
        Err(e) if e.is_ansibles() => {
            eprintln!("ERROR! {e}");
            e.exit_code()
        }
        Err(e) => {
            eprintln!("rustle-deploy: error: {e}");
            e.exit_code()
        }
    }
}

fn keygen(out: Option<PathBuf>, force: bool) -> Result<i32, DeployError> {
    let path = match out {
        Some(p) => p,
        None => keys::default_key_path()?,
    };
    let pair = keys::generate(&path, force)?;
    println!("private key: {}", pair.path.display());
    println!("public key:  {}", pair.public_path.display());
    println!("{}", rustle_runner::trust::format_key(&pair.public(), ""));
    Ok(exit::OK)
}

/// `rustle-deploy plan`'s arguments.
struct PlanCmd {
    playbook: PathBuf,
    check: bool,
    diff: bool,
    inventory: Vec<PathBuf>,
    input: InputArgs,
    output: Option<PathBuf>,
}

fn plan_cmd(c: PlanCmd) -> Result<i32, DeployError> {
    let vault = c.input.vault()?;
    if let Some(limit) = &c.input.limit
        && !c.inventory.is_empty()
    {
        let mut inventory = Inventory::load_sources(&c.inventory, vault.as_ref())?;
        inventory.set_limit(limit)?;
    }
    let settings = config::load(None, &|k| std::env::var(k).ok())?;
    let opts = crate::playbook::PlaybookOptions {
        extra_vars: crate::playbook::parse_extra_vars(&c.input.extra_vars, vault.as_ref())?,
        tags: c.input.tags.clone(),
        skip_tags: c.input.skip_tags.clone(),
        check: c.check,
        diff: c.diff,
        vault,
        limit: c.input.limit.clone(),
        verbosity: 0,
        adhoc: None,
        force_handlers: c.input.force_handlers || settings.force_handlers,
        missing_handler_warns: !settings.error_on_missing_handler,
    };
    let plan = crate::playbook::load_playbook(&c.playbook, &opts)?;
    let text = serde_json::to_string_pretty(&plan).unwrap_or_default();
    match c.output {
        // The plan holds the playbook's decrypted vault values: 0600, through a file
        // this process creates itself.
        Some(p) => write_private(&p, (text + "\n").as_bytes())?,
        None => println!("{text}"),
    }
    Ok(exit::OK)
}

/// Writes a file the command line names that may hold secrets (`plan -o`, `--report`).
///
/// A regular file, or none, is replaced through a new file of this process's own, 0600
/// ([`deploy::write_atomic`]); so is a symbolic link to one (the link is replaced, never
/// followed), or one that another user made (planted). A pipe, terminal or device
/// (`-o /dev/stdout`, a FIFO) cannot be replaced by a file, and renaming over it, as
/// root, would replace `/dev/stdout` itself: it is written to as it is, through a link
/// of this user's or root's, when it is this user's or root's; another user's is
/// refused, as is a directory.
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), DeployError> {
    use std::os::unix::fs::MetadataExt as _;
    let failed = |source: std::io::Error| DeployError::Io {
        path: path.to_path_buf(),
        source,
    };
    let refuse = |why: &str| {
        DeployError::Unsupported(format!("{}: {why}; it was not written", path.display()))
    };
    let me = rustle_runner::facts::current_uid();
    let trusted = |m: &std::fs::Metadata| m.uid() == 0 || Some(m.uid()) == me;
    let here = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return deploy::write_atomic(path, bytes, 0o600);
        }
        Err(e) => return Err(failed(e)),
    };
    let target = if here.file_type().is_symlink() {
        match std::fs::metadata(path) {
            Ok(t) if trusted(&here) => t,
            // Dangling, or another user's: replaced, never followed.
            _ => return deploy::write_atomic(path, bytes, 0o600),
        }
    } else {
        here
    };
    if target.is_file() {
        return deploy::write_atomic(path, bytes, 0o600);
    }
    if target.is_dir() {
        return Err(refuse("is a directory"));
    }
    if !trusted(&target) {
        return Err(refuse(
            "is another user's pipe or device, which would receive the secrets in it",
        ));
    }
    let mut out = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(failed)?;
    match std::io::Write::write_all(&mut out, bytes) {
        // A reader that has seen enough (`| head`) is no error.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other.map_err(failed),
    }
}

/// The settings in force: command line over environment over config file over defaults.
fn settings(args: &DeployArgs) -> Result<Settings, DeployError> {
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
fn build_options(args: &DeployArgs, s: &Settings) -> crate::custom::BuildOptions {
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

/// The custom runner for each host's platform. A platform whose build fails sends its
/// hosts to SSH mode when the user allows it (`--fallback-ssh`), saying so; otherwise
/// the failure stops the deploy before any host is touched, with a hint.
fn custom_runners(
    prepared: &mut deploy::Prepared,
    opts: &crate::custom::BuildOptions,
    fallback: bool,
) -> Result<std::collections::BTreeMap<Triple, crate::runners::Runner>, DeployError> {
    let mut out = std::collections::BTreeMap::new();
    let mut triples: Vec<Triple> = prepared
        .jobs
        .iter()
        .filter(|j| j.ssh_fallback.is_none())
        .map(|j| j.triple)
        .collect();
    triples.sort();
    triples.dedup();
    for triple in triples {
        match crate::custom::runners_for(&prepared.custom, &[triple], opts) {
            Ok(r) => out.extend(r),
            Err(e @ (CustomError::Compile { .. } | CustomError::Build { .. })) if fallback => {
                eprintln!("rustle-deploy: {e}");
                // Each host then says, as it starts, that its tasks run over SSH.
                for j in prepared.jobs.iter_mut().filter(|j| j.triple == triple) {
                    j.ssh_fallback = Some(format!(
                        "the custom {triple} runner could not be built (--fallback-ssh)"
                    ));
                }
            }
            Err(e @ (CustomError::Compile { .. } | CustomError::Build { .. })) => {
                eprintln!(
                    "rustle-deploy: no host was touched; --fallback-ssh would run these hosts' tasks over SSH instead"
                );
                return Err(e.into());
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(out)
}

/// [`remote_options`] with the host-state flags of the command line.
fn host_options(args: &DeployArgs, s: &Settings, key_line: String) -> RemoteOptions {
    let mut o = remote_options(args, s, key_line);
    o.keep_releases = args.keep_releases as usize;
    o.no_wait = args.no_wait;
    o
}

fn remote_options(args: &DeployArgs, s: &Settings, key_line: String) -> RemoteOptions {
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

fn printer(verbosity: u8) -> remote::OnEvent {
    let lines = deploy::Printer::new(verbosity);
    Arc::new(move |host: &str, ev: &rustle_runner::events::Event| {
        lines.print(host, ev, &mut |line| println!("{line}"));
        // Ansible writes warnings and errors to stderr.
        for w in deploy::stderr_lines(ev) {
            eprintln!("{w}");
        }
    })
}

/// Each host's result as Ansible's ad-hoc command prints it ([`crate::adhoc::line`]).
fn adhoc_printer() -> remote::OnEvent {
    Arc::new(|host: &str, ev: &rustle_runner::events::Event| {
        if let Some(text) = crate::adhoc::line(host, ev) {
            println!("{text}");
        }
        for w in deploy::stderr_lines(ev) {
            eprintln!("{w}");
        }
    })
}

/// Task lines, plus a bar of finished hosts when stdout is a terminal (a log or a pipe
/// gets the plain lines only).
fn progress(hosts: usize, verbosity: u8) -> (remote::OnEvent, Option<indicatif::ProgressBar>) {
    use std::io::IsTerminal;
    if !std::io::stdout().is_terminal() || hosts == 0 {
        return (printer(verbosity), None);
    }
    let bar = indicatif::ProgressBar::new(hosts as u64);
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} hosts done  {msg}",
    ) {
        bar.set_style(style);
    }
    bar.enable_steady_tick(std::time::Duration::from_millis(120));
    let b = bar.clone();
    let lines = deploy::Printer::new(verbosity);
    let on_event: remote::OnEvent =
        Arc::new(move |host: &str, ev: &rustle_runner::events::Event| {
            lines.print(host, ev, &mut |line| b.println(line));
            for w in deploy::stderr_lines(ev) {
                b.println(w);
            }
            if let rustle_runner::events::Event::Recap { .. } = ev {
                b.inc(1);
                b.set_message(format!("last: {host}"));
            }
        });
    (on_event, Some(bar))
}

fn io_err(what: &str) -> impl FnOnce(std::io::Error) -> DeployError + '_ {
    move |source| DeployError::Io {
        path: PathBuf::from(what),
        source,
    }
}

/// The inventory of `-i` (or localhost) with its `group_vars`/`host_vars` and `--limit`.
fn limited_inventory(args: &DeployArgs) -> Result<Inventory, DeployError> {
    let vault = args.input.vault()?;
    let mut inventory = Inventory::load_sources(&args.inventory, vault.as_ref())?;
    if let Some(limit) = &args.input.limit {
        inventory.set_limit(limit)?;
    }
    Ok(inventory)
}

/// `--rollback`, `--list-deployments`, `--cleanup`: work on every inventory host (within
/// `--limit`).
fn host_op(args: &DeployArgs, set: &Settings, op: Op) -> Result<i32, DeployError> {
    let inventory = limited_inventory(args)?;
    let key_path = match &args.key {
        Some(k) => k.clone(),
        None => keys::default_key_path()?,
    };
    let key_line = if key_path.exists() {
        rustle_runner::trust::format_key(&keys::load(&key_path)?.public(), "rustle-deploy")
    } else {
        String::new()
    };
    let hosts: Vec<_> = inventory.select("all").into_iter().cloned().collect();
    let results = remote::run_op(
        hosts,
        op,
        host_options(args, set, key_line),
        printer(args.verbose),
    )
    .map_err(io_err("tokio runtime"))?;
    let mut code = exit::OK;
    for r in &results {
        let host = &r.result.host;
        match op {
            Op::List => {
                if r.result.status == deploy::HostStatus::Unreachable {
                    println!(
                        "{host}: unreachable: {}",
                        deploy::printable(r.result.error.as_deref().unwrap_or(""))
                    );
                    code = exit::UNREACHABLE;
                    continue;
                }
                // One listing per state root the host has (its own `~/.rustle`, root's
                // under sudo, a `rustle_root`).
                for l in remote::listings(&r.output) {
                    let label = format!(
                        "{host} [{}{}]",
                        deploy::printable(&l.root),
                        if l.sudo { ", through sudo" } else { "" }
                    );
                    match l.problem() {
                        Some(e) => {
                            println!("{label}: {}", deploy::printable(&e));
                            code = exit::UNREACHABLE;
                        }
                        None => print!("{}", deploy::deployments_text(&label, &l.lines)),
                    }
                }
            }
            Op::Cleanup => {
                let roots = remote::cleaned_roots(&r.output);
                let cleaned = if roots.is_empty() {
                    String::new()
                } else {
                    format!("cleaned {}", roots.join(", "))
                };
                match r.result.status {
                    deploy::HostStatus::Ok if roots.is_empty() => {
                        println!("{host}: nothing to clean")
                    }
                    deploy::HostStatus::Ok => println!("{host}: {cleaned}"),
                    _ => {
                        let why = deploy::printable(r.result.error.as_deref().unwrap_or("failed"));
                        if roots.is_empty() {
                            println!("{host}: {why}");
                        } else {
                            println!("{host}: {cleaned}; then: {why}");
                        }
                        code = exit::UNREACHABLE;
                    }
                }
            }
            Op::Rollback => {}
        }
    }
    if op == Op::Rollback {
        let hr: Vec<_> = results.into_iter().map(|r| r.result).collect();
        print!("{}", deploy::recap_text(&hr));
        return Ok(deploy::exit_code(&hr));
    }
    Ok(code)
}

/// The hosts a deploy carries out: their jobs, the hosts no runner fits, and every
/// host of the inventory (tasks may be delegated to them).
struct Fleet {
    jobs: Vec<deploy::Job>,
    skipped: Vec<deploy::Skipped>,
    inventory: Vec<crate::inventory::Host>,
}

/// Deploys and reports: the part a fresh deploy and `--deploy-only` share.
fn carry_out(
    args: &DeployArgs,
    set: &Settings,
    id: &str,
    fleet: Fleet,
    runners: std::collections::BTreeMap<Triple, crate::runners::Runner>,
    key_line: String,
) -> Result<i32, DeployError> {
    let Fleet {
        jobs,
        skipped,
        inventory,
    } = fleet;
    if let Some(limit) = set.binary_size_limit {
        check_size_limit(&jobs, &runners, limit)?;
    }
    for j in jobs.iter().filter(|_| set.strategy != StrategyKind::Ssh) {
        if let Some(why) = &j.ssh_fallback {
            eprintln!(
                "rustle-deploy: host '{}': {why}; its tasks run over SSH one at a time",
                j.host.name
            );
        }
    }
    // Where each SSH host's platform would be cached, to forget it if it proves wrong.
    let cache_keys: Vec<(String, String, Triple)> = jobs
        .iter()
        .filter(|j| !j.host.is_local())
        .map(|j| {
            let (t, _) = remote::target(&j.host, &remote_options(args, set, String::new()));
            (
                j.host.name.clone(),
                crate::target::TargetCache::key(&t.address, t.port),
                j.triple,
            )
        })
        .collect();
    let (on_event, bar) = match args.adhoc {
        Some(_) => (adhoc_printer(), None),
        None => progress(jobs.len(), args.verbose),
    };
    let done = remote::deploy_all(
        jobs,
        id,
        set.remote_strategy(),
        runners,
        host_options(args, set, key_line),
        on_event,
        inventory,
    )
    .map_err(io_err("tokio runtime"))?;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    let (mut results, mut timings): (Vec<_>, Vec<_>) = done.into_iter().unzip();
    // Hosts no runner fits got nothing; they are reported with the others.
    for s in skipped {
        eprintln!("rustle-deploy: host '{}': {}", s.host, s.reason);
        results.push(deploy::HostResult::unreachable(&s.host, s.reason));
        timings.push(remote::Timings::default());
    }
    forget_wrong_platforms(&results, &cache_keys);
    if args.adhoc.is_some() {
        // Ansible's ad-hoc command prints no recap: a host that never ran its task is
        // reported as it reports an unreachable one.
        for r in results
            .iter()
            .filter(|r| r.status == deploy::HostStatus::Unreachable)
        {
            println!(
                "{}",
                crate::adhoc::unreachable_line(&r.host, r.error.as_deref().unwrap_or(""))
            );
        }
    } else {
        print!("{}", deploy::recap_text(&results));
    }
    if let Some(path) = &args.report {
        let mut report = deploy::report_json(id, &results);
        for (r, t) in results.iter().zip(&timings) {
            if let Some(h) = report.pointer_mut(&format!("/hosts/{}", r.host)) {
                h["timings"] = serde_json::json!(t);
            }
        }
        // Task results can hold what the plan's secrets made: 0600, as plan files.
        let text = serde_json::to_vec_pretty(&report).unwrap_or_default();
        write_private(path, &text)?;
    }
    Ok(deploy::exit_code(&results))
}

/// A host where the runner could not even start (the shell's exit code 126: "Exec
/// format error") is not the platform it was packed for: its cached `uname -sm` answer
/// is dropped, so the next deploy asks it again instead of failing the same way.
fn forget_wrong_platforms(results: &[deploy::HostResult], keys: &[(String, String, Triple)]) {
    let Some(path) = crate::target::TargetCache::default_path() else {
        return;
    };
    let wrong: Vec<&(String, String, Triple)> = keys
        .iter()
        .filter(|(host, _, _)| {
            results
                .iter()
                .any(|r| r.host == *host && r.exit_code == Some(126))
        })
        .collect();
    if wrong.is_empty() {
        return;
    }
    let mut cache = crate::target::TargetCache::load(&path);
    let mut forgotten = 0;
    for (host, key, triple) in &wrong {
        if cache.get(key).is_some() {
            cache.remove(key);
            forgotten += 1;
            eprintln!(
                "rustle-deploy: host '{host}': the {triple} runner cannot execute there; its cached platform is forgotten, and the next deploy asks it again"
            );
        }
    }
    if forgotten > 0
        && let Err(e) = cache.save()
    {
        eprintln!("rustle-deploy: cannot write {}: {e}", path.display());
    }
}

/// Refuses a deploy whose packed runners would exceed the size limit
/// (`binary_size_limit_mb`, `$RUSTLE_BINARY_SIZE_LIMIT`), before any host is touched.
fn check_size_limit(
    jobs: &[deploy::Job],
    runners: &std::collections::BTreeMap<Triple, crate::runners::Runner>,
    limit: u64,
) -> Result<(), DeployError> {
    for j in jobs {
        let size = match &j.prepacked {
            Some(p) => p.len() as u64,
            None => runners
                .get(&j.triple)
                .map_or(0, |r| r.bytes.len() as u64 + j.sealed.len() as u64),
        };
        if size > limit {
            return Err(DeployError::Unsupported(format!(
                "host {}: the packed runner is about {size} bytes, over the {limit}-byte limit (binary_size_limit_mb, RUSTLE_BINARY_SIZE_LIMIT)",
                j.host.name
            )));
        }
    }
    Ok(())
}

/// `--deploy-only`: ship what `--compile-only` wrote, to the inventory's hosts.
fn deploy_only(args: &DeployArgs, set: &Settings) -> Result<i32, DeployError> {
    let inventory = limited_inventory(args)?;
    let key_path = match &args.key {
        Some(k) => k.clone(),
        None => keys::default_key_path()?,
    };
    let key = keys::load(&key_path)?;
    let (id, mut jobs) = deploy::load_compiled(&set.output_dir, &inventory, &key.public())?;
    let selected: Vec<String> = inventory
        .select("all")
        .into_iter()
        .map(|h| h.name.clone())
        .collect();
    jobs.retain(|j| selected.contains(&j.host.name));
    if jobs.is_empty() {
        return Err(DeployError::Unsupported(format!(
            "no host of the inventory has a packed runner in {}",
            set.output_dir.display()
        )));
    }
    let key_line = rustle_runner::trust::format_key(&key.public(), "rustle-deploy");
    // The host checks the whole file it received too (`--expect-file`), against the
    // digest of the bytes checked above: the file is code, and runs as root with become.
    let mut set = set.clone();
    set.verify = true;
    carry_out(
        args,
        &set,
        &id,
        Fleet {
            jobs,
            skipped: Vec::new(),
            inventory: inventory.hosts().cloned().collect(),
        },
        Default::default(),
        key_line,
    )
}

fn run(args: DeployArgs) -> Result<i32, DeployError> {
    let set = settings(&args)?;
    if args.rollback {
        return host_op(&args, &set, Op::Rollback);
    }
    if args.list_deployments {
        return host_op(&args, &set, Op::List);
    }
    if args.cleanup {
        return host_op(&args, &set, Op::Cleanup);
    }
    if args.deploy_only {
        return deploy_only(&args, &set);
    }
    // An ad-hoc play is read from memory; its name puts it in the current directory,
    // which Ansible's ad-hoc command takes as the playbook's.
    let adhoc_path = args.adhoc.as_ref().map(|_| PathBuf::from("./(ad hoc)"));
    let Some((plan, more_plans)) = adhoc_path
        .as_ref()
        .map(|p| (p, &[][..]))
        .or_else(|| args.plan.split_first())
    else {
        return Err(DeployError::Unsupported(
            "no execution plan given (a file, or - for stdin); try --help".into(),
        ));
    };
    let (plan, more_plans) = (plan.clone(), more_plans.to_vec());
    let opts = Options {
        plan,
        inventory: args.inventory.clone(),
        files_dir: args.files_dir.clone(),
        target: args.target,
        key: args.key.clone(),
        runner_dir: args.runner_dir.clone(),
        check_mode: args.check,
        diff_mode: args.diff,
        default_target: set.default_target,
        vault: args.input.vault()?,
        extra_vars: args.input.extra_vars.clone(),
        limit: args.input.limit.clone(),
        more_plans,
        tags: args.input.tags.clone(),
        skip_tags: args.input.skip_tags.clone(),
        verbosity: args.verbose,
        // Dry runs touch no host, so they do not probe either.
        probe: (!args.dry_run).then(|| deploy::Probe {
            remote: remote_options(&args, &set, String::new()),
            cache: crate::target::TargetCache::default_path()
                .unwrap_or_else(|| PathBuf::from(".rustle/targets.json")),
            refresh: args.rebuild,
        }),
        adhoc: args.adhoc.clone(),
        force_handlers: args.input.force_handlers || set.force_handlers,
        missing_handler_warns: !set.error_on_missing_handler,
    };
    let mut prepared = deploy::prepare(&opts, !args.dry_run)?;
    if args.verbose > 0 || args.dry_run {
        for n in &prepared.notes {
            eprintln!("note: {n}");
        }
    }
    if args.dry_run {
        print!(
            "{}",
            deploy::dry_run_table(&prepared, args.runner_dir.as_deref())
        );
        if !prepared.custom.is_empty() {
            let mut triples: Vec<Triple> = prepared.jobs.iter().map(|j| j.triple).collect();
            triples.sort();
            triples.dedup();
            let opts = build_options(&args, &set);
            for t in triples {
                println!(
                    "{}",
                    crate::custom::dry_run_line(&prepared.custom, t, &opts)?
                );
            }
        }
        return Ok(exit::OK);
    }
    // SSH mode ships no runner, so it works where none is built.
    let runners = if set.strategy == StrategyKind::Ssh && !args.compile_only {
        std::collections::BTreeMap::new()
    } else if prepared.custom.is_empty() {
        deploy::runners_or_skip(&mut prepared, args.runner_dir.as_deref())?
    } else {
        custom_runners(&mut prepared, &build_options(&args, &set), set.fallback_ssh)?
    };
    let Some(key) = &prepared.key else {
        return Err(DeployError::Unsupported("no signing key".into()));
    };
    if args.compile_only {
        if let Some(limit) = set.binary_size_limit {
            check_size_limit(&prepared.jobs, &runners, limit)?;
        }
        // Run by hand, a packed runner has no deployer to ask: say up front which tasks
        // will fail for it.
        let needs = deploy::channel_tasks(&prepared);
        if !needs.is_empty() {
            eprintln!(
                "rustle-deploy: these tasks need the controller channel: a packed runner run by hand fails them (the deployer runs them with --deploy-only):"
            );
            for (name, what, hosts) in &needs {
                eprintln!("  {name}: {what} (hosts: {})", hosts.join(", "));
            }
        }
        let written = deploy::compile(&prepared, &runners, &set.output_dir, &args.binary_suffix)?;
        for c in &written {
            println!(
                "{}\t{}\t{}\t{} bytes",
                c.host,
                c.digest,
                c.path.display(),
                c.size
            );
        }
        eprintln!(
            "packed {} runners for deployment {}; run one with: <file> --trusted-key {}",
            written.len(),
            prepared.id,
            key.public_path.display()
        );
        for s in &prepared.skipped {
            eprintln!("rustle-deploy: host '{}' not packed: {}", s.host, s.reason);
        }
        // A host that would fall back to SSH mode has no runner to write.
        let fallback: Vec<&deploy::Job> = prepared
            .jobs
            .iter()
            .filter(|j| j.ssh_fallback.is_some())
            .collect();
        for j in &fallback {
            let why = j.ssh_fallback.as_deref().unwrap_or_default();
            eprintln!("rustle-deploy: host '{}' not packed: {why}", j.host.name);
        }
        return Ok(if prepared.skipped.is_empty() && fallback.is_empty() {
            exit::OK
        } else {
            exit::UNREACHABLE
        });
    }
    let key_line = rustle_runner::trust::format_key(&key.public(), "rustle-deploy");
    let id = prepared.id.clone();
    let mut set = set;
    // The playbook's `serial` picks the rolling strategy unless --strategy says otherwise.
    if let (Some((batch, tolerated)), None) = (prepared.rolling, args.strategy) {
        set.strategy = StrategyKind::Rolling;
        set.batch_size = batch;
        set.max_failures = tolerated;
    }
    carry_out(
        &args,
        &set,
        &id,
        Fleet {
            jobs: prepared.jobs,
            skipped: prepared.skipped,
            inventory: prepared.inventory,
        },
        runners,
        key_line,
    )
}
