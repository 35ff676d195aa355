//! The `rustle-deploy` command line: argument definitions and the top-level flow.

use crate::deploy::{self, DeployError, Options, exit};
use crate::keys;
use crate::remote;
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
    rustle-deploy -i hosts.ini plan.json --dry-run       # show what each host would get
    rustle-deploy -i hosts.ini plan.json --compile-only -o out/   # one packed runner per host
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
}

#[derive(Debug, clap::Args)]
struct DeployArgs {
    /// Execution plan: the project's format or rustle-plan output; `-` reads stdin.
    #[arg(value_name = "EXECUTION_PLAN")]
    plan: Option<PathBuf>,
    /// Inventory (Ansible INI, YAML or JSON). Without one: localhost, run locally.
    #[arg(short, long, value_name = "FILE")]
    inventory: Option<PathBuf>,
    /// Directory for packed runners (--compile-only).
    #[arg(short, long, value_name = "DIR", default_value = "./target/deploy")]
    output_dir: PathBuf,
    /// Target triple for every host (default: from inventory, else this machine's).
    #[arg(short, long, value_name = "TRIPLE")]
    target: Option<String>,
    /// Write one packed runner per host and run nothing.
    #[arg(long)]
    compile_only: bool,
    /// Show what would be packed and deployed; write nothing.
    #[arg(long)]
    dry_run: bool,
    /// Run every task in check mode.
    #[arg(long)]
    check: bool,
    /// Show differences for changed files.
    #[arg(long)]
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
    /// known_hosts file SSH host keys are checked against [default: ~/.ssh/known_hosts].
    #[arg(long, value_name = "FILE")]
    known_hosts: Option<PathBuf>,
    /// Trust and record the keys of hosts not yet in known_hosts (a changed key is
    /// always refused).
    #[arg(long)]
    accept_new_host_keys: bool,
    /// Per-host limit in seconds for connecting, uploading and running.
    #[arg(
        long,
        value_name = "SECONDS",
        default_value_t = 120,
        env = "RUSTLE_DEPLOYMENT_TIMEOUT"
    )]
    timeout: u64,
    /// Seconds to wait for an SSH connection.
    #[arg(long, value_name = "SECONDS", default_value_t = 10)]
    connect_timeout: u64,
    /// Hosts deployed at once.
    #[arg(long, value_name = "NUM", default_value_t = 64)]
    parallel: usize,
    /// Say more (notes made while reading the plan).
    #[arg(short, long)]
    verbose: bool,
}

/// Parses arguments and runs; returns the exit code.
pub fn main() -> i32 {
    let cli = Cli::parse();
    let result = match cli.command {
        Some(Cmd::Keygen { out, force }) => keygen(out, force),
        None => run(cli.deploy),
    };
    match result {
        Ok(code) => code,
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

fn run(args: DeployArgs) -> Result<i32, DeployError> {
    let target = match &args.target {
        Some(t) => Some(
            t.parse::<Triple>()
                .map_err(|e| DeployError::Unsupported(e.to_string()))?,
        ),
        None => None,
    };
    let Some(plan) = args.plan.clone() else {
        return Err(DeployError::Unsupported(
            "no execution plan given (a file, or - for stdin); try --help".into(),
        ));
    };
    let opts = Options {
        plan,
        inventory: args.inventory.clone(),
        files_dir: args.files_dir.clone(),
        target,
        key: args.key.clone(),
        runner_dir: args.runner_dir.clone(),
        check_mode: args.check,
        diff_mode: args.diff,
    };
    let prepared = deploy::prepare(&opts, !args.dry_run)?;
    if args.verbose || args.dry_run {
        for n in &prepared.notes {
            eprintln!("note: {n}");
        }
    }
    if args.dry_run {
        print!(
            "{}",
            deploy::dry_run_table(&prepared, args.runner_dir.as_deref())
        );
        return Ok(exit::OK);
    }
    let runners = deploy::runners_for(&prepared.jobs, args.runner_dir.as_deref())?;
    let Some(key) = &prepared.key else {
        return Err(DeployError::Unsupported("no signing key".into()));
    };
    if args.compile_only {
        let written = deploy::compile(&prepared, &runners, &args.output_dir, &args.binary_suffix)?;
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
        return Ok(exit::OK);
    }
    let root = deploy::local_root();
    let print = |host: &str, ev: &rustle_runner::events::Event| {
        if let Some(line) = deploy::task_line(host, ev) {
            println!("{line}");
        }
    };
    let (local, remote): (Vec<deploy::Job>, Vec<deploy::Job>) =
        prepared.jobs.into_iter().partition(|j| j.host.is_local());
    let mut results = Vec::new();
    let mut timings = std::collections::BTreeMap::new();
    for job in &local {
        let bytes = deploy::packed(job, &runners)?;
        results.push(deploy::run_local(
            job,
            &bytes,
            &prepared.id,
            &key.public_path,
            &root,
            &mut |h, ev| print(h, ev),
        )?);
    }
    if !remote.is_empty() {
        let opts = remote::RemoteOptions {
            known_hosts: match &args.known_hosts {
                Some(k) => k.clone(),
                None => std::env::var_os("HOME")
                    .map(|h| PathBuf::from(h).join(".ssh/known_hosts"))
                    .unwrap_or_else(|| PathBuf::from("known_hosts")),
            },
            accept_new_host_keys: args.accept_new_host_keys,
            connect_timeout: std::time::Duration::from_secs(args.connect_timeout),
            timeout: std::time::Duration::from_secs(args.timeout),
            parallel: args.parallel,
        };
        let key_line = rustle_runner::trust::format_key(&key.public(), "rustle-deploy");
        let done = remote::deploy_all(remote, runners, key_line, opts, std::sync::Arc::new(print))
            .map_err(|source| DeployError::Io {
                path: PathBuf::from("tokio runtime"),
                source,
            })?;
        for (r, t) in done {
            timings.insert(r.host.clone(), t);
            results.push(r);
        }
    }
    print!("{}", deploy::recap_text(&results));
    if let Some(path) = &args.report {
        let mut report = deploy::report_json(&prepared.id, &results);
        for (host, t) in &timings {
            if let Some(h) = report.pointer_mut(&format!("/hosts/{host}")) {
                h["timings"] = serde_json::json!(t);
            }
        }
        let text = serde_json::to_vec_pretty(&report).unwrap_or_default();
        std::fs::write(path, text).map_err(|source| DeployError::Io {
            path: path.clone(),
            source,
        })?;
    }
    Ok(deploy::exit_code(&results))
}
