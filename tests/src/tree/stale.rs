//! The stale destination: a source tree after a random set of changes a mirror has to undo.
//!
//! Rules kept so that `rsync -a --delete` and a nanosecond-exact mirror must agree:
//! - a regular file in DST with the same size and the same mtime (to the nanosecond) as in SRC
//!   but other bytes is a *quick-check trap*, listed in [`Stale::traps`]: both tools leave its
//!   content alone (without `--checksum`), so the result differs from SRC there;
//! - no entry in DST has an mtime in the same whole second as in SRC with another nanosecond
//!   part. rsync (3.5.0, `--modify-window=0`) compares mtimes in whole seconds for every type:
//!   it neither copies a same-size file nor fixes the mtime of a file, directory, symlink or
//!   special file (or of the root) that differs only in nanoseconds, while opsync compares
//!   nanoseconds and fixes them. That documented difference is not tested here; such mtimes
//!   are moved by one second.

use fastrand::Rng;

use super::{Gen, GenOptions, Kind, Mtime, Node, RelPath, Tree, child_path, depth};

/// How much [`Tree::stale`] changes.
#[derive(Clone, Debug)]
pub struct StaleOptions {
    /// Percentage of source entries that are changed, missing or replaced.
    pub change_percent: u32,
    /// Percentage of (non-empty) regular files turned into quick-check traps.
    pub trap_percent: u32,
    /// Percentage of directories that get extraneous entries.
    pub extraneous_percent: u32,
    /// Absolute path of a directory outside both trees. Symlinks in DST that stand where SRC
    /// has a directory or a file often point there, so a mirror that writes through a symlink
    /// in DST changes it, and the test sees it.
    pub outside: Vec<u8>,
    /// The same directory relative to DST's root (for example `../outside`).
    pub outside_from_root: Vec<u8>,
}

/// A stale destination derived from a source tree.
#[derive(Clone, Debug)]
pub struct Stale {
    pub tree: Tree,
    /// Regular files with the same size and mtime as in SRC but other content.
    pub traps: Vec<RelPath>,
}

const ALL_KINDS: usize = 7;

impl Tree {
    /// Derives a stale destination from this (source) tree: type conflicts in every direction,
    /// quick-check traps, attribute-only changes, changed contents, missing entries and
    /// extraneous files and subtrees. Drawn from `seed`, like [`Tree::random`].
    pub fn stale(&self, seed: u64, opts: &StaleOptions, gen_opts: &GenOptions) -> Stale {
        let mut g = Gen::new(seed ^ 0x5eed_57a1_e000_0000, gen_opts);
        let mut dst = self.clone();
        dst.hard_links.clear();
        let mut traps = Vec::new();

        if g.rng.u32(0..100) < opts.change_percent * 2 {
            change_attrs(&mut g, &mut dst.root);
        }
        // Often one directory of SRC is a symlink out of the tree in DST: the classic way to
        // make a careless mirror write outside its target.
        let dirs: Vec<&RelPath> = self
            .entries
            .iter()
            .filter(|(_, n)| n.kind == Kind::Dir)
            .map(|(p, _)| p)
            .collect();
        if let Some(dir) = g.rng.choice(dirs).filter(|_| g.rng.bool()) {
            dst.remove_subtree(dir);
            let target = outside_target(&mut g, dir, &Kind::Dir, opts);
            let node = g.node_attrs(Kind::Symlink(target));
            dst.entries.insert(dir.clone(), node);
        }
        let paths: Vec<RelPath> = self.entries.keys().cloned().collect();
        for path in &paths {
            let Some(node) = dst.entries.get(path).cloned() else {
                continue; // gone with a replaced or missing parent
            };
            if let Kind::File(content) = &node.kind
                && !content.is_empty()
                && g.rng.u32(0..100) < opts.trap_percent
            {
                let mut trap = node.clone();
                trap.kind = Kind::File(flip_bytes(&mut g.rng, content));
                if g.rng.u32(0..3) == 0 {
                    // Attributes are still fixed on a file whose data is left alone.
                    trap.mode ^= 1 << g.rng.u32(0..12);
                    trap.uid = trap.uid.wrapping_add(1);
                }
                dst.entries.insert(path.clone(), trap);
                traps.push(path.clone());
                continue;
            }
            if g.rng.u32(0..100) >= opts.change_percent {
                continue;
            }
            match g.rng.u32(0..100) {
                0..=14 => dst.remove_subtree(path),
                15..=44 => replace_kind(&mut g, &mut dst, path, &node, opts),
                45..=74 => change_attrs(&mut g, dst.entries.get_mut(path).expect("present")),
                _ => change_content(&mut g, &mut dst, path, &node),
            }
        }

        let dirs: Vec<RelPath> = std::iter::once(Vec::new())
            .chain(
                dst.entries
                    .iter()
                    .filter(|(_, n)| n.kind == Kind::Dir)
                    .map(|(p, _)| p.clone()),
            )
            .collect();
        for dir in dirs {
            if g.rng.u32(0..100) < opts.extraneous_percent {
                let mut budget = g.rng.usize(1..=6);
                add_entries(&mut g, &mut dst, &dir, &mut budget);
            }
        }
        keep_whole_second_rule(self, &mut dst, &mut traps);
        if g.rng.u32(0..100) < opts.change_percent {
            add_hard_link(&mut g, self, &mut dst, &traps);
        }
        Stale { tree: dst, traps }
    }
}

/// Makes a file of DST that needs an update a second name of a file that is already up to date:
/// a mirror that writes into the existing file instead of replacing it changes the other name
/// too. Runs after [`keep_whole_second_rule`] and keeps it: the updated name's mtime is in
/// another second than SRC's.
fn add_hard_link(g: &mut Gen, src: &Tree, dst: &mut Tree, traps: &[RelPath]) {
    let files =
        |t: &Tree| -> Vec<RelPath> { t.files().filter(|p| !traps.contains(p)).cloned().collect() };
    let up_to_date: Vec<RelPath> = files(dst)
        .into_iter()
        .filter(|p| src.entries.get(p) == dst.entries.get(p))
        .collect();
    let Some(target) = g.rng.choice(up_to_date) else {
        return;
    };
    let node = dst.entries[&target].clone();
    let Kind::File(data) = &node.kind else { return };
    let stale: Vec<RelPath> = files(dst)
        .into_iter()
        .filter(|p| {
            let Some(Node {
                kind: Kind::File(want),
                mtime,
                ..
            }) = src.entries.get(p)
            else {
                return false;
            };
            *p != target && mtime.sec != node.mtime.sec && want != data
        })
        .collect();
    if let Some(link) = g.rng.choice(stale) {
        dst.entries.insert(link.clone(), node);
        dst.hard_links.insert(link, target);
    }
}

/// Adds at least one entry to `dir`, maybe a whole subtree.
fn add_entries(g: &mut Gen, tree: &mut Tree, dir: &[u8], budget: &mut usize) {
    let before = tree.entries.len();
    let dir_depth = depth(dir);
    g.fill_dir(tree, dir, dir_depth, budget, false);
    if tree.entries.len() == before {
        let path = g.fresh_name(tree, dir);
        let node = g.leaf(tree, &path);
        tree.entries.insert(path, node);
    }
}

/// Replaces the entry at `path` by one of another type (or, for a few types, the same type with
/// another target or device number).
fn replace_kind(g: &mut Gen, dst: &mut Tree, path: &[u8], old: &Node, opts: &StaleOptions) {
    dst.remove_subtree(path);
    let mut pick = g.rng.usize(..ALL_KINDS);
    if kind_index(&old.kind) == pick && !matches!(old.kind, Kind::Symlink(_) | Kind::CharDev(..)) {
        pick = (pick + 1 + g.rng.usize(..ALL_KINDS - 1)) % ALL_KINDS;
    }
    let kind = match pick {
        0 => Kind::File(g.content()),
        1 => Kind::Dir,
        2 => Kind::Symlink(outside_or_random_target(g, dst, path, old, opts)),
        3 => Kind::Fifo,
        4 => Kind::Socket,
        5 => Kind::CharDev(g.major(), g.minor()),
        _ => Kind::BlockDev(g.major(), g.minor()),
    };
    let kind = match (kind, &old.kind) {
        // Same type with other details: a changed target or device number.
        (Kind::Symlink(t), Kind::Symlink(old_t)) if t == *old_t => {
            Kind::Symlink([t, b"-x".to_vec()].concat())
        }
        (Kind::CharDev(ma, mi), Kind::CharDev(oma, omi)) if (ma, mi) == (*oma, *omi) => {
            Kind::CharDev(ma, mi ^ 1)
        }
        (kind, _) => kind,
    };
    let is_dir = kind == Kind::Dir;
    let mut node = g.node_attrs(kind);
    if g.rng.bool() {
        node.uid = old.uid;
        node.gid = old.gid;
        node.mode = old.mode;
    }
    dst.entries.insert(path.to_vec(), node);
    if is_dir && g.rng.u32(0..5) != 0 {
        let mut budget = g.rng.usize(1..=8);
        add_entries(g, dst, path, &mut budget);
    }
}

fn kind_index(kind: &Kind) -> usize {
    match kind {
        Kind::File(_) => 0,
        Kind::Dir => 1,
        Kind::Symlink(_) => 2,
        Kind::Fifo => 3,
        Kind::Socket => 4,
        Kind::CharDev(..) => 5,
        Kind::BlockDev(..) => 6,
    }
}

/// Where SRC has a directory or a file, a symlink in DST often leads outside the tree.
fn outside_or_random_target(
    g: &mut Gen,
    dst: &Tree,
    path: &[u8],
    old: &Node,
    opts: &StaleOptions,
) -> Vec<u8> {
    let leads_outside = matches!(old.kind, Kind::Dir | Kind::File(_)) && g.rng.u32(0..10) < 6;
    if !leads_outside {
        return g.symlink_target(dst, path);
    }
    outside_target(g, path, &old.kind, opts)
}

/// A symlink target at `path` leading to `outside` (absolute or relative), to its file when
/// SRC has a file there.
fn outside_target(g: &mut Gen, path: &[u8], src_kind: &Kind, opts: &StaleOptions) -> Vec<u8> {
    let base = if g.rng.bool() {
        opts.outside.clone()
    } else {
        [
            b"../".repeat(depth(path) - 1),
            opts.outside_from_root.clone(),
        ]
        .concat()
    };
    if *src_kind == Kind::Dir {
        base
    } else {
        child_path(&base, b"file")
    }
}

/// Changes one or more of mode, owner, group and mtime (by whole seconds, see the module docs).
fn change_attrs(g: &mut Gen, node: &mut Node) {
    let what = g.rng.u32(1..16);
    if what & 1 != 0 {
        node.mode ^= 1 << g.rng.u32(0..12);
    }
    if what & 2 != 0 {
        node.uid = node.uid.wrapping_add(g.rng.u32(1..1000));
    }
    if what & 4 != 0 {
        node.gid = node.gid.wrapping_add(g.rng.u32(1..1000));
    }
    if what & 8 != 0 {
        let delta = g.rng.i64(1..100_000) * if g.rng.bool() { 1 } else { -1 };
        node.mtime = Mtime {
            sec: node.mtime.sec + delta,
            nsec: g.rng.u32(0..1_000_000_000),
        };
    }
}

/// Another content (mostly sharing data with the source, as a delta transfer would like), or
/// the same content with another mtime. Non-files get their attributes changed instead.
fn change_content(g: &mut Gen, dst: &mut Tree, path: &[u8], old: &Node) {
    let node = dst.entries.get_mut(path).expect("present");
    let Kind::File(content) = &old.kind else {
        change_attrs(g, node);
        return;
    };
    let mut new = content.clone();
    match g.rng.u32(0..4) {
        // Other size: append, truncate or insert.
        0 => {
            let at = g.rng.usize(..=new.len());
            let extra: Vec<u8> = (0..g.rng.usize(1..5000)).map(|_| g.rng.u8(..)).collect();
            new.splice(at..at, extra);
        }
        1 if !new.is_empty() => new.truncate(g.rng.usize(..new.len())),
        // Same size, other bytes: the mtime must differ by whole seconds.
        2 if !new.is_empty() => {
            new = flip_bytes(&mut g.rng, &new);
            node.mtime.sec += g.rng.i64(1..1_000_000);
        }
        // Same content, other mtime.
        _ => node.mtime.sec += g.rng.i64(1..1_000_000),
    }
    if new.len() != content.len() && g.rng.bool() {
        node.mtime = g.mtime(); // otherwise the size alone must trigger the copy
    }
    node.kind = Kind::File(new);
}

/// The same bytes with at least one changed.
fn flip_bytes(rng: &mut Rng, content: &[u8]) -> Vec<u8> {
    let mut new = content.to_vec();
    for _ in 0..rng.usize(1..=4) {
        let i = rng.usize(..new.len());
        new[i] ^= rng.u8(1..);
    }
    new
}

/// Enforces the whole-second rule of the module docs on every entry DST shares with SRC,
/// whatever step made it, and lists every quick-check trap.
fn keep_whole_second_rule(src: &Tree, dst: &mut Tree, traps: &mut Vec<RelPath>) {
    let shared = dst
        .entries
        .iter_mut()
        .filter_map(|(path, node)| Some((path, node, src.entries.get(path)?)));
    for (path, node, want) in shared.chain([(&Vec::new(), &mut dst.root, &src.root)]) {
        if want.mtime.sec == node.mtime.sec && want.mtime.nsec != node.mtime.nsec {
            node.mtime.sec += 1;
        }
        if let (Kind::File(want_data), Kind::File(have)) = (&want.kind, &node.kind)
            && want.mtime == node.mtime
            && want_data.len() == have.len()
            && want_data != have
            && !traps.contains(path)
        {
            traps.push(path.clone());
        }
    }
    traps.sort();
}
