//! Certificates: status of files on disk and of what nginx serves, issuance and renewal through
//! certbot's webroot method, and certbot's deploy hook.

use crate::config::Config;

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
    /// True when any certificate needs attention (expired, missing, close to expiry, stale).
    pub attention: bool,
}

/// The scheduled certs job: `certbot renew`, then status of every certificate.
pub fn renew_job(_cfg: &Config) -> anyhow::Result<CertsJobReport> {
    anyhow::bail!("the certs job is not implemented yet")
}
