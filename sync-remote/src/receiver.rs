//! The receiving end: scans DST, sends its listing, applies the sender's actions through
//! [`Target`] (which checks every name and writes nothing outside DST), checks the BLAKE3 hash
//! of every received file before its rename, answers signature requests for deltas, and sends
//! the run's report.

use std::io::Write;
use std::path::Path;

use sync_engine::remote::{self, Change, Kind, Side, Target};
use sync_engine::{FileError, Item, Observer, Options, Report};

use crate::session::{Out, RemoteError, flush, parse_fatal, send, send_fatal, stream};
use crate::wire::{self, Dec, Enc, FrameReader, tag};

/// The observer of the server's end: itemize lines and errors go to the client as frames.
pub(crate) struct Forward {
    pub out: Out,
    pub items: bool,
}

impl Observer for Forward {
    fn wants_items(&self) -> bool {
        self.items
    }
    fn item(&self, item: &Item<'_>) {
        let _ = send(&self.out, tag::ITEM, &wire::encode_item(item));
    }
    fn error(&self, err: &FileError) {
        let _ = send(&self.out, tag::ERROR, &wire::encode_error(err));
    }
}

/// Entries of the listing per frame.
const BATCH: usize = 2048;
/// A listing frame is sent once it holds this many bytes (extended attributes can be large).
const BATCH_BYTES: usize = 1 << 20;

/// What each listing entry carries besides (parent, meta, name, link): with `-H` its device and
/// inode when it has other hard links, with `-X`/`-A` its extended attributes.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Extras {
    pub inodes: bool,
    pub xattrs: bool,
}

impl Extras {
    pub(crate) fn of(opts: &Options) -> Extras {
        Extras {
            inodes: opts.hard_links,
            xattrs: opts.xattrs || opts.acls,
        }
    }
}

/// Listing entries are compressed at this zstd level: a no-change run of 100,000 files moved
/// 766,269 bytes at level 1, 807,421 at level 3, 5,351,426 uncompressed, in the same time.
const ENTRIES_LEVEL: i32 = 1;

/// One frame of listing entries, compressed.
fn send_entries(out: &Out, payload: &[u8]) -> Result<(), RemoteError> {
    let z = zstd::bulk::compress(payload, ENTRIES_LEVEL).map_err(stream)?;
    send(out, tag::ENTRIES_Z, &z)
}

/// Sends DST's listing: entries in pre-order as (parent, meta, name, link) and the `extras`.
fn send_listing(out: &Out, l: &remote::Listing, extras: Extras) -> Result<(), RemoteError> {
    let mut e = Enc::new();
    let mut n = 0;
    for i in 0..l.len() as u32 {
        let ent = l.entry(i);
        e.u32(ent.parent)
            .meta(&ent.meta)
            .bytes(l.name(i))
            .bytes(l.link(i));
        if extras.inodes {
            match l.inodes.get(&i) {
                Some(&(dev, ino)) => e.bool(true).u64(dev).u64(ino),
                None => e.bool(false),
            };
        }
        if extras.xattrs {
            e.xattrs(l.xattrs_of(i));
        }
        n += 1;
        if n == BATCH || e.0.len() >= BATCH_BYTES {
            send_entries(out, &e.take())?;
            n = 0;
        }
    }
    if n > 0 {
        send_entries(out, &e.take())?;
    }
    send(out, tag::ENTRIES_END, &[])
}

/// A file being received.
struct Incoming {
    path: Vec<u8>,
    meta: remote::Meta,
    new: bool,
    /// `None` after a failure: the rest of its data is read and dropped.
    file: Option<remote::NewFile>,
    hasher: blake3::Hasher,
    len: u64,
    /// A delta's base: the old file.
    old: Option<std::fs::File>,
    delta: bool,
    /// The extended attributes it gets (`-X`, `-A`).
    xattrs: Option<Pending>,
}

/// An `XATTRS` frame received: what the next action on `path` gives its entry.
struct Pending {
    path: Vec<u8>,
    want: remote::Xattrs,
    masked: Option<u32>,
}

impl Pending {
    fn given(p: &Option<Pending>) -> Option<remote::WantXattrs<'_>> {
        p.as_ref().map(|p| remote::WantXattrs {
            want: &p.want,
            masked: p.masked,
        })
    }
}

struct Apply<'a> {
    out: Out,
    dst: &'a Path,
    target: Option<Target>,
    dry_run: bool,
    obs: &'a dyn Observer,
    report: Report,
    cur: Option<Incoming>,
    /// Delta files that must come again whole.
    resend: Vec<Vec<u8>>,
    base: Vec<u8>,
    /// The last `XATTRS` frame, for the next action on its path.
    xattrs: Option<Pending>,
    /// `-X`/`-A`: which attributes are mirrored.
    policy: remote::XattrPolicy,
}

impl Apply<'_> {
    /// The extended attributes announced for the action on `path` (dropped when they were
    /// announced for another path).
    fn take_xattrs(&mut self, path: &[u8]) -> Option<Pending> {
        self.xattrs.take().filter(|p| p.path == path)
    }

    fn fail(&mut self, op: &'static str, path: &[u8], e: std::io::Error) {
        self.report.errors += 1;
        self.obs.error(&FileError {
            op,
            path: path.to_vec(),
            side: Side::Dest,
            source: e,
        });
    }

    /// The target, DST being created on the first action when it did not exist.
    fn target(&mut self) -> Result<&mut Target, RemoteError> {
        if self.target.is_none() {
            let mut t = Target::create(self.dst)?;
            t.set_xattr_policy(self.policy);
            self.target = Some(t);
        }
        self.target
            .as_mut()
            .ok_or_else(|| stream(std::io::ErrorKind::NotFound.into()))
    }

    fn frame(&mut self, t: u8, p: &[u8]) -> Result<(), RemoteError> {
        if self.dry_run {
            return Err(RemoteError::Stream {
                detail: format!("action frame {t} in a dry run"),
            });
        }
        let m = stream;
        match t {
            tag::DELETE => {
                let mut d = Dec::new(p, "delete");
                let path = d.bytes().map_err(m)?;
                let is_dir = d.bool().map_err(m)?;
                match self.target()?.delete(path, is_dir) {
                    Ok(()) => self.report.deleted += 1,
                    Err(e) if e.raw_os_error() == Some(39) && is_dir => {
                        // ENOTEMPTY: it still holds excluded entries, as in rsync.
                        self.obs.warning(&sync_engine::Warning::NotEmpty { path });
                    }
                    Err(e) => self.fail("delete", path, e),
                }
            }
            tag::MKDIR => {
                let path = Dec::new(p, "mkdir").bytes().map_err(m)?;
                match self.target()?.mkdir(path) {
                    Ok(()) => self.report.created += 1,
                    Err(e) => self.fail("create directory", path, e),
                }
            }
            tag::FILE => {
                let mut d = Dec::new(p, "file");
                let path = d.bytes().map_err(m)?.to_vec();
                let meta = d.meta().map_err(m)?;
                let new = d.bool().map_err(m)?;
                if meta.kind != Kind::File {
                    return Err(stream(wire::malformed("file")));
                }
                let xattrs = self.take_xattrs(&path);
                let file = match self.target()?.begin_file(&path, meta.perm) {
                    Ok(f) => Some(f),
                    Err(e) => {
                        self.fail("copy", &path, e);
                        None
                    }
                };
                self.cur = Some(Incoming {
                    path,
                    meta,
                    new,
                    file,
                    hasher: blake3::Hasher::new(),
                    len: 0,
                    old: None,
                    delta: false,
                    xattrs,
                });
            }
            tag::DELTA_FILE => {
                let mut d = Dec::new(p, "delta file");
                let path = d.bytes().map_err(m)?.to_vec();
                let meta = d.meta().map_err(m)?;
                if meta.kind != Kind::File {
                    return Err(stream(wire::malformed("delta file")));
                }
                let xattrs = self.take_xattrs(&path);
                let t = self.target()?;
                let old = t.open_old(&path).ok().flatten();
                let file = match old.as_ref().map(|_| t.begin_file(&path, meta.perm)) {
                    Some(Ok(f)) => Some(f),
                    Some(Err(e)) => {
                        self.fail("copy", &path, e);
                        None
                    }
                    None => {
                        // The old version is gone: the file comes again whole.
                        self.resend.push(path.clone());
                        None
                    }
                };
                self.cur = Some(Incoming {
                    path,
                    meta,
                    new: false,
                    file,
                    hasher: blake3::Hasher::new(),
                    len: 0,
                    old,
                    delta: true,
                    xattrs,
                });
            }
            tag::DELTA => {
                let Some(cur) = self.cur.as_mut().filter(|c| c.delta) else {
                    return Err(stream(wire::malformed("delta")));
                };
                if let (Some(f), Some(old)) = (cur.file.as_mut(), cur.old.as_ref()) {
                    match crate::delta::apply_window(
                        p,
                        old,
                        &mut self.base,
                        &mut f.file,
                        &mut cur.hasher,
                    ) {
                        Ok(n) => cur.len += n,
                        Err(_) => {
                            // A delta that does not apply: the file comes again whole.
                            cur.file = None;
                            self.resend.push(cur.path.clone());
                        }
                    }
                }
            }
            tag::DELTAS_END => {
                let mut e = Enc::new();
                e.u32(self.resend.len() as u32);
                for r in &self.resend {
                    e.bytes(r);
                }
                self.resend.clear();
                send(&self.out, tag::RESEND, &e.take())?;
                flush(&self.out)?;
            }
            tag::DATA => {
                let Some(cur) = self.cur.as_mut() else {
                    return Err(stream(wire::malformed("data")));
                };
                cur.hasher.update(p);
                cur.len += p.len() as u64;
                if let Some(f) = cur.file.as_mut() {
                    if let Err(e) = f.file.write_all(p) {
                        let path = cur.path.clone();
                        cur.file = None;
                        self.fail("copy", &path, e);
                    }
                }
            }
            tag::FILE_ABORT => {
                self.cur = None;
            }
            tag::FILE_END => {
                let Some(cur) = self.cur.take() else {
                    return Err(stream(wire::malformed("file end")));
                };
                let want = Dec::new(p, "file end").rest();
                let Some(f) = cur.file else { return Ok(()) };
                if cur.delta && cur.hasher.finalize().as_bytes().as_slice() != want {
                    // BLAKE3 says the rebuilt file is not the sender's: drop it, ask again.
                    self.resend.push(cur.path);
                    return Ok(());
                }
                if cur.hasher.finalize().as_bytes().as_slice() != want {
                    self.fail(
                        "check",
                        &cur.path,
                        std::io::Error::other("BLAKE3 of the received file differs from the sender's: old version kept"),
                    );
                    return Ok(());
                }
                let mut meta = cur.meta;
                meta.size = cur.len;
                let xattrs = Pending::given(&cur.xattrs);
                match self.target()?.commit_with(f, &meta, xattrs) {
                    Ok(()) => {
                        self.report.files_copied += 1;
                        self.report.bytes_copied += cur.len;
                        self.report.bytes_written += cur.len;
                        self.report.created += u64::from(cur.new);
                    }
                    Err(e) => self.fail("copy", &cur.path, e),
                }
            }
            tag::MAKE => {
                let mut d = Dec::new(p, "make");
                let path = d.bytes().map_err(m)?;
                let meta = d.meta().map_err(m)?;
                let link = d.bytes().map_err(m)?;
                let new = d.bool().map_err(m)?;
                let xattrs = self.take_xattrs(path);
                let given = Pending::given(&xattrs);
                match self.target()?.make(path, &meta, link, given) {
                    Ok(()) => self.report.created += u64::from(new),
                    Err(e) => self.fail("create", path, e),
                }
            }
            tag::ATTRS => {
                let mut d = Dec::new(p, "attrs");
                let path = d.bytes().map_err(m)?;
                let meta = d.meta().map_err(m)?;
                let mut change = Change::NONE;
                if d.bool().map_err(m)? {
                    change |= Change::OWNER;
                }
                if d.bool().map_err(m)? {
                    change |= Change::GROUP;
                }
                let xattrs = self.take_xattrs(path);
                let given = Pending::given(&xattrs);
                match self.target()?.set_attrs(path, &meta, change, given) {
                    Ok(()) => self.report.attrs_fixed += 1,
                    Err(e) => self.fail("set attributes of", path, e),
                }
            }
            tag::DIR_ATTRS => {
                let mut d = Dec::new(p, "dir attrs");
                let path = d.bytes().map_err(m)?;
                let meta = d.meta().map_err(m)?;
                let counted = d.bool().map_err(m)?;
                if meta.kind != Kind::Dir {
                    return Err(stream(wire::malformed("dir attrs")));
                }
                let xattrs = self.take_xattrs(path);
                let given = Pending::given(&xattrs);
                match self.target()?.dir_attrs(path, &meta, given) {
                    Ok(()) => self.report.attrs_fixed += u64::from(counted),
                    Err(e) => self.fail("set attributes of", path, e),
                }
            }
            tag::XATTRS => {
                let mut d = Dec::new(p, "xattrs");
                let path = d.bytes().map_err(m)?.to_vec();
                let masked = d.bool().map_err(m)?;
                let perm = d.u32().map_err(m)? & 0o7777;
                let want = d.xattrs().map_err(m)?;
                if !self.policy.any() {
                    return Err(stream(wire::malformed("xattrs")));
                }
                // Only names this end mirrors: a hostile sender cannot set `system.*` ones.
                let want = want
                    .into_iter()
                    .filter(|(n, _)| self.policy.keeps(n))
                    .collect();
                self.xattrs = Some(Pending {
                    path,
                    want,
                    masked: masked.then_some(perm),
                });
            }
            tag::LINK => {
                let mut d = Dec::new(p, "link");
                let leader = d.bytes().map_err(m)?;
                let path = d.bytes().map_err(m)?;
                let new = d.bool().map_err(m)?;
                match self.target()?.link(leader, path) {
                    Ok(()) => self.report.created += u64::from(new),
                    Err(e) => self.fail("hard link", path, e),
                }
            }
            _ => {
                return Err(RemoteError::Stream {
                    detail: format!("unexpected frame tag {t}"),
                });
            }
        }
        Ok(())
    }
}

/// Runs the receiving end for DST `dst`; returns the run's report (also sent to the sender).
pub(crate) fn run(
    dst: &Path,
    mut reader: FrameReader,
    out: Out,
    opts: &Options,
    obs: &dyn Observer,
) -> Result<Report, RemoteError> {
    let setup = (|| -> Result<(Option<Target>, remote::Tree, u64), RemoteError> {
        let Some((fd, meta)) = remote::open_dest(dst, opts)? else {
            return Ok((None, remote::Tree::default(), 0));
        };
        if !opts.dry_run {
            remote::lock_dest(&fd, dst)?;
        }
        let scan_fd = fd.try_clone().map_err(|e| sync_engine::Error::Io {
            op: "open destination",
            path: dst.to_owned(),
            source: e,
        })?;
        let tree = remote::scan_dest(scan_fd, meta, dst, opts)?;
        // A scan with no rule, no other filesystem and no error listed every entry below the
        // root: the count is the listing's, with no second walk of DST.
        let total = match opts.max_delete {
            Some(sync_engine::MaxDelete::Percent(_))
                if opts.filters.is_empty()
                    && opts.excludes.is_empty()
                    && opts.one_file_system == 0
                    && tree.errors.is_empty() =>
            {
                tree.listing.len().saturating_sub(1) as u64
            }
            Some(sync_engine::MaxDelete::Percent(_)) => {
                remote::count_entries(std::os::fd::AsFd::as_fd(&fd))
            }
            _ => 0,
        };
        let mut target = Target::new(fd);
        target.set_xattr_policy(remote::xattr_policy(opts, remote::euid() == 0));
        Ok((Some(target), tree, total))
    })();
    let (target, tree, total) = match setup {
        Ok(v) => v,
        Err(e) => {
            send_fatal(&out, &e);
            return Err(e);
        }
    };
    for e in &tree.errors {
        obs.error(e);
    }
    let is_root = remote::euid() == 0;
    let groups = if is_root {
        Vec::new()
    } else {
        remote::own_groups()
    };
    let mut info = Enc::new();
    info.bool(is_root)
        .bool(target.is_some())
        .u64(total)
        .u32(groups.len() as u32);
    for g in &groups {
        info.u32(*g);
    }
    info.u64(tree.errors.len() as u64);
    send(&out, tag::DST_INFO, &info.take())?;
    send_listing(&out, &tree.listing, Extras::of(opts))?;
    flush(&out)?;
    drop(tree);

    let mut a = Apply {
        out: out.clone(),
        resend: Vec::new(),
        base: Vec::new(),
        dst,
        target,
        dry_run: opts.dry_run,
        obs,
        report: Report::default(),
        cur: None,
        xattrs: None,
        policy: remote::xattr_policy(opts, remote::euid() == 0),
    };
    let mut summary = None;
    let mut signers = Vec::new();
    loop {
        let (t, p) = reader.frame().map_err(stream)?;
        match t {
            tag::ITEM => {
                let it = wire::decode_item(p).map_err(stream)?;
                obs.item(&it.item());
            }
            tag::ERROR => {
                let e = wire::decode_error(p).map_err(stream)?;
                obs.error(&e);
            }
            tag::FATAL => return Err(parse_fatal(p)),
            tag::SUMMARY => summary = Some(wire::decode_report(p).map_err(stream)?),
            tag::END => break,
            tag::HASH_REQUEST => {
                let mut d = Dec::new(p, "hash request");
                let n = d.u32().map_err(stream)?;
                let mut paths = Vec::with_capacity(n.min(1 << 16) as usize);
                for _ in 0..n {
                    let path = d.bytes().map_err(stream)?;
                    remote::split_path(path).map_err(stream)?;
                    paths.push(path.to_vec());
                }
                let hashes = match a.target.as_ref() {
                    Some(t) => remote::hash_files(t.root(), &paths),
                    None => vec![None; paths.len()],
                };
                let mut e = Enc::new();
                e.u32(hashes.len() as u32);
                for h in &hashes {
                    e.bool(h.is_some())
                        .bytes(h.as_ref().map_or(&[][..], |h| &h[..]));
                }
                send(&out, tag::HASHES, &e.take())?;
                flush(&out)?;
            }
            tag::SIG_REQUEST => {
                let reqs = decode_requests(p).map_err(stream)?;
                let target = match a.target.as_ref() {
                    Some(t) => Some(t.try_clone().map_err(stream)?),
                    None => None,
                };
                let out = out.clone();
                signers.push(std::thread::spawn(move || {
                    let mut t = target;
                    crate::delta::sign_all(
                        reqs,
                        |path| match t.as_mut() {
                            Some(t) => t.open_old(path),
                            None => Ok(None),
                        },
                        &out,
                    )
                }));
            }
            _ => a.frame(t, p)?,
        }
    }
    for s in signers {
        s.join().map_err(|_| RemoteError::Stream {
            detail: "the signature thread panicked".into(),
        })??;
    }
    let mut r = summary.ok_or_else(|| RemoteError::Stream {
        detail: "no summary before the end".into(),
    })?;
    let mine = &a.report;
    r.files_copied += mine.files_copied;
    r.bytes_copied += mine.bytes_copied;
    r.bytes_written += mine.bytes_written;
    r.created += mine.created;
    r.deleted += mine.deleted;
    r.attrs_fixed += mine.attrs_fixed;
    r.errors += mine.errors;
    r.verified += mine.verified;
    send(&out, tag::REPORT, &wire::encode_report(&r))?;
    flush(&out)?;
    Ok(r)
}

/// The paths of a signature request, with their ids.
fn decode_requests(p: &[u8]) -> std::io::Result<Vec<(u32, Vec<u8>)>> {
    let mut d = Dec::new(p, "signature request");
    let n = d.u32()?;
    let mut v = Vec::with_capacity(n.min(1 << 16) as usize);
    for _ in 0..n {
        let id = d.u32()?;
        v.push((id, d.bytes()?.to_vec()));
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::wire::{Counter, FrameWriter};

    /// A writer whose bytes the test reads afterwards.
    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Shared {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    pub(super) fn meta(kind: Kind, size: u64) -> remote::Meta {
        remote::Meta {
            kind,
            perm: 0o644,
            uid: 0,
            gid: 0,
            size,
            mtime: remote::Time {
                sec: 1_000_000,
                nsec: 0,
            },
            racy: false,
            protected: false,
            mount: false,
        }
    }

    pub(super) type Frames = Vec<(u8, Vec<u8>)>;

    /// Runs the receiver on DST `dst` with the sender's frames `frames`; returns the frames
    /// it sent back and its result.
    fn receive(dst: &Path, frames: &[(u8, Vec<u8>)]) -> (Frames, Result<Report, RemoteError>) {
        receive_with(dst, frames, &Options::default())
    }

    /// [`receive`] with the run's options `opts`.
    pub(super) fn receive_with(
        dst: &Path,
        frames: &[(u8, Vec<u8>)],
        opts: &Options,
    ) -> (Frames, Result<Report, RemoteError>) {
        let mut input = Vec::new();
        for (t, p) in frames {
            input.push(*t);
            input.extend_from_slice(&(p.len() as u32).to_le_bytes());
            input.extend_from_slice(p);
        }
        let back = Shared::default();
        let out: Out = Arc::new(Mutex::new(FrameWriter::new(
            Box::new(back.clone()),
            Counter::default(),
        )));
        let reader = FrameReader::new(Box::new(Cursor::new(input)), Counter::default());
        let r = run(dst, reader, out.clone(), opts, &sync_engine::NoObserver);
        let _ = out.lock().unwrap().flush();
        let bytes = back.0.lock().unwrap().clone();
        let mut r2 = FrameReader::new(Box::new(Cursor::new(bytes)), Counter::default());
        let mut got = Vec::new();
        while let Ok((t, p)) = r2.frame() {
            got.push((t, p.to_vec()));
        }
        (got, r)
    }

    pub(super) fn summary() -> (u8, Vec<u8>) {
        (tag::SUMMARY, wire::encode_report(&Report::default()))
    }

    #[test]
    fn names_that_leave_dst_are_refused_and_nothing_is_written_outside() {
        let tmp = tempfile::tempdir().unwrap();
        let dst = tmp.path().join("dst");
        std::fs::create_dir(&dst).unwrap();
        std::os::unix::fs::symlink(tmp.path(), dst.join("up")).unwrap();
        let mut frames = Vec::new();
        for bad in [&b"../evil"[..], b"/tmp/evil", b"up/evil", b"a/../../evil"] {
            frames.push((
                tag::FILE,
                Enc::new()
                    .bytes(bad)
                    .meta(&meta(Kind::File, 1))
                    .bool(true)
                    .take(),
            ));
            frames.push((tag::DATA, b"x".to_vec()));
            frames.push((tag::FILE_END, blake3::hash(b"x").as_bytes().to_vec()));
            frames.push((tag::MKDIR, Enc::new().bytes(bad).take()));
        }
        frames.push(summary());
        frames.push((tag::END, Vec::new()));
        let (_, r) = receive(&dst, &frames);
        let r = r.unwrap();
        assert_eq!(r.errors, 8, "{r:?}");
        assert_eq!(r.files_copied, 0);
        assert!(!tmp.path().join("evil").exists());
        let names: Vec<_> = std::fs::read_dir(&dst)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("up")]);
    }

    #[test]
    fn a_file_whose_hash_differs_keeps_the_old_version() {
        let tmp = tempfile::tempdir().unwrap();
        let dst = tmp.path().join("dst");
        std::fs::create_dir(&dst).unwrap();
        std::fs::write(dst.join("f"), b"old").unwrap();
        let frames = vec![
            (
                tag::FILE,
                Enc::new()
                    .bytes(b"f")
                    .meta(&meta(Kind::File, 3))
                    .bool(false)
                    .take(),
            ),
            (tag::DATA, b"new".to_vec()),
            (tag::FILE_END, blake3::hash(b"other").as_bytes().to_vec()),
            summary(),
            (tag::END, Vec::new()),
        ];
        let (_, r) = receive(&dst, &frames);
        assert_eq!(r.unwrap().errors, 1);
        assert_eq!(std::fs::read(dst.join("f")).unwrap(), b"old");
        assert_eq!(
            std::fs::read_dir(&dst).unwrap().count(),
            1,
            "temporary file left"
        );
    }

    #[test]
    fn a_delta_that_does_not_rebuild_the_file_is_asked_for_again_whole() {
        let tmp = tempfile::tempdir().unwrap();
        let dst = tmp.path().join("dst");
        std::fs::create_dir(&dst).unwrap();
        let old = vec![1u8; 100_000];
        std::fs::write(dst.join("f"), &old).unwrap();
        // A delta made against another base: it applies, but to the wrong result.
        let other = vec![2u8; 100_000];
        let sig = fast_rsync::Signature::calculate(
            &other,
            fast_rsync::SignatureOptions {
                block_size: 4096,
                crypto_hash_size: 8,
            },
        );
        let new = vec![2u8; 100_000];
        let mut delta = Vec::new();
        fast_rsync::diff(&sig.index(), &new, &mut delta).unwrap();
        let mut d = Enc::new();
        d.u64(0).u64(100_000).u32(100_000);
        d.0.extend_from_slice(&delta);
        let frames = vec![
            (
                tag::DELTA_FILE,
                Enc::new()
                    .bytes(b"f")
                    .meta(&meta(Kind::File, 100_000))
                    .take(),
            ),
            (tag::DELTA, d.take()),
            (tag::FILE_END, blake3::hash(&new).as_bytes().to_vec()),
            (tag::DELTAS_END, Vec::new()),
            summary(),
            (tag::END, Vec::new()),
        ];
        let (back, r) = receive(&dst, &frames);
        assert_eq!(r.unwrap().errors, 0);
        let resend = back
            .iter()
            .find(|(t, _)| *t == tag::RESEND)
            .expect("a resend list");
        let mut dec = Dec::new(&resend.1, "t");
        assert_eq!(dec.u32().unwrap(), 1);
        assert_eq!(dec.bytes().unwrap(), b"f");
        assert_eq!(
            std::fs::read(dst.join("f")).unwrap(),
            old,
            "old version kept"
        );
        assert_eq!(
            std::fs::read_dir(&dst).unwrap().count(),
            1,
            "temporary file left"
        );
    }
}

#[cfg(test)]
mod link_and_xattr_tests {
    use std::os::unix::fs::MetadataExt;

    use super::tests::*;
    use super::*;

    fn link(leader: &[u8], path: &[u8]) -> (u8, Vec<u8>) {
        (
            tag::LINK,
            Enc::new().bytes(leader).bytes(path).bool(true).take(),
        )
    }

    #[test]
    fn link_frames_naming_paths_outside_dst_or_through_a_symlink_are_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let dst = tmp.path().join("dst");
        std::fs::create_dir_all(dst.join("d")).unwrap();
        std::fs::write(dst.join("f"), b"inside").unwrap();
        std::fs::write(tmp.path().join("secret"), b"outside").unwrap();
        std::os::unix::fs::symlink(tmp.path(), dst.join("up")).unwrap();
        let mut frames = vec![
            // A link to a file outside DST, through a symlink or `..`, or from a root path.
            link(b"up/secret", b"stolen"),
            link(b"../secret", b"stolen"),
            link(b"/etc/passwd", b"stolen"),
            link(b"d/../../secret", b"stolen"),
            // A link made outside DST.
            link(b"f", b"up/evil"),
            link(b"f", b"../evil"),
            link(b"f", b"d//evil"),
            // A good one.
            link(b"f", b"d/g"),
        ];
        frames.push(summary());
        frames.push((tag::END, Vec::new()));
        let mut opts = Options::default();
        opts.hard_links = true;
        let (_, r) = receive_with(&dst, &frames, &opts);
        let r = r.unwrap();
        assert_eq!(r.errors, 7, "{r:?}");
        assert_eq!(r.created, 1, "{r:?}");
        assert!(!tmp.path().join("evil").exists());
        assert!(!dst.join("stolen").exists());
        let (f, g) = (
            std::fs::metadata(dst.join("f")).unwrap(),
            std::fs::metadata(dst.join("d/g")).unwrap(),
        );
        assert_eq!((f.ino(), f.nlink()), (g.ino(), 2));
        assert_eq!(
            std::fs::metadata(tmp.path().join("secret"))
                .unwrap()
                .nlink(),
            1
        );
        let mut names: Vec<_> = std::fs::read_dir(&dst)
            .unwrap()
            .chain(std::fs::read_dir(dst.join("d")).unwrap())
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["d", "f", "g", "up"], "temporary names left");
    }

    #[test]
    fn announced_xattrs_are_set_before_the_rename_and_system_names_are_not() {
        let tmp = tempfile::tempdir().unwrap();
        let dst = tmp.path().join("dst");
        std::fs::create_dir(&dst).unwrap();
        let want = vec![
            (b"system.evil".to_vec(), b"x".to_vec()),
            (b"user.k".to_vec(), b"v".to_vec()),
        ];
        let frames = vec![
            (
                tag::XATTRS,
                Enc::new()
                    .bytes(b"f")
                    .bool(false)
                    .u32(0)
                    .xattrs(&want)
                    .take(),
            ),
            (
                tag::FILE,
                Enc::new()
                    .bytes(b"f")
                    .meta(&meta(Kind::File, 1))
                    .bool(true)
                    .take(),
            ),
            (tag::DATA, b"x".to_vec()),
            (tag::FILE_END, blake3::hash(b"x").as_bytes().to_vec()),
            summary(),
            (tag::END, Vec::new()),
        ];
        let mut opts = Options::default();
        opts.xattrs = true;
        let (_, r) = receive_with(&dst, &frames, &opts);
        let r = r.unwrap();
        assert_eq!(r.errors, 0, "{r:?}");
        let f = std::fs::File::open(dst.join("f")).unwrap();
        let mut buf = [0u8; 16];
        let n = rustix::fs::fgetxattr(&f, "user.k", &mut buf[..]).unwrap();
        assert_eq!(&buf[..n], b"v");
        assert!(rustix::fs::fgetxattr(&f, "system.evil", &mut buf[..]).is_err());
    }
}
