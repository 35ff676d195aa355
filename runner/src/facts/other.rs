//! The sources of facts on hosts without procfs and sysfs (macOS): the POSIX tools
//! (`uname`, `id`) and `sysctl`, which every such host has. Facts they cannot give
//! without a C library (interfaces and addresses, mounts, memory, DMI) are left out, so
//! a plan that needs them fails naming the missing variable instead of using a guess.
//!
//! On Linux this file is compiled into the tests only, where its answers are compared
//! with procfs's.

use serde_json::{Value, json};
use std::sync::OnceLock;

/// A tool's trimmed standard output, if it ran and succeeded.
fn output(program: &str, args: &[&str]) -> Option<String> {
    let out = std::process::Command::new(program)
        .args(args)
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
    (out.status.success() && !text.is_empty()).then_some(text)
}

/// The kernel's host name (uname(2)'s node name).
pub(super) fn hostname() -> Option<String> {
    output("uname", &["-n"])
}

/// The kernel's release (`uname -r`).
pub(super) fn kernel() -> Option<String> {
    output("uname", &["-r"])
}

/// The kernel's version string (`uname -v`).
pub(super) fn kernel_version() -> Option<String> {
    output("uname", &["-v"])
}

/// Whole seconds since boot, from the BSD `kern.boottime` sysctl.
pub(super) fn uptime_seconds() -> Option<u64> {
    let boot = boottime_seconds(&output("sysctl", &["-n", "kern.boottime"])?)?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?
        .as_secs();
    now.checked_sub(boot)
}

/// The boot time in `sysctl -n kern.boottime`'s answer:
/// `{ sec = 1714003200, usec = 512 } Thu Apr 25 00:00:00 2024`.
fn boottime_seconds(text: &str) -> Option<u64> {
    let (_, rest) = text.split_once("sec = ")?;
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// The name of PID 1: launchd on macOS, by design; unknown elsewhere.
pub(super) fn init_name() -> Option<String> {
    (std::env::consts::OS == "macos").then(|| "launchd".to_string())
}

/// The effective user id of this process, from `id -u` (std cannot ask the kernel
/// without unsafe code). It cannot change while the runner runs (the runner never
/// calls setuid), so it is asked once.
pub(super) fn current_uid() -> Option<u32> {
    static UID: OnceLock<Option<u32>> = OnceLock::new();
    *UID.get_or_init(|| output("id", &["-u"])?.parse().ok())
}

/// The user this process runs as when /etc/passwd does not list it (macOS keeps its
/// users in Directory Services): its name and group from `id`, its home and shell from
/// the environment the login set.
pub(super) fn user_without_passwd(uid: u32) -> Option<super::PasswdEntry> {
    Some(super::PasswdEntry {
        name: output("id", &["-un"])?,
        uid,
        gid: output("id", &["-g"])?.parse().ok()?,
        gecos: String::new(),
        home: std::env::var("HOME").unwrap_or_default(),
        shell: std::env::var("SHELL").unwrap_or_default(),
    })
}

/// What std knows of the hardware: the processors this process may use.
pub(super) fn hardware(put: &mut impl FnMut(&str, Value)) {
    let nproc = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    put("processor_nproc", nproc.into());
    put("processor_vcpus", nproc.into());
}

/// Interfaces and addresses need `getifaddrs` (C) or parsing `ifconfig`: left out.
pub(super) fn network(_put: &mut impl FnMut(&str, Value)) {}

/// SELinux is Linux's.
pub(super) fn selinux() -> Value {
    json!({"status": "disabled"})
}

/// No container or hypervisor detection without procfs: "NA", as Ansible says when
/// nothing tells.
pub(super) fn virtualization() -> (String, String) {
    ("NA".into(), "NA".into())
}

/// Mounts need getfsstat (C) or parsing `mount`: left out.
pub(super) fn mounts() -> Option<Value> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_commands_agree_with_procfs() {
        // These tests run on Linux, where both sources exist: the fallback must give
        // what procfs gives.
        assert_eq!(hostname(), super::super::linux::hostname());
        assert_eq!(kernel(), super::super::linux::kernel());
        assert_eq!(kernel_version(), super::super::linux::kernel_version());
        assert_eq!(current_uid(), super::super::linux::current_uid());
        assert!(current_uid().is_some());
        let user = user_without_passwd(current_uid().unwrap()).unwrap();
        let passwd = std::fs::read_to_string("/etc/passwd").unwrap();
        let line = passwd
            .lines()
            .find(|l| l.split(':').nth(2) == Some(&user.uid.to_string()))
            .unwrap();
        let f: Vec<&str> = line.split(':').collect();
        assert_eq!(
            (user.name.as_str(), user.gid.to_string().as_str()),
            (f[0], f[3])
        );
    }

    #[test]
    fn boot_time_is_read_from_sysctls_answer() {
        assert_eq!(
            boottime_seconds("{ sec = 1714003200, usec = 512 } Thu Apr 25 00:00:00 2024"),
            Some(1_714_003_200)
        );
        assert_eq!(boottime_seconds("kern.boottime: unknown oid"), None);
        assert_eq!(boottime_seconds(""), None);
    }
}
