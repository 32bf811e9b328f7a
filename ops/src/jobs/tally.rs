//! What the nightly job learns from the events of one `opsync sync` or `opsync verify` child:
//! every error, warning, difference and repair logged with its path (fields `job`, `step`,
//! `path`, `kind`), counted, and the first [`PathList::FIRST`] paths of each kept for the state;
//! the copied files and bytes (from the summary, or counted from the `item` events when the
//! child was stopped before it printed one); and for the `check` step the recheck list for
//! pass 2. Memory stays bounded: counts and a few paths, the recheck list goes to a file.

use std::io::Write;

use sync_engine::itemize::escape_name;

use crate::events::{Event, EventPath, Summary, VerifySummary};
use opsync_core::state::{PathList, StepDetail};

/// Which step the events come from: what is expected there and how it is logged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Pass 1 on live data: files that vanish or change while copied are expected.
    Pass1,
    /// `opsync verify` on live data: differences are expected for files being written; those of
    /// kind `content` (same size and mtime, other content) go to the recheck list.
    Check,
    /// Pass 2. `whole_tree`: it runs `--verify` (differences, then the repair, then the
    /// differences left). Otherwise a copy made because the contents differed while size and
    /// mtime were equal (itemize `>fc` without `s` or `t`: a file from the recheck list, or a
    /// racily clean copy) is a repair.
    Pass2 { whole_tree: bool },
}

/// The events of one step, read as they arrive.
pub struct Tally<'a> {
    job: &'a str,
    step: &'a str,
    role: Role,
    copies: u64,
    copy_bytes: u64,
    pub errors: PathList,
    pub warnings: PathList,
    pub differences: PathList,
    pub repaired: PathList,
    pub remaining: PathList,
    pub summary: Option<Summary>,
    pub verify_summary: Option<VerifySummary>,
    /// The message of a `fatal` event.
    pub fatal: Option<String>,
    /// `--verify` of pass 2 prints the differences it finds, then the repair's items, then the
    /// differences still there: a difference after an item after a difference is one left.
    saw_difference: bool,
    repair_started: bool,
    /// Check: where the paths with other content go (NUL-separated), and the first write error.
    recheck: Option<Box<dyn Write + 'a>>,
    pub recheck_count: u64,
    pub recheck_error: Option<std::io::Error>,
    /// Check: the paths whose mtime differs. Verify reports a file's attributes before its
    /// content, so a content difference on one of these is one the quick check of pass 2 sees
    /// by itself (memory follows the differences, not the tree).
    mtime_differs: std::collections::HashSet<Vec<u8>>,
}

impl<'a> Tally<'a> {
    pub fn new(job: &'a str, step: &'a str, role: Role) -> Tally<'a> {
        Tally {
            job,
            step,
            role,
            copies: 0,
            copy_bytes: 0,
            errors: PathList::default(),
            warnings: PathList::default(),
            differences: PathList::default(),
            repaired: PathList::default(),
            remaining: PathList::default(),
            summary: None,
            verify_summary: None,
            fatal: None,
            saw_difference: false,
            repair_started: false,
            recheck: None,
            recheck_count: 0,
            recheck_error: None,
            mtime_differs: std::collections::HashSet::new(),
        }
    }

    /// The check writes the paths of kind `content` to `out`, each followed by a NUL byte.
    pub fn with_recheck_list(mut self, out: Box<dyn Write + 'a>) -> Tally<'a> {
        self.recheck = Some(out);
        self
    }

    /// Takes one event: logs it, counts it, keeps its path.
    pub fn event(&mut self, e: Event) {
        let (job, step) = (self.job, self.step);
        match e {
            Event::Item(i) => {
                let path = show(&i.path);
                tracing::debug!(job, step, path = %path, kind = %i.op, itemize = %i.itemize, "item");
                if self.saw_difference {
                    self.repair_started = true;
                }
                if i.op != "copy" {
                    return;
                }
                self.copies += 1;
                self.copy_bytes += i.bytes;
                if self.role == (Role::Pass2 { whole_tree: false }) && content_only(&i.itemize) {
                    tracing::warn!(
                        job,
                        step,
                        path = %path,
                        kind = "content",
                        "repaired: the dev copy had the size and mtime of production's file but \
                         other content; copied again and read back"
                    );
                    self.repaired.add("content", &path);
                }
            }
            Event::Error(x) => {
                let path = show(&x.path);
                let kind = if x.op.is_empty() { "error" } else { &x.op };
                if self.role == Role::Pass1 {
                    tracing::warn!(job, step, path = %path, kind, side = %x.side,
                        "{}: on live data; pass 2 copies this file again", x.message);
                } else {
                    tracing::error!(job, step, path = %path, kind, side = %x.side, "{}", x.message);
                }
                self.errors.add(kind, &path);
            }
            Event::Warning(w) => {
                let path = show(&w.path);
                let expected = self.role == Role::Pass1
                    && matches!(w.kind.as_str(), "vanished" | "changed-during-copy");
                if expected {
                    tracing::warn!(job, step, path = %path, kind = %w.kind,
                        "{}: expected on live data: pass 2 copies these files again", w.message);
                } else {
                    tracing::warn!(job, step, path = %path, kind = %w.kind, "{}", w.message);
                }
                self.warnings.add(&w.kind, &path);
            }
            Event::Difference(d) => {
                let path = show(&d.path);
                self.repair_started |= d.remaining;
                self.difference(&d.kind, &d.what, &d.path, &path);
            }
            Event::Repaired(r) => {
                let path = show(&r.path);
                tracing::warn!(
                    job,
                    step,
                    path = %path,
                    kind = "repaired",
                    "repaired: differed from production after the sync; copied again by content \
                     and now equal"
                );
                self.repaired.add("", &path);
            }
            Event::Summary(s) => self.summary = Some(s),
            Event::VerifySummary(s) => self.verify_summary = Some(s),
            Event::Fatal(f) => {
                tracing::error!(job, step, exit_code = f.exit_code, "{}", f.message);
                self.fatal = Some(f.message);
            }
        }
    }

    fn difference(&mut self, kind: &str, what: &str, raw: &EventPath, path: &str) {
        let (job, step) = (self.job, self.step);
        match self.role {
            Role::Check if kind == "content" && self.mtime_differs.contains(&raw.to_bytes()) => {
                tracing::info!(job, step, path = %path, kind,
                    "{what}, and so does the mtime (expected on live data for files being \
                     written; pass 2 copies it)");
                self.differences.add(kind, path);
            }
            Role::Check if kind == "content" => {
                tracing::warn!(
                    job,
                    step,
                    path = %path,
                    kind,
                    "{what}, with the same size and mtime: pass 2 compares this file by content"
                );
                self.differences.add(kind, path);
                self.add_recheck(raw);
            }
            Role::Check => {
                if kind == "mtime" {
                    self.mtime_differs.insert(raw.to_bytes());
                }
                tracing::info!(job, step, path = %path, kind,
                    "{what} (expected on live data for files being written; pass 2 copies them)");
                self.differences.add(kind, path);
            }
            Role::Pass2 { whole_tree: true } if self.repair_started => {
                tracing::error!(job, step, path = %path, kind, "{what}: still differs after the repair");
                self.remaining.add(kind, path);
            }
            Role::Pass2 { whole_tree: true } => {
                self.saw_difference = true;
                tracing::warn!(job, step, path = %path, kind,
                    "{what}: differs after the sync; copying it again by content");
                self.differences.add(kind, path);
            }
            Role::Pass1 | Role::Pass2 { .. } => {
                tracing::warn!(job, step, path = %path, kind, "{what}");
                self.differences.add(kind, path);
            }
        }
    }

    fn add_recheck(&mut self, p: &EventPath) {
        let bytes = p.to_bytes();
        let Some(out) = self.recheck.as_mut() else {
            return;
        };
        if bytes.is_empty() || self.recheck_error.is_some() {
            return;
        }
        match out.write_all(&bytes).and_then(|()| out.write_all(b"\0")) {
            Ok(()) => self.recheck_count += 1,
            Err(e) => self.recheck_error = Some(e),
        }
    }

    /// Flushes the recheck list, reconciles the counts with the summary's, and returns what the
    /// state records.
    pub fn finish(&mut self) -> StepDetail {
        if let Some(mut out) = self.recheck.take() {
            if let Err(e) = out.flush() {
                self.recheck_error.get_or_insert(e);
            }
        }
        let (files, bytes) = match &self.summary {
            Some(s) => (s.files_transferred, s.bytes_copied),
            None => (self.copies, self.copy_bytes),
        };
        if let Some(v) = self.summary.as_ref().and_then(|s| s.verify) {
            self.differences.count = self.differences.count.max(v.differences);
            self.repaired.count = self.repaired.count.max(v.repaired);
            self.remaining.count = v.remaining;
            // No repair items between the two checks: the differences left are the ones found
            // that were not repaired.
            if v.remaining > 0 && self.remaining.paths.is_empty() {
                self.remaining.paths = self
                    .differences
                    .paths
                    .iter()
                    .filter(|p| !self.repaired.paths.contains(p))
                    .cloned()
                    .collect();
            }
        }
        if let Some(v) = &self.verify_summary {
            self.differences.count = self.differences.count.max(v.differences);
        }
        let is_sync = self.role != Role::Check;
        StepDetail {
            files: is_sync.then_some(files),
            bytes: is_sync.then_some(bytes),
            errors: std::mem::take(&mut self.errors).some(),
            warnings: std::mem::take(&mut self.warnings).some(),
            differences: self.differences.clone().some(),
            repaired: self.repaired.clone().some(),
            remaining: self.remaining.clone().some(),
        }
    }
}

/// The path as printed by `opsync sync -i`: bytes that are not printable as `\#ooo`.
fn show(p: &EventPath) -> String {
    let b = p.to_bytes();
    if b.is_empty() {
        ".".to_string()
    } else {
        escape_name(&b)
    }
}

/// A regular file copied because its content differed while its size and mtime were equal
/// (rsync's itemize `>fc........`, possibly with attribute letters after `t`; `<fc` for a
/// push to another host).
fn content_only(itemize: &str) -> bool {
    let b = itemize.as_bytes();
    b.len() >= 5
        && matches!(b[0], b'>' | b'<')
        && b[1] == b'f'
        && b[2] == b'c'
        && b[3] == b'.'
        && b[4] == b'.'
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(lines: &[&str]) -> Vec<Event> {
        lines
            .iter()
            .map(|l| Event::parse(l).unwrap_or_else(|| panic!("{l}")))
            .collect()
    }

    #[test]
    fn content_only_copies() {
        assert!(content_only(">fc........"));
        assert!(content_only(">fc....o..."));
        assert!(content_only("<fc........"));
        assert!(!content_only(">fcst......"));
        assert!(!content_only(">f.st......"));
        assert!(!content_only(">f+++++++++"));
        assert!(!content_only("cLc........"));
    }

    #[test]
    fn check_writes_the_content_differences_to_the_recheck_list() {
        let mut list = Vec::new();
        let mut t = Tally::new("n", "check", Role::Check).with_recheck_list(Box::new(&mut list));
        for e in parse(&[
            r#"{"type":"difference","path":"db/base.dat","kind":"content","what":"content differs"}"#,
            r#"{"type":"difference","path":"log","kind":"size","what":"size 1 != 2"}"#,
            r#"{"type":"difference","path":"bad\ufffd","path_bytes":[98,97,100,255],"kind":"content","what":"content differs"}"#,
            r#"{"type":"verify_summary","differences":3,"exit_code":8}"#,
        ]) {
            t.event(e);
        }
        let d = t.finish();
        assert_eq!(t.recheck_count, 2);
        drop(t);
        assert_eq!(list, b"db/base.dat\0bad\xff\0");
        let diffs = d.differences.unwrap();
        assert_eq!(diffs.count, 3);
        assert_eq!(diffs.kinds["content"], 2);
        assert_eq!(diffs.paths, ["db/base.dat", "log", "bad\\#377"]);
        assert_eq!(d.files, None);
    }

    #[test]
    fn a_content_difference_with_another_mtime_is_left_to_the_quick_check() {
        let mut list = Vec::new();
        let mut t = Tally::new("n", "check", Role::Check).with_recheck_list(Box::new(&mut list));
        for e in parse(&[
            r#"{"type":"difference","path":"db/live","kind":"mtime","what":"mtime 1 != 2"}"#,
            r#"{"type":"difference","path":"db/live","kind":"content","what":"content differs"}"#,
            r#"{"type":"difference","path":"db/stale","kind":"content","what":"content differs"}"#,
        ]) {
            t.event(e);
        }
        let d = t.finish();
        assert_eq!(t.recheck_count, 1);
        drop(t);
        assert_eq!(list, b"db/stale\0");
        assert_eq!(d.differences.unwrap().kinds["content"], 2);
    }

    #[test]
    fn whole_tree_verify_tells_repaired_from_remaining() {
        let mut t = Tally::new("n", "pass-2", Role::Pass2 { whole_tree: true });
        for e in parse(&[
            r#"{"type":"item","itemize":">f.st......","op":"copy","path":"new","bytes":4}"#,
            r#"{"type":"difference","path":"a","kind":"content","what":"content differs"}"#,
            r#"{"type":"difference","path":"b","kind":"content","what":"content differs"}"#,
            r#"{"type":"difference","path":"b","kind":"mode","what":"mode 0600 != 0644"}"#,
            r#"{"type":"item","itemize":">fc........","op":"copy","path":"a","bytes":2}"#,
            r#"{"type":"item","itemize":">fc........","op":"copy","path":"b","bytes":2}"#,
            r#"{"type":"difference","path":"b","kind":"content","what":"content differs"}"#,
            r#"{"type":"repaired","path":"a"}"#,
            r#"{"type":"summary","files_transferred":3,"bytes_copied":8,"exit_code":8,"verify":{"differences":3,"repaired":1,"remaining":1}}"#,
        ]) {
            t.event(e);
        }
        let d = t.finish();
        assert_eq!((d.files, d.bytes), (Some(3), Some(8)));
        assert_eq!(d.differences.unwrap().paths, ["a", "b"]);
        assert_eq!(d.repaired.unwrap().paths, ["a"]);
        let left = d.remaining.unwrap();
        assert_eq!((left.count, left.paths), (1, vec!["b".to_string()]));
    }

    #[test]
    fn a_stopped_pass_counts_the_items_it_saw() {
        let mut t = Tally::new("n", "pass-2", Role::Pass2 { whole_tree: false });
        for e in parse(&[
            r#"{"type":"item","itemize":">f+++++++++","op":"copy","path":"a","bytes":10}"#,
            r#"{"type":"item","itemize":"cd+++++++++","op":"mkdir","path":"d"}"#,
            r#"{"type":"item","itemize":">fc........","op":"copy","path":"d/b","bytes":5}"#,
            r#"{"type":"warning","kind":"vanished","path":"c","message":"file has vanished: c"}"#,
        ]) {
            t.event(e);
        }
        let d = t.finish();
        assert_eq!((d.files, d.bytes), (Some(2), Some(15)));
        assert_eq!(d.repaired.unwrap().paths, ["d/b"]);
        assert_eq!(d.warnings.unwrap().kinds["vanished"], 1);
    }
}
