//! Files replaced whole: [`write_atomic`], the one way opsync writes a file that others read
//! (job state, the stack history, the metrics file, the nginx site file, certbot's deploy hook,
//! the systemd unit).

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// A file that could not be written: what was being done, and to which path.
#[derive(Debug, thiserror::Error)]
#[error("cannot {op} {}: {source}", path.display())]
pub struct WriteError {
    /// `create the folder of`, `create`, `write`, `sync` or `replace`.
    pub op: &'static str,
    pub path: PathBuf,
    pub source: std::io::Error,
}

/// Writes `bytes` to `path` so that the path holds the complete old or the complete new content
/// at every moment: a new temporary file `.NAME.tmp.PID.N` in the same folder, written and
/// `fsync`ed, renamed over `path`, then the folder `fsync`ed (so the rename survives a crash).
/// The folder is created when missing; the temporary file is removed on error. The file gets
/// mode 0666 less the umask, like a file created by any other program.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), WriteError> {
    write(path, bytes, None)
}

/// [`write_atomic`] with the file's mode set to exactly `mode` (for example 0o755 for a script).
pub fn write_atomic_with_mode(path: &Path, bytes: &[u8], mode: u32) -> Result<(), WriteError> {
    write(path, bytes, Some(mode))
}

/// Temporary files made by this process, so two threads writing the same file never share one.
static SERIAL: AtomicU64 = AtomicU64::new(0);

fn write(path: &Path, bytes: &[u8], mode: Option<u32>) -> Result<(), WriteError> {
    let err = |op: &'static str, p: &Path| {
        let path = p.to_owned();
        move |source| WriteError { op, path, source }
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir).map_err(err("create the folder of", path))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let serial = SERIAL.fetch_add(1, Ordering::Relaxed);
    let tmp = dir.join(format!(".{name}.tmp.{}.{serial}", std::process::id()));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o666)
        .open(&tmp)
        .map_err(err("create", &tmp))?;
    let result = (|| {
        if let Some(m) = mode {
            file.set_permissions(std::fs::Permissions::from_mode(m))
                .map_err(err("write", &tmp))?;
        }
        file.write_all(bytes).map_err(err("write", &tmp))?;
        file.sync_all().map_err(err("sync", &tmp))?;
        std::fs::rename(&tmp, path).map_err(err("replace", path))
    })();
    drop(file);
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
        return result;
    }
    // The rename is in the folder: make it durable too. A folder that cannot be opened or
    // synced (some network filesystems) does not undo the write.
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn replaces_the_file_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/state.json");
        write_atomic(&path, b"one").unwrap();
        write_atomic(&path, b"two").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        assert_eq!(names(&dir.path().join("sub")), ["state.json"]);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o111, 0, "{mode:o}");
    }

    #[test]
    fn a_mode_is_set_exactly() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hook");
        write_atomic_with_mode(&path, b"#!/bin/sh\n", 0o755).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o7777, 0o755);
    }

    #[test]
    fn a_failure_names_the_operation_and_the_path_and_keeps_the_old_file() {
        let dir = tempfile::tempdir().unwrap();
        // A folder in the way of the rename.
        let path = dir.path().join("taken");
        std::fs::create_dir(&path).unwrap();
        std::fs::write(path.join("inside"), "x").unwrap();
        let e = write_atomic(&path, b"new").unwrap_err();
        assert_eq!(e.op, "replace");
        assert!(
            e.to_string()
                .starts_with(&format!("cannot replace {}: ", path.display())),
            "{e}"
        );
        assert_eq!(names(dir.path()), ["taken"]);
        assert_eq!(names(&path), ["inside"]);
    }

    #[test]
    fn threads_writing_one_file_do_not_share_a_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("metrics.prom");
        std::thread::scope(|s| {
            for i in 0..8 {
                let path = &path;
                s.spawn(move || {
                    for _ in 0..20 {
                        write_atomic(path, format!("writer {i}\n").as_bytes()).unwrap();
                    }
                });
            }
        });
        assert!(
            std::fs::read_to_string(&path)
                .unwrap()
                .starts_with("writer ")
        );
        assert_eq!(names(dir.path()), ["metrics.prom"]);
    }
}
