//! A local ACME server for tests: pebble (Let's Encrypt's test CA) with pebble-challtestsrv as
//! its DNS server, both on 127.0.0.1 and free high ports.
//!
//! Quirks handled here: Debian's pebble ships no test certificates (ours come from [`TestCa`]);
//! `-strict=false` must be written with `=`, or later flags are ignored; pebble-challtestsrv
//! answers AAAA with `::1` unless `-defaultIPv6 ""` is given, and by default listens on the
//! ports certbot's standalone mode wants (all its challenge servers are switched off); pebble
//! forgets every account when restarted (each test uses a fresh certbot config folder).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::background::{Background, free_port, wait_for_port};
use crate::pki::TestCa;
use crate::require_program;

/// Proxy settings removed from the environment of pebble and of certbot (through opsync): all
/// traffic in these tests stays on 127.0.0.1.
pub const PROXY_VARS: [&str; 6] = [
    "http_proxy",
    "https_proxy",
    "all_proxy",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
];

/// A running pebble and its DNS server. Dropping it stops both.
pub struct Pebble {
    /// ACME directory URL (`https://127.0.0.1:PORT/dir`).
    pub directory: String,
    /// CA bundle that trusts pebble's HTTPS listener (for `REQUESTS_CA_BUNDLE`).
    pub ca_bundle: PathBuf,
    pub management_port: u16,
    // Dropped in this order: pebble first, then its DNS server.
    pebble: Background,
    dns: Background,
}

impl Pebble {
    /// Starts pebble so that HTTP-01 challenges go to 127.0.0.1:`http_port` (every name resolves
    /// to 127.0.0.1) and certificates are valid for `validity_secs`.
    pub fn start(dir: &Path, http_port: u16, validity_secs: u64) -> Pebble {
        require_program("pebble", "pebble");
        require_program("pebble-challtestsrv", "pebble");
        std::fs::create_dir_all(dir).unwrap();
        let ca = TestCa::new(&dir.join("ca"));
        let (cert, key) = ca.issue("pebble-listener", &["localhost", "127.0.0.1"], 2);

        let dns_port = free_port();
        let dns_mgmt_port = free_port();
        let mut cmd = Command::new("pebble-challtestsrv");
        cmd.args([
            "-dns01",
            &format!("127.0.0.1:{dns_port}"),
            "-http01",
            "",
            "-https01",
            "",
            "-tlsalpn01",
            "",
            "-management",
            &format!("127.0.0.1:{dns_mgmt_port}"),
            "-defaultIPv4",
            "127.0.0.1",
            "-defaultIPv6",
            "",
        ]);
        let mut dns = Background::spawn("pebble-challtestsrv", cmd, &dir.join("challtestsrv.log"));
        wait_for_port(&mut dns, dns_mgmt_port, Duration::from_secs(20));
        wait_for_port(&mut dns, dns_port, Duration::from_secs(20));

        let acme_port = free_port();
        let management_port = free_port();
        let config = serde_json::json!({
            "pebble": {
                "listenAddress": format!("127.0.0.1:{acme_port}"),
                "managementListenAddress": format!("127.0.0.1:{management_port}"),
                "certificate": cert,
                "privateKey": key,
                "httpPort": http_port,
                "tlsPort": free_port(),
                "ocspResponderURL": "",
                "externalAccountBindingRequired": false,
                "certificateValidityPeriod": validity_secs,
            }
        });
        let config_path = dir.join("pebble-config.json");
        std::fs::write(&config_path, config.to_string()).unwrap();
        let mut cmd = Command::new("pebble");
        cmd.arg("-config")
            .arg(&config_path)
            .arg("-strict=false")
            .arg("-dnsserver")
            .arg(format!("127.0.0.1:{dns_port}"))
            .env("PEBBLE_VA_NOSLEEP", "1")
            .env("PEBBLE_WFE_NONCEREJECT", "0")
            .env("PEBBLE_AUTHZREUSE", "0");
        for var in PROXY_VARS {
            cmd.env_remove(var);
        }
        let mut pebble = Background::spawn("pebble", cmd, &dir.join("pebble.log"));
        wait_for_port(&mut pebble, acme_port, Duration::from_secs(20));
        wait_for_port(&mut pebble, management_port, Duration::from_secs(20));
        Pebble {
            directory: format!("https://127.0.0.1:{acme_port}/dir"),
            ca_bundle: ca.cert.clone(),
            management_port,
            pebble,
            dns,
        }
    }

    /// pebble's issuing root, which it generates anew at each start, fetched from its management
    /// port (`GET /roots/0`) and written to `dest`.
    pub fn fetch_root(&self, dest: &Path) {
        let mut child = Command::new("openssl")
            .args(["s_client", "-quiet", "-connect"])
            .arg(format!("127.0.0.1:{}", self.management_port))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("run openssl s_client");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(b"GET /roots/0 HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
            .unwrap();
        let out = child.wait_with_output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        let start = text
            .find("-----BEGIN CERTIFICATE-----")
            .unwrap_or_else(|| panic!("no root certificate from pebble: {text}"));
        std::fs::write(dest, &text[start..]).unwrap();
    }

    /// pebble's and its DNS server's output, for failure messages.
    pub fn logs(&self) -> String {
        format!(
            "--- pebble ---\n{}\n--- pebble-challtestsrv ---\n{}",
            self.pebble.log(),
            self.dns.log()
        )
    }
}
