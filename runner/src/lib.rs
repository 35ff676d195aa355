//! rustle-runner: the generic runner that carries a host's signed plan inside itself.
//!
//! A runner binary is built once per target triple; the packer writes each host's
//! payload into a copy of it. At start-up the runner finds that payload in its own
//! executable ([`locate`]), checks it ([`payload`], [`trust`]) and runs the plan
//! ([`exec`]) with the [`modules`], streaming [`events`] on stdout.
//!
//! The runner makes no network connection and links no async runtime or SSH code: it
//! must stay small, static and pure Rust so it links for any musl target with rustup alone.

pub mod atomic;
mod chainable;
pub mod cli;
pub(crate) mod ctlfiles;
pub(crate) mod deadline;
pub mod digest;
pub mod events;
pub mod exec;
pub mod exit;
pub mod facts;
pub(crate) mod filters;
pub mod fnmatch;
pub mod hex;
pub mod hostpattern;
pub mod install;
pub(crate) mod keywords;
pub mod lazyvars;
pub mod locate;
pub mod lookups;
pub mod modules;
pub(crate) mod passwd;
pub mod payload;
pub mod plan;
pub mod privilege;
mod pyformat;
mod pyliteral;
pub(crate) mod pyre;
pub mod random;
pub mod resolve;
pub mod tags;
pub mod template;
pub mod tree;
pub mod trust;
pub mod vault;
