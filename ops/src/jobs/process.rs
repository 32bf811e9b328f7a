//! Running external commands for job steps: no shell, own process group (so Ctrl-C on a
//! terminal reaches opsync, which then stops the step and still runs the clean-up steps), a
//! deadline and a cancel flag (SIGTERM to the group, SIGKILL 10 s later), and for `opsync sync`
//! children the final JSON summary line read from stdout.

use std::io::BufRead;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::scheduler::Cancel;

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
    /// The last stdout line that is a JSON object with `"type":"summary"` (when captured).
    pub summary: Option<serde_json::Value>,
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
    /// Read stdout for the summary line instead of passing it to stderr.
    pub capture_summary: bool,
    pub deadline: Option<Instant>,
}

/// Runs `spec` to its end, its deadline or `cancel` (none: not cancellable).
pub fn run(spec: &Spec<'_>, cancel: Option<&Cancel>) -> Result<Outcome, ProcessError> {
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
    if spec.capture_summary {
        cmd.stdout(Stdio::piped());
    } else {
        cmd.stdout(Stdio::from(std::io::stderr()));
    }
    let mut child = cmd.spawn().map_err(|source| ProcessError::Spawn {
        program: program.clone(),
        source,
    })?;
    let reader = child.stdout.take().map(|out| {
        std::thread::spawn(move || {
            let mut last = None;
            for line in std::io::BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if !line.contains("\"summary\"") {
                    continue;
                }
                if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) {
                    if v.get("type").and_then(|t| t.as_str()) == Some("summary") {
                        last = Some(v);
                    }
                }
            }
            last
        })
    });
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
        std::thread::sleep(Duration::from_millis(20));
    };
    let summary = reader.and_then(|r| r.join().ok().flatten());
    let ended = match stopped {
        Some(s) => s,
        None => match (status.code(), status.signal()) {
            (Some(c), _) => Ended::Code(c),
            (None, Some(s)) => Ended::Signal(s),
            (None, None) => Ended::Code(-1),
        },
    };
    Ok(Outcome { ended, summary })
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
            capture_summary: true,
            deadline: None,
        }
    }

    #[test]
    fn exit_code_and_summary_line() {
        let a = argv(&[
            "sh",
            "-c",
            r#"echo '{"type":"item"}'; echo "{\"type\":\"summary\",\"bytes_copied\":5,\"step\":\"$STEP\"}"; exit 23"#,
        ]);
        let cwd = std::env::temp_dir();
        let out = run(&spec(&a, &cwd), None).unwrap();
        assert_eq!(out.ended, Ended::Code(23));
        let s = out.summary.unwrap();
        assert_eq!(s["bytes_copied"], 5);
        assert_eq!(s["step"], "x");
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
