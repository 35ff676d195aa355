//! Target triples as typed values: the platforms a runner can be built for.

use std::fmt;
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
}
