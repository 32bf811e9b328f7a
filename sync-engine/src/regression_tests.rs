//! Regression tests for engine bugs found by the fault-injection and fuzz work, each named after
//! the bug. They run [`crate::sync`] on real temporary trees.

use std::fs;
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
