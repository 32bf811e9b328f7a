//! Deterministic random trees for the differential tests.
//!
//! A [`Tree`] is an in-memory model of a directory: every entry with its relative path (bytes),
//! type, content, permission bits, owner, group and nanosecond mtime. [`Tree::random`] draws one
//! from a seed (the same seed always gives the same tree), [`Tree::stale`] derives from a source
//! tree the stale destination a mirror run has to repair, and [`Tree::build`] creates the model
//! on disk with real syscalls. Building the same model twice gives two trees that only differ in
//! inode numbers and ctimes, which is how the tests get two identical copies of a stale DST.
//!
//! Everything is made to be hard for a mirror: all entry types (devices and UNIX sockets need
//! root), names with newlines, non-UTF-8 bytes, spaces, leading dashes, `..` inside and 255 bytes,
//! setuid/setgid/sticky bits and modes like 0000, arbitrary numeric owners, mtimes before 1970
//! and after 2100 with nanoseconds, hard links (which `rsync -a` does not keep), and symlinks that
//! are relative, absolute, dangling, very long or point to directories.

mod build;
mod names;
mod stale;

use std::collections::BTreeMap;

use fastrand::Rng;

pub use build::{LATE_STAMP, Stamp};
pub use stale::{Stale, StaleOptions};

/// A path relative to the tree's root, as bytes, components separated by `/`.
pub type RelPath = Vec<u8>;

/// Modification time with nanoseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Mtime {
    pub sec: i64,
    pub nsec: u32,
}

/// The type of an entry, with what makes it what it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A regular file and its content.
    File(Vec<u8>),
    Dir,
    /// A symbolic link and its target bytes.
    Symlink(Vec<u8>),
    Fifo,
    Socket,
    /// A character device: major, minor.
    CharDev(u32, u32),
    /// A block device: major, minor.
    BlockDev(u32, u32),
}

impl Kind {
    /// A short name for messages.
    pub fn name(&self) -> &'static str {
        match self {
            Kind::File(_) => "file",
            Kind::Dir => "dir",
            Kind::Symlink(_) => "symlink",
            Kind::Fifo => "fifo",
            Kind::Socket => "socket",
            Kind::CharDev(..) => "chardev",
            Kind::BlockDev(..) => "blockdev",
        }
    }
}

/// One entry of a tree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node {
    pub kind: Kind,
    /// The 12 permission bits (ignored for symlinks).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime: Mtime,
}

/// A directory tree in memory.
#[derive(Clone, Debug)]
pub struct Tree {
    /// Attributes of the root directory itself (its kind is always [`Kind::Dir`]).
    pub root: Node,
    /// Every entry below the root, parents before their children (a parent's path is a prefix).
    pub entries: BTreeMap<RelPath, Node>,
    /// Hard links: link path -> the entry it is a second name of. Both are in `entries` with the
    /// same node.
    pub hard_links: BTreeMap<RelPath, RelPath>,
}

/// What [`Tree::random`] puts into a tree.
#[derive(Clone, Debug)]
pub struct GenOptions {
    /// Upper bound of the number of entries below the root.
    pub max_entries: usize,
    /// Deepest nesting of directories below the root.
    pub max_depth: usize,
    /// Some files of 256 KiB to 2 MiB (otherwise files are at most 64 KiB).
    pub large_files: bool,
    /// Names drawn with `extra_name_percent` probability instead of a random name (for exclude
    /// patterns).
    pub extra_names: Vec<Vec<u8>>,
    pub extra_name_percent: u32,
    /// Character and block devices (creating them needs root).
    pub devices: bool,
}

impl Default for GenOptions {
    fn default() -> Self {
        GenOptions {
            max_entries: 70,
            max_depth: 4,
            large_files: true,
            extra_names: Vec::new(),
            extra_name_percent: 0,
            devices: true,
        }
    }
}

impl Tree {
    /// A random tree drawn from `seed`.
    pub fn random(seed: u64, opts: &GenOptions) -> Tree {
        let mut g = Gen::new(seed, opts);
        let mut tree = Tree {
            root: g.node_attrs(Kind::Dir),
            entries: BTreeMap::new(),
            hard_links: BTreeMap::new(),
        };
        let mut budget = g.rng.usize(opts.max_entries / 3..=opts.max_entries);
        // Spend the budget: fill the root, then random directories again.
        for _ in 0..50 {
            if budget == 0 {
                break;
            }
            let dirs: Vec<RelPath> = std::iter::once(Vec::new())
                .chain(
                    tree.entries
                        .iter()
                        .filter(|(_, n)| n.kind == Kind::Dir)
                        .map(|(p, _)| p.clone()),
                )
                .filter(|d| depth(d) < opts.max_depth)
                .collect();
            let dir = if tree.entries.is_empty() {
                Vec::new()
            } else {
                g.rng.choice(dirs).unwrap_or_default()
            };
            g.fill_dir(&mut tree, &dir, depth(&dir), &mut budget, true);
        }
        if tree.entries.is_empty() {
            // An empty SRC is a case of its own (opsync refuses it unless told otherwise).
            let path = g.fresh_name(&tree, b"");
            let node = g.leaf(&tree, &path);
            tree.entries.insert(path, node);
        }
        tree
    }

    /// The entry at `path` (the root for an empty path).
    pub fn get(&self, path: &[u8]) -> Option<&Node> {
        if path.is_empty() {
            Some(&self.root)
        } else {
            self.entries.get(path)
        }
    }

    /// Removes `path` and everything below it.
    pub fn remove_subtree(&mut self, path: &[u8]) {
        let below: Vec<RelPath> = self.descendants(path).cloned().collect();
        for p in below {
            self.entries.remove(&p);
            self.hard_links.remove(&p);
        }
        self.entries.remove(path);
        self.hard_links.remove(path);
    }

    /// Paths strictly below the directory `dir` (everything for the root).
    pub fn descendants<'a>(&'a self, dir: &[u8]) -> impl Iterator<Item = &'a RelPath> + 'a {
        let prefix = child_path(dir, b"");
        self.entries
            .range(prefix.clone()..)
            .map(|(p, _)| p)
            .take_while(move |p| p.starts_with(&prefix))
    }

    /// Paths of regular files.
    pub fn files(&self) -> impl Iterator<Item = &RelPath> {
        self.entries
            .iter()
            .filter(|(_, n)| matches!(n.kind, Kind::File(_)))
            .map(|(p, _)| p)
    }

    /// Number of entries of each kind, for messages and for checking coverage.
    pub fn kind_counts(&self) -> BTreeMap<&'static str, usize> {
        let mut counts = BTreeMap::new();
        for node in self.entries.values() {
            *counts.entry(node.kind.name()).or_insert(0) += 1;
        }
        counts
    }
}

/// `dir/name`, or `name` at the root.
pub fn child_path(dir: &[u8], name: &[u8]) -> RelPath {
    let mut p = dir.to_vec();
    if !p.is_empty() {
        p.push(b'/');
    }
    p.extend_from_slice(name);
    p
}

/// Number of `/`-separated components of a relative path.
pub fn depth(path: &[u8]) -> usize {
    if path.is_empty() {
        0
    } else {
        1 + path.iter().filter(|&&b| b == b'/').count()
    }
}

const FILE_MODES: &[u32] = &[
    0o644, 0o644, 0o600, 0o755, 0o700, 0o444, 0o640, 0o000, 0o777, 0o4755, 0o2755, 0o1777, 0o6711,
    0o7777, 0o1644,
];
const DIR_MODES: &[u32] = &[
    0o755, 0o755, 0o700, 0o777, 0o1777, 0o2755, 0o3770, 0o000, 0o555, 0o711, 0o7777, 0o4750,
];

/// The random source and the drawing rules shared by [`Tree::random`] and [`Tree::stale`].
pub(crate) struct Gen<'a> {
    pub(crate) rng: Rng,
    opts: &'a GenOptions,
}

impl<'a> Gen<'a> {
    pub(crate) fn new(seed: u64, opts: &'a GenOptions) -> Self {
        Gen {
            rng: Rng::with_seed(seed),
            opts,
        }
    }

    pub(crate) fn mode(&mut self, kind: &Kind) -> u32 {
        if self.rng.u32(0..4) == 0 {
            return self.rng.u32(0..=0o7777);
        }
        let modes = if *kind == Kind::Dir {
            DIR_MODES
        } else {
            FILE_MODES
        };
        modes[self.rng.usize(..modes.len())]
    }

    pub(crate) fn id(&mut self) -> u32 {
        match self.rng.u32(0..10) {
            0..=3 => 0,
            4 => 1234,
            5 => 5678,
            6 => 65534,
            7 => 1000,
            _ => self.rng.u32(1..2_000_000),
        }
    }

    pub(crate) fn mtime(&mut self) -> Mtime {
        let sec = match self.rng.u32(0..100) {
            0..=1 => 0,
            2..=3 => -self.rng.i64(1..2_000_000_000),
            4..=5 => self.rng.i64(4_102_444_800..10_000_000_000),
            _ => self.rng.i64(946_684_800..1_893_456_000),
        };
        let nsec = if self.rng.u32(0..8) == 0 {
            0
        } else {
            self.rng.u32(0..1_000_000_000)
        };
        Mtime { sec, nsec }
    }

    pub(crate) fn node_attrs(&mut self, kind: Kind) -> Node {
        let mode = self.mode(&kind);
        Node {
            kind,
            mode,
            uid: self.id(),
            gid: self.id(),
            mtime: self.mtime(),
        }
    }

    pub(crate) fn content(&mut self) -> Vec<u8> {
        let len = match self.rng.u32(0..100) {
            0..=9 => 0,
            10..=39 => self.rng.usize(1..100),
            40..=89 => self.rng.usize(100..8192),
            90..=97 => self.rng.usize(8192..=65536),
            _ if self.opts.large_files => self.rng.usize(256 << 10..2 << 20),
            _ => self.rng.usize(8192..=65536),
        };
        let mut data = vec![0; len];
        if self.rng.bool() {
            self.rng.fill(&mut data);
        } else {
            // Text-like content, compressible and with repeats, as real data often is.
            for b in &mut data {
                *b = b"abc \n0123"[self.rng.usize(..9)];
            }
        }
        data
    }

    /// A name not yet used in `dir`.
    pub(crate) fn fresh_name(&mut self, tree: &Tree, dir: &[u8]) -> RelPath {
        for _ in 0..20 {
            let name = names::random_name(
                &mut self.rng,
                &self.opts.extra_names,
                self.opts.extra_name_percent,
            );
            let path = child_path(dir, &name);
            if !tree.entries.contains_key(&path) {
                return path;
            }
        }
        let mut n = 0;
        loop {
            let path = child_path(dir, format!("unique-{n}").as_bytes());
            if !tree.entries.contains_key(&path) {
                return path;
            }
            n += 1;
        }
    }

    /// A symlink target for a link at `path`.
    pub(crate) fn symlink_target(&mut self, tree: &Tree, path: &[u8]) -> Vec<u8> {
        let up = b"../".repeat(depth(path) - 1);
        match self.rng.u32(0..100) {
            // Relative, to an existing entry (a file, a directory, anything).
            0..=34 if !tree.entries.is_empty() => {
                let i = self.rng.usize(..tree.entries.len());
                let target = tree.entries.keys().nth(i).expect("index in range");
                [up.as_slice(), target].concat()
            }
            35..=44 => {
                [b".".as_slice(), b"..", b"../..", b"./", b"../"][self.rng.usize(..5)].to_vec()
            }
            45..=59 => {
                let abs: &[&[u8]] = &[
                    b"/",
                    b"/etc",
                    b"/etc/hostname",
                    b"/nonexistent/target",
                    b"/tmp/../tmp//x",
                ];
                abs[self.rng.usize(..abs.len())].to_vec()
            }
            60..=79 => {
                let mut t = b"dangling/".to_vec();
                t.extend(names::random_name(&mut self.rng, &[], 0));
                t
            }
            80..=84 => {
                let len = self.rng.usize(256..=1024);
                let mut t = Vec::with_capacity(len);
                while t.len() < len {
                    t.extend_from_slice(b"long-");
                }
                t.truncate(len);
                t
            }
            _ => names::random_name(&mut self.rng, &[], 0),
        }
    }

    /// A random non-directory entry for `path`.
    pub(crate) fn leaf(&mut self, tree: &Tree, path: &[u8]) -> Node {
        let kind = match self.rng.u32(0..100) {
            0..=54 => Kind::File(self.content()),
            55..=74 => Kind::Symlink(self.symlink_target(tree, path)),
            75..=81 => Kind::Fifo,
            82..=87 => Kind::Socket,
            88..=93 if self.opts.devices => Kind::CharDev(self.major(), self.minor()),
            94..=99 if self.opts.devices => Kind::BlockDev(self.major(), self.minor()),
            _ => Kind::File(self.content()),
        };
        self.node_attrs(kind)
    }

    pub(crate) fn major(&mut self) -> u32 {
        [1, 4, 8, 10, 136, 254, 259, 4095, self.rng.u32(0..4096)][self.rng.usize(..9)]
    }

    pub(crate) fn minor(&mut self) -> u32 {
        [0, 1, 3, 255, 256, (1 << 20) - 1, self.rng.u32(0..1 << 20)][self.rng.usize(..7)]
    }

    /// Fills the directory `dir` (already in `tree`) with random entries and subdirectories,
    /// using at most `budget` entries. `hard_links` allows second names of existing files.
    pub(crate) fn fill_dir(
        &mut self,
        tree: &mut Tree,
        dir: &[u8],
        dir_depth: usize,
        budget: &mut usize,
        hard_links: bool,
    ) {
        let wanted = self.rng.usize(0..=12.min(*budget));
        for _ in 0..wanted {
            if *budget == 0 {
                return;
            }
            *budget -= 1;
            let path = self.fresh_name(tree, dir);
            let roll = self.rng.u32(0..100);
            if roll < 22 && dir_depth < self.opts.max_depth {
                let node = self.node_attrs(Kind::Dir);
                tree.entries.insert(path.clone(), node);
                self.fill_dir(tree, &path, dir_depth + 1, budget, hard_links);
            } else if roll < 27 && hard_links {
                let files: Vec<RelPath> = tree
                    .files()
                    .filter(|p| !tree.hard_links.contains_key(*p))
                    .cloned()
                    .collect();
                if let Some(target) = self.rng.choice(files) {
                    let node = tree.entries[&target].clone();
                    tree.entries.insert(path.clone(), node);
                    tree.hard_links.insert(path, target);
                }
            } else {
                let node = self.leaf(tree, &path);
                tree.entries.insert(path, node);
            }
        }
    }
}
