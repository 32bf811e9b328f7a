//! Docker helpers for the stack tests: a reachable engine (or a failing test that says so),
//! tiny images built from scratch around Debian's static busybox, a local registry from
//! Debian's `docker-registry` package on 127.0.0.1, and a guard that removes every container,
//! network, volume and image a test created.
//!
//! Names carry the process id and the test name, so tests run in parallel with each other and
//! with other test runs on the same engine.

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

/// `docker build` leaves its image untagged for a moment, and `opsync stack prune` removes
/// untagged images engine-wide: builds hold this lock shared, a test running prune holds it
/// exclusively, so prune never removes an image another test is building.
static IMAGE_LOCK: RwLock<()> = RwLock::new(());

fn building() -> RwLockReadGuard<'static, ()> {
    IMAGE_LOCK.read().unwrap_or_else(|e| e.into_inner())
}

/// Held while a test runs `opsync stack prune`: no other test of this binary builds an image
/// meanwhile.
pub fn pruning() -> RwLockWriteGuard<'static, ()> {
    IMAGE_LOCK.write().unwrap_or_else(|e| e.into_inner())
}

/// Runs `docker ARGS` and returns its output, whatever the exit status.
pub fn docker(args: &[&str]) -> Output {
    Command::new("docker")
        .args(args)
        .env("DOCKER_BUILDKIT", "0")
        .stdin(Stdio::null())
        .output()
        .expect("run docker")
}

/// Runs `docker ARGS`, panics with its output when it fails, returns stdout trimmed.
pub fn docker_ok(args: &[&str]) -> String {
    let out = docker(args);
    assert!(
        out.status.success(),
        "`docker {}` failed ({}):\nstdout: {}\nstderr: {}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Fails the calling test with a clear message when no Docker engine answers.
pub fn require_engine() -> String {
    crate::require_program("docker", "docker.io");
    let out = docker(&["version", "--format", "{{.Server.Version}}"]);
    assert!(
        out.status.success(),
        "no Docker engine reachable ({}): the stack tests need a running dockerd (Debian \
         package docker.io); docker said: {}",
        std::env::var("DOCKER_HOST").unwrap_or_else(|_| "unix:///var/run/docker.sock".into()),
        String::from_utf8_lossy(&out.stderr).trim()
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// A name unique to this process and `what`: lowercase, usable as project and repository name.
pub fn unique(what: &str) -> String {
    format!("opsync-t{}-{}", std::process::id(), what).to_lowercase()
}

/// What a test image serves.
#[derive(Debug, Clone, Copy)]
pub struct ImageSpec<'a> {
    /// Served as `/index.html` (with the tag), so two builds differ.
    pub content: &'a str,
    /// With `false` there is no `/health`, so the healthcheck fails.
    pub healthy: bool,
}

/// Builds an image `FROM scratch` with a static busybox running `httpd` on port 8080 and a
/// healthcheck fetching `/health` every second; returns its id. The stop signal is SIGKILL so
/// stopping takes no grace period.
pub fn build_image(tag: &str, spec: ImageSpec<'_>) -> String {
    let busybox = Path::new("/bin/busybox");
    assert!(
        busybox.is_file(),
        "/bin/busybox is missing: these tests need Debian's busybox-static package (scripts/test \
         installs it when run as root)"
    );
    let ctx = tempfile::tempdir().expect("build context");
    std::fs::copy(busybox, ctx.path().join("busybox")).expect("copy busybox");
    let www = ctx.path().join("www");
    std::fs::create_dir(&www).unwrap();
    // The tag makes the image unique to its test: two tests building the same content would
    // otherwise share one image id, and one test's cleanup would remove the other's image.
    std::fs::write(www.join("index.html"), format!("{}\n{tag}\n", spec.content)).unwrap();
    if spec.healthy {
        std::fs::write(www.join("health"), "ok\n").unwrap();
    }
    std::fs::write(
        ctx.path().join("Dockerfile"),
        "FROM scratch\n\
         COPY busybox /bin/busybox\n\
         COPY www /www\n\
         STOPSIGNAL SIGKILL\n\
         HEALTHCHECK --interval=1s --timeout=2s --retries=2 \
         CMD [\"/bin/busybox\", \"wget\", \"-q\", \"-O\", \"/dev/null\", \"http://127.0.0.1:8080/health\"]\n\
         ENTRYPOINT [\"/bin/busybox\", \"httpd\", \"-f\", \"-p\", \"8080\", \"-h\", \"/www\"]\n",
    )
    .unwrap();
    let ctx_path = ctx.path().to_str().unwrap();
    let _building = building();
    // No layer cache: images built from the same first step would share that layer as their
    // parent, and a test removing the last image on it (its cleanup, a rollback, a prune)
    // would delete it while another build uses it ("unknown parent image ID").
    docker_ok(&["build", "--no-cache", "-q", "-t", tag, ctx_path]);
    image_id(tag).expect("built image")
}

/// The id of a local image reference, none if absent.
pub fn image_id(reference: &str) -> Option<String> {
    let out = docker(&["image", "inspect", "--format", "{{.Id}}", reference]);
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// One container of a compose project, from `docker inspect`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Container {
    pub id: String,
    pub service: String,
    pub image_id: String,
    pub state: String,
    pub health: String,
}

/// Every container of compose project `project`, any state.
pub fn project_containers(project: &str) -> Vec<Container> {
    let filter = format!("label=com.docker.compose.project={project}");
    let ids = docker_ok(&["ps", "-a", "-q", "--no-trunc", "--filter", &filter]);
    let ids: Vec<&str> = ids.split_whitespace().collect();
    if ids.is_empty() {
        return Vec::new();
    }
    let mut args = vec![
        "inspect",
        "--format",
        "{{.Id}}\t{{index .Config.Labels \"com.docker.compose.service\"}}\t{{.Image}}\t\
         {{.State.Status}}\t{{if .State.Health}}{{.State.Health.Status}}{{end}}",
    ];
    args.extend(ids);
    docker_ok(&args)
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            Container {
                id: f[0].into(),
                service: f[1].into(),
                image_id: f[2].into(),
                state: f[3].into(),
                health: f.get(4).copied().unwrap_or("").into(),
            }
        })
        .collect()
}

/// Names of the volumes or networks (`kind`) labelled with compose project `project`.
pub fn project_objects(kind: &str, project: &str) -> Vec<String> {
    let filter = format!("label=com.docker.compose.project={project}");
    docker_ok(&[kind, "ls", "-q", "--filter", &filter])
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

/// Removes, on drop, everything of the compose projects and images it was told about: the
/// projects' containers, networks and volumes, every image whose repository contains one of the
/// name prefixes, and every image id it tracks.
#[derive(Debug, Default)]
pub struct Cleanup {
    projects: Vec<String>,
    prefixes: Vec<String>,
    images: BTreeSet<String>,
}

impl Cleanup {
    pub fn new() -> Cleanup {
        Cleanup::default()
    }

    pub fn project(&mut self, project: &str) {
        self.projects.push(project.to_owned());
    }

    /// Images whose repository contains `prefix` (for example `unique("update")`).
    pub fn image_prefix(&mut self, prefix: &str) {
        self.prefixes.push(prefix.to_owned());
    }

    pub fn image(&mut self, id: &str) {
        self.images.insert(id.to_owned());
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        for p in &self.projects {
            let filter = format!("label=com.docker.compose.project={p}");
            let ids = String::from_utf8_lossy(&docker(&["ps", "-aq", "--filter", &filter]).stdout)
                .into_owned();
            let ids: Vec<&str> = ids.split_whitespace().collect();
            if !ids.is_empty() {
                let mut args = vec!["rm", "-f", "-v"];
                args.extend(&ids);
                docker(&args);
            }
            for kind in ["network", "volume"] {
                let out = docker(&[kind, "ls", "-q", "--filter", &filter]);
                let names = String::from_utf8_lossy(&out.stdout).into_owned();
                for n in names.split_whitespace() {
                    docker(&[kind, "rm", n]);
                }
            }
        }
        let listing = String::from_utf8_lossy(
            &docker(&[
                "image",
                "ls",
                "--no-trunc",
                "--format",
                "{{.ID}}\t{{.Repository}}:{{.Tag}}",
            ])
            .stdout,
        )
        .into_owned();
        let mut refs = Vec::new();
        let ours = listing
            .lines()
            .filter_map(|line| line.split_once('\t'))
            .filter(|(_, r)| self.prefixes.iter().any(|p| r.contains(p.as_str())));
        for (id, r) in ours {
            refs.push(r.to_owned());
            self.images.insert(id.to_owned());
        }
        for r in &refs {
            docker(&["rmi", "-f", r]);
        }
        for id in &self.images {
            docker(&["rmi", "-f", id]);
        }
    }
}

/// A registry (Debian's `docker-registry`) on 127.0.0.1 with its storage in a temporary
/// folder; killed on drop.
pub struct Registry {
    child: Child,
    /// `127.0.0.1:PORT`, the host part of image references.
    pub host: String,
    _dir: tempfile::TempDir,
}

impl Registry {
    /// Starts the registry and waits (up to 30 s) until `GET /v2/` answers.
    pub fn start() -> Registry {
        let program = crate::require_program("docker-registry", "docker-registry");
        let dir = tempfile::tempdir().expect("registry folder");
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let host = format!("127.0.0.1:{port}");
        let config = dir.path().join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n  \
                 delete:\n    enabled: true\nhttp:\n  addr: {host}\n",
                dir.path().join("data").display()
            ),
        )
        .unwrap();
        let log = std::fs::File::create(dir.path().join("registry.log")).unwrap();
        let child = Command::new(program)
            .arg("serve")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start docker-registry");
        let mut reg = Registry {
            child,
            host,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if reg.answers() {
                return reg;
            }
            if let Ok(Some(status)) = reg.child.try_wait() {
                panic!(
                    "docker-registry exited ({status}) before answering: {}",
                    std::fs::read_to_string(reg.log_path()).unwrap_or_default()
                );
            }
            assert!(
                Instant::now() < deadline,
                "docker-registry on {} did not answer within 30s",
                reg.host
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn log_path(&self) -> PathBuf {
        self._dir.path().join("registry.log")
    }

    fn answers(&self) -> bool {
        let Ok(mut s) = TcpStream::connect(&self.host) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
        if s.write_all(format!("GET /v2/ HTTP/1.0\r\nHost: {}\r\n\r\n", self.host).as_bytes())
            .is_err()
        {
            return false;
        }
        let mut buf = String::new();
        let _ = s.read_to_string(&mut buf);
        buf.starts_with("HTTP/1.") && buf.contains(" 200 ")
    }

    /// Tags `local_id` as `reference` and pushes it.
    pub fn push(&self, local_id: &str, reference: &str) {
        docker_ok(&["tag", local_id, reference]);
        docker_ok(&["push", reference]);
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
