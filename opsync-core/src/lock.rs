//! File locks (`flock`): the one module that takes them.
//!
//! - `STATE_DIR/locks/JOB.lock`: one run of a job at a time (`opsync run JOB` and the daemon);
//! - `STATE_DIR/locks/stack-NAME.lock`: one operation on a compose stack at a time (a job that
//!   stops, pauses or updates it, `opsync stack ...`);
//! - `STATE_DIR/stacks.json.lock`: read-modify-write of the stack history.
//!
//! The kernel drops a lock when its process dies, so a crash never leaves a stale lock. The
//! file holds the pid of the holder, for messages. A [`Lock`] is released on drop, explicitly
//! (`LOCK_UN`), so a child process forked meanwhile cannot keep it.

use std::fs::File;
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use rustix::fs::{FlockOperation, flock};

/// A held lock; released on drop.
#[derive(Debug)]
pub struct Lock {
    file: File,
    pub path: PathBuf,
    /// Listed in [`HELD`].
    registered: bool,
}

/// Lock files this process holds through [`try_lock`] (the locks of jobs), so code called from
/// inside a job (the compose steps of the nightly job) knows the job holds the stack's lock.
static HELD: std::sync::Mutex<Vec<PathBuf>> = std::sync::Mutex::new(Vec::new());

fn held() -> std::sync::MutexGuard<'static, Vec<PathBuf>> {
    HELD.lock().unwrap_or_else(|p| p.into_inner())
}

impl Drop for Lock {
    fn drop(&mut self) {
        let _ = flock(&self.file, FlockOperation::Unlock);
        if !self.registered {
            return;
        }
        let mut held = held();
        if let Some(i) = held.iter().position(|p| *p == self.path) {
            held.swap_remove(i);
        }
    }
}

/// A lock that could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("lock {} is held by pid {pid}", path.display())]
    Held {
        /// The holder's pid as its lock file says, or `unknown`.
        pid: String,
        path: PathBuf,
    },
    #[error("cannot {op} lock {}: {source}: check [general] state-dir", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The lock file of `name` under `state_dir`.
pub fn lock_path(state_dir: &Path, name: &str) -> PathBuf {
    state_dir.join("locks").join(format!("{name}.lock"))
}

/// Takes the lock `name` (a job's name, or `stack-NAME`) for a job, without waiting.
pub fn try_lock(state_dir: &Path, name: &str) -> Result<Lock, LockError> {
    take(&lock_path(state_dir, name), false, true)
}

/// Like [`try_lock`] for one operation, but `None` when a job of this process holds the lock
/// already: the stack operations of a job that locked the stack.
pub fn try_lock_unless_held_here(state_dir: &Path, name: &str) -> Result<Option<Lock>, LockError> {
    let path = lock_path(state_dir, name);
    if held().contains(&path) {
        return Ok(None);
    }
    take(&path, false, false).map(Some)
}

/// Takes the lock at `path`, waiting as long as another process holds it.
pub fn wait_for(path: &Path) -> Result<Lock, LockError> {
    take(path, true, false)
}

fn take(path: &Path, wait: bool, register: bool) -> Result<Lock, LockError> {
    let io = |op: &'static str| {
        let path = path.to_owned();
        move |source| LockError::Io { op, path, source }
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io("create the folder of"))?;
    }
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(io("open"))?;
    let op = if wait {
        FlockOperation::LockExclusive
    } else {
        FlockOperation::NonBlockingLockExclusive
    };
    match flock(&file, op) {
        Ok(()) => {}
        Err(e) if e == rustix::io::Errno::WOULDBLOCK => {
            let mut pid = String::new();
            let _ = file.read_to_string(&mut pid);
            let pid = pid.trim();
            return Err(LockError::Held {
                pid: if pid.is_empty() {
                    "unknown".into()
                } else {
                    pid.into()
                },
                path: path.to_owned(),
            });
        }
        Err(e) => return Err(io("take")(e.into())),
    }
    let lock = Lock {
        file,
        path: path.to_owned(),
        registered: register,
    };
    if register {
        held().push(lock.path.clone());
    }
    let mut file = &lock.file;
    file.set_len(0).map_err(io("write"))?;
    file.rewind().map_err(io("write"))?;
    writeln!(file, "{}", std::process::id()).map_err(io("write"))?;
    Ok(lock)
}

/// True when some process holds the lock `name` (without taking it for longer than a moment
/// and without touching the file's contents).
pub fn is_held(state_dir: &Path, name: &str) -> bool {
    let Ok(file) = File::open(lock_path(state_dir, name)) else {
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
    fn a_second_lock_is_refused_until_the_first_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let a = try_lock(dir.path(), "nightly").unwrap();
        // flock locks belong to the open file description: a second open conflicts even in the
        // same process, as a second opsync process would.
        let e = try_lock(dir.path(), "nightly").unwrap_err();
        assert!(
            matches!(&e, LockError::Held { pid, .. } if *pid == std::process::id().to_string())
        );
        assert!(e.to_string().contains("nightly.lock"), "{e}");
        let _other = try_lock(dir.path(), "certs").unwrap();
        assert!(is_held(dir.path(), "nightly"));
        drop(a);
        assert!(!is_held(dir.path(), "nightly"));
        try_lock(dir.path(), "nightly").unwrap();
    }

    #[test]
    fn a_lock_held_here_is_not_taken_twice_and_others_still_conflict() {
        let dir = tempfile::tempdir().unwrap();
        let job = try_lock(dir.path(), "stack-dev").unwrap();
        assert!(
            try_lock_unless_held_here(dir.path(), "stack-dev")
                .unwrap()
                .is_none()
        );
        assert!(try_lock(dir.path(), "stack-dev").is_err());
        drop(job);
        // An operation's lock makes no other operation of this process pass.
        let op = try_lock_unless_held_here(dir.path(), "stack-dev").unwrap();
        assert!(op.is_some());
        assert!(try_lock_unless_held_here(dir.path(), "stack-dev").is_err());
        assert!(try_lock(dir.path(), "stack-dev").is_err());
    }

    #[test]
    fn waiting_for_a_lock_takes_it_when_it_is_free() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("stacks.json.lock");
        let l = wait_for(&path).unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap().trim(),
            std::process::id().to_string()
        );
        drop(l);
        wait_for(&path).unwrap();
    }
}
