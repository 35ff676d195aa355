//! The wait_for module: wait for a TCP port to accept connections, stop accepting or
//! drain, for a file to appear (optionally containing a pattern) or go away, or just
//! for some time, with ansible.builtin.wait_for's arguments, timing and messages.
//!
//! Drained connections are counted from /proc/net/tcp and /proc/net/tcp6, by local
//! port; `exclude_hosts` is accepted and matched against the remote address. Those are
//! Linux's: elsewhere (macOS) state=drained fails naming the platform, as Ansible's
//! does there without psutil.
//! Changes nothing, so check mode runs it the same.

use super::{Ctx, ModuleError, Outcome, args};
use crate::plan::Vars;
use regex::{Regex, RegexBuilder};
use serde_json::{Map, Value};
use std::io::Read;
use std::net::{IpAddr, SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

const KNOWN: &[&str] = &[
    "host",
    "port",
    "path",
    "state",
    "timeout",
    "delay",
    "sleep",
    "connect_timeout",
    "search_regex",
    "exclude_hosts",
    "active_connection_states",
    "msg",
];

/// What is waited for.
#[derive(Debug, Clone, Copy, PartialEq)]
enum State {
    Started,
    Stopped,
    Present,
    Absent,
    Drained,
}

fn seconds(a: &Vars, name: &str, default: f64) -> Result<Duration, ModuleError> {
    let v = match a.get(name) {
        None | Some(Value::Null) => default,
        Some(Value::Number(n)) => n.as_f64().unwrap_or(-1.0),
        Some(Value::String(s)) => s.trim().parse().unwrap_or(-1.0),
        Some(_) => -1.0,
    };
    if !(0.0..=1e9).contains(&v) {
        return Err(ModuleError::BadArgs(format!(
            "argument '{name}' must be a number of seconds, got {}",
            a.get(name).map(Value::to_string).unwrap_or_default()
        )));
    }
    Ok(Duration::from_secs_f64(v))
}

pub(super) fn run(a: &Vars, ctx: &Ctx<'_>) -> Result<Outcome, ModuleError> {
    args::only(a, KNOWN)?;
    if ctx.check_mode {
        // The module does not support check mode: Ansible skips it.
        let mut o = Outcome::ok().msg("remote module (wait_for) does not support check mode");
        o.skipped = true;
        return Ok(o);
    }
    let host = args::opt_str(a, "host")?.unwrap_or_else(|| "127.0.0.1".into());
    let port = match args::opt_str(a, "port")? {
        None => None,
        Some(p) => Some(p.trim().parse::<u16>().map_err(|_| {
            ModuleError::BadArgs(format!("argument 'port' must be a port number, got '{p}'"))
        })?),
    };
    let path = args::opt_str(a, "path")?;
    let timeout = seconds(a, "timeout", 300.0)?;
    let delay = seconds(a, "delay", 0.0)?;
    let sleep = seconds(a, "sleep", 1.0)?;
    let connect_timeout = seconds(a, "connect_timeout", 5.0)?;
    let msg = args::opt_str(a, "msg")?;
    let exclude = args::str_list(a, "exclude_hosts")?;
    let active = match args::str_list(a, "active_connection_states")? {
        l if l.is_empty() => ACTIVE.iter().map(|s| s.to_string()).collect(),
        l => l,
    };
    let state = match args::opt_str(a, "state")?.as_deref() {
        None | Some("started") => State::Started,
        Some("stopped") => State::Stopped,
        Some("present") => State::Present,
        Some("absent") => State::Absent,
        Some("drained") => State::Drained,
        Some(other) => {
            return Err(ModuleError::BadArgs(format!(
                "argument 'state' must be one of: started, stopped, present, absent, drained; got '{other}'"
            )));
        }
    };
    if port.is_some() && path.is_some() {
        return Err(ModuleError::BadArgs(
            "'port' and 'path' are mutually exclusive".into(),
        ));
    }
    let regex = match args::opt_str(a, "search_regex")? {
        None => None,
        Some(r) => Some(
            RegexBuilder::new(&r)
                .multi_line(true)
                .build()
                .map_err(|e| {
                    ModuleError::BadArgs(format!(
                        "argument 'search_regex' is not a valid pattern: {e}"
                    ))
                })?,
        ),
    };
    match state {
        State::Present | State::Absent if port.is_some() => {
            return Err(ModuleError::BadArgs(
                "state=present and state=absent apply to 'path'; use started/stopped/drained with 'port'".into(),
            ));
        }
        State::Drained if port.is_none() => {
            return Err(ModuleError::BadArgs("state=drained needs 'port'".into()));
        }
        State::Absent | State::Stopped if regex.is_some() => {
            return Err(ModuleError::BadArgs(
                "'search_regex' only applies to state=present or started".into(),
            ));
        }
        _ => {}
    }

    if state == State::Drained
        && let Err(e) = tcp_tables()
    {
        return Ok(Outcome::fail(e));
    }

    let start = Instant::now();
    std::thread::sleep(delay);
    let deadline = start + timeout;

    let mut result = Outcome::ok();
    let waited = match (port, &path) {
        (None, None) => {
            // Nothing to watch: Ansible sleeps the whole timeout after the delay (its
            // other waits end `timeout` after the start, the delay included).
            std::thread::sleep(timeout);
            Ok(None)
        }
        (None, Some(p)) => wait_path(p, state, regex.as_ref(), deadline, sleep),
        (Some(port), None) => match state {
            State::Drained => wait_drained(port, &exclude, &active, deadline, sleep).map(|()| None),
            _ => wait_port(
                &host,
                port,
                state,
                regex.as_ref(),
                deadline,
                sleep,
                connect_timeout,
            ),
        },
        (Some(_), Some(_)) => Ok(None),
    };
    let elapsed = start.elapsed().as_secs();
    match waited {
        Ok(groups) => {
            if let Some((list, dict)) = groups {
                result = result
                    .with("match_groups", list)
                    .with("match_groupdict", dict);
            }
        }
        Err(()) => {
            let what = match (&path, state) {
                (Some(p), State::Absent) => format!("Timeout when waiting for {p} to be absent."),
                (Some(p), _) => match &regex {
                    Some(r) => format!("Timeout when waiting for search string {r} in {p}"),
                    None => format!("Timeout when waiting for file {p}"),
                },
                (None, State::Stopped) => format!(
                    "Timeout when waiting for {host}:{} to stop.",
                    port.unwrap_or_default()
                ),
                (None, State::Drained) => format!(
                    "Timeout when waiting for {host}:{} to drain",
                    port.unwrap_or_default()
                ),
                (None, _) => match &regex {
                    Some(r) => format!(
                        "Timeout when waiting for search string {r} in {host}:{}",
                        port.unwrap_or_default()
                    ),
                    None => format!(
                        "Timeout when waiting for {host}:{}",
                        port.unwrap_or_default()
                    ),
                },
            };
            result = Outcome::fail(msg.unwrap_or(what));
        }
    }
    result = result.with("elapsed", elapsed).with(
        "state",
        match state {
            State::Started => "started",
            State::Stopped => "stopped",
            State::Present => "present",
            State::Absent => "absent",
            State::Drained => "drained",
        },
    );
    if let Some(p) = port {
        result = result.with("port", p);
    }
    if let Some(p) = path {
        result = result.with("path", p);
    }
    if let Some(r) = &regex {
        result = result.with("search_regex", r.as_str());
    }
    Ok(result)
}

type Groups = Option<(Vec<Value>, Map<String, Value>)>;

/// The capture groups of a match, as Python's `groups()` and `groupdict()` give them.
fn groups(re: &Regex, text: &str) -> Groups {
    let caps = re.captures(text)?;
    let list = caps
        .iter()
        .skip(1)
        .map(|m| m.map_or(Value::Null, |m| Value::from(m.as_str())))
        .collect();
    let dict = re
        .capture_names()
        .flatten()
        .map(|n| {
            let v = caps
                .name(n)
                .map_or(Value::Null, |m| Value::from(m.as_str()));
            (n.to_string(), v)
        })
        .collect();
    Some((list, dict))
}

/// Sleeps `sleep`, but not past the deadline; false when the deadline has passed.
fn pause(deadline: Instant, sleep: Duration) -> bool {
    let now = Instant::now();
    if now >= deadline {
        return false;
    }
    std::thread::sleep(sleep.min(deadline - now));
    true
}

fn wait_path(
    path: &str,
    state: State,
    regex: Option<&Regex>,
    deadline: Instant,
    sleep: Duration,
) -> Result<Groups, ()> {
    loop {
        let exists = std::fs::symlink_metadata(path).is_ok();
        match state {
            State::Absent | State::Stopped if !exists => return Ok(None),
            State::Absent | State::Stopped => {}
            _ if exists => match regex {
                None => return Ok(None),
                Some(re) => {
                    // A file being written may not be valid UTF-8 yet; match what is.
                    if let Ok(bytes) = std::fs::read(path) {
                        let text = String::from_utf8_lossy(&bytes);
                        if let Some(g) = groups(re, &text) {
                            return Ok(Some(g));
                        }
                    }
                }
            },
            _ => {}
        }
        if !pause(deadline, sleep) {
            return Err(());
        }
    }
}

fn addresses(host: &str, port: u16) -> Vec<SocketAddr> {
    (host, port)
        .to_socket_addrs()
        .map(Iterator::collect)
        .unwrap_or_default()
}

/// One connection attempt to any address of `host`, bounded by the deadline.
fn connect(
    host: &str,
    port: u16,
    connect_timeout: Duration,
    deadline: Instant,
) -> Option<TcpStream> {
    for addr in addresses(host, port) {
        let left = deadline.saturating_duration_since(Instant::now());
        let t = connect_timeout.min(left).max(Duration::from_millis(1));
        if let Ok(s) = TcpStream::connect_timeout(&addr, t) {
            return Some(s);
        }
    }
    None
}

fn wait_port(
    host: &str,
    port: u16,
    state: State,
    regex: Option<&Regex>,
    deadline: Instant,
    sleep: Duration,
    connect_timeout: Duration,
) -> Result<Groups, ()> {
    loop {
        let stream = connect(host, port, connect_timeout, deadline);
        match (state, stream) {
            (State::Stopped, None) => return Ok(None),
            (State::Stopped, Some(_)) => {}
            (_, Some(s)) => match regex {
                None => return Ok(None),
                Some(re) => {
                    if let Some(g) = read_until(s, re, deadline) {
                        return Ok(Some(g));
                    }
                }
            },
            (_, None) => {}
        }
        if !pause(deadline, sleep) {
            return Err(());
        }
    }
}

/// Reads what the peer sends until `re` matches, the peer closes or the deadline.
fn read_until(mut s: TcpStream, re: &Regex, deadline: Instant) -> Groups {
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || s.set_read_timeout(Some(left)).is_err() {
            return None;
        }
        match s.read(&mut buf) {
            Ok(0) | Err(_) => return None,
            Ok(n) => {
                data.extend_from_slice(buf.get(..n).unwrap_or_default());
                if let Some(g) = groups(re, &String::from_utf8_lossy(&data)) {
                    return Some(g);
                }
            }
        }
    }
}

/// TCP states that count as an active connection, Ansible's default list.
const ACTIVE: &[&str] = &[
    "ESTABLISHED",
    "FIN_WAIT1",
    "FIN_WAIT2",
    "SYN_RECV",
    "SYN_SENT",
    "TIME_WAIT",
];

/// The kernel's numbering of TCP states in /proc/net/tcp.
fn state_name(hex: &str) -> &'static str {
    match hex {
        "01" => "ESTABLISHED",
        "02" => "SYN_SENT",
        "03" => "SYN_RECV",
        "04" => "FIN_WAIT1",
        "05" => "FIN_WAIT2",
        "06" => "TIME_WAIT",
        "07" => "CLOSE",
        "08" => "CLOSE_WAIT",
        "09" => "LAST_ACK",
        "0A" => "LISTEN",
        "0B" => "CLOSING",
        _ => "UNKNOWN",
    }
}

/// Parses a /proc/net/tcp address (`0100007F:1F90`, little-endian per 32-bit word).
fn proc_addr(s: &str) -> Option<(IpAddr, u16)> {
    let (ip, port) = s.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let words: Vec<u32> = (0..ip.len() / 8)
        .map(|i| {
            ip.get(i * 8..i * 8 + 8)
                .and_then(|w| u32::from_str_radix(w, 16).ok())
        })
        .collect::<Option<_>>()?;
    let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
    let ip = match bytes.len() {
        4 => IpAddr::from(<[u8; 4]>::try_from(bytes.as_slice()).ok()?),
        16 => {
            let v6 = std::net::Ipv6Addr::from(<[u8; 16]>::try_from(bytes.as_slice()).ok()?);
            v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4)
        }
        _ => return None,
    };
    Some((ip, port))
}

/// The kernel's TCP connection tables (IPv4, IPv6), as text in /proc/net/tcp's format.
#[cfg(target_os = "linux")]
fn tcp_tables() -> Result<Vec<String>, String> {
    Ok(["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .filter_map(|f| std::fs::read_to_string(f).ok())
        .collect())
}

/// Without procfs there is no table this runner can read without a C library.
#[cfg(not(target_os = "linux"))]
fn tcp_tables() -> Result<Vec<String>, String> {
    Err(format!(
        "state=drained counts connections in procfs, which only Linux has (this host runs {})",
        std::env::consts::OS
    ))
}

/// Active connections on local `port`, not from an excluded host.
fn active_connections(port: u16, exclude: &[String], active: &[String]) -> usize {
    let excluded: Vec<IpAddr> = exclude
        .iter()
        .flat_map(|h| addresses(h, 0))
        .map(|a| a.ip())
        .collect();
    tcp_tables()
        .unwrap_or_default()
        .iter()
        .map(|text| {
            text.lines()
                .skip(1)
                .filter_map(|l| {
                    let mut f = l.split_whitespace().skip(1);
                    let local = proc_addr(f.next()?)?;
                    let remote = proc_addr(f.next()?)?;
                    let st = state_name(f.next()?);
                    Some((local, remote, st))
                })
                .filter(|(local, remote, st)| {
                    local.1 == port
                        && active.iter().any(|a| a.eq_ignore_ascii_case(st))
                        && !excluded.contains(&remote.0)
                })
                .count()
        })
        .sum()
}

fn wait_drained(
    port: u16,
    exclude: &[String],
    active: &[String],
    deadline: Instant,
    sleep: Duration,
) -> Result<(), ()> {
    loop {
        if active_connections(port, exclude, active) == 0 {
            return Ok(());
        }
        if !pause(deadline, sleep) {
            return Err(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::collections::BTreeMap;
    use std::io::Write;
    use std::net::TcpListener;

    fn run(args: Value) -> Result<Outcome, ModuleError> {
        let args = args.as_object().unwrap();
        crate::modules::run_for_test("wait_for", args, &BTreeMap::new(), &json!({}), false)
    }

    /// A port nothing listens on: bound then released.
    fn closed_port() -> u16 {
        TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    }

    /// The module has no check mode: Ansible skips it, so a long wait never starts.
    #[test]
    fn check_mode_skips_the_wait() {
        let port = closed_port();
        let args = json!({"port": port, "timeout": 300});
        let o = crate::modules::run_for_test(
            "wait_for",
            args.as_object().unwrap(),
            &BTreeMap::new(),
            &json!({}),
            true,
        )
        .unwrap();
        assert!(o.skipped && !o.failed, "{o:?}");
    }

    #[test]
    fn a_listening_port_is_started() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let o = run(json!({"port": port, "timeout": 5})).unwrap();
        assert!(!o.failed && !o.changed, "{o:?}");
        assert_eq!(o.data["port"], port);
        assert_eq!(o.data["state"], "started");
        assert!(o.data["elapsed"].is_u64());
        // A closed port is "stopped" at once.
        let o = run(json!({"port": closed_port(), "state": "stopped", "timeout": 5})).unwrap();
        assert!(!o.failed, "{o:?}");
    }

    #[test]
    fn a_closed_port_times_out_with_ansibles_message() {
        let port = closed_port();
        let o =
            run(json!({"host": "127.0.0.1", "port": port, "timeout": 1, "sleep": 0.2})).unwrap();
        assert!(o.failed);
        assert_eq!(
            o.msg.as_deref(),
            Some(format!("Timeout when waiting for 127.0.0.1:{port}").as_str())
        );
        assert!(o.data.contains_key("elapsed"));
        let o = run(json!({"port": port, "timeout": 1, "msg": "app did not start"})).unwrap();
        assert_eq!(o.msg.as_deref(), Some("app did not start"));
        // And a listening port never "stops".
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let p = l.local_addr().unwrap().port();
        let o = run(json!({"port": p, "state": "stopped", "timeout": 1})).unwrap();
        assert!(o.failed);
        assert!(o.msg.unwrap().ends_with("to stop."));
    }

    #[test]
    fn search_regex_on_a_port_reads_the_banner() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let server = std::thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            s.write_all(b"SSH-2.0-OpenSSH_9.2\r\n").unwrap();
        });
        let o =
            run(json!({"port": port, "search_regex": "OpenSSH_(?P<ver>[0-9.]+)", "timeout": 5}))
                .unwrap();
        server.join().unwrap();
        assert!(!o.failed, "{o:?}");
        assert_eq!(o.data["match_groups"], json!(["9.2"]));
        assert_eq!(o.data["match_groupdict"], json!({"ver": "9.2"}));
    }

    #[test]
    fn a_path_that_appears_later_and_its_content() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("ready");
        let p2 = p.clone();
        let maker = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            std::fs::write(&p2, "starting\nstatus: up 42\n").unwrap();
        });
        let o = run(
            json!({"path": p.to_str(), "search_regex": "^status: up (\\d+)",
                           "timeout": 30, "sleep": 0.1}),
        )
        .unwrap();
        maker.join().unwrap();
        assert!(!o.failed, "{o:?}");
        assert_eq!(o.data["match_groups"], json!(["42"]));
        assert_eq!(o.data["path"], p.to_str().unwrap());

        let o = run(json!({"path": p.to_str(), "search_regex": "never", "timeout": 0})).unwrap();
        assert!(o.failed);
        assert_eq!(
            o.msg.unwrap(),
            format!(
                "Timeout when waiting for search string never in {}",
                p.display()
            )
        );

        let p3 = p.clone();
        let remover = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            std::fs::remove_file(&p3).unwrap();
        });
        let o = run(json!({"path": p.to_str(), "state": "absent", "timeout": 30, "sleep": 0.1}))
            .unwrap();
        remover.join().unwrap();
        assert!(!o.failed, "{o:?}");
        let o = run(json!({"path": "/nonexistent/rustle", "timeout": 0})).unwrap();
        assert_eq!(
            o.msg.as_deref(),
            Some("Timeout when waiting for file /nonexistent/rustle")
        );
    }

    #[test]
    fn drained_counts_connections_on_the_port() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let client = TcpStream::connect(("127.0.0.1", port)).unwrap();
        let (server_side, _) = l.accept().unwrap();
        assert!(active_connections(port, &[], &["ESTABLISHED".into()]) >= 1);
        let o = run(json!({"port": port, "state": "drained", "timeout": 0,
                           "active_connection_states": ["ESTABLISHED"]}))
        .unwrap();
        assert!(o.failed, "{o:?}");
        drop((client, server_side));
        // Only TIME_WAIT may remain, which this list does not count.
        let o = run(
            json!({"port": port, "state": "drained", "timeout": 10, "sleep": 0.1,
                           "active_connection_states": ["ESTABLISHED"]}),
        )
        .unwrap();
        assert!(!o.failed, "{o:?}");
    }

    #[test]
    fn proc_addresses_decode() {
        assert_eq!(
            proc_addr("0100007F:1F90"),
            Some(("127.0.0.1".parse().unwrap(), 8080))
        );
        assert_eq!(
            proc_addr("0000000000000000FFFF00000100007F:0016"),
            Some(("127.0.0.1".parse().unwrap(), 22))
        );
        assert_eq!(proc_addr("zz:1"), None);
    }

    #[test]
    fn bad_arguments_are_named() {
        for (args, word) in [
            (json!({"port": "http"}), "port"),
            (json!({"port": 1, "path": "/x"}), "exclusive"),
            (json!({"timeout": "soon"}), "timeout"),
            (json!({"path": "/x", "state": "up"}), "state"),
            (json!({"path": "/x", "search_regex": "("}), "search_regex"),
            (json!({"prot": 1}), "prot"),
        ] {
            let e = run(args).unwrap_err();
            assert!(e.to_string().contains(word), "{e}");
        }
    }

    /// The wait_for target's "wait_for with delay": with nothing to watch, Ansible
    /// sleeps the whole timeout after the delay.
    #[test]
    fn nothing_to_watch_sleeps_the_timeout_after_the_delay() {
        let start = std::time::Instant::now();
        let o = run(json!({"timeout": 1, "delay": 1})).unwrap();
        assert!(!o.failed && !o.changed, "{o:?}");
        assert!(start.elapsed() >= Duration::from_secs(2));
        assert_eq!(o.data["elapsed"], 2);
    }
}
