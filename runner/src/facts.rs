//! Facts about the host (`setup`), gathered locally from /etc and /proc under the
//! `ansible_*` names plans use, plus the time and user helpers other modules share.
//!
//! What only the kernel knows comes from `sys`: Linux's procfs and sysfs files
//! (`facts/linux.rs`), or, on hosts without them (macOS), the platform's own commands
//! (`facts/other.rs`), which give fewer facts: those they cannot give are left out
//! rather than guessed.

// A passwd entry, as the facts of the user this process runs as.
use crate::passwd::User as PasswdEntry;
use crate::plan::Vars;
use serde_json::{Value, json};
use std::time::{SystemTime, UNIX_EPOCH};

#[cfg(target_os = "linux")]
mod linux;
#[cfg(target_os = "linux")]
use linux as sys;

// Also compiled into Linux's tests, so its answers are checked against procfs there.
#[cfg(any(not(target_os = "linux"), test))]
#[cfg_attr(all(target_os = "linux", test), allow(dead_code))]
mod other;
#[cfg(not(target_os = "linux"))]
use other as sys;

/// Gathers all the facts. Cheap (small file reads, and `ip -j addr` when present),
/// and never fails: an unreadable source just leaves its facts out.
pub fn gather() -> Vars {
    gather_subset(Subset::default())
}

/// Which optional groups of facts to gather (the `setup` module's `gather_subset`);
/// the minimal facts (host, OS, user, time, environment) are always there.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Subset {
    /// CPU, memory, DMI.
    pub hardware: bool,
    /// Interfaces, addresses, default route, DNS.
    pub network: bool,
}

impl Default for Subset {
    fn default() -> Subset {
        Subset {
            hardware: true,
            network: true,
        }
    }
}

/// Gathers the minimal facts and the groups `subset` asks for.
pub fn gather_subset(subset: Subset) -> Vars {
    let mut f = Vars::new();
    let mut put = |k: &str, v: Value| {
        f.insert(format!("ansible_{k}"), v);
    };
    let hostname = sys::hostname().unwrap_or_else(|| "localhost".into());
    let short = hostname.split('.').next().unwrap_or(&hostname).to_string();
    let fqdn = fqdn(
        &hostname,
        &std::fs::read_to_string("/etc/hosts").unwrap_or_default(),
    );
    let domain = fqdn.split_once('.').map_or("", |(_, d)| d).to_string();
    put("hostname", short.into());
    put("nodename", hostname.into());
    put("fqdn", fqdn.into());
    put("domain", domain.into());
    put("system", system().into());
    // The machine the runner executes as (x86_64, aarch64), which is what uname -m says
    // for every runner of the matrix. /proc/sys/kernel/arch would name the kernel's
    // machine instead, which differs under emulation (an aarch64 runner under
    // qemu-user on an x86_64 kernel is an aarch64 machine to its tasks, as to uname).
    let arch = std::env::consts::ARCH.to_string();
    put("architecture", arch.clone().into());
    put("machine", arch.into());
    put("userspace_bits", (usize::BITS).to_string().into());
    if let Some(k) = sys::kernel() {
        put("kernel", k.into());
    }
    if let Some(k) = sys::kernel_version() {
        put("kernel_version", k.into());
    }
    if let Some(id) = read_trim("/etc/machine-id").filter(|m| !m.is_empty()) {
        put("machine_id", id.into());
    }
    if let Some(up) = sys::uptime_seconds() {
        put("uptime_seconds", up.into());
    }

    let os = os_release();
    let get = |key: &str| os.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone());
    let id = get("ID");
    let like = get("ID_LIKE");
    let distribution = id
        .as_deref()
        .map(distribution_name)
        .unwrap_or_else(|| system().into());
    let family = os_family(id.as_deref(), like.as_deref());
    put("os_family", family.clone().into());
    put("distribution", distribution.into());
    // Debian's os-release has only the major version; Ansible reports the point
    // release from /etc/debian_version ("12.5").
    let version = match (id.as_deref(), read_trim("/etc/debian_version")) {
        (Some("debian"), Some(v)) if v.starts_with(|c: char| c.is_ascii_digit()) => Some(v),
        _ => get("VERSION_ID"),
    };
    if let Some(v) = version {
        let mut parts = v.split('.');
        let major = parts.next().unwrap_or(&v).to_string();
        if let Some(minor) = parts.next() {
            put("distribution_minor_version", minor.into());
        }
        put("distribution_version", v.clone().into());
        put("distribution_major_version", major.into());
    }
    if let Some(c) = get("VERSION_CODENAME")
        .or_else(|| get("UBUNTU_CODENAME"))
        .filter(|c| !c.is_empty())
    {
        put("distribution_release", c.into());
    }
    put("pkg_mgr", pkg_mgr(&family).into());
    put("service_mgr", service_mgr().into());

    if let Some(user) = current_user_entry() {
        put("user_id", user.name.into());
        put("user_uid", user.uid.into());
        put("user_gid", user.gid.into());
        put("user_gecos", user.gecos.into());
        put("user_dir", user.home.into());
        put("user_shell", user.shell.into());
    }
    let env: Vars = std::env::vars().map(|(k, v)| (k, Value::from(v))).collect();
    put("env", Value::Object(env));
    put("date_time", date_time(SystemTime::now()));
    put("local", json!({}));
    put("selinux", sys::selinux());
    if subset.hardware {
        sys::hardware(&mut put);
        let (kind, role) = sys::virtualization();
        put("virtualization_type", kind.into());
        put("virtualization_role", role.into());
        if let Some(mounts) = sys::mounts() {
            put("mounts", mounts);
        }
    }
    if subset.network {
        sys::network(&mut put);
        let resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
        put("dns", dns(&resolv));
    }
    // Local facts are among Ansible's minimal facts, from setup's default `fact_path`.
    put("local", local(std::path::Path::new(DEFAULT_FACT_PATH)));
    f
}

/// Where `setup` reads local facts when no `fact_path` is given.
pub const DEFAULT_FACT_PATH: &str = "/etc/ansible/facts.d";

/// `ansible_local`: each `*.fact` file in `dir` (sorted), under its name without
/// `.fact`, as Ansible's local fact collector reads it: an executable is run and its
/// output taken, any other file read; the text is JSON, else INI (Python's
/// configparser: sections of options, `%` interpolation), else a message saying so. A
/// file that cannot be stat'ed, or a script that fails, gives its message instead.
pub fn local(dir: &std::path::Path) -> Value {
    use std::os::unix::fs::PermissionsExt;
    let mut out = serde_json::Map::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Value::Object(out);
    };
    let mut files: Vec<std::path::PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.ends_with(".fact") && !n.starts_with('.'))
        })
        .collect();
    files.sort();
    for path in files {
        let shown = path.display().to_string();
        let base = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .replace(".fact", "");
        let meta = match std::fs::metadata(&path) {
            Ok(m) => m,
            Err(e) => {
                out.insert(base, format!("Could not stat fact ({shown}): {e}").into());
                continue;
            }
        };
        let text = if meta.permissions().mode() & 0o100 != 0 {
            match std::process::Command::new(&path)
                .stdin(std::process::Stdio::null())
                .output()
            {
                Ok(o) if o.status.success() => o.stdout,
                Ok(o) => {
                    let msg = format!(
                        "Failure executing fact script ({shown}), rc: {}, err: {}",
                        o.status.code().unwrap_or(-1),
                        String::from_utf8_lossy(&o.stderr)
                    );
                    out.insert(base, msg.into());
                    continue;
                }
                Err(e) => {
                    let msg = format!("Could not execute fact script ({shown}): {e}");
                    out.insert(base, msg.into());
                    continue;
                }
            }
        } else {
            std::fs::read(&path).unwrap_or_default()
        };
        let Ok(text) = String::from_utf8(text) else {
            let msg = format!("error loading fact - output of running \"{shown}\" was not utf-8");
            out.insert(base, msg.into());
            continue;
        };
        let fact = match serde_json::from_str::<Value>(&text) {
            Ok(v) => v,
            Err(_) => ini_fact(&text, &shown),
        };
        out.insert(base, fact);
    }
    Value::Object(out)
}

/// A local fact file that is not JSON, read as Python's `ConfigParser` reads INI.
fn ini_fact(text: &str, shown: &str) -> Value {
    let Ok(sections) = crate::ctlfiles::parse_ini(text, false, false) else {
        return format!("error loading facts as JSON or ini - please check content: {shown}")
            .into();
    };
    let mut fact = serde_json::Map::new();
    for (name, options) in &sections {
        let mut values = serde_json::Map::new();
        for (key, value) in options {
            let raw = value.clone().unwrap_or_default();
            match interpolate(&raw, options) {
                Ok(v) => {
                    values.insert(key.clone(), v.into());
                }
                Err(e) => {
                    return format!(
                        "error loading facts as ini - please check content: {shown} ({e})"
                    )
                    .into();
                }
            }
        }
        fact.insert(name.clone(), Value::Object(values));
    }
    Value::Object(fact)
}

/// configparser's `BasicInterpolation` of one value: `%%` is `%`, `%(name)s` the
/// section's option `name`; any other `%` is an error in Python's words.
fn interpolate(raw: &str, options: &[(String, Option<String>)]) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = raw;
    while let Some(at) = rest.find('%') {
        out.push_str(rest.get(..at).unwrap_or_default());
        let tail = rest.get(at..).unwrap_or_default();
        if let Some(after) = tail.strip_prefix("%%") {
            out.push('%');
            rest = after;
        } else if let Some(after) = tail.strip_prefix("%(") {
            let Some((name, after)) = after.split_once(")s") else {
                return Err(format!("bad interpolation variable reference {tail:?}"));
            };
            let value = options
                .iter()
                .find(|(k, _)| k == &name.to_lowercase())
                .and_then(|(_, v)| v.clone())
                .ok_or_else(|| format!("Bad value substitution: option {name:?}"))?;
            out.push_str(&value);
            rest = after;
        } else {
            return Err(format!(
                "'%' must be followed by '%' or '(', found: {tail:?}"
            ));
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// What the deployer's SSH mode fetches from a host with a few shell commands, for
/// [`from_sources`]. The runner itself gathers with [`gather`], which reads more.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    /// `/proc/sys/kernel/hostname`.
    pub hostname: Option<String>,
    /// `uname -s` (Linux, Darwin, ...).
    pub system: String,
    /// `uname -m` (x86_64, aarch64, ...).
    pub arch: String,
    /// `uname -r`.
    pub kernel: Option<String>,
    /// The text of `/etc/os-release`.
    pub os_release: String,
    /// Online CPUs.
    pub cpus: usize,
    /// The text of `/proc/meminfo`.
    pub meminfo: String,
    /// The user tasks run as.
    pub user: Option<String>,
    /// The environment tasks run with.
    pub env: Vec<(String, String)>,
}

/// The facts from their sources.
pub fn from_sources(s: &Sources) -> Vars {
    let mut f = Vars::new();
    let hostname = s.hostname.clone().unwrap_or_else(|| "localhost".into());
    let short = hostname.split('.').next().unwrap_or(&hostname).to_string();
    f.insert("ansible_hostname".into(), short.clone().into());
    f.insert("ansible_nodename".into(), hostname.clone().into());
    f.insert("ansible_fqdn".into(), hostname.into());
    f.insert("ansible_system".into(), s.system.clone().into());
    f.insert("ansible_architecture".into(), s.arch.clone().into());
    f.insert("ansible_machine".into(), s.arch.clone().into());
    if let Some(k) = &s.kernel {
        f.insert("ansible_kernel".into(), k.clone().into());
    }
    let os: Vec<(String, String)> = s
        .os_release
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().trim_matches('"').to_string()))
        .collect();
    let get = |key: &str| os.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone());
    let id = get("ID");
    let like = get("ID_LIKE");
    let distribution = id
        .as_deref()
        .map(distribution_name)
        .unwrap_or_else(|| s.system.clone());
    let family = if id.is_none() && like.is_none() && s.system == "Darwin" {
        "Darwin".to_string()
    } else {
        os_family(id.as_deref(), like.as_deref())
    };
    f.insert("ansible_os_family".into(), family.into());
    f.insert("ansible_distribution".into(), distribution.into());
    if let Some(v) = get("VERSION_ID") {
        let major = v.split('.').next().unwrap_or(&v).to_string();
        f.insert("ansible_distribution_version".into(), v.into());
        f.insert("ansible_distribution_major_version".into(), major.into());
    }
    if let Some(c) = get("VERSION_CODENAME") {
        f.insert("ansible_distribution_release".into(), c.into());
    }
    f.insert("ansible_processor_vcpus".into(), s.cpus.into());
    f.insert("ansible_processor_nproc".into(), s.cpus.into());
    if let Some(kb) = meminfo_kb(&s.meminfo, "MemTotal:") {
        f.insert("ansible_memtotal_mb".into(), (kb / 1024).into());
    }
    if let Some(user) = &s.user {
        f.insert("ansible_user_id".into(), user.clone().into());
    }
    let env: Vars = s
        .env
        .iter()
        .map(|(k, v)| (k.clone(), Value::from(v.clone())))
        .collect();
    f.insert("ansible_env".into(), Value::Object(env));
    f.insert("ansible_date_time".into(), date_time(SystemTime::now()));
    f
}

/// Python's `socket.getfqdn()` as answered by /etc/hosts: the first name with a dot
/// among the names of the line that lists the host name, else the host name.
fn fqdn(hostname: &str, hosts: &str) -> String {
    hosts
        .lines()
        .map(|l| l.split('#').next().unwrap_or_default())
        .map(|l| l.split_whitespace().skip(1).collect::<Vec<_>>())
        .find(|names| names.contains(&hostname))
        .and_then(|names| names.into_iter().find(|n| n.contains('.')))
        .map_or_else(|| hostname.to_string(), str::to_string)
}

fn exists_in_system(bin: &str) -> bool {
    ["/usr/bin", "/bin", "/usr/sbin", "/sbin", "/usr/local/bin"]
        .iter()
        .any(|d| std::path::Path::new(d).join(bin).is_file())
}

/// The package manager Ansible's `package` module would pick.
fn pkg_mgr(family: &str) -> String {
    let by_family: &[(&str, &str)] = match family {
        "Debian" => &[("apt-get", "apt")],
        "RedHat" => &[("dnf5", "dnf5"), ("dnf", "dnf"), ("yum", "yum")],
        "Alpine" => &[("apk", "apk")],
        "Suse" => &[("zypper", "zypper")],
        "Archlinux" => &[("pacman", "pacman")],
        "Gentoo" => &[("emerge", "portage")],
        _ => &[],
    };
    const ANY: &[(&str, &str)] = &[
        ("apt-get", "apt"),
        ("dnf", "dnf"),
        ("yum", "yum"),
        ("apk", "apk"),
        ("zypper", "zypper"),
        ("pacman", "pacman"),
        ("emerge", "portage"),
        ("brew", "homebrew"),
    ];
    by_family
        .iter()
        .chain(ANY)
        .find(|(bin, _)| exists_in_system(bin))
        .map_or_else(|| "unknown".to_string(), |(_, m)| (*m).to_string())
}

/// What manages services, as Ansible decides it: PID 1's name when it is a known
/// manager or anything other than a generic init or a shell, else by the
/// directories systemd and OpenRC leave behind.
fn service_mgr() -> String {
    let comm = sys::init_name();
    match comm.as_deref() {
        Some("systemd") => return "systemd".into(),
        Some(c) if c != "init" && !c.ends_with("sh") => return c.to_string(),
        _ => {}
    }
    if std::path::Path::new("/run/systemd/system").is_dir() {
        "systemd".into()
    } else if exists_in_system("openrc") || std::path::Path::new("/run/openrc").is_dir() {
        "openrc".into()
    } else if std::path::Path::new("/etc/init.d").is_dir() {
        "sysvinit".into()
    } else {
        "service".into()
    }
}

/// What the interpreter reports about itself for `ansible_python`: the fields of
/// Ansible's python fact collector, and `platform.python_version()`.
const PYTHON_FACTS: &str = "import json, platform, sys
try:
    import ssl
    has_ctx = hasattr(ssl, 'SSLContext')
except Exception:
    has_ctx = False
v = sys.version_info
print(json.dumps({'python': {'version': {'major': v[0], 'minor': v[1], 'micro': v[2],
    'releaselevel': v[3], 'serial': v[4]}, 'version_info': list(v),
    'executable': sys.executable, 'has_sslcontext': has_ctx,
    'type': getattr(getattr(sys, 'implementation', None), 'name', None)},
    'python_version': platform.python_version()}))
";

/// `ansible_python` and `ansible_python_version`: the system Python 3, the interpreter
/// Ansible would run its modules with here. Starting it costs tens of milliseconds,
/// so it is asked once per run and only by those who need it (an explicit `setup`, or
/// a play whose plan mentions it); absent when there is no python3 (this runner needs
/// none).
pub fn python() -> Option<Vars> {
    static ONCE: std::sync::OnceLock<Option<Vars>> = std::sync::OnceLock::new();
    ONCE.get_or_init(|| {
        let py = ["/usr/bin/python3", "/usr/local/bin/python3", "/bin/python3"]
            .iter()
            .find(|p| std::path::Path::new(p).is_file())?;
        python_from(py)
    })
    .clone()
}

/// [`python`]'s facts as `py` reports them.
fn python_from(py: &str) -> Option<Vars> {
    let out = std::process::Command::new(py)
        // Isolated: no user site, no PYTHON* variables, no current directory on the path.
        .args(["-I", "-c", PYTHON_FACTS])
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output()
        .ok()
        .filter(|o| o.status.success())?;
    let Value::Object(facts) = serde_json::from_slice(&out.stdout).ok()? else {
        return None;
    };
    Some(
        facts
            .into_iter()
            .map(|(k, v)| (format!("ansible_{k}"), v))
            .collect(),
    )
}

/// `ansible_dns` from resolv.conf.
fn dns(resolv: &str) -> Value {
    let mut nameservers = Vec::new();
    let mut search = Vec::new();
    let mut m = serde_json::Map::new();
    for line in resolv.lines() {
        let mut w = line.split_whitespace();
        match w.next() {
            Some("nameserver") => nameservers.extend(w.next().map(str::to_string)),
            Some("search") => search.extend(w.map(str::to_string)),
            Some("domain") => {
                if let Some(d) = w.next() {
                    m.insert("domain".into(), d.into());
                }
            }
            _ => {}
        }
    }
    if !nameservers.is_empty() {
        m.insert("nameservers".into(), nameservers.into());
    }
    if !search.is_empty() {
        m.insert("search".into(), search.into());
    }
    Value::Object(m)
}

/// The facts without their `ansible_` prefix, as `ansible_facts` presents them.
pub fn unprefixed(facts: &Vars) -> Vars {
    facts
        .iter()
        .map(|(k, v)| {
            (
                k.strip_prefix("ansible_").unwrap_or(k).to_string(),
                v.clone(),
            )
        })
        .collect()
}

fn system() -> &'static str {
    match std::env::consts::OS {
        "linux" => "Linux",
        "macos" => "Darwin",
        other => other,
    }
}

fn read_trim(path: &str) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_string())
}

fn os_release() -> Vec<(String, String)> {
    let text = std::fs::read_to_string("/etc/os-release")
        .or_else(|_| std::fs::read_to_string("/usr/lib/os-release"))
        .unwrap_or_default();
    text.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().trim_matches('"').to_string()))
        .collect()
}

fn distribution_name(id: &str) -> String {
    match id {
        "rhel" => "RedHat".into(),
        "centos" => "CentOS".into(),
        "opensuse" | "opensuse-leap" => "openSUSE Leap".into(),
        "sles" => "SLES".into(),
        "arch" => "Archlinux".into(),
        "almalinux" => "AlmaLinux".into(),
        "amzn" => "Amazon".into(),
        "ol" => "OracleLinux".into(),
        "linuxmint" => "Linux Mint".into(),
        "opensuse-tumbleweed" => "openSUSE Tumbleweed".into(),
        other => {
            let mut c = other.chars();
            match c.next() {
                Some(first) => first.to_uppercase().chain(c).collect(),
                None => String::new(),
            }
        }
    }
}

fn os_family(id: Option<&str>, like: Option<&str>) -> String {
    let candidates = id
        .into_iter()
        .chain(like.into_iter().flat_map(str::split_whitespace));
    for c in candidates {
        let family = match c {
            "debian" | "ubuntu" | "raspbian" | "linuxmint" => "Debian",
            "rhel" | "fedora" | "centos" | "rocky" | "almalinux" | "amzn" | "ol" => "RedHat",
            "alpine" => "Alpine",
            "arch" | "manjaro" => "Archlinux",
            "suse" | "opensuse" | "sles" | "opensuse-leap" => "Suse",
            "gentoo" => "Gentoo",
            _ => continue,
        };
        return family.into();
    }
    if std::env::consts::OS == "macos" {
        return "Darwin".into();
    }
    id.map(distribution_name).unwrap_or_else(|| system().into())
}

fn meminfo_kb(text: &str, key: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with(key))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// The effective user id of this process, without libc.
pub fn current_uid() -> Option<u32> {
    sys::current_uid()
}

/// This machine's host name, as `uname -n` gives it.
pub fn host_name() -> Option<String> {
    sys::hostname()
}

/// The name of the user this process runs as.
pub fn current_user() -> Option<String> {
    current_user_entry().map(|u| u.name)
}

fn current_user_entry() -> Option<PasswdEntry> {
    let uid = current_uid()?;
    let entry = crate::passwd::users().into_iter().find(|u| u.uid == uid);
    // macOS keeps its users in Directory Services, not /etc/passwd.
    entry.or_else(|| sys::user_without_passwd(uid))
}

/// Days since 1970-01-01 to a civil (year, month, day), after Howard Hinnant's
/// public-domain algorithm.
pub(crate) fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

struct Parts {
    y: i64,
    mo: u32,
    d: u32,
    h: u64,
    mi: u64,
    s: u64,
    micros: u32,
    epoch: u64,
    weekday: u64,
}

fn parts(t: SystemTime) -> Parts {
    let since = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let days = secs / 86_400;
    let (y, mo, d) = civil(days as i64);
    Parts {
        y,
        mo,
        d,
        h: secs % 86_400 / 3600,
        mi: secs % 3600 / 60,
        s: secs % 60,
        micros: since.subsec_micros(),
        epoch: secs,
        // 1970-01-01 was a Thursday (4, with Sunday = 0).
        weekday: (days + 4) % 7,
    }
}

/// A time as Ansible's command module shows it (UTC): `2026-11-27 06:02:32.123456`.
pub fn format_time(t: SystemTime) -> String {
    let p = parts(t);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}.{:06}",
        p.y, p.mo, p.d, p.h, p.mi, p.s, p.micros
    )
}

/// Seconds since the epoch as `YYYY-MM-DD<between>HH:MM:SS` in UTC: `@` between for
/// backup names (Ansible's), a space for messages. Any `u64` is fine: nothing is added
/// to a `SystemTime`, which panics past its range (a damaged lock or state file may say
/// anything).
pub fn utc_seconds(secs: u64, between: char) -> String {
    let (y, m, d) = civil(i64::try_from(secs / 86_400).unwrap_or(0));
    let rem = secs % 86_400;
    format!(
        "{y:04}-{m:02}-{d:02}{between}{:02}:{:02}:{:02}",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// `ansible_date_time`, in UTC.
pub fn date_time(t: SystemTime) -> Value {
    let p = parts(t);
    const DAYS: [&str; 7] = [
        "Sunday",
        "Monday",
        "Tuesday",
        "Wednesday",
        "Thursday",
        "Friday",
        "Saturday",
    ];
    let weekday = DAYS.get(p.weekday as usize).copied().unwrap_or_default();
    json!({
        "year": format!("{:04}", p.y),
        "month": format!("{:02}", p.mo),
        "day": format!("{:02}", p.d),
        "hour": format!("{:02}", p.h),
        "minute": format!("{:02}", p.mi),
        "second": format!("{:02}", p.s),
        "epoch": p.epoch.to_string(),
        "date": format!("{:04}-{:02}-{:02}", p.y, p.mo, p.d),
        "time": format!("{:02}:{:02}:{:02}", p.h, p.mi, p.s),
        "iso8601": format!("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z", p.y, p.mo, p.d, p.h, p.mi, p.s),
        "iso8601_micro": format!("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z", p.y, p.mo, p.d, p.h, p.mi, p.s, p.micros),
        "weekday": weekday,
        "weekday_number": p.weekday.to_string(),
        "tz": "UTC",
        "tz_offset": "+0000",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_facts_read_json_ini_and_scripts_as_ansible_does() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let w = |name: &str, text: &str, mode: u32| {
            let p = d.path().join(name);
            std::fs::write(&p, text).unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        };
        w("prefs.fact", "[general]\nBar = loaded\npct = 50%%\n", 0o644);
        w("json.fact", "{\"a\": [1, 2]}", 0o644);
        w("script.fact", "#!/bin/sh\necho '{\"ran\": true}'\n", 0o755);
        w("failing.fact", "#!/bin/sh\necho oops >&2\nexit 3\n", 0o755);
        w("noheader.fact", "k=v\n", 0o644);
        w("percent.fact", "[s]\nv = a % b\n", 0o644);
        w("other.txt", "{}", 0o644);
        std::os::unix::fs::symlink("/nonexistent/x", d.path().join("dead.fact")).unwrap();
        let f = local(d.path());
        assert_eq!(
            f["prefs"],
            json!({"general": {"bar": "loaded", "pct": "50%"}})
        );
        assert_eq!(f["json"], json!({"a": [1, 2]}));
        assert_eq!(f["script"], json!({"ran": true}));
        let failing = f["failing"].as_str().unwrap();
        assert!(
            failing.starts_with("Failure executing fact script (")
                && failing.ends_with("rc: 3, err: oops\n"),
            "{failing}"
        );
        assert!(
            f["noheader"]
                .as_str()
                .unwrap()
                .starts_with("error loading facts as JSON or ini")
        );
        assert!(
            f["percent"]
                .as_str()
                .unwrap()
                .starts_with("error loading facts as ini")
        );
        assert!(
            f["dead"]
                .as_str()
                .unwrap()
                .starts_with("Could not stat fact")
        );
        assert!(f.get("other").is_none());
        assert_eq!(local(&d.path().join("missing")), json!({}));
    }
    use std::time::Duration;

    #[test]
    fn civil_dates() {
        assert_eq!(civil(0), (1970, 1, 1));
        assert_eq!(civil(20_454), (2026, 1, 1));
        assert_eq!(civil(11_016), (2000, 2, 29));
        let t = UNIX_EPOCH + Duration::from_micros(1_795_759_352_000_123);
        assert_eq!(format_time(t), "2026-11-27 06:02:32.000123");
        assert_eq!(date_time(t)["weekday"], "Friday");
    }

    #[test]
    fn utc_seconds_cover_every_u64() {
        assert_eq!(utc_seconds(0, '@'), "1970-01-01@00:00:00");
        assert_eq!(utc_seconds(951_782_400 + 3661, '@'), "2000-02-29@01:01:01");
        assert_eq!(utc_seconds(1_700_000_000, ' '), "2023-11-14 22:13:20");
        // Far past SystemTime's range: a date, not a panic.
        assert!(utc_seconds(u64::MAX, ' ').ends_with(" 07:00:15"));
    }

    #[test]
    fn families() {
        assert_eq!(os_family(Some("debian"), None), "Debian");
        assert_eq!(os_family(Some("pop"), Some("ubuntu debian")), "Debian");
        assert_eq!(
            os_family(Some("rocky"), Some("rhel centos fedora")),
            "RedHat"
        );
        assert_eq!(distribution_name("ubuntu"), "Ubuntu");
    }

    #[test]
    fn gathers_plausible_facts_here() {
        let f = gather();
        for key in [
            "ansible_hostname",
            "ansible_fqdn",
            "ansible_nodename",
            "ansible_os_family",
            "ansible_distribution",
            "ansible_distribution_version",
            "ansible_distribution_major_version",
            "ansible_system",
            "ansible_architecture",
            "ansible_kernel",
            "ansible_processor_vcpus",
            "ansible_processor_count",
            "ansible_processor_cores",
            "ansible_memtotal_mb",
            "ansible_memfree_mb",
            "ansible_default_ipv4",
            "ansible_interfaces",
            "ansible_date_time",
            "ansible_env",
            "ansible_user_id",
            "ansible_user_dir",
            "ansible_pkg_mgr",
            "ansible_service_mgr",
        ] {
            assert!(f.contains_key(key), "{key} missing");
        }
        assert_eq!(f["ansible_system"], "Linux");
        assert!(f["ansible_memtotal_mb"].as_u64().unwrap() > 0);
        assert!(
            f["ansible_memfree_mb"].as_u64().unwrap() <= f["ansible_memtotal_mb"].as_u64().unwrap()
        );
        assert!(f["ansible_processor_vcpus"].as_u64().unwrap() >= 1);
        // The uname(2) answer, through the uname tool.
        let uname = std::process::Command::new("uname")
            .arg("-n")
            .output()
            .unwrap();
        let node = String::from_utf8(uname.stdout).unwrap().trim().to_string();
        assert_eq!(f["ansible_nodename"], node.as_str());
        assert_eq!(f["ansible_hostname"], node.split('.').next().unwrap());
        let arch = std::process::Command::new("uname")
            .arg("-m")
            .output()
            .unwrap();
        assert_eq!(
            f["ansible_architecture"],
            String::from_utf8(arch.stdout).unwrap().trim()
        );
        let me = std::process::Command::new("id")
            .arg("-un")
            .output()
            .unwrap();
        assert_eq!(
            f["ansible_user_id"],
            String::from_utf8(me.stdout).unwrap().trim()
        );
        assert!(f["ansible_user_dir"].as_str().unwrap().starts_with('/'));
        // Every listed interface has its own fact; loopback has 127.0.0.1.
        let ifaces = f["ansible_interfaces"].as_array().unwrap().clone();
        assert!(!ifaces.is_empty());
        for i in &ifaces {
            let key = format!(
                "ansible_{}",
                i.as_str().unwrap().replace(['-', '.', ':'], "_")
            );
            assert_eq!(f[&key]["device"], *i);
        }
        if ifaces.contains(&json!("lo")) {
            assert_eq!(f["ansible_lo"]["ipv4"]["address"], "127.0.0.1");
            assert_eq!(f["ansible_lo"]["type"], "loopback");
        }
        // The default route here, if any, has an interface that is listed.
        if let Some(iface) = f["ansible_default_ipv4"].get("interface") {
            assert!(ifaces.contains(iface));
            assert!(
                f["ansible_default_ipv4"]["address"]
                    .as_str()
                    .unwrap()
                    .contains('.')
            );
        }
        if std::path::Path::new("/etc/debian_version").exists() {
            assert_eq!(f["ansible_os_family"], "Debian");
            assert_eq!(f["ansible_pkg_mgr"], "apt");
        }
        // The root filesystem is a mount with a size.
        let mounts = f["ansible_mounts"].as_array().unwrap();
        if let Some(root) = mounts.iter().find(|m| m["mount"] == "/") {
            assert!(root["size_total"].as_u64().unwrap() > 0, "{root}");
        }
        assert!(f["ansible_virtualization_type"].is_string());
        assert!(f["ansible_selinux"]["status"].is_string());
        assert_eq!(unprefixed(&f)["system"], f["ansible_system"]);
        let min = gather_subset(Subset {
            hardware: false,
            network: false,
        });
        assert!(min.contains_key("ansible_hostname"));
        assert!(
            !min.contains_key("ansible_memtotal_mb") && !min.contains_key("ansible_interfaces")
        );
    }

    #[test]
    fn hosts_and_dns() {
        assert_eq!(
            fqdn("web1", "127.0.1.1 web1.example.com web1 # x\n"),
            "web1.example.com"
        );
        assert_eq!(fqdn("web1", "127.0.0.1 localhost\n"), "web1");
        assert_eq!(
            dns("nameserver 10.0.0.2\nsearch a.example b.example\n# c\n"),
            json!({"nameservers": ["10.0.0.2"], "search": ["a.example", "b.example"]})
        );
    }
}
