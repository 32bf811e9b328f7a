//! Writing the content of one file: a whole copy into a temporary file (read back when
//! `verify_written` asks), a delta from DST's old version ([`crate::delta`]), or an in-place
//! update (`--inplace`); each checks that SRC did not change while it was read and gives the
//! copy its stamp (see [`crate::racy`]).

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::delta::{self, BaseCopy, Delta, Outcome};
use crate::error::Side;
use crate::listing::{Idx, Kind, Meta, NONE, Time};
use crate::plan::{Action, same_time};
use crate::report::{Counters, Warning};
use crate::sys;

use super::Applier;

impl Applier<'_> {
    pub(super) fn copy(&self, d: BorrowedFd<'_>, s: BorrowedFd<'_>, a: &Action) {
        // Bytes already reported as copied while the copy went on (see `Observer::copying`).
        let reported = AtomicU64::new(0);
        let path = self
            .obs
            .wants_file_progress()
            .then(|| self.full(self.src, a.src));
        let size = self.src.meta(a.src).size;
        let report = |done: u64| {
            let done = done.min(size);
            let before = reported.fetch_max(done, Ordering::Relaxed);
            if done > before {
                self.obs.progress(done - before);
            }
            if let Some(p) = &path
                && done >= before
            {
                self.obs.copying(p, done, size);
            }
        };
        let pace = match &path {
            Some(_) => sys::Pace::reporting(self.cancel, &report),
            None => sys::Pace::new(self.cancel),
        };
        let copied = self.copy_file(d, s, a, pace);
        if let Some(p) = &path {
            self.obs.copy_ended(p);
        }
        match copied {
            Some(c) => self.copied(a, &c, reported.load(Ordering::Relaxed)),
            None => self.skip(a.slot),
        }
    }

    /// Copies the file of action `a`; `None` when it was not (reported already). SRC's file
    /// is not stat-ed before it is read: the scan's attributes are the "before" that the
    /// `fstat` after the read is compared with, so a change since the scan is caught too.
    fn copy_file(
        &self,
        d: BorrowedFd<'_>,
        s: BorrowedFd<'_>,
        a: &Action,
        pace: sys::Pace<'_>,
    ) -> Option<Copied> {
        let name = self.src.name(a.src);
        let before = *self.src.meta(a.src);
        let src = match sys::open_read_at(s, name) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                self.warn_vanished(a.src);
                return None;
            }
            Err(e) => {
                self.fail("open", Side::Source, self.src, a.src, e);
                return None;
            }
        };
        if self.inplace {
            match self.update_in_place(d, &src, before, a, pace) {
                Ok(Some(c)) => return Some(c),
                Ok(None) => {}
                Err(e) => return self.copy_failed(&src, "update in place", a, e),
            }
        }
        let (created, exact) = self.creation_mode(d, before.perm);
        let made = sys::with_temp_name(name, |t| sys::create_file_mode_at(d, t, created));
        let (tmpf, tmp) = match made {
            Ok(v) => v,
            Err(e) => {
                self.fail("create temporary file for", Side::Dest, self.src, a.src, e);
                return None;
            }
        };
        let r = self
            .delta_into(d, &src, before, (&tmpf, &tmp), a, pace)
            .transpose()
            .unwrap_or_else(|| self.copy_checked(&src, before, &tmpf, a.src, pace))
            .and_then(|c| {
                let owner = self.new_file_owner(tmpf.as_fd(), &c.meta)?;
                // Not exact: the umask or a default ACL may have changed the mode the file was
                // created with, even when it is the one wanted.
                let chmod = !exact || c.meta.perm != created;
                sys::set_attrs_fd_with(tmpf.as_fd(), &c.meta, owner, chmod, Some(c.read_at))?;
                self.put_xattrs(sys::XattrTarget::Fd(tmpf.as_fd()), None, a.src)?;
                if self.fsync {
                    sys::fsync(tmpf.as_fd())?;
                }
                sys::rename_at(d, tmp.as_bytes(), name)?;
                Ok(c)
            });
        match r {
            Ok(c) => Some(c),
            Err(e) => {
                let _ = sys::unlink_at(d, tmp.as_bytes(), false);
                self.copy_failed(&src, "copy", a, e)
            }
        }
    }

    /// Reports a failed copy: as a vanished file when SRC's name no longer holds a regular
    /// file (a FIFO or device swapped in is never copied), else as an error.
    fn copy_failed(
        &self,
        src: &OwnedFd,
        op: &'static str,
        a: &Action,
        e: io::Error,
    ) -> Option<Copied> {
        let regular = matches!(sys::fstat(src.as_fd()).map(|st| sys::meta_of(&st)),
            Ok(Some(m)) if m.kind == Kind::File);
        if regular || e.kind() == io::ErrorKind::Interrupted {
            self.fail(op, Side::Dest, self.src, a.src, e);
        } else {
            self.warn_vanished(a.src);
        }
        None
    }

    /// The mode a temporary file for a file with permissions `perm` is created with: `perm`
    /// itself when the kernel will give it exactly that (no setuid/setgid/sticky bit, readable
    /// and writable by its owner, nothing the umask clears, no default ACL in the directory,
    /// no `-A`), so no `fchmod` follows; else 0600 until the content is complete, and then an
    /// `fchmod` (the second value: whether the mode is exact).
    fn creation_mode(&self, d: BorrowedFd<'_>, perm: u32) -> (u32, bool) {
        let exact = perm & 0o7000 == 0
            && perm & 0o600 == 0o600
            && !self.xattrs.acls
            && self.umask.is_some_and(|u| u & perm == 0)
            && !*self
                .new_files
                .default_acl
                .get_or_init(|| sys::may_have_default_acl(d));
        if exact { (perm, true) } else { (0o600, false) }
    }

    /// The owner and group to set on a new file created in this directory: only what differs
    /// from what the kernel gave it (learned from the first new file of the directory).
    fn new_file_owner(&self, tmp: BorrowedFd<'_>, meta: &Meta) -> io::Result<sys::Owner> {
        let want = self.owners.for_meta(meta);
        if want.uid.is_none() && want.gid.is_none() {
            return Ok(want);
        }
        let (uid, gid) = match self.new_files.owner.get() {
            Some(&v) => v,
            None => {
                let st = sys::fstat(tmp)?;
                *self.new_files.owner.get_or_init(|| (st.st_uid, st.st_gid))
            }
        };
        Ok(sys::Owner {
            uid: want.uid.filter(|&u| u != uid),
            gid: want.gid.filter(|&g| g != gid),
        })
    }

    /// Reports a finished copy (`reported`: bytes of it reported while it was copied).
    fn copied(&self, a: &Action, c: &Copied, reported: u64) {
        let size = c.meta.size;
        self.obs.progress(size.saturating_sub(reported));
        Counters::add(&self.counters.literal_bytes, c.written);
        if c.verified {
            Counters::add(&self.counters.verified, 1);
        }
        self.count(a, size);
        self.emit_action(a, size);
    }

    /// Builds the new content from DST's old file with a delta when `--delta` allows it. `None`:
    /// no delta was made and the temporary file is empty again, so a whole copy follows.
    fn delta_into(
        &self,
        d: BorrowedFd<'_>,
        src: &OwnedFd,
        before: Meta,
        (tmpf, tmp): (&OwnedFd, &sys::TempName),
        a: &Action,
        pace: sys::Pace<'_>,
    ) -> io::Result<Option<Copied>> {
        let base = match self.delta {
            Delta::Never => return Ok(None),
            Delta::Always => BaseCopy::ReflinkOrCopy,
            Delta::Auto if before.size >= delta::AUTO_MIN_SIZE => BaseCopy::ReflinkOnly,
            Delta::Auto => return Ok(None),
        };
        if a.dst == NONE || self.dst.meta(a.dst).kind != Kind::File {
            return Ok(None);
        }
        let Ok(old) = sys::open_read_at(d, self.src.name(a.src)) else {
            return Ok(None);
        };
        if !matches!(sys::fstat(old.as_fd()).map(|st| sys::meta_of(&st)), Ok(Some(m)) if m.kind == Kind::File)
        {
            return Ok(None);
        }
        let reopen = || sys::open_read_at(d, tmp.as_bytes());
        let read_at = sys::now();
        let outcome = delta::build(src.as_fd(), old.as_fd(), tmpf.as_fd(), reopen, base, pace);
        if let Ok(Outcome::Built(stats)) = outcome {
            let after = sys::fstat(src.as_fd()).map(|st| sys::meta_of(&st))?;
            if let Some(after) = after
                && after.size == before.size
                && after.mtime == before.mtime
                && stats.len == after.size
            {
                tracing::debug!(path = %self.full(self.src, a.src).escape_ascii(), bytes = stats.len,
                    written = stats.written, reflinked = stats.reflinked, "delta");
                return Ok(Some(Copied {
                    meta: after,
                    written: stats.written,
                    read_at,
                    unstable: false,
                    verified: true,
                }));
            }
        }
        match outcome {
            Ok(Outcome::Mismatch) => tracing::warn!(
                path = %self.full(self.src, a.src).escape_ascii(),
                "delta result differs from the source: copying the whole file"
            ),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Err(e),
            _ => {}
        }
        sys::reset(tmpf.as_fd())?;
        Ok(None)
    }

    /// A whole copy, read back and compared with SRC when `verify_written` asks for it (deltas
    /// and in-place updates check every byte as they go). A copy that reads back different is
    /// made once more; then it is an error and the old version stays.
    fn copy_checked(
        &self,
        src: &OwnedFd,
        before: Meta,
        tmp: &OwnedFd,
        idx: Idx,
        pace: sys::Pace<'_>,
    ) -> io::Result<Copied> {
        let mut c = self.copy_into(src, before, tmp, idx, true, pace)?;
        if !self.verify_written || c.unstable {
            return Ok(c);
        }
        for attempt in 0..2 {
            if sys::same_content(src.as_fd(), tmp.as_fd())? {
                c.verified = true;
                return Ok(c);
            }
            if attempt == 0 {
                tracing::warn!(path = %self.full(self.src, idx).escape_ascii(),
                    "the copy reads back different from the source: copying it again");
                c = self.copy_into(src, before, tmp, idx, false, pace)?;
                if c.unstable {
                    return Ok(c);
                }
            }
        }
        Err(io::Error::other(
            "the copy read back differs from the source twice (check the disks and memory)",
        ))
    }

    /// Copies the data into `tmp` (`empty`: it is still empty) and checks that the source did
    /// not change meanwhile (size and mtime before and after); a file that changed is copied
    /// once more. If it changed during that
    /// read too, the copy is kept with attributes that make the next quick check copy it again
    /// (see [`unstable_meta`]).
    fn copy_into(
        &self,
        src: &OwnedFd,
        before: Meta,
        tmp: &OwnedFd,
        idx: Idx,
        empty: bool,
        pace: sys::Pace<'_>,
    ) -> io::Result<Copied> {
        self.read_stable(src, before, idx, |attempt, len| {
            if attempt > 0 || !empty {
                sys::reset(tmp.as_fd())?;
            }
            let n = sys::copy_data(src.as_fd(), tmp.as_fd(), len, &self.copy_method, pace)?;
            Ok((n, n))
        })
    }

    /// Runs `transfer(attempt, expected size)` (which returns the bytes of content and the bytes
    /// written) until the
    /// source's size and mtime are the same before and after it, at most twice; see
    /// [`Applier::copy_into`].
    fn read_stable(
        &self,
        src: &OwnedFd,
        mut before: Meta,
        idx: Idx,
        mut transfer: impl FnMut(u32, u64) -> io::Result<(u64, u64)>,
    ) -> io::Result<Copied> {
        let mut written = 0;
        for attempt in 0..2 {
            let read_at = sys::now();
            let (n, w) = transfer(attempt, before.size)?;
            written += w;
            #[cfg(test)]
            test_hook::after_read(&self.full(self.src, idx), attempt);
            let after = sys::fstat(src.as_fd()).map(|st| sys::meta_of(&st))?;
            let Some(after) = after.filter(|m| m.kind == Kind::File) else {
                return Err(io::Error::other("source changed type"));
            };
            if after.size == before.size && after.mtime == before.mtime && n == after.size {
                return Ok(Copied {
                    meta: after,
                    written,
                    read_at,
                    unstable: false,
                    verified: false,
                });
            }
            if attempt == 1 {
                self.obs.warning(&Warning::ChangedDuringCopy {
                    path: &self.full(self.src, idx),
                });
                Counters::add(&self.counters.unstable, 1);
                return Ok(Copied {
                    meta: unstable_meta(before, after, n, self.modify_window),
                    written,
                    read_at,
                    unstable: true,
                    verified: false,
                });
            }
            before = after;
        }
        unreachable!("the loop returns")
    }

    /// `--inplace`: writes the blocks that differ into DST's existing file, no temporary file.
    /// `None` when the file cannot be updated in place safely (not a regular file with one link,
    /// or a setuid/setgid file on either side, which must only ever get complete content): a
    /// whole copy follows. The file's stamp is moved before the first write, and its mtime is
    /// set last, so an interrupted update leaves a file the next run copies again (its mtime,
    /// moved by the writes, is not older than its stamp: see [`crate::racy`]).
    fn update_in_place(
        &self,
        d: BorrowedFd<'_>,
        src: &OwnedFd,
        before: Meta,
        a: &Action,
        pace: sys::Pace<'_>,
    ) -> io::Result<Option<Copied>> {
        if a.dst == NONE || self.dst.meta(a.dst).kind != Kind::File || before.perm & 0o6000 != 0 {
            return Ok(None);
        }
        let Ok(dst) = sys::open_update_at(d, self.src.name(a.src)) else {
            return Ok(None);
        };
        let st = sys::fstat(dst.as_fd())?;
        match sys::meta_of(&st) {
            Some(m) if m.kind == Kind::File && m.perm & 0o6000 == 0 && st.st_nlink == 1 => {}
            _ => return Ok(None),
        }
        sys::stamp_fd(dst.as_fd(), sys::now())?;
        let mut c = self.read_stable(src, before, a.src, |_, _| {
            let p = delta::update_in_place(src.as_fd(), dst.as_fd(), pace)?;
            Ok((p.len, p.written))
        })?;
        c.verified = !c.unstable;
        let owner = self.owners.for_meta(&c.meta);
        let have = self.dst.xattrs_of(a.dst);
        self.put_xattrs(sys::XattrTarget::Fd(dst.as_fd()), Some(have), a.src)?;
        if self.fsync {
            // The content first, then the mtime that says it is complete.
            sys::fsync(dst.as_fd())?;
        }
        sys::set_attrs_fd(dst.as_fd(), &c.meta, owner, Some(c.read_at))?;
        if self.fsync {
            sys::fsync(dst.as_fd())?;
        }
        tracing::debug!(path = %self.full(self.src, a.src).escape_ascii(), bytes = c.meta.size,
            written = c.written, "updated in place");
        Ok(Some(c))
    }
}

/// New content for one file and the attributes it gets.
struct Copied {
    /// The attributes to give the copy: SRC's, as stat-ed with the content read.
    meta: Meta,
    /// Bytes written to DST (all of them for a whole copy, the changed blocks for a delta).
    written: u64,
    /// When the read of SRC's content began: the copy's stamp (see [`crate::racy`]).
    read_at: Time,
    /// The source changed during both reads (see [`unstable_meta`]).
    unstable: bool,
    /// Every byte of the result was compared with what was read from SRC.
    verified: bool,
}

/// The attributes of a copy whose source changed during both reads. Its content matches no
/// single state of the source, so it must never look up to date: it gets the mtime seen before
/// the last read (the source's is newer), and where that still matches the source within the
/// modify window while the size matches too, an mtime `window + 1` seconds older.
fn unstable_meta(before: Meta, after: Meta, n: u64, window: u32) -> Meta {
    let mut mtime = before.mtime;
    if n == after.size && same_time(mtime, after.mtime, window) {
        mtime = Time {
            sec: after.mtime.sec - i64::from(window) - 1,
            nsec: after.mtime.nsec,
        };
    }
    Meta {
        size: n,
        mtime,
        ..after
    }
}

/// Tests only: a function called with the path and the attempt after each read of a copy and
/// before the stat that checks it, so a test can change the source exactly there.
#[cfg(test)]
pub(crate) mod test_hook {
    use std::sync::Mutex;

    type Hook = Box<dyn Fn(&[u8], u32) + Send>;

    pub(crate) static AFTER_READ: Mutex<Option<Hook>> = Mutex::new(None);

    pub(crate) fn after_read(path: &[u8], attempt: u32) {
        if let Some(h) = AFTER_READ
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
        {
            h(path, attempt);
        }
    }
}
