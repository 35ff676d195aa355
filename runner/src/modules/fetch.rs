//! The fetch module (ansible.builtin.fetch): a host's file copied to the controller,
//! under `dest/<inventory_hostname>/<src>` (or `dest` itself with `flat`), changed only
//! when the controller's copy differs.
//!
//! The host reads the file with `slurp` (so as the task's `become_user`, as Ansible
//! does under become); the executor then sends it to the deployer over the controller
//! channel in bounded base64 chunks with its SHA-1 (`docs/events.md`), and the deployer
//! writes it with [`Destination::store`]. SSH mode, whose executor runs on the
//! controller, stores it directly; a runner without a deployer keeps it in its release
//! directory (`fetched/`). This file holds both sides: the host's ([`Fetch`], [`File`])
//! and the controller's ([`Part`], [`Destination`]).

use super::{ModuleError, Outcome, args};
use crate::plan::Vars;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// The largest file fetch carries: it is held in memory on both sides.
pub const MAX_FETCH: u64 = 64 << 20;

/// Bytes of the file per request: their base64 text stays well under a channel line's
/// limit ([`crate::events::MAX_CHANNEL_LINE`]).
pub const CHUNK: usize = 4 << 20;

const KNOWN: &[&str] = &[
    "src",
    "dest",
    "flat",
    "fail_on_missing",
    "fail_when_missing",
    "validate_checksum",
    "validate_md5",
];

/// A fetch task's arguments.
#[derive(Debug, Clone, PartialEq)]
pub struct Fetch {
    /// The host's file.
    pub src: String,
    /// The controller's file or directory.
    pub dest: String,
    /// `dest` is the file (or, ending in `/`, its directory), without the host's name.
    pub flat: bool,
    /// A missing or unreadable `src` fails the task.
    pub fail_on_missing: bool,
    /// The copy's SHA-1 must be the host's.
    pub validate_checksum: bool,
}

/// Ansible's `boolean(value, strict=False)`: anything not true is false.
fn loose_bool(a: &Vars, name: &str, default: bool) -> bool {
    match a.get(name) {
        None | Some(Value::Null) => default,
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => args::truthy_str(s) == Some(true),
        Some(Value::Number(n)) => n.as_f64() == Some(1.0),
        Some(_) => false,
    }
}

impl Fetch {
    /// Reads the arguments as the fetch action does: a failed outcome with its words
    /// for a missing or ill-typed `src`/`dest`.
    pub fn parse(a: &Vars) -> Result<Result<Fetch, Outcome>, ModuleError> {
        args::only(a, KNOWN)?;
        let string = |name: &str| match a.get(name) {
            Some(Value::String(s)) => Ok(Some(s.clone())),
            None | Some(Value::Null) => Ok(None),
            Some(_) => Err(()),
        };
        let (src, dest) = match (string("src"), string("dest")) {
            (Err(()), _) => {
                return Ok(Err(Outcome::fail(
                    "Invalid type supplied for source option, it must be a string",
                )));
            }
            (_, Err(())) => {
                return Ok(Err(Outcome::fail(
                    "Invalid type supplied for dest option, it must be a string",
                )));
            }
            (Ok(Some(s)), Ok(Some(d))) => (s, d),
            _ => return Ok(Err(Outcome::fail("src and dest are required"))),
        };
        let fail_on_missing = if a.contains_key("fail_on_missing") {
            loose_bool(a, "fail_on_missing", true)
        } else {
            loose_bool(a, "fail_when_missing", true)
        };
        let validate_checksum = if a.contains_key("validate_checksum") {
            loose_bool(a, "validate_checksum", true)
        } else {
            loose_bool(a, "validate_md5", true)
        };
        Ok(Ok(Fetch {
            src,
            dest,
            flat: loose_bool(a, "flat", false),
            fail_on_missing,
            validate_checksum,
        }))
    }

    /// What the action does in check mode: nothing (2.18 skips it).
    pub fn check_mode() -> Outcome {
        Outcome {
            skipped: true,
            msg: Some("check mode not (yet) supported for this module".into()),
            ..Outcome::default()
        }
    }

    /// The `slurp` arguments that read the file.
    pub fn slurp_args(&self) -> Vars {
        let mut a = Vars::new();
        a.insert("src".into(), self.src.clone().into());
        a
    }

    /// The file `slurp` read, or the task's result when it could not, as the action
    /// words it (not failed when `fail_on_missing` is off).
    pub fn read(&self, slurped: Outcome) -> Result<File, Outcome> {
        if slurped.failed {
            let said = slurped.msg.clone().unwrap_or_default();
            let mut out = if self.fail_on_missing {
                slurped
            } else {
                Outcome::ok().with("file", self.src.clone())
            };
            if said.contains("not found") {
                out.msg = Some("the remote file does not exist, not transferring, ignored".into());
            } else if said.starts_with("source is a directory") {
                out.msg =
                    Some("remote file is a directory, fetch cannot work on directories".into());
            } else if !self.fail_on_missing {
                out.msg = Some(said);
            }
            return Err(out);
        }
        let source = match slurped.data.get("source") {
            Some(Value::String(s)) => s.clone(),
            _ => self.src.clone(),
        };
        let content = match slurped.data.get("content") {
            Some(Value::String(c)) => c.as_str(),
            _ => return Err(Outcome::fail("fetch: reading the file returned no content")),
        };
        let data = crate::hex::base64_decode(content)
            .map_err(|e| Outcome::fail(format!("fetch: the file's content is not base64: {e}")))?;
        if data.len() as u64 > MAX_FETCH {
            return Err(Outcome::fail(format!(
                "fetch: {source} is larger than the {} MiB fetch carries",
                MAX_FETCH >> 20
            )));
        }
        Ok(File {
            checksum: crate::digest::sha1_hex(&data),
            source,
            data,
        })
    }
}

/// The fetch task's arguments and the host's file, read by `slurp` through `host` (as
/// the task's user); `Err` holds the task's result when there is nothing to send
/// (check mode, bad arguments, a file that cannot be read).
pub fn read_on(
    host: &mut dyn super::ModuleHost,
    a: &Vars,
    ctx: &super::Ctx<'_>,
) -> Result<Result<(Fetch, File), Outcome>, ModuleError> {
    let f = match Fetch::parse(a)? {
        Ok(f) => f,
        Err(failed) => return Ok(Err(failed)),
    };
    if ctx.check_mode {
        return Ok(Err(Fetch::check_mode()));
    }
    let slurped = host.run("slurp", &f.slurp_args(), ctx)?;
    Ok(f.read(slurped).map(|file| (f, file)))
}

/// The host's file, read.
#[derive(Debug, Clone, PartialEq)]
pub struct File {
    /// Its path on the host, `~` expanded (the name under `dest/<host>/`).
    pub source: String,
    /// Its content.
    pub data: Vec<u8>,
    /// Its SHA-1, hex (Ansible's `checksum`).
    pub checksum: String,
}

impl File {
    /// The request that starts sending it: everything but the content.
    pub fn part(&self, f: &Fetch) -> Part {
        Part {
            src: self.source.clone(),
            dest: f.dest.clone(),
            flat: f.flat,
            validate_checksum: f.validate_checksum,
            checksum: self.checksum.clone(),
            size: self.data.len() as u64,
            offset: 0,
            data: None,
        }
    }
}

/// What a `fetch` request carries (`docs/events.md`): the first names the file
/// (`data` absent), the next ones carry its content from `offset`, base64.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Part {
    /// The file's path on the host.
    pub src: String,
    /// The task's `dest`, rendered.
    pub dest: String,
    /// The task's `flat`.
    #[serde(default)]
    pub flat: bool,
    /// The task's `validate_checksum`.
    #[serde(default)]
    pub validate_checksum: bool,
    /// The file's SHA-1, hex.
    pub checksum: String,
    /// The file's size in bytes.
    pub size: u64,
    /// Where `data` starts in the file.
    #[serde(default)]
    pub offset: u64,
    /// A piece of the content, base64; absent in the first request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
}

/// Where the controller keeps a fetched file, and what it has there.
#[derive(Debug, Clone, PartialEq)]
pub struct Destination {
    /// The file to write.
    pub path: PathBuf,
    part: Part,
}

fn result(pairs: &[(&str, Value)]) -> Vars {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_string(), v.clone()))
        .collect()
}

impl Destination {
    /// Where `part`'s file goes for inventory host `host`, a relative `dest` taken from
    /// `base` (the playbook's directory, as the action's `path_dwim`): Ansible's layout,
    /// normalised, and never outside `dest` (a `src` or host name with `..` that would
    /// leave it is refused, as is a file name that is no name).
    pub fn new(part: &Part, host: &str, base: &str) -> Result<Destination, String> {
        // The action's `path_dwim`: `~` is the controller user's home.
        let dwim = |p: &str| {
            let home = std::env::var("HOME").unwrap_or_default();
            if !home.is_empty() && (p == "~" || p.starts_with("~/")) {
                format!("{home}{}", p.get(1..).unwrap_or_default())
            } else if p.starts_with('/') || base.is_empty() {
                p.to_string()
            } else {
                format!("{}/{p}", base.trim_end_matches('/'))
            }
        };
        let norm = |p: &str| crate::resolve::normalize(p);
        if part.dest.is_empty() {
            return Err("src and dest are required".into());
        }
        let (path, inside) = if part.flat {
            if part.dest.ends_with('/') {
                let name = part.src.rsplit('/').next().unwrap_or_default();
                if matches!(name, "" | "." | "..") {
                    return Err(format!(
                        "fetch: '{}' names no file to put in '{}'",
                        part.src, part.dest
                    ));
                }
                let dir = norm(&dwim(&part.dest));
                (norm(&format!("{dir}/{name}")), Some(dir))
            } else {
                let path = norm(&dwim(&part.dest));
                if Path::new(&path).is_dir() {
                    return Err("dest is an existing directory, use a trailing slash if you want to fetch src into that directory".into());
                }
                (path, None)
            }
        } else {
            let root = norm(&dwim(&part.dest));
            let path = norm(&format!("{root}/{host}/{}", part.src));
            (path, Some(format!("{}/{host}", root.trim_end_matches('/'))))
        };
        if let Some(inside) = inside {
            let under = path
                .strip_prefix(inside.as_str())
                .is_some_and(|rest| rest.starts_with('/') && rest.len() > 1);
            if !under || host.contains('/') || host == ".." || host == "." {
                return Err(format!(
                    "Detected directory traversal, expected to be contained in '{inside}' but got '{path}'"
                ));
            }
        }
        Ok(Destination {
            path: PathBuf::from(path),
            part: Part {
                data: None,
                ..part.clone()
            },
        })
    }

    /// The file's size, refused beyond [`MAX_FETCH`].
    pub fn size(&self) -> Result<usize, String> {
        usize::try_from(self.part.size)
            .ok()
            .filter(|s| (*s as u64) <= MAX_FETCH)
            .ok_or_else(|| {
                format!(
                    "a fetched file of {} bytes, more than the {} MiB fetch carries",
                    self.part.size,
                    MAX_FETCH >> 20
                )
            })
    }

    /// The result when the controller's copy is the host's file already: nothing to
    /// send.
    pub fn unchanged(&self) -> Option<Vars> {
        let meta = std::fs::metadata(&self.path).ok()?;
        if !meta.is_file() {
            return None;
        }
        let checksum = crate::digest::sha1_file(&self.path).ok()?;
        (checksum == self.part.checksum).then(|| {
            result(&[
                ("changed", false.into()),
                ("md5sum", self.md5()),
                ("file", self.part.src.clone().into()),
                ("dest", self.shown().into()),
                ("checksum", checksum.into()),
            ])
        })
    }

    fn shown(&self) -> String {
        self.path.display().to_string()
    }

    fn md5(&self) -> Value {
        crate::digest::file_hex("md5", &self.path)
            .and_then(Result::ok)
            .map_or(Value::Null, Value::String)
    }

    /// Writes the host's file `data` (its parent directories made as needed), through a
    /// new file renamed into place, and answers as the action does: changed, or
    /// `checksum mismatch` when what was written is not what the host has and
    /// `validate_checksum` asks.
    pub fn store(&self, data: &[u8]) -> Vars {
        if let Some(parent) = self.path.parent()
            && let Err(e) = std::fs::create_dir_all(parent)
        {
            return failure(format!(
                "Failed to fetch the file: cannot make {}: {e}",
                parent.display()
            ));
        }
        if let Err(e) = crate::atomic::write(&self.path, data, 0o644) {
            return failure(format!("Failed to fetch the file: {e}"));
        }
        let written = crate::digest::sha1_file(&self.path).map_or(Value::Null, Value::String);
        let remote = Value::String(self.part.checksum.clone());
        if self.part.validate_checksum && written != remote {
            return result(&[
                ("changed", false.into()),
                ("failed", true.into()),
                ("md5sum", self.md5()),
                ("msg", "checksum mismatch".into()),
                ("file", self.part.src.clone().into()),
                ("dest", self.shown().into()),
                ("remote_md5sum", Value::Null),
                ("checksum", written),
                ("remote_checksum", remote),
            ]);
        }
        result(&[
            ("changed", true.into()),
            ("md5sum", self.md5()),
            ("dest", self.shown().into()),
            ("remote_md5sum", Value::Null),
            ("checksum", written),
            ("remote_checksum", remote),
        ])
    }

    /// The whole exchange where the file is at hand (SSH mode, a runner keeping it in
    /// its release): the result the deployer would answer.
    pub fn fetch_here(part: &Part, data: &[u8], host: &str, base: &str) -> Vars {
        match Destination::new(part, host, base) {
            Err(msg) => failure(msg),
            Ok(d) => d.unchanged().unwrap_or_else(|| d.store(data)),
        }
    }
}

/// A failed task's result, saying why.
pub fn failure(msg: String) -> Vars {
    result(&[
        ("changed", false.into()),
        ("failed", true.into()),
        ("msg", msg.into()),
    ])
}

/// A result map (what the deployer answers) as a module's outcome.
pub fn outcome_of(mut r: Vars) -> Outcome {
    let flag = |r: &mut Vars, k: &str| r.shift_remove(k).and_then(|v| v.as_bool()).unwrap_or(false);
    let changed = flag(&mut r, "changed");
    let failed = flag(&mut r, "failed");
    let msg = match r.shift_remove("msg") {
        Some(Value::String(s)) => Some(s),
        _ => None,
    };
    Outcome {
        changed,
        failed,
        msg,
        data: r,
        ..Outcome::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(src: &str, dest: &str, flat: bool) -> Part {
        Part {
            src: src.into(),
            dest: dest.into(),
            flat,
            validate_checksum: true,
            checksum: String::new(),
            size: 0,
            offset: 0,
            data: None,
        }
    }

    #[test]
    fn the_layout_is_ansibles() {
        let d = |p: Part, base: &str| Destination::new(&p, "web1", base).map(|d| d.path);
        assert_eq!(
            d(part("/etc/motd", "/srv/out", false), ""),
            Ok(PathBuf::from("/srv/out/web1/etc/motd"))
        );
        assert_eq!(
            d(part("/etc//motd", "out/", false), "/pb"),
            Ok(PathBuf::from("/pb/out/web1/etc/motd"))
        );
        assert_eq!(
            d(part("/etc/motd", "/srv/out/", true), ""),
            Ok(PathBuf::from("/srv/out/motd"))
        );
        assert_eq!(
            d(part("/etc/motd", "copy.txt", true), "/pb"),
            Ok(PathBuf::from("/pb/copy.txt"))
        );
    }

    #[test]
    fn nothing_leaves_dest() {
        for p in [
            part("../../etc/passwd", "/srv/out", false),
            part("/x/..", "/srv/out/", true),
            part("..", "/srv/out", false),
        ] {
            let e = Destination::new(&p, "web1", "").unwrap_err();
            assert!(
                e.contains("traversal") || e.contains("names no file"),
                "{p:?}: {e}"
            );
        }
        let e = Destination::new(&part("/f", "/srv/out", false), "..", "").unwrap_err();
        assert!(e.contains("traversal"), "{e}");
    }
}
