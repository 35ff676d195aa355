//! Writing files so that no one else can redirect the write: [`Dir`] (a directory held
//! open, names used through it), [`NewFile`] (a file this process created itself, renamed
//! into place once its attributes are set on its descriptor) and [`write`], the one
//! procedure every whole-file write of the runner and the deployer goes through (modules'
//! destinations, releases, `state.json`, the controller's caches, keys and outputs).
//!
//! Root often writes into directories others can write in: a user's home, an
//! application's tree. Anything done there by path can be redirected, because a name
//! checked a moment ago may be a symlink to /etc/shadow by the time it is used. So
//! every write goes through a file this process created itself (O_EXCL, an
//! unpredictable name from [`crate::random`]), its owner and mode are set on the open
//! descriptor, and the directory is held open while names in it are used. On Linux those
//! names are looked up through the directory's descriptor (`/proc/self/fd/N/name`, the
//! `*at` calls std offers without unsafe code), so not even a directory renamed or
//! replaced by a symlink meanwhile can redirect a write. Elsewhere (macOS, the BSDs)
//! they are looked up by path, which narrows the window (every step re-checks) but
//! cannot close it.

use std::ffi::{OsStr, OsString};
use std::fs;
use std::io::{self, Write as _};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// Why a write through a [`Dir`] failed; each variant names the path concerned.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// An operation failed.
    #[error("could not {action} {}: {source}", path.display())]
    Io {
        /// What was attempted ("create", "rename a temp file onto", ...).
        action: &'static str,
        /// The path it was attempted on.
        path: PathBuf,
        /// The system's error.
        #[source]
        source: io::Error,
    },
    /// A name was found to be another file than the one this process made or checked.
    #[error(
        "refusing to use {}: it was replaced while being written (someone else can write in {}); nothing was written through it",
        path.display(),
        dir.display()
    )]
    Replaced {
        /// The name that changed.
        path: PathBuf,
        /// Its directory.
        dir: PathBuf,
    },
    /// A directory on the way is a symlink, which is never followed.
    #[error("refusing to write through the symlink {}", path.display())]
    Symlink {
        /// The symlink.
        path: PathBuf,
    },
    /// A directory on the way is something else.
    #[error("{} exists and is not a directory", path.display())]
    NotADirectory {
        /// What is there instead.
        path: PathBuf,
    },
}

/// `O_NONBLOCK`, so that opening a name someone swapped for a FIFO cannot hang the
/// runner (it changes nothing for files and directories). std names no open flags;
/// these are the kernels' values: Linux's generic ABI, which every architecture the
/// runner is built for uses, and the BSDs'. Elsewhere it is 0 and such an open may block.
const O_NONBLOCK: i32 = if cfg!(any(
    target_vendor = "apple",
    target_os = "freebsd",
    target_os = "netbsd",
    target_os = "openbsd"
)) {
    0x4
} else if cfg!(all(
    any(target_os = "linux", target_os = "android"),
    not(any(
        target_arch = "mips",
        target_arch = "mips64",
        target_arch = "mips32r6",
        target_arch = "mips64r6",
        target_arch = "sparc",
        target_arch = "sparc64"
    ))
)) {
    0o4000
} else {
    0
};

/// Linux's `O_PATH` (the generic ABI's value, as for [`O_NONBLOCK`]); 0 elsewhere.
const O_PATH: i32 = if cfg!(all(
    any(target_os = "linux", target_os = "android"),
    not(any(
        target_arch = "mips",
        target_arch = "mips64",
        target_arch = "mips32r6",
        target_arch = "mips64r6",
        target_arch = "sparc",
        target_arch = "sparc64"
    ))
)) {
    0o10_000_000
} else {
    0
};

/// Opens `path` read-only (following symlinks) without blocking on a FIFO.
pub fn open_nonblocking(path: &Path) -> io::Result<fs::File> {
    fs::File::options()
        .read(true)
        .custom_flags(O_NONBLOCK)
        .open(path)
}

/// Whether two metadata describe the same file (device and inode).
pub fn same_file(a: &fs::Metadata, b: &fs::Metadata) -> bool {
    a.dev() == b.dev() && a.ino() == b.ino()
}

/// The path that reaches an open directory through its descriptor, when procfs shows
/// it (checked to lead to that very directory).
#[cfg(target_os = "linux")]
fn fd_path(file: &fs::File) -> Option<PathBuf> {
    use std::os::fd::AsRawFd;
    let p = PathBuf::from(format!("/proc/self/fd/{}", file.as_raw_fd()));
    let (via, real) = (fs::metadata(&p).ok()?, file.metadata().ok()?);
    same_file(&via, &real).then_some(p)
}

/// Without procfs names are looked up by the directory's path.
#[cfg(not(target_os = "linux"))]
fn fd_path(_file: &fs::File) -> Option<PathBuf> {
    None
}

/// A directory held open; names in it are used through it (see above).
#[derive(Debug)]
pub struct Dir {
    file: fs::File,
    /// The path it was opened by, for messages.
    path: PathBuf,
    /// How names in it are reached through the descriptor, when the platform allows.
    via: Option<PathBuf>,
}

impl Dir {
    /// Opens the directory at `path`, following symlinks in it (the path given is the
    /// path meant).
    pub fn open(path: &Path) -> io::Result<Dir> {
        let file = match open_nonblocking(path) {
            // A directory this user may search and write but not list (not root:
            // root reads everything) can still be held open as a path (Linux).
            Err(e) if e.kind() == io::ErrorKind::PermissionDenied && O_PATH != 0 => {
                fs::File::options()
                    .read(true)
                    .custom_flags(O_PATH)
                    .open(path)?
            }
            other => other?,
        };
        if !file.metadata()?.is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::NotADirectory,
                "not a directory",
            ));
        }
        Ok(Dir {
            via: fd_path(&file),
            file,
            path: path.to_path_buf(),
        })
    }

    /// The open directory itself (to change its owner through, say).
    pub fn file(&self) -> &fs::File {
        &self.file
    }

    /// The path the directory was opened by.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How `name` in this directory is shown in messages.
    pub fn shown(&self, name: &OsStr) -> PathBuf {
        self.path.join(name)
    }

    /// Another handle on the same directory.
    pub fn try_clone(&self) -> Result<Dir, WriteError> {
        let file = self.file.try_clone().map_err(|e| WriteError::Io {
            action: "open",
            path: self.path.clone(),
            source: e,
        })?;
        Ok(Dir {
            via: fd_path(&file),
            file,
            path: self.path.clone(),
        })
    }

    /// Sets the directory's own mode, through its descriptor.
    pub fn set_mode(&self, mode: u32) -> Result<(), WriteError> {
        self.file
            .set_permissions(fs::Permissions::from_mode(mode))
            .map_err(|e| WriteError::Io {
                action: "change the mode of",
                path: self.path.clone(),
                source: e,
            })
    }

    /// Where the symlink `name` points.
    pub fn read_link(&self, name: &OsStr) -> Result<PathBuf, WriteError> {
        fs::read_link(self.at(name)?).map_err(|e| self.io("read the symlink", name, e))
    }

    /// The path that reaches `name` in this directory. `name` must be one plain name:
    /// anything with a slash, or `.`/`..`, could leave the directory.
    pub fn at(&self, name: &OsStr) -> Result<PathBuf, WriteError> {
        let b = name.as_bytes();
        if b.is_empty() || b == b"." || b == b".." || b.contains(&b'/') {
            return Err(WriteError::Io {
                action: "use",
                path: self.shown(name),
                source: io::Error::new(io::ErrorKind::InvalidInput, "not a single file name"),
            });
        }
        Ok(self.via.as_deref().unwrap_or(&self.path).join(name))
    }

    fn io(&self, action: &'static str, name: &OsStr, source: io::Error) -> WriteError {
        WriteError::Io {
            action,
            path: self.shown(name),
            source,
        }
    }

    /// `name`'s metadata without following a symlink; `None` when nothing is there.
    pub fn lstat(&self, name: &OsStr) -> Result<Option<fs::Metadata>, WriteError> {
        match fs::symlink_metadata(self.at(name)?) {
            Ok(m) => Ok(Some(m)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(self.io("inspect", name, e)),
        }
    }

    /// Opens `name` for reading, which `seen` (its lstat just before) says is a file or
    /// directory, and checks the descriptor is that very file: a name swapped for
    /// anything else meanwhile is refused, never followed.
    pub fn open_seen(&self, name: &OsStr, seen: &fs::Metadata) -> Result<fs::File, WriteError> {
        let f = open_nonblocking(&self.at(name)?).map_err(|e| self.io("open", name, e))?;
        let now = f.metadata().map_err(|e| self.io("inspect", name, e))?;
        if !same_file(&now, seen) {
            return Err(self.replaced(name));
        }
        Ok(f)
    }

    fn replaced(&self, name: &OsStr) -> WriteError {
        WriteError::Replaced {
            path: self.shown(name),
            dir: self.path.clone(),
        }
    }

    /// The directory `name` in this one, created with `create` (a mode, less the umask)
    /// when missing. A symlink is never followed, and the directory opened is checked to
    /// be the one inspected.
    pub fn subdir(&self, name: &OsStr, create: Option<u32>) -> Result<Dir, WriteError> {
        let seen = match (self.lstat(name)?, create) {
            (Some(m), _) => m,
            (None, Some(mode)) => {
                match fs::DirBuilder::new().mode(mode).create(self.at(name)?) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                    Err(e) => return Err(self.io("create", name, e)),
                }
                self.lstat(name)?.ok_or_else(|| self.replaced(name))?
            }
            (None, None) => {
                return Err(self.io("open", name, io::Error::from(io::ErrorKind::NotFound)));
            }
        };
        if seen.file_type().is_symlink() {
            return Err(WriteError::Symlink {
                path: self.shown(name),
            });
        }
        if !seen.is_dir() {
            return Err(WriteError::NotADirectory {
                path: self.shown(name),
            });
        }
        let file = self.open_seen(name, &seen)?;
        Ok(Dir {
            via: fd_path(&file),
            file,
            path: self.shown(name),
        })
    }

    /// Creates the new file `name` with `mode` (O_CREAT|O_EXCL: an existing name,
    /// symlinks included, is refused).
    pub fn create_new(&self, name: &OsStr, mode: u32) -> Result<fs::File, WriteError> {
        fs::File::options()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(self.at(name)?)
            .map_err(|e| self.io("create", name, e))
    }

    /// A new private temp file in this directory, to become `base` (see [`NewFile`]).
    pub fn new_file(&self, base: &OsStr) -> Result<NewFile<'_>, WriteError> {
        let mut attempt = 0;
        loop {
            let name = temp_name(base);
            match self.create_new(&name, 0o600) {
                Ok(file) => {
                    return Ok(NewFile {
                        dir: self,
                        name,
                        file,
                        placed: false,
                    });
                }
                Err(WriteError::Io { source, .. })
                    if source.kind() == io::ErrorKind::AlreadyExists && attempt < 8 =>
                {
                    attempt += 1;
                }
                Err(WriteError::Io { source, .. }) => {
                    return Err(self.io("create a temp file beside", base, source));
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Removes the non-directory `name` (a symlink itself, never its target).
    pub fn remove(&self, name: &OsStr) -> Result<(), WriteError> {
        fs::remove_file(self.at(name)?).map_err(|e| self.io("remove", name, e))
    }

    /// Creates the symlink `name` pointing to `target`.
    pub fn symlink(&self, target: &Path, name: &OsStr) -> Result<(), WriteError> {
        std::os::unix::fs::symlink(target, self.at(name)?)
            .map_err(|e| self.io("create the symlink", name, e))
    }

    /// Creates `name` as a hard link to `from_name` in `from` (a link there is linked
    /// itself, not followed).
    pub fn hard_link(&self, from: &Dir, from_name: &OsStr, name: &OsStr) -> Result<(), WriteError> {
        fs::hard_link(from.at(from_name)?, self.at(name)?)
            .map_err(|e| self.io("create the hard link", name, e))
    }
}

/// A file this process created itself in a [`Dir`], under an unpredictable name with
/// O_EXCL and mode 0600, that becomes its destination by [`NewFile::place`]: owner,
/// group, mode and mtime are set on the descriptor, then it is renamed over the
/// destination, so readers see the old file or the new one, never a partial one, and
/// no attribute is ever set by a name someone else could have swapped. Dropped before
/// being placed, it is removed.
#[derive(Debug)]
pub struct NewFile<'d> {
    dir: &'d Dir,
    name: OsString,
    file: fs::File,
    placed: bool,
}

/// The attributes a [`NewFile`] gets before it is renamed into place.
#[derive(Debug, Clone, Copy, Default)]
pub struct Finish<'a> {
    /// Permission bits (and set-id bits).
    pub mode: u32,
    /// The owner and group of the file being replaced, kept where this process may
    /// set them (root); elsewhere EPERM is ignored, as Ansible does.
    pub keep_owner: Option<(u32, u32)>,
    /// The owner asked for (a failure to set it is an error).
    pub uid: Option<u32>,
    /// The group asked for (a failure to set it is an error).
    pub gid: Option<u32>,
    /// The modification time to give it.
    pub mtime: Option<SystemTime>,
    /// Flush the content to disk before the rename.
    pub sync: bool,
    /// The file being replaced, opened by the caller (checked to be the file it
    /// inspected): its extended attributes (POSIX ACLs, SELinux label, user xattrs) go
    /// onto the new file, as Ansible's `atomic_move` keeps them (`shutil.copystat`).
    pub keep_xattrs: Option<&'a fs::File>,
}

impl NewFile<'_> {
    /// The open file, to write the content into.
    pub fn file(&mut self) -> &mut fs::File {
        &mut self.file
    }

    /// The temp file's path, for messages.
    pub fn shown(&self) -> PathBuf {
        self.dir.shown(&self.name)
    }

    /// Gives the file its attributes and renames it to `name` in its directory. The temp
    /// name is checked to still be this file right before the rename, and `name` to be
    /// a regular file right after: someone who can write in the directory may have moved
    /// the file away and left a symlink in its place, and that is reported, never
    /// written through.
    pub fn place(mut self, name: &OsStr, fin: &Finish) -> Result<(), WriteError> {
        let tmp = self.shown();
        let io = |action, source| WriteError::Io {
            action,
            path: tmp.clone(),
            source,
        };
        if fin.sync {
            self.file.sync_all().map_err(|e| io("write", e))?;
        }
        if let Some((uid, gid)) = fin.keep_owner {
            match std::os::unix::fs::fchown(&self.file, Some(uid), Some(gid)) {
                Err(e) if e.kind() != io::ErrorKind::PermissionDenied => {
                    return Err(io("change the owner of", e));
                }
                _ => {}
            }
        }
        // Owner before mode: chown clears set-id bits, which the mode may set again.
        if fin.uid.is_some() || fin.gid.is_some() {
            std::os::unix::fs::fchown(&self.file, fin.uid, fin.gid)
                .map_err(|e| io("change the owner/group of", e))?;
        }
        // After the owner (chown drops file capabilities, which are an xattr) and before
        // the mode (which then sets an ACL's mask as the mode asks), as copystat does.
        if let Some(old) = fin.keep_xattrs {
            copy_xattrs(old, &self.file).map_err(|e| io("copy the extended attributes to", e))?;
        }
        self.file
            .set_permissions(fs::Permissions::from_mode(fin.mode))
            .map_err(|e| io("change the mode of", e))?;
        if let Some(t) = fin.mtime {
            self.file
                .set_modified(t)
                .map_err(|e| io("set the modification time of", e))?;
        }
        let ours = self.file.metadata().map_err(|e| io("inspect", e))?;
        if !self
            .dir
            .lstat(&self.name)?
            .is_some_and(|m| same_file(&m, &ours))
        {
            return Err(self.dir.replaced(&self.name));
        }
        match fs::rename(self.dir.at(&self.name)?, self.dir.at(name)?) {
            Ok(()) => {}
            // Our file was there a moment ago: someone moved it away.
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(self.dir.replaced(&self.name));
            }
            Err(e) => return Err(self.dir.io("rename a temp file onto", name, e)),
        }
        self.placed = true;
        // Another writer's new file renamed over ours since is fine (the last write
        // wins, as with any two writes); anything but a regular file means someone
        // swapped the name, which is reported.
        match self.dir.lstat(name)? {
            Some(m) if same_file(&m, &ours) || (m.is_file() && m.nlink() == 1) => Ok(()),
            _ => Err(self.dir.replaced(name)),
        }
    }
}

impl Drop for NewFile<'_> {
    fn drop(&mut self) {
        if !self.placed
            && let Ok(p) = self.dir.at(&self.name)
        {
            // Whatever is under the temp name now goes: ours, or what replaced it.
            let _ = fs::remove_file(p);
        }
    }
}

/// Copies every extended attribute `from` has onto `to`, through both descriptors.
/// As Python's `shutil._copyxattr` (what Ansible's `atomic_move` relies on), an
/// attribute the file system or this process may not set is skipped (EPERM, ENOTSUP,
/// ENODATA, EINVAL), and a file system without xattrs has nothing to copy.
#[cfg(any(target_os = "linux", target_os = "macos"))]
pub fn copy_xattrs(from: &fs::File, to: &fs::File) -> io::Result<()> {
    use rustix::fs::{
        XattrFlags, fgetxattr, fgetxattr_query, flistxattr, flistxattr_query, fsetxattr,
    };
    use rustix::io::Errno;
    let skipped = |e: Errno| {
        [
            Errno::PERM,
            Errno::NOTSUP,
            Errno::OPNOTSUPP,
            Errno::NODATA,
            Errno::INVAL,
        ]
        .contains(&e)
    };
    let names = match sized(|| flistxattr_query(from), |buf| flistxattr(from, buf)) {
        Ok(n) => n,
        Err(e) if skipped(e) => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    for name in names.split(|b| *b == 0).filter(|n| !n.is_empty()) {
        let Ok(name) =
            std::ffi::CStr::from_bytes_with_nul(&[name, &[0]].concat()).map(ToOwned::to_owned)
        else {
            continue;
        };
        let value = match sized(
            || fgetxattr_query(from, name.as_c_str()),
            |buf| fgetxattr(from, name.as_c_str(), buf),
        ) {
            Ok(v) => v,
            Err(e) if skipped(e) => continue,
            Err(e) => return Err(e.into()),
        };
        match fsetxattr(to, name.as_c_str(), &value, XattrFlags::empty()) {
            Err(e) if !skipped(e) => return Err(e.into()),
            _ => {}
        }
    }
    Ok(())
}

/// No extended attributes to keep where the runner does not read them.
#[cfg(not(any(target_os = "linux", target_os = "macos")))]
pub fn copy_xattrs(_from: &fs::File, _to: &fs::File) -> io::Result<()> {
    Ok(())
}

/// The whole answer of an xattr call that fills a buffer: its size asked first
/// (`query`), then the bytes (`call`); ERANGE (it grew meanwhile) asks again.
#[cfg(any(target_os = "linux", target_os = "macos"))]
fn sized(
    query: impl Fn() -> rustix::io::Result<usize>,
    call: impl Fn(&mut [u8]) -> rustix::io::Result<usize>,
) -> rustix::io::Result<Vec<u8>> {
    for _ in 0..8 {
        let len = query()?;
        let mut buf = vec![0u8; len];
        match call(&mut buf) {
            Ok(n) => {
                buf.truncate(n);
                return Ok(buf);
            }
            Err(rustix::io::Errno::RANGE) => continue,
            Err(e) => return Err(e),
        }
    }
    Err(rustix::io::Errno::RANGE)
}

/// Writes `bytes` as the file `path` with permission bits `mode` (whatever the umask),
/// flushed to disk before it replaces what was there: see [`write_with`].
pub fn write(path: &Path, bytes: &[u8], mode: u32) -> Result<(), WriteError> {
    write_with(
        path,
        bytes,
        &Finish {
            mode,
            sync: true,
            ..Finish::default()
        },
    )
}

/// Writes `bytes` as the file `path`: into a new file of its own in `path`'s directory
/// ([`Dir::new_file`]), given `fin`'s attributes on its descriptor, then renamed over
/// `path` ([`NewFile::place`]). Readers see the old file or the new one, never half of
/// one; a failure (a full disk) leaves the old file and no temp file. Whatever was at
/// `path`, a file someone else owns or a symlink, is replaced, never written through.
/// The directory part of `path` is followed as given: it is the path meant.
pub fn write_with(path: &Path, bytes: &[u8], fin: &Finish) -> Result<(), WriteError> {
    let Some(name) = path.file_name() else {
        return Err(WriteError::Io {
            action: "write",
            path: path.to_path_buf(),
            source: io::Error::new(io::ErrorKind::InvalidInput, "not a file name"),
        });
    };
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let dir = Dir::open(parent).map_err(|source| WriteError::Io {
        action: "open the directory",
        path: parent.to_path_buf(),
        source,
    })?;
    let mut new = dir.new_file(name)?;
    new.file()
        .write_all(bytes)
        .map_err(|source| WriteError::Io {
            action: "write",
            path: new.shown(),
            source,
        })?;
    new.place(name, fin)
}

/// For callers whose errors carry an `io::Error`: the kind is the system's (a full
/// disk stays `StorageFull`), the message the whole [`WriteError`], which names the path.
impl From<WriteError> for io::Error {
    fn from(e: WriteError) -> io::Error {
        let kind = match &e {
            WriteError::Io { source, .. } => source.kind(),
            WriteError::Replaced { .. } | WriteError::Symlink { .. } => {
                io::ErrorKind::PermissionDenied
            }
            WriteError::NotADirectory { .. } => io::ErrorKind::NotADirectory,
        };
        io::Error::new(kind, e.to_string())
    }
}

/// A temp name for a file to become `base`: `.<base>.<random>.rustle-tmp`.
fn temp_name(base: &OsStr) -> OsString {
    let mut name = OsString::from(".");
    name.push(base);
    name.push(format!(".{}.rustle-tmp", crate::random::tag()));
    name
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use std::process::Command;

    /// A file written over one that has a POSIX ACL has that ACL too (read back by
    /// the system's getfacl, set by its setfacl).
    #[test]
    fn a_replaced_file_keeps_the_old_ones_acl() {
        let t = tempfile::tempdir().unwrap();
        let f = t.path().join("f");
        std::fs::write(&f, "old").unwrap();
        let set = Command::new("setfacl")
            .arg("-m")
            .arg("nobody:rwx")
            .arg(&f)
            .status()
            .unwrap();
        assert!(set.success());
        let old = std::fs::File::open(&f).unwrap();
        let mode = std::os::unix::fs::MetadataExt::mode(&old.metadata().unwrap()) & 0o7777;
        super::write_with(
            &f,
            b"new",
            &super::Finish {
                mode,
                keep_xattrs: Some(&old),
                ..super::Finish::default()
            },
        )
        .unwrap();
        assert_eq!(std::fs::read(&f).unwrap(), b"new");
        let out = Command::new("getfacl").arg("-c").arg(&f).output().unwrap();
        let acl = String::from_utf8(out.stdout).unwrap();
        assert!(acl.lines().any(|l| l == "user:nobody:rwx"), "{acl}");
    }
}
