//! The nightly sync job: a consistent copy of production data into the dev copy.
//!
//! Steps, each logged with its duration and recorded in the state:
//! 1. `dev-stop`: stop the dev stack (compose, or `dev.stop-command`);
//! 2. `pass-1`: `opsync sync --json SRC DST` of the live data (bulk of the work, no downtime);
//! 3. `check` (`verify = true`): `opsync verify --json SRC DST` on the live data; the files with
//!    production's size and mtime but other content (what the quick check misses) go to a
//!    recheck list for pass 2. The whole-tree hashing happens while production runs;
//! 4. `quiesce`: pause or stop the production services that own the files, or make a snapshot;
//! 5. `pass-2`: the same sync again (only what changed since pass 1), stopped when production
//!    has been quiesced for longer than `max-paused`; with `verify = true` it compares the
//!    recheck list by content and reads back what it writes (`--recheck-from LIST --from0
//!    --verify=written`), with `verify = "paused"` it compares both whole trees and copies
//!    again what differs (`--verify`);
//! 6. `resume`: unpause or start production (or remove the snapshot), whenever step 4 ran;
//! 7. `dev-start`: start the dev stack, whenever the job stops it, also after a failed pass.
//!
//! A failure skips the remaining copying steps but never steps 6 and 7 (a check that cannot
//! run fails the job but does not stop pass 2, which then runs without a recheck list). The
//! job's result is the worst of its steps; partial results of pass 1 on live data (files
//! changed or vanished while copying) do not count when pass 2 ran, since pass 2 copies them
//! again, and are logged as the expected warnings they are. Every event of the sync and verify
//! children is read ([`super::tally`]): each error, warning, difference and repair is logged
//! with its path and recorded (count and first paths) in the step's state.

mod children;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use opsync_core::config::{Config, JobConfig, QuiesceMode, VerifyMode};
use opsync_core::exit::Exit;
use opsync_core::process::{Cancel, Ended};
use opsync_core::state::{StepDetail, StepRecord};

use super::Report;
use super::step_command;
use opsync_core::error::one_line;

/// Longest a clean-up step (resume, dev-start) given as a command may take.
const CLEANUP_LIMIT: Duration = Duration::from_secs(600);
/// Default longest time production stays quiesced.
const DEFAULT_MAX_PAUSED: Duration = Duration::from_secs(600);

/// What one step ended with.
struct StepEnd {
    exit: Exit,
    message: Option<String>,
    /// A result expected on live data (pass 1's vanished or partial): logged as a warning.
    expected: bool,
    /// Stopped because production was quiesced longer than `max-paused`.
    at_limit: bool,
    detail: StepDetail,
}

impl StepEnd {
    fn ok() -> StepEnd {
        StepEnd::new(Exit::Ok, None)
    }
    fn failed(message: String) -> StepEnd {
        StepEnd::new(Exit::Failed, Some(message))
    }
    fn new(exit: Exit, message: Option<String>) -> StepEnd {
        StepEnd {
            exit,
            message,
            expected: false,
            at_limit: false,
            detail: StepDetail::default(),
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
            .step("pass-1", |r| {
                r.sync(children::Pass::One, &src, &dst, None, None)
            })
            .exit;
        go = matches!(e, Exit::Ok | Exit::Partial | Exit::Vanished);
    }

    // 3. Compare the trees on live data; list what pass 2 must compare by content.
    let mut recheck: Option<PathBuf> = None;
    if job.verify == VerifyMode::Live {
        if !go {
            r.skip("check");
        } else if r.cancelled("check") {
            go = false;
        } else {
            let list = cfg.state_dir().join("jobs").join(format!("{name}.recheck"));
            let end = r.step("check", |r| r.check(&src, &dst, &list));
            if end
                .detail
                .differences
                .as_ref()
                .is_some_and(|d| d.kinds.contains_key("content"))
                && end.exit == Exit::Ok
            {
                recheck = Some(list);
            }
        }
    }

    // 4. Quiesce production.
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

    // 5. Pass 2, bounded by max-paused while production is quiesced.
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
            let mut end = r.sync(
                children::Pass::Two,
                &pass2_src,
                &dst,
                recheck.as_deref(),
                limit,
            );
            if end.at_limit {
                end.message = Some(format!(
                    "production was quiesced longer than max-paused ({}s): pass 2 stopped and \
                     production resumed; the dev copy may be incomplete until the next run; \
                     raise max-paused or use quiesce mode \"snapshot\"{}",
                    max_paused.as_secs(),
                    end.message.map(|m| format!(" ({m})")).unwrap_or_default()
                ));
            }
            end
        });
    }

    // 6. Resume production, whenever it was quiesced (also after a failed or stopped pass).
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

    // 7. Start the dev stack again, in every case.
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
        let e = Exit::of_child(i32::from(s.exit_code));
        if s.name == "pass-1" && pass2_ran && matches!(e, Exit::Partial | Exit::Vanished) {
            continue;
        }
        if e.severity() > exit.severity() {
            exit = e;
            failed_step = Some(s.name.clone());
            message = s.message.clone();
        }
    }
    // Without quiesce, files that changed while pass 2 copied them mean the copy of a database
    // may be torn although every file was copied: say so instead of reporting success.
    let live_changes = r
        .steps
        .iter()
        .find(|s| s.name == "pass-2")
        .and_then(|s| s.detail.warnings.as_ref())
        .map_or(0, |w| {
            ["changed-during-copy", "vanished"]
                .iter()
                .filter_map(|k| w.kinds.get(*k))
                .sum::<u64>()
        });
    if q.mode == QuiesceMode::None && live_changes > 0 {
        let m = format!(
            "{live_changes} {} changed while pass 2 copied {} (quiesce mode \"none\"): a database \
             or MinIO in the dev copy may be torn; set [jobs.{name}.quiesce] mode = \"pause\" for \
             a consistent copy",
            if live_changes == 1 { "file" } else { "files" },
            if live_changes == 1 { "it" } else { "them" },
        );
        tracing::warn!(job = name, step = "pass-2", "{m}");
        if exit == Exit::Ok {
            exit = Exit::Attention;
            failed_step = Some("pass-2".into());
            message = Some(m);
        }
    }
    if cancel.is_cancelled() {
        exit = exit.worst(Exit::Signal);
        failed_step = failed_step.or_else(|| Some("cancelled".into()));
    }
    let counted: Vec<&StepDetail> = r
        .steps
        .iter()
        .map(|s| &s.detail)
        .filter(|d| d.files.is_some())
        .collect();
    let pass2 = r
        .steps
        .iter()
        .find(|s| s.name == "pass-2")
        .map(|s| &s.detail);
    let repaired = pass2.and_then(|d| d.repaired.clone());
    let remaining = pass2.and_then(|d| d.remaining.clone());
    if let Some(l) = &repaired {
        tracing::warn!(
            job = name,
            count = l.count,
            "{}",
            l.describe(
                "difference",
                "differences",
                "repaired (copied again by content in pass 2)"
            )
        );
    }
    Report {
        exit: Some(exit),
        bytes: (!counted.is_empty()).then(|| counted.iter().filter_map(|d| d.bytes).sum()),
        files: (!counted.is_empty()).then(|| counted.iter().filter_map(|d| d.files).sum()),
        steps: r.steps,
        paused_seconds,
        failed_step,
        message,
        repaired,
        remaining,
        certs: Vec::new(),
    }
}

impl Run<'_> {
    /// Runs one step, logs and records it.
    fn step(&mut self, name: &str, f: impl FnOnce(&mut Self) -> StepEnd) -> StepEnd {
        tracing::info!(job = self.name, step = name, "step started");
        let t = Instant::now();
        let end = f(self);
        let secs = t.elapsed().as_secs_f64();
        let result = end.exit.name();
        if end.exit == Exit::Ok {
            match &end.message {
                Some(m) => tracing::info!(
                    job = self.name,
                    step = name,
                    duration_s = secs,
                    result,
                    summary = %m,
                    "step finished"
                ),
                None => tracing::info!(
                    job = self.name,
                    step = name,
                    duration_s = secs,
                    result,
                    "step finished"
                ),
            }
        } else if end.expected {
            tracing::warn!(
                job = self.name,
                step = name,
                duration_s = secs,
                result,
                summary = end.message.as_deref().unwrap_or(""),
                "step finished with warnings expected on live data: pass 2 copies these files \
                 again"
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
            exit_code: end.exit.code(),
            duration_seconds: secs,
            message: end.message.clone(),
            detail: end.detail.clone(),
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
            detail: StepDetail::default(),
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
            exit_code: Exit::Signal.code(),
            duration_seconds: 0.0,
            message: Some("not started: the run was cancelled".into()),
            detail: StepDetail::default(),
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
    /// A clean-up step (`cleanup`) is not cancellable and gets its own time limit.
    fn command(&self, step: &str, argv: &[String], cleanup: bool) -> StepEnd {
        let deadline = if cleanup {
            Some(Instant::now() + CLEANUP_LIMIT)
        } else {
            self.deadline
        };
        let cancel = (!cleanup).then_some(self.cancel);
        let ended = step_command(self.cfg, argv, self.env(step))
            .and_then(|c| c.deadline(deadline).cancel(cancel).status());
        match ended {
            Ok(Ended::Code(0)) => StepEnd::ok(),
            Ok(ended) => StepEnd::failed(format!("{} ended with {ended}", argv[0])),
            Err(e) => StepEnd::failed(e.to_string()),
        }
    }

    /// A step done by the configured command `argv` when there is one, else by the stack
    /// operation `op`. A clean-up step (`cleanup`) is not cancellable.
    fn command_or(
        &self,
        step: &str,
        argv: Option<&Vec<String>>,
        cleanup: bool,
        op: impl FnOnce() -> Result<(), opsync_stacks::StackError>,
    ) -> StepEnd {
        match argv {
            Some(argv) => self.command(step, argv, cleanup),
            None => op().map_or_else(|e| StepEnd::failed(one_line(&e)), |()| StepEnd::ok()),
        }
    }

    /// Stops (`start == false`) or starts the dev stack (on `dev.host` through the remote
    /// shell, when set and no command replaces the step).
    fn dev_action(&self, start: bool) -> StepEnd {
        let (cfg, dev) = (self.cfg, &self.job.dev);
        let replaced = if start {
            dev.start_command.is_some()
        } else {
            dev.stop_command.is_some()
        };
        if let (Some(host), false) = (&dev.host, replaced) {
            let step = if start { "dev-start" } else { "dev-stop" };
            return match remote_stack_argv(cfg, host, &dev.stack, start) {
                Some(argv) => self.command(step, &argv, start),
                None => StepEnd::failed(format!(
                    "[sync] rsh {:?} has unbalanced quotes",
                    cfg.sync.rsh.as_deref().unwrap_or("ssh")
                )),
            };
        }
        if start {
            self.command_or("dev-start", dev.start_command.as_ref(), true, || {
                opsync_stacks::start(cfg, &dev.stack)
            })
        } else {
            self.command_or("dev-stop", dev.stop_command.as_ref(), false, || {
                opsync_stacks::stop(cfg, &dev.stack)
            })
        }
    }

    /// Quiesces (`resume == false`) or resumes production.
    fn quiesce_action(&self, resume: bool) -> StepEnd {
        let (cfg, q) = (self.cfg, &self.job.quiesce);
        let (step, argv) = if resume {
            ("resume", q.resume_command.as_ref())
        } else {
            ("quiesce", q.command.as_ref())
        };
        self.command_or(step, argv, resume, || match (q.mode, resume) {
            (QuiesceMode::Pause, false) => opsync_stacks::pause(cfg, &q.stack, &q.services),
            (QuiesceMode::Pause, true) => opsync_stacks::unpause(cfg, &q.stack, &q.services),
            (QuiesceMode::Stop, false) => opsync_stacks::stop(cfg, &q.stack),
            (QuiesceMode::Stop, true) => opsync_stacks::start(cfg, &q.stack),
            // Snapshot without a resume command: nothing to undo.
            (QuiesceMode::Snapshot | QuiesceMode::None, _) => Ok(()),
        })
    }
}

/// `RSH HOST OPSYNC stack stop|start STACK`: the dev stack's step on its own host.
fn remote_stack_argv(cfg: &Config, host: &str, stack: &str, start: bool) -> Option<Vec<String>> {
    let mut argv = sync_remote::rsh_argv(cfg.sync.rsh.as_deref().unwrap_or("ssh"))?;
    let program = cfg.sync.remote_opsync.as_deref().unwrap_or("opsync");
    let op = if start { "start" } else { "stop" };
    argv.push(host.to_string());
    argv.push(format!("{program} stack {op} {stack}"));
    Some(argv)
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
}
