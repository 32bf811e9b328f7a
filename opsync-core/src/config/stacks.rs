//! `[stacks.NAME]`: the compose stacks opsync manages.
//!
//! ```toml
//! [stacks.prod]
//! file = "compose.yaml"          # relative to the config file's folder
//! project = "mealmind"           # compose project name (-p); default: the stack's name
//! health-timeout = 120           # seconds `up`/`update` wait for healthchecks
//! command-timeout = 600          # seconds one docker/compose command may take
//! keep-deployments = 5           # deployments kept for rollback; older images are pruned
//! ```
//!
//! Writing any `[stacks.NAME]` replaces the default `prod` and `dev` stacks.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

/// One compose stack.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct StackConfig {
    /// Compose file, relative to the config file's folder.
    pub file: PathBuf,
    /// Compose project name passed as `-p` (default: the stack's name).
    #[serde(default)]
    pub project: Option<String>,
    /// Seconds to wait until every service with a healthcheck is healthy.
    #[serde(default = "default_health_timeout")]
    pub health_timeout: u64,
    /// Seconds one docker or compose command may run before it is killed.
    #[serde(default = "default_command_timeout")]
    pub command_timeout: u64,
    /// Deployments kept in the history (at least 1); `stack prune` removes older images.
    #[serde(default = "default_keep_deployments")]
    pub keep_deployments: usize,
}

fn default_health_timeout() -> u64 {
    120
}

fn default_command_timeout() -> u64 {
    600
}

fn default_keep_deployments() -> usize {
    5
}

impl StackConfig {
    /// A stack from `file` with every other key at its default.
    pub fn with_file(file: impl Into<PathBuf>) -> StackConfig {
        StackConfig {
            file: file.into(),
            project: None,
            health_timeout: default_health_timeout(),
            command_timeout: default_command_timeout(),
            keep_deployments: default_keep_deployments(),
        }
    }

    /// The compose project name of stack `name`.
    pub fn project_name(&self, name: &str) -> String {
        self.project.clone().unwrap_or_else(|| name.to_owned())
    }

    pub fn health_timeout(&self) -> Duration {
        Duration::from_secs(self.health_timeout)
    }

    pub fn command_timeout(&self) -> Duration {
        Duration::from_secs(self.command_timeout.max(1))
    }
}

/// `prod` from `compose.yaml`, `dev` from `dev-compose.yaml`.
pub fn default_stacks() -> BTreeMap<String, StackConfig> {
    let mut m = BTreeMap::new();
    m.insert("prod".into(), StackConfig::with_file("compose.yaml"));
    m.insert("dev".into(), StackConfig::with_file("dev-compose.yaml"));
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_fill_the_keys_left_out() {
        let s: StackConfig = toml::from_str(r#"file = "x.yaml""#).unwrap();
        assert_eq!(s.project_name("prod"), "prod");
        assert_eq!(s.health_timeout, 120);
        assert_eq!(s.command_timeout, 600);
        assert_eq!(s.keep_deployments, 5);
    }

    #[test]
    fn all_keys_and_unknown_keys() {
        let s: StackConfig = toml::from_str(
            "file = \"c.yaml\"\nproject = \"mm\"\nhealth-timeout = 30\ncommand-timeout = 60\n\
             keep-deployments = 2",
        )
        .unwrap();
        assert_eq!(s.project_name("prod"), "mm");
        assert_eq!(s.health_timeout(), Duration::from_secs(30));
        assert_eq!(s.keep_deployments, 2);
        let e = toml::from_str::<StackConfig>("file = \"c.yaml\"\nhealth = 3").unwrap_err();
        assert!(e.to_string().contains("unknown field"), "{e}");
    }
}
