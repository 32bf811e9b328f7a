//! `opsync sync` over real OpenSSH between two network namespaces ("prod" runs the client,
//! "dev" runs sshd; see `opsync_tests::sshd`): push and pull against `rsync -a --delete -e ssh`
//! on random hostile trees, a killed ssh in the middle of a transfer, and the clear errors of a
//! missing remote parent, an unreachable host and a remote end that is not opsync.
//!
//! `OPSYNC_REMOTE_SEEDS=N` runs seeds `0..N` (default 6).

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use opsync_tests::opsync_bin;
use opsync_tests::snapshot::{render, snapshot};
use opsync_tests::sshd::Hosts;
use opsync_tests::tree::{GenOptions, StaleOptions, Tree};

use crate::sync_rails::count_old;

fn show(out: &Output) -> String {
    format!(
        "{}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `opsync sync ARGS A B` in prod, with the test's ssh and the built binary on the remote end.
/// With `--force`, as the local differential tests: rsync has no half-of-DST guard.
fn opsync_remote(h: &Hosts, args: &[&str], a: &str, b: &str) -> Output {
    h.in_prod(opsync_bin())
        .arg("sync")
        .args([
            "--force",
            "-e",
            &h.rsh(),
            "--remote-opsync",
            &opsync_bin().display().to_string(),
        ])
        .args(args)
        .args([a, b])
        .output()
        .unwrap()
}

/// `rsync -ai --delete -e ssh SRC/ DEV:DST/`; returns its itemize lines.
fn rsync_push(h: &Hosts, src: &Path, dst: &Path) -> Vec<u8> {
    rsync_push_with(h, &[], src, dst)
}

/// `rsync -ai --delete -e ssh ARGS SRC/ DEV:DST/`; returns its itemize lines.
fn rsync_push_with(h: &Hosts, args: &[&str], src: &Path, dst: &Path) -> Vec<u8> {
    let out = h
        .in_prod("rsync")
        .args(["-ai", "--delete", "-e", &h.rsh()])
        .args(args)
        .arg(format!("{}/", src.display()))
        .arg(format!("{}/", h.remote(dst)))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "rsync over ssh failed: {}",
        show(&out)
    );
    out.stdout
}

/// Itemize output compared as the local differential test does: the lines in order, except
/// `*deleting` lines, compared as a set (rsync deletes in its own order).
fn same_items(rsync: &[u8], opsync: &[u8]) -> Result<(), String> {
    let split = |b: &[u8]| {
        let text = String::from_utf8_lossy(b).into_owned();
        let (mut del, mut rest): (Vec<String>, Vec<String>) = text
            .lines()
            .map(str::to_string)
            .partition(|l| l.starts_with("*deleting"));
        del.sort();
        rest.retain(|l| !l.is_empty());
        (del, rest)
    };
    if split(rsync) == split(opsync) {
        Ok(())
    } else {
        Err(format!(
            "itemize lines differ:\nrsync -ai:\n{}\nopsync -i:\n{}",
            String::from_utf8_lossy(rsync),
            String::from_utf8_lossy(opsync)
        ))
    }
}

/// rsync's lines of a push as a pull prints them: rsync marks what a push sends `<f`, what a
/// pull receives `>f`.
fn as_pulled(push: &[u8]) -> Vec<u8> {
    String::from_utf8_lossy(push)
        .lines()
        .map(|l| match l.strip_prefix('<') {
            Some(rest) => format!(">{rest}\n"),
            None => format!("{l}\n"),
        })
        .collect::<String>()
        .into_bytes()
}

fn seeds() -> u64 {
    std::env::var("OPSYNC_REMOTE_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(6)
}

#[test]
fn remote_push_and_pull_give_rsyncs_result() {
    let h = Hosts::start();
    let mut failures = Vec::new();
    for seed in 0..seeds() {
        let tmp = tempfile::Builder::new()
            .prefix(&format!("opsync-remote-{seed}-"))
            .tempdir()
            .unwrap();
        let t = tmp.path();
        let opts = GenOptions::default();
        let src_tree = Tree::random(seed, &opts);
        src_tree.build(&t.join("src")).unwrap();
        std::fs::create_dir(t.join("outside")).unwrap();
        std::fs::write(t.join("outside/file"), b"must never change\n").unwrap();
        let stale = src_tree.stale(
            seed,
            &StaleOptions {
                change_percent: 30,
                trap_percent: 10,
                extraneous_percent: 25,
                outside: t.join("outside").as_os_str().as_encoded_bytes().to_vec(),
                outside_from_root: b"../outside".to_vec(),
            },
            &opts,
        );
        for d in ["a", "b", "c"] {
            stale.tree.build(&t.join(d)).unwrap();
        }
        let outside_before = snapshot(&t.join("outside")).unwrap();
        let rsync_items = rsync_push(&h, &t.join("src"), &t.join("a"));
        let src = t.join("src").display().to_string();
        let push = opsync_remote(&h, &["-i"], &src, &h.remote(&t.join("b")));
        let pull = opsync_remote(
            &h,
            &["-i"],
            &h.remote(&t.join("src")),
            &t.join("c").display().to_string(),
        );
        let mut msgs = Vec::new();
        for (what, out) in [("push", &push), ("pull", &pull)] {
            if !out.status.success() {
                msgs.push(format!("opsync {what} failed: {}", show(out)));
            }
        }
        let rsync_pull_items = as_pulled(&rsync_items);
        for (what, out, want) in [
            ("push", &push, &rsync_items),
            ("pull", &pull, &rsync_pull_items),
        ] {
            if let Err(e) = same_items(want, &out.stdout) {
                msgs.push(format!("opsync {what}: {e}"));
            }
        }
        let a = snapshot(&t.join("a")).unwrap();
        for (what, d) in [("push", "b"), ("pull", "c")] {
            let lines = a.diff("rsync", &snapshot(&t.join(d)).unwrap(), what);
            if !lines.is_empty() {
                msgs.push(render(
                    &format!("opsync {what} differs from rsync -a --delete -e ssh"),
                    &lines,
                    25,
                ));
            }
        }
        let again = opsync_remote(&h, &["-i"], &src, &h.remote(&t.join("b")));
        if !again.status.success() || !again.stdout.is_empty() {
            msgs.push(format!(
                "a second push -i should print nothing: {}",
                show(&again)
            ));
        }
        let lines = outside_before.diff("before", &snapshot(&t.join("outside")).unwrap(), "after");
        if !lines.is_empty() {
            msgs.push(render("a tree outside DST changed", &lines, 25));
        }
        if !msgs.is_empty() {
            failures.push(format!("seed {seed}:\n{}", msgs.join("\n")));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// `-ii` over ssh (push and pull, the sender's end plans and prints): the unchanged entries'
/// lines too, as `rsync -ii -e ssh` prints them, with changes and once everything is synced.
#[test]
fn remote_itemize_twice_matches_rsync() {
    let h = Hosts::start();
    let mut failures = Vec::new();
    for seed in 100..100 + seeds().min(4) {
        let tmp = tempfile::Builder::new()
            .prefix(&format!("opsync-remote-ii-{seed}-"))
            .tempdir()
            .unwrap();
        let t = tmp.path();
        let opts = GenOptions::default();
        let src_tree = Tree::random(seed, &opts);
        src_tree.build(&t.join("src")).unwrap();
        let stale = src_tree.stale(
            seed,
            &StaleOptions {
                change_percent: 30,
                trap_percent: 10,
                extraneous_percent: 25,
                outside: b"/nonexistent".to_vec(),
                outside_from_root: b"../outside".to_vec(),
            },
            &opts,
        );
        for d in ["a", "b", "c"] {
            stale.tree.build(&t.join(d)).unwrap();
        }
        let src = t.join("src").display().to_string();
        let mut msgs = Vec::new();
        for round in ["with changes", "synced"] {
            let want = rsync_push_with(&h, &["-i"], &t.join("src"), &t.join("a"));
            let push = opsync_remote(&h, &["-ii"], &src, &h.remote(&t.join("b")));
            let pull = opsync_remote(
                &h,
                &["-ii"],
                &h.remote(&t.join("src")),
                &t.join("c").display().to_string(),
            );
            for (what, out, want) in [
                ("push", &push, want.clone()),
                ("pull", &pull, as_pulled(&want)),
            ] {
                if !out.status.success() {
                    msgs.push(format!("opsync {what} -ii ({round}) failed: {}", show(out)));
                } else if let Err(e) = same_items(&want, &out.stdout) {
                    msgs.push(format!("opsync {what} -ii ({round}): {e}"));
                }
            }
        }
        if !msgs.is_empty() {
            failures.push(format!("seed {seed}:\n{}", msgs.join("\n")));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn remote_stats_and_json_count_the_connections_bytes() {
    let h = Hosts::start();
    let t = h.dir.path().join("stats");
    std::fs::create_dir_all(t.join("src")).unwrap();
    std::fs::write(t.join("src/f"), vec![7u8; 300_000]).unwrap();
    let out = opsync_remote(
        &h,
        &["--json"],
        &t.join("src").display().to_string(),
        &h.remote(&t.join("dst")),
    );
    assert!(out.status.success(), "{}", show(&out));
    let last = String::from_utf8_lossy(&out.stdout)
        .lines()
        .last()
        .unwrap()
        .to_string();
    let v: serde_json::Value = serde_json::from_str(&last).unwrap();
    let sent = v["sent_bytes"].as_u64().unwrap();
    assert!(
        sent > 300_000 && sent < 310_000,
        "sent {sent} for a 300,000-byte file: {last}"
    );
    assert!(v["received_bytes"].as_u64().unwrap() > 0);
    assert_eq!(std::fs::read(t.join("dst/f")).unwrap().len(), 300_000);
    let out = opsync_remote(
        &h,
        &["--stats"],
        &t.join("src").display().to_string(),
        &h.remote(&t.join("dst")),
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("sent ") && text.contains(" bytes  received "),
        "{}",
        show(&out)
    );
}

#[test]
fn remote_errors_are_clear() {
    let h = Hosts::start();
    let t = h.dir.path().join("errs");
    std::fs::create_dir_all(t.join("src")).unwrap();
    std::fs::write(t.join("src/f"), b"x").unwrap();
    let src = t.join("src").display().to_string();

    let out = opsync_remote(&h, &[], &src, &h.remote(&t.join("missing/parent/dst")));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    assert!(
        err.contains("parent") && err.contains("does not exist"),
        "{}",
        show(&out)
    );
    assert!(!t.join("missing").exists());

    // Nothing answers at this address in prod's subnet: ssh fails, exit 255 as rsync.
    let unreachable = format!(
        "root@{}:/tmp/x",
        h.dev_addr.trim_end_matches(".1").to_owned() + ".3"
    );
    let out = opsync_remote(&h, &[], &src, &unreachable);
    assert_eq!(out.status.code(), Some(255), "{}", show(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("ssh"),
        "{}",
        show(&out)
    );

    // A remote end that is not opsync: a protocol stream error, 12.
    let out = h
        .in_prod(opsync_bin())
        .args([
            "sync",
            "-e",
            &h.rsh(),
            "--remote-opsync",
            "echo hello from a login script; cat >/dev/null; true",
        ])
        .args([&src, &h.remote(&t.join("dst"))])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(12), "{}", show(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("did not answer as opsync"),
        "{}",
        show(&out)
    );
}

#[test]
fn remote_protocol_versions_that_differ_give_one_error_naming_both() {
    let h = Hosts::start();
    let t = h.dir.path().join("version");
    std::fs::create_dir_all(t.join("src")).unwrap();
    // A remote end that says it is opsync 9.9.9 speaking protocol 99 (0x63); the client
    // appends " serve", which `true` takes.
    let fake = r"printf '\001\025\000\000\000OPSYNC\000\001c\000\000\000\005\000\000\0009.9.9'; cat >/dev/null; true";
    let out = h
        .in_prod(opsync_bin())
        .args(["sync", "-e", &h.rsh(), "--remote-opsync", fake])
        .arg(t.join("src"))
        .arg(h.remote(&t.join("dst")))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(12), "{}", show(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{}", show(&out));
    assert!(
        err.contains("protocol version mismatch")
            && err.contains(&format!(
                "opsync {} speaks protocol 3",
                env!("CARGO_PKG_VERSION")
            ))
            && err.contains("opsync 9.9.9 speaks protocol 99"),
        "{}",
        show(&out)
    );
    assert!(!t.join("dst").exists());
}

/// The pid of the first child of `pid` (the ssh that opsync started).
fn child_of(pid: u32) -> Option<u32> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).ok()?;
    s.split_whitespace().next()?.parse().ok()
}

#[test]
fn remote_killed_ssh_leaves_complete_old_or_new_files_and_a_rerun_finishes() {
    let h = Hosts::start();
    let t = h.dir.path().join("kill");
    let n = 40;
    let size = 4 << 20;
    // Old versions below the delta threshold: the new files go whole, one after the other.
    const OLD: usize = 16 << 10;
    std::fs::create_dir_all(t.join("src")).unwrap();
    std::fs::create_dir_all(t.join("dst")).unwrap();
    for i in 0..n {
        std::fs::write(t.join(format!("src/f{i:02}")), vec![b'N'; size]).unwrap();
        std::fs::write(t.join(format!("dst/f{i:02}")), vec![b'O'; OLD]).unwrap();
    }
    let src = t.join("src").display().to_string();
    let child = h
        .in_prod(opsync_bin())
        .arg("sync")
        .args([
            "-e",
            &h.rsh(),
            "--remote-opsync",
            &opsync_bin().display().to_string(),
        ])
        .args([&src, &h.remote(&t.join("dst"))])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until some new file is complete, then kill ssh.
    let new_one = || {
        (0..n).any(|i| std::fs::read(t.join(format!("dst/f{i:02}"))).is_ok_and(|d| d.len() == size))
    };
    assert!(
        Hosts::wait_for(Duration::from_secs(60), new_one),
        "no file arrived"
    );
    let ssh = child_of(child.id()).expect("opsync's ssh child");
    Command::new("kill")
        .arg("-9")
        .arg(ssh.to_string())
        .status()
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let code = out.status.code();
    let done = (0..n)
        .filter(|i| std::fs::read(t.join(format!("dst/f{i:02}"))).unwrap().len() == size)
        .count();
    if done == n {
        panic!("the transfer finished before ssh was killed: make the files larger");
    }
    assert!(
        matches!(code, Some(12 | 255)),
        "exit {code:?} after ssh was killed: {}",
        show(&out)
    );
    // Every file is complete: all old or all new bytes.
    for i in 0..n {
        let d = std::fs::read(t.join(format!("dst/f{i:02}"))).unwrap();
        let old = d.len() == OLD && d.iter().all(|&b| b == b'O');
        let new = d.len() == size && d.iter().all(|&b| b == b'N');
        assert!(
            old || new,
            "f{i:02} is neither the old nor the new file ({} bytes)",
            d.len()
        );
    }
    // The remote end notices the broken connection, removes its temporary file and exits.
    assert!(
        Hosts::wait_for(Duration::from_secs(20), || !h.dev_runs("opsync")),
        "the remote opsync is still running 20 s after its ssh was killed"
    );
    let temps: Vec<_> = std::fs::read_dir(t.join("dst"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n.as_encoded_bytes().starts_with(b"."))
        .collect();
    assert!(
        temps.is_empty(),
        "temporary files left after the broken run: {temps:?}"
    );
    let rerun = opsync_remote(&h, &[], &src, &h.remote(&t.join("dst")));
    assert!(rerun.status.success(), "{}", show(&rerun));
    for i in 0..n {
        assert_eq!(
            std::fs::read(t.join(format!("dst/f{i:02}"))).unwrap().len(),
            size
        );
    }
    // No temporary files left behind by either run.
    let names: Vec<_> = std::fs::read_dir(t.join("dst"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), n, "{names:?}");
}

/// "sent N bytes  received M bytes" of rsync's --stats, or of opsync's.
fn wire_bytes(stdout: &[u8]) -> u64 {
    let text = String::from_utf8_lossy(stdout);
    let line = text
        .lines()
        .find(|l| l.starts_with("sent ") && l.contains(" received "))
        .unwrap_or_else(|| panic!("no sent/received line in:\n{text}"));
    let nums: Vec<u64> = line
        .split_whitespace()
        .filter_map(|w| w.replace(',', "").parse().ok())
        .collect();
    nums.iter().take(2).sum()
}

fn pseudo_random(len: usize, seed: u32) -> Vec<u8> {
    let mut x = seed;
    (0..len)
        .map(|_| {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            (x >> 16) as u8
        })
        .collect()
}

#[test]
fn remote_changed_large_files_go_as_deltas_with_no_more_bytes_than_rsync() {
    let h = Hosts::start();
    let t = h.dir.path().join("delta");
    let size = 8 << 20;
    std::fs::create_dir_all(t.join("src")).unwrap();
    for i in 0..3u32 {
        std::fs::write(t.join(format!("src/f{i}")), pseudo_random(size, i + 1)).unwrap();
    }
    let src = t.join("src").display().to_string();
    for d in ["a", "b"] {
        let out = opsync_remote(&h, &[], &src, &h.remote(&t.join(d)));
        assert!(out.status.success(), "{}", show(&out));
    }
    // 1% of the 4 KiB blocks changed in place, 64 KiB inserted in the middle, 1 MiB appended.
    let mut f0 = std::fs::read(t.join("src/f0")).unwrap();
    for b in (0..size / 4096).step_by(100) {
        f0[b * 4096..b * 4096 + 4096].copy_from_slice(&pseudo_random(4096, b as u32 + 99));
    }
    std::fs::write(t.join("src/f0"), &f0).unwrap();
    let f1 = std::fs::read(t.join("src/f1")).unwrap();
    let mut g = f1[..size / 2].to_vec();
    g.extend_from_slice(&pseudo_random(65536, 7));
    g.extend_from_slice(&f1[size / 2..]);
    std::fs::write(t.join("src/f1"), &g).unwrap();
    let mut f2 = std::fs::read(t.join("src/f2")).unwrap();
    f2.extend_from_slice(&pseudo_random(1 << 20, 8));
    std::fs::write(t.join("src/f2"), &f2).unwrap();

    let rsync = h
        .in_prod("rsync")
        .args(["-a", "--delete", "--stats", "-e", &h.rsh()])
        .arg(format!("{src}/"))
        .arg(format!("{}/", h.remote(&t.join("a"))))
        .output()
        .unwrap();
    assert!(rsync.status.success(), "{}", show(&rsync));
    let ours = opsync_remote(&h, &["--stats", "-i"], &src, &h.remote(&t.join("b")));
    assert!(ours.status.success(), "{}", show(&ours));
    for i in 0..3 {
        assert_eq!(
            std::fs::read(t.join(format!("b/f{i}"))).unwrap(),
            std::fs::read(t.join(format!("src/f{i}"))).unwrap(),
            "f{i} differs after the delta"
        );
    }
    let (r, o) = (wire_bytes(&rsync.stdout), wire_bytes(&ours.stdout));
    let whole = (3 * size + (1 << 20) + 65536) as u64;
    println!("bytes on the wire: rsync {r}, opsync {o} (whole files: {whole})");
    assert!(
        o * 10 < whole,
        "opsync moved {o} bytes: not deltas\n{}",
        show(&ours)
    );
    assert!(o <= r, "opsync moved {o} bytes, rsync {r}\n{}", show(&ours));
}

/// A no-change run of 3,000 files, push and pull, moves no more bytes than rsync's (DST's
/// listing goes compressed with zstd; uncompressed it was 3.3 times rsync's bytes).
#[test]
fn remote_no_change_run_moves_no_more_bytes_than_rsync() {
    let h = Hosts::start();
    let t = h.dir.path().join("quiet");
    for d in 0..30 {
        std::fs::create_dir_all(t.join(format!("src/dir-{d:02}"))).unwrap();
        for f in 0..100 {
            let p = t.join(format!("src/dir-{d:02}/file-{f:03}.dat"));
            std::fs::write(p, pseudo_random(f * 7, d * 1000 + f as u32)).unwrap();
        }
    }
    let src = t.join("src").display().to_string();
    let local = |d: &str| t.join(d).display().to_string();
    for (what, a, b, r) in [
        ("push", src.clone(), h.remote(&t.join("push")), "rsync-push"),
        (
            "pull",
            h.remote(&t.join("src")),
            local("pull"),
            "rsync-pull",
        ),
    ] {
        let rsync_dst = if what == "push" {
            h.remote(&t.join(r))
        } else {
            local(r)
        };
        let rsync = |stats: bool| {
            let mut c = h.in_prod("rsync");
            c.args(["-a", "--delete", "-e", &h.rsh()]);
            if stats {
                c.arg("--stats");
            }
            c.arg(format!("{a}/")).arg(format!("{rsync_dst}/"));
            let out = c.output().unwrap();
            assert!(out.status.success(), "{what}: {}", show(&out));
            out
        };
        rsync(false);
        let out = opsync_remote(&h, &[], &a, &b);
        assert!(out.status.success(), "{what}: {}", show(&out));
        let ours = opsync_remote(&h, &["--stats"], &a, &b);
        assert!(ours.status.success(), "{what}: {}", show(&ours));
        let (r, o) = (wire_bytes(&rsync(true).stdout), wire_bytes(&ours.stdout));
        println!("{what}: no-change bytes on the wire: rsync {r}, opsync {o}");
        assert!(
            o <= r,
            "{what}: opsync moved {o} bytes, rsync {r}\n{}",
            show(&ours)
        );
    }
}

#[test]
fn remote_compress_shrinks_the_stream_and_bwlimit_slows_it() {
    let h = Hosts::start();
    let t = h.dir.path().join("z");
    std::fs::create_dir_all(t.join("src")).unwrap();
    let text: Vec<u8> = (0..40_000)
        .flat_map(|i| format!("line {i} of a compressible log\n").into_bytes())
        .collect();
    std::fs::write(t.join("src/log"), &text).unwrap();
    let src = t.join("src").display().to_string();
    let out = opsync_remote(&h, &["-z", "--stats"], &src, &h.remote(&t.join("push")));
    assert!(out.status.success(), "{}", show(&out));
    let sent = wire_bytes(&out.stdout);
    assert!(
        sent * 10 < text.len() as u64,
        "-z moved {sent} bytes for {}",
        text.len()
    );
    let out = opsync_remote(
        &h,
        &["-z"],
        &h.remote(&t.join("src")),
        &t.join("pull").display().to_string(),
    );
    assert!(out.status.success(), "{}", show(&out));
    for d in ["push", "pull"] {
        assert_eq!(std::fs::read(t.join(d).join("log")).unwrap(), text);
    }
    // 1 MiB at 256 KiB/s takes at least about 4 s (a limit can only make it slower).
    std::fs::write(t.join("src/log"), pseudo_random(1 << 20, 3)).unwrap();
    let started = std::time::Instant::now();
    let out = opsync_remote(&h, &["--bwlimit=256"], &src, &h.remote(&t.join("slow")));
    assert!(out.status.success(), "{}", show(&out));
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(3500),
        "1 MiB at 256 KiB/s took {took:?}"
    );
}

/// A folder `t` with production's `data/` (`db/base.dat`, `minio.bin`), a stale `dev-data/`, a
/// remote shell that records the dev stack's steps (which would need Docker on the dev host)
/// in `stack-steps` and runs ssh for everything else, and `opsync.toml` whose nightly job
/// pushes `data` to `dev-data` over it with `job_keys` (for example `verify = false`).
fn remote_nightly(h: &Hosts, name: &str, job_keys: &str) -> std::path::PathBuf {
    let t = h.dir.path().join(name);
    std::fs::create_dir_all(t.join("data/db")).unwrap();
    std::fs::write(t.join("data/db/base.dat"), b"production rows").unwrap();
    std::fs::write(t.join("data/minio.bin"), vec![7u8; 100_000]).unwrap();
    std::fs::create_dir_all(t.join("dev-data")).unwrap();
    std::fs::write(t.join("dev-data/stale.txt"), b"old").unwrap();
    let log = t.join("stack-steps");
    let rsh = t.join("rsh");
    std::fs::write(
        &rsh,
        format!(
            "#!/bin/sh\ncase \"$*\" in *' stack '*) echo \"$*\" >> {log}; exit 0;; esac\nexec {ssh} \"$@\"\n",
            log = log.display(),
            ssh = h.rsh()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&rsh, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let target = h.remote(&t.join("dev-data"));
    let host = target.split(':').next().unwrap().to_string();
    let config = format!(
        r#"[general]
state-dir = "state"

[sync]
source = "data"
target = "{target}"
rsh = "{rsh}"
remote-opsync = "{opsync}"

[jobs.nightly]
kind = "sync"
schedule = "0 2 * * *"
{job_keys}

[jobs.nightly.dev]
host = "{host}"

[jobs.nightly.quiesce]
mode = "none"
"#,
        rsh = rsh.display(),
        opsync = opsync_bin().display(),
    );
    std::fs::write(t.join("opsync.toml"), config).unwrap();
    t
}

/// `opsync run nightly` in prod with the config of [`remote_nightly`].
fn run_nightly(h: &Hosts, t: &Path) -> Output {
    h.in_prod(opsync_bin())
        .current_dir(t)
        .arg("--config")
        .arg(t.join("opsync.toml"))
        .args(["run", "nightly"])
        .output()
        .unwrap()
}

/// The record of step `name` in the nightly job's state.
fn nightly_step(t: &Path, name: &str) -> serde_json::Value {
    let st: serde_json::Value =
        serde_json::from_slice(&std::fs::read(t.join("state/jobs/nightly.json")).unwrap()).unwrap();
    crate::nightly::step_of(&st, name)
}

/// The dev copy of `db/base.dat` with production's size and mtime but other content: what the
/// quick check misses (its access time is 100 s after its mtime, so not a racy copy either).
fn corrupt_remote_dev_copy(t: &Path) {
    use filetime::FileTime;
    let mtime = FileTime::from_unix_time(1_700_000_000, 123_456_789);
    filetime::set_file_times(t.join("data/db/base.dat"), mtime, mtime).unwrap();
    let dev = t.join("dev-data/db/base.dat");
    std::fs::write(&dev, b"PRODUCTION ROWS").unwrap();
    let atime = FileTime::from_unix_time(1_700_000_100, 0);
    filetime::set_file_times(&dev, atime, mtime).unwrap();
}

#[test]
fn remote_nightly_job_mirrors_to_the_dev_host_and_runs_its_dev_stack_steps_there() {
    let h = Hosts::start();
    let t = remote_nightly(&h, "nightly", "verify = false");
    let target = h.remote(&t.join("dev-data"));
    let host = target.split(':').next().unwrap().to_string();
    let out = run_nightly(&h, &t);
    assert!(out.status.success(), "{}", show(&out));
    assert_eq!(
        std::fs::read(t.join("dev-data/db/base.dat")).unwrap(),
        b"production rows"
    );
    assert_eq!(
        std::fs::read(t.join("dev-data/minio.bin")).unwrap(),
        vec![7u8; 100_000]
    );
    assert!(!t.join("dev-data/stale.txt").exists());
    let steps = std::fs::read_to_string(t.join("stack-steps")).unwrap();
    let opsync = opsync_bin().display().to_string();
    assert_eq!(
        steps,
        format!("{host} {opsync} stack stop dev\n{host} {opsync} stack start dev\n"),
        "dev stack steps through the remote shell"
    );
}

/// `verify = true` (the default) with a remote target: the check step compares both trees over
/// ssh (a dry run with contents compared) on live data and reports as the local check does. A
/// dev file with production's size and mtime but other content, changed behind the sync's back,
/// is found by the check (kind `content`, on the recheck list), compared by content and copied
/// by pass 2, and named as repaired. Before, `config check` refused this configuration; without
/// the check, the file stays wrong (the quick check of both passes trusts it).
#[test]
fn remote_nightly_verify_true_checks_over_ssh_and_repairs_what_the_quick_check_misses() {
    let h = Hosts::start();
    let t = remote_nightly(&h, "nightly-verify", "");
    // A clean night: the check compares the trees and finds nothing.
    let out = run_nightly(&h, &t);
    assert!(out.status.success(), "{}", show(&out));
    let check = nightly_step(&t, "check");
    assert_eq!(check["result"], "ok", "{check}\n{}", show(&out));
    assert!(check["differences"].is_null(), "{check}");
    assert!(!t.join("dev-data/stale.txt").exists());

    corrupt_remote_dev_copy(&t);
    let out = run_nightly(&h, &t);
    assert!(out.status.success(), "{}", show(&out));
    assert_eq!(
        std::fs::read(t.join("dev-data/db/base.dat")).unwrap(),
        b"production rows",
        "the dev file the quick check misses was not repaired\n{}",
        show(&out)
    );
    let check = nightly_step(&t, "check");
    assert_eq!(check["result"], "ok", "{check}");
    assert_eq!(check["differences"]["kinds"]["content"], 1, "{check}");
    assert_eq!(check["differences"]["paths"][0], "db/base.dat", "{check}");
    assert_eq!(
        std::fs::read(t.join("state/jobs/nightly.recheck")).unwrap(),
        b"db/base.dat\0"
    );
    let pass2 = nightly_step(&t, "pass-2");
    assert_eq!(pass2["result"], "ok", "{pass2}");
    assert_eq!(pass2["repaired"]["paths"][0], "db/base.dat", "{pass2}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("1 difference repaired: db/base.dat"),
        "{}",
        show(&out)
    );
    // The next night has nothing to find.
    let out = run_nightly(&h, &t);
    assert!(out.status.success(), "{}", show(&out));
    assert!(nightly_step(&t, "check")["differences"].is_null());
}

/// `verify = "paused"` with a remote target: pass 2 (production quiesced) compares both whole
/// trees over ssh, copies what differs again with contents compared and checks once more; the
/// job names the repaired file as locally.
#[test]
fn remote_nightly_verify_paused_repairs_in_pass_2_and_names_the_file() {
    let h = Hosts::start();
    let t = remote_nightly(&h, "nightly-paused", "verify = \"paused\"");
    let out = run_nightly(&h, &t);
    assert!(out.status.success(), "{}", show(&out));
    corrupt_remote_dev_copy(&t);
    let out = run_nightly(&h, &t);
    assert!(out.status.success(), "{}", show(&out));
    assert_eq!(
        std::fs::read(t.join("dev-data/db/base.dat")).unwrap(),
        b"production rows"
    );
    let pass2 = nightly_step(&t, "pass-2");
    assert_eq!(pass2["result"], "ok", "{pass2}");
    assert_eq!(pass2["differences"]["kinds"]["content"], 1, "{pass2}");
    assert_eq!(pass2["repaired"]["paths"][0], "db/base.dat", "{pass2}");
    assert!(pass2["remaining"].is_null(), "{pass2}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("1 difference repaired: db/base.dat"),
        "{}",
        show(&out)
    );
}

/// `-c` over ssh compares contents as rsync's does: same-size files are hashed on both ends
/// (in parallel) and only those that differ are sent; the lines are rsync's. Before, every
/// same-size file went over the connection.
#[test]
fn remote_checksum_sends_only_the_files_whose_contents_differ() {
    let h = Hosts::start();
    let t = h.dir.path().join("checksum");
    for d in ["src", "a", "b"] {
        std::fs::create_dir_all(t.join(d)).unwrap();
    }
    let big = pseudo_random(4 << 20, 3);
    for d in ["src", "a", "b"] {
        std::fs::write(t.join(d).join("same-big"), &big).unwrap();
        std::fs::write(t.join(d).join("same"), b"same content").unwrap();
    }
    std::fs::write(t.join("src/trap"), b"new!").unwrap();
    for d in ["a", "b"] {
        std::fs::write(t.join(d).join("trap"), b"old!").unwrap();
    }
    // Equal times on every file (so only contents decide), old enough not to be racy.
    for d in ["src", "a", "b"] {
        set_mtime(
            &["same-big", "same", "trap"].map(|n| t.join(d).join(n)),
            1500000000,
        );
    }
    // A different mtime on a file with the same content: -c fixes only the time.
    set_mtime(&[t.join("src/same-big")], 1_600_000_000);
    let want = rsync_push_with(&h, &["-c"], &t.join("src"), &t.join("a"));
    let src = t.join("src").display().to_string();
    let out = opsync_remote(&h, &["-c", "-i", "--stats"], &src, &h.remote(&t.join("b")));
    assert!(out.status.success(), "{}", show(&out));
    let lines: Vec<u8> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .take_while(|l| !l.is_empty())
        .map(|l| format!("{l}\n"))
        .collect::<String>()
        .into_bytes();
    same_items(&want, &lines).unwrap();
    assert_eq!(std::fs::read(t.join("b/trap")).unwrap(), b"new!");
    let wire = wire_bytes(&out.stdout);
    assert!(
        wire < 1 << 20,
        "{wire} bytes on the wire: the 4 MiB file of equal content was sent\n{}",
        show(&out)
    );
}

/// `--verify` over ssh: a DST file with SRC's size and mtime but other content (what the quick
/// check misses) is found by the check with contents compared, repaired, and the run ends 0;
/// without `--verify` the same run leaves it.
#[test]
fn remote_verify_finds_and_repairs_what_the_quick_check_misses() {
    let h = Hosts::start();
    let t = h.dir.path().join("verify");
    quick_check_src(&t);
    let src = t.join("src").display().to_string();
    let dst = h.remote(&t.join("dst"));
    let out = opsync_remote(&h, &[], &src, &dst);
    assert!(out.status.success(), "{}", show(&out));
    // Same size, same mtime, other content.
    miss_quick_check(&t.join("dst/d/f"));
    let out = opsync_remote(&h, &[], &src, &dst);
    assert!(out.status.success(), "{}", show(&out));
    assert_eq!(
        std::fs::read(t.join("dst/d/f")).unwrap(),
        b"the wrong bytes"
    );
    let out = opsync_remote(&h, &["--verify"], &src, &dst);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("opsync: verify: differs: ")
            && err.contains("d/f")
            && err.contains("1 repaired"),
        "{}",
        show(&out)
    );
    assert_eq!(
        std::fs::read(t.join("dst/d/f")).unwrap(),
        b"the right bytes"
    );
    // Nothing left to find.
    let out = opsync_remote(&h, &["--verify"], &src, &dst);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("differs"),
        "{}",
        show(&out)
    );
}

/// `t/src` with `d/f` ("the right bytes", a fixed mtime) and `g`.
fn quick_check_src(t: &Path) {
    std::fs::create_dir_all(t.join("src/d")).unwrap();
    std::fs::write(t.join("src/d/f"), b"the right bytes").unwrap();
    std::fs::write(t.join("src/g"), b"fine").unwrap();
    set_mtime(&[t.join("src/d/f")], 1_500_000_000);
}

/// Gives the copy `f` of `src/d/f` other content with the same size and mtime: what the quick
/// check misses.
fn miss_quick_check(f: &Path) {
    std::fs::write(f, b"the wrong bytes").unwrap();
    set_mtime(&[f.to_path_buf()], 1_500_000_000);
}

/// Sets the mtime of each of `paths` to `secs` after the epoch.
fn set_mtime(paths: &[std::path::PathBuf], secs: u64) {
    let t = std::time::UNIX_EPOCH + Duration::from_secs(secs);
    for p in paths {
        std::fs::File::open(p)
            .and_then(|f| f.set_modified(t))
            .unwrap();
    }
}

/// `opsync verify` with one side on another host (push and pull direction): a dry run with
/// contents compared over ssh; a file with SRC's size and mtime but other content is a
/// `content` difference (exit 8), an extra file in DST an `extra` one, equal trees exit 0.
#[test]
fn remote_opsync_verify_compares_over_ssh_both_ways() {
    let h = Hosts::start();
    let t = h.dir.path().join("verify-cmd");
    std::fs::create_dir_all(t.join("src/d")).unwrap();
    std::fs::write(t.join("src/d/f"), b"the right bytes").unwrap();
    set_mtime(&[t.join("src/d/f")], 1_500_000_000);
    let src = t.join("src").display().to_string();
    let out = opsync_remote(&h, &[], &src, &h.remote(&t.join("dst")));
    assert!(out.status.success(), "{}", show(&out));
    let verify = |a: &str, b: &str, json: bool| {
        let mut c = h.in_prod(opsync_bin());
        c.args([
            "verify",
            "-e",
            &h.rsh(),
            "--remote-opsync",
            &opsync_bin().display().to_string(),
        ]);
        if json {
            c.arg("--json");
        }
        c.args([a, b]).output().unwrap()
    };
    let dst = t.join("dst").display().to_string();
    for (a, b) in [
        (src.clone(), h.remote(&t.join("dst"))),
        (h.remote(&t.join("src")), dst.clone()),
    ] {
        let out = verify(&a, &b, false);
        assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    }
    miss_quick_check(&t.join("dst/d/f"));
    std::fs::write(t.join("dst/extra"), b"x").unwrap();
    for (a, b) in [
        (src.clone(), h.remote(&t.join("dst"))),
        (h.remote(&t.join("src")), dst.clone()),
    ] {
        let out = verify(&a, &b, false);
        assert_eq!(out.status.code(), Some(8), "{}", show(&out));
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("d/f: content differs"), "{}", show(&out));
        assert!(text.contains("extra: not in SRC"), "{}", show(&out));
        let out = verify(&a, &b, true);
        assert_eq!(out.status.code(), Some(8), "{}", show(&out));
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains(r#""type":"difference","path":"d/f","kind":"content""#),
            "{}",
            show(&out)
        );
        // d/f, extra, and the mtime of DST's root that the new file changed.
        assert!(text.contains(r#""differences":3"#), "{}", show(&out));
    }
}

/// `sync_rails.rs`'s folder, made anew.
fn rails_folder(dir: &Path) {
    let _ = std::fs::remove_dir_all(dir);
    crate::sync_rails::folder(dir, None);
}

/// The `opsync: error:` lines of a run.
fn error_lines(out: &Output) -> Vec<String> {
    String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|l| l.starts_with("opsync: error:"))
        .map(str::to_string)
        .collect()
}

/// The rails of a hand-run sync without a configured pair apply to a push and a pull as to a
/// local run: deleting more than half of a non-empty DST is refused with the same error line
/// and exit 25 and nothing is deleted (the copies are still made); `--force` deletes,
/// `--max-delete N` deletes up to N (exit 25). Before, a remote run dropped the guard and
/// deleted all ten files.
#[test]
fn remote_half_of_dst_guard_and_max_delete_apply_as_locally() {
    let h = Hosts::start();
    let t = h.dir.path().join("rails");
    // The local run, for its message and exit code.
    rails_folder(&t);
    let local = h
        .in_prod(opsync_bin())
        .current_dir(&t)
        .args(["sync", "data", "dev-data"])
        .output()
        .unwrap();
    assert_eq!(local.status.code(), Some(25), "{}", show(&local));
    assert_eq!(count_old(&t), 10);
    let local_err = error_lines(&local);
    assert_eq!(local_err.len(), 1, "{}", show(&local));
    let data = t.join("data").display().to_string();
    let dev = t.join("dev-data").display().to_string();
    let remote_dev = h.remote(&t.join("dev-data"));
    let remote_data = h.remote(&t.join("data"));
    for (what, a, b, shown) in [
        ("push", &data, &remote_dev, &remote_dev),
        ("pull", &remote_data, &dev, &dev),
    ] {
        rails_folder(&t);
        let run = |args: &[&str]| {
            h.in_prod(opsync_bin())
                .current_dir(&t)
                .arg("sync")
                .args([
                    "-e",
                    &h.rsh(),
                    "--remote-opsync",
                    &opsync_bin().display().to_string(),
                ])
                .args(args)
                .args([a, b])
                .output()
                .unwrap()
        };
        let out = run(&[]);
        assert_eq!(out.status.code(), Some(25), "{what}: {}", show(&out));
        assert_eq!(count_old(&t), 10, "{what} deleted files: {}", show(&out));
        assert!(t.join("dev-data/cache/local.bin").exists(), "{what}");
        assert_eq!(std::fs::read(t.join("dev-data/keep.txt")).unwrap(), b"keep");
        let err = error_lines(&out);
        assert_eq!(
            err,
            [local_err[0].replace("dev-data needs", &format!("{shown} needs"))],
            "{what}: {}",
            show(&out)
        );
        let out = run(&["--max-delete", "3"]);
        assert_eq!(out.status.code(), Some(25), "{what}: {}", show(&out));
        assert_eq!(count_old(&t), 7, "{what}: {}", show(&out));
        let out = run(&["--force"]);
        assert_eq!(out.status.code(), Some(0), "{what}: {}", show(&out));
        assert_eq!(count_old(&t), 0, "{what}: {}", show(&out));
    }
}

/// Names in `dir` that start with `.`: the receiver's temporary files (`.NAME.XXXXXX`).
fn temp_files(dir: &Path) -> Vec<std::ffi::OsString> {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.file_name()))
        .filter(|n| n.as_encoded_bytes().starts_with(b"."))
        .collect()
}

/// ssh killed in the middle of a delta transfer: large changed files that exist in DST go as
/// deltas (8 MiB windows); the kill comes once one file is complete and the next one is being
/// rebuilt into its temporary file (waited for, not timed). Every DST file is then the complete
/// old or the complete new version (BLAKE3 of each compared), the remote end removes its
/// temporary file, the run exits 12 or 255, and a rerun finishes the mirror.
#[test]
fn remote_killed_ssh_during_deltas_leaves_complete_old_or_new_files_and_a_rerun_finishes() {
    let h = Hosts::start();
    let t = h.dir.path().join("kill-delta");
    let n = 5;
    let size = 16 << 20;
    std::fs::create_dir_all(t.join("src")).unwrap();
    std::fs::create_dir_all(t.join("dst")).unwrap();
    let (old_t, new_t) = (1_500_000_000, 1_600_000_000);
    let mut old_hash = Vec::new();
    let mut new_hash = Vec::new();
    for i in 0..n {
        let old = pseudo_random(size, i as u32 + 1);
        // One 4 KiB block in 32 changed (256 KiB in each 8 MiB window): every window goes as
        // a delta with half a second of literal data at the --bwlimit below, so the rest of a
        // file being rebuilt is still to be sent when ssh is killed.
        let mut new = old.clone();
        for b in (5..size / 4096).step_by(32) {
            new[b * 4096..b * 4096 + 4096].copy_from_slice(&pseudo_random(4096, b as u32 + 77));
        }
        let (s, d) = (t.join(format!("src/f{i}")), t.join(format!("dst/f{i}")));
        std::fs::write(&s, &new).unwrap();
        std::fs::write(&d, &old).unwrap();
        set_mtime(&[s], new_t);
        set_mtime(&[d], old_t);
        old_hash.push(blake3::hash(&old));
        new_hash.push(blake3::hash(&new));
    }
    let src = t.join("src").display().to_string();
    let child = h
        .in_prod(opsync_bin())
        .arg("sync")
        .args([
            "-e",
            &h.rsh(),
            "--remote-opsync",
            &opsync_bin().display().to_string(),
            "--bwlimit=512",
        ])
        .args([&src, &h.remote(&t.join("dst"))])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // One file renamed into place (SRC's mtime), another one's temporary file being written.
    let mtime = |i: usize| {
        std::fs::metadata(t.join(format!("dst/f{i}")))
            .ok()
            .and_then(|m| m.modified().ok())
    };
    let new_mtime = std::time::UNIX_EPOCH + Duration::from_secs(new_t);
    let mid_delta =
        || (0..n).any(|i| mtime(i) == Some(new_mtime)) && !temp_files(&t.join("dst")).is_empty();
    assert!(
        Hosts::wait_for(Duration::from_secs(120), mid_delta),
        "no file was complete while another one was being rebuilt"
    );
    let ssh = child_of(child.id()).expect("opsync's ssh child");
    Command::new("kill")
        .arg("-9")
        .arg(ssh.to_string())
        .status()
        .unwrap();
    println!(
        "temporary files at the kill: {:?}",
        temp_files(&t.join("dst"))
    );
    let out = child.wait_with_output().unwrap();
    let code = out.status.code();
    assert!(
        matches!(code, Some(12 | 255)),
        "exit {code:?} after ssh was killed: {}",
        show(&out)
    );
    // The remote end notices the broken connection, removes its temporary file and exits;
    // only then is DST looked at (it may still apply what reached it before the kill).
    assert!(
        Hosts::wait_for(Duration::from_secs(20), || !h.dev_runs("opsync")),
        "the remote opsync is still running 20 s after its ssh was killed"
    );
    let hash = |i: usize| blake3::hash(&std::fs::read(t.join(format!("dst/f{i}"))).unwrap());
    let mut done = 0;
    for i in 0..n {
        let got = hash(i);
        assert!(
            got == old_hash[i] || got == new_hash[i],
            "f{i} is neither the old nor the new version after the kill"
        );
        done += usize::from(got == new_hash[i]);
    }
    println!("{done} of {n} files new after the kill");
    assert!(
        done > 0 && done < n,
        "{done} of {n} files new: the kill did not come in the middle"
    );
    let temps = temp_files(&t.join("dst"));
    assert!(
        temps.is_empty(),
        "temporary files left after the broken run: {temps:?}"
    );
    let rerun = opsync_remote(&h, &["--stats"], &src, &h.remote(&t.join("dst")));
    assert!(rerun.status.success(), "{}", show(&rerun));
    for (i, want) in new_hash.iter().enumerate() {
        assert_eq!(hash(i), *want, "f{i} differs from SRC after the rerun");
        assert_eq!(mtime(i), Some(new_mtime), "f{i}'s mtime after the rerun");
    }
    assert!(temp_files(&t.join("dst")).is_empty());
    // The rerun sent the rest as deltas too, not whole files.
    assert!(
        wire_bytes(&rerun.stdout) < (n * size / 10) as u64,
        "{}",
        show(&rerun)
    );
}

/// `--recheck-from` over ssh (pass 2 of the nightly job with `verify = true`): the listed files
/// are compared by content on both ends whatever size and mtime say, in a push (the local
/// sender) and a pull (the list handed to the remote sender); one that differs is copied
/// (`>fc`), the others are left. Before, the list was not used by a remote run.
#[test]
fn remote_recheck_from_compares_the_listed_files_by_content_push_and_pull() {
    let h = Hosts::start();
    let t = h.dir.path().join("recheck");
    quick_check_src(&t);
    std::fs::write(t.join("list"), b"d/f\0g\0missing\0").unwrap();
    let src = t.join("src").display().to_string();
    let list = t.join("list").display().to_string();
    for (what, a, b) in [
        ("push", src.clone(), h.remote(&t.join("push"))),
        (
            "pull",
            h.remote(&t.join("src")),
            t.join("pull").display().to_string(),
        ),
    ] {
        let out = opsync_remote(&h, &[], &a, &b);
        assert!(out.status.success(), "{what}: {}", show(&out));
        let f = t.join(what).join("d/f");
        miss_quick_check(&f);
        let out = opsync_remote(&h, &["-i"], &a, &b);
        assert!(out.status.success(), "{what}: {}", show(&out));
        assert_eq!(std::fs::read(&f).unwrap(), b"the wrong bytes", "{what}");
        let out = opsync_remote(&h, &["-i", "--recheck-from", &list, "--from0"], &a, &b);
        assert!(out.status.success(), "{what}: {}", show(&out));
        assert_eq!(std::fs::read(&f).unwrap(), b"the right bytes", "{what}");
        let lines = String::from_utf8_lossy(&out.stdout).into_owned();
        let arrow = if what == "push" { '<' } else { '>' };
        assert_eq!(
            lines,
            format!("{arrow}fc........ d/f\n"),
            "{what}: {}",
            show(&out)
        );
    }
}

/// The trees' differences that `-aHAX` adds to a snapshot's: hard-link groups, then every
/// extended attribute and ACL (`want` is rsync's tree, `got` opsync's).
fn hax_differences(want: &Path, got: &Path) -> Vec<String> {
    use crate::sync_diff::options::{attr_dump, link_groups};
    let mut msgs = Vec::new();
    match (link_groups(want), link_groups(got)) {
        (Ok(a), Ok(b)) if a == b => {}
        (a, b) => msgs.push(format!(
            "hard-link groups differ:\nrsync:  {a:?}\nopsync: {b:?}"
        )),
    }
    match (attr_dump(want), attr_dump(got)) {
        (Ok(a), Ok(b)) if a == b => {}
        (Ok(a), Ok(b)) => {
            let only = |x: &[String], y: &[String], who: &str| {
                x.iter()
                    .filter(|l| !y.contains(l))
                    .map(|l| format!("  only {who}: {l}"))
                    .collect::<Vec<_>>()
            };
            let mut lines = only(&a, &b, "rsync");
            lines.extend(only(&b, &a, "opsync"));
            msgs.push(render("xattrs or ACLs differ", &lines, 25));
        }
        (a, b) => msgs.push(format!("cannot read xattrs: {:?} {:?}", a.err(), b.err())),
    }
    msgs
}

/// `rsync -aHAX --delete -e ssh` push against `opsync sync -aHAX` push and pull: the trees,
/// link groups, xattrs and ACLs in `a` (rsync), `b` (push) and `c` (pull) must be the same,
/// and a second push prints what a second rsync push prints.
fn hax_round(h: &Hosts, t: &Path, items: bool) -> Vec<String> {
    attrs_round(h, t, &["-H", "-A", "-X"], items)
}

/// [`hax_round`] with `flags` (given to rsync `-ai --delete` and to `opsync sync -a -i`).
fn attrs_round(h: &Hosts, t: &Path, flags: &[&str], items: bool) -> Vec<String> {
    let mut msgs = Vec::new();
    let want = rsync_push_with(h, flags, &t.join("src"), &t.join("a"));
    let src = t.join("src").display().to_string();
    // With -H the lines are compared as sets: opsync prints the lines of each link group (its
    // first member's, then the links') after the other lines, as a local run does; rsync
    // prints a first member's line in its place and the links' lines late.
    let hard = flags.contains(&"-H");
    let sorted = |yes: bool, b: &[u8]| -> Vec<u8> {
        if !yes {
            return b.to_vec();
        }
        let mut l: Vec<&str> = std::str::from_utf8(b).unwrap_or_default().lines().collect();
        l.sort_unstable();
        l.iter()
            .flat_map(|x| format!("{x}\n").into_bytes())
            .collect()
    };
    let flags = [&["-a"][..], flags, &["-i"]].concat();
    let flags = &flags[..];
    let push = opsync_remote(h, flags, &src, &h.remote(&t.join("b")));
    let pull = opsync_remote(
        h,
        flags,
        &h.remote(&t.join("src")),
        &t.join("c").display().to_string(),
    );
    for (what, out, want) in [
        ("push", &push, want.clone()),
        ("pull", &pull, as_pulled(&want)),
    ] {
        if !out.status.success() {
            msgs.push(format!("opsync {what} {flags:?} failed: {}", show(out)));
        } else if items && let Err(e) = same_items(&sorted(hard, &want), &sorted(hard, &out.stdout))
        {
            msgs.push(format!("opsync {what} {flags:?}: {e}"));
        }
    }
    let a = snapshot(&t.join("a")).unwrap();
    for (what, d) in [("push", "b"), ("pull", "c")] {
        let lines = a.diff("rsync", &snapshot(&t.join(d)).unwrap(), what);
        if !lines.is_empty() {
            msgs.push(render(
                &format!("opsync {what} {flags:?} differs from rsync -a {flags:?} --delete -e ssh"),
                &lines,
                25,
            ));
        }
        for m in hax_differences(&t.join("a"), &t.join(d)) {
            msgs.push(format!("opsync {what} {flags:?}: {m}"));
        }
    }
    // A second run: what rsync's second run prints (nothing, unless rsync's result is not
    // SRC's, as with a masked ACL).
    let want = rsync_push_with(h, &flags[1..flags.len() - 1], &t.join("src"), &t.join("a"));
    let again = opsync_remote(h, flags, &src, &h.remote(&t.join("b")));
    if !again.status.success() {
        msgs.push(format!("a second push {flags:?} failed: {}", show(&again)));
    } else if let Err(e) = same_items(&sorted(hard, &want), &sorted(hard, &again.stdout)) {
        msgs.push(format!("a second push {flags:?}: {e}"));
    }
    msgs
}

/// `-aHAX` over ssh on random hostile trees (with hard links; xattrs, `trusted.*` ones and
/// ACLs set on SRC, others on DST), push and pull, against `rsync -aHAX --delete -e ssh`.
#[test]
fn remote_hax_push_and_pull_give_rsyncs_result() {
    opsync_tests::require_program("setfattr", "attr");
    opsync_tests::require_program("setfacl", "acl");
    use crate::sync_diff::options::{decorate, link_groups};
    let h = Hosts::start();
    let mut failures = Vec::new();
    let mut linked = 0;
    let n = seeds().min(4);
    for seed in 200..200 + n {
        let tmp = tempfile::Builder::new()
            .prefix(&format!("opsync-remote-hax-{seed}-"))
            .tempdir()
            .unwrap();
        let t = tmp.path();
        let opts = GenOptions::default();
        let src_tree = Tree::random(seed, &opts);
        src_tree.build(&t.join("src")).unwrap();
        decorate(&t.join("src"), seed).unwrap();
        let stale = src_tree.stale(
            seed,
            &StaleOptions {
                change_percent: 30,
                trap_percent: 10,
                extraneous_percent: 25,
                outside: b"/nonexistent".to_vec(),
                outside_from_root: b"../outside".to_vec(),
            },
            &opts,
        );
        for d in ["a", "b", "c"] {
            stale.tree.build(&t.join(d)).unwrap();
            decorate(&t.join(d), seed ^ 0x55).unwrap();
        }
        if !link_groups(&t.join("src")).unwrap().is_empty() {
            linked += 1;
        }
        let msgs = hax_round(&h, t, false);
        if !msgs.is_empty() {
            failures.push(format!("seed {seed}:\n{}", msgs.join("\n")));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    assert!(
        linked * 2 >= n,
        "too few seeds had hard links: {linked} of {n}"
    );
}

fn sh(cmd: &str) {
    let out = Command::new("sh").args(["-ec", cmd]).output().unwrap();
    assert!(out.status.success(), "{cmd}: {}", show(&out));
}

/// `-aHAX` over ssh, push and pull, on the cases that matter, with rsync's trees, xattrs,
/// ACLs, link groups and itemize lines: a changed xattr on an unchanged file, a removed one, a
/// `trusted.*` one, an ACL on a file, a default ACL on an existing and on a new directory, a
/// link group whose first member exists in DST and whose other is new, and a link group of
/// DST broken in SRC (its members' contents differ now: the old link must not carry the new
/// content to the other name), and a changed large file with two links (sent as a delta, then
/// linked again).
#[test]
fn remote_hax_cases_give_rsyncs_result() {
    opsync_tests::require_program("setfattr", "attr");
    opsync_tests::require_program("setfacl", "acl");
    let h = Hosts::start();
    // Old mtimes everywhere: rsync leaves the mtime of an entry without data alone when it is
    // in the current second.
    let t = h.dir.path().join("hax");
    let (src, dst) = (t.join("src"), t.join("stale"));
    std::fs::create_dir_all(src.join("sub")).unwrap();
    std::fs::create_dir_all(dst.join("sub")).unwrap();
    let (s, d) = (src.display(), dst.display());
    sh(&format!(
        "cd {s}
        echo same > same; setfattr -n user.k -v new same
        echo gone > gone; setfattr -n user.keep -v 1 gone
        echo trust > trust; setfattr -n trusted.t -v 0x00ff trust
        echo acl > acl; setfacl -m u:1001:r-x,g:100:rw- acl
        mkdir dacl newd; setfacl -d -m u:1001:rwx dacl newd; echo in > newd/f
        setfattr -n user.dir -v 1 newd
        echo linked > l1; ln l1 sub/l2
        echo b1 > b1; echo other-content > sub/b2
        head -c 300000 /dev/zero | tr '\\0' y > big; printf X >> big; ln big sub/big2
        touch -d @1500000000 same gone trust acl newd/f l1 b1 sub/b2 newd dacl sub .
        touch -d @1600000000 big"
    ));
    sh(&format!(
        "cd {d}
        echo same > same; setfattr -n user.k -v old same
        echo gone > gone; setfattr -n user.keep -v 1 gone; setfattr -n user.old -v 1 gone
        echo trust > trust; setfattr -n trusted.t -v 0x0000 trust
        echo acl > acl
        mkdir dacl
        echo linked > l1
        echo b1 > b1; ln b1 sub/b2
        head -c 300000 /dev/zero | tr '\\0' y > big; printf Y >> big; ln big sub/big2
        touch -d @1500000000 same gone trust acl l1 b1 dacl sub . big"
    ));
    for x in ["a", "b", "c"] {
        sh(&format!("cp -a {d} {}", t.join(x).display()));
    }
    let msgs = hax_round(&h, &t, true);
    assert!(msgs.is_empty(), "{}", msgs.join("\n"));
    // What the cases are about, in opsync's trees (rsync's are the same, compared above).
    for x in ["b", "c"] {
        let r = t.join(x);
        assert_eq!(std::fs::read(r.join("b1")).unwrap(), b"b1\n", "{x}");
        assert_eq!(std::fs::read(r.join("sub/b2")).unwrap(), b"other-content\n");
        let ino =
            |p: &str| std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(r.join(p)).unwrap());
        assert_eq!(
            ino("l1"),
            ino("sub/l2"),
            "{x}: l1 and sub/l2 are not linked"
        );
        assert_ne!(
            ino("b1"),
            ino("sub/b2"),
            "{x}: b1 and sub/b2 are still linked"
        );
        assert_eq!(
            ino("big"),
            ino("sub/big2"),
            "{x}: big and sub/big2 are not linked"
        );
        let big2 = std::fs::read(r.join("sub/big2")).unwrap();
        assert_eq!((big2.len(), big2.last()), (300_001, Some(&b'X')), "{x}");
    }
}

/// rsync's ACL results that are not SRC's ACL (see the local `acl_masking_cases_match_rsync`),
/// over ssh, push and pull: when a directory's sticky bit goes on (a new directory too) or
/// setuid/setgid of a file goes off, rsync sets the ACL with the mode's group bits cleared, so
/// an ACL whose `group::` entry equals them ends `group::---`, unless `-X` changes the entry's
/// xattrs too. Trees, ACLs, xattrs and `-i` lines must be rsync's.
#[test]
fn remote_acl_masking_cases_give_rsyncs_result() {
    opsync_tests::require_program("setfattr", "attr");
    opsync_tests::require_program("setfacl", "acl");
    let h = Hosts::start();
    let cases = crate::sync_diff::options::ACL_MASKING_CASES;
    for (n, flags) in [&["-A"][..], &["-A", "-X"]].into_iter().enumerate() {
        let t = h.dir.path().join(format!("acl-masking-{n}"));
        let (src, stale) = (t.join("src"), t.join("stale"));
        std::fs::create_dir_all(&src).unwrap();
        std::fs::create_dir_all(&stale).unwrap();
        for &(name, smode, dmode, dir, xattr) in cases {
            let (s, d) = (
                src.join(name).display().to_string(),
                stale.join(name).display().to_string(),
            );
            let make = if dir { "mkdir" } else { "echo x >" };
            let mut cmd = format!(
                "{make} '{s}'; setfacl -m u:1001:r-x,g:100:rw- '{s}'; chmod {smode:o} '{s}'; setfacl -m g::rwx '{s}'"
            );
            if xattr {
                cmd += &format!("; setfattr -n user.k -v 1 '{s}'");
            }
            if let Some(m) = dmode {
                cmd += &format!("; {make} '{d}'; chmod {m:o} '{d}'");
            }
            sh(&cmd);
        }
        sh(&format!(
            "find '{}' '{}' -exec touch -h -d @1500000000 {{}} +",
            src.display(),
            stale.display()
        ));
        for x in ["a", "b", "c"] {
            sh(&format!(
                "cp -a '{}' '{}'",
                stale.display(),
                t.join(x).display()
            ));
        }
        let msgs = attrs_round(&h, &t, flags, true);
        assert!(msgs.is_empty(), "{flags:?}:\n{}", msgs.join("\n"));
    }
}
