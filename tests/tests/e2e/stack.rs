//! `opsync stack ...` against the real Docker engine and the machine's compose tool, with
//! images built from scratch (static busybox + httpd + healthcheck) and a local registry on
//! 127.0.0.1 for `pull`. Each test uses its own compose projects and image names (process id +
//! test name) and removes everything it created, also when it fails.

use std::path::{Path, PathBuf};
use std::process::Output;

use opsync_tests::docker::{
    Cleanup, ImageSpec, Registry, build_image, docker_ok, image_id, project_containers,
    project_objects, pruning, require_engine, unique,
};
use opsync_tests::opsync;

/// The result of one `opsync` run, printed in full when an assertion fails.
struct Run {
    command: String,
    code: i32,
    stdout: String,
    stderr: String,
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "$ {}\nexit code {}\n--- stdout\n{}--- stderr\n{}",
            self.command, self.code, self.stdout, self.stderr
        )
    }
}

impl Run {
    fn ok(self) -> Run {
        assert_eq!(self.code, 0, "expected success:\n{self}");
        self
    }
}

fn run_opsync(dir: &Path, args: &[&str], envs: &[(&str, &str)]) -> Run {
    let config = dir.join("opsync.toml");
    let mut cmd = opsync();
    cmd.arg("--config").arg(&config).args(args).current_dir(dir);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let out: Output = cmd.output().expect("run opsync");
    Run {
        command: format!("opsync --config {} {}", config.display(), args.join(" ")),
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A folder with `opsync.toml`, `compose.yaml` (prod) and `dev-compose.yaml` (dev), each stack
/// with one `web` service and a named volume, and the guard that removes it all.
struct Setup {
    dir: tempfile::TempDir,
    prod: String,
    dev: String,
    /// Prefix of every image name of this test.
    prefix: String,
    cleanup: Cleanup,
}

impl Setup {
    fn new(test: &str, prod_image: &str, dev_image: &str, keep: usize) -> Setup {
        let prefix = unique(test);
        let prod = format!("{prefix}-prod");
        let dev = format!("{prefix}-dev");
        let mut cleanup = Cleanup::new();
        cleanup.project(&prod);
        cleanup.project(&dev);
        cleanup.image_prefix(&prefix);
        let dir = tempfile::tempdir().unwrap();
        let compose = |image: &str| {
            format!(
                "services:\n  web:\n    image: {image}\n    volumes:\n      - data:/data\n\
                 volumes:\n  data: {{}}\n"
            )
        };
        std::fs::write(dir.path().join("compose.yaml"), compose(prod_image)).unwrap();
        std::fs::write(dir.path().join("dev-compose.yaml"), compose(dev_image)).unwrap();
        let stack = |name: &str, file: &str, project: &str| {
            format!(
                "[stacks.{name}]\nfile = \"{file}\"\nproject = \"{project}\"\n\
                 health-timeout = 60\ncommand-timeout = 300\nkeep-deployments = {keep}\n\n"
            )
        };
        std::fs::write(
            dir.path().join("opsync.toml"),
            format!(
                "[general]\nstate-dir = \"state\"\n\n{}{}",
                stack("prod", "compose.yaml", &prod),
                stack("dev", "dev-compose.yaml", &dev)
            ),
        )
        .unwrap();
        Setup {
            dir,
            prod,
            dev,
            prefix,
            cleanup,
        }
    }

    fn opsync(&self, args: &[&str]) -> Run {
        run_opsync(self.dir.path(), args, &[])
    }

    fn state(&self) -> serde_json::Value {
        let text = std::fs::read_to_string(self.dir.path().join("state/stacks.json")).unwrap();
        serde_json::from_str(&text).unwrap()
    }

    /// Builds an image tagged `PREFIX/NAME:local` and tracks it for cleanup.
    fn build(&mut self, name: &str, spec: ImageSpec<'_>) -> String {
        let id = build_image(&format!("{}/{name}:local", self.prefix), spec);
        self.cleanup.image(&id);
        id
    }
}

/// The single `web` container of `project`.
fn web(project: &str) -> opsync_tests::docker::Container {
    let c = project_containers(project);
    assert_eq!(c.len(), 1, "one container in {project}: {c:?}");
    c.into_iter().next().unwrap()
}

const GOOD_V1: ImageSpec<'static> = ImageSpec {
    content: "v1",
    healthy: true,
};
const GOOD_V2: ImageSpec<'static> = ImageSpec {
    content: "v2",
    healthy: true,
};
const BAD: ImageSpec<'static> = ImageSpec {
    content: "broken",
    healthy: false,
};

/// Registry holds `id` under `reference`, while the local `reference` points to `local_id`:
/// the next `pull` brings `id`.
fn publish(reg: &Registry, id: &str, reference: &str, local_id: &str) {
    reg.push(id, reference);
    docker_ok(&["tag", local_id, reference]);
}

#[test]
fn stack_two_stacks_in_one_folder_keep_separate_projects() {
    require_engine();
    let prefix = unique("two");
    let (prod_img, dev_img) = (format!("{prefix}/app:prod"), format!("{prefix}/app:dev"));
    let mut s = Setup::new("two", &prod_img, &dev_img, 5);
    let prod_id = s.build("app-prod", GOOD_V1);
    let dev_id = s.build("app-dev", GOOD_V2);
    docker_ok(&["tag", &prod_id, &prod_img]);
    docker_ok(&["tag", &dev_id, &dev_img]);

    let up = s.opsync(&["stack", "up", "prod"]).ok();
    assert!(up.stdout.contains("stack prod: up and healthy"), "{up}");
    let prod_before = web(&s.prod);
    s.opsync(&["stack", "up", "dev"]).ok();
    // `up` of the dev file in the same folder did not touch prod's container.
    let prod_after = web(&s.prod);
    assert_eq!(prod_after.id, prod_before.id);
    assert_eq!(prod_after.state, "running");
    let dev = web(&s.dev);
    assert_eq!(
        (dev.state.as_str(), dev.health.as_str()),
        ("running", "healthy")
    );
    assert_eq!(dev.image_id, dev_id);
    assert_eq!(prod_after.image_id, prod_id);

    let status = s.opsync(&["stack", "status", "prod", "--json"]).ok();
    let rows: Vec<serde_json::Value> = status
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 1, "{status}");
    assert_eq!(rows[0]["service"], "web");
    assert_eq!(rows[0]["state"], "running");
    assert_eq!(rows[0]["health"], "healthy");
    assert_eq!(rows[0]["image_id"], prod_id.as_str());
    let table = s.opsync(&["stack", "status"]).ok();
    assert!(table.stdout.starts_with("STACK"), "{table}");
    assert_eq!(table.stdout.lines().count(), 3, "{table}");

    s.opsync(&["stack", "stop", "dev"]).ok();
    assert_eq!(web(&s.dev).state, "exited");
    assert_eq!(web(&s.prod).state, "running");
    s.opsync(&["stack", "start", "dev"]).ok();
    assert_eq!(web(&s.dev).health, "healthy");

    s.opsync(&["stack", "pause", "prod"]).ok();
    assert_eq!(web(&s.prod).state, "paused");
    s.opsync(&["stack", "unpause", "prod", "web"]).ok();
    assert_eq!(web(&s.prod).state, "running");

    let volumes = project_objects("volume", &s.dev);
    assert_eq!(volumes.len(), 1, "{volumes:?}");
    s.opsync(&["stack", "down", "dev"]).ok();
    assert!(project_containers(&s.dev).is_empty());
    assert_eq!(
        project_objects("volume", &s.dev),
        volumes,
        "down keeps volumes"
    );
    assert_eq!(web(&s.prod).id, prod_before.id);
    drop(s);
}

#[test]
fn stack_update_to_good_image_then_rollback_on_demand() {
    require_engine();
    let reg = Registry::start();
    let prefix = unique("good");
    let image = format!("{}/{prefix}/app:latest", reg.host);
    let mut s = Setup::new("good", &image, &image, 5);
    let v1 = s.build("v1", GOOD_V1);
    let v2 = s.build("v2", GOOD_V2);
    reg.push(&v1, &image);
    docker_ok(&["rmi", &image]);

    s.opsync(&["stack", "up", "prod"]).ok();
    assert_eq!(web(&s.prod).image_id, v1);

    publish(&reg, &v2, &image, &v1);
    let up = s.opsync(&["stack", "update", "prod"]).ok();
    assert!(
        up.stdout.contains("stack prod: updated web and healthy"),
        "{up}"
    );
    let c = web(&s.prod);
    assert_eq!(
        (c.image_id.as_str(), c.health.as_str()),
        (v2.as_str(), "healthy")
    );
    let state = s.state();
    let deployments = state["stacks"]["prod"]["deployments"].as_array().unwrap();
    assert_eq!(deployments.len(), 2, "{state:#}");
    assert_eq!(deployments[0]["images"][0]["id"], v1.as_str());
    assert_eq!(deployments[1]["images"][0]["id"], v2.as_str());
    // The old image carries a rollback tag, so no prune removes it.
    let tag = deployments[0]["images"][0]["rollback_tag"]
        .as_str()
        .unwrap();
    assert!(tag.contains(":opsync-rollback-"), "{tag}");
    assert_eq!(
        image_id(tag).as_deref(),
        Some(v1.as_str()),
        "{}",
        docker_ok(&["image", "ls", "--no-trunc"])
    );

    // A second update with nothing new changes nothing.
    let again = s.opsync(&["stack", "update", "prod"]).ok();
    assert!(again.stdout.contains("up to date"), "{again}");
    assert_eq!(
        s.state()["stacks"]["prod"]["deployments"]
            .as_array()
            .unwrap()
            .len(),
        2
    );

    let back = s.opsync(&["stack", "rollback", "prod"]).ok();
    assert!(back.stdout.contains("rolled back"), "{back}");
    let c = web(&s.prod);
    assert_eq!(
        (c.image_id.as_str(), c.health.as_str()),
        (v1.as_str(), "healthy")
    );
    assert_eq!(
        s.state()["stacks"]["prod"]["deployments"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    // Nothing earlier to go back to.
    let none = s.opsync(&["stack", "rollback", "prod"]);
    assert_eq!(none.code, 10, "{none}");
    assert!(none.stderr.contains("no earlier deployment"), "{none}");
    drop(s);
    drop(reg);
}

#[test]
fn stack_update_to_unhealthy_image_rolls_back_to_the_old_one() {
    require_engine();
    let reg = Registry::start();
    let prefix = unique("bad");
    let image = format!("{}/{prefix}/app:latest", reg.host);
    let mut s = Setup::new("bad", &image, &image, 5);
    let v1 = s.build("v1", GOOD_V1);
    let bad = s.build("broken", BAD);
    reg.push(&v1, &image);
    s.opsync(&["stack", "up", "prod"]).ok();
    let before = web(&s.prod);

    publish(&reg, &bad, &image, &v1);
    let r = s.opsync(&["stack", "update", "prod"]);
    assert_eq!(r.code, 10, "{r}");
    let error_lines: Vec<&str> = r
        .stderr
        .lines()
        .filter(|l| l.starts_with("opsync: error:"))
        .collect();
    assert_eq!(error_lines.len(), 1, "{r}");
    assert!(
        error_lines[0].contains("unhealthy") && error_lines[0].contains("rolled back"),
        "{r}"
    );
    // The container and what its healthcheck said.
    assert!(
        error_lines[0].contains("service web (container ")
            && error_lines[0].contains("its last health check said: "),
        "{r}"
    );

    let after = web(&s.prod);
    assert_ne!(after.id, before.id, "the container was recreated");
    assert_eq!(
        (after.image_id.as_str(), after.state.as_str()),
        (v1.as_str(), "running")
    );
    assert_eq!(after.health, "healthy");
    // The service's reference points to the old image again.
    assert_eq!(image_id(&image).as_deref(), Some(v1.as_str()));
    let state = s.state();
    let deployments = state["stacks"]["prod"]["deployments"].as_array().unwrap();
    assert_eq!(
        deployments.len(),
        1,
        "the failed deployment is not recorded: {state:#}"
    );
    drop(s);
    drop(reg);
}

#[test]
fn stack_prune_keeps_the_stopped_dev_stack_and_all_volumes() {
    require_engine();
    let reg = Registry::start();
    let prefix = unique("prune");
    let image = format!("{}/{prefix}/app:latest", reg.host);
    let dev_image = format!("{prefix}/devapp:1");
    // keep-deployments = 1: after one update the first deployment's image is retired.
    let mut s = Setup::new("prune", &image, &dev_image, 1);
    let v1 = s.build("v1", GOOD_V1);
    let v2 = s.build("v2", GOOD_V2);
    let dev_id = s.build(
        "dev",
        ImageSpec {
            content: "dev",
            healthy: true,
        },
    );
    docker_ok(&["tag", &dev_id, &dev_image]);
    reg.push(&v1, &image);

    s.opsync(&["stack", "up", "prod"]).ok();
    s.opsync(&["stack", "up", "dev"]).ok();
    s.opsync(&["stack", "stop", "dev"]).ok();
    // An update would start the stopped dev stack: refused, nothing touched.
    let refused = s.opsync(&["stack", "update", "dev"]);
    assert_eq!(refused.code, 10, "{refused}");
    assert!(
        refused.stderr.contains("stack dev: is stopped"),
        "{refused}"
    );
    assert_eq!(web(&s.dev).state, "exited");
    publish(&reg, &v2, &image, &v1);
    s.opsync(&["stack", "update", "prod"]).ok();
    // Our rollback tag and the registry push tag are all that keep v1 now.
    docker_ok(&["rmi", &format!("{}/v1:local", s.prefix)]);

    // A dangling image: build twice under one tag.
    let dangling = s.build(
        "scratch",
        ImageSpec {
            content: "a",
            healthy: true,
        },
    );
    let newer = s.build(
        "scratch",
        ImageSpec {
            content: "b",
            healthy: true,
        },
    );
    assert_ne!(dangling, newer);

    let volumes: Vec<String> = [&s.prod, &s.dev]
        .iter()
        .flat_map(|p| project_objects("volume", p))
        .collect();
    assert_eq!(volumes.len(), 2, "{volumes:?}");
    let dev_networks = project_objects("network", &s.dev);
    let dev_containers = project_containers(&s.dev);
    assert_eq!(dev_containers[0].state, "exited");

    let pruning = pruning();
    let dry = s.opsync(&["stack", "prune", "--dry-run"]).ok();
    assert!(
        dry.stdout.contains(&format!(
            "would remove image {v1} (retired from stack prod)"
        )),
        "{dry}"
    );
    assert!(
        dry.stdout
            .contains(&format!("would remove image {dangling} (dangling)")),
        "{dry}"
    );
    assert!(
        !dry.stdout.contains(&dev_id) && !dry.stdout.contains(&v2),
        "{dry}"
    );
    assert!(
        image_id(&v1).is_some() && image_id(&dangling).is_some(),
        "dry run removed something"
    );

    let pruned = s.opsync(&["stack", "prune"]).ok();
    assert!(
        pruned.stdout.contains(&format!("removed image {v1}")),
        "{pruned}"
    );
    assert!(
        pruned.stdout.contains(&format!("removed image {dangling}")),
        "{pruned}"
    );
    assert_eq!(image_id(&v1), None, "retired image removed");
    assert_eq!(image_id(&dangling), None, "dangling image removed");
    drop(pruning);

    // Left alone: the stopped dev stack, its image and network, every volume, prod.
    assert_eq!(project_containers(&s.dev), dev_containers);
    assert_eq!(image_id(&dev_image).as_deref(), Some(dev_id.as_str()));
    assert_eq!(project_objects("network", &s.dev), dev_networks);
    let after: Vec<String> = [&s.prod, &s.dev]
        .iter()
        .flat_map(|p| project_objects("volume", p))
        .collect();
    assert_eq!(after, volumes);
    let prod = web(&s.prod);
    assert_eq!(
        (prod.image_id.as_str(), prod.state.as_str()),
        (v2.as_str(), "running")
    );
    assert!(
        s.state()["stacks"]["prod"]["retired"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    drop(s);
    drop(reg);
}

fn error_setup(test: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("opsync.toml"),
        format!(
            "[general]\nstate-dir = \"state\"\n\n[stacks.prod]\nfile = \"compose.yaml\"\n\
             project = \"{0}\"\n\n[stacks.dev]\nfile = \"dev-compose.yaml\"\nproject = \"{0}-dev\"\n",
            unique(test)
        ),
    )
    .unwrap();
    let compose = dir.path().join("compose.yaml");
    (dir, compose)
}

#[test]
fn stack_missing_compose_file_is_one_clear_error_line() {
    let (dir, compose) = error_setup("nofile");
    let r = run_opsync(dir.path(), &["stack", "up", "prod"], &[]);
    assert_eq!(r.code, 2, "{r}");
    assert_eq!(r.stderr.lines().count(), 1, "{r}");
    assert!(
        r.stderr
            .contains(&format!("compose file {} not found", compose.display())),
        "{r}"
    );
}

#[test]
fn stack_unreachable_engine_is_one_clear_error_line() {
    let (dir, compose) = error_setup("noengine");
    std::fs::write(&compose, "services:\n  web:\n    image: busybox\n").unwrap();
    for args in [
        &["stack", "status", "prod"][..],
        &["stack", "update", "prod"],
        &["stack", "prune"],
    ] {
        let r = run_opsync(
            dir.path(),
            args,
            &[("DOCKER_HOST", "unix:///nonexistent.sock")],
        );
        assert_eq!(r.code, 10, "{r}");
        assert_eq!(r.stderr.lines().count(), 1, "{r}");
        assert!(
            r.stderr.contains(
                "cannot reach the docker engine at unix:///nonexistent.sock: start dockerd"
            ),
            "{r}"
        );
    }
}

#[test]
fn stack_missing_compose_tool_is_one_clear_error_line() {
    require_engine();
    let (dir, compose) = error_setup("notool");
    std::fs::write(&compose, "services:\n  web:\n    image: busybox\n").unwrap();
    let r = run_opsync(
        dir.path(),
        &["stack", "status", "prod"],
        &[("OPSYNC_COMPOSE", "opsync-no-such-compose")],
    );
    assert_eq!(r.code, 10, "{r}");
    assert_eq!(r.stderr.lines().count(), 1, "{r}");
    assert!(
        r.stderr
            .contains("no compose tool found (tried `opsync-no-such-compose`)"),
        "{r}"
    );
}

/// Regression: when `compose up -d` itself failed (a service waits for `web` to be healthy),
/// the error was compose's closing line ("Encountered errors while bringing up the project",
/// "dependency failed to start"), naming neither the unhealthy container nor its health output.
#[test]
fn stack_update_failed_by_compose_names_the_unhealthy_container() {
    require_engine();
    let reg = Registry::start();
    let prefix = unique("dep");
    let image = format!("{}/{prefix}/app:latest", reg.host);
    let mut s = Setup::new("dep", &image, &image, 5);
    std::fs::write(
        s.dir.path().join("compose.yaml"),
        format!(
            "services:\n  web:\n    image: {image}\n  app:\n    image: {image}\n    \
             depends_on:\n      web:\n        condition: service_healthy\n"
        ),
    )
    .unwrap();
    let v1 = s.build("v1", GOOD_V1);
    let bad = s.build("broken", BAD);
    reg.push(&v1, &image);
    s.opsync(&["stack", "up", "prod"]).ok();

    publish(&reg, &bad, &image, &v1);
    let r = s.opsync(&["stack", "update", "prod"]);
    assert_eq!(r.code, 10, "{r}");
    let error = r
        .stderr
        .lines()
        .find(|l| l.starts_with("opsync: error:"))
        .unwrap_or_else(|| panic!("no error line\n{r}"));
    assert!(error.contains("service web (container "), "{r}");
    assert!(
        error.contains("is unhealthy; its last health check said: "),
        "{r}"
    );
    assert!(error.contains("rolled back"), "{r}");
    drop(s);
    drop(reg);
}
