//! The planner on arbitrary pairs of trees: the plan, applied to an in-memory model of DST with
//! the semantics of `apply.rs` (deletions need empty directories, renames cannot replace a
//! directory, creating or removing an entry touches its directory's mtime, a directory gets its
//! attributes after its subtree), must give SRC modulo the rules (quick check, owner policy,
//! modify window), and planning again must give an empty plan. With `--max-delete` the plan must
//! stay valid and within the limit.
#![no_main]

use std::collections::BTreeMap;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use sync_engine::listing::{Idx, Kind, Listing, Meta, Time};
use sync_engine::plan::{Op, PlanOptions, plan, same_time};

/// Names drawn from a small set so SRC and DST share many of them.
const NAMES: [&[u8]; 8] = [b"a", b"b", b"c", b".a.x", b"a b", b"\xff", b"z\n", b"..."];

#[derive(Arbitrary, Debug)]
enum FKind {
    File,
    Dir,
    Symlink,
    Fifo,
    CharDev,
}

#[derive(Arbitrary, Debug)]
struct FNode {
    name: u8,
    kind: FKind,
    perm: u16,
    uid: u8,
    gid: u8,
    /// Size of a file (small), link target choice, or device number.
    size: u8,
    /// Content of a file, for `--checksum`.
    content: u8,
    sec: u8,
    nsec: u8,
    /// In DST: the copy's stamp says its content was read too soon after its mtime.
    racy: bool,
    children: Vec<FNode>,
}

#[derive(Arbitrary, Debug)]
struct Input {
    src: FNode,
    dst: Option<FNode>,
    delete: bool,
    checksum: bool,
    owner: bool,
    /// 0: no groups, 1: every group, 2: only groups 0 and 1.
    groups: u8,
    window: u8,
    /// `--max-delete`: the plan must stay valid and within the limit; the mirror may then be
    /// incomplete.
    max_delete: Option<u8>,
    /// The contents were hashed (at this second): every pair of files gets its digests, as the
    /// engine does for racy pairs and files to recheck (and all pairs with `--checksum`).
    hashed_at: Option<u8>,
}

const RUNNER_UID: u32 = 7;
const RUNNER_GID: u32 = 9;
/// The time of the run: what a directory's mtime becomes when its entries change.
const NOW: Time = Time {
    sec: 1_000_000,
    nsec: 1,
};

fn kind(k: &FKind) -> Kind {
    match k {
        FKind::File => Kind::File,
        FKind::Dir => Kind::Dir,
        FKind::Symlink => Kind::Symlink,
        FKind::Fifo => Kind::Fifo,
        FKind::CharDev => Kind::CharDev,
    }
}

fn meta(n: &FNode) -> Meta {
    let kind = kind(&n.kind);
    Meta {
        kind,
        perm: if kind == Kind::Symlink {
            0o777
        } else {
            u32::from(n.perm) & 0o7777
        },
        uid: u32::from(n.uid % 3),
        gid: u32::from(n.gid % 3),
        size: match kind {
            Kind::File | Kind::CharDev => u64::from(n.size % 4),
            Kind::Symlink => 1,
            _ => 0,
        },
        mtime: Time {
            sec: i64::from(n.sec % 4),
            nsec: u32::from(n.nsec % 3),
        },
        racy: false,
        protected: false,
        mount: false,
    }
}

fn link_of(n: &FNode) -> Vec<u8> {
    vec![b'0' + n.size % 3]
}

/// Builds a listing in pre-order with children sorted by name and unique per directory.
fn build(root: &FNode, depth_limit: usize, dst: bool) -> (Listing, BTreeMap<Idx, u8>) {
    let mut root_meta = meta(root);
    root_meta.kind = Kind::Dir;
    root_meta.size = 0;
    let mut l = Listing::with_root(root_meta);
    let mut contents = BTreeMap::new();
    add_children(&mut l, &mut contents, root, 0, depth_limit, dst);
    l.close(0);
    (l, contents)
}

fn add_children(
    l: &mut Listing,
    contents: &mut BTreeMap<Idx, u8>,
    n: &FNode,
    parent: Idx,
    depth: usize,
    dst: bool,
) {
    if depth == 0 {
        return;
    }
    let mut kids: BTreeMap<&[u8], &FNode> = BTreeMap::new();
    for c in n.children.iter().take(6) {
        kids.entry(NAMES[usize::from(c.name) % NAMES.len()])
            .or_insert(c);
    }
    for (name, c) in kids {
        let mut m = meta(c);
        m.racy = dst && m.kind == Kind::File && c.racy;
        let link = link_of(c);
        let idx = l.push(
            name,
            (m.kind == Kind::Symlink).then_some(&link[..]),
            m,
            parent,
        );
        if m.kind == Kind::File {
            contents.insert(idx, c.content % 2);
        }
        if m.kind == Kind::Dir {
            add_children(l, contents, c, idx, depth - 1, dst);
            l.close(idx);
        }
    }
}

/// One entry of the model of DST.
#[derive(Debug, Clone, PartialEq)]
struct MNode {
    meta: Meta,
    link: Vec<u8>,
    content: u8,
}

type Model = BTreeMap<Vec<u8>, MNode>;

fn parent_of(p: &[u8]) -> Vec<u8> {
    match p.iter().rposition(|b| *b == b'/') {
        Some(i) => p[..i].to_vec(),
        None => Vec::new(),
    }
}

fn touch(m: &mut Model, dir: &[u8]) {
    let d = m
        .get_mut(dir)
        .expect("the directory of a changed entry exists");
    assert_eq!(d.meta.kind, Kind::Dir);
    d.meta.mtime = NOW;
}

fn has_children(m: &Model, dir: &[u8]) -> bool {
    m.keys().any(|k| k.len() > dir.len() && parent_of(k) == dir)
}

struct Policy {
    owner: bool,
    groups: Option<Option<Vec<u32>>>,
}

impl Policy {
    fn set_owner(&self, target: &mut Meta, src: &Meta) {
        if self.owner {
            target.uid = src.uid;
        }
        match &self.groups {
            Some(None) => target.gid = src.gid,
            Some(Some(list)) if list.contains(&src.gid) => target.gid = src.gid,
            _ => {}
        }
    }
}

fn to_listing(m: &Model, hashes: bool) -> Listing {
    let root = m.get(&Vec::new()).expect("root");
    let mut l = Listing::with_root(root.meta);
    // Children are collected per directory: in the map's order "a b" sorts between "a" and
    // "a/x", so the map is not a pre-order.
    fn walk(m: &Model, l: &mut Listing, dir: &[u8], idx: Idx, hashes: bool) {
        let kids: Vec<(&Vec<u8>, &MNode)> = m
            .iter()
            .filter(|(k, _)| !k.is_empty() && parent_of(k) == dir && k.len() > dir.len())
            .collect();
        let mut kids: Vec<(Vec<u8>, &Vec<u8>, &MNode)> = kids
            .into_iter()
            .map(|(k, n)| {
                let name = if dir.is_empty() {
                    k.clone()
                } else {
                    k[dir.len() + 1..].to_vec()
                };
                (name, k, n)
            })
            .collect();
        kids.sort_by(|a, b| a.0.cmp(&b.0));
        for (name, path, n) in kids {
            let i = l.push(
                &name,
                (n.meta.kind == Kind::Symlink).then_some(&n.link[..]),
                n.meta,
                idx,
            );
            if hashes && n.meta.kind == Kind::File {
                l.hashes.insert(i, [n.content; 32]);
            }
            if n.meta.kind == Kind::Dir {
                walk(m, l, path, i, hashes);
                l.close(i);
            }
        }
    }
    walk(m, &mut l, &[], 0, hashes);
    l.close(0);
    l
}

fuzz_target!(|input: Input| {
    let (mut src, src_contents) = build(&input.src, 4, false);
    let (mut dst, dst_contents) = match &input.dst {
        Some(d) => build(d, 4, true),
        None => (Listing::default(), BTreeMap::new()),
    };
    let hashed_at = input.hashed_at.map(|s| Time {
        sec: i64::from(s % 6),
        nsec: 0,
    });
    let hashes = input.checksum || hashed_at.is_some();
    if hashes {
        for (i, c) in &src_contents {
            src.hashes.insert(*i, [*c; 32]);
        }
        for (i, c) in &dst_contents {
            dst.hashes.insert(*i, [*c; 32]);
        }
    }
    let groups = match input.groups % 3 {
        0 => None,
        1 => Some(None),
        _ => Some(Some(vec![0, 1])),
    };
    let opts = PlanOptions {
        delete: input.delete,
        max_delete: input.max_delete.map(|n| u64::from(n % 8)),
        modify_window: u32::from(input.window % 3),
        checksum: input.checksum,
        owner: input.owner,
        groups: groups.clone(),
        hashed_at,
        hard_links: false,
        itemize_unchanged: false,
    };
    let policy = Policy {
        owner: input.owner,
        groups,
    };
    let p = plan(&src, &dst, &opts);

    // The model of DST before the run.
    let mut model = Model::new();
    for i in 0..dst.len() as Idx {
        model.insert(
            dst.path(i),
            MNode {
                meta: *dst.meta(i),
                link: dst.link(i).to_vec(),
                content: dst_contents.get(&i).copied().unwrap_or(0),
            },
        );
    }
    if p.create_root {
        assert!(model.is_empty(), "DST's root is created only when missing");
        let m = Meta {
            kind: Kind::Dir,
            perm: 0o700,
            uid: RUNNER_UID,
            gid: RUNNER_GID,
            size: 0,
            mtime: NOW,
            racy: false,
        protected: false,
        mount: false,
        };
        model.insert(
            Vec::new(),
            MNode {
                meta: m,
                link: Vec::new(),
                content: 0,
            },
        );
    }

    // Apply, group by group in pre-order; a group's finish comes after its subtree.
    let mut pending: Vec<(usize, u32)> = Vec::new();
    for g in 0..p.groups.len() {
        while let Some(&(pg, end)) = pending.last() {
            if (g as u32) < end {
                break;
            }
            finish(&p, pg, &src, &mut model, &policy);
            pending.pop();
        }
        let group = &p.groups[g];
        let dir = src.path(group.src);
        assert_eq!(
            model.get(&dir).map(|n| n.meta.kind),
            Some(Kind::Dir),
            "group {g} works in a directory that exists"
        );
        let acts = p.actions_of(g);
        let split = acts
            .iter()
            .position(|a| !matches!(a.op, Op::Delete | Op::Mkdir))
            .unwrap_or(acts.len());
        assert!(
            acts[split..]
                .iter()
                .all(|a| !matches!(a.op, Op::Delete | Op::Mkdir)),
            "deletions and directory creations come first"
        );
        for a in acts {
            match a.op {
                Op::Delete => {
                    let path = dst.path(a.dst);
                    let n = model.get(&path).expect("a deleted entry exists");
                    assert_eq!(n.meta.kind, dst.meta(a.dst).kind, "deleted entry kind");
                    if n.meta.kind == Kind::Dir {
                        assert!(
                            !has_children(&model, &path),
                            "a directory is empty when deleted"
                        );
                    }
                    model.remove(&path);
                    touch(&mut model, &parent_of(&path));
                }
                Op::Mkdir => {
                    let path = src.path(a.src);
                    assert!(!model.contains_key(&path), "mkdir over an existing entry");
                    let mut m = *src.meta(a.src);
                    m.perm = 0o700;
                    m.uid = RUNNER_UID;
                    m.gid = RUNNER_GID;
                    m.mtime = NOW;
                    model.insert(
                        path.clone(),
                        MNode {
                            meta: m,
                            link: Vec::new(),
                            content: 0,
                        },
                    );
                    touch(&mut model, &parent_of(&path));
                }
                Op::Copy | Op::Symlink | Op::Mknod => {
                    let path = src.path(a.src);
                    if let Some(old) = model.get(&path) {
                        assert_ne!(old.meta.kind, Kind::Dir, "rename over a directory fails");
                    }
                    let sm = *src.meta(a.src);
                    let mut m = Meta {
                        uid: RUNNER_UID,
                        gid: RUNNER_GID,
                        ..sm
                    };
                    policy.set_owner(&mut m, &sm);
                    let content = src_contents.get(&a.src).copied().unwrap_or(0);
                    model.insert(
                        path.clone(),
                        MNode {
                            meta: m,
                            link: src.link(a.src).to_vec(),
                            content,
                        },
                    );
                    touch(&mut model, &parent_of(&path));
                }
                Op::SetAttrs => {
                    let path = src.path(a.src);
                    let sm = *src.meta(a.src);
                    let n = model
                        .get_mut(&path)
                        .expect("attributes of an existing entry");
                    assert_eq!(n.meta.kind, sm.kind, "attributes fixed on the same kind");
                    policy.set_owner(&mut n.meta, &sm);
                    if sm.kind != Kind::Symlink {
                        n.meta.perm = sm.perm;
                    }
                    n.meta.mtime = sm.mtime;
                }
                Op::Link => panic!("a hard link without -H"),
                Op::Unchanged => panic!("an unchanged entry without itemize_unchanged"),
                Op::Stamp => {
                    let path = src.path(a.src);
                    let n = model.get_mut(&path).expect("a stamped entry exists");
                    assert!(n.meta.racy, "only racy copies are stamped");
                    assert_eq!(
                        Some(&n.content),
                        src_contents.get(&a.src),
                        "a stamped copy has SRC's content"
                    );
                    let t = hashed_at.expect("stamps come from a comparison");
                    assert!(
                        !sync_engine::racy::is_racy(src.meta(a.src).mtime, t),
                        "a stamp makes the copy trusted"
                    );
                    n.meta.racy = false;
                }
            }
        }
        pending.push((g, group.end));
    }
    while let Some((pg, _)) = pending.pop() {
        finish(&p, pg, &src, &mut model, &policy);
    }

    let deletions = p.actions.iter().filter(|a| a.op == Op::Delete).count() as u64;
    if let Some(limit) = opts.max_delete {
        assert!(
            deletions <= limit,
            "{deletions} deletions over the limit {limit}"
        );
        if p.delete_limited {
            return;
        }
    }

    // The model now mirrors SRC modulo the rules.
    let window = u32::from(input.window % 3);
    for i in 0..src.len() as Idx {
        let path = src.path(i);
        let sm = src.meta(i);
        let n = model.get(&path).unwrap_or_else(|| {
            panic!(
                "{:?} missing after the plan",
                String::from_utf8_lossy(&path)
            )
        });
        assert_eq!(n.meta.kind, sm.kind, "kind of {path:?}");
        assert!(
            same_time(n.meta.mtime, sm.mtime, window),
            "mtime of {path:?}: {n:?} vs {sm:?}"
        );
        if sm.kind != Kind::Symlink {
            assert_eq!(n.meta.perm, sm.perm, "perm of {path:?}");
        }
        if sm.kind != Kind::Dir {
            assert_eq!(n.meta.size, sm.size, "size of {path:?}");
        }
        if sm.kind == Kind::Symlink {
            assert_eq!(n.link, src.link(i), "link of {path:?}");
        }
        if input.owner {
            assert_eq!(n.meta.uid, sm.uid, "owner of {path:?}");
        }
        let group_settable = match &policy.groups {
            None => false,
            Some(None) => true,
            Some(Some(list)) => list.contains(&sm.gid),
        };
        if group_settable {
            assert_eq!(n.meta.gid, sm.gid, "group of {path:?}");
        }
        let untrusted = dst_was_racy(&dst, &path);
        if (hashes || untrusted) && sm.kind == Kind::File {
            assert_eq!(
                Some(&n.content),
                src_contents.get(&i),
                "content of {path:?}"
            );
        }
    }
    if input.delete {
        assert_eq!(
            model.len(),
            src.len(),
            "extraneous entries left with delete"
        );
    }
    let again = plan(&src, &to_listing(&model, hashes), &opts);
    assert!(again.is_empty(), "a second plan is not empty: {again:?}");
});

/// True when DST had a racy regular file at `path` before the run (its content must be SRC's
/// afterwards: compared, or copied when it could not be compared).
fn dst_was_racy(dst: &Listing, path: &[u8]) -> bool {
    !dst.is_empty() && dst.find(path).is_some_and(|i| dst.meta(i).racy)
}

/// The attributes of a group's directory, after its subtree (as `Applier::group` does).
fn finish(
    p: &sync_engine::plan::Plan,
    g: usize,
    src: &Listing,
    model: &mut Model,
    policy: &Policy,
) {
    let group = &p.groups[g];
    let touched = p
        .actions_of(g)
        .iter()
        .any(|a| !matches!(a.op, Op::SetAttrs | Op::Stamp));
    if !touched && group.finish.is_empty() {
        return;
    }
    let sm = *src.meta(group.src);
    let path = src.path(group.src);
    let n = model.get_mut(&path).expect("a finished directory exists");
    policy.set_owner(&mut n.meta, &sm);
    n.meta.perm = sm.perm;
    n.meta.mtime = sm.mtime;
}
