//! The comparison of two trees when one is on another host: a dry run with contents compared
//! (`-c -n`: every file of the same size hashed on both ends) over the connection, whose itemize
//! lines are read as the differences `opsync verify` reports (`content`, `size`, `mtime`,
//! `mode`, `missing`, `extra`, ...). Used by `opsync verify SRC HOST:DST` (the nightly job's
//! check step with a remote target) and by `opsync sync --verify` over ssh.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::anyhow;
use sync_engine::Options;
use sync_engine::plan::Op;
use sync_engine::verify::{DiffKind, Difference, VerifyReport};
use sync_remote::RemoteOptions;

use super::remote::Remote;
use crate::cli::VerifyArgs;
use crate::commands::fail;
use crate::output::{DiffPrinter, SyncPrinter};
use opsync_core::exit::{Exit, ToExit};

/// The differences an itemize line of a `-c -n` run stands for, as `opsync verify` names them
/// (kind, the difference in words), attributes before contents as a local verify reports them.
/// A type change shows as the deletion of the old entry (`extra`) and a new one (`missing`).
pub(crate) fn differences_of(item: &sync_engine::Item<'_>) -> Vec<(&'static str, &'static str)> {
    if item.op == Op::Delete || item.field.starts_with(b"*deleting") {
        return vec![("extra", "not in SRC (extra in DST)")];
    }
    let f = &item.field;
    if f[2..].iter().all(|&b| b == b'+') {
        return vec![("missing", "missing in DST")];
    }
    let mut out = Vec::new();
    let has = |i: usize, c: u8| f[i] == c;
    if has(5, b'p') {
        out.push(("mode", "permissions differ"));
    }
    if has(6, b'o') {
        out.push(("owner", "owner differs"));
    }
    if has(7, b'g') {
        out.push(("group", "group differs"));
    }
    if has(9, b'a') || has(10, b'x') {
        out.push(("xattrs", "extended attributes or ACLs differ"));
    }
    if has(4, b't') {
        out.push(("mtime", "mtime differs"));
    }
    if has(3, b's') {
        out.push(("size", "size differs"));
    } else if has(2, b'c') {
        out.push(match f[1] {
            b'L' => ("link", "symlink target differs"),
            b'D' => ("device", "device number differs"),
            _ => ("content", "content differs"),
        });
    }
    if out.is_empty() {
        out.push(("other", "differs"));
    }
    out
}

/// Where a remote check's differences go.
pub(crate) trait Sink: Sync {
    /// The itemize line of a path that differs, before its differences.
    fn item(&self, _item: &sync_engine::Item<'_>) {}
    /// One difference of `item` (the path's itemize line) of kind `kind`.
    fn difference(&self, item: &sync_engine::Item<'_>, kind: &str, what: &str);
    /// An entry that could not be read: a difference of kind `unreadable`.
    fn unreadable(&self, d: &Difference);
}

/// The observer of a remote check: every line of the dry run is one path that differs.
pub(crate) struct Found<'a> {
    sink: &'a dyn Sink,
    paths: Mutex<BTreeSet<Vec<u8>>>,
    n: AtomicU64,
}

impl<'a> Found<'a> {
    pub(crate) fn new(sink: &'a dyn Sink) -> Found<'a> {
        Found {
            sink,
            paths: Mutex::new(BTreeSet::new()),
            n: AtomicU64::new(0),
        }
    }

    /// The differences found (one path may have several).
    pub(crate) fn count(&self) -> u64 {
        self.n.load(Ordering::Relaxed)
    }

    /// The paths that differ.
    pub(crate) fn paths(self) -> BTreeSet<Vec<u8>> {
        self.paths.into_inner().unwrap_or_else(|p| p.into_inner())
    }

    fn add(&self, path: &[u8], n: u64) {
        self.n.fetch_add(n, Ordering::Relaxed);
        self.paths
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(path.to_vec());
    }
}

impl sync_engine::Observer for Found<'_> {
    fn wants_items(&self) -> bool {
        true
    }
    fn item(&self, item: &sync_engine::Item<'_>) {
        let kinds = differences_of(item);
        self.sink.item(item);
        for (kind, what) in &kinds {
            self.sink.difference(item, kind, what);
        }
        self.add(item.path, kinds.len() as u64);
    }
    fn error(&self, err: &sync_engine::FileError) {
        let d = Difference {
            path: err.path.clone(),
            kind: DiffKind::Unreadable {
                side: err.side,
                error: std::io::Error::new(
                    err.source.kind(),
                    format!("{}: {}", err.op, err.source),
                ),
            },
        };
        self.sink.unreadable(&d);
        self.add(&err.path, 1);
    }
}

/// The options of a check over the connection: `-c -n`, nothing but the differences listed,
/// an empty side compared too (no empty-source refusal), no deletion limit.
pub(crate) fn check_options(ro: &RemoteOptions) -> RemoteOptions {
    RemoteOptions {
        items: true,
        engine: ro
            .engine
            .clone()
            .checksum(true)
            .dry_run(true)
            .itemize_unchanged(false)
            .allow_empty_source(true)
            .max_delete(None)
            .max_delete_all_or_nothing(false)
            .recheck(Vec::new()),
        ..ro.clone()
    }
}

/// The differences of `opsync sync --verify` over ssh: with --json each one's `difference`
/// event (as a local `--verify` prints them), else one note per path, `opsync: verify: differs:
/// ITEMIZE PATH` (`still differs` after the repair).
pub(crate) struct SyncSink<'a> {
    printer: &'a SyncPrinter,
    after_repair: bool,
}

impl<'a> SyncSink<'a> {
    pub(crate) fn new(printer: &'a SyncPrinter, after_repair: bool) -> SyncSink<'a> {
        SyncSink {
            printer,
            after_repair,
        }
    }
}

impl Sink for SyncSink<'_> {
    fn item(&self, item: &sync_engine::Item<'_>) {
        if self.printer.is_json() {
            return;
        }
        let what = if self.after_repair {
            "still differs"
        } else {
            "differs"
        };
        let path = if item.path.is_empty() {
            ".".to_string()
        } else {
            sync_engine::itemize::escape_name(item.path)
        };
        self.printer.note(&format!(
            "opsync: verify: {what}: {} {path}",
            String::from_utf8_lossy(&item.field)
        ));
    }
    fn difference(&self, item: &sync_engine::Item<'_>, kind: &str, what: &str) {
        if self.printer.is_json() {
            self.printer
                .difference_parts(item.path, kind, what, self.after_repair);
        }
    }
    fn unreadable(&self, d: &Difference) {
        self.printer.difference(d, self.after_repair);
    }
}

impl Sink for DiffPrinter {
    fn difference(&self, item: &sync_engine::Item<'_>, kind: &str, what: &str) {
        self.difference_parts(item.path, kind, what);
    }
    fn unreadable(&self, d: &Difference) {
        sync_engine::Observer::difference(self, d);
    }
}

/// `opsync verify SRC DST` with one side on another host: prints each difference (or its JSON
/// event) and the summary as a local verify does; exit 0 when the trees are equal, 8 when they
/// differ, the connection's code (12, 14, 255) when the check cannot run.
pub fn run(args: &VerifyArgs, remote: Remote) -> Exit {
    let engine = Options::default()
        .excludes(args.exclude.clone())
        .threads(args.threads)
        .modify_window(args.modify_window);
    let ro = check_options(&RemoteOptions {
        rsh: args.rsh.clone().unwrap_or_else(|| "ssh".into()),
        remote_opsync: args
            .remote_opsync
            .clone()
            .unwrap_or_else(|| "opsync".into()),
        engine,
        ..RemoteOptions::default()
    });
    let printer = DiffPrinter::new(args.json);
    let found = Found::new(&printer);
    let started = std::time::Instant::now();
    let r = match &remote {
        Remote::Push(to) => sync_remote::push(&args.src, to, &ro, &found),
        Remote::Pull(from) => sync_remote::pull(from, &args.dst, &ro, &found),
    };
    match r {
        Ok(rr) => {
            let differences = found.count();
            let exit = if differences == 0 {
                Exit::Ok
            } else {
                Exit::Differences
            };
            let report = VerifyReport {
                entries: rr.report.src_entries,
                files_hashed: 0,
                bytes_hashed: 0,
                differences,
            };
            printer.finish(
                &report,
                started.elapsed(),
                exit.code(),
                Path::new(&args.src),
                Path::new(&args.dst),
            );
            exit
        }
        Err(e) => {
            let exit = e.exit();
            printer.fatal(&e.to_string(), exit.code());
            drop(printer);
            fail(exit, &anyhow!(e))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sync_engine::listing::Kind;

    fn kinds(field: &[u8; 11], op: Op) -> Vec<&'static str> {
        let item = sync_engine::Item {
            field: *field,
            op,
            kind: Kind::File,
            path: b"a",
            link: None,
            bytes: 0,
        };
        differences_of(&item).into_iter().map(|(k, _)| k).collect()
    }

    #[test]
    fn itemize_lines_are_read_as_verify_differences() {
        assert_eq!(kinds(b"<fc........", Op::Copy), ["content"]);
        assert_eq!(kinds(b">fc.t......", Op::Copy), ["mtime", "content"]);
        assert_eq!(kinds(b"<f.st......", Op::Copy), ["mtime", "size"]);
        assert_eq!(kinds(b".f...p.....", Op::SetAttrs), ["mode"]);
        assert_eq!(
            kinds(b".d..t.og...", Op::SetAttrs),
            ["owner", "group", "mtime"]
        );
        assert_eq!(kinds(b"<f+++++++++", Op::Copy), ["missing"]);
        assert_eq!(kinds(b"*deleting  ", Op::Delete), ["extra"]);
        assert_eq!(kinds(b"cLc........", Op::Symlink), ["link"]);
    }
}
