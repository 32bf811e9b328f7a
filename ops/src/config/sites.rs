//! `[[site]]`, `[certbot]`, `[nginx]`: served domains, their certificates and the reverse proxy.

use std::path::PathBuf;

use serde::Deserialize;

/// One served domain.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Site {
    /// The domain name, for example `mealmind.example.com`.
    pub domain: String,
    /// The stack whose backend serves it.
    #[serde(default)]
    pub stack: Option<String>,
    /// Backend address for `proxy_pass`, for example `127.0.0.1:8080`.
    #[serde(default)]
    pub upstream: Option<String>,
}

/// `[certbot]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct CertbotConfig {
    pub config_dir: Option<PathBuf>,
}

/// `[nginx]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct NginxConfig {
    pub output: Option<PathBuf>,
}
