//! The options of the two commands around the engine, `opsync sync` and `opsync verify`.

use std::path::PathBuf;

use clap::{Args, ValueEnum};

pub(super) const VERIFY_ABOUT: &str = "\
Compare SRC and DST: every regular file is hashed with BLAKE3 on both sides (in parallel), and \
type, size, content, permissions, owner, group, mtime, symlink targets and device numbers are \
compared. Each difference is printed as one line (`PATH: content differs`, `PATH: mode 0644 != \
0600`, `PATH: missing in DST`, ...). Exit 0 when the trees are identical, 8 when they differ.";

/// Options of `opsync verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The tree that should be mirrored
    pub src: PathBuf,
    /// The mirror
    pub dst: PathBuf,
    /// Print one JSON object per difference and a final summary
    #[arg(long)]
    pub json: bool,
    /// Leave out entries matching PATTERN (as in sync; repeatable)
    #[arg(long, value_name = "PATTERN")]
    pub exclude: Vec<String>,
    /// Treat mtimes as equal when they differ by at most N seconds
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub modify_window: u32,
    /// Worker threads [default: all cores]
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
}

pub(super) const SYNC_EXAMPLES: &str = "\
Examples:
  opsync sync data dev-data                  the nightly mirror (was: rsync -a --delete)
  opsync sync -n -i data dev-data            what would change, in rsync's itemize format
  opsync sync --max-delete=5% data dev-data  stop deleting after 5% of dev-data's entries
  opsync sync --json data dev-data           JSON lines for scripts, with a final summary
  opsync sync data dev-host:/srv/dev-data    push to another host over ssh
  opsync sync -e 'ssh -p 2222' prod:/srv/data dev-data   pull from another host

Exit codes: 0 ok, 1 bad options or paths, 20 signal, 23 some entries failed, 24 source files \
vanished, 25 --max-delete reached, 26 empty source refused, 8 --verify found differences; \
remote: 12 protocol data stream error, 14 the remote shell could not be started, 255 ssh failed.";

pub(super) const SYNC_ABOUT: &str = "\
Mirror SRC into DST: afterwards DST holds exactly what `rsync -a --delete SRC/ DST/` would give \
(contents, permissions, owner and group, nanosecond mtimes, symlinks, devices, FIFOs, sockets).

Trailing slashes do not matter: the contents of SRC always go into DST, never SRC itself into \
DST/SRC. DST is created if missing; its parent must exist. Each file is written to a temporary \
file next to it and renamed into place, so an interrupted run never leaves a half-written file \
under a real name and the next run finishes the job.

Safety beyond rsync: an empty SRC is refused while DST is not empty (an unmounted volume looks \
like that), any error reading SRC disables deletions for the run, and --max-delete caps them.

With no SRC and DST, the configured [sync] source and target are used (default ./data and \
./dev-data).";

/// Options of `opsync sync`.
#[derive(Debug, Args)]
pub struct SyncArgs {
    /// Source directory (its contents are mirrored), or [USER@]HOST:SRC on another host
    #[arg(value_name = "SRC")]
    pub src: Option<PathBuf>,

    /// Destination directory (created if missing; its parent must exist), or [USER@]HOST:DST
    #[arg(value_name = "DST")]
    pub dst: Option<PathBuf>,

    /// The remote shell for HOST:PATH, its whole command line (for example "ssh -p 2222 -i
    /// key"), as rsync's -e [default: [sync] rsh, else ssh]
    #[arg(short = 'e', long, value_name = "COMMAND", help_heading = "Remote")]
    pub rsh: Option<String>,

    /// The opsync program on the remote host, as rsync's --rsync-path [default: [sync]
    /// remote-opsync, else opsync]
    #[arg(long, value_name = "PATH", help_heading = "Remote")]
    pub remote_opsync: Option<String>,

    /// Compress the data stream with zstd (remote paths)
    #[arg(short = 'z', long, help_heading = "Remote")]
    pub compress: bool,

    /// Limit the bandwidth on the connection to RATE (KiB/s, or with a suffix K, M, G, KB, MB,
    /// GB as rsync; 0 for no limit)
    #[arg(long, value_name = "RATE", help_heading = "Remote")]
    pub bwlimit: Option<String>,

    /// Accepted for rsync habits; opsync always archives (-rlptgoD)
    #[arg(short = 'a', long)]
    pub archive: bool,

    /// Accepted for rsync habits; deleting extraneous files is the default
    #[arg(long, overrides_with = "no_delete")]
    pub delete: bool,

    /// Keep files in DST that are not in SRC
    #[arg(long, help_heading = "Safety")]
    pub no_delete: bool,

    /// Show what would be done (with -i: exactly what a real run changes), change nothing
    #[arg(short = 'n', long, help_heading = "Safety")]
    pub dry_run: bool,

    /// Print a change summary for each item, in rsync's format (`>f.st......`)
    #[arg(short = 'i', long, help_heading = "Output")]
    pub itemize_changes: bool,

    /// Print the names of changed items (`deleting NAME` for deletions)
    #[arg(short = 'v', long, action = clap::ArgAction::Count, help_heading = "Output")]
    pub verbose: u8,

    /// Print counts of files, transfers, deletions, bytes and time at the end
    #[arg(long, help_heading = "Output")]
    pub stats: bool,

    /// Show a progress bar with rate and ETA on stderr (only when stderr is a terminal)
    #[arg(long, help_heading = "Output")]
    pub progress: bool,

    /// Print one JSON object per event and a final summary on stdout
    #[arg(long, help_heading = "Output")]
    pub json: bool,

    /// Compare file contents (XXH3-128 hash) instead of size and mtime
    #[arg(short = 'c', long, help_heading = "Comparison")]
    pub checksum: bool,

    /// Stop deleting after N entries, or after P% of DST's entries (for example 500 or 5%)
    #[arg(long, value_name = "N|P%", help_heading = "Safety")]
    pub max_delete: Option<String>,

    /// Treat mtimes as equal when they differ by at most N seconds [default: 0, which compares
    /// nanoseconds where both sides keep them; rsync compares whole seconds]
    #[arg(
        long,
        value_name = "N",
        default_value_t = 0,
        hide_default_value = true,
        help_heading = "Comparison"
    )]
    pub modify_window: u32,

    /// Exclude entries matching PATTERN (rsync-style glob; repeatable); excluded entries in DST
    /// are neither copied nor deleted
    #[arg(long, value_name = "PATTERN", help_heading = "Comparison")]
    pub exclude: Vec<String>,

    /// Allow an empty SRC to empty a non-empty DST (refused by default, exit 26)
    #[arg(long, help_heading = "Safety")]
    pub allow_empty_source: bool,

    /// Worker threads [default: all cores]
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,

    /// Rebuild changed files from their old version in DST, writing only the differing 4 KiB
    /// blocks: auto (files of 4 MiB or more, where DST's filesystem can reflink), always, never
    #[arg(long, value_name = "WHEN", value_enum, default_value_t = DeltaMode::Auto)]
    pub delta: DeltaMode,

    /// Write only the changed blocks of a changed file into DST's existing file instead of
    /// into a new file renamed over it (rsync's --inplace): far fewer bytes written, but the
    /// file holds a mix of old and new content until it is done; for a copy nobody reads
    /// meanwhile. Files with other hard links or setuid/setgid bits still get the atomic copy
    #[arg(long)]
    pub inplace: bool,

    /// Compare the files listed in FILE (paths relative to SRC, one per line; NUL-separated
    /// with --from0) by content, whatever their size and mtime say
    #[arg(long, value_name = "FILE", help_heading = "Comparison")]
    pub recheck_from: Option<PathBuf>,

    /// The names in --recheck-from are separated by NUL bytes, not newlines
    #[arg(long, short = '0', help_heading = "Comparison")]
    pub from0: bool,

    /// After the sync, verify: `all` (the default) compares both trees by content (BLAKE3) and
    /// attributes like `opsync verify`, copies the files that differ again by content and
    /// checks them once more; `written` reads back every file this run wrote and compares it
    /// with SRC before it replaces the old version (cost grows with the bytes written, not with
    /// the tree). Differences left: exit 8
    #[arg(
        long,
        value_name = "WHAT",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "all",
        value_enum,
        help_heading = "Safety"
    )]
    pub verify: Option<VerifyScope>,
}

/// `--delta`: when a changed file is rebuilt from its old version in DST.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DeltaMode {
    // Plain comments, not doc comments: clap would list them as help for each value.
    // Files of 4 MiB or more, where DST's filesystem can reflink.
    Auto,
    // Every changed file that exists in DST.
    Always,
    // Always a whole copy.
    Never,
}

impl From<DeltaMode> for sync_engine::Delta {
    fn from(d: DeltaMode) -> sync_engine::Delta {
        match d {
            DeltaMode::Auto => sync_engine::Delta::Auto,
            DeltaMode::Always => sync_engine::Delta::Always,
            DeltaMode::Never => sync_engine::Delta::Never,
        }
    }
}

/// What `opsync sync --verify` checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum VerifyScope {
    /// Both whole trees, after the sync
    All,
    /// Every file the run wrote, before it replaces the old version
    Written,
}
