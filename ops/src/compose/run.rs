//! Running `docker` and the compose tool with a timeout. Every line the command prints goes to
//! the log (info for commands that change something, debug for queries); the caller gets the
//! whole output back.
//!
//! The child runs in its own process group so a timeout kills it and everything it started.
//! Waiting needs no polling: a thread waits for the child and the caller waits on a channel
//! with the timeout.

use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::CommandExt;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

/// One external command: program, arguments, extra environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cmd {
    pub program: String,
    pub args: Vec<String>,
    pub envs: Vec<(String, String)>,
}

impl Cmd {
    pub fn new(program: impl Into<String>) -> Cmd {
        Cmd {
            program: program.into(),
            args: Vec::new(),
            envs: Vec::new(),
        }
    }

    pub fn arg(mut self, arg: impl Into<String>) -> Cmd {
        self.args.push(arg.into());
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Cmd
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Cmd {
        self.envs.push((key.into(), value.into()));
        self
    }

    /// The command line as one string, for messages and logs.
    pub fn display(&self) -> String {
        let mut s = self.program.clone();
        for a in &self.args {
            s.push(' ');
            if a.is_empty() || a.contains(|c: char| c.is_whitespace() || c == '\'' || c == '"') {
                s.push('\'');
                s.push_str(&a.replace('\'', r"'\''"));
                s.push('\'');
            } else {
                s.push_str(a);
            }
        }
        s
    }
}

/// How loudly a command's output is logged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogLevel {
    /// Queries (`inspect`, `ps`, `version`): debug.
    Quiet,
    /// Commands that change something (`pull`, `up`, `tag`, `rmi`): info.
    Loud,
}

/// What a finished command printed.
#[derive(Debug, Clone, Default)]
pub struct Output {
    pub stdout: String,
    pub stderr: String,
}

/// A command that could not be run or did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("cannot start `{command}`: {error}")]
    Spawn {
        command: String,
        program: String,
        error: std::io::Error,
    },
    #[error("`{command}` did not finish within {}s and was killed", timeout.as_secs())]
    Timeout { command: String, timeout: Duration },
    #[error("`{command}` failed ({status}): {message}")]
    Failed {
        command: String,
        status: String,
        /// The last line the command printed on stderr (or stdout), the usual reason.
        message: String,
        stdout: String,
        stderr: String,
    },
}

impl RunError {
    /// True when the program itself is not installed.
    pub fn is_not_found(&self) -> bool {
        matches!(self, RunError::Spawn { error, .. } if error.kind() == std::io::ErrorKind::NotFound)
    }

    /// Everything the command printed on stderr and stdout, for recognising known failures.
    pub fn output_text(&self) -> String {
        match self {
            RunError::Failed { stdout, stderr, .. } => format!("{stderr}\n{stdout}"),
            _ => String::new(),
        }
    }
}

/// Runs `cmd`, kills it (and its process group) after `timeout`, and returns its output when it
/// exits with status 0.
pub fn run(cmd: &Cmd, timeout: Duration, level: LogLevel) -> Result<Output, RunError> {
    let command = cmd.display();
    match level {
        LogLevel::Quiet => tracing::debug!(command = %command, "running"),
        LogLevel::Loud => tracing::info!(command = %command, "running"),
    }
    let mut child = Command::new(&cmd.program)
        .args(&cmd.args)
        .envs(cmd.envs.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .map_err(|source| RunError::Spawn {
            command: command.clone(),
            program: cmd.program.clone(),
            error: source,
        })?;
    let pid = rustix::process::Pid::from_child(&child);
    let stdout = child
        .stdout
        .take()
        .map(|s| reader(s, &cmd.program, "stdout", level));
    let stderr = child
        .stderr
        .take()
        .map(|s| reader(s, &cmd.program, "stderr", level));

    let (tx, rx) = mpsc::channel::<std::io::Result<ExitStatus>>();
    let waiter = thread::spawn(move || {
        let _ = tx.send(child.wait());
    });
    let status = match rx.recv_timeout(timeout) {
        Ok(status) => status,
        Err(_) => {
            // Kill the whole group: compose starts helpers of its own.
            let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
            let _ = rx.recv();
            let _ = waiter.join();
            let _ = stdout.map(thread::JoinHandle::join);
            let _ = stderr.map(thread::JoinHandle::join);
            tracing::warn!(command = %command, timeout_s = timeout.as_secs(), "killed after timeout");
            return Err(RunError::Timeout { command, timeout });
        }
    };
    let _ = waiter.join();
    let out = Output {
        stdout: stdout.and_then(|h| h.join().ok()).unwrap_or_default(),
        stderr: stderr.and_then(|h| h.join().ok()).unwrap_or_default(),
    };
    let status = status.map_err(|source| RunError::Spawn {
        command: command.clone(),
        program: cmd.program.clone(),
        error: source,
    })?;
    if status.success() {
        Ok(out)
    } else {
        let status = match status.code() {
            Some(code) => format!("exit code {code}"),
            None => "killed by a signal".to_owned(),
        };
        Err(RunError::Failed {
            command,
            status,
            message: last_line(&out.stderr)
                .or_else(|| last_line(&out.stdout))
                .unwrap_or_else(|| "no output".to_owned()),
            stdout: out.stdout,
            stderr: out.stderr,
        })
    }
}

/// Reads a pipe to the end on its own thread, logging each line.
fn reader(
    pipe: impl Read + Send + 'static,
    program: &str,
    stream: &'static str,
    level: LogLevel,
) -> thread::JoinHandle<String> {
    let program = program.to_owned();
    thread::spawn(move || {
        let mut all = String::new();
        let mut r = BufReader::new(pipe);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match r.read_until(b'\n', &mut buf) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    let line = String::from_utf8_lossy(&buf);
                    let trimmed = line.trim_end();
                    if !trimmed.is_empty() {
                        match level {
                            LogLevel::Quiet => {
                                tracing::debug!(program = %program, stream, "{trimmed}")
                            }
                            LogLevel::Loud => {
                                tracing::info!(program = %program, stream, "{trimmed}")
                            }
                        }
                    }
                    all.push_str(&line);
                }
            }
        }
        all
    })
}

/// The last non-empty line of `text`, trimmed, as a one-line reason.
pub fn last_line(text: &str) -> Option<String> {
    text.lines()
        .map(str::trim)
        .rfind(|l| !l.is_empty())
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn returns_output_of_a_successful_command() {
        let out = run(
            &Cmd::new("sh").args(["-c", "echo out; echo err >&2"]),
            Duration::from_secs(10),
            LogLevel::Quiet,
        )
        .unwrap();
        assert_eq!(out.stdout, "out\n");
        assert_eq!(out.stderr, "err\n");
    }

    #[test]
    fn a_failure_carries_the_last_line_and_the_exit_code() {
        let err = run(
            &Cmd::new("sh").args(["-c", "echo first >&2; echo 'the reason' >&2; exit 3"]),
            Duration::from_secs(10),
            LogLevel::Quiet,
        )
        .unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("exit code 3"), "{msg}");
        assert!(msg.ends_with("the reason"), "{msg}");
    }

    #[test]
    fn a_command_past_its_timeout_is_killed_with_its_children() {
        let started = std::time::Instant::now();
        let err = run(
            &Cmd::new("sh").args(["-c", "sleep 30 & sleep 30; wait"]),
            Duration::from_millis(300),
            LogLevel::Quiet,
        )
        .unwrap_err();
        assert!(matches!(err, RunError::Timeout { .. }), "{err}");
        // The pipes closed, so the background `sleep` died with the group.
        assert!(started.elapsed() < Duration::from_secs(10));
    }

    #[test]
    fn a_missing_program_is_reported_as_not_found() {
        let err = run(
            &Cmd::new("opsync-no-such-program"),
            Duration::from_secs(5),
            LogLevel::Quiet,
        )
        .unwrap_err();
        assert!(err.is_not_found());
    }

    #[test]
    fn display_quotes_arguments_with_spaces() {
        let c = Cmd::new("docker").args(["ps", "--format", "{{.ID}} {{.Image}}"]);
        assert_eq!(c.display(), "docker ps --format '{{.ID}} {{.Image}}'");
    }
}
