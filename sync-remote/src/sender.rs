//! The sending end: receives DST's listing, plans with sync-engine's pure planner (the same
//! as a local run), reports the itemize lines in rsync's order, streams the actions (file
//! contents with their BLAKE3 hash), the directories' attributes after everything else, and
//! its counts; then waits for the receiver's report.

use std::io::{self, Read};
use std::path::Path;

use sync_engine::itemize::{Update, field};
use sync_engine::remote::{self, Change, Idx, Kind, Listing, NONE, Op, Plan, PlanOptions, Side};
use sync_engine::{Error, FileError, Item, MaxDelete, Observer, Options, Report};

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

fn read_dst(reader: &mut FrameReader) -> Result<(DstInfo, Listing), RemoteError> {
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
        match t {
            tag::ENTRIES => {}
            tag::ENTRIES_END => break,
            tag::FATAL => return Err(parse_fatal(p)),
            _ => {
                return Err(RemoteError::Stream {
                    detail: format!("expected DST's listing, got frame tag {t}"),
                });
            }
        }
        let mut d = Dec::new(p, "entries");
        while !d.rest_is_empty() {
            let parent = d.u32().map_err(stream)?;
            let meta = d.meta().map_err(stream)?;
            let name = d.bytes().map_err(stream)?;
            let link = d.bytes().map_err(stream)?;
            if listing.is_empty() {
                if parent != NONE || meta.kind != Kind::Dir {
                    return Err(stream(wire::malformed("entries")));
                }
                listing = Listing::with_root_capacity(meta, 0, 0);
                open.push(0);
                continue;
            }
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
        }
    }
    while let Some(o) = open.pop() {
        listing.close(o);
    }
    Ok((info, listing))
}

/// The itemize lines of a plan in rsync's order (by output slot).
/// The changes rsync's itemize line shows for an attribute fix of an existing entry (as the
/// local engine shows them): rsync compares after changing the owner, and when DST's entry had
/// a setuid or setgid bit it reads the attributes again (the change of owner clears those
/// bits), so it shows the mode the change left instead of the owner and group.
fn shown_attrs(a: &remote::Action, src: &Listing, dst: &Listing) -> Change {
    let (sm, dm) = (src.meta(a.src), dst.meta(a.dst));
    let chown = a.change.contains(Change::OWNER) || a.change.contains(Change::GROUP);
    if sm.kind == Kind::Dir || !chown || dm.perm & 0o6000 == 0 {
        return a.change;
    }
    let cleared = if dm.perm & 0o010 != 0 { 0o6000 } else { 0o4000 };
    let after = dm.perm & !cleared;
    let mut c = Change::NONE;
    for f in [
        Change::CONTENT,
        Change::SIZE,
        Change::TIME,
        Change::ACL,
        Change::XATTR,
    ] {
        if a.change.contains(f) {
            c |= f;
        }
    }
    if after != sm.perm {
        c |= Change::PERMS;
    }
    c
}

/// Reports the itemize lines; `push_side`: this end is the client of a push.
fn items(plan: &Plan, src: &Listing, dst: &Listing, obs: &dyn Observer, push_side: bool) {
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
        }
    }
    for a in &plan.actions {
        match a.op {
            Op::Delete if a.change.contains(Change::TYPE) => {}
            Op::Delete => push(a.slot, Update::Delete, dst, a.dst, a.op, a.change, 0),
            Op::Copy => {
                let size = src.meta(a.src).size;
                push(a.slot, Update::Transfer, src, a.src, a.op, a.change, size);
            }
            Op::SetAttrs => {
                let c = shown_attrs(a, src, dst);
                if !c.is_empty() {
                    push(a.slot, Update::Attrs, src, a.src, a.op, c, 0);
                }
            }
            Op::Mknod
                if ![Change::NEW, Change::TYPE, Change::CONTENT]
                    .iter()
                    .any(|&c| a.change.contains(c)) =>
            {
                let c = shown_attrs(a, src, dst);
                if !c.is_empty() {
                    push(a.slot, Update::Attrs, src, a.src, a.op, c, 0);
                }
            }
            Op::Mkdir | Op::Symlink | Op::Mknod => {
                push(a.slot, Update::Local, src, a.src, a.op, a.change, 0);
            }
            Op::Link | Op::Stamp => {}
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

/// Sends one file whole: header, data frames, BLAKE3 of what was sent.
#[allow(clippy::too_many_arguments)]
fn send_file(
    out: &Out,
    source: &mut remote::Source,
    path: &[u8],
    meta: &remote::Meta,
    new: bool,
    buf: &mut [u8],
    r: &mut Report,
    obs: &dyn Observer,
) -> Result<(), RemoteError> {
    let mut f = match source.file(path) {
        Ok(Some(f)) => f,
        Ok(None) => return Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            r.vanished += 1;
            obs.warning(&sync_engine::Warning::Vanished { path });
            return Ok(());
        }
        Err(e) => {
            r.errors += 1;
            obs.error(&FileError {
                op: "read",
                path: path.to_vec(),
                side: Side::Source,
                source: e,
            });
            return Ok(());
        }
    };
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
                r.errors += 1;
                obs.error(&FileError {
                    op: "read",
                    path: path.to_vec(),
                    side: Side::Source,
                    source: e,
                });
                return Ok(());
            }
        };
        h.update(&buf[..n]);
        send(out, tag::DATA, &buf[..n])?;
    }
    send(out, tag::FILE_END, h.finalize().as_bytes())
}

/// Runs the sending end for SRC `src` (already scanned as `tree`); returns the receiver's
/// report.
pub(crate) fn run(
    src: &Path,
    tree: remote::Tree,
    mut reader: FrameReader,
    out: Out,
    opts: &Options,
    obs: &dyn Observer,
    push_side: bool,
) -> Result<Report, RemoteError> {
    let (info, dst) = read_dst(&mut reader)?;
    for e in &tree.errors {
        obs.error(e);
    }
    let s = &tree.listing;
    if opts.delete && !opts.allow_empty_source && s.len() == 1 && dst.len() > 1 {
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
        hard_links: false,
    };
    let plan = remote::plan_tree(s, &dst, &popts);
    obs.planned(&plan.counts);
    items(&plan, s, &dst, obs, push_side);

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
        if m.kind == Kind::File {
            r.src_files += 1;
            r.src_bytes += m.size;
        }
    }
    if opts.dry_run {
        r.files_copied = plan.counts.copies;
        r.bytes_copied = plan.counts.copy_bytes;
        r.created = plan.counts.created;
        r.deleted = plan.counts.deletions;
        r.attrs_fixed = plan.counts.attr_fixes;
    } else {
        send_actions(src, &plan, s, &dst, !info.exists, &out, &mut r, obs)?;
    }
    send(&out, tag::SUMMARY, &wire::encode_report(&r))?;
    send(&out, tag::END, &[])?;
    flush(&out)?;
    loop {
        let (t, p) = reader.frame().map_err(stream)?;
        match t {
            tag::REPORT => return wire::decode_report(p).map_err(stream),
            tag::ERROR => obs.error(&wire::decode_error(p).map_err(stream)?),
            tag::FATAL => return Err(parse_fatal(p)),
            _ => {
                return Err(RemoteError::Stream {
                    detail: format!("expected the report, got frame tag {t}"),
                });
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn send_actions(
    src: &Path,
    plan: &Plan,
    s: &Listing,
    dst: &Listing,
    create_root: bool,
    out: &Out,
    r: &mut Report,
    obs: &dyn Observer,
) -> Result<(), RemoteError> {
    let mut source = remote::Source::open(src)?;
    let mut buf = vec![0u8; DATA_CHUNK];
    let mut e = Enc::new();
    // Directories whose entries change get their attributes (mtime) set again afterwards.
    let mut touched = vec![false; plan.groups.len()];
    for (gi, g) in plan.groups.iter().enumerate() {
        for a in plan.actions_of(gi) {
            match a.op {
                Op::Delete => {
                    let m = dst.meta(a.dst);
                    send(
                        out,
                        tag::DELETE,
                        e.bytes(&dst.path(a.dst))
                            .bool(m.kind == Kind::Dir)
                            .take()
                            .as_slice(),
                    )?;
                }
                Op::Mkdir => {
                    send(out, tag::MKDIR, e.bytes(&s.path(a.src)).take().as_slice())?;
                }
                Op::Copy => {
                    let new = a.change.contains(Change::NEW);
                    send_file(
                        out,
                        &mut source,
                        &s.path(a.src),
                        s.meta(a.src),
                        new,
                        &mut buf,
                        r,
                        obs,
                    )?;
                }
                Op::Symlink | Op::Mknod => {
                    let m = s.meta(a.src);
                    let new = a.change.contains(Change::NEW);
                    send(
                        out,
                        tag::MAKE,
                        e.bytes(&s.path(a.src))
                            .meta(m)
                            .bytes(s.link(a.src))
                            .bool(new)
                            .take()
                            .as_slice(),
                    )?;
                }
                Op::SetAttrs => {
                    send(
                        out,
                        tag::ATTRS,
                        e.bytes(&s.path(a.src))
                            .meta(s.meta(a.src))
                            .bool(a.change.contains(Change::OWNER))
                            .bool(a.change.contains(Change::GROUP))
                            .take()
                            .as_slice(),
                    )?;
                }
                Op::Link | Op::Stamp => {}
            }
            if !matches!(a.op, Op::SetAttrs | Op::Stamp | Op::Link) {
                touched[gi] = true;
            }
        }
        let _ = g;
    }
    // Attributes of directories after all their contents, deepest first; the root of a DST
    // created by this run too.
    for (gi, g) in plan.groups.iter().enumerate().rev() {
        let counted = !g.finish.is_empty() && !g.finish.contains(Change::NEW);
        if g.finish.is_empty() && !touched[gi] && !(gi == 0 && create_root) {
            continue;
        }
        send(
            out,
            tag::DIR_ATTRS,
            e.bytes(&s.path(g.src))
                .meta(s.meta(g.src))
                .bool(counted)
                .take()
                .as_slice(),
        )?;
    }
    if plan.groups.is_empty() && create_root {
        send(
            out,
            tag::DIR_ATTRS,
            e.bytes(b"").meta(s.meta(0)).bool(false).take().as_slice(),
        )?;
    }
    Ok(())
}
