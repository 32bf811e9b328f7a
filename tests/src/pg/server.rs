//! One running PostgreSQL server: `postgres -D DATADIR` as the `postgres` user, a child of the
//! test in its own process group (and, for a production server, in its own freezer cgroup),
//! listening on a private unix socket and 127.0.0.1:PORT, with its log in a file.
//!
//! Dropping it stops it the way `pg_ctl stop -m immediate` does (SIGQUIT to the postmaster),
//! after thawing its cgroup, then kills whatever is left, so a failed test leaves nothing running.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal};

use super::{Postgres, c_locale};
use crate::freezer::Freezer;

/// A running (or exited) PostgreSQL server.
pub struct PgServer {
    name: String,
    pg: Postgres,
    pub datadir: PathBuf,
    pub socket_dir: PathBuf,
    pub port: u16,
    log: PathBuf,
    child: Option<Child>,
    freezer: Option<Freezer>,
}

impl PgServer {
    /// Starts the server on `datadir` with `settings` (`-c NAME=VALUE`, on top of the port,
    /// socket and listen address); inside `freezer` when given. Does not wait: see
    /// [`PgServer::wait_ready`].
    pub fn spawn(
        pg: &Postgres,
        name: &str,
        datadir: &Path,
        socket_dir: &Path,
        log: &Path,
        settings: &[(&str, String)],
        freezer: Option<Freezer>,
    ) -> PgServer {
        use std::os::unix::process::CommandExt;
        std::fs::create_dir_all(socket_dir).unwrap();
        pg.own(socket_dir, 0o700);
        let port = crate::background::free_port();
        let mut args: Vec<OsString> = vec!["-D".into(), datadir.into()];
        let fixed = [
            ("port", port.to_string()),
            ("listen_addresses", "127.0.0.1".to_string()),
            ("unix_socket_directories", socket_dir.display().to_string()),
        ];
        for (k, v) in fixed.iter().chain(settings) {
            args.push("-c".into());
            args.push(format!("{k}={v}").into());
        }
        let argv = pg.argv_as_postgres("postgres", args);
        let mut cmd = match &freezer {
            Some(f) => f.enter_and_exec(&argv),
            None => {
                let mut c = Command::new(&argv[0]);
                c.args(&argv[1..]);
                c
            }
        };
        c_locale(&mut cmd);
        let out = std::fs::File::create(log).expect("create server log");
        let err = out.try_clone().unwrap();
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name} ({cmd:?}): {e}"));
        PgServer {
            name: name.to_string(),
            pg: pg.clone(),
            datadir: datadir.to_owned(),
            socket_dir: socket_dir.to_owned(),
            port,
            log: log.to_owned(),
            child: Some(child),
            freezer,
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn freezer(&self) -> Option<&Freezer> {
        self.freezer.as_ref()
    }

    /// Polls `pg_isready` until the server accepts connections (crash recovery finished);
    /// an error when it exits or `timeout` passes first.
    pub fn wait_ready(&mut self, timeout: Duration) -> Result<(), String> {
        let start = Instant::now();
        let mut pause = Duration::from_millis(10);
        loop {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                return Err(format!(
                    "{} exited ({status}) before accepting connections",
                    self.name
                ));
            }
            let ok = self
                .client("pg_isready")
                .args(["-q", "-t", "2", "-d", "postgres"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if ok {
                return Ok(());
            }
            if start.elapsed() > timeout {
                return Err(format!(
                    "{} did not accept connections within {timeout:?}",
                    self.name
                ));
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(200));
        }
    }

    /// A client program of the binary folder (run as root: the socket trusts the `postgres`
    /// role) with the connection options of this server.
    pub fn client(&self, program: &str) -> Command {
        let mut cmd = Command::new(self.pg.program(program));
        cmd.arg("-h")
            .arg(&self.socket_dir)
            .arg("-p")
            .arg(self.port.to_string())
            .arg("-U")
            .arg("postgres");
        c_locale(&mut cmd);
        cmd
    }

    /// Runs `sql` with psql (`-At`, stop at the first error) in database `postgres`; stdout, or
    /// the error message. Every statement is limited to `statement_timeout` of 5 minutes.
    pub fn psql(&self, sql: &str) -> Result<String, String> {
        let out = self
            .client("psql")
            .args(["-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-d", "postgres"])
            .arg("-c")
            .arg(sql)
            .env("PGOPTIONS", "-c statement_timeout=300s")
            .output()
            .map_err(|e| format!("cannot run psql: {e}"))?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
        } else {
            Err(format!(
                "psql -c {sql:?} on {} failed ({}): {}",
                self.name,
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
    }

    /// Runs `sql` and panics with the server's log when it fails.
    pub fn exec(&self, sql: &str) -> String {
        self.psql(sql)
            .unwrap_or_else(|e| panic!("{e}\n--- last lines of the log ---\n{}", self.log_tail(30)))
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The last `n` lines of the server's log.
    pub fn log_tail(&self, n: usize) -> String {
        tail(&self.log(), n)
    }

    pub fn log_path(&self) -> &Path {
        &self.log
    }

    fn signal(&self, sig: Signal) {
        if let Some(pid) = self
            .child
            .as_ref()
            .and_then(|c| Pid::from_raw(c.id() as i32))
        {
            let _ = rustix::process::kill_process(pid, sig);
        }
    }

    /// Waits (at most `timeout`) until the postmaster exited; true when it did.
    fn wait_exit(&mut self, timeout: Duration) -> bool {
        let Some(child) = self.child.as_mut() else {
            return true;
        };
        let start = Instant::now();
        let mut pause = Duration::from_millis(2);
        while matches!(child.try_wait(), Ok(None)) {
            if start.elapsed() > timeout {
                return false;
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(50));
        }
        true
    }

    /// Fast shutdown (SIGINT, as `pg_ctl stop -m fast`): active transactions are rolled back
    /// and a shutdown checkpoint is written. An error when the server is still up after a
    /// minute (dropping it then stops it immediately).
    pub fn stop(&mut self) -> Result<(), String> {
        if let Some(f) = &self.freezer {
            f.thaw();
        }
        self.signal(Signal::INT);
        if self.wait_exit(Duration::from_secs(60)) {
            if let Some(mut c) = self.child.take() {
                let _ = c.wait();
            }
            Ok(())
        } else {
            Err(format!(
                "{} did not shut down within 60 s of SIGINT",
                self.name
            ))
        }
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        if self.child.is_none() {
            return;
        }
        if let Some(f) = &self.freezer {
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f.thaw()));
        }
        // Immediate shutdown, as `pg_ctl stop -m immediate`: the postmaster sends SIGQUIT to
        // every backend and exits.
        self.signal(Signal::QUIT);
        let exited = self.wait_exit(Duration::from_secs(10));
        if let Some(mut child) = self.child.take() {
            if !exited {
                // Still running, so its pid (its process group's id too) is not reused: kill
                // the whole group, backends included. A postmaster that exited has waited for
                // its backends.
                if let Some(pgid) = Pid::from_raw(child.id() as i32) {
                    let _ = rustix::process::kill_process_group(pgid, Signal::KILL);
                }
                let _ = child.kill();
            }
            let _ = child.wait();
        }
        if std::thread::panicking() {
            eprintln!(
                "--- last lines of the log of {} ({}) ---\n{}",
                self.name,
                self.log.display(),
                self.log_tail(40)
            );
        }
    }
}

/// The last `n` lines of `text`.
pub fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.len().saturating_sub(n);
    let mut s = lines[start..].join("\n");
    s.push('\n');
    s
}
