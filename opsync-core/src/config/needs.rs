//! What the jobs will need when they run, checked by `opsync config check` so that a job does
//! not fail at its first step: the compose file of every stack an enabled job stops, pauses or
//! updates; certbot and nginx when sites are configured; the programs of configured commands;
//! a state folder and a metrics folder that can be written (and a state folder no other
//! configuration uses).

use std::path::{Path, PathBuf};

use super::{Config, ConfigError, JobKind, QuiesceMode, validate};

/// Every unmet need, each at the key it comes from.
pub(super) fn check(cfg: &Config) -> Vec<ConfigError> {
    let placer = validate::Placer::new(cfg);
    let place = |keys: &[&str], message: String| placer.at(keys, message);
    let mut errors = Vec::new();

    // Compose files of the stacks the enabled jobs use, each stack once.
    let mut stacks: Vec<(String, String, Vec<String>)> = Vec::new();
    for (name, job) in cfg.jobs.iter().filter(|(_, j)| j.enabled) {
        let mut uses = |stack: &str, step: &str, keys: Vec<String>| {
            if !stacks.iter().any(|(s, _, _)| s == stack) {
                stacks.push((stack.to_string(), format!("job {name} {step}"), keys));
            }
        };
        match job.kind {
            JobKind::Sync => {
                let d = &job.dev;
                if d.enabled && (d.stop_command.is_none() || d.start_command.is_none()) {
                    uses(
                        &d.stack,
                        "stops and starts",
                        vec!["jobs".into(), name.clone(), "dev".into()],
                    );
                }
                let q = &job.quiesce;
                if matches!(q.mode, QuiesceMode::Pause | QuiesceMode::Stop)
                    && (q.command.is_none() || q.resume_command.is_none())
                {
                    let step = if q.mode == QuiesceMode::Pause {
                        "pauses"
                    } else {
                        "stops"
                    };
                    uses(
                        &q.stack,
                        step,
                        vec!["jobs".into(), name.clone(), "quiesce".into()],
                    );
                }
            }
            JobKind::StackUpdate => {
                if let Some(s) = &job.stack {
                    uses(
                        s,
                        "updates",
                        vec!["jobs".into(), name.clone(), "stack".into()],
                    );
                }
            }
            JobKind::Command | JobKind::Certs => {}
        }
    }
    for (stack, user, job_keys) in &stacks {
        let Some(conf) = cfg.stacks.get(stack) else {
            continue; // reported by the checks across keys
        };
        let path = cfg.path(&conf.file);
        if !path.is_file() {
            let keys = ["stacks", stack.as_str(), "file"];
            let keys: Vec<&str> = if placer
                .text()
                .is_some_and(|t| validate::has_table(t, "stacks"))
            {
                keys.to_vec()
            } else {
                job_keys.iter().map(String::as_str).collect()
            };
            errors.push(place(
                &keys,
                format!(
                    "stack {stack}: compose file {} not found ({user} it): create it, set \
                     [stacks.{stack}] file = \"PATH\", or change the job so it does not use the \
                     stack",
                    path.display()
                ),
            ));
        }
    }

    // Programs.
    if !cfg.site.is_empty() {
        for (section, program) in [
            ("certbot", &cfg.certbot.program),
            ("nginx", &cfg.nginx.program),
        ] {
            if find_program(cfg, program).is_none() {
                errors.push(place(
                    &[section, "program"],
                    format!(
                        "[[site]] needs {section}, and `{}` is not installed or not executable: \
                         install it (apt-get install {section}) or set [{section}] program = \
                         \"PATH\"",
                        program.display()
                    ),
                ));
            }
        }
    }
    for (name, job) in cfg.jobs.iter().filter(|(_, j)| j.enabled) {
        let commands = [
            ("sync-command", &job.sync_command),
            ("verify-command", &job.verify_command),
            ("command", &job.command),
            ("on-failure", &job.on_failure),
        ];
        for (key, argv) in commands {
            check_command(
                cfg,
                argv.as_deref(),
                &mut errors,
                || {
                    (
                        vec!["jobs".into(), name.clone(), key.into()],
                        format!("job {name}: {key}"),
                    )
                },
                &place,
            );
        }
        if job.kind == JobKind::Sync {
            for (table, key, argv) in [
                ("quiesce", "command", &job.quiesce.command),
                ("quiesce", "resume-command", &job.quiesce.resume_command),
                ("dev", "stop-command", &job.dev.stop_command),
                ("dev", "start-command", &job.dev.start_command),
            ] {
                check_command(
                    cfg,
                    argv.as_deref(),
                    &mut errors,
                    || {
                        (
                            vec!["jobs".into(), name.clone(), table.into(), key.into()],
                            format!("job {name}: {table}.{key}"),
                        )
                    },
                    &place,
                );
            }
        }
    }
    check_command(
        cfg,
        cfg.general.on_failure.as_deref(),
        &mut errors,
        || {
            (
                vec!["general".into(), "on-failure".into()],
                "[general] on-failure".into(),
            )
        },
        &place,
    );

    // Folders opsync writes.
    let state = cfg.state_dir();
    if let Some(why) = not_writable(&state) {
        errors.push(place(
            &["general", "state-dir"],
            format!(
                "state folder {}: {why}: create it writable (or run as the user that can), or \
                 set [general] state-dir",
                state.display()
            ),
        ));
    } else if let Some(owner) = cfg.state_owner().filter(|o| *o != cfg.identity()) {
        errors.push(place(
            &["general", "state-dir"],
            format!(
                "state folder {} belongs to another configuration ({owner}): give this one its \
                 own [general] state-dir, or leave state-dir out",
                state.display()
            ),
        ));
    }
    if let Some(metrics) = cfg.metrics_file() {
        let dir = metrics.parent().unwrap_or(Path::new("/"));
        if let Some(why) = not_writable(dir) {
            errors.push(place(
                &["general", "metrics-file"],
                format!(
                    "metrics folder {}: {why}: create it writable, or set [general] \
                     metrics-file elsewhere (leave it out: no metrics)",
                    dir.display()
                ),
            ));
        }
    }
    errors
}

type Place<'a> = dyn Fn(&[&str], String) -> ConfigError + 'a;

fn check_command(
    cfg: &Config,
    argv: Option<&[String]>,
    errors: &mut Vec<ConfigError>,
    at: impl FnOnce() -> (Vec<String>, String),
    place: &Place<'_>,
) {
    let Some(program) = argv.and_then(<[String]>::first) else {
        return;
    };
    if program == "opsync" {
        return; // runs this binary
    }
    if find_program(cfg, Path::new(program)).is_none() {
        let (keys, what) = at();
        let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
        errors.push(place(
            &keys,
            format!(
                "{what}: program `{program}` is not installed or not executable (looked in PATH, \
                 or relative to the config folder): install it or write its full path"
            ),
        ));
    }
}

/// The program a command would run: a name with a slash resolved against the config folder
/// (commands run there), a bare name looked up in `PATH`.
fn find_program(cfg: &Config, program: &Path) -> Option<PathBuf> {
    let executable =
        |p: &Path| p.is_file() && rustix::fs::access(p, rustix::fs::Access::EXEC_OK).is_ok();
    if program.components().count() > 1 || program.is_absolute() {
        let p = cfg.path(program);
        return executable(&p).then_some(p);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join(program))
        .find(|p| executable(p))
}

/// Why `dir` cannot be created or written (none: it can).
fn not_writable(dir: &Path) -> Option<String> {
    let mut existing = dir;
    loop {
        if existing.exists() {
            break;
        }
        existing = existing.parent()?;
    }
    if !existing.is_dir() {
        return Some(format!("{} is not a folder", existing.display()));
    }
    if rustix::fs::access(existing, rustix::fs::Access::WRITE_OK).is_err() {
        return Some(if existing == dir {
            "not writable".to_string()
        } else {
            format!("cannot be created, {} is not writable", existing.display())
        });
    }
    None
}
