//! `opsync completions SHELL` and `opsync man`: generated from the clap definitions by
//! clap_complete and clap_mangen, so they never drift from the command line.

use std::path::Path;

use anyhow::Context as _;
use clap::CommandFactory as _;

use crate::cli::Cli;
use crate::commands::fail;
use crate::output::print;
use opsync_core::exit::Exit;

/// Prints the completion script of `shell`.
pub fn completions(shell: clap_complete::Shell) -> Exit {
    let mut cmd = Cli::command();
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut cmd, "opsync", &mut out);
    print(&String::from_utf8_lossy(&out));
    Exit::Ok
}

/// Prints `opsync.1`, or writes every page into `dir`.
pub fn man(dir: Option<&Path>) -> Exit {
    let result = match dir {
        None => page(),
        Some(d) => pages(d),
    };
    match result {
        Ok(()) => Exit::Ok,
        Err(e) => fail(Exit::Failed, &e),
    }
}

fn page() -> anyhow::Result<()> {
    let mut out = Vec::new();
    clap_mangen::Man::new(Cli::command())
        .render(&mut out)
        .context("render the man page")?;
    print(&String::from_utf8_lossy(&out));
    Ok(())
}

fn pages(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    clap_mangen::generate_to(Cli::command(), dir)
        .with_context(|| format!("cannot write the man pages into {}", dir.display()))?;
    print(&format!(
        "wrote the man pages into {} (read them with `man -l {}/opsync.1`)",
        dir.display(),
        dir.display()
    ));
    Ok(())
}
