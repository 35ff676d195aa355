//! rustle-deploy: turns a plan and an inventory into packed, signed runners and runs them.
//!
//! The flow is plan first, then act: [`plan`] and [`inventory`] load the inputs,
//! [`pack`] cuts and seals one payload per host, [`elf`] embeds it in a prebuilt
//! runner found by [`runners`] (or built by [`custom`] for plans with Rust modules), and
//! [`deploy`] carries the deployment out.

pub mod adhoc;
pub mod ansible_modules;
pub mod ansible_yaml;
pub mod channel;
pub mod cli;
pub mod commands;
pub mod config;
pub mod custom;
pub mod delegate;
pub mod deploy;
pub mod display;
pub mod elf;
pub mod hostvars;
pub mod inventory;
pub mod keys;
pub mod known_hosts;
pub mod lookups;
pub mod macho;
pub mod pack;
pub mod plan;
pub mod playbook;
pub mod remote;
pub mod runners;
pub mod ssh;
pub mod sshconfig;
pub mod sshexec;
pub mod target;
pub mod vault;
