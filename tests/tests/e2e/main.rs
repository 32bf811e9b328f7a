//! End-to-end tests of the `opsync` binary.

mod certs;
mod config_errors;
mod daemon;
mod faults;
mod hostile;
mod live_pg;
mod nginx;
mod nightly;
mod stack;
mod sync_diff;
mod sync_verify;
mod verify;
