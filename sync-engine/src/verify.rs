//! Verification of a mirror: both trees are scanned in parallel, every regular file present on
//! both sides is hashed with BLAKE3 (in parallel across files), and contents plus every
//! attribute that [`crate::sync`] preserves are compared. Each difference is reported as it is
//! found.

use std::fmt;
use std::io;
use std::os::fd::AsFd;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{Error, Side};
use crate::filter::Filter;
use crate::listing::{Idx, Kind, Listing, Meta, Paired, paired_children};
use crate::plan::same_time;
use crate::report::Observer;
use crate::{scan, sys};

/// What differs about one path.
#[derive(Debug)]
pub enum DiffKind {
    MissingInDst,
    ExtraInDst,
    Type {
        src: Kind,
        dst: Kind,
    },
    Size {
        src: u64,
        dst: u64,
    },
    Content,
    Mode {
        src: u32,
        dst: u32,
    },
    Owner {
        src: u32,
        dst: u32,
    },
    Group {
        src: u32,
        dst: u32,
    },
    Mtime {
        src: (i64, u32),
        dst: (i64, u32),
    },
    LinkTarget,
    Device,
    /// Extended attributes or ACLs differ.
    Xattrs,
    Unreadable {
        side: Side,
        error: io::Error,
    },
}

impl DiffKind {
    /// A short machine-readable name: `missing`, `extra`, `type`, `size`, `content`, `mode`,
    /// `owner`, `group`, `mtime`, `link`, `device` or `unreadable`.
    pub fn name(&self) -> &'static str {
        match self {
            DiffKind::MissingInDst => "missing",
            DiffKind::ExtraInDst => "extra",
            DiffKind::Type { .. } => "type",
            DiffKind::Size { .. } => "size",
            DiffKind::Content => "content",
            DiffKind::Mode { .. } => "mode",
            DiffKind::Owner { .. } => "owner",
            DiffKind::Group { .. } => "group",
            DiffKind::Mtime { .. } => "mtime",
            DiffKind::LinkTarget => "link",
            DiffKind::Device => "device",
            DiffKind::Xattrs => "xattrs",
            DiffKind::Unreadable { .. } => "unreadable",
        }
    }
}

impl fmt::Display for DiffKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DiffKind::MissingInDst => write!(f, "missing in DST"),
            DiffKind::ExtraInDst => write!(f, "not in SRC (extra in DST)"),
            DiffKind::Type { src, dst } => write!(f, "type {src:?} != {dst:?}"),
            DiffKind::Size { src, dst } => write!(f, "size {src} != {dst}"),
            DiffKind::Content => write!(f, "content differs"),
            DiffKind::Mode { src, dst } => write!(f, "mode {src:04o} != {dst:04o}"),
            DiffKind::Owner { src, dst } => write!(f, "owner {src} != {dst}"),
            DiffKind::Group { src, dst } => write!(f, "group {src} != {dst}"),
            DiffKind::Mtime { src, dst } => {
                write!(f, "mtime {}.{:09} != {}.{:09}", src.0, src.1, dst.0, dst.1)
            }
            DiffKind::LinkTarget => write!(f, "symlink target differs"),
            DiffKind::Device => write!(f, "device number differs"),
            DiffKind::Xattrs => write!(f, "extended attributes or ACLs differ"),
            DiffKind::Unreadable { side, error } => {
                let s = if *side == Side::Source { "SRC" } else { "DST" };
                write!(f, "cannot read in {s}: {error}")
            }
        }
    }
}

/// One difference.
#[derive(Debug)]
pub struct Difference {
    /// Path relative to the roots (empty for the roots themselves).
    pub path: Vec<u8>,
    pub kind: DiffKind,
}

/// What to compare; built from [`VerifyOptions::default`] with one setter per field.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct VerifyOptions {
    /// Filter rules, as [`crate::Options::filters`].
    pub filters: Vec<String>,
    pub excludes: Vec<String>,
    pub threads: Option<usize>,
    /// Compare owners; `None`: only when running as root, like sync.
    pub owner: Option<bool>,
    /// Compare groups (default true as root).
    pub group: Option<bool>,
    pub modify_window: u32,
    /// Compare extended attributes (`-X`) and POSIX ACLs (`-A`) as well.
    pub xattrs: bool,
    pub acls: bool,
    /// Only these paths (relative to the roots; empty: the whole trees). A directory listed is
    /// compared by its own attributes, not its contents.
    pub only: Vec<Vec<u8>>,
}

crate::options::setters!(VerifyOptions {
    filters: Vec<String>,
    excludes: Vec<String>,
    threads: Option<usize>,
    owner: Option<bool>,
    group: Option<bool>,
    modify_window: u32,
    xattrs: bool,
    acls: bool,
    only: Vec<Vec<u8>>,
});

/// Counts of a verification.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct VerifyReport {
    pub entries: u64,
    pub files_hashed: u64,
    pub bytes_hashed: u64,
    pub differences: u64,
}

fn scan_opts<'a>(
    side: Side,
    filter: &'a Filter,
    above: &'a crate::filter::DirRules,
    xattrs: crate::xattr::Policy,
) -> scan::ScanOpts<'a> {
    scan::ScanOpts {
        side,
        filter,
        above,
        hard_links: false,
        xattrs,
        one_fs: 0,
    }
}

/// Compares `src` and `dst`; [`Observer::difference`] is called for each difference (from
/// worker threads).
pub fn verify(
    src: &Path,
    dst: &Path,
    opts: &VerifyOptions,
    obs: &dyn Observer,
) -> Result<VerifyReport, Error> {
    let filter = Filter::new(
        &opts.filters,
        &opts.excludes,
        false,
        &crate::read_merge_file,
    )?;
    let open = |p: &Path, missing: fn(&Path) -> Error| {
        let fd = sys::open_dir_path(p).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => missing(p),
            io::ErrorKind::NotADirectory => Error::SourceNotDir { path: p.to_owned() },
            _ => Error::Io {
                op: "open",
                path: p.to_owned(),
                source: e,
            },
        })?;
        let st = sys::fstat(fd.as_fd()).map_err(|e| Error::Io {
            op: "stat",
            path: p.to_owned(),
            source: e,
        })?;
        let meta = sys::meta_of(&st).ok_or_else(|| Error::SourceNotDir { path: p.to_owned() })?;
        Ok::<_, Error>((fd, meta))
    };
    let (sfd, smeta) = open(src, |p| Error::SourceMissing { path: p.to_owned() })?;
    let (dfd, dmeta) = open(dst, |p| Error::DestMissing { path: p.to_owned() })?;
    let policy = crate::xattr::Policy {
        xattrs: opts.xattrs,
        acls: opts.acls,
        root: sys::euid() == 0,
    };
    let src_above = crate::run::above_root(&filter, src)?;
    let dst_above = crate::run::above_root(&filter, dst)?;
    crate::worker_pool(opts.threads)?.install(|| {
        let (s_keep, d_keep) = (
            sfd.try_clone().map_err(|e| Error::Io {
                op: "open",
                path: src.to_owned(),
                source: e,
            })?,
            dfd.try_clone().map_err(|e| Error::Io {
                op: "open",
                path: dst.to_owned(),
                source: e,
            })?,
        );
        let (s, d) = rayon::join(
            || {
                scan::scan(
                    sfd,
                    smeta,
                    &scan_opts(Side::Source, &filter, &src_above, policy),
                )
            },
            || {
                scan::scan(
                    dfd,
                    dmeta,
                    &scan_opts(Side::Dest, &filter, &dst_above, policy),
                )
            },
        );
        let diffs = AtomicU64::new(0);
        let report_diff = |path: Vec<u8>, kind: DiffKind| {
            diffs.fetch_add(1, Ordering::Relaxed);
            obs.difference(&Difference { path, kind });
        };
        for e in s.errors.into_iter().chain(d.errors) {
            report_diff(
                e.path,
                DiffKind::Unreadable {
                    side: e.side,
                    error: e.source,
                },
            );
        }
        let is_root = sys::euid() == 0;
        let cmp = Cmp {
            owner: opts.owner.unwrap_or(is_root),
            group: opts.group.unwrap_or(is_root),
            window: opts.modify_window,
        };
        let mut pairs = Vec::new();
        if opts.only.is_empty() {
            cmp.walk(&s.listing, 0, &d.listing, 0, &mut pairs, &report_diff);
        } else {
            for p in &opts.only {
                cmp.one(&s.listing, &d.listing, p, &mut pairs, &report_diff);
            }
        }
        let hashed = AtomicU64::new(0);
        let bytes = AtomicU64::new(0);
        let src_l = &s.listing;
        scan::hash_pairs(
            s_keep.as_fd(),
            src_l,
            d_keep.as_fd(),
            &d.listing,
            &mut pairs,
            sys::HashKind::Blake3,
            &|a, hs, b, hd| {
                hashed.fetch_add(1, Ordering::Relaxed);
                bytes.fetch_add(src_l.meta(a).size, Ordering::Relaxed);
                match (hs, hd) {
                    (Ok(x), Ok(y)) if x != y => report_diff(src_l.path(a), DiffKind::Content),
                    (Err(error), _) => report_diff(
                        src_l.path(a),
                        DiffKind::Unreadable {
                            side: Side::Source,
                            error,
                        },
                    ),
                    (_, Err(error)) => report_diff(
                        d.listing.path(b),
                        DiffKind::Unreadable {
                            side: Side::Dest,
                            error,
                        },
                    ),
                    _ => {}
                }
            },
        );
        Ok(VerifyReport {
            entries: s.listing.len() as u64,
            files_hashed: hashed.into_inner(),
            bytes_hashed: bytes.into_inner(),
            differences: diffs.into_inner(),
        })
    })
}

struct Cmp {
    owner: bool,
    group: bool,
    window: u32,
}

impl Cmp {
    /// Compares the entry at `path` on both sides.
    fn one(
        &self,
        src: &Listing,
        dst: &Listing,
        path: &[u8],
        pairs: &mut Vec<(Idx, Idx)>,
        report: &dyn Fn(Vec<u8>, DiffKind),
    ) {
        match (src.find(path), dst.find(path)) {
            (None, None) => {}
            (Some(_), None) => report(path.to_vec(), DiffKind::MissingInDst),
            (None, Some(_)) => report(path.to_vec(), DiffKind::ExtraInDst),
            (Some(a), Some(b)) => {
                let (sm, dm) = (src.meta(a), dst.meta(b));
                if sm.kind != dm.kind {
                    report(
                        path.to_vec(),
                        DiffKind::Type {
                            src: sm.kind,
                            dst: dm.kind,
                        },
                    );
                } else {
                    self.attrs(src, a, dst, b, report);
                    if sm.kind != Kind::Dir {
                        self.content(src, a, dst, b, pairs, report);
                    }
                }
            }
        }
    }

    fn walk(
        &self,
        src: &Listing,
        s: Idx,
        dst: &Listing,
        d: Idx,
        pairs: &mut Vec<(Idx, Idx)>,
        report: &dyn Fn(Vec<u8>, DiffKind),
    ) {
        self.attrs(src, s, dst, d, report);
        for p in paired_children(src, s, dst, d) {
            match p {
                Paired::Src(a) => report(src.path(a), DiffKind::MissingInDst),
                Paired::Dst(b) if dst.meta(b).protected => {}
                Paired::Dst(b) => report(dst.path(b), DiffKind::ExtraInDst),
                Paired::Both(a, b) => {
                    let (sm, dm) = (src.meta(a), dst.meta(b));
                    if sm.kind != dm.kind {
                        report(
                            src.path(a),
                            DiffKind::Type {
                                src: sm.kind,
                                dst: dm.kind,
                            },
                        );
                    } else if sm.kind == Kind::Dir {
                        self.walk(src, a, dst, b, pairs, report);
                    } else {
                        self.attrs(src, a, dst, b, report);
                        self.content(src, a, dst, b, pairs, report);
                    }
                }
            }
        }
    }

    fn content(
        &self,
        src: &Listing,
        a: Idx,
        dst: &Listing,
        b: Idx,
        pairs: &mut Vec<(Idx, Idx)>,
        report: &dyn Fn(Vec<u8>, DiffKind),
    ) {
        let (sm, dm) = (src.meta(a), dst.meta(b));
        match sm.kind {
            Kind::File if sm.size != dm.size => report(
                src.path(a),
                DiffKind::Size {
                    src: sm.size,
                    dst: dm.size,
                },
            ),
            Kind::File => pairs.push((a, b)),
            Kind::Symlink if src.link(a) != dst.link(b) => {
                report(src.path(a), DiffKind::LinkTarget)
            }
            Kind::CharDev | Kind::BlockDev if sm.rdev() != dm.rdev() => {
                report(src.path(a), DiffKind::Device)
            }
            _ => {}
        }
    }

    fn attrs(
        &self,
        src: &Listing,
        a: Idx,
        dst: &Listing,
        b: Idx,
        report: &dyn Fn(Vec<u8>, DiffKind),
    ) {
        let (sm, dm): (&Meta, &Meta) = (src.meta(a), dst.meta(b));
        if sm.kind != Kind::Symlink && sm.perm != dm.perm {
            report(
                src.path(a),
                DiffKind::Mode {
                    src: sm.perm,
                    dst: dm.perm,
                },
            );
        }
        if self.owner && sm.uid != dm.uid {
            report(
                src.path(a),
                DiffKind::Owner {
                    src: sm.uid,
                    dst: dm.uid,
                },
            );
        }
        if self.group && sm.gid != dm.gid {
            report(
                src.path(a),
                DiffKind::Group {
                    src: sm.gid,
                    dst: dm.gid,
                },
            );
        }
        if src.xattrs_of(a) != dst.xattrs_of(b) {
            report(src.path(a), DiffKind::Xattrs);
        }
        if !same_time(sm.mtime, dm.mtime, self.window) {
            report(
                src.path(a),
                DiffKind::Mtime {
                    src: (sm.mtime.sec, sm.mtime.nsec),
                    dst: (dm.mtime.sec, dm.mtime.nsec),
                },
            );
        }
    }
}
