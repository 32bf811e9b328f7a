//! `[jobs.NAME]`: scheduled jobs, their kinds and steps, and the jobs used when the file names
//! none. The values their keys parse into are in [`super::values`].

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use serde::Deserialize;
use sync_engine::MaxDelete;

use super::Config;
use super::values::{DurationValue, ScheduleValue, ZoneValue, max_delete};

/// What a job does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum JobKind {
    /// The nightly mirror of production data into the dev copy, with its steps.
    Sync,
    /// `certbot renew` and the status of every certificate.
    Certs,
    /// Pull and restart one compose stack with rollback.
    StackUpdate,
    /// Any command (`command = ["prog", "arg"]`).
    Command,
}

impl JobKind {
    pub fn as_str(self) -> &'static str {
        match self {
            JobKind::Sync => "sync",
            JobKind::Certs => "certs",
            JobKind::StackUpdate => "stack-update",
            JobKind::Command => "command",
        }
    }
}

/// One `[jobs.NAME]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct JobConfig {
    /// What the job does.
    pub kind: JobKind,
    /// Classic 5-field crontab line, for example `0 2 * * *`.
    pub schedule: ScheduleValue,
    /// IANA time zone of the schedule (default: `[general] timezone`, else the system's).
    #[serde(default)]
    pub timezone: Option<ZoneValue>,
    /// Run once at start-up when a run was missed while the daemon was down.
    #[serde(default, alias = "catch_up")]
    pub catch_up: bool,
    /// False: `opsync daemon` does not schedule it (`opsync run` still can).
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Longest a run may take before its current step is stopped (none: no limit).
    #[serde(default)]
    pub timeout: Option<DurationValue>,

    // kind = "sync"
    /// Source (default: `[sync] source`).
    #[serde(default)]
    pub source: Option<PathBuf>,
    /// Target (default: `[sync] target`).
    #[serde(default)]
    pub target: Option<PathBuf>,
    /// How the copy is verified: `true` (default: the `check` step on live data, then pass 2
    /// rechecks what it found and reads back what it writes), `"paused"` (pass 2 compares both
    /// whole trees while production is paused) or `false`.
    #[serde(default)]
    pub verify: VerifyMode,
    /// Pass 2 writes only the changed blocks of changed files into the dev copy's files
    /// (`opsync sync --inplace`; default [`DEFAULT_INPLACE`]).
    #[serde(default = "default_inplace")]
    pub inplace: bool,
    /// `--max-delete` for both passes (default: `[sync] max-delete`).
    #[serde(default, deserialize_with = "max_delete")]
    pub max_delete: Option<MaxDelete>,
    /// Longest production may stay quiesced; pass 2 is stopped and production resumed when
    /// exceeded (default 10m).
    #[serde(default)]
    pub max_paused: Option<DurationValue>,
    /// Replaces `opsync sync` for both passes: the arguments (`--json SRC DST ...`) are appended.
    #[serde(default)]
    pub sync_command: Option<Vec<String>>,
    /// Replaces `opsync verify` for the `check` step: the arguments (`--json SRC DST ...`) are
    /// appended.
    #[serde(default)]
    pub verify_command: Option<Vec<String>>,
    /// Stopping and starting the dev stack around the sync.
    #[serde(default)]
    pub dev: DevStep,
    /// Quiescing production for pass 2.
    #[serde(default)]
    pub quiesce: QuiesceStep,

    // kind = "stack-update"
    /// The stack to update.
    #[serde(default)]
    pub stack: Option<String>,

    // kind = "command"
    /// Program and arguments (no shell; write `["sh", "-c", "..."]` for one).
    #[serde(default)]
    pub command: Option<Vec<String>>,
}

fn yes() -> bool {
    true
}

/// Whether pass 2 of a sync job updates changed files in place when the job sets no `inplace`.
pub const DEFAULT_INPLACE: bool = true;

fn default_inplace() -> bool {
    DEFAULT_INPLACE
}

/// The `verify` key of a sync job: `true`, `"paused"` or `false`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum VerifyMode {
    /// `true`: a `check` step compares both trees by content while production runs; pass 2
    /// compares by content the files it found with the same size and mtime but other content,
    /// and reads back every file it writes (`--recheck-from LIST --verify=written`). The pause
    /// grows with the bytes changed, not with the data.
    #[default]
    Live,
    /// `"paused"`: pass 2 compares both whole trees while production is quiesced and copies
    /// again what differs (`--verify`). The pause grows with the data.
    Paused,
    /// `false`: no verification.
    Off,
}

impl VerifyMode {
    /// The value as written in the config.
    pub fn as_str(self) -> &'static str {
        match self {
            VerifyMode::Live => "true",
            VerifyMode::Paused => "\"paused\"",
            VerifyMode::Off => "false",
        }
    }
}

impl<'de> Deserialize<'de> for VerifyMode {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = VerifyMode;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("true, false or \"paused\"")
            }
            fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<VerifyMode, E> {
                Ok(if v { VerifyMode::Live } else { VerifyMode::Off })
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<VerifyMode, E> {
                match v {
                    "paused" => Ok(VerifyMode::Paused),
                    _ => Err(E::custom(format!(
                        "invalid verify value \"{v}\": write verify = true (compare the trees on \
                         live data, then recheck and read back what pass 2 writes), verify = \
                         \"paused\" (compare both whole trees while production is paused) or \
                         verify = false"
                    ))),
                }
            }
        }
        d.deserialize_any(V)
    }
}

/// `[jobs.NAME.dev]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct DevStep {
    /// False: leave the dev stack alone.
    pub enabled: bool,
    /// The stack stopped before and started after the sync (default `dev`).
    pub stack: String,
    /// Command that replaces `compose stop` of the stack.
    pub stop_command: Option<Vec<String>>,
    /// Command that replaces `compose start` of the stack.
    pub start_command: Option<Vec<String>>,
    /// The host the dev stack runs on: stopped and started there through the remote shell
    /// of `[sync]` (`ssh HOST opsync stack stop STACK`).
    pub host: Option<String>,
}

impl Default for DevStep {
    fn default() -> Self {
        DevStep {
            enabled: true,
            stack: "dev".into(),
            stop_command: None,
            start_command: None,
            host: None,
        }
    }
}

/// How production is quiesced for pass 2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum QuiesceMode {
    /// `compose pause` of the services that own files under the source, `unpause` after.
    Pause,
    /// `compose stop` of those services, `start` after.
    Stop,
    /// A command makes a read-only snapshot; pass 2 copies from it.
    Snapshot,
    /// Copy live files (not consistent for databases; see the README).
    None,
}

impl QuiesceMode {
    pub fn as_str(self) -> &'static str {
        match self {
            QuiesceMode::Pause => "pause",
            QuiesceMode::Stop => "stop",
            QuiesceMode::Snapshot => "snapshot",
            QuiesceMode::None => "none",
        }
    }
}

/// `[jobs.NAME.quiesce]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct QuiesceStep {
    pub mode: QuiesceMode,
    /// The production stack (default `prod`).
    pub stack: String,
    /// Services to pause or stop (empty: all services of the stack).
    pub services: Vec<String>,
    /// Command that replaces compose pause/stop, or makes the snapshot.
    pub command: Option<Vec<String>>,
    /// Command that replaces compose unpause/start, or removes the snapshot.
    pub resume_command: Option<Vec<String>>,
    /// Folder pass 2 copies from in `snapshot` mode.
    pub snapshot_source: Option<PathBuf>,
}

impl Default for QuiesceStep {
    fn default() -> Self {
        QuiesceStep {
            mode: QuiesceMode::Pause,
            stack: "prod".into(),
            services: Vec::new(),
            command: None,
            resume_command: None,
            snapshot_source: None,
        }
    }
}

/// Jobs used when the file has no `[jobs]`: the nightly sync at 02:00 and, when sites are
/// configured, a daily certificate renewal at 03:17.
pub fn default_jobs(cfg: &Config) -> BTreeMap<String, JobConfig> {
    let mut jobs = BTreeMap::new();
    jobs.insert(
        "nightly-sync".to_string(),
        JobConfig::new(JobKind::Sync, "0 2 * * *"),
    );
    if !cfg.site.is_empty() {
        jobs.insert(
            "certs-renew".to_string(),
            JobConfig::new(JobKind::Certs, "17 3 * * *"),
        );
    }
    jobs
}

impl JobConfig {
    /// A job of `kind` with every other key at its default.
    pub fn new(kind: JobKind, schedule: &str) -> JobConfig {
        JobConfig {
            kind,
            schedule: schedule
                .parse()
                .unwrap_or_else(|_| ScheduleValue::daily_2am()),
            timezone: None,
            catch_up: kind == JobKind::Sync,
            enabled: true,
            timeout: None,
            source: None,
            target: None,
            verify: VerifyMode::default(),
            inplace: DEFAULT_INPLACE,
            max_delete: None,
            max_paused: None,
            sync_command: None,
            verify_command: None,
            dev: DevStep::default(),
            quiesce: QuiesceStep::default(),
            stack: None,
            command: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verify_values() {
        #[derive(Deserialize)]
        struct T {
            verify: VerifyMode,
        }
        let parse = |v: &str| toml::from_str::<T>(&format!("verify = {v}")).map(|t| t.verify);
        assert_eq!(parse("true").unwrap(), VerifyMode::Live);
        assert_eq!(parse("false").unwrap(), VerifyMode::Off);
        assert_eq!(parse("\"paused\"").unwrap(), VerifyMode::Paused);
        let e = parse("\"sometimes\"").unwrap_err().to_string();
        assert!(e.contains("invalid verify value \"sometimes\""), "{e}");
        assert!(parse("1").is_err());
    }
}
