//! nginx: rendering the site configuration from the versioned template, `nginx -t`, reload.
//!
//! A reload never relies on the exit status of a HUP: nginx answers a bad configuration by
//! keeping the old one and logging the error. So [`reload`] runs `nginx -t` first and reloads
//! only when it passes, then waits until nginx serves the certificates on disk.

pub mod render;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::status::{cert_path, read_served};
use opsync_core::config::Config;
use opsync_core::config::sites::ReloadMethod;
use opsync_core::exit::{Exit, ToExit};
use opsync_core::fs::{WriteError, write_atomic};
use opsync_core::process::{Command, ProcessError};

/// What the installed nginx (and the OpenSSL it was built with) supports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Features {
    /// `http2 on;` exists (nginx 1.25.1+); older versions take `listen ... ssl http2`.
    pub http2_directive: bool,
    /// TLS 1.3 is available (OpenSSL 1.1.1+).
    pub tls13: bool,
}

/// An nginx operation that failed.
#[derive(Debug, thiserror::Error)]
pub enum NginxError {
    #[error(transparent)]
    Process(#[from] ProcessError),
    #[error("site {domain} has no upstream: set `upstream = \"HOST:PORT\"` in its [[site]]")]
    NoUpstream { domain: String },
    #[error("nginx template: {message}")]
    Template { message: String },
    #[error(transparent)]
    Write(#[from] WriteError),
    #[error("cannot {op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot read the nginx version from `{command}` (set [nginx] version): {output}")]
    Version { command: String, output: String },
    #[error("`{command}` rejects the configuration, nginx keeps running the old one: {detail}")]
    CheckFailed { command: String, detail: String },
    #[error(
        "after the reload nginx still serves serial {served} for {domain}, the file has {disk}: \
         look at nginx's error log"
    )]
    Stale {
        domain: String,
        served: String,
        disk: String,
    },
    #[error(
        "after the reload nginx serves no certificate for {domain} ({detail}): render the site \
         configuration (`opsync nginx render`) and look at nginx's error log"
    )]
    NotServing { domain: String, detail: String },
}

impl ToExit for NginxError {
    fn exit(&self) -> Exit {
        match self {
            NginxError::NoUpstream { .. } | NginxError::Template { .. } => Exit::Config,
            NginxError::Io { .. } | NginxError::Write(_) => Exit::FileIo,
            _ => Exit::Failed,
        }
    }
}

fn io(op: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> NginxError {
    let path = path.to_owned();
    move |source| NginxError::Io { op, path, source }
}

/// `nginx [-c MAIN] [-p PREFIX]`: the command with the configured main config and prefix.
fn nginx_cmd(cfg: &Config) -> Command {
    let n = &cfg.nginx;
    let mut cmd =
        Command::new(cfg.program(&n.program)).timeout(Duration::from_secs(n.timeout_secs));
    if let Some(p) = &n.prefix {
        cmd = cmd.arg("-p").arg(cfg.path(p));
    }
    if let Some(c) = &n.main_config {
        cmd = cmd.arg("-c").arg(cfg.path(c));
    }
    cmd
}

/// The features of the installed nginx: from `[nginx] version` if set, else `nginx -V`.
pub fn features(cfg: &Config) -> Result<Features, NginxError> {
    if let Some(v) = &cfg.nginx.version {
        let version = parse_version(v).ok_or_else(|| NginxError::Version {
            command: "[nginx] version".into(),
            output: v.clone(),
        })?;
        return Ok(features_of(version, None));
    }
    let cmd = Command::new(cfg.program(&cfg.nginx.program))
        .arg("-V")
        .timeout(Duration::from_secs(cfg.nginx.timeout_secs));
    let out = cmd.run()?;
    // nginx prints its version and build options on stderr.
    let text = format!("{}{}", out.stderr, out.stdout);
    let version = text
        .lines()
        .find_map(|l| l.strip_prefix("nginx version: "))
        .and_then(|l| l.split('/').nth(1))
        .and_then(|v| parse_version(v.split_whitespace().next().unwrap_or("")))
        .ok_or_else(|| NginxError::Version {
            command: cmd.display(),
            output: text.lines().next().unwrap_or("").to_owned(),
        })?;
    let openssl = text
        .lines()
        .find_map(|l| l.split("OpenSSL ").nth(1))
        .and_then(|v| parse_version(v.split_whitespace().next().unwrap_or("")));
    Ok(features_of(version, openssl))
}

fn features_of(nginx: (u32, u32, u32), openssl: Option<(u32, u32, u32)>) -> Features {
    Features {
        http2_directive: nginx >= (1, 25, 1),
        tls13: openssl.is_none_or(|v| v >= (1, 1, 1)),
    }
}

/// `1.22.1` -> (1, 22, 1); OpenSSL's `1.1.1w` -> (1, 1, 1).
fn parse_version(s: &str) -> Option<(u32, u32, u32)> {
    let mut parts = s.split('.').map(|p| {
        let digits: String = p.chars().take_while(char::is_ascii_digit).collect();
        digits.parse::<u32>().ok()
    });
    Some((
        parts.next()??,
        parts.next()??,
        parts.next().flatten().unwrap_or(0),
    ))
}

/// Renders the site configuration with the configured (or built-in) template.
pub fn render_config(cfg: &Config) -> Result<String, NginxError> {
    let features = features(cfg)?;
    let template = match &cfg.nginx.template {
        Some(p) => {
            let p = cfg.path(p);
            std::fs::read_to_string(&p).map_err(io("read template", &p))?
        }
        None => render::BUILTIN_TEMPLATE.to_owned(),
    };
    render::render(&template, &render::input(cfg, features)?)
}

/// `nginx -t`: the configuration (with the rendered site file it includes) is valid.
pub fn check(cfg: &Config) -> Result<(), NginxError> {
    let cmd = nginx_cmd(cfg).arg("-t").arg("-q");
    let out = match cmd.run() {
        Ok(_) => return Ok(()),
        Err(ProcessError::Failed { output, .. }) => output,
        Err(e) => return Err(e.into()),
    };
    let text = format!("{}{}", out.stderr, out.stdout);
    let detail = match text.lines().find_map(|l| l.split_once("[emerg] ")) {
        // `2026/11/29 23:08:23 [emerg] 31816#31816: unknown directive ...`
        Some((_, rest)) => rest.split_once(": ").map_or(rest, |(_, m)| m).trim(),
        None => text
            .lines()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("no output")
            .trim(),
    }
    .to_owned();
    Err(NginxError::CheckFailed {
        command: cmd.display(),
        detail,
    })
}

/// What [`install`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Installed {
    Unchanged,
    Written,
}

/// Writes `text` to `[nginx] output` and runs `nginx -t` (unless `check_after` is false). When
/// the check fails the previous file is put back, so a bad render never stays installed.
pub fn install(cfg: &Config, text: &str, check_after: bool) -> Result<Installed, NginxError> {
    let path = cfg.path(&cfg.nginx.output);
    let old = match std::fs::read(&path) {
        Ok(b) => Some(b),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(io("read", &path)(e)),
    };
    if old.as_deref() == Some(text.as_bytes()) {
        if check_after {
            check(cfg)?;
        }
        return Ok(Installed::Unchanged);
    }
    write_atomic(&path, text.as_bytes())?;
    if check_after {
        if let Err(e) = check(cfg) {
            match &old {
                Some(b) => write_atomic(&path, b)?,
                None => std::fs::remove_file(&path).map_err(io("remove", &path))?,
            }
            return Err(e);
        }
    }
    Ok(Installed::Written)
}

/// Checks the configuration, reloads nginx only when the check passes, then waits until nginx
/// serves each site's certificate file (when the file exists).
pub fn reload(cfg: &Config) -> Result<(), NginxError> {
    check(cfg)?;
    match cfg.nginx.reload {
        ReloadMethod::Signal => nginx_cmd(cfg).arg("-s").arg("reload").run()?,
        ReloadMethod::Systemctl => Command::new("systemctl")
            .args(["reload", "nginx"])
            .timeout(Duration::from_secs(cfg.nginx.timeout_secs))
            .run()?,
    };
    tracing::info!("nginx reloaded");
    wait_served(cfg, Duration::from_secs(cfg.nginx.reload_wait_secs))
}

/// Waits until nginx serves, for every site with a certificate file, that file's certificate.
///
/// Right after a reload, old workers may still accept a connection or two until the master
/// tells them to stop, so one matching answer is not enough: the served serial must match on
/// consecutive probes for [`STABLE_FOR`]. Polls with a timeout.
pub fn wait_served(cfg: &Config, timeout: Duration) -> Result<(), NginxError> {
    let start = Instant::now();
    for site in &cfg.site {
        let path = cert_path(cfg, site);
        let Ok(disk) = crate::cert::CertInfo::from_pem_file(&path) else {
            continue;
        };
        let mut pause = Duration::from_millis(10);
        let mut matching_since: Option<(Instant, u32)> = None;
        loop {
            let served = read_served(cfg, site);
            match &served {
                Ok(s) if s.serial == disk.serial => {
                    let (since, n) = matching_since.unwrap_or((Instant::now(), 0));
                    if n + 1 >= 3 && since.elapsed() >= STABLE_FOR {
                        tracing::info!(domain = %site.domain, serial = %s.serial, "nginx serves the certificate on disk");
                        break;
                    }
                    matching_since = Some((since, n + 1));
                    pause = Duration::from_millis(20);
                }
                _ if start.elapsed() < timeout => matching_since = None,
                Ok(s) => {
                    return Err(NginxError::Stale {
                        domain: site.domain.clone(),
                        served: s.serial.clone(),
                        disk: disk.serial.clone(),
                    });
                }
                Err(e) => {
                    return Err(NginxError::NotServing {
                        domain: site.domain.clone(),
                        detail: e.clone(),
                    });
                }
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(200));
        }
    }
    Ok(())
}

/// How long the served certificate must match the file after a reload.
pub const STABLE_FOR: Duration = Duration::from_millis(150);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions() {
        assert_eq!(parse_version("1.22.1"), Some((1, 22, 1)));
        assert_eq!(parse_version("1.1.1w"), Some((1, 1, 1)));
        assert_eq!(parse_version("3.0"), Some((3, 0, 0)));
        assert_eq!(parse_version("x"), None);
        assert!(!features_of((1, 22, 1), Some((3, 0, 11))).http2_directive);
        assert!(features_of((1, 25, 1), None).http2_directive);
        assert!(!features_of((1, 18, 0), Some((1, 1, 0))).tls13);
    }

    #[test]
    fn missing_nginx_is_one_clear_error() {
        let mut cfg = Config::default();
        cfg.nginx.program = "opsync-no-such-nginx".into();
        let err = check(&cfg).unwrap_err();
        assert_eq!(
            err.to_string(),
            "`opsync-no-such-nginx` not found: install it or set its path in the config"
        );
    }
}
