//! Programs a test starts in the background (pebble, nginx, ...): a guard that kills the whole
//! process group on drop, free loopback ports, and waiting on conditions with a timeout.

use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running program; dropping it kills its process group and reaps it.
pub struct Background {
    name: String,
    child: Option<Child>,
    log: PathBuf,
}

impl Background {
    /// Starts `cmd` in its own process group with stdout and stderr going to `log`.
    pub fn spawn(name: &str, mut cmd: Command, log: &Path) -> Background {
        use std::os::unix::process::CommandExt;
        let out = std::fs::File::create(log).expect("create log file");
        let err = out.try_clone().expect("clone log file");
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name} ({cmd:?}): {e}"));
        Background {
            name: name.to_owned(),
            child: Some(child),
            log: log.to_owned(),
        }
    }

    /// The program's combined output so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Fails when the program has exited.
    pub fn assert_running(&mut self) {
        let exited = match &mut self.child {
            Some(c) => c.try_wait().ok().flatten(),
            None => None,
        };
        if let Some(status) = exited {
            panic!(
                "{} exited ({status}); its output:\n{}",
                self.name,
                self.log()
            );
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(Child::id).unwrap_or(0)
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SIGTERM first, so nginx's master reaps its workers; SIGKILL for the whole group
            // when it has not exited after a few seconds.
            let group = rustix::process::Pid::from_raw(child.id() as i32);
            if let Some(pid) = group {
                let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::TERM);
            }
            let start = std::time::Instant::now();
            let mut pause = Duration::from_millis(2);
            while matches!(child.try_wait(), Ok(None)) && start.elapsed() < Duration::from_secs(5) {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(50));
            }
            if let Some(pid) = group {
                let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
            }
            let _ = child.kill();
            let _ = child.wait();
            if std::thread::panicking() {
                eprintln!("--- output of {} ---\n{}", self.name, self.log());
            }
        }
    }
}

/// A loopback TCP port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind a free loopback port")
}

/// Polls `cond` (with a short, growing pause) until it returns true; panics after `timeout`.
pub fn wait_until(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    let mut pause = Duration::from_millis(5);
    while !cond() {
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(100));
    }
}

/// Waits until something accepts TCP connections on 127.0.0.1:`port`, checking that
/// `program` is still running in between.
pub fn wait_for_port(program: &mut Background, port: u16, timeout: Duration) {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    wait_until(
        &format!("{} to listen on {addr}", program.name),
        timeout,
        || {
            program.assert_running();
            TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
        },
    );
}
