//! `certs status`: what each site's certificate looks like on disk and as nginx serves it, and
//! whether it needs attention. [`assess`] is the pure policy; [`collect`] reads files and
//! connects to nginx.

use std::path::Path;
use std::time::Duration;

use serde::Serialize;

use super::cert::CertInfo;
use super::served::served_certificate;
use opsync_core::config::Config;
use opsync_core::config::sites::Site;
use opsync_core::time::rfc3339;

/// How bad it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Ok,
    /// Close to expiry: renewal should happen soon.
    Warn,
    /// Expired, missing, not covering a name, unreachable or stale in nginx.
    Error,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Ok => "ok",
            Level::Warn => "warning",
            Level::Error => "error",
        }
    }
}

/// One certificate as shown: the parsed fields plus what follows from them at `now`.
#[derive(Debug, Clone, Serialize)]
pub struct CertView {
    #[serde(flatten)]
    pub info: CertInfo,
    pub not_before_utc: String,
    pub not_after_utc: String,
    /// Days until not-after (negative when expired).
    pub days_left: f64,
    /// Days from not-before to not-after.
    pub lifetime_days: f64,
    /// Configured names the certificate does not cover.
    pub missing_names: Vec<String>,
}

/// Status of one site's certificate.
#[derive(Debug, Clone, Serialize)]
pub struct SiteStatus {
    pub domain: String,
    pub names: Vec<String>,
    pub cert_name: String,
    pub cert_file: String,
    pub disk: Option<CertView>,
    pub disk_error: Option<String>,
    /// `host:port` the served certificate was read from; none when not checked.
    pub served_address: Option<String>,
    pub served: Option<CertView>,
    pub served_error: Option<String>,
    /// Whether nginx serves the certificate on disk (same serial); none when unknown.
    pub served_matches_disk: Option<bool>,
    pub level: Level,
    /// One line per finding, worst first.
    pub problems: Vec<String>,
}

impl SiteStatus {
    /// Days left of the disk and served certificates, for the metrics.
    pub fn expiries(&self) -> [super::CertExpiry; 2] {
        [
            super::CertExpiry {
                name: self.cert_name.clone(),
                source: "disk",
                days_left: self.disk.as_ref().map(|v| v.days_left),
            },
            super::CertExpiry {
                name: self.cert_name.clone(),
                source: "served",
                days_left: self.served.as_ref().map(|v| v.days_left),
            },
        ]
    }
}

/// What was observed of one site, before judging it.
#[derive(Debug, Clone)]
pub struct Observation {
    pub domain: String,
    pub names: Vec<String>,
    pub cert_name: String,
    pub cert_file: String,
    pub disk: Result<CertInfo, String>,
    /// `(address, result)`; none when the served certificate was not checked.
    pub served: Option<(String, Result<CertInfo, String>)>,
}

fn view(info: CertInfo, names: &[String], now: i64) -> CertView {
    let missing_names = names.iter().filter(|n| !info.covers(n)).cloned().collect();
    CertView {
        not_before_utc: rfc3339(info.not_before),
        not_after_utc: rfc3339(info.not_after),
        days_left: (info.not_after - now) as f64 / 86_400.0,
        lifetime_days: (info.not_after - info.not_before) as f64 / 86_400.0,
        missing_names,
        info,
    }
}

/// Findings about one certificate (`what` is "certificate" or "served certificate").
fn judge(v: &CertView, what: &str, now: i64, warn_fraction: f64) -> Vec<(Level, String)> {
    let mut out = Vec::new();
    if v.info.not_after <= now {
        out.push((
            Level::Error,
            format!(
                "{what} expired on {}: renew it (`opsync certs renew`)",
                v.not_after_utc
            ),
        ));
    } else {
        let lifetime = (v.info.not_after - v.info.not_before).max(1) as f64;
        let left = (v.info.not_after - now) as f64;
        if left < lifetime * warn_fraction {
            out.push((
                Level::Warn,
                format!(
                    "{what} expires in {:.1} days, less than {:.0}% of its lifetime: \
                     check that renewal works (`opsync certs renew`)",
                    v.days_left,
                    warn_fraction * 100.0
                ),
            ));
        }
    }
    if v.info.not_before > now {
        out.push((
            Level::Warn,
            format!(
                "{what} is not valid before {}: check the clock",
                v.not_before_utc
            ),
        ));
    }
    if !v.missing_names.is_empty() {
        out.push((
            Level::Error,
            format!(
                "{what} does not cover {}: re-issue it (`opsync certs issue`)",
                v.missing_names.join(", ")
            ),
        ));
    }
    out
}

/// The advice at the end of a stale served certificate's finding.
const RELOAD_HINT: &str = "reload nginx (`opsync nginx reload`)";

/// The policy: judges one observation at `now` (Unix seconds). Warns when less than
/// `warn_fraction` of the lifetime is left; errors when expired, missing, not covering a
/// configured name, unreachable in nginx or different in nginx from the file.
pub fn assess(obs: Observation, now: i64, warn_fraction: f64) -> SiteStatus {
    let mut findings: Vec<(Level, String)> = Vec::new();
    let (disk, disk_error) = match obs.disk {
        Ok(info) => {
            let v = view(info, &obs.names, now);
            findings.extend(judge(&v, "certificate", now, warn_fraction));
            (Some(v), None)
        }
        Err(e) => {
            findings.push((Level::Error, e.clone()));
            (None, Some(e))
        }
    };
    let (served_address, served, served_error) = match obs.served {
        None => (None, None, None),
        Some((addr, Ok(info))) => (Some(addr), Some(view(info, &obs.names, now)), None),
        Some((addr, Err(e))) => {
            findings.push((Level::Error, e.clone()));
            (Some(addr), None, Some(e))
        }
    };
    let served_matches_disk = match (&disk, &served) {
        (Some(d), Some(s)) => Some(d.info.serial == s.info.serial),
        _ => None,
    };
    if let Some(s) = &served {
        if served_matches_disk == Some(false) {
            findings.push((
                Level::Error,
                format!(
                    "nginx serves serial {} (not after {}), not the file's serial {}: {RELOAD_HINT}",
                    s.info.serial,
                    s.not_after_utc,
                    disk.as_ref().map(|d| d.info.serial.as_str()).unwrap_or("?")
                ),
            ));
            findings.extend(judge(s, "served certificate", now, warn_fraction));
        } else if disk.is_none() {
            findings.extend(judge(s, "served certificate", now, warn_fraction));
        }
    }
    findings.sort_by_key(|f| std::cmp::Reverse(f.0));
    let level = findings.first().map(|f| f.0).unwrap_or(Level::Ok);
    SiteStatus {
        domain: obs.domain,
        names: obs.names,
        cert_name: obs.cert_name,
        cert_file: obs.cert_file,
        disk,
        disk_error,
        served_address,
        served,
        served_error,
        served_matches_disk,
        level,
        problems: findings.into_iter().map(|f| f.1).collect(),
    }
}

/// Reads every configured site's certificate file and, when `served` is true, the certificate
/// nginx serves for the domain; judges them at `now`.
pub fn collect(cfg: &Config, served: bool, now: i64) -> Vec<SiteStatus> {
    let mut statuses: Vec<SiteStatus> = cfg
        .site
        .iter()
        .map(|site| assess(observe(cfg, site, served), now, cfg.certbot.warn_fraction))
        .collect();
    // A stale certificate in nginx says "reload nginx"; when `nginx -t` rejects the
    // configuration that reload would be refused, so say that instead, with nginx's error.
    if statuses
        .iter()
        .any(|s| s.served_matches_disk == Some(false))
    {
        if let Err(crate::nginx::NginxError::CheckFailed { command, detail }) =
            crate::nginx::check(cfg)
        {
            for s in statuses
                .iter_mut()
                .filter(|s| s.served_matches_disk == Some(false))
            {
                for p in s.problems.iter_mut().filter(|p| p.ends_with(RELOAD_HINT)) {
                    let stale = p.trim_end_matches(RELOAD_HINT).trim_end_matches(": ");
                    *p = format!(
                        "{stale}, and a reload would be refused: `{command}` rejected the \
                         configuration: {detail}; fix that, then run `opsync nginx reload`"
                    );
                }
            }
        }
    }
    statuses
}

/// The certificate file of `site`, resolved against the config folder.
pub fn cert_path(cfg: &Config, site: &Site) -> std::path::PathBuf {
    cfg.path(&site.cert_file(&cfg.certbot))
}

/// The key file of `site`, resolved against the config folder.
pub fn key_path(cfg: &Config, site: &Site) -> std::path::PathBuf {
    cfg.path(&site.key_file(&cfg.certbot))
}

/// `connect-address:https-port`.
pub fn served_address(cfg: &Config) -> String {
    let host = &cfg.nginx.connect_address;
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{}", cfg.nginx.https_port)
    } else {
        format!("{host}:{}", cfg.nginx.https_port)
    }
}

/// Reads the served certificate of `site`.
pub fn read_served(cfg: &Config, site: &Site) -> Result<CertInfo, String> {
    served_certificate(&served_address(cfg), &site.domain, Duration::from_secs(5))
        .map_err(|e| e.to_string())
}

fn observe(cfg: &Config, site: &Site, served: bool) -> Observation {
    let path = cert_path(cfg, site);
    let disk = read_disk(&path);
    let served = served.then(|| (served_address(cfg), read_served(cfg, site)));
    Observation {
        domain: site.domain.clone(),
        names: site.names(),
        cert_name: site.cert_name().to_owned(),
        cert_file: path.display().to_string(),
        disk,
        served,
    }
}

fn read_disk(path: &Path) -> Result<CertInfo, String> {
    if !path.exists() {
        return Err(format!(
            "certificate {} is missing: issue it (`opsync certs issue`)",
            path.display()
        ));
    }
    CertInfo::from_pem_file(path).map_err(|e| e.to_string())
}

/// Human-readable lines for one site.
pub fn text(s: &SiteStatus) -> String {
    let mut out = format!("{}: {}\n", s.domain, s.level.as_str());
    let describe = |v: &CertView| {
        format!(
            "{}, serial {}, not after {} ({:.1} of {:.1} days left), names {}, issuer {}",
            v.info.subject,
            v.info.serial,
            v.not_after_utc,
            v.days_left,
            v.lifetime_days,
            if v.info.sans.is_empty() {
                "none".to_owned()
            } else {
                v.info.sans.join(" ")
            },
            v.info.issuer
        )
    };
    match &s.disk {
        Some(v) => out.push_str(&format!("  file    {}: {}\n", s.cert_file, describe(v))),
        None => out.push_str(&format!("  file    {}: unreadable\n", s.cert_file)),
    }
    if let Some(addr) = &s.served_address {
        match (&s.served, s.served_matches_disk) {
            (Some(_), Some(true)) => {
                out.push_str(&format!("  served  {addr}: the same certificate\n"))
            }
            (Some(v), _) => out.push_str(&format!("  served  {addr}: {}\n", describe(v))),
            (None, _) => out.push_str(&format!("  served  {addr}: unreadable\n")),
        }
    }
    for p in &s.problems {
        out.push_str(&format!("  {p}\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400;

    fn cert(serial: &str, not_before: i64, not_after: i64, sans: &[&str]) -> CertInfo {
        CertInfo {
            subject: "CN=example.com".into(),
            sans: sans.iter().map(|s| s.to_string()).collect(),
            issuer: "CN=test".into(),
            serial: serial.into(),
            not_before,
            not_after,
        }
    }

    fn obs(
        disk: Result<CertInfo, String>,
        served: Option<Result<CertInfo, String>>,
    ) -> Observation {
        Observation {
            domain: "example.com".into(),
            names: vec!["example.com".into(), "www.example.com".into()],
            cert_name: "example.com".into(),
            cert_file: "/le/live/example.com/fullchain.pem".into(),
            disk,
            served: served.map(|r| ("127.0.0.1:443".to_owned(), r)),
        }
    }

    const NAMES: &[&str] = &["example.com", "www.example.com"];

    #[test]
    fn policy_table() {
        let now = 1_000 * DAY;
        let fresh = || cert("0A", now - 10 * DAY, now + 80 * DAY, NAMES);
        let cases: Vec<(&str, Observation, Level, &str)> = vec![
            (
                "fresh, served",
                obs(Ok(fresh()), Some(Ok(fresh()))),
                Level::Ok,
                "",
            ),
            ("fresh, not checked", obs(Ok(fresh()), None), Level::Ok, ""),
            (
                "less than a third left",
                obs(Ok(cert("0A", now - 61 * DAY, now + 29 * DAY, NAMES)), None),
                Level::Warn,
                "expires in 29.0 days",
            ),
            (
                "just more than a third left",
                obs(Ok(cert("0A", now - 59 * DAY, now + 31 * DAY, NAMES)), None),
                Level::Ok,
                "",
            ),
            (
                "short lifetime, a third left",
                obs(Ok(cert("0A", now - 4 * DAY, now + 2 * DAY, NAMES)), None),
                Level::Ok,
                "",
            ),
            (
                "short lifetime, less than a third left",
                obs(Ok(cert("0A", now - 5 * DAY, now + DAY, NAMES)), None),
                Level::Warn,
                "expires in 1.0 days",
            ),
            (
                "expired",
                obs(Ok(cert("0A", now - 90 * DAY, now - DAY, NAMES)), None),
                Level::Error,
                "expired on",
            ),
            (
                "missing a name",
                obs(
                    Ok(cert("0A", now - DAY, now + 80 * DAY, &["example.com"])),
                    None,
                ),
                Level::Error,
                "does not cover www.example.com",
            ),
            (
                "missing file",
                obs(Err("certificate x is missing".into()), None),
                Level::Error,
                "is missing",
            ),
            (
                "stale in nginx",
                obs(
                    Ok(fresh()),
                    Some(Ok(cert("09", now - 80 * DAY, now + 10 * DAY, NAMES))),
                ),
                Level::Error,
                "nginx serves serial 09",
            ),
            (
                "nginx unreachable",
                obs(Ok(fresh()), Some(Err("cannot connect".into()))),
                Level::Error,
                "cannot connect",
            ),
        ];
        for (name, o, level, problem) in cases {
            let s = assess(o, now, 1.0 / 3.0);
            assert_eq!(s.level, level, "{name}: {:?}", s.problems);
            if problem.is_empty() {
                assert!(s.problems.is_empty(), "{name}: {:?}", s.problems);
            } else {
                assert!(
                    s.problems[0].contains(problem),
                    "{name}: {:?} lacks {problem:?}",
                    s.problems
                );
            }
        }
    }

    #[test]
    fn days_left_and_match() {
        let now = 1_000 * DAY;
        let c = cert("0A", now - DAY, now + 6 * DAY + DAY / 2, NAMES);
        let s = assess(obs(Ok(c.clone()), Some(Ok(c))), now, 1.0 / 3.0);
        let d = s.disk.as_ref().unwrap();
        assert_eq!(d.days_left, 6.5);
        assert_eq!(d.lifetime_days, 7.5);
        assert_eq!(s.served_matches_disk, Some(true));
        let e = s.expiries();
        assert_eq!(e[0].source, "disk");
        assert_eq!(e[1].days_left, Some(6.5));
    }
}
