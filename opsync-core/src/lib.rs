//! # opsync-core
//!
//! What every part of opsync shares, with no knowledge of certificates, nginx or compose:
//!
//! - [`config`]: `opsync.toml` (TOML, defaults, validation with `FILE:LINE:COLUMN` errors), the
//!   one [`config::Config`] every command and job reads, including the sections the other
//!   crates act on (`[[site]]`, `[certbot]`, `[nginx]`, `[stacks.NAME]`, `[jobs.NAME]`);
//! - [`exit`]: exit codes, their one severity order, and the one mapping from errors to them;
//! - [`error`]: rendering any error with its causes as one line;
//! - [`process`]: the one place that runs external programs (process group, output capture or
//!   streaming, timeout, deadline, cancellation, SIGTERM then SIGKILL);
//! - [`fs`]: the one atomic file write;
//! - [`lock`]: the one file-lock module (jobs, stacks, the stack history);
//! - [`state`]: the state file of each job (`STATE_DIR/jobs/JOB.json`);
//! - [`metrics`]: the Prometheus textfile written from the job states;
//! - [`scheduler`]: fire times of crontab schedules (pure) and the loop of `opsync daemon`;
//! - [`time`]: Unix seconds and their UTC text.
//!
//! Nothing here prints: errors are typed and returned, events are logged with `tracing`.

pub mod config;
pub mod error;
pub mod exit;
pub mod fs;
pub mod lock;
pub mod metrics;
pub mod process;
pub mod scheduler;
pub mod state;
pub mod time;
