//! A hand-run `opsync sync SRC DST` and the configuration: the configured pair's exclude and
//! max-delete apply (one line says so), `--no-config` opts out, and without a configured pair
//! deleting more than half of a non-empty DST needs `--max-delete` or `--force`.
//!
//! Regression: `opsync sync data dev-data` in the server folder silently dropped the configured
//! `exclude` and `max-delete` of that same pair.

use std::path::Path;

use opsync_tests::run::{Run, opsync_in};

/// `data/` with `keep.txt` and `cache/big.bin`; `dev-data/` with `cache/local.bin` (excluded,
/// so kept) and 10 extraneous files.
pub(crate) fn folder(dir: &Path, config: Option<&str>) {
    std::fs::create_dir_all(dir.join("data/cache")).unwrap();
    std::fs::write(dir.join("data/keep.txt"), "keep").unwrap();
    std::fs::write(dir.join("data/cache/big.bin"), "big").unwrap();
    std::fs::create_dir_all(dir.join("dev-data/cache")).unwrap();
    std::fs::write(dir.join("dev-data/cache/local.bin"), "dev's own").unwrap();
    for i in 0..10 {
        std::fs::write(dir.join(format!("dev-data/old-{i}")), "old").unwrap();
    }
    if let Some(text) = config {
        std::fs::write(dir.join("opsync.toml"), text).unwrap();
    }
}

pub(crate) fn count_old(dir: &Path) -> usize {
    (0..10)
        .filter(|i| dir.join(format!("dev-data/old-{i}")).exists())
        .count()
}

const CONFIG: &str = "[sync]\nsource = \"./data\"\ntarget = \"./dev-data\"\n\
                      exclude = [\"cache/\"]\nmax-delete = \"3\"\n[stacks]\n";

#[test]
fn hand_run_of_the_configured_pair_applies_its_exclude_and_max_delete() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    folder(dir, Some(CONFIG));
    let r: Run = opsync_in(Some(dir), &["sync", "data", "dev-data"]).expect_code(25);
    let notes: Vec<&str> = r
        .stderr
        .lines()
        .filter(|l| l.contains("is the pair of [sync]"))
        .collect();
    assert_eq!(notes.len(), 1, "one line says the rails apply\n{r}");
    assert!(
        notes[0].contains("exclude (1 pattern) and max-delete 3"),
        "{r}"
    );
    assert!(
        dir.join("dev-data/cache/local.bin").exists(),
        "excluded entry deleted\n{r}"
    );
    assert!(
        !dir.join("dev-data/cache/big.bin").exists(),
        "excluded entry copied\n{r}"
    );
    assert_eq!(count_old(dir), 7, "max-delete 3 not applied\n{r}");

    // The same pair written differently (absolute, trailing slash) is the same pair.
    let abs_src = format!("{}/data/", dir.display());
    let abs_dst = dir.join("dev-data");
    opsync_in(
        None,
        &[
            "--config",
            dir.join("opsync.toml").to_str().unwrap(),
            "sync",
            &abs_src,
            abs_dst.to_str().unwrap(),
        ],
    )
    .expect_code(25);
    assert_eq!(count_old(dir), 4);

    // --no-config: neither rail (and, as without configuration, the half guard: --force).
    let r = opsync_in(
        Some(dir),
        &["sync", "--no-config", "--force", "data", "dev-data"],
    )
    .expect_code(0);
    assert!(!r.stderr.contains("is the pair of"), "{r}");
    assert!(!dir.join("dev-data/cache/local.bin").exists(), "{r}");
    assert!(dir.join("dev-data/cache/big.bin").exists(), "{r}");
}

#[test]
fn without_configuration_deleting_more_than_half_needs_max_delete_or_force() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    folder(dir, None);
    let r = opsync_in(Some(dir), &["sync", "data", "dev-data"]).expect_code(25);
    let errors: Vec<&str> = r
        .stderr
        .lines()
        .filter(|l| l.starts_with("opsync: error:"))
        .collect();
    assert_eq!(errors.len(), 1, "{r}");
    assert!(
        errors[0].contains(
            "deleting more than half of dev-data needs --max-delete N (or P%) or --force"
        ),
        "{r}"
    );
    // All or nothing: not one of the extraneous entries is deleted (a run stopped at half
    // would have removed some), and the copies were still made.
    assert_eq!(count_old(dir), 10, "{r}");
    assert!(dir.join("dev-data/cache/local.bin").exists(), "{r}");
    assert!(dir.join("dev-data/keep.txt").exists(), "{r}");
    assert!(errors[0].contains("nothing was deleted"), "{r}");
    opsync_in(Some(dir), &["sync", "--force", "data", "dev-data"]).expect_code(0);
    assert_eq!(count_old(dir), 0);
    // An explicit --max-delete is the limit instead.
    folder(dir, None);
    opsync_in(
        Some(dir),
        &["sync", "--max-delete", "100%", "data", "dev-data"],
    )
    .expect_code(0);
    assert_eq!(count_old(dir), 0);
    // Deleting less than half needs nothing.
    folder(dir, None);
    std::fs::remove_dir_all(dir.join("dev-data")).unwrap();
    std::fs::create_dir_all(dir.join("dev-data")).unwrap();
    std::fs::create_dir_all(dir.join("dev-data/cache")).unwrap();
    std::fs::write(dir.join("dev-data/keep.txt"), "old keep").unwrap();
    std::fs::write(dir.join("dev-data/cache/big.bin"), "old big").unwrap();
    std::fs::write(dir.join("dev-data/old-0"), "old").unwrap();
    opsync_in(Some(dir), &["sync", "data", "dev-data"]).expect_code(0);
}
