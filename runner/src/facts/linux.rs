//! Linux's sources of facts: procfs and sysfs files (and `ip`, `df`), parsed without
//! a C library. The portable facts and the other platforms' sources are in the parent.

use super::{meminfo_kb, read_trim};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;

/// The kernel's host name (what uname(2) calls the node name).
pub(super) fn hostname() -> Option<String> {
    read_trim("/proc/sys/kernel/hostname")
}

/// The kernel's release (`uname -r`).
pub(super) fn kernel() -> Option<String> {
    read_trim("/proc/sys/kernel/osrelease")
}

/// The kernel's version string (`uname -v`).
pub(super) fn kernel_version() -> Option<String> {
    read_trim("/proc/sys/kernel/version")
}

/// Whole seconds since boot.
pub(super) fn uptime_seconds() -> Option<u64> {
    read_trim("/proc/uptime")
        .and_then(|u| u.split_whitespace().next()?.parse::<f64>().ok())
        .map(|up| up as u64)
}

/// The name of PID 1 (systemd, init, openrc-init, a container's entry point...).
pub(super) fn init_name() -> Option<String> {
    read_trim("/proc/1/comm").filter(|c| !c.is_empty())
}

/// The effective user id of this process: the owner of /proc/self.
pub(super) fn current_uid() -> Option<u32> {
    std::fs::metadata("/proc/self").ok().map(|m| m.uid())
}

/// The passwd database of Linux hosts is /etc/passwd (read by the parent), so there is
/// nothing more to ask.
pub(super) fn user_without_passwd(_uid: u32) -> Option<super::PasswdEntry> {
    None
}

/// CPU, memory and DMI facts.
pub(super) fn hardware(put: &mut impl FnMut(&str, Value)) {
    let cpu = cpu_facts(&std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default());
    let nproc = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    put("processor", cpu.processor.into());
    put("processor_count", cpu.count.into());
    put("processor_cores", cpu.cores.into());
    put("processor_threads_per_core", cpu.threads_per_core.into());
    put(
        "processor_vcpus",
        (cpu.count * cpu.cores * cpu.threads_per_core).max(1).into(),
    );
    put("processor_nproc", nproc.into());
    let mem = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mb = |key: &str| meminfo_kb(&mem, key).map(|kb| kb / 1024);
    if let (Some(total), Some(free)) = (mb("MemTotal:"), mb("MemFree:")) {
        let cache = mb("Buffers:").unwrap_or(0) + mb("Cached:").unwrap_or(0);
        let swap_total = mb("SwapTotal:").unwrap_or(0);
        let swap_free = mb("SwapFree:").unwrap_or(0);
        put("memtotal_mb", total.into());
        put("memfree_mb", free.into());
        put("swaptotal_mb", swap_total.into());
        put("swapfree_mb", swap_free.into());
        put(
            "memory_mb",
            json!({
                "real": {"total": total, "free": free, "used": total.saturating_sub(free)},
                "nocache": {"free": free + cache, "used": total.saturating_sub(free + cache)},
                "swap": {"total": swap_total, "free": swap_free,
                         "used": swap_total.saturating_sub(swap_free),
                         "cached": mb("SwapCached:").unwrap_or(0)},
            }),
        );
    }
    for (fact, file) in [
        ("system_vendor", "sys_vendor"),
        ("product_name", "product_name"),
        ("product_version", "product_version"),
        ("product_uuid", "product_uuid"),
        ("product_serial", "product_serial"),
        ("bios_version", "bios_version"),
        ("bios_date", "bios_date"),
    ] {
        // Ansible reports "NA" where DMI is missing (containers, most ARM boards).
        let v = read_trim(&format!("/sys/class/dmi/id/{file}"))
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| "NA".into());
        put(fact, v.into());
    }
}

#[derive(Debug, PartialEq)]
struct Cpu {
    processor: Vec<String>,
    count: usize,
    cores: usize,
    threads_per_core: usize,
}

/// Sockets, cores per socket and threads per core from /proc/cpuinfo, as Ansible
/// counts them; where the file has no topology (ARM, some VMs) each processor is
/// one socket with one core.
fn cpu_facts(cpuinfo: &str) -> Cpu {
    let mut processor = Vec::new();
    let mut sockets = std::collections::BTreeSet::new();
    let mut cores = None;
    let mut siblings = None;
    let mut n = 0usize;
    for line in cpuinfo.lines() {
        let Some((k, v)) = line.split_once(':') else {
            continue;
        };
        let (k, v) = (k.trim(), v.trim());
        match k {
            "processor" => {
                processor.push(n.to_string());
                n += 1;
            }
            "vendor_id" | "model name" | "Processor" | "CPU implementer" | "cpu model" => {
                processor.push(v.to_string());
            }
            "physical id" => {
                sockets.insert(v.to_string());
            }
            "cpu cores" => cores = cores.or(v.parse::<usize>().ok()),
            "siblings" => siblings = siblings.or(v.parse::<usize>().ok()),
            _ => {}
        }
    }
    let n = n.max(1);
    match (sockets.len(), cores) {
        (s, Some(c)) if s > 0 && c > 0 => Cpu {
            processor,
            count: s,
            cores: c,
            threads_per_core: siblings.map_or(1, |sib| (sib / c).max(1)),
        },
        _ => Cpu {
            processor,
            count: n,
            cores: 1,
            threads_per_core: 1,
        },
    }
}

/// One network interface.
#[derive(Debug, Clone, PartialEq)]
struct Iface {
    name: String,
    mac: Option<String>,
    mtu: Option<u64>,
    active: bool,
    kind: &'static str,
    ipv4: Vec<(std::net::Ipv4Addr, u8)>,
    ipv6: Vec<(std::net::Ipv6Addr, u8, &'static str)>,
}

/// Interfaces from /sys/class/net, IPv4 addresses from `ip -j addr` (or, without
/// iproute2, /proc/net/fib_trie and the routes), IPv6 from /proc/net/if_inet6.
pub(super) fn network(put: &mut impl FnMut(&str, Value)) {
    let mut ifaces: Vec<Iface> = std::fs::read_dir("/sys/class/net")
        .map(|rd| {
            rd.filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .map(|name| sys_iface(&name))
                .collect()
        })
        .unwrap_or_default();
    ifaces.sort_by(|a, b| a.name.cmp(&b.name));
    let routes = routes(&std::fs::read_to_string("/proc/net/route").unwrap_or_default());
    let v4 = ip_json_v4().unwrap_or_else(|| {
        let trie = std::fs::read_to_string("/proc/net/fib_trie").unwrap_or_default();
        let loopback = ifaces
            .iter()
            .find(|i| i.kind == "loopback")
            .map_or_else(|| "lo".to_string(), |i| i.name.clone());
        fib_trie_v4(&trie, &routes, &loopback)
    });
    let v6 = if_inet6(&std::fs::read_to_string("/proc/net/if_inet6").unwrap_or_default());
    for i in &mut ifaces {
        i.ipv4 = v4
            .iter()
            .filter(|(n, _, _)| *n == i.name)
            .map(|(_, a, p)| (*a, *p))
            .collect();
        i.ipv6 = v6
            .iter()
            .filter(|(n, _, _, _)| *n == i.name)
            .map(|(_, a, p, s)| (*a, *p, *s))
            .collect();
    }
    put(
        "interfaces",
        ifaces
            .iter()
            .map(|i| i.name.clone())
            .collect::<Vec<_>>()
            .into(),
    );
    let mut all4 = Vec::new();
    let mut all6 = Vec::new();
    for i in &ifaces {
        all4.extend(
            i.ipv4
                .iter()
                .filter(|(a, _)| !a.is_loopback())
                .map(|(a, _)| a.to_string()),
        );
        all6.extend(
            i.ipv6
                .iter()
                .filter(|(a, _, _)| !a.is_loopback())
                .map(|(a, _, _)| a.to_string()),
        );
        let key: String = i
            .name
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        put(&key, iface_fact(i));
    }
    put("all_ipv4_addresses", all4.into());
    put("all_ipv6_addresses", all6.into());
    let default = routes
        .iter()
        .find(|r| r.dest == 0 && r.mask == 0)
        .and_then(|r| {
            let i = ifaces.iter().find(|i| i.name == r.iface)?;
            let mut v = match i.ipv4.first() {
                Some((a, p)) => ipv4_fact(*a, *p),
                None => json!({}),
            };
            if let Value::Object(m) = &mut v {
                m.insert("interface".into(), i.name.clone().into());
                m.insert(
                    "gateway".into(),
                    std::net::Ipv4Addr::from(r.gateway.to_be())
                        .to_string()
                        .into(),
                );
                m.insert("alias".into(), i.name.clone().into());
                m.insert("type".into(), i.kind.into());
                if let Some(mac) = &i.mac {
                    m.insert("macaddress".into(), mac.clone().into());
                }
                if let Some(mtu) = i.mtu {
                    m.insert("mtu".into(), mtu.into());
                }
            }
            Some(v)
        });
    put("default_ipv4", default.unwrap_or_else(|| json!({})));
    let text6 = std::fs::read_to_string("/proc/net/ipv6_route").unwrap_or_default();
    let default6 = default_route6(&text6).and_then(|(iface, gateway)| {
        let i = ifaces.iter().find(|i| i.name == iface)?;
        let mut m = serde_json::Map::new();
        if let Some((a, p, sc)) = i
            .ipv6
            .iter()
            .find(|(_, _, sc)| *sc == "global")
            .or(i.ipv6.first())
        {
            m.insert("address".into(), a.to_string().into());
            m.insert("prefix".into(), p.to_string().into());
            m.insert("scope".into(), (*sc).into());
        }
        m.insert("interface".into(), iface.clone().into());
        m.insert("gateway".into(), gateway.to_string().into());
        m.insert("type".into(), i.kind.into());
        if let Some(mac) = &i.mac {
            m.insert("macaddress".into(), mac.clone().into());
        }
        if let Some(mtu) = i.mtu {
            m.insert("mtu".into(), mtu.into());
        }
        Some(Value::Object(m))
    });
    put("default_ipv6", default6.unwrap_or_else(|| json!({})));
}

fn sys_iface(name: &str) -> Iface {
    let read = |f: &str| read_trim(&format!("/sys/class/net/{name}/{f}"));
    let flags = read("flags")
        .and_then(|f| u32::from_str_radix(f.trim_start_matches("0x"), 16).ok())
        .unwrap_or(0);
    let kind = match read("type").as_deref() {
        Some("772") => "loopback",
        _ if std::path::Path::new(&format!("/sys/class/net/{name}/bridge")).is_dir() => "bridge",
        _ if std::path::Path::new(&format!("/sys/class/net/{name}/bonding")).is_dir() => "bonding",
        Some("1") => "ether",
        _ => "unknown",
    };
    Iface {
        name: name.to_string(),
        mac: read("address").filter(|m| !m.is_empty()),
        mtu: read("mtu").and_then(|m| m.parse().ok()),
        // IFF_UP
        active: flags & 1 == 1,
        kind,
        ipv4: Vec::new(),
        ipv6: Vec::new(),
    }
}

fn ipv4_fact(addr: std::net::Ipv4Addr, prefix: u8) -> Value {
    let mask = if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(prefix.min(32)))
    };
    let a = u32::from(addr);
    let network = a & mask;
    json!({
        "address": addr.to_string(),
        "netmask": std::net::Ipv4Addr::from(mask).to_string(),
        "network": std::net::Ipv4Addr::from(network).to_string(),
        "broadcast": if prefix >= 31 { String::new() } else { std::net::Ipv4Addr::from(network | !mask).to_string() },
        "prefix": prefix.to_string(),
    })
}

fn iface_fact(i: &Iface) -> Value {
    let mut m = serde_json::Map::new();
    m.insert("device".into(), i.name.clone().into());
    m.insert("active".into(), i.active.into());
    m.insert("type".into(), i.kind.into());
    if let Some(mac) = &i.mac {
        m.insert("macaddress".into(), mac.clone().into());
    }
    if let Some(mtu) = i.mtu {
        m.insert("mtu".into(), mtu.into());
    }
    if let Some((a, p)) = i.ipv4.first() {
        m.insert("ipv4".into(), ipv4_fact(*a, *p));
    }
    if i.ipv4.len() > 1 {
        let more: Vec<Value> = i
            .ipv4
            .iter()
            .skip(1)
            .map(|(a, p)| ipv4_fact(*a, *p))
            .collect();
        m.insert("ipv4_secondaries".into(), more.into());
    }
    if !i.ipv6.is_empty() {
        let v6: Vec<Value> = i
            .ipv6
            .iter()
            .map(|(a, p, s)| json!({"address": a.to_string(), "prefix": p.to_string(), "scope": s}))
            .collect();
        m.insert("ipv6".into(), v6.into());
    }
    Value::Object(m)
}

/// A row of /proc/net/route; addresses as the kernel prints them (host order of a
/// big-endian value, so `to_be` recovers the address on any host).
#[derive(Debug, Clone, PartialEq)]
struct Route {
    iface: String,
    dest: u32,
    gateway: u32,
    mask: u32,
}

fn routes(text: &str) -> Vec<Route> {
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let hex = |i: usize| u32::from_str_radix(f.get(i)?, 16).ok();
            Some(Route {
                iface: (*f.first()?).to_string(),
                dest: hex(1)?,
                gateway: hex(2)?,
                mask: hex(7)?,
            })
        })
        .collect()
}

/// (interface, address, prefix) from `ip -j addr`, when iproute2 is installed.
fn ip_json_v4() -> Option<Vec<(String, std::net::Ipv4Addr, u8)>> {
    let ip = ["/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"]
        .iter()
        .find(|p| std::path::Path::new(p).is_file())?;
    let out = std::process::Command::new(ip)
        .args(["-j", "addr"])
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    parse_ip_json(&out.stdout)
}

fn parse_ip_json(bytes: &[u8]) -> Option<Vec<(String, std::net::Ipv4Addr, u8)>> {
    let v: Value = serde_json::from_slice(bytes).ok()?;
    let mut out = Vec::new();
    for link in v.as_array()? {
        let Some(name) = link.get("ifname").and_then(Value::as_str) else {
            continue;
        };
        for a in link
            .get("addr_info")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if a.get("family").and_then(Value::as_str) != Some("inet") {
                continue;
            }
            let addr = a
                .get("local")
                .and_then(Value::as_str)
                .and_then(|s| s.parse().ok());
            let prefix = a
                .get("prefixlen")
                .and_then(Value::as_u64)
                .and_then(|p| u8::try_from(p).ok());
            if let (Some(addr), Some(prefix)) = (addr, prefix) {
                out.push((name.to_string(), addr, prefix));
            }
        }
    }
    Some(out)
}

/// The host's own IPv4 addresses from the "Local:" table of /proc/net/fib_trie (a
/// `|-- a.b.c.d` line followed by `/32 host LOCAL`), each given the interface and
/// prefix of the most specific route that contains it; loopback addresses, which
/// have no row in /proc/net/route, go to the loopback interface as /8.
fn fib_trie_v4(
    trie: &str,
    routes: &[Route],
    loopback: &str,
) -> Vec<(String, std::net::Ipv4Addr, u8)> {
    let local = trie.split("Local:").nth(1).unwrap_or(trie);
    let mut out: Vec<(String, std::net::Ipv4Addr, u8)> = Vec::new();
    let mut last: Option<std::net::Ipv4Addr> = None;
    for line in local.lines() {
        let t = line.trim();
        if let Some(a) = t.strip_prefix("|-- ") {
            last = a.trim().parse().ok();
        } else if t.starts_with("/32 host LOCAL") {
            let Some(addr) = last.take() else { continue };
            if out.iter().any(|(_, a, _)| *a == addr) {
                continue;
            }
            let a = u32::from(addr);
            let best = routes
                .iter()
                .filter(|r| r.mask != 0 && a & r.mask.to_be() == r.dest.to_be())
                .max_by_key(|r| r.mask.count_ones());
            match best {
                Some(r) => out.push((r.iface.clone(), addr, r.mask.count_ones() as u8)),
                None if addr.is_loopback() => out.push((loopback.to_string(), addr, 8)),
                None => {}
            }
        }
    }
    out
}

/// (interface, address, prefix, scope) rows of /proc/net/if_inet6.
fn if_inet6(text: &str) -> Vec<(String, std::net::Ipv6Addr, u8, &'static str)> {
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let hex = f.first()?;
            let bytes: Vec<u8> = (0..16)
                .map(|i| {
                    hex.get(i * 2..i * 2 + 2)
                        .and_then(|b| u8::from_str_radix(b, 16).ok())
                })
                .collect::<Option<_>>()?;
            let addr = std::net::Ipv6Addr::from(<[u8; 16]>::try_from(bytes.as_slice()).ok()?);
            let prefix = u8::from_str_radix(f.get(2)?, 16).ok()?;
            let scope = match *f.get(3)? {
                "00" => "global",
                "10" => "host",
                "20" => "link",
                "40" => "site",
                _ => "unknown",
            };
            Some(((*f.get(5)?).to_string(), addr, prefix, scope))
        })
        .collect()
}

/// The IPv6 default route from /proc/net/ipv6_route: destination ::/0 with a next
/// hop (the kernel's catch-all "unreachable" row on lo has none).
fn default_route6(text: &str) -> Option<(String, std::net::Ipv6Addr)> {
    text.lines().find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        let zero = "00000000000000000000000000000000";
        if f.first() != Some(&zero) || f.get(1) != Some(&"00") {
            return None;
        }
        let hop = hex_ipv6(f.get(4)?)?;
        if hop.is_unspecified() {
            return None;
        }
        Some(((*f.get(9)?).to_string(), hop))
    })
}

fn hex_ipv6(hex: &str) -> Option<std::net::Ipv6Addr> {
    let bytes: Vec<u8> = (0..16)
        .map(|i| {
            hex.get(i * 2..i * 2 + 2)
                .and_then(|b| u8::from_str_radix(b, 16).ok())
        })
        .collect::<Option<_>>()?;
    Some(std::net::Ipv6Addr::from(
        <[u8; 16]>::try_from(bytes.as_slice()).ok()?,
    ))
}

/// `ansible_selinux`: from the kernel's selinuxfs, not a Python binding.
pub(super) fn selinux() -> Value {
    match read_trim("/sys/fs/selinux/enforce") {
        None => json!({"status": "disabled"}),
        Some(e) => {
            let mode = if e == "1" { "enforcing" } else { "permissive" };
            json!({"status": "enabled", "mode": mode})
        }
    }
}

/// Container or hypervisor, as Ansible names them; "NA" when nothing says so.
pub(super) fn virtualization() -> (String, String) {
    let guest = |t: &str| (t.to_string(), "guest".to_string());
    if std::path::Path::new("/.dockerenv").exists() {
        return guest("docker");
    }
    if std::path::Path::new("/run/.containerenv").exists() {
        return guest("podman");
    }
    let environ = std::fs::read("/proc/1/environ").unwrap_or_default();
    for var in environ.split(|b| *b == 0) {
        if let Some(v) = var.strip_prefix(b"container=") {
            return guest(&String::from_utf8_lossy(v));
        }
    }
    let cgroup = std::fs::read_to_string("/proc/1/cgroup").unwrap_or_default();
    for (needle, kind) in [
        ("docker", "docker"),
        ("lxc", "lxc"),
        ("kubepods", "container"),
    ] {
        if cgroup.contains(needle) {
            return guest(kind);
        }
    }
    let vendor = read_trim("/sys/class/dmi/id/sys_vendor").unwrap_or_default();
    let product = read_trim("/sys/class/dmi/id/product_name").unwrap_or_default();
    for (needle, kind) in [
        ("KVM", "kvm"),
        ("QEMU", "kvm"),
        ("VMware", "VMware"),
        ("VirtualBox", "virtualbox"),
        ("Xen", "xen"),
        ("Microsoft Corporation", "hyperv"),
        ("Amazon EC2", "kvm"),
        ("Google", "kvm"),
    ] {
        if vendor.contains(needle) || product.contains(needle) {
            return guest(kind);
        }
    }
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    if cpuinfo
        .lines()
        .any(|l| l.starts_with("flags") && l.split_whitespace().any(|f| f == "hypervisor"))
    {
        return guest("kvm");
    }
    ("NA".into(), "NA".into())
}

/// `ansible_mounts`: block-device and network mounts from /proc/mounts (Ansible
/// skips pseudo filesystems the same way), with sizes from `df` (std has no
/// statvfs), which is given a few seconds so a dead network mount cannot hang facts.
pub(super) fn mounts() -> Option<Value> {
    let text = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
    let sizes = df_sizes();
    let mut seen = std::collections::BTreeSet::new();
    let list: Vec<Value> = parse_mounts(&text)
        .into_iter()
        .filter(|(_, mount, _, _)| seen.insert(mount.clone()))
        .map(|(device, mount, fstype, options)| {
            let mut m = serde_json::Map::new();
            m.insert("device".into(), device.into());
            m.insert("fstype".into(), fstype.into());
            m.insert("options".into(), options.into());
            if let Some((total, avail)) = sizes.get(&mount) {
                m.insert("size_total".into(), (*total).into());
                m.insert("size_available".into(), (*avail).into());
            }
            m.insert("mount".into(), mount.into());
            Value::Object(m)
        })
        .collect();
    Some(Value::Array(list))
}

/// (device, mount point, fstype, options) of real mounts; `\040` and friends in
/// /proc/mounts are octal escapes.
fn parse_mounts(text: &str) -> Vec<(String, String, String, String)> {
    let unescape = |s: &str| {
        let mut out = String::new();
        let mut rest = s;
        while let Some(i) = rest.find('\\') {
            out.push_str(rest.get(..i).unwrap_or_default());
            let code = rest
                .get(i + 1..i + 4)
                .and_then(|o| u8::from_str_radix(o, 8).ok());
            match code {
                Some(c) => {
                    out.push(char::from(c));
                    rest = rest.get(i + 4..).unwrap_or_default();
                }
                None => {
                    out.push('\\');
                    rest = rest.get(i + 1..).unwrap_or_default();
                }
            }
        }
        out.push_str(rest);
        out
    };
    text.lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let device = unescape(f.next()?);
            let mount = unescape(f.next()?);
            let fstype = f.next()?.to_string();
            let options = f.next().unwrap_or_default().to_string();
            let real = device.starts_with('/') || device.contains(":/");
            (real && fstype != "none").then_some((device, mount, fstype, options))
        })
        .collect()
}

/// Mount point -> (total, available) bytes from `df -P -k`, or nothing after 5 s.
fn df_sizes() -> BTreeMap<String, (u64, u64)> {
    let Some(df) = ["/bin/df", "/usr/bin/df"]
        .iter()
        .find(|p| std::path::Path::new(p).is_file())
    else {
        return BTreeMap::new();
    };
    let child = std::process::Command::new(df)
        .args(["-P", "-k"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn();
    let Ok(mut child) = child else {
        return BTreeMap::new();
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return BTreeMap::new();
            }
        }
    }
    let mut text = String::new();
    if let Some(mut out) = child.stdout.take() {
        use std::io::Read;
        let _ = out.read_to_string(&mut text);
    }
    parse_df(&text)
}

fn parse_df(text: &str) -> BTreeMap<String, (u64, u64)> {
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let total: u64 = f.get(1)?.parse().ok()?;
            let avail: u64 = f.get(3)?.parse().ok()?;
            let mount = f.get(5..)?.join(" ");
            (!mount.is_empty()).then_some((mount, (total * 1024, avail * 1024)))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIB_TRIE: &str = "Main:\n  +-- 0.0.0.0/0 3 0 5\n     |-- 0.0.0.0\n        /0 universe UNICAST\n\
Local:\n  +-- 0.0.0.0/0 3 0 5\n     +-- 127.0.0.0/8 2 0 2\n        +-- 127.0.0.0/31 1 0 0\n\
           |-- 127.0.0.0\n              /8 host LOCAL\n           |-- 127.0.0.1\n              /32 host LOCAL\n\
        |-- 127.255.255.255\n           /32 link BROADCAST\n     +-- 192.0.2.0/24 2 0 2\n\
           |-- 192.0.2.0\n              /24 link UNICAST\n           |-- 192.0.2.2\n              /32 host LOCAL\n";

    const ROUTE: &str = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n\
eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n";

    #[test]
    fn addresses_without_iproute2() {
        let r = routes(ROUTE);
        assert_eq!(r.len(), 2);
        assert_eq!(
            std::net::Ipv4Addr::from(r[0].gateway.to_be()).to_string(),
            "192.0.2.1"
        );
        let v4 = fib_trie_v4(FIB_TRIE, &r, "lo");
        assert_eq!(
            v4,
            vec![
                ("lo".to_string(), "127.0.0.1".parse().unwrap(), 8),
                ("eth0".to_string(), "192.0.2.2".parse().unwrap(), 24),
            ]
        );
        assert_eq!(
            ipv4_fact("192.0.2.2".parse().unwrap(), 24),
            json!({"address": "192.0.2.2", "netmask": "255.255.255.0", "network": "192.0.2.0",
                   "broadcast": "192.0.2.255", "prefix": "24"})
        );
        // Odd content gives nothing rather than a panic.
        assert!(fib_trie_v4("|-- nonsense\n/32 host LOCAL\n", &r, "lo").is_empty());
        assert!(routes("header only\nx y\n").is_empty());
        let ip = br#"[{"ifname":"eth0","addr_info":[{"family":"inet","local":"10.0.0.5","prefixlen":16},{"family":"inet6","local":"::1","prefixlen":128}]},{"ifname":"x"}]"#;
        assert_eq!(
            parse_ip_json(ip).unwrap(),
            vec![("eth0".to_string(), "10.0.0.5".parse().unwrap(), 16)]
        );
        assert!(parse_ip_json(b"not json").is_none());
        let v6 = if_inet6("fe8000000000000000fc00fffe000001 04 40 20 80     eth0\nshort\n");
        assert_eq!(v6.len(), 1);
        assert_eq!(v6[0].1.to_string(), "fe80::fc:ff:fe00:1");
        assert_eq!((v6[0].2, v6[0].3), (64, "link"));
    }

    #[test]
    fn ipv6_default_mounts_and_df() {
        let route6 = "00000000000000000000000000000000 00 00000000000000000000000000000000 00 fd000000000000000000000000000001 00000400 00000002 00000000 00000003     eth0\n\
00000000000000000000000000000000 00 00000000000000000000000000000000 00 00000000000000000000000000000000 ffffffff 00000001 00000000 00200200       lo\n";
        let (iface, gw) = default_route6(route6).unwrap();
        assert_eq!(
            (iface.as_str(), gw.to_string().as_str()),
            ("eth0", "fd00::1")
        );
        assert!(default_route6(route6.lines().nth(1).unwrap()).is_none());
        let m = parse_mounts(
            "proc /proc proc rw 0 0\n/dev/vda / ext4 rw,relatime 0 0\n/dev/sdb1 /mnt/my\\040disk xfs ro 0 0\nsrv:/export /nfs nfs4 rw 0 0\n",
        );
        let mounts: Vec<&str> = m.iter().map(|(_, p, _, _)| p.as_str()).collect();
        assert_eq!(mounts, vec!["/", "/mnt/my disk", "/nfs"]);
        let df = parse_df(
            "Filesystem 1024-blocks Used Available Capacity Mounted on\n/dev/vda 100 40 60 40% /\n/dev/sdb1 10 1 9 10% /mnt/my disk\nbad line\n",
        );
        assert_eq!(df["/"], (102_400, 61_440));
        assert_eq!(df["/mnt/my disk"], (10_240, 9_216));
    }

    #[test]
    fn cpus() {
        let x86 = "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Xeon\nphysical id\t: 0\nsiblings\t: 4\ncpu cores\t: 2\n\n\
processor\t: 1\nvendor_id\t: GenuineIntel\nmodel name\t: Xeon\nphysical id\t: 0\nsiblings\t: 4\ncpu cores\t: 2\n";
        let c = cpu_facts(x86);
        assert_eq!((c.count, c.cores, c.threads_per_core), (1, 2, 2));
        assert_eq!(
            c.processor,
            vec!["0", "GenuineIntel", "Xeon", "1", "GenuineIntel", "Xeon"]
        );
        let arm = cpu_facts("processor\t: 0\nBogoMIPS\t: 48\n\nprocessor\t: 1\n");
        assert_eq!((arm.count, arm.cores, arm.threads_per_core), (2, 1, 1));
        assert_eq!(cpu_facts("garbage").count, 1);
    }
}
