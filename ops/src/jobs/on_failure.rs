//! The `on-failure` command: run after a job that failed, was cancelled or needs attention, so
//! that mail or a webhook is one line of config (`[general] on-failure`, or the job's own;
//! `on-failure = []` in a job turns it off there). No shell; its environment names the run:
//! `OPSYNC_JOB`, `OPSYNC_RESULT` (exit name), `OPSYNC_EXIT_CODE`, `OPSYNC_FAILED_STEP`,
//! `OPSYNC_MESSAGE`. It runs at most `[general] on-failure-timeout`; its own failure is logged
//! and changes nothing about the job's result.

use std::time::Duration;

use opsync_core::config::{Config, JobConfig};
use opsync_core::exit::Exit;
use opsync_core::process::Ended;

/// Whether a run that ended with `exit` calls the on-failure command: every result but
/// success, and a run skipped because the job was already running (that run reports itself).
pub fn wanted(exit: Exit) -> bool {
    !matches!(exit, Exit::Ok | Exit::Locked)
}

/// Runs the on-failure command of job `name`, if one is configured and the result calls it.
/// Returns false when it was configured and failed.
pub fn notify(
    cfg: &Config,
    name: &str,
    job: &JobConfig,
    exit: Exit,
    failed_step: Option<&str>,
    message: Option<&str>,
) -> bool {
    if !wanted(exit) {
        return true;
    }
    let Some(argv) = job
        .on_failure
        .as_ref()
        .or(cfg.general.on_failure.as_ref())
        .filter(|a| !a.is_empty())
    else {
        return true;
    };
    let code = exit.code().to_string();
    let env = [
        ("OPSYNC_JOB", name),
        ("OPSYNC_RESULT", exit.name()),
        ("OPSYNC_EXIT_CODE", code.as_str()),
        ("OPSYNC_FAILED_STEP", failed_step.unwrap_or("")),
        ("OPSYNC_MESSAGE", message.unwrap_or("")),
    ];
    let timeout: Duration = cfg.general.on_failure_timeout.0;
    let ended = super::step_command(cfg, argv, env).and_then(|c| c.timeout(timeout).status());
    match ended {
        Ok(Ended::Code(0)) => {
            tracing::info!(job = name, result = exit.name(), "on-failure command ran");
            true
        }
        Ok(other) => {
            tracing::error!(
                job = name,
                command = argv.join(" "),
                "on-failure command failed: {other}: the run's result is in `opsync status`"
            );
            false
        }
        Err(e) => {
            tracing::error!(
                job = name,
                command = argv.join(" "),
                "on-failure command failed: {e}: the run's result is in `opsync status`"
            );
            false
        }
    }
}
