//! The pure planning step: listings and options in, actions out. No filesystem, no clock. Every
//! action records why it is needed as a [`Change`] (the letters of rsync's itemize field).
//!
//! [`plan_dir`] plans one directory pair: the actions on its direct children (deletions first,
//! then directory creations, then the rest, in name order), the subdirectories to plan next,
//! and the attribute fix of the directory itself, which is applied after its subtree. The
//! engine plans each directory as it reads it (so memory follows the directories in flight,
//! not the tree); [`plan`] applies it to every directory of two whole listings, for fuzzing and
//! benchmarks.

use crate::itemize::Change;
use crate::listing::{Idx, Kind, Listing, Meta, NONE, Paired, Time, paired_children};

/// Options the planner needs, already resolved against the run (no I/O here).
#[derive(Debug, Clone, Default)]
pub struct PlanOptions {
    /// Delete extraneous entries (false with `--no-delete` or after a source read error).
    pub delete: bool,
    /// At most this many deletions (type replacements included), for [`plan`]; the engine
    /// keeps its own [`DeleteBudget`] across directories.
    #[cfg_attr(not(any(test, feature = "internals")), allow(dead_code))]
    pub max_delete: Option<u64>,
    /// Seconds within which mtimes count as equal; 0 compares nanoseconds.
    pub modify_window: u32,
    /// Compare file contents by hash instead of mtime.
    pub checksum: bool,
    /// Compare and set owners.
    pub owner: bool,
    /// Compare and set groups: `None` for none, `Some(None)` for every group (root),
    /// `Some(Some(list))` for only the groups in the list (a non-root user's groups).
    pub groups: Option<Option<Vec<u32>>>,
    /// When the contents in the listings' `hashes` were read (no later than any of those
    /// reads): a racy DST file found equal gets this stamp when it makes the copy trusted
    /// (see [`crate::racy`]).
    pub hashed_at: Option<Time>,
    /// Files that are hard links of each other in SRC become hard links in DST (`-H`): the
    /// listings' `inodes` say which.
    pub hard_links: bool,
    /// Give every entry that needs nothing an [`Op::Unchanged`] action, so that its itemize
    /// line (rsync's `-ii`: `.f          name`) has its place in the output; the directory
    /// groups of a whole [`Plan`] are then kept even when nothing in them changes. Off, the
    /// planner does nothing more than without it.
    pub itemize_unchanged: bool,
}

/// What to do with one entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// Remove a DST entry; a directory is empty by then (its contents are deleted before it).
    Delete,
    /// Create a directory (mode 0700 until its group finishes).
    Mkdir,
    /// Copy a regular file into a temporary file and rename it over the name.
    Copy,
    /// Create a symlink under a temporary name and rename it over the name.
    Symlink,
    /// Create a device, FIFO or socket under a temporary name and rename it over the name.
    Mknod,
    /// Fix attributes of an existing non-directory in place.
    SetAttrs,
    /// Make the file a hard link of its group's first file (`-H`), under a temporary name renamed
    /// over the name; planned by the link phase, once every directory is done.
    Link,
    /// Move the stamp (access time) of a racy DST file whose content was found equal, so it is
    /// trusted by size and mtime again (see [`crate::racy`]). Not a change of the mirror: never
    /// itemized or counted (its line is an unchanged one with
    /// [`PlanOptions::itemize_unchanged`]).
    Stamp,
    /// Nothing to do: an entry that already matches SRC, planned only with
    /// [`PlanOptions::itemize_unchanged`] for its line (`.f          name`). Not a change of
    /// the mirror: never counted.
    Unchanged,
}

/// One planned action on a direct child of a group's directory (deletions may reach deeper).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Action {
    pub op: Op,
    /// The SRC entry (NONE for deletions).
    pub src: Idx,
    /// The DST entry being deleted, replaced or fixed (NONE when created from nothing).
    pub dst: Idx,
    /// What differs, for itemizing.
    pub change: Change,
    /// Where its itemize line goes in rsync's order: its place in its directory (see
    /// [`DirPlan::actions`]; in a whole [`Plan`], a number across the run).
    pub slot: u32,
}

#[cfg(any(test, feature = "internals"))]
/// The work inside one DST directory.
#[derive(Debug, Clone)]
pub struct Group {
    /// The directory in SRC.
    pub src: Idx,
    /// The directory in DST, NONE when it is created by this run.
    pub dst: Idx,
    /// One past the last group of this group's subtree.
    pub end: u32,
    /// Range of [`Plan::actions`].
    pub actions: std::ops::Range<u32>,
    /// Attributes of the directory itself to set after its subtree; `NEW` for created ones.
    pub finish: Change,
    /// The slot of the directory's own itemize line (its creation or its attribute fix).
    pub slot: u32,
}

/// Counts of a plan, for summaries and progress.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PlanCounts {
    pub copies: u64,
    pub copy_bytes: u64,
    pub created: u64,
    pub deletions: u64,
    pub attr_fixes: u64,
}

#[cfg(any(test, feature = "internals"))]
/// The complete plan of a run.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    pub groups: Vec<Group>,
    pub actions: Vec<Action>,
    /// DST does not exist and is created.
    pub create_root: bool,
    /// `--max-delete` stopped some deletions.
    pub delete_limited: bool,
    /// Number of output slots: the itemize lines of a run come in rsync's order, which is this
    /// numbering (per directory in pre-order: its own line, its deletions, then its other
    /// entries in name order; its subdirectories' lines open their own groups), whatever order
    /// the parallel work finishes in.
    pub slots: u32,
    pub counts: PlanCounts,
    /// `-H`: SRC files with other hard links and DST's entry of the same name (see
    /// [`DirPlan::linked`]), left to a link phase after every directory (no action here).
    pub linked: Vec<(Idx, Idx)>,
}

#[cfg(any(test, feature = "internals"))]
impl Plan {
    /// True when the run would change nothing.
    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }

    /// The actions of group `g`.
    pub fn actions_of(&self, g: usize) -> &[Action] {
        let r = &self.groups[g].actions;
        &self.actions[r.start as usize..r.end as usize]
    }

    /// The direct child groups of group `g`.
    pub fn child_groups(&self, g: usize) -> impl Iterator<Item = usize> + '_ {
        let end = self.groups[g].end as usize;
        let mut next = g + 1;
        std::iter::from_fn(move || {
            if next >= end {
                return None;
            }
            let cur = next;
            next = self.groups[cur].end as usize;
            Some(cur)
        })
    }
}

/// True when two mtimes count as equal. With a window of 0, nanoseconds are compared where both
/// sides have them; a side with 0 nanoseconds may be a filesystem that does not keep them, so
/// then whole seconds are compared.
pub fn same_time(a: Time, b: Time, window: u32) -> bool {
    if window > 0 {
        return a.sec.abs_diff(b.sec) <= u64::from(window);
    }
    if a.nsec == 0 || b.nsec == 0 {
        a.sec == b.sec
    } else {
        a == b
    }
}

/// What [`plan_dir`] decided for one directory pair.
#[derive(Debug, Clone, Default)]
pub struct DirPlan {
    /// The actions on the directory's direct children: deletions, then directory creations,
    /// then the rest in name order. Slot 0 is the directory's own line; the actions that print
    /// have slots from 1 on.
    pub actions: Vec<Action>,
    /// Output slots of this directory, slot 0 included.
    pub slots: u32,
    /// The subdirectories to plan next, in name order: SRC's entry and DST's (NONE when this
    /// run creates it).
    pub subdirs: Vec<(Idx, Idx)>,
    /// The directory's own attribute differences (`NEW` when it is created).
    pub finish: Change,
    pub counts: PlanCounts,
    /// `--max-delete` stopped some deletions.
    pub delete_limited: bool,
    /// `-H`: SRC files with other hard links, with DST's entry of the same name (NONE: none,
    /// or one removed to make room): planned together once every directory is done, since the
    /// other links may be anywhere.
    pub linked: Vec<(Idx, Idx)>,
}

/// What is left of the `--max-delete` limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeleteBudget {
    /// Deletions still allowed (`None`: no limit).
    pub left: Option<u64>,
    /// Some deletion was refused.
    pub limited: bool,
}

impl DeleteBudget {
    pub fn new(limit: Option<u64>) -> DeleteBudget {
        DeleteBudget {
            left: limit,
            limited: false,
        }
    }

    /// Takes `n` deletions; false (and remembers it) when fewer are left.
    pub fn take(&mut self, n: u64) -> bool {
        match &mut self.left {
            None => true,
            Some(left) if *left >= n => {
                *left -= n;
                true
            }
            Some(_) => {
                self.limited = true;
                false
            }
        }
    }
}

/// Plans directory `s` of `src` against `d` of `dst` (NONE: the directory does not exist in
/// DST and is created). Deletions take from `budget`.
pub fn plan_dir(
    src: &Listing,
    s: Idx,
    dst: &Listing,
    d: Idx,
    opts: &PlanOptions,
    budget: &mut DeleteBudget,
) -> DirPlan {
    let mut p = Planner {
        src,
        dst,
        opts,
        budget,
        out: DirPlan::default(),
        deletes: Vec::new(),
        mkdirs: Vec::new(),
        others: Vec::new(),
    };
    // A directory on another filesystem (`-x`) is listed without contents: leave them.
    let mount = src.meta(s).mount || (d != NONE && dst.meta(d).mount);
    let mut subdirs = Vec::new();
    for pair in paired_children(src, s, dst, d).filter(|_| !mount) {
        match pair {
            Paired::Src(a) => p.create(a, NONE, Change::NEW, &mut subdirs),
            Paired::Dst(b) => p.extraneous(b),
            Paired::Both(a, b) => p.both(a, b, &mut subdirs),
        }
    }
    // rsync's file list orders directories as `NAME/`: `a-b/` comes before `a/`.
    if subdirs.len() > 1 {
        subdirs.sort_by(|&(x, _), &(y, _)| {
            let (x, y) = (src.name(x), src.name(y));
            x.iter().chain(b"/").cmp(y.iter().chain(b"/"))
        });
    }
    let mut next = 1;
    for a in p.deletes.iter_mut().chain(p.others.iter_mut()) {
        a.slot = next;
        next += 1;
    }
    let finish = if d == NONE {
        Change::NEW
    } else {
        p.attr_diff(src.meta(s), dst.meta(d), true) | p.xattr_diff(s, d)
    };
    let mut out = std::mem::take(&mut p.out);
    out.actions = p.deletes;
    out.actions.append(&mut p.mkdirs);
    out.actions.append(&mut p.others);
    out.slots = next;
    out.subdirs = subdirs;
    out.finish = finish;
    out.delete_limited = p.budget.limited;
    out
}

#[cfg(any(test, feature = "internals"))]
/// Plans the mirror of `src` onto `dst` (whole listings): [`plan_dir`] on every directory.
/// `dst` may be empty (no root): DST is then created. Hard links (`-H`) are not planned here:
/// the files left to the link phase are in [`Plan::linked`].
pub fn plan(src: &Listing, dst: &Listing, opts: &PlanOptions) -> Plan {
    let mut out = Plan::default();
    if src.is_empty() {
        return out;
    }
    let root_dst = if dst.is_empty() || dst.meta(0).kind != Kind::Dir {
        NONE
    } else {
        0
    };
    out.create_root = root_dst == NONE;
    let mut budget = DeleteBudget::new(opts.max_delete);
    plan_tree(src, 0, dst, root_dst, opts, &mut budget, &mut out);
    out.delete_limited = budget.limited;
    out
}

#[cfg(any(test, feature = "internals"))]
/// Adds the groups of directory `s` and its subtree to `out`; returns the group's slot.
fn plan_tree(
    src: &Listing,
    s: Idx,
    dst: &Listing,
    d: Idx,
    opts: &PlanOptions,
    budget: &mut DeleteBudget,
    out: &mut Plan,
) {
    let gi = out.groups.len();
    let base = out.slots;
    let mut dp = plan_dir(src, s, dst, d, opts, budget);
    for a in &mut dp.actions {
        if a.op != Op::Mkdir {
            a.slot += base;
        }
    }
    out.slots = base + dp.slots;
    let start = out.actions.len() as u32;
    out.actions.extend_from_slice(&dp.actions);
    let end = out.actions.len() as u32;
    let c = dp.counts;
    out.counts.copies += c.copies;
    out.counts.copy_bytes += c.copy_bytes;
    out.counts.created += c.created;
    out.counts.deletions += c.deletions;
    out.counts.attr_fixes += c.attr_fixes;
    out.linked.extend_from_slice(&dp.linked);
    out.groups.push(Group {
        src: s,
        dst: d,
        end: 0,
        actions: start..end,
        finish: dp.finish,
        slot: base,
    });
    for (cs, cd) in dp.subdirs {
        let child = out.groups.len();
        plan_tree(src, cs, dst, cd, opts, budget, out);
        if cd == NONE && child < out.groups.len() {
            // A created directory's line is the mkdir in this group: it opens the child's.
            let slot = out.groups[child].slot;
            let acts = &mut out.actions[start as usize..end as usize];
            if let Some(m) = acts.iter_mut().find(|a| a.op == Op::Mkdir && a.src == cs) {
                m.slot = slot;
            }
        }
    }
    let has_work = start != end
        || !dp.finish.is_empty()
        || out.groups.len() > gi + 1
        || opts.itemize_unchanged;
    if has_work {
        out.groups[gi].end = out.groups.len() as u32;
    } else {
        out.groups.pop();
        out.slots = base;
    }
}

struct Planner<'a> {
    src: &'a Listing,
    dst: &'a Listing,
    opts: &'a PlanOptions,
    budget: &'a mut DeleteBudget,
    out: DirPlan,
    deletes: Vec<Action>,
    mkdirs: Vec<Action>,
    others: Vec<Action>,
}

impl Planner<'_> {
    /// `-H`: true when SRC's regular file `a` has other hard links; it is left to the link
    /// phase with DST's entry `b`.
    fn linked(&mut self, a: Idx, b: Idx) -> bool {
        if !self.opts.hard_links || !self.src.inodes.contains_key(&a) {
            return false;
        }
        self.out.linked.push((a, b));
        true
    }

    /// SRC entry `a` is missing in DST (or `replaced` is a non-directory of another type that a
    /// rename replaces, or was deleted just before).
    fn create(&mut self, a: Idx, replaced: Idx, change: Change, subdirs: &mut Vec<(Idx, Idx)>) {
        let m = self.src.meta(a);
        let op = match m.kind {
            Kind::Dir => {
                self.mkdirs.push(Action {
                    op: Op::Mkdir,
                    src: a,
                    dst: replaced,
                    change,
                    slot: 0,
                });
                self.out.counts.created += 1;
                subdirs.push((a, NONE));
                return;
            }
            Kind::File => {
                if self.linked(a, replaced) {
                    return;
                }
                self.out.counts.copies += 1;
                self.out.counts.copy_bytes += m.size;
                Op::Copy
            }
            Kind::Symlink => Op::Symlink,
            _ => {
                if self.linked(a, replaced) {
                    return;
                }
                Op::Mknod
            }
        };
        self.out.counts.created += u64::from(change.contains(Change::NEW));
        self.others.push(Action {
            op,
            src: a,
            dst: replaced,
            change,
            slot: 0,
        });
    }

    /// DST entry `b` is not in SRC.
    fn extraneous(&mut self, b: Idx) {
        if !self.opts.delete {
            return;
        }
        for i in self.deletable(b).into_iter().rev() {
            if !self.budget.take(1) {
                return;
            }
            self.delete(i);
        }
    }

    /// The entries of DST's subtree `b` in pre-order, without the protected ones and what is
    /// below them (their directories then stay: deleting them fails as not empty, as in rsync).
    fn deletable(&self, b: Idx) -> Vec<Idx> {
        let end = self.dst.entry(b).end;
        let mut out = Vec::with_capacity((end - b) as usize);
        let mut i = b;
        while i < end {
            let e = self.dst.entry(i);
            if e.meta.protected || e.meta.mount {
                i = e.end;
            } else {
                out.push(i);
                i += 1;
            }
        }
        out
    }

    fn delete(&mut self, i: Idx) {
        self.deletes.push(Action {
            op: Op::Delete,
            src: NONE,
            dst: i,
            change: Change::NONE,
            slot: 0,
        });
        self.out.counts.deletions += 1;
    }

    /// Marks the deletion of `b` as the first half of a type replacement: rsync shows only the
    /// creation of the new entry, so the deletion gets no itemize line (`change` = `TYPE`).
    fn mark_replaced(&mut self, b: Idx) {
        if let Some(d) = self.deletes.iter_mut().rev().find(|d| d.dst == b) {
            d.change = Change::TYPE;
        }
    }

    /// Entry present on both sides under the same name; with `itemize_unchanged`, one that
    /// needs nothing (and is neither a directory, whose line opens its own group, nor a file
    /// left to the link phase) gets an [`Op::Unchanged`] action.
    fn both(&mut self, a: Idx, b: Idx, subdirs: &mut Vec<(Idx, Idx)>) {
        if !self.opts.itemize_unchanged {
            return self.both_changes(a, b, subdirs);
        }
        let (others, linked) = (self.others.len(), self.out.linked.len());
        self.both_changes(a, b, subdirs);
        let kind = self.src.meta(a).kind;
        // A type change stopped by `--max-delete` plans nothing either: it is not unchanged.
        if self.others.len() == others
            && self.out.linked.len() == linked
            && kind != Kind::Dir
            && kind == self.dst.meta(b).kind
        {
            self.others.push(Action {
                op: Op::Unchanged,
                src: a,
                dst: b,
                change: Change::NONE,
                slot: 0,
            });
        }
    }

    /// The actions an entry present on both sides needs.
    fn both_changes(&mut self, a: Idx, b: Idx, subdirs: &mut Vec<(Idx, Idx)>) {
        let (sm, dm) = (*self.src.meta(a), *self.dst.meta(b));
        // A FIFO that is a socket in DST (or a character device that is a block device) is
        // recreated as a change of its content, as rsync shows it (`cSc...`), not replaced.
        if !sm.kind.same_class(dm.kind) {
            return self.replace(a, b, subdirs);
        }
        match sm.kind {
            Kind::Dir => subdirs.push((a, b)),
            Kind::File => self.file(a, b, &sm, &dm),
            Kind::Symlink => {
                let mut change = self.attr_diff(&sm, &dm, false) | self.xattr_diff(a, b);
                if self.src.link(a) != self.dst.link(b) {
                    change |= Change::CONTENT;
                    self.others.push(Action {
                        op: Op::Symlink,
                        src: a,
                        dst: b,
                        change,
                        slot: 0,
                    });
                } else if !change.is_empty() {
                    self.attr_fix(a, b, change);
                }
            }
            Kind::CharDev | Kind::BlockDev | Kind::Fifo | Kind::Socket => {
                if self.linked(a, b) {
                    return;
                }
                let mut change = self.attr_diff(&sm, &dm, true) | self.xattr_diff(a, b);
                let rdev_differs = sm.kind != dm.kind
                    || (matches!(sm.kind, Kind::CharDev | Kind::BlockDev)
                        && sm.rdev() != dm.rdev());
                if rdev_differs {
                    change |= Change::CONTENT;
                }
                // chown clears setuid/setgid bits, and the mode of an existing special file
                // cannot be set again safely (by name, it could follow a symlink swapped in
                // meanwhile): such changes recreate the entry under a temporary name.
                let owner_clears_mode = sm.perm & 0o6000 != 0
                    && (change.contains(Change::OWNER) || change.contains(Change::GROUP));
                if rdev_differs || change.contains(Change::PERMS) || owner_clears_mode {
                    self.others.push(Action {
                        op: Op::Mknod,
                        src: a,
                        dst: b,
                        change,
                        slot: 0,
                    });
                } else if !change.is_empty() {
                    self.attr_fix(a, b, change);
                }
            }
        }
    }

    fn attr_fix(&mut self, a: Idx, b: Idx, change: Change) {
        self.out.counts.attr_fixes += 1;
        self.others.push(Action {
            op: Op::SetAttrs,
            src: a,
            dst: b,
            change,
            slot: 0,
        });
    }

    /// Regular file on both sides: quick check (size and mtime), or contents where they are
    /// known or must be: with `--checksum`, for a racy DST file (see [`crate::racy`]) and for
    /// any pair whose hashes were filled in (files to recheck).
    fn file(&mut self, a: Idx, b: Idx, sm: &Meta, dm: &Meta) {
        let mut change = self.attr_diff(sm, dm, true) | self.xattr_diff(a, b);
        let size_differs = sm.size != dm.size;
        if size_differs {
            change |= Change::SIZE;
        }
        if self.linked(a, b) {
            return;
        }
        let quick_same = !size_differs && !change.contains(Change::TIME);
        let digests = (self.src.hashes.get(&a), self.dst.hashes.get(&b));
        let by_content =
            self.opts.checksum || (quick_same && dm.racy) || matches!(digests, (Some(_), Some(_)));
        let transfer = if by_content {
            let differs = size_differs
                || match digests {
                    (Some(x), Some(y)) => x != y,
                    _ => true,
                };
            if differs && !size_differs {
                change |= Change::CONTENT;
            }
            differs
        } else {
            !quick_same
        };
        if transfer {
            self.out.counts.copies += 1;
            self.out.counts.copy_bytes += sm.size;
            self.others.push(Action {
                op: Op::Copy,
                src: a,
                dst: b,
                change,
                slot: 0,
            });
        } else if !change.is_empty() {
            self.attr_fix(a, b, change);
        } else if dm.racy
            && self
                .opts
                .hashed_at
                .is_some_and(|t| !crate::racy::is_racy(sm.mtime, t))
        {
            self.others.push(Action {
                op: Op::Stamp,
                src: a,
                dst: b,
                change,
                slot: 0,
            });
        }
    }

    /// Same name, different types: the DST entry is replaced. As in rsync, the replaced entry
    /// does not count against `--max-delete`; what a replaced directory held does.
    fn replace(&mut self, a: Idx, b: Idx, subdirs: &mut Vec<(Idx, Idx)>) {
        let dst_kind = self.dst.meta(b).kind;
        if dst_kind == Kind::Dir {
            let doomed = self.deletable(b);
            if !self.budget.take(doomed.len().saturating_sub(1) as u64) {
                return;
            }
            for &i in doomed.iter().rev() {
                self.delete(i);
            }
            self.mark_replaced(b);
            self.create(a, NONE, Change::TYPE, subdirs);
        } else if self.src.meta(a).kind == Kind::Dir {
            self.delete(b);
            self.mark_replaced(b);
            self.create(a, NONE, Change::TYPE, subdirs);
        } else {
            self.create(a, b, Change::TYPE, subdirs);
        }
    }

    /// ACL and xattr differences of SRC's `a` and DST's `b` (the listings hold them only with
    /// `-A`/`-X`).
    fn xattr_diff(&self, a: Idx, b: Idx) -> Change {
        let (x, y) = (self.src.xattrs_of(a), self.dst.xattrs_of(b));
        if x == y {
            return Change::NONE;
        }

        let mut c = Change::NONE;
        // rsync compares access ACLs without the entries the mode holds (those are `p`).
        use crate::xattr::{access_acl, access_acls_equal, default_acl};
        if !access_acls_equal(access_acl(x), access_acl(y)) || default_acl(x) != default_acl(y) {
            c |= Change::ACL;
        }
        if crate::xattr::others_differ(x, y) {
            c |= Change::XATTR;
        }
        c
    }

    /// Attribute differences other than size and content. `perms`: whether permissions count
    /// (not for symlinks, whose mode Linux cannot change).
    fn attr_diff(&self, s: &Meta, d: &Meta, perms: bool) -> Change {
        let mut c = Change::NONE;
        if perms && s.perm != d.perm {
            c |= Change::PERMS;
        }
        if self.opts.owner && s.uid != d.uid {
            c |= Change::OWNER;
        }
        if let Some(allowed) = &self.opts.groups {
            let settable = allowed.as_ref().is_none_or(|list| list.contains(&s.gid));
            if settable && s.gid != d.gid {
                c |= Change::GROUP;
            }
        }
        if !same_time(s.mtime, d.mtime, self.opts.modify_window) {
            c |= Change::TIME;
        }
        c
    }
}

#[cfg(test)]
mod tests;
