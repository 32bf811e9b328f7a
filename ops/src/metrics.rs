//! Prometheus text-format metrics for node_exporter's textfile collector, written atomically
//! after every run from the state of all jobs (so the file always describes every job).

use std::fmt::Write as _;
use std::path::Path;

use crate::state::JobState;

/// Renders the metrics of `jobs`.
pub fn render(jobs: &[JobState]) -> String {
    let mut out = String::new();
    let mut family = |name: &str, kind: &str, help: &str, rows: Vec<(String, f64)>| {
        if rows.is_empty() {
            return;
        }
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        for (labels, v) in rows {
            let _ = writeln!(out, "{name}{{{labels}}} {v}");
        }
    };
    let job = |j: &JobState| format!("job=\"{}\"", escape(&j.job));
    let per_job = |f: &dyn Fn(&JobState) -> Option<f64>| -> Vec<(String, f64)> {
        jobs.iter()
            .filter_map(|j| f(j).map(|v| (job(j), v)))
            .collect()
    };
    let ts =
        |t: Option<chrono::DateTime<chrono::Utc>>| t.map(|t| t.timestamp_millis() as f64 / 1000.0);

    family(
        "opsync_job_last_success_timestamp_seconds",
        "gauge",
        "End of the last successful run (Unix time).",
        per_job(&|j| ts(j.last_success)),
    );
    family(
        "opsync_job_last_start_timestamp_seconds",
        "gauge",
        "Start of the last run (Unix time).",
        per_job(&|j| ts(j.last_start)),
    );
    family(
        "opsync_job_last_end_timestamp_seconds",
        "gauge",
        "End of the last run (Unix time).",
        per_job(&|j| ts(j.last_end)),
    );
    family(
        "opsync_job_last_duration_seconds",
        "gauge",
        "Duration of the last run.",
        per_job(&|j| j.duration_seconds),
    );
    family(
        "opsync_job_last_exit_code",
        "gauge",
        "Exit code of the last run (0 ok; rsync's codes for sync results).",
        per_job(&|j| j.exit_code.map(f64::from)),
    );
    family(
        "opsync_job_last_success",
        "gauge",
        "1 when the last run succeeded, else 0.",
        per_job(&|j| j.exit_code.map(|c| if c == 0 { 1.0 } else { 0.0 })),
    );
    family(
        "opsync_job_running",
        "gauge",
        "1 while a run is going.",
        per_job(&|j| Some(if j.running { 1.0 } else { 0.0 })),
    );
    family(
        "opsync_job_last_bytes",
        "gauge",
        "Bytes copied by the last run.",
        per_job(&|j| j.bytes.map(|b| b as f64)),
    );
    family(
        "opsync_job_last_files",
        "gauge",
        "Files transferred by the last run.",
        per_job(&|j| j.files.map(|b| b as f64)),
    );
    family(
        "opsync_job_last_paused_seconds",
        "gauge",
        "How long production was paused or stopped in the last run.",
        per_job(&|j| j.paused_seconds),
    );
    family(
        "opsync_job_last_repaired",
        "gauge",
        "Files the last run's verification found different and copied again (nightly job).",
        per_job(&|j| j.repaired.as_ref().map(|p| p.count as f64)),
    );
    family(
        "opsync_job_last_differences_left",
        "gauge",
        "Differences the last run's verification found and could not repair (nightly job).",
        per_job(&|j| j.remaining.as_ref().map(|p| p.count as f64)),
    );
    let mut steps = Vec::new();
    let mut step_ok = Vec::new();
    for j in jobs {
        for s in &j.steps {
            let l = format!("{},step=\"{}\"", job(j), escape(&s.name));
            steps.push((l.clone(), s.duration_seconds));
            step_ok.push((l, if s.exit_code == 0 { 0.0 } else { 1.0 }));
        }
    }
    family(
        "opsync_job_step_duration_seconds",
        "gauge",
        "Duration of each step of the last run.",
        steps,
    );
    family(
        "opsync_job_step_failed",
        "gauge",
        "1 when the step failed in the last run.",
        step_ok,
    );
    let mut certs = Vec::new();
    for j in jobs {
        for c in &j.certs {
            if let Some(d) = c.days_left {
                certs.push((
                    format!(
                        "name=\"{}\",source=\"{}\"",
                        escape(&c.name),
                        escape(&c.source)
                    ),
                    d,
                ));
            }
        }
    }
    family(
        "opsync_cert_days_left",
        "gauge",
        "Days until the certificate expires.",
        certs,
    );
    out
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Writes the metrics of `jobs` to `path` atomically.
pub fn write(path: &Path, jobs: &[JobState]) -> std::io::Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    crate::state::write_atomic(path, render(jobs).as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::StepRecord;

    #[test]
    fn renders_one_line_per_job_and_step() {
        let j = JobState {
            job: "nightly-sync".into(),
            exit_code: Some(23),
            duration_seconds: Some(12.5),
            bytes: Some(1000),
            paused_seconds: Some(1.25),
            steps: vec![StepRecord {
                name: "pass-2".into(),
                result: "partial".into(),
                exit_code: 23,
                duration_seconds: 2.0,
                message: None,
                detail: Default::default(),
            }],
            ..JobState::default()
        };
        let text = render(&[j]);
        for line in [
            "opsync_job_last_exit_code{job=\"nightly-sync\"} 23",
            "opsync_job_last_success{job=\"nightly-sync\"} 0",
            "opsync_job_last_duration_seconds{job=\"nightly-sync\"} 12.5",
            "opsync_job_last_bytes{job=\"nightly-sync\"} 1000",
            "opsync_job_last_paused_seconds{job=\"nightly-sync\"} 1.25",
            "opsync_job_step_failed{job=\"nightly-sync\",step=\"pass-2\"} 1",
            "# TYPE opsync_job_last_duration_seconds gauge",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            );
        }
        assert!(!text.contains("last_success_timestamp"));
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\n"), "a\\\"b\\\\c\\n");
    }
}
