//! Running external programs (certbot, nginx, systemctl, ...) with a timeout.
//!
//! The program runs in its own process group, so a timeout kills whatever it started too (a
//! certbot hook, say). Its output is captured, logged line by line at debug level, and the
//! last line of stderr goes into the error when it fails.

use std::ffi::{OsStr, OsString};
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// A command to run: program, arguments, extra environment.
#[derive(Debug, Clone)]
pub struct Cmd {
    program: PathBuf,
    args: Vec<OsString>,
    env: Vec<(OsString, OsString)>,
    timeout: Duration,
}

/// What a finished command printed.
#[derive(Debug, Clone)]
pub struct Output {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

/// A command that could not be run or did not succeed.
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
    #[error("`{command}` did not finish within {secs} s and was killed")]
    Timeout { command: String, secs: u64 },
    #[error("`{command}` failed ({status}){}", tail_suffix(.stderr_tail))]
    Failed {
        command: String,
        status: ExitStatus,
        stderr_tail: String,
    },
}

fn tail_suffix(tail: &str) -> String {
    if tail.is_empty() {
        String::new()
    } else {
        format!(": {tail}")
    }
}

impl Cmd {
    /// A command running `program` with a timeout of 60 seconds.
    pub fn new(program: impl AsRef<Path>) -> Cmd {
        Cmd {
            program: program.as_ref().to_owned(),
            args: Vec::new(),
            env: Vec::new(),
            timeout: Duration::from_secs(60),
        }
    }

    pub fn arg(mut self, a: impl AsRef<OsStr>) -> Cmd {
        self.args.push(a.as_ref().to_owned());
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Cmd
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    pub fn env(mut self, k: impl AsRef<OsStr>, v: impl AsRef<OsStr>) -> Cmd {
        self.env
            .push((k.as_ref().to_owned(), v.as_ref().to_owned()));
        self
    }

    pub fn timeout(mut self, t: Duration) -> Cmd {
        self.timeout = t;
        self
    }

    /// The command line as a shell user would type it, for messages.
    pub fn display(&self) -> String {
        let mut s = self.program.display().to_string();
        for a in &self.args {
            s.push(' ');
            s.push_str(&a.to_string_lossy());
        }
        s
    }

    /// Runs the command; a non-zero exit is an error.
    pub fn run(&self) -> Result<Output, ProcessError> {
        let out = self.run_unchecked()?;
        if out.status.success() {
            Ok(out)
        } else {
            Err(ProcessError::Failed {
                command: self.display(),
                status: out.status,
                stderr_tail: last_line(&out.stderr)
                    .or_else(|| last_line(&out.stdout))
                    .unwrap_or_default(),
            })
        }
    }

    /// Runs the command and returns its output whatever its exit status.
    pub fn run_unchecked(&self) -> Result<Output, ProcessError> {
        let command = self.display();
        let program = find_program(&self.program).ok_or_else(|| ProcessError::NotFound {
            program: self.program.display().to_string(),
        })?;
        tracing::debug!(command = %command, "running");
        let mut child = Command::new(&program)
            .args(&self.args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .map_err(|source| ProcessError::Spawn {
                command: command.clone(),
                source,
            })?;
        let stdout = reader(child.stdout.take());
        let stderr = reader(child.stderr.take());
        let start = Instant::now();
        let mut pause = Duration::from_millis(2);
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) => {}
                Err(source) => return Err(ProcessError::Wait { command, source }),
            }
            if start.elapsed() >= self.timeout {
                kill_group(child.id());
                let _ = child.wait();
                return Err(ProcessError::Timeout {
                    command,
                    secs: self.timeout.as_secs(),
                });
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(50));
        };
        let out = Output {
            status,
            stdout: stdout.join().unwrap_or_default(),
            stderr: stderr.join().unwrap_or_default(),
        };
        for line in out.stdout.lines().filter(|l| !l.trim().is_empty()) {
            tracing::debug!(command = %command, "stdout: {line}");
        }
        for line in out.stderr.lines().filter(|l| !l.trim().is_empty()) {
            tracing::debug!(command = %command, "stderr: {line}");
        }
        tracing::debug!(command = %command, status = %out.status, elapsed_ms = start.elapsed().as_millis() as u64, "finished");
        Ok(out)
    }
}

/// Whether `program` can be run: a path that exists, or a name found on `PATH`.
pub fn find_program(program: &Path) -> Option<PathBuf> {
    if program.components().count() > 1 {
        return program.is_file().then(|| program.to_owned());
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(program))
        .find(|c| c.is_file())
}

fn reader<R: Read + Send + 'static>(pipe: Option<R>) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(mut p) = pipe {
            let _ = p.read_to_end(&mut buf);
        }
        String::from_utf8_lossy(&buf).into_owned()
    })
}

fn kill_group(pid: u32) {
    if let Some(pid) = rustix::process::Pid::from_raw(pid as i32) {
        let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
    }
}

/// The last non-empty line of `s`, trimmed.
fn last_line(s: &str) -> Option<String> {
    s.lines()
        .rev()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_and_captures_output() {
        let out = Cmd::new("sh")
            .args(["-c", "echo out; echo err >&2"])
            .run()
            .unwrap();
        assert_eq!(out.stdout, "out\n");
        assert_eq!(out.stderr, "err\n");
    }

    #[test]
    fn failure_carries_the_last_stderr_line() {
        let err = Cmd::new("sh")
            .args(["-c", "echo first >&2; echo 'the reason' >&2; exit 3"])
            .run()
            .unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("the reason"), "{msg}");
        assert!(msg.contains("exit status: 3"), "{msg}");
    }

    #[test]
    fn missing_program_is_one_clear_error() {
        let err = Cmd::new("opsync-no-such-program").run().unwrap_err();
        assert!(matches!(err, ProcessError::NotFound { .. }));
        assert_eq!(
            err.to_string(),
            "`opsync-no-such-program` not found: install it or set its path in the config"
        );
    }

    #[test]
    fn timeout_kills_the_process_group() {
        let err = Cmd::new("sh")
            .args(["-c", "sleep 30 & sleep 30"])
            .timeout(Duration::from_millis(200))
            .run()
            .unwrap_err();
        assert!(matches!(err, ProcessError::Timeout { .. }), "{err}");
    }
}
