//! End to end: `opsync nginx render|check|reload` and `certs status` against a private nginx on
//! 127.0.0.1, with certificates from a throw-away CA made by `openssl` at test time.

use std::path::PathBuf;

use opsync_tests::nginx::NginxLayout;
use opsync_tests::pki::{TestCa, file_serial, https_request, served_serial};
use opsync_tests::run::{Run, opsync_with};

const SITE: &str = "app.opsync.test";

struct Setup {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    config: PathBuf,
    layout: NginxLayout,
    ca: TestCa,
    cert: PathBuf,
}

impl Setup {
    /// A site whose certificate (valid `days`; negative: already expired) comes from the test CA.
    fn new(days: i32, extra: &str) -> Setup {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().to_owned();
        let layout = NginxLayout::new(&root.join("nginx"));
        let ca = TestCa::new(&root.join("ca"));
        let (cert, key) = issue(&ca, days);
        let config = root.join("opsync.toml");
        std::fs::write(
            &config,
            format!(
                "[[site]]\ndomain = \"{SITE}\"\nstack = \"prod\"\nupstream = \"127.0.0.1:9\"\n\
                 cert-file = {:?}\nkey-file = {:?}\n\n\
                 [certbot]\nwebroot = {:?}\nconfig-dir = {:?}\n\n{}{extra}",
                cert.display().to_string(),
                key.display().to_string(),
                root.join("webroot").display().to_string(),
                root.join("letsencrypt").display().to_string(),
                layout.opsync_config(),
            ),
        )
        .unwrap();
        Setup {
            _tmp: tmp,
            root,
            config,
            layout,
            ca,
            cert,
        }
    }

    fn opsync(&self, args: &[&str]) -> Run {
        opsync_with(&self.config, args)
    }
}

fn issue(ca: &TestCa, days: i32) -> (PathBuf, PathBuf) {
    ca.issue_days("site", &[SITE], days)
}

#[test]
fn render_check_reload_and_serve_a_replaced_certificate() {
    let s = Setup::new(30, "");
    s.opsync(&["nginx", "render"]).expect_code(0);
    let r = s.opsync(&["nginx", "render"]).expect_code(0);
    assert!(r.stdout.contains("up to date"), "{r}");
    s.opsync(&["nginx", "check"]).expect_code(0);
    let _nginx = s.layout.start();
    let first = file_serial(&s.cert);
    assert_eq!(served_serial(s.layout.https_port, SITE), first);

    let r = s.opsync(&["certs", "status", "--json"]).expect_code(0);
    let line = &r.json_lines()[0];
    assert_eq!(line["served_matches_disk"], true, "{r}");
    let days = line["served"]["days_left"].as_f64().unwrap();
    assert!(days > 29.9 && days <= 30.0, "{r}");

    // A new certificate in place: status sees nginx serving the old one until the reload.
    issue(&s.ca, 30);
    let second = file_serial(&s.cert);
    assert_ne!(first, second);
    let r = s.opsync(&["certs", "status"]).expect_code(28);
    assert!(r.stdout.contains("opsync nginx reload"), "{r}");
    s.opsync(&["nginx", "reload"]).expect_code(0);
    assert_eq!(served_serial(s.layout.https_port, SITE), second);
    s.opsync(&["certs", "status"]).expect_code(0);
}

#[test]
fn a_render_that_fails_the_check_is_not_left_installed() {
    let s = Setup::new(30, "");
    s.opsync(&["nginx", "render"]).expect_code(0);
    let good = std::fs::read_to_string(&s.layout.site_file).unwrap();
    let bad_template = s.root.join("bad.conf");
    std::fs::write(&bad_template, "no_such_directive {{ webroot }};\n").unwrap();
    let mut text = std::fs::read_to_string(&s.config).unwrap();
    text = text.replace(
        "[nginx]\n",
        &format!(
            "[nginx]\ntemplate = {:?}\n",
            bad_template.display().to_string()
        ),
    );
    std::fs::write(&s.config, text).unwrap();
    let r = s.opsync(&["nginx", "render"]).expect_code(10);
    assert!(r.stderr.contains("no_such_directive"), "{r}");
    let errors = r.stderr.lines().filter(|l| l.starts_with("opsync: error:"));
    assert_eq!(errors.count(), 1, "one error line\n{r}");
    assert_eq!(std::fs::read_to_string(&s.layout.site_file).unwrap(), good);
}

#[test]
fn expired_certificate_needs_attention() {
    let s = Setup::new(-1, "");
    s.opsync(&["nginx", "render"]).expect_code(0);
    let _nginx = s.layout.start();
    let r = s.opsync(&["certs", "status", "--json"]).expect_code(28);
    let line = &r.json_lines()[0];
    assert_eq!(line["level"], "error", "{r}");
    assert!(
        line["problems"][0].as_str().unwrap().contains("expired"),
        "{r}"
    );
    assert!(line["disk"]["days_left"].as_f64().unwrap() < 0.0, "{r}");
}

#[test]
fn missing_nginx_is_one_clear_error() {
    let s = Setup::new(30, "");
    let text = std::fs::read_to_string(&s.config)
        .unwrap()
        .replace("[nginx]\n", "[nginx]\nprogram = \"/nonexistent/nginx\"\n");
    std::fs::write(&s.config, text).unwrap();
    let r = s.opsync(&["nginx", "check"]).expect_code(10);
    let errors: Vec<&str> = r.stderr.lines().filter(|l| l.contains("error")).collect();
    assert_eq!(
        errors,
        [
            "opsync: error: nginx: `/nonexistent/nginx` not found: install it or set its path in the config"
        ],
        "{r}"
    );
}

#[test]
fn nginx_not_running_is_reported_by_status() {
    let s = Setup::new(30, "");
    s.opsync(&["nginx", "render"]).expect_code(0);
    let r = s.opsync(&["certs", "status", "--json"]).expect_code(28);
    let line = &r.json_lines()[0];
    assert!(
        line["served_error"]
            .as_str()
            .unwrap()
            .contains("cannot connect"),
        "{r}"
    );
    // Files alone are fine.
    s.opsync(&["certs", "status", "--disk-only"]).expect_code(0);
}

#[test]
fn http_redirects_and_https_proxies_with_forwarding_headers_and_hsts() {
    use std::io::{Read, Write};
    let s = Setup::new(30, "");
    let listener = std::net::TcpListener::bind(("127.0.0.1", 0)).unwrap();
    let upstream = listener.local_addr().unwrap().to_string();
    let backend = one_request_backend(listener);
    let text = std::fs::read_to_string(&s.config).unwrap();
    std::fs::write(
        &s.config,
        text.replace("127.0.0.1:9\"", &format!("{upstream}\"")),
    )
    .unwrap();
    s.opsync(&["nginx", "render"]).expect_code(0);
    let _nginx = s.layout.start();

    let mut tcp = std::net::TcpStream::connect(("127.0.0.1", s.layout.http_port)).unwrap();
    write!(tcp, "GET /some/path?q=1 HTTP/1.0\r\nHost: {SITE}\r\n\r\n").unwrap();
    let mut resp = String::new();
    tcp.read_to_string(&mut resp).unwrap();
    assert!(resp.starts_with("HTTP/1.1 301"), "{resp}");
    let location = format!(
        "Location: https://{SITE}:{}/some/path?q=1",
        s.layout.https_port
    );
    assert!(resp.contains(&location), "{resp}");

    // Through to the backend: a listener of this test that answers one request.
    let resp = https_request(
        s.layout.https_port,
        SITE,
        &format!("GET /api HTTP/1.0\r\nHost: {SITE}\r\n\r\n"),
    );
    // Checked before joining: without a 200 the backend may never have been reached.
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    let request = backend.join().unwrap();
    assert!(resp.ends_with("backend says hi"), "{resp}");
    assert!(
        resp.contains("Strict-Transport-Security: max-age=63072000"),
        "{resp}"
    );
    assert!(request.starts_with("GET /api HTTP/1.1\r\n"), "{request}");
    for header in [
        format!("Host: {SITE}"),
        "X-Forwarded-Proto: https".to_owned(),
        "X-Forwarded-For: 127.0.0.1".to_owned(),
        "X-Real-IP: 127.0.0.1".to_owned(),
        format!("X-Forwarded-Port: {}", s.layout.https_port),
    ] {
        assert!(
            request.contains(&format!("{header}\r\n")),
            "{header} missing:\n{request}"
        );
    }
}

/// Accepts one connection on `listener`, answers 200 and returns the request head it got.
fn one_request_backend(listener: std::net::TcpListener) -> std::thread::JoinHandle<String> {
    use std::io::{Read, Write};
    std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") && conn.read(&mut byte).unwrap() == 1 {
            head.push(byte[0]);
        }
        conn.write_all(
            b"HTTP/1.1 200 OK\r\nContent-Length: 15\r\nConnection: close\r\n\r\nbackend says hi",
        )
        .unwrap();
        String::from_utf8_lossy(&head).into_owned()
    })
}

/// Regression: with a broken nginx configuration, `certs renew` said only "nginx serves serial
/// X, not the file's serial Y: reload nginx", pointing at a reload nginx would refuse.
#[test]
fn certs_renew_with_a_broken_nginx_config_shows_nginx_t_error() {
    opsync_tests::require_program("certbot", "certbot");
    let s = Setup::new(30, "");
    s.opsync(&["nginx", "render"]).expect_code(0);
    let _nginx = s.layout.start();
    // A renewed certificate on disk, and a configuration nginx -t rejects.
    issue(&s.ca, 30);
    let site = std::fs::read_to_string(&s.layout.site_file).unwrap();
    std::fs::write(
        &s.layout.site_file,
        format!("{site}\nbogus_directive on;\n"),
    )
    .unwrap();
    let r = s.opsync(&["certs", "renew"]);
    assert_ne!(r.code, 0, "{r}");
    let out = format!("{}{}", r.stdout, r.stderr);
    assert!(out.contains("a reload would be refused"), "{r}");
    assert!(out.contains("-t -q` rejected the configuration"), "{r}");
    assert!(
        out.contains("unknown directive \"bogus_directive\""),
        "nginx's own error line\n{r}"
    );
}
