//! `opsync.toml`: the one configuration file. Owns loading, defaults and validation; the
//! sections of other areas live in submodules ([`sites`] for domains, certbot and nginx,
//! [`stacks`] for compose stacks, [`jobs`] for scheduled jobs) so each area owns its own keys.
//!
//! Every key has a default, so a config with only the paths that differ is enough.
//!
//! Loading validates everything that does not touch the filesystem (unknown keys, schedules,
//! time zones, durations, stack names, a sync target inside its source); `check` collects
//! every such mistake of a file in one run ([`Config::load_all`]). [`Config::check_paths`] adds
//! the checks that need the filesystem (missing source folders) and is run by
//! `opsync config check`, `opsync daemon` and `opsync run`; [`Config::check_needs`] (module
//! `needs`) what the enabled jobs will need, for `opsync config check`. Every error names the
//! file, the line and what to write instead.
//!
//! Paths: the file's folder is made absolute when it is loaded, and every path key is resolved
//! against it ([`Config::path`]), so nginx, certbot and compose always get absolute paths. State
//! and locks belong to one configuration file ([`Config::state_dir`],
//! [`Config::claim_state_dir`]).

mod check;
pub mod jobs;
mod needs;
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

/// The folder under which each configuration file gets its own state folder when
/// `[general] state-dir` is not set.
pub const DEFAULT_STATE_ROOT: &str = "/var/lib/opsync";

/// The fully commented example printed by `opsync config example`.
pub const EXAMPLE: &str = include_str!("example.toml");

/// `opsync config example --sync-only`: a server without compose stacks.
pub const EXAMPLE_SYNC_ONLY: &str = include_str!("example-sync-only.toml");

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
    /// Where job state and locks live (none: [`DEFAULT_STATE_ROOT`]`/KEY`, one folder per
    /// configuration file, see [`Config::state_dir`]).
    pub state_dir: Option<PathBuf>,
    /// Prometheus textfile for node_exporter (none: no metrics written).
    pub metrics_file: Option<PathBuf>,
    /// Time zone of schedules that name none (default: the system's local time).
    pub timezone: Option<ZoneValue>,
    /// How long `opsync daemon` lets a running job finish after SIGTERM before cancelling it
    /// (a cancelled nightly sync still resumes production and starts the dev stack).
    pub shutdown_grace: DurationValue,
    /// Command run when a job fails, is cancelled or needs attention (no shell; its
    /// environment has `OPSYNC_JOB`, `OPSYNC_RESULT`, `OPSYNC_EXIT_CODE`, `OPSYNC_FAILED_STEP`,
    /// `OPSYNC_MESSAGE`); a job's own `on-failure` replaces it.
    pub on_failure: Option<Vec<String>>,
    /// Longest the on-failure command may run before it is killed.
    pub on_failure_timeout: DurationValue,
}

impl Default for General {
    fn default() -> Self {
        General {
            state_dir: None,
            metrics_file: None,
            timezone: None,
            shutdown_grace: DurationValue::from_secs(600),
            on_failure: None,
            on_failure_timeout: DurationValue::from_secs(60),
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

/// The file in a state folder naming the configuration it belongs to.
pub const STATE_OWNER_FILE: &str = "config";

/// A readable, collision-free folder name for a configuration identity.
fn state_key(identity: &str) -> String {
    let readable: String = identity
        .trim_start_matches('/')
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect();
    let hash = blake3::hash(identity.as_bytes()).to_hex();
    let readable = readable
        .get(readable.len().saturating_sub(80)..)
        .unwrap_or(&readable);
    format!("{readable}-{}", &hash[..8])
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

    /// Parses and validates `text` as if it were read from `path`; the first mistake is the
    /// error.
    pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
        let (cfg, errors) = check::collect(path, text);
        match (cfg, errors.into_iter().next()) {
            (_, Some(e)) => Err(e),
            (Some(cfg), None) => Ok(cfg),
            (None, None) => Err(ConfigError::Invalid {
                path: path.to_owned(),
                message: "cannot be read".into(),
            }),
        }
    }

    /// Reads the file at `path` and returns every mistake in it, in the order of the file (see
    /// [`check`]); the config is returned when nothing was wrong.
    pub fn load_all(path: &Path) -> Result<Config, Vec<ConfigError>> {
        let text = std::fs::read_to_string(path).map_err(|source| {
            vec![ConfigError::Read {
                path: path.to_owned(),
                source,
            }]
        })?;
        match check::collect(path, &text) {
            (Some(cfg), errors) if errors.is_empty() => Ok(cfg),
            (_, errors) => Err(errors),
        }
    }

    /// Sets what is not read from the file: its folder, its path, the default jobs.
    fn finish(&mut self, path: &Path, text: &str) {
        // Absolute, so that a relative path reaches nginx, certbot and compose resolved no
        // matter which folder the program runs in (`nginx -p` reads a relative `-c` against
        // its prefix, a rendered `root webroot;` against nginx's own folder).
        let path = std::path::absolute(path).unwrap_or_else(|_| path.to_owned());
        self.base_dir = path
            .parent()
            .map(Path::to_owned)
            .unwrap_or_else(|| PathBuf::from("/"));
        self.file = Some(path);
        if !validate::has_table(text, "jobs") {
            self.jobs = jobs::default_jobs(self);
        }
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
                    let mut cfg = Config::default();
                    if let Ok(cwd) = std::env::current_dir() {
                        cfg.base_dir = cwd;
                    }
                    Ok(cfg)
                }
            }
        }
    }

    /// Resolves a path from the config file against the file's folder (for the built-in
    /// defaults: the working directory). `./data` becomes `BASE/data`.
    pub fn path(&self, p: &Path) -> PathBuf {
        if p.is_absolute() || is_remote(p) {
            return p.to_owned();
        }
        let rel = p.strip_prefix(".").unwrap_or(p);
        if self.base_dir == Path::new(".") {
            return p.to_owned();
        }
        if rel.as_os_str().is_empty() {
            self.base_dir.clone()
        } else {
            self.base_dir.join(rel)
        }
    }

    /// Resolves a program key (`program = "certbot"`): a bare name is looked up in `PATH` when
    /// it runs; a name with a slash is a path, resolved as [`Config::path`] does.
    pub fn program(&self, p: &Path) -> PathBuf {
        if p.components().count() > 1 || p.is_absolute() {
            self.path(p)
        } else {
            p.to_owned()
        }
    }

    /// What identifies this configuration: the absolute path of its file, or, for the
    /// built-in defaults, the folder they were used in.
    pub fn identity(&self) -> String {
        match &self.file {
            Some(f) => f.display().to_string(),
            None => {
                let cwd =
                    std::path::absolute(&self.base_dir).unwrap_or_else(|_| self.base_dir.clone());
                format!("built-in defaults in {}", cwd.display())
            }
        }
    }

    /// Checks that need the filesystem: every sync source exists and is a folder, and the parent
    /// of every sync target exists. Returns every problem found.
    pub fn check_paths(&self) -> Vec<ConfigError> {
        validate::paths(self)
    }

    /// What the enabled jobs will need when they run (compose files of the stacks they use,
    /// certbot and nginx for sites, the programs of commands, writable state and metrics
    /// folders); every unmet need, for `opsync config check`.
    pub fn check_needs(&self) -> Vec<ConfigError> {
        needs::check(self)
    }

    /// The state folder (job state, locks, stack history), resolved: `[general] state-dir`,
    /// else a folder of its own for this configuration under [`DEFAULT_STATE_ROOT`], named after
    /// the config file's path (`/srv/app/opsync.toml` -> `srv-app-opsync.toml-1a2b3c4d`), so two
    /// configurations never see each other's runs or locks.
    pub fn state_dir(&self) -> PathBuf {
        match &self.general.state_dir {
            Some(p) => self.path(p),
            None => Path::new(DEFAULT_STATE_ROOT).join(state_key(&self.identity())),
        }
    }

    /// Makes sure the state folder exists and belongs to this configuration: the first
    /// configuration that uses a folder writes its identity into `STATE/config`; another
    /// configuration pointed at the same folder is refused, so that state and locks are never
    /// shared between configurations.
    pub fn claim_state_dir(&self) -> Result<PathBuf, ConfigError> {
        let dir = self.state_dir();
        let marker = dir.join(STATE_OWNER_FILE);
        let me = self.identity();
        let invalid = |message: String| ConfigError::Invalid {
            path: self
                .file
                .clone()
                .unwrap_or_else(|| PathBuf::from("(built-in defaults)")),
            message,
        };
        match std::fs::read_to_string(&marker) {
            Ok(owner) if owner.trim_end() == me => Ok(dir),
            Ok(owner) => Err(invalid(format!(
                "the state folder {} belongs to another configuration ({}): give this one its \
                 own [general] state-dir, or leave state-dir out",
                dir.display(),
                owner.trim_end()
            ))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                crate::fs::write_atomic(&marker, format!("{me}\n").as_bytes()).map_err(|e| {
                    invalid(format!(
                        "cannot write the state folder {}: {e}; create it writable or set \
                         [general] state-dir",
                        dir.display()
                    ))
                })?;
                Ok(dir)
            }
            Err(e) => Err(invalid(format!("cannot read {}: {e}", marker.display()))),
        }
    }

    /// The configuration a state folder belongs to, when it has been claimed.
    pub fn state_owner(&self) -> Option<String> {
        std::fs::read_to_string(self.state_dir().join(STATE_OWNER_FILE))
            .ok()
            .map(|s| s.trim_end().to_string())
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
