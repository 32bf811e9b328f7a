//! Certificates: status of files on disk and of what nginx serves, issuance and renewal through
//! certbot's webroot method, and certbot's deploy hook.
//!
//! - [`cert`]: reading X.509 certificates (PEM files, DER from a handshake).
//! - [`served`]: the certificate nginx actually serves for a name.
//! - [`status`]: the policy (warn with less than a third of the lifetime left, error when
//!   expired, missing, not covering a name or stale in nginx) and its inputs.
//! - [`certbot`]: certbot command lines and the deploy hook.

pub mod cert;
pub mod certbot;
pub mod served;
pub mod status;

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::config::Config;
use crate::process::{Output, ProcessError};

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

/// Seconds since the Unix epoch, read once at the edge and passed into the policy.
pub fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
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
    pub certbot: Result<Output, ProcessError>,
    /// Certificates whose serial on disk changed.
    pub renewed: Vec<String>,
}

/// Runs `certbot renew` and reports which certificate files changed.
pub fn renew(cfg: &Config) -> RenewOutcome {
    let before = disk_serials(cfg);
    let cmd = certbot::renew_cmd(cfg);
    tracing::info!(command = %cmd.display(), "renewing certificates");
    let result = cmd.run();
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
pub fn renew_job(cfg: &Config) -> anyhow::Result<CertsJobReport> {
    hook_installed(cfg);
    let outcome = renew(cfg);
    let statuses = status::collect(cfg, true, now_unix());
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
    Ok(report)
}
