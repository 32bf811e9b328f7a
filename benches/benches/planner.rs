//! The planner on synthetic 100,000-entry listings (1,000 directories of 99 files): identical
//! trees (the no-change run), 1% of files changed, and an empty DST (the first copy).
//!
//! Benchmark code: unwraps and prints are allowed crate-wide.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use sync_engine::listing::{Kind, Listing, Meta, Time};
use sync_engine::plan::{PlanOptions, plan};

fn meta(kind: Kind, size: u64, sec: i64) -> Meta {
    Meta {
        kind,
        perm: if kind == Kind::Dir { 0o755 } else { 0o644 },
        uid: 1000,
        gid: 1000,
        size,
        mtime: Time { sec, nsec: 0 },
        racy: false,
        protected: false,
        mount: false,
    }
}

/// 1,000 directories of 99 files; every `changed_every`-th file gets another mtime.
fn listing(changed_every: Option<usize>) -> Listing {
    let mut l = Listing::with_root(meta(Kind::Dir, 0, 0));
    let mut n = 0usize;
    for d in 0..1000 {
        let dir = l.push(
            format!("d{d:04}").as_bytes(),
            None,
            meta(Kind::Dir, 0, 1),
            0,
        );
        for f in 0..99 {
            n += 1;
            let sec = match changed_every {
                Some(k) if n.is_multiple_of(k) => 2,
                _ => 1,
            };
            l.push(
                format!("f{f:03}").as_bytes(),
                None,
                meta(Kind::File, 4096, sec),
                dir,
            );
        }
        l.close(dir);
    }
    l.close(0);
    l
}

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

fn bench(c: &mut Criterion) {
    let src = listing(None);
    let same = listing(None);
    let changed = listing(Some(100));
    let empty = Listing::default();
    let o = opts();
    let mut g = c.benchmark_group("plan 100k entries");
    g.sample_size(20);
    g.bench_function("no change", |b| b.iter(|| plan(black_box(&src), &same, &o)));
    g.bench_function("1% changed", |b| {
        b.iter(|| plan(black_box(&src), &changed, &o))
    });
    g.bench_function("empty DST", |b| {
        b.iter(|| plan(black_box(&src), &empty, &o))
    });
    g.finish();
    c.bench_function("build a 100k-entry listing", |b| b.iter(|| listing(None)));
}

criterion_group!(benches, bench);
criterion_main!(benches);
