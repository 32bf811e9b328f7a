//! Command-line definitions (clap derive). Parsing only: validation that needs more than clap
//! (paths, limits, patterns) happens in the command modules, which turn these into engine options.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// opsync mirrors production data into the development copy (like `rsync -a --delete`, faster and
/// safer) and runs the server's operations: certificates, nginx, compose stacks and a scheduler.
#[derive(Debug, Parser)]
#[command(
    name = "opsync",
    version,
    propagate_version = true,
    max_term_width = 100
)]
pub struct Cli {
    /// Configuration file [default: ./opsync.toml if present]
    #[arg(long, global = true, value_name = "FILE", env = "OPSYNC_CONFIG")]
    pub config: Option<PathBuf>,

    /// Log format on stderr
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines
    Text,
    /// One JSON object per line
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Mirror SRC into DST: the result of `rsync -a --delete SRC/ DST/`
    #[command(long_about = SYNC_ABOUT)]
    Sync(SyncArgs),

    /// Compare two trees: contents (BLAKE3) and every attribute sync preserves
    #[command(long_about = VERIFY_ABOUT)]
    Verify(VerifyArgs),
}

const VERIFY_ABOUT: &str = "\
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

const SYNC_ABOUT: &str = "\
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
    /// Source directory (its contents are mirrored)
    #[arg(value_name = "SRC")]
    pub src: Option<PathBuf>,

    /// Destination directory (created if missing; its parent must exist)
    #[arg(value_name = "DST")]
    pub dst: Option<PathBuf>,

    /// Accepted for rsync habits; opsync always archives (-rlptgoD)
    #[arg(short = 'a', long)]
    pub archive: bool,

    /// Accepted for rsync habits; deleting extraneous files is the default
    #[arg(long, overrides_with = "no_delete")]
    pub delete: bool,

    /// Keep files in DST that are not in SRC
    #[arg(long)]
    pub no_delete: bool,

    /// Show what would be done, change nothing
    #[arg(short = 'n', long)]
    pub dry_run: bool,

    /// Print a change summary for each item, in rsync's format (`>f.st......`)
    #[arg(short = 'i', long)]
    pub itemize_changes: bool,

    /// Print the names of changed items (twice: also what is skipped)
    #[arg(short = 'v', long, action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// Print counts of files, transfers, deletions, bytes and time at the end
    #[arg(long)]
    pub stats: bool,

    /// Show a progress bar with rate and ETA on stderr (only when stderr is a terminal)
    #[arg(long)]
    pub progress: bool,

    /// Print one JSON object per event and a final summary on stdout
    #[arg(long)]
    pub json: bool,

    /// Compare file contents (BLAKE3) instead of size and mtime
    #[arg(short = 'c', long)]
    pub checksum: bool,

    /// Stop deleting after N entries, or after P% of DST's entries (for example 500 or 5%)
    #[arg(long, value_name = "N|P%")]
    pub max_delete: Option<String>,

    /// Treat mtimes as equal when they differ by at most N seconds (rsync's whole-second
    /// comparison is --modify-window=0 plus ignoring nanoseconds; opsync compares nanoseconds)
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub modify_window: u32,

    /// Exclude entries matching PATTERN (rsync-style glob; repeatable); excluded entries in DST
    /// are neither copied nor deleted
    #[arg(long, value_name = "PATTERN")]
    pub exclude: Vec<String>,

    /// Allow an empty SRC to empty a non-empty DST
    #[arg(long)]
    pub allow_empty_source: bool,

    /// Worker threads [default: all cores]
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,

    /// Rebuild changed files from their old version in DST, writing only the differing 4 KiB
    /// blocks: auto (files of 4 MiB or more, where DST's filesystem can reflink), always, never
    #[arg(long, value_name = "WHEN", default_value = "auto", value_parser = ["auto", "always", "never"])]
    pub delta: String,

    /// After the sync, compare both trees by content (BLAKE3) and attributes, like
    /// `opsync verify`; differences are printed and exit with 8
    #[arg(long)]
    pub verify: bool,
}

/// Parses the process arguments. On `--help`/`--version` prints and returns exit 0; on a usage
/// error prints clap's message and returns exit 1 (rsync's usage code).
pub fn parse() -> Result<Cli, ExitCode> {
    match Cli::try_parse() {
        Ok(cli) => Ok(cli),
        Err(e) => {
            let code = match e.kind() {
                clap::error::ErrorKind::DisplayHelp
                | clap::error::ErrorKind::DisplayVersion
                | clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => 0,
                _ => 1,
            };
            let _ = e.print();
            Err(ExitCode::from(code))
        }
    }
}
