//! Errors of stack operations: each names the stack (or the engine) and says what to do.

use std::path::PathBuf;

use opsync_core::exit::{Exit, ToExit};
use opsync_core::process::ProcessError;

/// A stack operation that failed.
#[derive(Debug, thiserror::Error)]
pub enum StackError {
    #[error(
        "unknown stack {stack:?}: configured stacks are {known} (see [stacks.NAME] in opsync.toml)"
    )]
    UnknownStack { stack: String, known: String },

    #[error(
        "stack {stack}: invalid project name {project:?}: use lowercase letters, digits, '-' and '_'"
    )]
    BadProject { stack: String, project: String },

    #[error("stack {stack}: compose file {} not found: create it or set [stacks.{stack}] file", path.display())]
    ComposeFileMissing { stack: String, path: PathBuf },

    #[error("docker is not installed: install Debian's docker.io package")]
    NoDocker,

    #[error(
        "no compose tool found (tried {tried}): install Debian's docker-compose package or the \
         compose plugin, or set OPSYNC_COMPOSE"
    )]
    NoComposeTool { tried: String },

    #[error(
        "stack {stack}: pull failed, nothing was changed: {error}: check the registry and the image references, then retry"
    )]
    PullFailed {
        stack: String,
        error: Box<ProcessError>,
    },

    #[error(
        "cannot reach the docker engine at {host}: start dockerd or fix DOCKER_HOST ({message})"
    )]
    EngineUnreachable { host: String, message: String },

    #[error("stack {stack}: {error}")]
    Command {
        stack: String,
        error: Box<ProcessError>,
    },

    #[error("stack {stack}: cannot parse the output of `{command}`: {message}")]
    Parse {
        stack: String,
        command: String,
        message: String,
    },

    #[error("stack {stack}: {reason}")]
    Unhealthy { stack: String, reason: String },

    #[error(
        "stack {stack}: no earlier deployment recorded to roll back to (run `opsync stack update {stack}` first)"
    )]
    NoPreviousDeployment { stack: String },

    #[error(
        "stack {stack}: is stopped; an update would start it: run `opsync stack start {stack}` \
         first (or `opsync stack down {stack}` to deploy it afresh)"
    )]
    Stopped { stack: String },

    #[error(
        "stack {stack}: image {image} of the deployment from {time} is gone: pull it and tag it \
         {tag}, then retry"
    )]
    ImageGone {
        stack: String,
        image: String,
        time: String,
        tag: String,
    },

    #[error(
        "stack {stack}: update failed ({reason}) and the rollback failed too ({rollback}): \
         check `opsync stack status {stack}` and fix by hand"
    )]
    RollbackFailed {
        stack: String,
        reason: String,
        rollback: String,
    },

    #[error(
        "stack {stack}: another opsync run is changing this stack (lock {}): wait for it to \
         finish, then retry",
        path.display()
    )]
    Locked { stack: String, path: PathBuf },

    #[error("cannot {op} state file {}: {error}", path.display())]
    StateIo {
        op: &'static str,
        path: PathBuf,
        error: std::io::Error,
    },

    #[error("state file {} is not valid: {message}: move it away to start a new history", path.display())]
    StateParse { path: PathBuf, message: String },
}

impl ToExit for StackError {
    fn exit(&self) -> Exit {
        match self {
            StackError::UnknownStack { .. } => Exit::Usage,
            StackError::BadProject { .. } | StackError::ComposeFileMissing { .. } => Exit::Config,
            StackError::StateIo { .. } | StackError::StateParse { .. } => Exit::FileIo,
            StackError::Locked { .. } => Exit::Locked,
            _ => Exit::Failed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opsync_core::process::{Ended, Output};
    use std::time::Duration;

    #[test]
    fn exit_codes() {
        let stack = || "prod".to_string();
        for (e, exit) in [
            (
                StackError::UnknownStack {
                    stack: stack(),
                    known: String::new(),
                },
                Exit::Usage,
            ),
            (
                StackError::ComposeFileMissing {
                    stack: stack(),
                    path: "x".into(),
                },
                Exit::Config,
            ),
            (
                StackError::Locked {
                    stack: stack(),
                    path: "x".into(),
                },
                Exit::Locked,
            ),
            (StackError::NoDocker, Exit::Failed),
        ] {
            assert_eq!(e.exit(), exit, "{e}");
        }
    }

    #[test]
    fn every_message_is_one_lowercase_line_naming_what_to_do() {
        let run_failed = || {
            Box::new(ProcessError::Failed {
                command: "docker-compose pull".into(),
                output: Box::new(Output {
                    ended: Ended::Code(1),
                    stdout: "a\nb\n".into(),
                    stderr: "c\nmanifest unknown\n".into(),
                }),
            })
        };
        let errors = [
            StackError::UnknownStack {
                stack: "x".into(),
                known: "dev, prod".into(),
            },
            StackError::ComposeFileMissing {
                stack: "dev".into(),
                path: "/srv/dev-compose.yaml".into(),
            },
            StackError::NoDocker,
            StackError::NoComposeTool {
                tried: "`docker compose`".into(),
            },
            StackError::EngineUnreachable {
                host: "unix:///x.sock".into(),
                message: "Cannot connect".into(),
            },
            StackError::Command {
                stack: "prod".into(),
                error: Box::new(ProcessError::Timeout {
                    command: "docker-compose up -d".into(),
                    after: Duration::from_secs(600),
                }),
            },
            StackError::PullFailed {
                stack: "prod".into(),
                error: run_failed(),
            },
            StackError::Stopped {
                stack: "dev".into(),
            },
            StackError::NoPreviousDeployment {
                stack: "prod".into(),
            },
            StackError::RollbackFailed {
                stack: "prod".into(),
                reason: "service web is unhealthy".into(),
                rollback: "service web is unhealthy".into(),
            },
            StackError::Locked {
                stack: "prod".into(),
                path: "/var/lib/opsync/locks/stack-prod.lock".into(),
            },
        ];
        for e in errors {
            let m = e.to_string();
            assert!(!m.contains('\n'), "{m}");
            assert!(m.starts_with(|c: char| !c.is_uppercase()), "{m}");
            assert!(!m.ends_with('.'), "{m}");
        }
    }
}
