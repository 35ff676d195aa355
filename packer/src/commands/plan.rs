//! `rustle-deploy plan` (a playbook turned into a plan) and `rustle-deploy keygen`.

use super::write_private;
use crate::cli::PlanArgs;
use crate::config;
use crate::deploy::{DeployError, exit};
use crate::inventory::Inventory;
use crate::keys;
use std::path::PathBuf;

pub(super) fn keygen(out: Option<PathBuf>, force: bool) -> Result<i32, DeployError> {
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

pub(super) fn plan_cmd(c: PlanArgs) -> Result<i32, DeployError> {
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
