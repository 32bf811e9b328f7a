//! `stack update` and `stack rollback`.
//!
//! Update: record the image every service runs now (as a deployment in the history, each image
//! also tagged `REPO:opsync-rollback-TIME-ID` so no prune removes it), `pull`, `up -d`, wait
//! until every container is running and healthy, and on failure put the recorded images back
//! under the services' references and recreate those services. An image rollback does not undo
//! database migrations the new images ran.

use std::collections::BTreeMap;
use std::time::SystemTime;

use serde::Serialize;

use super::Stack;
use super::engine::{self, ContainerInfo};
use super::error::StackError;
use super::health;
use super::history::{self, Deployment, ServiceImage};
use opsync_core::process::Level;
use opsync_core::time;

/// Result of one `stack update`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct UpdateReport {
    /// True when the new images failed and the old ones were put back.
    pub rolled_back: bool,
    pub stack: String,
    /// Services whose image changed (before a rollback undid it).
    pub changed: Vec<String>,
    /// Why the update failed (set when rolled back).
    pub failure: Option<String>,
    /// The images running at the end (the new ones, or the old ones after a rollback).
    pub images: Vec<ServiceImage>,
}

/// Result of `stack rollback`.
#[derive(Debug, Clone, Serialize)]
pub struct RollbackReport {
    pub stack: String,
    /// Time of the deployment now running again.
    pub to: String,
    /// Services that were recreated with their earlier image.
    pub changed: Vec<String>,
    pub images: Vec<ServiceImage>,
}

/// The rollback tag of an image: `REPO:opsync-rollback-20261129T230102Z-0123456789ab`.
pub fn rollback_tag(image_ref: &str, image_id: &str, unix: u64) -> String {
    let short: String = image_id
        .trim_start_matches("sha256:")
        .chars()
        .take(12)
        .collect();
    format!(
        "{}:opsync-rollback-{}-{short}",
        engine::repository(image_ref),
        history::compact(unix)
    )
}

/// Pure: the image of each service (first container of each), as a deployment at `unix`.
pub fn deployment_of(containers: &[ContainerInfo], unix: u64) -> Deployment {
    let mut by_service: BTreeMap<&str, &ContainerInfo> = BTreeMap::new();
    for c in containers {
        if !c.service.is_empty() {
            by_service.entry(c.service.as_str()).or_insert(c);
        }
    }
    Deployment {
        time: history::rfc3339(unix),
        unix,
        images: by_service
            .values()
            .map(|c| ServiceImage {
                service: c.service.clone(),
                image: c.image_ref.clone(),
                id: c.image_id.clone(),
                rollback_tag: rollback_tag(&c.image_ref, &c.image_id, unix),
            })
            .collect(),
    }
}

/// Pure: the stack has containers but none runs (stopped by `stack stop`, for example by the
/// nightly job): an update must not start it behind the operator's back.
pub fn is_stopped(containers: &[ContainerInfo]) -> bool {
    !containers.is_empty() && containers.iter().all(|c| c.state != "running")
}

/// Pure: do two deployments run the same image for every service?
pub fn same_images(a: &Deployment, b: &Deployment) -> bool {
    a.ids() == b.ids()
}

/// Pure: services whose image differs between `from` and `to` (or that only `to` has).
pub fn changed_services(from: &Deployment, to: &Deployment) -> Vec<String> {
    let f = from.ids();
    to.ids()
        .into_iter()
        .filter(|(s, id)| f.get(s) != Some(id))
        .map(|(s, _)| s.to_owned())
        .collect()
}

impl Stack {
    fn tag_rollback_images(&self, d: &Deployment) -> Result<(), StackError> {
        for img in &d.images {
            self.docker
                .run(
                    ["tag", img.id.as_str(), img.rollback_tag.as_str()],
                    Level::Loud,
                )
                .map_err(|source| StackError::Command {
                    stack: self.name.clone(),
                    error: Box::new(source),
                })?;
        }
        Ok(())
    }

    /// Records `d` as the newest deployment (tagging its images first).
    fn record(&self, d: &Deployment) -> Result<(), StackError> {
        self.tag_rollback_images(d)?;
        let keep = self.conf.keep_deployments;
        history::update(&self.state_path, |st| {
            st.stacks
                .entry(self.name.clone())
                .or_default()
                .push(d.clone(), keep)
        })
    }

    fn last_deployment(&self) -> Result<Option<Deployment>, StackError> {
        Ok(history::load(&self.state_path)?
            .stacks
            .get(&self.name)
            .and_then(|h| h.deployments.last().cloned()))
    }

    /// Puts the images of `target` back under the services' references, recreates the services
    /// whose image differs, and waits for health. Returns the recreated services.
    fn roll_back_to(&self, target: &Deployment) -> Result<Vec<String>, StackError> {
        let current = self.containers()?;
        let mut changed = Vec::new();
        for img in &target.images {
            if engine::image_id(&self.docker, &self.name, &img.id)?.is_none() {
                return Err(StackError::ImageGone {
                    stack: self.name.clone(),
                    image: img.image.clone(),
                    time: target.time.clone(),
                    tag: img.rollback_tag.clone(),
                });
            }
            let running = current.iter().find(|c| c.service == img.service);
            // The reference the service asks for now (it may differ from the recorded one
            // when the compose file changed).
            let reference = running.map_or(img.image.as_str(), |c| c.image_ref.as_str());
            let ref_id = engine::image_id(&self.docker, &self.name, reference)?;
            if ref_id.as_deref() != Some(img.id.as_str()) {
                self.docker
                    .run(["tag", img.id.as_str(), reference], Level::Loud)
                    .map_err(|source| StackError::Command {
                        stack: self.name.clone(),
                        error: Box::new(source),
                    })?;
            }
            if running.map(|c| c.image_id.as_str()) != Some(img.id.as_str())
                || ref_id.as_deref() != Some(img.id.as_str())
            {
                changed.push(img.service.clone());
            }
        }
        // A service removed from the compose file since cannot be recreated.
        let defined = self.services()?;
        changed.retain(|svc| defined.contains(svc));
        if !changed.is_empty() {
            let mut args: Vec<String> = ["up", "-d", "--no-deps", "--force-recreate"]
                .map(str::to_owned)
                .into();
            args.extend(changed.iter().cloned());
            self.compose(args, Level::Loud)?;
        }
        // Anything the failed `up` left stopped comes back too.
        self.compose(["up", "-d"], Level::Loud)?;
        self.wait_healthy()?
            .map_err(|reason| StackError::Unhealthy {
                stack: self.name.clone(),
                reason: format!("after the rollback: {reason}"),
            })?;
        Ok(changed)
    }
}

/// `stack update`; `clock` gives the deployment times.
pub fn update(s: &Stack, clock: &dyn Fn() -> SystemTime) -> Result<UpdateReport, StackError> {
    // Fails early on a broken compose file.
    s.services()?;
    let containers = s.containers()?;
    if is_stopped(&containers) {
        return Err(StackError::Stopped {
            stack: s.name.clone(),
        });
    }
    let before = deployment_of(&containers, time::unix(clock()));
    let previous = if before.images.is_empty() {
        None
    } else {
        match s.last_deployment()? {
            Some(last) if same_images(&last, &before) => {
                // Tags may have been removed by hand: put them back.
                s.tag_rollback_images(&last)?;
                Some(last)
            }
            _ => {
                s.record(&before)?;
                Some(before)
            }
        }
    };

    s.compose(["pull"], Level::Loud).map_err(|e| match e {
        StackError::Command { stack, error } => StackError::PullFailed { stack, error },
        other => other,
    })?;
    let failure = match s.compose(["up", "-d"], Level::Loud) {
        // Compose ends with its own summary ("Encountered errors while bringing up the
        // project", "dependency failed to start"): name the container that failed first.
        Err(e) => Some(match s.containers().map(|c| health::evaluate(&c)) {
            Ok(health::Verdict::Failed(reason)) => format!("{reason} (compose: {e})"),
            _ => e.to_string(),
        }),
        Ok(_) => s.wait_healthy()?.err(),
    };

    if let Some(reason) = failure {
        tracing::warn!(stack = %s.name, reason = %reason, "update failed");
        let Some(previous) = previous else {
            return Err(StackError::Unhealthy {
                stack: s.name.clone(),
                reason: format!(
                    "update failed and nothing ran before it to roll back to: {reason}"
                ),
            });
        };
        let after_failed = deployment_of(&s.containers()?, time::unix(clock()));
        let changed = changed_services(&previous, &after_failed);
        return match s.roll_back_to(&previous) {
            Ok(_) => {
                tracing::warn!(stack = %s.name, to = %previous.time, "rolled back");
                Ok(UpdateReport {
                    rolled_back: true,
                    stack: s.name.clone(),
                    changed,
                    failure: Some(reason),
                    images: previous.images,
                })
            }
            Err(e) => Err(StackError::RollbackFailed {
                stack: s.name.clone(),
                reason,
                rollback: e.to_string(),
            }),
        };
    }

    let after = deployment_of(&s.containers()?, time::unix(clock()));
    let changed = match &previous {
        Some(p) => changed_services(p, &after),
        None => after.images.iter().map(|i| i.service.clone()).collect(),
    };
    if previous.as_ref().is_none_or(|p| !same_images(p, &after)) {
        s.record(&after)?;
    }
    Ok(UpdateReport {
        rolled_back: false,
        stack: s.name.clone(),
        changed,
        failure: None,
        images: after.images,
    })
}

/// `stack rollback`: back to the deployment before the one running now (or to the last
/// recorded one, when what runs now was never recorded).
pub fn rollback_on_demand(s: &Stack) -> Result<RollbackReport, StackError> {
    let no_previous = || StackError::NoPreviousDeployment {
        stack: s.name.clone(),
    };
    let hist = history::load(&s.state_path)?
        .stacks
        .get(&s.name)
        .cloned()
        .unwrap_or_default();
    let running = deployment_of(&s.containers()?, 0);
    let last = hist.deployments.last().ok_or_else(no_previous)?;
    let (target, pop_last) = if same_images(last, &running) {
        let n = hist.deployments.len();
        let target = n
            .checked_sub(2)
            .and_then(|i| hist.deployments.get(i))
            .ok_or_else(no_previous)?;
        (target, true)
    } else {
        (last, false)
    };
    let changed = s.roll_back_to(target)?;
    if pop_last {
        history::update(&s.state_path, |st| {
            if let Some(h) = st.stacks.get_mut(&s.name) {
                h.pop();
            }
        })?;
    }
    Ok(RollbackReport {
        stack: s.name.clone(),
        to: target.time.clone(),
        changed,
        images: target.images.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(service: &str, id: &str) -> ContainerInfo {
        ContainerInfo {
            id: format!("c-{service}"),
            name: format!("p-{service}-1"),
            project: "p".into(),
            service: service.into(),
            image_ref: format!("127.0.0.1:5000/{service}:latest"),
            image_id: id.into(),
            state: "running".into(),
            health: None,
            health_output: None,
            exit_code: 0,
        }
    }

    #[test]
    fn rollback_tags_keep_the_repository_and_are_unique_per_image() {
        assert_eq!(
            rollback_tag(
                "127.0.0.1:5000/app:latest",
                "sha256:0123456789abcdef",
                1_795_993_262
            ),
            "127.0.0.1:5000/app:opsync-rollback-20261129T230102Z-0123456789ab"
        );
    }

    #[test]
    fn a_deployment_has_one_image_per_service() {
        let d = deployment_of(&[c("web", "a"), c("db", "d"), c("web", "a")], 7);
        let services: Vec<&str> = d.images.iter().map(|i| i.service.as_str()).collect();
        assert_eq!(services, ["db", "web"]);
    }

    #[test]
    fn a_stack_is_stopped_when_it_has_containers_and_none_runs() {
        let mut exited = c("web", "a");
        exited.state = "exited".into();
        assert!(!is_stopped(&[]));
        assert!(is_stopped(std::slice::from_ref(&exited)));
        assert!(!is_stopped(&[exited, c("db", "d")]));
    }

    #[test]
    fn changed_services_compare_ids_by_service() {
        let a = deployment_of(&[c("web", "a"), c("db", "d")], 1);
        let b = deployment_of(&[c("web", "b"), c("db", "d"), c("cache", "x")], 2);
        assert_eq!(changed_services(&a, &b), ["cache", "web"]);
        assert!(same_images(
            &a,
            &deployment_of(&[c("db", "d"), c("web", "a")], 9)
        ));
        assert!(!same_images(&a, &b));
    }
}
