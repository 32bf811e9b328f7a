//! rsync habits on the command line and the text rsync users read, compared with real rsync on
//! the same trees: `-avh --delete` syncs, refused options get one line, and `--stats`,
//! `-n --stats`, `-v`, `-h`, `--log-file` and `--info=progress2` have rsync's layout.
//!
//! Numbers that legitimately differ are replaced by `N` before comparing: rates and times, and
//! the protocol's byte counts (`sent`/`received`/`Total bytes`, `speedup`), which opsync, with no
//! protocol, gives as the file data written. The two `File list ... time` lines rsync prints are
//! dropped (opsync builds no file list; rsync leaves them out too when the time is 0). The
//! counts (files per type, created, deleted, transferred, sizes, literal and matched data) are
//! compared as they are.

use super::*;

/// Replaces the numbers of the protocol and the clock by `N`.
fn normalise(text: &str) -> Vec<String> {
    let num = |s: &str| {
        let mut out = String::new();
        let mut in_num = false;
        for c in s.chars() {
            if c.is_ascii_digit() || ((c == ',' || c == '.') && in_num) {
                if !in_num {
                    out.push('N');
                }
                in_num = true;
            } else {
                // A unit right after a number (120.57K) belongs to it.
                if !(in_num && "KMGTP".contains(c)) {
                    out.push(c);
                }
                in_num = false;
            }
        }
        out
    };
    // rsync deletes in each directory before its transfers, opsync once SRC was read: the
    // deletion lines are compared as a set, before the summary.
    let (mut deleting, rest): (Vec<&str>, Vec<&str>) = text
        .lines()
        .partition(|l| l.starts_with("deleting ") || l.starts_with("*deleting "));
    deleting.sort_unstable();
    let at = rest.iter().position(|l| l.is_empty()).unwrap_or(rest.len());
    let lines: Vec<&str> = rest[..at]
        .iter()
        .chain(&deleting)
        .chain(&rest[at..])
        .copied()
        .collect();
    lines
        .into_iter()
        .filter(|l| {
            !l.starts_with("File list generation time") && !l.starts_with("File list transfer time")
        })
        .map(|l| {
            if l.starts_with("sent ")
                || l.starts_with("total size is ")
                || l.starts_with("Total bytes ")
            {
                num(l)
            } else {
                l.to_string()
            }
        })
        .collect()
}

/// A small fixed tree with every type rsync counts, and a stale DST with entries to delete.
fn fixed_case() -> (tempfile::TempDir, PathBuf, PathBuf, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    for d in ["d/e", "f"] {
        std::fs::create_dir_all(src.join(d)).unwrap();
    }
    std::fs::write(src.join("a"), b"hello\n").unwrap();
    std::fs::write(src.join("d/big"), vec![7u8; 123_456]).unwrap();
    std::fs::write(src.join("d/e/c"), vec![1u8; 4321]).unwrap();
    std::os::unix::fs::symlink("a", src.join("l")).unwrap();
    rustix::fs::mknodat(
        rustix::fs::CWD,
        src.join("fifo"),
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o644),
        0,
    )
    .unwrap();
    // Old mtimes: rsync compares whole seconds and leaves the mtime of an entry it creates
    // without data alone when SRC's lies in the current second (see the README).
    age_tree(&src, 1_500_000_000);
    let stale = tmp.path().join("stale");
    std::fs::create_dir_all(stale.join("x/y")).unwrap();
    std::fs::write(stale.join("x/y/old"), b"old").unwrap();
    std::fs::write(stale.join("gone"), b"gone").unwrap();
    std::fs::write(stale.join("a"), b"HELLO\n").unwrap();
    // DST-only entries of other types, for the per-type count of deleted files.
    std::os::unix::fs::symlink("gone", stale.join("gone-link")).unwrap();
    rustix::fs::mknodat(
        rustix::fs::CWD,
        stale.join("gone-fifo"),
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o644),
        0,
    )
    .unwrap();
    age_tree(&stale, 1_400_000_000);
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    for d in [&a, &b] {
        run(Command::new("cp").arg("-a").arg(&stale).arg(d), &[0]).unwrap();
    }
    (tmp, src, a, b)
}

fn out_of(cmd: &mut Command) -> String {
    let (_, out) = run(cmd.env("LC_ALL", "C"), &[0]).unwrap();
    String::from_utf8(out).unwrap()
}

fn assert_same(what: &str, want: &str, got: &str) {
    let (w, g) = (normalise(want), normalise(got));
    if w != g {
        panic!(
            "{what}: opsync's layout differs from rsync's\n{}\nrsync:\n{want}\nopsync:\n{got}",
            diff_lines(&w, &g).join("\n")
        );
    }
}

#[test]
fn stats_and_summary_lines_have_rsyncs_layout() {
    require_program("rsync", "rsync");
    for (rsync_args, opsync_args) in [
        (&["--stats", "-n"][..], &["--stats", "-n"][..]),
        (&["--stats", "-n", "-h"], &["--stats", "-n", "-h"]),
        (&["--stats"], &["--stats"]),
        (&["--stats", "-hh"], &["--stats", "-hh"]),
        (&["--info=stats2"], &["--info=stats2"]),
        (&["-v"], &["-v"]),
        (&["-vh"], &["-vh"]),
        (&["-v", "-n"], &["-v", "-n"]),
    ] {
        let (_tmp, src, a, b) = fixed_case();
        let want = out_of(
            Command::new("rsync")
                .args(["-a", "--delete"])
                .args(rsync_args)
                .arg(with_slash(&src))
                .arg(with_slash(&a)),
        );
        let got = out_of(
            opsync()
                .args(["sync", "--force"])
                .args(opsync_args)
                .arg(&src)
                .arg(&b),
        );
        assert_same(&format!("{rsync_args:?}"), &want, &got);
    }
}

/// `-ii` (unchanged entries listed too) with `--stats`, `-v` and `-n`: the same lines and the
/// same counts as rsync (an unchanged entry is not created, transferred or deleted), on the
/// first run (changes) and the second (nothing but unchanged entries).
#[test]
fn itemize_twice_with_stats_and_verbose_has_rsyncs_lines_and_counts() {
    require_program("rsync", "rsync");
    for args in [
        &["--stats", "-ii"][..],
        &["-v", "-ii"],
        &["-n", "--stats", "-ii"],
        &["-vv", "-i"],
    ] {
        let (_tmp, src, a, b) = fixed_case();
        for round in ["first run", "second run"] {
            let want = out_of(
                Command::new("rsync")
                    .args(["-a", "--delete"])
                    .args(args)
                    .arg(with_slash(&src))
                    .arg(with_slash(&a)),
            );
            let got = out_of(
                opsync()
                    .args(["sync", "--force"])
                    .args(args)
                    .arg(&src)
                    .arg(&b),
            );
            // Lines of rsync's -vv that opsync, with no protocol, has no use for.
            let want: String = want
                .lines()
                .filter(|l| {
                    !l.starts_with("delta-transmission disabled") && !l.starts_with("total: ")
                })
                .map(|l| format!("{l}\n"))
                .collect();
            assert_same(&format!("{args:?}, {round}"), &want, &got);
            if args.contains(&"-n") {
                rsync(&[], &src, &a, &[0]).unwrap();
                opsync_sync(&[], &src, &b, 0, 0).unwrap();
            }
        }
    }
}

#[test]
fn verbose_into_a_new_dst_says_it_created_it() {
    require_program("rsync", "rsync");
    let (tmp, src, _, _) = fixed_case();
    let (a, b) = (tmp.path().join("new-a"), tmp.path().join("new-b"));
    let want = out_of(
        Command::new("rsync")
            .args(["-avh", "--delete"])
            .arg(with_slash(&src))
            .arg(with_slash(&a)),
    );
    let got = out_of(
        opsync()
            .args(["sync", "--force", "-avh", "--delete"])
            .arg(with_slash(&src))
            .arg(with_slash(&b)),
    );
    let got = got.replace("new-b", "new-a");
    assert_same("-avh into a new DST", &want, &got);
    // The habit of the issue: `-avh --delete` syncs (it once printed the help and did nothing).
    assert_eq!(
        snap(&a)
            .unwrap()
            .diff("rsync", &snap(&b).unwrap(), "opsync"),
        Vec::<String>::new()
    );
}

#[test]
fn h_alone_prints_help_and_refused_options_get_one_line() {
    let out = opsync().args(["sync", "-h"]).output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("Usage: opsync sync"));
    let (_tmp, src, _, b) = fixed_case();
    for (arg, names) in [
        ("-avP", None),
        // -z and --bwlimit are opsync's own now (remote paths); a local run ignores them, as rsync.
        ("-avz", None),
        ("--bwlimit=100", None),
        ("-avR", Some("-R (--relative)")),
        ("--timeout=5", Some("--timeout")),
        ("-u", Some("-u (--update)")),
        ("--no-perms", Some("--no-perms")),
    ] {
        let out = opsync()
            .args(["sync", "--force"])
            .arg(arg)
            .arg(&src)
            .arg(&b)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        match names {
            None => assert!(out.status.success(), "{arg}: {stderr}"),
            Some(name) => {
                assert_eq!(out.status.code(), Some(1), "{arg}");
                assert_eq!(stderr.lines().count(), 1, "{arg}: not one line:\n{stderr}");
                assert!(
                    stderr.contains(&format!("the rsync option {name} is not supported: ")),
                    "{arg}: {stderr}"
                );
                assert!(!stderr.contains("tip:"), "{arg}: {stderr}");
            }
        }
    }
}

#[test]
fn log_file_has_rsyncs_format() {
    require_program("rsync", "rsync");
    let (tmp, src, a, b) = fixed_case();
    let (la, lb) = (tmp.path().join("rsync.log"), tmp.path().join("opsync.log"));
    out_of(
        Command::new("rsync")
            .args(["-a", "--delete"])
            .arg(format!("--log-file={}", la.display()))
            .arg(with_slash(&src))
            .arg(with_slash(&a)),
    );
    out_of(
        opsync()
            .args(["sync", "--force"])
            .arg(format!("--log-file={}", lb.display()))
            .arg(&src)
            .arg(&b),
    );
    // `YYYY/MM/DD HH:MM:SS [PID] ` and the process ids differ; the rest must not.
    let strip = |p: &Path| -> Vec<String> {
        let text = std::fs::read_to_string(p).unwrap();
        let mut lines: Vec<String> = text
            .lines()
            .map(|l| {
                let (stamp, rest) = l.split_at(20);
                assert!(
                    stamp.as_bytes()[4] == b'/' && stamp.as_bytes()[13] == b':',
                    "{l}"
                );
                let rest = rest.trim_start();
                assert!(rest.starts_with('['), "{l}");
                rest.split_once("] ").unwrap().1.to_string()
            })
            .collect();
        // rsync's order of *deleting lines varies.
        lines.sort();
        lines
    };
    let (want, got) = (strip(&la), strip(&lb));
    let norm = |v: Vec<String>| -> Vec<String> {
        v.into_iter()
            .map(|l| {
                if l.starts_with("sent ") {
                    normalise(&l).remove(0)
                } else {
                    l
                }
            })
            .collect()
    };
    assert_eq!(norm(want), norm(got));
}

#[test]
fn progress2_is_one_whole_transfer_line_also_without_a_terminal() {
    require_program("rsync", "rsync");
    let (_tmp, src, a, b) = fixed_case();
    let want = out_of(
        Command::new("rsync")
            .args(["-a", "--delete", "--info=progress2"])
            .arg(with_slash(&src))
            .arg(with_slash(&a)),
    );
    let got = out_of(
        opsync()
            .args(["sync", "--force", "--info=progress2"])
            .arg(&src)
            .arg(&b),
    );
    assert!(got.ends_with('\n') && got.starts_with('\r'), "{got:?}");
    // The last state of the line: bytes, 100%, rate, time, (xfr#N, to-chk=0/FILES); the rate
    // and the time differ.
    let last = |s: &str| -> String {
        let l = s.trim_end().rsplit('\r').next().unwrap().to_string();
        let (head, tail) = l.split_at(21);
        let tail = tail.split_once(" (").map(|(_, t)| t).unwrap_or("");
        format!("{head} RATE TIME ({tail}")
    };
    assert_eq!(last(&want), last(&got), "rsync: {want:?}\nopsync: {got:?}");
}

/// A line of `--progress` output, with the `(WORD, LEFT, TOTAL)` of a per-file line.
type ProgressLine = (String, Option<(String, u64, u64)>);

/// The per-file lines of `--progress` in a pipe: the segment after the last carriage return of
/// each line (rsync also writes the moving states there), with the rate and time replaced and
/// the `(xfr#N, ..-chk=LEFT/TOTAL)` tail split off.
fn progress_lines(text: &str) -> Vec<ProgressLine> {
    text.lines()
        .map(|l| {
            let l = l.rsplit('\r').next().unwrap_or("");
            match l.split_once(" (xfr#") {
                Some((head, tail)) => {
                    let (xfr, chk) = tail.split_once(", ").unwrap();
                    let (word, counts) = chk.trim_end_matches(')').split_once('=').unwrap();
                    let (left, total) = counts.split_once('/').unwrap();
                    // Bytes and percent stay; rate and time go.
                    let head = head
                        .split_whitespace()
                        .take(2)
                        .collect::<Vec<_>>()
                        .join(" ");
                    (
                        format!("{head} RATE TIME (xfr#{xfr}, {word})"),
                        Some((
                            word.to_string(),
                            left.parse().unwrap(),
                            total.parse().unwrap(),
                        )),
                    )
                }
                None => (l.to_string(), None),
            }
        })
        .collect()
}

/// `--progress` as rsync: the names `-v` would print, then each file's line with the bytes,
/// 100%, and `(xfr#N, to-chk=LEFT/TOTAL)`; LEFT counts down to 0 of all SRC's entries. The
/// `ir-chk`/`to-chk` word and the counts before the last line may differ: opsync reads the
/// directories as it goes (rsync's incremental recursion, whose file list runs ahead).
#[test]
fn progress_lines_are_rsyncs_and_count_down_to_zero() {
    require_program("rsync", "rsync");
    let (_tmp, src, a, b) = fixed_case();
    let want = out_of(
        Command::new("rsync")
            .args(["-a", "--delete", "--progress"])
            .arg(with_slash(&src))
            .arg(with_slash(&a)),
    );
    let got = out_of(
        opsync()
            .args(["sync", "--force", "--progress"])
            .arg(&src)
            .arg(&b),
    );
    let (w, g) = (progress_lines(&want), progress_lines(&got));
    // Deletions: rsync's come per directory, opsync's once SRC was read; compared as a set.
    let split = |v: &[ProgressLine]| {
        let (mut del, rest): (Vec<_>, Vec<_>) = v
            .iter()
            .map(|(l, c)| (l.clone(), c.clone()))
            .partition(|(l, _)| l.starts_with("deleting "));
        del.sort();
        (del, rest)
    };
    let ((wd, wr), (gd, gr)) = (split(&w), split(&g));
    assert_eq!(wd, gd, "deletions\nrsync: {want}\nopsync: {got}");
    let strip = |v: &[ProgressLine]| -> Vec<String> {
        v.iter()
            .map(|(l, c)| match c {
                Some((word, _, _)) => l.replace(&format!(", {word})"), ")"),
                None => l.clone(),
            })
            .collect()
    };
    assert_eq!(strip(&wr), strip(&gr), "rsync: {want}\nopsync: {got}");
    // (LEFT, TOTAL) of each line: the word says whether every directory was read by then,
    // which depends on the threads' timing.
    let counts: Vec<_> = gr
        .iter()
        .filter_map(|(_, c)| c.clone())
        .map(|c| (c.1, c.2))
        .collect();
    let last_w = wr
        .iter()
        .filter_map(|(_, c)| c.clone())
        .map(|c| (c.1, c.2))
        .next_back();
    assert_eq!(
        counts.last(),
        last_w.as_ref(),
        "the last line's count: {got}"
    );
    assert!(
        counts
            .windows(2)
            .all(|p| p[1].0 <= p[0].0 || p[1].1 > p[0].1),
        "files left must count down (or the total grow as directories are read): {counts:?}"
    );
    // An update run: every entry counted, the one changed file's line says 0 left.
    std::fs::write(src.join("d/e/c"), b"changed").unwrap();
    let got = out_of(opsync().args(["sync", "--progress"]).arg(&src).arg(&b));
    let last = progress_lines(&got)
        .into_iter()
        .filter_map(|(_, c)| c)
        .map(|c| (c.1, c.2))
        .next_back();
    assert_eq!(last, last_w, "{got}");
}

/// On a terminal, `--progress` moves a line while a large file is copied (the bytes done so
/// far, percent, rate, ETA and the name), and erases it before the file's own lines.
#[test]
fn progress_moves_while_a_large_file_is_copied_on_a_terminal() {
    let script = require_program("script", "bsdutils");
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    std::fs::create_dir(&src).unwrap();
    // Five chunks of the kernel copy (64 MiB each): four moving states before the end.
    let f = std::fs::File::create(src.join("big")).unwrap();
    f.set_len((256 << 20) + 1).unwrap();
    drop(f);
    let cmd = format!(
        "{} sync --progress {} {}",
        opsync_tests::opsync_bin().display(),
        src.display(),
        tmp.path().join("dst").display()
    );
    // `script` runs the command on a pseudo-terminal and copies what it printed.
    let (_, out) = run(
        Command::new(script)
            .args(["-qec", &cmd, "/dev/null"])
            .env("LC_ALL", "C"),
        &[0],
    )
    .unwrap();
    let out = String::from_utf8_lossy(&out).into_owned();
    let moving: Vec<&str> = out
        .split("\r\x1b[K")
        .filter(|s| s.ends_with("  big"))
        .collect();
    assert!(
        moving.len() >= 2,
        "at least two moving states of big's line: {out:?}"
    );
    for m in &moving {
        let pct: u64 = m
            .split_whitespace()
            .nth(1)
            .and_then(|p| p.strip_suffix('%'))
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("a percentage in {m:?}"));
        assert!(pct > 0 && pct < 100, "{m:?}");
    }
    let end = out.rfind("  big").unwrap();
    assert!(
        out[end..].contains("big\r\n") && out.contains("268,435,457 100%"),
        "the line is erased, then the name and the final line follow: {out:?}"
    );
}

/// As rsync 3.5 (its `excludefrom-symlink` test): an `--exclude-from` file that is a symlink
/// owned by another user is not followed; one of the caller's own is.
#[test]
fn exclude_from_refuses_a_symlink_of_another_user() {
    let (tmp, src, _, b) = fixed_case();
    std::fs::write(tmp.path().join("rules"), "- a\n").unwrap();
    let planted = tmp.path().join("planted");
    std::os::unix::fs::symlink("rules", &planted).unwrap();
    rustix::fs::chownat(
        rustix::fs::CWD,
        &planted,
        Some(rustix::process::Uid::from_raw(65534)),
        None,
        rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
    )
    .unwrap();
    let out = opsync()
        .args(["sync", "--force"])
        .arg(format!("--exclude-from={}", planted.display()))
        .arg(&src)
        .arg(&b)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("owned by uid 65534"), "{stderr}");
    let own = tmp.path().join("own");
    std::os::unix::fs::symlink("rules", &own).unwrap();
    let out = opsync()
        .args(["sync", "--force"])
        .arg(format!("--exclude-from={}", own.display()))
        .arg(&src)
        .arg(&b)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!b.join("a").exists() || std::fs::read(b.join("a")).unwrap() == b"HELLO\n");
}

/// As rsync 3.5 (its `log-file-symlink` and `operator-path-log-file` tests): a `--log-file` that is a symlink
/// owned by another user is not followed, so the file it points to is not appended to; the
/// same rule as for `--exclude-from`, and the same one error line before anything is synced.
#[test]
fn log_file_refuses_a_symlink_of_another_user() {
    let (tmp, src, _, b) = fixed_case();
    let sentinel = tmp.path().join("sentinel");
    std::fs::write(&sentinel, "untouched\n").unwrap();
    let planted = tmp.path().join("planted");
    std::os::unix::fs::symlink("sentinel", &planted).unwrap();
    rustix::fs::chownat(
        rustix::fs::CWD,
        &planted,
        Some(rustix::process::Uid::from_raw(65534)),
        None,
        rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
    )
    .unwrap();
    let out = opsync()
        .args(["sync", "--force"])
        .arg(format!("--log-file={}", planted.display()))
        .arg(&src)
        .arg(&b)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("owned by uid 65534"), "{stderr}");
    assert_eq!(std::fs::read(&sentinel).unwrap(), b"untouched\n");
    assert_eq!(
        std::fs::read(b.join("a")).unwrap(),
        b"HELLO\n",
        "nothing is synced"
    );
    // One of the caller's own is followed.
    let own = tmp.path().join("own");
    std::os::unix::fs::symlink("sentinel", &own).unwrap();
    let out = opsync()
        .args(["sync", "--force"])
        .arg(format!("--log-file={}", own.display()))
        .arg(&src)
        .arg(&b)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(std::fs::read(&sentinel).unwrap().len() > b"untouched\n".len());
}

/// A symlink in DST's path owned by another user is refused with the exit code `--help` names
/// for `--insecure-links` (1, a bad path, as in the README's table; rsync 3.5 exits 11), and
/// nothing is written through it.
#[test]
fn insecure_links_refusal_exits_with_the_code_the_help_names() {
    let (tmp, src, _, _) = fixed_case();
    let outside = tmp.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    let link = tmp.path().join("planted");
    std::os::unix::fs::symlink(&outside, &link).unwrap();
    std::os::unix::fs::lchown(&link, Some(65534), Some(65534)).unwrap();
    let out = opsync().arg("sync").arg(&src).arg(&link).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--insecure-links"), "{stderr}");
    assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0);
    let code = out.status.code().unwrap();
    assert_eq!(code, 1, "{stderr}");
    let help = opsync().args(["sync", "--help"]).output().unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    let at = help.find("--insecure-links").unwrap();
    let text: String = help[at..].split("\n\n").next().unwrap().into();
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(text.contains(&format!("exit {code},")), "{text}");
}
