//! `-ii` (itemize twice) against rsync: besides the changes, a line for every entry that needs
//! nothing, with rsync's field of an unchanged entry (`.d          ./`, `.f          a`,
//! `.L          l -> a`, `.D`, `.S`; `hf          b` for a name that already is a hard link of
//! its group's file), in rsync's order among the changed ones, in a dry run too.

use std::collections::{BTreeMap, BTreeSet};

use super::*;

/// `rsync -a --delete ARGS SRC/ DST/`; returns stdout.
fn rsync_out(args: &[&str], src: &Path, dst: &Path) -> Result<Vec<u8>, String> {
    let mut cmd = Command::new("rsync");
    cmd.args(["-a", "--delete"])
        .args(args)
        .env("LC_ALL", "C.UTF-8")
        .arg(with_slash(src))
        .arg(with_slash(dst));
    run(&mut cmd, &[0]).map(|(_, out)| out)
}

/// The type letters of the unchanged entries' lines (`.f          a`: `f`).
fn unchanged_kinds(out: &[u8]) -> BTreeSet<char> {
    String::from_utf8_lossy(out)
        .lines()
        .filter(|l| is_unchanged(l))
        .filter_map(|l| l.chars().nth(1))
        .collect()
}

/// An itemize line of an unchanged entry: spaces for the letters (`.f          a`).
fn is_unchanged(line: &str) -> bool {
    line.len() > 12 && line.as_bytes()[2..12].iter().all(|&b| b == b' ')
}

/// The lines of unchanged entries only.
fn unchanged_only(out: &[u8]) -> Vec<u8> {
    String::from_utf8_lossy(out)
        .lines()
        .filter(|l| is_unchanged(l))
        .map(|l| format!("{l}\n"))
        .collect::<String>()
        .into_bytes()
}

/// The same lines, in any order (`-H`: opsync prints a hard-link group's lines after the
/// walk, see the README).
fn same_set(title: &str, want: &[u8], got: &[u8]) -> Result<(), String> {
    let counted = |out: &[u8]| {
        let mut m: BTreeMap<String, usize> = BTreeMap::new();
        for l in String::from_utf8_lossy(out).lines() {
            *m.entry(l.to_string()).or_default() += 1;
        }
        m
    };
    let (w, g) = (counted(want), counted(got));
    let mut lines = Vec::new();
    for (l, n) in &w {
        if g.get(l) != Some(n) {
            lines.push(format!("- rsync  {l} (x{n})"));
        }
    }
    for (l, n) in &g {
        if w.get(l) != Some(n) {
            lines.push(format!("+ opsync {l} (x{n})"));
        }
    }
    no_diff(title, lines)
}

/// Random trees with changed and unchanged entries of every type: `-n -ii` (against rsync's
/// real run, and its unchanged entries against rsync's dry run), then `-ii` (one and four
/// threads), then `-ii` once everything is synced (every line an unchanged one), and
/// `-H -ii` once the hard links are made (as a set).
#[test]
fn itemize_twice_lists_unchanged_entries_like_rsync() {
    let kinds = std::sync::Mutex::new(BTreeSet::new());
    let linked = AtomicUsize::new(0);
    for_seeds(
        "itemize_twice_lists_unchanged_entries",
        6100..6116,
        |seed| {
            let case = Case::new(seed, &GenOptions::default(), 6);
            let result = (|| {
                for d in ["a", "b", "c"] {
                    case.stale
                        .tree
                        .build(&case.path(d))
                        .map_err(|e| e.to_string())?;
                }
                let (src, a, b) = (case.path("src"), case.path("a"), case.path("b"));

                let want_n = rsync_out(&["-ii", "-n"], &src, &a)?;
                let got_n = opsync_sync(&["-ii", "-n"], &src, &b, seed, 0)?;
                let want = rsync_out(&["-ii"], &src, &a)?;
                // opsync's dry run prints what its real run then prints, which is rsync's real run
                // (rsync's dry run differs in one case, see the README); its unchanged entries are
                // rsync's dry run's.
                same_items(
                    "opsync sync -n -ii differs from rsync -ii (the real run)",
                    &want,
                    &got_n,
                )?;
                same_items(
                    "opsync sync -n -ii: the unchanged entries differ from rsync -n -ii's",
                    &unchanged_only(&want_n),
                    &unchanged_only(&got_n),
                )?;
                kinds
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .extend(unchanged_kinds(&want));
                let got1 = opsync_sync(&["-ii", "--threads=1"], &src, &b, seed, 0)?;
                let got4 = opsync_sync(&["-ii", "--threads=4"], &src, &case.path("c"), seed, 0)?;
                for (threads, got) in [(1, &got1), (4, &got4)] {
                    same_items(
                        &format!("opsync sync -ii --threads={threads} differs from rsync -ii"),
                        &want,
                        got,
                    )?;
                }

                let want = rsync_out(&["-ii"], &src, &a)?;
                let entries = String::from_utf8_lossy(&want).lines().count();
                let src_entries = snap(&src)?.entries.len();
                if entries < src_entries {
                    return Err(format!(
                        "rsync -ii on a synced tree printed {entries} lines for {src_entries} \
                     entries: not one per entry"
                    ));
                }
                let got = opsync_sync(&["-ii"], &src, &b, seed, 0)?;
                same_items(
                    "opsync sync -ii on a synced tree differs from rsync",
                    &want,
                    &got,
                )?;

                rsync_out(&["-H"], &src, &a)?;
                opsync_sync(&["-H"], &src, &b, seed, 0)?;
                let want = rsync_out(&["-H", "-ii"], &src, &a)?;
                let got = opsync_sync(&["-H", "-ii"], &src, &b, seed, 0)?;
                if String::from_utf8_lossy(&want)
                    .lines()
                    .any(|l| l.starts_with("hf          "))
                {
                    linked.fetch_add(1, Ordering::Relaxed);
                }
                same_set(
                    "opsync sync -H -ii on a synced tree differs from rsync (as a set)",
                    &want,
                    &got,
                )
            })();
            case.finish(result)
        },
    );
    let kinds = kinds.into_inner().unwrap_or_else(|p| p.into_inner());
    let all: BTreeSet<char> = "fdLDS".chars().collect();
    assert!(
        kinds.is_superset(&all),
        "rsync's unchanged lines next to changed ones had only the types {kinds:?}: the test \
         proves little"
    );
    let linked = linked.into_inner();
    assert!(
        linked >= 3,
        "only {linked} seeds had names that already are hard links: the test proves little"
    );
}

/// Hard-link groups (`-H`): every group's lines come, the last group's too; a dry run over
/// links that already exist prints none; `-ii` shows a name that already is a link as rsync
/// does (`hf          b`, no target).
#[test]
fn hard_link_groups_itemize_like_rsync() {
    require_program("rsync", "rsync");
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    for g in ["a", "b", "c"] {
        std::fs::write(src.join(g), g).unwrap();
        std::fs::hard_link(src.join(g), src.join(format!("{g}-2"))).unwrap();
    }
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    rsync_out(&["-H"], &src, &a).unwrap();
    let created = opsync_sync(&["-H", "-i"], &src, &b, 0, 0).unwrap();
    let created = String::from_utf8_lossy(&created);
    for g in ["a", "b", "c"] {
        assert!(
            created.lines().any(|l| l == format!(">f+++++++++ {g}"))
                && created
                    .lines()
                    .any(|l| l == format!("hf+++++++++ {g}-2 => {g}")),
            "opsync sync -H -i left out the lines of group {g}:\n{created}"
        );
    }
    for args in [
        &["-H", "-i", "-n"][..],
        &["-H", "-ii", "-n"],
        &["-H", "-ii"],
    ] {
        let want = rsync_out(args, &src, &a).unwrap();
        let got = opsync_sync(args, &src, &b, 0, 0).unwrap();
        same_items(&format!("opsync sync {args:?}"), &want, &got).unwrap();
    }
}
