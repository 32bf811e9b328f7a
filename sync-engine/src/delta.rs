//! Delta transfer: builds the new version of a file that already exists in DST from its old
//! version, writing only the blocks that differ, without giving up the atomic
//! temporary-file-and-rename of every copy.
//!
//! 1. The (empty) temporary file becomes a copy of the old file: a reflink (`FICLONE`: the
//!    temporary file shares the old file's blocks, nothing is written) where the filesystem
//!    supports it (XFS, Btrfs); otherwise, only with [`Delta::Always`], a `copy_file_range`
//!    from the old file, which on ext4 writes every byte again.
//! 2. SRC and the temporary file are read side by side in 1 MiB chunks; every 4 KiB block of
//!    SRC that differs at the same offset (and everything past the old end) is written into the
//!    temporary file with `pwrite`, neighbouring blocks in one call, and read back.
//! 3. Both sides are hashed with BLAKE3 as they are read (the temporary file after the writes),
//!    and the file is cut to SRC's length. Different hashes or length: the caller throws the
//!    result away and makes a whole copy. So every byte of the result is checked, in the same
//!    single pass (the old file is never read: its clone is).
//!
//! Blocks are compared at the same offset only: data shifted by an insertion is rewritten from
//! the insertion point on (still correct, just not smaller). Without reflink no atomic delta can
//! write less than the whole file, which is why [`Delta::Auto`] only uses it where the reflink
//! works (see the README's "Delta transfer" section for the measurements).
//!
//! The system calls (`FICLONE`, `pread`, `pwrite`) are made in [`crate::sys`].

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicU64, Ordering};

pub use crate::options::Delta;
use crate::sys;
pub use crate::sys::Pace;

/// Granularity of the comparison and of the writes.
pub const BLOCK: usize = 4096;
/// Bytes read from each side at a time.
const CHUNK: usize = 1 << 20;
/// [`Delta::Auto`] considers files from this size on: below it, a whole copy costs a few
/// milliseconds and reading the old file as well buys nothing.
pub const AUTO_MIN_SIZE: u64 = 4 << 20;

/// What a successful delta did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// The length of the new content (SRC's length as read).
    pub len: u64,
    /// Bytes written with `pwrite` (the differing blocks and the appended tail).
    pub written: u64,
    /// The base was a reflink (true) or a data copy of the old file (false).
    pub reflinked: bool,
}

/// The result of [`build`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The temporary file holds SRC's content, checked with BLAKE3.
    Built(Stats),
    /// No reflink here and copying the base was not allowed; the temporary file is untouched.
    Unsupported,
    /// The content read back differs from SRC's: the caller must make a whole copy.
    Mismatch,
}

/// How the temporary file gets the old content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BaseCopy {
    /// Only a reflink; otherwise [`Outcome::Unsupported`].
    ReflinkOnly,
    /// A reflink, or a data copy in the kernel (`copy_file_range`) when the filesystem has none.
    ReflinkOrCopy,
}

/// Builds SRC's content in the empty temporary file `tmp` from the old DST file `old`;
/// `reopen_tmp` opens the temporary file for reading.
pub fn build(
    src: BorrowedFd<'_>,
    old: BorrowedFd<'_>,
    tmp: BorrowedFd<'_>,
    reopen_tmp: impl FnOnce() -> io::Result<OwnedFd>,
    base: BaseCopy,
    pace: Pace<'_>,
) -> io::Result<Outcome> {
    let reflinked = sys::reflink(tmp, old)?;
    if !reflinked {
        if base == BaseCopy::ReflinkOnly {
            return Ok(Outcome::Unsupported);
        }
        sys::copy_data(
            old,
            tmp,
            u64::MAX,
            &sys::CopyMethod::default(),
            pace.quiet(),
        )?;
    }
    let reader = reopen_tmp()?;
    let (rs, ws) = (sys::fstat(reader.as_fd())?, sys::fstat(tmp)?);
    if (rs.st_dev, rs.st_ino) != (ws.st_dev, ws.st_ino) {
        // Something was renamed over the temporary name meanwhile: never check another file.
        return Ok(Outcome::Mismatch);
    }
    let p = patch(src, reader.as_fd(), tmp, pace)?;
    let size = sys::fstat(reader.as_fd())?.st_size as u64;
    if p.src_hash != p.tmp_hash || size != p.len {
        return Ok(Outcome::Mismatch);
    }
    Ok(Outcome::Built(Stats {
        len: p.len,
        written: p.written,
        reflinked,
    }))
}

/// What [`patch`] read and wrote.
struct Patched {
    /// BLAKE3 of SRC's bytes.
    src_hash: [u8; 32],
    /// BLAKE3 of the temporary file's bytes as read back after the writes.
    tmp_hash: [u8; 32],
    len: u64,
    written: u64,
}

/// One pass over SRC and the temporary file (which starts as a copy of the old file, read
/// through `tmp_r`, written through `tmp_w`): every [`BLOCK`] of SRC that differs is written,
/// then read back. Both sides are hashed as read, so the check covers every byte of the
/// result without a second pass; the old file itself is never read (its clone is).
fn patch(
    src: BorrowedFd<'_>,
    tmp_r: BorrowedFd<'_>,
    tmp_w: BorrowedFd<'_>,
    pace: Pace<'_>,
) -> io::Result<Patched> {
    let (mut src_hasher, mut tmp_hasher) = (blake3::Hasher::new(), blake3::Hasher::new());
    let mut sbuf = vec![0u8; CHUNK];
    let mut tbuf = vec![0u8; CHUNK];
    let (mut off, mut written) = (0u64, 0u64);
    loop {
        pace.step(off)?;
        let n = sys::pread_full(src, &mut sbuf, off)?;
        if n == 0 {
            break;
        }
        let m = sys::pread_full(tmp_r, &mut tbuf, off)?;
        src_hasher.update(&sbuf[..n]);
        let runs = differing_runs(&sbuf[..n], &tbuf[..m]);
        for &(a, b) in &runs {
            sys::pwrite_all(tmp_w, &sbuf[a..b], off + a as u64)?;
            written += (b - a) as u64;
        }
        for &(a, b) in &runs {
            if sys::pread_full(tmp_r, &mut tbuf[a..b], off + a as u64)? != b - a {
                return Err(io::Error::other("temporary file shorter than written"));
            }
        }
        tmp_hasher.update(&tbuf[..n]);
        off += n as u64;
        if n < CHUNK {
            break;
        }
    }
    sys::truncate(tmp_w, off)?;
    Ok(Patched {
        src_hash: *src_hasher.finalize().as_bytes(),
        tmp_hash: *tmp_hasher.finalize().as_bytes(),
        len: off,
        written,
    })
}

/// What [`update_in_place`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct InPlace {
    /// The length of the new content (SRC's length as read).
    pub len: u64,
    /// Bytes written (the differing blocks and the appended tail).
    pub written: u64,
}

/// `--inplace`: makes `dst` (open for reading and writing) hold SRC's content by writing only
/// the [`BLOCK`]s that differ at the same offset, then cutting it to SRC's length. Unchanged
/// blocks are compared byte for byte and written ones read back and compared, so every byte of
/// the result is checked against what was read from SRC. The chunks of a large file are
/// compared in parallel (reading both sides is most of the cost). Not atomic: the caller makes
/// sure that nobody depends on the old content meanwhile (see `Applier::update_in_place`).
pub fn update_in_place(
    src: BorrowedFd<'_>,
    dst: BorrowedFd<'_>,
    pace: Pace<'_>,
) -> io::Result<InPlace> {
    use rayon::prelude::*;
    let old_len = sys::fstat(dst)?.st_size as u64;
    let len = sys::fstat(src)?.st_size as u64;
    let chunks = len.div_ceil(CHUNK as u64);
    let written = AtomicU64::new(0);
    // The end of SRC as read: the first chunk that came back short, else SRC's length.
    let short = AtomicU64::new(u64::MAX);
    // Bytes of SRC compared so far, in whatever order the chunks finish (for the progress).
    let done = AtomicU64::new(0);
    (0..chunks).into_par_iter().try_for_each(|i| {
        let off = i * CHUNK as u64;
        let want = (len - off).min(CHUNK as u64) as usize;
        let (n, w) = sys::with_buffers(want, |sbuf, dbuf| patch_chunk(src, dst, off, sbuf, dbuf))?;
        written.fetch_add(w, Ordering::Relaxed);
        if n < want {
            short.fetch_min(off + n as u64, Ordering::Relaxed);
        }
        pace.step(done.fetch_add(want as u64, Ordering::Relaxed) + want as u64)
    })?;
    let mut end = short.into_inner().min(len);
    if end == len {
        // SRC grew meanwhile: the tail too (the caller's before/after check sees the change).
        loop {
            let (n, w) =
                sys::with_buffers(CHUNK, |sbuf, dbuf| patch_chunk(src, dst, end, sbuf, dbuf))?;
            written.fetch_add(w, Ordering::Relaxed);
            end += n as u64;
            if n < CHUNK {
                break;
            }
        }
    }
    if old_len != end {
        sys::truncate(dst, end)?;
    }
    Ok(InPlace {
        len: end,
        written: written.into_inner(),
    })
}

/// Makes the `sbuf.len()` bytes of `dst` at `off` equal SRC's: returns the bytes read from SRC
/// (fewer at its end) and the bytes written.
fn patch_chunk(
    src: BorrowedFd<'_>,
    dst: BorrowedFd<'_>,
    off: u64,
    sbuf: &mut [u8],
    dbuf: &mut [u8],
) -> io::Result<(usize, u64)> {
    let n = sys::pread_full(src, sbuf, off)?;
    if n == 0 {
        return Ok((0, 0));
    }
    let m = sys::pread_full(dst, &mut dbuf[..n], off)?;
    let runs = differing_runs(&sbuf[..n], &dbuf[..m]);
    let mut written = 0;
    for &(a, b) in &runs {
        sys::pwrite_all(dst, &sbuf[a..b], off + a as u64)?;
        written += (b - a) as u64;
    }
    for &(a, b) in &runs {
        let got = sys::pread_full(dst, &mut dbuf[a..b], off + a as u64)?;
        if got != b - a || dbuf[a..b] != sbuf[a..b] {
            return Err(io::Error::other(
                "the blocks written in place read back different data",
            ));
        }
    }
    Ok((n, written))
}

/// The byte ranges of `new` whose [`BLOCK`]s differ from `old` at the same offset (a block past
/// `old`'s end differs), neighbouring blocks merged.
pub fn differing_runs(new: &[u8], old: &[u8]) -> Vec<(usize, usize)> {
    let mut runs: Vec<(usize, usize)> = Vec::new();
    for start in (0..new.len()).step_by(BLOCK) {
        let end = (start + BLOCK).min(new.len());
        let same = old.get(start..end).is_some_and(|o| o == &new[start..end]);
        if same {
            continue;
        }
        match runs.last_mut() {
            Some(last) if last.1 == start => last.1 = end,
            _ => runs.push((start, end)),
        }
    }
    runs
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::fs;
    use std::path::Path;
    use std::sync::atomic::AtomicBool;

    use crate::{NoObserver, Options};

    /// Builds `new` from `old` with a delta in a temporary directory; returns the built bytes
    /// and the outcome.
    fn run(old: &[u8], new: &[u8], base: BaseCopy) -> (Vec<u8>, Outcome) {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("old"), old).unwrap();
        fs::write(dir.path().join("new"), new).unwrap();
        let dfd = sys::open_dir_path(dir.path()).unwrap();
        let src = sys::open_read_at(dfd.as_fd(), b"new").unwrap();
        let oldf = sys::open_read_at(dfd.as_fd(), b"old").unwrap();
        let tmp = sys::create_file_at(dfd.as_fd(), b"tmp").unwrap();
        let never = AtomicBool::new(false);
        let reopen = || sys::open_read_at(dfd.as_fd(), b"tmp");
        let out = build(
            src.as_fd(),
            oldf.as_fd(),
            tmp.as_fd(),
            reopen,
            base,
            Pace::new(&never),
        )
        .unwrap();
        (fs::read(dir.path().join("tmp")).unwrap(), out)
    }

    fn blocks_differing(new: &[u8], old: &[u8]) -> u64 {
        differing_runs(new, old)
            .iter()
            .map(|(a, b)| (b - a) as u64)
            .sum()
    }

    #[derive(Debug, Clone)]
    enum Edit {
        Overwrite(usize, Vec<u8>),
        Insert(usize, Vec<u8>),
        Truncate(usize),
        Append(Vec<u8>),
    }

    fn edit() -> impl Strategy<Value = Edit> {
        let bytes = proptest::collection::vec(any::<u8>(), 0..9000);
        prop_oneof![
            (any::<usize>(), bytes.clone()).prop_map(|(p, b)| Edit::Overwrite(p, b)),
            (any::<usize>(), bytes.clone()).prop_map(|(p, b)| Edit::Insert(p, b)),
            any::<usize>().prop_map(Edit::Truncate),
            bytes.prop_map(Edit::Append),
        ]
    }

    fn apply_edit(data: &mut Vec<u8>, e: &Edit) {
        match e {
            Edit::Overwrite(p, b) => {
                let p = p % (data.len() + 1);
                let end = (p + b.len()).min(data.len());
                data[p..end].copy_from_slice(&b[..end - p]);
            }
            Edit::Insert(p, b) => {
                let p = p % (data.len() + 1);
                data.splice(p..p, b.iter().copied());
            }
            Edit::Truncate(n) => data.truncate(n % (data.len() + 1)),
            Edit::Append(b) => data.extend_from_slice(b),
        }
    }

    /// Old content: a seeded pseudo-random file of up to about 2.5 MiB (crosses the 1 MiB chunk
    /// boundaries).
    fn old_content() -> impl Strategy<Value = Vec<u8>> {
        (0usize..(5 << 19), any::<u64>()).prop_map(|(len, seed)| {
            let mut rng = fastrand::Rng::with_seed(seed);
            let mut v = vec![0u8; len];
            rng.fill(&mut v);
            v
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        #[test]
        fn delta_reproduces_the_source_after_random_edits(
            old in old_content(),
            edits in proptest::collection::vec(edit(), 0..6),
        ) {
            let mut new = old.clone();
            for e in &edits {
                apply_edit(&mut new, e);
            }
            let (built, out) = run(&old, &new, BaseCopy::ReflinkOrCopy);
            prop_assert!(built == new, "built content differs ({} vs {} bytes)", built.len(), new.len());
            let Outcome::Built(stats) = out else {
                panic!("expected a built file, got {out:?}");
            };
            prop_assert_eq!(stats.len, new.len() as u64);
            prop_assert_eq!(stats.written, blocks_differing(&new, &old));
        }
    }

    /// Updates a file holding `old` in place to `new`; returns the result and what was done.
    fn run_in_place(old: &[u8], new: &[u8]) -> (Vec<u8>, InPlace) {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("old"), old).unwrap();
        fs::write(dir.path().join("new"), new).unwrap();
        let dfd = sys::open_dir_path(dir.path()).unwrap();
        let src = sys::open_read_at(dfd.as_fd(), b"new").unwrap();
        let dst = sys::open_update_at(dfd.as_fd(), b"old").unwrap();
        let never = AtomicBool::new(false);
        let out = update_in_place(src.as_fd(), dst.as_fd(), Pace::new(&never)).unwrap();
        (fs::read(dir.path().join("old")).unwrap(), out)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        #[test]
        fn in_place_update_reproduces_the_source_writing_only_differing_blocks(
            old in old_content(),
            edits in proptest::collection::vec(edit(), 0..6),
        ) {
            let mut new = old.clone();
            for e in &edits {
                apply_edit(&mut new, e);
            }
            let (built, out) = run_in_place(&old, &new);
            prop_assert!(built == new, "updated content differs ({} vs {} bytes)", built.len(), new.len());
            prop_assert_eq!(out.len, new.len() as u64);
            prop_assert_eq!(out.written, blocks_differing(&new, &old));
        }
    }

    #[test]
    fn in_place_update_of_identical_or_empty_files() {
        for (old, new) in [
            (&b""[..], &b""[..]),
            (b"", b"something"),
            (b"something", b""),
            (b"same", b"same"),
        ] {
            let (built, out) = run_in_place(old, new);
            assert_eq!(built, new);
            assert_eq!(out.written, blocks_differing(new, old));
        }
    }

    #[test]
    fn empty_files_in_every_direction() {
        for (old, new) in [
            (&b""[..], &b""[..]),
            (b"", b"something"),
            (b"something", b""),
        ] {
            let (built, out) = run(old, new, BaseCopy::ReflinkOrCopy);
            assert_eq!(built, new);
            assert!(matches!(out, Outcome::Built(_)), "{out:?}");
        }
    }

    #[test]
    fn in_place_edits_write_only_the_changed_blocks() {
        let mut old = vec![0u8; 3 * CHUNK + 123];
        fastrand::Rng::with_seed(7).fill(&mut old);
        let mut new = old.clone();
        for at in [0, 5000, CHUNK - 1, 2 * CHUNK + 4096] {
            new[at] ^= 0xff;
        }
        let (built, out) = run(&old, &new, BaseCopy::ReflinkOrCopy);
        assert_eq!(built, new);
        let Outcome::Built(stats) = out else {
            panic!("{out:?}")
        };
        // CHUNK - 1 and CHUNK - 4096 + ... sit in the same block: 4 blocks, 4 writes.
        assert_eq!(stats.written, 4 * BLOCK as u64);
    }

    #[test]
    fn a_huge_sparse_file_with_a_changed_middle_and_a_longer_tail() {
        let dir = tempfile::tempdir().unwrap();
        let len: u64 = 96 << 20;
        let old = fs::File::create(dir.path().join("old")).unwrap();
        old.set_len(len).unwrap();
        drop(old);
        let new = fs::File::create(dir.path().join("new")).unwrap();
        new.set_len(len + (64 << 10) + 17).unwrap();
        {
            use std::os::unix::fs::FileExt;
            new.write_all_at(&[1u8; 64 << 10], len / 2).unwrap();
            new.write_all_at(b"tail", len + (64 << 10) + 13).unwrap();
        }
        drop(new);
        let dfd = sys::open_dir_path(dir.path()).unwrap();
        let src = sys::open_read_at(dfd.as_fd(), b"new").unwrap();
        let oldf = sys::open_read_at(dfd.as_fd(), b"old").unwrap();
        let tmp = sys::create_file_at(dfd.as_fd(), b"tmp").unwrap();
        let never = AtomicBool::new(false);
        let reopen = || sys::open_read_at(dfd.as_fd(), b"tmp");
        let out = build(
            src.as_fd(),
            oldf.as_fd(),
            tmp.as_fd(),
            reopen,
            BaseCopy::ReflinkOrCopy,
            Pace::new(&never),
        )
        .unwrap();
        let Outcome::Built(stats) = out else {
            panic!("{out:?}")
        };
        assert_eq!(stats.len, len + (64 << 10) + 17);
        // The 64 KiB block run in the middle, and everything past the old end.
        assert_eq!(stats.written, (64 << 10) + (64 << 10) + 17);
        let a = sys::hash_file(&sys::open_read_at(dfd.as_fd(), b"tmp").unwrap()).unwrap();
        let b = sys::hash_file(&src).unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn reflink_only_leaves_the_temporary_file_empty_where_there_is_no_reflink() {
        let (built, out) = run(b"old content", b"new content", BaseCopy::ReflinkOnly);
        match out {
            Outcome::Unsupported => assert!(built.is_empty()),
            Outcome::Built(s) => {
                assert!(s.reflinked);
                assert_eq!(built, b"new content");
            }
            Outcome::Mismatch => panic!("mismatch"),
        }
    }

    fn write_tree(root: &Path, name: &str, data: &[u8]) {
        fs::create_dir_all(root).unwrap();
        fs::write(root.join(name), data).unwrap();
    }

    #[test]
    fn sync_with_delta_always_transfers_an_insertion_in_the_middle() {
        let dir = tempfile::tempdir().unwrap();
        let (src, dst) = (dir.path().join("src"), dir.path().join("dst"));
        let mut data = vec![0u8; 3 << 20];
        fastrand::Rng::with_seed(3).fill(&mut data);
        write_tree(&src, "big", &data);
        for delta in [Delta::Always, Delta::Auto, Delta::Never] {
            let opts = Options {
                delta,
                ..Options::default()
            };
            crate::sync(&src, &dst, &opts, &NoObserver).unwrap();
            let mid = data.len() / 2;
            data.splice(mid..mid, [9u8; 65536]);
            data.extend_from_slice(&[7u8; 1 << 20]);
            fs::write(src.join("big"), &data).unwrap();
            filetime::set_file_mtime(src.join("big"), filetime::FileTime::from_unix_time(1, 0))
                .unwrap();
            let report = crate::sync(&src, &dst, &opts, &NoObserver).unwrap();
            assert_eq!(report.files_copied, 1, "{delta:?}");
            assert!(fs::read(dst.join("big")).unwrap() == data, "{delta:?}");
            let leftovers: Vec<_> = fs::read_dir(&dst).unwrap().collect();
            assert_eq!(leftovers.len(), 1, "{delta:?}: no temporary file is left");
        }
    }
}
