//! `[[site]]`, `[certbot]`, `[nginx]`: served domains, their certificates and the reverse proxy.
//!
//! Every key has a default that matches a Debian server (certbot's `/etc/letsencrypt`, nginx's
//! `/etc/nginx/sites-enabled`), so a config with only the `[[site]]` entries is enough.

use std::path::PathBuf;

use serde::Deserialize;

/// One served domain.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Site {
    /// The domain name, for example `mealmind.example.com`.
    pub domain: String,
    /// Further names served by the same server block and covered by the same certificate.
    #[serde(default)]
    pub aliases: Vec<String>,
    /// The stack whose backend serves it.
    #[serde(default)]
    pub stack: Option<String>,
    /// Backend address for `proxy_pass`, for example `127.0.0.1:8080`.
    #[serde(default)]
    pub upstream: Option<String>,
    /// Send `Strict-Transport-Security` (default: on for the stack named `prod`).
    #[serde(default)]
    pub hsts: Option<bool>,
    /// certbot's certificate (lineage) name (default: the domain).
    #[serde(default)]
    pub cert_name: Option<String>,
    /// Certificate chain nginx serves (default: `CONFIG-DIR/live/CERT-NAME/fullchain.pem`).
    #[serde(default)]
    pub cert_file: Option<PathBuf>,
    /// Private key (default: `CONFIG-DIR/live/CERT-NAME/privkey.pem`).
    #[serde(default)]
    pub key_file: Option<PathBuf>,
}

impl Site {
    /// The domain followed by its aliases: the names the certificate must cover.
    pub fn names(&self) -> Vec<String> {
        let mut v = vec![self.domain.clone()];
        v.extend(self.aliases.iter().cloned());
        v
    }

    /// certbot's lineage name.
    pub fn cert_name(&self) -> &str {
        self.cert_name.as_deref().unwrap_or(&self.domain)
    }

    /// Whether the HTTPS server sends HSTS.
    pub fn hsts(&self) -> bool {
        self.hsts.unwrap_or(self.stack.as_deref() == Some("prod"))
    }

    /// The certificate chain file, before resolving against the config folder.
    pub fn cert_file(&self, certbot: &CertbotConfig) -> PathBuf {
        self.cert_file.clone().unwrap_or_else(|| {
            certbot
                .config_dir
                .join("live")
                .join(self.cert_name())
                .join("fullchain.pem")
        })
    }

    /// The private key file, before resolving against the config folder.
    pub fn key_file(&self, certbot: &CertbotConfig) -> PathBuf {
        self.key_file.clone().unwrap_or_else(|| {
            certbot
                .config_dir
                .join("live")
                .join(self.cert_name())
                .join("privkey.pem")
        })
    }
}

/// `[certbot]`: how certbot is run.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct CertbotConfig {
    /// The certbot program.
    pub program: PathBuf,
    /// `--config-dir` (certificates, accounts, renewal configs and hooks).
    pub config_dir: PathBuf,
    /// `--work-dir`.
    pub work_dir: PathBuf,
    /// `--logs-dir`.
    pub logs_dir: PathBuf,
    /// ACME directory URL (`--server`); none: certbot's default, Let's Encrypt production.
    pub server: Option<String>,
    /// Account email; none: `--register-unsafely-without-email`.
    pub email: Option<String>,
    /// Directory nginx serves `/.well-known/acme-challenge/` from (`certonly --webroot -w`).
    pub webroot: PathBuf,
    /// CA bundle certbot trusts for the ACME server (sets `REQUESTS_CA_BUNDLE`); for a
    /// private test server.
    pub ca_bundle: Option<PathBuf>,
    /// Extra arguments for every certbot run (for example `--key-type`, `rsa`).
    pub extra_args: Vec<String>,
    /// Seconds a certbot run may take before it is killed.
    pub timeout_secs: u64,
    /// Warn when less than this fraction of a certificate's lifetime is left.
    pub warn_fraction: f64,
}

impl Default for CertbotConfig {
    fn default() -> Self {
        CertbotConfig {
            program: PathBuf::from("certbot"),
            config_dir: PathBuf::from("/etc/letsencrypt"),
            work_dir: PathBuf::from("/var/lib/letsencrypt"),
            logs_dir: PathBuf::from("/var/log/letsencrypt"),
            server: None,
            email: None,
            webroot: PathBuf::from("/var/www/letsencrypt"),
            ca_bundle: None,
            extra_args: Vec::new(),
            timeout_secs: 900,
            warn_fraction: 1.0 / 3.0,
        }
    }
}

/// How `nginx reload` makes nginx re-read its configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ReloadMethod {
    /// `nginx [-c FILE] [-p PREFIX] -s reload`.
    Signal,
    /// `systemctl reload nginx`.
    Systemctl,
}

/// `[nginx]`: how the site config is rendered, checked and reloaded.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct NginxConfig {
    /// The nginx program.
    pub program: PathBuf,
    /// Where `nginx render` writes the site configuration.
    pub output: PathBuf,
    /// A template to use instead of the built-in `templates/nginx-site.conf`.
    pub template: Option<PathBuf>,
    /// nginx's main configuration (`-c`); none: nginx's compiled-in default.
    pub main_config: Option<PathBuf>,
    /// nginx's prefix (`-p`); none: the compiled-in default.
    pub prefix: Option<PathBuf>,
    /// Address the `listen` lines bind (none: all addresses).
    pub listen_address: Option<String>,
    /// Port of the HTTP server (ACME challenges and the redirect).
    pub http_port: u16,
    /// Port of the HTTPS server.
    pub https_port: u16,
    /// Address `certs status` connects to, to read the certificate nginx serves.
    pub connect_address: String,
    /// `signal` (`nginx -s reload`) or `systemctl` (`systemctl reload nginx`).
    pub reload: ReloadMethod,
    /// The nginx version the template targets, for example `1.22.1` (none: ask `nginx -v`).
    pub version: Option<String>,
    /// Seconds an nginx run (`-t`, `-s reload`) may take.
    pub timeout_secs: u64,
    /// Seconds `nginx reload` waits for nginx to serve the certificates on disk.
    pub reload_wait_secs: u64,
}

impl Default for NginxConfig {
    fn default() -> Self {
        NginxConfig {
            program: PathBuf::from("nginx"),
            output: PathBuf::from("/etc/nginx/sites-enabled/opsync.conf"),
            template: None,
            main_config: None,
            prefix: None,
            listen_address: None,
            http_port: 80,
            https_port: 443,
            connect_address: "127.0.0.1".into(),
            reload: ReloadMethod::Signal,
            version: None,
            timeout_secs: 60,
            reload_wait_secs: 15,
        }
    }
}
