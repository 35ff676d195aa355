//! Text encodings of bytes: lowercase hex for digests and keys (a few lines, not worth a
//! dependency), and standard base64 (the `base64` crate) with Python's decoding rules.

use base64::Engine as _;

/// Encodes bytes as lowercase hex.
pub fn encode(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(
            DIGITS.get(usize::from(b >> 4)).copied().unwrap_or(b'0'),
        ));
        s.push(char::from(
            DIGITS.get(usize::from(b & 0xf)).copied().unwrap_or(b'0'),
        ));
    }
    s
}

/// Decodes hex (either case); `None` on odd length or a non-hex digit.
pub fn decode(s: &str) -> Option<Vec<u8>> {
    fn nibble(c: u8) -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            b'A'..=b'F' => Some(c - b'A' + 10),
            _ => None,
        }
    }
    let s = s.as_bytes();
    if !s.len().is_multiple_of(2) {
        return None;
    }
    s.chunks_exact(2)
        .map(|pair| match pair {
            [hi, lo] => Some(nibble(*hi)? << 4 | nibble(*lo)?),
            _ => None,
        })
        .collect()
}

/// Standard base64 with padding (what Python's `base64.b64encode` gives).
pub fn base64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Python's `base64.b64decode` without `validate`: characters outside the alphabet are
/// discarded, the first `=` ends the data, and a last group of 2 or 3 characters needs
/// its padding. The error is Python's message.
pub fn base64_decode(text: &str) -> Result<Vec<u8>, &'static str> {
    const LENIENT: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        base64::engine::GeneralPurposeConfig::new()
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::RequireNone)
            .with_decode_allow_trailing_bits(true),
    );
    let data: String = text
        .chars()
        .take_while(|&c| c != '=')
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '/'))
        .collect();
    match data.len() % 4 {
        1 => {
            return Err(
                "Invalid base64-encoded string: number of data characters cannot be 1 more than a multiple of 4",
            );
        }
        0 => {}
        rest => {
            let padded = text.trim_end().len() - text.trim_end().trim_end_matches('=').len();
            if padded + rest < 4 {
                return Err("Incorrect padding");
            }
        }
    }
    LENIENT
        .decode(data)
        .map_err(|_| "Invalid base64-encoded string")
}

#[cfg(test)]
mod tests {
    #[test]
    fn round_trip() {
        let bytes = [0u8, 1, 0xab, 0xff];
        assert_eq!(super::encode(&bytes), "0001abff");
        assert_eq!(super::decode("0001ABff").unwrap(), bytes);
        assert!(super::decode("abc").is_none());
        assert!(super::decode("zz").is_none());
    }

    #[test]
    fn base64_matches_python() {
        assert_eq!(super::base64(b"ab"), "YWI=");
        assert_eq!(super::base64(b""), "");
        assert_eq!(super::base64_decode("YW\nI=").unwrap(), b"ab");
        // Python ignores the bits a last partial group leaves over ("YWJ=" is "ab").
        assert_eq!(super::base64_decode("YWJ=").unwrap(), b"ab");
        assert_eq!(
            super::base64_decode("YWI").unwrap_err(),
            "Incorrect padding"
        );
        assert!(
            super::base64_decode("YWIxY")
                .unwrap_err()
                .contains("1 more than")
        );
    }
}
