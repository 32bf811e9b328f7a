//! `opsync.toml`: the one configuration file. Owns loading, defaults and validation; the
//! sections of other areas live in submodules ([`sites`] for domains, certbot and nginx,
//! [`stacks`] for compose stacks, [`jobs`] for scheduled jobs) so each area owns its own keys.
//!
//! Every key has a default, so a config with only the paths that differ is enough.
//!
//! Loading validates everything that does not touch the filesystem (unknown keys, schedules,
//! time zones, durations, stack names, a sync target inside its source); [`Config::check_paths`]
//! adds the checks that need the filesystem (missing source folders) and is run by
//! `opsync config check`, `opsync daemon` and `opsync run`. Every error names the file, the line
//! and what to write instead.

pub mod jobs;
pub mod sites;
pub mod stacks;
mod validate;
pub mod values;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use sync_engine::MaxDelete;

pub use jobs::{JobConfig, JobKind, QuiesceMode, VerifyMode};
pub use values::{DurationValue, ScheduleValue, ZoneValue};

/// The fully commented example printed by `opsync config example`.
pub const EXAMPLE: &str = include_str!("example.toml");

/// The whole configuration, after loading.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct Config {
    /// Directory the relative paths in this file are resolved against (the config file's
    /// folder); not a key in the file.
    #[serde(skip)]
    pub base_dir: PathBuf,
    /// The file this was loaded from (none: built-in defaults); not a key in the file.
    #[serde(skip)]
    pub file: Option<PathBuf>,
    /// `[general]`: state, locks, metrics.
    pub general: General,
    /// `[sync]`: what `opsync sync` with no arguments mirrors.
    pub sync: SyncSection,
    /// `[stacks.NAME]`: compose stacks (default: `prod` and `dev`).
    pub stacks: BTreeMap<String, stacks::StackConfig>,
    /// `[[site]]`: the served domains (default: none).
    pub site: Vec<sites::Site>,
    /// `[certbot]`: how certbot is run.
    pub certbot: sites::CertbotConfig,
    /// `[nginx]`: how the site config is rendered, checked and reloaded.
    pub nginx: sites::NginxConfig,
    /// `[jobs.NAME]`: scheduled jobs. When the file has no `[jobs]` at all, the defaults are a
    /// `nightly-sync` at 02:00 and, when sites are configured, a daily `certs-renew`.
    pub jobs: BTreeMap<String, JobConfig>,
}

/// `[general]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct General {
    /// Where job state and locks live.
    pub state_dir: PathBuf,
    /// Prometheus textfile for node_exporter (none: no metrics written).
    pub metrics_file: Option<PathBuf>,
    /// Time zone of schedules that name none (default: the system's local time).
    pub timezone: Option<ZoneValue>,
    /// How long `opsync daemon` lets a running job finish after SIGTERM before cancelling it
    /// (a cancelled nightly sync still resumes production and starts the dev stack).
    pub shutdown_grace: DurationValue,
}

impl Default for General {
    fn default() -> Self {
        General {
            state_dir: PathBuf::from("/var/lib/opsync"),
            metrics_file: None,
            timezone: None,
            shutdown_grace: DurationValue::from_secs(600),
        }
    }
}

/// True when `p` names a path on another host as rsync reads it: `[USER@]HOST:PATH`, a `:`
/// before any `/` (such a target is passed to `opsync sync` as it is).
pub fn is_remote(p: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let b = p.as_os_str().as_bytes();
    b.iter()
        .position(|&c| c == b':')
        .is_some_and(|i| i > 0 && !b[..i].contains(&b'/'))
}

/// `[sync]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct SyncSection {
    pub source: PathBuf,
    pub target: PathBuf,
    pub exclude: Vec<String>,
    /// `--max-delete` of `opsync sync` without arguments and of the sync jobs.
    #[serde(deserialize_with = "values::max_delete")]
    pub max_delete: Option<MaxDelete>,
    /// The remote shell for a target on another host (`-e`; default `ssh`).
    pub rsh: Option<String>,
    /// The opsync program on that host (`--remote-opsync`; default `opsync`).
    pub remote_opsync: Option<String>,
}

impl Default for SyncSection {
    fn default() -> Self {
        SyncSection {
            source: PathBuf::from("./data"),
            target: PathBuf::from("./dev-data"),
            exclude: Vec::new(),
            max_delete: None,
            rsh: None,
            remote_opsync: None,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        let mut cfg = Config {
            base_dir: PathBuf::from("."),
            file: None,
            general: General::default(),
            sync: SyncSection::default(),
            stacks: stacks::default_stacks(),
            site: Vec::new(),
            certbot: sites::CertbotConfig::default(),
            nginx: sites::NginxConfig::default(),
            jobs: BTreeMap::new(),
        };
        cfg.jobs = jobs::default_jobs(&cfg);
        cfg
    }
}

/// A configuration that could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
    /// A mistake at a known place in the file.
    #[error("{path}:{line}:{column}: {message}")]
    At {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
}

impl Config {
    /// Loads and validates the file at `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Config::parse(path, &text)
    }

    /// Parses and validates `text` as if it were read from `path`.
    pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
        let mut cfg: Config = toml::from_str(text).map_err(|e| match e.span() {
            Some(span) => validate::place(path, text, span.start, e.message()),
            None => ConfigError::Invalid {
                path: path.to_owned(),
                message: validate::did_you_mean(&validate::one_line(e.message())),
            },
        })?;
        cfg.base_dir = path
            .parent()
            .map(Path::to_owned)
            .unwrap_or_else(|| PathBuf::from("."));
        if cfg.base_dir.as_os_str().is_empty() {
            cfg.base_dir = PathBuf::from(".");
        }
        cfg.file = Some(path.to_owned());
        if !validate::has_table(text, "jobs") {
            cfg.jobs = jobs::default_jobs(&cfg);
        }
        validate::semantic(&cfg, path, text)?;
        Ok(cfg)
    }

    /// The configuration a command uses: `--config FILE` if given, else `./opsync.toml` if it
    /// exists, else the defaults.
    pub fn resolve(explicit: Option<&Path>) -> Result<Config, ConfigError> {
        match explicit {
            Some(p) => Config::load(p),
            None => {
                let p = Path::new("opsync.toml");
                if p.exists() {
                    Config::load(p)
                } else {
                    Ok(Config::default())
                }
            }
        }
    }

    /// Resolves a path from the config file against the file's folder.
    pub fn path(&self, p: &Path) -> PathBuf {
        if p.is_absolute() || self.base_dir == Path::new(".") || is_remote(p) {
            p.to_owned()
        } else {
            self.base_dir.join(p)
        }
    }

    /// Checks that need the filesystem: every sync source exists and is a folder, and the parent
    /// of every sync target exists. Returns every problem found.
    pub fn check_paths(&self) -> Vec<ConfigError> {
        validate::paths(self)
    }

    /// The state folder, resolved.
    pub fn state_dir(&self) -> PathBuf {
        self.path(&self.general.state_dir)
    }

    /// The metrics file, resolved (none: metrics are off).
    pub fn metrics_file(&self) -> Option<PathBuf> {
        self.general.metrics_file.as_deref().map(|p| self.path(p))
    }

    /// The name shown in messages for the config file.
    pub fn display_file(&self) -> String {
        match &self.file {
            Some(p) => p.display().to_string(),
            None => "built-in defaults".to_string(),
        }
    }

    /// The message for a job name that is not configured, listing the ones that are.
    pub fn unknown_job(&self, name: &str) -> String {
        let names: Vec<&str> = self.jobs.keys().map(String::as_str).collect();
        let names = if names.is_empty() {
            "none".to_string()
        } else {
            names.join(", ")
        };
        format!(
            "no job named {name} in {}: configured jobs: {names}",
            self.display_file()
        )
    }
}
