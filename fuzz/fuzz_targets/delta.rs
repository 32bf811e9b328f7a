//! Delta application on arbitrary old and new contents: `differing_runs` never panics and its
//! runs are block-aligned, sorted, merged and within the new content, and patching the old
//! content with them gives the new one; `delta::build` on real files (in `/dev/shm`, so the
//! base is a kernel copy, not a reflink) gives exactly the new content, checked, and never
//! writes more than the new length.
#![no_main]

use std::fs::{self, File, OpenOptions};
use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;
use std::sync::OnceLock;
use std::sync::atomic::AtomicBool;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use sync_engine::delta::{self, BLOCK, BaseCopy, Outcome};

#[derive(Arbitrary, Debug)]
struct Input {
    /// Repeated to make both contents, so most blocks are equal.
    base: Vec<u8>,
    old_len: u16,
    new_len: u16,
    /// (position, byte) changes made to the new content.
    edits: Vec<(u16, u8)>,
}

const MAX: usize = 5 * BLOCK + 123;

fn cycled(base: &[u8], len: usize) -> Vec<u8> {
    if base.is_empty() {
        return vec![0; len];
    }
    base.iter().copied().cycle().take(len).collect()
}

fn dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let d = PathBuf::from(format!("/dev/shm/opsync-fuzz-delta-{}", std::process::id()));
        fs::create_dir_all(&d).expect("a directory in /dev/shm");
        d
    })
}

fn file(name: &str, data: &[u8]) -> File {
    let p = dir().join(name);
    fs::write(&p, data).expect("write a fuzz file");
    File::open(&p).expect("open a fuzz file")
}

fuzz_target!(|input: Input| {
    let old = cycled(&input.base, usize::from(input.old_len) % MAX);
    let mut new = cycled(&input.base, usize::from(input.new_len) % MAX);
    if !new.is_empty() {
        for (pos, b) in &input.edits {
            let n = new.len();
            new[usize::from(*pos) % n] = *b;
        }
    }

    // The pure part.
    let runs = delta::differing_runs(&new, &old);
    let mut patched = old.clone();
    patched.resize(new.len(), 0);
    let mut prev_end = None;
    for &(a, b) in &runs {
        assert!(
            a < b && b <= new.len(),
            "run {a}..{b} outside 0..{}",
            new.len()
        );
        assert_eq!(a % BLOCK, 0, "run start not block-aligned");
        assert!(
            b % BLOCK == 0 || b == new.len(),
            "run end not block-aligned"
        );
        if let Some(e) = prev_end {
            assert!(a > e, "runs not sorted and merged: {runs:?}");
        }
        prev_end = Some(b);
        patched[a..b].copy_from_slice(&new[a..b]);
    }
    assert_eq!(
        patched, new,
        "patching the old content with the runs does not give the new one"
    );

    // The whole build on real files.
    let src = file("src", &new);
    let old_f = file("old", &old);
    let tmp_path = dir().join("tmp");
    let _ = fs::remove_file(&tmp_path);
    let tmp: OwnedFd = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&tmp_path)
        .expect("create the temporary file")
        .into();
    let never = AtomicBool::new(false);
    let reopen = || File::open(&tmp_path).map(OwnedFd::from);
    let out = delta::build(
        src.as_fd(),
        old_f.as_fd(),
        tmp.as_fd(),
        reopen,
        BaseCopy::ReflinkOrCopy,
        delta::Pace::new(&never),
    )
    .expect("delta build on healthy files");
    match out {
        Outcome::Built(stats) => {
            assert_eq!(stats.len, new.len() as u64);
            assert!(
                stats.written <= new.len() as u64,
                "wrote more than the new length"
            );
            assert_eq!(fs::read(&tmp_path).unwrap(), new, "built content differs");
        }
        other => panic!("delta on healthy files gave {other:?}"),
    }
});
