//! Benchmark harness: `opsync sync` against `rsync -a --delete` (and `cp -a` for first copies)
//! on generated workloads; the README's section "Benchmarks" gives the method and the results.
//!
//! ```text
//! cargo build --release -p ops -p benches && target/release/benches --scale small
//! target/release/benches --only m --mem-files 1000000,4000000
//! ```
//!
//! Two internal modes run as children of the harness: `benches create-floor SRC DST` (the
//! creation floor of workload 1) and `benches busy` (a busy loop for workload 5's second half).
//!
//! A command-line harness: it prints its tables and may unwrap, so the workspace's print and
//! unwrap lints are allowed for the whole crate.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod area;
mod chart;
mod measure;
mod remote;
mod report;
mod trees;
mod workloads;

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::{Parser, ValueEnum};

/// Sizes of the workloads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Scale {
    /// About a minute: a smoke test of the harness, not a measurement.
    Small,
    /// A fifth of the real sizes.
    Medium,
    /// The sizes of issue 3: 100,000 files, 8+2 files of 256 MiB, 20,000 directories.
    Large,
}

/// Sizes derived from a [`Scale`].
#[derive(Debug, Clone, Copy)]
pub struct Sizes {
    pub files: usize,
    pub dirs: usize,
    pub big: trees::BigFiles,
    pub deep_dirs: usize,
    pub rounds: usize,
    pub big_rounds: usize,
}

impl Scale {
    fn sizes(self, rounds: Option<usize>) -> Sizes {
        let (files, dirs, size, deep_dirs, r, br) = match self {
            Scale::Small => (2_000, 20, 4 << 20, 1_000, 3, 2),
            Scale::Medium => (20_000, 200, 32 << 20, 5_000, 3, 3),
            Scale::Large => (100_000, 1_000, 256 << 20, 20_000, 5, 3),
        };
        Sizes {
            files,
            dirs,
            big: trees::BigFiles { in_place: 8, size },
            deep_dirs,
            rounds: rounds.unwrap_or(r),
            big_rounds: rounds.unwrap_or(br).min(br.max(1)),
        }
    }
}

#[derive(Debug, Parser)]
#[command(about = "Benchmark opsync sync against rsync -a --delete and cp -a")]
struct Args {
    /// Workload sizes
    #[arg(long, value_enum, default_value = "small")]
    scale: Scale,
    /// Timed rounds per tool [default: 3, 5 for large]
    #[arg(long)]
    rounds: Option<usize>,
    /// Only these workloads (1-7, v for verify, m for memory, r for the remote ones over ssh,
    /// which run only when named); repeatable
    #[arg(long = "only", value_name = "W")]
    only: Vec<String>,
    /// Where the scratch filesystems are made
    #[arg(long, default_value = "target/bench-work")]
    work: PathBuf,
    /// Where the Markdown table and the PNG chart go
    #[arg(long, default_value = "target/bench-report")]
    out: PathBuf,
    /// Files of the memory workload `m` (empty files, 1,000 per directory); comma-separated
    #[arg(long, value_delimiter = ',', default_value = "1000000")]
    mem_files: Vec<usize>,
    /// The opsync binary
    #[arg(long, default_value = "target/release/opsync")]
    opsync: PathBuf,
}

fn main() -> Result<()> {
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    match argv.get(1).and_then(|a| a.to_str()) {
        Some("create-floor") if argv.len() == 4 => {
            measure::create_floor(argv[2].as_ref(), argv[3].as_ref())?;
            return Ok(());
        }
        Some("busy") => measure::busy(),
        _ => {}
    }
    let args = Args::parse();
    if !args.opsync.is_file() {
        bail!(
            "{} not found: build it first with `cargo build --release -p ops`",
            args.opsync.display()
        );
    }
    for tool in ["rsync", "cp", "strace", "/usr/bin/time"] {
        which(tool).with_context(|| {
            format!("{tool} is needed: install it (Debian packages rsync, coreutils, strace, time)")
        })?;
    }
    let opsync = std::fs::canonicalize(&args.opsync)?;
    std::fs::create_dir_all(&args.work)?;
    std::fs::create_dir_all(&args.out)?;
    let work = std::fs::canonicalize(&args.work)?;
    let sizes = args.scale.sizes(args.rounds);
    let started = std::time::Instant::now();
    let mut bench = workloads::Bench {
        opsync: opsync.display().to_string(),
        me: std::env::current_exe()?.display().to_string(),
        mem_files: args.mem_files,
        command: argv
            .iter()
            .map(|a| a.to_string_lossy())
            .collect::<Vec<_>>()
            .join(" "),
        syscalls: Vec::new(),
        work,
        sizes,
        only: args.only,
        rows: Vec::new(),
        notes: Vec::new(),
        load_before: report::loadavg(),
    };
    bench.run_all()?;
    let text = report::markdown(&bench, args.scale, started.elapsed().as_secs_f64());
    println!("{text}");
    std::fs::write(args.out.join("results.md"), &text)?;
    chart::draw(&bench.rows, &args.out.join("results.png"))?;
    eprintln!(
        "benches: wrote {} and {}",
        args.out.join("results.md").display(),
        args.out.join("results.png").display()
    );
    Ok(())
}

fn which(tool: &str) -> Result<()> {
    if tool.starts_with('/') {
        if std::path::Path::new(tool).is_file() {
            return Ok(());
        }
        bail!("{tool} is missing");
    }
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
        .unwrap_or(false);
    if found {
        Ok(())
    } else {
        bail!("{tool} is not on PATH")
    }
}
