//! `stack prune`: removes only images, and only these:
//! - dangling images (no tag) that no container uses, whatever its project or state;
//! - images retired from the history of a stack (older than its last N deployments) that no
//!   container and no kept deployment of any stack uses: their rollback tag and, if it still
//!   points to them, their original reference.
//!
//! Never containers, networks or volumes: unlike `docker system prune`, a stopped stack (the
//! dev stack during the nightly sync) keeps everything it has.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use std::path::Path;

use super::engine::{self, ImageInfo};
use super::error::StackError;
use super::history;
use super::tool::Docker;
use opsync_core::process::Level;

/// What prune decided for one image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PruneAction {
    pub id: String,
    /// Tags to remove (`docker rmi TAG`); empty: remove the image by id.
    pub untag: Vec<String>,
    /// Why (`dangling`, `retired from prod`).
    pub reason: String,
    /// The stack whose retired list holds the image, if any.
    #[serde(skip)]
    pub stack: Option<String>,
}

/// Everything prune needs to decide; no engine access.
#[derive(Debug, Clone, Default)]
pub struct PruneInputs {
    /// Tagged and untagged images, by id.
    pub images: BTreeMap<String, ImageInfo>,
    /// Dangling image ids as the engine reports them.
    pub dangling: Vec<String>,
    /// Image ids of every container on the engine.
    pub in_use: BTreeSet<String>,
    /// Image ids of the kept deployments of every stack.
    pub kept: BTreeSet<String>,
    /// Retired images of each stack: (stack, id, refs).
    pub retired: Vec<(String, String, Vec<String>)>,
}

/// Pure: the images to remove, and the retired entries that are gone (to drop from the state).
pub fn plan(inputs: &PruneInputs) -> (Vec<PruneAction>, Vec<(String, String)>) {
    let protected = |id: &str| inputs.in_use.contains(id) || inputs.kept.contains(id);
    let mut actions = Vec::new();
    let mut forget = Vec::new();
    let mut planned: BTreeSet<&str> = BTreeSet::new();

    for (stack, id, refs) in &inputs.retired {
        if inputs.kept.contains(id) {
            // Deployed again since: no longer retired.
            forget.push((stack.clone(), id.clone()));
            continue;
        }
        let Some(info) = inputs.images.get(id) else {
            forget.push((stack.clone(), id.clone()));
            continue;
        };
        if inputs.in_use.contains(id) || planned.contains(id.as_str()) {
            continue;
        }
        let untag: Vec<String> = refs
            .iter()
            .filter(|r| info.tags.contains(*r))
            .cloned()
            .collect();
        if untag.is_empty() && !info.tags.is_empty() {
            // Only foreign tags left: not ours to remove.
            forget.push((stack.clone(), id.clone()));
            continue;
        }
        planned.insert(id);
        actions.push(PruneAction {
            id: id.clone(),
            untag,
            reason: format!("retired from stack {stack}"),
            stack: Some(stack.clone()),
        });
    }
    for id in &inputs.dangling {
        if protected(id) || planned.contains(id.as_str()) {
            continue;
        }
        planned.insert(id);
        actions.push(PruneAction {
            id: id.clone(),
            untag: Vec::new(),
            reason: "dangling".into(),
            stack: None,
        });
    }
    (actions, forget)
}

/// Gathers the inputs, plans, and (unless `dry_run`) removes. Returns what was removed (or
/// would be); an image the engine refuses to remove is logged and skipped.
pub fn run(
    docker: &Docker,
    state_path: &Path,
    dry_run: bool,
) -> Result<Vec<PruneAction>, StackError> {
    const WHO: &str = "prune";
    let state = history::load(state_path)?;
    let inputs = PruneInputs {
        images: engine::tagged_images(docker, WHO)?,
        dangling: engine::dangling_images(docker, WHO)?,
        in_use: engine::images_in_use(docker, WHO)?,
        kept: state.stacks.values().flat_map(|h| h.kept_ids()).collect(),
        retired: state
            .stacks
            .iter()
            .flat_map(|(name, h)| {
                h.retired
                    .iter()
                    .map(move |r| (name.clone(), r.id.clone(), r.refs.clone()))
            })
            .collect(),
    };
    let (actions, mut forget) = plan(&inputs);
    if dry_run {
        return Ok(actions);
    }
    let mut done = Vec::new();
    for a in actions {
        let targets = if a.untag.is_empty() {
            vec![a.id.clone()]
        } else {
            a.untag.clone()
        };
        let mut ok = true;
        for t in &targets {
            if let Err(e) = docker.run(["rmi", t.as_str()], Level::Loud) {
                tracing::warn!(image = %t, error = %e, "cannot remove image, skipped");
                ok = false;
            }
        }
        if ok {
            if let Some(stack) = &a.stack {
                forget.push((stack.clone(), a.id.clone()));
            }
            done.push(a);
        }
    }
    if !forget.is_empty() {
        history::update(state_path, |st| {
            for (stack, id) in &forget {
                if let Some(h) = st.stacks.get_mut(stack) {
                    h.retired.retain(|r| &r.id != id);
                }
            }
        })?;
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn img(id: &str, tags: &[&str]) -> (String, ImageInfo) {
        (
            id.to_owned(),
            ImageInfo {
                id: id.to_owned(),
                tags: tags.iter().map(|t| (*t).to_owned()).collect(),
            },
        )
    }

    fn inputs() -> PruneInputs {
        PruneInputs {
            images: [
                img("run", &["reg/app:latest"]),
                img("old", &["reg/app:opsync-rollback-1"]),
                img(
                    "old-both",
                    &["reg/app:1", "reg/app:opsync-rollback-2", "mine:keep"],
                ),
                img("dangling", &[]),
                img("dangling-stopped", &[]),
                img("kept", &["reg/app:opsync-rollback-3"]),
                img("foreign", &["other:1"]),
            ]
            .into_iter()
            .collect(),
            dangling: vec!["dangling".into(), "dangling-stopped".into()],
            in_use: ["run", "dangling-stopped"].map(str::to_owned).into(),
            kept: ["run", "kept"].map(str::to_owned).into(),
            retired: vec![
                (
                    "prod".into(),
                    "old".into(),
                    vec!["reg/app:opsync-rollback-1".into(), "reg/app:latest".into()],
                ),
                (
                    "prod".into(),
                    "old-both".into(),
                    vec!["reg/app:opsync-rollback-2".into(), "reg/app:1".into()],
                ),
                (
                    "prod".into(),
                    "gone".into(),
                    vec!["reg/app:opsync-rollback-0".into()],
                ),
                (
                    "dev".into(),
                    "kept".into(),
                    vec!["reg/app:opsync-rollback-3".into()],
                ),
            ],
        }
    }

    #[test]
    fn removes_only_retired_and_unused_dangling_images() {
        let (actions, forget) = plan(&inputs());
        let ids: Vec<&str> = actions.iter().map(|a| a.id.as_str()).collect();
        assert_eq!(ids, ["old", "old-both", "dangling"]);
        // Only our own references are removed; `reg/app:latest` points elsewhere now.
        assert_eq!(actions[0].untag, ["reg/app:opsync-rollback-1"]);
        assert_eq!(actions[1].untag, ["reg/app:opsync-rollback-2", "reg/app:1"]);
        assert!(actions[2].untag.is_empty());
        assert_eq!(
            forget,
            [
                ("prod".to_owned(), "gone".to_owned()),
                ("dev".to_owned(), "kept".to_owned())
            ]
        );
    }

    #[test]
    fn an_image_used_by_a_stopped_container_is_never_removed() {
        let mut i = inputs();
        i.in_use.insert("old".into());
        i.in_use.insert("dangling".into());
        let (actions, _) = plan(&i);
        let ids: Vec<&str> = actions.iter().map(|a| a.id.as_str()).collect();
        assert_eq!(ids, ["old-both"]);
    }

    #[test]
    fn nothing_to_do_on_a_clean_engine() {
        let (actions, forget) = plan(&PruneInputs::default());
        assert!(actions.is_empty() && forget.is_empty());
    }
}
