//! OpenSSH client configuration (`~/.ssh/config`): the subset a deploy needs to reach
//! hosts the way `ssh` (and Ansible, which runs `ssh`) would.
//!
//! Precedence, as with Ansible over OpenSSH: inventory variables (`ansible_port`,
//! `ansible_user`, `ansible_ssh_private_key_file`) override the ssh config, which
//! overrides our defaults (port 22, the local user, the default identities). The host
//! looked up in the config is `ansible_host` (or the inventory name), because that is
//! the destination Ansible hands to `ssh`; so `HostName` always applies.
//!
//! Semantics follow `ssh_config(5)`: keywords are case-insensitive, `key value` or
//! `key=value`, values may be quoted, `#` starts a comment; within the blocks that
//! match, the first value obtained for a keyword wins, except `IdentityFile`, which
//! accumulates. Supported: `Host` (patterns with `*`, `?`, `!negation`, several per
//! line), `Include` (relative paths under `~/.ssh`, globs), `HostName` (`%h`), `Port`,
//! `User`, `IdentityFile` (`~`, `%d %u %h %r %p %n %%`), `ProxyJump`, `ConnectTimeout`,
//! `ServerAliveInterval`, `UserKnownHostsFile`. Other keywords are ignored; `Match`
//! blocks and `ProxyCommand` are skipped with a note (see [`SshConfig::notes`]).
//!
//! Differences from OpenSSH, on purpose or for now: host patterns match
//! case-insensitively; a `Host` line inside an included file only governs the rest of
//! that file (OpenSSH lets it leak into the including file); a jump host's own
//! `ProxyJump` is not followed; `ServerAliveInterval` is parsed but not applied yet.

use crate::ssh::Target;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

/// OpenSSH's limit on nested `Include`s; beyond it a loop is assumed.
const MAX_INCLUDE_DEPTH: usize = 16;

/// Why an ssh config could not be used.
#[derive(Debug, thiserror::Error)]
pub enum SshConfigError {
    /// The file (or an included one) exists but cannot be read.
    #[error("cannot read ssh config {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A line is malformed.
    #[error("{path} line {line}: {reason}")]
    Syntax {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        reason: String,
    },
}

/// One hop of a `ProxyJump` chain: `[user@]host[:port]`. `host` is itself looked up in
/// the ssh config (as `ssh -J` does), so it may be an alias.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JumpHost {
    /// The login user, when given.
    pub user: Option<String>,
    /// The host (or alias).
    pub host: String,
    /// The port, when given.
    pub port: Option<u16>,
}

/// What the ssh config says about one host; `None`/empty where it says nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostSettings {
    /// `HostName`, tokens expanded.
    pub hostname: Option<String>,
    /// `Port`.
    pub port: Option<u16>,
    /// `User`.
    pub user: Option<String>,
    /// Every `IdentityFile` of the matching blocks, in order, `~` and tokens expanded.
    pub identity_files: Vec<PathBuf>,
    /// `ProxyJump`, first hop first (empty for none or `ProxyJump none`).
    pub proxy_jump: Vec<JumpHost>,
    /// `ConnectTimeout`.
    pub connect_timeout: Option<Duration>,
    /// `ServerAliveInterval`.
    pub server_alive_interval: Option<Duration>,
    /// The first `UserKnownHostsFile` (`none` becomes `/dev/null`).
    pub known_hosts: Option<PathBuf>,
}

/// Which connection settings the inventory gave explicitly: those win over the ssh
/// config in [`SshConfig::apply`].
#[derive(Debug, Clone, Copy, Default)]
pub struct Explicit {
    /// `ansible_port` was set.
    pub port: bool,
    /// `ansible_user` was set.
    pub user: bool,
    /// `ansible_ssh_private_key_file` was set.
    pub identity: bool,
    /// The known_hosts file was chosen on the command line.
    pub known_hosts: bool,
    /// The connect timeout was chosen on the command line.
    pub connect_timeout: bool,
}

/// A supported keyword's value, checked when the file is read so that errors name
/// the line.
#[derive(Debug, Clone)]
enum Setting {
    HostName(String),
    Port(u16),
    User(String),
    IdentityFile(String),
    /// Empty for `none`.
    ProxyJump(Vec<JumpHost>),
    ConnectTimeout(Duration),
    ServerAliveInterval(Duration),
    UserKnownHostsFile(String),
}

/// One pattern of a `Host` line.
#[derive(Debug, Clone)]
struct Pattern {
    glob: String,
    negated: bool,
}

/// A setting and the `Host` lines that must all match for it to apply (one per
/// level of `Include` nesting; none at the top of a file).
#[derive(Debug, Clone)]
struct Directive {
    setting: Setting,
    conditions: Vec<Vec<Pattern>>,
}

/// A parsed ssh client config.
#[derive(Debug, Clone, Default)]
pub struct SshConfig {
    directives: Vec<Directive>,
    notes: Vec<String>,
}

/// Where `~`, `%d`, `%u` and relative `Include`s point.
#[derive(Debug, Clone)]
struct Env {
    home: Option<PathBuf>,
    ssh_dir: PathBuf,
    local_user: String,
}

impl Env {
    fn current() -> Env {
        let home = std::env::var_os("HOME").map(PathBuf::from);
        let ssh_dir = home
            .as_ref()
            .map(|h| h.join(".ssh"))
            .unwrap_or_else(|| PathBuf::from(".ssh"));
        Env {
            home,
            ssh_dir,
            local_user: local_user(),
        }
    }
}

/// The local login name: `$USER`, else the passwd entry, else `root`.
pub fn local_user() -> String {
    std::env::var("USER")
        .ok()
        .filter(|u| !u.is_empty())
        .or_else(rustle_runner::facts::current_user)
        .unwrap_or_else(|| "root".into())
}

impl SshConfig {
    /// Reads the config at `path` (and what it includes).
    pub fn load(path: &Path) -> Result<SshConfig, SshConfigError> {
        let mut cfg = SshConfig::default();
        let text = std::fs::read_to_string(path).map_err(|source| SshConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        cfg.read(&text, path, &Env::current(), &[], 0)?;
        Ok(cfg)
    }

    /// Reads `~/.ssh/config`; a missing file (or no `$HOME`) is an empty config.
    pub fn load_default() -> Result<SshConfig, SshConfigError> {
        let Some(home) = std::env::var_os("HOME") else {
            return Ok(SshConfig::default());
        };
        let path = Path::new(&home).join(".ssh").join("config");
        if !path.exists() {
            return Ok(SshConfig::default());
        }
        SshConfig::load(&path)
    }

    /// `~/.ssh/config`, read once per process. A config that cannot be read or parsed
    /// counts as empty, and the error becomes the first of [`SshConfig::notes`], so
    /// callers that cannot fail still connect the way they would without it.
    pub fn shared() -> &'static SshConfig {
        static SHARED: OnceLock<SshConfig> = OnceLock::new();
        SHARED.get_or_init(|| {
            SshConfig::load_default().unwrap_or_else(|e| SshConfig {
                directives: Vec::new(),
                notes: vec![format!("ssh config ignored: {e}")],
            })
        })
    }

    /// Parses config text; `origin` names it in errors and anchors nothing else
    /// (relative `Include`s are under `~/.ssh`).
    pub fn parse(text: &str, origin: &Path) -> Result<SshConfig, SshConfigError> {
        let mut cfg = SshConfig::default();
        cfg.read(text, origin, &Env::current(), &[], 0)?;
        Ok(cfg)
    }

    /// What was skipped or not understood (`Match` blocks, `ProxyCommand`), one line
    /// each naming file and line, for the caller to show as warnings.
    pub fn notes(&self) -> &[String] {
        &self.notes
    }

    fn read(
        &mut self,
        text: &str,
        path: &Path,
        env: &Env,
        outer: &[Vec<Pattern>],
        depth: usize,
    ) -> Result<(), SshConfigError> {
        let syntax = |line: usize, reason: String| SshConfigError::Syntax {
            path: path.to_path_buf(),
            line,
            reason,
        };
        let mut conditions: Vec<Vec<Pattern>> = outer.to_vec();
        // Inside a `Match` block everything is skipped until the next Host/Match.
        let mut in_match = false;
        for (index, raw) in text.lines().enumerate() {
            let line = index + 1;
            let Some((keyword, args)) = split_line(raw).map_err(|r| syntax(line, r))? else {
                continue;
            };
            let keyword = keyword.to_ascii_lowercase();
            match keyword.as_str() {
                "host" => {
                    in_match = false;
                    if args.is_empty() {
                        return Err(syntax(line, "Host needs at least one pattern".into()));
                    }
                    let patterns = args
                        .iter()
                        .map(|a| match a.strip_prefix('!') {
                            Some(rest) => Pattern {
                                glob: rest.to_ascii_lowercase(),
                                negated: true,
                            },
                            None => Pattern {
                                glob: a.to_ascii_lowercase(),
                                negated: false,
                            },
                        })
                        .collect();
                    conditions = outer.to_vec();
                    conditions.push(patterns);
                    continue;
                }
                "match" => {
                    in_match = true;
                    self.notes.push(format!(
                        "{} line {line}: Match blocks are not supported; skipped up to the next Host or Match",
                        path.display()
                    ));
                    continue;
                }
                _ if in_match => continue,
                _ => {}
            }
            let first = || {
                args.first()
                    .cloned()
                    .ok_or_else(|| syntax(line, format!("{keyword} needs a value")))
            };
            let setting =
                match keyword.as_str() {
                    "include" => {
                        if args.is_empty() {
                            return Err(syntax(line, "Include needs a file".into()));
                        }
                        if depth >= MAX_INCLUDE_DEPTH {
                            return Err(syntax(
                                line,
                                format!("Include nested deeper than {MAX_INCLUDE_DEPTH} (a loop?)"),
                            ));
                        }
                        for arg in &args {
                            let expanded = expand_tilde(arg, env.home.as_deref());
                            let pattern = if expanded.is_absolute() {
                                expanded
                            } else {
                                env.ssh_dir.join(expanded)
                            };
                            for file in glob(&pattern) {
                                let text = std::fs::read_to_string(&file).map_err(|source| {
                                    SshConfigError::Read {
                                        path: file.clone(),
                                        source,
                                    }
                                })?;
                                self.read(&text, &file, env, &conditions, depth + 1)?;
                            }
                        }
                        continue;
                    }
                    "hostname" => Setting::HostName(first()?),
                    "port" => {
                        let v = first()?;
                        Setting::Port(
                            v.parse::<u16>()
                                .ok()
                                .filter(|p| *p != 0)
                                .ok_or_else(|| syntax(line, format!("bad port {v:?}")))?,
                        )
                    }
                    "user" => Setting::User(first()?),
                    "identityfile" => Setting::IdentityFile(first()?),
                    "proxyjump" => {
                        let v = first()?;
                        Setting::ProxyJump(parse_jumps(&v).map_err(|r| syntax(line, r))?)
                    }
                    "connecttimeout" => {
                        let v = first()?;
                        Setting::ConnectTimeout(
                            parse_time(&v)
                                .ok_or_else(|| syntax(line, format!("bad ConnectTimeout {v:?}")))?,
                        )
                    }
                    "serveraliveinterval" => {
                        let v = first()?;
                        Setting::ServerAliveInterval(parse_time(&v).ok_or_else(|| {
                            syntax(line, format!("bad ServerAliveInterval {v:?}"))
                        })?)
                    }
                    "userknownhostsfile" => Setting::UserKnownHostsFile(first()?),
                    "proxycommand" => {
                        self.notes.push(format!(
                        "{} line {line}: ProxyCommand is not supported; ignored (use ProxyJump)",
                        path.display()
                    ));
                        continue;
                    }
                    // Everything else is for `ssh` itself (ciphers, forwarding, ...).
                    _ => continue,
                };
            self.directives.push(Directive {
                setting,
                conditions: conditions.clone(),
            });
        }
        Ok(())
    }

    /// What the config says for `host` (the destination as given to `ssh`).
    pub fn resolve(&self, host: &str) -> HostSettings {
        self.resolve_in(host, &Env::current())
    }

    fn resolve_in(&self, host: &str, env: &Env) -> HostSettings {
        let lowered = host.to_ascii_lowercase();
        let mut s = HostSettings::default();
        let mut identity_raw = Vec::new();
        let mut known_hosts_raw = None;
        let mut jump_set = false;
        for d in &self.directives {
            if !d
                .conditions
                .iter()
                .all(|patterns| host_matches(patterns, &lowered))
            {
                continue;
            }
            match &d.setting {
                Setting::HostName(v) => {
                    s.hostname.get_or_insert_with(|| v.clone());
                }
                Setting::Port(v) => {
                    s.port.get_or_insert(*v);
                }
                Setting::User(v) => {
                    s.user.get_or_insert_with(|| v.clone());
                }
                Setting::IdentityFile(v) => identity_raw.push(v.clone()),
                Setting::ProxyJump(v) => {
                    if !jump_set {
                        jump_set = true;
                        s.proxy_jump = v.clone();
                    }
                }
                Setting::ConnectTimeout(v) => {
                    s.connect_timeout.get_or_insert(*v);
                }
                Setting::ServerAliveInterval(v) => {
                    s.server_alive_interval.get_or_insert(*v);
                }
                Setting::UserKnownHostsFile(v) => {
                    known_hosts_raw.get_or_insert_with(|| v.clone());
                }
            }
        }
        // HostName's own %h is the destination; other tokens see the final values.
        let hostname = s
            .hostname
            .as_deref()
            .map(|h| expand_tokens(h, &Tokens::host_only(host)));
        let tokens = Tokens {
            alias: host,
            hostname: hostname.as_deref().unwrap_or(host),
            remote_user: s.user.as_deref().unwrap_or(&env.local_user),
            local_user: &env.local_user,
            port: s.port.unwrap_or(22),
            home: env.home.as_deref(),
        };
        let path = |raw: &str| expand_tilde(&expand_tokens(raw, &tokens), env.home.as_deref());
        s.identity_files = identity_raw.iter().map(|r| path(r)).collect();
        s.known_hosts = known_hosts_raw.map(|r| {
            if r.eq_ignore_ascii_case("none") {
                PathBuf::from("/dev/null")
            } else {
                path(&r)
            }
        });
        s.hostname = hostname;
        s
    }

    /// Applies the config to a target built from the inventory: `HostName` always
    /// (looked up by `t.address`), the rest only where `explicit` says the inventory
    /// or command line did not choose. Returns the `ProxyJump` chain for
    /// [`crate::ssh::connect_via`] (empty when there is none).
    #[must_use = "the jump hosts must be passed to ssh::connect_via"]
    pub fn apply(&self, t: &mut Target, explicit: Explicit) -> Vec<Target> {
        let s = self.resolve(&t.address);
        if let Some(h) = &s.hostname {
            t.address.clone_from(h);
        }
        if !explicit.port
            && let Some(p) = s.port
        {
            t.port = p;
        }
        if !explicit.user
            && let Some(u) = &s.user
        {
            t.user.clone_from(u);
        }
        if !explicit.identity && !s.identity_files.is_empty() {
            t.identity_files.clone_from(&s.identity_files);
        }
        if !explicit.known_hosts
            && let Some(k) = &s.known_hosts
        {
            t.known_hosts.clone_from(k);
        }
        if !explicit.connect_timeout
            && let Some(c) = s.connect_timeout
        {
            t.connect_timeout = c;
        }
        self.jump_targets(&s.proxy_jump, t)
    }

    /// Targets for a `ProxyJump` chain leading to `to`. Each hop is looked up in the
    /// config like any destination; what it leaves open comes from the hop itself,
    /// then OpenSSH's defaults (port 22, the local user), except that a hop without
    /// its own `IdentityFile` tries `to`'s keys, and every hop is checked against
    /// `to`'s known_hosts file.
    pub fn jump_targets(&self, hops: &[JumpHost], to: &Target) -> Vec<Target> {
        hops.iter()
            .map(|hop| {
                let s = self.resolve(&hop.host);
                Target {
                    name: format!("{} (jump host {})", to.name, hop.host),
                    address: s.hostname.clone().unwrap_or_else(|| hop.host.clone()),
                    port: hop.port.or(s.port).unwrap_or(22),
                    user: hop.user.clone().or(s.user).unwrap_or_else(local_user),
                    identity_files: if s.identity_files.is_empty() {
                        to.identity_files.clone()
                    } else {
                        s.identity_files
                    },
                    known_hosts: to.known_hosts.clone(),
                    global_known_hosts: to.global_known_hosts.clone(),
                    accept_new: to.accept_new,
                    connect_timeout: s.connect_timeout.unwrap_or(to.connect_timeout),
                }
            })
            .collect()
    }
}

/// Splits a line into keyword and arguments: `key value...` or `key=value...`, with
/// `"..."`/`'...'` quoting, `\` escapes, and `#` starting a comment at a word start.
/// `None` for blank and comment lines.
fn split_line(raw: &str) -> Result<Option<(String, Vec<String>)>, String> {
    let line = raw.trim();
    if line.is_empty() || line.starts_with('#') {
        return Ok(None);
    }
    let end = line
        .find(|c: char| c.is_whitespace() || c == '=')
        .unwrap_or(line.len());
    let (keyword, rest) = line.split_at(end);
    let rest = rest.trim_start();
    let rest = rest.strip_prefix('=').unwrap_or(rest);
    let mut args = Vec::new();
    let mut chars = rest.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        match chars.peek() {
            None | Some('#') => break,
            Some(_) => {}
        }
        let mut word = String::new();
        let mut quote: Option<char> = None;
        // The whitespace ending a word is consumed with it; that is harmless.
        while let Some(c) = chars.next() {
            match (quote, c) {
                (None, c) if c.is_whitespace() => break,
                (None, '"' | '\'') => quote = Some(c),
                (Some(q), c) if c == q => quote = None,
                (_, '\\') => word.push(chars.next().unwrap_or('\\')),
                (_, c) => word.push(c),
            }
        }
        if quote.is_some() {
            return Err("unterminated quote".into());
        }
        args.push(word);
    }
    Ok(Some((keyword.to_string(), args)))
}

/// Whether a `Host` line matches: some positive pattern matches and no negated one.
fn host_matches(patterns: &[Pattern], host: &str) -> bool {
    let mut matched = false;
    for p in patterns {
        if wildcard(&p.glob, host) {
            if p.negated {
                return false;
            }
            matched = true;
        }
    }
    matched
}

/// `*` and `?` glob matching, as OpenSSH's `match_pattern` (no `[...]` sets: a `[` is
/// written as fnmatch's `[[]`, a literal one). known_hosts patterns use it too.
pub(crate) fn wildcard(pattern: &str, text: &str) -> bool {
    rustle_runner::fnmatch::fnmatch(&pattern.replace('[', "[[]"), text)
}

/// Expands `*`/`?` in the file-name components of `pattern`, sorted like glob(3).
/// Nothing matching is no file, as for OpenSSH.
fn glob(pattern: &Path) -> Vec<PathBuf> {
    let mut found = vec![PathBuf::new()];
    for component in pattern.components() {
        let part = component.as_os_str().to_string_lossy();
        if !part.contains(['*', '?']) {
            for f in &mut found {
                f.push(component);
            }
            continue;
        }
        let mut next = Vec::new();
        for dir in &found {
            let Ok(entries) = std::fs::read_dir(dir) else {
                continue;
            };
            let mut names: Vec<String> = entries
                .filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                // As in a shell, `*` does not pick hidden files.
                .filter(|n| !n.starts_with('.') && wildcard(&part, n))
                .collect();
            names.sort();
            next.extend(names.into_iter().map(|n| dir.join(n)));
        }
        found = next;
    }
    found.into_iter().filter(|p| p.is_file()).collect()
}

/// Parses a `ProxyJump` value; `none` is no jump.
fn parse_jumps(value: &str) -> Result<Vec<JumpHost>, String> {
    if value.eq_ignore_ascii_case("none") {
        return Ok(Vec::new());
    }
    value.split(',').map(parse_jump).collect()
}

/// `[user@]host[:port]`, or `ssh://[user@]host[:port]`; IPv6 in brackets.
fn parse_jump(hop: &str) -> Result<JumpHost, String> {
    let bad = |why: &str| format!("bad ProxyJump hop {hop:?}: {why}");
    let spec = hop.trim();
    let spec = spec.strip_prefix("ssh://").unwrap_or(spec);
    let spec = spec.strip_suffix('/').unwrap_or(spec);
    let (user, hostport) = match spec.rsplit_once('@') {
        Some((u, h)) if !u.is_empty() => (Some(u.to_string()), h),
        Some(_) => return Err(bad("empty user")),
        None => (None, spec),
    };
    let (host, port) = if let Some(rest) = hostport.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or_else(|| bad("unclosed ["))?;
        match after.strip_prefix(':') {
            Some(p) => (host, Some(p)),
            None if after.is_empty() => (host, None),
            None => return Err(bad("junk after ]")),
        }
    } else {
        match hostport.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (hostport, None),
        }
    };
    if host.is_empty() {
        return Err(bad("no host"));
    }
    let port = match port {
        Some(p) => Some(
            p.parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| bad("bad port"))?,
        ),
        None => None,
    };
    Ok(JumpHost {
        user,
        host: host.to_string(),
        port,
    })
}

/// OpenSSH time values: seconds, or a sequence like `1m30s` (units s m h d w).
fn parse_time(value: &str) -> Option<Duration> {
    if value.is_empty() {
        return None;
    }
    let mut total: u64 = 0;
    let mut digits = String::new();
    let mut chars = value.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() {
            digits.push(c);
            if chars.peek().is_some() {
                continue;
            }
        }
        let n: u64 = digits.parse().ok()?;
        digits.clear();
        let unit = match c {
            '0'..='9' => 1,
            's' | 'S' => 1,
            'm' | 'M' => 60,
            'h' | 'H' => 3600,
            'd' | 'D' => 86_400,
            'w' | 'W' => 604_800,
            _ => return None,
        };
        total = total.checked_add(n.checked_mul(unit)?)?;
    }
    Some(Duration::from_secs(total))
}

/// Values for `%` tokens.
struct Tokens<'a> {
    alias: &'a str,
    hostname: &'a str,
    remote_user: &'a str,
    local_user: &'a str,
    port: u16,
    home: Option<&'a Path>,
}

impl<'a> Tokens<'a> {
    /// For `HostName`, where only `%h` (the destination) and `%%` make sense.
    fn host_only(host: &'a str) -> Tokens<'a> {
        Tokens {
            alias: host,
            hostname: host,
            remote_user: "",
            local_user: "",
            port: 22,
            home: None,
        }
    }
}

/// Expands `%%`, `%h`, `%n`, `%r`, `%u`, `%p`, `%d`; other tokens stay as written.
fn expand_tokens(s: &str, t: &Tokens<'_>) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('%') => out.push('%'),
            Some('h') => out.push_str(t.hostname),
            Some('n') => out.push_str(t.alias),
            Some('r') if !t.remote_user.is_empty() => out.push_str(t.remote_user),
            Some('u') if !t.local_user.is_empty() => out.push_str(t.local_user),
            Some('p') => out.push_str(&t.port.to_string()),
            Some('d') if t.home.is_some() => {
                out.push_str(&t.home.map(|h| h.to_string_lossy()).unwrap_or_default())
            }
            Some(other) => {
                out.push('%');
                out.push(other);
            }
            None => out.push('%'),
        }
    }
    out
}

/// `~` or `~/...` to the home directory; `~user` is left alone.
fn expand_tilde(s: &str, home: Option<&Path>) -> PathBuf {
    match (s, s.strip_prefix("~/"), home) {
        ("~", _, Some(h)) => h.to_path_buf(),
        (_, Some(rest), Some(h)) => h.join(rest),
        _ => PathBuf::from(s),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
    use super::*;

    fn env() -> Env {
        Env {
            home: Some(PathBuf::from("/home/me")),
            ssh_dir: PathBuf::from("/home/me/.ssh"),
            local_user: "me".into(),
        }
    }

    fn parse_in(text: &str, env: &Env) -> SshConfig {
        let mut cfg = SshConfig::default();
        cfg.read(text, Path::new("test_config"), env, &[], 0)
            .unwrap();
        cfg
    }

    /// Parses `text`, resolves `host`, and compares with `want`.
    fn check(text: &str, host: &str, want: HostSettings) {
        let got = parse_in(text, &env()).resolve_in(host, &env());
        assert_eq!(got, want, "host {host} in:\n{text}");
    }

    fn jump(user: Option<&str>, host: &str, port: Option<u16>) -> JumpHost {
        JumpHost {
            user: user.map(str::to_string),
            host: host.into(),
            port,
        }
    }

    const BASIC: &str = "\
# global comment
Host web-* !web-secret
    HostName %h.example.com
    Port 2222
    User deploy   # trailing comment
    IdentityFile ~/.ssh/web_%r_%h

Host db? db
  hostname=10.0.0.5
  PORT = 2200
  ProxyJump admin@bastion:2022,hop2

Host *
  User fallback
  Port 22
  IdentityFile \"~/.ssh/with space\"
  ConnectTimeout 1m30s
  ServerAliveInterval 15
  UserKnownHostsFile ~/.ssh/kh_%u other_file
";

    #[test]
    fn patterns_first_value_wins_and_identities_accumulate() {
        check(
            BASIC,
            "web-1",
            HostSettings {
                hostname: Some("web-1.example.com".into()),
                port: Some(2222),
                user: Some("deploy".into()),
                identity_files: vec![
                    "/home/me/.ssh/web_deploy_web-1.example.com".into(),
                    "/home/me/.ssh/with space".into(),
                ],
                proxy_jump: vec![],
                connect_timeout: Some(Duration::from_secs(90)),
                server_alive_interval: Some(Duration::from_secs(15)),
                known_hosts: Some("/home/me/.ssh/kh_me".into()),
            },
        );
    }

    #[test]
    fn negation_excludes_and_question_mark_matches_one_char() {
        let fallback = HostSettings {
            hostname: None,
            port: Some(22),
            user: Some("fallback".into()),
            identity_files: vec!["/home/me/.ssh/with space".into()],
            proxy_jump: vec![],
            connect_timeout: Some(Duration::from_secs(90)),
            server_alive_interval: Some(Duration::from_secs(15)),
            known_hosts: Some("/home/me/.ssh/kh_me".into()),
        };
        check(BASIC, "web-secret", fallback.clone());
        check(BASIC, "WEB-SECRET", fallback.clone());
        check(BASIC, "db12", fallback);
        let db = HostSettings {
            hostname: Some("10.0.0.5".into()),
            port: Some(2200),
            user: Some("fallback".into()),
            identity_files: vec!["/home/me/.ssh/with space".into()],
            proxy_jump: vec![
                jump(Some("admin"), "bastion", Some(2022)),
                jump(None, "hop2", None),
            ],
            connect_timeout: Some(Duration::from_secs(90)),
            server_alive_interval: Some(Duration::from_secs(15)),
            known_hosts: Some("/home/me/.ssh/kh_me".into()),
        };
        check(BASIC, "db1", db.clone());
        check(BASIC, "db", db);
    }

    #[test]
    fn a_negated_pattern_alone_matches_nothing() {
        check("Host !foo\n  User x\n", "bar", HostSettings::default());
    }

    #[test]
    fn global_lines_before_any_host_apply_to_all() {
        check(
            "User early\nHost a\n  User late\n",
            "a",
            HostSettings {
                user: Some("early".into()),
                ..Default::default()
            },
        );
    }

    #[test]
    fn proxyjump_none_wins_when_first() {
        check(
            "Host inner\n  ProxyJump none\nHost *\n  ProxyJump bastion\n",
            "inner",
            HostSettings::default(),
        );
        check(
            "Host *\n  ProxyJump ssh://u@[::1]:2201,[fe80::1],h:7/\n",
            "x",
            HostSettings {
                proxy_jump: vec![
                    jump(Some("u"), "::1", Some(2201)),
                    jump(None, "fe80::1", None),
                    jump(None, "h", Some(7)),
                ],
                ..Default::default()
            },
        );
    }

    #[test]
    fn match_blocks_are_skipped_with_a_note() {
        let text = "Match host x exec true\n  User matched\nHost x\n  Port 7\n";
        let cfg = parse_in(text, &env());
        assert_eq!(cfg.resolve_in("x", &env()).user, None);
        assert_eq!(cfg.resolve_in("x", &env()).port, Some(7));
        assert_eq!(cfg.notes().len(), 1);
        assert!(
            cfg.notes()[0].contains("test_config line 1"),
            "{:?}",
            cfg.notes()
        );
    }

    #[test]
    fn malformed_lines_name_file_and_line() {
        for (text, line, words) in [
            ("Host a\n  Port banana\n", 2, "bad port"),
            ("\n\nPort 0\n", 3, "bad port"),
            ("Host\n", 1, "pattern"),
            ("User \"unterminated\n", 1, "quote"),
            ("ProxyJump u@:22\n", 1, "no host"),
            ("ProxyJump h:99999\n", 1, "bad port"),
            ("ConnectTimeout 5x\n", 1, "ConnectTimeout"),
            ("HostName\n", 1, "needs a value"),
        ] {
            let mut cfg = SshConfig::default();
            let err = cfg
                .read(text, Path::new("cfgfile"), &env(), &[], 0)
                .unwrap_err();
            let msg = err.to_string();
            assert!(
                msg.starts_with(&format!("cfgfile line {line}: ")) && msg.contains(words),
                "{text:?}: {msg}"
            );
        }
    }

    #[test]
    fn include_is_relative_to_ssh_dir_with_globs_and_nesting() {
        let dir = tempfile::tempdir().unwrap();
        let ssh = dir.path().join(".ssh");
        std::fs::create_dir_all(ssh.join("conf.d")).unwrap();
        std::fs::write(ssh.join("conf.d/b.conf"), "Host b\n  Port 2\n").unwrap();
        std::fs::write(
            ssh.join("conf.d/a.conf"),
            "Host b\n  Port 1\n  User from-a\n",
        )
        .unwrap();
        std::fs::write(ssh.join("conf.d/.hidden"), "Host b\n  Port 3\n").unwrap();
        std::fs::write(
            ssh.join("scoped"),
            "User scoped\nHost *\n  IdentityFile k\n",
        )
        .unwrap();
        let env = Env {
            home: Some(dir.path().to_path_buf()),
            ssh_dir: ssh.clone(),
            local_user: "me".into(),
        };
        let text = "Include conf.d/*.conf missing_file\nHost only-c\n  Include scoped\nHost *\n  User last\n";
        let cfg = parse_in(text, &env);
        let b = cfg.resolve_in("b", &env);
        assert_eq!((b.port, b.user.as_deref()), (Some(1), Some("from-a")));
        // The included file's lines and its own `Host *` stay under `Host only-c`.
        let c = cfg.resolve_in("only-c", &env);
        assert_eq!(c.user.as_deref(), Some("scoped"));
        assert_eq!(c.identity_files, vec![PathBuf::from("k")]);
        let d = cfg.resolve_in("d", &env);
        assert_eq!(
            (d.user.as_deref(), d.identity_files.len()),
            (Some("last"), 0)
        );
    }

    #[test]
    fn include_loops_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("self"), "Include self\n").unwrap();
        let env = Env {
            home: None,
            ssh_dir: dir.path().to_path_buf(),
            local_user: "me".into(),
        };
        let mut cfg = SshConfig::default();
        let err = cfg
            .read("Include self\n", Path::new("top"), &env, &[], 0)
            .unwrap_err();
        assert!(err.to_string().contains("nested deeper"), "{err}");
    }

    #[test]
    fn apply_keeps_inventory_choices_and_builds_jump_targets() {
        let text = "Host app\n  HostName 10.1.1.1\n  Port 2200\n  User cfg-user\n  IdentityFile /k/app\n  ProxyJump gw,ops@gw2:2023\nHost gw\n  HostName gw.example.com\n  User gwuser\n  IdentityFile /k/gw\n";
        let cfg = parse_in(text, &env());
        let base = || Target {
            name: "app".into(),
            address: "app".into(),
            port: 22,
            user: "me".into(),
            identity_files: vec!["/k/inventory".into()],
            known_hosts: "/kh".into(),
            global_known_hosts: Vec::new(),
            accept_new: false,
            connect_timeout: Duration::from_secs(5),
        };
        let mut t = base();
        let jump = cfg.apply(
            &mut t,
            Explicit {
                port: true,
                user: false,
                identity: true,
                ..Default::default()
            },
        );
        assert_eq!(t.address, "10.1.1.1");
        assert_eq!(t.port, 22);
        assert_eq!(t.user, "cfg-user");
        assert_eq!(t.identity_files, vec![PathBuf::from("/k/inventory")]);
        let hops: Vec<_> = jump
            .iter()
            .map(|j| {
                (
                    j.address.as_str(),
                    j.port,
                    j.user.as_str(),
                    j.identity_files.clone(),
                )
            })
            .collect();
        assert_eq!(
            hops,
            vec![
                ("gw.example.com", 22, "gwuser", vec![PathBuf::from("/k/gw")]),
                ("gw2", 2023, "ops", vec![PathBuf::from("/k/inventory")]),
            ]
        );
        assert!(jump.iter().all(|j| j.known_hosts == Path::new("/kh")));

        let mut t = base();
        let _ = cfg.apply(&mut t, Explicit::default());
        assert_eq!(
            (t.port, t.identity_files),
            (2200, vec![PathBuf::from("/k/app")])
        );
    }

    #[test]
    fn wildcards_and_times() {
        for (p, t, want) in [
            ("*", "", true),
            ("a*b*c", "axxbyyc", true),
            ("a*b", "ab", true),
            ("a*b", "abx", false),
            ("?", "", false),
            ("h?st*", "host-1", true),
            ("*.example.com", "example.com", false),
            // OpenSSH has no sets: `[` is an ordinary character.
            ("h[ab]", "ha", false),
            ("h[ab]", "h[ab]", true),
        ] {
            assert_eq!(wildcard(p, t), want, "{p} vs {t}");
        }
        assert_eq!(parse_time("10"), Some(Duration::from_secs(10)));
        assert_eq!(parse_time("1h5M2"), Some(Duration::from_secs(3902)));
        assert_eq!(parse_time(""), None);
        assert_eq!(parse_time("m"), None);
    }
}
