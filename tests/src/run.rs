//! Running the `opsync` binary in a test and asserting on its outcome; a failed assertion prints
//! the command line, exit code, stdout and stderr.

use std::path::Path;

use crate::opsync;

/// The outcome of one `opsync` run.
pub struct Run {
    pub command: String,
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "command: {}\nexit code: {}\n--- stdout ---\n{}--- stderr ---\n{}",
            self.command, self.code, self.stdout, self.stderr
        )
    }
}

impl Run {
    /// Panics unless the exit code is `code`.
    pub fn expect_code(self, code: i32) -> Run {
        assert_eq!(self.code, code, "unexpected exit code\n{self}");
        self
    }

    /// The stdout lines parsed as JSON objects.
    pub fn json_lines(&self) -> Vec<serde_json::Value> {
        self.stdout
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}\n{self}"))
            })
            .collect()
    }
}

/// Runs `opsync --config CONFIG ARGS...` with `OPSYNC_LOG=debug`.
pub fn opsync_with(config: &Path, args: &[&str]) -> Run {
    let mut full = vec!["--config", config.to_str().expect("UTF-8 config path")];
    full.extend_from_slice(args);
    opsync_in(None, &full)
}

/// Runs `opsync ARGS...` in the working directory `cwd` (none: the test's) with
/// `OPSYNC_LOG=debug`.
pub fn opsync_in(cwd: Option<&Path>, args: &[&str]) -> Run {
    let mut cmd = opsync();
    cmd.args(args);
    if let Some(dir) = cwd {
        cmd.current_dir(dir);
    }
    cmd.env("OPSYNC_LOG", "debug");
    // certbot talks to the local pebble: never through a proxy the environment may set.
    for var in crate::acme::PROXY_VARS {
        cmd.env_remove(var);
    }
    let command = match cwd {
        Some(d) => format!("(cd {} && opsync {})", d.display(), args.join(" ")),
        None => format!("opsync {}", args.join(" ")),
    };
    let start = std::time::Instant::now();
    let out = cmd.output().expect("run opsync");
    eprintln!(
        "{command}: exit {:?} in {:.1?}",
        out.status.code(),
        start.elapsed()
    );
    Run {
        command,
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}
