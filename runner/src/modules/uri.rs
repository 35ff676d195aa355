//! uri (ansible.builtin.uri): one HTTP request with the host's `curl` (the runner has no
//! HTTP client of its own, as for get_url), answered as the module answers: `status`,
//! `url`, `redirected`, `msg` (`OK (N bytes)` or the HTTP error), every response header
//! lower-cased with `-` as `_`, `json` for a JSON body, `content` with
//! `return_content`, the body written to `dest`; a status outside `status_code` fails
//! with Ansible's words.
//!
//! What curl reads that a local user must not see (URL, headers, credentials) goes in
//! its config on stdin, never in argv; the body goes in a private file.

use super::fsutil::{self, Attrs, Step, WriteReq};
use super::tools::{self, PrivateDir};
use super::{Ctx, ModuleError, Outcome, args};
use crate::filters::urls::quote_plus;
use crate::plan::Vars;
use serde_json::Value;
use std::path::Path;
use std::time::Instant;

const KNOWN: &[&str] = &[
    "url",
    "method",
    "body",
    "body_format",
    "headers",
    "status_code",
    "return_content",
    "dest",
    "url_username",
    "user",
    "url_password",
    "password",
    "force_basic_auth",
    "follow_redirects",
    "timeout",
    "validate_certs",
    "creates",
    "removes",
    "http_agent",
    "mode",
    "owner",
    "group",
    "attributes",
];

/// The parts of curl's answer the result is made of.
struct Response {
    status: i64,
    url: String,
    redirects: u32,
    reason: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

/// `uri`.
pub(super) fn run(a: &Vars, ctx: &Ctx<'_>) -> Result<Outcome, ModuleError> {
    args::only(a, KNOWN)?;
    let url = args::req_str(a, "url")?;
    if let Some(creates) = args::opt_str(a, "creates")?
        && Path::new(&creates).exists()
    {
        return Ok(Outcome::ok().with("msg", format!("skipped, since '{creates}' exists")));
    }
    if let Some(removes) = args::opt_str(a, "removes")?
        && !Path::new(&removes).exists()
    {
        return Ok(Outcome::ok().with("msg", format!("skipped, since '{removes}' does not exist")));
    }
    let method = args::opt_str(a, "method")?
        .unwrap_or_else(|| "GET".into())
        .to_ascii_uppercase();
    let status_codes = status_codes(a)?;
    let return_content = args::bool_or(a, "return_content", false)?;
    let (body, content_type) = body(a)?;
    let mut headers = headers(a)?;
    if let Some(ct) = content_type
        && !headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("content-type"))
    {
        headers.push(("Content-Type".into(), ct.into()));
    }
    let agent = args::opt_str(a, "http_agent")?.unwrap_or_else(|| "ansible-httpget".into());
    headers.push(("User-Agent".into(), agent));
    if ctx.check_mode {
        // The module does not support check mode: Ansible skips the task.
        let mut o = Outcome::ok().msg("remote module (uri) does not support check mode");
        o.skipped = true;
        return Ok(o);
    }
    let Some(curl) = super::proc::find("curl") else {
        return Ok(Outcome::fail(format!(
            "cannot request {url}: curl is not installed on this host (the runner has no HTTP client of its own)"
        )));
    };
    let follow = match args::opt_str(a, "follow_redirects")?.as_deref() {
        None | Some("safe") | Some("urllib2") => matches!(method.as_str(), "GET" | "HEAD"),
        Some("all" | "yes" | "true") => true,
        Some("none" | "no" | "false") => false,
        Some(other) => {
            return Err(ModuleError::BadArgs(format!(
                "value of follow_redirects must be one of: safe, all, none, urllib2, got: {other}"
            )));
        }
    };
    let user = args::opt_str(a, "url_username")?.or(args::opt_str(a, "user")?);
    let password = args::opt_str(a, "url_password")?.or(args::opt_str(a, "password")?);
    let request = Request {
        url: &url,
        method: &method,
        headers: &headers,
        body: body.as_deref(),
        user: user.as_deref(),
        password: password.as_deref(),
        follow,
        timeout: args::opt_u64(a, "timeout")?.unwrap_or(30),
        validate_certs: args::bool_or(a, "validate_certs", true)?,
    };
    let started = Instant::now();
    let resp = match send(&curl, &request, ctx) {
        Ok(r) => r,
        Err(why) => {
            let msg = format!("Request failed: {why}");
            let mut failed = Outcome::fail(format!(
                "Status code was -1 and not {}: {msg}",
                py_list(&status_codes)
            ))
            .with("status", -1)
            .with("url", url.as_str())
            .with("elapsed", started.elapsed().as_secs());
            // With return_content the module returns the (empty) body it read.
            if return_content {
                failed = failed.with("content", "");
            }
            return Ok(failed);
        }
    };
    answer(a, resp, &status_codes, return_content, started, ctx)
}

/// What one request is made of.
struct Request<'a> {
    url: &'a str,
    method: &'a str,
    headers: &'a [(String, String)],
    body: Option<&'a [u8]>,
    user: Option<&'a str>,
    password: Option<&'a str>,
    follow: bool,
    timeout: u64,
    validate_certs: bool,
}

/// `status_code`: one code or a list (numbers or digit strings); 200 by default.
fn status_codes(a: &Vars) -> Result<Vec<i64>, ModuleError> {
    let bad = |v: &Value| ModuleError::BadArgs(format!("status_code: {v} is not an integer"));
    let one = |v: &Value| {
        v.as_i64()
            .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
            .ok_or_else(|| bad(v))
    };
    match a.get("status_code") {
        None | Some(Value::Null) => Ok(vec![200]),
        Some(Value::Array(items)) => items.iter().map(one).collect(),
        Some(Value::String(s)) if s.contains(',') => {
            s.split(',').map(|p| one(&Value::from(p.trim()))).collect()
        }
        Some(v) => Ok(vec![one(v)?]),
    }
}

/// The request body as `body_format` makes it, and the content type it implies.
fn body(a: &Vars) -> Result<(Option<Vec<u8>>, Option<&'static str>), ModuleError> {
    let Some(body) = a.get("body").filter(|b| !b.is_null()) else {
        return Ok((None, None));
    };
    let format = args::opt_str(a, "body_format")?.unwrap_or_else(|| "raw".into());
    match format.as_str() {
        "raw" => Ok((Some(text_of(body).into_bytes()), None)),
        "json" => {
            let text = match body {
                Value::String(s) => s.clone(),
                other => crate::template::py_json_dumps(other, None, true),
            };
            Ok((Some(text.into_bytes()), Some("application/json")))
        }
        "form-urlencoded" => {
            let pairs: Vec<(String, String)> = match body {
                Value::Object(m) => m.iter().map(|(k, v)| (k.clone(), text_of(v))).collect(),
                Value::Array(items) => items
                    .iter()
                    .filter_map(|i| match i.as_array()?.as_slice() {
                        [k, v] => Some((text_of(k), text_of(v))),
                        _ => None,
                    })
                    .collect(),
                Value::String(s) => return Ok((Some(s.clone().into_bytes()), None)),
                other => {
                    return Err(ModuleError::BadArgs(format!(
                        "failed to parse body as form_urlencoded: {other}"
                    )));
                }
            };
            let encoded: Vec<String> = pairs
                .iter()
                .map(|(k, v)| format!("{}={}", quote_plus(k), quote_plus(v)))
                .collect();
            Ok((
                Some(encoded.join("&").into_bytes()),
                Some("application/x-www-form-urlencoded"),
            ))
        }
        other => Err(ModuleError::BadArgs(format!(
            "value of body_format must be one of: raw, json, form-urlencoded, got: {other}"
        ))),
    }
}

fn text_of(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => crate::template::py_json_dumps(other, None, true),
    }
}

/// `headers`: a mapping of names to values (no line breaks: they would end the header).
fn headers(a: &Vars) -> Result<Vec<(String, String)>, ModuleError> {
    match a.get("headers") {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Object(m)) => m
            .iter()
            .map(|(k, v)| {
                let v = text_of(v);
                if k.contains(['\r', '\n', ':']) || v.contains(['\r', '\n']) {
                    return Err(ModuleError::BadArgs(format!(
                        "headers: {k:?} cannot be sent as an HTTP header"
                    )));
                }
                Ok((k.clone(), v))
            })
            .collect(),
        Some(other) => Err(ModuleError::BadArgs(format!(
            "headers must be a dictionary, got {other}"
        ))),
    }
}

/// `[200, 201]` as Python prints a list of ints.
fn py_list(codes: &[i64]) -> String {
    let items: Vec<String> = codes.iter().map(i64::to_string).collect();
    format!("[{}]", items.join(", "))
}

/// Runs curl for `req`; an error is curl's own message (no HTTP answer at all).
fn send(curl: &Path, req: &Request<'_>, ctx: &Ctx<'_>) -> Result<Response, String> {
    let dir = PrivateDir::for_task("uri", ctx.run_as)
        .map_err(|e| format!("could not make a private directory: {e}"))?;
    let head_file = dir.path().join("headers");
    let body_file = dir.path().join("body");
    let mut config = tools::curl_config(req.url, req.headers);
    config.push_str(&format!("request = {}\n", tools::curl_quoted(req.method)));
    if let Some(user) = req.user {
        let pass = req.password.unwrap_or_default();
        config.push_str(&format!(
            "user = {}\n",
            tools::curl_quoted(&format!("{user}:{pass}"))
        ));
    }
    if let Some(body) = req.body {
        let path = dir
            .write("request", body, 0o600)
            .map_err(|e| format!("could not write the request body: {e}"))?;
        config.push_str(&format!(
            "data-binary = {}\n",
            tools::curl_quoted(&format!("@{}", path.display()))
        ));
    }
    let mut cmd = ctx.command(curl);
    cmd.args(["--silent", "--show-error", "--globoff"])
        .arg("--max-time")
        .arg(req.timeout.to_string())
        .arg("--dump-header")
        .arg(&head_file)
        .arg("--output")
        .arg(&body_file)
        .args([
            "--write-out",
            "%{http_code} %{num_redirects} %{url_effective}",
        ]);
    if req.follow {
        cmd.args(["--location", "--max-redirs", "50"]);
    }
    if !req.validate_certs {
        cmd.arg("--insecure");
    }
    cmd.args(["--config", "-"]);
    let out = tools::run_command(cmd, &[], Some(config.as_bytes()))
        .map_err(|e| format!("could not run {}: {e}", curl.display()))?;
    if out.rc != 0 {
        return Err(out.stderr.trim().trim_start_matches("curl: ").to_string());
    }
    let mut written = out.stdout.trim().splitn(3, ' ');
    let status = written.next().and_then(|s| s.parse().ok()).unwrap_or(-1);
    let redirects = written.next().and_then(|s| s.parse().ok()).unwrap_or(0);
    let url = written.next().unwrap_or(req.url).to_string();
    let head = std::fs::read_to_string(&head_file).unwrap_or_default();
    let (reason, headers) = last_response_headers(&head);
    Ok(Response {
        status,
        url,
        redirects,
        reason,
        headers,
        body: std::fs::read(&body_file).unwrap_or_default(),
    })
}

/// The reason phrase and headers of the last response in a `--dump-header` file (one
/// block per response when redirects were followed).
fn last_response_headers(dump: &str) -> (String, Vec<(String, String)>) {
    let mut reason = String::new();
    let mut headers = Vec::new();
    for line in dump.lines().map(|l| l.trim_end_matches('\r')) {
        if line.starts_with("HTTP/") {
            reason = line.splitn(3, ' ').nth(2).unwrap_or_default().to_string();
            headers.clear();
        } else if let Some((k, v)) = line.split_once(':') {
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    (reason, headers)
}

/// The registered result, failed when the status is not one of `codes`.
fn answer(
    a: &Vars,
    resp: Response,
    codes: &[i64],
    return_content: bool,
    started: Instant,
    ctx: &Ctx<'_>,
) -> Result<Outcome, ModuleError> {
    let header = |name: &str| {
        resp.headers
            .iter()
            .rev()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    };
    let ok = codes.contains(&resp.status);
    let msg = if resp.status < 400 {
        format!(
            "OK ({} bytes)",
            header("content-length").unwrap_or("unknown")
        )
    } else {
        format!("HTTP Error {}: {}", resp.status, resp.reason)
    };
    let mut out = if ok {
        Outcome::ok()
    } else {
        Outcome::fail(format!(
            "Status code was {} and not {}: {msg}",
            resp.status,
            py_list(codes)
        ))
    };
    for (k, v) in &resp.headers {
        out = out.with(&k.replace('-', "_").to_ascii_lowercase(), v.as_str());
    }
    let is_json = header("content-type").is_some_and(|t| t.contains("json"));
    let text = String::from_utf8_lossy(&resp.body).into_owned();
    if is_json && let Ok(js) = serde_json::from_str::<Value>(&text) {
        out = out.with("json", js);
    }
    if return_content {
        out = out.with("content", text);
    }
    out = out
        .with("status", resp.status)
        .with("url", resp.url.as_str())
        .with("redirected", resp.redirects > 0)
        .with("cookies", serde_json::json!({}))
        .with("cookies_string", "")
        .with("elapsed", started.elapsed().as_secs());
    if ok {
        out = out.with("msg", msg);
        if let Some(dest) = args::opt_str(a, "dest")? {
            // Through the file modules' writer: a temporary file of its own, renamed.
            let written = fsutil::finish(write_dest(a, Path::new(&dest), &resp.body, ctx))?;
            if written.failed {
                return Ok(written);
            }
            out.changed = written.changed;
            out = out.with("path", dest);
        }
    }
    Ok(out)
}

/// Writes the response body to `dest` with the task's file arguments.
fn write_dest(a: &Vars, dest: &Path, body: &[u8], ctx: &Ctx<'_>) -> Step<Outcome> {
    let req = WriteReq {
        dest,
        content: body,
        attrs: Attrs::from_args(a)?,
        force: true,
        backup: false,
        follow: true,
        src: None,
        new_mode: None,
    };
    fsutil::write_file(&req, ctx)
}

#[cfg(test)]
mod tests {
    use super::super::Outcome;
    use serde_json::{Value, json};
    use std::io::{BufRead, BufReader};
    use std::process::{Child, Command, Stdio};

    /// A small HTTP server (Python's http.server): `/json` answers a JSON document,
    /// `/missing` 404, `/moved` redirects to `/json`, and a POST echoes what it got.
    const SERVER: &str = r#"
import http.server, json, sys
class H(http.server.BaseHTTPRequestHandler):
    def log_message(self, *a): pass
    def send(self, code, body, ctype, extra=()):
        data = body.encode()
        self.send_response(code)
        self.send_header('Content-Type', ctype)
        self.send_header('Content-Length', str(len(data)))
        self.send_header('X-Test-Header', 'yes')
        for k, v in extra: self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)
    def do_GET(self):
        if self.path == '/json': self.send(200, '{"a": [1, 2], "b": "c"}', 'application/json')
        elif self.path == '/moved': self.send(302, '', 'text/plain', [('Location', '/json')])
        else: self.send(404, 'nope', 'text/plain')
    def do_POST(self):
        n = int(self.headers.get('Content-Length', 0))
        got = {'body': self.rfile.read(n).decode(), 'type': self.headers.get('Content-Type'),
               'auth': self.headers.get('Authorization'), 'agent': self.headers.get('User-Agent'),
               'custom': self.headers.get('X-Custom')}
        self.send(201, json.dumps(got), 'application/json')
s = http.server.HTTPServer(('127.0.0.1', 0), H)
print(s.server_address[1], flush=True)
s.serve_forever()
"#;

    struct Server(Child, u16);

    impl Drop for Server {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    fn server() -> Server {
        let mut child = Command::new("python3")
            .args(["-c", SERVER])
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 is installed");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line.trim().parse().unwrap();
        Server(child, port)
    }

    fn uri(t: &std::path::Path, args: Value) -> Outcome {
        crate::modules::run_in_dir_for_test("uri", t, &args, false).unwrap()
    }

    #[test]
    fn get_answers_status_headers_and_json() {
        let s = server();
        let t = tempfile::tempdir().unwrap();
        let url = format!("http://127.0.0.1:{}/json", s.1);
        let out = uri(t.path(), json!({"url": url}));
        assert!(!out.failed && !out.changed, "{out:?}");
        assert_eq!(out.data["status"], 200);
        assert_eq!(out.data["json"], json!({"a": [1, 2], "b": "c"}));
        assert_eq!(out.data["x_test_header"], "yes");
        assert_eq!(out.data["content_type"], "application/json");
        assert_eq!(out.data["msg"], "OK (23 bytes)");
        assert_eq!(out.data["redirected"], false);
        assert!(out.data.get("content").is_none());
        // As ansible-core: a module without check mode skips the task there.
        let dry = crate::modules::run_in_dir_for_test("uri", t.path(), &json!({"url": url}), true);
        assert!(dry.unwrap().skipped);
        let with = uri(t.path(), json!({"url": url, "return_content": true}));
        assert_eq!(with.data["content"], r#"{"a": [1, 2], "b": "c"}"#);

        let moved = uri(
            t.path(),
            json!({"url": format!("http://127.0.0.1:{}/moved", s.1)}),
        );
        assert_eq!(moved.data["status"], 200);
        assert_eq!(moved.data["redirected"], true);
        assert_eq!(moved.data["url"], json!(url));
    }

    #[test]
    fn unexpected_status_fails_in_ansibles_words() {
        let s = server();
        let t = tempfile::tempdir().unwrap();
        let url = format!("http://127.0.0.1:{}/missing", s.1);
        let out = uri(t.path(), json!({"url": url}));
        assert!(out.failed);
        assert_eq!(
            out.msg.as_deref(),
            Some("Status code was 404 and not [200]: HTTP Error 404: Not Found")
        );
        assert_eq!(out.data["status"], 404);
        let wanted = uri(t.path(), json!({"url": url, "status_code": [200, "404"]}));
        assert!(!wanted.failed, "{wanted:?}");

        // Nothing listens on a port just freed.
        let port = s.1;
        drop(s);
        let down = uri(
            t.path(),
            json!({"url": format!("http://127.0.0.1:{port}/")}),
        );
        assert!(down.failed);
        assert_eq!(down.data["status"], -1);
        assert!(
            down.msg
                .as_deref()
                .unwrap_or_default()
                .starts_with("Status code was -1 and not [200]: Request failed:"),
            "{down:?}"
        );
        assert!(down.data.get("content").is_none());
        // With return_content the (empty) body is there, as the module returns it.
        let down = uri(
            t.path(),
            json!({"url": format!("http://127.0.0.1:{port}/"), "return_content": true}),
        );
        assert!(down.failed && down.data["content"] == "", "{down:?}");
    }

    #[test]
    fn post_sends_json_forms_headers_and_credentials() {
        let s = server();
        let t = tempfile::tempdir().unwrap();
        let url = format!("http://127.0.0.1:{}/post", s.1);
        let out = uri(
            t.path(),
            json!({"url": url, "method": "POST", "body_format": "json", "body": {"k": ["v", 1]},
                   "status_code": 201, "headers": {"X-Custom": "it's \"quoted\""},
                   "url_username": "u", "url_password": "p:w", "force_basic_auth": true}),
        );
        assert!(!out.failed, "{out:?}");
        let got = &out.data["json"];
        assert_eq!(got["body"], r#"{"k": ["v", 1]}"#);
        assert_eq!(got["type"], "application/json");
        assert_eq!(got["custom"], "it's \"quoted\"");
        assert_eq!(got["agent"], "ansible-httpget");
        // base64("u:p:w")
        assert_eq!(got["auth"], "Basic dTpwOnc=");

        let form = uri(
            t.path(),
            json!({"url": url, "method": "POST", "body_format": "form-urlencoded",
                   "body": {"name": "a b&c", "x": "é"}, "status_code": 201}),
        );
        assert_eq!(form.data["json"]["body"], "name=a+b%26c&x=%C3%A9");
        assert_eq!(
            form.data["json"]["type"],
            "application/x-www-form-urlencoded"
        );
    }

    #[test]
    fn dest_is_written_once() {
        let s = server();
        let t = tempfile::tempdir().unwrap();
        let args = json!({"url": format!("http://127.0.0.1:{}/json", s.1), "dest": "{p}/out.json"});
        let first = uri(t.path(), args.clone());
        assert!(first.changed && !first.failed, "{first:?}");
        assert_eq!(
            std::fs::read_to_string(t.path().join("out.json")).unwrap(),
            r#"{"a": [1, 2], "b": "c"}"#
        );
        assert!(!uri(t.path(), args).changed);
    }
}
