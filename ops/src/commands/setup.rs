//! `opsync setup systemd`: writes the unit of `opsync daemon` and the `OnFailure=` template
//! unit that runs the configured on-failure command when the daemon's unit fails; enables
//! nothing, prints how. `opsync on-failure UNIT` is what that template unit runs.
//!
//! An existing unit file with the same text is left alone (exit 0, "up to date"); one with
//! other text is kept and the command fails with exit 10 unless `--force` is given.

use std::path::{Path, PathBuf};

use anyhow::Context as _;

use crate::cli::{OnFailureArgs, SetupArgs, SetupCommand, SetupSystemdArgs};
use crate::commands::config::config_file;
use crate::commands::{Global, fail};
use crate::output::print;
use opsync_core::config::{Config, JobConfig, JobKind};
use opsync_core::exit::Exit;

/// The name of the OnFailure= template unit.
pub const FAILURE_UNIT: &str = "opsync-failure@.service";

/// Folders systemd reads system units from: a unit written there needs no `systemctl link`.
const UNIT_DIRS: &[&str] = &[
    "/etc/systemd/system",
    "/run/systemd/system",
    "/usr/lib/systemd/system",
    "/lib/systemd/system",
    "/usr/local/lib/systemd/system",
];

pub fn run(global: &Global, args: SetupArgs) -> Exit {
    let Some(SetupCommand::Systemd(args)) = args.command else {
        return super::setup_server::run(&args.server);
    };
    match systemd(global, &args) {
        Ok(e) => e,
        Err(e) => fail(Exit::Failed, &e),
    }
}

/// What writing one file did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wrote {
    Created,
    Replaced,
    UpToDate,
}

/// Writes `text` to `path` unless it already holds it; a file with other text is replaced only
/// with `force`.
pub fn write_file(path: &Path, text: &str, force: bool) -> anyhow::Result<Wrote> {
    let wrote = match std::fs::read_to_string(path) {
        Ok(old) if old == text => return Ok(Wrote::UpToDate),
        Ok(_) if !force => anyhow::bail!(
            "{} exists with other contents: compare it with `opsync setup systemd --print`, or \
             pass --force to replace it",
            path.display()
        ),
        Ok(_) => Wrote::Replaced,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Wrote::Created,
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    opsync_core::fs::write_atomic(path, text.as_bytes()).with_context(|| {
        format!(
            "cannot write {}: run as root or pass --output FILE",
            path.display()
        )
    })?;
    Ok(wrote)
}

/// The binary ExecStart runs, and a warning when that is a build folder's.
pub fn installed_binary(explicit: Option<&Path>) -> anyhow::Result<(PathBuf, Option<String>)> {
    if let Some(p) = explicit {
        let p =
            std::path::absolute(p).with_context(|| format!("cannot resolve {}", p.display()))?;
        return Ok((p, None));
    }
    let exe = std::env::current_exe().context("cannot find the opsync binary")?;
    let exe = exe.canonicalize().unwrap_or(exe);
    if !in_build_folder(&exe) {
        return Ok((exe, None));
    }
    let on_path = std::env::var_os("PATH")
        .map(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join("opsync"))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default()
        .into_iter()
        .filter(|p| p.is_file())
        .filter_map(|p| p.canonicalize().ok())
        .find(|p| !in_build_folder(p));
    match on_path {
        Some(p) => Ok((p, None)),
        None => {
            let warning = format!(
                "ExecStart runs {}, a build folder's binary (cargo clean or a rebuild changes or \
                 removes it): install it first (`cargo install --path ops`, or `install -m 755 \
                 {} /usr/local/bin/opsync`) and run setup again, or pass --opsync PATH",
                exe.display(),
                exe.display()
            );
            Ok((exe, Some(warning)))
        }
    }
}

/// A binary under cargo's `target/debug` or `target/release`.
fn in_build_folder(p: &Path) -> bool {
    let parts: Vec<_> = p.components().map(|c| c.as_os_str().to_owned()).collect();
    parts
        .windows(2)
        .any(|w| w[0] == "target" && (w[1] == "debug" || w[1] == "release"))
}

fn systemd(global: &Global, args: &SetupSystemdArgs) -> anyhow::Result<Exit> {
    let Some(config) = config_file(global) else {
        anyhow::bail!(
            "the unit needs a configuration file: pass --config FILE or create ./opsync.toml \
             (`opsync config example > opsync.toml`)"
        );
    };
    let cfg = Config::load(&config)?;
    let config = cfg.file.clone().unwrap_or(config);
    let (exe, warning) = installed_binary(args.opsync.as_deref())?;
    if let Some(w) = &warning {
        crate::output::warning(w);
    }
    let unit = render_unit(&exe, &config, &cfg);
    let failure = render_failure_unit(&exe, &config);
    if args.print {
        print(&unit);
        print(&format!("# {FAILURE_UNIT}\n{failure}"));
        return Ok(Exit::Ok);
    }
    let output = std::path::absolute(&args.output)
        .with_context(|| format!("cannot resolve {}", args.output.display()))?;
    let dir = output.parent().unwrap_or(Path::new("/"));
    let failure_path = dir.join(FAILURE_UNIT);
    let report = systemd_files(&output, &unit, &failure_path, &failure, args.force)?;
    print(&report);
    Ok(Exit::Ok)
}

/// Writes both units and returns what was done and how to enable them.
pub fn systemd_files(
    output: &Path,
    unit: &str,
    failure_path: &Path,
    failure: &str,
    force: bool,
) -> anyhow::Result<String> {
    let dir = output.parent().unwrap_or(Path::new("/"));
    let w1 = write_file(output, unit, force)?;
    let w2 = write_file(failure_path, failure, force)?;
    let name = output.file_name().map_or("opsync.service".into(), |n| {
        n.to_string_lossy().into_owned()
    });
    let mut out = String::new();
    for (path, w) in [(output, w1), (failure_path, w2)] {
        let what = match w {
            Wrote::Created => "wrote",
            Wrote::Replaced => "replaced",
            Wrote::UpToDate => "up to date:",
        };
        out.push_str(&format!("{what} {}\n", path.display()));
    }
    if w1 == Wrote::UpToDate && w2 == Wrote::UpToDate {
        out.push_str(&format!(
            "nothing changed; check the service with `systemctl status {name}`\n"
        ));
        return Ok(out);
    }
    let known_dir = UNIT_DIRS.iter().any(|d| Path::new(d) == dir);
    out.push_str("enable and start it with:\n");
    if known_dir {
        out.push_str(&format!(
            "  systemctl daemon-reload\n  systemctl enable --now {name}\n"
        ));
    } else {
        // systemd does not read this folder: link both units into it first.
        out.push_str(&format!(
            "  systemctl link {} {}\n  systemctl daemon-reload\n  systemctl enable --now {name}\n",
            output.display(),
            failure_path.display()
        ));
    }
    out.push_str(&format!(
        "then check it with:\n  systemctl status {name}\n  journalctl -u {name} -f\n\
         and remove the old crontab lines (rsync, certbot renew) that it replaces\n"
    ));
    Ok(out)
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
         # When the daemon itself fails, {FAILURE_UNIT} runs the configured on-failure command.\n\
         OnFailure=opsync-failure@%n.service\n\
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

/// The `OnFailure=` template unit: `opsync on-failure UNIT` for the unit that failed.
pub fn render_failure_unit(exe: &Path, config: &Path) -> String {
    format!(
        "# Written by `opsync setup systemd`. Started by systemd when a unit with\n\
         # OnFailure=opsync-failure@%n.service fails; runs [general] on-failure of {config}.\n\
         [Unit]\n\
         Description=opsync on-failure notice for %i\n\
         \n\
         [Service]\n\
         Type=oneshot\n\
         ExecStart={exe} --config {config} on-failure %i\n",
        config = config.display(),
        exe = exe.display(),
    )
}

/// `opsync on-failure UNIT`: runs `[general] on-failure` for a failed systemd unit, with
/// `OPSYNC_JOB` = the unit, `OPSYNC_RESULT` = failed and the journal command in
/// `OPSYNC_MESSAGE`.
pub fn on_failure(global: &Global, args: &OnFailureArgs) -> Exit {
    let cfg = match Config::resolve(global.config.as_deref()) {
        Ok(c) => c,
        Err(e) => return fail(Exit::Config, &e.into()),
    };
    if cfg.general.on_failure.as_ref().is_none_or(Vec::is_empty) {
        crate::output::warning(&format!(
            "unit {} failed, and {} has no [general] on-failure command to tell anyone",
            args.unit,
            cfg.display_file()
        ));
        return Exit::Ok;
    }
    // A job-less run: the global command, no job's own.
    let job = JobConfig::new(JobKind::Command, "0 0 * * *");
    let message = format!(
        "systemd unit {} failed: see `journalctl -u {}`",
        args.unit, args.unit
    );
    if crate::jobs::on_failure::notify(
        &cfg,
        &args.unit,
        &job,
        Exit::Failed,
        Some("daemon"),
        Some(&message),
    ) {
        Exit::Ok
    } else {
        Exit::Failed
    }
}
