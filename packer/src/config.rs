//! Settings from the config file and the environment, resolved before the command line.
//!
//! Precedence, highest first: command line > environment > config file > built-in
//! defaults. [`load`] applies the last three; the CLI then overwrites the fields the user
//! gave flags for, which is why those fields are plain values rather than `Option`s.
//!
//! # Config file
//!
//! The first of `./rustle-deploy.toml` and `~/.rustle/config.toml` that exists is read,
//! alone: files are not merged, so the file named in [`Settings::source`] is the whole
//! story. An explicit path (`--config FILE`) replaces both and must exist. Unknown
//! sections and keys are errors, so a misspelt key never silently does nothing; an
//! error names the file, the line and the dotted key (`deployment.paralel_jobs`).
//!
//! | key                                | setting                                   |
//! |------------------------------------|-------------------------------------------|
//! | `deployment.cache_dir`             | [`Settings::cache_dir`]                   |
//! | `deployment.output_dir`            | [`Settings::output_dir`]                  |
//! | `deployment.parallel_jobs`         | [`Settings::parallel`] (at least 1)       |
//! | `deployment.default_timeout_secs`  | [`Settings::timeout_secs`] (at least 1)   |
//! | `deployment.verify_deployments`    | [`Settings::verify`]                      |
//! | `deployment.strategy`              | `parallel`, `rolling`, `canary`, `blue-green`, `ssh` |
//! | `deployment.batch_size`            | [`Settings::batch_size`] (at least 1)     |
//! | `deployment.max_failures`          | [`Settings::max_failures`]                |
//! | `deployment.canary_percentage`     | [`Settings::canary_percent`] (0 to 100)   |
//! | `deployment.known_hosts`           | [`Settings::known_hosts`]                 |
//! | `deployment.accept_new_host_keys`  | [`Settings::accept_new_host_keys`]        |
//! | `deployment.connect_timeout_secs`  | [`Settings::connect_timeout_secs`] (at least 1) |
//! | `deployment.fallback_ssh`          | [`Settings::fallback_ssh`]                |
//! | `compilation.binary_size_limit_mb` | [`Settings::binary_size_limit`], in MiB (1 MB = 1,048,576 bytes) |
//! | `compilation.optimization_level`   | [`Settings::optimization_level`] (custom runners only) |
//! | `compilation.strip_symbols`        | [`Settings::strip_symbols`] (custom runners only) |
//! | `targets.default_arch`             | [`Settings::default_target`] (a supported triple) |
//!
//! The two compilation keys above apply to runners built for plans with custom Rust
//! modules; prebuilt runners are as `cargo xtask runners` made them. Accepted and
//! type-checked, but without effect yet: `compilation.static_linking`,
//! `compilation.compression` (booleans), `targets.supported_targets` (array of strings),
//! `cross_compilation.toolchain_auto_install` (boolean), and
//! `cross_compilation.use_zigbuild` (boolean, kept in [`Settings::use_zigbuild`]).
//!
//! Paths may start with `~/`, expanded with `HOME`; relative paths are relative to the
//! working directory, not to the config file, so `./target/deploy` means the same in
//! either file.
//!
//! # Environment
//!
//! | variable                    | setting                                         |
//! |-----------------------------|-------------------------------------------------|
//! | `RUSTLE_DEPLOY_CACHE_DIR`   | [`Settings::cache_dir`]                         |
//! | `RUSTLE_BINARY_SIZE_LIMIT`  | [`Settings::binary_size_limit`], see [`parse_size`] |
//! | `RUSTLE_DEPLOYMENT_TIMEOUT` | [`Settings::timeout_secs`], whole seconds, at least 1 |
//! | `RUSTLE_CROSS_COMPILE_ZIG`  | [`Settings::use_zigbuild`]: `true`/`false`, `1`/`0`, `yes`/`no`, `on`/`off`, `y`/`n`, `t`/`f` |
//!
//! A variable set to the empty string counts as unset (as clap treats `env` values), so
//! `VAR= rustle-deploy ...` switches a variable off for one run. Any other bad value is
//! an error naming the variable.

use crate::remote::Strategy;
use crate::target::Triple;
use serde::Deserialize;
use serde::de::{Deserializer, Error as _};
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use toml::Spanned;

/// The config file looked for in the working directory.
pub const LOCAL_FILE: &str = "rustle-deploy.toml";
/// The config file looked for under `HOME` when there is no local one.
pub const HOME_FILE: &str = ".rustle/config.toml";

/// Overrides `deployment.cache_dir`.
pub const ENV_CACHE_DIR: &str = "RUSTLE_DEPLOY_CACHE_DIR";
/// Overrides `compilation.binary_size_limit_mb`; bytes, or with a suffix (see [`parse_size`]).
pub const ENV_BINARY_SIZE_LIMIT: &str = "RUSTLE_BINARY_SIZE_LIMIT";
/// Overrides `deployment.default_timeout_secs`; whole seconds.
pub const ENV_TIMEOUT: &str = "RUSTLE_DEPLOYMENT_TIMEOUT";
/// Overrides `cross_compilation.use_zigbuild`; a boolean.
pub const ENV_ZIG: &str = "RUSTLE_CROSS_COMPILE_ZIG";
/// Ansible's `FORCE_HANDLERS` setting: plays that do not say run their notified
/// handlers on a host even after it failed; a boolean.
pub const ENV_FORCE_HANDLERS: &str = "ANSIBLE_FORCE_HANDLERS";
/// Ansible's `ERROR_ON_MISSING_HANDLER` setting: whether a changed task that notifies a
/// handler nobody defines ends the run (true, the default) or only warns; a boolean.
pub const ENV_ERROR_ON_MISSING_HANDLER: &str = "ANSIBLE_ERROR_ON_MISSING_HANDLER";

const MIB: u64 = 1024 * 1024;

/// How hosts are rolled through, by name; [`Settings::remote_strategy`] adds the numbers.
/// The names (`blue-green`) are the same in the config file and on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum StrategyKind {
    /// Every host at once.
    #[default]
    Parallel,
    /// Batches of `batch_size` hosts.
    Rolling,
    /// `canary_percent`% of hosts first.
    Canary,
    /// Stage everywhere, then switch everywhere.
    BlueGreen,
    /// No runner: run every task over SSH from here (the baseline for binary mode).
    Ssh,
}

/// `compilation.optimization_level`: how custom runners are optimised (the spec's names,
/// lower-case, `-` or `_` between words).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OptimizationLevel {
    /// No optimisation, with debug info.
    Debug,
    /// Optimised for speed.
    Release,
    /// Optimised for speed, with debug info.
    ReleaseWithDebugInfo,
    /// Optimised for size: the prebuilt runners' setting.
    MinSize,
}

impl FromStr for OptimizationLevel {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.replace('_', "-").as_str() {
            "debug" => Ok(OptimizationLevel::Debug),
            "release" => Ok(OptimizationLevel::Release),
            "release-with-debug-info" => Ok(OptimizationLevel::ReleaseWithDebugInfo),
            "min-size" => Ok(OptimizationLevel::MinSize),
            _ => Err(format!(
                "unknown optimization level {s:?} (expected debug, release, release-with-debug-info or min-size)"
            )),
        }
    }
}

/// Everything the config file and environment decide, with built-in defaults filled in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Where `--compile-only` writes packed runners. Default `./target/deploy`.
    pub output_dir: PathBuf,
    /// Where runners built for plans with custom modules are cached; `None`: the
    /// default, `~/.rustle/cache`.
    pub cache_dir: Option<PathBuf>,
    /// Hosts worked on at once. Default 64.
    pub parallel: usize,
    /// Per-host limit for connecting, uploading and running. Default 120.
    pub timeout_secs: u64,
    /// Have hosts check the digest of the runner they received. Default off.
    pub verify: bool,
    /// How hosts are rolled through. Default parallel.
    pub strategy: StrategyKind,
    /// Hosts per batch (rolling). Default 5.
    pub batch_size: usize,
    /// Failed hosts a rolling batch may have. Default 0.
    pub max_failures: usize,
    /// Share of hosts deployed first (canary). Default 10.
    pub canary_percent: u32,
    /// known_hosts file; `None` means the CLI's default, `~/.ssh/known_hosts`.
    pub known_hosts: Option<PathBuf>,
    /// Trust and record keys of hosts not yet in known_hosts. Default off.
    pub accept_new_host_keys: bool,
    /// Seconds to wait for an SSH connection. Default 10.
    pub connect_timeout_secs: u64,
    /// When a custom runner cannot be built, run its hosts' tasks over SSH instead of
    /// stopping. Default off.
    pub fallback_ssh: bool,
    /// Largest packed runner allowed, in bytes; `None` means no limit.
    pub binary_size_limit: Option<u64>,
    /// Target triple for hosts that name none (`targets.default_arch`).
    pub default_target: Option<Triple>,
    /// Use cargo-zigbuild for cross-compilation (no effect yet: runners are prebuilt).
    pub use_zigbuild: bool,
    /// Optimisation of custom runners; `None`: the prebuilt runners' (min-size).
    pub optimization_level: Option<OptimizationLevel>,
    /// Strip custom runners; `None`: strip unless the level keeps debug info.
    pub strip_symbols: Option<bool>,
    /// `ANSIBLE_FORCE_HANDLERS`: a play's default `force_handlers`, as
    /// `--force-handlers` sets it. Default off.
    pub force_handlers: bool,
    /// `ANSIBLE_ERROR_ON_MISSING_HANDLER`: a notification of a handler that does not
    /// exist ends the run (true) or is warned about. Default on.
    pub error_on_missing_handler: bool,
    /// The config file that was read, if any.
    pub source: Option<PathBuf>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            output_dir: PathBuf::from("./target/deploy"),
            cache_dir: None,
            parallel: 64,
            timeout_secs: 120,
            verify: false,
            strategy: StrategyKind::Parallel,
            batch_size: 5,
            max_failures: 0,
            canary_percent: 10,
            known_hosts: None,
            accept_new_host_keys: false,
            connect_timeout_secs: 10,
            fallback_ssh: false,
            binary_size_limit: None,
            default_target: None,
            use_zigbuild: false,
            optimization_level: None,
            strip_symbols: None,
            force_handlers: false,
            error_on_missing_handler: true,
            source: None,
        }
    }
}

impl Settings {
    /// The strategy with its parameters, as [`crate::remote`] runs it.
    pub fn remote_strategy(&self) -> Strategy {
        match self.strategy {
            StrategyKind::Parallel => Strategy::Parallel,
            StrategyKind::Rolling => Strategy::Rolling {
                batch: self.batch_size,
                max_failures: self.max_failures,
            },
            StrategyKind::Canary => Strategy::Canary {
                percent: self.canary_percent,
            },
            StrategyKind::BlueGreen => Strategy::BlueGreen,
            StrategyKind::Ssh => Strategy::Ssh,
        }
    }
}

/// Why the config file or environment could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A file given explicitly (`--config`) is not there.
    #[error("config file {} does not exist", .path.display())]
    NotFound {
        /// The file.
        path: PathBuf,
    },
    /// A config file exists but could not be read.
    #[error("cannot read config file {}: {source}", .path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not TOML.
    #[error("{}:{line}: not valid TOML: {reason}", .path.display())]
    Syntax {
        /// The file.
        path: PathBuf,
        /// 1-based line of the problem.
        line: usize,
        /// What the parser said.
        reason: String,
    },
    /// A section or key this version does not know (the reason lists the known ones),
    /// or a known key with a value of the wrong type or out of range.
    #[error("{}:{line}: `{key}`: {reason}", .path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// 1-based line of the key (unknown) or of the value (bad).
        line: usize,
        /// Dotted key, e.g. `deployment.paralel_jobs`.
        key: String,
        /// What is wrong with it.
        reason: String,
    },
    /// An environment variable with a value that cannot be used.
    #[error("environment variable {var}={value:?}: {reason}")]
    BadEnv {
        /// The variable.
        var: String,
        /// Its value.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// Reads the config file and environment over the built-in defaults.
///
/// `explicit` (from `--config`) replaces the file search and must exist. `env` looks a
/// variable up; the CLI passes `&|k| std::env::var(k).ok()`, tests pass a fixed map.
/// `HOME` is taken from `env` too, for `~/.rustle/config.toml` and `~/` in paths.
pub fn load(
    explicit: Option<&Path>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Settings, ConfigError> {
    load_in(Path::new("."), explicit, env)
}

/// [`load`] with `dir` standing for the working directory, so tests need not `cd`.
fn load_in(
    dir: &Path,
    explicit: Option<&Path>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Settings, ConfigError> {
    let home = env("HOME").filter(|h| !h.is_empty());
    let mut settings = Settings::default();
    if let Some((path, text)) = find_file(dir, explicit, home.as_deref())? {
        apply_file(&mut settings, &path, &text, home.as_deref())?;
        settings.source = Some(path);
    }
    apply_env(&mut settings, env, home.as_deref())?;
    Ok(settings)
}

/// The first config file that exists, with its text.
fn find_file(
    dir: &Path,
    explicit: Option<&Path>,
    home: Option<&str>,
) -> Result<Option<(PathBuf, String)>, ConfigError> {
    let read = |path: PathBuf| match std::fs::read_to_string(&path) {
        Ok(text) => Ok(Some((path, text))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(ConfigError::Read { path, source }),
    };
    if let Some(path) = explicit {
        // Asked for by name: its absence is a mistake, not a reason to use defaults.
        return match read(path.to_path_buf())? {
            Some(found) => Ok(Some(found)),
            None => Err(ConfigError::NotFound {
                path: path.to_path_buf(),
            }),
        };
    }
    let candidates = [
        Some(dir.join(LOCAL_FILE)),
        home.map(|h| Path::new(h).join(HOME_FILE)),
    ];
    for path in candidates.into_iter().flatten() {
        // A file that exists but cannot be read is an error rather than skipped, so a
        // permissions problem never silently swaps in another file's settings.
        if let Some(found) = read(path)? {
            return Ok(Some(found));
        }
    }
    Ok(None)
}

/// The config file as written: every section and key optional, none unknown. Checks
/// that need no outside knowledge (ranges, names) happen while reading, so their
/// errors carry the key's path and the value's line like type errors do.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct FileConfig {
    deployment: Deployment,
    compilation: Compilation,
    targets: Targets,
    cross_compilation: CrossCompilation,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields, expecting = "a table")]
struct Deployment {
    // Paths are expanded afterwards (HOME comes from the environment): spanned for
    // the line of an error then.
    cache_dir: Option<Spanned<String>>,
    output_dir: Option<Spanned<String>>,
    #[serde(deserialize_with = "at_least_one")]
    parallel_jobs: Option<usize>,
    #[serde(deserialize_with = "at_least_one")]
    default_timeout_secs: Option<u64>,
    verify_deployments: Option<bool>,
    strategy: Option<StrategyKind>,
    #[serde(deserialize_with = "at_least_one")]
    batch_size: Option<usize>,
    max_failures: Option<usize>,
    #[serde(deserialize_with = "percent")]
    canary_percentage: Option<u32>,
    known_hosts: Option<Spanned<String>>,
    accept_new_host_keys: Option<bool>,
    #[serde(deserialize_with = "at_least_one")]
    connect_timeout_secs: Option<u64>,
    fallback_ssh: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields, expecting = "a table")]
struct Compilation {
    #[serde(deserialize_with = "parsed")]
    optimization_level: Option<OptimizationLevel>,
    strip_symbols: Option<bool>,
    // Accepted and type-checked, without effect yet (see the module docs).
    #[serde(rename = "static_linking")]
    _static_linking: Option<bool>,
    #[serde(rename = "compression")]
    _compression: Option<bool>,
    #[serde(deserialize_with = "mebibytes")]
    binary_size_limit_mb: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields, expecting = "a table")]
struct Targets {
    // Checked against the runner matrix now, so a typo is reported with its file and
    // line instead of later as a bare "unsupported target".
    #[serde(deserialize_with = "parsed")]
    default_arch: Option<Triple>,
    #[serde(rename = "supported_targets")]
    _supported_targets: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields, expecting = "a table")]
struct CrossCompilation {
    use_zigbuild: Option<bool>,
    #[serde(rename = "toolchain_auto_install")]
    _toolchain_auto_install: Option<bool>,
}

fn at_least_one<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + PartialOrd + From<u8>,
{
    let n = T::deserialize(d)?;
    if n < T::from(1) {
        return Err(D::Error::custom("must be at least 1"));
    }
    Ok(Some(n))
}

fn percent<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    match u32::deserialize(d)? {
        p if p > 100 => Err(D::Error::custom("must be between 0 and 100")),
        p => Ok(Some(p)),
    }
}

/// Whole MiB as bytes.
fn mebibytes<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    let mb: Option<u64> = at_least_one(d)?;
    mb.map(|mb| {
        mb.checked_mul(MIB)
            .ok_or_else(|| D::Error::custom("too large"))
    })
    .transpose()
}

/// A string read with the type's `FromStr`, whose message is the error's.
fn parsed<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: FromStr<Err: fmt::Display>,
{
    String::deserialize(d)?
        .parse()
        .map(Some)
        .map_err(D::Error::custom)
}

/// `~` and `~/...` expanded with `home`; anything else as written.
fn expand_path(s: &str, home: Option<&str>) -> Result<PathBuf, String> {
    if s.is_empty() {
        return Err("must not be empty".into());
    }
    let rest = match s.strip_prefix('~') {
        Some("") => "",
        Some(r) if r.starts_with('/') => r.trim_start_matches('/'),
        // `~user/...` is not expanded: we would need the password database for it.
        _ => return Ok(PathBuf::from(s)),
    };
    match home {
        Some(h) => Ok(Path::new(h).join(rest)),
        None => Err(format!("{s:?} starts with ~ but HOME is not set")),
    }
}

/// The 1-based line of byte `offset` in `text`.
fn line_of(text: &str, offset: usize) -> usize {
    text.bytes().take(offset).filter(|&b| b == b'\n').count() + 1
}

/// Parses one config file's text into `s`.
fn apply_file(
    s: &mut Settings,
    path: &Path,
    text: &str,
    home: Option<&str>,
) -> Result<(), ConfigError> {
    let invalid =
        |key: String, span: Option<std::ops::Range<usize>>, reason: String| ConfigError::Invalid {
            path: path.to_path_buf(),
            line: span.map_or(1, |s| line_of(text, s.start)),
            key,
            reason,
        };
    let document = toml::Deserializer::parse(text).map_err(|e| {
        let line = e.span().map_or(1, |s| line_of(text, s.start));
        // Parser messages such as "duplicate key" do not say which key; the line does.
        let reason = match text.lines().nth(line - 1).map(str::trim) {
            Some(t) if !t.is_empty() => format!("{} in `{t}`", e.message()),
            _ => e.message().to_string(),
        };
        ConfigError::Syntax {
            path: path.to_path_buf(),
            line,
            reason,
        }
    })?;
    let file: FileConfig = serde_path_to_error::deserialize(document).map_err(|e| {
        // Inside a `Spanned` value the path goes on into toml's private field names,
        // which are not the user's key.
        let path = e.path().to_string();
        let key = path.split(".$__").next().unwrap_or_default().to_string();
        let inner = e.into_inner();
        invalid(key, inner.span(), inner.message().to_string())
    })?;
    let path_of = |key: &str, value: Option<Spanned<String>>| {
        value
            .map(|v| {
                expand_path(v.get_ref(), home)
                    .map_err(|reason| invalid(format!("deployment.{key}"), Some(v.span()), reason))
            })
            .transpose()
    };
    let d = file.deployment;
    s.cache_dir = path_of("cache_dir", d.cache_dir)?.or(s.cache_dir.take());
    if let Some(v) = path_of("output_dir", d.output_dir)? {
        s.output_dir = v;
    }
    s.known_hosts = path_of("known_hosts", d.known_hosts)?.or(s.known_hosts.take());
    s.parallel = d.parallel_jobs.unwrap_or(s.parallel);
    s.timeout_secs = d.default_timeout_secs.unwrap_or(s.timeout_secs);
    s.verify = d.verify_deployments.unwrap_or(s.verify);
    s.strategy = d.strategy.unwrap_or(s.strategy);
    s.batch_size = d.batch_size.unwrap_or(s.batch_size);
    s.max_failures = d.max_failures.unwrap_or(s.max_failures);
    s.canary_percent = d.canary_percentage.unwrap_or(s.canary_percent);
    s.accept_new_host_keys = d.accept_new_host_keys.unwrap_or(s.accept_new_host_keys);
    s.connect_timeout_secs = d.connect_timeout_secs.unwrap_or(s.connect_timeout_secs);
    s.fallback_ssh = d.fallback_ssh.unwrap_or(s.fallback_ssh);
    let c = file.compilation;
    s.optimization_level = c.optimization_level.or(s.optimization_level);
    s.strip_symbols = c.strip_symbols.or(s.strip_symbols);
    s.binary_size_limit = c.binary_size_limit_mb.or(s.binary_size_limit);
    s.default_target = file.targets.default_arch.or(s.default_target);
    s.use_zigbuild = file
        .cross_compilation
        .use_zigbuild
        .unwrap_or(s.use_zigbuild);
    Ok(())
}

/// Applies the environment variables over the file's settings.
fn apply_env(
    s: &mut Settings,
    env: &dyn Fn(&str) -> Option<String>,
    home: Option<&str>,
) -> Result<(), ConfigError> {
    // Empty counts as unset, as clap treats `env` values.
    let get = |var: &str| env(var).filter(|v| !v.is_empty());
    let bad = |var: &str, value: &str| {
        let (var, value) = (var.to_string(), value.to_string());
        move |reason: String| ConfigError::BadEnv { var, value, reason }
    };
    if let Some(v) = get(ENV_CACHE_DIR) {
        s.cache_dir = Some(expand_path(&v, home).map_err(bad(ENV_CACHE_DIR, &v))?);
    }
    if let Some(v) = get(ENV_BINARY_SIZE_LIMIT) {
        s.binary_size_limit = Some(parse_size(&v).map_err(bad(ENV_BINARY_SIZE_LIMIT, &v))?);
    }
    if let Some(v) = get(ENV_TIMEOUT) {
        let secs = match v.trim().parse::<u64>() {
            Ok(0) => Err("must be at least 1".to_string()),
            Ok(n) => Ok(n),
            Err(_) => Err("expected a whole number of seconds".to_string()),
        };
        s.timeout_secs = secs.map_err(bad(ENV_TIMEOUT, &v))?;
    }
    if let Some(v) = get(ENV_ZIG) {
        s.use_zigbuild = parse_bool(&v).map_err(bad(ENV_ZIG, &v))?;
    }
    if let Some(v) = get(ENV_FORCE_HANDLERS) {
        s.force_handlers = parse_bool(&v).map_err(bad(ENV_FORCE_HANDLERS, &v))?;
    }
    if let Some(v) = get(ENV_ERROR_ON_MISSING_HANDLER) {
        s.error_on_missing_handler =
            parse_bool(&v).map_err(bad(ENV_ERROR_ON_MISSING_HANDLER, &v))?;
    }
    Ok(())
}

/// Ansible's boolean words: `true`/`false`, `1`/`0`, `yes`/`no`, `on`/`off`, `y`/`n`,
/// `t`/`f`, any case.
fn parse_bool(s: &str) -> Result<bool, String> {
    rustle_runner::modules::args::strict_bool(s)
        .ok_or_else(|| "expected true or false (also 1/0, yes/no, on/off)".into())
}

/// A size in bytes: a whole number, optionally followed by a unit.
///
/// Units are binary, any case, with optional space before them: `B` = 1, `K`/`KB`/`KiB`
/// = 1024, `M`/`MB`/`MiB` = 1024², `G`/`GB`/`GiB` = 1024³. So `50M`, `50MB` and
/// `50 MiB` are all 52,428,800 bytes, the same as `binary_size_limit_mb = 50`. Zero is
/// refused: a limit no runner can meet is a mistake, and "no limit" is leaving it unset.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let digits_end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (digits, unit) = s.split_at(digits_end);
    let expected = || "expected bytes, or a number with K, M or G (e.g. 50M)".to_string();
    if digits.is_empty() {
        return Err(expected());
    }
    let n: u64 = digits.parse().map_err(|_| "too large".to_string())?;
    let scale: u64 = match unit.trim_start().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1024,
        "m" | "mb" | "mib" => MIB,
        "g" | "gb" | "gib" => 1024 * MIB,
        _ => return Err(expected()),
    };
    if n == 0 {
        return Err("must be greater than 0 (leave unset for no limit)".into());
    }
    n.checked_mul(scale).ok_or_else(|| "too large".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// A working directory and a HOME, both empty temporary directories.
    struct Env {
        dir: tempfile::TempDir,
        home: tempfile::TempDir,
        vars: HashMap<String, String>,
    }

    impl Env {
        fn new() -> Env {
            let home = tempfile::tempdir().unwrap();
            let mut vars = HashMap::new();
            vars.insert("HOME".into(), home.path().display().to_string());
            Env {
                dir: tempfile::tempdir().unwrap(),
                home,
                vars,
            }
        }
        fn var(mut self, k: &str, v: &str) -> Env {
            self.vars.insert(k.into(), v.into());
            self
        }
        fn local(self, text: &str) -> Env {
            std::fs::write(self.dir.path().join(LOCAL_FILE), text).unwrap();
            self
        }
        fn home_file(self, text: &str) -> Env {
            let p = self.home.path().join(HOME_FILE);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
            self
        }
        fn load(&self, explicit: Option<&Path>) -> Result<Settings, ConfigError> {
            load_in(self.dir.path(), explicit, &|k| self.vars.get(k).cloned())
        }
    }

    /// Loads `toml` as `./rustle-deploy.toml` with the environment `vars`.
    fn check(toml: &str, vars: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        let mut env = Env::new().local(toml);
        for (k, v) in vars {
            env = env.var(k, v);
        }
        env.load(None)
    }

    /// The settings `toml` gives, with `source` cleared for comparison.
    fn ok(toml: &str) -> Settings {
        let s = check(toml, &[]).unwrap();
        assert!(s.source.unwrap().ends_with(LOCAL_FILE));
        Settings { source: None, ..s }
    }

    #[test]
    fn defaults_without_file_or_env() {
        let s = Env::new().load(None).unwrap();
        assert_eq!(s, Settings::default());
        assert_eq!(s.output_dir, PathBuf::from("./target/deploy"));
        assert_eq!(
            (s.parallel, s.timeout_secs, s.connect_timeout_secs),
            (64, 120, 10)
        );
        assert_eq!((s.batch_size, s.max_failures, s.canary_percent), (5, 0, 10));
        assert_eq!(s.strategy, StrategyKind::Parallel);
        assert_eq!(s.remote_strategy(), Strategy::Parallel);
        // An empty file is allowed and changes nothing.
        assert_eq!(ok(""), Settings::default());
    }

    #[test]
    fn deployment_section() {
        let s = ok(r#"
[deployment]
cache_dir = "/var/cache/rustle"
output_dir = "out"
parallel_jobs = 8
default_timeout_secs = 300
verify_deployments = true
strategy = "rolling"
batch_size = 10
max_failures = 2
canary_percentage = 25
known_hosts = "/etc/ssh/known"
accept_new_host_keys = true
connect_timeout_secs = 3
fallback_ssh = true
"#);
        let want = Settings {
            output_dir: "out".into(),
            cache_dir: Some("/var/cache/rustle".into()),
            parallel: 8,
            timeout_secs: 300,
            verify: true,
            strategy: StrategyKind::Rolling,
            batch_size: 10,
            max_failures: 2,
            canary_percent: 25,
            known_hosts: Some("/etc/ssh/known".into()),
            accept_new_host_keys: true,
            connect_timeout_secs: 3,
            fallback_ssh: true,
            ..Settings::default()
        };
        assert_eq!(s, want);
        assert_eq!(
            s.remote_strategy(),
            Strategy::Rolling {
                batch: 10,
                max_failures: 2
            }
        );
    }

    #[test]
    fn every_strategy_name() {
        // The config file takes the command line's names.
        use clap::ValueEnum as _;
        for k in StrategyKind::value_variants() {
            let name = k.to_possible_value().unwrap();
            let s = ok(&format!(
                "[deployment]\nstrategy = \"{}\"\n",
                name.get_name()
            ));
            assert_eq!(s.strategy, *k);
        }
        let canary = ok("[deployment]\nstrategy = \"canary\"\ncanary_percentage = 30\n");
        assert_eq!(canary.remote_strategy(), Strategy::Canary { percent: 30 });
        let e = check("[deployment]\nstrategy = \"bluegreen\"\n", &[]).unwrap_err();
        assert!(e.to_string().contains("deployment.strategy"), "{e}");
        assert!(e.to_string().contains("blue-green"), "{e}");
    }

    #[test]
    fn compilation_section() {
        let s = ok(r#"
[compilation]
optimization_level = "release"
strip_symbols = true
static_linking = true
compression = true
binary_size_limit_mb = 50
"#);
        assert_eq!(
            s,
            Settings {
                binary_size_limit: Some(50 * 1024 * 1024),
                optimization_level: Some(OptimizationLevel::Release),
                strip_symbols: Some(true),
                ..Settings::default()
            }
        );
        let s = ok("[compilation]\noptimization_level = \"release_with_debug_info\"\n");
        assert_eq!(
            s.optimization_level,
            Some(OptimizationLevel::ReleaseWithDebugInfo)
        );
        let e = check("[compilation]\noptimization_level = \"fast\"\n", &[]).unwrap_err();
        assert!(e.to_string().contains("unknown optimization level"), "{e}");
        // Accepted keys are still type-checked.
        let e = check("[compilation]\nstrip_symbols = \"yes\"\n", &[]).unwrap_err();
        assert!(
            matches!(&e, ConfigError::Invalid { key, .. } if key == "compilation.strip_symbols"),
            "{e}"
        );
        let e = check("[compilation]\nbinary_size_limit_mb = 0\n", &[]).unwrap_err();
        assert!(e.to_string().contains("at least 1"), "{e}");
    }

    #[test]
    fn targets_and_cross_compilation_sections() {
        let s = ok(r#"
[targets]
default_arch = "aarch64-unknown-linux-gnu"
supported_targets = ["x86_64-unknown-linux-gnu", "aarch64-apple-darwin"]

[cross_compilation]
use_zigbuild = true
toolchain_auto_install = false
"#);
        assert_eq!(s.default_target, Some(Triple::Aarch64LinuxMusl));
        assert!(s.use_zigbuild);
        let e = check("[targets]\ndefault_arch = \"riscv64\"\n", &[]).unwrap_err();
        assert!(
            matches!(&e, ConfigError::Invalid { key, line: 2, .. } if key == "targets.default_arch"),
            "{e}"
        );
        let e = check("[targets]\nsupported_targets = [1, 2]\n", &[]).unwrap_err();
        assert!(e.to_string().contains("targets.supported_targets"), "{e}");
    }

    #[test]
    fn spec_example_is_accepted() {
        let s = ok(r#"
[deployment]
cache_dir = "~/.rustle/cache"
output_dir = "./target/deploy"
parallel_jobs = 8
default_timeout_secs = 120
verify_deployments = true

[compilation]
optimization_level = "release"
strip_symbols = true
static_linking = true
compression = true
binary_size_limit_mb = 50

[targets]
default_arch = "x86_64-unknown-linux-gnu"
supported_targets = [
    "x86_64-unknown-linux-gnu",
    "aarch64-unknown-linux-gnu",
    "x86_64-apple-darwin",
    "aarch64-apple-darwin"
]

[cross_compilation]
use_zigbuild = true
toolchain_auto_install = true
"#);
        assert_eq!(s.parallel, 8);
        assert!(s.verify && s.use_zigbuild);
        assert!(s.cache_dir.unwrap().ends_with(".rustle/cache"));
    }

    #[test]
    fn tilde_is_home() {
        let env = Env::new().local("[deployment]\nknown_hosts = \"~/kh\"\ncache_dir = \"~\"\n");
        let s = env.load(None).unwrap();
        assert_eq!(s.known_hosts, Some(env.home.path().join("kh")));
        assert_eq!(s.cache_dir, Some(env.home.path().to_path_buf()));
        // Without HOME, `~` cannot be expanded: an error, not a directory named "~".
        let mut env = env;
        env.vars.remove("HOME");
        let e = env.load(None).unwrap_err();
        assert!(e.to_string().contains("HOME is not set"), "{e}");
    }

    #[test]
    fn env_overrides_file() {
        let file = "[deployment]\ndefault_timeout_secs = 30\ncache_dir = \"/file\"\n\
                    [compilation]\nbinary_size_limit_mb = 50\n\
                    [cross_compilation]\nuse_zigbuild = true\n";
        let s = check(file, &[]).unwrap();
        assert_eq!(s.timeout_secs, 30);
        let s = check(
            file,
            &[
                (ENV_TIMEOUT, "45"),
                (ENV_CACHE_DIR, "/env"),
                (ENV_BINARY_SIZE_LIMIT, "1M"),
                (ENV_ZIG, "off"),
            ],
        )
        .unwrap();
        assert_eq!(s.timeout_secs, 45);
        assert_eq!(s.cache_dir, Some(PathBuf::from("/env")));
        assert_eq!(s.binary_size_limit, Some(1024 * 1024));
        assert!(!s.use_zigbuild);
        // Empty means unset: the file's value stands.
        let s = check(file, &[(ENV_TIMEOUT, "")]).unwrap();
        assert_eq!(s.timeout_secs, 30);
    }

    #[test]
    fn bad_type_names_key_file_and_line() {
        let e = check("\n[deployment]\nparallel_jobs = \"many\"\n", &[]).unwrap_err();
        let ConfigError::Invalid {
            path,
            line,
            key,
            reason,
        } = &e
        else {
            panic!("{e:?}")
        };
        assert!(path.ends_with(LOCAL_FILE));
        assert_eq!((*line, key.as_str()), (3, "deployment.parallel_jobs"));
        assert!(reason.contains("invalid type"), "{reason}");
        let msg = e.to_string();
        assert!(
            msg.contains(LOCAL_FILE) && msg.contains("deployment.parallel_jobs"),
            "{msg}"
        );

        for (text, key) in [
            (
                "[deployment]\nparallel_jobs = 0\n",
                "deployment.parallel_jobs",
            ),
            (
                "[deployment]\nmax_failures = -1\n",
                "deployment.max_failures",
            ),
            (
                "[deployment]\ncanary_percentage = 101\n",
                "deployment.canary_percentage",
            ),
            (
                "[deployment]\nverify_deployments = 1\n",
                "deployment.verify_deployments",
            ),
            ("[deployment]\noutput_dir = \"\"\n", "deployment.output_dir"),
            ("[deployment]\ncache_dir = 3\n", "deployment.cache_dir"),
            (
                "[compilation]\nbinary_size_limit_mb = 99999999999999\n",
                "compilation.binary_size_limit_mb",
            ),
            ("deployment = 3\n", "deployment"),
            (
                "[cross_compilation]\nuse_zigbuild = \"yes\"\n",
                "cross_compilation.use_zigbuild",
            ),
        ] {
            let e = check(text, &[]).unwrap_err();
            assert!(
                matches!(&e, ConfigError::Invalid { key: k, .. } if k == key),
                "{text}: {e}"
            );
        }
    }

    #[test]
    fn unknown_keys_and_sections() {
        let e = check("[deployment]\nparallel_jobs = 2\nparalel_jobs = 3\n", &[]).unwrap_err();
        let ConfigError::Invalid {
            line, key, reason, ..
        } = &e
        else {
            panic!("{e:?}")
        };
        assert_eq!((*line, key.as_str()), (3, "deployment.paralel_jobs"));
        // The known keys are listed, so the fix is one look away.
        assert!(
            reason.contains("unknown field") && reason.contains("parallel_jobs"),
            "{reason}"
        );
        // The first problem in the file is the one reported, an unknown key as a bad value.
        let e = check("[deployment]\nzzz = 1\nparallel_jobs = \"x\"\n", &[]).unwrap_err();
        assert!(
            matches!(&e, ConfigError::Invalid { key, line: 2, .. } if key == "deployment.zzz"),
            "{e}"
        );

        let e = check("[deploy]\nparallel_jobs = 2\n", &[]).unwrap_err();
        assert!(
            matches!(&e, ConfigError::Invalid { key, line: 1, reason, .. }
                if key == "deploy" && reason.contains("unknown field") && reason.contains("deployment")),
            "{e}"
        );
        let e = check("[targets.extra]\nx = 1\n", &[]).unwrap_err();
        assert!(
            matches!(&e, ConfigError::Invalid { key, reason, .. }
                if key == "targets.extra" && reason.contains("unknown field")),
            "{e}"
        );
    }

    #[test]
    fn syntax_error_gives_line() {
        let e = check("[deployment]\n\nparallel_jobs = = 3\n", &[]).unwrap_err();
        assert!(matches!(&e, ConfigError::Syntax { line: 3, .. }), "{e:?}");
        assert!(e.to_string().contains(LOCAL_FILE), "{e}");
    }

    #[test]
    fn bad_env_values_name_the_variable() {
        for (var, value) in [
            (ENV_TIMEOUT, "soon"),
            (ENV_TIMEOUT, "0"),
            (ENV_TIMEOUT, "-5"),
            (ENV_BINARY_SIZE_LIMIT, "50X"),
            (ENV_ZIG, "maybe"),
        ] {
            let e = check("", &[(var, value)]).unwrap_err();
            assert!(
                matches!(&e, ConfigError::BadEnv { var: v, value: val, .. } if v == var && val == value),
                "{var}={value}: {e:?}"
            );
            assert!(e.to_string().contains(var), "{e}");
        }
        // An env error is reported even with no config file at all.
        let e = Env::new().var(ENV_ZIG, "2").load(None).unwrap_err();
        assert!(matches!(e, ConfigError::BadEnv { .. }));
    }

    #[test]
    fn size_limit_parsing() {
        const M: u64 = 1024 * 1024;
        for (text, want) in [
            ("1", 1),
            ("52428800", 50 * M),
            ("50M", 50 * M),
            ("50MB", 50 * M),
            ("50mb", 50 * M),
            ("50 MiB", 50 * M),
            (" 7b ", 7),
            ("2K", 2048),
            ("2kb", 2048),
            ("1G", 1024 * M),
            ("3GiB", 3 * 1024 * M),
        ] {
            assert_eq!(parse_size(text), Ok(want), "{text}");
        }
        for bad in [
            "",
            "M",
            "0",
            "0M",
            "-5",
            "1.5M",
            "50X",
            "50 M B",
            "99999999999G",
            "1e6",
        ] {
            assert!(parse_size(bad).is_err(), "{bad:?}");
        }
        let s = check("", &[(ENV_BINARY_SIZE_LIMIT, "50MB")]).unwrap();
        assert_eq!(s.binary_size_limit, Some(50 * M));
    }

    #[test]
    fn first_file_found_wins_without_merging() {
        let home = "[deployment]\nparallel_jobs = 3\n";
        let local = "[deployment]\ndefault_timeout_secs = 9\n";
        // Only the home file: it is used.
        let env = Env::new().home_file(home);
        let s = env.load(None).unwrap();
        assert_eq!(s.parallel, 3);
        assert_eq!(s.source, Some(env.home.path().join(HOME_FILE)));
        // Both: the local file alone, so parallel is the default, not the home file's 3.
        let env = env.local(local);
        let s = env.load(None).unwrap();
        assert_eq!((s.parallel, s.timeout_secs), (64, 9));
        assert_eq!(s.source, Some(env.dir.path().join(LOCAL_FILE)));
        // An explicit file replaces both.
        let explicit = env.dir.path().join("other.toml");
        std::fs::write(&explicit, "[deployment]\nbatch_size = 7\n").unwrap();
        let s = env.load(Some(&explicit)).unwrap();
        assert_eq!((s.parallel, s.timeout_secs, s.batch_size), (64, 120, 7));
        assert_eq!(s.source.as_deref(), Some(explicit.as_path()));
    }

    #[test]
    fn missing_explicit_file_is_an_error() {
        let env = Env::new().local("");
        let missing = env.dir.path().join("nope.toml");
        let e = env.load(Some(&missing)).unwrap_err();
        assert!(matches!(&e, ConfigError::NotFound { path } if *path == missing));
        assert!(e.to_string().contains("nope.toml"), "{e}");
    }

    #[test]
    fn unreadable_file_is_an_error_not_skipped() {
        // A directory where the local file should be cannot be read.
        let env = Env::new().home_file("[deployment]\nparallel_jobs = 3\n");
        std::fs::create_dir(env.dir.path().join(LOCAL_FILE)).unwrap();
        let e = env.load(None).unwrap_err();
        assert!(matches!(e, ConfigError::Read { .. }), "{e:?}");
    }
}
