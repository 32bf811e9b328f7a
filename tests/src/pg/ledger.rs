//! The insert ledger: one client inserting strictly increasing ids into `ledger`, one committed
//! transaction per id, each sent only after the previous one was acknowledged.
//!
//! A thread drives one `psql` session through its stdin: `insert into ledger values (N);` and
//! then `\echo N`, which psql prints only after the insert returned, that is after the COMMIT of
//! the autocommitted statement (`synchronous_commit` is on: the commit record was written).
//! When the line comes back, the thread records N as acknowledged in a file (written to a
//! temporary name and renamed, so a reader always sees a whole number).
//!
//! What a copy of the database must then hold: ids 1..M without a gap, M at least the id that
//! was acknowledged when the copy's moment was fixed (the freeze), and at most one more (the
//! client had at most one insert in flight).

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use super::PgServer;

/// The table the writer fills.
pub const CREATE_TABLE: &str = "create table ledger (id bigint primary key)";

/// A running ledger writer.
pub struct Ledger {
    stop: Arc<AtomicBool>,
    acked: Arc<AtomicU64>,
    thread: Option<JoinHandle<Result<(), String>>>,
    /// The psql process, until the thread reaps it; dropping the writer kills it.
    child: Arc<Mutex<Option<Child>>>,
    ack_file: PathBuf,
}

impl Ledger {
    /// Starts inserting at `after + 1` (ids up to `after` are already in the table) and
    /// acknowledging into `ack_file`.
    pub fn start(server: &PgServer, after: u64, ack_file: &Path) -> Ledger {
        write_ack(ack_file, after).unwrap();
        let mut cmd = server.client("psql");
        cmd.args(["-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-d", "postgres"])
            .env("PGOPTIONS", "-c synchronous_commit=on")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start psql for the ledger: {e}"));
        let io = (child.stdin.take().unwrap(), child.stdout.take().unwrap());
        let child = Arc::new(Mutex::new(Some(child)));
        let stop = Arc::new(AtomicBool::new(false));
        let acked = Arc::new(AtomicU64::new(after));
        let thread = {
            let (stop, acked, ack_file) = (stop.clone(), acked.clone(), ack_file.to_owned());
            let child = child.clone();
            std::thread::spawn(move || write_loop(io, &child, after, &stop, &acked, &ack_file))
        };
        Ledger {
            stop,
            acked,
            thread: Some(thread),
            child,
            ack_file: ack_file.to_owned(),
        }
    }

    /// The last acknowledged id.
    pub fn acked(&self) -> u64 {
        self.acked.load(Ordering::SeqCst)
    }

    pub fn ack_file(&self) -> &Path {
        &self.ack_file
    }

    /// True while the writer thread runs (false after an error).
    pub fn is_running(&self) -> bool {
        self.thread.as_ref().is_some_and(|t| !t.is_finished())
    }

    /// Stops after the insert in flight is acknowledged; the last acknowledged id, or the
    /// writer's error.
    pub fn stop(mut self) -> Result<u64, String> {
        self.stop.store(true, Ordering::SeqCst);
        let r = match self.thread.take().map(JoinHandle::join) {
            Some(Ok(r)) => r,
            Some(Err(_)) => Err("the ledger thread panicked".into()),
            None => Ok(()),
        };
        r.map(|()| self.acked())
    }
}

impl Drop for Ledger {
    /// Not stopped through [`Ledger::stop`] (a test failed): kill psql, whose insert may be
    /// stuck on a frozen server, so the thread ends.
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            if let Some(c) = self
                .child
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .as_mut()
            {
                let _ = c.kill();
            }
            let _ = t.join();
        }
    }
}

fn write_loop(
    (mut stdin, stdout): (std::process::ChildStdin, std::process::ChildStdout),
    child: &Mutex<Option<Child>>,
    after: u64,
    stop: &AtomicBool,
    acked: &AtomicU64,
    ack_file: &Path,
) -> Result<(), String> {
    let mut stdout = BufReader::new(stdout);
    let mut result = Ok(());
    let mut id = after;
    let mut line = String::new();
    while !stop.load(Ordering::SeqCst) {
        id += 1;
        if let Err(e) = writeln!(stdin, "insert into ledger values ({id});\n\\echo {id}") {
            result = Err(format!("ledger: cannot write to psql: {e}"));
            break;
        }
        line.clear();
        match stdout.read_line(&mut line) {
            Ok(_) if line.trim() == id.to_string() => {}
            Ok(_) => {
                result = Err(format!(
                    "ledger: psql answered {:?} to the insert of {id}",
                    line.trim()
                ));
                break;
            }
            Err(e) => {
                result = Err(format!("ledger: cannot read from psql: {e}"));
                break;
            }
        }
        acked.store(id, Ordering::SeqCst);
        if let Err(e) = write_ack(ack_file, id) {
            result = Err(format!("ledger: {e}"));
            break;
        }
    }
    drop(stdin);
    let child = child.lock().unwrap_or_else(|e| e.into_inner()).take();
    let out = match child {
        Some(c) => c.wait_with_output(),
        None => return result,
    };
    match (result, out) {
        (Err(e), Ok(o)) => Err(format!(
            "{e}; psql ended with {}: {}",
            o.status,
            String::from_utf8_lossy(&o.stderr).trim()
        )),
        (Err(e), Err(_)) => Err(e),
        (Ok(()), Ok(o)) if !o.status.success() => Err(format!(
            "ledger: psql ended with {}: {}",
            o.status,
            String::from_utf8_lossy(&o.stderr).trim()
        )),
        (Ok(()), _) => Ok(()),
    }
}

/// Writes `id` to `path` through a temporary file and a rename.
fn write_ack(path: &Path, id: u64) -> Result<(), String> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, format!("{id}\n")).map_err(|e| format!("write {}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, path).map_err(|e| format!("rename to {}: {e}", path.display()))
}

/// Reads an acknowledgement file.
pub fn read_ack(path: &Path) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}
