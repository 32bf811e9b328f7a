//! `-H`: files that are hard links of each other in SRC become hard links of each other in DST.
//! The links of a file may sit in any directory, so the walk only notes each file with several
//! links; once every directory is done, each group (same device and inode in SRC) gets its
//! first member in rsync's file-list order (its leader) copied or fixed like any file, and every other
//! member made a link of it in DST (under a temporary name renamed over the name) unless it
//! already is one. Memory: one entry per file with several links.

use std::os::fd::{AsFd, BorrowedFd};

use super::delete::split;
use super::{Applier, Shared};
use crate::error::Side;
use crate::itemize::{Change, Update, field};
use crate::listing::{Idx, Kind, Listing, Meta, NONE, Xattrs};
use crate::plan::{DeleteBudget, Op, plan_dir};
use crate::report::Counters;
use crate::sys;

/// A SRC file with other hard links, as the walk met it.
pub(crate) struct Member {
    /// Relative to the roots.
    pub path: Vec<u8>,
    pub smeta: Meta,
    pub sxattrs: Xattrs,
    /// SRC's device and inode: the group.
    pub ino: (u64, u64),
    /// DST's entry of the same name, when it has SRC's type or one of its class (see
    /// [`crate::listing::Kind::same_class`]): a regular file, device, FIFO or socket.
    pub dst: Option<DstFile>,
    /// SRC's attributes of the file's directory (set back on DST's when a link changes it).
    pub parent: Meta,
}

/// DST's entry at a member's name: its attributes, inode (when it has other links) and
/// extended attributes.
pub(crate) type DstFile = (Meta, Option<(u64, u64)>, Xattrs);

/// Notes SRC's file `a` (with DST's entry `b`, NONE for none) of the directory `ap` works on.
pub(crate) fn enlist(ap: &Applier<'_>, a: Idx, b: Idx) {
    let Some(&ino) = ap.src.inodes.get(&a) else {
        return;
    };
    let dst = (b != NONE && ap.dst.meta(b).kind.same_class(ap.src.meta(a).kind)).then(|| {
        (
            *ap.dst.meta(b),
            ap.dst.inodes.get(&b).copied(),
            ap.dst.xattrs_of(b).to_vec(),
        )
    });
    ap.linked
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(Member {
            path: ap.full(ap.src, a),
            smeta: *ap.src.meta(a),
            sxattrs: ap.src.xattrs_of(a).to_vec(),
            ino,
            dst,
            parent: *ap.src.meta(0),
        });
}

/// A directory's listing holding only the entry `m` (with attributes `meta` and `xattrs`) of a
/// directory with attributes `parent`: what [`plan_dir`] plans one file from.
pub(crate) fn single(parent: Meta, name: &[u8], meta: Meta, xattrs: &Xattrs) -> Listing {
    let mut l = Listing::with_root_capacity(parent, 1, name.len());
    let i = l.push(name, None, meta, 0);
    if !xattrs.is_empty() {
        l.xattrs.insert(i, xattrs.clone());
    }
    l.close(0);
    l
}

/// Makes the links of every group, groups in the order of their leaders.
pub(crate) fn run_links(
    sh: &Shared<'_>,
    src_root: BorrowedFd<'_>,
    dst_root: BorrowedFd<'_>,
    members: Vec<Member>,
) {
    let mut groups: std::collections::HashMap<(u64, u64), Vec<Member>> =
        std::collections::HashMap::new();
    for m in members {
        groups.entry(m.ino).or_default().push(m);
    }
    let order = rsync_order;
    let mut groups: Vec<Vec<Member>> = groups.into_values().collect();
    for g in &mut groups {
        g.sort_by(|a, b| order(&a.path, &b.path));
    }
    groups.sort_by(|a, b| order(&a[0].path, &b[0].path));
    let mut touched: Vec<(Vec<u8>, Meta)> = Vec::new();
    for g in groups {
        if sh.cancelled() {
            break;
        }
        if let Err((path, e)) = group(sh, src_root, dst_root, &g, &mut touched) {
            sh.fail_at("hard link", Side::Dest, path, e);
        }
    }
    if sh.dry_run {
        return;
    }
    touched.sort_by(|a, b| a.0.cmp(&b.0));
    touched.dedup_by(|a, b| a.0 == b.0);
    super::delete::restore_dirs(sh, dst_root, touched);
}

/// rsync's file-list order of two paths (relative to the roots), which decides the leader of a
/// group (rsync keeps the DST file of the first name it meets): in a directory its files come
/// before the contents of its subdirectories, and subdirectories compare as `NAME/`.
pub(crate) fn rsync_order(a: &[u8], b: &[u8]) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    let (mut ia, mut ib) = (
        a.split(|c| *c == b'/').peekable(),
        b.split(|c| *c == b'/').peekable(),
    );
    loop {
        match (ia.next(), ib.next()) {
            (Some(x), Some(y)) => {
                let (x_dir, y_dir) = (ia.peek().is_some(), ib.peek().is_some());
                if x == y && x_dir == y_dir {
                    continue;
                }
                return match (x_dir, y_dir) {
                    (false, true) => Ordering::Less,
                    (true, false) => Ordering::Greater,
                    (false, false) => x.cmp(y),
                    (true, true) => x.iter().chain(b"/").cmp(y.iter().chain(b"/")),
                };
            }
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
        }
    }
}

type Failed = (Vec<u8>, std::io::Error);

static NO_RULES: crate::filter::DirRules = crate::filter::DirRules::EMPTY;

/// One group: its leader like any file, then the links.
fn group(
    sh: &Shared<'_>,
    src_root: BorrowedFd<'_>,
    dst_root: BorrowedFd<'_>,
    g: &[Member],
    touched: &mut Vec<(Vec<u8>, Meta)>,
) -> Result<(), Failed> {
    let leader = &g[0];
    let (ldir, lname) = split(&leader.path);
    let lsrc = sys::open_dir_beneath(src_root, ldir).map_err(|e| (leader.path.clone(), e))?;
    let ldst = if sh.dry_run {
        sys::open_dir_beneath(dst_root, ldir).ok()
    } else {
        Some(sys::open_dir_beneath(dst_root, ldir).map_err(|e| (leader.path.clone(), e))?)
    };
    let mut src = single(leader.parent, lname, leader.smeta, &leader.sxattrs);
    let mut dst = match &leader.dst {
        Some((m, ino, x)) => {
            let mut l = single(leader.parent, lname, *m, x);
            if let Some(i) = ino {
                l.inodes.insert(1, *i);
            }
            l
        }
        None => Listing::default(),
    };
    let droot = if leader.dst.is_some() { 0 } else { NONE };
    let hashed_at = match &ldst {
        Some(d) if droot == 0 => compare_leader(
            sh,
            &leader.path,
            lsrc.as_fd(),
            &mut src,
            d.as_fd(),
            &mut dst,
        ),
        _ => None,
    };
    let stamped;
    let popts = match hashed_at {
        Some(_) => {
            stamped = crate::plan::PlanOptions {
                hashed_at,
                ..sh.popts.clone()
            };
            &stamped
        }
        None => &sh.popts,
    };
    let plan = plan_dir(&src, 0, &dst, droot, popts, &mut DeleteBudget::new(None));
    let node = sh.order.extra(plan.slots + g.len() as u32 - 1);
    let ap = Applier {
        sh,
        src: &src,
        dst: &dst,
        path: ldir,
        node,
        kids: &[],
        subdirs: &[],
        hashed_at,
        new_files: Default::default(),
        // A member's name holds no directory to delete with filter rules inside: the walk
        // replaced any such directory before the links are made.
        drules: &NO_RULES,
    };
    sh.order.done(node, 0, None, sh.obs);
    let rewritten = plan
        .actions
        .iter()
        .any(|a| matches!(a.op, Op::Copy | Op::Mknod));
    match &ldst {
        Some(d) => {
            if ap.entries(&plan.actions, d.as_fd(), lsrc.as_fd()) {
                touched.push((ldir.to_vec(), leader.parent));
            }
        }
        None => super::walk::dry(&ap, &plan.actions),
    }
    let leader_ino = match &ldst {
        Some(d) if !sh.dry_run => sys::lstat_at(d.as_fd(), lname)
            .ok()
            .map(|st| (st.st_dev, st.st_ino)),
        _ => None,
    };
    for (i, m) in g.iter().enumerate().skip(1) {
        let slot = plan.slots + i as u32 - 1;
        let dst_ino = m.dst.as_ref().and_then(|(_, ino, _)| *ino);
        let linked = !rewritten
            && dst_ino.is_some()
            && (dst_ino == leader_ino || dst_ino == leader.dst.as_ref().and_then(|d| d.1));
        if linked {
            // rsync's `-ii` line of a name that already is a link of the group's file.
            let line =
                (sh.popts.itemize_unchanged && sh.obs.wants_items()).then(|| super::order::Line {
                    field: field(Update::HardLink, Kind::File, Change::NONE),
                    op: Op::Link,
                    kind: Kind::File,
                    path: m.path.clone(),
                    link: None,
                    bytes: 0,
                });
            sh.order.done(node, slot, line, sh.obs);
            continue;
        }
        let change = match &m.dst {
            Some((dm, _, _)) => {
                let mut c = Change::NONE;
                if dm.size != leader.smeta.size {
                    c |= Change::SIZE;
                }
                if dm.mtime != leader.smeta.mtime {
                    c |= Change::TIME;
                }
                if dm.perm != leader.smeta.perm {
                    c |= Change::PERMS;
                }
                c
            }
            None => Change::NEW,
        };
        let (dir, name) = split(&m.path);
        let made = if sh.dry_run {
            Ok(())
        } else {
            link(dst_root, ldir, lname, dir, name)
        };
        match made {
            Ok(()) => {
                if change.contains(Change::NEW) {
                    Counters::add(&sh.counters.created, 1);
                }
                let line = sh.obs.wants_items().then(|| super::order::Line {
                    field: field(Update::HardLink, leader.smeta.kind, change),
                    op: Op::Link,
                    kind: leader.smeta.kind,
                    path: m.path.clone(),
                    link: Some(leader.path.clone()),
                    bytes: 0,
                });
                sh.order.done(node, slot, line, sh.obs);
                touched.push((dir.to_vec(), m.parent));
            }
            Err(e) => {
                sh.order.done(node, slot, None, sh.obs);
                sh.fail_at("hard link", Side::Dest, m.path.clone(), e);
            }
        }
    }
    Ok(())
}

/// Hashes a group's leader and DST's file of its name when their contents decide, as the walk
/// does for other files (`--checksum`, a racy copy, a file to recheck): without, the planner
/// would copy such a leader on every run. Returns when the reading began.
fn compare_leader(
    sh: &Shared<'_>,
    path: &[u8],
    sfd: BorrowedFd<'_>,
    src: &mut Listing,
    dfd: BorrowedFd<'_>,
    dst: &mut Listing,
) -> Option<crate::listing::Time> {
    use crate::scan::{Compare, fill_checksums};
    let recheck: &[Idx] = if sh.recheck.contains(path) { &[1] } else { &[] };
    let which = if sh.checksum {
        Compare::All
    } else if dst.meta(1).racy || !recheck.is_empty() {
        Compare::Untrusted {
            window: sh.modify_window,
            recheck,
        }
    } else {
        return None;
    };
    let at = sys::now();
    fill_checksums(sfd, src, dfd, dst, &which);
    Some(at)
}

/// Makes `dir/name` in DST a hard link of `ldir/lname`, under a temporary name renamed over it.
pub(crate) fn link(
    dst_root: BorrowedFd<'_>,
    ldir: &[u8],
    lname: &[u8],
    dir: &[u8],
    name: &[u8],
) -> std::io::Result<()> {
    let lfd = sys::open_dir_beneath(dst_root, ldir)?;
    let dfd = sys::open_dir_beneath(dst_root, dir)?;
    let ((), tmp) =
        sys::with_temp_name(name, |t| sys::link_at(lfd.as_fd(), lname, dfd.as_fd(), t))?;
    if let Err(e) = sys::rename_at(dfd.as_fd(), tmp.as_bytes(), name) {
        let _ = sys::unlink_at(dfd.as_fd(), tmp.as_bytes(), false);
        return Err(e);
    }
    Ok(())
}

#[cfg(test)]
mod order_tests {
    use super::rsync_order;
    use std::cmp::Ordering::*;

    #[test]
    fn files_of_a_directory_come_before_its_subdirectories_contents() {
        assert_eq!(rsync_order(b"Q", b"7C/x"), Less);
        assert_eq!(rsync_order(b"7C/x", b"Q"), Greater);
        assert_eq!(rsync_order(b"a/b", b"a/c"), Less);
        assert_eq!(rsync_order(b"a/z", b"a/b/c"), Less);
        // Directories compare as NAME/: "a.b/" < "a/" because '.' < '/'.
        assert_eq!(rsync_order(b"a.b/x", b"a/x"), Less);
        assert_eq!(rsync_order(b"a/x", b"a/x"), Equal);
    }
}
