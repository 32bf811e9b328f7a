//! `opsync setup`: a server folder from nothing to running, one step after the other, each
//! printed as done, unchanged or (with `--dry-run`) what it would do. Idempotent: every step
//! first looks whether its result is there, so a second run changes nothing.
//!
//! 1. `opsync.toml` from the options (an existing file is kept as it is: edit it, rerun);
//! 2. the sync source folder `data/`;
//! 3. `config check` (every mistake, and what the jobs need); stops on a mistake;
//! 4. with sites: the nginx site configuration (rendered, `nginx -t`, reloaded), the
//!    certificates that are missing (certbot, webroot), the deploy hook;
//! 5. the systemd units (daemon and `OnFailure=`), then `systemctl enable --now` when systemd
//!    runs (not with `--no-enable`);
//! 6. the bash completion script and the man pages.

use std::path::Path;

use anyhow::{Context as _, bail};
use clap::CommandFactory as _;

use crate::cli::{Cli, SetupServerArgs};
use crate::commands::fail;
use crate::commands::setup::{
    FAILURE_UNIT, installed_binary, render_failure_unit, render_unit, write_file,
};
use crate::output::print;
use opsync_certs::{certbot, status};
use opsync_core::config::Config;
use opsync_core::exit::Exit;
use opsync_core::process::Command;

pub fn run(args: &SetupServerArgs) -> Exit {
    match setup(args) {
        Ok(exit) => exit,
        Err(e) => fail(Exit::Failed, &e),
    }
}

/// Collects the step lines.
struct Steps {
    dry_run: bool,
    changed: usize,
}

impl Steps {
    fn done(&mut self, what: &str) {
        self.changed += 1;
        let verb = if self.dry_run { "would" } else { "did:" };
        print(&format!("{verb} {what}"));
    }
    fn same(&self, what: &str) {
        print(&format!("unchanged: {what}"));
    }
    /// Writes `text` to `path` (unless it is there already, or dry run).
    fn file(&mut self, path: &Path, text: &str, what: &str) -> anyhow::Result<()> {
        if std::fs::read_to_string(path).is_ok_and(|t| t == text) {
            self.same(&format!("{what} {}", path.display()));
            return Ok(());
        }
        if !self.dry_run {
            if let Some(d) = path.parent() {
                std::fs::create_dir_all(d)
                    .with_context(|| format!("cannot create {}", d.display()))?;
            }
            write_file(path, text, true)?;
        }
        self.done(&format!("write {what} {}", path.display()));
        Ok(())
    }
}

/// The opsync.toml the options describe.
pub fn config_text(args: &SetupServerArgs) -> anyhow::Result<String> {
    let mut t = String::from(
        "# Written by `opsync setup`; edit it and run `opsync setup` again.\n\n\
         [sync]\nsource = \"./data\"\ntarget = \"./dev-data\"\nmax-delete = \"5%\"\n\n",
    );
    let mut stacks = Vec::new();
    if args.stacks.is_empty() {
        t.push_str("# No compose stacks: the nightly job only syncs.\n[stacks]\n\n");
    }
    for s in &args.stacks {
        let Some((name, file)) = s.split_once('=') else {
            bail!("--stack {s}: write NAME=FILE, for example --stack prod=compose.yaml");
        };
        stacks.push(name.to_string());
        t.push_str(&format!("[stacks.{name}]\nfile = {file:?}\n\n"));
    }
    for s in &args.sites {
        let parsed = s
            .split_once('=')
            .and_then(|(d, rest)| rest.split_once(':').map(|(st, p)| (d, st, p)))
            .filter(|(_, _, p)| p.parse::<u16>().is_ok());
        let Some((domain, stack, port)) = parsed else {
            bail!(
                "--site {s}: write DOMAIN=STACK:PORT, for example --site \
                 app.example.com=prod:8080"
            );
        };
        if !stacks.iter().any(|n| n == stack) {
            bail!("--site {s}: no --stack {stack}=FILE given");
        }
        t.push_str(&format!(
            "[[site]]\ndomain = {domain:?}\nstack = {stack:?}\nupstream = \"127.0.0.1:{port}\"\n\n"
        ));
    }
    if let Some(e) = &args.email {
        t.push_str(&format!("[certbot]\nemail = {e:?}\n\n"));
    }
    Ok(t)
}

fn setup(args: &SetupServerArgs) -> anyhow::Result<Exit> {
    let dir = std::path::absolute(&args.dir)
        .with_context(|| format!("cannot resolve {}", args.dir.display()))?;
    let mut steps = Steps {
        dry_run: args.dry_run,
        changed: 0,
    };
    let config = dir.join("opsync.toml");
    if config.exists() {
        steps.same(&format!(
            "{} (kept as it is; edit it and rerun)",
            config.display()
        ));
    } else {
        steps.file(&config, &config_text(args)?, "configuration")?;
    }
    let text = match std::fs::read_to_string(&config) {
        Ok(t) => t,
        Err(_) if args.dry_run => config_text(args)?,
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", config.display())),
    };
    let cfg = Config::parse(&config, &text)?;
    let source = cfg.path(&cfg.sync.source);
    if source.is_dir() {
        steps.same(&format!("sync source {}", source.display()));
    } else {
        if !args.dry_run {
            std::fs::create_dir_all(&source)
                .with_context(|| format!("cannot create {}", source.display()))?;
        }
        steps.done(&format!(
            "create the sync source folder {} (empty: put the production data there)",
            source.display()
        ));
    }
    if !args.dry_run {
        let mut problems = cfg.check_paths();
        problems.extend(cfg.check_needs());
        if !problems.is_empty() {
            for p in &problems {
                crate::output::error(&p.to_string());
            }
            bail!(
                "{} needs the fixes above before the server can run; then run `opsync setup` again",
                config.display()
            );
        }
        print(&format!("checked: {} is ok", config.display()));
    }

    if !cfg.site.is_empty() {
        sites(&cfg, &mut steps)?;
    }

    let (exe, warning) = installed_binary(None)?;
    if let Some(w) = warning {
        crate::output::warning(&w);
    }
    let unit_path = args.systemd_dir.join("opsync.service");
    let units_before = steps.changed;
    steps.file(
        &unit_path,
        &render_unit(&exe, &config, &cfg),
        "systemd unit",
    )?;
    steps.file(
        &args.systemd_dir.join(FAILURE_UNIT),
        &render_failure_unit(&exe, &config),
        "systemd unit",
    )?;
    let units_changed = steps.changed > units_before;
    enable(args, &mut steps, units_changed)?;

    let mut completion = Vec::new();
    clap_complete::generate(
        clap_complete::Shell::Bash,
        &mut Cli::command(),
        "opsync",
        &mut completion,
    );
    steps.file(
        &args.completions_dir.join("opsync"),
        &String::from_utf8_lossy(&completion),
        "bash completion",
    )?;
    let mut man = Vec::new();
    clap_mangen::Man::new(Cli::command())
        .render(&mut man)
        .context("render the man page")?;
    steps.file(
        &args.man_dir.join("opsync.1"),
        &String::from_utf8_lossy(&man),
        "man page",
    )?;

    print(&match (args.dry_run, steps.changed) {
        (true, 0) | (false, 0) => "nothing to do: the server is set up".to_string(),
        (true, n) => format!("{n} step(s) to do; run without --dry-run to do them"),
        (false, n) => format!(
            "{n} step(s) done; `opsync status` shows the jobs, `journalctl -u opsync -f` the daemon"
        ),
    });
    Ok(Exit::Ok)
}

/// nginx, the missing certificates, the deploy hook.
fn sites(cfg: &Config, steps: &mut Steps) -> anyhow::Result<()> {
    let rendered = opsync_certs::nginx::render_config(cfg)?;
    let output = cfg.path(&cfg.nginx.output);
    let missing: Vec<String> = cfg
        .site
        .iter()
        .filter(|s| !status::cert_path(cfg, s).is_file())
        .map(|s| s.domain.clone())
        .collect();
    if std::fs::read_to_string(&output).is_ok_and(|t| t == rendered) && missing.is_empty() {
        steps.same(&format!("nginx site configuration {}", output.display()));
    } else {
        if !steps.dry_run {
            super::nginx::render_install_reload(cfg)?;
        }
        steps.done(&format!(
            "render {}, check it with nginx -t, reload nginx",
            output.display()
        ));
    }
    if missing.is_empty() {
        steps.same("certificates of every site");
    } else {
        if !steps.dry_run && super::certs::issue(cfg, &missing, true, true) != Exit::Ok {
            bail!(
                "issuing the certificates of {} failed (see above)",
                missing.join(", ")
            );
        }
        steps.done(&format!(
            "issue the certificates of {} (certbot, webroot)",
            missing.join(", ")
        ));
    }
    let exe = std::env::current_exe().context("cannot find the opsync binary")?;
    let hook = certbot::hook_script(&exe, cfg.file.as_deref());
    let path = certbot::hook_path(cfg);
    if std::fs::read_to_string(&path).is_ok_and(|t| t == hook) {
        steps.same(&format!("deploy hook {}", path.display()));
    } else {
        if !steps.dry_run {
            certbot::install_hook(&path, &hook)?;
        }
        steps.done(&format!("install the deploy hook {}", path.display()));
    }
    Ok(())
}

/// `systemctl enable --now opsync.service` when systemd runs, the units are in a folder it
/// reads, and something changed (or the unit is not enabled yet).
fn enable(args: &SetupServerArgs, steps: &mut Steps, units_changed: bool) -> anyhow::Result<()> {
    let systemd_runs = Path::new("/run/systemd/system").is_dir();
    let standard = args.systemd_dir == Path::new("/etc/systemd/system");
    if args.no_enable || !systemd_runs || !standard {
        let why = if args.no_enable {
            "--no-enable"
        } else if !systemd_runs {
            "systemd does not run here"
        } else {
            "the units are not in /etc/systemd/system"
        };
        print(&format!(
            "not enabled ({why}): run `systemctl daemon-reload && systemctl enable --now \
             opsync.service` where systemd runs"
        ));
        return Ok(());
    }
    let enabled = Command::new("systemctl")
        .args(["is-enabled", "--quiet", "opsync.service"])
        .status()
        .is_ok_and(|e| e.success());
    if enabled && !units_changed {
        steps.same("opsync.service enabled");
        return Ok(());
    }
    if !steps.dry_run {
        Command::new("systemctl").arg("daemon-reload").run()?;
        Command::new("systemctl")
            .args(["enable", "--now", "opsync.service"])
            .run()?;
    }
    steps.done("systemctl daemon-reload; systemctl enable --now opsync.service");
    Ok(())
}
