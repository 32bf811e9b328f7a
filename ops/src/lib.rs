//! `ops`: the command-line front of opsync and the server operations around the mirror engine.
//!
//! Module map (one owner per concern):
//! - [`cli`]: clap definitions of every command and option, nothing else.
//! - [`commands`]: one module per subcommand; each turns parsed options into work and an [`exit::Exit`].
//! - [`exit`]: exit codes (rsync's where they mean the same) and how errors map to them.
//! - [`output`]: everything printed for humans or scripts (itemize lines, JSON events, progress bars).
//! - [`events`]: the JSON events of `sync --json` and `verify --json`, shared by the printer and
//!   the nightly job that reads them back.
//! - [`config`]: `opsync.toml`, loading, defaults and validation.
//! - [`certs`], [`nginx`], [`compose`]: certificates, the reverse proxy, compose stacks.
//! - [`scheduler`], [`jobs`], [`state`], [`lock`], [`metrics`]: `opsync daemon` and its jobs.
//! - [`process`]: running external programs with a timeout.

pub mod certs;
pub mod cli;
pub mod commands;
pub mod compose;
pub mod config;
pub mod events;
pub mod exit;
pub mod jobs;
pub mod lock;
pub mod metrics;
pub mod nginx;
pub mod output;
pub mod process;
pub mod scheduler;
pub mod state;

use std::process::ExitCode;

/// Entry point used by `main.rs`: parses arguments, runs the command, prints a fatal error as one
/// line and returns the exit code.
pub fn main_entry() -> ExitCode {
    let cli = match cli::parse() {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    let exit = commands::run(cli);
    exit.into()
}
