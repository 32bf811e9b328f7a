//! `opsync schedule next JOB -n 5`: the next fire times of a job.

use chrono::{DateTime, Utc};

use crate::cli::ScheduleCommand;
use crate::commands::{Global, fail};
use crate::output::print;
use opsync_core::config::Config;
use opsync_core::exit::Exit;
use opsync_core::scheduler::{Timing, Zone};

pub fn run(global: &Global, cmd: ScheduleCommand) -> Exit {
    let ScheduleCommand::Next(args) = cmd;
    let cfg = match Config::resolve(global.config.as_deref()) {
        Ok(c) => c,
        Err(e) => return fail(Exit::Config, &e.into()),
    };
    let Some(job) = cfg.jobs.get(&args.job) else {
        return fail(Exit::Usage, &anyhow::anyhow!(cfg.unknown_job(&args.job)));
    };
    let after = match &args.after {
        None => Utc::now(),
        Some(s) => match DateTime::parse_from_rfc3339(s) {
            Ok(t) => t.with_timezone(&Utc),
            Err(e) => {
                return fail(
                    Exit::Usage,
                    &anyhow::anyhow!(
                        "--after {s}: {e}: write RFC 3339, for example 2026-03-28T12:00:00Z or \
                         2026-03-28T12:00:00+01:00"
                    ),
                );
            }
        },
    };
    let timing = Timing::of(&cfg, job);
    let mut out = String::new();
    for t in timing.upcoming(after, args.count) {
        let local = match timing.zone {
            Zone::Local => t.with_timezone(&chrono::Local).to_rfc3339(),
            Zone::Named(tz) => t.with_timezone(&tz).to_rfc3339(),
        };
        if args.json {
            out.push_str(
                &serde_json::json!({
                    "job": args.job,
                    "time": local,
                    "utc": t.to_rfc3339(),
                    "timezone": timing.zone.to_string(),
                })
                .to_string(),
            );
        } else {
            out.push_str(&format!(
                "{}  ({})",
                timing.display(t),
                t.format("%Y-%m-%dT%H:%M:%SZ")
            ));
        }
        out.push('\n');
    }
    print(&out);
    Exit::Ok
}
