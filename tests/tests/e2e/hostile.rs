//! Hostile trees: symlinks in DST pointing outside it (in place of a file, on the path of what
//! must be written, as DST's parent, swapped in during the run), hostile names, and setuid files
//! owned by another user. Nothing outside DST may change: a sentinel directory is snapshotted
//! before and after each run.

use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};

use filetime::FileTime;
use opsync_tests::faults::{
    Looper, Proc, assert_same, assert_verified, bpath, is_temp_name, require_root, snapshot, sync,
    without_dir_times,
};
use opsync_tests::{opsync, require_program};

const OLD_TIME: i64 = 1_000_000_000;

fn write(path: &Path, data: &[u8]) {
    if let Some(p) = path.parent() {
        fs::create_dir_all(p).unwrap();
    }
    fs::write(path, data).unwrap();
}

/// A sentinel directory outside DST whose names overlap DST's, so a write through a symlink
/// would create, change or delete something in it.
fn sentinel(dir: &Path) -> PathBuf {
    for name in [
        "file", "f", "s", "a", "b", "dir/a", "dir/b", "dir/c", "dir/x/y",
    ] {
        write(&dir.join(name), format!("sentinel {name}").as_bytes());
    }
    for f in 0..50 {
        write(&dir.join(format!("sub/f{f:02}")), b"sentinel");
    }
    dir.to_owned()
}

#[test]
fn dst_symlinks_pointing_outside_are_replaced_never_followed() {
    let t = tempfile::tempdir().unwrap();
    let s = sentinel(&t.path().join("sentinel"));
    let before = snapshot(&s);
    let (src, dst) = (t.path().join("src"), t.path().join("dst"));
    write(
        &src.join("f"),
        b"a file where DST has a symlink to a file outside",
    );
    write(&src.join("s"), b"same");
    fs::set_permissions(src.join("s"), fs::Permissions::from_mode(0o600)).unwrap();
    for n in ["a", "b", "c"] {
        write(
            &src.join("d").join(n),
            b"inside a directory DST has as a symlink",
        );
    }
    write(
        &src.join("d2/e/g"),
        b"below a symlinked directory inside a real one",
    );
    write(&src.join("deep/x/y/z"), b"three levels below a symlink");
    symlink("elsewhere", src.join("sym")).unwrap();
    fs::create_dir_all(&dst).unwrap();
    symlink(s.join("file"), dst.join("f")).unwrap();
    symlink(s.join("file"), dst.join("s")).unwrap();
    symlink(s.join("dir"), dst.join("d")).unwrap();
    symlink(&s, dst.join("x")).unwrap();
    fs::create_dir_all(dst.join("d2")).unwrap();
    symlink(s.join("dir"), dst.join("d2/e")).unwrap();
    symlink(s.join("dir"), dst.join("deep")).unwrap();
    symlink(s.join("file"), dst.join("sym")).unwrap();
    symlink(s.join("dir"), dst.join("extra-link")).unwrap();

    // Most of DST is replaced: rsync's result needs opsync's half guard off.
    let (code, out, err) = sync(&src, &dst, &["--force", "-i"]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert_same("sentinel after the run", &before, &snapshot(&s));
    assert_same("DST vs SRC", &snapshot(&src), &snapshot(&dst));
    assert_verified(&src, &dst);
}

/// DST given through a parent that is a symlink: resolved once at the start, as rsync does;
/// flipping the symlink to a sentinel during the run redirects nothing.
#[test]
fn dst_parent_symlink_is_resolved_once() {
    let t = tempfile::tempdir().unwrap();
    let s = sentinel(&t.path().join("sentinel"));
    write(&s.join("dst/f0000"), b"sentinel copy of DST");
    let before = snapshot(&s);
    let src = t.path().join("src");
    for f in 0..3000 {
        write(
            &src.join(format!("d{}/f{f:04}", f % 10)),
            format!("file {f}").as_bytes(),
        );
    }
    let real = t.path().join("real");
    fs::create_dir_all(&real).unwrap();
    let plink = t.path().join("plink");
    symlink(&real, &plink).unwrap();

    let mut cmd = opsync();
    cmd.args(["sync", "--force", "-i", "--threads=2"])
        .arg(&src)
        .arg(plink.join("dst"));
    let mut p = Proc::spawn(cmd);
    assert!(p.wait_lines(1), "opsync ended before printing");
    let (pl, real2, s2, tmp) = (
        plink.clone(),
        real.clone(),
        s.clone(),
        t.path().join("plink.new"),
    );
    let flipper = Looper::start(move |i| {
        let target = if i % 2 == 0 { &s2 } else { &real2 };
        let _ = fs::remove_file(&tmp);
        symlink(target, &tmp).unwrap();
        fs::rename(&tmp, &pl).unwrap();
    });
    let (status, _, err) = p.finish();
    let flips = flipper.stop();
    fs::remove_file(&plink).unwrap();
    symlink(&real, &plink).unwrap();
    assert_eq!(status.code(), Some(0), "{err}");
    assert!(flips > 10, "the symlink was flipped only {flips} times");
    assert_same("sentinel after the run", &before, &snapshot(&s));
    assert_same("DST vs SRC", &snapshot(&src), &snapshot(&real.join("dst")));
}

/// One version of a tree whose `sub/` has work of every kind: new, changed and extraneous
/// files, mode changes, symlinks, nested directories.
fn version(root: &Path, v: u32) {
    for f in 0..120 {
        if (f + v).is_multiple_of(4) {
            continue;
        }
        let p = root.join(format!("sub/f{f:03}"));
        write(
            &p,
            format!("version {v} of f{f}")
                .repeat(1 + (f as usize % 7))
                .as_bytes(),
        );
        let mode = if (f + v).is_multiple_of(3) {
            0o600
        } else {
            0o644
        };
        fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
    }
    for d in 0..10 {
        write(
            &root.join(format!("sub/n{d}/x/y")),
            format!("v{v}").as_bytes(),
        );
        if v.is_multiple_of(2) {
            write(&root.join(format!("sub/n{d}/only-even")), b"even");
        }
    }
    symlink(format!("target-{v}"), root.join("sub/link")).unwrap();
    if v % 2 == 1 {
        fs::create_dir_all(root.join("sub/file-or-dir")).unwrap();
    } else {
        write(&root.join("sub/file-or-dir"), b"a file now");
    }
}

/// A thread replaces `DST/sub` by a symlink to the sentinel and back, in a loop, during runs
/// that create, change, delete and fix attributes in `sub`.
#[test]
fn symlink_swaps_in_dst_during_runs_never_touch_the_sentinel() {
    let t = tempfile::tempdir().unwrap();
    let s = sentinel(&t.path().join("sentinel"));
    let before = snapshot(&s);
    let srcs = [t.path().join("srcA"), t.path().join("srcB")];
    version(&srcs[0], 1);
    version(&srcs[1], 2);
    let dst = t.path().join("dst");
    let (code, _, err) = sync(&srcs[0], &dst, &[]);
    assert_eq!(code, 0, "{err}");

    let (sub, parked, target) = (dst.join("sub"), t.path().join("parked"), s.join("sub"));
    let swapper = Looper::start(move |_| {
        if fs::rename(&sub, &parked).is_ok() {
            let _ = symlink(&target, &sub);
            std::thread::yield_now();
            let _ = fs::remove_file(&sub);
            if fs::rename(&parked, &sub).is_err() {
                let _ = fs::remove_dir_all(&parked);
            }
        }
    });
    for run in 0..8 {
        let src = &srcs[(run + 1) % 2];
        let (code, out, err) = sync(src, &dst, &["--threads=2"]);
        assert!(
            code == 0 || code == 23,
            "run {run}: exit {code}\n{out}\n{err}"
        );
        eprintln!(
            "swap run {run}: exit {code}, {} error lines",
            err.lines().count()
        );
        assert_same(&format!("sentinel after run {run}"), &before, &snapshot(&s));
    }
    let swaps = swapper.stop();
    assert!(swaps > 20, "only {swaps} swaps happened");
    let sub = dst.join("sub");
    if fs::symlink_metadata(&sub).is_ok_and(|m| m.file_type().is_symlink()) {
        fs::remove_file(&sub).unwrap();
    }
    let _ = fs::remove_dir_all(t.path().join("parked"));
    let (code, _, err) = sync(&srcs[0], &dst, &[]);
    assert_eq!(code, 0, "{err}");
    assert_same("sentinel at the end", &before, &snapshot(&s));
    assert_same("DST vs SRC", &snapshot(&srcs[0]), &snapshot(&dst));
}

/// Sets the mtime of every entry below `root` (symlinks included) to an old time, bottom-up.
fn age(root: &Path) {
    let old = FileTime::from_unix_time(OLD_TIME, 0);
    for e in fs::read_dir(root).unwrap() {
        let p = e.unwrap().path();
        if fs::symlink_metadata(&p).unwrap().is_dir() {
            age(&p);
        }
        filetime::set_symlink_file_times(&p, old, old).unwrap();
    }
    filetime::set_symlink_file_times(root, old, old).unwrap();
}

#[test]
fn hostile_names_mirror_like_rsync() {
    require_program("rsync", "rsync");
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    let names: Vec<&[u8]> = vec![
        b"..a",
        b"a..",
        b"...",
        b"....",
        b". .",
        b"-rf",
        b"a\nb",
        b"\n",
        b"tab\there",
        b"\xff\xfe\xfd",
        b"caf\xc3\xa9",
        b"a\\#012b",
        b" lead",
        b"trail ",
    ];
    for n in &names {
        let p = bpath(&src, n);
        write(&p, n);
        write(&bpath(&src.join("dir"), n).join("inside"), n);
    }
    let long = vec![b'x'; 255];
    write(&bpath(&src, &long), b"255-byte name");
    write(
        &bpath(&bpath(&src, &[b'y'; 255]), &long),
        b"255-byte name in a 255-byte directory",
    );
    // A 4,000-byte relative path: 15 directories of 254 bytes and a 175-byte file name.
    let mut deep = Vec::new();
    for d in 0..15u8 {
        deep.extend(std::iter::repeat_n(b'a' + d, 254));
        deep.push(b'/');
    }
    deep.extend(std::iter::repeat_n(b'z', 175));
    assert_eq!(deep.len(), 4000);
    write(&bpath(&src, &deep), b"deep");
    for (i, target) in [
        &b"../../../../etc/passwd"[..],
        b"/etc",
        b"new\nline",
        b"\xff",
    ]
    .iter()
    .enumerate()
    {
        symlink(OsStr::from_bytes(target), src.join(format!("link{i}"))).unwrap();
    }
    age(&src);
    let (dst, reference) = (t.path().join("dst"), t.path().join("rsync"));
    let (code, out, err) = sync(&src, &dst, &["-i"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.lines()
            .all(|l| l.len() >= 12 && !l.chars().any(|c| c.is_control() && c != '\t')),
        "itemize lines hold raw control characters (TAB aside, which rsync prints raw too):\n{out}"
    );
    assert!(
        out.contains("a\\#012b") && out.contains("\\#377\\#376\\#375"),
        "escaped names:\n{out}"
    );
    let st = Command::new("rsync")
        .arg("-a")
        .arg("--delete")
        .arg(format!("{}/", src.display()))
        .arg(format!("{}/", reference.display()))
        .status()
        .unwrap();
    assert!(st.success(), "rsync failed");
    assert_same("opsync vs rsync", &snapshot(&reference), &snapshot(&dst));
    let (code, out, err) = sync(&src, &dst, &["-i"]);
    assert_eq!(
        (code, out.as_str()),
        (0, ""),
        "a second run changes nothing\n{err}"
    );
}

const NOBODY: u32 = 65534;

/// As root with SRC owned by nobody: owner, group, setuid and setgid bits copied as rsync does,
/// and a watcher never sees them on a file whose content is incomplete.
#[test]
fn setuid_and_owner_never_on_incomplete_content() {
    require_root("copying ownership");
    require_program("rsync", "rsync");
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    let files: [(&str, u32, usize); 5] = [
        ("suid", 0o4755, 24 << 20),
        ("sgid", 0o2755, 24 << 20),
        ("plain", 0o640, 1 << 20),
        ("priv/tool", 0o4711, 16 << 20),
        ("priv/both", 0o6750, 8 << 20),
    ];
    let expected: Arc<Vec<(String, u64)>> = Arc::new(
        files
            .iter()
            .map(|(n, _, len)| (n.rsplit('/').next().unwrap().to_owned(), *len as u64))
            .collect(),
    );
    for (n, mode, len) in files {
        let p = src.join(n);
        write(&p, &vec![b'x'; len]);
        std::os::unix::fs::chown(&p, Some(NOBODY), Some(NOBODY)).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
    }
    std::os::unix::fs::chown(src.join("priv"), Some(NOBODY), Some(NOBODY)).unwrap();
    fs::set_permissions(src.join("priv"), fs::Permissions::from_mode(0o750)).unwrap();

    for run in 0..3 {
        let dst = t.path().join(format!("dst{run}"));
        fs::create_dir_all(dst.join("priv")).unwrap();
        let violations = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::new(Mutex::new(0u64));
        let (d, v, exp, sn) = (
            dst.clone(),
            violations.clone(),
            expected.clone(),
            seen.clone(),
        );
        let watcher = Looper::start(move |_| watch(&d, &exp, &v, &sn));
        let (code, _, err) = sync(&src, &dst, &[]);
        watcher.stop();
        assert_eq!(code, 0, "{err}");
        // One more pass on the finished tree, so the watcher is known to see the files.
        watch(&dst, &expected, &violations, &seen);
        let v = violations.lock().unwrap();
        assert!(
            v.is_empty(),
            "setuid or owner seen on incomplete content:\n{}",
            v.join("\n")
        );
        assert!(
            *seen.lock().unwrap() > 0,
            "the watcher saw no file owned by nobody"
        );
    }
    let reference = t.path().join("rsync");
    let st = Command::new("rsync")
        .arg("-a")
        .arg(format!("{}/", src.display()))
        .arg(format!("{}/", reference.display()))
        .status()
        .unwrap();
    assert!(st.success());
    let dst = t.path().join("dst0");
    assert_same(
        "opsync vs rsync",
        &without_dir_times(snapshot(&reference)),
        &without_dir_times(snapshot(&dst)),
    );
    assert_same("DST vs SRC", &snapshot(&src), &snapshot(&dst));
}

/// One pass of the watcher: every file (temporary or not) that carries a setuid/setgid bit or
/// belongs to nobody must already have its full size (`lstat` reads mode, owner and size at
/// once).
fn watch(
    dst: &Path,
    expected: &[(String, u64)],
    violations: &Mutex<Vec<String>>,
    seen: &Mutex<u64>,
) {
    use std::os::unix::fs::MetadataExt;
    for dir in [dst.to_owned(), dst.join("priv")] {
        let Ok(rd) = fs::read_dir(&dir) else { continue };
        for e in rd.flatten() {
            let name = e.file_name();
            let Ok(m) = fs::symlink_metadata(e.path()) else {
                continue;
            };
            if !m.is_file() || (m.mode() & 0o6000 == 0 && m.uid() != NOBODY) {
                continue;
            }
            *seen.lock().unwrap() += 1;
            let bytes = name.as_bytes();
            let real = if is_temp_name(bytes) {
                &bytes[1..bytes.len() - 7]
            } else {
                bytes
            };
            let want = expected
                .iter()
                .find(|(n, _)| n.as_bytes() == real)
                .map(|(_, l)| *l);
            if want != Some(m.len()) {
                violations.lock().unwrap().push(format!(
                    "{}: mode {:o} uid {} with {} of {want:?} bytes",
                    e.path().display(),
                    m.mode(),
                    m.uid(),
                    m.len()
                ));
            }
        }
    }
}
