//! Job state: one small JSON file per job (`STATE_DIR/jobs/NAME.json`) with the last run's
//! start, end, result, duration, bytes, steps and how long production was paused. Written
//! atomically (temporary file in the same folder, fsync, rename), so a reader never sees half a
//! file and a crash leaves the previous state.

use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// What one step of a job did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepRecord {
    pub name: String,
    /// `ok`, `skipped`, or the name of the failure (`failed`, `partial`, `max-delete`, ...).
    pub result: String,
    pub exit_code: u8,
    pub duration_seconds: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// Days left of one certificate, from the last certs run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CertRecord {
    pub name: String,
    pub source: String,
    pub days_left: Option<f64>,
}

/// The state of one job.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct JobState {
    pub job: String,
    pub kind: String,
    /// True from the start of a run until its end was recorded.
    pub running: bool,
    pub pid: Option<u32>,
    /// How the last run was started: `schedule`, `catch-up` or `manual`.
    pub trigger: Option<String>,
    pub last_start: Option<DateTime<Utc>>,
    pub last_end: Option<DateTime<Utc>>,
    /// `ok`, `failed`, `partial`, ... (see [`crate::jobs::result_name`]).
    pub result: Option<String>,
    pub exit_code: Option<u8>,
    pub duration_seconds: Option<f64>,
    pub bytes: Option<u64>,
    pub files: Option<u64>,
    /// The first step whose result made the job's result.
    pub failed_step: Option<String>,
    /// How long production was paused or stopped (nightly sync).
    pub paused_seconds: Option<f64>,
    pub message: Option<String>,
    pub last_success: Option<DateTime<Utc>>,
    pub steps: Vec<StepRecord>,
    pub certs: Vec<CertRecord>,
}

/// A state file that could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error(
        "cannot {op} state {path}: {source}: check that the state folder exists and is writable ([general] state-dir)"
    )]
    Io {
        op: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "state file {path} is not valid JSON ({source}): remove it, the next run writes it anew"
    )]
    Parse {
        path: PathBuf,
        source: serde_json::Error,
    },
}

/// The state folder of one config.
#[derive(Debug, Clone)]
pub struct StateStore {
    dir: PathBuf,
}

impl StateStore {
    pub fn new(state_dir: &Path) -> StateStore {
        StateStore {
            dir: state_dir.join("jobs"),
        }
    }

    /// Path of `job`'s state file.
    pub fn path(&self, job: &str) -> PathBuf {
        self.dir.join(format!("{job}.json"))
    }

    /// The state of `job`, or none when it never ran.
    pub fn load(&self, job: &str) -> Result<Option<JobState>, StateError> {
        let path = self.path(job);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(StateError::Io {
                    op: "read",
                    path,
                    source,
                });
            }
        };
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|source| StateError::Parse { path, source })
    }

    /// Writes `state` atomically.
    pub fn save(&self, state: &JobState) -> Result<(), StateError> {
        let path = self.path(&state.job);
        std::fs::create_dir_all(&self.dir).map_err(|source| StateError::Io {
            op: "create the folder of",
            path: path.clone(),
            source,
        })?;
        let mut text = serde_json::to_vec_pretty(state).map_err(|source| StateError::Parse {
            path: path.clone(),
            source,
        })?;
        text.push(b'\n');
        write_atomic(&path, &text).map_err(|source| StateError::Io {
            op: "write",
            path,
            source,
        })
    }
}

/// Writes `bytes` to `path` atomically: a temporary file in the same folder, fsync, rename, then
/// fsync of the folder. The temporary file is removed on error.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp.{}", std::process::id()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, path)?;
        if let Ok(d) = std::fs::File::open(&dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn save_and_load_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::new(dir.path());
        assert_eq!(store.load("nightly").unwrap(), None);
        let st = JobState {
            job: "nightly".into(),
            kind: "sync".into(),
            bytes: Some(42),
            result: Some("ok".into()),
            ..JobState::default()
        };
        store.save(&st).unwrap();
        assert_eq!(store.load("nightly").unwrap(), Some(st));
        // No temporary file left behind.
        let names: Vec<_> = std::fs::read_dir(dir.path().join("jobs"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["nightly.json"]);
    }

    #[test]
    fn corrupt_state_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::new(dir.path());
        std::fs::create_dir_all(dir.path().join("jobs")).unwrap();
        std::fs::write(store.path("x"), "{not json").unwrap();
        let e = store.load("x").unwrap_err().to_string();
        assert!(e.contains("x.json") && e.contains("remove it"), "{e}");
    }
}
