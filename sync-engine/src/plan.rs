//! The pure planning step: two tree listings and options in, a [`Plan`] out. No filesystem, no
//! clock. Every action records why it is needed as a [`Change`] (the letters of rsync's itemize
//! field).
//!
//! The plan is grouped by destination directory: a [`Group`] holds the actions on the direct
//! children of one directory (deletions first, then directory creations, then the rest) and the
//! attribute fix of the directory itself, which is applied after its whole subtree. Groups are
//! in pre-order, so a directory is created before any group that works inside it.

use std::collections::HashMap;

use crate::itemize::Change;
use crate::listing::{Idx, Kind, Listing, Meta, NONE, Paired, Time, paired_children};

/// Options the planner needs, already resolved against the run (no I/O here).
#[derive(Debug, Clone, Default)]
pub struct PlanOptions {
    /// Delete extraneous entries (false with `--no-delete` or after a source read error).
    pub delete: bool,
    /// At most this many deletions (type replacements included).
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
    /// over the name. Carried out after every group, when the first file is in place.
    Link,
    /// Move the stamp (access time) of a racy DST file whose content was found equal, so it is
    /// trusted by size and mtime again (see [`crate::racy`]). Not a change of the mirror: never
    /// itemized or counted.
    Stamp,
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
    /// Where its itemize line goes in rsync's order (see [`Plan::slots`]).
    pub slot: u32,
}

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

/// The complete plan of a run.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    pub groups: Vec<Group>,
    pub actions: Vec<Action>,
    /// DST does not exist and is created.
    pub create_root: bool,
    /// `--max-delete` stopped some deletions.
    pub delete_limited: bool,
    /// `-H`: each SRC file that is a hard link of an earlier one, and that leader.
    pub leaders: HashMap<Idx, Idx>,
    /// Number of output slots: the itemize lines of a run come in rsync's order, which is this
    /// numbering (per directory in pre-order: its own line, its deletions, then its other
    /// entries in name order; its subdirectories' lines open their own groups), whatever order
    /// the parallel work finishes in.
    pub slots: u32,
    pub counts: PlanCounts,
}

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

/// Plans the mirror of `src` onto `dst`. `dst` may be empty (no root): DST is then created.
pub fn plan(src: &Listing, dst: &Listing, opts: &PlanOptions) -> Plan {
    let mut p = Planner {
        src,
        dst,
        opts,
        budget: opts.max_delete,
        plan: Plan::default(),
        deletes: Vec::new(),
        mkdirs: Vec::new(),
        others: Vec::new(),
        leaders: if opts.hard_links {
            leaders_of(src)
        } else {
            HashMap::new()
        },
        leader_state: HashMap::new(),
    };
    if src.is_empty() {
        return p.plan;
    }
    let root_dst = if dst.is_empty() || dst.meta(0).kind != Kind::Dir {
        NONE
    } else {
        0
    };
    p.plan.create_root = root_dst == NONE;
    p.dir(0, root_dst);
    let mut leaders = std::mem::take(&mut p.leaders);
    leaders.retain(|f, l| f != l);
    p.plan.leaders = leaders;
    p.plan
}

struct Planner<'a> {
    src: &'a Listing,
    dst: &'a Listing,
    opts: &'a PlanOptions,
    budget: Option<u64>,
    plan: Plan,
    deletes: Vec<Action>,
    mkdirs: Vec<Action>,
    others: Vec<Action>,
    /// `-H`: each SRC file that is a hard link of an earlier one, and that first one (its
    /// group's leader). Leaders map to themselves.
    leaders: HashMap<Idx, Idx>,
    /// For each leader planned so far: its DST entry (NONE: none) and whether this plan writes
    /// it anew (a new inode, so its links must be made again).
    leader_state: HashMap<Idx, (Idx, bool)>,
}

/// The hard-link groups of `src` (files with the same device and inode): each member mapped to
/// the group's leader, the member the planner meets first (parent directory first in
/// pre-order, then name order).
fn leaders_of(src: &Listing) -> HashMap<Idx, Idx> {
    let mut groups: HashMap<(u64, u64), Vec<Idx>> = HashMap::new();
    for (&i, &ino) in &src.inodes {
        groups.entry(ino).or_default().push(i);
    }
    let mut out = HashMap::new();
    for members in groups.into_values().filter(|m| m.len() > 1) {
        let Some(&leader) = members.iter().min_by_key(|&&i| (src.entry(i).parent, i)) else {
            continue;
        };
        for m in members {
            out.insert(m, leader);
        }
    }
    out
}

impl Planner<'_> {
    /// `-H`: the SRC file `a` is a hard link of an earlier file (its leader). Returns false
    /// when `a` is a leader or in no group (planned as a file of its own).
    fn follower(&mut self, a: Idx, b: Idx, change: Change) -> bool {
        let Some(&leader) = self.leaders.get(&a).filter(|&&l| l != a) else {
            return false;
        };
        let (ld, rewritten) = self
            .leader_state
            .get(&leader)
            .copied()
            .unwrap_or((NONE, true));
        let ino = |i: Idx| (i != NONE).then(|| self.dst.inodes.get(&i)).flatten();
        let linked = b != NONE
            && self.dst.meta(b).kind == Kind::File
            && !rewritten
            && ino(b).is_some()
            && ino(b) == ino(ld);
        if !linked {
            self.plan.counts.created += u64::from(change.contains(Change::NEW));
            self.others.push(Action {
                op: Op::Link,
                src: a,
                dst: b,
                change,
                slot: 0,
            });
        }
        true
    }

    /// Records what the plan does with leader `a` (DST entry `b`), for its followers.
    fn lead(&mut self, a: Idx, b: Idx, rewritten: bool) {
        if self.leaders.get(&a) == Some(&a) {
            self.leader_state.insert(a, (b, rewritten));
        }
    }

    /// Plans directory `s` of SRC against `d` of DST (NONE: created by this run).
    fn dir(&mut self, s: Idx, d: Idx) {
        let gi = self.plan.groups.len();
        let mut subdirs: Vec<(Idx, Idx)> = Vec::new();
        self.deletes.clear();
        self.mkdirs.clear();
        self.others.clear();

        // A directory on another filesystem (`-x`) is listed without contents: leave them.
        let mount = self.src.meta(s).mount || (d != NONE && self.dst.meta(d).mount);
        for p in paired_children(self.src, s, self.dst, d).filter(|_| !mount) {
            match p {
                Paired::Src(a) => self.create(a, NONE, Change::NEW, &mut subdirs),
                Paired::Dst(b) => self.extraneous(b),
                Paired::Both(a, b) => self.both(a, b, &mut subdirs),
            }
        }

        let base = self.plan.slots;
        let dir_slot = base;
        let mut next = base + 1;
        for a in self.deletes.iter_mut().chain(self.others.iter_mut()) {
            a.slot = next;
            next += 1;
        }
        self.plan.slots = next;
        let start = self.plan.actions.len() as u32;
        self.plan.actions.append(&mut self.deletes);
        self.plan.actions.append(&mut self.mkdirs);
        self.plan.actions.append(&mut self.others);
        let end = self.plan.actions.len() as u32;
        let finish = if d == NONE {
            Change::NEW
        } else {
            self.attr_diff(self.src.meta(s), self.dst.meta(d), true) | self.xattr_diff(s, d)
        };
        self.plan.groups.push(Group {
            src: s,
            dst: d,
            end: 0,
            actions: start..end,
            finish,
            slot: dir_slot,
        });

        for (cs, cd) in subdirs {
            let child = self.plan.groups.len();
            self.dir(cs, cd);
            if cd == NONE && child < self.plan.groups.len() {
                // A created directory's line is the mkdir in this group: it opens the child's.
                let slot = self.plan.groups[child].slot;
                let acts = &mut self.plan.actions[start as usize..end as usize];
                if let Some(m) = acts.iter_mut().find(|a| a.op == Op::Mkdir && a.src == cs) {
                    m.slot = slot;
                }
            }
        }

        let has_work = start != end || !finish.is_empty() || self.plan.groups.len() > gi + 1;
        if has_work {
            self.plan.groups[gi].end = self.plan.groups.len() as u32;
        } else {
            self.plan.groups.pop();
            self.plan.slots = base;
        }
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
                self.plan.counts.created += 1;
                subdirs.push((a, NONE));
                return;
            }
            Kind::File => {
                if self.follower(a, replaced, change) {
                    return;
                }
                self.lead(a, replaced, true);
                self.plan.counts.copies += 1;
                self.plan.counts.copy_bytes += m.size;
                Op::Copy
            }
            Kind::Symlink => Op::Symlink,
            _ => Op::Mknod,
        };
        self.plan.counts.created += u64::from(change.contains(Change::NEW));
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
            if !self.take_budget(1) {
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
        self.plan.counts.deletions += 1;
    }

    /// Marks the deletion of `b` as the first half of a type replacement: rsync shows only the
    /// creation of the new entry, so the deletion gets no itemize line (`change` = `TYPE`).
    fn mark_replaced(&mut self, b: Idx) {
        if let Some(d) = self.deletes.iter_mut().rev().find(|d| d.dst == b) {
            d.change = Change::TYPE;
        }
    }

    /// Takes `n` deletions from the `--max-delete` budget; false (and marks the plan) if short.
    fn take_budget(&mut self, n: u64) -> bool {
        match &mut self.budget {
            None => true,
            Some(left) if *left >= n => {
                *left -= n;
                true
            }
            Some(_) => {
                self.plan.delete_limited = true;
                false
            }
        }
    }

    /// Entry present on both sides under the same name.
    fn both(&mut self, a: Idx, b: Idx, subdirs: &mut Vec<(Idx, Idx)>) {
        let (sm, dm) = (*self.src.meta(a), *self.dst.meta(b));
        // A FIFO that is a socket in DST (or a character device that is a block device) is
        // recreated as a change of its content, as rsync shows it (`cSc...`), not replaced.
        let same_class = matches!(
            (sm.kind, dm.kind),
            (
                Kind::CharDev | Kind::BlockDev,
                Kind::CharDev | Kind::BlockDev
            ) | (Kind::Fifo | Kind::Socket, Kind::Fifo | Kind::Socket)
        );
        if sm.kind != dm.kind && !same_class {
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
        self.plan.counts.attr_fixes += 1;
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
        if self.follower(a, b, change) {
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
        self.lead(a, b, transfer);
        if transfer {
            self.plan.counts.copies += 1;
            self.plan.counts.copy_bytes += sm.size;
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

    /// Same name, different types: the DST entry is replaced.
    fn replace(&mut self, a: Idx, b: Idx, subdirs: &mut Vec<(Idx, Idx)>) {
        let dst_kind = self.dst.meta(b).kind;
        if dst_kind == Kind::Dir {
            let doomed = self.deletable(b);
            if !self.take_budget(doomed.len() as u64) {
                return;
            }
            for &i in doomed.iter().rev() {
                self.delete(i);
            }
            self.mark_replaced(b);
            self.create(a, NONE, Change::TYPE, subdirs);
        } else if self.src.meta(a).kind == Kind::Dir {
            if !self.take_budget(1) {
                return;
            }
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
        let part = |v: &[(Vec<u8>, Vec<u8>)], acl: bool| {
            v.iter()
                .filter(|(n, _)| crate::xattr::is_acl(n) == acl)
                .cloned()
                .collect::<Vec<_>>()
        };
        let mut c = Change::NONE;
        if part(x, true) != part(y, true) {
            c |= Change::ACL;
        }
        if part(x, false) != part(y, false) {
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
