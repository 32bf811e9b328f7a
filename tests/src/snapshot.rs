//! Comparable snapshots of a directory tree, for the differential tests.
//!
//! [`snapshot`] walks a tree with `lstat` (a symlink is never followed) and records for every
//! entry, the root included: its type, the 12 permission bits (not for symlinks), owner, group,
//! mtime with nanoseconds (files, directories and symlinks alike), and by type the size and
//! BLAKE3 hash of a file, the target bytes of a symlink, the device number of a device. The link
//! count of non-directories is recorded too, since `rsync -a` turns hard links into separate
//! files. Not compared: atimes, ctimes, inode numbers, sizes of directories. Inode numbers and
//! ctimes are kept aside in [`Snapshot::identities`] to check that a run changed nothing at all.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

/// What an entry is, with its type-specific data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum What {
    File { size: u64, hash: blake3::Hash },
    Dir,
    Symlink(Vec<u8>),
    Fifo,
    Socket,
    CharDev(u64),
    BlockDev(u64),
}

impl What {
    fn describe(&self) -> String {
        match self {
            What::File { size, .. } => format!("file of {size} bytes"),
            What::Dir => "dir".into(),
            What::Symlink(t) => format!("symlink to \"{}\"", t.escape_ascii()),
            What::Fifo => "fifo".into(),
            What::Socket => "socket".into(),
            What::CharDev(d) => format!("chardev {}", dev(*d)),
            What::BlockDev(d) => format!("blockdev {}", dev(*d)),
        }
    }
}

fn dev(d: u64) -> String {
    format!("{},{}", rustix::fs::major(d), rustix::fs::minor(d))
}

/// The compared attributes of one entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub what: What,
    /// The 12 permission bits; `None` for symlinks.
    pub perm: Option<u32>,
    pub uid: u32,
    pub gid: u32,
    /// Seconds and nanoseconds.
    pub mtime: (i64, i64),
    /// Link count of a non-directory; `None` for directories.
    pub nlink: Option<u64>,
}

/// Where an entry lives on disk; not compared by [`Snapshot::diff`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Identity {
    pub ino: u64,
    pub ctime: (i64, i64),
}

/// Every entry of a tree by relative path (bytes; the root is the empty path).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Snapshot {
    pub entries: BTreeMap<Vec<u8>, Entry>,
    pub identities: BTreeMap<Vec<u8>, Identity>,
}

/// Snapshot of the tree at `root` (which must be a directory).
pub fn snapshot(root: &Path) -> io::Result<Snapshot> {
    let mut snap = Snapshot::default();
    visit(root, Vec::new(), &mut snap)?;
    Ok(snap)
}

fn visit(path: &Path, rel: Vec<u8>, snap: &mut Snapshot) -> io::Result<()> {
    let meta = fs::symlink_metadata(path).map_err(|e| with_path("lstat", path, e))?;
    let ft = meta.file_type();
    let what = if ft.is_file() {
        let data = fs::read(path).map_err(|e| with_path("read", path, e))?;
        What::File {
            size: meta.len(),
            hash: blake3::hash(&data),
        }
    } else if ft.is_dir() {
        What::Dir
    } else if ft.is_symlink() {
        let target = fs::read_link(path).map_err(|e| with_path("readlink", path, e))?;
        What::Symlink(target.as_os_str().as_bytes().to_vec())
    } else if ft.is_fifo() {
        What::Fifo
    } else if ft.is_socket() {
        What::Socket
    } else if ft.is_char_device() {
        What::CharDev(meta.rdev())
    } else if ft.is_block_device() {
        What::BlockDev(meta.rdev())
    } else {
        return Err(io::Error::other(format!(
            "{}: unknown file type",
            path.display()
        )));
    };
    let is_dir = what == What::Dir;
    snap.entries.insert(
        rel.clone(),
        Entry {
            perm: (!ft.is_symlink()).then_some(meta.mode() & 0o7777),
            uid: meta.uid(),
            gid: meta.gid(),
            mtime: (meta.mtime(), meta.mtime_nsec()),
            nlink: (!is_dir).then_some(meta.nlink()),
            what,
        },
    );
    snap.identities.insert(
        rel.clone(),
        Identity {
            ino: meta.ino(),
            ctime: (meta.ctime(), meta.ctime_nsec()),
        },
    );
    if is_dir {
        let mut names: Vec<_> = fs::read_dir(path)
            .map_err(|e| with_path("read directory", path, e))?
            .map(|entry| entry.map(|e| e.file_name()))
            .collect::<io::Result<_>>()
            .map_err(|e| with_path("read directory", path, e))?;
        names.sort();
        for name in names {
            let mut child = rel.clone();
            if !child.is_empty() {
                child.push(b'/');
            }
            child.extend_from_slice(name.as_bytes());
            visit(&path.join(&name), child, snap)?;
        }
    }
    Ok(())
}

fn with_path(op: &str, path: &Path, err: io::Error) -> io::Error {
    io::Error::new(
        err.kind(),
        format!("{op} {}: {err}", PathBuf::from(path).display()),
    )
}

/// A path for messages: `.` for the root, bytes escaped (`\n`, `\xff`).
pub fn show(path: &[u8]) -> String {
    if path.is_empty() {
        ".".into()
    } else {
        path.escape_ascii().to_string()
    }
}

impl Snapshot {
    /// Forgets the link counts (to compare a tree with hard links to a copy made without them).
    pub fn without_nlink(mut self) -> Self {
        for entry in self.entries.values_mut() {
            entry.nlink = None;
        }
        self
    }

    /// Forgets the given entries.
    pub fn without(mut self, paths: &[Vec<u8>]) -> Self {
        for p in paths {
            self.entries.remove(p);
            self.identities.remove(p);
        }
        self
    }

    /// Readable differences from `self` (called `left`) to `other` (called `right`), one per
    /// line; empty when the snapshots are equal. An entry only on one side is listed once with
    /// the number of entries below it.
    pub fn diff(&self, left: &str, other: &Snapshot, right: &str) -> Vec<String> {
        let mut out = Vec::new();
        let mut keys: Vec<&Vec<u8>> = self.entries.keys().chain(other.entries.keys()).collect();
        keys.sort();
        keys.dedup();
        // Entry only on one side -> index in `out` of the line of its topmost such ancestor.
        let mut only: BTreeMap<&[u8], usize> = BTreeMap::new();
        let mut below: BTreeMap<usize, usize> = BTreeMap::new();
        for path in keys {
            match (self.entries.get(path), other.entries.get(path)) {
                (Some(a), Some(b)) => entry_diff(path, a, left, b, right, &mut out),
                (a, b) => {
                    let parent = path
                        .iter()
                        .rposition(|&c| c == b'/')
                        .map_or(&path[..0], |i| &path[..i]);
                    if let Some(&line) = only.get(parent).filter(|_| !path.is_empty()) {
                        *below.entry(line).or_insert(0) += 1;
                        only.insert(path, line);
                        continue;
                    }
                    let (side, entry) = match (a, b) {
                        (Some(a), _) => (left, a),
                        (_, b) => (right, b.expect("one side has it")),
                    };
                    only.insert(path, out.len());
                    out.push(format!(
                        "{}: only in {side} ({})",
                        show(path),
                        entry.what.describe()
                    ));
                }
            }
        }
        for (line, n) in below {
            let _ = write!(out[line], " and {n} entries below it");
        }
        out
    }

    /// Entries whose inode or ctime changed (replaced, or any metadata written), and entries
    /// added or removed.
    pub fn identity_diff(&self, other: &Snapshot) -> Vec<String> {
        let mut out = Vec::new();
        for (path, a) in &self.identities {
            match other.identities.get(path) {
                None => out.push(format!("{}: removed", show(path))),
                Some(b) if a.ino != b.ino => out.push(format!(
                    "{}: replaced (inode {} -> {})",
                    show(path),
                    a.ino,
                    b.ino
                )),
                Some(b) if a.ctime != b.ctime => out.push(format!(
                    "{}: metadata written (ctime {}.{:09} -> {}.{:09})",
                    show(path),
                    a.ctime.0,
                    a.ctime.1,
                    b.ctime.0,
                    b.ctime.1
                )),
                Some(_) => {}
            }
        }
        for path in other
            .identities
            .keys()
            .filter(|p| !self.identities.contains_key(*p))
        {
            out.push(format!("{}: added", show(path)));
        }
        out
    }
}

fn entry_diff(path: &[u8], a: &Entry, left: &str, b: &Entry, right: &str, out: &mut Vec<String>) {
    let p = show(path);
    let mut line = |what: &str, x: String, y: String| {
        out.push(format!("{p}: {what} {x} ({left}) vs {y} ({right})"))
    };
    match (&a.what, &b.what) {
        (What::File { size: sa, hash: ha }, What::File { size: sb, hash: hb }) => {
            if sa != sb {
                line("size", sa.to_string(), sb.to_string());
            } else if ha != hb {
                line("content (same size)", short(ha), short(hb));
            }
        }
        (x, y) if x != y => line("type", x.describe(), y.describe()),
        _ => {}
    }
    if a.perm != b.perm {
        let perm = |m: Option<u32>| m.map_or("none".into(), |m| format!("{m:04o}"));
        line("mode", perm(a.perm), perm(b.perm));
    }
    if a.uid != b.uid {
        line("uid", a.uid.to_string(), b.uid.to_string());
    }
    if a.gid != b.gid {
        line("gid", a.gid.to_string(), b.gid.to_string());
    }
    if a.mtime != b.mtime {
        let t = |(s, n): (i64, i64)| format!("{s}.{n:09}");
        line("mtime", t(a.mtime), t(b.mtime));
    }
    if a.nlink != b.nlink {
        let n = |n: Option<u64>| n.map_or("-".into(), |n| n.to_string());
        line("link count", n(a.nlink), n(b.nlink));
    }
}

fn short(hash: &blake3::Hash) -> String {
    let mut s = String::new();
    for b in &hash.as_bytes()[..6] {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// The message for a failed comparison: a title and at most `max` difference lines.
pub fn render(title: &str, lines: &[String], max: usize) -> String {
    let mut msg = format!("{title}: {} difference(s)\n", lines.len());
    for line in lines.iter().take(max) {
        msg.push_str("  ");
        msg.push_str(line);
        msg.push('\n');
    }
    if lines.len() > max {
        let _ = writeln!(msg, "  ... and {} more", lines.len() - max);
    }
    msg
}
