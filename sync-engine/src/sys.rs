//! The only module that makes system calls. Everything below DST's root works relative to an
//! open directory handle and never follows a symlink (`O_NOFOLLOW`, `AT_SYMLINK_NOFOLLOW`), so a
//! symlink that sits in DST, or is swapped in during the run, is never written through.
//! Linux is the supported platform (rustix keeps this free of `unsafe`).

use std::cell::RefCell;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};

use rustix::fs::{self as rfs, AtFlags, CWD, FileType, Mode, OFlags, Timestamps};
use rustix::io::Errno;

use crate::listing::{Kind, Meta, Time};

pub use rustix::fs::Stat;

const DIR_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::DIRECTORY)
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC);

/// Opens the directory at a path given by the user (symlinks in the path are resolved once, as
/// rsync does); everything afterwards is relative to the returned handle.
pub fn open_dir_path(path: &Path) -> io::Result<OwnedFd> {
    Ok(rfs::openat(
        CWD,
        path,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?)
}

/// Opens subdirectory `name` of `dir` without following a symlink.
pub fn open_dir_at(dir: BorrowedFd<'_>, name: &[u8]) -> io::Result<OwnedFd> {
    Ok(rfs::openat(dir, name, DIR_FLAGS, Mode::empty())?)
}

/// `lstat` of `name` in `dir`.
pub fn lstat_at(dir: BorrowedFd<'_>, name: &[u8]) -> io::Result<Stat> {
    Ok(rfs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW)?)
}

pub fn fstat(fd: BorrowedFd<'_>) -> io::Result<Stat> {
    Ok(rfs::fstat(fd)?)
}

/// The mirrored attributes of a stat result; `None` for a type opsync does not know.
pub fn meta_of(st: &Stat) -> Option<Meta> {
    let kind = Kind::from_mode(st.st_mode)?;
    let size = match kind {
        Kind::CharDev | Kind::BlockDev => st.st_rdev,
        Kind::File | Kind::Symlink => st.st_size as u64,
        _ => 0,
    };
    Some(Meta {
        kind,
        perm: st.st_mode & 0o7777,
        uid: st.st_uid,
        gid: st.st_gid,
        size,
        mtime: Time {
            sec: st.st_mtime,
            nsec: st.st_mtime_nsec as u32,
        },
        racy: false,
        protected: false,
        mount: false,
    })
}

/// Reads the names of the open directory `dir` (without `.` and `..`) into `arena`, recording
/// `(offset, length)` of each in `names` (`getdents64` straight into a buffer; the handle stays
/// the caller's, for the `*at` calls on the entries).
pub fn read_names_at(
    dir: BorrowedFd<'_>,
    arena: &mut Vec<u8>,
    names: &mut Vec<(u32, u16)>,
) -> io::Result<()> {
    let mut buf: Vec<std::mem::MaybeUninit<u8>> = Vec::with_capacity(32 << 10);
    buf.resize(32 << 10, std::mem::MaybeUninit::uninit());
    let mut it = rfs::RawDir::new(dir, &mut buf[..]);
    while let Some(entry) = it.next() {
        let entry = entry?;
        let name = entry.file_name().to_bytes();
        if name == b"." || name == b".." {
            continue;
        }
        names.push((arena.len() as u32, name.len() as u16));
        arena.extend_from_slice(name);
    }
    Ok(())
}

/// The names of the open directory `dir` with whether each is a directory (from the entry's
/// type; `lstat` only where the filesystem does not say).
pub fn read_dir_types_at(dir: BorrowedFd<'_>, out: &mut Vec<(Vec<u8>, bool)>) -> io::Result<()> {
    let mut buf: Vec<std::mem::MaybeUninit<u8>> = Vec::with_capacity(32 << 10);
    buf.resize(32 << 10, std::mem::MaybeUninit::uninit());
    let mut it = rfs::RawDir::new(dir, &mut buf[..]);
    while let Some(entry) = it.next() {
        let entry = entry?;
        let name = entry.file_name().to_bytes();
        if name == b"." || name == b".." {
            continue;
        }
        let is_dir = match entry.file_type() {
            FileType::Directory => true,
            FileType::Unknown => lstat_at(dir, name)
                .map(|st| st.st_mode & 0o170000 == 0o040000)
                .unwrap_or(false),
            _ => false,
        };
        out.push((name.to_vec(), is_dir));
    }
    Ok(())
}

/// An open directory being listed; [`DirHandle::fd`] serves the `*at` calls on its entries.
pub struct DirHandle(rfs::Dir);

impl DirHandle {
    pub fn new(fd: OwnedFd) -> io::Result<DirHandle> {
        Ok(DirHandle(rfs::Dir::new(fd)?))
    }

    pub fn fd(&self) -> io::Result<BorrowedFd<'_>> {
        Ok(self.0.fd()?)
    }

    /// Reads the names (without `.` and `..`) into `arena`, recording `(offset, length)` of
    /// each in `names`.
    pub fn read_names(
        &mut self,
        arena: &mut Vec<u8>,
        names: &mut Vec<(u32, u16)>,
    ) -> io::Result<()> {
        while let Some(entry) = self.0.read() {
            let entry = entry?;
            let name = entry.file_name().to_bytes();
            if name == b"." || name == b".." {
                continue;
            }
            names.push((arena.len() as u32, name.len() as u16));
            arena.extend_from_slice(name);
        }
        Ok(())
    }
}

/// False when the calling user may not read `name` in `dir` (`faccessat` with the effective
/// ids, not following a symlink). Errors other than a denial count as readable: the copy
/// reports them.
pub fn readable_at(dir: BorrowedFd<'_>, name: &[u8]) -> bool {
    let flags = AtFlags::EACCESS | AtFlags::SYMLINK_NOFOLLOW;
    !matches!(
        rfs::accessat(dir, name, rfs::Access::READ_OK, flags),
        Err(Errno::ACCESS | Errno::PERM)
    )
}

/// The content of the small regular file `name` in `dir` (a filter file), `None` when there is
/// none; refused above 1 MiB.
pub fn read_small_file_at(dir: BorrowedFd<'_>, name: &[u8]) -> io::Result<Option<Vec<u8>>> {
    const LIMIT: u64 = 1 << 20;
    let fd = match open_read_at(dir, name) {
        Ok(fd) => fd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let st = fstat(fd.as_fd())?;
    if st.st_mode & 0o170000 != 0o100000 {
        return Err(io::Error::other("not a regular file"));
    }
    if st.st_size as u64 > LIMIT {
        return Err(io::Error::other("larger than 1 MiB"));
    }
    let mut buf = vec![0u8; st.st_size as usize];
    let n = pread_full(fd.as_fd(), &mut buf, 0)?;
    buf.truncate(n);
    Ok(Some(buf))
}

/// The target of symlink `name` in `dir`, as bytes.
pub fn read_link_at(dir: BorrowedFd<'_>, name: &[u8]) -> io::Result<Vec<u8>> {
    Ok(rfs::readlinkat(dir, name, Vec::new())?.into_bytes())
}

/// Creates directory `name` with mode 0700 (its real mode is set after its contents).
pub fn mkdir_at(dir: BorrowedFd<'_>, name: &[u8]) -> io::Result<()> {
    Ok(rfs::mkdirat(dir, name, Mode::from_raw_mode(0o700))?)
}

/// Creates the directory at a user-given path (DST's root) with mode 0700.
pub fn mkdir_path(path: &Path) -> io::Result<()> {
    Ok(rfs::mkdirat(CWD, path, Mode::from_raw_mode(0o700))?)
}

/// Removes `name` from `dir` (an empty directory when `is_dir`).
pub fn unlink_at(dir: BorrowedFd<'_>, name: &[u8], is_dir: bool) -> io::Result<()> {
    let flags = if is_dir {
        AtFlags::REMOVEDIR
    } else {
        AtFlags::empty()
    };
    Ok(rfs::unlinkat(dir, name, flags)?)
}

/// Makes `new` in `new_dir` a hard link of `old` in `old_dir` (never following a symlink).
pub fn link_at(
    old_dir: BorrowedFd<'_>,
    old: &[u8],
    new_dir: BorrowedFd<'_>,
    new: &[u8],
) -> io::Result<()> {
    Ok(rfs::linkat(old_dir, old, new_dir, new, AtFlags::empty())?)
}

/// Renames `from` over `to`, both in `dir` (atomic replacement of a non-directory).
pub fn rename_at(dir: BorrowedFd<'_>, from: &[u8], to: &[u8]) -> io::Result<()> {
    Ok(rfs::renameat(dir, from, dir, to)?)
}

/// A temporary name next to the final one, rsync style: `.NAME.XXXXXX`, with NAME shortened so
/// the whole stays within 255 bytes. Held on the stack: no allocation per file.
pub struct TempName {
    buf: [u8; 255],
    len: usize,
}

impl TempName {
    pub fn new(name: &[u8]) -> TempName {
        const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
        let mut buf = [0u8; 255];
        let keep = name.len().min(255 - 8);
        buf[0] = b'.';
        buf[1..1 + keep].copy_from_slice(&name[..keep]);
        buf[1 + keep] = b'.';
        for b in &mut buf[2 + keep..8 + keep] {
            *b = ALNUM[fastrand::usize(..ALNUM.len())];
        }
        TempName { buf, len: keep + 8 }
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

/// Runs `create` with fresh temporary names until one does not exist yet.
pub fn with_temp_name<T>(
    name: &[u8],
    mut create: impl FnMut(&[u8]) -> io::Result<T>,
) -> io::Result<(T, TempName)> {
    loop {
        let tmp = TempName::new(name);
        match create(tmp.as_bytes()) {
            Ok(v) => return Ok((v, tmp)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Creates a new file `name` in `dir` for writing and reading back (mode 0600, must not exist).
#[cfg(test)]
pub fn create_file_at(dir: BorrowedFd<'_>, name: &[u8]) -> io::Result<OwnedFd> {
    create_file_mode_at(dir, name, 0o600)
}

/// [`create_file_at`] with the permission bits `perm` (before the umask).
pub fn create_file_mode_at(dir: BorrowedFd<'_>, name: &[u8], perm: u32) -> io::Result<OwnedFd> {
    let flags = OFlags::RDWR | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    Ok(rfs::openat(dir, name, flags, Mode::from_raw_mode(perm))?)
}

/// The process's umask, read from `/proc/self/status` (Linux 4.7 and later); `None` when it
/// cannot be read (then nothing may assume what a new file's mode is).
pub fn umask() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find_map(|l| l.strip_prefix("Umask:"))?;
    u32::from_str_radix(line.trim(), 8).ok()
}

/// True unless the directory open as `dir` certainly has no default ACL (which would decide
/// the modes of new files instead of the umask).
pub fn may_have_default_acl(dir: BorrowedFd<'_>) -> bool {
    !matches!(
        rfs::fgetxattr(dir, c"system.posix_acl_default", &mut [0u8; 0][..]),
        Err(Errno::NODATA | Errno::OPNOTSUPP)
    )
}

/// Opens regular file `name` in `dir` for reading, without following a symlink. `O_NONBLOCK`:
/// an entry replaced by a FIFO since the scan must not block the run waiting for a writer (the
/// caller checks the type with `fstat`); reads of regular files ignore the flag.
pub fn open_read_at(dir: BorrowedFd<'_>, name: &[u8]) -> io::Result<OwnedFd> {
    let flags =
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NOCTTY | OFlags::NONBLOCK;
    match rfs::openat(dir, name, flags | OFlags::NOATIME, Mode::empty()) {
        Err(Errno::PERM) => Ok(rfs::openat(dir, name, flags, Mode::empty())?),
        r => Ok(r?),
    }
}

/// Opens regular file `name` in `dir` for reading and writing in place (`--inplace`), without
/// following a symlink and without blocking on FIFOs (the caller checks the type).
pub fn open_update_at(dir: BorrowedFd<'_>, name: &[u8]) -> io::Result<OwnedFd> {
    let flags =
        OFlags::RDWR | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NOCTTY | OFlags::NONBLOCK;
    Ok(rfs::openat(dir, name, flags, Mode::empty())?)
}

/// Opens `name` in `dir` to change its attributes through the handle (regular files), without
/// following a symlink and without blocking on FIFOs.
pub fn open_attrs_at(dir: BorrowedFd<'_>, name: &[u8]) -> io::Result<OwnedFd> {
    let flags =
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NOCTTY | OFlags::NONBLOCK;
    Ok(rfs::openat(dir, name, flags, Mode::empty())?)
}

/// Creates symlink `name` in `dir` pointing to `target`.
pub fn symlink_at(target: &[u8], dir: BorrowedFd<'_>, name: &[u8]) -> io::Result<()> {
    Ok(rfs::symlinkat(target, dir, name)?)
}

/// Creates a device, FIFO or socket `name` in `dir`.
pub fn mknod_at(dir: BorrowedFd<'_>, name: &[u8], meta: &Meta) -> io::Result<()> {
    let ft = FileType::from_raw_mode(meta.kind.mode_bits());
    let rdev = if matches!(meta.kind, Kind::CharDev | Kind::BlockDev) {
        meta.rdev()
    } else {
        0
    };
    Ok(rfs::mknodat(
        dir,
        name,
        ft,
        Mode::from_raw_mode(0o600),
        rdev,
    )?)
}

fn timespec(t: Option<Time>) -> rfs::Timespec {
    match t {
        Some(t) => rfs::Timespec {
            tv_sec: t.sec,
            tv_nsec: i64::from(t.nsec),
        },
        None => rfs::Timespec {
            tv_sec: 0,
            tv_nsec: rfs::UTIME_OMIT,
        },
    }
}

fn timestamps(mtime: Time, atime: Option<Time>) -> Timestamps {
    Timestamps {
        last_access: timespec(atime),
        last_modification: timespec(Some(mtime)),
    }
}

/// The current time of the clock file timestamps come from (`CLOCK_REALTIME`; through the vDSO,
/// not a system call).
pub fn now() -> Time {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::Realtime);
    Time {
        sec: t.tv_sec,
        nsec: t.tv_nsec as u32,
    }
}

/// The access time of a stat result.
pub fn atime_of(st: &Stat) -> Time {
    Time {
        sec: st.st_atime,
        nsec: st.st_atime_nsec as u32,
    }
}

/// Sets only the access time of an open file (see [`stamp_at`]).
pub fn stamp_fd(fd: BorrowedFd<'_>, atime: Time) -> io::Result<()> {
    let times = Timestamps {
        last_access: timespec(Some(atime)),
        last_modification: timespec(None),
    };
    Ok(rfs::futimens(fd, &times)?)
}

/// Sets only the access time of `name` in `dir` (not following a symlink): the stamp that
/// records when a copy's content was last read and compared (see [`crate::racy`]).
pub fn stamp_at(dir: BorrowedFd<'_>, name: &[u8], atime: Time) -> io::Result<()> {
    let times = Timestamps {
        last_access: timespec(Some(atime)),
        last_modification: timespec(None),
    };
    Ok(rfs::utimensat(
        dir,
        name,
        &times,
        AtFlags::SYMLINK_NOFOLLOW,
    )?)
}

/// Which ownership to set: `None` leaves it.
#[derive(Debug, Clone, Copy, Default)]
pub struct Owner {
    pub uid: Option<u32>,
    pub gid: Option<u32>,
}

fn chown_ids(o: Owner) -> (Option<rfs::Uid>, Option<rfs::Gid>) {
    (o.uid.map(rfs::Uid::from_raw), o.gid.map(rfs::Gid::from_raw))
}

/// Sets owner, then mode (chown clears setuid bits), then mtime (and `atime` when given),
/// through an open handle.
pub fn set_attrs_fd(
    fd: BorrowedFd<'_>,
    meta: &Meta,
    owner: Owner,
    atime: Option<Time>,
) -> io::Result<()> {
    set_attrs_fd_with(fd, meta, owner, true, atime)
}

/// [`set_attrs_fd`], leaving the mode alone unless `chmod` (a new file created with it).
pub fn set_attrs_fd_with(
    fd: BorrowedFd<'_>,
    meta: &Meta,
    owner: Owner,
    chmod: bool,
    atime: Option<Time>,
) -> io::Result<()> {
    if owner.uid.is_some() || owner.gid.is_some() {
        let (u, g) = chown_ids(owner);
        chown_tolerant(rfs::fchown(fd, u, g), owner)?;
    }
    if chmod {
        rfs::fchmod(fd, Mode::from_raw_mode(meta.perm))?;
    }
    rfs::futimens(fd, &timestamps(meta.mtime, atime))?;
    Ok(())
}

/// Sets owner, then (when `perm` is given) mode, then mtime of `name` in `dir`, without
/// following a symlink for owner and mtime. `perm` is only given for an entry this run just
/// created under a temporary name (Linux cannot change a symlink's mode, and changing the mode
/// of an existing special file by name could follow a symlink swapped in meanwhile).
pub fn set_attrs_at(
    dir: BorrowedFd<'_>,
    name: &[u8],
    meta: &Meta,
    owner: Owner,
    perm: Option<u32>,
) -> io::Result<()> {
    if owner.uid.is_some() || owner.gid.is_some() {
        let (u, g) = chown_ids(owner);
        chown_tolerant(
            rfs::chownat(dir, name, u, g, AtFlags::SYMLINK_NOFOLLOW),
            owner,
        )?;
    }
    if let Some(perm) = perm {
        let mode = Mode::from_raw_mode(perm);
        match rfs::chmodat(dir, name, mode, AtFlags::SYMLINK_NOFOLLOW) {
            Err(Errno::OPNOTSUPP | Errno::NOSYS | Errno::INVAL) => {
                rfs::chmodat(dir, name, mode, AtFlags::empty())?
            }
            r => r?,
        }
    }
    rfs::utimensat(
        dir,
        name,
        &timestamps(meta.mtime, None),
        AtFlags::SYMLINK_NOFOLLOW,
    )?;
    Ok(())
}

/// As rsync without root: a group the user cannot set is not an error.
fn chown_tolerant(r: rustix::io::Result<()>, owner: Owner) -> io::Result<()> {
    match r {
        Err(Errno::PERM) if owner.uid.is_none() => Ok(()),
        r => Ok(r?),
    }
}

/// Bytes per `copy_file_range` call, so a cancel is seen (and progress reported) within one
/// chunk.
const CHUNK: usize = 64 << 20;

/// What a long copy does between its chunks: it stops when the run is cancelled, and tells
/// whoever wants to know how far into the file it got (`--progress` lines that move).
#[derive(Clone, Copy)]
pub struct Pace<'a> {
    cancel: &'a AtomicBool,
    report: Option<&'a (dyn Fn(u64) + Sync)>,
}

impl<'a> Pace<'a> {
    /// Only the cancel request is checked.
    pub fn new(cancel: &'a AtomicBool) -> Pace<'a> {
        Pace {
            cancel,
            report: None,
        }
    }

    /// The cancel request is checked and `report(bytes done)` called between chunks.
    pub fn reporting(cancel: &'a AtomicBool, report: &'a (dyn Fn(u64) + Sync)) -> Pace<'a> {
        Pace {
            cancel,
            report: Some(report),
        }
    }

    /// The same cancel request without the reports (for work that is not the file's copy).
    pub fn quiet(self) -> Pace<'a> {
        Pace::new(self.cancel)
    }

    /// `done` bytes of the file are copied; `Interrupted` when the run was cancelled.
    pub fn step(&self, done: u64) -> io::Result<()> {
        if self.cancel.load(Ordering::Relaxed) {
            return Err(io::Error::from(io::ErrorKind::Interrupted));
        }
        if let Some(r) = self.report {
            r(done);
        }
        Ok(())
    }
}

thread_local! {
    static BUF: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// How file data is copied in the kernel, learned once per run: `copy_file_range` (which can
/// reflink), or `sendfile` once the kernel said the two filesystems cannot `copy_file_range`
/// (EXDEV), or a user-space buffer once neither works.
#[derive(Debug, Default)]
pub struct CopyMethod(AtomicU8);

const BY_RANGE: u8 = 0;
const BY_SENDFILE: u8 = 1;
const BY_BUFFER: u8 = 2;

/// Copies `src` (from offset 0) into `dst`, whose file position must be 0: `len` bytes, or
/// fewer when the source ends first; one call for a small file, no end-of-file probe (a source
/// that grew shows in its size afterwards, which the caller compares). Returns the bytes
/// copied.
pub fn copy_data(
    src: BorrowedFd<'_>,
    dst: BorrowedFd<'_>,
    len: u64,
    method: &CopyMethod,
    pace: Pace<'_>,
) -> io::Result<u64> {
    let mut off = 0u64;
    while off < len && method.0.load(Ordering::Relaxed) == BY_RANGE {
        pace.step(off)?;
        let want = (len - off).min(CHUNK as u64) as usize;
        let mut off_out = off;
        match rfs::copy_file_range(src, Some(&mut off), dst, Some(&mut off_out), want) {
            Ok(0) => return Ok(off),
            Ok(_) => {}
            Err(Errno::XDEV) => method.0.store(BY_SENDFILE, Ordering::Relaxed),
            Err(Errno::NOSYS | Errno::OPNOTSUPP | Errno::INVAL | Errno::BADF) => {
                return copy_buffered(src, dst, off, len, pace);
            }
            Err(Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    if off > 0 && off < len {
        // `copy_file_range` copied a part, positionally: `sendfile` writes at the position.
        rfs::seek(dst, rfs::SeekFrom::Start(off))?;
    }
    while off < len && method.0.load(Ordering::Relaxed) == BY_SENDFILE {
        pace.step(off)?;
        let want = (len - off).min(CHUNK as u64) as usize;
        match rfs::sendfile(dst, src, Some(&mut off), want) {
            Ok(0) => return Ok(off),
            Ok(_) => {}
            Err(Errno::NOSYS | Errno::INVAL | Errno::OPNOTSUPP) => {
                method.0.store(BY_BUFFER, Ordering::Relaxed);
            }
            Err(Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    if off < len {
        return copy_buffered(src, dst, off, len, pace);
    }
    Ok(off)
}

/// The user-space copy from `off` up to `len` bytes (positional writes).
fn copy_buffered(
    src: BorrowedFd<'_>,
    dst: BorrowedFd<'_>,
    mut off: u64,
    len: u64,
    pace: Pace<'_>,
) -> io::Result<u64> {
    BUF.with(|b| {
        let mut buf = b.borrow_mut();
        if buf.is_empty() {
            buf.resize(256 << 10, 0);
        }
        while off < len {
            pace.step(off)?;
            let want = ((len - off) as usize).min(buf.len());
            let n = match rustix::io::pread(src, &mut buf[..want], off) {
                Ok(n) => n,
                Err(Errno::INTR) => continue,
                Err(e) => return Err(e.into()),
            };
            if n == 0 {
                break;
            }
            pwrite_all(dst, &buf[..n], off)?;
            off += n as u64;
        }
        Ok(off)
    })
}

thread_local! {
    static BUF2: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` with two of the thread's reused buffers of `len` bytes each (grown as needed: no
/// allocation per file). `f` must not re-enter the engine's parallel work on this thread.
pub fn with_buffers<R>(len: usize, f: impl FnOnce(&mut [u8], &mut [u8]) -> R) -> R {
    BUF.with(|x| {
        BUF2.with(|y| {
            let (mut x, mut y) = (x.borrow_mut(), y.borrow_mut());
            for buf in [&mut *x, &mut *y] {
                if buf.len() < len {
                    buf.resize(len, 0);
                }
            }
            f(&mut x[..len], &mut y[..len])
        })
    })
}

/// True when the files `a` and `b` hold the same bytes (read from offset 0 to their ends in
/// 1 MiB steps and compared).
pub fn same_content(a: BorrowedFd<'_>, b: BorrowedFd<'_>) -> io::Result<bool> {
    with_buffers(HASH_BUF, |x, y| {
        let mut off = 0u64;
        loop {
            let n = pread_full(a, x, off)?;
            let m = pread_full(b, y, off)?;
            if n != m || x[..n] != y[..m] {
                return Ok(false);
            }
            if n < HASH_BUF {
                return Ok(true);
            }
            off += n as u64;
        }
    })
}

/// Reads from `off` until `buf` is full or the end of the file; returns the bytes read.
pub fn pread_full(fd: BorrowedFd<'_>, buf: &mut [u8], off: u64) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match rustix::io::pread(fd, &mut buf[got..], off + got as u64) {
            Ok(0) => break,
            Ok(k) => got += k,
            Err(Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(got)
}

/// Writes all of `data` at `off`.
pub fn pwrite_all(fd: BorrowedFd<'_>, mut data: &[u8], mut off: u64) -> io::Result<()> {
    while !data.is_empty() {
        match rustix::io::pwrite(fd, data, off) {
            Ok(0) => return Err(io::Error::from(io::ErrorKind::WriteZero)),
            Ok(k) => {
                data = &data[k..];
                off += k as u64;
            }
            Err(Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Makes `dst` share `src`'s blocks (`FICLONE`, a reflink: nothing is written). `false` when
/// the filesystem cannot (ext4, tmpfs, across filesystems).
pub fn reflink(dst: BorrowedFd<'_>, src: BorrowedFd<'_>) -> io::Result<bool> {
    match rfs::ioctl_ficlone(dst, src) {
        Ok(()) => Ok(true),
        Err(
            Errno::OPNOTSUPP
            | Errno::XDEV
            | Errno::INVAL
            | Errno::NOTTY
            | Errno::NOSYS
            | Errno::PERM,
        ) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Hashes a whole file with BLAKE3.
#[cfg(test)]
pub fn hash_file(fd: &OwnedFd) -> io::Result<[u8; 32]> {
    hash_file_with(fd, HashKind::Blake3)
}

/// Which hash [`hash_file_with`] computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashKind {
    /// BLAKE3: cryptographic, for `verify` and delta checks.
    Blake3,
    /// XXH3-128 (in the first 16 bytes): several times faster on small files, for `--checksum`
    /// comparisons (rsync uses xxh128 for `-c` as well).
    Xxh3,
}

/// Hashes a whole file with `kind`.
pub fn hash_file_with(fd: &OwnedFd, kind: HashKind) -> io::Result<[u8; 32]> {
    match kind {
        HashKind::Blake3 => {
            let mut h = blake3::Hasher::new();
            read_chunks(fd, |c| {
                h.update(c);
            })?;
            Ok(*h.finalize().as_bytes())
        }
        HashKind::Xxh3 => {
            let mut h = xxhash_rust::xxh3::Xxh3::new();
            read_chunks(fd, |c| h.update(c))?;
            let mut out = [0u8; 32];
            out[..16].copy_from_slice(&h.digest128().to_le_bytes());
            Ok(out)
        }
    }
}

/// Reads the whole file from offset 0 in chunks of up to [`HASH_BUF`] bytes through the thread's
/// reused buffer, handing each chunk to `f`.
fn read_chunks(fd: &OwnedFd, mut f: impl FnMut(&[u8])) -> io::Result<()> {
    BUF.with(|b| {
        let mut buf = b.borrow_mut();
        if buf.len() < HASH_BUF {
            buf.resize(HASH_BUF, 0);
        }
        let mut off = 0u64;
        loop {
            match rustix::io::pread(fd, &mut buf[..HASH_BUF], off) {
                Ok(0) => return Ok(()),
                Ok(n) => {
                    f(&buf[..n]);
                    off += n as u64;
                }
                Err(Errno::INTR) => {}
                Err(e) => return Err(e.into()),
            }
        }
    })
}

/// Read size for hashing: one `pread` covers most files of a data folder.
const HASH_BUF: usize = 1 << 20;

/// Opens the directory at `path` (relative, `/`-separated; empty for `root` itself) below
/// `root`, following no symlink on the way.
pub fn open_dir_beneath(root: BorrowedFd<'_>, path: &[u8]) -> io::Result<OwnedFd> {
    let mut cur = rfs::openat(root, c".", DIR_FLAGS, Mode::empty())?;
    for part in path.split(|b| *b == b'/').filter(|p| !p.is_empty()) {
        cur = open_dir_at(cur.as_fd(), part)?;
    }
    Ok(cur)
}

pub use crate::listing::Xattrs;

/// The path `/proc/self/fd/DIR/NAME`: the `l*xattr` calls on it reach `name` in the open
/// directory `dir` without resolving any other path (the last component is not followed).
fn proc_path(dir: BorrowedFd<'_>, name: &[u8]) -> std::path::PathBuf {
    use std::os::fd::AsRawFd;
    use std::os::unix::ffi::OsStrExt;
    let mut p = format!("/proc/self/fd/{}/", dir.as_raw_fd()).into_bytes();
    p.extend_from_slice(name);
    std::path::PathBuf::from(std::ffi::OsStr::from_bytes(&p))
}

/// The extended attributes of `name` in `dir` whose names `keep` accepts (a symlink's own,
/// never its target's). Unsupported by the filesystem: none.
pub fn xattrs_at(
    dir: BorrowedFd<'_>,
    name: &[u8],
    keep: &dyn Fn(&[u8]) -> bool,
) -> io::Result<Xattrs> {
    let path = proc_path(dir, name);
    read_xattrs(
        &|| rfs::llistxattr_query(&path),
        &|buf| rfs::llistxattr(&path, buf),
        &|n| rfs::lgetxattr_query(&path, n),
        &|n, buf| rfs::lgetxattr(&path, n, buf),
        keep,
    )
}

/// Where [`set_xattrs`] writes: an open file or directory, or `name` in `dir` (symlinks and
/// special files, never following the last component).
#[derive(Clone, Copy)]
pub enum XattrTarget<'a> {
    Fd(BorrowedFd<'a>),
    At(BorrowedFd<'a>, &'a [u8]),
}

/// The extended attributes of `target` that `keep` accepts (see [`xattrs_at`]).
pub fn xattrs_of(target: XattrTarget<'_>, keep: &dyn Fn(&[u8]) -> bool) -> io::Result<Xattrs> {
    match target {
        XattrTarget::At(dir, name) => xattrs_at(dir, name, keep),
        XattrTarget::Fd(fd) => read_xattrs(
            &|| rfs::flistxattr_query(fd),
            &|buf| rfs::flistxattr(fd, buf),
            &|n| rfs::fgetxattr_query(fd, n),
            &|n, buf| rfs::fgetxattr(fd, n, buf),
            keep,
        ),
    }
}

type SizeQuery<'a> = &'a dyn Fn() -> rustix::io::Result<usize>;
type Fill<'a> = &'a dyn Fn(&mut [u8]) -> rustix::io::Result<usize>;
type NameSized<'a> = &'a dyn Fn(&std::ffi::OsStr) -> rustix::io::Result<usize>;
type NameFill<'a> = &'a dyn Fn(&std::ffi::OsStr, &mut [u8]) -> rustix::io::Result<usize>;

/// Reads a value whose size the kernel tells first (`query`), asking again when it grew
/// between the two calls (ERANGE). `Ok(None)`: ENODATA (the attribute went away meanwhile).
fn read_sized(query: SizeQuery<'_>, fill: Fill<'_>) -> rustix::io::Result<Option<Vec<u8>>> {
    loop {
        let n = match query() {
            Ok(n) => n,
            Err(Errno::NODATA) => return Ok(None),
            Err(e) => return Err(e),
        };
        let mut buf = vec![0u8; n];
        match fill(&mut buf[..]) {
            Ok(len) => {
                buf.truncate(len);
                return Ok(Some(buf));
            }
            Err(Errno::RANGE) => continue,
            Err(Errno::NODATA) => return Ok(None),
            Err(e) => return Err(e),
        }
    }
}

/// The attribute list through `list_query`/`list`, then each value that `keep` accepts,
/// sorted by name. Unsupported by the filesystem: none.
fn read_xattrs(
    list_query: SizeQuery<'_>,
    list: Fill<'_>,
    get_query: NameSized<'_>,
    get: NameFill<'_>,
    keep: &dyn Fn(&[u8]) -> bool,
) -> io::Result<Xattrs> {
    use std::os::unix::ffi::OsStrExt;
    let names = match read_sized(list_query, list) {
        Ok(Some(names)) => names,
        Ok(None) | Err(Errno::OPNOTSUPP | Errno::NOSYS) => return Ok(Vec::new()),
        Err(e) => return Err(e.into()),
    };
    let mut out = Vec::new();
    for attr in names
        .split(|b| *b == 0)
        .filter(|n| !n.is_empty() && keep(n))
    {
        let name = std::ffi::OsStr::from_bytes(attr);
        if let Some(v) = read_sized(&|| get_query(name), &|buf| get(name, buf))? {
            out.push((attr.to_vec(), v));
        }
    }
    out.sort();
    Ok(out)
}

/// Makes the extended attributes of `target` that `keep` accepts equal `want`, given that it
/// has `have` now: sets the new and changed ones, removes the ones `want` lacks.
pub fn set_xattrs(
    target: XattrTarget<'_>,
    have: &[(Vec<u8>, Vec<u8>)],
    want: &[(Vec<u8>, Vec<u8>)],
) -> io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let path = match target {
        XattrTarget::At(dir, name) => Some(proc_path(dir, name)),
        XattrTarget::Fd(_) => None,
    };
    for (n, v) in want {
        if have.iter().any(|(hn, hv)| hn == n && hv == v) {
            continue;
        }
        let name = std::ffi::OsStr::from_bytes(n);
        match (&path, target) {
            (Some(p), _) => rfs::lsetxattr(p, name, v, rfs::XattrFlags::empty())?,
            (None, XattrTarget::Fd(fd)) => rfs::fsetxattr(fd, name, v, rfs::XattrFlags::empty())?,
            (None, XattrTarget::At(..)) => {}
        }
    }
    for (n, _) in have {
        if want.iter().any(|(wn, _)| wn == n) {
            continue;
        }
        let name = std::ffi::OsStr::from_bytes(n);
        let r = match (&path, target) {
            (Some(p), _) => rfs::lremovexattr(p, name),
            (None, XattrTarget::Fd(fd)) => rfs::fremovexattr(fd, name),
            (None, XattrTarget::At(..)) => Ok(()),
        };
        match r {
            Ok(()) | Err(Errno::NODATA) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// The effective user id.
pub fn euid() -> u32 {
    rustix::process::geteuid().as_raw()
}

/// The groups the process can give files: its effective group and supplementary groups.
pub fn own_groups() -> Vec<u32> {
    let mut v: Vec<u32> = rustix::process::getgroups()
        .unwrap_or_default()
        .into_iter()
        .map(|g| g.as_raw())
        .collect();
    v.push(rustix::process::getegid().as_raw());
    v
}

/// Takes an exclusive `flock` on the open directory `dir` (the lock of one sync into it): false
/// when another process holds it. Held until every duplicate of the handle is closed.
pub fn try_lock(dir: BorrowedFd<'_>) -> io::Result<bool> {
    match rfs::flock(dir, rfs::FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(true),
        Err(Errno::WOULDBLOCK) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// The process holding a `flock` on the open file `fd`, as `/proc/locks` says (`None` when it
/// cannot be told).
pub fn lock_holder(fd: BorrowedFd<'_>) -> Option<u32> {
    let st = rfs::fstat(fd).ok()?;
    let dev = st.st_dev;
    let want = format!(
        "{:02x}:{:02x}:{}",
        rfs::major(dev),
        rfs::minor(dev),
        st.st_ino
    );
    let text = std::fs::read_to_string("/proc/locks").ok()?;
    text.lines().find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        let (kind, pid, id) = (f.get(1)?, f.get(4)?, f.get(5)?);
        (*kind == "FLOCK" && *id == want)
            .then(|| pid.parse().ok())
            .flatten()
    })
}

/// Writes an open file's (or directory's) data and metadata to the device (`--fsync`).
pub fn fsync(fd: BorrowedFd<'_>) -> io::Result<()> {
    Ok(rfs::fsync(fd)?)
}

/// The device of an open file or directory.
pub fn device_of(fd: BorrowedFd<'_>) -> io::Result<u64> {
    Ok(rfs::fstat(fd)?.st_dev)
}

/// Truncates an open file to `len` bytes.
pub fn truncate(fd: BorrowedFd<'_>, len: u64) -> io::Result<()> {
    Ok(rfs::ftruncate(fd, len)?)
}

/// Empties the file open as `fd` and moves its position back to 0, for [`copy_data`].
pub fn reset(fd: BorrowedFd<'_>) -> io::Result<()> {
    rfs::ftruncate(fd, 0)?;
    rfs::seek(fd, rfs::SeekFrom::Start(0))?;
    Ok(())
}
