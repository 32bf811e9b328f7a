//! `opsync sync --verify`, `--verify=written`, `--recheck-from` and `--inplace`: the options the
//! nightly job uses to make its copy exact and to heal what the quick check misses.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Output;

use filetime::FileTime;
use opsync_tests::opsync;
use serde_json::Value;

/// SRC with a few files and a copy in DST made by `opsync sync`, every mtime and stamp (the
/// copy's access time) set well in the past, so the quick check trusts every copy.
struct Pair {
    dir: tempfile::TempDir,
    src: PathBuf,
    dst: PathBuf,
}

const MTIME: i64 = 1_600_000_000;

fn pair() -> Pair {
    let dir = tempfile::tempdir().unwrap();
    let (src, dst) = (dir.path().join("src"), dir.path().join("dst"));
    fs::create_dir_all(src.join("db")).unwrap();
    for (name, data) in [
        ("db/page", &b"production rows"[..]),
        ("minio.bin", b"objects"),
    ] {
        fs::write(src.join(name), data).unwrap();
        filetime::set_file_mtime(src.join(name), FileTime::from_unix_time(MTIME, 0)).unwrap();
    }
    let out = opsync().arg("sync").arg(&src).arg(&dst).output().unwrap();
    assert!(out.status.success(), "sync failed: {out:?}");
    Pair { dir, src, dst }
}

/// Gives DST's `name` other content with the same size and mtime, and a stamp 100 s after the
/// mtime: a stale copy the quick check cannot see.
fn make_stale(dst: &Path, name: &str) {
    let p = dst.join(name);
    let mut data = fs::read(&p).unwrap();
    data[0] ^= 0x20;
    fs::write(&p, data).unwrap();
    filetime::set_file_times(
        &p,
        FileTime::from_unix_time(MTIME + 100, 0),
        FileTime::from_unix_time(MTIME, 0),
    )
    .unwrap();
}

fn sync(args: &[&str], p: &Pair) -> Output {
    opsync()
        .arg("sync")
        .args(args)
        .arg(&p.src)
        .arg(&p.dst)
        .output()
        .unwrap()
}

fn events(out: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

fn of_type<'a>(ev: &'a [Value], t: &str) -> Vec<&'a Value> {
    ev.iter().filter(|e| e["type"] == t).collect()
}

fn show(out: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}--- stderr\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn a_plain_sync_keeps_a_stale_copy_the_quick_check_trusts() {
    let p = pair();
    make_stale(&p.dst, "db/page");
    let out = sync(&["--json"], &p);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert_ne!(
        fs::read(p.dst.join("db/page")).unwrap(),
        fs::read(p.src.join("db/page")).unwrap(),
        "like rsync, the quick check trusts size and mtime"
    );
}

#[test]
fn verify_repairs_a_stale_copy_and_names_it() {
    let p = pair();
    make_stale(&p.dst, "db/page");
    let out = sync(&["--json", "--verify"], &p);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let ev = events(&out);
    let diffs = of_type(&ev, "difference");
    assert_eq!(diffs.len(), 1, "{}", show(&out));
    assert_eq!(
        (diffs[0]["path"].as_str(), diffs[0]["kind"].as_str()),
        (Some("db/page"), Some("content"))
    );
    let repaired = of_type(&ev, "repaired");
    assert_eq!(repaired.len(), 1, "{}", show(&out));
    assert_eq!(repaired[0]["path"], "db/page");
    let summary = of_type(&ev, "summary");
    assert_eq!(summary.len(), 1);
    assert_eq!(
        summary[0]["verify"],
        serde_json::json!({"differences": 1, "repaired": 1, "remaining": 0})
    );
    assert_eq!(
        fs::read(p.dst.join("db/page")).unwrap(),
        fs::read(p.src.join("db/page")).unwrap()
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("1 file(s) repaired"), "{err}");
}

/// A difference the repair cannot fix (the DST file is immutable) is reported and exits 8.
#[test]
fn verify_exits_8_when_a_difference_stays() {
    let p = pair();
    make_stale(&p.dst, "minio.bin");
    let target = p.dst.join("minio.bin");
    let st = std::process::Command::new("chattr")
        .arg("+i")
        .arg(&target)
        .status()
        .expect("run chattr (e2fsprogs)");
    assert!(st.success(), "chattr +i needs root and ext4/XFS");
    let out = sync(&["--json", "--verify"], &p);
    let _ = std::process::Command::new("chattr")
        .arg("-i")
        .arg(&target)
        .status();
    assert_eq!(out.status.code(), Some(8), "{}", show(&out));
    let ev = events(&out);
    assert!(of_type(&ev, "repaired").is_empty(), "{}", show(&out));
    let summary = of_type(&ev, "summary");
    assert_eq!(summary[0]["verify"]["remaining"], 1, "{}", show(&out));
    assert_eq!(summary[0]["exit_code"], 8);
}

#[test]
fn recheck_from_compares_the_listed_files_by_content() {
    let p = pair();
    make_stale(&p.dst, "db/page");
    make_stale(&p.dst, "minio.bin");
    let list = p.dir.path().join("recheck");
    fs::write(&list, b"db/page\0./no/such/file\0").unwrap();
    let l = list.to_str().unwrap();
    let out = sync(&["--json", "--recheck-from", l, "--from0"], &p);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let ev = events(&out);
    let s = of_type(&ev, "summary")[0];
    assert_eq!(
        (&s["rechecked"], &s["files_transferred"]),
        (&1.into(), &1.into())
    );
    assert_eq!(
        fs::read(p.dst.join("db/page")).unwrap(),
        fs::read(p.src.join("db/page")).unwrap()
    );
    assert_ne!(
        fs::read(p.dst.join("minio.bin")).unwrap(),
        fs::read(p.src.join("minio.bin")).unwrap(),
        "a file not listed keeps its stale copy"
    );
    let missing = sync(&["--recheck-from", "/no/such/list"], &p);
    assert_eq!(missing.status.code(), Some(1), "{}", show(&missing));
    let err = String::from_utf8_lossy(&missing.stderr);
    assert!(err.contains("/no/such/list"), "{err}");
}

#[test]
fn inplace_writes_only_the_changed_pages_and_verify_written_checks_them() {
    use std::os::unix::fs::FileExt;
    let p = pair();
    let mut data = vec![0u8; 4 << 20];
    fastrand::Rng::with_seed(5).fill(&mut data);
    fs::write(p.src.join("db/table"), &data).unwrap();
    filetime::set_file_mtime(p.src.join("db/table"), FileTime::from_unix_time(MTIME, 0)).unwrap();
    let out = sync(&[], &p);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let ino = fs::metadata(p.dst.join("db/table")).unwrap().ino();
    let f = fs::OpenOptions::new()
        .write(true)
        .open(p.src.join("db/table"))
        .unwrap();
    f.write_all_at(&[1u8; 8192], 8192 * 100).unwrap();
    filetime::set_file_mtime(
        p.src.join("db/table"),
        FileTime::from_unix_time(MTIME + 60, 0),
    )
    .unwrap();
    let out = sync(&["--json", "--inplace", "--verify=written"], &p);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let ev = events(&out);
    let s = of_type(&ev, "summary")[0];
    assert_eq!(s["files_transferred"], 1, "{}", show(&out));
    assert_eq!(s["bytes_written"], 8192, "{}", show(&out));
    assert_eq!(fs::metadata(p.dst.join("db/table")).unwrap().ino(), ino);
    assert!(fs::read(p.dst.join("db/table")).unwrap() == fs::read(p.src.join("db/table")).unwrap());
    let out = opsync()
        .arg("verify")
        .arg(&p.src)
        .arg(&p.dst)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
}

#[test]
fn verify_takes_its_value_only_with_an_equals_sign() {
    let p = pair();
    // `--verify SRC DST`: SRC is not taken as the value of --verify.
    let out = sync(&["--verify"], &p);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let bad = sync(&["--verify=sometimes"], &p);
    assert_eq!(bad.status.code(), Some(1), "{}", show(&bad));
}
