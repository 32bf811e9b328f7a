//! Fault injection: each test injects a real fault into a run of the `opsync` binary (SIGKILL,
//! SIGINT/SIGTERM, a full filesystem, EACCES as an unprivileged user, a source mutated by
//! another thread, a cross-filesystem copy, a file changed while it is copied) and checks the
//! guarantees of the README's "Guarantees after failures" section.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use filetime::FileTime;
use opsync_tests::faults::{
    Looper, Mount, Proc, Snapshot, assert_same, assert_verified, is_temp_name, require_root, show,
    snapshot, sync, temp_files, try_snapshot, wait_until,
};
use opsync_tests::{opsync, opsync_bin, require_program};
use rustix::process::Signal;

const OLD_TIME: i64 = 1_000_000_000;

fn write(path: &Path, data: &[u8], mtime: Option<i64>) {
    if let Some(p) = path.parent() {
        fs::create_dir_all(p).unwrap();
    }
    fs::write(path, data).unwrap();
    if let Some(t) = mtime {
        filetime::set_file_mtime(path, FileTime::from_unix_time(t, 0)).unwrap();
    }
}

fn body(tag: &str, path: &str, len: usize) -> Vec<u8> {
    let unit = format!("{tag} {path}\n");
    let mut v = unit.repeat(len / unit.len() + 1).into_bytes();
    v.truncate(len);
    v
}

/// A new tree in `src` and an old one in `dst`: unchanged, changed, created and deleted files
/// in 15 directories, plus a few large files. Returns the snapshots of both.
fn old_and_new(src: &Path, dst: &Path, dirs: usize, per_dir: usize, big: usize) -> Trees {
    for d in 0..dirs {
        for f in 0..per_dir {
            let rel = format!("d{d:02}/f{f:03}");
            let len = 64 + (f % 40) * 16;
            let new = body("new", &rel, len);
            match f % 3 {
                0 => {
                    write(&src.join(&rel), &new, Some(OLD_TIME + f as i64));
                    write(&dst.join(&rel), &new, Some(OLD_TIME + f as i64));
                }
                1 => {
                    write(&src.join(&rel), &new, None);
                    write(&dst.join(&rel), &body("old", &rel, len), Some(OLD_TIME));
                }
                _ => write(&src.join(&rel), &new, None),
            }
            if f % 10 == 0 {
                let gone = format!("d{d:02}/gone{f:03}");
                write(&dst.join(&gone), &body("old", &gone, len), Some(OLD_TIME));
            }
        }
    }
    for b in 0..big {
        let rel = format!("big/big{b}");
        write(&src.join(&rel), &body("new", &rel, 8 << 20), None);
        write(&dst.join(&rel), &body("old", &rel, 8 << 20), Some(OLD_TIME));
    }
    Trees {
        old: snapshot(dst),
        new: snapshot(src),
    }
}

struct Trees {
    old: Snapshot,
    new: Snapshot,
}

impl Trees {
    /// Every regular file under a real name holds the complete old or the complete new version;
    /// returns the temporary files found.
    fn check_complete(&self, dst: &Path, when: &str) -> Vec<String> {
        let now = snapshot(dst);
        for (p, n) in &now {
            if n.kind != 'f' || is_temp_name(p) {
                continue;
            }
            let matches = |s: &Snapshot| {
                s.get(p)
                    .is_some_and(|o| o.hash == n.hash && o.size == n.size)
            };
            assert!(
                matches(&self.old) || matches(&self.new),
                "{when}: {} holds neither the old nor the new version ({} bytes)",
                show(p),
                n.size
            );
        }
        temp_files(&now)
    }
}

/// The next run completes the mirror: exit 0, no temporary file left, DST equal to SRC.
fn assert_next_run_completes(src: &Path, dst: &Path) {
    let (code, out, err) = sync(src, dst, &[]);
    assert_eq!(code, 0, "the run after the fault failed:\n{out}\n{err}");
    let now = snapshot(dst);
    assert!(
        temp_files(&now).is_empty(),
        "temporary files survived: {:?}",
        temp_files(&now)
    );
    assert_same("DST after the completing run vs SRC", &snapshot(src), &now);
    assert_verified(src, dst);
}

#[test]
fn sigkill_at_several_points_leaves_only_complete_files() {
    let t = tempfile::tempdir().unwrap();
    // On a tmpfs: the test is about ordering, not the disk, and the disk is shared.
    let m = Mount::tmpfs(&t.path().join("fs"), "1g");
    // (description, stdout lines to wait for; 0: wait for a temporary file of a large file)
    let points = [
        ("after the first items", 1),
        ("after 1000 items", 1000),
        ("mid-copy of a large file", 0),
    ];
    let mut temps_seen = 0;
    let mut landed = 0;
    for (i, (what, lines)) in points.iter().enumerate() {
        let (src, dst) = (
            m.path.join(format!("src{i}")),
            m.path.join(format!("dst{i}")),
        );
        let trees = old_and_new(&src, &dst, 15, 120, 6);
        let mut cmd = opsync();
        cmd.args(["sync", "-i", "--threads=2"]).arg(&src).arg(&dst);
        let mut p = Proc::spawn(cmd);
        if *lines > 0 {
            assert!(
                p.wait_lines(*lines),
                "opsync ended before {lines} items: tree too small"
            );
        } else {
            let big = dst.join("big");
            wait_until("a temporary file of a large file", || {
                fs::read_dir(&big).is_ok_and(|rd| {
                    rd.flatten()
                        .any(|e| e.file_name().as_encoded_bytes().starts_with(b".big"))
                })
            });
        }
        p.signal(Signal::KILL);
        let (status, _, err) = p.finish();
        // Output is block-buffered: the last items can arrive when the run is already over.
        // Then the kill came too late, which only weakens this point.
        match status.code() {
            None => landed += 1,
            Some(code) => assert_eq!(code, 0, "{what}: run ended before the kill:\n{err}"),
        }
        let temps = trees.check_complete(&dst, what);
        temps_seen += temps.len();
        assert_next_run_completes(&src, &dst);
    }
    assert!(
        landed >= 2,
        "only {landed} kills landed during the run: tree too small"
    );
    assert!(
        temps_seen > 0,
        "no kill landed while a temporary file existed"
    );
}

/// SIGINT and SIGTERM while a large file is copied: exit 20, the temporary file removed, the
/// summary printed, and the next run completes the mirror.
#[test]
fn sigint_and_sigterm_remove_temp_files_and_exit_20() {
    let t = tempfile::tempdir().unwrap();
    // SRC on a tmpfs: the copy to the disk uses the read/write path, which checks the cancel
    // flag every 256 KiB, and the large file takes long enough to be caught mid-copy.
    let m = Mount::tmpfs(&t.path().join("srcfs"), "600m");
    let src = m.path.join("src");
    for f in 0..300 {
        write(
            &src.join(format!("small/f{f:03}")),
            &body("new", "f", 200),
            None,
        );
    }
    write(&src.join("huge"), &body("huge", "huge", 160 << 20), None);
    // DST on another tmpfs: still across filesystems, without loading the shared disk.
    let dm = Mount::tmpfs(&t.path().join("dstfs"), "700m");
    for (i, sig) in [Signal::INT, Signal::TERM].into_iter().enumerate() {
        let dst = dm.path.join(format!("dst{i}"));
        let mut cmd = opsync();
        cmd.args(["sync", "--json", "--threads=2"])
            .arg(&src)
            .arg(&dst);
        let p = Proc::spawn(cmd);
        wait_until("the temporary file of the large file", || {
            fs::read_dir(&dst).is_ok_and(|rd| {
                rd.flatten().any(|e| {
                    e.file_name().as_encoded_bytes().starts_with(b".huge.")
                        && e.metadata().is_ok_and(|m| m.len() > 0)
                })
            })
        });
        p.signal(sig);
        let (status, out, err) = p.finish();
        assert_eq!(status.code(), Some(20), "{sig:?}: exit code\n{err}");
        assert!(
            err.contains("stopped by signal"),
            "{sig:?}: no summary on stderr:\n{err}"
        );
        let summary = out.last().expect("a JSON summary line");
        assert!(
            summary.contains("\"type\":\"summary\"") && summary.contains("\"exit_code\":20"),
            "{sig:?}: summary line: {summary}"
        );
        let now = snapshot(&dst);
        assert!(
            temp_files(&now).is_empty(),
            "{sig:?}: temporary files left: {:?}",
            temp_files(&now)
        );
        assert!(
            !dst.join("huge").exists(),
            "{sig:?}: the interrupted file appeared under its name"
        );
        assert_next_run_completes(&src, &dst);
    }
}

/// DST on a 1 MiB tmpfs; one new file does not fit.
#[test]
fn dst_full_fails_naming_the_file_and_keeps_old_versions() {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    let m = Mount::tmpfs(&t.path().join("dstfs"), "1m");
    let dst = m.path.join("dst");
    for f in 0..20 {
        let rel = format!("f{f:02}");
        write(&src.join(&rel), &body("new", &rel, 8 << 10), None);
        write(&dst.join(&rel), &body("old", &rel, 8 << 10), Some(OLD_TIME));
    }
    write(&src.join("big.bin"), &body("new", "big.bin", 3 << 20), None);
    write(
        &dst.join("big.bin"),
        &body("old", "big.bin", 100 << 10),
        Some(OLD_TIME),
    );
    let trees = Trees {
        old: snapshot(&dst),
        new: snapshot(&src),
    };
    let (code, _, err) = sync(&src, &dst, &[]);
    assert_eq!(code, 23, "exit code\n{err}");
    assert!(
        err.contains("big.bin") && err.contains("No space left"),
        "the error names the file and the cause:\n{err}"
    );
    let temps = trees.check_complete(&dst, "after ENOSPC");
    assert!(temps.is_empty(), "temporary files left: {temps:?}");
    let now = snapshot(&dst);
    assert_eq!(
        now[&b"big.bin".to_vec()],
        trees.old[&b"big.bin".to_vec()],
        "old big.bin intact"
    );
    // Files copied while the large one filled the disk may have failed too: each is either
    // the new version or named in an error (and holds the old version, checked above).
    for f in 0..20 {
        let p = format!("f{f:02}").into_bytes();
        let copied = now[&p].hash == trees.new[&p].hash;
        assert!(
            copied || err.contains(&show(&p)),
            "{} neither copied nor reported",
            show(&p)
        );
    }
}

/// Runs `opsync` as `nobody` (permission bits do not stop root).
fn as_nobody(args: &[&std::ffi::OsStr]) -> (i32, String) {
    let setpriv = require_program("setpriv", "util-linux");
    let out = Command::new(setpriv)
        .args(["--reuid=nobody", "--regid=nogroup", "--clear-groups", "--"])
        .arg(opsync_bin())
        .args(args)
        .output()
        .expect("run setpriv");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn chown_tree(root: &Path, uid: u32, gid: u32) {
    std::os::unix::fs::lchown(root, Some(uid), Some(gid)).unwrap();
    if fs::symlink_metadata(root).unwrap().is_dir() {
        for e in fs::read_dir(root).unwrap() {
            chown_tree(&e.unwrap().path(), uid, gid);
        }
    }
}

const NOBODY: u32 = 65534;

/// Regression: a source file the user may not read was reported, but the run still deleted
/// extraneous entries (only directory read errors disabled deletions).
#[test]
fn unreadable_source_file_disables_deletions() {
    let (_t, src, dst) = permission_fixture();
    let (code, err) = as_nobody(&["sync".as_ref(), src.as_os_str(), dst.as_os_str()]);
    assert_eq!(code, 23, "exit code\n{err}");
    assert!(
        dst.join("extra").exists(),
        "no deletion in a run with an unreadable file:\n{err}"
    );
}

/// Regression: a source directory that could not be opened was reported twice (by the scan and
/// again when the copy tried to enter it).
#[test]
fn unreadable_source_dir_reported_once() {
    let (_t, src, dst) = permission_fixture();
    fs::set_permissions(src.join("secret"), fs::Permissions::from_mode(0o644)).unwrap();
    fs::set_permissions(src.join("locked"), fs::Permissions::from_mode(0o000)).unwrap();
    let (code, err) = as_nobody(&["sync".as_ref(), src.as_os_str(), dst.as_os_str()]);
    fs::set_permissions(src.join("locked"), fs::Permissions::from_mode(0o755)).unwrap();
    assert_eq!(code, 23, "exit code\n{err}");
    assert_eq!(err.matches("locked").count(), 1, "reported once:\n{err}");
}

/// SRC and DST owned by nobody; `secret` unreadable; DST has extraneous entries.
fn permission_fixture() -> (tempfile::TempDir, std::path::PathBuf, std::path::PathBuf) {
    require_root("switching to the user nobody");
    let t = tempfile::tempdir().unwrap();
    fs::set_permissions(t.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let (src, dst) = (t.path().join("src"), t.path().join("dst"));
    write(&src.join("a"), b"a new", None);
    write(&src.join("sub/b"), b"b new", None);
    write(&src.join("secret"), b"secret", None);
    write(&src.join("locked/inside"), b"inside", None);
    write(&dst.join("a"), b"a old", Some(OLD_TIME));
    write(&dst.join("extra"), b"extra", Some(OLD_TIME));
    write(&dst.join("sub/extra2"), b"extra2", Some(OLD_TIME));
    chown_tree(&src, NOBODY, NOBODY);
    chown_tree(&dst, NOBODY, NOBODY);
    fs::set_permissions(src.join("secret"), fs::Permissions::from_mode(0o000)).unwrap();
    (t, src, dst)
}

#[test]
fn permission_denied_on_source_is_reported_and_disables_deletions() {
    let (_t, src, dst) = permission_fixture();
    // An unreadable file alone.
    let (code, err) = as_nobody(&["sync".as_ref(), src.as_os_str(), dst.as_os_str()]);
    assert_eq!(code, 23, "exit code\n{err}");
    assert!(
        err.contains("secret") && err.contains("denied"),
        "the error names the file:\n{err}"
    );
    assert_eq!(fs::read(dst.join("a")).unwrap(), b"a new");
    assert_eq!(fs::read(dst.join("sub/b")).unwrap(), b"b new");
    assert!(
        dst.join("extra").exists() && dst.join("sub/extra2").exists(),
        "no deletion in a run with a source error"
    );
    assert!(!dst.join("secret").exists());

    // An unreadable directory.
    fs::set_permissions(src.join("secret"), fs::Permissions::from_mode(0o644)).unwrap();
    fs::set_permissions(src.join("locked"), fs::Permissions::from_mode(0o000)).unwrap();
    write(&src.join("c"), b"c new", None);
    std::os::unix::fs::lchown(src.join("c"), Some(NOBODY), Some(NOBODY)).unwrap();
    let (code, err) = as_nobody(&["sync".as_ref(), src.as_os_str(), dst.as_os_str()]);
    fs::set_permissions(src.join("locked"), fs::Permissions::from_mode(0o755)).unwrap();
    assert_eq!(code, 23, "exit code\n{err}");
    assert!(
        err.contains("locked") && err.contains("denied"),
        "the error names the directory:\n{err}"
    );
    assert_eq!(fs::read(dst.join("c")).unwrap(), b"c new");
    assert_eq!(fs::read(dst.join("secret")).unwrap(), b"secret");
    assert!(
        dst.join("extra").exists() && dst.join("sub/extra2").exists(),
        "no deletion in a run with a source error"
    );

    // Readable again: the next run completes and deletes.
    let (code, err) = as_nobody(&["sync".as_ref(), src.as_os_str(), dst.as_os_str()]);
    assert_eq!(code, 0, "{err}");
    assert!(!dst.join("extra").exists());
    assert_verified(&src, &dst);
}

/// Record `i` of version `v` of file `name`: 64 bytes, so a file is a whole number of records
/// and any mix of versions, or a torn record, is detectable.
fn record(name: &str, v: u32, i: usize) -> String {
    format!("{name:<24} v{v:06} r{i:08}{:>21}\n", "")
}

fn version_body(name: &str, v: u32, n: usize) -> Vec<u8> {
    (0..n)
        .flat_map(|i| record(name, v, i).into_bytes())
        .collect()
}

/// True when `data` is records 0..n of one version of `name`.
fn is_some_version(name: &str, data: &[u8]) -> bool {
    if data.is_empty() {
        return true;
    }
    if !data.len().is_multiple_of(64) {
        return false;
    }
    let first = String::from_utf8_lossy(&data[..64]).into_owned();
    let Some(v) = first.get(26..32).and_then(|s| s.parse::<u32>().ok()) else {
        return false;
    };
    data == version_body(name, v, data.len() / 64).as_slice()
}

fn check_versions(dst: &Path, when: &str) {
    let snap = try_snapshot(dst).unwrap();
    for (p, n) in &snap {
        if n.kind != 'f' {
            continue;
        }
        assert!(!is_temp_name(p), "{when}: temporary file left: {}", show(p));
        let name = show(p);
        let base = name.rsplit('/').next().unwrap_or(&name).to_owned();
        let data = fs::read(opsync_tests::faults::bpath(dst, p)).unwrap();
        assert!(
            is_some_version(&base, &data),
            "{when}: {name} is not a complete version of its source"
        );
    }
}

/// Files vanish, appear, grow, shrink and are replaced while opsync runs.
#[test]
fn vanishing_and_changing_sources_finish_with_24_and_complete_copies() {
    let t = tempfile::tempdir().unwrap();
    let (src, dst) = (t.path().join("src"), t.path().join("dst"));
    let park = t.path().join("park");
    fs::create_dir_all(&park).unwrap();
    let names: Vec<String> = (0..1500)
        .map(|i| format!("d{:02}/file{i:04}", i % 10))
        .collect();
    for n in &names {
        let base = n.rsplit('/').next().unwrap();
        write(&src.join(n), &version_body(base, 0, 4), None);
    }

    // Deterministic vanishing: stop opsync once it printed its first items, remove the files
    // it has not reported yet, let it go on.
    let mut cmd = opsync();
    cmd.args(["sync", "-i", "--threads=1"]).arg(&src).arg(&dst);
    let mut p = Proc::spawn(cmd);
    assert!(p.wait_lines(1), "opsync ended before printing");
    p.signal(Signal::STOP);
    let mut removed = Vec::new();
    for n in names.iter().rev().take(300) {
        fs::remove_file(src.join(n)).unwrap();
        removed.push(n.clone());
    }
    p.signal(Signal::CONT);
    let (status, _, err) = p.finish();
    assert_eq!(
        status.code(),
        Some(24),
        "exit code after files vanished\n{err}"
    );
    assert!(
        err.contains("file has vanished"),
        "vanished files are named:\n{err}"
    );
    check_versions(&dst, "after vanishing");
    for n in &removed {
        let base = n.rsplit('/').next().unwrap();
        write(&src.join(n), &version_body(base, 0, 4), None);
    }

    // Random mutation by another thread during several runs.
    let (msrc, mpark) = (src.clone(), park.clone());
    let names2 = names.clone();
    let mutator = Looper::start(move |i| {
        let n = &names2[fastrand::usize(..names2.len())];
        let base = n.rsplit('/').next().unwrap().to_owned();
        let path = msrc.join(n);
        let v = i as u32 + 1;
        match i % 5 {
            0 => {
                let _ = fs::remove_file(&path);
            }
            1 | 4 => {
                // appear or be replaced: a new version renamed into place
                let tmp = mpark.join(&base);
                fs::write(&tmp, version_body(&base, v, 1 + fastrand::usize(..64))).unwrap();
                fs::rename(&tmp, &path).unwrap();
            }
            2 => {
                // grow: append the next records of the version the file holds
                if let Ok(data) = fs::read(&path)
                    && data.len() >= 64
                {
                    let first = String::from_utf8_lossy(&data[..64]).into_owned();
                    let fv = first[26..32].parse::<u32>().unwrap_or(0);
                    let have = data.len() / 64;
                    let more: Vec<u8> = (have..have + 1 + fastrand::usize(..32))
                        .flat_map(|k| record(&base, fv, k).into_bytes())
                        .collect();
                    if let Ok(mut f) = fs::OpenOptions::new().append(true).open(&path) {
                        use std::io::Write;
                        let _ = f.write_all(&more);
                    }
                }
            }
            _ => {
                // shrink to a record boundary
                if let Ok(f) = fs::OpenOptions::new().write(true).open(&path) {
                    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
                    let _ = f.set_len(len / 64 / 2 * 64);
                }
            }
        }
    });
    let mut codes = Vec::new();
    for run in 0..4 {
        let (code, out, err) = sync(&src, &dst, &["--threads=2"]);
        assert!(
            code == 0 || code == 24,
            "run {run}: exit {code}\n{out}\n{err}"
        );
        codes.push(code);
        check_versions(&dst, &format!("run {run}"));
    }
    let mutations = mutator.stop();
    assert!(
        mutations > 100,
        "the mutator hardly ran ({mutations} mutations)"
    );
    let (code, out, err) = sync(&src, &dst, &[]);
    assert_eq!(code, 0, "the quiet run after the mutations:\n{out}\n{err}");
    assert_same(
        "DST vs SRC after the quiet run",
        &snapshot(&src),
        &snapshot(&dst),
    );
    assert_verified(&src, &dst);
}

/// SRC on a tmpfs and DST on the disk: `copy_file_range` refuses (EXDEV), the run remembers
/// it (at most one refusal per worker thread, not one per file) and copies in the kernel with
/// `sendfile`, one call per file; checked with strace.
#[test]
fn cross_filesystem_copy_falls_back_to_sendfile_once_refused() {
    let strace = require_program("strace", "strace");
    let t = tempfile::tempdir().unwrap();
    let m = Mount::tmpfs(&t.path().join("srcfs"), "64m");
    let src = m.path.join("src");
    for f in 0..20 {
        write(
            &src.join(format!("f{f:02}")),
            &body("x", "f", 100_000 + f * 1000),
            None,
        );
    }
    let dst = t.path().join("dst");
    let log = t.path().join("strace.log");
    let out = Command::new(strace)
        .args(["-f", "-e", "trace=copy_file_range,sendfile,pwrite64", "-o"])
        .arg(&log)
        .arg(opsync_bin())
        .args(["sync", "--threads=2"])
        .arg(&src)
        .arg(&dst)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let log = fs::read_to_string(&log).unwrap();
    let count = |call: &str, ok: bool| {
        log.lines()
            .filter(|l| l.contains(call) && l.contains("= -1") != ok)
            .count()
    };
    // With two threads strace splits a call into `copy_file_range(... <unfinished ...>` and
    // `<... copy_file_range resumed> ... EXDEV`: the result is on the second line.
    let refused = log
        .lines()
        .filter(|l| l.contains("copy_file_range") && l.contains("EXDEV"))
        .count();
    let (sent, written) = (count("sendfile(", true), count("pwrite64(", true));
    assert!(
        (1..=2).contains(&refused) && sent == 20 && written == 0,
        "expected copy_file_range refused (EXDEV) once per thread at most, then one sendfile per \
         file and no pwrite64; strace saw {refused} EXDEV, {sent} sendfile, {written} pwrite64:\n{}",
        log.lines().take(30).collect::<Vec<_>>().join("\n")
    );
    assert_same("DST vs SRC", &snapshot(&src), &snapshot(&dst));
    assert_verified(&src, &dst);
}

/// Size of the temporary file of `name` in `dir`, if one exists.
fn temp_size(dir: &Path, name: &str) -> Option<u64> {
    let prefix = format!(".{name}.");
    fs::read_dir(dir).ok()?.flatten().find_map(|e| {
        let n = e.file_name();
        (n.as_encoded_bytes().starts_with(prefix.as_bytes()) && is_temp_name(n.as_encoded_bytes()))
            .then(|| e.metadata().map(|m| m.len()).unwrap_or(0))
    })
}

fn append(path: &Path, data: &[u8]) {
    use std::io::Write;
    fs::OpenOptions::new()
        .append(true)
        .open(path)
        .unwrap()
        .write_all(data)
        .unwrap();
}

/// A file changed while it is copied is copied again; changed again, it is kept as last read
/// with a warning naming it; the next run completes it.
#[test]
fn source_modified_during_copy_is_retried_then_reported() {
    let t = tempfile::tempdir().unwrap();
    let m = Mount::tmpfs(&t.path().join("srcfs"), "600m");
    let src = m.path.join("src");
    let size = 128u64 << 20;
    write(&src.join("big"), &body("v0", "big", size as usize), None);
    let dm = Mount::tmpfs(&t.path().join("dstfs"), "700m");
    for round in 0..2 {
        let dst = dm.path.join(format!("dst{round}"));
        fs::create_dir_all(&dst).unwrap();
        let mut cmd = opsync();
        cmd.args(["sync"]).arg(&src).arg(&dst);
        let mut p = Proc::spawn(cmd);
        let grow = |n: usize| {
            append(&src.join("big"), &body("more", "big", n));
        };
        // First change: while the first attempt is writing.
        let mut seen = 0;
        wait_until("the first attempt mid-copy", || {
            seen = temp_size(&dst, "big").unwrap_or(0);
            seen > 0 || p.exited()
        });
        p.signal(Signal::STOP);
        let now = temp_size(&dst, "big").unwrap_or(0);
        let cur = fs::metadata(src.join("big")).unwrap().len();
        assert!(
            now > 0 && now < cur,
            "stopped mid-copy ({now} of {cur} bytes)"
        );
        grow(4096);
        p.signal(Signal::CONT);
        if round == 1 {
            // Second change: once the retry started over (the temporary file was truncated).
            let mut last = now;
            wait_until("the retry", || {
                match temp_size(&dst, "big") {
                    Some(s) if s > 0 && s < last => return true,
                    Some(s) => last = last.max(s),
                    None => {}
                }
                p.exited()
            });
            p.signal(Signal::STOP);
            let s = temp_size(&dst, "big").unwrap_or(0);
            let cur = fs::metadata(src.join("big")).unwrap().len();
            assert!(s > 0 && s < cur, "stopped mid-retry ({s} of {cur} bytes)");
            grow(8192);
            p.signal(Signal::CONT);
        }
        let (status, _, err) = p.finish();
        let copied = fs::read(dst.join("big")).unwrap();
        if round == 0 {
            assert_eq!(
                status.code(),
                Some(0),
                "one change: retried silently\n{err}"
            );
            assert!(!err.contains("kept changing"), "{err}");
            assert!(
                copied == fs::read(src.join("big")).unwrap(),
                "the retry copied the changed file"
            );
        } else {
            assert!(
                err.contains("kept changing") && err.contains("big"),
                "second change reported:\n{err}"
            );
            let now = fs::read(src.join("big")).unwrap();
            assert!(
                now.starts_with(&copied) && copied.len() as u64 > size,
                "kept the last version read"
            );
            assert_next_run_completes(&src, &dst);
        }
    }
}

/// Regression: a source file replaced by a FIFO between the scan and its copy made opsync block
/// forever in `open` (waiting for a writer), so the nightly run never ended.
#[test]
fn source_file_replaced_by_fifo_does_not_hang() {
    let t = tempfile::tempdir().unwrap();
    let (src, dst) = (t.path().join("src"), t.path().join("dst"));
    let names: Vec<String> = (0..1500).map(|i| format!("d{}/f{i:04}", i % 5)).collect();
    for n in &names {
        write(&src.join(n), n.as_bytes(), None);
    }
    let mut cmd = opsync();
    cmd.args(["sync", "-i", "--threads=1"]).arg(&src).arg(&dst);
    let mut p = Proc::spawn(cmd);
    assert!(p.wait_lines(1), "opsync ended before printing");
    p.signal(Signal::STOP);
    for n in names.iter().rev().take(200) {
        let path = src.join(n);
        fs::remove_file(&path).unwrap();
        let st = Command::new("mkfifo").arg(&path).status().unwrap();
        assert!(st.success(), "mkfifo");
    }
    p.signal(Signal::CONT);
    let (status, _, err) = p.finish();
    assert_eq!(
        status.code(),
        Some(24),
        "a file turned FIFO counts as vanished\n{err}"
    );
    let (code, _, err) = sync(&src, &dst, &[]);
    assert_eq!(code, 0, "{err}");
    assert_verified(&src, &dst);
}

/// A chain of 1,200 nested directories mirrors with only 128 file descriptors allowed: the
/// engine does not hold two handles per level (rsync 3.5 fails on the same tree with EMFILE
/// after about 60 levels). A file at the bottom and one in the middle change on the second run.
#[test]
fn a_very_deep_tree_mirrors_within_a_small_descriptor_limit() {
    let t = tempfile::tempdir().unwrap();
    let (src, dst) = (t.path().join("src"), t.path().join("dst"));
    let mut dir = src.clone();
    let mut middle = None;
    for level in 0..1200 {
        dir.push("d");
        if level == 600 {
            middle = Some(dir.clone());
        }
    }
    fs::create_dir_all(&dir).unwrap();
    let (bottom, middle) = (dir.join("f"), middle.unwrap().join("m"));
    write(&bottom, b"bottom", Some(OLD_TIME));
    write(&middle, b"middle", Some(OLD_TIME));
    let limited = |extra: &str| {
        let script = format!("ulimit -n 128 && exec \"$0\" {extra} \"$1\"/ \"$2\"/");
        let out = Command::new("sh")
            .args(["-c", &script])
            .arg(opsync_bin())
            .arg(&src)
            .arg(&dst)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(
            out.status.code(),
            Some(0),
            "opsync under ulimit -n 128: {err}"
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    limited("sync");
    assert_same("first run", &snapshot(&src), &snapshot(&dst));
    write(&bottom, b"new bottom", Some(OLD_TIME + 1));
    write(&middle, b"new middle", Some(OLD_TIME + 1));
    let lines = limited("sync -i");
    assert_eq!(
        lines.lines().filter(|l| l.starts_with(">f")).count(),
        2,
        "{lines}"
    );
    assert_same("second run", &snapshot(&src), &snapshot(&dst));
    // `opsync verify` reads both whole trees under the same limit.
    limited("verify");
}
