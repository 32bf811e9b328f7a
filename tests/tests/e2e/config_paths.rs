//! Every key that holds a path is resolved against the config file's folder, in every command,
//! whichever way the file was found: as `./opsync.toml`, as `--config opsync.toml` (relative), as
//! `--config server/opsync.toml` from another folder, and as an absolute `--config`. The config
//! below uses only relative paths, for a real nginx (prefix, main config, site file, webroot,
//! certificate files), the sync pair and the state folder.
//!
//! Regression: with the file found as `./opsync.toml`, nginx got `-p nginx -c nginx/nginx.conf`
//! (and read `nginx/nginx/nginx.conf`), the rendered site `root webroot;`.

use std::path::Path;

use opsync_tests::nginx::NginxLayout;
use opsync_tests::pki::{TestCa, served_serial};
use opsync_tests::run::{Run, opsync_in};

const SITE: &str = "paths.opsync.test";

/// A server folder `root/server` whose opsync.toml names everything relative to itself.
fn server(root: &Path) -> (NginxLayout, std::path::PathBuf) {
    let dir = root.join("server");
    std::fs::create_dir_all(dir.join("data/sub")).unwrap();
    std::fs::write(dir.join("data/sub/f.txt"), "content").unwrap();
    let layout = NginxLayout::new(&dir.join("nginx"));
    let ca = TestCa::new(&dir.join("ca"));
    ca.issue_days("site", &[SITE], 30);
    std::fs::write(
        dir.join("opsync.toml"),
        format!(
            "[general]\nstate-dir = \"state\"\nmetrics-file = \"metrics/opsync.prom\"\n\n\
             [sync]\nsource = \"data\"\ntarget = \"./dev-data\"\n\n\
             [stacks]\n\n\
             [[site]]\ndomain = \"{SITE}\"\nupstream = \"127.0.0.1:9\"\n\
             cert-file = \"ca/site.pem\"\nkey-file = \"ca/site.key\"\n\n\
             [certbot]\nwebroot = \"webroot\"\nconfig-dir = \"le\"\n\n\
             [nginx]\noutput = \"nginx/sites/opsync.conf\"\nmain-config = \"nginx/nginx.conf\"\n\
             prefix = \"nginx\"\nlisten-address = \"127.0.0.1\"\nhttp-port = {}\nhttps-port = {}\n\n\
             [jobs.nightly-sync]\nkind = \"sync\"\nschedule = \"0 2 * * *\"\n\
             dev.enabled = false\nquiesce.mode = \"none\"\n",
            layout.http_port, layout.https_port
        ),
    )
    .unwrap();
    (layout, dir)
}

#[test]
fn relative_paths_resolve_against_the_config_folder_in_every_command() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let (layout, dir) = server(root);
    let elsewhere = root.join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    let abs = dir.join("opsync.toml");
    let abs = abs.to_str().unwrap();
    // (working directory, the --config arguments)
    let ways: [(&Path, Vec<&str>); 4] = [
        (&dir, vec![]),
        (&dir, vec!["--config", "opsync.toml"]),
        (root, vec!["--config", "server/opsync.toml"]),
        (&elsewhere, vec!["--config", abs]),
    ];
    let mut nginx = None;
    for (i, (cwd, config)) in ways.iter().enumerate() {
        let run = |args: &[&str]| -> Run {
            let mut full = config.clone();
            full.extend_from_slice(args);
            opsync_in(Some(cwd), &full)
        };
        run(&["config", "check"]).expect_code(0);
        let r = run(&["nginx", "render"]).expect_code(0);
        let site = std::fs::read_to_string(&layout.site_file).unwrap();
        let webroot = dir.join("webroot");
        assert!(
            site.contains(&format!("root {};", webroot.display())),
            "webroot not resolved\n{site}\n{r}"
        );
        assert!(
            site.contains(&dir.join("ca/site.pem").display().to_string()),
            "cert-file not resolved\n{site}"
        );
        run(&["nginx", "check"]).expect_code(0);
        if nginx.is_none() {
            nginx = Some(layout.start());
        }
        run(&["nginx", "reload"]).expect_code(0);
        let r = run(&["certs", "status", "--json"]).expect_code(0);
        assert_eq!(r.json_lines()[0]["served_matches_disk"], true, "{r}");
        assert!(!served_serial(layout.https_port, SITE).is_empty());

        // The sync pair, the job's state, locks and metrics.
        std::fs::remove_dir_all(dir.join("dev-data")).ok();
        run(&["sync"]).expect_code(0);
        assert!(dir.join("dev-data/sub/f.txt").is_file(), "way {i}");
        run(&["run", "nightly-sync"]).expect_code(0);
        assert!(
            dir.join("state/jobs").is_dir(),
            "way {i}: state not in the config folder"
        );
        assert!(dir.join("metrics/opsync.prom").is_file(), "way {i}");
        let r = run(&["status", "--json"]).expect_code(0);
        assert!(r.stdout.contains("\"nightly-sync\""), "{r}");
        let r = run(&["setup", "systemd", "--print"]).expect_code(0);
        assert!(
            r.stdout
                .contains(&format!("WorkingDirectory={}", dir.display())),
            "{r}"
        );
        let r = run(&["certs", "install-hook", "--print"]).expect_code(0);
        assert!(
            r.stdout.contains(abs),
            "the hook names the config by its absolute path\n{r}"
        );
    }
    // Nothing was written where the commands ran.
    assert_eq!(std::fs::read_dir(&elsewhere).unwrap().count(), 0);
    for name in ["state", "dev-data", "webroot", "metrics"] {
        assert!(
            !root.join(name).exists(),
            "{name} written outside the config folder"
        );
    }
}
