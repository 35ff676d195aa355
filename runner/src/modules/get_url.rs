//! The get_url module: downloads a URL to a file with ansible.builtin.get_url's
//! arguments (`url`, `dest`, `checksum`, `force`, `mode`/`owner`/`group`, `timeout`,
//! `headers`, `validate_certs`) and results.
//!
//! `file://` URLs are read directly. The runner has no network library by design, so
//! http, https and ftp go through the host's `curl` (else `wget`), started like every
//! process of the task (its `environment`, its `become_user`) with an argument vector,
//! never a shell. Neither the URL nor the headers (often `Authorization`) appear in that
//! argument vector, which every local user can read in /proc: curl reads them as a
//! config on stdin, wget from 0600 files.
//!
//! The download lands in a private directory only the runner (or the become_user) can
//! enter, is checked against `checksum`, then copied into a new file beside `dest`
//! (created O_EXCL, attributes set on its descriptor) and renamed over `dest`: no
//! program ever opens a name beside `dest` that someone else could have swapped for a
//! symlink. On any failure `dest` is untouched.
//!
//! Idempotent as Ansible's `force: no`: an existing `dest` is left alone without
//! downloading when no checksum is given or it matches (a mismatch downloads again). As
//! in Ansible, check mode still downloads (to the private directory) to tell whether
//! `dest` would change. Checksums: md5, sha1, sha224, sha256, sha384, sha512 (checksum
//! file URLs are refused).

use super::fsutil::{self, Attrs, Dir, Finish, Step, fail};
use super::tools::{self, PrivateDir};
use super::{Ctx, Diff, ModuleError, Outcome, args};
use crate::digest::Hasher;
use crate::plan::Vars;
use serde_json::Value;
use std::ffi::{OsStr, OsString};
use std::fs;
use std::io::{self, Read, Seek, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

const KNOWN: &[&str] = &[
    "url",
    "dest",
    "checksum",
    "force",
    "mode",
    "owner",
    "group",
    "timeout",
    "headers",
    "validate_certs",
];

const ALGOS: &[&str] = &["md5", "sha1", "sha224", "sha256", "sha384", "sha512"];

/// The name of the downloaded file in the private directory.
const DOWNLOAD: &str = "download";

pub(super) fn run(a: &Vars, ctx: &Ctx<'_>) -> Result<Outcome, ModuleError> {
    fsutil::finish(run_inner(a, ctx))
}

/// `algo:hex` → (algo, lowercase hex).
fn parse_checksum(s: &str) -> Result<(String, String), ModuleError> {
    let bad = |why: &str| ModuleError::BadArgs(format!("argument 'checksum' {why}, got '{s}'"));
    let (algo, hex) = s
        .split_once(':')
        .ok_or_else(|| bad("must be <algorithm>:<hex digest>"))?;
    let algo = algo.trim().to_ascii_lowercase();
    let hex = hex.trim().to_ascii_lowercase();
    if hex.contains("://") {
        return Err(bad(
            "must be a digest (checksum file URLs are not supported)",
        ));
    }
    if !ALGOS.contains(&algo.as_str()) {
        return Err(bad(&format!(
            "algorithm must be one of {}",
            ALGOS.join(", ")
        )));
    }
    if hex.is_empty() || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(bad("digest must be hexadecimal"));
    }
    Ok((algo, hex))
}

/// What a stream hashed to: its size, its SHA-1 (what Ansible registers) and, when
/// asked for, the digest a `checksum` names.
struct Hashed {
    size: u64,
    sha1: String,
    other: Option<String>,
}

/// Reads `r` to the end, hashing it, and copies it into `sink` when given.
fn hash_stream(
    mut r: impl Read,
    algo: Option<&str>,
    mut sink: Option<&mut fs::File>,
) -> io::Result<Hashed> {
    let mut sha1 = Hasher::sha1();
    let mut other = algo.and_then(Hasher::named);
    let mut buf = vec![0u8; 64 * 1024];
    let mut size = 0u64;
    loop {
        let n = match r.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        let chunk = buf.get(..n).unwrap_or_default();
        sha1.update(chunk);
        if let Some(h) = &mut other {
            h.update(chunk);
        }
        if let Some(w) = &mut sink {
            w.write_all(chunk)?;
        }
        size += n as u64;
    }
    Ok(Hashed {
        size,
        sha1: sha1.hex(),
        other: other.map(Hasher::hex),
    })
}

/// The HTTP client found on the host.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Tool {
    Curl,
    Wget,
}

/// curl, else wget, from the directories of a `PATH` value.
fn find_tool(path_var: Option<&OsStr>) -> Option<(Tool, PathBuf)> {
    let dirs: Vec<PathBuf> = path_var
        .map(|p| std::env::split_paths(p).collect())
        .unwrap_or_default();
    for (tool, name) in [(Tool::Curl, "curl"), (Tool::Wget, "wget")] {
        for d in &dirs {
            let candidate = d.join(name);
            if fs::metadata(&candidate).is_ok_and(|m| m.is_file() && m.mode() & 0o111 != 0) {
                return Some((tool, candidate));
            }
        }
    }
    None
}

/// What a download needs besides the URL.
struct Fetch<'a> {
    timeout: u64,
    validate_certs: bool,
    headers: &'a [(String, String)],
}

/// The wget startup file that carries the headers: the system's own settings (a
/// `--config` file replaces them; only when every user may read them anyway, as the
/// copy may belong to the become_user), then one `header` command each.
fn wget_config(headers: &[(String, String)]) -> String {
    let system = Path::new("/etc/wgetrc");
    let mut conf = match fs::metadata(system) {
        Ok(m) if m.is_file() && m.mode() & 0o004 != 0 => {
            fs::read_to_string(system).unwrap_or_default()
        }
        _ => String::new(),
    };
    if !conf.is_empty() && !conf.ends_with('\n') {
        conf.push('\n');
    }
    for (k, v) in headers {
        conf.push_str(&format!("header = {k}: {v}\n"));
    }
    conf
}

/// Downloads `url` into `dir/download` with curl or wget, started as `cmd` (the tool,
/// with the task's environment and user). Files the tool reads (wget's URL and
/// headers) are written to `dir`. Returns the HTTP status when the tool reports it; a
/// failure carries the tool's own message.
fn fetch_with(
    tool: Tool,
    mut cmd: Command,
    url: &str,
    dir: &PrivateDir,
    f: &Fetch<'_>,
) -> Result<Option<u16>, String> {
    let to = dir.path().join(DOWNLOAD);
    let private = |name: &str, content: &str| {
        dir.write(name, content.as_bytes(), 0o600)
            .map_err(|e| format!("could not write {name} for wget: {e}"))
    };
    let stdin = match tool {
        Tool::Curl => {
            cmd.args(["--silent", "--show-error", "--fail", "--location"])
                .arg("--connect-timeout")
                .arg(f.timeout.to_string())
                .args(["--write-out", "%{http_code}", "--output"])
                .arg(&to);
            if !f.validate_certs {
                cmd.arg("--insecure");
            }
            cmd.args(["--config", "-"]);
            Some(tools::curl_config(url, f.headers))
        }
        Tool::Wget => {
            cmd.args(["--quiet", "--server-response"])
                .arg(format!("--timeout={}", f.timeout))
                .arg("--tries=1")
                .arg("--output-document")
                .arg(&to);
            if !f.validate_certs {
                cmd.arg("--no-check-certificate");
            }
            if !f.headers.is_empty() {
                let mut opt = OsString::from("--config=");
                opt.push(private("wgetrc", &wget_config(f.headers))?);
                cmd.arg(opt);
            }
            let mut opt = OsString::from("--input-file=");
            opt.push(private("url", &format!("{url}\n"))?);
            cmd.arg(opt);
            None
        }
    };
    let program = cmd.get_program().to_string_lossy().into_owned();
    let out = tools::run_command(cmd, &[], stdin.as_deref().map(str::as_bytes))
        .map_err(|e| format!("could not run {program}: {e}"))?;
    let status = match tool {
        Tool::Curl => out.stdout.trim().parse::<u16>().ok().filter(|c| *c != 0),
        // wget prints the response headers (last one wins after redirects) on stderr.
        Tool::Wget => out
            .stderr
            .lines()
            .rev()
            .filter_map(|l| l.trim().strip_prefix("HTTP/"))
            .find_map(|l| l.split_whitespace().nth(1)?.parse().ok()),
    };
    if out.rc == 0 {
        return Ok(status);
    }
    let msg = match tool {
        Tool::Curl => out.stderr.trim().to_string(),
        Tool::Wget => {
            let tail: Vec<&str> = out
                .stderr
                .lines()
                .filter(|l| !l.starts_with("  "))
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .collect();
            let exit = format!("wget exit {}", out.rc);
            if tail.is_empty() {
                exit
            } else {
                format!("{} ({exit})", tail.join("; "))
            }
        }
    };
    Err(match status {
        Some(code) if code >= 400 => format!("HTTP Error {code}: {msg}"),
        _ => msg,
    })
}

/// The last path segment of a URL, for a directory `dest` (`index.html` when empty).
fn url_filename(url: &str) -> String {
    let no_query = url.split(['?', '#']).next().unwrap_or(url);
    let path = no_query
        .split_once("://")
        .map_or(no_query, |(_, rest)| rest);
    let path = path.split_once('/').map_or("", |(_, p)| p);
    match path.rsplit('/').next() {
        Some(n) if !n.is_empty() => n.to_string(),
        _ => "index.html".to_string(),
    }
}

/// The arguments besides the destination.
struct Request {
    url: String,
    checksum: Option<(String, String)>,
    force: bool,
    attrs: Attrs,
    fetch_timeout: u64,
    validate_certs: bool,
    headers: Vec<(String, String)>,
}

fn run_inner(a: &Vars, ctx: &Ctx<'_>) -> Step<Outcome> {
    args::only(a, KNOWN)?;
    let url = args::req_str(a, "url")?;
    let dest_arg = args::req_str(a, "dest")?;
    let checksum = args::opt_str(a, "checksum")?
        .filter(|c| !c.is_empty())
        .map(|c| parse_checksum(&c))
        .transpose()?;
    let force = args::bool_or(a, "force", false)?;
    let validate_certs = args::bool_or(a, "validate_certs", true)?;
    let timeout = match a.get("timeout") {
        None | Some(Value::Null) => 10,
        Some(v) => v
            .as_u64()
            .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
            .filter(|t| *t > 0)
            .ok_or_else(|| {
                ModuleError::BadArgs(format!(
                    "argument 'timeout' must be a positive integer, got {v}"
                ))
            })?,
    };
    let headers: Vec<(String, String)> = match a.get("headers") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Object(m)) => m
            .iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    v.as_str().map_or_else(|| v.to_string(), str::to_string),
                )
            })
            .collect(),
        Some(other) => {
            return Err(ModuleError::BadArgs(format!(
                "argument 'headers' must be a mapping, got {other}"
            ))
            .into());
        }
    };
    if headers
        .iter()
        .any(|(k, v)| k.contains(['\r', '\n', ':']) || v.contains(['\r', '\n']))
    {
        return Err(ModuleError::BadArgs(
            "argument 'headers' has a name or value with a line break or colon".into(),
        )
        .into());
    }
    // The URL goes into a config or list file, one a line.
    if url.chars().any(char::is_control) {
        return Err(ModuleError::BadArgs(
            "argument 'url' contains a control character (a line break?)".into(),
        )
        .into());
    }
    let scheme = url.split_once("://").map(|(s, _)| s.to_ascii_lowercase());
    if !matches!(scheme.as_deref(), Some("file" | "http" | "https" | "ftp")) {
        return Err(ModuleError::BadArgs(format!(
            "argument 'url' must be a file, http, https or ftp URL, got '{url}'"
        ))
        .into());
    }
    let attrs = Attrs::from_args(a)?;

    let dest = if Path::new(&dest_arg).is_dir() {
        Path::new(&dest_arg).join(url_filename(&url))
    } else {
        PathBuf::from(&dest_arg)
    };
    let base = |o: Outcome| {
        o.with("url", url.clone())
            .with("dest", dest.display().to_string())
    };
    let parent = match dest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if !parent.is_dir() {
        return Err(fsutil::failed(base(Outcome::fail(format!(
            "Destination dir {} does not exist",
            parent.display()
        )))));
    }
    let Some(name) = dest.file_name().map(OsStr::to_os_string) else {
        return fail(format!("dest {} does not name a file", dest.display()));
    };
    let dir = Dir::open(&parent).map_err(|e| fsutil::io_fail("open", &parent, &e))?;
    let req = Request {
        url: url.clone(),
        checksum,
        force,
        attrs,
        fetch_timeout: timeout,
        validate_certs,
        headers,
    };
    let started = Instant::now();
    let result = fetch_and_place(&req, &dir, &name, &dest, ctx);
    let mut o = base(result?);
    o = o.with("elapsed", started.elapsed().as_secs());
    Ok(o)
}

/// The existing regular file at `name`, opened through a descriptor checked to be the
/// file lstat saw (a symlink there is not followed: it will be replaced).
fn open_existing(dir: &Dir, name: &OsStr) -> Step<Option<(fs::File, fs::Metadata)>> {
    match dir.lstat(name)? {
        Some(m) if m.is_file() => Ok(Some((dir.open_seen(name, &m)?, m))),
        _ => Ok(None),
    }
}

fn fetch_and_place(
    req: &Request,
    dir: &Dir,
    name: &OsStr,
    dest: &Path,
    ctx: &Ctx<'_>,
) -> Step<Outcome> {
    let existing = open_existing(dir, name)?;
    let algo = req.checksum.as_ref().map(|(a, _)| a.as_str());

    // Already there and not forced: no download (a checksum must still match).
    if let Some((file, meta)) = &existing
        && !req.force
    {
        let matches = match &req.checksum {
            None => true,
            Some((_, want)) => hash_stream(file, algo, None)
                .is_ok_and(|h| h.other.as_deref() == Some(want.as_str())),
        };
        if matches {
            let changes = fsutil::apply_attrs_at(dir, name, &req.attrs, true, ctx.check_mode)?;
            let mut o = Outcome::changed(!changes.is_empty()).msg(if changes.is_empty() {
                "file already exists"
            } else {
                "file already exists but file attributes changed"
            });
            if ctx.diff_mode && !changes.is_empty() {
                o.diff.push(changes.to_diff(dest));
            }
            let _ = meta;
            return Ok(fsutil::add_path_info(o, dest, true));
        }
    }

    // Everything is fetched into a directory only this process (or the become_user,
    // who runs the tool) can enter, so no one can redirect the tool's writes.
    let staging = PrivateDir::for_task("get_url", ctx.run_as).map_err(|e| {
        fsutil::failed(Outcome::fail(format!(
            "could not create a private directory for the download: {e}"
        )))
    })?;
    let status = fetch(req, &staging, ctx)?;
    let sdir =
        Dir::open(staging.path()).map_err(|e| fsutil::io_fail("open", staging.path(), &e))?;
    let download = OsStr::new(DOWNLOAD);
    let shown = staging.path().join(DOWNLOAD);
    // A regular file with one link: what the tool wrote, not something planted.
    let staged = match sdir.lstat(download)? {
        Some(m) if m.is_file() && m.nlink() == 1 => sdir.open_seen(download, &m)?,
        _ => {
            return fail(format!(
                "the download {} is not a regular file",
                shown.display()
            ));
        }
    };
    let got = hash_stream(&staged, algo, None).map_err(|e| fsutil::io_fail("read", &shown, &e))?;
    if let Some((_, want)) = &req.checksum
        && got.other.as_deref() != Some(want.as_str())
    {
        return fail(format!(
            "The checksum for {} did not match {want}; it was {}.",
            dest.display(),
            got.other.unwrap_or_default()
        ));
    }
    let checksum_dest = match &existing {
        Some((file, _)) => {
            let mut f = file;
            f.rewind()
                .ok()
                .and_then(|()| hash_stream(f, None, None).ok())
                .map(|h| h.sha1)
        }
        None => None,
    };
    let same = checksum_dest.as_deref() == Some(got.sha1.as_str());
    let mut o = Outcome::ok()
        .msg(format!("OK ({} bytes)", got.size))
        .with("checksum_src", got.sha1.clone())
        .with("size", got.size);
    if let Some(code) = status {
        o = o.with("status_code", code);
    }
    if let Some(c) = &checksum_dest {
        o = o.with("checksum_dest", c.clone());
    }
    if same {
        let changes = fsutil::apply_attrs_at(dir, name, &req.attrs, true, ctx.check_mode)?;
        o.changed = !changes.is_empty();
        if ctx.diff_mode && o.changed {
            o.diff.push(changes.to_diff(dest));
        }
        return Ok(fsutil::add_path_info(o, dest, true));
    }
    o.changed = true;
    if ctx.diff_mode {
        o.diff.push(Diff {
            before_header: dest.display().to_string(),
            after_header: req.url.clone(),
            before: checksum_dest.map_or_else(String::new, |c| format!("checksum: {c}\n")),
            after: format!("checksum: {}\nsize: {}\n", got.sha1, got.size),
        });
    }
    if ctx.check_mode {
        return Ok(o);
    }
    // A replaced file keeps its mode and owner unless others are asked for.
    let meta = existing.as_ref().map(|(_, m)| m);
    let mode = req
        .attrs
        .mode
        .unwrap_or_else(|| meta.map_or_else(fsutil::default_file_mode, |m| m.mode() & 0o7777));
    let mut new = dir.new_file(name)?;
    let mut staged = staged;
    staged
        .rewind()
        .map_err(|e| fsutil::io_fail("read", &shown, &e))?;
    let copied = hash_stream(&staged, None, Some(new.file()))
        .map_err(|e| fsutil::io_fail("write", &new.shown(), &e))?;
    // What was checked is what is placed: the become_user owns the download and could
    // have changed it since.
    if copied.sha1 != got.sha1 {
        return fail(format!(
            "the download {} changed while it was being copied to {}",
            shown.display(),
            dest.display()
        ));
    }
    new.place(
        name,
        &Finish {
            mode,
            keep_owner: meta.map(|m| (m.uid(), m.gid())),
            uid: req.attrs.uid,
            gid: req.attrs.gid,
            mtime: None,
            sync: meta.is_some(),
            keep_xattrs: None,
        },
    )?;
    Ok(fsutil::add_path_info(o, dest, true))
}

/// The document at `url` (http, https or ftp through the host's curl or wget, as
/// get_url fetches; 10 s to connect, certificates checked), for a module that reads a
/// small one such as deb822_repository's `signed_by` key.
pub(super) fn download(url: &str, ctx: &Ctx<'_>) -> Result<Vec<u8>, String> {
    let staging = PrivateDir::for_task("download", ctx.run_as)
        .map_err(|e| format!("could not make a private directory: {e}"))?;
    let Some((tool, program)) = find_tool(std::env::var_os("PATH").as_deref()) else {
        return Err(
            "neither curl nor wget is installed on this host (the runner has no HTTP client of its own)"
                .into(),
        );
    };
    let f = Fetch {
        timeout: 10,
        validate_certs: true,
        headers: &[],
    };
    fetch_with(tool, ctx.command(&program), url, &staging, &f)?;
    fs::read(staging.path().join(DOWNLOAD)).map_err(|e| format!("could not read the download: {e}"))
}

/// Gets the URL's content into the private directory's `download` file; the HTTP
/// status when there is one.
fn fetch(req: &Request, staging: &PrivateDir, ctx: &Ctx<'_>) -> Step<Option<u16>> {
    if let Some(rest) = req.url.strip_prefix("file://") {
        let path = rest.strip_prefix("localhost").unwrap_or(rest);
        let copied = fs::File::open(path).and_then(|src| {
            let mut to = staging
                .dir()
                .create_new(OsStr::new(DOWNLOAD), 0o600)
                .map_err(io::Error::other)?;
            io::copy(&mut io::BufReader::new(src), &mut to)
        });
        copied
            .map_err(|e| fsutil::failed(Outcome::fail(format!("Request failed: {path}: {e}"))))?;
        return Ok(None);
    }
    let Some((tool, program)) = find_tool(std::env::var_os("PATH").as_deref()) else {
        return fail(format!(
            "cannot download {}: neither curl nor wget is installed on this host (the runner has no HTTP client of its own)",
            req.url
        ));
    };
    let f = Fetch {
        timeout: req.fetch_timeout,
        validate_certs: req.validate_certs,
        headers: &req.headers,
    };
    match fetch_with(tool, ctx.command(&program), &req.url, staging, &f) {
        Ok(s) => Ok(s),
        Err(msg) => {
            let mut o = Outcome::fail(format!("Request failed: {msg}"));
            if let Some(code) = msg
                .strip_prefix("HTTP Error ")
                .and_then(|m| m.get(..3))
                .and_then(|c| c.parse::<u16>().ok())
            {
                o = o.with("status_code", code);
            }
            Err(fsutil::failed(o))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tools::PrivateDir;
    use super::super::{ModuleError, Outcome};
    use super::{DOWNLOAD, Fetch, Tool, fetch_with, find_tool};
    use std::process::Command;

    use serde_json::{Value, json};

    use std::fs;
    use std::io::{Read, Write};
    use std::net::TcpListener;
    use std::os::unix::fs::PermissionsExt;
    use std::path::Path;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};

    const BODY: &str = "downloaded over http\n";
    const BODY_SHA256: &str =
        "sha256:9f63d5cc0750937493c527a28ddeac70955c8bf9e535bacacb9ef36e785e82b4";

    fn check(dir: &Path, args: Value, check_mode: bool) -> Result<Outcome, ModuleError> {
        crate::modules::run_in_dir_for_test("get_url", dir, &args, check_mode)
    }

    /// What the test server saw.
    #[derive(Default)]
    struct Seen {
        /// Requests served.
        hits: AtomicUsize,
        /// Command lines of processes on this host that showed the secret while an
        /// `/auth` request was being answered (the client is alive then, waiting).
        leaks: Mutex<Vec<String>>,
    }

    /// A header value and URL token no command line may show.
    const SECRET: &str = "s3cr3t-t0ken-rustle";

    /// Every process command line on this host that contains `needle`.
    fn command_lines_with(needle: &str) -> Vec<String> {
        let mut found = Vec::new();
        for e in fs::read_dir("/proc").unwrap().flatten() {
            if let Ok(raw) = fs::read(e.path().join("cmdline")) {
                let line = String::from_utf8_lossy(&raw).replace('\0', " ");
                if line.contains(needle) {
                    found.push(line);
                }
            }
        }
        found
    }

    /// A tiny HTTP/1.0 server on 127.0.0.1: `/file.txt` is BODY; `/count` is 512 KiB
    /// that differ on each request; `/auth...` answers 200 when the request carries
    /// `Authorization: Bearer SECRET` and 401 otherwise, after looking for SECRET in
    /// every command line; anything else is 404. Returns its base URL and what it saw.
    fn server() -> (String, Arc<Seen>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Seen::default());
        let record = seen.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut s) = stream else { continue };
                let mut req = Vec::new();
                let mut buf = [0u8; 1024];
                while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => req.extend_from_slice(&buf[..n]),
                    }
                }
                let n = record.hits.fetch_add(1, Ordering::SeqCst);
                let text = String::from_utf8_lossy(&req).to_string();
                let line = text.lines().next().unwrap_or("").to_string();
                let ok = |body: &str| {
                    format!(
                        "HTTP/1.0 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
                        body.len()
                    )
                };
                let resp = if line.starts_with("GET /file.txt ") {
                    ok(BODY)
                } else if line.starts_with("GET /count ") {
                    ok(&format!("{n}\n{}", "x".repeat(512 << 10)))
                } else if line.starts_with("GET /auth") {
                    record
                        .leaks
                        .lock()
                        .unwrap()
                        .extend(command_lines_with(SECRET));
                    let want = format!("authorization: bearer {SECRET}");
                    if text.to_lowercase().lines().any(|l| l.trim() == want) {
                        ok("authorized\n")
                    } else {
                        "HTTP/1.0 401 Unauthorized\r\nContent-Length: 2\r\n\r\nno".to_string()
                    }
                } else {
                    "HTTP/1.0 404 Not Found\r\nContent-Length: 4\r\n\r\ngone".to_string()
                };
                let _ = s.write_all(resp.as_bytes());
            }
        });
        (format!("http://127.0.0.1:{port}"), seen)
    }

    #[test]
    fn the_expected_sha256_is_right() {
        let t = tempfile::tempdir().unwrap();
        let f = t.path().join("b");
        fs::write(&f, BODY).unwrap();
        let out = std::process::Command::new("sha256sum")
            .arg(&f)
            .output()
            .unwrap();
        let hex = String::from_utf8(out.stdout).unwrap();
        assert_eq!(
            BODY_SHA256.strip_prefix("sha256:").unwrap(),
            hex.split_whitespace().next().unwrap()
        );
        assert_eq!(
            crate::digest::file_hex("sha256", &f).unwrap().unwrap(),
            hex.split_whitespace().next().unwrap()
        );
    }

    #[test]
    fn md5_matches_md5sum() {
        assert_eq!(
            crate::digest::hex("md5", b"").unwrap(),
            "d41d8cd98f00b204e9800998ecf8427e"
        );
        let t = tempfile::tempdir().unwrap();
        for len in [3usize, 55, 56, 64, 1000] {
            let f = t.path().join("m");
            let data: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
            fs::write(&f, &data).unwrap();
            let out = std::process::Command::new("md5sum")
                .arg(&f)
                .output()
                .unwrap();
            let want = String::from_utf8(out.stdout).unwrap();
            assert_eq!(
                crate::digest::file_hex("md5", &f).unwrap().unwrap(),
                want.split_whitespace().next().unwrap(),
                "{len}"
            );
        }
    }

    #[test]
    fn http_download_with_checksum_is_done_once() {
        let (base, seen) = server();
        let hits = &seen.hits;
        let t = tempfile::tempdir().unwrap();
        let args = json!({"url": format!("{base}/file.txt"), "dest": "{p}/out.txt", "checksum": BODY_SHA256, "mode": "0640"});
        let dry = check(t.path(), args.clone(), true).unwrap();
        assert!(dry.changed && !dry.failed, "{dry:?}");
        assert!(!t.path().join("out.txt").exists());
        assert_eq!(
            fs::read_dir(t.path()).unwrap().count(),
            0,
            "check mode left a temp file"
        );
        let out = check(t.path(), args.clone(), false).unwrap();
        assert!(out.changed && !out.failed, "{out:?}");
        assert_eq!(fs::read_to_string(t.path().join("out.txt")).unwrap(), BODY);
        assert_eq!(out.data["status_code"], 200);
        assert_eq!(out.data["mode"], "0640");
        assert_eq!(out.diff[0].after_header, format!("{base}/file.txt"));
        let served = hits.load(Ordering::SeqCst);
        let again = check(t.path(), args, false).unwrap();
        assert!(!again.changed && !again.failed, "{again:?}");
        assert_eq!(
            hits.load(Ordering::SeqCst),
            served,
            "second run downloaded again"
        );
        // force re-downloads, and identical content is still ok.
        let forced = check(
            t.path(),
            json!({"url": format!("{base}/file.txt"), "dest": "{p}/out.txt", "force": true}),
            false,
        )
        .unwrap();
        assert!(!forced.changed && !forced.failed, "{forced:?}");
        assert_eq!(hits.load(Ordering::SeqCst), served + 1);
        // A directory dest takes the URL's file name.
        let into_dir = check(
            t.path(),
            json!({"url": format!("{base}/file.txt"), "dest": "{p}"}),
            false,
        )
        .unwrap();
        assert!(
            into_dir.changed
                && into_dir.data["dest"]
                    .as_str()
                    .unwrap()
                    .ends_with("/file.txt")
        );
        assert_eq!(
            fs::read_dir(t.path()).unwrap().count(),
            2,
            "temp files left behind"
        );
    }

    #[test]
    fn wget_downloads_too() {
        // curl wins the lookup, so wget is driven directly; it is installed here.
        let wget = Path::new("/usr/bin/wget");
        assert!(wget.exists(), "wget is expected on this machine");
        let (base, seen) = server();
        let f = Fetch {
            timeout: 5,
            validate_certs: true,
            headers: &[("Authorization".into(), format!("Bearer {SECRET}"))],
        };
        let dir = PrivateDir::new("t").unwrap();
        let code = fetch_with(
            Tool::Wget,
            Command::new(wget),
            &format!("{base}/file.txt"),
            &dir,
            &f,
        )
        .unwrap();
        assert_eq!(code, Some(200));
        assert_eq!(fs::read_to_string(dir.path().join(DOWNLOAD)).unwrap(), BODY);
        let dir = PrivateDir::new("t").unwrap();
        let err = fetch_with(
            Tool::Wget,
            Command::new(wget),
            &format!("{base}/nope"),
            &dir,
            &f,
        )
        .unwrap_err();
        assert!(err.contains("404"), "{err}");
        // The header arrives; neither it nor the URL's token is in wget's argv.
        let dir = PrivateDir::new("t").unwrap();
        let url = format!("{base}/auth?token={SECRET}");
        let code = fetch_with(Tool::Wget, Command::new(wget), &url, &dir, &f).unwrap();
        assert_eq!(code, Some(200));
        let leaks = seen.leaks.lock().unwrap().clone();
        assert!(leaks.is_empty(), "a secret in a command line: {leaks:?}");
    }

    /// `headers:` (an `Authorization` here) and a token in the URL were passed to curl
    /// as arguments, which any local user reads in /proc/*/cmdline while it runs. The
    /// server looks at every command line while curl waits for its answer.
    #[test]
    fn headers_and_url_never_reach_a_command_line() {
        let (base, seen) = server();
        let t = tempfile::tempdir().unwrap();
        let out = check(
            t.path(),
            json!({"url": format!("{base}/auth?token={SECRET}"), "dest": "{p}/a.txt",
                   "headers": {"Authorization": format!("Bearer {SECRET}")}}),
            false,
        )
        .unwrap();
        assert!(out.changed && !out.failed, "{out:?}");
        assert_eq!(
            fs::read_to_string(t.path().join("a.txt")).unwrap(),
            "authorized\n"
        );
        let leaks = seen.leaks.lock().unwrap().clone();
        assert!(leaks.is_empty(), "a secret in a command line: {leaks:?}");
        // Quotes and backslashes survive curl's config quoting.
        let conf =
            super::super::tools::curl_config("http://h/a\"b", &[("X".into(), "a\\b\"c\td".into())]);
        assert_eq!(
            conf,
            "url = \"http://h/a\\\"b\"\nheader = \"X: a\\\\b\\\"c\\td\"\n"
        );
    }

    /// A user who owns dest's directory swaps every temp file there for a symlink to a
    /// root-only file. curl used to reopen the temp file by name (and root chmodded and
    /// chowned it by name), so the download landed in the victim; now the download goes
    /// to a private directory and is copied into a descriptor beside dest.
    #[test]
    fn downloads_never_land_in_a_swapped_temp_file() {
        let s = crate::modules::fsutil::hostile::Scene::new("rustle-ta-geturl");
        let (base, _) = server();
        let dest = s.home.join("app.bin");
        let swapper = s.swapper(&s.home, &[".rustle-download", ".rustle-tmp"]);
        let mut failures = Vec::new();
        for _ in 0..20 {
            s.user_file(&dest, b"the user's file\n");
            let out = check(
                &s.home,
                json!({"url": format!("{base}/count"), "dest": "{p}/app.bin", "mode": "0644", "force": true}),
                false,
            )
            .unwrap();
            if out.failed {
                failures.push(out.msg.unwrap_or_default());
            }
        }
        let swapped = swapper.finish();
        assert!(
            swapped > 0,
            "the attacker never caught a temp file: nothing was tested"
        );
        s.victim_untouched();
        for msg in &failures {
            assert!(msg.contains("was replaced while being written"), "{msg}");
        }
    }

    #[test]
    fn failures_are_clear_and_leave_dest_untouched() {
        let (base, _) = server();
        let t = tempfile::tempdir().unwrap();
        let dest = t.path().join("keep.txt");
        fs::write(&dest, "precious").unwrap();
        let nf = check(
            t.path(),
            json!({"url": format!("{base}/missing"), "dest": "{p}/keep.txt", "force": true}),
            false,
        )
        .unwrap();
        assert!(
            nf.failed && nf.msg.clone().unwrap().contains("404"),
            "{nf:?}"
        );
        assert_eq!(nf.data["status_code"], 404);
        let bad_sum = check(
            t.path(),
            json!({"url": format!("{base}/file.txt"), "dest": "{p}/keep.txt", "checksum": "sha1:0000000000000000000000000000000000000000"}),
            false,
        )
        .unwrap();
        assert!(
            bad_sum.failed && bad_sum.msg.clone().unwrap().contains("did not match"),
            "{bad_sum:?}"
        );
        // Nobody listens on a port whose listener was just dropped.
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let refused = check(
            t.path(),
            json!({"url": format!("http://127.0.0.1:{port}/x"), "dest": "{p}/new.txt"}),
            false,
        )
        .unwrap();
        assert!(
            refused.failed && refused.msg.clone().unwrap().starts_with("Request failed:"),
            "{refused:?}"
        );
        assert!(refused.msg.unwrap().to_lowercase().contains("connect"));
        assert_eq!(fs::read_to_string(&dest).unwrap(), "precious");
        let names: Vec<_> = fs::read_dir(t.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(
            names,
            vec![std::ffi::OsString::from("keep.txt")],
            "temp files left behind"
        );
        // No curl or wget on PATH: the lookup finds nothing (the message names both).
        let empty = tempfile::tempdir().unwrap();
        assert!(find_tool(Some(empty.path().as_os_str())).is_none());
        assert_eq!(
            find_tool(Some(std::ffi::OsStr::new("/usr/bin"))).unwrap().0,
            Tool::Curl
        );
    }

    #[test]
    fn file_urls_are_copied_natively() {
        let t = tempfile::tempdir().unwrap();
        let src = t.path().join("src.bin");
        fs::write(&src, [1u8, 2, 3]).unwrap();
        fs::set_permissions(&src, fs::Permissions::from_mode(0o600)).unwrap();
        let args = json!({"url": "file://{p}/src.bin", "dest": "{p}/copy.bin"});
        let out = check(t.path(), args.clone(), false).unwrap();
        assert!(out.changed && !out.failed, "{out:?}");
        assert_eq!(fs::read(t.path().join("copy.bin")).unwrap(), [1, 2, 3]);
        assert!(out.data.get("status_code").is_none());
        assert!(!check(t.path(), args, false).unwrap().changed);
        // A changed checksum forces a new download even without force.
        fs::write(&src, [9u8]).unwrap();
        let sum = format!("sha1:{}", super::fsutil::sha1_hex(&[9u8]));
        let out = check(
            t.path(),
            json!({"url": "file://{p}/src.bin", "dest": "{p}/copy.bin", "checksum": sum}),
            false,
        )
        .unwrap();
        assert!(out.changed, "{out:?}");
        assert_eq!(fs::read(t.path().join("copy.bin")).unwrap(), [9]);
        let missing = check(
            t.path(),
            json!({"url": "file://{p}/none", "dest": "{p}/x"}),
            false,
        )
        .unwrap();
        assert!(missing.failed && missing.msg.unwrap().contains("Request failed"));
    }

    #[test]
    fn bad_arguments_name_the_argument() {
        let t = tempfile::tempdir().unwrap();
        for (args, name) in [
            (json!({"dest": "{p}/x"}), "url"),
            (json!({"url": "http://h/x"}), "dest"),
            (json!({"url": "gopher://h/x", "dest": "{p}/x"}), "url"),
            (
                json!({"url": "http://h/x", "dest": "{p}/x", "checksum": "crc32:abc"}),
                "checksum",
            ),
            (
                json!({"url": "http://h/x", "dest": "{p}/x", "checksum": "sha256"}),
                "checksum",
            ),
            (
                json!({"url": "http://h/x", "dest": "{p}/x", "checksum": "sha256:xyz"}),
                "checksum",
            ),
            (
                json!({"url": "http://h/x", "dest": "{p}/x", "timeout": "soon"}),
                "timeout",
            ),
            (
                json!({"url": "http://h/x", "dest": "{p}/x", "headers": "X: y"}),
                "headers",
            ),
            (
                json!({"url": "http://h/x", "dest": "{p}/x", "sha256sum": "x"}),
                "sha256sum",
            ),
        ] {
            match check(t.path(), args.clone(), false) {
                Err(ModuleError::BadArgs(m)) => assert!(m.contains(name), "{args}: {m}"),
                other => panic!("{args}: expected BadArgs, got {other:?}"),
            }
        }
    }
}
