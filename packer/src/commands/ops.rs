//! `--rollback`, `--list-deployments` and `--cleanup`: work on what every inventory
//! host keeps, and say per host what was found or done.

use super::{io_err, limited_inventory, printer};
use crate::cli::{DeployArgs, host_options};
use crate::config::Settings;
use crate::deploy::{self, DeployError, exit};
use crate::keys;
use crate::remote::{self, Op};

/// `--rollback`, `--list-deployments`, `--cleanup`: work on every inventory host (within
/// `--limit`).
pub(super) fn host_op(args: &DeployArgs, set: &Settings, op: Op) -> Result<i32, DeployError> {
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
