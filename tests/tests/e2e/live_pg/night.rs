//! What one night of the live database test gave, and how it is reported: one line per night
//! for the summary, one line per check, and on failure everything else (the job's output and
//! state, the last lines of both servers' logs).

use std::fmt::Write as _;

use opsync_tests::pg::checks::Check;
use opsync_tests::pg::server::tail;
use opsync_tests::run::Run;

use super::JOB;

/// What one night gave.
pub(super) struct Night {
    pub n: usize,
    pub job: Run,
    /// `state/jobs/JOB.json` as written by the job (or why it could not be read).
    pub state: String,
    pub checks: Vec<Check>,
    pub dev_log: String,
    pub prod_log: String,
    /// The ledger's acknowledged id recorded by the quiesce script once production was frozen.
    pub frozen_ack: Option<u64>,
    pub acked_before: u64,
    pub acked_after: u64,
    pub load_seconds: f64,
    pub seconds: f64,
}

impl Night {
    /// True when a check failed (the job's own exit code aside).
    pub fn copy_inconsistent(&self) -> bool {
        self.checks.iter().any(|c| c.outcome.is_err())
    }

    /// True when a check failed or the job did not succeed: a failed night of the frozen test.
    pub fn failed(&self) -> bool {
        self.copy_inconsistent() || self.job.code != 0
    }

    fn failed_checks(&self) -> Vec<&'static str> {
        self.checks
            .iter()
            .filter(|c| c.outcome.is_err())
            .map(|c| c.name)
            .collect()
    }

    fn state_json(&self) -> Option<serde_json::Value> {
        serde_json::from_str(&self.state).ok()
    }

    /// How long the job says production was quiesced.
    fn paused_seconds(&self) -> Option<f64> {
        self.state_json()?.get("paused_seconds")?.as_f64()
    }

    /// The files pass 2 copied, from the job's state.
    pub fn pass2_files(&self) -> Option<u64> {
        pass2_files(&self.state_json()?)
    }

    /// Files a pass copied twice and still saw change, by step and path below `data/`, each
    /// once: the job logs each as a warning with `step="pass-1" path=PATH
    /// kind=changed-during-copy`.
    fn kept_changing(&self) -> String {
        let mut steps: Vec<(&str, Vec<&str>)> = Vec::new();
        for l in self.job.stderr.lines() {
            if !l.contains("kind=changed-during-copy") {
                continue;
            }
            let field = |name: &str| {
                l.split_once(&format!(" {name}="))
                    .and_then(|(_, rest)| rest.split(' ').next())
                    .map(|v| v.trim_matches('"'))
            };
            let (Some(step), Some(path)) = (field("step"), field("path")) else {
                continue;
            };
            match steps.iter_mut().find(|(s, _)| *s == step) {
                Some((_, paths)) if !paths.contains(&path) => paths.push(path),
                Some(_) => {}
                None => steps.push((step, vec![path])),
            }
        }
        steps
            .iter()
            .map(|(step, paths)| format!("{step}: {}", paths.join(" ")))
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// The warnings (changed or vanished while copied) of the pass-2 step in the state.
    pub fn pass2_warnings(&self) -> u64 {
        self.state_json()
            .as_ref()
            .and_then(pass2_step)
            .and_then(|s| s.get("warnings")?.get("count")?.as_u64())
            .unwrap_or(0)
    }

    /// What pass 2 repaired: files whose dev copy had production's size and mtime but other
    /// content (`repaired` of the pass-2 step in the state).
    fn pass2_repaired(&self) -> Option<u64> {
        pass2_step(&self.state_json()?)?
            .get("repaired")?
            .get("count")?
            .as_u64()
    }

    /// One line for the summary.
    pub fn line(&self) -> String {
        let failed = self.failed_checks();
        let opt = |v: Option<String>| v.unwrap_or_else(|| "-".into());
        format!(
            "night {:>2}: job exit {:>2}, paused {} s, pass 2 copied {} files and repaired {}, \
             kept changing while copied: [{}], ledger acked {}..{} (frozen at {}), {}, {:.1} s \
             ({:.1} s job and load)",
            self.n,
            self.job.code,
            opt(self.paused_seconds().map(|s| format!("{s:.2}"))),
            opt(self.pass2_files().map(|f| f.to_string())),
            self.pass2_repaired().unwrap_or(0),
            self.kept_changing(),
            self.acked_before,
            self.acked_after,
            opt(self.frozen_ack.map(|a| a.to_string())),
            if failed.is_empty() {
                "dev copy consistent".to_string()
            } else {
                format!("FAILED: {}", failed.join(", "))
            },
            self.seconds,
            self.load_seconds
        )
    }

    /// One line per check.
    pub fn checks_text(&self) -> String {
        let mut s = String::new();
        for c in &self.checks {
            match &c.outcome {
                Ok(what) => writeln!(s, "  ok     {}: {what}", c.name).unwrap(),
                Err(what) => writeln!(s, "  FAILED {}: {what}", c.name).unwrap(),
            }
        }
        s
    }

    /// Everything about the night: each check, the job's output and state, the logs.
    pub fn report(&self) -> String {
        let mut s = format!("===== {}\n{}", self.line(), self.checks_text());
        write!(
            s,
            "--- opsync: {} (exit {})\n--- stdout\n{}--- stderr (last lines)\n{}\
             --- state/jobs/{JOB}.json\n{}\n--- dev postgres log (last lines)\n{}\
             --- production postgres log (last lines)\n{}",
            self.job.command,
            self.job.code,
            self.job.stdout,
            tail(&self.job.stderr, 40),
            self.state,
            self.dev_log,
            self.prod_log
        )
        .unwrap();
        s
    }
}

/// The summary lines of all nights.
pub(super) fn summary(results: &[Night]) -> String {
    results.iter().map(|n| format!("{}\n", n.line())).collect()
}

fn pass2_step(state: &serde_json::Value) -> Option<&serde_json::Value> {
    state
        .get("steps")?
        .as_array()?
        .iter()
        .find(|s| s.get("name").and_then(|n| n.as_str()) == Some("pass-2"))
}

/// The `files` of the pass-2 step.
fn pass2_files(state: &serde_json::Value) -> Option<u64> {
    pass2_step(state)?.get("files")?.as_u64()
}
