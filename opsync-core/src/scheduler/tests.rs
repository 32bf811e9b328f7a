use std::sync::Mutex;

use chrono::NaiveDate;
use chrono_tz::Europe::Berlin;

use super::*;

fn timing(pattern: &str, zone: Zone) -> Timing {
    let s: crate::config::ScheduleValue = pattern.parse().unwrap();
    Timing { cron: s.cron, zone }
}

fn berlin(pattern: &str) -> Timing {
    timing(pattern, Zone::Named(Berlin))
}

fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn fmt(ts: &[DateTime<Utc>]) -> Vec<String> {
    ts.iter()
        .map(|t| t.format("%Y-%m-%dT%H:%MZ").to_string())
        .collect()
}

#[test]
fn daily_0200_runs_once_on_the_day_summer_time_starts() {
    // 2026-03-29: 02:00 CET jumps to 03:00 CEST; 02:00 does not exist. The job runs once,
    // right after the gap (03:00 CEST = 01:00Z).
    let t = berlin("0 2 * * *");
    let got = t.upcoming(utc("2026-03-27T12:00:00Z"), 4);
    assert_eq!(
        fmt(&got),
        [
            "2026-03-28T01:00Z", // 02:00 CET
            "2026-03-29T01:00Z", // 03:00 CEST, the first instant after the gap
            "2026-03-30T00:00Z", // 02:00 CEST
            "2026-03-31T00:00Z",
        ]
    );
}

#[test]
fn daily_0200_runs_once_on_the_day_summer_time_ends() {
    // 2026-10-25: 03:00 CEST falls back to 02:00 CET; 02:00 happens twice. The job runs once,
    // at the first 02:00 (CEST, 00:00Z).
    let t = berlin("0 2 * * *");
    let got = t.upcoming(utc("2026-10-23T12:00:00Z"), 4);
    assert_eq!(
        fmt(&got),
        [
            "2026-10-24T00:00Z",
            "2026-10-25T00:00Z", // 02:00 CEST only; not again at 02:00 CET (01:00Z)
            "2026-10-26T01:00Z", // 02:00 CET
            "2026-10-27T01:00Z",
        ]
    );
}

#[test]
fn daily_0230_in_the_gap_runs_once_after_it() {
    let t = berlin("30 2 * * *");
    let got = t.upcoming(utc("2026-03-28T12:00:00Z"), 2);
    assert_eq!(fmt(&got), ["2026-03-29T01:00Z", "2026-03-30T00:30Z"]);
}

#[test]
fn hourly_job_runs_in_both_copies_of_the_repeated_hour() {
    // Like cron: interval jobs follow the clock through the repeated hour.
    let t = berlin("30 * * * *");
    let got = t.upcoming(utc("2026-10-24T23:00:00Z"), 4);
    assert_eq!(
        fmt(&got),
        [
            "2026-10-24T23:30Z", // 01:30 CEST
            "2026-10-25T00:30Z", // 02:30 CEST
            "2026-10-25T01:30Z", // 02:30 CET
            "2026-10-25T02:30Z", // 03:30 CET
        ]
    );
}

#[test]
fn hourly_job_has_no_run_in_the_skipped_hour() {
    let t = berlin("30 * * * *");
    let got = t.upcoming(utc("2026-03-28T23:00:00Z"), 3);
    assert_eq!(
        fmt(&got),
        [
            "2026-03-28T23:30Z", // 00:30 CET
            "2026-03-29T00:30Z", // 01:30 CET
            "2026-03-29T01:30Z", // 03:30 CEST (02:30 does not exist)
        ]
    );
}

#[test]
fn crontab_syntax_cases() {
    // (pattern, after, expected next fire times in UTC)
    let cases: &[(&str, &str, &[&str])] = &[
        // Sunday as 0 and as 7. 2026-11-29 is a Sunday.
        (
            "0 9 * * 0",
            "2026-11-27T00:00:00Z",
            &["2026-11-29T09:00Z", "2026-12-06T09:00Z"],
        ),
        (
            "0 9 * * 7",
            "2026-11-27T00:00:00Z",
            &["2026-11-29T09:00Z", "2026-12-06T09:00Z"],
        ),
        (
            "0 9 * * SUN",
            "2026-11-27T00:00:00Z",
            &["2026-11-29T09:00Z"],
        ),
        // Weekday ranges: 2026-11-27 is a Friday.
        (
            "30 6 * * MON-FRI",
            "2026-11-27T07:00:00Z",
            &["2026-11-30T06:30Z", "2026-12-01T06:30Z"],
        ),
        // Steps.
        (
            "*/15 * * * *",
            "2026-11-27T07:01:00Z",
            &["2026-11-27T07:15Z", "2026-11-27T07:30Z"],
        ),
        // Day of month OR day of week (crontab): the 1st, and every Monday.
        (
            "0 0 1 * MON",
            "2026-11-28T00:00:00Z",
            &[
                "2026-11-30T00:00Z",
                "2026-12-01T00:00Z",
                "2026-12-07T00:00Z",
            ],
        ),
    ];
    for (pattern, after, want) in cases {
        let t = timing(pattern, Zone::Named(chrono_tz::UTC));
        let got = t.upcoming(utc(after), want.len());
        assert_eq!(fmt(&got), *want, "{pattern} after {after}");
    }
}

#[test]
fn missed_run_cases() {
    let t = berlin("0 2 * * *");
    let now = utc("2026-06-10T08:00:00Z"); // 10:00 CEST
    let fire = utc("2026-06-10T00:00:00Z"); // today 02:00 CEST
    // (last start, expected missed fire)
    let cases = [
        (None, None),                                    // never ran: nothing to catch up
        (Some(utc("2026-06-09T00:00:05Z")), Some(fire)), // ran yesterday, missed today
        (Some(utc("2026-06-01T00:00:00Z")), Some(fire)), // down for days: one run only
        (Some(utc("2026-06-10T00:00:01Z")), None),       // ran today
        (Some(utc("2026-06-10T07:00:00Z")), None),       // manual run after the fire time
    ];
    for (last, want) in cases {
        assert_eq!(missed_run(&t, last, now), want, "last start {last:?}");
    }
}

#[test]
fn schedule_next_lists_times_in_order() {
    let t = berlin("0 2 * * *");
    let got = t.upcoming(utc("2026-01-01T00:00:00Z"), 5);
    assert_eq!(got.len(), 5);
    assert!(got.windows(2).all(|w| w[0] < w[1]));
    let d = NaiveDate::from_ymd_opt(2026, 1, 1).unwrap();
    assert_eq!(got[0].with_timezone(&Berlin).date_naive(), d);
}

// The loop, under tokio's paused clock: virtual hours pass instantly and deterministically.

type Log = Arc<Mutex<Vec<(DateTime<Utc>, Event)>>>;

/// A fake job: takes `duration` of (virtual) time, or stops early when cancelled.
struct FakeRunner {
    duration: Duration,
    exit: Exit,
}

impl Runner for FakeRunner {
    fn run(&self, _job: &str, cancel: Cancel) -> RunFuture {
        let (duration, exit) = (self.duration, self.exit);
        Box::pin(async move {
            let end = tokio::time::Instant::now() + duration;
            while tokio::time::Instant::now() < end {
                if cancel.is_cancelled() {
                    return Exit::Signal;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            exit
        })
    }
}

struct Harness {
    log: Log,
    shutdown: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

fn start_loop(
    jobs: Vec<ScheduledJob>,
    start: &str,
    runner: FakeRunner,
    grace: Duration,
) -> Harness {
    let log: Log = Arc::default();
    let sink_log = log.clone();
    let sink: EventSink = Arc::new(move |t, e| sink_log.lock().unwrap().push((t, e.clone())));
    let (tx, rx) = watch::channel(false);
    let clock = Clock::starting_at(utc(start));
    let task = tokio::spawn(run_loop(jobs, clock, Arc::new(runner), rx, grace, sink));
    Harness {
        log,
        shutdown: tx,
        task,
    }
}

fn job(pattern: &str, catch_up: bool, last_start: Option<&str>) -> ScheduledJob {
    ScheduledJob {
        name: "j".into(),
        timing: timing(pattern, Zone::Named(chrono_tz::UTC)),
        catch_up,
        last_start: last_start.map(utc),
    }
}

fn render(log: &Log) -> Vec<String> {
    log.lock()
        .unwrap()
        .iter()
        .map(|(t, e)| {
            let t = t.format("%H:%M:%S");
            match e {
                Event::Started { fire, catch_up, .. } => {
                    format!("{t} start {} catch_up={catch_up}", fire.format("%d %H:%M"))
                }
                Event::Skipped { fire, .. } => format!("{t} skip {}", fire.format("%H:%M")),
                Event::Finished { exit, .. } => format!("{t} end {}", exit.code()),
                Event::Cancelled { .. } => format!("{t} cancel"),
                Event::NoMoreFires { .. } => format!("{t} no-more"),
            }
        })
        .collect()
}

async fn stop(h: Harness) -> Log {
    h.shutdown.send(true).unwrap();
    h.task.await.unwrap();
    h.log
}

#[tokio::test(start_paused = true)]
async fn loop_fires_on_schedule_and_a_failing_job_does_not_stop_it() {
    let h = start_loop(
        vec![job("0 * * * *", false, None)],
        "2026-06-10T00:59:00Z",
        FakeRunner {
            duration: Duration::from_secs(60),
            exit: Exit::Failed,
        },
        Duration::from_secs(60),
    );
    tokio::time::sleep(Duration::from_secs(2 * 3600 + 30 * 60)).await;
    let log = stop(h).await;
    assert_eq!(
        render(&log),
        [
            "01:00:00 start 10 01:00 catch_up=false",
            "01:01:00 end 10",
            "02:00:00 start 10 02:00 catch_up=false",
            "02:01:00 end 10",
            "03:00:00 start 10 03:00 catch_up=false",
            "03:01:00 end 10",
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn loop_skips_a_fire_time_while_the_previous_run_is_going() {
    let h = start_loop(
        vec![job("0 * * * *", false, None)],
        "2026-06-10T00:59:00Z",
        FakeRunner {
            duration: Duration::from_secs(90 * 60),
            exit: Exit::Ok,
        },
        Duration::from_secs(60),
    );
    tokio::time::sleep(Duration::from_secs(3 * 3600 + 40 * 60)).await; // 04:39
    let log = stop(h).await;
    assert_eq!(
        render(&log),
        [
            "01:00:00 start 10 01:00 catch_up=false",
            "02:00:00 skip 02:00",
            "02:30:00 end 0",
            "03:00:00 start 10 03:00 catch_up=false",
            "04:00:00 skip 04:00",
            "04:30:00 end 0",
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn loop_catches_up_once_at_start_up() {
    // Down since before yesterday's 02:00: one catch-up run at start-up, standing in for the
    // most recent fire time, then the normal schedule.
    let h = start_loop(
        vec![job("0 2 * * *", true, Some("2026-06-08T02:00:00Z"))],
        "2026-06-10T09:00:00Z",
        FakeRunner {
            duration: Duration::from_secs(600),
            exit: Exit::Ok,
        },
        Duration::from_secs(60),
    );
    tokio::time::sleep(Duration::from_secs(18 * 3600)).await;
    let log = stop(h).await;
    assert_eq!(
        render(&log),
        [
            "09:00:00 start 10 02:00 catch_up=true",
            "09:10:00 end 0",
            "02:00:00 start 11 02:00 catch_up=false",
            "02:10:00 end 0",
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn loop_without_catch_up_waits_for_the_next_fire_time() {
    let h = start_loop(
        vec![job("0 2 * * *", false, Some("2026-06-08T02:00:00Z"))],
        "2026-06-10T09:00:00Z",
        FakeRunner {
            duration: Duration::from_secs(600),
            exit: Exit::Ok,
        },
        Duration::from_secs(60),
    );
    tokio::time::sleep(Duration::from_secs(3600)).await;
    let log = stop(h).await;
    assert!(render(&log).is_empty());
}

#[tokio::test(start_paused = true)]
async fn shutdown_lets_a_short_run_finish() {
    let h = start_loop(
        vec![job("0 * * * *", false, None)],
        "2026-06-10T00:59:00Z",
        FakeRunner {
            duration: Duration::from_secs(30),
            exit: Exit::Ok,
        },
        Duration::from_secs(60),
    );
    tokio::time::sleep(Duration::from_secs(61)).await; // 01:00:01, the run is going
    let log = stop(h).await;
    assert_eq!(
        render(&log),
        ["01:00:00 start 10 01:00 catch_up=false", "01:00:30 end 0"]
    );
}

#[tokio::test(start_paused = true)]
async fn shutdown_cancels_a_long_run_after_the_grace_period() {
    let h = start_loop(
        vec![job("0 * * * *", false, None)],
        "2026-06-10T00:59:00Z",
        FakeRunner {
            duration: Duration::from_secs(7200),
            exit: Exit::Ok,
        },
        Duration::from_secs(120),
    );
    tokio::time::sleep(Duration::from_secs(60 + 600)).await; // 01:10
    let log = stop(h).await;
    assert_eq!(
        render(&log),
        [
            "01:00:00 start 10 01:00 catch_up=false",
            "01:12:00 cancel",
            "01:12:00 end 20",
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn dst_fire_times_drive_the_loop() {
    // The loop in Europe/Berlin across the night summer time starts: one run at 03:00 CEST.
    let h = start_loop(
        vec![ScheduledJob {
            name: "nightly".into(),
            timing: berlin("0 2 * * *"),
            catch_up: false,
            last_start: None,
        }],
        "2026-03-28T23:00:00Z",
        FakeRunner {
            duration: Duration::from_secs(60),
            exit: Exit::Ok,
        },
        Duration::from_secs(60),
    );
    tokio::time::sleep(Duration::from_secs(4 * 3600)).await;
    let log = stop(h).await;
    assert_eq!(
        render(&log),
        ["01:00:00 start 29 01:00 catch_up=false", "01:01:00 end 0"]
    );
}
