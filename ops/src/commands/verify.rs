//! `opsync verify` and the verification step of `opsync sync --verify`.

use std::io::Write;
use std::path::Path;
use std::sync::Mutex;

use anyhow::anyhow;
use sync_engine::Error;
use sync_engine::verify::{Difference, VerifyOptions, VerifyReport, verify};

use crate::cli::VerifyArgs;
use crate::commands::{Global, fail};
use crate::exit::Exit;

pub fn run(_global: &Global, args: VerifyArgs) -> Exit {
    let opts = VerifyOptions {
        excludes: args.exclude.clone(),
        threads: args.threads,
        modify_window: args.modify_window,
        ..VerifyOptions::default()
    };
    check(&args.src, &args.dst, &opts, args.json)
}

/// Runs the verification, prints each difference and a summary; returns `Exit::Ok` or
/// `Exit::Differences`.
pub fn check(src: &Path, dst: &Path, opts: &VerifyOptions, json: bool) -> Exit {
    let out = Mutex::new(std::io::BufWriter::new(std::io::stdout()));
    let print = |d: &Difference| {
        let line = crate::output::difference_line(d, json);
        if let Ok(mut o) = out.lock() {
            let _ = writeln!(o, "{line}");
        }
    };
    let started = std::time::Instant::now();
    let result = verify(src, dst, opts, &print);
    let mut out = out.into_inner().unwrap_or_else(|p| p.into_inner());
    match result {
        Ok(report) => {
            let exit = if report.differences == 0 {
                Exit::Ok
            } else {
                Exit::Differences
            };
            let secs = started.elapsed().as_secs_f64();
            if json {
                let _ = writeln!(out, "{}", summary(&report, secs, exit));
            } else if report.differences > 0 {
                let _ = out.flush();
                eprintln!(
                    "opsync: verify: {} difference(s) between {} and {}",
                    report.differences,
                    src.display(),
                    dst.display()
                );
            }
            exit
        }
        Err(e) => {
            let exit = match e {
                Error::Io { .. } | Error::Threads(_) => Exit::FileIo,
                _ => Exit::Usage,
            };
            drop(out);
            fail(exit, &anyhow!(e))
        }
    }
}

fn summary(r: &VerifyReport, secs: f64, exit: Exit) -> String {
    crate::events::Event::VerifySummary(crate::events::VerifySummary {
        entries: r.entries,
        files_hashed: r.files_hashed,
        bytes_hashed: r.bytes_hashed,
        differences: r.differences,
        identical: r.differences == 0,
        exit_code: exit as u8,
        seconds: secs,
    })
    .to_line()
}
