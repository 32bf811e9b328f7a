//! `opsync daemon`: runs every enabled job on its schedule until SIGTERM or SIGINT.

use std::sync::Arc;

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use tokio::sync::watch;

use crate::cli::DaemonArgs;
use crate::commands::config::load_checked;
use crate::commands::{Global, fail};
use crate::jobs::{Trigger, run_job};
use opsync_core::config::Config;
use opsync_core::error::one_line;
use opsync_core::exit::Exit;
use opsync_core::process::Cancel;
use opsync_core::scheduler::{Clock, EventSink, RunFuture, Runner, ScheduledJob, Timing};
use opsync_core::state::StateStore;

/// Runs jobs through [`run_job`] on tokio's blocking pool.
struct JobRunner {
    cfg: Arc<Config>,
}

impl Runner for JobRunner {
    fn run(&self, job: &str, cancel: Cancel) -> RunFuture {
        let cfg = self.cfg.clone();
        let job = job.to_string();
        Box::pin(async move {
            let name = job.clone();
            let r = tokio::task::spawn_blocking(move || {
                run_job(&cfg, &job, Trigger::Schedule, &cancel)
            })
            .await;
            match r {
                Ok(Ok(exit)) => exit,
                Ok(Err(e)) => {
                    tracing::error!(job = %name, "job could not run: {}", one_line(&e));
                    Exit::Failed
                }
                Err(e) => {
                    tracing::error!(job = %name, "job crashed: {e}");
                    Exit::Failed
                }
            }
        })
    }
}

pub fn run(global: &Global, args: DaemonArgs) -> Exit {
    let cfg = match load_checked(global) {
        Ok(c) => c,
        Err(e) => return e,
    };
    match daemon(cfg, &args) {
        Ok(e) => e,
        Err(e) => fail(Exit::Failed, &e),
    }
}

fn daemon(cfg: Config, args: &DaemonArgs) -> anyhow::Result<Exit> {
    let start: Option<DateTime<Utc>> = match &args.test_start_time {
        None => None,
        Some(s) => Some(
            DateTime::parse_from_rfc3339(s)
                .with_context(|| format!("--test-start-time {s}: write RFC 3339"))?
                .with_timezone(&Utc),
        ),
    };
    let store = StateStore::new(&cfg.claim_state_dir()?);
    let mut jobs = Vec::new();
    for (name, job) in cfg.jobs.iter().filter(|(_, j)| j.enabled) {
        let last_start = match store.load(name) {
            Ok(s) => s.and_then(|s| s.last_start),
            Err(e) => {
                tracing::warn!(job = %name, "{e}");
                None
            }
        };
        jobs.push(ScheduledJob {
            name: name.clone(),
            timing: Timing::of(&cfg, job),
            catch_up: job.catch_up,
            last_start,
        });
    }
    if jobs.is_empty() {
        anyhow::bail!(
            "no enabled jobs in {}: add a [jobs.NAME] table (see `opsync config example`)",
            cfg.display_file()
        );
    }
    let grace = cfg.general.shutdown_grace.0;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let cfg = Arc::new(cfg);
    rt.block_on(async move {
        let clock = match start {
            Some(t) => Clock::starting_at(t),
            None => Clock::System,
        };
        let now = clock.now();
        for j in &jobs {
            let next = j.timing.next_after(now);
            tracing::info!(
                job = %j.name,
                next_run = %next.map_or("never".into(), |t| j.timing.display(t)),
                catch_up = j.catch_up,
                "scheduled"
            );
        }
        let (tx, rx) = watch::channel(false);
        tokio::spawn(async move {
            use tokio::signal::unix::{SignalKind, signal};
            let (Ok(mut term), Ok(mut int)) = (
                signal(SignalKind::terminate()),
                signal(SignalKind::interrupt()),
            ) else {
                tracing::error!("cannot listen for SIGTERM/SIGINT");
                return;
            };
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
            tracing::info!(
                grace_s = grace.as_secs(),
                "shutting down: no new runs; a running job may finish within the grace period"
            );
            let _ = tx.send(true);
        });
        let sink: EventSink = Arc::new(|_, _| {});
        let runner = Arc::new(JobRunner { cfg });
        opsync_core::scheduler::run_loop(jobs, clock, runner, rx, grace, sink).await;
    });
    tracing::info!("daemon stopped");
    Ok(Exit::Ok)
}
