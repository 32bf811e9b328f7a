//! Everything opsync prints: logging setup, itemize lines, JSON events, progress bars, stats,
//! command output ([`print()`]) and error and warning lines ([`error`], [`warning`]). No other
//! module writes to stdout or stderr (logging goes to stderr through the subscriber installed
//! here).

// The one module that prints: the workspace's print lints are off here, and on everywhere else.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::io::{BufWriter, IsTerminal, Stdout, Write};
use std::sync::Mutex;
use std::time::Duration;

use sync_engine::itemize::escape_name;
use sync_engine::{FileError, Item, Kind, Observer, Op, PlanCounts, Report, Warning};

use crate::cli::LogFormat;
use crate::events::{
    ErrorEvent, Event, EventPath, FatalEvent, ItemEvent, Summary, VerifyCounts, WarningEvent,
};

/// Installs the tracing subscriber: human-readable on a terminal, JSON lines with
/// `--log-format json`. The level comes from `OPSYNC_LOG` (default `info`).
pub fn init_logging(format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("OPSYNC_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}

/// Prints command output (a human-readable block, JSON lines) on stdout: `text` as it is, with
/// a final newline when it has none; nothing for empty text. A closed pipe (`| head`) is not an
/// error.
pub fn print(text: &str) {
    if text.is_empty() {
        return;
    }
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes());
    if !text.ends_with('\n') {
        let _ = out.write_all(b"\n");
    }
    let _ = out.flush();
}

/// Prints `opsync: error: MESSAGE` on stderr: a problem that ends the command (or one of its
/// items).
pub fn error(message: &str) {
    eprintln!("opsync: error: {message}");
}

/// Prints `opsync: warning: MESSAGE` on stderr.
pub fn warning(message: &str) {
    eprintln!("opsync: warning: {message}");
}

/// A table for a terminal: the header, then one line per row, each column as wide as its widest
/// cell and two spaces between columns; no trailing blanks.
pub fn table<const N: usize>(head: [&str; N], rows: &[[String; N]]) -> String {
    let mut widths = head.map(|h| h.chars().count());
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &mut dyn Iterator<Item = &str>| {
        let padded: Vec<String> = cells
            .zip(widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        out.push_str(padded.join("  ").trim_end());
        out.push('\n');
    };
    line(&mut head.iter().copied());
    for row in rows {
        line(&mut row.iter().map(String::as_str));
    }
    out
}

/// How `opsync sync` reports.
#[derive(Debug, Clone, Copy, Default)]
pub struct SyncOutput {
    pub itemize: bool,
    pub verbose: u8,
    pub json: bool,
    pub progress: bool,
}

/// The observer of a sync run: prints items, errors and warnings as they happen.
pub struct SyncPrinter {
    mode: SyncOutput,
    out: Mutex<BufWriter<Stdout>>,
    bar: Option<indicatif::ProgressBar>,
}

impl SyncPrinter {
    pub fn new(mode: SyncOutput) -> SyncPrinter {
        let bar = (mode.progress && std::io::stderr().is_terminal()).then(|| {
            let bar = indicatif::ProgressBar::with_draw_target(
                None,
                indicatif::ProgressDrawTarget::stderr(),
            );
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{bar:30} {bytes}/{total_bytes} {bytes_per_sec} ETA {eta} {msg}",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        });
        SyncPrinter {
            mode,
            out: Mutex::new(BufWriter::new(std::io::stdout())),
            bar,
        }
    }

    fn line(&self, s: &str) {
        let mut out = self.out.lock().unwrap_or_else(|p| p.into_inner());
        let _ = writeln!(out, "{s}");
    }

    fn stderr(&self, s: &str) {
        let _ = self.out.lock().map(|mut o| o.flush());
        match &self.bar {
            Some(bar) => bar.suspend(|| eprintln!("{s}")),
            None => eprintln!("{s}"),
        }
    }

    /// Prints a difference found by `--verify` (`remaining`: by its check after the repair).
    pub fn difference(&self, d: &sync_engine::verify::Difference, remaining: bool) {
        self.line(&difference_line(d, self.mode.json, remaining));
    }

    /// Prints a file that `--verify` found different and the repair made equal.
    pub fn repaired(&self, path: &[u8]) {
        self.line(&repaired_line(path, self.mode.json));
    }

    /// Prints a message for the person running the command on stderr (above a progress bar).
    pub fn note(&self, s: &str) {
        self.stderr(s);
    }

    /// Prints the final summary (JSON line or `--stats`) and flushes.
    pub fn finish(
        &self,
        report: &Report,
        elapsed: Duration,
        exit_code: u8,
        stats: bool,
        verify: Option<VerifyCounts>,
    ) {
        self.finish_wire(report, elapsed, exit_code, stats, verify, None);
    }

    /// [`SyncPrinter::finish`] of a remote run, with the bytes sent and received on the
    /// connection (`sent N bytes  received M bytes`, as rsync prints them).
    pub fn finish_wire(
        &self,
        report: &Report,
        elapsed: Duration,
        exit_code: u8,
        stats: bool,
        verify: Option<VerifyCounts>,
        wire: Option<(u64, u64)>,
    ) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
        if self.mode.json {
            let mut s = summary(report, elapsed, exit_code);
            s.verify = verify;
            s.sent_bytes = wire.map(|w| w.0);
            s.received_bytes = wire.map(|w| w.1);
            self.line(&Event::Summary(s).to_line());
        } else if stats {
            for l in stats_lines(report, elapsed) {
                self.line(&l);
            }
            if let Some((sent, received)) = wire {
                self.line(&format!("sent {sent} bytes  received {received} bytes"));
            }
        }
        let _ = self.out.lock().map(|mut o| o.flush());
    }

    /// Prints a fatal error in JSON mode as an event, then the summary is left out.
    pub fn fatal_json(&self, message: &str, exit_code: u8) {
        if self.mode.json {
            let e = Event::Fatal(FatalEvent {
                message: message.to_string(),
                exit_code,
            });
            self.line(&e.to_line());
            let _ = self.out.lock().map(|mut o| o.flush());
        }
    }
}

fn op_str(op: Op) -> &'static str {
    match op {
        Op::Stamp => "stamp",
        Op::Delete => "delete",
        Op::Mkdir => "mkdir",
        Op::Copy => "copy",
        Op::Symlink => "symlink",
        Op::Mknod => "mknod",
        Op::SetAttrs => "attrs",
        Op::Link => "link",
    }
}

fn display_path(item: &Item<'_>) -> String {
    let mut p = if item.path.is_empty() {
        ".".to_string()
    } else {
        escape_name(item.path)
    };
    if item.kind == Kind::Dir {
        p.push('/');
    }
    p
}

impl Observer for SyncPrinter {
    fn wants_items(&self) -> bool {
        self.mode.itemize || self.mode.verbose > 0 || self.mode.json
    }

    fn item(&self, item: &Item<'_>) {
        let path = display_path(item);
        let field = String::from_utf8_lossy(&item.field);
        if self.mode.json {
            let e = Event::Item(ItemEvent {
                itemize: field.into_owned(),
                op: op_str(item.op).to_string(),
                path: EventPath::from_bytes(item.path),
                bytes: item.bytes,
                link: item.link.map(|l| String::from_utf8_lossy(l).into_owned()),
            });
            self.line(&e.to_line());
            return;
        }
        let arrow = if item.op == Op::Link { "=>" } else { "->" };
        let link = item
            .link
            .map(|l| format!(" {arrow} {}", escape_name(l)))
            .unwrap_or_default();
        if self.mode.itemize {
            self.line(&format!("{field} {path}{link}"));
        } else if item.op == Op::Delete {
            self.line(&format!("deleting {path}"));
        } else {
            self.line(&format!("{path}{link}"));
        }
    }

    fn error(&self, err: &FileError) {
        if self.mode.json {
            let e = Event::Error(ErrorEvent {
                op: err.op.to_string(),
                side: match err.side {
                    sync_engine::Side::Source => "source",
                    sync_engine::Side::Dest => "destination",
                }
                .to_string(),
                path: EventPath::from_bytes(&err.path),
                message: err.to_string(),
            });
            self.line(&e.to_line());
        }
        self.stderr(&format!("opsync: {err}"));
    }

    fn warning(&self, w: &Warning<'_>) {
        let (kind, path, msg) = match w {
            Warning::Vanished { path } => (
                "vanished",
                path,
                format!("file has vanished: {}", escape_name(path)),
            ),
            Warning::ChangedDuringCopy { path } => (
                "changed-during-copy",
                path,
                format!(
                    "file kept changing while copied (kept the last version read, marked to be \
                     copied again by the next run): {}",
                    escape_name(path)
                ),
            ),
            Warning::NotEmpty { path } => (
                "not-empty",
                path,
                format!(
                    "cannot delete non-empty directory (it holds excluded entries): {}",
                    escape_name(path)
                ),
            ),
        };
        if self.mode.json {
            let e = Event::Warning(WarningEvent {
                kind: kind.to_string(),
                path: EventPath::from_bytes(path),
                message: msg.clone(),
            });
            self.line(&e.to_line());
        }
        self.stderr(&format!("opsync: warning: {msg}"));
    }

    fn planned(&self, counts: &PlanCounts) {
        if let Some(bar) = &self.bar {
            bar.set_length(counts.copy_bytes);
            bar.set_message(format!("{} files to copy", counts.copies));
        }
    }

    fn progress(&self, bytes: u64) {
        if let Some(bar) = &self.bar {
            bar.inc(bytes);
        }
    }
}

/// The observer of `opsync verify`: each difference as a line (or JSON event) on stdout, then
/// a summary.
pub struct DiffPrinter {
    json: bool,
    out: Mutex<BufWriter<Stdout>>,
}

impl DiffPrinter {
    pub fn new(json: bool) -> DiffPrinter {
        DiffPrinter {
            json,
            out: Mutex::new(BufWriter::new(std::io::stdout())),
        }
    }

    /// Prints the summary: a JSON line, or on stderr the count when there are differences.
    pub fn finish(
        &self,
        r: &sync_engine::verify::VerifyReport,
        elapsed: Duration,
        exit_code: u8,
        src: &std::path::Path,
        dst: &std::path::Path,
    ) {
        let mut out = self.out.lock().unwrap_or_else(|p| p.into_inner());
        if self.json {
            let e = Event::VerifySummary(crate::events::VerifySummary {
                entries: r.entries,
                files_hashed: r.files_hashed,
                bytes_hashed: r.bytes_hashed,
                differences: r.differences,
                identical: r.differences == 0,
                exit_code,
                seconds: elapsed.as_secs_f64(),
            });
            let _ = writeln!(out, "{}", e.to_line());
        }
        let _ = out.flush();
        if !self.json && r.differences > 0 {
            eprintln!(
                "opsync: verify: {} difference(s) between {} and {}",
                r.differences,
                src.display(),
                dst.display()
            );
        }
    }
}

impl DiffPrinter {
    /// Prints a problem that stopped the verification, as a JSON event (in `--json` mode).
    pub fn fatal(&self, message: &str, exit_code: u8) {
        if self.json {
            let e = Event::Fatal(FatalEvent {
                message: message.to_string(),
                exit_code,
            });
            let mut out = self.out.lock().unwrap_or_else(|p| p.into_inner());
            let _ = writeln!(out, "{}", e.to_line());
            let _ = out.flush();
        }
    }
}

impl Observer for DiffPrinter {
    fn difference(&self, d: &sync_engine::verify::Difference) {
        let mut out = self.out.lock().unwrap_or_else(|p| p.into_inner());
        let _ = writeln!(out, "{}", difference_line(d, self.json, false));
    }
}

/// One difference found by verification: `PATH: WHAT`, or its JSON event.
/// `remaining`: found by the check after a repair (the difference stays).
pub fn difference_line(d: &sync_engine::verify::Difference, json: bool, remaining: bool) -> String {
    if json {
        Event::Difference(crate::events::DifferenceEvent {
            path: EventPath::from_bytes(&d.path),
            kind: d.kind.name().to_string(),
            what: d.kind.to_string(),
            remaining,
        })
        .to_line()
    } else {
        let path = if d.path.is_empty() {
            ".".to_string()
        } else {
            escape_name(&d.path)
        };
        if remaining {
            format!("{path}: {} (still, after copying it again)", d.kind)
        } else {
            format!("{path}: {}", d.kind)
        }
    }
}

/// A file found different, copied again and then found equal: `PATH: repaired`, or its JSON
/// event.
pub fn repaired_line(path: &[u8], json: bool) -> String {
    if json {
        Event::Repaired(crate::events::RepairedEvent {
            path: EventPath::from_bytes(path),
        })
        .to_line()
    } else {
        format!("{}: repaired (copied again by content)", escape_name(path))
    }
}

/// The final summary of `opsync sync --json` (without the verification's counts).
pub fn summary(r: &Report, elapsed: Duration, exit_code: u8) -> Summary {
    Summary {
        dry_run: r.dry_run,
        exit_code,
        files_total: r.src_entries,
        regular_files: r.src_files,
        bytes_total: r.src_bytes,
        files_transferred: r.files_copied,
        bytes_copied: r.bytes_copied,
        bytes_written: r.bytes_written,
        created: r.created,
        deleted: r.deleted,
        attrs_updated: r.attrs_fixed,
        rechecked: r.rechecked,
        unstable: r.unstable,
        errors: r.errors,
        vanished: r.vanished,
        deletions_disabled: r.deletions_disabled,
        delete_limited: r.delete_limited,
        cancelled: r.cancelled,
        verify: None,
        sent_bytes: None,
        received_bytes: None,
        seconds: elapsed.as_secs_f64(),
    }
}

fn stats_lines(r: &Report, elapsed: Duration) -> Vec<String> {
    let secs = elapsed.as_secs_f64();
    let rate = if secs > 0.0 {
        r.bytes_copied as f64 / secs
    } else {
        0.0
    };
    vec![
        String::new(),
        format!(
            "Number of files: {} (regular: {})",
            r.src_entries, r.src_files
        ),
        format!("Number of created files: {}", r.created),
        format!("Number of deleted files: {}", r.deleted),
        format!("Number of regular files transferred: {}", r.files_copied),
        format!(
            "Number of entries with attributes updated: {}",
            r.attrs_fixed
        ),
        format!("Total file size: {} bytes", r.src_bytes),
        format!("Total transferred file size: {} bytes", r.bytes_copied),
        format!("Errors: {}, vanished: {}", r.errors, r.vanished),
        format!("Elapsed: {secs:.3} s ({:.1} MB/s)", rate / 1e6),
    ]
}
