//! `--exclude` patterns with rsync's rules: a pattern with no `/` (besides a trailing one)
//! matches the last component anywhere; a leading `/` anchors it at the transfer root; a
//! trailing `/` matches directories only; `*` and `?` stop at `/`, `**` crosses it. An excluded
//! directory is not descended into. Excluded entries are skipped on both sides, so they are
//! neither copied nor deleted.

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};

use crate::error::Error;

/// A compiled set of exclude patterns.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    any: Option<GlobSet>,
    dirs_only: Option<GlobSet>,
}

impl Filter {
    /// Compiles rsync-style patterns.
    pub fn new(patterns: &[String]) -> Result<Filter, Error> {
        let mut any = GlobSetBuilder::new();
        let mut dirs = GlobSetBuilder::new();
        let (mut n_any, mut n_dirs) = (0, 0);
        for pat in patterns {
            let bad = |message: String| Error::Pattern {
                pattern: pat.clone(),
                message,
            };
            let mut p = pat.as_str();
            let dir_only = p.len() > 1 && p.ends_with('/');
            if dir_only {
                p = &p[..p.len() - 1];
            }
            if p.is_empty() {
                return Err(bad("the pattern is empty".into()));
            }
            let glob = match p.strip_prefix('/') {
                Some(anchored) => anchored.to_string(),
                None => format!("**/{p}"),
            };
            let g = GlobBuilder::new(&glob)
                .literal_separator(true)
                .backslash_escape(true)
                .build()
                .map_err(|e| bad(e.kind().to_string()))?;
            if dir_only {
                dirs.add(g);
                n_dirs += 1;
            } else {
                any.add(g);
                n_any += 1;
            }
        }
        let build = |b: GlobSetBuilder, n: usize| -> Result<Option<GlobSet>, Error> {
            if n == 0 {
                return Ok(None);
            }
            b.build().map(Some).map_err(|e| Error::Pattern {
                pattern: patterns.join(" "),
                message: e.to_string(),
            })
        };
        Ok(Filter {
            any: build(any, n_any)?,
            dirs_only: build(dirs, n_dirs)?,
        })
    }

    /// True when no pattern is set.
    pub fn is_empty(&self) -> bool {
        self.any.is_none() && self.dirs_only.is_none()
    }

    /// True when the entry at `path` (relative to the root, `/`-separated) is excluded.
    pub fn excludes(&self, path: &[u8], is_dir: bool) -> bool {
        let cand = globset::Candidate::new(bytes_to_path(path));
        self.any
            .as_ref()
            .is_some_and(|s| s.is_match_candidate(&cand))
            || (is_dir
                && self
                    .dirs_only
                    .as_ref()
                    .is_some_and(|s| s.is_match_candidate(&cand)))
    }
}

fn bytes_to_path(b: &[u8]) -> &std::path::Path {
    use std::os::unix::ffi::OsStrExt;
    std::path::Path::new(std::ffi::OsStr::from_bytes(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(p: &[&str]) -> Filter {
        Filter::new(&p.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn rsync_pattern_rules() {
        let cases: &[(&[&str], &[u8], bool, bool)] = &[
            (&["*.log"], b"a.log", false, true),
            (&["*.log"], b"x/y/a.log", false, true),
            (&["*.log"], b"x.log/y", false, false),
            (&["/top"], b"top", false, true),
            (&["/top"], b"sub/top", false, false),
            (&["cache/"], b"cache", true, true),
            (&["cache/"], b"cache", false, false),
            (&["cache/"], b"a/cache", true, true),
            (&["foo/bar"], b"x/foo/bar", false, true),
            (&["foo/bar"], b"foo/bar", false, true),
            (&["a/**/b"], b"a/x/y/b", false, true),
            (&["a/*/b"], b"a/x/y/b", false, false),
            (&["?.tmp"], b"d/x.tmp", false, true),
            (&["?.tmp"], b"d/xy.tmp", false, false),
        ];
        for (pats, path, is_dir, want) in cases {
            assert_eq!(
                f(pats).excludes(path, *is_dir),
                *want,
                "{pats:?} on {:?}",
                String::from_utf8_lossy(path)
            );
        }
    }

    #[test]
    fn bad_patterns_are_errors() {
        assert!(Filter::new(&["a[".to_string()]).is_err());
        assert!(Filter::new(&["".to_string()]).is_err());
    }
}
