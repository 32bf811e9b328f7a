//! `[stacks.NAME]`: the compose stacks opsync manages.

use std::collections::BTreeMap;
use std::path::PathBuf;

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
}

/// `prod` from `compose.yaml`, `dev` from `dev-compose.yaml`.
pub fn default_stacks() -> BTreeMap<String, StackConfig> {
    let mut m = BTreeMap::new();
    m.insert(
        "prod".into(),
        StackConfig {
            file: "compose.yaml".into(),
            project: None,
        },
    );
    m.insert(
        "dev".into(),
        StackConfig {
            file: "dev-compose.yaml".into(),
            project: None,
        },
    );
    m
}
