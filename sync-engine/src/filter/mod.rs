//! Filter rules as rsync has them: `--filter` rules, `--include`/`--exclude` patterns and the
//! files `merge` and `dir-merge` (`-F`: `.rsync-filter`) read, in order, first match wins.
//!
//! Every rule applies to the sender (what SRC puts into the transfer: an excluded entry is left
//! out, and an excluded directory is not descended into), to the receiver (what is protected
//! from deletion in DST: an excluded entry is kept, an included one is at risk), or to both,
//! which is the default (`hide`/`show` are sender-only, `protect`/`risk` receiver-only; with
//! `--delete-excluded` the default rules become sender-only, so excluded entries are deleted
//! from DST). Per-directory files are read on each side from the tree being scanned, as rsync
//! does with `--delete-during`: SRC's decide what is copied, DST's what is protected.
//!
//! Syntax in [`parse`], patterns in [`pattern`].

mod parse;
mod pattern;

use std::sync::Arc;

use globset::Candidate;

use crate::error::Error;
pub use parse::{Action, Sides};
use parse::{MergeOpts, Parsed};
use pattern::Pattern;

/// Reads a per-directory filter file of one directory by name (`None`: there is none).
pub type ReadFile<'a> = dyn FnMut(&[u8]) -> std::io::Result<Option<Vec<u8>>> + 'a;

/// Which tree a decision is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Sender,
    Receiver,
}

/// One compiled include/exclude rule.
#[derive(Debug, Clone)]
struct Rule {
    pattern: Pattern,
    action: Action,
    sides: Sides,
    negate: bool,
    /// Given on the command line or in a merge file (not a per-directory file).
    global: bool,
}

#[derive(Debug, Clone)]
enum Item {
    Rule(Rule),
    /// The rules of the per-directory files of [`Filter::merges`]`[k]`, innermost first.
    DirMerge(usize),
}

#[derive(Debug, Clone)]
struct DirMerge {
    /// The file name looked for in every directory.
    name: Vec<u8>,
    opts: MergeOpts,
    /// The name was given with a leading `/`: the parents of the transfer root are read too.
    parents: bool,
}

/// A compiled rule list.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    items: Vec<Item>,
    merges: Vec<DirMerge>,
    delete_excluded: bool,
}

/// The outcome of matching an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// No rule excludes it.
    Keep,
    /// Excluded (sender: left out; receiver: protected from deletion). `plain`: by a rule of the
    /// global list that applies to both sides, so the sender leaves the entry out as well.
    Exclude { plain: bool },
}

/// The per-directory rules in effect in one directory: for each dir-merge rule, the files read
/// in this directory and its parents (innermost first).
#[derive(Debug, Clone, Default)]
pub struct DirRules {
    chains: Vec<Option<Arc<Node>>>,
}

impl DirRules {
    /// No per-directory rules.
    pub const EMPTY: DirRules = DirRules { chains: Vec::new() };
}

#[derive(Debug)]
struct Node {
    /// The directory of the file, relative to the transfer root; for files read from the
    /// parents of the root, `Above(prefix)`: the root's path relative to that parent.
    origin: Origin,
    rules: Vec<Rule>,
    inherit: bool,
    /// The rules of the parents' files (none after a clear rule `!`).
    parent: Option<Arc<Node>>,
}

#[derive(Debug, Clone)]
enum Origin {
    Inside(Vec<u8>),
    Above(Vec<u8>),
}

fn pattern_error(rule: &str, message: String) -> Error {
    Error::Pattern {
        pattern: rule.to_string(),
        message,
    }
}

/// How deep merge files may nest (a loop otherwise).
const MAX_MERGE_DEPTH: usize = 16;

/// Replaces each `merge -` rule (`. -`, with any modifiers) of `rules` by the rules it reads
/// from standard input through `stdin`, as rsync's client reads merge files: the engine, and
/// the far end of a remote sync, get them as plain rules (the engine reads other merge files
/// itself). `stdin` is called once per such rule (after the first, it gives what is left:
/// nothing); it is not called when there is none.
pub fn expand_stdin_merges(
    rules: &[String],
    stdin: &mut dyn FnMut() -> std::io::Result<String>,
) -> Result<Vec<String>, Error> {
    fn expand(
        text: &str,
        defaults: &MergeOpts,
        stdin: &mut dyn FnMut() -> std::io::Result<String>,
        depth: usize,
        out: &mut Vec<String>,
    ) -> Result<(), Error> {
        let bad = |m: String| pattern_error(text, m);
        match parse::rule(text, defaults).map_err(bad)? {
            Parsed::Merge { file, opts } if file == "-" => {
                if depth > MAX_MERGE_DEPTH {
                    return Err(bad("merge files nest more than 16 deep (a loop?)".into()));
                }
                let body = stdin().map_err(|e| {
                    bad(format!(
                        "cannot read the merge rules from standard input: {e}"
                    ))
                })?;
                if opts.exclude_self {
                    out.push(format!("- {file}"));
                }
                for r in parse::file_rules(&body, &opts) {
                    expand(&r, &opts, stdin, depth + 1, out)?;
                }
            }
            // Given on the command line: as given (it is parsed again the same way).
            _ if depth == 0 => out.push(text.to_string()),
            parsed => out.push(parsed.to_rule()),
        }
        Ok(())
    }
    let mut out = Vec::with_capacity(rules.len());
    for r in rules {
        expand(r, &MergeOpts::default(), stdin, 0, &mut out)?;
    }
    Ok(out)
}

impl Filter {
    /// Compiles `rules` (rsync filter syntax, in order) followed by `excludes` (plain patterns,
    /// as `--exclude` gives them). `read` reads a `merge` file (a path as given).
    pub fn new(
        rules: &[String],
        excludes: &[String],
        delete_excluded: bool,
        read: &dyn Fn(&str) -> std::io::Result<String>,
    ) -> Result<Filter, Error> {
        let mut f = Filter {
            delete_excluded,
            ..Filter::default()
        };
        for r in rules {
            f.add_rule(r, &MergeOpts::default(), read, 0)?;
        }
        for x in excludes {
            let p = Pattern::new(x).map_err(|m| pattern_error(x, m))?;
            f.items.push(Item::Rule(Rule {
                pattern: p,
                action: Action::Exclude,
                sides: f.default_sides(None),
                negate: false,
                global: true,
            }));
        }
        Ok(f)
    }

    fn default_sides(&self, given: Option<Sides>) -> Sides {
        given.unwrap_or(if self.delete_excluded {
            Sides {
                sender: true,
                receiver: false,
            }
        } else {
            Sides::BOTH
        })
    }

    fn add_rule(
        &mut self,
        text: &str,
        defaults: &MergeOpts,
        read: &dyn Fn(&str) -> std::io::Result<String>,
        depth: usize,
    ) -> Result<(), Error> {
        let bad = |m: String| pattern_error(text, m);
        match parse::rule(text, defaults).map_err(bad)? {
            Parsed::Pattern {
                action,
                sides,
                negate,
                pattern,
            } => {
                let p = Pattern::new(&pattern).map_err(bad)?;
                let sides = self.default_sides(sides);
                self.items.push(Item::Rule(Rule {
                    pattern: p,
                    action,
                    sides,
                    negate,
                    global: true,
                }));
            }
            Parsed::Clear => self.items.clear(),
            Parsed::Merge { file, opts } => {
                if depth > MAX_MERGE_DEPTH {
                    return Err(bad("merge files nest more than 16 deep (a loop?)".into()));
                }
                let body = read(&file).map_err(|e| {
                    bad(format!(
                        "cannot read the merge file {file}: {e}: check the path"
                    ))
                })?;
                if opts.exclude_self {
                    self.push_self_exclude(&file)?;
                }
                for r in parse::file_rules(&body, &opts) {
                    self.add_rule(&r, &opts, read, depth + 1)?;
                }
            }
            Parsed::DirMerge { file, opts } => {
                let parents = file.starts_with('/');
                let name = file.trim_start_matches('/');
                let name = name.rsplit('/').next().unwrap_or(name);
                if name.is_empty() || name == "." || name == ".." {
                    return Err(bad("a dir-merge rule needs a file name".into()));
                }
                self.merges.push(DirMerge {
                    name: name.as_bytes().to_vec(),
                    opts,
                    parents,
                });
                self.items.push(Item::DirMerge(self.merges.len() - 1));
                if opts.exclude_self {
                    self.push_self_exclude(name)?;
                }
            }
        }
        Ok(())
    }

    fn push_self_exclude(&mut self, file: &str) -> Result<(), Error> {
        let name = file.rsplit('/').next().unwrap_or(file);
        let p = Pattern::new(name).map_err(|m| pattern_error(file, m))?;
        self.items.push(Item::Rule(Rule {
            pattern: p,
            action: Action::Exclude,
            sides: self.default_sides(None),
            negate: false,
            global: true,
        }));
        Ok(())
    }

    /// True when there is no rule at all.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// True when some rule can protect entries of DST from deletion.
    pub fn protects(&self) -> bool {
        !self.merges.is_empty()
            || self.items.iter().any(|i| match i {
                Item::Rule(r) => r.sides.receiver && r.action == Action::Exclude,
                Item::DirMerge(_) => true,
            })
    }

    /// The names of the per-directory files looked for in every directory.
    pub fn merge_names(&self) -> impl Iterator<Item = &[u8]> {
        self.merges.iter().map(|m| m.name.as_slice())
    }

    /// True when some per-directory file must also be looked for in the parents of the root.
    pub fn reads_parents(&self) -> bool {
        self.merges.iter().any(|m| m.parents)
    }

    /// The per-directory rules of directory `dir` (relative to the root; empty for the root)
    /// given those of its parent. `read(name)` reads a per-directory file in `dir` (`None`
    /// when it does not exist).
    pub fn enter(
        &self,
        parent: &DirRules,
        dir: &[u8],
        read: &mut ReadFile<'_>,
    ) -> Result<DirRules, Error> {
        self.enter_at(parent, Origin::Inside(dir.to_vec()), read)
    }

    /// Like [`Filter::enter`] for a parent directory of the transfer root, whose path to the
    /// root is `to_root` (for example `path` for `/src` when the root is `/src/path`).
    pub fn enter_above(
        &self,
        parent: &DirRules,
        to_root: &[u8],
        read: &mut ReadFile<'_>,
    ) -> Result<DirRules, Error> {
        let only_parents = DirRules {
            chains: parent.chains.clone(),
        };
        let mut r = self.enter_at(&only_parents, Origin::Above(to_root.to_vec()), &mut |n| {
            if self.merges.iter().any(|m| m.parents && m.name == n) {
                read(n)
            } else {
                Ok(None)
            }
        })?;
        r.chains.resize(self.merges.len(), None);
        Ok(r)
    }

    fn enter_at(
        &self,
        parent: &DirRules,
        origin: Origin,
        read: &mut ReadFile<'_>,
    ) -> Result<DirRules, Error> {
        let mut chains = Vec::with_capacity(self.merges.len());
        for (k, m) in self.merges.iter().enumerate() {
            // The parent's own non-inherited rules stay behind.
            let mut inherited = parent.chains.get(k).cloned().flatten();
            while let Some(n) = inherited.as_ref().filter(|n| !n.inherit) {
                inherited = n.parent.clone();
            }
            let text = read(&m.name).map_err(|e| Error::Pattern {
                pattern: String::from_utf8_lossy(&m.name).into_owned(),
                message: format!("cannot read the per-directory filter file: {e}"),
            })?;
            let Some(text) = text else {
                chains.push(inherited);
                continue;
            };
            let text = String::from_utf8_lossy(&text);
            let mut rules = Vec::new();
            let mut cleared = false;
            for line in parse::file_rules(&text, &m.opts) {
                let bad = |msg: String| pattern_error(&line, msg);
                match parse::rule(&line, &m.opts).map_err(bad)? {
                    Parsed::Pattern {
                        action,
                        sides,
                        negate,
                        pattern,
                    } => rules.push(Rule {
                        pattern: Pattern::new(&pattern).map_err(bad)?,
                        action,
                        sides: self.default_sides(sides),
                        negate,
                        global: false,
                    }),
                    Parsed::Clear => {
                        rules.clear();
                        cleared = true;
                    }
                    Parsed::Merge { .. } | Parsed::DirMerge { .. } => {
                        return Err(bad(
                            "merge and dir-merge rules inside a per-directory file are not \
                             supported: list the rules in the file itself"
                                .into(),
                        ));
                    }
                }
            }
            chains.push(Some(Arc::new(Node {
                origin: origin.clone(),
                rules,
                inherit: !m.opts.no_inherit,
                parent: if cleared { None } else { inherited },
            })));
        }
        Ok(DirRules { chains })
    }

    /// Decides the entry `path` (relative to the root; `name` is its last component) in a
    /// directory whose per-directory rules are `dir`.
    pub fn decide(
        &self,
        dir: &DirRules,
        path: &[u8],
        name: &[u8],
        is_dir: bool,
        side: Side,
    ) -> Verdict {
        let cand = pattern::candidate(path);
        for item in &self.items {
            match item {
                Item::Rule(r) => {
                    if let Some(v) = r.test(path, name, is_dir, &cand, side) {
                        return v;
                    }
                }
                Item::DirMerge(k) => {
                    let mut node = dir.chains.get(*k).and_then(Option::as_ref);
                    while let Some(n) = node {
                        let rel = n.relative(path);
                        let c = pattern::candidate(&rel);
                        for r in &n.rules {
                            if let Some(v) = r.test(&rel, name, is_dir, &c, side) {
                                return v;
                            }
                        }
                        node = n.parent.as_ref();
                    }
                }
            }
        }
        Verdict::Keep
    }
}

impl Node {
    /// `path` relative to the directory of this node's file.
    fn relative(&self, path: &[u8]) -> Vec<u8> {
        match &self.origin {
            Origin::Inside(base) if base.is_empty() => path.to_vec(),
            Origin::Inside(base) => path
                .strip_prefix(base.as_slice())
                .and_then(|p| p.strip_prefix(b"/"))
                .unwrap_or(path)
                .to_vec(),
            Origin::Above(prefix) => {
                let mut p = prefix.clone();
                p.push(b'/');
                p.extend_from_slice(path);
                p
            }
        }
    }
}

impl Rule {
    fn test(
        &self,
        path: &[u8],
        name: &[u8],
        is_dir: bool,
        cand: &Candidate<'_>,
        side: Side,
    ) -> Option<Verdict> {
        let applies = match side {
            Side::Sender => self.sides.sender,
            Side::Receiver => self.sides.receiver,
        };
        if !applies || self.pattern.matches(path, name, is_dir, cand) == self.negate {
            return None;
        }
        Some(match self.action {
            Action::Include => Verdict::Keep,
            Action::Exclude => Verdict::Exclude {
                plain: self.global && self.sides.sender && self.sides.receiver,
            },
        })
    }
}

#[cfg(test)]
mod tests;
