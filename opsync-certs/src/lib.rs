//! # opsync-certs
//!
//! The sites opsync serves: their TLS certificates and the nginx in front of them. Issuance and
//! renewal through certbot's webroot method, certbot's deploy hook, the status of each
//! certificate on disk and as nginx serves it, and nginx's site configuration (rendered from the
//! versioned template, checked with `nginx -t`, reloaded only when the check passes).
//!
//! - this module: the scheduled certs job ([`renew_job`]), `certs renew` ([`renew`]) and the
//!   webroot check before an issuance ([`preflight`]);
//! - `cert` (private): reading X.509 certificates (PEM files, DER from a handshake);
//! - `served` (private): the certificate nginx actually serves for a name;
//! - [`status`]: the policy (warn with less than a third of the lifetime left, error when
//!   expired, missing, not covering a name or stale in nginx) and its inputs;
//! - [`certbot`]: certbot command lines, running them, the deploy hook;
//! - [`nginx`]: the site configuration, `nginx -t`, reload and the wait for the new serials.
//!
//! It reads the `[[site]]`, `[certbot]` and `[nginx]` sections of `opsync_core`'s config and
//! runs certbot and nginx through `opsync_core::process`. Errors are typed
//! ([`certbot::CertbotError`], [`PreflightError`], [`nginx::NginxError`]) and carry their exit
//! code (`opsync_core::exit::ToExit`).

mod cert;
pub mod certbot;
pub mod nginx;
mod served;
pub mod status;

use std::collections::BTreeMap;

use opsync_core::config::Config;
use opsync_core::exit::{Exit, ToExit};
use opsync_core::process::Output;

/// Days left of one certificate, as the certs job records it in the metrics.
#[derive(Debug, Clone)]
pub struct CertExpiry {
    /// Certificate (lineage) name, usually the domain.
    pub name: String,
    /// `"disk"` for the file, `"served"` for what nginx serves.
    pub source: &'static str,
    /// Days until not-after (negative when expired); `None` when missing or unreachable.
    pub days_left: Option<f64>,
}

/// What one run of the scheduled certs job did.
#[derive(Debug, Clone, Default)]
pub struct CertsJobReport {
    pub expiries: Vec<CertExpiry>,
    /// True when any certificate needs attention (expired, missing, close to expiry, stale),
    /// or `certbot renew` failed.
    pub attention: bool,
    /// Certificates whose file changed during the run (renewed).
    pub renewed: Vec<String>,
    /// `certbot renew` failed with this message; the expiries were still read.
    pub renew_error: Option<String>,
    /// One line per certificate that needs attention.
    pub problems: Vec<String>,
}

/// Serial of each site's certificate file (none when unreadable), by certificate name.
pub fn disk_serials(cfg: &Config) -> BTreeMap<String, Option<String>> {
    cfg.site
        .iter()
        .map(|s| {
            let serial = cert::CertInfo::from_pem_file(&status::cert_path(cfg, s))
                .ok()
                .map(|c| c.serial);
            (s.cert_name().to_owned(), serial)
        })
        .collect()
}

/// What `certs renew` did.
#[derive(Debug)]
pub struct RenewOutcome {
    pub certbot: Result<Output, certbot::CertbotError>,
    /// Certificates whose serial on disk changed.
    pub renewed: Vec<String>,
}

/// Runs `certbot renew` and reports which certificate files changed.
pub fn renew(cfg: &Config) -> RenewOutcome {
    let before = disk_serials(cfg);
    let cmd = certbot::renew_cmd(cfg);
    tracing::info!(command = %cmd.display(), "renewing certificates");
    let result = certbot::run(cfg, "renew", &cmd);
    let after = disk_serials(cfg);
    let renewed = after
        .iter()
        .filter(|(name, serial)| serial.is_some() && before.get(*name) != Some(serial))
        .map(|(name, _)| name.clone())
        .collect();
    RenewOutcome {
        certbot: result,
        renewed,
    }
}

/// Whether the deploy hook is installed; logs a warning when it is not.
pub fn hook_installed(cfg: &Config) -> bool {
    let path = certbot::hook_path(cfg);
    let ok = path.is_file();
    if !ok && !cfg.site.is_empty() {
        tracing::warn!(
            path = %path.display(),
            "no deploy hook: nginx is not reloaded after a renewal; run `opsync certs install-hook`"
        );
    }
    ok
}

/// The scheduled certs job: `certbot renew`, then status of every certificate, on disk and
/// served. A failed certbot run is reported in the result (not as an error), so the expiries
/// are recorded whatever happened.
pub fn renew_job(cfg: &Config) -> CertsJobReport {
    hook_installed(cfg);
    let outcome = renew(cfg);
    let statuses = status::collect(cfg, true, opsync_core::time::now());
    let mut report = CertsJobReport {
        renewed: outcome.renewed,
        renew_error: outcome.certbot.err().map(|e| e.to_string()),
        ..CertsJobReport::default()
    };
    for s in &statuses {
        report.expiries.extend(s.expiries());
        if s.level != status::Level::Ok {
            report.attention = true;
            for p in &s.problems {
                report.problems.push(format!("{}: {p}", s.domain));
            }
        }
    }
    if let Some(e) = &report.renew_error {
        report.attention = true;
        report.problems.push(e.clone());
    }
    for name in &report.renewed {
        tracing::info!(cert = %name, "renewed");
    }
    for p in &report.problems {
        tracing::warn!("{p}");
    }
    report
}

/// Why the webroot check before an issuance failed.
#[derive(Debug, thiserror::Error)]
pub enum PreflightError {
    #[error("cannot {op} {path}: {source}")]
    Io {
        op: &'static str,
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error(
        "nginx does not serve the challenge folder {webroot} for {domain} on {address} ({detail}): \
         run `opsync nginx render` and `opsync nginx reload` first"
    )]
    NotServed {
        domain: String,
        address: String,
        webroot: std::path::PathBuf,
        detail: String,
    },
}

/// A failed check is a failed issuance: nothing was asked of the CA.
impl ToExit for PreflightError {
    fn exit(&self) -> Exit {
        Exit::Failed
    }
}

/// Before asking the ACME server, checks that nginx serves the webroot's challenge folder for
/// `domain`: writes a token file, fetches it over HTTP with the domain as `Host`, removes it.
/// A failed validation at Let's Encrypt counts against its rate limits; this fails first.
pub fn preflight(cfg: &Config, domain: &str) -> Result<(), PreflightError> {
    use std::io::{Read, Write};
    let webroot = cfg.path(&cfg.certbot.webroot);
    let dir = webroot.join(".well-known").join("acme-challenge");
    let io = |op, path: &std::path::Path| {
        let path = path.to_owned();
        move |source| PreflightError::Io { op, path, source }
    };
    std::fs::create_dir_all(&dir).map_err(io("create folder", &dir))?;
    let token = format!(
        "opsync-preflight-{}-{}",
        std::process::id(),
        opsync_core::time::now()
    );
    let file = dir.join(&token);
    std::fs::write(&file, &token).map_err(io("write", &file))?;
    let host = &cfg.nginx.connect_address;
    let address = if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{}", cfg.nginx.http_port)
    } else {
        format!("{host}:{}", cfg.nginx.http_port)
    };
    let fetch = || -> std::io::Result<String> {
        use std::net::ToSocketAddrs;
        let addr = address
            .to_socket_addrs()?
            .next()
            .ok_or_else(|| std::io::Error::other("no address"))?;
        let timeout = std::time::Duration::from_secs(5);
        let mut s = std::net::TcpStream::connect_timeout(&addr, timeout)?;
        s.set_read_timeout(Some(timeout))?;
        s.set_write_timeout(Some(timeout))?;
        write!(
            s,
            "GET /.well-known/acme-challenge/{token} HTTP/1.0\r\nHost: {domain}\r\n\r\n"
        )?;
        let mut buf = Vec::new();
        s.take(64 * 1024).read_to_end(&mut buf)?;
        Ok(String::from_utf8_lossy(&buf).into_owned())
    };
    let result = fetch();
    let _ = std::fs::remove_file(&file);
    let detail = match result {
        Err(e) => e.to_string(),
        Ok(resp) => {
            let status = resp.lines().next().unwrap_or("").trim().to_owned();
            let body = resp.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
            if status.split_whitespace().nth(1) == Some("200") && body.trim() == token {
                return Ok(());
            }
            format!("got `{status}`")
        }
    };
    Err(PreflightError::NotServed {
        domain: domain.to_owned(),
        address,
        webroot,
        detail,
    })
}
