//! Reading the certificate a TLS server (nginx) actually serves for a name.
//!
//! A TLS handshake with `rustls` and a verifier that accepts any certificate: we want to see
//! what is served, including expired or mismatched certificates, not to trust it. Handshake
//! signatures are still checked, so the peer does hold the certificate's key.

use std::io::Write;
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, ClientConnection, DigitallySignedStruct, SignatureScheme};

use super::cert::{CertError, CertInfo};

/// The served certificate could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ServedError {
    #[error("cannot resolve {address}: {source}")]
    Resolve {
        address: String,
        source: std::io::Error,
    },
    #[error("cannot connect to {address} for {name}: {source} (is nginx running?)")]
    Connect {
        address: String,
        name: String,
        source: std::io::Error,
    },
    #[error("TLS handshake with {address} for {name} failed: {message}")]
    Handshake {
        address: String,
        name: String,
        message: String,
    },
    #[error("{address} sent no certificate for {name}")]
    NoCertificate { address: String, name: String },
    #[error(transparent)]
    Parse(#[from] CertError),
}

/// Connects to `address` (`host:port`), sends `name` as SNI and returns the leaf certificate.
pub fn served_certificate(
    address: &str,
    name: &str,
    timeout: Duration,
) -> Result<CertInfo, ServedError> {
    let addrs: Vec<SocketAddr> = address
        .to_socket_addrs()
        .map_err(|source| ServedError::Resolve {
            address: address.to_owned(),
            source,
        })?
        .collect();
    let connect_err = |source| ServedError::Connect {
        address: address.to_owned(),
        name: name.to_owned(),
        source,
    };
    let mut last = None;
    let mut tcp = None;
    for a in &addrs {
        match TcpStream::connect_timeout(a, timeout) {
            Ok(s) => {
                tcp = Some(s);
                break;
            }
            Err(e) => last = Some(e),
        }
    }
    let mut tcp = tcp
        .ok_or_else(|| connect_err(last.unwrap_or_else(|| std::io::Error::other("no address"))))?;
    tcp.set_read_timeout(Some(timeout)).map_err(connect_err)?;
    tcp.set_write_timeout(Some(timeout)).map_err(connect_err)?;

    let handshake_err = |message: String| ServedError::Handshake {
        address: address.to_owned(),
        name: name.to_owned(),
        message,
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| handshake_err(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAny { provider }))
        .with_no_client_auth();
    let server_name =
        ServerName::try_from(name.to_owned()).map_err(|e| handshake_err(e.to_string()))?;
    let mut conn = ClientConnection::new(Arc::new(config), server_name)
        .map_err(|e| handshake_err(e.to_string()))?;
    while conn.is_handshaking() {
        conn.complete_io(&mut tcp)
            .map_err(|e| handshake_err(e.to_string()))?;
    }
    let leaf = conn
        .peer_certificates()
        .and_then(|c| c.first())
        .ok_or_else(|| ServedError::NoCertificate {
            address: address.to_owned(),
            name: name.to_owned(),
        })?
        .clone();
    conn.send_close_notify();
    let _ = conn.complete_io(&mut tcp);
    let _ = tcp.flush();
    Ok(CertInfo::from_der(
        &leaf,
        &format!("served by {address} for {name}"),
    )?)
}

/// Accepts any certificate chain; checks handshake signatures against the presented key.
#[derive(Debug)]
struct AcceptAny {
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
