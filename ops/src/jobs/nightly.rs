//! The nightly sync job: a consistent copy of production data into the dev copy.
//!
//! Steps, each logged with its duration and recorded in the state:
//! 1. `dev-stop`: stop the dev stack (compose, or `dev.stop-command`);
//! 2. `pass-1`: `opsync sync --json SRC DST` of the live data (bulk of the work, no downtime);
//! 3. `quiesce`: pause or stop the production services that own the files, or make a snapshot;
//! 4. `pass-2`: the same sync again (only what changed since pass 1) with `--verify`, stopped
//!    when production has been quiesced for longer than `max-paused`;
//! 5. `resume`: unpause or start production (or remove the snapshot), whenever step 3 ran;
//! 6. `dev-start`: start the dev stack, whenever the job stops it, also after a failed pass.
//!
//! A failure skips the remaining copying steps but never steps 5 and 6. The job's result is the
//! worst of its steps; partial results of pass 1 on live data (files changed or vanished while
//! copying) do not count when pass 2 ran, since pass 2 copies them again.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::config::{Config, JobConfig, QuiesceMode};
use crate::exit::Exit;
use crate::scheduler::Cancel;
use crate::state::StepRecord;

use super::process::{self, Ended, Spec};
use super::{Report, result_name, worst};

/// Longest a clean-up step (resume, dev-start) given as a command may take.
const CLEANUP_LIMIT: Duration = Duration::from_secs(600);
/// Default longest time production stays quiesced.
const DEFAULT_MAX_PAUSED: Duration = Duration::from_secs(600);

/// What one step ended with.
struct StepEnd {
    exit: Exit,
    message: Option<String>,
}

impl StepEnd {
    fn ok() -> StepEnd {
        StepEnd {
            exit: Exit::Ok,
            message: None,
        }
    }
    fn failed(message: String) -> StepEnd {
        StepEnd {
            exit: Exit::Failed,
            message: Some(message),
        }
    }
}

struct Run<'a> {
    cfg: &'a Config,
    name: &'a str,
    job: &'a JobConfig,
    cancel: &'a Cancel,
    deadline: Option<Instant>,
    steps: Vec<StepRecord>,
    bytes: u64,
    files: u64,
    any_summary: bool,
    /// `OPSYNC_SOURCE`, `OPSYNC_TARGET` and `OPSYNC_SNAPSHOT` for step commands.
    paths: Vec<(String, String)>,
}

/// Runs the nightly sync job `name`.
pub fn run(cfg: &Config, name: &str, job: &JobConfig, cancel: &Cancel) -> Report {
    let mut r = Run {
        cfg,
        name,
        job,
        cancel,
        deadline: job.timeout.map(|t| Instant::now() + t.0),
        steps: Vec::new(),
        bytes: 0,
        files: 0,
        any_summary: false,
        paths: Vec::new(),
    };
    let src = cfg.path(job.source.as_ref().unwrap_or(&cfg.sync.source));
    let dst = cfg.path(job.target.as_ref().unwrap_or(&cfg.sync.target));
    r.paths.push(("OPSYNC_SOURCE".into(), path_arg(&src)));
    r.paths.push(("OPSYNC_TARGET".into(), path_arg(&dst)));
    if let Some(p) = &job.quiesce.snapshot_source {
        r.paths
            .push(("OPSYNC_SNAPSHOT".into(), path_arg(&cfg.path(p))));
    }
    let q = &job.quiesce;

    // 1. Stop the dev stack.
    let mut go = true;
    if job.dev.enabled {
        go = r.step("dev-stop", |r| r.dev_action(false)).exit == Exit::Ok;
    }

    // 2. Pass 1 on live data.
    if !go {
        r.skip("pass-1");
    } else if r.cancelled("pass-1") {
        go = false;
    } else {
        let e = r
            .step("pass-1", |r| r.sync("pass-1", &src, &dst, false, None))
            .exit;
        go = matches!(e, Exit::Ok | Exit::Partial | Exit::Vanished);
    }

    // 3. Quiesce production.
    let mut quiesced_at: Option<Instant> = None;
    if q.mode != QuiesceMode::None {
        if !go {
            r.skip("quiesce");
        } else if r.cancelled("quiesce") {
            go = false;
        } else {
            quiesced_at = Some(Instant::now());
            go = r.step("quiesce", |r| r.quiesce_action(false)).exit == Exit::Ok;
        }
    }

    // 4. Pass 2, bounded by max-paused while production is quiesced.
    if !go {
        r.skip("pass-2");
    } else if !r.cancelled("pass-2") {
        let pass2_src = match (q.mode, &q.snapshot_source) {
            (QuiesceMode::Snapshot, Some(p)) => cfg.path(p),
            _ => src.clone(),
        };
        let max_paused = job.max_paused.map_or(DEFAULT_MAX_PAUSED, |d| d.0);
        let limit = quiesced_at
            .filter(|_| q.mode != QuiesceMode::Snapshot)
            .map(|t| t + max_paused);
        r.step("pass-2", |r| {
            let mut end = r.sync("pass-2", &pass2_src, &dst, job.verify, limit);
            if end.message.as_deref() == Some("limit") {
                end.message = Some(format!(
                    "production was quiesced longer than max-paused ({}s): pass 2 stopped and \
                     production resumed; the dev copy may be incomplete until the next run; \
                     raise max-paused or use quiesce mode \"snapshot\"",
                    max_paused.as_secs()
                ));
            }
            end
        });
    }

    // 5. Resume production, whenever it was quiesced (also after a failed or stopped pass).
    let mut paused_seconds = None;
    if let Some(t) = quiesced_at {
        let end = r.step("resume", |r| r.quiesce_action(true));
        if end.exit != Exit::Ok {
            tracing::error!(
                job = name,
                "production may still be {}: resume it by hand (docker compose unpause/start)",
                if q.mode == QuiesceMode::Pause {
                    "paused"
                } else {
                    "stopped"
                }
            );
        }
        if q.mode != QuiesceMode::Snapshot {
            let secs = t.elapsed().as_secs_f64();
            paused_seconds = Some(secs);
            tracing::info!(
                job = name,
                paused_s = secs,
                mode = q.mode.as_str(),
                "production was quiesced"
            );
        }
    } else if q.mode == QuiesceMode::None {
        paused_seconds = Some(0.0);
    }

    // 6. Start the dev stack again, in every case.
    if job.dev.enabled {
        r.step("dev-start", |r| r.dev_action(true));
    }

    // The job's result: the worst step; pass 1's partial results do not count when pass 2 ran.
    let pass2_ran = r
        .steps
        .iter()
        .any(|s| s.name == "pass-2" && s.result != "skipped" && s.result != "cancelled");
    let mut exit = Exit::Ok;
    let mut failed_step = None;
    let mut message = None;
    for s in &r.steps {
        let e = exit_of(s.exit_code);
        if s.name == "pass-1" && pass2_ran && matches!(e, Exit::Partial | Exit::Vanished) {
            continue;
        }
        if super::severity(e) > super::severity(exit) {
            exit = e;
            failed_step = Some(s.name.clone());
            message = s.message.clone();
        }
    }
    if cancel.is_cancelled() {
        exit = worst(exit, Exit::Signal);
        failed_step = failed_step.or_else(|| Some("cancelled".into()));
    }
    Report {
        exit: Some(exit),
        steps: r.steps,
        bytes: r.any_summary.then_some(r.bytes),
        files: r.any_summary.then_some(r.files),
        paused_seconds,
        failed_step,
        message,
        certs: Vec::new(),
    }
}

fn exit_of(code: u8) -> Exit {
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

impl Run<'_> {
    /// Runs one step, logs and records it.
    fn step(&mut self, name: &str, f: impl FnOnce(&mut Self) -> StepEnd) -> StepEnd {
        tracing::info!(job = self.name, step = name, "step started");
        let t = Instant::now();
        let end = f(self);
        let secs = t.elapsed().as_secs_f64();
        let result = result_name(end.exit);
        if end.exit == Exit::Ok {
            tracing::info!(
                job = self.name,
                step = name,
                duration_s = secs,
                result,
                "step finished"
            );
        } else {
            tracing::error!(
                job = self.name,
                step = name,
                duration_s = secs,
                result,
                error = end.message.as_deref().unwrap_or(""),
                "step failed"
            );
        }
        self.steps.push(StepRecord {
            name: name.to_string(),
            result: result.to_string(),
            exit_code: end.exit as u8,
            duration_seconds: secs,
            message: end.message.clone(),
        });
        end
    }

    fn skip(&mut self, name: &str) {
        tracing::info!(job = self.name, step = name, "step skipped");
        self.steps.push(StepRecord {
            name: name.to_string(),
            result: "skipped".into(),
            exit_code: 0,
            duration_seconds: 0.0,
            message: None,
        });
    }

    /// True when the run was cancelled; records `step` as cancelled.
    fn cancelled(&mut self, step: &str) -> bool {
        if !self.cancel.is_cancelled() {
            return false;
        }
        tracing::warn!(job = self.name, step, "run cancelled: step not started");
        self.steps.push(StepRecord {
            name: step.to_string(),
            result: "cancelled".into(),
            exit_code: Exit::Signal as u8,
            duration_seconds: 0.0,
            message: Some("not started: the run was cancelled".into()),
        });
        true
    }

    fn env(&self, step: &str) -> Vec<(String, String)> {
        let mut env = vec![
            ("OPSYNC_JOB".into(), self.name.into()),
            ("OPSYNC_STEP".into(), step.into()),
        ];
        env.extend(self.paths.iter().cloned());
        env
    }

    /// Runs a configured command for a step.
    fn command(&self, step: &str, argv: &[String], cleanup: bool) -> StepEnd {
        let spec = Spec {
            argv,
            cwd: &self.cfg.base_dir,
            env: self.env(step),
            capture_summary: false,
            deadline: if cleanup {
                Some(Instant::now() + CLEANUP_LIMIT)
            } else {
                self.deadline
            },
        };
        let cancel = (!cleanup).then_some(self.cancel);
        match process::run(&spec, cancel) {
            Ok(o) if o.ended == Ended::Code(0) => StepEnd::ok(),
            Ok(o) => StepEnd::failed(format!("{} ended with {}", argv[0], o.ended)),
            Err(e) => StepEnd::failed(e.to_string()),
        }
    }

    /// Stops (`start == false`) or starts the dev stack.
    fn dev_action(&mut self, start: bool) -> StepEnd {
        let dev = &self.job.dev;
        let (cmd, step) = if start {
            (&dev.start_command, "dev-start")
        } else {
            (&dev.stop_command, "dev-stop")
        };
        if let Some(argv) = cmd {
            return self.command(step, argv, start);
        }
        let r = if start {
            crate::compose::start(self.cfg, &dev.stack)
        } else {
            crate::compose::stop(self.cfg, &dev.stack)
        };
        r.map_or_else(
            |e| StepEnd::failed(crate::commands::one_line(&e)),
            |()| StepEnd::ok(),
        )
    }

    /// Quiesces (`resume == false`) or resumes production.
    fn quiesce_action(&mut self, resume: bool) -> StepEnd {
        let q = &self.job.quiesce;
        let (cmd, step) = if resume {
            (&q.resume_command, "resume")
        } else {
            (&q.command, "quiesce")
        };
        if let Some(argv) = cmd {
            return self.command(step, argv, resume);
        }
        let cfg = self.cfg;
        let r = match (q.mode, resume) {
            (QuiesceMode::Pause, false) => crate::compose::pause(cfg, &q.stack, &q.services),
            (QuiesceMode::Pause, true) => crate::compose::unpause(cfg, &q.stack, &q.services),
            (QuiesceMode::Stop, false) => crate::compose::stop(cfg, &q.stack),
            (QuiesceMode::Stop, true) => crate::compose::start(cfg, &q.stack),
            // Snapshot without a resume command: nothing to undo.
            (QuiesceMode::Snapshot | QuiesceMode::None, _) => Ok(()),
        };
        r.map_or_else(
            |e| StepEnd::failed(crate::commands::one_line(&e)),
            |()| StepEnd::ok(),
        )
    }

    /// One sync pass: `opsync sync --json SRC DST` (or the configured `sync-command`). A pass
    /// stopped at `limit` ends with the message `limit`.
    fn sync(
        &mut self,
        step: &str,
        src: &Path,
        dst: &Path,
        verify: bool,
        limit: Option<Instant>,
    ) -> StepEnd {
        let mut argv: Vec<String> = match &self.job.sync_command {
            Some(c) => c.clone(),
            None => match std::env::current_exe() {
                Ok(exe) => vec![own_binary(&exe), "sync".into()],
                Err(e) => {
                    return StepEnd::failed(format!(
                        "cannot find the opsync binary to run the sync: {e}"
                    ));
                }
            },
        };
        argv.push("--json".into());
        argv.push(path_arg(src));
        argv.push(path_arg(dst));
        if let Some(m) = self
            .job
            .max_delete
            .as_ref()
            .or(self.cfg.sync.max_delete.as_ref())
        {
            argv.push("--max-delete".into());
            argv.push(m.clone());
        }
        for x in &self.cfg.sync.exclude {
            argv.push("--exclude".into());
            argv.push(x.clone());
        }
        if verify {
            argv.push("--verify".into());
        }
        let deadline = match (limit, self.deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let spec = Spec {
            argv: &argv,
            cwd: &self.cfg.base_dir,
            env: self.env(step),
            capture_summary: true,
            deadline,
        };
        let out = match process::run(&spec, Some(self.cancel)) {
            Ok(o) => o,
            Err(e) => return StepEnd::failed(e.to_string()),
        };
        let mut msg = None;
        if let Some(s) = &out.summary {
            let n = |k: &str| s.get(k).and_then(serde_json::Value::as_u64);
            self.any_summary = true;
            self.bytes += n("bytes_copied").unwrap_or(0);
            self.files += n("files_transferred").unwrap_or(0);
            msg = Some(format!(
                "{} files transferred of {}, {} bytes copied",
                n("files_transferred").unwrap_or(0),
                n("files_total").unwrap_or(0),
                n("bytes_copied").unwrap_or(0)
            ));
        }
        match out.ended {
            Ended::Code(c) => {
                let exit = exit_of(u8::try_from(c).unwrap_or(u8::MAX));
                let msg = match exit {
                    Exit::Ok => msg,
                    Exit::Failed => Some(format!("sync ended with exit code {c}")),
                    e => Some(format!(
                        "sync ended with exit code {c} ({})",
                        result_name(e)
                    )),
                };
                StepEnd { exit, message: msg }
            }
            Ended::TimedOut if limit.is_some_and(|l| Instant::now() >= l) => StepEnd {
                exit: Exit::Failed,
                message: Some("limit".into()),
            },
            Ended::TimedOut => StepEnd::failed("sync stopped: the job's timeout passed".into()),
            Ended::Cancelled => StepEnd {
                exit: Exit::Signal,
                message: Some("sync stopped: the run was cancelled".into()),
            },
            Ended::Signal(s) => StepEnd::failed(format!("sync was killed by signal {s}")),
        }
    }
}

/// The path of the running binary. After an upgrade replaced the file under a running daemon,
/// Linux reports `PATH (deleted)`: the new binary at `PATH` is the one to run.
fn own_binary(exe: &Path) -> String {
    let s = exe.to_string_lossy().into_owned();
    match s.strip_suffix(" (deleted)") {
        Some(p) if !exe.exists() => p.to_string(),
        _ => s,
    }
}

fn path_arg(p: &Path) -> String {
    PathBuf::from(p).to_string_lossy().into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replaced_binary_is_run_from_its_path() {
        assert_eq!(
            own_binary(Path::new("/usr/local/bin/opsync (deleted)")),
            "/usr/local/bin/opsync"
        );
        assert_eq!(own_binary(Path::new("/usr/bin/opsync")), "/usr/bin/opsync");
    }

    #[test]
    fn sync_exit_codes() {
        let cases = [
            (0, Exit::Ok),
            (8, Exit::Differences),
            (20, Exit::Signal),
            (23, Exit::Partial),
            (24, Exit::Vanished),
            (25, Exit::MaxDelete),
            (26, Exit::EmptySource),
            (1, Exit::Failed),
            (11, Exit::Failed),
        ];
        for (code, exit) in cases {
            assert_eq!(exit_of(code), exit, "{code}");
        }
    }
}
