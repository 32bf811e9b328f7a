//! `opsync sync` with one side on another host (`[USER@]HOST:PATH`), through `sync-remote`, and
//! `opsync serve`, the remote end that the client's ssh starts.

use std::path::Path;
use std::time::Instant;

use anyhow::anyhow;
use sync_engine::Options;
use sync_remote::{Location, RemoteOptions};

use crate::cli::SyncArgs;
use crate::commands::{Global, fail};
use crate::output::SyncPrinter;
use opsync_core::config::Config;
use opsync_core::exit::{Exit, ToExit};
use sync_engine::Observer as _;

/// Which side is remote.
pub enum Remote {
    Push(Location),
    Pull(Location),
}

/// `Some` when SRC or DST names another host; an error when both do.
pub fn which(src: &Path, dst: &Path) -> Result<Option<Remote>, anyhow::Error> {
    for p in [src, dst] {
        if let Some(l) = sync_remote::parse_location(p.as_os_str())
            && l.path.as_os_str().as_encoded_bytes().starts_with(b":")
        {
            return Err(anyhow!(
                "{} names an rsync daemon module (HOST::MODULE), which opsync does not speak: \
                 give HOST:PATH, reached over ssh",
                p.display()
            ));
        }
    }
    let s = sync_remote::parse_location(src.as_os_str());
    let d = sync_remote::parse_location(dst.as_os_str());
    match (s, d) {
        (Some(_), Some(_)) => Err(anyhow!(
            "both SRC and DST name a remote host: one of them must be a local path"
        )),
        (Some(s), None) => Ok(Some(Remote::Pull(s))),
        (None, Some(d)) => Ok(Some(Remote::Push(d))),
        (None, None) => Ok(None),
    }
}

/// Runs a push or pull and prints its result like a local run, with the connection's bytes.
#[allow(clippy::too_many_arguments)]
pub fn run(
    global: &Global,
    args: &SyncArgs,
    src: &Path,
    dst: &Path,
    remote: Remote,
    opts: Options,
    printer: &SyncPrinter,
) -> Exit {
    // --verify=written is what the receiver does anyway: every file's BLAKE3 is checked
    // before its rename. --verify (all) compares both trees by content afterwards.
    let verify_all = args.verify == Some(crate::cli::VerifyScope::All) && !args.dry_run;
    let bwlimit = match args.bwlimit.as_deref().map(sync_remote::parse_bwlimit) {
        None => 0,
        Some(Some(v)) => v,
        Some(None) => {
            return fail(
                Exit::Usage,
                &anyhow!("invalid --bwlimit value: write KiB per second like 500, or 10M, 2MB"),
            );
        }
    };
    // Without SRC and DST the paths came from the config: so do its remote shell and program.
    let cfg = if args.src.is_none() {
        match Config::resolve(global.config.as_deref()) {
            Ok(c) => Some(c),
            Err(e) => return fail(Exit::Config, &anyhow!(e)),
        }
    } else {
        None
    };
    let sync = cfg.as_ref().map(|c| &c.sync);
    let ro = RemoteOptions {
        rsh: args
            .rsh
            .clone()
            .or_else(|| sync.and_then(|s| s.rsh.clone()))
            .unwrap_or_else(|| "ssh".into()),
        remote_opsync: args
            .remote_opsync
            .clone()
            .or_else(|| sync.and_then(|s| s.remote_opsync.clone()))
            .unwrap_or_else(|| "opsync".into()),
        items: printer.wants_items(),
        engine: opts,
        compress: args.compress,
        bwlimit,
    };
    let started = Instant::now();
    let r = match &remote {
        Remote::Push(to) => sync_remote::push(src, to, &ro, printer),
        Remote::Pull(from) => sync_remote::pull(from, dst, &ro, printer),
    };
    let rr = match r {
        Ok(rr) => rr,
        Err(e) => {
            let exit = e.exit();
            printer.fatal_json(&e.to_string(), exit.code());
            return fail(exit, &anyhow!(e));
        }
    };
    let mut total = rr.report;
    let mut exit = Exit::from(total.status());
    let mut wire = (rr.sent, rr.received);
    let mut counts = None;
    if verify_all && matches!(exit, Exit::Ok | Exit::Vanished) {
        match verify_and_repair(&remote, src, dst, &ro, printer, &mut total, &mut wire) {
            Ok(c) => {
                exit = if c.remaining > 0 {
                    Exit::Differences
                } else {
                    Exit::from(total.status())
                };
                counts = Some(c);
            }
            Err(e) => {
                let exit = e.exit();
                printer.fatal_json(&e.to_string(), exit.code());
                return fail(exit, &anyhow!(e));
            }
        }
    }
    printer.finish_wire(&total, started.elapsed(), exit.code(), counts, Some(wire));
    if let Some(c) = counts.filter(|c| c.differences > 0) {
        printer.note(&format!(
            "opsync: verify: {} difference(s) between {} and {}; {} repaired by syncing them \
             again with contents compared, {} left",
            c.differences,
            src.display(),
            dst.display(),
            c.repaired,
            c.remaining
        ));
    }
    if total.deletions_disabled {
        printer.note("opsync: errors reading the source: deletions were skipped for this run");
    }
    if total.delete_limited && ro.engine.max_delete_all_or_nothing {
        // The half-of-DST guard of a run without a configured pair, as locally.
        crate::output::error(&super::rails::guard_message(dst, total.deleted));
    } else if total.delete_limited {
        printer.note("opsync: --max-delete limit reached: some deletions were skipped");
    }
    exit
}

/// One more run over the connection with the options `ro`.
fn again(
    remote: &Remote,
    src: &Path,
    dst: &Path,
    ro: &RemoteOptions,
    obs: &dyn sync_engine::Observer,
    wire: &mut (u64, u64),
) -> Result<sync_engine::Report, sync_remote::RemoteError> {
    let rr = match remote {
        Remote::Push(to) => sync_remote::push(src, to, ro, obs),
        Remote::Pull(from) => sync_remote::pull(from, dst, ro, obs),
    }?;
    wire.0 += rr.sent;
    wire.1 += rr.received;
    Ok(rr.report)
}

/// `--verify` (all) with a remote side: a dry run with contents compared (`-c -n`: every file
/// of the same size hashed on both ends) lists what differs; if anything does, a run with
/// contents compared repairs it and a second check counts what is left. Each difference is
/// printed as found (`opsync: verify: differs: ITEMIZE PATH`, or with --json its `difference`
/// events, as a local verify's), the repair's lines as a run's, then each path repaired.
fn verify_and_repair(
    remote: &Remote,
    src: &Path,
    dst: &Path,
    ro: &RemoteOptions,
    printer: &SyncPrinter,
    total: &mut sync_engine::Report,
    wire: &mut (u64, u64),
) -> Result<crate::events::VerifyCounts, sync_remote::RemoteError> {
    use super::remote_verify::{Found, SyncSink, check_options};
    let check = check_options(ro);
    let sink = SyncSink::new(printer, false);
    let found = Found::new(&sink);
    again(remote, src, dst, &check, &found, wire)?;
    let differences = found.count();
    if differences == 0 {
        return Ok(crate::events::VerifyCounts::default());
    }
    let paths = found.paths();
    let repair = RemoteOptions {
        engine: ro.engine.clone().checksum(true).itemize_unchanged(false),
        ..ro.clone()
    };
    let r = again(remote, src, dst, &repair, printer, wire)?;
    super::sync::add_counts(total, &r);
    let sink = SyncSink::new(printer, true);
    let left = Found::new(&sink);
    again(remote, src, dst, &check, &left, wire)?;
    let remaining = left.count();
    let left = left.paths();
    let mut repaired = 0;
    for p in paths.iter().filter(|p| !left.contains(*p)) {
        printer.repaired(p);
        repaired += 1;
    }
    Ok(crate::events::VerifyCounts {
        differences,
        repaired,
        remaining,
    })
}

/// `opsync serve`: the remote end, on stdin and stdout. Its errors reach the client over the
/// connection (which prints them), so nothing is printed here.
pub fn serve() -> Exit {
    // The descriptors themselves: std's stdout is line-buffered (a frame holding a newline
    // byte would be written in two), its stdin buffered again behind the frame reader.
    use std::os::fd::AsFd;
    let (input, output) = match (
        std::io::stdin().as_fd().try_clone_to_owned(),
        std::io::stdout().as_fd().try_clone_to_owned(),
    ) {
        (Ok(i), Ok(o)) => (std::fs::File::from(i), std::fs::File::from(o)),
        _ => return Exit::Protocol,
    };
    sync_remote::widen_pipe(input.as_fd());
    sync_remote::widen_pipe(output.as_fd());
    let r = sync_remote::serve(Box::new(input), Box::new(output));
    match r {
        Ok(()) => Exit::Ok,
        Err(e) => e.exit(),
    }
}
