//! `opsync sync`: command-line options to engine options, run the engine, print, map the
//! outcome to an exit code.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use anyhow::anyhow;
use sync_engine::verify::VerifyOptions;
use sync_engine::{Delta, Error, MaxDelete, Options, Status};

use crate::cli::SyncArgs;
use crate::commands::{Global, fail};
use crate::config::Config;
use crate::exit::Exit;
use crate::output::{SyncOutput, SyncPrinter};

pub fn run(global: &Global, args: SyncArgs) -> Exit {
    let (src, dst, mut opts) = match resolve(global, &args) {
        Ok(v) => v,
        Err((exit, e)) => return fail(exit, &e),
    };
    let cancel = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        // A second signal while the first is being handled ends the process at once.
        let _ = signal_hook::flag::register_conditional_shutdown(sig, 20, Arc::clone(&cancel));
        let _ = signal_hook::flag::register(sig, Arc::clone(&cancel));
    }
    opts.cancel = Some(cancel);

    let printer = SyncPrinter::new(SyncOutput {
        itemize: args.itemize_changes,
        verbose: args.verbose,
        json: args.json,
        progress: args.progress,
    });
    let started = Instant::now();
    match sync_engine::sync(&src, &dst, &opts, &printer) {
        Ok(report) => {
            let exit = match report.status() {
                Status::Ok => Exit::Ok,
                Status::Vanished => Exit::Vanished,
                Status::DeleteLimit => Exit::MaxDelete,
                Status::Partial => Exit::Partial,
                Status::Cancelled => Exit::Signal,
            };
            printer.finish(&report, started.elapsed(), exit as u8, args.stats);
            if report.deletions_disabled {
                eprintln!("opsync: errors reading the source: deletions were skipped for this run");
            }
            if report.delete_limited {
                eprintln!("opsync: --max-delete limit reached: some deletions were skipped");
            }
            if report.cancelled {
                eprintln!(
                    "opsync: stopped by signal after {} files copied, {} deleted; rerun to finish the mirror",
                    report.files_copied, report.deleted
                );
            }
            if args.verify && !args.dry_run && exit == Exit::Ok {
                let vopts = VerifyOptions {
                    excludes: opts.excludes.clone(),
                    threads: opts.threads,
                    modify_window: opts.modify_window,
                    ..VerifyOptions::default()
                };
                return crate::commands::verify::check(&src, &dst, &vopts, args.json);
            }
            exit
        }
        Err(e) => {
            let exit = match &e {
                Error::EmptySource { .. } => Exit::EmptySource,
                Error::Io { .. } | Error::Threads(_) => Exit::FileIo,
                _ => Exit::Usage,
            };
            printer.fatal_json(&e.to_string(), exit as u8);
            fail(exit, &anyhow!(e))
        }
    }
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
    let max_delete = args
        .max_delete
        .clone()
        .or_else(|| cfg.as_ref().and_then(|c| c.sync.max_delete.clone()));
    let max_delete = match max_delete {
        None => None,
        Some(s) => Some(MaxDelete::parse(&s).ok_or_else(|| {
            usage(format!(
                "invalid --max-delete value {s:?}: write a count like 500 or a percentage like 5%"
            ))
        })?),
    };
    if args.threads == Some(0) {
        return Err(usage("--threads must be at least 1".into()));
    }
    let mut excludes = args.exclude.clone();
    if let Some(c) = &cfg {
        excludes.extend(c.sync.exclude.iter().cloned());
    }
    let opts = Options {
        delete: !args.no_delete,
        checksum: args.checksum,
        dry_run: args.dry_run,
        max_delete,
        modify_window: args.modify_window,
        excludes,
        threads: args.threads,
        allow_empty_source: args.allow_empty_source,
        preserve_owner: None,
        delta: Delta::parse(&args.delta).unwrap_or_default(),
        cancel: None,
    };
    Ok((src, dst, opts))
}
