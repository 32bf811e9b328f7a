//! # sync-engine
//!
//! The mirror engine of opsync: after [`sync`] returns, DST holds exactly what
//! `rsync -a --delete SRC/ DST/` gives (contents, the 12 permission bits, owner and group,
//! nanosecond mtimes, symlinks, devices, FIFOs and sockets), with per-file atomic writes and
//! safety rails rsync lacks.
//!
//! The phases are modules:
//! - [`scan`] lists and stats both trees in parallel (the only module that reads directories);
//! - [`plan`] is pure: two [`listing::Listing`]s and options in, a [`plan::Plan`] of actions with
//!   reasons out;
//! - [`apply`] executes the plan in parallel, relative to directory handles, never following a
//!   symlink in DST;
//! - [`report`] collects counts and errors; [`itemize`] renders rsync's change strings.
//!
//! Platform calls live in [`sys`]. The engine prints nothing: it reports events through the
//! [`Observer`] trait, and the `opsync` binary draws them.
//!
//! ```no_run
//! use sync_engine::{sync, Options, NoObserver};
//! let report = sync("data".as_ref(), "dev-data".as_ref(), &Options::default(), &NoObserver)?;
//! println!("{} files copied", report.files_copied);
//! # Ok::<(), sync_engine::Error>(())
//! ```

pub mod error;
pub mod itemize;
pub mod listing;
pub mod options;
pub mod plan;

pub use error::{Error, FileError, Side};
pub use options::{MaxDelete, Options};
