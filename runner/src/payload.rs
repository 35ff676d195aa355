//! The payload format: the one contract between the packer and the runner.
//!
//! A payload is a fixed 152-byte header followed by the body:
//!
//! | offset | size | field                                                        |
//! |-------:|-----:|--------------------------------------------------------------|
//! |      0 |    8 | magic `RUSTLEPL`                                             |
//! |      8 |    2 | format version, little endian ([`FORMAT_VERSION`])           |
//! |     10 |    2 | flags, must be zero in version 1                             |
//! |     12 |    4 | reserved, must be zero                                       |
//! |     16 |    8 | body length in bytes, little endian                          |
//! |     24 |   32 | blake3 digest of the body: the payload's identity            |
//! |     56 |   32 | ed25519 public key of the signer                             |
//! |     88 |   64 | ed25519 signature of [`SIGNING_DOMAIN`] followed by bytes 0..88 |
//! |    152 |    n | body                                                         |
//!
//! The body (format version 2) is three zstd frames, so that any zstd reader sees the two
//! sections' content in order and skips the table:
//!
//! 1. a skippable frame (magic `0x184D2A52`, 16 bytes of content) holding the section
//!    table: the host section's length and the shared section's length, each a u64,
//!    little endian; they must add up to the rest of the body exactly;
//! 2. the host section: a zstd frame of the MessagePack encoding (named fields) of what is
//!    the host's own in a [`HostPlan`] (identity, modes, its variables, its plays, the
//!    run's magic variables, the controller's answers to its lookups);
//! 3. the shared section: a zstd frame of the MessagePack encoding of the [`Shared`] part,
//!    which every host running the same plays has alike. File contents are stored there
//!    content-addressed: a `blobs` list holds each distinct content once, and each file
//!    names its blob by index. The packer compresses this section once per set of plays
//!    and reuses the frame for every such host.
//!
//! The signature covers every header byte before it, so a changed version, length,
//! digest or key is caught as surely as a changed body. Nothing here refers to file
//! offsets: the payload is the same bytes wherever a packed binary carries it, and
//! survives `strip` re-laying the file out. The reader checks, in order: size, magic,
//! version, reserved bits, length, body digest, the digest the deployer expects, the
//! signer against the trusted keys, the signature, and only then reads the section
//! table and decompresses (never more than [`MAX_BODY_DECOMPRESSED`] bytes in all).
#![deny(missing_docs)]

use crate::plan::{HostFile, HostPlan, Play, Shared, Vars};
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::io::Read;

/// Magic bytes at the start of every payload.
pub const MAGIC: [u8; 8] = *b"RUSTLEPL";
/// The payload format version this build writes and reads.
pub const FORMAT_VERSION: u16 = 2;
/// Size of the fixed header.
pub const HEADER_LEN: usize = 152;
/// Prefix of every signed message, so a payload signature can never be mistaken for a
/// signature over anything else made with the same key.
pub const SIGNING_DOMAIN: &[u8] = b"rustle-deploy payload v1\0";
/// Upper bound on a decompressed body, so a hostile frame cannot exhaust memory.
pub const MAX_BODY_DECOMPRESSED: u64 = 1 << 30;

const SIGNED_LEN: usize = 88;

/// The magic of the skippable zstd frame that opens a body (zstd reserves
/// `0x184D2A50..=0x184D2A5F` for frames readers skip).
const SECTION_TABLE_MAGIC: u32 = 0x184D_2A52;
/// Bytes of the section table frame: magic, content size, two lengths.
const SECTION_TABLE_LEN: usize = 24;

/// A blake3 digest, shown as 64 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Digest(pub [u8; 32]);

impl Digest {
    /// The digest of `bytes`.
    pub fn of(bytes: &[u8]) -> Digest {
        Digest(*blake3::hash(bytes).as_bytes())
    }

    /// The digest of everything `r` yields, read through a small reused buffer: the
    /// runner hashes its own 3 MB file on every cached deploy, and reading it whole
    /// into fresh memory cost more than the hashing.
    pub fn of_reader(r: impl std::io::Read) -> std::io::Result<Digest> {
        let mut h = blake3::Hasher::new();
        h.update_reader(r)?;
        Ok(Digest(*h.finalize().as_bytes()))
    }

    /// Parses 64 hex digits.
    pub fn from_hex(s: &str) -> Option<Digest> {
        let bytes = crate::hex::decode(s.trim())?;
        Some(Digest(bytes.try_into().ok()?))
    }

    /// Lowercase hex.
    pub fn to_hex(&self) -> String {
        crate::hex::encode(&self.0)
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({})", self.to_hex())
    }
}

/// Why a payload was refused. Each variant is a distinct failure a test can name.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum PayloadError {
    /// Fewer bytes than a header, or than the header says the body has.
    #[error("payload is truncated: {have} bytes, expected {want}")]
    Truncated {
        /// Bytes present.
        have: u64,
        /// Bytes the header requires.
        want: u64,
    },
    /// More bytes than the header accounts for.
    #[error("payload has {extra} unexpected trailing bytes")]
    TrailingData {
        /// Bytes beyond the body.
        extra: u64,
    },
    /// The magic bytes are wrong: this is not a payload.
    #[error("not a rustle payload (bad magic bytes)")]
    BadMagic,
    /// A payload from a newer (or corrupted) packer.
    #[error(
        "unsupported payload format version {found} (this runner reads version {FORMAT_VERSION})"
    )]
    UnsupportedVersion {
        /// The version in the header.
        found: u16,
    },
    /// Flags or reserved bytes are not zero.
    #[error("payload header has reserved bits set (corrupt, or made by a newer packer)")]
    ReservedBits,
    /// The body does not hash to the digest in the header: it was altered or damaged.
    #[error("payload body is corrupt: digest {actual} does not match header digest {header}")]
    CorruptBody {
        /// The digest the header records.
        header: Digest,
        /// The digest of the body present.
        actual: Digest,
    },
    /// The payload is intact but is not the one the deployer meant to run.
    #[error("payload digest {actual} is not the expected {expected}")]
    UnexpectedDigest {
        /// What the deployer asked for (`--expect`).
        expected: Digest,
        /// What this payload is.
        actual: Digest,
    },
    /// Signed by a key that is not in the trust store.
    #[error("payload is signed by key {key}, which is not trusted here")]
    UntrustedKey {
        /// Hex of the signer's public key.
        key: String,
    },
    /// The signature does not verify.
    #[error("payload signature is invalid")]
    BadSignature,
    /// The signer's public key bytes are not a valid ed25519 point.
    #[error("payload signer key is malformed")]
    BadKey,
    /// The body does not decompress.
    #[error("payload body does not decompress: {0}")]
    Decompress(String),
    /// The decompressed body is not a plan this runner understands.
    #[error("payload body does not decode: {0}")]
    Decode(String),
    /// The body's section table is missing or does not match the body.
    #[error("payload body sections are malformed: {0}")]
    Sections(String),
}

impl PayloadError {
    /// True when the failure is about authenticity (digest or signature) rather than shape.
    pub fn is_trust_failure(&self) -> bool {
        matches!(
            self,
            PayloadError::UnexpectedDigest { .. }
                | PayloadError::UntrustedKey { .. }
                | PayloadError::BadSignature
                | PayloadError::BadKey
        )
    }
}

/// The parsed, not yet verified, header of a payload.
#[derive(Debug, Clone, PartialEq)]
pub struct Header {
    /// Format version.
    pub version: u16,
    /// Body length.
    pub body_len: u64,
    /// Digest of the body.
    pub digest: Digest,
    /// The signer's public key.
    pub signer: [u8; 32],
    /// The signature.
    pub signature: [u8; 64],
}

fn array<const N: usize>(bytes: &[u8], at: usize) -> [u8; N] {
    let mut out = [0u8; N];
    if let Some(src) = bytes.get(at..at + N) {
        out.copy_from_slice(src);
    }
    out
}

/// What a host section holds, borrowed for encoding (field names are the wire's).
#[derive(Serialize)]
struct HostSectionRef<'a> {
    deployment_id: &'a str,
    host: &'a str,
    created_at: u64,
    packer_version: &'a str,
    check_mode: bool,
    diff_mode: bool,
    host_vars: &'a Vars,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    group_by_vars: &'a BTreeMap<String, Vars>,
    plays: &'a [Play],
    magic: &'a Vars,
    controller_lookups: &'a [crate::plan::ControllerLookup],
}

/// What a host section holds, decoded.
#[derive(Deserialize)]
struct HostSection {
    deployment_id: String,
    host: String,
    created_at: u64,
    packer_version: String,
    check_mode: bool,
    diff_mode: bool,
    host_vars: Vars,
    #[serde(default)]
    group_by_vars: BTreeMap<String, Vars>,
    plays: Vec<Play>,
    #[serde(default)]
    magic: Vars,
    #[serde(default)]
    controller_lookups: Vec<crate::plan::ControllerLookup>,
}

/// A file in the shared section: its content is `blobs[blob]`.
#[derive(Serialize, Deserialize)]
struct WireFile {
    blob: u32,
    mode: Option<u32>,
}

/// The shared section, borrowed for encoding.
#[derive(Serialize)]
struct SharedSectionRef<'a> {
    blobs: Vec<&'a serde_bytes::Bytes>,
    files: BTreeMap<&'a str, WireFile>,
    library: &'a crate::plan::Library,
    play_vars: &'a [Vars],
    groups: &'a BTreeMap<String, Vec<String>>,
    hostvars: &'a BTreeMap<String, Vars>,
}

/// The shared section, decoded.
#[derive(Deserialize)]
struct SharedSection {
    blobs: Vec<serde_bytes::ByteBuf>,
    files: BTreeMap<String, WireFile>,
    #[serde(default)]
    library: crate::plan::Library,
    #[serde(default)]
    play_vars: Vec<Vars>,
    #[serde(default)]
    groups: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    hostvars: BTreeMap<String, Vars>,
}

/// Encodes what is the host's own in a plan: the (uncompressed) host section.
pub fn encode_host(plan: &HostPlan) -> Result<Vec<u8>, PayloadError> {
    let section = HostSectionRef {
        deployment_id: &plan.deployment_id,
        host: &plan.host,
        created_at: plan.created_at,
        packer_version: &plan.packer_version,
        check_mode: plan.check_mode,
        diff_mode: plan.diff_mode,
        host_vars: &plan.host_vars,
        group_by_vars: &plan.group_by_vars,
        plays: &plan.plays,
        magic: &plan.magic,
        controller_lookups: &plan.controller_lookups,
    };
    rmp_serde::to_vec_named(&section).map_err(|e| PayloadError::Decode(e.to_string()))
}

/// Encodes the shared part of a plan (the uncompressed shared section), each distinct
/// file content once.
pub fn encode_shared(shared: &Shared) -> Result<Vec<u8>, PayloadError> {
    let mut blobs: Vec<&serde_bytes::Bytes> = Vec::new();
    let mut index: BTreeMap<[u8; 32], u32> = BTreeMap::new();
    let mut files = BTreeMap::new();
    for (name, f) in &shared.files {
        let digest = *blake3::hash(&f.content).as_bytes();
        let next = u32::try_from(blobs.len())
            .map_err(|_| PayloadError::Decode("too many files".into()))?;
        let blob = *index.entry(digest).or_insert_with(|| {
            blobs.push(serde_bytes::Bytes::new(&f.content));
            next
        });
        files.insert(name.as_str(), WireFile { blob, mode: f.mode });
    }
    let section = SharedSectionRef {
        blobs,
        files,
        library: &shared.library,
        play_vars: &shared.play_vars,
        groups: &shared.groups,
        hostvars: &shared.hostvars,
    };
    rmp_serde::to_vec_named(&section).map_err(|e| PayloadError::Decode(e.to_string()))
}

/// The body of a payload: the section table, then the compressed host and shared
/// sections (zstd frames of [`encode_host`]'s and [`encode_shared`]'s output).
pub fn body(host_frame: &[u8], shared_frame: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(SECTION_TABLE_LEN + host_frame.len() + shared_frame.len());
    out.extend_from_slice(&SECTION_TABLE_MAGIC.to_le_bytes());
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&(host_frame.len() as u64).to_le_bytes());
    out.extend_from_slice(&(shared_frame.len() as u64).to_le_bytes());
    out.extend_from_slice(host_frame);
    out.extend_from_slice(shared_frame);
    out
}

/// Splits a body into its host and shared frames, checking the section table.
pub fn sections(body: &[u8]) -> Result<(&[u8], &[u8]), PayloadError> {
    let bad = |why: &str| PayloadError::Sections(why.to_string());
    if body.len() < SECTION_TABLE_LEN {
        return Err(bad("the body is shorter than its section table"));
    }
    if u32::from_le_bytes(array(body, 0)) != SECTION_TABLE_MAGIC
        || u32::from_le_bytes(array(body, 4)) != 16
    {
        return Err(bad("the body does not start with a section table"));
    }
    let host_len = u64::from_le_bytes(array(body, 8));
    let shared_len = u64::from_le_bytes(array(body, 16));
    let rest = (body.len() - SECTION_TABLE_LEN) as u64;
    if host_len.checked_add(shared_len) != Some(rest) {
        return Err(bad(&format!(
            "the table says {host_len} + {shared_len} bytes, the body has {rest}"
        )));
    }
    let split = SECTION_TABLE_LEN + host_len as usize;
    match (body.get(SECTION_TABLE_LEN..split), body.get(split..)) {
        (Some(host), Some(shared)) => Ok((host, shared)),
        _ => Err(bad("section lengths out of range")),
    }
}

/// Builds a signed payload around a body ([`body`]). Compression is the caller's so
/// that the packer can use a fast native compressor while the runner only ever
/// decompresses.
pub fn seal(body: &[u8], key: &SigningKey) -> Vec<u8> {
    let digest = Digest::of(body);
    let mut out = Vec::with_capacity(HEADER_LEN + body.len());
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&(body.len() as u64).to_le_bytes());
    out.extend_from_slice(&digest.0);
    out.extend_from_slice(key.verifying_key().as_bytes());
    let signature = key.sign(&signed_message(&out));
    out.extend_from_slice(&signature.to_bytes());
    out.extend_from_slice(body);
    out
}

fn signed_message(header_prefix: &[u8]) -> Vec<u8> {
    let mut msg = Vec::with_capacity(SIGNING_DOMAIN.len() + SIGNED_LEN);
    msg.extend_from_slice(SIGNING_DOMAIN);
    msg.extend_from_slice(header_prefix.get(..SIGNED_LEN).unwrap_or(header_prefix));
    msg
}

/// The body length a payload's header announces, after checking the header's shape
/// (magic, version, reserved bits): how much more to read of a payload that arrives on
/// a stream with more after it (`--payload -` with the controller channel). At most 4 GiB.
pub fn parse_header_len(header: &[u8]) -> Result<usize, PayloadError> {
    if header.len() < HEADER_LEN {
        return Err(PayloadError::Truncated {
            have: header.len() as u64,
            want: HEADER_LEN as u64,
        });
    }
    if array::<8>(header, 0) != MAGIC {
        return Err(PayloadError::BadMagic);
    }
    let version = u16::from_le_bytes(array(header, 8));
    if version != FORMAT_VERSION {
        return Err(PayloadError::UnsupportedVersion { found: version });
    }
    if u16::from_le_bytes(array(header, 10)) != 0 || u32::from_le_bytes(array(header, 12)) != 0 {
        return Err(PayloadError::ReservedBits);
    }
    let body_len = u64::from_le_bytes(array(header, 16));
    usize::try_from(body_len)
        .ok()
        .filter(|n| *n as u64 <= 1 << 32)
        .ok_or(PayloadError::Truncated {
            have: HEADER_LEN as u64,
            want: body_len.saturating_add(HEADER_LEN as u64),
        })
}

/// Parses and checks the header's shape and the body's integrity (size, magic,
/// version, reserved bits, length, digest). Authenticity is [`verify`]'s job.
pub fn parse(bytes: &[u8]) -> Result<(Header, &[u8]), PayloadError> {
    if bytes.len() < HEADER_LEN {
        return Err(PayloadError::Truncated {
            have: bytes.len() as u64,
            want: HEADER_LEN as u64,
        });
    }
    if array::<8>(bytes, 0) != MAGIC {
        return Err(PayloadError::BadMagic);
    }
    let version = u16::from_le_bytes(array(bytes, 8));
    if version != FORMAT_VERSION {
        return Err(PayloadError::UnsupportedVersion { found: version });
    }
    if u16::from_le_bytes(array(bytes, 10)) != 0 || u32::from_le_bytes(array(bytes, 12)) != 0 {
        return Err(PayloadError::ReservedBits);
    }
    let body_len = u64::from_le_bytes(array(bytes, 16));
    let have = (bytes.len() - HEADER_LEN) as u64;
    if have < body_len {
        return Err(PayloadError::Truncated {
            have: bytes.len() as u64,
            want: body_len.saturating_add(HEADER_LEN as u64),
        });
    }
    if have > body_len {
        return Err(PayloadError::TrailingData {
            extra: have - body_len,
        });
    }
    let header = Header {
        version,
        body_len,
        digest: Digest(array(bytes, 24)),
        signer: array(bytes, 56),
        signature: array(bytes, 88),
    };
    let body = bytes.get(HEADER_LEN..).unwrap_or_default();
    let actual = Digest::of(body);
    if actual != header.digest {
        return Err(PayloadError::CorruptBody {
            header: header.digest,
            actual,
        });
    }
    Ok((header, body))
}

/// Checks authenticity: the digest the deployer expects (when given) and the signature
/// by one of the trusted keys.
pub fn verify(
    bytes: &[u8],
    header: &Header,
    expect: Option<&Digest>,
    trusted: &[VerifyingKey],
) -> Result<(), PayloadError> {
    if let Some(expected) = expect
        && *expected != header.digest
    {
        return Err(PayloadError::UnexpectedDigest {
            expected: *expected,
            actual: header.digest,
        });
    }
    let Some(key) = trusted.iter().find(|k| k.as_bytes() == &header.signer) else {
        return Err(PayloadError::UntrustedKey {
            key: crate::hex::encode(&header.signer),
        });
    };
    let signature = Signature::from_bytes(&header.signature);
    // Strict verification refuses small-order (weak) keys and signature points, which
    // plain `verify` accepts: with a weak key in a trust store, a forged signature
    // would otherwise verify for any payload.
    key.verify_strict(&signed_message(bytes), &signature)
        .map_err(|_| PayloadError::BadSignature)
}

/// Decompresses one zstd frame, with at most `budget` bytes out.
fn decompress(frame: &[u8], budget: u64) -> Result<Vec<u8>, PayloadError> {
    let decoder = ruzstd::decoding::StreamingDecoder::new(frame)
        .map_err(|e| PayloadError::Decompress(e.to_string()))?;
    let mut plain = Vec::new();
    decoder
        .take(budget + 1)
        .read_to_end(&mut plain)
        .map_err(|e| PayloadError::Decompress(e.to_string()))?;
    if plain.len() as u64 > budget {
        return Err(PayloadError::Decompress(format!(
            "larger than the {MAX_BODY_DECOMPRESSED}-byte limit"
        )));
    }
    Ok(plain)
}

/// Decompresses and decodes a verified body.
pub fn decode_body(body: &[u8]) -> Result<HostPlan, PayloadError> {
    let (host_frame, shared_frame) = sections(body)?;
    let host_plain = decompress(host_frame, MAX_BODY_DECOMPRESSED)?;
    let shared_plain = decompress(
        shared_frame,
        MAX_BODY_DECOMPRESSED - host_plain.len() as u64,
    )?;
    let host: HostSection =
        rmp_serde::from_slice(&host_plain).map_err(|e| PayloadError::Decode(e.to_string()))?;
    let wire: SharedSection =
        rmp_serde::from_slice(&shared_plain).map_err(|e| PayloadError::Decode(e.to_string()))?;
    let mut files = BTreeMap::new();
    for (name, f) in wire.files {
        let Some(blob) = wire.blobs.get(f.blob as usize) else {
            return Err(PayloadError::Decode(format!(
                "file '{name}' names blob {} of {}",
                f.blob,
                wire.blobs.len()
            )));
        };
        files.insert(
            name,
            HostFile {
                content: blob.to_vec(),
                mode: f.mode,
            },
        );
    }
    Ok(HostPlan {
        deployment_id: host.deployment_id,
        host: host.host,
        created_at: host.created_at,
        packer_version: host.packer_version,
        check_mode: host.check_mode,
        diff_mode: host.diff_mode,
        host_vars: host.host_vars,
        group_by_vars: host.group_by_vars,
        plays: host.plays,
        magic: host.magic,
        controller_lookups: host.controller_lookups,
        shared: std::sync::Arc::new(Shared {
            files,
            library: wire.library,
            play_vars: wire.play_vars,
            groups: wire.groups,
            hostvars: wire.hostvars,
        }),
    })
}

/// Everything a runner does with a payload before running it: parse, verify, decode.
pub fn open(
    bytes: &[u8],
    expect: Option<&Digest>,
    trusted: &[VerifyingKey],
) -> Result<(Digest, HostPlan), PayloadError> {
    let (header, body) = parse(bytes)?;
    verify(bytes, &header, expect, trusted)?;
    let plan = decode_body(body)?;
    Ok((header.digest, plan))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{HostFile, HostPlan, Play, Shared, Task};
    use std::sync::Arc;

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32])
    }

    fn sample_plan() -> HostPlan {
        let mut args = serde_json::Map::new();
        args.insert("msg".into(), "hello {{ inventory_hostname }}".into());
        HostPlan {
            deployment_id: "d1".into(),
            host: "web1".into(),
            created_at: 1,
            packer_version: "0.1.0".into(),
            check_mode: false,
            diff_mode: false,
            host_vars: serde_json::Map::new(),
            group_by_vars: BTreeMap::from([(
                "os_Debian".to_string(),
                serde_json::Map::from_iter([("pkg".to_string(), "apt".into())]),
            )]),
            plays: vec![Play {
                name: "p".into(),
                tasks: vec![Task {
                    module: "debug".into(),
                    args,
                    ..Task::default()
                }],
                ..Play::default()
            }],
            magic: serde_json::Map::new(),
            // Controller answers travel in the signed payload like the rest.
            controller_lookups: vec![crate::plan::ControllerLookup {
                lookup: "pipe".into(),
                terms: serde_json::json!(["git rev-parse HEAD"]),
                options: serde_json::Map::new(),
                values: Some(vec!["0123abc".into()]),
                error: None,
                error_class: None,
            }],
            shared: Arc::new(Shared {
                files: [
                    ("a.txt", b"same bytes".to_vec()),
                    ("/ctl/roles/r/files/b.txt", b"same bytes".to_vec()),
                    ("c.bin", vec![0, 159, 146, 150]),
                ]
                .into_iter()
                .map(|(n, c)| {
                    (
                        n.to_string(),
                        HostFile {
                            content: c,
                            mode: Some(0o644),
                        },
                    )
                })
                .collect(),
                play_vars: vec![
                    serde_json::json!({"ansible_play_hosts": ["web1"]})
                        .as_object()
                        .cloned()
                        .unwrap(),
                ],
                groups: [("all".to_string(), vec!["web1".to_string()])].into(),
                hostvars: Default::default(),
                library: crate::plan::Library {
                    tasks: [(
                        "/ctl/roles/r/tasks/a.yml".to_string(),
                        crate::plan::Parsed::Ok(vec![Task {
                            module: "debug".into(),
                            ..Task::default()
                        }]),
                    )]
                    .into(),
                    vars: [(
                        "/ctl/roles/r/vars/RedHat.yml".to_string(),
                        crate::plan::Parsed::Refused("RedHat.yml:3: `x` is not supported".into()),
                    )]
                    .into(),
                    ..Default::default()
                },
            }),
        }
    }

    fn frames(plan: &HostPlan) -> (Vec<u8>, Vec<u8>) {
        let host = zstd::encode_all(&encode_host(plan).unwrap()[..], 3).unwrap();
        let shared = zstd::encode_all(&encode_shared(&plan.shared).unwrap()[..], 3).unwrap();
        (host, shared)
    }

    fn sealed(plan: &HostPlan, k: &SigningKey) -> Vec<u8> {
        let (host, shared) = frames(plan);
        seal(&body(&host, &shared), k)
    }

    /// One `check(bytes, expected error)` helper so every rejection test reads alike.
    fn check(bytes: &[u8], expect: Option<&Digest>, want: impl Fn(&PayloadError) -> bool) {
        let err = open(bytes, expect, &[key(1).verifying_key()]).unwrap_err();
        assert!(want(&err), "unexpected error: {err:?}");
    }

    #[test]
    fn round_trip() {
        let plan = sample_plan();
        let bytes = sealed(&plan, &key(1));
        let (digest, back) = open(&bytes, None, &[key(1).verifying_key()]).unwrap();
        assert_eq!(back, plan);
        let (_, again) = open(&bytes, Some(&digest), &[key(1).verifying_key()]).unwrap();
        assert_eq!(again, plan);
    }

    #[test]
    fn every_flipped_bit_is_refused() {
        let bytes = sealed(&sample_plan(), &key(1));
        for i in 0..bytes.len() {
            for bit in 0..8 {
                let mut b = bytes.clone();
                b[i] ^= 1 << bit;
                assert!(
                    open(&b, None, &[key(1).verifying_key()]).is_err(),
                    "flip of bit {bit} at byte {i} was accepted"
                );
            }
        }
    }

    #[test]
    fn flipped_body_byte_is_corrupt_body() {
        let mut b = sealed(&sample_plan(), &key(1));
        let last = b.len() - 1;
        b[last] ^= 0x40;
        check(&b, None, |e| matches!(e, PayloadError::CorruptBody { .. }));
    }

    #[test]
    fn flipped_signature_byte_is_bad_signature() {
        let mut b = sealed(&sample_plan(), &key(1));
        b[100] ^= 1;
        check(&b, None, |e| *e == PayloadError::BadSignature);
    }

    #[test]
    fn flipped_digest_byte_is_corrupt_body() {
        let mut b = sealed(&sample_plan(), &key(1));
        b[30] ^= 1;
        check(&b, None, |e| matches!(e, PayloadError::CorruptBody { .. }));
    }

    #[test]
    fn truncated_is_refused() {
        let b = sealed(&sample_plan(), &key(1));
        check(&b[..b.len() - 1], None, |e| {
            matches!(e, PayloadError::Truncated { .. })
        });
        check(&b[..20], None, |e| {
            matches!(e, PayloadError::Truncated { .. })
        });
        check(&[], None, |e| matches!(e, PayloadError::Truncated { .. }));
    }

    #[test]
    fn trailing_bytes_are_refused() {
        let mut b = sealed(&sample_plan(), &key(1));
        b.push(0);
        check(&b, None, |e| *e == PayloadError::TrailingData { extra: 1 });
    }

    #[test]
    fn wrong_key_is_untrusted() {
        let b = sealed(&sample_plan(), &key(2));
        check(&b, None, |e| matches!(e, PayloadError::UntrustedKey { .. }));
    }

    #[test]
    fn swapped_signer_key_is_refused() {
        // An attacker who re-labels the payload with a trusted key's bytes but cannot
        // sign with it must fail the signature check.
        let mut b = sealed(&sample_plan(), &key(2));
        let trusted = key(1).verifying_key();
        b[56..88].copy_from_slice(trusted.as_bytes());
        check(&b, None, |e| *e == PayloadError::BadSignature);
    }

    #[test]
    fn a_weak_key_in_the_trust_store_verifies_no_forgery() {
        // The identity point is a valid encoding of a small-order public key. Against
        // it, the "signature" R = identity, s = 0 satisfies the cofactorless equation
        // [s]B = R + [k]A for every message, so plain `verify` accepts it for any
        // payload: a trust store holding such a key (by mistake or by an attacker's
        // hand) would let anyone sign. Strict verification refuses it.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        let weak = VerifyingKey::from_bytes(&identity).unwrap();
        let mut b = sealed(&sample_plan(), &key(1));
        b[56..88].copy_from_slice(&identity);
        let mut forged = [0u8; 64];
        forged[..32].copy_from_slice(&identity);
        b[88..152].copy_from_slice(&forged);
        let err = open(&b, None, &[weak]).unwrap_err();
        assert_eq!(err, PayloadError::BadSignature);
    }

    #[test]
    fn unknown_version_is_refused() {
        let mut b = sealed(&sample_plan(), &key(1));
        for old_or_new in [1u16, 3] {
            b[8..10].copy_from_slice(&old_or_new.to_le_bytes());
            check(&b, None, |e| {
                *e == PayloadError::UnsupportedVersion { found: old_or_new }
            });
        }
    }

    #[test]
    fn bad_magic_is_refused() {
        let mut b = sealed(&sample_plan(), &key(1));
        b[0] = b'X';
        check(&b, None, |e| *e == PayloadError::BadMagic);
    }

    #[test]
    fn reserved_bits_are_refused() {
        let mut b = sealed(&sample_plan(), &key(1));
        b[12] = 1;
        check(&b, None, |e| *e == PayloadError::ReservedBits);
    }

    #[test]
    fn unexpected_digest_is_refused() {
        let b = sealed(&sample_plan(), &key(1));
        let other = Digest::of(b"something else");
        check(&b, Some(&other), |e| {
            matches!(e, PayloadError::UnexpectedDigest { .. })
        });
    }

    #[test]
    fn signed_garbage_body_is_a_decode_error_not_a_panic() {
        let (host, shared) = frames(&sample_plan());
        let garbage = zstd::encode_all(&b"not msgpack"[..], 1).unwrap();
        let b = seal(&body(&garbage, &shared), &key(1));
        check(&b, None, |e| matches!(e, PayloadError::Decode(_)));
        let b = seal(&body(&host, &garbage), &key(1));
        check(&b, None, |e| matches!(e, PayloadError::Decode(_)));
        let b = seal(&body(b"not zstd", &shared), &key(1));
        check(&b, None, |e| matches!(e, PayloadError::Decompress(_)));
        // A version 1 body (one zstd frame, no section table), signed: refused by its shape.
        let b = seal(&host, &key(1));
        check(&b, None, |e| matches!(e, PayloadError::Sections(_)));
    }

    #[test]
    fn section_table_must_match_the_body() {
        let (host, shared) = frames(&sample_plan());
        let good = body(&host, &shared);
        // Lengths that do not add up to the body, either way, and lengths that overflow.
        for (at, value) in [(8, host.len() as u64 + 1), (16, 0), (8, u64::MAX)] {
            let mut b = good.clone();
            b[at..at + 8].copy_from_slice(&value.to_le_bytes());
            check(&seal(&b, &key(1)), None, |e| {
                matches!(e, PayloadError::Sections(_))
            });
        }
        check(&seal(&good[..10], &key(1)), None, |e| {
            matches!(e, PayloadError::Sections(_))
        });
        // Any zstd reader sees the two sections' content in order, the table skipped.
        let plain = zstd::decode_all(&good[..]).unwrap();
        let mut want = encode_host(&sample_plan()).unwrap();
        want.extend(encode_shared(&sample_plan().shared).unwrap());
        assert_eq!(plain, want);
    }

    #[test]
    fn identical_file_contents_are_stored_once() {
        let plan = sample_plan();
        let raw = encode_shared(&plan.shared).unwrap();
        let needle = b"same bytes";
        let count = raw.windows(needle.len()).filter(|w| w == needle).count();
        assert_eq!(
            count, 1,
            "two files with the same bytes must share one blob"
        );
        let (_, back) = open(&sealed(&plan, &key(1)), None, &[key(1).verifying_key()]).unwrap();
        assert_eq!(
            back.shared.files["/ctl/roles/r/files/b.txt"].content,
            needle
        );
        assert_eq!(back.shared.files["a.txt"].content, needle);
    }

    #[test]
    fn a_file_naming_a_missing_blob_is_a_decode_error() {
        #[derive(serde::Serialize)]
        struct Bad {
            blobs: Vec<serde_bytes::ByteBuf>,
            files: BTreeMap<String, WireFile>,
        }
        let bad = Bad {
            blobs: vec![],
            files: [(
                "x".to_string(),
                WireFile {
                    blob: 3,
                    mode: None,
                },
            )]
            .into(),
        };
        let shared = zstd::encode_all(&rmp_serde::to_vec_named(&bad).unwrap()[..], 1).unwrap();
        let (host, _) = frames(&sample_plan());
        check(
            &seal(&body(&host, &shared), &key(1)),
            None,
            |e| matches!(e, PayloadError::Decode(m) if m.contains("blob 3")),
        );
    }
}
