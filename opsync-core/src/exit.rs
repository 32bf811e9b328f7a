//! Exit codes: the [`Exit`] values, their one severity order, their names in state and logs, and
//! the one mapping from errors to them ([`ToExit`]). Where a code means the same as one of
//! rsync's, it has rsync's number, so scripts written for `rsync -a --delete` keep working.

use std::process::ExitCode;

/// How a command, a job or one of its steps ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
    /// The data stream between the two ends of a remote sync broke or is not opsync's (rsync:
    /// error in rsync protocol data stream).
    Protocol = 12,
    /// The remote shell could not be started (rsync: error in IPC code).
    Ipc = 14,
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
    /// The remote shell (ssh) failed: could not connect or log in (rsync: 255, ssh's own code).
    RemoteShell = 255,
}

impl Exit {
    /// The process exit code.
    pub fn code(self) -> u8 {
        self as u8
    }

    /// How bad the result is, for "the worst wins" (a run with several outcomes, a job's steps).
    /// rsync's order where rsync has the codes: a signal (20) outweighs everything, an error
    /// (23) a `--max-delete` stop (25), which outweighs vanished files (24). Around them: a
    /// failure of the whole run outweighs what one of its files did, and needing attention is
    /// the mildest result that is not ok.
    pub fn severity(self) -> u8 {
        match self {
            Exit::Ok => 0,
            Exit::Attention => 1,
            Exit::Vanished => 2,
            Exit::MaxDelete => 3,
            Exit::Partial => 4,
            Exit::Differences => 5,
            Exit::EmptySource => 6,
            Exit::Locked => 7,
            Exit::Usage
            | Exit::Config
            | Exit::FileIo
            | Exit::Failed
            | Exit::Protocol
            | Exit::Ipc
            | Exit::RemoteShell => 8,
            Exit::Signal => 9,
        }
    }

    /// The worse of two results (the first when they weigh the same).
    pub fn worst(self, other: Exit) -> Exit {
        if other.severity() > self.severity() {
            other
        } else {
            self
        }
    }

    /// The name of a result in state, status and logs.
    pub fn name(self) -> &'static str {
        match self {
            Exit::Ok => "ok",
            Exit::Partial => "partial",
            Exit::Vanished => "vanished",
            Exit::MaxDelete => "max-delete",
            Exit::EmptySource => "empty-source",
            Exit::Locked => "locked",
            Exit::Attention => "attention",
            Exit::Signal => "cancelled",
            Exit::Differences => "differences",
            Exit::Config => "config",
            Exit::Protocol => "protocol",
            Exit::Ipc | Exit::RemoteShell => "remote-shell",
            Exit::Usage | Exit::FileIo | Exit::Failed => "failed",
        }
    }

    /// What the exit code of an `opsync sync` or `opsync verify` child (or of the configured
    /// command replacing it) means for the job running it: the codes of a result of the copy
    /// keep their meaning, any other code is a failed step.
    pub fn of_child(code: i32) -> Exit {
        match code {
            0 => Exit::Ok,
            8 => Exit::Differences,
            20 => Exit::Signal,
            23 => Exit::Partial,
            24 => Exit::Vanished,
            25 => Exit::MaxDelete,
            26 => Exit::EmptySource,
            _ => Exit::Failed,
        }
    }
}

impl Exit {
    /// The exit with process code `code`, if opsync has one.
    pub fn from_code(code: u8) -> Option<Exit> {
        ALL_EXITS.iter().copied().find(|e| e.code() == code)
    }
}

/// Every exit.
const ALL_EXITS: [Exit; 16] = [
    Exit::Ok,
    Exit::Usage,
    Exit::Config,
    Exit::Differences,
    Exit::Failed,
    Exit::FileIo,
    Exit::Protocol,
    Exit::Ipc,
    Exit::Signal,
    Exit::Partial,
    Exit::Vanished,
    Exit::MaxDelete,
    Exit::EmptySource,
    Exit::Locked,
    Exit::Attention,
    Exit::RemoteShell,
];

impl From<Exit> for ExitCode {
    fn from(e: Exit) -> ExitCode {
        ExitCode::from(e.code())
    }
}

impl From<sync_engine::Status> for Exit {
    fn from(s: sync_engine::Status) -> Exit {
        use sync_engine::Status;
        match s {
            Status::Ok => Exit::Ok,
            Status::Vanished => Exit::Vanished,
            Status::DeleteLimit => Exit::MaxDelete,
            Status::Partial => Exit::Partial,
            Status::Cancelled => Exit::Signal,
        }
    }
}

/// The exit code a typed error ends a command with. Each error type says it here or next to
/// its definition, so the command modules never choose a code for an error themselves.
pub trait ToExit {
    fn exit(&self) -> Exit;
}

impl ToExit for sync_engine::Error {
    fn exit(&self) -> Exit {
        use sync_engine::Error;
        match self {
            Error::EmptySource { .. } => Exit::EmptySource,
            // Another sync holds DST: as a job whose lock is held.
            Error::Locked { .. } => Exit::Locked,
            Error::Io { .. } | Error::Threads(_) => Exit::FileIo,
            _ => Exit::Usage,
        }
    }
}

impl ToExit for crate::config::ConfigError {
    fn exit(&self) -> Exit {
        Exit::Config
    }
}

impl ToExit for crate::lock::LockError {
    fn exit(&self) -> Exit {
        match self {
            crate::lock::LockError::Held { .. } => Exit::Locked,
            crate::lock::LockError::Io { .. } => Exit::FileIo,
        }
    }
}

impl ToExit for crate::fs::WriteError {
    fn exit(&self) -> Exit {
        Exit::FileIo
    }
}

impl ToExit for crate::state::StateError {
    fn exit(&self) -> Exit {
        Exit::FileIo
    }
}

impl ToExit for crate::process::ProcessError {
    fn exit(&self) -> Exit {
        Exit::Failed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [Exit; 13] = [
        Exit::Ok,
        Exit::Usage,
        Exit::Config,
        Exit::Differences,
        Exit::Failed,
        Exit::FileIo,
        Exit::Signal,
        Exit::Partial,
        Exit::Vanished,
        Exit::MaxDelete,
        Exit::EmptySource,
        Exit::Locked,
        Exit::Attention,
    ];

    #[test]
    fn rsyncs_order_signal_then_error_then_max_delete_then_vanished() {
        let order = [
            Exit::Signal,
            Exit::Partial,
            Exit::MaxDelete,
            Exit::Vanished,
            Exit::Ok,
        ];
        for w in order.windows(2) {
            assert!(w[0].severity() > w[1].severity(), "{:?} {:?}", w[0], w[1]);
            assert_eq!(w[0].worst(w[1]), w[0]);
            assert_eq!(w[1].worst(w[0]), w[0]);
        }
        for e in ALL {
            assert_eq!(Exit::Signal.worst(e), Exit::Signal, "{e:?}");
            assert_eq!(e.worst(Exit::Ok), e, "{e:?}");
        }
    }

    #[test]
    fn the_engines_status_order_is_the_same() {
        use sync_engine::Status;
        let statuses = [
            Status::Ok,
            Status::Vanished,
            Status::DeleteLimit,
            Status::Partial,
            Status::Cancelled,
        ];
        for a in statuses {
            for b in statuses {
                assert_eq!(
                    a.cmp(&b),
                    Exit::from(a).severity().cmp(&Exit::from(b).severity()),
                    "{a:?} {b:?}"
                );
            }
        }
    }

    #[test]
    fn child_exit_codes() {
        for e in ALL {
            let expected = match e {
                Exit::Usage | Exit::Config | Exit::FileIo | Exit::Locked | Exit::Attention => {
                    Exit::Failed
                }
                e => e,
            };
            assert_eq!(Exit::of_child(i32::from(e.code())), expected, "{e:?}");
        }
        assert_eq!(Exit::of_child(-1), Exit::Failed);
        assert_eq!(Exit::of_child(255), Exit::Failed);
    }
}
