//! Differential tests of the rsync options `opsync sync` takes: filter rules
//! (`--include`/`--exclude`/`-from`, `--filter`, `-F`, `--delete-excluded`) and `-H`, `-A`,
//! `-X`, each compared with real rsync on random trees: the same stale DST goes through
//! `rsync -ai --delete ARGS` and `opsync sync -i ARGS`; both trees must be equal in every
//! attribute the snapshot compares, in which names are hard links of each other (`-H`), in
//! their extended attributes and ACLs (`getfattr`/`getfacl` dumps, `-AX`), and the `-i` lines
//! must be rsync's (the `*deleting` lines as a set, everything else in order).

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;

use super::*;

/// Rule sets, as the same arguments to both tools. `FILE` is replaced by the path of a rules
/// file written with [`RULES_FILE`].
const RULE_SETS: &[&[&str]] = &[
    &["--include=*/", "--include=*.log", "--exclude=*"],
    &[
        "--exclude=*.log",
        "--include=keep.log.txt",
        "--exclude=*.txt",
    ],
    &[
        "--include=keep.log.txt",
        "--exclude=*.txt",
        "--exclude=*.log",
    ],
    &[
        "--filter=- /top-only",
        "--filter=+ a/",
        "--filter=- a/*",
        "--exclude=b",
    ],
    &["--exclude=dir/***"],
    &["--exclude=a/**/b", "--exclude=/*/x.log"],
    &["--filter=P x.log", "--exclude=*.log", "--delete-excluded"],
    &["--exclude=dir/", "--delete-excluded"],
    &["-F"],
    &["-FF", "--exclude=a"],
    &["--exclude-from=PLAIN"],
    &["--exclude-from=FILE", "--include=x.log", "--exclude=*.log"],
    &["--include-from=FILE", "--exclude=*.log", "--exclude=dir"],
    &["--filter=merge FILE", "--exclude=b/"],
    &["--filter=dir-merge .rsync-filter", "--filter=- top-only"],
    &["-f", "- *.log", "-f", "hide dir", "--delete-excluded"],
    &["--include=a/", "--include=a/**", "--exclude=/*"],
];

/// The rules file `FILE` of [`RULE_SETS`] (comments and blank lines as rsync allows them).
const RULES_FILE: &str = "# a comment\n; another\n\n+ keep.log.txt\n- *.txt\n- *.log\n";
/// The file `PLAIN`: bare patterns, as `--exclude-from` takes them.
const PLAIN_FILE: &str = "# bare patterns\n*.log\nc.txt\n/top-only\n";

/// The `.rsync-filter` files written into SRC (and one into DST, which protects on that side).
const DIR_FILTER: &str = "- *.log\n+ keep.log.txt\n- x.*\n";
const DST_FILTER: &str = "P b\n";

fn names() -> GenOptions {
    GenOptions {
        extra_names: [
            "x.log",
            "top-only",
            "dir",
            "a",
            "b",
            "keep.log.txt",
            ".log",
            "c.txt",
        ]
        .iter()
        .map(|n| n.as_bytes().to_vec())
        .collect(),
        extra_name_percent: 40,
        ..GenOptions::default()
    }
}

/// Sets the mtime of `path` to a fixed past time: a file written by the test, or the directory
/// it was added to (rsync does not set the mtime of a directory it creates when the source's lies
/// in the same second, and the two DSTs must get identical files).
fn age(path: &Path) -> Result<(), String> {
    let t = UNIX_EPOCH + std::time::Duration::from_secs(1_600_000_000);
    std::fs::File::open(path)
        .and_then(|f| f.set_modified(t))
        .map_err(|e| format!("set the mtime of {}: {e}", path.display()))
}

/// Writes `name` with `text` into every directory of `root` whose path hashes to a pick of
/// `seed` (and into the root), then ages the directories.
fn scatter(root: &Path, name: &str, text: &str, seed: u64) -> Result<(), String> {
    let mut dirs = vec![root.to_path_buf()];
    let mut i = 0;
    while i < dirs.len() {
        let d = dirs[i].clone();
        i += 1;
        let rd = std::fs::read_dir(&d).map_err(|e| e.to_string())?;
        for e in rd.flatten() {
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                dirs.push(e.path());
            }
        }
    }
    for (n, d) in dirs.iter().enumerate() {
        if n == 0 || (seed + n as u64).is_multiple_of(3) {
            let file = d.join(name);
            std::fs::write(&file, text).map_err(|e| e.to_string())?;
            age(&file)?;
            age(d)?;
        }
    }
    Ok(())
}

/// The `-i` lines: the `*deleting` ones sorted, the rest in order.
/// rsync's `cannot delete non-empty directory: NAME` notes are left out: opsync gives them as
/// warnings on stderr.
fn split_itemize(out: &[u8]) -> (Vec<String>, Vec<String>) {
    let text = String::from_utf8_lossy(out).into_owned();
    let (mut del, mut rest): (Vec<String>, Vec<String>) = text
        .lines()
        .filter(|l| !l.starts_with("cannot delete non-empty directory: "))
        .map(str::to_string)
        .partition(|l| l.starts_with("*deleting"));
    del.sort();
    rest.retain(|l| !l.is_empty());
    (del, rest)
}

/// Runs `rsync -ai --delete ARGS` into `a` and `opsync sync -i ARGS` into `b`; the exit codes,
/// the itemize lines, the snapshots and `extra` (more comparisons of the two trees) must agree.
/// Then both run a second time, and must agree again (with per-directory filter files in DST a
/// second run can have work: the first replaced DST's rules with SRC's).
fn compare_with_rsync(
    case: &Case,
    rsync_args: &[String],
    opsync_args: &[String],
    extra: &dyn Fn(&Path, &Path) -> Result<(), String>,
    itemize: bool,
) -> Result<(), String> {
    let started = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    for round in 0..2u64 {
        compare_once(
            case,
            rsync_args,
            opsync_args,
            extra,
            round,
            started,
            itemize,
        )?;
    }
    Ok(())
}

fn compare_once(
    case: &Case,
    rsync_args: &[String],
    opsync_args: &[String],
    extra: &dyn Fn(&Path, &Path) -> Result<(), String>,
    round: u64,
    started: i64,
    itemize: bool,
) -> Result<(), String> {
    let (src, a, b) = (case.path("src"), case.path("a"), case.path("b"));
    let mut cmd = Command::new("rsync");
    cmd.args(["-ai", "--delete"])
        .args(rsync_args)
        .env("LC_ALL", "C.UTF-8")
        .arg(with_slash(&src))
        .arg(with_slash(&a));
    let out = cmd
        .output()
        .map_err(|e| format!("cannot start rsync: {e}"))?;
    let (mut code, want) = match out.status.code() {
        Some(c @ (0 | 23)) => (c, out.stdout),
        _ => {
            return Err(format!(
                "{cmd:?} failed with {}\nstderr:\n{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            ));
        }
    };
    // rsync 3.5 with -HA can fail to read the default ACL of a DST directory that its
    // receiver is replacing by a hard link at the same moment (EACCES on a path that is no
    // longer a directory; it does not happen under strace): an error of rsync's own, not a
    // file it could not transfer. opsync has no such race and exits 0.
    if code == 23 && rsync_acl_race_only(&out.stderr) {
        code = 0;
    }
    let args: Vec<&str> = opsync_args.iter().map(String::as_str).collect();
    let got = opsync_sync(
        &[&args[..], &["-i"]].concat(),
        &src,
        &b,
        case.seed + round,
        code,
    )?;
    let shown = format!(
        "run {}: opsync sync -i {} differs from rsync -ai --delete {}",
        round + 1,
        opsync_args.join(" "),
        rsync_args.join(" ")
    );
    let (mut snap_a, snap_b) = (snap(&a)?, snap(&b)?);
    // A directory of DST that stays (it holds protected entries) while its other entries are
    // deleted keeps the mtime the deletions gave it, "now", in both trees: such mtimes cannot
    // be equal.
    for (path, entry) in snap_a.entries.iter_mut() {
        if let Some(other) = snap_b.entries.get(path)
            && entry.mtime.0 >= started
            && other.mtime.0 >= started
        {
            entry.mtime = other.mtime;
        }
    }
    no_diff(&shown, snap_a.diff("rsync", &snap_b, "opsync"))?;
    extra(&a, &b)?;
    let ((want_del, mut want_rest), (del, mut rest)) = (split_itemize(&want), split_itemize(&got));
    if rsync_args.iter().any(|a| a == "-A") {
        // The `a` of a transfer line is not stable in rsync when DST's file has another name
        // in another directory (the random DST has hard links across directories): seed 9713
        // gave `>f.stp.g.a.` in one of four parallel runs and `>f.stp.g...` in six runs alone,
        // on a file whose ACLs are minimal on both sides. The attribute lines (`.f...`), which
        // the -A fixes are about, stay compared in full.
        for l in want_rest.iter_mut().chain(rest.iter_mut()) {
            if l.starts_with(">f") && l.len() > 9 && l.is_char_boundary(10) {
                l.replace_range(9..10, "?");
            }
        }
    }
    if itemize && (&del, &rest) != (&want_del, &want_rest) {
        let diff: Vec<String> = diff_lines(&want_rest, &rest)
            .into_iter()
            .chain(diff_lines(&want_del, &del))
            .collect();
        return Err(render(&format!("{shown}: -i lines"), &diff, MAX_LINES));
    }
    Ok(())
}

/// True when every error rsync printed is its `get_acl` race (see [`compare_once`]).
fn rsync_acl_race_only(stderr: &[u8]) -> bool {
    let text = String::from_utf8_lossy(stderr);
    let mut errors = text
        .lines()
        .filter(|l| !l.starts_with("rsync error: some files/attrs were not transferred"))
        .peekable();
    errors.peek().is_some()
        && errors.all(|l| {
            l.starts_with("rsync: [generator] get_acl: sys_acl_get_file(")
                && l.ends_with("ACL_TYPE_DEFAULT): Permission denied (13)")
        })
}

fn no_extra(_: &Path, _: &Path) -> Result<(), String> {
    Ok(())
}

#[test]
fn filter_rules_match_rsync() {
    let changed = AtomicUsize::new(0);
    let seeds = 9000..9000 + 2 * RULE_SETS.len() as u64;
    for_seeds("filter_rules_match_rsync", seeds, |seed| {
        let case = Case::new(seed, &names(), 6);
        let set = RULE_SETS[seed as usize % RULE_SETS.len()];
        let result = (|| {
            let (rules, plain) = (case.path("rules"), case.path("plain"));
            std::fs::write(&rules, RULES_FILE).map_err(|e| e.to_string())?;
            std::fs::write(&plain, PLAIN_FILE).map_err(|e| e.to_string())?;
            let args: Vec<String> = set
                .iter()
                .map(|a| {
                    a.replace("FILE", &rules.display().to_string())
                        .replace("PLAIN", &plain.display().to_string())
                })
                .collect();
            if set
                .iter()
                .any(|a| a.starts_with("-F") || a.contains("rsync-filter"))
            {
                scatter(&case.path("src"), ".rsync-filter", DIR_FILTER, seed)?;
            }
            for d in ["a", "b", "c"] {
                case.stale
                    .tree
                    .build(&case.path(d))
                    .map_err(|e| e.to_string())?;
                // Also in directories only DST has: rsync reads them while it deletes such a
                // directory, and what they protect stays.
                scatter(&case.path(d), ".rsync-filter", DST_FILTER, seed + 1)?;
            }
            compare_with_rsync(&case, &args, &args, &no_extra, true)?;
            // Without the rules rsync gives another tree, or the rules matched nothing.
            let c = case.path("c");
            rsync(&[], &case.path("src"), &c, &[0])?;
            if snap(&c)? != snap(&case.path("a"))? {
                changed.fetch_add(1, Ordering::Relaxed);
            }
            Ok(())
        })();
        case.finish(result)
    });
    let n = changed.into_inner();
    assert!(
        n as u64 >= RULE_SETS.len() as u64,
        "the rules changed rsync's result in only {n} of {} seeds: the test proves little",
        2 * RULE_SETS.len()
    );
}

/// Which names of `root` share an inode: each group of two or more, sorted.
pub(crate) fn link_groups(root: &Path) -> Result<Vec<Vec<String>>, String> {
    let mut by_ino: BTreeMap<u64, Vec<String>> = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).map_err(|e| e.to_string())?.flatten() {
            let m = e.metadata().map_err(|e| e.to_string())?;
            if m.is_dir() {
                stack.push(e.path());
            } else if m.is_file() && m.nlink() > 1 {
                let rel = e.path().strip_prefix(root).unwrap().display().to_string();
                by_ino.entry(m.ino()).or_default().push(rel);
            }
        }
    }
    let mut groups: Vec<Vec<String>> = by_ino
        .into_values()
        .filter(|g| g.len() > 1)
        .map(|mut g| {
            g.sort();
            g
        })
        .collect();
    groups.sort();
    Ok(groups)
}

/// Every extended attribute of every entry below `root` (ACLs are the `system.posix_acl_*`
/// ones), as `PATH NAME=HEX` lines in path order; read with `llistxattr`/`lgetxattr` (getfattr
/// gives up on 255-byte names).
pub(crate) fn attr_dump(root: &Path) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(p) = stack.pop() {
        let m = std::fs::symlink_metadata(&p).map_err(|e| e.to_string())?;
        if m.is_dir() {
            for e in std::fs::read_dir(&p).map_err(|e| e.to_string())?.flatten() {
                stack.push(e.path());
            }
        }
        let mut names = vec![0u8; 65536];
        let n = rustix::fs::llistxattr(&p, &mut names[..])
            .map_err(|e| format!("llistxattr {}: {e}", p.display()))?;
        let rel = show(p.strip_prefix(root).unwrap().as_os_str().as_encoded_bytes());
        for name in names[..n].split(|b| *b == 0).filter(|n| !n.is_empty()) {
            let cname = std::ffi::CString::new(name).unwrap();
            let mut value = vec![0u8; 65536];
            let len = rustix::fs::lgetxattr(&p, cname.as_c_str(), &mut value[..])
                .map_err(|e| format!("lgetxattr {}: {e}", p.display()))?;
            let hex: String = value[..len].iter().map(|b| format!("{b:02x}")).collect();
            out.push(format!("{rel} {}={hex}", String::from_utf8_lossy(name)));
        }
    }
    out.sort();
    Ok(out)
}

/// Sets extended attributes and ACLs on some files and directories below `root`, drawn from
/// `seed` and the path (so two trees built alike get the same ones).
pub(crate) fn decorate(root: &Path, seed: u64) -> Result<(), String> {
    let mut stack = vec![root.to_path_buf()];
    let mut n = 0u64;
    while let Some(d) = stack.pop() {
        let mut entries: Vec<_> = std::fs::read_dir(&d)
            .map_err(|e| e.to_string())?
            .flatten()
            .collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let m = std::fs::symlink_metadata(e.path()).map_err(|e| e.to_string())?;
            if m.is_dir() {
                stack.push(e.path());
            }
            if !(m.is_dir() || m.is_file()) {
                continue;
            }
            n += 1;
            let path = e.path();
            let pick = (seed.wrapping_mul(31) + n * 7) % 5;
            let mut cmds: Vec<Vec<String>> = Vec::new();
            if pick == 0 || pick == 3 {
                cmds.push(vec![
                    "setfattr".into(),
                    "-n".into(),
                    "user.opsync".into(),
                    "-v".into(),
                    format!("v{seed}-{n}"),
                ]);
            }
            if pick == 1 {
                cmds.push(vec![
                    "setfattr".into(),
                    "-n".into(),
                    "trusted.t".into(),
                    "-v".into(),
                    "0x00ff01".into(),
                ]);
            }
            if pick == 2 || pick == 3 {
                cmds.push(vec![
                    "setfacl".into(),
                    "-m".into(),
                    format!("u:{}:r-x,g:{}:rw-", 1000 + n % 3, 100 + n % 2),
                ]);
            }
            if pick == 4 && m.is_dir() {
                cmds.push(vec![
                    "setfacl".into(),
                    "-d".into(),
                    "-m".into(),
                    "u:1001:rwx".into(),
                ]);
            }
            for c in cmds {
                let mut cmd = Command::new(&c[0]);
                cmd.args(&c[1..]).arg(&path);
                run(&mut cmd, &[0])?;
            }
        }
    }
    Ok(())
}

/// Random trees (with hard links, and with xattrs and ACLs set by [`decorate`] on SRC and
/// differently on DST) through `rsync -ai --delete FLAGS` and `opsync sync -i FLAGS`.
fn attrs_match_rsync(name: &str, flags: &[&str], seeds: Range<u64>, itemize: bool) {
    require_program("setfattr", "attr");
    require_program("setfacl", "acl");
    let linked = AtomicUsize::new(0);
    let n = seeds.end - seeds.start;
    for_seeds(name, seeds, |seed| {
        let case = Case::new(seed, &GenOptions::default(), 6);
        let result = (|| {
            decorate(&case.path("src"), seed)?;
            for d in ["a", "b"] {
                case.stale
                    .tree
                    .build(&case.path(d))
                    .map_err(|e| e.to_string())?;
                decorate(&case.path(d), seed ^ 0x55)?;
            }
            let args: Vec<String> = flags.iter().map(|f| f.to_string()).collect();
            let extra = |a: &Path, b: &Path| {
                let (ga, gb) = (link_groups(a)?, link_groups(b)?);
                if flags.contains(&"-H") {
                    if ga != gb {
                        return Err(format!(
                            "hard-link groups differ:\nrsync:  {ga:?}\nopsync: {gb:?}"
                        ));
                    }
                    if !ga.is_empty() {
                        linked.fetch_add(1, Ordering::Relaxed);
                    }
                }
                if flags.contains(&"-X") || flags.contains(&"-A") {
                    let (da, db) = (attr_dump(a)?, attr_dump(b)?);
                    no_diff("xattrs or ACLs differ", diff_lines(&da, &db))?;
                }
                Ok(())
            };
            compare_with_rsync(&case, &args, &args, &extra, itemize)
        })();
        case.finish(result)
    });
    if flags.contains(&"-H") {
        assert!(
            linked.into_inner() as u64 >= n / 4,
            "too few seeds had hard links: the test proves little"
        );
    }
}

#[test]
fn hard_links_match_rsync_ah() {
    attrs_match_rsync("hard_links_match_rsync_ah", &["-H"], 9500..9516, false);
}

#[test]
fn xattrs_match_rsync_ax() {
    attrs_match_rsync("xattrs_match_rsync_ax", &["-X"], 9600..9616, false);
}

#[test]
fn acls_match_rsync_aa() {
    attrs_match_rsync("acls_match_rsync_aa", &["-A"], 9700..9716, true);
}

#[test]
fn hard_links_acls_and_xattrs_match_rsync_ahax() {
    attrs_match_rsync(
        "hard_links_acls_and_xattrs_match_rsync_ahax",
        &["-H", "-A", "-X"],
        9800..9816,
        false,
    );
}

/// rsync's ACL masking cases (local and over ssh): name, SRC mode, DST mode (None: not in
/// DST), directory, with a user xattr in SRC.
pub(crate) const ACL_MASKING_CASES: &[(&str, u32, Option<u32>, bool, bool)] = &[
    ("new-sticky", 0o1777, None, true, false),
    ("sticky-on", 0o1777, Some(0o777), true, false),
    ("sticky-kept", 0o1777, Some(0o1777), true, false),
    ("sticky-on-x", 0o1777, Some(0o777), true, true),
    ("setuid-off", 0o777, Some(0o4777), false, false),
    ("setuid-kept", 0o4777, Some(0o4777), false, false),
    ("plain", 0o775, Some(0o644), false, false),
    ("setgid-off", 0o775, Some(0o2775), false, false),
    ("setuid-off-x", 0o777, Some(0o4777), false, true),
];

/// rsync's ACL results that are not SRC's ACL, on a fixed tree: when a directory's sticky bit
/// goes on (a new directory too) or setuid/setgid of a file goes off, rsync sets the ACL with
/// the mode's group bits cleared and an ACL whose `group::` entry equals them ends
/// `group::---`, unless `-X` changes the entry's xattrs too. And `-i` shows `p` only for what
/// setting the ACL did not set. Trees (modes, ACLs, xattrs) and `-i` lines must be rsync's.
#[test]
fn acl_masking_cases_match_rsync() {
    require_program("setfacl", "acl");
    require_program("setfattr", "attr");
    let cases = ACL_MASKING_CASES;
    for flags in [&["-A"][..], &["-A", "-X"]] {
        let tmp = tempfile::tempdir().unwrap();
        let (src, stale) = (tmp.path().join("src"), tmp.path().join("stale"));
        std::fs::create_dir_all(&src).unwrap();
        std::fs::create_dir_all(&stale).unwrap();
        let chmod = |p: &Path, mode: u32| {
            rustix::fs::chmod(p, rustix::fs::Mode::from_raw_mode(mode)).unwrap();
        };
        for &(name, smode, dmode, dir, xattr) in cases {
            let (s, d) = (src.join(name), stale.join(name));
            let make = |p: &Path| {
                if dir {
                    std::fs::create_dir(p).unwrap();
                } else {
                    std::fs::write(p, b"x\n").unwrap();
                }
            };
            make(&s);
            run(
                Command::new("setfacl")
                    .args(["-m", "u:1001:r-x,g:100:rw-"])
                    .arg(&s),
                &[0],
            )
            .unwrap();
            chmod(&s, smode);
            // The owning group's entry equal to the mode's group bits (rsync does not send it).
            run(Command::new("setfacl").args(["-m", "g::rwx"]).arg(&s), &[0]).unwrap();
            if xattr {
                run(
                    Command::new("setfattr")
                        .args(["-n", "user.k", "-v", "1"])
                        .arg(&s),
                    &[0],
                )
                .unwrap();
            }
            if let Some(m) = dmode {
                make(&d);
                chmod(&d, m);
            }
        }
        for root in [&src, &stale] {
            age_tree(root, 1_500_000_000);
        }
        let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
        for d in [&a, &b] {
            run(Command::new("cp").arg("-a").arg(&stale).arg(d), &[0]).unwrap();
        }
        let (_, want) = run(
            Command::new("rsync")
                .args(["-ai", "--delete"])
                .args(flags)
                .arg(with_slash(&src))
                .arg(with_slash(&a)),
            &[0],
        )
        .unwrap();
        let got = opsync_sync(&[flags, &["-i"]].concat(), &src, &b, 3, 0).unwrap();
        let shown = format!("opsync sync -i {flags:?}");
        let (want_lines, got_lines) = (split_itemize(&want).1, split_itemize(&got).1);
        no_diff(
            &format!("{shown}: -i lines"),
            diff_lines(&want_lines, &got_lines),
        )
        .unwrap();
        no_diff(
            &format!("{shown}: trees"),
            snap(&a)
                .unwrap()
                .diff("rsync", &snap(&b).unwrap(), "opsync"),
        )
        .unwrap();
        no_diff(
            &format!("{shown}: xattrs or ACLs"),
            diff_lines(&attr_dump(&a).unwrap(), &attr_dump(&b).unwrap()),
        )
        .unwrap();
    }
}

/// As rsync: an entry replaced by one of another type does not count against `--max-delete`
/// (rsync's `DEL_MAKE_ROOM`), what a replaced directory held does. Three replacements, one
/// file inside a replaced directory and two extraneous entries: `--max-delete=3` is enough for
/// both tools (before, opsync counted the replaced entries too and left `y` and `z` as they
/// were, exit 25).
#[test]
fn max_delete_does_not_count_the_entries_a_type_change_replaces() {
    require_program("rsync", "rsync");
    let (_tmp, src, a, b) = src_and_two_dsts();
    std::fs::create_dir_all(src.join("x")).unwrap();
    std::fs::write(src.join("x/f"), b"f").unwrap();
    std::fs::write(src.join("y"), b"y").unwrap();
    std::os::unix::fs::symlink("target", src.join("z")).unwrap();
    std::fs::write(src.join("keep"), b"k").unwrap();
    for d in [&a, &b] {
        std::fs::create_dir_all(d.join("y")).unwrap();
        std::fs::create_dir_all(d.join("z")).unwrap();
        std::fs::write(d.join("x"), b"old x").unwrap();
        std::fs::write(d.join("y/g"), b"g").unwrap();
        std::fs::write(d.join("e1"), b"e1").unwrap();
        std::fs::write(d.join("e2"), b"e2").unwrap();
        std::fs::write(d.join("keep"), b"k").unwrap();
    }
    // Old mtimes: rsync leaves those in the current second alone on entries without data.
    age_tree(&src, 1_500_000_000);
    rsync(&["--max-delete=3"], &src, &a, &[0]).unwrap();
    opsync_sync(&["--max-delete=3"], &src, &b, 0, 0).unwrap();
    let (sa, sb) = (snap(&a).unwrap(), snap(&b).unwrap());
    no_diff(
        "opsync --max-delete=3 differs from rsync's",
        sa.diff("rsync", &sb, "opsync"),
    )
    .unwrap();
    assert!(sb.entries.keys().any(|p| p.ends_with(b"x/f")), "{sb:?}");
}

/// As rsync: `merge -` (and `. -`) read the rules from standard input, with the merge rule's
/// modifiers (`merge,- -`: every line an exclude pattern). Both tools get the same rules on
/// standard input; the trees must be equal and leave out what the rules exclude.
#[test]
fn merge_minus_reads_the_rules_from_standard_input() {
    use std::io::Write as _;
    require_program("rsync", "rsync");
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    std::fs::create_dir_all(src.join("d")).unwrap();
    for f in ["a.o", "b.c", "d/c.o", "d/keep.o", "e.tmp", "f.bak"] {
        std::fs::write(src.join(f), f).unwrap();
    }
    age_tree(&src, 1_500_000_000);
    let cases: &[(&[&str], &str)] = &[
        (&["-f", "merge -"], "# from stdin\n+ keep.o\n- *.o\n"),
        (&["-f", ". -", "--exclude=*.c"], "- *.tmp\n"),
        (&["-f", "merge,- -"], "*.bak\n*.tmp\n"),
    ];
    for (i, (args, rules)) in cases.iter().enumerate() {
        let (a, b) = (
            tmp.path().join(format!("a{i}")),
            tmp.path().join(format!("b{i}")),
        );
        let with_stdin = |mut cmd: Command| {
            let mut child = cmd
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            child
                .stdin
                .take()
                .unwrap()
                .write_all(rules.as_bytes())
                .unwrap();
            let out = child.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "{cmd:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        let mut rs = Command::new("rsync");
        rs.args(["-a", "--delete"])
            .args(*args)
            .arg(with_slash(&src))
            .arg(with_slash(&a));
        with_stdin(rs);
        let mut op = opsync();
        op.args(["sync", "--force"]).args(*args).arg(&src).arg(&b);
        with_stdin(op);
        let (sa, sb) = (snap(&a).unwrap(), snap(&b).unwrap());
        no_diff(
            &format!("opsync {args:?} differs from rsync's"),
            sa.diff("rsync", &sb, "opsync"),
        )
        .unwrap();
        assert!(
            sa.entries.len() < snap(&src).unwrap().entries.len(),
            "the rules leave something out: {sa:?}"
        );
    }
}

/// `-H` with a content comparison: a file with other links whose content is equal is not
/// copied again. With `-c` (every run) and for a racily clean copy (the second run right after
/// the first copy of a new file, see `sync-engine/src/racy.rs`), `rsync -aHic` and
/// `opsync sync -Hi(c)` itemize nothing and DST keeps its inode; a changed content of the
/// same size and mtime is copied by both (`>fc`). Before, opsync planned the group's leader
/// without the walk's hashes and copied it every time.
#[test]
fn hard_links_found_equal_by_content_are_not_copied_again() {
    require_program("rsync", "rsync");
    let (_tmp, src, a, b) = src_and_two_dsts();
    std::fs::create_dir_all(src.join("d")).unwrap();
    std::fs::write(src.join("l"), b"b\n").unwrap();
    std::fs::hard_link(src.join("l"), src.join("l2")).unwrap();
    std::fs::hard_link(src.join("l"), src.join("d/l3")).unwrap();
    std::fs::write(src.join("solo"), b"solo\n").unwrap();
    run(
        Command::new("find").arg(&src).args([
            "-exec",
            "touch",
            "-h",
            "-d",
            "2020-01-01",
            "{}",
            "+",
        ]),
        &[0],
    )
    .unwrap();
    let rsync_i = |args: &[&str], dst: &Path| -> Vec<String> {
        let (_, out) = run(
            Command::new("rsync")
                .args(["-ai", "--delete"])
                .args(args)
                .arg(with_slash(&src))
                .arg(with_slash(dst)),
            &[0],
        )
        .unwrap();
        split_itemize(&out).1
    };
    let opsync_i = |args: &[&str]| -> Vec<String> {
        let mut all = vec!["-i"];
        all.extend_from_slice(args);
        split_itemize(&opsync_sync(&all, &src, &b, 0, 0).unwrap()).1
    };
    let ino = |p: &Path| std::fs::metadata(p).unwrap().ino();
    // Which name of a group carries its data differs in the first run's lines (see the
    // README's differences); the trees are the same.
    rsync_i(&["-H"], &a);
    opsync_i(&["-H"]);
    assert_eq!(link_groups(&a).unwrap(), link_groups(&b).unwrap());
    let before = ino(&b.join("l"));
    for round in 0..2 {
        let want = rsync_i(&["-H", "-c"], &a);
        assert!(want.is_empty(), "rsync, round {round}: {want:?}");
        assert_eq!(opsync_i(&["-H", "-c"]), want, "round {round}");
        assert_eq!(
            ino(&b.join("l")),
            before,
            "round {round}: l was copied again"
        );
        assert_eq!(ino(&b.join("d/l3")), before);
    }
    // Same size and mtime, other content: copied by -c, once.
    std::fs::write(src.join("l"), b"z\n").unwrap();
    run(
        Command::new("touch")
            .args(["-d", "2020-01-01"])
            .arg(src.join("l")),
        &[0],
    )
    .unwrap();
    let want = rsync_i(&["-H", "-c"], &a);
    assert!(want.iter().any(|l| l.starts_with(">fc")), "{want:?}");
    let got = opsync_i(&["-H", "-c"]);
    assert!(got.iter().any(|l| l.starts_with(">fc")), "{got:?}");
    assert_eq!(got.len(), want.len(), "rsync: {want:?}\nopsync: {got:?}");
    assert_eq!(std::fs::read(b.join("d/l3")).unwrap(), b"z\n");
    assert!(opsync_i(&["-H", "-c"]).is_empty());
    assert_eq!(link_groups(&a).unwrap(), link_groups(&b).unwrap());
}

/// The racy case of [`hard_links_found_equal_by_content_are_not_copied_again`]: a new file
/// with another link, synced twice in a row with `-H`, is compared by content the second time
/// (its copy is racily clean) and found equal: nothing itemized, inode kept, as `rsync -aHi`
/// (which trusts size and mtime) and as opsync without `-H`.
#[test]
fn racy_hard_links_found_equal_are_not_copied_again() {
    require_program("rsync", "rsync");
    let (_tmp, src, a, b) = src_and_two_dsts();
    std::fs::create_dir_all(src.join("d")).unwrap();
    std::fs::write(src.join("n"), b"new\n").unwrap();
    std::fs::hard_link(src.join("n"), src.join("d/n2")).unwrap();
    std::fs::write(src.join("solo"), b"solo\n").unwrap();
    let ino = |p: &Path| std::fs::metadata(p).unwrap().ino();
    rsync(&["-H"], &src, &a, &[0]).unwrap();
    let first = opsync_sync(&["-H", "-i"], &src, &b, 0, 0).unwrap();
    assert!(
        split_itemize(&first).1.iter().any(|l| l.ends_with(" n")),
        "{}",
        String::from_utf8_lossy(&first)
    );
    let before = ino(&b.join("n"));
    let (_, want) = run(
        Command::new("rsync")
            .args(["-aHi", "--delete"])
            .arg(with_slash(&src))
            .arg(with_slash(&a)),
        &[0],
    )
    .unwrap();
    let got = opsync_sync(&["-H", "-i"], &src, &b, 0, 0).unwrap();
    assert_eq!(
        split_itemize(&got).1,
        split_itemize(&want).1,
        "the racy copy was copied again"
    );
    assert_eq!(ino(&b.join("n")), before);
    assert_eq!(ino(&b.join("d/n2")), before);
    assert_eq!(link_groups(&a).unwrap(), link_groups(&b).unwrap());
}

/// `-H -i` prints the lines of every link group: each group's node in the output order had one
/// slot too many, which was never completed, so every group waited for the end of the run,
/// where one more was released, and the third group's lines and those after it were lost.
/// Which name carries a group's data differs from rsync (see the README): the lines are
/// compared as the set of names each tool prints.
#[test]
fn every_hard_link_group_gets_its_itemize_lines() {
    require_program("rsync", "rsync");
    let (_tmp, src, a, b) = src_and_two_dsts();
    std::fs::create_dir_all(&src).unwrap();
    for x in ["x", "y", "z", "w"] {
        std::fs::write(src.join(x), x).unwrap();
        std::fs::hard_link(src.join(x), src.join(format!("{x}2"))).unwrap();
    }
    let names = |out: &[u8]| {
        let mut n: Vec<String> = split_itemize(out)
            .1
            .iter()
            .filter(|l| !l.starts_with("created directory "))
            .filter_map(|l| l.get(12..))
            .map(|l| l.split(" => ").next().unwrap().to_string())
            .collect();
        n.sort();
        n
    };
    let (_, want) = run(
        Command::new("rsync")
            .args(["-aHi", "--delete"])
            .arg(with_slash(&src))
            .arg(with_slash(&a)),
        &[0],
    )
    .unwrap();
    let got = opsync_sync(&["-H", "-i"], &src, &b, 0, 0).unwrap();
    assert_eq!(
        names(&got),
        names(&want),
        "{}",
        String::from_utf8_lossy(&got)
    );
    assert_eq!(names(&want).len(), 9, "./ and eight names");
    assert_eq!(link_groups(&a).unwrap(), link_groups(&b).unwrap());
}

/// As rsync: `-H` keeps hard links between devices, FIFOs and sockets (`hD+++++++++ b2 => b`,
/// `hS+++++++++ p2 => p`, two links each), into an empty DST, again (nothing to do), and over
/// a DST that has them as separate entries or as a FIFO where SRC has a socket. The `-i` lines
/// (no regular files: the same name leads each group in both tools; as a set), and which names
/// share an inode, must be rsync's.
#[test]
fn hard_links_of_devices_fifos_and_sockets_match_rsync() {
    use rustix::fs::{FileType, Mode, mknodat};
    require_program("rsync", "rsync");
    let (_tmp, src, a, b) = src_and_two_dsts();
    std::fs::create_dir_all(src.join("d")).unwrap();
    let node = |p: &Path, t: FileType, dev: u64| {
        mknodat(rustix::fs::CWD, p, t, Mode::from_raw_mode(0o640), dev).unwrap();
    };
    node(
        &src.join("b"),
        FileType::BlockDevice,
        rustix::fs::makedev(105, 73),
    );
    node(
        &src.join("c"),
        FileType::CharacterDevice,
        rustix::fs::makedev(1, 3),
    );
    node(&src.join("p"), FileType::Fifo, 0);
    drop(std::os::unix::net::UnixListener::bind(src.join("k")).unwrap());
    for (x, y) in [("b", "b2"), ("c", "d/c2"), ("p", "p2"), ("k", "k2")] {
        std::fs::hard_link(src.join(x), src.join(y)).unwrap();
    }
    let age = |root: &Path| age_tree(root, 1_500_000_000);
    age(&src);
    let groups = |root: &Path| {
        let mut by_ino: BTreeMap<u64, Vec<String>> = BTreeMap::new();
        for n in ["b", "b2", "c", "d/c2", "p", "p2", "k", "k2"] {
            let m = std::fs::symlink_metadata(root.join(n)).unwrap();
            by_ino.entry(m.ino()).or_default().push(n.to_string());
        }
        let mut g: Vec<Vec<String>> = by_ino.into_values().collect();
        g.sort();
        g
    };
    let both = |round: &str| {
        let (_, want) = run(
            Command::new("rsync")
                .args(["-aHi", "--delete"])
                .arg(with_slash(&src))
                .arg(with_slash(&a)),
            &[0],
        )
        .unwrap();
        let got = opsync_sync(&["-H", "-i"], &src, &b, 0, 0).unwrap();
        let (want, got) = (split_itemize(&want), split_itemize(&got));
        // Where a group's lines come differs (after the walk in opsync, see the README): the
        // lines are compared as a set.
        let strip = |l: &Vec<String>| -> Vec<String> {
            let mut l: Vec<String> = l
                .iter()
                .filter(|l| !l.starts_with("created directory "))
                .cloned()
                .collect();
            l.sort();
            l
        };
        assert_eq!(strip(&got.1), strip(&want.1), "{round}");
        assert_eq!(got.0, want.0, "{round}");
        assert_eq!(groups(&b), groups(&a), "{round}");
        strip(&want.1)
    };
    let first = both("into an empty DST");
    assert!(
        first.iter().any(|l| l.starts_with("hD+++++++++ b2 => b")),
        "{first:?}"
    );
    assert_eq!(groups(&a).len(), 4, "two names per inode");
    assert!(both("again").is_empty());
    // Separate entries in DST, a FIFO where SRC has a socket, an old mtime.
    for d in [&a, &b] {
        std::fs::remove_dir_all(d).unwrap();
        std::fs::create_dir_all(d.join("d")).unwrap();
        node(
            &d.join("b"),
            FileType::BlockDevice,
            rustix::fs::makedev(105, 73),
        );
        node(
            &d.join("b2"),
            FileType::BlockDevice,
            rustix::fs::makedev(105, 73),
        );
        node(
            &d.join("d/c2"),
            FileType::CharacterDevice,
            rustix::fs::makedev(1, 3),
        );
        node(&d.join("p"), FileType::Fifo, 0);
        node(&d.join("k2"), FileType::Fifo, 0);
        age(d);
    }
    run(
        Command::new("touch")
            .args(["-d", "@1600000000"])
            .arg(src.join("p")),
        &[0],
    )
    .unwrap();
    let fixed = both("over separate entries");
    assert!(
        fixed.iter().any(|l| l.starts_with("hD          b2 => b")),
        "{fixed:?}"
    );
    assert!(both("again").is_empty());
}
