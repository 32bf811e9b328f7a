//! Every mistake of a file in one run: serde stops at the first error, so each error found is
//! reported at its place, the offending line (a `[table]` header: the whole table) is blanked
//! out with spaces (offsets and line numbers stay the same) and the file is read again, until
//! it parses; then the checks across keys run on what is left.

use std::collections::BTreeSet;
use std::path::Path;

use super::{Config, ConfigError, validate};

/// Stops a file with a pathological number of mistakes from being read again and again.
const MAX_ERRORS: usize = 100;

/// The config read from `text` (none when the syntax could not be repaired) and every mistake
/// found, in the order of the file.
pub(super) fn collect(path: &Path, text: &str) -> (Option<Config>, Vec<ConfigError>) {
    let mut work = text.to_string();
    let mut errors: Vec<(usize, ConfigError)> = Vec::new();
    let mut blanked_keys: BTreeSet<String> = BTreeSet::new();
    let cfg = loop {
        let e = match toml::from_str::<Config>(&work) {
            Ok(cfg) => break Some(cfg),
            Err(e) => e,
        };
        let Some(span) = e.span() else {
            errors.push((
                usize::MAX,
                ConfigError::Invalid {
                    path: path.to_owned(),
                    message: validate::did_you_mean(&validate::one_line(e.message())),
                },
            ));
            break None;
        };
        let message = e.message();
        // A required key whose line was blanked for its own mistake is missing now: that is
        // not a second mistake.
        let follow_up = message
            .strip_prefix("missing field `")
            .and_then(|m| m.split('`').next())
            .is_some_and(|k| blanked_keys.contains(k));
        if !follow_up {
            let e = validate::place(path, text, span.start, message);
            // `schedul = ...` blanked: `schedule` missing next is the same mistake.
            if let Some(meant) = e.to_string().split("did you mean `").nth(1) {
                blanked_keys.insert(meant.split('`').next().unwrap_or("").to_string());
            }
            errors.push((span.start, e));
        }
        if errors.len() >= MAX_ERRORS {
            break None;
        }
        let before = work.clone();
        if let Some(key) = blank_at(&mut work, span.start, follow_up) {
            blanked_keys.insert(key);
        }
        if work == before {
            break None;
        }
    };
    let mut cfg = cfg;
    if let Some(c) = cfg.as_mut() {
        c.finish(path, &work);
        let semantic = validate::semantic(c, path, &work);
        errors.extend(semantic.into_iter().map(|e| (offset_of_error(text, &e), e)));
    }
    errors.sort_by_key(|(offset, _)| *offset);
    let mut seen = BTreeSet::new();
    let errors = errors
        .into_iter()
        .map(|(_, e)| e)
        .filter(|e| seen.insert(e.to_string()))
        .collect();
    (cfg, errors)
}

/// Byte offset of an error's line and column, for sorting.
fn offset_of_error(text: &str, e: &ConfigError) -> usize {
    let ConfigError::At { line, column, .. } = e else {
        return usize::MAX;
    };
    let start: usize = text
        .split_inclusive('\n')
        .take(line.saturating_sub(1))
        .map(str::len)
        .sum();
    start + column.saturating_sub(1)
}

/// Replaces the line at `offset` with spaces; a table header with its whole table, and so does
/// `whole_table` (a table missing a required key). Returns the key of a blanked `key = value`.
fn blank_at(text: &mut String, offset: usize, whole_table: bool) -> Option<String> {
    let offset = offset.min(text.len());
    let start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
    let end = text[offset..].find('\n').map_or(text.len(), |i| offset + i);
    let line = text[start..end].trim_start().to_string();
    let (from, to, key) = if line.starts_with('[') || whole_table {
        // The table the offset is in: from its header to the next header.
        let header = if line.starts_with('[') {
            start
        } else {
            header_before(text, start)
        };
        (header, next_header(text, end), None)
    } else {
        let key = line
            .split('=')
            .next()
            .map(|k| k.trim().trim_matches('"').to_string())
            .filter(|k| !k.is_empty());
        (start, end, key)
    };
    let blank: String = text[from..to]
        .chars()
        .map(|c| if c == '\n' { '\n' } else { ' ' })
        .collect();
    text.replace_range(from..to, &blank);
    key.map(|k| k.rsplit('.').next().unwrap_or(&k).to_string())
}

/// Start of the header line of the table that holds the line starting at `line_start`.
fn header_before(text: &str, line_start: usize) -> usize {
    let mut pos = 0;
    let mut header = 0;
    for l in text.split_inclusive('\n') {
        if pos >= line_start {
            break;
        }
        if l.trim_start().starts_with('[') {
            header = pos;
        }
        pos += l.len();
    }
    header
}

/// Start of the first header line after `from`, or the end of the text.
fn next_header(text: &str, from: usize) -> usize {
    let mut pos = from;
    for l in text[from..].split_inclusive('\n') {
        if pos > from && l.trim_start().starts_with('[') {
            return pos;
        }
        pos += l.len();
    }
    text.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors(text: &str) -> Vec<String> {
        collect(Path::new("opsync.toml"), text)
            .1
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn every_mistake_in_one_run() {
        let text = "[general]\nstate-dirr = \"s\"\n\n[sync]\nmax-delete = 5\n\n\
                    [jobs.a]\nkind = \"sync\"\nschedul = \"0 2 * * *\"\n\n\
                    [jobs.b]\nkind = \"command\"\nschedule = \"0 2 * *\"\ncommand = [\"true\"]\n\n\
                    [sink]\nx = 1\n";
        let e = errors(text);
        assert_eq!(e.len(), 5, "{e:#?}");
        assert!(
            e[0].starts_with("opsync.toml:2:1: unknown key `state-dirr`"),
            "{e:#?}"
        );
        assert!(e[1].starts_with("opsync.toml:5:1: max-delete"), "{e:#?}");
        assert!(
            e[1].contains("write \"5\" (at most 5 deletions) or \"5%\""),
            "{e:#?}"
        );
        assert!(
            e[2].starts_with("opsync.toml:9:1: unknown key `schedul`"),
            "{e:#?}"
        );
        assert!(e[3].starts_with("opsync.toml:13:12: schedule"), "{e:#?}");
        assert!(e[4].starts_with("opsync.toml:16:"), "{e:#?}");
        assert!(e[4].contains("did you mean `sync`"), "{e:#?}");
    }

    #[test]
    fn a_blanked_required_key_is_not_a_second_mistake() {
        let e = errors("[jobs.a]\nkind = \"synk\"\nschedule = \"0 2 * * *\"\n");
        assert_eq!(e.len(), 1, "{e:#?}");
        assert!(e[0].starts_with("opsync.toml:2:"), "{e:#?}");
    }

    #[test]
    fn mistakes_across_keys_are_all_reported() {
        let e = errors(
            "[jobs.u]\nkind = \"stack-update\"\nschedule = \"0 2 * * *\"\nstack = \"nope\"\n\n\
             [jobs.c]\nkind = \"command\"\nschedule = \"0 2 * * *\"\n",
        );
        assert_eq!(e.len(), 2, "{e:#?}");
    }
}
