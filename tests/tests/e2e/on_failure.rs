//! The `on-failure` command: run when a job fails, is cancelled or needs attention, with the
//! run in its environment; a job's own replaces the global one; its own failure and timeout
//! are logged and change nothing about the job's result. `setup systemd` writes the
//! `OnFailure=` template unit that calls `opsync on-failure UNIT`.

use std::path::Path;

use opsync_tests::run::{Run, opsync_in};

/// A folder with `opsync.toml` = `general` + the jobs below.
fn server(dir: &Path, general: &str) {
    std::fs::create_dir_all(dir.join("data")).unwrap();
    std::fs::write(
        dir.join("opsync.toml"),
        format!(
            "[general]\nstate-dir = \"state\"\n{general}\n[stacks]\n\n\
             [jobs.broken]\nkind = \"command\"\nschedule = \"0 2 * * *\"\n\
             command = [\"sh\", \"-c\", \"echo doing; exit 3\"]\n\n\
             [jobs.fine]\nkind = \"command\"\nschedule = \"0 2 * * *\"\ncommand = [\"true\"]\n\n\
             [jobs.slow]\nkind = \"command\"\nschedule = \"0 2 * * *\"\ntimeout = \"1s\"\n\
             command = [\"sleep\", \"30\"]\n\n\
             [jobs.own]\nkind = \"command\"\nschedule = \"0 2 * * *\"\n\
             command = [\"false\"]\non-failure = [\"sh\", \"-c\", \"echo own > own.txt\"]\n\n\
             [jobs.quiet]\nkind = \"command\"\nschedule = \"0 2 * * *\"\n\
             command = [\"false\"]\non-failure = []\n"
        ),
    )
    .unwrap();
}

/// Writes the OPSYNC_ variables it sees to notified-$OPSYNC_JOB.txt.
const RECORD: &str = "on-failure = [\"sh\", \"-c\", \"env | grep ^OPSYNC_ | sort > \
                      notified-$OPSYNC_JOB.txt\"]\n";

fn notified(dir: &Path, job: &str) -> Option<String> {
    std::fs::read_to_string(dir.join(format!("notified-{job}.txt"))).ok()
}

#[test]
fn a_failed_or_cancelled_job_runs_the_on_failure_command() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    server(dir, RECORD);
    let r: Run = opsync_in(Some(dir), &["run", "broken"]).expect_code(10);
    let env = notified(dir, "broken").unwrap_or_else(|| panic!("not called\n{r}"));
    for line in [
        "OPSYNC_JOB=broken",
        "OPSYNC_RESULT=failed",
        "OPSYNC_EXIT_CODE=10",
        "OPSYNC_FAILED_STEP=command",
    ] {
        assert!(env.lines().any(|l| l == line), "{line} not in\n{env}");
    }
    assert!(env.contains("OPSYNC_MESSAGE=sh: exit code 3"), "{env}");

    opsync_in(Some(dir), &["run", "fine"]).expect_code(0);
    assert!(
        notified(dir, "fine").is_none(),
        "called for a successful run"
    );

    let r = opsync_in(Some(dir), &["run", "slow"]);
    assert_ne!(r.code, 0, "{r}");
    let env = notified(dir, "slow").unwrap_or_else(|| panic!("not called\n{r}"));
    assert!(env.contains("OPSYNC_JOB=slow"), "{env}");

    // The job's own command replaces the global one; `[]` turns it off.
    opsync_in(Some(dir), &["run", "own"]).expect_code(10);
    assert!(dir.join("own.txt").is_file());
    assert!(notified(dir, "own").is_none());
    opsync_in(Some(dir), &["run", "quiet"]).expect_code(10);
    assert!(notified(dir, "quiet").is_none());
}

#[test]
fn a_failing_or_hanging_on_failure_command_is_logged_and_keeps_the_result() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    server(dir, "on-failure = [\"sh\", \"-c\", \"exit 7\"]\n");
    let r = opsync_in(Some(dir), &["run", "broken"]).expect_code(10);
    assert!(
        r.stderr.contains("on-failure command failed: exit code 7"),
        "{r}"
    );

    server(
        dir,
        "on-failure = [\"sleep\", \"60\"]\non-failure-timeout = \"1s\"\n",
    );
    let start = std::time::Instant::now();
    let r = opsync_in(Some(dir), &["run", "broken"]).expect_code(10);
    assert!(
        start.elapsed().as_secs() < 30,
        "the timeout did not stop it\n{r}"
    );
    assert!(r.stderr.contains("on-failure command failed"), "{r}");

    // config check finds a program that is not there.
    server(dir, "on-failure = [\"no-such-notifier-opsync\"]\n");
    let r = opsync_in(Some(dir), &["config", "check"]).expect_code(2);
    assert!(
        r.stderr
            .contains("[general] on-failure: program `no-such-notifier-opsync`"),
        "{r}"
    );
}

#[test]
fn setup_systemd_writes_the_on_failure_unit_that_calls_the_command() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    server(dir, RECORD);
    let units = dir.join("units");
    std::fs::create_dir_all(&units).unwrap();
    let unit = units.join("opsync.service");
    let unit_arg = unit.to_str().unwrap();
    let r = opsync_in(Some(dir), &["setup", "systemd", "--output", unit_arg]).expect_code(0);
    let main = std::fs::read_to_string(&unit).unwrap();
    assert!(
        main.contains("OnFailure=opsync-failure@%n.service"),
        "{main}"
    );
    let failure = std::fs::read_to_string(units.join("opsync-failure@.service")).unwrap();
    assert!(failure.contains("on-failure %i"), "{failure}");
    // Not a folder systemd reads: link it first.
    assert!(
        r.stdout.contains(&format!("systemctl link {unit_arg} ")),
        "{r}"
    );
    assert!(
        r.stdout.contains("systemctl enable --now opsync.service"),
        "{r}"
    );
    // A binary in cargo's build folder is named with a warning.
    let built = opsync_tests::opsync_bin();
    if built.components().any(|c| c.as_os_str() == "target") {
        assert!(r.stderr.contains("build folder"), "{r}");
    }

    // A second run changes nothing; a unit with other text is kept, exit 10.
    let r = opsync_in(Some(dir), &["setup", "systemd", "--output", unit_arg]).expect_code(0);
    assert!(r.stdout.contains("nothing changed"), "{r}");
    std::fs::write(&unit, "# mine\n").unwrap();
    let r = opsync_in(Some(dir), &["setup", "systemd", "--output", unit_arg]).expect_code(10);
    assert!(r.stderr.contains("exists with other contents"), "{r}");
    assert_eq!(std::fs::read_to_string(&unit).unwrap(), "# mine\n");

    // What the template unit runs: ExecStart's command with %i = the failed unit.
    let exec = failure
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .unwrap()
        .replace("%i", "opsync.service");
    let argv: Vec<&str> = exec.split(' ').collect();
    let st = std::process::Command::new(argv[0])
        .args(&argv[1..])
        .current_dir(dir)
        .status()
        .unwrap();
    assert!(st.success());
    let env = notified(dir, "opsync.service").expect("the template unit's command notified");
    assert!(env.contains("OPSYNC_FAILED_STEP=daemon"), "{env}");
    assert!(env.contains("journalctl -u opsync.service"), "{env}");
}
