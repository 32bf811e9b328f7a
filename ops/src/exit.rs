//! Exit codes. Where a code means the same as one of rsync's, it has rsync's number, so scripts
//! written for `rsync -a --delete` keep working.

use std::process::ExitCode;

/// How a command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub enum Exit {
    /// Everything done.
    Ok = 0,
    /// Bad options or bad paths on the command line (rsync: syntax or usage error).
    Usage = 1,
    /// Configuration file missing or invalid.
    Config = 2,
    /// `verify` found differences between the trees.
    Differences = 8,
    /// A job or external tool (certbot, nginx, docker) failed.
    Failed = 10,
    /// Error in file I/O on the top-level paths (rsync: error in file I/O).
    FileIo = 11,
    /// Stopped by SIGINT or SIGTERM (rsync: received SIGUSR1 or SIGINT).
    Signal = 20,
    /// Some files or attributes were not transferred (rsync: partial transfer due to error).
    Partial = 23,
    /// Some source files vanished during the run (rsync: partial transfer due to vanished source files).
    Vanished = 24,
    /// `--max-delete` stopped deletions (rsync: the --max-delete limit stopped deletions).
    MaxDelete = 25,
    /// The source is empty while the destination is not; refused (opsync only).
    EmptySource = 26,
    /// A lock is held by another run of the same job (opsync only).
    Locked = 27,
    /// Something needs attention (for example a certificate close to expiry) (opsync only).
    Attention = 28,
}

impl From<Exit> for ExitCode {
    fn from(e: Exit) -> ExitCode {
        ExitCode::from(e as u8)
    }
}
