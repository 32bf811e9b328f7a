//! `opsync.toml`: the one configuration file. Owns loading, defaults and validation; the
//! sections of other areas live in submodules ([`sites`] for domains, certbot and nginx,
//! [`stacks`] for compose stacks) so each area owns its own keys.
//!
//! Every key has a default, so a config with only the paths that differ is enough.

pub mod sites;
pub mod stacks;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// The whole configuration, after loading.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct Config {
    /// Directory the relative paths in this file are resolved against (the config file's
    /// folder); not a key in the file.
    #[serde(skip)]
    pub base_dir: PathBuf,
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
    /// `[jobs.NAME]`: scheduled jobs, kept as raw TOML until the scheduler module parses them.
    pub jobs: BTreeMap<String, toml::Value>,
}

/// `[general]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct General {
    /// Where job state and locks live.
    pub state_dir: PathBuf,
    /// Prometheus textfile for node_exporter (none: no metrics written).
    pub metrics_file: Option<PathBuf>,
}

impl Default for General {
    fn default() -> Self {
        General {
            state_dir: PathBuf::from("/var/lib/opsync"),
            metrics_file: None,
        }
    }
}

/// `[sync]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct SyncSection {
    pub source: PathBuf,
    pub target: PathBuf,
    pub exclude: Vec<String>,
    pub max_delete: Option<String>,
}

impl Default for SyncSection {
    fn default() -> Self {
        SyncSection {
            source: PathBuf::from("./data"),
            target: PathBuf::from("./dev-data"),
            exclude: Vec::new(),
            max_delete: None,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            base_dir: PathBuf::from("."),
            general: General::default(),
            sync: SyncSection::default(),
            stacks: stacks::default_stacks(),
            site: Vec::new(),
            certbot: sites::CertbotConfig::default(),
            nginx: sites::NginxConfig::default(),
            jobs: BTreeMap::new(),
        }
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
}

impl Config {
    /// Loads and validates the file at `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let mut cfg: Config = toml::from_str(&text).map_err(|e| ConfigError::Invalid {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        cfg.base_dir = path
            .parent()
            .map(Path::to_owned)
            .unwrap_or_else(|| PathBuf::from("."));
        if cfg.base_dir.as_os_str().is_empty() {
            cfg.base_dir = PathBuf::from(".");
        }
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
        if p.is_absolute() {
            p.to_owned()
        } else {
            self.base_dir.join(p)
        }
    }
}
