//! Command-line definitions (clap derive). Parsing only: validation that needs more than clap
//! (paths, limits, patterns) happens in the command modules, which turn these into engine options.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};

mod mirror;
mod refused;
pub use mirror::{RuleArg, SyncArgs, VerifyArgs, VerifyScope, pattern_rule};
use mirror::{SYNC_ABOUT, SYNC_EXAMPLES, VERIFY_ABOUT};

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
#[allow(clippy::large_enum_variant)] // parsed once; boxing would only obscure the matches
pub enum Command {
    /// Mirror SRC into DST: the result of `rsync -a --delete SRC/ DST/`
    #[command(
        long_about = SYNC_ABOUT,
        after_long_help = SYNC_EXAMPLES,
        disable_help_flag = true
    )]
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

    /// Print a shell completion script (bash, zsh, fish, elvish, powershell) on stdout
    Completions {
        /// The shell
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },

    /// Print the man page of opsync (roff) on stdout
    Man,

    /// The remote end of `opsync sync HOST:PATH`, started through ssh: speaks the protocol on
    /// stdin and stdout
    #[command(hide = true)]
    Serve,
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
/// error prints clap's message and returns exit 1 (rsync's usage code). An option clap does not
/// know gets one line: what to use instead of a refused rsync option, or that it is unknown.
pub fn parse() -> Result<Cli, ExitCode> {
    parse_from(std::env::args_os().collect())
}

fn parse_from(mut args: Vec<std::ffi::OsString>) -> Result<Cli, ExitCode> {
    // rsync's `-h` is --human-readable, except alone, where it asks for help.
    if let Some(i) = args.iter().position(|a| a == "sync") {
        if args.len() == i + 2 && args[i + 1] == "-h" {
            args[i + 1] = "--help".into();
        }
    }
    let result = Cli::command().try_get_matches_from(&args).and_then(|m| {
        let mut cli = Cli::from_arg_matches(&m)?;
        if let (Command::Sync(s), Some(("sync", sm))) = (&mut cli.command, m.subcommand()) {
            s.rules = mirror::ordered_rules(sm);
        }
        Ok(cli)
    });
    match result {
        Ok(cli) => Ok(cli),
        Err(e) => {
            use clap::error::{ContextKind, ContextValue, ErrorKind};
            let code = match e.kind() {
                ErrorKind::DisplayHelp
                | ErrorKind::DisplayVersion
                | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => 0,
                _ => 1,
            };
            if e.kind() == ErrorKind::UnknownArgument {
                if let Some(ContextValue::String(arg)) = e.get(ContextKind::InvalidArg) {
                    crate::output::error(&refused::message(arg));
                    return Err(ExitCode::from(1));
                }
            }
            let _ = e.print();
            Err(ExitCode::from(code))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sync(args: &[&str]) -> Result<SyncArgs, ExitCode> {
        let mut all = vec!["opsync", "sync"];
        all.extend_from_slice(args);
        match parse_from(all.into_iter().map(Into::into).collect())?.command {
            Command::Sync(s) => Ok(s),
            _ => unreachable!(),
        }
    }

    #[test]
    fn h_is_human_readable_with_other_arguments() {
        let s = sync(&["-avh", "--delete", "a/", "b/"]).unwrap();
        assert_eq!((s.human_readable, s.verbose), (1, 1));
        assert_eq!(s.src, Some(PathBuf::from("a/")));
        assert!(sync(&["-rlptgoD", "--devices", "--specials", "--del", "a", "b"]).is_ok());
        for d in [
            "--delete-before",
            "--delete-during",
            "--delete-after",
            "--delete-delay",
        ] {
            assert!(sync(&[d, "a", "b"]).unwrap().delete);
        }
    }

    #[test]
    fn completions_and_man_page_list_the_sync_options() {
        let mut out = Vec::new();
        clap_complete::generate(
            clap_complete::Shell::Bash,
            &mut Cli::command(),
            "opsync",
            &mut out,
        );
        assert!(String::from_utf8_lossy(&out).contains("--delete-excluded"));
        let mut man = Vec::new();
        clap_mangen::Man::new(Cli::command())
            .render(&mut man)
            .unwrap();
        assert!(String::from_utf8_lossy(&man).contains(".TH opsync 1"));
    }

    #[test]
    fn every_refused_option_is_refused() {
        for r in refused::REFUSED {
            for l in r.long {
                assert!(
                    sync(&[&format!("--{l}"), "a", "b"]).is_err(),
                    "--{l} was accepted"
                );
            }
            if let Some(c) = r.short {
                assert!(
                    sync(&[&format!("-a{c}"), "a", "b"]).is_err(),
                    "-{c} was accepted"
                );
            }
        }
    }

    #[test]
    fn filter_options_keep_their_command_line_order() {
        let s = sync(&[
            "--exclude=*.o",
            "-F",
            "--include=keep.o",
            "-f",
            "- tmp/",
            "--exclude-from=x",
            "-FF",
            "a",
            "b",
        ])
        .unwrap();
        let rule = |r: &str| RuleArg::Rule(r.into());
        assert_eq!(
            s.rules,
            vec![
                rule("- *.o"),
                rule("dir-merge /.rsync-filter"),
                rule("+ keep.o"),
                rule("- tmp/"),
                RuleArg::From {
                    file: "x".into(),
                    include: false
                },
                rule("- .rsync-filter"),
                rule("- .rsync-filter"),
            ]
        );
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
