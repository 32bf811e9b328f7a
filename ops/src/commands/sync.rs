//! `opsync sync`: command-line options to engine options, run the engine, print, map the
//! outcome to an exit code.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::anyhow;
use sync_engine::verify::VerifyOptions;
use sync_engine::{Error, MaxDelete, Options};

use crate::cli::{SyncArgs, VerifyScope};
use crate::commands::{Global, fail};
use crate::events::VerifyCounts;
use crate::output::{SyncOutput, SyncPrinter};
use opsync_core::config::Config;
use opsync_core::exit::{Exit, ToExit};

pub fn run(global: &Global, args: SyncArgs) -> Exit {
    let (src, dst, opts) = match resolve(global, &args) {
        Ok(v) => v,
        Err((exit, e)) => return fail(exit, &e),
    };
    match super::remote::which(&src, &dst) {
        Ok(Some(remote)) => return super::remote::run(global, &args, &src, &dst, remote, opts),
        Ok(None) => {}
        Err(e) => return fail(Exit::Usage, &e),
    }
    let cancel = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        // A second signal while the first is being handled ends the process at once.
        let _ = signal_hook::flag::register_conditional_shutdown(sig, 20, Arc::clone(&cancel));
        let _ = signal_hook::flag::register(sig, Arc::clone(&cancel));
    }
    let opts = opts.cancel(Some(cancel));

    let printer = SyncPrinter::new(SyncOutput {
        itemize: args.itemize_changes,
        verbose: args.verbose,
        json: args.json,
        progress: args.progress,
    });
    let started = Instant::now();
    let report = match sync_engine::sync(&src, &dst, &opts, &printer) {
        Ok(r) => r,
        Err(e) => {
            let exit = e.exit();
            printer.fatal_json(&e.to_string(), exit.code());
            return fail(exit, &anyhow!(e));
        }
    };
    let mut exit = Exit::from(report.status());
    let mut total = report;
    let mut counts = None;
    // A run that ended with vanished files is verified too: they are warnings, not errors.
    let verifiable = matches!(exit, Exit::Ok | Exit::Vanished);
    if args.verify == Some(VerifyScope::All) && !args.dry_run && verifiable {
        match verify_and_repair(&src, &dst, &opts, &printer, &mut total) {
            Ok(c) => {
                if c.remaining > 0 {
                    exit = Exit::Differences;
                } else {
                    exit = Exit::from(total.status());
                }
                counts = Some(c);
            }
            Err(e) => {
                printer.fatal_json(&e.to_string(), Exit::FileIo.code());
                return fail(Exit::FileIo, &anyhow!(e));
            }
        }
    }
    printer.finish(&total, started.elapsed(), exit.code(), args.stats, counts);
    if total.deletions_disabled {
        printer.note("opsync: errors reading the source: deletions were skipped for this run");
    }
    if total.delete_limited {
        printer.note("opsync: --max-delete limit reached: some deletions were skipped");
    }
    if total.cancelled {
        printer.note(&format!(
            "opsync: stopped by signal after {} files copied, {} deleted; rerun to finish the mirror",
            total.files_copied, total.deleted
        ));
    }
    if let Some(c) = counts.filter(|c| c.differences > 0) {
        printer.note(&format!(
            "opsync: verify: {} difference(s) between {} and {}; {} file(s) repaired by copying \
             them again, {} difference(s) left",
            c.differences,
            src.display(),
            dst.display(),
            c.repaired,
            c.remaining
        ));
    }
    exit
}

/// `--verify` (all): compares both trees; the paths that differ are synced again with their
/// contents compared (a DST file with SRC's size and mtime but other content is what the quick
/// check misses), then checked once more. Each difference is printed as found, each path the
/// second check finds equal as repaired; the repair's counts are added to `total`.
fn verify_and_repair(
    src: &Path,
    dst: &Path,
    opts: &Options,
    printer: &SyncPrinter,
    total: &mut sync_engine::Report,
) -> Result<VerifyCounts, Error> {
    let vopts = VerifyOptions::default()
        .excludes(opts.excludes.clone())
        .threads(opts.threads)
        .modify_window(opts.modify_window);
    let found = Collect::new(printer, false);
    let r = sync_engine::verify::verify(src, dst, &vopts, &found)?;
    let paths: Vec<Vec<u8>> = found.paths().into_iter().collect();
    if paths.is_empty() {
        return Ok(VerifyCounts::default());
    }
    printer.note(&format!(
        "opsync: verify: {} difference(s) in {} path(s): syncing them again with contents compared",
        r.differences,
        paths.len()
    ));
    let again = opts.clone().recheck(paths.clone());
    let repair = sync_engine::sync(src, dst, &again, printer)?;
    add_counts(total, &repair);
    let left = Collect::new(printer, true);
    let r2 = sync_engine::verify::verify(src, dst, &vopts.only(paths.clone()), &left)?;
    let left = left.paths();
    let mut repaired = 0;
    for p in paths.iter().filter(|p| !left.contains(*p)) {
        printer.repaired(p);
        repaired += 1;
    }
    Ok(VerifyCounts {
        differences: r.differences,
        repaired,
        remaining: r2.differences,
    })
}

/// Prints each difference and collects the paths.
struct Collect<'a> {
    printer: &'a SyncPrinter,
    /// The check after the repair: what it finds stays.
    after_repair: bool,
    paths: Mutex<BTreeSet<Vec<u8>>>,
}

impl<'a> Collect<'a> {
    fn new(printer: &'a SyncPrinter, after_repair: bool) -> Collect<'a> {
        Collect {
            printer,
            after_repair,
            paths: Mutex::new(BTreeSet::new()),
        }
    }

    fn paths(self) -> BTreeSet<Vec<u8>> {
        self.paths.into_inner().unwrap_or_else(|p| p.into_inner())
    }
}

impl sync_engine::Observer for Collect<'_> {
    fn difference(&self, d: &sync_engine::verify::Difference) {
        self.printer.difference(d, self.after_repair);
        self.paths
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(d.path.clone());
    }
}

/// Adds the counts of a second run (the repair) to the first's.
fn add_counts(total: &mut sync_engine::Report, r: &sync_engine::Report) {
    total.files_copied += r.files_copied;
    total.bytes_copied += r.bytes_copied;
    total.bytes_written += r.bytes_written;
    total.created += r.created;
    total.deleted += r.deleted;
    total.attrs_fixed += r.attrs_fixed;
    total.rechecked += r.rechecked;
    total.unstable += r.unstable;
    total.verified += r.verified;
    total.errors += r.errors;
    total.vanished += r.vanished;
    total.deletions_disabled |= r.deletions_disabled;
    total.delete_limited |= r.delete_limited;
    total.cancelled |= r.cancelled;
}

type Resolved = (PathBuf, PathBuf, Options);

/// Turns the command line (and, for what it leaves out, the config file) into engine options.
fn resolve(global: &Global, args: &SyncArgs) -> Result<Resolved, (Exit, anyhow::Error)> {
    let usage = |msg: String| (Exit::Usage, anyhow!(msg));
    let (src, dst, cfg) = match (&args.src, &args.dst) {
        (Some(s), Some(d)) => (s.clone(), d.clone(), None),
        (Some(_), None) => {
            return Err(usage(
                "missing DST: give both SRC and DST, or neither to use the config".into(),
            ));
        }
        _ => {
            let cfg = Config::resolve(global.config.as_deref())
                .map_err(|e| (Exit::Config, anyhow!(e)))?;
            (
                cfg.path(&cfg.sync.source),
                cfg.path(&cfg.sync.target),
                Some(cfg),
            )
        }
    };
    let max_delete = match &args.max_delete {
        Some(s) => Some(s.parse::<MaxDelete>().map_err(|_| {
            usage(format!(
                "invalid --max-delete value {s:?}: write a count like 500 or a percentage like 5%"
            ))
        })?),
        None => cfg.as_ref().and_then(|c| c.sync.max_delete),
    };
    if args.threads == Some(0) {
        return Err(usage("--threads must be at least 1".into()));
    }
    let mut excludes = args.exclude.clone();
    if let Some(c) = &cfg {
        excludes.extend(c.sync.exclude.iter().cloned());
    }
    let recheck = match &args.recheck_from {
        Some(f) => read_list(f, args.from0).map_err(|e| (Exit::Usage, e))?,
        None => Vec::new(),
    };
    let opts = Options::default()
        .delete(!args.no_delete)
        .checksum(args.checksum)
        .dry_run(args.dry_run)
        .max_delete(max_delete)
        .modify_window(args.modify_window)
        .excludes(excludes)
        .threads(args.threads)
        .allow_empty_source(args.allow_empty_source)
        .delta(args.delta.into())
        .inplace(args.inplace)
        .recheck(recheck)
        .verify_written(args.verify == Some(VerifyScope::Written));

    Ok((src, dst, opts))
}

/// The paths listed in `file` (`-` for standard input): one per line, or NUL-separated with
/// `from0`; empty entries and a leading `./` are dropped.
fn read_list(file: &Path, from0: bool) -> anyhow::Result<Vec<Vec<u8>>> {
    use anyhow::Context as _;
    use std::io::Read as _;
    let mut data = Vec::new();
    if file == Path::new("-") {
        std::io::stdin()
            .read_to_end(&mut data)
            .context("cannot read the --recheck-from list from standard input")?;
    } else {
        data = std::fs::read(file).with_context(|| {
            format!(
                "cannot read the --recheck-from list {}: give a file of paths relative to SRC",
                file.display()
            )
        })?;
    }
    let sep = if from0 { b'\0' } else { b'\n' };
    Ok(data
        .split(|b| *b == sep)
        .map(|p| p.strip_prefix(b"./").unwrap_or(p))
        .filter(|p| !p.is_empty())
        .map(<[u8]>::to_vec)
        .collect())
}
