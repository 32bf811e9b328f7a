//! Per-job file locks (`STATE_DIR/locks/NAME.lock`, `flock`), so `opsync run JOB` and the daemon
//! never run the same job together. The kernel drops the lock when the process ends, so a crash
//! never leaves a stale lock; the file holds the pid of the holder for the message.

use std::fs::File;
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use rustix::fs::{FlockOperation, flock};

/// A held lock; released on drop.
#[derive(Debug)]
pub struct JobLock {
    _file: File,
    pub path: PathBuf,
}

/// Lock files this process holds through [`try_lock`], so code called from inside a job (the
/// compose steps of the nightly job) knows the job already holds the stack's lock.
static HELD: std::sync::Mutex<Vec<PathBuf>> = std::sync::Mutex::new(Vec::new());

impl Drop for JobLock {
    fn drop(&mut self) {
        let mut held = HELD.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(i) = held.iter().position(|p| *p == self.path) {
            held.swap_remove(i);
        }
    }
}

/// The lock file of `name` under `state_dir`.
pub fn lock_path(state_dir: &Path, name: &str) -> PathBuf {
    state_dir.join("locks").join(format!("{name}.lock"))
}

/// True when this process holds the lock at `path` through [`try_lock`].
pub fn held_here(path: &Path) -> bool {
    HELD.lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .any(|p| p == path)
}

/// A lock that could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("job {job} is already running (pid {pid}, lock {path}): wait for it to finish")]
    Held {
        job: String,
        pid: String,
        path: PathBuf,
    },
    #[error("cannot {op} lock {path}: {source}: check [general] state-dir")]
    Io {
        op: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Takes the lock of `job` without waiting.
pub fn try_lock(state_dir: &Path, job: &str) -> Result<JobLock, LockError> {
    let path = lock_path(state_dir, job);
    let dir = state_dir.join("locks");
    let io = |op: &'static str, path: &Path| {
        let path = path.to_owned();
        move |source| LockError::Io { op, path, source }
    };
    std::fs::create_dir_all(&dir).map_err(io("create the folder of", &path))?;
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(io("open", &path))?;
    match flock(&file, FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => {}
        Err(e) if e == rustix::io::Errno::WOULDBLOCK => {
            let mut pid = String::new();
            let _ = file.read_to_string(&mut pid);
            let pid = pid.trim();
            return Err(LockError::Held {
                job: job.to_string(),
                pid: if pid.is_empty() {
                    "unknown".into()
                } else {
                    pid.into()
                },
                path,
            });
        }
        Err(e) => return Err(io("take", &path)(e.into())),
    }
    file.set_len(0).map_err(io("write", &path))?;
    file.rewind().map_err(io("write", &path))?;
    writeln!(file, "{}", std::process::id()).map_err(io("write", &path))?;
    HELD.lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(path.clone());
    Ok(JobLock { _file: file, path })
}

/// True when some process holds the lock of `job` (without taking it for longer than a
/// moment and without touching the file's contents).
pub fn is_held(state_dir: &Path, job: &str) -> bool {
    let path = lock_path(state_dir, job);
    let Ok(file) = File::open(&path) else {
        return false;
    };
    match flock(&file, FlockOperation::NonBlockingLockShared) {
        Ok(()) => {
            let _ = flock(&file, FlockOperation::Unlock);
            false
        }
        Err(_) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_lock_of_the_same_job_is_refused_until_the_first_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let a = try_lock(dir.path(), "nightly").unwrap();
        // flock locks belong to the open file description: a second open conflicts even in the
        // same process, as a second opsync process would.
        let e = try_lock(dir.path(), "nightly").unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("already running") && msg.contains(&std::process::id().to_string()),
            "{msg}"
        );
        let _other = try_lock(dir.path(), "certs").unwrap();
        assert!(is_held(dir.path(), "nightly"));
        drop(a);
        assert!(!is_held(dir.path(), "nightly"));
        try_lock(dir.path(), "nightly").unwrap();
    }
}
