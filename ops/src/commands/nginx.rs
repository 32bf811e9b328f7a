//! `opsync nginx render|check|reload`.

use anyhow::Context;

use crate::cli::NginxCommand;
use crate::commands::{Global, fail};
use crate::output::print;
use opsync_certs::nginx::{self, Installed, NginxError};
use opsync_core::config::Config;
use opsync_core::exit::{Exit, ToExit};

pub fn run(global: &Global, cmd: NginxCommand) -> Exit {
    let cfg = match Config::resolve(global.config.as_deref()) {
        Ok(c) => c,
        Err(e) => return fail(e.exit(), &e.into()),
    };
    let result = match cmd {
        NginxCommand::Render { stdout, no_check } => render(&cfg, stdout, !no_check),
        NginxCommand::Check => nginx::check(&cfg).map(|()| {
            print("nginx configuration ok");
        }),
        NginxCommand::Reload => nginx::reload(&cfg).map(|()| {
            print("nginx reloaded and serves the certificates on disk");
        }),
    };
    match result {
        Ok(()) => Exit::Ok,
        Err(e) => {
            let exit = e.exit();
            fail(exit, &anyhow::Error::new(e).context("nginx"))
        }
    }
}

fn render(cfg: &Config, to_stdout: bool, check: bool) -> Result<(), NginxError> {
    let text = nginx::render_config(cfg)?;
    for site in nginx::render::input(cfg, nginx::features(cfg)?)?.sites {
        if !site.tls {
            tracing::warn!(
                domain = %site.domain,
                cert = %site.cert_file,
                "no certificate yet: HTTPS left out; run `opsync certs issue`"
            );
        }
    }
    if to_stdout {
        print(&text);
        return Ok(());
    }
    let path = cfg.path(&cfg.nginx.output);
    match nginx::install(cfg, &text, check)? {
        Installed::Written => print(&format!("wrote {}", path.display())),
        Installed::Unchanged => print(&format!("{} is up to date", path.display())),
    }
    Ok(())
}

/// Renders, installs (with `nginx -t`) and reloads: what `certs issue` does after certbot.
pub fn render_install_reload(cfg: &Config) -> anyhow::Result<()> {
    let text = nginx::render_config(cfg).context("render the nginx configuration")?;
    nginx::install(cfg, &text, true).context("install the nginx configuration")?;
    nginx::reload(cfg).context("reload nginx")?;
    Ok(())
}
