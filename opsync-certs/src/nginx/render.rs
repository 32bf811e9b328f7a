//! Rendering the site configuration from the versioned template (`templates/nginx-site.conf`).
//!
//! [`render`] is pure: the same [`RenderInput`] always gives the same text. [`input`] builds
//! the input from the config, the installed nginx's [`Features`] and which certificate files
//! exist (a site without a certificate yet gets only its HTTP server, so `nginx -t` passes
//! before the first issuance).

use serde::Serialize;

use super::{Features, NginxError};
use crate::status::{cert_path, key_path};
use opsync_core::config::Config;

/// The template shipped with opsync.
pub const BUILTIN_TEMPLATE: &str = include_str!("../../../templates/nginx-site.conf");

/// Everything the template sees.
#[derive(Debug, Clone, Serialize)]
pub struct RenderInput {
    pub sites: Vec<SiteInput>,
    /// Challenge directory served under `/.well-known/acme-challenge/`.
    pub webroot: String,
    /// `listen` arguments of the HTTP servers.
    pub http_listen: Vec<String>,
    /// `listen` arguments (without `ssl`) of the HTTPS servers.
    pub https_listen: Vec<String>,
    /// `:PORT` in the redirect when HTTPS is not on 443, else empty.
    pub https_port_suffix: String,
    /// `http2 on;` (nginx 1.25.1+) instead of `listen ... http2`.
    pub http2_directive: bool,
    /// `ssl_protocols` argument.
    pub ssl_protocols: String,
}

/// One site as the template sees it.
#[derive(Debug, Clone, Serialize)]
pub struct SiteInput {
    pub domain: String,
    pub names: Vec<String>,
    pub stack: Option<String>,
    pub upstream: String,
    pub hsts: bool,
    /// Whether the certificate and key exist, so the HTTPS server can be rendered.
    pub tls: bool,
    pub cert_file: String,
    pub key_file: String,
}

/// Builds the template input from the config. Fails when a site has no upstream.
pub fn input(cfg: &Config, features: Features) -> Result<RenderInput, NginxError> {
    let n = &cfg.nginx;
    let listen = |port: u16| match &n.listen_address {
        Some(a) if a.contains(':') && !a.starts_with('[') => vec![format!("[{a}]:{port}")],
        Some(a) => vec![format!("{a}:{port}")],
        None => vec![port.to_string(), format!("[::]:{port}")],
    };
    let mut sites = Vec::new();
    for site in &cfg.site {
        let upstream = site
            .upstream
            .clone()
            .ok_or_else(|| NginxError::NoUpstream {
                domain: site.domain.clone(),
            })?;
        let cert = cert_path(cfg, site);
        let key = key_path(cfg, site);
        sites.push(SiteInput {
            domain: site.domain.clone(),
            names: site.names(),
            stack: site.stack.clone(),
            upstream,
            hsts: site.hsts(),
            tls: cert.exists() && key.exists(),
            cert_file: cert.display().to_string(),
            key_file: key.display().to_string(),
        });
    }
    Ok(RenderInput {
        sites,
        webroot: cfg.path(&cfg.certbot.webroot).display().to_string(),
        http_listen: listen(n.http_port),
        https_listen: listen(n.https_port),
        https_port_suffix: if n.https_port == 443 {
            String::new()
        } else {
            format!(":{}", n.https_port)
        },
        http2_directive: features.http2_directive,
        ssl_protocols: if features.tls13 {
            "TLSv1.2 TLSv1.3".into()
        } else {
            "TLSv1.2".into()
        },
    })
}

/// Renders `template` (minijinja syntax) with `input`. Unknown variables are errors.
pub fn render(template: &str, input: &RenderInput) -> Result<String, NginxError> {
    let err = |e: minijinja::Error| NginxError::Template {
        message: format!("{e:#}").replace('\n', " "),
    };
    let mut env = minijinja::Environment::new();
    env.set_trim_blocks(true);
    env.set_lstrip_blocks(true);
    env.set_keep_trailing_newline(true);
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
    env.add_template("nginx-site.conf", template).map_err(err)?;
    env.get_template("nginx-site.conf")
        .map_err(err)?
        .render(input)
        .map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(extra: &str) -> Config {
        let mut cfg: Config = toml::from_str(&format!(
            r#"
            [[site]]
            domain = "mealmind.example.com"
            stack = "prod"
            upstream = "127.0.0.1:8080"
            cert-file = "certs/prod.pem"
            key-file = "certs/prod.key"

            [[site]]
            domain = "dev.mealmind.example.com"
            stack = "dev"
            upstream = "127.0.0.1:8081"
            cert-file = "certs/dev.pem"
            key-file = "certs/dev.key"
            {extra}
            "#
        ))
        .unwrap();
        cfg.base_dir = "/srv/opsync-render-test".into();
        cfg
    }

    fn with_certs(input: &mut RenderInput) {
        for s in &mut input.sites {
            s.tls = true;
        }
    }

    const OLD: Features = Features {
        http2_directive: false,
        tls13: true,
    };
    const NEW: Features = Features {
        http2_directive: true,
        tls13: true,
    };

    #[test]
    fn both_sites_with_certificates() {
        let mut input = input(&cfg(""), OLD).unwrap();
        with_certs(&mut input);
        insta::assert_snapshot!(render(BUILTIN_TEMPLATE, &input).unwrap());
    }

    #[test]
    fn newer_nginx_and_high_ports_on_loopback() {
        let mut input = input(
            &cfg(r#"
            [nginx]
            listen-address = "127.0.0.1"
            http-port = 8080
            https-port = 8443
            [certbot]
            webroot = "/srv/acme"
            "#),
            NEW,
        )
        .unwrap();
        with_certs(&mut input);
        input.sites.truncate(1);
        insta::assert_snapshot!(render(BUILTIN_TEMPLATE, &input).unwrap());
    }

    #[test]
    fn before_first_issuance_only_http() {
        let mut input = input(&cfg(""), OLD).unwrap();
        for s in &mut input.sites {
            s.cert_file = "/etc/letsencrypt/live/x/fullchain.pem".into();
        }
        let text = render(BUILTIN_TEMPLATE, &input).unwrap();
        assert!(!text.contains("ssl_certificate"), "{text}");
        assert!(text.contains("acme-challenge"));
        insta::assert_snapshot!(text);
    }

    #[test]
    fn rendering_is_deterministic() {
        let mut input = input(&cfg(""), OLD).unwrap();
        with_certs(&mut input);
        let a = render(BUILTIN_TEMPLATE, &input).unwrap();
        let b = render(BUILTIN_TEMPLATE, &input).unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn site_without_upstream_is_an_error() {
        let cfg: Config = toml::from_str("[[site]]\ndomain = \"example.com\"\n").unwrap();
        let err = input(&cfg, OLD).unwrap_err();
        assert_eq!(
            err.to_string(),
            "site example.com has no upstream: set `upstream = \"HOST:PORT\"` in its [[site]]"
        );
    }

    #[test]
    fn unknown_variable_in_template_is_an_error() {
        let input = input(&cfg(""), OLD).unwrap();
        let err = render("{{ no_such_thing }}", &input).unwrap_err();
        assert!(
            err.to_string().contains("no_such_thing") || err.to_string().contains("undefined"),
            "{err}"
        );
    }
}
