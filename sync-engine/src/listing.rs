//! The in-memory listing of one tree: every entry's name and metadata in depth-first pre-order,
//! children sorted by name bytes, names and symlink targets packed into one byte arena (no
//! allocation per entry). Produced by [`crate::scan`], consumed by the pure [`crate::plan`].

use std::collections::HashMap;

/// Index of an entry in a [`Listing`]. The root is always 0.
pub type Idx = u32;

/// Marker for "no entry".
pub const NONE: Idx = u32::MAX;

/// What kind of filesystem object an entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    File,
    Dir,
    Symlink,
    CharDev,
    BlockDev,
    Fifo,
    Socket,
}

const S_IFMT: u32 = 0o170000;

impl Kind {
    /// What `-H` keeps hard links of, as rsync: regular files, devices, FIFOs and sockets.
    pub fn is_linkable(self) -> bool {
        !matches!(self, Kind::Dir | Kind::Symlink)
    }

    /// The same type or, as rsync has them, one of the same class: a character or block
    /// device for the other, a FIFO or socket for the other. An entry of another class is
    /// replaced, one of the same class recreated as a change of its content.
    pub fn same_class(self, other: Kind) -> bool {
        self == other
            || matches!(
                (self, other),
                (
                    Kind::CharDev | Kind::BlockDev,
                    Kind::CharDev | Kind::BlockDev
                ) | (Kind::Fifo | Kind::Socket, Kind::Fifo | Kind::Socket)
            )
    }

    /// The kind encoded in the file-type bits of `st_mode`, if it is one opsync mirrors.
    pub fn from_mode(mode: u32) -> Option<Kind> {
        Some(match mode & S_IFMT {
            0o100000 => Kind::File,
            0o040000 => Kind::Dir,
            0o120000 => Kind::Symlink,
            0o020000 => Kind::CharDev,
            0o060000 => Kind::BlockDev,
            0o010000 => Kind::Fifo,
            0o140000 => Kind::Socket,
            _ => return None,
        })
    }

    /// The file-type bits of `st_mode` for this kind.
    pub fn mode_bits(self) -> u32 {
        match self {
            Kind::File => 0o100000,
            Kind::Dir => 0o040000,
            Kind::Symlink => 0o120000,
            Kind::CharDev => 0o020000,
            Kind::BlockDev => 0o060000,
            Kind::Fifo => 0o010000,
            Kind::Socket => 0o140000,
        }
    }

    /// Devices, FIFOs and sockets: created with `mknod`, no content.
    pub fn is_special(self) -> bool {
        matches!(
            self,
            Kind::CharDev | Kind::BlockDev | Kind::Fifo | Kind::Socket
        )
    }
}

/// A modification time with nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Time {
    pub sec: i64,
    pub nsec: u32,
}

/// The attributes opsync mirrors for one entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meta {
    pub kind: Kind,
    /// The 12 permission bits (`0o7777`).
    pub perm: u32,
    pub uid: u32,
    pub gid: u32,
    /// Size in bytes for files and symlinks; the device number (`st_rdev`) for devices.
    pub size: u64,
    pub mtime: Time,
    /// DST regular files only: the copy's stamp says its content was read when the mtime was
    /// not clearly older, so size and mtime cannot be trusted (see [`crate::racy`]).
    pub racy: bool,
    /// DST only: protected from deletion by the filter rules (an excluded or protected entry).
    pub protected: bool,
    /// A directory on another filesystem than the root's (`-x`): listed without its contents,
    /// which are neither copied nor deleted.
    pub mount: bool,
}

impl Meta {
    /// The device number of a device entry.
    pub fn rdev(&self) -> u64 {
        self.size
    }
}

/// One entry of a listing.
#[derive(Debug, Clone, Copy)]
pub struct Entry {
    name_off: u32,
    name_len: u16,
    link_len: u16,
    /// Index of the parent directory ([`NONE`] for the root).
    pub parent: Idx,
    /// One past the last index of this entry's subtree (`self + 1` for non-directories).
    pub end: Idx,
    pub meta: Meta,
}

/// Extended attributes of one entry: `(name, value)` pairs sorted by name.
pub type Xattrs = Vec<(Vec<u8>, Vec<u8>)>;

/// A tree listing in depth-first pre-order.
#[derive(Debug, Clone, Default)]
pub struct Listing {
    arena: Vec<u8>,
    entries: Vec<Entry>,
    /// Content hashes of regular files, filled only for the pairs compared by content.
    pub hashes: HashMap<Idx, [u8; 32]>,
    /// Device and inode of regular files with several hard links (`-H` only).
    pub inodes: HashMap<Idx, (u64, u64)>,
    /// Extended attributes and ACLs of the entries that have any (`-X`, `-A` only), sorted by
    /// name.
    pub xattrs: HashMap<Idx, Xattrs>,
}

impl Listing {
    /// A listing holding only a root directory with `meta`.
    #[cfg(feature = "internals")]
    pub fn with_root(meta: Meta) -> Listing {
        Listing::with_root_capacity(meta, 0, 0)
    }

    /// Like [`Listing::with_root`], with room for `entries` more entries holding `bytes` bytes of
    /// names and symlink targets, so a large listing is built without growing (and without the
    /// slack a doubling vector leaves).
    pub fn with_root_capacity(meta: Meta, entries: usize, bytes: usize) -> Listing {
        let mut l = Listing {
            arena: Vec::with_capacity(bytes),
            entries: Vec::with_capacity(entries + 1),
            hashes: HashMap::new(),
            inodes: HashMap::new(),
            xattrs: HashMap::new(),
        };
        l.push(b"", None, meta, NONE);
        l
    }

    /// Number of entries, root included.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when there is no root (the tree does not exist).
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Appends an entry as the next in pre-order; returns its index. The caller sets `end` of
    /// directories with [`Listing::close`] once their subtree is complete.
    pub fn push(&mut self, name: &[u8], link: Option<&[u8]>, meta: Meta, parent: Idx) -> Idx {
        let idx = self.entries.len() as Idx;
        let name_off = self.arena.len() as u32;
        self.arena.extend_from_slice(name);
        let link = link.unwrap_or_default();
        self.arena.extend_from_slice(link);
        self.entries.push(Entry {
            name_off,
            name_len: name.len() as u16,
            link_len: link.len() as u16,
            parent,
            end: idx + 1,
            meta,
        });
        idx
    }

    /// Marks the subtree of `dir` as complete: it ends at the current length.
    pub fn close(&mut self, dir: Idx) {
        let end = self.entries.len() as Idx;
        self.entries[dir as usize].end = end;
    }

    pub fn entry(&self, i: Idx) -> &Entry {
        &self.entries[i as usize]
    }

    pub fn meta(&self, i: Idx) -> &Meta {
        &self.entries[i as usize].meta
    }

    /// The entry's own name (empty for the root).
    pub fn name(&self, i: Idx) -> &[u8] {
        let e = &self.entries[i as usize];
        &self.arena[e.name_off as usize..e.name_off as usize + e.name_len as usize]
    }

    /// The symlink target of a symlink entry (empty otherwise).
    pub fn link(&self, i: Idx) -> &[u8] {
        let e = &self.entries[i as usize];
        let start = e.name_off as usize + e.name_len as usize;
        &self.arena[start..start + e.link_len as usize]
    }

    /// The extended attributes of `i` (none read, or none there: empty).
    pub fn xattrs_of(&self, i: Idx) -> &[(Vec<u8>, Vec<u8>)] {
        self.xattrs.get(&i).map_or(&[], Vec::as_slice)
    }

    /// The direct children of directory `i`, in name order.
    pub fn children(&self, i: Idx) -> Children<'_> {
        let e = &self.entries[i as usize];
        Children {
            listing: self,
            next: i + 1,
            end: e.end,
        }
    }

    /// Writes the path of `i` relative to the root into `out` (cleared first); the root is empty.
    pub fn path_into(&self, i: Idx, out: &mut Vec<u8>) {
        out.clear();
        let mut chain = Vec::new();
        let mut cur = i;
        while cur != 0 && cur != NONE {
            chain.push(cur);
            cur = self.entries[cur as usize].parent;
        }
        for (n, c) in chain.iter().rev().enumerate() {
            if n > 0 {
                out.push(b'/');
            }
            out.extend_from_slice(self.name(*c));
        }
    }

    /// The entry at `path` (relative to the root, `/`-separated, no `.` or `..`), if any.
    pub fn find(&self, path: &[u8]) -> Option<Idx> {
        if self.is_empty() {
            return None;
        }
        let mut cur: Idx = 0;
        for part in path.split(|b| *b == b'/').filter(|p| !p.is_empty()) {
            cur = self.children(cur).find(|&c| self.name(c) == part)?;
        }
        Some(cur)
    }

    /// The path of `i` relative to the root.
    pub fn path(&self, i: Idx) -> Vec<u8> {
        let mut v = Vec::new();
        self.path_into(i, &mut v);
        v
    }
}

/// Iterator over the direct children of a directory.
pub struct Children<'a> {
    listing: &'a Listing,
    next: Idx,
    end: Idx,
}

impl Iterator for Children<'_> {
    type Item = Idx;
    fn next(&mut self) -> Option<Idx> {
        if self.next >= self.end {
            return None;
        }
        let cur = self.next;
        self.next = self.listing.entries[cur as usize].end;
        Some(cur)
    }
}

/// One step of walking the children of a SRC and a DST directory side by side, by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Paired {
    /// Only in SRC.
    Src(Idx),
    /// Only in DST.
    Dst(Idx),
    /// The same name on both sides.
    Both(Idx, Idx),
}

/// The children of `s` in `src` and `d` in `dst` merged by name (both are sorted); `d` may be
/// [`NONE`] for a directory DST does not have. Shared by the planner, `--checksum` and verify.
pub fn paired_children<'a>(
    src: &'a Listing,
    s: Idx,
    dst: &'a Listing,
    d: Idx,
) -> PairedChildren<'a> {
    PairedChildren {
        src,
        dst,
        sc: src.children(s).peekable(),
        dc: (d != NONE).then(|| dst.children(d).peekable()),
    }
}

/// Iterator of [`paired_children`].
pub struct PairedChildren<'a> {
    src: &'a Listing,
    dst: &'a Listing,
    sc: std::iter::Peekable<Children<'a>>,
    dc: Option<std::iter::Peekable<Children<'a>>>,
}

impl Iterator for PairedChildren<'_> {
    type Item = Paired;
    fn next(&mut self) -> Option<Paired> {
        let next_d = self.dc.as_mut().and_then(|it| it.peek().copied());
        match (self.sc.peek().copied(), next_d) {
            (None, None) => None,
            (Some(a), None) => {
                self.sc.next();
                Some(Paired::Src(a))
            }
            (None, Some(b)) => {
                self.dc.as_mut().map(Iterator::next);
                Some(Paired::Dst(b))
            }
            (Some(a), Some(b)) => Some(match self.src.name(a).cmp(self.dst.name(b)) {
                std::cmp::Ordering::Less => {
                    self.sc.next();
                    Paired::Src(a)
                }
                std::cmp::Ordering::Greater => {
                    self.dc.as_mut().map(Iterator::next);
                    Paired::Dst(b)
                }
                std::cmp::Ordering::Equal => {
                    self.sc.next();
                    self.dc.as_mut().map(Iterator::next);
                    Paired::Both(a, b)
                }
            }),
        }
    }
}

/// Test helper: builds listings from a compact description.
#[cfg(test)]
pub(crate) mod build {
    use super::*;

    /// A node of a tree description: `(name, meta, link, children)`.
    pub struct Node {
        pub name: &'static [u8],
        pub meta: Meta,
        pub link: &'static [u8],
        pub children: Vec<Node>,
    }

    pub fn meta(kind: Kind, perm: u32, size: u64, sec: i64) -> Meta {
        Meta {
            kind,
            perm,
            uid: 0,
            gid: 0,
            size,
            mtime: Time { sec, nsec: 0 },
            racy: false,
            protected: false,
            mount: false,
        }
    }

    pub fn file(name: &'static [u8], size: u64, sec: i64) -> Node {
        Node {
            name,
            meta: meta(Kind::File, 0o644, size, sec),
            link: b"",
            children: vec![],
        }
    }

    pub fn dir(name: &'static [u8], children: Vec<Node>) -> Node {
        Node {
            name,
            meta: meta(Kind::Dir, 0o755, 0, 100),
            link: b"",
            children,
        }
    }

    pub fn symlink(name: &'static [u8], target: &'static [u8]) -> Node {
        Node {
            name,
            meta: meta(Kind::Symlink, 0o777, target.len() as u64, 100),
            link: target,
            children: vec![],
        }
    }

    /// Builds a listing; children are sorted by name like a scan does.
    pub fn listing(root: Node) -> Listing {
        let mut l = Listing::default();
        add(&mut l, root, NONE);
        l
    }

    fn add(l: &mut Listing, mut n: Node, parent: Idx) {
        let link = (n.meta.kind == Kind::Symlink).then_some(n.link);
        let idx = l.push(n.name, link, n.meta, parent);
        n.children.sort_by(|a, b| a.name.cmp(b.name));
        for c in n.children {
            add(l, c, idx);
        }
        l.close(idx);
    }
}
