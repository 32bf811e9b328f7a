//! Listing and stat of a tree: the only module that reads directories. Directories are read in
//! parallel (rayon), each entry is `lstat`ed relative to its directory's handle, symlinks are
//! read, never followed; excluded entries are left out. The result is a [`Listing`] in
//! pre-order with children sorted by name.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use rayon::prelude::*;

use crate::error::{FileError, Side};
use crate::filter::Side as FSide;
use crate::filter::{DirRules, Filter, Verdict};
use crate::listing::{Idx, Kind, Listing, Meta, Paired, paired_children};
use crate::sys;

/// A scanned tree and what went wrong while scanning it.
#[derive(Debug, Default)]
pub struct Scan {
    pub listing: Listing,
    /// Entries or directories that could not be read.
    pub errors: Vec<FileError>,
}

struct Item {
    name_off: u32,
    name_len: u16,
    link_len: u16,
    meta: Meta,
    unreadable: bool,
    /// A directory that is not scanned (protected in DST by a rule that hides it in SRC too).
    skip: bool,
    /// Device and inode of a regular file, device, FIFO or socket with other hard links (`-H`
    /// only; rsync links those, not directories or symlinks).
    inode: Option<(u64, u64)>,
    /// Extended attributes (`-X`, `-A`), when there are any.
    xattrs: Option<Box<crate::sys::Xattrs>>,
}

#[derive(Default)]
struct DirNode {
    arena: Vec<u8>,
    items: Vec<Item>,
    subdirs: Vec<DirNode>,
}

/// How one side is scanned, shared by every directory of a run.
pub(crate) struct Ctx<'a> {
    side: Side,
    filter: &'a Filter,
    errors: Mutex<Vec<FileError>>,
    vanished: AtomicU64,
    /// Record the inodes of files with several links (`-H`).
    hard_links: bool,
    xattrs: crate::xattr::Policy,
    one_fs: u8,
    /// The root's device, for `-x`.
    root_dev: u64,
    /// Check that regular files are readable (SRC, not running as root).
    check_read: bool,
}

impl<'a> Ctx<'a> {
    /// The scan context of one side of a run whose root is `root`.
    pub fn new(root: BorrowedFd<'_>, o: &ScanOpts<'a>) -> Ctx<'a> {
        Ctx {
            side: o.side,
            filter: o.filter,
            errors: Mutex::new(Vec::new()),
            vanished: AtomicU64::new(0),
            hard_links: o.hard_links,
            xattrs: o.xattrs,
            one_fs: o.one_fs,
            root_dev: if o.one_fs > 0 {
                sys::device_of(root).unwrap_or(0)
            } else {
                0
            },
            check_read: o.side == Side::Source && sys::euid() != 0,
        }
    }

    /// The errors reported since the last call.
    pub fn take_errors(&self) -> Vec<FileError> {
        std::mem::take(&mut *self.errors.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Entries that vanished between listing and `lstat` so far.
    pub fn vanished(&self) -> u64 {
        self.vanished.load(Ordering::Relaxed)
    }

    /// The extended attributes of the directory open as `fd` (`-X`, `-A`).
    pub fn dir_xattrs(&self, fd: BorrowedFd<'_>) -> crate::sys::Xattrs {
        if !self.xattrs.any() {
            return Vec::new();
        }
        match sys::xattrs_of(sys::XattrTarget::Fd(fd), &|n| self.xattrs.keeps(n)) {
            Ok(x) => x,
            Err(e) => {
                self.error("read extended attributes of", Vec::new(), e);
                Vec::new()
            }
        }
    }

    fn error(&self, op: &'static str, path: Vec<u8>, source: io::Error) {
        let e = FileError {
            op,
            path,
            side: self.side,
            source,
        };
        self.errors
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(e);
    }
}

/// How one tree is scanned.
pub struct ScanOpts<'a> {
    pub side: Side,
    pub filter: &'a Filter,
    /// The per-directory filter rules read in the parents of the root.
    pub above: &'a DirRules,
    /// Record the inodes of files with several links (`-H`).
    pub hard_links: bool,
    /// The extended attributes to read (`-X`, `-A`).
    pub xattrs: crate::xattr::Policy,
    /// `-x`: 1 lists directories on another filesystem without their contents, 2 leaves
    /// them out of SRC.
    pub one_fs: u8,
}

/// Scans the tree under the open directory `root` whose own attributes are `root_meta`.
pub fn scan(root: OwnedFd, root_meta: Meta, o: &ScanOpts<'_>) -> Scan {
    let above = o.above;
    let root_xattrs = if o.xattrs.any() {
        sys::xattrs_at(root.as_fd(), b".", &|n| o.xattrs.keeps(n))
    } else {
        Ok(Vec::new())
    };
    let ctx = Ctx::new(root.as_fd(), o);
    // The root stays open for the whole scan: directories deeper than [`OPEN_DEPTH`] are
    // opened again from it.
    let node = match sys::open_dir_beneath(root.as_fd(), b"") {
        Ok(top) => scan_dir(top, Vec::new(), 0, root.as_fd(), &ctx, above),
        Err(e) => {
            ctx.error("open directory", Vec::new(), e);
            DirNode::default()
        }
    };
    let (entries, bytes) = node.totals();
    let mut listing = Listing::with_root_capacity(root_meta, entries, bytes);
    match root_xattrs {
        Ok(x) if !x.is_empty() => {
            listing.xattrs.insert(0, x);
        }
        Ok(_) => {}
        Err(e) => ctx.error("read extended attributes of", Vec::new(), e),
    }
    flatten(node, 0, &mut listing, &mut Vec::new());
    listing.close(0);
    Scan {
        listing,
        errors: ctx.errors.into_inner().unwrap_or_else(|p| p.into_inner()),
    }
}

fn join(path: &[u8], name: &[u8]) -> Vec<u8> {
    let mut p = Vec::with_capacity(path.len() + 1 + name.len());
    if !path.is_empty() {
        p.extend_from_slice(path);
        p.push(b'/');
    }
    p.extend_from_slice(name);
    p
}

/// Directories at this depth or deeper do not stay open while their subdirectories are
/// scanned: those are opened from the root, component by component and following no symlink,
/// so that a chain of nested directories does not hold one descriptor per level (EMFILE under a
/// small limit). The same rule as the sync's walk.
const OPEN_DEPTH: u32 = 32;

fn scan_dir(
    fd: OwnedFd,
    path: Vec<u8>,
    depth: u32,
    root: BorrowedFd<'_>,
    ctx: &Ctx<'_>,
    parent_rules: &DirRules,
) -> DirNode {
    let mut node = DirNode::default();
    let mut dir = match sys::DirHandle::new(fd) {
        Ok(d) => d,
        Err(e) => {
            ctx.error("read directory", path, e);
            return node;
        }
    };
    let mut names = Vec::new();
    let mut name_arena = Vec::new();
    if let Err(e) = dir.read_names(&mut name_arena, &mut names) {
        ctx.error("read directory", path, e);
        return node;
    }
    let Ok(dfd) = dir.fd() else { return node };
    let rules = dir_rules(dfd, &path, &names, &name_arena, ctx, parent_rules);
    node.arena.reserve(name_arena.len());
    node.items.reserve(names.len());
    for (off, len) in names {
        let name = &name_arena[off as usize..off as usize + len as usize];
        if let Some(item) = stat_entry(dfd, name, &path, &mut node.arena, ctx, &rules) {
            node.items.push(item);
        }
    }
    // Free the directory's raw names before descending: each level of the recursion would
    // otherwise hold them while its subtree is scanned.
    drop(name_arena);
    node.arena.shrink_to_fit();
    let arena = &node.arena;
    node.items
        .sort_unstable_by(|a, b| item_name(arena, a).cmp(item_name(arena, b)));

    let subdirs: Vec<&Item> = node
        .items
        .iter()
        .filter(|i| i.meta.kind == Kind::Dir && !i.skip)
        .collect();
    let parent = if depth + 1 >= OPEN_DEPTH {
        drop(dir);
        None
    } else {
        Some(dfd)
    };
    node.subdirs = subdirs
        .par_iter()
        .map(|item| {
            let name = item_name(&node.arena, item);
            let child_path = join(&path, name);
            let opened = match parent {
                Some(dfd) => sys::open_dir_at(dfd, name),
                None => sys::open_dir_beneath(root, &child_path),
            };
            match opened {
                Ok(fd) => scan_dir(fd, child_path, depth + 1, root, ctx, &rules),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    ctx.vanished.fetch_add(1, Ordering::Relaxed);
                    DirNode::default()
                }
                Err(e) => {
                    ctx.error("open directory", child_path, e);
                    DirNode::default()
                }
            }
        })
        .collect();
    node
}

/// One directory read by [`read_dir`].
pub(crate) struct DirScan {
    /// The directory (index 0, with the attributes given) and its entries (listed without
    /// their own contents).
    pub listing: Listing,
    /// The filter rules in effect in the directory (its parent's and its own per-directory
    /// files'): what its subdirectories inherit.
    pub rules: DirRules,
    /// Regular files the (non-root) user may not read, in index order.
    pub unreadable: Vec<Idx>,
}

/// Reads the entries of the open directory `dir` (at `path`, with attributes `meta`) and
/// `lstat`s each relative to it; errors go to `ctx`.
pub(crate) fn read_dir(
    ctx: &Ctx<'_>,
    dfd: BorrowedFd<'_>,
    path: &[u8],
    meta: Meta,
    parent_rules: &DirRules,
) -> DirScan {
    let mut node = DirNode::default();
    let mut names = Vec::new();
    let mut name_arena = Vec::new();
    let mut rules = parent_rules.clone();
    match sys::read_names_at(dfd, &mut name_arena, &mut names) {
        Ok(()) => {
            rules = dir_rules(dfd, path, &names, &name_arena, ctx, parent_rules);
            node.arena.reserve(name_arena.len());
            node.items.reserve(names.len());
            for (off, len) in names {
                let name = &name_arena[off as usize..off as usize + len as usize];
                if let Some(item) = stat_entry(dfd, name, path, &mut node.arena, ctx, &rules) {
                    node.items.push(item);
                }
            }
            let arena = &node.arena;
            node.items
                .sort_unstable_by(|a, b| item_name(arena, a).cmp(item_name(arena, b)));
        }
        Err(e) => ctx.error("read directory", path.to_vec(), e),
    }
    let (entries, bytes) = (node.items.len(), node.arena.len());
    let mut listing = Listing::with_root_capacity(meta, entries, bytes);
    let mut unreadable = Vec::new();
    flatten(node, 0, &mut listing, &mut unreadable);
    listing.close(0);
    DirScan {
        listing,
        rules,
        unreadable,
    }
}

fn item_name<'a>(arena: &'a [u8], i: &Item) -> &'a [u8] {
    &arena[i.name_off as usize..i.name_off as usize + i.name_len as usize]
}

/// The extended attributes of `name` (`-X`, `-A`); an error is reported and counts as none.
fn read_xattrs(
    dfd: BorrowedFd<'_>,
    name: &[u8],
    path: &[u8],
    ctx: &Ctx<'_>,
) -> Option<Box<crate::sys::Xattrs>> {
    if !ctx.xattrs.any() {
        return None;
    }
    match sys::xattrs_at(dfd, name, &|n| ctx.xattrs.keeps(n)) {
        Ok(x) if x.is_empty() => None,
        Ok(x) => Some(Box::new(x)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => {
            ctx.error("read extended attributes of", join(path, name), e);
            None
        }
    }
}

/// The per-directory filter rules in effect in directory `path`: its parent's, and those of the
/// per-directory filter files among its `names`.
fn dir_rules(
    dfd: BorrowedFd<'_>,
    path: &[u8],
    names: &[(u32, u16)],
    arena: &[u8],
    ctx: &Ctx<'_>,
    parent: &DirRules,
) -> DirRules {
    if ctx.filter.merge_names().next().is_none() {
        return DirRules::default();
    }
    let present = |wanted: &[u8]| {
        names
            .iter()
            .any(|&(o, l)| &arena[o as usize..o as usize + l as usize] == wanted)
    };
    let mut read = |name: &[u8]| {
        if present(name) {
            sys::read_small_file_at(dfd, name)
        } else {
            Ok(None)
        }
    };
    match ctx.filter.enter(parent, path, &mut read) {
        Ok(r) => r,
        Err(e) => {
            ctx.error(
                "read filter rules in",
                path.to_vec(),
                io::Error::other(e.to_string()),
            );
            parent.clone()
        }
    }
}

fn stat_entry(
    dfd: BorrowedFd<'_>,
    name: &[u8],
    path: &[u8],
    arena: &mut Vec<u8>,
    ctx: &Ctx<'_>,
    rules: &DirRules,
) -> Option<Item> {
    let st = match sys::lstat_at(dfd, name) {
        Ok(st) => st,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            ctx.vanished.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        Err(e) => {
            ctx.error("stat", join(path, name), e);
            return None;
        }
    };
    let mut meta = sys::meta_of(&st)?;
    if ctx.side == Side::Dest && meta.kind == Kind::File {
        meta.racy = crate::racy::is_racy(meta.mtime, sys::atime_of(&st));
    }
    let mut skip = false;
    if ctx.one_fs > 0 && meta.kind == Kind::Dir && st.st_dev != ctx.root_dev {
        if ctx.one_fs > 1 && ctx.side == Side::Source {
            return None;
        }
        meta.mount = true;
        skip = true;
    }
    if !ctx.filter.is_empty() {
        let full = join(path, name);
        let is_dir = meta.kind == Kind::Dir;
        match ctx.side {
            Side::Source => {
                let v = ctx.filter.decide(rules, &full, name, is_dir, FSide::Sender);
                if v != Verdict::Keep {
                    return None;
                }
            }
            Side::Dest => {
                let v = ctx
                    .filter
                    .decide(rules, &full, name, is_dir, FSide::Receiver);
                if let Verdict::Exclude { plain } = v {
                    meta.protected = true;
                    // A directory SRC leaves out too is kept whole: no need to read it. One
                    // SRC may send (a protect rule) is read, so its contents are mirrored.
                    skip = is_dir
                        && plain
                        && ctx.filter.decide(rules, &full, name, is_dir, FSide::Sender)
                            != Verdict::Keep;
                }
            }
        }
    }
    let name_off = arena.len() as u32;
    arena.extend_from_slice(name);
    let mut link_len = 0;
    if meta.kind == Kind::Symlink {
        match sys::read_link_at(dfd, name) {
            Ok(target) => {
                link_len = target.len() as u16;
                arena.extend_from_slice(&target);
            }
            Err(e) => {
                arena.truncate(name_off as usize);
                if e.kind() == io::ErrorKind::NotFound {
                    ctx.vanished.fetch_add(1, Ordering::Relaxed);
                } else {
                    ctx.error("read symlink", join(path, name), e);
                }
                return None;
            }
        }
    }
    let unreadable = ctx.check_read && meta.kind == Kind::File && !sys::readable_at(dfd, name);
    Some(Item {
        name_off,
        name_len: name.len() as u16,
        link_len,
        meta,
        unreadable,
        skip,
        inode: (ctx.hard_links && meta.kind.is_linkable() && st.st_nlink > 1)
            .then_some((st.st_dev, st.st_ino)),
        xattrs: read_xattrs(dfd, name, path, ctx),
    })
}

impl DirNode {
    /// Entries and bytes of names and symlink targets in this subtree.
    fn totals(&self) -> (usize, usize) {
        self.subdirs
            .iter()
            .fold((self.items.len(), self.arena.len()), |(e, b), s| {
                let (se, sb) = s.totals();
                (e + se, b + sb)
            })
    }
}

/// Appends the subtree in pre-order, consuming it: each directory's scan is freed as soon as it
/// is copied, so the peak is about one copy of the tree, not two.
fn flatten(node: DirNode, parent: Idx, out: &mut Listing, unreadable: &mut Vec<Idx>) {
    let DirNode {
        arena,
        items,
        subdirs,
        ..
    } = node;
    let mut subdirs = subdirs.into_iter();
    for mut item in items {
        let name = item_name(&arena, &item);
        let link_start = item.name_off as usize + item.name_len as usize;
        let link = (item.meta.kind == Kind::Symlink)
            .then(|| &arena[link_start..link_start + item.link_len as usize]);
        let idx = out.push(name, link, item.meta, parent);
        if let Some(ino) = item.inode {
            out.inodes.insert(idx, ino);
        }
        if let Some(x) = item.xattrs.take() {
            out.xattrs.insert(idx, *x);
        }
        if item.unreadable {
            unreadable.push(idx);
        }
        if item.meta.kind == Kind::Dir {
            // A directory not scanned has no node (see `Item::skip`).
            let sub = if item.skip { None } else { subdirs.next() };
            if let Some(sub) = sub {
                flatten(sub, idx, out, unreadable);
            }
            out.close(idx);
        }
    }
}

/// Which pairs of regular files [`fill_checksums`] hashes.
pub enum Compare<'a> {
    /// Every pair with the same size (`--checksum`).
    All,
    /// Pairs whose size and mtime match (within `window` seconds) but whose DST copy is racy
    /// (see [`crate::racy`]), and the pairs of these SRC entries (sorted; files to recheck).
    Untrusted { window: u32, recheck: &'a [Idx] },
}

/// Hashes pairs of regular files present on both sides with the same size (XXH3-128, as
/// rsync's xxh128), so the pure planner can compare contents. Files that cannot be read are left
/// without a hash (the planner then copies them; the copy reports the error). Returns the
/// number of pairs hashed.
pub fn fill_checksums(
    src_root: BorrowedFd<'_>,
    src: &mut Listing,
    dst_root: BorrowedFd<'_>,
    dst: &mut Listing,
    which: &Compare<'_>,
) -> u64 {
    let mut pairs = Vec::new();
    if !src.is_empty() && !dst.is_empty() && dst.meta(0).kind == Kind::Dir {
        collect_pairs(src, 0, dst, 0, which, &mut pairs);
    }
    let found = Mutex::new(Vec::new());
    hash_pairs(
        src_root,
        src,
        dst_root,
        dst,
        &mut pairs,
        sys::HashKind::Xxh3,
        &|s, hs, d, hd| {
            if let (Ok(hs), Ok(hd)) = (hs, hd) {
                found
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push((s, hs, d, hd));
            }
        },
    );
    for (s, hs, d, hd) in found.into_inner().unwrap_or_else(|p| p.into_inner()) {
        src.hashes.insert(s, hs);
        dst.hashes.insert(d, hd);
    }
    pairs.len() as u64
}

/// The result of hashing one pair of files: SRC index and hash, DST index and hash.
pub type PairHash<'a> = dyn Fn(Idx, io::Result<[u8; 32]>, Idx, io::Result<[u8; 32]>) + Sync + 'a;

/// Hashes both files of every `(src, dst)` pair with `kind`, in parallel, working through the
/// handles of their directories (each directory is opened once per batch, never following a
/// symlink) and calls `done` for each pair. `pairs` is reordered by directory.
pub fn hash_pairs(
    src_root: BorrowedFd<'_>,
    src: &Listing,
    dst_root: BorrowedFd<'_>,
    dst: &Listing,
    pairs: &mut [(Idx, Idx)],
    kind: sys::HashKind,
    done: &PairHash<'_>,
) {
    const BATCH: usize = 64;
    pairs.sort_by_key(|&(s, _)| src.entry(s).parent);
    let mut batches = Vec::new();
    for dir in pairs.chunk_by(|a, b| src.entry(a.0).parent == src.entry(b.0).parent) {
        batches.extend(dir.chunks(BATCH));
    }
    batches.par_iter().for_each(|batch| {
        let (s0, d0) = batch[0];
        let dirs =
            sys::open_dir_beneath(src_root, &src.path(src.entry(s0).parent)).and_then(|sd| {
                Ok((
                    sd,
                    sys::open_dir_beneath(dst_root, &dst.path(dst.entry(d0).parent))?,
                ))
            });
        for &(s, d) in batch.iter() {
            let (hs, hd) = match &dirs {
                Ok((sd, dd)) => (
                    sys::open_read_at(sd.as_fd(), src.name(s))
                        .and_then(|f| sys::hash_file_with(&f, kind)),
                    sys::open_read_at(dd.as_fd(), dst.name(d))
                        .and_then(|f| sys::hash_file_with(&f, kind)),
                ),
                Err(e) => (
                    Err(io::Error::new(e.kind(), e.to_string())),
                    Err(io::Error::new(e.kind(), e.to_string())),
                ),
            };
            done(s, hs, d, hd);
        }
    });
}

fn collect_pairs(
    src: &Listing,
    s: Idx,
    dst: &Listing,
    d: Idx,
    which: &Compare<'_>,
    out: &mut Vec<(Idx, Idx)>,
) {
    for p in paired_children(src, s, dst, d) {
        let Paired::Both(a, b) = p else { continue };
        let (sm, dm) = (src.meta(a), dst.meta(b));
        match (sm.kind, dm.kind) {
            (Kind::File, Kind::File) if sm.size == dm.size => {
                let wanted = match which {
                    Compare::All => true,
                    Compare::Untrusted { window, recheck } => {
                        (dm.racy && crate::plan::same_time(sm.mtime, dm.mtime, *window))
                            || recheck.binary_search(&a).is_ok()
                    }
                };
                if wanted {
                    out.push((a, b));
                }
            }
            (Kind::Dir, Kind::Dir) => collect_pairs(src, a, dst, b, which, out),
            _ => {}
        }
    }
}
