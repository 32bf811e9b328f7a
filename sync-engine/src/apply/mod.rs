//! Carrying out what the planner decided, one directory pair at a time ([`walk`]), through open
//! directory handles: children are opened from their parent's handle with `O_NOFOLLOW`, so
//! nothing is ever written through a symlink in DST. Within a directory: type replacements and
//! directory creations in order, then the other actions (in parallel chunks when there are
//! many), then the subdirectories in parallel, then the directory's own attributes. Deletions
//! of extraneous entries wait until the whole source has been read ([`delete`]); hard links
//! are made once every directory is done ([`links`]).
//!
//! New content goes to a temporary file `.NAME.XXXXXX` in the same directory and is renamed
//! over the name after owner, mode and mtime are set, so a name only ever holds a complete old
//! or new version, and setuid bits never sit on incomplete content.

use std::io;
use std::ops::Deref;
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::delta::Delta;
use crate::error::{FileError, Side};
use crate::filter::Filter;
use crate::itemize::{Change, Update, field};
use crate::listing::{Idx, Kind, Listing, Meta, NONE, Time};
use crate::plan::{Action, DeleteBudget, Op, PlanOptions};
use crate::report::{Counters, Observer, Warning};
use crate::sys::{self, Owner};

pub(crate) mod copy;
pub(crate) mod delete;
pub(crate) mod links;
mod order;
pub(crate) mod walk;

pub(crate) use order::{Line, NodeId, Order};

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

/// Everything the workers of one run share.
pub(crate) struct Shared<'a> {
    pub owners: OwnerPolicy,
    pub is_root: bool,
    pub obs: &'a dyn Observer,
    pub counters: &'a Counters,
    pub cancel: &'a AtomicBool,
    /// Some rule can protect DST entries: a directory left non-empty by them is not an error.
    pub has_excludes: bool,
    /// Delta transfer of files that exist in DST (`--delta`).
    pub delta: Delta,
    /// Update changed files in place (`--inplace`).
    pub inplace: bool,
    /// Compare every file written with SRC before it counts as copied.
    pub verify_written: bool,
    /// `--modify-window`, for the attributes of a copy whose source kept changing.
    pub modify_window: u32,
    /// The extended attributes and ACLs mirrored (`-X`, `-A`).
    pub xattrs: crate::xattr::Policy,
    /// The itemize lines in rsync's order.
    pub order: Order,
    /// `--fsync`: files before their rename, directories after their entries changed.
    pub fsync: bool,
    /// Report and count, change nothing.
    pub dry_run: bool,
    /// The planner's options (without a deletion limit: [`Shared::budget`] keeps it).
    pub popts: PlanOptions,
    /// What is left of `--max-delete` across the run.
    pub budget: Mutex<DeleteBudget>,
    /// Deletions of extraneous entries, made once the source has been read without errors.
    pub deferred: Mutex<Vec<delete::Deferred>>,
    /// `-H`: files with other hard links, planned together at the end.
    pub linked: Mutex<Vec<links::Member>>,
    /// A source read failed, or a file that must be copied cannot be read: no deletions.
    pub src_failed: AtomicBool,
    /// The filter rules (for the deletions' walk into extraneous directories).
    pub filter: &'a Filter,
    /// `--recheck-from`: paths compared by content whatever their size and mtime say.
    pub recheck: std::collections::HashSet<Vec<u8>>,
    /// `--checksum`.
    pub checksum: bool,
    /// `-x`: the device of DST's root (0: not asked).
    pub dst_dev: u64,
    /// How data is copied between SRC's and DST's filesystems (learned on the first copy).
    pub copy_method: sys::CopyMethod,
    /// The process's umask, when known: new files are created with their final mode when it
    /// leaves that mode alone (no `fchmod` then).
    pub umask: Option<u32>,
    /// SRC's directories known and not read yet (the root at first): at 0 the scan is
    /// complete ([`Observer::scan_done`]).
    pub unread: std::sync::atomic::AtomicU64,
}

impl Shared<'_> {
    /// One directory of SRC was read (or given up), with `subdirs` subdirectories to read.
    pub(crate) fn dir_read(&self, subdirs: usize) {
        self.unread.fetch_add(subdirs as u64, Ordering::Relaxed);
        if self.unread.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.obs.scan_done();
        }
    }
}

/// What this run learned about files it creates in one DST directory: the owner and group the
/// kernel gives them (asked once, so `fchown` is only called when it changes something), and
/// whether a default ACL may decide their modes.
#[derive(Default)]
pub(crate) struct NewFiles {
    pub owner: std::sync::OnceLock<(u32, u32)>,
    pub default_acl: std::sync::OnceLock<bool>,
}

/// One directory pair being worked on: its listings (the directory and its entries) and where
/// its lines go.
pub(crate) struct Applier<'a> {
    pub sh: &'a Shared<'a>,
    pub src: &'a Listing,
    pub dst: &'a Listing,
    /// The directory's path relative to the roots (empty for the roots).
    pub path: &'a [u8],
    /// The directory's node in the output order, and its subdirectories' (in the order of
    /// the plan's `subdirs`).
    pub node: NodeId,
    pub kids: &'a [NodeId],
    pub subdirs: &'a [(Idx, Idx)],
    /// When the contents compared by hash were read (the stamp of racy files found equal).
    pub hashed_at: Option<Time>,
    pub new_files: NewFiles,
    /// The filter rules of DST's directory (for what a deletion inside it must keep).
    pub drules: &'a crate::filter::DirRules,
}

impl<'a> Deref for Applier<'a> {
    type Target = Shared<'a>;
    fn deref(&self) -> &Shared<'a> {
        self.sh
    }
}

/// Actions per parallel chunk inside one directory.
const CHUNK: usize = 16;
/// From this size on a file copy is a parallel task of its own.
const BIG_FILE: u64 = 1 << 20;

/// `path/name`, or `name` at the root.
pub(crate) fn join(path: &[u8], name: &[u8]) -> Vec<u8> {
    let mut p = Vec::with_capacity(path.len() + 1 + name.len());
    if !path.is_empty() {
        p.extend_from_slice(path);
        p.push(b'/');
    }
    p.extend_from_slice(name);
    p
}

impl Shared<'_> {
    pub(crate) fn cancelled(&self) -> bool {
        if self.cancel.load(Ordering::Relaxed) {
            self.counters.cancelled.store(true, Ordering::Relaxed);
            true
        } else {
            false
        }
    }

    /// Reports a failure on the entry at `path` (relative to the roots).
    pub(crate) fn fail_at(&self, op: &'static str, side: Side, path: Vec<u8>, source: io::Error) {
        if source.kind() == io::ErrorKind::Interrupted && self.cancel.load(Ordering::Relaxed) {
            self.counters.cancelled.store(true, Ordering::Relaxed);
            return;
        }
        Counters::add(&self.counters.errors, 1);
        self.obs.error(&FileError {
            op,
            path,
            side,
            source,
        });
    }

    pub(crate) fn vanished_at(&self, path: &[u8]) {
        Counters::add(&self.counters.vanished, 1);
        self.obs.warning(&Warning::Vanished { path });
    }
}

impl Applier<'_> {
    /// The path of entry `idx` of `list` relative to the roots.
    pub(crate) fn full(&self, list: &Listing, idx: Idx) -> Vec<u8> {
        if idx == 0 {
            return self.path.to_vec();
        }
        join(self.path, list.name(idx))
    }

    fn fail(&self, op: &'static str, side: Side, list: &Listing, idx: Idx, source: io::Error) {
        self.fail_at(op, side, self.full(list, idx), source);
    }

    fn warn_vanished(&self, idx: Idx) {
        self.vanished_at(&self.full(self.src, idx));
    }

    /// The itemize line of entry `idx` of `list` (`None` when the observer wants no items).
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
        let link = (m.kind == Kind::Symlink && op != Op::Delete).then(|| list.link(idx).to_vec());
        Some(order::Line {
            field: field(update, m.kind, change),
            op,
            kind: m.kind,
            path: self.full(list, idx),
            link,
            bytes,
        })
    }

    /// The line of entry `idx` of SRC when it needs nothing (`.f          name`), with
    /// [`PlanOptions::itemize_unchanged`] (rsync's `-ii`); `None` without.
    fn unchanged_line(&self, idx: Idx) -> Option<order::Line> {
        if !self.popts.itemize_unchanged {
            return None;
        }
        self.line(Update::Attrs, self.src, idx, Op::Unchanged, Change::NONE, 0)
    }

    /// The line of an attribute fix that shows change `c`: when `c` shows nothing, rsync's
    /// line of an unchanged entry, with [`PlanOptions::itemize_unchanged`] only.
    fn attrs_line(&self, a: &Action, c: Change) -> Option<order::Line> {
        if c.is_empty() && !self.popts.itemize_unchanged {
            return None;
        }
        self.line(Update::Attrs, self.src, a.src, a.op, c, 0)
    }

    /// Completes this directory's output slot `slot` with no line.
    fn skip(&self, slot: u32) {
        self.order.done(self.node, slot, None, self.obs);
    }

    /// The output node of subdirectory `s` (SRC's index) of this directory.
    fn kid_of(&self, s: Idx) -> Option<NodeId> {
        self.subdirs
            .iter()
            .position(|&(cs, _)| cs == s)
            .and_then(|i| self.kids.get(i).copied())
    }

    /// Completes the slot of action `a` with its itemize line (after it succeeded, or in a dry
    /// run). The deletion half of a type replacement has none, as in rsync. A created
    /// directory's line opens its own node.
    fn emit_action(&self, a: &Action, bytes: u64) {
        let line = match a.op {
            Op::Delete if a.change.contains(Change::TYPE) => None,
            Op::Delete => self.line(Update::Delete, self.dst, a.dst, a.op, a.change, 0),
            Op::Copy => self.line(Update::Transfer, self.src, a.src, a.op, a.change, bytes),
            Op::SetAttrs => self.attrs_line(a, self.shown_attrs(a)),
            // A special file recreated for a mode or owner change shows the change, as rsync
            // does (rsync changes it in place).
            Op::Mknod
                if ![Change::NEW, Change::TYPE, Change::CONTENT]
                    .iter()
                    .any(|&c| a.change.contains(c)) =>
            {
                self.attrs_line(a, self.shown_attrs(a))
            }
            Op::Mkdir => {
                let line = self.line(Update::Local, self.src, a.src, a.op, a.change, 0);
                if let Some(kid) = self.kid_of(a.src) {
                    self.order.done(kid, 0, line, self.obs);
                }
                return;
            }
            Op::Symlink | Op::Mknod => self.line(Update::Local, self.src, a.src, a.op, a.change, 0),
            Op::Stamp | Op::Unchanged => self.unchanged_line(a.src),
            Op::Link => None,
        };
        self.order.done(self.node, a.slot, line, self.obs);
    }

    /// [`shown_attrs`] of an action.
    fn shown_attrs(&self, a: &Action) -> Change {
        shown_attrs(a.change, self.src.meta(a.src), self.dst.meta(a.dst))
    }

    /// Reports a failed action and completes its slot (a directory's creation: its node).
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
        match a.op {
            Op::Mkdir => {
                if let Some(kid) = self.kid_of(a.src) {
                    self.order.abandon(kid, self.obs);
                }
            }
            _ => self.skip(a.slot),
        }
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
            Op::Stamp | Op::Unchanged => {}
        }
    }

    /// The line of this directory, printed before its contents as rsync does: its attribute
    /// fix when it existed (set after the contents; a failure is reported then). A created
    /// directory's line is its creation's, made by its parent. An unchanged directory has
    /// one only with [`PlanOptions::itemize_unchanged`].
    fn dir_line(&self, finish: Change) {
        if finish.contains(Change::NEW) {
            return;
        }
        let line = if finish.is_empty() {
            self.unchanged_line(0)
        } else {
            self.line(Update::Attrs, self.src, 0, Op::SetAttrs, finish, 0)
        };
        self.order.done(self.node, 0, line, self.obs);
    }

    /// Carries out the actions on this directory's entries (open as `dfd` in DST, `sfd` in
    /// SRC): type replacements and creations of directories in order, then the rest in
    /// parallel. Extraneous entries are only queued for deletion. Returns whether entries of
    /// the directory changed (its mtime must then be set back).
    fn entries(&self, acts: &[Action], dfd: BorrowedFd<'_>, sfd: BorrowedFd<'_>) -> bool {
        let split = acts
            .iter()
            .position(|a| !matches!(a.op, Op::Delete | Op::Mkdir))
            .unwrap_or(acts.len());
        let mut touched = false;
        for a in &acts[..split] {
            if self.cancelled() {
                return touched;
            }
            match a.op {
                Op::Delete if !a.change.contains(Change::TYPE) => self.defer(a),
                Op::Delete => touched |= self.replace_delete(dfd, a),
                _ => {
                    self.mkdir(dfd, a);
                    touched = true;
                }
            }
        }
        let rest = &acts[split..];
        let big = |a: &Action| a.op == Op::Copy && self.src.meta(a.src).size >= BIG_FILE;
        if rest.len() > 1 && rest.iter().any(big) {
            // Large files each on their own task, so two of them do not queue on one thread.
            use rayon::prelude::*;
            rest.par_iter()
                .with_max_len(1)
                .for_each(|a| self.one(dfd, sfd, a));
        } else if rest.len() > CHUNK {
            use rayon::prelude::*;
            rest.par_chunks(CHUNK)
                .for_each(|chunk| chunk.iter().for_each(|a| self.one(dfd, sfd, a)));
        } else {
            rest.iter().for_each(|a| self.one(dfd, sfd, a));
        }
        touched
            || rest
                .iter()
                .any(|a| !matches!(a.op, Op::SetAttrs | Op::Stamp | Op::Unchanged))
    }

    /// Queues the deletion of an extraneous entry until the source has been read.
    fn defer(&self, a: &Action) {
        let m = self.dst.meta(a.dst);
        self.deferred
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(delete::Deferred {
                path: self.full(self.dst, a.dst),
                kind: m.kind,
                parent: *self.src.meta(0),
                rules: self.drules.clone(),
            });
        self.skip(a.slot);
    }

    /// Removes the entry a type replacement makes room for (a directory with everything in it).
    /// Returns whether it was removed. As in rsync, the entry itself does not count against
    /// `--max-delete` (it is replaced, not lost); what a directory held does.
    fn replace_delete(&self, dfd: BorrowedFd<'_>, a: &Action) -> bool {
        let name = self.dst.name(a.dst);
        let is_dir = self.dst.meta(a.dst).kind == Kind::Dir;
        if self.dry_run {
            if is_dir {
                let path = self.full(self.dst, a.dst);
                delete::simulate_contents(self, dfd, name, &path, self.drules);
            }
            self.count(a, 0);
            self.emit_action(a, 0);
            return true;
        }
        let r = if is_dir {
            let path = self.full(self.dst, a.dst);
            delete::remove_tree(self, dfd, name, &path, false, self.drules)
        } else {
            sys::unlink_at(dfd, name, false).map(|()| true)
        };
        match r {
            Ok(false) => {
                // `--max-delete` is reached: the entry stays, and so the new one cannot come.
                self.skip(a.slot);
                false
            }
            Ok(true) => {
                self.count(a, 0);
                self.emit_action(a, 0);
                true
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                self.skip(a.slot);
                true
            }
            Err(e) => {
                self.failed(a, "delete", Side::Dest, self.dst, a.dst, e);
                false
            }
        }
    }

    fn mkdir(&self, dfd: BorrowedFd<'_>, a: &Action) {
        if self.dry_run {
            self.count(a, 0);
            self.emit_action(a, 0);
            return;
        }
        match sys::mkdir_at(dfd, self.src.name(a.src)) {
            Ok(()) => {
                self.count(a, 0);
                self.emit_action(a, 0);
            }
            Err(e) => self.failed(a, "create directory", Side::Dest, self.src, a.src, e),
        }
    }

    fn one(&self, dfd: BorrowedFd<'_>, sfd: BorrowedFd<'_>, a: &Action) {
        if self.cancelled() {
            return;
        }
        if a.op == Op::Unchanged {
            return self.emit_action(a, 0);
        }
        if self.dry_run {
            let bytes = if a.op == Op::Copy {
                self.src.meta(a.src).size
            } else {
                0
            };
            if a.op != Op::Stamp {
                self.count(a, bytes);
            }
            self.emit_action(a, bytes);
            return;
        }
        let (d, s) = (dfd, sfd);
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
            Op::Link => return self.skip(a.slot),
            Op::Delete | Op::Mkdir => unreachable!("ordered before the other actions"),
            Op::Unchanged => unreachable!("nothing to do"),
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
        // rsync sets a changed ACL with the mode's group and other bits cleared when setuid
        // or setgid goes off (after the change of owner cleared what it clears).
        let masked = attrs_masked(&self.xattrs, a.change, m, self.dst.meta(a.dst));
        if m.kind == Kind::File {
            let fd = sys::open_attrs_at(d, name)?;
            let st = sys::fstat(fd.as_fd())?;
            if sys::meta_of(&st).map(|x| x.kind) != Some(Kind::File) {
                return Err(io::Error::other("changed type during the run"));
            }
            sys::set_attrs_fd(fd.as_fd(), m, owner, None)?;
            put_xattrs(
                self.sh,
                sys::XattrTarget::Fd(fd.as_fd()),
                self.dst_xattrs(a.dst),
                self.src.xattrs_of(a.src),
                masked,
            )
        } else {
            // Only chown when owner or group differ: chown clears setuid/setgid bits, which
            // cannot be set again on a special file in place (the planner recreates those).
            let owner = Owner {
                uid: owner.uid.filter(|_| a.change.contains(Change::OWNER)),
                gid: owner.gid.filter(|_| a.change.contains(Change::GROUP)),
            };
            sys::set_attrs_at(d, name, m, owner, None)?;
            put_xattrs(
                self.sh,
                sys::XattrTarget::At(d, name),
                self.dst_xattrs(a.dst),
                self.src.xattrs_of(a.src),
                masked,
            )
        }
    }

    /// Moves the stamp of a racy file found equal (see [`crate::racy`]). A failure only means
    /// the file is compared by content once more next time: logged, not an error of the run.
    fn stamp(&self, d: BorrowedFd<'_>, a: &Action) {
        let Some(t) = self.hashed_at else { return };
        if let Err(e) = sys::stamp_at(d, self.src.name(a.src), t) {
            tracing::debug!(path = %self.full(self.src, a.src).escape_ascii(), error = %e,
                "cannot stamp the access time of a racy copy");
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
        put_xattrs(self.sh, target, have, self.src.xattrs_of(src), None)
    }

    /// The attributes DST's entry `d` has, as scanned (NONE: none).
    fn dst_xattrs(&self, d: Idx) -> Option<&[(Vec<u8>, Vec<u8>)]> {
        (d != NONE).then(|| self.dst.xattrs_of(d))
    }
}

/// SRC's mode when rsync sets the changed ACL of an existing non-directory masked (see
/// [`crate::xattr::acl_set_masked`]): the attribute fix `change` of an entry whose mode is
/// `dm`'s and becomes `sm`'s (after a change of owner cleared what it clears), unless its
/// xattrs change too (`-X`). `None`: the ACL is set as it is.
pub(crate) fn attrs_masked(
    policy: &crate::xattr::Policy,
    change: Change,
    sm: &Meta,
    dm: &Meta,
) -> Option<u32> {
    let chown = change.contains(Change::OWNER) || change.contains(Change::GROUP);
    let mut old = dm.perm;
    if chown && sm.kind == Kind::File && old & 0o6000 != 0 {
        old &= if old & 0o010 != 0 { !0o6000 } else { !0o4000 };
    }
    let xattrs_change = policy.xattrs && change.contains(Change::XATTR);
    (change.contains(Change::ACL)
        && !xattrs_change
        && crate::xattr::acl_set_masked(old, sm.perm, false))
    .then_some(sm.perm)
}

/// SRC's mode when rsync sets a directory's ACL masked: when its sticky bit goes on (`dm`:
/// DST's attributes, `None` for a directory the run creates, whose `dx` are then empty),
/// unless its xattrs change too (`-X`).
pub(crate) fn dir_masked(
    policy: &crate::xattr::Policy,
    sm: &Meta,
    sx: &[(Vec<u8>, Vec<u8>)],
    dm: Option<&Meta>,
    dx: &[(Vec<u8>, Vec<u8>)],
) -> Option<u32> {
    let dperm = dm.map_or(0, |m| m.perm);
    let xattrs_change = policy.xattrs && crate::xattr::others_differ(sx, dx);
    (!xattrs_change && crate::xattr::acl_set_masked(dperm, sm.perm, true)).then_some(sm.perm)
}

/// See [`Applier::put_xattrs`]; `want` are SRC's attributes. `masked`: SRC's mode when rsync
/// would set a changed access ACL masked (see [`crate::xattr::acl_set_masked`]): the ACL is
/// then set as rsync leaves it ([`crate::xattr::masked_access_acl`]).
pub(crate) fn put_xattrs(
    sh: &Shared<'_>,
    target: sys::XattrTarget<'_>,
    have: Option<&[(Vec<u8>, Vec<u8>)]>,
    want: &[(Vec<u8>, Vec<u8>)],
    masked: Option<u32>,
) -> io::Result<()> {
    put_xattrs_with(&sh.xattrs, target, have, want, masked)
}

/// [`put_xattrs`] with the attributes `policy` mirrors.
pub(crate) fn put_xattrs_with(
    policy: &crate::xattr::Policy,
    target: sys::XattrTarget<'_>,
    have: Option<&[(Vec<u8>, Vec<u8>)]>,
    want: &[(Vec<u8>, Vec<u8>)],
    masked: Option<u32>,
) -> io::Result<()> {
    if !policy.any() {
        return Ok(());
    }
    let read;
    let have = match have {
        Some(h) => h,
        None => {
            read = sys::xattrs_of(target, &|n| policy.keeps(n))?;
            &read
        }
    };
    if have == want {
        return Ok(());
    }
    use crate::xattr::{access_acl, access_acls_equal, rsync_masked};
    if let Some(perm) = masked
        && !access_acls_equal(access_acl(have), access_acl(want))
        && let Some(w) = rsync_masked(want, perm)
    {
        return sys::set_xattrs(target, have, &w);
    }
    sys::set_xattrs(target, have, want)
}

impl Shared<'_> {
    /// Takes `n` deletions from the `--max-delete` budget; false once it is spent.
    pub(crate) fn take_budget(&self, n: u64) -> bool {
        self.budget
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take(n)
    }
}

fn op_name(op: Op) -> &'static str {
    match op {
        Op::Link => "hard link",
        Op::Stamp => "stamp",
        Op::Unchanged => "check",
        Op::Delete => "delete",
        Op::Mkdir => "create directory",
        Op::Copy => "copy",
        Op::Symlink => "create symlink",
        Op::Mknod => "create special file",
        Op::SetAttrs => "set attributes of",
    }
}

/// The changes rsync's itemize line shows for an attribute fix `change` of an existing entry
/// (SRC's attributes `sm`, DST's `dm`; rsync sets the attributes first, then compares with what it read, updated on the way):
/// - when the owner changes and DST's entry had a setuid or setgid bit, rsync reads the
///   attributes again (the change of owner clears those bits), so it shows the mode the
///   change left instead of the owner and group;
/// - with `-A`, setting a changed ACL sets the mode's permission bits (masked as
///   [`crate::xattr::acl_set_masked`] says), so `p` only stays for what the ACL left.
pub fn shown_attrs(change: Change, sm: &Meta, dm: &Meta) -> Change {
    let chown = change.contains(Change::OWNER) || change.contains(Change::GROUP);
    let restat = chown && dm.perm & 0o6000 != 0;
    let acl = change.contains(Change::ACL);
    if sm.kind == Kind::Dir || !(restat || acl) {
        return change;
    }
    let mut after = dm.perm;
    let mut c = Change::NONE;
    if restat {
        after &= if dm.perm & 0o010 != 0 {
            !0o6000
        } else {
            !0o4000
        };
    } else {
        for f in [Change::OWNER, Change::GROUP] {
            if change.contains(f) {
                c |= f;
            }
        }
    }
    if acl {
        let set = if crate::xattr::acl_set_masked(after, sm.perm, false) {
            sm.perm & !0o077
        } else {
            sm.perm
        };
        after = (after & !0o777) | (set & 0o777);
    }
    for f in [
        Change::CONTENT,
        Change::SIZE,
        Change::TIME,
        Change::ACL,
        Change::XATTR,
    ] {
        if change.contains(f) {
            c |= f;
        }
    }
    if after != sm.perm {
        c |= Change::PERMS;
    }
    c
}
