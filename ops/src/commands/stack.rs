//! `opsync stack ...`: load the config, run the stack operation, print the result, map errors
//! to exit codes (unknown stack: 1, missing compose file: 2, docker or compose failed: 10).

use crate::cli::{StackArgs, StackCommand};
use crate::commands::{Global, fail};
use crate::output::print;
use opsync_core::config::Config;
use opsync_core::exit::{Exit, ToExit};
use opsync_stacks::{self as compose, ServiceStatus, StackError};

pub fn run(global: &Global, args: StackArgs) -> Exit {
    let cfg = match Config::resolve(global.config.as_deref()) {
        Ok(cfg) => cfg,
        Err(e) => return fail(e.exit(), &e.into()),
    };
    if !matches!(args.command, StackCommand::Status(_)) {
        if let Err(e) = cfg.claim_state_dir() {
            return fail(e.exit(), &e.into());
        }
    }
    match run_command(&cfg, args.command) {
        Ok(()) => Exit::Ok,
        Err(e) => fail(e.exit(), &e.into()),
    }
}

/// One JSON object per line.
fn json_line(out: &mut String, v: &impl serde::Serialize) {
    out.push_str(&serde_json::to_string(v).unwrap_or_default());
    out.push('\n');
}

/// `stack NAME: WHAT` once `result` is done.
fn done(result: Result<(), StackError>, stack: &str, what: &str) -> Result<String, StackError> {
    result.map(|()| format!("stack {stack}: {what}"))
}

fn run_command(cfg: &Config, cmd: StackCommand) -> Result<(), StackError> {
    let mut out = String::new();
    match cmd {
        StackCommand::Up(a) => out = done(compose::up(cfg, &a.stack), &a.stack, "up and healthy")?,
        StackCommand::Down(a) => {
            out = done(
                compose::down(cfg, &a.stack),
                &a.stack,
                "down (volumes kept)",
            )?;
        }
        StackCommand::Stop(a) => out = done(compose::stop(cfg, &a.stack), &a.stack, "stopped")?,
        StackCommand::Start(a) => {
            out = done(
                compose::start(cfg, &a.stack),
                &a.stack,
                "started and healthy",
            )?;
        }
        StackCommand::Pause(a) => {
            out = done(
                compose::pause(cfg, &a.stack, &a.services),
                &a.stack,
                "paused",
            )?;
        }
        StackCommand::Unpause(a) => {
            out = done(
                compose::unpause(cfg, &a.stack, &a.services),
                &a.stack,
                "unpaused",
            )?;
        }
        StackCommand::Status(a) => {
            let stacks: Vec<String> = match a.stack {
                Some(s) => vec![s],
                None => cfg.stacks.keys().cloned().collect(),
            };
            let mut rows = Vec::new();
            for s in &stacks {
                rows.extend(compose::status(cfg, s)?);
            }
            if a.json {
                for r in &rows {
                    json_line(&mut out, r);
                }
            } else {
                out = render_status(&rows);
            }
        }
        StackCommand::Update(a) => {
            let report = compose::update(cfg, &a.stack)?;
            if a.json {
                json_line(&mut out, &report);
            }
            if report.rolled_back {
                print(&out);
                let reason = report.failure.unwrap_or_default();
                return Err(StackError::Unhealthy {
                    stack: a.stack.clone(),
                    reason: format!(
                        "update failed ({reason}); rolled back to the images running before: \
                         fix the new images, then run `opsync stack update {}` again",
                        a.stack
                    ),
                });
            }
            if !a.json {
                out = if report.changed.is_empty() {
                    format!("stack {}: up to date and healthy", a.stack)
                } else {
                    format!(
                        "stack {}: updated {} and healthy",
                        a.stack,
                        report.changed.join(", ")
                    )
                };
            }
        }
        StackCommand::Rollback(a) => {
            let report = compose::rollback(cfg, &a.stack)?;
            if a.json {
                json_line(&mut out, &report);
            } else {
                out = format!(
                    "stack {}: rolled back to the deployment of {} ({}); database migrations \
                     are not undone",
                    a.stack,
                    report.to,
                    if report.changed.is_empty() {
                        "no service changed".to_owned()
                    } else {
                        format!("recreated {}", report.changed.join(", "))
                    }
                );
            }
        }
        StackCommand::Prune(a) => {
            let actions = compose::prune(cfg, a.dry_run)?;
            let verb = if a.dry_run { "would remove" } else { "removed" };
            for act in &actions {
                if a.json {
                    let mut v = serde_json::to_value(act).unwrap_or_default();
                    v["dry_run"] = a.dry_run.into();
                    json_line(&mut out, &v);
                } else if act.untag.is_empty() {
                    out.push_str(&format!("{verb} image {} ({})\n", act.id, act.reason));
                } else {
                    out.push_str(&format!(
                        "{verb} image {} ({}): {}\n",
                        act.id,
                        act.reason,
                        act.untag.join(", ")
                    ));
                }
            }
            if actions.is_empty() && !a.json {
                out = "nothing to prune".to_owned();
            }
        }
    }
    print(&out);
    Ok(())
}

/// The `stack status` table.
pub fn render_status(rows: &[ServiceStatus]) -> String {
    let short = |id: &Option<String>| {
        id.as_deref()
            .map(|i| i.trim_start_matches("sha256:").chars().take(12).collect())
            .unwrap_or_else(|| "-".to_owned())
    };
    let opt = |s: &Option<String>| s.clone().unwrap_or_else(|| "-".to_owned());
    let rows: Vec<[String; 8]> = rows
        .iter()
        .map(|r| {
            [
                r.stack.clone(),
                r.service.clone(),
                opt(&r.container),
                r.state.clone(),
                opt(&r.health),
                opt(&r.image),
                short(&r.image_id),
                r.digest
                    .as_deref()
                    .and_then(|d| d.split('@').nth(1))
                    .map(|d| d.chars().take(19).collect())
                    .unwrap_or_else(|| "-".to_owned()),
            ]
        })
        .collect();
    crate::output::table(
        [
            "STACK",
            "SERVICE",
            "CONTAINER",
            "STATE",
            "HEALTH",
            "IMAGE",
            "ID",
            "DIGEST",
        ],
        &rows,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_table_aligns_columns_and_shortens_ids() {
        let rows = vec![
            ServiceStatus {
                stack: "prod".into(),
                project: "prod".into(),
                service: "web".into(),
                container: Some("prod_web_1".into()),
                state: "running".into(),
                health: Some("healthy".into()),
                image: Some("reg/app:latest".into()),
                image_id: Some("sha256:0123456789abcdef".into()),
                digest: Some("reg/app@sha256:fedcba9876543210fedc".into()),
            },
            ServiceStatus::missing("prod", "prod", "worker".into()),
        ];
        let t = render_status(&rows);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(
            lines[0].starts_with("STACK  SERVICE  CONTAINER   STATE"),
            "{t}"
        );
        assert!(lines[1].contains("0123456789ab "), "{t}");
        assert!(lines[1].ends_with("sha256:fedcba987654"), "{t}");
        assert!(lines[2].contains("worker   -           missing"), "{t}");
    }
}
