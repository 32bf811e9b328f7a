//! One module per subcommand. Each `run` takes its parsed arguments, loads the config, calls
//! the libraries and the jobs, has [`crate::output`] print the result, and returns an [`Exit`].
//! The command modules are the only code (with `main`) that deals in `anyhow`: they add context
//! to the libraries' typed errors and print a fatal one as one line with [`fail`]
//! (`opsync: error: ...`), its exit code chosen by the error (`ToExit`) where the command does
//! not know better.

pub mod certs;
pub mod config;
pub mod daemon;
pub mod docs;
pub mod nginx;
pub mod rails;
pub mod remote;
pub mod remote_verify;
pub mod run;
pub mod schedule;
pub mod setup;
pub mod setup_server;
pub mod stack;
pub mod status;
pub mod sync;
pub mod verify;

use crate::cli::{Cli, Command};
use opsync_core::exit::Exit;

/// Runs the parsed command line.
pub fn run(cli: Cli) -> Exit {
    crate::output::init_logging(cli.log_format);
    let global = Global { config: cli.config };
    match cli.command {
        Command::Sync(args) => sync::run(&global, args),
        Command::Config(c) => config::run(&global, c),
        Command::Daemon(args) => daemon::run(&global, args),
        Command::Run(args) => run::run(&global, args),
        Command::Status(args) => status::run(&global, args),
        Command::Schedule(c) => schedule::run(&global, c),
        Command::Setup(c) => setup::run(&global, c),
        Command::Certs(cmd) => certs::run(&global, cmd),
        Command::Nginx(cmd) => nginx::run(&global, cmd),
        Command::Verify(args) => verify::run(&global, args),
        Command::Stack(args) => stack::run(&global, args),
        Command::Completions(args) => docs::completions(args.shell),
        Command::Man(args) => docs::man(args.dir.as_deref()),
        Command::OnFailure(args) => setup::on_failure(&global, &args),
        Command::Serve => remote::serve(),
    }
}

/// Options every command sees.
#[derive(Debug, Clone)]
pub struct Global {
    /// `--config FILE`, if given.
    pub config: Option<std::path::PathBuf>,
}

/// Prints a fatal error as one line on stderr and returns its exit code.
pub fn fail(exit: Exit, err: &anyhow::Error) -> Exit {
    crate::output::error(&opsync_core::error::one_line(err.as_ref()));
    exit
}
