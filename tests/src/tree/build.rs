//! Creating a [`Tree`] on disk with real syscalls, relative to a handle on its root.

use std::fs::File;
use std::io::{self, Write};
use std::os::fd::OwnedFd;
use std::path::Path;

use rustix::fs::{
    AtFlags, CWD, FileType, Gid, Mode, OFlags, Timespec, Timestamps, Uid, chmodat, chownat, linkat,
    makedev, mkdirat, mknodat, openat, symlinkat, utimensat,
};

use super::{Kind, Node, Tree};

/// The access time every built entry gets. opsync reads a DST file's access time as the moment
/// its copy was read (its stamp, see `sync_engine::racy`) and compares a file by content when
/// its mtime is not clearly older than that.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stamp {
    /// A moment after every mtime the generator draws (year 2286 and a bit): every copy looks
    /// read long after its file was written, so the quick check is trusted, as rsync always
    /// trusts it.
    AfterEveryMtime,
    /// The entry's own mtime: every copy looks racily clean (read in the instant of its last
    /// write), so opsync compares every same-size, same-mtime file by content.
    AtMtime,
}

/// Seconds of [`Stamp::AfterEveryMtime`].
pub const LATE_STAMP: i64 = 10_000_000_100;

impl Tree {
    /// Creates the tree at `root` with [`Stamp::AfterEveryMtime`] access times; see
    /// [`Tree::build_stamped`].
    pub fn build(&self, root: &Path) -> io::Result<()> {
        self.build_stamped(root, Stamp::AfterEveryMtime)
    }

    /// Creates the tree at `root`: the directory is created if missing (its parent must exist)
    /// and must be empty otherwise. Owners, modes and times are set after all entries exist,
    /// children before their directory, so every directory keeps the mtime of the model.
    pub fn build_stamped(&self, root: &Path, stamp: Stamp) -> io::Result<()> {
        match std::fs::create_dir(root) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(with_path("mkdir", root.as_os_str().as_encoded_bytes(), e)),
        }
        let dir = openat(
            CWD,
            root,
            OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| with_path("open", root.as_os_str().as_encoded_bytes(), e.into()))?;
        for (path, node) in &self.entries {
            if !self.hard_links.contains_key(path) {
                create(&dir, path, &node.kind)?;
            }
        }
        for (link, target) in &self.hard_links {
            linkat(
                &dir,
                target.as_slice(),
                &dir,
                link.as_slice(),
                AtFlags::empty(),
            )
            .map_err(|e| with_path("link", link, e.into()))?;
        }
        for (path, node) in self.entries.iter().rev() {
            set_attrs(&dir, path, node, stamp)?;
        }
        set_attrs(&dir, b".", &self.root, stamp)
    }
}

fn create(dir: &OwnedFd, path: &[u8], kind: &Kind) -> io::Result<()> {
    let private = Mode::from_raw_mode(0o700);
    let made = match kind {
        Kind::File(content) => {
            let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::CLOEXEC;
            let fd = openat(dir, path, flags, private)
                .map_err(|e| with_path("create", path, e.into()))?;
            return File::from(fd)
                .write_all(content)
                .map_err(|e| with_path("write", path, e));
        }
        Kind::Dir => mkdirat(dir, path, private),
        Kind::Symlink(target) => symlinkat(target.as_slice(), dir, path),
        Kind::Fifo => mknodat(dir, path, FileType::Fifo, private, 0),
        Kind::Socket => mknodat(dir, path, FileType::Socket, private, 0),
        Kind::CharDev(major, minor) => mknodat(
            dir,
            path,
            FileType::CharacterDevice,
            private,
            makedev(*major, *minor),
        ),
        Kind::BlockDev(major, minor) => mknodat(
            dir,
            path,
            FileType::BlockDevice,
            private,
            makedev(*major, *minor),
        ),
    };
    made.map_err(|e| with_path(kind.name(), path, e.into()))
}

/// Owner and group first (chown clears setuid and setgid), then mode, then times.
fn set_attrs(dir: &OwnedFd, path: &[u8], node: &Node, stamp: Stamp) -> io::Result<()> {
    let nofollow = AtFlags::SYMLINK_NOFOLLOW;
    chownat(
        dir,
        path,
        Some(Uid::from_raw(node.uid)),
        Some(Gid::from_raw(node.gid)),
        nofollow,
    )
    .map_err(|e| with_path("chown", path, e.into()))?;
    if !matches!(node.kind, Kind::Symlink(_)) {
        chmodat(dir, path, Mode::from_raw_mode(node.mode), AtFlags::empty())
            .map_err(|e| with_path("chmod", path, e.into()))?;
    }
    let time = Timespec {
        tv_sec: node.mtime.sec,
        tv_nsec: node.mtime.nsec.into(),
    };
    let atime = match stamp {
        Stamp::AfterEveryMtime => Timespec {
            tv_sec: LATE_STAMP,
            tv_nsec: 0,
        },
        Stamp::AtMtime => time,
    };
    let times = Timestamps {
        last_access: atime,
        last_modification: time,
    };
    utimensat(dir, path, &times, nofollow).map_err(|e| with_path("set times of", path, e.into()))
}

fn with_path(op: &str, path: &[u8], err: io::Error) -> io::Error {
    io::Error::new(err.kind(), format!("{op} {}: {err}", path.escape_ascii()))
}
