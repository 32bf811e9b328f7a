//! Set-up from nothing: the README's first command on a fresh checkout, `opsync setup` (dry
//! run, first run, second run that changes nothing), completions and man pages.

use std::path::Path;

use opsync_tests::opsync_bin;
use opsync_tests::run::{Run, opsync_in};

/// The repository's root (this crate is `tests/`).
fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap()
}

/// Regression: the README's first command was `opsync sync data dev-data`, and a fresh clone
/// has no `data`.
#[test]
fn readme_first_command_works_on_a_fresh_checkout() {
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let block = readme.split("```sh\n").nth(1).unwrap();
    let line = block.lines().next().unwrap();
    let (build, run) = line.split_once(" && ").expect("BUILD && RUN");
    assert_eq!(
        build, "cargo build --release -p ops",
        "only the binary is built"
    );
    // A checkout of the tracked example folder, the built binary in place of target/release.
    let tmp = tempfile::tempdir().unwrap();
    let files = std::process::Command::new("git")
        .args(["ls-files", "examples"])
        .current_dir(repo())
        .output()
        .unwrap();
    let files = String::from_utf8(files.stdout).unwrap();
    assert!(!files.is_empty(), "examples/ is tracked");
    for f in files.lines() {
        let to = tmp.path().join(f);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(repo().join(f), &to).unwrap();
    }
    std::fs::create_dir_all(tmp.path().join("target/release")).unwrap();
    std::fs::copy(opsync_bin(), tmp.path().join("target/release/opsync")).unwrap();
    let out = std::process::Command::new("sh")
        .args(["-c", run])
        .current_dir(tmp.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{run}: {out:?}");
    assert!(
        tmp.path().join("dev-data/uploads/hello.txt").is_file(),
        "{run}"
    );
}

#[test]
fn setup_brings_a_folder_to_running_and_a_second_run_changes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("server");
    std::fs::create_dir_all(&dir).unwrap();
    let d = |p: &str| tmp.path().join(p).to_str().unwrap().to_owned();
    let (units, comp, man) = (d("units"), d("comp"), d("man"));
    let args = [
        "setup",
        "--systemd-dir",
        &units,
        "--completions-dir",
        &comp,
        "--man-dir",
        &man,
    ];
    let mut dry = args.to_vec();
    dry.push("--dry-run");
    let r: Run = opsync_in(Some(&dir), &dry).expect_code(0);
    assert!(r.stdout.contains("would write configuration"), "{r}");
    assert_eq!(
        std::fs::read_dir(&dir).unwrap().count(),
        0,
        "dry run wrote\n{r}"
    );
    assert!(!Path::new(&units).exists(), "{r}");

    let r = opsync_in(Some(&dir), &args).expect_code(0);
    for what in [
        "did: write configuration",
        "did: create the sync source folder",
        "checked: ",
        "did: write systemd unit",
        "opsync-failure@.service",
        "did: write bash completion",
        "did: write man page",
    ] {
        assert!(r.stdout.contains(what), "{what:?} missing\n{r}");
    }
    let unit = std::fs::read_to_string(Path::new(&units).join("opsync.service")).unwrap();
    assert!(
        unit.contains(&format!("--config {}/opsync.toml daemon", dir.display())),
        "{unit}"
    );
    assert!(
        std::fs::read_to_string(Path::new(&comp).join("opsync"))
            .unwrap()
            .contains("_opsync")
    );
    assert!(Path::new(&man).join("opsync.1").is_file());
    // The configuration it wrote is a sync-only server that checks clean.
    opsync_in(Some(&dir), &["config", "check"]).expect_code(0);
    let before: Vec<_> = walk(tmp.path());

    let r = opsync_in(Some(&dir), &args).expect_code(0);
    assert!(
        r.stdout.contains("nothing to do: the server is set up"),
        "{r}"
    );
    assert!(!r.stdout.contains("did:"), "{r}");
    assert_eq!(walk(tmp.path()), before, "the second run changed files");
}

#[test]
fn completions_and_man_pages() {
    for shell in ["bash", "zsh", "fish"] {
        let r = opsync_in(None, &["completions", shell]).expect_code(0);
        assert!(r.stdout.contains("opsync"), "{r}");
    }
    let r = opsync_in(None, &["man"]).expect_code(0);
    assert!(r.stdout.contains(".TH opsync 1"), "{r}");
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("man1");
    opsync_in(None, &["man", "--dir", dir.to_str().unwrap()]).expect_code(0);
    assert!(dir.join("opsync-sync.1").is_file());
    assert!(dir.join("opsync-config-check.1").is_file());
}

/// Every file under `root` with its contents and mtime.
fn walk(root: &Path) -> Vec<(std::path::PathBuf, Vec<u8>, std::time::SystemTime)> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let m = std::fs::symlink_metadata(&p).unwrap();
            if m.is_dir() {
                stack.push(p);
            } else {
                out.push((p.clone(), std::fs::read(&p).unwrap(), m.modified().unwrap()));
            }
        }
    }
    out.sort();
    out
}

/// Regression: `scripts/test` failed when another install held apt's lock, and on a machine
/// without the Docker engine (`docker.io` is only a Recommends of `docker-compose`). Read from
/// the script: every apt-get call waits for the lock; the engine is installed and started.
#[test]
fn scripts_test_waits_for_apt_and_brings_up_docker() {
    let script = std::fs::read_to_string(repo().join("scripts/test")).unwrap();
    let st = std::process::Command::new("bash")
        .args(["-n", "scripts/test"])
        .current_dir(repo())
        .status()
        .unwrap();
    assert!(st.success(), "bash -n scripts/test");
    assert!(
        script.contains("APT=(apt-get -o DPkg::Lock::Timeout="),
        "{script}"
    );
    for line in script
        .lines()
        .filter(|l| l.contains("apt-get ") && !l.contains("APT=("))
    {
        assert!(
            line.trim_start().starts_with('#') || line.contains("command -v apt-get"),
            "apt-get called without the lock timeout: {line}"
        );
    }
    assert!(script.contains("apt_install docker.io"), "{script}");
    assert!(script.contains("systemctl start docker"), "{script}");
}
