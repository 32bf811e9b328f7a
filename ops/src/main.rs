//! `opsync`: the command line of opsync. This crate is the binary's edge: it parses the command
//! line, loads the configuration, runs the command or job, prints, and maps the outcome to an
//! exit code. The work lives in the libraries: `sync-engine` (the mirror), `opsync-core`
//! (config, state, locks, processes, scheduler, metrics, exit codes), `opsync-certs`
//! (certificates and nginx) and `opsync-stacks` (compose stacks).
//!
//! Module map (one owner per concern):
//! - [`cli`]: clap definitions of every command and option, nothing else.
//! - [`commands`]: one module per subcommand; each turns parsed options into work and an
//!   [`Exit`], and is, with `main`, the only code that deals in `anyhow`.
//! - [`output`]: everything printed for humans or scripts (itemize lines, JSON events, progress
//!   bars, tables, error lines) and the logging setup; no other module prints.
//! - [`events`]: the JSON events of `sync --json` and `verify --json`, the typed contract between
//!   [`output`], which prints them, and [`jobs`], which reads them back from its children.
//! - [`jobs`]: what `opsync daemon` runs on a schedule and `opsync run JOB` runs now: the nightly
//!   sync with its steps, the certificate renewal, stack updates, commands.

mod cli;
mod commands;
mod events;
mod jobs;
mod output;

use std::process::ExitCode;

use opsync_core::exit::Exit;

fn main() -> ExitCode {
    let cli = match cli::parse() {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    let exit: Exit = commands::run(cli);
    exit.into()
}
