//! `opsync config check|example`.

use std::path::{Path, PathBuf};

use crate::cli::ConfigCommand;
use crate::commands::{Global, fail};
use crate::output::print;
use opsync_core::config::{Config, EXAMPLE, EXAMPLE_SYNC_ONLY};
use opsync_core::exit::Exit;

pub fn run(global: &Global, cmd: ConfigCommand) -> Exit {
    match cmd {
        ConfigCommand::Example(args) => {
            let text = if args.sync_only {
                EXAMPLE_SYNC_ONLY
            } else {
                EXAMPLE
            };
            print(&example_header(text));
            print(text);
            Exit::Ok
        }
        ConfigCommand::Check(args) => check(global, args.file),
    }
}

/// The first lines of `config example`: where this configuration, saved as ./opsync.toml,
/// keeps its state and writes its metrics, before anything is written there.
fn example_header(text: &str) -> String {
    let at = std::env::current_dir()
        .unwrap_or_else(|_| PathBuf::from("."))
        .join("opsync.toml");
    match Config::parse(&at, text) {
        Ok(cfg) => format!(
            "# Saved as {}, this file keeps its job state, locks and stack history in\n\
             # {} and writes metrics to {}.\n#\n",
            at.display(),
            cfg.state_dir().display(),
            cfg.metrics_file().map_or_else(
                || "nowhere (no metrics-file)".to_string(),
                |p| p.display().to_string()
            )
        ),
        Err(_) => String::new(),
    }
}

fn check(global: &Global, file: Option<PathBuf>) -> Exit {
    let Some(path) = file.or_else(|| config_file(global)) else {
        return fail(
            Exit::Config,
            &anyhow::anyhow!(
                "no configuration file: run `opsync config check FILE`, or create ./opsync.toml \
                 (`opsync config example > opsync.toml` writes a commented one)"
            ),
        );
    };
    let cfg = match Config::load_all(&path) {
        Ok(c) => Some(c),
        Err(errors) => {
            for e in &errors {
                crate::output::error(&e.to_string());
            }
            None
        }
    };
    let Some(cfg) = cfg else {
        return Exit::Config;
    };
    let mut problems = cfg.check_paths();
    problems.extend(cfg.check_needs());
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
        "{}: ok; sync {} -> {}; state {}; jobs: {}\n",
        path.display(),
        cfg.path(&cfg.sync.source).display(),
        cfg.path(&cfg.sync.target).display(),
        cfg.state_dir().display(),
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
