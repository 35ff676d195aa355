//! Facts about the host (`setup`), gathered locally from /etc and /proc under the
//! `ansible_*` names plans use, plus the time and user helpers other modules share.

use crate::plan::Vars;
use serde_json::{Value, json};
use std::os::unix::fs::MetadataExt;
use std::time::{SystemTime, UNIX_EPOCH};

/// Gathers the facts. Cheap (a few small file reads), and never fails: an unreadable
/// source just leaves its facts out.
pub fn gather() -> Vars {
    from_sources(&Sources {
        hostname: read_trim("/proc/sys/kernel/hostname"),
        system: system().to_string(),
        arch: std::env::consts::ARCH.to_string(),
        kernel: read_trim("/proc/sys/kernel/osrelease"),
        os_release: std::fs::read_to_string("/etc/os-release")
            .or_else(|_| std::fs::read_to_string("/usr/lib/os-release"))
            .unwrap_or_default(),
        cpus: std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
        meminfo: std::fs::read_to_string("/proc/meminfo").unwrap_or_default(),
        user: current_user(),
        env: std::env::vars().collect(),
    })
}

/// What the facts are made from, read on the host itself or (for the deployer's SSH
/// mode) fetched from it with a few shell commands.
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

fn distribution_name(id: &str) -> String {
    match id {
        "rhel" => "RedHat".into(),
        "centos" => "CentOS".into(),
        "opensuse" | "opensuse-leap" => "openSUSE Leap".into(),
        "sles" => "SLES".into(),
        "arch" => "Archlinux".into(),
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
    id.map(distribution_name).unwrap_or_else(|| system().into())
}

fn meminfo_kb(text: &str, key: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with(key))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// The effective user id of this process (the owner of /proc/self), without libc.
pub fn current_uid() -> Option<u32> {
    std::fs::metadata("/proc/self").ok().map(|m| m.uid())
}

/// The name of the user this process runs as.
pub fn current_user() -> Option<String> {
    let uid = current_uid()?;
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|l| {
        let mut fields = l.split(':');
        let name = fields.next()?;
        let id: u32 = fields.nth(1)?.parse().ok()?;
        (id == uid).then(|| name.to_string())
    })
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
    fn gathers_the_basics_here() {
        let f = gather();
        for key in [
            "ansible_hostname",
            "ansible_os_family",
            "ansible_system",
            "ansible_date_time",
        ] {
            assert!(f.contains_key(key), "{key} missing");
        }
        assert_eq!(unprefixed(&f)["system"], f["ansible_system"]);
    }
}
