//! `opsync verify` finds every kind of difference between a tree and its mirror: one flipped
//! byte in one file among many (same size, same mtime), mode, owner, group, mtime, symlink
//! target, a missing entry, an extra entry and a changed type; and reports nothing (exit 0)
//! for an exact mirror.

use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::Output;

use filetime::FileTime;
use opsync_tests::opsync;

const FILES: usize = 1_000;

/// A tree of `FILES` small files in 20 directories plus a symlink, and its mirror made by
/// `opsync sync`.
struct Pair {
    _dir: tempfile::TempDir,
    src: PathBuf,
    dst: PathBuf,
}

fn pair() -> Pair {
    let dir = tempfile::tempdir().unwrap();
    let (src, dst) = (dir.path().join("src"), dir.path().join("dst"));
    let mut rng = fastrand::Rng::with_seed(11);
    for d in 0..20 {
        fs::create_dir_all(src.join(format!("d{d:02}"))).unwrap();
    }
    for i in 0..FILES {
        let mut data = vec![0u8; rng.usize(1..3000)];
        rng.fill(&mut data);
        fs::write(src.join(format!("d{:02}/f{i:04}", i % 20)), data).unwrap();
    }
    symlink("d00/f0000", src.join("link")).unwrap();
    let out = opsync().arg("sync").arg(&src).arg(&dst).output().unwrap();
    assert!(out.status.success(), "sync failed: {out:?}");
    Pair {
        _dir: dir,
        src,
        dst,
    }
}

fn verify(p: &Pair, json: bool) -> Output {
    let mut c = opsync();
    c.arg("verify").arg(&p.src).arg(&p.dst);
    if json {
        c.arg("--json");
    }
    c.output().unwrap()
}

/// Changes one file of DST without changing its size or its mtime (nor its directory's).
fn flip_byte(path: &Path) {
    let meta = fs::metadata(path).unwrap();
    let mut data = fs::read(path).unwrap();
    let mid = data.len() / 2;
    data[mid] ^= 0x01;
    fs::write(path, data).unwrap();
    filetime::set_file_mtime(path, FileTime::from_last_modification_time(&meta)).unwrap();
}

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

#[test]
fn an_exact_mirror_has_no_difference() {
    let p = pair();
    let out = verify(&p, false);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(
        out.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn one_flipped_byte_among_many_files_is_the_only_difference() {
    let p = pair();
    flip_byte(&p.dst.join("d07/f0707"));
    let out = verify(&p, false);
    assert_eq!(out.status.code(), Some(8), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "d07/f0707: content differs\n"
    );
}

#[test]
fn every_kind_of_difference_is_reported() {
    type Change = fn(&Path);
    let cases: &[(&str, Change, &str)] = &[
        (
            "mode",
            |d| {
                fs::set_permissions(d.join("d01/f0001"), fs::Permissions::from_mode(0o600)).unwrap()
            },
            "d01/f0001: mode 0644 != 0600",
        ),
        (
            "mtime",
            |d| {
                filetime::set_file_mtime(d.join("d02/f0002"), FileTime::from_unix_time(1, 5))
                    .unwrap()
            },
            "d02/f0002: mtime ",
        ),
        (
            "symlink target",
            |d| {
                fs::remove_file(d.join("link")).unwrap();
                symlink("d00/f0020", d.join("link")).unwrap();
            },
            "link: symlink target differs",
        ),
        (
            "missing",
            |d| fs::remove_file(d.join("d03/f0003")).unwrap(),
            "d03/f0003: missing in DST",
        ),
        (
            "extra",
            |d| fs::write(d.join("d04/extra"), b"x").unwrap(),
            "d04/extra: not in SRC (extra in DST)",
        ),
        (
            "type",
            |d| {
                fs::remove_file(d.join("d05/f0005")).unwrap();
                fs::create_dir(d.join("d05/f0005")).unwrap();
            },
            "d05/f0005: type ",
        ),
        (
            "size",
            |d| fs::write(d.join("d06/f0006"), b"short").unwrap(),
            "d06/f0006: size ",
        ),
        (
            "content",
            |d| flip_byte(&d.join("d08/f0008")),
            "d08/f0008: content differs",
        ),
    ];
    for (name, change, expected) in cases {
        let p = pair();
        change(&p.dst);
        let out = verify(&p, false);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(8), "{name}: {out:?}");
        assert!(
            stdout.lines().any(|l| l.starts_with(expected)),
            "{name}: expected a line starting with {expected:?}, got:\n{stdout}"
        );
    }
}

#[test]
fn owner_and_group_differences_are_reported() {
    if !is_root() {
        eprintln!("owner_and_group_differences_are_reported: needs root to chown, not run");
        return;
    }
    let p = pair();
    let f = p.dst.join("d09/f0009");
    let g = p.dst.join("d10/f0010");
    rustix::fs::chown(&f, Some(rustix::fs::Uid::from_raw(4321)), None).unwrap();
    rustix::fs::chown(&g, None, Some(rustix::fs::Gid::from_raw(4321))).unwrap();
    let out = verify(&p, false);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(8), "{out:?}");
    assert!(stdout.contains("d09/f0009: owner 0 != 4321"), "{stdout}");
    assert!(stdout.contains("d10/f0010: group 0 != 4321"), "{stdout}");
}

#[test]
fn json_lists_the_difference_and_a_summary() {
    let p = pair();
    flip_byte(&p.dst.join("d11/f0011"));
    let out = verify(&p, true);
    assert_eq!(out.status.code(), Some(8), "{out:?}");
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert_eq!(lines[0]["type"], "difference");
    assert_eq!(lines[0]["path"], "d11/f0011");
    assert_eq!(lines[0]["what"], "content differs");
    assert_eq!(lines[1]["type"], "verify_summary");
    assert_eq!(lines[1]["differences"], 1);
    assert_eq!(lines[1]["files_hashed"], FILES as u64);
}
