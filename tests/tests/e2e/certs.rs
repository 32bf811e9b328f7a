//! End to end: certificates issued and renewed through certbot against a local pebble, served
//! by a private nginx, with opsync's deploy hook reloading nginx. Everything on 127.0.0.1 and
//! high ports, started and stopped by the test.

use std::path::{Path, PathBuf};

use opsync_tests::acme::Pebble;
use opsync_tests::nginx::NginxLayout;
use opsync_tests::pki::{file_serial, normalize_serial, served_serial, valid_for, verifies};
use opsync_tests::require_program;
use opsync_tests::run::{Run, opsync_with};

const PROD: &str = "prod.opsync.test";
const DEV: &str = "dev.opsync.test";
/// Certificates from pebble live for 7 days: well under certbot's 30-day renewal window, so a
/// renewal is really due at every `certbot renew`.
const VALIDITY_SECS: u64 = 7 * 86_400;

struct Setup {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    config: PathBuf,
    layout: NginxLayout,
    pebble: Pebble,
}

impl Setup {
    fn new() -> Setup {
        require_program("certbot", "certbot");
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().to_owned();
        let layout = NginxLayout::new(&root.join("nginx"));
        let pebble = Pebble::start(&root.join("pebble"), layout.http_port, VALIDITY_SECS);
        // A fresh certbot folder per run: pebble forgets accounts when it restarts.
        let le = root.join("letsencrypt");
        let config = root.join("opsync.toml");
        let text = format!(
            r#"
[[site]]
domain = "{PROD}"
aliases = ["www.{PROD}"]
stack = "prod"
upstream = "127.0.0.1:9"

[[site]]
domain = "{DEV}"
stack = "dev"
upstream = "127.0.0.1:9"

[certbot]
config-dir = "{le}/config"
work-dir = "{le}/work"
logs-dir = "{le}/logs"
webroot = "{root}/webroot"
server = "{server}"
ca-bundle = "{bundle}"
timeout-secs = 120

{nginx}"#,
            le = le.display(),
            root = root.display(),
            server = pebble.directory,
            bundle = pebble.ca_bundle.display(),
            nginx = layout.opsync_config(),
        );
        std::fs::write(&config, text).unwrap();
        Setup {
            _tmp: tmp,
            root,
            config,
            layout,
            pebble,
        }
    }

    fn opsync(&self, args: &[&str]) -> Run {
        opsync_with(&self.config, args)
    }

    fn cert_file(&self, domain: &str) -> PathBuf {
        self.root
            .join("letsencrypt/config/live")
            .join(domain)
            .join("fullchain.pem")
    }

    fn served(&self, domain: &str) -> String {
        served_serial(self.layout.https_port, domain)
    }

    fn context(&self) -> String {
        format!(
            "{}\n--- nginx error log ---\n{}",
            self.pebble.logs(),
            self.layout.error_log()
        )
    }
}

fn status_of<'a>(lines: &'a [serde_json::Value], domain: &str) -> &'a serde_json::Value {
    lines
        .iter()
        .find(|l| l["domain"] == domain)
        .unwrap_or_else(|| panic!("no status line for {domain}: {lines:?}"))
}

fn serials(s: &Setup) -> (String, String) {
    (
        file_serial(&s.cert_file(PROD)),
        file_serial(&s.cert_file(DEV)),
    )
}

fn assert_served_from_disk(s: &Setup) {
    for d in [PROD, DEV] {
        assert_eq!(
            s.served(d),
            file_serial(&s.cert_file(d)),
            "nginx does not serve the file's certificate for {d}\n{}",
            s.context()
        );
    }
}

/// Checks `days_left` against `openssl x509 -checkend` on the file: valid a little before that
/// many days, expired a little after.
fn assert_days_left(path: &Path, days_left: f64) {
    let secs = (days_left * 86_400.0) as i64;
    assert!(
        valid_for(path, secs - 120),
        "{path:?} expires before {days_left} days"
    );
    assert!(
        !valid_for(path, secs + 120),
        "{path:?} outlives {days_left} days"
    );
}

#[test]
fn issue_renew_and_reload_through_the_deploy_hook() {
    let s = Setup::new();

    // Before the first issuance: HTTP only, so nginx starts and serves the challenges.
    let r = s.opsync(&["nginx", "render"]).expect_code(0);
    let site = std::fs::read_to_string(&s.layout.site_file).unwrap();
    assert!(!site.contains("ssl_certificate"), "{r}\n{site}");

    // nginx is not running yet: the preflight check fails before certbot asks pebble.
    let r = s.opsync(&["certs", "issue"]).expect_code(10);
    assert!(
        r.stderr.contains("does not serve the challenge folder"),
        "{r}"
    );
    assert!(
        !s.root.join("letsencrypt/config/accounts").exists(),
        "certbot ran\n{r}"
    );

    // Without the preflight, certbot runs and fails at pebble's validation: one error line per
    // domain that says why.
    let r = s
        .opsync(&["certs", "issue", "--no-preflight", DEV])
        .expect_code(10);
    let errors: Vec<&str> = r
        .stderr
        .lines()
        .filter(|l| l.starts_with("opsync: error:"))
        .collect();
    assert_eq!(errors.len(), 1, "{r}");
    assert!(errors[0].contains("Detail:"), "{r}");
    assert!(errors[0].contains("letsencrypt.log"), "{r}");

    let mut nginx = s.layout.start();

    let r = s.opsync(&["certs", "status", "--json"]).expect_code(28);
    for line in r.json_lines() {
        assert_eq!(line["level"], "error", "{r}");
        assert!(
            line["disk_error"].as_str().unwrap().contains("missing"),
            "{r}"
        );
    }

    let r = s.opsync(&["certs", "install-hook"]).expect_code(0);
    let hook = s
        .root
        .join("letsencrypt/config/renewal-hooks/deploy/opsync-nginx-reload");
    let script = std::fs::read_to_string(&hook).unwrap_or_else(|e| panic!("{e}\n{r}"));
    assert!(script.contains("nginx reload"), "{script}");
    assert!(script.contains(&s.config.display().to_string()), "{script}");

    // First issuance for both sites; afterwards nginx serves them.
    let r = s.opsync(&["certs", "issue"]);
    assert_eq!(r.code, 0, "{r}\n{}", s.context());
    let site = std::fs::read_to_string(&s.layout.site_file).unwrap();
    assert!(site.contains("ssl_certificate"), "{site}");
    assert!(
        site.contains("Strict-Transport-Security"),
        "HSTS for prod: {site}"
    );
    assert_served_from_disk(&s);
    let issued = serials(&s);
    // The chain leads to the root this pebble generated at its start.
    let root = s.root.join("pebble-root.pem");
    s.pebble.fetch_root(&root);
    for d in [PROD, DEV] {
        let live = s.root.join("letsencrypt/config/live").join(d);
        assert!(
            verifies(&root, &live.join("chain.pem"), &live.join("cert.pem")),
            "{d}: the issued certificate does not chain to pebble's root"
        );
    }

    // Status: both fine, days left as openssl sees them, served = disk.
    let r = s.opsync(&["certs", "status", "--json"]).expect_code(0);
    let lines = r.json_lines();
    for d in [PROD, DEV] {
        let st = status_of(&lines, d);
        assert_eq!(st["level"], "ok", "{r}");
        assert_eq!(st["served_matches_disk"], true, "{r}");
        let days = st["disk"]["days_left"].as_f64().unwrap();
        assert!(days > 6.9 && days <= 7.0, "{d}: {days} days left\n{r}");
        assert_days_left(&s.cert_file(d), days);
        assert_eq!(
            normalize_serial(st["disk"]["serial"].as_str().unwrap()),
            file_serial(&s.cert_file(d)),
            "{r}"
        );
    }
    assert_eq!(
        status_of(&lines, PROD)["disk"]["sans"]
            .as_array()
            .unwrap()
            .len(),
        2
    );

    // Renewal: certbot renews both (due), the deploy hook reloads nginx, which then serves the
    // new certificates. `certs renew` itself does not reload: the served serial proves the hook.
    let r = s.opsync(&["certs", "renew", "--json"]);
    assert_eq!(r.code, 0, "{r}\n{}", s.context());
    let renewed = serials(&s);
    assert_ne!(renewed.0, issued.0, "prod was not renewed\n{r}");
    assert_ne!(renewed.1, issued.1, "dev was not renewed\n{r}");
    assert_served_from_disk(&s);
    nginx.assert_running();

    // A broken site file: the hook's `nginx -t` fails, nginx is not reloaded and keeps serving
    // the previous certificates; `certs renew` reports the stale certificates (exit 28).
    let mut broken = std::fs::read_to_string(&s.layout.site_file).unwrap();
    broken.push_str("\nthis_is_not_an_nginx_directive;\n");
    std::fs::write(&s.layout.site_file, &broken).unwrap();
    let r = s.opsync(&["certs", "renew", "--json"]).expect_code(28);
    let after_broken = serials(&s);
    assert_ne!(after_broken.0, renewed.0, "prod was not renewed again\n{r}");
    nginx.assert_running();
    assert_eq!(
        s.served(PROD),
        renewed.0,
        "a broken config must not be reloaded"
    );
    assert_eq!(
        s.served(DEV),
        renewed.1,
        "a broken config must not be reloaded"
    );
    for line in r.json_lines() {
        assert_eq!(line["served_matches_disk"], false, "{r}");
        assert!(
            line["problems"][0]
                .as_str()
                .unwrap()
                .contains("nginx serves serial"),
            "{r}"
        );
    }
    let r = s.opsync(&["nginx", "reload"]).expect_code(10);
    assert!(r.stderr.contains("rejects the configuration"), "{r}");
    assert_eq!(s.served(PROD), renewed.0);

    // Rendering again repairs the file; the reload then brings the served certificates up to date.
    s.opsync(&["nginx", "render"]).expect_code(0);
    s.opsync(&["nginx", "reload"]).expect_code(0);
    assert_served_from_disk(&s);
    s.opsync(&["certs", "status"]).expect_code(0);
    nginx.assert_running();

    // The scheduler's job: renews (the hook reloads), records days left on disk and served.
    let before = serials(&s);
    let cfg = opsync_core::config::Config::load(&s.config).unwrap();
    let report = opsync_certs::renew_job(&cfg);
    assert!(!report.attention, "{report:?}\n{}", s.context());
    assert_eq!(report.renew_error, None);
    assert_eq!(report.renewed, [DEV, PROD], "{report:?}");
    assert_ne!(serials(&s).0, before.0);
    assert_eq!(report.expiries.len(), 4, "{report:?}");
    for e in &report.expiries {
        let days = e.days_left.unwrap_or_else(|| panic!("{report:?}"));
        assert!(days > 6.9 && days <= 7.0, "{report:?}");
    }
    assert_served_from_disk(&s);
}
