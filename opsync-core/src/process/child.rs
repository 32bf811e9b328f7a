//! Starting a child and waiting for it: the process group, the pipes and their reader threads,
//! the waiter thread, the limits (timeout, deadline, cancellation, SIGTERM then SIGKILL) and the
//! draining of the output after the child ended. [`super::Command`] is the way in.

use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::CommandExt;
use std::process::{ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::Instant;

use rustix::process::{Pid, Signal, kill_process_group};

use super::{CANCEL_CHECK, Cancel, Command, DRAIN, Ended, Level, Output, ProcessError, QUEUE};

/// Where stdout goes while the child runs.
pub(super) enum Sink<'a> {
    Capture,
    Lines(&'a mut dyn FnMut(&[u8])),
    Stderr,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    fn name(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

enum Msg {
    Line(Stream, Vec<u8>),
    Closed,
    Exited(std::io::Result<ExitStatus>),
}

/// Captured bytes of one stream, up to a limit.
#[derive(Default)]
struct Captured {
    bytes: Vec<u8>,
    dropped: usize,
}

impl Captured {
    fn push(&mut self, line: &[u8], limit: usize) {
        let room = limit.saturating_sub(self.bytes.len());
        let take = line.len().min(room);
        self.bytes.extend_from_slice(&line[..take]);
        self.dropped += line.len() - take;
    }

    fn text(self) -> String {
        String::from_utf8_lossy(&self.bytes).into_owned()
    }
}

impl Command {
    /// The earlier of the timeout and the deadline, for a child started at `started`.
    fn limit(&self, started: Instant) -> Option<Instant> {
        let by_timeout = self.timeout.map(|t| started + t);
        match (by_timeout, self.deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn spawn_error(&self, command: String, source: std::io::Error) -> ProcessError {
        if source.kind() == std::io::ErrorKind::NotFound {
            ProcessError::NotFound {
                program: self.program.display().to_string(),
            }
        } else {
            ProcessError::Spawn { command, source }
        }
    }

    pub(super) fn execute(
        &self,
        mut sink: Sink<'_>,
        capture_stderr: bool,
    ) -> Result<Output, ProcessError> {
        let command = self.display();
        let program = self.program.display().to_string();
        match self.level {
            Level::Quiet => tracing::debug!(command = %command, "running"),
            Level::Loud => tracing::info!(command = %command, "running"),
        }
        if let Some(dir) = self.cwd.as_deref().filter(|d| !d.is_dir()) {
            return Err(ProcessError::Spawn {
                command,
                source: std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    format!("its working folder {} does not exist", dir.display()),
                ),
            });
        }
        let mut cmd = std::process::Command::new(&self.program);
        cmd.args(&self.args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .process_group(0);
        if let Some(dir) = &self.cwd {
            cmd.current_dir(dir);
        }
        match sink {
            Sink::Stderr => cmd.stdout(Stdio::from(std::io::stderr())),
            Sink::Capture | Sink::Lines(_) => cmd.stdout(Stdio::piped()),
        };
        cmd.stderr(if capture_stderr {
            Stdio::piped()
        } else {
            Stdio::inherit()
        });
        let started = Instant::now();
        let mut child = cmd
            .spawn()
            .map_err(|e| self.spawn_error(command.clone(), e))?;
        let group = Pid::from_child(&child);

        // Readers and the waiter send on one bounded channel, so a child printing much blocks
        // on its pipe until this thread has taken the lines, and memory stays bounded.
        let (tx, rx) = mpsc::sync_channel::<Msg>(QUEUE);
        let mut open = 0;
        if let Some(out) = child.stdout.take() {
            read_lines(out, Stream::Stdout, tx.clone());
            open += 1;
        }
        if let Some(err) = child.stderr.take() {
            read_lines(err, Stream::Stderr, tx.clone());
            open += 1;
        }
        thread::spawn(move || {
            let _ = tx.send(Msg::Exited(child.wait()));
        });

        let (mut stdout, mut stderr) = (Captured::default(), Captured::default());
        let mut take = |stream: Stream, line: Vec<u8>| {
            let trimmed = line.strip_suffix(b"\n").unwrap_or(&line);
            if let (Stream::Stdout, Sink::Lines(f)) = (stream, &mut sink) {
                f(trimmed);
                return;
            }
            let text = String::from_utf8_lossy(trimmed);
            let text = text.trim_end();
            if !text.is_empty() {
                match self.level {
                    Level::Quiet => {
                        tracing::debug!(program = %program, stream = stream.name(), "{text}")
                    }
                    Level::Loud => {
                        tracing::info!(program = %program, stream = stream.name(), "{text}")
                    }
                }
            }
            match stream {
                Stream::Stdout => stdout.push(&line, self.capture_limit),
                Stream::Stderr => stderr.push(&line, self.capture_limit),
            }
        };

        let limit = self.limit(started);
        let mut stopped: Option<Ended> = None;
        let mut kill_at: Option<Instant> = None;
        let status = loop {
            let now = Instant::now();
            if stopped.is_none() {
                if self.cancel.as_ref().is_some_and(Cancel::is_cancelled) {
                    stopped = Some(Ended::Cancelled);
                } else if limit.is_some_and(|l| now >= l) {
                    stopped = Some(Ended::TimedOut);
                }
                if let Some(why) = stopped {
                    tracing::warn!(command = %command, grace_s = self.grace.as_secs(), "stopping: {why}");
                    let _ = kill_process_group(group, Signal::TERM);
                    kill_at = Some(now + self.grace);
                }
            } else if kill_at.is_some_and(|k| now >= k) {
                tracing::warn!(command = %command, "killing: it did not stop within its grace period");
                let _ = kill_process_group(group, Signal::KILL);
                kill_at = None;
            }
            let wake = [
                limit.filter(|_| stopped.is_none()),
                kill_at,
                self.cancel
                    .as_ref()
                    .filter(|_| stopped.is_none())
                    .map(|_| now + CANCEL_CHECK),
            ]
            .into_iter()
            .flatten()
            .min();
            let msg = match wake {
                None => rx.recv().ok(),
                Some(w) => match rx.recv_timeout(w.saturating_duration_since(now)) {
                    Ok(m) => Some(m),
                    Err(mpsc::RecvTimeoutError::Timeout) => continue,
                    Err(mpsc::RecvTimeoutError::Disconnected) => None,
                },
            };
            match msg {
                Some(Msg::Line(s, l)) => take(s, l),
                Some(Msg::Closed) => open -= 1,
                Some(Msg::Exited(status)) => break status,
                // The waiter holds a sender until it has sent the exit.
                None => break Err(std::io::Error::other("the waiting thread ended")),
            }
        };
        let status = status.map_err(|source| ProcessError::Wait {
            command: command.clone(),
            source,
        })?;

        // The rest of the output: until the pipes close, for at most DRAIN.
        let until = Instant::now() + DRAIN;
        while open > 0 {
            match rx.recv_timeout(until.saturating_duration_since(Instant::now())) {
                Ok(Msg::Line(s, l)) => take(s, l),
                Ok(Msg::Closed) => open -= 1,
                Ok(Msg::Exited(_)) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    tracing::warn!(
                        command = %command,
                        "stopped reading the output: a process the command left running keeps it \
                         open"
                    );
                    break;
                }
            }
        }
        let ended = stopped.unwrap_or_else(|| Ended::of(status));
        tracing::debug!(
            command = %command,
            ended = %ended,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "finished"
        );
        for (name, c) in [("stdout", &stdout), ("stderr", &stderr)] {
            if c.dropped > 0 {
                tracing::warn!(command = %command, stream = name, dropped_bytes = c.dropped,
                    "output longer than {} bytes: the rest was logged, not kept", self.capture_limit);
            }
        }
        Ok(Output {
            ended,
            stdout: stdout.text(),
            stderr: stderr.text(),
        })
    }
}

/// Reads `pipe` line by line on its own thread into `tx`, then says it closed.
fn read_lines(pipe: impl Read + Send + 'static, stream: Stream, tx: mpsc::SyncSender<Msg>) {
    thread::spawn(move || {
        let mut r = BufReader::new(pipe);
        loop {
            let mut line = Vec::new();
            match r.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    if tx.send(Msg::Line(stream, line)).is_err() {
                        return;
                    }
                }
            }
        }
        let _ = tx.send(Msg::Closed);
    });
}
