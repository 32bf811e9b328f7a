//! The sending end: receives DST's listing, plans with sync-engine's pure planner (the same
//! as a local run), reports the itemize lines in rsync's order, streams the actions (file
//! contents with their BLAKE3 hash), the directories' attributes after everything else, and
//! its counts; then waits for the receiver's report.

use std::collections::HashMap;
use std::io::{self, Read};
use std::path::Path;
use std::sync::mpsc;

use sync_engine::itemize::{Update, field};
use sync_engine::remote::{
    self, Action, Change, Idx, Kind, LinkGroup, Listing, NONE, Op, Plan, PlanOptions, Side,
    XattrPolicy,
};
use sync_engine::{Error, FileError, Item, MaxDelete, Observer, Options, Report};

use crate::delta;
use crate::receiver::Extras;
use crate::session::{Out, RemoteError, flush, parse_fatal, send, send_fatal, stream};
use crate::wire::{self, DATA_CHUNK, Dec, Enc, FrameReader, tag};

/// What the receiver said about DST.
struct DstInfo {
    is_root: bool,
    exists: bool,
    /// Entries below DST (counted for `--max-delete=P%`).
    total: u64,
    groups: Vec<u32>,
    scan_errors: u64,
}

fn read_dst(reader: &mut FrameReader, extras: Extras) -> Result<(DstInfo, Listing), RemoteError> {
    let (t, p) = reader.frame().map_err(stream)?;
    match t {
        tag::DST_INFO => {}
        tag::FATAL => return Err(parse_fatal(p)),
        _ => {
            return Err(RemoteError::Stream {
                detail: format!("expected DST's description, got frame tag {t}"),
            });
        }
    }
    let mut d = Dec::new(p, "dst info");
    let is_root = d.bool().map_err(stream)?;
    let exists = d.bool().map_err(stream)?;
    let total = d.u64().map_err(stream)?;
    let mut groups = Vec::new();
    for _ in 0..d.u32().map_err(stream)? {
        groups.push(d.u32().map_err(stream)?);
    }
    let scan_errors = d.u64().map_err(stream)?;
    let info = DstInfo {
        is_root,
        exists,
        total,
        groups,
        scan_errors,
    };
    let mut listing = Listing::default();
    // Directories whose subtree is still open, innermost last.
    let mut open: Vec<Idx> = Vec::new();
    loop {
        let (t, p) = reader.frame().map_err(stream)?;
        let unpacked: Vec<u8>;
        let p = match t {
            tag::ENTRIES => p,
            tag::ENTRIES_Z => {
                unpacked = zstd::bulk::decompress(p, wire::MAX_FRAME)
                    .map_err(|_| stream(wire::malformed("compressed entries")))?;
                &unpacked[..]
            }
            tag::ENTRIES_END => break,
            tag::FATAL => return Err(parse_fatal(p)),
            _ => {
                return Err(RemoteError::Stream {
                    detail: format!("expected DST's listing, got frame tag {t}"),
                });
            }
        };
        let mut d = Dec::new(p, "entries");
        while !d.rest_is_empty() {
            let parent = d.u32().map_err(stream)?;
            let meta = d.meta().map_err(stream)?;
            let name = d.bytes().map_err(stream)?;
            let link = d.bytes().map_err(stream)?;
            let inode = match extras.inodes && d.bool().map_err(stream)? {
                true => Some((d.u64().map_err(stream)?, d.u64().map_err(stream)?)),
                false => None,
            };
            let xattrs = if extras.xattrs {
                d.xattrs().map_err(stream)?
            } else {
                Vec::new()
            };
            let i = if listing.is_empty() {
                if parent != NONE || meta.kind != Kind::Dir {
                    return Err(stream(wire::malformed("entries")));
                }
                listing = Listing::with_root_capacity(meta, 0, 0);
                open.push(0);
                0
            } else {
                while open.last().is_some_and(|&o| o != parent) {
                    if let Some(o) = open.pop() {
                        listing.close(o);
                    }
                }
                if open.is_empty() || name.is_empty() || name.len() > 255 || link.len() > 4096 {
                    return Err(stream(wire::malformed("entries")));
                }
                let link = (meta.kind == Kind::Symlink).then_some(link);
                let i = listing.push(name, link, meta, parent);
                if meta.kind == Kind::Dir {
                    open.push(i);
                }
                i
            };
            if let Some(ino) = inode.filter(|_| meta.kind.is_linkable()) {
                listing.inodes.insert(i, ino);
            }
            if !xattrs.is_empty() {
                listing.xattrs.insert(i, xattrs);
            }
        }
    }
    while let Some(o) = open.pop() {
        listing.close(o);
    }
    Ok((info, listing))
}

/// Reports the itemize lines of a plan in rsync's order (by output slot); `push_side`: this
/// end is the client of a push. With `unchanged` (rsync's `-ii`, planned with
/// `itemize_unchanged`) the entries that need nothing have their lines too. The lines of the
/// `-H` link phase (`links`) come last, as in a local run.
fn items(
    plan: &Plan,
    links: &[LinkGroup],
    src: &Listing,
    dst: &Listing,
    obs: &dyn Observer,
    push_side: bool,
    unchanged: bool,
) {
    if !obs.wants_items() {
        return;
    }
    struct Line {
        slot: u32,
        field: [u8; 11],
        op: Op,
        kind: Kind,
        path: Vec<u8>,
        link: Option<Vec<u8>>,
        bytes: u64,
    }
    let mut lines = Vec::new();
    let mut push = |slot, update, list: &Listing, idx: Idx, op, change: Change, bytes| {
        let m = list.meta(idx);
        let link = (m.kind == Kind::Symlink && op != Op::Delete).then(|| list.link(idx).to_vec());
        lines.push(Line {
            slot,
            field: field(update, m.kind, change),
            op,
            kind: m.kind,
            path: list.path(idx),
            link,
            bytes,
        });
    };
    for (gi, g) in plan.groups.iter().enumerate() {
        if gi == 0 && plan.create_root {
            push(g.slot, Update::Local, src, 0, Op::Mkdir, Change::NEW, 0);
        } else if !g.finish.is_empty() && !g.finish.contains(Change::NEW) {
            push(g.slot, Update::Attrs, src, g.src, Op::SetAttrs, g.finish, 0);
        } else if unchanged && g.finish.is_empty() {
            push(
                g.slot,
                Update::Attrs,
                src,
                g.src,
                Op::Unchanged,
                Change::NONE,
                0,
            );
        }
    }
    let mut action = |a: &Action, slot: u32| {
        let a = Action { slot, ..*a };
        match a.op {
            Op::Delete if a.change.contains(Change::TYPE) => {}
            Op::Delete => push(a.slot, Update::Delete, dst, a.dst, a.op, a.change, 0),
            Op::Copy => {
                let size = src.meta(a.src).size;
                push(a.slot, Update::Transfer, src, a.src, a.op, a.change, size);
            }
            Op::SetAttrs => {
                let c = remote::shown_attrs(a.change, src.meta(a.src), dst.meta(a.dst));
                if !c.is_empty() || unchanged {
                    push(a.slot, Update::Attrs, src, a.src, a.op, c, 0);
                }
            }
            Op::Mknod
                if ![Change::NEW, Change::TYPE, Change::CONTENT]
                    .iter()
                    .any(|&c| a.change.contains(c)) =>
            {
                let c = remote::shown_attrs(a.change, src.meta(a.src), dst.meta(a.dst));
                if !c.is_empty() || unchanged {
                    push(a.slot, Update::Attrs, src, a.src, a.op, c, 0);
                }
            }
            Op::Mkdir | Op::Symlink | Op::Mknod => {
                push(a.slot, Update::Local, src, a.src, a.op, a.change, 0);
            }
            Op::Unchanged => push(a.slot, Update::Attrs, src, a.src, a.op, a.change, 0),
            Op::Link | Op::Stamp => {}
        }
    };
    for a in &plan.actions {
        action(a, a.slot);
    }
    // Per group: the leader's lines, then its members'.
    let mut bases = Vec::with_capacity(links.len());
    let mut slot = plan.slots;
    for g in links {
        bases.push(slot);
        for a in &g.actions {
            action(a, slot);
            slot += 1;
        }
        slot += g.members.len() as u32;
    }
    for (g, base) in links.iter().zip(bases) {
        let kind = src.meta(g.leader).kind;
        let first = base + g.actions.len() as u32;
        for (this, m) in (first..).zip(&g.members) {
            let (field, link) = if m.linked {
                if !unchanged {
                    continue;
                }
                (field(Update::HardLink, Kind::File, Change::NONE), None)
            } else {
                (
                    field(Update::HardLink, kind, m.change),
                    Some(src.path(g.leader)),
                )
            };
            lines.push(Line {
                slot: this,
                field,
                op: Op::Link,
                kind,
                path: src.path(m.src),
                link,
                bytes: 0,
            });
        }
    }
    lines.sort_by_key(|l| l.slot);
    for l in &mut lines {
        // rsync marks the files a push sends with `<`, the ones a pull receives with `>`.
        if push_side && l.field[0] == b'>' {
            l.field[0] = b'<';
        }
    }
    for l in &lines {
        obs.item(&Item {
            field: l.field,
            op: l.op,
            kind: l.kind,
            path: &l.path,
            link: l.link.as_deref(),
            bytes: l.bytes,
        });
    }
}

/// Runs the sending end for SRC `src` (already scanned as `tree`); returns the receiver's
/// report.
pub(crate) fn run(
    src: &Path,
    mut tree: remote::Tree,
    mut reader: FrameReader,
    out: Out,
    opts: &Options,
    obs: &dyn Observer,
    push_side: bool,
) -> Result<Report, RemoteError> {
    let (info, mut dst) = read_dst(&mut reader, Extras::of(opts))?;
    // `-X`/`-A`: the attributes the receiver mirrors (a receiver not running as root keeps
    // `user.*` only, whatever this end can read).
    let xattrs = remote::xattr_policy(opts, info.is_root);
    if xattrs.any() {
        tree.listing.xattrs.retain(|_, x| {
            x.retain(|(n, _)| xattrs.keeps(n));
            !x.is_empty()
        });
    }
    for e in &tree.errors {
        obs.error(e);
    }
    if opts.delete && !opts.allow_empty_source && tree.listing.len() == 1 && dst.len() > 1 {
        let e = RemoteError::Engine(Error::EmptySource {
            src: src.to_owned(),
            dst: "the remote destination".into(),
        });
        send_fatal(&out, &e);
        return Err(e);
    }
    let max_delete = opts.max_delete.map(|m| match m {
        MaxDelete::Count(n) => n,
        p => p.limit(info.total),
    });
    let popts = PlanOptions {
        delete: opts.delete && tree.errors.is_empty() && info.scan_errors == 0,
        max_delete,
        modify_window: opts.modify_window,
        checksum: opts.checksum,
        owner: opts.preserve_owner.unwrap_or(info.is_root),
        groups: Some(if info.is_root {
            None
        } else {
            Some(info.groups.clone())
        }),
        hashed_at: None,
        hard_links: opts.hard_links,
        itemize_unchanged: opts.itemize_unchanged && obs.wants_items(),
    };
    let mut plan = remote::plan_tree(&tree.listing, &dst, &popts);
    // Same-size files whose contents decide (`-c`, racy copies in DST): without their hashes
    // the plan copies them; with them, it copies only those that differ.
    // `-H`: the groups' first members are copied by the link phase's plan, which compares
    // them the same way.
    let leaders = remote::plan_links(&tree.listing, &dst, &plan.linked, &popts);
    let mut pairs: Vec<(Idx, Idx)> = plan
        .actions
        .iter()
        .chain(leaders.iter().flat_map(|g| &g.actions))
        .filter(|a| {
            a.op == Op::Copy
                && a.dst != NONE
                && dst.meta(a.dst).kind == Kind::File
                && dst.meta(a.dst).size == tree.listing.meta(a.src).size
                && (opts.checksum || dst.meta(a.dst).racy)
        })
        .map(|a| (a.src, a.dst))
        .collect();
    // `--recheck-from`: these files are compared by content whatever size and mtime say.
    if !opts.checksum {
        pairs.extend(recheck_pairs(&tree.listing, &dst, &opts.recheck, &pairs));
    }
    drop(leaders);
    if !pairs.is_empty() {
        exchange_hashes(
            src,
            &mut tree.listing,
            &mut dst,
            &pairs,
            &mut reader,
            &out,
            obs,
        )?;
        plan = remote::plan_tree(&tree.listing, &dst, &popts);
    }
    // The half-of-DST guard, as a local run: when the extraneous entries are more than the
    // limit leaves, none of them is deleted (only what a type change needs).
    if opts.max_delete_all_or_nothing && plan.delete_limited && popts.delete {
        let keep = PlanOptions {
            delete: false,
            ..popts.clone()
        };
        plan = remote::plan_tree(&tree.listing, &dst, &keep);
        plan.delete_limited = true;
    }
    let s = &tree.listing;
    let links = remote::plan_links(s, &dst, &plan.linked, &popts);
    let mut counts = plan.counts;
    for g in &links {
        let c = &g.counts;
        counts.copies += c.copies;
        counts.copy_bytes += c.copy_bytes;
        counts.created += c.created;
        counts.attr_fixes += c.attr_fixes;
        counts.created += g
            .members
            .iter()
            .filter(|m| !m.linked && m.change.contains(Change::NEW))
            .count() as u64;
    }
    obs.planned(&counts);
    items(
        &plan,
        &links,
        s,
        &dst,
        obs,
        push_side,
        popts.itemize_unchanged,
    );

    let mut r = Report {
        dry_run: opts.dry_run,
        src_entries: s.len().saturating_sub(1) as u64,
        dst_entries: dst.len().saturating_sub(1) as u64,
        deletions_disabled: opts.delete && !popts.delete,
        delete_limited: plan.delete_limited,
        errors: tree.errors.len() as u64,
        ..Report::default()
    };
    for i in 1..s.len() as u32 {
        let m = s.meta(i);
        match m.kind {
            Kind::File => {
                r.src_files += 1;
                r.src_bytes += m.size;
            }
            Kind::Dir => r.src_dirs += 1,
            Kind::Symlink => {
                r.src_symlinks += 1;
                r.src_link_bytes += m.size;
            }
            Kind::CharDev | Kind::BlockDev => r.src_devices += 1,
            Kind::Fifo | Kind::Socket => r.src_specials += 1,
        }
    }
    if opts.dry_run {
        r.files_copied = counts.copies;
        r.bytes_copied = counts.copy_bytes;
        r.created = counts.created;
        r.deleted = counts.deletions;
        r.attrs_fixed = counts.attr_fixes;
    }
    // The replies (signatures, the resend list, the report, errors) are read by a thread of
    // their own, so the receiver's signatures flow while the actions are sent.
    let (tx, rx) = mpsc::channel();
    let replies = std::thread::spawn(move || read_replies(reader, tx));
    let mut st = Stream {
        out: &out,
        rx: &rx,
        obs,
        r: &mut r,
        sigs: HashMap::new(),
    };
    let sent = if opts.dry_run {
        Ok(())
    } else {
        st.actions(src, &plan, &links, s, &dst, !info.exists, &xattrs)
    };
    let result = sent
        .and_then(|()| {
            send(&out, tag::SUMMARY, &wire::encode_report(st.r))?;
            send(&out, tag::END, &[])?;
            flush(&out)
        })
        .and_then(|()| match st.next()? {
            Reply::Report(rep) => Ok(rep),
            _ => Err(RemoteError::Stream {
                detail: "expected the report".into(),
            }),
        });
    if result.is_ok() {
        let _ = replies.join();
    }
    result
}

/// Paths per `HASH_REQUEST` frame.
const HASH_BATCH: usize = 4096;

/// Asks the receiver for the hashes of the DST files of `pairs` while hashing their SRC
/// counterparts here (both in parallel), and puts both into the listings' `hashes`.
/// The regular files of `opts.recheck` present on both sides with the same size (the others
/// differ by size or are no files), other than those already in `have`.
fn recheck_pairs(
    src: &Listing,
    dst: &Listing,
    recheck: &[Vec<u8>],
    have: &[(Idx, Idx)],
) -> Vec<(Idx, Idx)> {
    let mut have: std::collections::HashSet<Idx> = have.iter().map(|&(a, _)| a).collect();
    recheck
        .iter()
        .filter_map(|p| Some((src.find(p)?, dst.find(p)?)))
        .filter(|&(a, b)| {
            src.meta(a).kind == Kind::File
                && dst.meta(b).kind == Kind::File
                && src.meta(a).size == dst.meta(b).size
                && have.insert(a)
        })
        .collect()
}

fn exchange_hashes(
    src: &Path,
    s: &mut Listing,
    dst: &mut Listing,
    pairs: &[(Idx, Idx)],
    reader: &mut FrameReader,
    out: &Out,
    obs: &dyn Observer,
) -> Result<(), RemoteError> {
    for batch in pairs.chunks(HASH_BATCH) {
        let mut e = Enc::new();
        e.u32(batch.len() as u32);
        for &(_, b) in batch {
            e.bytes(&dst.path(b));
        }
        send(out, tag::HASH_REQUEST, &e.take())?;
    }
    flush(out)?;
    let src_paths: Vec<Vec<u8>> = pairs.iter().map(|&(a, _)| s.path(a)).collect();
    let source = remote::Source::open(src)?;
    let (mine, theirs) = std::thread::scope(|sc| {
        let mine = sc.spawn(|| remote::hash_files(source.root(), &src_paths));
        let mut theirs: Vec<Option<[u8; 32]>> = Vec::with_capacity(pairs.len());
        let read = (|| -> Result<(), RemoteError> {
            while theirs.len() < pairs.len() {
                let (t, p) = reader.frame().map_err(stream)?;
                match t {
                    tag::HASHES => {
                        let mut d = Dec::new(p, "hashes");
                        for _ in 0..d.u32().map_err(stream)? {
                            let present = d.bool().map_err(stream)?;
                            let h = d.bytes().map_err(stream)?;
                            theirs.push(match (present, <[u8; 32]>::try_from(h)) {
                                (true, Ok(h)) => Some(h),
                                _ => None,
                            });
                        }
                    }
                    tag::ERROR => obs.error(&wire::decode_error(p).map_err(stream)?),
                    tag::FATAL => return Err(parse_fatal(p)),
                    _ => {
                        return Err(RemoteError::Stream {
                            detail: format!("expected hashes, got frame tag {t}"),
                        });
                    }
                }
            }
            Ok(())
        })();
        (mine.join(), read.map(|()| theirs))
    });
    let mine = mine.map_err(|_| RemoteError::Stream {
        detail: "the hashing thread panicked".into(),
    })?;
    let theirs = theirs?;
    if theirs.len() != pairs.len() {
        return Err(stream(wire::malformed("hashes")));
    }
    for ((&(a, b), m), t) in pairs.iter().zip(mine).zip(theirs) {
        if let (Some(m), Some(t)) = (m, t) {
            s.hashes.insert(a, m);
            dst.hashes.insert(b, t);
        }
    }
    Ok(())
}

/// What the receiver sent back.
enum Reply {
    Sig(u32, Vec<u8>),
    SigEnd(u32, u64, bool),
    Resend(Vec<Vec<u8>>),
    Report(Report),
    Error(FileError),
    Failed(RemoteError),
}

fn read_replies(mut reader: FrameReader, tx: mpsc::Sender<Reply>) {
    loop {
        let reply = match reader.frame() {
            Err(e) => Reply::Failed(stream(e)),
            Ok((t, p)) => {
                let parsed = (|| -> io::Result<Reply> {
                    let mut d = Dec::new(p, "reply");
                    Ok(match t {
                        tag::SIG => {
                            let id = d.u32()?;
                            Reply::Sig(id, d.rest().to_vec())
                        }
                        tag::SIG_END => Reply::SigEnd(d.u32()?, d.u64()?, d.bool()?),
                        tag::RESEND => {
                            let mut v = Vec::new();
                            for _ in 0..d.u32()? {
                                v.push(d.bytes()?.to_vec());
                            }
                            Reply::Resend(v)
                        }
                        tag::REPORT => Reply::Report(wire::decode_report(p)?),
                        tag::ERROR => Reply::Error(wire::decode_error(p)?),
                        tag::FATAL => Reply::Failed(parse_fatal(p)),
                        _ => Reply::Failed(RemoteError::Stream {
                            detail: format!("unexpected frame tag {t} from the receiver"),
                        }),
                    })
                })();
                parsed.unwrap_or_else(|e| Reply::Failed(stream(e)))
            }
        };
        let last = matches!(reply, Reply::Report(_) | Reply::Failed(_));
        if tx.send(reply).is_err() || last {
            return;
        }
    }
}

/// The sending half of a run in progress.
struct Stream<'a> {
    out: &'a Out,
    rx: &'a mpsc::Receiver<Reply>,
    obs: &'a dyn Observer,
    r: &'a mut Report,
    /// Signatures received for files not sent yet.
    sigs: HashMap<u32, delta::OldSig>,
}

impl Stream<'_> {
    /// The next reply that is not an error on one entry (those are reported here).
    fn next(&mut self) -> Result<Reply, RemoteError> {
        loop {
            let reply = self.rx.recv().map_err(|_| RemoteError::Stream {
                detail: "the other end closed the connection".into(),
            })?;
            match reply {
                Reply::Error(e) => self.obs.error(&e),
                Reply::Failed(e) => return Err(e),
                other => return Ok(other),
            }
        }
    }

    /// Waits for the whole signature of request `id`; `None` when the receiver could not read
    /// the old file.
    fn signature(&mut self, id: u32) -> Result<Option<delta::OldSig>, RemoteError> {
        loop {
            match self.next()? {
                Reply::Sig(i, piece) => self
                    .sigs
                    .entry(i)
                    .or_default()
                    .add(&piece)
                    .map_err(stream)?,
                Reply::SigEnd(i, len, ok) => {
                    let mut sig = self.sigs.remove(&i).unwrap_or_default();
                    sig.len = len;
                    if i == id {
                        return Ok(ok.then_some(sig));
                    }
                }
                _ => {
                    return Err(RemoteError::Stream {
                        detail: "expected a signature".into(),
                    });
                }
            }
        }
    }

    fn read_error(&mut self, path: &[u8], e: io::Error) {
        self.r.errors += 1;
        self.obs.error(&FileError {
            op: "read",
            path: path.to_vec(),
            side: Side::Source,
            source: e,
        });
    }

    /// Opens SRC's file for sending; `None` (reported) when it cannot be read.
    fn open(&mut self, source: &mut remote::Source, path: &[u8]) -> Option<std::fs::File> {
        let opened = source.file(path);
        self.opened(path, opened)
    }

    /// Reports the file at `path` as vanished.
    fn vanished(&mut self, path: &[u8]) -> Option<std::fs::File> {
        self.r.vanished += 1;
        self.obs.warning(&sync_engine::Warning::Vanished { path });
        None
    }

    /// The file of an open attempt; `None` (a missing one reported as vanished, another error
    /// as a read error) when there is none.
    fn opened(
        &mut self,
        path: &[u8],
        opened: io::Result<Option<std::fs::File>>,
    ) -> Option<std::fs::File> {
        match opened {
            Ok(Some(f)) => Some(f),
            // Gone, or not a regular file any more (never read as one): as rsync, it vanished.
            Ok(None) => self.vanished(path),
            Err(e) if e.kind() == io::ErrorKind::NotFound => self.vanished(path),
            Err(e) => {
                self.read_error(path, e);
                None
            }
        }
    }

    /// Sends one file whole: header, data frames, BLAKE3 of what was sent.
    fn file(
        &mut self,
        source: &mut remote::Source,
        path: &[u8],
        meta: &remote::Meta,
        new: bool,
        buf: &mut [u8],
    ) -> Result<(), RemoteError> {
        if (meta.size as usize) < buf.len() {
            return self.small_file(source, path, meta, new, buf);
        }
        let Some(mut f) = self.open(source, path) else {
            return Ok(());
        };
        let out = self.out;
        send(
            out,
            tag::FILE,
            &Enc::new().bytes(path).meta(meta).bool(new).take(),
        )?;
        let mut h = blake3::Hasher::new();
        loop {
            let n = match f.read(buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    send(out, tag::FILE_ABORT, &[])?;
                    self.read_error(path, e);
                    return Ok(());
                }
            };
            h.update(&buf[..n]);
            send(out, tag::DATA, &buf[..n])?;
        }
        send(out, tag::FILE_END, h.finalize().as_bytes())
    }

    /// Sends a file that fits in one data frame: read whole first (one `pread` of its size and
    /// a byte more), then `fstat`-ed, so the header carries the attributes of the content read.
    /// A file that changed since the scan is read once more; if it changed during that read
    /// too, it goes with the mtime seen before the read (older than the source's), so the next
    /// run copies it again, as a local run does.
    fn small_file(
        &mut self,
        source: &mut remote::Source,
        path: &[u8],
        scanned: &remote::Meta,
        new: bool,
        buf: &mut [u8],
    ) -> Result<(), RemoteError> {
        let opened = source.open_any(path).map(Some);
        let Some(f) = self.opened(path, opened) else {
            return Ok(());
        };
        let mut before = *scanned;
        for attempt in 0..2 {
            let want = (before.size as usize + 1).min(buf.len());
            let read = read_full_at(&f, &mut buf[..want], before.size as usize);
            let (n, after) = match read.and_then(|n| Ok((n, remote::file_meta(&f)?))) {
                Ok((n, Some(after))) => (n, after),
                Ok((_, None)) => {
                    self.vanished(path);
                    return Ok(());
                }
                Err(e) => {
                    self.read_error(path, e);
                    return Ok(());
                }
            };
            let stable = after.size == before.size && after.mtime == before.mtime;
            if stable && n as u64 == after.size {
                return self.send_whole(path, &after, new, &buf[..n]);
            }
            if (after.size as usize) >= buf.len() {
                // It grew past one frame: the streaming path.
                drop(f);
                return self.file(source, path, &after, new, buf);
            }
            if attempt == 1 {
                self.obs
                    .warning(&sync_engine::Warning::ChangedDuringCopy { path });
                let kept = remote::Meta {
                    size: n as u64,
                    ..before
                };
                return self.send_whole(path, &kept, new, &buf[..n]);
            }
            before = after;
        }
        Ok(())
    }

    /// The frames of a whole file whose content is `data`.
    fn send_whole(
        &mut self,
        path: &[u8],
        meta: &remote::Meta,
        new: bool,
        data: &[u8],
    ) -> Result<(), RemoteError> {
        let out = self.out;
        send(
            out,
            tag::FILE,
            &Enc::new().bytes(path).meta(meta).bool(new).take(),
        )?;
        if !data.is_empty() {
            send(out, tag::DATA, data)?;
        }
        send(out, tag::FILE_END, blake3::hash(data).as_bytes())
    }

    /// Sends one changed file as deltas against the receiver's old version `old`.
    fn delta_file(
        &mut self,
        source: &mut remote::Source,
        path: &[u8],
        meta: &remote::Meta,
        old: &delta::OldSig,
        bufs: &mut (Vec<u8>, Vec<Vec<u8>>),
    ) -> Result<(), RemoteError> {
        let Some(mut f) = self.open(source, path) else {
            return Ok(());
        };
        let out = self.out;
        send(
            out,
            tag::DELTA_FILE,
            &Enc::new().bytes(path).meta(meta).take(),
        )?;
        match delta::send_windows(out, &mut f, old, &mut bufs.0, &mut bufs.1)? {
            // Flushed: the receiver applies it while the next file is diffed.
            Ok((hash, _len)) => send(out, tag::FILE_END, hash.as_bytes()).and_then(|()| flush(out)),
            Err(e) => {
                send(out, tag::FILE_ABORT, &[])?;
                self.read_error(path, e);
                Ok(())
            }
        }
    }

    /// `-X`/`-A`: announces the whole set of extended attributes `want` for the next action on
    /// `path` (`masked`: see [`remote::attrs_masked`]).
    fn xattrs(
        &self,
        path: &[u8],
        want: &[(Vec<u8>, Vec<u8>)],
        masked: Option<u32>,
    ) -> Result<(), RemoteError> {
        let mut e = Enc::new();
        e.bytes(path)
            .bool(masked.is_some())
            .u32(masked.unwrap_or(0))
            .xattrs(want);
        send(self.out, tag::XATTRS, &e.take())
    }

    /// `-X`/`-A`: the attributes of SRC's `i`, for an entry made under a temporary name (none:
    /// the receiver gives it none, nothing to send).
    fn new_xattrs(&self, xp: &XattrPolicy, s: &Listing, i: Idx) -> Result<(), RemoteError> {
        let want = s.xattrs_of(i);
        if xp.any() && !want.is_empty() {
            self.xattrs(&s.path(i), want, None)?;
        }
        Ok(())
    }

    /// Sends one action that makes or fixes an entry: a file whole (deltas are the caller's),
    /// a symlink or special file, or an attribute fix; with `-X`/`-A` its attributes first.
    fn entry(
        &mut self,
        a: &remote::Action,
        s: &Listing,
        dst: &Listing,
        xp: &XattrPolicy,
        source: &mut remote::Source,
        buf: &mut [u8],
    ) -> Result<(), RemoteError> {
        let path = s.path(a.src);
        let (meta, new) = (s.meta(a.src), a.change.contains(Change::NEW));
        let mut e = Enc::new();
        match a.op {
            Op::Copy => {
                self.new_xattrs(xp, s, a.src)?;
                self.file(source, &path, meta, new, buf)
            }
            Op::Symlink | Op::Mknod => {
                self.new_xattrs(xp, s, a.src)?;
                e.bytes(&path).meta(meta).bytes(s.link(a.src)).bool(new);
                send(self.out, tag::MAKE, &e.take())
            }
            Op::SetAttrs => {
                let (want, have) = (s.xattrs_of(a.src), dst.xattrs_of(a.dst));
                if xp.any() && want != have {
                    let masked = remote::attrs_masked(xp, a.change, meta, dst.meta(a.dst));
                    self.xattrs(&path, want, masked)?;
                }
                e.bytes(&path)
                    .meta(meta)
                    .bool(a.change.contains(Change::OWNER))
                    .bool(a.change.contains(Change::GROUP));
                send(self.out, tag::ATTRS, &e.take())
            }
            _ => Ok(()),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn actions(
        &mut self,
        src: &Path,
        plan: &Plan,
        links: &[LinkGroup],
        s: &Listing,
        dst: &Listing,
        create_root: bool,
        xp: &XattrPolicy,
    ) -> Result<(), RemoteError> {
        let out = self.out;
        let mut source = remote::Source::open(src)?;
        let mut buf = vec![0u8; DATA_CHUNK];
        let mut e = Enc::new();
        // Changed files that exist in DST go as deltas: their signatures are asked for first,
        // in one request, and arrive while the other actions are sent. With `-H` the groups'
        // first members too: the deltas are all applied before the link phase.
        let is_candidate = |a: &remote::Action| {
            a.op == Op::Copy
                && a.dst != NONE
                && dst.meta(a.dst).kind == Kind::File
                && dst.meta(a.dst).size >= delta::DELTA_MIN
                && s.meta(a.src).size >= delta::DELTA_MIN
        };
        let candidates: Vec<&remote::Action> = plan
            .actions
            .iter()
            .chain(links.iter().flat_map(|g| &g.actions))
            .filter(|a| is_candidate(a))
            .collect();
        if !candidates.is_empty() {
            e.u32(candidates.len() as u32);
            for (id, a) in candidates.iter().enumerate() {
                e.u32(id as u32).bytes(&dst.path(a.dst));
            }
            send(out, tag::SIG_REQUEST, &e.take())?;
            flush(out)?;
        }
        // Directories whose entries change get their attributes (mtime) set again afterwards.
        let mut touched = vec![false; plan.groups.len()];
        for (gi, touched) in touched.iter_mut().enumerate() {
            for a in plan.actions_of(gi) {
                match a.op {
                    Op::Delete => {
                        let m = dst.meta(a.dst);
                        e.bytes(&dst.path(a.dst)).bool(m.kind == Kind::Dir);
                        send(out, tag::DELETE, &e.take())?;
                    }
                    Op::Mkdir => {
                        e.bytes(&s.path(a.src));
                        send(out, tag::MKDIR, &e.take())?;
                    }
                    Op::Copy if is_candidate(a) => {}
                    Op::Copy | Op::Symlink | Op::Mknod | Op::SetAttrs => {
                        self.entry(a, s, dst, xp, &mut source, &mut buf)?;
                    }
                    Op::Link | Op::Stamp | Op::Unchanged => {}
                }
                if !matches!(a.op, Op::SetAttrs | Op::Stamp | Op::Link | Op::Unchanged) {
                    *touched = true;
                }
            }
        }
        if !candidates.is_empty() {
            flush(out)?;
            let mut bufs = (Vec::new(), Vec::new());
            let mut whole = Vec::new();
            for (id, a) in candidates.iter().enumerate() {
                let path = s.path(a.src);
                match self.signature(id as u32)? {
                    Some(old) => {
                        self.new_xattrs(xp, s, a.src)?;
                        self.delta_file(&mut source, &path, s.meta(a.src), &old, &mut bufs)?
                    }
                    None => whole.push(a),
                }
            }
            for a in whole {
                self.new_xattrs(xp, s, a.src)?;
                self.file(&mut source, &s.path(a.src), s.meta(a.src), false, &mut buf)?;
            }
            send(out, tag::DELTAS_END, &[])?;
            flush(out)?;
            let resend = loop {
                match self.next()? {
                    Reply::Resend(v) => break v,
                    Reply::Sig(..) | Reply::SigEnd(..) => {}
                    _ => {
                        return Err(RemoteError::Stream {
                            detail: "expected the resend list".into(),
                        });
                    }
                }
            };
            for path in resend {
                let Some(a) = candidates.iter().find(|a| s.path(a.src) == path) else {
                    return Err(RemoteError::Stream {
                        detail: "resend of a file that was not sent as a delta".into(),
                    });
                };
                self.new_xattrs(xp, s, a.src)?;
                self.file(&mut source, &path, s.meta(a.src), false, &mut buf)?;
            }
        }
        // `-H`, once every file is complete in DST: each group's leader like any file (sent as
        // a delta above when it can be), then the links to it. Their directories get their
        // attributes again.
        let mut link_dirs: Vec<Idx> = Vec::new();
        for g in links {
            for a in &g.actions {
                match a.op {
                    Op::Copy if is_candidate(a) => {}
                    Op::Copy | Op::Mknod | Op::SetAttrs => {
                        self.entry(a, s, dst, xp, &mut source, &mut buf)?;
                    }
                    _ => {}
                }
                if matches!(a.op, Op::Copy | Op::Mknod) {
                    link_dirs.push(s.entry(a.src).parent);
                }
            }
            let leader = s.path(g.leader);
            for m in g.members.iter().filter(|m| !m.linked) {
                e.bytes(&leader)
                    .bytes(&s.path(m.src))
                    .bool(m.change.contains(Change::NEW));
                send(out, tag::LINK, &e.take())?;
                link_dirs.push(s.entry(m.src).parent);
            }
        }
        link_dirs.sort_unstable();
        link_dirs.dedup();
        if !link_dirs.is_empty() {
            // Those without a group of the plan here (the others are marked touched).
            for (gi, g) in plan.groups.iter().enumerate() {
                if let Ok(i) = link_dirs.binary_search(&g.src) {
                    touched[gi] = true;
                    link_dirs.remove(i);
                }
            }
            for &d in link_dirs.iter().rev() {
                e.bytes(&s.path(d)).meta(s.meta(d)).bool(false);
                send(out, tag::DIR_ATTRS, &e.take())?;
            }
        }
        // Attributes of directories after all their contents, deepest first; the root of a
        // DST created by this run too.
        for (gi, g) in plan.groups.iter().enumerate().rev() {
            let counted = !g.finish.is_empty() && !g.finish.contains(Change::NEW);
            let created = g.dst == NONE || (gi == 0 && create_root);
            if g.finish.is_empty() && !touched[gi] && !created {
                continue;
            }
            if xp.any() {
                let want = s.xattrs_of(g.src);
                let path = s.path(g.src);
                if created {
                    let masked = remote::dir_masked(xp, s.meta(g.src), want, None, &[]);
                    self.xattrs(&path, want, masked)?;
                } else if want != dst.xattrs_of(g.dst) {
                    let (dm, dx) = (dst.meta(g.dst), dst.xattrs_of(g.dst));
                    let masked = remote::dir_masked(xp, s.meta(g.src), want, Some(dm), dx);
                    self.xattrs(&path, want, masked)?;
                }
            }
            e.bytes(&s.path(g.src)).meta(s.meta(g.src)).bool(counted);
            send(out, tag::DIR_ATTRS, &e.take())?;
        }
        if plan.groups.is_empty() && create_root {
            if xp.any() {
                let want = s.xattrs_of(0);
                self.xattrs(
                    b"",
                    want,
                    remote::dir_masked(xp, s.meta(0), want, None, &[]),
                )?;
            }
            e.bytes(b"").meta(s.meta(0)).bool(false);
            send(out, tag::DIR_ATTRS, &e.take())?;
        }
        Ok(())
    }
}

/// Reads from offset 0 until `buf` is full or the file ends; returns the bytes read. A short
/// read that reaches `expect` bytes is taken as the end (a regular file reads short only
/// there), which saves the read that would return 0.
fn read_full_at(f: &std::fs::File, buf: &mut [u8], expect: usize) -> io::Result<usize> {
    use std::os::unix::fs::FileExt;
    let mut n = 0;
    while n < buf.len() {
        match f.read_at(&mut buf[n..], n as u64) {
            Ok(0) => break,
            Ok(k) if n + k < buf.len() && n + k >= expect => return Ok(n + k),
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}
