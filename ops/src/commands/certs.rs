//! `opsync certs status|issue|renew|install-hook`.

use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::cli::CertsCommand;
use crate::commands::{Global, fail};
use crate::output::print;
use opsync_certs::{self as certs, certbot, status};
use opsync_core::config::Config;
use opsync_core::exit::{Exit, ToExit};

pub fn run(global: &Global, cmd: CertsCommand) -> Exit {
    let cfg = match Config::resolve(global.config.as_deref()) {
        Ok(c) => c,
        Err(e) => return fail(e.exit(), &e.into()),
    };
    match cmd {
        CertsCommand::Status { json, disk_only } => status_cmd(&cfg, json, !disk_only),
        CertsCommand::Issue {
            domains,
            no_reload,
            no_preflight,
        } => issue(&cfg, &domains, !no_reload, !no_preflight),
        CertsCommand::Renew { json } => renew(&cfg, json),
        CertsCommand::InstallHook { opsync, print } => {
            match install_hook(global, &cfg, opsync, print) {
                Ok(()) => Exit::Ok,
                Err(e) => fail(Exit::FileIo, &e),
            }
        }
    }
}

/// Prints the statuses; `Attention` when any needs it.
fn report(statuses: &[status::SiteStatus], json: bool) -> Exit {
    for s in statuses {
        if json {
            print(&serde_json::to_string(s).unwrap_or_default());
        } else {
            print(&status::text(s));
        }
    }
    if statuses.iter().any(|s| s.level != status::Level::Ok) {
        Exit::Attention
    } else {
        Exit::Ok
    }
}

fn status_cmd(cfg: &Config, json: bool, served: bool) -> Exit {
    if cfg.site.is_empty() {
        tracing::warn!("no [[site]] in the config: nothing to check");
    }
    report(
        &status::collect(cfg, served, opsync_core::time::now()),
        json,
    )
}

pub(crate) fn issue(cfg: &Config, domains: &[String], reload: bool, preflight: bool) -> Exit {
    if let Some(unknown) = domains
        .iter()
        .find(|d| !cfg.site.iter().any(|s| &s.domain == *d))
    {
        return fail(
            Exit::Usage,
            &anyhow::anyhow!("{unknown} is not a configured [[site]] domain"),
        );
    }
    let webroot = cfg.path(&cfg.certbot.webroot);
    if let Err(e) = std::fs::create_dir_all(&webroot) {
        return fail(
            Exit::FileIo,
            &anyhow::anyhow!("cannot create webroot {}: {e}", webroot.display()),
        );
    }
    let mut failed = 0;
    let mut issued = 0;
    for site in &cfg.site {
        if !domains.is_empty() && !domains.contains(&site.domain) {
            continue;
        }
        if preflight {
            let names = site.names();
            if let Some(e) = names.iter().find_map(|n| certs::preflight(cfg, n).err()) {
                failed += 1;
                fail(e.exit(), &e.into());
                continue;
            }
        }
        let cmd = certbot::issue_cmd(cfg, site);
        tracing::info!(domain = %site.domain, command = %cmd.display(), "issuing");
        match certbot::run(cfg, "certonly", &cmd) {
            Ok(_) => {
                issued += 1;
                print(&format!(
                    "{}: certificate in {}",
                    site.domain,
                    status::cert_path(cfg, site).display()
                ));
            }
            Err(e) => {
                failed += 1;
                let err = anyhow::Error::new(e)
                    .context(format!("issue the certificate for {}", site.domain));
                fail(Exit::Failed, &err);
            }
        }
    }
    if reload && issued > 0 {
        if let Err(e) = super::nginx::render_install_reload(cfg) {
            return fail(Exit::Failed, &e);
        }
        print("nginx serves the new certificates");
    }
    if failed > 0 { Exit::Failed } else { Exit::Ok }
}

fn renew(cfg: &Config, json: bool) -> Exit {
    certs::hook_installed(cfg);
    let outcome = certs::renew(cfg);
    for name in &outcome.renewed {
        tracing::info!(cert = %name, "renewed");
    }
    let certbot_failed = outcome.certbot.is_err();
    if let Err(e) = outcome.certbot {
        fail(
            Exit::Failed,
            &anyhow::Error::new(e).context("certbot renew"),
        );
    }
    let exit = report(&status::collect(cfg, true, opsync_core::time::now()), json);
    if certbot_failed { Exit::Failed } else { exit }
}

fn install_hook(
    global: &Global,
    cfg: &Config,
    opsync: Option<PathBuf>,
    to_stdout: bool,
) -> anyhow::Result<()> {
    let opsync = match opsync {
        Some(p) => std::path::absolute(&p).with_context(|| format!("resolve {}", p.display()))?,
        None => std::env::current_exe().context("find the path of this opsync binary")?,
    };
    let config = match &global.config {
        Some(p) => Some(p.clone()),
        None => Some(PathBuf::from("opsync.toml")).filter(|p| p.exists()),
    }
    .map(|p| std::path::absolute(&p).with_context(|| format!("resolve {}", p.display())))
    .transpose()?;
    let script = certbot::hook_script(&opsync, config.as_deref());
    if to_stdout {
        print(&script);
        return Ok(());
    }
    let path = certbot::hook_path(cfg);
    certbot::install_hook(&path, &script)?;
    print(&format!(
        "installed {} (runs {} nginx reload after every renewal)",
        path.display(),
        describe(&opsync, config.as_deref())
    ));
    Ok(())
}

fn describe(opsync: &Path, config: Option<&Path>) -> String {
    match config {
        Some(c) => format!("{} --config {}", opsync.display(), c.display()),
        None => opsync.display().to_string(),
    }
}
