//! The engine's pieces for a mirror between two hosts (the `sync-remote` crate owns the wire):
//! a whole-tree [`scan_tree`] of one side, [`plan_tree`] (the one pure planner, applied to two
//! whole listings) and a [`Target`] that applies one received action at a time under DST's
//! root with the same rules as a local run: every name is checked (one path component, not
//! `.` or `..`, no `/` or NUL), directories are reached from the root's handle without
//! following any symlink, files and symlinks are made under a temporary name and renamed over
//! the final one.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

pub use crate::apply::shown_attrs;
pub use crate::error::{Error, FileError, Side};
pub use crate::itemize::Change;
pub use crate::listing::{Idx, Kind, Listing, Meta, NONE, Time, Xattrs};
use crate::options::Options;
use crate::plan::DeleteBudget;
pub use crate::plan::{Action, Group, Op, Plan, PlanOptions};
use crate::sys;
pub use crate::xattr::Policy as XattrPolicy;

/// One side of a remote run, scanned.
#[derive(Debug, Default)]
pub struct Tree {
    /// Empty (no root) when DST does not exist yet.
    pub listing: Listing,
    /// Entries that could not be read.
    pub errors: Vec<FileError>,
}

fn io_err(op: &'static str, path: &Path, source: io::Error) -> Error {
    Error::Io {
        op,
        path: path.to_owned(),
        source,
    }
}

/// Scans SRC (which must be a directory) with the excludes and filter rules of `opts`.
pub fn scan_source(src: &Path, opts: &Options) -> Result<Tree, Error> {
    let (fd, meta) = crate::run::open_source(src)?;
    scan_open(fd, meta, Side::Source, src, opts)
}

/// Opens DST for a run: `Ok(None)` when it does not exist (its parent must), an error when it
/// is not a directory or a symlink in its path is not trusted (see `--insecure-links`).
pub fn open_dest(dst: &Path, opts: &Options) -> Result<Option<(OwnedFd, Meta)>, Error> {
    if !opts.insecure_links {
        crate::run::trusted_path(dst)?;
    }
    match sys::open_dir_path(dst) {
        Ok(fd) => {
            let st = sys::fstat(fd.as_fd()).map_err(|e| io_err("stat destination", dst, e))?;
            let meta = sys::meta_of(&st).ok_or_else(|| Error::DestNotDir {
                path: dst.to_owned(),
            })?;
            Ok(Some((fd, meta)))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let parent = match dst.parent() {
                Some(p) if !p.as_os_str().is_empty() => p,
                _ => Path::new("."),
            };
            if parent.is_dir() {
                Ok(None)
            } else {
                Err(Error::DestParentMissing {
                    path: dst.to_owned(),
                })
            }
        }
        Err(e) if e.kind() == io::ErrorKind::NotADirectory => {
            if dst.symlink_metadata().is_ok() {
                Err(Error::DestNotDir {
                    path: dst.to_owned(),
                })
            } else {
                Err(Error::DestParentMissing {
                    path: dst.to_owned(),
                })
            }
        }
        Err(e) => Err(io_err("open destination", dst, e)),
    }
}

/// Takes the lock on DST against a second run.
pub fn lock_dest(fd: &OwnedFd, dst: &Path) -> Result<(), Error> {
    crate::run::lock(fd, dst)
}

/// The attributes of the open file `f` as the mirror keeps them; `None` when it is not a
/// regular file.
pub fn file_meta(f: &std::fs::File) -> io::Result<Option<Meta>> {
    let st = sys::fstat(f.as_fd())?;
    Ok(sys::meta_of(&st).filter(|m| m.kind == Kind::File))
}

/// The hashes that decide `--checksum` (and racy copies) for the regular files at `paths`
/// below the open directory `root` (XXH3-128, as the local `-c`), hashed in parallel;
/// `None` where an entry is not a regular file any more or cannot be read. Nothing is followed:
/// directories are opened one component at a time from `root`.
pub fn hash_files(root: BorrowedFd<'_>, paths: &[Vec<u8>]) -> Vec<Option<[u8; 32]>> {
    use rayon::prelude::*;
    paths
        .par_iter()
        .map(|path| {
            let (parent, name) = split_path(path).ok()?;
            let dir = sys::open_dir_beneath(root, parent).ok()?;
            let fd = sys::open_read_at(dir.as_fd(), name).ok()?;
            let st = sys::fstat(fd.as_fd()).ok()?;
            sys::meta_of(&st).filter(|m| m.kind == Kind::File)?;
            sys::hash_file_with(&fd, sys::HashKind::Xxh3).ok()
        })
        .collect()
}

/// The number of entries below the open directory (for `--max-delete=P%`).
pub fn count_entries(fd: BorrowedFd<'_>) -> u64 {
    crate::run::count_tree(fd)
}

/// Scans DST opened with [`open_dest`] (excluded entries are listed as protected).
pub fn scan_dest(fd: OwnedFd, meta: Meta, dst: &Path, opts: &Options) -> Result<Tree, Error> {
    scan_open(fd, meta, Side::Dest, dst, opts)
}

fn scan_open(
    fd: OwnedFd,
    meta: Meta,
    side: Side,
    root: &Path,
    opts: &Options,
) -> Result<Tree, Error> {
    let filter = crate::filter::Filter::new(
        &opts.filters,
        &opts.excludes,
        opts.delete_excluded,
        &|p: &str| std::fs::read_to_string(p),
    )?;
    let above = crate::run::above_root(&filter, root)?;
    let so = crate::scan::ScanOpts {
        side,
        filter: &filter,
        above: &above,
        hard_links: opts.hard_links,
        xattrs: xattr_policy(opts, sys::euid() == 0),
        one_fs: opts.one_file_system,
    };
    let pool = crate::worker_pool(opts.threads)?;
    let scan = pool.install(|| crate::scan::scan(fd, meta, &so));
    Ok(Tree {
        listing: scan.listing,
        errors: scan.errors,
    })
}

/// The plan of the mirror of `src` onto `dst` (an empty `dst`: DST is created). With `-H` the
/// files with other hard links are in [`Plan::linked`], for [`plan_links`].
pub fn plan_tree(src: &Listing, dst: &Listing, opts: &PlanOptions) -> Plan {
    crate::plan::plan(src, dst, opts)
}

/// The extended attributes and ACLs a run with `opts` mirrors (`-X`, `-A`), as a local run
/// reads them: `root` as the super-user (every namespace but `system.*`), else `user.*` only.
pub fn xattr_policy(opts: &Options, root: bool) -> XattrPolicy {
    XattrPolicy {
        xattrs: opts.xattrs,
        acls: opts.acls,
        root,
    }
}

/// SRC's mode when rsync sets the changed ACL of the existing non-directory fixed by
/// `change` masked (as a local run does): the `masked` of [`Target::set_attrs`].
pub fn attrs_masked(policy: &XattrPolicy, change: Change, sm: &Meta, dm: &Meta) -> Option<u32> {
    crate::apply::attrs_masked(policy, change, sm, dm)
}

/// SRC's mode when rsync sets a directory's ACL masked (`dm`, `dx`: DST's directory as it
/// was, `None` and none when the run creates it): the `masked` of [`Target::dir_attrs`].
pub fn dir_masked(
    policy: &XattrPolicy,
    sm: &Meta,
    sx: &[(Vec<u8>, Vec<u8>)],
    dm: Option<&Meta>,
    dx: &[(Vec<u8>, Vec<u8>)],
) -> Option<u32> {
    crate::apply::dir_masked(policy, sm, sx, dm, dx)
}

/// One `-H` group (SRC files of one device and inode), decided as a local run decides it.
#[derive(Debug, Clone)]
pub struct LinkGroup {
    /// The first member in rsync's file-list order: copied or fixed like any file.
    pub leader: Idx,
    /// The leader's actions (indices of the whole listings; none when it needs nothing).
    pub actions: Vec<Action>,
    /// The other members, in rsync's order.
    pub members: Vec<LinkMember>,
    /// The counts of the leader's actions.
    pub counts: crate::plan::PlanCounts,
}

/// A member of a [`LinkGroup`] other than its leader.
#[derive(Debug, Clone, Copy)]
pub struct LinkMember {
    pub src: Idx,
    /// DST's entry of the same name when it is of the leader's class (NONE: none).
    pub dst: Idx,
    /// It already is a link of the leader's DST file: nothing to do.
    pub linked: bool,
    /// What its itemize line shows (`NEW` for a name DST lacks).
    pub change: Change,
}

/// The link phase of a whole-listing plan (`linked`: [`Plan::linked`]): the files with other
/// hard links grouped by SRC's inode, groups in the order of their leaders; each leader
/// planned from its own one-entry listings exactly as the local link phase plans it, each
/// other member made a link of the leader unless it already is one.
pub fn plan_links(
    src: &Listing,
    dst: &Listing,
    linked: &[(Idx, Idx)],
    opts: &PlanOptions,
) -> Vec<LinkGroup> {
    use crate::apply::links::{rsync_order, single};
    // Per SRC inode: each member's path, SRC entry and DST entry.
    type Members = Vec<(Vec<u8>, Idx, Idx)>;
    let mut by_ino: std::collections::HashMap<(u64, u64), Members> =
        std::collections::HashMap::new();
    for &(a, b) in linked {
        let Some(&ino) = src.inodes.get(&a) else {
            continue;
        };
        let b = if b != NONE && dst.meta(b).kind.same_class(src.meta(a).kind) {
            b
        } else {
            NONE
        };
        by_ino.entry(ino).or_default().push((src.path(a), a, b));
    }
    let mut groups: Vec<Members> = by_ino.into_values().collect();
    for g in &mut groups {
        g.sort_by(|x, y| rsync_order(&x.0, &y.0));
    }
    groups.sort_by(|x, y| rsync_order(&x[0].0, &y[0].0));
    let mut out = Vec::with_capacity(groups.len());
    for g in groups {
        let (_, a, b) = &g[0];
        let (a, b) = (*a, *b);
        let parent = *src.meta(src.entry(a).parent);
        let name = src.name(a);
        let mut s1 = single(parent, name, *src.meta(a), &src.xattrs_of(a).to_vec());
        if let Some(h) = src.hashes.get(&a) {
            s1.hashes.insert(1, *h);
        }
        let (d1, droot) = if b != NONE {
            let mut l = single(parent, name, *dst.meta(b), &dst.xattrs_of(b).to_vec());
            if let Some(i) = dst.inodes.get(&b) {
                l.inodes.insert(1, *i);
            }
            if let Some(h) = dst.hashes.get(&b) {
                l.hashes.insert(1, *h);
            }
            (l, 0)
        } else {
            (Listing::default(), NONE)
        };
        let dp = crate::plan::plan_dir(&s1, 0, &d1, droot, opts, &mut DeleteBudget::new(None));
        let map = |i: Idx, to: Idx| if i == 1 { to } else { i };
        let actions: Vec<Action> = dp
            .actions
            .iter()
            .map(|x| Action {
                src: map(x.src, a),
                dst: map(x.dst, b),
                ..*x
            })
            .collect();
        let rewritten = actions.iter().any(|x| matches!(x.op, Op::Copy | Op::Mknod));
        let leader_ino = (b != NONE).then(|| dst.inodes.get(&b)).flatten();
        let lm = src.meta(a);
        let members = g[1..]
            .iter()
            .map(|&(_, ma, mb)| {
                let dst_ino = (mb != NONE).then(|| dst.inodes.get(&mb)).flatten();
                let linked = !rewritten && dst_ino.is_some() && dst_ino == leader_ino;
                let change = if mb == NONE {
                    Change::NEW
                } else {
                    let dm = dst.meta(mb);
                    let mut c = Change::NONE;
                    if dm.size != lm.size {
                        c |= Change::SIZE;
                    }
                    if dm.mtime != lm.mtime {
                        c |= Change::TIME;
                    }
                    if dm.perm != lm.perm {
                        c |= Change::PERMS;
                    }
                    c
                };
                LinkMember {
                    src: ma,
                    dst: mb,
                    linked,
                    change,
                }
            })
            .collect();
        out.push(LinkGroup {
            leader: a,
            actions,
            members,
            counts: dp.counts,
        });
    }
    out
}

/// The effective user id of this process.
pub fn euid() -> u32 {
    sys::euid()
}

/// The groups this process may give files (when not root).
pub fn own_groups() -> Vec<u32> {
    sys::own_groups()
}

/// Why a received path was refused.
fn bad_name(path: &[u8]) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!(
            "refused path {:?}: not a plain relative path below the destination",
            String::from_utf8_lossy(path)
        ),
    )
}

/// Splits a received path into its parent directory and its last name, refusing anything that
/// could leave DST: empty components, `.`, `..`, NUL bytes, a leading `/`.
pub fn split_path(path: &[u8]) -> io::Result<(&[u8], &[u8])> {
    if path.is_empty() || path.len() > 4096 {
        return Err(bad_name(path));
    }
    for part in path.split(|b| *b == b'/') {
        if part.is_empty() || part == b"." || part == b".." || part.contains(&0) || part.len() > 255
        {
            return Err(bad_name(path));
        }
    }
    Ok(match path.iter().rposition(|b| *b == b'/') {
        Some(i) => (&path[..i], &path[i + 1..]),
        None => (&b""[..], path),
    })
}

/// Reads SRC's files by their path relative to SRC's root, following no symlink on the way.
pub struct Source {
    root: OwnedFd,
    last: Option<(Vec<u8>, OwnedFd)>,
}

impl Source {
    /// Opens SRC's root.
    pub fn open(src: &Path) -> Result<Source, Error> {
        let (root, _) = crate::run::open_source(src)?;
        Ok(Source { root, last: None })
    }

    /// SRC's root handle.
    pub fn root(&self) -> BorrowedFd<'_> {
        self.root.as_fd()
    }

    /// Opens the entry at `path` for reading without checking its type (without following a
    /// symlink or blocking on a FIFO): the caller `fstat`s it after the read.
    pub fn open_any(&mut self, path: &[u8]) -> io::Result<std::fs::File> {
        let (parent, name) = split_path(path)?;
        let hit = matches!(&self.last, Some((p, _)) if p == parent);
        if !hit {
            let fd = sys::open_dir_beneath(self.root.as_fd(), parent)?;
            self.last = Some((parent.to_vec(), fd));
        }
        let Some((_, d)) = &self.last else {
            return Err(io::Error::other("no directory"));
        };
        Ok(std::fs::File::from(sys::open_read_at(d.as_fd(), name)?))
    }

    /// Opens the regular file at `path` for reading; `None` when it is not one any more.
    pub fn file(&mut self, path: &[u8]) -> io::Result<Option<std::fs::File>> {
        let f = self.open_any(path)?;
        Ok(file_meta(&f)?.is_some().then_some(f))
    }
}

/// Applies received actions below DST's root (see the module documentation).
pub struct Target {
    root: OwnedFd,
    owner: bool,
    /// `None`: every group may be set (root); otherwise only these.
    groups: Option<Vec<u32>>,
    /// The last directory opened: consecutive entries of one directory reuse it.
    last: Option<OpenDir>,
    /// The process's umask, when known (new files are created with their final mode when it
    /// leaves that mode alone: no `fchmod` then).
    umask: Option<u32>,
    /// The extended attributes and ACLs mirrored (`-X`, `-A`).
    xattrs: XattrPolicy,
}

/// The extended attributes an entry gets (`-X`, `-A`): SRC's, sorted by name, and SRC's mode
/// when rsync would set a changed access ACL masked (see [`attrs_masked`], [`dir_masked`]).
#[derive(Debug, Clone, Copy)]
pub struct WantXattrs<'a> {
    pub want: &'a [(Vec<u8>, Vec<u8>)],
    pub masked: Option<u32>,
}

/// A directory of DST open for work, with what was learned about new files in it.
struct OpenDir {
    path: Vec<u8>,
    fd: std::sync::Arc<OwnedFd>,
    /// A default ACL may decide the mode of files created here (asked once).
    default_acl: Option<bool>,
    /// The owner and group the kernel gives new files here (learned from the first).
    new_owner: Option<(u32, u32)>,
}

/// A file being received: written under a temporary name, renamed by [`Target::commit`].
pub struct NewFile {
    dir: std::sync::Arc<OwnedFd>,
    name: Vec<u8>,
    tmp: sys::TempName,
    /// The temporary file, for writing and reading back.
    pub file: std::fs::File,
    /// It was created with this mode, which the kernel left alone.
    exact: Option<u32>,
    done: bool,
}

impl Drop for NewFile {
    fn drop(&mut self) {
        if !self.done {
            let _ = sys::unlink_at(self.dir.as_fd(), self.tmp.as_bytes(), false);
        }
    }
}

impl Target {
    /// The target whose root is the open directory `root`; ownership is set when running as
    /// root (as rsync -a).
    pub fn new(root: OwnedFd) -> Target {
        let is_root = sys::euid() == 0;
        Target {
            root,
            owner: is_root,
            groups: if is_root {
                None
            } else {
                Some(sys::own_groups())
            },
            last: None,
            umask: sys::umask(),
            xattrs: XattrPolicy::default(),
        }
    }

    /// Mirrors the extended attributes and ACLs `policy` names (`-X`, `-A`): new entries get
    /// what they are given (none when nothing is given), fixed ones what they are given.
    pub fn set_xattr_policy(&mut self, policy: XattrPolicy) {
        self.xattrs = policy;
    }

    /// Makes the attributes of `target` (a new entry: `given` or none; an existing one only
    /// when `given`) those wanted, reading what it has first.
    fn put_xattrs(
        &self,
        target: sys::XattrTarget<'_>,
        given: Option<WantXattrs<'_>>,
        new: bool,
    ) -> io::Result<()> {
        if !self.xattrs.any() || (!new && given.is_none()) {
            return Ok(());
        }
        let (want, masked) = given.map_or((&[][..], None), |g| (g.want, g.masked));
        crate::apply::put_xattrs_with(&self.xattrs, target, None, want, masked)
    }

    /// Creates DST (mode 0700 until its attributes are set at the end) and returns its target.
    pub fn create(dst: &Path) -> Result<Target, Error> {
        sys::mkdir_path(dst).map_err(|e| io_err("create destination", dst, e))?;
        let fd = sys::open_dir_path(dst).map_err(|e| io_err("open destination", dst, e))?;
        Ok(Target::new(fd))
    }

    /// A second target on the same root (for a thread of its own).
    pub fn try_clone(&self) -> io::Result<Target> {
        Ok(Target {
            root: self.root.try_clone()?,
            owner: self.owner,
            groups: self.groups.clone(),
            last: None,
            umask: self.umask,
            xattrs: self.xattrs,
        })
    }

    /// The DST root's handle.
    pub fn root(&self) -> BorrowedFd<'_> {
        self.root.as_fd()
    }

    fn owner_for(&self, m: &Meta) -> sys::Owner {
        let gid = match &self.groups {
            None => Some(m.gid),
            Some(list) if list.contains(&m.gid) => Some(m.gid),
            _ => None,
        };
        sys::Owner {
            uid: self.owner.then_some(m.uid),
            gid,
        }
    }

    /// The directory `parent` (relative to the root), opened without following symlinks.
    fn dir(&mut self, parent: &[u8]) -> io::Result<BorrowedFd<'_>> {
        Ok(self.open_dir(parent)?.fd.as_fd())
    }

    fn open_dir(&mut self, parent: &[u8]) -> io::Result<&mut OpenDir> {
        let hit = matches!(&self.last, Some(d) if d.path == parent);
        if !hit {
            let fd = sys::open_dir_beneath(self.root.as_fd(), parent)?;
            self.last = Some(OpenDir {
                path: parent.to_vec(),
                fd: std::sync::Arc::new(fd),
                default_acl: None,
                new_owner: None,
            });
        }
        self.last
            .as_mut()
            .ok_or_else(|| io::Error::other("no directory"))
    }

    /// Forgets the cached directory handle (after the directory may have been replaced).
    fn forget(&mut self) {
        self.last = None;
    }

    /// Removes the entry at `path` (a directory must be empty).
    pub fn delete(&mut self, path: &[u8], is_dir: bool) -> io::Result<()> {
        let (parent, name) = split_path(path)?;
        let name = name.to_vec();
        let d = self.dir(parent)?;
        let r = sys::unlink_at(d, &name, is_dir);
        if is_dir {
            self.forget();
        }
        match r {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            r => r,
        }
    }

    /// Creates the directory at `path` (mode 0700 until [`Target::dir_attrs`]).
    pub fn mkdir(&mut self, path: &[u8]) -> io::Result<()> {
        let (parent, name) = split_path(path)?;
        let name = name.to_vec();
        let d = self.dir(parent)?;
        sys::mkdir_at(d, &name)
    }

    /// Starts receiving the regular file at `path`, whose permissions will be `perm`: an empty
    /// temporary file next to it, created with `perm` when the kernel gives it exactly that
    /// (no setuid/setgid/sticky bit, readable and writable by its owner, nothing the umask
    /// clears, no default ACL in the directory), else with 0600 until [`Target::commit`].
    pub fn begin_file(&mut self, path: &[u8], perm: u32) -> io::Result<NewFile> {
        let (parent, name) = split_path(path)?;
        let name = name.to_vec();
        let umask = self.umask;
        // With `-A` an ACL may be set on the file: its mode is set afterwards, as locally.
        let acls = self.xattrs.acls;
        let d = self.open_dir(parent)?;
        let plain = perm & 0o7000 == 0
            && perm & 0o600 == 0o600
            && !acls
            && umask.is_some_and(|u| u & perm == 0);
        let exact = plain
            && !*d
                .default_acl
                .get_or_insert_with(|| sys::may_have_default_acl(d.fd.as_fd()));
        let dir = std::sync::Arc::clone(&d.fd);
        let mode = if exact { perm } else { 0o600 };
        let (fd, tmp) =
            sys::with_temp_name(&name, |t| sys::create_file_mode_at(dir.as_fd(), t, mode))?;
        Ok(NewFile {
            dir,
            name,
            tmp,
            file: std::fs::File::from(fd),
            exact: exact.then_some(perm),
            done: false,
        })
    }

    /// Opens the current file at `path` for reading (the base of a delta); `None` when it is
    /// not a regular file any more.
    pub fn open_old(&mut self, path: &[u8]) -> io::Result<Option<std::fs::File>> {
        let (parent, name) = split_path(path)?;
        let name = name.to_vec();
        let d = self.dir(parent)?;
        let fd = sys::open_read_at(d, &name)?;
        let st = sys::fstat(fd.as_fd())?;
        Ok(
            (sys::meta_of(&st).map(|m| m.kind) == Some(Kind::File))
                .then(|| std::fs::File::from(fd)),
        )
    }

    /// Gives the received file its attributes (only the owner, group and mode that differ from
    /// what it was created with) and renames it over its name.
    pub fn commit(&mut self, f: NewFile, meta: &Meta) -> io::Result<()> {
        self.commit_with(f, meta, None)
    }

    /// [`Target::commit`], with the extended attributes `xattrs` set before the rename (with
    /// `-X`/`-A`: none given, the file gets none).
    pub fn commit_with(
        &mut self,
        mut f: NewFile,
        meta: &Meta,
        xattrs: Option<WantXattrs<'_>>,
    ) -> io::Result<()> {
        let want = self.owner_for(meta);
        let mut owner = want;
        if want.uid.is_some() || want.gid.is_some() {
            // What the kernel gave new files in this directory, learned from the first one.
            let cached = self
                .last
                .as_mut()
                .filter(|d| std::sync::Arc::ptr_eq(&d.fd, &f.dir));
            let given = match cached.as_ref().and_then(|d| d.new_owner) {
                Some(v) => v,
                None => {
                    let st = sys::fstat(f.file.as_fd())?;
                    if let Some(d) = cached {
                        d.new_owner = Some((st.st_uid, st.st_gid));
                    }
                    (st.st_uid, st.st_gid)
                }
            };
            owner = sys::Owner {
                uid: want.uid.filter(|&u| u != given.0),
                gid: want.gid.filter(|&g| g != given.1),
            };
        }
        let chmod = f.exact != Some(meta.perm);
        sys::set_attrs_fd_with(f.file.as_fd(), meta, owner, chmod, None)?;
        self.put_xattrs(sys::XattrTarget::Fd(f.file.as_fd()), xattrs, true)?;
        sys::rename_at(f.dir.as_fd(), f.tmp.as_bytes(), &f.name)?;
        f.done = true;
        Ok(())
    }

    /// Makes the symlink or special file at `path` under a temporary name, with its
    /// attributes (and with `-X`/`-A` the extended attributes `xattrs`, or none), and renames
    /// it over the name.
    pub fn make(
        &mut self,
        path: &[u8],
        meta: &Meta,
        link: &[u8],
        xattrs: Option<WantXattrs<'_>>,
    ) -> io::Result<()> {
        let (parent, name) = split_path(path)?;
        let name = name.to_vec();
        let owner = self.owner_for(meta);
        let policy = self.xattrs;
        let d = self.dir(parent)?;
        let ((), tmp) = sys::with_temp_name(&name, |t| match meta.kind {
            Kind::Symlink => sys::symlink_at(link, d, t),
            k if k.is_special() => sys::mknod_at(d, t, meta),
            _ => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "not a symlink or special file",
            )),
        })?;
        let perm = (meta.kind != Kind::Symlink).then_some(meta.perm);
        let r = sys::set_attrs_at(d, tmp.as_bytes(), meta, owner, perm)
            .and_then(|()| {
                if !policy.any() {
                    return Ok(());
                }
                let (want, masked) = xattrs.map_or((&[][..], None), |g| (g.want, g.masked));
                let target = sys::XattrTarget::At(d, tmp.as_bytes());
                crate::apply::put_xattrs_with(&policy, target, None, want, masked)
            })
            .and_then(|()| sys::rename_at(d, tmp.as_bytes(), &name));
        if r.is_err() {
            let _ = sys::unlink_at(d, tmp.as_bytes(), false);
        }
        r
    }

    /// Fixes the attributes of the existing non-directory at `path` (what `change` names), and
    /// its extended attributes when `xattrs` are given (`-X`, `-A`).
    pub fn set_attrs(
        &mut self,
        path: &[u8],
        meta: &Meta,
        change: Change,
        xattrs: Option<WantXattrs<'_>>,
    ) -> io::Result<()> {
        let (parent, name) = split_path(path)?;
        let name = name.to_vec();
        let owner = self.owner_for(meta);
        let owner = sys::Owner {
            uid: owner.uid.filter(|_| change.contains(Change::OWNER)),
            gid: owner.gid.filter(|_| change.contains(Change::GROUP)),
        };
        let policy = self.xattrs;
        let put = |target| match xattrs.filter(|_| policy.any()) {
            Some(g) => crate::apply::put_xattrs_with(&policy, target, None, g.want, g.masked),
            None => Ok(()),
        };
        let d = self.dir(parent)?;
        if meta.kind == Kind::File {
            let fd = sys::open_attrs_at(d, &name)?;
            let st = sys::fstat(fd.as_fd())?;
            if sys::meta_of(&st).map(|x| x.kind) != Some(Kind::File) {
                return Err(io::Error::other("changed type during the run"));
            }
            sys::set_attrs_fd(fd.as_fd(), meta, owner, None)?;
            put(sys::XattrTarget::Fd(fd.as_fd()))
        } else {
            sys::set_attrs_at(d, &name, meta, owner, None)?;
            put(sys::XattrTarget::At(d, &name))
        }
    }

    /// Sets the attributes of the directory at `path` (empty: the root), after its contents,
    /// and its extended attributes when `xattrs` are given (`-X`, `-A`).
    pub fn dir_attrs(
        &mut self,
        path: &[u8],
        meta: &Meta,
        xattrs: Option<WantXattrs<'_>>,
    ) -> io::Result<()> {
        if !path.is_empty() {
            split_path(path)?;
        }
        let fd = sys::open_dir_beneath(self.root.as_fd(), path)?;
        sys::set_attrs_fd(fd.as_fd(), meta, self.owner_for(meta), None)?;
        self.put_xattrs(sys::XattrTarget::Fd(fd.as_fd()), xattrs, false)
    }

    /// `-H`: makes `path` a hard link of `leader` (both below DST, checked like every received
    /// name, their directories reached without following symlinks), under a temporary name
    /// renamed over `path`.
    pub fn link(&mut self, leader: &[u8], path: &[u8]) -> io::Result<()> {
        let (ldir, lname) = split_path(leader)?;
        let (dir, name) = split_path(path)?;
        // The entry at `path` may be replaced: the cached handle is not needed for it.
        self.forget();
        crate::apply::links::link(self.root.as_fd(), ldir, lname, dir, name)
    }
}

#[cfg(test)]
mod tests {
    use super::split_path;
    use super::*;
    use crate::listing::build::{dir, file, listing};

    fn opts() -> PlanOptions {
        PlanOptions {
            delete: true,
            hard_links: true,
            ..PlanOptions::default()
        }
    }

    #[test]
    fn link_groups_are_decided_as_the_local_link_phase() {
        // SRC: `z` and `d/b` are links of each other; `d` comes after `z` in rsync's order
        // (a directory's files before its subdirectories' contents).
        let mut src = listing(dir(
            b"",
            vec![file(b"z", 3, 100), dir(b"d", vec![file(b"b", 3, 100)])],
        ));
        let (z, b) = (src.find(b"z").unwrap(), src.find(b"d/b").unwrap());
        src.inodes.insert(z, (1, 7));
        src.inodes.insert(b, (1, 7));
        // DST has `z` alone: `d/b` is new.
        let dst = listing(dir(b"", vec![file(b"z", 3, 100), dir(b"d", vec![])]));
        let plan = plan_tree(&src, &dst, &opts());
        assert!(plan.actions.iter().all(|a| a.src != z && a.src != b));
        let g = plan_links(&src, &dst, &plan.linked, &opts());
        assert_eq!(g.len(), 1);
        assert_eq!(g[0].leader, z);
        assert!(g[0].actions.is_empty(), "{:?}", g[0].actions);
        assert_eq!(g[0].members.len(), 1);
        let m = g[0].members[0];
        assert_eq!((m.src, m.dst, m.linked), (b, NONE, false));
        assert!(m.change.contains(Change::NEW));

        // DST has both, already linked: nothing to do.
        let mut dst = listing(dir(
            b"",
            vec![file(b"z", 3, 100), dir(b"d", vec![file(b"b", 3, 100)])],
        ));
        let (dz, db) = (dst.find(b"z").unwrap(), dst.find(b"d/b").unwrap());
        dst.inodes.insert(dz, (5, 9));
        dst.inodes.insert(db, (5, 9));
        let plan = plan_tree(&src, &dst, &opts());
        let g = plan_links(&src, &dst, &plan.linked, &opts());
        assert!(g[0].actions.is_empty());
        assert!(g[0].members[0].linked);

        // The leader changed in SRC: it is copied and the other made a link of it again.
        let mut newer = listing(dir(
            b"",
            vec![file(b"z", 4, 200), dir(b"d", vec![file(b"b", 4, 200)])],
        ));
        newer.inodes = src.inodes.clone();
        let plan = plan_tree(&newer, &dst, &opts());
        let g = plan_links(&newer, &dst, &plan.linked, &opts());
        assert_eq!(g[0].actions.len(), 1);
        assert_eq!(
            (g[0].actions[0].op, g[0].actions[0].src, g[0].actions[0].dst),
            (Op::Copy, z, dz)
        );
        assert!(!g[0].members[0].linked);
        assert_eq!(g[0].members[0].dst, db);
    }

    #[test]
    fn names_that_leave_dst_are_refused() {
        for bad in [
            &b""[..],
            b"/etc/passwd",
            b"..",
            b"a/../../x",
            b"a//b",
            b"./a",
            b"a/",
            b"a\0b",
        ] {
            assert!(split_path(bad).is_err(), "{bad:?}");
        }
        assert_eq!(split_path(b"a/b/c").unwrap(), (&b"a/b"[..], &b"c"[..]));
        assert_eq!(split_path(b"..a").unwrap(), (&b""[..], &b"..a"[..]));
    }
}
