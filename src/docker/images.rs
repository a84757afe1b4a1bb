//! Images in the engine: present or pulled, checked to be of the platform
//! asked for, and derived from another by a script (committed containers).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bollard::models::{ContainerConfig, ContainerCreateBody, HostConfig};
use bollard::query_parameters::{
    CommitContainerOptions, CreateImageOptions, LogsOptions, WaitContainerOptions,
};
use futures_util::StreamExt;

use crate::report::{Reporter, Step};

use super::container::{Container, ContainerSpec};
use super::engine::Engine;
use super::error::{api, not_found, DockerError};
use super::lifetime::{force_remove, labels, LABEL, LIVE};
use super::run::{tail, ExecOptions, Run};

impl Engine {
    /// The image's id, or None when it is not present locally.
    pub async fn image_id(&self, image: &str) -> Result<Option<String>, DockerError> {
        match self.docker.inspect_image(image).await {
            Ok(i) => Ok(i.id),
            Err(e) if not_found(&e) => Ok(None),
            Err(e) => Err(api(format!("inspecting image {image}"))(e)),
        }
    }

    /// Make sure this engine can run `platform` programs, before any work
    /// starts: at once when it is the engine's own architecture, else by
    /// running `sh -c 'exit 0'` in a `platform` container of `image` (which
    /// takes an emulator registered on the engine's host). Checked once per
    /// platform.
    pub async fn check_platform(&self, image: &str, platform: &str) -> Result<(), DockerError> {
        if self.platforms.lock().expect("poisoned").contains(platform) {
            return Ok(());
        }
        let engine = self
            .docker
            .info()
            .await
            .ok()
            .and_then(|i| i.architecture)
            .unwrap_or_default();
        if uname_machine(platform) != Some(engine.as_str()) {
            let started = Instant::now();
            self.probe(image, platform).await.map_err(|detail| {
                DockerError::PlatformUnsupported {
                    platform: platform.to_string(),
                    engine: engine.clone(),
                    image: image.to_string(),
                    detail,
                }
            })?;
            tracing::info!(
                "the {engine} engine runs {platform} programs (emulated; checked in {:.2} s)",
                started.elapsed().as_secs_f64()
            );
        }
        self.platforms
            .lock()
            .expect("poisoned")
            .insert(platform.to_string());
        Ok(())
    }

    /// Run `exit 0` with the image's own shell, with no init (whose binary
    /// is the engine's): Err with what failed.
    async fn probe(&self, image: &str, platform: &str) -> Result<(), String> {
        let body = ContainerCreateBody {
            image: Some(image.to_string()),
            cmd: Some(vec!["/bin/sh".into(), "-c".into(), "exit 0".into()]),
            entrypoint: Some(Vec::new()),
            user: Some("0".into()),
            labels: Some(labels(platform, "platform-check", true)),
            network_disabled: Some(true),
            host_config: Some(HostConfig {
                network_mode: Some("none".into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        let id = self
            .create(body, platform)
            .await
            .map_err(|e| e.to_string())?;
        let outcome = async {
            self.docker
                .start_container(&id, None)
                .await
                .map_err(|e| e.to_string())?;
            let mut wait = self
                .docker
                .wait_container(&id, None::<WaitContainerOptions>);
            match tokio::time::timeout(Duration::from_secs(120), wait.next()).await {
                Err(_) => Err("`sh -c 'exit 0'` did not end within 120 s".to_string()),
                Ok(Some(Ok(r))) if r.status_code == 0 => Ok(()),
                Ok(Some(Ok(r))) => Err(format!("`sh -c 'exit 0'` exited with {}", r.status_code)),
                Ok(Some(Err(e))) => Err(e.to_string()),
                Ok(None) => Err("the engine did not say how it ended".to_string()),
            }
        }
        .await;
        let outcome = match outcome {
            Err(detail) => {
                let logs = self.logs(&id).await;
                // What the container printed says it best ("exec format
                // error"); the engine's own words when it printed nothing.
                Err(if logs.is_empty() { detail } else { logs })
            }
            ok => ok,
        };
        let _ = force_remove(&self.docker, &id).await;
        LIVE.lock().expect("poisoned").remove(&id);
        outcome
    }

    /// The last lines a stopped container printed.
    async fn logs(&self, id: &str) -> String {
        let mut stream = self.docker.logs(
            id,
            Some(LogsOptions {
                stdout: true,
                stderr: true,
                ..Default::default()
            }),
        );
        let mut text = String::new();
        while let Some(Ok(chunk)) = stream.next().await {
            text.push_str(&String::from_utf8_lossy(&chunk.into_bytes()));
            if text.len() > 4096 {
                break;
            }
        }
        tail(text.trim(), 3)
    }

    /// Make sure `image` is present: use it when it is, else pull it for
    /// `platform`. Returns its id.
    pub async fn ensure_image(
        &self,
        image: &str,
        platform: &str,
        reporter: &dyn Reporter,
    ) -> Result<String, DockerError> {
        if let Some(id) = self.image_id(image).await? {
            return Ok(id);
        }
        let _step = Step::start(reporter, &format!("pulling {image} ({platform})"));
        let (name, tag) = split_tag(image);
        let mut stream = self.docker.create_image(
            Some(CreateImageOptions {
                from_image: Some(name.to_string()),
                tag: Some(tag.to_string()),
                platform: platform.to_string(),
                ..Default::default()
            }),
            None,
            None,
        );
        let mut last = String::new();
        while let Some(item) = stream.next().await {
            let info = item.map_err(|source| DockerError::Pull {
                image: image.to_string(),
                source,
            })?;
            let mut line = info.status.unwrap_or_default();
            if let Some(d) = info.progress_detail {
                if let (Some(c), Some(t)) = (d.current, d.total) {
                    line.push_str(&format!(" {} / {} MB", c / 1_000_000, t / 1_000_000));
                }
            }
            if !line.is_empty() && line != last {
                tracing::info!("pulling {image}: {line}");
                last = line;
            }
        }
        self.image_id(image)
            .await?
            .ok_or_else(|| DockerError::PulledButMissing {
                image: image.to_string(),
            })
    }

    /// A local image made from `base` by running `script` (as root, with
    /// network) and committing the result as `tag`. Reused when `tag` exists.
    pub async fn derived_image(
        &self,
        base: &str,
        platform: &str,
        tag: &str,
        script: &str,
        reporter: &dyn Reporter,
    ) -> Result<String, DockerError> {
        if self.image_id(tag).await?.is_some() {
            return Ok(tag.to_string());
        }
        let _step = Step::start(reporter, &format!("preparing image {tag} from {base}"));
        let spec = ContainerSpec::root(base, platform, true, "image");
        self.with_container(&spec, async |c| {
            c.run_ok(script, &format!("preparing {tag}"), &ExecOptions::default())
                .await?;
            c.commit(tag).await
        })
        .await?;
        Ok(tag.to_string())
    }
}

impl Container {
    /// Save the container's filesystem as image `tag` (labelled `bundle`).
    pub async fn commit(&self, tag: &str) -> Result<(), DockerError> {
        let (repo, t) = split_tag(tag);
        let mut labels = HashMap::new();
        labels.insert(LABEL.to_string(), env!("CARGO_PKG_VERSION").to_string());
        self.engine
            .docker
            .commit_container(
                CommitContainerOptions {
                    container: Some(self.id.clone()),
                    repo: Some(repo.to_string()),
                    tag: Some(t.to_string()),
                    pause: true,
                    ..Default::default()
                },
                ContainerConfig {
                    labels: Some(labels),
                    cmd: Some(vec!["sleep".into(), "infinity".into()]),
                    ..Default::default()
                },
            )
            .await
            .map_err(api(format!("saving image {tag}")))?;
        Ok(())
    }
}

/// `uname -m` of a Docker platform's programs.
pub fn uname_machine(platform: &str) -> Option<&'static str> {
    match platform {
        "linux/amd64" => Some("x86_64"),
        "linux/arm64" | "linux/arm64/v8" => Some("aarch64"),
        _ => None,
    }
}

pub(super) fn split_tag(image: &str) -> (&str, &str) {
    match image.rsplit_once(':') {
        Some((name, tag)) if !tag.contains('/') => (name, tag),
        _ => (image, "latest"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_tags() {
        assert_eq!(split_tag("ubuntu:20.04"), ("ubuntu", "20.04"));
        assert_eq!(split_tag("ubuntu"), ("ubuntu", "latest"));
        assert_eq!(
            split_tag("localhost:5000/x/y"),
            ("localhost:5000/x/y", "latest")
        );
    }
}
