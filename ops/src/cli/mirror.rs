//! The options of the two commands around the engine, `opsync sync` and `opsync verify`.

use std::path::PathBuf;

use clap::{Args, ValueEnum};

pub(super) const VERIFY_ABOUT: &str = "\
Compare SRC and DST: every regular file is hashed with BLAKE3 on both sides (in parallel), and \
type, size, content, permissions, owner, group, mtime, symlink targets and device numbers are \
compared. Each difference is printed as one line (`PATH: content differs`, `PATH: mode 0644 != \
0600`, `PATH: missing in DST`, ...). Exit 0 when the trees are identical, 8 when they differ.

With SRC or DST on another host (`[USER@]HOST:PATH`, reached through -e as `opsync sync` does), \
the comparison is a dry run with contents compared over the connection (files of the same size \
hashed with XXH3-128 on both ends), and each difference names its kind without the values \
(`PATH: content differs`, `PATH: mtime differs`).";

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
    /// The remote shell when SRC or DST is HOST:PATH (the comparison is then a dry run with
    /// contents compared over it), its whole command line [default: ssh]
    #[arg(short = 'e', long, value_name = "COMMAND", help_heading = "Remote")]
    pub rsh: Option<String>,
    /// The opsync program on the remote host [default: opsync]
    #[arg(long, value_name = "PATH", help_heading = "Remote")]
    pub remote_opsync: Option<String>,
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

    /// The configured rails (exclude, max-delete) of a hand-run sync.
    #[command(flatten)]
    pub rails: super::RailsArgs,

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

    /// Accepted for rsync habits (-r -l -p -t -g -o -D, --devices, --specials are part of -a,
    /// which opsync always does; owners are kept when running as root, as rsync does)
    #[arg(short = 'r', long = "recursive", hide = true)]
    pub recursive: bool,
    #[arg(short = 'l', long = "links", hide = true)]
    pub links: bool,
    #[arg(short = 'p', long = "perms", hide = true)]
    pub perms: bool,
    #[arg(short = 't', long = "times", hide = true)]
    pub times: bool,
    #[arg(short = 'g', long = "group", hide = true)]
    pub group: bool,
    #[arg(short = 'o', long = "owner", hide = true)]
    pub owner: bool,
    #[arg(short = 'D', hide = true)]
    pub devices_specials: bool,
    #[arg(long = "devices", hide = true)]
    pub devices: bool,
    #[arg(long = "specials", hide = true)]
    pub specials: bool,
    #[arg(long = "numeric-ids", hide = true)]
    pub numeric_ids: bool,
    /// rsync's --super: what root does anyway (owners, devices)
    #[arg(long = "super", hide = true)]
    pub super_user: bool,

    /// Accepted for rsync habits; deleting extraneous files is the default (--del and
    /// --delete-before/-during/-after/-delay are accepted too and give the same result)
    #[arg(
        long,
        overrides_with = "no_delete",
        aliases = ["del", "delete-before", "delete-during", "delete-after", "delete-delay"]
    )]
    pub delete: bool,

    /// Also delete DST's entries that the filter rules exclude (rules given for one side
    /// still apply: `P PAT` protects)
    #[arg(long, help_heading = "Filter")]
    pub delete_excluded: bool,

    /// Keep files that are hard links of each other in SRC hard links in DST (as rsync -aH)
    #[arg(short = 'H', long)]
    pub hard_links: bool,

    /// Mirror POSIX ACLs (as rsync -aA)
    #[arg(short = 'A', long)]
    pub acls: bool,

    /// Mirror extended attributes (as rsync -aX: as root every namespace but system.*,
    /// otherwise user.*)
    #[arg(short = 'X', long)]
    pub xattrs: bool,

    /// Do not cross filesystem boundaries: a directory on another filesystem is mirrored as an
    /// empty directory; -xx leaves it out
    #[arg(short = 'x', long, action = clap::ArgAction::Count)]
    pub one_file_system: u8,

    /// Write every copied file to the device before its rename and every changed directory
    /// after its entries changed (as rsync --fsync)
    #[arg(long, help_heading = "Safety")]
    pub fsync: bool,

    /// Follow symlinks in DST's path that belong to users other than root and you (refused by
    /// default, exit 1, as rsync 3.5 does)
    #[arg(long, help_heading = "Safety")]
    pub insecure_links: bool,

    /// Keep files in DST that are not in SRC
    #[arg(long, help_heading = "Safety")]
    pub no_delete: bool,

    /// Show what would be done (with -i: exactly what a real run changes), change nothing
    #[arg(short = 'n', long, help_heading = "Safety")]
    pub dry_run: bool,

    /// Print a change summary for each item, in rsync's format (`>f.st......`)
    #[arg(short = 'i', long, action = clap::ArgAction::Count, help_heading = "Output")]
    pub itemize_changes: u8,

    /// Print the names of changed items (`deleting NAME` for deletions)
    #[arg(short = 'v', long, action = clap::ArgAction::Count, help_heading = "Output")]
    pub verbose: u8,

    /// Print rsync's transfer statistics at the end (counts per type, sizes, speedup)
    #[arg(long, help_heading = "Output")]
    pub stats: bool,

    /// Output numbers in a human-readable format (1.23K, 4.56M); alone (`opsync sync -h`) it
    /// prints the help, as in rsync
    #[arg(short = 'h', long, action = clap::ArgAction::Count, help_heading = "Output")]
    pub human_readable: u8,

    /// Show the progress of each file as rsync does (name, then bytes, percent, current rate,
    /// ETA, and files left to check)
    #[arg(long, help_heading = "Output")]
    pub progress: bool,

    /// Same as --partial --progress
    #[arg(short = 'P', help_heading = "Output")]
    pub partial_progress: bool,

    /// Accepted for rsync habits: opsync always writes a file to a temporary name and renames
    /// it into place, so an interrupted file is never left under its real name
    #[arg(long, hide = true)]
    pub partial: bool,

    /// rsync's fine-grained output: progress2 (one line for the whole transfer, also when
    /// stdout is not a terminal), progress1 (as --progress), progress0, stats0..stats3 (stats2
    /// as --stats), name0..name2 (name1 as -v); comma-separated
    #[arg(
        long,
        value_name = "FLAGS",
        value_delimiter = ',',
        help_heading = "Output"
    )]
    pub info: Vec<String>,

    /// Log what is done to FILE in rsync's log format (a line per change, with date, time and
    /// process id, and the summary)
    #[arg(long, value_name = "FILE", help_heading = "Output")]
    pub log_file: Option<PathBuf>,

    /// Print no lines about changes or summaries, only errors
    #[arg(short = 'q', long, help_heading = "Output")]
    pub quiet: bool,

    /// Print help (`-h` alone does too)
    #[arg(long, action = clap::ArgAction::HelpLong)]
    pub help: Option<bool>,

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
    /// are neither copied nor deleted. All filter options apply in the order given, first
    /// match wins
    #[arg(
        long,
        value_name = "PATTERN",
        allow_hyphen_values = true,
        help_heading = "Filter"
    )]
    pub exclude: Vec<String>,

    /// Do not exclude entries matching PATTERN (an include before an exclude wins)
    #[arg(
        long,
        value_name = "PATTERN",
        allow_hyphen_values = true,
        help_heading = "Filter"
    )]
    pub include: Vec<String>,

    /// Read exclude patterns from FILE, one per line (`-`: standard input; lines starting
    /// with # or ; are comments; `+ ` or `- ` before a pattern make it an include or exclude)
    #[arg(long, value_name = "FILE", help_heading = "Filter")]
    pub exclude_from: Vec<PathBuf>,

    /// Read include patterns from FILE, as --exclude-from
    #[arg(long, value_name = "FILE", help_heading = "Filter")]
    pub include_from: Vec<PathBuf>,

    /// Add a filter rule in rsync's syntax: `- PAT`, `+ PAT`, `merge FILE` (`-`: stdin),
    /// `dir-merge NAME`, `P PAT` (protect), `H`/`S` (hide/show), `R` (risk), `!` (clear)
    #[arg(
        short = 'f',
        long,
        value_name = "RULE",
        allow_hyphen_values = true,
        help_heading = "Filter"
    )]
    pub filter: Vec<String>,

    /// Same as --filter='dir-merge /.rsync-filter'; twice: also --filter='- .rsync-filter'
    #[arg(
        short = 'F',
        action = clap::ArgAction::Append,
        num_args = 0,
        default_missing_value = "true",
        help_heading = "Filter"
    )]
    pub filter_files: Vec<bool>,

    /// The filter rules of --include/--exclude/--include-from/--exclude-from/--filter/-F in
    /// command-line order (filled in by the parser from the positions of the options).
    #[arg(skip)]
    pub rules: Vec<RuleArg>,

    /// Allow an empty SRC to empty a non-empty DST (refused by default, exit 26)
    #[arg(long, help_heading = "Safety")]
    pub allow_empty_source: bool,

    /// Worker threads, at most 256 [default: all cores]
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,

    /// Copy changed files whole (same as --delta=never)
    #[arg(short = 'W', long)]
    pub whole_file: bool,

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

/// One filter option of the command line, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuleArg {
    /// A rule in rsync's filter syntax (`--filter`, and `--include`/`--exclude` made into one).
    Rule(String),
    /// `--include-from` (`Include`) or `--exclude-from` (`Exclude`): the rules of a file.
    From { file: PathBuf, include: bool },
}

/// Collects the filter options of `opsync sync` from `m` in command-line order.
pub fn ordered_rules(m: &clap::ArgMatches) -> Vec<RuleArg> {
    let mut rules: Vec<(usize, RuleArg)> = Vec::new();
    let mut strings = |id: &str, make: &dyn Fn(&str) -> RuleArg| {
        if let (Some(idx), Some(vals)) = (m.indices_of(id), m.get_many::<String>(id)) {
            rules.extend(idx.zip(vals).map(|(i, v)| (i, make(v))));
        }
    };
    strings("exclude", &|v| RuleArg::Rule(pattern_rule(v, false)));
    strings("include", &|v| RuleArg::Rule(pattern_rule(v, true)));
    strings("filter", &|v| RuleArg::Rule(v.to_string()));
    for (id, include) in [("exclude_from", false), ("include_from", true)] {
        if let (Some(idx), Some(vals)) = (m.indices_of(id), m.get_many::<PathBuf>(id)) {
            rules.extend(idx.zip(vals).map(|(i, v)| {
                (
                    i,
                    RuleArg::From {
                        file: v.clone(),
                        include,
                    },
                )
            }));
        }
    }
    if let Some(idx) = m.indices_of("filter_files") {
        for (n, i) in idx.enumerate() {
            let rule = if n == 0 {
                "dir-merge /.rsync-filter"
            } else {
                "- .rsync-filter"
            };
            rules.push((i, RuleArg::Rule(rule.to_string())));
        }
    }
    rules.sort_by_key(|(i, _)| *i);
    rules.into_iter().map(|(_, r)| r).collect()
}

/// The rule of an `--include`/`--exclude` pattern or a line of an `-from` file: as rsync, a
/// leading `+ ` or `- ` picks the kind and `!` clears the list; otherwise the pattern is an
/// include or exclude as the option says.
pub fn pattern_rule(p: &str, include: bool) -> String {
    if p.starts_with("+ ") || p.starts_with("- ") || p == "!" {
        p.to_string()
    } else if include {
        format!("+ {p}")
    } else {
        format!("- {p}")
    }
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
