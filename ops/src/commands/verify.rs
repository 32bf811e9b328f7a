//! `opsync verify`: compare two trees, print each difference and a summary.

use std::path::Path;

use anyhow::anyhow;
use sync_engine::verify::{VerifyOptions, verify};

use crate::cli::VerifyArgs;
use crate::commands::{Global, fail};
use crate::output::DiffPrinter;
use opsync_core::exit::{Exit, ToExit};

pub fn run(_global: &Global, args: VerifyArgs) -> Exit {
    match super::remote::which(&args.src, &args.dst) {
        Ok(Some(remote)) => return super::remote_verify::run(&args, remote),
        Ok(None) => {}
        Err(e) => return fail(Exit::Usage, &e),
    }
    let opts = VerifyOptions::default()
        .excludes(args.exclude.clone())
        .threads(args.threads)
        .modify_window(args.modify_window);
    check(&args.src, &args.dst, &opts, args.json)
}

/// Runs the verification, prints each difference and a summary; returns `Exit::Ok` or
/// `Exit::Differences`.
pub fn check(src: &Path, dst: &Path, opts: &VerifyOptions, json: bool) -> Exit {
    let printer = DiffPrinter::new(json);
    let started = std::time::Instant::now();
    match verify(src, dst, opts, &printer) {
        Ok(report) => {
            let exit = if report.differences == 0 {
                Exit::Ok
            } else {
                Exit::Differences
            };
            printer.finish(&report, started.elapsed(), exit.code(), src, dst);
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
