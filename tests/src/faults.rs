//! Helpers for the fault-injection and hostile-tree tests: tree snapshots, temporary-name
//! detection, mounts and child processes cleaned up by drop guards, and waiting on conditions
//! (output lines, files appearing) with a timeout instead of sleeping.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs;
use std::hash::Hasher;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal};

/// How long any wait in these tests may take before the test fails.
pub const TIMEOUT: Duration = Duration::from_secs(60);

/// One entry of a [`Snapshot`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// `f` file, `d` directory, `l` symlink, `p` FIFO, `s` socket, `c`/`b` devices.
    pub kind: char,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    pub mtime: (i64, i64),
    /// Hash of the content (files) or of the target (symlinks).
    pub hash: u64,
}

/// Every entry below a root, by relative path (bytes), the root itself under the empty path.
pub type Snapshot = BTreeMap<Vec<u8>, Node>;

/// A stable hash of a byte stream (SipHash with fixed keys), read in chunks.
pub fn hash_reader(mut r: impl Read) -> std::io::Result<u64> {
    #[allow(deprecated)]
    let mut h = std::hash::SipHasher::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = r.read(&mut buf)?;
        if n == 0 {
            return Ok(h.finish());
        }
        h.write(&buf[..n]);
    }
}

pub fn hash_bytes(b: &[u8]) -> u64 {
    hash_reader(b).expect("hashing memory")
}

fn node(path: &Path) -> std::io::Result<Node> {
    let m = fs::symlink_metadata(path)?;
    let ft = m.file_type();
    use std::os::unix::fs::FileTypeExt;
    let (kind, hash) = if ft.is_file() {
        ('f', hash_reader(fs::File::open(path)?)?)
    } else if ft.is_dir() {
        ('d', 0)
    } else if ft.is_symlink() {
        ('l', hash_bytes(fs::read_link(path)?.as_os_str().as_bytes()))
    } else if ft.is_fifo() {
        ('p', 0)
    } else if ft.is_socket() {
        ('s', 0)
    } else if ft.is_char_device() {
        ('c', m.rdev())
    } else {
        ('b', m.rdev())
    };
    Ok(Node {
        kind,
        mode: m.mode() & 0o7777,
        uid: m.uid(),
        gid: m.gid(),
        size: if kind == 'd' { 0 } else { m.size() },
        mtime: (m.mtime(), m.mtime_nsec()),
        hash,
    })
}

/// Snapshots the tree at `root` without following symlinks.
pub fn snapshot(root: &Path) -> Snapshot {
    try_snapshot(root).unwrap_or_else(|e| panic!("snapshot of {}: {e}", root.display()))
}

/// Like [`snapshot`], but entries that vanish while it runs are skipped (trees being mutated).
pub fn try_snapshot(root: &Path) -> std::io::Result<Snapshot> {
    let mut out = Snapshot::new();
    walk(root, Vec::new(), &mut out)?;
    Ok(out)
}

fn walk(path: &Path, rel: Vec<u8>, out: &mut Snapshot) -> std::io::Result<()> {
    let n = match node(path) {
        Ok(n) => n,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !rel.is_empty() => return Ok(()),
        Err(e) => return Err(e),
    };
    let is_dir = n.kind == 'd';
    out.insert(rel.clone(), n);
    if is_dir {
        let entries = match fs::read_dir(path) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        for e in entries {
            let name = e?.file_name();
            let mut r = rel.clone();
            if !r.is_empty() {
                r.push(b'/');
            }
            r.extend_from_slice(name.as_bytes());
            walk(&path.join(&name), r, out)?;
        }
    }
    Ok(())
}

/// Snapshot without mtimes of directories (for comparing trees a run changed inside).
pub fn without_dir_times(mut s: Snapshot) -> Snapshot {
    for n in s.values_mut() {
        if n.kind == 'd' {
            n.mtime = (0, 0);
        }
    }
    s
}

/// Asserts two snapshots are equal, listing the differing paths.
pub fn assert_same(what: &str, a: &Snapshot, b: &Snapshot) {
    if a == b {
        return;
    }
    let mut lines = Vec::new();
    for (p, n) in a {
        match b.get(p) {
            None => lines.push(format!("only in first: {}", show(p))),
            Some(m) if m != n => lines.push(format!("{}: {n:?} != {m:?}", show(p))),
            _ => {}
        }
    }
    for p in b.keys().filter(|p| !a.contains_key(*p)) {
        lines.push(format!("only in second: {}", show(p)));
    }
    lines.truncate(40);
    panic!("{what}: trees differ:\n{}", lines.join("\n"));
}

/// A path for messages.
pub fn show(p: &[u8]) -> String {
    String::from_utf8_lossy(p).into_owned()
}

/// True for opsync's temporary names `.NAME.XXXXXX` (the last path component).
pub fn is_temp_name(path: &[u8]) -> bool {
    let name = path.rsplit(|b| *b == b'/').next().unwrap_or(path);
    let n = name.len();
    n >= 9
        && name[0] == b'.'
        && name[n - 7] == b'.'
        && name[n - 6..].iter().all(u8::is_ascii_alphanumeric)
}

/// The temporary files in a snapshot.
pub fn temp_files(s: &Snapshot) -> Vec<String> {
    s.keys()
        .filter(|p| is_temp_name(p))
        .map(|p| show(p))
        .collect()
}

/// Waits until `cond` holds, polling; fails the test after [`TIMEOUT`] with `what`.
pub fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < TIMEOUT, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_micros(200));
    }
}

/// A child process killed (SIGKILL) and reaped on drop, with its stdout read line by line by a
/// thread and its stderr collected by another.
pub struct Proc {
    pub child: Child,
    lines: mpsc::Receiver<String>,
    /// Lines received so far.
    pub seen: Vec<String>,
    stderr: Option<std::thread::JoinHandle<String>>,
}

impl Proc {
    /// Starts `cmd` with piped stdout and stderr.
    pub fn spawn(mut cmd: Command) -> Proc {
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
        let out = child.stdout.take().expect("piped stdout");
        let mut err = child.stderr.take().expect("piped stderr");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).split(b'\n') {
                let Ok(line) = line else { break };
                if tx
                    .send(String::from_utf8_lossy(&line).into_owned())
                    .is_err()
                {
                    break;
                }
            }
        });
        let stderr = std::thread::spawn(move || {
            let mut s = Vec::new();
            let _ = err.read_to_end(&mut s);
            String::from_utf8_lossy(&s).into_owned()
        });
        Proc {
            child,
            lines,
            seen: Vec::new(),
            stderr: Some(stderr),
        }
    }

    pub fn pid(&self) -> Pid {
        Pid::from_child(&self.child)
    }

    /// Sends `sig` to the process.
    pub fn signal(&self, sig: Signal) {
        rustix::process::kill_process(self.pid(), sig).expect("send signal");
    }

    /// Waits until `n` stdout lines were received; false if the process closed stdout first.
    pub fn wait_lines(&mut self, n: usize) -> bool {
        let deadline = Instant::now() + TIMEOUT;
        while self.seen.len() < n {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) => self.seen.push(l),
                Err(mpsc::RecvTimeoutError::Disconnected) => return false,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    panic!(
                        "timed out waiting for {n} output lines (got {})",
                        self.seen.len()
                    )
                }
            }
        }
        true
    }

    /// True when the process has exited (without reaping it twice).
    pub fn exited(&mut self) -> bool {
        self.child.try_wait().expect("try_wait").is_some()
    }

    /// Waits for the exit; returns the status, all stdout lines and stderr.
    pub fn finish(mut self) -> (ExitStatus, Vec<String>, String) {
        let deadline = Instant::now() + TIMEOUT;
        let status = loop {
            if let Some(s) = self.child.try_wait().expect("try_wait") {
                break s;
            }
            assert!(Instant::now() < deadline, "opsync did not exit in time");
            std::thread::sleep(Duration::from_millis(2));
        };
        while let Ok(l) = self.lines.recv_timeout(TIMEOUT) {
            self.seen.push(l);
        }
        let err = self
            .stderr
            .take()
            .map(|h| h.join().unwrap_or_default())
            .unwrap_or_default();
        (status, std::mem::take(&mut self.seen), err)
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A filesystem mounted by a test, unmounted on drop (lazily if still busy).
pub struct Mount {
    pub path: PathBuf,
}

impl Mount {
    /// Mounts a tmpfs of `size` (for example `"2m"`) on `path` (created if missing).
    pub fn tmpfs(path: &Path, size: &str) -> Mount {
        crate::require_program("mount", "mount");
        require_root("mounting a tmpfs");
        fs::create_dir_all(path).expect("mount point");
        let st = Command::new("mount")
            .args(["-t", "tmpfs", "-o"])
            .arg(format!("size={size},mode=0755"))
            .arg("tmpfs")
            .arg(path)
            .status()
            .expect("run mount");
        assert!(st.success(), "mount tmpfs on {} failed", path.display());
        Mount {
            path: path.to_owned(),
        }
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let ok = Command::new("umount")
            .arg(&self.path)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            let _ = Command::new("umount").arg("-l").arg(&self.path).status();
        }
    }
}

/// Fails the test when not running as root.
pub fn require_root(why: &str) {
    assert!(
        rustix::process::geteuid().is_root(),
        "this test must run as root ({why}); run it as root, as scripts/test does in CI"
    );
}

/// A thread running `body` in a loop until the guard is dropped or stopped.
pub struct Looper {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    handle: Option<std::thread::JoinHandle<u64>>,
}

impl Looper {
    /// Runs `body` repeatedly on a new thread; `body` gets the iteration number.
    pub fn start(mut body: impl FnMut(u64) + Send + 'static) -> Looper {
        use std::sync::atomic::Ordering;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let s = stop.clone();
        let handle = std::thread::spawn(move || {
            let mut i = 0;
            while !s.load(Ordering::Relaxed) {
                body(i);
                i += 1;
            }
            i
        });
        Looper {
            stop,
            handle: Some(handle),
        }
    }

    /// Stops the loop and returns the number of iterations run.
    pub fn stop(mut self) -> u64 {
        self.stop_inner()
    }

    fn stop_inner(&mut self) -> u64 {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        match self.handle.take() {
            Some(h) => h.join().expect("loop thread panicked"),
            None => 0,
        }
    }
}

impl Drop for Looper {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// A path from bytes.
pub fn bpath(base: &Path, rel: &[u8]) -> PathBuf {
    base.join(OsStr::from_bytes(rel))
}

/// Runs `opsync` with `args` to completion; returns (exit code, stdout, stderr).
pub fn run_opsync(args: &[&OsStr]) -> (i32, String, String) {
    let out = crate::opsync().args(args).output().expect("run opsync");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `opsync sync SRC DST` plus `extra` arguments.
pub fn sync(src: &Path, dst: &Path, extra: &[&str]) -> (i32, String, String) {
    let mut args: Vec<&OsStr> = vec![OsStr::new("sync")];
    args.extend(extra.iter().map(OsStr::new));
    args.push(src.as_os_str());
    args.push(dst.as_os_str());
    run_opsync(&args)
}

/// Asserts `opsync verify SRC DST` finds no difference.
pub fn assert_verified(src: &Path, dst: &Path) {
    let (code, out, err) = run_opsync(&[OsStr::new("verify"), src.as_os_str(), dst.as_os_str()]);
    assert_eq!(code, 0, "opsync verify found differences:\n{out}\n{err}");
}
