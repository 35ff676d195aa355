//! SSH transport (russh): connect with host key verification, authenticate, run one
//! command with stdin, and stream its stdout lines back.
//!
//! A deploy uses one TCP connection and one channel per host: the packed runner goes
//! up on the channel's stdin, a small POSIX shell script (built by [`script`]
//! from our own values only, every one single-quoted) saves it to a private temporary
//! directory and runs it, and the runner's events come back on stdout.
//!
//! A host behind jump hosts (OpenSSH's `ProxyJump`, [`connect_via`]) is reached over
//! a `direct-tcpip` channel of the last jump connection, each hop's host key checked
//! and each hop authenticated like the host itself; the jump connections are kept in
//! the [`Connection`], since dropping one would cut the tunnel.

use crate::known_hosts::Verdict;
use russh::client;
use russh::keys::{self, PrivateKeyWithHashAlg, PublicKeyOrCertificate};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Where and how to reach one host.
#[derive(Debug, Clone)]
pub struct Target {
    /// The inventory name (used in messages).
    pub name: String,
    /// Address to connect to.
    pub address: String,
    /// Port.
    pub port: u16,
    /// Login user.
    pub user: String,
    /// Private keys to try, in order (after the agent's).
    pub identity_files: Vec<PathBuf>,
    /// The known_hosts file host keys are checked against, and new ones recorded in.
    pub known_hosts: PathBuf,
    /// System-wide known_hosts files, checked as well and never written (OpenSSH's
    /// GlobalKnownHostsFile; [`GLOBAL_KNOWN_HOSTS`] by default).
    pub global_known_hosts: Vec<PathBuf>,
    /// Record keys of hosts not yet in known_hosts instead of refusing them.
    pub accept_new: bool,
    /// Give up connecting after this long.
    pub connect_timeout: Duration,
}

/// Why a host could not be reached or did not answer.
#[derive(Debug, thiserror::Error)]
pub enum SshError {
    /// TCP or protocol failure.
    #[error("cannot connect to {addr}: {reason}")]
    Connect {
        /// `address:port`.
        addr: String,
        /// Why.
        reason: String,
    },
    /// The connection did not complete in time.
    #[error("connecting to {addr} timed out after {secs} s")]
    Timeout {
        /// `address:port`.
        addr: String,
        /// The limit.
        secs: u64,
    },
    /// The host's key is not in known_hosts (and accepting new keys was not asked for).
    #[error(
        "host key of {addr} is not in {known_hosts} ({fingerprint}); pass --accept-new-host-keys to trust it on first use"
    )]
    UnknownHostKey {
        /// `address:port`.
        addr: String,
        /// The file.
        known_hosts: String,
        /// The key's SHA-256 fingerprint.
        fingerprint: String,
    },
    /// The host's key differs from the one recorded (another key of the same
    /// algorithm, or a key of another algorithm for a host that has one recorded):
    /// refused, always, `--accept-new-host-keys` or not.
    #[error(
        "HOST KEY CHANGED for {addr}: it offers {fingerprint}, which does not match the {recorded} key recorded in {known_hosts} line {line}; refusing to connect"
    )]
    ChangedHostKey {
        /// `address:port`.
        addr: String,
        /// The file.
        known_hosts: String,
        /// The line of the recorded key.
        line: usize,
        /// The recorded key's algorithm.
        recorded: String,
        /// The offered key's algorithm and SHA-256 fingerprint.
        fingerprint: String,
    },
    /// The host's key is listed as `@revoked`: refused, even if also recorded as known.
    #[error(
        "HOST KEY REVOKED for {addr}: its key {fingerprint} is marked @revoked in {known_hosts} line {line}; refusing to connect"
    )]
    RevokedHostKey {
        /// `address:port`.
        addr: String,
        /// The file.
        known_hosts: String,
        /// The `@revoked` line.
        line: usize,
        /// The key's fingerprint.
        fingerprint: String,
    },
    /// No key was accepted.
    #[error("authentication as {user} failed (tried: {tried})")]
    Auth {
        /// The login user.
        user: String,
        /// What was tried.
        tried: String,
    },
    /// The remote command could not be run.
    #[error("remote command failed: {0}")]
    Channel(String),
    /// A command whose output is kept whole ([`Connection::exec_raw`]) sent more than
    /// [`MAX_OUTPUT_BYTES`]: what it sent, and the limit.
    #[error("{0}; the deployer stopped reading and closed the channel")]
    TooMuchOutput(String),
    /// A jump host would not open a tunnel to the next hop.
    #[error("jump host {jump} cannot reach {addr}: {reason}")]
    Tunnel {
        /// The jump host's `address:port`.
        jump: String,
        /// The next hop's `address:port`.
        addr: String,
        /// Why.
        reason: String,
    },
}

/// OpenSSH's default GlobalKnownHostsFile: what the system's administrator recorded
/// for every user, `@revoked` lines included.
pub const GLOBAL_KNOWN_HOSTS: [&str; 2] = ["/etc/ssh/ssh_known_hosts", "/etc/ssh/ssh_known_hosts2"];

/// What a host key check concluded, kept by the handler for the error message (with the
/// file a line number refers to).
#[derive(Debug, Clone)]
enum KeyVerdict {
    Unknown(String),
    Changed {
        file: PathBuf,
        line: usize,
        recorded: String,
        fingerprint: String,
    },
    Revoked(PathBuf, usize, String),
    Unreadable(String),
}

struct Verifier {
    host: String,
    port: u16,
    known_hosts: PathBuf,
    global_known_hosts: Vec<PathBuf>,
    accept_new: bool,
    verdict: Arc<Mutex<Option<KeyVerdict>>>,
}

impl Verifier {
    fn refuse(&self, v: KeyVerdict) -> Result<bool, russh::Error> {
        if let Ok(mut slot) = self.verdict.lock() {
            *slot = Some(v);
        }
        Ok(false)
    }
}

impl client::Handler for Verifier {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        server_key: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        let PublicKeyOrCertificate::PublicKey { key, .. } = server_key else {
            return self.refuse(KeyVerdict::Unreadable(
                "host certificates are not supported".into(),
            ));
        };
        let fingerprint = key.fingerprint(Default::default()).to_string();
        // The user's file, then the system's, as OpenSSH reads them. A missing file
        // knows no host; an unreadable one is no reason to trust any.
        let mut verdicts = Vec::new();
        for file in std::iter::once(&self.known_hosts).chain(&self.global_known_hosts) {
            match std::fs::read_to_string(file) {
                Ok(text) => verdicts.push((
                    file.clone(),
                    crate::known_hosts::check(&text, &self.host, self.port, key),
                )),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    return self.refuse(KeyVerdict::Unreadable(format!(
                        "cannot read {}: {e}",
                        file.display()
                    )));
                }
            }
        }
        // A revoked key is refused wherever it is listed; a key recorded in any file is
        // known; a host recorded in any file with other keys only has changed its key;
        // a host is new only when no file records it.
        if let Some((file, line)) = verdicts.iter().find_map(|(f, v)| match v {
            Verdict::Revoked { line } => Some((f.clone(), *line)),
            _ => None,
        }) {
            return self.refuse(KeyVerdict::Revoked(file, line, fingerprint));
        }
        if verdicts.iter().any(|(_, v)| *v == Verdict::Known) {
            return Ok(true);
        }
        if let Some((file, line, recorded)) = verdicts.iter().find_map(|(f, v)| match v {
            Verdict::Changed { line, recorded } => Some((f.clone(), *line, recorded.clone())),
            _ => None,
        }) {
            return self.refuse(KeyVerdict::Changed {
                file,
                line,
                recorded,
                fingerprint: format!("{} key {fingerprint}", key.algorithm()),
            });
        }
        if let Some((file, line)) = verdicts.iter().find_map(|(f, v)| match v {
            Verdict::CertificateExpected { line } => Some((f.clone(), *line)),
            _ => None,
        }) {
            return self.refuse(KeyVerdict::Unreadable(format!(
                "{} line {line} (@cert-authority) says this host presents a host certificate, which rustle-deploy does not support; its plain key {fingerprint} is not trusted in its place",
                file.display()
            )));
        }
        if !self.accept_new {
            return self.refuse(KeyVerdict::Unknown(fingerprint));
        }
        if let Some(dir) = self.known_hosts.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        match keys::known_hosts::learn_known_hosts_path(
            &self.host,
            self.port,
            key,
            &self.known_hosts,
        ) {
            Ok(()) => Ok(true),
            Err(e) => self.refuse(KeyVerdict::Unreadable(format!(
                "cannot record the new key: {e}"
            ))),
        }
    }
}

/// An authenticated connection to one host.
pub struct Connection {
    handle: client::Handle<Verifier>,
    /// The jump host connections `handle` is tunnelled through, first hop first: they
    /// carry its traffic, so they live as long as it does.
    jumps: Vec<client::Handle<Verifier>>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Connection")
    }
}

/// The default identity files, as OpenSSH tries them.
pub fn default_identities() -> Vec<PathBuf> {
    let Some(home) = std::env::var_os("HOME") else {
        return Vec::new();
    };
    ["id_ed25519", "id_ecdsa", "id_rsa"]
        .iter()
        .map(|n| Path::new(&home).join(".ssh").join(n))
        .filter(|p| p.exists())
        .collect()
}

/// Connects, verifies the host key, and authenticates (agent keys first, then files).
pub async fn connect(t: &Target) -> Result<Connection, SshError> {
    connect_via(t, &[]).await
}

/// Like [`connect`], but through `jump` (OpenSSH's `ProxyJump`, first hop first): each
/// hop is reached over a `direct-tcpip` channel of the previous one, and checked and
/// authenticated like `t`.
pub async fn connect_via(t: &Target, jump: &[Target]) -> Result<Connection, SshError> {
    let mut jumps: Vec<client::Handle<Verifier>> = Vec::with_capacity(jump.len());
    let mut via: Option<String> = None;
    for hop in jump {
        let handle = handshake(hop, jumps.last().zip(via.as_deref())).await?;
        via = Some(format!("{}:{}", hop.address, hop.port));
        jumps.push(handle);
    }
    let handle = handshake(t, jumps.last().zip(via.as_deref())).await?;
    Ok(Connection { handle, jumps })
}

/// Logs in as `t.user` with the agent's keys, then `t.identity_files` (or the defaults).
async fn authenticate(handle: &mut client::Handle<Verifier>, t: &Target) -> Result<(), SshError> {
    let mut tried = Vec::new();
    if std::env::var_os("SSH_AUTH_SOCK").is_some()
        && let Ok(mut agent) = keys::agent::client::AgentClient::connect_env().await
        && let Ok(identities) = agent.request_identities().await
    {
        for id in identities {
            let keys::agent::AgentIdentity::PublicKey { key, .. } = id else {
                continue;
            };
            tried.push(format!("agent key {}", key.fingerprint(Default::default())));
            let hash = rsa_hash(handle).await;
            if let Ok(r) = handle
                .authenticate_publickey_with(&t.user, key, hash, &mut agent)
                .await
                && r.success()
            {
                return Ok(());
            }
        }
    }
    let files = if t.identity_files.is_empty() {
        default_identities()
    } else {
        t.identity_files.clone()
    };
    for path in files {
        let key = match keys::load_secret_key(&path, None) {
            Ok(k) => k,
            Err(e) => {
                tried.push(format!("{} (unreadable: {e})", path.display()));
                continue;
            }
        };
        tried.push(path.display().to_string());
        let hash = rsa_hash(handle).await;
        let key = PrivateKeyWithHashAlg::new(Arc::new(key), hash);
        match handle.authenticate_publickey(&t.user, key).await {
            Ok(r) if r.success() => return Ok(()),
            Ok(_) => {}
            Err(e) => return Err(SshError::Channel(e.to_string())),
        }
    }
    Err(SshError::Auth {
        user: t.user.clone(),
        tried: if tried.is_empty() {
            "no keys found".into()
        } else {
            tried.join(", ")
        },
    })
}

/// The RSA signature hash the server prefers, if it says.
async fn rsa_hash(handle: &client::Handle<Verifier>) -> Option<keys::HashAlg> {
    handle
        .best_supported_rsa_hash()
        .await
        .ok()
        .flatten()
        .flatten()
}

/// Opens an SSH session to `t`, directly or through `via` (an authenticated jump host
/// and its `address:port`), checks its host key, and authenticates.
async fn handshake(
    t: &Target,
    via: Option<(&client::Handle<Verifier>, &str)>,
) -> Result<client::Handle<Verifier>, SshError> {
    let addr = match via {
        None => format!("{}:{}", t.address, t.port),
        Some((_, jump)) => format!("{}:{} (via {jump})", t.address, t.port),
    };
    let config = Arc::new(client::Config {
        keepalive_interval: Some(Duration::from_secs(15)),
        keepalive_max: 3,
        nodelay: true,
        ..Default::default()
    });
    let verdict = Arc::new(Mutex::new(None));
    let verifier = Verifier {
        host: t.address.clone(),
        port: t.port,
        known_hosts: t.known_hosts.clone(),
        global_known_hosts: t.global_known_hosts.clone(),
        accept_new: t.accept_new,
        verdict: verdict.clone(),
    };
    // What a failed handshake means, the host key check's verdict first.
    let failed = |e: russh::Error| {
        let known_hosts = t.known_hosts.display().to_string();
        let v = verdict.lock().ok().and_then(|v| v.clone());
        let addr = addr.clone();
        match v {
            Some(KeyVerdict::Unknown(fingerprint)) => SshError::UnknownHostKey {
                addr,
                known_hosts,
                fingerprint,
            },
            Some(KeyVerdict::Changed {
                file,
                line,
                recorded,
                fingerprint,
            }) => SshError::ChangedHostKey {
                addr,
                known_hosts: file.display().to_string(),
                line,
                recorded,
                fingerprint,
            },
            Some(KeyVerdict::Revoked(file, line, fingerprint)) => SshError::RevokedHostKey {
                addr,
                known_hosts: file.display().to_string(),
                line,
                fingerprint,
            },
            Some(KeyVerdict::Unreadable(reason)) => SshError::Connect {
                addr,
                reason: format!("host key check: {reason}"),
            },
            None => SshError::Connect {
                addr,
                reason: e.to_string(),
            },
        }
    };
    let connecting = async {
        match via {
            None => client::connect(config, (t.address.as_str(), t.port), verifier)
                .await
                .map_err(failed),
            Some((jump, jump_addr)) => {
                // The jump host resolves and dials the next hop, as with `ssh -J`.
                let channel = jump
                    .channel_open_direct_tcpip(
                        t.address.as_str(),
                        u32::from(t.port),
                        "127.0.0.1",
                        0,
                    )
                    .await
                    .map_err(|e| SshError::Tunnel {
                        jump: jump_addr.to_string(),
                        addr: format!("{}:{}", t.address, t.port),
                        reason: e.to_string(),
                    })?;
                client::connect_stream(config, channel.into_stream(), verifier)
                    .await
                    .map_err(failed)
            }
        }
    };
    let mut handle = tokio::time::timeout(t.connect_timeout, connecting)
        .await
        .map_err(|_| SshError::Timeout {
            addr: addr.clone(),
            secs: t.connect_timeout.as_secs(),
        })??;
    authenticate(&mut handle, t).await?;
    Ok(handle)
}

/// How many frames of a runner upload may be on their way to a host unacknowledged
/// (see [`Script::DeployCached`]), and how big a frame is: together they bound what the
/// host's sshd buffers, while keeping a long link busy.
pub const RUNNER_FRAMES_IN_FLIGHT: usize = 2;
/// Bytes per frame of a runner upload.
pub const RUNNER_FRAME: usize = 128 * 1024;

/// What [`Connection::exec_conversation`] sends for a line of the host's output.
#[derive(Debug)]
pub enum Reply {
    /// Send these bytes and pass the next line to the conversation too.
    Send(Vec<u8>),
    /// Send these bytes, close stdin, and pass later lines to `on_line`.
    Last(Vec<u8>),
    /// Not a line of the conversation: give it to `on_line`, send nothing, go on.
    Pass,
}

/// The longest line of stdout the deployer holds. A runner event is one line; a longer
/// one (a task that registered tens of megabytes of output: its event carries both
/// `stdout` and `stdout_lines`) is not refused but cut: its first [`CUT_LINE_HEAD`]
/// bytes are handed on with its length ([`Line::cut`]), the rest is read and dropped,
/// and the run goes on.
pub const MAX_LINE_BYTES: usize = 16 << 20;
/// How much of a cut line is kept: enough for an event's name, task and status, which
/// come before its result.
pub const CUT_LINE_HEAD: usize = 64 << 10;
/// The most one command may send back, stdout and stderr together, when the deployer
/// keeps all of it ([`Connection::exec_raw`], SSH mode's file reads and command
/// output). Past it the channel is closed and the call fails with
/// [`SshError::TooMuchOutput`]: SSH mode fails that task, and the host goes on. Commands
/// read line by line ([`Connection::exec`]) have no such limit: what is kept of them is
/// bounded instead, and `--timeout` bounds the time.
pub const MAX_OUTPUT_BYTES: u64 = 128 << 20;
/// How much of a line-by-line command's stderr is kept: its end, where the reason for
/// a failure is (a runner's stderr is its recap and its last words).
pub const STDERR_KEPT_BYTES: usize = 64 << 10;

/// One line of a host's stdout.
#[derive(Debug, Clone, Copy)]
pub struct Line<'a> {
    /// The line, without its line end; for a cut line, its first [`CUT_LINE_HEAD`] bytes.
    pub text: &'a str,
    /// The whole line's length in bytes when it was longer than [`MAX_LINE_BYTES`] and
    /// only its head was kept.
    pub cut: Option<u64>,
}

impl std::fmt::Display for Line<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.text)
    }
}

/// Splits a stream of bytes into [`Line`]s, holding at most [`MAX_LINE_BYTES`] of a line
/// (the head of a longer one), whatever arrives. Local hosts and SSH channels use the
/// same one.
#[derive(Debug, Default)]
pub struct LineSplitter {
    /// The line being received (its head only, once it is longer than the limit).
    buf: Vec<u8>,
    /// The line's length so far.
    len: u64,
}

impl LineSplitter {
    /// Takes `data`, handing every line it completes to `emit`.
    pub fn push(&mut self, mut data: &[u8], emit: &mut dyn FnMut(Line<'_>)) {
        while let Some(at) = data.iter().position(|b| *b == b'\n') {
            let (segment, rest) = data.split_at(at);
            self.take(segment);
            self.emit(emit);
            data = rest.get(1..).unwrap_or_default();
        }
        self.take(data);
    }

    /// Hands on a last line that had no line end, if any.
    pub fn finish(&mut self, emit: &mut dyn FnMut(Line<'_>)) {
        if self.len > 0 {
            self.emit(emit);
        }
    }

    fn take(&mut self, segment: &[u8]) {
        self.len = self.len.saturating_add(segment.len() as u64);
        if self.len <= MAX_LINE_BYTES as u64 {
            self.buf.extend_from_slice(segment);
            return;
        }
        // Too long to hold: keep its head, drop the rest as it comes.
        if self.buf.len() > CUT_LINE_HEAD {
            self.buf.truncate(CUT_LINE_HEAD);
            self.buf.shrink_to_fit();
        }
        let room = CUT_LINE_HEAD.saturating_sub(self.buf.len());
        self.buf
            .extend_from_slice(segment.get(..room.min(segment.len())).unwrap_or_default());
    }

    fn emit(&mut self, emit: &mut dyn FnMut(Line<'_>)) {
        let cut = (self.len > MAX_LINE_BYTES as u64).then_some(self.len);
        let text = String::from_utf8_lossy(&self.buf);
        let text = match cut {
            Some(_) => &text,
            None => text.trim_end_matches('\r'),
        };
        emit(Line { text, cut });
        self.buf.clear();
        self.len = 0;
        // A long line's buffer is not kept for the short ones after it.
        if self.buf.capacity() > 1 << 20 {
            self.buf = Vec::new();
        }
    }
}

/// Where a command's stdout goes.
enum Stdout<'a> {
    /// Line by line, as it arrives (after the conversation, if any).
    Lines(&'a mut (dyn FnMut(Line<'_>) + Send)),
    /// Kept whole, within [`MAX_OUTPUT_BYTES`] with stderr.
    Raw,
}

/// The end of a stream (a command's stderr): its last [`STDERR_KEPT_BYTES`], and how
/// much came before them.
#[derive(Debug, Default)]
pub struct StderrTail {
    kept: Vec<u8>,
    dropped: u64,
}

impl StderrTail {
    /// Takes `data`, dropping what falls out of the kept end.
    pub fn push(&mut self, data: &[u8]) {
        self.kept.extend_from_slice(data);
        // Dropped in batches, so a stream of small writes costs no more than reading it.
        if self.kept.len() > 2 * STDERR_KEPT_BYTES {
            let cut = self.kept.len() - STDERR_KEPT_BYTES;
            self.kept.drain(..cut);
            self.dropped = self.dropped.saturating_add(cut as u64);
        }
    }

    /// The kept end as text, saying how much was not kept, if anything.
    pub fn text(&self) -> String {
        let start = self.kept.len().saturating_sub(STDERR_KEPT_BYTES);
        let dropped = self.dropped.saturating_add(start as u64);
        let tail = String::from_utf8_lossy(self.kept.get(start..).unwrap_or_default());
        if dropped == 0 {
            tail.into_owned()
        } else {
            format!("[the first {dropped} bytes of stderr were not kept]\n{tail}")
        }
    }
}

/// What one command sent back.
#[derive(Debug, Default)]
struct Received {
    /// Bytes counted against [`MAX_OUTPUT_BYTES`] (raw commands only).
    total: u64,
    /// All of stdout (raw commands only).
    stdout: Vec<u8>,
    /// All of stderr (raw commands only).
    stderr: Vec<u8>,
    /// The end of stderr (line-by-line commands).
    tail: StderrTail,
    /// Bytes sent to the host.
    sent: u64,
}

impl Received {
    fn count(&mut self, n: usize) -> Result<(), SshError> {
        self.total = self.total.saturating_add(n as u64);
        if self.total > MAX_OUTPUT_BYTES {
            return Err(SshError::TooMuchOutput(format!(
                "the host sent more than {} MiB of output for one command (the limit for a command whose output is kept whole)",
                MAX_OUTPUT_BYTES >> 20
            )));
        }
        Ok(())
    }

    fn push_stderr(&mut self, data: &[u8], whole: bool) -> Result<(), SshError> {
        if whole {
            self.count(data.len())?;
            self.stderr.extend_from_slice(data);
        } else {
            self.tail.push(data);
        }
        Ok(())
    }
}

impl Connection {
    /// Runs `command`, sends `stdin` then end-of-file, and calls `on_line` for every
    /// line of stdout as it arrives (a line longer than [`MAX_LINE_BYTES`] cut to its
    /// head, [`Line::cut`]). Returns the exit code (`None` when the command was killed by
    /// a signal) and stderr (its last [`STDERR_KEPT_BYTES`], marked when more came).
    /// However much the host sends, the deployer holds at most a line and that much
    /// stderr of it.
    pub async fn exec(
        &self,
        command: &str,
        stdin: &[u8],
        on_line: &mut (dyn FnMut(Line<'_>) + Send),
    ) -> Result<(Option<u32>, String), SshError> {
        let (code, got) = self
            .drive(command, Some(stdin), None, None, Stdout::Lines(on_line))
            .await?;
        Ok((code, got.tail.text()))
    }

    /// Like [`Connection::exec`], but once `stdin` is sent, stdin stays open and what
    /// `more` brings follows (the deployer's answers to a runner's requests, the
    /// controller channel), until `more` closes.
    pub async fn exec_channel(
        &self,
        command: &str,
        stdin: &[u8],
        more: tokio::sync::mpsc::UnboundedReceiver<Vec<u8>>,
        on_line: &mut (dyn FnMut(Line<'_>) + Send),
    ) -> Result<(Option<u32>, String), SshError> {
        let (code, got) = self
            .drive(
                command,
                Some(stdin),
                None,
                Some(more),
                Stdout::Lines(on_line),
            )
            .await?;
        Ok((code, got.tail.text()))
    }

    /// Runs `command` with `stdin`, and returns its exit code (`None` when killed by a
    /// signal), stdout and stderr, whole (the SSH execution mode reads files and command
    /// output with it). A host that sends more than [`MAX_OUTPUT_BYTES`] in all gets its
    /// channel closed and the call fails with [`SshError::TooMuchOutput`].
    pub async fn exec_raw(
        &self,
        command: &str,
        stdin: &[u8],
    ) -> Result<(Option<u32>, Vec<u8>, Vec<u8>), SshError> {
        let (code, got) = self
            .drive(command, Some(stdin), None, None, Stdout::Raw)
            .await?;
        Ok((code, got.stdout, got.stderr))
    }

    /// Like [`Connection::exec`], but stdin is a conversation: each line of output
    /// goes to `answer` while it asks to hear more, and what it returns is sent
    /// ([`Reply`]); once it ends the conversation, stdin is closed and later lines go to
    /// `on_line`. A host script uses this to say what it needs and to acknowledge what it
    /// has read, which paces a large upload (see [`Script::DeployCached`]).
    /// With `more`, stdin stays open after the conversation for what `more` brings (see
    /// [`Connection::exec_channel`]).
    /// Returns the exit code (`None` when killed by a signal), stderr and the bytes sent.
    pub async fn exec_conversation(
        &self,
        command: &str,
        answer: &mut (dyn FnMut(&str) -> Reply + Send),
        more: Option<tokio::sync::mpsc::UnboundedReceiver<Vec<u8>>>,
        on_line: &mut (dyn FnMut(Line<'_>) + Send),
    ) -> Result<(Option<u32>, String, u64), SshError> {
        let (code, got) = self
            .drive(command, None, Some(answer), more, Stdout::Lines(on_line))
            .await?;
        Ok((code, got.tail.text(), got.sent))
    }

    /// Runs `command` on a new channel and reads what comes back until the channel
    /// closes (output may still be in flight after the exit status). Stdin is `stdin`
    /// then end-of-file, or, with `answer`, what the conversation replies to each line.
    ///
    /// Sending and reading are two futures polled together: sending waits for the
    /// host's window, and a command that exits without reading all of its input (a full
    /// disk, a refused argument) never opens it again (russh does not wake that wait when
    /// the channel closes), so reading must not wait with it. The call returns as soon as
    /// the channel closes, with the exit code and stderr.
    async fn drive(
        &self,
        command: &str,
        stdin: Option<&[u8]>,
        mut answer: Option<&mut (dyn FnMut(&str) -> Reply + Send)>,
        mut more: Option<tokio::sync::mpsc::UnboundedReceiver<Vec<u8>>>,
        mut stdout: Stdout<'_>,
    ) -> Result<(Option<u32>, Received), SshError> {
        let ch_err = |e: russh::Error| SshError::Channel(e.to_string());
        let channel = self.handle.channel_open_session().await.map_err(ch_err)?;
        channel.exec(true, command).await.map_err(ch_err)?;
        let (mut reader, writer) = channel.split();
        // What to send: bytes, then `None` for the end of stdin.
        let (queue, mut queued) = tokio::sync::mpsc::unbounded_channel::<Option<Vec<u8>>>();
        let mut got = Received::default();
        if let Some(bytes) = stdin {
            got.sent = bytes.len() as u64;
            let _ = queue.send(Some(bytes.to_vec()));
            let _ = queue.send(None);
        }
        let send = async {
            // A failed send means the host closed its end: what it says on stderr and
            // its exit code tell why, so the error itself adds nothing.
            while let Some(item) = queued.recv().await {
                match item {
                    Some(bytes) => {
                        if writer.data(&bytes[..]).await.is_err() {
                            break;
                        }
                    }
                    None => {
                        // The controller channel: answers follow until nobody is left
                        // to send one.
                        if let Some(more) = more.as_mut() {
                            while let Some(bytes) = more.recv().await {
                                if writer.data(&bytes[..]).await.is_err() {
                                    return;
                                }
                            }
                        }
                        let _ = writer.eof().await;
                        break;
                    }
                }
            }
        };
        tokio::pin!(send);
        let mut sending = true;
        let mut talking = answer.is_some();
        let mut lines = LineSplitter::default();
        let mut code = None;
        loop {
            let msg = tokio::select! {
                () = &mut send, if sending => {
                    sending = false;
                    continue;
                }
                msg = reader.wait() => msg,
            };
            let Some(msg) = msg else { break };
            let step = match msg {
                russh::ChannelMsg::Data { data } => match &mut stdout {
                    Stdout::Raw => got
                        .count(data.len())
                        .map(|()| got.stdout.extend_from_slice(&data)),
                    Stdout::Lines(on_line) => {
                        let mut sent = 0u64;
                        lines.push(&data, &mut |line| {
                            if let (true, Some(answer)) = (talking, answer.as_mut())
                                && line.cut.is_none()
                            {
                                let (bytes, more) = match answer(line.text) {
                                    Reply::Send(b) => (b, true),
                                    Reply::Last(b) => (b, false),
                                    Reply::Pass => {
                                        on_line(line);
                                        return;
                                    }
                                };
                                if !bytes.is_empty() {
                                    sent += bytes.len() as u64;
                                    let _ = queue.send(Some(bytes));
                                }
                                if !more {
                                    talking = false;
                                    let _ = queue.send(None);
                                }
                                return;
                            }
                            on_line(line);
                        });
                        got.sent += sent;
                        Ok(())
                    }
                },
                russh::ChannelMsg::ExtendedData { data, .. } => {
                    got.push_stderr(&data, matches!(stdout, Stdout::Raw))
                }
                russh::ChannelMsg::ExitStatus { exit_status } => {
                    code = Some(exit_status);
                    Ok(())
                }
                _ => Ok(()),
            };
            if let Err(e) = step {
                let _ = writer.close().await;
                return Err(e);
            }
        }
        if let Stdout::Lines(on_line) = &mut stdout {
            lines.finish(&mut |line| on_line(line));
        }
        Ok((code, got))
    }

    /// Whether the connection has ended (the host, its sshd or the network went away).
    pub fn is_closed(&self) -> bool {
        self.handle.is_closed()
    }

    /// Closes the connection politely, then the jump hosts' (last hop first).
    pub async fn close(self) {
        let _ = self
            .handle
            .disconnect(russh::Disconnect::ByApplication, "", "en")
            .await;
        for jump in self.jumps.iter().rev() {
            let _ = jump
                .disconnect(russh::Disconnect::ByApplication, "", "en")
                .await;
        }
    }
}

/// Quotes a value for a POSIX shell: the runner's quoter, so the deployer's host
/// scripts and the runner's modules quote alike.
pub use rustle_runner::modules::sh_quote;

/// Where a host keeps its state, as a shell preamble setting `$R`: the `rustle_root`
/// variable when given, else `/var/lib/rustle` when the runner runs as root (through
/// sudo, or logging in as root), else `~/.rustle` of the login user. The runner gets it
/// with `--root "$R"`, so both sides always agree.
fn root_preamble(root: Option<&str>, sudo: bool) -> String {
    match (root, sudo) {
        (Some(r), _) => format!("R={}\n", sh_quote(r)),
        (None, true) => "R=/var/lib/rustle\n".to_string(),
        (None, false) => {
            "if [ \"$(id -u)\" = 0 ]; then R=/var/lib/rustle; else R=\"$HOME/.rustle\"; fi\n"
                .to_string()
        }
    }
}

/// Shell lines that write the deployer's public key to `$d/deployer.pub` and add it
/// to the login user's trust store (`~/.rustle/trusted_keys`) for later runs by hand,
/// then gives back the login umask: the runner's tasks create files with the host's
/// usual modes (as Ansible's do), not the upload's private 077.
fn trust_lines(key_line: &str) -> String {
    let key = sh_quote(key_line);
    format!(
        "printf '%s\\n' {key} > \"$d/deployer.pub\"\n\
         mkdir -p \"$HOME/.rustle\"\n\
         if ! grep -qxF {key} \"$HOME/.rustle/trusted_keys\" 2>/dev/null; then printf '%s\\n' {key} >> \"$HOME/.rustle/trusted_keys\"; fi\n\
         umask \"$u0\"\n"
    )
}

/// Shell lines that add the deployer's public key to the login user's trust store
/// (`~/.rustle/trusted_keys`, for later runs by hand) unless it is there, with shell
/// builtins only, and leave the store's path in `$t` for `--trusted-key`.
fn remember_key(key_line: &str) -> String {
    let key = sh_quote(key_line);
    format!(
        "k={key}\nt=\"$HOME/.rustle/trusted_keys\"\nknown=\nopen=\n\
         if [ -f \"$t\" ]; then while IFS= read -r l || {{ [ -n \"$l\" ] && open=1; }}; do if [ \"$l\" = \"$k\" ]; then known=1; fi; done < \"$t\"; fi\n\
         if [ -z \"$known\" ]; then mkdir -p -m 700 \"$HOME/.rustle\"; (umask 077; if [ -n \"$open\" ]; then echo >> \"$t\"; fi; printf '%s\\n' \"$k\" >> \"$t\"); fi\n"
    )
}

/// Opens the scripts that receive a whole runner or run an installed one: a private
/// temp directory, with the login umask kept in `$u0` so the runner's tasks get it back
/// ([`trust_lines`] restores it). The cached deploy needs none ([`Script::DeployCached`]).
const TEMP_DIR: &str = "set -e\nu0=$(umask)\numask 077\nd=$(mktemp -d \"${TMPDIR:-/tmp}/rustle.XXXXXXXXXX\")\ntrap 'rm -rf \"$d\"' EXIT\n";

/// Shell lines that record, in the login user's `~/.rustle/roots`, the state root `$R`
/// this deploy uses and whether it goes through sudo: one line `sudo <root>` or
/// `user <root>` per root, the latest last. `--rollback`, `--list-deployments` and
/// `--cleanup` read it to find root's state with the same sudo as the deploy that made
/// it ([`ROOTS_FILE`]); on the host, so any controller finds it. A repeat deploy only
/// reads it (shell builtins, no process). Deploys that share a login (local hosts share
/// the controller's `$HOME`) may write it at once: a `mkdir` lock beside it orders the
/// writers (one left by a killed deploy is taken over after five seconds), and each
/// writes its own `mktemp` file and renames it over the record.
fn note_root(sudo: bool) -> String {
    let how = if sudo { "sudo" } else { "user" };
    format!(
        "rl=\"{how} $R\"\nrf={ROOTS_FILE}\nlast=\n\
         if [ -f \"$rf\" ]; then while IFS= read -r l || [ -n \"$l\" ]; do last=$l; done < \"$rf\"; fi\n\
         if [ \"$last\" != \"$rl\" ]; then mkdir -p -m 700 \"$HOME/.rustle\"; \
         n=0; while ! mkdir \"$rf.lock\" 2>/dev/null && [ $n -lt 50 ]; do n=$((n+1)); sleep 0.1 2>/dev/null || sleep 1; done; \
         (umask 077; rt=$(mktemp \"$HOME/.rustle/roots.XXXXXXXXXX\") && {{ if [ -f \"$rf\" ]; then while IFS= read -r l || [ -n \"$l\" ]; do if [ -n \"$l\" ] && [ \"$l\" != \"$rl\" ]; then printf '%s\\n' \"$l\"; fi; done < \"$rf\"; fi; printf '%s\\n' \"$rl\"; }} > \"$rt\" && mv -f \"$rt\" \"$rf\"); \
         rmdir \"$rf.lock\" 2>/dev/null || :; fi\n"
    )
}

/// Where a host records the state roots deploys used ([`note_root`]).
const ROOTS_FILE: &str = "\"$HOME/.rustle/roots\"";

/// Shell lines that set `$roots` to the state roots a host-level operation acts on, one
/// `sudo <root>` / `user <root>` line each, the most recently deployed last, and `$nl`
/// to a newline. With `rustle_root` (`root`) that root alone, through sudo when a deploy
/// recorded it so, the inventory asks for become (`sudo`), or the login user cannot
/// read it and may `sudo -n`. Otherwise every root the host's record lists (in its
/// order, the latest last), after those of these it does not list: the default root
/// (`/var/lib/rustle` with sudo or for root, else `~/.rustle`), and `/var/lib/rustle`
/// through sudo when it exists and the login user may `sudo -n`. The record is the
/// login user's, so another login (an operator, a CI job) that deployed nothing still
/// finds what a deploy through sudo left there.
fn roots_lines(root: Option<&str>, sudo: bool) -> String {
    let head = format!("nl='\n'\nrf={ROOTS_FILE}\n");
    // Whether the login user is not root and may use sudo without a password.
    let may_sudo = "[ \"$(id -u)\" != 0 ] && sudo -n true </dev/null 2>/dev/null";
    match root {
        Some(r) => format!(
            "{head}F={r}\nhow={how}\n\
             if [ -f \"$rf\" ]; then while IFS= read -r l || [ -n \"$l\" ]; do if [ \"$l\" = \"sudo $F\" ]; then how=sudo; fi; done < \"$rf\"; fi\n\
             if [ \"$how\" = user ] && [ -d \"$F\" ] && {{ [ ! -r \"$F\" ] || [ ! -x \"$F\" ]; }} && {may_sudo}; then how=sudo; fi\n\
             roots=\"$how $F\"\n",
            r = sh_quote(r),
            how = if sudo { "sudo" } else { "user" },
        ),
        None => format!(
            "{head}{default}rec=\n\
             if [ -f \"$rf\" ]; then while IFS= read -r l || [ -n \"$l\" ]; do case \"$l\" in 'sudo /'*|'user /'*) rec=\"$rec$nl$l\";; esac; done < \"$rf\"; fi\n\
             roots=\n\
             add() {{ case \"$nl$roots$rec$nl\" in *\"$nl$1$nl\"*) ;; *) roots=\"$roots$nl$1\";; esac; }}\n\
             add \"$dl\"\n\
             if [ \"$dl\" != 'sudo /var/lib/rustle' ] && [ -d /var/lib/rustle ] && {may_sudo}; then add 'sudo /var/lib/rustle'; fi\n\
             roots=\"${{roots#\"$nl\"}}$rec\"\nroots=\"${{roots#\"$nl\"}}\"\n",
            default = if sudo {
                "dl='sudo /var/lib/rustle'\n"
            } else {
                "if [ \"$(id -u)\" = 0 ]; then dl='user /var/lib/rustle'; else dl=\"user $HOME/.rustle\"; fi\n"
            },
        ),
    }
}

/// Shell lines, inside a loop over [`roots_lines`]' `$roots`, that take a line `$l` apart
/// into `$R` and `$S` (`sudo -n` or nothing), and `$how`; a sudo that would ask for a
/// password is an error naming the root, never taken for an empty root.
const ROOT_OF_LINE: &str = "how=${l%% *}; R=${l#* }; S=\n\
     if [ \"$how\" = sudo ]; then S=\"sudo -n\"; if ! sudo -n true </dev/null; then echo \"rustle: sudo -n would not run without a password, so $R (made through sudo) cannot be reached\" >&2; exit 1; fi; fi\n";

/// Run for one state root by the cleanup script, as `sh -c` (under sudo for root's):
/// `$1` the root, `$2` the deployer's key line, `$3` `sudo` or `user`, then the runner's
/// arguments. A runner found there removes the root's releases, cache and state under
/// the root's lock, so a deploy running meanwhile is waited for; a root with no runner
/// left (or one from before `cleanup` existed, exit 64) is cleaned here. The deployer's
/// key leaves the root's trust store; the root itself goes if nothing else is in it.
const CLEAN_ROOT: &str = "R=$1; k=$2; how=$3; shift 3\n\
     run=\n\
     for x in \"$R/current/rustle-runner\" \"$R\"/releases/*/rustle-runner; do if [ -f \"$x\" ] && [ -x \"$x\" ]; then run=$x; break; fi; done\n\
     if [ -z \"$run\" ] && [ \"$how\" = user ]; then for x in \"$R\"/cache/*/rustle-runner; do if [ -f \"$x\" ] && [ -x \"$x\" ] && [ -O \"$x\" ]; then run=$x; break; fi; done; fi\n\
     rc=64\n\
     if [ -n \"$run\" ]; then \"$run\" cleanup --root \"$R\" \"$@\" >/dev/null; rc=$?; fi\n\
     if [ \"$rc\" = 64 ]; then rm -rf \"$R/releases\" \"$R/cache\" \"$R/current\" \"$R/state.json\" \"$R/.lock\" \"$R\"/.current.tmp* \"$R\"/state.json.tmp* || exit 1; elif [ \"$rc\" != 0 ]; then exit \"$rc\"; fi\n\
     if [ -f \"$R/trusted_keys\" ]; then grep -vxF -- \"$k\" \"$R/trusted_keys\" > \"$R/trusted_keys.new\" || true; if [ -s \"$R/trusted_keys.new\" ]; then mv \"$R/trusted_keys.new\" \"$R/trusted_keys\"; else rm -f \"$R/trusted_keys.new\" \"$R/trusted_keys\"; fi; fi\n\
     rmdir \"$R\" 2>/dev/null || true\n";

/// What a host is asked to do.
#[derive(Debug, Clone)]
pub enum Script<'a> {
    /// Receive `size` bytes of packed runner on stdin and run it with `args`.
    Deploy {
        /// Bytes that follow on stdin.
        size: usize,
        /// Runner arguments (`--root` is added).
        args: &'a [String],
    },
    /// Ship only the payload when the host's runner cache holds the bare runner
    /// (`runner_digest`), else the bare runner first. The script's first line says
    /// which: `rustle:have-runner`, `rustle:need-runner-gz` (the host has gzip, so the
    /// runner comes gzip-compressed) or `rustle:need-runner`, the last two with
    /// `window=N`: 2 where `head -c` is GNU's, which reads exactly what it is asked, 1
    /// elsewhere (busybox and BSD `head` read ahead through stdio, and would swallow a
    /// second frame). A runner comes in frames (a line with the frame's size, then its
    /// bytes; a `0` line ends them), and the script answers `rustle:ack` as it takes in
    /// each one. The deployer keeps at most `N` (at most
    /// [`RUNNER_FRAMES_IN_FLIGHT`]) frames unacknowledged: what the host has not read
    /// yet waits in its sshd, and OpenSSH grows that buffer a few kilobytes at a time,
    /// copying it each time, so megabytes sent ahead of a gzip that reads more slowly
    /// than loopback delivers cost more CPU than all the rest of a first deploy. Then
    /// comes the payload, which the runner reads from stdin (`--payload -`), and stdin
    /// closes. The runner checks its own file against `runner_digest` before anything
    /// else. A cached runner is run only if the login user owns it and its directories
    /// and neither is writable by group or others; after a new runner arrives, only the
    /// `keep_runners` most recently received stay in the cache. The common case, a host
    /// that has the runner, starts no process but the shell, `id` (unless the root is
    /// known), one `find` (the cache's modes) and the runner: every process is CPU on a
    /// host, and on a fleet sharing a machine, wall time.
    DeployCached {
        /// blake3 of the bare runner: its cache key, and checked by the runner itself.
        runner_digest: &'a str,
        /// The bare runner's size (uncompressed), which the host checks what it
        /// received against.
        runner_size: usize,
        /// Runner arguments (`--root`, `--payload`, `--trusted-key` and `--expect-file`
        /// are added).
        args: &'a [String],
        /// Drop the cached runner first and take a fresh copy (the cached one failed
        /// its own `--expect-file` check).
        refresh: bool,
        /// Runners the cache keeps (the newest received).
        keep_runners: usize,
    },
    /// Run the release `id` already installed on the host (blue-green switch).
    RunInstalled {
        /// The deployment id.
        id: &'a str,
        /// Runner arguments (`--root` is added).
        args: &'a [String],
    },
    /// Run the previous good release again, in the most recently deployed root (see
    /// [`roots_lines`]); it becomes current if it succeeds. The current release's runner
    /// does it; one from before the rollback options (`--attached`, `--keep-releases`,
    /// `--no-wait`) refuses them as unknown (exit 64), and is then asked again without
    /// them, `RUSTLE_ATTACHED=1` in the environment instead, which the release runner
    /// it starts reads if it is newer (a runner that old takes no lock and prunes
    /// nothing itself).
    Rollback {
        /// Arguments for `rustle-runner rollback` (`--root` and `--trusted-key` are
        /// added).
        args: &'a [String],
    },
    /// Print, for every root ([`roots_lines`]) that exists, a `rustle:root <how> <root>`
    /// line, its state.json and `current=<link>`.
    List,
    /// Remove everything rustle-deploy put on the host, in every root ([`CLEAN_ROOT`]),
    /// saying `rustle:cleaned <how> <root>` for each, then the login user's runner
    /// cache (which deploys through sudo use) and record of roots.
    Cleanup {
        /// Arguments for `rustle-runner cleanup` (`--root` is added).
        args: &'a [String],
    },
}

/// The POSIX shell script for a [`Script`]. Every value in it is ours and
/// single-quoted; nothing comes from the plan.
pub fn script(s: &Script<'_>, key_line: &str, sudo: bool, root: Option<&str>) -> String {
    let pre = root_preamble(root, sudo);
    let note = note_root(sudo);
    let how = sudo;
    let sudo = if sudo { "sudo -n " } else { "" };
    let quoted = |args: &[String]| {
        args.iter()
            .map(|a| sh_quote(a))
            .collect::<Vec<_>>()
            .join(" ")
    };
    match s {
        Script::Deploy { size, args } => format!(
            "{TEMP_DIR}{pre}head -c {size} > \"$d/rustle-runner\"\n\
             got=$(wc -c < \"$d/rustle-runner\")\n\
             if [ \"$got\" -ne {size} ]; then echo \"rustle: upload truncated: $got of {size} bytes\" >&2; exit 70; fi\n\
             chmod 700 \"$d/rustle-runner\"\n{trust}{note}set +e\n\
             {sudo}\"$d/rustle-runner\" --trusted-key \"$d/deployer.pub\" --root \"$R\" {args}\nexit $?\n",
            trust = trust_lines(key_line),
            args = quoted(args),
        ),
        Script::DeployCached {
            runner_digest,
            runner_size,
            args,
            refresh,
            keep_runners,
        } => format!(
            "set -e\n{pre}c={cache}/{dig}\n{refresh}\
             need=\n\
             if [ ! -x \"$c/rustle-runner\" ]; then\n\
             u0=$(umask)\n\
             umask 077\n\
             mkdir -p \"$c\"\n\
             find \"$c\" -maxdepth 1 -name '.incoming.*' -mmin +10 -exec rm -f {{}} + 2>/dev/null || true\n\
             if command -v gzip >/dev/null 2>&1; then need=gz; else need=raw; fi\n\
             if head --version >/dev/null 2>&1; then w=2; else w=1; fi\n\
             fi\n\
             case \"$need\" in gz) echo \"rustle:need-runner-gz window=$w\";; raw) echo \"rustle:need-runner window=$w\";; *) echo rustle:have-runner;; esac\n\
             if [ -n \"$need\" ]; then\n\
             inc=\"$c/.incoming.$$\"\n\
             exec 4>&1\n\
             frames() {{ while IFS= read -r n && [ \"$n\" != 0 ]; do case \"$n\" in ''|*[!0-9]*) return 70;; esac; head -c \"$n\"; echo rustle:ack >&4; done; }}\n\
             oneline() {{ o=; while IFS= read -r l; do o=\"$o${{o:+; }}$l\"; done <<EOF\n$1\nEOF\nprintf '%s' \"$o\"; }}\n\
             if [ \"$need\" = gz ]; then\n\
             if ! err=$( {{ frames | gzip -dc > \"$inc\"; }} 2>&1 ); then rm -f \"$inc\"; echo \"rustle: gzip could not expand the uploaded runner into $c: $(oneline \"$err\")\" >&2; exit 70; fi\n\
             else err=$( {{ frames > \"$inc\"; }} 2>&1 ) || true; fi\n\
             exec 4>&-\n\
             got=$(wc -c < \"$inc\")\n\
             if [ \"$got\" -ne {runner_size} ]; then rm -f \"$inc\"; echo \"rustle: upload truncated: $got of {runner_size} bytes${{err:+: }}$(oneline \"$err\")\" >&2; exit 70; fi\n\
             chmod 700 \"$inc\"\n\
             mv \"$inc\" \"$c/rustle-runner\"\n\
             n=0\n\
             for e in $(ls -t {cache}); do case \"$e\" in *[!0-9a-f]*) continue;; esac; n=$((n+1)); if [ \"$n\" -gt {keep} ]; then rm -rf {cache}/\"$e\"; fi; done\n\
             umask \"$u0\"\n\
             fi\n\
             if [ ! -O \"$c/rustle-runner\" ] || [ ! -O \"$c\" ] || [ ! -O {cache} ] || [ -n \"$(find {cache} \"$c\" -prune \\( -perm -020 -o -perm -002 \\) -print)\" ]; then echo \"rustle: the runner cache $c is not private to this user (owned by another, or writable by group or others); refusing to run its runner\" >&2; exit 70; fi\n\
             {remember}{note}set +e\n\
             {sudo}\"$c/rustle-runner\" --expect-file {dig} --payload - --trusted-key \"$t\" --root \"$R\" {args}\nexit $?\n",
            // Under sudo the state root is root's, so the cache is the login user's
            // own: whoever may `sudo -n` is already root-equivalent, and no other user
            // can write there (it is made under umask 077, and checked before each run).
            cache = if sudo.is_empty() {
                "\"$R/cache\""
            } else {
                "\"$HOME/.rustle/cache\""
            },
            dig = sh_quote(runner_digest),
            refresh = if *refresh { "rm -rf \"$c\"\n" } else { "" },
            keep = (*keep_runners).max(1),
            remember = remember_key(key_line),
            args = quoted(args),
        ),
        Script::RunInstalled { id, args } => format!(
            "{TEMP_DIR}{pre}{trust}{note}rel=\"$R/releases/\"{id}\n\
             if [ -f \"$rel/payload.bin\" ]; then set -- --payload \"$rel/payload.bin\"; else set --; fi\nset +e\n\
             {sudo}\"$rel/rustle-runner\" \"$@\" --trusted-key \"$d/deployer.pub\" --root \"$R\" {args}\nexit $?\n",
            trust = trust_lines(key_line),
            id = sh_quote(id),
            args = quoted(args),
        ),
        Script::Rollback { args } => format!(
            "{TEMP_DIR}{trust}{roots}sel=${{roots##*\"$nl\"}}\nl=$sel\n{ROOT_OF_LINE}\
             if ! $S test -x \"$R/current/rustle-runner\" </dev/null; then echo \"rustle: no current release in $R\" >&2; exit 68; fi\n\
             set +e\n$S \"$R/current/rustle-runner\" rollback --root \"$R\" --trusted-key \"$d/deployer.pub\" {args} 2>\"$d/err\"\nrc=$?\n\
             if [ \"$rc\" = 64 ] && grep -q 'unknown argument' \"$d/err\"; then\n\
             $S env RUSTLE_ATTACHED=1 \"$R/current/rustle-runner\" rollback --root \"$R\" --trusted-key \"$d/deployer.pub\"\nrc=$?\n\
             else cat \"$d/err\" >&2; fi\nexit \"$rc\"\n",
            trust = trust_lines(key_line),
            roots = roots_lines(root, how),
            args = quoted(args),
        ),
        Script::List => format!(
            "{roots}any=\n\
             while IFS= read -r l; do\n\
             if [ -z \"$l\" ]; then continue; fi\n{ROOT_OF_LINE}\
             if ! $S test -d \"$R\" </dev/null; then continue; fi\n\
             any=1\n\
             echo \"rustle:root $l\"\n\
             if $S test -f \"$R/state.json\" </dev/null; then $S cat \"$R/state.json\" </dev/null; else echo '{{\"v\":1,\"deployments\":[]}}'; fi\n\
             echo\necho \"current=$($S readlink \"$R/current\" </dev/null 2>/dev/null || true)\"\n\
             done <<EOF\n$roots\nEOF\n\
             if [ -z \"$any\" ]; then echo \"rustle:root ${{roots%%\"$nl\"*}}\"; echo '{{\"v\":1,\"deployments\":[]}}'; echo current=; fi\n",
            roots = roots_lines(root, how),
        ),
        Script::Cleanup { args } => {
            let key = sh_quote(key_line);
            format!(
                "{roots}fail=0\nclean={clean}\n\
                 while IFS= read -r l; do\n\
                 if [ -z \"$l\" ]; then continue; fi\n{ROOT_OF_LINE}\
                 if ! $S test -d \"$R\" </dev/null; then continue; fi\n\
                 if $S sh -c \"$clean\" sh \"$R\" {key} \"$how\" {args} </dev/null; then echo \"rustle:cleaned $l\"; else echo \"rustle: could not clean $R\" >&2; fail=1; fi\n\
                 done <<EOF\n$roots\nEOF\n\
                 if [ \"$fail\" = 0 ]; then rm -f \"$rf\"; rm -rf \"$HOME/.rustle/cache\"; fi\n\
                 if [ -f \"$HOME/.rustle/trusted_keys\" ]; then grep -vxF -- {key} \"$HOME/.rustle/trusted_keys\" > \"$HOME/.rustle/trusted_keys.new\" || true; if [ -s \"$HOME/.rustle/trusted_keys.new\" ]; then mv \"$HOME/.rustle/trusted_keys.new\" \"$HOME/.rustle/trusted_keys\"; else rm -f \"$HOME/.rustle/trusted_keys.new\" \"$HOME/.rustle/trusted_keys\"; fi; fi\n\
                 rmdir \"$HOME/.rustle\" 2>/dev/null || true\n\
                 find \"${{TMPDIR:-/tmp}}\" -maxdepth 1 -name 'rustle.??????????' -user \"$(id -u)\" -exec rm -rf {{}} + 2>/dev/null || true\n\
                 exit \"$fail\"\n",
                roots = roots_lines(root, how),
                clean = sh_quote(CLEAN_ROOT),
                args = quoted(args),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_survives_hostile_values() {
        assert_eq!(sh_quote("plain"), "'plain'");
        assert_eq!(sh_quote("it's; rm -rf /"), r#"'it'"'"'s; rm -rf /'"#);
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("printf %s {}", sh_quote("a'b $(x) `y` \"z\"")))
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), "a'b $(x) `y` \"z\"");
    }

    #[test]
    fn a_line_too_long_to_hold_is_cut_to_its_head_and_the_stream_goes_on() {
        let mut split = LineSplitter::default();
        let mut got: Vec<(String, Option<u64>)> = Vec::new();
        let long = MAX_LINE_BYTES + 5;
        let mut stream = b"first\r\nsec".to_vec();
        stream.extend(b"ond\n");
        stream.extend(std::iter::repeat_n(b'z', long));
        stream.extend(b"\nafter\nlast, unended");
        // In uneven chunks, as a channel delivers them.
        for chunk in stream.chunks(32 * 1024 + 7) {
            split.push(chunk, &mut |l| got.push((l.text.to_string(), l.cut)));
        }
        split.finish(&mut |l| got.push((l.text.to_string(), l.cut)));
        assert_eq!(
            got.len(),
            5,
            "{:?}",
            got.iter().map(|(t, c)| (t.len(), c)).collect::<Vec<_>>()
        );
        assert_eq!(got[0], ("first".to_string(), None));
        assert_eq!(got[1], ("second".to_string(), None));
        assert_eq!(got[2].0, "z".repeat(CUT_LINE_HEAD));
        assert_eq!(got[2].1, Some(long as u64));
        assert_eq!(got[3], ("after".to_string(), None));
        assert_eq!(got[4], ("last, unended".to_string(), None));
        assert!(
            split.buf.capacity() <= 1 << 20,
            "the long line's buffer was kept"
        );
    }

    #[test]
    fn scripts_quote_every_value_and_run_in_sh() {
        let args = vec!["--expect".to_string(), "ab'cd".to_string()];
        let s = script(
            &Script::Deploy {
                size: 10,
                args: &args,
            },
            "rustle-ed25519 00",
            true,
            Some("/srv/it's"),
        );
        assert!(s.contains(r#"sudo -n "$d/rustle-runner" --trusted-key "$d/deployer.pub" --root "$R" '--expect' 'ab'"'"'cd'"#), "{s}");
        assert!(s.contains(r#"R='/srv/it'"'"'s'"#), "{s}");
        for sc in [
            Script::Deploy {
                size: 1,
                args: &args,
            },
            Script::RunInstalled {
                id: "x",
                args: &args,
            },
            Script::DeployCached {
                runner_digest: "d",
                runner_size: 1,
                args: &args,
                refresh: true,
                keep_runners: 2,
            },
            Script::Rollback { args: &args },
            Script::List,
            Script::Cleanup { args: &args },
        ] {
            for (sudo, root) in [(false, None), (true, Some("/srv/it's"))] {
                let text = script(&sc, "k", sudo, root);
                for shell in ["sh", "dash", "bash"] {
                    let out = std::process::Command::new(shell)
                        .args(["-n", "-c", &text])
                        .output()
                        .unwrap();
                    assert!(
                        out.status.success(),
                        "{shell}: {sc:?}: {}\n{text}",
                        String::from_utf8_lossy(&out.stderr)
                    );
                }
            }
        }
    }

    /// Runs `text` under `sh` with `home` as HOME and a `sudo` on PATH that notes each
    /// command it is given in `home/sudo.log` and runs it (as the same user), and an `id`
    /// that says uid 1000: the tests run as root, and must never take this machine's
    /// `/var/lib/rustle` for the default root, so `home/var-lib-rustle` stands for it.
    /// Returns (stdout, stderr, exit code).
    fn with_fake_sudo(home: &Path, text: &str) -> (String, String, Option<i32>) {
        let text = &text.replace(
            "/var/lib/rustle",
            &home.join("var-lib-rustle").display().to_string(),
        );
        let bin = home.join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        let id = bin.join("id");
        std::fs::write(&id, "#!/bin/sh\necho 1000\n").unwrap();
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&id, std::fs::Permissions::from_mode(0o755)).unwrap();
        let sudo = bin.join("sudo");
        std::fs::write(
            &sudo,
            format!(
                "#!/bin/sh\n[ \"$1\" = -n ] && shift\necho \"$*\" >> '{}'\nexec \"$@\"\n",
                home.join("sudo.log").display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&sudo, std::fs::Permissions::from_mode(0o755)).unwrap();
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(text)
            .env("HOME", home)
            .env("PATH", format!("{}:/usr/bin:/bin", bin.display()))
            .output()
            .unwrap();
        (
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
            out.status.code(),
        )
    }

    /// A state root in `home/.rustle` whose current release's runner is `runner`.
    fn root_with_runner(home: &Path, runner: &str) -> PathBuf {
        let root = home.join(".rustle");
        let rel = root.join("releases").join("r1");
        std::fs::create_dir_all(&rel).unwrap();
        let _ = std::fs::remove_file(root.join("current"));
        std::os::unix::fs::symlink("releases/r1", root.join("current")).unwrap();
        std::fs::write(rel.join("rustle-runner"), runner).unwrap();
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(
            rel.join("rustle-runner"),
            std::fs::Permissions::from_mode(0o755),
        )
        .unwrap();
        root
    }

    #[test]
    fn rollback_works_through_a_current_runner_from_before_its_options() {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path();
        // As a runner from before `--attached`, `--keep-releases` and `--no-wait` was:
        // any of them is an unknown argument (exit 64).
        let root = root_with_runner(
            home,
            "#!/bin/sh
for a; do case \"$a\" in --attached|--keep-releases|--no-wait) echo \"rustle-runner: unknown argument: $a\" >&2; exit 64;; esac; done
\
             echo \"old runner: $* attached=${RUSTLE_ATTACHED:-}\"\necho 'old runner: rolled back' >&2\n",
        );
        let args: Vec<String> = ["--attached", "--keep-releases", "3", "--no-wait"]
            .map(String::from)
            .to_vec();
        let rollback = script(&Script::Rollback { args: &args }, "k", false, None);
        let (out, err, code) = with_fake_sudo(home, &rollback);
        assert_eq!(code, Some(0), "{out}{err}");
        assert!(
            out.contains(&format!(
                "old runner: rollback --root {} --trusted-key",
                root.display()
            )) && out.trim_end().ends_with("attached=1"),
            "{out}"
        );
        assert!(!err.contains("unknown argument"), "{err}");
        assert!(err.contains("rolled back"), "{err}");

        // Exit 64 for another reason is the runner's answer: said, not retried.
        root_with_runner(
            home,
            "#!/bin/sh
echo ran >> \"$HOME/ran\"\necho 'rustle-runner: cannot read key' >&2\nexit 64\n",
        );
        let (_, err, code) = with_fake_sudo(home, &rollback);
        assert_eq!(code, Some(64), "{err}");
        assert!(err.contains("cannot read key"), "{err}");
        assert_eq!(std::fs::read_to_string(home.join("ran")).unwrap(), "ran\n");
    }

    #[test]
    fn another_login_finds_the_root_deploys_made_through_sudo() {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path();
        // What a deploy through sudo left in /var/lib/rustle (here home/var-lib-rustle),
        // seen from a login that deployed nothing (no record) and whose inventory says
        // nothing of become.
        let system = home.join("var-lib-rustle");
        let rel = system.join("releases/sys");
        std::fs::create_dir_all(&rel).unwrap();
        std::fs::write(
            system.join("state.json"),
            r#"{"v":1,"deployments":[{"id":"sys"}]}"#,
        )
        .unwrap();
        std::os::unix::fs::symlink("releases/sys", system.join("current")).unwrap();
        std::fs::write(
            rel.join("rustle-runner"),
            "#!/bin/sh\necho \"sys runner: $*\"\n",
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(
            rel.join("rustle-runner"),
            std::fs::Permissions::from_mode(0o755),
        )
        .unwrap();
        let log = || std::fs::read_to_string(home.join("sudo.log")).unwrap_or_default();

        let (out, err, code) = with_fake_sudo(home, &script(&Script::List, "k", false, None));
        assert_eq!(code, Some(0), "{err}");
        assert!(
            out.contains(&format!("rustle:root sudo {}\n", system.display())),
            "{out}"
        );
        assert!(out.contains("\"id\":\"sys\""), "{out}");
        assert!(log().contains("state.json"), "read through sudo: {}", log());

        // Rollback goes there: the only root that exists.
        let (out, err, code) = with_fake_sudo(
            home,
            &script(&Script::Rollback { args: &[] }, "k", false, None),
        );
        assert_eq!(code, Some(0), "{err}");
        assert!(out.contains("sys runner: rollback --root"), "{out}");

        // A login that may not sudo is not asked to.
        let nosudo = home.join("nosudo");
        std::fs::create_dir_all(&nosudo).unwrap();
        std::fs::write(nosudo.join("sudo"), "#!/bin/sh\nexit 1\n").unwrap();
        std::fs::copy(home.join("bin/id"), nosudo.join("id")).unwrap();
        std::fs::set_permissions(nosudo.join("sudo"), std::fs::Permissions::from_mode(0o755))
            .unwrap();
        let text = script(&Script::List, "k", false, None)
            .replace("/var/lib/rustle", &system.display().to_string());
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(&text)
            .env("HOME", home)
            .env("PATH", format!("{}:/usr/bin:/bin", nosudo.display()))
            .output()
            .unwrap();
        let out = String::from_utf8_lossy(&out.stdout);
        assert!(out.contains("rustle:root user"), "{out}");
        assert!(!out.contains("rustle:root sudo"), "{out}");
    }

    #[test]
    fn deploys_record_their_root_and_sudo_latest_last() {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path();
        for (sudo, root) in [(true, "/srv/a b"), (false, "/srv/c"), (true, "/srv/a b")] {
            let text = format!("set -e\nR='{root}'\n{}", note_root(sudo));
            let (_, err, code) = with_fake_sudo(home, &text);
            assert_eq!(code, Some(0), "{err}");
        }
        assert_eq!(
            std::fs::read_to_string(home.join(".rustle/roots")).unwrap(),
            "user /srv/c\nsudo /srv/a b\n"
        );
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(home.join(".rustle/roots"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "{mode:o}");
    }

    #[test]
    fn deploys_sharing_a_login_record_every_root_at_once() {
        // Local hosts share the controller's $HOME: their deploys write the record
        // together, and none may lose another's line or fail on its temp file.
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path();
        let children: Vec<_> = (0..12)
            .map(|i| {
                std::process::Command::new("sh")
                    .arg("-c")
                    .arg(format!("set -e\nR='/srv/r{i}'\n{}", note_root(false)))
                    .env("HOME", home)
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for child in children {
            let out = child.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let record = std::fs::read_to_string(home.join(".rustle/roots")).unwrap();
        for i in 0..12 {
            assert!(
                record.contains(&format!("user /srv/r{i}\n")),
                "r{i} lost: {record}"
            );
        }
        let stray: Vec<_> = std::fs::read_dir(home.join(".rustle"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .filter(|n| n != "roots")
            .collect();
        assert!(stray.is_empty(), "{stray:?}");
    }

    #[test]
    fn host_operations_use_the_roots_and_sudo_the_deploys_recorded() {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path();
        let mine = home.join(".rustle");
        let roots_dir = home.join("srv");
        let theirs = roots_dir.join("root state");
        for (root, id) in [(&mine, "mine"), (&theirs, "theirs")] {
            std::fs::create_dir_all(root.join("releases").join(id)).unwrap();
            std::fs::write(
                root.join("state.json"),
                format!("{{\"v\":1,\"deployments\":[{{\"id\":\"{id}\"}}]}}"),
            )
            .unwrap();
            std::os::unix::fs::symlink(format!("releases/{id}"), root.join("current")).unwrap();
            let runner = root.join("releases").join(id).join("rustle-runner");
            // A runner from before `cleanup` (exit 64): the script cleans by itself.
            std::fs::write(
                &runner,
                format!("#!/bin/sh\n[ \"$1\" = cleanup ] && exit 64\necho \"{id} runner: $*\"\n"),
            )
            .unwrap();
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(&runner, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        std::fs::write(
            mine.join("roots"),
            format!("user {}\nsudo {}\n", mine.display(), theirs.display()),
        )
        .unwrap();
        let log = || std::fs::read_to_string(home.join("sudo.log")).unwrap_or_default();

        // The inventory says nothing of become: both roots are listed, the one a deploy
        // made through sudo read through sudo.
        let (out, err, code) = with_fake_sudo(home, &script(&Script::List, "k", false, None));
        assert_eq!(code, Some(0), "{err}");
        assert!(
            out.contains(&format!("rustle:root user {}\n", mine.display())),
            "{out}"
        );
        assert!(
            out.contains(&format!("rustle:root sudo {}\n", theirs.display())),
            "{out}"
        );
        assert!(out.contains("current=releases/theirs"), "{out}");
        assert!(
            log().contains(&format!("cat {}/state.json", theirs.display())),
            "{}",
            log()
        );
        assert!(!log().contains(&mine.display().to_string()), "{}", log());

        // Rollback works in the latest root, through sudo.
        let args = vec!["--no-wait".to_string()];
        let (out, err, code) = with_fake_sudo(
            home,
            &script(&Script::Rollback { args: &args }, "k", false, None),
        );
        assert_eq!(code, Some(0), "{err}");
        assert!(
            out.contains(&format!(
                "theirs runner: rollback --root {} --trusted-key",
                theirs.display()
            )) && out.trim_end().ends_with("--no-wait"),
            "{out}"
        );

        // With rustle_root, only that root, through sudo because a deploy recorded it so.
        let fixed = theirs.display().to_string();
        std::fs::remove_file(home.join("sudo.log")).unwrap();
        let (out, err, code) =
            with_fake_sudo(home, &script(&Script::List, "k", false, Some(&fixed)));
        assert_eq!(code, Some(0), "{err}");
        assert!(!out.contains("rustle:root user"), "{out}");
        assert!(log().contains("state.json"), "{}", log());

        // Cleanup empties both, says which, and forgets the record.
        let (out, err, code) = with_fake_sudo(
            home,
            &script(&Script::Cleanup { args: &[] }, "k", false, None),
        );
        assert_eq!(code, Some(0), "{err}");
        assert!(
            out.contains(&format!("rustle:cleaned sudo {}", theirs.display())),
            "{out}"
        );
        assert!(
            out.contains(&format!("rustle:cleaned user {}", mine.display())),
            "{out}"
        );
        assert!(!out.contains("/var/lib/rustle"), "{out}");
        assert!(!theirs.exists() && !mine.exists(), "{out}");
    }
}
