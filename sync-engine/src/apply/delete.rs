//! Deletions. Extraneous entries (in DST, not in SRC) are queued while the trees are walked and
//! removed once the whole source has been read without an error, as rsync's `--delete-after`
//! does: a source directory that could not be read must never make its copy look extraneous,
//! and the queue holds one line per extraneous entry, not the tree. Entries replaced by one of
//! another type are removed at once, to make room. A directory is removed with everything in
//! it, contents first, through directory handles, never following a symlink; entries the
//! filter rules protect stay (and keep their directory), and with `-x` nothing on another
//! filesystem is entered.

use std::io;
use std::os::fd::{AsFd, BorrowedFd};

use super::{Shared, join};
use crate::error::Side;
use crate::filter::{DirRules, Side as FSide, Verdict};
use crate::itemize::{Change, Update, field};
use crate::listing::{Kind, Meta};
use crate::plan::Op;
use crate::report::{Counters, Item, Warning};
use crate::sys;

/// An extraneous entry to delete once the source has been read.
pub(crate) struct Deferred {
    /// Relative to DST's root.
    pub path: Vec<u8>,
    /// DST's type of the entry, as scanned (the `--stats` breakdown of deleted files).
    pub kind: Kind,
    /// SRC's attributes of the entry's directory, set back on DST's after the deletion.
    pub parent: Meta,
    /// The filter rules of DST's directory of the entry (its per-directory files protect
    /// entries inside a directory that is deleted too, as in rsync).
    pub rules: DirRules,
}

/// The directory part and the name of `path`.
pub(crate) fn split(path: &[u8]) -> (&[u8], &[u8]) {
    match path.iter().rposition(|b| *b == b'/') {
        Some(i) => (&path[..i], &path[i + 1..]),
        None => (&[], path),
    }
}

/// Orders paths as a walk meets them: component by component.
fn walk_order(a: &[u8], b: &[u8]) -> std::cmp::Ordering {
    a.split(|c| *c == b'/').cmp(b.split(|c| *c == b'/'))
}

/// The entries the queued deletions would remove: each queued entry, and everything in the
/// directories among them (counted by reading them, see `count_tree`).
pub(crate) fn queued_entries(dst_root: BorrowedFd<'_>, items: &[Deferred]) -> u64 {
    items
        .iter()
        .map(|it| {
            1 + if it.kind == Kind::Dir {
                sys::open_dir_beneath(dst_root, &it.path)
                    .map_or(0, |fd| crate::run::count_tree(fd.as_fd()))
            } else {
                0
            }
        })
        .sum()
}

/// Removes the queued entries in path order (`--max-delete` taking its share of each), then
/// sets the mtime of the directories that changed back.
pub(crate) fn run_deferred(sh: &Shared<'_>, dst_root: BorrowedFd<'_>, mut items: Vec<Deferred>) {
    items.sort_by(|a, b| walk_order(&a.path, &b.path));
    let mut touched: Vec<(Vec<u8>, Meta)> = Vec::new();
    let mut open: Option<(Vec<u8>, std::os::fd::OwnedFd)> = None;
    for it in &items {
        if sh.cancelled() {
            break;
        }
        let (dir, name) = split(&it.path);
        if open.as_ref().is_none_or(|(p, _)| p != dir) {
            match sys::open_dir_beneath(dst_root, dir) {
                Ok(fd) => open = Some((dir.to_vec(), fd)),
                Err(e) => {
                    sh.fail_at("open directory", Side::Dest, dir.to_vec(), e);
                    open = None;
                    continue;
                }
            }
        }
        let Some((_, dfd)) = &open else { continue };
        let r = if sh.dry_run {
            if it.kind == Kind::Dir {
                simulate_contents(sh, dfd.as_fd(), name, &it.path, &it.rules);
            }
            deleted(sh, &it.path, it.kind);
            Ok(true)
        } else if it.kind == Kind::Dir {
            remove_tree(sh, dfd.as_fd(), name, &it.path, true, &it.rules)
        } else if sh.take_budget(1) {
            match sys::unlink_at(dfd.as_fd(), name, false) {
                Ok(()) => {
                    deleted(sh, &it.path, it.kind);
                    Ok(true)
                }
                Err(e) => Err(e),
            }
        } else {
            Ok(false)
        };
        match r {
            Ok(true) => {
                if touched.last().is_none_or(|(p, _)| p != dir) {
                    touched.push((dir.to_vec(), it.parent));
                }
            }
            Ok(false) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => sh.fail_at("delete", Side::Dest, it.path.clone(), e),
        }
    }
    drop(open);
    if sh.dry_run {
        return;
    }
    restore_dirs(sh, dst_root, touched);
}

/// Puts back the attributes (mtime first of all) of the directories whose entries a run after
/// the walk changed, and fsyncs them with `--fsync`.
pub(crate) fn restore_dirs(
    sh: &Shared<'_>,
    dst_root: BorrowedFd<'_>,
    touched: impl IntoIterator<Item = (Vec<u8>, Meta)>,
) {
    for (dir, m) in touched {
        let r = sys::open_dir_beneath(dst_root, &dir).and_then(|fd| {
            sys::set_attrs_fd(fd.as_fd(), &m, sh.owners.for_meta(&m), None)?;
            if sh.fsync {
                sys::fsync(fd.as_fd())?;
            }
            Ok(())
        });
        if let Err(e) = r {
            sh.fail_at("set attributes of", Side::Dest, dir, e);
        }
    }
}

/// Reports (and counts) one deleted entry: `*deleting PATH`.
fn deleted(sh: &Shared<'_>, path: &[u8], kind: Kind) {
    Counters::add(&sh.counters.deleted, 1);
    if sh.obs.wants_items() {
        sh.obs.item(&Item {
            field: field(Update::Delete, kind, Change::NONE),
            op: Op::Delete,
            kind,
            path,
            link: None,
            bytes: 0,
        });
    }
}

/// True when the entry `name` of the directory at `path` (whose filter rules are `rules`) must
/// stay: a filter rule protects it, or (`-x`) it is a directory on another filesystem.
fn keep(
    sh: &Shared<'_>,
    rules: &DirRules,
    path: &[u8],
    name: &[u8],
    st: &sys::Stat,
    is_dir: bool,
) -> bool {
    if is_dir && sh.dst_dev != 0 && st.st_dev != sh.dst_dev {
        return true;
    }
    !sh.filter.is_empty()
        && matches!(
            sh.filter
                .decide(rules, &join(path, name), name, is_dir, FSide::Receiver),
            Verdict::Exclude { .. }
        )
}

/// The filter rules inside DST's directory `dir` at `path` (with entries `names` in `arena`),
/// given its parent's `rules`: the per-directory files it holds are read, as the walk does.
fn rules_in(
    sh: &Shared<'_>,
    dir: BorrowedFd<'_>,
    path: &[u8],
    arena: &[u8],
    names: &[(u32, u16)],
    rules: &DirRules,
) -> DirRules {
    if sh.filter.merge_names().next().is_none() {
        return rules.clone();
    }
    let mut read = |wanted: &[u8]| {
        let present = names
            .iter()
            .any(|&(o, l)| &arena[o as usize..o as usize + l as usize] == wanted);
        if present {
            sys::read_small_file_at(dir, wanted)
        } else {
            Ok(None)
        }
    };
    match sh.filter.enter(rules, path, &mut read) {
        Ok(r) => r,
        Err(e) => {
            sh.fail_at(
                "read filter rules in",
                Side::Dest,
                path.to_vec(),
                io::Error::other(e.to_string()),
            );
            rules.clone()
        }
    }
}

/// Removes directory `name` of `parent` (at `path`) with everything in it, contents first; each
/// entry takes its share of `--max-delete`. Returns false when something had to stay (a
/// protected entry, the limit), leaving the directory. The directory itself is reported as
/// deleted, and counted against `--max-delete`, when `announce` (not when it is the replaced
/// half of a type change, as in rsync).
pub(crate) fn remove_tree(
    sh: &Shared<'_>,
    parent: BorrowedFd<'_>,
    name: &[u8],
    path: &[u8],
    announce: bool,
    rules: &DirRules,
) -> io::Result<bool> {
    let dir = sys::open_dir_at(parent, name)?;
    let mut arena = Vec::new();
    let mut names = Vec::new();
    sys::read_names_at(dir.as_fd(), &mut arena, &mut names)?;
    let inner = rules_in(sh, dir.as_fd(), path, &arena, &names, rules);
    names.sort_by(|&(a, la), &(b, lb)| {
        arena[a as usize..a as usize + la as usize]
            .cmp(&arena[b as usize..b as usize + lb as usize])
    });
    let mut complete = true;
    for &(off, len) in &names {
        if sh.cancelled() {
            return Ok(false);
        }
        let child = &arena[off as usize..off as usize + len as usize];
        let st = match sys::lstat_at(dir.as_fd(), child) {
            Ok(st) => st,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        let is_dir = st.st_mode & 0o170000 == 0o040000;
        if keep(sh, &inner, path, child, &st, is_dir) {
            complete = false;
            continue;
        }
        let child_path = join(path, child);
        if is_dir {
            match remove_tree(sh, dir.as_fd(), child, &child_path, true, &inner) {
                Ok(true) => {}
                Ok(false) => complete = false,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => {
                    sh.fail_at("delete", Side::Dest, child_path, e);
                    complete = false;
                }
            }
        } else if !sh.take_budget(1) {
            return Ok(false);
        } else {
            match sys::unlink_at(dir.as_fd(), child, false) {
                Ok(()) => {
                    let kind = sys::meta_of(&st).map_or(Kind::File, |m| m.kind);
                    deleted(sh, &child_path, kind);
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => {
                    sh.fail_at("delete", Side::Dest, child_path, e);
                    complete = false;
                }
            }
        }
    }
    drop(dir);
    if !complete {
        if sh.has_excludes {
            sh.obs.warning(&Warning::NotEmpty { path });
        }
        return Ok(false);
    }
    if announce && !sh.take_budget(1) {
        return Ok(false);
    }
    sys::unlink_at(parent, name, true)?;
    if announce {
        deleted(sh, path, Kind::Dir);
    }
    Ok(true)
}

/// A dry run of [`remove_tree`]: reports the contents of directory `name` of `parent` as
/// deleted (the directory itself is reported by the caller).
pub(crate) fn simulate_contents(
    sh: &Shared<'_>,
    parent: BorrowedFd<'_>,
    name: &[u8],
    path: &[u8],
    rules: &DirRules,
) {
    let Ok(dir) = sys::open_dir_at(parent, name) else {
        return;
    };
    let mut arena = Vec::new();
    let mut names = Vec::new();
    if sys::read_names_at(dir.as_fd(), &mut arena, &mut names).is_err() {
        return;
    }
    let inner = rules_in(sh, dir.as_fd(), path, &arena, &names, rules);
    names.sort_by(|&(a, la), &(b, lb)| {
        arena[a as usize..a as usize + la as usize]
            .cmp(&arena[b as usize..b as usize + lb as usize])
    });
    for &(off, len) in &names {
        let child = &arena[off as usize..off as usize + len as usize];
        let Ok(st) = sys::lstat_at(dir.as_fd(), child) else {
            continue;
        };
        let kind = sys::meta_of(&st).map_or(Kind::File, |m| m.kind);
        if keep(sh, &inner, path, child, &st, kind == Kind::Dir) {
            continue;
        }
        let child_path = join(path, child);
        if kind == Kind::Dir {
            simulate_contents(sh, dir.as_fd(), child, &child_path, &inner);
        }
        deleted(sh, &child_path, kind);
    }
}
