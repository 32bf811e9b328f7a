//! Reading X.509 certificates: the leaf of a PEM chain on disk, or the DER nginx served.

use std::path::{Path, PathBuf};

use serde::Serialize;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

/// What `certs status` shows of one certificate.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CertInfo {
    pub subject: String,
    /// DNS names and IP addresses of the subjectAltName extension.
    pub sans: Vec<String>,
    pub issuer: String,
    /// Serial number, upper-case hex without leading zeros (as `openssl x509 -serial` prints it).
    pub serial: String,
    /// Unix seconds.
    pub not_before: i64,
    /// Unix seconds.
    pub not_after: i64,
}

/// A certificate that could not be read.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error("cannot read certificate {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} holds no PEM certificate: renew or re-issue it (`opsync certs issue`)")]
    NoPem { path: PathBuf },
    #[error("cannot parse certificate {what}: {message}")]
    Parse { what: String, message: String },
}

impl CertInfo {
    /// Reads the first certificate (the leaf) of the PEM file at `path`.
    pub fn from_pem_file(path: &Path) -> Result<CertInfo, CertError> {
        let bytes = std::fs::read(path).map_err(|source| CertError::Read {
            path: path.to_owned(),
            source,
        })?;
        let pem = x509_parser::pem::Pem::iter_from_buffer(&bytes)
            .filter_map(Result::ok)
            .find(|p| p.label == "CERTIFICATE")
            .ok_or_else(|| CertError::NoPem {
                path: path.to_owned(),
            })?;
        CertInfo::from_der(&pem.contents, &path.display().to_string())
    }

    /// Parses one DER certificate; `what` names it in errors.
    pub fn from_der(der: &[u8], what: &str) -> Result<CertInfo, CertError> {
        let (_, cert) = X509Certificate::from_der(der).map_err(|e| CertError::Parse {
            what: what.to_owned(),
            message: e.to_string(),
        })?;
        Ok(CertInfo::from_x509(&cert))
    }

    fn from_x509(cert: &X509Certificate<'_>) -> CertInfo {
        let mut sans = Vec::new();
        if let Ok(Some(ext)) = cert.subject_alternative_name() {
            for name in &ext.value.general_names {
                match name {
                    GeneralName::DNSName(d) => sans.push((*d).to_owned()),
                    GeneralName::IPAddress(ip) => {
                        if let Some(ip) = ip_to_string(ip) {
                            sans.push(ip);
                        }
                    }
                    _ => {}
                }
            }
        }
        CertInfo {
            subject: cert.subject().to_string(),
            sans,
            issuer: cert.issuer().to_string(),
            serial: serial_hex(cert.raw_serial()),
            not_before: cert.validity().not_before.timestamp(),
            not_after: cert.validity().not_after.timestamp(),
        }
    }

    /// Whether the subjectAltNames cover `name` (a `*.` wildcard covers one label).
    pub fn covers(&self, name: &str) -> bool {
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        self.sans.iter().any(|san| {
            let san = san.trim_end_matches('.').to_ascii_lowercase();
            if let Some(suffix) = san.strip_prefix("*.") {
                name.split_once('.')
                    .is_some_and(|(label, rest)| !label.is_empty() && rest == suffix)
            } else {
                san == name
            }
        })
    }
}

/// Upper-case hex of a serial number without leading zero bytes.
pub fn serial_hex(raw: &[u8]) -> String {
    let start = raw.iter().position(|b| *b != 0).unwrap_or(raw.len());
    let hex: String = raw[start..].iter().map(|b| format!("{b:02X}")).collect();
    if hex.is_empty() { "00".into() } else { hex }
}

fn ip_to_string(bytes: &[u8]) -> Option<String> {
    match bytes.len() {
        4 => {
            let a: [u8; 4] = bytes.try_into().ok()?;
            Some(std::net::Ipv4Addr::from(a).to_string())
        }
        16 => {
            let a: [u8; 16] = bytes.try_into().ok()?;
            Some(std::net::Ipv6Addr::from(a).to_string())
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(sans: &[&str]) -> CertInfo {
        CertInfo {
            subject: String::new(),
            sans: sans.iter().map(|s| s.to_string()).collect(),
            issuer: String::new(),
            serial: "01".into(),
            not_before: 0,
            not_after: 0,
        }
    }

    #[test]
    fn coverage_of_names() {
        let cases: &[(&[&str], &str, bool)] = &[
            (&["example.com"], "example.com", true),
            (&["Example.COM"], "example.com.", true),
            (&["example.com"], "dev.example.com", false),
            (&["*.example.com"], "dev.example.com", true),
            (&["*.example.com"], "example.com", false),
            (&["*.example.com"], "a.dev.example.com", false),
            (&["example.com", "dev.example.com"], "dev.example.com", true),
        ];
        for (sans, name, want) in cases {
            assert_eq!(info(sans).covers(name), *want, "{sans:?} covers {name}");
        }
    }

    #[test]
    fn serial_strips_leading_zeros() {
        assert_eq!(serial_hex(&[0x00, 0x7b, 0x86, 0x0a]), "7B860A");
        assert_eq!(serial_hex(&[0x00]), "00");
    }
}
