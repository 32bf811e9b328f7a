//! Options of a sync run, built by the caller (the `opsync` CLI or the scheduler) from
//! [`Options::default`] with one setter per field:
//!
//! ```
//! use sync_engine::{MaxDelete, Options};
//! let opts = Options::default().checksum(true).max_delete(Some(MaxDelete::Percent(5.0)));
//! assert!(opts.checksum && opts.delete);
//! ```
//!
//! The structs are `#[non_exhaustive]`: new options come with a default, so code written
//! against an older engine keeps compiling.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

/// Limit on deletions (`--max-delete`): `N` or `P%` (see [`MaxDelete::parse`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum MaxDelete {
    /// At most this many entries.
    Count(u64),
    /// At most this percentage of the entries in DST (root excluded).
    Percent(f64),
}

impl MaxDelete {
    /// Parses `N` or `P%`.
    pub fn parse(s: &str) -> Option<MaxDelete> {
        let s = s.trim();
        if let Some(p) = s.strip_suffix('%') {
            let v: f64 = p.trim().parse().ok()?;
            (v.is_finite() && (0.0..=100.0).contains(&v)).then_some(MaxDelete::Percent(v))
        } else {
            s.parse().ok().map(MaxDelete::Count)
        }
    }

    /// The message for a value [`MaxDelete::parse`] refuses.
    pub const EXPECTED: &'static str =
        "write a count like 500 or a percentage of DST's entries like 5%";

    /// The number of deletions allowed when DST holds `dst_entries` entries.
    pub fn limit(self, dst_entries: u64) -> u64 {
        match self {
            MaxDelete::Count(n) => n,
            MaxDelete::Percent(p) => ((dst_entries as f64) * p / 100.0).floor() as u64,
        }
    }
}

/// Whether a file that exists in DST and differs is rebuilt from its old version
/// (`--delta`): from a reflinked clone of the old file, writing only the 4 KiB blocks that
/// differ, checked with BLAKE3 before the rename.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "kebab-case"))]
pub enum Delta {
    /// A delta for files of at least 4 MiB where DST's filesystem can reflink the old file
    /// (XFS, Btrfs); a whole copy otherwise.
    #[default]
    Auto,
    /// A delta for every changed file that exists in DST, copying the old file's data where
    /// there is no reflink (writes more than a whole copy on ext4: for measurements).
    Always,
    /// Always a whole copy.
    Never,
}

impl Delta {
    /// Parses `auto`, `always` or `never`.
    pub fn parse(s: &str) -> Option<Delta> {
        match s {
            "auto" => Some(Delta::Auto),
            "always" => Some(Delta::Always),
            "never" => Some(Delta::Never),
            _ => None,
        }
    }
}

impl std::str::FromStr for MaxDelete {
    type Err = String;
    fn from_str(s: &str) -> Result<MaxDelete, String> {
        MaxDelete::parse(s).ok_or_else(|| format!("invalid max-delete {s:?}: {}", Self::EXPECTED))
    }
}

impl std::fmt::Display for MaxDelete {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MaxDelete::Count(n) => write!(f, "{n}"),
            MaxDelete::Percent(p) => write!(f, "{p}%"),
        }
    }
}

#[cfg(feature = "serde")]
impl<'de> serde::Deserialize<'de> for MaxDelete {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<MaxDelete, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Generates a chainable setter per field: `opts.field(value)`.
macro_rules! setters {
    ($t:ty { $($name:ident: $ty:ty),* $(,)? }) => {
        impl $t {
            $(
                #[doc = concat!("Sets [`", stringify!($t), "::", stringify!($name), "`].")]
                #[must_use]
                pub fn $name(mut self, value: $ty) -> Self {
                    self.$name = value;
                    self
                }
            )*
        }
    };
}
pub(crate) use setters;

/// How the sync runs.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Options {
    /// Remove entries in DST that are not in SRC (rsync `--delete`). Default: true.
    pub delete: bool,
    /// Compare contents (XXH3-128) instead of size and mtime (rsync `-c`).
    pub checksum: bool,
    /// Plan and report, change nothing (rsync `-n`).
    pub dry_run: bool,
    /// Stop deleting past this limit (rsync `--max-delete`).
    pub max_delete: Option<MaxDelete>,
    /// With `max_delete`: when the extraneous entries queued for deletion (with everything in
    /// the directories among them) are more than the limit leaves, delete none of them instead
    /// of deleting up to the limit (rsync deletes up to it). Deletions that make room for a
    /// type change still take their share first.
    pub max_delete_all_or_nothing: bool,
    /// Mtimes within this many seconds count as equal (rsync `--modify-window`); 0 compares
    /// nanoseconds where both sides keep them.
    pub modify_window: u32,
    /// Filter rules in rsync's syntax, in order (`- PAT`, `+ PAT`, `merge FILE`,
    /// `dir-merge FILE`, `P PAT`, ...; see the README), applied before `excludes`.
    pub filters: Vec<String>,
    /// rsync-style exclude patterns (each as the rule `- PATTERN`), after `filters`.
    pub excludes: Vec<String>,
    /// Excluded entries are deleted from DST too (rsync `--delete-excluded`): the rules without
    /// a side apply to SRC only.
    pub delete_excluded: bool,
    /// Worker threads; `None` uses all cores.
    pub threads: Option<usize>,
    /// Let an empty SRC empty a non-empty DST.
    pub allow_empty_source: bool,
    /// Preserve owners; `None`: only when running as root (rsync's `-o`).
    pub preserve_owner: Option<bool>,
    /// Delta transfer of changed files (`--delta`).
    pub delta: Delta,
    /// Write the changed blocks of files that exist in DST into them in place instead of into a
    /// temporary file (rsync `--inplace`): fewer bytes written, but a name holds a mix of old
    /// and new content while it is updated (for a copy nobody reads meanwhile).
    pub inplace: bool,
    /// Files (paths relative to SRC) compared by content whatever their size and mtime say,
    /// for example the ones a verification found different.
    pub recheck: Vec<Vec<u8>>,
    /// Read every file written back and compare it with SRC before it replaces the old version
    /// (deltas and in-place updates check as they write; this adds it for whole copies).
    pub verify_written: bool,
    /// Keep files that are hard links of each other in SRC hard links of each other in DST
    /// (rsync `-H`).
    pub hard_links: bool,
    /// Mirror extended attributes (rsync `-X`): as root every namespace but `system.*`,
    /// otherwise `user.*`.
    pub xattrs: bool,
    /// Mirror POSIX ACLs (rsync `-A`).
    pub acls: bool,
    /// Do not cross filesystem boundaries (rsync `-x`): 1 copies a directory on another
    /// filesystem as an empty directory and leaves DST's contents of such directories alone;
    /// 2 (`-xx`) leaves SRC's out entirely.
    pub one_file_system: u8,
    /// Follow symlinks in DST's path that are owned by users other than root and the caller
    /// (rsync `--insecure-links`; refused by default, as rsync 3.5 does).
    pub insecure_links: bool,
    /// Write every copied file to the device before its rename and every changed directory
    /// after its entries changed (rsync `--fsync`).
    pub fsync: bool,
    /// Report the entries that need nothing too (rsync's `-ii`), in rsync's order among the
    /// others: an [`crate::Item`] with [`crate::Op::Unchanged`] and rsync's field of an
    /// unchanged entry (`.f          name`, `.d          dir/`; `hf          name` for a hard
    /// link that already is one). Changes nothing of what is done or counted.
    pub itemize_unchanged: bool,
    /// Set from outside (a signal handler) to stop the run between files.
    pub cancel: Option<Arc<AtomicBool>>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            delete: true,
            checksum: false,
            dry_run: false,
            max_delete: None,
            max_delete_all_or_nothing: false,
            modify_window: 0,
            filters: Vec::new(),
            excludes: Vec::new(),
            delete_excluded: false,
            threads: None,
            allow_empty_source: false,
            preserve_owner: None,
            delta: Delta::Auto,
            inplace: false,
            recheck: Vec::new(),
            verify_written: false,
            hard_links: false,
            xattrs: false,
            acls: false,
            one_file_system: 0,
            fsync: false,
            itemize_unchanged: false,
            insecure_links: false,
            cancel: None,
        }
    }
}

setters!(Options {
    delete: bool,
    checksum: bool,
    dry_run: bool,
    max_delete: Option<MaxDelete>,
    max_delete_all_or_nothing: bool,
    modify_window: u32,
    filters: Vec<String>,
    excludes: Vec<String>,
    delete_excluded: bool,
    threads: Option<usize>,
    allow_empty_source: bool,
    preserve_owner: Option<bool>,
    delta: Delta,
    inplace: bool,
    recheck: Vec<Vec<u8>>,
    verify_written: bool,
    hard_links: bool,
    xattrs: bool,
    acls: bool,
    one_file_system: u8,
    fsync: bool,
    itemize_unchanged: bool,
    insecure_links: bool,
    cancel: Option<Arc<AtomicBool>>,
});

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_delete_parses_counts_and_percentages() {
        assert_eq!(MaxDelete::parse("500"), Some(MaxDelete::Count(500)));
        assert_eq!(MaxDelete::parse("5%"), Some(MaxDelete::Percent(5.0)));
        assert_eq!(MaxDelete::parse("150%"), None);
        assert_eq!(MaxDelete::parse("-1"), None);
        assert_eq!(MaxDelete::parse("x"), None);
        assert_eq!(MaxDelete::Percent(10.0).limit(1234), 123);
    }

    #[test]
    fn delta_parses_its_three_modes() {
        assert_eq!(Delta::parse("auto"), Some(Delta::Auto));
        assert_eq!(Delta::parse("always"), Some(Delta::Always));
        assert_eq!(Delta::parse("never"), Some(Delta::Never));
        assert_eq!(Delta::parse("sometimes"), None);
    }
}
