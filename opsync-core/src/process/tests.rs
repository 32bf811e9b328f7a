use std::thread;

use super::*;

fn sh(script: &str) -> Command {
    Command::new("sh").args(["-c", script])
}

/// True while process `pid` exists and is not a zombie.
fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // `PID (comm) STATE ...`: the state follows the last `)`.
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

/// Waits (polling, at most 10 s) until `pid` is gone.
fn gone(pid: i32) -> bool {
    let until = Instant::now() + Duration::from_secs(10);
    while Instant::now() < until {
        if !alive(pid) {
            return true;
        }
        thread::sleep(Duration::from_millis(10));
    }
    false
}

#[test]
fn output_is_captured_per_stream() {
    let out = sh("echo out; echo err >&2").run().unwrap();
    assert_eq!(out.ended, Ended::Code(0));
    assert_eq!(out.stdout, "out\n");
    assert_eq!(out.stderr, "err\n");
}

#[test]
fn a_failure_carries_the_exit_code_and_the_last_stderr_line() {
    let err = sh("echo first >&2; echo 'the reason' >&2; echo out; exit 3")
        .run()
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "`sh -c 'echo first >&2; echo '\\''the reason'\\'' >&2; echo out; exit 3'` failed (exit \
         code 3): the reason"
    );
    let out = err.output().unwrap();
    assert_eq!(out.stdout, "out\n");
    // `output` returns the same without making it an error.
    assert_eq!(sh("exit 4").output().unwrap().ended, Ended::Code(4));
}

#[test]
fn captured_output_is_capped() {
    let out = sh("head -c 100000 /dev/zero; echo; echo tail >&2")
        .capture_limit(1000)
        .run()
        .unwrap();
    assert_eq!(out.stdout.len(), 1000);
    assert_eq!(out.stderr, "tail\n");
}

#[test]
fn a_missing_program_names_it() {
    for program in ["opsync-no-such-program", "/nonexistent/prog"] {
        let err = Command::new(program).run().unwrap_err();
        assert!(matches!(err, ProcessError::NotFound { .. }), "{err}");
        assert_eq!(
            err.to_string(),
            format!("`{program}` not found: install it or set its path in the config")
        );
    }
    assert!(matches!(
        Command::from_argv::<&str>(&[]),
        Err(ProcessError::Empty)
    ));
}

#[test]
fn working_folder_and_environment() {
    let dir = tempfile::tempdir().unwrap();
    let out = sh("pwd; echo \"$OPSYNC_X\"")
        .current_dir(dir.path())
        .env("OPSYNC_X", "a b")
        .run()
        .unwrap();
    let pwd = dir.path().canonicalize().unwrap();
    assert_eq!(out.stdout, format!("{}\na b\n", pwd.display()));
    let err = sh("true")
        .current_dir("/nonexistent/dir")
        .run()
        .unwrap_err();
    assert!(err.to_string().contains("/nonexistent/dir"), "{err}");
}

#[test]
fn the_timeout_stops_the_whole_process_group() {
    // The background `sleep` is a grandchild: it must die with the group.
    let started = Instant::now();
    let mut pids = Vec::new();
    let ended = sh("sleep 30 & echo $!; sleep 30; wait")
        .timeout(Duration::from_millis(300))
        .stream_stdout(&mut |l| pids.push(String::from_utf8_lossy(l).parse::<i32>().unwrap()))
        .unwrap();
    assert_eq!(ended, Ended::TimedOut);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(pids.len(), 1);
    assert!(gone(pids[0]), "grandchild {} still runs", pids[0]);

    let err = sh("sleep 30")
        .timeout(Duration::from_millis(100))
        .run()
        .unwrap_err();
    assert!(matches!(err, ProcessError::Timeout { .. }), "{err}");
    assert!(
        err.to_string()
            .ends_with("did not finish within 0 s and was stopped"),
        "{err}"
    );
}

#[test]
fn a_deadline_and_a_timeout_take_the_earlier() {
    let ended = sh("sleep 30")
        .timeout(Duration::from_secs(60))
        .deadline(Some(Instant::now() + Duration::from_millis(100)))
        .status()
        .unwrap();
    assert_eq!(ended, Ended::TimedOut);
}

#[test]
fn cancel_stops_the_child() {
    // Cancelled once the child has started (its first line arrived).
    let cancel = Cancel::new();
    let started = Instant::now();
    let ended = sh("echo started; exec sleep 30")
        .cancel(Some(&cancel))
        .stream_stdout(&mut |_| cancel.cancel())
        .unwrap();
    assert_eq!(ended, Ended::Cancelled);
    assert!(started.elapsed() < Duration::from_secs(5));
    let err = Command::new("sleep")
        .arg("30")
        .cancel(Some(&cancel))
        .run()
        .unwrap_err();
    assert!(matches!(err, ProcessError::Cancelled { .. }), "{err}");
}

#[test]
fn a_child_ignoring_sigterm_gets_sigkill_after_the_grace_period() {
    // An ignored signal stays ignored across exec, so `sleep` ignores SIGTERM too.
    let started = Instant::now();
    let ended = sh("trap '' TERM; sleep 30")
        .timeout(Duration::from_millis(100))
        .grace(Duration::from_millis(300))
        .status()
        .unwrap();
    assert_eq!(ended, Ended::TimedOut);
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(400), "{took:?}");
    assert!(took < Duration::from_secs(5), "{took:?}");
}

#[test]
fn lines_are_streamed_while_the_child_runs() {
    // More than a pipe buffer and the queue hold: the child would block if nobody read.
    let mut n = 0;
    let ended = sh(
        r#"i=0; while [ $i -lt 5000 ]; do echo "line $i of a long enough text"; i=$((i+1)); done"#,
    )
    .stream_stdout(&mut |l| {
        assert!(l.starts_with(b"line ") && !l.ends_with(b"\n"));
        n += 1;
    })
    .unwrap();
    assert_eq!(ended, Ended::Code(0));
    assert_eq!(n, 5000);
}

#[test]
fn lines_printed_before_a_stop_are_kept() {
    let mut lines = Vec::new();
    let ended = sh("echo one; echo two; exec sleep 30")
        .timeout(Duration::from_millis(300))
        .stream_stdout(&mut |l| lines.push(l.to_vec()))
        .unwrap();
    assert_eq!(ended, Ended::TimedOut);
    assert_eq!(lines, [b"one".to_vec(), b"two".to_vec()]);
}

#[test]
fn signals_and_codes_are_told_apart() {
    assert_eq!(sh("kill -9 $$").status().unwrap(), Ended::Signal(9));
    assert_eq!(sh("exit 23").status().unwrap(), Ended::Code(23));
    assert_eq!(Ended::Code(23).to_string(), "exit code 23");
    assert_eq!(Ended::Signal(9).to_string(), "killed by signal 9");
}

#[test]
fn display_quotes_what_a_shell_would_read_otherwise() {
    let c = Command::new("docker").args(["ps", "--format", "{{.ID}} {{.Image}}", "", "5%"]);
    assert_eq!(c.display(), "docker ps --format '{{.ID}} {{.Image}}' '' 5%");
    assert_eq!(shell_quote("it's"), r"'it'\''s'");
    assert_eq!(shell_quote("/usr/bin/opsync"), "/usr/bin/opsync");
}
