//! Everything opsync prints: logging setup, itemize lines, JSON events, progress bars, stats,
//! command output ([`print()`]) and error and warning lines ([`error`], [`warning`]). No other
//! module writes to stdout or stderr (logging goes to stderr through the subscriber installed
//! here).

// The one module that prints: the workspace's print lints are off here, and on everywhere else.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::io::{BufWriter, IsTerminal, Stdout, Write};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

mod rsync;
use rsync::Extra;

use sync_engine::itemize::escape_name;
use sync_engine::{FileError, Item, Kind, Observer, Op, Report, Warning};

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
#[derive(Debug, Default)]
pub struct SyncOutput {
    pub itemize: bool,
    /// rsync's name level: 1 changed names (`-v`), 2 unchanged too.
    pub verbose: u8,
    pub json: bool,
    /// rsync's progress level: 1 a line per file (`--progress`), 2 one line for the whole
    /// transfer (`--info=progress2`).
    pub progress: u8,
    /// rsync's stats level: 1 the summary lines (`-v`), 2 and 3 `--stats`.
    pub stats: u8,
    /// rsync's number format: 0 digits, 1 thousands separators, 2 `-h`, 3 `-hh`.
    pub human: u8,
    /// `--log-file`: the file opened for appending.
    pub log: Option<std::fs::File>,
}

/// Progress state: what was copied and scanned, for rates over the last seconds.
struct Progress {
    started: Instant,
    /// Bytes copied, bytes to copy as far as SRC was read (its regular files' sizes, an upper
    /// bound of what is copied), entries seen below the root, entries done (the root among
    /// them, as rsync counts it: `to-chk=LEFT/TOTAL` is `entries + 1 - checked`/`entries + 1`).
    copied: u64,
    total: u64,
    entries: u64,
    checked: u64,
    files: u64,
    /// (time, bytes copied) of recent samples, oldest first, for the current rate.
    samples: std::collections::VecDeque<(Instant, u64)>,
    last_draw: Option<Instant>,
    /// When the previous per-file line was printed (the rate of a file is over its interval).
    last_file: Instant,
    /// The file whose moving `--progress` line is on the terminal while it is copied.
    current: Option<Current>,
    /// Every directory of SRC has been read: the lines say `to-chk` (rsync's word once its
    /// file list is complete) instead of `ir-chk`.
    scan_done: bool,
}

/// A file being copied, as its moving `--progress` line shows it.
struct Current {
    path: Vec<u8>,
    /// When the line first saw the file, and the bytes done then (the rate is over the time
    /// since: a file can take the line over halfway through).
    started: Instant,
    base: u64,
    /// When the line was drawn last, and the percentage it showed.
    drawn: Option<(Instant, u64)>,
}

impl Progress {
    fn new() -> Progress {
        let now = Instant::now();
        Progress {
            started: now,
            copied: 0,
            total: 0,
            entries: 0,
            checked: 1,
            files: 0,
            samples: std::collections::VecDeque::new(),
            last_draw: None,
            last_file: now,
            current: None,
            scan_done: false,
        }
    }

    /// The rate over the last 5 seconds of samples (not the run's average).
    fn rate(&mut self, now: Instant) -> f64 {
        self.samples.push_back((now, self.copied));
        while self.samples.len() > 2
            && now.duration_since(self.samples[0].0) > Duration::from_secs(5)
        {
            self.samples.pop_front();
        }
        let (t0, b0) = self.samples[0];
        let dt = now.duration_since(t0).as_secs_f64();
        if dt <= 0.0 {
            0.0
        } else {
            (self.copied - b0) as f64 / dt
        }
    }
}

/// The observer of a sync run: prints items, errors and warnings as they happen.
pub struct SyncPrinter {
    mode: SyncOutput,
    out: Mutex<BufWriter<Stdout>>,
    extra: Mutex<Extra>,
    progress: Mutex<Progress>,
    log: Option<Mutex<std::fs::File>>,
    /// `--progress` moves a line while a file is copied: on a terminal only.
    live: bool,
    /// A moving line is on the terminal (erased before anything else is printed).
    shown: AtomicBool,
}

impl SyncPrinter {
    pub fn new(mut mode: SyncOutput) -> SyncPrinter {
        let log = mode.log.take().map(Mutex::new);
        let live = mode.progress == 1 && !mode.json && std::io::stdout().is_terminal();
        let printer = SyncPrinter {
            mode,
            out: Mutex::new(BufWriter::new(std::io::stdout())),
            extra: Mutex::new(Extra::default()),
            progress: Mutex::new(Progress::new()),
            live,
            shown: AtomicBool::new(false),
            log,
        };
        printer.log_line("building file list");
        printer
    }

    /// Appends `text` to the `--log-file` with rsync's prefix.
    fn log_line(&self, text: &str) {
        if let Some(log) = &self.log {
            let line = format!(
                "{}{text}\n",
                rsync::log_prefix(chrono::Local::now(), std::process::id())
            );
            let mut f = log.lock().unwrap_or_else(|p| p.into_inner());
            let _ = f.write_all(line.as_bytes());
        }
    }

    /// Prints rsync's `-v` header lines (`sending incremental file list`, `created directory
    /// DST`) before the run.
    pub fn header(&self, created_root: Option<&std::path::Path>) {
        if !self.mode.json && self.mode.verbose > 0 {
            self.line("sending incremental file list");
        }
        if let Some(d) = created_root {
            self.extra
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .created_root = true;
            let shown = d.display().to_string();
            let shown = shown.trim_end_matches('/');
            if !self.mode.json && (self.mode.verbose > 0 || self.mode.itemize) {
                self.line(&format!("created directory {shown}"));
            }
        }
    }

    /// Draws the progress2 line (at most every 200 ms, or `force`).
    fn draw_total(&self, p: &mut Progress, force: bool) {
        let now = Instant::now();
        if !force
            && p.last_draw
                .is_some_and(|t| now.duration_since(t) < Duration::from_millis(200))
        {
            return;
        }
        p.last_draw = Some(now);
        let rate = p.rate(now);
        let size = p.total.max(p.copied);
        let eta = if force {
            now.duration_since(p.started)
        } else if rate > 0.0 {
            Duration::from_secs_f64((size - p.copied) as f64 / rate)
        } else {
            Duration::ZERO
        };
        let left = (p.entries + 1).saturating_sub(p.checked);
        let l = rsync::progress_line(
            p.copied,
            size,
            rate,
            eta,
            self.mode.human,
            Some((p.files, left, p.entries + 1, force || p.scan_done)),
        );
        let mut out = self.out.lock().unwrap_or_else(|p| p.into_inner());
        let _ = write!(out, "\r{l}");
        if force {
            let _ = writeln!(out);
        }
        let _ = out.flush();
    }

    /// Draws the moving line of the file being copied (at most every 200 ms unless it moved
    /// 10 points): rsync's line, the name after it (the name's own line comes in rsync's order
    /// with the final line, when the file is done).
    fn draw_file(&self, c: &mut Current, done: u64, size: u64) {
        let now = Instant::now();
        let pct = (done * 100).checked_div(size).unwrap_or(100);
        if c.drawn.is_some_and(|(t, p)| {
            now.duration_since(t) < Duration::from_millis(200) && pct < p + 10
        }) {
            return;
        }
        c.drawn = Some((now, pct));
        let secs = now.duration_since(c.started).as_secs_f64();
        let rate = if secs > 0.0 {
            done.saturating_sub(c.base) as f64 / secs
        } else {
            0.0
        };
        let eta = if rate > 0.0 {
            Duration::from_secs_f64(size.saturating_sub(done) as f64 / rate)
        } else {
            Duration::ZERO
        };
        let l = rsync::progress_line(done, size, rate, eta, self.mode.human, None);
        let mut out = self.out.lock().unwrap_or_else(|p| p.into_inner());
        let _ = write!(out, "\r\x1b[K{l}  {}", escape_name(&c.path));
        let _ = out.flush();
        self.shown.store(true, Ordering::Relaxed);
    }

    /// Erases the moving line, if one is shown.
    fn erase(&self, out: &mut BufWriter<Stdout>) {
        if self.shown.swap(false, Ordering::Relaxed) {
            let _ = write!(out, "\r\x1b[K");
        }
    }

    fn line(&self, s: &str) {
        let mut out = self.out.lock().unwrap_or_else(|p| p.into_inner());
        self.erase(&mut out);
        let _ = writeln!(out, "{s}");
    }

    fn stderr(&self, s: &str) {
        let _ = self.out.lock().map(|mut o| {
            self.erase(&mut o);
            o.flush()
        });
        eprintln!("{s}");
    }

    /// Prints an item: its JSON event, `-i` line, or `-v` name.
    fn print_item(&self, item: &Item<'_>, path: &str, field: &str, link: &str) {
        if self.mode.json {
            let e = Event::Item(ItemEvent {
                itemize: field.to_string(),
                op: op_str(item.op).to_string(),
                path: EventPath::from_bytes(item.path),
                bytes: item.bytes,
                link: item.link.map(|l| String::from_utf8_lossy(l).into_owned()),
            });
            self.line(&e.to_line());
        } else if self.mode.itemize {
            self.line(&format!("{field} {path}{link}"));
        } else if self.mode.verbose == 0 {
        } else if item.op == Op::Delete {
            self.line(&format!("deleting {path}"));
        } else {
            self.line(&format!("{path}{link}"));
        }
    }

    /// Prints a difference found by `--verify` (`remaining`: by its check after the repair).
    pub fn difference(&self, d: &sync_engine::verify::Difference, remaining: bool) {
        self.line(&difference_line(d, self.mode.json, remaining));
    }

    /// Prints a difference given by its parts (a remote check's, from its itemize line).
    pub fn difference_parts(&self, path: &[u8], kind: &str, what: &str, remaining: bool) {
        self.line(&difference_parts_line(
            path,
            kind,
            what,
            self.mode.json,
            remaining,
        ));
    }

    /// True when the output is JSON lines.
    pub fn is_json(&self) -> bool {
        self.mode.json
    }

    /// Prints a file that `--verify` found different and the repair made equal.
    pub fn repaired(&self, path: &[u8]) {
        self.line(&repaired_line(path, self.mode.json));
    }

    /// Prints a message for the person running the command on stderr (above a progress bar).
    pub fn note(&self, s: &str) {
        self.stderr(s);
    }

    /// Prints the final summary (JSON line, or rsync's `--stats` and summary lines) and
    /// flushes.
    pub fn finish(
        &self,
        report: &Report,
        elapsed: Duration,
        exit_code: u8,
        verify: Option<VerifyCounts>,
    ) {
        self.finish_wire(report, elapsed, exit_code, verify, None);
    }

    /// [`SyncPrinter::finish`] of a remote run, with the bytes sent and received on the
    /// connection (rsync's `sent N bytes  received M bytes`).
    pub fn finish_wire(
        &self,
        report: &Report,
        elapsed: Duration,
        exit_code: u8,
        verify: Option<VerifyCounts>,
        wire: Option<(u64, u64)>,
    ) {
        if self.mode.progress == 2 && !self.mode.json {
            let mut p = self.progress.lock().unwrap_or_else(|p| p.into_inner());
            p.checked = p.entries + 1;
            self.draw_total(&mut p, true);
        }
        let mut extra = *self.extra.lock().unwrap_or_else(|p| p.into_inner());
        if extra.created_root && !report.dry_run {
            extra.created.add(Kind::Dir);
        }
        if self.mode.json {
            let mut s = summary(report, elapsed, exit_code);
            s.verify = verify;
            s.sent_bytes = wire.map(|w| w.0);
            s.received_bytes = wire.map(|w| w.1);
            self.line(&Event::Summary(s).to_line());
        } else if self.mode.stats > 0 {
            let lines = rsync::summary(
                report,
                &extra,
                elapsed,
                self.mode.stats,
                self.mode.human,
                wire,
            );
            for l in lines {
                self.line(&l);
            }
        }
        if self.log.is_some() {
            self.log_line(&rsync::log_summary(report));
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
        Op::Unchanged => "unchanged",
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
        self.mode.itemize
            || self.mode.verbose > 0
            || self.mode.json
            || self.mode.stats >= 2
            || self.mode.progress > 0
            || self.log.is_some()
    }

    fn item(&self, item: &Item<'_>) {
        let path = display_path(item);
        let field = String::from_utf8_lossy(&item.field);
        let new = item.field[2..].iter().all(|&b| b == b'+');
        {
            let mut x = self.extra.lock().unwrap_or_else(|p| p.into_inner());
            if item.op == Op::Delete {
                x.deleted.add(item.kind);
            } else if new && !item.path.is_empty() {
                x.created.add(item.kind);
            }
        }
        let arrow = if item.op == Op::Link { "=>" } else { "->" };
        let link = item
            .link
            .map(|l| format!(" {arrow} {}", escape_name(l)))
            .unwrap_or_default();
        if self.log.is_some() {
            let name = if item.op == Op::Delete {
                format!("*deleting   {path}")
            } else {
                format!("{field} {path}{link}")
            };
            self.log_line(&name);
        }
        if item.op == Op::Copy {
            let mut p = self.progress.lock().unwrap_or_else(|p| p.into_inner());
            p.files += 1;
            p.checked += 1;
            if self.mode.progress == 1 && !self.mode.json {
                // rsync: the name (unless -v or -i print it), then the file's last line.
                if !self.mode.itemize && self.mode.verbose == 0 {
                    self.line(&path);
                }
                let now = Instant::now();
                let dt = now.duration_since(p.last_file);
                p.last_file = now;
                let rate = item.bytes as f64 / dt.as_secs_f64().max(1e-3);
                let left = (p.entries + 1).saturating_sub(p.checked);
                let files = p.files;
                let total = p.entries + 1;
                let complete = p.scan_done;
                drop(p);
                let l = rsync::progress_line(
                    item.bytes,
                    item.bytes,
                    rate,
                    dt,
                    self.mode.human,
                    Some((files, left, total, complete)),
                );
                self.print_item(item, &path, &field, &link);
                self.line(&l);
                return;
            }
        } else if !matches!(item.op, Op::Delete | Op::Unchanged) && item.kind != Kind::Dir {
            // An unchanged entry (`-ii`) was counted as checked with its directory.
            self.progress
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .checked += 1;
        }
        self.print_item(item, &path, &field, &link);
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

    fn progress(&self, bytes: u64) {
        let mut p = self.progress.lock().unwrap_or_else(|p| p.into_inner());
        p.copied += bytes;
        if self.mode.progress == 2 && !self.mode.json {
            self.draw_total(&mut p, false);
        }
    }

    fn wants_file_progress(&self) -> bool {
        self.mode.progress > 0 && !self.mode.json
    }

    fn copying(&self, path: &[u8], done: u64, size: u64) {
        if !self.live {
            return;
        }
        let mut p = self.progress.lock().unwrap_or_else(|p| p.into_inner());
        // One moving line: the file that started first among those in flight.
        let c = p.current.get_or_insert_with(|| Current {
            path: path.to_vec(),
            started: Instant::now(),
            base: done,
            drawn: None,
        });
        if c.path == path && done > 0 {
            self.draw_file(c, done, size);
        }
    }

    fn copy_ended(&self, path: &[u8]) {
        if !self.live {
            return;
        }
        let mut p = self.progress.lock().unwrap_or_else(|p| p.into_inner());
        if p.current.as_ref().is_some_and(|c| c.path == path) {
            p.current = None;
            let mut out = self.out.lock().unwrap_or_else(|p| p.into_inner());
            self.erase(&mut out);
            let _ = out.flush();
        }
    }

    fn unchanged(&self, entries: u64) {
        self.progress
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .checked += entries;
    }

    fn scan_done(&self) {
        self.progress
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .scan_done = true;
    }

    fn scanned(&self, entries: u64, bytes: u64) {
        let mut p = self.progress.lock().unwrap_or_else(|p| p.into_inner());
        p.entries += entries;
        p.total += bytes;
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

impl DiffPrinter {
    /// Prints a difference given by its parts (a remote check's, from its itemize line).
    pub fn difference_parts(&self, path: &[u8], kind: &str, what: &str) {
        let mut out = self.out.lock().unwrap_or_else(|p| p.into_inner());
        let _ = writeln!(
            out,
            "{}",
            difference_parts_line(path, kind, what, self.json, false)
        );
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
    difference_parts_line(&d.path, d.kind.name(), &d.kind.to_string(), json, remaining)
}

/// [`difference_line`] from its parts: the path, the kind's name (`content`, `size`, ...) and
/// the difference in words.
pub fn difference_parts_line(
    path: &[u8],
    kind: &str,
    what: &str,
    json: bool,
    remaining: bool,
) -> String {
    if json {
        Event::Difference(crate::events::DifferenceEvent {
            path: EventPath::from_bytes(path),
            kind: kind.to_string(),
            what: what.to_string(),
            remaining,
        })
        .to_line()
    } else {
        let path = if path.is_empty() {
            ".".to_string()
        } else {
            escape_name(path)
        };
        if remaining {
            format!("{path}: {what} (still, after copying it again)")
        } else {
            format!("{path}: {what}")
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
