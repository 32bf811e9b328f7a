//! `opsync config check|example`.

use std::path::{Path, PathBuf};

use crate::cli::ConfigCommand;
use crate::commands::{Global, fail};
use crate::output::print;
use opsync_core::config::{Config, EXAMPLE};
use opsync_core::exit::Exit;

pub fn run(global: &Global, cmd: ConfigCommand) -> Exit {
    match cmd {
        ConfigCommand::Example => {
            print(EXAMPLE);
            Exit::Ok
        }
        ConfigCommand::Check => check(global),
    }
}

fn check(global: &Global) -> Exit {
    let Some(path) = config_file(global) else {
        return fail(
            Exit::Config,
            &anyhow::anyhow!(
                "no configuration file: pass --config FILE or create ./opsync.toml (`opsync config \
                 example > opsync.toml` writes a commented one)"
            ),
        );
    };
    let cfg = match Config::load(&path) {
        Ok(c) => c,
        Err(e) => return fail(Exit::Config, &e.into()),
    };
    let problems = cfg.check_paths();
    if !problems.is_empty() {
        for p in &problems {
            crate::output::error(&p.to_string());
        }
        return Exit::Config;
    }
    let jobs: Vec<String> = cfg
        .jobs
        .iter()
        .map(|(n, j)| format!("{n} ({}, \"{}\")", j.kind.as_str(), j.schedule))
        .collect();
    print(&format!(
        "{}: ok; sync {} -> {}; jobs: {}\n",
        path.display(),
        cfg.path(&cfg.sync.source).display(),
        cfg.path(&cfg.sync.target).display(),
        if jobs.is_empty() {
            "none".to_string()
        } else {
            jobs.join(", ")
        }
    ));
    Exit::Ok
}

/// The config file a command should read: `--config`, else `./opsync.toml` when present.
pub(crate) fn config_file(global: &Global) -> Option<PathBuf> {
    match &global.config {
        Some(p) => Some(p.clone()),
        None => Some(PathBuf::from("opsync.toml")).filter(|p| Path::new(p).exists()),
    }
}

/// Loads the config for a command that runs jobs: parse errors and path errors are fatal.
pub(crate) fn load_checked(global: &Global) -> Result<Config, Exit> {
    let cfg =
        Config::resolve(global.config.as_deref()).map_err(|e| fail(Exit::Config, &e.into()))?;
    let problems = cfg.check_paths();
    if problems.is_empty() {
        return Ok(cfg);
    }
    for p in &problems {
        crate::output::error(&p.to_string());
    }
    Err(Exit::Config)
}
