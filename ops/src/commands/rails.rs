//! The configured rails of a hand-run `opsync sync SRC DST`: when SRC and DST are a pair the
//! configuration names (`[sync]`, or a sync job's own source and target), that pair's
//! `exclude` and `max-delete` apply as they do in the nightly job, and one line says so;
//! `--no-config` opts out. Without a configured pair (or with `--no-config`), a run that would
//! delete more than half of a non-empty DST stops there unless `--max-delete` or `--force`
//! is given.

use std::path::{Path, PathBuf};

use sync_engine::MaxDelete;

use crate::cli::RailsArgs;
use crate::commands::Global;
use opsync_core::config::{Config, ConfigError, JobKind};

/// The share of DST a run without configuration may delete.
pub const UNCONFIGURED_LIMIT_PERCENT: f64 = 50.0;

/// What the configuration adds to a hand-run sync.
#[derive(Debug, Default)]
pub struct Rails {
    /// The configured pair's excludes (added to the command line's).
    pub excludes: Vec<String>,
    /// The configured pair's max-delete (the command line's wins).
    pub max_delete: Option<MaxDelete>,
    /// The line that says the configured rails apply.
    pub note: Option<String>,
    /// No configured pair and no limit given: deleting more than half of DST is refused.
    pub half_guard: bool,
}

/// The rails for `opsync sync src dst`; `max_delete_given`: the command line has --max-delete.
pub fn for_pair(
    global: &Global,
    src: &Path,
    dst: &Path,
    args: &RailsArgs,
    max_delete_given: bool,
) -> Result<Rails, ConfigError> {
    let unconfigured = Rails {
        half_guard: !args.force && !max_delete_given,
        ..Rails::default()
    };
    if args.no_config {
        return Ok(unconfigured);
    }
    let file = match &global.config {
        Some(p) => p.clone(),
        None if Path::new("opsync.toml").exists() => PathBuf::from("opsync.toml"),
        None => return Ok(unconfigured),
    };
    let cfg = Config::load(&file)?;
    let (s, d) = (same_path(src), same_path(dst));
    let mut pairs = vec![(
        "[sync]".to_string(),
        &cfg.sync.source,
        &cfg.sync.target,
        cfg.sync.max_delete,
    )];
    for (name, job) in &cfg.jobs {
        if job.kind == JobKind::Sync {
            pairs.push((
                format!("[jobs.{name}]"),
                job.source.as_ref().unwrap_or(&cfg.sync.source),
                job.target.as_ref().unwrap_or(&cfg.sync.target),
                job.max_delete.or(cfg.sync.max_delete),
            ));
        }
    }
    let Some((section, _, _, max_delete)) = pairs
        .into_iter()
        .find(|(_, a, b, _)| same_path(&cfg.path(a)) == s && same_path(&cfg.path(b)) == d)
    else {
        return Ok(unconfigured);
    };
    let excludes = cfg.sync.exclude.clone();
    let limit = match (max_delete_given, max_delete) {
        (true, _) => "max-delete from the command line".to_string(),
        (false, Some(m)) => format!("max-delete {m}"),
        (false, None) => "no max-delete".to_string(),
    };
    let note = format!(
        "opsync: {} -> {} is the pair of {section} in {}: its exclude ({} pattern{}) and {limit} \
         apply (--no-config: without them)",
        src.display(),
        dst.display(),
        cfg.display_file(),
        excludes.len(),
        if excludes.len() == 1 { "" } else { "s" },
    );
    Ok(Rails {
        excludes,
        max_delete,
        note: Some(note),
        half_guard: false,
    })
}

/// The message of a run the half-of-DST guard stopped.
pub fn guard_message(dst: &Path, deleted: u64) -> String {
    format!(
        "deleting more than half of {} needs --max-delete N (or P%) or --force: no configured \
         pair names it; {}, check SRC and DST, then rerun with one of them",
        dst.display(),
        if deleted == 0 {
            "nothing was deleted".to_string()
        } else {
            format!("only the {deleted} deletion(s) a type change needed were made")
        }
    )
}

/// `p` absolute and without `.`/`..`, symlinks resolved where it exists.
fn same_path(p: &Path) -> PathBuf {
    if let Ok(c) = p.canonicalize() {
        return c;
    }
    let abs = std::path::absolute(p).unwrap_or_else(|_| p.to_owned());
    let mut out = PathBuf::new();
    for c in abs.components() {
        match c {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    match (
        out.parent().and_then(|d| d.canonicalize().ok()),
        out.file_name(),
    ) {
        (Some(dir), Some(name)) => dir.join(name),
        _ => out,
    }
}
