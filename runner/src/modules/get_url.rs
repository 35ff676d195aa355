//! The get_url module: downloads a URL to a file with ansible.builtin.get_url's
//! arguments (`url`, `dest`, `checksum`, `force`, `mode`/`owner`/`group`, `timeout`,
//! `headers`, `validate_certs`) and results.
//!
//! `file://` URLs are read directly. The runner has no network library by design, so
//! http, https and ftp go through the host's `curl` (else `wget`), spawned with an
//! argument vector, never a shell. The download lands in a private temp file beside
//! `dest`, is checked against `checksum`, then renamed over `dest`; on any failure the
//! temp file is removed and `dest` is untouched.
//!
//! Idempotent as Ansible's `force: no`: an existing `dest` is left alone without
//! downloading when no checksum is given or it matches (a mismatch downloads again). As in Ansible, check mode still downloads (to a temp file it removes) to
//! tell whether `dest` would change. Checksums: md5, sha1, sha224, sha256, sha384,
//! sha512 (checksum file URLs are refused).

use super::fsutil::{self, Attrs, Step, fail};
use super::{Ctx, Diff, ModuleError, Outcome, args};
use crate::plan::Vars;
use serde_json::Value;
use std::ffi::OsStr;
use std::fs;
use std::io;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
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

/// Distinguishes temp names made by one process.
static COUNTER: AtomicU64 = AtomicU64::new(0);

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

/// A file's digest with the named algorithm, as lowercase hex.
fn digest_file(path: &Path, algo: &str) -> io::Result<String> {
    crate::digest::file_hex(algo, path)
        .unwrap_or_else(|| Err(io::Error::other(format!("unknown digest '{algo}'"))))
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

/// Downloads `url` into the (already created, empty) file `to` with curl or wget.
/// Returns the HTTP status when the tool reports it; a failure carries the tool's own
/// message.
fn fetch_with(
    tool: Tool,
    program: &Path,
    url: &str,
    to: &Path,
    f: &Fetch<'_>,
) -> Result<Option<u16>, String> {
    let mut cmd = Command::new(program);
    match tool {
        Tool::Curl => {
            cmd.args(["--silent", "--show-error", "--fail", "--location"])
                .arg("--connect-timeout")
                .arg(f.timeout.to_string())
                .args(["--write-out", "%{http_code}", "--output"])
                .arg(to);
            for (k, v) in f.headers {
                cmd.arg("--header").arg(format!("{k}: {v}"));
            }
            if !f.validate_certs {
                cmd.arg("--insecure");
            }
            // `--` so that a URL can never be read as an option.
            cmd.arg("--").arg(url);
        }
        Tool::Wget => {
            cmd.args(["--quiet", "--server-response"])
                .arg(format!("--timeout={}", f.timeout))
                .arg("--tries=1")
                .arg("--output-document")
                .arg(to);
            for (k, v) in f.headers {
                cmd.arg(format!("--header={k}: {v}"));
            }
            if !f.validate_certs {
                cmd.arg("--no-check-certificate");
            }
            cmd.arg("--").arg(url);
        }
    }
    cmd.stdin(std::process::Stdio::null());
    let out = cmd
        .output()
        .map_err(|e| format!("could not run {}: {e}", program.display()))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let status = match tool {
        Tool::Curl => stdout.trim().parse::<u16>().ok().filter(|c| *c != 0),
        // wget prints the response headers (last one wins after redirects) on stderr.
        Tool::Wget => stderr
            .lines()
            .rev()
            .filter_map(|l| l.trim().strip_prefix("HTTP/"))
            .find_map(|l| l.split_whitespace().nth(1)?.parse().ok()),
    };
    if out.status.success() {
        return Ok(status);
    }
    let msg = match tool {
        Tool::Curl => stderr.trim().to_string(),
        Tool::Wget => {
            let tail: Vec<&str> = stderr
                .lines()
                .filter(|l| !l.starts_with("  "))
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .collect();
            let exit = out
                .status
                .code()
                .map_or_else(String::new, |c| format!("wget exit {c}"));
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
    let existing = fsutil::lstat(&dest)?.filter(|m| m.is_file());

    // Already there and not forced: no download (a checksum must still match).
    if existing.is_some() && !force {
        let matches = match &checksum {
            None => true,
            Some((algo, want)) => digest_file(&dest, algo).is_ok_and(|got| &got == want),
        };
        if matches {
            let changes = fsutil::apply_attrs(&dest, attrs, true, ctx.check_mode)?;
            let mut o = Outcome::changed(!changes.is_empty()).msg(if changes.is_empty() {
                "file already exists"
            } else {
                "file already exists but file attributes changed"
            });
            if ctx.diff_mode && !changes.is_empty() {
                o.diff.push(changes.to_diff(&dest));
            }
            return Ok(fsutil::add_path_info(base(o), &dest, true));
        }
    }

    let started = Instant::now();
    let tmp = parent.join(format!(
        ".{}.{}.{}.rustle-download",
        dest.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = fs::remove_file(&tmp);
    fs::File::options()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| fsutil::io_fail("create a temp file beside", &dest, &e))?;
    let result = download_and_place(
        &url,
        &tmp,
        &dest,
        existing.as_ref(),
        checksum.as_ref(),
        attrs,
        timeout,
        validate_certs,
        &headers,
        ctx,
    );
    // The temp file is gone after a rename; on every other path it is removed here.
    let _ = fs::remove_file(&tmp);
    let mut o = base(result?);
    o = o.with("elapsed", started.elapsed().as_secs());
    Ok(o)
}

#[allow(clippy::too_many_arguments)]
fn download_and_place(
    url: &str,
    tmp: &Path,
    dest: &Path,
    existing: Option<&fs::Metadata>,
    checksum: Option<&(String, String)>,
    attrs: Attrs,
    timeout: u64,
    validate_certs: bool,
    headers: &[(String, String)],
    ctx: &Ctx<'_>,
) -> Step<Outcome> {
    let status = if let Some(rest) = url.strip_prefix("file://") {
        let path = rest.strip_prefix("localhost").unwrap_or(rest);
        fs::copy(path, tmp)
            .map_err(|e| fsutil::failed(Outcome::fail(format!("Request failed: {path}: {e}"))))?;
        None
    } else {
        let Some((tool, program)) = find_tool(std::env::var_os("PATH").as_deref()) else {
            return fail(format!(
                "cannot download {url}: neither curl nor wget is installed on this host (the runner has no HTTP client of its own)"
            ));
        };
        let f = Fetch {
            timeout,
            validate_certs,
            headers,
        };
        match fetch_with(tool, &program, url, tmp, &f) {
            Ok(s) => s,
            Err(msg) => {
                let mut o = Outcome::fail(format!("Request failed: {msg}"));
                if let Some(code) = msg
                    .strip_prefix("HTTP Error ")
                    .and_then(|m| m.get(..3))
                    .and_then(|c| c.parse::<u16>().ok())
                {
                    o = o.with("status_code", code);
                }
                return Err(fsutil::failed(o));
            }
        }
    };
    let size = fs::metadata(tmp).map(|m| m.len()).unwrap_or(0);
    let checksum_src = fsutil::sha1_file(tmp).map_err(|e| fsutil::io_fail("read", tmp, &e))?;
    if let Some((algo, want)) = checksum {
        let got = digest_file(tmp, algo).map_err(|e| fsutil::io_fail("read", tmp, &e))?;
        if &got != want {
            return fail(format!(
                "The checksum for {} did not match {want}; it was {got}.",
                dest.display()
            ));
        }
    }
    let checksum_dest = existing.and_then(|_| fsutil::sha1_file(dest).ok());
    let same = checksum_dest.as_deref() == Some(checksum_src.as_str());
    let mut o = Outcome::ok()
        .msg(format!("OK ({size} bytes)"))
        .with("checksum_src", checksum_src.clone())
        .with("size", size);
    if let Some(code) = status {
        o = o.with("status_code", code);
    }
    if let Some(c) = &checksum_dest {
        o = o.with("checksum_dest", c.clone());
    }
    if same {
        let changes = fsutil::apply_attrs(dest, attrs, true, ctx.check_mode)?;
        o.changed = !changes.is_empty();
        if ctx.diff_mode && o.changed {
            o.diff.push(changes.to_diff(dest));
        }
    } else {
        o.changed = true;
        if ctx.diff_mode {
            o.diff.push(Diff {
                before_header: dest.display().to_string(),
                after_header: url.to_string(),
                before: checksum_dest.map_or_else(String::new, |c| format!("checksum: {c}\n")),
                after: format!("checksum: {checksum_src}\nsize: {size}\n"),
            });
        }
        if ctx.check_mode {
            return Ok(o);
        }
        // A replaced file keeps its mode and owner unless others are asked for.
        let mode = attrs.mode.unwrap_or_else(|| {
            existing.map_or_else(fsutil::default_file_mode, |m| m.mode() & 0o7777)
        });
        if let Some(m) = existing {
            let _ = std::os::unix::fs::chown(tmp, Some(m.uid()), Some(m.gid()));
        }
        fs::set_permissions(tmp, fs::Permissions::from_mode(mode))
            .map_err(|e| fsutil::io_fail("change the mode of", tmp, &e))?;
        fs::rename(tmp, dest).map_err(|e| fsutil::io_fail("rename a temp file onto", dest, &e))?;
        fsutil::apply_attrs(dest, attrs, true, false)?;
    }
    Ok(fsutil::add_path_info(o, dest, true))
}

#[cfg(test)]
mod tests {
    use super::super::{ModuleError, Outcome};
    use super::{Fetch, Tool, fetch_with, find_tool};

    use serde_json::{Value, json};

    use std::fs;
    use std::io::{Read, Write};
    use std::net::TcpListener;
    use std::os::unix::fs::PermissionsExt;
    use std::path::Path;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    const BODY: &str = "downloaded over http\n";
    const BODY_SHA256: &str =
        "sha256:9f63d5cc0750937493c527a28ddeac70955c8bf9e535bacacb9ef36e785e82b4";

    fn check(dir: &Path, args: Value, check_mode: bool) -> Result<Outcome, ModuleError> {
        crate::modules::run_in_dir_for_test("get_url", dir, &args, check_mode)
    }

    /// A tiny HTTP/1.0 server on 127.0.0.1: `/file.txt` is BODY, anything else 404.
    /// Returns its base URL and a count of requests served.
    fn server() -> (String, Arc<AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let hits = Arc::new(AtomicUsize::new(0));
        let counter = hits.clone();
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
                counter.fetch_add(1, Ordering::SeqCst);
                let line = String::from_utf8_lossy(&req)
                    .lines()
                    .next()
                    .unwrap_or("")
                    .to_string();
                let resp = if line.starts_with("GET /file.txt ") {
                    format!(
                        "HTTP/1.0 200 OK\r\nContent-Length: {}\r\n\r\n{BODY}",
                        BODY.len()
                    )
                } else {
                    "HTTP/1.0 404 Not Found\r\nContent-Length: 4\r\n\r\ngone".to_string()
                };
                let _ = s.write_all(resp.as_bytes());
            }
        });
        (format!("http://127.0.0.1:{port}"), hits)
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
            super::digest_file(&f, "sha256").unwrap(),
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
                super::digest_file(&f, "md5").unwrap(),
                want.split_whitespace().next().unwrap(),
                "{len}"
            );
        }
    }

    #[test]
    fn http_download_with_checksum_is_done_once() {
        let (base, hits) = server();
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
        let (base, _) = server();
        let t = tempfile::tempdir().unwrap();
        let to = t.path().join("w");
        let f = Fetch {
            timeout: 5,
            validate_certs: true,
            headers: &[("X-Test".into(), "1".into())],
        };
        let code = fetch_with(Tool::Wget, wget, &format!("{base}/file.txt"), &to, &f).unwrap();
        assert_eq!(code, Some(200));
        assert_eq!(fs::read_to_string(&to).unwrap(), BODY);
        let err = fetch_with(Tool::Wget, wget, &format!("{base}/nope"), &to, &f).unwrap_err();
        assert!(err.contains("404"), "{err}");
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
