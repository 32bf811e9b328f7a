//! Racily clean copies: when the quick check (size and mtime) cannot be trusted.
//!
//! A file's mtime only moves when the kernel's clock for file timestamps has ticked since the
//! last write. On kernels without multigrain timestamps (before 6.13, for example Debian 12's
//! 6.1) and on filesystems that keep coarse timestamps (ramfs, FAT), that clock moves in steps
//! of milliseconds or seconds. A source file written again within the same step after opsync
//! read it keeps its size and mtime, so a later quick check would skip a copy that is stale.
//!
//! As git does for "racily clean" index entries, opsync records when it read the content of
//! every copy and distrusts a copy whose source mtime is not clearly older than that moment:
//!
//! - every file copy gives the new DST file an access time equal to the moment the copy began
//!   reading SRC (its *stamp*; rsync and `cp` without `-U`/`--preserve=timestamps` leave the
//!   access time at the moment of the copy as well, so the stamp means the same for their copies);
//! - the next run compares a DST file whose size and mtime match SRC by content when its mtime
//!   is not older than its stamp minus [`WINDOW`] (mtimes in the future included);
//! - when that comparison finds equal contents and the mtime is by then clearly older than the
//!   moment of the comparison, the stamp is moved to that moment, so the file is compared once,
//!   not on every run.
//!
//! The stamp is the DST file's access time: a program that reads the copy before the next run
//! on a filesystem mounted with `relatime` or `strictatime` moves it forward, and the copy is
//! then trusted by its size and mtime again. The nightly job keeps the dev stack stopped from
//! pass 1 to pass 2, and pass 2 runs with production quiesced, so its copies are read in a
//! stable state.

use crate::listing::Time;

/// How much older than the moment its copy was read a source mtime must be for the copy to be
/// trusted by size and mtime: two seconds, the coarsest timestamp granularity of the
/// filesystems opsync meets (FAT keeps mtimes in steps of two seconds; ext4, XFS and tmpfs on
/// kernels before 6.13 in steps of one timer tick, 1 to 10 ms).
pub const WINDOW: Time = Time { sec: 2, nsec: 0 };

/// True when a file with `mtime` whose content was read at `read_at` may have been written
/// again without its mtime changing: the mtime is not clearly older than the read.
pub fn is_racy(mtime: Time, read_at: Time) -> bool {
    let limit = Time {
        sec: read_at.sec - WINDOW.sec,
        nsec: read_at.nsec,
    };
    mtime >= limit
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(sec: i64, nsec: u32) -> Time {
        Time { sec, nsec }
    }

    #[test]
    fn racy_when_the_mtime_is_not_clearly_older_than_the_read() {
        let read = t(1_000, 500);
        let cases = [
            (t(990, 0), false, "ten seconds older"),
            (t(998, 499), false, "just over the window"),
            (t(998, 500), true, "exactly the window"),
            (t(999, 999_999_999), true, "within the window"),
            (t(1_000, 500), true, "the same instant"),
            (t(5_000, 0), true, "in the future"),
        ];
        for (mtime, want, why) in cases {
            assert_eq!(is_racy(mtime, read), want, "{why}");
        }
    }
}
