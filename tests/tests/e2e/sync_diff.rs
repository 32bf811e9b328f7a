//! Differential tests of `opsync sync SRC DST` against the real `rsync -a --delete SRC/ DST/`.
//!
//! For each seed: a random SRC and a stale DST derived from it (see `opsync_tests::tree`) are
//! built; the stale DST is built twice, into `a` (for rsync) and `b` (for opsync). After both
//! runs the snapshots of `a` and `b` must be equal in every compared attribute, and a second
//! `opsync sync -i` must print nothing and change nothing (not even a ctime). Every check that
//! could fail is run for every seed; the failing seeds are listed at the end.
//!
//! `OPSYNC_DIFF_SEEDS=N` runs seeds `0..N` (default 256), `OPSYNC_DIFF_SEEDS=A..B` runs `A..B`
//! (one seed: `17..18`). `OPSYNC_DIFF_KEEP=1` keeps the trees of failing seeds under /tmp.

use std::ffi::OsString;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use opsync_tests::snapshot::{Snapshot, render, show, snapshot};
use opsync_tests::tree::{GenOptions, Kind, Stale, StaleOptions, Stamp, Tree};
use opsync_tests::{opsync, require_program};

mod itemize;
pub(crate) mod options;
mod output;

const DEFAULT_SEEDS: u64 = 256;
/// The random-tree seeds are split over this many tests, which cargo runs in parallel.
const PARTS: u64 = 4;
/// Difference lines shown per failing seed.
const MAX_LINES: usize = 25;

fn seed_range() -> Range<u64> {
    let Ok(value) = std::env::var("OPSYNC_DIFF_SEEDS") else {
        return 0..DEFAULT_SEEDS;
    };
    let parse = |s: &str| -> u64 {
        s.trim()
            .parse()
            .unwrap_or_else(|_| panic!("OPSYNC_DIFF_SEEDS={value}: expected N or A..B"))
    };
    match value.split_once("..") {
        Some((a, b)) => parse(a)..parse(b),
        None => 0..parse(&value),
    }
}

/// A scratch directory with `src` built from a seed, `outside` (a directory symlinks in DST may
/// point to; it must never change) and room for destinations.
struct Case {
    seed: u64,
    tmp: tempfile::TempDir,
    stale: Stale,
}

impl Case {
    fn new(seed: u64, opts: &GenOptions, trap_percent: u32) -> Case {
        assert!(
            rustix::process::geteuid().is_root(),
            "the differential tests need root (devices, owners other than the caller): run them as root"
        );
        let tmp = tempfile::Builder::new()
            .prefix(&format!("opsync-diff-{seed}-"))
            .tempdir()
            .unwrap();
        let src_tree = Tree::random(seed, opts);
        src_tree.build(&tmp.path().join("src")).unwrap();
        let outside = tmp.path().join("outside");
        let mut outside_tree = Tree::random(
            seed ^ 0xaaaa,
            &GenOptions {
                max_entries: 5,
                ..GenOptions::default()
            },
        );
        let file = Kind::File(b"outside: must never change\n".to_vec());
        let mut node = outside_tree.root.clone();
        node.kind = file;
        node.mode = 0o644;
        outside_tree.entries.insert(b"file".to_vec(), node);
        outside_tree.build(&outside).unwrap();
        let stale_opts = StaleOptions {
            change_percent: 30,
            trap_percent,
            extraneous_percent: 25,
            outside: outside.as_os_str().as_encoded_bytes().to_vec(),
            outside_from_root: b"../outside".to_vec(),
        };
        let stale = src_tree.stale(seed, &stale_opts, opts);
        Case { seed, tmp, stale }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }

    /// Keeps the directory when asked to (for debugging a failing seed) and says where it is.
    fn finish(self, result: Result<(), String>) -> Result<(), String> {
        let Err(msg) = result else { return Ok(()) };
        let where_ = if std::env::var_os("OPSYNC_DIFF_KEEP").is_some() {
            // The stale DST as it was before the runs, to reproduce by hand.
            let _ = self.stale.tree.build(&self.path("stale"));
            format!(
                "trees kept in {} (stale: DST before the runs)",
                self.tmp.keep().display()
            )
        } else {
            "set OPSYNC_DIFF_KEEP=1 to keep the trees".to_string()
        };
        let seed = self.seed;
        Err(format!(
            "seed {seed} ({where_}; rerun with OPSYNC_DIFF_SEEDS={seed}..{}):\n{msg}",
            seed + 1
        ))
    }
}

/// Runs a command and fails (with its output) unless it exits with one of `ok_codes`.
/// Returns the exit code and stdout.
fn run(cmd: &mut Command, ok_codes: &[i32]) -> Result<(i32, Vec<u8>), String> {
    let shown = format!("{cmd:?}");
    let out = cmd
        .output()
        .map_err(|e| format!("cannot start {shown}: {e}"))?;
    match out.status.code() {
        Some(code) if ok_codes.contains(&code) => Ok((code, out.stdout)),
        _ => Err(format!(
            "{shown} failed with {}\nstdout:\n{}\nstderr:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )),
    }
}

/// `rsync -a --delete ARGS SRC/ DST/`; returns the exit code.
fn rsync(args: &[&str], src: &Path, dst: &Path, ok_codes: &[i32]) -> Result<i32, String> {
    let mut cmd = Command::new("rsync");
    cmd.args(["-a", "--delete"])
        .args(args)
        .arg(with_slash(src))
        .arg(with_slash(dst));
    run(&mut cmd, ok_codes).map(|(code, _)| code)
}

/// `opsync sync ARGS SRC DST`, which must exit with `code`; `slashes` picks trailing slashes,
/// which must not matter. Returns stdout.
fn opsync_sync(
    args: &[&str],
    src: &Path,
    dst: &Path,
    slashes: u64,
    code: i32,
) -> Result<Vec<u8>, String> {
    let src = if slashes & 1 != 0 {
        with_slash(src)
    } else {
        src.into()
    };
    let dst = if slashes & 2 != 0 {
        with_slash(dst)
    } else {
        dst.into()
    };
    // rsync has no guard against deleting most of DST: `--force` turns opsync's off.
    run(
        opsync()
            .args(["sync", "--force"])
            .args(args)
            .arg(src)
            .arg(dst),
        &[code],
    )
    .map(|(_, out)| out)
}

/// A temporary folder and, in it, the paths (not made) of a SRC and of the DSTs of rsync (`a`)
/// and opsync (`b`).
fn src_and_two_dsts() -> (tempfile::TempDir, PathBuf, PathBuf, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let (src, a, b) = (
        tmp.path().join("src"),
        tmp.path().join("a"),
        tmp.path().join("b"),
    );
    (tmp, src, a, b)
}

/// Sets the mtime of every entry below `root` (and of `root`), symlinks themselves included,
/// to `secs` after the epoch: old enough that rsync sets the mtimes of entries without data
/// (it leaves those in the current second alone).
fn age_tree(root: &Path, secs: u64) {
    run(
        Command::new("find").arg(root).args([
            "-exec",
            "touch",
            "-h",
            "-d",
            &format!("@{secs}"),
            "{}",
            "+",
        ]),
        &[0],
    )
    .unwrap();
}

fn with_slash(path: &Path) -> OsString {
    let mut s = path.as_os_str().to_owned();
    s.push("/");
    s
}

fn snap(path: &Path) -> Result<Snapshot, String> {
    snapshot(path).map_err(|e| format!("snapshot of {}: {e}", path.display()))
}

/// Fails with the rendered differences unless there are none.
fn no_diff(title: &str, lines: Vec<String>) -> Result<(), String> {
    if lines.is_empty() {
        Ok(())
    } else {
        Err(render(title, &lines, MAX_LINES))
    }
}

/// Runs rsync into `a` and opsync into `b` (both already prepared), compares them, checks that
/// a second opsync run itemizes and changes nothing and that `outside` did not change.
/// Returns the snapshot of the result.
fn mirror_and_compare(
    case: &Case,
    rsync_args: &[&str],
    opsync_args: &[&str],
    expect: Expect,
) -> Result<Snapshot, String> {
    mirror_and_compare_with(Mirror::Opsync, case, rsync_args, opsync_args, expect)
}

/// The mirror under test: opsync, or (to check that this harness catches mistakes) a wrong
/// mirror: a shell script run as `sh -c SCRIPT sh SRC/ DST/ ARGS...`.
#[derive(Clone, Copy)]
enum Mirror<'a> {
    Opsync,
    Wrong(&'a str),
}

impl Mirror<'_> {
    fn run(
        &self,
        args: &[&str],
        src: &Path,
        dst: &Path,
        slashes: u64,
        code: i32,
    ) -> Result<Vec<u8>, String> {
        match self {
            Mirror::Opsync => opsync_sync(args, src, dst, slashes, code),
            Mirror::Wrong(script) => {
                let mut cmd = Command::new("sh");
                cmd.args(["-c", script, "sh"])
                    .arg(with_slash(src))
                    .arg(with_slash(dst))
                    .args(args);
                run(&mut cmd, &[code]).map(|(_, out)| out)
            }
        }
    }
}

fn mirror_and_compare_with(
    mirror: Mirror,
    case: &Case,
    rsync_args: &[&str],
    opsync_args: &[&str],
    expect: Expect,
) -> Result<Snapshot, String> {
    let (src, a, b) = (case.path("src"), case.path("a"), case.path("b"));
    let outside_before = snap(&case.path("outside"))?;
    let ok_codes: &[i32] = if let Expect::Excludes = expect {
        &[0, 23]
    } else {
        &[0]
    };
    let started = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let code = rsync(rsync_args, &src, &a, ok_codes)?;
    let mut snap_a = snap(&a)?;
    match expect {
        Expect::TrapsKept => rsync_gives_src(case, &snap_a, false)?,
        Expect::TrapsCopied => rsync_gives_src(case, &snap_a, true)?,
        Expect::Excludes => {}
    }
    let ran = mirror.run(opsync_args, &src, &b, case.seed, code);
    // Checked first, even after a failed run: the worst a mirror can do.
    no_diff(
        "a tree outside SRC and DST changed (written through a symlink in DST?)",
        outside_before.diff("before", &snap(&case.path("outside"))?, "after"),
    )?;
    ran?;
    let snap_b = snap(&b)?;
    if code == 23 {
        // A directory rsync could not replace keeps the mtime its emptying gave it ("now"):
        // such mtimes cannot be equal.
        for (path, entry) in snap_a.entries.iter_mut() {
            if let Some(other) = snap_b.entries.get(path)
                && entry.mtime.0 >= started
                && other.mtime.0 >= started
            {
                entry.mtime = other.mtime;
            }
        }
    }
    no_diff(
        &format!(
            "opsync sync {} differs from rsync -a --delete {}",
            opsync_args.join(" "),
            rsync_args.join(" ")
        ),
        snap_a.diff("rsync", &snap_b, "opsync"),
    )?;

    let again = mirror.run(
        &[opsync_args, &["-i"]].concat(),
        &src,
        &b,
        case.seed + 1,
        code,
    )?;
    if !again.is_empty() {
        return Err(format!(
            "a second opsync sync -i printed (it should have nothing to do):\n{}",
            String::from_utf8_lossy(&again)
        ));
    }
    let snap_again = snap(&b)?;
    no_diff(
        "the second opsync sync changed the tree",
        snap_b.diff("first", &snap_again, "second"),
    )?;
    no_diff(
        "the second opsync sync wrote to the tree",
        snap_b.identity_diff(&snap_again),
    )?;
    Ok(snap_a)
}

/// What rsync's result must be, checked before opsync runs (it validates the tree generator and
/// the snapshot comparer against rsync itself).
#[derive(Clone, Copy)]
enum Expect {
    /// SRC, except the quick-check traps keep DST's content.
    TrapsKept,
    /// SRC exactly (no traps, or `--checksum`).
    TrapsCopied,
    /// Not checked (excludes). rsync may exit 23 when an excluded entry sits in a directory of
    /// DST that must become something else (it cannot delete it); opsync must then exit 23 too.
    Excludes,
}

/// Checks the generator and the comparer against rsync itself: rsync's result must be SRC
/// except for the content of the quick-check traps (which keep DST's bytes) and link counts.
fn rsync_gives_src(case: &Case, result: &Snapshot, traps_copied: bool) -> Result<(), String> {
    let src = snap(&case.path("src"))?.without_nlink();
    let result = result.clone().without_nlink();
    let traps: &[Vec<u8>] = if traps_copied { &[] } else { &case.stale.traps };
    no_diff(
        "generator check: rsync's result differs from SRC outside the quick-check traps",
        src.clone()
            .without(traps)
            .diff("src", &result.clone().without(traps), "rsync"),
    )?;
    for trap in traps {
        let Some(Kind::File(stale)) = case.stale.tree.entries.get(trap).map(|n| &n.kind) else {
            return Err(format!(
                "generator check: trap {} is not a file in DST",
                show(trap)
            ));
        };
        let got = result.entries.get(trap).map(|e| &e.what);
        let want = opsync_tests::snapshot::What::File {
            size: stale.len() as u64,
            hash: blake3::hash(stale),
        };
        if got != Some(&want) {
            return Err(format!(
                "generator check: rsync rewrote the quick-check trap {}",
                show(trap)
            ));
        }
    }
    Ok(())
}

/// Runs `check` for every seed of `seeds` and fails listing every failing seed.
fn for_seeds(
    name: &str,
    seeds: impl Iterator<Item = u64>,
    check: impl Fn(u64) -> Result<(), String>,
) {
    require_program("rsync", "rsync");
    let start = Instant::now();
    let mut failures = Vec::new();
    let mut count = 0;
    for seed in seeds {
        count += 1;
        if let Err(msg) = check(seed) {
            eprintln!("{name}: {msg}");
            failures.push((seed, msg));
        }
    }
    eprintln!(
        "{name}: {count} seeds in {:.1?}, {} failed",
        start.elapsed(),
        failures.len()
    );
    if !failures.is_empty() {
        let seeds: Vec<String> = failures.iter().map(|(s, _)| s.to_string()).collect();
        let details: Vec<&str> = failures.iter().take(3).map(|(_, m)| m.as_str()).collect();
        panic!(
            "{name}: {} of {count} seeds failed: {}\n(all of them are printed above)\n\n{}",
            failures.len(),
            seeds.join(" "),
            details.join("\n")
        );
    }
}

fn random_trees(part: u64) {
    let seeds = seed_range().filter(|s| s % PARTS == part);
    for_seeds(
        &format!("random_trees part {part}/{PARTS}"),
        seeds,
        |seed| {
            let case = Case::new(seed, &GenOptions::default(), 6);
            let result = (|| {
                case.stale
                    .tree
                    .build(&case.path("a"))
                    .map_err(|e| e.to_string())?;
                case.stale
                    .tree
                    .build(&case.path("b"))
                    .map_err(|e| e.to_string())?;
                mirror_and_compare(&case, &[], &[], Expect::TrapsKept).map(drop)
            })();
            case.finish(result)
        },
    );
}

#[test]
fn rsync_is_installed() {
    let rsync = require_program("rsync", "rsync");
    let out = Command::new(rsync).arg("--version").output().unwrap();
    assert!(
        out.status.success() && out.stdout.starts_with(b"rsync"),
        "rsync --version: {out:?}"
    );
}

#[test]
fn random_trees_0() {
    random_trees(0);
}

#[test]
fn random_trees_1() {
    random_trees(1);
}

#[test]
fn random_trees_2() {
    random_trees(2);
}

#[test]
fn random_trees_3() {
    random_trees(3);
}

/// The generator must produce what the suite claims to cover, or the suite proves little.
#[test]
fn generator_covers_every_case() {
    let mut kinds = std::collections::BTreeSet::new();
    let mut traps = 0;
    let mut hard_links = 0;
    let mut dst_hard_links = 0;
    // Symlinks in DST, leading out of the tree, where SRC has a directory.
    let mut outside_links = 0;
    for seed in 0..40 {
        let tree = Tree::random(seed, &GenOptions::default());
        kinds.extend(tree.kind_counts().into_keys());
        hard_links += tree.hard_links.len();
        let opts = StaleOptions {
            change_percent: 30,
            trap_percent: 6,
            extraneous_percent: 25,
            outside: b"/nonexistent".to_vec(),
            outside_from_root: b"../outside".to_vec(),
        };
        let stale = tree.stale(seed, &opts, &GenOptions::default());
        traps += stale.traps.len();
        dst_hard_links += stale.tree.hard_links.len();
        for (path, node) in &stale.tree.entries {
            if let Kind::Symlink(target) = &node.kind
                && (target.starts_with(b"/nonexistent") || target.ends_with(b"../outside"))
                && tree.entries.get(path).is_some_and(|n| n.kind == Kind::Dir)
            {
                outside_links += 1;
            }
        }
        let again = Tree::random(seed, &GenOptions::default());
        assert_eq!(
            tree.entries, again.entries,
            "seed {seed}: the generator is not deterministic"
        );
    }
    assert_eq!(kinds.len(), 7, "entry kinds drawn: {kinds:?}");
    assert!(traps > 5, "only {traps} quick-check traps in 40 seeds");
    assert!(hard_links > 5, "only {hard_links} hard links in 40 seeds");
    assert!(
        dst_hard_links > 3,
        "only {dst_hard_links} hard links in 40 stale DSTs"
    );
    assert!(
        outside_links > 8,
        "only {outside_links} symlinks out of DST where SRC has a directory"
    );
}

const SMALL_SEEDS: Range<u64> = 1000..1012;

#[test]
fn dst_missing_is_created() {
    for_seeds("dst_missing_is_created", SMALL_SEEDS, |seed| {
        let case = Case::new(seed, &GenOptions::default(), 0);
        let result = mirror_and_compare(&case, &[], &[], Expect::TrapsCopied).map(drop);
        case.finish(result)
    });
}

#[test]
fn empty_dst() {
    for_seeds("empty_dst", SMALL_SEEDS, |seed| {
        let case = Case::new(seed, &GenOptions::default(), 0);
        let empty = Tree {
            entries: Default::default(),
            hard_links: Default::default(),
            ..case.stale.tree.clone()
        };
        let result = (|| {
            empty.build(&case.path("a")).map_err(|e| e.to_string())?;
            empty.build(&case.path("b")).map_err(|e| e.to_string())?;
            mirror_and_compare(&case, &[], &[], Expect::TrapsCopied).map(drop)
        })();
        case.finish(result)
    });
}

const EXCLUDE_SETS: &[&[&str]] = &[
    &["*.log"],
    &["/top-only"],
    &["dir/"],
    &["a/**/b"],
    &["*.log", "/top-only", "dir/", "a/**/b"],
];

#[test]
fn excludes_match_rsync() {
    let names = GenOptions {
        extra_names: ["x.log", "top-only", "dir", "a", "b", "keep.log.txt", ".log"]
            .iter()
            .map(|n| n.as_bytes().to_vec())
            .collect(),
        extra_name_percent: 40,
        ..GenOptions::default()
    };
    let excluded_something = AtomicUsize::new(0);
    for_seeds("excludes_match_rsync", 2000..2020, |seed| {
        let case = Case::new(seed, &names, 6);
        let patterns = EXCLUDE_SETS[seed as usize % EXCLUDE_SETS.len()];
        let args: Vec<String> = patterns.iter().map(|p| format!("--exclude={p}")).collect();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let result = (|| {
            case.stale
                .tree
                .build(&case.path("a"))
                .map_err(|e| e.to_string())?;
            case.stale
                .tree
                .build(&case.path("b"))
                .map_err(|e| e.to_string())?;
            let with_excludes = mirror_and_compare(&case, &args, &args, Expect::Excludes)?;
            // Without the excludes rsync gives another tree, or the patterns matched nothing.
            let c = case.path("c");
            case.stale.tree.build(&c).map_err(|e| e.to_string())?;
            rsync(&[], &case.path("src"), &c, &[0])?;
            if snap(&c)? != with_excludes {
                excluded_something.fetch_add(1, Ordering::Relaxed);
            }
            Ok(())
        })();
        case.finish(result)
    });
    let n = excluded_something.into_inner();
    assert!(
        n >= 12,
        "the excludes changed rsync's result in only {n} of 20 seeds: the test proves little"
    );
}

#[test]
fn checksum_copies_quick_check_traps() {
    let traps = AtomicUsize::new(0);
    for_seeds("checksum_copies_quick_check_traps", 3000..3012, |seed| {
        let case = Case::new(seed, &GenOptions::default(), 50);
        traps.fetch_add(case.stale.traps.len(), Ordering::Relaxed);
        let result = (|| {
            case.stale
                .tree
                .build(&case.path("a"))
                .map_err(|e| e.to_string())?;
            case.stale
                .tree
                .build(&case.path("b"))
                .map_err(|e| e.to_string())?;
            mirror_and_compare(&case, &["-c"], &["--checksum"], Expect::TrapsCopied).map(drop)
        })();
        case.finish(result)
    });
    let traps = traps.into_inner();
    assert!(
        traps >= 10,
        "only {traps} quick-check traps: the test would prove little"
    );
}

/// A DST whose copies all look racily clean (each file's stamp, its access time, equals its
/// mtime: read in the instant of its last write) is compared by content wherever size and mtime
/// match, so plain `opsync sync` gives what `rsync -c` gives: the quick-check traps are copied.
#[test]
fn racy_copies_are_compared_by_content_like_rsync_checksum() {
    let traps = AtomicUsize::new(0);
    for_seeds("racy_copies_are_compared_by_content", 3100..3112, |seed| {
        let case = Case::new(seed, &GenOptions::default(), 50);
        traps.fetch_add(case.stale.traps.len(), Ordering::Relaxed);
        let result = (|| {
            for dst in ["a", "b"] {
                case.stale
                    .tree
                    .build_stamped(&case.path(dst), Stamp::AtMtime)
                    .map_err(|e| e.to_string())?;
            }
            mirror_and_compare(&case, &["-c"], &[], Expect::TrapsCopied).map(drop)
        })();
        case.finish(result)
    });
    let traps = traps.into_inner();
    assert!(
        traps >= 10,
        "only {traps} quick-check traps: the test would prove little"
    );
}

#[test]
fn dry_run_changes_nothing() {
    for_seeds("dry_run_changes_nothing", 4000..4012, |seed| {
        let case = Case::new(seed, &GenOptions::default(), 6);
        let result = (|| {
            let b = case.path("b");
            case.stale.tree.build(&b).map_err(|e| e.to_string())?;
            let before = snap(&b)?;
            let planned = opsync_sync(&["-n", "-i"], &case.path("src"), &b, seed, 0)?;
            let after = snap(&b)?;
            no_diff(
                "opsync sync -n changed DST",
                before.diff("before", &after, "after"),
            )?;
            no_diff("opsync sync -n wrote to DST", before.identity_diff(&after))?;
            // The dry run prints what the real run then does (in any order: it is parallel).
            let done = opsync_sync(&["-i"], &case.path("src"), &b, seed, 0)?;
            let lines = |out: &[u8]| {
                let mut v: Vec<String> = String::from_utf8_lossy(out)
                    .lines()
                    .map(str::to_owned)
                    .collect();
                v.sort();
                v
            };
            let (planned, done) = (lines(&planned), lines(&done));
            if planned != done {
                return Err(format!(
                    "opsync sync -n -i printed (sorted):\n{}\nbut the real run printed:\n{}",
                    planned.join("\n"),
                    done.join("\n")
                ));
            }
            // A missing DST stays missing.
            let missing = case.path("missing");
            opsync_sync(&["--dry-run"], &case.path("src"), &missing, seed, 0)?;
            if missing.symlink_metadata().is_ok() {
                return Err(format!(
                    "opsync sync --dry-run created {}",
                    missing.display()
                ));
            }
            Ok(())
        })();
        case.finish(result)
    });
}

/// opsync refuses an empty SRC while DST is not empty (and touches nothing); with
/// `--allow-empty-source` it empties DST as rsync does.
#[test]
fn empty_src_needs_allow_empty_source() {
    for_seeds("empty_src_needs_allow_empty_source", 5000..5004, |seed| {
        let case = Case::new(seed, &GenOptions::default(), 0);
        let result = (|| {
            let src = case.path("src");
            std::fs::remove_dir_all(&src).map_err(|e| e.to_string())?;
            let empty = Tree {
                entries: Default::default(),
                hard_links: Default::default(),
                ..case.stale.tree.clone()
            };
            empty.build(&src).map_err(|e| e.to_string())?;
            let (a, b) = (case.path("a"), case.path("b"));
            case.stale.tree.build(&a).map_err(|e| e.to_string())?;
            case.stale.tree.build(&b).map_err(|e| e.to_string())?;
            let before = snap(&b)?;
            let refused = opsync()
                .args(["sync"])
                .arg(&src)
                .arg(&b)
                .output()
                .map_err(|e| e.to_string())?;
            if refused.status.success() {
                return Err("opsync sync accepted an empty SRC over a non-empty DST".into());
            }
            let after = snap(&b)?;
            no_diff(
                "a refused opsync sync changed DST",
                before.diff("before", &after, "after"),
            )?;
            no_diff(
                "a refused opsync sync wrote to DST",
                before.identity_diff(&after),
            )?;
            mirror_and_compare(&case, &[], &["--allow-empty-source"], Expect::Excludes).map(drop)
        })();
        case.finish(result)
    });
}

/// The harness itself: rsync made into a wrong mirror by one option must fail these checks
/// (otherwise a passing opsync would prove little).
#[test]
fn harness_catches_wrong_mirrors() {
    require_program("rsync", "rsync");
    const RSYNC: &str = r#"s=$1 d=$2; shift 2; rsync -a --delete "$@" "$s" "$d" "#;
    let wrong: &[(String, &str)] = &[
        // Writes through a symlink in DST that stands where SRC has a directory.
        (
            "tar -C \"$1\" -cf - . | tar -C \"$2\" --keep-directory-symlink -xpf -".into(),
            "outside SRC and DST changed",
        ),
        // Writes into existing files: the other name of a hard link in DST changes too.
        (format!("{RSYNC} --inplace"), "differs from rsync"),
        // Keeps hard links of SRC.
        (format!("{RSYNC} --hard-links"), "link count"),
        // Leaves directory mtimes alone.
        (format!("{RSYNC} --omit-dir-times"), "mtime"),
        // Leaves owners alone.
        (format!("{RSYNC} --no-owner"), "uid"),
        // Skips devices and specials.
        (format!("{RSYNC} --no-D"), "only in rsync"),
    ];
    for (script, symptom) in wrong {
        let caught = (6000..6040).any(|seed| {
            let case = Case::new(seed, &GenOptions::default(), 6);
            case.stale.tree.build(&case.path("a")).unwrap();
            case.stale.tree.build(&case.path("b")).unwrap();
            let mirror = Mirror::Wrong(script);
            let result = mirror_and_compare_with(mirror, &case, &[], &[], Expect::TrapsKept);
            result.is_err_and(|msg| msg.contains(symptom))
        });
        assert!(
            caught,
            "`{script}` never failed with {symptom:?} in 40 seeds"
        );
    }
}

/// The itemize lines of `rsync -ai --delete` and `opsync sync -i` for the same change: the
/// same lines in the same order (rsync's own order of `*deleting` lines varies between runs, so
/// those are compared as a set), whatever the number of threads.
#[test]
fn itemize_lines_match_rsync() {
    for_seeds("itemize_lines_match_rsync", 6000..6032, |seed| {
        let case = Case::new(seed, &GenOptions::default(), 6);
        let result = (|| {
            for d in ["a", "b", "c"] {
                case.stale
                    .tree
                    .build(&case.path(d))
                    .map_err(|e| e.to_string())?;
            }
            let (src, a) = (case.path("src"), case.path("a"));
            let mut cmd = Command::new("rsync");
            cmd.args(["-ai", "--delete"])
                .env("LC_ALL", "C.UTF-8")
                .arg(with_slash(&src))
                .arg(with_slash(&a));
            let (_, want) = run(&mut cmd, &[0])?;
            let got1 = opsync_sync(&["-i", "--threads=1"], &src, &case.path("b"), seed, 0)?;
            let got4 = opsync_sync(&["-i", "--threads=4"], &src, &case.path("c"), seed, 0)?;
            for (threads, got) in [(1, &got1), (4, &got4)] {
                same_items(
                    &format!("opsync sync -i --threads={threads} differs from rsync -ai"),
                    &want,
                    got,
                )?;
            }
            Ok(())
        })();
        case.finish(result)
    });
}

/// The itemize lines of an output: the `*deleting` lines sorted (rsync's own order of them
/// varies between runs, and opsync deletes once SRC was read), and the others in order.
fn item_lines(out: &[u8]) -> (Vec<String>, Vec<String>) {
    let text = String::from_utf8_lossy(out).into_owned();
    let (mut del, mut rest): (Vec<String>, Vec<String>) = text
        .lines()
        .map(str::to_string)
        .partition(|l| l.starts_with("*deleting"));
    del.sort();
    rest.retain(|l| !l.is_empty());
    (del, rest)
}

/// Fails with `title` and the differing lines unless `got` has rsync's itemize lines `want`
/// (see [`item_lines`]).
fn same_items(title: &str, want: &[u8], got: &[u8]) -> Result<(), String> {
    let ((want_del, want_rest), (del, rest)) = (item_lines(want), item_lines(got));
    if (&del, &rest) == (&want_del, &want_rest) {
        return Ok(());
    }
    let diff: Vec<String> = diff_lines(&want_rest, &rest)
        .into_iter()
        .chain(diff_lines(&want_del, &del))
        .collect();
    Err(render(title, &diff, MAX_LINES))
}

/// The lines of a unified-style comparison: `- rsync`, `+ opsync`, in order.
fn diff_lines(want: &[String], got: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    let n = want.len().max(got.len());
    for i in 0..n {
        match (want.get(i), got.get(i)) {
            (Some(w), Some(g)) if w == g => {}
            (w, g) => {
                if let Some(w) = w {
                    out.push(format!("line {}: - rsync  {w}", i + 1));
                }
                if let Some(g) = g {
                    out.push(format!("line {}: + opsync {g}", i + 1));
                }
            }
        }
    }
    out
}
