//! BLAKE3 as used by `--checksum`, `verify` and the delta check: small files (one call each)
//! and a large buffer, plus the delta's block comparison.
//!
//! Benchmark code: unwraps and prints are allowed crate-wide.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use sync_engine::delta::differing_runs;

fn bench(c: &mut Criterion) {
    let mut rng = fastrand_like(42);
    let small: Vec<Vec<u8>> = (0..1000).map(|i| rng((i * 37) % 8193)).collect();
    let total: usize = small.iter().map(Vec::len).sum();
    let mut g = c.benchmark_group("blake3");
    g.throughput(Throughput::Bytes(total as u64));
    g.bench_function("1000 files of 0-8 KiB", |b| {
        b.iter(|| {
            for f in &small {
                black_box(blake3::hash(f));
            }
        })
    });
    let big = rng(16 << 20);
    g.throughput(Throughput::Bytes(big.len() as u64));
    g.bench_function("16 MiB buffer", |b| {
        b.iter(|| blake3::hash(black_box(&big)))
    });
    g.finish();

    let mut other = big.clone();
    for k in (0..other.len()).step_by(400 * 1024) {
        other[k] ^= 1;
    }
    let mut g = c.benchmark_group("delta");
    g.throughput(Throughput::Bytes(big.len() as u64));
    g.bench_function("compare 16 MiB in 4 KiB blocks", |b| {
        b.iter(|| differing_runs(black_box(&big), black_box(&other)))
    });
    g.finish();
}

/// Deterministic bytes without another dependency: an xorshift generator.
fn fastrand_like(seed: u64) -> impl FnMut(usize) -> Vec<u8> {
    let mut s = seed;
    move |len| {
        (0..len)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                s as u8
            })
            .collect()
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
