//! Config mistakes: one test per kind, each checking that `opsync config check` names the file,
//! the line and what to write instead, and exits with 2.

use opsync_tests::opsync;

use crate::nightly::assert_exit;

/// Writes `text` as opsync.toml in a folder with `data/`, runs `config check`, returns stderr.
fn check(text: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("data")).unwrap();
    // The default stacks' compose files, which the default nightly job uses.
    for compose in ["compose.yaml", "dev-compose.yaml"] {
        std::fs::write(dir.path().join(compose), "services: {}\n").unwrap();
    }
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
    for compose in ["compose.yaml", "dev-compose.yaml"] {
        std::fs::write(dir.path().join(compose), "services: {}\n").unwrap();
    }
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
    for compose in ["compose.yaml", "dev-compose.yaml"] {
        std::fs::write(dir.path().join(compose), "services: {}\n").unwrap();
    }
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

/// Runs `opsync ARGS` in `dir`; returns (exit code, stdout, stderr).
fn run_in(dir: &std::path::Path, args: &[&str]) -> (i32, String, String) {
    let out = opsync().current_dir(dir).args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Regression: `config check` took no argument and stopped at the first mistake; `[sink]`
/// suggested nothing (or `site`, which is written `[[site]]`); `max-delete = 5` said only that a
/// string was expected.
#[test]
fn config_check_file_reports_every_mistake_in_one_run() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("server.toml"),
        "[general]\nstate-dirr = \"s\"\n\n[sync]\nmax-delete = 5\n\n\
         [jobs.nightly]\nkind = \"sync\"\nschedul = \"0 2 * * *\"\n\n\
         [sink]\nsource = \"data\"\n",
    )
    .unwrap();
    let (code, _, err) = run_in(dir.path(), &["config", "check", "server.toml"]);
    assert_eq!(code, 2, "{err}");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 4, "one line per mistake:\n{err}");
    contains_all(lines[0], &["server.toml:2:1:", "did you mean `state-dir`"]);
    contains_all(lines[1], &["server.toml:5:1:", "write \"5\"", "\"5%\""]);
    contains_all(lines[2], &["server.toml:9:1:", "did you mean `schedule`"]);
    contains_all(
        lines[3],
        &["server.toml:11:2:", "`sink`", "did you mean `sync`"],
    );
}

/// Regression: `config check` said ok and the nightly job then failed at once with `dev-stop
/// failed ... compose file dev-compose.yaml not found`, copying nothing.
#[test]
fn config_check_finds_what_the_jobs_will_need() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("data")).unwrap();
    std::fs::write(dir.path().join("a-file"), "").unwrap();
    std::fs::write(
        dir.path().join("opsync.toml"),
        "[general]\nstate-dir = \"a-file/state\"\n\n\
         [[site]]\ndomain = \"x.example\"\nupstream = \"127.0.0.1:1\"\n\n\
         [certbot]\nprogram = \"./no-certbot\"\n\n\
         [jobs.nightly-sync]\nkind = \"sync\"\nschedule = \"0 2 * * *\"\n\n\
         [jobs.backup]\nkind = \"command\"\nschedule = \"0 3 * * *\"\n\
         command = [\"no-such-program-opsync\"]\n",
    )
    .unwrap();
    let (code, out, err) = run_in(dir.path(), &["config", "check"]);
    assert_eq!(code, 2, "{out}{err}");
    for part in [
        "dev-compose.yaml not found (job nightly-sync stops and starts it)",
        "compose.yaml not found (job nightly-sync pauses it)",
        "[[site]] needs certbot, and `./no-certbot` is not installed",
        "program `no-such-program-opsync` is not installed",
        "a-file is not a folder",
    ] {
        assert!(err.contains(part), "{part:?} not in\n{err}");
    }
    for line in err.lines() {
        assert!(line.contains("opsync.toml:"), "no place in {line:?}");
    }
}

/// A server without compose stacks is one plain file, and `config example` names it.
#[test]
fn sync_only_server_checks_clean_without_compose_files() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("data")).unwrap();
    let (code, example, err) = run_in(dir.path(), &["config", "example", "--sync-only"]);
    assert_eq!(code, 0, "{err}");
    std::fs::write(dir.path().join("opsync.toml"), &example).unwrap();
    let (code, out, err) = run_in(dir.path(), &["config", "check", "opsync.toml"]);
    assert_eq!(code, 0, "{out}{err}");
    let (_, full, _) = run_in(dir.path(), &["config", "example"]);
    assert!(full.contains("--sync-only"), "{full}");
}

/// Regression: `opsync status` in an empty folder showed another configuration's run. State
/// and locks belong to one configuration file: `config example` says where before anything is
/// written, and a second configuration pointed at the same state-dir is refused.
#[test]
fn state_belongs_to_one_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let (_, example, _) = run_in(dir.path(), &["config", "example"]);
    let first = example.lines().take(2).collect::<Vec<_>>().join(" ");
    contains_all(&first, &["job state", "/var/lib/opsync/", "opsync.toml-"]);
    let shared = dir.path().join("shared-state");
    for name in ["a", "b"] {
        let d = dir.path().join(name);
        std::fs::create_dir_all(d.join("data")).unwrap();
        std::fs::write(
            d.join("opsync.toml"),
            format!(
                "[general]\nstate-dir = {:?}\n[stacks]\n[jobs.nightly]\nkind = \"sync\"\n\
                 schedule = \"0 2 * * *\"\ndev.enabled = false\nquiesce.mode = \"none\"\n",
                shared.display().to_string()
            ),
        )
        .unwrap();
    }
    let (code, _, err) = run_in(&dir.path().join("a"), &["run", "nightly"]);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = run_in(&dir.path().join("b"), &["run", "nightly"]);
    assert_eq!(code, 2, "{err}");
    contains_all(&err, &["belongs to another configuration", "a/opsync.toml"]);
    let (code, _, err) = run_in(&dir.path().join("b"), &["config", "check"]);
    assert_eq!(code, 2, "{err}");
    contains_all(&err, &["belongs to another configuration"]);
    // Without state-dir each file has its own folder: the defaults in an empty folder see no
    // run of `a`.
    let empty = dir.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let (code, out, err) = run_in(&empty, &["status", "--json"]);
    assert_eq!(code, 0, "{err}");
    assert!(!out.contains("\"ok\""), "{out}");
}

/// A remote target with `verify = true` (the default) or `"paused"` is accepted: the check
/// step compares the trees over the connection. Before, `config check` refused it.
#[test]
fn a_remote_target_with_verify_is_accepted() {
    for verify in ["", "verify = true\n", "verify = \"paused\"\n"] {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("data")).unwrap();
        for compose in ["compose.yaml", "dev-compose.yaml"] {
            std::fs::write(dir.path().join(compose), "services: {}\n").unwrap();
        }
        std::fs::write(
            dir.path().join("opsync.toml"),
            format!(
                "{JOB}target = \"dev-host:/srv/dev-data\"\n{verify}[jobs.nightly.dev]\n\
                 host = \"dev-host\"\n[jobs.nightly.quiesce]\nmode = \"none\"\n"
            ),
        )
        .unwrap();
        let out = opsync()
            .current_dir(dir.path())
            .args(["config", "check"])
            .output()
            .unwrap();
        assert_exit(&out, 0);
    }
}
