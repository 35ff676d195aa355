//! The runner's exit codes, documented in `docs/exit-codes.md`; the deployer reads them.

/// Every task ran; none failed (ignored failures included).
pub const OK: i32 = 0;
/// The runner itself failed (could not write its report, read its executable, ...).
pub const INTERNAL: i32 = 1;
/// At least one task failed and the host stopped.
pub const TASKS_FAILED: i32 = 2;
/// Bad command line.
pub const USAGE: i32 = 64;
/// No payload, or a payload that is malformed, truncated or corrupt. No task ran.
pub const PAYLOAD_INVALID: i32 = 65;
/// The payload is not the one the deployer expected (`--expect`). No task ran.
pub const PAYLOAD_UNEXPECTED: i32 = 66;
/// The payload's signature is invalid or its signer is not trusted. No task ran.
pub const PAYLOAD_UNTRUSTED: i32 = 67;
/// `rollback` found no earlier good release.
pub const NOTHING_TO_ROLL_BACK: i32 = 68;
/// The state root's `state.json` cannot be read as a deployment record. No task ran.
pub const STATE_UNREADABLE: i32 = 74;
/// Another deploy (or rollback, or cleanup) holds the state root's lock. No task ran.
pub const BUSY: i32 = 75;
