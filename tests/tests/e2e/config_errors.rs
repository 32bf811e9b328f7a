//! Config mistakes: one test per kind, each checking that `opsync config check` names the file,
//! the line and what to write instead, and exits with 2.

use opsync_tests::opsync;

use crate::nightly::assert_exit;

/// Writes `text` as opsync.toml in a folder with `data/`, runs `config check`, returns stderr.
fn check(text: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("data")).unwrap();
    std::fs::write(dir.path().join("opsync.toml"), text).unwrap();
    let out = opsync()
        .current_dir(dir.path())
        .args(["config", "check"])
        .output()
        .unwrap();
    assert_exit(&out, 2);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(err.lines().count(), 1, "one line per error: {err}");
    err
}

#[track_caller]
fn contains_all(err: &str, parts: &[&str]) {
    for p in parts {
        assert!(err.contains(p), "{p:?} not in {err:?}");
    }
}

const JOB: &str = "[jobs.nightly]\nkind = \"sync\"\nschedule = \"0 2 * * *\"\n";

#[test]
fn unknown_key_suggests_the_right_one() {
    let err = check("[jobs.nightly]\nkind = \"sync\"\nschedul = \"0 2 * * *\"\n");
    contains_all(
        &err,
        &[
            "opsync.toml:3:1:",
            "unknown key `schedul`",
            "did you mean `schedule`",
        ],
    );
}

#[test]
fn unknown_section_lists_the_allowed_ones() {
    let err = check("[genral]\nstate-dir = \"s\"\n");
    contains_all(
        &err,
        &["opsync.toml:1:", "`genral`", "did you mean `general`"],
    );
}

#[test]
fn schedule_with_four_fields() {
    let err = check("[jobs.nightly]\nkind = \"sync\"\nschedule = \"0 2 * *\"\n");
    contains_all(
        &err,
        &[
            "opsync.toml:3:12:",
            "has 4 fields",
            "write for example \"0 2 * * *\"",
        ],
    );
}

#[test]
fn schedule_with_seconds_is_refused() {
    let err = check("[jobs.nightly]\nkind = \"sync\"\nschedule = \"0 0 2 * * *\"\n");
    contains_all(&err, &["opsync.toml:3:", "has 6 fields, crontab needs 5"]);
}

#[test]
fn schedule_out_of_range() {
    let err = check("[jobs.nightly]\nkind = \"sync\"\nschedule = \"0 25 * * *\"\n");
    contains_all(
        &err,
        &[
            "opsync.toml:3:12:",
            "not a valid crontab line",
            "write for example",
        ],
    );
}

#[test]
fn unknown_time_zone() {
    let err = check(&format!("{JOB}timezone = \"Europe/Berln\"\n"));
    contains_all(
        &err,
        &[
            "opsync.toml:4:12:",
            "unknown time zone \"Europe/Berln\"",
            "Europe/Berlin",
        ],
    );
}

#[test]
fn bad_duration() {
    let err = check(&format!("{JOB}max-paused = \"5 minutes\"\n"));
    contains_all(
        &err,
        &["opsync.toml:4:", "invalid duration \"5 minutes\"", "\"5m\""],
    );
}

#[test]
fn unknown_job_kind() {
    let err = check("[jobs.nightly]\nkind = \"rsync\"\nschedule = \"0 2 * * *\"\n");
    contains_all(
        &err,
        &["opsync.toml:2:8:", "unknown variant `rsync`", "`sync`"],
    );
}

#[test]
fn target_inside_source() {
    let err = check("[sync]\nsource = \"data\"\ntarget = \"data/dev\"\n");
    contains_all(
        &err,
        &["opsync.toml:3:1:", "lies inside the source", "./dev-data"],
    );
}

#[test]
fn source_inside_target() {
    let err = check(&format!("{JOB}source = \"data\"\ntarget = \".\"\n"));
    contains_all(
        &err,
        &[
            "opsync.toml:5:1:",
            "lies inside the target",
            "separate folders",
        ],
    );
}

#[test]
fn target_is_the_source() {
    let err = check("[sync]\nsource = \"./data\"\ntarget = \"data/\"\n");
    contains_all(&err, &["opsync.toml:3:1:", "is the source itself"]);
}

#[test]
fn missing_source_folder() {
    let err = check(&format!("{JOB}source = \"prod-data\"\n"));
    contains_all(
        &err,
        &[
            "opsync.toml:4:1:",
            "prod-data does not exist",
            "set source =",
        ],
    );
}

#[test]
fn unknown_stack_in_a_job() {
    let err = check(
        "[jobs.update]\nkind = \"stack-update\"\nschedule = \"0 4 * * MON\"\nstack = \"prd\"\n",
    );
    contains_all(
        &err,
        &[
            "opsync.toml:4:1:",
            "unknown stack \"prd\"",
            "configured stacks: dev, prod",
        ],
    );
}

#[test]
fn unknown_dev_stack_of_the_nightly_job() {
    let err = check(&format!("{JOB}[jobs.nightly.dev]\nstack = \"staging\"\n"));
    contains_all(
        &err,
        &[
            "opsync.toml:5:1:",
            "unknown dev stack \"staging\"",
            "stop-command",
        ],
    );
}

#[test]
fn command_job_without_a_command() {
    let err = check("[jobs.prune]\nkind = \"command\"\nschedule = \"0 5 * * SUN\"\n");
    contains_all(&err, &["opsync.toml:1:", "needs command = [\"program\""]);
}

#[test]
fn snapshot_mode_without_snapshot_source() {
    let err = check(&format!(
        "{JOB}[jobs.nightly.quiesce]\nmode = \"snapshot\"\ncommand = [\"true\"]\n"
    ));
    contains_all(&err, &["opsync.toml:4:", "snapshot-source = \"PATH\""]);
}

#[test]
fn quiesce_command_without_resume_command() {
    let err = check(&format!(
        "{JOB}[jobs.nightly.quiesce]\ncommand = [\"true\"]\n"
    ));
    contains_all(
        &err,
        &["opsync.toml:4:", "command and resume-command go together"],
    );
}

#[test]
fn toml_syntax_error() {
    let err = check("[general\nstate-dir = 1\n");
    contains_all(&err, &["opsync.toml:1:"]);
}

#[test]
fn missing_config_file_names_it() {
    let out = opsync()
        .args(["--config", "/nonexistent/opsync.toml", "config", "check"])
        .output()
        .unwrap();
    assert_exit(&out, 2);
    let err = String::from_utf8_lossy(&out.stderr);
    contains_all(&err, &["/nonexistent/opsync.toml"]);
}

#[test]
fn the_example_config_checks_clean() {
    let dir = tempfile::tempdir().unwrap();
    let out = opsync().args(["config", "example"]).output().unwrap();
    assert_exit(&out, 0);
    let text = String::from_utf8(out.stdout).unwrap();
    // The example's state and metrics paths are the server's; point them into the folder.
    let text = text.replace("/var/lib/opsync", "state").replace(
        "/var/lib/node_exporter/textfile_collector/opsync.prom",
        "opsync.prom",
    );
    std::fs::write(dir.path().join("opsync.toml"), text).unwrap();
    std::fs::create_dir_all(dir.path().join("data")).unwrap();
    let out = opsync()
        .current_dir(dir.path())
        .args(["config", "check"])
        .output()
        .unwrap();
    assert_exit(&out, 0);
    let stdout = String::from_utf8_lossy(&out.stdout);
    contains_all(
        &stdout,
        &[
            "opsync.toml: ok",
            "nightly-sync (sync, \"0 2 * * *\")",
            "certs-renew",
        ],
    );
    // And the schedule of its nightly job, across the night summer time starts.
    let out = opsync()
        .current_dir(dir.path())
        .args([
            "schedule",
            "next",
            "nightly-sync",
            "-n",
            "3",
            "--after",
            "2026-03-27T12:00:00Z",
        ])
        .output()
        .unwrap();
    assert_exit(&out, 0);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "2026-03-28 02:00 CET  (2026-03-28T01:00:00Z)\n\
         2026-03-29 03:00 CEST  (2026-03-29T01:00:00Z)\n\
         2026-03-30 02:00 CEST  (2026-03-30T00:00:00Z)\n"
    );
}

#[test]
fn a_config_with_only_what_differs_is_enough() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("prod")).unwrap();
    std::fs::write(
        dir.path().join("opsync.toml"),
        "[sync]\nsource = \"prod\"\n",
    )
    .unwrap();
    let out = opsync()
        .current_dir(dir.path())
        .args(["config", "check"])
        .output()
        .unwrap();
    assert_exit(&out, 0);
    // Defaults: the nightly sync at 02:00.
    assert!(String::from_utf8_lossy(&out.stdout).contains("nightly-sync (sync, \"0 2 * * *\")"));
}

#[test]
fn bad_max_delete() {
    let err = check("[sync]\nmax-delete = \"five\"\n");
    contains_all(&err, &["opsync.toml:2:1:", "max-delete \"five\"", "\"5%\""]);
}

#[test]
fn verify_value_that_is_neither_a_boolean_nor_paused() {
    let err = check(&format!("{JOB}verify = \"sometimes\"\n"));
    contains_all(
        &err,
        &[
            "opsync.toml:4:10:",
            "invalid verify value \"sometimes\"",
            "verify = true",
            "verify = \"paused\"",
            "verify = false",
        ],
    );
    let err = check(&format!("{JOB}verify = 1\n"));
    contains_all(&err, &["opsync.toml:4:10:", "true, false or \"paused\""]);
}

#[test]
fn empty_verify_command() {
    let err = check(&format!("{JOB}verify-command = []\n"));
    contains_all(&err, &["opsync.toml:4:1:", "verify-command is empty"]);
}

#[test]
fn verify_modes_and_inplace_are_accepted() {
    for keys in [
        "verify = \"paused\"",
        "verify = false",
        "verify = true\ninplace = true",
        "inplace = false\nverify-command = [\"opsync\", \"verify\"]",
    ] {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("data")).unwrap();
        let text = format!(
            "{JOB}{keys}\n[jobs.nightly.dev]\nenabled = false\n[jobs.nightly.quiesce]\nmode = \"none\"\n"
        );
        std::fs::write(dir.path().join("opsync.toml"), text).unwrap();
        let out = opsync()
            .current_dir(dir.path())
            .args(["config", "check"])
            .output()
            .unwrap();
        assert_exit(&out, 0);
    }
}

#[test]
fn a_remote_target_needs_verify_false() {
    let err = check(&format!("{JOB}target = \"dev-host:/srv/dev-data\"\n"));
    contains_all(
        &err,
        &[
            "dev-host:/srv/dev-data",
            "another host",
            "set verify = false",
        ],
    );
}
