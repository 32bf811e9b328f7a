//! Validation of a parsed config beyond what serde checks, with errors placed at the offending
//! line of the file (found with `toml_edit`'s spans).

use std::path::{Component, Path, PathBuf};

use super::{Config, ConfigError, JobKind, QuiesceMode};

/// An error at byte `offset` of `text`.
pub(super) fn at(path: &Path, text: &str, offset: usize, message: String) -> ConfigError {
    let offset = offset.min(text.len());
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    ConfigError::At {
        path: path.to_owned(),
        line,
        column,
        message,
    }
}

/// Marks the message of a value error that is reported at its key rather than at the value
/// (see [`place`]).
const AT_KEY: char = '\u{1}';

/// The message of a value error to be reported at the value's key: `max-delete`, whose value is
/// read by the engine's type, keeps the place its mistakes had when it was checked after
/// parsing (`FILE:LINE:1` for `max-delete = "five"`).
pub(super) fn at_key(message: String) -> String {
    format!("{AT_KEY}{message}")
}

/// A serde error at byte `offset` of `text`: at the value, or at its key for a message made by
/// [`at_key`] (the first character of the `key = value` line).
pub(super) fn place(path: &Path, text: &str, offset: usize, message: &str) -> ConfigError {
    let offset = offset.min(text.len());
    let line_start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
    let line = text[line_start..].trim_start();
    // `[x]` cannot be meant as an array of tables (`[[site]]`), nor `[[x]]` as a table.
    let shape = if line.starts_with("[[") {
        Shape::ArrayOfTables
    } else if line.starts_with('[') {
        Shape::Table
    } else {
        Shape::Key
    };
    let message = suggest(&one_line(message), shape);
    match message.strip_prefix(AT_KEY) {
        None => at(path, text, offset, message),
        Some(m) => {
            let offset = offset.min(text.len());
            let line_start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
            let indent =
                text[line_start..offset].len() - text[line_start..offset].trim_start().len();
            at(path, text, line_start + indent, m.to_string())
        }
    }
}

/// Joins a multi-line message into one line.
pub(super) fn one_line(message: &str) -> String {
    message
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}

/// How an unknown name was written.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Shape {
    Key,
    Table,
    ArrayOfTables,
}

/// The sections written `[[NAME]]`.
const ARRAY_SECTIONS: &[&str] = &["site"];

/// Adds a suggestion to serde's "unknown field `x`, expected one of ..." message.
pub(super) fn did_you_mean(message: &str) -> String {
    suggest(message, Shape::Key)
}

/// [`did_you_mean`] for a name written as `shape`: a `[table]` header is compared with the
/// sections written as tables only, a `[[array]]` header with the arrays of tables.
pub(super) fn suggest(message: &str, shape: Shape) -> String {
    let Some(rest) = message.strip_prefix("unknown field `") else {
        return message.to_string();
    };
    let Some((field, expected)) = rest.split_once("`, expected one of ") else {
        return message.to_string();
    };
    let keys: Vec<&str> = expected.split(", ").map(|k| k.trim_matches('`')).collect();
    let fits = |k: &&&str| match shape {
        Shape::Key => true,
        Shape::Table => !ARRAY_SECTIONS.contains(k),
        Shape::ArrayOfTables => ARRAY_SECTIONS.contains(k),
    };
    let best = keys
        .iter()
        .filter(fits)
        .map(|k| (distance(field, k), *k))
        .min()
        .filter(|(d, k)| *d <= 2.max(k.len() / 3));
    match best {
        Some((_, k)) => format!(
            "unknown key `{field}`: did you mean `{k}`? (allowed here: {})",
            keys.join(", ")
        ),
        None => format!("unknown key `{field}`: allowed here: {}", keys.join(", ")),
    }
}

/// Levenshtein distance.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

/// True when the document has a top-level table `name`.
pub(super) fn has_table(text: &str, name: &str) -> bool {
    toml_edit::ImDocument::parse(text)
        .map(|d| d.as_table().contains_key(name))
        .unwrap_or(false)
}

/// Byte offset of the key at `keys` (or of the deepest existing parent).
pub(super) fn offset_of(text: &str, keys: &[&str]) -> usize {
    let Ok(doc) = toml_edit::ImDocument::parse(text) else {
        return 0;
    };
    let mut table: &dyn toml_edit::TableLike = doc.as_table();
    let mut best = 0;
    for k in keys {
        let Some((key, item)) = table.get_key_value(k) else {
            break;
        };
        if let Some(span) = key.span().or_else(|| item.span()) {
            best = span.start;
        }
        match item.as_table_like() {
            Some(t) => table = t,
            None => break,
        }
    }
    best
}

/// Checks across keys: stack names, required keys per job kind, a target inside its source.
pub(super) fn semantic(cfg: &Config, path: &Path, text: &str) -> Vec<ConfigError> {
    let mut errors = Vec::new();
    let err = |keys: &[&str], message: String| at(path, text, offset_of(text, keys), message);
    let stacks: Vec<&str> = cfg.stacks.keys().map(String::as_str).collect();
    let known = || {
        if stacks.is_empty() {
            "none are configured: add a [stacks.NAME] table".to_string()
        } else {
            format!("configured stacks: {}", stacks.join(", "))
        }
    };

    if let Err(m) = check_pair(cfg, &cfg.sync.source, &cfg.sync.target) {
        errors.push(err(&["sync", "target"], m));
    }

    for (name, job) in &cfg.jobs {
        let keys = |k: &'static str| ["jobs", name.as_str(), k];
        match job.kind {
            JobKind::Sync => {
                let src = job.source.as_ref().unwrap_or(&cfg.sync.source);
                let dst = job.target.as_ref().unwrap_or(&cfg.sync.target);
                // A job that inherits both from [sync] was checked there.
                let own = job.source.is_some() || job.target.is_some();
                if let Err(m) = check_pair(cfg, src, dst).or_else(|m| (!own).then_some(()).ok_or(m))
                {
                    errors.push(err(&keys("target"), m));
                }
                if job.dev.enabled
                    && job.dev.host.is_none()
                    && (job.dev.stop_command.is_none() || job.dev.start_command.is_none())
                    && !cfg.stacks.contains_key(&job.dev.stack)
                {
                    errors.push(err(
                        &["jobs", name, "dev", "stack"],
                        format!(
                            "job {name}: unknown dev stack \"{}\" ({}); or set stop-command and \
                             start-command, or enabled = false",
                            job.dev.stack,
                            known()
                        ),
                    ));
                }
                let q = &job.quiesce;
                match q.mode {
                    QuiesceMode::Pause | QuiesceMode::Stop => {
                        if (q.command.is_none() || q.resume_command.is_none())
                            && !cfg.stacks.contains_key(&q.stack)
                        {
                            errors.push(err(
                                &["jobs", name, "quiesce", "stack"],
                                format!(
                                    "job {name}: unknown production stack \"{}\" ({}); or set \
                                     command and resume-command",
                                    q.stack,
                                    known()
                                ),
                            ));
                        }
                        if q.command.is_some() != q.resume_command.is_some() {
                            errors.push(err(
                                &["jobs", name, "quiesce"],
                                format!(
                                    "job {name}: quiesce command and resume-command go together: \
                                     set both, or neither to use compose {}",
                                    q.mode.as_str()
                                ),
                            ));
                        }
                    }
                    QuiesceMode::Snapshot => {
                        if q.command.is_none() || q.snapshot_source.is_none() {
                            errors.push(err(
                                &["jobs", name, "quiesce"],
                                format!(
                                    "job {name}: quiesce mode \"snapshot\" needs command = [...] \
                                     (makes the snapshot) and snapshot-source = \"PATH\" (the \
                                     folder pass 2 copies from)"
                                ),
                            ));
                        }
                    }
                    QuiesceMode::None => {}
                }
                for (k, c) in [
                    ("sync-command", &job.sync_command),
                    ("verify-command", &job.verify_command),
                    ("command", &q.command),
                    ("resume-command", &q.resume_command),
                    ("stop-command", &job.dev.stop_command),
                    ("start-command", &job.dev.start_command),
                ] {
                    if c.as_ref().is_some_and(Vec::is_empty) {
                        errors.push(err(
                            &keys(k),
                            format!(
                                "job {name}: {k} is empty: write [\"program\", \"arg\", ...] or \
                                 remove the key"
                            ),
                        ));
                    }
                }
            }
            JobKind::StackUpdate => match &job.stack {
                None => {
                    errors.push(err(
                        &["jobs", name],
                        format!(
                            "job {name}: kind \"stack-update\" needs stack = \"NAME\" ({})",
                            known()
                        ),
                    ));
                }
                Some(s) if !cfg.stacks.contains_key(s) => {
                    errors.push(err(
                        &keys("stack"),
                        format!("job {name}: unknown stack \"{s}\" ({})", known()),
                    ));
                }
                Some(_) => {}
            },
            JobKind::Command => {
                if job.command.as_ref().is_none_or(Vec::is_empty) {
                    errors.push(err(
                        &["jobs", name],
                        format!(
                            "job {name}: kind \"command\" needs command = [\"program\", \"arg\", \
                             ...]"
                        ),
                    ));
                }
            }
            JobKind::Certs => {}
        }
    }
    errors
}

/// A sync source and target must differ and neither may contain the other.
fn check_pair(cfg: &Config, src: &Path, dst: &Path) -> Result<(), String> {
    if super::is_remote(src) || super::is_remote(dst) {
        return Ok(());
    }
    let s = normalize(&cfg.path(src));
    let d = normalize(&cfg.path(dst));
    if s == d {
        return Err(format!(
            "sync target {} is the source itself: point target at the dev copy, for example \
             \"./dev-data\"",
            dst.display()
        ));
    }
    if d.starts_with(&s) {
        return Err(format!(
            "sync target {} lies inside the source {}: the mirror would copy itself; use a \
             folder next to the source, for example \"./dev-data\"",
            dst.display(),
            src.display()
        ));
    }
    if s.starts_with(&d) {
        return Err(format!(
            "sync source {} lies inside the target {}: the mirror would delete its own source; \
             use separate folders such as \"./data\" and \"./dev-data\"",
            src.display(),
            dst.display()
        ));
    }
    Ok(())
}

/// An absolute path without `.` and `..`, following symlinks where the path exists.
fn normalize(p: &Path) -> PathBuf {
    if let Ok(c) = p.canonicalize() {
        return c;
    }
    let abs = if p.is_absolute() {
        p.to_owned()
    } else {
        std::env::current_dir().unwrap_or_default().join(p)
    };
    let mut out = PathBuf::new();
    for c in abs.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    // The longest existing ancestor may be a symlink: resolve it.
    let mut existing = out.clone();
    let mut rest = Vec::new();
    while !existing.exists() {
        match existing.file_name() {
            Some(n) => rest.push(n.to_owned()),
            None => return out,
        }
        if !existing.pop() {
            return out;
        }
    }
    let mut resolved = existing.canonicalize().unwrap_or(existing);
    for n in rest.iter().rev() {
        resolved.push(n);
    }
    resolved
}

/// Puts a message found after loading at the key it comes from (`FILE:LINE:COLUMN`), or at
/// the file when its text cannot be read again (or there is no file: the built-in defaults).
pub(super) struct Placer {
    file: PathBuf,
    text: Option<String>,
}

impl Placer {
    pub(super) fn new(cfg: &Config) -> Placer {
        Placer {
            file: cfg
                .file
                .clone()
                .unwrap_or_else(|| PathBuf::from("(built-in defaults)")),
            text: cfg
                .file
                .as_ref()
                .and_then(|f| std::fs::read_to_string(f).ok()),
        }
    }

    /// The file's text, when it could be read.
    pub(super) fn text(&self) -> Option<&str> {
        self.text.as_deref()
    }

    pub(super) fn at(&self, keys: &[&str], message: String) -> ConfigError {
        match &self.text {
            Some(t) => at(&self.file, t, offset_of(t, keys), message),
            None => ConfigError::Invalid {
                path: self.file.clone(),
                message,
            },
        }
    }
}

/// Filesystem checks: sync sources exist, targets' parents exist.
pub(super) fn paths(cfg: &Config) -> Vec<ConfigError> {
    let placer = Placer::new(cfg);
    let place = |keys: &[&str], message: String| placer.at(keys, message);
    let mut errors = Vec::new();
    let mut pairs = vec![(
        "[sync]".to_string(),
        vec!["sync".to_string(), "source".into()],
        vec!["sync".to_string(), "target".into()],
        &cfg.sync.source,
        &cfg.sync.target,
    )];
    for (name, job) in &cfg.jobs {
        if job.kind == JobKind::Sync {
            let keys = |k: &str, own: bool| {
                if own {
                    vec!["jobs".to_string(), name.clone(), k.to_string()]
                } else {
                    vec!["sync".to_string(), k.to_string()]
                }
            };
            pairs.push((
                format!("[jobs.{name}]"),
                keys("source", job.source.is_some()),
                keys("target", job.target.is_some()),
                job.source.as_ref().unwrap_or(&cfg.sync.source),
                job.target.as_ref().unwrap_or(&cfg.sync.target),
            ));
        }
    }
    let mut seen = std::collections::BTreeSet::new();
    for (section, src_keys, dst_keys, src, dst) in pairs {
        if !seen.insert((src.clone(), dst.clone())) {
            continue;
        }
        let src_keys: Vec<&str> = src_keys.iter().map(String::as_str).collect();
        let dst_keys: Vec<&str> = dst_keys.iter().map(String::as_str).collect();
        let s = cfg.path(src);
        if super::is_remote(dst) || super::is_remote(src) {
            // Checked on the other host by the run itself.
            continue;
        }
        if !s.is_dir() {
            errors.push(place(
                &src_keys,
                format!(
                    "{section}: sync source {} does not exist or is not a folder: create it, \
                     mount it, or set source = \"PATH\" to where the production data lives",
                    s.display()
                ),
            ));
        }
        let d = cfg.path(dst);
        let parent = d.parent().filter(|p| !p.as_os_str().is_empty());
        if let Some(parent) = parent.filter(|p| !p.is_dir()) {
            errors.push(place(
                &dst_keys,
                format!(
                    "{section}: the folder {} that should hold the sync target does not exist: \
                     create it or fix target",
                    parent.display()
                ),
            ));
        }
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions_for_unknown_keys() {
        let m = "unknown field `schedul`, expected one of `kind`, `schedule`, `timezone`";
        assert_eq!(
            did_you_mean(m),
            "unknown key `schedul`: did you mean `schedule`? (allowed here: kind, schedule, timezone)"
        );
        let m = "unknown field `zzzzzzzz`, expected one of `kind`, `schedule`";
        assert_eq!(
            did_you_mean(m),
            "unknown key `zzzzzzzz`: allowed here: kind, schedule"
        );
        assert_eq!(did_you_mean("other"), "other");
    }

    #[test]
    fn offsets_of_nested_keys() {
        let text = "[general]\nstate-dir = \"s\"\n\n[jobs.a]\nkind = \"sync\"\n[jobs.a.dev]\nstack = \"x\"\n";
        let line = |keys: &[&str]| text[..offset_of(text, keys)].matches('\n').count() + 1;
        assert_eq!(line(&["general", "state-dir"]), 2);
        assert_eq!(line(&["jobs", "a", "kind"]), 5);
        assert_eq!(line(&["jobs", "a", "dev", "stack"]), 7);
        // A missing key points at its deepest existing parent.
        assert_eq!(line(&["jobs", "a", "missing"]), 4);
    }
}
