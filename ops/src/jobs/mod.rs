//! Jobs: what `opsync daemon` runs on a schedule and `opsync run JOB` runs now. Every run takes
//! the job's lock, records its start and end in the state file, and rewrites the metrics file.
//!
//! Kinds: `sync` (the nightly mirror with its steps, [`nightly`]), `certs` (certificate
//! renewal), `stack-update` (pull and restart one stack) and `command` (any program).
//!
//! Jobs use the libraries (`opsync_core` for locks, state, metrics and child processes,
//! `opsync_stacks`, `opsync_certs`) and [`crate::events`] to read their children's output; they
//! never call into the command modules, print nothing (they log), and return typed results: a
//! [`Report`] per run, [`JobError`] when a run cannot start.

pub mod nightly;
pub mod on_failure;
pub mod tally;

use std::time::Instant;

use chrono::Utc;

use opsync_core::config::{Config, JobConfig, JobKind, QuiesceMode};
use opsync_core::error::one_line;
use opsync_core::exit::{Exit, ToExit};
use opsync_core::process::{Cancel, Command, Ended, ProcessError};
use opsync_core::state::{CertRecord, JobState, PathList, StateStore, StepRecord};

/// A job that could not run at all (its steps' failures are in its result instead).
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error("{0}")]
    Unknown(String),
    #[error(transparent)]
    Lock(#[from] opsync_core::lock::LockError),
    #[error(transparent)]
    State(#[from] opsync_core::state::StateError),
    /// The state folder cannot be used by this configuration.
    #[error(transparent)]
    StateDir(#[from] opsync_core::config::ConfigError),
}

impl ToExit for JobError {
    fn exit(&self) -> Exit {
        match self {
            JobError::StateDir(_) => Exit::Config,
            _ => Exit::Failed,
        }
    }
}

/// How a run was started (recorded in the state).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    Schedule,
    Manual,
}

impl Trigger {
    fn as_str(self) -> &'static str {
        match self {
            Trigger::Schedule => "schedule",
            Trigger::Manual => "manual",
        }
    }
}

/// What a job kind reports back.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub exit: Option<Exit>,
    pub steps: Vec<StepRecord>,
    pub bytes: Option<u64>,
    pub files: Option<u64>,
    pub paused_seconds: Option<f64>,
    pub failed_step: Option<String>,
    pub message: Option<String>,
    /// Nightly sync: files copied again by content in pass 2 (see [`JobState::repaired`]).
    pub repaired: Option<PathList>,
    /// Nightly sync: differences left after pass 2 (see [`JobState::remaining`]).
    pub remaining: Option<PathList>,
    pub certs: Vec<CertRecord>,
}

/// Runs job `name` now: lock, state, steps, metrics. Returns the job's result; a job held by
/// another run gives [`Exit::Locked`] without touching the state.
pub fn run_job(
    cfg: &Config,
    name: &str,
    trigger: Trigger,
    cancel: &Cancel,
) -> Result<Exit, JobError> {
    let job = cfg
        .jobs
        .get(name)
        .ok_or_else(|| JobError::Unknown(cfg.unknown_job(name)))?;
    let state_dir = cfg.claim_state_dir()?;
    let _lock = match opsync_core::lock::try_lock(&state_dir, name) {
        Ok(l) => l,
        Err(opsync_core::lock::LockError::Held { pid, path }) => {
            tracing::warn!(
                job = name,
                "job {name} is already running (pid {pid}, lock {}): wait for it to finish",
                path.display()
            );
            return Ok(Exit::Locked);
        }
        Err(e) => return Err(e.into()),
    };
    let store = StateStore::new(&state_dir);
    let mut state = store.load(name).ok().flatten().unwrap_or_default();
    state.job = name.to_string();
    state.kind = job.kind.as_str().to_string();
    let started = Utc::now();
    state.running = true;
    state.pid = Some(std::process::id());
    state.trigger = Some(trigger.as_str().to_string());
    state.last_start = Some(started);
    store.save(&state)?;
    write_metrics(cfg, &store);

    tracing::info!(
        job = name,
        kind = job.kind.as_str(),
        trigger = trigger.as_str(),
        "run started"
    );
    let t0 = Instant::now();
    let stack_locks = lock_stacks(&state_dir, name, &stacks_of(job), cancel);
    let report = match &stack_locks {
        Ok(_) => run_kind(cfg, name, job, cancel),
        Err(r) => (**r).clone(),
    };
    drop(stack_locks);
    let duration = t0.elapsed().as_secs_f64();
    let exit = report.exit.unwrap_or(Exit::Ok);

    let ended = Utc::now();
    state.running = false;
    state.pid = None;
    state.last_end = Some(ended);
    state.result = Some(exit.name().to_string());
    state.exit_code = Some(exit.code());
    state.duration_seconds = Some(duration);
    state.bytes = report.bytes;
    state.files = report.files;
    state.paused_seconds = report.paused_seconds;
    state.failed_step = report.failed_step.clone();
    state.message = report.message.clone();
    state.repaired = report.repaired;
    state.remaining = report.remaining;
    state.steps = report.steps;
    if !report.certs.is_empty() {
        state.certs = report.certs;
    }
    if exit == Exit::Ok || exit == Exit::Attention {
        state.last_success = Some(ended);
    }
    store.save(&state)?;
    write_metrics(cfg, &store);
    if exit == Exit::Ok {
        tracing::info!(
            job = name,
            result = exit.name(),
            duration_s = duration,
            "run finished"
        );
    } else {
        tracing::error!(
            job = name,
            result = exit.name(),
            exit_code = exit.code(),
            failed_step = report.failed_step.as_deref().unwrap_or(""),
            error = report.message.as_deref().unwrap_or(""),
            duration_s = duration,
            "run finished"
        );
    }
    on_failure::notify(
        cfg,
        name,
        job,
        exit,
        report.failed_step.as_deref(),
        report.message.as_deref(),
    );
    Ok(exit)
}

/// Longest a job waits for a stack another job is working on.
const STACK_WAIT: std::time::Duration = std::time::Duration::from_secs(3600);

/// The compose stacks a job stops, pauses or updates: two such jobs never work on the same
/// stack at once (a stack update must not restart production while the nightly sync has it
/// paused).
fn stacks_of(job: &JobConfig) -> Vec<String> {
    let mut v = Vec::new();
    match job.kind {
        JobKind::Sync => {
            if job.dev.enabled {
                v.push(job.dev.stack.clone());
            }
            if matches!(job.quiesce.mode, QuiesceMode::Pause | QuiesceMode::Stop) {
                v.push(job.quiesce.stack.clone());
            }
        }
        JobKind::StackUpdate => v.extend(job.stack.clone()),
        JobKind::Certs | JobKind::Command => {}
    }
    v.sort();
    v.dedup();
    v
}

/// Takes the lock of every stack in `stacks` (in name order, so two jobs cannot deadlock),
/// waiting while another job holds one, up to [`STACK_WAIT`] or until cancelled.
fn lock_stacks(
    state_dir: &std::path::Path,
    job: &str,
    stacks: &[String],
    cancel: &Cancel,
) -> Result<Vec<opsync_core::lock::Lock>, Box<Report>> {
    let mut held = Vec::new();
    let until = Instant::now() + STACK_WAIT;
    for stack in stacks {
        let mut logged = false;
        loop {
            match opsync_core::lock::try_lock(state_dir, &format!("stack-{stack}")) {
                Ok(l) => {
                    held.push(l);
                    break;
                }
                Err(opsync_core::lock::LockError::Held { pid, .. }) => {
                    if !logged {
                        tracing::warn!(
                            job,
                            stack = %stack,
                            holder_pid = %pid,
                            "waiting for stack {stack}: another job is working on it"
                        );
                        logged = true;
                    }
                    if cancel.is_cancelled() || Instant::now() >= until {
                        return Err(Box::new(Report {
                            exit: Some(if cancel.is_cancelled() {
                                Exit::Signal
                            } else {
                                Exit::Locked
                            }),
                            failed_step: Some("wait-for-stack".into()),
                            message: Some(format!(
                                "stack {stack} stayed busy with another job (pid {pid}); this \
                                 run did nothing"
                            )),
                            ..Report::default()
                        }));
                    }
                    std::thread::sleep(std::time::Duration::from_millis(200));
                }
                Err(e) => {
                    return Err(Box::new(failed("wait-for-stack", e.to_string())));
                }
            }
        }
    }
    Ok(held)
}

fn write_metrics(cfg: &Config, store: &StateStore) {
    let Some(path) = cfg.metrics_file() else {
        return;
    };
    let states: Vec<JobState> = cfg
        .jobs
        .keys()
        .filter_map(|j| store.load(j).ok().flatten())
        .collect();
    if let Err(e) = opsync_core::metrics::write(&path, &states) {
        tracing::error!(path = %path.display(), "{e}: check [general] metrics-file");
    }
}

fn run_kind(cfg: &Config, name: &str, job: &JobConfig, cancel: &Cancel) -> Report {
    match job.kind {
        JobKind::Sync => nightly::run(cfg, name, job, cancel),
        JobKind::Certs => {
            let r = opsync_certs::renew_job(cfg);
            Report {
                exit: Some(if r.attention {
                    Exit::Attention
                } else {
                    Exit::Ok
                }),
                certs: r
                    .expiries
                    .into_iter()
                    .map(|c| CertRecord {
                        name: c.name,
                        source: c.source.to_string(),
                        days_left: c.days_left,
                    })
                    .collect(),
                message: r.attention.then(|| {
                    "a certificate needs attention: run `opsync certs status`".to_string()
                }),
                ..Report::default()
            }
        }
        JobKind::StackUpdate => {
            let stack = job.stack.as_deref().unwrap_or("prod");
            match opsync_stacks::update(cfg, stack) {
                Ok(r) if r.rolled_back => Report {
                    exit: Some(Exit::Attention),
                    failed_step: Some("update".into()),
                    message: Some(format!(
                        "the new images of {stack} failed and the old ones were put back"
                    )),
                    ..Report::default()
                },
                Ok(_) => Report::default(),
                Err(e) => failed("update", one_line(&e)),
            }
        }
        JobKind::Command => {
            let argv = job.command.clone().unwrap_or_default();
            let ended = step_command(cfg, &argv, [("OPSYNC_JOB", name)])
                .map(|c| c.deadline(job.timeout.map(|t| Instant::now() + t.0)))
                .and_then(|c| c.cancel(Some(cancel)).status());
            match ended {
                Ok(Ended::Code(0)) => Report::default(),
                Ok(ended @ Ended::Cancelled) => Report {
                    exit: Some(Exit::Signal),
                    failed_step: Some("command".into()),
                    message: Some(ended.to_string()),
                    ..Report::default()
                },
                Ok(other) => failed("command", format!("{}: {other}", argv[0])),
                Err(e) => failed("command", e.to_string()),
            }
        }
    }
}

/// A configured command of a job: no shell, run in the config file's folder with `env` added
/// (`OPSYNC_JOB`, `OPSYNC_STEP`, ...); its output goes to opsync's stderr. A command that
/// starts with `opsync` runs this same binary, with `OPSYNC_CONFIG` naming this configuration
/// file (`command = ["opsync", "stack", "prune"]`).
pub fn step_command<I, K, V>(cfg: &Config, argv: &[String], env: I) -> Result<Command, ProcessError>
where
    I: IntoIterator<Item = (K, V)>,
    K: AsRef<std::ffi::OsStr>,
    V: AsRef<std::ffi::OsStr>,
{
    let mut argv = argv.to_vec();
    if argv.first().is_some_and(|p| p == "opsync") {
        if let Ok(exe) = std::env::current_exe() {
            argv[0] = exe.display().to_string();
        }
    }
    let mut cmd = Command::from_argv(&argv)?.current_dir(&cfg.base_dir);
    if let Some(file) = &cfg.file {
        cmd = cmd.env("OPSYNC_CONFIG", file);
    }
    Ok(cmd.envs(env))
}

fn failed(step: &str, message: String) -> Report {
    Report {
        exit: Some(Exit::Failed),
        failed_step: Some(step.to_string()),
        message: Some(message),
        ..Report::default()
    }
}
