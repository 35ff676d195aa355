//! Unpredictable names for the files and directories the runner (and the deployer)
//! create: temp files, backups, private directories, remote scratch names.
//!
//! A name someone else can predict is a name they can plant a symlink under first. Every
//! such name takes its random part from here: bytes from the system's random device
//! (`/dev/urandom`, on Linux, macOS and the BSDs alike), mixed through blake3 with
//! std's per-process random hash keys, the time, the pid and a counter. The mix means a
//! host without a usable `/dev/urandom` (a chroot, a container without `/dev`) still gets
//! names another user cannot guess, and that two names made in one process never repeat;
//! no caller has an error to handle.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::io::Read;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Distinguishes values made in the same process in the same nanosecond.
static COUNTER: AtomicU64 = AtomicU64::new(0);

/// `N` random bytes.
pub fn bytes<const N: usize>() -> [u8; N] {
    let mut h = blake3::Hasher::new();
    let mut device = [0u8; 32];
    if std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut device))
        .is_ok()
    {
        h.update(&device);
    }
    // std seeds these keys from the system's random source (getrandom, arc4random)
    // without a file to open; they hash nothing here but the counter.
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut keyed = RandomState::new().build_hasher();
    keyed.write_u64(n);
    h.update(&keyed.finish().to_le_bytes());
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    h.update(&nanos.to_le_bytes());
    h.update(&std::process::id().to_le_bytes());
    h.update(&n.to_le_bytes());
    let mut out = [0u8; N];
    h.finalize_xof().fill(&mut out);
    out
}

/// 16 random hex digits (64 bits), for a name.
pub fn tag() -> String {
    crate::hex::encode(&bytes::<8>())
}

/// `n` random characters from `alphabet` (which must not be empty; an empty one gives
/// an empty string), for names in another tool's style (Python's tempfile).
pub fn chars(n: usize, alphabet: &[u8]) -> String {
    let Some(len) = std::num::NonZeroUsize::new(alphabet.len()) else {
        return String::new();
    };
    let mut pool = [0u8; 64];
    let mut out = String::with_capacity(n);
    let mut i = pool.len();
    while out.len() < n {
        if i == pool.len() {
            pool = bytes::<64>();
            i = 0;
        }
        let b = pool.get(i).copied().unwrap_or(0);
        i += 1;
        // Rejection sampling keeps every character equally likely.
        let limit = 256 - 256 % len.get();
        if usize::from(b) < limit
            && let Some(c) = alphabet.get(usize::from(b) % len.get())
        {
            out.push(char::from(*c));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_are_hex_and_never_repeat() {
        let tags: std::collections::BTreeSet<String> = (0..10_000).map(|_| tag()).collect();
        assert_eq!(tags.len(), 10_000);
        assert!(
            tags.iter()
                .all(|t| t.len() == 16 && t.bytes().all(|b| b.is_ascii_hexdigit()))
        );
    }

    #[test]
    fn chars_come_from_the_alphabet() {
        let s = chars(1000, b"ab_");
        assert_eq!(s.len(), 1000);
        assert!(s.bytes().all(|b| b"ab_".contains(&b)));
        // Each character appears: 1000 draws from three never miss one in practice
        // (the chance is 3 * (2/3)^1000).
        assert!(s.contains('a') && s.contains('b') && s.contains('_'));
        assert_eq!(chars(5, b""), "");
    }
}
