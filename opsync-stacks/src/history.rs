//! Deployment history in `STATE_DIR/stacks.json`: the last N deployments of each stack (time,
//! images) and the images retired from it, which `stack prune` may remove.
//!
//! Written atomically ([`opsync_core::fs::write_atomic`]) under an
//! exclusive `flock` on `stacks.json.lock`, so two stacks updated at once do not lose each
//! other's records.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::error::StackError;
use opsync_core::{lock, time};

pub const STATE_FILE: &str = "stacks.json";

/// The whole state file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateFile {
    pub version: u32,
    #[serde(default)]
    pub stacks: BTreeMap<String, StackHistory>,
}

/// History of one stack.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StackHistory {
    /// Oldest first; the last one is what runs now (after a successful update or rollback).
    #[serde(default)]
    pub deployments: Vec<Deployment>,
    /// Images of deployments that fell out of the kept ones: `stack prune` removes them.
    #[serde(default)]
    pub retired: Vec<RetiredImage>,
}

/// One deployment: the image every service ran.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deployment {
    /// UTC, RFC 3339 (`2026-11-29T23:01:02Z`).
    pub time: String,
    pub unix: u64,
    pub images: Vec<ServiceImage>,
}

/// The image of one service in a deployment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceImage {
    pub service: String,
    /// The reference the service asks for (`registry/app:latest`).
    pub image: String,
    /// The image id (`sha256:...`).
    pub id: String,
    /// The extra tag that keeps the image from being pruned (`registry/app:opsync-rollback-...`).
    pub rollback_tag: String,
}

/// An image no kept deployment uses any more.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetiredImage {
    pub id: String,
    /// References opsync may remove if they still point to `id`.
    pub refs: Vec<String>,
}

impl Deployment {
    /// The image ids, by service.
    pub fn ids(&self) -> BTreeMap<&str, &str> {
        self.images
            .iter()
            .map(|i| (i.service.as_str(), i.id.as_str()))
            .collect()
    }
}

impl StackHistory {
    /// Appends `d` and moves deployments beyond the last `keep` to `retired`.
    pub fn push(&mut self, d: Deployment, keep: usize) {
        self.deployments.push(d);
        let keep = keep.max(1);
        if self.deployments.len() > keep {
            let dropped: Vec<Deployment> = self
                .deployments
                .drain(..self.deployments.len() - keep)
                .collect();
            for d in dropped {
                self.retire(d);
            }
        }
    }

    /// Removes the last deployment (after a rollback returned to the one before it) and
    /// retires its images.
    pub fn pop(&mut self) -> Option<Deployment> {
        let d = self.deployments.pop()?;
        self.retire(d.clone());
        Some(d)
    }

    fn retire(&mut self, d: Deployment) {
        let kept = self.kept_ids();
        for img in d.images {
            if kept.contains(&img.id) {
                continue;
            }
            let refs = vec![img.rollback_tag, img.image];
            match self.retired.iter_mut().find(|r| r.id == img.id) {
                Some(r) => {
                    for x in refs {
                        if !r.refs.contains(&x) {
                            r.refs.push(x);
                        }
                    }
                }
                None => self.retired.push(RetiredImage { id: img.id, refs }),
            }
        }
    }

    /// Image ids of the kept deployments.
    pub fn kept_ids(&self) -> BTreeSet<String> {
        self.deployments
            .iter()
            .flat_map(|d| d.images.iter().map(|i| i.id.clone()))
            .collect()
    }
}

/// Path of the state file.
pub fn state_path(state_dir: &Path) -> PathBuf {
    state_dir.join(STATE_FILE)
}

/// Loads the state file (empty history when it does not exist).
pub fn load(path: &Path) -> Result<StateFile, StackError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(StateFile::default()),
        Err(source) => {
            return Err(StackError::StateIo {
                op: "read",
                path: path.to_owned(),
                error: source,
            });
        }
    };
    serde_json::from_str(&text).map_err(|e| StackError::StateParse {
        path: path.to_owned(),
        message: e.to_string(),
    })
}

/// Writes the state file atomically.
pub fn save(path: &Path, state: &StateFile) -> Result<(), StackError> {
    let mut body = serde_json::to_vec_pretty(&StateFile {
        version: 1,
        stacks: state.stacks.clone(),
    })
    .map_err(|e| StackError::StateParse {
        path: path.to_owned(),
        message: e.to_string(),
    })?;
    body.push(b'\n');
    opsync_core::fs::write_atomic(path, &body).map_err(|e| StackError::StateIo {
        op: e.op,
        path: e.path,
        error: e.source,
    })
}

/// Runs `f` on the state file under an exclusive lock and saves what it leaves.
pub fn update<R>(path: &Path, f: impl FnOnce(&mut StateFile) -> R) -> Result<R, StackError> {
    let _lock = lock::wait_for(&path.with_extension("json.lock")).map_err(lock_error(""))?;
    let mut state = load(path)?;
    let before = state.clone();
    let r = f(&mut state);
    if state != before {
        save(path, &state)?;
    }
    Ok(r)
}

/// An exclusive lock on one stack, held while an operation changes it; released on drop.
#[derive(Debug)]
pub struct StackLock {
    /// `None` when a job of this process already holds the lock (the nightly job's steps).
    _lock: Option<lock::Lock>,
}

/// Takes the lock of `stack` (`STATE_DIR/locks/stack-NAME.lock`, the file the scheduler's jobs
/// lock too) without waiting: a second run that wants to change the same stack fails at once
/// instead of interleaving compose commands, and a manual `opsync stack update prod` cannot
/// restart prod while the nightly job has it paused. Inside a job that holds the lock already
/// (same process), this is a no-op.
pub fn lock_stack(state_dir: &Path, stack: &str) -> Result<StackLock, StackError> {
    lock::try_lock_unless_held_here(state_dir, &format!("stack-{stack}"))
        .map(|l| StackLock { _lock: l })
        .map_err(lock_error(stack))
}

fn lock_error(stack: &str) -> impl FnOnce(lock::LockError) -> StackError + '_ {
    move |e| match e {
        lock::LockError::Held { path, .. } => StackError::Locked {
            stack: stack.to_owned(),
            path,
        },
        lock::LockError::Io { op, path, source } => StackError::StateIo {
            op,
            path,
            error: source,
        },
    }
}

/// `2026-11-29T23:01:02Z`.
pub fn rfc3339(unix: u64) -> String {
    time::rfc3339(i64::try_from(unix).unwrap_or(i64::MAX))
}

/// `20261129T230102Z`, for tags (only `[A-Za-z0-9_.-]` allowed there).
pub fn compact(unix: u64) -> String {
    time::utc(i64::try_from(unix).unwrap_or(i64::MAX), "%Y%m%dT%H%M%SZ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dep(unix: u64, ids: &[(&str, &str)]) -> Deployment {
        Deployment {
            time: rfc3339(unix),
            unix,
            images: ids
                .iter()
                .map(|(s, id)| ServiceImage {
                    service: (*s).into(),
                    image: format!("reg/{s}:latest"),
                    id: (*id).into(),
                    rollback_tag: format!("reg/{s}:opsync-rollback-{}", compact(unix)),
                })
                .collect(),
        }
    }

    #[test]
    fn times() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_795_993_262), "2026-11-29T23:01:02Z");
        assert_eq!(compact(1_795_993_262), "20261129T230102Z");
    }

    #[test]
    fn push_keeps_the_last_n_and_retires_the_rest() {
        let mut h = StackHistory::default();
        h.push(dep(1, &[("web", "a")]), 2);
        h.push(dep(2, &[("web", "b")]), 2);
        h.push(dep(3, &[("web", "c")]), 2);
        assert_eq!(h.deployments.len(), 2);
        assert_eq!(h.retired.len(), 1);
        assert_eq!(h.retired[0].id, "a");
        assert!(h.retired[0].refs.contains(&"reg/web:latest".to_owned()));
    }

    #[test]
    fn an_image_still_in_a_kept_deployment_is_not_retired() {
        let mut h = StackHistory::default();
        h.push(dep(1, &[("web", "a"), ("db", "d")]), 1);
        h.push(dep(2, &[("web", "b"), ("db", "d")]), 1);
        assert_eq!(
            h.retired.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
            ["a"]
        );
    }

    #[test]
    fn pop_retires_the_images_of_the_last_deployment() {
        let mut h = StackHistory::default();
        h.push(dep(1, &[("web", "a")]), 5);
        h.push(dep(2, &[("web", "b")]), 5);
        let d = h.pop().unwrap();
        assert_eq!(d.unix, 2);
        assert_eq!(h.deployments.len(), 1);
        assert_eq!(h.retired[0].id, "b");
    }

    #[test]
    fn state_round_trips_through_the_file_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let path = state_path(dir.path());
        assert_eq!(load(&path).unwrap(), StateFile::default());
        update(&path, |s| {
            s.stacks
                .entry("prod".into())
                .or_default()
                .push(dep(1, &[("web", "a")]), 3)
        })
        .unwrap();
        let s = load(&path).unwrap();
        assert_eq!(s.version, 1);
        assert_eq!(s.stacks["prod"].deployments.len(), 1);
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.contains(".tmp"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }

    #[test]
    fn a_second_lock_on_one_stack_fails_at_once_and_others_are_free() {
        let dir = tempfile::tempdir().unwrap();
        let held = lock_stack(dir.path(), "prod").unwrap();
        let e = lock_stack(dir.path(), "prod").unwrap_err();
        assert!(matches!(e, StackError::Locked { .. }), "{e}");
        let _dev = lock_stack(dir.path(), "dev").unwrap();
        drop(held);
        lock_stack(dir.path(), "prod").unwrap();
    }

    #[test]
    fn a_job_holding_the_stack_lock_can_run_stack_commands_and_others_cannot() {
        let dir = tempfile::tempdir().unwrap();
        // The nightly job takes the stack's lock through the job lock module ...
        let job = opsync_core::lock::try_lock(dir.path(), "stack-dev").unwrap();
        // ... its own compose steps (same process) pass ...
        lock_stack(dir.path(), "dev").unwrap();
        // ... while another process would conflict: a separate open of the same lock file is
        // what another process does, and the job lock file is the one `lock_stack` uses.
        assert!(opsync_core::lock::try_lock(dir.path(), "stack-dev").is_err());
        drop(job);
        // Released: an ordinary lock works again, and a second one in this process conflicts.
        let held = lock_stack(dir.path(), "dev").unwrap();
        assert!(matches!(
            lock_stack(dir.path(), "dev"),
            Err(StackError::Locked { .. })
        ));
        drop(held);
    }

    #[test]
    fn a_corrupt_state_file_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = state_path(dir.path());
        std::fs::write(&path, "{not json").unwrap();
        let e = load(&path).unwrap_err().to_string();
        assert!(
            e.contains("stacks.json") && e.contains("move it away"),
            "{e}"
        );
    }
}
