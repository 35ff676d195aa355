//! Target triples as typed values: the platforms a runner can be built for, and how a
//! host's platform is found (inventory variables, or a cached `uname -sm` probe).

use crate::inventory::Host;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// A platform the runner matrix knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Triple {
    /// x86_64-unknown-linux-musl (static).
    X86_64LinuxMusl,
    /// aarch64-unknown-linux-musl (static).
    Aarch64LinuxMusl,
    /// x86_64-apple-darwin.
    X86_64Darwin,
    /// aarch64-apple-darwin.
    Aarch64Darwin,
}

/// Every triple, in the order the matrix lists them.
pub const ALL: [Triple; 4] = [
    Triple::X86_64LinuxMusl,
    Triple::Aarch64LinuxMusl,
    Triple::X86_64Darwin,
    Triple::Aarch64Darwin,
];

impl Triple {
    /// The rustc target name.
    pub fn as_str(self) -> &'static str {
        match self {
            Triple::X86_64LinuxMusl => "x86_64-unknown-linux-musl",
            Triple::Aarch64LinuxMusl => "aarch64-unknown-linux-musl",
            Triple::X86_64Darwin => "x86_64-apple-darwin",
            Triple::Aarch64Darwin => "aarch64-apple-darwin",
        }
    }

    /// The runner for the machine rustle-deploy itself runs on, if there is one.
    pub fn native() -> Option<Triple> {
        Triple::from_system(std::env::consts::OS, std::env::consts::ARCH)
    }

    /// From Ansible's `ansible_system` / `ansible_architecture` (or Rust's os/arch names).
    pub fn from_system(system: &str, arch: &str) -> Option<Triple> {
        let linux = system.eq_ignore_ascii_case("linux");
        let mac = system.eq_ignore_ascii_case("darwin") || system.eq_ignore_ascii_case("macos");
        match arch {
            "x86_64" | "amd64" if linux => Some(Triple::X86_64LinuxMusl),
            "aarch64" | "arm64" if linux => Some(Triple::Aarch64LinuxMusl),
            "x86_64" | "amd64" if mac => Some(Triple::X86_64Darwin),
            "aarch64" | "arm64" if mac => Some(Triple::Aarch64Darwin),
            _ => None,
        }
    }

    /// True for ELF targets (the packer's ELF embedding applies).
    pub fn is_elf(self) -> bool {
        matches!(self, Triple::X86_64LinuxMusl | Triple::Aarch64LinuxMusl)
    }
}

impl fmt::Display for Triple {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A triple the matrix does not have.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error(
    "unsupported target '{0}' (supported: x86_64-unknown-linux-musl, aarch64-unknown-linux-musl, x86_64-apple-darwin, aarch64-apple-darwin)"
)]
pub struct UnknownTriple(pub String);

impl FromStr for Triple {
    type Err = UnknownTriple;
    fn from_str(s: &str) -> Result<Triple, UnknownTriple> {
        // The gnu Linux names are accepted for the static musl runners, which run on
        // any Linux of that architecture.
        match s {
            "x86_64-unknown-linux-musl" | "x86_64-unknown-linux-gnu" => Ok(Triple::X86_64LinuxMusl),
            "aarch64-unknown-linux-musl" | "aarch64-unknown-linux-gnu" => {
                Ok(Triple::Aarch64LinuxMusl)
            }
            "x86_64-apple-darwin" => Ok(Triple::X86_64Darwin),
            "aarch64-apple-darwin" => Ok(Triple::Aarch64Darwin),
            other => Err(UnknownTriple(other.to_string())),
        }
    }
}

/// What `--target` and the inventory say about a host's platform.
#[derive(Debug, Clone, PartialEq)]
pub enum Declared {
    /// A platform with a runner.
    Triple(Triple),
    /// A platform named, but one without a runner: why, naming the platform.
    Unsupported(String),
    /// Nothing said: probe the host, or assume.
    Unknown,
}

/// The platform `--target` (which overrides everything), else the `rustle_target`
/// variable (a triple), else `ansible_system` + `ansible_architecture` declare for
/// `host`. `ansible_architecture` alone means Linux; `ansible_system` alone settles
/// nothing unless it names a system without runners.
pub fn declared(host: &Host, forced: Option<Triple>) -> Declared {
    if let Some(t) = forced {
        return Declared::Triple(t);
    }
    if let Some(v) = host.vars.get("rustle_target") {
        return match v.as_str().map(str::parse::<Triple>) {
            Some(Ok(t)) => Declared::Triple(t),
            Some(Err(UnknownTriple(name))) => {
                Declared::Unsupported(format!("rustle_target={name} has no runner"))
            }
            None => Declared::Unsupported(format!("rustle_target must be a triple, got {v}")),
        };
    }
    let arch = host
        .vars
        .get("ansible_architecture")
        .and_then(Value::as_str);
    let system = host.vars.get("ansible_system").and_then(Value::as_str);
    match (system, arch) {
        (system, Some(arch)) => {
            let system = system.unwrap_or("Linux");
            Triple::from_system(system, arch).map_or_else(
                || {
                    Declared::Unsupported(format!(
                        "ansible_system={system} ansible_architecture={arch} has no runner"
                    ))
                },
                Declared::Triple,
            )
        }
        (Some(system), None) if !is_known_system(system) => {
            Declared::Unsupported(format!("ansible_system={system} has no runner"))
        }
        _ => Declared::Unknown,
    }
}

fn is_known_system(system: &str) -> bool {
    ["linux", "darwin", "macos"]
        .iter()
        .any(|s| system.eq_ignore_ascii_case(s))
}

/// The triple for a host's `uname -sm` answer ("Linux x86_64", "Darwin arm64"), or
/// why there is none.
pub fn from_uname(answer: &str) -> Result<Triple, String> {
    let mut words = answer.split_whitespace();
    match (words.next(), words.next()) {
        // The answer comes from the host, and ends up on the terminal: escaped.
        (Some(system), Some(machine)) => Triple::from_system(system, machine).ok_or_else(|| {
            format!(
                "`uname -sm` says {} {}, a platform with no runner",
                crate::deploy::printable(system),
                crate::deploy::printable(machine)
            )
        }),
        _ => Err(format!(
            "`uname -sm` answered {answer:?}, not \"<system> <machine>\""
        )),
    }
}

/// The hosts' platforms found by earlier probes, kept in the deployer's state directory
/// (`~/.rustle/targets.json`) so a deploy probes a host only once. Keyed by the
/// address and port actually connected to. It is only a cache: a file that is missing
/// or unreadable means "probe again", never an error.
#[derive(Debug)]
pub struct TargetCache {
    path: PathBuf,
    entries: BTreeMap<String, Value>,
}

impl TargetCache {
    /// `~/.rustle/targets.json`.
    pub fn default_path() -> Option<PathBuf> {
        std::env::var_os("HOME").map(|h| Path::new(&h).join(".rustle/targets.json"))
    }

    /// The cache at `path` (empty when there is none yet).
    pub fn load(path: &Path) -> TargetCache {
        let entries = std::fs::read(path)
            .ok()
            .and_then(|b| serde_json::from_slice::<BTreeMap<String, Value>>(&b).ok())
            .unwrap_or_default();
        TargetCache {
            path: path.to_path_buf(),
            entries,
        }
    }

    /// The key of a host reached at `address`:`port`.
    pub fn key(address: &str, port: u16) -> String {
        format!("{address}:{port}")
    }

    /// The cached triple for `key`, if any (and still one this build knows).
    pub fn get(&self, key: &str) -> Option<Triple> {
        self.entries.get(key)?.get("triple")?.as_str()?.parse().ok()
    }

    /// Records a probe's answer and the triple it means.
    pub fn set(&mut self, key: &str, uname: &str, triple: Triple) {
        self.entries.insert(
            key.to_string(),
            json!({"uname": uname, "triple": triple.as_str()}),
        );
    }

    /// Forgets a host (its answer changed, or it is to be probed again).
    pub fn remove(&mut self, key: &str) {
        self.entries.remove(key);
    }

    /// Writes the cache (atomically: a deploy running at the same time reads the old
    /// file or the new one, never half of one), 0600, through a temporary file it
    /// creates itself ([`crate::deploy::write_file`]): a name another user planted in a
    /// shared directory is never written through. A missing directory is made 0700.
    pub fn save(&self) -> std::io::Result<()> {
        use std::os::unix::fs::DirBuilderExt as _;
        if let Some(dir) = self.path.parent()
            && !dir.as_os_str().is_empty()
        {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)?;
        }
        let text = serde_json::to_vec_pretty(&self.entries).map_err(std::io::Error::other)?;
        crate::deploy::write_file(&self.path, &text, 0o600)
    }

    /// Where the cache lives.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_detect() {
        for t in ALL {
            assert_eq!(t.as_str().parse::<Triple>().unwrap(), t);
        }
        assert_eq!(
            "x86_64-unknown-linux-gnu".parse::<Triple>().unwrap(),
            Triple::X86_64LinuxMusl
        );
        assert!("riscv64gc-unknown-linux-gnu".parse::<Triple>().is_err());
        assert_eq!(
            Triple::from_system("Linux", "aarch64"),
            Some(Triple::Aarch64LinuxMusl)
        );
        assert_eq!(
            Triple::from_system("Darwin", "arm64"),
            Some(Triple::Aarch64Darwin)
        );
        assert_eq!(Triple::from_system("Linux", "mips"), None);
    }

    fn host(vars: &[(&str, &str)]) -> Host {
        let mut h = Host {
            name: "h".into(),
            vars: Default::default(),
            groups: Vec::new(),
        };
        for (k, v) in vars {
            h.vars.insert((*k).to_string(), json!(v));
        }
        h
    }

    #[test]
    fn declared_platforms() {
        let aarch = Some(Triple::Aarch64LinuxMusl);
        // --target overrides whatever the inventory says.
        assert_eq!(
            declared(
                &host(&[("rustle_target", "riscv64gc-unknown-linux-gnu")]),
                aarch
            ),
            Declared::Triple(Triple::Aarch64LinuxMusl)
        );
        assert_eq!(
            declared(&host(&[("rustle_target", "aarch64-apple-darwin")]), None),
            Declared::Triple(Triple::Aarch64Darwin)
        );
        let Declared::Unsupported(why) = declared(
            &host(&[("rustle_target", "riscv64gc-unknown-linux-gnu")]),
            None,
        ) else {
            panic!("riscv64 must be unsupported")
        };
        assert!(why.contains("riscv64gc-unknown-linux-gnu"), "{why}");
        assert_eq!(
            declared(
                &host(&[
                    ("ansible_system", "Darwin"),
                    ("ansible_architecture", "x86_64")
                ]),
                None
            ),
            Declared::Triple(Triple::X86_64Darwin)
        );
        assert_eq!(
            declared(&host(&[("ansible_architecture", "arm64")]), None),
            Declared::Triple(Triple::Aarch64LinuxMusl)
        );
        let Declared::Unsupported(why) = declared(&host(&[("ansible_system", "FreeBSD")]), None)
        else {
            panic!("FreeBSD must be unsupported")
        };
        assert!(why.contains("FreeBSD"), "{why}");
        assert_eq!(
            declared(&host(&[("ansible_system", "Linux")]), None),
            Declared::Unknown
        );
        assert_eq!(declared(&host(&[]), None), Declared::Unknown);
    }

    #[test]
    fn uname_answers() {
        assert_eq!(from_uname("Linux x86_64"), Ok(Triple::X86_64LinuxMusl));
        assert_eq!(from_uname("Linux aarch64\n"), Ok(Triple::Aarch64LinuxMusl));
        assert_eq!(from_uname("Darwin arm64"), Ok(Triple::Aarch64Darwin));
        assert_eq!(from_uname("Darwin x86_64"), Ok(Triple::X86_64Darwin));
        assert!(
            from_uname("FreeBSD amd64")
                .unwrap_err()
                .contains("FreeBSD amd64")
        );
        assert!(from_uname("Linux riscv64").unwrap_err().contains("riscv64"));
        assert!(from_uname("").is_err());
    }

    #[test]
    fn cache_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state/targets.json");
        let mut c = TargetCache::load(&path);
        let key = TargetCache::key("10.0.0.1", 22);
        assert_eq!(c.get(&key), None);
        c.set(&key, "Linux aarch64", Triple::Aarch64LinuxMusl);
        c.save().unwrap();
        let again = TargetCache::load(&path);
        assert_eq!(again.get(&key), Some(Triple::Aarch64LinuxMusl));
        assert_eq!(again.get(&TargetCache::key("10.0.0.1", 2222)), None);
        // Private: 0600 in a directory made 0700, whatever the umask.
        use std::os::unix::fs::PermissionsExt as _;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(&dir.path().join("state")), 0o700);
        // A damaged cache is an empty one, not an error.
        std::fs::write(&path, "{not json").unwrap();
        assert_eq!(TargetCache::load(&path).get(&key), None);
    }
}
