//! What a run did: the [`Observer`] trait through which the engine reports events as they
//! happen (the binary turns them into itemize lines, JSON or a progress bar), and the final
//! [`Report`] with counts and the run's [`Status`].

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::error::FileError;
use crate::listing::Kind;
use crate::plan::{Op, PlanCounts};

/// One change made (or, in a dry run, that would be made).
#[derive(Debug, Clone, Copy)]
pub struct Item<'a> {
    /// rsync's 11-character itemize field.
    pub field: [u8; 11],
    pub op: Op,
    pub kind: Kind,
    /// Path relative to the root (empty for the root itself).
    pub path: &'a [u8],
    /// Symlink target, for created or changed symlinks.
    pub link: Option<&'a [u8]>,
    /// Bytes written, for copies.
    pub bytes: u64,
}

/// A non-fatal oddity that is not an error of this run.
#[derive(Debug, Clone, Copy)]
pub enum Warning<'a> {
    /// A source entry disappeared before it could be copied (rsync exit 24).
    Vanished { path: &'a [u8] },
    /// A source file kept changing while it was copied; the last version read was kept.
    ChangedDuringCopy { path: &'a [u8] },
    /// A directory could not be deleted because it still holds excluded entries.
    NotEmpty { path: &'a [u8] },
}

/// Receives events during a run. Called from worker threads; every method has a default that
/// ignores the event.
pub trait Observer: Sync {
    /// True when [`Observer::item`] wants events (building paths costs a little).
    fn wants_items(&self) -> bool {
        false
    }
    fn item(&self, _item: &Item<'_>) {}
    fn error(&self, _err: &FileError) {}
    fn warning(&self, _w: &Warning<'_>) {}
    /// The plan is ready.
    fn planned(&self, _counts: &PlanCounts) {}
    /// `bytes` more were copied: while a file is copied (between the chunks of its copy, when
    /// [`Observer::wants_file_progress`]) and the rest when it is done, so a file's bytes add
    /// up to its size.
    fn progress(&self, _bytes: u64) {}
    /// True when [`Observer::copying`] wants events: each copy then reports how far it got
    /// between its chunks (64 MiB in the kernel, less in user space), and each file's path is
    /// built once more.
    fn wants_file_progress(&self) -> bool {
        false
    }
    /// `done` of the `size` bytes of the file at `path` (relative to the root) are copied:
    /// once with 0 when its copy starts, then between its chunks. Called from the thread
    /// copying it, several files at a time with `threads > 1`.
    fn copying(&self, _path: &[u8], _done: u64, _size: u64) {}
    /// The copy of the file at `path` ended, complete or not; its [`Observer::item`] (or its
    /// error) comes when the run's order reaches it.
    fn copy_ended(&self, _path: &[u8]) {}
    /// A directory of SRC was read: `entries` more entries, `bytes` more in regular files and
    /// symlink targets (rsync's total size).
    fn scanned(&self, _entries: u64, _bytes: u64) {}
    /// `entries` of a directory of SRC just planned are checked now: its subdirectories and
    /// the entries that need nothing; the lines of the others follow (for rsync's count of the
    /// entries left to check).
    fn unchanged(&self, _entries: u64) {}
    /// Every directory of SRC has been read (rsync's `to-chk` instead of `ir-chk`).
    fn scan_done(&self) {}
    /// [`crate::verify::verify`] found a difference.
    fn difference(&self, _d: &crate::verify::Difference) {}
}

/// An observer that ignores everything.
pub struct NoObserver;
impl Observer for NoObserver {}

/// How a run ended, worst first when combined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Status {
    Ok,
    /// Some source files vanished (rsync 24).
    Vanished,
    /// `--max-delete` stopped deletions (rsync 25).
    DeleteLimit,
    /// Some entries failed (rsync 23).
    Partial,
    /// Stopped by a cancel request (rsync 20).
    Cancelled,
}

/// Counts of a finished run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct Report {
    pub dry_run: bool,
    /// Entries in SRC (root excluded), regular files among them, and their total size.
    pub src_entries: u64,
    pub src_files: u64,
    pub src_bytes: u64,
    /// Directories (root excluded), symlinks, devices and special files (FIFOs, sockets) among
    /// SRC's entries (rsync's `--stats` breakdown).
    pub src_dirs: u64,
    pub src_symlinks: u64,
    pub src_devices: u64,
    pub src_specials: u64,
    /// The lengths of SRC's symlink targets (rsync counts them in the total size).
    pub src_link_bytes: u64,
    /// Entries in DST before the run (root excluded).
    pub dst_entries: u64,
    pub files_copied: u64,
    /// Sizes of the files copied.
    pub bytes_copied: u64,
    /// Bytes written into DST files: all of a whole copy, the changed blocks of a delta or an
    /// in-place update (rsync's "literal data").
    pub bytes_written: u64,
    /// Files whose contents were compared because their size and mtime could not be trusted
    /// (racy copies, files to recheck; `--checksum` not counted).
    pub rechecked: u64,
    /// Files whose source kept changing while they were copied: their copies get attributes
    /// that make the next run copy them again.
    pub unstable: u64,
    /// Files whose written content was compared with SRC byte for byte (deltas, in-place
    /// updates, and whole copies with `verify_written`).
    pub verified: u64,
    pub created: u64,
    pub deleted: u64,
    pub attrs_fixed: u64,
    pub errors: u64,
    pub vanished: u64,
    /// Deletions were skipped because reading the source failed somewhere.
    pub deletions_disabled: bool,
    pub delete_limited: bool,
    pub cancelled: bool,
}

impl Report {
    /// The run's outcome.
    pub fn status(&self) -> Status {
        if self.cancelled {
            Status::Cancelled
        } else if self.errors > 0 {
            Status::Partial
        } else if self.delete_limited {
            Status::DeleteLimit
        } else if self.vanished > 0 {
            Status::Vanished
        } else {
            Status::Ok
        }
    }
}

/// Counters updated from worker threads.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub files_copied: AtomicU64,
    pub bytes_copied: AtomicU64,
    pub literal_bytes: AtomicU64,
    pub unstable: AtomicU64,
    pub verified: AtomicU64,
    pub src_entries: AtomicU64,
    pub src_files: AtomicU64,
    pub src_bytes: AtomicU64,
    pub src_dirs: AtomicU64,
    pub src_symlinks: AtomicU64,
    pub src_devices: AtomicU64,
    pub src_specials: AtomicU64,
    pub src_link_bytes: AtomicU64,
    pub dst_entries: AtomicU64,
    pub rechecked: AtomicU64,
    pub created: AtomicU64,
    pub deleted: AtomicU64,
    pub attrs_fixed: AtomicU64,
    pub errors: AtomicU64,
    pub vanished: AtomicU64,
    pub cancelled: AtomicBool,
}

impl Counters {
    pub fn add(c: &AtomicU64, n: u64) {
        c.fetch_add(n, Ordering::Relaxed);
    }

    pub fn fill(&self, r: &mut Report) {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        r.files_copied = g(&self.files_copied);
        r.bytes_copied = g(&self.bytes_copied);
        r.bytes_written = g(&self.literal_bytes);
        r.unstable = g(&self.unstable);
        r.verified = g(&self.verified);
        r.src_entries = g(&self.src_entries);
        r.src_files = g(&self.src_files);
        r.src_bytes = g(&self.src_bytes);
        r.src_dirs = g(&self.src_dirs);
        r.src_symlinks = g(&self.src_symlinks);
        r.src_devices = g(&self.src_devices);
        r.src_specials = g(&self.src_specials);
        r.src_link_bytes = g(&self.src_link_bytes);
        r.dst_entries = g(&self.dst_entries);
        r.rechecked = g(&self.rechecked);
        r.created = g(&self.created);
        r.deleted = g(&self.deleted);
        r.attrs_fixed = g(&self.attrs_fixed);
        r.errors += g(&self.errors);
        r.vanished += g(&self.vanished);
        r.cancelled = self.cancelled.load(Ordering::Relaxed);
    }
}
