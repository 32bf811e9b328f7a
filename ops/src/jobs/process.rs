//! Running external commands for job steps: no shell, own process group (so Ctrl-C on a
//! terminal reaches opsync, which then stops the step and still runs the clean-up steps), a
//! deadline and a cancel flag (SIGTERM to the group, SIGKILL 10 s later), and for `opsync sync`
//! and `opsync verify` children every JSON line of stdout handed over as a typed [`Event`] while
//! the child runs (read line by line: memory stays bounded whatever the child prints).

use std::io::BufRead;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::events::Event;
use crate::scheduler::Cancel;

/// How often the child is polled for its end, the deadline and the cancel flag.
const POLL: Duration = Duration::from_millis(20);
/// How long the rest of stdout is read after the child ended (a process it left running in the
/// background may keep the pipe open).
const DRAIN: Duration = Duration::from_secs(10);
/// Lines read ahead of the consumer.
const QUEUE: usize = 256;

/// How a command ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Ended {
    /// Exited with this code.
    Code(i32),
    /// Killed by this signal (not by us).
    Signal(i32),
    /// Stopped by us: the deadline passed.
    TimedOut,
    /// Stopped by us: the run was cancelled.
    Cancelled,
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

/// The outcome of one command.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub ended: Ended,
}

/// A command that could not be run at all.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    #[error("cannot start {program}: {source}: check the path in the config")]
    Spawn {
        program: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot wait for {program}: {source}")]
    Wait {
        program: PathBuf,
        source: std::io::Error,
    },
    #[error("empty command: write [\"program\", \"arg\", ...]")]
    Empty,
}

/// What to run.
#[derive(Debug, Clone)]
pub struct Spec<'a> {
    pub argv: &'a [String],
    pub cwd: &'a Path,
    pub env: Vec<(String, String)>,
    pub deadline: Option<Instant>,
}

/// Runs `spec` to its end, its deadline or `cancel` (none: not cancellable); its stdout goes
/// to opsync's stderr.
pub fn run(spec: &Spec<'_>, cancel: Option<&Cancel>) -> Result<Outcome, ProcessError> {
    run_inner(spec, cancel, None)
}

/// Runs `spec` like [`run`] and hands each event line of its stdout to `on_event` as it
/// arrives, also after the child was stopped (what it printed before is not lost). Lines that
/// are not events are logged at debug level.
pub fn run_reading_events(
    spec: &Spec<'_>,
    cancel: Option<&Cancel>,
    on_event: &mut dyn FnMut(Event),
) -> Result<Outcome, ProcessError> {
    run_inner(spec, cancel, Some(on_event))
}

fn run_inner(
    spec: &Spec<'_>,
    cancel: Option<&Cancel>,
    mut on_event: Option<&mut dyn FnMut(Event)>,
) -> Result<Outcome, ProcessError> {
    let (program, args) = spec.argv.split_first().ok_or(ProcessError::Empty)?;
    let program = PathBuf::from(program);
    let mut cmd = Command::new(&program);
    cmd.args(args)
        .current_dir(spec.cwd)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .process_group(0);
    for (k, v) in &spec.env {
        cmd.env(k, v);
    }
    if on_event.is_some() {
        cmd.stdout(Stdio::piped());
    } else {
        cmd.stdout(Stdio::from(std::io::stderr()));
    }
    let mut child = cmd.spawn().map_err(|source| ProcessError::Spawn {
        program: program.clone(),
        source,
    })?;
    // A thread reads stdout line by line into a bounded queue; this thread takes the lines
    // while it waits for the child, so a child printing much never blocks on a full pipe.
    let mut lines = child.stdout.take().map(|out| {
        let (tx, rx) = mpsc::sync_channel::<Vec<u8>>(QUEUE);
        std::thread::spawn(move || {
            let mut r = std::io::BufReader::new(out);
            loop {
                let mut line = Vec::new();
                match r.read_until(b'\n', &mut line) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        if tx.send(line).is_err() {
                            break;
                        }
                    }
                }
            }
        });
        rx
    });
    let mut take = |line: Vec<u8>| {
        if let Some(f) = on_event.as_mut() {
            let text = String::from_utf8_lossy(&line);
            let text = text.trim_end();
            match Event::parse(text) {
                Some(e) => f(e),
                None if text.is_empty() => {}
                None => {
                    tracing::debug!(program = %program.display(), line = text, "output line that is not an event")
                }
            }
        }
    };
    let wait = |source| ProcessError::Wait {
        program: program.clone(),
        source,
    };
    let mut stopped: Option<Ended> = None;
    let mut kill_at: Option<Instant> = None;
    let status = loop {
        if let Some(status) = child.try_wait().map_err(wait)? {
            break status;
        }
        let now = Instant::now();
        if stopped.is_none() {
            if cancel.is_some_and(Cancel::is_cancelled) {
                stopped = Some(Ended::Cancelled);
            } else if spec.deadline.is_some_and(|d| now >= d) {
                stopped = Some(Ended::TimedOut);
            }
            if stopped.is_some() {
                signal_group(&child, rustix::process::Signal::TERM);
                kill_at = Some(now + Duration::from_secs(10));
            }
        } else if kill_at.is_some_and(|k| now >= k) {
            signal_group(&child, rustix::process::Signal::KILL);
            kill_at = None;
        }
        match lines.as_ref().map(|rx| rx.recv_timeout(POLL)) {
            None => std::thread::sleep(POLL),
            Some(Ok(line)) => take(line),
            Some(Err(mpsc::RecvTimeoutError::Timeout)) => {}
            Some(Err(mpsc::RecvTimeoutError::Disconnected)) => lines = None,
        }
    };
    // The rest of stdout: until the pipe closes, for at most DRAIN.
    if let Some(rx) = lines {
        let until = Instant::now() + DRAIN;
        loop {
            let left = until.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => take(line),
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    tracing::warn!(
                        program = %program.display(),
                        "stopped reading the output: a process the command left running keeps \
                         it open"
                    );
                    break;
                }
            }
        }
    }
    let ended = match stopped {
        Some(s) => s,
        None => match (status.code(), status.signal()) {
            (Some(c), _) => Ended::Code(c),
            (None, Some(s)) => Ended::Signal(s),
            (None, None) => Ended::Code(-1),
        },
    };
    Ok(Outcome { ended })
}

fn signal_group(child: &Child, sig: rustix::process::Signal) {
    let pid = rustix::process::Pid::from_child(child);
    let _ = rustix::process::kill_process_group(pid, sig);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn spec<'a>(argv: &'a [String], cwd: &'a Path) -> Spec<'a> {
        Spec {
            argv,
            cwd,
            env: vec![("STEP".into(), "x".into())],
            deadline: None,
        }
    }

    #[test]
    fn exit_code_and_every_event() {
        let a = argv(&[
            "sh",
            "-c",
            r#"echo '{"type":"item","itemize":">f+++++++++","op":"copy","path":"a","bytes":3}'
               echo 'not an event'
               echo "{\"type\":\"warning\",\"kind\":\"vanished\",\"path\":\"$STEP\",\"message\":\"m\"}"
               echo '{"type":"summary","bytes_copied":5}'; exit 23"#,
        ]);
        let cwd = std::env::temp_dir();
        let mut events = Vec::new();
        let out = run_reading_events(&spec(&a, &cwd), None, &mut |e| events.push(e)).unwrap();
        assert_eq!(out.ended, Ended::Code(23));
        assert_eq!(events.len(), 3, "{events:?}");
        assert!(matches!(&events[0], Event::Item(i) if i.path.path == "a" && i.bytes == 3));
        assert!(matches!(&events[1], Event::Warning(w) if w.path.path == "x"));
        assert!(matches!(&events[2], Event::Summary(s) if s.bytes_copied == 5));
    }

    #[test]
    fn many_lines_are_read_while_the_child_runs() {
        // More than a pipe buffer and the queue hold: the child would block if nobody read.
        let a = argv(&[
            "sh",
            "-c",
            r#"i=0; while [ $i -lt 5000 ]; do echo '{"type":"repaired","path":"some/long/path/name/to/fill/the/pipe"}'; i=$((i+1)); done"#,
        ]);
        let cwd = std::env::temp_dir();
        let mut n = 0;
        let out = run_reading_events(&spec(&a, &cwd), None, &mut |_| n += 1).unwrap();
        assert_eq!(out.ended, Ended::Code(0));
        assert_eq!(n, 5000);
    }

    #[test]
    fn events_printed_before_a_stop_are_kept() {
        let a = argv(&[
            "sh",
            "-c",
            r#"echo '{"type":"item","itemize":">f+++++++++","op":"copy","path":"a","bytes":3}'; exec sleep 30"#,
        ]);
        let cwd = std::env::temp_dir();
        let mut s = spec(&a, &cwd);
        s.deadline = Some(Instant::now() + Duration::from_millis(300));
        let mut n = 0;
        let out = run_reading_events(&s, None, &mut |_| n += 1).unwrap();
        assert_eq!(out.ended, Ended::TimedOut);
        assert_eq!(n, 1);
    }

    #[test]
    fn deadline_stops_the_process_group() {
        let a = argv(&["sh", "-c", "sleep 30 & sleep 30; wait"]);
        let cwd = std::env::temp_dir();
        let mut s = spec(&a, &cwd);
        s.deadline = Some(Instant::now() + Duration::from_millis(200));
        let t = Instant::now();
        let out = run(&s, None).unwrap();
        assert_eq!(out.ended, Ended::TimedOut);
        assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    }

    #[test]
    fn cancel_stops_the_command() {
        let a = argv(&["sleep", "30"]);
        let cwd = std::env::temp_dir();
        let c = Cancel::new();
        c.cancel();
        let out = run(&spec(&a, &cwd), Some(&c)).unwrap();
        assert_eq!(out.ended, Ended::Cancelled);
    }

    #[test]
    fn missing_program_names_it() {
        let a = argv(&["/nonexistent/prog"]);
        let cwd = std::env::temp_dir();
        let e = run(&spec(&a, &cwd), None).unwrap_err().to_string();
        assert!(e.contains("/nonexistent/prog"), "{e}");
    }
}
