//! Which compose tool this machine has (detected once per process), and whether the engine
//! answers.
//!
//! `OPSYNC_COMPOSE` picks the tool by hand: `docker compose` (the v2 plugin) or `docker-compose`
//! (the standalone tool, v1.29 or a v2 build), or any other command line.

use std::sync::OnceLock;
use std::time::Duration;

use super::error::StackError;
use opsync_core::process::{Command, Level, Output, ProcessError};

/// Compose generation: they differ in flags and output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Flavor {
    /// `docker-compose` 1.x (Python): no `--wait`, no `ps --format json`, no top-level `name:`.
    V1,
    /// Compose v2 (Go), as `docker compose` or a standalone `docker-compose` 2.x.
    V2,
}

/// The compose command line to use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComposeTool {
    /// Program and leading arguments, e.g. `["docker", "compose"]` or `["docker-compose"]`.
    pub argv: Vec<String>,
    pub flavor: Flavor,
    pub version: String,
}

impl ComposeTool {
    /// The tool invoked with `args`.
    pub fn cmd<I, S>(&self, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        Command::new(&self.argv[0]).args(&self.argv[1..]).args(args)
    }
}

static TOOL: OnceLock<ComposeTool> = OnceLock::new();

/// The compose tool of this machine, detected on first use.
pub fn compose_tool(timeout: Duration) -> Result<ComposeTool, StackError> {
    if let Some(t) = TOOL.get() {
        return Ok(t.clone());
    }
    let tool = detect(timeout)?;
    tracing::debug!(tool = %tool.argv.join(" "), version = %tool.version, "compose tool");
    Ok(TOOL.get_or_init(|| tool).clone())
}

fn detect(timeout: Duration) -> Result<ComposeTool, StackError> {
    let candidates: Vec<Vec<String>> = match std::env::var("OPSYNC_COMPOSE") {
        Ok(s) if !s.trim().is_empty() => vec![s.split_whitespace().map(str::to_owned).collect()],
        _ => vec![
            vec!["docker".into(), "compose".into()],
            vec!["docker-compose".into()],
        ],
    };
    let tried = candidates
        .iter()
        .map(|c| format!("`{}`", c.join(" ")))
        .collect::<Vec<_>>()
        .join(" and ");
    for argv in candidates {
        let cmd = Command::new(&argv[0])
            .args(&argv[1..])
            .args(["version", "--short"])
            .timeout(timeout);
        match cmd.run() {
            Ok(out) => {
                let version = out.stdout.trim().trim_start_matches('v').to_owned();
                let flavor = flavor_of(&version);
                return Ok(ComposeTool {
                    argv,
                    flavor,
                    version,
                });
            }
            Err(e) => tracing::debug!(error = %e, "not a compose tool"),
        }
    }
    Err(StackError::NoComposeTool { tried })
}

/// `1.29.2` is v1, anything else (`2.24.5`, `5.0.0`) speaks v2.
pub fn flavor_of(version: &str) -> Flavor {
    if version.trim().trim_start_matches('v').starts_with("1.") {
        Flavor::V1
    } else {
        Flavor::V2
    }
}

/// How long a healthy engine may take to say its version.
const PING_TIMEOUT: Duration = Duration::from_secs(30);

/// Runs `docker` with a timeout.
#[derive(Debug, Clone)]
pub struct Docker {
    pub timeout: Duration,
}

impl Docker {
    /// `docker ARGS`, stopped after the timeout.
    pub fn cmd<I, S>(&self, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        Command::new("docker").args(args).timeout(self.timeout)
    }

    /// Runs `docker ARGS`; anything but exit code 0 is an error.
    pub fn run<I, S>(&self, args: I, level: Level) -> Result<Output, ProcessError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        self.cmd(args).level(level).run()
    }

    /// Checks that the engine answers (within 30 s at most); returns its version.
    pub fn ping(&self) -> Result<String, StackError> {
        let cmd = self
            .cmd(["version", "--format", "{{.Server.Version}}"])
            .timeout(self.timeout.min(PING_TIMEOUT));
        match cmd.run() {
            Ok(out) => Ok(out.stdout.trim().to_owned()),
            Err(ProcessError::NotFound { .. }) => Err(StackError::NoDocker),
            Err(e) => {
                let message = match e.output() {
                    Some(out) => out.last_line().unwrap_or("no output").to_owned(),
                    None => e.to_string(),
                };
                Err(StackError::EngineUnreachable {
                    host: engine_host(),
                    message,
                })
            }
        }
    }
}

/// Where the docker client connects: `DOCKER_HOST` or the default socket.
pub fn engine_host() -> String {
    std::env::var("DOCKER_HOST")
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unix:///var/run/docker.sock".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flavor_from_version() {
        for (v, f) in [
            ("1.29.2", Flavor::V1),
            ("v1.25.0", Flavor::V1),
            ("2.24.5", Flavor::V2),
            ("v2.5.0", Flavor::V2),
            ("5.0.0", Flavor::V2),
        ] {
            assert_eq!(flavor_of(v), f, "{v}");
        }
    }

    #[test]
    fn the_tool_prefix_comes_before_the_arguments() {
        let t = ComposeTool {
            argv: vec!["docker".into(), "compose".into()],
            flavor: Flavor::V2,
            version: "2.24.5".into(),
        };
        assert_eq!(t.cmd(["ps"]).display(), "docker compose ps");
    }
}
