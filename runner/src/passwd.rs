//! The passwd and group databases as `/etc/passwd` and `/etc/group` hold them: the one
//! reader behind owner/group lookups, `become_user`, the user module's fallback when
//! getent is missing, facts and `~user` homes.
//!
//! Read fresh on every call: the files are small and a plan may create users between
//! tasks. Comment and blank lines are skipped; a line whose ids are not numbers is no
//! entry (a user with an unreadable gid must not become gid 0).

use std::fs;

/// A passwd entry.
#[derive(Debug, Clone, PartialEq)]
pub struct User {
    pub name: String,
    pub uid: u32,
    /// Primary group id.
    pub gid: u32,
    /// The comment (GECOS) field.
    pub gecos: String,
    pub home: String,
    pub shell: String,
}

/// A group entry.
#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    pub name: String,
    pub gid: u32,
    /// Supplementary members, by name.
    pub members: Vec<String>,
}

/// One `name:pw:uid:gid:gecos:home:shell` line; missing trailing fields are empty.
pub fn parse_user(line: &str) -> Option<User> {
    let mut f = line.split(':');
    let name = f.next().filter(|n| !n.is_empty() && !n.starts_with('#'))?;
    let _password = f.next()?;
    let uid = f.next()?.trim().parse().ok()?;
    let gid = f.next()?.trim().parse().ok()?;
    let mut text = || f.next().unwrap_or_default().to_string();
    Some(User {
        name: name.to_string(),
        uid,
        gid,
        gecos: text(),
        home: text(),
        shell: text(),
    })
}

/// One `name:pw:gid:member,member` line.
pub fn parse_group(line: &str) -> Option<Group> {
    let mut f = line.split(':');
    let name = f.next().filter(|n| !n.is_empty() && !n.starts_with('#'))?;
    let _password = f.next()?;
    let gid = f.next()?.trim().parse().ok()?;
    let members = f
        .next()
        .unwrap_or_default()
        .split(',')
        .filter(|m| !m.is_empty())
        .map(str::to_string)
        .collect();
    Some(Group {
        name: name.to_string(),
        gid,
        members,
    })
}

/// Every entry of `/etc/passwd` (none when it cannot be read).
pub fn users() -> Vec<User> {
    read("/etc/passwd", parse_user)
}

/// Every entry of `/etc/group` (none when it cannot be read).
pub fn groups() -> Vec<Group> {
    read("/etc/group", parse_group)
}

/// The user named `name`.
pub fn user(name: &str) -> Option<User> {
    users().into_iter().find(|u| u.name == name)
}

fn read<T>(path: &str, parse: fn(&str) -> Option<T>) -> Vec<T> {
    fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(parse)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_parse_and_bad_ones_are_no_entry() {
        let u = parse_user("bob:x:1001:1002:Bob B,,,:/home/bob:/bin/bash").unwrap();
        assert_eq!((u.uid, u.gid, u.gecos.as_str()), (1001, 1002, "Bob B,,,"));
        assert_eq!(
            (u.home.as_str(), u.shell.as_str()),
            ("/home/bob", "/bin/bash")
        );
        assert_eq!(parse_user("short:x:5:6").unwrap().home, "");
        assert!(parse_user("nogid:x:5:").is_none());
        assert!(parse_user("# root:x:0:0::/root:/bin/sh").is_none());
        assert!(parse_user("").is_none());
        let g = parse_group("adm:x:4:syslog,bob").unwrap();
        assert_eq!((g.gid, g.members), (4, vec!["syslog".into(), "bob".into()]));
        assert!(parse_group("empty:x:9:").unwrap().members.is_empty());
        assert!(parse_group("bad:x:nine:").is_none());
    }

    /// The real files, against what the C library's getent says.
    #[test]
    fn root_is_found_as_getent_has_it() {
        let root = user("root").unwrap();
        assert_eq!((root.uid, root.gid), (0, 0));
        let out = std::process::Command::new("getent")
            .args(["passwd", "root"])
            .output()
            .unwrap();
        let line = String::from_utf8(out.stdout).unwrap();
        assert_eq!(parse_user(line.trim_end()), Some(root));
        assert!(groups().iter().any(|g| g.name == "root" && g.gid == 0));
    }
}
