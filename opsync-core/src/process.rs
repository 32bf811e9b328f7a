//! Running external programs: the one place that builds a [`std::process::Command`].
//!
//! Everything opsync runs goes through [`Command`]: certbot, nginx and systemctl, docker and the
//! compose tool, the configured commands of jobs and the `opsync sync`/`opsync verify` children
//! of the nightly job. A command is a description (program, arguments, environment, working
//! folder) plus its limits (a timeout or deadline, a [`Cancel`] flag, the grace period between
//! SIGTERM and SIGKILL); how its output is handled is chosen by the method that runs it:
//!
//! - [`Command::output`] / [`Command::run`]: stdout and stderr captured in memory (up to
//!   [`CAPTURE_LIMIT`] bytes each) and logged line by line as they arrive;
//! - [`Command::stream_stdout`]: each stdout line handed to a callback while the child runs
//!   (the nightly job reads its children's JSON events this way); stderr passes through;
//! - [`Command::status`]: stdout goes to opsync's stderr (the journal), stderr passes through.
//!
//! Every child runs in its own process group with stdin from `/dev/null`, so a Ctrl-C on the
//! terminal reaches opsync only, and stopping a child stops what it started too: at the
//! deadline or on cancellation the group gets SIGTERM, and SIGKILL after the grace period. A
//! thread blocks in `wait` for the child; the caller's thread waits on a channel for the exit,
//! the output lines and the limits, so nothing polls with sleeps (a [`Cancel`] flag, set from a
//! signal handler, is looked at every [`CANCEL_CHECK`]).

use std::ffi::{OsStr, OsString};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use child::Sink;

/// Bytes of stdout (and of stderr) [`Command::output`] keeps; later lines are still logged.
pub const CAPTURE_LIMIT: usize = 16 << 20;
/// Default time between SIGTERM and SIGKILL.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(10);
/// How often a [`Cancel`] flag is looked at while a child runs.
pub const CANCEL_CHECK: Duration = Duration::from_millis(50);
/// How long output is still read after the child ended: a process it left running in the
/// background may keep the pipe open.
const DRAIN: Duration = Duration::from_secs(10);
/// Output lines read ahead of the consumer.
const QUEUE: usize = 256;

/// Set when a running job must stop its current step (shutdown grace exceeded, Ctrl-C). Jobs
/// check it between steps; [`Command`] checks it while a child runs and stops the child.
#[derive(Debug, Clone, Default)]
pub struct Cancel(Arc<AtomicBool>);

impl Cancel {
    pub fn new() -> Cancel {
        Cancel::default()
    }
    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst);
    }
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
    /// The flag itself, for `signal_hook::flag::register`.
    pub fn flag(&self) -> Arc<AtomicBool> {
        self.0.clone()
    }
}

/// How loudly a child's captured output is logged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Level {
    /// Queries (`docker inspect`, `nginx -t`, ...): debug.
    #[default]
    Quiet,
    /// Commands that change something (`compose pull`, `docker tag`, ...): info.
    Loud,
}

/// How a child ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// Exited with this code.
    Code(i32),
    /// Killed by this signal (not by us).
    Signal(i32),
    /// Stopped by us: the timeout or deadline passed.
    TimedOut,
    /// Stopped by us: the run was cancelled.
    Cancelled,
}

impl Ended {
    /// Exit code 0.
    pub fn success(self) -> bool {
        self == Ended::Code(0)
    }

    fn of(status: ExitStatus) -> Ended {
        match (status.code(), status.signal()) {
            (Some(c), _) => Ended::Code(c),
            (None, Some(s)) => Ended::Signal(s),
            (None, None) => Ended::Code(-1),
        }
    }
}

impl std::fmt::Display for Ended {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Ended::Code(c) => write!(f, "exit code {c}"),
            Ended::Signal(s) => write!(f, "killed by signal {s}"),
            Ended::TimedOut => f.write_str("stopped at its deadline"),
            Ended::Cancelled => f.write_str("stopped because the run was cancelled"),
        }
    }
}

/// What a finished child printed, and how it ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    pub ended: Ended,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    /// The usual reason of a failure: the last non-empty line of stderr, else of stdout.
    pub fn last_line(&self) -> Option<&str> {
        last_line(&self.stderr).or_else(|| last_line(&self.stdout))
    }
}

/// `s` as one word for a POSIX shell: as it is when it holds only characters no shell treats
/// specially, else in single quotes.
pub fn shell_quote(s: &str) -> std::borrow::Cow<'_, str> {
    let plain = |b: u8| b.is_ascii_alphanumeric() || b"/._-+=:,@%".contains(&b);
    if !s.is_empty() && s.bytes().all(plain) {
        s.into()
    } else {
        format!("'{}'", s.replace('\'', r"'\''")).into()
    }
}

/// The last non-empty line of `text`, trimmed.
pub fn last_line(text: &str) -> Option<&str> {
    text.lines().map(str::trim).rfind(|l| !l.is_empty())
}

/// A child that could not be run, or (from [`Command::run`]) did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    #[error("`{program}` not found: install it or set its path in the config")]
    NotFound { program: String },
    #[error("cannot start `{command}`: {source}")]
    Spawn {
        command: String,
        source: std::io::Error,
    },
    #[error("cannot wait for `{command}`: {source}")]
    Wait {
        command: String,
        source: std::io::Error,
    },
    #[error("empty command: write [\"program\", \"arg\", ...]")]
    Empty,
    #[error("`{command}` did not finish within {} s and was stopped", after.as_secs())]
    Timeout { command: String, after: Duration },
    #[error("`{command}` was stopped because the run was cancelled")]
    Cancelled { command: String },
    #[error("`{command}` failed ({}): {}", output.ended, output.last_line().unwrap_or("no output"))]
    Failed {
        command: String,
        /// Everything it printed, for callers that recognise known failures in it.
        output: Box<Output>,
    },
}

impl ProcessError {
    /// What the child printed, when it ran and failed.
    pub fn output(&self) -> Option<&Output> {
        match self {
            ProcessError::Failed { output, .. } => Some(output),
            _ => None,
        }
    }
}

/// One external command: what to run and its limits. Build it, then run it with
/// [`Command::run`], [`Command::output`], [`Command::stream_stdout`] or [`Command::status`].
#[derive(Debug, Clone)]
pub struct Command {
    program: PathBuf,
    args: Vec<OsString>,
    env: Vec<(OsString, OsString)>,
    cwd: Option<PathBuf>,
    timeout: Option<Duration>,
    deadline: Option<Instant>,
    cancel: Option<Cancel>,
    grace: Duration,
    level: Level,
    capture_limit: usize,
}

impl Command {
    /// A command running `program` (a path, or a name looked up on `PATH`), with no limits.
    pub fn new(program: impl AsRef<OsStr>) -> Command {
        Command {
            program: PathBuf::from(program.as_ref()),
            args: Vec::new(),
            env: Vec::new(),
            cwd: None,
            timeout: None,
            deadline: None,
            cancel: None,
            grace: DEFAULT_GRACE,
            level: Level::Quiet,
            capture_limit: CAPTURE_LIMIT,
        }
    }

    /// The command `argv[0] argv[1..]` of a config file's `["program", "arg", ...]`.
    pub fn from_argv<S: AsRef<OsStr>>(argv: &[S]) -> Result<Command, ProcessError> {
        let (program, args) = argv.split_first().ok_or(ProcessError::Empty)?;
        Ok(Command::new(program).args(args))
    }

    #[must_use]
    pub fn arg(mut self, a: impl AsRef<OsStr>) -> Command {
        self.args.push(a.as_ref().to_owned());
        self
    }

    #[must_use]
    pub fn args<I, S>(mut self, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    /// Adds `key=value` to the child's environment (which is opsync's otherwise).
    #[must_use]
    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Command {
        self.env
            .push((key.as_ref().to_owned(), value.as_ref().to_owned()));
        self
    }

    #[must_use]
    pub fn envs<I, K, V>(mut self, vars: I) -> Command
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<OsStr>,
        V: AsRef<OsStr>,
    {
        for (k, v) in vars {
            self = self.env(k, v);
        }
        self
    }

    /// The child's working folder (default: opsync's).
    #[must_use]
    pub fn current_dir(mut self, dir: impl AsRef<Path>) -> Command {
        self.cwd = Some(dir.as_ref().to_owned());
        self
    }

    /// Stops the child this long after it started.
    #[must_use]
    pub fn timeout(mut self, t: Duration) -> Command {
        self.timeout = Some(t);
        self
    }

    /// Stops the child at this instant (none: no deadline). With a timeout too, the earlier wins.
    #[must_use]
    pub fn deadline(mut self, at: Option<Instant>) -> Command {
        self.deadline = at;
        self
    }

    /// Stops the child when `cancel` is set (none: not cancellable).
    #[must_use]
    pub fn cancel(mut self, cancel: Option<&Cancel>) -> Command {
        self.cancel = cancel.cloned();
        self
    }

    /// Time between SIGTERM and SIGKILL when the child is stopped (default 10 s).
    #[must_use]
    pub fn grace(mut self, grace: Duration) -> Command {
        self.grace = grace;
        self
    }

    /// How captured output is logged (default: debug).
    #[must_use]
    pub fn level(mut self, level: Level) -> Command {
        self.level = level;
        self
    }

    /// Bytes of each stream [`Command::output`] keeps (default [`CAPTURE_LIMIT`]).
    #[must_use]
    pub fn capture_limit(mut self, bytes: usize) -> Command {
        self.capture_limit = bytes;
        self
    }

    /// The program as given.
    pub fn program(&self) -> &Path {
        &self.program
    }

    /// The command line as a shell user would type it, for messages and logs.
    pub fn display(&self) -> String {
        let mut s = shell_quote(&self.program.to_string_lossy()).into_owned();
        for a in &self.args {
            s.push(' ');
            s.push_str(&shell_quote(&a.to_string_lossy()));
        }
        s
    }

    /// Runs the child with stdout and stderr captured; any end (a failure, the deadline) is in
    /// [`Output::ended`]. Errors only when it cannot be started or waited for.
    pub fn output(&self) -> Result<Output, ProcessError> {
        self.execute(Sink::Capture, true)
    }

    /// Runs the child like [`Command::output`]; anything but exit code 0 is an error.
    pub fn run(&self) -> Result<Output, ProcessError> {
        let out = self.output()?;
        let command = self.display();
        match out.ended {
            Ended::Code(0) => Ok(out),
            Ended::TimedOut => Err(ProcessError::Timeout {
                command,
                after: self.timeout.unwrap_or_default(),
            }),
            Ended::Cancelled => Err(ProcessError::Cancelled { command }),
            Ended::Code(_) | Ended::Signal(_) => Err(ProcessError::Failed {
                command,
                output: Box::new(out),
            }),
        }
    }

    /// Runs the child and hands each line of its stdout (without the newline) to `on_line` as
    /// it arrives, also the lines printed before it was stopped; stderr passes through to
    /// opsync's stderr. Memory stays bounded whatever the child prints.
    pub fn stream_stdout(&self, on_line: &mut dyn FnMut(&[u8])) -> Result<Ended, ProcessError> {
        self.execute(Sink::Lines(on_line), false).map(|o| o.ended)
    }

    /// Runs the child with its stdout and stderr going to opsync's stderr (the journal).
    pub fn status(&self) -> Result<Ended, ProcessError> {
        self.execute(Sink::Stderr, false).map(|o| o.ended)
    }
}

mod child;
#[cfg(test)]
mod tests;
