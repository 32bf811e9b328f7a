//! Two `opsync sync` runs into one DST never trip over each other: the second exits 27 (as a
//! job whose lock is held) naming the holder, and changes nothing. The first run is played by
//! this test holding the lock (an `flock` on DST), so nothing depends on timing.

use opsync_tests::opsync;

#[test]
fn a_second_sync_into_the_same_dst_exits_27_naming_the_holder() {
    let tmp = tempfile::tempdir().unwrap();
    let (src, dst) = (tmp.path().join("src"), tmp.path().join("dst"));
    std::fs::create_dir_all(&src).unwrap();
    std::fs::create_dir_all(&dst).unwrap();
    std::fs::write(src.join("file"), b"new").unwrap();
    std::fs::write(dst.join("extra"), b"old").unwrap();
    let held = std::fs::File::open(&dst).unwrap();
    rustix::fs::flock(&held, rustix::fs::FlockOperation::LockExclusive).unwrap();

    let out = opsync().arg("sync").arg(&src).arg(&dst).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(27), "{stderr}");
    assert!(
        stderr.contains(&format!("another opsync sync (pid {})", std::process::id())),
        "{stderr}"
    );
    assert!(
        dst.join("extra").exists() && !dst.join("file").exists(),
        "DST changed while locked"
    );

    drop(held);
    let out = opsync().arg("sync").arg(&src).arg(&dst).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(dst.join("file").exists() && !dst.join("extra").exists());
}
