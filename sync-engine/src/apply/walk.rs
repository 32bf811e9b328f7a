//! The walk: one directory pair at a time, read both sides, plan, act, then the
//! subdirectories in parallel, then the directory's own attributes. Nothing of a directory's
//! listing is kept once its entries are done: only the names and attributes of its
//! subdirectories while they are walked, so memory follows the directories in flight (and the
//! widest of them), not the size of the tree; the first file is written long before the last
//! directory is read.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::Ordering;

use rayon::prelude::*;

use super::{Applier, NodeId, Shared, join};
use crate::error::Side;
use crate::filter::DirRules;
use crate::itemize::Change;
use crate::listing::{Idx, Kind, Listing, Meta, NONE, Xattrs};
use crate::plan::{DeleteBudget, Op, plan_dir};
use crate::report::Counters;
use crate::scan::{self, DirScan};
use crate::sys::{self, Owner};

/// One directory pair to walk.
pub(crate) struct Job {
    /// Relative to the roots (empty for the roots).
    pub path: Vec<u8>,
    pub sfd: OwnedFd,
    /// `None` only in a dry run, for a directory the run would create.
    pub dfd: Option<OwnedFd>,
    pub smeta: Meta,
    pub sxattrs: Xattrs,
    /// DST's directory as it was, `None` when this run creates it.
    pub dmeta: Option<Meta>,
    pub dxattrs: Xattrs,
    /// The filter rules of the parent directories, on each side.
    pub srules: DirRules,
    pub drules: DirRules,
    pub node: NodeId,
    /// Number of directories between the roots and this one (0 for the roots).
    pub depth: u32,
}

/// Directories this deep and deeper do not keep their handles open while their subtree is
/// walked: their subdirectories are opened from the roots (component by component, following
/// no symlink) and they are opened again for their own attributes. Without it a chain of
/// nested directories would hold two descriptors per level and fail with EMFILE (rsync itself
/// has no depth limit).
const OPEN_DEPTH: u32 = 32;

/// The two scans of a directory pair, when the caller read them already (the roots, for the
/// empty-source guard).
pub(crate) struct Read {
    pub src: DirScan,
    pub dst: DirScan,
}

/// The scan contexts and root directories of both sides.
pub(crate) struct Sides<'a> {
    pub src: &'a scan::Ctx<'a>,
    pub dst: &'a scan::Ctx<'a>,
    pub src_root: BorrowedFd<'a>,
    /// `None` in a dry run whose DST does not exist.
    pub dst_root: Option<BorrowedFd<'a>>,
}

/// Reads both directories of `job` (the DST side is an empty listing for a created one).
pub(crate) fn read(sh: &Shared<'_>, sides: &Sides<'_>, job: &Job) -> Read {
    let mut src = scan::read_dir(
        sides.src,
        job.sfd.as_fd(),
        &job.path,
        job.smeta,
        &job.srules,
    );
    if !job.sxattrs.is_empty() {
        src.listing.xattrs.insert(0, job.sxattrs.clone());
    }
    let errors = sides.src.take_errors();
    if !errors.is_empty() {
        sh.src_failed.store(true, Ordering::Relaxed);
    }
    for e in errors {
        Counters::add(&sh.counters.errors, 1);
        sh.obs.error(&e);
    }
    let dst = match (&job.dfd, job.dmeta) {
        (Some(fd), Some(m)) => {
            let mut d = scan::read_dir(sides.dst, fd.as_fd(), &job.path, m, &job.drules);
            if !job.dxattrs.is_empty() {
                d.listing.xattrs.insert(0, job.dxattrs.clone());
            }
            d
        }
        _ => DirScan {
            listing: Listing::default(),
            rules: job.drules.clone(),
            unreadable: Vec::new(),
        },
    };
    for e in sides.dst.take_errors() {
        Counters::add(&sh.counters.errors, 1);
        sh.obs.error(&e);
    }
    Read { src, dst }
}

/// A subdirectory to walk next: what the parent knows of it.
struct Child {
    name: Vec<u8>,
    smeta: Meta,
    sxattrs: Xattrs,
    dmeta: Option<Meta>,
    dxattrs: Xattrs,
    node: NodeId,
}

/// Walks `job` and everything below it. `read` holds the directory pair's scans when the
/// caller made them.
pub(crate) fn walk(sh: &Shared<'_>, sides: &Sides<'_>, job: Job, read_done: Option<Read>) {
    if sh.cancelled() {
        sh.dir_read(0);
        sh.order.abandon(job.node, sh.obs);
        return;
    }
    let Read {
        src: mut s,
        dst: mut d,
    } = read_done.unwrap_or_else(|| read(sh, sides, &job));
    count_entries(sh, &s.listing, &d.listing);
    let created = job.dmeta.is_none();
    let droot = if created { NONE } else { 0 };

    // Contents that decide: `--checksum`, racy copies, files to recheck.
    let hashed_at = match &job.dfd {
        Some(dfd) if !created => compare(
            sh,
            &job,
            job.sfd.as_fd(),
            &mut s.listing,
            dfd.as_fd(),
            &mut d.listing,
        ),
        _ => None,
    };
    let popts = crate::plan::PlanOptions {
        hashed_at,
        ..sh.popts.clone()
    };
    let plan = plan_dir(
        &s.listing,
        0,
        &d.listing,
        droot,
        &popts,
        &mut DeleteBudget::new(None),
    );
    if !s.unreadable.is_empty()
        && plan
            .actions
            .iter()
            .any(|a| a.op == Op::Copy && s.unreadable.binary_search(&a.src).is_ok())
    {
        // The copy of a file we may not read will fail: like a read error, no deletions.
        sh.src_failed.store(true, Ordering::Relaxed);
    }
    let kids = sh
        .order
        .close(job.node, plan.slots, plan.subdirs.len(), sh.obs);
    sh.dir_read(plan.subdirs.len());
    // Directories count as checked with their parent (as in rsync's file list); the others
    // once their line comes.
    let acted = plan
        .actions
        .iter()
        .filter(|a| !matches!(a.op, Op::Delete | Op::Stamp | Op::Mkdir | Op::Unchanged))
        .count()
        + plan.linked.len();
    sh.obs
        .unchanged((s.listing.len() as u64 - 1).saturating_sub(acted as u64));
    let ap = Applier {
        sh,
        src: &s.listing,
        dst: &d.listing,
        path: &job.path,
        node: job.node,
        kids: &kids,
        subdirs: &plan.subdirs,
        hashed_at,
        new_files: Default::default(),
        drules: &d.rules,
    };
    ap.dir_line(plan.finish);
    for &(a, b) in &plan.linked {
        super::links::enlist(&ap, a, b);
    }

    let mut finish = plan.finish;
    let dfd = job.dfd.as_ref().map(|f| f.as_fd());
    let changes_entries = plan
        .actions
        .iter()
        .any(|a| !matches!(a.op, Op::Stamp | Op::Unchanged));
    if let (Some(dfd), Some(dm)) = (dfd, job.dmeta)
        && !sh.is_root
        && !sh.dry_run
        && changes_entries
        && dm.perm & 0o300 != 0o300
    {
        // Like rsync: make our own directory writable while we work in it.
        let tmp = Meta {
            perm: dm.perm | 0o700,
            ..job.smeta
        };
        if sys::set_attrs_fd(dfd, &tmp, Owner::default(), None).is_ok() {
            finish |= Change::PERMS;
        }
    }
    let touched = match dfd {
        Some(dfd) => ap.entries(&plan.actions, dfd, job.sfd.as_fd()),
        None => {
            // A dry run into a directory that does not exist: nothing to read or write.
            dry(&ap, &plan.actions);
            false
        }
    };

    let children: Vec<Child> = plan
        .subdirs
        .iter()
        .zip(&kids)
        .map(|(&(cs, cd), &node)| Child {
            name: s.listing.name(cs).to_vec(),
            smeta: *s.listing.meta(cs),
            sxattrs: s.listing.xattrs_of(cs).to_vec(),
            dmeta: (cd != NONE).then(|| *d.listing.meta(cd)),
            dxattrs: if cd != NONE {
                d.listing.xattrs_of(cd).to_vec()
            } else {
                Vec::new()
            },
            node,
        })
        .collect();
    let (srules, drules) = (std::mem::take(&mut s.rules), std::mem::take(&mut d.rules));
    let sfinal = (*s.listing.meta(0), s.listing.xattrs_of(0).to_vec());
    let dxattrs = if created {
        None
    } else {
        Some(d.listing.xattrs_of(0).to_vec())
    };
    // rsync sets a changed ACL with the mode's group and other bits cleared when the sticky
    // bit goes on (a directory it creates has none yet), unless xattrs change too.
    let dmeta = (!created).then(|| *d.listing.meta(0));
    let masked = super::dir_masked(
        &sh.xattrs,
        &sfinal.0,
        &sfinal.1,
        dmeta.as_ref(),
        dxattrs.as_deref().unwrap_or_default(),
    );
    // The listings are not needed below: free them before the subtree is walked.
    drop((s, d));

    let had_dst = job.dfd.is_some();
    let (sfd, jdfd) = if job.depth >= OPEN_DEPTH {
        drop((job.sfd, job.dfd));
        (None, None)
    } else {
        (Some(job.sfd), job.dfd)
    };
    let parent = Parent {
        path: &job.path,
        fds: sfd
            .as_ref()
            .map(|s| (s.as_fd(), jdfd.as_ref().map(|d| d.as_fd()))),
        had_dst,
        depth: job.depth,
    };
    children.par_iter().for_each(|c| {
        descend(sh, sides, &parent, c, &srules, &drules);
    });

    if sh.cancelled() {
        return;
    }
    if sh.dry_run {
        count_finish(sh, plan.finish);
        return;
    }
    if !had_dst || (!touched && finish.is_empty()) {
        return;
    }
    let reopened;
    let dfd = match &jdfd {
        Some(fd) => fd.as_fd(),
        None => {
            let r = sides
                .dst_root
                .ok_or_else(|| std::io::Error::from(std::io::ErrorKind::NotFound))
                .and_then(|root| sys::open_dir_beneath(root, &job.path));
            match r {
                Ok(fd) => {
                    reopened = fd;
                    reopened.as_fd()
                }
                Err(e) => return sh.fail_at("open directory", Side::Dest, job.path.clone(), e),
            }
        }
    };
    if touched || !finish.is_empty() {
        let m = &sfinal.0;
        let r = sys::set_attrs_fd(dfd, m, sh.owners.for_meta(m), None)
            .and_then(|()| {
                let target = sys::XattrTarget::Fd(dfd);
                super::put_xattrs(sh, target, dxattrs.as_deref(), &sfinal.1, masked)
            })
            .and_then(|()| {
                if sh.fsync && touched {
                    sys::fsync(dfd)
                } else {
                    Ok(())
                }
            });
        match r {
            Ok(()) => count_finish(sh, plan.finish),
            Err(e) => sh.fail_at("set attributes of", Side::Dest, job.path.clone(), e),
        }
    }
}

/// What a subdirectory's walk needs of its parent.
struct Parent<'a> {
    path: &'a [u8],
    /// The parent's handles in SRC and DST, `None` past [`OPEN_DEPTH`].
    fds: Option<(BorrowedFd<'a>, Option<BorrowedFd<'a>>)>,
    /// The parent exists in DST (or is created there by this run).
    had_dst: bool,
    depth: u32,
}

/// Opens subdirectory `c` of `parent` on both sides and walks it.
fn descend(
    sh: &Shared<'_>,
    sides: &Sides<'_>,
    parent: &Parent<'_>,
    c: &Child,
    srules: &DirRules,
    drules: &DirRules,
) {
    let path = join(parent.path, &c.name);
    let opened = match parent.fds {
        Some((sfd, _)) => sys::open_dir_at(sfd, &c.name),
        None => sys::open_dir_beneath(sides.src_root, &path),
    };
    let sfd = match opened {
        Ok(fd) => fd,
        Err(e) => {
            if e.kind() == std::io::ErrorKind::NotFound {
                sh.vanished_at(&path);
            } else {
                sh.src_failed.store(true, Ordering::Relaxed);
                sh.fail_at("open directory", Side::Source, path, e);
            }
            sh.dir_read(0);
            return sh.order.abandon(c.node, sh.obs);
        }
    };
    let dfd = match (parent.had_dst, parent.fds) {
        (false, _) => None,
        _ if sh.dry_run && c.dmeta.is_none() => None,
        (true, fds) => match fds.and_then(|(_, d)| d).map_or_else(
            || match sides.dst_root {
                Some(root) => sys::open_dir_beneath(root, &path),
                None => Err(std::io::ErrorKind::NotFound.into()),
            },
            |pfd| sys::open_dir_at(pfd, &c.name),
        ) {
            Ok(fd) => Some(fd),
            Err(e) => {
                sh.fail_at("open directory", Side::Dest, path, e);
                sh.dir_read(0);
                return sh.order.abandon(c.node, sh.obs);
            }
        },
    };
    let job = Job {
        path,
        sfd,
        dfd,
        smeta: c.smeta,
        sxattrs: c.sxattrs.clone(),
        dmeta: c.dmeta,
        dxattrs: c.dxattrs.clone(),
        srules: srules.clone(),
        drules: drules.clone(),
        node: c.node,
        depth: parent.depth + 1,
    };
    walk(sh, sides, job, None);
}

/// A dry run's actions in a directory that does not exist yet.
pub(crate) fn dry(ap: &Applier<'_>, acts: &[crate::plan::Action]) {
    for a in acts {
        let bytes = if a.op == Op::Copy {
            ap.src.meta(a.src).size
        } else {
            0
        };
        if a.op != Op::Stamp {
            ap.count(a, bytes);
        }
        ap.emit_action(a, bytes);
    }
}

fn count_finish(sh: &Shared<'_>, finish: Change) {
    if !finish.is_empty() && !finish.contains(Change::NEW) {
        Counters::add(&sh.counters.attrs_fixed, 1);
    }
}

/// Adds the directory pair's entries to the run's totals.
fn count_entries(sh: &Shared<'_>, src: &Listing, dst: &Listing) {
    let c = sh.counters;
    let n = src.len().saturating_sub(1) as u64;
    Counters::add(&c.src_entries, n);
    let (mut files, mut bytes) = (0, 0);
    let [mut dirs, mut links, mut devs, mut specials, mut link_bytes] = [0u64; 5];
    for i in 1..src.len() as Idx {
        let m = src.meta(i);
        match m.kind {
            Kind::File => {
                files += 1;
                bytes += m.size;
            }
            Kind::Dir => dirs += 1,
            Kind::Symlink => {
                links += 1;
                link_bytes += m.size;
            }
            Kind::CharDev | Kind::BlockDev => devs += 1,
            Kind::Fifo | Kind::Socket => specials += 1,
        }
    }
    Counters::add(&c.src_files, files);
    Counters::add(&c.src_bytes, bytes);
    Counters::add(&c.src_dirs, dirs);
    Counters::add(&c.src_symlinks, links);
    Counters::add(&c.src_devices, devs);
    Counters::add(&c.src_specials, specials);
    Counters::add(&c.src_link_bytes, link_bytes);
    sh.obs.scanned(n, bytes + link_bytes);
    let dst_entries = (1..dst.len() as Idx)
        .filter(|&i| !dst.meta(i).protected)
        .count() as u64;
    Counters::add(&c.dst_entries, dst_entries);
}

/// Hashes the pairs whose contents decide (every same-size pair with `--checksum`; without
/// it the racy copies and the files to recheck); returns when the reading began.
fn compare(
    sh: &Shared<'_>,
    job: &Job,
    sfd: BorrowedFd<'_>,
    src: &mut Listing,
    dfd: BorrowedFd<'_>,
    dst: &mut Listing,
) -> Option<crate::listing::Time> {
    let recheck: Vec<Idx> = if sh.recheck.is_empty() {
        Vec::new()
    } else {
        (1..src.len() as Idx)
            .filter(|&i| sh.recheck.contains(&join(&job.path, src.name(i))))
            .collect()
    };
    let racy = (1..dst.len() as Idx).any(|i| dst.meta(i).racy);
    let which = if sh.checksum {
        scan::Compare::All
    } else if racy || !recheck.is_empty() {
        scan::Compare::Untrusted {
            window: sh.modify_window,
            recheck: &recheck,
        }
    } else {
        return None;
    };
    let at = sys::now();
    let n = scan::fill_checksums(sfd, src, dfd, dst, &which);
    if !sh.checksum {
        Counters::add(&sh.counters.rechecked, n);
    }
    Some(at)
}
