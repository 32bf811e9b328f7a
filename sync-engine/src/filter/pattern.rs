//! rsync's pattern rules, matched with `globset`:
//!
//! - a pattern without a `/` (other than a trailing one) and without `**` matches the last
//!   component of the path; otherwise it matches the whole path relative to the transfer root
//!   (or to the directory of the per-directory file it came from), at its end unless it starts
//!   with `/`, which anchors it at the start;
//! - a trailing `/` matches directories only; a trailing `/***` matches a directory and
//!   everything in it;
//! - `*` and `?` do not match `/`, `**` matches anything, `[...]` is a class (POSIX classes such
//!   as `[[:digit:]]` included); a backslash escapes only when the pattern has a wildcard, and a
//!   pattern without one is compared as a plain string.
//!
//! globset differs from rsync's wildmatch in two places, so patterns are rewritten before they
//! are compiled: `{`, `}` and `,` are literal in rsync (globset alternates), and a `**` that is
//! not a whole path component (`foo**`, `a**b`) matches across `/` in rsync, which globset
//! spells `{foo*,foo*/**/*}`.

use globset::{Candidate, GlobBuilder, GlobSet, GlobSetBuilder};

/// A compiled pattern.
#[derive(Debug, Clone)]
pub struct Pattern {
    core: Core,
    /// Matches the last component only (no `/` and no `**` in the pattern).
    last: bool,
    /// Anchored at the start of the path (a leading `/`).
    anchored: bool,
    /// Matches directories only (a trailing `/`).
    dir_only: bool,
    /// A trailing `/***`: the directory itself matches as well as its contents.
    with_dir: Option<Box<Pattern>>,
}

#[derive(Debug, Clone)]
enum Core {
    Literal(Vec<u8>),
    Glob(GlobSet),
}

impl Pattern {
    pub fn new(text: &str) -> Result<Pattern, String> {
        if text.is_empty() {
            return Err("the pattern is empty".into());
        }
        if let Some(dir) = text.strip_suffix("/***").filter(|d| !d.is_empty()) {
            // `dir/***`: the directory (as `dir/`) and everything below it (`dir/**`).
            let mut contents = Pattern::new(&format!("{dir}/**"))?;
            contents.with_dir = Some(Box::new(Pattern::new(&format!("{dir}/"))?));
            return Ok(contents);
        }
        let mut p = text;
        let dir_only = p.len() > 1 && p.ends_with('/');
        if dir_only {
            p = &p[..p.len() - 1];
        }
        let anchored = p.starts_with('/');
        if anchored {
            p = &p[1..];
        }
        if p.is_empty() {
            return Err("the pattern is only a slash".into());
        }
        let last = !anchored && !p.contains('/') && !p.contains("**");
        let wild = p.contains(['*', '?', '[']);
        let core = if wild {
            Core::Glob(compile(p, last || anchored)?)
        } else {
            Core::Literal(p.as_bytes().to_vec())
        };
        Ok(Pattern {
            core,
            last,
            anchored,
            dir_only,
            with_dir: None,
        })
    }

    /// True when the entry at `path` (relative to the rule's root, `/`-separated, not empty)
    /// matches; `name` is its last component.
    pub fn matches(&self, path: &[u8], name: &[u8], is_dir: bool, cand: &Candidate<'_>) -> bool {
        if let Some(d) = &self.with_dir
            && d.matches(path, name, is_dir, cand)
        {
            return true;
        }
        if self.dir_only && !is_dir {
            return false;
        }
        match &self.core {
            Core::Literal(lit) if self.last => name == lit.as_slice(),
            Core::Literal(lit) if self.anchored => path == lit.as_slice(),
            Core::Literal(lit) => {
                path == lit.as_slice()
                    || (path.len() > lit.len()
                        && path.ends_with(lit)
                        && path[path.len() - lit.len() - 1] == b'/')
            }
            Core::Glob(set) if self.last => set.is_match(bytes_path(name)),
            Core::Glob(set) => set.is_match_candidate(cand),
        }
    }
}

/// The candidate of a path for [`Pattern::matches`] (made once per entry and rule root).
pub fn candidate(path: &[u8]) -> Candidate<'_> {
    Candidate::new(bytes_path(path))
}

fn bytes_path(b: &[u8]) -> &std::path::Path {
    use std::os::unix::ffi::OsStrExt;
    std::path::Path::new(std::ffi::OsStr::from_bytes(b))
}

/// Compiles rsync pattern text (without its leading or trailing slash) into globs. `whole`:
/// it matches a whole string (a last component, or an anchored path); otherwise any trailing
/// run of path components.
fn compile(p: &str, whole: bool) -> Result<GlobSet, String> {
    let mut set = GlobSetBuilder::new();
    for variant in expand(&translate(p)?) {
        let text = if whole {
            variant
        } else {
            format!("**/{variant}")
        };
        let glob = GlobBuilder::new(&text)
            .literal_separator(true)
            .backslash_escape(true)
            .build()
            .map_err(|e| e.kind().to_string())?;
        set.add(glob);
    }
    set.build().map_err(|e| e.to_string())
}

/// rsync syntax to globset syntax, with each `**` that is not a whole component replaced by
/// the marker `\u{0}` for [`expand`]: braces and commas escaped, POSIX classes spelled out.
fn translate(p: &str) -> Result<String, String> {
    let chars: Vec<char> = p.chars().collect();
    let mut out = String::with_capacity(p.len() + 8);
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '\\' => {
                out.push('\\');
                if let Some(&n) = chars.get(i + 1) {
                    out.push(n);
                    i += 1;
                }
            }
            '{' | '}' | ',' => {
                out.push('\\');
                out.push(c);
            }
            '[' => {
                let (class, next) = class(&chars, i)?;
                out.push_str(&class);
                i = next;
                continue;
            }
            '*' if chars.get(i + 1) == Some(&'*') => {
                let mut j = i;
                while chars.get(j) == Some(&'*') {
                    j += 1;
                }
                let starts = i == 0 || chars[i - 1] == '/';
                let ends = j == chars.len() || chars[j] == '/';
                if starts && ends {
                    out.push_str("**");
                } else {
                    out.push('\u{0}');
                }
                i = j;
                continue;
            }
            _ => out.push(c),
        }
        i += 1;
    }
    Ok(out)
}

/// A character class starting at `chars[start]` (`[`), with POSIX classes replaced by ranges;
/// returns the text and the index after the class. An unclosed `[` is a literal.
fn class(chars: &[char], start: usize) -> Result<(String, usize), String> {
    let mut out = String::from("[");
    let mut i = start + 1;
    if matches!(chars.get(i), Some('!' | '^')) {
        out.push('!');
        i += 1;
    }
    let first = i;
    while i < chars.len() {
        let c = chars[i];
        if c == ']' && i > first {
            out.push(']');
            return Ok((out, i + 1));
        }
        if c == '[' && chars.get(i + 1) == Some(&':') {
            let rest: String = chars[i + 2..].iter().collect();
            let Some(end) = rest.find(":]") else {
                return Err("unclosed character class name (write [[:digit:]])".into());
            };
            let name = &rest[..end];
            out.push_str(posix_class(name)?);
            i += 2 + end + 2;
            continue;
        }
        if c == '\\' {
            out.push('\\');
            if let Some(&n) = chars.get(i + 1) {
                out.push(n);
                i += 1;
            }
        } else {
            out.push(c);
        }
        i += 1;
    }
    // No closing bracket: rsync takes the `[` literally.
    Ok(("\\[".into(), start + 1))
}

fn posix_class(name: &str) -> Result<&'static str, String> {
    Ok(match name {
        "alpha" => "a-zA-Z",
        "digit" => "0-9",
        "alnum" => "a-zA-Z0-9",
        "upper" => "A-Z",
        "lower" => "a-z",
        "xdigit" => "0-9a-fA-F",
        "space" => " \t\n\r\u{b}\u{c}",
        "blank" => " \t",
        _ => {
            return Err(format!(
                "character class [:{name}:] is not supported: use alpha, digit, alnum, upper, \
                 lower, xdigit, space or blank, or list the characters"
            ));
        }
    })
}

/// Every way of spelling the markers of [`translate`] in globset: `*` (within one component)
/// or `*/**/*` (across components).
fn expand(t: &str) -> Vec<String> {
    let mut out = vec![String::new()];
    for part in t.split('\u{0}').enumerate() {
        let (i, text) = part;
        if i > 0 {
            out = out
                .into_iter()
                .flat_map(|s| [format!("{s}*"), format!("{s}*/**/*")])
                .collect();
        }
        for s in &mut out {
            s.push_str(text);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(pat: &str, path: &str, is_dir: bool) -> bool {
        let p = Pattern::new(pat).unwrap();
        let name = path.rsplit('/').next().unwrap();
        p.matches(
            path.as_bytes(),
            name.as_bytes(),
            is_dir,
            &candidate(path.as_bytes()),
        )
    }

    #[test]
    fn rsync_pattern_rules() {
        let cases = [
            ("*.log", "a.log", false, true),
            ("*.log", "x/y/a.log", false, true),
            ("*.log", "x.log/y", false, false),
            ("/top", "top", false, true),
            ("/top", "sub/top", false, false),
            ("cache/", "cache", true, true),
            ("cache/", "cache", false, false),
            ("cache/", "a/cache", true, true),
            ("foo/bar", "x/foo/bar", false, true),
            ("foo/bar", "foo/bar", false, true),
            ("foo/bar", "xfoo/bar", false, false),
            ("a/**/b", "a/x/y/b", false, true),
            ("a/*/b", "a/x/y/b", false, false),
            ("?.tmp", "d/x.tmp", false, true),
            ("?.tmp", "d/xy.tmp", false, false),
            ("/foo/**/bar", "foo/x/bar", false, true),
            ("/foo/**/bar", "foo/bar", false, true),
            ("foo**", "foo/x/y", false, true),
            ("foo**", "a/foox", false, true),
            ("a**b", "a/x/b", false, true),
            ("a**b", "ab", false, true),
            ("dir/***", "dir", true, true),
            ("dir/***", "dir/x/y", false, true),
            ("dir/***", "dirx", true, false),
            ("{a,b}", "{a,b}", false, true),
            ("{a,b}", "a", false, false),
            ("*{x}", "v{x}", false, true),
            ("[[:digit:]]*", "7up", false, true),
            ("[[:digit:]]*", "up", false, false),
            ("[!a]x", "bx", false, true),
            ("[ab", "[ab", false, true),
            ("foo\\bar", "foo\\bar", false, true),
            ("f\\*", "f*", false, true),
            ("f\\*", "fx", false, false),
        ];
        for (pat, path, is_dir, want) in cases {
            assert_eq!(m(pat, path, is_dir), want, "{pat} on {path}");
        }
    }

    #[test]
    fn bad_patterns_are_errors() {
        for p in ["", "/", "[[:nope:]]"] {
            assert!(Pattern::new(p).is_err(), "{p}");
        }
    }
}
