//! `opsync status`: each job's schedule, next run, last run and result; under the table, for a
//! nightly sync, the differences its last run repaired or left (a count and the first paths:
//! `nightly-sync: 3 differences repaired: a, b, c`).

use chrono::Utc;
use serde_json::json;

use crate::cli::StatusArgs;
use crate::commands::config::print_stdout;
use crate::commands::{Global, fail};
use crate::config::Config;
use crate::exit::Exit;
use crate::scheduler::Timing;
use crate::state::{JobState, StateStore};

pub fn run(global: &Global, args: StatusArgs) -> Exit {
    let cfg = match Config::resolve(global.config.as_deref()) {
        Ok(c) => c,
        Err(e) => return fail(Exit::Config, &e.into()),
    };
    let now = Utc::now();
    let store = StateStore::new(&cfg.state_dir());
    let mut rows = Vec::new();
    let mut notes = Vec::new();
    let mut out = String::new();
    for (name, job) in &cfg.jobs {
        let timing = Timing::of(&cfg, job);
        let next = job.enabled.then(|| timing.next_after(now)).flatten();
        let st = match store.load(name) {
            Ok(s) => s.unwrap_or_default(),
            Err(e) => {
                eprintln!("opsync: warning: {e}");
                JobState::default()
            }
        };
        // A run recorded as going whose lock nobody holds was interrupted (crash, kill -9).
        let running = st.running && crate::lock::is_held(&cfg.state_dir(), name);
        let result = if running {
            "running".to_string()
        } else if st.running {
            "interrupted".to_string()
        } else {
            st.result.clone().unwrap_or_else(|| "never run".into())
        };
        if args.json {
            let v = json!({
                "job": name,
                "kind": job.kind.as_str(),
                "schedule": job.schedule.text,
                "timezone": timing.zone.to_string(),
                "enabled": job.enabled,
                "next_run": next.map(|t| t.to_rfc3339()),
                "last_start": st.last_start.map(|t| t.to_rfc3339()),
                "last_end": st.last_end.map(|t| t.to_rfc3339()),
                "last_success": st.last_success.map(|t| t.to_rfc3339()),
                "result": result,
                "exit_code": st.exit_code,
                "duration_seconds": st.duration_seconds,
                "bytes": st.bytes,
                "files": st.files,
                "paused_seconds": st.paused_seconds,
                "failed_step": st.failed_step,
                "message": st.message,
                "repaired": st.repaired,
                "remaining": st.remaining,
            });
            out.push_str(&v.to_string());
            out.push('\n');
        } else {
            rows.push([
                name.clone(),
                job.kind.as_str().to_string(),
                format!("{} {}", job.schedule.text, timing.zone),
                match next {
                    Some(t) => timing.display(t),
                    None if !job.enabled => "disabled".into(),
                    None => "-".into(),
                },
                st.last_start.map_or("-".into(), |t| timing.display(t)),
                result,
                st.duration_seconds
                    .map_or("-".into(), |d| format!("{d:.1}s")),
                st.paused_seconds.map_or("-".into(), |d| format!("{d:.1}s")),
                st.failed_step.clone().unwrap_or_else(|| "-".into()),
            ]);
            if !running {
                notes.extend(st.notes().into_iter().map(|n| format!("{name}: {n}")));
            }
        }
    }
    if !args.json {
        out = table(
            [
                "JOB",
                "KIND",
                "SCHEDULE",
                "NEXT RUN",
                "LAST START",
                "RESULT",
                "DURATION",
                "PAUSED",
                "FAILED STEP",
            ],
            &rows,
        );
        if !notes.is_empty() {
            out.push('\n');
            for n in notes {
                out.push_str(&n);
                out.push('\n');
            }
        }
    }
    print_stdout(&out);
    Exit::Ok
}

fn table<const N: usize>(head: [&str; N], rows: &[[String; N]]) -> String {
    let mut w: Vec<usize> = head.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            w[i] = w[i].max(c.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: Vec<&str>| {
        let mut l = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == N {
                l.push_str(c);
            } else {
                l.push_str(&format!("{c:<width$}  ", width = w[i]));
            }
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    line(head.to_vec());
    for r in rows {
        line(r.iter().map(String::as_str).collect());
    }
    out
}
