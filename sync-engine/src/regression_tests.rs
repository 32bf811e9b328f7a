//! Regression tests for engine bugs found by the fault-injection and fuzz work, each named after
//! the bug. They run [`crate::sync`] on real temporary trees.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use filetime::FileTime;

use crate::{NoObserver, Options, sync};

fn mtime(p: &Path) -> FileTime {
    FileTime::from_last_modification_time(&fs::symlink_metadata(p).unwrap())
}

fn opts() -> Options {
    Options {
        threads: Some(2),
        ..Options::default()
    }
}

/// Creating or deleting entries in a directory whose own attributes already matched left the
/// directory with the time of the run: the next run itemized `.d..t......`.
#[test]
fn dir_mtime_restored_after_its_contents_change() {
    let t = tempfile::tempdir().unwrap();
    let (src, dst) = (t.path().join("src"), t.path().join("dst"));
    for root in [&src, &dst] {
        fs::create_dir_all(root.join("d")).unwrap();
    }
    fs::write(src.join("d/new"), b"new").unwrap();
    fs::write(dst.join("d/extra"), b"extra").unwrap();
    let old = FileTime::from_unix_time(1_577_836_800, 0);
    for p in [src.join("d"), dst.join("d"), src.clone(), dst.clone()] {
        filetime::set_file_mtime(&p, old).unwrap();
    }
    sync(&src, &dst, &opts(), &NoObserver).unwrap();
    assert_eq!(mtime(&dst.join("d")), old, "d/ keeps SRC's mtime");
    assert_eq!(mtime(&dst), old, "the root keeps SRC's mtime");
    let again = sync(&src, &dst, &opts(), &NoObserver).unwrap();
    assert_eq!(again.attrs_fixed, 0, "a second run has nothing to fix");
}

/// Collects the paths of "kept changing" warnings.
#[derive(Default)]
struct Warnings(std::sync::Mutex<Vec<Vec<u8>>>);

impl crate::Observer for Warnings {
    fn warning(&self, w: &crate::Warning<'_>) {
        if let crate::Warning::ChangedDuringCopy { path } = w {
            self.0.lock().unwrap().push(path.to_vec());
        }
    }
}

/// Issue 10: a source file that changed during both copy attempts kept the content of the last
/// read but got the size and mtime of the stat taken after it. When the writer stopped during
/// that read, the stale copy carried the source's exact size and mtime, so every later quick
/// check skipped it. Deterministic: a hook in the copy rewrites the source's first bytes (and
/// gives it a new mtime) right after each read of both attempts, before the stat that checks
/// the read, and then the writer stops.
#[test]
fn a_copy_of_a_file_that_kept_changing_is_copied_again_by_the_next_run() {
    use std::os::unix::fs::FileExt;
    const NAME: &[u8] = b"kept-changing-big";
    let t = tempfile::tempdir().unwrap();
    let (src, dst) = (t.path().join("src"), t.path().join("dst"));
    fs::create_dir_all(&src).unwrap();
    let big = src.join("kept-changing-big");
    fs::write(&big, vec![b'x'; 4 << 20]).unwrap();
    filetime::set_file_mtime(&big, FileTime::from_unix_time(1_600_000_000, 0)).unwrap();
    let writer = big.clone();
    *crate::apply::copy::test_hook::AFTER_READ.lock().unwrap() =
        Some(Box::new(move |path: &[u8], attempt: u32| {
            if path != NAME {
                return;
            }
            let f = fs::OpenOptions::new().write(true).open(&writer).unwrap();
            f.write_all_at(format!("write {attempt:>4}").as_bytes(), 0)
                .unwrap();
            let m = FileTime::from_unix_time(1_600_000_100 + i64::from(attempt), 0);
            filetime::set_file_mtime(&writer, m).unwrap();
        }));
    let warned = Warnings::default();
    let first = sync(&src, &dst, &opts(), &warned);
    *crate::apply::copy::test_hook::AFTER_READ.lock().unwrap() = None;
    first.unwrap();
    assert!(
        warned.0.lock().unwrap().iter().any(|p| p == NAME),
        "the copy was not reported as kept changing"
    );
    let src_now = fs::read(&big).unwrap();
    assert!(
        fs::read(dst.join("kept-changing-big")).unwrap() != src_now,
        "the copy is stale by construction (the source changed after the last read)"
    );
    // The writer has stopped: the source now has its final size and mtime. The attributes
    // alone must make the next run copy the stale copy again.
    let again = sync(&src, &dst, &opts(), &NoObserver).unwrap();
    assert_eq!(
        again.files_copied, 1,
        "the next quick check copies the stale copy again"
    );
    assert!(fs::read(dst.join("kept-changing-big")).unwrap() == src_now);
}

/// Mounts a ramfs (coarse timestamps on any kernel) at a new temporary directory; unmounted on
/// drop. Needs root, like the fault tests.
struct Ramfs(tempfile::TempDir);

impl Ramfs {
    fn new() -> Ramfs {
        let t = tempfile::tempdir().unwrap();
        let st = std::process::Command::new("mount")
            .args(["-t", "ramfs", "ramfs"])
            .arg(t.path())
            .status()
            .expect("run mount");
        assert!(
            st.success(),
            "cannot mount a ramfs at {} (this test needs root)",
            t.path().display()
        );
        Ramfs(t)
    }
}

impl Drop for Ramfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg(self.0.path())
            .status();
    }
}

/// Issue 10, racily clean files: on a filesystem with coarse timestamps a file written again
/// within the same clock tick after opsync read it keeps its size and mtime. The next run must
/// compare it by content (its copy's stamp says it was read when the mtime was not clearly
/// older) instead of trusting the quick check.
#[test]
fn a_file_rewritten_within_the_timestamp_tick_after_its_copy_is_copied_again() {
    let fs_ = Ramfs::new();
    let (src, dst) = (fs_.0.path().join("src"), fs_.0.path().join("dst"));
    let one = Options {
        threads: Some(1),
        ..opts()
    };
    // Tries until a rewrite lands in the same tick as the write before the copy (ticks are
    // 1 to 10 ms; one attempt takes well under a millisecond on an idle machine). Each attempt
    // starts from empty trees.
    for _attempt in 0..2_000 {
        let _ = fs::remove_dir_all(&src);
        let _ = fs::remove_dir_all(&dst);
        fs::create_dir_all(&src).unwrap();
        let f = src.join("f");
        fs::write(&f, b"first version").unwrap();
        let before = fs::metadata(&f).unwrap();
        sync(&src, &dst, &one, &NoObserver).unwrap();
        fs::write(&f, b"later version").unwrap();
        let after = fs::metadata(&f).unwrap();
        if mtime_of(&before) != mtime_of(&after) {
            continue;
        }
        let again = sync(&src, &dst, &one, &NoObserver).unwrap();
        assert_eq!(
            fs::read(dst.join("f")).unwrap(),
            b"later version",
            "the racily clean copy was compared by content and copied again ({again:?})"
        );
        assert_eq!((again.rechecked, again.files_copied), (1, 1), "{again:?}");
        return;
    }
    panic!("in 2,000 attempts no rewrite landed in the tick of the write before the copy");
}

fn mtime_of(m: &fs::Metadata) -> FileTime {
    FileTime::from_last_modification_time(m)
}

/// The same rule without relying on the clock: a source mtime in the future is never clearly
/// older than the copy's read, so a same-size rewrite that keeps it is found; once the mtime
/// is clearly older than a comparison that found the files equal, the copy is trusted again
/// (the stamp moved) and a further run reads nothing.
#[test]
fn racy_copies_are_compared_by_content_until_their_mtime_is_clearly_older() {
    let t = tempfile::tempdir().unwrap();
    let (src, dst) = (t.path().join("src"), t.path().join("dst"));
    fs::create_dir_all(&src).unwrap();
    let f = src.join("f");
    let future = FileTime::from_unix_time(4_102_444_800, 5);
    fs::write(&f, b"first version").unwrap();
    filetime::set_file_mtime(&f, future).unwrap();
    sync(&src, &dst, &opts(), &NoObserver).unwrap();
    fs::write(&f, b"other version").unwrap();
    filetime::set_file_mtime(&f, future).unwrap();
    let r = sync(&src, &dst, &opts(), &NoObserver).unwrap();
    assert_eq!((r.rechecked, r.files_copied), (1, 1), "{r:?}");
    assert_eq!(fs::read(dst.join("f")).unwrap(), b"other version");
    // Equal now, but the mtime is still in the future: compared again, nothing copied.
    let r = sync(&src, &dst, &opts(), &NoObserver).unwrap();
    assert_eq!((r.rechecked, r.files_copied), (1, 0), "{r:?}");
    // An mtime in the past: one more comparison moves the stamp, then it is trusted.
    let past = FileTime::from_unix_time(1_600_000_000, 7);
    filetime::set_file_mtime(&f, past).unwrap();
    filetime::set_file_mtime(dst.join("f"), past).unwrap();
    filetime::set_file_atime(dst.join("f"), past).unwrap();
    let r = sync(&src, &dst, &opts(), &NoObserver).unwrap();
    assert_eq!((r.rechecked, r.files_copied), (1, 0), "{r:?}");
    let r = sync(&src, &dst, &opts(), &NoObserver).unwrap();
    assert_eq!((r.rechecked, r.files_copied), (0, 0), "{r:?}");
}

/// `--inplace`: only the changed blocks are written into the existing file, no temporary file
/// is made, and the result carries SRC's attributes and a fresh stamp.
#[test]
fn inplace_writes_the_changed_blocks_into_the_existing_file() {
    use std::os::unix::fs::FileExt;
    let t = tempfile::tempdir().unwrap();
    let (src, dst) = (t.path().join("src"), t.path().join("dst"));
    fs::create_dir_all(&src).unwrap();
    let mut data = vec![0u8; 8 << 20];
    fastrand::Rng::with_seed(1).fill(&mut data);
    fs::write(src.join("table"), &data).unwrap();
    let old = FileTime::from_unix_time(1_600_000_000, 0);
    filetime::set_file_mtime(src.join("table"), old).unwrap();
    sync(&src, &dst, &opts(), &NoObserver).unwrap();
    let ino = fs::metadata(dst.join("table")).unwrap().ino();
    // Three 8 KiB pages rewritten, as a database does.
    let f = fs::OpenOptions::new()
        .write(true)
        .open(src.join("table"))
        .unwrap();
    for page in [3u64, 400, 1000] {
        f.write_all_at(&[page as u8; 8192], page * 8192).unwrap();
    }
    let new = FileTime::from_unix_time(1_600_000_100, 5);
    filetime::set_file_mtime(src.join("table"), new).unwrap();
    let o = Options {
        inplace: true,
        ..opts()
    };
    let r = sync(&src, &dst, &o, &NoObserver).unwrap();
    assert_eq!((r.files_copied, r.bytes_written), (1, 3 * 8192), "{r:?}");
    let m = fs::metadata(dst.join("table")).unwrap();
    assert_eq!(m.ino(), ino, "the same file, updated in place");
    assert_eq!(mtime(&dst.join("table")), new);
    assert!(fs::read(dst.join("table")).unwrap() == fs::read(src.join("table")).unwrap());
    assert_eq!(fs::read_dir(&dst).unwrap().count(), 1, "no temporary file");
    let again = sync(&src, &dst, &o, &NoObserver).unwrap();
    assert_eq!(again.files_copied, 0, "{again:?}");
}

/// `--inplace` never writes into a DST file with another link (it could be linked from outside
/// DST) nor into a setuid file: those get the usual temporary file and rename.
#[test]
fn inplace_leaves_linked_and_setuid_files_to_the_atomic_copy() {
    use std::os::unix::fs::PermissionsExt;
    let t = tempfile::tempdir().unwrap();
    let (src, dst) = (t.path().join("src"), t.path().join("dst"));
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("linked"), b"version 1").unwrap();
    fs::write(src.join("suid"), b"version 1").unwrap();
    fs::set_permissions(src.join("suid"), fs::Permissions::from_mode(0o4755)).unwrap();
    sync(&src, &dst, &opts(), &NoObserver).unwrap();
    let outside = t.path().join("outside");
    fs::hard_link(dst.join("linked"), &outside).unwrap();
    let suid_ino = fs::metadata(dst.join("suid")).unwrap().ino();
    for n in ["linked", "suid"] {
        fs::write(src.join(n), b"version 2").unwrap();
        filetime::set_file_mtime(src.join(n), FileTime::from_unix_time(1_700_000_000, 0)).unwrap();
    }
    fs::set_permissions(src.join("suid"), fs::Permissions::from_mode(0o4755)).unwrap();
    let o = Options {
        inplace: true,
        ..opts()
    };
    let r = sync(&src, &dst, &o, &NoObserver).unwrap();
    assert_eq!(r.files_copied, 2, "{r:?}");
    assert_eq!(
        fs::read(&outside).unwrap(),
        b"version 1",
        "the other link is untouched"
    );
    assert_eq!(fs::read(dst.join("linked")).unwrap(), b"version 2");
    assert_ne!(fs::metadata(dst.join("suid")).unwrap().ino(), suid_ino);
    assert_eq!(fs::read(dst.join("suid")).unwrap(), b"version 2");
}

/// A DST file with SRC's size and mtime but other content is left alone by the quick check (as
/// rsync does); listed in `recheck`, it is compared by content and copied.
#[test]
fn recheck_compares_listed_files_by_content() {
    let t = tempfile::tempdir().unwrap();
    let (src, dst) = (t.path().join("src"), t.path().join("dst"));
    for root in [&src, &dst] {
        fs::create_dir_all(root.join("db")).unwrap();
    }
    fs::write(src.join("db/page"), b"production").unwrap();
    fs::write(dst.join("db/page"), b"stale copy").unwrap();
    let old = FileTime::from_unix_time(1_600_000_000, 0);
    for p in [src.join("db/page"), dst.join("db/page")] {
        filetime::set_file_times(&p, old, old).unwrap();
    }
    // The stamp of a copy made long after the mtime: trusted by size and mtime.
    let copied_at = FileTime::from_unix_time(1_600_000_100, 0);
    filetime::set_file_atime(dst.join("db/page"), copied_at).unwrap();
    let r = sync(&src, &dst, &opts(), &NoObserver).unwrap();
    assert_eq!(r.files_copied, 0, "the quick check trusts it: {r:?}");
    let o = Options {
        recheck: vec![b"db/page".to_vec(), b"db/missing".to_vec()],
        ..opts()
    };
    let r = sync(&src, &dst, &o, &NoObserver).unwrap();
    assert_eq!((r.rechecked, r.files_copied), (1, 1), "{r:?}");
    assert_eq!(fs::read(dst.join("db/page")).unwrap(), b"production");
}

/// `-H`: files that are hard links of each other in SRC are hard links in DST, across
/// directories; a second run does nothing; a rewritten leader is linked again; a follower that
/// became a separate copy in DST is linked again.
#[test]
fn hard_links_are_kept_as_links() {
    let t = tempfile::tempdir().unwrap();
    let (src, dst) = (t.path().join("src"), t.path().join("dst"));
    for d in ["d", "e", "a"] {
        fs::create_dir_all(src.join(d)).unwrap();
    }
    fs::write(src.join("d/a"), b"data").unwrap();
    fs::hard_link(src.join("d/a"), src.join("e/b")).unwrap();
    fs::hard_link(src.join("d/a"), src.join("c")).unwrap();
    fs::hard_link(src.join("d/a"), src.join("a/x")).unwrap();
    let old = FileTime::from_unix_time(1_600_000_000, 0);
    filetime::set_file_mtime(src.join("c"), old).unwrap();
    let o = Options {
        hard_links: true,
        ..opts()
    };
    let inode = |p: &str| fs::metadata(dst.join(p)).unwrap().ino();
    let all_linked = || {
        let i = inode("c");
        ["d/a", "e/b", "a/x"].iter().all(|p| inode(p) == i)
    };
    let r = sync(&src, &dst, &o, &NoObserver).unwrap();
    assert_eq!(r.files_copied, 1, "one copy, three links: {r:?}");
    assert!(all_linked());
    assert_eq!(fs::metadata(dst.join("c")).unwrap().nlink(), 4);
    for d in ["d", "e", "a", ""] {
        assert_eq!(mtime(&dst.join(d)), mtime(&src.join(d)), "mtime of {d}/");
    }
    let again = sync(&src, &dst, &o, &NoObserver).unwrap();
    assert_eq!((again.files_copied, again.created), (0, 0), "{again:?}");
    // A follower that is a separate copy in DST is linked again.
    fs::remove_file(dst.join("e/b")).unwrap();
    fs::copy(dst.join("c"), dst.join("e/b")).unwrap();
    filetime::set_file_mtime(dst.join("e/b"), old).unwrap();
    sync(&src, &dst, &o, &NoObserver).unwrap();
    assert!(all_linked());
    // The leader rewritten: every link follows it.
    fs::write(src.join("c"), b"new data").unwrap();
    let r = sync(&src, &dst, &o, &NoObserver).unwrap();
    assert_eq!(r.files_copied, 1, "{r:?}");
    assert!(all_linked());
    assert_eq!(fs::read(dst.join("a/x")).unwrap(), b"new data");
    // Without -H each name is a copy of its own.
    let plain = t.path().join("plain");
    sync(&src, &plain, &opts(), &NoObserver).unwrap();
    assert_eq!(fs::metadata(plain.join("c")).unwrap().nlink(), 1);
}

/// `-X`: extended attributes of files and directories are mirrored, changed ones updated in
/// place, ones SRC lacks removed; without `-X` they are left alone.
#[test]
fn extended_attributes_are_mirrored_with_xattrs() {
    use std::os::fd::AsFd;
    let t = tempfile::tempdir().unwrap();
    let (src, dst) = (t.path().join("src"), t.path().join("dst"));
    fs::create_dir_all(src.join("d")).unwrap();
    fs::write(src.join("d/f"), b"data").unwrap();
    let set = |p: &Path, name: &[u8], value: &[u8]| {
        let dir = crate::sys::open_dir_path(p.parent().unwrap()).unwrap();
        let n = p.file_name().unwrap().as_encoded_bytes();
        let have = crate::sys::xattrs_at(dir.as_fd(), n, &|_| true).unwrap();
        let mut want = have.clone();
        want.retain(|(k, _)| k != name);
        if !value.is_empty() {
            want.push((name.to_vec(), value.to_vec()));
        }
        crate::sys::set_xattrs(crate::sys::XattrTarget::At(dir.as_fd(), n), &have, &want).unwrap();
    };
    let get = |p: &Path| {
        let dir = crate::sys::open_dir_path(p.parent().unwrap()).unwrap();
        let n = p.file_name().unwrap().as_encoded_bytes();
        crate::sys::xattrs_at(dir.as_fd(), n, &|k| k.starts_with(b"user.")).unwrap()
    };
    set(&src.join("d/f"), b"user.comment", b"hello");
    set(&src.join("d"), b"user.dir", b"1");
    let o = Options {
        xattrs: true,
        ..opts()
    };
    sync(&src, &dst, &o, &NoObserver).unwrap();
    assert_eq!(get(&dst.join("d/f")), get(&src.join("d/f")));
    assert_eq!(get(&dst.join("d")), get(&src.join("d")));
    assert!(!get(&dst.join("d/f")).is_empty());
    let again = sync(&src, &dst, &o, &NoObserver).unwrap();
    assert_eq!(again.attrs_fixed, 0, "{again:?}");
    set(&src.join("d/f"), b"user.comment", b"changed");
    set(&dst.join("d/f"), b"user.extra", b"only in dst");
    let r = sync(&src, &dst, &o, &NoObserver).unwrap();
    assert_eq!((r.files_copied, r.attrs_fixed), (0, 1), "{r:?}");
    assert_eq!(get(&dst.join("d/f")), get(&src.join("d/f")));
    // Without -X the attributes of DST stay as they are.
    set(&src.join("d/f"), b"user.comment", b"");
    let r = sync(&src, &dst, &opts(), &NoObserver).unwrap();
    assert_eq!(r.attrs_fixed, 0, "{r:?}");
    assert_eq!(get(&dst.join("d/f")).len(), 1);
}

/// Mounts a tmpfs at `at` (created first); unmounted on drop. Needs root.
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    fn new(at: &Path) -> Tmpfs {
        fs::create_dir_all(at).unwrap();
        let st = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"])
            .arg(at)
            .status()
            .expect("run mount");
        assert!(
            st.success(),
            "cannot mount a tmpfs at {} (needs root)",
            at.display()
        );
        Tmpfs(at.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

/// `-x`: a directory on another filesystem is copied as an empty directory and DST's contents
/// of it are left alone; `-xx` leaves it out.
#[test]
fn one_file_system_does_not_cross_mount_points() {
    let t = tempfile::tempdir().unwrap();
    let (src, dst) = (t.path().join("src"), t.path().join("dst"));
    fs::create_dir_all(src.join("data")).unwrap();
    fs::write(src.join("data/f"), b"on the root filesystem").unwrap();
    let mnt = Tmpfs::new(&src.join("data/mnt"));
    fs::write(mnt.0.join("inner"), b"on another filesystem").unwrap();
    fs::create_dir_all(dst.join("data/mnt")).unwrap();
    fs::write(dst.join("data/mnt/kept"), b"dev's own").unwrap();
    let o = Options {
        one_file_system: 1,
        ..opts()
    };
    sync(&src, &dst, &o, &NoObserver).unwrap();
    assert_eq!(
        fs::read(dst.join("data/f")).unwrap(),
        b"on the root filesystem"
    );
    assert!(!dst.join("data/mnt/inner").exists(), "not crossed");
    assert!(
        dst.join("data/mnt/kept").exists(),
        "DST's contents left alone"
    );
    let fresh = t.path().join("fresh");
    sync(&src, &fresh, &o, &NoObserver).unwrap();
    assert!(fresh.join("data/mnt").is_dir());
    assert_eq!(fs::read_dir(fresh.join("data/mnt")).unwrap().count(), 0);
    let xx = t.path().join("xx");
    let o2 = Options {
        one_file_system: 2,
        ..opts()
    };
    sync(&src, &xx, &o2, &NoObserver).unwrap();
    assert!(!xx.join("data/mnt").exists(), "-xx leaves mount points out");
    let all = t.path().join("all");
    sync(&src, &all, &opts(), &NoObserver).unwrap();
    assert!(
        all.join("data/mnt/inner").exists(),
        "without -x it is crossed"
    );
    drop(mnt);
}

/// `--fsync` writes every file and changed directory to the device; the result is the same.
#[test]
fn fsync_gives_the_same_mirror() {
    let t = tempfile::tempdir().unwrap();
    let (src, dst) = (t.path().join("src"), t.path().join("dst"));
    fs::create_dir_all(src.join("d")).unwrap();
    fs::write(src.join("d/f"), b"data").unwrap();
    let o = Options {
        fsync: true,
        inplace: true,
        ..opts()
    };
    sync(&src, &dst, &o, &NoObserver).unwrap();
    fs::write(src.join("d/f"), b"more data").unwrap();
    filetime::set_file_mtime(src.join("d/f"), FileTime::from_unix_time(1_600_000_000, 0)).unwrap();
    sync(&src, &dst, &o, &NoObserver).unwrap();
    assert_eq!(fs::read(dst.join("d/f")).unwrap(), b"more data");
}

/// rsync 3.5: a symlink in DST's path owned by neither root nor the caller is not followed
/// (`dest/sub -> /outside` made by `nobody` would redirect the mirror); nothing is written.
#[test]
fn a_symlink_in_the_destination_path_owned_by_another_user_is_refused() {
    use std::os::unix::fs::symlink;
    let t = tempfile::tempdir().unwrap();
    let (src, outside) = (t.path().join("src"), t.path().join("outside"));
    fs::create_dir_all(&src).unwrap();
    fs::create_dir_all(&outside).unwrap();
    fs::create_dir_all(t.path().join("dest")).unwrap();
    fs::write(src.join("f"), b"x").unwrap();
    let link = t.path().join("dest/sub");
    symlink(&outside, &link).unwrap();
    std::os::unix::fs::lchown(&link, Some(65534), Some(65534)).unwrap();
    let e = sync(&src, &link, &opts(), &NoObserver).unwrap_err();
    assert!(
        matches!(e, crate::Error::UntrustedSymlink { uid: 65534, .. }),
        "{e}"
    );
    assert!(e.to_string().contains("--insecure-links"), "{e}");
    assert_eq!(
        fs::read_dir(&outside).unwrap().count(),
        0,
        "nothing written"
    );
    // Deeper below it, or reached through a trusted link to it: refused too.
    let trusted = t.path().join("trusted");
    symlink(t.path().join("dest"), &trusted).unwrap();
    assert!(sync(&src, &trusted.join("sub/x"), &opts(), &NoObserver).is_err());
    let o = Options {
        insecure_links: true,
        ..opts()
    };
    sync(&src, &link, &o, &NoObserver).unwrap();
    assert!(outside.join("f").exists());
    // A link owned by root (or the caller) is followed as before.
    std::os::unix::fs::lchown(&link, Some(0), Some(0)).unwrap();
    sync(&src, &link, &opts(), &NoObserver).unwrap();
}

/// Two syncs into one DST tripped over each other (both exited 23 with "File exists" / "No such
/// file"): the second now stops before touching anything and names the holder.
#[test]
fn a_second_sync_into_the_same_destination_is_refused_naming_the_holder() {
    use std::os::fd::AsFd;
    let t = tempfile::tempdir().unwrap();
    let (src, dst) = (t.path().join("src"), t.path().join("dst"));
    fs::create_dir_all(&src).unwrap();
    fs::create_dir_all(&dst).unwrap();
    fs::write(src.join("f"), b"x").unwrap();
    let held = crate::sys::open_dir_path(&dst).unwrap();
    assert!(crate::sys::try_lock(held.as_fd()).unwrap());
    let e = sync(&src, &dst, &opts(), &NoObserver).unwrap_err();
    match &e {
        crate::Error::Locked { holder, .. } => assert_eq!(*holder, Some(std::process::id())),
        other => panic!("{other}"),
    }
    assert!(!dst.join("f").exists());
    let dry = Options {
        dry_run: true,
        ..opts()
    };
    sync(&src, &dst, &dry, &NoObserver).unwrap();
    drop(held);
    sync(&src, &dst, &opts(), &NoObserver).unwrap();
    assert!(dst.join("f").exists());
    let too_many = Options {
        threads: Some(20_000),
        ..opts()
    };
    let e = sync(&src, &dst, &too_many, &NoObserver).unwrap_err();
    assert!(e.to_string().contains("at most 256"), "{e}");
}

/// `--max-delete P%` counted DST's entries through the root's descriptor, which left its
/// directory offset at the end: the scan then saw an empty DST root, tried to create `d` again
/// (`File exists`, exit 23) and deleted nothing at the top level.
#[test]
fn max_delete_percent_sees_the_whole_dst_root() {
    let t = tempfile::tempdir().unwrap();
    let (src, dst) = (t.path().join("src"), t.path().join("dst"));
    for root in [&src, &dst] {
        fs::create_dir_all(root.join("d")).unwrap();
    }
    fs::write(src.join("d/new"), b"new").unwrap();
    for i in 0..4 {
        fs::write(dst.join(format!("old-{i}")), b"old").unwrap();
    }
    let o = Options {
        max_delete: Some(crate::MaxDelete::Percent(100.0)),
        ..opts()
    };
    let r = sync(&src, &dst, &o, &NoObserver).unwrap();
    assert_eq!(r.errors, 0);
    assert_eq!(r.deleted, 4);
    assert!(dst.join("d/new").is_file());
}

/// `max_delete_all_or_nothing`: queued deletions past the limit, the contents of a queued
/// directory counted, delete nothing; within the limit all of them go.
#[test]
fn all_or_nothing_max_delete_deletes_none_past_the_limit() {
    let t = tempfile::tempdir().unwrap();
    let (src, dst) = (t.path().join("src"), t.path().join("dst"));
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("keep"), b"keep").unwrap();
    fs::create_dir_all(dst.join("old-dir")).unwrap();
    for i in 0..3 {
        fs::write(dst.join(format!("old-dir/f{i}")), b"old").unwrap();
    }
    fs::write(dst.join("old-file"), b"old").unwrap();
    // Five entries would go (old-dir with its three files, old-file): a limit of 4 keeps all.
    let o = Options {
        max_delete: Some(crate::MaxDelete::Count(4)),
        max_delete_all_or_nothing: true,
        ..opts()
    };
    let r = sync(&src, &dst, &o, &NoObserver).unwrap();
    assert!(r.delete_limited);
    assert_eq!(r.deleted, 0);
    assert!(dst.join("old-dir/f2").is_file() && dst.join("old-file").is_file());
    assert!(dst.join("keep").is_file(), "the copies are still made");
    // Without all-or-nothing the same limit deletes up to it, as rsync does.
    let partial = Options {
        max_delete_all_or_nothing: false,
        ..o.clone()
    };
    let r = sync(&src, &dst, &partial, &NoObserver).unwrap();
    assert!(r.delete_limited && r.deleted > 0 && r.deleted <= 4);
    // Within the limit everything goes.
    let r = sync(
        &src,
        &dst,
        &Options {
            max_delete: Some(crate::MaxDelete::Count(5)),
            ..o
        },
        &NoObserver,
    )
    .unwrap();
    assert!(!r.delete_limited);
    assert!(!dst.join("old-dir").exists() && !dst.join("old-file").exists());
}
