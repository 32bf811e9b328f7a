//! Errors. [`Error`] stops a run before anything in DST is touched (or at the root); a
//! [`FileError`] concerns one entry: it is reported and the run goes on.

use std::fmt;
use std::io;
use std::path::PathBuf;

/// A problem that stops the run.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("source {path} does not exist: check the path (nothing was changed)")]
    SourceMissing { path: PathBuf },
    #[error("source {path} is not a directory: give a directory to mirror (nothing was changed)")]
    SourceNotDir { path: PathBuf },
    #[error("destination {path} does not exist: check the path")]
    DestMissing { path: PathBuf },
    #[error(
        "destination {path} exists and is not a directory: remove it or choose another destination"
    )]
    DestNotDir { path: PathBuf },
    #[error("the parent of destination {path} does not exist: create it first")]
    DestParentMissing { path: PathBuf },
    #[error(
        "destination {dst} is inside source {src} (or the same): choose a destination outside the source"
    )]
    DestInsideSource { src: PathBuf, dst: PathBuf },
    #[error(
        "source {src} is inside destination {dst}: mirroring would delete the source; choose other paths"
    )]
    SourceInsideDest { src: PathBuf, dst: PathBuf },
    #[error(
        "refusing to follow the symlink {link} in the path of destination {dst}: it is owned by uid {uid}, neither root nor you; point the destination at the real directory, or pass --insecure-links if every part of the path is trusted"
    )]
    UntrustedSymlink {
        dst: PathBuf,
        link: PathBuf,
        uid: u32,
    },
    #[error(
        "destination {dst} is being written by another opsync sync{}: wait for it to finish, then run again", holder.map(|p| format!(" (pid {p})")).unwrap_or_default()
    )]
    Locked { dst: PathBuf, holder: Option<u32> },
    #[error(
        "refusing to sync: source {src} is empty but destination {dst} is not (an unmounted volume looks like this); pass --allow-empty-source to mirror the empty source"
    )]
    EmptySource { src: PathBuf, dst: PathBuf },
    #[error("invalid exclude pattern {pattern:?}: {message}")]
    Pattern { pattern: String, message: String },
    #[error("cannot {op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("cannot start worker threads: {0}")]
    Threads(String),
}

/// Which tree a [`FileError`] concerns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Source,
    Dest,
}

/// A failure on one entry; the run continues.
#[derive(Debug)]
pub struct FileError {
    /// What was being done, for example `"copy"`, `"read directory"`, `"delete"`.
    pub op: &'static str,
    /// Path relative to the tree root, as bytes.
    pub path: Vec<u8>,
    pub side: Side,
    pub source: io::Error,
}

impl fmt::Display for FileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let side = match self.side {
            Side::Source => "source",
            Side::Dest => "destination",
        };
        let path = if self.path.is_empty() {
            b"." as &[u8]
        } else {
            &self.path
        };
        write!(
            f,
            "cannot {} {} {}: {}",
            self.op,
            side,
            crate::itemize::escape_name(path),
            self.source
        )
    }
}

impl std::error::Error for FileError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}
