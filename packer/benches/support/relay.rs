//! A user-space latency relay for the benchmarks: a TCP forwarder on a loopback port that
//! delays every chunk in each direction by a fixed one-way delay, so loopback hosts behave
//! like hosts across a LAN or WAN. The kernel here has no netem, hence this.
//!
//! Each direction timestamps a chunk when it is read and writes it when it is due, through
//! a FIFO queue: order is kept and only latency is added, not a bandwidth limit (sleeping
//! before each read would throttle a bulk upload to one buffer per delay). The TCP
//! handshake itself is not delayed (the kernel completes it before the relay sees the
//! connection), so each connection costs one round trip less than on a real network.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

/// A running relay; its threads live as long as the process (a benchmark is short-lived).
pub struct Relay {
    /// The loopback port clients connect to instead of the target's.
    pub port: u16,
}

/// Starts a relay on a free loopback port forwarding to `127.0.0.1:target`, adding
/// `one_way` to each direction (so a round trip costs twice that).
pub fn start(target: u16, one_way: Duration) -> Relay {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(client) = client else { continue };
            // A refused target drops the client: it sees the connection close, as it
            // would see the host refuse it.
            let Ok(server) = TcpStream::connect(("127.0.0.1", target)) else {
                continue;
            };
            // Small SSH packets must not wait for Nagle on top of the added delay.
            let _ = client.set_nodelay(true);
            let _ = server.set_nodelay(true);
            let (Ok(c2), Ok(s2)) = (client.try_clone(), server.try_clone()) else {
                continue;
            };
            pipe(client, server, one_way);
            pipe(s2, c2, one_way);
        }
    });
    Relay { port }
}

/// Forwards `from` to `to` with `delay` added to each chunk: one thread reads and
/// timestamps, one writes when due. End of stream is forwarded (delayed) as a half close.
fn pipe(mut from: TcpStream, mut to: TcpStream, delay: Duration) {
    // `None` marks the end of the stream, due like data so it cannot overtake it.
    let (tx, rx) = mpsc::channel::<(Instant, Option<Vec<u8>>)>();
    let reader_side = from.try_clone().ok();
    thread::spawn(move || {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match from.read(&mut buf) {
                Ok(0) | Err(_) => {
                    let _ = tx.send((Instant::now() + delay, None));
                    break;
                }
                Ok(n) => {
                    let chunk = buf.get(..n).unwrap_or_default().to_vec();
                    if tx.send((Instant::now() + delay, Some(chunk))).is_err() {
                        break;
                    }
                }
            }
        }
    });
    thread::spawn(move || {
        while let Ok((due, chunk)) = rx.recv() {
            let now = Instant::now();
            if due > now {
                thread::sleep(due - now);
            }
            match chunk {
                Some(bytes) if to.write_all(&bytes).is_ok() => {}
                _ => break,
            }
        }
        let _ = to.shutdown(Shutdown::Write);
        // When the destination is gone, stop the reader too (its read then returns 0).
        if let Some(r) = reader_side {
            let _ = r.shutdown(Shutdown::Read);
        }
    });
}

/// The round trip measured through a relay with `one_way` delay to a local echo server,
/// to show the relay adds what it is configured to (and little more).
pub fn measured_rtt(one_way: Duration) -> Duration {
    let echo = TcpListener::bind("127.0.0.1:0").unwrap();
    let echo_port = echo.local_addr().unwrap().port();
    thread::spawn(move || {
        if let Ok((mut s, _)) = echo.accept() {
            let _ = s.set_nodelay(true);
            let mut buf = [0u8; 1024];
            while let Ok(n) = s.read(&mut buf) {
                if n == 0 || s.write_all(buf.get(..n).unwrap_or_default()).is_err() {
                    break;
                }
            }
        }
    });
    let relay = start(echo_port, one_way);
    let mut s = TcpStream::connect(("127.0.0.1", relay.port)).unwrap();
    s.set_nodelay(true).unwrap();
    let mut best = Duration::MAX;
    let mut byte = [0u8; 1];
    for _ in 0..5 {
        let started = Instant::now();
        s.write_all(b"x").unwrap();
        s.read_exact(&mut byte).unwrap();
        best = best.min(started.elapsed());
    }
    best
}
