//! `opsync completions SHELL` and `opsync man`: the shell completion script (clap_complete) and
//! the man page (clap_mangen), both made from the clap definitions, so they always list the
//! options this binary has.

use clap::CommandFactory;
use opsync_core::exit::Exit;

use crate::cli::Cli;
use crate::commands::fail;

pub fn completions(shell: clap_complete::Shell) -> Exit {
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "opsync", &mut out);
    crate::output::print(&String::from_utf8_lossy(&out));
    Exit::Ok
}

pub fn man() -> Exit {
    let mut out = Vec::new();
    match clap_mangen::Man::new(Cli::command()).render(&mut out) {
        Ok(()) => {
            crate::output::print(&String::from_utf8_lossy(&out));
            Exit::Ok
        }
        Err(e) => fail(
            Exit::FileIo,
            &anyhow::anyhow!("cannot render the man page: {e}"),
        ),
    }
}
