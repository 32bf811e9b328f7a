//! A freezer cgroup of its own for a test: the processes put into it (a program started through
//! [`Freezer::enter_and_exec`] is inside before it forks, so all its children are too) are frozen
//! and thawed the way `docker pause` and `docker unpause` do it.
//!
//! cgroup v1 (`freezer.state`: `FROZEN`/`THAWED`, it reads `FREEZING` until every task stopped)
//! when the machine has a v1 freezer hierarchy, otherwise cgroup v2 (`cgroup.freeze` = 1/0,
//! `frozen 1` in `cgroup.events` once done). `OPSYNC_TEST_CGROUP=v1` or `=v2` picks one. Neither
//! available is a test failure with a message, never a skip. Dropping the freezer thaws it, kills
//! what is left inside and removes the cgroup.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::background::wait_until;

/// Which cgroup interface the freezer uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavor {
    V1,
    V2,
}

/// A cgroup created for one test.
pub struct Freezer {
    dir: PathBuf,
    flavor: Flavor,
}

impl Freezer {
    /// Creates a cgroup `opsync-NAME-PID-N` below the test process's own cgroup.
    pub fn create(name: &str) -> Freezer {
        let wanted = std::env::var("OPSYNC_TEST_CGROUP").ok();
        let mut tried = Vec::new();
        for flavor in [Flavor::V1, Flavor::V2] {
            let label = match flavor {
                Flavor::V1 => "v1",
                Flavor::V2 => "v2",
            };
            if wanted.as_deref().is_some_and(|w| w != label) {
                continue;
            }
            match Freezer::try_create(flavor, name) {
                Ok(f) => return f,
                Err(e) => tried.push(format!("cgroup {label}: {e}")),
            }
        }
        panic!(
            "cannot create a freezer cgroup, which this test needs to pause a process tree as \
             docker pause does ({}); run it as root on a machine with the cgroup v1 freezer or \
             cgroup v2 (kernel 5.2 or later)",
            tried.join("; ")
        );
    }

    fn try_create(flavor: Flavor, name: &str) -> Result<Freezer, String> {
        let parent = own_cgroup(flavor)?;
        static COUNT: AtomicUsize = AtomicUsize::new(0);
        let n = COUNT.fetch_add(1, Ordering::Relaxed);
        let dir = parent.join(format!("opsync-{name}-{}-{n}", std::process::id()));
        if dir.exists() {
            // Left empty by an earlier test process with the same pid that was killed.
            let _ = std::fs::remove_dir(&dir);
        }
        std::fs::create_dir(&dir).map_err(|e| format!("mkdir {}: {e}", dir.display()))?;
        let f = Freezer { dir, flavor };
        let control = match flavor {
            Flavor::V1 => "freezer.state",
            Flavor::V2 => "cgroup.freeze",
        };
        if !f.dir.join(control).exists() {
            let msg = format!("{} has no {control}", f.dir.display());
            drop(f);
            return Err(msg);
        }
        Ok(f)
    }

    pub fn flavor(&self) -> Flavor {
        self.flavor
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// A command line that moves itself into the cgroup and then becomes `argv` (through
    /// `sh -c`), so the program and everything it forks run inside from the start.
    pub fn enter_and_exec(&self, argv: &[std::ffi::OsString]) -> std::process::Command {
        let mut cmd = std::process::Command::new("sh");
        cmd.arg("-c")
            .arg(r#"echo $$ > "$1" && shift && exec "$@""#)
            .arg("sh")
            .arg(self.dir.join("cgroup.procs"))
            .args(argv);
        cmd
    }

    /// The pids in the cgroup.
    pub fn pids(&self) -> Vec<i32> {
        std::fs::read_to_string(self.dir.join("cgroup.procs"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect()
    }

    /// True once every process in the cgroup is frozen.
    pub fn is_frozen(&self) -> bool {
        match self.flavor {
            Flavor::V1 => read(&self.dir.join("freezer.state")).trim() == "FROZEN",
            Flavor::V2 => read(&self.dir.join("cgroup.events"))
                .lines()
                .any(|l| l.trim() == "frozen 1"),
        }
    }

    /// True when nothing in the cgroup is frozen or freezing.
    pub fn is_thawed(&self) -> bool {
        match self.flavor {
            Flavor::V1 => read(&self.dir.join("freezer.state")).trim() == "THAWED",
            Flavor::V2 => {
                read(&self.dir.join("cgroup.freeze")).trim() == "0"
                    && read(&self.dir.join("cgroup.events"))
                        .lines()
                        .any(|l| l.trim() == "frozen 0")
            }
        }
    }

    /// Thaws the cgroup and waits until it reads thawed.
    pub fn thaw(&self) {
        let (file, value) = match self.flavor {
            Flavor::V1 => ("freezer.state", "THAWED"),
            Flavor::V2 => ("cgroup.freeze", "0"),
        };
        let path = self.dir.join(file);
        std::fs::write(&path, value).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        wait_until(
            &format!("{} to thaw", self.dir.display()),
            Duration::from_secs(30),
            || self.is_thawed(),
        );
    }

    /// POSIX shell lines for a quiesce script: freeze the cgroup and wait (at most
    /// `timeout_secs`) until it reads frozen; exit 1 with a message if it does not.
    pub fn shell_freeze(&self, timeout_secs: u32) -> String {
        let d = self.dir.display();
        let (set, done) = match self.flavor {
            Flavor::V1 => (
                format!("echo FROZEN > '{d}/freezer.state'"),
                format!("[ \"$(cat '{d}/freezer.state')\" = FROZEN ]"),
            ),
            Flavor::V2 => (
                format!("echo 1 > '{d}/cgroup.freeze'"),
                format!("grep -qx 'frozen 1' '{d}/cgroup.events'"),
            ),
        };
        shell_wait(&set, &done, &format!("{d} did not freeze"), timeout_secs)
    }

    /// POSIX shell lines for a resume script: thaw the cgroup and wait until it reads thawed.
    pub fn shell_thaw(&self, timeout_secs: u32) -> String {
        let d = self.dir.display();
        let (set, done) = match self.flavor {
            Flavor::V1 => (
                format!("echo THAWED > '{d}/freezer.state'"),
                format!("[ \"$(cat '{d}/freezer.state')\" = THAWED ]"),
            ),
            Flavor::V2 => (
                format!("echo 0 > '{d}/cgroup.freeze'"),
                format!("grep -qx 'frozen 0' '{d}/cgroup.events'"),
            ),
        };
        shell_wait(&set, &done, &format!("{d} did not thaw"), timeout_secs)
    }
}

/// `set`, then poll `done` every 10 ms until it holds or `timeout_secs` passed.
fn shell_wait(set: &str, done: &str, failure: &str, timeout_secs: u32) -> String {
    format!(
        "{set}\n\
         end=$(( $(date +%s) + {timeout_secs} ))\n\
         until {done}; do\n\
         \x20   if [ \"$(date +%s)\" -ge \"$end\" ]; then echo '{failure} within {timeout_secs} s' >&2; exit 1; fi\n\
         \x20   sleep 0.01\n\
         done\n"
    )
}

impl Drop for Freezer {
    fn drop(&mut self) {
        // Thaw first: a signal to a frozen process stays pending until it runs again.
        let thaw = match self.flavor {
            Flavor::V1 => ("freezer.state", "THAWED"),
            Flavor::V2 => ("cgroup.freeze", "0"),
        };
        let _ = std::fs::write(self.dir.join(thaw.0), thaw.1);
        let start = Instant::now();
        loop {
            let pids = self.pids();
            if pids.is_empty() {
                break;
            }
            if start.elapsed() > Duration::from_secs(10) {
                eprintln!(
                    "freezer {}: processes {pids:?} are still inside after SIGKILL",
                    self.dir.display()
                );
                return;
            }
            for pid in pids {
                if let Some(pid) = rustix::process::Pid::from_raw(pid) {
                    let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        if let Err(e) = std::fs::remove_dir(&self.dir) {
            eprintln!("freezer: cannot remove {}: {e}", self.dir.display());
        }
    }
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_default()
}

/// The folder of this process's cgroup in the hierarchy of `flavor`, from /proc/self/cgroup and
/// /proc/self/mountinfo.
fn own_cgroup(flavor: Flavor) -> Result<PathBuf, String> {
    let cgroups = std::fs::read_to_string("/proc/self/cgroup")
        .map_err(|e| format!("read /proc/self/cgroup: {e}"))?;
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo")
        .map_err(|e| format!("read /proc/self/mountinfo: {e}"))?;
    // /proc/self/cgroup: "ID:CONTROLLERS:PATH"; v2 is "0::PATH".
    let own = cgroups.lines().find_map(|l| {
        let mut parts = l.splitn(3, ':');
        let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
        let hit = match flavor {
            Flavor::V1 => controllers.split(',').any(|c| c == "freezer"),
            Flavor::V2 => controllers.is_empty(),
        };
        hit.then(|| path.to_string())
    });
    let own = own.ok_or_else(|| match flavor {
        Flavor::V1 => "no freezer hierarchy in /proc/self/cgroup".to_string(),
        Flavor::V2 => "no cgroup2 entry in /proc/self/cgroup".to_string(),
    })?;
    // mountinfo: "ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS ... - FSTYPE SOURCE SUPEROPTIONS".
    let mount = mountinfo.lines().find_map(|l| {
        let (left, right) = l.split_once(" - ")?;
        let mut r = right.split(' ');
        let (fstype, _source, superopts) = (r.next()?, r.next()?, r.next().unwrap_or(""));
        let hit = match flavor {
            Flavor::V1 => fstype == "cgroup" && superopts.split(',').any(|o| o == "freezer"),
            Flavor::V2 => fstype == "cgroup2",
        };
        let mut l = left.split(' ');
        let root = l.nth(3)?;
        let mountpoint = l.next()?;
        hit.then(|| (root.to_string(), PathBuf::from(mountpoint)))
    });
    let (root, mountpoint) = mount.ok_or_else(|| match flavor {
        Flavor::V1 => "no cgroup v1 freezer mounted".to_string(),
        Flavor::V2 => "no cgroup2 file system mounted".to_string(),
    })?;
    // The path in /proc/self/cgroup is relative to the hierarchy's root; the mount shows the
    // part below `root` (a container's namespace root is "/").
    let rel = own
        .strip_prefix(root.trim_end_matches('/'))
        .unwrap_or(&own)
        .trim_start_matches('/');
    let dir = mountpoint.join(rel);
    Ok(if dir.is_dir() { dir } else { mountpoint })
}
