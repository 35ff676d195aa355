//! File attributes as `lsattr` and `chattr` name them (the `attributes` argument of the
//! file modules), read and set through a descriptor with `FS_IOC_GETFLAGS`/`SETFLAGS`.
//!
//! Ansible runs `lsattr -d` and `chattr OP LETTERS PATH`; the runner asks the kernel
//! directly, on the file it already holds open, so the name cannot be swapped for a
//! symlink between reading and setting, and no process is started. The decisions are
//! Ansible's (`set_attributes_if_different`): the current letters, in `lsattr`'s order,
//! are compared as a string with the letters asked for, so `+A` on ext4 (where every
//! file also shows `e`) reports a change each time, and `-` always does.

use std::fs::File;

/// Each flag `lsattr` shows, in the order it prints them, with its bit.
const LETTERS: [(char, u32); 22] = [
    ('s', 0x0000_0001),
    ('u', 0x0000_0002),
    ('S', 0x0000_0008),
    ('D', 0x0001_0000),
    ('i', 0x0000_0010),
    ('a', 0x0000_0020),
    ('d', 0x0000_0040),
    ('A', 0x0000_0080),
    ('c', 0x0000_0004),
    ('E', 0x0000_0800),
    ('j', 0x0000_4000),
    ('I', 0x0000_1000),
    ('t', 0x0000_8000),
    ('T', 0x0002_0000),
    ('e', 0x0008_0000),
    ('C', 0x0080_0000),
    ('x', 0x0200_0000),
    ('F', 0x4000_0000),
    ('N', 0x1000_0000),
    ('P', 0x2000_0000),
    ('V', 0x0010_0000),
    ('m', 0x0000_0400),
];

/// The letters `chattr` accepts.
const SETTABLE: &str = "aAcCdDeFijmPsStTux";

/// The extents flag: `chattr =...` keeps it, since the kernel refuses to clear it.
const EXTENTS: u32 = 0x0008_0000;

/// Whether this platform has the flags at all. Elsewhere Ansible finds no `chattr` and
/// leaves the argument without effect; so does the runner.
pub(super) const SUPPORTED: bool = cfg!(target_os = "linux");

/// An `attributes` argument: `chattr`'s operator and the letters, as written.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Request {
    op: u8,
    text: [u8; 32],
    len: usize,
}

impl Request {
    /// Reads an `attributes` value as Ansible does: a leading `+` or `-` is the operator,
    /// anything else means `=` with the whole text as the letters. Empty asks for
    /// nothing (`None`).
    pub(super) fn parse(s: &str) -> Result<Option<Request>, String> {
        let (op, letters) = match s.as_bytes().first() {
            Some(&c @ (b'+' | b'-')) => (c, s.get(1..).unwrap_or_default()),
            _ => (b'=', s),
        };
        if letters.is_empty() {
            return Ok(None);
        }
        let mut text = [0u8; 32];
        text.get_mut(..letters.len())
            .ok_or_else(|| format!("attributes is too long: {s}"))?
            .copy_from_slice(letters.as_bytes());
        Ok(Some(Request {
            op,
            text,
            len: letters.len(),
        }))
    }

    fn letters(&self) -> &str {
        std::str::from_utf8(self.text.get(..self.len).unwrap_or_default()).unwrap_or_default()
    }

    /// Ansible's test: the current letters (`None` when they could not be read) are not
    /// exactly the ones asked for, or the operator is `-`.
    pub(super) fn differs(&self, current: Option<&str>) -> bool {
        self.op == b'-' || current.unwrap_or_default() != self.letters()
    }

    /// What diff mode shows after the change: operator and letters.
    pub(super) fn shown(&self) -> String {
        format!("{}{}", char::from(self.op), self.letters())
    }

    /// The flags `chattr` would leave on a file whose flags are `old`, or its complaint
    /// about a letter it does not know.
    pub(super) fn apply(&self, old: u32) -> Result<u32, String> {
        let mut bits = 0;
        for c in self.letters().chars() {
            let bit = LETTERS
                .iter()
                .find(|(l, _)| *l == c && SETTABLE.contains(c))
                .map(|(_, b)| *b)
                .ok_or_else(|| format!("chattr: bad attribute flag - {c}"))?;
            bits |= bit;
        }
        let settable = LETTERS
            .iter()
            .filter(|(l, _)| SETTABLE.contains(*l))
            .fold(0, |acc, (_, b)| acc | b);
        Ok(match self.op {
            b'+' => old | bits,
            b'-' => old & !bits,
            // `=` replaces what chattr can set and keeps the rest (and extents).
            _ => (old & !(settable & !EXTENTS)) | bits,
        })
    }
}

/// The letters `lsattr` shows for `bits`, in its order.
pub(super) fn letters(bits: u32) -> String {
    LETTERS
        .iter()
        .filter(|(_, b)| bits & b != 0)
        .map(|(l, _)| *l)
        .collect()
}

/// The flags of an open file; `None` when its file system has none.
#[cfg(target_os = "linux")]
pub(super) fn get(f: &File) -> Option<u32> {
    rustix::fs::ioctl_getflags(f).ok().map(|f| f.bits())
}

#[cfg(not(target_os = "linux"))]
pub(super) fn get(_f: &File) -> Option<u32> {
    None
}

/// Sets the flags of an open file.
#[cfg(target_os = "linux")]
pub(super) fn set(f: &File, bits: u32) -> std::io::Result<()> {
    rustix::fs::ioctl_setflags(f, rustix::fs::IFlags::from_bits_retain(bits))
        .map_err(std::io::Error::from)
}

#[cfg(not(target_os = "linux"))]
pub(super) fn set(_f: &File, _bits: u32) -> std::io::Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(s: &str) -> Request {
        Request::parse(s).unwrap().unwrap()
    }

    #[test]
    fn operators_and_letters_as_ansible_reads_them() {
        assert_eq!(Request::parse("").unwrap(), None);
        assert_eq!(Request::parse("+").unwrap(), None);
        assert_eq!(req("A").shown(), "=A");
        assert_eq!(req("+A").shown(), "+A");
        assert_eq!(req("-iA").shown(), "-iA");
        // Only + and - are operators: "=A" is the letters "=A", which chattr refuses.
        assert!(req("=A").apply(0).is_err());
        assert!(Request::parse(&"A".repeat(40)).is_err());
    }

    #[test]
    fn compared_as_text_in_lsattr_order() {
        let a = 0x80;
        assert_eq!(letters(a | EXTENTS), "Ae");
        assert_eq!(letters(0x10 | 0x80), "iA");
        assert!(!req("A").differs(Some("A")));
        assert!(req("A").differs(Some("Ae")));
        assert!(req("+A").differs(None));
        assert!(req("Ai").differs(Some("iA")));
        assert!(req("-A").differs(Some("")));
    }

    #[test]
    fn chattr_operators() {
        let (a, i) = (0x80, 0x10);
        assert_eq!(req("+A").apply(EXTENTS).unwrap(), EXTENTS | a);
        assert_eq!(req("-A").apply(EXTENTS | a | i).unwrap(), EXTENTS | i);
        assert_eq!(req("A").apply(EXTENTS | i).unwrap(), EXTENTS | a);
        // Flags chattr cannot set (indexed directory) stay as they are under `=`.
        assert_eq!(req("A").apply(0x1000).unwrap(), 0x1000 | a);
        assert!(req("+Z").apply(0).is_err());
    }
}
