//! Queries against the engine (`docker ps`, `docker inspect`, `docker image ls`). Containers are
//! found by the `com.docker.compose.project` label, which both compose generations set, so
//! nothing here depends on container names (`web_1` in v1, `web-1` in v2) or on the changing
//! format of `compose ps`.

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;

use super::error::StackError;
use super::tool::Docker;
use opsync_core::process::{Level, ProcessError};

pub const PROJECT_LABEL: &str = "com.docker.compose.project";
pub const SERVICE_LABEL: &str = "com.docker.compose.service";
pub const ONEOFF_LABEL: &str = "com.docker.compose.oneoff";

/// One container of a compose project, as the engine sees it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ContainerInfo {
    pub id: String,
    pub name: String,
    pub project: String,
    pub service: String,
    /// The image reference the service asked for (`registry/app:tag`).
    pub image_ref: String,
    /// The image the container runs (`sha256:...`).
    pub image_id: String,
    /// `created`, `running`, `paused`, `restarting`, `exited`, `dead`.
    pub state: String,
    /// `starting`, `healthy`, `unhealthy`; none without a healthcheck.
    pub health: Option<String>,
    /// The output of the last healthcheck run (one line), when there was one.
    pub health_output: Option<String>,
    pub exit_code: i64,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RawContainer {
    id: String,
    name: String,
    image: String,
    config: RawConfig,
    state: RawState,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RawConfig {
    image: String,
    #[serde(default)]
    labels: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RawState {
    status: String,
    #[serde(default)]
    exit_code: i64,
    #[serde(default)]
    health: Option<RawHealth>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RawHealth {
    status: String,
    #[serde(default)]
    log: Option<Vec<RawHealthLog>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RawHealthLog {
    #[serde(default)]
    output: String,
}

/// Parses the JSON array `docker inspect` prints for containers; one-off containers
/// (`compose run`) are left out.
pub fn parse_inspect(json: &str) -> Result<Vec<ContainerInfo>, String> {
    let raw: Vec<RawContainer> = serde_json::from_str(json).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    for c in raw {
        let labels = c.config.labels.unwrap_or_default();
        if labels
            .get(ONEOFF_LABEL)
            .is_some_and(|v| v.eq_ignore_ascii_case("true"))
        {
            continue;
        }
        out.push(ContainerInfo {
            id: c.id,
            name: c.name.trim_start_matches('/').to_owned(),
            project: labels.get(PROJECT_LABEL).cloned().unwrap_or_default(),
            service: labels.get(SERVICE_LABEL).cloned().unwrap_or_default(),
            image_ref: c.config.image,
            image_id: c.image,
            state: c.state.status,
            health_output: c
                .state
                .health
                .as_ref()
                .and_then(|h| h.log.as_ref())
                .and_then(|l| l.last())
                .map(|l| one_line(&l.output))
                .filter(|o| !o.is_empty()),
            health: c.state.health.map(|h| h.status).filter(|s| !s.is_empty()),
            exit_code: c.state.exit_code,
        });
    }
    out.sort_by(|a, b| (&a.service, &a.name).cmp(&(&b.service, &b.name)));
    Ok(out)
}

/// A healthcheck's output as one line (its lines joined by `; `), at most 300 characters.
fn one_line(text: &str) -> String {
    let joined = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ");
    match joined.char_indices().nth(300) {
        Some((i, _)) => format!("{}...", &joined[..i]),
        None => joined,
    }
}

/// The engine said the container or image does not exist (any more).
fn no_such(e: &ProcessError) -> bool {
    e.output()
        .is_some_and(|o| o.stderr.contains("No such") || o.stdout.contains("No such"))
}

fn parse_err(stack: &str, command: &str, message: String) -> StackError {
    StackError::Parse {
        stack: stack.to_owned(),
        command: command.to_owned(),
        message,
    }
}

fn command_err(stack: &str) -> impl Fn(ProcessError) -> StackError + '_ {
    move |source| StackError::Command {
        stack: stack.to_owned(),
        error: Box::new(source),
    }
}

/// The containers of compose project `project` (all states).
pub fn project_containers(
    docker: &Docker,
    stack: &str,
    project: &str,
) -> Result<Vec<ContainerInfo>, StackError> {
    let filter = format!("label={PROJECT_LABEL}={project}");
    let ids = docker
        .run(
            ["ps", "-a", "-q", "--no-trunc", "--filter", &filter],
            Level::Quiet,
        )
        .map_err(command_err(stack))?;
    inspect_containers(docker, stack, &lines(&ids.stdout))
}

fn inspect_containers(
    docker: &Docker,
    stack: &str,
    ids: &[String],
) -> Result<Vec<ContainerInfo>, StackError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut args = vec!["container".to_owned(), "inspect".to_owned()];
    args.extend(ids.iter().cloned());
    let out = match docker.run(args, Level::Quiet) {
        Ok(out) => out,
        // A container removed between `ps` and `inspect`: ask again once.
        Err(e) if no_such(&e) => {
            return project_containers_retry(docker, stack, ids);
        }
        Err(e) => return Err(command_err(stack)(e)),
    };
    parse_inspect(&out.stdout).map_err(|m| parse_err(stack, "docker container inspect", m))
}

fn project_containers_retry(
    docker: &Docker,
    stack: &str,
    ids: &[String],
) -> Result<Vec<ContainerInfo>, StackError> {
    let mut all = Vec::new();
    for id in ids {
        if let Ok(out) = docker.run(["container", "inspect", id.as_str()], Level::Quiet) {
            all.extend(
                parse_inspect(&out.stdout)
                    .map_err(|m| parse_err(stack, "docker container inspect", m))?,
            );
        }
    }
    Ok(all)
}

/// The image ids every container on the engine uses (running or not, any project).
pub fn images_in_use(docker: &Docker, stack: &str) -> Result<BTreeSet<String>, StackError> {
    let ids = docker
        .run(["ps", "-a", "-q", "--no-trunc"], Level::Quiet)
        .map_err(command_err(stack))?;
    let ids = lines(&ids.stdout);
    if ids.is_empty() {
        return Ok(BTreeSet::new());
    }
    let mut args = vec![
        "container".to_owned(),
        "inspect".to_owned(),
        "--format".to_owned(),
        "{{.Image}}".to_owned(),
    ];
    args.extend(ids);
    let out = docker.run(args, Level::Quiet).map_err(command_err(stack))?;
    Ok(lines(&out.stdout).into_iter().collect())
}

/// One local image with its tags.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ImageInfo {
    pub id: String,
    /// `repo:tag` references (no digests).
    pub tags: BTreeSet<String>,
}

/// Every tagged image on the engine, by id.
pub fn tagged_images(
    docker: &Docker,
    stack: &str,
) -> Result<BTreeMap<String, ImageInfo>, StackError> {
    let out = docker
        .run(
            [
                "image",
                "ls",
                "--no-trunc",
                "--format",
                "{{.ID}}\t{{.Repository}}\t{{.Tag}}",
            ],
            Level::Quiet,
        )
        .map_err(command_err(stack))?;
    Ok(parse_image_ls(&out.stdout))
}

/// Parses `docker image ls --format '{{.ID}}\t{{.Repository}}\t{{.Tag}}'`.
pub fn parse_image_ls(text: &str) -> BTreeMap<String, ImageInfo> {
    let mut map: BTreeMap<String, ImageInfo> = BTreeMap::new();
    for line in text.lines() {
        let mut parts = line.trim().split('\t');
        let (Some(id), Some(repo), Some(tag)) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        let entry = map.entry(id.to_owned()).or_insert_with(|| ImageInfo {
            id: id.to_owned(),
            tags: BTreeSet::new(),
        });
        if repo != "<none>" && tag != "<none>" {
            entry.tags.insert(format!("{repo}:{tag}"));
        }
    }
    map
}

/// Ids of the engine's dangling images (no tag), as the engine defines them.
pub fn dangling_images(docker: &Docker, stack: &str) -> Result<Vec<String>, StackError> {
    let out = docker
        .run(
            [
                "image",
                "ls",
                "-q",
                "--no-trunc",
                "--filter",
                "dangling=true",
            ],
            Level::Quiet,
        )
        .map_err(command_err(stack))?;
    let mut ids = lines(&out.stdout);
    ids.dedup();
    Ok(ids)
}

/// The id of a local image reference; none when it is not present.
pub fn image_id(
    docker: &Docker,
    stack: &str,
    reference: &str,
) -> Result<Option<String>, StackError> {
    match docker.run(
        ["image", "inspect", "--format", "{{.Id}}", reference],
        Level::Quiet,
    ) {
        Ok(out) => Ok(Some(out.stdout.trim().to_owned())),
        Err(e) if no_such(&e) => Ok(None),
        Err(e) => Err(command_err(stack)(e)),
    }
}

/// The registry digests (`repo@sha256:...`) of each image id.
pub fn repo_digests(
    docker: &Docker,
    stack: &str,
    ids: &BTreeSet<String>,
) -> Result<BTreeMap<String, Vec<String>>, StackError> {
    let mut map = BTreeMap::new();
    for id in ids {
        let out = match docker.run(
            [
                "image",
                "inspect",
                "--format",
                "{{range .RepoDigests}}{{println .}}{{end}}",
                id.as_str(),
            ],
            Level::Quiet,
        ) {
            Ok(out) => out,
            Err(e) if no_such(&e) => continue,
            Err(e) => return Err(command_err(stack)(e)),
        };
        map.insert(id.clone(), lines(&out.stdout));
    }
    Ok(map)
}

fn lines(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The repository part of an image reference: `reg:5000/app:1` gives `reg:5000/app`.
pub fn repository(reference: &str) -> &str {
    let without_digest = reference.split('@').next().unwrap_or(reference);
    match without_digest.rfind(':') {
        Some(colon) if !without_digest[colon..].contains('/') => &without_digest[..colon],
        _ => without_digest,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repository_of_references() {
        for (r, repo) in [
            ("app", "app"),
            ("app:1", "app"),
            ("127.0.0.1:5000/team/app:latest", "127.0.0.1:5000/team/app"),
            ("127.0.0.1:5000/app", "127.0.0.1:5000/app"),
            ("app@sha256:abc", "app"),
            ("reg:5000/app:2@sha256:abc", "reg:5000/app"),
        ] {
            assert_eq!(repository(r), repo, "{r}");
        }
    }

    #[test]
    fn inspect_output_gives_the_last_health_check_output() {
        let json = r#"[{
            "Id": "c1", "Name": "/p-web-1", "Image": "sha256:aaa",
            "Config": {"Image": "app", "Labels": {"com.docker.compose.service": "web"}},
            "State": {"Status": "running", "Health": {"Status": "unhealthy", "Log": [
                {"ExitCode": 1, "Output": "old"},
                {"ExitCode": 1, "Output": "wget: server returned error:\n HTTP/1.0 404 Not Found\n"}
            ]}}
        }]"#;
        let c = parse_inspect(json).unwrap();
        assert_eq!(
            c[0].health_output.as_deref(),
            Some("wget: server returned error:; HTTP/1.0 404 Not Found")
        );
    }

    #[test]
    fn inspect_output_gives_service_image_and_health() {
        let json = r#"[{
            "Id": "c1", "Name": "/prod_web_1", "Image": "sha256:aaa",
            "Config": {"Image": "reg/app:latest", "Labels": {
                "com.docker.compose.project": "prod", "com.docker.compose.service": "web"}},
            "State": {"Status": "running", "ExitCode": 0, "Health": {"Status": "healthy"}}
        }, {
            "Id": "c2", "Name": "/prod-db-1", "Image": "sha256:bbb",
            "Config": {"Image": "db", "Labels": {
                "com.docker.compose.project": "prod", "com.docker.compose.service": "db"}},
            "State": {"Status": "exited", "ExitCode": 3}
        }, {
            "Id": "c3", "Name": "/prod_web_run_1", "Image": "sha256:aaa",
            "Config": {"Image": "reg/app:latest", "Labels": {
                "com.docker.compose.project": "prod", "com.docker.compose.service": "web",
                "com.docker.compose.oneoff": "True"}},
            "State": {"Status": "running"}
        }]"#;
        let c = parse_inspect(json).unwrap();
        assert_eq!(c.len(), 2);
        assert_eq!(c[0].service, "db");
        assert_eq!(c[0].name, "prod-db-1");
        assert_eq!(c[0].health, None);
        assert_eq!(c[0].exit_code, 3);
        assert_eq!(c[1].service, "web");
        assert_eq!(c[1].image_ref, "reg/app:latest");
        assert_eq!(c[1].image_id, "sha256:aaa");
        assert_eq!(c[1].health.as_deref(), Some("healthy"));
    }

    #[test]
    fn image_ls_groups_tags_by_id_and_skips_none() {
        let text = "sha256:a\treg/app\tlatest\nsha256:a\treg/app\topsync-rollback-1\n\
                    sha256:b\t<none>\t<none>\n";
        let m = parse_image_ls(text);
        assert_eq!(m.len(), 2);
        assert_eq!(m["sha256:a"].tags.len(), 2);
        assert!(m["sha256:b"].tags.is_empty());
    }
}
