//! The `cpo` application: the embedded pipeline and the CLI commands, as a
//! library so integration tests can drive them with their own backends.

pub mod audit_key;
pub mod commands;
pub mod embedded;
pub mod mail;
pub mod out_dir;
pub mod wiring;
