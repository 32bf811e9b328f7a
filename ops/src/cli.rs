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
    #[command(long_about = SYNC_ABOUT, after_long_help = SYNC_EXAMPLES)]
    Sync(SyncArgs),
    /// TLS certificates: status, issuance and renewal through certbot, the deploy hook
    #[command(subcommand)]
    Certs(CertsCommand),
    /// nginx: render the site configuration from the template, check it, reload
    #[command(subcommand)]
    Nginx(NginxCommand),

    /// Check the configuration file or print a commented example
    #[command(subcommand)]
    Config(ConfigCommand),

    /// Run the configured jobs on their schedules until SIGTERM or SIGINT
    Daemon(DaemonArgs),

    /// Run one job now, in the foreground, with the same locking and state as the daemon
    Run(RunArgs),

    /// Show each job's schedule, next run, last run and result
    Status(StatusArgs),

    /// Show when a job runs
    #[command(subcommand)]
    Schedule(ScheduleCommand),

    /// Install opsync into the system (writes files, enables nothing)
    #[command(subcommand)]
    Setup(SetupCommand),

    /// Run the compose stacks: up, down, stop, start, status, update with rollback, prune
    #[command(long_about = STACK_ABOUT)]
    Stack(StackArgs),

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

const SYNC_EXAMPLES: &str = "\
Examples:
  opsync sync data dev-data                  the nightly mirror (was: rsync -a --delete)
  opsync sync -n -i data dev-data            what would change, in rsync's itemize format
  opsync sync --max-delete=5% data dev-data  stop deleting after 5% of dev-data's entries
  opsync sync --json data dev-data           JSON lines for scripts, with a final summary

Exit codes: 0 ok, 1 bad options or paths, 20 signal, 23 some entries failed, 24 source files \
vanished, 25 --max-delete reached, 26 empty source refused, 8 --verify found differences.";

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
    #[arg(long, value_name = "WHEN", default_value = "auto", value_parser = ["auto", "always", "never"])]
    pub delta: String,

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

/// What `opsync sync --verify` checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum VerifyScope {
    /// Both whole trees, after the sync
    All,
    /// Every file the run wrote, before it replaces the old version
    Written,
}

const STACK_ABOUT: &str = "\
Run the compose stacks configured as [stacks.NAME] (default: prod from compose.yaml, dev from \
dev-compose.yaml), each with its own compose project name (-p), so two files in one folder never \
recreate each other's containers. Works with `docker compose` (v2) and `docker-compose` (v1.29).

`update` records the images running now, pulls, starts the new ones and waits for their \
healthchecks; when they fail it puts the old images back. An image rollback does not undo \
database migrations the new images ran.";

/// Options of `opsync stack`.
#[derive(Debug, Args)]
pub struct StackArgs {
    #[command(subcommand)]
    pub command: StackCommand,
}

/// `opsync stack ...`.
#[derive(Debug, Subcommand)]
pub enum StackCommand {
    /// Create and start the stack (`up -d`), then wait until it is healthy
    Up(StackName),
    /// Stop and remove the stack's containers and networks (never its volumes)
    Down(StackName),
    /// Stop the stack's containers (they and their data stay)
    Stop(StackName),
    /// Start the stopped containers (or create them), then wait until healthy
    Start(StackName),
    /// Pause services of the stack (all when none are named)
    Pause(StackServices),
    /// Unpause services of the stack (all when none are named)
    Unpause(StackServices),
    /// Show each service's state, health and image (all stacks when none is named)
    Status(StackStatusArgs),
    /// Pull new images, start them, wait for health, roll back when they fail
    Update(StackJson),
    /// Return to the deployment before the one running now
    Rollback(StackJson),
    /// Remove dangling images and images older than the kept deployments; never containers,
    /// networks or volumes
    Prune(StackPruneArgs),
}

/// A stack name.
#[derive(Debug, Args)]
pub struct StackName {
    /// Stack name from [stacks.NAME] (default config: prod, dev)
    #[arg(value_name = "STACK")]
    pub stack: String,
}

/// A stack name and services.
#[derive(Debug, Args)]
pub struct StackServices {
    /// Stack name from [stacks.NAME]
    #[arg(value_name = "STACK")]
    pub stack: String,
    /// Services (default: all)
    #[arg(value_name = "SERVICE")]
    pub services: Vec<String>,
}

/// A stack name and `--json`.
#[derive(Debug, Args)]
pub struct StackJson {
    /// Stack name from [stacks.NAME]
    #[arg(value_name = "STACK")]
    pub stack: String,
    /// Print the result as one JSON object
    #[arg(long)]
    pub json: bool,
}

/// Options of `opsync stack status`.
#[derive(Debug, Args)]
pub struct StackStatusArgs {
    /// Stack name from [stacks.NAME] (default: every configured stack)
    #[arg(value_name = "STACK")]
    pub stack: Option<String>,
    /// One JSON object per service
    #[arg(long)]
    pub json: bool,
}

/// Options of `opsync stack prune`.
#[derive(Debug, Args)]
pub struct StackPruneArgs {
    /// Print what would be removed, remove nothing
    #[arg(short = 'n', long)]
    pub dry_run: bool,
    /// One JSON object per image
    #[arg(long)]
    pub json: bool,
}

/// `opsync certs ...`.
#[derive(Debug, Subcommand)]
pub enum CertsCommand {
    /// Show each site's certificate on disk and as nginx serves it; exit 28 when one needs
    /// attention (less than a third of its lifetime left, expired, missing, stale in nginx)
    Status {
        /// One JSON object per site on stdout
        #[arg(long)]
        json: bool,
        /// Read only the files; do not connect to nginx
        #[arg(long)]
        disk_only: bool,
    },
    /// Issue certificates through certbot's webroot method (nginx serves the challenges), then
    /// render the nginx site configuration and reload nginx
    Issue {
        /// Only these domains [default: every [[site]]]
        #[arg(value_name = "DOMAIN")]
        domains: Vec<String>,
        /// Do not render and reload nginx afterwards
        #[arg(long)]
        no_reload: bool,
        /// Skip checking first that nginx serves the challenge folder for every name
        #[arg(long)]
        no_preflight: bool,
    },
    /// Run `certbot renew` (no random sleep), then check every certificate as `status` does
    Renew {
        /// One JSON object per site on stdout
        #[arg(long)]
        json: bool,
    },
    /// Install certbot's deploy hook that runs `opsync nginx reload` after every renewal
    InstallHook {
        /// The opsync binary the hook runs [default: this one]
        #[arg(long, value_name = "PATH")]
        opsync: Option<PathBuf>,
        /// Print the hook instead of installing it
        #[arg(long)]
        print: bool,
    },
}

/// `opsync nginx ...`.
#[derive(Debug, Subcommand)]
pub enum NginxCommand {
    /// Render the site configuration into [nginx] output and check it with `nginx -t` (a
    /// configuration that fails the check is not left installed)
    Render {
        /// Print the rendered configuration instead of installing it
        #[arg(long)]
        stdout: bool,
        /// Install without running `nginx -t`
        #[arg(long)]
        no_check: bool,
    },
    /// Run `nginx -t`
    Check,
    /// Run `nginx -t`, reload only when it passes, then wait until nginx serves the
    /// certificates on disk
    Reload,
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

/// `opsync config ...`.
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Validate the configuration file (syntax, schedules, time zones, paths)
    Check,
    /// Print a fully commented example configuration
    Example,
}

/// Options of `opsync daemon`.
#[derive(Debug, Args)]
pub struct DaemonArgs {
    /// Testing only: the scheduler's clock starts at this time (RFC 3339) and runs from there
    #[arg(long, hide = true, value_name = "TIME", env = "OPSYNC_TEST_START_TIME")]
    pub test_start_time: Option<String>,
}

/// Options of `opsync run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The job's name (a `[jobs.NAME]` table)
    #[arg(value_name = "JOB")]
    pub job: String,

    /// Print the job's resulting state as one JSON object on stdout
    #[arg(long)]
    pub json: bool,
}

/// Options of `opsync status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// One JSON object per job on stdout instead of a table
    #[arg(long)]
    pub json: bool,
}

/// `opsync schedule ...`.
#[derive(Debug, Subcommand)]
pub enum ScheduleCommand {
    /// Print the next fire times of a job
    Next(ScheduleNextArgs),
}

/// Options of `opsync schedule next`.
#[derive(Debug, Args)]
pub struct ScheduleNextArgs {
    /// The job's name
    #[arg(value_name = "JOB")]
    pub job: String,

    /// How many fire times
    #[arg(short = 'n', long, default_value_t = 5)]
    pub count: usize,

    /// Count from this time (RFC 3339, for example 2026-03-28T12:00:00Z) instead of now
    #[arg(long, value_name = "TIME")]
    pub after: Option<String>,

    /// One JSON object per fire time
    #[arg(long)]
    pub json: bool,
}

/// `opsync setup ...`.
#[derive(Debug, Subcommand)]
pub enum SetupCommand {
    /// Write a systemd unit for `opsync daemon` and print how to enable it
    Systemd(SetupSystemdArgs),
}

/// Options of `opsync setup systemd`.
#[derive(Debug, Args)]
pub struct SetupSystemdArgs {
    /// Where to write the unit
    #[arg(
        long,
        value_name = "FILE",
        default_value = "/etc/systemd/system/opsync.service"
    )]
    pub output: PathBuf,

    /// Print the unit on stdout instead of writing it
    #[arg(long)]
    pub print: bool,

    /// Replace an existing unit file
    #[arg(long)]
    pub force: bool,
}
