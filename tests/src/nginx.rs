//! A private nginx for tests: its own main configuration, prefix, pid file and logs in a temporary
//! folder, listening on 127.0.0.1 only, including the site file `opsync nginx render` writes.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::background::{Background, free_port, wait_for_port};
use crate::require_program;

/// Paths and ports of a test nginx, before and after it is started.
pub struct NginxLayout {
    pub prefix: PathBuf,
    pub main_config: PathBuf,
    /// The site file nginx includes (`[nginx] output`).
    pub site_file: PathBuf,
    pub http_port: u16,
    pub https_port: u16,
}

impl NginxLayout {
    /// Writes the main configuration under `dir`; picks free ports.
    pub fn new(dir: &Path) -> NginxLayout {
        require_program("nginx", "nginx");
        let prefix = dir.to_owned();
        for sub in ["logs", "tmp", "sites"] {
            std::fs::create_dir_all(prefix.join(sub)).unwrap();
        }
        let site_file = prefix.join("sites/opsync.conf");
        let main_config = prefix.join("nginx.conf");
        // Running as root, workers run as root too so they can read the tests' private
        // temporary folders; elsewhere the directive is ignored with a warning.
        let user = if rustix::process::geteuid().is_root() {
            "user root;"
        } else {
            ""
        };
        let p = prefix.display();
        std::fs::write(
            &main_config,
            format!(
                "daemon off;\n\
                 master_process on;\n\
                 worker_processes 1;\n\
                 {user}\n\
                 pid {p}/nginx.pid;\n\
                 error_log {p}/logs/error.log info;\n\
                 events {{ worker_connections 64; }}\n\
                 http {{\n\
                 \x20   access_log {p}/logs/access.log;\n\
                 \x20   client_body_temp_path {p}/tmp/body;\n\
                 \x20   proxy_temp_path {p}/tmp/proxy;\n\
                 \x20   fastcgi_temp_path {p}/tmp/fastcgi;\n\
                 \x20   uwsgi_temp_path {p}/tmp/uwsgi;\n\
                 \x20   scgi_temp_path {p}/tmp/scgi;\n\
                 \x20   include {site};\n\
                 }}\n",
                site = site_file.display()
            ),
        )
        .unwrap();
        NginxLayout {
            prefix,
            main_config,
            site_file,
            http_port: free_port(),
            https_port: free_port(),
        }
    }

    /// The `[nginx]` section of an opsync config for this nginx.
    pub fn opsync_config(&self) -> String {
        format!(
            "[nginx]\n\
             output = {:?}\n\
             main-config = {:?}\n\
             prefix = {:?}\n\
             listen-address = \"127.0.0.1\"\n\
             http-port = {}\n\
             https-port = {}\n\
             reload = \"signal\"\n",
            self.site_file.display().to_string(),
            self.main_config.display().to_string(),
            self.prefix.display().to_string(),
            self.http_port,
            self.https_port
        )
    }

    /// Starts nginx in the foreground (as a child of the test) and waits for its HTTP port.
    pub fn start(&self) -> Background {
        let mut cmd = Command::new("nginx");
        cmd.arg("-p")
            .arg(&self.prefix)
            .arg("-c")
            .arg(&self.main_config)
            .arg("-e")
            .arg(self.prefix.join("logs/error.log"));
        let mut nginx = Background::spawn("nginx", cmd, &self.prefix.join("logs/stderr.log"));
        wait_for_port(&mut nginx, self.http_port, Duration::from_secs(20));
        nginx
    }

    /// nginx's error log, for failure messages.
    pub fn error_log(&self) -> String {
        std::fs::read_to_string(self.prefix.join("logs/error.log")).unwrap_or_default()
    }
}
