//! `opsync setup systemd`: writes a unit file for `opsync daemon`; enables nothing.

use std::path::{Path, PathBuf};

use anyhow::Context as _;

use crate::cli::{SetupCommand, SetupSystemdArgs};
use crate::commands::config::config_file;
use crate::commands::{Global, fail};
use crate::output::print;
use opsync_core::config::Config;
use opsync_core::exit::Exit;

pub fn run(global: &Global, cmd: SetupCommand) -> Exit {
    let SetupCommand::Systemd(args) = cmd;
    match systemd(global, &args) {
        Ok(e) => e,
        Err(e) => fail(Exit::Failed, &e),
    }
}

fn systemd(global: &Global, args: &SetupSystemdArgs) -> anyhow::Result<Exit> {
    let Some(config) = config_file(global) else {
        anyhow::bail!(
            "the unit needs a configuration file: pass --config FILE or create ./opsync.toml \
             (`opsync config example > opsync.toml`)"
        );
    };
    let cfg = Config::load(&config)?;
    let config = std::path::absolute(&config)
        .with_context(|| format!("cannot resolve {}", config.display()))?;
    let exe = std::env::current_exe().context("cannot find the opsync binary")?;
    let exe = exe.canonicalize().unwrap_or(exe);
    let unit = render_unit(&exe, &config, &cfg);
    if args.print {
        print(&unit);
        return Ok(Exit::Ok);
    }
    if args.output.exists() && !args.force {
        anyhow::bail!(
            "{} exists: compare it with `opsync setup systemd --print`, or pass --force to replace it",
            args.output.display()
        );
    }
    opsync_core::fs::write_atomic(&args.output, unit.as_bytes()).with_context(|| {
        format!(
            "cannot write {}: run as root or pass --output FILE",
            args.output.display()
        )
    })?;
    let name = args
        .output
        .file_name()
        .map_or("opsync.service".into(), |n| {
            n.to_string_lossy().into_owned()
        });
    print(&format!(
        "wrote {}\nenable and start it with:\n  systemctl daemon-reload\n  systemctl enable --now {name}\n\
         then check it with:\n  systemctl status {name}\n  journalctl -u {name} -f\n  opsync --config {} status\n\
         and remove the old crontab lines (rsync, certbot renew) that it replaces\n",
        args.output.display(),
        config.display()
    ));
    Ok(Exit::Ok)
}

/// The unit text.
pub fn render_unit(exe: &Path, config: &Path, cfg: &Config) -> String {
    let workdir: PathBuf = config
        .parent()
        .map_or_else(|| PathBuf::from("/"), Path::to_owned);
    let stop_timeout = cfg.general.shutdown_grace.0.as_secs() + 660;
    format!(
        "# Written by `opsync setup systemd`. Runs the jobs of {config} on their schedules.\n\
         [Unit]\n\
         Description=opsync scheduler (nightly sync, certificates, stack updates)\n\
         Wants=network-online.target\n\
         After=network-online.target docker.service\n\
         \n\
         [Service]\n\
         Type=simple\n\
         ExecStart={exe} --config {config} daemon\n\
         WorkingDirectory={workdir}\n\
         Environment=OPSYNC_LOG=info\n\
         Restart=on-failure\n\
         RestartSec=30\n\
         # SIGTERM goes to opsync only: it stops starting runs, lets a running job finish within\n\
         # [general] shutdown-grace, then stops the job's current step and still resumes\n\
         # production and starts the dev stack. TimeoutStopSec leaves room for that.\n\
         KillMode=mixed\n\
         TimeoutStopSec={stop_timeout}\n\
         \n\
         [Install]\n\
         WantedBy=multi-user.target\n",
        config = config.display(),
        exe = exe.display(),
        workdir = workdir.display(),
    )
}
