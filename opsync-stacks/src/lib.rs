//! # opsync-stacks
//!
//! Compose stacks: `docker compose` (v2) or `docker-compose` (v1.29) with an explicit project
//! name per stack, safe updates with rollback, and pruning that never touches another stack.
//! It reads the `[stacks.NAME]` sections of `opsync_core`'s config, runs docker and compose
//! through `opsync_core::process`, and locks a stack with `opsync_core::lock` (the lock the
//! scheduler's jobs take too).
//!
//! The surface is the operations at this level ([`up`], [`down`], [`stop`], [`start`],
//! [`pause`], [`unpause`], [`status`], [`update`](update()), [`rollback`], [`prune`](prune())),
//! their reports and [`StackError`]. Each takes the [`Config`] and a stack name, as the commands
//! and the scheduler's jobs call them; errors are one line each, naming the stack and what to
//! do, and map to exit codes through `opsync_core::exit::ToExit`.
//!
//! Private modules, one concern each:
//! - `tool`: which compose tool this machine has; is the engine reachable;
//! - `engine`: containers and images as the engine sees them (by compose labels);
//! - `health`: waiting for healthchecks (pure verdict + poll loop);
//! - `history`: the deployment history in `STATE_DIR/stacks.json`;
//! - `update`: `update` and `rollback`;
//! - `prune`: what `prune` may remove (pure plan) and removing it.

mod engine;
mod error;
mod health;
mod history;
mod prune;
mod tool;
mod update;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use serde::Serialize;

use engine::ContainerInfo;
pub use error::StackError;
pub use history::ServiceImage;
use opsync_core::config::Config;
use opsync_core::config::stacks::StackConfig;
use opsync_core::process::{Level, Output};
pub use prune::PruneAction;
use tool::{ComposeTool, Docker};
pub use update::{RollbackReport, UpdateReport};

/// How often container health is polled while waiting.
const HEALTH_POLL: Duration = Duration::from_millis(500);

/// One configured stack, ready to run compose commands.
#[derive(Debug, Clone)]
pub(crate) struct Stack {
    pub name: String,
    pub project: String,
    /// Absolute (or config-relative) path of the compose file.
    pub file: PathBuf,
    pub conf: StackConfig,
    pub tool: ComposeTool,
    pub docker: Docker,
    pub state_path: PathBuf,
}

/// Checks that `stack` is configured and returns its settings and project name.
fn configured<'a>(cfg: &'a Config, stack: &str) -> Result<(&'a StackConfig, String), StackError> {
    let conf = cfg
        .stacks
        .get(stack)
        .ok_or_else(|| StackError::UnknownStack {
            stack: stack.to_owned(),
            known: if cfg.stacks.is_empty() {
                "none".to_owned()
            } else {
                cfg.stacks.keys().cloned().collect::<Vec<_>>().join(", ")
            },
        })?;
    let project = conf.project_name(stack);
    if !valid_project(&project) {
        return Err(StackError::BadProject {
            stack: stack.to_owned(),
            project,
        });
    }
    Ok((conf, project))
}

/// Compose project names both generations accept: `[a-z0-9][a-z0-9_-]*`.
pub(crate) fn valid_project(p: &str) -> bool {
    let mut chars = p.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase() || c.is_ascii_digit())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

/// The engine, with the longest command timeout of the configured stacks.
fn docker_for(cfg: &Config) -> Docker {
    let timeout = cfg
        .stacks
        .values()
        .map(StackConfig::command_timeout)
        .max()
        .unwrap_or(Duration::from_secs(600));
    Docker { timeout }
}

impl Stack {
    /// Resolves `stack` from the config, checks its compose file, the engine and the compose
    /// tool, in that order.
    pub fn open(cfg: &Config, stack: &str) -> Result<Stack, StackError> {
        let (conf, project) = configured(cfg, stack)?;
        let file = cfg.path(&conf.file);
        if !file.is_file() {
            return Err(StackError::ComposeFileMissing {
                stack: stack.to_owned(),
                path: file,
            });
        }
        let docker = Docker {
            timeout: conf.command_timeout(),
        };
        docker.ping()?;
        let tool = tool::compose_tool(conf.command_timeout())?;
        Ok(Stack {
            name: stack.to_owned(),
            project,
            file,
            conf: conf.clone(),
            tool,
            docker,
            state_path: history::state_path(&cfg.state_dir()),
        })
    }

    /// Takes this stack's lock for an operation that changes it.
    pub fn lock(&self) -> Result<history::StackLock, StackError> {
        let dir = self
            .state_path
            .parent()
            .unwrap_or(std::path::Path::new("."));
        history::lock_stack(dir, &self.name)
    }

    /// Runs `compose -f FILE -p PROJECT ARGS`.
    pub fn compose<I, S>(&self, args: I, level: Level) -> Result<Output, StackError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        let cmd = self
            .tool
            .cmd([
                "-f".as_ref(),
                self.file.as_os_str(),
                "-p".as_ref(),
                self.project.as_ref(),
                "--ansi".as_ref(),
                "never".as_ref(),
            ])
            .args(args)
            .timeout(self.conf.command_timeout())
            .level(level);
        cmd.run().map_err(|source| StackError::Command {
            stack: self.name.clone(),
            error: Box::new(source),
        })
    }

    /// The stack's containers (all states, no one-off containers).
    pub fn containers(&self) -> Result<Vec<ContainerInfo>, StackError> {
        engine::project_containers(&self.docker, &self.name, &self.project)
    }

    /// The services the compose file defines (`config --services`).
    pub fn services(&self) -> Result<Vec<String>, StackError> {
        let out = self.compose(["config", "--services"], Level::Quiet)?;
        let mut s: Vec<String> = out
            .stdout
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect();
        s.sort();
        Ok(s)
    }

    /// Waits until every container of a service in the compose file runs and passes its
    /// healthcheck; the error says why not. Orphans (services removed from the file) are left
    /// out: `up -d` does not touch them.
    pub fn wait_healthy(&self) -> Result<Result<(), String>, StackError> {
        let defined = self.services()?;
        health::wait(self.conf.health_timeout(), HEALTH_POLL, || {
            let mut c = self.containers()?;
            c.retain(|c| defined.contains(&c.service));
            Ok(c)
        })
    }

    fn unhealthy(&self, reason: String) -> StackError {
        StackError::Unhealthy {
            stack: self.name.clone(),
            reason,
        }
    }
}

/// Opens `stack`, takes its lock and runs `f` on it: how every operation that changes a stack
/// begins.
fn locked<R>(
    cfg: &Config,
    stack: &str,
    f: impl FnOnce(&Stack) -> Result<R, StackError>,
) -> Result<R, StackError> {
    let s = Stack::open(cfg, stack)?;
    let _lock = s.lock()?;
    f(&s)
}

impl Stack {
    /// `compose ARGS` (a command that changes the stack, logged at info), then, when `healthy`,
    /// waits until the stack is healthy.
    fn change<I, S>(&self, args: I, healthy: bool) -> Result<(), StackError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        self.compose(args, Level::Loud)?;
        if healthy {
            self.wait_healthy()?.map_err(|r| self.unhealthy(r))?;
        }
        Ok(())
    }
}

/// `stack up STACK`: `up -d`, then waits for health.
pub fn up(cfg: &Config, stack: &str) -> Result<(), StackError> {
    locked(cfg, stack, |s| s.change(["up", "-d"], true))
}

/// `stack down STACK`: removes the stack's containers and networks, never its volumes.
pub fn down(cfg: &Config, stack: &str) -> Result<(), StackError> {
    locked(cfg, stack, |s| s.change(["down"], false))
}

/// Stops every service of `stack` (`compose stop`).
pub fn stop(cfg: &Config, stack: &str) -> Result<(), StackError> {
    locked(cfg, stack, |s| s.change(["stop"], false))
}

/// Starts every service of `stack` (`compose start`, or `up -d` when never created), then
/// waits for health.
pub fn start(cfg: &Config, stack: &str) -> Result<(), StackError> {
    locked(cfg, stack, |s| {
        if s.containers()?.is_empty() {
            s.change(["up", "-d"], true)
        } else {
            s.change(["start"], true)
        }
    })
}

/// Pauses the given services of `stack` (all when empty).
pub fn pause(cfg: &Config, stack: &str, services: &[String]) -> Result<(), StackError> {
    locked(cfg, stack, |s| {
        s.change(
            std::iter::once("pause").chain(services.iter().map(String::as_str)),
            false,
        )
    })
}

/// Unpauses the given services of `stack` (all when empty).
pub fn unpause(cfg: &Config, stack: &str, services: &[String]) -> Result<(), StackError> {
    locked(cfg, stack, |s| {
        s.change(
            std::iter::once("unpause").chain(services.iter().map(String::as_str)),
            false,
        )
    })
}

/// One row of `stack status`.
#[derive(Debug, Clone, Serialize)]
pub struct ServiceStatus {
    pub stack: String,
    pub project: String,
    pub service: String,
    /// Container name; none when the service has no container.
    pub container: Option<String>,
    /// `running`, `exited`, `paused`, ... or `missing`.
    pub state: String,
    pub health: Option<String>,
    /// The reference the service asks for.
    pub image: Option<String>,
    pub image_id: Option<String>,
    /// Registry digest (`repo@sha256:...`) of the image, when it came from a registry.
    pub digest: Option<String>,
}

impl ServiceStatus {
    /// A service of the compose file that has no container.
    pub fn missing(stack: &str, project: &str, service: String) -> ServiceStatus {
        ServiceStatus {
            stack: stack.to_owned(),
            project: project.to_owned(),
            service,
            container: None,
            state: "missing".into(),
            health: None,
            image: None,
            image_id: None,
            digest: None,
        }
    }
}

/// `stack status STACK`: every service's state, health and image.
pub fn status(cfg: &Config, stack: &str) -> Result<Vec<ServiceStatus>, StackError> {
    let s = Stack::open(cfg, stack)?;
    let services = s.services()?;
    let containers = s.containers()?;
    let ids: BTreeSet<String> = containers.iter().map(|c| c.image_id.clone()).collect();
    let digests = engine::repo_digests(&s.docker, &s.name, &ids)?;
    let mut rows = Vec::new();
    let mut seen = BTreeSet::new();
    for c in &containers {
        seen.insert(c.service.clone());
        let repo = engine::repository(&c.image_ref);
        let digest = digests.get(&c.image_id).and_then(|ds| {
            ds.iter()
                .find(|d| d.starts_with(&format!("{repo}@")))
                .or(ds.first())
                .cloned()
        });
        rows.push(ServiceStatus {
            stack: s.name.clone(),
            project: s.project.clone(),
            service: c.service.clone(),
            container: Some(c.name.clone()),
            state: c.state.clone(),
            health: c.health.clone(),
            image: Some(c.image_ref.clone()),
            image_id: Some(c.image_id.clone()),
            digest,
        });
    }
    for svc in services {
        if !seen.contains(&svc) {
            rows.push(ServiceStatus::missing(&s.name, &s.project, svc));
        }
    }
    rows.sort_by(|a, b| (&a.service, &a.container).cmp(&(&b.service, &b.container)));
    Ok(rows)
}

/// `stack update STACK`: record, pull, up, wait for health, roll back on failure.
pub fn update(cfg: &Config, stack: &str) -> Result<UpdateReport, StackError> {
    locked(cfg, stack, |s| update::update(s, &SystemTime::now))
}

/// `stack rollback STACK`: back to the deployment before the one running now.
pub fn rollback(cfg: &Config, stack: &str) -> Result<RollbackReport, StackError> {
    locked(cfg, stack, update::rollback_on_demand)
}

/// `stack prune`: removes dangling and retired images no container uses; `dry_run` only plans.
pub fn prune(cfg: &Config, dry_run: bool) -> Result<Vec<prune::PruneAction>, StackError> {
    let docker = docker_for(cfg);
    docker.ping()?;
    let state_path = history::state_path(&cfg.state_dir());
    prune::run(&docker, &state_path, dry_run)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn project_names() {
        for ok in ["prod", "dev", "mealmind-dev", "a_1", "0x"] {
            assert!(valid_project(ok), "{ok}");
        }
        for bad in ["", "Prod", "-x", "a b", "a.b", "_x"] {
            assert!(!valid_project(bad), "{bad}");
        }
    }

    #[test]
    fn an_unknown_stack_lists_the_configured_ones() {
        let cfg = Config::default();
        let e = configured(&cfg, "staging").unwrap_err().to_string();
        assert!(e.contains("dev, prod"), "{e}");
    }

    #[test]
    fn a_missing_compose_file_is_reported_before_the_engine_is_asked() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = Config {
            base_dir: dir.path().to_owned(),
            ..Config::default()
        };
        let e = Stack::open(&cfg, "dev").unwrap_err();
        assert!(matches!(e, StackError::ComposeFileMissing { .. }), "{e}");
        assert!(e.to_string().contains("dev-compose.yaml"), "{e}");
    }
}
