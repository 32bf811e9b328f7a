//! Executes a [`Plan`] in parallel. Each group works inside one DST directory through an open
//! handle (children are opened from their parent's handle with `O_NOFOLLOW`), so nothing is
//! ever written through a symlink in DST. Within a group: deletions and directory creations in
//! plan order, then the other actions (in parallel chunks when there are many), then the child
//! groups in parallel, then the directory's own attributes.
//!
//! New content goes to a temporary file `.NAME.XXXXXX` in the same directory and is renamed
//! over the name after owner, mode and mtime are set, so a name only ever holds a complete old
//! or new version, and setuid bits never sit on incomplete content.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};

use rayon::prelude::*;

use crate::delta::Delta;
use crate::error::{FileError, Side};
use crate::itemize::{Change, Update, field};
use crate::listing::{Idx, Kind, Listing, Meta, NONE, Time};
use crate::plan::{Action, Op, Plan};
use crate::report::{Counters, Observer, Warning};
use crate::sys::{self, Owner};

mod copy;
mod order;
pub(crate) use order::Order;

/// Which ownership the run sets.
#[derive(Debug, Clone)]
pub(crate) struct OwnerPolicy {
    pub owner: bool,
    /// `None`: no groups; `Some(None)`: every group; `Some(Some(list))`: only these.
    pub groups: Option<Option<Vec<u32>>>,
}

impl OwnerPolicy {
    fn for_meta(&self, m: &Meta) -> Owner {
        let gid = match &self.groups {
            Some(None) => Some(m.gid),
            Some(Some(list)) if list.contains(&m.gid) => Some(m.gid),
            _ => None,
        };
        Owner {
            uid: self.owner.then_some(m.uid),
            gid,
        }
    }
}

/// Everything the workers share.
pub(crate) struct Applier<'a> {
    pub plan: &'a Plan,
    pub src: &'a Listing,
    pub dst: &'a Listing,
    pub owners: OwnerPolicy,
    pub is_root: bool,
    pub obs: &'a dyn Observer,
    pub counters: &'a Counters,
    pub cancel: &'a AtomicBool,
    /// Excludes are active: a directory left non-empty by them is not an error.
    pub has_excludes: bool,
    /// SRC directories the scan could not open (reported then), in index order.
    pub unlisted_dirs: &'a [Idx],
    /// Delta transfer of files that exist in DST (`--delta`).
    pub delta: Delta,
    /// Update changed files in place (`--inplace`).
    pub inplace: bool,
    /// Compare every file written with SRC before it counts as copied.
    pub verify_written: bool,
    /// `--modify-window`, for the attributes of a copy whose source kept changing.
    pub modify_window: u32,
    /// When the contents compared by hash were read (the stamp of racy files found equal).
    pub hashed_at: Option<Time>,
    /// The extended attributes and ACLs mirrored (`-X`, `-A`).
    pub xattrs: crate::xattr::Policy,
    /// The itemize lines in rsync's order.
    pub order: order::Order,
    /// `--fsync`: files before their rename, directories after their entries changed.
    pub fsync: bool,
}

/// Actions per parallel chunk inside one directory.
const CHUNK: usize = 16;
/// From this size on a file copy is a parallel task of its own.
const BIG_FILE: u64 = 1 << 20;

impl Applier<'_> {
    fn cancelled(&self) -> bool {
        if self.cancel.load(Ordering::Relaxed) {
            self.counters.cancelled.store(true, Ordering::Relaxed);
            true
        } else {
            false
        }
    }

    fn fail(&self, op: &'static str, side: Side, list: &Listing, idx: Idx, source: io::Error) {
        if source.kind() == io::ErrorKind::Interrupted && self.cancel.load(Ordering::Relaxed) {
            self.counters.cancelled.store(true, Ordering::Relaxed);
            return;
        }
        Counters::add(&self.counters.errors, 1);
        self.obs.error(&FileError {
            op,
            path: list.path(idx),
            side,
            source,
        });
    }

    fn warn_vanished(&self, idx: Idx) {
        Counters::add(&self.counters.vanished, 1);
        self.obs.warning(&Warning::Vanished {
            path: &self.src.path(idx),
        });
    }

    /// The itemize line of entry `idx` of `list` (`None` when the observer wants no items).
    #[allow(clippy::too_many_arguments)]
    fn line(
        &self,
        update: Update,
        list: &Listing,
        idx: Idx,
        op: Op,
        change: Change,
        bytes: u64,
    ) -> Option<order::Line> {
        if !self.obs.wants_items() {
            return None;
        }
        let m = list.meta(idx);
        let link = if op == Op::Link {
            self.plan.leaders.get(&idx).map(|&l| list.path(l))
        } else {
            (m.kind == Kind::Symlink && op != Op::Delete).then(|| list.link(idx).to_vec())
        };
        Some(order::Line {
            field: field(update, m.kind, change),
            op,
            kind: m.kind,
            path: list.path(idx),
            link,
            bytes,
        })
    }

    /// Completes output slot `slot` with no line.
    fn skip(&self, slot: u32) {
        self.order.done(slot, None, self.obs);
    }

    /// Completes the slot of action `a`, which printed nothing.
    fn order_skip(&self, a: &Action) {
        self.skip(a.slot);
    }

    /// Completes the slot of action `a` with its itemize line (after it succeeded, or in a dry
    /// run). The deletion half of a type replacement has none, as in rsync.
    fn emit_action(&self, a: &Action, bytes: u64) {
        let line = match a.op {
            Op::Delete if a.change.contains(Change::TYPE) => None,
            Op::Delete => self.line(Update::Delete, self.dst, a.dst, a.op, a.change, 0),
            Op::Copy => self.line(Update::Transfer, self.src, a.src, a.op, a.change, bytes),
            Op::SetAttrs => {
                let c = self.shown_attrs(a);
                (!c.is_empty())
                    .then(|| self.line(Update::Attrs, self.src, a.src, a.op, c, 0))
                    .flatten()
            }
            // A special file recreated for a mode or owner change shows the change, as rsync
            // does (rsync changes it in place).
            Op::Mknod
                if ![Change::NEW, Change::TYPE, Change::CONTENT]
                    .iter()
                    .any(|&c| a.change.contains(c)) =>
            {
                let c = self.shown_attrs(a);
                (!c.is_empty())
                    .then(|| self.line(Update::Attrs, self.src, a.src, a.op, c, 0))
                    .flatten()
            }
            Op::Mkdir | Op::Symlink | Op::Mknod => {
                self.line(Update::Local, self.src, a.src, a.op, a.change, 0)
            }
            Op::Link => self.line(Update::HardLink, self.src, a.src, a.op, a.change, 0),
            Op::Stamp => None,
        };
        self.order.done(a.slot, line, self.obs);
    }

    /// The changes rsync's itemize line shows for an attribute fix of an existing entry: rsync
    /// compares after changing the owner, and when DST's entry had a setuid or setgid bit it
    /// reads the attributes again (the change of owner clears those bits), so it shows the
    /// mode the change left instead of the owner and group.
    fn shown_attrs(&self, a: &Action) -> Change {
        let (sm, dm) = (self.src.meta(a.src), self.dst.meta(a.dst));
        let chown = a.change.contains(Change::OWNER) || a.change.contains(Change::GROUP);
        if sm.kind == Kind::Dir || !chown || dm.perm & 0o6000 == 0 {
            return a.change;
        }
        let cleared = if dm.perm & 0o010 != 0 { 0o6000 } else { 0o4000 };
        let after = dm.perm & !cleared;
        let mut c = Change::NONE;
        for f in [
            Change::CONTENT,
            Change::SIZE,
            Change::TIME,
            Change::ACL,
            Change::XATTR,
        ] {
            if a.change.contains(f) {
                c |= f;
            }
        }
        if after != sm.perm {
            c |= Change::PERMS;
        }
        c
    }

    /// Reports a failed action (`fail`) and completes its slot.
    fn failed(
        &self,
        a: &Action,
        op: &'static str,
        side: Side,
        list: &Listing,
        idx: Idx,
        e: io::Error,
    ) {
        self.fail(op, side, list, idx, e);
        self.skip(a.slot);
    }

    fn count(&self, a: &Action, bytes: u64) {
        let c = self.counters;
        match a.op {
            Op::Delete => Counters::add(&c.deleted, 1),
            Op::Copy => {
                Counters::add(&c.files_copied, 1);
                Counters::add(&c.bytes_copied, bytes);
                if a.change.contains(Change::NEW) {
                    Counters::add(&c.created, 1);
                }
            }
            Op::SetAttrs => Counters::add(&c.attrs_fixed, 1),
            Op::Mkdir | Op::Symlink | Op::Mknod | Op::Link => {
                if a.change.contains(Change::NEW) || a.change.contains(Change::TYPE) {
                    Counters::add(&c.created, 1);
                } else {
                    Counters::add(&c.attrs_fixed, 1);
                }
            }
            Op::Stamp => {}
        }
    }

    /// A dry run: reports every action, touches nothing.
    pub fn simulate(&self) {
        if self.plan.create_root {
            self.root_created();
        }
        for g in 0..self.plan.groups.len() {
            self.dir_line(g);
            self.count_finish(self.plan.groups[g].finish);
            for a in self.plan.actions_of(g) {
                let bytes = if a.op == Op::Copy {
                    self.src.meta(a.src).size
                } else {
                    0
                };
                self.count(a, bytes);
                self.emit_action(a, bytes);
            }
        }
        self.order.flush(self.obs);
    }

    /// Passes the itemize lines still waiting (see [`order::Order::flush`]).
    pub fn flush(&self) {
        self.order.flush(self.obs);
    }

    /// Reports the creation of DST's root (`cd+++++++++ ./`), done before anything else.
    pub fn root_created(&self) {
        Counters::add(&self.counters.created, 1);
        let slot = self.plan.groups.first().map_or(0, |g| g.slot);
        let line = self.line(Update::Local, self.src, 0, Op::Mkdir, Change::NEW, 0);
        self.order.done(slot, line, self.obs);
    }

    /// The line of group `g`'s own directory, printed before its contents as rsync does: its
    /// attribute fix when it existed (set after the contents; a failure is reported then). A
    /// created directory's line is its creation's, in the parent's group.
    fn dir_line(&self, g: usize) {
        let group = &self.plan.groups[g];
        if group.finish.contains(Change::NEW) {
            return;
        }
        let line = (!group.finish.is_empty())
            .then(|| {
                let f = group.finish;
                self.line(Update::Attrs, self.src, group.src, Op::SetAttrs, f, 0)
            })
            .flatten();
        self.order.done(group.slot, line, self.obs);
    }

    /// Counts the attribute fix of a directory that existed.
    fn count_finish(&self, finish: Change) {
        if !finish.is_empty() && !finish.contains(Change::NEW) {
            Counters::add(&self.counters.attrs_fixed, 1);
        }
    }

    /// Applies group `g` with its directory open as `dfd` (DST) and `sfd` (SRC).
    pub fn group(&self, g: usize, dfd: &OwnedFd, sfd: &OwnedFd) {
        if self.cancelled() {
            return;
        }
        let group = &self.plan.groups[g];
        self.dir_line(g);
        let acts = self.plan.actions_of(g);
        let dmeta = (group.dst != NONE).then(|| *self.dst.meta(group.dst));
        let mut finish = group.finish;
        let changes_entries = acts.iter().any(|a| a.op != Op::Stamp);
        if !self.is_root && changes_entries && dmeta.is_some_and(|m| m.perm & 0o300 != 0o300) {
            // Like rsync: make our own directory writable while we work in it.
            let perm = dmeta.map_or(0o700, |m| m.perm | 0o700);
            let tmp = Meta {
                perm,
                ..*self.src.meta(group.src)
            };
            if sys::set_attrs_fd(dfd.as_fd(), &tmp, Owner::default(), None).is_ok() {
                finish |= Change::PERMS;
            }
        }

        let split = acts
            .iter()
            .position(|a| !matches!(a.op, Op::Delete | Op::Mkdir))
            .unwrap_or(acts.len());
        let mut dirs = DirStack::default();
        // Whether this directory's entries changed (its mtime then needs setting back).
        let mut touched = false;
        for a in &acts[..split] {
            if self.cancelled() {
                return;
            }
            match a.op {
                Op::Delete => touched |= self.delete(dfd, group.dst, a, &mut dirs),
                _ => {
                    self.mkdir(dfd, a);
                    touched = true;
                }
            }
        }
        drop(dirs);
        let rest = &acts[split..];
        let big = |a: &Action| a.op == Op::Copy && self.src.meta(a.src).size >= BIG_FILE;
        if rest.len() > 1 && rest.iter().any(big) {
            // Large files each on their own task, so two of them do not queue on one thread.
            rest.par_iter()
                .with_max_len(1)
                .for_each(|a| self.one(dfd, sfd, a));
        } else if rest.len() > CHUNK {
            rest.par_chunks(CHUNK)
                .for_each(|chunk| chunk.iter().for_each(|a| self.one(dfd, sfd, a)));
        } else {
            rest.iter().for_each(|a| self.one(dfd, sfd, a));
        }

        let kids: Vec<usize> = self.plan.child_groups(g).collect();
        kids.par_iter().for_each(|&c| {
            let s = self.plan.groups[c].src;
            let name = self.src.name(s);
            let dchild = match sys::open_dir_at(dfd.as_fd(), name) {
                Ok(fd) => fd,
                Err(e) => return self.fail("open directory", Side::Dest, self.src, s, e),
            };
            let schild = match sys::open_dir_at(sfd.as_fd(), name) {
                Ok(fd) => fd,
                Err(e) if e.kind() == io::ErrorKind::NotFound => return self.warn_vanished(s),
                Err(e) => {
                    // The scan reported the directories it could not open. Its DST copy
                    // keeps mode 0700, so that the next run can enter it (a non-root run
                    // cannot open a directory without read permission to fix it).
                    if self.unlisted_dirs.binary_search(&s).is_err() {
                        self.fail("open directory", Side::Source, self.src, s, e);
                    }
                    return;
                }
            };
            self.group(c, &dchild, &schild);
        });

        // Creating, renaming or deleting entries changed the directory's mtime: set it back
        // even when the directory's attributes matched at plan time (rsync does the same). A
        // deletion that failed (a directory kept non-empty by excluded entries) changed nothing,
        // so a second run writes nothing.
        touched |= rest
            .iter()
            .any(|a| !matches!(a.op, Op::SetAttrs | Op::Stamp));
        if (touched || !finish.is_empty()) && !self.cancelled() {
            let m = self.src.meta(group.src);
            let r = sys::set_attrs_fd(dfd.as_fd(), m, self.owners.for_meta(m), None)
                .and_then(|()| {
                    let target = sys::XattrTarget::Fd(dfd.as_fd());
                    self.put_xattrs(target, self.dst_xattrs(group.dst), group.src)
                })
                .and_then(|()| {
                    if self.fsync && touched {
                        sys::fsync(dfd.as_fd())
                    } else {
                        Ok(())
                    }
                });
            match r {
                Ok(()) => self.count_finish(group.finish),
                Err(e) => self.fail("set attributes of", Side::Dest, self.src, group.src, e),
            }
        }
    }

    /// `-X`/`-A`: makes the attributes of `target` those of SRC's `src`. `have`: what it holds
    /// now, as scanned (`None` for an entry this run created: read, since a new file can get
    /// attributes of its own, such as an ACL inherited from its directory's default ACL).
    pub(crate) fn put_xattrs(
        &self,
        target: sys::XattrTarget<'_>,
        have: Option<&[(Vec<u8>, Vec<u8>)]>,
        src: Idx,
    ) -> io::Result<()> {
        if !self.xattrs.any() {
            return Ok(());
        }
        let want = self.src.xattrs_of(src);
        let read;
        let have = match have {
            Some(h) => h,
            None => {
                read = sys::xattrs_of(target, &|n| self.xattrs.keeps(n))?;
                &read
            }
        };
        if have == want {
            return Ok(());
        }
        sys::set_xattrs(target, have, want)
    }

    /// The attributes DST's entry `d` has, as scanned (NONE: none).
    fn dst_xattrs(&self, d: Idx) -> Option<&[(Vec<u8>, Vec<u8>)]> {
        (d != NONE).then(|| self.dst.xattrs_of(d))
    }

    /// `-H`: makes the planned hard links, in plan order, after every group is done (a leader may
    /// sit in any directory): each under a temporary name in its directory, renamed over the
    /// name. The directories whose entries changed get their mtime set back.
    pub fn links(&self, dst_root: &OwnedFd) {
        let mut touched: Vec<Idx> = Vec::new();
        let mut dirs: Option<(Idx, OwnedFd)> = None;
        for a in self.plan.actions.iter().filter(|a| a.op == Op::Link) {
            if self.cancelled() {
                break;
            }
            let Some(&leader) = self.plan.leaders.get(&a.src) else {
                self.skip(a.slot);
                continue;
            };
            let parent = self.src.entry(a.src).parent;
            let lparent = self.src.entry(leader).parent;
            let r = (|| -> io::Result<()> {
                if dirs.as_ref().is_none_or(|(p, _)| *p != parent) {
                    let fd = sys::open_dir_beneath(dst_root.as_fd(), &self.src.path(parent))?;
                    dirs = Some((parent, fd));
                }
                let Some((_, dfd)) = &dirs else {
                    return Ok(());
                };
                let lfd = sys::open_dir_beneath(dst_root.as_fd(), &self.src.path(lparent))?;
                let name = self.src.name(a.src);
                let ((), tmp) = sys::with_temp_name(name, |t| {
                    sys::link_at(lfd.as_fd(), self.src.name(leader), dfd.as_fd(), t)
                })?;
                if let Err(e) = sys::rename_at(dfd.as_fd(), tmp.as_bytes(), name) {
                    let _ = sys::unlink_at(dfd.as_fd(), tmp.as_bytes(), false);
                    return Err(e);
                }
                Ok(())
            })();
            match r {
                Ok(()) => {
                    self.count(a, 0);
                    self.emit_action(a, 0);
                    if touched.last() != Some(&parent) {
                        touched.push(parent);
                    }
                }
                Err(e) => self.failed(a, "hard link", Side::Dest, self.src, a.src, e),
            }
        }
        touched.sort_unstable();
        touched.dedup();
        for d in touched {
            let m = self.src.meta(d);
            let r = sys::open_dir_beneath(dst_root.as_fd(), &self.src.path(d)).and_then(|fd| {
                sys::set_attrs_fd(fd.as_fd(), m, self.owners.for_meta(m), None)?;
                if self.fsync {
                    sys::fsync(fd.as_fd())?;
                }
                Ok(())
            });
            if let Err(e) = r {
                self.fail("set attributes of", Side::Dest, self.src, d, e);
            }
        }
    }

    /// Deletes one entry; true when it removed an entry of the group's own directory.
    fn delete(&self, dfd: &OwnedFd, base: Idx, a: &Action, dirs: &mut DirStack) -> bool {
        let parent = self.dst.entry(a.dst).parent;
        let is_dir = self.dst.meta(a.dst).kind == Kind::Dir;
        let r = dirs
            .fd_for(self.dst, base, parent, dfd)
            .and_then(|pfd| sys::unlink_at(pfd, self.dst.name(a.dst), is_dir));
        match r {
            Ok(()) => {
                self.count(a, 0);
                self.emit_action(a, 0);
                return parent == base;
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => self.skip(a.slot),
            Err(e) if e.kind() == io::ErrorKind::DirectoryNotEmpty && self.has_excludes => {
                self.obs.warning(&Warning::NotEmpty {
                    path: &self.dst.path(a.dst),
                });
                self.skip(a.slot);
            }
            Err(e) => self.failed(a, "delete", Side::Dest, self.dst, a.dst, e),
        }
        false
    }

    fn mkdir(&self, dfd: &OwnedFd, a: &Action) {
        match sys::mkdir_at(dfd.as_fd(), self.src.name(a.src)) {
            Ok(()) => {
                self.count(a, 0);
                self.emit_action(a, 0);
            }
            Err(e) => self.failed(a, "create directory", Side::Dest, self.src, a.src, e),
        }
    }

    fn one(&self, dfd: &OwnedFd, sfd: &OwnedFd, a: &Action) {
        if self.cancelled() {
            return;
        }
        let (d, s) = (dfd.as_fd(), sfd.as_fd());
        let r = match a.op {
            Op::Copy => return self.copy(d, s, a),
            Op::Symlink => {
                self.replace_with(d, a, |tmp| sys::symlink_at(self.src.link(a.src), d, tmp))
            }
            Op::Mknod => self.replace_with(d, a, |tmp| sys::mknod_at(d, tmp, self.src.meta(a.src))),
            Op::SetAttrs => self.set_attrs(d, a),
            Op::Stamp => {
                self.stamp(d, a);
                return self.skip(a.slot);
            }
            // Made by `links`, once every group is done and the leaders are in place.
            Op::Link => return,
            Op::Delete | Op::Mkdir => unreachable!("ordered before the other actions"),
        };
        match r {
            Ok(()) => {
                self.count(a, 0);
                self.emit_action(a, 0);
            }
            Err(e) => self.failed(a, op_name(a.op), Side::Dest, self.src, a.src, e),
        }
    }

    /// Creates a symlink or special file under a temporary name with all attributes, then
    /// renames it over the name.
    fn replace_with(
        &self,
        d: BorrowedFd<'_>,
        a: &Action,
        create: impl Fn(&[u8]) -> io::Result<()>,
    ) -> io::Result<()> {
        let name = self.src.name(a.src);
        let m = self.src.meta(a.src);
        let ((), tmp) = sys::with_temp_name(name, |t| create(t))?;
        let perm = (m.kind != Kind::Symlink).then_some(m.perm);
        let r = sys::set_attrs_at(d, tmp.as_bytes(), m, self.owners.for_meta(m), perm)
            .and_then(|()| self.put_xattrs(sys::XattrTarget::At(d, tmp.as_bytes()), None, a.src))
            .and_then(|()| sys::rename_at(d, tmp.as_bytes(), name));
        if r.is_err() {
            let _ = sys::unlink_at(d, tmp.as_bytes(), false);
        }
        r
    }

    fn set_attrs(&self, d: BorrowedFd<'_>, a: &Action) -> io::Result<()> {
        let name = self.src.name(a.src);
        let m = self.src.meta(a.src);
        let owner = self.owners.for_meta(m);
        if m.kind == Kind::File {
            let fd = sys::open_attrs_at(d, name)?;
            let st = sys::fstat(fd.as_fd())?;
            if sys::meta_of(&st).map(|x| x.kind) != Some(Kind::File) {
                return Err(io::Error::other("changed type during the run"));
            }
            sys::set_attrs_fd(fd.as_fd(), m, owner, None)?;
            self.put_xattrs(
                sys::XattrTarget::Fd(fd.as_fd()),
                self.dst_xattrs(a.dst),
                a.src,
            )
        } else {
            // Only chown when owner or group differ: chown clears setuid/setgid bits, which
            // cannot be set again on a special file in place (the planner recreates those).
            let owner = Owner {
                uid: owner.uid.filter(|_| a.change.contains(Change::OWNER)),
                gid: owner.gid.filter(|_| a.change.contains(Change::GROUP)),
            };
            sys::set_attrs_at(d, name, m, owner, None)?;
            self.put_xattrs(sys::XattrTarget::At(d, name), self.dst_xattrs(a.dst), a.src)
        }
    }

    /// Moves the stamp of a racy file found equal (see [`crate::racy`]). A failure only means
    /// the file is compared by content once more next time: logged, not an error of the run.
    fn stamp(&self, d: BorrowedFd<'_>, a: &Action) {
        let Some(t) = self.hashed_at else { return };
        if let Err(e) = sys::stamp_at(d, self.src.name(a.src), t) {
            tracing::debug!(path = %self.src.path(a.src).escape_ascii(), error = %e,
                "cannot stamp the access time of a racy copy");
        }
    }
}

fn op_name(op: Op) -> &'static str {
    match op {
        Op::Link => "hard link",
        Op::Stamp => "stamp",
        Op::Delete => "delete",
        Op::Mkdir => "create directory",
        Op::Copy => "copy",
        Op::Symlink => "create symlink",
        Op::Mknod => "create special file",
        Op::SetAttrs => "set attributes of",
    }
}

/// Open directories along the path of the entries being deleted (reverse pre-order), so
/// consecutive deletions in the same directory reuse one handle.
#[derive(Default)]
struct DirStack {
    open: Vec<(Idx, OwnedFd)>,
}

impl DirStack {
    fn fd_for<'a>(
        &'a mut self,
        dst: &Listing,
        base: Idx,
        dir: Idx,
        base_fd: &'a OwnedFd,
    ) -> io::Result<BorrowedFd<'a>> {
        if dir == base {
            return Ok(base_fd.as_fd());
        }
        let mut chain = Vec::new();
        let mut cur = dir;
        while cur != base && cur != NONE {
            chain.push(cur);
            cur = dst.entry(cur).parent;
        }
        chain.reverse();
        let keep = self
            .open
            .iter()
            .zip(&chain)
            .take_while(|((i, _), c)| i == *c)
            .count();
        self.open.truncate(keep);
        for &c in &chain[keep..] {
            let at = self.open.last().map_or(base_fd.as_fd(), |(_, f)| f.as_fd());
            let fd = sys::open_dir_at(at, dst.name(c))?;
            self.open.push((c, fd));
        }
        Ok(self.open.last().map_or(base_fd.as_fd(), |(_, f)| f.as_fd()))
    }
}
