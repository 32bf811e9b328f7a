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

use crate::cli::{RuleArg, SyncArgs, VerifyScope, pattern_rule};
use crate::commands::{Global, fail, rails};
use crate::events::VerifyCounts;
use crate::output::{SyncOutput, SyncPrinter};
use opsync_core::config::Config;
use opsync_core::exit::{Exit, ToExit};

pub fn run(global: &Global, args: SyncArgs) -> Exit {
    let (src, dst, opts, info, rails) = match resolve(global, &args) {
        Ok(v) => v,
        Err((exit, e)) => return fail(exit, &e),
    };
    let remote = match super::remote::which(&src, &dst) {
        Ok(r) => r,
        Err(e) => return fail(Exit::Usage, &e),
    };
    let cancel = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        // A second signal while the first is being handled ends the process at once.
        let _ = signal_hook::flag::register_conditional_shutdown(sig, 20, Arc::clone(&cancel));
        let _ = signal_hook::flag::register(sig, Arc::clone(&cancel));
    }
    let opts = opts.cancel(Some(cancel));

    let log = match &args.log_file {
        Some(f) => match refuse_untrusted_symlink(f, "--log-file").and_then(|()| {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(f)
                .map_err(|e| {
                    anyhow!(
                        "cannot open the --log-file {}: {e}; give a file in a writable directory",
                        f.display()
                    )
                })
        }) {
            Ok(f) => Some(f),
            Err(e) => return fail(Exit::Usage, &e),
        },
        None => None,
    };
    let quiet = args.quiet;
    // As rsync: `--progress` (and `-P`) implies `--info=name,progress` (names as with -v, no
    // summary lines); `--info=progress2` names nothing.
    let per_file = u8::from((args.progress || args.partial_progress) && !quiet);
    let name = info.name.unwrap_or(if quiet {
        0
    } else {
        args.verbose.min(2).max(per_file)
    });
    let stats = info.stats.unwrap_or(if args.stats {
        2
    } else if args.verbose > 0 && !quiet {
        1
    } else {
        0
    });
    let progress = info.progress.unwrap_or(per_file);
    // As rsync: `-ii` lists the unchanged entries too, and so does `-i` with rsync's name level
    // 2 (`-vv`, `--info=name2`).
    let opts =
        opts.itemize_unchanged(args.itemize_changes > 1 || (args.itemize_changes > 0 && name > 1));
    let printer = SyncPrinter::new(SyncOutput {
        itemize: args.itemize_changes > 0,
        verbose: name,
        json: args.json,
        progress,
        stats,
        human: 1 + args.human_readable.min(2),
        log,
    });
    if let Some(remote) = remote {
        return super::remote::run(global, &args, &src, &dst, remote, opts, &printer);
    }
    printer.header((!dst.exists()).then_some(dst.as_path()));
    if let Some(note) = &rails.note {
        printer.note(note);
    }
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
    printer.finish(&total, started.elapsed(), exit.code(), counts);
    if total.deletions_disabled {
        printer.note("opsync: errors reading the source: deletions were skipped for this run");
    }
    if total.delete_limited && rails.half_guard {
        crate::output::error(&rails::guard_message(&dst, total.deleted));
    } else if total.delete_limited {
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
        .filters(opts.filters.clone())
        .excludes(opts.excludes.clone())
        .xattrs(opts.xattrs)
        .acls(opts.acls)
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
    // The repair lists what it changes, not the whole tree once more (`-ii`).
    let again = opts.clone().recheck(paths.clone()).itemize_unchanged(false);
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
pub(crate) fn add_counts(total: &mut sync_engine::Report, r: &sync_engine::Report) {
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

type Resolved = (PathBuf, PathBuf, Options, Info, rails::Rails);

/// More worker threads than this are refused: each has a large stack, and the disks are the
/// limit long before.
const MAX_THREADS: usize = 256;

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
    let rails = match &cfg {
        Some(_) => rails::Rails::default(),
        None => {
            rails::for_pair(global, &src, &dst, &args.rails, max_delete.is_some()).map_err(|e| {
                (
                    Exit::Config,
                    anyhow!(e).context(
                        "the configuration is read for the rails of a configured pair \
                         (--no-config: sync without it)",
                    ),
                )
            })?
        }
    };
    // The half guard refuses every deletion of a run that would pass it (a limit given on the
    // command line or in the configuration deletes up to it, as rsync's --max-delete).
    let guard_only = max_delete.is_none() && rails.max_delete.is_none() && rails.half_guard;
    let max_delete = max_delete.or(rails.max_delete).or(rails
        .half_guard
        .then_some(MaxDelete::Percent(rails::UNCONFIGURED_LIMIT_PERCENT)));
    match args.threads {
        Some(0) => return Err(usage("--threads must be at least 1".into())),
        Some(n) if n > MAX_THREADS => {
            return Err(usage(format!(
                "--threads={n} is more than opsync uses ({MAX_THREADS}): give at most \
                 {MAX_THREADS}, or leave it out to use every core"
            )));
        }
        _ => {}
    }
    let mut filters = Vec::new();
    for r in &args.rules {
        match r {
            RuleArg::Rule(r) => filters.push(r.clone()),
            RuleArg::From { file, include } => {
                let text = read_list(file, args.from0, from_option(*include))
                    .map_err(|e| (Exit::Usage, e))?;
                filters.extend(
                    text.into_iter()
                        .map(|l| String::from_utf8_lossy(&l).into_owned())
                        .filter(|l| !l.starts_with('#') && !l.starts_with(';'))
                        .map(|l| pattern_rule(&l, *include)),
                );
            }
        }
    }
    // As rsync's client: the rules of `merge -` are read from standard input here, once.
    let filters = sync_engine::expand_stdin_merges(&filters, &mut || {
        use std::io::Read as _;
        let mut text = String::new();
        std::io::stdin().lock().read_to_string(&mut text)?;
        Ok(text)
    })
    .map_err(|e| (Exit::Usage, anyhow!(e)))?;
    let excludes = cfg
        .as_ref()
        .map(|c| c.sync.exclude.clone())
        .unwrap_or_default();
    let info = Info::parse(&args.info).map_err(usage)?;
    let mut excludes = excludes;
    excludes.extend(rails.excludes.iter().cloned());
    let recheck = match &args.recheck_from {
        Some(f) => read_list(f, args.from0, "--recheck-from")
            .map_err(|e| (Exit::Usage, e))?
            .into_iter()
            .map(|p| p.strip_prefix(b"./").map(<[u8]>::to_vec).unwrap_or(p))
            .collect(),
        None => Vec::new(),
    };
    let opts = Options::default()
        .delete(!args.no_delete)
        .checksum(args.checksum)
        .dry_run(args.dry_run)
        .max_delete(max_delete)
        .max_delete_all_or_nothing(guard_only)
        .modify_window(args.modify_window)
        .filters(filters)
        .excludes(excludes)
        .delete_excluded(args.delete_excluded)
        .threads(args.threads)
        .allow_empty_source(args.allow_empty_source)
        .delta(if args.whole_file {
            sync_engine::Delta::Never
        } else {
            args.delta.into()
        })
        .hard_links(args.hard_links)
        .acls(args.acls)
        .xattrs(args.xattrs)
        .one_file_system(args.one_file_system)
        .fsync(args.fsync)
        .insecure_links(args.insecure_links)
        .inplace(args.inplace)
        .recheck(recheck)
        .verify_written(args.verify == Some(VerifyScope::Written));

    Ok((src, dst, opts, info, rails))
}

fn from_option(include: bool) -> &'static str {
    if include {
        "--include-from"
    } else {
        "--exclude-from"
    }
}

/// As rsync 3.5 does for the files operators name: a list whose path goes through a symlink
/// (the file itself or a directory on the way) owned by a user other than root and the caller
/// is not read (someone else could point it anywhere).
fn refuse_untrusted_symlink(file: &Path, option: &str) -> anyhow::Result<()> {
    use std::os::unix::fs::MetadataExt as _;
    let me = rustix::process::geteuid().as_raw();
    for p in file.ancestors().filter(|p| !p.as_os_str().is_empty()) {
        let Ok(m) = std::fs::symlink_metadata(p) else {
            continue;
        };
        if m.file_type().is_symlink() && m.uid() != 0 && m.uid() != me {
            anyhow::bail!(
                "the {option} file {} goes through the symlink {} owned by uid {}, not by root \
                 or you: refusing to follow it (as rsync 3.5); give the real path",
                file.display(),
                p.display(),
                m.uid()
            );
        }
    }
    Ok(())
}

/// What `--info`, `--progress`, `-P`, `--stats` and `-v` ask for, as rsync's levels.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Info {
    /// 0 none, 1 a line per file (--progress), 2 one line for the whole transfer.
    pub progress: Option<u8>,
    /// 0 none, 1 the two summary lines (-v), 2 and 3 the full statistics (--stats).
    pub stats: Option<u8>,
    /// 0 no names, 1 changed items (-v), 2 unchanged ones too (-vv).
    pub name: Option<u8>,
}

impl Info {
    /// Parses `--info` flags (`progress2`, `stats`, `name0`, ...; a missing level is 1).
    fn parse(flags: &[String]) -> Result<Info, String> {
        let mut info = Info::default();
        for f in flags.iter().filter(|f| !f.is_empty()) {
            let f = f.to_ascii_lowercase();
            let split = f.find(|c: char| c.is_ascii_digit()).unwrap_or(f.len());
            let (name, level) = f.split_at(split);
            let level: u8 = if level.is_empty() {
                1
            } else {
                level.parse().map_err(|_| bad_info(&f))?
            };
            let (slot, max) = match name {
                "progress" => (&mut info.progress, 2),
                "stats" => (&mut info.stats, 3),
                "name" => (&mut info.name, 2),
                _ => return Err(bad_info(&f)),
            };
            if level > max {
                return Err(bad_info(&f));
            }
            *slot = Some(level);
        }
        Ok(info)
    }
}

fn bad_info(flag: &str) -> String {
    format!(
        "--info={flag} is not supported: use progress0..progress2, stats0..stats3 or \
         name0..name2 (comma-separated)"
    )
}

/// The entries listed in `file` (`-` for standard input) for `option`: one per line, or
/// NUL-separated with `from0`; empty entries and a leading `./` are dropped.
fn read_list(file: &Path, from0: bool, option: &str) -> anyhow::Result<Vec<Vec<u8>>> {
    use anyhow::Context as _;
    use std::io::Read as _;
    let mut data = Vec::new();
    if file == Path::new("-") {
        std::io::stdin()
            .read_to_end(&mut data)
            .with_context(|| format!("cannot read the {option} list from standard input"))?;
    } else {
        refuse_untrusted_symlink(file, option)?;
        data = std::fs::read(file).with_context(|| {
            format!(
                "cannot read the {option} file {}: give a readable file, one entry per line",
                file.display()
            )
        })?;
    }
    let sep = if from0 { b'\0' } else { b'\n' };
    Ok(data
        .split(|b| *b == sep)
        .map(|p| p.strip_suffix(b"\r").unwrap_or(p))
        .filter(|p| !p.is_empty())
        .map(<[u8]>::to_vec)
        .collect())
}
