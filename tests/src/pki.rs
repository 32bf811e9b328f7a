//! A throw-away certificate authority made with the `openssl` command at test time, and
//! independent readings of certificates (files and what a TLS server serves) through `openssl`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::require_program;

/// A test CA in a folder: `ca.pem` and `ca.key`.
pub struct TestCa {
    dir: PathBuf,
    pub cert: PathBuf,
    key: PathBuf,
}

fn openssl(args: &[&str], dir: &Path) -> String {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "openssl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

impl TestCa {
    /// Creates a CA (EC P-256, valid two days) in `dir`.
    pub fn new(dir: &Path) -> TestCa {
        require_program("openssl", "openssl");
        std::fs::create_dir_all(dir).unwrap();
        openssl(
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-days",
                "2",
                "-subj",
                "/CN=opsync test CA",
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
            ],
            dir,
        );
        TestCa {
            dir: dir.to_owned(),
            cert: dir.join("ca.pem"),
            key: dir.join("ca.key"),
        }
    }

    /// Issues a server certificate for `names` (DNS names or IP addresses), valid for `days`;
    /// returns (certificate, key) paths named after `file_stem`.
    pub fn issue(&self, file_stem: &str, names: &[&str], days: u32) -> (PathBuf, PathBuf) {
        self.issue_days(file_stem, names, days as i32)
    }

    /// Like [`TestCa::issue`]; a negative `days` gives a certificate that has already expired.
    pub fn issue_days(&self, file_stem: &str, names: &[&str], days: i32) -> (PathBuf, PathBuf) {
        let key = self.dir.join(format!("{file_stem}.key"));
        let cert = self.dir.join(format!("{file_stem}.pem"));
        let csr = self.dir.join(format!("{file_stem}.csr"));
        let ext = self.dir.join(format!("{file_stem}.ext"));
        let sans: Vec<String> = names
            .iter()
            .map(|n| {
                if n.parse::<std::net::IpAddr>().is_ok() {
                    format!("IP:{n}")
                } else {
                    format!("DNS:{n}")
                }
            })
            .collect();
        std::fs::write(
            &ext,
            format!(
                "subjectAltName={}\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n\
                 extendedKeyUsage=serverAuth\nsubjectKeyIdentifier=hash\n\
                 authorityKeyIdentifier=keyid,issuer\n",
                sans.join(",")
            ),
        )
        .unwrap();
        let s = |p: &Path| p.to_str().unwrap().to_owned();
        openssl(
            &[
                "req",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-keyout",
                &s(&key),
                "-out",
                &s(&csr),
                "-subj",
                &format!("/CN={}", names[0]),
            ],
            &self.dir,
        );
        openssl(
            &[
                "x509",
                "-req",
                "-in",
                &s(&csr),
                "-CA",
                &s(&self.cert),
                "-CAkey",
                &s(&self.key),
                "-CAcreateserial",
                "-out",
                &s(&cert),
                "-days",
                &days.to_string(),
                "-extfile",
                &s(&ext),
            ],
            &self.dir,
        );
        (cert, key)
    }
}

/// Upper-case hex without leading zeros, so serials from different tools compare equal.
pub fn normalize_serial(s: &str) -> String {
    let s = s.trim().trim_start_matches("serial=").to_ascii_uppercase();
    let t = s.trim_start_matches('0');
    if t.is_empty() {
        "0".into()
    } else {
        t.to_owned()
    }
}

/// Serial of the first certificate in the PEM file at `path`, read by `openssl x509`.
pub fn file_serial(path: &Path) -> String {
    let out = openssl(
        &["x509", "-in", path.to_str().unwrap(), "-noout", "-serial"],
        Path::new("."),
    );
    normalize_serial(&out)
}

/// Serial of the certificate a TLS server on 127.0.0.1:`port` serves for `name`, read by
/// `openssl s_client`.
pub fn served_serial(port: u16, name: &str) -> String {
    let pem = served_pem(port, name);
    let mut child = Command::new("openssl")
        .args(["x509", "-noout", "-serial"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run openssl x509");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(pem.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "openssl x509 on served certificate failed"
    );
    normalize_serial(&String::from_utf8_lossy(&out.stdout))
}

/// The PEM certificate a TLS server on 127.0.0.1:`port` serves for `name`.
pub fn served_pem(port: u16, name: &str) -> String {
    let out = Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            &format!("127.0.0.1:{port}"),
            "-servername",
            name,
        ])
        .stdin(Stdio::null())
        .output()
        .expect("run openssl s_client");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let start = text
        .find("-----BEGIN CERTIFICATE-----")
        .unwrap_or_else(|| panic!("no certificate served on port {port} for {name}: {text}"));
    let end = text[start..].find("-----END CERTIFICATE-----").unwrap() + start + 25;
    format!("{}\n", &text[start..end])
}

/// Whether the certificate at `path` is still valid `secs` seconds from now
/// (`openssl x509 -checkend`).
pub fn valid_for(path: &Path, secs: i64) -> bool {
    Command::new("openssl")
        .args([
            "x509",
            "-in",
            path.to_str().unwrap(),
            "-noout",
            "-checkend",
            &secs.to_string(),
        ])
        .stdout(Stdio::null())
        .status()
        .expect("run openssl x509 -checkend")
        .success()
}

/// Whether `openssl verify` accepts `cert` with `chain` as intermediates up to `root`.
pub fn verifies(root: &Path, chain: &Path, cert: &Path) -> bool {
    Command::new("openssl")
        .arg("verify")
        .arg("-CAfile")
        .arg(root)
        .arg("-untrusted")
        .arg(chain)
        .arg(cert)
        .stdout(Stdio::null())
        .status()
        .expect("run openssl verify")
        .success()
}

/// Sends `request` over TLS to 127.0.0.1:`port` with SNI `name` (`openssl s_client -quiet`) and
/// returns the response.
pub fn https_request(port: u16, name: &str, request: &str) -> String {
    let mut child = Command::new("openssl")
        .args([
            "s_client",
            "-quiet",
            "-connect",
            &format!("127.0.0.1:{port}"),
            "-servername",
            name,
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("run openssl s_client");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(request.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}
