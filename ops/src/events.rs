//! The JSON lines of `opsync sync --json` and `opsync verify --json`, one type per event: the
//! typed contract between the printer ([`crate::output`]) and the nightly job, which runs
//! `opsync sync` and `opsync verify` as child processes and reads their events back
//! ([`crate::jobs`]). Adding a field is compatible in both directions (unknown fields are
//! ignored, missing ones default); renaming one is not.

use serde::{Deserialize, Serialize};

/// A path relative to the roots as it travels in JSON: `path` is the name as text (exact when
/// the name is UTF-8; with U+FFFD for the bytes that are not), `path_bytes` the exact bytes,
/// present only when the name is not UTF-8.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct EventPath {
    pub path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_bytes: Option<Vec<u8>>,
}

impl EventPath {
    /// The JSON form of a path given as bytes (empty: the root, written `.`).
    pub fn from_bytes(p: &[u8]) -> EventPath {
        if p.is_empty() {
            return EventPath {
                path: ".".into(),
                path_bytes: None,
            };
        }
        match std::str::from_utf8(p) {
            Ok(s) => EventPath {
                path: s.to_string(),
                path_bytes: None,
            },
            Err(_) => EventPath {
                path: String::from_utf8_lossy(p).into_owned(),
                path_bytes: Some(p.to_vec()),
            },
        }
    }

    /// The exact bytes of the path (empty for the root).
    pub fn to_bytes(&self) -> Vec<u8> {
        match &self.path_bytes {
            Some(b) => b.clone(),
            None if self.path == "." => Vec::new(),
            None => self.path.as_bytes().to_vec(),
        }
    }
}

/// One line of output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// A change made (or, in a dry run, one that would be made).
    Item(ItemEvent),
    /// An entry that could not be read or written; the run went on.
    Error(ErrorEvent),
    /// Something worth knowing that is not an error of the run.
    Warning(WarningEvent),
    /// A difference found by verification.
    Difference(DifferenceEvent),
    /// A file a verification found different, copied again and found equal.
    Repaired(RepairedEvent),
    /// The end of `opsync sync`.
    Summary(Summary),
    /// The end of `opsync verify`.
    VerifySummary(VerifySummary),
    /// A problem that stopped the run before it changed anything.
    Fatal(FatalEvent),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ItemEvent {
    /// rsync's 11-character itemize field.
    #[serde(default)]
    pub itemize: String,
    /// `copy`, `delete`, `mkdir`, `symlink`, `mknod`, `attrs`, `link` (`-H`), or with `-ii`
    /// `unchanged` (an entry that needed nothing).
    #[serde(default)]
    pub op: String,
    #[serde(flatten)]
    pub path: EventPath,
    /// Bytes of a copied file.
    #[serde(default)]
    pub bytes: u64,
    /// The target of a symlink made or changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorEvent {
    /// What was being done (`copy`, `read directory`, ...).
    #[serde(default)]
    pub op: String,
    /// `source` or `destination`.
    #[serde(default)]
    pub side: String,
    #[serde(flatten)]
    pub path: EventPath,
    /// The whole message, as printed on stderr.
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WarningEvent {
    /// `vanished`, `changed-during-copy` or `not-empty`.
    #[serde(default)]
    pub kind: String,
    #[serde(flatten)]
    pub path: EventPath,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DifferenceEvent {
    #[serde(flatten)]
    pub path: EventPath,
    /// `missing`, `extra`, `type`, `size`, `content`, `mode`, `owner`, `group`, `mtime`,
    /// `link`, `device` or `unreadable`.
    #[serde(default)]
    pub kind: String,
    /// The difference in words, for example `mode 0600 != 0644`.
    pub what: String,
    /// Found by `sync --verify`'s second check, after the repair: the difference stays.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub remaining: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RepairedEvent {
    #[serde(flatten)]
    pub path: EventPath,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FatalEvent {
    pub message: String,
    pub exit_code: u8,
}

/// The last line of `opsync sync --json`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Summary {
    pub dry_run: bool,
    pub exit_code: u8,
    /// Entries in SRC (root excluded).
    pub files_total: u64,
    pub regular_files: u64,
    pub bytes_total: u64,
    pub files_transferred: u64,
    /// Sizes of the files transferred.
    pub bytes_copied: u64,
    /// Bytes written into DST (less than `bytes_copied` for deltas and in-place updates).
    pub bytes_written: u64,
    pub created: u64,
    pub deleted: u64,
    pub attrs_updated: u64,
    /// Files compared by content because their size and mtime could not be trusted.
    pub rechecked: u64,
    /// Files whose source kept changing while copied (copied again by the next run).
    pub unstable: u64,
    pub errors: u64,
    pub vanished: u64,
    pub deletions_disabled: bool,
    pub delete_limited: bool,
    pub cancelled: bool,
    /// With `--verify`: differences found, files repaired, differences left.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verify: Option<VerifyCounts>,
    /// Remote runs: bytes written to and read from the connection.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sent_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub received_bytes: Option<u64>,
    pub seconds: f64,
}

/// What the verification of `opsync sync --verify` found and repaired.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct VerifyCounts {
    pub differences: u64,
    pub repaired: u64,
    pub remaining: u64,
}

/// The last line of `opsync verify --json`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct VerifySummary {
    pub entries: u64,
    pub files_hashed: u64,
    pub bytes_hashed: u64,
    pub differences: u64,
    pub identical: bool,
    pub exit_code: u8,
    pub seconds: f64,
}

impl Event {
    /// One JSON line (without the newline).
    pub fn to_line(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|e| {
            format!(r#"{{"type":"fatal","message":"cannot encode an event: {e}","exit_code":1}}"#)
        })
    }

    /// Parses one line; `None` for a line that is not an event (for example a log line).
    pub fn parse(line: &str) -> Option<Event> {
        serde_json::from_str(line).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_that_are_not_utf8_keep_their_bytes() {
        for p in [&b"db/base.dat"[..], b"", b"bad\xff/name", b"new\nline"] {
            let e = EventPath::from_bytes(p);
            assert_eq!(e.path_bytes.is_some(), std::str::from_utf8(p).is_err());
            assert_eq!(e.to_bytes(), p);
            let line = Event::Repaired(RepairedEvent { path: e.clone() }).to_line();
            assert_eq!(
                Event::parse(&line),
                Some(Event::Repaired(RepairedEvent { path: e }))
            );
        }
    }

    #[test]
    fn summaries_read_back_with_fields_added_or_missing() {
        let s = Summary {
            files_transferred: 3,
            bytes_written: 10,
            verify: Some(VerifyCounts {
                differences: 2,
                repaired: 2,
                remaining: 0,
            }),
            ..Summary::default()
        };
        let line = Event::Summary(s.clone()).to_line();
        assert_eq!(Event::parse(&line), Some(Event::Summary(s)));
        let old = r#"{"type":"summary","files_transferred":2,"bytes_copied":100,"new_field":1}"#;
        let Some(Event::Summary(s)) = Event::parse(old) else {
            panic!("{old}")
        };
        assert_eq!((s.files_transferred, s.bytes_copied), (2, 100));
        assert_eq!(Event::parse("opsync: warning: something"), None);
    }
}
