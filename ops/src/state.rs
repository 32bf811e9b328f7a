//! Job state: one small JSON file per job (`STATE_DIR/jobs/NAME.json`) with the last run's
//! start, end, result, duration, bytes, steps and how long production was paused, and for the
//! nightly sync the files each step copied and the paths of its errors, warnings, differences
//! and repairs (a count and the first [`PathList::FIRST`] paths of each). Written atomically
//! (temporary file in the same folder, fsync, rename), so a reader never sees half a file and a
//! crash leaves the previous state.

use std::collections::BTreeMap;
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
    /// What a sync or verify step copied and found.
    #[serde(flatten)]
    pub detail: StepDetail,
}

/// What a sync or verify step of the nightly job copied and found, read from its events.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct StepDetail {
    /// Files copied (from the summary; without one, from the `item` events seen).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub files: Option<u64>,
    /// Bytes of the files copied.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
    /// Entries that could not be read or written (kinds: the operation).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errors: Option<PathList>,
    /// Warnings (kinds: `vanished`, `changed-during-copy`, `not-empty`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warnings: Option<PathList>,
    /// Differences between the trees found by a verification (kinds: `content`, `size`,
    /// `mtime`, `missing`, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub differences: Option<PathList>,
    /// Files that differed from the source with the same size and mtime (what the quick check
    /// misses) and were copied again by content.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub repaired: Option<PathList>,
    /// Differences left after the repair.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remaining: Option<PathList>,
}

impl JobState {
    /// What the last run of a nightly sync repaired and left, for `opsync status` and
    /// `opsync run`: `3 differences repaired: a, b, c`.
    pub fn notes(&self) -> Vec<String> {
        let mut v = Vec::new();
        if let Some(l) = &self.repaired {
            v.push(l.describe("difference", "differences", "repaired"));
        }
        if let Some(l) = &self.remaining {
            v.push(l.describe("difference", "differences", "left"));
        }
        v
    }
}

/// A count of paths and the first [`PathList::FIRST`] of them (printable: bytes that are not
/// are written `\#ooo`, as in `opsync sync -i`), with a count per kind.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PathList {
    pub count: u64,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub kinds: BTreeMap<String, u64>,
    pub paths: Vec<String>,
}

impl PathList {
    /// How many paths are kept.
    pub const FIRST: usize = 20;

    /// Counts one more path of `kind` (empty: none) and keeps it when it is among the first.
    pub fn add(&mut self, kind: &str, path: &str) {
        self.count += 1;
        if !kind.is_empty() {
            *self.kinds.entry(kind.to_string()).or_default() += 1;
        }
        if self.paths.len() < Self::FIRST && !self.paths.iter().any(|p| p == path) {
            self.paths.push(path.to_string());
        }
    }

    /// None when nothing was counted.
    pub fn some(self) -> Option<PathList> {
        (self.count > 0).then_some(self)
    }

    /// `3 differences repaired: a, b, c`: the count, then the paths kept (`what` in the
    /// singular and plural, then the verb).
    pub fn describe(&self, one: &str, many: &str, verb: &str) -> String {
        let what = if self.count == 1 { one } else { many };
        let mut s = format!("{} {what}", self.count);
        if !verb.is_empty() {
            s.push(' ');
            s.push_str(verb);
        }
        if !self.paths.is_empty() {
            s.push_str(": ");
            s.push_str(&self.paths.join(", "));
            let named = self.paths.len() as u64;
            if self.count > named {
                s.push_str(&format!(
                    " and {} more (all in the log)",
                    self.count - named
                ));
            }
        }
        s
    }
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
    /// Nightly sync: files that differed from production with the same size and mtime and
    /// were copied again by content in pass 2.
    pub repaired: Option<PathList>,
    /// Nightly sync: differences pass 2's verification left (the result is then
    /// `differences`).
    pub remaining: Option<PathList>,
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
    fn path_lists_keep_the_first_paths_and_count_all() {
        let mut l = PathList::default();
        for i in 0..25 {
            l.add("content", &format!("f{i}"));
        }
        l.add("mode", "f0");
        assert_eq!(l.count, 26);
        assert_eq!(l.paths.len(), PathList::FIRST);
        assert_eq!(l.kinds["content"], 25);
        let d = l.describe("difference", "differences", "repaired");
        assert!(d.starts_with("26 differences repaired: f0, f1, "), "{d}");
        assert!(d.ends_with("f19 and 6 more (all in the log)"), "{d}");
        let mut one = PathList::default();
        one.add("", "a");
        assert_eq!(
            one.describe("file", "files", "repaired"),
            "1 file repaired: a"
        );
        assert_eq!(PathList::default().some(), None);
    }

    #[test]
    fn old_steps_without_details_still_load() {
        let old = r#"{"job":"n","steps":[{"name":"pass-1","result":"ok","exit_code":0,"duration_seconds":1.0}]}"#;
        let st: JobState = serde_json::from_str(old).unwrap();
        assert_eq!(st.steps[0].detail, StepDetail::default());
        assert_eq!(st.repaired, None);
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
