//! The `ansible.utils` network filters (`ipaddr` with its queries, `ipv4`, `ipv6`,
//! `ipwrap`, `ipmath`, `ipsubnet`, `nthhost`, `network_in_usable`, `network_in_network`,
//! `next_nth_usable`, `previous_nth_usable`, `cidr_merge`, `ip4_hex`, `hwaddr`,
//! `macaddr`), following ansible.utils' `ipaddr_utils` over netaddr: an address is kept
//! with its prefix (`192.168.1.5/24` is that host in that network), IPv6 is written as
//! glibc's `inet_ntop` writes it, and "globally reachable" is IANA's registry as
//! netaddr 1.3 has it.
//!
//! Each filter answers to `ansible.utils.X`, to the short name ansible-core routes to it,
//! and to the deprecated `ansible.netcommon.X`.

use super::{FilterFn, Opts, add_filters, alias_filter, invalid, opts, py_str, split};
use minijinja::value::{Rest, Value as JValue, ValueKind};
use minijinja::{Environment, Error};
use std::net::{Ipv4Addr, Ipv6Addr};

/// An address with a prefix length (netaddr's `IPNetwork`: the address need not be the
/// network's first).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Net {
    v6: bool,
    ip: u128,
    prefix: u32,
}

impl Net {
    fn bits(&self) -> u32 {
        if self.v6 { 128 } else { 32 }
    }

    fn max(&self) -> u128 {
        if self.v6 {
            u128::MAX
        } else {
            u128::from(u32::MAX)
        }
    }

    fn hostmask(&self) -> u128 {
        let host_bits = self.bits() - self.prefix.min(self.bits());
        if host_bits >= 128 {
            u128::MAX
        } else {
            (1u128 << host_bits) - 1
        }
    }

    fn netmask(&self) -> u128 {
        self.max() ^ self.hostmask()
    }

    fn network(&self) -> u128 {
        self.ip & self.netmask()
    }

    fn last(&self) -> u128 {
        self.network() | self.hostmask()
    }

    /// netaddr has no broadcast for /31 and /32 (/127 and /128).
    fn broadcast(&self) -> Option<u128> {
        (self.bits() - self.prefix > 1).then(|| self.last())
    }

    /// The number of addresses (saturating at `u128::MAX` for `::/0`).
    fn size(&self) -> u128 {
        self.hostmask().saturating_add(1)
    }

    fn with_ip(&self, ip: u128) -> Net {
        Net { ip, ..*self }
    }

    /// This network contains `other` entirely (same version).
    fn contains(&self, other: &Net) -> bool {
        self.v6 == other.v6 && other.network() >= self.network() && other.last() <= self.last()
    }

    fn ip_text(&self) -> String {
        addr_text(self.v6, self.ip)
    }

    /// `str(v)`: the address with its prefix.
    fn text(&self) -> String {
        format!("{}/{}", self.ip_text(), self.prefix)
    }

    /// `str(v.cidr)`: the network with its prefix.
    fn cidr_text(&self) -> String {
        format!("{}/{}", addr_text(self.v6, self.network()), self.prefix)
    }
}

/// An address as netaddr writes it (IPv6 as glibc's `inet_ntop`).
fn addr_text(v6: bool, n: u128) -> String {
    if !v6 {
        return Ipv4Addr::from(n as u32).to_string();
    }
    let words: Vec<u16> = (0..8).map(|i| (n >> (112 - 16 * i)) as u16).collect();
    // The longest run of zero words (the first one on a tie), if at least two long.
    let (mut best, mut best_len, mut cur, mut cur_len) = (usize::MAX, 0usize, 0usize, 0usize);
    for (i, w) in words.iter().enumerate() {
        if *w == 0 {
            if cur_len == 0 {
                cur = i;
            }
            cur_len += 1;
            if cur_len > best_len {
                best = cur;
                best_len = cur_len;
            }
        } else {
            cur_len = 0;
        }
    }
    if best_len < 2 {
        best = usize::MAX;
    }
    let word = |i: usize| words.get(i).copied().unwrap_or(0);
    let mut out = String::new();
    let mut i = 0;
    while i < 8 {
        if i == best {
            out.push(':');
            if i == 0 {
                out.push(':');
            }
            i += best_len;
            continue;
        }
        // An IPv4-compatible or -mapped address ends in dotted form.
        if i == 6 && best == 0 && (best_len == 6 || (best_len == 5 && word(5) == 0xffff)) {
            let v4 = Ipv4Addr::from((u32::from(word(6)) << 16) | u32::from(word(7)));
            out.push_str(&v4.to_string());
            return out;
        }
        out.push_str(&format!("{:x}", word(i)));
        if i < 7 {
            out.push(':');
        }
        i += 1;
    }
    out
}

/// An IPv4 address in dotted form (each part 0-255, no leading zeros as inet_pton).
fn parse_v4(s: &str) -> Option<u128> {
    let parts: Vec<&str> = s.split('.').collect();
    if parts.len() != 4 {
        return None;
    }
    let mut n: u128 = 0;
    for p in parts {
        if p.is_empty()
            || p.len() > 3
            || !p.bytes().all(|b| b.is_ascii_digit())
            || (p.len() > 1 && p.starts_with('0'))
        {
            return None;
        }
        let v: u128 = p.parse().ok()?;
        if v > 255 {
            return None;
        }
        n = (n << 8) | v;
    }
    Some(n)
}

fn parse_v6(s: &str) -> Option<u128> {
    s.parse::<Ipv6Addr>().ok().map(u128::from)
}

/// netaddr's `IPNetwork(text)`: an address, with `/prefix` or (IPv4) `/netmask` or
/// `/hostmask`.
fn parse_net(s: &str) -> Option<Net> {
    let (addr, mask) = match s.split_once('/') {
        Some((a, m)) => (a, Some(m)),
        None => (s, None),
    };
    let (v6, ip) = match parse_v4(addr) {
        Some(n) => (false, n),
        None => (true, parse_v6(addr)?),
    };
    let bits = if v6 { 128 } else { 32 };
    let prefix = match mask {
        None => bits,
        Some(m) if !m.is_empty() && m.bytes().all(|b| b.is_ascii_digit()) => {
            let p: u32 = m.parse().ok()?;
            if p > bits {
                return None;
            }
            p
        }
        Some(m) if !v6 => {
            let mask = parse_v4(m)?;
            // A netmask (ones then zeros) or a hostmask (zeros then ones).
            let ones = mask.count_ones();
            let as_net = Net {
                v6: false,
                ip: 0,
                prefix: ones,
            };
            if as_net.netmask() == mask {
                ones
            } else {
                let host = Net {
                    v6: false,
                    ip: 0,
                    prefix: 32 - ones,
                };
                if host.hostmask() == mask {
                    32 - ones
                } else {
                    return None;
                }
            }
        }
        Some(_) => return None,
    };
    Some(Net { v6, ip, prefix })
}

/// Whether the value was written as a network (`/prefix`) or an address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum VType {
    Address,
    Network,
}

/// A filter's answer: a value, or Python's `False`/`None` (dropped from list results).
fn falsy(v: &JValue) -> bool {
    !v.is_true()
}

fn f() -> JValue {
    JValue::from(false)
}

fn none() -> JValue {
    JValue::from(())
}

/// `ipaddr_utils.ipaddr(value, query, version, alias)`.
fn ipaddr(value: &JValue, query: &JValue, version: u8, alias: &str) -> Result<JValue, Error> {
    if matches!(value.kind(), ValueKind::Seq | ValueKind::Iterable) {
        let mut out = Vec::new();
        for item in value.try_iter()? {
            let r = ipaddr(&item, query, version, alias)?;
            if !falsy(&r) {
                out.push(r);
            }
        }
        return Ok(JValue::from(out));
    }
    if !value.is_true() || (value.kind() == ValueKind::Bool) {
        return Ok(f());
    }
    let text = py_str(value);
    let (v, vtype) = if !text.is_empty() && text.chars().all(|c| c.is_ascii_digit()) {
        let n: u128 = match text.parse() {
            Ok(n) => n,
            Err(_) => return Ok(f()),
        };
        let v6 = (version == 0 && n > u128::from(u32::MAX)) || version == 6;
        if !v6 && n > u128::from(u32::MAX) {
            return Ok(f());
        }
        let bits = if v6 { 128 } else { 32 };
        (
            Net {
                v6,
                ip: n,
                prefix: bits,
            },
            VType::Address,
        )
    } else if let Some(v) = parse_net(&text) {
        let vt = if text.contains('/') {
            VType::Network
        } else {
            VType::Address
        };
        (v, vt)
    } else {
        // A numerical CIDR, `167772161/8`.
        let Some((a, p)) = text.split_once('/') else {
            return Ok(f());
        };
        let (Ok(a), Ok(p)) = (a.parse::<u128>(), p.parse::<u32>()) else {
            return Ok(f());
        };
        if a <= u128::from(u32::MAX) && p <= 32 {
            (
                Net {
                    v6: false,
                    ip: a,
                    prefix: p,
                },
                VType::Network,
            )
        } else if p <= 128 {
            (
                Net {
                    v6: true,
                    ip: a,
                    prefix: p,
                },
                VType::Network,
            )
        } else {
            return Ok(f());
        }
    };

    let mut q = match query.kind() {
        ValueKind::None | ValueKind::Undefined => String::new(),
        _ => py_str(query),
    };
    // A query that is a network of its own asks whether the value lies inside it.
    let mut iplist = None;
    if !q.is_empty()
        && (!is_query(&q) || q == "cidr_lookup")
        && !q.chars().all(|c| c.is_ascii_digit())
        && let Some(n) = parse_net(&q).filter(|_| q.contains('/') || parse_net(&q).is_some())
    {
        iplist = Some(n);
        q = "cidr_lookup".into();
    }
    if version != 0 && (if v.v6 { 6 } else { 4 }) != version {
        return Ok(f());
    }
    query_value(v, vtype, &q, value, iplist, query, alias)
}

fn is_query(q: &str) -> bool {
    matches!(
        q,
        "" | "6to4"
            | "address"
            | "address/prefix"
            | "bool"
            | "broadcast"
            | "cidr"
            | "cidr_lookup"
            | "first_usable"
            | "gateway"
            | "gw"
            | "host"
            | "host/prefix"
            | "hostmask"
            | "hostnet"
            | "int"
            | "ip"
            | "ip/prefix"
            | "ip_netmask"
            | "ipv4"
            | "ipv6"
            | "last_usable"
            | "link-local"
            | "lo"
            | "loopback"
            | "multicast"
            | "net"
            | "next_usable"
            | "netmask"
            | "network"
            | "network_id"
            | "network/prefix"
            | "network_netmask"
            | "network_wildcard"
            | "peer"
            | "prefix"
            | "previous_usable"
            | "private"
            | "public"
            | "range_usable"
            | "revdns"
            | "router"
            | "size"
            | "size_usable"
            | "subnet"
            | "type"
            | "unicast"
            | "v4"
            | "v6"
            | "version"
            | "wildcard"
            | "wrap"
    )
}

fn net(v6: bool, s: &str) -> Net {
    // Only called on the literal ranges below.
    let mut n = parse_net(s).unwrap_or(Net {
        v6,
        ip: 0,
        prefix: 0,
    });
    n.v6 = v6;
    n
}

fn addr_in(v: &Net, ranges: &[&str]) -> bool {
    let host = Net {
        prefix: v.bits(),
        ..*v
    };
    ranges.iter().any(|r| net(v.v6, r).contains(&host))
}

/// netaddr 1.3's `is_global()`: not in IANA's not-globally-reachable blocks, or in
/// their exceptions.
fn is_global(v: &Net) -> bool {
    let (blocked, except): (&[&str], &[&str]) = if v.v6 {
        (
            &[
                "::1/128",
                "::/128",
                "::ffff:0:0/96",
                "64:ff9b:1::/48",
                "100::/64",
                "2001::/23",
                "2001:db8::/32",
                "2002::/16",
                "fc00::/7",
                "fe80::/10",
            ],
            &[
                "2001:1::1/128",
                "2001:1::2/128",
                "2001:3::/32",
                "2001:4:112::/48",
                "2001:20::/28",
                "2001:30::/28",
            ],
        )
    } else {
        (
            &[
                "0.0.0.0/8",
                "10.0.0.0/8",
                "100.64.0.0/10",
                "127.0.0.0/8",
                "169.254.0.0/16",
                "172.16.0.0/12",
                "192.0.0.0/24",
                "192.0.0.170/31",
                "192.0.2.0/24",
                "192.168.0.0/16",
                "198.18.0.0/15",
                "198.51.100.0/24",
                "203.0.113.0/24",
                "240.0.0.0/4",
                "255.255.255.255/32",
            ],
            &["192.0.0.9/32", "192.0.0.10/32"],
        )
    };
    !addr_in(v, blocked) || addr_in(v, except)
}

fn multicast_range(v6: bool) -> Net {
    if v6 {
        net(true, "ff00::/8")
    } else {
        net(false, "224.0.0.0/4")
    }
}

/// (first, last) usable addresses: all of a /31, else without network and broadcast.
fn first_last(v: &Net) -> Option<(u128, u128)> {
    match v.size() {
        2 => Some((v.network(), v.last())),
        s if s > 1 => Some((v.network() + 1, v.last() - 1)),
        _ => None,
    }
}

fn s(text: String) -> JValue {
    JValue::from(text)
}

#[allow(clippy::too_many_arguments)]
fn query_value(
    v: Net,
    vtype: VType,
    q: &str,
    value: &JValue,
    iplist: Option<Net>,
    raw_query: &JValue,
    alias: &str,
) -> Result<JValue, Error> {
    let size = v.size();
    let is_net_addr = v.ip == v.network();
    Ok(match q {
        "" => match vtype {
            VType::Address => s(v.ip_text()),
            VType::Network => s(v.text()),
        },
        "6to4" => {
            if !v.v6 {
                let ip = if size == 1 || !is_net_addr {
                    v.ip
                } else {
                    return Ok(f());
                };
                let host = Net {
                    v6: false,
                    ip,
                    prefix: 32,
                };
                let public = is_global(&host) && !addr_in(&host, &["127.0.0.0/8"]);
                if public || !is_global(&host) {
                    let b = (ip as u32).to_be_bytes();
                    return Ok(s(format!(
                        "2002:{:02x}{:02x}:{:02x}{:02x}::1/48",
                        b[0], b[1], b[2], b[3]
                    )));
                }
                f()
            } else if net(true, "2002::/16").contains(&Net { prefix: 128, ..v })
                && (vtype == VType::Address || !is_net_addr)
            {
                value.clone()
            } else {
                f()
            }
        }
        "address" | "ip" => {
            if size == 1 || !is_net_addr || v.broadcast().is_none() || v.v6 {
                s(v.ip_text())
            } else {
                none()
            }
        }
        "address/prefix" | "gateway" | "gw" | "host/prefix" | "hostnet" | "router" => {
            if size > 2 && (is_net_addr || Some(v.ip) == v.broadcast()) {
                f()
            } else {
                s(v.text())
            }
        }
        "bool" => JValue::from(true),
        "broadcast" => match v.broadcast() {
            Some(b) if size > 2 => s(addr_text(v.v6, b)),
            _ => none(),
        },
        "cidr" => s(v.text()),
        "cidr_lookup" => match iplist {
            Some(n) if n.contains(&v) => value.clone(),
            _ => none(),
        },
        "first_usable" => match vtype {
            VType::Address => return Err(invalid("Not a network address")),
            VType::Network => match first_last(&v) {
                Some((first, _)) => s(addr_text(v.v6, first)),
                None => none(),
            },
        },
        "host" => {
            if size == 1 || !is_net_addr || v.broadcast().is_none() {
                s(v.text())
            } else {
                none()
            }
        }
        "hostmask" | "wildcard" => s(addr_text(v.v6, v.hostmask())),
        "int" => match vtype {
            VType::Address => JValue::from(v.ip),
            VType::Network => s(format!("{}/{}", v.ip, v.prefix)),
        },
        "ip/prefix" => {
            if size == 2 || (size > 1 && !is_net_addr) {
                s(v.text())
            } else {
                none()
            }
        }
        "ip_netmask" => {
            if size == 2 || (size > 1 && !is_net_addr) {
                s(format!("{} {}", v.ip_text(), addr_text(v.v6, v.netmask())))
            } else {
                none()
            }
        }
        "ipv4" | "v4" => {
            if v.v6 {
                if v.ip <= u128::from(u32::MAX) {
                    s(format!(
                        "{}/{}",
                        addr_text(false, v.ip),
                        v.prefix.saturating_sub(96)
                    ))
                } else if v.ip <= 0xFFFF_FFFF_FFFF {
                    s(format!(
                        "{}/{}",
                        addr_text(false, v.ip - 0xFFFF_0000_0000),
                        v.prefix.saturating_sub(96)
                    ))
                } else {
                    f()
                }
            } else {
                value.clone()
            }
        }
        "ipv6" | "v6" => {
            if v.v6 {
                value.clone()
            } else {
                s(format!(
                    "{}/{}",
                    addr_text(true, 0xFFFF_0000_0000 + v.ip),
                    v.prefix + 96
                ))
            }
        }
        "last_usable" => match vtype {
            VType::Address => return Err(invalid("Not a network address")),
            VType::Network => match first_last(&v) {
                Some((_, last)) => s(addr_text(v.v6, last)),
                None => none(),
            },
        },
        "link-local" => {
            let range = if v.v6 { "fe80::/10" } else { "169.254.0.0/16" };
            if addr_in(&v, &[range]) {
                value.clone()
            } else {
                none()
            }
        }
        "lo" | "loopback" => {
            let range = if v.v6 { "::1/128" } else { "127.0.0.0/8" };
            if addr_in(&v, &[range]) {
                value.clone()
            } else {
                none()
            }
        }
        "multicast" => {
            if multicast_range(v.v6).contains(&v) {
                value.clone()
            } else {
                none()
            }
        }
        "net" => {
            if size > 1 && is_net_addr {
                s(v.cidr_text())
            } else {
                none()
            }
        }
        "next_usable" | "previous_usable" => match vtype {
            VType::Address => return Err(invalid("Not a network address")),
            VType::Network => match first_last(&v) {
                Some((first, last)) => {
                    let candidate = if q == "next_usable" {
                        v.ip.checked_add(1)
                    } else {
                        v.ip.checked_sub(1)
                    };
                    match candidate {
                        Some(c) if c >= first && c <= last => s(addr_text(v.v6, c)),
                        _ => none(),
                    }
                }
                None => none(),
            },
        },
        "netmask" => s(addr_text(v.v6, v.netmask())),
        "network" | "network_id" => s(addr_text(v.v6, v.network())),
        "network/prefix" | "subnet" => s(v.cidr_text()),
        "network_netmask" => s(format!(
            "{} {}",
            addr_text(v.v6, v.network()),
            addr_text(v.v6, v.netmask())
        )),
        "network_wildcard" => s(format!(
            "{} {}",
            addr_text(v.v6, v.network()),
            addr_text(v.v6, v.hostmask())
        )),
        "peer" => match vtype {
            VType::Address => return Err(invalid("Not a network address")),
            VType::Network => match size {
                2 => s(addr_text(v.v6, v.ip ^ 1)),
                4 if v.ip.is_multiple_of(4) => {
                    return Err(invalid("Network address of /30 has no peer"));
                }
                4 if v.ip % 4 == 3 => return Err(invalid("Broadcast address of /30 has no peer")),
                4 => s(addr_text(v.v6, v.ip ^ 3)),
                _ => return Err(invalid("Not a point-to-point network")),
            },
        },
        "prefix" => JValue::from(v.prefix),
        "private" => {
            if !is_global(&v) {
                value.clone()
            } else {
                none()
            }
        }
        "public" => {
            let host = Net {
                prefix: v.bits(),
                ..v
            };
            let unicast = !multicast_range(v.v6).contains(&host);
            let loopback = addr_in(&v, &[if v.v6 { "::1/128" } else { "127.0.0.0/8" }]);
            let is_hostmask = (v.ip.wrapping_add(1) & v.ip) == 0;
            let inv = (v.ip ^ v.max()).wrapping_add(1);
            let is_netmask = inv & inv.wrapping_sub(1) == 0;
            if unicast && is_global(&v) && !loopback && !is_netmask && !is_hostmask {
                value.clone()
            } else {
                none()
            }
        }
        "range_usable" => match vtype {
            VType::Address => return Err(invalid("Not a network address")),
            VType::Network => match first_last(&v) {
                Some((first, last)) => s(format!(
                    "{}-{}",
                    addr_text(v.v6, first),
                    addr_text(v.v6, last)
                )),
                None => none(),
            },
        },
        "revdns" => s(revdns(&v)),
        "size" => JValue::from(size),
        "size_usable" => JValue::from(match size {
            1 => 0,
            2 => 2,
            n => n - 2,
        }),
        "type" => {
            if size == 1 || !is_net_addr {
                s("address".into())
            } else {
                s("network".into())
            }
        }
        "unicast" => {
            if !multicast_range(v.v6).contains(&v) {
                value.clone()
            } else {
                none()
            }
        }
        "version" => JValue::from(if v.v6 { 6 } else { 4 }),
        "wrap" => {
            if v.v6 {
                match vtype {
                    VType::Address => s(format!("[{}]", v.ip_text())),
                    VType::Network => s(format!("[{}]/{}", v.ip_text(), v.prefix)),
                }
            } else {
                value.clone()
            }
        }
        _ => {
            // A number: that host of the network (negative from the end).
            let index = if raw_query.kind() == ValueKind::Number {
                raw_query.as_i64()
            } else {
                super::jinja::py_float_text(q).map(|x| x as i64)
            };
            let Some(index) = index.filter(|_| super::jinja::py_float_text(q).is_some()) else {
                return Err(invalid(format!("{alias}: unknown filter type: {q}")));
            };
            if size == 1 {
                match vtype {
                    VType::Address => s(v.ip_text()),
                    VType::Network => s(v.text()),
                }
            } else {
                let ip = if index >= 0 {
                    v.network()
                        .checked_add(index as u128)
                        .filter(|ip| *ip <= v.last())
                } else {
                    v.last()
                        .checked_sub(index.unsigned_abs() as u128 - 1)
                        .filter(|ip| *ip >= v.network())
                };
                match ip {
                    Some(ip) => s(v.with_ip(ip).text()),
                    None => f(),
                }
            }
        }
    })
}

/// The reverse DNS name of the address.
fn revdns(v: &Net) -> String {
    if v.v6 {
        let hex = format!("{:032x}", v.ip);
        let mut parts: Vec<String> = hex.chars().rev().map(|c| c.to_string()).collect();
        parts.push("ip6.arpa.".into());
        parts.join(".")
    } else {
        let b = (v.ip as u32).to_be_bytes();
        format!("{}.{}.{}.{}.in-addr.arpa.", b[3], b[2], b[1], b[0])
    }
}

/// The value's address in CIDR form, for the filters built on `ipaddr(value, 'type')`.
fn normalized(value: &JValue) -> Result<Option<Net>, Error> {
    let t = ipaddr(value, &JValue::from("type"), 0, "ipaddr")?;
    let q = match t.as_str() {
        Some("address") => "cidr",
        Some("network") => "subnet",
        _ => return Ok(None),
    };
    let text = ipaddr(value, &JValue::from(q), 0, "ipaddr")?;
    Ok(text.as_str().and_then(parse_net))
}

fn ipwrap(value: JValue, query: Option<JValue>) -> Result<JValue, Error> {
    let q = query.unwrap_or(JValue::from(""));
    let wrap = JValue::from("wrap");
    if matches!(value.kind(), ValueKind::Seq | ValueKind::Iterable) {
        let mut out = Vec::new();
        for e in value.try_iter()? {
            match ipaddr(&e, &q, 0, "ipwrap") {
                Ok(r) if r.is_true() => out.push(ipaddr(&e, &wrap, 0, "ipwrap").unwrap_or(e)),
                _ => out.push(e),
            }
        }
        return Ok(JValue::from(out));
    }
    if !matches!(value.kind(), ValueKind::String | ValueKind::Bool) {
        return Err(invalid(format!(
            "Unrecognized type <<class '{}'>> for ipwrap filter <value>",
            super::py_type(&value)
        )));
    }
    match ipaddr(&value, &q, 0, "ipwrap") {
        Ok(r) if r.is_true() => Ok(ipaddr(&r, &wrap, 0, "ipwrap").unwrap_or(value)),
        _ => Ok(value),
    }
}

/// Python's `int(x)` for an argument the argument spec types as int.
fn int_arg(v: &JValue, what: &str) -> Result<i128, Error> {
    if v.is_integer() {
        return Ok(v.as_i64().map(i128::from).unwrap_or(0));
    }
    py_str(v).trim().parse::<i128>().map_err(|_| {
        invalid(format!(
            "argument '{what}' is of type {} and we were unable to convert to int",
            super::py_type(v)
        ))
    })
}

fn ipmath(value: JValue, amount: JValue) -> Result<String, Error> {
    let text = py_str(&value);
    let ip = if text.contains('/') {
        parse_net(&text)
    } else {
        parse_net(&text).filter(|_| !text.contains('/'))
    }
    .ok_or_else(|| {
        invalid(format!(
            "You must pass a valid IP address; {text} is invalid"
        ))
    })?;
    let amount = int_arg(&amount, "amount")?;
    let result = if amount >= 0 {
        ip.ip.checked_add(amount as u128)
    } else {
        ip.ip.checked_sub(amount.unsigned_abs())
    }
    .filter(|r| *r <= ip.max())
    .ok_or_else(|| invalid("result outside the address space"))?;
    Ok(addr_text(ip.v6, result))
}

fn ipsubnet(value: JValue, rest: Rest<JValue>) -> Result<JValue, Error> {
    let o = Opts::new(rest.0)?;
    let query = o.arg(0, "query")?.map(|q| py_str(&q)).unwrap_or_default();
    let index = match o.arg(1, "index")? {
        Some(i) if !i.is_none() => Some(int_arg(&i, "index")?),
        _ => None,
    };
    o.kw.assert_all_used()?;
    let vt = ipaddr(&value, &JValue::from("type"), 0, "ipsubnet")?;
    let Some(v) = normalized(&value)? else {
        return Ok(f());
    };
    let v = Net {
        ip: v.network(),
        ..v
    };
    let vtype = if vt.as_str() == Some("address") {
        VType::Address
    } else {
        VType::Network
    };
    // The value's type as ipsubnet re-reads it: the network form of an address is an
    // address only for a single host.
    let vtype2 = if v.size() == 1 {
        VType::Address
    } else {
        VType::Network
    };
    let _ = vtype;
    if query.is_empty() {
        return Ok(s(v.cidr_text()));
    }
    let total = v.bits();
    if query.chars().all(|c| c.is_ascii_digit()) {
        let q: u32 = query.parse().map_err(|_| invalid("bad subnet size"))?;
        if q > total {
            return Ok(f());
        }
        let Some(index) = index else {
            return Ok(match vtype2 {
                VType::Address => {
                    if q > v.prefix {
                        return Ok(f());
                    }
                    s(Net { prefix: q, ..v }.cidr_text())
                }
                VType::Network => {
                    if q < v.prefix {
                        return Err(invalid(format!("Requested subnet size of {q} is invalid")));
                    }
                    s(2u128.saturating_pow(q - v.prefix).to_string())
                }
            });
        };
        return Ok(match vtype2 {
            VType::Address => {
                // value.supernet(q): the supernets from /q down to /(prefix-1).
                let supernets: Vec<Net> = (q..v.prefix)
                    .map(|p| Net {
                        prefix: p,
                        ip: v.ip,
                        v6: v.v6,
                    })
                    .collect();
                let n = supernets.len() as i128;
                let i = if index < 0 { index + n } else { index };
                if index > i128::from(total) + 1 - index
                    || index < i128::from(q) - i128::from(total)
                {
                    return Ok(f());
                }
                match usize::try_from(i).ok().and_then(|i| supernets.get(i)) {
                    Some(n) => s(n.cidr_text()),
                    None => return Err(invalid("list index out of range")),
                }
            }
            VType::Network => {
                if q < v.prefix {
                    return Ok(f());
                }
                let subnets = 2i128.checked_pow(q - v.prefix).unwrap_or(i128::MAX);
                let i = if index < 0 { index + subnets } else { index };
                if i < 0 || i >= subnets {
                    return Ok(f());
                }
                let shift = total - q;
                let offset = if shift >= 128 {
                    0
                } else {
                    (i as u128) << shift
                };
                s(Net {
                    ip: v.network() + offset,
                    prefix: q,
                    v6: v.v6,
                }
                .cidr_text())
            }
        });
    }
    let Some(container) = normalized(&JValue::from(query.as_str()))? else {
        return Err(invalid(format!(
            "You must pass a valid subnet or IP address; {query} is invalid"
        )));
    };
    let shr = |x: u128, n: u32| if n >= 128 { 0 } else { x >> n };
    if shr(v.ip, total - container.prefix) == shr(container.ip, total - container.prefix) {
        let bits = v.prefix.saturating_sub(container.prefix);
        let mask = if bits >= 128 {
            u128::MAX
        } else {
            (1u128 << bits) - 1
        };
        let host_shift = total - v.prefix;
        let idx = shr(
            v.ip & (if host_shift >= 128 {
                0
            } else {
                mask << host_shift
            }),
            host_shift,
        );
        return Ok(s((idx + 1).to_string()));
    }
    Err(invalid(format!(
        "{} is not in the subnet {}",
        v.cidr_text(),
        container.cidr_text()
    )))
}

fn nthhost(value: JValue, query: Option<JValue>) -> Result<JValue, Error> {
    let Some(v) = normalized(&value).ok().flatten() else {
        return Ok(f());
    };
    let q = query.map(|q| py_str(&q)).unwrap_or_default();
    if q.is_empty() {
        return Ok(f());
    }
    let Ok(nth) = q.trim().parse::<i128>() else {
        return Ok(f());
    };
    if (v.size() as i128) > nth || v.size() == u128::MAX {
        let ip = if nth >= 0 {
            v.network().checked_add(nth as u128)
        } else {
            v.last().checked_sub(nth.unsigned_abs() - 1)
        };
        if let Some(ip) = ip.filter(|ip| *ip >= v.network() && *ip <= v.last()) {
            return Ok(s(addr_text(v.v6, ip)));
        }
    }
    Ok(f())
}

fn nth_usable(value: JValue, offset: JValue, forward: bool) -> Result<JValue, Error> {
    let Some(v) = normalized(&value).ok().flatten() else {
        return Ok(f());
    };
    if !offset.is_integer() {
        return Err(invalid("Must pass in an integer"));
    }
    let offset = offset.as_i64().map(i128::from).unwrap_or(0);
    let Some((first, last)) = first_last(&v) else {
        return Ok(none());
    };
    let signed = if forward { offset } else { -offset };
    let nth = if signed >= 0 {
        v.ip.checked_add(signed as u128)
    } else {
        v.ip.checked_sub(signed.unsigned_abs())
    };
    Ok(match nth {
        Some(n) if n >= first && n <= last => s(addr_text(v.v6, n)),
        _ => none(),
    })
}

/// `network_in_usable` / `network_in_network`: the tested range inside the value's.
fn network_in(value: JValue, test: JValue, usable: bool) -> Result<bool, Error> {
    let (Some(v), Some(w)) = (normalized(&value)?, normalized(&test)?) else {
        return Ok(false);
    };
    if v.v6 != w.v6 {
        return Ok(false);
    }
    let (v_first, v_last) = if usable {
        match first_last(&v) {
            Some((a, b)) => (a, b),
            None => (v.ip, v.ip),
        }
    } else {
        (v.network(), v.last())
    };
    let w_first = w.network();
    let w_last = if w.size() > 1 { w.last() } else { w.ip };
    Ok(v_first <= w_first && w_first <= v_last && v_first <= w_last && w_last <= v_last)
}

/// netaddr's `cidr_merge`: the fewest networks covering exactly the given ones, sorted
/// (IPv4 first).
fn cidr_merge(value: JValue, action: Option<String>) -> Result<JValue, Error> {
    if !matches!(
        value.kind(),
        ValueKind::Seq | ValueKind::Iterable | ValueKind::Map | ValueKind::String
    ) {
        return Err(invalid(format!(
            "cidr_merge: expected iterable, got {}",
            crate::template::py_repr_of(&value)
        )));
    }
    let mut nets = Vec::new();
    for item in value.try_iter()? {
        let text = py_str(&item);
        let n = parse_net(&text).ok_or_else(|| {
            invalid(format!(
                "cidr_merge: error in netaddr:\ninvalid IPNetwork {text}"
            ))
        })?;
        nets.push(Net {
            ip: n.network(),
            ..n
        });
    }
    match action.as_deref().unwrap_or("merge") {
        "merge" => {
            let mut out = Vec::new();
            for v6 in [false, true] {
                let mut ranges: Vec<(u128, u128)> = nets
                    .iter()
                    .filter(|n| n.v6 == v6)
                    .map(|n| (n.network(), n.last()))
                    .collect();
                ranges.sort();
                let mut merged: Vec<(u128, u128)> = Vec::new();
                for (a, b) in ranges {
                    match merged.last_mut() {
                        Some(last) if a <= last.1.saturating_add(1) => last.1 = last.1.max(b),
                        _ => merged.push((a, b)),
                    }
                }
                for (a, b) in merged {
                    out.extend(
                        range_to_cidrs(v6, a, b)
                            .into_iter()
                            .map(|n| s(n.cidr_text())),
                    );
                }
            }
            Ok(JValue::from(out))
        }
        "span" => {
            if nets.is_empty() {
                return Ok(none());
            }
            if nets.len() == 1 {
                let text = py_str(&value.try_iter()?.next().unwrap_or_default());
                return Ok(s(parse_net(&text).map(|n| n.text()).unwrap_or(text)));
            }
            let v6 = nets.first().is_some_and(|n| n.v6);
            if nets.iter().any(|n| n.v6 != v6) {
                return Err(invalid(
                    "cidr_merge: error in netaddr:\nIP sequence cannot contain both IPv4 and IPv6!",
                ));
            }
            let lo = nets.iter().map(Net::network).min().unwrap_or(0);
            let hi = nets.iter().map(Net::last).max().unwrap_or(0);
            let bits = if v6 { 128 } else { 32 };
            let mut prefix = bits;
            while prefix > 0 {
                let n = Net { v6, ip: lo, prefix };
                if n.network() <= lo && n.last() >= hi {
                    break;
                }
                prefix -= 1;
            }
            Ok(s(Net { v6, ip: lo, prefix }.cidr_text()))
        }
        other => Err(invalid(format!("cidr_merge: invalid action '{other}'"))),
    }
}

/// The CIDR blocks exactly covering the addresses `a..=b`.
fn range_to_cidrs(v6: bool, mut a: u128, b: u128) -> Vec<Net> {
    let bits = if v6 { 128 } else { 32 };
    let mut out = Vec::new();
    loop {
        let mut size_bits = if a == 0 {
            bits
        } else {
            a.trailing_zeros().min(bits)
        };
        loop {
            let span = if size_bits >= 128 {
                u128::MAX
            } else {
                (1u128 << size_bits) - 1
            };
            if a.checked_add(span).is_some_and(|end| end <= b) {
                break;
            }
            size_bits -= 1;
        }
        out.push(Net {
            v6,
            ip: a,
            prefix: bits - size_bits,
        });
        let span = if size_bits >= 128 {
            u128::MAX
        } else {
            (1u128 << size_bits) - 1
        };
        match a.checked_add(span) {
            Some(end) if end < b => a = end + 1,
            _ => break,
        }
    }
    out
}

fn ip4_hex(value: JValue, delimiter: Option<String>) -> Result<String, Error> {
    let text = py_str(&value);
    let n = parse_v4(&text).ok_or_else(|| {
        invalid(format!(
            "You must pass a valid IP address; {text} is invalid"
        ))
    })?;
    let b = (n as u32).to_be_bytes();
    let sep = delimiter.unwrap_or_default();
    Ok(b.iter()
        .map(|x| format!("{x:02x}"))
        .collect::<Vec<_>>()
        .join(&sep))
}

/// netaddr's `EUI(text)` for MAC-48 and EUI-64: the usual separators and groupings.
fn parse_mac(text: &str) -> Option<(u128, usize)> {
    let t = text.trim();
    let groups: Vec<&str> = t.split([':', '-', '.', ' ']).collect();
    let hex: String = match groups.len() {
        1 => t.to_string(),
        6 | 8 => groups.iter().map(|g| format!("{:0>2}", g)).collect(),
        3 | 4 if t.contains('.') || t.contains(':') => {
            groups.iter().map(|g| format!("{:0>4}", g)).collect()
        }
        2 => groups.iter().map(|g| format!("{:0>6}", g)).collect(),
        _ => return None,
    };
    let width = match hex.len() {
        12 => 6,
        16 => 8,
        _ => return None,
    };
    let bad_group = groups.len() > 1 && groups.iter().any(|g| g.is_empty() || g.len() > 6);
    if bad_group || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    u128::from_str_radix(&hex, 16).ok().map(|n| (n, width))
}

fn hwaddr(value: JValue, query: Option<JValue>, alias: &str) -> Result<JValue, Error> {
    let q = query.map(|q| py_str(&q)).unwrap_or_default();
    let text = py_str(&value);
    let parsed = if value.kind() == ValueKind::String {
        parse_mac(&text)
    } else {
        None
    };
    let Some((n, width)) = parsed else {
        return match q.as_str() {
            "" | "bool" => Ok(none()),
            _ => Err(invalid(format!("{alias}: not a hardware address: {text}"))),
        };
    };
    let bytes: Vec<u8> = (0..width).rev().map(|i| (n >> (8 * i)) as u8).collect();
    let hex = |upper: bool| -> Vec<String> {
        bytes
            .iter()
            .map(|b| {
                if upper {
                    format!("{b:02X}")
                } else {
                    format!("{b:02x}")
                }
            })
            .collect()
    };
    let pairs = |sep: &str| -> String {
        hex(false)
            .chunks(2)
            .map(|c| c.concat())
            .collect::<Vec<_>>()
            .join(sep)
    };
    Ok(match q.as_str() {
        "" => value.clone(),
        "bool" => JValue::from(true),
        "int" => JValue::from(n),
        "bare" => s(hex(true).concat()),
        "cisco" => s(pairs(".")),
        "eui48" | "win" => s(hex(true).join("-")),
        "linux" => s(hex(false).join(":")),
        "pgsql" | "postgresql" | "psql" => {
            let h = hex(false).concat();
            let (a, b) = h.split_at(h.len() / 2);
            s(format!("{a}:{b}"))
        }
        "unix" => s(bytes
            .iter()
            .map(|b| format!("{b:x}"))
            .collect::<Vec<_>>()
            .join(":")),
        other => return Err(invalid(format!("{alias}: unknown filter type: {other}"))),
    })
}

/// Registers filters as `ansible.utils.NAME`, the deprecated `ansible.netcommon.NAME`,
/// and the short name ansible-core routes (when `short`).
fn add(env: &mut Environment<'static>, table: &[(&'static str, bool, FilterFn)]) {
    for &(name, short, f) in table {
        let fqcn: &'static str = Box::leak(format!("ansible.utils.{name}").into_boxed_str());
        add_filters(env, &[(fqcn, f)]);
        alias_filter(env, format!("ansible.netcommon.{name}"), fqcn);
        if short {
            alias_filter(env, name.to_string(), fqcn);
        }
    }
}

/// `value | ipaddr(query)` with a version (0: any).
fn ipaddr_call(a: &[JValue], version: u8, alias: &str) -> Result<JValue, Error> {
    let (value, o) = opts(a)?;
    let query = o.arg(0, "query")?.unwrap_or(JValue::from(""));
    // ipaddr's own `version` and `alias` parameters; the wrappers fix the version.
    let _ = o.arg(1, "version")?;
    let _ = o.arg(2, "alias")?;
    o.done(alias, 3)?;
    ipaddr(&value, &query, version, alias)
}

/// A filter's value and its one optional argument.
fn with_opt(a: &[JValue], name: &str, filter: &str) -> Result<(JValue, Option<JValue>), Error> {
    let (v, o) = opts(a)?;
    let x = o.arg(0, name)?;
    o.done(filter, 1)?;
    Ok((v, x))
}

/// A filter's value and its one required argument.
fn with_req(a: &[JValue], name: &str, filter: &str) -> Result<(JValue, JValue), Error> {
    let (v, o) = opts(a)?;
    let x = o.req(0, name, filter)?;
    o.done(filter, 1)?;
    Ok((v, x))
}

/// Registers the network filters.
pub(crate) fn register(env: &mut Environment<'static>) {
    add(
        env,
        &[
            ("ipaddr", true, |a| ipaddr_call(a, 0, "ipaddr")),
            ("ipv4", true, |a| ipaddr_call(a, 4, "ipv4")),
            ("ipv6", true, |a| ipaddr_call(a, 6, "ipv6")),
            ("ipwrap", true, |a| {
                let (v, q) = with_opt(a, "query", "ipwrap")?;
                ipwrap(v, q)
            }),
            ("ipmath", true, |a| {
                let (v, n) = with_req(a, "amount", "ipmath")?;
                ipmath(v, n).map(JValue::from)
            }),
            ("ipsubnet", true, |a| {
                split(a).and_then(|(v, r)| ipsubnet(v, r))
            }),
            ("nthhost", true, |a| {
                let (v, q) = with_opt(a, "query", "nthhost")?;
                nthhost(v, q)
            }),
            ("next_nth_usable", true, |a| {
                let (v, n) = with_req(a, "offset", "next_nth_usable")?;
                nth_usable(v, n, true)
            }),
            ("previous_nth_usable", true, |a| {
                let (v, n) = with_req(a, "offset", "previous_nth_usable")?;
                nth_usable(v, n, false)
            }),
            ("network_in_usable", true, |a| {
                let (v, t) = with_req(a, "test", "network_in_usable")?;
                network_in(v, t, true).map(JValue::from)
            }),
            ("network_in_network", true, |a| {
                let (v, t) = with_req(a, "test", "network_in_network")?;
                network_in(v, t, false).map(JValue::from)
            }),
            ("cidr_merge", true, |a| {
                let (v, action) = with_opt(a, "action", "cidr_merge")?;
                cidr_merge(v, action.map(|x| py_str(&x)))
            }),
            ("ip4_hex", false, |a| {
                let (v, d) = with_opt(a, "delimiter", "ip4_hex")?;
                ip4_hex(v, d.map(|x| py_str(&x))).map(JValue::from)
            }),
            ("hwaddr", true, |a| {
                let (v, q) = with_opt(a, "query", "hwaddr")?;
                hwaddr(v, q, "hwaddr")
            }),
            ("macaddr", false, |a| {
                let (v, q) = with_opt(a, "query", "macaddr")?;
                hwaddr(v, q, "macaddr")
            }),
        ],
    );
}

#[cfg(test)]
mod tests {
    use super::super::check::{errors, table};
    use serde_json::json;

    // Expected values: ansible-core 2.18.19 (ansible 11.13.0, with netaddr 1.3.0 and
    // jmespath 1.1.0 for the collections), each expression evaluated as
    //   init_plugin_loader(); Templar(loader=DataLoader(), variables={'nl': '\n'})
    //       .template('{{ (EXPR) | to_json }}')
    // and an error's text matched by the part of Ansible's message shown.
    #[test]
    fn ipaddr_family_matches_ansible_utils() {
        let vars = json!({"nl": "\n"});
        table(
            &vars,
            &[
                (r#""192.168.1.5"|ansible.utils.ipaddr"#, r#""192.168.1.5""#),
                (
                    r#""192.168.1.5/24"|ansible.utils.ipaddr"#,
                    r#""192.168.1.5/24""#,
                ),
                (
                    r#""192.168.1.0/24"|ansible.utils.ipaddr(5)"#,
                    r#""192.168.1.5/24""#,
                ),
                (
                    r#""192.168.1.0/24"|ansible.utils.ipaddr("5")"#,
                    r#""192.168.1.5/24""#,
                ),
                (
                    r#""192.168.1.0/24"|ansible.utils.ipaddr(-1)"#,
                    r#""192.168.1.255/24""#,
                ),
                (r#""192.168.1.0/24"|ansible.utils.ipaddr(300)"#, r#"false"#),
                (r#""010.0.0.1"|ansible.utils.ipaddr"#, r#"false"#),
                (r#""10.1"|ansible.utils.ipaddr"#, r#"false"#),
                (r#""167772161/8"|ansible.utils.ipaddr"#, r#""10.0.0.1/8""#),
                (r#""167772161"|ansible.utils.ipaddr"#, r#""10.0.0.1""#),
                (
                    r#""192.168.1.5/255.255.255.0"|ansible.utils.ipaddr"#,
                    r#""192.168.1.5/24""#,
                ),
                (
                    r#""192.168.1.5/0.0.0.255"|ansible.utils.ipaddr"#,
                    r#""192.168.1.5/24""#,
                ),
                (
                    r#""2001:DB8:0:0:0:0:0:1/64"|ansible.utils.ipaddr"#,
                    r#""2001:db8::1/64""#,
                ),
                (r#""::ffff:1.2.3.4"|ipaddr"#, r#""::ffff:1.2.3.4""#),
                (r#""::1.2.3.4"|ipaddr"#, r#""::1.2.3.4""#),
                (r#""::1"|ipaddr"#, r#""::1""#),
                (r#""::"|ipaddr"#, r#""::""#),
                (r#""fe80::1%eth0"|ipaddr"#, r#"false"#),
                (r#""abc"|ipaddr"#, r#"false"#),
                (
                    r#"['192.168.1.1', 'abc', '10.0.0.0/8', '::1']|ipaddr"#,
                    r#"["192.168.1.1", "10.0.0.0/8", "::1"]"#,
                ),
                (
                    r#"['192.168.1.1', 'abc', '10.0.0.0/8', '::1']|ipv4"#,
                    r#"["192.168.1.1", "10.0.0.0/8"]"#,
                ),
                (
                    r#"['192.168.1.1', 'abc', '10.0.0.0/8', '::1']|ipv6"#,
                    r#"["::1"]"#,
                ),
                (
                    r#"['192.168.1.1', '10.0.0.0/8', '::1']|ipaddr('address')"#,
                    r#"["192.168.1.1", "::1"]"#,
                ),
                (r#""192.168.1.5/24"|ipaddr('address')"#, r#""192.168.1.5""#),
                (r#""192.168.1.0/24"|ipaddr('address')"#, r#"null"#),
                (r#""192.168.1.0/31"|ipaddr('address')"#, r#""192.168.1.0""#),
                (r#""2001:db8::/64"|ipaddr('address')"#, r#""2001:db8::""#),
                (
                    r#""192.168.1.5/24"|ipaddr('broadcast')"#,
                    r#""192.168.1.255""#,
                ),
                (r#""192.168.1.5/31"|ipaddr('broadcast')"#, r#"null"#),
                (r#""192.168.1.5/24"|ipaddr('cidr')"#, r#""192.168.1.5/24""#),
                (r#""192.168.1.5/24"|ipaddr('network')"#, r#""192.168.1.0""#),
                (
                    r#""192.168.1.5/24"|ipaddr('netmask')"#,
                    r#""255.255.255.0""#,
                ),
                (r#""192.168.1.5/24"|ipaddr('hostmask')"#, r#""0.0.0.255""#),
                (r#""192.168.1.5/24"|ipaddr('prefix')"#, r#"24"#),
                (r#""192.168.1.5/24"|ipaddr('size')"#, r#"256"#),
                (r#""192.168.1.5/24"|ipaddr('size_usable')"#, r#"254"#),
                (r#""192.168.1.5/32"|ipaddr('size_usable')"#, r#"0"#),
                (r#""192.168.1.5/31"|ipaddr('size_usable')"#, r#"2"#),
                (
                    r#""192.168.1.5/24"|ipaddr('subnet')"#,
                    r#""192.168.1.0/24""#,
                ),
                (
                    r#""192.168.1.5/24"|ipaddr('network/prefix')"#,
                    r#""192.168.1.0/24""#,
                ),
                (r#""192.168.1.5/24"|ipaddr('type')"#, r#""address""#),
                (r#""192.168.1.0/24"|ipaddr('type')"#, r#""network""#),
                (r#""192.168.1.5"|ipaddr('type')"#, r#""address""#),
                (r#""192.168.1.5/24"|ipaddr('host')"#, r#""192.168.1.5/24""#),
                (r#""192.168.1.0/24"|ipaddr('host')"#, r#"null"#),
                (
                    r#""192.168.1.5/24"|ipaddr('host/prefix')"#,
                    r#""192.168.1.5/24""#,
                ),
                (r#""192.168.1.0/24"|ipaddr('host/prefix')"#, r#"false"#),
                (
                    r#""192.168.1.5/24"|ipaddr('ip/prefix')"#,
                    r#""192.168.1.5/24""#,
                ),
                (r#""192.168.1.0/24"|ipaddr('ip/prefix')"#, r#"null"#),
                (
                    r#""192.168.1.5/24"|ipaddr('ip_netmask')"#,
                    r#""192.168.1.5 255.255.255.0""#,
                ),
                (
                    r#""192.168.1.5/24"|ipaddr('network_netmask')"#,
                    r#""192.168.1.0 255.255.255.0""#,
                ),
                (
                    r#""192.168.1.5/24"|ipaddr('network_wildcard')"#,
                    r#""192.168.1.0 0.0.0.255""#,
                ),
                (r#""192.168.1.0/24"|ipaddr('net')"#, r#""192.168.1.0/24""#),
                (r#""192.168.1.5/24"|ipaddr('net')"#, r#"null"#),
                (r#""192.168.1.5/24"|ipaddr('int')"#, r#""3232235781/24""#),
                (r#""192.168.1.5"|ipaddr('int')"#, r#"3232235781"#),
                (
                    r#""192.168.1.0/24"|ipaddr('first_usable')"#,
                    r#""192.168.1.1""#,
                ),
                (
                    r#""192.168.1.0/24"|ipaddr('last_usable')"#,
                    r#""192.168.1.254""#,
                ),
                (
                    r#""192.168.1.0/24"|ipaddr('range_usable')"#,
                    r#""192.168.1.1-192.168.1.254""#,
                ),
                (
                    r#""192.168.1.5/24"|ipaddr('next_usable')"#,
                    r#""192.168.1.6""#,
                ),
                (r#""192.168.1.254/24"|ipaddr('next_usable')"#, r#"null"#),
                (
                    r#""192.168.1.5/24"|ipaddr('previous_usable')"#,
                    r#""192.168.1.4""#,
                ),
                (
                    r#""192.168.1.0/31"|ipaddr('first_usable')"#,
                    r#""192.168.1.0""#,
                ),
                (r#""192.168.1.1/30"|ipaddr('peer')"#, r#""192.168.1.2""#),
                (r#""192.168.1.0/31"|ipaddr('peer')"#, r#""192.168.1.1""#),
                (r#""192.168.1.5"|ipaddr('private')"#, r#""192.168.1.5""#),
                (r#""8.8.8.8"|ipaddr('private')"#, r#"null"#),
                (r#""8.8.8.8"|ipaddr('public')"#, r#""8.8.8.8""#),
                (r#""192.168.1.5"|ipaddr('public')"#, r#"null"#),
                (r#""255.255.255.0"|ipaddr('public')"#, r#"null"#),
                (
                    r#""2001:4860::8888"|ipaddr('public')"#,
                    r#""2001:4860::8888""#,
                ),
                (r#""fd00::1"|ipaddr('private')"#, r#""fd00::1""#),
                (r#""127.0.0.1"|ipaddr('loopback')"#, r#""127.0.0.1""#),
                (r#""::1"|ipaddr('lo')"#, r#""::1""#),
                (r#""169.254.1.1"|ipaddr('link-local')"#, r#""169.254.1.1""#),
                (r#""fe80::1"|ipaddr('link-local')"#, r#""fe80::1""#),
                (r#""224.0.0.1"|ipaddr('multicast')"#, r#""224.0.0.1""#),
                (r#""224.0.0.1"|ipaddr('unicast')"#, r#"null"#),
                (r#""10.0.0.1"|ipaddr('unicast')"#, r#""10.0.0.1""#),
                (
                    r#""192.168.1.5"|ipaddr('revdns')"#,
                    r#""5.1.168.192.in-addr.arpa.""#,
                ),
                (
                    r#""2001:db8::1"|ipaddr('revdns')"#,
                    r#""1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa.""#,
                ),
                (r#""192.168.1.5"|ipaddr('version')"#, r#"4"#),
                (r#""::1"|ipaddr('version')"#, r#"6"#),
                (
                    r#""192.168.1.5"|ipaddr('ipv6')"#,
                    r#""::ffff:192.168.1.5/128""#,
                ),
                (
                    r#""192.168.1.5/24"|ipaddr('ipv6')"#,
                    r#""::ffff:192.168.1.5/120""#,
                ),
                (
                    r#""::ffff:192.168.1.5"|ipaddr('ipv4')"#,
                    r#""192.168.1.5/32""#,
                ),
                (
                    r#""::ffff:192.168.1.5/120"|ipaddr('ipv4')"#,
                    r#""192.168.1.5/24""#,
                ),
                (r#""2001:db8::1"|ipaddr('ipv4')"#, r#"false"#),
                (r#""2001:db8::1"|ipaddr('wrap')"#, r#""[2001:db8::1]""#),
                (
                    r#""2001:db8::1/64"|ipaddr('wrap')"#,
                    r#""[2001:db8::1]/64""#,
                ),
                (r#""192.168.1.1"|ipaddr('wrap')"#, r#""192.168.1.1""#),
                (r#""192.168.1.1"|ipaddr('bool')"#, r#"true"#),
                (
                    r#""192.168.1.1"|ipaddr('192.168.0.0/16')"#,
                    r#""192.168.1.1""#,
                ),
                (r#""10.1.1.1"|ipaddr('192.168.0.0/16')"#, r#"null"#),
                (
                    r#"['192.168.1.1', '10.0.0.1']|ipaddr('192.168.0.0/16')"#,
                    r#"["192.168.1.1"]"#,
                ),
                (
                    r#""192.168.1.1"|ipaddr('6to4')"#,
                    r#""2002:c0a8:0101::1/48""#,
                ),
                (
                    r#""192.168.1.5/24"|ipaddr('gateway')"#,
                    r#""192.168.1.5/24""#,
                ),
                (r#""192.168.1.0/24"|ipaddr('router')"#, r#"false"#),
                (r#""2001:db8::1"|ipwrap"#, r#""[2001:db8::1]""#),
                (
                    r#"['2001:db8::1', '192.168.1.1', 'abc', '::1/64']|ipwrap"#,
                    r#"["[2001:db8::1]", "192.168.1.1", "abc", "[::1]/64"]"#,
                ),
                (r#"'192.168.1.1'|ipmath(5)"#, r#""192.168.1.6""#),
                (r#"'192.168.1.1/24'|ipmath(-5)"#, r#""192.168.0.252""#),
                (r#"'2001:db8::1'|ipmath(16)"#, r#""2001:db8::11""#),
                (r#"'192.168.0.0/16'|ipsubnet(20)"#, r#""16""#),
                (r#"'192.168.0.0/16'|ipsubnet(20, 0)"#, r#""192.168.0.0/20""#),
                (
                    r#"'192.168.0.0/16'|ipsubnet(20, -1)"#,
                    r#""192.168.240.0/20""#,
                ),
                (r#"'192.168.0.0/16'|ipsubnet(20, 16)"#, r#"false"#),
                (r#"'192.168.1.5'|ipsubnet(20)"#, r#""192.168.0.0/20""#),
                (r#"'192.168.1.5'|ipsubnet(20, 0)"#, r#""192.168.0.0/20""#),
                (r#"'192.168.1.5'|ipsubnet(20, 2)"#, r#""192.168.0.0/22""#),
                (
                    r#"'192.168.144.5'|ipsubnet('192.168.0.0/16')"#,
                    r#""36870""#,
                ),
                (
                    r#"'192.168.144.0/20'|ipsubnet('192.168.0.0/16')"#,
                    r#""10""#,
                ),
                (r#"'192.168.0.0/16'|ipsubnet"#, r#""192.168.0.0/16""#),
                (r#"'10.0.0.0/24'|nthhost(5)"#, r#""10.0.0.5""#),
                (r#"'10.0.0.0/24'|nthhost(-1)"#, r#""10.0.0.255""#),
                (r#"'10.0.0.0/24'|nthhost(300)"#, r#"false"#),
                (r#"'10.0.0.5/24'|nthhost('x')"#, r#"false"#),
                (r#"'10.0.0.5/24'|next_nth_usable(2)"#, r#""10.0.0.7""#),
                (r#"'10.0.0.253/24'|next_nth_usable(2)"#, r#"null"#),
                (r#"'10.0.0.5/24'|previous_nth_usable(2)"#, r#""10.0.0.3""#),
                (
                    r#"'192.168.0.0/24'|network_in_usable('192.168.0.1')"#,
                    r#"true"#,
                ),
                (
                    r#"'192.168.0.0/24'|network_in_usable('192.168.0.255')"#,
                    r#"false"#,
                ),
                (
                    r#"'192.168.0.0/24'|network_in_usable('192.168.0.0/25')"#,
                    r#"false"#,
                ),
                (
                    r#"'192.168.0.0/24'|network_in_network('192.168.0.255')"#,
                    r#"true"#,
                ),
                (
                    r#"'192.168.0.0/24'|network_in_network('192.168.0.0/25')"#,
                    r#"true"#,
                ),
                (
                    r#"'192.168.0.0/24'|network_in_network('192.168.1.0/25')"#,
                    r#"false"#,
                ),
                (
                    r#"['192.168.0.0/17', '192.168.128.0/17', '10.0.0.1', '10.0.0.2', '::1']|cidr_merge"#,
                    r#"["10.0.0.1/32", "10.0.0.2/32", "192.168.0.0/16", "::1/128"]"#,
                ),
                (
                    r#"['192.168.1.1', '192.168.1.2', '192.168.1.3']|cidr_merge"#,
                    r#"["192.168.1.1/32", "192.168.1.2/31"]"#,
                ),
                (
                    r#"['192.168.0.0/24', '192.168.3.0/24']|cidr_merge('span')"#,
                    r#""192.168.0.0/22""#,
                ),
                (
                    r#"['192.168.1.1/24']|cidr_merge('span')"#,
                    r#""192.168.1.1/24""#,
                ),
                (r#"[]|cidr_merge('span')"#, r#"null"#),
                (r#"'192.168.1.5'|ansible.utils.ip4_hex"#, r#""c0a80105""#),
                (
                    r#"'192.168.1.5'|ansible.utils.ip4_hex(':')"#,
                    r#""c0:a8:01:05""#,
                ),
                (r#"'1a:2b:3c:4d:5e:6f'|hwaddr"#, r#""1a:2b:3c:4d:5e:6f""#),
                (r#"'1a:2b:3c:4d:5e:6f'|hwaddr('bool')"#, r#"true"#),
                (r#"'1a:2b:3c:4d:5e:6f'|hwaddr('int')"#, r#"28772997619311"#),
                (r#"'1a:2b:3c:4d:5e:6f'|hwaddr('bare')"#, r#""1A2B3C4D5E6F""#),
                (
                    r#"'1a:2b:3c:4d:5e:6f'|hwaddr('cisco')"#,
                    r#""1a2b.3c4d.5e6f""#,
                ),
                (
                    r#"'1a:2b:3c:4d:5e:6f'|hwaddr('eui48')"#,
                    r#""1A-2B-3C-4D-5E-6F""#,
                ),
                (
                    r#"'1A-2B-3C-4D-5E-6F'|hwaddr('linux')"#,
                    r#""1a:2b:3c:4d:5e:6f""#,
                ),
                (
                    r#"'1a2b.3c4d.5e6f'|hwaddr('unix')"#,
                    r#""1a:2b:3c:4d:5e:6f""#,
                ),
                (r#"'01:02:03:04:05:06'|hwaddr('unix')"#, r#""1:2:3:4:5:6""#),
                (r#"'1a2b3c4d5e6f'|hwaddr('pgsql')"#, r#""1a2b3c:4d5e6f""#),
                (
                    r#"'1a:2b:3c:4d:5e:6f'|ansible.utils.macaddr('linux')"#,
                    r#""1a:2b:3c:4d:5e:6f""#,
                ),
                (r#"'xx'|hwaddr"#, r#"null"#),
            ],
        );
        errors(
            &vars,
            &[
                (
                    r#""192.168.1.5"|ipaddr('first_usable')"#,
                    "Not a network address",
                ),
                (
                    r#""192.168.1.0/30"|ipaddr('peer')"#,
                    "Network address of /30 has no peer",
                ),
                (
                    r#""192.168.1.0/24"|ipaddr('peer')"#,
                    "Not a point-to-point network",
                ),
                (r#""192.168.1.5/24"|ipaddr('bogus')"#, ""),
                (
                    r#"'x'|ipmath(1)"#,
                    "You must pass a valid IP address; x is invalid",
                ),
                (
                    r#"'192.168.1.1'|ipmath('a')"#,
                    "and we were unable to convert to int",
                ),
                (
                    r#"'192.168.0.0/16'|ipsubnet(8)"#,
                    "Requested subnet size of 8 is invalid",
                ),
                (
                    r#"'10.0.0.0/20'|ipsubnet('192.168.0.0/16')"#,
                    "10.0.0.0/20 is not in the subnet 192.168.0.0/16",
                ),
                (r#"'10.0.0.5/24'|next_nth_usable('x')"#, "an int"),
                (r#"['x']|cidr_merge"#, "cidr_merge: error in netaddr"),
                (
                    r#"'xx'|hwaddr('linux')"#,
                    "hwaddr: not a hardware address: xx",
                ),
                (
                    r#"'1a:2b:3c:4d:5e:6f'|hwaddr('bogus')"#,
                    "hwaddr: unknown filter type: bogus",
                ),
            ],
        );
    }
}
