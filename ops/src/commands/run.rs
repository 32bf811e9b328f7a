//! `opsync run JOB`: one run now, in the foreground, with the daemon's locking and state.
//! SIGINT/SIGTERM stop the current step; the clean-up steps (resume production, start the dev
//! stack) still run.

use std::fmt::Write as _;

use crate::cli::RunArgs;
use crate::commands::config::{load_checked, print_stdout};
use crate::commands::{Global, fail};
use crate::exit::Exit;
use crate::jobs::{Trigger, run_job};
use crate::scheduler::Cancel;
use crate::state::{JobState, StateStore};

pub fn run(global: &Global, args: RunArgs) -> Exit {
    let cfg = match load_checked(global) {
        Ok(c) => c,
        Err(e) => return e,
    };
    if !cfg.jobs.contains_key(&args.job) {
        return fail(Exit::Usage, &anyhow::anyhow!(cfg.unknown_job(&args.job)));
    }
    let cancel = Cancel::new();
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        let _ = signal_hook::flag::register(sig, cancel.flag());
    }
    let exit = match run_job(&cfg, &args.job, Trigger::Manual, &cancel) {
        Ok(e) => e,
        Err(e) => return fail(Exit::Failed, &e.context(format!("job {}", args.job))),
    };
    if exit == Exit::Locked {
        eprintln!(
            "opsync: error: job {} is already running (daemon or another `opsync run`): try again \
             when it has finished",
            args.job
        );
        return exit;
    }
    let state = StateStore::new(&cfg.state_dir())
        .load(&args.job)
        .ok()
        .flatten();
    if let Some(st) = state {
        if args.json {
            print_stdout(&format!(
                "{}\n",
                serde_json::to_string(&st).unwrap_or_default()
            ));
        } else {
            print_stdout(&render(&st));
        }
    }
    exit
}

fn render(st: &JobState) -> String {
    let mut s = String::new();
    let _ = write!(
        s,
        "{}: {} in {:.1}s",
        st.job,
        st.result.as_deref().unwrap_or("?"),
        st.duration_seconds.unwrap_or(0.0)
    );
    if let Some(p) = st.paused_seconds {
        let _ = write!(s, ", production paused {p:.1}s");
    }
    if let Some(b) = st.bytes {
        let _ = write!(s, ", {b} bytes copied");
    }
    s.push('\n');
    for n in st.notes() {
        let _ = writeln!(s, "  {n}");
    }
    for step in &st.steps {
        let _ = write!(
            s,
            "  {:<10} {:<10} {:>8.1}s",
            step.name, step.result, step.duration_seconds
        );
        if let Some(m) = &step.message {
            let _ = write!(s, "  {m}");
        }
        s.push('\n');
    }
    s
}
