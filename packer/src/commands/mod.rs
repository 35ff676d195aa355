//! What `rustle-deploy` does with its command line ([`crate::cli`]): [`main`] parses
//! it and runs the subcommand or mode; `deploy` deploys (also `--dry-run`,
//! `--compile-only`, `--deploy-only`), `ops` works on what hosts keep (`--rollback`,
//! `--list-deployments`, `--cleanup`), `plan` has `plan` and `keygen`.

mod deploy;
mod ops;
mod plan;

use crate::cli::{Cli, Cmd, DeployArgs};
use crate::deploy::{DeployError, exit};
use crate::inventory::Inventory;
use crate::remote::{self, Op};
use clap::Parser;
use std::path::{Path, PathBuf};
use std::sync::Arc;

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
        Some(Cmd::Keygen { out, force }) => plan::keygen(out, force),
        Some(Cmd::Plan(args)) => plan::plan_cmd(args),
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

/// The deploy command line: its mode (clap lets one at most through), else a deploy.
fn run(args: DeployArgs) -> Result<i32, DeployError> {
    let set = crate::cli::settings(&args)?;
    if args.rollback {
        ops::host_op(&args, &set, Op::Rollback)
    } else if args.list_deployments {
        ops::host_op(&args, &set, Op::List)
    } else if args.cleanup {
        ops::host_op(&args, &set, Op::Cleanup)
    } else if args.deploy_only {
        deploy::deploy_only(&args, &set)
    } else {
        deploy::run(args, set)
    }
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
pub(crate) fn write_private(path: &Path, bytes: &[u8]) -> Result<(), DeployError> {
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
            return crate::deploy::write_atomic(path, bytes, 0o600);
        }
        Err(e) => return Err(failed(e)),
    };
    let target = if here.file_type().is_symlink() {
        match std::fs::metadata(path) {
            Ok(t) if trusted(&here) => t,
            // Dangling, or another user's: replaced, never followed.
            _ => return crate::deploy::write_atomic(path, bytes, 0o600),
        }
    } else {
        here
    };
    if target.is_file() {
        return crate::deploy::write_atomic(path, bytes, 0o600);
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

pub(crate) fn printer(verbosity: u8) -> remote::OnEvent {
    let lines = crate::deploy::Printer::new(verbosity);
    Arc::new(move |host: &str, ev: &rustle_runner::events::Event| {
        lines.print(host, ev, &mut |line| println!("{line}"));
        // Ansible writes warnings and errors to stderr.
        for w in crate::deploy::stderr_lines(ev) {
            eprintln!("{w}");
        }
    })
}

pub(crate) fn io_err(what: &str) -> impl FnOnce(std::io::Error) -> DeployError + '_ {
    move |source| DeployError::Io {
        path: PathBuf::from(what),
        source,
    }
}

/// The inventory of `-i` (or localhost) with its `group_vars`/`host_vars` and `--limit`.
pub(crate) fn limited_inventory(args: &DeployArgs) -> Result<Inventory, DeployError> {
    let vault = args.input.vault()?;
    let mut inventory = Inventory::load_sources(&args.inventory, vault.as_ref())?;
    if let Some(limit) = &args.input.limit {
        inventory.set_limit(limit)?;
    }
    Ok(inventory)
}
