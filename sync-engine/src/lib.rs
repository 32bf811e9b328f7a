//! # sync-engine
//!
//! The mirror engine of opsync: after [`sync`] returns, DST holds exactly what
//! `rsync -a --delete SRC/ DST/` gives (contents, the 12 permission bits, owner and group,
//! nanosecond mtimes, symlinks, devices, FIFOs and sockets), with per-file atomic writes and
//! safety rails rsync lacks.
//!
//! The phases are private modules:
//! - `scan` lists and stats both trees in parallel (the only module that reads directories);
//! - `plan` is pure: two listings (`listing`: names in one arena, 48 bytes per entry) and
//!   options in, a plan of actions with reasons out;
//! - `apply` executes the plan in parallel, relative to directory handles, never following a
//!   symlink in DST; `delta` rebuilds changed files from their old version;
//! - `report` collects counts and errors; [`itemize`] renders rsync's change strings;
//! - [`verify`] compares two trees; [`racy`] is the rule for copies whose size and mtime cannot
//!   be trusted.
//!
//! Platform calls live in `sys`. The engine prints nothing: it reports events through the
//! [`Observer`] trait (for `sync` and `verify`), and the `opsync` binary draws them. With the
//! `serde` feature [`Report`] and [`verify::VerifyReport`] serialise, and [`MaxDelete`] and
//! [`Delta`] deserialise from their command-line spelling.
//!
//! ```no_run
//! use sync_engine::{sync, Options, NoObserver};
//! let report = sync("data".as_ref(), "dev-data".as_ref(), &Options::default(), &NoObserver)?;
//! println!("{} files copied", report.files_copied);
//! # Ok::<(), sync_engine::Error>(())
//! ```

// The public surface: `sync`, `verify`, their options, reports and events, and the rules that
// are part of the contract (`racy`, `itemize`). The phases stay private; `listing`, `plan` and
// `delta` are public only with the `internals` feature, for the fuzz targets and benchmarks.
mod apply;
#[cfg(feature = "internals")]
pub mod delta;
#[cfg(not(feature = "internals"))]
mod delta;
mod error;
mod filter;
pub mod itemize;
#[cfg(feature = "internals")]
pub mod listing;
#[cfg(not(feature = "internals"))]
mod listing;
mod options;
#[cfg(feature = "internals")]
pub mod plan;
#[cfg(not(feature = "internals"))]
mod plan;
pub mod racy;
#[cfg(feature = "remote")]
pub mod remote;
mod report;
mod run;
mod scan;
mod sys;
pub mod verify;
mod xattr;

pub use error::{Error, FileError, Side};
pub use filter::expand_stdin_merges;
pub use listing::{Kind, Time};
pub use options::{Delta, MaxDelete, Options};
pub use plan::{Op, PlanCounts};

#[cfg(test)]
mod regression_tests;

pub use report::{Item, NoObserver, Observer, Report, Status, Warning};

use std::path::Path;

/// Stack size of worker threads: planning and scanning recurse once per directory level, and
/// 4,000-byte paths can be 2,000 levels deep.
const WORKER_STACK: usize = 64 << 20;

/// Mirrors `src` into `dst`; see the crate documentation.
///
/// Returns `Err` only for problems found before DST is changed (bad paths, an empty source,
/// bad patterns) or when DST's root cannot be created; failures on single entries are reported
/// to `obs`, counted in the [`Report`], and the run goes on.
pub fn sync(src: &Path, dst: &Path, opts: &Options, obs: &dyn Observer) -> Result<Report, Error> {
    let filter = filter::Filter::new(
        &opts.filters,
        &opts.excludes,
        opts.delete_excluded,
        &read_merge_file,
    )?;
    let roots = run::Roots::open(src, dst, opts.insecure_links)?;
    worker_pool(opts.threads)?.install(|| run::Run::new(&filter, opts, obs).go(roots))
}

/// Reads a file named by a `merge` filter rule.
fn read_merge_file(path: &str) -> std::io::Result<String> {
    std::fs::read_to_string(path)
}

/// The most worker threads a run starts: each has a 64 MiB stack (virtual), and more threads
/// than this only contend for the same disks.
pub const MAX_THREADS: usize = 256;

/// The worker threads of one run (`threads`: `None` for one per core).
fn worker_pool(threads: Option<usize>) -> Result<rayon::ThreadPool, Error> {
    if let Some(n) = threads.filter(|&n| n > MAX_THREADS) {
        return Err(Error::Threads(format!(
            "{n} worker threads asked for: at most {MAX_THREADS}, write --threads={MAX_THREADS} or fewer"
        )));
    }
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads.unwrap_or(0))
        .stack_size(WORKER_STACK)
        .thread_name(|i| format!("opsync-worker-{i}"))
        .build()
        .map_err(|e| Error::Threads(e.to_string()))
}
