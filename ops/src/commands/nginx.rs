//! `opsync nginx render|check|reload`.

use anyhow::Context;

use crate::cli::NginxCommand;
use crate::commands::{Global, fail};
use crate::config::Config;
use crate::exit::{Exit, ToExit};
use crate::nginx::{self, Installed, NginxError};
use crate::output::stdout_text;

pub fn run(global: &Global, cmd: NginxCommand) -> Exit {
    let cfg = match Config::resolve(global.config.as_deref()) {
        Ok(c) => c,
        Err(e) => return fail(Exit::Config, &one_line(e)),
    };
    let result = match cmd {
        NginxCommand::Render { stdout, no_check } => render(&cfg, stdout, !no_check),
        NginxCommand::Check => nginx::check(&cfg).map(|()| {
            stdout_text("nginx configuration ok");
        }),
        NginxCommand::Reload => nginx::reload(&cfg).map(|()| {
            stdout_text("nginx reloaded and serves the certificates on disk");
        }),
    };
    match result {
        Ok(()) => Exit::Ok,
        Err(e) => {
            let exit = e.exit();
            fail(exit, &one_line(e).context("nginx"))
        }
    }
}

/// An error as one line: its own message only. Our typed errors already name their cause, so
/// printing anyhow's chain of sources would repeat it.
pub fn one_line(e: impl std::fmt::Display) -> anyhow::Error {
    anyhow::anyhow!("{e}")
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
        stdout_text(&text);
        return Ok(());
    }
    let path = cfg.path(&cfg.nginx.output);
    match nginx::install(cfg, &text, check)? {
        Installed::Written => stdout_text(&format!("wrote {}", path.display())),
        Installed::Unchanged => stdout_text(&format!("{} is up to date", path.display())),
    }
    Ok(())
}

/// Renders, installs (with `nginx -t`) and reloads: what `certs issue` does after certbot.
pub fn render_install_reload(cfg: &Config) -> anyhow::Result<()> {
    let text = nginx::render_config(cfg)
        .map_err(one_line)
        .context("render the nginx configuration")?;
    nginx::install(cfg, &text, true)
        .map_err(one_line)
        .context("install the nginx configuration")?;
    nginx::reload(cfg)
        .map_err(one_line)
        .context("reload nginx")?;
    Ok(())
}
