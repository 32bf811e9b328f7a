//! The scheduler of `opsync daemon`: pure fire-time computation (every function takes `now` as
//! an argument) and the tokio loop, which reads time only through an injected [`Clock`].
//!
//! Semantics follow cron (Vixie/cronie) and systemd timers:
//! - 5-field crontab lines parsed by `croner` (Sunday is 0 or 7; day-of-month and day-of-week
//!   combine by OR when both are restricted).
//! - Daylight saving: a fixed-time job (`0 2 * * *`) whose time is skipped runs once right after
//!   the gap (03:00 on the day summer time starts in Europe); one whose time is repeated runs once,
//!   at the first occurrence. Interval jobs (`*/15 * * * *`) run in both copies of a repeated hour.
//! - One run of a job at a time: a fire time that comes while the previous run is still going is
//!   skipped and logged.
//! - Catch-up (like `Persistent=` of systemd timers): a job with `catch-up = true` whose most
//!   recent fire time lies after its last recorded start runs once at start-up. A job that never
//!   ran has nothing to catch up.
//! - Shutdown: no new runs; a running job gets the grace period, then its [`Cancel`] is set (the
//!   job stops its current step but still runs its clean-up steps), and the loop waits for it.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use tokio::sync::watch;

use crate::config::{Config, JobConfig};
use crate::exit::Exit;
use crate::process::Cancel;

/// The time zone a schedule is read in.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Zone {
    /// The system's local time (`TZ`, `/etc/localtime`).
    Local,
    Named(chrono_tz::Tz),
}

impl std::fmt::Display for Zone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Zone::Local => f.write_str("local"),
            Zone::Named(tz) => f.write_str(tz.name()),
        }
    }
}

/// A schedule in its time zone.
#[derive(Debug, Clone)]
pub struct Timing {
    pub cron: croner::Cron,
    pub zone: Zone,
}

impl Timing {
    /// The schedule of `job`, in its time zone, else `[general] timezone`, else local time.
    pub fn of(cfg: &Config, job: &JobConfig) -> Timing {
        let zone = job
            .timezone
            .or(cfg.general.timezone)
            .map_or(Zone::Local, |z| Zone::Named(z.0));
        Timing {
            cron: job.schedule.cron.clone(),
            zone,
        }
    }

    /// The first fire time strictly after `t`.
    pub fn next_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self.zone {
            Zone::Local => next_in(&self.cron, &t.with_timezone(&chrono::Local)),
            Zone::Named(tz) => next_in(&self.cron, &t.with_timezone(&tz)),
        }
    }

    /// The last fire time at or before `t`.
    pub fn prev_at_or_before(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self.zone {
            Zone::Local => prev_in(&self.cron, &t.with_timezone(&chrono::Local)),
            Zone::Named(tz) => prev_in(&self.cron, &t.with_timezone(&tz)),
        }
    }

    /// The next `n` fire times after `t`.
    pub fn upcoming(&self, t: DateTime<Utc>, n: usize) -> Vec<DateTime<Utc>> {
        let mut out = Vec::with_capacity(n);
        let mut cursor = t;
        while out.len() < n {
            match self.next_after(cursor) {
                Some(next) => {
                    out.push(next);
                    cursor = next;
                }
                None => break,
            }
        }
        out
    }

    /// `t` as wall-clock time of this schedule's zone, for display.
    pub fn display(&self, t: DateTime<Utc>) -> String {
        match self.zone {
            Zone::Local => t
                .with_timezone(&chrono::Local)
                .format("%Y-%m-%d %H:%M %Z")
                .to_string(),
            Zone::Named(tz) => t.with_timezone(&tz).format("%Y-%m-%d %H:%M %Z").to_string(),
        }
    }
}

fn next_in<Tz: TimeZone>(cron: &croner::Cron, t: &DateTime<Tz>) -> Option<DateTime<Utc>> {
    cron.find_next_occurrence(t, false)
        .ok()
        .map(|d| d.with_timezone(&Utc))
}

fn prev_in<Tz: TimeZone>(cron: &croner::Cron, t: &DateTime<Tz>) -> Option<DateTime<Utc>> {
    cron.find_previous_occurrence(t, true)
        .ok()
        .map(|d| d.with_timezone(&Utc))
}

/// The fire time a catch-up run stands in for: the most recent fire time at or before `now`
/// when it lies after the last recorded start. None when the job never ran (nothing recorded)
/// or did not miss a run.
pub fn missed_run(
    timing: &Timing,
    last_start: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    let last = last_start?;
    let prev = timing.prev_at_or_before(now)?;
    (prev > last).then_some(prev)
}

/// Where the loop gets the time from. Production uses [`Clock::System`]; tests use
/// [`Clock::Shifted`] under tokio's paused time, so virtual hours pass in microseconds.
#[derive(Debug, Clone)]
pub enum Clock {
    System,
    /// Starts at `start` when tokio's clock reads `at` and runs with tokio's clock.
    Shifted {
        start: DateTime<Utc>,
        at: tokio::time::Instant,
    },
}

impl Clock {
    /// A clock that reads `start` now and runs at tokio's pace from here.
    pub fn starting_at(start: DateTime<Utc>) -> Clock {
        Clock::Shifted {
            start,
            at: tokio::time::Instant::now(),
        }
    }

    pub fn now(&self) -> DateTime<Utc> {
        match self {
            Clock::System => Utc::now(),
            Clock::Shifted { start, at } => {
                let elapsed = tokio::time::Instant::now().saturating_duration_since(*at);
                *start + chrono::Duration::from_std(elapsed).unwrap_or(chrono::Duration::MAX)
            }
        }
    }

    /// Waits until the clock reads `t` or later. Sleeps at most a minute at a time and reads
    /// the clock again, so a wall clock that jumps (NTP, suspend) is noticed.
    pub async fn sleep_until(&self, t: DateTime<Utc>) {
        loop {
            let now = self.now();
            if now >= t {
                return;
            }
            let left = (t - now).to_std().unwrap_or_default();
            tokio::time::sleep(left.min(Duration::from_secs(60))).await;
        }
    }
}

/// A boxed future of a job run.
pub type RunFuture = Pin<Box<dyn Future<Output = Exit> + Send>>;

/// Runs one job (production: lock, steps, state, metrics; tests: a fake).
pub trait Runner: Send + Sync + 'static {
    fn run(&self, job: &str, cancel: Cancel) -> RunFuture;
}

/// One job as the loop sees it.
#[derive(Debug, Clone)]
pub struct ScheduledJob {
    pub name: String,
    pub timing: Timing,
    pub catch_up: bool,
    /// Start of the last recorded run (from the state file).
    pub last_start: Option<DateTime<Utc>>,
}

/// What the loop decided, with the clock's time.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A run started for the fire time `fire` (a catch-up run names the missed fire time).
    Started {
        job: String,
        fire: DateTime<Utc>,
        catch_up: bool,
    },
    /// `fire` came while the previous run was still going.
    Skipped { job: String, fire: DateTime<Utc> },
    /// A run ended.
    Finished { job: String, exit: Exit },
    /// The grace period ran out; the run was told to stop.
    Cancelled { job: String },
    /// The schedule has no further fire time.
    NoMoreFires { job: String },
}

/// Receives every [`Event`] with the clock's time (production: logging only).
pub type EventSink = Arc<dyn Fn(DateTime<Utc>, &Event) + Send + Sync>;

/// Runs every job on its schedule until `shutdown` turns true, then lets running jobs finish
/// within `grace` and cancels them after it. Returns when every job's loop has ended.
pub async fn run_loop(
    jobs: Vec<ScheduledJob>,
    clock: Clock,
    runner: Arc<dyn Runner>,
    shutdown: watch::Receiver<bool>,
    grace: Duration,
    sink: EventSink,
) {
    let mut tasks = Vec::new();
    for job in jobs {
        tasks.push(tokio::spawn(job_loop(
            job,
            clock.clone(),
            runner.clone(),
            shutdown.clone(),
            grace,
            sink.clone(),
        )));
    }
    for t in tasks {
        let _ = t.await;
    }
}

struct Running {
    handle: tokio::task::JoinHandle<()>,
    cancel: Cancel,
}

async fn job_loop(
    job: ScheduledJob,
    clock: Clock,
    runner: Arc<dyn Runner>,
    mut shutdown: watch::Receiver<bool>,
    grace: Duration,
    sink: EventSink,
) {
    let emit = |e: Event| {
        log_event(&e);
        sink(clock.now(), &e);
    };
    let start = |fire: DateTime<Utc>, catch_up: bool| -> Running {
        emit(Event::Started {
            job: job.name.clone(),
            fire,
            catch_up,
        });
        let cancel = Cancel::new();
        let fut = runner.run(&job.name, cancel.clone());
        let (name, clock2, sink2) = (job.name.clone(), clock.clone(), sink.clone());
        let handle = tokio::spawn(async move {
            let exit = fut.await;
            let e = Event::Finished { job: name, exit };
            log_event(&e);
            sink2(clock2.now(), &e);
        });
        Running { handle, cancel }
    };

    let mut running: Option<Running> = None;
    let now = clock.now();
    if job.catch_up {
        if let Some(missed) = missed_run(&job.timing, job.last_start, now) {
            running = Some(start(missed, true));
        }
    }
    let mut next = job.timing.next_after(now);
    loop {
        let Some(fire) = next else {
            emit(Event::NoMoreFires {
                job: job.name.clone(),
            });
            let _ = shutdown.wait_for(|v| *v).await;
            break;
        };
        tokio::select! {
            _ = clock.sleep_until(fire) => {}
            _ = shutdown.wait_for(|v| *v) => break,
        }
        if running.as_ref().is_some_and(|r| !r.handle.is_finished()) {
            emit(Event::Skipped {
                job: job.name.clone(),
                fire,
            });
        } else {
            running = Some(start(fire, false));
        }
        next = job.timing.next_after(fire.max(clock.now()));
    }

    // Shutdown: let the running job finish within the grace period, then cancel it and wait
    // for its clean-up steps.
    if let Some(mut r) = running.take() {
        if !r.handle.is_finished() && tokio::time::timeout(grace, &mut r.handle).await.is_err() {
            r.cancel.cancel();
            emit(Event::Cancelled {
                job: job.name.clone(),
            });
            let _ = r.handle.await;
        }
    }
}

fn log_event(e: &Event) {
    match e {
        Event::Started {
            job,
            fire,
            catch_up,
        } => tracing::info!(job = %job, fire = %fire, catch_up, "job started"),
        Event::Skipped { job, fire } => tracing::warn!(
            job = %job,
            fire = %fire,
            "run skipped: the previous run is still going"
        ),
        Event::Finished { job, exit } => {
            tracing::info!(job = %job, exit_code = exit.code(), "job finished")
        }
        Event::Cancelled { job } => tracing::warn!(
            job = %job,
            "shutdown grace period over: stopping the running step (clean-up steps still run)"
        ),
        Event::NoMoreFires { job } => {
            tracing::warn!(job = %job, "schedule has no further fire time")
        }
    }
}

#[cfg(test)]
mod tests;
