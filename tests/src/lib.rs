//! Shared helpers for the end-to-end and differential tests: locating the `opsync` binary and
//! requiring external programs (a missing one fails the test with a message, never skips it).
//!
//! Test code: it may unwrap, expect and print (a panic with the command's output is the failure
//! report), so the workspace's `unwrap_used`, `expect_used`, `print_stdout` and `print_stderr`
//! lints are allowed for the whole crate.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![allow(clippy::print_stdout, clippy::print_stderr)]

pub mod docker;

use std::path::PathBuf;
use std::process::Command;

/// Path of the `opsync` binary built from this workspace (`target/<profile>/opsync`).
///
/// `scripts/test` builds it (`cargo build --workspace --bins`) before running the tests.
pub fn opsync_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("current test executable");
    // target/<profile>/deps/e2e-HASH -> target/<profile>/opsync
    let profile_dir = exe
        .parent()
        .and_then(|d| d.parent())
        .expect("target/<profile> folder");
    let bin = profile_dir.join("opsync");
    assert!(
        bin.exists(),
        "{} is missing: build it first with `cargo build --workspace --bins` (scripts/test does)",
        bin.display()
    );
    bin
}

/// A `Command` for the built `opsync` binary.
pub fn opsync() -> Command {
    Command::new(opsync_bin())
}

/// Fails the calling test with a clear message when `program` is not on PATH.
pub fn require_program(program: &str, debian_package: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        let candidate = dir.join(program);
        if candidate.is_file() {
            return candidate;
        }
    }
    panic!(
        "`{program}` is not installed: this test needs it (Debian package `{debian_package}`; \
         scripts/test installs it when run as root)"
    );
}

pub mod acme;
pub mod background;
pub mod faults;
pub mod freezer;
pub mod nginx;
pub mod pg;
pub mod pki;
pub mod run;
pub mod snapshot;
pub mod sshd;
pub mod tree;
