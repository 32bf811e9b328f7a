//! `opsync daemon` end to end: a job fires on time (with the scheduler's clock started at a
//! chosen time through a hidden test option), catch-up at start-up, and SIGTERM during a run.
//! Waits are on conditions (files appearing) with a timeout, never fixed sleeps.

use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use crate::nightly::{Server, assert_exit};

fn start_daemon(s: &Server, start_time: Option<&str>) -> Child {
    let mut cmd = opsync_tests::opsync();
    cmd.current_dir(s.dir.path())
        .arg("--config")
        .arg(s.path("opsync.toml"))
        .args(["--log-format", "json", "daemon"])
        .env("OPSYNC_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::from(
            std::fs::File::create(s.path("daemon.log")).unwrap(),
        ));
    if let Some(t) = start_time {
        cmd.env("OPSYNC_TEST_START_TIME", t);
    }
    cmd.spawn().unwrap()
}

/// Waits until `cond` holds, at most `secs` seconds.
#[track_caller]
fn wait_for(what: &str, secs: u64, log: &Path, mut cond: impl FnMut() -> bool) {
    let end = Instant::now() + Duration::from_secs(secs);
    while !cond() {
        if Instant::now() > end {
            panic!(
                "timed out waiting for {what}\n--- daemon log\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn finished(s: &Server, job: &str) -> bool {
    std::fs::read_to_string(s.path(&format!("state/jobs/{job}.json")))
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .is_some_and(|v| v["running"] == false && v["result"].is_string())
}

fn terminate(child: &mut Child, s: &Server) -> i32 {
    let pid = rustix::process::Pid::from_child(child);
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
    let end = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            return st.code().unwrap_or(-1);
        }
        if Instant::now() > end {
            let _ = child.kill();
            panic!(
                "daemon did not stop after SIGTERM\n{}",
                std::fs::read_to_string(s.path("daemon.log")).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// State saying the job last ran long ago, so a `catch-up = true` job runs at start-up.
fn ran_long_ago(s: &Server, job: &str) {
    std::fs::create_dir_all(s.path("state/jobs")).unwrap();
    std::fs::write(
        s.path(&format!("state/jobs/{job}.json")),
        format!(
            r#"{{"job":"{job}","kind":"sync","last_start":"2026-01-01T00:00:00Z","result":"ok"}}"#
        ),
    )
    .unwrap();
}

#[test]
fn daemon_runs_the_nightly_job_at_its_fire_time_after_the_dst_gap() {
    let s = Server::new();
    s.config("", "");
    // 01:59:58 CET on the night summer time starts: 02:00 does not exist, so the job runs at
    // 03:00 CEST, two seconds of clock time later.
    let mut d = start_daemon(&s, Some("2026-03-29T00:59:58Z"));
    let log = s.path("daemon.log");
    wait_for("the nightly run to finish", 30, &log, || {
        finished(&s, "nightly")
    });
    assert_eq!(terminate(&mut d, &s), 0);
    assert_eq!(
        s.order(),
        [
            "dev-stop",
            "pass-1",
            "quiesce",
            "pass-2",
            "resume",
            "dev-start"
        ]
    );
    let st = s.state("nightly");
    assert_eq!(st["result"], "ok");
    assert_eq!(st["trigger"], "schedule");
    // JSON logs: the fire time is 03:00 CEST = 01:00Z, and each step is logged with a duration.
    let text = std::fs::read_to_string(&log).unwrap();
    let events: Vec<serde_json::Value> = text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let started = events
        .iter()
        .find(|e| e["message"] == "job started")
        .unwrap_or_else(|| panic!("no start event in\n{text}"));
    assert_eq!(started["fire"], "2026-03-29 01:00:00 UTC");
    assert_eq!(started["catch_up"], false);
    let steps: Vec<&str> = events
        .iter()
        .filter(|e| e["message"] == "step finished" && e["duration_s"].is_f64())
        .map(|e| e["step"].as_str().unwrap())
        .collect();
    assert_eq!(
        steps,
        [
            "dev-stop",
            "pass-1",
            "check",
            "quiesce",
            "pass-2",
            "resume",
            "dev-start"
        ]
    );
    // Status shows the run.
    let out = s.opsync(&["status", "--json"]);
    assert_exit(&out, 0);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["result"], "ok");
}

#[test]
fn daemon_catches_up_a_missed_run_at_start_up() {
    let s = Server::new();
    s.config("catch-up = true", "");
    ran_long_ago(&s, "nightly");
    let mut d = start_daemon(&s, None);
    let log = s.path("daemon.log");
    wait_for("the catch-up run", 30, &log, || {
        finished(&s, "nightly") && s.state("nightly")["last_start"] != "2026-01-01T00:00:00Z"
    });
    assert_eq!(terminate(&mut d, &s), 0);
    assert_eq!(s.state("nightly")["result"], "ok");
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("\"catch_up\":true"), "{text}");
}

#[test]
fn sigterm_during_pass_2_stops_it_and_still_resumes_prod_and_starts_dev() {
    let s = Server::new();
    s.config("catch-up = true", "");
    let p = s.path("opsync.toml");
    let text = std::fs::read_to_string(&p)
        .unwrap()
        .replace("[general]\n", "[general]\nshutdown-grace = \"1s\"\n");
    std::fs::write(&p, text).unwrap();
    ran_long_ago(&s, "nightly");
    std::fs::write(s.path("sleep-pass-2"), "120").unwrap();
    let mut d = start_daemon(&s, None);
    let log = s.path("daemon.log");
    wait_for("pass 2 to start", 30, &log, || {
        s.order().iter().any(|l| l == "pass-2")
    });
    let t = Instant::now();
    assert_eq!(terminate(&mut d, &s), 0);
    assert!(
        t.elapsed() < Duration::from_secs(20),
        "took {:?}",
        t.elapsed()
    );
    assert_eq!(
        s.order(),
        [
            "dev-stop",
            "pass-1",
            "quiesce",
            "pass-2",
            "resume",
            "dev-start"
        ]
    );
    let st = s.state("nightly");
    assert_eq!(st["result"], "cancelled");
    assert_eq!(st["exit_code"], 20);
    assert_eq!(st["running"], false);
}

#[test]
fn daemon_refuses_a_config_with_a_missing_source() {
    let s = Server::new();
    s.config("source = \"nope\"", "");
    let out = s.opsync(&["daemon"]);
    assert_exit(&out, 2);
    assert!(String::from_utf8_lossy(&out.stderr).contains("nope does not exist"));
}

#[test]
fn setup_systemd_writes_a_unit_and_enables_nothing() {
    let s = Server::new();
    s.config("", "");
    let unit = s.path("opsync.service");
    let out = s.opsync(&["setup", "systemd", "--output", unit.to_str().unwrap()]);
    assert_exit(&out, 0);
    let text = std::fs::read_to_string(&unit).unwrap();
    assert!(text.contains(&format!(
        "--config {} daemon",
        s.path("opsync.toml").display()
    )));
    assert!(text.contains("KillMode=mixed") && text.contains("WantedBy=multi-user.target"));
    assert!(String::from_utf8_lossy(&out.stdout).contains("systemctl enable --now opsync.service"));
    // A second run changes nothing; a unit with other text is not overwritten without --force.
    assert_exit(
        &s.opsync(&["setup", "systemd", "--output", unit.to_str().unwrap()]),
        0,
    );
    std::fs::write(&unit, "# edited\n").unwrap();
    assert_exit(
        &s.opsync(&["setup", "systemd", "--output", unit.to_str().unwrap()]),
        10,
    );
}
