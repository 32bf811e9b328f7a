//! The steps of the nightly job that run `opsync sync` (or `sync-command`) and `opsync verify`
//! (or `verify-command`) as child processes: their command lines, and their ends read from the
//! exit code and the events they print ([`crate::jobs::tally`]).

use std::path::Path;
use std::time::Instant;

use crate::events::Event;
use crate::jobs::step_command;
use crate::jobs::tally::{Role, Tally};
use opsync_core::config::VerifyMode;
use opsync_core::exit::Exit;
use opsync_core::process::{Command, Ended, ProcessError};
use opsync_core::state::PathList;

use super::{Run, StepEnd, own_binary, path_arg};

/// Which sync pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Pass {
    /// On live data.
    One,
    /// With production quiesced, verified as `verify` says.
    Two,
}

impl Run<'_> {
    /// `opsync SUBCOMMAND --json SRC DST` (`opsync` itself, or the configured replacement of
    /// `opsync SUBCOMMAND`).
    fn child_argv(
        &self,
        replacement: Option<&Vec<String>>,
        subcommand: &str,
        src: &Path,
        dst: &Path,
    ) -> Result<Vec<String>, String> {
        let mut argv = match replacement {
            Some(c) => c.clone(),
            None => match std::env::current_exe() {
                Ok(exe) => vec![own_binary(&exe), subcommand.into()],
                Err(e) => {
                    return Err(format!(
                        "cannot find the opsync binary to run `opsync {subcommand}`: {e}"
                    ));
                }
            },
        };
        argv.extend(["--json".into(), path_arg(src), path_arg(dst)]);
        Ok(argv)
    }

    /// `--exclude PATTERN` for each `[sync] exclude`.
    fn exclude_args(&self) -> impl Iterator<Item = String> + '_ {
        self.cfg
            .sync
            .exclude
            .iter()
            .flat_map(|x| ["--exclude".to_string(), x.clone()])
    }

    /// `--rsh RSH --remote-opsync PATH` from `[sync]` when `src` or `dst` is on another host.
    fn remote_args(&self, src: &Path, dst: &Path) -> Vec<String> {
        let mut argv = Vec::new();
        if opsync_core::config::is_remote(dst) || opsync_core::config::is_remote(src) {
            if let Some(rsh) = &self.cfg.sync.rsh {
                argv.extend(["--rsh".into(), rsh.clone()]);
            }
            if let Some(p) = &self.cfg.sync.remote_opsync {
                argv.extend(["--remote-opsync".into(), p.clone()]);
            }
        }
        argv
    }

    /// The deadline of a child: the job's timeout, or `limit` when sooner.
    fn child_deadline(&self, limit: Option<Instant>) -> Option<Instant> {
        match (limit, self.deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// One sync pass: `opsync sync --json SRC DST ...` (or the configured `sync-command`).
    /// Pass 2 compares the files in `recheck` by content. A pass stopped at `limit` ends with
    /// `at_limit`.
    pub(super) fn sync(
        &mut self,
        pass: Pass,
        src: &Path,
        dst: &Path,
        recheck: Option<&Path>,
        limit: Option<Instant>,
    ) -> StepEnd {
        let (step, role) = match pass {
            Pass::One => ("pass-1", Role::Pass1),
            Pass::Two => (
                "pass-2",
                Role::Pass2 {
                    whole_tree: self.job.verify == VerifyMode::Paused,
                },
            ),
        };
        let mut argv = match self.child_argv(self.job.sync_command.as_ref(), "sync", src, dst) {
            Ok(a) => a,
            Err(m) => return StepEnd::failed(m),
        };
        let max_delete = self
            .job
            .max_delete
            .as_ref()
            .or(self.cfg.sync.max_delete.as_ref());
        if let Some(m) = max_delete {
            argv.push("--max-delete".into());
            argv.push(m.to_string());
        }
        if self.job.sync_command.is_none() {
            // The job passes its own rails; a limit it does not configure is none.
            argv.push("--no-config".into());
            if max_delete.is_none() {
                argv.push("--force".into());
            }
        }
        argv.extend(self.exclude_args());
        argv.extend(self.remote_args(src, dst));
        if pass == Pass::Two {
            if self.job.inplace {
                argv.push("--inplace".into());
            }
            if let Some(list) = recheck {
                argv.push("--recheck-from".into());
                argv.push(path_arg(list));
                argv.push("--from0".into());
            }
            match self.job.verify {
                VerifyMode::Live => argv.push("--verify=written".into()),
                VerifyMode::Paused => argv.push("--verify".into()),
                VerifyMode::Off => {}
            }
        }
        let mut tally = Tally::new(self.name, step, role);
        let out = step_command(self.cfg, &argv, self.env(step)).and_then(|c| {
            let c = c
                .deadline(self.child_deadline(limit))
                .cancel(Some(self.cancel));
            read_events(&c, &mut |e| tally.event(e))
        });
        let detail = tally.finish();
        let ended = match out {
            Ok(ended) => ended,
            Err(e) => return StepEnd::failed(e.to_string()),
        };

        // What the pass did, for its message: counts, then the paths that matter.
        let mut did = match &tally.summary {
            Some(s) => format!(
                "{} files transferred of {}, {} bytes copied",
                s.files_transferred, s.files_total, s.bytes_copied
            ),
            None => format!(
                "no summary; {} files, {} bytes copied as far as seen",
                detail.files.unwrap_or(0),
                detail.bytes.unwrap_or(0)
            ),
        };
        let mut add = |list: &Option<PathList>, one: &str, many: &str, verb: &str| {
            if let Some(l) = list {
                did.push_str("; ");
                did.push_str(&l.describe(one, many, verb));
            }
        };
        add(&detail.repaired, "difference", "differences", "repaired");
        add(&detail.remaining, "difference", "differences", "left");
        add(&detail.errors, "error", "errors", "");
        add(&detail.warnings, "warning", "warnings", "");

        let mut end = match ended {
            Ended::Code(c) => {
                let exit = Exit::of_child(c);
                let message = match exit {
                    Exit::Ok => did,
                    Exit::Differences => format!(
                        "sync ended with exit code {c} (differences left after copying them \
                         again by content: something writes to the dev copy, or a disk returns \
                         other data than written): {did}"
                    ),
                    Exit::Failed => match &tally.fatal {
                        Some(f) => format!("sync ended with exit code {c}: {f}"),
                        None => format!("sync ended with exit code {c}: {did}"),
                    },
                    e => format!("sync ended with exit code {c} ({}): {did}", e.name()),
                };
                let mut end = StepEnd::new(exit, Some(message));
                if pass == Pass::One && matches!(exit, Exit::Partial | Exit::Vanished) {
                    end.expected = true;
                    end.message = end.message.map(|m| {
                        format!("{m}; expected on live data: pass 2 copies these files again")
                    });
                }
                end
            }
            Ended::TimedOut if limit.is_some_and(|l| Instant::now() >= l) => {
                let mut end = StepEnd::new(Exit::Failed, Some(did));
                end.at_limit = true;
                end
            }
            Ended::TimedOut => {
                StepEnd::failed(format!("sync stopped: the job's timeout passed; {did}"))
            }
            Ended::Cancelled => StepEnd::new(
                Exit::Signal,
                Some(format!("sync stopped: the run was cancelled; {did}")),
            ),
            Ended::Signal(s) => StepEnd::failed(format!("sync was killed by signal {s}; {did}")),
        };
        end.detail = detail;
        end
    }

    /// The `check` step: `opsync verify --json SRC DST` (or `verify-command`) on live data,
    /// through the remote shell when one side is on another host.
    /// Its differences are logged and counted and never fail the job; the paths of kind
    /// `content` are written to `list` (NUL-separated) for pass 2's `--recheck-from`. A check
    /// that cannot run (exit 1, 11, ...) fails.
    pub(super) fn check(&mut self, src: &Path, dst: &Path, list: &Path) -> StepEnd {
        let mut argv = match self.child_argv(self.job.verify_command.as_ref(), "verify", src, dst) {
            Ok(a) => a,
            Err(m) => return StepEnd::failed(m),
        };
        argv.extend(self.exclude_args());
        // With a target (or source) on another host, `opsync verify` compares the trees over
        // the connection: a dry run with contents compared (`-c -n`), the same differences.
        argv.extend(self.remote_args(src, dst));
        let file = list
            .parent()
            .map_or(Ok(()), std::fs::create_dir_all)
            .and_then(|()| std::fs::File::create(list));
        let file = match file {
            Ok(f) => f,
            Err(e) => {
                return StepEnd::failed(format!(
                    "cannot write the recheck list {}: {e}: check that the state folder is \
                     writable ([general] state-dir)",
                    list.display()
                ));
            }
        };
        let mut tally = Tally::new(self.name, "check", Role::Check)
            .with_recheck_list(Box::new(std::io::BufWriter::new(file)));
        let out = step_command(self.cfg, &argv, self.env("check")).and_then(|c| {
            let c = c.deadline(self.deadline).cancel(Some(self.cancel));
            read_events(&c, &mut |e| tally.event(e))
        });
        let detail = tally.finish();
        let ended = match out {
            Ok(ended) => ended,
            Err(e) => return StepEnd::failed(e.to_string()),
        };
        let content = detail
            .differences
            .as_ref()
            .and_then(|d| d.kinds.get("content").copied())
            .unwrap_or(0);
        let found = match &detail.differences {
            None => "no differences on live data".to_string(),
            Some(d) => {
                let kinds: Vec<String> = d.kinds.iter().map(|(k, n)| format!("{k} {n}")).collect();
                let others = d.count.saturating_sub(content);
                let mut text = format!(
                    "{} (on live data: {}",
                    d.describe("difference", "differences", ""),
                    kinds.join(", ")
                );
                match content {
                    0 => text.push_str("; none with production's size and mtime but other content"),
                    n => text.push_str(&format!(
                        "; {n} with production's size and mtime but other content, which pass 2 \
                         compares by content"
                    )),
                }
                if others > 0 {
                    text.push_str(&format!(
                        "; {others} expected for files being written, which pass 2 copies"
                    ));
                }
                text.push(')');
                text
            }
        };
        let mut end = match ended {
            Ended::Code(0 | 8) => match &tally.recheck_error {
                None => StepEnd::new(Exit::Ok, Some(found)),
                Some(e) => StepEnd::failed(format!(
                    "cannot write the recheck list {}: {e}: {found}",
                    list.display()
                )),
            },
            Ended::Code(c) => StepEnd::failed(match &tally.fatal {
                Some(f) => format!("verify ended with exit code {c}: {f}"),
                None => format!(
                    "verify ended with exit code {c} (see the log for its error): pass 2 runs \
                     without a recheck list"
                ),
            }),
            Ended::TimedOut => StepEnd::failed("verify stopped: the job's timeout passed".into()),
            Ended::Cancelled => StepEnd::new(
                Exit::Signal,
                Some("verify stopped: the run was cancelled".into()),
            ),
            Ended::Signal(s) => StepEnd::failed(format!("verify was killed by signal {s}")),
        };
        end.detail = detail;
        end
    }
}

/// Runs `cmd` (an `opsync sync --json` or `opsync verify --json` child) and hands each event
/// line of its stdout to `on_event` as it arrives, also the ones printed before it was stopped.
/// Lines that are not events are logged at debug level.
fn read_events(cmd: &Command, on_event: &mut dyn FnMut(Event)) -> Result<Ended, ProcessError> {
    let program = cmd.program().display().to_string();
    cmd.stream_stdout(&mut |line| {
        let text = String::from_utf8_lossy(line);
        let text = text.trim_end();
        match Event::parse(text) {
            Some(e) => on_event(e),
            None if text.is_empty() => {}
            None => {
                tracing::debug!(program = %program, line = text, "output line that is not an event")
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_event_is_read_and_other_lines_are_skipped() {
        let cmd = Command::new("sh").env("STEP", "x").args([
            "-c",
            r#"echo '{"type":"item","itemize":">f+++++++++","op":"copy","path":"a","bytes":3}'
               echo 'not an event'
               echo "{\"type\":\"warning\",\"kind\":\"vanished\",\"path\":\"$STEP\",\"message\":\"m\"}"
               echo '{"type":"summary","bytes_copied":5}'; exit 23"#,
        ]);
        let mut events = Vec::new();
        let ended = read_events(&cmd, &mut |e| events.push(e)).unwrap();
        assert_eq!(ended, Ended::Code(23));
        assert_eq!(events.len(), 3, "{events:?}");
        assert!(matches!(&events[0], Event::Item(i) if i.path.path == "a" && i.bytes == 3));
        assert!(matches!(&events[1], Event::Warning(w) if w.path.path == "x"));
        assert!(matches!(&events[2], Event::Summary(s) if s.bytes_copied == 5));
    }
}
