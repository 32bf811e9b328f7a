//! certbot command lines (`certonly --webroot`, `renew`) and the deploy hook file.

use std::path::{Path, PathBuf};
use std::time::Duration;

use opsync_core::config::Config;
use opsync_core::config::sites::Site;
use opsync_core::exit::{Exit, ToExit};
use opsync_core::fs::WriteError;
use opsync_core::process::{Command, Ended, Output, ProcessError, shell_quote};

/// File name of the deploy hook in `CONFIG-DIR/renewal-hooks/deploy/`.
pub const HOOK_NAME: &str = "opsync-nginx-reload";

/// The options every certbot run gets: paths, non-interactive, CA bundle, extra arguments.
fn base(cfg: &Config, subcommand: &str) -> Command {
    let c = &cfg.certbot;
    let mut cmd = Command::new(cfg.program(&c.program))
        .arg(subcommand)
        .arg("--non-interactive")
        .arg("--config-dir")
        .arg(cfg.path(&c.config_dir))
        .arg("--work-dir")
        .arg(cfg.path(&c.work_dir))
        .arg("--logs-dir")
        .arg(cfg.path(&c.logs_dir))
        .timeout(Duration::from_secs(c.timeout_secs));
    if let Some(bundle) = &c.ca_bundle {
        cmd = cmd.env("REQUESTS_CA_BUNDLE", cfg.path(bundle));
    }
    cmd
}

/// `certbot certonly --webroot` for one site: first issuance, or re-issuance when the names
/// changed; keeps a certificate that is not due yet.
pub fn issue_cmd(cfg: &Config, site: &Site) -> Command {
    let c = &cfg.certbot;
    let mut cmd = base(cfg, "certonly")
        .arg("--agree-tos")
        .arg("--keep-until-expiring")
        .arg("--webroot")
        .arg("-w")
        .arg(cfg.path(&c.webroot))
        .arg("--cert-name")
        .arg(site.cert_name());
    for name in site.names() {
        cmd = cmd.arg("-d").arg(name);
    }
    if let Some(server) = &c.server {
        cmd = cmd.arg("--server").arg(server);
    }
    cmd = match &c.email {
        Some(e) => cmd.arg("--email").arg(e),
        None => cmd.arg("--register-unsafely-without-email"),
    };
    cmd.args(&c.extra_args)
}

/// `certbot renew`: every certificate that is due. No random sleep: the scheduler spreads the
/// start time itself. The ACME server of each certificate comes from its renewal config.
pub fn renew_cmd(cfg: &Config) -> Command {
    base(cfg, "renew")
        .arg("--no-random-sleep-on-renew")
        .args(&cfg.certbot.extra_args)
}

/// A certbot run that failed.
#[derive(Debug, thiserror::Error)]
pub enum CertbotError {
    #[error(transparent)]
    Process(#[from] ProcessError),
    #[error("`certbot {subcommand}` failed ({ended}): {summary} (details in {log})")]
    Failed {
        subcommand: String,
        ended: Ended,
        summary: String,
        log: PathBuf,
    },
}

impl ToExit for CertbotError {
    fn exit(&self) -> Exit {
        Exit::Failed
    }
}

/// Runs a certbot command; on failure the error carries the lines that say why (the CA's
/// `Detail:` lines, failed renewals), not certbot's closing "Ask for help" line.
pub fn run(cfg: &Config, subcommand: &str, cmd: &Command) -> Result<Output, CertbotError> {
    match cmd.run() {
        Ok(out) => Ok(out),
        Err(ProcessError::Failed { output, .. }) => Err(CertbotError::Failed {
            subcommand: subcommand.to_owned(),
            ended: output.ended,
            summary: failure_summary(&output.stdout, &output.stderr),
            log: cfg.path(&cfg.certbot.logs_dir).join("letsencrypt.log"),
        }),
        Err(e) => Err(e.into()),
    }
}

/// The informative lines of a failed certbot run, joined by `; `.
fn failure_summary(stdout: &str, stderr: &str) -> String {
    let mut picked: Vec<String> = Vec::new();
    for line in stdout.lines().chain(stderr.lines()) {
        let l = line.trim();
        let lower = l.to_ascii_lowercase();
        let wanted = l.starts_with("Detail:")
            || l.starts_with("Domain:")
            || lower.contains("error")
            || lower.contains("failed");
        let noise = l.starts_with("Ask for help")
            || l.starts_with("Saving debug log")
            || l.starts_with("Hint:")
            || lower.starts_with("certbot failed to authenticate");
        if wanted && !noise && !picked.iter().any(|p| p == l) {
            picked.push(l.to_owned());
        }
    }
    if picked.is_empty() {
        return stderr
            .lines()
            .chain(stdout.lines())
            .map(str::trim)
            .find(|l| !l.is_empty() && !l.starts_with("Saving debug log"))
            .unwrap_or("no output")
            .to_owned();
    }
    picked.truncate(6);
    picked.join("; ")
}

/// Where the deploy hook lives.
pub fn hook_path(cfg: &Config) -> PathBuf {
    cfg.path(&cfg.certbot.config_dir)
        .join("renewal-hooks")
        .join("deploy")
        .join(HOOK_NAME)
}

/// The deploy hook script: runs `opsync [--config FILE] nginx reload`.
pub fn hook_script(opsync: &Path, config: Option<&Path>) -> String {
    let mut line = format!("exec {}", shell_quote(&opsync.display().to_string()));
    if let Some(c) = config {
        line.push_str(&format!(
            " --config {}",
            shell_quote(&c.display().to_string())
        ));
    }
    line.push_str(" nginx reload");
    format!(
        "#!/bin/sh\n\
         # Installed by `opsync certs install-hook`; reinstall it rather than editing it.\n\
         # certbot runs this after every successful renewal, whoever started certbot (opsync,\n\
         # Debian's certbot.timer, an operator). `opsync nginx reload` reloads nginx only when\n\
         # `nginx -t` passes, then checks that nginx serves the certificates on disk.\n\
         {line}\n"
    )
}

/// Writes `script` to `path` atomically with mode 0755.
pub fn install_hook(path: &Path, script: &str) -> Result<(), WriteError> {
    opsync_core::fs::write_atomic_with_mode(path, script.as_bytes(), 0o755)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> Config {
        let mut cfg: Config = toml::from_str(
            r#"
            [[site]]
            domain = "example.com"
            aliases = ["www.example.com"]
            [certbot]
            config-dir = "le"
            server = "https://127.0.0.1:14000/dir"
            extra-args = ["--key-type", "rsa"]
            "#,
        )
        .unwrap();
        cfg.base_dir = "/srv".into();
        cfg
    }

    #[test]
    fn issue_command_line() {
        let cfg = cfg();
        assert_eq!(
            issue_cmd(&cfg, &cfg.site[0]).display(),
            "certbot certonly --non-interactive --config-dir /srv/le \
             --work-dir /var/lib/letsencrypt --logs-dir /var/log/letsencrypt --agree-tos \
             --keep-until-expiring --webroot -w /var/www/letsencrypt --cert-name example.com \
             -d example.com -d www.example.com --server https://127.0.0.1:14000/dir \
             --register-unsafely-without-email --key-type rsa"
        );
    }

    #[test]
    fn renew_command_line() {
        assert_eq!(
            renew_cmd(&cfg()).display(),
            "certbot renew --non-interactive --config-dir /srv/le \
             --work-dir /var/lib/letsencrypt --logs-dir /var/log/letsencrypt \
             --no-random-sleep-on-renew --key-type rsa"
        );
    }

    #[test]
    fn failure_summary_keeps_the_reason() {
        let stdout = "Account registered.\nRequesting a certificate for dev.example.com\n\
            Certbot failed to authenticate some domains (authenticator: webroot). The Certificate \
            Authority reported these problems:\n  Domain: dev.example.com\n  Type:   connection\n\
            \x20 Detail: connection refused\n\nHint: The Certificate Authority failed to download\n";
        let stderr = "Saving debug log to /x/letsencrypt.log\nSome challenges have failed.\n\
            Ask for help or search for solutions at https://community.letsencrypt.org.\n";
        assert_eq!(
            failure_summary(stdout, stderr),
            "Domain: dev.example.com; Detail: connection refused; Some challenges have failed."
        );
        assert_eq!(failure_summary("", "Saving debug log to x\nboom\n"), "boom");
    }

    #[test]
    fn hook_quotes_paths() {
        let s = hook_script(
            Path::new("/usr/local/bin/opsync"),
            Some(Path::new("/etc/ops sync/it's.toml")),
        );
        assert!(s.starts_with("#!/bin/sh\n"));
        assert!(s.ends_with(
            "exec /usr/local/bin/opsync --config '/etc/ops sync/it'\\''s.toml' nginx reload\n"
        ));
    }

    #[test]
    fn hook_is_installed_executable() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("renewal-hooks/deploy").join(HOOK_NAME);
        install_hook(&path, "#!/bin/sh\n").unwrap();
        install_hook(&path, "#!/bin/sh\necho\n").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "#!/bin/sh\necho\n");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o755);
        assert_eq!(
            std::fs::read_dir(path.parent().unwrap()).unwrap().count(),
            1
        );
    }
}
