//! The steps of the nightly job that run `opsync sync` (or `sync-command`) and `opsync verify`
//! (or `verify-command`) as child processes: their command lines, and their ends read from the
//! exit code and the events they print ([`crate::jobs::tally`]).

use std::path::Path;
use std::time::Instant;

use crate::config::VerifyMode;
use crate::exit::Exit;
use crate::jobs::process::{self, Ended, Spec};
use crate::jobs::tally::{Role, Tally};
use crate::state::PathList;

use super::{Run, StepEnd, exit_of, own_binary, path_arg, result_name};

/// Which sync pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Pass {
    /// On live data.
    One,
    /// With production quiesced, verified as `verify` says.
    Two,
}

impl Run<'_> {
    /// `opsync` itself, or the configured replacement of `opsync SUBCOMMAND`.
    fn program(
        &self,
        replacement: Option<&Vec<String>>,
        subcommand: &str,
    ) -> Result<Vec<String>, String> {
        match replacement {
            Some(c) => Ok(c.clone()),
            None => match std::env::current_exe() {
                Ok(exe) => Ok(vec![own_binary(&exe), subcommand.into()]),
                Err(e) => Err(format!(
                    "cannot find the opsync binary to run `opsync {subcommand}`: {e}"
                )),
            },
        }
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
        let mut argv = match self.program(self.job.sync_command.as_ref(), "sync") {
            Ok(a) => a,
            Err(m) => return StepEnd::failed(m),
        };
        argv.push("--json".into());
        argv.push(path_arg(src));
        argv.push(path_arg(dst));
        if let Some(m) = self
            .job
            .max_delete
            .as_ref()
            .or(self.cfg.sync.max_delete.as_ref())
        {
            argv.push("--max-delete".into());
            argv.push(m.clone());
        }
        for x in &self.cfg.sync.exclude {
            argv.push("--exclude".into());
            argv.push(x.clone());
        }
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
        let spec = Spec {
            argv: &argv,
            cwd: &self.cfg.base_dir,
            env: self.env(step),
            deadline: self.child_deadline(limit),
        };
        let mut tally = Tally::new(self.name, step, role);
        let out = process::run_reading_events(&spec, Some(self.cancel), &mut |e| tally.event(e));
        let detail = tally.finish();
        let ended = match out {
            Ok(o) => o.ended,
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
                let exit = exit_of(u8::try_from(c).unwrap_or(u8::MAX));
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
                    e => format!("sync ended with exit code {c} ({}): {did}", result_name(e)),
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

    /// The `check` step: `opsync verify --json SRC DST` (or `verify-command`) on live data.
    /// Its differences are logged and counted and never fail the job; the paths of kind
    /// `content` are written to `list` (NUL-separated) for pass 2's `--recheck-from`. A check
    /// that cannot run (exit 1, 11, ...) fails.
    pub(super) fn check(&mut self, src: &Path, dst: &Path, list: &Path) -> StepEnd {
        let mut argv = match self.program(self.job.verify_command.as_ref(), "verify") {
            Ok(a) => a,
            Err(m) => return StepEnd::failed(m),
        };
        argv.push("--json".into());
        argv.push(path_arg(src));
        argv.push(path_arg(dst));
        for x in &self.cfg.sync.exclude {
            argv.push("--exclude".into());
            argv.push(x.clone());
        }
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
        let spec = Spec {
            argv: &argv,
            cwd: &self.cfg.base_dir,
            env: self.env("check"),
            deadline: self.deadline,
        };
        let mut tally = Tally::new(self.name, "check", Role::Check)
            .with_recheck_list(Box::new(std::io::BufWriter::new(file)));
        let out = process::run_reading_events(&spec, Some(self.cancel), &mut |e| tally.event(e));
        let detail = tally.finish();
        let ended = match out {
            Ok(o) => o.ended,
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
