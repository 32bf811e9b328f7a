//! Planner rules, one table-driven case per rule, on in-memory trees.

use super::*;
use crate::itemize::{Update, field};
use crate::listing::build::{self, Node, dir, file, symlink};

fn opts() -> PlanOptions {
    PlanOptions {
        delete: true,
        max_delete: None,
        modify_window: 0,
        checksum: false,
        owner: true,
        groups: Some(None),
        hashed_at: None,
        hard_links: false,
        itemize_unchanged: false,
    }
}

/// Renders a plan as itemize-like lines: `FIELD path` in plan order, finishes last per group.
fn render(p: &Plan, src: &Listing, dst: &Listing) -> Vec<String> {
    let mut out = Vec::new();
    for (g, group) in p.groups.iter().enumerate() {
        for a in p.actions_of(g) {
            let (update, kind, path) = match a.op {
                Op::Delete => (Update::Delete, dst.meta(a.dst).kind, dst.path(a.dst)),
                Op::Copy => (Update::Transfer, Kind::File, src.path(a.src)),
                Op::SetAttrs => (Update::Attrs, src.meta(a.src).kind, src.path(a.src)),
                _ => (Update::Local, src.meta(a.src).kind, src.path(a.src)),
            };
            let f = String::from_utf8(field(update, kind, a.change).to_vec()).unwrap();
            out.push(format!("{f} {}", String::from_utf8_lossy(&path)));
        }
        if !group.finish.is_empty() && !group.finish.contains(Change::NEW) {
            let f = field(Update::Attrs, Kind::Dir, group.finish);
            let path = src.path(group.src);
            let path = if path.is_empty() {
                ".".into()
            } else {
                String::from_utf8_lossy(&path)
            };
            out.push(format!("{} {path}/", String::from_utf8_lossy(&f)));
        }
    }
    out
}

fn run(src: Node, dst: Option<Node>, o: &PlanOptions) -> (Plan, Vec<String>) {
    let s = build::listing(src);
    let d = dst.map(build::listing).unwrap_or_default();
    let p = plan(&s, &d, o);
    let lines = render(&p, &s, &d);
    (p, lines)
}

fn with_meta(mut n: Node, f: impl FnOnce(&mut Meta)) -> Node {
    f(&mut n.meta);
    n
}

fn fifo(name: &'static [u8]) -> Node {
    Node {
        name,
        meta: build::meta(Kind::Fifo, 0o644, 0, 100),
        link: b"",
        children: vec![],
    }
}

#[test]
fn rules() {
    struct Case {
        name: &'static str,
        src: Node,
        dst: Option<Node>,
        opts: PlanOptions,
        want: &'static [&'static str],
    }
    let no_delete = PlanOptions {
        delete: false,
        ..opts()
    };
    let cases = vec![
        Case {
            name: "missing DST: root created, everything copied",
            src: dir(
                b"",
                vec![file(b"a", 3, 100), dir(b"d", vec![file(b"x", 1, 100)])],
            ),
            dst: None,
            opts: opts(),
            want: &["cd+++++++++ d", ">f+++++++++ a", ">f+++++++++ d/x"],
        },
        Case {
            name: "identical trees: nothing",
            src: dir(b"", vec![file(b"a", 3, 100), symlink(b"l", b"a")]),
            dst: Some(dir(b"", vec![file(b"a", 3, 100), symlink(b"l", b"a")])),
            opts: opts(),
            want: &[],
        },
        Case {
            name: "quick check: size differs",
            src: dir(b"", vec![file(b"a", 4, 100)]),
            dst: Some(dir(b"", vec![file(b"a", 3, 100)])),
            opts: opts(),
            want: &[">f.s....... a"],
        },
        Case {
            name: "quick check: mtime differs",
            src: dir(b"", vec![file(b"a", 3, 101)]),
            dst: Some(dir(b"", vec![file(b"a", 3, 100)])),
            opts: opts(),
            want: &[">f..t...... a"],
        },
        Case {
            name: "quick check: nanoseconds differ",
            src: dir(
                b"",
                vec![with_meta(file(b"a", 3, 100), |m| m.mtime.nsec = 5)],
            ),
            dst: Some(dir(
                b"",
                vec![with_meta(file(b"a", 3, 100), |m| m.mtime.nsec = 6)],
            )),
            opts: opts(),
            want: &[">f..t...... a"],
        },
        Case {
            name: "quick check: a side without nanoseconds compares seconds",
            src: dir(
                b"",
                vec![with_meta(file(b"a", 3, 100), |m| m.mtime.nsec = 5)],
            ),
            dst: Some(dir(b"", vec![file(b"a", 3, 100)])),
            opts: opts(),
            want: &[],
        },
        Case {
            name: "modify window: 2 seconds apart count as equal",
            src: dir(b"", vec![file(b"a", 3, 102)]),
            dst: Some(dir(b"", vec![file(b"a", 3, 100)])),
            opts: PlanOptions {
                modify_window: 2,
                ..opts()
            },
            want: &[],
        },
        Case {
            name: "attribute only: mode fixed in place",
            src: dir(
                b"",
                vec![with_meta(file(b"a", 3, 100), |m| m.perm = 0o4755)],
            ),
            dst: Some(dir(b"", vec![file(b"a", 3, 100)])),
            opts: opts(),
            want: &[".f...p..... a"],
        },
        Case {
            name: "attribute only: owner and group",
            src: dir(
                b"",
                vec![with_meta(file(b"a", 3, 100), |m| (m.uid, m.gid) = (7, 8))],
            ),
            dst: Some(dir(b"", vec![file(b"a", 3, 100)])),
            opts: opts(),
            want: &[".f....og... a"],
        },
        Case {
            name: "owner ignored when not preserved, group only if settable",
            src: dir(
                b"",
                vec![with_meta(file(b"a", 3, 100), |m| (m.uid, m.gid) = (7, 8))],
            ),
            dst: Some(dir(b"", vec![file(b"a", 3, 100)])),
            opts: PlanOptions {
                owner: false,
                groups: Some(Some(vec![9])),
                ..opts()
            },
            want: &[],
        },
        Case {
            name: "setuid special file whose owner changes is recreated (chown clears setuid)",
            src: dir(
                b"",
                vec![with_meta(fifo(b"p"), |m| (m.perm, m.uid) = (0o4755, 7))],
            ),
            dst: Some(dir(b"", vec![with_meta(fifo(b"p"), |m| m.perm = 0o4755)])),
            opts: opts(),
            want: &["cS....o.... p"],
        },
        Case {
            name: "symlink mtime fixed in place, never perms",
            src: dir(
                b"",
                vec![with_meta(symlink(b"l", b"t"), |m| {
                    (m.mtime.sec, m.perm) = (5, 0)
                })],
            ),
            dst: Some(dir(b"", vec![symlink(b"l", b"t")])),
            opts: opts(),
            want: &[".L..t...... l"],
        },
        Case {
            name: "symlink target changed: recreated",
            src: dir(b"", vec![symlink(b"l", b"new")]),
            dst: Some(dir(b"", vec![symlink(b"l", b"old")])),
            opts: opts(),
            want: &["cLc........ l"],
        },
        Case {
            name: "directory mtime: fixed after contents",
            src: dir(
                b"",
                vec![with_meta(dir(b"d", vec![file(b"x", 1, 1)]), |m| {
                    m.mtime.sec = 7
                })],
            ),
            dst: Some(dir(b"", vec![dir(b"d", vec![file(b"x", 1, 1)])])),
            opts: opts(),
            want: &[".d..t...... d/"],
        },
        Case {
            name: "root attributes applied to DST",
            src: with_meta(dir(b"", vec![]), |m| m.perm = 0o700),
            dst: Some(dir(b"", vec![])),
            opts: opts(),
            want: &[".d...p..... ./"],
        },
        Case {
            name: "delete: contents before their directory",
            src: dir(b"", vec![]),
            dst: Some(dir(
                b"",
                vec![dir(b"old", vec![file(b"x", 1, 1), file(b"y", 1, 1)])],
            )),
            opts: opts(),
            want: &["*deleting   old/y", "*deleting   old/x", "*deleting   old"],
        },
        Case {
            name: "no-delete keeps extraneous entries",
            src: dir(b"", vec![]),
            dst: Some(dir(b"", vec![file(b"extra", 1, 1)])),
            opts: no_delete.clone(),
            want: &[],
        },
        Case {
            name: "max-delete stops past the limit",
            src: dir(b"", vec![]),
            dst: Some(dir(
                b"",
                vec![file(b"a", 1, 1), file(b"b", 1, 1), file(b"c", 1, 1)],
            )),
            opts: PlanOptions {
                max_delete: Some(2),
                ..opts()
            },
            want: &["*deleting   a", "*deleting   b"],
        },
        Case {
            name: "type change: file replaces non-empty directory",
            src: dir(b"", vec![file(b"x", 1, 1)]),
            dst: Some(dir(b"", vec![dir(b"x", vec![file(b"inner", 1, 1)])])),
            opts: opts(),
            want: &["*deleting   x/inner", "*deleting   x", ">f+++++++++ x"],
        },
        Case {
            name: "type change: directory replaces symlink (never written through)",
            src: dir(b"", vec![dir(b"x", vec![file(b"f", 1, 1)])]),
            dst: Some(dir(b"", vec![symlink(b"x", b"/etc")])),
            opts: opts(),
            want: &["*deleting   x", "cd+++++++++ x", ">f+++++++++ x/f"],
        },
        Case {
            name: "type change: symlink replaces file by rename",
            src: dir(b"", vec![symlink(b"x", b"t")]),
            dst: Some(dir(b"", vec![file(b"x", 1, 1)])),
            opts: opts(),
            want: &["cL+++++++++ x"],
        },
        Case {
            name: "type change: fifo replaces file, also with no-delete",
            src: dir(b"", vec![fifo(b"x")]),
            dst: Some(dir(b"", vec![file(b"x", 1, 1)])),
            opts: no_delete,
            want: &["cS+++++++++ x"],
        },
        Case {
            name: "type change of a directory within max-delete only",
            src: dir(b"", vec![file(b"x", 1, 1)]),
            dst: Some(dir(
                b"",
                vec![dir(b"x", vec![file(b"a", 1, 1), file(b"b", 1, 1)])],
            )),
            opts: PlanOptions {
                max_delete: Some(1),
                ..opts()
            },
            want: &[],
        },
        Case {
            // As rsync: the replaced directory itself does not count, its contents do.
            name: "type change of a directory: its contents count against max-delete",
            src: dir(b"", vec![file(b"x", 1, 1)]),
            dst: Some(dir(
                b"",
                vec![dir(b"x", vec![file(b"a", 1, 1), file(b"b", 1, 1)])],
            )),
            opts: PlanOptions {
                max_delete: Some(2),
                ..opts()
            },
            want: &[
                "*deleting   x/b",
                "*deleting   x/a",
                "*deleting   x",
                ">f+++++++++ x",
            ],
        },
        Case {
            name: "type change of a file does not count against max-delete",
            src: dir(b"", vec![dir(b"x", vec![])]),
            dst: Some(dir(b"", vec![file(b"x", 1, 1)])),
            opts: PlanOptions {
                max_delete: Some(0),
                ..opts()
            },
            want: &["*deleting   x", "cd+++++++++ x"],
        },
    ];
    for c in cases {
        let (_, lines) = run(c.src, c.dst, &c.opts);
        assert_eq!(lines, c.want, "case: {}", c.name);
    }
}

#[test]
fn checksum_compares_content_not_mtime() {
    let src = build::listing(dir(b"", vec![file(b"same", 3, 100), file(b"trap", 3, 100)]));
    let dst = build::listing(dir(b"", vec![file(b"same", 3, 200), file(b"trap", 3, 100)]));
    let mut src = src;
    let mut dst = dst;
    src.hashes.insert(1, [1; 32]);
    dst.hashes.insert(1, [1; 32]);
    src.hashes.insert(2, [2; 32]);
    dst.hashes.insert(2, [3; 32]);
    let o = PlanOptions {
        checksum: true,
        ..opts()
    };
    let p = plan(&src, &dst, &o);
    assert_eq!(
        render(&p, &src, &dst),
        vec![".f..t...... same", ">fc........ trap"]
    );
}

#[test]
fn second_plan_after_apply_is_empty_for_identical_listings() {
    let tree = || {
        dir(
            b"",
            vec![
                dir(b"a", vec![file(b"x", 1, 1), symlink(b"l", b"x")]),
                fifo(b"p"),
            ],
        )
    };
    let (p, _) = run(tree(), Some(tree()), &opts());
    assert!(p.is_empty());
}

#[test]
fn groups_are_pruned_and_ordered() {
    let src = dir(
        b"",
        vec![
            dir(b"a", vec![dir(b"b", vec![file(b"new", 1, 1)])]),
            dir(b"c", vec![]),
        ],
    );
    let dst = dir(
        b"",
        vec![dir(b"a", vec![dir(b"b", vec![])]), dir(b"c", vec![])],
    );
    let (p, lines) = run(src, Some(dst), &opts());
    assert_eq!(lines, vec![">f+++++++++ a/b/new"]);
    // root, a, b: the untouched `c` is pruned; parents kept to reach `b`.
    assert_eq!(p.groups.len(), 3);
    assert_eq!(p.child_groups(0).collect::<Vec<_>>(), vec![1]);
    assert_eq!(p.counts.copies, 1);
}

#[test]
fn subdirectories_come_in_rsyncs_order() {
    // rsync lists directories as `NAME/`: `a-b/` (and its contents) before `a/`.
    let src = dir(
        b"",
        vec![
            dir(b"a", vec![file(b"x", 1, 1)]),
            dir(b"a-b", vec![file(b"y", 1, 1)]),
            file(b"a-c", 1, 1),
        ],
    );
    let s = build::listing(src);
    let p = plan(&s, &Listing::default(), &opts());
    let order: Vec<String> = p
        .groups
        .iter()
        .map(|g| String::from_utf8_lossy(&s.path(g.src)).into_owned())
        .collect();
    assert_eq!(order, vec!["", "a-b", "a"]);
}

/// `-ii`: every entry that needs nothing (not a directory: its line opens its group) gets an
/// `Unchanged` action with its slot in name order among the others, and every directory group
/// is kept; what is done and counted stays the same.
#[test]
fn itemize_unchanged_gives_entries_that_need_nothing_their_slots() {
    let tree = |b_size| {
        dir(
            b"",
            vec![
                file(b"a", 3, 100),
                file(b"b", b_size, 100),
                dir(b"d", vec![file(b"x", 1, 100)]),
                fifo(b"f"),
                symlink(b"l", b"a"),
            ],
        )
    };
    let (s, d) = (build::listing(tree(4)), build::listing(tree(3)));
    let off = plan(&s, &d, &opts());
    let on = plan(
        &s,
        &d,
        &PlanOptions {
            itemize_unchanged: true,
            ..opts()
        },
    );
    let ops = |p: &Plan, g: usize| -> Vec<(Op, String, u32)> {
        p.actions_of(g)
            .iter()
            .map(|a| {
                let path = String::from_utf8_lossy(&s.path(a.src)).into_owned();
                (a.op, path, a.slot)
            })
            .collect()
    };
    assert_eq!(
        off.groups.len(),
        1,
        "without the option the unchanged d is pruned"
    );
    assert_eq!(ops(&off, 0), vec![(Op::Copy, "b".to_string(), 1)]);
    assert_eq!(
        on.groups.len(),
        2,
        "with it every directory keeps its group"
    );
    let u = |p: &str, slot| (Op::Unchanged, p.to_string(), slot);
    assert_eq!(
        ops(&on, 0),
        vec![
            u("a", 1),
            (Op::Copy, "b".to_string(), 2),
            u("f", 3),
            u("l", 4)
        ]
    );
    assert_eq!(
        on.groups[1].slot, 5,
        "d's own line comes after its parent's entries"
    );
    assert_eq!(ops(&on, 1), vec![u("d/x", 6)]);
    assert_eq!(on.counts, off.counts);
    assert!(
        on.actions
            .iter()
            .all(|a| a.change.is_empty() || a.op == Op::Copy)
    );
}
