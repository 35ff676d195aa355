//! `become_user`: the user a task runs as, when that is not the runner's own.
//!
//! The deployer starts the runner as root (through `sudo -n`) when the plan asks for
//! privilege. A task that then asks to become another user runs as that user, with that
//! user's uid, primary gid and home, as `sudo -u` would give them: a module that starts
//! processes starts them so, and any other module (copy, file, template, ...) runs in a
//! child runner process started so (see `modules::asuser`). std drops root's
//! supplementary groups when a root process sets a child's uid, and cannot set the
//! user's own without `unsafe`: the user's primary group is the only one.

/// The identity a task's processes take.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunAs {
    /// The user name (for USER / LOGNAME).
    pub user: String,
    /// Numeric user id.
    pub uid: u32,
    /// Primary group id.
    pub gid: u32,
    /// Home directory (for HOME and as the working directory default).
    pub home: String,
}

impl RunAs {
    /// Looks `user` (a name, or a number) up in the password database.
    pub fn lookup(user: &str) -> Option<RunAs> {
        crate::passwd::users()
            .into_iter()
            .find(|u| u.name == user || user.parse::<u32>().ok() == Some(u.uid))
            .map(|u| RunAs {
                user: u.name,
                uid: u.uid,
                gid: u.gid,
                home: u.home,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_is_found_by_name_and_number_and_strangers_are_not() {
        let root = RunAs::lookup("root").unwrap();
        assert_eq!((root.uid, root.gid), (0, 0));
        assert_eq!(RunAs::lookup("0").unwrap().user, "root");
        assert!(RunAs::lookup("no-such-user-here").is_none());
    }
}
