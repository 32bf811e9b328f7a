//! Compose stacks: `docker compose` (v2) or `docker-compose` (v1.29) with an explicit project
//! name per stack, safe updates with rollback, and pruning that never touches another stack.

use crate::config::Config;

/// Stops every service of `stack` (`compose stop`).
pub fn stop(_cfg: &Config, stack: &str) -> anyhow::Result<()> {
    anyhow::bail!("stack stop {stack}: not implemented yet")
}

/// Starts every service of `stack` (`compose start`, or `up -d` when never created).
pub fn start(_cfg: &Config, stack: &str) -> anyhow::Result<()> {
    anyhow::bail!("stack start {stack}: not implemented yet")
}

/// Pauses the given services of `stack` (all when empty).
pub fn pause(_cfg: &Config, stack: &str, _services: &[String]) -> anyhow::Result<()> {
    anyhow::bail!("stack pause {stack}: not implemented yet")
}

/// Unpauses the given services of `stack` (all when empty).
pub fn unpause(_cfg: &Config, stack: &str, _services: &[String]) -> anyhow::Result<()> {
    anyhow::bail!("stack unpause {stack}: not implemented yet")
}

/// Result of one `stack update`.
#[derive(Debug, Clone, Default)]
pub struct UpdateReport {
    /// True when the new images failed and the old ones were put back.
    pub rolled_back: bool,
}

/// `stack update STACK`: record, pull, up, wait for health, roll back on failure.
pub fn update(_cfg: &Config, stack: &str) -> anyhow::Result<UpdateReport> {
    anyhow::bail!("stack update {stack}: not implemented yet")
}
