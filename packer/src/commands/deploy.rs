//! A deploy and its modes: `--dry-run` (what would be packed), `--compile-only` (packed
//! runners written, nothing run), `--deploy-only` (those runners shipped), and the
//! default, pack and run; with the results printed and reported.

use super::{io_err, limited_inventory, printer, write_private};
use crate::cli::{DeployArgs, build_options, host_options, remote_options};
use crate::config::{Settings, StrategyKind};
use crate::custom::CustomError;
use crate::deploy::{self, DeployError, Options, exit};
use crate::keys;
use crate::remote;
use crate::target::Triple;
use std::path::PathBuf;
use std::sync::Arc;

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
    let custom = deploy::CustomStats::of(&results);
    if show_custom_stats() {
        print!("{}", custom.text());
    }
    if let Some(path) = &args.report {
        let mut report = deploy::report_json(id, &results);
        if let (false, Some(map)) = (custom.is_empty(), report.as_object_mut()) {
            map.insert("custom_stats".into(), custom.to_json());
        }
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

/// Whether `set_stats` statistics are shown after the recap: `ANSIBLE_SHOW_CUSTOM_STATS`
/// (Ansible's `show_custom_stats`), read as Ansible reads a boolean setting. They are
/// in the `--report` file either way.
fn show_custom_stats() -> bool {
    std::env::var("ANSIBLE_SHOW_CUSTOM_STATS")
        .ok()
        .and_then(|v| rustle_runner::modules::args::truthy_str(&v))
        .unwrap_or(false)
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
pub(super) fn deploy_only(args: &DeployArgs, set: &Settings) -> Result<i32, DeployError> {
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

/// A deploy from plans or playbooks: packed and run, or with `--dry-run` or
/// `--compile-only`, only shown or written.
pub(super) fn run(args: DeployArgs, set: Settings) -> Result<i32, DeployError> {
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
