//! One run of [`crate::sync`], step by step: open both roots (checking that neither tree holds
//! the other), scan SRC then DST, refuse an empty source, compare the contents the quick check
//! cannot decide (`--checksum`, racy copies, files to recheck), plan, apply.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::apply::{self, walk};
use crate::error::{Error, Side};
use crate::filter::{DirRules, Filter};
use crate::listing::Meta;
use crate::options::Options;
use crate::plan::{DeleteBudget, PlanOptions};
use crate::report::{self, Observer, Report};
use crate::scan;
use crate::sys;

/// The two roots of a run, opened.
pub(crate) struct Roots<'a> {
    src: &'a Path,
    dst: &'a Path,
    src_fd: OwnedFd,
    src_meta: Meta,
    /// `None`: DST does not exist yet and is created when there is something to do.
    dst_fd: Option<(OwnedFd, Meta)>,
}

impl<'a> Roots<'a> {
    pub fn open(src: &'a Path, dst: &'a Path, trust_links: bool) -> Result<Roots<'a>, Error> {
        let (src_fd, src_meta) = open_source(src)?;
        let dst_fd = open_dest(src, dst, trust_links)?;
        Ok(Roots {
            src,
            dst,
            src_fd,
            src_meta,
            dst_fd,
        })
    }
}

pub(crate) struct Run<'a> {
    filter: &'a Filter,
    opts: &'a Options,
    obs: &'a dyn Observer,
}

impl<'a> Run<'a> {
    pub fn new(filter: &'a Filter, opts: &'a Options, obs: &'a dyn Observer) -> Run<'a> {
        Run { filter, opts, obs }
    }

    pub fn go(&self, roots: Roots<'_>) -> Result<Report, Error> {
        let Roots {
            src,
            dst,
            src_fd,
            src_meta,
            dst_fd,
        } = roots;
        let o = self.opts;
        if let Some((fd, _)) = dst_fd.as_ref().filter(|_| !o.dry_run) {
            lock(fd, dst)?;
        }
        let src_above = above_root(self.filter, src)?;
        let dst_above = match &dst_fd {
            Some(_) => above_root(self.filter, dst)?,
            None => DirRules::default(),
        };
        let is_root = sys::euid() == 0;
        let owners = apply::OwnerPolicy {
            owner: o.preserve_owner.unwrap_or(is_root),
            groups: Some(if is_root {
                None
            } else {
                Some(sys::own_groups())
            }),
        };
        let xattrs = crate::xattr::Policy {
            xattrs: o.xattrs,
            acls: o.acls,
            root: is_root,
        };
        let scan_opts = |side, above| scan::ScanOpts {
            side,
            filter: self.filter,
            above,
            hard_links: o.hard_links,
            xattrs,
            one_fs: o.one_file_system,
        };
        let sopts = scan_opts(Side::Source, &src_above);
        let sctx = scan::Ctx::new(src_fd.as_fd(), &sopts);
        let dopts = scan_opts(Side::Dest, &dst_above);
        let dctx = match &dst_fd {
            Some((fd, _)) => scan::Ctx::new(fd.as_fd(), &dopts),
            None => scan::Ctx::new(src_fd.as_fd(), &dopts),
        };
        let counters = report::Counters::default();
        let never = AtomicBool::new(false);
        let budget = DeleteBudget::new(match (o.max_delete, &dst_fd) {
            (None, _) => None,
            (Some(crate::MaxDelete::Count(n)), _) => Some(n),
            // Counted through a descriptor of its own: listing DST's root through `fd` would
            // move the offset the scan of the root then starts from (it saw an empty DST).
            (Some(m), Some((fd, _))) => Some(
                m.limit(
                    sys::open_dir_at(fd.as_fd(), b".")
                        .map(|own| count_tree(own.as_fd()))
                        .unwrap_or(0),
                ),
            ),
            (Some(_), None) => Some(0),
        });
        let sh = apply::Shared {
            owners: owners.clone(),
            is_root,
            obs: self.obs,
            counters: &counters,
            cancel: o.cancel.as_deref().unwrap_or(&never),
            has_excludes: self.filter.protects(),
            delta: o.delta,
            inplace: o.inplace,
            verify_written: o.verify_written,
            modify_window: o.modify_window,
            xattrs,
            order: apply::Order::new(self.obs.wants_items()),
            fsync: o.fsync,
            dry_run: o.dry_run,
            popts: PlanOptions {
                delete: o.delete,
                max_delete: None,
                modify_window: o.modify_window,
                checksum: o.checksum,
                owner: owners.owner,
                groups: owners.groups.clone(),
                hashed_at: None,
                hard_links: o.hard_links,
                itemize_unchanged: o.itemize_unchanged && self.obs.wants_items(),
            },
            budget: Mutex::new(budget),
            deferred: Mutex::new(Vec::new()),
            linked: Mutex::new(Vec::new()),
            src_failed: AtomicBool::new(false),
            filter: self.filter,
            recheck: o.recheck.iter().cloned().collect(),
            checksum: o.checksum,
            dst_dev: match (&dst_fd, o.one_file_system) {
                (Some((fd, _)), n) if n > 0 => sys::device_of(fd.as_fd()).unwrap_or(0),
                _ => 0,
            },
            copy_method: sys::CopyMethod::default(),
            umask: sys::umask(),
            unread: std::sync::atomic::AtomicU64::new(1),
        };
        let src_keep = src_fd.try_clone().map_err(|e| io_err("open", src, e))?;
        let first_sides = walk::Sides {
            src: &sctx,
            dst: &dctx,
            src_root: src_keep.as_fd(),
            dst_root: None,
        };
        let sxattrs = sctx.dir_xattrs(src_fd.as_fd());
        let (dfd, dmeta, dxattrs) = match dst_fd {
            Some((fd, m)) => {
                let x = dctx.dir_xattrs(fd.as_fd());
                (Some(fd), Some(m), x)
            }
            None => (None, None, Vec::new()),
        };
        let node = sh.order.root();
        let mut job = walk::Job {
            path: Vec::new(),
            sfd: src_fd,
            dfd,
            smeta: src_meta,
            sxattrs,
            dmeta,
            dxattrs,
            srules: src_above.clone(),
            drules: dst_above.clone(),
            node,
            depth: 0,
        };
        let first = walk::read(&sh, &first_sides, &job);
        let dst_has = (1..first.dst.listing.len() as crate::listing::Idx)
            .any(|i| !first.dst.listing.meta(i).protected);
        if o.delete && !o.allow_empty_source && first.src.listing.len() == 1 && dst_has {
            return Err(Error::EmptySource {
                src: src.to_owned(),
                dst: dst.to_owned(),
            });
        }
        if job.dmeta.is_none() {
            // DST does not exist: made first (its attributes are set after its contents).
            if !o.dry_run {
                sys::mkdir_path(dst).map_err(|e| io_err("create destination", dst, e))?;
                let fd = sys::open_dir_path(dst).map_err(|e| io_err("open destination", dst, e))?;
                lock(&fd, dst)?;
                job.dfd = Some(fd);
            }
            report::Counters::add(&counters.created, 1);
            sh.order.done(node, 0, root_line(self.obs), self.obs);
        }
        let dst_keep = match &job.dfd {
            Some(fd) => Some(fd.try_clone().map_err(|e| io_err("open", dst, e))?),
            None => None,
        };
        let sides = walk::Sides {
            dst_root: dst_keep.as_ref().map(|d| d.as_fd()),
            ..first_sides
        };
        walk::walk(&sh, &sides, job, Some(first));

        let members = std::mem::take(&mut *sh.linked.lock().unwrap_or_else(|p| p.into_inner()));
        if !members.is_empty() {
            let d = dst_keep.as_ref().unwrap_or(&src_keep);
            apply::links::run_links(&sh, src_keep.as_fd(), d.as_fd(), members);
        }
        let failed = sh.src_failed.load(Ordering::Relaxed);
        let deferred = std::mem::take(&mut *sh.deferred.lock().unwrap_or_else(|p| p.into_inner()));
        if !failed
            && !deferred.is_empty()
            && let Some(d) = &dst_keep
        {
            let left = sh.budget.lock().unwrap_or_else(|p| p.into_inner()).left;
            let refused = o.max_delete_all_or_nothing
                && left
                    .is_some_and(|left| apply::delete::queued_entries(d.as_fd(), &deferred) > left);
            if refused {
                sh.budget.lock().unwrap_or_else(|p| p.into_inner()).limited = true;
            } else {
                apply::delete::run_deferred(&sh, d.as_fd(), deferred);
            }
        }
        sh.order.abandon(node, self.obs);
        let mut report = Report {
            dry_run: o.dry_run,
            deletions_disabled: o.delete && failed,
            delete_limited: sh.budget.lock().unwrap_or_else(|p| p.into_inner()).limited,
            ..Report::default()
        };
        counters.fill(&mut report);
        report.vanished += sctx.vanished();
        Ok(report)
    }
}

/// The line of DST's root when this run creates it: `cd+++++++++ ./`.
fn root_line(obs: &dyn Observer) -> Option<apply::Line> {
    use crate::itemize::{Change, Update, field};
    use crate::listing::Kind;
    obs.wants_items().then(|| apply::Line {
        field: field(Update::Local, Kind::Dir, Change::NEW),
        op: crate::plan::Op::Mkdir,
        kind: Kind::Dir,
        path: Vec::new(),
        link: None,
        bytes: 0,
    })
}

/// The entries of the tree under `root` (root excluded), counted by reading its directories
/// (no `lstat` unless the directory entry does not say its type): the base of
/// `--max-delete=P%`.
pub(crate) fn count_tree(root: BorrowedFd<'_>) -> u64 {
    use rayon::prelude::*;
    let mut names = Vec::new();
    if sys::read_dir_types_at(root, &mut names).is_err() {
        return 0;
    }
    let n = names.len() as u64;
    n + names
        .par_iter()
        .filter(|(_, is_dir)| *is_dir)
        .map(|(name, _)| match sys::open_dir_at(root, name) {
            Ok(fd) => count_tree(fd.as_fd()),
            Err(_) => 0,
        })
        .sum::<u64>()
}

fn io_err(op: &'static str, path: &Path, source: io::Error) -> Error {
    Error::Io {
        op,
        path: path.to_owned(),
        source,
    }
}

pub(crate) fn open_source(src: &Path) -> Result<(OwnedFd, Meta), Error> {
    let fd = sys::open_dir_path(src).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => Error::SourceMissing {
            path: src.to_owned(),
        },
        io::ErrorKind::NotADirectory => Error::SourceNotDir {
            path: src.to_owned(),
        },
        _ => io_err("open source", src, e),
    })?;
    let st = sys::fstat(fd.as_fd()).map_err(|e| io_err("stat source", src, e))?;
    let meta = sys::meta_of(&st).ok_or_else(|| Error::SourceNotDir {
        path: src.to_owned(),
    })?;
    Ok((fd, meta))
}

/// Opens DST if it exists (None when it must be created), after checking that neither tree
/// contains the other.
fn open_dest(src: &Path, dst: &Path, trust_links: bool) -> Result<Option<(OwnedFd, Meta)>, Error> {
    if !trust_links {
        trusted_path(dst)?;
    }
    let src_real = std::fs::canonicalize(src).map_err(|e| io_err("resolve source", src, e))?;
    let dst_real = match std::fs::canonicalize(dst) {
        Ok(p) => Some(p),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) if e.kind() == io::ErrorKind::NotADirectory => {
            return Err(Error::DestParentMissing {
                path: dst.to_owned(),
            });
        }
        Err(e) => return Err(io_err("resolve destination", dst, e)),
    };
    let dst_cmp = match &dst_real {
        Some(p) => p.clone(),
        None => {
            let parent = match dst.parent() {
                Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
                _ => PathBuf::from("."),
            };
            let parent_real =
                std::fs::canonicalize(&parent).map_err(|_| Error::DestParentMissing {
                    path: dst.to_owned(),
                })?;
            if !parent_real.is_dir() {
                return Err(Error::DestParentMissing {
                    path: dst.to_owned(),
                });
            }
            parent_real.join(dst.file_name().unwrap_or_default())
        }
    };
    if dst_cmp.starts_with(&src_real) {
        return Err(Error::DestInsideSource {
            src: src.to_owned(),
            dst: dst.to_owned(),
        });
    }
    if src_real.starts_with(&dst_cmp) {
        return Err(Error::SourceInsideDest {
            src: src.to_owned(),
            dst: dst.to_owned(),
        });
    }
    if dst_real.is_none() {
        return Ok(None);
    }
    let fd = sys::open_dir_path(dst).map_err(|e| {
        if e.kind() == io::ErrorKind::NotADirectory {
            Error::DestNotDir {
                path: dst.to_owned(),
            }
        } else {
            io_err("open destination", dst, e)
        }
    })?;
    let st = sys::fstat(fd.as_fd()).map_err(|e| io_err("stat destination", dst, e))?;
    let meta = sys::meta_of(&st).ok_or_else(|| Error::DestNotDir {
        path: dst.to_owned(),
    })?;
    Ok(Some((fd, meta)))
}

/// The per-directory filter rules that rules named with a leading `/` (`-F`: `: /.rsync-filter`)
/// read in the parents of `root`, from `/` down.
pub(crate) fn above_root(filter: &Filter, root: &Path) -> Result<DirRules, Error> {
    let mut rules = DirRules::default();
    if !filter.reads_parents() {
        return Ok(rules);
    }
    let real = std::fs::canonicalize(root).map_err(|e| io_err("resolve", root, e))?;
    let ancestors: Vec<&Path> = real.ancestors().skip(1).collect();
    for dir in ancestors.into_iter().rev() {
        let to_root = real.strip_prefix(dir).unwrap_or(&real);
        let fd = sys::open_dir_path(dir).map_err(|e| io_err("open", dir, e))?;
        let mut read = |name: &[u8]| sys::read_small_file_at(fd.as_fd(), name);
        use std::os::unix::ffi::OsStrExt;
        rules = filter.enter_above(&rules, to_root.as_os_str().as_bytes(), &mut read)?;
    }
    Ok(rules)
}

/// As rsync 3.5: every symlink on the way to `dst` (and in the targets it leads to) must be
/// owned by root or by the user running the sync; one owned by anybody else could redirect the
/// mirror anywhere that user wants (`dest/sub -> /etc` made by `nobody`). Parts of the path that
/// do not exist yet end the walk.
pub(crate) fn trusted_path(dst: &Path) -> Result<(), Error> {
    use std::os::unix::fs::MetadataExt;
    let me = sys::euid();
    let start = if dst.is_absolute() {
        dst.to_path_buf()
    } else {
        std::env::current_dir()
            .map_err(|e| io_err("resolve destination", dst, e))?
            .join(dst)
    };
    let mut todo: Vec<std::ffi::OsString> = start
        .components()
        .rev()
        .filter_map(|c| match c {
            std::path::Component::Normal(n) => Some(n.to_owned()),
            std::path::Component::ParentDir => Some("..".into()),
            _ => None,
        })
        .collect();
    let mut cur = PathBuf::from("/");
    let mut hops = 0;
    while let Some(part) = todo.pop() {
        if part == ".." {
            cur.pop();
            continue;
        }
        let next = cur.join(&part);
        let meta = match std::fs::symlink_metadata(&next) {
            Ok(m) => m,
            Err(_) => return Ok(()),
        };
        if !meta.file_type().is_symlink() {
            cur = next;
            continue;
        }
        if meta.uid() != 0 && meta.uid() != me {
            return Err(Error::UntrustedSymlink {
                dst: dst.to_owned(),
                link: next,
                uid: meta.uid(),
            });
        }
        hops += 1;
        let target = std::fs::read_link(&next).map_err(|e| io_err("read symlink", &next, e))?;
        if hops > 40 {
            return Err(io_err(
                "resolve destination",
                dst,
                io::Error::other("too many levels of symbolic links"),
            ));
        }
        if target.is_absolute() {
            cur = PathBuf::from("/");
        }
        for c in target.components().rev() {
            match c {
                std::path::Component::Normal(n) => todo.push(n.to_owned()),
                std::path::Component::ParentDir => todo.push("..".into()),
                _ => {}
            }
        }
    }
    Ok(())
}

/// Locks DST for this run: two syncs into one tree would trip over each other's temporary
/// files and deletions.
pub(crate) fn lock(fd: &OwnedFd, dst: &Path) -> Result<(), Error> {
    match sys::try_lock(fd.as_fd()) {
        Ok(true) => Ok(()),
        Ok(false) => Err(Error::Locked {
            dst: dst.to_owned(),
            holder: sys::lock_holder(fd.as_fd()),
        }),
        Err(e) => Err(io_err("lock destination", dst, e)),
    }
}
