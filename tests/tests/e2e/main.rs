//! End-to-end tests of the `opsync` binary.
//!
//! Test code: unwraps, expects and prints are allowed crate-wide (see `tests/src/lib.rs`).
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod certs;
mod config_errors;
mod daemon;
mod faults;
mod hostile;
mod live_pg;
mod nginx;
mod nightly;
mod remote;
mod stack;
mod sync_diff;
mod sync_lock;
mod sync_verify;
mod verify;
