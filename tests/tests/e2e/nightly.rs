//! The nightly sync job end to end: `opsync run` with real folders, step commands that are small
//! scripts recording their order, and a sync that is either a stand-in (rsync plus a summary
//! line, with failures on demand) or the real `opsync sync`.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use opsync_tests::opsync;

/// A server folder: `data/` (production), `dev-data/` (dev copy), a state folder, step scripts.
pub(crate) struct Server {
    pub dir: tempfile::TempDir,
}

const RECORD: &str = r#"#!/bin/sh
# Records the step's name; fails when a file fail-STEP holds an exit code.
dir="$1"
echo "$OPSYNC_STEP" >> "$dir/order"
echo "$OPSYNC_STEP $OPSYNC_SOURCE $OPSYNC_TARGET $OPSYNC_SNAPSHOT" >> "$dir/env"
if [ -f "$dir/fail-$OPSYNC_STEP" ]; then exit "$(cat "$dir/fail-$OPSYNC_STEP")"; fi
exit 0
"#;

const SYNC: &str = r#"#!/bin/sh
# Stand-in for `opsync sync`: called as sync.sh DIR --json SRC DST [options]. Prints an item,
# the JSON lines of a file events-STEP if there is one, and a summary unless no-summary-STEP
# exists; exits with the code in fail-STEP.
dir="$1"; shift
echo "$OPSYNC_STEP $*" >> "$dir/sync-args"
echo "$OPSYNC_STEP" >> "$dir/order"
echo '{"type":"item","itemize":">f+++++++++","op":"copy","path":"x","bytes":40}'
if [ -f "$dir/events-$OPSYNC_STEP" ]; then cat "$dir/events-$OPSYNC_STEP"; fi
if [ -f "$dir/sleep-$OPSYNC_STEP" ]; then sleep "$(cat "$dir/sleep-$OPSYNC_STEP")"; fi
rsync -a --delete "$2/" "$3/" || exit 23
if [ ! -f "$dir/no-summary-$OPSYNC_STEP" ]; then
  echo '{"type":"summary","bytes_copied":100,"files_transferred":2,"files_total":3}'
fi
if [ -f "$dir/fail-$OPSYNC_STEP" ]; then exit "$(cat "$dir/fail-$OPSYNC_STEP")"; fi
exit 0
"#;

impl Server {
    pub fn new() -> Server {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir_all(d.join("data/db")).unwrap();
        std::fs::write(d.join("data/db/base.dat"), b"production rows").unwrap();
        std::fs::write(d.join("data/minio.bin"), vec![7u8; 100_000]).unwrap();
        std::fs::create_dir_all(d.join("dev-data")).unwrap();
        std::fs::write(d.join("dev-data/stale.txt"), b"old dev file").unwrap();
        for (name, text) in [("record.sh", RECORD), ("sync.sh", SYNC)] {
            let p = d.join(name);
            std::fs::write(&p, text).unwrap();
            make_executable(&p);
        }
        Server { dir }
    }

    pub fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    /// `["DIR/record.sh", "DIR"]` as TOML.
    pub fn record_cmd(&self) -> String {
        format!(
            "[\"{}\", \"{}\"]",
            self.path("record.sh").display(),
            self.dir.path().display()
        )
    }

    pub fn sync_cmd(&self) -> String {
        format!(
            "[\"{}\", \"{}\"]",
            self.path("sync.sh").display(),
            self.dir.path().display()
        )
    }

    /// Writes `opsync.toml`: state and metrics in the folder, a job `nightly` with step commands
    /// and the stand-in sync, then `extra` (more keys of `[jobs.nightly]` first, or tables).
    pub fn config(&self, job_keys: &str, extra: &str) -> PathBuf {
        let rec = self.record_cmd();
        let text = format!(
            r#"[general]
state-dir = "state"
metrics-file = "metrics/opsync.prom"

[jobs.nightly]
kind = "sync"
schedule = "0 2 * * *"
timezone = "Europe/Berlin"
sync-command = {sync}
{job_keys}

[jobs.nightly.dev]
stop-command = {rec}
start-command = {rec}

[jobs.nightly.quiesce]
mode = "pause"
command = {rec}
resume-command = {rec}
{extra}
"#,
            sync = self.sync_cmd(),
        );
        let p = self.path("opsync.toml");
        std::fs::write(&p, text).unwrap();
        p
    }

    /// Makes step `step` exit with `code`.
    pub fn fail(&self, step: &str, code: i32) {
        std::fs::write(self.path(&format!("fail-{step}")), code.to_string()).unwrap();
    }

    pub fn order(&self) -> Vec<String> {
        std::fs::read_to_string(self.path("order"))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    pub fn state(&self, job: &str) -> serde_json::Value {
        let p = self.path(&format!("state/jobs/{job}.json"));
        let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        serde_json::from_str(&text).unwrap()
    }

    /// Runs `opsync --config opsync.toml ARGS` in the folder.
    pub fn opsync(&self, args: &[&str]) -> Output {
        let mut cmd = opsync();
        cmd.current_dir(self.dir.path())
            .arg("--config")
            .arg(self.path("opsync.toml"))
            .args(args)
            .env("OPSYNC_LOG", "info");
        cmd.output().unwrap()
    }
}

pub(crate) fn make_executable(p: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// Asserts the exit code, showing stdout and stderr when it differs.
#[track_caller]
pub(crate) fn assert_exit(out: &Output, code: i32) {
    assert_eq!(
        out.status.code(),
        Some(code),
        "exit code\n--- stdout\n{}\n--- stderr\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn step_results(state: &serde_json::Value) -> Vec<String> {
    state["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            format!(
                "{}={}",
                s["name"].as_str().unwrap(),
                s["result"].as_str().unwrap()
            )
        })
        .collect()
}

#[test]
fn nightly_runs_its_steps_in_order_and_mirrors_the_data() {
    let s = Server::new();
    s.config("", "");
    let out = s.opsync(&["run", "nightly"]);
    assert_exit(&out, 0);
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
    // Pass 2 reads back what it writes (the trees were compared on live data by the check
    // step, which found nothing to recheck) and updates changed files in place (the default);
    // pass 1 does neither.
    let args = std::fs::read_to_string(s.path("sync-args")).unwrap();
    let lines: Vec<&str> = args.lines().collect();
    assert!(
        lines[0].starts_with("pass-1 --json ")
            && !lines[0].contains("--verify")
            && !lines[0].contains("--inplace"),
        "{args}"
    );
    assert!(
        lines[1].starts_with("pass-2 --json ")
            && lines[1].contains(" --verify=written")
            && !lines[1].contains("--recheck-from")
            && lines[1].contains(" --inplace"),
        "{args}"
    );
    // The dev copy mirrors production.
    assert_eq!(
        std::fs::read(s.path("dev-data/db/base.dat")).unwrap(),
        b"production rows"
    );
    assert!(!s.path("dev-data/stale.txt").exists());
    // State: result, steps, bytes of both passes, paused time.
    let st = s.state("nightly");
    assert_eq!(st["result"], "ok");
    assert_eq!(st["exit_code"], 0);
    assert_eq!(st["bytes"], 200);
    assert_eq!(st["files"], 4);
    assert!(st["paused_seconds"].as_f64().unwrap() >= 0.0);
    assert!(st["last_success"].is_string());
    assert_eq!(
        step_results(&st),
        [
            "dev-stop=ok",
            "pass-1=ok",
            "check=ok",
            "quiesce=ok",
            "pass-2=ok",
            "resume=ok",
            "dev-start=ok"
        ]
    );
    // The stand-in's rsync may leave directory mtimes a few nanoseconds off, which the check
    // notes; nothing had production's size and mtime with other content.
    let check = st["steps"][2]["message"].as_str().unwrap();
    assert!(
        check == "no differences on live data"
            || check.contains("none with production's size and mtime"),
        "{check}"
    );
    assert_eq!(st["steps"][1]["files"], 2);
    assert_eq!(st["steps"][1]["bytes"], 100);
    // Human summary on stdout.
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.starts_with("nightly: ok in "), "{stdout}");
    assert!(stdout.contains("production paused"), "{stdout}");
    // Metrics for node_exporter.
    let prom = std::fs::read_to_string(s.path("metrics/opsync.prom")).unwrap();
    for line in [
        "opsync_job_last_exit_code{job=\"nightly\"} 0",
        "opsync_job_last_bytes{job=\"nightly\"} 200",
        "opsync_job_step_failed{job=\"nightly\",step=\"pass-2\"} 0",
        "opsync_job_running{job=\"nightly\"} 0",
    ] {
        assert!(prom.lines().any(|l| l == line), "missing {line} in\n{prom}");
    }
    assert!(prom.contains("opsync_job_last_success_timestamp_seconds{job=\"nightly\"} "));
    // Status shows it.
    let out = s.opsync(&["status", "--json"]);
    assert_exit(&out, 0);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["job"], "nightly");
    assert_eq!(v["result"], "ok");
    assert!(v["next_run"].is_string());
    let out = s.opsync(&["status"]);
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.starts_with("JOB "), "{table}");
    assert!(
        table.contains("nightly") && table.contains(" ok "),
        "{table}"
    );
}

#[test]
fn failing_pass_2_still_resumes_prod_and_starts_dev() {
    let s = Server::new();
    s.config("", "");
    s.fail("pass-2", 11);
    let out = s.opsync(&["run", "nightly"]);
    assert_exit(&out, 10);
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
    assert_eq!(st["result"], "failed");
    assert_eq!(st["failed_step"], "pass-2");
    assert!(
        st["message"].as_str().unwrap().contains("exit code 11"),
        "{st}"
    );
    assert!(st["last_success"].is_null());
    let prom = std::fs::read_to_string(s.path("metrics/opsync.prom")).unwrap();
    assert!(
        prom.contains("opsync_job_step_failed{job=\"nightly\",step=\"pass-2\"} 1"),
        "{prom}"
    );
    assert!(
        prom.contains("opsync_job_last_exit_code{job=\"nightly\"} 10"),
        "{prom}"
    );
}

#[test]
fn refused_pass_1_skips_quiesce_and_still_starts_dev() {
    let s = Server::new();
    s.config("", "");
    s.fail("pass-1", 26); // empty source refused
    let out = s.opsync(&["run", "nightly"]);
    assert_exit(&out, 26);
    assert_eq!(s.order(), ["dev-stop", "pass-1", "dev-start"]);
    let st = s.state("nightly");
    assert_eq!(st["result"], "empty-source");
    assert_eq!(st["failed_step"], "pass-1");
    assert_eq!(
        step_results(&st),
        [
            "dev-stop=ok",
            "pass-1=empty-source",
            "check=skipped",
            "quiesce=skipped",
            "pass-2=skipped",
            "dev-start=ok"
        ]
    );
}

#[test]
fn failing_dev_stop_skips_the_sync_but_starts_dev_again() {
    let s = Server::new();
    s.config("", "");
    s.fail("dev-stop", 1);
    let out = s.opsync(&["run", "nightly"]);
    assert_exit(&out, 10);
    assert_eq!(s.order(), ["dev-stop", "dev-start"]);
    assert_eq!(
        std::fs::read(s.path("dev-data/stale.txt")).unwrap(),
        b"old dev file"
    );
    assert_eq!(s.state("nightly")["failed_step"], "dev-stop");
}

#[test]
fn failing_quiesce_still_resumes_prod() {
    let s = Server::new();
    s.config("", "");
    s.fail("quiesce", 3);
    let out = s.opsync(&["run", "nightly"]);
    assert_exit(&out, 10);
    assert_eq!(
        s.order(),
        ["dev-stop", "pass-1", "quiesce", "resume", "dev-start"]
    );
}

#[test]
fn failing_resume_makes_the_job_fail() {
    let s = Server::new();
    s.config("", "");
    s.fail("resume", 1);
    let out = s.opsync(&["run", "nightly"]);
    assert_exit(&out, 10);
    assert_eq!(s.state("nightly")["failed_step"], "resume");
    assert!(String::from_utf8_lossy(&out.stderr).contains("resume it by hand"));
}

#[test]
fn vanished_files_in_pass_1_do_not_count_when_pass_2_succeeds() {
    let s = Server::new();
    s.config("", "");
    s.fail("pass-1", 24);
    let out = s.opsync(&["run", "nightly"]);
    assert_exit(&out, 0);
    assert_eq!(s.state("nightly")["result"], "ok");
}

#[test]
fn partial_pass_2_makes_the_job_partial() {
    let s = Server::new();
    s.config("", "");
    s.fail("pass-2", 23);
    let out = s.opsync(&["run", "nightly"]);
    assert_exit(&out, 23);
    assert_eq!(s.state("nightly")["result"], "partial");
}

#[test]
fn max_paused_stops_pass_2_and_resumes_prod() {
    let s = Server::new();
    s.config("max-paused = \"1s\"", "");
    std::fs::write(s.path("sleep-pass-2"), "30").unwrap();
    let t = Instant::now();
    let out = s.opsync(&["run", "nightly"]);
    assert_exit(&out, 10);
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
    assert_eq!(st["failed_step"], "pass-2");
    assert!(
        st["message"].as_str().unwrap().contains("max-paused"),
        "{st}"
    );
    let paused = st["paused_seconds"].as_f64().unwrap();
    assert!((1.0..15.0).contains(&paused), "paused {paused}");
    // Stopped before its summary: what it copied is counted from the items it printed.
    let pass2 = s.step("pass-2");
    assert_eq!(
        (&pass2["files"], &pass2["bytes"]),
        (&1.into(), &40.into()),
        "{pass2}"
    );
    assert!(
        pass2["message"]
            .as_str()
            .unwrap()
            .contains("no summary; 1 files, 40 bytes"),
        "{pass2}"
    );
}

#[test]
fn quiesce_none_copies_live_without_pausing() {
    let s = Server::new();
    s.config("", "");
    // A later [quiesce] table would be a duplicate: rewrite the mode in place.
    let p = s.path("opsync.toml");
    let text = std::fs::read_to_string(&p)
        .unwrap()
        .replace("mode = \"pause\"", "mode = \"none\"");
    std::fs::write(&p, text).unwrap();
    let out = s.opsync(&["run", "nightly"]);
    assert_exit(&out, 0);
    assert_eq!(s.order(), ["dev-stop", "pass-1", "pass-2", "dev-start"]);
    assert_eq!(s.state("nightly")["paused_seconds"], 0.0);
}

#[test]
fn snapshot_mode_copies_pass_2_from_the_snapshot() {
    let s = Server::new();
    s.config("", "");
    std::fs::create_dir_all(s.path("snap")).unwrap();
    std::fs::write(s.path("snap/from-snapshot.txt"), b"frozen").unwrap();
    let p = s.path("opsync.toml");
    let text = std::fs::read_to_string(&p).unwrap().replace(
        "mode = \"pause\"",
        "mode = \"snapshot\"\nsnapshot-source = \"snap\"",
    );
    std::fs::write(&p, text).unwrap();
    let out = s.opsync(&["run", "nightly"]);
    assert_exit(&out, 0);
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
    assert!(s.path("dev-data/from-snapshot.txt").exists());
    assert!(!s.path("dev-data/minio.bin").exists());
    // The snapshot command learns where to put the snapshot.
    let env = std::fs::read_to_string(s.path("env")).unwrap();
    let quiesce = env.lines().find(|l| l.starts_with("quiesce ")).unwrap();
    assert!(quiesce.ends_with("/snap"), "{quiesce}");
    assert!(quiesce.contains("/data "), "{quiesce}");
}

#[test]
fn a_second_run_of_the_same_job_is_refused_while_the_first_holds_the_lock() {
    let s = Server::new();
    s.config("", "");
    std::fs::create_dir_all(s.path("state/locks")).unwrap();
    let f = std::fs::File::create(s.path("state/locks/nightly.lock")).unwrap();
    rustix::fs::flock(&f, rustix::fs::FlockOperation::NonBlockingLockExclusive).unwrap();
    let out = s.opsync(&["run", "nightly"]);
    assert_exit(&out, 27);
    assert!(String::from_utf8_lossy(&out.stderr).contains("already running"));
    assert!(s.order().is_empty());
    drop(f);
    assert_exit(&s.opsync(&["run", "nightly"]), 0);
}

#[test]
fn run_json_prints_the_state() {
    let s = Server::new();
    s.config("", "");
    let out = s.opsync(&["run", "nightly", "--json"]);
    assert_exit(&out, 0);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["job"], "nightly");
    assert_eq!(v["steps"].as_array().unwrap().len(), 7);
}

#[test]
fn unknown_job_is_a_usage_error() {
    let s = Server::new();
    s.config("", "");
    let out = s.opsync(&["run", "nigthly"]);
    assert_exit(&out, 1);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no job named nigthly") && err.contains("nightly"),
        "{err}"
    );
}

#[test]
fn nightly_with_the_real_opsync_sync_mirrors_the_data() {
    let s = Server::new();
    s.config("", "");
    // Use opsync's own sync instead of the stand-in.
    let p = s.path("opsync.toml");
    let text = std::fs::read_to_string(&p).unwrap();
    let text: String = text
        .lines()
        .filter(|l| !l.starts_with("sync-command"))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&p, text).unwrap();
    let out = s.opsync(&["run", "nightly"]);
    assert_exit(&out, 0);
    assert_eq!(s.order(), ["dev-stop", "quiesce", "resume", "dev-start"]);
    assert_eq!(
        std::fs::read(s.path("dev-data/db/base.dat")).unwrap(),
        b"production rows"
    );
    assert_eq!(
        std::fs::read(s.path("dev-data/minio.bin")).unwrap(),
        vec![7u8; 100_000]
    );
    assert!(!s.path("dev-data/stale.txt").exists());
    let st = s.state("nightly");
    // Pass 1 copies everything, pass 2 nothing.
    assert_eq!(st["bytes"], 100_000 + 15);
    assert_eq!(st["files"], 2);
}

#[test]
fn ctrl_c_during_pass_2_stops_it_and_still_resumes_prod_and_starts_dev() {
    let s = Server::new();
    s.config("", "");
    std::fs::write(s.path("sleep-pass-2"), "120").unwrap();
    let mut child = opsync()
        .current_dir(s.dir.path())
        .arg("--config")
        .arg(s.path("opsync.toml"))
        .args(["run", "nightly"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let end = Instant::now() + Duration::from_secs(30);
    while !s.order().iter().any(|l| l == "pass-2") {
        assert!(
            Instant::now() < end,
            "pass 2 did not start: {:?}",
            s.order()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let pid = rustix::process::Pid::from_child(&child);
    rustix::process::kill_process(pid, rustix::process::Signal::INT).unwrap();
    let t = Instant::now();
    let status = child.wait().unwrap();
    assert!(
        t.elapsed() < Duration::from_secs(20),
        "took {:?}",
        t.elapsed()
    );
    assert_eq!(status.code(), Some(20));
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
    assert_eq!(st["failed_step"], "pass-2");
}

#[test]
fn status_shows_a_run_that_died_as_interrupted() {
    let s = Server::new();
    s.config("", "");
    std::fs::create_dir_all(s.path("state/jobs")).unwrap();
    std::fs::write(
        s.path("state/jobs/nightly.json"),
        r#"{"job":"nightly","kind":"sync","running":true,"last_start":"2026-11-01T01:00:00Z"}"#,
    )
    .unwrap();
    let out = s.opsync(&["status", "--json"]);
    assert_exit(&out, 0);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["result"], "interrupted");
}

#[test]
fn nightly_waits_while_another_job_works_on_the_dev_stack() {
    let s = Server::new();
    s.config("", "");
    // Another job (for example a stack update) holds the dev stack.
    std::fs::create_dir_all(s.path("state/locks")).unwrap();
    let f = std::fs::File::create(s.path("state/locks/stack-dev.lock")).unwrap();
    rustix::fs::flock(&f, rustix::fs::FlockOperation::NonBlockingLockExclusive).unwrap();
    let mut child = opsync()
        .current_dir(s.dir.path())
        .arg("--config")
        .arg(s.path("opsync.toml"))
        .args(["run", "nightly"])
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(s.path("run.log")).unwrap())
        .spawn()
        .unwrap();
    let end = Instant::now() + Duration::from_secs(30);
    while !std::fs::read_to_string(s.path("run.log"))
        .unwrap_or_default()
        .contains("waiting for stack dev")
    {
        assert!(Instant::now() < end, "no wait message");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        s.order().is_empty(),
        "started despite the held stack: {:?}",
        s.order()
    );
    drop(f);
    assert_eq!(child.wait().unwrap().code(), Some(0));
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
}

impl Server {
    /// Drops `sync-command` from the config: both passes run the real `opsync sync`.
    fn use_real_sync(&self) {
        let p = self.path("opsync.toml");
        let text: String = std::fs::read_to_string(&p)
            .unwrap()
            .lines()
            .filter(|l| !l.starts_with("sync-command"))
            .map(|l| format!("{l}\n"))
            .collect();
        std::fs::write(&p, text).unwrap();
    }

    /// Makes the stand-in print `lines` (JSON events) during step `step`.
    fn events(&self, step: &str, lines: &[&str]) {
        std::fs::write(
            self.path(&format!("events-{step}")),
            lines.join("\n") + "\n",
        )
        .unwrap();
    }

    /// The record of step `name` in the state.
    fn step(&self, name: &str) -> serde_json::Value {
        step_of(&self.state("nightly"), name)
    }

    /// The arguments the stand-in got in step `step`.
    fn sync_args(&self, step: &str) -> String {
        let args = std::fs::read_to_string(self.path("sync-args")).unwrap();
        args.lines()
            .find(|l| l.starts_with(&format!("{step} ")))
            .unwrap_or_else(|| panic!("no {step} in {args}"))
            .to_string()
    }

    /// A dev copy of `data/db/base.dat` with production's size and mtime but other content, that
    /// opsync trusts by size and mtime: its access time (read as the moment it was copied) is
    /// 100 s after its mtime, so the copy is not racily clean. Only a comparison by content
    /// finds it.
    fn corrupt_dev_copy_the_quick_check_misses(&self) {
        use filetime::FileTime;
        let mtime = FileTime::from_unix_time(1_700_000_000, 123_456_789);
        let prod = self.path("data/db/base.dat");
        filetime::set_file_times(&prod, mtime, mtime).unwrap();
        let dev = self.path("dev-data/db/base.dat");
        std::fs::create_dir_all(dev.parent().unwrap()).unwrap();
        std::fs::write(&dev, b"PRODUCTION ROWS").unwrap();
        assert_eq!(
            std::fs::metadata(&dev).unwrap().len(),
            std::fs::metadata(&prod).unwrap().len()
        );
        let atime = FileTime::from_unix_time(1_700_000_100, 0);
        filetime::set_file_times(&dev, atime, mtime).unwrap();
    }
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The lines of the log (stderr) that mention `needle`.
fn log_lines<'a>(err: &'a str, needle: &str) -> Vec<&'a str> {
    err.lines().filter(|l| l.contains(needle)).collect()
}

/// Regression (issue 10): a dev file with production's size and mtime but other content was
/// never copied by the quick check, `--verify` in pass 2 reported it, and the job failed with
/// exit 8 every night without naming the file. Now the check step finds it on live data, pass 2
/// compares it by content and copies it, and log, state and status name it.
#[test]
fn a_dev_file_the_quick_check_misses_is_repaired_in_pass_2_and_named() {
    let s = Server::new();
    s.config("", "");
    s.use_real_sync();
    s.corrupt_dev_copy_the_quick_check_misses();
    let out = s.opsync(&["run", "nightly"]);
    assert_exit(&out, 0);
    assert_eq!(
        std::fs::read(s.path("dev-data/db/base.dat")).unwrap(),
        b"production rows"
    );
    // Pass 1 trusted size and mtime; the check found the file on live data and listed it.
    let pass1 = s.step("pass-1");
    assert_eq!(pass1["result"], "ok");
    assert!(pass1["repaired"].is_null(), "{pass1}");
    let check = s.step("check");
    assert_eq!(check["result"], "ok");
    assert_eq!(check["differences"]["kinds"]["content"], 1, "{check}");
    assert_eq!(check["differences"]["paths"][0], "db/base.dat");
    assert_eq!(
        std::fs::read(s.path("state/jobs/nightly.recheck")).unwrap(),
        b"db/base.dat\0"
    );
    // Pass 2 compared it by content, copied it, read it back.
    let pass2 = s.step("pass-2");
    assert_eq!(pass2["result"], "ok");
    assert_eq!(pass2["files"], 1, "{pass2}");
    assert_eq!(pass2["repaired"]["count"], 1);
    assert_eq!(pass2["repaired"]["paths"][0], "db/base.dat");
    let st = s.state("nightly");
    assert_eq!(st["result"], "ok");
    assert_eq!(st["repaired"]["paths"], serde_json::json!(["db/base.dat"]));
    assert!(st["remaining"].is_null());
    // The log names it: found by the check, repaired by pass 2.
    let err = stderr(&out);
    let named = log_lines(&err, "db/base.dat");
    assert!(
        named
            .iter()
            .any(|l| l.contains("step=\"check\"") || l.contains("step=check")),
        "{err}"
    );
    assert!(
        named
            .iter()
            .any(|l| l.contains("repaired") && l.contains("pass-2")),
        "{err}"
    );
    assert!(!err.contains("step failed"), "{err}");
    // opsync run prints it, and so does opsync status (text and JSON).
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("1 difference repaired: db/base.dat"),
        "{stdout}"
    );
    let out = s.opsync(&["status"]);
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.contains("nightly: 1 difference repaired: db/base.dat"),
        "{table}"
    );
    let out = s.opsync(&["status", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["repaired"]["paths"][0], "db/base.dat");
    // The next night has nothing to repair.
    let out = s.opsync(&["run", "nightly"]);
    assert_exit(&out, 0);
    assert!(s.state("nightly")["repaired"].is_null());
    assert!(s.step("check")["differences"].is_null());
}

#[test]
fn verify_paused_repairs_the_file_in_pass_2_and_names_it() {
    let s = Server::new();
    s.config("verify = \"paused\"", "");
    s.use_real_sync();
    s.corrupt_dev_copy_the_quick_check_misses();
    let out = s.opsync(&["run", "nightly"]);
    assert_exit(&out, 0);
    assert_eq!(
        std::fs::read(s.path("dev-data/db/base.dat")).unwrap(),
        b"production rows"
    );
    let st = s.state("nightly");
    assert_eq!(
        step_results(&st),
        [
            "dev-stop=ok",
            "pass-1=ok",
            "quiesce=ok",
            "pass-2=ok",
            "resume=ok",
            "dev-start=ok"
        ]
    );
    let pass2 = s.step("pass-2");
    assert_eq!(pass2["differences"]["kinds"]["content"], 1, "{pass2}");
    assert_eq!(pass2["repaired"]["paths"][0], "db/base.dat");
    assert!(pass2["remaining"].is_null());
    assert_eq!(st["repaired"]["paths"][0], "db/base.dat");
    let err = stderr(&out);
    assert!(
        log_lines(&err, "db/base.dat")
            .iter()
            .any(|l| l.contains("repaired")),
        "{err}"
    );
    let out = s.opsync(&["status"]);
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.contains("nightly: 1 difference repaired: db/base.dat"),
        "{table}"
    );
}

#[test]
fn differences_left_by_pass_2_make_the_result_differences_and_are_named() {
    let s = Server::new();
    s.config("verify = \"paused\"", "");
    s.events(
        "pass-2",
        &[
            r#"{"type":"difference","path":"db/base.dat","kind":"content","what":"content differs"}"#,
            r#"{"type":"difference","path":"minio.bin","kind":"content","what":"content differs"}"#,
            r#"{"type":"item","itemize":">fc........","op":"copy","path":"db/base.dat","bytes":15}"#,
            r#"{"type":"item","itemize":">fc........","op":"copy","path":"minio.bin","bytes":9}"#,
            r#"{"type":"difference","path":"minio.bin","kind":"content","what":"content differs"}"#,
            r#"{"type":"repaired","path":"db/base.dat"}"#,
            r#"{"type":"summary","files_transferred":3,"bytes_copied":64,"exit_code":8,"verify":{"differences":2,"repaired":1,"remaining":1}}"#,
        ],
    );
    std::fs::write(s.path("no-summary-pass-2"), "").unwrap();
    s.fail("pass-2", 8);
    let out = s.opsync(&["run", "nightly"]);
    assert_exit(&out, 8);
    assert!(s.sync_args("pass-2").ends_with(" --verify"));
    let st = s.state("nightly");
    assert_eq!(st["result"], "differences");
    assert_eq!(st["failed_step"], "pass-2");
    assert_eq!(st["repaired"]["paths"], serde_json::json!(["db/base.dat"]));
    assert_eq!(st["remaining"]["count"], 1);
    assert_eq!(st["remaining"]["paths"], serde_json::json!(["minio.bin"]));
    assert!(
        st["message"]
            .as_str()
            .unwrap()
            .contains("1 difference left: minio.bin"),
        "{st}"
    );
    assert_eq!(s.step("pass-2")["files"], 3);
    let err = stderr(&out);
    assert!(
        log_lines(&err, "minio.bin")
            .iter()
            .any(|l| l.contains("still differs after the repair")),
        "{err}"
    );
    let out = s.opsync(&["status"]);
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.contains("nightly: 1 difference repaired: db/base.dat")
            && table.contains("nightly: 1 difference left: minio.bin"),
        "{table}"
    );
}

#[test]
fn pass_1_ending_with_vanished_files_is_an_expected_warning_not_a_failed_step() {
    let s = Server::new();
    s.config("", "");
    s.events(
        "pass-1",
        &[
            r#"{"type":"warning","kind":"vanished","path":"db/pg_wal/0001","message":"file has vanished: db/pg_wal/0001"}"#,
        ],
    );
    s.fail("pass-1", 24);
    let out = s.opsync(&["run", "nightly"]);
    assert_exit(&out, 0);
    let err = stderr(&out);
    assert!(!err.contains("step failed"), "{err}");
    let named = log_lines(&err, "db/pg_wal/0001");
    assert!(
        named
            .iter()
            .any(|l| l.contains("WARN") && l.contains("expected on live data")),
        "{err}"
    );
    assert!(
        log_lines(&err, "step=\"pass-1\"")
            .iter()
            .chain(log_lines(&err, "step=pass-1").iter())
            .any(|l| l.contains("WARN") && l.contains("pass 2 copies these files again")),
        "{err}"
    );
    let pass1 = s.step("pass-1");
    assert_eq!(pass1["result"], "vanished");
    assert!(
        pass1["message"]
            .as_str()
            .unwrap()
            .contains("expected on live data"),
        "{pass1}"
    );
    assert_eq!(pass1["warnings"]["kinds"]["vanished"], 1);
    assert_eq!(pass1["warnings"]["paths"][0], "db/pg_wal/0001");
    assert_eq!(s.state("nightly")["result"], "ok");
}

#[test]
fn a_failed_pass_2_still_reports_what_it_copied() {
    let s = Server::new();
    s.config("", "");
    s.events(
        "pass-2",
        &[
            r#"{"type":"error","op":"copy","side":"destination","path":"minio.bin","message":"cannot write minio.bin: No space left on device"}"#,
        ],
    );
    s.fail("pass-2", 23);
    let out = s.opsync(&["run", "nightly"]);
    assert_exit(&out, 23);
    let pass2 = s.step("pass-2");
    assert_eq!(pass2["result"], "partial");
    assert_eq!(pass2["files"], 2, "{pass2}");
    assert_eq!(pass2["bytes"], 100);
    assert_eq!(pass2["errors"]["paths"][0], "minio.bin");
    let msg = pass2["message"].as_str().unwrap();
    assert!(
        msg.contains("2 files transferred of 3, 100 bytes copied") && msg.contains("minio.bin"),
        "{msg}"
    );
    let st = s.state("nightly");
    assert_eq!(st["result"], "partial");
    assert_eq!(st["bytes"], 200);
    assert_eq!(st["files"], 4);
    assert!(
        log_lines(&stderr(&out), "minio.bin")
            .iter()
            .any(|l| l.contains("No space left")),
        "{}",
        stderr(&out)
    );
}

#[test]
fn verify_false_runs_no_check_and_pass_2_without_verify() {
    let s = Server::new();
    s.config("verify = false\ninplace = true", "");
    let out = s.opsync(&["run", "nightly"]);
    assert_exit(&out, 0);
    assert!(
        !step_results(&s.state("nightly"))
            .iter()
            .any(|r| r.starts_with("check="))
    );
    let pass2 = s.sync_args("pass-2");
    assert!(
        !pass2.contains("--verify") && pass2.ends_with(" --inplace"),
        "{pass2}"
    );
    assert!(!s.sync_args("pass-1").contains("--inplace"));
}

#[test]
fn a_check_that_cannot_run_fails_the_job_but_pass_2_still_runs() {
    let s = Server::new();
    s.config(
        r#"verify-command = ["sh", "-c", "echo 'opsync: cannot read dev-data' >&2; exit 11"]"#,
        "",
    );
    let out = s.opsync(&["run", "nightly"]);
    assert_exit(&out, 10);
    let st = s.state("nightly");
    assert_eq!(st["failed_step"], "check");
    assert!(
        st["message"].as_str().unwrap().contains("exit code 11"),
        "{st}"
    );
    assert_eq!(
        step_results(&st),
        [
            "dev-stop=ok",
            "pass-1=ok",
            "check=failed",
            "quiesce=ok",
            "pass-2=ok",
            "resume=ok",
            "dev-start=ok"
        ]
    );
    let pass2 = s.sync_args("pass-2");
    assert!(
        !pass2.contains("--recheck-from") && pass2.ends_with(" --verify=written"),
        "{pass2}"
    );
}

/// The record of step `name` in a job's state `st`.
pub(crate) fn step_of(st: &serde_json::Value, name: &str) -> serde_json::Value {
    st["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no step {name} in {st}"))
        .clone()
}
