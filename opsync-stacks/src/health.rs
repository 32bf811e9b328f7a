//! Waiting until a stack is healthy, by inspecting its containers (the same way for both compose
//! generations: v1 has no `up --wait`).

use std::time::{Duration, Instant};

use super::engine::ContainerInfo;

/// What the containers of a stack say right now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Every container runs (or finished with exit code 0), every healthcheck passes.
    Ready,
    /// Not yet: the reason names the first container still starting.
    Waiting(String),
    /// Will not get better: unhealthy, exited with an error, restarting, dead or paused.
    Failed(String),
}

/// Pure: judges the containers of one stack.
pub fn evaluate(containers: &[ContainerInfo]) -> Verdict {
    if containers.is_empty() {
        return Verdict::Waiting("no containers yet".into());
    }
    let mut waiting = None;
    for c in containers {
        let who = format!("service {} (container {})", c.service, c.name);
        match c.state.as_str() {
            "running" => match c.health.as_deref() {
                None | Some("healthy") => {}
                Some("unhealthy") => {
                    return Verdict::Failed(match &c.health_output {
                        Some(out) => {
                            format!("{who} is unhealthy; its last health check said: {out}")
                        }
                        None => format!("{who} is unhealthy"),
                    });
                }
                Some(other) => {
                    waiting.get_or_insert_with(|| format!("{who} is {other}"));
                }
            },
            "exited" if c.exit_code == 0 => {}
            "exited" => {
                return Verdict::Failed(format!("{who} exited with code {}", c.exit_code));
            }
            "created" => {
                waiting.get_or_insert_with(|| format!("{who} is created but not started"));
            }
            "restarting" => return Verdict::Failed(format!("{who} keeps restarting")),
            "paused" => return Verdict::Failed(format!("{who} is paused: unpause it")),
            other => return Verdict::Failed(format!("{who} is {other}")),
        }
    }
    match waiting {
        Some(w) => Verdict::Waiting(w),
        None => Verdict::Ready,
    }
}

/// Polls `inspect` every `interval` until [`evaluate`] says ready or failed, or `timeout`
/// passes. Returns the failure reason.
pub fn wait<E>(
    timeout: Duration,
    interval: Duration,
    mut inspect: impl FnMut() -> Result<Vec<ContainerInfo>, E>,
) -> Result<Result<(), String>, E> {
    let deadline = Instant::now() + timeout;
    loop {
        let containers = inspect()?;
        match evaluate(&containers) {
            Verdict::Ready => return Ok(Ok(())),
            Verdict::Failed(reason) => return Ok(Err(reason)),
            Verdict::Waiting(reason) => {
                if Instant::now() >= deadline {
                    return Ok(Err(format!(
                        "not healthy after {}s: {reason}",
                        timeout.as_secs()
                    )));
                }
                tracing::debug!(reason = %reason, "waiting for health");
                std::thread::sleep(
                    interval.min(deadline.saturating_duration_since(Instant::now())),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(service: &str, state: &str, health: Option<&str>, code: i64) -> ContainerInfo {
        ContainerInfo {
            id: format!("id-{service}"),
            name: format!("p-{service}-1"),
            project: "p".into(),
            service: service.into(),
            image_ref: "img".into(),
            image_id: "sha256:x".into(),
            state: state.into(),
            health: health.map(str::to_owned),
            health_output: None,
            exit_code: code,
        }
    }

    type Case = (Vec<ContainerInfo>, fn(&Verdict) -> bool);

    #[test]
    fn verdicts() {
        use Verdict::*;
        let cases: Vec<Case> = vec![
            (vec![], |v| matches!(v, Waiting(_))),
            (vec![c("web", "running", None, 0)], |v| *v == Ready),
            (vec![c("web", "running", Some("healthy"), 0)], |v| {
                *v == Ready
            }),
            (vec![c("web", "running", Some("starting"), 0)], |v| {
                matches!(v, Waiting(_))
            }),
            (
                vec![
                    c("db", "running", Some("starting"), 0),
                    c("web", "running", Some("unhealthy"), 0),
                ],
                |v| matches!(v, Failed(r) if r.contains("web") && r.contains("unhealthy")),
            ),
            (vec![c("migrate", "exited", None, 0)], |v| *v == Ready),
            (
                vec![c("web", "exited", None, 2)],
                |v| matches!(v, Failed(r) if r.contains("code 2")),
            ),
            (vec![c("web", "restarting", None, 1)], |v| {
                matches!(v, Failed(_))
            }),
            (vec![c("web", "created", None, 0)], |v| {
                matches!(v, Waiting(_))
            }),
            (vec![c("web", "paused", None, 0)], |v| {
                matches!(v, Failed(_))
            }),
        ];
        for (containers, ok) in cases {
            let v = evaluate(&containers);
            assert!(ok(&v), "{containers:?} gave {v:?}");
        }
    }

    #[test]
    fn wait_gives_up_after_the_timeout_with_the_last_reason() {
        let r: Result<_, ()> = wait(Duration::from_millis(50), Duration::from_millis(10), || {
            Ok(vec![c("web", "running", Some("starting"), 0)])
        });
        let reason = r.unwrap().unwrap_err();
        assert!(reason.contains("service web"), "{reason}");
    }

    #[test]
    fn wait_returns_once_ready() {
        let mut n = 0;
        let r: Result<_, ()> = wait(Duration::from_secs(10), Duration::from_millis(1), || {
            n += 1;
            let h = if n < 3 { "starting" } else { "healthy" };
            Ok(vec![c("web", "running", Some(h), 0)])
        });
        assert_eq!(r.unwrap(), Ok(()));
        assert_eq!(n, 3);
    }
}
